//! Azure Resource Graph (`POST /providers/Microsoft.ResourceGraph/resources`): queries over
//! seeded findings and over a real scan's, compared with what the Sub-Assessments, Assessments
//! and Registries APIs show for the same data; refused queries; subscription isolation; paging.

use std::collections::{BTreeMap, BTreeSet};

use crowsnest::api::resource_graph::{FINDING_BATCH, Tables};
use crowsnest::domain::kql::{Constraint, Scan, Source, Test};
use crowsnest::domain::{Role, Severity};
use crowsnest::store::findings::FindingRow;
use serde_json::{Value, json};

use crate::backend_tests;
use crate::support::app::*;
use crate::support::database::Backend;
use crate::support::fixtures::vulnerable_debian;
use crate::support::registry::client::push_image;
use crate::support::registry::{RegistryAuth, TestRegistry};
use crate::support::rows::{digest_of, finding_row};
use crate::support::scans::{self, SUB, connect, gnutls_advisory, import, scan_succeeded};

backend_tests!(
    requests_are_checked_before_the_query_runs,
    the_source_reads_what_the_conditions_and_subscriptions_allow,
    the_source_reads_every_row_in_batches,
    queries_return_the_rows_they_name,
    the_issues_two_queries_work_as_printed,
    rows_are_what_the_other_apis_show,
    bad_queries_are_refused_with_the_fault_and_its_position,
    a_query_sees_only_its_subscriptions,
    pages_follow_skip_tokens,
    table_format_has_typed_columns,
    plans_are_rows_for_those_who_may_read_them,
    status_only_rows_count_as_the_full_rows_do,
);

const ARG: &str = "/providers/Microsoft.ResourceGraph/resources?api-version=2021-03-01";
/// The sub-assessments of the container registry key (one per finding); the MDVM key shows the
/// same findings once per CVE.
const SUB_ROWS: &str = "securityresources | where type == \"microsoft.security/assessments/subassessments\" and assessmentKey == \"dbd0cb49-b563-45e7-9724-889e799fa648\"";
const MDVM_KEY: &str = "c0b7cfc6-3172-465a-b378-53c7ff2cc0d5";

async fn query(app: &TestApp, token: &str, body: Value) -> (u16, Value) {
    app.post_json(ARG, token, &body).await
}

/// The rows of a query over `subscriptions` (asserting 200 and a complete first page).
async fn rows(app: &TestApp, token: &str, subscriptions: &[&str], text: &str) -> Vec<Value> {
    let (status, body) = query(
        app,
        token,
        json!({"subscriptions": subscriptions, "query": text, "options": {"$top": 1000}}),
    )
    .await;
    assert_eq!(status, 200, "{text}: {body}");
    assert_eq!(body["resultTruncated"], "false", "{text}: {body}");
    assert_eq!(body["count"], body["totalRecords"], "{text}: {body}");
    assert!(body.get("$skipToken").is_none(), "{text}: {body}");
    body["data"].as_array().unwrap().clone()
}

fn names(rows: &[Value]) -> BTreeSet<String> {
    rows.iter()
        .map(|r| r["name"].as_str().unwrap().to_owned())
        .collect()
}

fn with(mut row: FindingRow, severity: Severity, resolved: bool) -> FindingRow {
    row.severity = severity.as_str().to_owned();
    row.severity_rank = severity.rank();
    if resolved {
        row.resolved_at = Some(row.last_seen);
    }
    row
}

/// Seeded findings in `sub-1`: registry `reg` (rg) with team/app, registry `reg2` (rg2) with
/// other/app. Returns the findings by a short label.
async fn seed(app: &TestApp) -> BTreeMap<&'static str, FindingRow> {
    let reg = app.seed_registry("sub-1", "rg", "reg").await;
    let reg2 = app.seed_registry("sub-1", "rg2", "reg2").await;
    let app_image = app.seed_image(&reg, "team/app", &digest_of("app")).await;
    let other = app
        .seed_image(&reg2, "other/app", &digest_of("other"))
        .await;
    let found = BTreeMap::from([
        (
            "high",
            with(
                finding_row(&reg, &app_image, "CVE-2024-0001", "openssl"),
                Severity::High,
                false,
            ),
        ),
        (
            "critical",
            with(
                finding_row(&reg, &app_image, "CVE-2024-0002", "zlib"),
                Severity::Critical,
                false,
            ),
        ),
        (
            "low",
            with(
                finding_row(&reg, &app_image, "CVE-2024-0003", "tar"),
                Severity::Low,
                false,
            ),
        ),
        (
            "resolved",
            with(
                finding_row(&reg, &app_image, "CVE-2024-0004", "curl"),
                Severity::Medium,
                true,
            ),
        ),
        (
            "other",
            with(
                finding_row(&reg2, &other, "CVE-2024-0005", "libxml2"),
                Severity::Medium,
                false,
            ),
        ),
    ]);
    app.seed_findings(found.values().cloned().collect()).await;
    found
}

