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
//! not fail the scan of an image.

use super::{Analysis, Analyzer, AnalyzerError, AnalyzerWarning, FileSet, whole};
use crate::scanner::advisories::matcher::{InventoryPackage, PackageKind};

const NAME: &str = "npm";
const FILE: &str = "/package.json";

/// See the module docs.
#[derive(Debug, Clone, Copy, Default)]
pub struct NpmAnalyzer;

impl Analyzer for NpmAnalyzer {
    fn name(&self) -> &'static str {
        NAME
    }

    fn version(&self) -> u32 {
        1
    }

    fn required(&self, path: &str) -> bool {
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

    fn analyze(&self, files: &FileSet) -> Result<Analysis, AnalyzerError> {
        let mut analysis = Analysis::default();
        for (path, file) in files.iter().filter(|(p, _)| self.required(p)) {
            let whole = whole(NAME, path, file)?;
            let bytes = whole.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(&whole);
            let manifest = match serde_json::from_slice::<serde_json::Value>(bytes) {
                Ok(serde_json::Value::Object(m)) => m,
                Ok(_) => {
                    analysis.warnings.push(AnalyzerWarning::new(
                        NAME,
                        path,
                        "not a valid package.json (not a JSON object): skipped",
                    ));
                    continue;
                }
                Err(e) => {
                    analysis.warnings.push(AnalyzerWarning::new(
                        NAME,
                        path,
                        format!("not a valid package.json ({e}): skipped"),
                    ));
                    continue;
                }
            };
            let field = |key: &str| {
                manifest
                    .get(key)
                    .and_then(serde_json::Value::as_str)
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned)
            };
            match (field("name"), field("version")) {
                (Some(name), Some(version)) => analysis.packages.push(InventoryPackage {
                    kind: PackageKind::Npm,
                    name,
                    version,
                    source_name: None,
                    source_version: None,
                    layer_digest: Some(file.layer_digest.clone()),
                    file_path: None,
                    owner: None,
                }),
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
        Ok(analysis)
    }
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
            ("app/node_modules/.package-lock.json", false),
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
        let got: Vec<(&str, &str)> = a
            .packages
            .iter()
            .map(|p| (p.name.as_str(), p.version.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                ("@babel/core", "7.24.0"),
                ("debug", "2.6.9"),
                ("express", "4.18.2")
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
}
