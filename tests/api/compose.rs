//! What docker-compose.yml relies on: `crowsnest registry connect` connects a registry with the
//! given webhook secret and writes its configuration; a real registry notifying with that
//! configuration reports a push, which Crowsnest scans into findings.

use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use crowsnest::domain::Role;

use crate::backend_tests;
use crate::support::app::*;
use crate::support::database::Backend;
use crate::support::fixtures::vulnerable_debian;
use crate::support::registry::client::push_image;
use crate::support::registry::{NotificationEndpoint, RegistryAuth, TestRegistry};
use crate::support::scans::{SUB, findings, gnutls_advisory, import, registry_path, scans};
use crate::support::wait_for;

backend_tests!(connected_registries_notify_pushes_that_are_scanned);

const SECRET: &str = "compose-webhook-secret-0123456789abcdef";
const BASE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/registry.yml");

fn connect(app: &TestApp, login_server: &str, out: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_crowsnest"))
        .args(["registry", "connect", "--subscription", SUB])
        .args(["--resource-group", "rg", "--name", "compose"])
        .args(["--login-server", login_server, "--insecure"])
        .args(["--crowsnest-url", &app.address])
        .args(["--registry-config-base", BASE, "--registry-config-out"])
        .arg(out)
        .env("DATABASE_URL", app.database_url())
        .env("CROWSNEST_WEBHOOK_SECRET", SECRET)
        .env_remove("CROWSNEST_PUBLIC_URL")
        .output()
        .unwrap()
}

/// The double-quoted value of the first `key: "…"` line (a JSON string is YAML's quoting).
fn quoted_value(config: &str, key: &str) -> String {
    let line = config
        .lines()
        .map(str::trim)
        .find_map(|l| l.strip_prefix(key))
        .unwrap_or_else(|| panic!("no {key} in {config}"));
    let value = line.trim().trim_start_matches('[').trim_end_matches(']');
    serde_json::from_str(value).unwrap_or_else(|e| panic!("{key} {value}: {e}"))
}

async fn connected_registries_notify_pushes_that_are_scanned(backend: Backend) {
    let app = spawn_app(backend).await;
    import(&app, &gnutls_advisory("TEST-COMPOSE-1")).await;
    let dir = tempfile::tempdir().unwrap();
    let config_path = dir.path().join("config.yml");

    // Connected before the registry runs (its port is not known yet).
    let out = connect(&app, "127.0.0.1:1", &config_path);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("connected"), "{stderr}");
    let config = std::fs::read_to_string(&config_path).unwrap();
    assert!(
        config.starts_with(&std::fs::read_to_string(BASE).unwrap()),
        "{config}"
    );
    use std::os::unix::fs::PermissionsExt as _;
    let mode = std::fs::metadata(&config_path)
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "it holds the secret");
    let url = quoted_value(&config, "url:");
    let authorization = quoted_value(&config, "Authorization:");
    assert_eq!(authorization, format!("Bearer {SECRET}"));
    let (status, registry) = app
        .get_json(&registry_path("compose"), &app.token(SUB, Role::Reader))
        .await;
    assert_eq!(status, 200, "{registry}");
    assert_eq!(registry["properties"]["webhook"]["url"], url.as_str());

    let endpoint = NotificationEndpoint {
        authorization: Some(authorization),
        backoff: Duration::from_millis(200),
        ..NotificationEndpoint::new(url)
    };
    let registry = TestRegistry::start_with(RegistryAuth::None, Some(endpoint));
    // Run again, as every `docker compose up` does: the connection is updated, the secret kept.
    let out = connect(&app, &registry.host(), &config_path);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("updated"), "{stderr}");
    assert_eq!(std::fs::read_to_string(&config_path).unwrap(), config);

    let pushed = push_image(&registry, "team/app", Some("1.0"), &vulnerable_debian()).await;
    let listed = wait_for(
        "the pushed image's findings",
        Duration::from_secs(30),
        || async {
            let f = findings(&app).await;
            (!f.is_empty()).then_some(f)
        },
    )
    .await;
    assert_eq!(listed[0]["properties"]["id"], "TEST-COMPOSE-1");
    assert_eq!(
        listed[0]["properties"]["additionalData"]["imageDigest"],
        pushed.manifest_digest
    );
    let all = scans(&app, "").await;
    assert_eq!(all.len(), 1, "{all:?}");
    assert_eq!(all[0]["properties"]["trigger"], "Push");
}
