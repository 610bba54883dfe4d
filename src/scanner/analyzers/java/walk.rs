//! Reading one archive and the archives nested in it, within [`Limits`].

use std::io::{self, Read, Seek, Write};

use tempfile::SpooledTempFile;
use zip::ZipReadOptions;
use zip::read::{Config, ZipFileEntry};
use zip::result::ZipError;
use zip::unstable::read::ZipIterable;

use super::metadata::{self, Coordinates};
use super::{Limits, MIB, NAME, SPOOL_IN_MEMORY, is_archive_name};
use crate::scanner::advisories::matcher::{InventoryPackage, PackageKind};
use crate::scanner::analyzers::{Analysis, AnalyzerWarning, ReadSeek, UnreadableFile};

/// Why reading stopped.
#[derive(Debug)]
pub(super) enum Stop {
    /// This archive (with what it holds) cannot be read; its parent goes on.
    Archive { code: &'static str, reason: String },
    /// A limit on the whole image file was reached: nothing more of it is read.
    File { code: &'static str, reason: String },
    /// The scanner's temporary storage failed: the scan fails.
    Environment(String),
}

impl Stop {
    fn archive(code: &'static str, reason: impl Into<String>) -> Self {
        Stop::Archive {
            code,
            reason: reason.into(),
        }
    }
}

impl From<ZipError> for Stop {
    fn from(e: ZipError) -> Self {
        let code = match &e {
            ZipError::Io(io) if io.kind() == io::ErrorKind::UnexpectedEof => "Truncated",
            ZipError::UnsupportedArchive(_)
            | ZipError::CompressionMethodNotSupported(_)
            | ZipError::InvalidPassword => "Unsupported",
            _ => "Malformed",
        };
        Stop::archive(code, e.to_string())
    }
}

/// Reading one image file and the archives nested in it.
pub(super) struct Walk<'a> {
    limits: Limits,
    layer: &'a str,
    analysis: &'a mut Analysis,
    /// Bytes inflated so far, all levels together.
    inflated: u64,
    packages: usize,
}

impl<'a> Walk<'a> {
    pub(super) fn new(limits: Limits, layer: &'a str, analysis: &'a mut Analysis) -> Self {
        Walk {
            limits,
            layer,
            analysis,
            inflated: 0,
            packages: 0,
        }
    }

    /// Reads the archive `reader` found at `path` (an image path, or `!`-joined for a nested
    /// one), `depth` levels below the image's file: first its own identity, then its nested
    /// archives.
    pub(super) fn archive(
        &mut self,
        reader: &mut dyn ReadSeek,
        path: &str,
        depth: usize,
    ) -> Result<(), Stop> {
        let starts_as_zip = starts_as_zip(reader);
        let mut zip = ZipIterable::try_new(reader, Config::default()).map_err(|e| {
            if starts_as_zip {
                Stop::archive(
                    "Truncated",
                    format!("it starts as a zip but has no readable central directory: {e}"),
                )
            } else {
                Stop::archive("Malformed", format!("not a zip archive: {e}"))
            }
        })?;
        let max_entries = self.limits.entries;
        if zip.len() > max_entries {
            return Err(Stop::archive(
                "TooLarge",
                format!("{} entries (at most {max_entries} read)", zip.len()),
            ));
        }
        self.identity(&mut zip, path)?;
        self.nested(&mut zip, path, depth)
    }

    /// Emits the packages of the archive's own `pom.properties` files, or of its manifest. The
    /// packages found before a damaged directory entry are kept.
    fn identity(
        &mut self,
        zip: &mut ZipIterable<&mut dyn ReadSeek>,
        path: &str,
    ) -> Result<(), Stop> {
        let mut poms = 0usize;
        let mut manifest = None;
        let entries = zip.files()?;
        while let Some(entry) = entries.next() {
            let entry = entry?;
            let Some(name) = self.entry_name(&entry, path) else {
                continue;
            };
            let is_pom = metadata::is_pom_properties(&name);
            if !is_pom && name != "META-INF/MANIFEST.MF" {
                continue;
            }
            let mut bytes = Vec::new();
            if let Err(stop) = self.inflate(
                entry,
                entries.reader_mut(),
                self.limits.metadata_bytes,
                &mut bytes,
            ) {
                self.entry_failed(stop, path, &name)?;
                continue;
            }
            let text = String::from_utf8_lossy(&bytes).into_owned();
            if !is_pom {
                manifest = Some(text);
                continue;
            }
            poms += 1;
            match metadata::pom_properties(&text) {
                Ok(coordinates) => self.emit(coordinates, path)?,
                Err(reason) => self.warn(path, format!("{name}: {reason}: skipped")),
            }
        }
        if poms > 0 {
            return Ok(());
        }
        match manifest.as_deref().and_then(metadata::manifest_identity) {
            Some(coordinates) => self.emit(coordinates, path),
            None => {
                self.warn(
                    path,
                    "identity unknown: no pom.properties, and no MANIFEST.MF that names a Maven \
                     group, artifact and version",
                );
                Ok(())
            }
        }
    }

    /// Reads every nested archive of the archive at `path`.
    fn nested(
        &mut self,
        zip: &mut ZipIterable<&mut dyn ReadSeek>,
        path: &str,
        depth: usize,
    ) -> Result<(), Stop> {
        let entries = zip.files()?;
        while let Some(entry) = entries.next() {
            let entry = entry?;
            let Some(name) = self.entry_name(&entry, path) else {
                continue;
            };
            if entry.is_dir() || !is_archive_name(&name) {
                continue;
            }
            let nested_path = format!("{path}!{name}");
            let outcome = self.nested_archive(entry, entries.reader_mut(), &nested_path, depth + 1);
            match outcome {
                Ok(()) => {}
                Err(Stop::Archive { code, reason }) => self
                    .analysis
                    .unreadable
                    .push(UnreadableFile::new(NAME, nested_path, code, reason)),
                Err(stop) => return Err(stop),
            }
        }
        Ok(())
    }

