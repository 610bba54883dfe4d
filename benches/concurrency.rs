//! The service under load from several directions at once, on PostgreSQL.
//!
//! 1. **Webhook flood**: 4 concurrent senders post 5,000 registry events (pushes and pulls of 400
//!    digests in 40 repositories, 15% of them redeliveries of an event already sent; 80% of the
//!    envelopes hold one event, as Distribution sends them, the rest 2 to 5 in random order, as
//!    relays batch them) to the real app over HTTP. Reports envelopes/s, events/s, latency, and
//!    every answer that is not 200 (the target is none).
//! 2. **Push-scan queue wait**: 20,000 Runtime scans of one subscription are queued (a runningImages
//!    report of made-up digests), the app's 2 workers drain them against a registry that answers
//!    404, and meanwhile another subscription's registry sends a push every 250 ms. Reports how long
//!    each push's scan waited in the queue (created to started), p50/p95/max.
//!
//! Every run starts by measuring the machine (`common::baseline`), and each throughput is also
//! printed as a ratio to it.
//!
//! cargo bench --bench concurrency
//!
//! Environment: CROWSNEST_BENCH_FLOOD_EVENTS (default 5000), CROWSNEST_BENCH_FLOOD_SENDERS (4),
//! CROWSNEST_BENCH_RUNTIME_BACKLOG (20000), CROWSNEST_BENCH_PUSHES (40).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::baseline::Baseline;
use common::{BenchApp, BenchDb, Rng};
use crowsnest::domain::{ScanTrigger, Timestamp};
use crowsnest::jobs::queue::QueueSettings;
use crowsnest::jobs::registries::WebhookSecret;
use crowsnest::store;
use crowsnest::store::registries::RegistryRow;
use crowsnest::store::scans::{ScanRow, ScanTarget};
use crowsnest::store::schema::scans;
use diesel::prelude::*;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

const SECRET: &str = "bench-webhook-secret-0123456789abcdef";
const MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

fn main() {
    let baseline = Baseline::measure();
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let mut problems = Vec::new();
    runtime.block_on(webhook_flood(&baseline, &mut problems));
    runtime.block_on(queue_wait(&mut problems));
    assert!(
        problems.is_empty(),
        "sanity checks failed:\n{}",
        problems.join("\n")
    );
}

fn registry(subscription: &str, login_server: &str) -> RegistryRow {
    let now = Timestamp::now().micros();
    RegistryRow {
        id: store::new_id(),
        subscription_id: subscription.to_owned(),
        resource_group: "prod".to_owned(),
        name: "main".to_owned(),
        login_server: login_server.to_owned(),
        insecure: true,
        credentials: None,
        webhook_secret_sha256: WebhookSecret::hash(SECRET),
        created_at: now,
        updated_at: now,
    }
}

fn events_url(app: &BenchApp, registry: &RegistryRow) -> String {
    format!(
        "{}/subscriptions/{}/resourceGroups/{}/providers/Microsoft.ContainerRegistry/registries/{}\
         /providers/Microsoft.Security/registryEvents?api-version=2026-11-01",
        app.base, registry.subscription_id, registry.resource_group, registry.name
    )
}

fn digest(rng: &mut Rng) -> String {
    format!(
        "sha256:{:016x}{:016x}{:016x}{:016x}",
        rng.next_u64(),
        rng.next_u64(),
        rng.next_u64(),
        rng.next_u64()
    )
}

fn event(
    id: &str,
    action: &str,
    repository: &str,
    digest: &str,
    tag: Option<&str>,
) -> serde_json::Value {
    let mut target = serde_json::json!({
        "mediaType": MANIFEST,
        "digest": digest,
        "repository": repository,
        "size": 1234,
    });
    if let Some(tag) = tag {
        target["tag"] = tag.into();
    }
    serde_json::json!({
        "id": id,
        "timestamp": "2026-12-07T06:00:00.000000000Z",
        "action": action,
        "target": target,
        "request": {"useragent": "containerd/1.7.0"},
    })
}

