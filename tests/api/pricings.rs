//! The Defender plan per subscription: Azure's Pricings API shape, roles and errors, and what the
//! Free tier does to pushes (recorded, not scanned or billed), scan submissions, re-assessments,
//! and what a switch back to Standard scans.

use std::time::Duration;

use crowsnest::domain::{PricingTier, Role, ScanTrigger, Timestamp};
use serde_json::{Value, json};

use crate::backend_tests;
use crate::support::app::*;
use crate::support::database::Backend;
use crate::support::fixtures::vulnerable_debian;
use crate::support::registry::client::push_image;
use crate::support::rows::{digest_of, image_row};
use crate::support::scans::{
    SUB, findings, get_security, gnutls_advisory, import, notifying_registry, post_scan,
    registry_assessment, scans, wait_for_scan,
};
use crate::support::wait_for;

backend_tests!(
    plans_are_read_listed_and_set_in_azures_shape,
    bad_requests_get_a_precise_cloud_error,
    a_free_subscription_records_pushes_unscanned_until_it_is_standard_again,
    reassessments_pass_over_free_subscriptions_and_free_cancels_queued_scans,
);

const PRICINGS_API: &str = "api-version=2024-01-01";

fn pricing_path(subscription: &str, name: &str) -> String {
    format!(
        "/subscriptions/{subscription}/providers/Microsoft.Security/pricings/{name}?{PRICINGS_API}"
    )
}

async fn set_tier(app: &TestApp, subscription: &str, tier: &str) -> (u16, Value) {
    app.put_json(
        &pricing_path(subscription, "Containers"),
        &app.token(subscription, Role::Admin),
        &json!({"properties": {"pricingTier": tier}}),
    )
    .await
}

/// The documented Containers sample (2024-01-01).
fn documented_sample() -> Value {
    let path = "../shared/reference/azure/pricings/specification/security/resource-manager/Microsoft.Security/Security/stable/2024-01-01/examples/Pricings/GetPricingByNameContainers_example.json";
    let example: Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    example["responses"]["200"]["body"].clone()
}

/// Every member of `expected` is in `actual` with the same JSON type, recursively.
fn assert_same_shape(expected: &Value, actual: &Value, at: &str) {
    match (expected, actual) {
        (Value::Object(e), Value::Object(a)) => {
            for (key, value) in e {
                let inner = a
                    .get(key)
                    .unwrap_or_else(|| panic!("{at}.{key} is missing from {actual}"));
                assert_same_shape(value, inner, &format!("{at}.{key}"));
            }
        }
        (Value::Array(e), Value::Array(a)) => {
            if let (Some(e), Some(a)) = (e.first(), a.first()) {
                assert_same_shape(e, a, &format!("{at}[0]"));
            }
        }
        (e, a) => assert_eq!(
            std::mem::discriminant(e),
            std::mem::discriminant(a),
            "{at}: {e} and {a} are not of one JSON type"
        ),
    }
}

