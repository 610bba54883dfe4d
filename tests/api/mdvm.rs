//! The MDVM assessment (`c0b7cfc6-…`) beside the container registry one (`dbd0cb49-…`), over the
//! findings of a real scan: an image pushed to a real registry, its push notification scanned,
//! advisories imported through the API and NVD's ratings loaded from the shared excerpt.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::path::Path;
use std::time::Duration;

use crowsnest::domain::Role;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::backend_tests;
use crate::support::app::*;
use crate::support::database::Backend;
use crate::support::fixtures::vulnerable_debian;
use crate::support::registry::TestRegistry;
use crate::support::registry::client::{PushedImage, push_image};
use crate::support::rows::{digest_of, finding_row};
use crate::support::scans::{SUB, import, notifying_registry, registry_id};
use crate::support::wait_for;

backend_tests!(
    a_scanned_vulnerability_has_every_field_of_the_documented_sample,
    both_keys_show_the_scan_with_counts_that_add_up,
    filters_orders_and_pages_work_on_the_mdvm_key,
    names_are_stored_with_findings_and_filled_in_for_earlier_ones,
);

const MDVM: &str = "c0b7cfc6-3172-465a-b378-53c7ff2cc0d5";
const SAMPLE: &str = "../shared/reference/azure/mdvm/mdvm-subassessment-sample.json";
const NVD_EXCERPT: &str = "../shared/fixtures/severity/nvd-cve-excerpt.json.gz";
const REGISTRY: &str = "mdvm";

/// A Debian advisory naming three CVEs, as a DSA does (all three are in the NVD excerpt).
const DSA: &str = "DSA-9001-1";
const DSA_CVES: [&str; 3] = ["CVE-2020-16302", "CVE-2021-4149", "CVE-2022-2007"];
/// An advisory of one CVE with its own vector and CWE ids, and no fix.
const ONE: &str = "TEST-GNUTLS-ONE";
const ONE_CVE: &str = "CVE-2022-4193";
/// An advisory that names no CVE.
const NO_CVE: &str = "TEST-GNUTLS-NOCVE";

fn gnutls_record(id: &str, aliases: &[&str], fixed: Option<&str>, extra: Value) -> Value {
    let mut events = vec![json!({"introduced": "0"})];
    events.extend(fixed.map(|f| json!({ "fixed": f })));
    let mut record = json!({
        "schema_version": "1.6.0",
        "id": id,
        "modified": "2026-11-02T03:04:05Z",
        "published": "2026-10-01T00:00:00Z",
        "aliases": aliases,
        "summary": format!("gnutls28 flaw {id}"),
        "references": [{"type": "ADVISORY", "url": format!("https://security.example.org/{id}")}],
        "affected": [{
            "package": {"ecosystem": "Debian:10", "name": "gnutls28"},
            "ranges": [{"type": "ECOSYSTEM", "events": events}]
        }]
    });
    if let (Value::Object(record), Value::Object(extra)) = (&mut record, extra) {
        record.extend(extra);
    }
    record
}

struct Scanned {
    registry: TestRegistry,
    pushed: PushedImage,
}

