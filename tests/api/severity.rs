//! Severity for OS packages, on both backends: Debian's DSA/DLA records carry no severity, so
//! their findings were all `Medium (default)`. With the severity sources loaded (the real Debian
//! tracker and NVD excerpts in `../shared/fixtures/severity/`, and NVD's record of the OpenSSL
//! CVE-2022-0778 in `tests/fixtures/nvd/`), the findings take the distribution's urgency or NVD's
//! CVSS through their CVE aliases, with the source named; stored findings and the summary follow
//! without a pull, and `crowsnest scan --fail-on High` fires on the High-rated OpenSSL advisory.

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use serde_json::Value;

use crate::backend_tests;
use crate::scan::scan as cli_scan;
use crate::support::app::*;
use crate::support::database::Backend;
use crate::support::fixtures::{fixture_paths, read_shared_fixture};
use crate::support::images::{Compression, Image, Layer, MediaKind, Platform, TarEntry};
use crate::support::registry::client::push_image;
use crate::support::registry::{RegistryAuth, TestRegistry};
use crate::support::scans::{SUB, connect, get_security, post_scan, wait_for_scan_end};
use crate::support::wait_for;
use crowsnest::domain::Role;
use crowsnest::jobs::feeds::FeedLoaded;
use crowsnest::jobs::severity_sources::{load_debian_tracker, load_nvd};

backend_tests!(
    ratings_decide_debian_findings_through_their_cves,
    fail_on_high_fires_on_a_high_rated_openssl_advisory,
    a_tracker_export_replaces_the_tracker_ratings_and_nvd_files_add_to_theirs,
);

const TRACKER: &str = "../shared/fixtures/severity/debian-tracker-excerpt.json";
const NVD_EXCERPT: &str = "../shared/fixtures/severity/nvd-cve-excerpt.json.gz";
const NVD_OPENSSL: &str = "tests/fixtures/nvd/CVE-2022-0778.json";

/// Debian 10 with OpenSSL 1.1.1d-0+deb10u7 (DSA-5103-1, aliasing CVE-2022-0778, fixes it in
/// deb10u8), vim 2:8.1.0875-5+deb10u2 (DLA-3182-1, aliasing CVE-2021-3984, in deb10u3) and
/// Ghostscript 9.27~dfsg-2+deb10u3 (DSA-4748-1, aliasing CVE-2020-16302, in deb10u4).
fn debian_openssl_vim_ghostscript() -> Image {
    let status = "\
Package: libssl1.1\nStatus: install ok installed\nArchitecture: amd64\nSource: openssl\nVersion: 1.1.1d-0+deb10u7\n\n\
Package: vim\nStatus: install ok installed\nArchitecture: amd64\nVersion: 2:8.1.0875-5+deb10u2\n\n\
Package: libgs9\nStatus: install ok installed\nArchitecture: amd64\nSource: ghostscript\nVersion: 9.27~dfsg-2+deb10u3\n\n\
Package: base-files\nStatus: install ok installed\nArchitecture: amd64\nVersion: 10.3+deb10u13\n";
    let entries = vec![
        TarEntry::file(
            "etc/os-release",
            read_shared_fixture(fixture_paths::DEBIAN_OS_RELEASE),
            0o644,
        ),
        TarEntry::file("var/lib/dpkg/status", status.as_bytes().to_vec(), 0o644),
    ];
    Image::new(
        vec![Layer::from_entries(&entries, Compression::Gzip)],
        Platform::linux_amd64(),
        MediaKind::DockerV2,
    )
}

async fn import_debian_bundle(app: &TestApp) {
    let pool = app.pool.clone();
    tokio::task::spawn_blocking(move || {
        let bundle = "../shared/fixtures/osv/debian-dsa-dla.zip";
        let files = [(bundle.to_owned(), bundle.into())];
        crowsnest::jobs::import_advisories::import_files(&pool, &files, &|_| {}).unwrap()
    })
    .await
    .unwrap();
}

