//! The app under test: [`spawn_app`] starts the service on a free port over a fresh database
//! (see `database.rs`) and returns a [`TestApp`] to call it with tokens of any role, seed the
//! store and read it back; plus a capture of the process's log lines.

use std::io::Write;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use crowsnest::api::auth::{SubscriptionsClaim, mint_hs256};
use crowsnest::config::{AuthSettings, JobSettings, Secret, Settings};
use crowsnest::domain::Role;
use crowsnest::jobs::advisory_sync::SyncSettings;
use crowsnest::jobs::queue::QueueSettings;
use crowsnest::jobs::rescans::RescanSettings;
use crowsnest::startup::{Application, ServerHandle};
use crowsnest::store::findings::FindingRow;
use crowsnest::store::images::ImageRow;
use crowsnest::store::registries::RegistryRow;
use crowsnest::store::{self, Pool};
use diesel::Connection;

use super::database::{Backend, TestDb};
use super::rows::{image_row, registry_row};

/// The api-version of the Azure sub-assessments routes.
pub const SUB_API: &str = "api-version=2019-01-01-preview";
/// The api-version of the service's own routes (registries, scans, images, advisories).
pub const OWN_API: &str = "api-version=2026-11-01";
/// The assessment key of container registry images' vulnerabilities, the sub-assessments' parent.
pub const KEY: &str = "dbd0cb49-b563-45e7-9724-889e799fa648";

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
            // Most tests run one subscription; the fairness tests set their own share.
            subscription_share: 1.0,
            ..QueueSettings::default()
        },
        rescans: RescanSettings::default(),
        running_images: Default::default(),
        // Off: tests never reach the internet; the sync tests name a local server.
        advisory_sync: SyncSettings::default(),
        exemptions: Default::default(),
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
        request_body: Default::default(),
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
        self.send_json(reqwest::Method::PUT, path_and_query, token, body)
            .await
    }

    pub async fn post_json(
        &self,
        path_and_query: &str,
        token: &str,
        body: &serde_json::Value,
    ) -> (u16, serde_json::Value) {
        self.send_json(reqwest::Method::POST, path_and_query, token, body)
            .await
    }

    async fn send_json(
        &self,
        method: reqwest::Method,
        path_and_query: &str,
        token: &str,
        body: &serde_json::Value,
    ) -> (u16, serde_json::Value) {
        let response = self
            .client
            .request(method, self.url(path_and_query))
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
