//! Shared by the benchmarks: databases to measure on, and a small timing summary.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

pub mod baseline;

use std::time::{Duration, Instant};

use crowsnest::store::DatabaseUrl;
use diesel::connection::SimpleConnection;
use diesel::{Connection, PgConnection};

/// A throwaway database per backend: a temp SQLite file, and a fresh database on the PostgreSQL
/// server named by `CROWSNEST_BENCH_POSTGRES_URL` (default: the local server on 127.0.0.1:5432).
pub struct BenchDb {
    pub label: &'static str,
    pub url: DatabaseUrl,
    _dir: Option<tempfile::TempDir>,
    drop_pg: Option<(String, String)>,
}

impl BenchDb {
    pub fn all() -> Vec<BenchDb> {
        vec![Self::sqlite(), Self::postgres()]
    }

    pub fn sqlite() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("bench.db");
        Self {
            label: "SQLite",
            url: DatabaseUrl::Sqlite(path),
            _dir: Some(dir),
            drop_pg: None,
        }
    }

    pub fn postgres() -> Self {
        let admin = std::env::var("CROWSNEST_BENCH_POSTGRES_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned());
        let name = format!("crowsnest_bench_{}", uuid::Uuid::new_v4().simple());
        let mut conn = PgConnection::establish(&admin).unwrap_or_else(|e| {
            panic!("the benchmarks need PostgreSQL at {admin} (CROWSNEST_BENCH_POSTGRES_URL): {e}")
        });
        conn.batch_execute(&format!("CREATE DATABASE {name}"))
            .expect("create database");
        let mut url = url::Url::parse(&admin).expect("URL");
        url.set_path(&format!("/{name}"));
        Self {
            label: "PostgreSQL",
            url: DatabaseUrl::Postgres(url.to_string()),
            _dir: None,
            drop_pg: Some((admin, name)),
        }
    }
}

impl Drop for BenchDb {
    fn drop(&mut self) {
        // CROWSNEST_BENCH_KEEP_DB=1 keeps the PostgreSQL database for a look afterwards.
        if std::env::var("CROWSNEST_BENCH_KEEP_DB").is_ok_and(|v| v == "1") {
            if let Some((_, name)) = &self.drop_pg {
                eprintln!("kept the PostgreSQL database {name}");
            }
            return;
        }
        if let Some((admin, name)) = &self.drop_pg
            && let Ok(mut conn) = PgConnection::establish(admin)
        {
            let _ = conn.batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"));
        }
    }
}

/// The environment variable `name` parsed, or `default` when it is unset or does not parse.
pub fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Runs `f` `n` times and summarises the wall-clock times.
pub fn time_n(n: usize, mut f: impl FnMut()) -> Summary {
    let mut samples: Vec<Duration> = (0..n)
        .map(|_| {
            let start = Instant::now();
            f();
            start.elapsed()
        })
        .collect();
    samples.sort();
    Summary { samples }
}

/// Sorted samples.
pub struct Summary {
    pub samples: Vec<Duration>,
}

impl Summary {
    pub fn percentile(&self, p: f64) -> Duration {
        let idx = ((self.samples.len() as f64 - 1.0) * p).round() as usize;
        self.samples[idx]
    }

    pub fn line(&self) -> String {
        format!(
            "median {:.2} ms, p95 {:.2} ms, min {:.2} ms (n={})",
            ms(self.percentile(0.5)),
            ms(self.percentile(0.95)),
            ms(self.samples[0]),
            self.samples.len()
        )
    }
}

pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

// ---------------------------------------------------------------------------------------------
// Debian 10 inventories built from the source packages the Debian bundle names
// ---------------------------------------------------------------------------------------------

/// The Debian DSA/DLA bundle (6,832 OSV records).
pub const DEBIAN_ZIP: &str = "../shared/fixtures/osv/debian-dsa-dla.zip";

