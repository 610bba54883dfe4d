//! Listing sub-assessments at scale, over HTTP, with a real load generator.
//!
//! PostgreSQL: 1,000,000 findings over 20,000 images in 5 subscriptions (3 registries and 50
//! repositories each). SQLite: 100,000 findings over 2,000 images in 1 subscription (so that one
//! repository has enough High findings for a 50th filtered page). 50 findings per image; image
//! counts per repository follow Zipf (the largest repository has about 22% of a subscription's
//! images); severities Low 30% / Medium 40% / High 25% / Critical 5%.
//!
//! Per backend: the latency of a sequential client (one keep-alive connection) for the first page
//! of 100 and the 50th page, with and without `$filter` on severity and repository; then `wrk -t2
//! -c32` against the same URLs (requests/s, latency distribution) while the process's RSS is
//! sampled every 100 ms. The server runs in this process (by default 2 HTTP workers and a pool of
//! 16), so the RSS includes the harness; seeding buffers are gone by then. Each wrk run also says
//! where the cores went (this process, wrk, the pool's PostgreSQL backends, anything else on the
//! machine) and so the CPU a page costs; last, the plans of the cases' SQL (`EXPLAIN (ANALYZE,
//! BUFFERS)` on PostgreSQL, `EXPLAIN QUERY PLAN` on SQLite).
//!
//! Then Azure Resource Graph over the same data (`CROWSNEST_BENCH_ARG`, default 1; 0 skips it):
//! the latency of a filtered query (severity and repository, `project`, `take 100`) over the
//! listed subscription, the time of `summarize count() by severity` over it, and the time and
//! peak RSS of a query that streams every sub-assessment row of it, fully rendered
//! (`CROWSNEST_BENCH_ARG_RUNS` runs of the `summarize`, default 5).
//!
//! Then an exemption of the listed subscription's Low findings: its PUT (which weighs every
//! present finding of the subscription), the first page of what it exempts, and its DELETE
//! (`CROWSNEST_BENCH_EXEMPTIONS`, default 1; 0 skips it).
//!
//! Seeding: multi-row INSERTs (1,000 rows per statement on PostgreSQL, 500 on SQLite) in one
//! transaction per subscription, rows built by a second thread; then `VACUUM ANALYZE` on
//! PostgreSQL (what autovacuum would do after such an insert). Its time is printed.
//!
//! cargo bench --bench listings
//!
//! Environment: `CROWSNEST_BENCH_BACKENDS` (default `postgres,sqlite`),
//! `CROWSNEST_BENCH_LISTINGS_FRACTION` (scale the data down for a quick run, e.g. `0.05`),
//! `CROWSNEST_BENCH_SAMPLES` (sequential requests per case, default 300),
//! `CROWSNEST_BENCH_WRK_SECONDS` (default 20; 0 skips the load phases, e.g. to count instructions
//! per page under `valgrind --tool=callgrind`), `CROWSNEST_BENCH_POOL_SIZE` (default 16),
//! `CROWSNEST_BENCH_HTTP_WORKERS` (default 2), `CROWSNEST_BENCH_POSTGRES_URL` (see common),
//! `CROWSNEST_BENCH_WHAT_IF_SQL` (SQL to run after the measurements, e.g. a `CREATE INDEX`, before
//! explaining the cases' queries a second time), `CROWSNEST_BENCH_INTEL` (default 1: store KEV and
//! EPSS intelligence for the findings' advisories, so every page attaches it; 0: none).
//! Needs `wrk` on the PATH (Debian: `apt-get install wrk`).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::{BenchApp, BenchDb, Rng, Summary, ms};
use crowsnest::domain::{Severity, Timestamp};
use crowsnest::jobs::findings::{self as finding_rows};
use crowsnest::scanner::advisories::matcher::{Link, Match};
use crowsnest::store::schema::{findings, images};
use crowsnest::store::{
    self, AnyConnection, DatabaseUrl, findings::FindingRow, images::ImageRow,
    registries::RegistryRow,
};
use diesel::connection::SimpleConnection;
use diesel::{Connection, QueryResult, RunQueryDsl};

/// Where the data lives and how much of it there is.
#[derive(Debug, Clone, Copy)]
struct Scale {
    subscriptions: usize,
    /// Per subscription.
    registries: usize,
    /// Per subscription.
    repositories: usize,
    images: usize,
    findings: usize,
}

const POSTGRES_SCALE: Scale = Scale {
    subscriptions: 5,
    registries: 3,
    repositories: 50,
    images: 20_000,
    findings: 1_000_000,
};

const SQLITE_SCALE: Scale = Scale {
    subscriptions: 1,
    registries: 3,
    repositories: 50,
    images: 2_000,
    findings: 100_000,
};

const TOP: usize = 100;
/// The deep page measured: reached by following 49 `nextLink`s.
const DEEP_PAGE: usize = 50;
const WRK_CONNECTIONS: usize = 32;
const WARMUP: usize = 20;

impl Scale {
    /// The same shape with `fraction` of the images and findings (quick runs).
    fn scaled(self, fraction: f64) -> Self {
        let per_image = self.findings / self.images;
        let floor = self.subscriptions * self.repositories * 2;
        let images = ((self.images as f64 * fraction).round() as usize).max(floor);
        let images = images - images % self.subscriptions;
        Self {
            images,
            findings: images * per_image,
            ..self
        }
    }
}

fn main() {
    // Printed first, so that every figure below can be read against this machine's speed.
    common::baseline::Baseline::measure();
    let backends = std::env::var("CROWSNEST_BENCH_BACKENDS")
        .unwrap_or_else(|_| "postgres,sqlite".to_owned())
        .to_lowercase();
    let fraction: f64 = common::env_or("CROWSNEST_BENCH_LISTINGS_FRACTION", 1.0);
    let options = Options {
        samples: common::env_or("CROWSNEST_BENCH_SAMPLES", 300usize).max(1),
        wrk_seconds: common::env_or("CROWSNEST_BENCH_WRK_SECONDS", 20u64),
        pool_size: common::env_or("CROWSNEST_BENCH_POOL_SIZE", 16u32).max(1),
        http_workers: common::env_or("CROWSNEST_BENCH_HTTP_WORKERS", 2usize).max(1),
    };
    let wrk = std::process::Command::new("wrk").arg("--version").output();
    assert!(
        options.wrk_seconds == 0 || wrk.is_ok(),
        "the listings bench needs wrk on the PATH (Debian: apt-get install wrk)"
    );
    let started = Instant::now();
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let mut reports = Vec::new();
    // PostgreSQL first: its RSS is the one with a target, measured before SQLite has run in-process.
    // Each database is created just before use and dropped right after.
    if backends.contains("postgres") {
        let db = BenchDb::postgres();
        let scale = POSTGRES_SCALE.scaled(fraction);
        reports.push(runtime.block_on(bench(&db, scale, &options)));
    }
    if backends.contains("sqlite") {
        let db = BenchDb::sqlite();
        let scale = SQLITE_SCALE.scaled(fraction);
        reports.push(runtime.block_on(bench(&db, scale, &options)));
    }
    let page_bytes = reports
        .iter()
        .flat_map(|report| &report.cases)
        .find_map(|case| case.latency.as_ref().map(|(_, bytes)| *bytes));
    let ceiling = page_bytes
        .filter(|_| options.wrk_seconds > 0)
        .map(|bytes| (bytes, runtime.block_on(http_alone(bytes, &options))));
    println!("\n==================== summary ====================");
    for report in &reports {
        report.print();
    }
    if let Some((bytes, result)) = ceiling {
        let per_page = |cores: f64| cores * 1000.0 / result.requests_per_second;
        println!(
            "\nHTTP alone: {:.0} KiB pages served from memory by actix-web ({} workers) under the same wrk load: \
             {:.0} req/s, p99 {:.2} ms; server {:.3} ms and wrk {:.3} ms of CPU per page. \
             Everything else a listed page costs is the query, decoding and rendering.",
            bytes as f64 / 1024.0,
            options.http_workers,
            result.requests_per_second,
            ms(result.p99),
            per_page(result.cpu.server),
            per_page(result.cpu.wrk),
        );
    }
    println!(
        "\nthe whole bench took {:.0} s",
        started.elapsed().as_secs_f64()
    );
}

#[derive(Debug, Clone, Copy)]
struct Options {
    samples: usize,
    wrk_seconds: u64,
    pool_size: u32,
    http_workers: usize,
}

