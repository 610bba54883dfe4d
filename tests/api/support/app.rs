//! The test harness: a fresh database per test (SQLite file or PostgreSQL database), the app on a
//! free port, tokens, seeding through the store, and a log capture.

use std::io::Write;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use crowsnest::api::auth::{SubscriptionsClaim, mint_hs256};
use crowsnest::config::{AuthSettings, JobSettings, Secret, Settings};
use crowsnest::domain::{Role, Timestamp, finding_name};
use crowsnest::jobs::queue::QueueSettings;
use crowsnest::jobs::rescans::RescanSettings;
use crowsnest::startup::{Application, ServerHandle};
use crowsnest::store::findings::FindingRow;
use crowsnest::store::images::ImageRow;
use crowsnest::store::registries::RegistryRow;
use crowsnest::store::{self, DatabaseUrl, Pool};
use diesel::connection::SimpleConnection;
use diesel::{Connection, PgConnection};

pub const SUB_API: &str = "api-version=2019-01-01-preview";
pub const OWN_API: &str = "api-version=2026-11-01";
pub const KEY: &str = "dbd0cb49-b563-45e7-9724-889e799fa648";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Runs each named `async fn name(backend: Backend)` once per backend, as `name::sqlite` and `name::postgres`.
#[macro_export]
macro_rules! backend_tests {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite() {
                    super::$name($crate::support::app::Backend::Sqlite).await
                }
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres() {
                    super::$name($crate::support::app::Backend::Postgres).await
                }
            }
        )*
    };
}

// ---------------------------------------------------------------------------------------------
// Databases

/// A database that exists for one test and is dropped afterwards.
pub struct TestDb {
    pub url: DatabaseUrl,
    raw_url: String,
    cleanup: DbCleanup,
}

enum DbCleanup {
    Sqlite(#[allow(dead_code)] tempfile::TempDir),
    Postgres { admin_url: String, name: String },
}

impl TestDb {
    pub async fn new(backend: Backend) -> Self {
        tokio::task::spawn_blocking(move || Self::create(backend))
            .await
            .unwrap()
    }

    fn create(backend: Backend) -> Self {
        match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().unwrap();
                let raw_url = dir.path().join("crowsnest.db").to_str().unwrap().to_owned();
                Self {
                    url: DatabaseUrl::parse(&raw_url).unwrap(),
                    raw_url,
                    cleanup: DbCleanup::Sqlite(dir),
                }
            }
            Backend::Postgres => {
                let admin_url = postgres_admin_url().to_owned();
                let name = format!("crowsnest_test_{}", uuid::Uuid::new_v4().simple());
                let mut admin = PgConnection::establish(&admin_url).unwrap();
                admin
                    .batch_execute(&format!("CREATE DATABASE {name}"))
                    .unwrap();
                let raw_url = with_database(&admin_url, &name);
                Self {
                    url: DatabaseUrl::parse(&raw_url).unwrap(),
                    raw_url,
                    cleanup: DbCleanup::Postgres { admin_url, name },
                }
            }
        }
    }

    pub fn raw_url(&self) -> &str {
        &self.raw_url
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let DbCleanup::Postgres { admin_url, name } = &self.cleanup
            && let Ok(mut admin) = PgConnection::establish(admin_url)
        {
            let _ = admin.batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"));
        }
    }
}

fn with_database(admin_url: &str, name: &str) -> String {
    let mut url = url::Url::parse(admin_url).unwrap();
    url.set_path(&format!("/{name}"));
    url.to_string()
}

/// A PostgreSQL server to create test databases on: `CROWSNEST_TEST_POSTGRES_URL`, else the local
/// server on 127.0.0.1:5432, else a throwaway cluster started from the installed binaries. When none
/// can be had the tests fail, saying why; they never pass by skipping.
pub fn postgres_admin_url() -> &'static str {
    static URL: OnceLock<String> = OnceLock::new();
    URL.get_or_init(|| {
        if let Ok(url) = std::env::var("CROWSNEST_TEST_POSTGRES_URL") {
            if let Err(e) = PgConnection::establish(&url) {
                panic!("CROWSNEST_TEST_POSTGRES_URL={url} does not answer: {e}");
            }
            return url;
        }
        let local = "postgres://postgres@127.0.0.1:5432/postgres?connect_timeout=3";
        if PgConnection::establish(local).is_ok() {
            return local.to_owned();
        }
        match start_throwaway_cluster() {
            Ok(url) => url,
            Err(e) => panic!("no PostgreSQL for the tests: nothing answers on 127.0.0.1:5432 and a throwaway cluster could not be started: {e}"),
        }
    })
}

