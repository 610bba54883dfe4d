//! `$filter` and `$orderby` on the sub-assessment and scan lists: every page, in order, exactly the
//! rows the same selection picks from the seeded data, however the list is filtered and sorted.

use std::cmp::Ordering;
use std::collections::{HashMap, HashSet};

use crowsnest::domain::odata::{parse_filter, parse_orderby};
use crowsnest::domain::{Role, Timestamp};
use crowsnest::store::{self, filter, findings::FindingRow, images::ImageRow, scans::ScanRow};
use diesel::prelude::*;
use serde_json::Value;

use crate::backend_tests;
use crate::support::app::*;
use crate::support::database::Backend;
use crate::support::rows::{advisory, digest_of, finding_row, image_row};

backend_tests!(
    sub_assessments_page_through_every_filter_and_order,
    invalid_filters_and_orders_say_where,
    skip_tokens_belong_to_one_filter_and_order,
    scans_are_filtered_and_sorted,
    images_listing_pages_by_nullable_times,
);

const HOUR: i64 = 3_600_000_000;
/// 2026-10-01T00:00:00Z
const BASE: i64 = 1_790_812_800_000_000;
const SEVERITIES: [&str; 4] = ["Low", "Medium", "High", "Critical"];
const LIST: &str = "/subscriptions/sub-1/providers/Microsoft.Security/subAssessments";

fn at(micros: i64) -> String {
    Timestamp::from_micros(micros).rfc3339()
}