// ---------------------------------------------------------------------------------------------
// The data
// ---------------------------------------------------------------------------------------------

struct Plan {
    subscriptions: Vec<SubscriptionPlan>,
    findings_per_image: usize,
}

struct SubscriptionPlan {
    id: String,
    registries: Vec<RegistryRow>,
    repositories: Vec<RepositoryPlan>,
}

struct RepositoryPlan {
    name: String,
    /// Index into the subscription's registries.
    registry: usize,
    images: usize,
}

/// `total` split over `parts` by Zipf's law (weight 1/k), at least one each; rounding goes to the first.
fn zipf_split(total: usize, parts: usize) -> Vec<usize> {
    let sum: f64 = (1..=parts).map(|k| 1.0 / k as f64).sum();
    let mut counts: Vec<usize> = (1..=parts)
        .map(|k| ((total as f64 / k as f64 / sum) as usize).max(1))
        .collect();
    let assigned: usize = counts.iter().sum();
    counts[0] = counts[0] + total - assigned;
    counts
}

const TEAMS: [&str; 8] = [
    "payments", "identity", "search", "platform", "data", "mobile", "web", "ops",
];

fn plan(scale: Scale, now: i64) -> Plan {
    assert_eq!(
        scale.images % scale.subscriptions,
        0,
        "images per subscription"
    );
    assert_eq!(scale.findings % scale.images, 0, "findings per image");
    let per_subscription = scale.images / scale.subscriptions;
    let subscriptions = (0..scale.subscriptions)
        .map(|s| {
            let id = format!("7c1f0d2e-5b3a-4c8e-9f10-{:012x}", 0xb00 + s);
            let registries = (0..scale.registries)
                .map(|r| RegistryRow {
                    id: store::new_id(),
                    subscription_id: id.clone(),
                    resource_group: format!("rg-containers-{r}"),
                    name: format!("cr{s}prod{r}"),
                    login_server: format!("cr{s}prod{r}.azurecr.io"),
                    insecure: false,
                    credentials: None,
                    webhook_secret_sha256: "0".repeat(64),
                    created_at: now,
                    updated_at: now,
                })
                .collect();
            let repositories = zipf_split(per_subscription, scale.repositories)
                .into_iter()
                .enumerate()
                .map(|(k, images)| RepositoryPlan {
                    name: format!("{}/service-{k:02}", TEAMS[k % TEAMS.len()]),
                    registry: k % scale.registries,
                    images,
                })
                .collect();
            SubscriptionPlan {
                id,
                registries,
                repositories,
            }
        })
        .collect();
    Plan {
        subscriptions,
        findings_per_image: scale.findings / scale.images,
    }
}

const PACKAGES: [&str; 40] = [
    "openssl",
    "libxml2",
    "curl",
    "zlib",
    "glibc",
    "systemd",
    "libgcrypt20",
    "gnutls28",
    "expat",
    "sqlite3",
    "perl",
    "python3.11",
    "tiff",
    "libpng1.6",
    "libjpeg-turbo",
    "freetype",
    "krb5",
    "openldap",
    "libssh2",
    "nghttp2",
    "pcre2",
    "ncurses",
    "bash",
    "tar",
    "gzip",
    "xz-utils",
    "util-linux",
    "shadow",
    "apt",
    "dpkg",
    "libksba",
    "gnupg2",
    "libtasn1-6",
    "p11-kit",
    "nss",
    "icu",
    "libwebp",
    "imagemagick",
    "git",
    "busybox",
];

const SENTENCES: [&str; 8] = [
    "A flaw was found in the way the package handled crafted input in its parser.",
    "An out-of-bounds read could allow a remote attacker to cause a denial of service or possibly disclose sensitive memory.",
    "When processing untrusted data, length fields were not validated, leading to a heap-based buffer overflow.",
    "A use-after-free in an error-handling path may allow code execution with the privileges of the calling process.",
    "An integer overflow in a size computation results in an undersized allocation and memory corruption.",
    "An attacker able to supply a malicious file could trigger an infinite loop, exhausting CPU resources.",
    "The issue is reachable over the network in default configurations of applications linking the library.",
    "Versions before the fixed release listed by the distribution's security tracker are affected.",
];

fn hex64(rng: &mut Rng) -> String {
    format!(
        "{:016x}{:016x}{:016x}{:016x}",
        rng.next_u64(),
        rng.next_u64(),
        rng.next_u64(),
        rng.next_u64()
    )
}

/// What the generator saw of the repository the filtered cases use.
#[derive(Debug, Default, Clone)]
struct Expected {
    subscription: String,
    subscription_findings: usize,
    repository: String,
    repository_findings: usize,
    repository_high: usize,
    repository_critical: usize,
}

enum Chunk {
    Images(Vec<ImageRow>),
    Findings(Vec<FindingRow>),
    Commit,
}

const DAY_MICROS: i64 = 86_400_000_000;

/// Sends one subscription after another: its images, then their findings image by image, then a
/// commit. Deterministic (the ids of registries aside).
fn generate(plan: &Plan, now: i64, per_insert: usize, tx: mpsc::SyncSender<Chunk>) -> Expected {
    let mut expected = Expected::default();
    for (s, sub) in plan.subscriptions.iter().enumerate() {
        let mut rng = Rng::new(0x5eed_0000 + s as u64);
        let mut sub_images = Vec::new();
        for (k, repo) in sub.repositories.iter().enumerate() {
            let registry = &sub.registries[repo.registry];
            for _ in 0..repo.images {
                let pushed = now - (rng.below(180) as i64) * DAY_MICROS;
                sub_images.push((
                    k,
                    ImageRow {
                        id: store::new_id(),
                        registry_id: registry.id.clone(),
                        subscription_id: sub.id.clone(),
                        repository: repo.name.clone(),
                        digest: format!("sha256:{}", hex64(&mut rng)),
                        index_digest: None,
                        platform: Some("linux/amd64".into()),
                        os: Some("debian 12".into()),
                        health: "Unhealthy".into(),
                        health_reason: None,
                        pushed_at: Some(pushed),
                        pulled_at: Some(now),
                        scanned_at: Some(now),
                        running: rng.chance(30),
                        created_at: pushed,
                        coverage: None,
                        advisories_synced_at: None,
                        unreadable_files: 0,
                        media_type: None,
                        os_version: Some("debian_linux_12".into()),
                    },
                ));
            }
        }
        for chunk in sub_images.chunks(per_insert) {
            let rows = chunk.iter().map(|(_, image)| image.clone()).collect();
            tx.send(Chunk::Images(rows)).expect("send");
        }
        let mut buffer = Vec::with_capacity(per_insert);
        for (k, image) in &sub_images {
            let repo = &sub.repositories[*k];
            let registry = &sub.registries[repo.registry];
            let layers: Vec<String> = (0..5)
                .map(|_| format!("sha256:{}", hex64(&mut rng)))
                .collect();
            // Distinct advisories within an image: consecutive indexes from a random start.
            let first_advisory = rng.below(6000);
            for j in 0..plan.findings_per_image {
                let row = finding(&mut rng, registry, image, &layers, first_advisory + j, now);
                if s == 0 {
                    expected.subscription_findings += 1;
                    if *k == 0 {
                        expected.repository_findings += 1;
                        expected.repository_high += usize::from(row.severity == "High");
                        expected.repository_critical += usize::from(row.severity == "Critical");
                    }
                }
                buffer.push(row);
                if buffer.len() == per_insert {
                    let full = std::mem::replace(&mut buffer, Vec::with_capacity(per_insert));
                    tx.send(Chunk::Findings(full)).expect("send");
                }
            }
        }
        if !buffer.is_empty() {
            tx.send(Chunk::Findings(buffer)).expect("send");
        }
        tx.send(Chunk::Commit).expect("send");
    }
    expected.subscription = plan.subscriptions[0].id.clone();
    expected.repository = plan.subscriptions[0].repositories[0].name.clone();
    expected
}

