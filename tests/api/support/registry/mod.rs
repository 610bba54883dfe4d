//! Test support: a REAL Docker Distribution registry (Debian package `docker-registry`,
//! Distribution 2.8) on a free loopback port, plus a hand-rolled image builder/pusher
//! (no container engine, no skopeo/umoci) and fixture images built from the package
//! databases in `../shared/fixtures/pkgdb/`.
//!
//! * [`TestRegistry`]: spawns `docker-registry serve <config>` with storage in a temp dir,
//!   optional htpasswd (Basic) or token (Bearer) auth, optional notifications; killed on Drop.
//! * [`TokenServer`] (started by `TestRegistry` for [`RegistryAuth::Token`]): issues RS256 JWTs
//!   signed with the committed test key, certificate in the JOSE `x5c` header.
//! * [`NotificationReceiver`]: records the registry's webhook POSTs.
//! * [`Layer`], [`Image`], [`push_image`], [`push_index`], [`RegistryClient`]: build and push
//!   images through the distribution API, doing the Basic / Bearer challenge flow.
//! * `fixture_*`: the Debian, Alpine, RPM, whiteout and multi-arch fixture images.
//!
//! Everything is plain HTTP on 127.0.0.1. The servers run on their own threads (own tokio
//! runtime), so they work from `#[tokio::test]` (any flavor) and from sync tests alike.
//!
//! Requires the Debian package `docker-registry`; custom Basic credentials (other than
//! [`RegistryAuth::basic_default`]) also need `htpasswd` from `apache2-utils`.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, HashMap};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};

// ---------------------------------------------------------------------------------------------
// Constants and committed fixtures
// ---------------------------------------------------------------------------------------------

/// Default test user (Basic and Token modes). Its bcrypt hash is committed in
/// `tests/fixtures/registry/htpasswd` (generated with `htpasswd -nbB -C 5`).
pub const TEST_USER: &str = "crowsnest";
/// Default test password (see [`TEST_USER`]).
pub const TEST_PASSWORD: &str = "crowsnest-test-password";
/// `auth.token.service` of token-auth registries (the JWT `aud`).
pub const TOKEN_SERVICE: &str = "crowsnest-test-registry";
/// `auth.token.issuer` of token-auth registries (the JWT `iss`).
pub const TOKEN_ISSUER: &str = "crowsnest-test-token-issuer";
/// `auth.htpasswd.realm` of Basic-auth registries.
pub const BASIC_REALM: &str = "crowsnest-basic-realm";

const HTPASSWD_DEFAULT: &str = include_str!("../../../fixtures/registry/htpasswd");
const TOKEN_KEY_PEM: &str = include_str!("../../../fixtures/registry/token-issuer.key.pem");
const TOKEN_CERT_PEM: &str = include_str!("../../../fixtures/registry/token-issuer.cert.pem");
const AMAZONLINUX_2023_OS_RELEASE: &str =
    include_str!("../../../fixtures/registry/amazonlinux-2023.os-release");

/// Fixed timestamp used for tar mtimes and config `created` (reproducible digests).
pub const FIXED_MTIME: u64 = 1_700_000_000;
const FIXED_CREATED: &str = "2023-11-14T22:13:20Z";

pub const MT_OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const MT_OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const MT_OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const MT_DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const MT_DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub const MT_DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
/// All four manifest types: Distribution 2.8 answers 404 for an OCI manifest/index unless the
/// Accept header names its type (real-registry.md §9.4), so always send all of them.
pub const ACCEPT_ALL_MANIFESTS: &str = "application/vnd.oci.image.index.v1+json, \
application/vnd.oci.image.manifest.v1+json, \
application/vnd.docker.distribution.manifest.list.v2+json, \
application/vnd.docker.distribution.manifest.v2+json";

/// `sha256:<hex>` of `data`.
pub fn sha256_digest(data: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(data)))
}

// ---------------------------------------------------------------------------------------------
// TestRegistry
// ---------------------------------------------------------------------------------------------

/// Authentication mode of a [`TestRegistry`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RegistryAuth {
    None,
    /// htpasswd (bcrypt) auth; the registry answers `401 Basic realm=...`.
    Basic {
        user: String,
        password: String,
    },
    /// token auth backed by an in-process [`TokenServer`] that accepts these credentials.
    Token {
        user: String,
        password: String,
    },
}

impl RegistryAuth {
    /// Basic auth with [`TEST_USER`]/[`TEST_PASSWORD`] (committed bcrypt hash, no tool needed).
    pub fn basic_default() -> Self {
        Self::Basic {
            user: TEST_USER.into(),
            password: TEST_PASSWORD.into(),
        }
    }
    /// Token auth with [`TEST_USER`]/[`TEST_PASSWORD`].
    pub fn token_default() -> Self {
        Self::Token {
            user: TEST_USER.into(),
            password: TEST_PASSWORD.into(),
        }
    }
    pub fn credentials(&self) -> Option<(&str, &str)> {
        match self {
            Self::None => None,
            Self::Basic { user, password } | Self::Token { user, password } => {
                Some((user.as_str(), password.as_str()))
            }
        }
    }
}

/// One notification endpoint (`notifications.endpoints[0]`), see real-registry.md §2.1/§7.
#[derive(Clone, Debug)]
pub struct NotificationEndpoint {
    pub name: String,
    pub url: String,
    /// Sent verbatim as the `Authorization` header of every POST.
    pub authorization: Option<String>,
    pub timeout: Duration,
    pub threshold: u32,
    pub backoff: Duration,
    /// `notifications.events.includereferences` (config+layers / child manifests in events).
    pub include_references: bool,
    /// `ignoredmediatypes`, e.g. `application/octet-stream` drops all blob events.
    pub ignored_media_types: Vec<String>,
    /// `ignore.actions`, e.g. `pull`.
    pub ignore_actions: Vec<String>,
}

impl NotificationEndpoint {
    /// Defaults from real-registry.md §2.1: timeout 2s, threshold 3, backoff 1s,
    /// includereferences on, no filters.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            name: "crowsnest-test-webhook".into(),
            url: url.into(),
            authorization: None,
            timeout: Duration::from_secs(2),
            threshold: 3,
            backoff: Duration::from_secs(1),
            include_references: true,
            ignored_media_types: Vec::new(),
            ignore_actions: Vec::new(),
        }
    }
}

/// A running `docker-registry serve` child process; killed (and reaped) on Drop.
pub struct TestRegistry {
    child: Child,
    port: u16,
    auth: RegistryAuth,
    token_server: Option<TokenServer>,
    log_path: PathBuf,
    startup: Duration,
    // Last: removed after the child is gone.
    dir: tempfile::TempDir,
}

impl TestRegistry {
    /// Start a registry without notifications. Panics (never skips) if `docker-registry`
    /// is not installed.
    pub fn start(auth: RegistryAuth) -> TestRegistry {
        Self::start_with(auth, None)
    }

    /// Start a registry whose notifications go to `endpoint_url` (with the other settings of
    /// [`NotificationEndpoint::new`]); `authorization_header` is sent as `Authorization`.
    pub fn start_with_notifications(
        auth: RegistryAuth,
        endpoint_url: &str,
        authorization_header: Option<&str>,
    ) -> TestRegistry {
        let mut ep = NotificationEndpoint::new(endpoint_url);
        ep.authorization = authorization_header.map(str::to_owned);
        Self::start_with(auth, Some(ep))
    }

