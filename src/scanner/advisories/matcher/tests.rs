//! Matching tables from real package databases against the real advisory bundles.

use std::collections::HashSet;
use std::sync::OnceLock;

use super::*;
use crate::scanner::advisories::osv::{Advisory, parse_record, parse_records, parse_yaml_records};
use crate::scanner::advisories::testdata;

fn bundle(rel: &str) -> Vec<Advisory> {
    testdata::zip_entries(rel)
        .iter()
        .flat_map(|(_, bytes)| parse_records(bytes))
        .map(Result::unwrap)
        .collect()
}

fn debian() -> &'static [Advisory] {
    static CELL: OnceLock<Vec<Advisory>> = OnceLock::new();
    CELL.get_or_init(|| bundle("osv/debian-dsa-dla.zip"))
}

fn alpine() -> &'static [Advisory] {
    static CELL: OnceLock<Vec<Advisory>> = OnceLock::new();
    CELL.get_or_init(|| bundle("osv/alpine-secdb.zip"))
}

fn record(rel: &str) -> Advisory {
    parse_record(&testdata::read_bytes(&format!("osv/records/{rel}"))).unwrap()
}

/// What the store does: load the affected rows whose (ecosystem, name) is one of the keys.
fn candidates(inv: &Inventory, advisories: &[Advisory]) -> Vec<Candidate> {
    let keys: HashSet<(String, String)> = match_keys(inv).into_iter().collect();
    advisories
        .iter()
        .flat_map(Candidate::from_advisory)
        .filter(|c| keys.contains(&(c.affected.ecosystem.clone(), c.affected.name.clone())))
        .collect()
}

fn find<'a>(r: &'a MatchReport, package: &str, advisory: &str) -> &'a Match {
    r.matches
        .iter()
        .find(|m| m.package_name == package && m.advisory_id == advisory)
        .unwrap_or_else(|| panic!("no match {package} / {advisory}"))
}

fn os(id: &str, version: &str) -> Option<OsRelease> {
    Some(OsRelease {
        id: id.to_owned(),
        version_id: Some(version.to_owned()),
        id_like: Vec::new(),
        pretty_name: None,
    })
}

fn package(kind: PackageKind, name: &str, version: &str) -> InventoryPackage {
    InventoryPackage {
        kind,
        name: name.to_owned(),
        version: version.to_owned(),
        source_name: None,
        source_version: None,
        layer_digest: None,
        file_path: None,
        owner: None,
    }
}

/// scalibr's dpkg fixture `transitional`: `iceweasel` built from source `firefox-esr`, version
/// 78.13.0esr-1~deb10u1 (a buster upload), on Debian 10.
#[test]
fn dpkg_binary_from_differently_named_source() {
    let inv = Inventory {
        os: Some(testdata::os_release(
            "pkgdb/debian/os-release/debian-10/etc/os-release",
        )),
        packages: testdata::dpkg_status("pkgdb/debian/scalibr-dpkg/transitional", "sha256:l1"),
        unreadable: Vec::new(),
    };
    assert_eq!(
        match_keys(&inv),
        [("Debian:10".to_owned(), "firefox-esr".to_owned())]
    );
    let c = candidates(&inv, debian());
    assert_eq!(
        c.len(),
        47,
        "Debian:10 firefox-esr advisories in the bundle"
    );
    let r = match_inventory(&inv, &c);
    assert!(r.unknown.is_empty(), "{:?}", r.unknown);
    assert_eq!(r.unsupported_os, None);
    // Every DSA/DLA whose fix is above 78.13.0esr-1~deb10u1 (checked with dpkg --compare-versions).
    assert_eq!(r.matches.len(), 20);
    let m = find(&r, "iceweasel", "DLA-3080-1");
    assert_eq!(m.fixed_version.as_deref(), Some("91.13.0esr-1~deb10u1"));
    assert_eq!(m.source_name.as_deref(), Some("firefox-esr"));
    assert_eq!(m.installed_version, "78.13.0esr-1~deb10u1");
    assert_eq!(m.ecosystem, "Debian:10");
    assert_eq!(m.category, "Debian");
    assert!(m.patchable);
    assert_eq!(m.layer_digest.as_deref(), Some("sha256:l1"));
    assert_eq!(
        m.remediation,
        "Upgrade iceweasel from 78.13.0esr-1~deb10u1 to 91.13.0esr-1~deb10u1 or later. The fix \
         is in source package firefox-esr version 91.13.0esr-1~deb10u1."
    );
    assert_eq!(m.display_name, "iceweasel: firefox-esr - security update");
    assert_eq!(
        (m.severity, m.severity_source.as_str()),
        (Severity::Medium, "default")
    );
    assert_eq!(m.impact, "Medium severity (default)");
    let fixes: HashSet<&str> = r
        .matches
        .iter()
        .filter_map(|m| m.fixed_version.as_deref())
        .collect();
    assert!(fixes.contains("102.3.0esr-1~deb10u2"));
    assert!(r.matches.iter().all(|m| m.package_name == "iceweasel"));
}