/// Imports the Debian DSA/DLA bundle and says how long it took.
pub fn import_debian_bundle(pool: &crowsnest::store::Pool, label: &str) {
    let files = [(DEBIAN_ZIP.to_owned(), std::path::PathBuf::from(DEBIAN_ZIP))];
    let start = Instant::now();
    let summary = crowsnest::jobs::import_advisories::import_files(pool, &files, &|_| {})
        .expect("import the Debian bundle");
    println!(
        "{label}: imported the Debian bundle ({} records) in {:.2} s",
        summary.added,
        start.elapsed().as_secs_f64()
    );
}

/// Every `Debian:10` source package of the bundle with the versions it was fixed in, oldest first
/// (dpkg order), sorted by name.
pub fn debian10_fixes() -> Vec<(String, Vec<String>)> {
    use crowsnest::scanner::advisories::osv::{self, Event};
    let mut archive =
        zip::ZipArchive::new(std::fs::File::open(DEBIAN_ZIP).expect("bundle")).expect("zip");
    let mut fixes: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    for i in 0..archive.len() {
        let mut file = archive.by_index(i).expect("zip entry");
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(&mut file, &mut bytes).expect("read");
        for advisory in osv::parse_records(&bytes).into_iter().flatten() {
            for affected in advisory
                .affected
                .iter()
                .filter(|a| a.ecosystem == "Debian:10")
            {
                let versions = fixes.entry(affected.name.clone()).or_default();
                for event in affected.ranges.iter().flat_map(|r| r.events.iter()) {
                    if let Event::Fixed(v) = event {
                        versions.push(v.clone());
                    }
                }
            }
        }
    }
    fixes
        .into_iter()
        .filter_map(|(name, mut versions)| {
            versions.sort_by(|a, b| {
                crowsnest::scanner::versions::dpkg::compare(a, b)
                    .unwrap_or(std::cmp::Ordering::Equal)
            });
            versions.dedup();
            (!versions.is_empty()).then_some((name, versions))
        })
        .collect()
}

/// A small deterministic PRNG (SplitMix64): generated data must not depend on a crate or a seed
/// from the environment.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    /// True with probability `percent` / 100.
    pub fn chance(&mut self, percent: u64) -> bool {
        self.next_u64() % 100 < percent
    }
}

/// A Debian 10 inventory of about `size` packages (±10%) shaped like a real image's: about 45% of
/// the binaries come from sources the bundle has advisories for (1 to 3 binaries per source, all at
/// the source's version), the rest from sources without any. Of the sources with advisories, 80%
/// are at their latest fixed version (clean) and 20% are outdated: at an earlier fix when there
/// is one (vulnerable to the later advisories only), else just below the only fix. Three layers.
pub fn realistic_debian_inventory(
    fixes: &[(String, Vec<String>)],
    size: usize,
    seed: u64,
) -> crowsnest::scanner::advisories::matcher::Inventory {
    use crowsnest::scanner::advisories::matcher::{Inventory, InventoryPackage, PackageKind};
    let mut rng = Rng::new(seed);
    let size = size - size / 10 + rng.below(size / 5 + 1);
    let layer = |rng: &mut Rng| Some(format!("sha256:{:064x}", 0xa1a1 + rng.below(3)));
    let with_advisories = size * 45 / 100;
    let mut used = std::collections::HashSet::new();
    let mut packages = Vec::with_capacity(size);
    while packages.len() < with_advisories && used.len() < fixes.len() {
        let (source, versions) = &fixes[rng.below(fixes.len())];
        if !used.insert(source.as_str()) {
            continue;
        }
        let latest = &versions[versions.len() - 1];
        let version = if !rng.chance(20) {
            latest.clone()
        } else if versions.len() > 1 {
            versions[rng.below(versions.len() - 1)].clone()
        } else {
            format!("{latest}~")
        };
        let binaries = 1 + rng.below(3);
        for name in [
            source.clone(),
            format!("lib{source}0"),
            format!("{source}-common"),
        ]
        .into_iter()
        .take(binaries)
        {
            packages.push(InventoryPackage {
                kind: PackageKind::Dpkg,
                name,
                version: version.clone(),
                source_name: Some(source.clone()),
                source_version: None,
                layer_digest: layer(&mut rng),
                file_path: None,
                owner: None,
            });
        }
    }
    let mut quiet = std::collections::HashSet::new();
    while packages.len() < size {
        let k = rng.below(4000);
        if !quiet.insert(k) {
            continue;
        }
        packages.push(InventoryPackage {
            kind: PackageKind::Dpkg,
            name: format!("quiet-package-{k}"),
            version: format!("1.{}-{}+deb10u1", k % 7, k % 3 + 1),
            source_name: None,
            source_version: None,
            layer_digest: layer(&mut rng),
            file_path: None,
            owner: None,
        });
    }
    Inventory {
        os: Some(os_release("debian", "10")),
        packages,
        unreadable: Vec::new(),
    }
}

