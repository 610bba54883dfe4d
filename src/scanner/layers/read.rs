//! [`read_layer`]: one pass over one layer blob.

use std::cell::Cell;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::{self, BufRead, BufReader, Cursor, Read, Write};
use std::time::Instant;

use flate2::bufread::MultiGzDecoder;
use sha2::{Digest, Sha256, Sha512};

use super::paths;
use super::{
    Compression, LayerContent, LayerError, Limits, LinkKind, SPOOL_BYTES, SPOOL_CONTENT_BYTES,
};
use crate::scanner::analyzers::HEAD_LEN;
use crate::scanner::files::Content;

/// Read buffer for the compressed stream.
const RAW_BUFFER: usize = 64 * 1024;
/// The tar block size.
const BLOCK: u64 = 512;
/// [`Limits::max_header_bytes`] is never below this (a header plus a few extension blocks).
const MIN_HEADER_BYTES: u64 = 4 * BLOCK;
/// Bounds on the "is this path wanted through a symlink of this layer" search, per entry.
const WANTED_CALLS: u32 = 64;
const WANTED_DEPTH: u32 = 8;
/// Initial buffer for a kept file (grows as needed; the header's size is not trusted for it).
const MAX_INITIAL_CAPACITY: u64 = 8 * 1024 * 1024;

/// Reads one layer blob front to back, exactly once: hashes and counts the compressed bytes,
/// decompresses (the compression is sniffed from the first bytes; `compression` from the media
/// type is a hint), walks the tar entries, keeps the wanted regular files (see the module docs),
/// records links, directories and whiteouts, drains the rest of the stream and verifies the
/// digest (`sha256:…` or `sha512:…`).
pub fn read_layer<R: Read>(
    reader: R,
    expected_digest: &str,
    compression: Compression,
    required: &dyn Fn(&str) -> bool,
    limits: &Limits,
) -> Result<LayerContent, LayerError> {
    let select = Select {
        by_path: required,
        by_content: &|_, _| false,
    };
    read_layer_selecting(reader, expected_digest, compression, &select, limits)
}

/// Which regular files a layer read keeps: those wanted by path, and those wanted for their first
/// [`HEAD_LEN`] bytes (executables, by their magic).
pub struct Select<'a> {
    pub by_path: &'a dyn Fn(&str) -> bool,
    pub by_content: &'a dyn Fn(&str, &[u8]) -> bool,
}

/// [`read_layer`], also keeping the files `select.by_content` wants.
pub fn read_layer_selecting<R: Read>(
    reader: R,
    expected_digest: &str,
    compression: Compression,
    select: &Select<'_>,
    limits: &Limits,
) -> Result<LayerContent, LayerError> {
    let expected = ExpectedDigest::parse(expected_digest)?;
    let meter = Meter::new(limits);
    let mut source = Source {
        inner: reader,
        hasher: expected.hasher(),
        meter: &meter,
    };

    let (collected, found) = match parse(&mut source, compression, select, &meter) {
        Ok(parsed) => parsed,
        Err(err @ (LayerError::Truncated { .. } | LayerError::Corrupt { .. })) => {
            // Are these bytes the layer at all? Hash the rest (no decompression) and compare.
            meter.draining.set(true);
            if drain(&mut source).is_ok() {
                let actual = source.hasher.finish();
                if actual != expected.text {
                    return Err(LayerError::DigestMismatch {
                        expected: expected.text,
                        actual,
                    });
                }
            }
            return Err(err);
        }
        Err(err) => return Err(err),
    };

    meter.draining.set(true);
    drain(&mut source).map_err(|err| meter.classify(err, found, "after the end of the tar"))?;
    let actual = source.hasher.finish();
    if actual != expected.text {
        return Err(LayerError::DigestMismatch {
            expected: expected.text,
            actual,
        });
    }

    Ok(collected.into_content(
        expected.text,
        meter.uncompressed.get(),
        meter.compressed.get(),
        found,
    ))
}

