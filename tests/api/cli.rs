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