/// The flood's envelopes, deterministic: (body, events in it).
fn flood_envelopes(total_events: usize) -> Vec<(Vec<u8>, usize)> {
    let mut rng = Rng::new(0xf100d);
    let digests: Vec<String> = (0..400).map(|_| digest(&mut rng)).collect();
    let mut sent: Vec<serde_json::Value> = Vec::new();
    let mut envelopes = Vec::new();
    let mut events_so_far = 0;
    while events_so_far < total_events {
        let size = if rng.chance(80) { 1 } else { 2 + rng.below(4) };
        let size = size.min(total_events - events_so_far);
        let mut events = Vec::with_capacity(size);
        for _ in 0..size {
            if !sent.is_empty() && rng.chance(15) {
                events.push(sent[rng.below(sent.len())].clone());
                continue;
            }
            let d = rng.below(digests.len());
            let repository = format!("team{}/service{}", d % 4, d % 40);
            let id = uuid::Uuid::from_u64_pair(rng.next_u64(), rng.next_u64()).to_string();
            let e = if rng.chance(70) {
                let tag = format!("v{}", rng.below(5));
                event(&id, "push", &repository, &digests[d], Some(&tag))
            } else {
                event(&id, "pull", &repository, &digests[d], None)
            };
            sent.push(e.clone());
            events.push(e);
        }
        events_so_far += events.len();
        let body = serde_json::to_vec(&serde_json::json!({ "events": events })).unwrap();
        envelopes.push((body, size));
    }
    envelopes
}

async fn webhook_flood(baseline: &Baseline, problems: &mut Vec<String>) {
    let total_events: usize = common::env_or("CROWSNEST_BENCH_FLOOD_EVENTS", 5000);
    let senders: usize = common::env_or("CROWSNEST_BENCH_FLOOD_SENDERS", 4);
    let db = BenchDb::postgres();
    let app = BenchApp::start(&db, 16, 2).await;
    let pool = store::connect(&db.url, 2).unwrap();
    let registry = registry("flood", "registry.invalid");
    store::run_blocking(&pool, |c| store::registries::insert(c, &registry)).unwrap();
    let url = events_url(&app, &registry);
    let envelopes = Arc::new(flood_envelopes(total_events));
    let client = reqwest::Client::new();
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let start = Instant::now();
    let tasks: Vec<_> = (0..senders)
        .map(|_| {
            let (client, url, envelopes, next) =
                (client.clone(), url.clone(), envelopes.clone(), next.clone());
            tokio::spawn(async move {
                let mut answers = Vec::new();
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let Some((body, _)) = envelopes.get(i) else {
                        return answers;
                    };
                    let sent = Instant::now();
                    let response = client
                        .post(&url)
                        .bearer_auth(SECRET)
                        .header(
                            "Content-Type",
                            "application/vnd.docker.distribution.events.v1+json",
                        )
                        .body(body.clone())
                        .send()
                        .await
                        .unwrap();
                    let status = response.status().as_u16();
                    let answer: serde_json::Value = response.json().await.unwrap_or_default();
                    answers.push((status, sent.elapsed(), answer));
                }
            })
        })
        .collect();
    let mut answers = Vec::new();
    for task in tasks {
        answers.extend(task.await.unwrap());
    }
    let wall = start.elapsed();
    let mut latencies: Vec<Duration> = answers.iter().map(|(_, d, _)| *d).collect();
    latencies.sort();
    let latency = common::Summary { samples: latencies };
    let mut statuses: std::collections::BTreeMap<u16, usize> = Default::default();
    let mut counted = [0usize; 3];
    for (status, _, answer) in &answers {
        *statuses.entry(*status).or_default() += 1;
        for (n, field) in ["accepted", "duplicates", "ignored"].iter().enumerate() {
            counted[n] += answer[field].as_u64().unwrap_or(0) as usize;
        }
    }
    let failures = answers.iter().filter(|(s, _, _)| *s != 200).count();
    let per_s = envelopes.len() as f64 / wall.as_secs_f64();
    println!(
        "PostgreSQL: webhook flood, {senders} senders, {} envelopes holding {total_events} events: \
         {per_s:.0} envelopes/s, {:.0} events/s; latency {}; answers {statuses:?}; \
         events accepted {}, duplicates {}, ignored {}\n  ({})",
        envelopes.len(),
        total_events as f64 / wall.as_secs_f64(),
        latency.line(),
        counted[0],
        counted[1],
        counted[2],
        baseline.ratios(per_s)
    );
    if failures > 0 {
        problems.push(format!(
            "webhook flood: {failures} of {} envelopes not answered 200",
            envelopes.len()
        ));
    } else if counted.iter().sum::<usize>() != total_events {
        problems.push(format!(
            "webhook flood: the answers account for {} of {total_events} events",
            counted.iter().sum::<usize>()
        ));
    }
    app.stop().await;
}

/// A registry that has no images: `GET /v2/` answers 200, everything else 404 `MANIFEST_UNKNOWN`.
async fn empty_registry() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap().to_string();
    tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                continue;
            };
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0u8; 4096];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let line = String::from_utf8_lossy(&head);
                let (status, body) = if line.starts_with("GET /v2/ ") {
                    ("200 OK", "{}")
                } else {
                    (
                        "404 Not Found",
                        r#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown"}]}"#,
                    )
                };
                let response = format!(
                    "HTTP/1.1 {status}\r\nContent-Type: application/json\r\n\
                     Docker-Distribution-API-Version: registry/2.0\r\n\
                     Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = stream.write_all(response.as_bytes()).await;
            });
        }
    });
    address
}

