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

backend_tests!(
    a_subscriptions_backlog_leaves_workers_to_the_others,
    a_huge_report_is_bounded_and_a_push_overtakes_its_scans,
    a_new_report_cancels_the_runtime_scans_nobody_needs,
    reports_beyond_the_limits_are_refused,
    reassessments_are_not_held_to_the_share,
);

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

/// Connects registry `r` at `host`; returns its webhook URL and secret.
async fn connect(app: &TestApp, subscription: &str, host: &str) -> (String, String) {
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
    let webhook = &body["properties"]["webhook"];
    (
        webhook["url"].as_str().unwrap().to_owned(),
        webhook["secret"].as_str().unwrap().to_owned(),
    )
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

/// A made-up digest: the `n`th of a report.
fn digest(n: usize) -> String {
    format!("sha256:{n:064x}")
}

/// A PodList of one pod per image, each pod running `{host}/{repository}@{digest}`.
fn pod_list(host: &str, images: impl IntoIterator<Item = (String, String)>) -> Vec<u8> {
    let items: Vec<Value> = images
        .into_iter()
        .enumerate()
        .map(|(n, (repository, digest))| {
            json!({
                "metadata": {"name": format!("pod-{n}"), "namespace": "apps"},
                "status": {"containerStatuses": [{
                    "name": "app",
                    "image": format!("{host}/{repository}:latest"),
                    "imageID": format!("{host}/{repository}@{digest}"),
                }]}
            })
        })
        .collect();
    serde_json::to_vec(&json!({"kind": "List", "items": items})).unwrap()
}

async fn report(app: &TestApp, subscription: &str, cluster: &str, body: Vec<u8>) -> (u16, Value) {
    let response = app
        .client
        .put(app.url(&format!(
            "/subscriptions/{subscription}/providers/Microsoft.Security/clusters/{cluster}/runningImages?{OWN_API}"
        )))
        .bearer_auth(app.token(subscription, Role::Contributor))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    json_of(response).await
}

/// A Contributor reports 20,000 pods running images never seen (8 MB): one report queues at most
/// 1,000 Runtime scans and says so; a push that arrives meanwhile is scanned first, in about the
/// time a push takes on an idle queue.
async fn a_huge_report_is_bounded_and_a_push_overtakes_its_scans(backend: Backend) {
    const PODS: usize = 20_000;
    let app = spawn_app_with(backend, |s| {
        s.jobs.queue.workers = 2;
        s.jobs.queue.subscription_share = 0.5;
    })
    .await;
    let registry = Fake::start(FakeAuth::None).await;
    let image = debian_with_gnutls(None, Vec::new());
    let pushed = registry.put_built_image(FAST, Some("1"), &image);
    let host = registry.host();
    let (webhook, secret) = connect(&app, "sub-a", &host).await;

    let body = pod_list(&host, (0..PODS).map(|n| ("made/up".to_owned(), digest(n))));
    let started = Instant::now();
    let (status, answer) = report(&app, "sub-a", "big", body).await;
    eprintln!(
        "{backend:?}: a report of {PODS} pods took {:?}",
        started.elapsed()
    );
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["containers"], PODS, "{answer}");
    assert_eq!(answer["fromConnectedRegistries"], PODS, "{answer}");
    assert_eq!(answer["scansQueued"], 1_000, "the default limit: {answer}");
    assert_eq!(answer["scansDeferred"], PODS - 1_000, "{answer}");
    let runtime = scans(&app, "sub-a", "&$filter=properties/trigger eq 'Runtime'").await;
    assert_eq!(runtime.len(), 1_000);

    let envelope = json!({"events": [{
        "id": "push-1",
        "timestamp": "2026-12-07T00:00:00Z",
        "action": "push",
        "target": {
            "mediaType": image.manifest_media_type(),
            "digest": pushed,
            "repository": FAST,
            "tag": "1",
            "url": format!("http://{host}/v2/{FAST}/manifests/{pushed}"),
        },
        "request": {"host": host},
    }]});
    let submitted = Instant::now();
    let response = app
        .client
        .post(&webhook)
        .header(
            "content-type",
            "application/vnd.docker.distribution.events.v1+json",
        )
        .bearer_auth(&secret)
        .json(&envelope)
        .send()
        .await
        .unwrap();
    let (status, answer) = json_of(response).await;
    assert_eq!(status, 200, "{answer}");
    let scan = wait_for(
        "the push's scan to succeed",
        Duration::from_secs(120),
        || async {
            scans(&app, "sub-a", "&$filter=properties/trigger eq 'Push'")
                .await
                .into_iter()
                .find(|s| s["properties"]["status"] == "Succeeded")
        },
    )
    .await;
    // Alone it takes about a tenth of a second. 5 s leaves room for a loaded two-core machine and
    // is far below the time a thousand Runtime scans ahead of it in due order would take.
    let took = submitted.elapsed();
    assert!(
        took < Duration::from_secs(5),
        "the push waited {took:?}: {scan:#}"
    );
    let unstarted = scans(&app, "sub-a", "&$filter=properties/trigger eq 'Runtime'")
        .await
        .into_iter()
        .filter(|s| s["properties"]["status"] == "Queued" && s["properties"]["attempts"] == 0)
        .count();
    assert!(
        unstarted > 0,
        "Runtime scans were still waiting when the push ran"
    );
}

