//! The framework: FileSet, path normalisation, `defaults`, `analyze_all`.

use super::testutil::{LAYER, fixture_tree, read, set};
use super::*;
use crate::scanner::advisories::ecosystem::os_ecosystem;
use crate::scanner::advisories::matcher::PackageKind;

#[test]
fn normalise_paths() {
    for (raw, want) in [
        ("var/lib/dpkg/status", Some("var/lib/dpkg/status")),
        ("./var/lib/dpkg/status", Some("var/lib/dpkg/status")),
        ("/var/lib/dpkg/status", Some("var/lib/dpkg/status")),
        ("var//lib/./dpkg/status", Some("var/lib/dpkg/status")),
        ("var/lib/dpkg/status.d/", Some("var/lib/dpkg/status.d")),
        ("../etc/passwd", None),
        ("var/../../etc/passwd", None),
        ("var/lib/../x", None),
        ("./", None),
        ("/", None),
        ("", None),
    ] {
        assert_eq!(normalize_path(raw).as_deref(), want, "{raw:?}");
    }
}

#[test]
fn file_set() {
    let mut files = set(&[
        ("var/lib/dpkg/status", "a"),
        ("var/lib/dpkg/status.d/a", "b"),
        ("var/lib/dpkg/status.d/b", "c"),
        ("var/lib/dpkg/status.dx", "d"),
        ("var/lib/dpkg/status.d/b/nested", "e"),
    ]);
    assert_eq!(files.len(), 5);
    let prefixed: Vec<&str> = files
        .with_prefix("var/lib/dpkg/status.d/")
        .map(|(p, _)| p)
        .collect();
    assert_eq!(
        prefixed,
        [
            "var/lib/dpkg/status.d/a",
            "var/lib/dpkg/status.d/b",
            "var/lib/dpkg/status.d/b/nested"
        ]
    );
    assert_eq!(files.with_prefix("zzz").count(), 0);
    assert_eq!(files.with_prefix("").count(), 5);
    // A later layer replaces a file.
    let old = files.insert(
        "var/lib/dpkg/status",
        CollectedFile::new(&b"new"[..], "sha256:l2"),
    );
    assert_eq!(
        old.and_then(|f| f.content.as_memory().map(<[u8]>::to_vec)),
        Some(b"a".to_vec())
    );
    assert_eq!(
        files
            .get("var/lib/dpkg/status")
            .map(|f| f.layer_digest.as_str()),
        Some("sha256:l2")
    );
    // Whiteouts.
    assert_eq!(files.remove_dir("var/lib/dpkg/status.d/"), 3);
    assert!(
        files.get("var/lib/dpkg/status.dx").is_some(),
        "not below the directory"
    );
    assert!(files.remove("var/lib/dpkg/status.dx").is_some());
    assert_eq!(
        files.iter().map(|(p, _)| p).collect::<Vec<_>>(),
        ["var/lib/dpkg/status"]
    );
    assert!(!files.is_empty());
    assert!(FileSet::new().is_empty());
}

#[test]
fn defaults_and_cache_key() {
    let analyzers = defaults();
    let ids = analyzer_ids(&analyzers);
    let names: Vec<&str> = ids.iter().map(|id| id.name).collect();
    assert_eq!(
        names,
        [
            "os-release",
            "dpkg",
            "apk",
            "rpm",
            "python",
            "npm",
            "gobinary",
            "rustaudit",
            "java",
            "ruby",
            "php",
            "dotnet"
        ]
    );
    assert!(ids.iter().all(|id| id.version >= 1));
    assert_eq!(
        cache_key(&ids),
        "apk@2,dotnet@1,dpkg@2,gobinary@1,java@1,npm@2,os-release@1,php@1,python@2,rpm@2,ruby@1,rustaudit@1"
    );
    let mut reordered = ids.clone();
    reordered.reverse();
    assert_eq!(cache_key(&reordered), cache_key(&ids));
    let mut bumped = ids.clone();
    bumped[1].version += 1;
    assert_ne!(cache_key(&bumped), cache_key(&ids));
}