async fn plans_are_read_listed_and_set_in_azures_shape(backend: Backend) {
    let app = spawn_app(backend).await;
    let contributor = app.token(SUB, Role::Contributor);
    let admin = app.token(SUB, Role::Admin);

    // Never set: the default, Standard, without an enablement time.
    let (status, plan) = app
        .get_json(&pricing_path(SUB, "Containers"), &contributor)
        .await;
    assert_eq!(status, 200, "{plan}");
    assert_eq!(
        plan["id"],
        format!("/subscriptions/{SUB}/providers/Microsoft.Security/pricings/Containers")
    );
    assert_eq!(plan["type"], "Microsoft.Security/pricings");
    let properties = &plan["properties"];
    assert_eq!(properties["pricingTier"], "Standard");
    assert_eq!(properties["resourcesCoverageStatus"], "FullyCovered");
    assert_eq!(properties["freeTrialRemainingTime"], "PT0S");
    assert_eq!(properties["enforce"], "False");
    assert_eq!(properties["inherited"], "False");
    assert_eq!(properties["deprecated"], false);
    assert!(properties.get("enablementTime").is_none(), "{plan}");
    assert!(properties.get("replacedBy").is_none(), "{plan}");
    assert_eq!(
        properties["extensions"],
        json!([{"name": "ContainerRegistriesVulnerabilityAssessments", "isEnabled": "True"}])
    );

    // Contributors read, only admins change.
    let (status, body) = app
        .put_json(
            &pricing_path(SUB, "Containers"),
            &contributor,
            &json!({"properties": {"pricingTier": "Free"}}),
        )
        .await;
    assert_eq!(status, 403, "{body}");
    let (status, _) = app
        .get_json(
            &pricing_path(SUB, "Containers"),
            &app.token(SUB, Role::Reader),
        )
        .await;
    assert_eq!(status, 403);
    let (status, _) = app
        .get_json(&pricing_path("someone-else", "Containers"), &admin)
        .await;
    assert_eq!(status, 403);

    // The first change creates the subscription's plan; who set it is recorded.
    let (status, free) = set_tier(&app, SUB, "Free").await;
    assert_eq!(status, 201, "{free}");
    assert_eq!(free["properties"]["pricingTier"], "Free");
    assert_eq!(free["properties"]["resourcesCoverageStatus"], "NotCovered");
    assert_eq!(free["properties"]["extensions"][0]["isEnabled"], "False");
    assert!(free["properties"].get("enablementTime").is_none(), "{free}");
    let stored = app
        .db(|c| crowsnest::store::pricings::list(c, &[SUB.to_owned()]))
        .await;
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].pricing_tier, "Free");
    assert_eq!(stored[0].changed_by, "test-user");

    // Back to Standard, through the SDK's body (the extension named): enabled now, and the reply
    // has every field of Azure's sample, with the same JSON types.
    let before = Timestamp::now().micros();
    let (status, standard) = app
        .put_json(
            &pricing_path(SUB, "containers"),
            &admin,
            &json!({"properties": {"pricingTier": "Standard", "extensions": [
                {"name": "ContainerRegistriesVulnerabilityAssessments", "isEnabled": "True"}
            ]}}),
        )
        .await;
    assert_eq!(status, 200, "{standard}");
    assert_eq!(standard["name"], "Containers");
    assert_same_shape(&documented_sample(), &standard, "pricing");
    let enabled = chrono::DateTime::parse_from_rfc3339(
        standard["properties"]["enablementTime"].as_str().unwrap(),
    )
    .unwrap()
    .timestamp_micros();
    assert!(enabled >= before - 1_000_000, "{standard}");

    // Setting Standard again keeps the time it was enabled.
    let (status, again) = set_tier(&app, SUB, "Standard").await;
    assert_eq!(status, 200);
    assert_eq!(
        again["properties"]["enablementTime"],
        standard["properties"]["enablementTime"]
    );

    // ContainerRegistry is the deprecated name of the same state.
    let (status, legacy) = app
        .get_json(&pricing_path(SUB, "ContainerRegistry"), &contributor)
        .await;
    assert_eq!(status, 200, "{legacy}");
    assert_eq!(legacy["properties"]["pricingTier"], "Standard");
    assert_eq!(legacy["properties"]["deprecated"], true);
    assert_eq!(legacy["properties"]["replacedBy"], json!(["Containers"]));
    let (status, _) = app
        .put_json(
            &pricing_path(SUB, "ContainerRegistry"),
            &admin,
            &json!({"properties": {"pricingTier": "Free"}}),
        )
        .await;
    assert_eq!(status, 200);
    let (_, containers) = app
        .get_json(&pricing_path(SUB, "Containers"), &contributor)
        .await;
    assert_eq!(containers["properties"]["pricingTier"], "Free");

    // The list, whole and filtered as Azure filters it.
    let list_path = |query: &str| {
        format!("/subscriptions/{SUB}/providers/Microsoft.Security/pricings?{PRICINGS_API}{query}")
    };
    let (status, all) = app.get_json(&list_path(""), &contributor).await;
    assert_eq!(status, 200, "{all}");
    let names: Vec<&str> = all["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["Containers", "ContainerRegistry"]);
    assert!(
        all["value"]
            .as_array()
            .unwrap()
            .iter()
            .all(|p| p["properties"]["pricingTier"] == "Free")
    );
    let (status, filtered) = app
        .get_json(
            &list_path("&$filter=name%20in%20(Containers,KeyVaults)"),
            &contributor,
        )
        .await;
    assert_eq!(status, 200, "{filtered}");
    assert_eq!(filtered["value"].as_array().unwrap().len(), 1);
    assert_eq!(filtered["value"][0]["name"], "Containers");
}