/// Sniffs the compression, decompresses, walks the tar and drains the decompressed stream.
fn parse<R: Read>(
    source: &mut Source<'_, R>,
    declared: Compression,
    select: &Select<'_>,
    meter: &Meter<'_>,
) -> Result<(Collected, Compression), LayerError> {
    let mut prefix = [0u8; 4];
    let mut have = 0;
    while have < prefix.len() {
        match source.read(&mut prefix[have..]) {
            Ok(0) => break,
            Ok(n) => have += n,
            Err(err) => return Err(meter.classify(err, declared, "reading the first bytes")),
        }
    }
    let prefix = &prefix[..have];
    let found = Compression::sniff(prefix).unwrap_or(Compression::None);

    let raw = BufReader::with_capacity(RAW_BUFFER, Cursor::new(prefix.to_vec()).chain(source));
    let decoder = match found {
        Compression::Gzip => Decoder::Gzip(MultiGzDecoder::new(raw)),
        Compression::Zstd => Decoder::Zstd(
            zstd::stream::read::Decoder::with_buffer(raw)
                .map_err(|source| LayerError::Io { source })?,
        ),
        Compression::None => Decoder::Plain(raw),
    };
    let mut archive = tar::Archive::new(Plain {
        inner: decoder,
        meter,
    });
    let collected = walk(&mut archive, select, meter, found).map_err(|err| match err {
        LayerError::Corrupt { reason } if declared != found => LayerError::Corrupt {
            reason: format!(
                "{reason} (the media type says {declared}, the blob was read as {found})"
            ),
        },
        other => other,
    })?;

    // Whatever follows the end-of-archive blocks: decompress it too, so that the gzip CRC of the
    // last member is checked and every compressed byte is consumed.
    meter.draining.set(true);
    let mut plain = archive.into_inner();
    drain(&mut plain).map_err(|err| meter.classify(err, found, "after the end of the tar"))?;
    Ok((collected, found))
}