pub fn os_release(id: &str, version: &str) -> crowsnest::scanner::advisories::ecosystem::OsRelease {
    crowsnest::scanner::advisories::ecosystem::OsRelease {
        id: id.to_owned(),
        version_id: Some(version.to_owned()),
        id_like: vec![],
        pretty_name: None,
    }
}

// ---------------------------------------------------------------------------------------------
// The app in-process, and a token to call it with
// ---------------------------------------------------------------------------------------------

/// The application serving a [`BenchDb`] on a free loopback port, without scan workers unless
/// asked (reads only), and a Reader token and a Contributor token for every subscription.
pub struct BenchApp {
    /// `http://127.0.0.1:{port}`
    pub base: String,
    pub token: String,
    /// For the writes a bench measures (exemptions).
    #[allow(dead_code)]
    pub contributor_token: String,
    handle: crowsnest::startup::ServerHandle,
}

impl BenchApp {
    /// Connects (a pool of `pool_size`), migrates, and serves with `http_workers` workers.
    pub async fn start(db: &BenchDb, pool_size: u32, http_workers: usize) -> Self {
        Self::start_with_queue(
            db,
            pool_size,
            http_workers,
            crowsnest::jobs::queue::QueueSettings {
                workers: 0,
                ..Default::default()
            },
        )
        .await
    }

    /// [`BenchApp::start`] with scan workers as `queue` says.
    pub async fn start_with_queue(
        db: &BenchDb,
        pool_size: u32,
        http_workers: usize,
        queue: crowsnest::jobs::queue::QueueSettings,
    ) -> Self {
        use crowsnest::api::auth::{SubscriptionsClaim, mint_hs256};
        use crowsnest::config::{AuthSettings, JobSettings, Secret, Settings};
        let auth = AuthSettings {
            hs256_secret: Some(Secret::new(
                b"bench-secret-bench-secret-bench-secret".to_vec(),
            )),
            issuer: "crowsnest".into(),
            audience: "crowsnest".into(),
            jwks_url: None,
            jwks_min_refresh: Duration::from_secs(10),
        };
        let settings = Settings {
            database: db.url.clone(),
            db_pool_size: pool_size,
            bind: "127.0.0.1:0".into(),
            public_url: None,
            http_workers: Some(http_workers),
            request_body: Default::default(),
            auth: auth.clone(),
            jobs: JobSettings {
                queue,
                ..Default::default()
            },
        };
        let app = crowsnest::startup::Application::build(settings)
            .await
            .expect("app");
        let base = format!("http://127.0.0.1:{}", app.port());
        let handle = app.handle();
        tokio::spawn(app.run_until_stopped());
        let token_of = |role| {
            mint_hs256(
                auth.hs256_secret.as_ref().expect("secret"),
                &auth,
                "bench",
                SubscriptionsClaim::One("*".into()),
                role,
                Duration::from_secs(24 * 3600),
            )
            .expect("token")
        };
        Self {
            base,
            token: token_of(crowsnest::domain::Role::Reader),
            contributor_token: token_of(crowsnest::domain::Role::Contributor),
            handle,
        }
    }

    /// Stops the server and waits until it has (the pool closes with it).
    pub async fn stop(self) {
        self.handle.stop(false).await;
    }
}