/// claircore's `postgresql-deb10` status: `postgresql-client 11+200+deb10u5` is built from
/// `postgresql-common (200+deb10u5)` — another name AND another version. DSA-4568-1 fixed
/// postgresql-common in 200+deb10u3: compared with the source version the package is fixed;
/// compared with the binary version (11+200… < 200…) it would wrongly be "affected".
#[test]
fn dpkg_source_name_and_version_differ() {
    let inv = Inventory {
        os: Some(testdata::os_release(
            "pkgdb/debian/os-release/debian-10/etc/os-release",
        )),
        packages: testdata::dpkg_status(
            "pkgdb/debian/claircore-postgresql-deb10/var/lib/dpkg/status",
            "sha256:l1",
        ),
        unreadable: Vec::new(),
    };
    let client = &inv.packages[0];
    assert_eq!(
        (
            client.name.as_str(),
            client.version.as_str(),
            client.source_name.as_deref(),
            client.source_version.as_deref()
        ),
        (
            "postgresql-client",
            "11+200+deb10u5",
            Some("postgresql-common"),
            Some("200+deb10u5")
        )
    );
    assert_eq!(
        match_keys(&inv),
        [
            ("Debian:10".to_owned(), "postgresql-11".to_owned()),
            ("Debian:10".to_owned(), "postgresql-common".to_owned())
        ]
    );
    let c = candidates(&inv, debian());
    let dsa = c.iter().find(|c| c.advisory.id == "DSA-4568-1").unwrap();
    assert!(
        ranges::affected(&dsa.affected, "11+200+deb10u5")
            .unwrap()
            .affected
    );
    assert!(
        !ranges::affected(&dsa.affected, "200+deb10u5")
            .unwrap()
            .affected
    );
    let r = match_inventory(&inv, &c);
    assert_eq!(r.matches, []);
    assert_eq!(r.unknown, []);

    // The same package one upload before the fix is affected, with the source's fix.
    let mut old = inv.clone();
    old.packages[0].source_version = Some("200+deb10u2".to_owned());
    old.packages[0].version = "11+200+deb10u2".to_owned();
    let r = match_inventory(&old, &c);
    let m = find(&r, "postgresql-client", "DSA-4568-1");
    assert_eq!(m.fixed_version.as_deref(), Some("200+deb10u3"));
    assert_eq!(m.compared_version, "200+deb10u2");
    assert_eq!(m.installed_version, "11+200+deb10u2");
    assert_eq!(m.cves[0].title, "CVE-2019-3466");
    assert_eq!(
        m.cves[0].link,
        "https://nvd.nist.gov/vuln/detail/CVE-2019-3466"
    );
    assert_eq!(r.matches.len(), 1);
}

/// A real Debian 10 image's package inventory (claircore's index report for
/// `buster-jackson-databind`; 91 dpkg packages with their `Source:` as dpkg writes it).
fn claircore_buster() -> Inventory {
    let report = testdata::read_json("golden/claircore/indexreport-buster-jackson-databind.json");
    let mut packages: Vec<InventoryPackage> = report["packages"]
        .as_object()
        .unwrap()
        .values()
        .map(|p| {
            let source = p["source"]["name"].as_str().unwrap_or("");
            let (source_name, source_version) = match source.split_once(" (") {
                Some((n, v)) => (Some(n.to_owned()), Some(v.trim_end_matches(')').to_owned())),
                None if source.is_empty() => (None, None),
                None => (Some(source.to_owned()), None),
            };
            InventoryPackage {
                kind: PackageKind::Dpkg,
                name: p["name"].as_str().unwrap().to_owned(),
                version: p["version"].as_str().unwrap().to_owned(),
                source_name,
                source_version,
                layer_digest: None,
                file_path: None,
                owner: None,
            }
        })
        .collect();
    packages.sort_by(|a, b| a.name.cmp(&b.name));
    let dist = report["distributions"]
        .as_object()
        .unwrap()
        .values()
        .next()
        .unwrap();
    Inventory {
        os: Some(OsRelease {
            id: dist["did"].as_str().unwrap().to_owned(),
            version_id: dist["version_id"].as_str().map(str::to_owned),
            id_like: Vec::new(),
            pretty_name: dist["pretty_name"].as_str().map(str::to_owned),
        }),
        packages: packages
            .into_iter()
            .filter(|p| p.kind == PackageKind::Dpkg)
            .collect(),
        unreadable: Vec::new(),
    }
}