/// Which analyzer wants which path: each path is wanted by exactly the analyzers listed.
#[test]
fn required_by_each_default_analyzer() {
    let analyzers = defaults();
    for (path, wanted_by) in [
        ("etc/os-release", &["os-release"][..]),
        ("usr/lib/os-release", &["os-release"]),
        ("etc/alpine-release", &["os-release"]),
        ("etc/debian_version", &["os-release"]),
        ("var/lib/dpkg/status", &["dpkg"]),
        ("var/lib/dpkg/status.d/libc6", &["dpkg"]),
        ("lib/apk/db/installed", &["apk"]),
        ("usr/lib/apk/db/installed", &["apk"]),
        ("var/lib/rpm/rpmdb.sqlite", &["rpm"]),
        ("var/lib/rpm/Packages", &["rpm"]),
        (
            "usr/lib/python3/dist-packages/six-1.16.0.dist-info/METADATA",
            &["python"],
        ),
        ("app/node_modules/express/package.json", &["npm"]),
        ("app/node_modules/.package-lock.json", &["npm"]),
        (
            "usr/lib/python3.6/site-packages/foo-1.0-py3.6.egg/EGG-INFO/PKG-INFO",
            &["python"],
        ),
        ("var/lib/dpkg/status.d/libc6.md5sums", &["dpkg"]),
        ("var/lib/dpkg/info/libc6:amd64.list", &["dpkg"]),
        ("app/app.jar", &["java"]),
        ("opt/tomcat/webapps/ROOT.war", &["java"]),
        (
            "usr/lib/ruby/gems/3.1.0/specifications/rake-13.0.6.gemspec",
            &["ruby"],
        ),
        ("var/www/vendor/composer/installed.json", &["php"]),
        ("app/MyApp.deps.json", &["dotnet"]),
        ("usr/bin/bash", &[]),
        ("etc/passwd", &[]),
        ("app/package.json", &[]),
        ("app/package-lock.json", &[]),
        ("var/lib/dpkg/info/libc6.md5sums", &[]),
    ] {
        let got: Vec<&str> = analyzers
            .iter()
            .filter(|a| a.required(path))
            .map(|a| a.name())
            .collect();
        assert_eq!(got, wanted_by, "{path}");
        assert_eq!(
            required_by_any(&analyzers, path),
            !wanted_by.is_empty(),
            "{path}"
        );
    }
}

/// A Debian image: os-release and the dpkg database from different layers.
#[test]
fn analyze_all_debian_image() {
    let mut files = fixture_tree("pkgdb/ubuntu/trivy-ubuntu-18.04");
    // trivy's txtar copy of the same database is not at an image path: not read.
    assert!(files.get("valid.txtar").is_some());
    files.insert(
        "etc/os-release",
        CollectedFile::new(
            read("pkgdb/ubuntu/os-release/ubuntu-18.04/etc/os-release"),
            "sha256:base",
        ),
    );
    let report = analyze_all(&defaults(), &files).unwrap();
    let os = report.inventory.os.as_ref().unwrap();
    assert_eq!(
        (os.id.as_str(), os.version_id.as_deref()),
        ("ubuntu", Some("18.04"))
    );
    assert_eq!(os_ecosystem(os).as_deref(), Some("Ubuntu:18.04:LTS"));
    // Same packages as the dpkg analyzer alone (90 installed of 91 stanzas).
    let dpkg = DpkgAnalyzer.analyze(&files).unwrap();
    assert_eq!(report.inventory.packages, dpkg.packages);
    assert_eq!(report.inventory.packages.len(), 90);
    assert!(
        report
            .inventory
            .packages
            .iter()
            .all(|p| p.kind == PackageKind::Dpkg && p.layer_digest.as_deref() == Some(LAYER))
    );
    assert_eq!(report.analyzers, analyzer_ids(&defaults()));
    assert!(report.warnings.is_empty());
    // The inventory is what the matcher consumes: source packages in the Ubuntu ecosystems.
    let keys = crate::scanner::advisories::matcher::match_keys(&report.inventory);
    assert!(keys.contains(&("Ubuntu:18.04:LTS".to_owned(), "util-linux".to_owned())));
    assert!(keys.contains(&("Ubuntu:Pro:18.04:LTS".to_owned(), "pam".to_owned())));
    assert!(
        !keys.iter().any(|(_, name)| name == "libpam-runtime"),
        "binary names are not keys"
    );
}

