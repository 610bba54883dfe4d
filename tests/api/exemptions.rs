//! Exemptions: the resource (write, read, list, delete, history), what each criterion and scope
//! exempts, one effect everywhere (status, `$filter`, image health, the registry assessment),
//! expiry, findings born exempt after a push, and the refusals.

use std::collections::BTreeSet;
use std::time::Duration;

use crowsnest::domain::{Role, Severity, Timestamp};
use crowsnest::store::findings::FindingRow;
use crowsnest::store::images::ImageRow;
use serde_json::{Value, json};

use crate::backend_tests;
use crate::support::app::*;
use crate::support::database::Backend;
use crate::support::fixtures::vulnerable_debian;
use crate::support::registry::client::push_image;
use crate::support::registry::{RegistryAuth, TestRegistry};
use crate::support::rows::{digest_of, finding_row};
use crate::support::scans::{
    SUB as PUSH_SUB, gnutls_advisory, import, notifying_registry, registry_assessment,
    wait_for_scan,
};
use crate::support::wait_for;

backend_tests!(
    an_exemption_is_written_read_listed_deleted_and_audited,
    each_criterion_and_scope_exempts_exactly_its_findings,
    image_health_follows_and_expiry_makes_findings_count_again,
    the_sweep_expires_exemptions_within_its_interval,
    findings_of_an_image_pushed_later_are_born_exempt,
    bad_exemptions_and_unauthorized_callers_get_a_precise_cloud_error,
    the_ci_gate_ignores_findings_the_registrys_exemptions_cover,
);

const SUB: &str = "sub-ex";

fn registry_scope(registry: &str, group: &str) -> String {
    format!(
        "subscriptions/{SUB}/resourceGroups/{group}/providers/Microsoft.ContainerRegistry/registries/{registry}"
    )
}

fn exemption_path(scope: &str, name: &str) -> String {
    format!("/{scope}/providers/Microsoft.Security/exemptions/{name}?{OWN_API}")
}

fn cve_links(ids: &[&str]) -> String {
    let links: Vec<Value> = ids
        .iter()
        .map(|c| json!({"title": c, "link": format!("https://nvd.nist.gov/vuln/detail/{c}")}))
        .collect();
    serde_json::to_string(&links).unwrap()
}

fn with_severity(mut row: FindingRow, severity: Severity) -> FindingRow {
    row.severity = severity.as_str().to_owned();
    row.severity_rank = severity.rank();
    row
}

/// Two registries in two resource groups, three images, eight findings that differ in every
/// property a criterion reads.
struct World {
    app: TestApp,
    web: ImageRow,
    api: ImageRow,
    /// Finding names by a short label.
    names: Vec<(&'static str, String)>,
}

impl World {
    fn name(&self, label: &str) -> String {
        self.names
            .iter()
            .find(|(l, _)| *l == label)
            .map(|(_, n)| n.clone())
            .unwrap()
    }

    fn labels_of(&self, names: &BTreeSet<String>) -> BTreeSet<&'static str> {
        self.names
            .iter()
            .filter(|(_, n)| names.contains(n))
            .map(|(l, _)| *l)
            .collect()
    }
}