fn encode(text: &str) -> String {
    url::form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

/// The names on every page from `first` on, checking each full page has `top` rows.
async fn walk(app: &TestApp, token: &str, first: &str, top: usize) -> Vec<String> {
    let mut names = Vec::new();
    let mut url = first.to_owned();
    for _ in 0..200 {
        let (status, body) = app.get_json(&url, token).await;
        assert_eq!(status, 200, "{url}: {body}");
        let page: Vec<String> = body["value"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v["name"].as_str().unwrap().to_owned())
            .collect();
        match body["nextLink"].as_str() {
            Some(next) => {
                assert_eq!(page.len(), top, "{url}");
                names.extend(page);
                url = next.trim_start_matches(&app.address).to_owned();
            }
            None => {
                assert!(page.len() <= top, "{url}");
                names.extend(page);
                return names;
            }
        }
    }
    panic!("more than 200 pages from {first}");
}

struct Seeded {
    /// Subscription sub-1's findings.
    rows: Vec<FindingRow>,
    /// Ids of the images some cluster runs.
    running: HashSet<String>,
    digest_of_app_b: String,
    /// Advisories whose id or an alias is in the KEV catalogue.
    known_exploited: HashSet<String>,
    /// Each scored advisory's highest EPSS score over its id and aliases.
    epss: HashMap<String, f64>,
}

/// ~300 findings in sub-1 over five images in two registries, and a few in sub-2.
async fn seed(app: &TestApp) -> Seeded {
    let reg_a = app.seed_registry("sub-1", "rg-a", "reg-a").await;
    let reg_b = app.seed_registry("sub-1", "rg-b", "reg-b").await;
    let other = app.seed_registry("sub-2", "rg-a", "reg-a").await;
    let mut images = Vec::new();
    for (registry, repository) in [
        (&reg_a, "app-a"),
        (&reg_a, "app-b"),
        (&reg_a, "lib-c"),
        (&reg_b, "app-d"),
        (&reg_b, "svc-e"),
        (&other, "app-a"),
    ] {
        let mut image = image_row(registry, repository, &digest_of(repository));
        image.running = repository == "lib-c";
        let insert = image.clone();
        app.db(move |c| store::images::insert(c, &insert)).await;
        images.push((registry.clone(), image));
    }
    let running = images
        .iter()
        .filter(|(_, i)| i.running)
        .map(|(_, i)| i.id.clone())
        .collect();
    let packages = ["openssl", "zlib", "curl", "libxml2", "busybox", "glibc"];
    let mut rows = Vec::new();
    for i in 0..310_i64 {
        let n = usize::try_from(i).unwrap();
        let (registry, image) = if i < 300 {
            &images[(n * 7 + n / 5) % 5]
        } else {
            &images[5]
        };
        let advisory = match i % 10 {
            3 => format!("GHSA-{i:04}-xxxx-yyyy"),
            _ => format!("CVE-2024-{i:05}"),
        };
        let mut row = finding_row(registry, image, &advisory, packages[n % 6]);
        let severity = (n * 7 + n / 4) % 4;
        row.severity = SEVERITIES[severity].to_owned();
        row.severity_rank = i32::try_from(severity).unwrap() + 1;
        row.patchable = i % 3 != 0;
        (row.ecosystem, row.category) = if i % 2 == 0 {
            ("Debian:12".to_owned(), "Debian".to_owned())
        } else {
            ("npm".to_owned(), "npm".to_owned())
        };
        // Few distinct times and scores, so sorting needs the id to break ties.
        row.first_seen = BASE + (i * 37 % 20) * HOUR;
        row.last_seen = row.first_seen + (i % 7) * HOUR;
        row.resolved_at = (i % 5 == 0).then_some(row.last_seen);
        let score = f64::from(u8::try_from(i % 11).unwrap()) * 0.9;
        (row.cvss3_base, row.cvss2_base) = match i % 4 {
            0 => (None, None),
            1 => (Some(score), None),
            2 => (None, Some(score)),
            _ => (Some(score), Some(10.0 - score)),
        };
        // GHSA advisories name their CVE; one CVE id is a prefix of another.
        if i % 10 == 3 {
            let cve = if i % 20 == 3 {
                "CVE-2023-0464"
            } else {
                "CVE-2023-04641"
            };
            row.cves = serde_json::json!([{"title": cve, "link": format!("https://nvd.nist.gov/vuln/detail/{cve}")}]).to_string();
        }
        if i == 42 {
            row.advisory_id = "CVE-2023-0464".to_owned();
        }
        rows.push(row);
    }
    app.seed_findings(rows.clone()).await;
    let (known_exploited, epss) = seed_intel(app, &rows).await;
    rows.truncate(300);
    Seeded {
        rows,
        running,
        digest_of_app_b: digest_of("app-b"),
        known_exploited,
        epss,
    }
}

/// Stores the findings' advisories (GHSA ones alias their CVEs; some GHSA alias two), a KEV
/// catalogue and EPSS scores with many ties; returns what each advisory should show.
async fn seed_intel(app: &TestApp, rows: &[FindingRow]) -> (HashSet<String>, HashMap<String, f64>) {
    let aliases = |id: &str| -> Vec<&'static str> {
        let n: usize = id[5..9].parse().unwrap_or(0);
        match (id.starts_with("GHSA"), n % 20) {
            (false, _) => Vec::new(),
            (true, 3) => vec!["CVE-2023-0464", "CVE-2023-04641"],
            (true, _) => vec!["CVE-2023-04641"],
        }
    };
    let mut ids: Vec<&str> = rows.iter().map(|r| r.advisory_id.as_str()).collect();
    ids.sort_unstable();
    ids.dedup();
    let advisories: Vec<_> = ids.iter().map(|id| advisory(id, &aliases(id))).collect();
    let mut kev = vec!["CVE-2023-04641".to_owned()];
    let mut scores = vec![
        ("CVE-2023-0464".to_owned(), 0.85),
        ("CVE-2023-04641".to_owned(), 0.3),
    ];
    for i in 0..310 {
        let cve = format!("CVE-2024-{i:05}");
        if i % 6 == 1 {
            kev.push(cve.clone());
        }
        if i % 4 != 0 {
            scores.push((cve, f64::from((i * 13) % 9) / 10.0));
        }
    }
    let (kev_rows, score_rows) = (kev.clone(), scores.clone());
    app.db(move |c| {
        store::transaction(c, |c| {
            store::advisories::apply(c, &advisories)?;
            let entries: Vec<_> = kev_rows
                .iter()
                .map(|cve| store::exploit_intel::KnownExploited {
                    cve_id: cve.clone(),
                    date_added: "2025-01-02".to_owned(),
                    due_date: "2025-01-23".to_owned(),
                    required_action: "Apply updates per vendor instructions.".to_owned(),
                    known_ransomware_campaign_use: Some("Unknown".to_owned()),
                })
                .collect();
            store::exploit_intel::replace_kev(c, &entries)?;
            let load = store::exploit_intel::begin_epss_load(c)?;
            let rows: Vec<_> = score_rows
                .iter()
                .map(|(cve, score)| store::exploit_intel::EpssScoreRow {
                    cve_id: cve.clone(),
                    load_id: load,
                    score: *score,
                    percentile: *score,
                    score_date: "2025-08-25".to_owned(),
                })
                .collect();
            store::exploit_intel::insert_epss(c, &rows)?;
            store::exploit_intel::finish_epss_load(c, load)
        })
    })
    .await;
    let scores: HashMap<String, f64> = scores.into_iter().collect();
    let mut known_exploited = HashSet::new();
    let mut epss = HashMap::new();
    for id in ids {
        let cves: Vec<&str> = std::iter::once(id).chain(aliases(id)).collect();
        if cves.iter().any(|c| kev.iter().any(|k| k == c)) {
            known_exploited.insert(id.to_owned());
        }
        if let Some(best) = cves
            .iter()
            .filter_map(|c| scores.get(*c).copied())
            .reduce(f64::max)
        {
            epss.insert(id.to_owned(), best);
        }
    }
    (known_exploited, epss)
}