/// A finding in `image` of the `advisory_index`th made-up advisory, with realistic text lengths.
fn finding(
    rng: &mut Rng,
    registry: &RegistryRow,
    image: &ImageRow,
    layers: &[String],
    advisory_index: usize,
    now: i64,
) -> FindingRow {
    let advisory = format!(
        "CVE-{}-{:05}",
        2018 + advisory_index % 7,
        10_000 + advisory_index
    );
    let package = PACKAGES[advisory_index % PACKAGES.len()];
    let installed = format!(
        "{}.{}.{}-{}",
        1 + advisory_index % 3,
        advisory_index % 17,
        advisory_index % 11,
        1 + advisory_index % 4
    );
    let fixed = format!("{installed}+deb12u{}", 1 + rng.below(3));
    let (severity, low, high) = match rng.below(100) {
        0..30 => (Severity::Low, 10, 39),
        30..70 => (Severity::Medium, 40, 69),
        70..95 => (Severity::High, 70, 89),
        _ => (Severity::Critical, 90, 100),
    };
    let cvss3 = (low + rng.below(high - low + 1)) as f64 / 10.0;
    let mut description = format!("{advisory} in {package}: ");
    while description.len() < 300 {
        description.push_str(SENTENCES[rng.below(SENTENCES.len())]);
        description.push(' ');
    }
    description.truncate(297);
    description.push_str("...");
    let nvd = |id: &str| Link {
        title: id.to_owned(),
        link: format!("https://nvd.nist.gov/vuln/detail/{id}"),
    };
    let mut cves = vec![nvd(&advisory)];
    if rng.chance(30) {
        cves.push(nvd(&format!(
            "CVE-{}-{:05}",
            2018 + advisory_index % 7,
            40_000 + advisory_index
        )));
    }
    let mut vendor_references = Vec::new();
    if rng.chance(50) {
        let dsa = 5000 + advisory_index % 900;
        vendor_references.push(Link {
            title: format!("DSA-{dsa}-1"),
            link: format!("https://www.debian.org/security/2024/dsa-{dsa}"),
        });
    }
    let first_seen = now - (rng.below(90) as i64) * DAY_MICROS;
    let resolved_at = rng.chance(10).then_some(now);
    let found = Match {
        display_name: format!("{package}: {advisory}"),
        remediation: format!(
            "Upgrade {package} from {installed} to {fixed} or later, then rebuild and redeploy the image."
        ),
        impact: format!(
            "{} severity; CVSS 3.1 base score {cvss3:.1}.",
            severity.as_str()
        ),
        advisory_id: advisory,
        package_name: package.to_owned(),
        installed_version: installed,
        fixed_version: Some(fixed),
        ecosystem: "Debian:12".into(),
        category: "Debian".into(),
        severity,
        severity_source: "cvss3".into(),
        cvss_v3: Some(cvss3),
        description,
        cves,
        vendor_references,
        published: chrono::DateTime::from_timestamp_micros(first_seen - 30 * DAY_MICROS),
        patchable: true,
        layer_digest: Some(layers[rng.below(layers.len())].clone()),
        ..Match::default()
    };
    FindingRow {
        first_seen,
        resolved_at,
        ..finding_rows::row(registry, image, &found, now)
    }
}

fn insert_images(conn: &mut AnyConnection, rows: &[ImageRow]) -> QueryResult<usize> {
    match conn {
        AnyConnection::Postgresql(c) => diesel::insert_into(images::table).values(rows).execute(c),
        AnyConnection::Sqlite(c) => diesel::insert_into(images::table).values(rows).execute(c),
    }
}

fn insert_findings(conn: &mut AnyConnection, rows: &[FindingRow]) -> QueryResult<usize> {
    match conn {
        AnyConnection::Postgresql(c) => {
            diesel::insert_into(findings::table).values(rows).execute(c)
        }
        AnyConnection::Sqlite(c) => diesel::insert_into(findings::table).values(rows).execute(c),
    }
}

struct Seeded {
    expected: Expected,
    insert: Duration,
    /// KEV entries and EPSS rows, and the time they took; none with `CROWSNEST_BENCH_INTEL=0`.
    intel: Option<((usize, usize), Duration)>,
    /// `VACUUM ANALYZE` on PostgreSQL (what autovacuum does after a bulk insert); none on SQLite,
    /// as the app never runs `ANALYZE` there.
    maintenance: Option<Duration>,
    per_insert: usize,
}

/// Multi-row INSERTs (1,000 rows per statement on PostgreSQL, 500 on SQLite), one transaction per
/// subscription; a generator thread builds the rows while this one inserts them.
fn seed(url: &DatabaseUrl, scale: Scale) -> Seeded {
    let now = Timestamp::now().micros();
    let plan = plan(scale, now);
    let pool = store::connect(url, 1).expect("pool");
    let mut conn = pool.get().expect("connection");
    let per_insert = if url.is_sqlite() { 500 } else { 1000 };
    let start = Instant::now();
    for sub in &plan.subscriptions {
        for registry in &sub.registries {
            store::registries::insert(&mut conn, registry).expect("registry");
        }
    }
    let (tx, rx) = mpsc::sync_channel(8);
    let expected = std::thread::scope(|scope| {
        let generator = scope.spawn(|| generate(&plan, now, per_insert, tx));
        let mut findings = 0;
        loop {
            let open = conn
                .transaction(|c| {
                    loop {
                        match rx.recv() {
                            Ok(Chunk::Images(rows)) => {
                                insert_images(c, &rows)?;
                            }
                            Ok(Chunk::Findings(rows)) => findings += insert_findings(c, &rows)?,
                            Ok(Chunk::Commit) => return Ok::<_, diesel::result::Error>(true),
                            Err(_) => return Ok(false),
                        }
                    }
                })
                .expect("seed");
            if !open {
                break;
            }
        }
        assert_eq!(findings, scale.findings, "findings inserted");
        generator.join().expect("generator")
    });
    let insert = start.elapsed();
    // What `crowsnest serve` fills in at start for findings written without their MDVM names.
    let naming = Instant::now();
    let named = store::findings::fill_mdvm_names(&mut conn).expect("MDVM names");
    println!(
        "MDVM names of {named} findings stored in {:.1} s",
        naming.elapsed().as_secs_f64()
    );
    let intel = common::env_or("CROWSNEST_BENCH_INTEL", 1u8) == 1;
    let intel = intel.then(|| {
        let start = Instant::now();
        let seeded =
            store::transaction(&mut conn, |c| seed_intel(c, 6000 + plan.findings_per_image))
                .expect("intel");
        (seeded, start.elapsed())
    });
    let maintenance = (!url.is_sqlite()).then(|| {
        let start = Instant::now();
        conn.batch_execute("VACUUM ANALYZE").expect("vacuum");
        start.elapsed()
    });
    Seeded {
        expected,
        insert,
        intel,
        maintenance,
        per_insert,
    }
}

/// EPSS rows, as many as FIRST publishes.
const EPSS_ROWS: usize = 300_000;

/// Exploit intelligence for the made-up advisories (see [`finding`]), as a real installation
/// holds it: every advisory stored, a third with a CVE alias, a KEV catalogue of about 1,400
/// entries (a fifth of the advisories, some only through their alias) and EPSS scores for every
/// advisory and alias among 300,000 rows. Returns (KEV entries, EPSS rows).
fn seed_intel(c: &mut AnyConnection, advisories: usize) -> QueryResult<(usize, usize)> {
    use crowsnest::store::advisories::{self as stored, NewAdvisory};
    use crowsnest::store::exploit_intel::{self as intel, EpssScoreRow, KnownExploited};
    let id = |k: usize| format!("CVE-{}-{:05}", 2018 + k % 7, 10_000 + k);
    let alias = |k: usize| {
        k.is_multiple_of(3)
            .then(|| format!("CVE-{}-{:05}", 2018 + k % 7, 40_000 + k))
    };
    let now = Timestamp::now().micros();
    let rows: Vec<NewAdvisory> = (0..advisories)
        .map(|k| {
            NewAdvisory::without_packages(id(k), String::new(), alias(k).into_iter().collect(), now)
        })
        .collect();
    for chunk in rows.chunks(500) {
        stored::apply(c, chunk)?;
    }
    let entry = |cve: String| {
        KnownExploited {
        cve_id: cve,
        date_added: "2024-05-01".into(),
        due_date: "2024-05-22".into(),
        required_action: "Apply mitigations per vendor instructions or discontinue use of the product if mitigations are unavailable.".into(),
        known_ransomware_campaign_use: Some("Unknown".into()),
    }
    };
    let kev: Vec<KnownExploited> = (0..advisories)
        .filter_map(|k| match k % 5 {
            0 => Some(entry(id(k))),
            3 => alias(k).map(entry),
            _ => None,
        })
        .collect();
    intel::replace_kev(c, &kev)?;
    let load = intel::begin_epss_load(c)?;
    let score = |n: usize| ((n * 7919) % 100_000) as f64 / 100_000.0;
    let cves: Vec<String> = (0..advisories)
        .flat_map(|k| std::iter::once(id(k)).chain(alias(k)))
        .collect();
    let filler = (0..EPSS_ROWS.saturating_sub(cves.len())).map(|n| format!("CVE-1999-{n:06}"));
    let mut batch = Vec::with_capacity(1000);
    let mut scored = 0;
    for (n, cve) in cves.into_iter().chain(filler).enumerate() {
        batch.push(EpssScoreRow {
            cve_id: cve,
            load_id: load,
            score: score(n),
            percentile: score(n + 1),
            score_date: "2025-08-25".into(),
        });
        if batch.len() == 1000 {
            intel::insert_epss(c, &batch)?;
            scored += batch.len();
            batch.clear();
        }
    }
    intel::insert_epss(c, &batch)?;
    scored += batch.len();
    intel::finish_epss_load(c, load)?;
    Ok((kev.len(), scored))
}

