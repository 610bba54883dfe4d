use super::header::build::{Value, blob};
use super::header::{ARCH, EPOCH, NAME as NAME_TAG, RELEASE, SOURCERPM, VERSION};
use super::*;
use crate::scanner::analyzers::CollectedFile;
use crate::scanner::analyzers::testutil::{LAYER, fixture, fixture_at, fixture_tree, read};
use diesel::Connection;

const DB: &str = "var/lib/rpm/rpmdb.sqlite";

fn run(files: &FileSet) -> Analysis {
    RpmAnalyzer.analyze(files).unwrap()
}

#[test]
fn required_truth_table() {
    for (path, want) in [
        ("var/lib/rpm/rpmdb.sqlite", true),
        ("usr/lib/sysimage/rpm/rpmdb.sqlite", true),
        ("var/lib/rpm/rpmdb.sqlite-wal", true),
        ("usr/lib/sysimage/rpm/rpmdb.sqlite-wal", true),
        ("var/lib/rpm/Packages", true),
        ("var/lib/rpm/Packages.db", true),
        ("usr/lib/sysimage/rpm/Packages", true),
        ("usr/lib/sysimage/rpm/Packages.db", true),
        ("var/lib/rpm/rpmdb.sqlite-shm", false),
        ("var/lib/rpm/Name", false),
        ("var/lib/rpm/Basenames", false),
        ("var/lib/rpm/Index.db", false),
        ("var/lib/rpm/.rpm.lock", false),
        ("var/lib/rpm/", false),
        ("/var/lib/rpm/rpmdb.sqlite", false),
        ("root/var/lib/rpm/rpmdb.sqlite", false),
        ("var/lib/rpm/sub/rpmdb.sqlite", false),
        ("rpmdb.sqlite", false),
        ("", false),
    ] {
        assert_eq!(RpmAnalyzer.required(path), want, "{path}");
    }
}

/// One line of `expected-packages.csv` (see PROVENANCE.md for the query that produced it).
struct Expected {
    name: String,
    evr: String,
    source: Option<(String, String)>,
}

fn expected(rel: &str) -> Vec<Expected> {
    String::from_utf8(read(rel))
        .unwrap()
        .lines()
        .map(|line| {
            let f: Vec<&str> = line.split('¶').collect();
            assert_eq!(f.len(), 11, "{line}");
            let (epoch, name, version, release, srpm) = (f[0], f[1], f[2], f[3], f[5]);
            let evr = if epoch.is_empty() {
                format!("{version}-{release}")
            } else {
                format!("{epoch}:{version}-{release}")
            };
            // `name-version-release.src.rpm`: the last two `-` separate version and release.
            let source = srpm.strip_suffix(".src.rpm").map(|nvr| {
                let parts: Vec<&str> = nvr.rsplitn(3, '-').collect();
                (parts[2].to_owned(), format!("{}-{}", parts[1], parts[0]))
            });
            Expected {
                name: name.to_owned(),
                evr,
                source,
            }
        })
        .collect()
}

#[test]
fn amazonlinux2023_equals_expected_packages_csv() {
    let root = "pkgdb/rpm/amazonlinux2023";
    let a = run(&fixture_tree(root));
    assert!(a.warnings.is_empty(), "{:?}", a.warnings);
    let want = expected(&format!("{root}/expected-packages.csv"));
    assert_eq!(want.len(), 103);
    let key =
        |name: &str, evr: &str, source: Option<(&str, &str)>| format!("{name} {evr} {source:?}");
    let mut got: Vec<String> = a
        .packages
        .iter()
        .map(|p| {
            key(
                &p.name,
                &p.version,
                p.source_name.as_deref().zip(p.source_version.as_deref()),
            )
        })
        .collect();
    let mut want: Vec<String> = want
        .iter()
        .map(|e| {
            key(
                &e.name,
                &e.evr,
                e.source.as_ref().map(|(n, v)| (n.as_str(), v.as_str())),
            )
        })
        .collect();
    got.sort();
    want.sort();
    assert_eq!(got, want);
    // Spot checks.
    let ssl = a
        .packages
        .iter()
        .find(|p| p.name == "openssl-libs")
        .unwrap();
    assert_eq!(ssl.version, "1:3.0.8-1.amzn2023.0.4");
    assert_eq!(ssl.source_name.as_deref(), Some("openssl"));
    assert_eq!(ssl.source_version.as_deref(), Some("3.0.8-1.amzn2023.0.4"));
    assert_eq!(ssl.layer_digest.as_deref(), Some(LAYER));
    let key = a.packages.iter().find(|p| p.name == "gpg-pubkey").unwrap();
    assert_eq!(key.version, "d832c631-63977702");
    assert_eq!(
        (key.source_name.as_ref(), key.source_version.as_ref()),
        (None, None)
    );
    // A source RPM whose name differs from every binary built from it.
    let repo = a
        .packages
        .iter()
        .find(|p| p.name == "amazon-linux-repo-cdn")
        .unwrap();
    assert_eq!(repo.source_name.as_deref(), Some("system-release"));
}

