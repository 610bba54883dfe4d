//! Installed Python distributions.
//!
//! Files, anywhere in the image (site-packages of any interpreter or virtualenv):
//! `*.dist-info/METADATA` (wheels, modern pip), `*.egg-info/PKG-INFO` (setuptools egg-info
//! directories: Debian's `python3-*` packages built with setuptools), `*.egg-info` when it is a
//! file (old `setup.py install`, older Debian packages) and `*.egg/EGG-INFO/PKG-INFO` (eggs
//! installed unzipped by easy_install / `setup.py install`). Zipped eggs (`*.egg` files) are not
//! read. Each package's `file_path` is the metadata file it was read from.
//!
//! Each is a core-metadata file: RFC 822 style headers up to the first blank line (the
//! description body follows). `Name` and `Version` are taken as written (the matcher
//! normalises PyPI names); continuation lines (starting with a space or tab) are allowed. A
//! file without both is skipped with a warning: one odd distribution does not fail the scan.

use super::{Analysis, Analyzer, AnalyzerError, AnalyzerWarning, FileSet, text, whole};
use crate::scanner::advisories::matcher::{InventoryPackage, PackageKind};

const NAME: &str = "python";

/// See the module docs.
#[derive(Debug, Clone, Copy, Default)]
pub struct PythonAnalyzer;

impl Analyzer for PythonAnalyzer {
    fn name(&self) -> &'static str {
        NAME
    }

    fn version(&self) -> u32 {
        2
    }

    fn required(&self, path: &str) -> bool {
        if let Some(dir) = path.strip_suffix("/METADATA") {
            return dir.ends_with(".dist-info");
        }
        if let Some(dir) = path.strip_suffix("/PKG-INFO") {
            return dir.ends_with(".egg-info")
                || dir
                    .strip_suffix("/EGG-INFO")
                    .is_some_and(|egg| egg.ends_with(".egg"));
        }
        path.ends_with(".egg-info")
    }

    fn analyze(&self, files: &FileSet) -> Result<Analysis, AnalyzerError> {
        let mut analysis = Analysis::default();
        for (path, file) in files.iter().filter(|(p, _)| self.required(p)) {
            let bytes = whole(NAME, path, file)?;
            let text = text(&bytes);
            let (name, version) = (header(&text, "Name"), header(&text, "Version"));
            match (name, version) {
                (Some(name), Some(version)) => analysis.packages.push(InventoryPackage::language(
                    PackageKind::Python,
                    name,
                    version,
                    path,
                    &file.layer_digest,
                )),
                (name, _) => analysis.warnings.push(AnalyzerWarning::new(
                    NAME,
                    path,
                    format!(
                        "no {} header: skipped",
                        if name.is_none() { "Name" } else { "Version" }
                    ),
                )),
            }
        }
        Ok(analysis)
    }
}

