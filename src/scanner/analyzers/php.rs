//! PHP packages installed by Composer.
//!
//! Files: `vendor/composer/installed.json`, at any depth, which Composer rewrites on every
//! install: Composer 2's `{"packages": [...]}` or Composer 1's top-level array. Each entry's
//! `name` and `version` become a Packagist package; development packages are installed too and
//! are reported like the others. The application's own `composer.json` / `composer.lock` are
//! not read (a lock file lists what would be installed, not what is).
//!
//! Versions are kept as Composer writes them (its "pretty" version, `v5.4.0` for a tag
//! `v5.4.0`): osv.dev's Packagist records list affected versions the same way (GHSA-77rm-9x9h-
//! xj3g lists `v3.10.0`), and the Packagist order ignores a leading `v`, so the version matches
//! both a listed version and a range. Names are kept as written (Composer writes them in lower
//! case; matching lowercases them anyway).
//!
//! An entry without a string `name` and `version` is skipped with a warning. A file that is
//! larger than 16 MiB, not JSON, nested too deep where it is read, or neither shape is
//! reported as unreadable ([`super::small_file`]).

use serde::Deserialize;

use super::small_file::{parse_json, read_capped};
use super::{Analysis, Analyzer, AnalyzerError, AnalyzerWarning, FileSet, UnreadableFile};
use crate::scanner::advisories::matcher::{InventoryPackage, PackageKind};

const NAME: &str = "php";
const FILE: &str = "vendor/composer/installed.json";
const MAX_INSTALLED_JSON: u64 = 16 * 1024 * 1024;

/// See the module docs.
#[derive(Debug, Clone, Copy, Default)]
pub struct PhpAnalyzer;

/// One entry; other fields are not read.
#[derive(Debug, Deserialize)]
struct Entry {
    name: Option<serde_json::Value>,
    version: Option<serde_json::Value>,
}

#[derive(Debug, Deserialize)]
struct Composer2 {
    packages: Vec<Entry>,
}

impl Analyzer for PhpAnalyzer {
    fn name(&self) -> &'static str {
        NAME
    }

    fn version(&self) -> u32 {
        1
    }

    fn required(&self, path: &str) -> bool {
        path == FILE
            || path
                .strip_suffix(FILE)
                .is_some_and(|parent| parent.ends_with('/'))
    }

    fn analyze(&self, files: &FileSet) -> Result<Analysis, AnalyzerError> {
        let mut analysis = Analysis::default();
        for (path, file) in files.iter().filter(|(p, _)| self.required(p)) {
            let entries = match read_capped(NAME, path, file, MAX_INSTALLED_JSON)
                .and_then(|bytes| entries(path, &bytes))
            {
                Ok(entries) => entries,
                Err(unreadable) => {
                    analysis.unreadable.push(unreadable);
                    continue;
                }
            };
            for (i, entry) in entries.into_iter().enumerate() {
                let text = |v: Option<serde_json::Value>| match v {
                    Some(serde_json::Value::String(s)) if !s.trim().is_empty() => {
                        Some(s.trim().to_owned())
                    }
                    _ => None,
                };
                match (text(entry.name), text(entry.version)) {
                    (Some(name), Some(version)) => {
                        analysis.packages.push(InventoryPackage::language(
                            PackageKind::Packagist,
                            name,
                            version,
                            path,
                            &file.layer_digest,
                        ))
                    }
                    (name, _) => analysis.warnings.push(AnalyzerWarning::new(
                        NAME,
                        path,
                        format!(
                            "package {i} has no string \"{}\": skipped",
                            if name.is_none() { "name" } else { "version" }
                        ),
                    )),
                }
            }
        }
        Ok(analysis)
    }
}