// ---------------------------------------------------------------------------------------------
// Measuring
// ---------------------------------------------------------------------------------------------

/// A filtered case: only High findings of one repository.
#[derive(Clone)]
struct Filter {
    repository: String,
}

impl Filter {
    fn odata(&self) -> String {
        format!(
            "properties/status/severity eq 'High' and properties/additionalData/repositoryName eq '{}'",
            self.repository.replace('\'', "''")
        )
    }
}

/// One page's names and `nextLink`, after checking every item against the filter.
fn parse_page(
    body: &[u8],
    filter: Option<&Filter>,
) -> Result<(Vec<String>, Option<String>), String> {
    let page: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| format!("not JSON: {e}"))?;
    let items = page["value"].as_array().ok_or("no value array")?;
    let mut names = Vec::with_capacity(items.len());
    for item in items {
        let name = item["name"].as_str().ok_or("an item without a name")?;
        if let Some(filter) = filter {
            let severity = &item["properties"]["status"]["severity"];
            let repository = &item["properties"]["additionalData"]["repositoryName"];
            if severity != "High" || repository != filter.repository.as_str() {
                return Err(format!(
                    "the filter was not applied: {name} has severity {severity} in {repository}"
                ));
            }
        }
        names.push(name.to_owned());
    }
    Ok((names, page["nextLink"].as_str().map(str::to_owned)))
}

struct Client {
    http: reqwest::Client,
    token: String,
}

impl Client {
    async fn post(
        &self,
        url: &str,
        body: &serde_json::Value,
    ) -> (reqwest::StatusCode, bytes::Bytes) {
        let response = self
            .http
            .post(url)
            .bearer_auth(&self.token)
            .json(body)
            .send()
            .await
            .expect("post");
        let status = response.status();
        (status, response.bytes().await.expect("body"))
    }

    async fn get(&self, url: &str) -> (reqwest::StatusCode, bytes::Bytes) {
        let response = self
            .http
            .get(url)
            .bearer_auth(&self.token)
            .send()
            .await
            .expect("get");
        let status = response.status();
        (status, response.bytes().await.expect("body"))
    }
}

/// The pages a case measures: the first, and the deep one reached through `nextLink`s.
struct Walk {
    first_url: String,
    first_name: String,
    deep_url: String,
    deep_name: String,
    deep_page: usize,
    /// The last id of the page before the deep one: where its keyset starts.
    deep_after: Option<String>,
}

/// Follows `nextLink`s from `first_url` to page [`DEEP_PAGE`] (or the last full page), checking that
/// every page is full and that names only ever increase (so pages are distinct).
async fn walk(client: &Client, first_url: String, filter: Option<&Filter>) -> Result<Walk, String> {
    let mut url = first_url.clone();
    let mut first_name = String::new();
    let mut last: Option<String> = None;
    let mut page = 0;
    let mut deep = None;
    let mut before: Option<String> = None;
    loop {
        let (status, body) = client.get(&url).await;
        if status != 200 {
            return Err(format!(
                "page {} answered {status}: {}",
                page + 1,
                String::from_utf8_lossy(&body[..body.len().min(400)])
            ));
        }
        let (names, next) = parse_page(&body, filter)?;
        if names.len() < TOP {
            break; // the last, short page: measure the one before
        }
        page += 1;
        for name in &names {
            if last.as_ref().is_some_and(|l| name <= l) {
                return Err(format!("page {page}: {name} does not follow {last:?}"));
            }
            last = Some(name.clone());
        }
        if page == 1 {
            first_name = names[0].clone();
        }
        deep = Some((url.clone(), names[0].clone(), page, before.take()));
        before = last.clone();
        match next {
            Some(next) if page < DEEP_PAGE => url = next,
            _ => break,
        }
    }
    let (deep_url, deep_name, deep_page, deep_after) = deep.ok_or("not even one full page")?;
    Ok(Walk {
        first_url,
        first_name,
        deep_url,
        deep_name,
        deep_page,
        deep_after,
    })
}

/// `samples` sequential requests after [`WARMUP`]; each response must be the same full page.
async fn latency(
    client: &Client,
    url: &str,
    first_name: &str,
    filter: Option<&Filter>,
    samples: usize,
) -> (Summary, usize) {
    let mut size = 0;
    let summary = sampled(samples, async || {
        let start = Instant::now();
        let (status, body) = client.get(url).await;
        let elapsed = start.elapsed();
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
        let (names, _) = parse_page(&body, filter).expect("page");
        assert_eq!(names.len(), TOP, "a full page");
        assert_eq!(names[0], first_name, "the same page every time");
        size = body.len();
        elapsed
    })
    .await;
    (summary, size)
}

/// `samples` timed runs of `request` (each returns its own time) after [`WARMUP`] untimed ones.
async fn sampled(samples: usize, mut request: impl AsyncFnMut() -> Duration) -> Summary {
    let mut durations = Vec::with_capacity(samples);
    for i in 0..WARMUP + samples {
        let took = request().await;
        if i >= WARMUP {
            durations.push(took);
        }
    }
    durations.sort();
    Summary { samples: durations }
}

/// Sorting by EPSS score has no index to walk: every finding in scope is scored (a correlated
/// look-up each) and sorted. Times a few first pages over one repository and over the subscription.
async fn epss_order(client: &Client, list: &str, repository: &str, label: &str) {
    let order = "&$orderby=properties%2FadditionalData%2Fepss%2Fscore%20desc";
    let in_repository = format!(
        "&$filter={}",
        url::form_urlencoded::byte_serialize(
            format!("properties/additionalData/repositoryName eq '{repository}'").as_bytes()
        )
        .collect::<String>()
    );
    for (scope, filter) in [
        ("one repository", in_repository.as_str()),
        ("the subscription", ""),
    ] {
        let url = format!("{list}{filter}{order}");
        let mut took = Vec::new();
        for _ in 0..5 {
            let start = Instant::now();
            let (status, body) = client.get(&url).await;
            took.push(start.elapsed());
            assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
        }
        took.sort();
        println!(
            "{label}: first page ordered by EPSS score over {scope}: median {:.1} ms of 5",
            ms(took[2])
        );
    }
}

/// `VmRSS` or `VmHWM` of this process, in KiB.
/// GET of one MDVM sub-assessment by its derived name, a deep one of the subscription's.
async fn mdvm_by_name(
    client: &Client,
    base: &str,
    expected: &Expected,
    label: &str,
    samples: usize,
) {
    let key = crowsnest::domain::AssessmentKey::Mdvm.as_str();
    let scope = format!("{base}/subscriptions/{}", expected.subscription);
    let (status, body) = client
        .get(&format!(
            "{scope}/providers/Microsoft.Security/assessments/{key}/subAssessments?api-version=2019-01-01-preview&$top={TOP}&$filter={}",
            url::form_urlencoded::byte_serialize(
                format!("properties/additionalData/repositoryName eq '{}'", expected.repository).as_bytes()
            )
            .collect::<String>()
        ))
        .await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let page: serde_json::Value = serde_json::from_slice(&body).expect("JSON");
    let id = page["value"][TOP - 1]["id"]
        .as_str()
        .expect("an id")
        .to_owned();
    let url = format!("{base}{id}?api-version=2019-01-01-preview");
    let summary = sampled(samples, async || {
        let start = Instant::now();
        let (status, body) = client.get(&url).await;
        let took = start.elapsed();
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
        let got: serde_json::Value = serde_json::from_slice(&body).expect("JSON");
        assert_eq!(got["id"], id.as_str());
        took
    })
    .await;
    println!(
        "{label}: GET of one MDVM sub-assessment by name: p50 {:.2} ms, p99 {:.2} ms (n={})",
        ms(summary.percentile(0.5)),
        ms(summary.percentile(0.99)),
        summary.samples.len()
    );
}

