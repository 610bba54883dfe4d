//! Layer streaming: read each layer blob once, verify its digest, apply whiteouts across layers
//! and keep only the files the analyzers asked for. In a scan this comes after the registry
//! client has resolved the image and before the analyzers read the kept files.
//!
//! Two steps:
//! 1. [`read_layer`] streams one layer blob front to back, exactly once. It hashes the
//!    *compressed* bytes as they pass, decompresses, walks the tar entries and records what the
//!    merge needs ([`LayerContent`]): the kept files, symlinks, hardlinks, directories, whiteouts
//!    and opaque directories. A layer is never held in memory as a whole; only kept files are
//!    buffered (bounded by [`Limits`]), and a kept file larger than [`SPOOL_BYTES`] (an
//!    executable, an archive) is spooled to a private temporary file instead of memory.
//! 2. [`merge`] applies the layers bottom to top and produces the
//!    [`FileSet`](crate::scanner::files::FileSet) handed to the
//!    analyzers.
//!
//! # Decisions
//!
//! **Compression.** [`Compression::from_media_type`] maps the OCI and Docker layer media types
//! (unknown → [`LayerError::UnsupportedMediaType`]). The media type is only a hint: like
//! containerd and Docker, [`read_layer`] sniffs the first bytes and trusts them — gzip magic
//! (`1f 8b`) → gzip, zstd magic (or a zstd skippable frame) → zstd, anything else → an
//! uncompressed tar. So a layer labelled `+gzip` that is really a plain tar (or zstd) still
//! scans, and real garbage still fails, as [`LayerError::Corrupt`], in the tar parser.
//! The compression actually used is in [`LayerContent::compression`].
//!
//! **Multi-member gzip.** Decoded with `MultiGzDecoder`: concatenated gzip members (pigz, some
//! layer builders, appended layers) are one stream, as in Go's `gzip.Reader`, which registries
//! and runtimes use. Bytes after the last member that are not another gzip member are
//! [`LayerError::Corrupt`] (Go's reader fails the same way). zstd streams may also have
//! several frames.
//!
//! **Digest.** Every compressed byte passes through the hasher exactly once (the hashing reader
//! sits under the decompressor's buffer). After the tar ends the rest of the decompressed stream
//! is drained (so the gzip CRC of the last member is checked), then the rest of the raw stream,
//! then the digest is compared ([`LayerError::DigestMismatch`]). When parsing fails with
//! [`LayerError::Truncated`] or [`LayerError::Corrupt`], the rest of the raw stream is drained
//! (hash only, no decompression, still bounded by the limits) and the digest is checked first: if
//! it does not match, the error is `DigestMismatch` — the bytes are not the layer the manifest
//! names (a cut or damaged download; worth a retry), and the parse error is only a symptom.
//! Only when the digest matches is the layer itself broken (`LayerTruncated` / `LayerCorrupt`,
//! permanent). Hostile content ([`LayerError::PathTraversal`], [`LayerError::TooLarge`]) stops
//! at once without reading further. `sha256:` and `sha512:` digests are supported.
//!
//! **Tar end without end-of-archive blocks.** A tar that ends right after its last complete entry
//! — without the two zero blocks, and even without the zero padding of the last entry's data to
//! a 512-byte boundary (old `umoci insert`, opencontainers/umoci#436) — is accepted as the
//! normal end of the archive, as Go-based tools do. The `tar` crate already ends cleanly at EOF
//! on a header boundary, but with the padding missing it fails with "unexpected EOF during
//! skip"; we detect that case explicitly (the decompressed stream ended, cleanly, at
//! or after the end of the last entry's data and before the next header) and stop there. A stream
//! that ends inside an entry's data (the header says 1000 bytes, 10 follow), inside a header, or
//! inside the compressed stream is [`LayerError::Truncated`]. Note: a tar cut exactly at an entry
//! boundary cannot be told apart from a complete one; the digest still guarantees that it is the
//! blob that was pushed.
//!
//! **Paths.** Entry paths are normalised: leading `/` and `./` removed, `//` and `.` components
//! collapsed, `a/../b` resolved lexically (like Docker's `filepath.Clean`), so `/etc/x`, `./etc/x`
//! and `etc//x` are all `etc/x`. A path whose `..` climbs above the root (`../../etc/passwd`) —
//! or a hardlink target or whiteout that does — is a hostile layer: [`LayerError::PathTraversal`].
//! The root entry itself (`.`, `./`, `/`) is skipped. Non-UTF-8 names are converted lossily.
//!
//! **Whiteouts.** `<dir>/.wh.<name>` deletes `<dir>/<name>` (and everything under it) from the
//! lower layers; `<dir>/.wh..wh..opq` makes `<dir>` opaque (everything under it from lower layers
//! is hidden, the directory itself stays). Both only affect lower layers, never entries of their
//! own layer. Other `.wh..wh.*` names (aufs metadata) are ignored. A later layer may re-create a
//! whited-out path. A non-directory entry replaces a lower directory tree at its path, and a
//! directory entry replaces a lower non-directory (symlink) at its path, as when extracting.
//!
//! **Links.** Nothing is followed while reading. Every symlink of a layer is recorded (they are
//! small and the merge needs them to resolve paths), and so are hardlinks at wanted paths, all
//! directory paths, and a 64-bit fingerprint of every other non-directory path (so that a file
//! rewritten in a later layer but not kept there still replaces the stale copy kept from a lower
//! layer). [`merge`] resolves a required path that is a symlink in the final image (relative or
//! absolute target, through symlinked directories too, at most 40 hops); a target that climbs
//! above the root, a loop, an empty target, or a target that was not kept is simply not resolved
//! (the path is absent from the file set), never an error. Hardlinks are resolved when their
//! layer is applied, against the state at that point (their own layer and the ones below).
//!
//! Which targets are kept: a file is kept if `required(path)`, or — because the single pass
//! cannot go back — if an earlier entry *of the same layer* is a symlink whose lexical target is
//! this file or one of its parent directories and the path through the link is required
//! (`etc/os-release -> ../usr/lib/os-release` sorts before its target in every tar writer that
//! sorts, and so does `lib/apk/db -> ../../usr/lib/apk/db`). A target in another layer than its
//! link is found only if it is required itself: analyzers should ask for both names (the
//! os-release analyzer asks for `etc/os-release` and `usr/lib/os-release`). A required path that
//! is itself a symlink always gets its target's content; a required path *below* a symlinked
//! directory (`lib/apk/db/installed`) gets it only when the file is not already in the set under
//! its physical path, so merged `/usr` (`lib -> usr/lib`) or pnpm's linked `node_modules` do not
//! make pattern analyzers report every file twice.
//!
//! **Oversized files.** A wanted file larger than [`Limits::max_file_bytes`] is an error
//! ([`LayerError::TooLarge`]), not skipped: skipping would make an analyzer silently miss a
//! package database and report an image healthy. Same for [`Limits::max_kept_bytes`].
//!
//! **Limits.** Compressed and uncompressed byte counts are checked on every read, so a
//! decompression bomb stops after at most one buffer past `max_uncompressed_bytes`. The tar
//! crate reads GNU long names and PAX headers into memory unbounded, so the metadata read between
//! the end of one entry's data and the next entry is capped by [`Limits::max_header_bytes`].
//! Entry count and wall-clock time ([`Limits::max_duration`]) are bounded too.
//!
//! **Memory.** One layer read holds: the kept files, the recorded paths (about 100 bytes per
//! directory or symlink, 8 per other entry; all within [`Limits::max_kept_bytes`]), a 64 KiB read
//! buffer, the decoder state (gzip: ~40 KiB; zstd: its window, at most 128 MiB by the zstd
//! library's default limit, a few MiB at the usual levels), and at most
//! [`Limits::max_header_bytes`] of tar metadata.
//!
//! Not handled (documented limitations): tar entries whose parent is a symlink in a lower layer
//! are taken at their literal path (extraction would write through the link; real layer diffs
//! always use physical paths); GNU sparse files are expanded by the `tar` crate (untested here,
//! container layers do not use them); non-UTF-8 names are compared after lossy conversion.