/// NVD's ratings, three advisories for gnutls28, and the vulnerable Debian image pushed to a real
/// registry whose notification Crowsnest scans.
async fn scanned(app: &TestApp) -> Scanned {
    let pool = app.pool.clone();
    tokio::task::spawn_blocking(move || {
        crowsnest::jobs::severity_sources::load_nvd(&pool, Path::new(NVD_EXCERPT))
    })
    .await
    .unwrap()
    .unwrap();
    import(
        app,
        &gnutls_record(DSA, &DSA_CVES, Some("3.6.7-4+deb10u3"), json!({})),
    )
    .await;
    import(
        app,
        &gnutls_record(
            ONE,
            &[ONE_CVE],
            None,
            json!({
                "severity": [{"type": "CVSS_V3", "score": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:N/A:H"}],
                "database_specific": {"cwe_ids": ["CWE-787", "CWE-125"]}
            }),
        ),
    )
    .await;
    import(
        app,
        &gnutls_record(NO_CVE, &[], Some("3.6.7-4+deb10u3"), json!({})),
    )
    .await;
    let registry = notifying_registry(app, REGISTRY).await;
    let pushed = push_image(&registry, "team/app", Some("v1"), &vulnerable_debian()).await;
    wait_for(
        "the pushed image's findings",
        Duration::from_secs(60),
        || async { (list(app, KEY, "").await.len() == 3).then_some(()) },
    )
    .await;
    Scanned { registry, pushed }
}

fn sub_assessments_path(key: &str) -> String {
    format!(
        "/{}/providers/Microsoft.Security/assessments/{key}/subAssessments",
        registry_id(REGISTRY)
    )
}

/// Every sub-assessment of `key`, following nextLinks; `query` is added to the first request.
async fn list(app: &TestApp, key: &str, query: &str) -> Vec<Value> {
    pages(app, key, query).await.into_iter().flatten().collect()
}

async fn pages(app: &TestApp, key: &str, query: &str) -> Vec<Vec<Value>> {
    let token = app.token(SUB, Role::Reader);
    let mut out = Vec::new();
    let mut next = Some(app.url(&format!("{}?{SUB_API}{query}", sub_assessments_path(key))));
    while let Some(url) = next {
        let response = app
            .client
            .get(&url)
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        let (status, body) = json_of(response).await;
        assert_eq!(status, 200, "{url}: {body}");
        out.push(body["value"].as_array().unwrap().clone());
        next = body.get("nextLink").map(|l| l.as_str().unwrap().to_owned());
        assert!(out.len() < 50, "paging does not end");
    }
    out
}

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

/// The fields that keep their documented empty form: the sample fills them, Crowsnest has no
/// honest value (README, "The MDVM assessment").
const EMPTY_FORM: [&str; 1] =
    ["$.additionalData.vulnerabilityDetails.exploitabilityAssessment.types"];

/// Every field of `sample` is in `ours` with the same JSON type, recursively (arrays by their
/// first item); a `null` in the sample stands for "an object or nothing". Returns the paths seen.
fn assert_same_shape(sample: &Value, ours: &Value, path: &str, seen: &mut Vec<String>) {
    seen.push(path.to_owned());
    if sample.is_null() {
        return;
    }
    assert_eq!(
        json_type(sample),
        json_type(ours),
        "{path}: the sample has {sample}, ours {ours}"
    );
    match (sample, ours) {
        (Value::Object(s), Value::Object(o)) => {
            for (key, value) in s {
                let child = format!("{path}.{key}");
                let mine = o
                    .get(key)
                    .unwrap_or_else(|| panic!("{child} is missing from {ours}"));
                assert_same_shape(value, mine, &child, seen);
            }
        }
        (Value::Array(s), Value::Array(o)) => {
            if let Some(first) = s.first() {
                if o.is_empty() && EMPTY_FORM.contains(&path) {
                    return;
                }
                assert!(!o.is_empty(), "{path} is empty in ours");
                assert_same_shape(first, &o[0], &format!("{path}[0]"), seen);
            }
        }
        _ => {}
    }
}

fn by_cve<'a>(listed: &'a [Value], cve: &str) -> &'a Value {
    listed
        .iter()
        .find(|s| s["properties"]["id"] == cve)
        .unwrap_or_else(|| panic!("no sub-assessment for {cve} in {listed:?}"))
}