async fn requests_are_checked_before_the_query_runs(backend: Backend) {
    let app = spawn_app(backend).await;
    let token = app.token("sub-1", Role::Reader);
    let body = json!({"subscriptions": ["sub-1"], "query": "securityresources | take 1"});
    let post = |path: &'static str, body: Value| {
        let (app, token) = (&app, &token);
        async move { app.post_json(path, token, &body).await }
    };
    let (status, error) = post("/providers/Microsoft.ResourceGraph/resources", body.clone()).await;
    assert_cloud_error(status, &error, 400, "MissingApiVersionParameter");
    let (status, error) = post(
        "/providers/Microsoft.ResourceGraph/resources?api-version=2019-04-01",
        body.clone(),
    )
    .await;
    assert_cloud_error(status, &error, 400, "InvalidApiVersionParameter");
    for options in [
        json!({"$top": 0}),
        json!({"$top": 1001}),
        json!({"$skip": -1}),
        json!({"$skipToken": "bm90IGEgdG9rZW4"}),
    ] {
        let mut request = body.clone();
        request["options"] = options.clone();
        let (status, error) = post(ARG, request).await;
        assert_cloud_error(status, &error, 400, "InvalidParameter");
        assert!(
            error["error"]["target"]
                .as_str()
                .unwrap()
                .starts_with("options."),
            "{options}: {error}"
        );
    }
    let mut request = body.clone();
    request["options"] = json!({"resultFormat": "csv"});
    let (status, error) = post(ARG, request).await;
    assert_eq!(status, 400, "{error}");
    let mut request = body.clone();
    request["managementGroups"] = json!(["mg1"]);
    let (status, error) = post(ARG, request).await;
    assert_cloud_error(status, &error, 400, "InvalidParameter");
    assert_eq!(error["error"]["target"], "managementGroups");
    let (status, error) = post(ARG, json!({"subscriptions": ["sub-1"]})).await;
    assert_eq!(status, 400, "a query is required: {error}");
    // No token, no answer.
    let response = app
        .client
        .post(app.url(ARG))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 401);
}

fn one_of(column: &str, values: &[&str]) -> Constraint {
    Constraint {
        column: column.split('.').map(str::to_owned).collect(),
        test: Test::OneOf {
            values: values.iter().map(|v| json!(v)).collect(),
            ignore_case: false,
        },
    }
}

/// The rows the tables give for `table` and `constraints`, seeing `visible` (None: everything).
async fn source_rows(
    app: &TestApp,
    visible: Option<&[&str]>,
    table: &'static str,
    constraints: Vec<Constraint>,
) -> Vec<Value> {
    let visible = visible.map(|subs| subs.iter().map(|s| (*s).to_owned()).collect());
    app.db(move |c| {
        let mut tables = Tables::new(
            c,
            visible,
            url::Url::parse("http://crowsnest.test/").unwrap(),
            true,
        );
        assert!(tables.has_table(table));
        let scan = Scan {
            constraints,
            reads: None,
        };
        let rows = tables.rows(table, &scan)?;
        rows.map(|row| row.map(Value::Object)).collect()
    })
    .await
}

