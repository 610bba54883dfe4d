//! Scans through the API in subscription [`SUB`]: connect a registry, import an advisory,
//! submit a scan or deliver registry notifications, then list the scans and findings or wait for
//! a scan to end.

use std::time::Duration;

use crowsnest::domain::Role;
use serde_json::{Value, json};

use super::app::{OWN_API, SUB_API, TestApp, captured_logs, json_of};
use super::registry::{NotificationEndpoint, RegistryAuth, TestRegistry};
use super::wait_for;

pub const SUB: &str = "sub-life";
const EVENTS_TYPE: &str = "application/vnd.docker.distribution.events.v1+json";

pub fn registry_id(name: &str) -> String {
    format!(
        "subscriptions/{SUB}/resourceGroups/rg/providers/Microsoft.ContainerRegistry/registries/{name}"
    )
}

pub fn registry_path(name: &str) -> String {
    format!("/{}?{OWN_API}", registry_id(name))
}

/// PUTs registry `name` at `login_server`, insecure (the test registries speak plain HTTP);
/// returns the status and body.
pub async fn put_registry(app: &TestApp, name: &str, login_server: &str) -> (u16, Value) {
    let admin = app.token(SUB, Role::Contributor);
    app.put_json(
        &registry_path(name),
        &admin,
        &json!({"properties": {"loginServer": login_server, "insecure": true}}),
    )
    .await
}

/// Connects a registry; returns the webhook URL and secret.
pub async fn connect(app: &TestApp, name: &str, login_server: &str) -> (String, String) {
    let (status, body) = put_registry(app, name, login_server).await;
    assert_eq!(status, 201, "{body}");
    (
        body["properties"]["webhook"]["url"]
            .as_str()
            .unwrap()
            .to_owned(),
        body["properties"]["webhook"]["secret"]
            .as_str()
            .unwrap()
            .to_owned(),
    )
}

/// An advisory for the gnutls28 source package of [`super::fixtures::vulnerable_debian`] (3.6.7-4+deb10u2).
pub fn gnutls_advisory(id: &str) -> Value {
    json!({
        "schema_version": "1.6.0",
        "id": id,
        "modified": "2026-11-01T00:00:00Z",
        "summary": "gnutls28 demo flaw",
        "affected": [{
            "package": {"ecosystem": "Debian:10", "name": "gnutls28"},
            "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "3.6.7-4+deb10u3"}]}]
        }]
    })
}

/// A real registry connected as registry `name`, whose notifications go to its webhook.
pub async fn notifying_registry(app: &TestApp, name: &str) -> TestRegistry {
    let (url, secret) = connect(app, name, "127.0.0.1:1").await;
    let endpoint = NotificationEndpoint {
        authorization: Some(format!("Bearer {secret}")),
        backoff: Duration::from_millis(200),
        ..NotificationEndpoint::new(url)
    };
    let registry = TestRegistry::start_with(RegistryAuth::None, Some(endpoint));
    let (status, body) = put_registry(app, name, &registry.host()).await;
    assert_eq!(status, 200, "{body}");
    registry
}

pub async fn import(app: &TestApp, record: &Value) -> Value {
    let response = app
        .client
        .post(app.url(&format!(
            "/providers/Microsoft.Security/advisories:import?{OWN_API}"
        )))
        .bearer_auth(app.token("*", Role::Admin))
        .json(record)
        .send()
        .await
        .unwrap();
    let (status, body) = json_of(response).await;
    assert_eq!(status, 200, "{body}");
    body
}

pub async fn post_scan(
    app: &TestApp,
    token: &str,
    body: &Value,
    key: Option<&str>,
) -> (u16, reqwest::header::HeaderMap, Value) {
    let mut request = app
        .client
        .post(app.url(&format!(
            "/subscriptions/{SUB}/providers/Microsoft.Security/scans?{OWN_API}"
        )))
        .bearer_auth(token)
        .json(body);
    if let Some(key) = key {
        request = request.header("Idempotency-Key", key);
    }
    let response = request.send().await.unwrap();
    let headers = response.headers().clone();
    let (status, body) = json_of(response).await;
    (status, headers, body)
}

