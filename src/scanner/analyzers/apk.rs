//! Alpine (and Wolfi, Chainguard, ...) packages from the apk database.
//!
//! File: `lib/apk/db/installed`, or `usr/lib/apk/db/installed` (apk-tools 3 moves the database
//! there and leaves `lib/apk` as a symlink); when both are regular files, the `usr/lib` one is
//! read and the other ignored with a warning.
//!
//! Syntax: records separated by blank lines; each line `X:value` with a one-letter key. `P:`
//! name, `V:` version, `o:` origin (the source package the matcher uses). A non-blank line that
//! is not `X:value` fails the analysis (syft's `corrupt` and osv-scalibr's `invalid` fixtures
//! fail there too); a record without `P:` or `V:` is skipped with a warning (trivy's Alpine 3.4
//! fixture has one). Each package's `file_path` is the database read.
//!
//! File lists ([`super::owners`]): in a record, an `F:` line names a directory (relative to the
//! root) and the `R:` lines after it the files in it; the package owns both.

use super::{Analysis, Analyzer, AnalyzerError, AnalyzerWarning, FileOwners, FileSet, text, whole};
use crate::scanner::advisories::matcher::{InventoryPackage, PackageKind};

const NAME: &str = "apk";
/// In order of preference.
const PATHS: [&str; 2] = ["usr/lib/apk/db/installed", "lib/apk/db/installed"];

/// See the module docs.
#[derive(Debug, Clone, Copy, Default)]
pub struct ApkAnalyzer;

impl Analyzer for ApkAnalyzer {
    fn name(&self) -> &'static str {
        NAME
    }

    fn version(&self) -> u32 {
        2
    }

    fn required(&self, path: &str) -> bool {
        PATHS.contains(&path)
    }

    fn analyze(&self, files: &FileSet) -> Result<Analysis, AnalyzerError> {
        let mut analysis = Analysis::default();
        let mut found = PATHS.iter().filter_map(|p| files.get(p).map(|f| (*p, f)));
        let Some((path, file)) = found.next() else {
            return Ok(analysis);
        };
        for (other, _) in found {
            analysis.warnings.push(AnalyzerWarning::new(
                NAME,
                other,
                format!("ignored: {path} is the apk database"),
            ));
        }
        let records = parse(&text(&whole(NAME, path, file)?))
            .map_err(|e| AnalyzerError::new(NAME, path, e))?;
        for record in records {
            let field = |key: char| {
                record
                    .fields
                    .iter()
                    .find(|(k, _)| *k == key)
                    .map(|(_, v)| v.trim())
                    .filter(|v| !v.is_empty())
            };
            match (field('P'), field('V')) {
                (Some(name), Some(version)) => {
                    analysis.packages.push(InventoryPackage {
                        kind: PackageKind::Apk,
                        name: name.to_owned(),
                        version: version.to_owned(),
                        source_name: field('o').map(str::to_owned),
                        source_version: None,
                        layer_digest: Some(file.layer_digest.clone()),
                        file_path: Some(path.to_owned()),
                        owner: None,
                    });
                    add_files(&record, name, &mut analysis.file_owners);
                }
                (name, _) => analysis.warnings.push(AnalyzerWarning::new(
                    NAME,
                    path,
                    format!(
                        "record at line {} ({}) has no {}: skipped",
                        record.line,
                        name.map_or_else(|| "no name".to_owned(), |n| format!("{n:?}")),
                        if name.is_none() { "P:" } else { "V:" }
                    ),
                )),
            }
        }
        if let Some(warning) = analysis.file_owners.limit_warning(NAME, path) {
            analysis.warnings.push(warning);
        }
        Ok(analysis)
    }
}

/// The record's `F:` directories and `R:` files (each joined to the `F:` before it).
fn add_files(record: &Record, name: &str, owners: &mut FileOwners) {
    let owner = owners.package(name);
    let mut dir = "";
    for (key, value) in &record.fields {
        match *key {
            'F' => {
                dir = value.as_str();
                owners.insert(dir, owner);
            }
            'R' if dir.is_empty() => owners.insert(value, owner),
            'R' => owners.insert(&format!("{dir}/{value}"), owner),
            _ => {}
        }
    }
}

