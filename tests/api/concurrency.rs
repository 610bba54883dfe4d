//! The service under concurrent writers: webhook envelopes that touch the same images in opposite
//! orders, floods of one-event envelopes, scans of one digest asked for at once from several
//! sides, and API writes while the workers and the scheduler write.

use std::time::{Duration, Instant};

use crowsnest::domain::{Role, Timestamp};
use serde_json::{Value, json};

use crate::backend_tests;
use crate::support::app::*;
use crate::support::database::Backend;
use crate::support::fixtures::{debian_with_gnutls, vulnerable_debian};
use crate::support::images::TarEntry;
use crate::support::registry::client::push_image;
use crate::support::registry::{NotificationEndpoint, RegistryAuth, TestRegistry};
use crate::support::rows::{digest_of, image_row};
use crate::support::scans::{
    SUB, connect, gnutls_advisory, import, post_events, post_scan, push_envelope, put_registry,
    scans,
};
use crate::support::{free_port, wait_for};

backend_tests!(
    opposite_order_envelopes_never_fail,
    one_event_envelopes_racing_for_a_tag_never_conflict,
    api_writes_while_workers_and_the_scheduler_write_never_fail,
    a_push_and_an_api_scan_of_one_image_both_succeed_at_once,
    one_digest_in_two_registries_and_repositories_scanned_at_once,
    cluster_reports_and_pushes_of_the_same_images_never_fail,
);

/// Posts every envelope at once; returns each answer's status and body.
async fn post_all(
    app: &TestApp,
    webhook: &str,
    secret: &str,
    bodies: Vec<Vec<u8>>,
) -> Vec<(u16, Value)> {
    let posts = bodies
        .iter()
        .map(|body| post_events(app, webhook, Some(secret), body));
    futures_util::future::join_all(posts).await
}

/// The answers that are not 200, for the failure message.
fn failures(answers: &[(u16, Value)]) -> Vec<&(u16, Value)> {
    answers
        .iter()
        .filter(|(status, _)| *status != 200)
        .collect()
}

/// Two envelopes push the same new digests (and tags) in opposite orders, 40 pairs at once: on
/// PostgreSQL they locked the image rows in opposite orders and deadlocked (500). Every one is
/// answered 200 and every push is recorded.
async fn opposite_order_envelopes_never_fail(backend: Backend) {
    let app = spawn_app_with(backend, |s| s.jobs.queue.workers = 0).await;
    let (webhook, secret) = connect(&app, "racing", "127.0.0.1:9").await;
    let mut bodies = Vec::new();
    for pair in 0..40 {
        let images: Vec<(&str, String, String)> = (0..4)
            .map(|n| {
                (
                    "team/race",
                    format!("t{pair}-{n}"),
                    digest_of(&format!("race-{pair}-{n}")),
                )
            })
            .collect();
        for side in ["a", "b"] {
            let mut events: Vec<(String, &str, &str, String)> = images
                .iter()
                .enumerate()
                .map(|(n, (repository, tag, digest))| {
                    (
                        format!("{side}-{pair}-{n}"),
                        *repository,
                        tag.as_str(),
                        digest.clone(),
                    )
                })
                .collect();
            if side == "b" {
                events.reverse();
            }
            bodies.push(push_envelope(&events));
        }
    }
    let answers = post_all(&app, &webhook, &secret, bodies).await;
    assert!(failures(&answers).is_empty(), "{:?}", failures(&answers));
    let accepted: u64 = answers
        .iter()
        .map(|(_, body)| body["accepted"].as_u64().unwrap())
        .sum();
    assert_eq!(accepted, 320, "every event acted on once");
    let images: i64 = app
        .db(|c| {
            use crowsnest::store::schema::images;
            use diesel::prelude::*;
            images::table.count().get_result(c)
        })
        .await;
    assert_eq!(images, 160, "one image row per digest");
}

