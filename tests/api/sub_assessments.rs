use std::collections::HashSet;

use crowsnest::domain::Role;
use serde_json::Value;

use crate::backend_tests;
use crate::support::app::*;
use crate::support::database::Backend;
use crate::support::rows::{digest_of, finding_row};

const AZURE_GET_EXAMPLE: &str = "../shared/reference/azure/azure-rest-api-specs/specification/security/resource-manager/Microsoft.Security/preview/2019-01-01-preview/examples/SubAssessments/GetSubAssessment_example.json";

backend_tests!(
    get_matches_every_field_of_the_azure_example,
    paging_returns_each_finding_once_in_three_pages,
    inserts_between_pages_neither_duplicate_nor_skip,
    scopes_are_isolated,
    assessment_key_and_names_are_checked,
    empty_lists_still_have_value,
    resolved_and_critical_findings_are_shown_as_azure_expects,
    top_and_skip_token_are_validated,
);

fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Every key of `example` is in `actual` with the same JSON type, recursively (arrays by their first item).
fn assert_same_shape(example: &Value, actual: &Value, path: &str) {
    assert_eq!(
        json_type(example),
        json_type(actual),
        "{path}: example {example} vs ours {actual}"
    );
    match (example, actual) {
        (Value::Object(e), Value::Object(a)) => {
            for (key, value) in e {
                let child = format!("{path}.{key}");
                let ours = a
                    .get(key)
                    .unwrap_or_else(|| panic!("{child} is missing from {actual}"));
                assert_same_shape(value, ours, &child);
            }
        }
        (Value::Array(e), Value::Array(a)) => {
            if let Some(first) = e.first() {
                assert!(!a.is_empty(), "{path} is empty in ours");
                assert_same_shape(first, &a[0], &format!("{path}[0]"));
            }
        }
        _ => {}
    }
}

async fn get_matches_every_field_of_the_azure_example(backend: Backend) {
    let app = spawn_app(backend).await;
    let registry = app.seed_registry("sub-1", "rg", "reg").await;
    let image = app
        .seed_image(&registry, "team/app", &digest_of("app"))
        .await;
    let finding = finding_row(&registry, &image, "CVE-2023-5678", "openssl");
    app.seed_findings(vec![finding.clone()]).await;
    let token = app.token("sub-1", Role::Reader);

    let scope = "subscriptions/sub-1/resourceGroups/rg/providers/Microsoft.ContainerRegistry/registries/reg";
    let (status, body) = app
        .get_json(&format!("/{scope}/providers/Microsoft.Security/assessments/{KEY}/subAssessments/{}?{SUB_API}", finding.id), &token)
        .await;
    assert_eq!(status, 200, "{body}");

    let example: Value =
        serde_json::from_str(&std::fs::read_to_string(AZURE_GET_EXAMPLE).unwrap()).unwrap();
    assert_same_shape(&example["responses"]["200"]["body"], &body, "$");

    let registry_id = format!("/{scope}");
    assert_eq!(
        body["id"],
        format!(
            "{registry_id}/providers/Microsoft.Security/assessments/{KEY}/subAssessments/{}",
            finding.id
        )
    );
    assert_eq!(body["name"], finding.id);
    assert_eq!(
        body["type"],
        "Microsoft.Security/assessments/subAssessments"
    );
    let p = &body["properties"];
    assert_eq!(p["id"], "CVE-2023-5678");
    assert_eq!(p["displayName"], "openssl: CVE-2023-5678");
    assert_eq!(p["status"]["code"], "Unhealthy");
    assert_eq!(p["status"]["severity"], "High");
    assert_eq!(p["remediation"], finding.remediation);
    assert_eq!(p["category"], "Debian");
    assert_eq!(p["resourceDetails"]["source"], "Azure");
    assert_eq!(
        p["resourceDetails"]["id"],
        format!(
            "{registry_id}/repositories/team/app/images/{}",
            image.digest
        )
    );
    let data = &p["additionalData"];
    assert_eq!(
        data["assessedResourceType"],
        "ContainerRegistryVulnerability"
    );
    assert_eq!(data["type"], "Vulnerability");
    assert_eq!(data["cvss"]["2.0"]["base"], 7.5);
    assert_eq!(data["cvss"]["3.0"]["base"], 8.1);
    assert_eq!(data["patchable"], true);
    assert_eq!(data["cve"][0]["title"], "CVE-2023-5678");
    assert_eq!(data["repositoryName"], "team/app");
    assert_eq!(data["imageDigest"], image.digest);
    assert_eq!(data["packageName"], "openssl");
    assert_eq!(data["installedVersion"], "3.0.11-1~deb12u1");
    assert_eq!(data["fixedVersion"], "3.0.11-1~deb12u2");
    assert_eq!(data["ecosystem"], "Debian:12");
    assert!(chrono::DateTime::parse_from_rfc3339(p["timeGenerated"].as_str().unwrap()).is_ok());
    assert!(chrono::DateTime::parse_from_rfc3339(data["publishedTime"].as_str().unwrap()).is_ok());

    // The same finding in every list that reaches it, with the same body.
    for list_scope in [
        "subscriptions/sub-1",
        "subscriptions/sub-1/resourceGroups/rg",
        scope,
    ] {
        for route in [
            "subAssessments".to_owned(),
            format!("assessments/{KEY}/subAssessments"),
        ] {
            let (status, list) = app
                .get_json(
                    &format!("/{list_scope}/providers/Microsoft.Security/{route}?{SUB_API}"),
                    &token,
                )
                .await;
            assert_eq!(status, 200, "{list}");
            assert_eq!(
                list["value"].as_array().unwrap().len(),
                1,
                "{list_scope} {route}: {list}"
            );
            assert_eq!(list["value"][0], body);
            assert!(list.get("nextLink").is_none());
        }
    }
}