#[test]
fn analyze_all_merges_kinds_and_dedups() {
    let mut files = fixture_tree("pkgdb/alpine/grype-match-coverage");
    let npm = r#"{"name":"left-pad","version":"1.3.0"}"#;
    for (path, content) in [
        (
            "usr/lib/python3.12/site-packages/six-1.16.0.dist-info/METADATA",
            "Name: six\nVersion: 1.16.0\n",
        ),
        ("app/node_modules/left-pad/package.json", npm),
        // The same package installed twice in one layer: an entry per file (each is something
        // to upgrade), as syft lists them.
        ("app/node_modules/x/node_modules/left-pad/package.json", npm),
        ("app/node_modules/broken/package.json", "{"),
    ] {
        files.insert(path, CollectedFile::new(content.as_bytes(), "sha256:app"));
    }
    let report = analyze_all(&defaults(), &files).unwrap();
    assert_eq!(
        report.inventory.os.as_ref().map(|o| o.id.as_str()),
        Some("alpine")
    );
    let kinds: Vec<(PackageKind, &str)> = report
        .inventory
        .packages
        .iter()
        .map(|p| (p.kind, p.name.as_str()))
        .collect();
    assert_eq!(
        kinds.iter().filter(|(k, _)| *k == PackageKind::Apk).count(),
        3
    );
    assert_eq!(
        kinds[3..],
        [
            (PackageKind::Python, "six"),
            (PackageKind::Npm, "left-pad"),
            (PackageKind::Npm, "left-pad")
        ]
    );
    let left_pad: Vec<Option<&str>> = report.inventory.packages[4..]
        .iter()
        .map(|p| p.file_path.as_deref())
        .collect();
    assert_eq!(
        left_pad,
        [
            Some("app/node_modules/left-pad/package.json"),
            Some("app/node_modules/x/node_modules/left-pad/package.json")
        ]
    );
    assert_eq!(report.warnings.len(), 1);
    assert_eq!(report.warnings[0].analyzer, "npm");
    assert_eq!(
        report.warnings[0].path,
        "app/node_modules/broken/package.json"
    );
    assert!(
        report.warnings[0]
            .to_string()
            .starts_with("npm analyzer: app/node_modules/broken/package.json: ")
    );
}

/// A NUL cannot be stored as text (PostgreSQL refuses it): such a package is skipped with a
/// warning and the rest of the image is inventoried.
#[test]
fn packages_holding_nul_are_skipped_with_a_warning() {
    let mut files = set(&[
        (
            "etc/os-release",
            "ID=debian\nVERSION_ID=12\nPRETTY_NAME=\"Debian\0 12\"\n",
        ),
        (
            "usr/lib/python3/dist-packages/good-1.0.dist-info/METADATA",
            "Name: good\nVersion: 1.0\n",
        ),
        (
            "usr/lib/python3/dist-packages/bad-1.0.dist-info/METADATA",
            "Name: ba\0d\nVersion: 1.0\n",
        ),
    ]);
    files.insert(
        "app/node_modules/evil/package.json",
        CollectedFile::new(
            &br#"{"name":"evil","version":"1.0\u0000"}"#[..],
            "sha256:app",
        ),
    );
    let report = analyze_all(&defaults(), &files).unwrap();
    let names: Vec<&str> = report
        .inventory
        .packages
        .iter()
        .map(|p| p.name.as_str())
        .collect();
    assert_eq!(names, ["good"]);
    let os = report.inventory.os.unwrap();
    assert_eq!(
        (os.id.as_str(), os.version_id.as_deref()),
        ("debian", Some("12"))
    );
    assert_eq!(os.pretty_name, None);
    let nul_warnings: Vec<String> = report
        .warnings
        .iter()
        .map(ToString::to_string)
        .filter(|w| w.contains("NUL"))
        .collect();
    assert_eq!(nul_warnings.len(), 2, "{nul_warnings:?}");
}

/// One unreadable database fails the whole analysis, and every failure is reported.
#[test]
fn analyze_all_fails_on_corrupt_databases() {
    let mut files = fixture_tree("pkgdb/debian/syft-status.d");
    files.insert(
        "etc/os-release",
        CollectedFile::new(&b"ID=debian\nVERSION_ID=12\n"[..], "sha256:b"),
    );
    files.insert(
        "var/lib/rpm/Packages",
        CollectedFile::new(
            read("pkgdb/rpm/syft-bdb-small/var/lib/rpm/Packages"),
            "sha256:r",
        ),
    );
    let err = analyze_all(&defaults(), &files).unwrap_err();
    let failed: Vec<(&str, &str)> = err
        .errors
        .iter()
        .map(|e| (e.analyzer, e.path.as_str()))
        .collect();
    assert_eq!(
        failed,
        [
            ("dpkg", "var/lib/dpkg/status.d/corrupt"),
            ("rpm", "var/lib/rpm/Packages")
        ]
    );
    let message = err.to_string();
    assert!(
        message.starts_with(
            "package analysis failed: dpkg analyzer: var/lib/dpkg/status.d/corrupt: line 5: "
        ),
        "{message}"
    );
    assert!(
        message.ends_with(
            "; rpm analyzer: var/lib/rpm/Packages: unsupported rpm database format (BerkeleyDB)"
        ),
        "{message}"
    );
}