    /// Full control over the notification endpoint.
    pub fn start_with(auth: RegistryAuth, notifications: Option<NotificationEndpoint>) -> Self {
        let started = Instant::now();
        let bin = registry_binary();
        let dir = scratch_dir();
        let root = dir.path().to_path_buf();
        std::fs::create_dir_all(root.join("storage")).expect("create storage dir");

        let mut auth_yaml = String::new();
        let mut token_server = None;
        match &auth {
            RegistryAuth::None => {}
            RegistryAuth::Basic { user, password } => {
                let line = htpasswd_line(user, password);
                let path = root.join("htpasswd");
                std::fs::write(&path, line).expect("write htpasswd");
                auth_yaml = format!(
                    "auth:\n  htpasswd:\n    realm: {}\n    path: {}\n",
                    yq(BASIC_REALM),
                    yq(&path.display().to_string())
                );
            }
            RegistryAuth::Token { user, password } => {
                let cert = root.join("token-issuer.cert.pem");
                std::fs::write(&cert, TOKEN_CERT_PEM).expect("write token cert");
                let ts = TokenServer::start(user, password);
                auth_yaml = format!(
                    "auth:\n  token:\n    realm: {}\n    service: {}\n    issuer: {}\n    rootcertbundle: {}\n",
                    yq(&ts.realm()),
                    yq(TOKEN_SERVICE),
                    yq(TOKEN_ISSUER),
                    yq(&cert.display().to_string())
                );
                token_server = Some(ts);
            }
        }
        let notif_yaml = notifications
            .as_ref()
            .map(notifications_yaml)
            .unwrap_or_default();

        let log_path = root.join("registry.log");
        let config_path = root.join("config.yml");
        let mut last_log = String::new();
        // A port picked by bind(:0) can be stolen before the registry binds it: retry.
        for attempt in 0..5 {
            let port = free_port();
            // Answers carry this header, so the probe knows it reached this registry and not
            // another test's that took the port first.
            let identity = format!("{}-{port}-{attempt}", std::process::id());
            let config = format!(
                "version: 0.1\n\
                 log:\n  level: info\n  formatter: text\n  fields:\n    service: crowsnest-test-registry\n\
                 storage:\n  filesystem:\n    rootdirectory: {storage}\n  delete:\n    enabled: true\n  \
                 cache:\n    blobdescriptor: inmemory\n  maintenance:\n    uploadpurging:\n      enabled: false\n\
                 http:\n  addr: {addr}\n  secret: crowsnest-test-http-secret\n  headers:\n    X-Content-Type-Options: [nosniff]\n    X-Test-Registry: [{identity}]\n\
                 {auth_yaml}{notif_yaml}",
                storage = yq(&root.join("storage").display().to_string()),
                addr = yq(&format!("127.0.0.1:{port}")),
            );
            std::fs::write(&config_path, config).expect("write registry config");
            let log = std::fs::File::create(&log_path).expect("create registry log");
            let log2 = log.try_clone().expect("clone log handle");
            let mut cmd = Command::new(&bin);
            cmd.arg("serve")
                .arg(&config_path)
                .current_dir(&root)
                .stdin(Stdio::null())
                .stdout(log)
                .stderr(log2);
            // Hermetic: no REGISTRY_* override from the environment except ours.
            for (k, _) in std::env::vars_os() {
                if k.to_string_lossy().starts_with("REGISTRY_") {
                    cmd.env_remove(k);
                }
            }
            cmd.env("REGISTRY_HTTP_ADDR", format!("127.0.0.1:{port}"));
            let mut child = match cmd.spawn() {
                Ok(c) => c,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    panic!("{}", missing_binary_message())
                }
                Err(e) => panic!("failed to spawn {}: {e}", bin.display()),
            };
            let deadline = Instant::now() + Duration::from_secs(15);
            loop {
                if let Some(status) = child.try_wait().expect("try_wait registry") {
                    last_log = std::fs::read_to_string(&log_path).unwrap_or_default();
                    if last_log.contains("address already in use") {
                        break; // retry with another port
                    }
                    panic!("docker-registry exited early ({status}); log:\n{last_log}");
                }
                // 401 is "ready" for Basic/Token registries.
                if let Some(200 | 401) = probe_v2(port, &identity) {
                    return TestRegistry {
                        child,
                        port,
                        auth,
                        token_server,
                        log_path,
                        startup: started.elapsed(),
                        dir,
                    };
                }
                if Instant::now() > deadline {
                    let _ = child.kill();
                    let _ = child.wait();
                    let log = std::fs::read_to_string(&log_path).unwrap_or_default();
                    panic!("docker-registry did not answer GET /v2/ within 15 s; log:\n{log}");
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        panic!(
            "docker-registry could not bind a free port after 5 attempts; last log:\n{last_log}"
        );
    }

    /// `127.0.0.1:PORT`
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
    /// `http://127.0.0.1:PORT`
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
    pub fn port(&self) -> u16 {
        self.port
    }
    pub fn auth(&self) -> &RegistryAuth {
        &self.auth
    }
    /// `(user, password)` for Basic/Token registries.
    pub fn credentials(&self) -> Option<(&str, &str)> {
        self.auth.credentials()
    }
    /// The token server of a Token registry.
    pub fn token_server(&self) -> Option<&TokenServer> {
        self.token_server.as_ref()
    }
    /// Spawn-to-ready time (includes writing the config and the token server start).
    pub fn startup_time(&self) -> Duration {
        self.startup
    }
    /// The registry's stdout+stderr so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }
    pub fn storage_dir(&self) -> PathBuf {
        self.dir.path().join("storage")
    }
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
    /// A client that authenticates with this registry's credentials (if any).
    pub fn client(&self) -> RegistryClient {
        RegistryClient::new(&self.url(), self.credentials())
    }
    /// A client without credentials (gets 401 on Basic/Token registries).
    pub fn anonymous_client(&self) -> RegistryClient {
        RegistryClient::new(&self.url(), None)
    }
}

impl Drop for TestRegistry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Temp dir for config + storage. Prefers tmpfs (`/dev/shm`): on ext4 every blob upload
/// costs the registry 15-40 ms of filesystem work, on tmpfs about 1-3 ms (5-10x faster pushes).
/// Override the parent with `CROWSNEST_REGISTRY_TMPDIR`.
fn scratch_dir() -> tempfile::TempDir {
    let mut b = tempfile::Builder::new();
    b.prefix("crowsnest-registry-");
    if let Some(base) = std::env::var_os("CROWSNEST_REGISTRY_TMPDIR") {
        return b
            .tempdir_in(base)
            .expect("create temp dir in CROWSNEST_REGISTRY_TMPDIR");
    }
    if Path::new("/dev/shm").is_dir()
        && let Ok(d) = b.tempdir_in("/dev/shm")
    {
        return d;
    }
    b.tempdir().expect("create temp dir for the test registry")
}

fn missing_binary_message() -> String {
    "the `docker-registry` binary (Docker Distribution 2.8) was not found in PATH. These tests \
     need a real registry: install it with `apt-get install -y docker-registry` (Debian), or set \
     DOCKER_REGISTRY_BIN to the binary's path."
        .to_string()
}

fn registry_binary() -> PathBuf {
    if let Some(p) = std::env::var_os("DOCKER_REGISTRY_BIN") {
        let p = PathBuf::from(p);
        assert!(
            p.is_file(),
            "DOCKER_REGISTRY_BIN={} is not a file",
            p.display()
        );
        return p;
    }
    ensure_tool("docker-registry", "docker-registry")
        .unwrap_or_else(|| panic!("{}", missing_binary_message()))
}

/// The tool from PATH; when missing and running as root on Debian, its package is installed first
/// (once per process, serialised: apt takes a lock), so `cargo test` works on a fresh machine.
fn ensure_tool(binary: &str, package: &str) -> Option<PathBuf> {
    static APT: std::sync::Mutex<()> = std::sync::Mutex::new(());
    if let Some(found) = find_in_path(binary) {
        return Some(found);
    }
    let _guard = APT.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(found) = find_in_path(binary) {
        return Some(found);
    }
    let root = std::fs::metadata("/proc/self")
        .map(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0)
        .unwrap_or(false);
    if !root || find_in_path("apt-get").is_none() {
        return None;
    }
    let install = || {
        Command::new("apt-get")
            .args(["install", "-y", "-qq", package])
            .env("DEBIAN_FRONTEND", "noninteractive")
            .output()
            .is_ok_and(|o| o.status.success())
    };
    if !install() {
        let _ = Command::new("apt-get").args(["update", "-qq"]).output();
        install();
    }
    find_in_path(binary)
}

fn find_in_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// Pick a free loopback port (bind :0, read it, release it).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind 127.0.0.1:0")
        .port()
}

/// Raw `GET /v2/` (no HTTP client needed, usable before any runtime): the status code, or None
/// when nothing answers or the answer lacks the registry's `X-Test-Registry: identity` header.
fn probe_v2(port: u16, identity: &str) -> Option<u16> {
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_millis(200)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(
        s,
        "GET /v2/ HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 16 * 1024 {
        let n = s.read(&mut buf).ok()?;
        if n == 0 {
            break;
        }
        head.extend_from_slice(&buf[..n]);
    }
    let head = String::from_utf8_lossy(&head);
    let header = format!("X-Test-Registry: {identity}");
    let ours = head.lines().any(|line| line.eq_ignore_ascii_case(&header));
    if !ours {
        return None;
    }
    head.strip_prefix("HTTP/1.1 ")?.get(..3)?.parse().ok()
}

/// YAML double-quoted scalar (JSON string syntax is valid YAML).
fn yq(s: &str) -> String {
    serde_json::to_string(s).expect("quote string")
}

fn go_duration(d: Duration) -> String {
    format!("{}ms", d.as_millis())
}

fn notifications_yaml(ep: &NotificationEndpoint) -> String {
    let mut y = format!(
        "notifications:\n  events:\n    includereferences: {}\n  endpoints:\n    - name: {}\n      url: {}\n      timeout: {}\n      threshold: {}\n      backoff: {}\n",
        ep.include_references,
        yq(&ep.name),
        yq(&ep.url),
        go_duration(ep.timeout),
        ep.threshold,
        go_duration(ep.backoff)
    );
    if let Some(a) = &ep.authorization {
        y.push_str(&format!(
            "      headers:\n        Authorization: [{}]\n",
            yq(a)
        ));
    }
    let list = |v: &[String]| v.iter().map(|s| yq(s)).collect::<Vec<_>>().join(", ");
    if !ep.ignored_media_types.is_empty() {
        y.push_str(&format!(
            "      ignoredmediatypes: [{}]\n",
            list(&ep.ignored_media_types)
        ));
    }
    if !ep.ignore_actions.is_empty() {
        y.push_str(&format!(
            "      ignore:\n        actions: [{}]\n",
            list(&ep.ignore_actions)
        ));
    }
    y
}

/// One htpasswd line (bcrypt, the only format the registry accepts). The default test
/// credentials use the committed hash; others need `htpasswd` (apache2-utils). Cost 5 keeps
/// the registry's per-request bcrypt check around a millisecond.
fn htpasswd_line(user: &str, password: &str) -> String {
    if user == TEST_USER && password == TEST_PASSWORD {
        return HTPASSWD_DEFAULT.to_string();
    }
    let bin = ensure_tool("htpasswd", "apache2-utils").unwrap_or_else(|| {
        panic!(
            "custom Basic credentials need `htpasswd` to make a bcrypt hash: \
             install it with `apt-get install -y apache2-utils` (or use RegistryAuth::basic_default())"
        )
    });
    let out = Command::new(bin)
        .args(["-nbB", "-C", "5", user, password])
        .output()
        .expect("run htpasswd");
    assert!(
        out.status.success(),
        "htpasswd failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line = String::from_utf8(out.stdout).expect("htpasswd output is UTF-8");
    format!("{}\n", line.trim())
}

// ---------------------------------------------------------------------------------------------
// Tiny HTTP/1.1 server on its own thread (token server, notification receiver)
// ---------------------------------------------------------------------------------------------

/// A request seen by [`MiniServer`].
#[derive(Clone, Debug)]
pub struct HttpRequest {
    pub method: String,
    /// Request target as sent (path + query).
    pub target: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl HttpRequest {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    pub fn path(&self) -> &str {
        self.target.split('?').next().unwrap_or("")
    }
    /// Decoded query pairs in order (repeated keys kept).
    pub fn query(&self) -> Vec<(String, String)> {
        let Some((_, q)) = self.target.split_once('?') else {
            return Vec::new();
        };
        url::form_urlencoded::parse(q.as_bytes())
            .into_owned()
            .collect()
    }
}

#[derive(Clone, Debug)]
pub struct HttpResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl HttpResponse {
    pub fn new(status: u16) -> Self {
        Self {
            status,
            headers: Vec::new(),
            body: Vec::new(),
        }
    }
    pub fn json(status: u16, v: &Value) -> Self {
        Self {
            status,
            headers: vec![("Content-Type".into(), "application/json".into())],
            body: serde_json::to_vec(v).expect("serialize json"),
        }
    }
}

type Handler = Arc<dyn Fn(&HttpRequest) -> HttpResponse + Send + Sync>;

/// Minimal HTTP/1.1 server (one request per connection, `Connection: close`) on 127.0.0.1:0,
/// running a current-thread tokio runtime on a dedicated thread; stopped on Drop.
pub struct MiniServer {
    addr: SocketAddr,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl MiniServer {
    pub fn start(name: &str, handler: Handler) -> MiniServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind mini server");
        listener.set_nonblocking(true).expect("set_nonblocking");
        let addr = listener.local_addr().expect("local_addr");
        let (tx, mut rx) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name(name.to_string())
            .spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("mini server runtime");
                rt.block_on(async move {
                    let listener =
                        tokio::net::TcpListener::from_std(listener).expect("tokio listener");
                    loop {
                        tokio::select! {
                            _ = &mut rx => break,
                            acc = listener.accept() => {
                                if let Ok((stream, _)) = acc {
                                    let h = handler.clone();
                                    tokio::spawn(async move {
                                        let _ = tokio::time::timeout(
                                            Duration::from_secs(30),
                                            serve_connection(stream, h),
                                        )
                                        .await;
                                    });
                                }
                            }
                        }
                    }
                });
            })
            .expect("spawn mini server thread");
        MiniServer {
            addr,
            shutdown: Some(tx),
            thread: Some(thread),
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
    /// `http://127.0.0.1:PORT`
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for MiniServer {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

async fn serve_connection(
    mut stream: tokio::net::TcpStream,
    handler: Handler,
) -> std::io::Result<()> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut buf = Vec::with_capacity(4096);
    let mut chunk = [0u8; 8192];
    let header_end = loop {
        if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break p;
        }
        if buf.len() > 1 << 20 {
            return Ok(());
        }
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Ok(());
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..header_end]).into_owned();
    let mut lines = head.split("\r\n");
    let mut req_line = lines.next().unwrap_or("").split(' ');
    let method = req_line.next().unwrap_or("").to_string();
    let target = req_line.next().unwrap_or("/").to_string();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    let len: usize = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut body = buf[header_end + 4..].to_vec();
    while body.len() < len {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            break;
        }
        body.extend_from_slice(&chunk[..n]);
    }
    body.truncate(len);
    let req = HttpRequest {
        method,
        target,
        headers,
        body,
    };
    let resp = handler(&req);
    let reason = match resp.status {
        200 => "OK",
        401 => "Unauthorized",
        404 => "Not Found",
        500 => "Internal Server Error",
        _ => "Status",
    };
    let mut out = format!("HTTP/1.1 {} {}\r\n", resp.status, reason);
    for (k, v) in &resp.headers {
        out.push_str(&format!("{k}: {v}\r\n"));
    }
    out.push_str(&format!(
        "Content-Length: {}\r\nConnection: close\r\n\r\n",
        resp.body.len()
    ));
    stream.write_all(out.as_bytes()).await?;
    stream.write_all(&resp.body).await?;
    stream.flush().await?;
    let _ = stream.shutdown().await;
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Token server
// ---------------------------------------------------------------------------------------------

/// In-process Docker token server (`GET /token?service=..&scope=..`): valid Basic credentials
/// get every requested action; anonymous requests get a token with no access; wrong
/// credentials get 401. RS256, certificate in `x5c`, claims iss/sub/aud/exp/nbf/iat/jti/access.
pub struct TokenServer {
    server: MiniServer,
    state: Arc<TokenState>,
}

/// A token the server issued (for assertions).
#[derive(Clone, Debug)]
pub struct IssuedToken {
    pub subject: String,
    pub scopes: Vec<String>,
    pub access: Value,
}

struct TokenState {
    user: String,
    password: String,
    key: jsonwebtoken::EncodingKey,
    x5c: Vec<String>,
    counter: AtomicUsize,
    issued: Mutex<Vec<IssuedToken>>,
}

impl TokenServer {
    pub fn start(user: &str, password: &str) -> TokenServer {
        let key = jsonwebtoken::EncodingKey::from_rsa_pem(TOKEN_KEY_PEM.as_bytes())
            .expect("parse committed token issuer key");
        let state = Arc::new(TokenState {
            user: user.to_string(),
            password: password.to_string(),
            key,
            x5c: vec![pem_to_der_b64(TOKEN_CERT_PEM)],
            counter: AtomicUsize::new(0),
            issued: Mutex::new(Vec::new()),
        });
        let st = state.clone();
        let server =
            MiniServer::start("token-server", Arc::new(move |req| token_handler(&st, req)));
        TokenServer { server, state }
    }
    /// `http://127.0.0.1:PORT/token` (the registry's `auth.token.realm`).
    pub fn realm(&self) -> String {
        format!("{}/token", self.server.url())
    }
    /// Tokens issued so far (401s for bad credentials are not recorded).
    pub fn issued(&self) -> Vec<IssuedToken> {
        self.state.issued.lock().expect("lock").clone()
    }
}

fn pem_to_der_b64(pem: &str) -> String {
    // x5c wants standard base64 of the DER: the PEM body is exactly that, minus line breaks.
    let body: String = pem
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .map(str::trim)
        .collect();
    // Round-trip to validate.
    let der = B64
        .decode(body.as_bytes())
        .expect("certificate PEM is base64");
    B64.encode(der)
}

fn token_handler(st: &TokenState, req: &HttpRequest) -> HttpResponse {
    if req.path() != "/token" || req.method != "GET" {
        return HttpResponse::new(404);
    }
    let mut subject = String::new();
    let mut authed = false;
    if let Some(a) = req.header("authorization") {
        let creds = a
            .strip_prefix("Basic ")
            .and_then(|b| B64.decode(b.trim()).ok())
            .and_then(|b| String::from_utf8(b).ok());
        match creds.as_deref().and_then(|c| c.split_once(':')) {
            Some((u, p)) if u == st.user && p == st.password => {
                subject = u.to_string();
                authed = true;
            }
            _ => {
                return HttpResponse::json(
                    401,
                    &json!({"details": "incorrect username or password"}),
                );
            }
        }
    }
    let q = req.query();
    let service = q
        .iter()
        .find(|(k, _)| k == "service")
        .map(|(_, v)| v.clone())
        .unwrap_or_default();
    let scopes: Vec<String> = q
        .iter()
        .filter(|(k, _)| k == "scope")
        .flat_map(|(_, v)| v.split(' ').map(str::to_owned).collect::<Vec<_>>())
        .filter(|s| !s.is_empty())
        .collect();
    let mut access = Vec::new();
    if authed {
        for sc in &scopes {
            // type:name:actions, where name may itself contain ':' (host:port/name)
            let Some((typ, rest)) = sc.split_once(':') else {
                continue;
            };
            let Some((name, actions)) = rest.rsplit_once(':') else {
                continue;
            };
            let actions: Vec<&str> = actions.split(',').filter(|a| !a.is_empty()).collect();
            access.push(json!({"type": typ, "name": name, "actions": actions}));
        }
    }
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    let n = st.counter.fetch_add(1, Ordering::SeqCst);
    let claims = json!({
        "iss": TOKEN_ISSUER,
        "sub": subject,
        "aud": service,
        "exp": now + 300,
        "nbf": now - 10,
        "iat": now,
        "jti": format!("crowsnest-{now:x}-{n}"),
        "access": access,
    });
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
    header.x5c = Some(st.x5c.clone());
    let token = match jsonwebtoken::encode(&header, &claims, &st.key) {
        Ok(t) => t,
        Err(e) => return HttpResponse::json(500, &json!({"details": e.to_string()})),
    };
    st.issued.lock().expect("lock").push(IssuedToken {
        subject,
        scopes,
        access: claims["access"].clone(),
    });
    HttpResponse::json(
        200,
        &json!({"token": token, "access_token": token, "expires_in": 300, "issued_at": rfc3339(now)}),
    )
}

/// RFC 3339 UTC timestamp for unix seconds (civil-from-days, no chrono needed).
fn rfc3339(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

// ---------------------------------------------------------------------------------------------
// Notification receiver
// ---------------------------------------------------------------------------------------------

/// One webhook POST, byte for byte.
#[derive(Clone, Debug)]
pub struct ReceivedEnvelope {
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// Parsed body (`Value::Null` if it was not JSON).
    pub json: Value,
}

impl ReceivedEnvelope {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    pub fn events(&self) -> Vec<Value> {
        self.json["events"].as_array().cloned().unwrap_or_default()
    }
}

/// Records every POST to `/registry-events` (any path is accepted). `fail_first(n)` makes it
/// answer 500 to the first n POSTs (to exercise the registry's retries).
pub struct NotificationReceiver {
    server: MiniServer,
    envelopes: Arc<Mutex<Vec<ReceivedEnvelope>>>,
    fail_left: Arc<AtomicUsize>,
}

impl NotificationReceiver {
    pub fn start() -> Self {
        Self::start_failing_first(0)
    }
    pub fn start_failing_first(fail_first: usize) -> Self {
        let envelopes: Arc<Mutex<Vec<ReceivedEnvelope>>> = Arc::default();
        let fail_left = Arc::new(AtomicUsize::new(fail_first));
        let (env2, fail2) = (envelopes.clone(), fail_left.clone());
        let handler: Handler = Arc::new(move |req: &HttpRequest| {
            if req.method != "POST" {
                return HttpResponse::new(404);
            }
            if fail2
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                .is_ok()
            {
                return HttpResponse::new(500);
            }
            let json = serde_json::from_slice(&req.body).unwrap_or(Value::Null);
            env2.lock().expect("lock").push(ReceivedEnvelope {
                headers: req.headers.clone(),
                body: req.body.clone(),
                json,
            });
            HttpResponse::new(200)
        });
        let server = MiniServer::start("notification-receiver", handler);
        NotificationReceiver {
            server,
            envelopes,
            fail_left,
        }
    }
    /// `http://127.0.0.1:PORT/registry-events`
    pub fn url(&self) -> String {
        format!("{}/registry-events", self.server.url())
    }
    pub fn envelopes(&self) -> Vec<ReceivedEnvelope> {
        self.envelopes.lock().expect("lock").clone()
    }
    /// All events of all envelopes, in arrival order.
    pub fn events(&self) -> Vec<Value> {
        self.envelopes()
            .iter()
            .flat_map(ReceivedEnvelope::events)
            .collect()
    }
    /// Poll (every 20 ms) until an event matches `pred`; panics after `timeout` listing what
    /// arrived. Returns the event and its envelope.
    pub async fn wait_for_event(
        &self,
        timeout: Duration,
        pred: impl Fn(&Value) -> bool,
    ) -> (Value, ReceivedEnvelope) {
        let deadline = Instant::now() + timeout;
        loop {
            for env in self.envelopes() {
                if let Some(ev) = env.events().into_iter().find(|e| pred(e)) {
                    return (ev, env);
                }
            }
            if Instant::now() > deadline {
                let seen: Vec<String> = self
                    .events()
                    .iter()
                    .map(|e| {
                        format!(
                            "{} {} {} {}",
                            e["action"],
                            e["target"]["mediaType"],
                            e["target"]["repository"],
                            e["target"]["digest"]
                        )
                    })
                    .collect();
                panic!(
                    "no matching notification within {timeout:?}; received:\n{}",
                    seen.join("\n")
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Registry client (distribution API + Basic/Bearer challenge flow)
// ---------------------------------------------------------------------------------------------

/// Parse a `WWW-Authenticate` value: `(scheme, params)`, e.g.
/// `("Bearer", {realm, service, scope})`. Quoted values may contain commas.
pub fn parse_www_authenticate(h: &str) -> (String, BTreeMap<String, String>) {
    let h = h.trim();
    let (scheme, rest) = h.split_once(' ').unwrap_or((h, ""));
    let mut params = BTreeMap::new();
    let chars: Vec<char> = rest.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        while i < chars.len() && (chars[i] == ',' || chars[i].is_whitespace()) {
            i += 1;
        }
        let ks = i;
        while i < chars.len() && chars[i] != '=' {
            i += 1;
        }
        let key: String = chars[ks..i]
            .iter()
            .collect::<String>()
            .trim()
            .to_ascii_lowercase();
        i += 1; // '='
        let mut val = String::new();
        if i < chars.len() && chars[i] == '"' {
            i += 1;
            while i < chars.len() && chars[i] != '"' {
                if chars[i] == '\\' && i + 1 < chars.len() {
                    i += 1;
                }
                val.push(chars[i]);
                i += 1;
            }
            i += 1;
        } else {
            while i < chars.len() && chars[i] != ',' {
                val.push(chars[i]);
                i += 1;
            }
        }
        if !key.is_empty() {
            params.insert(key, val.trim().to_string());
        }
    }
    (scheme.to_string(), params)
}

/// `repository:<repo>:pull`
pub fn pull_scope(repo: &str) -> String {
    format!("repository:{repo}:pull")
}
/// `repository:<repo>:pull,push`
pub fn push_scope(repo: &str) -> String {
    format!("repository:{repo}:pull,push")
}

/// A manifest fetched from the registry.
#[derive(Clone, Debug)]
pub struct FetchedManifest {
    pub status: StatusCode,
    pub bytes: Vec<u8>,
    pub content_type: String,
    /// `Docker-Content-Digest` header.
    pub digest: String,
}

/// HTTP client for one registry. Sends requests, and on a 401 answers the challenge:
/// `Basic` → retries with the credentials; `Bearer` → fetches a token from the realm
/// (with Basic credentials if it has any, anonymously otherwise) for the given scope, caches
/// it per scope and retries once.
#[derive(Clone)]
pub struct RegistryClient {
    http: reqwest::Client,
    base: String,
    creds: Option<(String, String)>,
    state: Arc<Mutex<AuthState>>,
}

#[derive(Default)]
struct AuthState {
    basic: bool,
    tokens: HashMap<String, String>,
}

impl RegistryClient {
    /// `base` = `http://127.0.0.1:PORT`.
    pub fn new(base: &str, creds: Option<(&str, &str)>) -> Self {
        let http = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(30))
            .build()
            .expect("build reqwest client");
        Self {
            http,
            base: base.trim_end_matches('/').to_string(),
            creds: creds.map(|(u, p)| (u.to_string(), p.to_string())),
            state: Arc::default(),
        }
    }
    pub fn base_url(&self) -> &str {
        &self.base
    }
    /// The underlying reqwest client (no auth applied).
    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    fn basic_header(&self) -> Option<String> {
        self.creds
            .as_ref()
            .map(|(u, p)| format!("Basic {}", B64.encode(format!("{u}:{p}"))))
    }

    fn cached_auth(&self, scope: &str) -> Option<String> {
        let st = self.state.lock().expect("lock");
        if let Some(t) = st.tokens.get(scope) {
            return Some(format!("Bearer {t}"));
        }
        if st.basic { self.basic_header() } else { None }
    }

    /// Fetch a bearer token from `realm` (what a docker client does after a Bearer challenge).
    /// Returns `None` if the token server refuses (e.g. 401 for wrong credentials).
    pub async fn fetch_token(&self, realm: &str, service: &str, scope: &str) -> Option<String> {
        let mut url = reqwest::Url::parse(realm).expect("token realm is a URL");
        {
            let mut q = url.query_pairs_mut();
            if !service.is_empty() {
                q.append_pair("service", service);
            }
            if !scope.is_empty() {
                q.append_pair("scope", scope);
            }
        }
        let mut rb = self.http.get(url);
        if let Some(b) = self.basic_header() {
            rb = rb.header(reqwest::header::AUTHORIZATION, b);
        }
        let resp = rb.send().await.expect("token request");
        if !resp.status().is_success() {
            return None;
        }
        let v: Value = resp.json().await.expect("token response is JSON");
        v["token"]
            .as_str()
            .or(v["access_token"].as_str())
            .map(str::to_owned)
    }

    /// Send a request (`path_or_url` = `/v2/...` or an absolute URL such as an upload
    /// `Location`), answering an auth challenge once. `scope` is what a Bearer token is
    /// requested for (empty = the challenge's own scope).
    pub async fn send(
        &self,
        method: Method,
        path_or_url: &str,
        headers: &[(&str, &str)],
        body: Option<&[u8]>,
        scope: &str,
    ) -> reqwest::Response {
        let url = if path_or_url.starts_with("http://") || path_or_url.starts_with("https://") {
            path_or_url.to_string()
        } else {
            format!("{}{}", self.base, path_or_url)
        };
        let build = |auth: Option<&str>| {
            let mut rb = self.http.request(method.clone(), &url);
            for (k, v) in headers {
                rb = rb.header(*k, *v);
            }
            if let Some(b) = body {
                rb = rb.body(b.to_vec());
            }
            if let Some(a) = auth {
                rb = rb.header(reqwest::header::AUTHORIZATION, a);
            }
            rb
        };
        let first_auth = self.cached_auth(scope);
        let resp = build(first_auth.as_deref())
            .send()
            .await
            .unwrap_or_else(|e| panic!("{method} {url}: {e}"));
        if resp.status() != StatusCode::UNAUTHORIZED {
            return resp;
        }
        let Some(challenge) = resp
            .headers()
            .get(reqwest::header::WWW_AUTHENTICATE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
        else {
            return resp;
        };
        let (scheme, params) = parse_www_authenticate(&challenge);
        let auth = if scheme.eq_ignore_ascii_case("basic") {
            let Some(b) = self.basic_header() else {
                return resp;
            };
            if first_auth.as_deref() == Some(b.as_str()) {
                return resp; // credentials were already rejected
            }
            self.state.lock().expect("lock").basic = true;
            b
        } else if scheme.eq_ignore_ascii_case("bearer") {
            let realm = params.get("realm").cloned().unwrap_or_default();
            let service = params.get("service").cloned().unwrap_or_default();
            let want = if scope.is_empty() {
                params.get("scope").cloned().unwrap_or_default()
            } else {
                scope.to_string()
            };
            let Some(token) = self.fetch_token(&realm, &service, &want).await else {
                return resp;
            };
            self.state
                .lock()
                .expect("lock")
                .tokens
                .insert(scope.to_string(), token.clone());
            format!("Bearer {token}")
        } else {
            return resp;
        };
        build(Some(&auth))
            .send()
            .await
            .unwrap_or_else(|e| panic!("{method} {url} (retry with auth): {e}"))
    }

    /// HEAD a blob; returns the status.
    pub async fn head_blob(&self, repo: &str, digest: &str) -> StatusCode {
        self.send(
            Method::HEAD,
            &format!("/v2/{repo}/blobs/{digest}"),
            &[],
            None,
            &pull_scope(repo),
        )
        .await
        .status()
    }

    /// GET a blob; panics unless 200 and the content hashes to `digest`.
    pub async fn get_blob(&self, repo: &str, digest: &str) -> Vec<u8> {
        let resp = self
            .send(
                Method::GET,
                &format!("/v2/{repo}/blobs/{digest}"),
                &[],
                None,
                &pull_scope(repo),
            )
            .await;
        let status = resp.status();
        let bytes = resp.bytes().await.expect("read blob body").to_vec();
        assert_eq!(
            status,
            StatusCode::OK,
            "GET blob {repo}@{digest}: {}",
            String::from_utf8_lossy(&bytes)
        );
        assert_eq!(
            sha256_digest(&bytes),
            digest,
            "blob {repo}@{digest} content digest mismatch"
        );
        bytes
    }

    /// GET a manifest with all four manifest media types accepted (no status check).
    pub async fn get_manifest(&self, repo: &str, reference: &str) -> FetchedManifest {
        self.fetch_manifest(Method::GET, repo, reference).await
    }
    /// HEAD a manifest with all four manifest media types accepted (no status check).
    pub async fn head_manifest(&self, repo: &str, reference: &str) -> FetchedManifest {
        self.fetch_manifest(Method::HEAD, repo, reference).await
    }

    async fn fetch_manifest(&self, method: Method, repo: &str, reference: &str) -> FetchedManifest {
        let resp = self
            .send(
                method,
                &format!("/v2/{repo}/manifests/{reference}"),
                &[("Accept", ACCEPT_ALL_MANIFESTS)],
                None,
                &pull_scope(repo),
            )
            .await;
        let h = |n: &str| {
            resp.headers()
                .get(n)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_string()
        };
        let (content_type, digest, status) =
            (h("content-type"), h("docker-content-digest"), resp.status());
        let bytes = resp.bytes().await.expect("read manifest body").to_vec();
        FetchedManifest {
            status,
            bytes,
            content_type,
            digest,
        }
    }

    /// Upload a blob (skipped if HEAD says it exists): POST `/blobs/uploads/`, then a
    /// monolithic `PUT <Location>&digest=`. Returns the digest.
    pub async fn push_blob(&self, repo: &str, data: &[u8]) -> String {
        self.push_blob_with_digest(repo, data, &sha256_digest(data))
            .await
    }

    /// [`push_blob`](Self::push_blob) with a precomputed digest (the registry still verifies it).
    pub async fn push_blob_with_digest(&self, repo: &str, data: &[u8], digest: &str) -> String {
        let digest = digest.to_string();
        let scope = push_scope(repo);
        let head = self
            .send(
                Method::HEAD,
                &format!("/v2/{repo}/blobs/{digest}"),
                &[],
                None,
                &scope,
            )
            .await;
        if head.status() == StatusCode::OK {
            return digest;
        }
        let post = self
            .send(
                Method::POST,
                &format!("/v2/{repo}/blobs/uploads/"),
                &[],
                None,
                &scope,
            )
            .await;
        let status = post.status();
        let location = post
            .headers()
            .get(reqwest::header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        if status != StatusCode::ACCEPTED {
            let body = post.text().await.unwrap_or_default();
            panic!("POST /v2/{repo}/blobs/uploads/: {status} {body}");
        }
        let location = location.expect("upload Location header");
        let sep = if location.contains('?') { '&' } else { '?' };
        let put_url = format!("{location}{sep}digest={digest}");
        let put = self
            .send(
                Method::PUT,
                &put_url,
                &[("Content-Type", "application/octet-stream")],
                Some(data),
                &scope,
            )
            .await;
        let status = put.status();
        let got = put
            .headers()
            .get("docker-content-digest")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        let body = put.text().await.unwrap_or_default();
        assert_eq!(
            status,
            StatusCode::CREATED,
            "PUT blob {repo}@{digest}: {body}"
        );
        assert_eq!(got, digest, "registry digest for uploaded blob");
        digest
    }

    /// PUT a manifest (or index) by tag or digest; returns the registry's digest, which must
    /// equal sha256(bytes).
    pub async fn put_manifest(
        &self,
        repo: &str,
        reference: &str,
        media_type: &str,
        bytes: &[u8],
    ) -> String {
        let resp = self
            .send(
                Method::PUT,
                &format!("/v2/{repo}/manifests/{reference}"),
                &[("Content-Type", media_type)],
                Some(bytes),
                &push_scope(repo),
            )
            .await;
        let status = resp.status();
        let got = resp
            .headers()
            .get("docker-content-digest")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        let body = resp.text().await.unwrap_or_default();
        assert_eq!(
            status,
            StatusCode::CREATED,
            "PUT manifest {repo}:{reference} ({media_type}): {body}"
        );
        assert_eq!(
            got,
            sha256_digest(bytes),
            "registry digest for manifest {repo}:{reference}"
        );
        got
    }

    /// Push config, layers and manifest of `image`; the manifest by `tag`, or by digest if None.
    pub async fn push_image(&self, repo: &str, tag: Option<&str>, image: &Image) -> PushedImage {
        let config_bytes = image.config_bytes();
        let config_digest = self.push_blob(repo, &config_bytes).await;
        let mut layer_digests = Vec::with_capacity(image.layers.len());
        for layer in &image.layers {
            layer_digests.push(
                self.push_blob_with_digest(repo, &layer.blob, &layer.digest)
                    .await,
            );
        }
        let manifest_bytes = image.manifest_bytes();
        let manifest_digest = sha256_digest(&manifest_bytes);
        let reference = tag.unwrap_or(&manifest_digest).to_string();
        let media_type = image.manifest_media_type();
        self.put_manifest(repo, &reference, media_type, &manifest_bytes)
            .await;
        PushedImage {
            repo: repo.to_string(),
            tag: tag.map(str::to_owned),
            manifest_digest,
            manifest_media_type: media_type.to_string(),
            manifest_bytes,
            config_digest,
            config_bytes,
            layer_digests,
        }
    }

    /// Push an index / manifest list over already pushed images (same repo) by `tag`.
    pub async fn push_index(
        &self,
        repo: &str,
        tag: &str,
        children: &[(PushedImage, Platform)],
        kind: IndexKind,
    ) -> PushedIndex {
        let bytes = index_bytes(children, kind);
        let digest = self
            .put_manifest(repo, tag, kind.media_type(), &bytes)
            .await;
        PushedIndex {
            repo: repo.to_string(),
            tag: tag.to_string(),
            digest,
            media_type: kind.media_type().to_string(),
            bytes,
            children: children
                .iter()
                .map(|(p, _)| p.manifest_digest.clone())
                .collect(),
        }
    }
}

/// Push `image` to `registry` (with its credentials). See [`RegistryClient::push_image`].
pub async fn push_image(
    registry: &TestRegistry,
    repo: &str,
    tag: Option<&str>,
    image: &Image,
) -> PushedImage {
    registry.client().push_image(repo, tag, image).await
}

/// Push an index over pushed images. See [`RegistryClient::push_index`].
pub async fn push_index(
    registry: &TestRegistry,
    repo: &str,
    tag: &str,
    children: &[(PushedImage, Platform)],
    kind: IndexKind,
) -> PushedIndex {
    registry
        .client()
        .push_index(repo, tag, children, kind)
        .await
}

/// Result of [`push_image`].
#[derive(Clone, Debug)]
pub struct PushedImage {
    pub repo: String,
    pub tag: Option<String>,
    pub manifest_digest: String,
    pub manifest_media_type: String,
    pub manifest_bytes: Vec<u8>,
    pub config_digest: String,
    pub config_bytes: Vec<u8>,
    pub layer_digests: Vec<String>,
}

/// Result of [`push_index`].
#[derive(Clone, Debug)]
pub struct PushedIndex {
    pub repo: String,
    pub tag: String,
    pub digest: String,
    pub media_type: String,
    pub bytes: Vec<u8>,
    pub children: Vec<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IndexKind {
    OciIndex,
    DockerManifestList,
}

impl IndexKind {
    pub fn media_type(self) -> &'static str {
        match self {
            Self::OciIndex => MT_OCI_INDEX,
            Self::DockerManifestList => MT_DOCKER_LIST,
        }
    }
}

fn index_bytes(children: &[(PushedImage, Platform)], kind: IndexKind) -> Vec<u8> {
    let manifests: Vec<Value> = children
        .iter()
        .map(|(p, plat)| {
            json!({
                "mediaType": p.manifest_media_type,
                "digest": p.manifest_digest,
                "size": p.manifest_bytes.len(),
                "platform": plat.to_json(),
            })
        })
        .collect();
    serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": kind.media_type(),
        "manifests": manifests,
    }))
    .expect("serialize index")
}

// ---------------------------------------------------------------------------------------------
// Layers and images
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compression {
    Gzip,
    Zstd,
    None,
}

/// Manifest flavour: OCI (`application/vnd.oci.*`) or Docker schema 2.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MediaKind {
    Oci,
    DockerV2,
}

/// One tar entry. Paths are relative, without `./` (as umoci writes them).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TarEntry {
    File {
        path: String,
        data: Vec<u8>,
        mode: u32,
    },
    Dir {
        path: String,
        mode: u32,
    },
    Symlink {
        path: String,
        target: String,
    },
    Hardlink {
        path: String,
        target: String,
    },
    /// Deletes `path` from lower layers: written as `<dir>/.wh.<name>`.
    Whiteout {
        path: String,
    },
    /// Hides everything below `dir` in lower layers: written as `<dir>/.wh..wh..opq`.
    OpaqueWhiteout {
        dir: String,
    },
}

impl TarEntry {
    pub fn file(path: &str, data: impl Into<Vec<u8>>, mode: u32) -> Self {
        Self::File {
            path: clean_path(path),
            data: data.into(),
            mode,
        }
    }
    pub fn dir(path: &str, mode: u32) -> Self {
        Self::Dir {
            path: clean_path(path),
            mode,
        }
    }
    pub fn symlink(path: &str, target: &str) -> Self {
        Self::Symlink {
            path: clean_path(path),
            target: target.to_string(),
        }
    }
    pub fn hardlink(path: &str, target: &str) -> Self {
        Self::Hardlink {
            path: clean_path(path),
            target: clean_path(target),
        }
    }
    pub fn whiteout(path: &str) -> Self {
        Self::Whiteout {
            path: clean_path(path),
        }
    }
    pub fn opaque(dir: &str) -> Self {
        Self::OpaqueWhiteout {
            dir: clean_path(dir),
        }
    }
    /// The path written into the tar.
    pub fn tar_path(&self) -> String {
        match self {
            Self::File { path, .. }
            | Self::Dir { path, .. }
            | Self::Symlink { path, .. }
            | Self::Hardlink { path, .. } => path.clone(),
            Self::Whiteout { path } => match path.rsplit_once('/') {
                Some((d, n)) => format!("{d}/.wh.{n}"),
                None => format!(".wh.{path}"),
            },
            Self::OpaqueWhiteout { dir } => format!("{dir}/.wh..wh..opq"),
        }
    }
}

fn clean_path(p: &str) -> String {
    p.trim_start_matches("./").trim_matches('/').to_string()
}

/// A layer: uncompressed tar, compressed blob, digests.
#[derive(Clone, Debug)]
pub struct Layer {
    pub entries: Vec<TarEntry>,
    /// Uncompressed tar.
    pub tar: Vec<u8>,
    /// The blob as pushed (compressed per `compression`).
    pub blob: Vec<u8>,
    pub compression: Compression,
    /// `sha256:` of `blob`.
    pub digest: String,
    /// `sha256:` of `tar` (the config's `rootfs.diff_ids` entry).
    pub diff_id: String,
    /// History `created_by` of this layer.
    pub created_by: String,
}

impl Layer {
    /// Regular files `(path, bytes, mode)`; parent directories are added automatically.
    pub fn from_files<P: AsRef<str>, B: AsRef<[u8]>>(
        files: &[(P, B, u32)],
        compression: Compression,
    ) -> Layer {
        let entries: Vec<TarEntry> = files
            .iter()
            .map(|(p, b, m)| TarEntry::file(p.as_ref(), b.as_ref().to_vec(), *m))
            .collect();
        Self::from_entries(&entries, compression)
    }

    /// Any entries (files, dirs, symlinks, hardlinks, whiteouts); missing parent directories
    /// are added (mode 0755) before their first child. Deterministic: mtime [`FIXED_MTIME`],
    /// uid/gid 0, GNU headers (long names via `././@LongLink`), gzip without name/mtime.
    pub fn from_entries(entries: &[TarEntry], compression: Compression) -> Layer {
        let tar = build_tar(entries);
        let blob = compress(&tar, compression);
        Layer {
            entries: entries.to_vec(),
            digest: sha256_digest(&blob),
            diff_id: sha256_digest(&tar),
            tar,
            blob,
            compression,
            created_by: format!("crowsnest test layer ({} entries)", entries.len()),
        }
    }

    pub fn with_created_by(mut self, created_by: &str) -> Self {
        self.created_by = created_by.to_string();
        self
    }

    /// Same tar, other compression.
    pub fn recompressed(&self, compression: Compression) -> Layer {
        let blob = compress(&self.tar, compression);
        Layer {
            digest: sha256_digest(&blob),
            blob,
            compression,
            ..self.clone()
        }
    }

    pub fn size(&self) -> u64 {
        self.blob.len() as u64
    }

    pub fn media_type(&self, kind: MediaKind) -> &'static str {
        match (kind, self.compression) {
            (MediaKind::Oci, Compression::Gzip) => "application/vnd.oci.image.layer.v1.tar+gzip",
            (MediaKind::Oci, Compression::Zstd) => "application/vnd.oci.image.layer.v1.tar+zstd",
            (MediaKind::Oci, Compression::None) => "application/vnd.oci.image.layer.v1.tar",
            (MediaKind::DockerV2, Compression::Gzip) => {
                "application/vnd.docker.image.rootfs.diff.tar.gzip"
            }
            // Not in the Docker v2.2 spec; containerd's name for it. Distribution 2.8 accepts it.
            (MediaKind::DockerV2, Compression::Zstd) => {
                "application/vnd.docker.image.rootfs.diff.tar.zstd"
            }
            (MediaKind::DockerV2, Compression::None) => {
                "application/vnd.docker.image.rootfs.diff.tar"
            }
        }
    }
}

fn build_tar(entries: &[TarEntry]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let mut dirs_seen = std::collections::HashSet::new();
    let header = |kind: tar::EntryType, mode: u32, size: u64| {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.set_mode(mode);
        h.set_size(size);
        h.set_mtime(FIXED_MTIME);
        h.set_uid(0);
        h.set_gid(0);
        h
    };
    for e in entries {
        let path = e.tar_path();
        // parents first
        let parts: Vec<&str> = path.split('/').collect();
        for i in 1..parts.len() {
            let parent = parts[..i].join("/");
            if dirs_seen.insert(parent.clone()) {
                let mut h = header(tar::EntryType::Directory, 0o755, 0);
                b.append_data(&mut h, format!("{parent}/"), std::io::empty())
                    .expect("tar dir");
            }
        }
        match e {
            TarEntry::File { data, mode, .. } => {
                let mut h = header(tar::EntryType::Regular, *mode, data.len() as u64);
                b.append_data(&mut h, &path, data.as_slice())
                    .expect("tar file");
            }
            TarEntry::Dir { mode, .. } => {
                if dirs_seen.insert(path.clone()) {
                    let mut h = header(tar::EntryType::Directory, *mode, 0);
                    b.append_data(&mut h, format!("{path}/"), std::io::empty())
                        .expect("tar dir");
                }
            }
            TarEntry::Symlink { target, .. } => {
                let mut h = header(tar::EntryType::Symlink, 0o777, 0);
                b.append_link(&mut h, &path, target).expect("tar symlink");
            }
            TarEntry::Hardlink { target, .. } => {
                let mut h = header(tar::EntryType::Link, 0o644, 0);
                b.append_link(&mut h, &path, target).expect("tar hardlink");
            }
            TarEntry::Whiteout { .. } | TarEntry::OpaqueWhiteout { .. } => {
                // umoci writes whiteouts as empty regular files with mode 0000.
                let mut h = header(tar::EntryType::Regular, 0, 0);
                b.append_data(&mut h, &path, std::io::empty())
                    .expect("tar whiteout");
            }
        }
    }
    b.into_inner().expect("finish tar")
}

fn compress(tar: &[u8], c: Compression) -> Vec<u8> {
    match c {
        Compression::None => tar.to_vec(),
        Compression::Gzip => {
            // GzEncoder writes mtime 0 and no file name: reproducible.
            let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
            enc.write_all(tar).expect("gzip");
            enc.finish().expect("gzip finish")
        }
        Compression::Zstd => zstd::encode_all(tar, 3).expect("zstd"),
    }
}

/// Decompress a layer blob according to its media type (`+gzip`/`.gzip`, `+zstd`/`.zstd`, or
/// plain tar).
pub fn decompress_layer(media_type: &str, blob: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    if media_type.ends_with("gzip") {
        flate2::read::GzDecoder::new(blob)
            .read_to_end(&mut out)
            .expect("gunzip layer");
    } else if media_type.ends_with("zstd") {
        out = zstd::decode_all(blob).expect("unzstd layer");
    } else {
        out = blob.to_vec();
    }
    out
}

/// What a path is after applying layers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FlatEntry {
    File { data: Vec<u8>, mode: u32 },
    Dir,
    Symlink(String),
    Hardlink(String),
}

/// Reference implementation of layer application with OCI whiteout semantics (a test oracle):
/// whiteouts of a layer apply to the lower layers only, `.wh..wh..opq` empties a directory,
/// `.wh.name` deletes `name` and everything below it.
pub fn flatten_layers(tars: &[&[u8]]) -> BTreeMap<String, FlatEntry> {
    let mut fs: BTreeMap<String, FlatEntry> = BTreeMap::new();
    for tar_bytes in tars {
        let mut adds = Vec::new();
        let mut removes = Vec::new(); // (path, keep_dir_itself)
        let mut ar = tar::Archive::new(*tar_bytes);
        for entry in ar.entries().expect("tar entries") {
            let mut entry = entry.expect("tar entry");
            let path = entry
                .path()
                .expect("entry path")
                .to_string_lossy()
                .into_owned();
            let path = clean_path(&path);
            if path.is_empty() {
                continue;
            }
            let (dir, name) = match path.rsplit_once('/') {
                Some((d, n)) => (d.to_string(), n.to_string()),
                None => (String::new(), path.clone()),
            };
            if name == ".wh..wh..opq" {
                removes.push((dir, true));
                continue;
            }
            if let Some(hidden) = name.strip_prefix(".wh.") {
                removes.push((
                    if dir.is_empty() {
                        hidden.to_string()
                    } else {
                        format!("{dir}/{hidden}")
                    },
                    false,
                ));
                continue;
            }
            let kind = entry.header().entry_type();
            let fe = if kind.is_dir() {
                FlatEntry::Dir
            } else if kind.is_symlink() {
                FlatEntry::Symlink(
                    entry
                        .link_name()
                        .ok()
                        .flatten()
                        .map(|l| l.to_string_lossy().into_owned())
                        .unwrap_or_default(),
                )
            } else if kind.is_hard_link() {
                FlatEntry::Hardlink(
                    entry
                        .link_name()
                        .ok()
                        .flatten()
                        .map(|l| clean_path(&l.to_string_lossy()))
                        .unwrap_or_default(),
                )
            } else {
                let mut data = Vec::new();
                entry.read_to_end(&mut data).expect("read entry");
                FlatEntry::File {
                    data,
                    mode: entry.header().mode().unwrap_or(0),
                }
            };
            adds.push((path, fe));
        }
        for (p, keep_self) in removes {
            let prefix = format!("{p}/");
            fs.retain(|k, _| !(k.starts_with(&prefix) || (!keep_self && *k == p)));
        }
        for (p, fe) in adds {
            // a non-dir replacing a dir hides its children
            if fe != FlatEntry::Dir {
                let prefix = format!("{p}/");
                fs.retain(|k, _| !k.starts_with(&prefix));
            }
            fs.insert(p, fe);
        }
    }
    fs
}

/// `os/architecture[/variant]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Platform {
    pub os: String,
    pub architecture: String,
    pub variant: Option<String>,
}

