//! The durable scan queue across real `crowsnest serve` processes: a worker killed with SIGKILL in
//! the middle of a scan loses nothing, and two servers on one PostgreSQL database share the queue
//! without running any scan twice.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs::File;
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crowsnest::api::auth::{SubscriptionsClaim, mint_hs256};
use crowsnest::config::AuthSettings;
use crowsnest::domain::Role;
use crowsnest::store::{self, Pool};
use diesel::prelude::*;
use serde_json::{Value, json};

use crate::backend_tests;
use crate::support::app::*;
use crate::support::database::{Backend, TestDb};
use crate::support::fake_registry::{Fake, FakeAuth, Resp};
use crate::support::fixtures::debian_with_gnutls;
use crate::support::free_port;
use crate::support::images::{Image, Layer, TarEntry};

backend_tests!(a_killed_worker_loses_nothing);

const SUB: &str = "sub-1";
const REPOSITORY: &str = "team/app";

// ---------------------------------------------------------------------------------------------
// The images and the registry serving them

/// Debian 10 with libgnutls30 from gnutls28 3.6.7-4+deb10u2 (affected by [`ADVISORY`]); `marker`
/// goes into a file of its own, so every marker makes a different image.
fn debian_image(marker: &str) -> Image {
    let marker = TarEntry::file("etc/build-marker", marker.as_bytes().to_vec(), 0o644);
    debian_with_gnutls(Some("3.6.7-4+deb10u2"), vec![marker])
}

/// DSA-4652-1 as osv.dev publishes it: gnutls28 on Debian 10 before 3.6.7-4+deb10u3.
const ADVISORY: &str = r#"{
  "schema_version": "1.6.0",
  "id": "DSA-4652-1",
  "summary": "gnutls28 - security update",
  "published": "2020-04-04T00:00:00Z",
  "modified": "2020-04-04T00:00:00Z",
  "aliases": ["CVE-2020-11501"],
  "affected": [{
    "package": {"ecosystem": "Debian:10", "name": "gnutls28", "purl": "pkg:deb/debian/gnutls28"},
    "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "3.6.7-4+deb10u3"}]}]
  }],
  "references": [{"type": "ADVISORY", "url": "https://security-tracker.debian.org/tracker/DSA-4652-1"}]
}"#;

async fn import_advisory(pool: &Pool) {
    let pool = pool.clone();
    tokio::task::spawn_blocking(move || {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("DSA-4652-1.json");
        std::fs::write(&path, ADVISORY).unwrap();
        let files = [("DSA-4652-1.json".to_owned(), path)];
        crowsnest::jobs::import_advisories::import_files(&pool, &files, &|_| {}).unwrap();
    })
    .await
    .unwrap();
}

/// An anonymous registry serving `images` under their tags in [`REPOSITORY`].
async fn registry_serving(images: &[(String, &Image)]) -> Fake {
    let registry = Fake::start(FakeAuth::None).await;
    for (tag, image) in images {
        registry.put_built_image(REPOSITORY, Some(tag), image);
    }
    registry
}

/// Answers the first request for `layer`'s blob after `delay`, later ones at once; the flag
/// returned is set when that first request arrives (before the delay).
fn slow_first_pull(registry: &Fake, layer: &Layer, delay: Duration) -> Arc<AtomicBool> {
    let started = Arc::new(AtomicBool::new(false));
    let (arrived, path, blob) = (
        started.clone(),
        blob_path(&layer.digest),
        layer.blob.clone(),
    );
    registry.set_hook(move |req| {
        (req.path() == path && !arrived.swap(true, Ordering::SeqCst)).then(|| {
            Resp::new(200)
                .header("Content-Type", "application/octet-stream")
                .body(blob.clone())
                .delay(delay)
        })
    });
    started
}

fn blob_path(digest: &str) -> String {
    format!("/v2/{REPOSITORY}/blobs/{digest}")
}

/// How many requests for the blob `digest` the registry had.
fn blob_gets(registry: &Fake, digest: &str) -> usize {
    let path = blob_path(digest);
    registry
        .requests()
        .iter()
        .filter(|r| r.path() == path)
        .count()
}

