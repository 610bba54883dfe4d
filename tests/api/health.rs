//! Image health, the registry assessment, the vulnerability summary and running images, through
//! the API with a real registry and real scans.

use std::time::Duration;

use crowsnest::domain::Role;
use serde_json::{Value, json};

use crate::backend_tests;
use crate::support::app::*;
use crate::support::database::Backend;
use crate::support::fixtures::{debian_with_gnutls, read_shared_fixture};
use crate::support::images::{Image, TarEntry};
use crate::support::registry::client::push_image;
use crate::support::registry::{RegistryAuth, TestRegistry};
use crate::support::rows::digest_of;
use crate::support::scans::{
    SUB, connect, findings, get_security, gnutls_advisory, import, post_events,
    registry_assessment, registry_id, scan_succeeded, wait_for_scan,
};
use crate::support::wait_for;

backend_tests!(
    health_follows_scans_fixes_and_withdrawals,
    images_never_scanned_are_not_applicable,
    running_images_come_from_a_kubectl_pod_list,
);

const ASSESSMENTS_API: &str = "api-version=2021-06-01";

/// Debian 10 with libgnutls30 at `gnutls` (source gnutls28), or without it; `marker` goes into a
/// file of its own, so every marker makes a different image.
fn debian(gnutls: Option<&str>, marker: &str) -> Image {
    let marker = TarEntry::file("etc/build-marker", marker.as_bytes().to_vec(), 0o644);
    debian_with_gnutls(gnutls, vec![marker])
}

async fn image(app: &TestApp, scope: &str, digest: &str) -> (u16, Value) {
    let token = app.token(SUB, Role::Reader);
    app.get_json(
        &format!("/{scope}/providers/Microsoft.Security/images/{digest}?{OWN_API}"),
        &token,
    )
    .await
}

async fn health_of(app: &TestApp, digest: &str) -> Value {
    let (status, body) = image(app, &format!("subscriptions/{SUB}"), digest).await;
    assert_eq!(status, 200, "{body}");
    body["properties"]["health"].clone()
}