fn start_throwaway_cluster() -> Result<String, String> {
    let bindir = postgres_bindir()?;
    remove_stale_clusters();
    let dir = std::env::temp_dir().join(format!("crowsnest-test-pg-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let as_root = is_root();
    if as_root {
        // initdb refuses to run as root; the cluster belongs to the postgres user.
        run(Command::new("chown")
            .arg("-R")
            .arg("postgres:postgres")
            .arg(&dir))?;
    }
    let data = dir.join("data");
    let mut initdb = as_user(as_root, &bindir.join("initdb"));
    initdb
        .arg("-D")
        .arg(&data)
        .args(["-A", "trust", "-U", "postgres", "--no-sync"]);
    run(&mut initdb)?;
    let port = free_port();
    let mut postgres = as_user(as_root, &bindir.join("postgres"));
    postgres
        .arg("-D")
        .arg(&data)
        .arg("-p")
        .arg(port.to_string())
        .arg("-k")
        .arg(&dir)
        .args([
            "-c",
            "listen_addresses=127.0.0.1",
            "-c",
            "fsync=off",
            "-c",
            "max_connections=300",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    // The parent-death signal fires when the spawning *thread* ends, so spawn from a thread that
    // lives as long as the test process: the server stops when the tests end, however they end.
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let spawned = postgres.spawn().map(|_| ()).map_err(|e| e.to_string());
        let _ = tx.send(spawned);
        loop {
            std::thread::park();
        }
    });
    rx.recv().map_err(|e| e.to_string())??;
    let url = format!("postgres://postgres@127.0.0.1:{port}/postgres");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match PgConnection::establish(&url) {
            Ok(_) => return Ok(url),
            Err(e) if Instant::now() > deadline => {
                return Err(format!("the throwaway cluster did not start: {e}"));
            }
            Err(_) => std::thread::sleep(Duration::from_millis(200)),
        }
    }
}

fn as_user(as_root: bool, program: &Path) -> Command {
    let mut cmd = Command::new("setpriv");
    if as_root {
        cmd.args(["--reuid=postgres", "--regid=postgres", "--init-groups"]);
    }
    cmd.args(["--pdeathsig", "TERM", "--"]).arg(program);
    cmd
}

fn run(cmd: &mut Command) -> Result<(), String> {
    let out = cmd.output().map_err(|e| format!("{cmd:?}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{cmd:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

fn postgres_bindir() -> Result<PathBuf, String> {
    if let Ok(out) = Command::new("pg_config").arg("--bindir").output()
        && out.status.success()
    {
        let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        if dir.join("initdb").exists() {
            return Ok(dir);
        }
    }
    let mut candidates: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map_err(|_| {
            "PostgreSQL's server binaries are not installed (apt-get install postgresql)".to_owned()
        })?
        .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
        .filter(|p| p.join("initdb").exists())
        .collect();
    candidates.sort();
    candidates
        .pop()
        .ok_or_else(|| "no initdb under /usr/lib/postgresql/*/bin".to_owned())
}

fn remove_stale_clusters() {
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if let Some(pid) = name.strip_prefix("crowsnest-test-pg-")
            && !Path::new("/proc").join(pid).exists()
        {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

fn is_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self")
        .map(|m| m.uid() == 0)
        .unwrap_or(false)
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

// ---------------------------------------------------------------------------------------------
// Logs

static LOGS: Mutex<Vec<u8>> = Mutex::new(Vec::new());

struct LogWriter;

impl Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        LOGS.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Every log line of this test process, at debug level and above.
pub fn captured_logs() -> String {
    String::from_utf8_lossy(&LOGS.lock().unwrap()).into_owned()
}

fn init_logs() {
    static ONCE: OnceLock<()> = OnceLock::new();
    ONCE.get_or_init(|| {
        let _ = tracing_subscriber::fmt()
            .with_env_filter("debug")
            .with_ansi(false)
            .with_writer(|| LogWriter)
            .try_init();
    });
}

// ---------------------------------------------------------------------------------------------
// The application

pub struct TestApp {
    pub address: String,
    pub client: reqwest::Client,
    pub pool: Pool,
    pub auth: AuthSettings,
    /// Kept so the database lives as long as the app.
    pub _db: TestDb,
    handle: ServerHandle,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        // Sends the stop command now; nobody needs to wait for the workers to finish.
        drop(self.handle.stop(false));
    }
}

pub fn test_auth_settings() -> AuthSettings {
    AuthSettings {
        hs256_secret: Some(Secret::new(
            format!("test-secret-{}", uuid::Uuid::new_v4()).into_bytes(),
        )),
        issuer: "crowsnest".to_owned(),
        audience: "crowsnest".to_owned(),
        jwks_url: None,
        jwks_min_refresh: Duration::from_secs(10),
    }
}

/// Fast queue settings: quick polls, short leases and retries.
pub fn test_job_settings() -> JobSettings {
    JobSettings {
        queue: QueueSettings {
            workers: 2,
            lease: std::time::Duration::from_secs(10),
            max_attempts: 3,
            retry_delay: std::time::Duration::from_millis(200),
            poll: std::time::Duration::from_millis(100),
        },
        rescans: RescanSettings::default(),
    }
}

pub async fn spawn_app(backend: Backend) -> TestApp {
    spawn_app_with(backend, |_| {}).await
}

pub async fn spawn_app_with(backend: Backend, adjust: impl FnOnce(&mut Settings)) -> TestApp {
    init_logs();
    let db = TestDb::new(backend).await;
    let mut settings = Settings {
        database: db.url.clone(),
        db_pool_size: 4,
        bind: "127.0.0.1:0".to_owned(),
        public_url: None,
        http_workers: Some(1),
        auth: test_auth_settings(),
        jobs: test_job_settings(),
    };
    adjust(&mut settings);
    let app = Application::build(settings.clone())
        .await
        .expect("the application starts");
    let address = format!("http://127.0.0.1:{}", app.port());
    let handle = app.handle();
    tokio::spawn(app.run_until_stopped());
    let database = settings.database.clone();
    let pool = tokio::task::spawn_blocking(move || store::connect(&database, 2).unwrap())
        .await
        .unwrap();
    TestApp {
        address,
        client: reqwest::Client::new(),
        pool,
        auth: settings.auth,
        _db: db,
        handle,
    }
}

impl TestApp {
    pub fn token(&self, subscription: &str, role: Role) -> String {
        let subscriptions = if subscription == "*" {
            SubscriptionsClaim::One("*".to_owned())
        } else {
            SubscriptionsClaim::Many(vec![subscription.to_owned()])
        };
        let secret = self.auth.hs256_secret.as_ref().unwrap();
        mint_hs256(
            secret,
            &self.auth,
            "test-user",
            subscriptions,
            role,
            Duration::from_secs(600),
        )
        .unwrap()
    }

    /// The app's `DATABASE_URL`, for running the CLI against the same database.
    pub fn database_url(&self) -> &str {
        self._db.raw_url()
    }

    pub fn url(&self, path_and_query: &str) -> String {
        format!("{}{path_and_query}", self.address)
    }

    /// GET with a Reader token for `subscription`; returns status and JSON body.
    pub async fn get_json(&self, path_and_query: &str, token: &str) -> (u16, serde_json::Value) {
        let response = self
            .client
            .get(self.url(path_and_query))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        json_of(response).await
    }

    pub async fn put_json(
        &self,
        path_and_query: &str,
        token: &str,
        body: &serde_json::Value,
    ) -> (u16, serde_json::Value) {
        let response = self
            .client
            .put(self.url(path_and_query))
            .bearer_auth(token)
            .json(body)
            .send()
            .await
            .unwrap();
        json_of(response).await
    }

    pub async fn db<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut store::AnyConnection) -> diesel::QueryResult<T> + Send + 'static,
    ) -> T {
        store::run(&self.pool, work).await.unwrap()
    }

    pub async fn seed_registry(
        &self,
        subscription: &str,
        resource_group: &str,
        name: &str,
    ) -> RegistryRow {
        let row = registry_row(subscription, resource_group, name);
        let insert = row.clone();
        self.db(move |c| store::registries::insert(c, &insert))
            .await;
        row
    }

    pub async fn seed_image(
        &self,
        registry: &RegistryRow,
        repository: &str,
        digest: &str,
    ) -> ImageRow {
        let row = image_row(registry, repository, digest);
        let insert = row.clone();
        self.db(move |c| store::images::insert(c, &insert)).await;
        row
    }

    pub async fn seed_findings(&self, rows: Vec<FindingRow>) {
        self.db(move |c| c.transaction(|c| store::findings::insert(c, &rows)))
            .await;
    }
}

/// Status and body; a body that is not JSON fails the test (every answer here is JSON).
pub async fn json_of(response: reqwest::Response) -> (u16, serde_json::Value) {
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned());
    let text = response.text().await.unwrap();
    if text.is_empty() {
        return (status, serde_json::Value::Null);
    }
    assert!(
        content_type
            .as_deref()
            .is_some_and(|c| c.starts_with("application/json")),
        "status {status}: content-type {content_type:?}, body {text}"
    );
    let body = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("status {status}: not JSON ({e}): {text}"));
    (status, body)
}

/// Asserts a CloudError with this status and code, and a message worth reading.
pub fn assert_cloud_error(
    status: u16,
    body: &serde_json::Value,
    want_status: u16,
    want_code: &str,
) {
    assert_eq!(status, want_status, "{body}");
    assert_eq!(body["error"]["code"], want_code, "{body}");
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(message.len() > 10, "a useful message: {body}");
}

// ---------------------------------------------------------------------------------------------
// Rows

pub fn digest_of(seed: &str) -> String {
    use sha2::Digest;
    format!(
        "sha256:{}",
        hex::encode(sha2::Sha256::digest(seed.as_bytes()))
    )
}

pub fn registry_row(subscription: &str, resource_group: &str, name: &str) -> RegistryRow {
    let now = Timestamp::now().micros();
    RegistryRow {
        id: store::new_id(),
        subscription_id: subscription.to_owned(),
        resource_group: resource_group.to_owned(),
        name: name.to_owned(),
        login_server: format!("{name}.{resource_group}.{subscription}.example.com"),
        insecure: false,
        credentials: None,
        webhook_secret_sha256: "0".repeat(64),
        created_at: now,
        updated_at: now,
    }
}

pub fn image_row(registry: &RegistryRow, repository: &str, digest: &str) -> ImageRow {
    ImageRow {
        id: store::new_id(),
        registry_id: registry.id.clone(),
        subscription_id: registry.subscription_id.clone(),
        repository: repository.to_owned(),
        digest: digest.to_owned(),
        index_digest: None,
        platform: Some("linux/amd64".to_owned()),
        os: Some("debian 12".to_owned()),
        health: "Unhealthy".to_owned(),
        health_reason: None,
        pushed_at: Some(Timestamp::now().micros()),
        pulled_at: None,
        scanned_at: Some(Timestamp::now().micros()),
        running: false,
        created_at: Timestamp::now().micros(),
    }
}

/// A realistic Debian finding; tests change the fields they care about.
pub fn finding_row(
    registry: &RegistryRow,
    image: &ImageRow,
    advisory: &str,
    package: &str,
) -> FindingRow {
    let registry_id = crowsnest::domain::RegistryId::format(
        &registry.subscription_id,
        &registry.resource_group,
        &registry.name,
    );
    let name = finding_name(
        &registry.subscription_id,
        &registry_id,
        &image.repository,
        &image.digest,
        advisory,
        package,
    );
    let now = Timestamp::now().micros();
    FindingRow {
        id: name.to_string(),
        subscription_id: registry.subscription_id.clone(),
        resource_group: registry.resource_group.clone(),
        registry_id: registry.id.clone(),
        registry_name: registry.name.clone(),
        image_id: image.id.clone(),
        repository: image.repository.clone(),
        image_digest: image.digest.clone(),
        advisory_id: advisory.to_owned(),
        package_name: package.to_owned(),
        installed_version: "3.0.11-1~deb12u1".to_owned(),
        fixed_version: Some("3.0.11-1~deb12u2".to_owned()),
        ecosystem: "Debian:12".to_owned(),
        category: "Debian".to_owned(),
        severity: "High".to_owned(),
        severity_source: "cvss3".to_owned(),
        cvss2_base: Some(7.5),
        cvss3_base: Some(8.1),
        display_name: format!("{package}: {advisory}"),
        description: format!("{advisory} affects {package}."),
        remediation: format!("Upgrade {package} from 3.0.11-1~deb12u1 to 3.0.11-1~deb12u2 or later."),
        impact: "High".to_owned(),
        cves: serde_json::json!([{"title": advisory, "link": format!("https://nvd.nist.gov/vuln/detail/{advisory}")}]).to_string(),
        vendor_references: serde_json::json!([{"title": "DSA-5532-1", "link": "https://security-tracker.debian.org/tracker/DSA-5532-1"}]).to_string(),
        published_at: Some(now - 86_400_000_000),
        patchable: true,
        layer_digest: Some(digest_of("layer")),
        first_seen: now,
        last_seen: now,
        resolved_at: None,
        fingerprint: String::new(),
        severity_rank: 3,
    }
}
