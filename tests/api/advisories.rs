use std::process::Command;

use crowsnest::domain::Role;
use std::sync::Arc;

use crowsnest::jobs::matching::{CandidateCache, match_stored};
use crowsnest::scanner::advisories::ecosystem::OsRelease;
use crowsnest::scanner::advisories::matcher::{
    self, Candidate, Inventory, InventoryPackage, PackageKind,
};
use crowsnest::scanner::advisories::osv;
use serde_json::{Value, json};

use crate::backend_tests;
use crate::support::app::*;
use crate::support::database::Backend;
use crate::support::rows::digest_of;

backend_tests!(
    bundles_import_with_counts_and_reimport_changes_nothing,
    newer_records_replace_older_ones_and_withdrawn_ones_stop_matching,
    import_needs_an_admin_and_a_body,
    records_with_nul_are_rejected_by_id_and_the_rest_imported,
    stored_matching_finds_what_the_pure_matcher_finds,
    aliases_lend_their_severity_whatever_the_import_order,
    yaml_records_are_imported_and_skipped_files_are_named,
);

const DEBIAN_ZIP: &str = "../shared/fixtures/osv/debian-dsa-dla.zip";
const ALPINE_ZIP: &str = "../shared/fixtures/osv/alpine-secdb.zip";
const RECORDS: &str = "../shared/fixtures/osv/records";
const IMPORT: &str = "/providers/Microsoft.Security/advisories:import?api-version=2026-11-01";

async fn post_import(
    app: &TestApp,
    token: &str,
    body: Vec<u8>,
    content_type: &str,
) -> (u16, Value) {
    let response = app
        .client
        .post(app.url(IMPORT))
        .bearer_auth(token)
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .unwrap();
    json_of(response).await
}

fn cli_import(app: &TestApp, sources: &[&str]) -> String {
    cli_import_with_warnings(app, sources).0
}

/// `crowsnest advisories import`, which must succeed: its stdout and its stderr.
fn cli_import_with_warnings(app: &TestApp, sources: &[&str]) -> (String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_crowsnest"))
        .args(["advisories", "import"])
        .args(sources)
        .env("DATABASE_URL", app.database_url())
        .output()
        .unwrap();
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(out.status.success(), "{stderr}");
    (String::from_utf8(out.stdout).unwrap(), stderr)
}

fn counts(summary: &Value) -> (u64, u64, u64, u64, usize) {
    (
        summary["added"].as_u64().unwrap(),
        summary["updated"].as_u64().unwrap(),
        summary["unchanged"].as_u64().unwrap(),
        summary["withdrawn"].as_u64().unwrap(),
        summary["rejected"].as_array().unwrap().len(),
    )
}