#[test]
fn analyze_all_empty_image() {
    let report = analyze_all(&defaults(), &FileSet::new()).unwrap();
    assert_eq!(report.inventory, Inventory::default());
    assert_eq!(report.analyzers.len(), defaults().len());
    let report = analyze_all(&[], &set(&[("etc/os-release", "ID=x\n")])).unwrap();
    assert_eq!(report.inventory, Inventory::default());
    assert!(report.analyzers.is_empty());
}

/// Two analyzers naming different OSes: the first (in list order) wins, with a warning.
#[test]
fn analyze_all_first_os_wins() {
    struct Fixed(&'static str);
    impl Analyzer for Fixed {
        fn name(&self) -> &'static str {
            self.0
        }
        fn version(&self) -> u32 {
            7
        }
        fn required(&self, _: &str) -> bool {
            false
        }
        fn analyze(&self, _: &FileSet) -> Result<Analysis, AnalyzerError> {
            Ok(Analysis {
                os: Some(OsRelease {
                    id: self.0.to_owned(),
                    ..OsRelease::default()
                }),
                ..Analysis::default()
            })
        }
    }
    let analyzers: Vec<Box<dyn Analyzer>> = vec![
        Box::new(Fixed("first")),
        Box::new(Fixed("first")),
        Box::new(Fixed("second")),
    ];
    let report = analyze_all(&analyzers, &FileSet::new()).unwrap();
    assert_eq!(report.inventory.os.map(|o| o.id), Some("first".to_owned()));
    assert_eq!(report.warnings.len(), 1);
    assert_eq!(report.warnings[0].analyzer, "second");
    assert_eq!(cache_key(&report.analyzers), "first@7,first@7,second@7");
}

/// `Analyzer` objects can be shared across scan threads.
#[test]
fn analyzers_are_send_and_sync() {
    fn check<T: Send + Sync>(_: &T) {}
    check(&defaults());
}