#[derive(Debug, Clone, PartialEq, PartialOrd)]
enum Key {
    Int(i64),
    Float(f64),
    Text(String),
}

/// `$orderby` as the test computes it: the row's key, and descending or not.
fn order_of(orderby: Option<&str>) -> (fn(&FindingRow, &Seeded) -> Key, bool) {
    let Some(orderby) = orderby else {
        return (|r, _| Key::Text(r.id.clone()), false);
    };
    let (path, descending) = match orderby.split_once(' ') {
        Some((path, direction)) => (path, direction == "desc"),
        None => (orderby, false),
    };
    let key: fn(&FindingRow, &Seeded) -> Key = match path {
        "name" => |r, _| Key::Text(r.id.clone()),
        "properties/status/severity" => |r, _| Key::Int(r.severity_rank.into()),
        "properties/additionalData/cvss" => {
            |r, _| Key::Float(r.cvss3_base.or(r.cvss2_base).unwrap_or(0.0))
        }
        "properties/additionalData/firstSeen" => |r, _| Key::Int(r.first_seen),
        "properties/additionalData/lastSeen" => |r, _| Key::Int(r.last_seen),
        "properties/additionalData/repositoryName" => |r, _| Key::Text(r.repository.clone()),
        "properties/additionalData/epss/score" => {
            |r, s| Key::Float(s.epss.get(&r.advisory_id).copied().unwrap_or(-1.0))
        }
        other => panic!("no test key for {other}"),
    };
    (key, descending)
}

/// The ids of `rows` in a listing's order: by `key`, ties by id, all reversed when `descending`.
fn listed_order<R>(
    mut rows: Vec<&R>,
    key: impl Fn(&R) -> Key,
    descending: bool,
    id: fn(&R) -> &str,
) -> Vec<String> {
    rows.sort_by(|a, b| {
        let order = key(a)
            .partial_cmp(&key(b))
            .unwrap_or(Ordering::Equal)
            .then_with(|| id(a).cmp(id(b)));
        if descending { order.reverse() } else { order }
    });
    rows.into_iter().map(|r| id(r).to_owned()).collect()
}

fn names_cves(row: &FindingRow, cve: &str) -> bool {
    let links: Vec<Value> = serde_json::from_str(&row.cves).unwrap();
    row.advisory_id == cve || links.iter().any(|l| l["title"] == cve)
}

type Keep = Box<dyn Fn(&FindingRow, &Seeded) -> bool>;