async fn bundles_import_with_counts_and_reimport_changes_nothing(backend: Backend) {
    let app = spawn_app(backend).await;
    let admin = app.token("*", Role::Admin);

    let (status, debian) = post_import(
        &app,
        &admin,
        std::fs::read(DEBIAN_ZIP).unwrap(),
        "application/zip",
    )
    .await;
    assert_eq!(status, 200, "{debian}");
    assert_eq!(counts(&debian), (6832, 0, 0, 0, 0));
    let (status, alpine) = post_import(
        &app,
        &admin,
        std::fs::read(ALPINE_ZIP).unwrap(),
        "application/zip",
    )
    .await;
    assert_eq!(status, 200, "{alpine}");
    assert_eq!(counts(&alpine), (2442, 0, 0, 0, 0));

    // The loose records through the CLI, JSON and YAML: 496 parse (18 of them YAML); DSA-3029-1 is
    // newer than the bundle's copy, four are already stored (PYSEC-2023-74 comes as YAML and as
    // JSON); 15 are refused (GHSA API documents, invalid records).
    let out = cli_import(&app, &[RECORDS]);
    assert!(
        out.contains("491 added, 1 updated, 4 unchanged, 8 withdrawn, 15 rejected"),
        "{out}"
    );
    assert!(
        out.contains("rejected CVE-2023-41045") && out.contains("has no introduced event"),
        "{out}"
    );
    assert!(
        out.contains("rejected CVE-2018-5407") && out.contains("is not distinct"),
        "{out}"
    );
    assert!(out.contains("osv-schema.json): missing id"), "{out}");
    assert!(!out.contains("skipped"), "every file is a record: {out}");
    assert!(out.contains("ignored 1× GIT range ignored"), "{out}");

    // Everything again: nothing changes.
    let out = cli_import(&app, &[DEBIAN_ZIP, ALPINE_ZIP, RECORDS]);
    assert!(
        out.contains("0 added, 0 updated, 9770 unchanged, 0 withdrawn, 15 rejected"),
        "{out}"
    );

    let reader = app.token("sub-1", Role::Reader);
    let (status, body) = app
        .get_json(
            "/providers/Microsoft.Security/advisories:status?api-version=2026-11-01",
            &reader,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["advisories"], 6832 + 2442 + 491);
    assert_eq!(body["withdrawn"], 8);
    let per: Vec<(String, i64)> = body["perEcosystem"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["ecosystem"].as_str().unwrap().to_owned(),
                e["advisories"].as_i64().unwrap(),
            )
        })
        .collect();
    for (ecosystem, count) in [
        ("Debian:10", 945),
        ("Debian:6", 1138),
        ("Alpine:v3.11", 1905),
        ("Alpine:v3.3", 458),
        ("crates.io", 18),
    ] {
        assert!(
            per.contains(&(ecosystem.to_owned(), count)),
            "{ecosystem}: {per:?}"
        );
    }
    assert_eq!(body["lastImport"]["unchanged"], 9770);

    let (status, dsa) = app
        .get_json(
            "/providers/Microsoft.Security/advisories/DSA-3029-1?api-version=2026-11-01",
            &reader,
        )
        .await;
    assert_eq!(status, 200, "{dsa}");
    assert_eq!(dsa["name"], "DSA-3029-1");
    assert_eq!(dsa["properties"]["record"]["id"], "DSA-3029-1");
    let (status, body) = app
        .get_json(
            "/providers/Microsoft.Security/advisories/NOPE-1?api-version=2026-11-01",
            &reader,
        )
        .await;
    assert_cloud_error(status, &body, 404, "AdvisoryNotFound");
}

fn record(id: &str, modified: &str, fixed: &str, withdrawn: Option<&str>) -> Value {
    let mut r = json!({
        "schema_version": "1.6.0",
        "id": id,
        "modified": modified,
        "summary": "demo overflow",
        "aliases": ["CVE-2099-0001"],
        "affected": [{
            "package": {"ecosystem": "Debian:12", "name": "demo"},
            "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": fixed}]}]
        }]
    });
    if let Some(w) = withdrawn {
        r["withdrawn"] = json!(w);
    }
    r
}

fn demo_inventory() -> Inventory {
    Inventory {
        os: Some(OsRelease {
            id: "debian".into(),
            version_id: Some("12".into()),
            id_like: vec![],
            pretty_name: None,
        }),
        packages: vec![InventoryPackage {
            kind: PackageKind::Dpkg,
            name: "libdemo1".into(),
            version: "1.0-1".into(),
            source_name: Some("demo".into()),
            source_version: None,
            layer_digest: None,
            file_path: None,
            owner: None,
        }],
        unreadable: Vec::new(),
    }
}

/// Matches the demo inventory through the store: one round trip warm, at most four cold.
async fn match_demo(app: &TestApp, cache: &Arc<CandidateCache>) -> matcher::MatchReport {
    let cache = cache.clone();
    let (report, cost) = app
        .db(move |c| match_stored(c, &cache, &demo_inventory()))
        .await;
    assert!(cost.round_trips <= 4, "{cost:?}");
    report
}

async fn fixed_versions(app: &TestApp, cache: &Arc<CandidateCache>) -> Vec<Option<String>> {
    let report = match_demo(app, cache).await;
    report
        .matches
        .into_iter()
        .map(|m| m.fixed_version)
        .collect()
}