/// A flood of one-event envelopes, many pushing the same tag to different digests and the same
/// digests again, all at once: a tag written by two envelopes at the same moment answered 409.
/// None does now, and the tag ends up on one of the pushed images.
async fn one_event_envelopes_racing_for_a_tag_never_conflict(backend: Backend) {
    let app = spawn_app_with(backend, |s| s.jobs.queue.workers = 0).await;
    let (webhook, secret) = connect(&app, "flood", "127.0.0.1:9").await;
    let started = Instant::now();
    let mut bodies = Vec::new();
    for n in 0..120 {
        let digest = digest_of(&format!("flood-{}", n % 10));
        let tag = if n % 2 == 0 {
            "latest".to_owned()
        } else {
            format!("v{}", n % 10)
        };
        bodies.push(push_envelope(&[(
            format!("flood-{n}"),
            "team/flood",
            &tag,
            digest,
        )]));
    }
    let answers = post_all(&app, &webhook, &secret, bodies).await;
    assert!(failures(&answers).is_empty(), "{:?}", failures(&answers));
    let tags: Vec<(String, String)> = app
        .db(|c| {
            use crowsnest::store::schema::image_tags;
            use diesel::prelude::*;
            image_tags::table
                .select((image_tags::tag, image_tags::image_id))
                .order(image_tags::tag.asc())
                .load(c)
        })
        .await;
    let names: Vec<&str> = tags.iter().map(|(tag, _)| tag.as_str()).collect();
    assert_eq!(
        names,
        ["latest", "v1", "v3", "v5", "v7", "v9"],
        "one row per tag"
    );
    // Generous: the flood is a few hundred small transactions on a loaded machine.
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "{:?}",
        started.elapsed()
    );
}

/// API writes (registries connected and changed, scans submitted, notifications) while the
/// scheduler queues re-assessments every second and the workers keep failing and retrying them
/// against a registry that is down. On SQLite, a transaction that read before it wrote failed at
/// once ("database is locked", 500) when a worker committed in between; no answer is a 5xx now.
async fn api_writes_while_workers_and_the_scheduler_write_never_fail(backend: Backend) {
    let app = spawn_app_with(backend, |s| {
        s.jobs.rescans.interval = Duration::from_secs(1);
        s.jobs.queue.workers = 3;
    })
    .await;
    // Nothing listens there: every scan fails fast and is retried, each attempt a write.
    let down = format!("127.0.0.1:{}", free_port());
    let (webhook, secret) = connect(&app, "busy", &down).await;
    let registry: crowsnest::store::registries::RegistryRow = app
        .db(|c| {
            use crowsnest::store::schema::registries;
            use diesel::prelude::*;
            registries::table
                .filter(registries::name.eq("busy"))
                .select(crowsnest::store::registries::RegistryRow::as_select())
                .first(c)
        })
        .await;
    // Active images assessed two days ago: due for a re-assessment at every pass.
    let two_days_ago = Timestamp::now().micros() - 2 * 86_400_000_000;
    let rows: Vec<_> = (0..200)
        .map(|n| crowsnest::store::images::ImageRow {
            scanned_at: Some(two_days_ago),
            ..image_row(&registry, "team/busy", &digest_of(&format!("busy-{n}")))
        })
        .collect();
    app.db(move |c| {
        rows.iter()
            .try_for_each(|row| crowsnest::store::images::insert(c, row))
    })
    .await;
    wait_for(
        "the scheduler's first re-assessments",
        Duration::from_secs(30),
        || async {
            let queued: i64 = app
                .db(|c| {
                    use crowsnest::store::schema::scans;
                    use diesel::prelude::*;
                    scans::table.count().get_result(c)
                })
                .await;
            (queued > 0).then_some(())
        },
    )
    .await;

    let contributor = app.token(SUB, Role::Contributor);
    // Two streams of each kind of write, side by side.
    let registries = |stream: usize| {
        let app = &app;
        async move {
            let mut statuses = Vec::new();
            for n in 0..40 {
                let name = format!("extra-{stream}-{n}");
                let first = format!("{name}.example.com");
                statuses.push(put_registry(app, &name, &first).await);
                let moved = format!("moved-{stream}-{n}.example.com");
                statuses.push(put_registry(app, &name, &moved).await);
            }
            statuses
        }
    };
    let submissions = |stream: usize| {
        let (app, contributor, down) = (&app, &contributor, &down);
        async move {
            let mut statuses = Vec::new();
            for n in 0..80 {
                let image = json!({"image": format!("{down}/team/busy:t{stream}-{n}")});
                let (status, _, body) = post_scan(app, contributor, &image, None).await;
                statuses.push((status, body));
            }
            statuses
        }
    };
    let notifications = |stream: usize| {
        let (app, webhook, secret) = (&app, &webhook, &secret);
        async move {
            let mut statuses = Vec::new();
            for n in 0..80 {
                let body = push_envelope(&[(
                    format!("busy-{stream}-{n}"),
                    "team/pushed",
                    "latest",
                    digest_of(&format!("pushed-{stream}-{n}")),
                )]);
                statuses.push(post_events(app, webhook, Some(secret), &body).await);
            }
            statuses
        }
    };
    let streams = tokio::join!(
        registries(0),
        registries(1),
        submissions(0),
        submissions(1),
        notifications(0),
        notifications(1),
    );
    let answers: Vec<(u16, Value)> = [
        streams.0, streams.1, streams.2, streams.3, streams.4, streams.5,
    ]
    .into_iter()
    .flatten()
    .collect();
    assert_eq!(answers.len(), 480);
    let failed: Vec<_> = answers
        .iter()
        .filter(|(status, _)| *status >= 500)
        .collect();
    let errors: Vec<String> = captured_logs()
        .lines()
        .filter(|l| l.contains("ERROR"))
        .map(str::to_owned)
        .collect();
    assert!(
        failed.is_empty(),
        "{} of 480 failed: {failed:?}\n{}",
        failed.len(),
        errors.join("\n")
    );
    assert!(
        answers
            .iter()
            .all(|(status, _)| (200..=202).contains(status)),
        "{answers:?}"
    );
}