/// One Resource Graph query over the listed subscription: its parsed response and how long it took.
async fn arg_query(
    client: &Client,
    url: &str,
    subscription: &str,
    query: &str,
    top: u64,
) -> (serde_json::Value, Duration) {
    let body = serde_json::json!({
        "subscriptions": [subscription],
        "query": query,
        "options": {"$top": top},
    });
    let start = Instant::now();
    let (status, bytes) = client.post(url, &body).await;
    let took = start.elapsed();
    assert_eq!(status, 200, "{query}: {}", String::from_utf8_lossy(&bytes));
    (serde_json::from_slice(&bytes).expect("JSON"), took)
}

/// An exemption over the listed subscription: the PUT that weighs every present finding, the
/// listing of what it exempts, and the DELETE that weighs them again.
async fn exemptions_at_scale(client: &Client, base: &str, expected: &Expected, label: &str) {
    let subscription = expected.subscription.as_str();
    let url = format!(
        "{base}/subscriptions/{subscription}/providers/Microsoft.Security/exemptions/bench-low?api-version=2026-11-01"
    );
    let body = serde_json::json!({"properties": {
        "criteria": {"severities": ["Low"]},
        "category": "Waiver",
        "justification": "low findings are accepted",
    }});
    let start = Instant::now();
    let response = client
        .http
        .put(&url)
        .bearer_auth(&client.token)
        .json(&body)
        .send()
        .await
        .expect("put");
    let put = start.elapsed();
    let status = response.status();
    let written: serde_json::Value = response.json().await.expect("JSON");
    assert!(status.is_success(), "{written}");
    let exempt = written["properties"]["exemptFindings"]
        .as_u64()
        .unwrap_or(0);
    let filtered = format!(
        "{base}/subscriptions/{subscription}/providers/Microsoft.Security/subAssessments?api-version=2019-01-01-preview&$filter=properties/status/cause%20eq%20'Exempt'"
    );
    let start = Instant::now();
    let (status, _) = client.get(&filtered).await;
    let page = start.elapsed();
    assert_eq!(status, 200);
    let start = Instant::now();
    let response = client
        .http
        .delete(&url)
        .bearer_auth(&client.token)
        .send()
        .await
        .expect("delete");
    let delete = start.elapsed();
    assert!(response.status().is_success());
    println!(
        "{label}: an exemption of the subscription's Low findings ({exempt} of {} findings): PUT {:.2} s, first page of the exempt {:.1} ms, DELETE {:.2} s",
        expected.subscription_findings,
        put.as_secs_f64(),
        ms(page),
        delete.as_secs_f64()
    );
}

/// Resource Graph's three measured cases over the listed subscription (see the module's text).
async fn resource_graph(
    client: &Client,
    base: &str,
    expected: &Expected,
    label: &str,
    samples: usize,
) {
    let url = format!("{base}/providers/Microsoft.ResourceGraph/resources?api-version=2021-03-01");
    let subscription = expected.subscription.as_str();
    let repository = expected.repository.as_str();

    let filtered = format!(
        r#"securityresources
| where type == "microsoft.security/assessments/subassessments"
| where properties.status.severity == "High" and properties.additionalData.repositoryName == "{repository}"
| project id, name, severity = tostring(properties.status.severity), repository = tostring(properties.additionalData.repositoryName), package = tostring(properties.additionalData.packageName), digest = tostring(properties.additionalData.imageDigest)
| take 100"#
    );
    let summary = sampled(samples, async || {
        let (response, took) = arg_query(client, &url, subscription, &filtered, 100).await;
        let rows = response["data"].as_array().expect("rows");
        assert_eq!(rows.len(), 100, "a full page");
        assert!(
            rows.iter()
                .all(|r| r["repository"] == repository && r["severity"] == "High"),
            "only the filtered rows"
        );
        took
    })
    .await;
    println!(
        "{label}: Resource Graph, High + repository + project + take 100: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms (n={})",
        ms(summary.percentile(0.5)),
        ms(summary.percentile(0.99)),
        ms(summary.percentile(1.0)),
        summary.samples.len()
    );

    let by_severity = r#"securityresources
| where type == "microsoft.security/assessments/subassessments"
| extend severity = tostring(properties.status.severity)
| summarize findings = count() by severity
| order by findings desc"#;
    let runs = common::env_or("CROWSNEST_BENCH_ARG_RUNS", 5usize).max(1);
    let mut times = Vec::new();
    let mut counted = 0;
    for _ in 0..runs {
        let (response, took) = arg_query(client, &url, subscription, by_severity, 100).await;
        counted = response["data"]
            .as_array()
            .expect("rows")
            .iter()
            .map(|r| r["findings"].as_u64().expect("count"))
            .sum::<u64>();
        times.push(took);
    }
    times.sort();
    let (per_key, _) = arg_query(
        client,
        &url,
        subscription,
        "securityresources | where type == \"microsoft.security/assessments/subassessments\" | summarize n = count() by assessmentKey",
        100,
    )
    .await;
    let container_registry = per_key["data"]
        .as_array()
        .expect("rows")
        .iter()
        .find(|r| {
            r["assessmentKey"] == crowsnest::domain::AssessmentKey::ContainerRegistry.as_str()
        })
        .and_then(|r| r["n"].as_u64())
        .unwrap_or(0);
    assert_eq!(container_registry, expected.subscription_findings as u64);
    println!(
        "{label}: Resource Graph, summarize count() by severity over the subscription ({counted} sub-assessment rows under both keys, {} findings): best {:.0} ms, median {:.0} ms, worst {:.0} ms ({runs} runs)",
        expected.subscription_findings,
        ms(times[0]),
        ms(times[runs / 2]),
        ms(times[runs - 1])
    );

    // Every row, fully rendered: the first 1,000 come back, and all are counted.
    let every_row =
        r#"securityresources | where type == "microsoft.security/assessments/subassessments""#;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let rss_before = status_kib("VmRSS");
    let hwm_reset = std::fs::write("/proc/self/clear_refs", "5").is_ok();
    let (response, took) = arg_query(client, &url, subscription, every_row, 1000).await;
    let peak = hwm_reset.then(|| status_kib("VmHWM"));
    let total = response["totalRecords"].as_u64().expect("total");
    assert_eq!(total, counted, "every row is counted");
    assert_eq!(response["count"], 1000);
    println!(
        "{label}: Resource Graph, every sub-assessment row of the subscription ({total} rows streamed, 1,000 returned): {:.1} s, RSS {:.0} MiB before, peak {} (server and harness)",
        took.as_secs_f64(),
        rss_before as f64 / 1024.0,
        peak.map_or_else(
            || "unknown (no clear_refs)".to_owned(),
            |kib| format!("{:.0} MiB", kib as f64 / 1024.0)
        )
    );
}

fn status_kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|line| line.strip_prefix(field))
                .and_then(|rest| {
                    rest.trim_start_matches(':')
                        .trim()
                        .trim_end_matches("kB")
                        .trim()
                        .parse()
                        .ok()
                })
        })
        .unwrap_or(0)
}

/// Samples `VmRSS` every 100 ms until stopped; gives the peak.
struct RssSampler {
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<u64>,
}

impl RssSampler {
    fn start() -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut peak = status_kib("VmRSS");
            while !flag.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(100));
                peak = peak.max(status_kib("VmRSS"));
            }
            peak
        });
        Self { stop, thread }
    }

    fn peak_kib(self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().expect("sampler")
    }
}