/// An envelope of the fixture's push event, once per `(id, repository, tag, digest)`.
pub fn push_envelope(events: &[(impl AsRef<str>, &str, &str, impl AsRef<str>)]) -> Vec<u8> {
    let fixture: Value = serde_json::from_slice(&super::fixtures::read_shared_fixture(
        "registry-notifications/push-manifest-oci-tagged.json",
    ))
    .unwrap();
    let template = &fixture["events"][0];
    let events: Vec<Value> = events
        .iter()
        .map(|(id, repository, tag, digest)| {
            let mut event = template.clone();
            event["id"] = json!(id.as_ref());
            event["target"]["repository"] = json!(repository);
            event["target"]["tag"] = json!(tag);
            event["target"]["digest"] = json!(digest.as_ref());
            event
        })
        .collect();
    serde_json::to_vec(&json!({ "events": events })).unwrap()
}

pub async fn post_events(
    app: &TestApp,
    webhook: &str,
    secret: Option<&str>,
    body: &[u8],
) -> (u16, Value) {
    let mut request = app
        .client
        .post(webhook)
        .header("content-type", EVENTS_TYPE)
        .body(body.to_vec());
    if let Some(secret) = secret {
        request = request.bearer_auth(secret);
    }
    let (status, body) = json_of(request.send().await.unwrap()).await;
    if status == 500 {
        for line in captured_logs().lines().filter(|l| l.contains("ERROR")) {
            eprintln!("{line}");
        }
    }
    (status, body)
}

/// GETs `/subscriptions/{SUB}/providers/Microsoft.Security/{resource}` as a Reader; asserts 200
/// and returns the body.
pub async fn get_security(app: &TestApp, resource: &str) -> Value {
    let token = app.token(SUB, Role::Reader);
    let (status, body) = app
        .get_json(
            &format!("/subscriptions/{SUB}/providers/Microsoft.Security/{resource}"),
            &token,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    body
}

pub async fn scans(app: &TestApp, filter: &str) -> Vec<Value> {
    let body = get_security(app, &format!("scans?{OWN_API}&$top=1000{filter}")).await;
    body["value"].as_array().unwrap().clone()
}

pub async fn findings(app: &TestApp) -> Vec<Value> {
    let body = get_security(app, &format!("subAssessments?{SUB_API}")).await;
    body["value"].as_array().unwrap().clone()
}

pub async fn wait_for_scan(app: &TestApp, filter: &str, status: &str) -> Value {
    wait_for(
        &format!("a {status} scan ({filter})"),
        Duration::from_secs(60),
        || async {
            scans(app, filter)
                .await
                .into_iter()
                .find(|s| s["properties"]["status"] == status)
        },
    )
    .await
}

/// Polls the scan `name` until it has ended (Succeeded or Failed) and returns it.
pub async fn wait_for_scan_end(app: &TestApp, name: &str) -> Value {
    let reader = app.token(SUB, Role::Reader);
    wait_for(
        &format!("scan {name} to end"),
        Duration::from_secs(60),
        || async {
            let (_, scan) = app
                .get_json(
                    &format!(
                        "/subscriptions/{SUB}/providers/Microsoft.Security/scans/{name}?{OWN_API}"
                    ),
                    &reader,
                )
                .await;
            matches!(
                scan["properties"]["status"].as_str(),
                Some("Succeeded" | "Failed")
            )
            .then_some(scan)
        },
    )
    .await
}

/// Submits a scan of `reference` through the API and waits until it has succeeded.
pub async fn scan_succeeded(app: &TestApp, reference: &str) -> Value {
    let contributor = app.token(SUB, Role::Contributor);
    let (status, _, body) =
        post_scan(app, &contributor, &json!({ "image": reference }), None).await;
    assert_eq!(status, 202, "{body}");
    let scan = wait_for_scan_end(app, body["name"].as_str().unwrap()).await;
    assert_eq!(
        scan["properties"]["status"], "Succeeded",
        "the scan failed: {scan}"
    );
    scan
}

/// The registry's assessment in Azure's Assessments shape (api-version 2021-06-01).
pub async fn registry_assessment(app: &TestApp, registry: &str) -> Value {
    let (status, body) = app
        .get_json(
            &format!(
                "/{}/providers/Microsoft.Security/assessments/{}?api-version=2021-06-01",
                registry_id(registry),
                crowsnest::domain::CONTAINER_REGISTRY_ASSESSMENT_KEY
            ),
            &app.token(SUB, Role::Reader),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    body
}
