//! The files of an image that analyzers asked for, as they are in the final image.

use std::collections::BTreeMap;
use std::io::{Cursor, Read, Seek};

/// One file of the final image that some analyzer asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CollectedFile {
    pub bytes: Vec<u8>,
    /// The digest of the layer the file (in its final form) comes from.
    pub layer_digest: String,
}

impl CollectedFile {
    pub fn new(bytes: impl Into<Vec<u8>>, layer_digest: impl Into<String>) -> Self {
        CollectedFile {
            bytes: bytes.into(),
            layer_digest: layer_digest.into(),
        }
    }

    /// The content's length in bytes.
    pub fn len(&self) -> u64 {
        self.bytes.len() as u64
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A reader over the content from its start. Analyzers of executables and archives read
    /// through this (not `bytes`), as such files may be spooled to a temporary file.
    pub fn open(&self) -> std::io::Result<Box<dyn ReadSeek + '_>> {
        Ok(Box::new(Cursor::new(self.bytes.as_slice())))
    }
}

/// A content reader that can seek (zip indexes and ELF section tables sit anywhere in a file).
pub trait ReadSeek: Read + Seek {}

impl<T: Read + Seek> ReadSeek for T {}

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