async fn a_scanned_vulnerability_has_every_field_of_the_documented_sample(backend: Backend) {
    let app = spawn_app(backend).await;
    let Scanned { registry, pushed } = scanned(&app).await;
    let listed = list(&app, MDVM, "").await;
    let sample: Value = serde_json::from_str(&std::fs::read_to_string(SAMPLE).unwrap()).unwrap();
    let sample = &sample[0]["properties"];

    let one = by_cve(&listed, ONE_CVE);
    let mut seen = Vec::new();
    assert_same_shape(sample, &one["properties"], "$", &mut seen);
    assert!(seen.len() > 60, "every sample field was compared: {seen:?}");

    // The values come from the scan, the registry, the advisory and NVD.
    let p = &one["properties"];
    assert_eq!(p["displayName"], ONE_CVE);
    assert_eq!(p["status"]["code"], "Unhealthy");
    let finding = list(&app, KEY, &format!("&$filter=properties/id eq '{ONE}'")).await;
    assert_eq!(finding.len(), 1);
    let finding = &finding[0];
    assert_eq!(
        one["name"],
        Uuid::new_v5(
            &Uuid::parse_str(finding["name"].as_str().unwrap()).unwrap(),
            ONE_CVE.as_bytes()
        )
        .to_string()
    );
    assert_eq!(
        one["id"],
        format!(
            "{}/{}",
            sub_assessments_path(MDVM),
            one["name"].as_str().unwrap()
        )
    );
    let data = &p["additionalData"];
    assert_eq!(
        data["assessedResourceType"],
        "AzureContainerRegistryVulnerability"
    );
    let v = &data["vulnerabilityDetails"];
    assert_eq!(v["cveId"], ONE_CVE);
    assert_eq!(
        v["severity"],
        finding["properties"]["additionalData"]["severity"]
    );
    assert_eq!(
        v["weaknesses"]["cwe"],
        json!([{"id": "CWE-787"}, {"id": "CWE-125"}])
    );
    assert_eq!(v["lastModifiedDate"], "2026-11-02T03:04:05.000000Z");
    assert_eq!(v["publishedDate"], "2026-10-01T00:00:00.000000Z");
    assert_eq!(
        v["references"][0],
        json!({"title": ONE_CVE, "link": format!("https://nvd.nist.gov/vuln/detail/{ONE_CVE}")})
    );
    assert_eq!(
        v["references"][1]["link"],
        format!("https://security.example.org/{ONE}")
    );
    // NVD's vector of the CVE (the excerpt rates it with CVSS 3.x).
    let nvd = nvd_v3(ONE_CVE);
    assert_eq!(v["cvss"]["3.0"]["cvssVectorString"], nvd.0);
    assert_eq!(v["cvss"]["3.0"]["base"], nvd.1);
    assert_eq!(data["cvssV30Score"], nvd.1);
    assert_eq!(
        v["exploitabilityAssessment"],
        json!({"exploitStepsPublished": false, "exploitStepsVerified": false,
               "isInExploitKit": false, "exploitUris": [], "types": []})
    );
    let a = &data["artifactDetails"];
    assert_eq!(a["registryHost"], registry.host());
    assert_eq!(a["repositoryName"], "team/app");
    assert_eq!(a["digest"], pushed.manifest_digest);
    assert_eq!(a["tags"], json!(["v1"]));
    assert_eq!(a["artifactType"], "ContainerImage");
    assert_eq!(a["mediaType"], pushed.manifest_media_type.as_str());
    assert!(pushed.manifest_media_type.starts_with("application/vnd."));
    assert!(
        a["lastPushedToRegistryUTC"]
            .as_str()
            .unwrap()
            .starts_with("20"),
        "{a}"
    );
    let s = &data["softwareDetails"];
    assert_eq!(s["category"], "OS");
    assert_eq!(s["language"], "");
    assert_eq!(
        s["osDetails"],
        json!({"osPlatform": "linux", "osVersion": "debian_linux_10"})
    );
    assert_eq!(s["packageName"], "libgnutls30");
    assert_eq!(s["version"], "3.6.7-4+deb10u2");
    assert_eq!(s["fixedVersion"], "");
    assert_eq!(s["fixStatus"], "NoFixAvailable");
    assert_eq!(s["vendor"], "debian");
    assert_eq!(s["evidence"], json!(["var/lib/dpkg/status"]));

    // A fixed CVE of the DSA: its fix, and NVD's vector of that CVE, not another's.
    let dsa = by_cve(&listed, DSA_CVES[1]);
    let s = &dsa["properties"]["additionalData"]["softwareDetails"];
    assert_eq!(s["fixStatus"], "FixAvailable");
    assert_eq!(s["fixedVersion"], "3.6.7-4+deb10u3");
    let v = &dsa["properties"]["additionalData"]["vulnerabilityDetails"];
    let nvd = nvd_v3(DSA_CVES[1]);
    assert_eq!(v["cvss"]["3.0"]["cvssVectorString"], nvd.0);
    assert_eq!(v["weaknesses"]["cwe"], json!([]));
}

/// NVD's CVSS 3.x vector and base score of `cve`, read from the excerpt.
fn nvd_v3(cve: &str) -> (String, f64) {
    use std::io::Read;
    let mut text = String::new();
    flate2::read::GzDecoder::new(std::fs::File::open(NVD_EXCERPT).unwrap())
        .read_to_string(&mut text)
        .unwrap();
    let nvd: Value = serde_json::from_str(&text).unwrap();
    let record = nvd["vulnerabilities"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["cve"]["id"] == cve)
        .unwrap_or_else(|| panic!("{cve} is not in the excerpt"));
    let metrics = &record["cve"]["metrics"];
    let metric = ["cvssMetricV31", "cvssMetricV30"]
        .iter()
        .filter_map(|k| metrics[k].as_array())
        .flatten()
        .min_by_key(|m| m["type"] != "Primary")
        .unwrap_or_else(|| panic!("NVD has no 3.x metric for {cve}"));
    (
        metric["cvssData"]["vectorString"]
            .as_str()
            .unwrap()
            .to_owned(),
        metric["cvssData"]["baseScore"].as_f64().unwrap(),
    )
}

