//! The scan lifecycle through the service: registry notifications from a real registry, scan
//! submissions, the queue's retries, billing, and re-assessment after an advisory import.

use std::time::Duration;

use crowsnest::domain::Role;
use serde_json::{Value, json};

use crate::backend_tests;
use crate::support::app::*;
use crate::support::database::Backend;
use crate::support::fixtures::{read_shared_fixture, vulnerable_debian};
use crate::support::images::{Compression, Image, Layer, TarEntry};
use crate::support::registry::client::push_image;
use crate::support::registry::{RegistryAuth, TestRegistry};
use crate::support::rows::{digest_of, image_row};
use crate::support::scans::{
    SUB, connect, findings, get_security, gnutls_advisory, import, notifying_registry, post_events,
    post_scan, scans, wait_for_scan, wait_for_scan_end,
};
use crate::support::{free_port, wait_for};

backend_tests!(
    pushes_are_scanned_listed_billed_once_and_deleted_with_the_image,
    submissions_are_accepted_polled_and_deduplicated,
    redelivered_events_queue_one_scan_and_a_dead_registry_fails_it,
    advisory_imports_rematch_stored_inventories_without_pulling,
    reassessments_run_in_batches_and_stale_inventories_are_read_again,
    the_scheduler_reassesses_active_images_only,
    due_images_are_paged_by_cursor_while_they_are_being_rescanned,
);

async fn billed(app: &TestApp) -> i64 {
    let body = get_security(app, &format!("usage?{OWN_API}&from=2000-01-01T00:00:00Z")).await;
    body["billedImages"].as_i64().unwrap()
}

/// (pulled_at, tags) of the image row with `digest`, if there is one.
async fn image_state(
    app: &TestApp,
    digest: &str,
) -> Option<(Option<i64>, Vec<String>, String, Option<String>)> {
    let digest = digest.to_owned();
    app.db(move |c| {
        use crowsnest::store::schema::images;
        use diesel::prelude::*;
        let row: Option<(String, Option<i64>, String, Option<String>)> = images::table
            .filter(images::digest.eq(&digest))
            .select((
                images::id,
                images::pulled_at,
                images::health,
                images::health_reason,
            ))
            .first(c)
            .optional()?;
        Ok(match row {
            Some((id, pulled, health, reason)) => Some((
                pulled,
                crowsnest::store::images::tags(c, &id)?,
                health,
                reason,
            )),
            None => None,
        })
    })
    .await
}