impl Platform {
    pub fn new(os: &str, architecture: &str, variant: Option<&str>) -> Self {
        Self {
            os: os.into(),
            architecture: architecture.into(),
            variant: variant.map(str::to_owned),
        }
    }
    pub fn linux_amd64() -> Self {
        Self::new("linux", "amd64", None)
    }
    pub fn linux_arm64() -> Self {
        Self::new("linux", "arm64", Some("v8"))
    }
    fn to_json(&self) -> Value {
        let mut v = json!({"os": self.os, "architecture": self.architecture});
        if let Some(var) = &self.variant {
            v["variant"] = json!(var);
        }
        v
    }
}

/// An image: layers + platform; config and manifest are derived (deterministically).
#[derive(Clone, Debug)]
pub struct Image {
    pub layers: Vec<Layer>,
    pub platform: Platform,
    pub kind: MediaKind,
    /// The config's `config` object (Cmd, Env, Labels, ...).
    pub container_config: Value,
}

impl Image {
    pub fn new(layers: Vec<Layer>, platform: Platform, kind: MediaKind) -> Self {
        Self {
            layers,
            platform,
            kind,
            container_config: json!({
                "Cmd": ["/bin/sh"],
                "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
            }),
        }
    }

    /// Same image with other manifest media types.
    pub fn with_kind(mut self, kind: MediaKind) -> Self {
        self.kind = kind;
        self
    }

