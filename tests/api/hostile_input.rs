//! Input a client should never send, or sends in an unusual spelling, handled at the edge the same
//! way on both backends: NUL characters (which PostgreSQL cannot store) in paths, queries, skip
//! tokens, headers, bodies and webhook events; methods a route does not take; bodies that trickle
//! in; a lower-case `bearer`; an idempotency key sent again with another image.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use crowsnest::domain::Role;
use crowsnest::store;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::backend_tests;
use crate::support::app::*;
use crate::support::database::Backend;
use crate::support::free_port;
use crate::support::scans::{SUB, connect, post_events, post_scan, push_envelope, scans};

backend_tests!(
    nul_in_paths_and_queries_is_refused_naming_the_parameter,
    nul_in_skip_tokens_is_refused,
    nul_in_json_bodies_is_refused_and_nothing_is_stored,
    nul_in_a_header_is_refused_and_nothing_is_stored,
    webhook_events_with_nul_are_rejected_and_the_others_recorded,
    method_not_allowed_names_the_allowed_methods,
    a_trickled_body_is_cut_off_with_408,
    the_bearer_scheme_is_case_insensitive,
    reusing_an_idempotency_key_for_another_image_is_422,
);

/// A 400 `InvalidParameter` naming `target` and the NUL character.
fn assert_nul_refused(status: u16, body: &Value, target: &str) {
    assert_cloud_error(status, body, 400, "InvalidParameter");
    assert_eq!(body["error"]["target"], target, "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("NUL"), "{body}");
}

/// An app without scan workers, so queued scans stay as they are.
async fn app_without_workers(backend: Backend) -> TestApp {
    spawn_app_with(backend, |s| s.jobs.queue.workers = 0).await
}

async fn nul_in_paths_and_queries_is_refused_naming_the_parameter(backend: Backend) {
    let app = spawn_app(backend).await;
    let token = app.token("*", Role::Admin);
    let scope = format!("/subscriptions/{SUB}/providers/Microsoft.Security");
    let cases = [
        (
            format!("/providers/Microsoft.Security/advisories/DSA%00-1?{OWN_API}"),
            "id",
        ),
        (format!("{scope}/scans/scan%00one?{OWN_API}"), "scanId"),
        (
            format!("/subscriptions/sub%00one/providers/Microsoft.Security/scans?{OWN_API}"),
            "subscriptionId",
        ),
        (
            format!("/subscriptions/a%00b/providers/Microsoft.Security/images?{OWN_API}"),
            "scope",
        ),
        (
            format!("{scope}/scans?{OWN_API}&%24filter=name%20eq%20%27a%00b%27"),
            "$filter",
        ),
        (
            format!("{scope}/subAssessments?{SUB_API}&$filter=id%20eq%20%27a%00b%27"),
            "$filter",
        ),
        (
            format!("{scope}/images?{OWN_API}&$filter=properties/repository%20eq%20%27a%00%27"),
            "$filter",
        ),
        (
            format!("{scope}/scans?{OWN_API}&repository=team%00"),
            "repository",
        ),
        (
            format!("{scope}/usage?{OWN_API}&from=2026-11-01T00:00:00Z%00"),
            "from",
        ),
        (
            format!("{scope}/scans?api-version=2026-11-01%00"),
            "api-version",
        ),
        (
            format!("{scope}/scans?{OWN_API}&odd%00name=1"),
            "odd\u{0}name",
        ),
    ];
    for (path, target) in cases {
        let (status, body) = app.get_json(&path, &token).await;
        assert_nul_refused(status, &body, target);
    }
    // Percent-encoding that only looks like a NUL is an ordinary string.
    let (status, body) = app
        .get_json(
            &format!("/providers/Microsoft.Security/advisories/DSA%2500-1?{OWN_API}"),
            &token,
        )
        .await;
    assert_cloud_error(status, &body, 404, "AdvisoryNotFound");
}

fn skip_token(key: &[String]) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(key).unwrap())
}

