//! Coverage-aware health: no Healthy without advisory data behind it. Images whose ecosystems
//! have no data, or only stale data, are NotApplicable with the cause; data arriving re-matches
//! them without a pull; findings stay Unhealthy and still say what was not assessed; the CLI exits
//! 2 naming what to load.

use std::time::Duration;

use crowsnest::domain::{Role, Timestamp};
use crowsnest::store::schema::{advisory_coverage, images};
use diesel::prelude::*;
use serde_json::{Value, json};

use crate::backend_tests;
use crate::support::app::*;
use crate::support::database::Backend;
use crate::support::fixtures::debian_with_gnutls;
use crate::support::images::{Compression, Image, Layer, MediaKind, Platform, TarEntry};
use crate::support::registry::client::push_image;
use crate::support::registry::{RegistryAuth, TestRegistry};
use crate::support::scans::{
    SUB, connect, get_security, gnutls_advisory, import, registry_assessment, scan_succeeded, scans,
};
use crate::support::wait_for;

backend_tests!(
    an_ubuntu_image_waits_for_ubuntu_data_and_follows_it_without_a_pull,
    aged_data_makes_a_healthy_image_advisories_stale_until_refreshed,
    findings_stay_unhealthy_and_name_the_ecosystem_not_assessed,
);

/// The one Ubuntu record of the fixtures: `linux` in `Ubuntu:Pro:14.04:LTS`, every version.
const UBUNTU_RECORDS: &str = "../shared/fixtures/osv/records/ubuntu";
const WEEK_AND_A_DAY: Duration = Duration::from_secs(8 * 24 * 3600);

/// Ubuntu 14.04's `/etc/os-release` as the trusty images ship it.
const TRUSTY_OS_RELEASE: &str = "NAME=\"Ubuntu\"\nVERSION=\"14.04.6 LTS, Trusty Tahr\"\nID=ubuntu\nID_LIKE=debian\nPRETTY_NAME=\"Ubuntu 14.04.6 LTS\"\nVERSION_ID=\"14.04\"\nHOME_URL=\"http://www.ubuntu.com/\"\nSUPPORT_URL=\"http://help.ubuntu.com/\"\nBUG_REPORT_URL=\"http://bugs.launchpad.net/ubuntu/\"\n";

/// Ubuntu 14.04 with base-files and, when `kernel` is set, a kernel image built from the `linux`
/// source package; `marker` makes each image a different digest.
fn trusty(kernel: bool, marker: &str) -> Image {
    let mut status = String::new();
    if kernel {
        status.push_str(
            "Package: linux-image-3.13.0-170-generic\nStatus: install ok installed\nArchitecture: amd64\nSource: linux\nVersion: 3.13.0-170.220\n\n",
        );
    }
    status.push_str(
        "Package: base-files\nStatus: install ok installed\nArchitecture: amd64\nVersion: 7.2ubuntu5.6\n",
    );
    let entries = vec![
        TarEntry::file("etc/os-release", TRUSTY_OS_RELEASE, 0o644),
        TarEntry::file("var/lib/dpkg/status", status.into_bytes(), 0o644),
        TarEntry::file("etc/build-marker", marker.as_bytes().to_vec(), 0o644),
    ];
    let layer = Layer::from_entries(&entries, Compression::Gzip);
    Image::new(vec![layer], Platform::linux_amd64(), MediaKind::DockerV2)
}

/// Debian 10 with a vulnerable gnutls and one Python package (PyPI).
fn debian_with_python(marker: &str) -> Image {
    debian_with_gnutls(
        Some("3.6.7-4+deb10u2"),
        vec![
            TarEntry::file(
                "usr/lib/python3/dist-packages/demo_pkg-1.0.dist-info/METADATA",
                b"Metadata-Version: 2.1\nName: demo-pkg\nVersion: 1.0\n".to_vec(),
                0o644,
            ),
            TarEntry::file("etc/build-marker", marker.as_bytes().to_vec(), 0o644),
        ],
    )
}

