//! Installed npm packages.
//!
//! Files: the `package.json` at the root of each installed package, i.e. directly in a
//! `node_modules/<name>/` or `node_modules/@scope/<name>/` directory, at any depth (nested
//! `node_modules`, pnpm's `node_modules/.pnpm/<id>/node_modules/<name>/`, global installs in
//! `usr/local/lib/node_modules/`). Not the application's own `package.json` (outside
//! `node_modules`: it is not an installed dependency) and not `package.json` files deeper inside
//! a package (`node_modules/x/dist/esm/package.json` markers, test fixtures), which would
//! otherwise be reported as packages of their own.
//!
//! `name` and `version` are taken as written. A file that is not JSON, or lacks either field,
//! is skipped with a warning (counted by the caller): one broken file in `node_modules` must
//! not fail the scan of an image. Each package's `file_path` is its `package.json`.
//!
//! Also `node_modules/.package-lock.json`, the hidden lockfile npm 7+ writes to describe the
//! tree it installed: its `packages` map is keyed by the installed directory relative to the
//! project (`node_modules/a`, `node_modules/a/node_modules/@s/b`), each with a `version` (and a
//! `name` when the directory is an alias). It normally repeats what the `package.json` files
//! say, so it only fills gaps: **an entry is reported only when no package was read from the
//! `package.json` in its directory** (the file is absent from the image, or broken), with the
//! lockfile as its `file_path`. So no installed package is reported twice, and an image whose
//! build deleted the `package.json` files (or copied only the lockfile-described tree) is
//! still inventoried. `link` entries (workspace symlinks) and keys outside `node_modules` (the
//! project itself, workspace sources) are skipped; an entry without a `version` is skipped with
//! a warning. pnpm's and yarn's own state files are not read.

use std::collections::HashSet;

use serde_json::{Map, Value};

use super::{Analysis, Analyzer, AnalyzerError, AnalyzerWarning, FileSet, whole};
use crate::scanner::advisories::matcher::{InventoryPackage, PackageKind};

const NAME: &str = "npm";
const FILE: &str = "/package.json";
const NODE_MODULES: &str = "node_modules/";
const HIDDEN_LOCKFILE: &str = "node_modules/.package-lock.json";

/// See the module docs.
#[derive(Debug, Clone, Copy, Default)]
pub struct NpmAnalyzer;

impl Analyzer for NpmAnalyzer {
    fn name(&self) -> &'static str {
        NAME
    }

    fn version(&self) -> u32 {
        2
    }

    fn required(&self, path: &str) -> bool {
        is_package_json(path) || is_hidden_lockfile(path)
    }

    fn analyze(&self, files: &FileSet) -> Result<Analysis, AnalyzerError> {
        let mut analysis = Analysis::default();
        for (path, file) in files.iter().filter(|(p, _)| is_package_json(p)) {
            let Some(manifest) =
                json_object(path, &whole(NAME, path, file)?, &mut analysis.warnings)
            else {
                continue;
            };
            match (string(&manifest, "name"), string(&manifest, "version")) {
                (Some(name), Some(version)) => {
                    analysis.packages.push(InventoryPackage::language(
                        PackageKind::Npm,
                        name,
                        version,
                        path,
                        &file.layer_digest,
                    ));
                }
                (name, _) => analysis.warnings.push(AnalyzerWarning::new(
                    NAME,
                    path,
                    format!(
                        "no string \"{}\": skipped",
                        if name.is_none() { "name" } else { "version" }
                    ),
                )),
            }
        }
        let read: HashSet<String> = analysis
            .packages
            .iter()
            .filter_map(|p| p.file_path.as_deref()?.strip_suffix(FILE))
            .map(str::to_owned)
            .collect();
        for (path, file) in files.iter().filter(|(p, _)| is_hidden_lockfile(p)) {
            let bytes = whole(NAME, path, file)?;
            lockfile_packages(path, &bytes, &file.layer_digest, &read, &mut analysis);
        }
        Ok(analysis)
    }
}

