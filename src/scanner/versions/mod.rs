//! Version ordering for the package ecosystems Crowsnest matches advisories in.
//!
//! Every scheme exposes the same contract through [`Scheme::compare`]: a total
//! order over the versions that scheme accepts, and an error (never a silent
//! `Equal`) when a version cannot be ordered under that scheme. Each submodule
//! documents precisely which upstream implementation it follows and where it
//! deliberately deviates.

pub mod apk;
pub mod dpkg;
pub mod maven;
pub mod nuget;
pub mod packagist;
pub mod pep440;
pub mod rpm;
pub mod rubygems;
pub mod semver;

#[cfg(test)]
mod testutil;

use std::cmp::Ordering;

/// A version ordering scheme.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scheme {
    /// Debian `dpkg --compare-versions` order (Debian, Ubuntu, Echo).
    Dpkg,
    /// Alpine `apk version -t` order (Alpine, Wolfi, Chainguard, ...).
    Apk,
    /// RPM `rpmvercmp` over epoch:version-release (Red Hat, SUSE, AlmaLinux, ...).
    Rpm,
    /// PEP 440 order (PyPI).
    Pep440,
    /// SemVer 2.0.0 precedence with OSV's coercions (npm, crates.io, Go, ...).
    Semver,
    /// Maven `ComparableVersion` order as implemented by osv-scalibr / osv.dev.
    Maven,
    /// RubyGems `Gem::Version` order as implemented by osv-scalibr / osv.dev.
    RubyGems,
    /// NuGet order (SemVer with a fourth number, case-insensitive pre-release).
    NuGet,
    /// Packagist order (PHP `version_compare` after Composer's `v` trimming).
    Packagist,
}

/// A version string that cannot be ordered under a scheme.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot parse {scheme:?} version {version:?}: {reason}")]
pub struct VersionError {
    pub scheme: Scheme,
    pub version: String,
    pub reason: String,
}

impl VersionError {
    fn new(scheme: Scheme, version: &str, reason: impl Into<String>) -> Self {
        VersionError {
            scheme,
            version: version.to_owned(),
            reason: reason.into(),
        }
    }
}

impl Scheme {
    /// Which order an OSV ecosystem name uses ("Debian:12", "Ubuntu:22.04:LTS",
    /// "Alpine:v3.18", "AlmaLinux:9", "Rocky Linux:9", "Red Hat", "openSUSE",
    /// "SUSE", "PyPI", "npm", "crates.io", "Go", "Maven", "RubyGems", "NuGet",
    /// "Packagist", ...). `None` for unknown ecosystems and for ecosystems
    /// whose order is none of these schemes (Pub, CRAN, Hackage, ...).
    ///
    /// The mapping follows osv.dev's `go/osv/ecosystem` table. Anything after
    /// the first `:` is a release/repository suffix and does not change the
    /// order, except for `TuxCare:<inner>`, which uses the inner ecosystem's
    /// order.
    pub fn for_ecosystem(ecosystem: &str) -> Option<Scheme> {
        let (name, suffix) = match ecosystem.split_once(':') {
            Some((name, suffix)) => (name, Some(suffix)),
            None => (ecosystem, None),
        };
        match name {
            "Debian" | "Ubuntu" | "Echo" => Some(Scheme::Dpkg),
            "Alpine"
            | "Alpaquita"
            | "BellSoft Hardened Containers"
            | "Chainguard"
            | "CleanStart"
            | "MinimOS"
            | "Wolfi" => Some(Scheme::Apk),
            // "Azure Linux" and "Photon OS" are RPM distributions too; osv.dev
            // has no comparator for them yet, their advisories use RPM EVRs.
            "AlmaLinux" | "Mageia" | "openEuler" | "openSUSE" | "Red Hat" | "Rocky Linux"
            | "SUSE" | "Azure Linux" | "Photon OS" => Some(Scheme::Rpm),
            "PyPI" => Some(Scheme::Pep440),
            "Bitnami"
            | "crates.io"
            | "Docker Hardened Images"
            | "Go"
            | "Hex"
            | "Julia"
            | "npm"
            | "SwiftURL" => Some(Scheme::Semver),
            "Maven" => Some(Scheme::Maven),
            "RubyGems" => Some(Scheme::RubyGems),
            "NuGet" => Some(Scheme::NuGet),
            "Packagist" => Some(Scheme::Packagist),
            "TuxCare" => match suffix {
                Some(inner) if !inner.starts_with("TuxCare") => Scheme::for_ecosystem(inner),
                _ => None,
            },
            _ => None,
        }
    }