/// The mariner rpmdb: 129 rows (counted with Python's sqlite3 module when this test was
/// written) and the `curl` entry of go-rpmdb's expectation.
#[test]
fn cbl_mariner() {
    let root = "pkgdb/rpm/cbl-mariner-2.0";
    let a = run(&fixture_tree(root));
    assert_eq!(a.packages.len(), 129);
    let want: serde_json::Value =
        crate::scanner::analyzers::testutil::read_json(&format!("{root}/expected-curl.json"));
    let curl = a.packages.iter().find(|p| p.name == "curl").unwrap();
    assert!(want["Epoch"].is_null());
    assert_eq!(
        curl.version,
        format!(
            "{}-{}",
            want["Version"].as_str().unwrap(),
            want["Release"].as_str().unwrap()
        )
    );
    assert_eq!(
        want["SourceRpm"].as_str(),
        Some("curl-7.76.0-6.cm2.src.rpm")
    );
    assert_eq!(curl.source_name.as_deref(), Some("curl"));
    assert_eq!(curl.source_version.as_deref(), Some("7.76.0-6.cm2"));
    let ca = a
        .packages
        .iter()
        .find(|p| p.name == "ca-certificates-base")
        .unwrap();
    assert_eq!(ca.version, "1:2.0.0-1.cm2");
}

/// The original files are opened nowhere: nothing appears beside them.
#[test]
fn original_is_untouched() {
    let dir = fixture("pkgdb/rpm/amazonlinux2023/var/lib/rpm");
    let before: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    run(&fixture_tree("pkgdb/rpm/amazonlinux2023"));
    let after: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(before, after);
}

#[test]
fn claircore_empty_is_an_error() {
    let err = RpmAnalyzer
        .analyze(&fixture_at("pkgdb/rpm/claircore-empty/rpmdb.sqlite", DB))
        .unwrap_err();
    assert_eq!((err.analyzer, err.path.as_str()), ("rpm", DB));
    assert_eq!(err.reason, "no Packages table: not an rpm database");
}

#[test]
fn legacy_formats_are_errors() {
    for (root, path, format) in [
        (
            "pkgdb/rpm/syft-bdb-small",
            "var/lib/rpm/Packages",
            "BerkeleyDB",
        ),
        (
            "pkgdb/rpm/scalibr-bdb-epoch",
            "var/lib/rpm/Packages",
            "BerkeleyDB",
        ),
        ("pkgdb/rpm/sle15-bci", "var/lib/rpm/Packages.db", "NDB"),
    ] {
        let err = RpmAnalyzer.analyze(&fixture_tree(root)).unwrap_err();
        assert_eq!(err.path, path, "{root}");
        assert_eq!(
            err.reason,
            format!("unsupported rpm database format ({format})"),
            "{root}"
        );
        assert_eq!(
            err.to_string(),
            format!("rpm analyzer: {path}: unsupported rpm database format ({format})")
        );
    }
    let mut files = FileSet::new();
    files.insert(
        "usr/lib/sysimage/rpm/Packages",
        CollectedFile::new(vec![7u8; 64], "sha256:x"),
    );
    let err = RpmAnalyzer.analyze(&files).unwrap_err();
    assert_eq!(err.reason, "unsupported rpm database format (unrecognised)");
    // An empty legacy file is nothing to read.
    let mut files = FileSet::new();
    files.insert(
        "var/lib/rpm/Packages",
        CollectedFile::new(Vec::new(), "sha256:x"),
    );
    let a = run(&files);
    assert!(a.packages.is_empty());
    assert_eq!(a.warnings.len(), 1);
}

#[test]
fn sqlite_wins_over_legacy_files() {
    let mut files = fixture_tree("pkgdb/rpm/amazonlinux2023");
    files.insert(
        "var/lib/rpm/Packages",
        CollectedFile::new(
            read("pkgdb/rpm/syft-bdb-small/var/lib/rpm/Packages"),
            "sha256:old",
        ),
    );
    let a = run(&files);
    assert_eq!(a.packages.len(), 103);
    assert_eq!(a.warnings.len(), 1);
    assert_eq!(a.warnings[0].path, "var/lib/rpm/Packages");
}