/// The floor under every case: a body of the page's size served from memory by actix-web with the
/// same workers, under the same wrk load, so the HTTP layer's and the load generator's share of a
/// page's cost is measured rather than guessed.
async fn http_alone(bytes: usize, options: &Options) -> WrkResult {
    let body = actix_web::web::Bytes::from(vec![b' '; bytes]);
    let server = actix_web::HttpServer::new(move || {
        let body = body.clone();
        actix_web::App::new().default_service(actix_web::web::to(move || {
            let body = body.clone();
            async move {
                actix_web::HttpResponse::Ok()
                    .content_type("application/json")
                    .body(body)
            }
        }))
    })
    .workers(options.http_workers)
    .bind(("127.0.0.1", 0))
    .expect("bind");
    let address = server.addrs()[0];
    let server = server.run();
    let handle = server.handle();
    let running = tokio::spawn(server);
    let seconds = options.wrk_seconds;
    let result = tokio::task::spawn_blocking(move || {
        run_wrk(&format!("http://{address}/page"), "none", seconds, &[])
    })
    .await
    .expect("wrk");
    handle.stop(true).await;
    let _ = running.await;
    result
}

struct WrkResult {
    requests_per_second: f64,
    requests: u64,
    p50: Duration,
    p90: Duration,
    p99: Duration,
    transfer: String,
    peak_rss_kib: u64,
    cpu: CpuShare,
}

/// CPU time in seconds (USER_HZ ticks / 100) at one moment.
#[derive(Debug, Clone, Copy, Default)]
struct CpuClock {
    /// This process: the server and the harness.
    own: f64,
    /// Children waited for: wrk, once it has exited.
    children: f64,
    /// The PostgreSQL backends serving the bench's database (the app's pool).
    postgres: f64,
    /// The whole machine, busy and idle.
    busy: f64,
    idle: f64,
}

/// Where the cores went during a run, in cores (CPU seconds per second).
#[derive(Debug, Clone, Copy, Default)]
struct CpuShare {
    server: f64,
    wrk: f64,
    postgres: f64,
    other: f64,
    idle: f64,
}

const TICKS: f64 = 100.0;

/// The process ids of the PostgreSQL backends connected to the bench's database: the app's pool
/// (the server is local, so they are processes here). They must stay the same during a run.
fn postgres_backends(url: &DatabaseUrl) -> Vec<i32> {
    #[derive(diesel::QueryableByName)]
    struct Backend {
        #[diesel(sql_type = diesel::sql_types::Integer)]
        pid: i32,
    }
    let DatabaseUrl::Postgres(url) = url else {
        return Vec::new();
    };
    let mut conn = diesel::PgConnection::establish(url).expect("connect");
    diesel::sql_query(
        "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()",
    )
    .load::<Backend>(&mut conn)
    .expect("pg_stat_activity")
    .into_iter()
    .map(|b| b.pid)
    .collect()
}

/// Fields after the `(comm)` of a `/proc/…/stat`, from `state` (field 3) on.
fn stat_fields(stat: &str) -> Vec<&str> {
    stat.rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default()
}

fn ticks(fields: &[&str], index: usize) -> f64 {
    fields
        .get(index)
        .and_then(|v| v.parse::<f64>().ok())
        .unwrap_or(0.0)
        / TICKS
}

impl CpuClock {
    /// `backends`: the process ids of the PostgreSQL backends to count (see [`postgres_backends`]).
    fn now(backends: &[i32]) -> Self {
        let own = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
        let own = stat_fields(&own);
        let postgres = backends
            .iter()
            .map(|pid| {
                let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
                let fields = stat_fields(&stat);
                ticks(&fields, 11) + ticks(&fields, 12)
            })
            .sum();
        let machine = std::fs::read_to_string("/proc/stat").unwrap_or_default();
        let cpu: Vec<&str> = machine
            .lines()
            .next()
            .unwrap_or_default()
            .split_whitespace()
            .skip(1)
            .collect();
        // user nice system idle iowait irq softirq steal
        let busy = [0, 1, 2, 5, 6, 7].iter().map(|&i| ticks(&cpu, i)).sum();
        let idle = ticks(&cpu, 3) + ticks(&cpu, 4);
        Self {
            own: ticks(&own, 11) + ticks(&own, 12),
            children: ticks(&own, 13) + ticks(&own, 14),
            postgres,
            busy,
            idle,
        }
    }

    fn share_since(self, start: Self, wall: Duration) -> CpuShare {
        let per_second = |v: f64| v / wall.as_secs_f64();
        let server = per_second(self.own - start.own);
        let wrk = per_second(self.children - start.children);
        let postgres = per_second(self.postgres - start.postgres);
        let busy = per_second(self.busy - start.busy);
        CpuShare {
            server,
            wrk,
            postgres,
            other: (busy - server - wrk - postgres).max(0.0),
            idle: per_second(self.idle - start.idle),
        }
    }
}

impl CpuShare {
    fn line(&self) -> String {
        format!(
            "server {:.2}, wrk {:.2}, postgres {:.2}, other {:.2}, idle {:.2} cores",
            self.server, self.wrk, self.postgres, self.other, self.idle
        )
    }
}

/// `12.34ms`, `567.89us`, `1.02s`, `1.50m` as a duration.
fn wrk_duration(text: &str) -> Option<Duration> {
    let split = text.find(|c: char| c.is_ascii_alphabetic())?;
    let (number, unit) = text.split_at(split);
    let value: f64 = number.parse().ok()?;
    let seconds = match unit {
        "us" => value / 1e6,
        "ms" => value / 1e3,
        "s" => value,
        "m" => value * 60.0,
        "h" => value * 3600.0,
        _ => return None,
    };
    Some(Duration::from_secs_f64(seconds))
}

/// `wrk -t2 -c32 -d{seconds}s --latency` against `url`, sampling this process's RSS meanwhile.
fn run_wrk(url: &str, token: &str, seconds: u64, backends: &[i32]) -> WrkResult {
    let sampler = RssSampler::start();
    let clock = CpuClock::now(backends);
    let start = Instant::now();
    let output = std::process::Command::new("wrk")
        .args([
            "-t2",
            &format!("-c{WRK_CONNECTIONS}"),
            &format!("-d{seconds}s"),
        ])
        .args(["--latency", "--timeout", "10s"])
        .args(["-H", &format!("Authorization: Bearer {token}")])
        .arg(url)
        .output()
        .expect("wrk");
    let cpu = CpuClock::now(backends).share_since(clock, start.elapsed());
    let peak_rss_kib = sampler.peak_kib();
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "wrk failed: {text}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        !text.contains("Non-2xx"),
        "wrk saw error responses:\n{text}"
    );
    if text.contains("Socket errors") {
        println!("  wrk reports socket errors:\n{text}");
    }
    let field = |prefix: &str| {
        text.lines()
            .find_map(|line| line.trim().strip_prefix(prefix).map(str::trim))
            .unwrap_or_else(|| panic!("no {prefix:?} in wrk's output:\n{text}"))
            .to_owned()
    };
    let percentile = |p: &str| wrk_duration(&field(p)).expect("latency");
    let requests = text
        .lines()
        .find(|line| line.contains("requests in"))
        .and_then(|line| line.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    WrkResult {
        requests_per_second: field("Requests/sec:").parse().expect("req/s"),
        requests,
        p50: percentile("50%"),
        p90: percentile("90%"),
        p99: percentile("99%"),
        transfer: field("Transfer/sec:"),
        peak_rss_kib,
        cpu,
    }
}

// ---------------------------------------------------------------------------------------------
// One backend
// ---------------------------------------------------------------------------------------------

struct Case {
    label: String,
    latency: Option<(Summary, usize)>,
    wrk: Option<WrkResult>,
}

struct Report {
    label: &'static str,
    scale: Scale,
    seeded: Seeded,
    cases: Vec<Case>,
    missing: Vec<String>,
    options: Options,
    idle_rss_kib: u64,
    hwm_during_load_kib: Option<u64>,
    explain: Vec<(String, String)>,
    took: Duration,
}