async fn nul_in_skip_tokens_is_refused(backend: Backend) {
    let app = app_without_workers(backend).await;
    let token = app.token(SUB, Role::Contributor);

    // The registries' token is the last row's (resource group, name).
    let forged = skip_token(&["rg\u{0}".to_owned(), "reg".to_owned()]);
    let (status, body) = app
        .get_json(
            &format!(
                "/subscriptions/{SUB}/providers/Microsoft.ContainerRegistry/registries?{OWN_API}&$skipToken={forged}"
            ),
            &token,
        )
        .await;
    assert_cloud_error(status, &body, 400, "InvalidSkipToken");
    assert_eq!(body["error"]["target"], "$skipToken");

    // A real token of the scan list with its last key changed.
    connect(&app, "plain", "127.0.0.1:9").await;
    for tag in ["1", "2"] {
        let image = json!({"image": format!("127.0.0.1:9/team/api:{tag}")});
        let (status, _, body) = post_scan(&app, &token, &image, None).await;
        assert_eq!(status, 202, "{body}");
    }
    let (status, page) = app
        .get_json(
            &format!("/subscriptions/{SUB}/providers/Microsoft.Security/scans?{OWN_API}&$top=1"),
            &token,
        )
        .await;
    assert_eq!(status, 200, "{page}");
    let next = page["nextLink"].as_str().unwrap();
    let issued = next.rsplit_once("$skipToken=").unwrap().1;
    let mut key: Vec<String> =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(issued).unwrap()).unwrap();
    key.last_mut().unwrap().push('\u{0}');
    let (status, body) = app
        .get_json(
            &format!(
                "/subscriptions/{SUB}/providers/Microsoft.Security/scans?{OWN_API}&$top=1&$skipToken={}",
                skip_token(&key)
            ),
            &token,
        )
        .await;
    assert_cloud_error(status, &body, 400, "InvalidSkipToken");
}

async fn nul_in_json_bodies_is_refused_and_nothing_is_stored(backend: Backend) {
    let app = app_without_workers(backend).await;
    let token = app.token(SUB, Role::Contributor);
    let registry = format!(
        "/subscriptions/{SUB}/resourceGroups/rg/providers/Microsoft.ContainerRegistry/registries/reg?{OWN_API}"
    );

    // Registries: in a field that is checked, in one that is stored as it is, and in one ignored.
    for (body, target) in [
        (
            json!({"properties": {"loginServer": "r.example.com\u{0}"}}),
            "properties.loginServer",
        ),
        (
            json!({"properties": {"loginServer": "r.example.com",
                "credentials": {"username": "puller\u{0}", "password": "secret"}}}),
            "properties.credentials.username",
        ),
        (
            json!({"properties": {"loginServer": "r.example.com", "tags": {"a\u{0}": "b"}}}),
            "properties.tags.a\u{0}",
        ),
    ] {
        let (status, error) = app.put_json(&registry, &token, &body).await;
        assert_nul_refused(status, &error, target);
    }
    let (status, body) = app.get_json(&registry, &token).await;
    assert_cloud_error(status, &body, 404, "ResourceNotFound");

    // Scans.
    connect(&app, "plain", "127.0.0.1:9").await;
    let image = json!({"image": "127.0.0.1:9/team/api:1.0\u{0}"});
    let (status, _, body) = post_scan(&app, &token, &image, None).await;
    assert_nul_refused(status, &body, "image");
    assert!(scans(&app, "").await.is_empty());

    // Running images: pod, namespace and container names and images are all stored.
    let digest = crate::support::rows::digest_of("running");
    let container = |name: &str, image: &str| json!({"name": name, "image": image, "imageID": format!("127.0.0.1:9/team/api@{digest}")});
    let pod = |namespace: &str, name: &str, containers: Vec<Value>| {
        json!({"metadata": {"name": name, "namespace": namespace},
            "status": {"containerStatuses": containers}})
    };
    let good = pod(
        "prod",
        "api-1",
        vec![container("api", "127.0.0.1:9/team/api:1.0")],
    );
    let reports = [
        (
            pod("prod", "api-2\u{0}", vec![container("api", "a")]),
            "items[1].metadata.name",
        ),
        (
            pod("prod\u{0}", "api-2", vec![container("api", "a")]),
            "items[1].metadata.namespace",
        ),
        (
            pod("prod", "api-2", vec![container("api\u{0}", "a")]),
            "items[1].status.containerStatuses[0].name",
        ),
        (
            pod("prod", "api-2", vec![container("api", "a:1\u{0}")]),
            "items[1].status.containerStatuses[0].image",
        ),
    ];
    let cluster = format!(
        "/subscriptions/{SUB}/providers/Microsoft.Security/clusters/prod-eu/runningImages?{OWN_API}"
    );
    for (bad, target) in reports {
        let report = json!({"kind": "List", "items": [good.clone(), bad]});
        let (status, body) = app.put_json(&cluster, &token, &report).await;
        assert_nul_refused(status, &body, target);
    }
    let stored = app.db(|c| store::running_images::all(c, SUB)).await;
    assert!(stored.is_empty(), "{stored:?}");
    assert!(scans(&app, "").await.is_empty());
    // The same report without the NUL is recorded.
    let report = json!({"kind": "List", "items": [good]});
    let (status, body) = app.put_json(&cluster, &token, &report).await;
    assert_eq!(status, 200, "{body}");
}