async fn bad_requests_get_a_precise_cloud_error(backend: Backend) {
    let app = spawn_app(backend).await;
    let admin = app.token(SUB, Role::Admin);
    let containers = |api: &str| {
        format!("/subscriptions/{SUB}/providers/Microsoft.Security/pricings/Containers{api}")
    };
    let cases: Vec<(&str, String, Value, u16, &str)> = vec![
        (
            "an unknown tier",
            pricing_path(SUB, "Containers"),
            json!({"properties": {"pricingTier": "Premium"}}),
            400,
            "InvalidParameter",
        ),
        (
            "a tier in the wrong case",
            pricing_path(SUB, "Containers"),
            json!({"properties": {"pricingTier": "standard"}}),
            400,
            "InvalidParameter",
        ),
        (
            "no tier",
            pricing_path(SUB, "Containers"),
            json!({"properties": {}}),
            400,
            "InvalidRequestContent",
        ),
        (
            "a sub-plan",
            pricing_path(SUB, "Containers"),
            json!({"properties": {"pricingTier": "Standard", "subPlan": "P2"}}),
            400,
            "InvalidParameter",
        ),
        (
            "enforce",
            pricing_path(SUB, "Containers"),
            json!({"properties": {"pricingTier": "Standard", "enforce": "True"}}),
            400,
            "InvalidParameter",
        ),
        (
            "scanning off on Standard",
            pricing_path(SUB, "Containers"),
            json!({"properties": {"pricingTier": "Standard", "extensions": [{"name": "ContainerRegistriesVulnerabilityAssessments", "isEnabled": "False"}]}}),
            400,
            "InvalidParameter",
        ),
        (
            "another extension",
            pricing_path(SUB, "Containers"),
            json!({"properties": {"pricingTier": "Standard", "extensions": [{"name": "AgentlessVmScanning", "isEnabled": "True"}]}}),
            400,
            "InvalidParameter",
        ),
        (
            "another plan",
            pricing_path(SUB, "VirtualMachines"),
            json!({"properties": {"pricingTier": "Standard"}}),
            404,
            "PricingNotFound",
        ),
        (
            "an older api-version",
            containers("?api-version=2023-01-01"),
            json!({"properties": {"pricingTier": "Free"}}),
            400,
            "InvalidApiVersionParameter",
        ),
        (
            "no api-version",
            containers(""),
            json!({"properties": {"pricingTier": "Free"}}),
            400,
            "MissingApiVersionParameter",
        ),
        (
            "a resource group scope",
            format!(
                "/subscriptions/{SUB}/resourceGroups/rg/providers/Microsoft.Security/pricings/Containers?{PRICINGS_API}"
            ),
            json!({"properties": {"pricingTier": "Free"}}),
            400,
            "InvalidScope",
        ),
    ];
    for (what, path, body, status, code) in cases {
        let (got, error) = app.put_json(&path, &admin, &body).await;
        assert_eq!(got, status, "{what}: {error}");
        assert_eq!(error["error"]["code"], code, "{what}: {error}");
        assert!(
            error["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty()),
            "{what}"
        );
    }
    let (status, error) = app.get_json(&pricing_path(SUB, "Dns"), &admin).await;
    assert_eq!(
        (status, error["error"]["code"].as_str()),
        (404, Some("PricingNotFound"))
    );
    let (status, error) = app
        .get_json(
            &format!("/subscriptions/{SUB}/providers/Microsoft.Security/pricings?{PRICINGS_API}&$filter=name%20eq%20'Containers'"),
            &admin,
        )
        .await;
    assert_eq!(
        (status, error["error"]["code"].as_str()),
        (400, Some("InvalidFilter")),
        "{error}"
    );
    // Nothing was stored by the refused requests.
    let stored = app
        .db(|c| crowsnest::store::pricings::list(c, &[SUB.to_owned()]))
        .await;
    assert!(stored.is_empty(), "{stored:?}");
}

async fn billed(app: &TestApp) -> i64 {
    let body = get_security(app, &format!("usage?{OWN_API}&from=2000-01-01T00:00:00Z")).await;
    body["billedImages"].as_i64().unwrap()
}

/// The image with `digest` as the images API shows it, once it exists.
async fn image(app: &TestApp, digest: &str) -> Option<Value> {
    let (status, body) = app
        .get_json(
            &format!("/subscriptions/{SUB}/providers/Microsoft.Security/images/{digest}?{OWN_API}"),
            &app.token(SUB, Role::Reader),
        )
        .await;
    (status == 200).then_some(body)
}

async fn a_free_subscription_records_pushes_unscanned_until_it_is_standard_again(backend: Backend) {
    let app = spawn_app(backend).await;
    import(&app, &gnutls_advisory("TEST-GNUTLS-1")).await;
    let registry = notifying_registry(&app, "freeplan").await;
    let (status, body) = set_tier(&app, SUB, "Free").await;
    assert_eq!(status, 201, "{body}");

    // A push through the registry's own notification: the image and its tag are recorded…
    let pushed = push_image(&registry, "team/web", Some("v1"), &vulnerable_debian()).await;
    let recorded = wait_for("the pushed image", Duration::from_secs(30), || async {
        image(&app, &pushed.manifest_digest).await
    })
    .await;
    let health = &recorded["properties"]["health"];
    assert_eq!(health["code"], "NotApplicable", "{recorded}");
    assert_eq!(health["cause"], "PlanDisabled", "{recorded}");
    assert!(
        health["description"].as_str().unwrap().contains("Free"),
        "{recorded}"
    );
    assert_eq!(recorded["properties"]["tags"], json!(["v1"]), "{recorded}");
    // … and nothing else: no scan, no billing, no findings (the workers poll every 100 ms).
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(scans(&app, "").await.is_empty());
    assert_eq!(billed(&app).await, 0);
    assert!(findings(&app).await.is_empty());
    let assessment = registry_assessment(&app, "freeplan").await;
    assert_eq!(
        assessment["properties"]["status"]["cause"], "PlanDisabled",
        "{assessment}"
    );

    // Submissions are refused while Free.
    let reference = format!("{}/team/web:v1", registry.host());
    let (status, _, refused) = post_scan(
        &app,
        &app.token(SUB, Role::Contributor),
        &json!({ "image": reference }),
        None,
    )
    .await;
    assert_eq!(status, 409, "{refused}");
    assert_eq!(refused["error"]["code"], "PlanDisabled");

    // Standard: what was pushed meanwhile is scanned, and billed once.
    let (status, body) = set_tier(&app, SUB, "Standard").await;
    assert_eq!(status, 200, "{body}");
    let scan = wait_for_scan(&app, "&trigger=Push", "Succeeded").await;
    assert_eq!(scan["properties"]["digest"], pushed.manifest_digest);
    let listed = findings(&app).await;
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0]["properties"]["id"], "TEST-GNUTLS-1");
    assert_eq!(billed(&app).await, 1);
    let assessed = image(&app, &pushed.manifest_digest).await.unwrap();
    assert_eq!(assessed["properties"]["health"]["code"], "Unhealthy");
    assert_eq!(scans(&app, "").await.len(), 1);
}