/// The packages of a hidden lockfile whose directory gave none (see the module docs).
fn lockfile_packages(
    path: &str,
    bytes: &[u8],
    layer_digest: &str,
    read: &HashSet<String>,
    analysis: &mut Analysis,
) {
    let Some(lockfile) = json_object(path, bytes, &mut analysis.warnings) else {
        return;
    };
    let Some(Value::Object(entries)) = lockfile.get("packages") else {
        return;
    };
    let project = path.strip_suffix(HIDDEN_LOCKFILE).unwrap_or("");
    for (key, entry) in entries {
        let Some((above, installed)) = key.rsplit_once(NODE_MODULES) else {
            continue;
        };
        if installed.is_empty() || !(above.is_empty() || above.ends_with('/')) {
            continue;
        }
        let Value::Object(entry) = entry else {
            continue;
        };
        if entry.get("link").and_then(Value::as_bool) == Some(true)
            || read.contains(&format!("{project}{key}"))
        {
            continue;
        }
        let name = string(entry, "name").unwrap_or_else(|| installed.to_owned());
        match string(entry, "version") {
            Some(version) => analysis.packages.push(InventoryPackage::language(
                PackageKind::Npm,
                name,
                version,
                path,
                layer_digest,
            )),
            None => analysis.warnings.push(AnalyzerWarning::new(
                NAME,
                path,
                format!("entry {key:?} has no string \"version\": skipped"),
            )),
        }
    }
}

/// The JSON object a file holds (a leading BOM allowed), or a warning.
fn json_object(
    path: &str,
    bytes: &[u8],
    warnings: &mut Vec<AnalyzerWarning>,
) -> Option<Map<String, Value>> {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let reason = match serde_json::from_slice::<Value>(bytes) {
        Ok(Value::Object(m)) => return Some(m),
        Ok(_) => "not a JSON object".to_owned(),
        Err(e) => e.to_string(),
    };
    let kind = if is_hidden_lockfile(path) {
        "package-lock.json"
    } else {
        "package.json"
    };
    warnings.push(AnalyzerWarning::new(
        NAME,
        path,
        format!("not a valid {kind} ({reason}): skipped"),
    ));
    None
}

