//! VEX import: real OpenVEX documents (go-vex's Alpine image document, the OpenVEX specification's
//! example) through the API and the CLI; statements about images and packages; supersession by
//! time; idempotent re-import; `affected` kept and shown; malformed documents refused by field.

use std::collections::BTreeSet;
use std::process::Command;

use crowsnest::domain::{Role, Severity};
use crowsnest::store::findings::FindingRow;
use serde_json::{Value, json};

use crate::backend_tests;
use crate::support::app::*;
use crate::support::database::Backend;
use crate::support::rows::finding_row;

backend_tests!(
    an_openvex_document_exempts_what_it_says_is_not_affected_or_fixed,
    a_later_statement_supersedes_and_affected_is_kept_and_shown,
    malformed_documents_are_refused_by_field_and_readers_cannot_import,
    the_cli_imports_a_document_as_the_api_does,
);

const SUB: &str = "sub-vex";
/// The image go-vex's document is about.
const ALPINE: &str = "sha256:124c7d2707904eea7431fffe91522a01e5a861a624ee31d03372cc1d138a3126";
const GO_VEX: &str = "tests/fixtures/openvex/go-vex-v0.2.0.json";
const SPEC_EXAMPLE: &str = "tests/fixtures/openvex/spec-example.json";

fn document(path: &str) -> Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

fn vex_path(scope: &str) -> String {
    format!("/{scope}/providers/Microsoft.Security/vex?{OWN_API}")
}

fn alpine_finding(
    registry: &crowsnest::store::registries::RegistryRow,
    image: &crowsnest::store::images::ImageRow,
    cve: &str,
    package: &str,
) -> FindingRow {
    let mut row = finding_row(registry, image, cve, package);
    row.ecosystem = "Alpine:v3.18".to_owned();
    row.category = "Alpine".to_owned();
    row.installed_version = "3.0.8-r3".to_owned();
    row.fixed_version = Some("3.0.10-r0".to_owned());
    row.severity = Severity::High.as_str().to_owned();
    row
}

struct Seeded {
    app: TestApp,
    /// Finding names by (advisory, package).
    names: Vec<((String, String), String)>,
}

impl Seeded {
    fn labels(&self, names: &BTreeSet<String>) -> BTreeSet<(String, String)> {
        self.names
            .iter()
            .filter(|(_, n)| names.contains(n))
            .map(|(l, _)| l.clone())
            .collect()
    }
}

/// An Alpine image with the digest go-vex's document names, one with another digest, and a Wolfi
/// image with git (the specification's example).
async fn seeded(backend: Backend) -> Seeded {
    let app = spawn_app(backend).await;
    let registry = app.seed_registry(SUB, "rg", "reg").await;
    let alpine = app.seed_image(&registry, "library/alpine", ALPINE).await;
    let other = app
        .seed_image(&registry, "library/alpine", &ALPINE.replace("124c", "ffff"))
        .await;
    let wolfi = app
        .seed_image(&registry, "team/tools", &ALPINE.replace("124c", "eeee"))
        .await;
    let mut rows = Vec::new();
    for cve in ["CVE-2023-3446", "CVE-2023-1255", "CVE-2023-5678"] {
        for package in ["libssl3", "libcrypto3"] {
            rows.push(alpine_finding(&registry, &alpine, cve, package));
        }
    }
    rows.push(alpine_finding(&registry, &alpine, "CVE-2023-3446", "musl"));
    rows.push(alpine_finding(
        &registry,
        &other,
        "CVE-2023-3446",
        "libssl3",
    ));
    let mut git = finding_row(&registry, &wolfi, "CVE-2023-12345", "git");
    git.ecosystem = "Wolfi".to_owned();
    git.installed_version = "2.39.0-r1".to_owned();
    rows.push(git);
    let names = rows
        .iter()
        .map(|r| {
            let label = if r.image_id == other.id {
                format!("{}@other", r.package_name)
            } else {
                r.package_name.clone()
            };
            ((r.advisory_id.clone(), label), r.id.clone())
        })
        .collect();
    app.seed_findings(rows).await;
    Seeded { app, names }
}