    /// Same image with every layer recompressed.
    pub fn with_compression(mut self, c: Compression) -> Self {
        self.layers = self.layers.iter().map(|l| l.recompressed(c)).collect();
        self
    }

    pub fn config_media_type(&self) -> &'static str {
        match self.kind {
            MediaKind::Oci => MT_OCI_CONFIG,
            MediaKind::DockerV2 => MT_DOCKER_CONFIG,
        }
    }
    pub fn manifest_media_type(&self) -> &'static str {
        match self.kind {
            MediaKind::Oci => MT_OCI_MANIFEST,
            MediaKind::DockerV2 => MT_DOCKER_MANIFEST,
        }
    }

    /// Image config JSON (os, architecture, variant, config, rootfs.diff_ids, history).
    pub fn config_json(&self) -> Value {
        let mut c = json!({
            "created": FIXED_CREATED,
            "architecture": self.platform.architecture,
            "os": self.platform.os,
            "config": self.container_config,
            "rootfs": {
                "type": "layers",
                "diff_ids": self.layers.iter().map(|l| l.diff_id.clone()).collect::<Vec<_>>(),
            },
            "history": self.layers.iter().map(|l| json!({"created": FIXED_CREATED, "created_by": l.created_by})).collect::<Vec<_>>(),
        });
        if let Some(v) = &self.platform.variant {
            c["variant"] = json!(v);
        }
        c
    }
    pub fn config_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(&self.config_json()).expect("serialize config")
    }
    pub fn config_digest(&self) -> String {
        sha256_digest(&self.config_bytes())
    }

    pub fn manifest_json(&self) -> Value {
        let config = self.config_bytes();
        json!({
            "schemaVersion": 2,
            "mediaType": self.manifest_media_type(),
            "config": {
                "mediaType": self.config_media_type(),
                "digest": sha256_digest(&config),
                "size": config.len(),
            },
            "layers": self.layers.iter().map(|l| json!({
                "mediaType": l.media_type(self.kind),
                "digest": l.digest,
                "size": l.size(),
            })).collect::<Vec<_>>(),
        })
    }
    pub fn manifest_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(&self.manifest_json()).expect("serialize manifest")
    }
    pub fn manifest_digest(&self) -> String {
        sha256_digest(&self.manifest_bytes())
    }

    /// The filesystem after applying all layers (see [`flatten_layers`]).
    pub fn flattened(&self) -> BTreeMap<String, FlatEntry> {
        let tars: Vec<&[u8]> = self.layers.iter().map(|l| l.tar.as_slice()).collect();
        flatten_layers(&tars)
    }
}