async fn sub_assessments_page_through_every_filter_and_order(backend: Backend) {
    // No workers: nothing re-assesses the seeded findings while the test reads them.
    let app = spawn_app_with(backend, |s| s.jobs.queue.workers = 0).await;
    let seeded = seed(&app).await;
    let token = app.token("sub-1", Role::Reader);
    let shown_high = |r: &FindingRow| r.severity_rank >= 3;
    let cases: Vec<(String, Option<&str>, Keep)> = vec![
        (
            "properties/status/severity eq 'High'".into(),
            None,
            Box::new(move |r, _| shown_high(r)),
        ),
        (
            "properties/additionalData/severity eq 'Critical'".into(),
            Some("properties/additionalData/cvss desc"),
            Box::new(|r, _| r.severity == "Critical"),
        ),
        (
            "properties/additionalData/repositoryName eq 'app-a' and properties/additionalData/patchable eq true".into(),
            Some("properties/additionalData/firstSeen"),
            Box::new(|r, _| r.repository == "app-a" && r.patchable),
        ),
        (
            "properties/status/code eq 'Healthy'".into(),
            Some("properties/additionalData/lastSeen desc"),
            Box::new(|r, _| r.resolved_at.is_some()),
        ),
        (
            "properties/status/code eq 'Unhealthy' and not (properties/additionalData/ecosystem eq 'npm')".into(),
            Some("properties/status/severity desc"),
            Box::new(|r, _| r.resolved_at.is_none() && r.ecosystem != "npm"),
        ),
        (
            "properties/additionalData/running eq true".into(),
            Some("properties/additionalData/repositoryName asc"),
            Box::new(|r, s| s.running.contains(&r.image_id)),
        ),
        (
            "properties/additionalData/running eq false and properties/status/severity in ('Low', 'Medium')".into(),
            Some("name desc"),
            Box::new(|r, s| !s.running.contains(&r.image_id) && r.severity_rank <= 2),
        ),
        (
            "properties/additionalData/cveId eq 'CVE-2023-0464'".into(),
            Some("name"),
            Box::new(|r, _| names_cves(r, "CVE-2023-0464")),
        ),
        // `_` is a LIKE wildcard: it must match itself only.
        (
            "properties/additionalData/cveId eq 'CVE_2023-0464' or properties/additionalData/cveId eq 'CVE-2023-046%'".into(),
            None,
            Box::new(|_, _| false),
        ),
        (
            format!(
                "properties/additionalData/firstSeen ge {} and properties/additionalData/firstSeen lt {}",
                at(BASE + 5 * HOUR),
                at(BASE + 12 * HOUR)
            ),
            Some("properties/additionalData/firstSeen desc"),
            Box::new(|r, _| r.first_seen >= BASE + 5 * HOUR && r.first_seen < BASE + 12 * HOUR),
        ),
        (
            format!(
                "properties/additionalData/imageDigest eq '{}' or properties/category eq 'npm'",
                seeded.digest_of_app_b
            ),
            Some("properties/additionalData/cvss"),
            Box::new(|r, s| r.image_digest == s.digest_of_app_b || r.category == "npm"),
        ),
        (
            "properties/id in ('CVE-2024-00001', 'CVE-2024-00010', 'CVE-2024-00100', 'CVE-2023-0464', 'nope')".into(),
            None,
            Box::new(|r, _| {
                ["CVE-2024-00001", "CVE-2024-00010", "CVE-2024-00100", "CVE-2023-0464"]
                    .contains(&r.advisory_id.as_str())
            }),
        ),
        (
            format!(
                "properties/additionalData/packageName ne 'zlib' and properties/additionalData/lastSeen le {}",
                at(BASE + 9 * HOUR)
            ),
            Some("properties/additionalData/repositoryName desc"),
            Box::new(|r, _| r.package_name != "zlib" && r.last_seen <= BASE + 9 * HOUR),
        ),
        (
            String::new(),
            Some("properties/additionalData/cvss desc"),
            Box::new(|_, _| true),
        ),
        (
            "not (properties/additionalData/severity ge 'High') or properties/additionalData/patchable eq false".into(),
            Some("properties/status/severity"),
            Box::new(|r, _| r.severity_rank < 3 || !r.patchable),
        ),
        (
            "properties/additionalData/knownExploited ne null".into(),
            Some("properties/additionalData/epss/score desc"),
            Box::new(|r, s| s.known_exploited.contains(&r.advisory_id)),
        ),
        (
            "properties/additionalData/epss/score ge 0.3 and properties/additionalData/knownExploited eq null".into(),
            Some("properties/additionalData/epss/score"),
            Box::new(|r, s| {
                !s.known_exploited.contains(&r.advisory_id)
                    && s.epss.get(&r.advisory_id).is_some_and(|x| *x >= 0.3)
            }),
        ),
        // A GHSA aliasing CVEs scored 0.85 and 0.3 scores 0.85: not below 0.5.
        (
            "properties/additionalData/epss/score lt 0.5".into(),
            Some("name"),
            Box::new(|r, s| s.epss.get(&r.advisory_id).is_some_and(|x| *x < 0.5)),
        ),
        (
            "properties/additionalData/epss/score eq null or properties/additionalData/epss/score in (0.85, 0.4)".into(),
            Some("properties/additionalData/epss/score desc"),
            Box::new(|r, s| {
                s.epss
                    .get(&r.advisory_id)
                    .is_none_or(|x| *x == 0.85 || *x == 0.4)
            }),
        ),
        (
            "properties/additionalData/epss/score ne 0.4 and properties/additionalData/epss/score le 0.7".into(),
            Some("properties/additionalData/epss/score desc"),
            Box::new(|r, s| s.epss.get(&r.advisory_id).is_some_and(|x| *x != 0.4 && *x <= 0.7)),
        ),
        (
            String::new(),
            Some("properties/additionalData/epss/score"),
            Box::new(|_, _| true),
        ),
        (
            "(properties/status/severity ne 'High' and properties/additionalData/repositoryName gt 'app-b') or name eq 'none'".into(),
            Some("properties/additionalData/lastSeen"),
            Box::new(|r, _| r.severity_rank < 3 && r.repository.as_str() > "app-b"),
        ),
    ];
    for (filter, orderby, keep) in &cases {
        let (key, descending) = order_of(*orderby);
        let want = listed_order(
            seeded.rows.iter().filter(|r| keep(r, &seeded)).collect(),
            |r| key(r, &seeded),
            descending,
            |r| r.id.as_str(),
        );
        let mut url = format!("{LIST}?{SUB_API}&$top=7");
        if !filter.is_empty() {
            url.push_str(&format!("&$filter={}", encode(filter)));
        }
        if let Some(orderby) = orderby {
            url.push_str(&format!("&$orderby={}", encode(orderby)));
        }
        let got = walk(&app, &token, &url, 7).await;
        assert_eq!(got, want, "$filter={filter} $orderby={orderby:?}");
    }
    // The cases are not vacuous: most select a real share of the rows.
    let selective = cases
        .iter()
        .filter(|(_, _, keep)| {
            let n = seeded.rows.iter().filter(|r| keep(r, &seeded)).count();
            n > 7 && n < 300
        })
        .count();
    assert!(selective >= 10, "{selective}");

    // The other list route and a registry scope take the same options.
    let registry = "subscriptions/sub-1/resourceGroups/rg-a/providers/Microsoft.ContainerRegistry/registries/reg-a";
    let filter = "properties/additionalData/patchable eq false";
    let orderby = "properties/status/severity desc";
    let url = format!(
        "/{registry}/providers/Microsoft.Security/assessments/{KEY}/subAssessments?{SUB_API}&$top=7&$filter={}&$orderby={}",
        encode(filter),
        encode(orderby)
    );
    let mut want: Vec<&FindingRow> = seeded
        .rows
        .iter()
        .filter(|r| r.registry_name == "reg-a" && !r.patchable)
        .collect();
    want.sort_by(|a, b| {
        b.severity_rank
            .cmp(&a.severity_rank)
            .then_with(|| b.id.cmp(&a.id))
    });
    let want: Vec<String> = want.into_iter().map(|r| r.id.clone()).collect();
    assert_eq!(walk(&app, &token, &url, 7).await, want);
}