async fn queue_wait(problems: &mut Vec<String>) {
    let backlog: usize = common::env_or("CROWSNEST_BENCH_RUNTIME_BACKLOG", 20_000);
    let pushes: usize = common::env_or("CROWSNEST_BENCH_PUSHES", 40);
    let db = BenchDb::postgres();
    let login_server = empty_registry().await;
    let pool = store::connect(&db.url, 4).unwrap();
    store::migrate(&pool).unwrap();
    let flooding = registry("tenant-a", &login_server);
    let pushing = registry("tenant-b", &login_server);
    let mut rng = Rng::new(0x7a17);
    let now = Timestamp::now().micros();
    let rows: Vec<ScanRow> = (0..backlog)
        .map(|i| {
            let digest = digest(&mut rng);
            let repository = format!("pods/app{}", i % 100);
            ScanRow::queued(
                ScanTarget {
                    subscription_id: &flooding.subscription_id,
                    registry_id: &flooding.id,
                    repository: &repository,
                    digest: Some(&digest),
                    tag: None,
                },
                ScanTrigger::Runtime,
                now,
            )
        })
        .collect();
    store::run_blocking(&pool, |c| {
        store::registries::insert(c, &flooding)?;
        store::registries::insert(c, &pushing)?;
        for chunk in rows.chunks(1000) {
            store::scans::enqueue_many(c, chunk)?;
        }
        Ok(())
    })
    .unwrap();
    let app = BenchApp::start_with_queue(
        &db,
        16,
        2,
        QueueSettings {
            workers: 2,
            ..Default::default()
        },
    )
    .await;
    let url = events_url(&app, &pushing);
    let client = reqwest::Client::new();
    let mut push_scans = Vec::new();
    let started = Instant::now();
    for i in 0..pushes {
        let id = uuid::Uuid::new_v4().to_string();
        let body = serde_json::json!({"events": [event(&id, "push", "team/web", &digest(&mut rng), Some(&format!("v{i}")))]});
        let response = client
            .post(&url)
            .bearer_auth(SECRET)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 200, "a push event");
        let answer: serde_json::Value = response.json().await.unwrap();
        push_scans.push(answer["scans"][0].as_str().unwrap().to_owned());
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    // Waits until every push's scan has started, for at most two minutes after the last push.
    let deadline = Instant::now() + Duration::from_secs(120);
    let waits = loop {
        let ids = push_scans.clone();
        let rows: Vec<(i64, Option<i64>)> = store::run(&pool, move |c| {
            scans::table
                .filter(scans::id.eq_any(&ids))
                .select((scans::created_at, scans::started_at))
                .load(c)
        })
        .await
        .unwrap();
        if rows.iter().all(|(_, s)| s.is_some()) || Instant::now() > deadline {
            break rows;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let runtime_ended: i64 = store::run(&pool, |c| {
        scans::table
            .filter(scans::triggered_by.eq("Runtime"))
            .filter(scans::status.eq_any(["Succeeded", "Failed"]))
            .count()
            .get_result(c)
    })
    .await
    .unwrap();
    let mut started_waits: Vec<Duration> = waits
        .iter()
        .filter_map(|(created, started)| {
            started.map(|s| Duration::from_micros(u64::try_from(s - created).unwrap_or(0)))
        })
        .collect();
    started_waits.sort();
    let not_started = waits.len() - started_waits.len();
    let summary = if started_waits.is_empty() {
        "none started".to_owned()
    } else {
        let s = common::Summary {
            samples: started_waits,
        };
        format!(
            "p50 {:.1} ms, p95 {:.1} ms, max {:.1} ms",
            common::ms(s.percentile(0.5)),
            common::ms(s.percentile(0.95)),
            common::ms(*s.samples.last().unwrap())
        )
    };
    println!(
        "PostgreSQL: push-scan queue wait with {backlog} Runtime scans of another subscription queued, \
         2 workers, a push every 250 ms ({pushes} pushes): {summary}; {not_started} not started \
         {:.0} s after the first push; {runtime_ended} Runtime scans ended meanwhile",
        started.elapsed().as_secs_f64()
    );
    if not_started > 0 {
        problems.push(format!(
            "queue wait: {not_started} of {pushes} push scans not started within 2 minutes of the last push"
        ));
    }
    app.stop().await;
}