#[test]
fn debian_10_image() {
    let inv = claircore_buster();
    assert_eq!(inv.packages.len(), 91);
    let c = candidates(&inv, debian());
    assert!(c.iter().all(|c| c.affected.ecosystem == "Debian:10"));
    let r = match_inventory(&inv, &c);
    assert!(r.unknown.is_empty(), "{:?}", r.unknown);
    // Cross-checked with `dpkg --compare-versions` over the same bundle.
    assert_eq!(r.matches.len(), 40);
    let table = [
        ("apt", "DSA-4808-1", "1.8.2.2", None),
        ("libapt-pkg5.0", "DSA-4808-1", "1.8.2.2", Some("apt")),
        (
            "libgnutls30",
            "DSA-4652-1",
            "3.6.7-4+deb10u3",
            Some("gnutls28"),
        ),
        (
            "libgnutls30",
            "DLA-3321-1",
            "3.6.7-4+deb10u10",
            Some("gnutls28"),
        ),
        ("libc6", "DLA-3152-1", "2.28-10+deb10u2", Some("glibc")),
        ("gpgv", "DSA-5174-1", "2.2.12-1+deb10u2", Some("gnupg2")),
        (
            "zlib1g",
            "DSA-5111-1",
            "1:1.2.11.dfsg-1+deb10u1",
            Some("zlib"),
        ),
        ("tzdata", "DLA-3366-1", "2021a-0+deb10u10", None),
        (
            "libsystemd0",
            "DSA-4942-1",
            "241-7~deb10u8",
            Some("systemd"),
        ),
    ];
    for (package, advisory, fixed, source) in table {
        let m = find(&r, package, advisory);
        assert_eq!(
            m.fixed_version.as_deref(),
            Some(fixed),
            "{package} {advisory}"
        );
        assert_eq!(m.source_name.as_deref(), source, "{package} {advisory}");
    }
    // One source, several binaries: each gets its own match.
    let e2fs: Vec<&str> = r
        .matches
        .iter()
        .filter(|m| m.advisory_id == "DSA-4535-1")
        .map(|m| m.package_name.as_str())
        .collect();
    assert_eq!(e2fs, ["e2fsprogs", "libcom-err2", "libext2fs2", "libss2"]);
    // No duplicate (advisory, package) pairs.
    let pairs: HashSet<(&str, &str)> = r
        .matches
        .iter()
        .map(|m| (m.advisory_id.as_str(), m.package_name.as_str()))
        .collect();
    assert_eq!(pairs.len(), r.matches.len());
    // Binaries whose dpkg Source has another name and version (binNMU `+b1`, epochs) are looked
    // up by source name.
    let keys = match_keys(&inv);
    for key in ["libselinux", "util-linux", "gcc-8", "mawk"] {
        assert!(
            keys.contains(&("Debian:10".to_owned(), key.to_owned())),
            "{key}"
        );
    }
    assert!(
        !keys
            .iter()
            .any(|(_, n)| n == "libselinux1" || n == "bsdutils")
    );
}

/// The alias severity the store supplies for severity-less DSA records.
#[test]
fn alias_severity_is_used() {
    let inv = claircore_buster();
    let mut c = candidates(&inv, debian());
    for cand in c.iter_mut().filter(|c| c.advisory.id == "DSA-5111-1") {
        assert!(crate::scanner::advisories::severity::needs_alias(
            &cand.advisory.severity,
            &cand.affected
        ));
        cand.alias_severity = Some(AliasSeverity {
            id: cand.advisory.aliases[0].clone(),
            severity: SeverityInfo {
                level: Severity::High,
                source: "cvss_v3".to_owned(),
                cvss_v2: None,
                cvss_v3: Some(7.5),
                cvss_v4: None,
            },
        });
    }
    let r = match_inventory(&inv, &c);
    let m = find(&r, "zlib1g", "DSA-5111-1");
    assert_eq!(m.severity, Severity::High);
    assert_eq!(m.severity_source, format!("alias:{}", m.cves[0].title));
    assert_eq!(m.impact, "High severity; CVSS 3.x 7.5");
}