async fn invalid_filters_and_orders_say_where(backend: Backend) {
    let app = spawn_app_with(backend, |s| s.jobs.queue.workers = 0).await;
    let token = app.token("sub-1", Role::Reader);
    let long = format!("name eq '{}'", "x".repeat(2000));
    let filters: &[(&str, usize, &str)] = &[
        (
            "properties/foo eq 1",
            0,
            "unknown property 'properties/foo'",
        ),
        (
            "properties/status/severity eq 'Huge'",
            30,
            "'Huge' is not a value of properties/status/severity",
        ),
        ("(name eq 'a'", 12, "expected ')'"),
        ("name eq 'abc", 8, "unterminated string"),
        (
            "properties/additionalData/patchable gt true",
            39,
            "'gt' does not apply",
        ),
        (
            "properties/additionalData/patchable eq 'yes'",
            39,
            "cannot compare",
        ),
        ("name eq 'a' or", 14, "expected a property path"),
        (&long, 2000, "longer than 2000 characters"),
    ];
    let orders: &[(&str, usize, &str)] = &[
        (
            "properties/category",
            0,
            "cannot sort by 'properties/category'",
        ),
        ("name, properties/id", 4, "only one $orderby key"),
        ("name sideways", 5, "expected 'asc', 'desc'"),
    ];
    for (option, code, cases) in [
        ("$filter", "InvalidFilter", filters),
        ("$orderby", "InvalidOrderBy", orders),
    ] {
        for (value, position, says) in cases {
            let (status, body) = app
                .get_json(
                    &format!("{LIST}?{SUB_API}&{option}={}", encode(value)),
                    &token,
                )
                .await;
            assert_cloud_error(status, &body, 400, code);
            assert_eq!(body["error"]["target"], option, "{body}");
            let message = body["error"]["message"].as_str().unwrap();
            assert!(message.contains(says), "{value}: {message}");
            assert!(
                message.contains(&format!("at position {position}")),
                "{value}: {message}"
            );
        }
    }
    // An empty option is no option.
    let (status, body) = app
        .get_json(&format!("{LIST}?{SUB_API}&$filter=&$orderby="), &token)
        .await;
    assert_eq!(status, 200, "{body}");
}

