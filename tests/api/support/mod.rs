//! Support code shared by the integration tests; the feature tests sit beside this folder.
//!
//! * `app`: [`app::spawn_app`] starts the service on a free port over a fresh database and returns
//!   a [`app::TestApp`] that mints tokens of any role, sends JSON requests and seeds the store.
//! * `database`: a fresh SQLite file or PostgreSQL database per test ([`database::TestDb`]), and
//!   `backend_tests!`, which runs each `async fn name(backend: Backend)` as `name::sqlite` and
//!   `name::postgres`.
//! * `rows`: registry, image and finding rows to seed the store with.
//! * `registry`: a real Docker Distribution registry ([`registry::TestRegistry`]) with its token
//!   server and notification settings; `registry::notifications` receives webhook POSTs and
//!   `registry::client` pushes and pulls images.
//! * `images`: images built by hand (tar layers, compression, config, manifest, flattening).
//! * `fixtures`: the Debian, Alpine, RPM, whiteout and multi-arch fixture images, and
//!   [`fixtures::vulnerable_debian`], Debian with one vulnerable library (other versions of it, or
//!   none, with [`fixtures::debian_with_gnutls`]); the crate's own `tests/fixtures` through
//!   [`fixtures::read_crate_fixture`], and jars assembled at test time with
//!   [`fixtures::zip_archive`].
//! * `fake_registry`: an in-process fake registry for fault injection.
//! * `http`: the HTTP/1.1 request reader and response writer of the fake registry and of
//!   `http::MiniServer`, the helper servers' server.
//! * `scans`: scans through the API in subscription [`scans::SUB`]: connect a registry (or start
//!   one that notifies the service, [`scans::notifying_registry`]), import an advisory, submit a
//!   scan or deliver registry notifications, list the scans and findings and wait for a scan to
//!   end.
//! * [`free_port`]: a free loopback port, for anything that must be told its port up front.
//! * [`wait_for`]: polls until a condition holds, failing after a time limit.
//!
//! A database test is listed in `backend_tests!` and starts with `spawn_app(backend).await`. A
//! test that scans starts `TestRegistry::start(RegistryAuth::None)` (or Basic, Token, or with
//! notifications to the app's webhook), pushes an image with `registry::client::push_image`,
//! connects `registry.host()` to the app as a registry's login server (`scans::connect`), then
//! submits a scan (`scans::post_scan`) and waits for it (`scans::wait_for_scan_end`).

use std::net::TcpListener;
use std::time::{Duration, Instant};

pub mod app;
pub mod database;
pub mod fake_registry;
pub mod fixtures;
pub mod http;
pub mod images;
pub mod registry;
pub mod rows;
pub mod scans;

/// Pick a free loopback port (bind :0, read it, release it).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind 127.0.0.1:0")
        .port()
}

/// Polls `probe` until it returns `Some`, failing after `limit`.
pub async fn wait_for<T, F, Fut>(what: &str, limit: Duration, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let started = Instant::now();
    loop {
        if let Some(v) = probe().await {
            return v;
        }
        assert!(
            started.elapsed() < limit,
            "timed out after {limit:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
