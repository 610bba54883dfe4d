//! The files of an image that analyzers asked for, as they are in the final image.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, Cursor, Read, Seek, SeekFrom};
use std::os::unix::fs::FileExt;
use std::sync::Arc;

/// Files larger than this are read whole into memory only by analyzers that need them so (a
/// package database); executables and archives are read through [`CollectedFile::open`].
pub const MAX_IN_MEMORY_BYTES: u64 = 64 * 1024 * 1024;

/// A kept file's content: in memory, or spooled to a private temporary file (deleted when the
/// last reference goes) so that large executables and archives do not sit in memory. Cloning is
/// cheap.
#[derive(Debug, Clone)]
pub enum Content {
    Memory(Arc<[u8]>),
    Spooled { file: Arc<File>, len: u64 },
}

impl Content {
    pub fn len(&self) -> u64 {
        match self {
            Content::Memory(bytes) => bytes.len() as u64,
            Content::Spooled { len, .. } => *len,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The content when it is held in memory.
    pub fn as_memory(&self) -> Option<&[u8]> {
        match self {
            Content::Memory(bytes) => Some(bytes),
            Content::Spooled { .. } => None,
        }
    }

    /// The bytes held in memory (nothing for a spooled file).
    pub fn in_memory(&self) -> u64 {
        match self {
            Content::Memory(bytes) => bytes.len() as u64,
            Content::Spooled { .. } => 0,
        }
    }
}

impl PartialEq for Content {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Content::Memory(a), Content::Memory(b)) => a == b,
            (Content::Spooled { file: a, .. }, Content::Spooled { file: b, .. }) => {
                Arc::ptr_eq(a, b)
            }
            _ => false,
        }
    }
}

impl Eq for Content {}

impl From<Vec<u8>> for Content {
    fn from(bytes: Vec<u8>) -> Self {
        Content::Memory(bytes.into())
    }
}

/// One file of the final image that some analyzer asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CollectedFile {
    pub content: Content,
    /// The digest of the layer the file (in its final form) comes from.
    pub layer_digest: String,
    /// For a symlink kept under its own name (an analyzer asked for that name), the path of the
    /// file it leads to when that file is kept too: one file reached by two names.
    pub alias_of: Option<String>,
}

impl CollectedFile {
    pub fn new(bytes: impl Into<Vec<u8>>, layer_digest: impl Into<String>) -> Self {
        CollectedFile::with_content(Content::from(bytes.into()), layer_digest)
    }

    pub fn with_content(content: Content, layer_digest: impl Into<String>) -> Self {
        CollectedFile {
            content,
            layer_digest: layer_digest.into(),
            alias_of: None,
        }
    }

    /// The content's length in bytes.
    pub fn len(&self) -> u64 {
        self.content.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The whole content in memory, for files parsed as a whole (package databases, metadata).
    /// Refused past [`MAX_IN_MEMORY_BYTES`]: read executables and archives through
    /// [`CollectedFile::open`].
    pub fn bytes(&self) -> io::Result<Cow<'_, [u8]>> {
        match &self.content {
            Content::Memory(bytes) => Ok(Cow::Borrowed(bytes)),
            Content::Spooled { len, .. } if *len > MAX_IN_MEMORY_BYTES => Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{len} bytes is more than the {MAX_IN_MEMORY_BYTES} read into memory"),
            )),
            Content::Spooled { .. } => {
                let mut bytes = Vec::with_capacity(self.len() as usize);
                self.open()?.read_to_end(&mut bytes)?;
                Ok(Cow::Owned(bytes))
            }
        }
    }

    /// A reader over the content from its start. Each reader has its own position, so several
    /// may read one spooled file.
    pub fn open(&self) -> io::Result<Box<dyn ReadSeek + '_>> {
        Ok(match &self.content {
            Content::Memory(bytes) => Box::new(Cursor::new(&bytes[..])),
            Content::Spooled { file, len } => Box::new(SpooledReader {
                file,
                len: *len,
                position: 0,
            }),
        })
    }
}