/// trivy's Alpine 3.4 `installed` db: libcrypto1.0 / libssl1.0 have origin `o:openssl`, the
/// Alpine secdb records name the source `openssl`.
#[test]
fn apk_origin() {
    let inv = Inventory {
        os: os("alpine", "3.4.6"),
        packages: testdata::apk_installed(
            "pkgdb/alpine/trivy-alpine-3.4/lib/apk/db/installed",
            "sha256:base",
        ),
        unreadable: Vec::new(),
    };
    let keys = match_keys(&inv);
    assert!(keys.contains(&("Alpine:v3.4".to_owned(), "openssl".to_owned())));
    assert!(keys.contains(&("Alpine:v3.4".to_owned(), "musl".to_owned())));
    assert!(
        !keys
            .iter()
            .any(|(_, n)| n == "libssl1.0" || n == "libcrypto1.0")
    );
    let c = candidates(&inv, alpine());
    let r = match_inventory(&inv, &c);
    assert!(r.unknown.is_empty(), "{:?}", r.unknown);
    let ssl = find(&r, "libssl1.0", "ALPINE-CVE-2016-2180");
    assert_eq!(ssl.source_name.as_deref(), Some("openssl"));
    assert_eq!(ssl.ecosystem, "Alpine:v3.4");
    assert_eq!(ssl.category, "Alpine");
    let crypto = find(&r, "libcrypto1.0", "ALPINE-CVE-2016-2180");
    assert_eq!(ssl.fixed_version, crypto.fixed_version);
    assert_eq!(ssl.cves[0].title, "CVE-2016-2180");
    assert_eq!(ssl.fixed_version.as_deref(), Some("1.0.2h-r2"));
    // openssl (libcrypto1.0 + libssl1.0: 23 each), musl (+ musl-utils), busybox, zlib.
    assert_eq!(r.matches.len(), 57);
}

#[test]
fn language_packages() {
    let ghsa = record("ghsa/ghsa-converter-testdata/pypi_normalize.osv.json");
    let pysec = record("pypi/osvdev-test_vuln.json");
    let withdrawn = record("pypi/osvdev-test_vuln_withdrawn.json");
    let go = record("go/GO-2022-1144.json");
    let inv = Inventory {
        os: None,
        packages: vec![
            package(
                PackageKind::Python,
                "Products.PluggableAuthService",
                "2.6.0",
            ),
            package(PackageKind::Python, "cryptography", "3.2.1"),
            package(PackageKind::Go, "golang.org/x/net", "v0.1.0"),
            package(PackageKind::Go, "stdlib", "1.19.2"),
        ],
        unreadable: Vec::new(),
    };
    assert_eq!(
        match_keys(&inv),
        [
            ("Go".to_owned(), "golang.org/x/net".to_owned()),
            ("Go".to_owned(), "stdlib".to_owned()),
            ("PyPI".to_owned(), "cryptography".to_owned()),
            (
                "PyPI".to_owned(),
                "products-pluggableauthservice".to_owned()
            ),
        ]
    );
    let all = [ghsa, pysec, withdrawn, go];
    let c = candidates(&inv, &all);
    let r = match_inventory(&inv, &c);
    assert_eq!(r.unsupported_os, None);
    assert!(r.unknown.is_empty(), "{:?}", r.unknown);
    let m = find(&r, "Products.PluggableAuthService", "GHSA-p44j-xrqg-4xrr");
    assert_eq!(m.fixed_version.as_deref(), Some("2.6.1"));
    assert_eq!(
        (m.category.as_str(), m.ecosystem.as_str()),
        ("PyPI", "PyPI")
    );
    // PYSEC-2021-63 matches once (two affected entries, the second matches) and its withdrawn
    // twin (same id) never does.
    let crypto: Vec<&Match> = r
        .matches
        .iter()
        .filter(|m| m.package_name == "cryptography")
        .collect();
    assert_eq!(crypto.len(), 1);
    assert_eq!(crypto[0].fixed_version.as_deref(), Some("3.3.2"));
    assert_eq!(
        find(&r, "golang.org/x/net", "GO-2022-1144")
            .fixed_version
            .as_deref(),
        Some("0.4.0")
    );
    assert_eq!(
        find(&r, "stdlib", "GO-2022-1144").fixed_version.as_deref(),
        Some("1.19.4")
    );
    assert_eq!(r.matches.len(), 4);

    // Only the withdrawn record: nothing.
    let only_withdrawn = Candidate::from_advisory(&all[2]);
    assert!(match_inventory(&inv, &only_withdrawn).matches.is_empty());
}