/// Sends `request` as it is on a new connection; returns what came back until the server closed
/// the connection or `limit` passed.
async fn raw_exchange(app: &TestApp, request: &[u8], limit: Duration) -> String {
    let address = app.address.trim_start_matches("http://");
    let mut stream = TcpStream::connect(address).await.unwrap();
    stream.write_all(request).await.unwrap();
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(limit, stream.read_to_end(&mut answer)).await;
    String::from_utf8_lossy(&answer).into_owned()
}

async fn nul_in_a_header_is_refused_and_nothing_is_stored(backend: Backend) {
    let app = app_without_workers(backend).await;
    let token = app.token(SUB, Role::Contributor);
    connect(&app, "plain", "127.0.0.1:9").await;
    let body = br#"{"image": "127.0.0.1:9/team/api:1.0"}"#;
    let mut request = format!(
        "POST /subscriptions/{SUB}/providers/Microsoft.Security/scans?{OWN_API} HTTP/1.1\r\n\
         Host: localhost\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\nIdempotency-Key: key",
        body.len()
    )
    .into_bytes();
    request.extend_from_slice(b"\0one\r\n\r\n");
    request.extend_from_slice(body);
    let answer = raw_exchange(&app, &request, Duration::from_secs(30)).await;
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert!(scans(&app, "").await.is_empty());
    // Bytes that are not ASCII are refused by the header's own check.
    let (status, _, body) = post_scan(
        &app,
        &token,
        &json!({"image": "127.0.0.1:9/team/api:1.0"}),
        Some("kéy"),
    )
    .await;
    assert_cloud_error(status, &body, 400, "InvalidParameter");
    assert_eq!(body["error"]["target"], "Idempotency-Key");
    assert!(scans(&app, "").await.is_empty());
}