/// Waits until `expected` scans exist and none is queued or running; returns them.
async fn all_scans_ended(app: &TestApp, expected: usize) -> Vec<Value> {
    wait_for(
        &format!("{expected} scans to end"),
        Duration::from_secs(180),
        || async {
            let all = scans(app, "").await;
            let ended = all.iter().all(|s| {
                matches!(
                    s["properties"]["status"].as_str(),
                    Some("Succeeded" | "Failed")
                )
            });
            (all.len() >= expected && ended).then_some(all)
        },
    )
    .await
}

/// Scans that did not succeed at their first attempt, for the failure message.
fn not_first_time(scans: &[Value]) -> Vec<&Value> {
    scans
        .iter()
        .filter(|s| s["properties"]["status"] != "Succeeded" || s["properties"]["attempts"] != 1)
        .collect()
}

/// How many active findings each image row has.
async fn findings_per_image(app: &TestApp) -> Vec<i64> {
    app.db(|c| {
        use crowsnest::store::schema::{findings, images};
        use diesel::prelude::*;
        images::table
            .left_join(findings::table.on(findings::image_id.eq(images::id)))
            .group_by(images::id)
            .select(diesel::dsl::count(findings::id.nullable()))
            .load(c)
    })
    .await
}

/// 20 images pushed to a registry that notifies the service (a Push scan by digest), each
/// scanned through the API by tag at the same moment, one pair after the other. Both scans of an image stored their
/// findings into the same rows at once: on PostgreSQL one failed on a key and stayed Running
/// until its lease ran out (60 s), or was retried. Every scan succeeds at its first attempt now,
/// and the lot finishes before a single lease could have run out.
async fn a_push_and_an_api_scan_of_one_image_both_succeed_at_once(backend: Backend) {
    let app = spawn_app_with(backend, |s| {
        s.jobs.queue.lease = Duration::from_secs(60);
    })
    .await;
    import(&app, &gnutls_advisory("TEST-GNUTLS-RACE")).await;
    let (url, secret) = connect(&app, "pushed", "127.0.0.1:1").await;
    let endpoint = NotificationEndpoint {
        authorization: Some(format!("Bearer {secret}")),
        backoff: Duration::from_millis(200),
        ..NotificationEndpoint::new(url)
    };
    let registry = TestRegistry::start_with(RegistryAuth::None, Some(endpoint));
    let (status, body) = put_registry(&app, "pushed", &registry.host()).await;
    assert_eq!(status, 200, "{body}");

    let contributor = app.token(SUB, Role::Contributor);
    let started = Instant::now();
    // One pair after the other, so that the two scans of an image are all the workers have.
    for n in 0..20_i64 {
        let marker = TarEntry::file(&format!("etc/marker-{n}"), format!("{n}"), 0o644);
        let image = debian_with_gnutls(Some("3.6.7-4+deb10u2"), vec![marker]);
        let tag = format!("v{n}");
        push_image(&registry, "team/race", Some(&tag), &image).await;
        let reference = json!({"image": format!("{}/team/race:{tag}", registry.host())});
        let (status, _, body) = post_scan(&app, &contributor, &reference, None).await;
        assert_eq!(status, 202, "{body}");
        // The push notification is in (it queued a scan, or found the image assessed).
        wait_for("the push notification", Duration::from_secs(60), || async {
            let seen: i64 = app
                .db(|c| {
                    use crowsnest::store::schema::registry_events;
                    use diesel::prelude::*;
                    registry_events::table.count().get_result(c)
                })
                .await;
            (seen > n).then_some(())
        })
        .await;
        all_scans_ended(&app, usize::try_from(n).unwrap() + 1).await;
    }
    let all = all_scans_ended(&app, 20).await;
    let elapsed = started.elapsed();
    let api = all
        .iter()
        .filter(|s| s["properties"]["trigger"] == "Api")
        .count();
    assert_eq!(api, 20, "{all:?}");
    assert!(
        not_first_time(&all).is_empty(),
        "{:?}",
        not_first_time(&all)
    );
    // A scan that waited for a lease to run out takes 60 s at least.
    assert!(elapsed < Duration::from_secs(60), "took {elapsed:?}");
    assert_eq!(findings_per_image(&app).await, vec![1; 20]);
}

