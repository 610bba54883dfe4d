use std::process::Command;

use crate::support::app::*;
use crate::support::database::{Backend, TestDb};
use crate::support::free_port;

fn crowsnest() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_crowsnest"));
    for var in [
        "DATABASE_URL",
        "CROWSNEST_JWT_SECRET",
        "CROWSNEST_JWKS_URL",
        "CROWSNEST_BIND",
        "CROWSNEST_PUBLIC_URL",
    ] {
        cmd.env_remove(var);
    }
    cmd
}

/// `crowsnest token` and `crowsnest serve` share the secret generated beside a SQLite database.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_minted_by_the_cli_is_accepted_by_the_server() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("crowsnest.db");
    let out = crowsnest()
        .args([
            "token",
            "--subscription",
            "sub-1",
            "--role",
            "Reader",
            "--ttl",
            "5m",
        ])
        .env("DATABASE_URL", &db)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let token = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    assert_eq!(
        token.split('.').count(),
        3,
        "only the token is printed: {token}"
    );

    let port = free_port();
    let mut server = crowsnest()
        .arg("serve")
        .env("DATABASE_URL", &db)
        .env("CROWSNEST_BIND", format!("127.0.0.1:{port}"))
        .env("CROWSNEST_HTTP_WORKERS", "1")
        .spawn()
        .unwrap();
    let client = reqwest::Client::new();
    let url = format!(
        "http://127.0.0.1:{port}/subscriptions/sub-1/providers/Microsoft.Security/subAssessments?{SUB_API}"
    );
    let mut status = 0;
    for _ in 0..100 {
        if let Ok(response) = client.get(&url).bearer_auth(&token).send().await {
            status = response.status().as_u16();
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let other = client
        .get(url.replace("sub-1", "sub-2"))
        .bearer_auth(&token)
        .send()
        .await
        .map(|r| r.status().as_u16());
    server.kill().unwrap();
    server.wait().unwrap();
    assert_eq!(status, 200);
    assert_eq!(other.unwrap(), 403);
}

#[test]
fn openapi_command_prints_the_document() {
    let out = crowsnest().arg("openapi").output().unwrap();
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        crowsnest::api::openapi_json()
    );
}

#[test]
fn unreachable_databases_are_reported_clearly() {
    let out = crowsnest()
        .arg("migrate")
        .env(
            "DATABASE_URL",
            "postgres://crowsnest:hunter2@127.0.0.1:1/db",
        )
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("cannot connect to PostgreSQL at postgres://crowsnest:***@127.0.0.1:1/db"),
        "{stderr}"
    );
    assert!(!stderr.contains("hunter2"), "{stderr}");
    assert!(
        !stderr.to_lowercase().contains("invalid connection url"),
        "{stderr}"
    );

    let out = crowsnest()
        .arg("migrate")
        .env("DATABASE_URL", "mysql://x@127.0.0.1/db")
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("unsupported database URL scheme \"mysql\"")
    );
}

#[test]
fn migrate_applies_to_both_backends() {
    for (backend, dir) in [(Backend::Sqlite, "sqlite"), (Backend::Postgres, "postgres")] {
        let migrations =
            std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/migrations/").to_owned() + dir)
                .unwrap()
                .count();
        let db = futures_free_db(backend);
        let first = crowsnest()
            .arg("migrate")
            .env("DATABASE_URL", db.raw_url())
            .output()
            .unwrap();
        assert!(
            first.status.success(),
            "{}",
            String::from_utf8_lossy(&first.stderr)
        );
        let expected = format!("{migrations} migration(s) applied");
        assert!(
            String::from_utf8_lossy(&first.stdout).starts_with(&expected),
            "{backend:?}: {expected}"
        );
        let again = crowsnest()
            .arg("migrate")
            .env("DATABASE_URL", db.raw_url())
            .output()
            .unwrap();
        assert!(
            String::from_utf8_lossy(&again.stdout).starts_with("0 migration(s) applied"),
            "{backend:?}"
        );
    }
}

fn futures_free_db(backend: Backend) -> TestDb {
    tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(TestDb::new(backend))
}