    /// Total order; `Err` when either side cannot be parsed under this scheme
    /// (never silently `Equal`).
    pub fn compare(self, a: &str, b: &str) -> Result<Ordering, VersionError> {
        match self {
            Scheme::Dpkg => dpkg::compare(a, b),
            Scheme::Apk => apk::compare(a, b),
            Scheme::Rpm => rpm::compare(a, b),
            Scheme::Pep440 => pep440::compare(a, b),
            Scheme::Semver => semver::compare(a, b),
            Scheme::Maven => maven::compare(a, b),
            Scheme::RubyGems => rubygems::compare(a, b),
            Scheme::NuGet => nuget::compare(a, b),
            Scheme::Packagist => packagist::compare(a, b),
        }
    }

    /// Just validate.
    pub fn validate(self, v: &str) -> Result<(), VersionError> {
        match self {
            Scheme::Dpkg => dpkg::validate(v),
            Scheme::Apk => apk::validate(v),
            Scheme::Rpm => rpm::validate(v),
            Scheme::Pep440 => pep440::validate(v),
            Scheme::Semver => semver::validate(v),
            Scheme::Maven => maven::validate(v),
            Scheme::RubyGems => rubygems::validate(v),
            Scheme::NuGet => nuget::validate(v),
            Scheme::Packagist => packagist::validate(v),
        }
    }
}

/// Compares two strings of ASCII digits numerically, whatever their length.
fn cmp_decimal(a: &str, b: &str) -> Ordering {
    let a = a.trim_start_matches('0');
    let b = b.trim_start_matches('0');
    a.len().cmp(&b.len()).then_with(|| a.cmp(b))
}