#[test]
fn unknown_versions_and_unsupported_os() {
    let go = record("go/GO-2022-1144.json");
    let inv = Inventory {
        os: os("amzn", "2"),
        packages: vec![
            package(PackageKind::Rpm, "bash", "4.2.46-34.amzn2"),
            package(PackageKind::Go, "golang.org/x/net", "not-a-version"),
        ],
        unreadable: Vec::new(),
    };
    let r = match_inventory(&inv, &Candidate::from_advisory(&go));
    assert_eq!(
        r.unsupported_os.as_deref(),
        Some("no advisories for OS \"amzn\" version \"2\"")
    );
    assert_eq!(r.matches, []);
    assert_eq!(r.unknown.len(), 1);
    assert_eq!(r.unknown[0].advisory_id.as_deref(), Some("GO-2022-1144"));
    assert_eq!(r.unknown[0].package, "golang.org/x/net");
    assert!(
        r.unknown[0]
            .reason
            .starts_with("installed version \"not-a-version\" cannot be parsed as Semver"),
        "{}",
        r.unknown[0].reason
    );
    assert_eq!(
        match_keys(&inv),
        [("Go".to_owned(), "golang.org/x/net".to_owned())]
    );

    // No os-release at all.
    let bare = Inventory {
        os: None,
        packages: vec![package(PackageKind::Dpkg, "bash", "5.0-4")],
        unreadable: Vec::new(),
    };
    assert_eq!(
        match_inventory(&bare, &[]).unsupported_os.as_deref(),
        Some("OS packages found but no os-release: the OS is unknown")
    );
    // A dpkg package on an Alpine image.
    let odd = Inventory {
        os: os("alpine", "3.18.4"),
        packages: vec![package(PackageKind::Dpkg, "bash", "5.0-4")],
        unreadable: Vec::new(),
    };
    let r = match_inventory(&odd, &[]);
    assert_eq!(r.unsupported_os, None);
    assert_eq!(r.unknown[0].advisory_id, None);
    assert_eq!(
        r.unknown[0].reason,
        "Dpkg package on this Alpine image: no advisory ecosystem for it"
    );
}

/// Ubuntu Pro records are matched after the public ones; the Linux record has no fix.
#[test]
fn ubuntu_pro_without_fix() {
    let u = record("ubuntu/UBUNTU-CVE-2025-38094.json");
    let inv = Inventory {
        os: os("ubuntu", "14.04"),
        packages: vec![InventoryPackage {
            source_name: Some("linux".to_owned()),
            ..package(PackageKind::Dpkg, "linux-libc-dev", "3.13.0-24.46")
        }],
        unreadable: Vec::new(),
    };
    assert_eq!(
        match_keys(&inv),
        [
            ("Ubuntu:14.04:LTS".to_owned(), "linux".to_owned()),
            ("Ubuntu:Pro:14.04:LTS".to_owned(), "linux".to_owned())
        ]
    );
    let r = match_inventory(&inv, &Candidate::from_advisory(&u));
    let m = find(&r, "linux-libc-dev", "UBUNTU-CVE-2025-38094");
    assert_eq!(m.fixed_version, None);
    assert!(!m.patchable);
    assert_eq!(m.category, "Ubuntu");
    assert_eq!(
        (m.severity, m.severity_source.as_str()),
        (Severity::Medium, "ubuntu_priority")
    );
    assert_eq!(
        m.remediation,
        "No fix is available yet; linux-libc-dev 3.13.0-24.46 remains affected by \
         UBUNTU-CVE-2025-38094. Remove the package or mitigate the vulnerability until a fixed \
         version is published."
    );
    assert_eq!(m.cves[0].title, "CVE-2025-38094");
    assert_eq!(m.vendor_references[0].title, "REPORT");
}