/// Debian 12's `python3-idna` and `python3-urllib3` as dpkg installed them (the status stanzas,
/// the `.list` files and the egg-info metadata dpkg wrote), and the same upstream versions
/// pip-installed in a virtualenv. The Debian copies belong to their OS packages, whose security
/// updates (`3.3-1+deb12u1`, `1.26.12-1+deb12u4`) patch them without changing the upstream
/// version: the PyPI advisories for 3.3 and 1.26.12 match only the virtualenv's copies.
#[test]
fn os_packages_own_the_language_packages_they_installed() {
    use crate::scanner::advisories::matcher::{Candidate, match_inventory, match_keys};
    use crate::scanner::advisories::osv::parse_yaml_records;

    let mut files = super::testutil::crate_fixture_tree("debian-python");
    files.insert(
        "etc/os-release",
        CollectedFile::new(
            read("pkgdb/debian/os-release/debian-12/etc/os-release"),
            LAYER,
        ),
    );
    let report = analyze_all(&defaults(), &files).unwrap();
    assert!(report.warnings.is_empty(), "{:?}", report.warnings);
    let venv = "opt/venv/lib/python3.11/site-packages";
    let debian = "usr/lib/python3/dist-packages";
    /// Kind, name, version, file, owner.
    type Row<'a> = (
        PackageKind,
        &'a str,
        &'a str,
        Option<&'a str>,
        Option<&'a str>,
    );
    let got: Vec<Row<'_>> = report
        .inventory
        .packages
        .iter()
        .map(|p| {
            (
                p.kind,
                p.name.as_str(),
                p.version.as_str(),
                p.file_path.as_deref(),
                p.owner.as_deref(),
            )
        })
        .collect();
    let path = |dir: &str, file: &str| format!("{dir}/{file}");
    assert_eq!(
        got,
        [
            (
                PackageKind::Dpkg,
                "python3-idna",
                "3.3-1+deb12u1",
                Some("var/lib/dpkg/status"),
                None
            ),
            (
                PackageKind::Dpkg,
                "python3-urllib3",
                "1.26.12-1+deb12u4",
                Some("var/lib/dpkg/status"),
                None
            ),
            (
                PackageKind::Python,
                "idna",
                "3.3",
                Some(path(venv, "idna-3.3.dist-info/METADATA").as_str()),
                None
            ),
            (
                PackageKind::Python,
                "urllib3",
                "1.26.12",
                Some(path(venv, "urllib3-1.26.12.dist-info/METADATA").as_str()),
                None
            ),
            (
                PackageKind::Python,
                "idna",
                "3.3",
                Some(path(debian, "idna-3.3.egg-info/PKG-INFO").as_str()),
                Some("python3-idna")
            ),
            (
                PackageKind::Python,
                "urllib3",
                "1.26.12",
                Some(path(debian, "urllib3-1.26.12.egg-info/PKG-INFO").as_str()),
                Some("python3-urllib3")
            ),
        ]
    );

    // Real PyPA records: idna < 3.7 (CVE-2024-3651), urllib3 < 1.26.18 (CVE-2023-45803).
    let candidates: Vec<Candidate> = ["PYSEC-2024-60", "PYSEC-2023-212"]
        .iter()
        .flat_map(|id| parse_yaml_records(&read(&format!("osv/records/pypi/{id}.yaml"))))
        .map(Result::unwrap)
        .flat_map(|a| Candidate::from_advisory(&a))
        .collect();
    let keys = match_keys(&report.inventory);
    assert!(keys.contains(&("PyPI".to_owned(), "idna".to_owned())));
    assert!(keys.contains(&("Debian:12".to_owned(), "python-idna".to_owned())));
    let matched = |inventory: &Inventory| {
        let mut found: Vec<(String, String, Option<String>)> =
            match_inventory(inventory, &candidates)
                .matches
                .into_iter()
                .map(|m| (m.package_name, m.advisory_id, m.fixed_version))
                .collect();
        found.sort();
        found
    };
    let once = vec![
        (
            "idna".to_owned(),
            "PYSEC-2024-60".to_owned(),
            Some("3.7".to_owned()),
        ),
        (
            "urllib3".to_owned(),
            "PYSEC-2023-212".to_owned(),
            Some("1.26.18".to_owned()),
        ),
    ];
    assert_eq!(matched(&report.inventory), once, "the venv's copies only");

    // Without owners the Debian copies would be matched in PyPI too.
    let mut unowned = report.inventory.clone();
    unowned.packages.iter_mut().for_each(|p| p.owner = None);
    assert_eq!(matched(&unowned).len(), 4);
    // Without the venv, nothing is matched in PyPI.
    let mut debian_only = report.inventory.clone();
    debian_only
        .packages
        .retain(|p| p.kind.is_os() || p.owner.is_some());
    assert_eq!(matched(&debian_only), []);
}

/// grype's Alpine match-coverage image: the apk package `npm-apk-subpackage-with-false-positive`
/// installs `lib/node_modules/npm-apk-subpackage-with-false-positive/package.json` (its `F:` and
/// `R:` lines), so the npm package read from that file belongs to it and is not looked up in
/// npm, where grype's fixture says it would be a false positive.
#[test]
fn npm_package_installed_by_an_apk_package_is_owned() {
    let mut files = fixture_tree("pkgdb/alpine/grype-match-coverage");
    let grype = super::testutil::crate_fixture_tree("grype/image-alpine-match-coverage");
    let path = "lib/node_modules/npm-apk-subpackage-with-false-positive/package.json";
    let package_json = grype.get(path).unwrap();
    files.insert(
        path,
        CollectedFile::new(package_json.bytes().unwrap().to_vec(), LAYER),
    );
    let report = analyze_all(&defaults(), &files).unwrap();
    let npm: Vec<(&str, &str, Option<&str>, Option<&str>)> = report
        .inventory
        .packages
        .iter()
        .filter(|p| p.kind == PackageKind::Npm)
        .map(|p| {
            (
                p.name.as_str(),
                p.version.as_str(),
                p.file_path.as_deref(),
                p.owner.as_deref(),
            )
        })
        .collect();
    assert_eq!(
        npm,
        [(
            "npm-apk-subpackage-with-false-positive",
            "1.0.0",
            Some(path),
            Some("npm-apk-subpackage-with-false-positive")
        )]
    );
    let keys = crate::scanner::advisories::matcher::match_keys(&report.inventory);
    assert!(
        keys.iter().all(|(ecosystem, _)| ecosystem != "npm"),
        "{keys:?}"
    );
}