/// The row source on its own (the engine tests every row again; these are what it is given).
async fn the_source_reads_what_the_conditions_and_subscriptions_allow(backend: Backend) {
    let app = spawn_app(backend).await;
    let found = seed(&app).await;
    let theirs = app.seed_registry("sub-2", "rg", "reg").await;
    let image = app
        .seed_image(&theirs, "team/app", &digest_of("theirs"))
        .await;
    app.seed_findings(vec![finding_row(
        &theirs,
        &image,
        "CVE-2024-0001",
        "openssl",
    )])
    .await;
    let name = |label: &str| found[label].id.clone();
    let sub_type = "microsoft.security/assessments/subassessments";
    let mine = Some(&["sub-1"][..]);

    let all = source_rows(&app, mine, "securityresources", vec![]).await;
    assert_eq!(
        all.len(),
        5 + 5 + 2 * 2 + 2,
        "five sub-assessments under each key (one CVE each), two registry assessments under each key, two plans"
    );
    assert!(all.iter().all(|r| r["subscriptionId"] == "sub-1"));
    let cases = [
        (
            vec![one_of("type", &[sub_type])],
            found
                .values()
                .map(|f| f.id.clone())
                .collect::<BTreeSet<_>>(),
        ),
        (
            vec![
                one_of("type", &["Microsoft.Security/assessments/subAssessments"]),
                one_of("properties.status.severity", &["High"]),
            ],
            [name("high"), name("critical")].into(),
        ),
        (
            vec![
                one_of("properties.additionalData.repositoryName", &["other/app"]),
                one_of("type", &[sub_type]),
            ],
            [name("other")].into(),
        ),
        (
            vec![
                one_of("type", &[sub_type]),
                one_of("resourceGroup", &["rg2"]),
            ],
            [name("other")].into(),
        ),
        (
            vec![
                one_of("type", &[sub_type]),
                one_of("properties.status.code", &["Healthy"]),
            ],
            [name("resolved")].into(),
        ),
        (
            vec![
                one_of("type", &[sub_type]),
                one_of("properties.id", &["CVE-2024-0003"]),
            ],
            [name("low")].into(),
        ),
        (
            vec![
                one_of("type", &[sub_type]),
                one_of("subscriptionId", &["sub-2"]),
            ],
            BTreeSet::new(),
        ),
        (
            vec![
                one_of("type", &[sub_type]),
                one_of("assessmentKey", &["not-a-key"]),
            ],
            BTreeSet::new(),
        ),
    ];
    for (mut constraints, expected) in cases {
        // The container registry key's rows: one per finding, named as the finding.
        constraints.push(one_of("assessmentKey", &[KEY]));
        let got = source_rows(&app, mine, "securityresources", constraints.clone()).await;
        assert_eq!(names(&got), expected, "{constraints:?}");
        assert_eq!(got.len(), expected.len(), "{constraints:?}");
        assert!(
            got.iter()
                .all(|r| r["type"] == sub_type && r["assessmentKey"] == KEY)
        );
    }
    let assessments = source_rows(
        &app,
        mine,
        "securityresources",
        vec![one_of("type", &["microsoft.security/assessments"])],
    )
    .await;
    let groups: BTreeSet<&str> = assessments
        .iter()
        .map(|r| r["resourceGroup"].as_str().unwrap())
        .collect();
    assert_eq!(groups, ["rg", "rg2"].into());
    let registries = source_rows(&app, mine, "resources", vec![]).await;
    assert_eq!(
        names(&registries),
        ["reg".to_owned(), "reg2".to_owned()].into()
    );

    // Another subscription's rows are never read, whatever the conditions say.
    let theirs_only = source_rows(
        &app,
        mine,
        "securityresources",
        vec![one_of("subscriptionId", &["sub-2"])],
    )
    .await;
    assert!(theirs_only.is_empty(), "{theirs_only:?}");
    assert!(
        source_rows(&app, Some(&[]), "resources", vec![])
            .await
            .is_empty()
    );
    let everything = source_rows(
        &app,
        None,
        "securityresources",
        vec![one_of("type", &[sub_type])],
    )
    .await;
    assert_eq!(
        everything.len(),
        2 * 6,
        "six findings, one CVE each, under two keys"
    );
}

async fn the_source_reads_every_row_in_batches(backend: Backend) {
    let app = spawn_app(backend).await;
    let registry = app.seed_registry("sub-1", "rg", "reg").await;
    let image = app.seed_image(&registry, "app", &digest_of("app")).await;
    let count = 2 * FINDING_BATCH as usize + 7;
    let seeded: Vec<_> = (0..count)
        .map(|i| finding_row(&registry, &image, &format!("CVE-2024-{i:05}"), "libc6"))
        .collect();
    let all: BTreeSet<String> = seeded.iter().map(|r| r.id.clone()).collect();
    app.seed_findings(seeded).await;
    let got = source_rows(
        &app,
        Some(&["sub-1"]),
        "securityresources",
        vec![
            one_of("type", &["microsoft.security/assessments/subassessments"]),
            one_of("assessmentKey", &[KEY]),
        ],
    )
    .await;
    assert_eq!(got.len(), count, "each finding once across three batches");
    assert_eq!(names(&got), all);
}

async fn queries_return_the_rows_they_name(backend: Backend) {
    let app = spawn_app(backend).await;
    let found = seed(&app).await;
    let token = app.token("sub-1", Role::Reader);
    let name = |label: &str| found[label].id.clone();
    let all: BTreeSet<String> = found.values().map(|f| f.id.clone()).collect();
    let cases: Vec<(String, BTreeSet<String>)> = vec![
        (format!("{SUB_ROWS} | project name"), all.clone()),
        // Resource Graph stores `type` lowercase: `==` is Kusto's case-sensitive equality, `=~`
        // matches any spelling.
        (
            "securityresources | where type == \"Microsoft.Security/assessments/subAssessments\" | project name".to_owned(),
            BTreeSet::new(),
        ),
        (
            format!("securityresources | where type =~ \"MICROSOFT.SECURITY/ASSESSMENTS/SUBASSESSMENTS\" and assessmentKey == \"{KEY}\" | project name"),
            all.clone(),
        ),
        (
            format!("{SUB_ROWS} | where properties.status.severity == \"High\" | project name"),
            [name("high"), name("critical")].into(),
        ),
        (
            format!("{SUB_ROWS} | where properties.additionalData.severity == \"Critical\" | project name"),
            [name("critical")].into(),
        ),
        (
            format!("{SUB_ROWS} | where properties.status.code == \"Healthy\" | project name"),
            [name("resolved")].into(),
        ),
        (
            format!("{SUB_ROWS} | where properties.additionalData.repositoryName == \"other/app\" | project name"),
            [name("other")].into(),
        ),
        (
            format!("{SUB_ROWS} | where resourceGroup == \"rg2\" | project name"),
            [name("other")].into(),
        ),
        (
            format!("{SUB_ROWS} | where properties.id in (\"CVE-2024-0003\", \"CVE-2024-0005\") | project name"),
            [name("low"), name("other")].into(),
        ),
        (
            format!(
                "{SUB_ROWS} | where properties.additionalData.imageDigest == \"{}\" and properties.status.severity == \"Low\" | project name",
                digest_of("app")
            ),
            [name("low")].into(),
        ),
        (
            format!("{SUB_ROWS} | where assessmentKey == \"{KEY}\" and properties.additionalData.packageName == \"zlib\" | project name"),
            [name("critical")].into(),
        ),
        (
            format!("{SUB_ROWS} | where timeGenerated > ago(1d) and properties.status.code == \"Unhealthy\" | project name"),
            [name("high"), name("critical"), name("low"), name("other")].into(),
        ),
        (
            format!("{SUB_ROWS} | where timeGenerated < ago(1d) | project name"),
            BTreeSet::new(),
        ),
        (
            format!("securityresources | where type == \"microsoft.security/assessments\" and name == \"{KEY}\" | project name = resourceGroup"),
            ["rg".to_owned(), "rg2".to_owned()].into(),
        ),
        (
            "resources | where type =~ \"Microsoft.ContainerRegistry/registries\" | project name".to_owned(),
            ["reg".to_owned(), "reg2".to_owned()].into(),
        ),
        (
            "resources | where type == \"microsoft.security/assessments/subassessments\" | project name".to_owned(),
            BTreeSet::new(),
        ),
    ];
    for (text, expected) in cases {
        let got = rows(&app, &token, &["sub-1"], &text).await;
        assert_eq!(names(&got), expected, "{text}");
        assert_eq!(got.len(), expected.len(), "each row once: {text}");
    }
}