async fn image(app: &TestApp, digest: &str) -> Value {
    let token = app.token(SUB, Role::Reader);
    let (status, body) = app
        .get_json(
            &format!("/subscriptions/{SUB}/providers/Microsoft.Security/images/{digest}?{OWN_API}"),
            &token,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    body
}

/// Waits until the image's health code is `code`; returns the image.
async fn wait_for_health(app: &TestApp, digest: &str, code: &str) -> Value {
    wait_for(
        &format!("{digest} to become {code}"),
        Duration::from_secs(60),
        || async {
            let body = image(app, digest).await;
            (body["properties"]["health"]["code"] == code).then_some(body)
        },
    )
    .await
}

/// Digests of the images the `$filter` keeps.
async fn filtered(app: &TestApp, filter: &str) -> Vec<String> {
    let body = get_security(
        app,
        &format!("images?{OWN_API}&$filter={}", urlencoding(filter)),
    )
    .await;
    body["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["name"].as_str().unwrap().to_owned())
        .collect()
}

fn urlencoding(s: &str) -> String {
    s.replace(' ', "%20").replace('\'', "%27")
}

async fn vulnerability_summary(app: &TestApp) -> Value {
    get_security(app, &format!("vulnerabilitySummary?{OWN_API}")).await
}

/// Scans that pull (anything but the re-assessments).
async fn pulling_scans(app: &TestApp) -> usize {
    scans(app, "")
        .await
        .iter()
        .filter(|s| {
            !matches!(
                s["properties"]["trigger"].as_str(),
                Some("AdvisoryUpdate" | "Rescan")
            )
        })
        .count()
}

async fn import_dir(app: &TestApp, dir: &str) -> crowsnest::jobs::import_advisories::ImportSummary {
    let pool = app.pool.clone();
    let files = [(dir.to_owned(), std::path::PathBuf::from(dir))];
    tokio::task::spawn_blocking(move || {
        crowsnest::jobs::import_advisories::import_files(&pool, &files, &|_| {}).unwrap()
    })
    .await
    .unwrap()
}

async fn an_ubuntu_image_waits_for_ubuntu_data_and_follows_it_without_a_pull(backend: Backend) {
    let app = spawn_app(backend).await;
    // Only Debian data.
    import(&app, &gnutls_advisory("TEST-GNUTLS-COV")).await;
    let registry = TestRegistry::start(RegistryAuth::None);
    let host = registry.host();
    connect(&app, "cov", &host).await;
    let kernel = push_image(&registry, "team/trusty", Some("kernel"), &trusty(true, "k")).await;
    let plain = push_image(&registry, "team/trusty", Some("plain"), &trusty(false, "p")).await;
    let first = scan_succeeded(&app, &format!("{host}/team/trusty:kernel")).await;
    scan_succeeded(&app, &format!("{host}/team/trusty:plain")).await;

    for (digest, packages) in [(&kernel.manifest_digest, 2), (&plain.manifest_digest, 1)] {
        let body = image(&app, digest).await;
        let p = &body["properties"];
        assert_eq!(p["health"]["code"], "NotApplicable", "{body}");
        assert_eq!(p["health"]["cause"], "NoAdvisoryData", "{body}");
        let description = p["health"]["description"].as_str().unwrap();
        assert!(description.contains("Ubuntu:14.04:LTS"), "{description}");
        assert_eq!(
            p["coverage"],
            json!([{"ecosystem": "Ubuntu:14.04:LTS", "packages": packages, "advisories": "none", "stale": false}]),
            "{body}"
        );
    }
    // The scan's summary carries the same coverage.
    assert_eq!(
        first["properties"]["summary"]["images"][0]["coverage"][0]["advisories"], "none",
        "{first}"
    );
    // Counted apart, and found by the new cause.
    let mut no_data = filtered(&app, "properties/health/cause eq 'NoAdvisoryData'").await;
    no_data.sort();
    let mut both = vec![
        kernel.manifest_digest.clone(),
        plain.manifest_digest.clone(),
    ];
    both.sort();
    assert_eq!(no_data, both);
    let registry_assessment = registry_assessment(&app, "cov").await;
    let p = &registry_assessment["properties"];
    assert_eq!(
        p["status"]["code"], "NotApplicable",
        "{registry_assessment}"
    );
    assert_eq!(
        p["status"]["cause"], "NoAdvisoryData",
        "{registry_assessment}"
    );
    assert_eq!(p["additionalData"]["noAdvisoryDataImages"], "2");
    assert_eq!(p["additionalData"]["healthyImages"], "0");
    let summary = vulnerability_summary(&app).await;
    assert_eq!(
        summary["notApplicableByCause"]["NoAdvisoryData"], 2,
        "{summary}"
    );

    let pulls = pulling_scans(&app).await;
    let imported = import_dir(&app, UBUNTU_RECORDS).await;
    assert_eq!(imported.newly_covered, vec!["Ubuntu:Pro:14.04:LTS"]);
    assert!(imported.images_queued >= 2, "{imported:?}");

    // The data says: the kernel is affected, base-files is not.
    let vulnerable = wait_for_health(&app, &kernel.manifest_digest, "Unhealthy").await;
    assert_eq!(
        vulnerable["properties"]["findings"]["total"], 1,
        "{vulnerable}"
    );
    let healthy = wait_for_health(&app, &plain.manifest_digest, "Healthy").await;
    let coverage = &healthy["properties"]["coverage"][0];
    assert_eq!(coverage["ecosystem"], "Ubuntu:14.04:LTS", "{healthy}");
    assert_eq!(coverage["advisories"], "loaded", "{healthy}");
    assert_eq!(coverage["stale"], false, "{healthy}");
    assert!(coverage["syncedAt"].is_string(), "{healthy}");
    // Re-matched from the stored inventories: no scan pulled anything.
    assert_eq!(pulling_scans(&app).await, pulls);
    let rematched: Vec<Value> = scans(&app, "")
        .await
        .into_iter()
        .filter(|s| s["properties"]["trigger"] == "AdvisoryUpdate")
        .collect();
    assert!(!rematched.is_empty());
    for s in &rematched {
        if s["properties"]["status"] == "Succeeded" {
            assert_eq!(
                s["properties"]["summary"]["images"][0]["reusedInventory"], true,
                "{s}"
            );
        }
    }
    assert!(
        filtered(&app, "properties/health/cause eq 'NoAdvisoryData'")
            .await
            .is_empty()
    );
}

async fn aged_data_makes_a_healthy_image_advisories_stale_until_refreshed(backend: Backend) {
    let app = spawn_app(backend).await;
    import(&app, &gnutls_advisory("TEST-GNUTLS-AGE")).await;
    let registry = TestRegistry::start(RegistryAuth::None);
    let host = registry.host();
    connect(&app, "age", &host).await;
    let clean = push_image(
        &registry,
        "team/app",
        Some("clean"),
        &debian_with_gnutls(
            None,
            vec![TarEntry::file("etc/build-marker", b"age".to_vec(), 0o644)],
        ),
    )
    .await;
    scan_succeeded(&app, &format!("{host}/team/app:clean")).await;
    let fresh = wait_for_health(&app, &clean.manifest_digest, "Healthy").await;
    assert_eq!(
        fresh["properties"]["coverage"][0]["ecosystem"], "Debian:10",
        "{fresh}"
    );
    assert_eq!(fresh["properties"]["coverage"][0]["stale"], false);

    // Eight days pass without a sync: the data, and the assessment resting on it, age alike.
    let aged = i64::try_from(WEEK_AND_A_DAY.as_micros()).unwrap();
    app.db(move |c| {
        diesel::update(advisory_coverage::table)
            .set(advisory_coverage::synced_at.eq(advisory_coverage::synced_at - aged))
            .execute(c)?;
        diesel::update(images::table)
            .set(images::advisories_synced_at.eq(images::advisories_synced_at - aged))
            .execute(c)
    })
    .await;
    // The scheduler's staleness pass (what it runs every minute).
    let queued = app
        .db(|c| {
            crowsnest::jobs::coverage::queue_stale(
                c,
                crowsnest::jobs::queue::DEFAULT_ADVISORY_MAX_AGE,
                Timestamp::now().micros(),
            )
        })
        .await;
    assert_eq!(queued, 1);
    let stale = wait_for_health(&app, &clean.manifest_digest, "NotApplicable").await;
    let p = &stale["properties"];
    assert_eq!(p["health"]["cause"], "AdvisoriesStale", "{stale}");
    assert!(
        p["health"]["description"]
            .as_str()
            .unwrap()
            .contains("Debian:10"),
        "{stale}"
    );
    assert_eq!(p["coverage"][0]["stale"], true, "{stale}");
    assert_eq!(p["coverage"][0]["advisories"], "loaded", "{stale}");
    assert_eq!(
        filtered(&app, "properties/health/cause eq 'AdvisoriesStale'").await,
        vec![clean.manifest_digest.clone()]
    );
    let registry_assessment = registry_assessment(&app, "age").await;
    assert_eq!(
        registry_assessment["properties"]["additionalData"]["staleAdvisoriesImages"],
        "1"
    );
    assert_eq!(
        registry_assessment["properties"]["status"]["cause"],
        "AdvisoriesStale"
    );
    // A stale image is not re-queued by the pass again and again.
    let again = app
        .db(|c| {
            crowsnest::jobs::coverage::queue_stale(
                c,
                crowsnest::jobs::queue::DEFAULT_ADVISORY_MAX_AGE,
                Timestamp::now().micros(),
            )
        })
        .await;
    assert_eq!(again, 0);

    // Importing the same, unchanged record makes the data current again.
    let summary = import(&app, &gnutls_advisory("TEST-GNUTLS-AGE")).await;
    assert_eq!(summary["unchanged"], 1, "{summary}");
    let healthy = wait_for_health(&app, &clean.manifest_digest, "Healthy").await;
    assert_eq!(healthy["properties"]["coverage"][0]["stale"], false);
    assert!(
        filtered(&app, "properties/health/cause eq 'AdvisoriesStale'")
            .await
            .is_empty()
    );
}

async fn findings_stay_unhealthy_and_name_the_ecosystem_not_assessed(backend: Backend) {
    let app = spawn_app(backend).await;
    import(&app, &gnutls_advisory("TEST-GNUTLS-MIX")).await;
    let registry = TestRegistry::start(RegistryAuth::None);
    let host = registry.host();
    connect(&app, "mix", &host).await;
    let pushed = push_image(
        &registry,
        "team/mix",
        Some("v1"),
        &debian_with_python("mix"),
    )
    .await;
    let done = scan_succeeded(&app, &format!("{host}/team/mix:v1")).await;
    let body = image(&app, &pushed.manifest_digest).await;
    let p = &body["properties"];
    assert_eq!(p["health"]["code"], "Unhealthy", "{body}");
    assert_eq!(p["findings"]["total"], 1, "{body}");
    let coverage = p["coverage"].as_array().unwrap();
    let entry = |ecosystem: &str| {
        coverage
            .iter()
            .find(|c| c["ecosystem"] == ecosystem)
            .unwrap_or_else(|| panic!("no {ecosystem} in {body}"))
            .clone()
    };
    assert_eq!(entry("Debian:10")["advisories"], "loaded");
    assert_eq!(entry("Debian:10")["packages"], 2);
    assert_eq!(entry("PyPI")["advisories"], "none");
    assert_eq!(entry("PyPI")["packages"], 1);
    assert!(entry("PyPI").get("syncedAt").is_none(), "{body}");
    let summary_coverage = &done["properties"]["summary"]["images"][0]["coverage"];
    assert_eq!(summary_coverage, &p["coverage"], "{done}");
    // Unhealthy wins: the image is not among the NotApplicable ones.
    assert!(
        filtered(&app, "properties/health/cause eq 'NoAdvisoryData'")
            .await
            .is_empty()
    );
    assert_eq!(
        filtered(&app, "properties/health/code eq 'Unhealthy'").await,
        vec![pushed.manifest_digest.clone()]
    );
}

// ---------------------------------------------------------------------------------------------
// The CLI

fn crowsnest_scan(reference: &str, db: &std::path::Path) -> (i32, String, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_crowsnest"))
        .args(["scan", reference])
        .env("DATABASE_URL", db)
        // Nothing listens there: the sync the scan tries first fails at once.
        .env("CROWSNEST_OSV_BASE_URL", "http://127.0.0.1:9/")
        .output()
        .unwrap();
    (
        out.status.code().unwrap(),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

/// Without data for the image's ecosystem, `crowsnest scan` exits 2 naming the ecosystem and the
/// commands that load it; with the data it states the data's age and passes.
#[test]
fn the_cli_exits_2_without_data_and_states_the_datas_age() {
    let dir = tempfile::tempdir().unwrap();
    let layout = dir.path().join("layout");
    crate::scan::write_oci_layout(&layout, &trusty(true, "cli").with_kind(MediaKind::Oci));
    let reference = format!("oci:{}:v1", layout.display());
    let db = dir.path().join("crowsnest.db");

    let (code, stdout, stderr) = crowsnest_scan(&reference, &db);
    assert_eq!(code, 2, "{stdout}{stderr}");
    assert!(
        stdout.contains("advisory data: Ubuntu:14.04:LTS (2 packages) no data"),
        "{stdout}"
    );
    for expected in [
        "no advisory data for Ubuntu:14.04:LTS: syncing osv:Ubuntu first",
        "warning: osv:Ubuntu: ",
        "no advisory data for Ubuntu:14.04:LTS",
        "crowsnest advisories sync osv:Ubuntu",
        "crowsnest advisories import https://osv-vulnerabilities.storage.googleapis.com/Ubuntu/all.zip",
    ] {
        assert!(
            stderr.contains(expected),
            "{expected:?} missing from {stderr}"
        );
    }

    let out = std::process::Command::new(env!("CARGO_BIN_EXE_crowsnest"))
        .args(["advisories", "import", UBUNTU_RECORDS])
        .env("DATABASE_URL", &db)
        .output()
        .unwrap();
    let printed = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        printed.contains("advisory data loaded for the first time: Ubuntu:Pro:14.04:LTS"),
        "{printed}"
    );

    let (code, stdout, stderr) = crowsnest_scan(&reference, &db);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(
        stdout.contains("advisory data: Ubuntu:14.04:LTS (2 packages) loaded ")
            && stdout.contains(" seconds ago"),
        "{stdout}"
    );
    assert!(stdout.contains("UBUNTU-CVE-2025-38094"), "{stdout}");
}
