//! Listing sub-assessments over HTTP: a page of 100 and of 1000 from 20,000 findings, first page and
//! deep pages (keyset paging must not slow down with depth), on SQLite and PostgreSQL.
//!
//! cargo bench --bench sub_assessments

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::{BenchDb, Summary};
use crowsnest::api::auth::{SubscriptionsClaim, mint_hs256};
use crowsnest::config::{AuthSettings, Secret, Settings};
use crowsnest::domain::{Role, Severity, Timestamp};
use crowsnest::jobs::findings;
use crowsnest::scanner::advisories::matcher::{Link, Match};
use crowsnest::startup::Application;
use crowsnest::store::{self, findings::FindingRow, images::ImageRow, registries::RegistryRow};
use diesel::Connection;

const FINDINGS: usize = 20_000;

fn main() {
    // Printed first, so that every figure below can be read against this machine's speed.
    common::baseline::Baseline::measure();
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    for db in BenchDb::all() {
        runtime.block_on(bench(&db));
    }
}

async fn bench(db: &BenchDb) {
    let auth = AuthSettings {
        hs256_secret: Some(Secret::new(
            b"bench-secret-bench-secret-bench-secret".to_vec(),
        )),
        issuer: "crowsnest".into(),
        audience: "crowsnest".into(),
        jwks_url: None,
        jwks_min_refresh: Duration::from_secs(10),
    };
    let settings = Settings {
        database: db.url.clone(),
        db_pool_size: 8,
        bind: "127.0.0.1:0".into(),
        public_url: None,
        http_workers: Some(2),
        request_body: Default::default(),
        auth: auth.clone(),
        // Reads only: no scan workers.
        jobs: crowsnest::config::JobSettings {
            queue: crowsnest::jobs::queue::QueueSettings {
                workers: 0,
                ..Default::default()
            },
            ..Default::default()
        },
    };
    let app = Application::build(settings).await.expect("app");
    let base = format!("http://127.0.0.1:{}", app.port());
    let handle = app.handle();
    tokio::spawn(app.run_until_stopped());

    let url = db.url.clone();
    let seeded = tokio::task::spawn_blocking(move || seed(&url))
        .await
        .expect("seed");
    println!(
        "{}: seeded {FINDINGS} findings in {:.2} s",
        db.label,
        seeded.as_secs_f64()
    );

    let token = mint_hs256(
        auth.hs256_secret.as_ref().expect("secret"),
        &auth,
        "bench",
        SubscriptionsClaim::One("*".into()),
        Role::Reader,
        Duration::from_secs(3600),
    )
    .expect("token");
    let client = reqwest::Client::new();
    let list = format!(
        "{base}/subscriptions/bench/providers/Microsoft.Security/subAssessments?api-version=2019-01-01-preview"
    );

    for top in [100, 1000] {
        let first = format!("{list}&$top={top}");
        // The URL of a page deep into the list, reached by following nextLinks.
        let mut deep = first.clone();
        for _ in 0..(FINDINGS / top / 2) {
            let body: serde_json::Value = client
                .get(&deep)
                .bearer_auth(&token)
                .send()
                .await
                .expect("get")
                .json()
                .await
                .expect("json");
            deep = body["nextLink"].as_str().expect("nextLink").to_owned();
        }
        for (label, url) in [("first page", &first), ("middle page", &deep)] {
            let mut durations = Vec::new();
            let mut size = 0;
            for _ in 0..30 {
                let start = std::time::Instant::now();
                let response = client
                    .get(url)
                    .bearer_auth(&token)
                    .send()
                    .await
                    .expect("get");
                assert_eq!(response.status(), 200);
                size = response.bytes().await.expect("body").len();
                durations.push(start.elapsed());
            }
            durations.sort();
            let summary = Summary { samples: durations };
            println!(
                "{}: $top={top} {label}: {} — {} KiB per page",
                db.label,
                summary.line(),
                size / 1024
            );
        }
    }
    drop(handle.stop(false));
}

fn seed(url: &store::DatabaseUrl) -> Duration {
    let start = std::time::Instant::now();
    let pool = store::connect(url, 1).expect("pool");
    let mut conn = pool.get().expect("connection");
    let now = Timestamp::now().micros();
    let registry = RegistryRow {
        id: store::new_id(),
        subscription_id: "bench".into(),
        resource_group: "rg".into(),
        name: "reg".into(),
        login_server: "registry.example.com".into(),
        insecure: false,
        credentials: None,
        webhook_secret_sha256: "0".repeat(64),
        created_at: now,
        updated_at: now,
    };
    store::registries::insert(&mut conn, &registry).expect("registry");
    conn.transaction(|c| {
        for i in 0..(FINDINGS / 100) {
            let digest = format!("sha256:{:064x}", i);
            let image = ImageRow {
                id: store::new_id(),
                registry_id: registry.id.clone(),
                subscription_id: "bench".into(),
                repository: format!("app-{}", i % 20),
                digest: digest.clone(),
                index_digest: None,
                platform: None,
                os: None,
                health: "Unhealthy".into(),
                health_reason: None,
                pushed_at: None,
                pulled_at: None,
                scanned_at: None,
                running: false,
                created_at: now,
                coverage: None,
                advisories_synced_at: None,
                unreadable_files: 0,
                media_type: None,
                os_version: None,
            };
            store::images::insert(c, &image)?;
            let rows: Vec<FindingRow> = (0..100)
                .map(|j| {
                    let advisory = format!("CVE-2024-{:05}", j);
                    let package = format!("pkg-{j}");
                    let found = Match {
                        advisory_id: advisory.clone(),
                        package_name: package.clone(),
                        installed_version: "1.0-1".into(),
                        fixed_version: Some("1.0-2".into()),
                        ecosystem: "Debian:12".into(),
                        category: "Debian".into(),
                        severity: Severity::High,
                        severity_source: "cvss_v3".into(),
                        cvss_v3: Some(7.5),
                        display_name: format!("{package}: {advisory}"),
                        description: "A vulnerability in a package, described in a sentence or two for the bench.".into(),
                        remediation: format!("Upgrade {package} from 1.0-1 to 1.0-2 or later."),
                        impact: "High".into(),
                        cves: vec![Link {
                            title: advisory.clone(),
                            link: format!("https://nvd.nist.gov/vuln/detail/{advisory}"),
                        }],
                        published: chrono::DateTime::from_timestamp_micros(now),
                        patchable: true,
                        ..Match::default()
                    };
                    findings::row(&registry, &image, &found, now)
                })
                .collect();
            store::findings::insert(c, &rows)?;
        }
        Ok::<_, diesel::result::Error>(())
    })
    .expect("seed");
    start.elapsed()
}
