//! Test helpers: fixture trees as [`FileSet`]s, small inline file sets.

use std::path::{Path, PathBuf};

use super::{CollectedFile, FileSet};
use crate::scanner::advisories::matcher::{InventoryPackage, PackageKind};

/// The layer digest every fixture file is given.
pub const LAYER: &str = "sha256:fixture";

pub fn fixture(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/fixtures")
        .join(rel)
}

pub fn read(rel: &str) -> Vec<u8> {
    let path = fixture(rel);
    std::fs::read(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

pub fn read_json(rel: &str) -> serde_json::Value {
    serde_json::from_slice(&read(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// A fixture kept in this crate's `tests/fixtures/` (rather than the shared fixtures).
pub fn crate_fixture(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(rel)
}

/// Every file under the fixture directory `root`, keyed by its path relative to `root` (so a
/// fixture laid out as an image root gives image paths), all in layer [`LAYER`].
pub fn fixture_tree(root: &str) -> FileSet {
    tree_at(&fixture(root))
}

/// [`fixture_tree`] of a fixture kept with the crate, under `tests/fixtures/`.
pub fn crate_fixture_tree(root: &str) -> FileSet {
    tree_at(&crate_fixture(root))
}

/// [`fixture_tree`] for any directory.
pub fn tree_at(base: &Path) -> FileSet {
    fn walk(dir: &Path, base: &Path, out: &mut FileSet) {
        let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|e| e.unwrap().path())
            .collect();
        entries.sort();
        for path in entries {
            if path.is_dir() {
                walk(&path, base, out);
            } else {
                let rel = path.strip_prefix(base).unwrap();
                let key = rel
                    .components()
                    .map(|c| c.as_os_str().to_string_lossy().into_owned())
                    .collect::<Vec<_>>()
                    .join("/");
                out.insert(
                    key,
                    CollectedFile::new(std::fs::read(&path).unwrap(), LAYER),
                );
            }
        }
    }
    assert!(base.is_dir(), "{}", base.display());
    let mut out = FileSet::new();
    walk(base, base, &mut out);
    out
}

/// One fixture file placed at an image path.
pub fn fixture_at(rel: &str, image_path: &str) -> FileSet {
    let mut out = FileSet::new();
    out.insert(image_path, CollectedFile::new(read(rel), LAYER));
    out
}

/// Files with binary content, all in layer [`LAYER`].
pub fn binary_set(files: &[(&str, Vec<u8>)]) -> FileSet {
    let mut out = FileSet::new();
    for (path, bytes) in files {
        out.insert(*path, CollectedFile::new(bytes.clone(), LAYER));
    }
    out
}

/// A language package as an analyzer reports it from the file at `path` in layer [`LAYER`].
pub fn found_at(kind: PackageKind, name: &str, version: &str, path: &str) -> InventoryPackage {
    InventoryPackage::language(kind, name, version, path, LAYER)
}

/// Inline files, all in layer `sha256:test`.
pub fn set(files: &[(&str, &str)]) -> FileSet {
    let mut out = FileSet::new();
    for (path, content) in files {
        out.insert(*path, CollectedFile::new(content.as_bytes(), "sha256:test"));
    }
    out
}