/// Walks the tar entries.
fn walk<R: Read>(
    archive: &mut tar::Archive<R>,
    select: &Select<'_>,
    meter: &Meter<'_>,
    codec: Compression,
) -> Result<Collected, LayerError> {
    let limits = meter.limits;
    let mut collected = Collected::default();
    let mut wanted = Wanted {
        required: select.by_path,
        by_target: HashMap::new(),
    };
    // Where the data of the last entry ends (not padded), for the missing-end-blocks decision.
    let mut last_data_end: Option<u64> = None;

    let entries = archive
        .entries()
        .map_err(|err| meter.classify(err, codec, "opening the tar"))?;
    for item in entries {
        let mut entry = match item {
            Ok(entry) => entry,
            Err(err) => {
                if meter.ends_cleanly_after(last_data_end) {
                    break;
                }
                return Err(meter.classify(err, codec, "reading a tar header"));
            }
        };

        collected.entries += 1;
        if collected.entries > limits.max_entries {
            return Err(LayerError::TooLarge {
                what: "tar entries".to_owned(),
                limit: limits.max_entries,
            });
        }
        // For sparse files `size()` is the expanded size, so this over-estimates the data end:
        // that only makes the two checks that use it more lenient (header cap) or stricter
        // (missing end blocks).
        let size = entry.size();
        let data_end = entry.raw_file_position().saturating_add(size);
        last_data_end = Some(data_end);
        meter.meta_start.set(padded(data_end));

        let raw_path = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        let Some(path) = paths::normalize(&raw_path) else {
            return Err(LayerError::PathTraversal { path: raw_path });
        };
        if path.is_empty() {
            continue; // the root directory
        }

        let name = paths::file_name(&path);
        if let Some(hidden) = name.strip_prefix(".wh.") {
            let dir = paths::parent(&path);
            if hidden == ".wh..opq" {
                collected.add_opaque(dir, limits)?;
            } else if hidden.starts_with(".wh.") {
                // aufs metadata (.wh..wh.plnk, .wh..wh.aufs): not a whiteout
            } else if hidden == ".." {
                return Err(LayerError::PathTraversal { path: raw_path });
            } else if hidden.is_empty() || hidden == "." {
                return Err(LayerError::Corrupt {
                    reason: format!("invalid whiteout entry {raw_path:?}"),
                });
            } else {
                collected.add_whiteout(paths::join(dir, hidden), limits)?;
            }
            continue;
        }

        let entry_type = entry.header().entry_type();
        if entry_type.is_dir() || (entry_type.is_file() && raw_path.ends_with('/')) {
            collected.record(path, Node::Dir, limits)?;
        } else if entry_type.is_file() || entry_type.is_contiguous() || entry_type.is_gnu_sparse() {
            let by_path = wanted.check(&path);
            let mut head = Vec::new();
            if !by_path {
                (&mut entry)
                    .take(HEAD_LEN as u64)
                    .read_to_end(&mut head)
                    .map_err(|err| meter.classify(err, codec, &format!("reading {path}")))?;
                // A file too large to keep is left to the layer's other entries, not a failure:
                // no single executable stops an image's scan.
                if head.len() < 4
                    || size > limits.max_file_bytes
                    || !(select.by_content)(&path, &head)
                {
                    collected.record_other(&path, limits)?;
                    continue;
                }
            } else if size > limits.max_file_bytes {
                return Err(LayerError::TooLarge {
                    what: format!("file {path} ({size} bytes)"),
                    limit: limits.max_file_bytes,
                });
            }
            let mut rest = (&mut entry).take(size.saturating_sub(head.len() as u64));
            let spool_past = if by_path {
                SPOOL_BYTES
            } else {
                SPOOL_CONTENT_BYTES
            };
            let content = if size > spool_past {
                collected.reserve_spool(&path, size, limits)?;
                spool(&head, &mut rest, size)
            } else {
                collected.reserve(&path, size, limits)?;
                let mut bytes = head;
                bytes.reserve(size.min(MAX_INITIAL_CAPACITY) as usize);
                rest.read_to_end(&mut bytes).map(|_| Content::from(bytes))
            }
            .map_err(|err| meter.classify(err, codec, &format!("reading {path}")))?;
            if content.len() < size {
                return Err(LayerError::Truncated {
                    reason: format!(
                        "the tar stream ends inside {path}: its header says {size} bytes, {} follow",
                        content.len()
                    ),
                });
            }
            if by_path {
                collected.by_content.remove(&path);
            } else {
                collected.by_content.insert(path.clone());
            }
            collected.record(path, Node::File(content), limits)?;
        } else if entry_type.is_symlink() {
            let target = entry
                .link_name_bytes()
                .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
                .unwrap_or_default();
            wanted.add_symlink(&path, &target);
            collected.record(path, Node::Link(target, LinkKind::Symlink), limits)?;
        } else if entry_type.is_hard_link() {
            let Some(raw_target) = entry
                .link_name_bytes()
                .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
            else {
                return Err(LayerError::Corrupt {
                    reason: format!("hardlink {raw_path:?} has no target"),
                });
            };
            let Some(target) = paths::normalize(&raw_target) else {
                return Err(LayerError::PathTraversal { path: raw_target });
            };
            if wanted.check(&path) {
                collected.record(path, Node::Link(target, LinkKind::Hardlink), limits)?;
            } else {
                collected.record_other(&path, limits)?;
            }
        } else if entry_type.is_character_special()
            || entry_type.is_block_special()
            || entry_type.is_fifo()
        {
            collected.record_other(&path, limits)?;
        }
        // PAX global headers and unknown types carry nothing we need.
    }
    Ok(collected)
}