async fn webhook_events_with_nul_are_rejected_and_the_others_recorded(backend: Backend) {
    let app = app_without_workers(backend).await;
    let (webhook, secret) = connect(&app, "plain", "127.0.0.1:9").await;
    let digest = crate::support::rows::digest_of;
    let body = push_envelope(&[
        ("event-1\u{0}", "team/api", "1.0", &digest("one")),
        ("event-2", "team/api", "1.0\u{0}", &digest("two")),
        ("event-3", "team/api\u{0}", "1.0", &digest("three")),
        ("event-4", "team/api", "2.0", &digest("four")),
    ]);
    for delivery in 0..2 {
        let (status, answer) = post_events(&app, &webhook, Some(&secret), &body).await;
        assert_eq!(status, 200, "{answer}");
        assert_eq!(answer["rejected"], 3, "{answer}");
        let (accepted, duplicates) = if delivery == 0 { (1, 0) } else { (0, 1) };
        assert_eq!(answer["accepted"], accepted, "{answer}");
        assert_eq!(answer["duplicates"], duplicates, "{answer}");
    }
    let queued = scans(&app, "").await;
    assert_eq!(queued.len(), 1, "{queued:?}");
    assert_eq!(queued[0]["properties"]["digest"], digest("four"));
    assert!(
        captured_logs().contains("registry event rejected"),
        "each rejected event is logged"
    );
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

async fn a_trickled_body_is_cut_off_with_408(backend: Backend) {
    let app = spawn_app_with(backend, |s| {
        s.request_body.timeout = Duration::from_secs(1);
        s.request_body.min_rate = 1024;
    })
    .await;
    let contributor = app.token(SUB, Role::Contributor);
    let admin = app.token("*", Role::Admin);
    let registry = format!(
        "/subscriptions/{SUB}/resourceGroups/rg/providers/Microsoft.ContainerRegistry/registries/reg?{OWN_API}"
    );
    let import = format!("/providers/Microsoft.Security/advisories:import?{OWN_API}");
    // A JSON body, a body read as bytes, and the import's streamed body.
    for (method, path, token) in [
        ("PUT", registry.as_str(), &contributor),
        (
            "PUT",
            &*format!(
                "/subscriptions/{SUB}/providers/Microsoft.Security/clusters/c/runningImages?{OWN_API}"
            ),
            &contributor,
        ),
        ("POST", import.as_str(), &admin),
    ] {
        let address = app.address.trim_start_matches("http://");
        let mut stream = TcpStream::connect(address).await.unwrap();
        let head = format!(
            "{method} {path} HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {token}\r\n\
             Content-Type: application/json\r\nContent-Length: 1048576\r\n\r\n"
        );
        stream.write_all(head.as_bytes()).await.unwrap();
        let (mut reader, mut writer) = stream.into_split();
        // One byte a second, for longer than the server may wait.
        let trickle = tokio::spawn(async move {
            for _ in 0..60 {
                if writer.write_all(b" ").await.is_err() {
                    break;
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        });
        let mut answer = Vec::new();
        let read =
            tokio::time::timeout(Duration::from_secs(30), reader.read_to_end(&mut answer)).await;
        trickle.abort();
        let answer = String::from_utf8_lossy(&answer);
        assert!(read.is_ok(), "{method} {path}: still open: {answer}");
        assert!(
            answer.starts_with("HTTP/1.1 408"),
            "{method} {path}: {answer}"
        );
        assert!(answer.contains("RequestTimeout"), "{answer}");
    }
    // A body that arrives in time is read as usual.
    let (status, body) = app
        .put_json(
            &registry,
            &contributor,
            &json!({"properties": {"loginServer": "r.example.com"}}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
}

async fn the_bearer_scheme_is_case_insensitive(backend: Backend) {
    let app = app_without_workers(backend).await;
    let (webhook, secret) = connect(&app, "plain", "127.0.0.1:9").await;
    let body = push_envelope(&[(
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

async fn reusing_an_idempotency_key_for_another_image_is_422(backend: Backend) {
    let app = app_without_workers(backend).await;
    let token = app.token(SUB, Role::Contributor);
    let host = format!("127.0.0.1:{}", free_port());
    connect(&app, "plain", &host).await;
    connect(&app, "other", "127.0.0.2:9").await;
    let image = |reference: &str| json!({ "image": reference });
    let first_image = format!("{host}/team/api:1.0");
    let (status, _, first) = post_scan(&app, &token, &image(&first_image), Some("k-1")).await;
    assert_eq!(status, 202, "{first}");

    // The same body, or the same image spelled out, names the first scan.
    for same in [first_image.clone(), format!("{host}/team/api:1.0 ")] {
        let (status, _, again) = post_scan(&app, &token, &image(&same), Some("k-1")).await;
        assert_eq!(status, 202, "{again}");
        assert_eq!(again["name"], first["name"]);
    }
    let digest = crate::support::rows::digest_of("api");
    for other in [
        format!("{host}/team/api:2.0"),
        format!("{host}/team/web:1.0"),
        format!("{host}/team/api@{digest}"),
        format!("{host}/team/api"),
        "127.0.0.2:9/team/api:1.0".to_owned(),
    ] {
        let (status, _, body) = post_scan(&app, &token, &image(&other), Some("k-1")).await;
        assert_cloud_error(status, &body, 422, "IdempotencyKeyReused");
        assert_eq!(body["error"]["target"], "Idempotency-Key", "{body}");
    }
    assert_eq!(scans(&app, "").await.len(), 1);
    // Another key is another submission.
    let (status, _, other) = post_scan(
        &app,
        &token,
        &image(&format!("{host}/team/api:2.0")),
        Some("k-2"),
    )
    .await;
    assert_eq!(status, 202, "{other}");
    assert_ne!(other["name"], first["name"]);
}