/// Cluster `a` reports five images, cluster `b` one of them; `a`'s next report keeps only the
/// first: the queued scans of the three images no cluster runs are cancelled, the others stay.
async fn a_new_report_cancels_the_runtime_scans_nobody_needs(backend: Backend) {
    // No workers: the scans stay queued.
    let app = spawn_app_with(backend, |s| s.jobs.queue.workers = 0).await;
    let host = "registry.example.com";
    connect(&app, "sub-a", host).await;
    let image = |n: usize| ("team/app".to_owned(), digest(n));

    let (status, answer) = report(&app, "sub-a", "a", pod_list(host, (1..=5).map(image))).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["scansQueued"], 5, "{answer}");
    assert_eq!(answer["scansCancelled"], 0, "{answer}");
    let (status, answer) = report(&app, "sub-a", "b", pod_list(host, [image(2)])).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["scansQueued"], 0, "already queued: {answer}");

    let (status, answer) = report(&app, "sub-a", "a", pod_list(host, [image(1)])).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["scansQueued"], 0, "{answer}");
    assert_eq!(answer["scansCancelled"], 3, "{answer}");

    let mut by_digest: Vec<(String, String, String)> = scans(&app, "sub-a", "")
        .await
        .iter()
        .map(|s| {
            let p = &s["properties"];
            (
                p["digest"].as_str().unwrap().to_owned(),
                p["status"].as_str().unwrap().to_owned(),
                p["error"]["code"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect();
    by_digest.sort();
    let expected: Vec<(String, String, String)> = (1..=5)
        .map(|n| match n {
            1 | 2 => (digest(n), "Queued".to_owned(), String::new()),
            _ => (digest(n), "Failed".to_owned(), "NoLongerRunning".to_owned()),
        })
        .collect();
    assert_eq!(by_digest, expected);

    // Reported again, an image whose scan was cancelled is queued again.
    let (status, answer) = report(&app, "sub-a", "a", pod_list(host, [image(1), image(3)])).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["scansQueued"], 1, "{answer}");
}

/// Limits set low: one pod too many, or one container too many, is a 413 naming the limit; a
/// report at the limits passes and queues at most its limit of new scans.
async fn reports_beyond_the_limits_are_refused(backend: Backend) {
    let app = spawn_app_with(backend, |s| {
        s.jobs.queue.workers = 0;
        s.jobs.running_images.max_pods = 3;
        s.jobs.running_images.max_containers = 4;
        s.jobs.running_images.max_new_scans = 2;
    })
    .await;
    let host = "registry.example.com";
    connect(&app, "sub-a", host).await;
    let images = |n: usize| (0..n).map(|n| ("team/app".to_owned(), digest(n)));

    let (status, answer) = report(&app, "sub-a", "c", pod_list(host, images(4))).await;
    assert_cloud_error(status, &answer, 413, "RequestEntityTooLarge");
    let message = answer["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("4 pods") && message.contains("CROWSNEST_REPORT_MAX_PODS"),
        "{message}"
    );

    let mut pods: Value = serde_json::from_slice(&pod_list(host, images(3))).unwrap();
    let sidecar = pods["items"][0]["status"]["containerStatuses"][0].clone();
    let init: Vec<Value> = ["a", "b"]
        .into_iter()
        .map(|name| {
            let mut container = sidecar.clone();
            container["name"] = json!(name);
            container
        })
        .collect();
    pods["items"][0]["status"]["initContainerStatuses"] = json!(init);
    let (status, answer) = report(&app, "sub-a", "c", serde_json::to_vec(&pods).unwrap()).await;
    assert_cloud_error(status, &answer, 413, "RequestEntityTooLarge");
    let message = answer["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("5 containers") && message.contains("CROWSNEST_REPORT_MAX_CONTAINERS"),
        "{message}"
    );
    assert!(
        scans(&app, "sub-a", "").await.is_empty(),
        "nothing was queued"
    );

    let (status, answer) = report(&app, "sub-a", "c", pod_list(host, images(3))).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["scansQueued"], 2, "{answer}");
    assert_eq!(answer["scansDeferred"], 1, "{answer}");
}

/// The share caps scans that pull (a slow registry can hold a worker for long); re-assessments
/// re-match stored inventories in milliseconds and are claimed whatever the subscription holds, so
/// a single-tenant installation rescans with every worker.
async fn reassessments_are_not_held_to_the_share(backend: Backend) {
    use crowsnest::domain::{ScanTrigger, Timestamp};
    use crowsnest::store::scans::{self as queue, Claimant, ScanRow, ScanTarget};

    let db = crate::support::database::TestDb::new(backend).await;
    let pool = crowsnest::store::connect(&db.url, 2).unwrap();
    crowsnest::store::migrate(&pool).unwrap();
    let mut conn = pool.get().unwrap();
    let registry = crate::support::rows::registry_row("sub-a", "rg", "main");
    crowsnest::store::registries::insert(&mut conn, &registry).unwrap();
    let now = Timestamp::now().micros();
    let mut queued = |n: usize, trigger: ScanTrigger| {
        let digest = digest(n);
        let target = ScanTarget {
            subscription_id: &registry.subscription_id,
            registry_id: &registry.id,
            repository: "team/app",
            digest: Some(&digest),
            tag: None,
        };
        let row = ScanRow::queued(target, trigger, now);
        queue::enqueue(&mut conn, &row).unwrap();
        row.id
    };
    let push = queued(1, ScanTrigger::Push);
    let _second_push = queued(2, ScanTrigger::Push);
    let rescan = queued(3, ScanTrigger::Rescan);
    let advisory_update = queued(4, ScanTrigger::AdvisoryUpdate);
    let who = |owner| Claimant {
        owner,
        now,
        lease_until: now + 60_000_000,
        subscription_cap: 1,
    };
    let claimed = |scan: Option<ScanRow>| scan.map(|s| s.id);

    assert_eq!(
        claimed(queue::claim(&mut conn, who("w1")).unwrap()),
        Some(push),
        "the first push takes the subscription's one worker"
    );
    assert_eq!(
        claimed(queue::claim(&mut conn, who("w2")).unwrap()),
        Some(rescan),
        "the second push waits for the share; the rescan behind it does not"
    );
    let batch = queue::claim_reassessments(&mut conn, who("w3"), 64).unwrap();
    assert_eq!(
        batch.into_iter().map(|s| s.id).collect::<Vec<_>>(),
        [advisory_update],
        "a batch of re-assessments is not held to the share either"
    );
    assert_eq!(
        claimed(queue::claim(&mut conn, who("w4")).unwrap()),
        None,
        "the second push still waits"
    );
}