#[test]
fn sysimage_path_preferred() {
    let bytes = read("pkgdb/rpm/cbl-mariner-2.0/var/lib/rpm/rpmdb.sqlite");
    let mut files = fixture_tree("pkgdb/rpm/amazonlinux2023");
    files.insert(
        "usr/lib/sysimage/rpm/rpmdb.sqlite",
        CollectedFile::new(bytes, "sha256:sysimage"),
    );
    let a = run(&files);
    assert_eq!(a.packages.len(), 129);
    assert!(
        a.packages
            .iter()
            .all(|p| p.layer_digest.as_deref() == Some("sha256:sysimage"))
    );
    assert_eq!(a.warnings.len(), 1);
    assert_eq!(a.warnings[0].path, DB);
}

#[test]
fn not_sqlite_is_an_error() {
    let mut files = FileSet::new();
    files.insert(DB, CollectedFile::new(&b"not a database"[..], "sha256:x"));
    let err = RpmAnalyzer.analyze(&files).unwrap_err();
    assert_eq!(err.reason, "not a SQLite database");
}

#[test]
fn source_rpm_names() {
    assert_eq!(
        split_srpm("openssl-3.0.7-25.el9.src.rpm"),
        Some(("openssl", "3.0.7-25.el9"))
    );
    assert_eq!(
        split_srpm("python3.11-3.11.5-1.el9.nosrc.rpm"),
        Some(("python3.11", "3.11.5-1.el9"))
    );
    assert_eq!(
        split_srpm("system-release-2023.1.20230825-0.amzn2023.src.rpm"),
        Some(("system-release", "2023.1.20230825-0.amzn2023"))
    );
    assert_eq!(split_srpm("openssl"), None);
    assert_eq!(split_srpm("openssl-3.src.rpm"), None);
    assert_eq!(split_srpm("-3-1.src.rpm"), None);
    // The matcher's own reading of the file name agrees.
    for srpm in [
        "openssl-3.0.7-25.el9.src.rpm",
        "system-release-2023.1.20230825-0.amzn2023.src.rpm",
    ] {
        assert_eq!(
            split_srpm(srpm).map(|(n, _)| n),
            Some(crate::scanner::advisories::matcher::srpm_name(srpm))
        );
    }
}