async fn health_follows_scans_fixes_and_withdrawals(backend: Backend) {
    let app = spawn_app(backend).await;
    import(&app, &gnutls_advisory("TEST-GNUTLS-H")).await;
    let registry = TestRegistry::start(RegistryAuth::None);
    let host = registry.host();
    connect(&app, "health", &host).await;

    let clean = push_image(&registry, "team/app", Some("clean"), &debian(None, "clean")).await;
    scan_succeeded(&app, &format!("{host}/team/app:clean")).await;
    let healthy = health_of(&app, &clean.manifest_digest).await;
    assert_eq!(healthy["code"], "Healthy", "{healthy}");
    assert_eq!(
        findings(&app).await,
        Vec::<Value>::new(),
        "a healthy image has no sub-assessments"
    );
    let reader = app.token(SUB, Role::Reader);

    let vulnerable = push_image(
        &registry,
        "team/app",
        Some("v1"),
        &debian(Some("3.6.7-4+deb10u2"), "v1"),
    )
    .await;
    scan_succeeded(&app, &format!("{host}/team/app:v1")).await;
    let (status, body) = image(
        &app,
        &format!("subscriptions/{SUB}"),
        &vulnerable.manifest_digest,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let p = &body["properties"];
    assert_eq!(p["health"]["code"], "Unhealthy", "{body}");
    assert_eq!(p["findings"]["total"], 1);
    assert_eq!(p["findings"]["Medium"], 1);
    assert_eq!(p["findings"]["patchable"], 1);
    assert_eq!(p["tags"], json!(["v1"]));
    assert_eq!(p["os"], "debian 10");
    assert_eq!(p["repository"], "team/app");
    assert!(p["lastScannedAt"].is_string());
    assert_eq!(
        body["id"],
        format!(
            "/{}/repositories/team/app/images/{}",
            registry_id("health"),
            vulnerable.manifest_digest
        )
    );
    // The same answer at the registry and resource-group scopes; none in another subscription's.
    for scope in [
        registry_id("health"),
        format!("subscriptions/{SUB}/resourceGroups/rg"),
    ] {
        let (status, other) = image(&app, &scope, &vulnerable.manifest_digest).await;
        assert_eq!(
            (status, &other["properties"]["health"]),
            (200, &p["health"]),
            "{scope}"
        );
    }
    let (status, body) = image(
        &app,
        &format!("subscriptions/{SUB}/resourceGroups/other"),
        &vulnerable.manifest_digest,
    )
    .await;
    assert_cloud_error(status, &body, 404, "ImageNotFound");

    let unhealthy = registry_assessment(&app, "health").await;
    assert_eq!(unhealthy["name"], KEY);
    assert_eq!(unhealthy["type"], "Microsoft.Security/assessments");
    let props = &unhealthy["properties"];
    assert_eq!(props["status"]["code"], "Unhealthy", "{unhealthy}");
    let description = props["status"]["description"].as_str().unwrap();
    assert!(
        description.starts_with("1 of 2 images have 1 active"),
        "{description}"
    );
    assert_eq!(props["additionalData"]["findings"], "1");
    assert_eq!(
        props["resourceDetails"]["id"],
        format!("/{}", registry_id("health"))
    );

    let summary = get_security(&app, &format!("vulnerabilitySummary?{OWN_API}")).await;
    assert_eq!(
        summary["imagesByHealth"],
        json!({"Healthy": 1, "Unhealthy": 1})
    );
    assert_eq!(summary["findingsBySeverity"], json!({"Medium": 1}));
    assert_eq!(summary["topAdvisories"][0]["id"], "TEST-GNUTLS-H");
    assert_eq!(summary["topAdvisories"][0]["affectedImages"], 1);
    assert_eq!(
        summary["topImages"][0]["digest"],
        vulnerable.manifest_digest
    );

    // The fix, pushed as a new digest: the new image is healthy, the old one still is not.
    let fixed = push_image(
        &registry,
        "team/app",
        Some("v2"),
        &debian(Some("3.6.7-4+deb10u3"), "v2"),
    )
    .await;
    scan_succeeded(&app, &format!("{host}/team/app:v2")).await;
    assert_eq!(
        health_of(&app, &fixed.manifest_digest).await["code"],
        "Healthy"
    );
    assert_eq!(
        health_of(&app, &vulnerable.manifest_digest).await["code"],
        "Unhealthy"
    );

    // What a portal lists: the unhealthy images, and all of them newest scan first, page by page.
    let list = |query: &'static str| {
        let (app, reader) = (&app, reader.clone());
        async move {
            let mut next = Some(app.url(&format!(
                "/subscriptions/{SUB}/providers/Microsoft.Security/images?{OWN_API}&{query}"
            )));
            let mut digests = Vec::new();
            while let Some(url) = next {
                let response = app
                    .client
                    .get(&url)
                    .bearer_auth(&reader)
                    .send()
                    .await
                    .unwrap();
                let (status, page) = json_of(response).await;
                assert_eq!(status, 200, "{page}");
                for image in page["value"].as_array().unwrap() {
                    digests.push(image["name"].as_str().unwrap().to_owned());
                }
                next = page["nextLink"].as_str().map(str::to_owned);
            }
            digests
        }
    };
    assert_eq!(
        list("$filter=properties/health/code%20eq%20'Unhealthy'").await,
        std::slice::from_ref(&vulnerable.manifest_digest)
    );
    assert_eq!(
        list("$orderby=properties/lastScannedAt%20desc&$top=1").await,
        [
            fixed.manifest_digest.clone(),
            vulnerable.manifest_digest.clone(),
            clean.manifest_digest.clone()
        ]
    );
    let (status, body) = app
        .get_json(
            &format!("/subscriptions/{SUB}/providers/Microsoft.Security/images?{OWN_API}&$filter=properties/health%20eq%20'Healthy'"),
            &reader,
        )
        .await;
    assert_cloud_error(status, &body, 400, "InvalidFilter");

    // The advisory withdrawn: the re-match makes the old image healthy, and the registry with it.
    let mut withdrawn = gnutls_advisory("TEST-GNUTLS-H");
    withdrawn["modified"] = json!("2026-11-03T00:00:00Z");
    withdrawn["withdrawn"] = json!("2026-11-03T00:00:00Z");
    import(&app, &withdrawn).await;
    wait_for_scan(&app, "&trigger=AdvisoryUpdate", "Succeeded").await;
    wait_for(
        "the old image to turn healthy",
        Duration::from_secs(30),
        || async {
            (health_of(&app, &vulnerable.manifest_digest).await["code"] == "Healthy").then_some(())
        },
    )
    .await;
    let healthy = registry_assessment(&app, "health").await;
    assert_eq!(
        healthy["properties"]["status"]["code"], "Healthy",
        "{healthy}"
    );
}