/// A non-empty string field, trimmed.
fn string(object: &Map<String, Value>, key: &str) -> Option<String> {
    object
        .get(key)
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

/// The `package.json` at the root of an installed package (see the module docs).
fn is_package_json(path: &str) -> bool {
    let Some(dir) = path.strip_suffix(FILE) else {
        return false;
    };
    let Some((parent, package)) = split_last(dir) else {
        return false;
    };
    if package.is_empty() || package.starts_with('.') {
        return false;
    }
    if is_node_modules(parent) {
        return !package.starts_with('@');
    }
    matches!(split_last(parent), Some((grand, scope))
        if scope.len() > 1 && scope.starts_with('@') && is_node_modules(grand))
}

fn is_hidden_lockfile(path: &str) -> bool {
    path == HIDDEN_LOCKFILE
        || path
            .strip_suffix(HIDDEN_LOCKFILE)
            .is_some_and(|project| project.ends_with('/'))
}

/// `(parent, last component)`; the parent of a one-component path is `""`.
fn split_last(path: &str) -> Option<(&str, &str)> {
    if path.is_empty() {
        return None;
    }
    Some(path.rsplit_once('/').unwrap_or(("", path)))
}

fn is_node_modules(dir: &str) -> bool {
    dir == "node_modules" || dir.ends_with("/node_modules")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scanner::analyzers::testutil::set;

    fn run(files: &FileSet) -> Analysis {
        NpmAnalyzer.analyze(files).unwrap()
    }

    #[test]
    fn required_truth_table() {
        for (path, want) in [
            ("app/node_modules/express/package.json", true),
            ("node_modules/express/package.json", true),
            ("app/node_modules/@babel/core/package.json", true),
            ("app/node_modules/a/node_modules/b/package.json", true),
            ("app/node_modules/a/node_modules/@s/b/package.json", true),
            ("usr/local/lib/node_modules/npm/package.json", true),
            (
                "usr/local/lib/node_modules/npm/node_modules/semver/package.json",
                true,
            ),
            (
                "app/node_modules/.pnpm/lodash@4.17.21/node_modules/lodash/package.json",
                true,
            ),
            ("app/package.json", false),
            ("package.json", false),
            ("app/node_modules/package.json", false),
            ("app/node_modules/@babel/package.json", false),
            ("app/node_modules/@/x/package.json", false),
            ("app/node_modules/express/lib/package.json", false),
            ("app/node_modules/express/dist/esm/package.json", false),
            ("app/node_modules/@babel/core/lib/package.json", false),
            ("app/node_modules/.bin/package.json", false),
            ("app/node_modules/.package-lock.json", true),
            ("node_modules/.package-lock.json", true),
            ("app/node_modules/x/node_modules/.package-lock.json", true),
            ("app/my_node_modules/.package-lock.json", false),
            ("app/package-lock.json", false),
            ("app/node_modules/.package-lock.json.bak", false),
            ("app/node_modules/.pnpm/lock.yaml", false),
            ("app/node_modules/express/package.json.bak", false),
            ("app/node_modules/express/package-lock.json", false),
            ("app/my_node_modules/express/package.json", false),
            ("app/node_modules/express/index.js", false),
            ("", false),
        ] {
            assert_eq!(NpmAnalyzer.required(path), want, "{path}");
        }
    }

    #[test]
    fn packages() {
        let a = run(&set(&[
            ("app/package.json", r#"{"name":"my-app","version":"1.0.0"}"#),
            (
                "app/node_modules/@babel/core/package.json",
                r#"{"name":"@babel/core","version":"7.24.0","dependencies":{"x":"1"}}"#,
            ),
            (
                "app/node_modules/express/package.json",
                "\u{feff}{\"version\": \"4.18.2\", \"name\": \"express\", \"private\": true}",
            ),
            (
                "app/node_modules/express/node_modules/debug/package.json",
                r#"{"name":"debug","version":"2.6.9"}"#,
            ),
            (
                "app/node_modules/express/lib/package.json",
                r#"{"type":"module"}"#,
            ),
        ]));
        let got: Vec<(&str, &str, Option<&str>)> = a
            .packages
            .iter()
            .map(|p| (p.name.as_str(), p.version.as_str(), p.file_path.as_deref()))
            .collect();
        assert_eq!(
            got,
            [
                (
                    "@babel/core",
                    "7.24.0",
                    Some("app/node_modules/@babel/core/package.json")
                ),
                (
                    "debug",
                    "2.6.9",
                    Some("app/node_modules/express/node_modules/debug/package.json")
                ),
                (
                    "express",
                    "4.18.2",
                    Some("app/node_modules/express/package.json")
                )
            ]
        );
        assert!(a.warnings.is_empty());
        assert!(a.packages.iter().all(
            |p| p.kind == PackageKind::Npm && p.layer_digest.as_deref() == Some("sha256:test")
        ));
    }

    #[test]
    fn broken_files_are_warnings() {
        let a = run(&set(&[
            ("node_modules/a/package.json", "{not json"),
            ("node_modules/b/package.json", r#"{"name":"b"}"#),
            ("node_modules/c/package.json", r#"{"version":"1.0.0"}"#),
            ("node_modules/d/package.json", r#"{"name":"d","version":1}"#),
            ("node_modules/e/package.json", r#"["name","version"]"#),
            ("node_modules/f/package.json", ""),
            (
                "node_modules/g/package.json",
                r#"{"name":"g","version":"1.0.0"}"#,
            ),
        ]));
        assert_eq!(a.packages.len(), 1);
        assert_eq!(a.packages[0].name, "g");
        let messages: Vec<(&str, bool)> = a
            .warnings
            .iter()
            .map(|w| {
                (
                    w.path.as_str(),
                    w.message.starts_with("not a valid package.json"),
                )
            })
            .collect();
        assert_eq!(
            messages,
            [
                ("node_modules/a/package.json", true),
                ("node_modules/b/package.json", false),
                ("node_modules/c/package.json", false),
                ("node_modules/d/package.json", false),
                ("node_modules/e/package.json", true),
                ("node_modules/f/package.json", true),
            ]
        );
        assert_eq!(a.warnings[1].message, "no string \"version\": skipped");
        assert_eq!(a.warnings[2].message, "no string \"name\": skipped");
    }

    fn found(a: &Analysis) -> Vec<(&str, &str, &str)> {
        a.packages
            .iter()
            .map(|p| {
                (
                    p.name.as_str(),
                    p.version.as_str(),
                    p.file_path.as_deref().unwrap_or(""),
                )
            })
            .collect()
    }

    /// Packages vendored inside other packages (npm's own bundled dependencies in a global
    /// install, a dependency's private copy of another version) are each reported, at every
    /// depth, with the `package.json` they were read from.
    #[test]
    fn vendored_packages_at_any_depth() {
        let a = run(&set(&[
            (
                "usr/local/lib/node_modules/npm/package.json",
                r#"{"name":"npm","version":"10.2.4","bundleDependencies":["semver"]}"#,
            ),
            (
                "usr/local/lib/node_modules/npm/node_modules/semver/package.json",
                r#"{"name":"semver","version":"7.5.4"}"#,
            ),
            (
                "usr/local/lib/node_modules/npm/node_modules/@npmcli/arborist/package.json",
                r#"{"name":"@npmcli/arborist","version":"7.2.1"}"#,
            ),
            (
                "usr/local/lib/node_modules/npm/node_modules/@npmcli/arborist/node_modules/semver/package.json",
                r#"{"name":"semver","version":"6.3.1"}"#,
            ),
            (
                "usr/local/lib/node_modules/npm/node_modules/semver/node_modules/lru-cache/package.json",
                r#"{"name":"lru-cache","version":"6.0.0"}"#,
            ),
        ]));
        let npm = "usr/local/lib/node_modules/npm";
        // In path order.
        let expected = [
            (
                "semver",
                "6.3.1",
                format!("{npm}/node_modules/@npmcli/arborist/node_modules/semver/package.json"),
            ),
            (
                "@npmcli/arborist",
                "7.2.1",
                format!("{npm}/node_modules/@npmcli/arborist/package.json"),
            ),
            (
                "lru-cache",
                "6.0.0",
                format!("{npm}/node_modules/semver/node_modules/lru-cache/package.json"),
            ),
            (
                "semver",
                "7.5.4",
                format!("{npm}/node_modules/semver/package.json"),
            ),
            ("npm", "10.2.4", format!("{npm}/package.json")),
        ];
        let expected: Vec<(&str, &str, &str)> = expected
            .iter()
            .map(|(n, v, p)| (*n, *v, p.as_str()))
            .collect();
        assert_eq!(found(&a), expected);
        assert!(a.warnings.is_empty());
    }

    /// npm 10's hidden lockfile (the shape `npm install` writes: lockfileVersion 3, keys
    /// relative to the project): entries whose `package.json` gave a package are not reported
    /// again; the others are, from the lockfile.
    #[test]
    fn hidden_lockfile_fills_gaps_only() {
        let lockfile = r#"{
  "name": "app",
  "lockfileVersion": 3,
  "requires": true,
  "packages": {
    "node_modules/express": {"version": "4.18.2", "resolved": "https://registry.npmjs.org/express/-/express-4.18.2.tgz", "integrity": "sha512-x"},
    "node_modules/express/node_modules/debug": {"version": "2.6.9"},
    "node_modules/@babel/core": {"version": "7.24.0", "dev": true},
    "node_modules/broken": {"version": "1.0.0"},
    "node_modules/string-width-cjs": {"name": "string-width", "version": "4.2.3"},
    "node_modules/my-workspace": {"resolved": "packages/my-workspace", "link": true},
    "packages/my-workspace": {"name": "my-workspace", "version": "0.1.0"},
    "packages/my-workspace/node_modules/ms": {"version": "2.1.3"},
    "node_modules/no-version": {"resolved": "x"},
    "node_modules/not-an-object": 7,
    "my_node_modules/x": {"version": "1"},
    "": {"name": "app", "version": "1.0.0"}
  }
}"#;
        let a = run(&set(&[
            ("app/node_modules/.package-lock.json", lockfile),
            (
                "app/node_modules/express/package.json",
                r#"{"name":"express","version":"4.18.2"}"#,
            ),
            ("app/node_modules/broken/package.json", "{"),
        ]));
        let lock = "app/node_modules/.package-lock.json";
        assert_eq!(
            found(&a),
            [
                ("express", "4.18.2", "app/node_modules/express/package.json"),
                // The lockfile's entries in key order.
                ("@babel/core", "7.24.0", lock),
                ("broken", "1.0.0", lock),
                ("debug", "2.6.9", lock),
                ("string-width", "4.2.3", lock),
                ("ms", "2.1.3", lock),
            ]
        );
        let warnings: Vec<(&str, &str)> = a
            .warnings
            .iter()
            .map(|w| (w.path.as_str(), w.message.as_str()))
            .collect();
        assert_eq!(warnings.len(), 2, "{warnings:?}");
        assert_eq!(warnings[0].0, "app/node_modules/broken/package.json");
        assert_eq!(
            warnings[1],
            (
                lock,
                "entry \"node_modules/no-version\" has no string \"version\": skipped"
            )
        );
        // A lockfile at the image root.
        let a = run(&set(&[(
            "node_modules/.package-lock.json",
            r#"{"packages":{"node_modules/a":{"version":"1.0.0"}}}"#,
        )]));
        assert_eq!(
            found(&a),
            [("a", "1.0.0", "node_modules/.package-lock.json")]
        );
    }

    #[test]
    fn broken_lockfiles_are_warnings() {
        for (content, message) in [
            ("{", "not a valid package-lock.json (EOF"),
            (
                "[]",
                "not a valid package-lock.json (not a JSON object): skipped",
            ),
        ] {
            let a = run(&set(&[("node_modules/.package-lock.json", content)]));
            assert!(a.packages.is_empty());
            assert_eq!(a.warnings.len(), 1);
            assert!(
                a.warnings[0].message.starts_with(message),
                "{}",
                a.warnings[0].message
            );
        }
        // No or odd `packages`: nothing, silently (lockfile v1 has `dependencies` only).
        for content in [
            r#"{"lockfileVersion":1,"dependencies":{}}"#,
            r#"{"packages":[]}"#,
        ] {
            assert_eq!(
                run(&set(&[("node_modules/.package-lock.json", content)])),
                Analysis::default()
            );
        }
    }
}