async fn world(backend: Backend) -> World {
    let app = spawn_app(backend).await;
    let registry = app.seed_registry(SUB, "rg", "reg").await;
    let elsewhere = app.seed_registry(SUB, "rg2", "reg2").await;
    let web = app
        .seed_image(&registry, "team/web", &digest_of("web"))
        .await;
    let api = app
        .seed_image(&registry, "team/api", &digest_of("api"))
        .await;
    let other = app
        .seed_image(&elsewhere, "team/web", &digest_of("other"))
        .await;
    let other_id = other.id.clone();
    app.db(move |c| {
        crowsnest::store::images::set_os_version(c, &other_id, Some("ubuntu_linux_22.04"))
    })
    .await;

    let mut rows = Vec::new();
    let mut names = Vec::new();
    let mut add = |label: &'static str, row: FindingRow| {
        names.push((label, row.id.clone()));
        rows.push(row);
    };
    // A DSA naming two CVEs.
    let mut dsa = finding_row(&registry, &web, "DSA-5532-1", "openssl");
    dsa.cves = cve_links(&["CVE-2023-5678", "CVE-2023-5363"]);
    add("dsa", with_severity(dsa, Severity::High));
    let mut low = finding_row(&registry, &web, "CVE-2023-0001", "zlib");
    low.installed_version = "1.2.13.dfsg-1".to_owned();
    add("low", with_severity(low, Severity::Low));
    let mut unfixed = finding_row(&registry, &web, "CVE-2023-0002", "curl");
    unfixed.fixed_version = None;
    unfixed.patchable = false;
    add("unfixed", with_severity(unfixed, Severity::Critical));
    let mut old_openssl = finding_row(&registry, &api, "CVE-2023-0003", "openssl");
    old_openssl.installed_version = "1.1.1n-0+deb11u5".to_owned();
    add("api-openssl", with_severity(old_openssl, Severity::Medium));
    let mut pip = finding_row(&registry, &api, "GHSA-aaaa-bbbb-cccc", "requests");
    pip.ecosystem = "PyPI".to_owned();
    pip.category = "PyPI".to_owned();
    pip.installed_version = "2.25.0".to_owned();
    pip.cves = cve_links(&["CVE-2023-32681"]);
    add("pypi", with_severity(pip, Severity::Medium));
    let mut other_openssl = finding_row(&elsewhere, &other, "DSA-5532-1", "openssl");
    other_openssl.cves = cve_links(&["CVE-2023-5678", "CVE-2023-5363"]);
    add("other-dsa", with_severity(other_openssl, Severity::High));
    let mut resolved = finding_row(&registry, &web, "CVE-2023-0004", "bash");
    resolved.resolved_at = Some(Timestamp::now().micros());
    add("resolved", resolved);
    app.seed_findings(rows).await;
    World {
        app,
        web,
        api,
        names,
    }
}

async fn put_exemption(app: &TestApp, scope: &str, name: &str, properties: Value) -> (u16, Value) {
    app.put_json(
        &exemption_path(scope, name),
        &app.token(SUB, Role::Contributor),
        &json!({ "properties": properties }),
    )
    .await
}