/// Logs written to a file (or a pipe, or journald) carry no colour codes.
#[test]
fn logs_are_plain_text_when_stderr_is_not_a_terminal() {
    let dir = tempfile::tempdir().unwrap();
    let log_path = dir.path().join("serve.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let mut server = crowsnest()
        .arg("serve")
        .env("DATABASE_URL", dir.path().join("crowsnest.db"))
        .env("CROWSNEST_BIND", format!("127.0.0.1:{}", free_port()))
        .env("CROWSNEST_HTTP_WORKERS", "1")
        .env_remove("RUST_LOG")
        .env_remove("CROWSNEST_LOG_FORMAT")
        .stderr(log)
        .spawn()
        .unwrap();
    let mut logged = String::new();
    for _ in 0..200 {
        logged = std::fs::read_to_string(&log_path).unwrap();
        if logged.contains("crowsnest is listening") {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    server.kill().unwrap();
    server.wait().unwrap();
    assert!(logged.contains("crowsnest is listening"), "{logged}");
    assert!(
        !logged.contains('\x1b'),
        "colour codes in the log: {logged:?}"
    );
}

/// An OCI layout (tag `v1`) of a Debian 10 image with a vulnerable gnutls (Debian:10), a
/// vulnerable Python package (PyPI) and one whose version cannot be compared, and a SQLite
/// database holding an advisory for each. Returns the `oci:` reference and the database.
fn debian_and_python_image(dir: &std::path::Path) -> (String, std::path::PathBuf) {
    use crate::support::images::{Compression, Image, Layer, MediaKind, Platform, TarEntry};

    let metadata = |name: &str, version: &str| {
        format!("Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n").into_bytes()
    };
    let mut entries = vec![
        TarEntry::file(
            "usr/lib/python3/dist-packages/demo_pkg-1.0.dist-info/METADATA",
            metadata("demo-pkg", "1.0"),
            0o644,
        ),
        TarEntry::file(
            "usr/lib/python3/dist-packages/odd_pkg-0.dist-info/METADATA",
            metadata("odd-pkg", "not a version"),
            0o644,
        ),
    ];
    let debian = crate::support::fixtures::vulnerable_debian();
    let base = &debian.layers[0].tar;
    let mut archive = tar::Archive::new(base.as_slice());
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        let path = entry.path().unwrap().to_string_lossy().into_owned();
        let mut data = Vec::new();
        std::io::Read::read_to_end(&mut entry, &mut data).unwrap();
        entries.push(TarEntry::file(&path, data, 0o644));
    }
    let image = Image::new(
        vec![Layer::from_entries(&entries, Compression::Gzip)],
        Platform::linux_amd64(),
        MediaKind::Oci,
    );
    let layout = dir.join("layout");
    crate::scan::write_oci_layout(&layout, &image);

    let records = dir.join("records");
    std::fs::create_dir_all(&records).unwrap();
    let record = |id: &str, ecosystem: &str, name: &str, fixed: &str| {
        serde_json::json!({
            "schema_version": "1.6.0",
            "id": id,
            "modified": "2026-11-01T00:00:00Z",
            "summary": format!("{name} demo flaw"),
            "affected": [{
                "package": {"ecosystem": ecosystem, "name": name},
                "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": fixed}]}]
            }]
        })
    };
    for r in [
        record("DEMO-DEB-1", "Debian:10", "gnutls28", "3.6.7-4+deb10u3"),
        record("DEMO-PY-1", "PyPI", "demo-pkg", "1.1"),
        record("DEMO-PY-2", "PyPI", "odd-pkg", "2.0"),
    ] {
        let path = records.join(format!("{}.json", r["id"].as_str().unwrap()));
        std::fs::write(path, serde_json::to_vec(&r).unwrap()).unwrap();
    }
    let db = dir.join("crowsnest.db");
    let out = crowsnest()
        .args(["advisories", "import"])
        .arg(&records)
        .env("DATABASE_URL", &db)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    (format!("oci:{}:v1", layout.display()), db)
}