async fn skip_tokens_belong_to_one_filter_and_order(backend: Backend) {
    let app = spawn_app_with(backend, |s| s.jobs.queue.workers = 0).await;
    seed(&app).await;
    let token = app.token("sub-1", Role::Reader);
    let cvss_desc = encode("properties/additionalData/cvss desc");
    let cvss_asc = encode("properties/additionalData/cvss asc");
    let npm = encode("properties/category eq 'npm'");
    let debian = encode("properties/category eq 'Debian'");
    let first = format!("{LIST}?{SUB_API}&$top=5&$orderby={cvss_desc}&$filter={npm}");
    let (status, body) = app.get_json(&first, &token).await;
    assert_eq!(status, 200, "{body}");
    let next = body["nextLink"].as_str().unwrap();
    let skip_token = url::Url::parse(next)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == "$skipToken")
        .unwrap()
        .1
        .into_owned();
    let (status, _) = app
        .get_json(next.trim_start_matches(&app.address), &token)
        .await;
    assert_eq!(status, 200);
    for other in [
        format!("$orderby={cvss_asc}&$filter={npm}"),
        format!("$orderby={cvss_desc}&$filter={debian}"),
        format!("$orderby={cvss_desc}"),
        format!("$filter={npm}"),
        String::new(),
    ] {
        let (status, body) = app
            .get_json(
                &format!("{LIST}?{SUB_API}&$top=5&{other}&$skipToken={skip_token}"),
                &token,
            )
            .await;
        assert_cloud_error(status, &body, 400, "InvalidSkipToken");
        assert_eq!(body["error"]["target"], "$skipToken");
    }
}

fn scan_row(registry: &str, i: usize, now: i64) -> ScanRow {
    let status = ["Queued", "Running", "Succeeded", "Failed"][i % 4];
    let pending = i % 4 < 2;
    let repository = format!("repo-{}", i % 3);
    let digest = i.is_multiple_of(2).then(|| digest_of(&format!("scan-{i}")));
    let tag = (!i.is_multiple_of(3)).then(|| "v1".to_owned());
    ScanRow {
        id: store::new_ordered_id(),
        subscription_id: "sub-1".to_owned(),
        registry_id: registry.to_owned(),
        repository: repository.clone(),
        tag: tag.clone(),
        digest: digest.clone(),
        triggered_by: ["Api", "Push", "Rescan"][i % 3].to_owned(),
        status: status.to_owned(),
        attempts: 0,
        run_after: now,
        lease_owner: None,
        lease_until: None,
        pending_key: pending.then(|| {
            store::scans::pending_key(
                registry,
                &repository,
                digest.as_deref(),
                Some(&format!("t{i}")),
            )
        }),
        idempotency_key: None,
        error_code: None,
        error_message: None,
        summary: None,
        created_at: now + i64::try_from(i).unwrap(),
        started_at: None,
        finished_at: (!pending).then(|| now + HOUR * i64::try_from(i % 5).unwrap()),
        priority: 0,
    }
}

