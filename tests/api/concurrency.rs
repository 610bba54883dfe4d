//! The service under concurrent writers: webhook envelopes that touch the same images in opposite
//! orders, floods of one-event envelopes, scans of one digest asked for at once from several
//! sides, and API writes while the workers and the scheduler write.

use std::time::{Duration, Instant};

use crowsnest::domain::{Role, Timestamp};
use serde_json::{Value, json};

use crate::backend_tests;
use crate::support::app::*;
use crate::support::database::Backend;
use crate::support::fixtures::read_shared_fixture;
use crate::support::rows::{digest_of, image_row};
use crate::support::scans::{SUB, connect, post_events, post_scan, put_registry};
use crate::support::{free_port, wait_for};

backend_tests!(
    opposite_order_envelopes_never_fail,
    one_event_envelopes_racing_for_a_tag_never_conflict,
    api_writes_while_workers_and_the_scheduler_write_never_fail,
);

/// An envelope of push events `(id, repository, tag, digest)`, built from the fixture's event.
fn envelope(events: &[(String, &str, &str, String)]) -> Vec<u8> {
    let fixture: Value = serde_json::from_slice(&read_shared_fixture(
        "registry-notifications/push-manifest-oci-tagged.json",
    ))
    .unwrap();
    let template = &fixture["events"][0];
    let events: Vec<Value> = events
        .iter()
        .map(|(id, repository, tag, digest)| {
            let mut event = template.clone();
            event["id"] = json!(id);
            event["target"]["repository"] = json!(repository);
            event["target"]["tag"] = json!(tag);
            event["target"]["digest"] = json!(digest);
            event
        })
        .collect();
    serde_json::to_vec(&json!({ "events": events })).unwrap()
}

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
            bodies.push(envelope(&events));
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
        bodies.push(envelope(&[(
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
                let body = envelope(&[(
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
    assert!(
        failed.is_empty(),
        "{} of 480 failed: {failed:?}",
        failed.len()
    );
    assert!(
        answers
            .iter()
            .all(|(status, _)| matches!(status, 200 | 201 | 202)),
        "{answers:?}"
    );
}