async fn pushes_are_scanned_listed_billed_once_and_deleted_with_the_image(backend: Backend) {
    let app = spawn_app(backend).await;
    import(&app, &gnutls_advisory("TEST-GNUTLS-1")).await;
    let registry = notifying_registry(&app, "notifying").await;

    let pushed = push_image(&registry, "team/web", Some("v1"), &vulnerable_debian()).await;
    let listed = wait_for(
        "the pushed image's findings",
        Duration::from_secs(30),
        || async {
            let f = findings(&app).await;
            (!f.is_empty()).then_some(f)
        },
    )
    .await;
    assert_eq!(listed.len(), 1, "{listed:?}");
    let finding = &listed[0];
    assert_eq!(finding["properties"]["id"], "TEST-GNUTLS-1");
    assert_eq!(
        finding["properties"]["additionalData"]["imageDigest"],
        pushed.manifest_digest
    );
    let all = scans(&app, "").await;
    assert_eq!(all.len(), 1, "{all:?}");
    assert_eq!(all[0]["properties"]["trigger"], "Push");
    assert_eq!(all[0]["properties"]["tag"], "v1");
    assert_eq!(billed(&app).await, 1);

    // The same digest under a new tag: the tag is recorded, nothing is scanned or billed again.
    push_image(&registry, "team/web", Some("v2"), &vulnerable_debian()).await;
    let tags = wait_for("the second tag", Duration::from_secs(30), || async {
        let (_, tags, _, _) = image_state(&app, &pushed.manifest_digest).await?;
        (tags.len() == 2).then_some(tags)
    })
    .await;
    assert_eq!(tags, ["v1", "v2"]);
    assert_eq!(scans(&app, "").await.len(), 1);
    assert_eq!(billed(&app).await, 1);
    assert_eq!(findings(&app).await.len(), 1);

    // A pull moves lastPulledAt.
    let before = image_state(&app, &pushed.manifest_digest).await.unwrap().0;
    assert_eq!(before, None);
    registry.client().get_manifest("team/web", "v1").await;
    wait_for("the pull", Duration::from_secs(30), || async {
        image_state(&app, &pushed.manifest_digest).await?.0
    })
    .await;

    // Delete: the image and its findings leave every listing.
    let deleted = reqwest::Client::new()
        .delete(format!(
            "{}/v2/team/web/manifests/{}",
            registry.url(),
            pushed.manifest_digest
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status().as_u16(), 202);
    wait_for("the deletion", Duration::from_secs(30), || async {
        image_state(&app, &pushed.manifest_digest)
            .await
            .is_none()
            .then_some(())
    })
    .await;
    assert!(findings(&app).await.is_empty());
    // Billing outlives the image.
    assert_eq!(billed(&app).await, 1);
}

async fn submissions_are_accepted_polled_and_deduplicated(backend: Backend) {
    let app = spawn_app(backend).await;
    import(&app, &gnutls_advisory("TEST-GNUTLS-2")).await;
    let registry = TestRegistry::start(RegistryAuth::None);
    connect(&app, "plain", &registry.host()).await;
    let pushed = push_image(&registry, "team/api", Some("1.0"), &vulnerable_debian()).await;
    let contributor = app.token(SUB, Role::Contributor);
    let image = json!({"image": format!("{}/team/api:1.0", registry.host())});

    let (status, headers, first) = post_scan(&app, &contributor, &image, Some("retry-me")).await;
    assert_eq!(status, 202, "{first}");
    let name = first["name"].as_str().unwrap().to_owned();
    let location = headers["location"].to_str().unwrap();
    assert!(
        location.ends_with(&format!("/scans/{name}?{OWN_API}")),
        "{location}"
    );
    assert_eq!(headers["azure-asyncoperation"], headers["location"]);
    assert_eq!(headers["retry-after"], "2");
    assert_eq!(first["type"], "Microsoft.Security/scans");
    assert_eq!(first["properties"]["trigger"], "Api");
    assert_eq!(first["properties"]["repository"], "team/api");

    // A retried POST with the same key returns the first scan.
    let (status, _, again) = post_scan(&app, &contributor, &image, Some("retry-me")).await;
    assert_eq!((status, again["name"].as_str()), (202, Some(name.as_str())));

    let done = wait_for_scan_end(&app, &name).await;
    let reader = app.token(SUB, Role::Reader);
    let p = &done["properties"];
    assert_eq!(p["status"], "Succeeded", "{done}");
    assert_eq!(p["attempts"], 1);
    assert_eq!(p["digest"], pushed.manifest_digest);
    assert_eq!(p["summary"]["os"], "debian 10");
    assert_eq!(p["summary"]["packageCount"], 2);
    assert_eq!(p["summary"]["findings"]["Medium"], 1, "{done}");
    assert!(p.get("error").is_none());
    let before = findings(&app).await;
    assert_eq!(before.len(), 1);

    // The same key after the scan finished still names the first scan; no key queues a new one.
    let (_, _, replay) = post_scan(&app, &contributor, &image, Some("retry-me")).await;
    assert_eq!(replay["name"].as_str(), Some(name.as_str()));
    let (status, _, second) = post_scan(&app, &contributor, &image, None).await;
    assert_eq!(status, 202);
    let second = second["name"].as_str().unwrap().to_owned();
    assert_ne!(second, name);
    let second = wait_for_scan_end(&app, &second).await;
    assert_eq!(second["properties"]["status"], "Succeeded", "{second}");
    // The second scan found the same finding: same name, same firstSeen, a later lastSeen.
    let after = findings(&app).await;
    assert_eq!(after.len(), 1);
    assert_eq!(after[0]["name"], before[0]["name"]);
    let seen = |f: &Value, k: &str| {
        f["properties"]["additionalData"][k]
            .as_str()
            .unwrap()
            .to_owned()
    };
    assert_eq!(seen(&after[0], "firstSeen"), seen(&before[0], "firstSeen"));
    assert!(
        seen(&after[0], "lastSeen") > seen(&before[0], "lastSeen"),
        "{after:?}"
    );
    assert!(after[0]["properties"]["additionalData"]["resolvedAt"].is_null());

    // Filters.
    assert!(!scans(&app, "&trigger=Api").await.is_empty());
    assert!(scans(&app, "&trigger=Push").await.is_empty());
    assert!(scans(&app, "&repository=team/other").await.is_empty());
    assert_eq!(
        scans(&app, &format!("&digest={}", pushed.manifest_digest))
            .await
            .len(),
        2
    );
    assert_eq!(scans(&app, "&status=Succeeded").await.len(), 2);
    let (status, body) = app
        .get_json(
            &format!(
                "/subscriptions/{SUB}/providers/Microsoft.Security/scans?{OWN_API}&status=Done"
            ),
            &reader,
        )
        .await;
    assert_cloud_error(status, &body, 400, "InvalidParameter");
    let (status, body) = app
        .get_json(
            &format!("/subscriptions/{SUB}/providers/Microsoft.Security/scans/nope?{OWN_API}"),
            &reader,
        )
        .await;
    assert_cloud_error(status, &body, 404, "ScanNotFound");

    // The image is billed once, whatever the number of scans.
    assert_eq!(billed(&app).await, 1);

    // Refusals.
    let (status, _, body) = post_scan(
        &app,
        &contributor,
        &json!({"image": "127.0.0.1:9/team/api:1.0"}),
        None,
    )
    .await;
    assert_cloud_error(status, &body, 404, "RegistryNotConnected");
    let (status, _, body) =
        post_scan(&app, &contributor, &json!({"image": "Not An Image!"}), None).await;
    assert_cloud_error(status, &body, 400, "InvalidParameter");
    let (status, _, body) = post_scan(&app, &contributor, &json!({"picture": "x"}), None).await;
    assert_eq!(status, 400, "{body}");
    let (status, _, body) = post_scan(&app, &reader, &image, None).await;
    assert_cloud_error(status, &body, 403, "AuthorizationFailed");
    let (status, _, body) = post_scan(&app, &contributor, &image, Some(&"k".repeat(300))).await;
    assert_eq!(status, 400, "{body}");
}

async fn redelivered_events_queue_one_scan_and_a_dead_registry_fails_it(backend: Backend) {
    let app = spawn_app(backend).await;
    // Nothing listens on this port: the registry is down.
    let login_server = format!("127.0.0.1:{}", free_port());
    let (webhook, secret) = connect(&app, "down", &login_server).await;
    let envelope = read_shared_fixture("registry-notifications/push-manifest-oci-tagged.json");
    let event: Value = serde_json::from_slice(&envelope).unwrap();
    let digest = event["events"][0]["target"]["digest"]
        .as_str()
        .unwrap()
        .to_owned();

    let (status, body) = post_events(&app, &webhook, None, &envelope).await;
    assert_cloud_error(status, &body, 401, "AuthenticationFailed");
    let (status, body) = post_events(&app, &webhook, Some("not-the-secret"), &envelope).await;
    assert_eq!(status, 401, "{body}");
    assert!(
        scans(&app, "").await.is_empty(),
        "a refused notification queues nothing"
    );

    let (status, body) = post_events(&app, &webhook, Some(&secret), &envelope).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        (body["accepted"].as_u64(), body["duplicates"].as_u64()),
        (Some(1), Some(0))
    );
    let (status, body) = post_events(&app, &webhook, Some(&secret), &envelope).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        (body["accepted"].as_u64(), body["duplicates"].as_u64()),
        (Some(0), Some(1))
    );
    // Blob events and malformed bodies.
    let blob = read_shared_fixture("registry-notifications/push-blob-layer.json");
    let (_, body) = post_events(&app, &webhook, Some(&secret), &blob).await;
    assert_eq!(body["ignored"].as_u64(), Some(1), "{body}");
    let (status, body) = post_events(&app, &webhook, Some(&secret), b"{\"events\": [").await;
    assert_cloud_error(status, &body, 400, "InvalidRequestContent");

    let failed = wait_for_scan(&app, "", "Failed").await;
    let p = &failed["properties"];
    assert_eq!(p["trigger"], "Push");
    assert_eq!(p["digest"], digest);
    assert_eq!(p["attempts"], 3, "retried up to the limit: {failed}");
    assert_eq!(p["error"]["code"], "RegistryUnavailable", "{failed}");
    let message = p["error"]["message"].as_str().unwrap();
    assert!(message.contains(&login_server), "{message}");
    assert_eq!(
        scans(&app, "").await.len(),
        1,
        "one scan for a redelivered event"
    );
    let (_, _, health, reason) = image_state(&app, &digest).await.unwrap();
    assert_eq!(
        (health.as_str(), reason.as_deref()),
        ("NotApplicable", Some("ScanFailed"))
    );
    assert_eq!(billed(&app).await, 0);
}