/// `crowsnest scan` with the given output format: (exit code, stdout, stderr).
fn scan_local(reference: &str, db: &std::path::Path, format: &str) -> (i32, String, String) {
    let out = crowsnest()
        .args(["scan", reference, "--format", format, "--offline"])
        .env("DATABASE_URL", db)
        .output()
        .unwrap();
    (
        out.status.code().unwrap(),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

/// Every key of `value`, at any depth, with its path.
fn keys(value: &serde_json::Value, path: &str, out: &mut Vec<(String, String)>) {
    match value {
        serde_json::Value::Object(map) => {
            for (key, child) in map {
                out.push((path.to_owned(), key.clone()));
                keys(child, &format!("{path}.{key}"), out);
            }
        }
        serde_json::Value::Array(items) => {
            for (i, child) in items.iter().enumerate() {
                keys(child, &format!("{path}[{i}]"), out);
            }
        }
        _ => {}
    }
}

/// The JSON of `crowsnest scan` is camelCase throughout, like the API.
#[test]
fn scan_json_keys_are_camel_case() {
    let dir = tempfile::tempdir().unwrap();
    let (reference, db) = debian_and_python_image(dir.path());
    let (code, stdout, stderr) = scan_local(&reference, &db, "json");
    assert_eq!(code, 0, "{stderr}");
    let out: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let image = &out["images"][0];
    for section in ["packages", "findings", "unknown"] {
        assert!(
            !image[section].as_array().unwrap().is_empty(),
            "{section} is empty: {image:#}"
        );
    }
    assert!(image["os"].is_object(), "{image:#}");
    let mut all = Vec::new();
    keys(&out, "", &mut all);
    let wrong: Vec<_> = all
        .iter()
        .filter(|(_, key)| {
            !key.starts_with(|c: char| c.is_ascii_lowercase())
                || !key.chars().all(|c| c.is_ascii_alphanumeric())
        })
        .collect();
    assert!(wrong.is_empty(), "not camelCase: {wrong:?}");
    for key in ["advisoryId", "packageName", "fixedVersion", "layerDigest"] {
        assert!(
            all.iter()
                .any(|(path, k)| path.contains("findings") && k == key),
            "findings carry {key}"
        );
    }
    for key in ["sourceName", "layerDigest"] {
        assert!(
            all.iter()
                .any(|(path, k)| path.contains("packages") && k == key),
            "packages carry {key}"
        );
    }
}

/// The table names each finding's ecosystem, so OS and language packages are told apart.
#[test]
fn scan_table_shows_each_findings_ecosystem() {
    let dir = tempfile::tempdir().unwrap();
    let (reference, db) = debian_and_python_image(dir.path());
    let (code, stdout, stderr) = scan_local(&reference, &db, "table");
    assert_eq!(code, 0, "{stderr}");
    let row = |advisory: &str| {
        stdout
            .lines()
            .find(|l| l.contains(advisory))
            .unwrap_or_else(|| panic!("no {advisory} row: {stdout}"))
            .split_whitespace()
            .collect::<Vec<_>>()
    };
    assert_eq!(
        row("DEMO-DEB-1")[..4],
        ["Medium", "DEMO-DEB-1", "Debian:10", "libgnutls30"],
        "{stdout}"
    );
    assert_eq!(
        row("DEMO-PY-1")[..4],
        ["Medium", "DEMO-PY-1", "PyPI", "demo-pkg"],
        "{stdout}"
    );
    assert!(
        stdout
            .lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>()
                == [
                    "SEVERITY",
                    "ADVISORY",
                    "ECOSYSTEM",
                    "PACKAGE",
                    "INSTALLED",
                    "FIXED"
                ]),
        "{stdout}"
    );
}

/// A tag missing from an archive is reported with the archive's path, not the directory it
/// was unpacked into.
#[test]
fn a_missing_tag_names_the_archive() {
    let dir = tempfile::tempdir().unwrap();
    let image = crate::support::fixtures::fixture_image_alpine(
        crate::support::images::MediaKind::Oci,
        crate::support::images::Platform::linux_amd64(),
    );
    let layout = dir.path().join("layout");
    crate::scan::write_oci_layout(&layout, &image);
    let archive = dir.path().join("app.tar");
    crate::scan::tar_dir(&layout, &archive);
    let db = dir.path().join("crowsnest.db");
    let (code, _, stderr) = scan_local(
        &format!("oci-archive:{}:missingtag", archive.display()),
        &db,
        "table",
    );
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains(&format!(
            "no image tagged \"missingtag\" in {}",
            archive.display()
        )),
        "{stderr}"
    );
}

/// `registry connect` refuses a guessable webhook secret, and a base configuration that already
/// sends notifications (the written one would then hold two sections).
#[test]
fn registry_connect_refuses_weak_secrets_and_bases_with_notifications() {
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path().join("base.yml");
    std::fs::write(&base, "version: 0.1\nnotifications:\n  endpoints: []\n").unwrap();
    let run = |secret: &str, base: Option<&std::path::Path>| {
        let mut cmd = crowsnest();
        cmd.args(["registry", "connect", "--subscription", "sub-1"])
            .args(["--resource-group", "rg", "--name", "local"])
            .args(["--login-server", "registry:5000"])
            .env("DATABASE_URL", dir.path().join("crowsnest.db"))
            .env("CROWSNEST_WEBHOOK_SECRET", secret);
        if let Some(base) = base {
            cmd.arg("--registry-config-base")
                .arg(base)
                .arg("--registry-config-out")
                .arg(dir.path().join("config.yml"));
        }
        let out = cmd.output().unwrap();
        (out.status.success(), String::from_utf8(out.stderr).unwrap())
    };
    let (ok, stderr) = run("too-short", None);
    assert!(!ok);
    assert!(stderr.contains("at least 32 characters"), "{stderr}");
    let (ok, stderr) = run("a secret with spaces in it, long enough though", None);
    assert!(!ok);
    assert!(stderr.contains("without spaces"), "{stderr}");
    let (ok, stderr) = run("0123456789abcdef0123456789abcdef", Some(&base));
    assert!(!ok);
    assert!(
        stderr.contains("already has a notifications section"),
        "{stderr}"
    );
    assert!(!dir.path().join("config.yml").exists());
    let (ok, stderr) = run("0123456789abcdef0123456789abcdef", None);
    assert!(ok, "{stderr}");
}