async fn scans_are_filtered_and_sorted(backend: Backend) {
    let app = spawn_app_with(backend, |s| s.jobs.queue.workers = 0).await;
    let registry = app.seed_registry("sub-1", "rg", "reg").await;
    let now = Timestamp::now().micros();
    let mut rows: Vec<ScanRow> = (0..14).map(|i| scan_row(&registry.id, i, now)).collect();
    for row in rows.clone() {
        let (_, created) = app.db(move |c| store::scans::enqueue(c, &row)).await;
        assert!(created);
    }
    rows.sort_by(|a, b| a.id.cmp(&b.id));
    let token = app.token("sub-1", Role::Reader);
    let list = format!("/subscriptions/sub-1/providers/Microsoft.Security/scans?{OWN_API}&$top=2");
    let ids = |keep: &dyn Fn(&ScanRow) -> bool| -> Vec<String> {
        rows.iter()
            .filter(|r| keep(r))
            .map(|r| r.id.clone())
            .collect()
    };
    let cases: Vec<(String, Vec<String>)> = vec![
        (
            format!("$filter={}", encode("properties/status eq 'Queued'")),
            ids(&|r| r.status == "Queued"),
        ),
        (
            format!(
                "$filter={}",
                encode(
                    "properties/status in ('Succeeded', 'Failed') and properties/trigger ne 'Api'"
                )
            ),
            ids(&|r| (r.status == "Succeeded" || r.status == "Failed") && r.triggered_by != "Api"),
        ),
        (
            format!(
                "$filter={}",
                encode("properties/tag eq null or properties/digest ne null")
            ),
            ids(&|r| r.tag.is_none() || r.digest.is_some()),
        ),
        // `ne` keeps the scans without a digest too.
        (
            format!(
                "$filter={}",
                encode(&format!("properties/digest ne '{}'", digest_of("scan-0")))
            ),
            ids(&|r| r.digest != Some(digest_of("scan-0"))),
        ),
        (
            format!(
                "$filter={}",
                encode(&format!("properties/finishedAt ge {}", at(now + HOUR)))
            ),
            ids(&|r| r.finished_at.is_some_and(|t| t >= now + HOUR)),
        ),
        // The simple parameters still work, alone and with a $filter.
        ("status=Running".to_owned(), ids(&|r| r.status == "Running")),
        (
            format!(
                "repository=repo-1&$filter={}",
                encode("properties/trigger eq 'Push'")
            ),
            ids(&|r| r.repository == "repo-1" && r.triggered_by == "Push"),
        ),
        (
            format!("$orderby={}", encode("properties/createdAt desc")),
            ids(&|_| true).into_iter().rev().collect(),
        ),
    ];
    for (query, want) in cases {
        let got = walk(&app, &token, &format!("{list}&{query}"), 2).await;
        assert_eq!(got, want, "{query}");
    }
    // Unfinished scans sort first (as the smallest time), ties by id.
    let mut by_finish: Vec<&ScanRow> = rows.iter().collect();
    by_finish.sort_by(|a, b| {
        (a.finished_at.unwrap_or(-1), &a.id).cmp(&(b.finished_at.unwrap_or(-1), &b.id))
    });
    let want: Vec<String> = by_finish.iter().rev().map(|r| r.id.clone()).collect();
    let got = walk(
        &app,
        &token,
        &format!("{list}&$orderby={}", encode("properties/finishedAt desc")),
        2,
    )
    .await;
    assert_eq!(got, want);

    let (status, body) = app
        .get_json(
            &format!("{list}&$filter={}", encode("properties/status eq 'Done'")),
            &token,
        )
        .await;
    assert_cloud_error(status, &body, 400, "InvalidFilter");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("at position 21"),
        "{body}"
    );
    let (status, body) = app
        .get_json(
            &format!("{list}&$filter={}", encode("properties/status gt 'Queued'")),
            &token,
        )
        .await;
    assert_cloud_error(status, &body, 400, "InvalidFilter");
    let (status, body) = app.get_json(&format!("{list}&status=Done"), &token).await;
    assert_cloud_error(status, &body, 400, "InvalidParameter");
    assert_eq!(body["error"]["target"], "status");
    let (status, body) = app
        .get_json(
            &format!("{list}&$orderby={}", encode("properties/status")),
            &token,
        )
        .await;
    assert_cloud_error(status, &body, 400, "InvalidOrderBy");
}

/// The images list has no route of its own here yet: its listing is run directly.
async fn images_listing_pages_by_nullable_times(backend: Backend) {
    use crowsnest::store::schema::images;
    let app = spawn_app_with(backend, |s| s.jobs.queue.workers = 0).await;
    let registry = app.seed_registry("sub-1", "rg", "reg").await;
    let other = app.seed_registry("sub-1", "rg", "other").await;
    let mut rows = Vec::new();
    for i in 0..14_i64 {
        let n = usize::try_from(i).unwrap();
        let owner = if i == 13 { &other } else { &registry };
        let mut image = image_row(
            owner,
            &format!("repo-{}", i % 4),
            &digest_of(&format!("image-{i}")),
        );
        image.pushed_at = (i % 3 != 0).then_some(BASE + (i % 5) * HOUR);
        image.pulled_at = (i % 4 == 1).then_some(BASE + i * HOUR);
        image.running = i % 2 == 0;
        image.health = ["Healthy", "Unhealthy", "NotApplicable"][n % 3].to_owned();
        image.os = (i % 5 != 0).then(|| "debian 12".to_owned());
        let insert = image.clone();
        app.db(move |c| store::images::insert(c, &insert)).await;
        if i < 13 {
            rows.push(image);
        }
    }
    type ImageKeep = fn(&ImageRow) -> bool;
    type ImageKey = fn(&ImageRow) -> Key;
    let pushed: ImageKey = |r| Key::Int(r.pushed_at.unwrap_or(-1));
    let cases: Vec<(Option<String>, &str, ImageKeep, ImageKey, bool)> = vec![
        (None, "properties/lastPushedAt desc", |_| true, pushed, true),
        (
            Some("properties/running eq true".to_owned()),
            "properties/lastPulledAt",
            |r| r.running,
            |r| Key::Int(r.pulled_at.unwrap_or(-1)),
            false,
        ),
        (
            Some("properties/health/code ne 'Healthy' and properties/os ne 'debian 12'".to_owned()),
            "properties/repository desc",
            |r| r.health != "Healthy" && r.os.is_none(),
            |r| Key::Text(r.repository.clone()),
            true,
        ),
        (
            Some(format!(
                "properties/lastPushedAt lt {} or properties/lastPushedAt eq null",
                at(BASE + 3 * HOUR)
            )),
            "properties/lastPushedAt",
            |r| r.pushed_at.is_none_or(|t| t < BASE + 3 * HOUR),
            pushed,
            false,
        ),
    ];
    for (text, orderby, keep, key, descending) in cases {
        let want = listed_order(
            rows.iter().filter(|r| keep(r)).collect(),
            key,
            descending,
            |r| r.id.as_str(),
        );
        let expr = text.as_deref().map(|t| parse_filter(t).unwrap());
        let order = parse_orderby(orderby).unwrap();
        let listing = store::images::listing(expr.as_ref(), Some(&order)).unwrap();
        assert_eq!(listing.token_len(), 3);
        let mut got = Vec::new();
        let mut current = listing.clone();
        loop {
            let registry_id = registry.id.clone();
            let query = current.clone();
            let page: Vec<ImageRow> = app
                .db(move |c| {
                    query
                        .query()
                        .filter(images::registry_id.eq(registry_id))
                        .select(ImageRow::as_select())
                        .limit(4)
                        .load(c)
                })
                .await;
            got.extend(page.iter().take(3).map(|r| r.id.clone()));
            if page.len() <= 3 {
                break;
            }
            current = listing.clone().after(&listing.token(&page[2])).unwrap();
        }
        assert_eq!(got, want, "{text:?} {orderby}");
    }
}