/// Requests the registry served (its access log), to prove what a re-assessment did not fetch.
fn served_requests(registry: &TestRegistry) -> usize {
    registry
        .log()
        .lines()
        .filter(|l| l.contains("http.request.uri="))
        .count()
}

/// [`served_requests`] once the log has stopped growing (the registry writes a request's line
/// after the response, so the last ones of a scan can show up a little after it finished).
async fn settled_requests(registry: &TestRegistry) -> usize {
    let mut last = served_requests(registry);
    loop {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let now = served_requests(registry);
        if now == last {
            return now;
        }
        last = now;
    }
}

async fn advisory_imports_rematch_stored_inventories_without_pulling(backend: Backend) {
    let app = spawn_app(backend).await;
    let registry = TestRegistry::start(RegistryAuth::None);
    connect(&app, "quiet", &registry.host()).await;
    push_image(&registry, "team/db", Some("5"), &vulnerable_debian()).await;
    let contributor = app.token(SUB, Role::Contributor);
    let (status, _, _) = post_scan(
        &app,
        &contributor,
        &json!({"image": format!("{}/team/db:5", registry.host())}),
        None,
    )
    .await;
    assert_eq!(status, 202);
    let first = wait_for_scan(&app, "", "Succeeded").await;
    assert_eq!(first["properties"]["summary"]["findings"]["Medium"], 0);
    assert!(findings(&app).await.is_empty());
    let served = settled_requests(&registry).await;
    assert!(served > 0, "the registry's access log is readable");

    let summary = import(&app, &gnutls_advisory("TEST-GNUTLS-3")).await;
    assert_eq!(summary["imagesQueued"], 1, "{summary}");
    let rematch = wait_for_scan(&app, "&trigger=AdvisoryUpdate", "Succeeded").await;
    assert_eq!(
        rematch["properties"]["summary"]["images"][0]["reusedInventory"],
        true
    );
    let listed = findings(&app).await;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["properties"]["id"], "TEST-GNUTLS-3");
    // Give a stray request time to show up in the log, then check there was none.
    assert_eq!(
        settled_requests(&registry).await,
        served,
        "the re-assessment pulled nothing"
    );
    assert_eq!(billed(&app).await, 1, "re-assessments are not billed");

    // Withdrawing the advisory resolves the finding on the next re-match.
    let mut withdrawn = gnutls_advisory("TEST-GNUTLS-3");
    withdrawn["modified"] = json!("2026-11-02T00:00:00Z");
    withdrawn["withdrawn"] = json!("2026-11-02T00:00:00Z");
    import(&app, &withdrawn).await;
    wait_for(
        "the finding to resolve",
        Duration::from_secs(30),
        || async {
            let listed = findings(&app).await;
            listed
                .iter()
                .all(|f| f["properties"]["status"]["code"] == "Healthy")
                .then_some(())
        },
    )
    .await;
}