async fn import(app: &TestApp, scope: &str, doc: &Value) -> (u16, Value) {
    app.post_json(&vex_path(scope), &app.token(SUB, Role::Contributor), doc)
        .await
}

async fn exempt(app: &TestApp) -> BTreeSet<String> {
    let (status, body) = app
        .get_json(
            &format!(
                "/subscriptions/{SUB}/providers/Microsoft.Security/subAssessments?{SUB_API}&$top=1000&$filter=properties/status/cause%20eq%20'Exempt'"
            ),
            &app.token(SUB, Role::Reader),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    body["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap().to_owned())
        .collect()
}

fn pairs(list: &[(&str, &str)]) -> BTreeSet<(String, String)> {
    list.iter()
        .map(|(a, p)| (a.to_string(), p.to_string()))
        .collect()
}

async fn an_openvex_document_exempts_what_it_says_is_not_affected_or_fixed(backend: Backend) {
    let s = seeded(backend).await;
    let app = &s.app;
    let scope = format!("subscriptions/{SUB}");
    let (status, report) = import(app, &scope, &document(GO_VEX)).await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["statements"], 5, "{report}");
    assert_eq!(report["recorded"], 5);
    assert_eq!(report["exemptionsCreated"], 5);
    // The image's libssl3 and libcrypto3 only: not musl, not the image with another digest, not
    // a CVE the document does not name.
    let expected = pairs(&[
        ("CVE-2023-3446", "libssl3"),
        ("CVE-2023-3446", "libcrypto3"),
        ("CVE-2023-1255", "libssl3"),
        ("CVE-2023-1255", "libcrypto3"),
    ]);
    assert_eq!(s.labels(&exempt(app).await), expected);
    assert_eq!(report["exemptFindings"], 4, "{report}");

    // Each became a Mitigated exemption quoting the statement and naming the document.
    let exemption = report["exemptions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e.as_str().unwrap().to_owned())
        .find(|e| e.contains("/exemptions/vex-"))
        .unwrap();
    let (status, list) = app
        .get_json(
            &format!("/{scope}/providers/Microsoft.Security/exemptions?{OWN_API}"),
            &app.token(SUB, Role::Reader),
        )
        .await;
    assert_eq!(status, 200, "{list}");
    let listed = list["value"].as_array().unwrap();
    assert_eq!(listed.len(), 5, "{list}");
    let not_affected = listed
        .iter()
        .find(|e| e["properties"]["criteria"]["advisoryIds"][0] == "CVE-2023-3446")
        .unwrap();
    assert_eq!(not_affected["properties"]["category"], "Mitigated");
    let justification = not_affected["properties"]["justification"]
        .as_str()
        .unwrap();
    assert!(justification.contains("not_affected"), "{justification}");
    assert!(
        justification.contains("vulnerable_code_not_present"),
        "{justification}"
    );
    assert!(
        justification
            .contains("vex-d4e9020b6d0d26f131d535e055902dd6ccf3e2088bce3079a8cd3588a4b14c78"),
        "names the document: {justification}"
    );
    assert!(
        listed
            .iter()
            .any(|e| e["id"].as_str().unwrap().eq_ignore_ascii_case(&exemption)),
        "the report names the exemptions: {exemption}"
    );

    // Importing it again changes nothing and writes no history.
    let (status, again) = import(app, &scope, &document(GO_VEX)).await;
    assert_eq!(status, 200, "{again}");
    assert_eq!(again["unchanged"], 5, "{again}");
    assert_eq!(again["recorded"], 0);
    assert_eq!(again["exemptionsCreated"], 0);
    assert_eq!(again["exemptionsUpdated"], 0);
    assert_eq!(again["exemptFindings"], 4);
    let name = not_affected["name"].as_str().unwrap();
    let (_, history) = app
        .get_json(
            &format!("/{scope}/providers/Microsoft.Security/exemptions/{name}/history?{OWN_API}"),
            &app.token(SUB, Role::Reader),
        )
        .await;
    assert_eq!(history["value"].as_array().unwrap().len(), 1, "{history}");

    // The specification's example: a package product (pkg:apk/wolfi/git@2.39.0-r1), fixed.
    let (status, report) = import(app, &scope, &document(SPEC_EXAMPLE)).await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["statements"], 2, "two products: {report}");
    let mut expected = expected;
    expected.insert(("CVE-2023-12345".to_owned(), "git".to_owned()));
    assert_eq!(s.labels(&exempt(app).await), expected);

    // Statements are listed at their scope.
    let (status, statements) = app
        .get_json(&vex_path(&scope), &app.token(SUB, Role::Reader))
        .await;
    assert_eq!(status, 200, "{statements}");
    assert_eq!(
        statements["value"].as_array().unwrap().len(),
        7,
        "{statements}"
    );
}

async fn a_later_statement_supersedes_and_affected_is_kept_and_shown(backend: Backend) {
    let s = seeded(backend).await;
    let app = &s.app;
    let scope = format!(
        "subscriptions/{SUB}/resourceGroups/rg/providers/Microsoft.ContainerRegistry/registries/reg"
    );
    let product = json!({"@id": format!("pkg:oci/alpine@{}", ALPINE.replace(':', "%3A")),
                          "subcomponents": [{"@id": "pkg:apk/alpine/libssl3@3.0.8-r3"}]});
    let statement = |status: &str, timestamp: &str| {
        let mut st = json!({
            "vulnerability": {"name": "CVE-2023-5678", "aliases": ["GHSA-x"]},
            "products": [product.clone()],
            "status": status,
            "timestamp": timestamp,
        });
        if status == "not_affected" {
            st["justification"] = json!("vulnerable_code_not_in_execute_path");
        }
        if status == "affected" {
            st["action_statement"] = json!("Upgrade to 3.0.10-r0");
        }
        st
    };
    let doc = |id: &str, statements: Vec<Value>| {
        json!({
            "@context": "https://openvex.dev/ns/v0.2.0",
            "@id": format!("https://example.com/vex/{id}"),
            "author": "Platform Security <security@example.com>",
            "timestamp": "2026-11-01T00:00:00Z",
            "version": 1,
            "statements": statements,
        })
    };
    let (status, report) = import(
        app,
        &scope,
        &doc(
            "first",
            vec![statement("not_affected", "2026-11-01T00:00:00Z")],
        ),
    )
    .await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(
        s.labels(&exempt(app).await),
        pairs(&[("CVE-2023-5678", "libssl3")])
    );

    // A later document says affected: the exemption goes, the finding is Vulnerable again, and
    // the statement is shown on it.
    let (status, report) = import(
        app,
        &scope,
        &doc(
            "second",
            vec![statement("affected", "2026-11-20T00:00:00Z")],
        ),
    )
    .await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["exemptionsRemoved"], 1, "{report}");
    assert!(exempt(app).await.is_empty());
    let name = &s
        .names
        .iter()
        .find(|((a, p), _)| a == "CVE-2023-5678" && p == "libssl3")
        .unwrap()
        .1;
    let (status, finding) = app
        .get_json(
            &format!(
                "/subscriptions/{SUB}/providers/Microsoft.Security/assessments/{KEY}/subAssessments/{name}?{SUB_API}"
            ),
            &app.token(SUB, Role::Reader),
        )
        .await;
    assert_eq!(status, 200, "{finding}");
    assert_eq!(finding["properties"]["status"]["cause"], "Vulnerable");
    let vex = &finding["properties"]["additionalData"]["vex"];
    assert_eq!(vex[0]["status"], "affected", "{finding}");
    assert_eq!(vex[0]["actionStatement"], "Upgrade to 3.0.10-r0");
    assert_eq!(vex[0]["document"], "https://example.com/vex/second");
    // libcrypto3 is not among the subcomponents: nothing shown on it.
    let other = &s
        .names
        .iter()
        .find(|((a, p), _)| a == "CVE-2023-5678" && p == "libcrypto3")
        .unwrap()
        .1;
    let (_, other) = app
        .get_json(
            &format!(
                "/subscriptions/{SUB}/providers/Microsoft.Security/assessments/{KEY}/subAssessments/{other}?{SUB_API}"
            ),
            &app.token(SUB, Role::Reader),
        )
        .await;
    assert!(
        other["properties"]["additionalData"].get("vex").is_none(),
        "{other}"
    );

    // An older statement than the one kept changes nothing.
    let (status, report) = import(
        app,
        &scope,
        &doc(
            "stale",
            vec![statement("not_affected", "2026-10-01T00:00:00Z")],
        ),
    )
    .await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["superseded"], 1, "{report}");
    assert!(exempt(app).await.is_empty());
    // The latest (fixed) wins again.
    let (status, report) = import(
        app,
        &scope,
        &doc("third", vec![statement("fixed", "2026-12-01T00:00:00Z")]),
    )
    .await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["exemptionsCreated"], 1, "{report}");
    assert_eq!(
        s.labels(&exempt(app).await),
        pairs(&[("CVE-2023-5678", "libssl3")])
    );
}