// ---------------------------------------------------------------------------------------------
// Fixture images from ../shared/fixtures/pkgdb
// ---------------------------------------------------------------------------------------------

/// `<crate root>/../shared/fixtures` (same from /work/main and /work/scratch-*).
pub fn shared_fixtures_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/fixtures");
    assert!(
        dir.is_dir(),
        "shared fixtures not found at {} (expected ../shared/fixtures next to the crate)",
        dir.display()
    );
    dir
}

/// Read `../shared/fixtures/<rel>`.
pub fn read_shared_fixture(rel: &str) -> Vec<u8> {
    let p = shared_fixtures_dir().join(rel);
    std::fs::read(&p).unwrap_or_else(|e| panic!("read fixture {}: {e}", p.display()))
}

/// Fixture sources (relative to `../shared/fixtures`).
pub mod fixture_paths {
    pub const DEBIAN_OS_RELEASE: &str = "pkgdb/debian/os-release/debian-10/etc/os-release";
    /// 3 Debian 10 packages: postgresql-client, postgresql-client-11, postgresql-client-common.
    pub const DEBIAN_DPKG_STATUS: &str =
        "pkgdb/debian/claircore-postgresql-deb10/var/lib/dpkg/status";
    pub const ALPINE_OS_RELEASE: &str = "pkgdb/alpine/os-release/alpine-3.18/etc/os-release";
    /// 15 packages of a real alpine:3.18 base (A:x86_64).
    pub const ALPINE_APK_INSTALLED: &str = "pkgdb/alpine/scalibr-alpine-3.18/lib/apk/db/installed";
    /// rpmdb.sqlite of amazonlinux:2023 (system-release 2023.1.20230825).
    pub const RPM_AL2023_RPMDB: &str = "pkgdb/rpm/amazonlinux2023/var/lib/rpm/rpmdb.sqlite";
    pub const RPM_AL2023_EXPECTED_CSV: &str = "pkgdb/rpm/amazonlinux2023/expected-packages.csv";
}