/// Writes `head` and the rest of a file to a private temporary file (unlinked at once, so it
/// goes when the last reference closes); the content's length is what was actually written.
fn spool(head: &[u8], rest: &mut impl Read, size: u64) -> io::Result<Content> {
    let mut file = tempfile::tempfile()?;
    file.write_all(head)?;
    let copied = io::copy(rest, &mut file)?;
    let len = head.len() as u64 + copied;
    debug_assert!(len <= size);
    Ok(Content::Spooled {
        file: std::sync::Arc::new(file),
        len,
    })
}

fn padded(offset: u64) -> u64 {
    offset.saturating_add(BLOCK - 1) & !(BLOCK - 1)
}

fn drain(reader: &mut impl Read) -> io::Result<u64> {
    let mut buf = vec![0u8; RAW_BUFFER];
    let mut total = 0u64;
    loop {
        match reader.read(&mut buf) {
            Ok(0) => return Ok(total),
            Ok(n) => total += n as u64,
            Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
            Err(err) => return Err(err),
        }
    }
}

/// What one layer records, by normalised path; a later entry at the same path replaces an
/// earlier one.
#[derive(Default)]
struct Collected {
    nodes: BTreeMap<String, Node>,
    whiteouts: BTreeSet<String>,
    opaque: BTreeSet<String>,
    other: Vec<u64>,
    kept_bytes: u64,
    spooled_bytes: u64,
    by_content: BTreeSet<String>,
    entries: u64,
}

enum Node {
    File(Content),
    Link(String, LinkKind),
    Dir,
}

impl Node {
    fn cost(&self) -> u64 {
        match self {
            Node::File(content) => content.in_memory(),
            Node::Link(target, _) => target.len() as u64,
            Node::Dir => 0,
        }
    }
}

impl Collected {
    /// Fails when `extra` more bytes for `path` would exceed [`Limits::max_kept_bytes`].
    fn reserve(&self, path: &str, extra: u64, limits: &Limits) -> Result<(), LayerError> {
        let total = self
            .kept_bytes
            .saturating_add(path.len() as u64)
            .saturating_add(extra);
        if total > limits.max_kept_bytes {
            return Err(LayerError::TooLarge {
                what: format!("bytes kept from one layer (at {path})"),
                limit: limits.max_kept_bytes,
            });
        }
        Ok(())
    }

    /// Fails when `extra` more spooled bytes would exceed [`Limits::max_spooled_bytes`]; counts
    /// them (a replaced file's spool is not given back: the bound is on what was written).
    fn reserve_spool(&mut self, path: &str, extra: u64, limits: &Limits) -> Result<(), LayerError> {
        let total = self.spooled_bytes.saturating_add(extra);
        if total > limits.max_spooled_bytes {
            return Err(LayerError::TooLarge {
                what: format!("bytes spooled from one layer (at {path})"),
                limit: limits.max_spooled_bytes,
            });
        }
        self.spooled_bytes = total;
        Ok(())
    }

    fn record(&mut self, path: String, node: Node, limits: &Limits) -> Result<(), LayerError> {
        self.reserve(&path, node.cost(), limits)?;
        let path_len = path.len() as u64;
        self.kept_bytes += path_len + node.cost();
        if let Some(old) = self.nodes.insert(path, node) {
            self.kept_bytes -= path_len + old.cost();
        }
        Ok(())
    }

    /// A non-directory entry that is not recorded otherwise: only its fingerprint is kept.
    fn record_other(&mut self, path: &str, limits: &Limits) -> Result<(), LayerError> {
        const FINGERPRINT: u64 = std::mem::size_of::<u64>() as u64;
        self.reserve(path, FINGERPRINT, limits)?;
        self.kept_bytes += FINGERPRINT;
        self.other.push(paths::fingerprint(path));
        // a later entry at the same path replaces an earlier one
        if let Some(old) = self.nodes.remove(path) {
            self.kept_bytes -= path.len() as u64 + old.cost();
        }
        self.by_content.remove(path);
        Ok(())
    }

