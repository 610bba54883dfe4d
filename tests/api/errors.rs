use crowsnest::domain::Role;
use serde_json::json;

use crate::backend_tests;
use crate::support::app::*;
use crate::support::database::Backend;

backend_tests!(
    api_version_is_required_and_checked,
    bad_bodies_and_routes_get_cloud_errors
);

async fn api_version_is_required_and_checked(backend: Backend) {
    let app = spawn_app(backend).await;
    let token = app.token("sub-1", Role::Contributor);
    let sub_assessments = "/subscriptions/sub-1/providers/Microsoft.Security/subAssessments";
    let registry = "/subscriptions/sub-1/resourceGroups/rg/providers/Microsoft.ContainerRegistry/registries/reg";

    for path in [sub_assessments.to_owned(), registry.to_owned()] {
        let (status, body) = app.get_json(&path, &token).await;
        assert_cloud_error(status, &body, 400, "MissingApiVersionParameter");
        let (status, body) = app
            .get_json(&format!("{path}?api-version=2015-01-01"), &token)
            .await;
        assert_cloud_error(status, &body, 400, "InvalidApiVersionParameter");
        assert_eq!(body["error"]["target"], "api-version");
    }
    // Each API keeps its own version.
    let (status, body) = app
        .get_json(&format!("{sub_assessments}?{OWN_API}"), &token)
        .await;
    assert_cloud_error(status, &body, 400, "InvalidApiVersionParameter");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("2019-01-01-preview")
    );
    let (status, body) = app.get_json(&format!("{registry}?{SUB_API}"), &token).await;
    assert_cloud_error(status, &body, 400, "InvalidApiVersionParameter");
    let (status, body) = app
        .put_json(
            registry,
            &token,
            &json!({"properties": {"loginServer": "r.example.com"}}),
        )
        .await;
    assert_cloud_error(status, &body, 400, "MissingApiVersionParameter");
}

async fn bad_bodies_and_routes_get_cloud_errors(backend: Backend) {
    let app = spawn_app(backend).await;
    let token = app.token("sub-1", Role::Contributor);
    let registry = format!(
        "/subscriptions/sub-1/resourceGroups/rg/providers/Microsoft.ContainerRegistry/registries/reg?{OWN_API}"
    );
    let send = |body: Vec<u8>, content_type: &'static str| {
        app.client
            .put(app.url(&registry))
            .bearer_auth(&token)
            .header("content-type", content_type)
            .body(body)
            .send()
    };

    let (status, body) = json_of(
        send(b"{\"properties\": {".to_vec(), "application/json")
            .await
            .unwrap(),
    )
    .await;
    assert_cloud_error(status, &body, 400, "InvalidRequestContent");
    let (status, body) = json_of(send(b"[1,2]".to_vec(), "application/json").await.unwrap()).await;
    assert_cloud_error(status, &body, 400, "InvalidRequestContent");
    let (status, body) = json_of(
        send(
            b"{\"properties\":{\"insecure\":\"yes\"}}".to_vec(),
            "application/json",
        )
        .await
        .unwrap(),
    )
    .await;
    assert_cloud_error(status, &body, 400, "InvalidRequestContent");
    let (status, body) = json_of(send(b"{}".to_vec(), "text/plain").await.unwrap()).await;
    assert_cloud_error(status, &body, 415, "UnsupportedMediaType");
    let huge = format!(
        "{{\"properties\":{{\"loginServer\":\"r.example.com\",\"pad\":\"{}\"}}}}",
        "x".repeat(2 * 1024 * 1024)
    );
    let (status, body) = json_of(send(huge.into_bytes(), "application/json").await.unwrap()).await;
    assert_cloud_error(status, &body, 413, "RequestEntityTooLarge");

    // Nothing above was stored.
    let (status, body) = app.get_json(&registry, &token).await;
    assert_cloud_error(status, &body, 404, "ResourceNotFound");

    let (status, body) = app.get_json("/no/such/route", &token).await;
    assert_cloud_error(status, &body, 404, "NotFound");
    let (status, body) = json_of(app.client.get(app.url("/")).send().await.unwrap()).await;
    assert_cloud_error(status, &body, 404, "NotFound");
    let (status, body) = json_of(
        app.client
            .post(app.url(&registry))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_cloud_error(status, &body, 405, "MethodNotAllowed");

    for scope in [
        "providers/Microsoft.Management/managementGroups/mg",
        "subscriptions/sub-1/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/vm",
        "subscriptions/sub%20one",
    ] {
        let (status, body) = app
            .get_json(
                &format!("/{scope}/providers/Microsoft.Security/subAssessments?{SUB_API}"),
                &token,
            )
            .await;
        assert_eq!(status, 400, "{scope}: {body}");
        assert!(
            ["InvalidScope"].contains(&body["error"]["code"].as_str().unwrap()),
            "{body}"
        );
    }
    let long_name = "r".repeat(64);
    let (status, body) = app
        .get_json(&format!("/subscriptions/sub-1/resourceGroups/rg/providers/Microsoft.ContainerRegistry/registries/{long_name}?{OWN_API}"), &token)
        .await;
    assert_cloud_error(status, &body, 400, "InvalidResourceName");
}