/// Fixture layers are deterministic: build each once per test binary (gzip + sha256 of the
/// 3 MB rpmdb is the slowest part of the harness in an unoptimised build).
fn cached_layers(key: &str, build: impl FnOnce() -> Vec<Layer>) -> Vec<Layer> {
    type Cell = Arc<std::sync::OnceLock<Vec<Layer>>>;
    static CACHE: std::sync::LazyLock<Mutex<HashMap<String, Cell>>> =
        std::sync::LazyLock::new(Mutex::default);
    let cell = CACHE
        .lock()
        .expect("lock")
        .entry(key.to_string())
        .or_default()
        .clone();
    // Parallel tests asking for the same fixture wait for one build instead of racing.
    cell.get_or_init(build).clone()
}

/// Debian 10 rootfs: `etc/os-release` + `var/lib/dpkg/status` (3 packages).
pub fn fixture_rootfs_debian() -> Vec<TarEntry> {
    vec![
        TarEntry::file(
            "etc/os-release",
            read_shared_fixture(fixture_paths::DEBIAN_OS_RELEASE),
            0o644,
        ),
        TarEntry::file(
            "var/lib/dpkg/status",
            read_shared_fixture(fixture_paths::DEBIAN_DPKG_STATUS),
            0o644,
        ),
    ]
}