async fn unstarted(
    app: &TestApp,
    subscription: &'static str,
) -> Vec<crowsnest::store::scans::ScanRow> {
    app.db(move |c| crowsnest::store::scans::unstarted(c, subscription, None))
        .await
}

async fn reassessments_pass_over_free_subscriptions_and_free_cancels_queued_scans(
    backend: Backend,
) {
    let app = spawn_app_with(backend, |s| s.jobs.queue.workers = 0).await;
    let free = app.seed_registry("sub-free", "rg", "reg").await;
    let standard = app.seed_registry("sub-standard", "rg", "reg").await;
    let long_ago = Timestamp::now().micros() - 3 * 86_400_000_000;
    for (registry, name) in [(&free, "free"), (&standard, "standard")] {
        let row = crowsnest::store::images::ImageRow {
            scanned_at: Some(long_ago),
            ..image_row(registry, "team/app", &digest_of(name))
        };
        app.db(move |c| crowsnest::store::images::insert(c, &row))
            .await;
    }
    let (status, body) = set_tier(&app, "sub-free", "Free").await;
    assert_eq!(status, 201, "{body}");
    // Each subscription's plan as it stands: its row, or the default for one that never set it.
    let plans = app
        .db(|c| {
            crowsnest::jobs::pricings::of_subscriptions(
                c,
                &["sub-free".to_owned(), "sub-standard".to_owned()],
            )
        })
        .await;
    assert_eq!(plans[0].0, "sub-free");
    assert_eq!(
        (plans[0].1.tier, plans[0].1.stored),
        (PricingTier::Free, true)
    );
    assert_eq!(
        (plans[1].1.tier, plans[1].1.stored),
        (PricingTier::Standard, false)
    );

    // The daily rescan (re-matches share its way in, `queue::reassess_in`): only the Standard
    // subscription's image.
    let queued = app
        .db(|c| {
            crowsnest::jobs::rescans::queue_due(c, &Default::default(), Timestamp::now().micros())
        })
        .await;
    assert_eq!(queued, 1, "one image is due outside the Free subscription");
    assert!(unstarted(&app, "sub-free").await.is_empty());
    let queued_standard = unstarted(&app, "sub-standard").await;
    assert_eq!(queued_standard.len(), 1);
    assert_eq!(
        queued_standard[0].triggered_by,
        ScanTrigger::Rescan.as_str()
    );

    // Setting the Standard subscription Free cancels its scans not yet started.
    let (status, body) = set_tier(&app, "sub-standard", "Free").await;
    assert_eq!(status, 201, "{body}");
    assert!(unstarted(&app, "sub-standard").await.is_empty());
    let id = queued_standard[0].id.clone();
    let cancelled = app
        .db(move |c| crowsnest::store::scans::find(c, "sub-standard", &id))
        .await
        .unwrap();
    assert_eq!(cancelled.status, "Failed");
    assert_eq!(cancelled.error_code.as_deref(), Some("PlanDisabled"));
}
