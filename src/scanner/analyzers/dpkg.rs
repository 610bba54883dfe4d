//! Debian / Ubuntu packages from the dpkg database.
//!
//! Files: `var/lib/dpkg/status`, and the distroless layout `var/lib/dpkg/status.d/<name>`
//! (one file per package, each one or more stanzas; the `<name>.md5sums` files beside them are
//! not stanzas). Only those exact paths are read: a `status` file elsewhere (a vcpkg
//! `installed/vcpkg/status`, which uses the same syntax with `Type: Port` records for Windows
//! libraries) is never mistaken for the image's dpkg database. Each package's `file_path` is
//! the file its stanza was read from.
//!
//! File lists ([`super::owners`]): `var/lib/dpkg/info/<name>.list` and
//! `var/lib/dpkg/info/<name>:<arch>.list` (one absolute path per line, directories included,
//! written by dpkg on unpack), and in the distroless layout, which has no `.list` files,
//! `var/lib/dpkg/status.d/<name>.md5sums` (`<md5>  <relative path>` per regular file), whose
//! owner is the package read from `status.d/<name>`. Only lists of packages reported as
//! installed are read (a `config-files` package's leftover list owns nothing).
//!
//! Syntax (deb822): stanzas separated by blank lines; `Field: value` lines; continuation lines
//! start with a space or tab; field names are case-insensitive; `#` lines are comments. A line
//! that is none of these, a continuation before any field, or a field given twice in a stanza
//! is a syntax error and fails the analysis (syft and osv-scalibr fail on their `corrupt` and
//! `invalid` fixtures too).
//!
//! Per stanza:
//! * `Package` and `Version` are required; a stanza without one of them, or whose `Version` is
//!   not a valid dpkg version, is skipped with a warning. This is what trivy's `corrupsed`
//!   fixture (our `trivy-corrupted`) tests: the four good packages are kept, the stanza without
//!   a version and the one with version `1:5.#` are dropped.
//! * `Status: want flag state`: the package is reported when its *state* (third word) says its
//!   files are on disk: `installed`, `triggers-awaited`, `triggers-pending`, `half-configured`,
//!   `unpacked`. `not-installed`, `config-files` (only conffiles left) and `half-installed` are
//!   not reported. The first word is an intent (`deinstall ok installed` is still installed).
//!   A `Status` that is not three words is reported (with a warning): refusing a package because
//!   its state is oddly shaped would be a silent miss. A stanza without `Status` (every
//!   distroless `status.d` entry) is installed.
//! * `Source: name` or `Source: name (version)` gives the source package and, for binNMUs and
//!   the like, its version.

use std::collections::HashSet;

use super::{Analysis, Analyzer, AnalyzerError, AnalyzerWarning, FileSet, text, whole};
use crate::scanner::advisories::matcher::{InventoryPackage, PackageKind};

const NAME: &str = "dpkg";
const STATUS: &str = "var/lib/dpkg/status";
const STATUS_D: &str = "var/lib/dpkg/status.d/";
const INFO: &str = "var/lib/dpkg/info/";
const LIST: &str = ".list";
const MD5SUMS: &str = ".md5sums";

/// See the module docs.
#[derive(Debug, Clone, Copy, Default)]
pub struct DpkgAnalyzer;

impl Analyzer for DpkgAnalyzer {
    fn name(&self) -> &'static str {
        NAME
    }

    fn version(&self) -> u32 {
        2
    }

    fn required(&self, path: &str) -> bool {
        if path == STATUS {
            return true;
        }
        if let Some(name) = path.strip_prefix(STATUS_D) {
            return is_status_d_entry(name) || is_direct_child(name, MD5SUMS);
        }
        path.strip_prefix(INFO)
            .is_some_and(|name| is_direct_child(name, LIST))
    }

    fn analyze(&self, files: &FileSet) -> Result<Analysis, AnalyzerError> {
        let mut analysis = Analysis::default();
        let status = files.get(STATUS).map(|f| (STATUS, f));
        let status_d = files
            .with_prefix(STATUS_D)
            .filter(|(path, _)| path.strip_prefix(STATUS_D).is_some_and(is_status_d_entry));
        // The md5sums file of each status.d file, with the first package read from it.
        let mut status_d_lists: Vec<(String, String)> = Vec::new();
        for (path, file) in status.into_iter().chain(status_d) {
            let stanzas = parse(&text(&whole(NAME, path, file)?))
                .map_err(|e| AnalyzerError::new(NAME, path, e.to_string()))?;
            let mut lists_owner = path != STATUS;
            for stanza in &stanzas {
                match package(stanza) {
                    Ok(Some((pkg, warning))) => {
                        if let Some(message) = warning {
                            analysis
                                .warnings
                                .push(AnalyzerWarning::new(NAME, path, message));
                        }
                        if lists_owner {
                            status_d_lists.push((format!("{path}{MD5SUMS}"), pkg.name.clone()));
                            lists_owner = false;
                        }
                        analysis.packages.push(InventoryPackage {
                            layer_digest: Some(file.layer_digest.clone()),
                            file_path: Some(path.to_owned()),
                            ..pkg
                        });
                    }
                    Ok(None) => {}
                    Err(message) => analysis
                        .warnings
                        .push(AnalyzerWarning::new(NAME, path, message)),
                }
            }
        }
        read_file_lists(files, &mut analysis, &status_d_lists)?;
        if let Some(warning) = analysis.file_owners.limit_warning(NAME, INFO) {
            analysis.warnings.push(warning);
        }
        Ok(analysis)
    }
}