    fn add_whiteout(&mut self, path: String, limits: &Limits) -> Result<(), LayerError> {
        self.reserve(&path, 0, limits)?;
        self.kept_bytes += path.len() as u64;
        self.whiteouts.insert(path);
        Ok(())
    }

    fn add_opaque(&mut self, dir: &str, limits: &Limits) -> Result<(), LayerError> {
        self.reserve(dir, 0, limits)?;
        self.kept_bytes += dir.len() as u64;
        self.opaque.insert(dir.to_owned());
        Ok(())
    }

    fn into_content(
        self,
        digest: String,
        uncompressed_bytes: u64,
        compressed_bytes: u64,
        compression: Compression,
    ) -> LayerContent {
        let mut files = Vec::new();
        let mut links = Vec::new();
        let mut dirs = Vec::new();
        for (path, node) in self.nodes {
            match node {
                Node::File(bytes) => files.push((path, bytes)),
                Node::Link(target, kind) => links.push((path, target, kind)),
                Node::Dir => dirs.push(path),
            }
        }
        let mut other_paths = self.other;
        other_paths.sort_unstable();
        other_paths.dedup();
        let kept_by_content = self
            .by_content
            .into_iter()
            .filter(|path| {
                files
                    .binary_search_by(|(p, _): &(String, Content)| p.as_str().cmp(path))
                    .is_ok()
            })
            .collect();
        LayerContent {
            digest,
            other_paths,
            files,
            kept_by_content,
            links,
            dirs,
            whiteouts: self.whiteouts.into_iter().collect(),
            opaque_dirs: self.opaque.into_iter().collect(),
            entries: self.entries,
            uncompressed_bytes,
            compressed_bytes,
            compression,
        }
    }
}

/// Which regular files to keep: the required ones, plus files that an earlier symlink of the same
/// layer makes reachable under a required path (the link's target or below it).
struct Wanted<'r> {
    required: &'r dyn Fn(&str) -> bool,
    /// Lexical symlink target → the symlinks pointing there.
    by_target: HashMap<String, Vec<String>>,
}

impl Wanted<'_> {
    fn check(&self, path: &str) -> bool {
        let mut calls = WANTED_CALLS;
        self.check_at(path, 0, &mut calls)
    }

    fn check_at(&self, path: &str, depth: u32, calls: &mut u32) -> bool {
        if *calls == 0 {
            return false;
        }
        *calls -= 1;
        if (self.required)(path) {
            return true;
        }
        if depth >= WANTED_DEPTH || self.by_target.is_empty() {
            return false;
        }
        for (prefix, rest) in paths::prefixes(path) {
            let Some(links) = self.by_target.get(prefix) else {
                continue;
            };
            for link in links {
                if self.check_at(&format!("{link}{rest}"), depth + 1, calls) {
                    return true;
                }
                if *calls == 0 {
                    return false;
                }
            }
        }
        false
    }

    fn add_symlink(&mut self, link: &str, target: &str) {
        if let Some(target) = paths::lexical_link_target(link, target)
            && !target.is_empty()
            && target != link
        {
            self.by_target
                .entry(target)
                .or_default()
                .push(link.to_owned());
        }
    }
}

/// Why a read was refused by the meter.
#[derive(Debug, Clone, Copy)]
enum Trip {
    Compressed,
    Uncompressed,
    Header,
    Timeout,
}

/// Counters and flags shared by the readers of one layer, used to classify errors: the `tar`
/// crate and the decompressors turn everything into `io::Error`, so the meter remembers which
/// layer of the stack failed first.
struct Meter<'l> {
    limits: &'l Limits,
    started: Instant,
    compressed: Cell<u64>,
    uncompressed: Cell<u64>,
    /// The blob's reader returned an error (not a limit).
    raw_failed: Cell<bool>,
    /// The decompressor returned an error that did not come from below.
    decoder_failed: Cell<bool>,
    /// The decompressed stream ended.
    plain_eof: Cell<bool>,
    /// Decompressed offset after which tar metadata for the next entry starts.
    meta_start: Cell<u64>,
    /// Past the end of the tar: no header cap.
    draining: Cell<bool>,
    tripped: Cell<Option<Trip>>,
}