async fn images_never_scanned_are_not_applicable(backend: Backend) {
    // No workers: what the webhook records stays unscanned.
    let app = spawn_app_with(backend, |s| s.jobs.queue.workers = 0).await;
    let (webhook, secret) = connect(&app, "idle", "127.0.0.1:5000").await;
    assert_eq!(
        registry_assessment(&app, "idle").await["properties"]["status"]["code"],
        "NotApplicable"
    );

    let envelope = read_shared_fixture("registry-notifications/push-manifest-oci-tagged.json");
    let (status, body) = post_events(&app, &webhook, Some(&secret), &envelope).await;
    assert_eq!(status, 200, "{body}");
    let digest =
        serde_json::from_slice::<Value>(&envelope).unwrap()["events"][0]["target"]["digest"]
            .as_str()
            .unwrap()
            .to_owned();
    let (status, body) = image(&app, &registry_id("idle"), &digest).await;
    assert_eq!(status, 200, "{body}");
    let p = &body["properties"];
    assert_eq!(p["health"]["code"], "NotApplicable");
    assert_eq!(p["health"]["cause"], "NotScanned");
    assert_eq!(p["tags"], json!(["bookworm"]));
    assert_eq!(p["repository"], "test/debsynth");
    assert!(p["lastPushedAt"].is_string() && p["lastScannedAt"].is_null());
    let not_applicable = registry_assessment(&app, "idle").await;
    assert_eq!(
        not_applicable["properties"]["status"]["code"],
        "NotApplicable"
    );
    assert_eq!(
        not_applicable["properties"]["status"]["cause"],
        "NotScanned"
    );

    // Lists at every scope; assessments one per registry.
    let reader = app.token(SUB, Role::Reader);
    for scope in [
        format!("subscriptions/{SUB}"),
        format!("subscriptions/{SUB}/resourceGroups/rg"),
        registry_id("idle"),
    ] {
        let (status, body) = app
            .get_json(
                &format!("/{scope}/providers/Microsoft.Security/images?{OWN_API}"),
                &reader,
            )
            .await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(
            body["value"].as_array().unwrap().len(),
            1,
            "{scope}: {body}"
        );
    }
    connect(&app, "second", "127.0.0.1:5001").await;
    // Two registries, two assessments each (the container registry key, then MDVM's), one a page.
    let mut next = Some(app.url(&format!(
        "/subscriptions/{SUB}/providers/Microsoft.Security/assessments?{ASSESSMENTS_API}&$top=1"
    )));
    let mut ids = Vec::new();
    while let Some(url) = next {
        let (status, page) = json_of(
            app.client
                .get(&url)
                .bearer_auth(&reader)
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(status, 200, "{page}");
        assert_eq!(page["value"].as_array().unwrap().len(), 1, "{page}");
        ids.push(page["value"][0]["id"].as_str().unwrap().to_owned());
        next = page.get("nextLink").map(|l| l.as_str().unwrap().to_owned());
        assert!(ids.len() <= 4, "paging does not end: {ids:?}");
    }
    let expected: Vec<String> = ["idle", "second"]
        .iter()
        .flat_map(|registry| {
            [
                "dbd0cb49-b563-45e7-9724-889e799fa648",
                "c0b7cfc6-3172-465a-b378-53c7ff2cc0d5",
            ]
            .map(|key| {
                format!(
                    "/{}/providers/Microsoft.Security/assessments/{key}",
                    registry_id(registry)
                )
            })
        })
        .collect();
    assert_eq!(ids, expected);

    // Refusals.
    let (status, body) = image(&app, &registry_id("idle"), "sha256:nothex").await;
    assert_cloud_error(status, &body, 400, "InvalidParameter");
    let (status, body) = image(&app, &registry_id("idle"), &digest_of("unknown")).await;
    assert_cloud_error(status, &body, 404, "ImageNotFound");
    let (status, body) = app
        .get_json(&format!("/{}/providers/Microsoft.Security/assessments/00000000-0000-0000-0000-000000000000?{ASSESSMENTS_API}", registry_id("idle")), &reader)
        .await;
    assert_cloud_error(status, &body, 404, "AssessmentNotFound");
    let (status, body) = app
        .get_json(
            &format!(
                "/{}/providers/Microsoft.Security/assessments/{KEY}?{OWN_API}",
                registry_id("idle")
            ),
            &reader,
        )
        .await;
    assert_cloud_error(status, &body, 400, "InvalidApiVersionParameter");
    let (status, body) = app
        .get_json(
            &format!("/subscriptions/{SUB}/providers/Microsoft.Security/images?{OWN_API}"),
            &app.token("someone-else", Role::Reader),
        )
        .await;
    assert_cloud_error(status, &body, 403, "AuthorizationFailed");
}

/// `additionalData.running` of every sub-assessment in the subscription.
async fn finding_running(app: &TestApp) -> Vec<bool> {
    findings(app)
        .await
        .iter()
        .map(|f| {
            f["properties"]["additionalData"]["running"]
                .as_bool()
                .unwrap()
        })
        .collect()
}

async fn put_pods(app: &TestApp, cluster: &str, token: &str, body: &[u8]) -> (u16, Value) {
    let response = app
        .client
        .put(app.url(&format!(
            "/subscriptions/{SUB}/providers/Microsoft.Security/clusters/{cluster}/runningImages?{OWN_API}"
        )))
        .bearer_auth(token)
        .header("content-type", "application/json")
        .body(body.to_vec())
        .send()
        .await
        .unwrap();
    json_of(response).await
}

async fn running_images_come_from_a_kubectl_pod_list(backend: Backend) {
    let app = spawn_app(backend).await;
    import(&app, &gnutls_advisory("TEST-GNUTLS-R")).await;
    let registry = TestRegistry::start(RegistryAuth::None);
    let host = registry.host();
    connect(&app, "runtime", &host).await;
    let web = push_image(
        &registry,
        "team/web",
        Some("v1"),
        &debian(Some("3.6.7-4+deb10u2"), "web"),
    )
    .await;
    scan_succeeded(&app, &format!("{host}/team/web:v1")).await;
    // Pushed but never scanned: the report makes Crowsnest scan it.
    let migrate = push_image(
        &registry,
        "team/migrate",
        Some("2"),
        &debian(None, "migrate"),
    )
    .await;

    let pods = std::fs::read_to_string("tests/fixtures/kubernetes/pods.json")
        .unwrap()
        .replace("{{REGISTRY}}", &host)
        .replace("{{WEB_DIGEST}}", &web.manifest_digest)
        .replace("{{MIGRATE_DIGEST}}", &migrate.manifest_digest);
    let contributor = app.token(SUB, Role::Contributor);
    let (status, report) = put_pods(&app, "prod-eu", &contributor, pods.as_bytes()).await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["containers"], 7, "{report}");
    assert_eq!(report["images"], 5);
    assert_eq!(report["fromConnectedRegistries"], 2);
    assert_eq!(report["scansQueued"], 1);
    assert_eq!(
        report["unconnectedRegistries"],
        json!(["docker.io", "registry.k8s.io"])
    );
    assert_eq!(report["withoutDigest"], 1);

    let runtime = wait_for_scan(&app, "&trigger=Runtime", "Succeeded").await;
    assert_eq!(runtime["properties"]["digest"], migrate.manifest_digest);
    let scope = format!("subscriptions/{SUB}");
    let (_, body) = image(&app, &scope, &web.manifest_digest).await;
    assert_eq!(body["properties"]["running"], true, "{body}");
    let mut places: Vec<String> = body["properties"]["runningIn"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            format!(
                "{}/{}/{}/{}",
                r["cluster"].as_str().unwrap(),
                r["namespace"].as_str().unwrap(),
                r["pod"].as_str().unwrap(),
                r["container"].as_str().unwrap()
            )
        })
        .collect();
    places.sort();
    assert_eq!(
        places,
        [
            "prod-eu/shop/debug-shell/app",
            "prod-eu/shop/web-7d9c6b5f4d-x2k8p/web"
        ]
    );
    // The web image's finding says it runs.
    assert_eq!(finding_running(&app).await, [true]);
    let (_, body) = image(&app, &scope, &migrate.manifest_digest).await;
    assert_eq!(
        body["properties"]["running"], true,
        "init containers count: {body}"
    );
    assert_eq!(body["properties"]["health"]["code"], "Healthy");

    // A second cluster runs web too; then prod-eu's next report no longer does.
    let (status, _) = put_pods(&app, "edge", &contributor, pods.as_bytes()).await;
    assert_eq!(status, 200);
    let empty = br#"{"apiVersion": "v1", "items": [], "kind": "List", "metadata": {"resourceVersion": ""}}"#;
    let (status, report) = put_pods(&app, "prod-eu", &contributor, empty).await;
    assert_eq!((status, &report["containers"]), (200, &json!(0)));
    let (_, body) = image(&app, &scope, &web.manifest_digest).await;
    assert_eq!(body["properties"]["running"], true);
    assert!(
        body["properties"]["runningIn"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["cluster"] == "edge")
    );
    let (status, _) = put_pods(&app, "edge", &contributor, empty).await;
    assert_eq!(status, 200);
    let (_, body) = image(&app, &scope, &web.manifest_digest).await;
    assert_eq!(body["properties"]["running"], false, "{body}");
    assert_eq!(body["properties"]["runningIn"], json!([]));
    assert_eq!(finding_running(&app).await, [false]);

    // Refusals.
    let (status, body) = put_pods(
        &app,
        "prod-eu",
        &contributor,
        br#"{"kind": "Deployment", "items": []}"#,
    )
    .await;
    assert_cloud_error(status, &body, 400, "InvalidRequestContent");
    let (status, body) = put_pods(&app, "prod-eu", &contributor, b"not json").await;
    assert_cloud_error(status, &body, 400, "InvalidRequestContent");
    let (status, body) = put_pods(&app, "bad%2Fname", &contributor, empty).await;
    assert_eq!(status, 400, "{body}");
    let (status, body) = put_pods(&app, "prod-eu", &app.token(SUB, Role::Reader), empty).await;
    assert_cloud_error(status, &body, 403, "AuthorizationFailed");
}