/// The sub-assessments the Sub-Assessments API lists under `key` in the subscription, by name
/// (404 when Crowsnest does not serve that key).
async fn listed(
    app: &TestApp,
    token: &str,
    subscription: &str,
    key: &str,
) -> Option<BTreeMap<String, Value>> {
    let (status, body) = app
        .get_json(
            &format!("/subscriptions/{subscription}/providers/Microsoft.Security/assessments/{key}/subAssessments?{SUB_API}&$top=1000"),
            token,
        )
        .await;
    if status == 404 {
        return None;
    }
    assert_eq!(status, 200, "{body}");
    assert!(body.get("nextLink").is_none());
    Some(
        body["value"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| (v["name"].as_str().unwrap().to_owned(), v.clone()))
            .collect(),
    )
}

/// A real scan: the Debian bundle's gnutls advisory against the vulnerable Debian image.
async fn scanned(app: &TestApp) -> String {
    import(app, &gnutls_advisory("TEST-GNUTLS-ARG")).await;
    let registry = TestRegistry::start(RegistryAuth::None);
    let host = registry.host();
    connect(app, "arg", &host).await;
    let pushed = push_image(&registry, "team/app", Some("1.0"), &vulnerable_debian()).await;
    scan_succeeded(app, &format!("{host}/team/app:1.0")).await;
    // The registry harness stops with `registry`; everything needed is stored now.
    pushed.manifest_digest
}