#[test]
fn header_to_package() {
    let h = |entries: &[(i32, Value<'_>)]| header::parse(&blob(entries)).unwrap();
    let p = package(h(&[
        (NAME_TAG, Value::Str("bash")),
        (VERSION, Value::Str("5.2.15")),
        (RELEASE, Value::Str("1.el9")),
        (EPOCH, Value::Int(0)),
        (ARCH, Value::Str("x86_64")),
        (SOURCERPM, Value::Str("weird")),
    ]))
    .unwrap();
    assert_eq!(p.version, "0:5.2.15-1.el9", "an explicit epoch 0 is kept");
    assert_eq!(p.source_name.as_deref(), Some("weird"));
    assert_eq!(p.source_version, None);
    let err = package(h(&[
        (NAME_TAG, Value::Str("x")),
        (VERSION, Value::Str("1")),
    ]))
    .unwrap_err();
    assert_eq!(err, "no RELEASE tag");
    let p = package(h(&[
        (NAME_TAG, Value::Str("x")),
        (VERSION, Value::Str("1")),
        (RELEASE, Value::Str("2")),
        (SOURCERPM, Value::Str("(none)")),
    ]))
    .unwrap();
    assert_eq!((p.version.as_str(), p.source_name), ("1-2", None));
}

/// Builds a WAL-mode rpmdb with diesel whose last row is only in the WAL.
fn wal_database() -> (Vec<u8>, Vec<u8>) {
    use diesel::connection::SimpleConnection;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rpmdb.sqlite");
    let mut conn = diesel::sqlite::SqliteConnection::establish(path.to_str().unwrap()).unwrap();
    conn.batch_execute(
        "PRAGMA journal_mode = WAL;
         CREATE TABLE Packages (hnum INTEGER PRIMARY KEY AUTOINCREMENT, blob BLOB NOT NULL);
         PRAGMA wal_checkpoint(TRUNCATE);
         PRAGMA wal_autocheckpoint = 0;",
    )
    .unwrap();
    let row = |name: &str| {
        let b = blob(&[
            (NAME_TAG, Value::Str(name)),
            (VERSION, Value::Str("1.0")),
            (RELEASE, Value::Str("1")),
        ]);
        let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
        format!("INSERT INTO Packages (blob) VALUES (x'{hex}');")
    };
    conn.batch_execute(&row("first")).unwrap();
    conn.batch_execute("PRAGMA wal_checkpoint(TRUNCATE);")
        .unwrap();
    conn.batch_execute(&row("second")).unwrap();
    let db = std::fs::read(&path).unwrap();
    let wal = std::fs::read(dir.path().join("rpmdb.sqlite-wal")).unwrap();
    drop(conn);
    (db, wal)
}

#[test]
fn wal_is_read() {
    let (db, wal) = wal_database();
    assert!(!wal.is_empty());
    let mut files = FileSet::new();
    files.insert(DB, CollectedFile::new(db, LAYER));
    let names = |a: &Analysis| {
        a.packages
            .iter()
            .map(|p| p.name.clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(names(&run(&files)), ["first"]);
    files.insert(format!("{DB}-wal"), CollectedFile::new(wal, LAYER));
    assert_eq!(names(&run(&files)), ["first", "second"]);
}

#[test]
fn corrupt_header_is_an_error() {
    use diesel::connection::SimpleConnection;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rpmdb.sqlite");
    let mut conn = diesel::sqlite::SqliteConnection::establish(path.to_str().unwrap()).unwrap();
    conn.batch_execute(
        "CREATE TABLE Packages (hnum INTEGER PRIMARY KEY AUTOINCREMENT, blob BLOB NOT NULL);
         INSERT INTO Packages (blob) VALUES (x'0000000100000004');",
    )
    .unwrap();
    drop(conn);
    let mut files = FileSet::new();
    files.insert(DB, CollectedFile::new(std::fs::read(&path).unwrap(), LAYER));
    let err = RpmAnalyzer.analyze(&files).unwrap_err();
    assert!(
        err.reason.starts_with("header 1 is corrupt: truncated"),
        "{err}"
    );
    // An empty Packages table is an empty list.
    let mut conn = diesel::sqlite::SqliteConnection::establish(path.to_str().unwrap()).unwrap();
    conn.batch_execute("DELETE FROM Packages;").unwrap();
    drop(conn);
    let mut files = FileSet::new();
    files.insert(DB, CollectedFile::new(std::fs::read(&path).unwrap(), LAYER));
    assert_eq!(run(&files), Analysis::default());
}

/// The headers' file lists give every path rpm itself lists for the database (7619 distinct
/// paths, one of them the root `/`, which is no file), each with the first package listing it;
/// the `site-packages` ones are compared line by line with rpm's own output.
#[test]
fn file_lists_are_what_rpm_lists() {
    let a = run(&fixture_tree("pkgdb/rpm/amazonlinux2023"));
    assert_eq!(a.file_owners.len(), 7619 - 1);
    assert!(a.warnings.is_empty(), "{:?}", a.warnings);
    assert!(
        a.packages
            .iter()
            .all(|p| p.file_path.as_deref() == Some(DB))
    );
    let expected = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/rpm-file-lists/amazonlinux2023-site-packages.tsv"),
    )
    .unwrap();
    assert_eq!(expected.lines().count(), 438);
    for line in expected.lines() {
        let (owner, path) = line.split_once('\t').unwrap();
        let path = path.strip_prefix('/').unwrap();
        assert_eq!(a.file_owners.owner(path), Some(owner), "{path}");
    }
}

/// Amazon Linux 2023's python3-gpg installs its egg-info as a file, python3-libcomps as a
/// directory: the PyPI packages read from them belong to those RPMs, a pip-installed copy
/// belongs to nobody.
#[test]
fn python_packages_of_rpms_are_owned() {
    use crate::scanner::analyzers::{analyze_all, defaults};
    let mut files = fixture_tree("pkgdb/rpm/amazonlinux2023");
    let site = "usr/lib64/python3.9/site-packages";
    for (path, metadata) in [
        (
            format!("{site}/gpg-1.15.1-py3.9.egg-info"),
            "Metadata-Version: 1.1\nName: gpg\nVersion: 1.15.1\n",
        ),
        (
            format!("{site}/libcomps-0.1.18-py3.9.egg-info/PKG-INFO"),
            "Metadata-Version: 1.1\nName: libcomps\nVersion: 0.1.18\n",
        ),
        (
            "usr/local/lib/python3.9/site-packages/libcomps-0.1.18.dist-info/METADATA".to_owned(),
            "Metadata-Version: 2.1\nName: libcomps\nVersion: 0.1.18\n",
        ),
    ] {
        files.insert(path, CollectedFile::new(metadata.as_bytes(), LAYER));
    }
    let report = analyze_all(&defaults(), &files).unwrap();
    let python: Vec<(&str, Option<&str>)> = report
        .inventory
        .packages
        .iter()
        .filter(|p| p.kind == PackageKind::Python)
        .map(|p| (p.name.as_str(), p.owner.as_deref()))
        .collect();
    assert_eq!(
        python,
        [
            ("gpg", Some("python3-gpg")),
            ("libcomps", Some("python3-libcomps")),
            ("libcomps", None),
        ]
    );
}