impl<'l> Meter<'l> {
    fn new(limits: &'l Limits) -> Self {
        Meter {
            limits,
            started: Instant::now(),
            compressed: Cell::new(0),
            uncompressed: Cell::new(0),
            raw_failed: Cell::new(false),
            decoder_failed: Cell::new(false),
            plain_eof: Cell::new(false),
            meta_start: Cell::new(0),
            draining: Cell::new(false),
            tripped: Cell::new(None),
        }
    }

    fn trip(&self, trip: Trip) -> io::Error {
        if self.tripped.get().is_none() {
            self.tripped.set(Some(trip));
        }
        io::Error::other(format!("layer limit reached: {trip:?}"))
    }

    fn check_time(&self) -> io::Result<()> {
        if let Some(max) = self.limits.max_duration
            && self.started.elapsed() > max
        {
            return Err(self.trip(Trip::Timeout));
        }
        Ok(())
    }

    /// The tar stream ended (cleanly, at the decompressor level) after the last entry's data was
    /// complete and before another header started: a tar without end-of-archive blocks and
    /// without the last entry's padding. See the module docs.
    fn ends_cleanly_after(&self, last_data_end: Option<u64>) -> bool {
        let Some(end) = last_data_end else {
            return false;
        };
        let pos = self.uncompressed.get();
        self.tripped.get().is_none()
            && !self.raw_failed.get()
            && !self.decoder_failed.get()
            && self.plain_eof.get()
            && pos >= end
            && pos < padded(end)
    }

    fn classify(&self, err: io::Error, codec: Compression, doing: &str) -> LayerError {
        let limits = self.limits;
        if let Some(trip) = self.tripped.get() {
            return match trip {
                Trip::Compressed => LayerError::TooLarge {
                    what: "compressed layer bytes".to_owned(),
                    limit: limits.max_compressed_bytes,
                },
                Trip::Uncompressed => LayerError::TooLarge {
                    what: "uncompressed layer bytes".to_owned(),
                    limit: limits.max_uncompressed_bytes,
                },
                Trip::Header => LayerError::TooLarge {
                    what: "tar header bytes for one entry (long names, PAX records)".to_owned(),
                    limit: limits.max_header_bytes.max(MIN_HEADER_BYTES),
                },
                Trip::Timeout => LayerError::Timeout {
                    limit: limits.max_duration.unwrap_or_default(),
                },
            };
        }
        if self.raw_failed.get() {
            return LayerError::Io { source: err };
        }
        let compressed = self.compressed.get();
        let uncompressed = self.uncompressed.get();
        if self.decoder_failed.get() {
            return if err.kind() == io::ErrorKind::UnexpectedEof {
                LayerError::Truncated {
                    reason: format!(
                        "the {codec} stream ends early, after {compressed} compressed bytes ({err})"
                    ),
                }
            } else {
                LayerError::Corrupt {
                    reason: format!(
                        "invalid {codec} data after {compressed} compressed bytes: {err}"
                    ),
                }
            };
        }
        if self.plain_eof.get() {
            LayerError::Truncated {
                reason: format!(
                    "the tar stream ends early, after {uncompressed} bytes, {doing} ({err})"
                ),
            }
        } else {
            LayerError::Corrupt {
                reason: format!("invalid tar at byte {uncompressed}, {doing}: {err}"),
            }
        }
    }
}

/// The blob: hashed and counted as it passes, before any buffering.
struct Source<'m, R> {
    inner: R,
    hasher: Hasher,
    meter: &'m Meter<'m>,
}