/// Alpine 3.18 rootfs for `arch` (`x86_64` or `aarch64`): `etc/os-release` +
/// `lib/apk/db/installed`. For another arch, `A:x86_64` lines and `musl-x86_64` (the
/// `so:libc.musl-<arch>.so.1` provides/depends, `ld-musl-<arch>.so.1`) are rewritten, so the
/// two platforms have different contents (`usr/share/apk/keys/x86_64` stays, as in real images).
pub fn fixture_rootfs_alpine(arch: &str) -> Vec<TarEntry> {
    let db = String::from_utf8(read_shared_fixture(fixture_paths::ALPINE_APK_INSTALLED))
        .expect("apk db is UTF-8");
    let db = if arch == "x86_64" {
        db
    } else {
        db.lines()
            .map(|l| {
                if l == "A:x86_64" {
                    format!("A:{arch}")
                } else {
                    l.replace("musl-x86_64", &format!("musl-{arch}"))
                }
            })
            .collect::<Vec<_>>()
            .join("\n")
            + "\n"
    };
    vec![
        TarEntry::file(
            "etc/os-release",
            read_shared_fixture(fixture_paths::ALPINE_OS_RELEASE),
            0o644,
        ),
        TarEntry::file("lib/apk/db/installed", db, 0o644),
    ]
}