mod merge;
mod paths;
mod read;
#[cfg(test)]
mod tests;

use std::collections::BTreeSet;
use std::fmt;
use std::io;
use std::time::Duration;

pub use merge::merge;
pub use read::{Select, read_layer, read_layer_selecting};

use crate::scanner::files::Content;

/// Kept files larger than this are spooled to a private temporary file rather than memory.
pub const SPOOL_BYTES: u64 = 1024 * 1024;
/// The same for files kept for their first bytes: every ELF file of an image is one (shared
/// libraries too, as only its tables tell a Go or Rust binary), so all but the smallest go to disk.
pub const SPOOL_CONTENT_BYTES: u64 = 64 * 1024;

/// How a layer blob is compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Compression {
    Gzip,
    Zstd,
    None,
}

impl Compression {
    /// The compression named by an OCI or Docker layer media type. Parameters (`; …`) and case
    /// are ignored. Unknown, encrypted or non-layer media types are an error.
    pub fn from_media_type(media_type: &str) -> Result<Compression, LayerError> {
        let essence = media_type
            .split(';')
            .next()
            .unwrap_or_default()
            .trim()
            .to_ascii_lowercase();
        match essence.as_str() {
            "application/vnd.oci.image.layer.v1.tar"
            | "application/vnd.oci.image.layer.nondistributable.v1.tar"
            | "application/vnd.docker.image.rootfs.diff.tar"
            | "application/vnd.docker.image.rootfs.foreign.diff.tar" => Ok(Compression::None),
            "application/vnd.oci.image.layer.v1.tar+gzip"
            | "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"
            | "application/vnd.docker.image.rootfs.diff.tar.gzip"
            | "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip" => Ok(Compression::Gzip),
            "application/vnd.oci.image.layer.v1.tar+zstd"
            | "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd"
            | "application/vnd.docker.image.rootfs.diff.tar.zstd" => Ok(Compression::Zstd),
            _ => Err(LayerError::UnsupportedMediaType {
                media_type: media_type.to_owned(),
            }),
        }
    }

