//! Fair queueing: interactive scans (a push, a submission) are claimed before background ones,
//! one subscription's backlog holds at most its share of the workers, and a cluster's report of
//! running images is bounded, says what it queued and cancels what its predecessor no longer needs.

use std::time::{Duration, Instant};

use crowsnest::domain::Role;
use serde_json::{Value, json};

use crate::backend_tests;
use crate::support::app::*;
use crate::support::database::Backend;
use crate::support::fake_registry::{Fake, FakeAuth, Resp};
use crate::support::fixtures::debian_with_gnutls;
use crate::support::wait_for;

backend_tests!(a_subscriptions_backlog_leaves_workers_to_the_others);

/// A repository whose every request is answered after [`HANG`]: its scans hold their workers.
const SLOW: &str = "slow/app";
const HANG: Duration = Duration::from_secs(30);
/// A repository served at once.
const FAST: &str = "fast/app";

/// A registry serving one small Debian image as [`FAST`]`:1`; [`SLOW`] hangs.
async fn registry() -> Fake {
    let registry = Fake::start(FakeAuth::None).await;
    registry.put_built_image(FAST, Some("1"), &debian_with_gnutls(None, Vec::new()));
    let slow = format!("/v2/{SLOW}/");
    registry.set_hook(move |req| {
        req.path()
            .starts_with(&slow)
            .then(|| Resp::new(404).delay(HANG))
    });
    registry
}

async fn connect(app: &TestApp, subscription: &str, host: &str) {
    let (status, body) = app
        .put_json(
            &format!(
                "/subscriptions/{subscription}/resourceGroups/rg/providers/Microsoft.ContainerRegistry/registries/r?{OWN_API}"
            ),
            &app.token(subscription, Role::Contributor),
            &json!({"properties": {"loginServer": host, "insecure": true}}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
}

/// Submits a scan of `image`; returns its name.
async fn submit(app: &TestApp, subscription: &str, image: &str) -> String {
    let response = app
        .client
        .post(app.url(&format!(
            "/subscriptions/{subscription}/providers/Microsoft.Security/scans?{OWN_API}"
        )))
        .bearer_auth(app.token(subscription, Role::Contributor))
        .json(&json!({"image": image}))
        .send()
        .await
        .unwrap();
    let (status, body) = json_of(response).await;
    assert_eq!(status, 202, "{body}");
    body["name"].as_str().unwrap().to_owned()
}

async fn scans(app: &TestApp, subscription: &str, filter: &str) -> Vec<Value> {
    let (status, body) = app
        .get_json(
            &format!(
                "/subscriptions/{subscription}/providers/Microsoft.Security/scans?{OWN_API}&$top=1000{filter}"
            ),
            &app.token(subscription, Role::Reader),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    body["value"].as_array().unwrap().clone()
}

fn statuses(scans: &[Value]) -> Vec<&str> {
    let mut statuses: Vec<&str> = scans
        .iter()
        .map(|s| s["properties"]["status"].as_str().unwrap())
        .collect();
    statuses.sort_unstable();
    statuses
}

/// Two workers, half each per subscription: subscription A's three hanging scans take one worker
/// and wait for it; B's scan, submitted after them, runs on the other at once.
async fn a_subscriptions_backlog_leaves_workers_to_the_others(backend: Backend) {
    let app = spawn_app_with(backend, |s| {
        s.jobs.queue.workers = 2;
        s.jobs.queue.subscription_share = 0.5;
    })
    .await;
    let registry = registry().await;
    let host = registry.host();
    connect(&app, "sub-a", &host).await;
    connect(&app, "sub-b", &host).await;
    for tag in ["1", "2", "3"] {
        submit(&app, "sub-a", &format!("{host}/{SLOW}:{tag}")).await;
    }
    wait_for("a scan of A running", Duration::from_secs(10), || async {
        scans(&app, "sub-a", "")
            .await
            .iter()
            .any(|s| s["properties"]["status"] == "Running")
            .then_some(())
    })
    .await;
    // Both workers were idle when A's scans arrived: without the share the second takes one too
    // at once. Another poll interval (100 ms) and more shows that it stays away.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        statuses(&scans(&app, "sub-a", "").await),
        ["Queued", "Queued", "Running"],
        "A holds one worker of two"
    );

    let submitted = Instant::now();
    let name = submit(&app, "sub-b", &format!("{host}/{FAST}:1")).await;
    let scan = wait_for("B's scan to succeed", HANG, || async {
        scans(&app, "sub-b", "")
            .await
            .into_iter()
            .find(|s| s["name"] == name.as_str() && s["properties"]["status"] == "Succeeded")
    })
    .await;
    // It needs about a tenth of a second; 5 s leaves room for a loaded two-core machine and is
    // still far below HANG, which B would wait if A held both workers.
    let took = submitted.elapsed();
    assert!(took < Duration::from_secs(5), "B waited {took:?}: {scan:#}");
    assert_eq!(
        statuses(&scans(&app, "sub-a", "").await),
        ["Queued", "Queued", "Running"],
        "A still waits for its one worker"
    );
}