/// Follows `nextLink`s from `first` and returns the pages' names.
async fn walk(app: &TestApp, first: &str, token: &str) -> Vec<Vec<String>> {
    let mut pages = Vec::new();
    let mut next = Some(app.url(first));
    while let Some(url) = next {
        assert!(
            url.starts_with(&app.address),
            "nextLink is absolute on this service: {url}"
        );
        let response = app
            .client
            .get(&url)
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        let (status, body) = json_of(response).await;
        assert_eq!(status, 200, "{body}");
        pages.push(
            body["value"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v["name"].as_str().unwrap().to_owned())
                .collect(),
        );
        next = body.get("nextLink").map(|l| l.as_str().unwrap().to_owned());
        assert!(pages.len() < 20, "paging does not end");
    }
    pages
}

async fn seed_many(
    app: &TestApp,
    n: usize,
) -> (
    crowsnest::store::registries::RegistryRow,
    crowsnest::store::images::ImageRow,
    HashSet<String>,
) {
    let registry = app.seed_registry("sub-1", "rg", "reg").await;
    let image = app.seed_image(&registry, "app", &digest_of("app")).await;
    let rows: Vec<_> = (0..n)
        .map(|i| finding_row(&registry, &image, &format!("CVE-2024-{i:05}"), "libc6"))
        .collect();
    let names = rows.iter().map(|r| r.id.clone()).collect();
    app.seed_findings(rows).await;
    (registry, image, names)
}

async fn paging_returns_each_finding_once_in_three_pages(backend: Backend) {
    let app = spawn_app(backend).await;
    let (_, _, names) = seed_many(&app, 250).await;
    let token = app.token("sub-1", Role::Reader);
    let pages = walk(
        &app,
        &format!(
            "/subscriptions/sub-1/providers/Microsoft.Security/subAssessments?{SUB_API}&$top=100"
        ),
        &token,
    )
    .await;
    assert_eq!(
        pages.iter().map(Vec::len).collect::<Vec<_>>(),
        vec![100, 100, 50]
    );
    let seen: Vec<&String> = pages.iter().flatten().collect();
    let unique: HashSet<&String> = seen.iter().copied().collect();
    assert_eq!(seen.len(), unique.len(), "no finding twice");
    assert_eq!(unique.into_iter().cloned().collect::<HashSet<_>>(), names);

    // The default page size is 100, and $top is kept in the nextLink.
    let pages = walk(
        &app,
        &format!("/subscriptions/sub-1/providers/Microsoft.Security/subAssessments?{SUB_API}"),
        &token,
    )
    .await;
    assert_eq!(
        pages.iter().map(Vec::len).collect::<Vec<_>>(),
        vec![100, 100, 50]
    );
    let (_, body) = app
        .get_json(
            &format!(
                "/subscriptions/sub-1/providers/Microsoft.Security/subAssessments?{SUB_API}&$top=7"
            ),
            &token,
        )
        .await;
    let next = body["nextLink"].as_str().unwrap();
    assert!(
        next.contains("$top=7")
            && next.contains("api-version=2019-01-01-preview")
            && next.contains("$skipToken="),
        "{next}"
    );
}