async fn bench(db: &BenchDb, scale: Scale, options: &Options) -> Report {
    let started = Instant::now();
    println!(
        "\n== {}: seeding {} findings over {} images in {} subscriptions …",
        db.label, scale.findings, scale.images, scale.subscriptions
    );
    let app = BenchApp::start(db, options.pool_size, options.http_workers).await;
    let url = db.url.clone();
    let seeded = tokio::task::spawn_blocking(move || seed(&url, scale))
        .await
        .expect("seed");
    let expected = seeded.expected.clone();
    println!(
        "{}: inserted in {:.1} s{}; the filtered repository {} has {} findings ({} High, {} Critical)",
        db.label,
        seeded.insert.as_secs_f64(),
        seeded
            .maintenance
            .map(|d| format!(", VACUUM ANALYZE {:.1} s", d.as_secs_f64()))
            .unwrap_or_default(),
        expected.repository,
        expected.repository_findings,
        expected.repository_high,
        expected.repository_critical
    );

    let client = Client {
        http: reqwest::Client::new(),
        token: app.token.clone(),
    };
    let list = format!(
        "{}/subscriptions/{}/providers/Microsoft.Security/subAssessments?api-version=2019-01-01-preview&$top={TOP}",
        app.base, expected.subscription
    );
    let filter = Filter {
        repository: expected.repository.clone(),
    };
    let filtered = format!(
        "{list}&$filter={}",
        url::form_urlencoded::byte_serialize(filter.odata().as_bytes()).collect::<String>()
    );

    let mut cases = Vec::new();
    let mut missing = Vec::new();
    for (label, first_url, filter) in [
        ("", list.clone(), None),
        ("High + repository, ", filtered, Some(&filter)),
    ] {
        if filter.is_none() {
            let (_, body) = client.get(&first_url).await;
            let page: serde_json::Value = serde_json::from_slice(&body).expect("JSON");
            let item = serde_json::to_string(&page["value"][0]).expect("JSON");
            println!(
                "{}: a page of {TOP} is {} bytes; its first item ({} bytes): {item}",
                db.label,
                body.len(),
                item.len()
            );
            let carrying = |field: &str| {
                page["value"].as_array().map_or(0, |items| {
                    items
                        .iter()
                        .filter(|i| !i["properties"]["additionalData"][field].is_null())
                        .count()
                })
            };
            println!(
                "{}: of its findings, {} are known exploited and {} have an EPSS score",
                db.label,
                carrying("knownExploited"),
                carrying("epss")
            );
            epss_order(&client, &list, &expected.repository, db.label).await;
        }
        let walked = match walk(&client, first_url, filter).await {
            Ok(walked) => walked,
            Err(why) if filter.is_some() => {
                println!("{}: no filtered numbers: {why}", db.label);
                missing.push(why);
                continue;
            }
            Err(why) => panic!("{}: {why}", db.label),
        };
        for (page, url, name, after) in [
            (1, &walked.first_url, &walked.first_name, None),
            (
                walked.deep_page,
                &walked.deep_url,
                &walked.deep_name,
                walked.deep_after.clone(),
            ),
        ] {
            let result = latency(&client, url, name, filter, options.samples).await;
            let case = Case {
                label: format!("{label}page {page}"),
                latency: Some(result),
                wrk: None,
            };
            print_latency(db.label, &case);
            cases.push((case, url.clone(), after));
        }
    }

    if common::env_or("CROWSNEST_BENCH_ARG", 1u8) == 1 {
        mdvm_by_name(&client, &app.base, &expected, db.label, options.samples).await;
        resource_graph(&client, &app.base, &expected, db.label, options.samples).await;
    }
    if common::env_or("CROWSNEST_BENCH_EXEMPTIONS", 1u8) == 1 {
        let writer = Client {
            http: client.http.clone(),
            token: app.contributor_token.clone(),
        };
        exemptions_at_scale(&writer, &app.base, &expected, db.label).await;
    }

    // Under load: nothing of the seeding is left but what the allocator kept.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let idle_rss_kib = status_kib("VmRSS");
    let backends = {
        let url = db.url.clone();
        tokio::task::spawn_blocking(move || postgres_backends(&url))
            .await
            .expect("backends")
    };
    if !backends.is_empty() {
        println!(
            "{}: counting the CPU of the pool's {} PostgreSQL backends",
            db.label,
            backends.len()
        );
    }
    let hwm_reset = std::fs::write("/proc/self/clear_refs", "5").is_ok();
    for (case, url, _) in cases.iter_mut().filter(|_| options.wrk_seconds > 0) {
        let (url, token, seconds) = (url.clone(), app.token.clone(), options.wrk_seconds);
        let backends = backends.clone();
        let result = tokio::task::spawn_blocking(move || run_wrk(&url, &token, seconds, &backends))
            .await
            .expect("wrk");
        println!(
            "{}: wrk {}: {:.0} req/s, p50 {:.2} ms, p99 {:.2} ms, peak RSS {:.0} MiB; CPU: {}",
            db.label,
            case.label,
            result.requests_per_second,
            ms(result.p50),
            ms(result.p99),
            result.peak_rss_kib as f64 / 1024.0,
            result.cpu.line()
        );
        case.wrk = Some(result);
    }
    let hwm_during_load_kib = hwm_reset.then(|| status_kib("VmHWM"));

    let explain = {
        let cases: Vec<(String, Option<String>)> = cases
            .iter()
            .map(|(case, _, after)| (case.label.clone(), after.clone()))
            .collect();
        let (url, expected) = (db.url.clone(), expected.clone());
        let what_if = std::env::var("CROWSNEST_BENCH_WHAT_IF_SQL").ok();
        tokio::task::spawn_blocking(move || explain(&url, &expected, &cases, what_if.as_deref()))
            .await
            .expect("explain")
    };

    app.stop().await;
    Report {
        label: db.label,
        scale,
        seeded,
        cases: cases.into_iter().map(|(case, _, _)| case).collect(),
        missing,
        options: *options,
        idle_rss_kib,
        hwm_during_load_kib,
        explain,
        took: started.elapsed(),
    }
}

fn print_latency(label: &str, case: &Case) {
    if let Some((summary, size)) = &case.latency {
        println!(
            "{label}: {}: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms ({} KiB per page)",
            case.label,
            ms(summary.percentile(0.5)),
            ms(summary.percentile(0.99)),
            ms(*summary.samples.last().expect("samples")),
            size / 1024
        );
    }
}

/// The plan of the SQL each case runs, as `store::findings::list` writes it (the filtered one as
/// `store::findings` translates the `$filter`: severity ranks and repository): `EXPLAIN (ANALYZE,
/// BUFFERS)` on PostgreSQL, `EXPLAIN QUERY PLAN` on SQLite. With `what_if` (say, a `CREATE INDEX`),
/// the plans again after running it.
fn explain(
    url: &DatabaseUrl,
    expected: &Expected,
    cases: &[(String, Option<String>)],
    what_if: Option<&str>,
) -> Vec<(String, String)> {
    use diesel::sql_types::Text;
    #[derive(diesel::QueryableByName)]
    struct PgLine {
        #[diesel(sql_type = Text, column_name = "QUERY PLAN")]
        line: String,
    }
    #[derive(diesel::QueryableByName)]
    struct SqliteLine {
        #[diesel(sql_type = Text)]
        detail: String,
    }
    let quote = |s: &str| format!("'{}'", s.replace('\'', "''"));
    let mut conn: AnyConnection = match url {
        DatabaseUrl::Postgres(url) => {
            AnyConnection::Postgresql(diesel::PgConnection::establish(url).expect("connect"))
        }
        DatabaseUrl::Sqlite(path) => AnyConnection::Sqlite(
            diesel::SqliteConnection::establish(path.to_str().expect("UTF-8")).expect("connect"),
        ),
    };
    let round = |conn: &mut AnyConnection, note: Option<&str>| -> Vec<(String, String)> {
        cases
            .iter()
            .map(|(label, after)| {
                let mut conditions = vec![format!(
                    "subscription_id = {}",
                    quote(&expected.subscription)
                )];
                if label.starts_with("High") {
                    conditions.push(match conn {
                        AnyConnection::Postgresql(_) => "severity_rank = ANY('{3,4}')".to_owned(),
                        AnyConnection::Sqlite(_) => "severity_rank IN (3, 4)".to_owned(),
                    });
                    conditions.push(format!("repository = {}", quote(&expected.repository)));
                }
                if let Some(after) = after {
                    conditions.push(format!("id > {}", quote(after)));
                }
                let select = format!(
                    "SELECT * FROM findings WHERE {} ORDER BY id ASC LIMIT {}",
                    conditions.join(" AND "),
                    TOP + 1
                );
                let (sql, plan) = match conn {
                    AnyConnection::Postgresql(c) => {
                        let sql = format!("EXPLAIN (ANALYZE, BUFFERS) {select}");
                        let plan = diesel::sql_query(&sql)
                            .load::<PgLine>(c)
                            .map(|lines| lines.into_iter().map(|l| l.line).collect::<Vec<_>>());
                        (sql, plan)
                    }
                    AnyConnection::Sqlite(c) => {
                        let sql = format!("EXPLAIN QUERY PLAN {select}");
                        let plan = diesel::sql_query(&sql)
                            .load::<SqliteLine>(c)
                            .map(|lines| lines.into_iter().map(|l| l.detail).collect::<Vec<_>>());
                        (sql, plan)
                    }
                };
                let plan = plan
                    .map(|lines| lines.join("\n"))
                    .unwrap_or_else(|e| format!("EXPLAIN failed: {e}"));
                let label = match note {
                    None => label.clone(),
                    Some(note) => format!("{label}, after {note}"),
                };
                (label, format!("{sql}\n{plan}"))
            })
            .collect()
    };
    let mut plans = round(&mut conn, None);
    if let Some(sql) = what_if {
        let start = Instant::now();
        match conn.batch_execute(sql) {
            Ok(()) => {
                println!(
                    "what-if SQL ran in {:.1} s: {sql}",
                    start.elapsed().as_secs_f64()
                );
                plans.extend(round(&mut conn, Some(sql)));
            }
            Err(e) => plans.push((format!("what-if {sql}"), format!("failed: {e}"))),
        }
    }
    plans
}

