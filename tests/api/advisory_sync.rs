//! Advisory sources synced from a local copy of OSV's export (`all.zip`, `<ID>.json`,
//! `modified_id.csv`, with ETags), built from the fixture's real Debian records: a first sync
//! downloads the zip once, a sync with nothing new fetches no record, 20 records changed upstream
//! are fetched alone and re-match the images they concern; broken downloads, server errors,
//! timeouts and foreign zips change nothing stored and show in the status; two servers on one
//! database sync a source once.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crowsnest::config::Settings;
use crowsnest::domain::Role;
use crowsnest::jobs::advisory_sync::{SourceSelection, SyncResult, SyncSettings, Syncer};
use crowsnest::startup::Application;
use crowsnest::store::DatabaseUrl;
use serde_json::{Value, json};

use crate::backend_tests;
use crate::support::app::*;
use crate::support::database::Backend;
use crate::support::fake_registry::{Fake, FakeAuth};
use crate::support::fixtures::{debian_with_gnutls, read_shared_fixture, shared_fixtures_dir};
use crate::support::http::{HttpRequest, HttpResponse, MiniServer};
use crate::support::scans::{SUB, connect, findings, post_scan, wait_for_scan_end};
use crate::support::wait_for;

backend_tests!(
    osv_sources_sync_in_full_then_only_what_changed,
    failed_syncs_keep_the_data_and_show_the_error,
    two_servers_sync_a_source_once,
    zip_urls_directories_and_feeds_sync_too,
);

/// How long a stalled answer takes: longer than the sync's timeout.
const STALL: Duration = Duration::from_secs(4);
const SOURCES: &str = "/providers/Microsoft.Security/advisorySources";
/// The fixture records about gnutls28 on Debian 10 that affect 3.6.7-4+deb10u2.
const GNUTLS_ADVISORY: &str = "DSA-4652-1";

// ---------------------------------------------------------------------------------------------
// A local copy of OSV's export

/// What the export server does wrong, until told otherwise.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    /// `all.zip` cut in half.
    Truncated,
    /// 500 for everything.
    ServerError,
    /// Every answer comes after [`STALL`].
    Stall,
    /// `all.zip` is a zip of files that are not OSV records.
    NotOsv,
}

struct Export {
    /// The Debian directory: id → (modified, record JSON).
    records: BTreeMap<String, (String, Vec<u8>)>,
    /// Moves whenever a record changes: the zip's ETag.
    version: u64,
    /// The zip of `records` at `version`, built when first asked for.
    zip: Option<(u64, Vec<u8>)>,
    /// Whether `modified_id.csv` is served (a mirror may lack it).
    list: bool,
    fault: Option<Fault>,
    /// Paths requested, in order.
    requests: Vec<String>,
}

impl Export {
    fn etag(&self) -> String {
        format!("\"debian-{}\"", self.version)
    }

    fn zip(&mut self) -> Vec<u8> {
        match &self.zip {
            Some((version, zip)) if *version == self.version => zip.clone(),
            _ => {
                let zip = zip_of(
                    self.records
                        .iter()
                        .map(|(id, (_, bytes))| (format!("{id}.json"), bytes.clone())),
                );
                self.zip = Some((self.version, zip.clone()));
                zip
            }
        }
    }

    /// `<modified>,<id>`, newest first, as OSV writes it.
    fn list(&self) -> Vec<u8> {
        let mut lines: Vec<(&String, &String)> =
            self.records.iter().map(|(id, (m, _))| (m, id)).collect();
        lines.sort_by(|a, b| b.cmp(a));
        lines
            .into_iter()
            .map(|(m, id)| format!("{m},{id}\n"))
            .collect::<String>()
            .into_bytes()
    }