async fn the_issues_two_queries_work_as_printed(backend: Backend) {
    let app = spawn_app(backend).await;
    scanned(&app).await;
    let found = seed(&app).await;
    let token = app.token("*", Role::Reader);
    let subscriptions = [SUB, "sub-1"];

    let first = r#"securityresources
| where type =~ "microsoft.security/assessments/subassessments" and properties.additionalData.assessedResourceType == "AzureContainerRegistryVulnerability"
| extend assessmentKey=extract(@"(?i)providers/Microsoft.Security/assessments/([^/]*)", 1, id)
| where assessmentKey == "c0b7cfc6-3172-465a-b378-53c7ff2cc0d5"
| extend timeGenerated = properties.timeGenerated
| where timeGenerated > ago(1h)"#;
    let got = rows(&app, &token, &subscriptions, first).await;
    let mut expected = BTreeMap::new();
    for subscription in subscriptions {
        let listed = listed(&app, &token, subscription, MDVM_KEY)
            .await
            .expect("the MDVM assessment key is served");
        expected.extend(listed);
    }
    assert!(!expected.is_empty());
    assert_eq!(names(&got), expected.keys().cloned().collect(), "{got:#?}");
    for row in &got {
        assert_eq!(
            row["properties"],
            expected[row["name"].as_str().unwrap()]["properties"]
        );
        assert_eq!(row["assessmentKey"], MDVM_KEY);
    }

    let second = r#"securityresources
| where type == "microsoft.security/assessments/subassessments"
| extend severity = tostring(properties.status.severity)
| summarize findings = count() by severity
| order by findings desc"#;
    let got = rows(&app, &token, &subscriptions, second).await;
    let mut expected: BTreeMap<String, u64> = BTreeMap::new();
    for subscription in subscriptions {
        for key in [KEY, MDVM_KEY] {
            for value in listed(&app, &token, subscription, key)
                .await
                .into_iter()
                .flat_map(|l| l.into_values())
            {
                *expected
                    .entry(
                        value["properties"]["status"]["severity"]
                            .as_str()
                            .unwrap()
                            .to_owned(),
                    )
                    .or_default() += 1;
            }
        }
    }
    let counted: BTreeMap<String, u64> = got
        .iter()
        .map(|r| {
            (
                r["severity"].as_str().unwrap().to_owned(),
                r["findings"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(counted, expected, "{got:#?}");
    assert!(
        expected.values().sum::<u64>() > found.len() as u64,
        "the scan's findings are counted too"
    );
    let order: Vec<u64> = got
        .iter()
        .map(|r| r["findings"].as_u64().unwrap())
        .collect();
    assert!(
        order.windows(2).all(|w| w[0] >= w[1]),
        "ordered by findings desc: {order:?}"
    );
}

async fn rows_are_what_the_other_apis_show(backend: Backend) {
    let app = spawn_app(backend).await;
    let digest = scanned(&app).await;
    let token = app.token(SUB, Role::Reader);

    // Every sub-assessment, exactly as the Sub-Assessments API renders it, in the row envelope.
    let got = rows(
        &app,
        &token,
        &[SUB],
        &format!("{SUB_ROWS} | where assessmentKey == \"{KEY}\""),
    )
    .await;
    let listed = listed(&app, &token, SUB, KEY).await.unwrap();
    assert!(!listed.is_empty(), "the scan found something");
    assert_eq!(names(&got), listed.keys().cloned().collect());
    for row in &got {
        let api = &listed[row["name"].as_str().unwrap()];
        assert_eq!(row["id"], api["id"]);
        assert_eq!(row["properties"], api["properties"]);
        assert_eq!(row["type"], "microsoft.security/assessments/subassessments");
        assert_eq!(row["subscriptionId"], SUB);
        assert_eq!(row["resourceGroup"], "rg");
        assert_eq!(row["assessmentKey"], KEY);
        assert_eq!(row["timeGenerated"], api["properties"]["timeGenerated"]);
        assert_eq!(row["location"], "global");
        for (key, empty) in [
            ("tenantId", json!("")),
            ("kind", json!("")),
            ("managedBy", json!("")),
        ] {
            assert_eq!(row[key], empty, "{key}");
        }
        for key in [
            "sku",
            "plan",
            "tags",
            "identity",
            "zones",
            "extendedLocation",
        ] {
            assert_eq!(row.get(key), Some(&Value::Null), "{key}");
        }
    }
    // A filter the database answers gives the same rows as the Sub-Assessments `$filter`.
    let filtered = rows(
        &app,
        &token,
        &[SUB],
        &format!("{SUB_ROWS} | where properties.additionalData.imageDigest == \"{digest}\" and properties.status.code == \"Unhealthy\" | project name"),
    )
    .await;
    let (status, body) = app
        .get_json(
            &format!("/subscriptions/{SUB}/providers/Microsoft.Security/subAssessments?{SUB_API}&$filter=properties/additionalData/imageDigest eq '{digest}' and properties/status/code eq 'Unhealthy'"),
            &token,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let by_filter: BTreeSet<String> = body["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["name"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(names(&filtered), by_filter);

    // The registry's assessment, as the Assessments API shows it.
    let assessment = scans::registry_assessment(&app, "arg").await;
    let got = rows(
        &app,
        &token,
        &[SUB],
        "securityresources | where type == \"microsoft.security/assessments\"",
    )
    .await;
    assert_eq!(got.len(), 2, "one per assessment key: {got:#?}");
    let got: Vec<Value> = got.into_iter().filter(|r| r["name"] == KEY).collect();
    assert_eq!(got.len(), 1, "{got:#?}");
    assert_eq!(got[0]["id"], assessment["id"]);
    assert_eq!(got[0]["properties"], assessment["properties"]);
    assert_eq!(got[0]["type"], "microsoft.security/assessments");

    // The registry, as the Registries API shows it.
    let (status, registry) = app
        .get_json(&format!("/{}?{OWN_API}", scans::registry_id("arg")), &token)
        .await;
    assert_eq!(status, 200, "{registry}");
    let got = rows(&app, &token, &[SUB], "resources").await;
    assert_eq!(got.len(), 1, "{got:#?}");
    assert_eq!(got[0]["id"], registry["id"]);
    assert_eq!(got[0]["name"], "arg");
    assert_eq!(got[0]["properties"], registry["properties"]);
    assert_eq!(got[0]["type"], "microsoft.containerregistry/registries");
}

async fn bad_queries_are_refused_with_the_fault_and_its_position(backend: Backend) {
    let app = spawn_app(backend).await;
    seed(&app).await;
    let token = app.token("sub-1", Role::Reader);
    // (query, detail code, line, position, token)
    let cases = [
        ("nosuchtable | take 1", "InvalidQuery", 1, 1, "nosuchtable"),
        (
            "securityresources\n| where type == == \"x\"",
            "ParserFailure",
            2,
            17,
            "==",
        ),
        (
            "securityresources | where tostrin(name) == \"x\"",
            "InvalidQuery",
            1,
            27,
            "tostrin",
        ),
        ("securityresources | take", "ParserFailure", 1, 25, ""),
    ];
    for (text, code, line, position, token_text) in cases {
        let (status, body) = query(
            &app,
            &token,
            json!({"subscriptions": ["sub-1"], "query": text}),
        )
        .await;
        assert_cloud_error(status, &body, 400, "BadRequest");
        let detail = &body["error"]["details"][0];
        assert_eq!(detail["code"], code, "{text}: {body}");
        assert_eq!(detail["line"], line, "{text}: {body}");
        assert_eq!(
            detail["characterPositionInLine"], position,
            "{text}: {body}"
        );
        assert_eq!(detail["token"], token_text, "{text}: {body}");
        assert!(detail["message"].as_str().unwrap().len() > 5, "{body}");
    }
}

async fn a_query_sees_only_its_subscriptions(backend: Backend) {
    let app = spawn_app(backend).await;
    let found = seed(&app).await;
    let theirs = app.seed_registry("sub-2", "rg", "reg").await;
    let image = app
        .seed_image(&theirs, "team/app", &digest_of("theirs"))
        .await;
    let their_finding = finding_row(&theirs, &image, "CVE-2024-0001", "openssl");
    app.seed_findings(vec![their_finding.clone()]).await;
    let ours: BTreeSet<String> = found.values().map(|f| f.id.clone()).collect();
    let text = format!("{SUB_ROWS} | project name");

    let mine = app.token("sub-1", Role::Reader);
    assert_eq!(
        names(&rows(&app, &mine, &["sub-1", "sub-2"], &text).await),
        ours
    );
    assert!(rows(&app, &mine, &["sub-2"], &text).await.is_empty());
    assert!(
        rows(
            &app,
            &mine,
            &["sub-1"],
            &format!("{SUB_ROWS} | where subscriptionId == \"sub-2\" | project name")
        )
        .await
        .is_empty()
    );
    assert!(rows(&app, &mine, &["sub-2"], "resources").await.is_empty());
    assert!(
        rows(
            &app,
            &mine,
            &["sub-2"],
            "securityresources | where type == \"microsoft.security/assessments\""
        )
        .await
        .is_empty()
    );
    // Without subscriptions in the request: the token's.
    let (status, body) = query(
        &app,
        &mine,
        json!({"query": text, "options": {"$top": 1000}}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(names(body["data"].as_array().unwrap()), ours);
    // A token for every subscription sees what the request names.
    let everyone = app.token("*", Role::Reader);
    assert_eq!(
        names(&rows(&app, &everyone, &["sub-2"], &text).await),
        [their_finding.id.clone()].into()
    );
    let both = rows(
        &app,
        &everyone,
        &["sub-1", "SUB-2"],
        "securityresources | summarize n = count() by subscriptionId",
    )
    .await;
    let counts: BTreeMap<String, u64> = both
        .iter()
        .map(|r| {
            (
                r["subscriptionId"].as_str().unwrap().to_owned(),
                r["n"].as_u64().unwrap(),
            )
        })
        .collect();
    // Under each of the two keys: five findings (one CVE each) and two registry assessments; one
    // finding and one assessment.
    assert_eq!(
        counts,
        BTreeMap::from([("sub-1".to_owned(), 14), ("sub-2".to_owned(), 4)])
    );
}

async fn pages_follow_skip_tokens(backend: Backend) {
    let app = spawn_app(backend).await;
    let registry = app.seed_registry("sub-1", "rg", "reg").await;
    let image = app.seed_image(&registry, "app", &digest_of("app")).await;
    let rows_seeded: Vec<_> = (0..250)
        .map(|i| finding_row(&registry, &image, &format!("CVE-2024-{i:05}"), "libc6"))
        .collect();
    let all: BTreeSet<String> = rows_seeded.iter().map(|r| r.id.clone()).collect();
    app.seed_findings(rows_seeded).await;
    let token = app.token("sub-1", Role::Reader);
    let text = format!("{SUB_ROWS} | project id, name");

    let mut seen = Vec::new();
    let mut options = json!({"$top": 100});
    let mut pages = 0;
    loop {
        let (status, body) = query(
            &app,
            &token,
            json!({"subscriptions": ["sub-1"], "query": text, "options": options}),
        )
        .await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["totalRecords"], 250);
        assert_eq!(body["resultTruncated"], "false");
        assert_eq!(body["facets"], json!([]));
        let data = body["data"].as_array().unwrap();
        assert_eq!(body["count"], data.len());
        seen.extend(data.iter().map(|r| r["name"].as_str().unwrap().to_owned()));
        pages += 1;
        match body.get("$skipToken") {
            Some(token) => options = json!({"$skipToken": token}),
            None => break,
        }
        assert!(pages < 10, "paging does not end");
    }
    assert_eq!(pages, 3);
    assert_eq!(seen.len(), 250, "each row once");
    assert_eq!(seen.iter().cloned().collect::<BTreeSet<_>>(), all);

    // The token belongs to its query and subscriptions.
    let (_, first) = query(
        &app,
        &token,
        json!({"subscriptions": ["sub-1"], "query": text, "options": {"$top": 10}}),
    )
    .await;
    let skip_token = first["$skipToken"].clone();
    // (Naming a subscription the token lacks changes nothing the query sees: the token holds then.)
    for (subscriptions, other) in [
        (json!(["sub-1"]), format!("{text} | take 200")),
        (json!(["sub-2"]), text.clone()),
    ] {
        let (status, body) = query(
            &app,
            &token,
            json!({"subscriptions": subscriptions, "query": other, "options": {"$skipToken": skip_token}}),
        )
        .await;
        assert_cloud_error(status, &body, 400, "InvalidParameter");
    }
    // `$skip` and `$top` with the token override its offset and size.
    let (status, body) = query(
        &app,
        &token,
        json!({"subscriptions": ["sub-1"], "query": text, "options": {"$skipToken": skip_token, "$skip": 245, "$top": 3}}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["count"], 3);
    assert_eq!(
        body["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["name"].as_str().unwrap().to_owned())
            .collect::<Vec<_>>(),
        seen[245..248].to_vec()
    );

    // Without an `id` column there is nothing to page by: the rest is dropped, and said so.
    let (status, body) = query(
        &app,
        &token,
        json!({"subscriptions": ["sub-1"], "query": format!("{SUB_ROWS} | project name")}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["count"], 100, "the default page");
    assert_eq!(body["totalRecords"], 250);
    assert_eq!(body["resultTruncated"], "true");
    assert!(body.get("$skipToken").is_none());
}

async fn table_format_has_typed_columns(backend: Backend) {
    let app = spawn_app(backend).await;
    let found = seed(&app).await;
    let token = app.token("sub-1", Role::Reader);
    let (status, body) = query(
        &app,
        &token,
        json!({
            "subscriptions": ["sub-1"],
            "query": format!("{SUB_ROWS} | where properties.status.code == \"Unhealthy\" | project id, name, properties, cvss = toreal(properties.additionalData.cvss['3.0'].base), patchable = tobool(properties.additionalData.patchable) | order by name asc"),
            "options": {"resultFormat": "table"},
        }),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["data"]["columns"],
        json!([
            {"name": "id", "type": "string"},
            {"name": "name", "type": "string"},
            {"name": "properties", "type": "object"},
            {"name": "cvss", "type": "number"},
            {"name": "patchable", "type": "boolean"},
        ])
    );
    let rows = body["data"]["rows"].as_array().unwrap();
    let mut open: Vec<&FindingRow> = found.values().filter(|f| f.resolved_at.is_none()).collect();
    open.sort_by(|a, b| a.id.cmp(&b.id));
    assert_eq!(rows.len(), open.len());
    assert_eq!(body["count"], open.len());
    for (row, finding) in rows.iter().zip(open) {
        assert_eq!(row[1], finding.id.as_str());
        assert_eq!(
            row[2]["additionalData"]["packageName"],
            finding.package_name.as_str()
        );
        assert_eq!(row[3], 8.1);
        assert_eq!(row[4], true);
    }
}

const PRICINGS_API: &str = "api-version=2024-01-01";

async fn plans_are_rows_for_those_who_may_read_them(backend: Backend) {
    let app = spawn_app(backend).await;
    seed(&app).await;
    app.seed_registry("sub-2", "rg", "reg").await;
    let (status, body) = app
        .put_json(
            &format!("/subscriptions/sub-1/providers/Microsoft.Security/pricings/Containers?{PRICINGS_API}"),
            &app.token("sub-1", Role::Admin),
            &json!({"properties": {"pricingTier": "Free"}}),
        )
        .await;
    assert_eq!(status, 201, "the plan's first row: {body}");
    let plans = "securityresources | where type =~ \"Microsoft.Security/pricings\"";

    // Each plan row is the Pricings API's resource in the row envelope.
    let contributor = app.token("sub-1", Role::Contributor);
    let got = rows(&app, &contributor, &["sub-1"], plans).await;
    let (status, listed) = app
        .get_json(
            &format!("/subscriptions/sub-1/providers/Microsoft.Security/pricings?{PRICINGS_API}"),
            &contributor,
        )
        .await;
    assert_eq!(status, 200, "{listed}");
    let listed = listed["value"].as_array().unwrap();
    assert_eq!(got.len(), listed.len(), "{got:#?}");
    for (row, plan) in got.iter().zip(listed) {
        assert_eq!(row["id"], plan["id"]);
        assert_eq!(row["name"], plan["name"]);
        assert_eq!(row["type"], "microsoft.security/pricings");
        assert_eq!(row["properties"], plan["properties"]);
        assert_eq!(row["subscriptionId"], "sub-1");
        assert_eq!(row["resourceGroup"], "");
    }
    assert!(got.iter().all(|r| r["properties"]["pricingTier"] == "Free"));

    // Every subscription a token for all of them names, on its own tier; the default is Standard.
    let everyone = app.token("*", Role::Contributor);
    let tiers = rows(
        &app,
        &everyone,
        &["sub-1", "sub-2"],
        &format!("{plans} | where name == \"Containers\" | project subscriptionId, tier = tostring(properties.pricingTier) | order by subscriptionId asc"),
    )
    .await;
    assert_eq!(
        json!(tiers),
        json!([
            {"subscriptionId": "sub-1", "tier": "Free"},
            {"subscriptionId": "sub-2", "tier": "Standard"},
        ])
    );
    // Without subscriptions in the request, a token for all of them sees those Crowsnest knows.
    let (status, body) = query(
        &app,
        &everyone,
        json!({"query": format!("{plans} | summarize n = count() by subscriptionId | order by subscriptionId asc")}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["data"],
        json!([{"subscriptionId": "sub-1", "n": 2}, {"subscriptionId": "sub-2", "n": 2}])
    );

    // A Reader may not read plans (as in the Pricings API): no rows, and no error.
    let reader = app.token("sub-1", Role::Reader);
    assert!(rows(&app, &reader, &["sub-1"], plans).await.is_empty());
    // Plans are in no resource group; a subscription the token lacks shows none.
    assert!(
        rows(
            &app,
            &contributor,
            &["sub-1"],
            &format!("{plans} | where resourceGroup == \"rg\"")
        )
        .await
        .is_empty()
    );
    assert!(rows(&app, &contributor, &["sub-2"], plans).await.is_empty());
}

async fn status_only_rows_count_as_the_full_rows_do(backend: Backend) {
    let app = spawn_app(backend).await;
    scanned(&app).await;
    seed(&app).await;
    // Exempt findings are NotApplicable rows.
    let (status, body) = app
        .put_json(
            &format!("/subscriptions/sub-1/providers/Microsoft.Security/exemptions/low?{OWN_API}"),
            &app.token("sub-1", Role::Contributor),
            &json!({"properties": {"criteria": {"severities": ["Low"]}, "category": "Waiver", "justification": "accepted"}}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let token = app.token("*", Role::Reader);
    let subscriptions = [SUB, "sub-1"];
    let columns = "type, subscriptionId, resourceGroup, location, tenantId, kind, assessmentKey, \
                   code = tostring(properties.status.code), \
                   severity = tostring(properties.status.severity), \
                   resourceType = tostring(properties.additionalData.assessedResourceType)";
    let order =
        "order by assessmentKey asc, subscriptionId asc, resourceGroup asc, code asc, severity asc";
    // This query reads only what status-only rows hold; the second reads `properties` whole, so
    // it gets the fully rendered rows.
    let lean = format!("securityresources | summarize n = count() by {columns} | {order}");
    let full = format!(
        "securityresources | extend whole = properties | summarize n = count() by {columns} | {order}"
    );
    let lean_rows = rows(&app, &token, &subscriptions, &lean).await;
    let full_rows = rows(&app, &token, &subscriptions, &full).await;
    assert_eq!(lean_rows, full_rows);
    // A condition the store applies to findings before counting them.
    let high = "where properties.status.severity == \"High\" and resourceGroup =~ \"RG\"";
    let lean_high =
        format!("securityresources | {high} | summarize n = count() by {columns} | {order}");
    let full_high = format!(
        "securityresources | {high} | extend whole = properties | summarize n = count() by {columns} | {order}"
    );
    let lean_high = rows(&app, &token, &subscriptions, &lean_high).await;
    assert!(!lean_high.is_empty() && lean_high.len() < lean_rows.len());
    assert_eq!(
        lean_high,
        rows(&app, &token, &subscriptions, &full_high).await
    );
    let codes: BTreeSet<&str> = lean_rows
        .iter()
        .filter(|r| r["type"] == "microsoft.security/assessments/subassessments")
        .map(|r| r["code"].as_str().unwrap())
        .collect();
    assert_eq!(
        codes,
        ["Healthy", "NotApplicable", "Unhealthy"].into(),
        "{lean_rows:#?}"
    );
    // The MDVM key counts a finding once per CVE, as its list does.
    let mdvm: u64 = lean_rows
        .iter()
        .filter(|r| r["assessmentKey"] == MDVM_KEY)
        .map(|r| r["n"].as_u64().unwrap())
        .sum();
    let mut listed_mdvm = 0;
    for subscription in subscriptions {
        listed_mdvm += listed(&app, &token, subscription, MDVM_KEY)
            .await
            .unwrap()
            .len() as u64;
    }
    assert_eq!(mdvm, listed_mdvm);
    let flat = format!(
        "securityresources | where type == \"microsoft.security/assessments/subassessments\" | project {columns}"
    );
    let (status, body) = query(
        &app,
        &token,
        json!({"subscriptions": subscriptions, "query": flat, "options": {"$top": 1000}}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["totalRecords"].as_u64().unwrap(),
        lean_rows
            .iter()
            .filter(|r| r["type"] == "microsoft.security/assessments/subassessments")
            .map(|r| r["n"].as_u64().unwrap())
            .sum::<u64>()
    );
}