/// The first value of header `key` (case-insensitive) in the header block, trimmed, with
/// continuation lines joined by a space; `None` when absent or empty.
fn header(text: &str, key: &str) -> Option<String> {
    let mut lines = text.lines().map(|l| l.strip_suffix('\r').unwrap_or(l));
    while let Some(line) = lines.next() {
        if line.trim().is_empty() {
            return None;
        }
        let Some((k, v)) = line.split_once(':') else {
            continue;
        };
        if line.starts_with([' ', '\t']) || !k.trim_end().eq_ignore_ascii_case(key) {
            continue;
        }
        let mut value = v.trim().to_owned();
        for cont in lines.by_ref() {
            if !cont.starts_with([' ', '\t']) || cont.trim().is_empty() {
                break;
            }
            value.push(' ');
            value.push_str(cont.trim());
        }
        return (!value.is_empty()).then_some(value);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scanner::analyzers::CollectedFile;
    use crate::scanner::analyzers::testutil::set;

    fn run(files: &FileSet) -> Analysis {
        PythonAnalyzer.analyze(files).unwrap()
    }

    fn found(a: &Analysis) -> Vec<(&str, &str, &str)> {
        a.packages
            .iter()
            .map(|p| {
                (
                    p.name.as_str(),
                    p.version.as_str(),
                    p.layer_digest.as_deref().unwrap_or(""),
                )
            })
            .collect()
    }

    fn paths(a: &Analysis) -> Vec<&str> {
        a.packages
            .iter()
            .map(|p| p.file_path.as_deref().unwrap_or(""))
            .collect()
    }

    #[test]
    fn required_truth_table() {
        for (path, want) in [
            (
                "usr/lib/python3/dist-packages/requests-2.28.1.dist-info/METADATA",
                true,
            ),
            (
                "usr/local/lib/python3.12/site-packages/Django-4.2.dist-info/METADATA",
                true,
            ),
            (
                "opt/venv/lib/python3.11/site-packages/pip-24.0.dist-info/METADATA",
                true,
            ),
            ("x.dist-info/METADATA", true),
            ("usr/lib/python3/dist-packages/six-1.16.0.egg-info", true),
            (
                "usr/lib/python2.7/site-packages/foo-1.0-py2.7.egg-info/PKG-INFO",
                true,
            ),
            (
                "usr/lib/python3/dist-packages/requests-2.28.1.dist-info/RECORD",
                false,
            ),
            (
                "usr/lib/python3/dist-packages/requests-2.28.1.dist-info/WHEEL",
                false,
            ),
            (
                "usr/lib/python3/dist-packages/requests-2.28.1.dist-info",
                false,
            ),
            (
                "usr/lib/python3/dist-packages/foo.egg-info/SOURCES.txt",
                false,
            ),
            (
                "usr/lib/python3/dist-packages/foo.egg-info/requires.txt",
                false,
            ),
            ("src/project/METADATA", false),
            ("METADATA", false),
            ("PKG-INFO", false),
            ("project/PKG-INFO", false),
            ("usr/lib/python3/dist-packages/foo-1.0-py3.11.egg", false),
            (
                "usr/lib/python3.6/site-packages/foo-1.0-py3.6.egg/EGG-INFO/PKG-INFO",
                true,
            ),
            (
                "usr/lib/python3.6/site-packages/foo-1.0-py3.6.egg/EGG-INFO/SOURCES.txt",
                false,
            ),
            (
                "usr/lib/python3.6/site-packages/foo/EGG-INFO/PKG-INFO",
                false,
            ),
            ("EGG-INFO/PKG-INFO", false),
            (".egg/EGG-INFO/PKG-INFO", true),
            ("dist-info/METADATA", false),
            ("", false),
        ] {
            assert_eq!(PythonAnalyzer.required(path), want, "{path}");
        }
    }

    #[test]
    fn metadata_files() {
        let mut files = set(&[
            (
                "usr/lib/python3/dist-packages/requests-2.28.1.dist-info/METADATA",
                "Metadata-Version: 2.1\nName: requests\nVersion: 2.28.1\nSummary: Python HTTP for Humans.\n\
                 License: Apache 2.0\nRequires-Dist: idna (<4,>=2.5)\n\nLong description\nName: not-this\n",
            ),
            (
                "usr/lib/python3/dist-packages/Django_REST_framework.dist-info/METADATA",
                "Metadata-Version: 2.1\r\nname: Django_REST.framework\r\nversion:  3.14.0 \r\n\r\n",
            ),
            (
                "usr/lib/python3/dist-packages/six-1.16.0.egg-info",
                "Metadata-Version: 1.2\nName: six\nVersion: 1.16.0\nLicense: MIT\n    continued licence\n",
            ),
            (
                "usr/lib/python2.7/site-packages/foo.egg-info/PKG-INFO",
                "Metadata-Version: 1.0\nName: foo\nDescription: first line\n        |second line\nVersion: 1.0\n",
            ),
            // Not required: never read even though present in the set.
            ("app/METADATA", "Name: app\nVersion: 9\n"),
        ]);
        files.insert(
            "venv/lib/python3.11/site-packages/pip-24.0.dist-info/METADATA",
            CollectedFile::new(
                &b"\xEF\xBB\xBFName: pip\nVersion: 24.0\nAuthor: Caf\xE9\n"[..],
                "sha256:venv",
            ),
        );
        let a = run(&files);
        assert_eq!(
            found(&a),
            [
                ("foo", "1.0", "sha256:test"),
                ("Django_REST.framework", "3.14.0", "sha256:test"),
                ("requests", "2.28.1", "sha256:test"),
                ("six", "1.16.0", "sha256:test"),
                ("pip", "24.0", "sha256:venv"),
            ]
        );
        assert_eq!(
            paths(&a),
            [
                "usr/lib/python2.7/site-packages/foo.egg-info/PKG-INFO",
                "usr/lib/python3/dist-packages/Django_REST_framework.dist-info/METADATA",
                "usr/lib/python3/dist-packages/requests-2.28.1.dist-info/METADATA",
                "usr/lib/python3/dist-packages/six-1.16.0.egg-info",
                "venv/lib/python3.11/site-packages/pip-24.0.dist-info/METADATA",
            ]
        );
        assert!(a.warnings.is_empty());
        assert!(a.packages.iter().all(|p| p.kind == PackageKind::Python
            && p.source_name.is_none()
            && p.source_version.is_none()));
    }

    /// The metadata files of the real Debian 12 packages (setuptools egg-info directories) and
    /// of the real PyPI wheels pip installed in a virtualenv.
    #[test]
    fn real_egg_info_and_dist_info() {
        let files = crate::scanner::analyzers::testutil::crate_fixture_tree("debian-python");
        let a = run(&files);
        assert_eq!(
            a.packages
                .iter()
                .map(|p| (
                    p.name.as_str(),
                    p.version.as_str(),
                    p.file_path.as_deref().unwrap_or("")
                ))
                .collect::<Vec<_>>(),
            [
                (
                    "idna",
                    "3.3",
                    "opt/venv/lib/python3.11/site-packages/idna-3.3.dist-info/METADATA"
                ),
                (
                    "urllib3",
                    "1.26.12",
                    "opt/venv/lib/python3.11/site-packages/urllib3-1.26.12.dist-info/METADATA"
                ),
                (
                    "idna",
                    "3.3",
                    "usr/lib/python3/dist-packages/idna-3.3.egg-info/PKG-INFO"
                ),
                (
                    "urllib3",
                    "1.26.12",
                    "usr/lib/python3/dist-packages/urllib3-1.26.12.egg-info/PKG-INFO"
                ),
            ]
        );
        assert!(a.warnings.is_empty());
    }

    /// An egg installed unzipped (`easy_install`, `setup.py install` of old setuptools): a
    /// directory `<name>-<version>-py<X.Y>.egg` with its metadata in `EGG-INFO/PKG-INFO`.
    #[test]
    fn unzipped_eggs() {
        let path =
            "usr/lib/python3.6/site-packages/PyYAML-3.12-py3.6-linux-x86_64.egg/EGG-INFO/PKG-INFO";
        let a = run(&set(&[
            (
                path,
                "Metadata-Version: 1.1\nName: PyYAML\nVersion: 3.12\nSummary: YAML parser and emitter for Python\n",
            ),
            (
                "usr/lib/python3.6/site-packages/PyYAML-3.12-py3.6-linux-x86_64.egg/EGG-INFO/top_level.txt",
                "yaml\n",
            ),
        ]));
        assert_eq!(found(&a), [("PyYAML", "3.12", "sha256:test")]);
        assert_eq!(paths(&a), [path]);
    }

    #[test]
    fn incomplete_files_are_warnings() {
        let a = run(&set(&[
            (
                "a.dist-info/METADATA",
                "Metadata-Version: 2.1\nVersion: 1.0\n",
            ),
            ("b.dist-info/METADATA", "Name: b\n\nVersion: 1.0\n"),
            ("c.dist-info/METADATA", ""),
            ("d.dist-info/METADATA", "Name:\nVersion: 1\n"),
            ("e.egg-info/PKG-INFO", "\u{0}\u{1}binary junk"),
            ("ok.dist-info/METADATA", "Name: ok\nVersion: 1\n"),
        ]));
        assert_eq!(found(&a), [("ok", "1", "sha256:test")]);
        let messages: Vec<(&str, &str)> = a
            .warnings
            .iter()
            .map(|w| (w.path.as_str(), w.message.as_str()))
            .collect();
        assert_eq!(
            messages,
            [
                ("a.dist-info/METADATA", "no Name header: skipped"),
                ("b.dist-info/METADATA", "no Version header: skipped"),
                ("c.dist-info/METADATA", "no Name header: skipped"),
                ("d.dist-info/METADATA", "no Name header: skipped"),
                ("e.egg-info/PKG-INFO", "no Name header: skipped"),
            ]
        );
    }
}