/// One image (one digest) in two registries and three repositories of each, scanned by all six
/// at once: each stored inventory, image row and finding is written by one scan at a time.
/// Before, the scans wrote the digest's inventory together and one failed on its key.
async fn one_digest_in_two_registries_and_repositories_scanned_at_once(backend: Backend) {
    let app = spawn_app_with(backend, |s| s.jobs.queue.workers = 6).await;
    import(&app, &gnutls_advisory("TEST-GNUTLS-SHARED")).await;
    let registries = [
        TestRegistry::start(RegistryAuth::None),
        TestRegistry::start(RegistryAuth::None),
    ];
    let mut references = Vec::new();
    for (n, registry) in registries.iter().enumerate() {
        connect(&app, &format!("shared-{n}"), &registry.host()).await;
        for repository in ["team/a", "team/b", "team/c"] {
            push_image(registry, repository, Some("1"), &vulnerable_debian()).await;
            references.push(format!("{}/{repository}:1", registry.host()));
        }
    }
    let contributor = app.token(SUB, Role::Contributor);
    let submissions = references.iter().map(|reference| {
        let contributor = &contributor;
        let app = &app;
        async move {
            let (status, _, body) =
                post_scan(app, contributor, &json!({ "image": reference }), None).await;
            assert_eq!(status, 202, "{body}");
        }
    });
    futures_util::future::join_all(submissions).await;
    let all = all_scans_ended(&app, 6).await;
    assert_eq!(all.len(), 6, "{all:?}");
    assert!(
        not_first_time(&all).is_empty(),
        "{:?}",
        not_first_time(&all)
    );
    let digests: std::collections::BTreeSet<&str> = all
        .iter()
        .map(|s| s["properties"]["digest"].as_str().unwrap())
        .collect();
    assert_eq!(digests.len(), 1, "one digest everywhere: {digests:?}");
    assert_eq!(
        findings_per_image(&app).await,
        vec![1; 6],
        "one set of findings each"
    );
}