/// Amazon Linux 2023 rootfs: `etc/os-release` (committed, see tests/fixtures/registry/README.md)
/// + `var/lib/rpm/rpmdb.sqlite` (3.1 MB, SQLite rpmdb).
pub fn fixture_rootfs_rpm() -> Vec<TarEntry> {
    vec![
        TarEntry::file("etc/os-release", AMAZONLINUX_2023_OS_RELEASE, 0o644),
        TarEntry::file(
            "var/lib/rpm/rpmdb.sqlite",
            read_shared_fixture(fixture_paths::RPM_AL2023_RPMDB),
            0o644,
        ),
    ]
}

/// Single-layer Debian image (linux/amd64, gzip).
pub fn fixture_image_debian(kind: MediaKind) -> Image {
    let layers = cached_layers("debian", || {
        vec![
            Layer::from_entries(&fixture_rootfs_debian(), Compression::Gzip)
                .with_created_by("crowsnest fixture: debian 10 os-release + dpkg status"),
        ]
    });
    Image::new(layers, Platform::linux_amd64(), kind)
}

/// Single-layer Alpine image for a platform (`amd64` → x86_64 db, `arm64` → aarch64 db).
pub fn fixture_image_alpine(kind: MediaKind, platform: Platform) -> Image {
    let apk_arch = match platform.architecture.as_str() {
        "amd64" => "x86_64",
        "arm64" => "aarch64",
        "arm" => "armv7",
        "386" => "x86",
        other => panic!("no Alpine fixture arch for {other}"),
    };
    let layers = cached_layers(&format!("alpine-{apk_arch}"), || {
        vec![
            Layer::from_entries(&fixture_rootfs_alpine(apk_arch), Compression::Gzip)
                .with_created_by(&format!(
                    "crowsnest fixture: alpine 3.18 apk db ({apk_arch})"
                )),
        ]
    });
    Image::new(layers, platform, kind)
}

/// Single-layer Amazon Linux 2023 image with an SQLite rpmdb (linux/amd64, gzip).
pub fn fixture_image_rpm(kind: MediaKind) -> Image {
    let layers = cached_layers("rpm", || {
        vec![
            Layer::from_entries(&fixture_rootfs_rpm(), Compression::Gzip)
                .with_created_by("crowsnest fixture: amazonlinux 2023 os-release + rpmdb.sqlite"),
        ]
    });
    Image::new(layers, Platform::linux_amd64(), kind)
}

/// Split a dpkg status file into stanzas (blank-line separated).
pub fn dpkg_stanzas(status: &str) -> Vec<String> {
    status
        .split("\n\n")
        .map(|s| s.trim_matches('\n').to_string())
        .filter(|s| !s.is_empty())
        .collect()
}

/// The package removed by layer 2 of [`fixture_image_whiteout`].
pub const WHITEOUT_PURGED_PACKAGE: &str = "postgresql-client";

/// Three-layer Debian image with a file whiteout and an opaque directory whiteout:
/// * L1: `usr/lib/os-release` + symlink `etc/os-release -> ../usr/lib/os-release`,
///   `var/lib/dpkg/status` (3 packages), `usr/local/bin/leftover.sh`, `opt/app/{a,b}.txt`
/// * L2: `var/lib/dpkg/status` without `postgresql-client` (simulates `apt purge`),
///   `usr/local/bin/.wh.leftover.sh`
/// * L3: `opt/app/.wh..wh..opq` + `opt/app/c.txt`
///
/// Final filesystem: etc/os-release (symlink), usr/lib/os-release, var/lib/dpkg/status
/// (postgresql-client-11, postgresql-client-common), opt/app/c.txt (+ directories).
pub fn fixture_image_whiteout(kind: MediaKind) -> Image {
    Image::new(
        cached_layers("whiteout", whiteout_layers),
        Platform::linux_amd64(),
        kind,
    )
}

fn whiteout_layers() -> Vec<Layer> {
    let status = String::from_utf8(read_shared_fixture(fixture_paths::DEBIAN_DPKG_STATUS))
        .expect("status UTF-8");
    let kept: Vec<String> = dpkg_stanzas(&status)
        .into_iter()
        .filter(|s| {
            !s.lines()
                .any(|l| l == format!("Package: {WHITEOUT_PURGED_PACKAGE}"))
        })
        .collect();
    assert_eq!(
        kept.len(),
        2,
        "whiteout fixture expects 3 packages in {}",
        fixture_paths::DEBIAN_DPKG_STATUS
    );
    let status_l2 = format!("{}\n\n", kept.join("\n\n"));
    let l1 = Layer::from_entries(
        &[
            TarEntry::file(
                "usr/lib/os-release",
                read_shared_fixture(fixture_paths::DEBIAN_OS_RELEASE),
                0o644,
            ),
            TarEntry::symlink("etc/os-release", "../usr/lib/os-release"),
            TarEntry::file("var/lib/dpkg/status", status.into_bytes(), 0o644),
            TarEntry::file(
                "usr/local/bin/leftover.sh",
                "#!/bin/sh\necho leftover\n",
                0o755,
            ),
            TarEntry::file("opt/app/a.txt", "a\n", 0o644),
            TarEntry::file("opt/app/b.txt", "b\n", 0o644),
        ],
        Compression::Gzip,
    )
    .with_created_by("layer1: base files + dpkg status with postgresql-client");
    let l2 = Layer::from_entries(
        &[
            TarEntry::whiteout("usr/local/bin/leftover.sh"),
            TarEntry::file("var/lib/dpkg/status", status_l2.into_bytes(), 0o644),
        ],
        Compression::Gzip,
    )
    .with_created_by("layer2: apt purge postgresql-client; rm /usr/local/bin/leftover.sh");
    let l3 = Layer::from_entries(
        &[
            TarEntry::opaque("opt/app"),
            TarEntry::file("opt/app/c.txt", "c\n", 0o644),
        ],
        Compression::Gzip,
    )
    .with_created_by("layer3: opaque whiteout opt/app");
    vec![l1, l2, l3]
}

/// The two platform images of the multi-arch fixture (Alpine amd64 + arm64/v8).
pub fn fixture_multiarch_images(kind: MediaKind) -> Vec<(Image, Platform)> {
    [Platform::linux_amd64(), Platform::linux_arm64()]
        .into_iter()
        .map(|p| (fixture_image_alpine(kind, p.clone()), p))
        .collect()
}

/// Push the multi-arch fixture: both platform manifests by digest, then the index/list by
/// `tag` (like `skopeo copy --all`). OCI index ↔ OCI children, manifest list ↔ Docker children.
pub async fn push_fixture_multiarch(
    registry: &TestRegistry,
    repo: &str,
    tag: &str,
    kind: IndexKind,
) -> (PushedIndex, Vec<PushedImage>) {
    let client = registry.client();
    let media = match kind {
        IndexKind::OciIndex => MediaKind::Oci,
        IndexKind::DockerManifestList => MediaKind::DockerV2,
    };
    let mut children = Vec::new();
    for (img, plat) in fixture_multiarch_images(media) {
        children.push((client.push_image(repo, None, &img).await, plat));
    }
    let index = client.push_index(repo, tag, &children, kind).await;
    (index, children.into_iter().map(|(p, _)| p).collect())
}