    fn nested_archive(
        &mut self,
        entry: ZipFileEntry<'static>,
        reader: &mut &mut dyn ReadSeek,
        path: &str,
        depth: usize,
    ) -> Result<(), Stop> {
        let Limits {
            depth: max_depth,
            ratio: max_ratio,
            ..
        } = self.limits;
        if depth > max_depth {
            return Err(Stop::archive(
                "TooDeep",
                format!("nested {depth} archives deep (at most {max_depth} read)"),
            ));
        }
        let (size, compressed) = (entry.size(), entry.compressed_size());
        if size > MIB && size / compressed.max(1) > max_ratio {
            return Err(Stop::archive(
                "TooLarge",
                format!(
                    "{size} bytes compressed into {compressed}: a ratio over {max_ratio}:1 \
                     (a zip bomb?)"
                ),
            ));
        }
        let mut spool = SpooledTempFile::new(SPOOL_IN_MEMORY);
        self.inflate(entry, reader, self.limits.nested_bytes, &mut spool)?;
        spool
            .rewind()
            .map_err(|e| Stop::Environment(format!("rewinding a spooled nested archive: {e}")))?;
        self.archive(&mut spool, path, depth)
    }

    /// Inflates one entry into `out`, refusing one that declares or produces more than `limit`
    /// bytes, more than the image file's budget, or other than the size its header declares.
    fn inflate(
        &mut self,
        entry: ZipFileEntry<'static>,
        reader: &mut &mut dyn ReadSeek,
        limit: u64,
        out: &mut dyn Write,
    ) -> Result<(), Stop> {
        let declared = entry.size();
        if declared > limit {
            return Err(Stop::archive(
                "TooLarge",
                format!("{declared} bytes (at most {limit} read)"),
            ));
        }
        if declared > self.limits.inflated_bytes.saturating_sub(self.inflated) {
            return Err(self.over_budget());
        }
        let mut file = entry.with_reader(reader, ZipReadOptions::default())?;
        let mut buf = vec![0u8; 64 * 1024];
        let mut produced = 0u64;
        loop {
            let n = match file.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(ZipError::Io(e).into()),
            };
            produced = produced.saturating_add(n as u64);
            self.inflated = self.inflated.saturating_add(n as u64);
            if self.inflated > self.limits.inflated_bytes {
                return Err(self.over_budget());
            }
            // The header can lie: stop at what it declared, not at what the data holds.
            if produced > declared {
                return Err(Stop::archive(
                    "Malformed",
                    format!("inflates past the {declared} bytes its header declares"),
                ));
            }
            let chunk = buf.get(..n).unwrap_or_default();
            out.write_all(chunk)
                .map_err(|e| Stop::Environment(format!("spooling a nested archive: {e}")))?;
        }
        if produced != declared {
            return Err(Stop::archive(
                "Malformed",
                format!("holds {produced} bytes, its header declares {declared}"),
            ));
        }
        Ok(())
    }

    fn over_budget(&self) -> Stop {
        Stop::File {
            code: "TooLarge",
            reason: format!(
                "more than {} bytes to inflate from this file's archives",
                self.limits.inflated_bytes
            ),
        }
    }

    /// A `pom.properties` or manifest that could not be read: a warning, unless a limit on the
    /// whole file was reached.
    fn entry_failed(&mut self, stop: Stop, path: &str, name: &str) -> Result<(), Stop> {
        match stop {
            Stop::Archive { code, reason } => {
                self.warn(path, format!("{name}: {code}: {reason}: skipped"));
                Ok(())
            }
            other => Err(other),
        }
    }

    fn emit(&mut self, c: Coordinates, path: &str) -> Result<(), Stop> {
        self.packages += 1;
        if self.packages > self.limits.packages {
            return Err(Stop::File {
                code: "TooLarge",
                reason: format!(
                    "more than {} Maven packages in one file",
                    self.limits.packages
                ),
            });
        }
        self.analysis.packages.push(InventoryPackage::language(
            PackageKind::Maven,
            format!("{}:{}", c.group, c.artifact),
            c.version,
            path,
            self.layer,
        ));
        Ok(())
    }

    /// An entry's name; `None`, with a warning, for one that cannot be decoded.
    fn entry_name(&mut self, entry: &ZipFileEntry<'_>, path: &str) -> Option<String> {
        match entry.name() {
            Ok(name) => Some(name.into_owned()),
            Err(e) => {
                self.warn(
                    path,
                    format!("an entry with an unreadable name: {e}: skipped"),
                );
                None
            }
        }
    }

    fn warn(&mut self, path: &str, message: impl Into<String>) {
        self.analysis
            .warnings
            .push(AnalyzerWarning::new(NAME, path, message));
    }
}

/// Whether the content begins with a zip local file header (a jar may also begin with a
/// launcher script, which the zip reader skips).
fn starts_as_zip(reader: &mut dyn ReadSeek) -> bool {
    let mut magic = [0u8; 4];
    let read = reader.rewind().and_then(|()| reader.read_exact(&mut magic));
    read.is_ok() && magic == *b"PK\x03\x04"
}