/// Loads one feed file with its loader, as the synced sources do.
async fn load(
    app: &TestApp,
    loader: crowsnest::jobs::feeds::FeedLoader,
    path: &'static str,
) -> FeedLoaded {
    let pool = app.pool.clone();
    tokio::task::spawn_blocking(move || loader(&pool, Path::new(path)))
        .await
        .unwrap()
        .unwrap_or_else(|e| panic!("{path}: {e}"))
}

async fn load_all(app: &TestApp) -> [FeedLoaded; 3] {
    [
        load(app, load_debian_tracker, TRACKER).await,
        load(app, load_nvd, NVD_EXCERPT).await,
        load(app, load_nvd, NVD_OPENSSL).await,
    ]
}

/// Open findings by (advisory, package): (severity, additionalData.severity, severitySource).
async fn severities(app: &TestApp) -> HashMap<(String, String), (String, String, String)> {
    let body = get_security(app, &format!("subAssessments?{SUB_API}&$top=1000")).await;
    body["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            let p = &f["properties"];
            let data = &p["additionalData"];
            let text = |v: &Value| v.as_str().unwrap_or_default().to_owned();
            (
                (text(&p["id"]), text(&data["packageName"])),
                (
                    text(&p["status"]["severity"]),
                    text(&data["severity"]),
                    text(&data["severitySource"]),
                ),
            )
        })
        .collect()
}

fn key(advisory: &str, package: &str) -> (String, String) {
    (advisory.to_owned(), package.to_owned())
}

fn of(severity: &str, source: &str) -> (String, String, String) {
    (severity.to_owned(), severity.to_owned(), source.to_owned())
}

async fn default_count(app: &TestApp) -> i64 {
    app.db(|c| crowsnest::store::findings::default_severity_count(c, None))
        .await
}