/// A kubectl pod list with one running container per `(repository, digest)` on `host`.
fn pod_list(host: &str, images: &[(String, String)]) -> Vec<u8> {
    let items: Vec<Value> = images
        .iter()
        .enumerate()
        .map(|(n, (repository, digest))| {
            let image = format!("{host}/{repository}:1");
            json!({
                "metadata": {"name": format!("pod-{n}"), "namespace": "shop"},
                "spec": {"containers": [{"name": "app", "image": image}]},
                "status": {
                    "phase": "Running",
                    "containerStatuses": [{
                        "name": "app",
                        "image": image,
                        "imageID": format!("{host}/{repository}@{digest}"),
                        "state": {"running": {}}
                    }]
                }
            })
        })
        .collect();
    serde_json::to_vec(&json!({"apiVersion": "v1", "kind": "List", "items": items})).unwrap()
}

/// Eight clusters report the same never-assessed images (in opposite orders) while envelopes push
/// them: reports and envelopes lock the same images, in one order. Every answer is 200.
async fn cluster_reports_and_pushes_of_the_same_images_never_fail(backend: Backend) {
    let app = spawn_app_with(backend, |s| s.jobs.queue.workers = 0).await;
    let host = "runtime.example.com";
    let (webhook, secret) = connect(&app, "runtime", host).await;
    let images: Vec<(String, String)> = (0..30)
        .map(|n| {
            (
                format!("team/app-{}", n % 5),
                digest_of(&format!("runtime-{n}")),
            )
        })
        .collect();
    let contributor = app.token(SUB, Role::Contributor);
    let reports = (0..8).map(|cluster| {
        let mut mine = images.clone();
        if cluster % 2 == 1 {
            mine.reverse();
        }
        let (app, contributor) = (&app, &contributor);
        async move {
            let response = app
                .client
                .put(app.url(&format!(
                    "/subscriptions/{SUB}/providers/Microsoft.Security/clusters/c{cluster}/runningImages?{OWN_API}"
                )))
                .bearer_auth(contributor)
                .header("content-type", "application/json")
                .body(pod_list(host, &mine))
                .send()
                .await
                .unwrap();
            json_of(response).await
        }
    });
    let pushes = images.chunks(3).enumerate().map(|(n, chunk)| {
        let mut events: Vec<(String, &str, &str, String)> = chunk
            .iter()
            .enumerate()
            .map(|(m, (repository, digest))| {
                (
                    format!("rt-{n}-{m}"),
                    repository.as_str(),
                    "1",
                    digest.clone(),
                )
            })
            .collect();
        events.reverse();
        push_envelope(&events)
    });
    let pushes: Vec<Vec<u8>> = pushes.collect();
    let (reports, pushes) = tokio::join!(
        futures_util::future::join_all(reports),
        post_all(&app, &webhook, &secret, pushes)
    );
    let answers: Vec<(u16, Value)> = reports.into_iter().chain(pushes).collect();
    assert_eq!(answers.len(), 18);
    assert!(failures(&answers).is_empty(), "{:?}", failures(&answers));
    let rows: i64 = app
        .db(|c| {
            use crowsnest::store::schema::images;
            use diesel::prelude::*;
            images::table.count().get_result(c)
        })
        .await;
    assert_eq!(rows, 30, "one image row per pushed digest");
}