impl<R: Read> Read for Source<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.meter.check_time()?;
        loop {
            match self.inner.read(buf) {
                Ok(n) => {
                    self.hasher.update(&buf[..n]);
                    let total = self.meter.compressed.get() + n as u64;
                    self.meter.compressed.set(total);
                    if total > self.meter.limits.max_compressed_bytes {
                        return Err(self.meter.trip(Trip::Compressed));
                    }
                    return Ok(n);
                }
                Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                Err(err) => {
                    self.meter.raw_failed.set(true);
                    return Err(err);
                }
            }
        }
    }
}

/// The decompressed tar stream: counted, capped, and watched for the end and for decoder errors.
struct Plain<'m, D> {
    inner: D,
    meter: &'m Meter<'m>,
}

impl<D: Read> Read for Plain<'_, D> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let meter = self.meter;
        if buf.is_empty() {
            return Ok(0);
        }
        meter.check_time()?;
        let pos = meter.uncompressed.get();
        let mut len = buf.len();
        if !meter.draining.get() {
            let cap = meter.limits.max_header_bytes.max(MIN_HEADER_BYTES);
            let allowed_end = meter.meta_start.get().saturating_add(cap);
            if pos >= allowed_end {
                return Err(meter.trip(Trip::Header));
            }
            len = len.min(usize::try_from(allowed_end - pos).unwrap_or(usize::MAX));
        }
        loop {
            match self.inner.read(&mut buf[..len]) {
                Ok(0) => {
                    meter.plain_eof.set(true);
                    return Ok(0);
                }
                Ok(n) => {
                    let total = pos + n as u64;
                    meter.uncompressed.set(total);
                    if total > meter.limits.max_uncompressed_bytes {
                        return Err(meter.trip(Trip::Uncompressed));
                    }
                    return Ok(n);
                }
                Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                Err(err) => {
                    if meter.tripped.get().is_none() && !meter.raw_failed.get() {
                        meter.decoder_failed.set(true);
                    }
                    return Err(err);
                }
            }
        }
    }
}

enum Decoder<R: BufRead> {
    Gzip(MultiGzDecoder<R>),
    Zstd(zstd::stream::read::Decoder<'static, R>),
    Plain(R),
}

impl<R: BufRead> Read for Decoder<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Decoder::Gzip(decoder) => decoder.read(buf),
            Decoder::Zstd(decoder) => decoder.read(buf),
            Decoder::Plain(reader) => reader.read(buf),
        }
    }
}

struct ExpectedDigest {
    /// `algorithm:hex`, lower case.
    text: String,
    sha512: bool,
}

impl ExpectedDigest {
    fn parse(digest: &str) -> Result<Self, LayerError> {
        let invalid = || LayerError::InvalidDigest {
            digest: digest.to_owned(),
        };
        let (algorithm, hex) = digest.split_once(':').ok_or_else(invalid)?;
        let (sha512, len) = match algorithm {
            "sha256" => (false, 64),
            "sha512" => (true, 128),
            _ => return Err(invalid()),
        };
        if hex.len() != len || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(invalid());
        }
        Ok(ExpectedDigest {
            text: format!("{algorithm}:{}", hex.to_ascii_lowercase()),
            sha512,
        })
    }

    fn hasher(&self) -> Hasher {
        if self.sha512 {
            Hasher::Sha512(Sha512::new())
        } else {
            Hasher::Sha256(Sha256::new())
        }
    }
}

enum Hasher {
    Sha256(Sha256),
    Sha512(Sha512),
}

impl Hasher {
    fn update(&mut self, bytes: &[u8]) {
        match self {
            Hasher::Sha256(hasher) => hasher.update(bytes),
            Hasher::Sha512(hasher) => hasher.update(bytes),
        }
    }

    /// `algorithm:hex` of everything so far (resets the hasher).
    fn finish(&mut self) -> String {
        match self {
            Hasher::Sha256(hasher) => {
                format!("sha256:{}", hex::encode(hasher.finalize_reset()))
            }
            Hasher::Sha512(hasher) => {
                format!("sha512:{}", hex::encode(hasher.finalize_reset()))
            }
        }
    }
}