async fn ratings_decide_debian_findings_through_their_cves(backend: Backend) {
    let app = spawn_app(backend).await;
    import_debian_bundle(&app).await;
    let registry = TestRegistry::start(RegistryAuth::None);
    let host = registry.host();
    connect(&app, "severity", &host).await;
    push_image(
        &registry,
        "team/app",
        Some("1"),
        &debian_openssl_vim_ghostscript(),
    )
    .await;
    let contributor = app.token(SUB, Role::Contributor);
    let (status, _, body) = post_scan(
        &app,
        &contributor,
        &serde_json::json!({ "image": format!("{host}/team/app:1") }),
        None,
    )
    .await;
    assert_eq!(status, 202, "{body}");
    let scan = wait_for_scan_end(&app, body["name"].as_str().unwrap()).await;
    assert_eq!(scan["properties"]["status"], "Succeeded", "{scan}");

    // Without severity sources every Debian finding is Medium by default.
    let before = severities(&app).await;
    let openssl_key = key("DSA-5103-1", "libssl1.1");
    let vim_key = key("DLA-3182-1", "vim");
    let ghostscript_key = key("DSA-4748-1", "libgs9");
    for k in [&openssl_key, &vim_key, &ghostscript_key] {
        assert!(before.contains_key(k), "{k:?} in {before:#?}");
    }
    assert!(
        before.values().all(|s| *s == of("Medium", "default")),
        "{before:#?}"
    );
    let unrated = default_count(&app).await;
    assert_eq!(unrated, before.len() as i64);

    // The loaders report what each file held (PROVENANCE.md: 9 tracker urgencies, 76 NVD CVEs).
    let [tracker, excerpt, openssl] = load_all(&app).await;
    assert_eq!((tracker.records, tracker.changed), (9, 9));
    assert_eq!((excerpt.records, excerpt.changed), (76, 76));
    assert_eq!((openssl.records, openssl.changed), (1, 1));
    assert_eq!(
        openssl.newest.map(|t| t.rfc3339()[..10].to_owned()),
        Some("2024-06-21".to_owned())
    );

    // The image is re-matched (an AdvisoryUpdate, no pull) and its stored findings follow.
    let after = wait_for(
        "the re-match after the ratings changed",
        Duration::from_secs(60),
        || async {
            let now = severities(&app).await;
            (now.get(&openssl_key).map(|s| s.0.as_str()) == Some("High")).then_some(now)
        },
    )
    .await;
    assert_eq!(after.len(), before.len(), "the same findings, re-rated");
    // NVD's CVSS 3.1 7.5 of CVE-2022-0778.
    assert_eq!(after[&openssl_key], of("High", "nvd:CVE-2022-0778"));
    // The tracker's `unimportant` for vim (stated on the sid line) decides before NVD's 7.8.
    assert_eq!(after[&vim_key], of("Low", "debian-tracker:CVE-2021-3984"));
    // Ghostscript: NVD only (5.5).
    assert_eq!(after[&ghostscript_key], of("Medium", "nvd:CVE-2020-16302"));
    // Every other finding aliases no rated CVE: still the default, and counted as such.
    let rated = after.values().filter(|s| s.2 != "default").count();
    assert_eq!(rated, 3, "{after:#?}");
    assert_eq!(default_count(&app).await, unrated - 3);
    let scope = crowsnest::store::findings::FindingScope::Subscription(SUB.to_owned());
    assert_eq!(
        app.db(move |c| crowsnest::store::findings::default_severity_count(c, Some(&scope)))
            .await,
        unrated - 3
    );

    // The advisory database's status shows the ratings per source and the findings still unrated.
    let reader = app.token(SUB, Role::Reader);
    let (code, status) = app
        .get_json(
            &format!("/providers/Microsoft.Security/advisories:status?{OWN_API}"),
            &reader,
        )
        .await;
    assert_eq!(code, 200, "{status}");
    assert_eq!(
        status["severityRatings"],
        serde_json::json!([
            {"source": "debian-tracker", "ratings": 9},
            {"source": "nvd", "ratings": 77}
        ])
    );
    assert_eq!(status["defaultSeverityFindings"], unrated - 3);
    // Another tenant's reader sees none of this subscription's findings counted.
    let (_, other) = app
        .get_json(
            &format!("/providers/Microsoft.Security/advisories:status?{OWN_API}"),
            &app.token("other-sub", Role::Reader),
        )
        .await;
    assert_eq!(other["defaultSeverityFindings"], 0, "{other}");

    // The summary counts them where they now are.
    let summary = get_security(&app, &format!("vulnerabilitySummary?{OWN_API}")).await;
    assert_eq!(summary["findingsBySeverity"]["High"], 1, "{summary}");
    assert_eq!(summary["findingsBySeverity"]["Low"], 1, "{summary}");

    // Loading the same files again changes nothing.
    let again = load_all(&app).await;
    assert!(again.iter().all(|l| l.changed == 0), "{again:?}");

    // A file that is not what its loader reads is refused, and the stored ratings stay.
    let pool = app.pool.clone();
    let refused = tokio::task::spawn_blocking(move || {
        (
            load_debian_tracker(&pool, Path::new(NVD_OPENSSL)),
            load_nvd(&pool, Path::new(TRACKER)),
            load_nvd(
                &pool,
                Path::new("../shared/fixtures/osv/debian-dsa-dla.zip"),
            ),
        )
    })
    .await
    .unwrap();
    assert!(
        refused.0.unwrap_err().contains("Debian security tracker"),
        "the tracker loader names what it expected"
    );
    assert!(refused.1.unwrap_err().contains("NVD"));
    assert!(refused.2.unwrap_err().contains("NVD"));
    let counts = app.db(crowsnest::store::severity_ratings::counts).await;
    assert_eq!(
        counts,
        [("debian-tracker".to_owned(), 9), ("nvd".to_owned(), 77)]
    );
}