async fn both_keys_show_the_scan_with_counts_that_add_up(backend: Backend) {
    let app = spawn_app(backend).await;
    let _scanned = scanned(&app).await;
    let findings = list(&app, KEY, "").await;
    let vulnerabilities = list(&app, MDVM, "").await;

    // Σ over findings of max(1, its CVEs): 3 + 1 + 1.
    let expected: usize = findings
        .iter()
        .map(|f| {
            f["properties"]["additionalData"]["cve"]
                .as_array()
                .unwrap()
                .len()
                .max(1)
        })
        .sum();
    assert_eq!(expected, 5);
    assert_eq!(vulnerabilities.len(), expected);
    let names: HashSet<&str> = vulnerabilities
        .iter()
        .map(|v| v["name"].as_str().unwrap())
        .collect();
    assert_eq!(names.len(), vulnerabilities.len(), "names are distinct");

    // Each finding's CVEs, under names derived from the finding's.
    let mut shown: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for v in &vulnerabilities {
        let id = v["properties"]["id"].as_str().unwrap().to_owned();
        let finding = findings
            .iter()
            .find(|f| {
                Uuid::new_v5(
                    &Uuid::parse_str(f["name"].as_str().unwrap()).unwrap(),
                    id.as_bytes(),
                )
                .to_string()
                    == v["name"]
            })
            .unwrap_or_else(|| panic!("no finding is named for {v}"));
        shown
            .entry(finding["properties"]["id"].as_str().unwrap().to_owned())
            .or_default()
            .insert(id);
    }
    let set = |ids: &[&str]| ids.iter().map(|s| s.to_string()).collect::<BTreeSet<_>>();
    assert_eq!(shown[DSA], set(&DSA_CVES));
    assert_eq!(shown[ONE], set(&[ONE_CVE]));
    assert_eq!(shown[NO_CVE], set(&[NO_CVE]));

    // Each is read back by its name, as listed; a name of the other key is not one of this key.
    let token = app.token(SUB, Role::Reader);
    for v in &vulnerabilities {
        let (status, got) = app
            .get_json(
                &format!(
                    "{}/{}?{SUB_API}",
                    sub_assessments_path(MDVM),
                    v["name"].as_str().unwrap()
                ),
                &token,
            )
            .await;
        assert_eq!(status, 200, "{got}");
        assert_eq!(&got, v);
    }
    let finding_name = findings[0]["name"].as_str().unwrap();
    let (status, body) = app
        .get_json(
            &format!("{}/{finding_name}?{SUB_API}", sub_assessments_path(MDVM)),
            &token,
        )
        .await;
    assert_eq!(status, 404, "{body}");
    let (status, body) = app
        .get_json(
            &format!("{}/{finding_name}?{SUB_API}", sub_assessments_path(KEY)),
            &token,
        )
        .await;
    assert_eq!(status, 200, "{body}");

    // The list of all assessments' sub-assessments shows the container registry key's.
    let (status, all) = app
        .get_json(
            &format!("/subscriptions/{SUB}/providers/Microsoft.Security/subAssessments?{SUB_API}"),
            &token,
        )
        .await;
    assert_eq!(status, 200, "{all}");
    assert_eq!(all["value"].as_array().unwrap().len(), findings.len());

    // The registry's assessment under each key counts that key's sub-assessments.
    let assessment = |key: &'static str| {
        let app = &app;
        let token = token.clone();
        async move {
            let (status, body) = app
                .get_json(
                    &format!(
                        "/{}/providers/Microsoft.Security/assessments/{key}?api-version=2021-06-01",
                        registry_id(REGISTRY)
                    ),
                    &token,
                )
                .await;
            assert_eq!(status, 200, "{body}");
            body
        }
    };
    let container = assessment(KEY).await;
    let mdvm = assessment(MDVM).await;
    assert_eq!(container["properties"]["additionalData"]["findings"], "3");
    assert_eq!(mdvm["properties"]["additionalData"]["findings"], "5");
    assert_eq!(
        mdvm["properties"]["additionalData"]["patchableFindings"],
        "4"
    );
    assert_eq!(mdvm["properties"]["status"]["code"], "Unhealthy");
    assert_eq!(container["properties"]["status"]["code"], "Unhealthy");
    assert_eq!(mdvm["name"], MDVM);
    assert!(
        mdvm["properties"]["displayName"]
            .as_str()
            .unwrap()
            .contains("Microsoft Defender Vulnerability Management")
    );
    let severities = |key: &str, body: &Value| -> i64 {
        [
            "criticalFindings",
            "highFindings",
            "mediumFindings",
            "lowFindings",
        ]
        .iter()
        .map(|k| {
            body["properties"]["additionalData"][k]
                .as_str()
                .unwrap_or_else(|| panic!("{key}: {k}"))
                .parse::<i64>()
                .unwrap()
        })
        .sum()
    };
    assert_eq!(severities(KEY, &container), 3);
    assert_eq!(severities(MDVM, &mdvm), 5);

    // The assessments list shows both, per registry.
    let (status, listed) = app
        .get_json(
            &format!("/subscriptions/{SUB}/providers/Microsoft.Security/assessments?api-version=2021-06-01"),
            &token,
        )
        .await;
    assert_eq!(status, 200, "{listed}");
    let keys: Vec<&str> = listed["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["name"].as_str().unwrap())
        .collect();
    assert_eq!(keys, vec![KEY, MDVM]);
    assert_eq!(listed["value"][1], mdvm);
}

