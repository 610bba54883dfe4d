//! Test-only readers for the shared fixtures: OSV records (files and zip bundles), os-release,
//! and minimal dpkg / apk database readers (the real analyzers live elsewhere).

use std::io::Read;
use std::path::{Path, PathBuf};

use super::ecosystem::OsRelease;
use super::matcher::{InventoryPackage, PackageKind};

pub fn fixture(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/fixtures")
        .join(rel)
}

pub fn read_bytes(rel: &str) -> Vec<u8> {
    let path = fixture(rel);
    std::fs::read(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

pub fn read_json(rel: &str) -> serde_json::Value {
    serde_json::from_slice(&read_bytes(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// Every file under `osv/records/` (relative paths, sorted).
pub fn record_files() -> Vec<String> {
    fn walk(dir: &Path, root: &Path, out: &mut Vec<String>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, root, out);
            } else {
                out.push(
                    path.strip_prefix(root)
                        .unwrap()
                        .to_string_lossy()
                        .into_owned(),
                );
            }
        }
    }
    let root = fixture("osv/records");
    let mut out = Vec::new();
    walk(&root, &root, &mut out);
    out.sort();
    out
}

/// `(file name, bytes)` of every entry of a zip bundle under `osv/`.
pub fn zip_entries(rel: &str) -> Vec<(String, Vec<u8>)> {
    let file = std::fs::File::open(fixture(rel)).unwrap();
    let mut archive = zip::ZipArchive::new(file).unwrap();
    let mut out = Vec::with_capacity(archive.len());
    for i in 0..archive.len() {
        let mut entry = archive.by_index(i).unwrap();
        if entry.is_dir() {
            continue;
        }
        let mut bytes = Vec::with_capacity(entry.size() as usize);
        entry.read_to_end(&mut bytes).unwrap();
        out.push((entry.name().unwrap().into_owned(), bytes));
    }
    out
}

/// Parses an os-release file (only the fields that choose an ecosystem).
pub fn os_release(rel: &str) -> OsRelease {
    let text = String::from_utf8(read_bytes(rel)).unwrap();
    let mut os = OsRelease::default();
    for line in text.lines() {
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        let value = value.trim().trim_matches('"').to_owned();
        match key.trim() {
            "ID" => os.id = value,
            "VERSION_ID" => os.version_id = Some(value),
            "ID_LIKE" => os.id_like = value.split_whitespace().map(str::to_owned).collect(),
            "PRETTY_NAME" => os.pretty_name = Some(value),
            _ => {}
        }
    }
    os
}

/// Minimal dpkg `status` reader: installed stanzas with `Package` and `Version`;
/// `Source: name (version)` gives the source name and version.
pub fn dpkg_status(rel: &str, layer: &str) -> Vec<InventoryPackage> {
    let text = String::from_utf8(read_bytes(rel)).unwrap();
    let mut out = Vec::new();
    for stanza in text.split("\n\n") {
        let field = |name: &str| {
            stanza.lines().find_map(|l| {
                l.strip_prefix(name)
                    .and_then(|r| r.strip_prefix(':'))
                    .map(|v| v.trim().to_owned())
            })
        };
        let (Some(name), Some(version)) = (field("Package"), field("Version")) else {
            continue;
        };
        if field("Status").is_some_and(|s| !s.ends_with(" installed")) {
            continue;
        }
        let (source_name, source_version) = match field("Source") {
            Some(src) => match src.split_once(" (") {
                Some((n, v)) => (Some(n.to_owned()), Some(v.trim_end_matches(')').to_owned())),
                None => (Some(src), None),
            },
            None => (None, None),
        };
        out.push(InventoryPackage {
            kind: PackageKind::Dpkg,
            name,
            version,
            source_name,
            source_version,
            layer_digest: Some(layer.to_owned()),
            file_path: None,
            owner: None,
        });
    }
    out
}

/// Minimal apk `installed` reader: `P:` name, `V:` version, `o:` origin.
pub fn apk_installed(rel: &str, layer: &str) -> Vec<InventoryPackage> {
    let text = String::from_utf8(read_bytes(rel)).unwrap();
    let mut out = Vec::new();
    for stanza in text.split("\n\n") {
        let field = |key: &str| {
            stanza
                .lines()
                .find_map(|l| l.strip_prefix(key).map(str::to_owned))
        };
        let (Some(name), Some(version)) = (field("P:"), field("V:")) else {
            continue;
        };
        out.push(InventoryPackage {
            kind: PackageKind::Apk,
            name,
            version,
            source_name: field("o:"),
            source_version: None,
            layer_digest: Some(layer.to_owned()),
            file_path: None,
            owner: None,
        });
    }
    out
}