/// A content reader that can seek (zip indexes and ELF section tables sit anywhere in a file).
pub trait ReadSeek: Read + Seek {}

impl<T: Read + Seek> ReadSeek for T {}

/// Positional reads of a spooled file, so readers never share a file cursor.
struct SpooledReader<'a> {
    file: &'a File,
    len: u64,
    position: u64,
}

impl Read for SpooledReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = self.len.saturating_sub(self.position);
        let want = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        if want == 0 {
            return Ok(0);
        }
        let n = self.file.read_at(&mut buf[..want], self.position)?;
        self.position += n as u64;
        Ok(n)
    }
}

impl Seek for SpooledReader<'_> {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        let target = match to {
            SeekFrom::Start(n) => Some(n),
            SeekFrom::End(d) => self.len.checked_add_signed(d),
            SeekFrom::Current(d) => self.position.checked_add_signed(d),
        };
        let target = target
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "seek before the start"))?;
        self.position = target;
        Ok(target)
    }
}

/// The files the analyzers asked for, as they are in the final image, keyed by normalised path
/// (see the module docs).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FileSet {
    files: BTreeMap<String, CollectedFile>,
}

impl FileSet {
    pub fn new() -> Self {
        FileSet::default()
    }

    /// Adds or replaces (a later layer's version of the same path) a file. `path` must be
    /// normalised ([`normalize_path`]).
    pub fn insert(
        &mut self,
        path: impl Into<String>,
        file: CollectedFile,
    ) -> Option<CollectedFile> {
        self.files.insert(path.into(), file)
    }

    /// Removes one file (a `.wh.<name>` whiteout of a file).
    pub fn remove(&mut self, path: &str) -> Option<CollectedFile> {
        self.files.remove(path)
    }

    /// Removes every file below directory `dir` (an opaque whiteout, or a whiteout of a
    /// directory); returns how many were removed. `dir` itself is not removed if it is a file.
    pub fn remove_dir(&mut self, dir: &str) -> usize {
        let prefix = format!("{}/", dir.trim_end_matches('/'));
        let doomed: Vec<String> = self
            .with_prefix(&prefix)
            .map(|(p, _)| p.to_owned())
            .collect();
        for path in &doomed {
            self.files.remove(path);
        }
        doomed.len()
    }

    pub fn get(&self, path: &str) -> Option<&CollectedFile> {
        self.files.get(path)
    }

    /// Every file, in path order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &CollectedFile)> {
        self.files.iter().map(|(p, f)| (p.as_str(), f))
    }

    /// The files whose path starts with `prefix` (a plain string prefix: pass `"dir/"` for the
    /// contents of a directory), in path order.
    pub fn with_prefix<'a>(
        &'a self,
        prefix: &'a str,
    ) -> impl Iterator<Item = (&'a str, &'a CollectedFile)> + 'a {
        self.files
            .range::<str, _>((
                std::ops::Bound::Included(prefix),
                std::ops::Bound::Unbounded,
            ))
            .take_while(move |(p, _)| p.starts_with(prefix))
            .map(|(p, f)| (p.as_str(), f))
    }

    pub fn len(&self) -> usize {
        self.files.len()
    }

    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }
}

/// The form [`FileSet`] keys and [`Analyzer::required`] arguments take: `/`-separated, relative
/// to the root, no leading `/` or `./`, no empty or `.` components, no trailing `/`. `None` for
/// a name with a `..` component (never inside the image root) and for the root itself.
pub fn normalize_path(raw: &str) -> Option<String> {
    let mut out = String::with_capacity(raw.len());
    for part in raw.split('/') {
        match part {
            "" | "." => continue,
            ".." => return None,
            part => {
                if !out.is_empty() {
                    out.push('/');
                }
                out.push_str(part);
            }
        }
    }
    (!out.is_empty()).then_some(out)
}