async fn filters_orders_and_pages_work_on_the_mdvm_key(backend: Backend) {
    let app = spawn_app(backend).await;
    let _scanned = scanned(&app).await;
    let everything = list(&app, MDVM, "").await;
    let names = |values: &[Value]| -> Vec<String> {
        values
            .iter()
            .map(|v| v["name"].as_str().unwrap().to_owned())
            .collect()
    };

    // One at a time and two at a time: the same sub-assessments in the same order, each once;
    // pages end inside the DSA's finding and resume there.
    for top in [1, 2, 3] {
        let paged = pages(&app, MDVM, &format!("&$top={top}")).await;
        assert!(paged.iter().all(|p| p.len() <= top));
        assert_eq!(paged.len(), 5usize.div_ceil(top), "pages of {top}");
        let flat: Vec<Value> = paged.into_iter().flatten().collect();
        assert_eq!(names(&flat), names(&everything), "$top={top}");
    }

    // Filters select findings; each is shown as its CVEs.
    let dsa = list(&app, MDVM, &format!("&$filter=properties/id eq '{DSA}'")).await;
    let ids: BTreeSet<&str> = dsa
        .iter()
        .map(|v| v["properties"]["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, DSA_CVES.into_iter().collect());
    let patchable = list(
        &app,
        MDVM,
        "&$filter=properties/additionalData/patchable eq false",
    )
    .await;
    assert_eq!(
        patchable
            .iter()
            .map(|v| v["properties"]["id"].as_str().unwrap())
            .collect::<Vec<_>>(),
        vec![ONE_CVE]
    );
    let paged = pages(
        &app,
        MDVM,
        &format!("&$filter=properties/id eq '{DSA}'&$top=2"),
    )
    .await;
    assert_eq!(paged.iter().map(Vec::len).collect::<Vec<_>>(), vec![2, 1]);

    // An order over findings, then CVEs, paged: the same set, each once.
    for order in [
        "properties/status/severity desc",
        "properties/additionalData/cvss",
    ] {
        let query = format!("&$orderby={order}");
        let whole = list(&app, MDVM, &query).await;
        let paged: Vec<Value> = pages(&app, MDVM, &format!("{query}&$top=2"))
            .await
            .into_iter()
            .flatten()
            .collect();
        assert_eq!(names(&paged), names(&whole), "{order}");
        let set: HashSet<String> = names(&whole).into_iter().collect();
        assert_eq!(set, names(&everything).into_iter().collect(), "{order}");
    }

    // A token of one key's list is not one of the other's.
    let token = app.token(SUB, Role::Reader);
    let (_, first) = app
        .get_json(
            &format!("{}?{SUB_API}&$top=1", sub_assessments_path(KEY)),
            &token,
        )
        .await;
    let next = first["nextLink"].as_str().unwrap();
    let skip = next.split("$skipToken=").nth(1).unwrap();
    let (status, body) = app
        .get_json(
            &format!(
                "{}?{SUB_API}&$top=1&$skipToken={skip}",
                sub_assessments_path(MDVM)
            ),
            &token,
        )
        .await;
    assert_eq!(status, 400, "{body}");
}

/// Links as a finding stores them in `cves`.
fn cve_links(cves: &[&str]) -> String {
    let links: Vec<Value> = cves
        .iter()
        .map(|c| json!({"title": c, "link": format!("https://nvd.nist.gov/vuln/detail/{c}")}))
        .collect();
    serde_json::to_string(&links).unwrap()
}

async fn names_are_stored_with_findings_and_filled_in_for_earlier_ones(backend: Backend) {
    use crowsnest::domain::mdvm_sub_assessment_name;
    use crowsnest::store::{self, schema::findings};
    use diesel::RunQueryDsl;

    let app = spawn_app(backend).await;
    let registry = app.seed_registry(SUB, "rg", REGISTRY).await;
    let image = app
        .seed_image(&registry, "team/app", &digest_of("names"))
        .await;
    let token = app.token(SUB, Role::Reader);
    let get = |name: Uuid| {
        let (app, token) = (&app, token.clone());
        async move {
            app.get_json(
                &format!("{}/{name}?{SUB_API}", sub_assessments_path(MDVM)),
                &token,
            )
            .await
        }
    };

    // A finding written as before the names were stored: straight into its table.
    let mut earlier = finding_row(&registry, &image, "DSA-9100-1", "openssl");
    earlier.cves = cve_links(&["CVE-2024-1001", "CVE-2024-1002"]);
    let written = earlier.clone();
    app.db(move |c| {
        diesel::insert_into(findings::table)
            .values(&written)
            .execute(c)
            .map(drop)
    })
    .await;
    let first = mdvm_sub_assessment_name(&earlier.id, "CVE-2024-1001");
    let second = mdvm_sub_assessment_name(&earlier.id, "CVE-2024-1002");
    let (status, body) = get(first).await;
    assert_eq!(status, 404, "not named yet: {body}");
    let counted = |id: String| {
        app.db(move |c| {
            use diesel::{ExpressionMethods, QueryDsl};
            findings::table
                .filter(findings::id.eq(id))
                .select(findings::mdvm_vulnerabilities)
                .first::<i32>(c)
        })
    };
    assert_eq!(app.db(store::findings::fill_mdvm_names).await, 1);
    assert_eq!(app.db(store::findings::fill_mdvm_names).await, 0, "once");
    assert_eq!(
        counted(earlier.id.clone()).await,
        2,
        "counted with its names"
    );
    for (name, cve) in [(first, "CVE-2024-1001"), (second, "CVE-2024-1002")] {
        let (status, body) = get(name).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["name"], name.to_string());
        assert_eq!(body["properties"]["id"], cve);
    }

    // Rewritten by a scan with other CVEs: the old names go with the old row.
    let mut changed = earlier.clone();
    changed.cves = cve_links(&["CVE-2024-1003"]);
    // Whatever count the row carries, the store counts the names it writes.
    changed.mdvm_vulnerabilities = 7;
    changed.fingerprint = "another assessment".to_owned();
    let image_id = image.id.clone();
    let now = changed.last_seen;
    app.db(move |c| {
        store::transaction(c, |c| {
            store::findings::merge(c, &image_id, std::slice::from_ref(&changed), now)
        })
    })
    .await;
    assert_eq!(get(first).await.0, 404);
    assert_eq!(get(second).await.0, 404);
    let (status, body) = get(mdvm_sub_assessment_name(&earlier.id, "CVE-2024-1003")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        counted(earlier.id.clone()).await,
        1,
        "recounted with its new names"
    );
    // Findings stored through the store are named as they are written.
    let fresh = finding_row(&registry, &image, "CVE-2024-2000", "zlib");
    let fresh_name = mdvm_sub_assessment_name(&fresh.id, "CVE-2024-2000");
    app.seed_findings(vec![fresh]).await;
    assert_eq!(get(fresh_name).await.0, 200);
    assert_eq!(app.db(store::findings::fill_mdvm_names).await, 0);
}