impl Report {
    fn print(&self) {
        let s = &self.scale;
        let seeded = &self.seeded;
        println!(
            "\n### {}: {} findings over {} images, {} subscriptions × {} registries × {} repositories",
            self.label, s.findings, s.images, s.subscriptions, s.registries, s.repositories
        );
        println!(
            "seeding: {:.1} s of multi-row INSERTs ({} rows per statement, one transaction per subscription, {:.0} rows/s){}",
            seeded.insert.as_secs_f64(),
            seeded.per_insert,
            s.findings as f64 / seeded.insert.as_secs_f64(),
            seeded
                .maintenance
                .map(|d| format!(" + VACUUM ANALYZE {:.1} s", d.as_secs_f64()))
                .unwrap_or_else(|| " (no ANALYZE: the app never runs one)".to_owned())
        );
        match seeded.intel {
            Some(((kev, epss), took)) => println!(
                "intelligence: {kev} KEV entries and {epss} EPSS rows over the findings' advisories and aliases, stored in {:.1} s",
                took.as_secs_f64()
            ),
            None => println!("intelligence: none (CROWSNEST_BENCH_INTEL=0)"),
        }
        let e = &seeded.expected;
        println!(
            "listed: subscription {} ({} findings); filter: status/severity eq 'High' and repositoryName eq '{}' ({} findings there: {} High, {} Critical)",
            e.subscription,
            e.subscription_findings,
            e.repository,
            e.repository_findings,
            e.repository_high,
            e.repository_critical
        );
        println!(
            "\n| case ($top={TOP}) | p50 ms | p99 ms | max ms | KiB/page | wrk req/s | wrk p50 ms | wrk p90 ms | wrk p99 ms | wrk transfer/s | peak RSS MiB |"
        );
        println!("|---|---|---|---|---|---|---|---|---|---|---|");
        for case in &self.cases {
            let (p50, p99, max, size) = match &case.latency {
                Some((summary, size)) => (
                    format!("{:.2}", ms(summary.percentile(0.5))),
                    format!("{:.2}", ms(summary.percentile(0.99))),
                    format!("{:.2}", ms(*summary.samples.last().expect("samples"))),
                    format!("{}", size / 1024),
                ),
                None => Default::default(),
            };
            let wrk = match &case.wrk {
                Some(w) => format!(
                    "{:.0} | {:.2} | {:.2} | {:.2} | {} | {:.0}",
                    w.requests_per_second,
                    ms(w.p50),
                    ms(w.p90),
                    ms(w.p99),
                    w.transfer,
                    w.peak_rss_kib as f64 / 1024.0
                ),
                None => "| | | | |".to_owned(),
            };
            println!(
                "| {} | {p50} | {p99} | {max} | {size} | {wrk} |",
                case.label
            );
        }
        for why in &self.missing {
            println!("| High + repository | missing: {why} |");
        }
        println!(
            "\nlatency: {} sequential requests per case over one keep-alive connection (after {WARMUP} warm-up), time to the whole body; \
             wrk -t2 -c{WRK_CONNECTIONS} -d{}s --latency on loopback, same 2 cores",
            self.options.samples, self.options.wrk_seconds
        );
        println!(
            "RSS of the bench process (server in-process with {} HTTP workers and a pool of {}, plus the harness: \
             tokio runtime, reqwest client{}): idle before load {:.0} MiB; peak sampled every 100 ms during wrk {:.0} MiB{}",
            self.options.http_workers,
            self.options.pool_size,
            if self.label == "SQLite" {
                ", and SQLite's page caches, which live in-process"
            } else {
                ""
            },
            self.idle_rss_kib as f64 / 1024.0,
            self.cases
                .iter()
                .filter_map(|c| c.wrk.as_ref().map(|w| w.peak_rss_kib))
                .max()
                .unwrap_or(0) as f64
                / 1024.0,
            self.hwm_during_load_kib
                .map(|kib| format!(
                    " (VmHWM since the load began {:.0} MiB)",
                    kib as f64 / 1024.0
                ))
                .unwrap_or_default()
        );
        let total_requests: u64 = self
            .cases
            .iter()
            .filter_map(|c| c.wrk.as_ref().map(|w| w.requests))
            .sum();
        println!(
            "\n| wrk case | server cores | server CPU ms/page | postgres cores | postgres CPU ms/page | wrk cores | other cores | idle cores | pages/s if 2 idle cores did only this |"
        );
        println!("|---|---|---|---|---|---|---|---|---|");
        for case in &self.cases {
            if let Some(w) = &case.wrk {
                let per_page = |cores: f64| cores / w.requests_per_second * 1000.0;
                let c = &w.cpu;
                println!(
                    "| {} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} | {:.0} |",
                    case.label,
                    c.server,
                    per_page(c.server),
                    c.postgres,
                    per_page(c.postgres),
                    c.wrk,
                    c.other,
                    c.idle,
                    2000.0 / per_page(c.server + c.postgres + c.wrk)
                );
            }
        }
        println!(
            "(from /proc: this process, wrk as a waited-for child, the PostgreSQL backends of the app's pool, the whole machine; \
             'other' is anything else running on the box meanwhile, other users of the PostgreSQL server included; the last column is 2 cores over the CPU \
             that the server, postgres and wrk spent per page)"
        );
        println!(
            "wrk answered {total_requests} requests in all; this backend took {:.0} s",
            self.took.as_secs_f64()
        );
        if self.label == "PostgreSQL" {
            self.verdict();
        }
        for (label, plan) in &self.explain {
            println!("\nEXPLAIN, {label}:\n{plan}");
        }
    }

    /// The issue's targets for PostgreSQL.
    fn verdict(&self) {
        let worst_p99 = self
            .cases
            .iter()
            .filter_map(|c| c.latency.as_ref().map(|(s, _)| s.percentile(0.99)))
            .max()
            .unwrap_or_default();
        let worst_wrk_p99 = self
            .cases
            .iter()
            .filter_map(|c| c.wrk.as_ref().map(|w| w.p99))
            .max()
            .unwrap_or_default();
        let slowest = self
            .cases
            .iter()
            .filter_map(|c| c.wrk.as_ref().map(|w| w.requests_per_second))
            .fold(f64::INFINITY, f64::min);
        let peak = self
            .cases
            .iter()
            .filter_map(|c| c.wrk.as_ref().map(|w| w.peak_rss_kib))
            .max()
            .unwrap_or(0) as f64
            / 1024.0;
        let mark = |ok: bool| if ok { "met" } else { "MISSED" };
        println!(
            "targets: p99 < 25 ms per page at any depth: sequential worst {:.2} ms ({}), under 32 connections worst {:.2} ms ({}); \
             ≥ 2,000 pages/s: slowest case {:.0} ({}); < 150 MB RSS: peak {:.0} MiB ({})",
            ms(worst_p99),
            mark(worst_p99 < Duration::from_millis(25)),
            ms(worst_wrk_p99),
            mark(worst_wrk_p99 < Duration::from_millis(25)),
            slowest,
            mark(slowest >= 2000.0),
            peak,
            mark(peak * 1024.0 * 1024.0 < 150e6)
        );
    }
}