/// `vulnerable_debian` with one more layer: the same packages under another digest.
fn vulnerable_debian_variant() -> Image {
    let mut image = vulnerable_debian();
    image.layers.push(Layer::from_entries(
        &[TarEntry::file("etc/motd", b"variant".to_vec(), 0o644)],
        Compression::Gzip,
    ));
    image
}

async fn reassessments_run_in_batches_and_stale_inventories_are_read_again(backend: Backend) {
    // One worker: it claims the first re-assessment and the others queued with it in one go.
    let app = spawn_app_with(backend, |s| s.jobs.queue.workers = 1).await;
    let registry = TestRegistry::start(RegistryAuth::None);
    connect(&app, "batches", &registry.host()).await;
    let contributor = app.token(SUB, Role::Contributor);
    let repositories = ["team/a", "team/b", "team/c", "team/stale"];
    let mut stale_digest = String::new();
    for repository in repositories {
        let image = if repository == "team/stale" {
            vulnerable_debian_variant()
        } else {
            vulnerable_debian()
        };
        let pushed = push_image(&registry, repository, Some("1"), &image).await;
        if repository == "team/stale" {
            stale_digest = pushed.manifest_digest.clone();
        }
        let image = json!({"image": format!("{}/{repository}:1", registry.host())});
        let (status, _, _) = post_scan(&app, &contributor, &image, None).await;
        assert_eq!(status, 202);
    }
    wait_for("4 succeeded scans", Duration::from_secs(60), || async {
        let done = scans(&app, "&status=Succeeded").await;
        (done.len() == 4).then_some(())
    })
    .await;
    // As if the analyzers had changed since this image's inventory was stored.
    {
        let digest = stale_digest.clone();
        let marked = app
            .db(move |c| {
                use crowsnest::store::schema::inventories;
                use diesel::prelude::*;
                diesel::update(inventories::table.find(digest))
                    .set(inventories::analyzers.eq("analyzers of an older release"))
                    .execute(c)
            })
            .await;
        assert_eq!(marked, 1);
    }
    let served = settled_requests(&registry).await;

    let summary = import(&app, &gnutls_advisory("TEST-GNUTLS-4")).await;
    assert_eq!(summary["imagesQueued"], 4, "{summary}");
    let rematches = wait_for(
        "4 AdvisoryUpdate scans",
        Duration::from_secs(60),
        || async {
            let done = scans(&app, "&trigger=AdvisoryUpdate&status=Succeeded").await;
            (done.len() == 4).then_some(done)
        },
    )
    .await;
    let reused = |s: &Value| s["properties"]["summary"]["images"][0]["reusedInventory"] == true;
    let (batched, pulled): (Vec<&Value>, Vec<&Value>) = rematches.iter().partition(|s| reused(s));
    assert_eq!(batched.len(), 3, "{rematches:?}");
    assert_eq!(pulled.len(), 1, "{rematches:?}");
    assert_eq!(pulled[0]["properties"]["repository"], "team/stale");
    // Claimed in one statement: one start time for the whole batch.
    let started: std::collections::HashSet<&Value> = rematches
        .iter()
        .map(|s| &s["properties"]["startedAt"])
        .collect();
    assert_eq!(started.len(), 1, "{rematches:?}");
    assert!(
        rematches.iter().all(|s| s["properties"]["attempts"] == 1),
        "{rematches:?}"
    );
    // Each scan's start is logged once, the re-read one included.
    let logs = captured_logs();
    for scan in &rematches {
        let name = scan["name"].as_str().unwrap();
        let starts = logs
            .lines()
            .filter(|l| l.contains("scan started") && l.contains(name))
            .count();
        assert_eq!(starts, 1, "scan {name} started {starts} times");
    }
    assert!(
        served_requests(&registry) > served,
        "the stale inventory was read from the registry again"
    );
    let mut listed: Vec<String> = findings(&app)
        .await
        .iter()
        .map(|f| {
            assert_eq!(f["properties"]["id"], "TEST-GNUTLS-4");
            f["properties"]["additionalData"]["repositoryName"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    listed.sort();
    assert_eq!(listed, repositories);
    assert_eq!(billed(&app).await, 2, "two digests, billed once each");
}

async fn the_scheduler_reassesses_active_images_only(backend: Backend) {
    let app = spawn_app_with(backend, |s| {
        s.jobs.rescans.interval = Duration::from_secs(1);
    })
    .await;
    let registry = TestRegistry::start(RegistryAuth::None);
    connect(&app, "daily", &registry.host()).await;
    push_image(&registry, "team/cron", Some("1"), &vulnerable_debian()).await;
    let contributor = app.token(SUB, Role::Contributor);
    let image = json!({"image": format!("{}/team/cron:1", registry.host())});
    let (status, _, _) = post_scan(&app, &contributor, &image, None).await;
    assert_eq!(status, 202);
    let first = wait_for_scan(&app, "&trigger=Api", "Succeeded").await;
    let digest = first["properties"]["digest"].as_str().unwrap().to_owned();

    // An image nobody pushed, pulled or ran for two months: not re-assessed.
    let stale_digest = digest_of("stale");
    {
        let digest = stale_digest.clone();
        app.db(move |c| {
            use crowsnest::store::schema::registries;
            use diesel::prelude::*;
            let registry: crowsnest::store::registries::RegistryRow = registries::table
                .filter(registries::name.eq("daily"))
                .select(crowsnest::store::registries::RegistryRow::as_select())
                .first(c)?;
            let long_ago = crowsnest::domain::Timestamp::now().micros() - 60 * 86_400_000_000;
            let row = crowsnest::store::images::ImageRow {
                pushed_at: Some(long_ago),
                scanned_at: Some(long_ago),
                created_at: long_ago,
                health: "Healthy".to_owned(),
                ..image_row(&registry, "team/old", &digest)
            };
            crowsnest::store::images::insert(c, &row)
        })
        .await;
    }

    // The scheduler runs every second here: the scanned image comes round again, from its stored inventory.
    let rescan = wait_for_scan(&app, "&trigger=Rescan", "Succeeded").await;
    assert_eq!(rescan["properties"]["digest"], digest);
    assert_eq!(
        rescan["properties"]["summary"]["images"][0]["reusedInventory"],
        true
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rescans = scans(&app, "&trigger=Rescan").await;
    assert!(
        rescans
            .iter()
            .all(|s| s["properties"]["digest"] == digest.as_str()),
        "only the active image is re-assessed: {rescans:?}"
    );
    assert_eq!(billed(&app).await, 1, "rescans are not billed");
}

async fn due_images_are_paged_by_cursor_while_they_are_being_rescanned(backend: Backend) {
    let app = spawn_app_with(backend, |s| s.jobs.queue.workers = 0).await;
    let registry = app.seed_registry(SUB, "rg", "due").await;
    let day = 86_400_000_000;
    let now = crowsnest::domain::Timestamp::now().micros();
    for n in 0..5 {
        let row = crowsnest::store::images::ImageRow {
            // Oldest assessment first: image 0 was assessed longest ago.
            scanned_at: Some(now - (10 - n) * day),
            ..image_row(&registry, "team/due", &digest_of(&format!("due-{n}")))
        };
        app.db(move |c| crowsnest::store::images::insert(c, &row))
            .await;
    }
    let page = |after: Option<(i64, String)>| {
        app.db(move |c| {
            crowsnest::store::images::due_for_rescan(
                c,
                now - day,
                now - 30 * day,
                2,
                after.as_ref().map(|(at, id)| (*at, id.as_str())),
            )
        })
    };
    let first = page(None).await;
    assert_eq!(first.len(), 2);
    // Workers rescan the first page before the next one is read: those images leave the set.
    let done: Vec<String> = first.iter().map(|i| i.id.clone()).collect();
    app.db(move |c| {
        use crowsnest::store::schema::images;
        use diesel::prelude::*;
        diesel::update(images::table.filter(images::id.eq_any(&done)))
            .set(images::scanned_at.eq(now))
            .execute(c)
    })
    .await;
    let last = first.last().unwrap();
    let second = page(Some((last.scanned_at.unwrap(), last.id.clone()))).await;
    let last = second.last().unwrap();
    let third = page(Some((last.scanned_at.unwrap(), last.id.clone()))).await;
    let digests: Vec<String> = first
        .iter()
        .chain(&second)
        .chain(&third)
        .map(|i| i.digest.clone())
        .collect();
    let expected: Vec<String> = (0..5).map(|n| digest_of(&format!("due-{n}"))).collect();
    assert_eq!(digests, expected, "no due image is skipped or read twice");
}