async fn newer_records_replace_older_ones_and_withdrawn_ones_stop_matching(backend: Backend) {
    let app = spawn_app(backend).await;
    // One cache throughout: a newer record must not be answered from it.
    let cache = Arc::new(CandidateCache::default());
    let admin = app.token("*", Role::Admin);
    let send = |v: Value| {
        post_import(
            &app,
            &admin,
            serde_json::to_vec(&v).unwrap(),
            "application/json",
        )
    };

    let (status, s) = send(record("TEST-1", "2024-01-01T00:00:00Z", "1.2-1", None)).await;
    assert_eq!((status, counts(&s)), (200, (1, 0, 0, 0, 0)), "{s}");
    assert_eq!(
        fixed_versions(&app, &cache).await,
        vec![Some("1.2-1".to_owned())]
    );

    let (_, s) = send(record("TEST-1", "2024-02-01T00:00:00Z", "1.3-1", None)).await;
    assert_eq!(counts(&s), (0, 1, 0, 0, 0));
    assert_eq!(
        fixed_versions(&app, &cache).await,
        vec![Some("1.3-1".to_owned())]
    );

    // An older copy does not win back.
    let (_, s) = send(record("TEST-1", "2024-01-15T00:00:00Z", "1.1-1", None)).await;
    assert_eq!(counts(&s), (0, 0, 1, 0, 0));
    assert_eq!(
        fixed_versions(&app, &cache).await,
        vec![Some("1.3-1".to_owned())]
    );

    // An array with a good and a bad record: the good one is imported, the bad one named.
    let (_, s) = send(json!([record("TEST-2", "2024-01-01T00:00:00Z", "1.5-1", None), {"id": "BAD-1", "modified": "yesterday"}])).await;
    assert_eq!(counts(&s), (1, 0, 0, 0, 1), "{s}");
    assert_eq!(s["rejected"][0]["id"], "BAD-1");
    assert!(
        s["rejected"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("modified"),
        "{s}"
    );
    let mut both = fixed_versions(&app, &cache).await;
    both.sort();
    assert_eq!(
        both,
        vec![Some("1.3-1".to_owned()), Some("1.5-1".to_owned())]
    );

    // Withdrawn: it stops matching at once.
    let (_, s) = send(json!({"vulns": [record("TEST-1", "2024-03-01T00:00:00Z", "1.3-1", Some("2024-03-01T00:00:00Z"))]})).await;
    assert_eq!(counts(&s), (0, 1, 0, 1, 0), "{s}");
    assert_eq!(
        fixed_versions(&app, &cache).await,
        vec![Some("1.5-1".to_owned())]
    );
}

async fn import_needs_an_admin_and_a_body(backend: Backend) {
    let app = spawn_app(backend).await;
    let body =
        serde_json::to_vec(&record("TEST-1", "2024-01-01T00:00:00Z", "1.2-1", None)).unwrap();
    let contributor = app.token("*", Role::Contributor);
    let (status, error) = post_import(&app, &contributor, body.clone(), "application/json").await;
    assert_cloud_error(status, &error, 403, "AuthorizationFailed");
    let (status, error) = json_of(
        app.client
            .post(app.url(IMPORT))
            .body(body)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_cloud_error(status, &error, 401, "AuthenticationFailed");

    let admin = app.token("*", Role::Admin);
    let (status, error) = post_import(&app, &admin, Vec::new(), "application/json").await;
    assert_cloud_error(status, &error, 400, "InvalidRequestContent");
    // Neither JSON nor a zip: refused, and no answer names a file of the server.
    let temp = std::env::temp_dir().display().to_string();
    for (body, content_type) in [
        (b"{ this is not json".to_vec(), "application/json"),
        (b"\x89PNG\r\n".to_vec(), "application/octet-stream"),
        (b"PK\x03\x04 truncated zip".to_vec(), "application/zip"),
    ] {
        let (status, error) = post_import(&app, &admin, body, content_type).await;
        assert_cloud_error(status, &error, 400, "InvalidRequestContent");
        let message = error["error"]["message"].as_str().unwrap();
        assert!(
            message.contains("request body") && !message.contains(&temp),
            "{message}"
        );
    }
    let (status, status_body) = app
        .get_json(
            "/providers/Microsoft.Security/advisories:status?api-version=2026-11-01",
            &admin,
        )
        .await;
    assert_eq!(status, 200, "{status_body}");
    assert!(status_body["lastImport"].is_null(), "{status_body}");
    // A zip whose entries are not records: each is rejected under the body's name.
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    zip.start_file("broken.json", zip::write::SimpleFileOptions::default())
        .unwrap();
    std::io::Write::write_all(&mut zip, b"{ not json").unwrap();
    let zip = zip.finish().unwrap().into_inner();
    let (status, summary) = post_import(&app, &admin, zip, "application/zip").await;
    assert_eq!(status, 200, "{summary}");
    assert_eq!(summary["rejected"][0]["file"], "request body:broken.json");
    assert!(!summary.to_string().contains(&temp), "{summary}");
    let (status, error) = app
        .get_json("/providers/Microsoft.Security/advisories:status", &admin)
        .await;
    assert_cloud_error(status, &error, 400, "MissingApiVersionParameter");
}

async fn advisory_status(app: &TestApp, id: &str) -> u16 {
    let reader = app.token("sub-1", Role::Reader);
    let path = format!("/providers/Microsoft.Security/advisories/{id}?api-version=2026-11-01");
    app.get_json(&path, &reader).await.0
}

/// The rejections of an import summary, as (id, reason).
fn rejections(summary: &Value) -> Vec<(String, String)> {
    summary["rejected"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["id"].as_str().unwrap_or_default().to_owned(),
                r["reason"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

async fn records_with_nul_are_rejected_by_id_and_the_rest_imported(backend: Backend) {
    let app = spawn_app(backend).await;
    let admin = app.token("*", Role::Admin);
    let good = |id: &str| record(id, "2024-01-01T00:00:00Z", "1.2-1", None);
    let with_summary = |id: &str| {
        let mut r = good(id);
        r["summary"] = json!("a flaw\u{0}");
        r
    };
    let with_package = |id: &str| {
        let mut r = good(id);
        r["affected"][0]["package"]["name"] = json!("demo\u{0}");
        r
    };

    // A JSON array through the API.
    let body = serde_json::to_vec(&json!([
        good("GOOD-1"),
        with_summary("BAD-1"),
        with_package("BAD-2")
    ]))
    .unwrap();
    let (status, summary) = post_import(&app, &admin, body, "application/json").await;
    assert_eq!(status, 200, "{summary}");
    assert_eq!(counts(&summary), (1, 0, 0, 0, 2), "{summary}");
    let rejected = rejections(&summary);
    assert_eq!(rejected[0].0, "BAD-1");
    assert!(
        rejected[0].1.contains("summary") && rejected[0].1.contains("NUL"),
        "{rejected:?}"
    );
    assert_eq!(rejected[1].0, "BAD-2");
    assert!(
        rejected[1].1.contains("affected[0].package.name"),
        "{rejected:?}"
    );

    // A zip through the API.
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    for (name, record) in [
        ("GOOD-2.json", good("GOOD-2")),
        ("BAD-3.json", with_summary("BAD-3")),
    ] {
        zip.start_file(name, zip::write::SimpleFileOptions::default())
            .unwrap();
        std::io::Write::write_all(&mut zip, &serde_json::to_vec(&record).unwrap()).unwrap();
    }
    let zip = zip.finish().unwrap().into_inner();
    let (status, summary) = post_import(&app, &admin, zip, "application/zip").await;
    assert_eq!(status, 200, "{summary}");
    assert_eq!(counts(&summary), (1, 0, 0, 0, 1), "{summary}");
    assert_eq!(rejections(&summary)[0].0, "BAD-3");

    // A directory through the CLI.
    let dir = tempfile::tempdir().unwrap();
    for (name, record) in [
        ("GOOD-3.json", good("GOOD-3")),
        ("BAD-4.json", with_package("BAD-4")),
    ] {
        std::fs::write(dir.path().join(name), serde_json::to_vec(&record).unwrap()).unwrap();
    }
    let out = cli_import(&app, &[dir.path().to_str().unwrap()]);
    assert!(
        out.contains("1 added, 0 updated, 0 unchanged, 0 withdrawn, 1 rejected"),
        "{out}"
    );
    assert!(out.contains("rejected BAD-4"), "{out}");

    for id in ["GOOD-1", "GOOD-2", "GOOD-3"] {
        assert_eq!(advisory_status(&app, id).await, 200, "{id}");
    }
    for id in ["BAD-1", "BAD-2", "BAD-3", "BAD-4"] {
        assert_eq!(advisory_status(&app, id).await, 404, "{id}");
    }
}

fn parse_bundle(path: &str) -> Vec<osv::Advisory> {
    let mut archive = zip::ZipArchive::new(std::fs::File::open(path).unwrap()).unwrap();
    let mut out = Vec::new();
    for i in 0..archive.len() {
        let mut file = archive.by_index(i).unwrap();
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(&mut file, &mut bytes).unwrap();
        out.extend(osv::parse_records(&bytes).into_iter().map(Result::unwrap));
    }
    out
}

fn package(kind: PackageKind, name: &str, version: &str, source: Option<&str>) -> InventoryPackage {
    InventoryPackage {
        kind,
        name: name.into(),
        version: version.into(),
        source_name: source.map(str::to_owned),
        source_version: None,
        layer_digest: Some(digest_of("layer")),
        file_path: None,
        owner: None,
    }
}

async fn stored_matching_finds_what_the_pure_matcher_finds(backend: Backend) {
    let app = spawn_app(backend).await;
    let pool = app.pool.clone();
    tokio::task::spawn_blocking(move || {
        let files = [DEBIAN_ZIP, ALPINE_ZIP].map(|f| (f.to_owned(), std::path::PathBuf::from(f)));
        crowsnest::jobs::import_advisories::import_files(&pool, &files, &|_| {}).unwrap()
    })
    .await
    .unwrap();

    let debian = Inventory {
        os: Some(OsRelease {
            id: "debian".into(),
            version_id: Some("10".into()),
            id_like: vec![],
            pretty_name: None,
        }),
        packages: vec![
            package(
                PackageKind::Dpkg,
                "libgnutls30",
                "3.6.7-4+deb10u2",
                Some("gnutls28"),
            ),
            package(PackageKind::Dpkg, "e2fsprogs", "1.44.5-1", None),
            package(
                PackageKind::Dpkg,
                "libcom-err2",
                "1.44.5-1",
                Some("e2fsprogs"),
            ),
            package(PackageKind::Dpkg, "bash", "5.0-4", None),
        ],
        unreadable: Vec::new(),
    };
    let alpine = Inventory {
        os: Some(OsRelease {
            id: "alpine".into(),
            version_id: Some("3.4.6".into()),
            id_like: vec![],
            pretty_name: None,
        }),
        packages: vec![
            package(PackageKind::Apk, "libssl1.0", "1.0.2h-r1", Some("openssl")),
            package(PackageKind::Apk, "musl", "1.1.14-r10", None),
        ],
        unreadable: Vec::new(),
    };
    let all: Vec<Candidate> = parse_bundle(DEBIAN_ZIP)
        .iter()
        .chain(&parse_bundle(ALPINE_ZIP))
        .flat_map(Candidate::from_advisory)
        .collect();
    for inventory in [debian, alpine] {
        let pure = matcher::match_inventory(&inventory, &all);
        let inv = inventory.clone();
        let cache = Arc::new(CandidateCache::default());
        let (stored, cost) = {
            let (cache, inv) = (cache.clone(), inv.clone());
            app.db(move |c| match_stored(c, &cache, &inv)).await
        };
        assert_eq!(
            cost.round_trips, 4,
            "a cold cache: the generation, the keys, the records, then their CVEs' ratings: {cost:?}"
        );
        let (warm, cost) = app.db(move |c| match_stored(c, &cache, &inv)).await;
        assert_eq!(cost.round_trips, 1, "a warm cache: the generation only");
        assert_eq!(warm.matches.len(), stored.matches.len());
        assert!(!stored.matches.is_empty());
        let key = |m: &matcher::Match| {
            (
                m.advisory_id.clone(),
                m.package_name.clone(),
                m.fixed_version.clone(),
            )
        };
        let mut a: Vec<_> = pure.matches.iter().map(key).collect();
        let mut b: Vec<_> = stored.matches.iter().map(key).collect();
        a.sort();
        b.sort();
        assert_eq!(a, b);
    }

    let (report, _) = app
        .db(|c| {
            let inv = Inventory {
                os: Some(OsRelease {
                    id: "debian".into(),
                    version_id: Some("10".into()),
                    id_like: vec![],
                    pretty_name: None,
                }),
                packages: vec![package(
                    PackageKind::Dpkg,
                    "libgnutls30",
                    "3.6.7-4+deb10u2",
                    Some("gnutls28"),
                )],
                unreadable: Vec::new(),
            };
            match_stored(c, &CandidateCache::default(), &inv)
        })
        .await;
    let dsa = report
        .matches
        .iter()
        .find(|m| m.advisory_id == "DSA-4652-1")
        .expect("DSA-4652-1 matches libgnutls30");
    assert_eq!(dsa.package_name, "libgnutls30");
    assert_eq!(dsa.fixed_version.as_deref(), Some("3.6.7-4+deb10u3"));
    assert!(dsa.patchable);
    assert!(
        dsa.remediation.contains("libgnutls30") && dsa.remediation.contains("3.6.7-4+deb10u3"),
        "{}",
        dsa.remediation
    );
}

fn scored(id: &str, modified: &str, aliases: &[&str], vector: &str) -> Value {
    json!({
        "id": id,
        "modified": modified,
        "aliases": aliases,
        "severity": [{"type": "CVSS_V3", "score": vector}],
        "affected": [{"package": {"ecosystem": "PyPI", "name": "unrelated"}, "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}]}]}]
    })
}

async fn demo_severity(app: &TestApp, cache: &Arc<CandidateCache>) -> (String, String) {
    let report = match_demo(app, cache).await;
    let m = report.matches.first().expect("TEST-1 matches");
    (m.severity.as_str().to_owned(), m.severity_source.clone())
}

async fn aliases_lend_their_severity_whatever_the_import_order(backend: Backend) {
    let app = spawn_app(backend).await;
    let cache = Arc::new(CandidateCache::default());
    let admin = app.token("*", Role::Admin);
    let send = |v: Value| {
        post_import(
            &app,
            &admin,
            serde_json::to_vec(&v).unwrap(),
            "application/json",
        )
    };
    const CRITICAL: &str = "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H";
    const MEDIUM: &str = "CVSS:3.1/AV:N/AC:H/PR:N/UI:R/S:U/C:L/I:L/A:N";

    // TEST-1 (no severity of its own, alias CVE-2099-0001) first: the default.
    send(record("TEST-1", "2024-01-01T00:00:00Z", "1.2-1", None)).await;
    assert_eq!(
        demo_severity(&app, &cache).await,
        ("Medium".to_owned(), "default".to_owned())
    );

    // Its alias arrives later and lends its score.
    send(scored("CVE-2099-0001", "2024-01-01T00:00:00Z", &[], MEDIUM)).await;
    assert_eq!(demo_severity(&app, &cache).await.1, "alias:CVE-2099-0001");
    // A record that lists TEST-1 among its aliases lends a higher one: the most severe wins.
    send(scored(
        "GHSA-test-0001",
        "2024-01-01T00:00:00Z",
        &["TEST-1"],
        CRITICAL,
    ))
    .await;
    assert_eq!(
        demo_severity(&app, &cache).await,
        ("Critical".to_owned(), "alias:GHSA-test-0001".to_owned())
    );
    // When that record is withdrawn, the lent severity falls back.
    let mut withdrawn = scored(
        "GHSA-test-0001",
        "2024-02-01T00:00:00Z",
        &["TEST-1"],
        CRITICAL,
    );
    withdrawn["withdrawn"] = json!("2024-02-01T00:00:00Z");
    send(withdrawn).await;
    assert_eq!(demo_severity(&app, &cache).await.1, "alias:CVE-2099-0001");
    // Updating TEST-1 itself keeps what its aliases lend.
    send(record("TEST-1", "2024-03-01T00:00:00Z", "1.2-1", None)).await;
    assert_eq!(demo_severity(&app, &cache).await.1, "alias:CVE-2099-0001");
}

/// PyPA publishes OSV records as YAML: each is imported like a JSON one. A file that is neither is
/// named in a warning, since its advisories will never match.
async fn yaml_records_are_imported_and_skipped_files_are_named(backend: Backend) {
    let app = spawn_app(backend).await;
    let pypi = format!("{RECORDS}/pypi");
    let yaml_ids: Vec<String> = std::fs::read_dir(&pypi)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .map(|p| p.file_stem().unwrap().to_str().unwrap().to_owned())
        .collect();
    assert_eq!(yaml_ids.len(), 16);
    for id in &yaml_ids {
        assert_eq!(
            advisory_status(&app, id).await,
            404,
            "{id} before the import"
        );
    }
    let (_, stderr) = cli_import_with_warnings(&app, &[&pypi]);
    assert!(!stderr.contains("skipped"), "nothing to skip: {stderr}");
    for id in &yaml_ids {
        assert_eq!(
            advisory_status(&app, id).await,
            200,
            "{id} after the import"
        );
    }

    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        format!("{pypi}/PYSEC-2024-60.yaml"),
        dir.path().join("PYSEC-2024-60.yml"),
    )
    .unwrap();
    std::fs::write(dir.path().join("README.md"), "not a record").unwrap();
    let (_, stderr) = cli_import_with_warnings(&app, &[dir.path().to_str().unwrap()]);
    assert!(
        stderr.contains("warning: skipped 1 files") && stderr.contains("README.md"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("PYSEC-2024-60"),
        "the .yml record is read: {stderr}"
    );
}