/// AlmaLinux lists binary RPMs: `openssl-libs` matches by its own name and by its source RPM,
/// once. Red Hat's fixture records are for extended-support streams, which a RHEL image is not
/// matched against.
#[test]
fn rpm_distributions() {
    let alsa = record("almalinux/almalinux9/ALSA-2026_25239.json");
    let inv = Inventory {
        os: os("almalinux", "9.3"),
        packages: vec![InventoryPackage {
            source_name: Some("openssl-3.0.7-24.el9.src.rpm".to_owned()),
            ..package(PackageKind::Rpm, "openssl-libs", "1:3.0.7-24.el9")
        }],
        unreadable: Vec::new(),
    };
    assert_eq!(
        match_keys(&inv),
        [
            ("AlmaLinux:9".to_owned(), "openssl".to_owned()),
            ("AlmaLinux:9".to_owned(), "openssl-libs".to_owned())
        ]
    );
    let r = match_inventory(&inv, &Candidate::from_advisory(&alsa));
    assert_eq!(r.matches.len(), 1);
    let m = &r.matches[0];
    assert_eq!(m.fixed_version.as_deref(), Some("1:3.5.5-4.el9_8"));
    assert_eq!(m.source_name, None, "matched by its binary name first");
    assert_eq!(m.category, "AlmaLinux");
    assert_eq!(m.compared_version, "1:3.0.7-24.el9");

    let rhsa = record("redhat/RHSA-2024_4546.json");
    let rhel = Inventory {
        os: os("rhel", "8.6"),
        packages: vec![package(PackageKind::Rpm, "git-lfs", "2.13.3-3.el8_6")],
        unreadable: Vec::new(),
    };
    assert!(
        match_keys(&rhel)
            .iter()
            .all(|(e, _)| e.starts_with("Red Hat:enterprise_linux:8::"))
    );
    assert!(
        match_inventory(&rhel, &Candidate::from_advisory(&rhsa))
            .matches
            .is_empty()
    );
    // The same record's entries re-keyed to the main stream match by binary name.
    let mut main: Vec<Candidate> = Candidate::from_advisory(&rhsa);
    for c in &mut main {
        std::sync::Arc::make_mut(&mut c.affected).ecosystem =
            "Red Hat:enterprise_linux:8::appstream".to_owned();
    }
    let r = match_inventory(&rhel, &main);
    assert_eq!(r.matches.len(), 1);
    assert_eq!(
        r.matches[0].fixed_version.as_deref(),
        Some("0:2.13.3-3.el8_6.1")
    );
    assert_eq!(r.matches[0].category, "Red Hat");
    assert_eq!(srpm_name("openssl-3.0.7-24.el9.src.rpm"), "openssl");
    assert_eq!(srpm_name("python3.11-3.11.5-1.el9.nosrc.rpm"), "python3.11");
    assert_eq!(srpm_name("openssl"), "openssl");
}

#[test]
fn candidate_round_trips_through_json() {
    let inv = claircore_buster();
    let c = candidates(&inv, debian());
    let meta = serde_json::to_string(&c[0].advisory).unwrap();
    let affected = serde_json::to_string(&c[0].affected).unwrap();
    let rebuilt = Candidate {
        advisory: serde_json::from_str(&meta).unwrap(),
        affected: serde_json::from_str(&affected).unwrap(),
        alias_severity: None,
        ratings: Vec::new(),
    };
    assert_eq!(rebuilt, c[0]);
    let r = match_inventory(&inv, &c);
    let json = serde_json::to_string(&r).unwrap();
    let back: MatchReport = serde_json::from_str(&json).unwrap();
    assert_eq!(back, r);
}