#[cfg(test)]
fn fixture(rel: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/fixtures/versions")
        .join(rel)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ecosystem_mapping() {
        let cases = [
            ("Debian:12", Some(Scheme::Dpkg)),
            ("Debian", Some(Scheme::Dpkg)),
            ("Ubuntu:22.04:LTS", Some(Scheme::Dpkg)),
            ("Ubuntu:Pro:18.04:LTS", Some(Scheme::Dpkg)),
            ("Echo", Some(Scheme::Dpkg)),
            ("Alpine:v3.18", Some(Scheme::Apk)),
            ("Wolfi", Some(Scheme::Apk)),
            ("Chainguard", Some(Scheme::Apk)),
            ("AlmaLinux:9", Some(Scheme::Rpm)),
            ("Rocky Linux:9", Some(Scheme::Rpm)),
            ("Red Hat", Some(Scheme::Rpm)),
            ("Red Hat:enterprise_linux:9::appstream", Some(Scheme::Rpm)),
            ("openSUSE", Some(Scheme::Rpm)),
            ("openSUSE:Leap 15.5", Some(Scheme::Rpm)),
            ("SUSE", Some(Scheme::Rpm)),
            ("SUSE:Linux Enterprise Server 15 SP5", Some(Scheme::Rpm)),
            ("Mageia:9", Some(Scheme::Rpm)),
            ("PyPI", Some(Scheme::Pep440)),
            ("npm", Some(Scheme::Semver)),
            ("crates.io", Some(Scheme::Semver)),
            ("Go", Some(Scheme::Semver)),
            ("Hex", Some(Scheme::Semver)),
            ("Bitnami", Some(Scheme::Semver)),
            ("Maven", Some(Scheme::Maven)),
            ("Maven:https://maven.google.com", Some(Scheme::Maven)),
            ("TuxCare:Debian:12", Some(Scheme::Dpkg)),
            ("TuxCare:PyPI", Some(Scheme::Pep440)),
            ("TuxCare", None),
            ("TuxCare:TuxCare:PyPI", None),
            ("Packagist", Some(Scheme::Packagist)),
            ("RubyGems", Some(Scheme::RubyGems)),
            ("NuGet", Some(Scheme::NuGet)),
            ("TuxCare:NuGet", Some(Scheme::NuGet)),
            ("rubygems", None),
            ("Pub", None),
            ("CRAN", None),
            ("Hackage", None),
            ("Root:Alpine:3.18", None),
            ("GIT", None),
            ("", None),
            ("debian", None),
            ("pypi", None),
        ];
        for (eco, want) in cases {
            assert_eq!(Scheme::for_ecosystem(eco), want, "{eco:?}");
        }
    }

    #[test]
    fn error_message_and_dispatch() {
        let err = Scheme::Dpkg.compare("1.0", "a:b").unwrap_err();
        assert_eq!(err.scheme, Scheme::Dpkg);
        assert_eq!(err.version, "a:b");
        assert!(
            err.to_string()
                .starts_with("cannot parse Dpkg version \"a:b\": ")
        );
        for scheme in [
            Scheme::Dpkg,
            Scheme::Apk,
            Scheme::Rpm,
            Scheme::Pep440,
            Scheme::Semver,
            Scheme::Maven,
            Scheme::RubyGems,
            Scheme::NuGet,
            Scheme::Packagist,
        ] {
            assert_eq!(
                scheme.compare("1.0", "2.0"),
                Ok(Ordering::Less),
                "{scheme:?}"
            );
            assert_eq!(
                scheme.compare("2.0", "1.0"),
                Ok(Ordering::Greater),
                "{scheme:?}"
            );
            assert_eq!(
                scheme.compare("1.0", "1.0"),
                Ok(Ordering::Equal),
                "{scheme:?}"
            );
            assert!(scheme.validate("1.0").is_ok(), "{scheme:?}");
            assert!(scheme.validate("").is_err(), "{scheme:?}");
            assert!(scheme.compare("", "1.0").is_err(), "{scheme:?}");
            assert!(scheme.compare("1.0", "").is_err(), "{scheme:?}");
        }
    }

    #[test]
    fn decimal_compare() {
        assert_eq!(cmp_decimal("0", ""), Ordering::Equal);
        assert_eq!(cmp_decimal("010", "10"), Ordering::Equal);
        assert_eq!(cmp_decimal("9", "10"), Ordering::Less);
        assert_eq!(
            cmp_decimal(
                "999999999999999999999999999991",
                "999999999999999999999999999999"
            ),
            Ordering::Less
        );
    }

    /// Every file under the fixture directory, and where it is used. Files
    /// for ecosystems whose order is none of these schemes (so that
    /// `for_ecosystem` answers `None`) are listed with that reason.
    const FIXTURES: &[(&str, &str)] = &[
        ("apk/apk-tools-2.14-stable-test-version.data", "apk"),
        ("apk/apk-tools-master-test-unit-version.data", "apk"),
        ("dpkg/Dpkg_Version.t.__DATA__.txt", "dpkg"),
        ("dpkg/t-version.c.parse-cases.json", "dpkg"),
        ("osv-dev/alpine-converter-invalid_versions.txt", "apk"),
        ("osv-dev/alpine-converter-valid_versions.txt", "apk"),
        (
            "osv-dev/fuzz-corpus/FuzzDpkgMonotonicity/637110e9290164fb",
            "dpkg",
        ),
        (
            "osv-dev/fuzz-corpus/FuzzDpkgMonotonicity/800ea9d22c213672",
            "dpkg",
        ),
        (
            "osv-dev/fuzz-corpus/FuzzDpkgMonotonicity/d1988bf0dfaadeaa",
            "dpkg",
        ),
        (
            "osv-dev/fuzz-corpus/FuzzPackagistMonotonicity/c80af087e9ffbd87",
            "packagist",
        ),
        ("osv-dev/packagist_test_cases.txt", "packagist"),
        ("osv-semantic/alpine-versions-generated.txt", "apk"),
        ("osv-semantic/alpine-versions.txt", "apk"),
        ("osv-semantic/cran-versions-generated.txt", NA_CRAN),
        ("osv-semantic/cran-versions.txt", NA_CRAN),
        ("osv-semantic/debian-versions-generated.txt", "dpkg"),
        ("osv-semantic/debian-versions.txt", "dpkg"),
        ("osv-semantic/hackage-versions.txt", NA_HACKAGE),
        ("osv-semantic/maven-versions-generated.txt", "maven"),
        ("osv-semantic/maven-versions.txt", "maven"),
        ("osv-semantic/nuget-versions.txt", "nuget"),
        ("osv-semantic/packagist-versions-generated.txt", "packagist"),
        ("osv-semantic/packagist-versions.txt", "packagist"),
        ("osv-semantic/pub-versions.txt", NA_PUB),
        ("osv-semantic/pypi-versions-generated.txt", "pep440"),
        ("osv-semantic/pypi-versions.txt", "pep440"),
        ("osv-semantic/redhat-versions.txt", "rpm"),
        ("osv-semantic/rubygems-versions-generated.txt", "rubygems"),
        ("osv-semantic/rubygems-versions.txt", "rubygems"),
        ("osv-semantic/semver-versions.txt", "semver"),
        ("pep440/packaging-VERSIONS.sorted.txt", "pep440"),
        ("pep440/packaging-test_specifiers.extracted.json", "pep440"),
        ("pep440/packaging-test_version.extracted.json", "pep440"),
        ("rpm/claircore-nevra-compare.txt", "rpm"),
        ("rpm/claircore-nevra-parse.txt", "rpm"),
        ("rpm/claircore-rpmvercmp.txt", "rpm"),
        ("rpm/rpmvercmp.at.commented-oddities.tsv", "rpm"),
        ("rpm/rpmvercmp.at.tsv", "rpm"),
        ("semver/node-semver-fixtures.json", "semver"),
    ];
    const NA_CRAN: &str = "not applicable: CRAN order";
    const NA_HACKAGE: &str = "not applicable: Hackage (PVP) order";
    const NA_PUB: &str = "not applicable: Pub order (build metadata takes part)";

    fn walk(dir: &std::path::Path, out: &mut Vec<String>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, out);
            } else {
                let rel = path.strip_prefix(fixture("")).unwrap();
                out.push(rel.to_string_lossy().into_owned());
            }
        }
    }

    #[test]
    fn every_fixture_file_is_accounted_for() {
        assert!(fixture("").is_dir(), "{}", fixture("").display());
        let mut found = Vec::new();
        walk(&fixture(""), &mut found);
        found.sort();
        let listed: Vec<String> = FIXTURES.iter().map(|(f, _)| (*f).to_owned()).collect();
        assert_eq!(
            found, listed,
            "fixture files changed: update FIXTURES and the tests"
        );
        for (file, used_by) in FIXTURES {
            if used_by.starts_with("not applicable") {
                eprintln!("VECTORS {file}: skipped whole file ({used_by})");
            }
        }
    }

    /// The "not applicable" ecosystems really do order differently from the
    /// scheme they most resemble, which is why `for_ecosystem` has no scheme
    /// for them; likewise RubyGems, NuGet and Packagist need schemes of their
    /// own.
    #[test]
    fn not_applicable_ecosystems_differ() {
        let contradicts = |rel: &str, scheme: Scheme| {
            testutil::scalibr_lines(rel)
                .iter()
                .any(|l| scheme.compare(&l.a, &l.b) != Ok(testutil::op_ordering(&l.op)))
        };
        assert!(contradicts("osv-semantic/pub-versions.txt", Scheme::Semver));
        assert!(contradicts(
            "osv-semantic/nuget-versions.txt",
            Scheme::Semver
        ));
        assert!(contradicts(
            "osv-semantic/packagist-versions.txt",
            Scheme::Semver
        ));
        assert!(contradicts(
            "osv-semantic/rubygems-versions.txt",
            Scheme::Semver
        ));
        assert!(contradicts("osv-semantic/cran-versions.txt", Scheme::Dpkg));
        assert_eq!(Scheme::for_ecosystem("Hackage"), None);
    }
}
