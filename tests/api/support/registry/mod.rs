//! A real Docker Distribution registry (Debian package `docker-registry`, Distribution 2.8) on a
//! free loopback port: [`TestRegistry`] spawns `docker-registry serve <config>` with storage in a
//! temp dir, optional htpasswd (Basic) or token (Bearer, see [`token_server`]) auth, optional
//! notifications (see [`notifications`]); killed on Drop. [`client`] pushes and pulls images.
//!
//! Everything is plain HTTP on 127.0.0.1.
//!
//! Requires the Debian package `docker-registry`; custom Basic credentials (other than
//! [`RegistryAuth::basic_default`]) also need `htpasswd` from `apache2-utils`.
#![allow(dead_code)]

pub mod client;
pub mod notifications;
pub mod token_server;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use client::RegistryClient;
use token_server::TokenServer;

use crate::support::free_port;

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
const TOKEN_CERT_PEM: &str = include_str!("../../../fixtures/registry/token-issuer.cert.pem");

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

/// One notification endpoint (`notifications.endpoints[0]` of the registry's configuration).
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
    /// Timeout 2s, threshold 3, backoff 1s, includereferences on, no filters.
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
