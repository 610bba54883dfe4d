//! Which OSV ecosystems an image's packages are matched in.
//!
//! OS packages: the distribution's own ecosystem, spelled exactly as OSV records spell it
//! (checked against the fixture records and bundles):
//!
//! | os-release `ID` | `VERSION_ID` | ecosystem(s) | package names in the records |
//! |---|---|---|---|
//! | `debian` | `12` | `Debian:12` (DSA/DLA/DEBIAN-CVE records) | source package |
//! | `ubuntu` | `22.04` | `Ubuntu:22.04:LTS`, then `Ubuntu:Pro:22.04:LTS` | source package |
//! | `ubuntu` | `23.10` | `Ubuntu:23.10` | source package |
//! | `alpine` | `3.18.4` | `Alpine:v3.18` | source package (apk origin) |
//! | `almalinux` | `9.3` | `AlmaLinux:9` | binary RPM names (`openssl-libs`, `curl-minimal`) |
//! | `rocky` | `9.2` | `Rocky Linux:9` | binary RPM names |
//! | `rhel` | `9.3` | `Red Hat:enterprise_linux:9::baseos`, `…::appstream`, `…::crb` | binary and source RPM names |
//! | `sles` | `15.5` | `SUSE:Linux Enterprise Server 15 SP5` and the SLE 15 SP5 modules | source RPM |
//! | `opensuse-leap` | `15.5` | `openSUSE:Leap 15.5` | source RPM |
//! | `opensuse-tumbleweed` | any | `openSUSE:Tumbleweed` | source RPM |
//!
//! Ubuntu: LTS releases (even year, `.04`) carry the mandatory `:LTS` suffix; fixes published only
//! through Ubuntu Pro (ESM) live in `Ubuntu:Pro:<release>:LTS`, which is matched as well (after
//! the public ecosystem, so a public fix wins) because a package with only a Pro fix is still
//! vulnerable on a non-Pro image.
//!
//! Red Hat: the records are keyed by a CPE-derived product stream
//! (`Red Hat:rhel_aus:8.6::appstream` in the fixtures) and name every binary RPM (and the source
//! RPM) separately. os-release says neither the repositories nor the stream an image's RPMs came
//! from, so a RHEL/UBI image is matched against the main streams its `CPE_NAME` points at
//! (`enterprise_linux:<major>::baseos`, `::appstream`, `::crb`; `::server` for RHEL 7) by binary
//! name and by source RPM name. Extended-support streams (`rhel_eus`, `rhel_aus`, `rhel_e4s`,
//! `rhel_tus`) are never matched: nothing in an image says it follows one. AlmaLinux and Rocky
//! records also list binary RPM names, so RPM distributions match by binary and source name.
//!
//! SUSE: records are filed against the product or *module* that ships the package
//! (`SUSE:Linux Enterprise Module for Basesystem 15 SP5`), which os-release does not name, so a
//! SLES image is matched against the server product and the usual SLE 15 modules of its service
//! pack. The fixtures hold no SUSE record with affected packages; the spellings follow the OSV
//! ecosystem definition (`<RELEASE>` is the os-release `PRETTY_NAME`) and osv-scanner's queries
//! (`openSUSE:Leap 15.5`).
//!
//! Anything else (Amazon Linux, Oracle Linux, Photon, Wolfi, Alpine edge, a Debian without a
//! numeric `VERSION_ID`...) gives `None`: the caller reports the OS as unsupported, never as
//! healthy.

use serde::{Deserialize, Serialize};

/// The fields of `/etc/os-release` that choose an ecosystem.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct OsRelease {
    pub id: String,
    pub version_id: Option<String>,
    #[serde(default)]
    pub id_like: Vec<String>,
    pub pretty_name: Option<String>,
}

/// Which package name an OS family's records use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum NameKeys {
    /// The source package only (dpkg `Source:`, apk origin, SUSE source RPM).
    Source,
    /// The binary package name and, when it differs, the source package name (Red Hat,
    /// AlmaLinux, Rocky Linux list binary RPMs).
    BinaryAndSource,
}

/// The ecosystems an image's OS packages are matched in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OsEcosystems {
    /// The OS family shown to users ("Debian", "Alpine", "Red Hat", ...).
    pub category: &'static str,
    /// In preference order: when one advisory matches a package in several, the first wins.
    pub ecosystems: Vec<String>,
    pub names: NameKeys,
}

/// The primary OSV ecosystem of an OS (the first of [`os_ecosystems`]).
pub fn os_ecosystem(os: &OsRelease) -> Option<String> {
    os_ecosystems(os).and_then(|e| e.ecosystems.into_iter().next())
}