/// A change that breaks a document.
type Edit = Box<dyn Fn(&mut Value)>;

async fn malformed_documents_are_refused_by_field_and_readers_cannot_import(backend: Backend) {
    let s = seeded(backend).await;
    let app = &s.app;
    let scope = format!("subscriptions/{SUB}");
    let good = document(SPEC_EXAMPLE);
    let cases: Vec<(&str, Edit, &str)> = vec![
        (
            "context",
            Box::new(|d| d["@context"] = json!("https://openvex.dev/ns/v0.0.1")),
            "@context",
        ),
        (
            "no author",
            Box::new(|d| {
                d.as_object_mut().unwrap().remove("author");
            }),
            "author",
        ),
        (
            "status",
            Box::new(|d| d["statements"][0]["status"] = json!("ok")),
            "statements[0].status",
        ),
        (
            "not_affected without why",
            Box::new(|d| d["statements"][0]["status"] = json!("not_affected")),
            "statements[0].justification",
        ),
        (
            "not a purl",
            Box::new(|d| d["statements"][0]["products"][0]["@id"] = json!("git")),
            "statements[0].products[0].@id",
        ),
        (
            "no statements",
            Box::new(|d| d["statements"] = json!([])),
            "statements",
        ),
    ];
    for (label, edit, target) in cases {
        let mut doc = good.clone();
        edit(&mut doc);
        let (status, body) = import(app, &scope, &doc).await;
        assert_cloud_error(status, &body, 400, "InvalidParameter");
        assert_eq!(body["error"]["target"], target, "{label}: {body}");
    }
    let (status, body) = app
        .post_json(&vex_path(&scope), &app.token(SUB, Role::Reader), &good)
        .await;
    assert_cloud_error(status, &body, 403, "AuthorizationFailed");
    let (status, body) = app
        .post_json(
            &vex_path(&scope),
            &app.token("sub-other", Role::Admin),
            &good,
        )
        .await;
    assert_cloud_error(status, &body, 403, "AuthorizationFailed");
    assert!(exempt(app).await.is_empty(), "nothing was imported");
}

