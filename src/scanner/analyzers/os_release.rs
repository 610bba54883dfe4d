//! The image's OS, from `os-release(5)` or, without one, the Alpine / Debian release files.
//!
//! Sources, first usable one wins:
//!
//! 1. `etc/os-release`, then `usr/lib/os-release` (the order os-release(5) gives; on most
//!    distributions `etc/os-release` is a symlink to the other). A file is usable when it sets
//!    `ID`.
//! 2. `etc/alpine-release` (`3.18.4`): `ID=alpine`, `VERSION_ID` its first line.
//! 3. `etc/debian_version` (`12.5`): `ID=debian`, `VERSION_ID` its first line when that is a
//!    release number. Testing and unstable write a codename (`bookworm/sid`), and so does
//!    Ubuntu (whose os-release is found first): that gives `ID=debian` without a version, which
//!    the matcher reports as an unsupported OS rather than guessing a release.
//! 4. An os-release without `ID`: `ID=linux`, the default os-release(5) gives.
//!
//! Values are parsed as os-release(5) says (a subset of shell quoting): double quotes with `\"`,
//! `\\`, `` \` `` and `\$` escapes, single quotes, unquoted words; `#` comments; CRLF line ends
//! and trailing blanks are tolerated.

use std::collections::HashMap;

use super::{Analysis, Analyzer, AnalyzerError, AnalyzerWarning, FileSet, text, whole};
use crate::scanner::advisories::ecosystem::OsRelease;

const NAME: &str = "os-release";

const OS_RELEASE: [&str; 2] = ["etc/os-release", "usr/lib/os-release"];
const ALPINE_RELEASE: &str = "etc/alpine-release";
const DEBIAN_VERSION: &str = "etc/debian_version";

/// See the module docs.
#[derive(Debug, Clone, Copy, Default)]
pub struct OsReleaseAnalyzer;

impl Analyzer for OsReleaseAnalyzer {
    fn name(&self) -> &'static str {
        NAME
    }

    fn version(&self) -> u32 {
        1
    }

    fn required(&self, path: &str) -> bool {
        OS_RELEASE.contains(&path) || path == ALPINE_RELEASE || path == DEBIAN_VERSION
    }

    fn analyze(&self, files: &FileSet) -> Result<Analysis, AnalyzerError> {
        let mut warnings = Vec::new();
        let mut without_id = None;
        for path in OS_RELEASE {
            let Some(file) = files.get(path) else {
                continue;
            };
            let os = from_os_release(&parse_os_release(&text(&whole(NAME, path, file)?)));
            if os.id.is_empty() {
                warnings.push(AnalyzerWarning::new(NAME, path, "no ID= line"));
                without_id.get_or_insert(os);
            } else {
                return Ok(found(os, warnings));
            }
        }
        if let Some(version) = first_line(files, ALPINE_RELEASE) {
            let os = OsRelease {
                id: "alpine".to_owned(),
                pretty_name: Some(format!("Alpine Linux {version}")),
                version_id: Some(version),
                id_like: Vec::new(),
            };
            return Ok(found(os, warnings));
        }
        if let Some(version) = first_line(files, DEBIAN_VERSION) {
            let numeric = version.starts_with(|c: char| c.is_ascii_digit())
                && version.chars().all(|c| c.is_ascii_digit() || c == '.');
            let os = OsRelease {
                id: "debian".to_owned(),
                pretty_name: Some(format!("Debian GNU/Linux {version}")),
                version_id: numeric.then_some(version),
                id_like: Vec::new(),
            };
            return Ok(found(os, warnings));
        }
        if let Some(mut os) = without_id {
            os.id = "linux".to_owned();
            return Ok(found(os, warnings));
        }
        Ok(Analysis {
            warnings,
            ..Analysis::default()
        })
    }
}

fn found(os: OsRelease, warnings: Vec<AnalyzerWarning>) -> Analysis {
    Analysis {
        os: Some(os),
        warnings,
        ..Analysis::default()
    }
}

/// The first line of a release file, trimmed; `None` when absent or blank.
fn first_line(files: &FileSet, path: &str) -> Option<String> {
    let file = files.get(path)?;
    let bytes = file.bytes().ok()?;
    let text = text(&bytes);
    let line = text.lines().next()?.trim();
    (!line.is_empty()).then(|| line.to_owned())
}