/// The entries of either format, told apart by the document's first character.
fn entries(path: &str, bytes: &[u8]) -> Result<Vec<Entry>, UnreadableFile> {
    let first = bytes
        .strip_prefix(b"\xEF\xBB\xBF")
        .unwrap_or(bytes)
        .iter()
        .find(|b| !b.is_ascii_whitespace());
    if first == Some(&b'[') {
        parse_json::<Vec<Entry>>(NAME, path, bytes)
    } else {
        parse_json::<Composer2>(NAME, path, bytes).map(|doc| doc.packages)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scanner::analyzers::CollectedFile;
    use crate::scanner::analyzers::testutil::{crate_fixture, set};

    fn run(files: &FileSet) -> Analysis {
        PhpAnalyzer.analyze(files).unwrap()
    }

    fn listed(a: &Analysis) -> Vec<(&str, &str, PackageKind, &str)> {
        a.packages
            .iter()
            .map(|p| {
                (
                    p.name.as_str(),
                    p.version.as_str(),
                    p.kind,
                    p.file_path.as_deref().unwrap(),
                )
            })
            .collect()
    }

    #[test]
    fn required_truth_table() {
        for (path, want) in [
            ("vendor/composer/installed.json", true),
            ("var/www/html/vendor/composer/installed.json", true),
            ("root/.composer/vendor/composer/installed.json", true),
            ("var/www/myvendor/composer/installed.json", false),
            ("var/www/vendor/composer/installed.php", false),
            ("var/www/vendor/composer/installed.json.bak", false),
            ("var/www/composer.lock", false),
            ("var/www/vendor/acme/composer/installed.json", false),
            ("", false),
        ] {
            assert_eq!(PhpAnalyzer.required(path), want, "{path}");
        }
    }

    /// syft's Composer 1 and Composer 2 `installed.json` fixtures
    /// (tests/fixtures/syft/PROVENANCE.md): two packages each, `asm89/stack-cors` 1.3.0 and
    /// `behat/mink` v1.8.1 (read from the files: `"name"` / `"version"` of each entry).
    #[test]
    fn syft_composer_1_and_2() {
        let mut files = FileSet::new();
        for (version, path) in [
            ("composer_1", "srv/app1/vendor/composer/installed.json"),
            ("composer_2", "srv/app2/vendor/composer/installed.json"),
        ] {
            let rel = format!("syft/php/{version}/installed.json");
            let bytes = std::fs::read(crate_fixture(&rel)).unwrap();
            files.insert(path, CollectedFile::new(bytes, "sha256:l1"));
        }
        let a = run(&files);
        assert!(a.warnings.is_empty(), "{:?}", a.warnings);
        assert!(a.unreadable.is_empty(), "{:?}", a.unreadable);
        let p = PackageKind::Packagist;
        assert_eq!(
            listed(&a),
            [
                (
                    "asm89/stack-cors",
                    "1.3.0",
                    p,
                    "srv/app1/vendor/composer/installed.json"
                ),
                (
                    "behat/mink",
                    "v1.8.1",
                    p,
                    "srv/app1/vendor/composer/installed.json"
                ),
                (
                    "asm89/stack-cors",
                    "1.3.0",
                    p,
                    "srv/app2/vendor/composer/installed.json"
                ),
                (
                    "behat/mink",
                    "v1.8.1",
                    p,
                    "srv/app2/vendor/composer/installed.json"
                ),
            ]
        );
        assert!(
            a.packages
                .iter()
                .all(|p| p.layer_digest.as_deref() == Some("sha256:l1") && p.owner.is_none())
        );
    }

    #[test]
    fn bad_entries_are_warnings() {
        let a = run(&set(&[(
            "vendor/composer/installed.json",
            r#"{"packages":[{"name":"a/a","version":"1.0"},{"name":"b/b"},{"version":"2"},
               {"name":"c/c","version":3},{"name":" ","version":"1"}],"dev":true}"#,
        )]));
        assert_eq!(
            listed(&a),
            [(
                "a/a",
                "1.0",
                PackageKind::Packagist,
                "vendor/composer/installed.json"
            )]
        );
        let messages: Vec<&str> = a.warnings.iter().map(|w| w.message.as_str()).collect();
        assert_eq!(
            messages,
            [
                "package 1 has no string \"version\": skipped",
                "package 2 has no string \"name\": skipped",
                "package 3 has no string \"version\": skipped",
                "package 4 has no string \"name\": skipped",
            ]
        );
    }

    #[test]
    fn unreadable_files() {
        let bomb_array = "[".repeat(10_000) + &"]".repeat(10_000);
        let bomb_field = format!(
            "{{\"packages\":[{{\"name\":\"a/a\",\"version\":\"1\",\"extra\":{bomb_array}}}]}}"
        );
        let mut files = set(&[
            ("a/vendor/composer/installed.json", "{not json"),
            ("b/vendor/composer/installed.json", r#"{"dev":true}"#),
            ("c/vendor/composer/installed.json", "\"packages\""),
            ("d/vendor/composer/installed.json", &bomb_array),
            ("e/vendor/composer/installed.json", &bomb_field),
            ("f/vendor/composer/installed.json", "[]"),
        ]);
        let mut big = br#"{"packages":[{"name":"a/a","version":"1"}]}"#.to_vec();
        big.resize(16 * 1024 * 1024 + 1, b' ');
        files.insert(
            "g/vendor/composer/installed.json",
            CollectedFile::new(big, "sha256:l"),
        );
        let a = run(&files);
        // serde_json skips an ignored value without recursing: no limit, no stack overflow.
        let got: Vec<(&str, &str)> = a
            .packages
            .iter()
            .map(|p| (p.name.as_str(), p.file_path.as_deref().unwrap()))
            .collect();
        assert_eq!(got, [("a/a", "e/vendor/composer/installed.json")]);
        assert!(a.warnings.is_empty());
        let got: Vec<(&str, &str)> = a
            .unreadable
            .iter()
            .map(|u| (u.path.as_str(), u.code))
            .collect();
        assert_eq!(
            got,
            [
                ("a/vendor/composer/installed.json", "Malformed"),
                ("b/vendor/composer/installed.json", "Malformed"),
                ("c/vendor/composer/installed.json", "Malformed"),
                ("d/vendor/composer/installed.json", "TooDeep"),
                ("g/vendor/composer/installed.json", "TooLarge"),
            ]
        );
        assert!(a.unreadable.iter().all(|u| u.analyzer == "php"));
    }
}