async fn delete_exemption(app: &TestApp, scope: &str, name: &str) -> u16 {
    app.client
        .delete(app.url(&exemption_path(scope, name)))
        .bearer_auth(app.token(SUB, Role::Contributor))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// Every sub-assessment of the subscription (container registry key), by name.
async fn sub_assessments(app: &TestApp, filter: Option<&str>) -> Vec<Value> {
    let filter = filter
        .map(|f| format!("&$filter={}", urlencoding(f)))
        .unwrap_or_default();
    let (status, body) = app
        .get_json(
            &format!(
                "/subscriptions/{SUB}/providers/Microsoft.Security/assessments/{KEY}/subAssessments?{SUB_API}&$top=1000{filter}"
            ),
            &app.token(SUB, Role::Reader),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    body["value"].as_array().unwrap().clone()
}

fn urlencoding(text: &str) -> String {
    url::form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

async fn exempt_names(app: &TestApp) -> BTreeSet<String> {
    sub_assessments(app, Some("properties/status/cause eq 'Exempt'"))
        .await
        .iter()
        .map(|s| s["name"].as_str().unwrap().to_owned())
        .collect()
}

/// The health stored on the image's row (what the registry assessment counts).
async fn stored_health(app: &TestApp, image: &ImageRow) -> String {
    let id = image.id.clone();
    app.db(move |c| crowsnest::store::images::by_ids(c, &[id]))
        .await
        .into_values()
        .next()
        .unwrap()
        .health
}

async fn summary(app: &TestApp) -> Value {
    let (status, body) = app
        .get_json(
            &format!(
                "/subscriptions/{SUB}/providers/Microsoft.Security/vulnerabilitySummary?{OWN_API}"
            ),
            &app.token(SUB, Role::Reader),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    body
}

async fn image_health(app: &TestApp, digest: &str) -> Value {
    let (status, body) = app
        .get_json(
            &format!("/subscriptions/{SUB}/providers/Microsoft.Security/images/{digest}?{OWN_API}"),
            &app.token(SUB, Role::Reader),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    body
}

async fn an_exemption_is_written_read_listed_deleted_and_audited(backend: Backend) {
    let w = world(backend).await;
    let app = &w.app;
    let scope = format!(
        "{}/repositories/team/web/images/{}",
        registry_scope("reg", "rg"),
        w.web.digest
    );
    let (status, created) = put_exemption(
        app,
        &scope,
        "openssl-waiver",
        json!({
            "criteria": {"advisoryIds": ["CVE-2023-5678"]},
            "category": "Waiver",
            "justification": "openssl is not reachable from the web tier",
            "displayName": "openssl waiver",
        }),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    let id = format!("/{scope}/providers/Microsoft.Security/exemptions/openssl-waiver");
    assert_eq!(created["id"], id);
    assert_eq!(created["type"], "Microsoft.Security/exemptions");
    let properties = &created["properties"];
    assert_eq!(properties["state"], "Active");
    assert_eq!(properties["createdBy"], "test-user");
    assert_eq!(properties["exemptFindings"], 1, "{created}");
    assert_eq!(properties["matchedFindings"], 1, "{created}");
    assert!(properties.get("warnings").is_none(), "{created}");
    assert_eq!(properties["scope"], format!("/{scope}"));

    // The finding shows as exempt, naming the exemption, and is still listed.
    let all = sub_assessments(app, None).await;
    let dsa = all
        .iter()
        .find(|s| s["name"] == w.name("dsa"))
        .expect("still listed");
    assert_eq!(
        dsa["properties"]["status"]["code"], "NotApplicable",
        "{dsa}"
    );
    assert_eq!(dsa["properties"]["status"]["cause"], "Exempt");
    assert!(
        dsa["properties"]["status"]["description"]
            .as_str()
            .unwrap()
            .to_ascii_lowercase()
            .contains(&id.to_ascii_lowercase()),
        "{dsa}"
    );
    assert_eq!(exempt_names(app).await, [w.name("dsa")].into());
    // The MDVM view shows it exempt too: one row per CVE it names.
    let (status, mdvm) = app
        .get_json(
            &format!(
                "/subscriptions/{SUB}/providers/Microsoft.Security/assessments/{}/subAssessments?{SUB_API}&$filter={}",
                crowsnest::domain::MDVM_ASSESSMENT_KEY,
                urlencoding("properties/status/cause eq 'Exempt'")
            ),
            &app.token(SUB, Role::Reader),
        )
        .await;
    assert_eq!(status, 200, "{mdvm}");
    let rows = mdvm["value"].as_array().unwrap();
    assert_eq!(rows.len(), 2, "{mdvm}");
    assert!(
        rows.iter()
            .all(|r| r["properties"]["status"]["code"] == "NotApplicable")
    );
    let unhealthy = sub_assessments(app, Some("properties/status/code eq 'Unhealthy'")).await;
    assert_eq!(unhealthy.len(), 5, "the other present findings");
    // The summary and the image count it apart.
    let summary = summary(app).await;
    assert_eq!(summary["exemptFindings"], 1, "{summary}");
    assert_eq!(
        summary["findingsBySeverity"]["High"], 1,
        "the other DSA only: {summary}"
    );
    let image = image_health(app, &w.web.digest).await;
    assert_eq!(image["properties"]["findings"]["exempt"], 1, "{image}");
    assert_eq!(image["properties"]["findings"]["total"], 2, "{image}");

    let reader = app.token(SUB, Role::Reader);
    let (status, read) = app
        .get_json(&exemption_path(&scope, "openssl-waiver"), &reader)
        .await;
    assert_eq!(status, 200, "{read}");
    assert_eq!(
        read["properties"]["justification"],
        properties["justification"]
    );
    assert_eq!(read["properties"]["exemptFindings"], 1);
    // Listed at its scope and at every scope above it, not beside it.
    for (above, listed) in [
        (format!("subscriptions/{SUB}"), 1),
        (registry_scope("reg", "rg"), 1),
        (
            format!("{}/repositories/team/web", registry_scope("reg", "rg")),
            1,
        ),
        (registry_scope("reg2", "rg2"), 0),
    ] {
        let (status, list) = app
            .get_json(
                &format!("/{above}/providers/Microsoft.Security/exemptions?{OWN_API}"),
                &reader,
            )
            .await;
        assert_eq!(status, 200, "{list}");
        assert_eq!(
            list["value"].as_array().unwrap().len(),
            listed,
            "{above}: {list}"
        );
    }

    // A change: the category, and one more advisory.
    let (status, changed) = put_exemption(
        app,
        &scope,
        "openssl-waiver",
        json!({
            "criteria": {"advisoryIds": ["CVE-2023-5678", "CVE-2023-0001"]},
            "category": "Mitigated",
            "justification": "patched in our base image",
        }),
    )
    .await;
    assert_eq!(status, 200, "{changed}");
    assert_eq!(changed["properties"]["createdAt"], properties["createdAt"]);
    assert_eq!(changed["properties"]["exemptFindings"], 2);
    assert_eq!(
        exempt_names(app).await,
        [w.name("dsa"), w.name("low")].into()
    );
    let image = image_health(app, &w.web.digest).await;
    assert_eq!(image["properties"]["findings"]["total"], 1, "{image}");

    assert_eq!(delete_exemption(app, &scope, "openssl-waiver").await, 200);
    assert!(exempt_names(app).await.is_empty());
    let (status, _) = app
        .get_json(&exemption_path(&scope, "openssl-waiver"), &reader)
        .await;
    assert_eq!(status, 404);
    assert_eq!(delete_exemption(app, &scope, "openssl-waiver").await, 204);

    // Its history outlives it: who, when, before and after.
    let (status, history) = app
        .get_json(
            &format!(
                "/{scope}/providers/Microsoft.Security/exemptions/openssl-waiver/history?{OWN_API}"
            ),
            &reader,
        )
        .await;
    assert_eq!(status, 200, "{history}");
    let entries = history["value"].as_array().unwrap();
    let actions: Vec<&str> = entries
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["Created", "Updated", "Deleted"]);
    assert!(entries.iter().all(|e| e["actor"] == "test-user"));
    assert!(entries[0].get("before").is_none());
    assert_eq!(entries[1]["before"]["properties"]["category"], "Waiver");
    assert_eq!(entries[1]["after"]["properties"]["category"], "Mitigated");
    assert_eq!(entries[2]["before"]["properties"]["category"], "Mitigated");
    assert!(entries[2].get("after").is_none());
}

async fn each_criterion_and_scope_exempts_exactly_its_findings(backend: Backend) {
    let w = world(backend).await;
    let app = &w.app;
    let subscription = format!("subscriptions/{SUB}");
    let group = format!("subscriptions/{SUB}/resourceGroups/rg");
    let registry = registry_scope("reg", "rg");
    let repository = format!("{registry}/repositories/team/api");
    let image = format!("{registry}/repositories/team/web/images/{}", w.web.digest);
    let cases: Vec<(&str, &str, Value, Vec<&str>)> = vec![
        (
            "all in scope",
            &image,
            json!({}),
            vec!["dsa", "low", "unfixed"],
        ),
        (
            "alias",
            &subscription,
            json!({"advisoryIds": ["cve-2023-5363"]}),
            vec!["dsa", "other-dsa"],
        ),
        (
            "advisory id",
            &group,
            json!({"advisoryIds": ["DSA-5532-1"]}),
            vec!["dsa"],
        ),
        (
            "GHSA alias",
            &subscription,
            json!({"advisoryIds": ["CVE-2023-32681"]}),
            vec!["pypi"],
        ),
        (
            "package",
            &subscription,
            json!({"packages": [{"name": "openssl"}]}),
            vec!["dsa", "api-openssl", "other-dsa"],
        ),
        (
            "package range",
            &registry,
            json!({"packages": [{"name": "openssl", "ecosystem": "Debian", "versionRange": "<3.0"}]}),
            vec!["api-openssl"],
        ),
        (
            "package ecosystem",
            &subscription,
            json!({"packages": [{"name": "requests", "ecosystem": "PyPI", "versionRange": ">=2.0, <2.31.0"}]}),
            vec!["pypi"],
        ),
        (
            "severities",
            &subscription,
            json!({"severities": ["Critical", "Low"]}),
            vec!["unfixed", "low"],
        ),
        (
            "fix status",
            &subscription,
            json!({"fixStatus": "NoFixAvailable"}),
            vec!["unfixed"],
        ),
        (
            "os version",
            &subscription,
            json!({"osVersions": ["ubuntu_linux_22.04"]}),
            vec!["other-dsa"],
        ),
        (
            "image digests",
            &subscription,
            json!({"imageDigests": [w.api.digest]}),
            vec!["api-openssl", "pypi"],
        ),
        (
            "repository",
            &repository,
            json!({}),
            vec!["api-openssl", "pypi"],
        ),
        (
            "combined",
            &subscription,
            json!({"packages": [{"name": "openssl"}], "severities": ["High"], "osVersions": ["debian_linux_12"]}),
            vec!["dsa"],
        ),
        (
            "nothing",
            &subscription,
            json!({"advisoryIds": ["CVE-1999-0001"]}),
            vec![],
        ),
    ];
    let web_health = image_health(app, &w.web.digest).await;
    assert_eq!(web_health["properties"]["health"]["code"], "Unhealthy");
    for (label, scope, criteria, expected) in cases {
        let (status, body) = put_exemption(
            app,
            scope,
            "case",
            json!({"criteria": criteria, "category": "Waiver", "justification": label}),
        )
        .await;
        assert!(status == 201, "{label}: {body}");
        let exempt = exempt_names(app).await;
        let expected: BTreeSet<&str> = expected.into_iter().collect();
        assert_eq!(w.labels_of(&exempt), expected, "{label}");
        assert_eq!(
            body["properties"]["exemptFindings"],
            expected.len(),
            "{label}: {body}"
        );
        assert_eq!(
            body.pointer("/properties/warnings").is_some(),
            expected.is_empty(),
            "{label}: a warning exactly when nothing matches: {body}"
        );
        // The web image is Healthy exactly when every present finding of it is exempt.
        let web = image_health(app, &w.web.digest).await;
        let all_web = ["dsa", "low", "unfixed"]
            .iter()
            .all(|l| expected.contains(l));
        assert_eq!(
            web["properties"]["health"]["code"],
            if all_web { "Healthy" } else { "Unhealthy" },
            "{label}: {web}"
        );
        assert_eq!(
            stored_health(app, &w.web).await,
            if all_web { "Healthy" } else { "Unhealthy" },
            "{label}: the stored health"
        );
        assert_eq!(delete_exemption(app, scope, "case").await, 200, "{label}");
        assert!(exempt_names(app).await.is_empty(), "{label}: deleted");
    }
    // The stored health follows too (what the registry assessment counts).
    assert_eq!(stored_health(app, &w.web).await, "Unhealthy");
}

async fn image_health_follows_and_expiry_makes_findings_count_again(backend: Backend) {
    let w = world(backend).await;
    let app = &w.app;
    let scope = format!("{}/repositories/team/web", registry_scope("reg", "rg"));
    let expires = Timestamp::from_micros(Timestamp::now().micros() + 3_600_000_000);
    let (status, body) = put_exemption(
        app,
        &scope,
        "for-an-hour",
        json!({"category": "Waiver", "justification": "release freeze", "expiresOn": expires.rfc3339()}),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["properties"]["expiresOn"], expires.rfc3339());
    let image = image_health(app, &w.web.digest).await;
    assert_eq!(image["properties"]["health"]["code"], "Healthy", "{image}");
    assert_eq!(image["properties"]["findings"]["exempt"], 3, "{image}");
    let stored = || stored_health(app, &w.web);
    assert_eq!(stored().await, "Healthy");

    // Not yet due: nothing expires.
    let now = Timestamp::now().micros();
    assert_eq!(
        app.db(move |c| crowsnest::jobs::exemptions::expire_due(c, now))
            .await,
        0
    );
    // An hour and a minute later.
    let later = now + 3_660_000_000;
    assert_eq!(
        app.db(move |c| crowsnest::jobs::exemptions::expire_due(c, later))
            .await,
        1
    );
    assert!(exempt_names(app).await.is_empty());
    let image = image_health(app, &w.web.digest).await;
    assert_eq!(
        image["properties"]["health"]["code"], "Unhealthy",
        "{image}"
    );
    assert_eq!(stored().await, "Unhealthy");
    let reader = app.token(SUB, Role::Reader);
    let (status, expired) = app
        .get_json(&exemption_path(&scope, "for-an-hour"), &reader)
        .await;
    assert_eq!(status, 200, "kept: {expired}");
    assert_eq!(expired["properties"]["state"], "Expired");
    let (_, history) = app
        .get_json(
            &format!(
                "/{scope}/providers/Microsoft.Security/exemptions/for-an-hour/history?{OWN_API}"
            ),
            &reader,
        )
        .await;
    let last = history["value"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["action"], "Expired");
    assert_eq!(last["actor"], "crowsnest");
    assert_eq!(last["before"]["properties"]["state"], "Active");
    assert_eq!(last["after"]["properties"]["state"], "Expired");
    // Swept once.
    assert_eq!(
        app.db(move |c| crowsnest::jobs::exemptions::expire_due(c, later))
            .await,
        0
    );
}

async fn the_sweep_expires_exemptions_within_its_interval(backend: Backend) {
    let app = spawn_app_with(backend, |s| {
        s.jobs.exemptions.sweep = Duration::from_millis(200);
    })
    .await;
    let registry = app.seed_registry(SUB, "rg", "reg").await;
    let image = app
        .seed_image(&registry, "team/web", &digest_of("sweep"))
        .await;
    app.seed_findings(vec![finding_row(
        &registry,
        &image,
        "CVE-2024-0001",
        "zlib",
    )])
    .await;
    let expires = Timestamp::from_micros(Timestamp::now().micros() + 1_500_000);
    let (status, body) = put_exemption(
        &app,
        &format!("subscriptions/{SUB}"),
        "brief",
        json!({"category": "Waiver", "justification": "a moment", "expiresOn": expires.rfc3339()}),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(exempt_names(&app).await.len(), 1);
    wait_for("the expiry sweep", Duration::from_secs(15), || async {
        exempt_names(&app).await.is_empty().then_some(())
    })
    .await;
    let health = image_health(&app, &image.digest).await;
    assert_eq!(
        health["properties"]["health"]["code"], "Unhealthy",
        "{health}"
    );
}

async fn findings_of_an_image_pushed_later_are_born_exempt(backend: Backend) {
    let app = spawn_app(backend).await;
    let mut advisory = gnutls_advisory("DSA-9999-1");
    advisory["aliases"] = json!(["CVE-2026-10001"]);
    import(&app, &advisory).await;
    import(&app, &gnutls_advisory("TEST-GNUTLS-2")).await;
    let registry = notifying_registry(&app, "born").await;
    let (status, body) = app
        .put_json(
            &exemption_path(&format!("subscriptions/{PUSH_SUB}"), "gnutls-cve"),
            &app.token(PUSH_SUB, Role::Contributor),
            &json!({"properties": {
                "criteria": {"advisoryIds": ["CVE-2026-10001"]},
                "category": "Mitigated",
                "justification": "TLS is terminated at the ingress",
            }}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    assert!(
        body["properties"]["warnings"].is_array(),
        "nothing yet: {body}"
    );

    let pushed = push_image(&registry, "team/web", Some("v1"), &vulnerable_debian()).await;
    let scan = wait_for_scan(&app, "&trigger=Push", "Succeeded").await;
    assert_eq!(scan["properties"]["digest"], pushed.manifest_digest);
    let (status, listed) = app
        .get_json(
            &format!(
                "/subscriptions/{PUSH_SUB}/providers/Microsoft.Security/subAssessments?{SUB_API}"
            ),
            &app.token(PUSH_SUB, Role::Reader),
        )
        .await;
    assert_eq!(status, 200, "{listed}");
    let by_id = |id: &str| {
        listed["value"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["properties"]["id"] == id)
            .cloned()
            .unwrap_or_else(|| panic!("{id} in {listed}"))
    };
    assert_eq!(
        by_id("DSA-9999-1")["properties"]["status"]["cause"],
        "Exempt"
    );
    assert_eq!(
        by_id("TEST-GNUTLS-2")["properties"]["status"]["cause"],
        "Vulnerable"
    );
    // One finding counts: the registry assessment counts one, not two.
    let assessment = registry_assessment(&app, "born").await;
    assert_eq!(
        assessment["properties"]["status"]["code"], "Unhealthy",
        "{assessment}"
    );
    let text = assessment.to_string();
    assert!(
        !text.contains("DSA-9999-1"),
        "exempt findings are not in the assessment: {text}"
    );

    // With the other finding exempt too, the image is no longer Unhealthy.
    let package = by_id("TEST-GNUTLS-2")["properties"]["additionalData"]["packageName"].clone();
    let (status, body) = app
        .put_json(
            &exemption_path(&format!("subscriptions/{PUSH_SUB}"), "gnutls-test"),
            &app.token(PUSH_SUB, Role::Contributor),
            &json!({"properties": {
                "criteria": {"advisoryIds": ["TEST-GNUTLS-2"], "packages": [{"name": package}]},
                "category": "Waiver",
                "justification": "accepted",
            }}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let (status, image) = app
        .get_json(
            &format!(
                "/subscriptions/{PUSH_SUB}/providers/Microsoft.Security/images/{}?{OWN_API}",
                pushed.manifest_digest
            ),
            &app.token(PUSH_SUB, Role::Reader),
        )
        .await;
    assert_eq!(status, 200, "{image}");
    assert_ne!(
        image["properties"]["health"]["code"], "Unhealthy",
        "{image}"
    );
    assert_eq!(image["properties"]["findings"]["exempt"], 2, "{image}");
    let assessment = registry_assessment(&app, "born").await;
    assert_ne!(
        assessment["properties"]["status"]["code"], "Unhealthy",
        "{assessment}"
    );
}

async fn bad_exemptions_and_unauthorized_callers_get_a_precise_cloud_error(backend: Backend) {
    let w = world(backend).await;
    let app = &w.app;
    let scope = format!("subscriptions/{SUB}");
    let good = json!({"category": "Waiver", "justification": "why"});
    let cases: Vec<(&str, Value, &str)> = vec![
        (
            "no justification",
            json!({"category": "Waiver"}),
            "properties.justification",
        ),
        (
            "blank justification",
            json!({"category": "Waiver", "justification": "  "}),
            "properties.justification",
        ),
        (
            "bad category",
            json!({"category": "Ignore", "justification": "x"}),
            "properties.category",
        ),
        (
            "unknown criterion",
            json!({"category": "Waiver", "justification": "x", "criteria": {"advisoryId": ["CVE-1"]}}),
            "properties.criteria",
        ),
        (
            "bad range",
            json!({"category": "Waiver", "justification": "x", "criteria": {"packages": [{"name": "a", "versionRange": "about 3"}]}}),
            "properties.criteria.packages[0].versionRange",
        ),
        (
            "bad digest",
            json!({"category": "Waiver", "justification": "x", "criteria": {"imageDigests": ["sha256:1"]}}),
            "properties.criteria.imageDigests[0]",
        ),
        (
            "bad severity",
            json!({"category": "Waiver", "justification": "x", "criteria": {"severities": ["Severe"]}}),
            "properties.criteria.severities[0]",
        ),
        (
            "past expiry",
            json!({"category": "Waiver", "justification": "x", "expiresOn": "2020-01-01T00:00:00Z"}),
            "properties.expiresOn",
        ),
        (
            "bad expiry",
            json!({"category": "Waiver", "justification": "x", "expiresOn": "next week"}),
            "properties.expiresOn",
        ),
        ("not an object", json!("waive it"), "properties"),
    ];
    for (label, properties, target) in cases {
        let (status, body) = put_exemption(app, &scope, "bad", properties).await;
        assert_cloud_error(status, &body, 400, "InvalidParameter");
        assert_eq!(body["error"]["target"], target, "{label}: {body}");
    }
    let contributor = app.token(SUB, Role::Contributor);
    for (path, code) in [
        (exemption_path("tenants/x", "bad"), "InvalidScope"),
        (
            exemption_path(
                &format!(
                    "{}/repositories/team/web/images/sha256:zz",
                    registry_scope("reg", "rg")
                ),
                "bad",
            ),
            "InvalidScope",
        ),
        (exemption_path(&scope, ".hidden"), "InvalidResourceName"),
    ] {
        let (status, body) = app
            .put_json(&path, &contributor, &json!({"properties": good}))
            .await;
        assert_cloud_error(status, &body, 400, code);
    }
    let (status, body) = app
        .put_json(
            &format!("/{scope}/providers/Microsoft.Security/exemptions/x?api-version=2019-01-01"),
            &contributor,
            &json!({"properties": good}),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    // Readers read, never write; another subscription's token does neither.
    let (status, body) = app
        .put_json(
            &exemption_path(&scope, "x"),
            &app.token(SUB, Role::Reader),
            &json!({"properties": good}),
        )
        .await;
    assert_cloud_error(status, &body, 403, "AuthorizationFailed");
    let (status, _) = put_exemption(app, &scope, "x", good.clone()).await;
    assert_eq!(status, 201);
    let stranger = app.token("sub-other", Role::Admin);
    let (status, body) = app.get_json(&exemption_path(&scope, "x"), &stranger).await;
    assert_cloud_error(status, &body, 403, "AuthorizationFailed");
    let (status, body) = app
        .put_json(
            &exemption_path(&scope, "x"),
            &stranger,
            &json!({"properties": good}),
        )
        .await;
    assert_cloud_error(status, &body, 403, "AuthorizationFailed");
    let (status, body) = app
        .get_json(
            &format!("/{scope}/providers/Microsoft.Security/exemptions?{OWN_API}"),
            &stranger,
        )
        .await;
    assert_cloud_error(status, &body, 403, "AuthorizationFailed");
    let (status, body) = app
        .get_json(
            &exemption_path(&scope, "missing"),
            &app.token(SUB, Role::Reader),
        )
        .await;
    assert_cloud_error(status, &body, 404, "ExemptionNotFound");
}

async fn the_ci_gate_ignores_findings_the_registrys_exemptions_cover(backend: Backend) {
    let app = spawn_app(backend).await;
    import(&app, &gnutls_advisory("TEST-GNUTLS-9")).await;
    let registry = TestRegistry::start(RegistryAuth::None);
    push_image(&registry, "team/app", Some("1.0"), &vulnerable_debian()).await;
    let reference = format!("{}/team/app:1.0", registry.host());
    app.seed_registry(SUB, "rg", "reg").await;
    let registry_id = registry_scope("reg", "rg");
    let gate = ["--insecure", "--fail-on", "Low"];

    let (code, out, stderr) =
        crate::scan::scan(&app, &[&[reference.as_str()][..], &gate[..]].concat());
    assert_eq!(code, 1, "not exempt yet: {stderr}");
    assert!(
        out["images"][0]["findings"][0]["exemptBy"].is_null(),
        "{out}"
    );

    let (status, body) = put_exemption(
        &app,
        &format!("{registry_id}/repositories/team/app"),
        "gnutls",
        json!({"criteria": {"advisoryIds": ["TEST-GNUTLS-9"]}, "category": "Mitigated", "justification": "not reachable"}),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let with_registry = [reference.as_str(), "--registry-id", &registry_id];
    let (code, out, stderr) = crate::scan::scan(&app, &[&with_registry[..], &gate[..]].concat());
    assert_eq!(
        code, 0,
        "the exempt finding does not fail the gate: {stderr}"
    );
    let finding = &out["images"][0]["findings"][0];
    assert_eq!(finding["advisoryId"], "TEST-GNUTLS-9");
    assert!(
        finding["exemptBy"]
            .as_str()
            .unwrap()
            .ends_with("/exemptions/gnutls"),
        "{finding}"
    );
    // Another repository of the registry is not reached by it.
    push_image(&registry, "team/other", Some("1.0"), &vulnerable_debian()).await;
    let other = format!("{}/team/other:1.0", registry.host());
    let (code, _, stderr) = crate::scan::scan(
        &app,
        &[
            &[other.as_str(), "--registry-id", &registry_id][..],
            &gate[..],
        ]
        .concat(),
    );
    assert_eq!(code, 1, "{stderr}");
    // A registry that is not connected is an error, not a silent pass.
    let missing = registry_scope("nope", "rg");
    let (code, _, stderr) = crate::scan::scan(
        &app,
        &[
            &[reference.as_str(), "--registry-id", &missing][..],
            &gate[..],
        ]
        .concat(),
    );
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("registry-id"), "{stderr}");
}