    /// The compression the first bytes of a blob announce, if any.
    pub fn sniff(prefix: &[u8]) -> Option<Compression> {
        match prefix {
            [0x1f, 0x8b, ..] => Some(Compression::Gzip),
            [0x28, 0xb5, 0x2f, 0xfd, ..] => Some(Compression::Zstd),
            // zstd skippable frame: magic 0x184D2A50..=0x184D2A5F, little endian
            [b0, 0x2a, 0x4d, 0x18, ..] if b0 & 0xf0 == 0x50 => Some(Compression::Zstd),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Compression::Gzip => "gzip",
            Compression::Zstd => "zstd",
            Compression::None => "uncompressed",
        }
    }
}

impl fmt::Display for Compression {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Bounds on one layer. The defaults fit real images (the biggest common base images have layers
/// of a few hundred MB and tens of thousands of entries) with a wide margin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Compressed bytes read from the blob. Default 2 GiB.
    pub max_compressed_bytes: u64,
    /// Decompressed bytes (the tar stream, including anything after its end). Default 8 GiB.
    pub max_uncompressed_bytes: u64,
    /// Tar entries (every member: files, directories, links, whiteouts). Default 1 000 000.
    pub max_entries: u64,
    /// Size of one file kept for its path. Default 1 GiB (files past [`SPOOL_BYTES`] are
    /// spooled to disk; a package database is read into memory only up to
    /// [`MAX_IN_MEMORY_BYTES`](crate::scanner::files::MAX_IN_MEMORY_BYTES)). A file kept for its
    /// first bytes (an executable) past this size is not kept, and the layer still reads.
    pub max_file_bytes: u64,
    /// Everything a layer's [`LayerContent`] holds in memory: kept file bytes plus recorded path
    /// strings (links, directories, whiteouts). Default 512 MiB.
    pub max_kept_bytes: u64,
    /// Bytes of one layer's kept files spooled to temporary files. Default 8 GiB.
    pub max_spooled_bytes: u64,
    /// Tar metadata (headers, GNU long names, PAX records) between one entry's data and the next
    /// entry. Default 1 MiB (as Go's archive/tar caps PAX headers).
    pub max_header_bytes: u64,
    /// Wall-clock time for one layer, checked on every read. Default 15 minutes. A read that
    /// blocks is the HTTP client's business (its read timeout).
    pub max_duration: Option<Duration>,
}

impl Default for Limits {
    fn default() -> Self {
        const MIB: u64 = 1024 * 1024;
        const GIB: u64 = 1024 * MIB;
        Limits {
            max_compressed_bytes: 2 * GIB,
            max_uncompressed_bytes: 8 * GIB,
            max_entries: 1_000_000,
            max_file_bytes: GIB,
            max_kept_bytes: 512 * MIB,
            max_spooled_bytes: 8 * GIB,
            max_header_bytes: MIB,
            max_duration: Some(Duration::from_secs(15 * 60)),
        }
    }
}

/// The kind of a recorded link entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LinkKind {
    /// Target as written in the tar (relative to the link's directory, or absolute from the image
    /// root); not normalised.
    Symlink,
    /// Target is a normalised path from the root (a member of this or a lower layer).
    Hardlink,
}