    fn answer(&mut self, request: &HttpRequest) -> HttpResponse {
        let path = request.path().to_owned();
        self.requests.push(path.clone());
        match self.fault {
            Some(Fault::ServerError) => return HttpResponse::new(500),
            Some(Fault::Stall) => std::thread::sleep(STALL),
            _ => {}
        }
        let Some(file) = path.strip_prefix("/Debian/") else {
            return HttpResponse::new(404);
        };
        match file {
            "all.zip" => {
                if request.header("If-None-Match") == Some(self.etag().as_str()) {
                    return HttpResponse::new(304);
                }
                let body = match self.fault {
                    Some(Fault::Truncated) => {
                        let whole = self.zip();
                        whole[..whole.len() / 2].to_vec()
                    }
                    Some(Fault::NotOsv) => zip_of([
                        ("README.json".to_owned(), b"{\"hello\": \"world\"}".to_vec()),
                        ("notes.txt".to_owned(), b"not a record".to_vec()),
                    ]),
                    _ => self.zip(),
                };
                let mut response = HttpResponse::new(200);
                response.headers.push(("ETag".into(), self.etag()));
                response
                    .headers
                    .push(("Content-Type".into(), "application/zip".into()));
                response.body = body;
                response
            }
            "modified_id.csv" if self.list => {
                let mut response = HttpResponse::new(200);
                response.body = self.list();
                response
            }
            _ => match file
                .strip_suffix(".json")
                .and_then(|id| self.records.get(id))
            {
                Some((_, bytes)) => {
                    let mut response = HttpResponse::new(200);
                    response.body = bytes.clone();
                    response
                }
                None => HttpResponse::new(404),
            },
        }
    }
}

fn zip_of(files: impl IntoIterator<Item = (String, Vec<u8>)>) -> Vec<u8> {
    let mut out = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let options = zip::write::SimpleFileOptions::default();
    for (name, bytes) in files {
        out.start_file(name, options).unwrap();
        out.write_all(&bytes).unwrap();
    }
    out.finish().unwrap().into_inner()
}

/// The fixture's Debian records that concern Debian 10 (945 real DSA/DLA records).
fn debian_10_records() -> BTreeMap<String, (String, Vec<u8>)> {
    let bundle = read_shared_fixture("osv/debian-dsa-dla.zip");
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(bundle)).unwrap();
    let mut records = BTreeMap::new();
    for i in 0..archive.len() {
        let mut file = archive.by_index(i).unwrap();
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes).unwrap();
        let record: Value = serde_json::from_slice(&bytes).unwrap();
        if !String::from_utf8_lossy(&bytes).contains("\"Debian:10\"") {
            continue;
        }
        let id = record["id"].as_str().unwrap().to_owned();
        let modified = record["modified"].as_str().unwrap().to_owned();
        records.insert(id, (modified, bytes));
    }
    assert!(records.len() > 900, "{} records", records.len());
    records
}

struct OsvServer {
    server: MiniServer,
    export: Arc<Mutex<Export>>,
}

impl OsvServer {
    fn start() -> Self {
        let export = Arc::new(Mutex::new(Export {
            records: debian_10_records(),
            version: 1,
            zip: None,
            list: true,
            fault: None,
            requests: Vec::new(),
        }));
        // Built before any client waits for it with a short timeout.
        export.lock().unwrap().zip();
        let serving = export.clone();
        let server = MiniServer::start(
            "osv-export",
            Arc::new(move |request| serving.lock().unwrap().answer(request)),
        );
        Self { server, export }
    }

    fn base(&self) -> url::Url {
        url::Url::parse(&self.server.url()).unwrap()
    }

    fn records(&self) -> usize {
        self.export.lock().unwrap().records.len()
    }

    /// Forgets the requests so far; returns them.
    fn take_requests(&self) -> Vec<String> {
        std::mem::take(&mut self.export.lock().unwrap().requests)
    }

    fn set_fault(&self, fault: Option<Fault>) {
        self.export.lock().unwrap().fault = fault;
    }

    fn set_list(&self, served: bool) {
        self.export.lock().unwrap().list = served;
    }