struct Record {
    /// 1-based line of its first field.
    line: usize,
    fields: Vec<(char, String)>,
}

fn parse(text: &str) -> Result<Vec<Record>, String> {
    let mut out = Vec::new();
    let mut current: Option<Record> = None;
    for (i, raw) in text.lines().enumerate() {
        let line = raw.strip_suffix('\r').unwrap_or(raw);
        if line.trim().is_empty() {
            out.extend(current.take());
            continue;
        }
        let mut chars = line.chars();
        let (Some(key), Some(':')) = (chars.next(), chars.next()) else {
            return Err(format!(
                "line {}: expected \"X:value\", found {:?}",
                i + 1,
                line.chars().take(80).collect::<String>()
            ));
        };
        if !key.is_ascii_alphabetic() {
            return Err(format!("line {}: invalid key {key:?}", i + 1));
        }
        current
            .get_or_insert_with(|| Record {
                line: i + 1,
                fields: Vec::new(),
            })
            .fields
            .push((key, chars.as_str().to_owned()));
    }
    out.extend(current);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scanner::analyzers::CollectedFile;
    use crate::scanner::analyzers::testutil::{LAYER, fixture_at, fixture_tree, read, set};

    const DB: &str = "lib/apk/db/installed";

    fn run(files: &FileSet) -> Analysis {
        ApkAnalyzer.analyze(files).unwrap()
    }

    /// Independent counts: `P:` and `V:` lines.
    fn count(rel: &str, prefix: &str) -> usize {
        String::from_utf8_lossy(&read(rel))
            .lines()
            .filter(|l| l.starts_with(prefix))
            .count()
    }

    fn pkg(name: &str, version: &str, origin: Option<&str>) -> InventoryPackage {
        InventoryPackage {
            kind: PackageKind::Apk,
            name: name.to_owned(),
            version: version.to_owned(),
            source_name: origin.map(str::to_owned),
            source_version: None,
            layer_digest: Some(LAYER.to_owned()),
            file_path: Some(DB.to_owned()),
            owner: None,
        }
    }

    #[test]
    fn required_truth_table() {
        for (path, want) in [
            ("lib/apk/db/installed", true),
            ("usr/lib/apk/db/installed", true),
            ("lib/apk/db/installed.new", false),
            ("lib/apk/db/lock", false),
            ("lib/apk/db/scripts.tar", false),
            ("etc/apk/world", false),
            ("/lib/apk/db/installed", false),
            ("var/lib/apk/db/installed", false),
            ("x/lib/apk/db/installed", false),
            ("", false),
        ] {
            assert_eq!(ApkAnalyzer.required(path), want, "{path}");
        }
    }

    /// Every image-layout fixture: one package per record, each with its origin.
    #[test]
    fn image_fixtures() {
        for (root, want) in [
            ("pkgdb/alpine/apk-tools-alpine-3.21", 39),
            ("pkgdb/alpine/grype-match-coverage", 3),
            ("pkgdb/alpine/scalibr-alpine-3.18", 15),
            ("pkgdb/alpine/syft-alpine-3.16", 14),
        ] {
            let rel = format!("{root}/{DB}");
            let a = run(&fixture_tree(root));
            assert_eq!(a.packages.len(), want, "{root}");
            assert_eq!(count(&rel, "P:"), want, "{root}");
            assert_eq!(count(&rel, "o:"), want, "{root}");
            assert!(a.packages.iter().all(|p| p.source_name.is_some()), "{root}");
            assert!(a.warnings.is_empty(), "{root}");
        }
        let a = run(&fixture_tree("pkgdb/alpine/scalibr-alpine-3.18"));
        for want in [
            pkg("busybox", "1.36.0-r9", Some("busybox")),
            pkg("libcrypto3", "3.1.0-r4", Some("openssl")),
            pkg("musl", "1.2.4-r0", Some("musl")),
        ] {
            assert!(a.packages.contains(&want), "{want:?}");
        }
        let a = run(&fixture_tree("pkgdb/alpine/syft-alpine-3.16"));
        assert!(
            a.packages
                .contains(&pkg("libcrypto1.1", "1.1.1q-r0", Some("openssl")))
        );
        assert!(
            a.packages
                .contains(&pkg("busybox", "1.35.0-r17", Some("busybox")))
        );
    }

    #[test]
    fn trivy_alpine_3_4_skips_record_without_version() {
        let root = "pkgdb/alpine/trivy-alpine-3.4";
        let a = run(&fixture_tree(root));
        let rel = format!("{root}/{DB}");
        assert_eq!((count(&rel, "P:"), count(&rel, "V:")), (16, 15));
        assert_eq!(a.packages.len(), 15);
        assert_eq!(a.warnings.len(), 1);
        assert!(
            a.warnings[0]
                .message
                .contains("invalidPackageWithoutAVersion")
        );
        assert!(a.warnings[0].message.contains("no V:"));
        assert!(
            a.packages
                .contains(&pkg("musl", "1.1.14-r10", Some("musl")))
        );
        assert!(
            a.packages
                .contains(&pkg("busybox", "1.24.2-r9", Some("busybox")))
        );
    }

    #[test]
    fn unit_fixtures() {
        let at = |rel: &str| fixture_at(rel, DB);
        assert_eq!(
            run(&at("pkgdb/alpine/scalibr-apk/empty")),
            Analysis::default()
        );
        for rel in [
            "pkgdb/alpine/scalibr-apk/invalid",
            "pkgdb/alpine/syft-apk/corrupt",
        ] {
            let err = ApkAnalyzer.analyze(&at(rel)).unwrap_err();
            assert_eq!((err.analyzer, err.path.as_str()), (NAME, DB), "{rel}");
            assert!(err.reason.starts_with("line 1: expected"), "{rel}: {err}");
        }
        assert_eq!(
            run(&at("pkgdb/alpine/scalibr-apk/no-origin")).packages,
            vec![pkg("pkgname", "1.2.3", None)]
        );
        for rel in [
            "pkgdb/alpine/scalibr-apk/single",
            "pkgdb/alpine/scalibr-apk/different-arch",
        ] {
            assert_eq!(
                run(&at(rel)).packages,
                vec![pkg(
                    "alpine-baselayout-data",
                    "3.4.3-r1",
                    Some("alpine-baselayout")
                )],
                "{rel}"
            );
        }
        for (rel, want) in [
            (
                "pkgdb/alpine/syft-apk/base",
                pkg("alpine-baselayout", "3.2.0-r6", Some("alpine-baselayout")),
            ),
            (
                "pkgdb/alpine/syft-apk/empty-deps-and-provides",
                pkg(
                    "alpine-baselayout-data",
                    "3.4.0-r0",
                    Some("alpine-baselayout"),
                ),
            ),
            (
                "pkgdb/alpine/syft-apk/extra-file-attributes",
                pkg("openjdk8-jre", "8.212.04-r0", Some("openjdk8")),
            ),
            (
                "pkgdb/alpine/syft-apk/single",
                pkg("musl-utils", "1.1.24-r2", Some("musl")),
            ),
        ] {
            let a = run(&at(rel));
            assert_eq!(a.packages, vec![want], "{rel}");
            assert!(a.warnings.is_empty(), "{rel}");
        }
        let a = run(&at("pkgdb/alpine/syft-apk/multiple-1"));
        assert_eq!(
            a.packages
                .iter()
                .map(|p| p.name.as_str())
                .collect::<Vec<_>>(),
            ["bash", "busybox-binsh", "musl", "readline"]
        );
        assert_eq!(
            a.packages.len(),
            count("pkgdb/alpine/syft-apk/multiple-1", "P:")
        );
        assert_eq!(a.packages[1].source_name.as_deref(), Some("busybox"));
    }

    /// Every `F:` directory and every `R:` file under it (joined) is owned by its record's
    /// package: checked against an independent walk of the real databases.
    #[test]
    fn file_lists() {
        for root in [
            "pkgdb/alpine/apk-tools-alpine-3.21",
            "pkgdb/alpine/scalibr-alpine-3.18",
            "pkgdb/alpine/syft-alpine-3.16",
        ] {
            let a = run(&fixture_tree(root));
            let text = String::from_utf8(read(&format!("{root}/{DB}"))).unwrap();
            let (mut package, mut dir) = ("", "");
            let mut expected: Vec<(String, &str)> = Vec::new();
            for line in text.lines() {
                let path = if let Some(p) = line.strip_prefix("P:") {
                    package = p;
                    continue;
                } else if let Some(d) = line.strip_prefix("F:") {
                    dir = d;
                    d.to_owned()
                } else if let Some(f) = line.strip_prefix("R:") {
                    format!("{dir}/{f}")
                } else {
                    continue;
                };
                if !expected.iter().any(|(p, _)| *p == path) {
                    expected.push((path, package));
                }
            }
            assert!(expected.len() > 100, "{root}: {}", expected.len());
            assert_eq!(a.file_owners.len(), expected.len(), "{root}");
            for (path, owner) in &expected {
                assert_eq!(a.file_owners.owner(path), Some(*owner), "{root}: {path}");
            }
        }
        let a = run(&fixture_tree("pkgdb/alpine/scalibr-alpine-3.18"));
        assert_eq!(a.file_owners.owner("lib/ld-musl-x86_64.so.1"), Some("musl"));
        assert_eq!(a.file_owners.owner("bin/busybox"), Some("busybox"));
    }

    #[test]
    fn file_lines_outside_a_directory_and_skipped_records() {
        let a = run(&set(&[(
            DB,
            "P:a\nV:1\nR:top-level\nF:usr/bin\nR:a\nF:etc\nR:a.conf\n\nV:2\nF:opt\nR:orphan\n",
        )]));
        assert_eq!(a.file_owners.len(), 5);
        for path in ["top-level", "usr/bin", "usr/bin/a", "etc", "etc/a.conf"] {
            assert_eq!(a.file_owners.owner(path), Some("a"), "{path}");
        }
        assert_eq!(a.file_owners.owner("opt/orphan"), None);
    }

    #[test]
    fn usr_lib_preferred() {
        let mut files = set(&[("lib/apk/db/installed", "P:old\nV:1-r0\n")]);
        files.insert(
            "usr/lib/apk/db/installed",
            CollectedFile::new(
                &b"P:new\r\nV:2-r0\r\no:newsrc\r\n\r\nP:other\nV:3-r0\n"[..],
                "sha256:usr",
            ),
        );
        let a = run(&files);
        assert_eq!(
            a.packages
                .iter()
                .map(|p| (
                    p.name.as_str(),
                    p.version.as_str(),
                    p.layer_digest.as_deref()
                ))
                .collect::<Vec<_>>(),
            [
                ("new", "2-r0", Some("sha256:usr")),
                ("other", "3-r0", Some("sha256:usr"))
            ]
        );
        assert_eq!(a.packages[0].source_name.as_deref(), Some("newsrc"));
        assert_eq!(a.warnings.len(), 1);
        assert_eq!(a.warnings[0].path, "lib/apk/db/installed");
        // Only the old path.
        let a = run(&set(&[("lib/apk/db/installed", "P:old\nV:1-r0\n")]));
        assert_eq!(a.packages.len(), 1);
        assert!(a.warnings.is_empty());
    }

    #[test]
    fn syntax_errors() {
        for (input, line) in [("P:a\nV:1\n\n1:x\n", 4), ("P:a\nPV\n", 2), ("P:a\n:x\n", 2)] {
            let err = ApkAnalyzer.analyze(&set(&[(DB, input)])).unwrap_err();
            assert!(
                err.reason.starts_with(&format!("line {line}:")),
                "{input:?}: {err}"
            );
        }
        // A record without P: is skipped with a warning.
        let a = run(&set(&[(DB, "V:1\no:x\n\nP:b\nV:2\n")]));
        assert_eq!(a.packages.len(), 1);
        assert!(a.warnings[0].message.contains("no P:"), "{:?}", a.warnings);
    }
}