async fn the_cli_imports_a_document_as_the_api_does(backend: Backend) {
    let s = seeded(backend).await;
    let app = &s.app;
    let run = |file: &str| {
        let out = Command::new(env!("CARGO_BIN_EXE_crowsnest"))
            .args([
                "vex",
                "import",
                "--scope",
                &format!("subscriptions/{SUB}"),
                file,
            ])
            .env("DATABASE_URL", app.database_url())
            .output()
            .unwrap();
        (
            out.status.code().unwrap(),
            serde_json::from_slice::<Value>(&out.stdout).unwrap_or(Value::Null),
            String::from_utf8(out.stderr).unwrap(),
        )
    };
    let (code, report, stderr) = run(GO_VEX);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(report["exemptionsCreated"], 5, "{report}");
    assert_eq!(s.labels(&exempt(app).await).len(), 4);
    let (code, report, _) = run(GO_VEX);
    assert_eq!(code, 0);
    assert_eq!(report["unchanged"], 5, "{report}");
    // A malformed document names its field and imports nothing.
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.json");
    let mut doc = document(SPEC_EXAMPLE);
    doc["statements"][0]["status"] = json!("maybe");
    std::fs::write(&bad, doc.to_string()).unwrap();
    let (code, _, stderr) = run(bad.to_str().unwrap());
    assert_ne!(code, 0);
    assert!(stderr.contains("statements[0].status"), "{stderr}");
}