    /// Gives `ids` a newer `modified` (one second apart, from `base`), withdrawing `withdrawn`.
    fn change(&self, ids: &[String], base: &str, withdrawn: &[&str]) {
        let mut export = self.export.lock().unwrap();
        let start = chrono::DateTime::parse_from_rfc3339(base).unwrap();
        for (i, id) in ids.iter().enumerate() {
            let modified = (start + chrono::Duration::seconds(i as i64))
                .to_utc()
                .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
            let (old_modified, bytes) = export.records.get_mut(id).unwrap();
            let mut record: Value = serde_json::from_slice(bytes).unwrap();
            record["modified"] = json!(modified);
            if withdrawn.contains(&id.as_str()) {
                record["withdrawn"] = json!(modified);
            }
            *bytes = serde_json::to_vec(&record).unwrap();
            *old_modified = modified;
        }
        export.version += 1;
    }
}

fn sync_settings(osv: &OsvServer, sources: &str) -> SyncSettings {
    SyncSettings {
        sources: SourceSelection::parse(sources).unwrap(),
        osv_base: osv.base(),
        timeout: Duration::from_secs(2),
        ..SyncSettings::default()
    }
}

// ---------------------------------------------------------------------------------------------
// Through the API

async fn sources(app: &TestApp) -> Vec<Value> {
    let (status, body) = app
        .get_json(
            &format!("{SOURCES}?{OWN_API}"),
            &app.token(SUB, Role::Reader),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    body["value"].as_array().unwrap().clone()
}

async fn source(app: &TestApp, name: &str) -> Value {
    sources(app)
        .await
        .into_iter()
        .find(|s| s["name"] == name)
        .unwrap_or_else(|| panic!("{name} is not listed"))["properties"]
        .clone()
}

async fn sync_now(app: &TestApp, name: &str, role: Role) -> (u16, Value) {
    let encoded = name
        .replace('%', "%25")
        .replace('/', "%2F")
        .replace(' ', "%20");
    let response = app
        .client
        .post(app.url(&format!("{SOURCES}/{encoded}:sync?{OWN_API}")))
        .bearer_auth(app.token("*", role))
        .send()
        .await
        .unwrap();
    json_of(response).await
}

async fn sync_ok(app: &TestApp, name: &str) -> Value {
    let (status, body) = sync_now(app, name, Role::Admin).await;
    assert_eq!(status, 200, "{body}");
    body
}

/// Pushes Debian 10 with libgnutls30 3.6.7-4+deb10u2 to a fake registry, scans it and returns its
/// digest.
async fn scanned_debian_image(app: &TestApp) -> (Fake, String) {
    let registry = Fake::start(FakeAuth::None).await;
    let digest = registry.put_built_image(
        "team/app",
        Some("v1"),
        &debian_with_gnutls(Some("3.6.7-4+deb10u2"), vec![]),
    );
    connect(app, "fake", &registry.host()).await;
    let (status, _, body) = post_scan(
        app,
        &app.token(SUB, Role::Contributor),
        &json!({"image": format!("{}/team/app:v1", registry.host())}),
        None,
    )
    .await;
    assert_eq!(status, 202, "{body}");
    let scan = wait_for_scan_end(app, body["name"].as_str().unwrap()).await;
    assert_eq!(scan["properties"]["status"], "Succeeded", "{scan}");
    (registry, digest)
}

async fn health(app: &TestApp, digest: &str) -> Value {
    let (status, body) = app
        .get_json(
            &format!("/subscriptions/{SUB}/providers/Microsoft.Security/images/{digest}?{OWN_API}"),
            &app.token(SUB, Role::Reader),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    body["properties"]["health"].clone()
}

async fn advisory_modified(app: &TestApp, id: &str) -> (String, Value) {
    let (status, body) = app
        .get_json(
            &format!("/providers/Microsoft.Security/advisories/{id}?{OWN_API}"),
            &app.token(SUB, Role::Reader),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    (
        body["properties"]["modified"].as_str().unwrap().to_owned(),
        body["properties"]["withdrawn"].clone(),
    )
}

async fn advisory_count(app: &TestApp) -> i64 {
    let (status, body) = app
        .get_json(
            &format!("/providers/Microsoft.Security/advisories:status?{OWN_API}"),
            &app.token(SUB, Role::Reader),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    body["advisories"].as_i64().unwrap()
}

/// Scans of `trigger` that have succeeded.
async fn succeeded(app: &TestApp, trigger: &str) -> usize {
    crate::support::scans::scans(app, &format!("&trigger={trigger}&status=Succeeded"))
        .await
        .len()
}

async fn wait_for_rematches(app: &TestApp, count: usize) {
    wait_for(
        &format!("{count} AdvisoryUpdate re-match(es)"),
        Duration::from_secs(60),
        || async { (succeeded(app, "AdvisoryUpdate").await >= count).then_some(()) },
    )
    .await;
}

/// The advisories of the findings still open (resolved ones are listed as Healthy).
fn finding_ids(findings: &[Value]) -> Vec<String> {
    let mut ids: Vec<String> = findings
        .iter()
        .filter(|f| f["properties"]["status"]["code"] == "Unhealthy")
        .map(|f| f["properties"]["id"].as_str().unwrap().to_owned())
        .collect();
    ids.sort();
    ids
}

// ---------------------------------------------------------------------------------------------
// The tests

async fn osv_sources_sync_in_full_then_only_what_changed(backend: Backend) {
    let osv = OsvServer::start();
    let settings = sync_settings(&osv, "auto");
    let app = spawn_app_with(backend, |s| s.jobs.advisory_sync = settings).await;

    // `auto`: nothing stored, nothing to sync; a scanned Debian image makes it `osv:Debian`.
    assert_eq!(sources(&app).await, Vec::<Value>::new());
    let (_registry, digest) = scanned_debian_image(&app).await;
    let listed = source(&app, "osv:Debian").await;
    assert_eq!(listed["configured"], true, "{listed}");
    assert_eq!(listed["lastSuccess"], Value::Null, "{listed}");

    // Readers may look, only admins sync; unknown URLs and paths are not synced on request.
    assert_eq!(sync_now(&app, "osv:Debian", Role::Contributor).await.0, 403);
    let (status, body) = sync_now(&app, "/etc", Role::Admin).await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(body["error"]["code"], "AdvisorySourceNotFound");

    // First sync: the zip, once, and every record in it.
    let first = sync_ok(&app, "osv:Debian").await;
    assert_eq!(first["result"], "Updated", "{first}");
    assert_eq!(first["records"], osv.records() as u64, "{first}");
    assert_eq!(first["changed"], osv.records() as u64, "{first}");
    assert_eq!(osv.take_requests(), ["/Debian/all.zip"]);
    assert_eq!(advisory_count(&app).await, osv.records() as i64);
    // The image scanned before any data is re-matched when the data arrives.
    assert_eq!(first["imagesQueued"], 1, "{first}");
    wait_for_rematches(&app, 1).await;
    assert_eq!(health(&app, &digest).await["code"], "Unhealthy");
    let before = finding_ids(&findings(&app).await);
    assert!(before.contains(&GNUTLS_ADVISORY.to_owned()), "{before:?}");
    let synced = source(&app, "osv:Debian").await;
    assert_eq!(synced["records"], osv.records() as u64, "{synced}");
    assert_eq!(synced["lastError"], Value::Null, "{synced}");
    assert!(synced["newestModified"].is_string(), "{synced}");

    // Nothing new upstream: only the list is read, no record transferred; freshness still moves.
    let second = sync_ok(&app, "osv:Debian").await;
    assert_eq!(second["result"], "Unchanged", "{second}");
    assert_eq!(osv.take_requests(), ["/Debian/modified_id.csv"]);
    let after_second = source(&app, "osv:Debian").await;
    assert!(
        after_second["lastSuccess"].as_str() > synced["lastSuccess"].as_str(),
        "{synced} then {after_second}"
    );

    // 20 records change upstream (one of them withdrawn): exactly those 20 are fetched.
    let changed: Vec<String> = {
        let export = osv.export.lock().unwrap();
        let gnutls = export
            .records
            .iter()
            .filter(|(_, (_, bytes))| String::from_utf8_lossy(bytes).contains("\"gnutls28\""))
            .map(|(id, _)| id.clone());
        let mut ids: Vec<String> = gnutls.take(5).collect();
        let others: Vec<String> = export
            .records
            .keys()
            .filter(|id| !ids.contains(id))
            .take(20 - ids.len())
            .cloned()
            .collect();
        ids.extend(others);
        ids
    };
    assert_eq!(changed.len(), 20);
    assert!(changed.contains(&GNUTLS_ADVISORY.to_owned()), "{changed:?}");
    osv.change(&changed, "2026-12-01T00:00:00Z", &[GNUTLS_ADVISORY]);
    let third = sync_ok(&app, "osv:Debian").await;
    assert_eq!(third["result"], "Updated", "{third}");
    assert_eq!(third["changed"], 20, "{third}");
    let mut fetched = osv.take_requests();
    assert_eq!(fetched.remove(0), "/Debian/modified_id.csv");
    fetched.sort();
    let mut expected: Vec<String> = changed
        .iter()
        .map(|id| format!("/Debian/{id}.json"))
        .collect();
    expected.sort();
    assert_eq!(fetched, expected);
    let (modified, withdrawn) = advisory_modified(&app, GNUTLS_ADVISORY).await;
    assert!(modified.starts_with("2026-12-01"), "{modified}");
    assert!(withdrawn.is_string(), "{withdrawn}");
    // The re-match follows: the withdrawn advisory no longer counts against the image.
    assert_eq!(third["imagesQueued"], 1, "{third}");
    wait_for_rematches(&app, 2).await;
    let after = finding_ids(&findings(&app).await);
    let expected_after: Vec<String> = before
        .iter()
        .filter(|id| *id != GNUTLS_ADVISORY)
        .cloned()
        .collect();
    assert_eq!(after, expected_after);
    let status = source(&app, "osv:Debian").await;
    assert_eq!(status["lastChanged"], 20, "{status}");
    assert!(
        status["newestModified"]
            .as_str()
            .unwrap()
            .starts_with("2026-12-01T00:00:19"),
        "{status}"
    );

    // And again nothing: the cursor moved past the 20.
    assert_eq!(sync_ok(&app, "osv:Debian").await["result"], "Unchanged");
    assert_eq!(osv.take_requests(), ["/Debian/modified_id.csv"]);

    // The CLI reads the same status.
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_crowsnest"))
        .args(["advisories", "status"])
        .env("DATABASE_URL", app.database_url())
        .env("CROWSNEST_ADVISORY_SOURCES", "auto")
        .env_remove("CROWSNEST_OSV_BASE_URL")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{text} {}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(text.contains("osv:Debian"), "{text}");
    assert!(
        text.contains(&format!("{} records", osv.records())),
        "{text}"
    );
}

async fn failed_syncs_keep_the_data_and_show_the_error(backend: Backend) {
    let osv = OsvServer::start();
    let settings = sync_settings(&osv, "osv:Debian");
    let retry = settings.retry;
    let app = spawn_app_with(backend, |s| s.jobs.advisory_sync = settings).await;
    assert_eq!(sync_ok(&app, "osv:Debian").await["result"], "Updated");
    let (_registry, digest) = scanned_debian_image(&app).await;
    let healthy_before = health(&app, &digest).await;
    assert_eq!(healthy_before["code"], "Unhealthy");
    let findings_before = finding_ids(&findings(&app).await);
    let count_before = advisory_count(&app).await;
    let (modified_before, _) = advisory_modified(&app, GNUTLS_ADVISORY).await;
    let good = source(&app, "osv:Debian").await;

    // Upstream changes, but only the zip tells (a mirror without the list).
    osv.set_list(false);
    osv.change(
        &[GNUTLS_ADVISORY.to_owned()],
        "2026-12-02T00:00:00Z",
        &[GNUTLS_ADVISORY],
    );
    let faults = [
        (Fault::Truncated, "zip"),
        (Fault::ServerError, "500"),
        (Fault::NotOsv, "holds no OSV record"),
        // Last: the stalled answer holds the server's one thread for a while.
        (Fault::Stall, "timed out"),
    ];
    for (failures, (fault, says)) in faults.into_iter().enumerate() {
        osv.set_fault(Some(fault));
        let report = sync_ok(&app, "osv:Debian").await;
        assert_eq!(report["result"], "Failed", "{fault:?}: {report}");
        let error = report["error"].as_str().unwrap();
        assert!(error.contains(says), "{fault:?}: {error}");

        // Nothing stored changed, nothing was queued, and the status says why.
        assert_eq!(advisory_count(&app).await, count_before, "{fault:?}");
        assert_eq!(
            advisory_modified(&app, GNUTLS_ADVISORY).await.0,
            modified_before,
            "{fault:?}"
        );
        assert_eq!(report["imagesQueued"], 0, "{fault:?}");
        assert_eq!(health(&app, &digest).await, healthy_before, "{fault:?}");
        assert_eq!(
            finding_ids(&findings(&app).await),
            findings_before,
            "{fault:?}"
        );
        let status = source(&app, "osv:Debian").await;
        assert_eq!(status["lastError"], error, "{fault:?}");
        assert_eq!(status["consecutiveFailures"], failures + 1, "{status}");
        assert_eq!(status["lastSuccess"], good["lastSuccess"], "{status}");
        assert_eq!(status["records"], good["records"], "{status}");
        // Retried later, waiting twice as long after each failure.
        let attempt =
            chrono::DateTime::parse_from_rfc3339(status["lastAttempt"].as_str().unwrap()).unwrap();
        let next =
            chrono::DateTime::parse_from_rfc3339(status["nextRun"].as_str().unwrap()).unwrap();
        let wait = (next - attempt).to_std().unwrap();
        let expected = retry * 2u32.pow(failures as u32);
        assert!(
            wait >= expected && wait < expected + Duration::from_secs(5),
            "{fault:?}: retried after {wait:?}, expected {expected:?}"
        );
    }
    assert_eq!(succeeded(&app, "AdvisoryUpdate").await, 0);

    // The fault gone (and the stalled answer sent), the next sync takes the change and the
    // re-match follows.
    osv.set_fault(None);
    tokio::time::sleep(STALL).await;
    let recovered = sync_ok(&app, "osv:Debian").await;
    assert_eq!(recovered["result"], "Updated", "{recovered}");
    assert_eq!(recovered["changed"], 1, "{recovered}");
    let status = source(&app, "osv:Debian").await;
    assert_eq!(status["lastError"], Value::Null, "{status}");
    assert_eq!(status["consecutiveFailures"], 0, "{status}");
    assert!(advisory_modified(&app, GNUTLS_ADVISORY).await.1.is_string());
    wait_for_rematches(&app, 1).await;
}

async fn two_servers_sync_a_source_once(backend: Backend) {
    let osv = OsvServer::start();
    let mut settings = sync_settings(&osv, "osv:Debian");
    settings.background = true;
    let background = settings.clone();
    let first = spawn_app_with(backend, |s| s.jobs.advisory_sync = background).await;
    // A second `serve` on the same database, started at the same time.
    let second = Application::build(Settings {
        database: DatabaseUrl::parse(first.database_url()).unwrap(),
        db_pool_size: 4,
        bind: "127.0.0.1:0".to_owned(),
        public_url: None,
        http_workers: Some(1),
        request_body: Default::default(),
        auth: first.auth.clone(),
        jobs: crowsnest::config::JobSettings {
            advisory_sync: settings.clone(),
            ..test_job_settings()
        },
    })
    .await
    .unwrap();
    let second_handle = second.handle();
    tokio::spawn(second.run_until_stopped());
    // And two more syncers racing on the pool, as two processes would.
    let racers = [
        Syncer::new(first.pool.clone(), settings.clone(), None).unwrap(),
        Syncer::new(first.pool.clone(), settings.clone(), None).unwrap(),
    ];
    let (a, b) = tokio::join!(racers[0].sync_due(), racers[1].sync_due());
    let reports: Vec<_> = a.unwrap().into_iter().chain(b.unwrap()).collect();
    let updated = reports
        .iter()
        .filter(|r| r.result == SyncResult::Updated)
        .count();
    assert!(updated <= 1, "{reports:?}");

    wait_for("the first sync", Duration::from_secs(60), || async {
        source(&first, "osv:Debian").await["lastSuccess"]
            .is_string()
            .then_some(())
    })
    .await;
    // Whoever comes next finds it synced and not due for an hour.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let zips = osv
        .take_requests()
        .iter()
        .filter(|p| p.ends_with("all.zip"))
        .count();
    assert_eq!(zips, 1, "the zip was downloaded {zips} times");
    assert_eq!(advisory_count(&first).await, osv.records() as i64);
    let status = source(&first, "osv:Debian").await;
    assert_eq!(status["syncing"], false, "{status}");
    assert_eq!(status["consecutiveFailures"], 0, "{status}");
    drop(second_handle.stop(false));
}

async fn zip_urls_directories_and_feeds_sync_too(backend: Backend) {
    let osv = OsvServer::start();
    let zip = format!("{}Debian/all.zip", osv.base());
    let directory = shared_fixtures_dir().join("osv/records/alpine");
    let directory = directory.canonicalize().unwrap().display().to_string();
    // The KEV feed from a file on this machine: the real catalogue, later damaged.
    let feeds = tempfile::tempdir().unwrap();
    let kev_file = feeds.path().join("kev.json");
    let catalogue = read_shared_fixture("enrichment/known_exploited_vulnerabilities.json");
    std::fs::write(&kev_file, &catalogue).unwrap();
    let catalogued = serde_json::from_slice::<Value>(&catalogue).unwrap()["vulnerabilities"]
        .as_array()
        .unwrap()
        .len() as u64;
    let mut settings = sync_settings(&osv, &format!("{zip},{directory},kev"));
    settings.feeds.kev = kev_file.display().to_string();
    let app = spawn_app_with(backend, |s| s.jobs.advisory_sync = settings).await;
    let mut names: Vec<String> = sources(&app)
        .await
        .iter()
        .map(|s| s["name"].as_str().unwrap().to_owned())
        .collect();
    names.sort();
    let mut expected = vec![zip.clone(), directory.clone(), "kev".to_owned()];
    expected.sort();
    assert_eq!(names, expected);

    // A zip URL: downloaded once, then asked for with its ETag and answered 304.
    let first = sync_ok(&app, &zip).await;
    assert_eq!(first["result"], "Updated", "{first}");
    assert_eq!(first["records"], osv.records() as u64, "{first}");
    let again = sync_ok(&app, &zip).await;
    assert_eq!(again["result"], "Unchanged", "{again}");
    assert_eq!(osv.take_requests(), ["/Debian/all.zip", "/Debian/all.zip"]);
    assert_eq!(advisory_count(&app).await, osv.records() as i64);

    // A directory of records.
    let local = sync_ok(&app, &directory).await;
    assert_eq!(local["result"], "Updated", "{local}");
    assert_eq!(local["records"], 2, "{local}");
    assert_eq!(advisory_count(&app).await, osv.records() as i64 + 2);

    // A feed: its file handed to its loader; a damaged file fails, saying why, and keeps the
    // catalogue stored before.
    let feed = sync_ok(&app, "kev").await;
    assert_eq!(feed["result"], "Updated", "{feed}");
    assert_eq!(feed["records"], catalogued, "{feed}");
    std::fs::write(&kev_file, &catalogue[..catalogue.len() / 2]).unwrap();
    let feed = sync_ok(&app, "kev").await;
    assert_eq!(feed["result"], "Failed", "{feed}");
    let error = feed["error"].as_str().unwrap().to_owned();
    assert_eq!(source(&app, "kev").await["lastError"], error.as_str());
    assert_eq!(source(&app, "kev").await["records"], catalogued);
    let kept = crowsnest::store::run(&app.pool, |c| {
        crowsnest::store::exploit_intel::for_advisories(c, &["DSA-4839-1"])
    })
    .await
    .unwrap();
    assert_eq!(
        kept["DSA-4839-1"]
            .known_exploited
            .as_ref()
            .map(|k| k.cve_id.as_str()),
        Some("CVE-2021-3156"),
        "the catalogue stored before the damaged file is kept"
    );

    // The CLI syncs the same way: the directory again (nothing new), the feed (a failure).
    let cli = |args: &[&str]| {
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_crowsnest"));
        for (var, _) in std::env::vars_os() {
            if var.to_string_lossy().starts_with("CROWSNEST_") {
                command.env_remove(var);
            }
        }
        let output = command
            .args(["advisories", "sync"])
            .args(args)
            .env("DATABASE_URL", app.database_url())
            .env("CROWSNEST_KEV_URL", &kev_file)
            .output()
            .unwrap();
        (
            output.status.success(),
            String::from_utf8_lossy(&output.stdout).into_owned(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    };
    let (ok, stdout, stderr) = cli(&[&directory]);
    assert!(ok, "{stdout} {stderr}");
    assert!(
        stdout.contains(&format!("{directory}: 2 records, nothing new")),
        "{stdout}"
    );
    // The damaged feed file fails from the CLI too (the feed's location from the environment).
    let (ok, stdout, stderr) = cli(&["kev"]);
    assert!(!ok, "{stdout}");
    assert!(stdout.contains("kev: failed: "), "{stdout}");
    assert!(stderr.contains("1 of 1 source(s) did not sync"), "{stderr}");
}

// ---------------------------------------------------------------------------------------------
// `crowsnest scan` on an empty database

/// A one-shot scan on a database without Debian data syncs `osv:Debian` from the configured
/// export before it answers (the verdict rests on the data), and says so; offline, it exits 2.
#[test]
fn a_scan_without_data_syncs_the_ecosystem_first() {
    let osv = OsvServer::start();
    let dir = tempfile::tempdir().unwrap();
    let layout = dir.path().join("layout");
    crate::scan::write_oci_layout(
        &layout,
        &debian_with_gnutls(Some("3.6.7-4+deb10u2"), vec![]),
    );
    let reference = format!("oci:{}:v1", layout.display());
    let db = dir.path().join("crowsnest.db");
    let scan = |extra: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_crowsnest"))
            .args(["scan", &reference])
            .args(extra)
            .env("DATABASE_URL", &db)
            .env("CROWSNEST_OSV_BASE_URL", osv.base().as_str())
            .output()
            .unwrap();
        (
            out.status.code().unwrap(),
            String::from_utf8(out.stdout).unwrap(),
            String::from_utf8(out.stderr).unwrap(),
        )
    };

    let (code, stdout, stderr) = scan(&["--offline"]);
    assert_eq!(code, 2, "{stdout}{stderr}");
    assert!(
        stderr.contains("no advisory data for Debian:10"),
        "{stderr}"
    );
    assert!(osv.take_requests().is_empty(), "offline means offline");

    let (code, stdout, stderr) = scan(&[]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(
        stderr.contains("no advisory data for Debian:10: syncing osv:Debian first"),
        "{stderr}"
    );
    assert_eq!(osv.take_requests(), ["/Debian/all.zip"]);
    assert!(stdout.contains(GNUTLS_ADVISORY), "{stdout}");
    assert!(
        stdout.contains("advisory data: Debian:10 (") && stdout.contains(" seconds ago"),
        "{stdout}"
    );

    // The data is there now: the next scan syncs nothing.
    let (code, stdout, stderr) = scan(&[]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(!stderr.contains("syncing"), "{stderr}");
    assert!(osv.take_requests().is_empty());
}