/// Fills `analysis.file_owners` from the `.list` files of the installed packages and the
/// distroless `.md5sums` files (see the module docs).
fn read_file_lists(
    files: &FileSet,
    analysis: &mut Analysis,
    status_d_lists: &[(String, String)],
) -> Result<(), AnalyzerError> {
    let installed: HashSet<&str> = analysis.packages.iter().map(|p| p.name.as_str()).collect();
    let owners = &mut analysis.file_owners;
    for (path, file) in files.with_prefix(INFO) {
        let Some(stem) = path
            .strip_prefix(INFO)
            .filter(|name| is_direct_child(name, LIST))
            .and_then(|name| name.strip_suffix(LIST))
        else {
            continue;
        };
        let name = stem.split_once(':').map_or(stem, |(name, _arch)| name);
        if !installed.contains(name) {
            continue;
        }
        let owner = owners.package(name);
        for line in text(&whole(NAME, path, file)?).lines() {
            owners.insert(line, owner);
        }
    }
    for (path, name) in status_d_lists {
        let Some(file) = files.get(path) else {
            continue;
        };
        let owner = owners.package(name);
        for line in text(&whole(NAME, path, file)?).lines() {
            if let Some((_md5, listed)) = line.split_once(char::is_whitespace) {
                owners.insert(listed.trim_start(), owner);
            }
        }
    }
    Ok(())
}

/// A direct child of `status.d/` that is a stanza file (not `*.md5sums`, not in a subdirectory).
fn is_status_d_entry(name: &str) -> bool {
    !name.is_empty() && !name.contains('/') && !name.ends_with(MD5SUMS)
}

/// A file `<stem><suffix>` directly in the directory, with a non-empty stem.
fn is_direct_child(name: &str, suffix: &str) -> bool {
    !name.contains('/') && name.len() > suffix.len() && name.ends_with(suffix)
}

/// One deb822 paragraph.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Stanza {
    /// 1-based line of its first field.
    pub line: usize,
    /// Field names as written, values with continuation lines joined by `\n`.
    pub fields: Vec<(String, String)>,
}