async fn fail_on_high_fires_on_a_high_rated_openssl_advisory(backend: Backend) {
    let app = spawn_app(backend).await;
    import_debian_bundle(&app).await;
    let registry = TestRegistry::start(RegistryAuth::None);
    push_image(
        &registry,
        "team/app",
        Some("1"),
        &debian_openssl_vim_ghostscript(),
    )
    .await;
    let reference = format!("{}/team/app:1", registry.host());
    let args = [reference.as_str(), "--insecure", "--fail-on", "High"];

    // Every finding Medium by default: a gate on High passes an image with OpenSSL advisories.
    let (code, out, stderr) = cli_scan(&app, &args);
    assert_eq!(code, 0, "{stderr}");
    let findings = out["images"][0]["findings"].as_array().unwrap().clone();
    assert!(
        findings
            .iter()
            .any(|f| f["advisoryId"] == "DSA-5103-1" && f["severity"] == "Medium"),
        "{findings:#?}"
    );

    load_all(&app).await;
    let (code, out, stderr) = cli_scan(&app, &args);
    assert_eq!(code, 1, "--fail-on High fires: {stderr}");
    let findings = out["images"][0]["findings"].as_array().unwrap();
    let high: Vec<&Value> = findings
        .iter()
        .filter(|f| f["severity"] == "High" || f["severity"] == "Critical")
        .collect();
    assert_eq!(high.len(), 1, "{findings:#?}");
    assert_eq!(high[0]["advisoryId"], "DSA-5103-1");
    assert_eq!(high[0]["packageName"], "libssl1.1");
    assert_eq!(
        high[0]["severitySource"], "nvd:CVE-2022-0778",
        "{:#}",
        high[0]
    );
}

/// The stored ratings of one CVE: (source, release, package, severity).
async fn stored(app: &TestApp, cve: &str) -> Vec<(String, String, String, String)> {
    let cves = vec![cve.to_owned()];
    let mut rows: Vec<_> = app
        .db(move |c| crowsnest::store::severity_ratings::for_cves(c, &cves))
        .await
        .into_iter()
        .map(|r| (r.source, r.release_name, r.package, r.severity))
        .collect();
    rows.sort();
    rows
}

async fn a_tracker_export_replaces_the_tracker_ratings_and_nvd_files_add_to_theirs(
    backend: Backend,
) {
    let app = spawn_app(backend).await;
    load_all(&app).await;
    let row = |source: &str, release: &str, package: &str, severity: &str| {
        (
            source.to_owned(),
            release.to_owned(),
            package.to_owned(),
            severity.to_owned(),
        )
    };
    assert_eq!(
        stored(&app, "CVE-2021-3984").await,
        [
            row("debian-tracker", "sid", "vim", "Low"),
            row("nvd", "", "", "High")
        ]
    );

    // A later export (made here from the fixture): vim's urgency for bullseye becomes `high`, a2ps's
    // CVE-2001-1593 is no longer rated. Everything else is as before.
    let mut export: Value = serde_json::from_slice(&std::fs::read(TRACKER).unwrap()).unwrap();
    export["vim"]["CVE-2021-3984"]["releases"]["bullseye"] =
        serde_json::json!({"status": "open", "urgency": "high"});
    export["a2ps"]["CVE-2001-1593"]["releases"]["sid"]["urgency"] =
        serde_json::json!("not yet assigned");
    let dir = tempfile::tempdir().unwrap();
    let later = dir.path().join("tracker.json");
    std::fs::write(&later, serde_json::to_vec(&export).unwrap()).unwrap();
    let pool = app.pool.clone();
    let loaded = tokio::task::spawn_blocking(move || load_debian_tracker(&pool, &later))
        .await
        .unwrap()
        .unwrap();
    assert_eq!((loaded.records, loaded.changed), (9, 2));
    assert_eq!(
        stored(&app, "CVE-2021-3984").await,
        [
            row("debian-tracker", "bullseye", "vim", "High"),
            row("debian-tracker", "sid", "vim", "Low"),
            row("nvd", "", "", "High")
        ]
    );
    // Gone from the tracker; NVD's rating stays.
    assert_eq!(
        stored(&app, "CVE-2001-1593").await,
        [row("nvd", "", "", "Low")]
    );

    // An NVD file rates only its own CVEs: the excerpt's 76 stay after loading the OpenSSL page.
    assert_eq!(
        load(&app, load_nvd, NVD_OPENSSL).await.changed,
        0,
        "loaded already"
    );
    let counts = app.db(crowsnest::store::severity_ratings::counts).await;
    assert_eq!(
        counts,
        [("debian-tracker".to_owned(), 9), ("nvd".to_owned(), 77)]
    );
}