async fn inserts_between_pages_neither_duplicate_nor_skip(backend: Backend) {
    let app = spawn_app(backend).await;
    let (registry, image, names) = seed_many(&app, 250).await;
    let token = app.token("sub-1", Role::Reader);
    let (status, first) = app.get_json(&format!("/subscriptions/sub-1/providers/Microsoft.Security/subAssessments?{SUB_API}&$top=100"), &token).await;
    assert_eq!(status, 200);
    let first_names: Vec<String> = first["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["name"].as_str().unwrap().to_owned())
        .collect();
    let cursor = first_names.last().unwrap().clone();

    // New findings on both sides of the cursor arrive between the two requests.
    let mut added = Vec::new();
    for i in 0..40 {
        let row = finding_row(&registry, &image, &format!("CVE-2025-{i:05}"), "zlib");
        added.push(row);
    }
    let before_cursor = added.iter().filter(|r| r.id < cursor).count();
    assert!(
        before_cursor > 0 && before_cursor < 40,
        "the new rows straddle the cursor"
    );
    app.seed_findings(added.clone()).await;

    let rest = walk(
        &app,
        first["nextLink"]
            .as_str()
            .unwrap()
            .trim_start_matches(&app.address),
        &token,
    )
    .await;
    let mut seen: Vec<String> = first_names;
    seen.extend(rest.into_iter().flatten());
    let unique: HashSet<&String> = seen.iter().collect();
    assert_eq!(unique.len(), seen.len(), "nothing twice");
    for name in &names {
        assert!(unique.contains(name), "{name} was skipped");
    }
    // Rows added after the cursor are found; rows added before it belong to pages already read.
    for row in &added {
        assert_eq!(unique.contains(&row.id), row.id > cursor, "{}", row.id);
    }
}

async fn scopes_are_isolated(backend: Backend) {
    let app = spawn_app(backend).await;
    let a = app.seed_registry("sub-1", "rg-a", "reg-a").await;
    let b = app.seed_registry("sub-1", "rg-b", "reg-b").await;
    let other = app.seed_registry("sub-2", "rg-a", "reg-a").await;
    let mut rows = Vec::new();
    for (registry, count) in [(&a, 3), (&b, 2), (&other, 4)] {
        let image = app
            .seed_image(registry, "app", &digest_of(&registry.id))
            .await;
        rows.extend(
            (0..count).map(|i| finding_row(registry, &image, &format!("CVE-1-{i}"), "pkg")),
        );
    }
    app.seed_findings(rows).await;
    let token = app.token("sub-1", Role::Reader);
    let count = |body: &Value| body["value"].as_array().unwrap().len();
    let list =
        |scope: &str| format!("/{scope}/providers/Microsoft.Security/subAssessments?{SUB_API}");
    let reg = |rg: &str, name: &str| {
        format!(
            "subscriptions/sub-1/resourceGroups/{rg}/providers/Microsoft.ContainerRegistry/registries/{name}"
        )
    };

    let (_, body) = app.get_json(&list("subscriptions/sub-1"), &token).await;
    assert_eq!(count(&body), 5);
    let (_, body) = app
        .get_json(&list("subscriptions/sub-1/resourceGroups/rg-a"), &token)
        .await;
    assert_eq!(count(&body), 3);
    let (_, body) = app.get_json(&list(&reg("rg-a", "reg-a")), &token).await;
    assert_eq!(count(&body), 3);
    assert!(
        body["value"]
            .as_array()
            .unwrap()
            .iter()
            .all(|v| v["id"].as_str().unwrap().contains("/registries/reg-a/"))
    );
    let (_, body) = app.get_json(&list(&reg("rg-b", "reg-b")), &token).await;
    assert_eq!(count(&body), 2);
    assert!(
        body["value"]
            .as_array()
            .unwrap()
            .iter()
            .all(|v| v["id"].as_str().unwrap().contains("/registries/reg-b/"))
    );

    // A finding of registry A cannot be read through registry B's scope.
    let a_finding = app
        .db({
            let id = a.id.clone();
            move |c| {
                crowsnest::store::findings::list(
                    c,
                    &crowsnest::store::findings::FindingScope::Registry(id),
                    None,
                    1,
                )
            }
        })
        .await
        .remove(0);
    let (status, body) = app
        .get_json(
            &format!(
                "/{}/providers/Microsoft.Security/assessments/{KEY}/subAssessments/{}?{SUB_API}",
                reg("rg-b", "reg-b"),
                a_finding.finding.id
            ),
            &token,
        )
        .await;
    assert_cloud_error(status, &body, 404, "SubAssessmentNotFound");

    // Subscription 2 is refused, and the refusal is the same whether or not anything exists there.
    let (status, existing) = app.get_json(&list("subscriptions/sub-2"), &token).await;
    assert_cloud_error(status, &existing, 403, "AuthorizationFailed");
    let (status, missing) = app.get_json(&list("subscriptions/sub-3"), &token).await;
    assert_cloud_error(status, &missing, 403, "AuthorizationFailed");
    assert_eq!(
        existing["error"]["message"]
            .as_str()
            .unwrap()
            .replace("sub-2", "X"),
        missing["error"]["message"]
            .as_str()
            .unwrap()
            .replace("sub-3", "X")
    );
    let (status, body) = app
        .get_json(&list("subscriptions/sub-2/resourceGroups/rg-a/providers/Microsoft.ContainerRegistry/registries/reg-a"), &token)
        .await;
    assert_cloud_error(status, &body, 403, "AuthorizationFailed");
    let (status, body) = app
        .get_json(&list("subscriptions/sub-2/resourceGroups/rg-a/providers/Microsoft.ContainerRegistry/registries/nothing"), &token)
        .await;
    assert_cloud_error(status, &body, 403, "AuthorizationFailed");

    // A token for every subscription sees both.
    let all = app.token("*", Role::Reader);
    let (_, body) = app.get_json(&list("subscriptions/sub-2"), &all).await;
    assert_eq!(count(&body), 4);
}

async fn assessment_key_and_names_are_checked(backend: Backend) {
    let app = spawn_app(backend).await;
    let registry = app.seed_registry("sub-1", "rg", "reg").await;
    let image = app.seed_image(&registry, "app", &digest_of("app")).await;
    app.seed_findings(vec![finding_row(&registry, &image, "CVE-1", "pkg")])
        .await;
    let token = app.token("sub-1", Role::Reader);
    let base = "/subscriptions/sub-1/providers/Microsoft.Security/assessments";

    let (status, body) = app
        .get_json(
            &format!("{base}/{}/subAssessments?{SUB_API}", KEY.to_uppercase()),
            &token,
        )
        .await;
    assert_eq!(status, 200, "keys are case-insensitive: {body}");
    assert_eq!(body["value"].as_array().unwrap().len(), 1);
    let (status, body) = app
        .get_json(
            &format!("{base}/00000000-0000-0000-0000-000000000000/subAssessments?{SUB_API}"),
            &token,
        )
        .await;
    assert_cloud_error(status, &body, 404, "AssessmentNotFound");
    let (status, body) = app
        .get_json(
            &format!(
                "{base}/{KEY}/subAssessments/{}?{SUB_API}",
                uuid::Uuid::new_v4()
            ),
            &token,
        )
        .await;
    assert_cloud_error(status, &body, 404, "SubAssessmentNotFound");
    let (status, body) = app
        .get_json(
            &format!("{base}/{KEY}/subAssessments/not-a-uuid?{SUB_API}"),
            &token,
        )
        .await;
    assert_cloud_error(status, &body, 404, "SubAssessmentNotFound");
    let (status, body) = app
        .get_json(&format!("/subscriptions/sub-1/resourceGroups/rg/providers/Microsoft.ContainerRegistry/registries/absent/providers/Microsoft.Security/subAssessments?{SUB_API}"), &token)
        .await;
    assert_cloud_error(status, &body, 404, "ResourceNotFound");
}

async fn empty_lists_still_have_value(backend: Backend) {
    let app = spawn_app(backend).await;
    let token = app.token("sub-1", Role::Reader);
    let (status, body) = app
        .get_json(
            &format!("/subscriptions/sub-1/providers/Microsoft.Security/subAssessments?{SUB_API}"),
            &token,
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(body, serde_json::json!({"value": []}));
}

async fn resolved_and_critical_findings_are_shown_as_azure_expects(backend: Backend) {
    let app = spawn_app(backend).await;
    let registry = app.seed_registry("sub-1", "rg", "reg").await;
    let image = app.seed_image(&registry, "app", &digest_of("app")).await;
    let mut critical = finding_row(&registry, &image, "CVE-CRIT", "pkg");
    critical.severity = "Critical".to_owned();
    critical.cvss3_base = Some(9.8);
    critical.cvss2_base = None;
    critical.fixed_version = None;
    critical.patchable = false;
    let mut resolved = finding_row(&registry, &image, "CVE-OLD", "pkg");
    resolved.resolved_at = Some(resolved.last_seen + 1);
    app.seed_findings(vec![critical.clone(), resolved.clone()])
        .await;
    let token = app.token("sub-1", Role::Reader);
    let get = |name: &str| {
        format!(
            "/subscriptions/sub-1/providers/Microsoft.Security/assessments/{KEY}/subAssessments/{name}?{SUB_API}"
        )
    };

    let (_, body) = app.get_json(&get(&critical.id), &token).await;
    assert_eq!(body["properties"]["status"]["severity"], "High");
    assert_eq!(body["properties"]["additionalData"]["severity"], "Critical");
    assert_eq!(
        body["properties"]["additionalData"]["cvss"]["2.0"],
        Value::Null
    );
    assert_eq!(
        body["properties"]["additionalData"]["cvss"]["3.0"]["base"],
        9.8
    );
    assert_eq!(body["properties"]["additionalData"]["patchable"], false);
    assert_eq!(
        body["properties"]["additionalData"]["fixedVersion"],
        Value::Null
    );

    let (_, body) = app.get_json(&get(&resolved.id), &token).await;
    assert_eq!(body["properties"]["status"]["code"], "Healthy");
    assert_eq!(body["properties"]["status"]["cause"], "Resolved");
    assert!(body["properties"]["additionalData"]["resolvedAt"].is_string());
}

async fn top_and_skip_token_are_validated(backend: Backend) {
    let app = spawn_app(backend).await;
    let token = app.token("sub-1", Role::Reader);
    let list = "/subscriptions/sub-1/providers/Microsoft.Security/subAssessments";
    for top in ["0", "1001", "abc", "-1", "1.5"] {
        let (status, body) = app
            .get_json(&format!("{list}?{SUB_API}&$top={top}"), &token)
            .await;
        assert_cloud_error(status, &body, 400, "InvalidParameter");
        assert_eq!(body["error"]["target"], "$top");
    }
    for top in ["1", "1000"] {
        let (status, _) = app
            .get_json(&format!("{list}?{SUB_API}&$top={top}"), &token)
            .await;
        assert_eq!(status, 200);
    }
    for bad in ["garbage!", "eyJ4IjoxfQ", "WyJhIiwiYiJd"] {
        let (status, body) = app
            .get_json(&format!("{list}?{SUB_API}&$skipToken={bad}"), &token)
            .await;
        assert_cloud_error(status, &body, 400, "InvalidSkipToken");
    }
}