/// What [`read_layer`] keeps of one layer. All path lists are normalised and sorted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerContent {
    /// The verified digest of the compressed blob (`sha256:…`, lower case).
    pub digest: String,
    /// Kept regular files: wanted paths (see the module docs) with their content.
    pub files: Vec<(String, Content)>,
    /// Those of `files` kept for their first bytes (an analyzer's `wants_content`), not their
    /// path: the merge keeps them whatever their path.
    pub kept_by_content: BTreeSet<String>,
    /// `(path, target, kind)`: every symlink, and hardlinks at wanted paths.
    pub links: Vec<(String, String, LinkKind)>,
    /// Every directory entry (needed when a directory replaces a lower symlink).
    pub dirs: Vec<String>,
    /// Fingerprints ([FNV-1a](https://en.wikipedia.org/wiki/Fowler%E2%80%93Noll%E2%80%93Vo_hash_function),
    /// 64 bit, sorted) of the paths of every other non-directory entry: regular files that were
    /// not kept, hardlinks that were not wanted, devices, fifos. They replace whatever lower layers
    /// had at those paths (so a stale lower copy of a file is never reported), at 8 bytes an entry.
    pub other_paths: Vec<u64>,
    /// Paths deleted from lower layers (`.wh.<name>`).
    pub whiteouts: Vec<String>,
    /// Directories whose lower-layer contents are hidden (`.wh..wh..opq`); `""` is the root.
    pub opaque_dirs: Vec<String>,
    /// Number of tar entries.
    pub entries: u64,
    /// Bytes of the decompressed stream.
    pub uncompressed_bytes: u64,
    /// Bytes of the blob.
    pub compressed_bytes: u64,
    /// The compression actually found in the blob (sniffed).
    pub compression: Compression,
}

/// Why a layer could not be read. [`LayerError::code`] gives the stable short code used in
/// failed scans.
#[derive(Debug, thiserror::Error)]
pub enum LayerError {
    #[error("layer is truncated: {reason}")]
    Truncated { reason: String },
    #[error("layer digest mismatch: expected {expected}, got {actual}")]
    DigestMismatch { expected: String, actual: String },
    #[error("layer too large: {what} exceeds the limit of {limit}")]
    TooLarge { what: String, limit: u64 },
    #[error("layer entry escapes the image root: {path:?}")]
    PathTraversal { path: String },
    #[error("unsupported layer media type {media_type:?}")]
    UnsupportedMediaType { media_type: String },
    #[error("layer is corrupt: {reason}")]
    Corrupt { reason: String },
    #[error("invalid layer digest {digest:?}: expected sha256:<64 hex> or sha512:<128 hex>")]
    InvalidDigest { digest: String },
    #[error("reading the layer took longer than {limit:?}")]
    Timeout { limit: Duration },
    #[error("reading the layer failed: {source}")]
    Io {
        #[source]
        source: io::Error,
    },
}

impl LayerError {
    /// Stable short code for failed scans (`error.code`).
    pub fn code(&self) -> &'static str {
        match self {
            LayerError::Truncated { .. } => "LayerTruncated",
            LayerError::DigestMismatch { .. } => "DigestMismatch",
            LayerError::TooLarge { .. } => "LayerTooLarge",
            LayerError::PathTraversal { .. } => "PathTraversal",
            LayerError::UnsupportedMediaType { .. } => "UnsupportedMediaType",
            LayerError::Corrupt { .. } => "LayerCorrupt",
            LayerError::InvalidDigest { .. } => "InvalidDigest",
            LayerError::Timeout { .. } => "LayerTimeout",
            LayerError::Io { .. } => "LayerReadFailed",
        }
    }

    /// Whether reading the layer again may succeed: a failed or slow read, or bytes that are not
    /// the layer (a damaged download). Everything else is a property of the image.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            LayerError::Io { .. } | LayerError::Timeout { .. } | LayerError::DigestMismatch { .. }
        )
    }
}