/// 700 packages (every Debian 10 source in the bundle, as binaries from those sources, plus
/// padding): the candidates the store would select by key find exactly the matches that every
/// Debian record of every release finds. (Its speed is measured by `cargo bench --bench advisories`.)
#[test]
fn key_selected_candidates_find_what_all_candidates_find() {
    let advisories = debian();
    let mut sources: Vec<&str> = advisories
        .iter()
        .flat_map(|a| a.affected.iter())
        .filter(|p| p.ecosystem == "Debian:10")
        .map(|p| p.name.as_str())
        .collect();
    sources.sort_unstable();
    sources.dedup();
    let mut packages = Vec::with_capacity(700);
    let mut i = 0;
    while packages.len() < 700 {
        let src = sources[i % sources.len()];
        packages.push(InventoryPackage {
            kind: PackageKind::Dpkg,
            name: format!("{src}-bin{i}"),
            // Half old (affected by most), half new (affected by none).
            version: if i % 2 == 0 {
                "0.1-1".to_owned()
            } else {
                "999:1-1".to_owned()
            },
            source_name: Some(src.to_owned()),
            source_version: None,
            layer_digest: Some("sha256:layer".to_owned()),
            file_path: None,
            owner: None,
        });
        i += 1;
    }
    let inv = Inventory {
        os: os("debian", "10"),
        packages,
        unreadable: Vec::new(),
    };
    let c = candidates(&inv, advisories);
    assert!(c.len() > 900, "{}", c.len());
    let all: Vec<Candidate> = advisories
        .iter()
        .flat_map(Candidate::from_advisory)
        .collect();
    let selected = match_inventory(&inv, &c);
    assert!(selected.unknown.is_empty());
    assert!(selected.matches.len() > 300, "{}", selected.matches.len());
    assert_eq!(match_inventory(&inv, &all).matches, selected.matches);
}

#[test]
fn package_ecosystems_name_each_release_once_with_where_it_is_looked_up() {
    let mut dpkg = package(PackageKind::Dpkg, "libssl3", "3.0.2-0ubuntu1.10");
    dpkg.source_name = Some("openssl".to_owned());
    let inventory = Inventory {
        os: os("ubuntu", "22.04"),
        packages: vec![
            dpkg,
            package(PackageKind::Dpkg, "base-files", "12ubuntu4.4"),
            package(PackageKind::Python, "Demo_Pkg", "1.0"),
            // No advisory ecosystem for an apk package on Ubuntu: reported as unknown instead.
            package(PackageKind::Apk, "musl", "1.2.4-r2"),
        ],
        unreadable: Vec::new(),
    };
    assert_eq!(
        package_ecosystems(&inventory),
        vec![
            PackageEcosystem {
                ecosystem: "PyPI".to_owned(),
                matched_in: vec!["PyPI".to_owned()],
                packages: 1,
            },
            PackageEcosystem {
                ecosystem: "Ubuntu:22.04:LTS".to_owned(),
                matched_in: vec![
                    "Ubuntu:22.04:LTS".to_owned(),
                    "Ubuntu:Pro:22.04:LTS".to_owned()
                ],
                packages: 2,
            },
        ]
    );
    // An OS without advisories gives no ecosystem: the image is UnsupportedOs instead.
    let unknown = Inventory {
        os: os("wolfi", "20230201"),
        packages: vec![package(PackageKind::Apk, "glibc", "2.38-r1")],
        unreadable: Vec::new(),
    };
    assert!(package_ecosystems(&unknown).is_empty());
}

/// A language package an OS package installed (`owner`) is assessed through its owner: no
/// lookup in its own ecosystem, no match there, not counted among that ecosystem's packages.
/// The same name and version without an owner (pip-installed) is matched as before.
#[test]
fn owned_language_packages_are_not_matched_in_their_ecosystem() {
    let advisory = parse_yaml_records(&testdata::read_bytes("osv/records/pypi/PYSEC-2024-60.yaml"))
        .into_iter()
        .map(Result::unwrap)
        .collect::<Vec<_>>();
    let mut debian = package(PackageKind::Dpkg, "python3-idna", "3.3-1+deb12u1");
    debian.source_name = Some("python-idna".to_owned());
    let mut owned = package(PackageKind::Python, "idna", "3.3");
    owned.owner = Some("python3-idna".to_owned());
    owned.file_path = Some("usr/lib/python3/dist-packages/idna-3.3.egg-info/PKG-INFO".to_owned());
    let mut venv = package(PackageKind::Python, "idna", "3.3");
    venv.file_path =
        Some("opt/venv/lib/python3.11/site-packages/idna-3.3.dist-info/METADATA".to_owned());

    let only_owned = Inventory {
        os: os("debian", "12"),
        packages: vec![debian.clone(), owned.clone()],
        unreadable: Vec::new(),
    };
    assert_eq!(
        match_keys(&only_owned),
        [("Debian:12".to_owned(), "python-idna".to_owned())]
    );
    let candidates: Vec<Candidate> = advisory.iter().flat_map(Candidate::from_advisory).collect();
    let r = match_inventory(&only_owned, &candidates);
    assert!(r.matches.is_empty(), "{:?}", r.matches);
    assert!(r.unknown.is_empty());
    assert_eq!(
        package_ecosystems(&only_owned)
            .iter()
            .map(|e| (e.ecosystem.as_str(), e.packages))
            .collect::<Vec<_>>(),
        [("Debian:12", 1)]
    );

    let both = Inventory {
        os: os("debian", "12"),
        packages: vec![debian, owned, venv],
        unreadable: Vec::new(),
    };
    assert!(match_keys(&both).contains(&("PyPI".to_owned(), "idna".to_owned())));
    let r = match_inventory(&both, &candidates);
    assert_eq!(r.matches.len(), 1);
    let m = find(&r, "idna", "PYSEC-2024-60");
    assert_eq!(
        (m.installed_version.as_str(), m.fixed_version.as_deref()),
        ("3.3", Some("3.7"))
    );
}