impl Stanza {
    /// The trimmed value of a field (case-insensitive name); `None` when absent or empty.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.trim())
            .filter(|v| !v.is_empty())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {reason}")]
pub(super) struct SyntaxError {
    pub line: usize,
    pub reason: String,
}

/// Splits a control file into stanzas (see the module docs for the syntax).
pub(super) fn parse(text: &str) -> Result<Vec<Stanza>, SyntaxError> {
    let mut out = Vec::new();
    let mut current: Option<Stanza> = None;
    for (i, raw) in text.lines().enumerate() {
        let n = i + 1;
        let line = raw.strip_suffix('\r').unwrap_or(raw);
        if line.trim().is_empty() {
            out.extend(current.take());
            continue;
        }
        if line.starts_with('#') {
            continue;
        }
        if line.starts_with([' ', '\t']) {
            let Some((_, value)) = current.as_mut().and_then(|s| s.fields.last_mut()) else {
                return Err(SyntaxError {
                    line: n,
                    reason: "continuation line without a field before it".to_owned(),
                });
            };
            value.push('\n');
            value.push_str(line.trim());
            continue;
        }
        let Some((name, value)) = line.split_once(':') else {
            return Err(SyntaxError {
                line: n,
                reason: format!("expected \"Field: value\", found {:?}", truncate(line)),
            });
        };
        if name.is_empty() || name.contains(char::is_whitespace) {
            return Err(SyntaxError {
                line: n,
                reason: format!("invalid field name in {:?}", truncate(line)),
            });
        }
        let stanza = current.get_or_insert_with(|| Stanza {
            line: n,
            fields: Vec::new(),
        });
        if stanza
            .fields
            .iter()
            .any(|(f, _)| f.eq_ignore_ascii_case(name))
        {
            return Err(SyntaxError {
                line: n,
                reason: format!(
                    "duplicate field {name:?} in the stanza of line {}",
                    stanza.line
                ),
            });
        }
        stanza
            .fields
            .push((name.to_owned(), value.trim().to_owned()));
    }
    out.extend(current);
    Ok(out)
}

fn truncate(line: &str) -> String {
    line.chars().take(80).collect()
}

/// The states whose package files are on disk.
const ON_DISK_STATES: &[&str] = &[
    "installed",
    "triggers-awaited",
    "triggers-pending",
    "half-configured",
    "unpacked",
];

/// The package a stanza describes: `Ok(None)` when it is not installed, `Err` (a warning) when
/// it is skipped, `Ok(Some((package, warning)))` otherwise. `layer_digest` is left empty.
type Parsed = Result<Option<(InventoryPackage, Option<String>)>, String>;

fn package(stanza: &Stanza) -> Parsed {
    let Some(name) = stanza.get("Package") else {
        return Err(format!(
            "stanza at line {} has no Package: skipped",
            stanza.line
        ));
    };
    let Some(version) = stanza.get("Version") else {
        return Err(format!(
            "package {name:?} (line {}) has no Version: skipped",
            stanza.line
        ));
    };
    let mut warning = None;
    if let Some(status) = stanza.get("Status") {
        let words: Vec<&str> = status.split_whitespace().collect();
        match words.as_slice() {
            [_, _, state] => {
                if !ON_DISK_STATES.contains(state) {
                    return Ok(None);
                }
            }
            _ => {
                warning = Some(format!(
                    "package {name:?} (line {}): unexpected Status {status:?}, reported as installed",
                    stanza.line
                ));
            }
        }
    }
    if let Err(e) = crate::scanner::versions::dpkg::validate(version) {
        return Err(format!(
            "package {name:?} (line {}): {e}: skipped",
            stanza.line
        ));
    }
    let (source_name, source_version) = match stanza.get("Source") {
        None => (None, None),
        Some(source) => parse_source(source),
    };
    Ok(Some((
        InventoryPackage {
            kind: PackageKind::Dpkg,
            name: name.to_owned(),
            version: version.to_owned(),
            source_name,
            source_version,
            layer_digest: None,
            file_path: None,
            owner: None,
        },
        warning,
    )))
}

/// `name` or `name (version)`.
fn parse_source(source: &str) -> (Option<String>, Option<String>) {
    match source.split_once(char::is_whitespace) {
        None => (Some(source.to_owned()), None),
        Some((name, rest)) => {
            let version = rest
                .trim()
                .strip_prefix('(')
                .and_then(|v| v.strip_suffix(')'))
                .map(str::trim)
                .filter(|v| !v.is_empty())
                .map(str::to_owned);
            (Some(name.to_owned()), version)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scanner::analyzers::testutil::{LAYER, fixture_at, fixture_tree, read, set};

    fn run(files: &FileSet) -> Analysis {
        DpkgAnalyzer.analyze(files).unwrap()
    }

    fn names(a: &Analysis) -> Vec<&str> {
        a.packages.iter().map(|p| p.name.as_str()).collect()
    }

    fn pkg(
        name: &str,
        version: &str,
        source: Option<&str>,
        source_version: Option<&str>,
    ) -> InventoryPackage {
        InventoryPackage {
            kind: PackageKind::Dpkg,
            name: name.to_owned(),
            version: version.to_owned(),
            source_name: source.map(str::to_owned),
            source_version: source_version.map(str::to_owned),
            layer_digest: Some(LAYER.to_owned()),
            file_path: Some(STATUS.to_owned()),
            owner: None,
        }
    }

    /// [`pkg`] read from another file.
    fn read_from(path: &str, pkg: InventoryPackage) -> InventoryPackage {
        InventoryPackage {
            file_path: Some(path.to_owned()),
            ..pkg
        }
    }

    /// Independent count: `Package:` lines of the file that have a non-empty value.
    fn package_lines(rel: &str) -> usize {
        String::from_utf8_lossy(&read(rel))
            .lines()
            .filter(|l| {
                l.strip_prefix("Package:")
                    .is_some_and(|v| !v.trim().is_empty())
            })
            .count()
    }

    #[test]
    fn required_truth_table() {
        let a = DpkgAnalyzer;
        for (path, want) in [
            ("var/lib/dpkg/status", true),
            ("var/lib/dpkg/status.d/libc6", true),
            ("var/lib/dpkg/status.d/base-files", true),
            ("var/lib/dpkg/status.d/libssl3.md5sums", true),
            ("var/lib/dpkg/status.d/.md5sums", false),
            ("var/lib/dpkg/status.d/sub/x.md5sums", false),
            ("var/lib/dpkg/status.d/", false),
            ("var/lib/dpkg/status.d", false),
            ("var/lib/dpkg/status.d/sub/x", false),
            ("var/lib/dpkg/status-old", false),
            ("var/lib/dpkg/status.bak", false),
            ("var/lib/dpkg/available", false),
            ("var/lib/dpkg/info/libc6.list", true),
            ("var/lib/dpkg/info/libc6:amd64.list", true),
            ("var/lib/dpkg/info/.list", false),
            ("var/lib/dpkg/info/libc6.md5sums", false),
            ("var/lib/dpkg/info/libc6.postinst", false),
            ("var/lib/dpkg/info/libc6.list-old", false),
            ("var/lib/dpkg/info/sub/libc6.list", false),
            ("var/lib/dpkg/info.list", false),
            ("usr/var/lib/dpkg/info/libc6.list", false),
            ("/var/lib/dpkg/status", false),
            ("usr/var/lib/dpkg/status", false),
            ("status", false),
            ("opt/vcpkg/installed/vcpkg/status", false),
            ("installed/vcpkg/status", false),
            ("", false),
        ] {
            assert_eq!(a.required(path), want, "{path}");
        }
    }

    #[test]
    fn syntax() {
        let stanzas = parse(
            "Package: a\r\nDescription: first\n  second line\n\tthird\n# comment\nversion: 1\n\n\n  \nPackage: b\nVersion:2\n",
        )
        .unwrap();
        assert_eq!(stanzas.len(), 2);
        assert_eq!(stanzas[0].line, 1);
        assert_eq!(
            stanzas[0].get("description"),
            Some("first\nsecond line\nthird")
        );
        assert_eq!(stanzas[0].get("VERSION"), Some("1"));
        assert_eq!(stanzas[1].line, 10);
        assert_eq!(stanzas[1].get("Version"), Some("2"));
        assert_eq!(parse("").unwrap(), Vec::new());
        assert_eq!(parse("\n\n\n").unwrap(), Vec::new());

        for (input, line) in [
            (" continuation first\n", 1),
            ("Package: a\n\n continuation after blank\n", 3),
            ("Package: a\nno colon here\n", 2),
            ("Package: a\n: empty name\n", 2),
            ("Package: a\nBad Name: x\n", 2),
            ("Package: a\nVersion: 1\npackage: b\n", 3),
        ] {
            let err = parse(input).unwrap_err();
            assert_eq!(err.line, line, "{input:?}: {err}");
        }
    }

    #[test]
    fn source_field() {
        assert_eq!(parse_source("pam"), (Some("pam".to_owned()), None));
        assert_eq!(
            parse_source("gcc-5 (5.1.1-12ubuntu1)"),
            (Some("gcc-5".to_owned()), Some("5.1.1-12ubuntu1".to_owned()))
        );
        assert_eq!(
            parse_source("libselinux  ( 3.4-1 )"),
            (Some("libselinux".to_owned()), Some("3.4-1".to_owned()))
        );
        assert_eq!(parse_source("foo ()"), (Some("foo".to_owned()), None));
        assert_eq!(parse_source("foo garbage"), (Some("foo".to_owned()), None));
    }

    #[test]
    fn trivy_corrupted_keeps_good_stanzas() {
        let a = run(&fixture_tree("pkgdb/debian/trivy-corrupted"));
        // trivy's expectation for this fixture (dpkg analyzer test "corrupsed").
        assert_eq!(
            a.packages,
            vec![
                pkg("libpam-runtime", "1.1.8-3.1ubuntu3", Some("pam"), None),
                pkg("libpam-modules-bin", "1.1.8-3.1ubuntu3", Some("pam"), None),
                pkg("makedev", "2.3.1-93ubuntu1", None, None),
                pkg(
                    "libgcc1",
                    "1:5.1.1-12ubuntu1",
                    Some("gcc-5"),
                    Some("5.1.1-12ubuntu1")
                ),
            ]
        );
        assert_eq!(a.warnings.len(), 2, "{:?}", a.warnings);
        assert!(
            a.warnings[0]
                .message
                .contains("brokenPackageWithNoVersionThatShouldGetThrownOut")
        );
        assert!(a.warnings[1].message.contains("invalidpkg"));
        assert!(
            a.warnings
                .iter()
                .all(|w| w.path == STATUS && w.analyzer == NAME)
        );
        assert_eq!(
            package_lines("pkgdb/debian/trivy-corrupted/var/lib/dpkg/status"),
            a.packages.len() + a.warnings.len()
        );
    }

    /// Fixtures where every stanza is installed and valid: one package per `Package:` line.
    #[test]
    fn clean_status_files() {
        for (root, want) in [
            ("pkgdb/debian/claircore-debian-only", 1),
            ("pkgdb/debian/claircore-postgresql-deb10", 3),
            ("pkgdb/debian/grype-match-coverage", 1),
            ("pkgdb/debian/trivy-digest", 2),
            ("pkgdb/debian/trivy-dpkg_apt", 1),
            ("pkgdb/debian/trivy-third-party", 2),
            ("pkgdb/ubuntu/claircore-texlive-18.04", 357),
        ] {
            let a = run(&fixture_tree(root));
            assert_eq!(a.packages.len(), want, "{root}");
            assert_eq!(
                package_lines(&format!("{root}/var/lib/dpkg/status")),
                want,
                "{root}"
            );
            assert!(a.warnings.is_empty(), "{root}: {:?}", a.warnings);
            assert!(
                a.packages
                    .iter()
                    .all(|p| p.layer_digest.as_deref() == Some(LAYER))
            );
        }
    }

    #[test]
    fn ubuntu_18_04_skips_config_files_only() {
        let root = "pkgdb/ubuntu/trivy-ubuntu-18.04";
        let a = run(&fixture_tree(root));
        let text = String::from_utf8(read(&format!("{root}/var/lib/dpkg/status"))).unwrap();
        let stanzas =
            text.matches("\nPackage: ").count() + usize::from(text.starts_with("Package: "));
        let config_files = text
            .matches("\nStatus: deinstall ok config-files\n")
            .count();
        assert_eq!((stanzas, config_files), (91, 1));
        assert_eq!(a.packages.len(), stanzas - config_files);
        assert!(a.warnings.is_empty());
        // The claircore Ubuntu 18.04 index report spells bsdutils' source like this; we split it.
        let bsdutils = a.packages.iter().find(|p| p.name == "bsdutils").unwrap();
        assert_eq!(bsdutils.source_name.as_deref(), Some("util-linux"));
        assert!(bsdutils.version.starts_with("1:"));
        assert_eq!(
            Some(bsdutils.version.trim_start_matches("1:")),
            bsdutils.source_version.as_deref()
        );
        // Every package name is unique and every version parses.
        let mut seen = std::collections::HashSet::new();
        for p in &a.packages {
            assert!(seen.insert(&p.name), "{}", p.name);
        }
    }

    #[test]
    fn third_party_epoch() {
        let a = run(&fixture_tree("pkgdb/debian/trivy-third-party"));
        let docker = a.packages.iter().find(|p| p.name == "docker-ce").unwrap();
        assert_eq!(docker.version, "5:20.10.7~3-0~debian-buster");
    }

    #[test]
    fn texlive_multiline_fields() {
        let a = run(&fixture_tree("pkgdb/ubuntu/claircore-texlive-18.04"));
        // Every name is non-empty and has no field syntax leaking into it.
        for p in &a.packages {
            assert!(!p.name.contains([':', ' ', '\n']), "{:?}", p.name);
            assert!(!p.version.contains([' ', '\n']), "{:?}", p.version);
        }
        let with_source = a
            .packages
            .iter()
            .filter(|p| p.source_name.is_some())
            .count();
        let text = String::from_utf8(read(
            "pkgdb/ubuntu/claircore-texlive-18.04/var/lib/dpkg/status",
        ))
        .unwrap();
        assert_eq!(
            with_source,
            text.lines().filter(|l| l.starts_with("Source: ")).count()
        );
    }

    #[test]
    fn scalibr_fixtures() {
        let at = |name: &str| fixture_at(&format!("pkgdb/debian/scalibr-dpkg/{name}"), STATUS);
        // empty: nothing, no error.
        assert_eq!(run(&at("empty")), Analysis::default());
        // invalid: "asdf" is not a field line.
        let err = DpkgAnalyzer.analyze(&at("invalid")).unwrap_err();
        assert_eq!((err.analyzer, err.path.as_str()), (NAME, STATUS));
        assert!(err.reason.starts_with("line 1: expected"), "{err}");
        assert!(
            err.to_string()
                .starts_with("dpkg analyzer: var/lib/dpkg/status: line 1")
        );
        // nopackage / noversion: the bad stanza is skipped with a warning.
        let a = run(&at("nopackage"));
        assert_eq!(names(&a), ["foo", "bar"]);
        assert_eq!(a.warnings.len(), 1);
        assert!(a.warnings[0].message.contains("line 5"), "{:?}", a.warnings);
        let a = run(&at("noversion"));
        assert_eq!(names(&a), ["foo", "bar"]);
        assert_eq!(a.warnings.len(), 1);
        assert!(a.warnings[0].message.contains("\"acl\""));
        // single, trailingnewlines: one package.
        for name in ["single", "trailingnewlines"] {
            let a = run(&at(name));
            assert_eq!(
                a.packages,
                vec![pkg("acl", "2.3.1-3", None, None)],
                "{name}"
            );
        }
        // transitional packages are still packages.
        assert_eq!(
            run(&at("transitional")).packages,
            vec![pkg(
                "iceweasel",
                "78.13.0esr-1~deb10u1",
                Some("firefox-esr"),
                None
            )]
        );
        assert_eq!(
            run(&at("transitional_dummy")).packages,
            vec![pkg("git-core", "1:2.14.2-1", Some("git"), None)]
        );
        assert_eq!(
            run(&at("transitional_empty")).packages,
            vec![pkg(
                "runit-systemd",
                "2.1.2-54+usrmerge",
                Some("runit"),
                None
            )]
        );
        // valid: every stanza.
        let a = run(&at("valid"));
        assert_eq!(
            a.packages.len(),
            package_lines("pkgdb/debian/scalibr-dpkg/valid")
        );
        assert_eq!(a.packages.len(), 7);
        assert!(a.warnings.is_empty());
    }

    #[test]
    fn status_field_states() {
        let a = run(&fixture_at("pkgdb/debian/scalibr-dpkg/statusfield", STATUS));
        assert_eq!(
            names(&a),
            [
                "wantinstall_installed",
                "wantdeinstall_installed",
                "wantinstall_unpacked",
                "wantpurge_installed",
                "wantnostatus",
            ]
        );
        let files = set(&[(
            STATUS,
            "Package: a\nStatus: install ok triggers-pending\nVersion: 1\n\n\
             Package: b\nStatus: install ok half-configured\nVersion: 1\n\n\
             Package: c\nStatus: install reinstreq half-installed\nVersion: 1\n\n\
             Package: d\nStatus: purge ok not-installed\nVersion: 1\n\n\
             Package: e\nStatus: installed\nVersion: 1\n\n\
             Package: f\nStatus: install ok triggers-awaited\nVersion: 1\n",
        )]);
        let a = run(&files);
        assert_eq!(names(&a), ["a", "b", "e", "f"]);
        assert_eq!(a.warnings.len(), 1);
        assert!(a.warnings[0].message.contains("\"e\""));
    }

    #[test]
    fn status_d() {
        // scalibr: a status.d file without Status is installed; config-files is not.
        let a = run(&fixture_at(
            "pkgdb/debian/scalibr-dpkg/status.d/foo",
            "var/lib/dpkg/status.d/foo",
        ));
        assert_eq!(a.packages.len(), 1);
        assert_eq!(a.packages[0].name, "foo");
        assert_eq!(a.packages[0].version, "1.2.3");

        // syft distroless: the md5sums file beside the stanza file is its file list.
        let root = "pkgdb/debian/syft-distroless";
        let files = fixture_tree(root);
        assert_eq!(files.len(), 2);
        let a = run(&files);
        assert_eq!(a.packages.len(), 1);
        assert_eq!(a.packages[0].name, "libsqlite3-0");
        assert_eq!(a.packages[0].source_name.as_deref(), Some("sqlite3"));
        assert_eq!(
            a.packages[0].file_path.as_deref(),
            Some("var/lib/dpkg/status.d/libsqlite3-0")
        );
        assert!(a.warnings.is_empty());
        let md5sums = String::from_utf8(read(&format!(
            "{root}/var/lib/dpkg/status.d/libsqlite3-0.md5sums"
        )))
        .unwrap();
        assert_eq!(a.file_owners.len(), md5sums.lines().count());
        for line in md5sums.lines() {
            let (_md5, path) = line.split_once("  ").unwrap();
            assert_eq!(a.file_owners.owner(path), Some("libsqlite3-0"), "{line}");
        }
        assert_eq!(
            a.file_owners
                .owner("usr/lib/aarch64-linux-gnu/libsqlite3.so.0.8.6"),
            Some("libsqlite3-0")
        );
    }

    /// The `.list` files dpkg wrote when it unpacked Debian 12's python3-idna and
    /// python3-urllib3: every line but the root `/.` is a file or directory of the package; a
    /// directory both list (`/usr`) keeps the first one read.
    #[test]
    fn info_list_files() {
        let files = super::super::testutil::crate_fixture_tree("debian-python");
        let a = run(&files);
        assert_eq!(names(&a), ["python3-idna", "python3-urllib3"]);
        let mut expected: Vec<(String, &str)> = Vec::new();
        for name in ["python3-idna", "python3-urllib3"] {
            let list = files.get(&format!("{INFO}{name}.list")).unwrap();
            let text = String::from_utf8(list.bytes().unwrap().to_vec()).unwrap();
            assert_eq!(text.lines().next(), Some("/."));
            for line in text.lines().skip(1) {
                let path = line.strip_prefix('/').unwrap().to_owned();
                if !expected.iter().any(|(p, _)| *p == path) {
                    expected.push((path, name));
                }
            }
        }
        assert_eq!(a.file_owners.len(), expected.len());
        for (path, owner) in &expected {
            assert_eq!(a.file_owners.owner(path), Some(*owner), "{path}");
        }
        assert_eq!(
            a.file_owners
                .owner("usr/lib/python3/dist-packages/idna-3.3.egg-info/PKG-INFO"),
            Some("python3-idna")
        );
        assert_eq!(
            a.file_owners
                .owner("usr/lib/python3/dist-packages/urllib3-1.26.12.egg-info/PKG-INFO"),
            Some("python3-urllib3")
        );
        assert_eq!(a.file_owners.owner("usr"), Some("python3-idna"));
    }

    #[test]
    fn list_files_of_installed_packages_only() {
        let a = run(&set(&[
            (
                STATUS,
                "Package: libc6\nStatus: install ok installed\nVersion: 2.36-9\n\n\
                 Package: gone\nStatus: deinstall ok config-files\nVersion: 1\n",
            ),
            (
                "var/lib/dpkg/info/libc6:amd64.list",
                "/.\n/lib\n/lib/libc.so.6\n",
            ),
            ("var/lib/dpkg/info/gone.list", "/etc/gone.conf\n"),
            ("var/lib/dpkg/info/never-installed.list", "/opt/x\n"),
            ("var/lib/dpkg/info/libc6.md5sums", "0123  usr/lib/other\n"),
        ]));
        assert_eq!(names(&a), ["libc6"]);
        assert_eq!(a.file_owners.len(), 2);
        assert_eq!(a.file_owners.owner("lib/libc.so.6"), Some("libc6"));
        assert_eq!(a.file_owners.owner("lib"), Some("libc6"));
        assert_eq!(a.file_owners.owner("etc/gone.conf"), None);
        assert_eq!(a.file_owners.owner("opt/x"), None);
        assert_eq!(a.file_owners.owner("usr/lib/other"), None);

        // Distroless: the md5sums owner is the package its stanza file names; a md5sums file
        // without a stanza file, or whose stanza file gave no package, owns nothing.
        let a = run(&set(&[
            (
                "var/lib/dpkg/status.d/libssl",
                "Package: libssl3\nVersion: 3.0.11-1\n",
            ),
            (
                "var/lib/dpkg/status.d/libssl.md5sums",
                "d41d8cd98f00b204e9800998ecf8427e  usr/lib/x86_64-linux-gnu/libssl.so.3\n\
                 d41d8cd98f00b204e9800998ecf8427e  usr/share/doc/libssl3/a file\n\
                 no-path-here\n",
            ),
            ("var/lib/dpkg/status.d/orphan.md5sums", "0  opt/orphan\n"),
            ("var/lib/dpkg/status.d/broken", "Package: broken\n"),
            ("var/lib/dpkg/status.d/broken.md5sums", "0  opt/broken\n"),
        ]));
        assert_eq!(names(&a), ["libssl3"]);
        assert_eq!(a.file_owners.len(), 2);
        assert_eq!(
            a.file_owners.owner("usr/lib/x86_64-linux-gnu/libssl.so.3"),
            Some("libssl3")
        );
        assert_eq!(
            a.file_owners.owner("usr/share/doc/libssl3/a file"),
            Some("libssl3")
        );
    }

    #[test]
    fn syft_status_d_files() {
        let root = "pkgdb/debian/syft-status.d";
        let dir = "var/lib/dpkg/status.d";
        let one = |name: &str| {
            DpkgAnalyzer.analyze(&fixture_at(
                &format!("{root}/{dir}/{name}"),
                &format!("{dir}/{name}"),
            ))
        };
        // corrupt: syft expects an error too.
        let err = one("corrupt").unwrap_err();
        assert_eq!(err.path, "var/lib/dpkg/status.d/corrupt");
        assert!(err.reason.starts_with("line 5:"), "{err}");

        let a = one("coreutils-relationships").unwrap();
        assert_eq!(a.packages.len(), 9);
        assert_eq!(
            a.packages.len(),
            package_lines(&format!("{root}/{dir}/coreutils-relationships"))
        );
        let selinux = a.packages.iter().find(|p| p.name == "libselinux1").unwrap();
        assert_eq!(
            (
                selinux.source_name.as_deref(),
                selinux.source_version.as_deref()
            ),
            (Some("libselinux"), Some("3.4-1"))
        );

        let a = one("deinstall").unwrap();
        assert_eq!(names(&a), ["linux-image-6.14.0-1012-aws"]);
        assert_eq!(
            a.packages[0].source_name.as_deref(),
            Some("linux-signed-aws-6.14")
        );

        // Stanzas that only name a package (dependency placeholders) are skipped with warnings.
        let a = one("doc-examples").unwrap();
        assert_eq!(
            names(&a),
            [
                "mutt",
                "made-up-package-1",
                "made-up-package-2",
                "made-up-package-3",
                "made-up-package-4"
            ]
        );
        assert_eq!(
            a.packages.len() + a.warnings.len(),
            package_lines(&format!("{root}/{dir}/doc-examples"))
        );

        let a = one("libpam-runtime").unwrap();
        assert_eq!(
            a.packages,
            vec![read_from(
                "var/lib/dpkg/status.d/libpam-runtime",
                pkg("libpam-runtime", "1.5.2-6+deb12u1", Some("pam"), None)
            )]
        );
        assert_eq!(a.warnings.len(), 5);

        let a = one("multiple").unwrap();
        assert_eq!(names(&a), ["tzdata", "util-linux"]);
        assert_eq!(a.packages[0].source_name.as_deref(), Some("tzdata-dev"));
        assert_eq!(a.warnings.len(), 2, "empty Package: and no-version");

        let a = one("single").unwrap();
        assert_eq!(
            a.packages,
            vec![read_from(
                "var/lib/dpkg/status.d/single",
                pkg("apt", "1.8.2", Some("apt-dev"), None)
            )]
        );

        // The whole directory at once fails because of `corrupt`, naming it.
        let err = DpkgAnalyzer.analyze(&fixture_tree(root)).unwrap_err();
        assert_eq!(err.path, "var/lib/dpkg/status.d/corrupt");
    }

    #[test]
    fn syft_image_dpkg() {
        let a = run(&fixture_tree("pkgdb/debian/syft-image-dpkg"));
        assert_eq!(
            a.packages,
            vec![pkg("libpam-runtime", "1.1.8-3.6", Some("pam"), None)]
        );
        assert_eq!(a.warnings.len(), 1, "the empty `Package:` stanza");
    }

    #[test]
    fn status_and_status_d_layers() {
        let mut files = FileSet::new();
        files.insert(
            STATUS,
            super::super::CollectedFile::new(
                &b"Package: a\nStatus: install ok installed\nVersion: 1\n"[..],
                "sha256:base",
            ),
        );
        files.insert(
            "var/lib/dpkg/status.d/b",
            super::super::CollectedFile::new(&b"Package: b\nVersion: 2\n"[..], "sha256:l2"),
        );
        files.insert(
            "var/lib/dpkg/status.d/c",
            super::super::CollectedFile::new(&b"Package: c\nVersion: 3\n"[..], "sha256:l3"),
        );
        files.insert(
            "var/lib/dpkg/status.d/c.md5sums",
            super::super::CollectedFile::new(
                &b"d41d8cd98f00b204e9800998ecf8427e  usr/bin/c\n"[..],
                "sha256:l3",
            ),
        );
        let a = run(&files);
        let got: Vec<(&str, Option<&str>)> = a
            .packages
            .iter()
            .map(|p| (p.name.as_str(), p.layer_digest.as_deref()))
            .collect();
        assert_eq!(
            got,
            [
                ("a", Some("sha256:base")),
                ("b", Some("sha256:l2")),
                ("c", Some("sha256:l3"))
            ]
        );
    }

    /// The vcpkg `status` file is not at a dpkg path, so it is never collected
    /// (`required_truth_table`). Were it placed at `var/lib/dpkg/status`, it would parse (it is
    /// deb822): the records with a `Version` become packages, the feature records without one
    /// are skipped with warnings; nothing in the format tells a misplaced vcpkg database apart.
    #[test]
    fn vcpkg_status_is_not_collected() {
        let rel = "pkgdb/debian/claircore-vcpkg-not-dpkg/status";
        let tree = fixture_tree("pkgdb/debian/claircore-vcpkg-not-dpkg");
        assert!(tree.iter().all(|(p, _)| !DpkgAnalyzer.required(p)));
        assert_eq!(run(&tree), Analysis::default());
        let a = run(&fixture_at(rel, STATUS));
        let text = String::from_utf8(read(rel)).unwrap();
        let versions = text.lines().filter(|l| l.starts_with("Version: ")).count();
        assert_eq!(a.packages.len(), versions);
        assert_eq!(a.packages.len() + a.warnings.len(), package_lines(rel));
    }

    /// The opkg status files use the same syntax.
    #[test]
    fn opkg_fixtures_parse() {
        for (name, want) in [("single", 1), ("valid", 3)] {
            let a = run(&fixture_at(
                &format!("pkgdb/opkg/scalibr-opkg/{name}"),
                STATUS,
            ));
            assert_eq!(a.packages.len(), want, "{name}");
        }
        let a = run(&fixture_at("pkgdb/opkg/scalibr-opkg/statusfield", STATUS));
        assert_eq!(
            names(&a),
            [
                "wantinstall_installed",
                "wantinstall_unpacked",
                "wantpurge_installed",
                "wantnostatus"
            ]
        );
        assert_eq!(
            package_lines("pkgdb/opkg/scalibr-opkg/statusfield"),
            6,
            "2 not on disk"
        );
    }
}
