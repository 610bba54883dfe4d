//! Input a client should never send, or sends in an unusual spelling, handled at the edge the same
//! way on both backends.

use crowsnest::domain::Role;
use serde_json::{Value, json};

use crate::backend_tests;
use crate::support::app::*;
use crate::support::database::Backend;
use crate::support::fixtures::read_shared_fixture;
use crate::support::scans::{SUB, connect, post_events};

backend_tests!(
    method_not_allowed_names_the_allowed_methods,
    the_bearer_scheme_is_case_insensitive,
);

/// An app without scan workers, so queued scans stay as they are.
async fn app_without_workers(backend: Backend) -> TestApp {
    spawn_app_with(backend, |s| s.jobs.queue.workers = 0).await
}

/// An envelope of the fixture's push event, once per (id, repository, tag, digest).
fn envelope(events: &[(&str, &str, &str, &str)]) -> Vec<u8> {
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

async fn the_bearer_scheme_is_case_insensitive(backend: Backend) {
    let app = app_without_workers(backend).await;
    let (webhook, secret) = connect(&app, "plain", "127.0.0.1:9").await;
    let body = envelope(&[(
        "event-1",
        "team/api",
        "1.0",
        &crate::support::rows::digest_of("one"),
    )]);
    for scheme in ["bearer", "BEARER", "Bearer"] {
        let response = app
            .client
            .post(&webhook)
            .header("content-type", "application/json")
            .header("authorization", format!("{scheme} {secret}"))
            .body(body.clone())
            .send()
            .await
            .unwrap();
        let (status, answer) = json_of(response).await;
        assert_eq!(status, 200, "{scheme}: {answer}");
    }
    let (status, answer) = post_events(&app, &webhook, Some("wrong"), &body).await;
    assert_cloud_error(status, &answer, 401, "AuthenticationFailed");

    let token = app.token(SUB, Role::Reader);
    for scheme in ["bearer", "BEARER"] {
        let response = app
            .client
            .get(app.url(&format!(
                "/subscriptions/{SUB}/providers/Microsoft.Security/scans?{OWN_API}"
            )))
            .header("authorization", format!("{scheme} {token}"))
            .send()
            .await
            .unwrap();
        let (status, answer) = json_of(response).await;
        assert_eq!(status, 200, "{scheme}: {answer}");
    }
}

async fn method_not_allowed_names_the_allowed_methods(backend: Backend) {
    let app = spawn_app(backend).await;
    let token = app.token(SUB, Role::Contributor);
    let registry = format!(
        "/subscriptions/{SUB}/resourceGroups/rg/providers/Microsoft.ContainerRegistry/registries/reg?{OWN_API}"
    );
    let scans = format!("/subscriptions/{SUB}/providers/Microsoft.Security/scans?{OWN_API}");
    for (method, path, allowed) in [
        (reqwest::Method::POST, registry.as_str(), "PUT, GET, DELETE"),
        (reqwest::Method::PATCH, scans.as_str(), "POST, GET"),
        (reqwest::Method::DELETE, "/healthz", "GET"),
    ] {
        let response = app
            .client
            .request(method.clone(), app.url(path))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        let allow = response
            .headers()
            .get("allow")
            .map(|v| v.to_str().unwrap().to_owned());
        let (status, body) = json_of(response).await;
        assert_cloud_error(status, &body, 405, "MethodNotAllowed");
        assert_eq!(allow.as_deref(), Some(allowed), "{method} {path}");
    }
}