/// RubyGems, NuGet and Packagist packages against real GHSA records (osv-scalibr's zeppelin
/// bundle and the GHSA converter's test data): a version inside a range matches, the fixed
/// version does not; NuGet and Packagist names match whatever their case.
#[test]
fn rubygems_nuget_packagist_packages() {
    let mut all = parse_records(&testdata::read_bytes(
        "osv/records/maven/bundle-osv-scalibr-zeppelin-server-vulnerabilities.json",
    ))
    .into_iter()
    .flatten()
    .collect::<Vec<_>>();
    all.push(record(
        "ghsa/ghsa-converter-testdata/multiple_ranges_in_package.osv.json",
    ));
    let inv = Inventory {
        os: None,
        packages: vec![
            package(PackageKind::RubyGems, "google-protobuf", "3.21.0.rc.2"),
            package(PackageKind::RubyGems, "google-protobuf", "3.21.7"),
            package(PackageKind::RubyGems, "passenger", "3.0.20"),
            package(PackageKind::RubyGems, "passenger", "4.0.0.rc4"),
            package(PackageKind::RubyGems, "passenger", "4.0.5"),
            package(PackageKind::RubyGems, "Passenger", "3.0.20"),
            package(PackageKind::NuGet, "google.protobuf", "3.14.0"),
            package(PackageKind::NuGet, "Google.Protobuf", "3.15.0"),
            package(PackageKind::Packagist, "google/protobuf", "v3.14.0"),
            package(PackageKind::Packagist, "Google/Protobuf", "v3.15.0"),
        ],
        unreadable: Vec::new(),
    };
    assert_eq!(
        match_keys(&inv),
        [
            ("NuGet".to_owned(), "google.protobuf".to_owned()),
            ("Packagist".to_owned(), "google/protobuf".to_owned()),
            ("RubyGems".to_owned(), "Passenger".to_owned()),
            ("RubyGems".to_owned(), "google-protobuf".to_owned()),
            ("RubyGems".to_owned(), "passenger".to_owned()),
        ]
    );
    let c = candidates(&inv, &all);
    let r = match_inventory(&inv, &c);
    assert!(r.unknown.is_empty(), "{:?}", r.unknown);
    let got: Vec<(&str, &str, &str, Option<&str>, &str)> = r
        .matches
        .iter()
        .map(|m| {
            (
                m.package_name.as_str(),
                m.installed_version.as_str(),
                m.advisory_id.as_str(),
                m.fixed_version.as_deref(),
                m.ecosystem.as_str(),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            (
                "google-protobuf",
                "3.21.0.rc.2",
                "GHSA-h4h5-3hr4-j3g2",
                Some("3.21.7"),
                "RubyGems"
            ),
            (
                "passenger",
                "3.0.20",
                "GHSA-9qj7-jvg4-qr2x",
                Some("3.0.21"),
                "RubyGems"
            ),
            (
                "google.protobuf",
                "3.14.0",
                "GHSA-77rm-9x9h-xj3g",
                Some("3.15.0"),
                "NuGet"
            ),
            (
                "google/protobuf",
                "v3.14.0",
                "GHSA-77rm-9x9h-xj3g",
                Some("3.15.0"),
                "Packagist"
            ),
        ]
    );
}