const PREPARED_FINDINGS_QUERIES: &str =
    r#"SELECT count(*) AS n FROM pg_prepared_statements WHERE statement LIKE '%FROM "findings"%'"#;

#[derive(QueryableByName)]
struct Prepared {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    n: i64,
}

/// Every `$filter` shape is a statement of its own, and callers choose them: past
/// `PREPARED_FILTER_SHAPES` shapes, filtered findings queries must not stay prepared on the
/// connection, or one client could grow every pooled connection's statement cache without bound.
/// Lists without a filter (a bounded set of statements) are prepared once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prepared_filter_statements_are_bounded() {
    let app = spawn_app(Backend::Postgres).await;
    let registry = app.seed_registry("sub-1", "rg", "reg").await;
    let image = app.seed_image(&registry, "app", &digest_of("app")).await;
    app.seed_findings(vec![finding_row(&registry, &image, "CVE-1", "pkg")])
        .await;
    // All on one connection: prepared statements belong to the session that prepared them.
    let (by_filters, by_orders) = app
        .db(|c| {
            let prepared = |c: &mut store::AnyConnection| {
                diesel::sql_query(PREPARED_FINDINGS_QUERIES)
                    .get_result::<Prepared>(c)
                    .map(|row| row.n)
            };
            let scope = store::findings::FindingScope::Subscription("sub-1".to_owned());
            let list = |c: &mut store::AnyConnection, filter: Option<&str>, order: Option<&str>| {
                let filter = filter.map(|text| parse_filter(text).unwrap());
                let order = order.map(|text| parse_orderby(text).unwrap());
                let listing = store::findings::listing(filter.as_ref(), order.as_ref()).unwrap();
                store::findings::list(c, &scope, Some(&listing), 10).map(|rows| rows.len())
            };
            let before = prepared(c)?;
            // More distinct shapes than may stay prepared: nesting depth × operator × property.
            let shapes = (0..20).flat_map(|depth| {
                ["eq", "ne", "gt", "ge", "lt", "le"]
                    .into_iter()
                    .flat_map(move |op| {
                        ["packageName", "ecosystem", "repositoryName"]
                            .into_iter()
                            .map(move |property| {
                                let leaf =
                                    format!("properties/additionalData/{property} {op} 'zz'");
                                (0..depth).fold(leaf, |inner, _| format!("not ({inner})"))
                            })
                    })
            });
            let mut tried = 0;
            for text in shapes.take(filter::PREPARED_FILTER_SHAPES + 40) {
                list(c, Some(&text), None)?;
                tried += 1;
            }
            assert_eq!(tried, filter::PREPARED_FILTER_SHAPES + 40);
            assert_eq!(
                list(
                    c,
                    Some("properties/additionalData/packageName eq 'pkg'"),
                    None
                )?,
                1
            );
            let after_filters = prepared(c)?;
            for order in [
                "properties/status/severity",
                "properties/additionalData/cvss desc",
                "properties/additionalData/firstSeen",
            ] {
                assert_eq!(list(c, None, Some(order))?, 1, "{order}");
            }
            Ok((after_filters - before, prepared(c)? - after_filters))
        })
        .await;
    assert!(
        (0..=filter::PREPARED_FILTER_SHAPES as i64).contains(&by_filters),
        "{by_filters} statements left prepared by filtered lists"
    );
    assert_eq!(by_orders, 3, "one prepared statement per unfiltered order");
}