fn from_os_release(fields: &HashMap<String, String>) -> OsRelease {
    let get = |key: &str| fields.get(key).map(|v| v.trim()).filter(|v| !v.is_empty());
    OsRelease {
        id: get("ID").unwrap_or("").to_owned(),
        version_id: get("VERSION_ID").map(str::to_owned),
        id_like: get("ID_LIKE")
            .map(|v| v.split_whitespace().map(str::to_owned).collect())
            .unwrap_or_default(),
        pretty_name: get("PRETTY_NAME").map(str::to_owned),
    }
}

/// Every `KEY=value` assignment of an os-release file, values unquoted. Later assignments win.
pub(super) fn parse_os_release(text: &str) -> HashMap<String, String> {
    let mut out = HashMap::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        let key = key.trim();
        if key.is_empty() || !key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
            continue;
        }
        out.insert(key.to_owned(), shell_word(value));
    }
    out
}

/// The first shell word of `value`, with quotes removed and escapes resolved; what follows it
/// (trailing blanks, a `# comment`) is ignored.
fn shell_word(value: &str) -> String {
    let mut out = String::new();
    let mut chars = value.trim_start().chars();
    while let Some(c) = chars.next() {
        match c {
            '"' => {
                while let Some(c) = chars.next() {
                    match c {
                        '"' => break,
                        '\\' => match chars.next() {
                            Some(e @ ('"' | '\\' | '`' | '$')) => out.push(e),
                            Some(other) => {
                                out.push('\\');
                                out.push(other);
                            }
                            None => out.push('\\'),
                        },
                        c => out.push(c),
                    }
                }
            }
            '\'' => {
                for c in chars.by_ref() {
                    if c == '\'' {
                        break;
                    }
                    out.push(c);
                }
            }
            '\\' => {
                if let Some(e) = chars.next() {
                    out.push(e);
                }
            }
            c if c.is_whitespace() => break,
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scanner::advisories::ecosystem::os_ecosystem;
    use crate::scanner::analyzers::testutil::{fixture_tree, set};

    fn os_of(files: &FileSet) -> Option<OsRelease> {
        OsReleaseAnalyzer.analyze(files).unwrap().os
    }

    fn os(id: &str, version_id: Option<&str>, id_like: &[&str], pretty: Option<&str>) -> OsRelease {
        OsRelease {
            id: id.to_owned(),
            version_id: version_id.map(str::to_owned),
            id_like: id_like.iter().map(|s| (*s).to_owned()).collect(),
            pretty_name: pretty.map(str::to_owned),
        }
    }

    #[test]
    fn required_truth_table() {
        let a = OsReleaseAnalyzer;
        for (path, want) in [
            ("etc/os-release", true),
            ("usr/lib/os-release", true),
            ("etc/alpine-release", true),
            ("etc/debian_version", true),
            ("/etc/os-release", false),
            ("etc/os-release.d/x", false),
            ("usr/local/lib/os-release", false),
            ("etc/lsb-release", false),
            ("etc/redhat-release", false),
            ("etc/debian_version.bak", false),
            ("foo/etc/os-release", false),
            ("", false),
        ] {
            assert_eq!(a.required(path), want, "{path}");
        }
    }

    #[test]
    fn quoting_per_os_release_5() {
        let f = parse_os_release(
            "# comment\n\
             ID=fedora\r\n\
             NAME=\"Fedora \\\"Linux\\\" \\$HOME \\\\ \\`x\\`\"\n\
             PRETTY_NAME='single \"quoted\"'\n\
             BUG_REPORT_URL=\"https://example/\" \n\
             EMPTY=\n\
             EMPTY_QUOTED=\"\"\n\
             KEEP_BACKSLASH=\"a\\nb\"\n\
             UNQUOTED=abc # trailing comment\n\
             not a line\n\
             =novalue\n\
             lower_case=ok\n\
             ID=fedora2\n",
        );
        assert_eq!(f["ID"], "fedora2", "later assignment wins");
        assert_eq!(f["NAME"], "Fedora \"Linux\" $HOME \\ `x`");
        assert_eq!(f["PRETTY_NAME"], "single \"quoted\"");
        assert_eq!(f["BUG_REPORT_URL"], "https://example/");
        assert_eq!(f["EMPTY"], "");
        assert_eq!(f["EMPTY_QUOTED"], "");
        assert_eq!(f["KEEP_BACKSLASH"], "a\\nb");
        assert_eq!(f["UNQUOTED"], "abc");
        assert_eq!(f["lower_case"], "ok");
        assert!(!f.contains_key(""));
        assert_eq!(f.len(), 9);
    }

    /// Every os-release fixture: the fields, and the ecosystem the matcher derives from them.
    #[test]
    fn os_release_fixtures() {
        let cases: &[(&str, OsRelease, Option<&str>)] = &[
            (
                "pkgdb/alpine/grype-match-coverage",
                os("alpine", Some("3.12.0"), &[], Some("Alpine Linux v3.12")),
                Some("Alpine:v3.12"),
            ),
            (
                "pkgdb/alpine/os-release/alpine-3.15",
                os("alpine", Some("3.15.0"), &[], Some("Alpine Linux v3.15")),
                Some("Alpine:v3.15"),
            ),
            (
                "pkgdb/alpine/os-release/alpine-3.16",
                os("alpine", Some("3.16.0"), &[], Some("Alpine Linux v3.16")),
                Some("Alpine:v3.16"),
            ),
            (
                "pkgdb/alpine/os-release/alpine-3.17",
                os("alpine", Some("3.17.5"), &[], Some("Alpine Linux v3.17")),
                Some("Alpine:v3.17"),
            ),
            (
                "pkgdb/alpine/os-release/alpine-3.18",
                os("alpine", Some("3.18.4"), &[], Some("Alpine Linux v3.18")),
                Some("Alpine:v3.18"),
            ),
            (
                "pkgdb/alpine/os-release/alpine-edge",
                os(
                    "alpine",
                    Some("3.19_alpha20230901"),
                    &[],
                    Some("Alpine Linux edge"),
                ),
                None,
            ),
            (
                "pkgdb/debian/grype-match-coverage",
                os(
                    "debian",
                    Some("8"),
                    &[],
                    Some("Debian GNU/Linux 8 (jessie)"),
                ),
                Some("Debian:8"),
            ),
            (
                "pkgdb/debian/os-release/debian-9",
                os(
                    "debian",
                    Some("9"),
                    &[],
                    Some("Debian GNU/Linux 9 (stretch)"),
                ),
                Some("Debian:9"),
            ),
            (
                "pkgdb/debian/os-release/debian-10",
                os(
                    "debian",
                    Some("10"),
                    &[],
                    Some("Debian GNU/Linux 10 (buster)"),
                ),
                Some("Debian:10"),
            ),
            (
                "pkgdb/debian/os-release/debian-11",
                os(
                    "debian",
                    Some("11"),
                    &[],
                    Some("Debian GNU/Linux 11 (bullseye)"),
                ),
                Some("Debian:11"),
            ),
            (
                "pkgdb/debian/os-release/debian-12",
                os(
                    "debian",
                    Some("12"),
                    &[],
                    Some("Debian GNU/Linux 12 (bookworm)"),
                ),
                Some("Debian:12"),
            ),
            (
                "pkgdb/debian/os-release/distroless-debian-9",
                os("debian", Some("9"), &[], Some("Distroless")),
                Some("Debian:9"),
            ),
            (
                "pkgdb/debian/os-release/distroless-debian-10",
                os("debian", Some("10"), &[], Some("Distroless")),
                Some("Debian:10"),
            ),
            (
                "pkgdb/debian/os-release/distroless-debian-11",
                os("debian", Some("11"), &[], Some("Distroless")),
                Some("Debian:11"),
            ),
            (
                "pkgdb/debian/syft-image-dpkg",
                os(
                    "debian",
                    Some("12"),
                    &[],
                    Some("Debian GNU/Linux 12 (bookworm)"),
                ),
                Some("Debian:12"),
            ),
            (
                "pkgdb/rpm/os-release/rhel-7",
                os(
                    "rhel",
                    Some("7.7"),
                    &["fedora"],
                    Some("Red Hat Enterprise Linux Server 7.7 (Maipo)"),
                ),
                Some("Red Hat:enterprise_linux:7::server"),
            ),
            (
                "pkgdb/rpm/os-release/rhel-8",
                os(
                    "rhel",
                    Some("8.1"),
                    &["fedora"],
                    Some("Red Hat Enterprise Linux 8.1 (Ootpa)"),
                ),
                Some("Red Hat:enterprise_linux:8::baseos"),
            ),
            (
                "pkgdb/rpm/os-release/rhel-9",
                os(
                    "rhel",
                    Some("9.0"),
                    &["fedora"],
                    Some("Red Hat Enterprise Linux 9.0 (Plow)"),
                ),
                Some("Red Hat:enterprise_linux:9::baseos"),
            ),
            (
                "pkgdb/ubuntu/os-release/ubuntu-16.04",
                os(
                    "ubuntu",
                    Some("16.04"),
                    &["debian"],
                    Some("Ubuntu 16.04.7 LTS"),
                ),
                Some("Ubuntu:16.04:LTS"),
            ),
            (
                "pkgdb/ubuntu/os-release/ubuntu-18.04",
                os(
                    "ubuntu",
                    Some("18.04"),
                    &["debian"],
                    Some("Ubuntu 18.04.6 LTS"),
                ),
                Some("Ubuntu:18.04:LTS"),
            ),
            (
                "pkgdb/ubuntu/os-release/ubuntu-20.04",
                os(
                    "ubuntu",
                    Some("20.04"),
                    &["debian"],
                    Some("Ubuntu 20.04.4 LTS"),
                ),
                Some("Ubuntu:20.04:LTS"),
            ),
            (
                "pkgdb/ubuntu/os-release/ubuntu-22.04",
                os(
                    "ubuntu",
                    Some("22.04"),
                    &["debian"],
                    Some("Ubuntu 22.04 LTS"),
                ),
                Some("Ubuntu:22.04:LTS"),
            ),
            (
                "pkgdb/ubuntu/os-release/ubuntu-23.10",
                os(
                    "ubuntu",
                    Some("23.10"),
                    &["debian"],
                    Some("Ubuntu Mantic Minotaur (development branch)"),
                ),
                Some("Ubuntu:23.10"),
            ),
            (
                "pkgdb/os-release/syft/almalinux-from-os-release",
                os(
                    "almalinux",
                    Some("8.4"),
                    &["rhel", "centos", "fedora"],
                    Some("AlmaLinux 8.4 (Electric Cheetah)"),
                ),
                Some("AlmaLinux:8"),
            ),
            (
                "pkgdb/os-release/syft/amazon",
                os(
                    "amzn",
                    Some("2"),
                    &["centos", "rhel", "fedora"],
                    Some("Amazon Linux 2"),
                ),
                None,
            ),
            (
                "pkgdb/os-release/syft/centos",
                os(
                    "centos",
                    Some("8"),
                    &["rhel", "fedora"],
                    Some("CentOS Linux 8 (Core)"),
                ),
                None,
            ),
            (
                "pkgdb/os-release/syft/debian-from-debian_version",
                os("debian", Some("10.8"), &[], Some("Debian GNU/Linux 10.8")),
                Some("Debian:10"),
            ),
            (
                "pkgdb/os-release/syft/debian-with-point-release",
                os(
                    "debian",
                    Some("13"),
                    &[],
                    Some("Debian GNU/Linux 13 (trixie)"),
                ),
                Some("Debian:13"),
            ),
            (
                "pkgdb/os-release/syft/fedora",
                os(
                    "fedora",
                    Some("36"),
                    &[],
                    Some("Fedora Linux 36 (Container Image)"),
                ),
                None,
            ),
            (
                "pkgdb/os-release/syft/mariner",
                os("mariner", Some("1.0"), &[], Some("CBL-Mariner/Linux")),
                None,
            ),
            (
                "pkgdb/os-release/syft/opensuse-leap",
                os(
                    "opensuse-leap",
                    Some("15.2"),
                    &["suse", "opensuse"],
                    Some("openSUSE Leap 15.2"),
                ),
                Some("openSUSE:Leap 15.2"),
            ),
            (
                "pkgdb/os-release/syft/oraclelinux",
                os(
                    "ol",
                    Some("8.3"),
                    &["fedora"],
                    Some("Oracle Linux Server 8.3"),
                ),
                None,
            ),
            (
                "pkgdb/os-release/syft/photon",
                os("photon", Some("2.0"), &[], Some("VMware Photon OS/Linux")),
                None,
            ),
            (
                "pkgdb/os-release/syft/rockylinux-from-os-release",
                os(
                    "rocky",
                    Some("8.4"),
                    &["rhel", "fedora"],
                    Some("Rocky Linux 8.4 (Green Obsidian)"),
                ),
                Some("Rocky Linux:8"),
            ),
            (
                "pkgdb/os-release/syft/sles",
                os(
                    "sles",
                    Some("15.2"),
                    &["suse"],
                    Some("SUSE Linux Enterprise Server 15 SP2"),
                ),
                Some("SUSE:Linux Enterprise Server 15 SP2"),
            ),
            (
                "pkgdb/os-release/syft/wolfi",
                os("wolfi", Some("20220914"), &[], Some("Wolfi")),
                None,
            ),
        ];
        for (root, want, ecosystem) in cases {
            let files = fixture_tree(root);
            let got = os_of(&files).unwrap_or_else(|| panic!("{root}: no OS"));
            assert_eq!(&got, want, "{root}");
            assert_eq!(os_ecosystem(&got).as_deref(), *ecosystem, "{root}");
        }
    }

    /// The claircore expectations stored next to the Alpine fixtures.
    #[test]
    fn alpine_claircore_want() {
        for release in ["3.15", "3.16", "3.17", "3.18", "edge"] {
            let root = format!("pkgdb/alpine/os-release/alpine-{release}");
            let want = crate::scanner::analyzers::testutil::read_json(&format!(
                "{root}/claircore-want.json"
            ));
            let got = os_of(&fixture_tree(&root)).unwrap();
            assert_eq!(got.id, want[0]["did"].as_str().unwrap(), "{root}");
            assert_eq!(
                got.pretty_name.as_deref(),
                want[0]["pretty_name"].as_str(),
                "{root}"
            );
        }
    }

    #[test]
    fn precedence_and_fallbacks() {
        // etc/os-release over usr/lib/os-release.
        let files = set(&[
            ("etc/os-release", "ID=ubuntu\nVERSION_ID=22.04\n"),
            ("usr/lib/os-release", "ID=debian\nVERSION_ID=12\n"),
            ("etc/debian_version", "bookworm/sid\n"),
        ]);
        assert_eq!(os_of(&files).unwrap().id, "ubuntu");
        // usr/lib/os-release when etc/os-release is absent (a dangling symlink).
        let files = set(&[
            ("usr/lib/os-release", "ID=debian\nVERSION_ID=12\n"),
            ("etc/debian_version", "12.5\n"),
        ]);
        assert_eq!(os_of(&files).unwrap().version_id.as_deref(), Some("12"));
        // An os-release without ID is not used while a release file gives more.
        let files = set(&[
            ("etc/os-release", "NAME=whatever\n"),
            ("etc/alpine-release", "3.18.4\n"),
        ]);
        let got = os_of(&files).unwrap();
        assert_eq!(
            got,
            os("alpine", Some("3.18.4"), &[], Some("Alpine Linux 3.18.4"))
        );
        assert_eq!(os_ecosystem(&got).as_deref(), Some("Alpine:v3.18"));
        // ... and gives ID=linux when nothing else is there.
        let files = set(&[("etc/os-release", "NAME=whatever\nVERSION_ID=1\n")]);
        let analysis = OsReleaseAnalyzer.analyze(&files).unwrap();
        assert_eq!(analysis.os, Some(os("linux", Some("1"), &[], None)));
        assert_eq!(analysis.warnings.len(), 1);
        // alpine-release before debian_version.
        let files = set(&[
            ("etc/alpine-release", "3.20.1\n"),
            ("etc/debian_version", "12.5\n"),
        ]);
        assert_eq!(os_of(&files).unwrap().id, "alpine");
        // Nothing at all.
        assert_eq!(os_of(&FileSet::new()), None);
        // Blank release files are not used.
        let files = set(&[("etc/alpine-release", "\n"), ("etc/debian_version", "")]);
        assert_eq!(os_of(&files), None);
    }

    #[test]
    fn debian_version_values() {
        for (content, version_id, ecosystem) in [
            ("12.5\n", Some("12.5"), Some("Debian:12")),
            ("9\n", Some("9"), Some("Debian:9")),
            ("10.8", Some("10.8"), Some("Debian:10")),
            ("bookworm/sid\n", None, None),
            ("trixie/sid\n", None, None),
            ("buster/sid", None, None),
            ("12.5-custom\n", None, None),
            ("  11.7  \nextra line\n", Some("11.7"), Some("Debian:11")),
        ] {
            let got = os_of(&set(&[("etc/debian_version", content)])).unwrap();
            assert_eq!(got.id, "debian", "{content:?}");
            assert_eq!(got.version_id.as_deref(), version_id, "{content:?}");
            assert_eq!(os_ecosystem(&got).as_deref(), ecosystem, "{content:?}");
        }
        let got = os_of(&set(&[("etc/debian_version", "bookworm/sid\n")])).unwrap();
        assert_eq!(
            got.pretty_name.as_deref(),
            Some("Debian GNU/Linux bookworm/sid")
        );
    }

    #[test]
    fn invalid_utf8_and_bom() {
        let mut files = FileSet::new();
        files.insert(
            "etc/os-release",
            super::super::CollectedFile::new(
                b"\xEF\xBB\xBFID=debian\nNAME=\"Deb\xFFian\"\nVERSION_ID=\"12\"\n".to_vec(),
                "sha256:l",
            ),
        );
        let got = os_of(&files).unwrap();
        assert_eq!(got.id, "debian");
        assert_eq!(got.version_id.as_deref(), Some("12"));
    }
}