// ---------------------------------------------------------------------------------------------
// `crowsnest serve` processes

/// What the processes of one test share: the database, the JWT secret and the queue's timing.
struct Cluster {
    database_url: String,
    auth: AuthSettings,
    lease: &'static str,
    /// `CROWSNEST_QUEUE_POLL`.
    poll: &'static str,
    logs: tempfile::TempDir,
    client: reqwest::Client,
    token: String,
}

impl Cluster {
    fn new(db: &TestDb, lease: &'static str) -> Self {
        let auth = test_auth_settings();
        let token = mint_hs256(
            auth.hs256_secret.as_ref().unwrap(),
            &auth,
            "queue-test",
            SubscriptionsClaim::Many(vec![SUB.to_owned()]),
            Role::Contributor,
            Duration::from_secs(600),
        )
        .unwrap();
        Self {
            database_url: db.raw_url().to_owned(),
            auth,
            lease,
            poll: "200ms",
            logs: tempfile::tempdir().unwrap(),
            client: reqwest::Client::new(),
            token,
        }
    }

    /// Starts `crowsnest serve` with `workers` scan workers and waits until `/readyz` answers 200.
    async fn start(&self, name: &'static str, workers: usize) -> Server {
        let port = free_port();
        let log = self.logs.path().join(format!("{name}.log"));
        let out = File::create(&log).unwrap();
        let secret = self.auth.hs256_secret.as_ref().unwrap().expose();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_crowsnest"));
        // Nothing from the environment the tests run in: only the settings below.
        for (var, _) in std::env::vars_os() {
            let var = var.to_string_lossy().into_owned();
            if var.starts_with("CROWSNEST_") || var == "DATABASE_URL" || var == "RUST_LOG" {
                cmd.env_remove(var);
            }
        }
        cmd.arg("serve")
            .env("DATABASE_URL", &self.database_url)
            .env("CROWSNEST_BIND", format!("127.0.0.1:{port}"))
            .env("CROWSNEST_JWT_SECRET", std::str::from_utf8(secret).unwrap())
            .env("CROWSNEST_JWT_ISSUER", &self.auth.issuer)
            .env("CROWSNEST_JWT_AUDIENCE", &self.auth.audience)
            .env("CROWSNEST_WORKERS", workers.to_string())
            .env("CROWSNEST_SCAN_LEASE", self.lease)
            .env("CROWSNEST_QUEUE_POLL", self.poll)
            // One subscription over two processes: it may hold every worker of both.
            .env("CROWSNEST_SUBSCRIPTION_WORKER_SHARE", "2")
            .env("CROWSNEST_SCAN_RETRY_DELAY", "200ms")
            .env("CROWSNEST_HTTP_WORKERS", "1")
            .env("CROWSNEST_DB_POOL_SIZE", "4")
            .env("CROWSNEST_LOG_FORMAT", "json")
            // These tests are about the queue: no advisory source is synced behind their backs.
            .env("CROWSNEST_ADVISORY_SYNC_INTERVAL", "off")
            .stdin(Stdio::null())
            .stdout(Stdio::from(out.try_clone().unwrap()))
            .stderr(Stdio::from(out));
        let mut server = Server {
            name,
            child: cmd.spawn().unwrap(),
            base: format!("http://127.0.0.1:{port}"),
            log,
        };
        server.wait_ready(&self.client).await;
        server
    }

    async fn send(&self, request: reqwest::RequestBuilder) -> (u16, Value) {
        json_of(request.bearer_auth(&self.token).send().await.unwrap()).await
    }

    async fn get(&self, server: &Server, path_and_query: &str) -> (u16, Value) {
        self.send(self.client.get(format!("{}{path_and_query}", server.base)))
            .await
    }

    async fn connect_registry(&self, server: &Server, registry: &Fake) {
        let path = format!(
            "{}/subscriptions/{SUB}/resourceGroups/rg/providers/Microsoft.ContainerRegistry/registries/fake?{OWN_API}",
            server.base
        );
        let body = json!({"properties": {"loginServer": registry.host(), "insecure": true}});
        let (status, body) = self.send(self.client.put(path).json(&body)).await;
        assert_eq!(status, 201, "{body}");
    }