/// Major and minor numbers of a `VERSION_ID` such as `3.18.4`, `9.3`, `15.5`, `22.04`.
fn major_minor(version_id: &str) -> Option<(&str, Option<&str>)> {
    let mut parts = version_id.split('.');
    let major = parts.next().filter(|m| is_number(m))?;
    let minor = parts.next();
    if minor.is_some_and(|m| !is_number(m)) {
        return None;
    }
    Some((major, minor))
}

fn is_number(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

/// SLE 15 modules whose packages a SLES / SLE BCI image commonly carries.
const SLE15_MODULES: &[&str] = &[
    "Linux Enterprise Module for Basesystem",
    "Linux Enterprise Module for Server Applications",
    "Linux Enterprise Module for Development Tools",
    "Linux Enterprise Module for Desktop Applications",
    "Linux Enterprise Module for Web and Scripting",
    "Linux Enterprise Module for Containers",
    "Linux Enterprise Module for Python 3",
    "Linux Enterprise Module for Public Cloud",
    "Linux Enterprise Module for Legacy",
];

/// The ecosystems an OS's packages are matched in, or `None` for an OS Crowsnest has no
/// advisories for.
pub fn os_ecosystems(os: &OsRelease) -> Option<OsEcosystems> {
    let version = os.version_id.as_deref().map(str::trim).unwrap_or("");
    let source = |category, ecosystems| {
        Some(OsEcosystems {
            category,
            ecosystems,
            names: NameKeys::Source,
        })
    };
    let rpm = |category, ecosystems| {
        Some(OsEcosystems {
            category,
            ecosystems,
            names: NameKeys::BinaryAndSource,
        })
    };
    match os.id.trim() {
        "debian" => {
            let (major, _) = major_minor(version)?;
            source("Debian", vec![format!("Debian:{major}")])
        }
        "ubuntu" => {
            let (major, minor) = major_minor(version)?;
            let minor = minor?;
            let release = format!("{major}.{minor}");
            let lts = minor == "04" && major.parse::<u32>().ok()? % 2 == 0;
            if lts {
                source(
                    "Ubuntu",
                    vec![
                        format!("Ubuntu:{release}:LTS"),
                        format!("Ubuntu:Pro:{release}:LTS"),
                    ],
                )
            } else {
                source("Ubuntu", vec![format!("Ubuntu:{release}")])
            }
        }
        "alpine" => {
            // Edge has VERSION_ID like 3.19_alpha20230901: no release branch to match.
            let (major, minor) = major_minor(version)?;
            source("Alpine", vec![format!("Alpine:v{major}.{}", minor?)])
        }
        "almalinux" => {
            let (major, _) = major_minor(version)?;
            rpm("AlmaLinux", vec![format!("AlmaLinux:{major}")])
        }
        "rocky" => {
            let (major, _) = major_minor(version)?;
            rpm("Rocky Linux", vec![format!("Rocky Linux:{major}")])
        }
        "rhel" => {
            let (major, _) = major_minor(version)?;
            let streams: &[&str] = if major == "7" {
                &["server"]
            } else if major.parse::<u32>().ok()? >= 8 {
                &["baseos", "appstream", "crb"]
            } else {
                return None;
            };
            rpm(
                "Red Hat",
                streams
                    .iter()
                    .map(|s| format!("Red Hat:enterprise_linux:{major}::{s}"))
                    .collect(),
            )
        }
        "sles" | "sles_sap" => {
            let (major, minor) = major_minor(version)?;
            let product = match minor {
                Some(sp) if sp != "0" => format!("{major} SP{sp}"),
                _ => major.to_owned(),
            };
            let mut ecosystems = vec![format!("SUSE:Linux Enterprise Server {product}")];
            if major == "15" {
                ecosystems.extend(SLE15_MODULES.iter().map(|m| format!("SUSE:{m} {product}")));
            }
            source("SUSE", ecosystems)
        }
        "opensuse-leap" => {
            let (major, minor) = major_minor(version)?;
            source(
                "openSUSE",
                vec![format!("openSUSE:Leap {major}.{}", minor?)],
            )
        }
        "opensuse-tumbleweed" => source("openSUSE", vec!["openSUSE:Tumbleweed".to_owned()]),
        _ => None,
    }
}

/// The ecosystem part of an ecosystem string (`Debian` for `Debian:12`).
pub fn base(ecosystem: &str) -> &str {
    ecosystem.split_once(':').map_or(ecosystem, |(b, _)| b)
}

/// A package name as the ecosystem compares it: PEP 503 for PyPI (lowercase, runs of `-`, `_`,
/// `.` become one `-`); lowercase for NuGet (package ids are case-insensitive) and Packagist
/// (Composer lowercases `vendor/package`); every other ecosystem as written (RubyGems names,
/// Maven `group:artifact`, npm scopes, Go module paths and distro package names are
/// case-sensitive or already canonical).
///
/// osv.dev only normalises PyPI names; its NuGet and Packagist records spell names as the
/// registry does, so lowercasing both sides matches the same records and also an installed
/// package whose id is spelled with another case.
pub fn normalize_name(ecosystem: &str, name: &str) -> String {
    match base(ecosystem) {
        "PyPI" => {}
        "NuGet" | "Packagist" => return name.to_lowercase(),
        _ => return name.to_owned(),
    }
    let mut out = String::with_capacity(name.len());
    let mut in_run = false;
    for c in name.chars() {
        if matches!(c, '-' | '_' | '.') {
            if !in_run {
                out.push('-');
            }
            in_run = true;
        } else {
            out.extend(c.to_lowercase());
            in_run = false;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scanner::advisories::testdata;
    use crate::scanner::versions::Scheme;

    fn os(id: &str, version: Option<&str>) -> OsRelease {
        OsRelease {
            id: id.to_owned(),
            version_id: version.map(str::to_owned),
            id_like: Vec::new(),
            pretty_name: None,
        }
    }

    #[test]
    fn os_release_to_ecosystem() {
        let cases = [
            ("debian", Some("12"), Some("Debian:12")),
            ("debian", Some("10"), Some("Debian:10")),
            ("debian", None, None),
            ("ubuntu", Some("22.04"), Some("Ubuntu:22.04:LTS")),
            ("ubuntu", Some("18.04"), Some("Ubuntu:18.04:LTS")),
            ("ubuntu", Some("23.10"), Some("Ubuntu:23.10")),
            ("ubuntu", Some("23.04"), Some("Ubuntu:23.04")),
            ("alpine", Some("3.18.4"), Some("Alpine:v3.18")),
            ("alpine", Some("3.4.6"), Some("Alpine:v3.4")),
            ("alpine", Some("3.19_alpha20230901"), None),
            ("almalinux", Some("9.3"), Some("AlmaLinux:9")),
            ("almalinux", Some("8.4"), Some("AlmaLinux:8")),
            ("rocky", Some("9.2"), Some("Rocky Linux:9")),
            (
                "rhel",
                Some("9.3"),
                Some("Red Hat:enterprise_linux:9::baseos"),
            ),
            (
                "rhel",
                Some("7.7"),
                Some("Red Hat:enterprise_linux:7::server"),
            ),
            (
                "sles",
                Some("15.5"),
                Some("SUSE:Linux Enterprise Server 15 SP5"),
            ),
            ("sles", Some("15"), Some("SUSE:Linux Enterprise Server 15")),
            ("opensuse-leap", Some("15.5"), Some("openSUSE:Leap 15.5")),
            (
                "opensuse-tumbleweed",
                Some("20240328"),
                Some("openSUSE:Tumbleweed"),
            ),
            ("amzn", Some("2"), None),
            ("ol", Some("8.3"), None),
            ("wolfi", Some("20220914"), None),
            ("arch", None, None),
        ];
        for (id, version, want) in cases {
            assert_eq!(
                os_ecosystem(&os(id, version)).as_deref(),
                want,
                "{id} {version:?}"
            );
        }
        let rhel = os_ecosystems(&os("rhel", Some("9.0"))).unwrap();
        assert_eq!(rhel.category, "Red Hat");
        assert_eq!(rhel.names, NameKeys::BinaryAndSource);
        assert_eq!(
            rhel.ecosystems,
            [
                "Red Hat:enterprise_linux:9::baseos",
                "Red Hat:enterprise_linux:9::appstream",
                "Red Hat:enterprise_linux:9::crb"
            ]
        );
        let ubuntu = os_ecosystems(&os("ubuntu", Some("22.04"))).unwrap();
        assert_eq!(
            ubuntu.ecosystems,
            ["Ubuntu:22.04:LTS", "Ubuntu:Pro:22.04:LTS"]
        );
        let sles = os_ecosystems(&os("sles", Some("15.5"))).unwrap();
        assert!(
            sles.ecosystems
                .contains(&"SUSE:Linux Enterprise Module for Basesystem 15 SP5".to_owned())
        );
        assert_eq!(sles.names, NameKeys::Source);
    }

    /// Every ecosystem produced has a version order, and its family is in OSV's list.
    #[test]
    fn produced_ecosystems_are_ordered_and_listed() {
        let listed = testdata::read_json("osv/records/_schema/ecosystems.json");
        let listed = listed.as_object().unwrap();
        for (id, v) in [
            ("debian", "11"),
            ("ubuntu", "20.04"),
            ("ubuntu", "23.10"),
            ("alpine", "3.18.4"),
            ("almalinux", "9.3"),
            ("rocky", "8.9"),
            ("rhel", "8.9"),
            ("rhel", "7.9"),
            ("sles", "15.5"),
            ("opensuse-leap", "15.5"),
            ("opensuse-tumbleweed", "1"),
        ] {
            for eco in os_ecosystems(&os(id, Some(v))).unwrap().ecosystems {
                assert!(Scheme::for_ecosystem(&eco).is_some(), "{eco}");
                assert!(listed.contains_key(base(&eco)), "{eco}");
            }
        }
    }

    /// The os-release fixtures map as the table in the module docs says.
    #[test]
    fn os_release_fixtures() {
        let cases = [
            (
                "pkgdb/debian/os-release/debian-10/etc/os-release",
                Some("Debian:10"),
            ),
            (
                "pkgdb/debian/os-release/distroless-debian-11/etc/os-release",
                Some("Debian:11"),
            ),
            (
                "pkgdb/ubuntu/os-release/ubuntu-22.04/etc/os-release",
                Some("Ubuntu:22.04:LTS"),
            ),
            (
                "pkgdb/ubuntu/os-release/ubuntu-23.10/etc/os-release",
                Some("Ubuntu:23.10"),
            ),
            (
                "pkgdb/ubuntu/os-release/ubuntu-16.04/etc/os-release",
                Some("Ubuntu:16.04:LTS"),
            ),
            (
                "pkgdb/alpine/os-release/alpine-3.18/etc/os-release",
                Some("Alpine:v3.18"),
            ),
            ("pkgdb/alpine/os-release/alpine-edge/etc/os-release", None),
            (
                "pkgdb/rpm/os-release/rhel-9/etc/os-release",
                Some("Red Hat:enterprise_linux:9::baseos"),
            ),
            (
                "pkgdb/rpm/os-release/rhel-7/etc/os-release",
                Some("Red Hat:enterprise_linux:7::server"),
            ),
            (
                "pkgdb/os-release/syft/almalinux-from-os-release/etc/os-release",
                Some("AlmaLinux:8"),
            ),
            (
                "pkgdb/os-release/syft/rockylinux-from-os-release/etc/os-release",
                Some("Rocky Linux:8"),
            ),
            (
                "pkgdb/os-release/syft/sles/etc/os-release",
                Some("SUSE:Linux Enterprise Server 15 SP2"),
            ),
            (
                "pkgdb/os-release/syft/opensuse-leap/etc/os-release",
                Some("openSUSE:Leap 15.2"),
            ),
            ("pkgdb/os-release/syft/amazon/etc/os-release", None),
            ("pkgdb/os-release/syft/wolfi/etc/os-release", None),
        ];
        for (path, want) in cases {
            let os = testdata::os_release(path);
            assert_eq!(os_ecosystem(&os).as_deref(), want, "{path}");
        }
    }

    #[test]
    fn names() {
        assert_eq!(
            normalize_name("PyPI", "Django_REST.framework"),
            "django-rest-framework"
        );
        assert_eq!(normalize_name("PyPI", "a--_.b"), "a-b");
        assert_eq!(normalize_name("PyPI", "Gradi0"), "gradi0");
        assert_eq!(
            normalize_name("Maven", "com.FasterXML.jackson.core:jackson-databind"),
            "com.FasterXML.jackson.core:jackson-databind"
        );
        assert_eq!(normalize_name("npm", "@Babel/Core"), "@Babel/Core");
        assert_eq!(
            normalize_name("NuGet", "Newtonsoft.Json"),
            "newtonsoft.json"
        );
        assert_eq!(
            normalize_name("Packagist", "Symfony/HTTP-Kernel"),
            "symfony/http-kernel"
        );
        assert_eq!(normalize_name("RubyGems", "RedCloth"), "RedCloth");
        assert_eq!(normalize_name("Debian:12", "Foo_bar"), "Foo_bar");
        assert_eq!(
            normalize_name("Go", "github.com/BurntSushi/toml"),
            "github.com/BurntSushi/toml"
        );
    }
}