    /// Submits a scan of `image`; returns the scan's name.
    async fn submit(&self, server: &Server, image: &str) -> String {
        let path = format!(
            "{}/subscriptions/{SUB}/providers/Microsoft.Security/scans?{OWN_API}",
            server.base
        );
        let (status, body) = self
            .send(self.client.post(path).json(&json!({"image": image})))
            .await;
        assert_eq!(status, 202, "{body}");
        assert_eq!(body["type"], "Microsoft.Security/scans", "{body}");
        body["name"].as_str().unwrap().to_owned()
    }

    async fn scan(&self, server: &Server, name: &str) -> Value {
        let (status, body) = self
            .get(
                server,
                &format!(
                    "/subscriptions/{SUB}/providers/Microsoft.Security/scans/{name}?{OWN_API}"
                ),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        body
    }

    async fn scans(&self, server: &Server) -> Vec<Value> {
        let (status, body) = self
            .get(
                server,
                &format!(
                    "/subscriptions/{SUB}/providers/Microsoft.Security/scans?{OWN_API}&$top=1000"
                ),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        assert!(body.get("nextLink").is_none(), "one page: {body}");
        body["value"].as_array().unwrap().clone()
    }

    async fn usage(&self, server: &Server) -> Value {
        let (status, body) = self
            .get(
                server,
                &format!(
                    "/subscriptions/{SUB}/providers/Microsoft.Security/usage?{OWN_API}&$top=1000"
                ),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        body
    }
}

/// A running `crowsnest serve`, killed (SIGKILL) when dropped.
struct Server {
    name: &'static str,
    child: Child,
    base: String,
    log: PathBuf,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    async fn wait_ready(&mut self, client: &reqwest::Client) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!("{} exited ({status}):\n{}", self.name, self.log_text());
            }
            if let Ok(response) = client.get(format!("{}/readyz", self.base)).send().await
                && response.status() == 200
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{} is not ready after 60 s:\n{}",
                self.name,
                self.log_text()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// SIGKILL, and the proof that the signal (not an orderly exit) ended the process.
    fn kill(&mut self) {
        self.child.kill().unwrap();
        let status = self.child.wait().unwrap();
        assert_eq!(status.signal(), Some(9), "{}: {status}", self.name);
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The JSON log events whose message is `message`, as their fields.
    fn events(&self, message: &str) -> Vec<Value> {
        self.log_text()
            .lines()
            .filter_map(|line| serde_json::from_str::<Value>(line).ok())
            .map(|event| match event.get("fields") {
                Some(fields) => fields.clone(),
                None => event,
            })
            .filter(|fields| fields["message"] == message)
            .collect()
    }

    /// How often each scan id appears in the `message` events.
    fn scan_ids(&self, message: &str) -> BTreeMap<String, usize> {
        let mut ids = BTreeMap::new();
        for event in self.events(message) {
            let id = event["scan"].as_str().unwrap_or_else(|| panic!("{event}"));
            *ids.entry(id.to_owned()).or_insert(0) += 1;
        }
        ids
    }
}

async fn migrated_pool(db: &TestDb) -> Pool {
    let url = db.url.clone();
    tokio::task::spawn_blocking(move || {
        let pool = store::connect(&url, 2).unwrap();
        store::migrate(&pool).unwrap();
        pool
    })
    .await
    .unwrap()
}

// ---------------------------------------------------------------------------------------------
// The tests

/// A worker SIGKILLed while it pulls a layer: its lease runs out, a second process takes the scan
/// (attempt 2) and stores it once: one billing record, one image, its findings once.
async fn a_killed_worker_loses_nothing(backend: Backend) {
    let db = TestDb::new(backend).await;
    let pool = migrated_pool(&db).await;
    import_advisory(&pool).await;
    let image = debian_image("a killed worker");
    let digest = image.manifest_digest();
    let layer = image.layers[0].digest.clone();
    let registry = registry_serving(&[("1.0".to_owned(), &image)]).await;
    let slow_started = slow_first_pull(&registry, &image.layers[0], Duration::from_secs(3));
    let cluster = Cluster::new(&db, "2s");

    let mut first = cluster.start("first", 1).await;
    cluster.connect_registry(&first, &registry).await;
    let name = cluster
        .submit(&first, &format!("{}/{REPOSITORY}:1.0", registry.host()))
        .await;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let scan = cluster.scan(&first, &name).await;
        let status = scan["properties"]["status"].as_str().unwrap().to_owned();
        assert!(
            status == "Queued" || status == "Running",
            "the scan ended before the kill: {scan:#}\n{}",
            first.log_text()
        );
        if status == "Running" && slow_started.load(Ordering::SeqCst) {
            assert_eq!(scan["properties"]["attempts"], 1, "{scan:#}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the scan never pulled its layer: {scan:#}\n{}",
            first.log_text()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    first.kill();

    // The dead worker's lease stands until it runs out; nothing else touched the scan.
    let id = name.clone();
    let row = store::run(&pool, move |c| store::scans::find(c, SUB, &id))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(row.status, "Running", "{row:?}");
    assert_eq!(row.attempts, 1, "{row:?}");
    assert!(
        row.lease_owner.is_some() && row.finished_at.is_none(),
        "{row:?}"
    );

    let second = cluster.start("second", 1).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    let scan = loop {
        let scan = cluster.scan(&second, &name).await;
        let status = &scan["properties"]["status"];
        if status == "Succeeded" {
            break scan;
        }
        assert_ne!(status, "Failed", "{scan:#}\n{}", second.log_text());
        assert!(
            Instant::now() < deadline,
            "not done after 60 s: {scan:#}\n{}",
            second.log_text()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let properties = &scan["properties"];
    assert_eq!(properties["attempts"], 2, "{scan:#}");
    assert_eq!(properties["digest"], digest.as_str(), "{scan:#}");
    assert!(properties.get("error").is_none(), "{scan:#}");
    assert_eq!(properties["summary"]["packageCount"], 2, "{scan:#}");
    let counts = &properties["summary"]["findings"];
    let total: u64 = ["Critical", "High", "Medium", "Low"]
        .iter()
        .map(|s| counts[s].as_u64().unwrap())
        .sum();
    assert_eq!(total, 1, "{scan:#}");

    // Billed once, for this digest, by this scan.
    let usage = cluster.usage(&second).await;
    assert_eq!(usage["billedImages"], 1, "{usage:#}");
    assert_eq!(usage["value"][0]["digest"], digest.as_str(), "{usage:#}");
    assert_eq!(usage["value"][0]["scanId"], name.as_str(), "{usage:#}");

    // One image, Unhealthy for its one finding, stored once.
    let (status, list) = cluster
        .get(
            &second,
            &format!("/subscriptions/{SUB}/providers/Microsoft.Security/subAssessments?{SUB_API}&$top=100"),
        )
        .await;
    assert_eq!(status, 200, "{list}");
    let findings = list["value"].as_array().unwrap();
    assert_eq!(findings.len(), 1, "{list:#}");
    let data = &findings[0]["properties"]["additionalData"];
    assert_eq!(data["imageDigest"], digest.as_str(), "{list:#}");
    assert_eq!(data["packageName"], "libgnutls30", "{list:#}");
    let wanted = digest.clone();
    let (images, stored_findings, billing) = store::run(&pool, move |c| {
        use crowsnest::store::schema::{billing_records, findings, images};
        let images: Vec<(String, String)> = images::table
            .select((images::digest, images::health))
            .load(c)?;
        let findings: Vec<(String, String, String)> = findings::table
            .filter(findings::image_digest.eq(&wanted))
            .select((
                findings::advisory_id,
                findings::package_name,
                findings::installed_version,
            ))
            .load(c)?;
        let billing: Vec<(String, String)> = billing_records::table
            .select((billing_records::digest, billing_records::scan_id))
            .load(c)?;
        Ok((images, findings, billing))
    })
    .await
    .unwrap();
    assert_eq!(images, vec![(digest.clone(), "Unhealthy".to_owned())]);
    assert_eq!(
        stored_findings,
        vec![(
            "DSA-4652-1".to_owned(),
            "libgnutls30".to_owned(),
            "3.6.7-4+deb10u2".to_owned()
        )]
    );
    assert_eq!(billing, vec![(digest.clone(), name.clone())]);

    // The first process started the scan and never finished it; the second ran attempt 2 to the end.
    let started = first.events("scan started");
    assert_eq!(started.len(), 1, "{}", first.log_text());
    assert_eq!(started[0]["scan"], name.as_str());
    assert_eq!(started[0]["attempt"], 1);
    assert!(
        first.events("scan finished").is_empty(),
        "{}",
        first.log_text()
    );
    let started = second.events("scan started");
    assert_eq!(started.len(), 1, "{}", second.log_text());
    assert_eq!(started[0]["scan"], name.as_str());
    assert_eq!(started[0]["attempt"], 2);
    assert_eq!(
        second.scan_ids("scan finished"),
        BTreeMap::from([(name.clone(), 1)]),
        "{}",
        second.log_text()
    );
    // The layer was pulled by each process: the killed one's pull never completed.
    assert_eq!(blob_gets(&registry, &layer), 2);
}

/// Two servers (two workers each) on one PostgreSQL database: 50 scans submitted alternately to
/// both run exactly once each, spread over both processes, and are billed once each.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_servers_share_the_queue() {
    const SCANS: usize = 50;
    let db = TestDb::new(Backend::Postgres).await;
    let images: Vec<(String, Image)> = (0..SCANS)
        .map(|n| (format!("v{n}"), debian_image(&format!("build {n}"))))
        .collect();
    let served: Vec<(String, &Image)> = images.iter().map(|(t, i)| (t.clone(), i)).collect();
    let registry = registry_serving(&served).await;
    // A lease long enough that a busy machine never loses one: this test is about sharing.
    let cluster = Cluster::new(&db, "10s");
    // Both start on the empty database at once: migrations are serialised by an advisory lock.
    let (a, b) = tokio::join!(cluster.start("a", 2), cluster.start("b", 2));
    cluster.connect_registry(&a, &registry).await;

    let mut wanted: HashMap<String, String> = HashMap::new();
    for (n, (tag, image)) in images.iter().enumerate() {
        let server = if n % 2 == 0 { &a } else { &b };
        let name = cluster
            .submit(server, &format!("{}/{REPOSITORY}:{tag}", registry.host()))
            .await;
        wanted.insert(name, image.manifest_digest());
    }
    assert_eq!(wanted.len(), SCANS, "every submission is a scan of its own");

    let deadline = Instant::now() + Duration::from_secs(180);
    let scans = loop {
        let scans = cluster.scans(&b).await;
        if let Some(failed) = scans.iter().find(|s| s["properties"]["status"] == "Failed") {
            panic!("{failed:#}\n{}\n{}", a.log_text(), b.log_text());
        }
        if scans
            .iter()
            .all(|s| s["properties"]["status"] == "Succeeded")
            && scans.len() == SCANS
        {
            break scans;
        }
        assert!(
            Instant::now() < deadline,
            "not done after 180 s: {:#}",
            Value::from(scans)
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    for scan in &scans {
        let name = scan["name"].as_str().unwrap();
        let properties = &scan["properties"];
        assert_eq!(properties["attempts"], 1, "{scan:#}");
        assert_eq!(
            properties["digest"],
            wanted[name].as_str(),
            "the image of its tag: {scan:#}"
        );
        assert_eq!(properties["summary"]["packageCount"], 2, "{scan:#}");
    }
    let names: BTreeSet<String> = scans
        .iter()
        .map(|s| s["name"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(names, wanted.keys().cloned().collect::<BTreeSet<_>>());

    let usage = cluster.usage(&a).await;
    assert_eq!(usage["billedImages"], SCANS, "{usage:#}");
    let billed: BTreeSet<&str> = usage["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["scanId"].as_str().unwrap())
        .collect();
    assert_eq!(billed.len(), SCANS, "{usage:#}");

    // Every scan started and finished exactly once, in one process; both processes did some.
    let logs = || format!("{}\n{}", a.log_text(), b.log_text());
    let (started_a, started_b) = (a.scan_ids("scan started"), b.scan_ids("scan started"));
    let (finished_a, finished_b) = (a.scan_ids("scan finished"), b.scan_ids("scan finished"));
    for name in &names {
        let started = [&started_a, &started_b].map(|s| s.get(name).copied().unwrap_or(0));
        let finished = [&finished_a, &finished_b].map(|s| s.get(name).copied().unwrap_or(0));
        assert_eq!(
            started.iter().sum::<usize>(),
            1,
            "{name}: {started:?}\n{}",
            logs()
        );
        assert_eq!(
            finished,
            started,
            "{name}: finished where it started\n{}",
            logs()
        );
    }
    assert_eq!(
        started_a.len() + started_b.len(),
        SCANS,
        "no other scans ran"
    );
    assert!(
        !finished_a.is_empty() && !finished_b.is_empty(),
        "both processes ran scans: a {}, b {}",
        finished_a.len(),
        finished_b.len()
    );
    eprintln!("scans run: a {}, b {}", finished_a.len(), finished_b.len());
}

/// Two servers on one PostgreSQL database that poll only once a minute: a burst of submissions
/// to one of them wakes the other's workers at once (PostgreSQL notifies it), so both run scans
/// and the burst is done long before any poll.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_wakes_the_workers_of_every_process() {
    const SCANS: usize = 8;
    const POLL: Duration = Duration::from_secs(60);
    let db = TestDb::new(Backend::Postgres).await;
    let images: Vec<(String, Image)> = (0..SCANS)
        .map(|n| (format!("w{n}"), debian_image(&format!("burst {n}"))))
        .collect();
    let served: Vec<(String, &Image)> = images.iter().map(|(t, i)| (t.clone(), i)).collect();
    let registry = registry_serving(&served).await;
    // Each image's own layer takes a second to arrive: one process alone needs several seconds
    // for the burst, time enough for the other one to take its part.
    let slow: HashMap<String, Vec<u8>> = images
        .iter()
        .flat_map(|(_, image)| &image.layers)
        .map(|layer| (blob_path(&layer.digest), layer.blob.clone()))
        .collect();
    registry.set_hook(move |req| {
        slow.get(req.path()).map(|blob| {
            Resp::new(200)
                .header("Content-Type", "application/octet-stream")
                .body(blob.clone())
                .delay(Duration::from_secs(1))
        })
    });
    let mut cluster = Cluster::new(&db, "10s");
    cluster.poll = "60s";
    let (a, b) = tokio::join!(cluster.start("a", 2), cluster.start("b", 2));
    cluster.connect_registry(&a, &registry).await;

    let burst = Instant::now();
    for (tag, _) in &images {
        cluster
            .submit(&a, &format!("{}/{REPOSITORY}:{tag}", registry.host()))
            .await;
    }
    let logs = || format!("{}\n{}", a.log_text(), b.log_text());
    loop {
        let scans = cluster.scans(&a).await;
        if scans.len() == SCANS
            && scans
                .iter()
                .all(|s| s["properties"]["status"] == "Succeeded")
        {
            break;
        }
        // Far below the poll: only a wake-up gets the burst done in this time.
        assert!(
            burst.elapsed() < POLL / 2,
            "not done after {:?}: {:#}\n{}",
            burst.elapsed(),
            Value::from(scans),
            logs()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (ran_a, ran_b) = (a.scan_ids("scan finished"), b.scan_ids("scan finished"));
    eprintln!(
        "burst of {SCANS} done in {:?}: a ran {}, b ran {}",
        burst.elapsed(),
        ran_a.len(),
        ran_b.len()
    );
    assert_eq!(ran_a.len() + ran_b.len(), SCANS, "{}", logs());
    assert!(
        !ran_a.is_empty() && !ran_b.is_empty(),
        "both processes ran scans: a {}, b {}\n{}",
        ran_a.len(),
        ran_b.len(),
        logs()
    );
}
