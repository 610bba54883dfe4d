//! The daily rescan after an advisory import: 10,000 stored Debian 10 inventories (generated with
//! real source package names and fixed versions of the Debian bundle; 60% ~100 packages, 30% ~300,
//! 10% ~700), queued by `rescans::queue_due` and re-matched by the real queue workers, on SQLite and
//! PostgreSQL, with 2 and 4 workers.
//!
//! Two rounds per worker count: "all findings new" (the stored findings were deleted first, as after
//! an import that brought the advisories: every finding is inserted) and "findings unchanged" (the
//! next day: every finding is kept, `last_seen` moves). Seeding is not measured. Then a phase
//! profile: the same steps as a worker, on one connection, each timed.
//!
//! cargo bench --bench rescans
//!
//! Environment: CROWSNEST_BENCH_RESCAN_IMAGES (default 10000), CROWSNEST_BENCH_RESCAN_WORKERS
//! (default "2,4"), CROWSNEST_BENCH_RESCAN_PROFILE (images in the phase profile, default 1000; 0
//! skips it), CROWSNEST_BENCH_BACKENDS (default "sqlite,postgres"), CROWSNEST_BENCH_RESCAN_BURST
//! (re-assessments in the one-process / two-process comparison on PostgreSQL, default 1000; 0 skips
//! it).
//!
//! The comparison runs the same burst twice with the default queue settings: once with one process
//! of 2 workers, once with this process and a child process (this bench binary again) of 2 workers
//! each on the same database, both idle and waiting when the burst is queued, as a second replica of
//! the service would be.
//!
//! Every run starts by measuring the machine (`common::baseline`), and each throughput is also
//! printed as a ratio to it, so that figures from two machines can be compared.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::baseline::Baseline;
use common::{BenchDb, Rng, import_debian_bundle, realistic_debian_inventory};
use crowsnest::domain::Timestamp;
use crowsnest::jobs::engine::Engine;
use crowsnest::jobs::matching::{CandidateCache, match_stored};
use crowsnest::jobs::queue::{Queue, QueueSettings, spawn_workers};
use crowsnest::jobs::rescans::{RescanSettings, queue_due};
use crowsnest::jobs::{findings as finding_rows, inventories};
use crowsnest::scanner::analyzers;
use crowsnest::store::images::{Assessed, ImageRow};
use crowsnest::store::registries::RegistryRow;
use crowsnest::store::scans::Outcome;
use crowsnest::store::schema::{findings, images, scans};
use crowsnest::store::{self, AnyConnection, Pool};
use diesel::prelude::*;
use tokio_util::sync::CancellationToken;

const DAY: i64 = 86_400_000_000;

/// Counts the ERROR events the workers log and keeps the first one's `error` field.
struct ErrorCounter;

static ERRORS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
/// Scans this process's workers finished (their "scan finished" events).
static FINISHED: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
static FIRST_ERROR: std::sync::Mutex<Option<String>> = std::sync::Mutex::new(None);

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for ErrorCounter {
    fn on_event(&self, event: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        if *event.metadata().level() == tracing::Level::INFO {
            let mut finished = false;
            event.record(
                &mut |field: &tracing::field::Field, value: &dyn std::fmt::Debug| {
                    finished |=
                        field.name() == "message" && format!("{value:?}") == "scan finished";
                },
            );
            if finished {
                FINISHED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
        }
        if *event.metadata().level() != tracing::Level::ERROR {
            return;
        }
        ERRORS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut first = FIRST_ERROR.lock().unwrap();
        if first.is_none() {
            let mut text = String::new();
            event.record(
                &mut |field: &tracing::field::Field, value: &dyn std::fmt::Debug| {
                    text.push_str(&format!("{}={value:?} ", field.name()));
                },
            );
            *first = Some(text.trim_end().to_owned());
        }
    }
}

/// The ERROR events logged since the last call, with the first one.
fn take_errors() -> (usize, Option<String>) {
    (
        ERRORS.swap(0, std::sync::atomic::Ordering::Relaxed),
        FIRST_ERROR.lock().unwrap().take(),
    )
}

fn main() {
    // The workers' log goes to stderr when RUST_LOG asks for it; errors are always counted.
    use tracing_subscriber::prelude::*;
    tracing_subscriber::registry()
        .with(
            tracing_subscriber::fmt::layer()
                .with_ansi(false)
                .with_writer(std::io::stderr)
                .with_filter(
                    tracing_subscriber::EnvFilter::try_from_default_env()
                        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("off")),
                ),
        )
        .with(ErrorCounter)
        .init();
    if let Ok(child) = std::env::var(CHILD_ENV) {
        return run_child(&child);
    }
    let baseline = Baseline::measure();
    let n: usize = common::env_or("CROWSNEST_BENCH_RESCAN_IMAGES", 10_000);
    let worker_counts: Vec<usize> = std::env::var("CROWSNEST_BENCH_RESCAN_WORKERS")
        .unwrap_or_else(|_| "2,4".to_owned())
        .split(',')
        .filter_map(|w| w.trim().parse().ok())
        .collect();
    let profile: usize = common::env_or("CROWSNEST_BENCH_RESCAN_PROFILE", 1000);
    let burst: usize = common::env_or("CROWSNEST_BENCH_RESCAN_BURST", 1000);
    let backends =
        std::env::var("CROWSNEST_BENCH_BACKENDS").unwrap_or_else(|_| "sqlite,postgres".to_owned());
    let fixes = common::debian10_fixes();
    let key = analyzers::cache_key(&analyzers::analyzer_ids(&analyzers::defaults()));
    let dbs = [
        backends.contains("sqlite").then(BenchDb::sqlite),
        backends.contains("postgres").then(BenchDb::postgres),
    ];
    // Checked at the end, so that one backend's failure does not hide the other's numbers.
    let mut failed_checks: Vec<String> = Vec::new();
    for db in dbs.into_iter().flatten() {
        let pool = store::connect(&db.url, 8).unwrap();
        store::migrate(&pool).unwrap();
        import_debian_bundle(&pool, db.label);

        let start = Instant::now();
        let seeded = seed(&pool, &fixes, &key, n);
        println!(
            "{}: seeded {n} images with stored inventories ({} packages, {} from sources with advisories; \
             sizes 60% ~100, 30% ~300, 10% ~700) in {:.1} s (not measured)",
            db.label,
            seeded.packages,
            seeded.with_advisories,
            start.elapsed().as_secs_f64()
        );

        for &workers in &worker_counts {
            for round in [Round::AllNew, Round::Unchanged] {
                let mut conn = pool.get().unwrap();
                prepare(&mut conn, round);
                let now = Timestamp::now().micros();
                let start = Instant::now();
                let queued = queue_due(&mut conn, &RescanSettings::default(), now).unwrap();
                let queue_time = start.elapsed();
                drop(conn);
                assert_eq!(queued, n, "queue_due queued {queued} of {n} due images");
                take_errors();
                let run = run_workers(&pool, settings(workers), n, now, || {});
                let (logged_errors, first_error) = take_errors();
                let stats = stats(&pool, now);
                let mut problems = Vec::new();
                if stats.succeeded != n as i64 {
                    problems.push(format!("{} of {n} scans Succeeded", stats.succeeded));
                }
                if stats.failed != 0 {
                    problems.push(format!("{} scans Failed", stats.failed));
                }
                if stats.active_findings == 0 {
                    problems.push("no findings".to_owned());
                }
                if round == Round::AllNew && stats.active_findings != stats.findings {
                    problems.push(format!(
                        "{} of {} findings active",
                        stats.active_findings, stats.findings
                    ));
                }
                let active = Duration::from_micros(
                    u64::try_from(stats.last_finish - stats.first_claim).unwrap_or(0),
                );
                println!(
                    "{}: rescan of {n} images, {workers} workers, {}: {:.0} images/s \
                     (first claim to last finish {:.2} s; wall until all listed Succeeded {:.2} s; \
                     queue_due {:.0} ms) — {} findings active, {} scans retried{}{}\n  ({})",
                    db.label,
                    round.label(),
                    n as f64 / active.as_secs_f64(),
                    active.as_secs_f64(),
                    run.as_secs_f64(),
                    common::ms(queue_time),
                    stats.active_findings,
                    stats.retried,
                    match first_error {
                        Some(first) => format!(
                            "; {logged_errors} errors logged by the workers, the first: {first}"
                        ),
                        None => String::new(),
                    },
                    if stats.errors.is_empty() {
                        String::new()
                    } else {
                        format!(" (error codes recorded: {})", stats.errors.join(", "))
                    },
                    baseline.ratios(n as f64 / active.as_secs_f64())
                );
                if !problems.is_empty() {
                    let problem = format!(
                        "{}: {workers} workers, {}: {}",
                        db.label,
                        round.label(),
                        problems.join(", ")
                    );
                    println!("SANITY CHECK FAILED: {problem}");
                    failed_checks.push(problem);
                }
            }
        }
        if profile > 0 {
            profile_phases(&pool, db.label, &key, profile.min(n));
        }
        if burst > 0
            && matches!(db.url, store::DatabaseUrl::Postgres(_))
            && let Err(problem) = compare_processes(&pool, &db.url, burst.min(n), &baseline)
        {
            println!("SANITY CHECK FAILED: {problem}");
            failed_checks.push(problem);
        }
    }
    assert!(
        failed_checks.is_empty(),
        "sanity checks failed:\n{}",
        failed_checks.join("\n")
    );
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Round {
    /// No stored findings: the merge inserts every one.
    AllNew,
    /// The findings of the previous round are stored: the merge keeps them (`last_seen` moves).
    Unchanged,
}

impl Round {
    fn label(self) -> &'static str {
        match self {
            Round::AllNew => "all findings new",
            Round::Unchanged => "findings unchanged",
        }
    }
}

struct Seeded {
    packages: usize,
    with_advisories: usize,
}

/// One registry, `n` images last scanned two days ago and pulled yesterday, each with its own stored
/// inventory; 500 images per transaction.
fn seed(pool: &Pool, fixes: &[(String, Vec<String>)], key: &str, n: usize) -> Seeded {
    let now = Timestamp::now().micros();
    let registry = RegistryRow {
        id: store::new_id(),
        subscription_id: "bench".to_owned(),
        resource_group: "prod".to_owned(),
        name: "main".to_owned(),
        // Never contacted: a rescan re-matches the stored inventory.
        login_server: "registry.invalid".to_owned(),
        insecure: false,
        credentials: None,
        webhook_secret_sha256: "0".repeat(64),
        created_at: now,
        updated_at: now,
    };
    let mut conn = pool.get().unwrap();
    store::registries::insert(&mut conn, &registry).unwrap();
    let (mut packages, mut with_advisories) = (0, 0);
    let ids: Vec<usize> = (0..n).collect();
    for chunk in ids.chunks(500) {
        conn.transaction::<_, diesel::result::Error, _>(|c| {
            for &i in chunk {
                let mut rng = Rng::new(0xd1_6e57 + i as u64);
                let digest = format!(
                    "sha256:{:016x}{:016x}{:016x}{:016x}",
                    rng.next_u64(),
                    rng.next_u64(),
                    rng.next_u64(),
                    rng.next_u64()
                );
                let size = match i % 10 {
                    0..=5 => 100,
                    6..=8 => 300,
                    _ => 700,
                };
                let inventory = realistic_debian_inventory(fixes, size, i as u64 + 1);
                packages += inventory.packages.len();
                with_advisories += inventory
                    .packages
                    .iter()
                    .filter(|p| p.source_name.is_some())
                    .count();
                store::images::insert(
                    c,
                    &ImageRow {
                        id: store::new_id(),
                        registry_id: registry.id.clone(),
                        subscription_id: registry.subscription_id.clone(),
                        repository: format!("team{}/service{}", i % 20, i % 400),
                        digest: digest.clone(),
                        index_digest: None,
                        platform: Some("linux/amd64".to_owned()),
                        os: Some("debian 10".to_owned()),
                        health: "Unhealthy".to_owned(),
                        health_reason: None,
                        pushed_at: Some(now - 40 * DAY),
                        pulled_at: Some(now - DAY),
                        scanned_at: Some(now - 2 * DAY),
                        running: false,
                        created_at: now - 40 * DAY,
                        coverage: None,
                        advisories_synced_at: None,
                        unreadable_files: 0,
                        media_type: None,
                        os_version: Some("debian_linux_10".to_owned()),
                    },
                )?;
                inventories::save(c, &digest, key, 3, &inventory)?;
            }
            Ok(())
        })
        .unwrap();
    }
    Seeded {
        packages,
        with_advisories,
    }
}

/// Makes every image due again (last scanned two days ago); for [`Round::AllNew`] also drops the
/// stored findings.
fn prepare(conn: &mut AnyConnection, round: Round) {
    let now = Timestamp::now().micros();
    if round == Round::AllNew {
        diesel::delete(findings::table).execute(conn).unwrap();
    }
    diesel::update(images::table)
        .set(images::scanned_at.eq(now - 2 * DAY))
        .execute(conn)
        .unwrap();
}

/// The bench's queue settings: `workers` workers, a short poll so that the drain is seen at once.
fn settings(workers: usize) -> QueueSettings {
    QueueSettings {
        workers,
        retry_delay: Duration::from_secs(1),
        poll: Duration::from_millis(50),
        ..Default::default()
    }
}

/// Starts the real workers, calls `then` (which queues the work), and runs them until every scan
/// queued since `since` has ended; returns the wall time from their start until the poll saw that.
fn run_workers(
    pool: &Pool,
    settings: QueueSettings,
    expected: usize,
    since: i64,
    then: impl FnOnce(),
) -> Duration {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let wall = runtime.block_on(async {
        let stop = CancellationToken::new();
        let start = Instant::now();
        spawn_workers(
            Arc::new(Engine::new(pool.clone())),
            Queue::new(pool.clone()),
            settings,
            stop.clone(),
        );
        then();
        let mut last_report = Instant::now();
        loop {
            tokio::time::sleep(Duration::from_millis(50)).await;
            let counts = store::run(pool, move |c| status_counts(c, since))
                .await
                .unwrap();
            let count = |s: &str| {
                counts
                    .iter()
                    .find(|(status, _)| status == s)
                    .map_or(0, |(_, n)| *n)
            };
            let ended = count("Succeeded") + count("Failed");
            if ended >= expected as i64 {
                break;
            }
            if last_report.elapsed() > Duration::from_secs(15) {
                eprintln!(
                    "  … {ended}/{expected} ended after {:.0} s",
                    start.elapsed().as_secs_f64()
                );
                last_report = Instant::now();
            }
            assert!(
                start.elapsed() < Duration::from_secs(3 * 3600),
                "the queue did not drain in 3 hours: {counts:?}"
            );
        }
        let wall = start.elapsed();
        stop.cancel();
        wall
    });
    runtime.shutdown_timeout(Duration::from_secs(10));
    wall
}

/// Names the child process's database, workers, burst start and size: `url|workers|since|expected`.
const CHILD_ENV: &str = "CROWSNEST_BENCH_RESCAN_CHILD";

/// The second process of [`compare_processes`]: workers with the default settings until the burst
/// has ended, then how many scans they finished on stdout.
fn run_child(spec: &str) {
    let parts: Vec<&str> = spec.split('|').collect();
    let [url, workers, since, expected] = parts[..] else {
        panic!("{CHILD_ENV}={spec}: expected url|workers|since|expected");
    };
    let pool = store::connect(&store::DatabaseUrl::parse(url).unwrap(), 8).unwrap();
    let settings = QueueSettings {
        workers: workers.parse().unwrap(),
        ..Default::default()
    };
    run_workers(
        &pool,
        settings,
        expected.parse().unwrap(),
        since.parse().unwrap(),
        || println!("ready"),
    );
    println!(
        "finished {}",
        FINISHED.load(std::sync::atomic::Ordering::Relaxed)
    );
}

fn raw_url(url: &store::DatabaseUrl) -> String {
    match url {
        store::DatabaseUrl::Postgres(url) => url.clone(),
        store::DatabaseUrl::Sqlite(path) => path.display().to_string(),
    }
}

/// A burst of `burst` re-assessments run by one process of 2 workers, then by two processes of 2
/// workers each (this one and a child), with the default queue settings: the processes are idle
/// when the burst is queued, so how fast the second one joins in is part of the figure.
fn compare_processes(
    pool: &Pool,
    url: &store::DatabaseUrl,
    burst: usize,
    baseline: &Baseline,
) -> Result<(), String> {
    use std::io::BufRead as _;
    let mut rates = Vec::new();
    for processes in [1, 2] {
        let mut conn = pool.get().unwrap();
        prepare(&mut conn, Round::Unchanged);
        // Only `burst` images are due: the others were scanned just now.
        let now = Timestamp::now().micros();
        diesel::update(images::table)
            .set(images::scanned_at.eq(now))
            .execute(&mut conn)
            .unwrap();
        let due: Vec<String> = images::table
            .select(images::id)
            .order(images::id)
            .limit(burst as i64)
            .load(&mut conn)
            .unwrap();
        diesel::update(images::table.filter(images::id.eq_any(&due)))
            .set(images::scanned_at.eq(now - 2 * DAY))
            .execute(&mut conn)
            .unwrap();
        drop(conn);
        let since = Timestamp::now().micros();
        let mut child = (processes == 2).then(|| {
            let mut child = std::process::Command::new(std::env::current_exe().unwrap())
                .env(CHILD_ENV, format!("{}|2|{since}|{burst}", raw_url(url)))
                .stdout(std::process::Stdio::piped())
                .spawn()
                .unwrap();
            let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
            assert_eq!(lines.next().unwrap().unwrap(), "ready", "the child process");
            (child, lines)
        });
        FINISHED.store(0, std::sync::atomic::Ordering::Relaxed);
        take_errors();
        let queue_settings = QueueSettings {
            workers: 2,
            ..Default::default()
        };
        run_workers(pool, queue_settings, burst, since, || {
            let mut conn = pool.get().unwrap();
            let queued = queue_due(&mut conn, &RescanSettings::default(), since).unwrap();
            assert_eq!(queued, burst, "queue_due queued {queued} of {burst}");
        });
        let here = FINISHED.load(std::sync::atomic::Ordering::Relaxed);
        let there = match child.as_mut() {
            Some((child, lines)) => {
                let line = lines.next().unwrap().unwrap();
                assert!(child.wait().unwrap().success(), "the child process failed");
                line.strip_prefix("finished ").unwrap().parse().unwrap()
            }
            None => 0,
        };
        let stats = stats(pool, since);
        let active = Duration::from_micros(
            u64::try_from(stats.last_finish - stats.first_claim).unwrap_or(0),
        );
        let rate = burst as f64 / active.as_secs_f64();
        rates.push(rate);
        let (logged_errors, _) = take_errors();
        println!(
            "PostgreSQL: burst of {burst} re-assessments, {processes} process(es) of 2 workers, default queue settings: \
             {rate:.0} images/s (first claim to last finish {:.2} s); scans finished by this process {here}, by the second {there}; \
             {logged_errors} errors logged\n  ({})",
            active.as_secs_f64(),
            baseline.ratios(rate)
        );
        if stats.succeeded != burst as i64 || stats.failed != 0 {
            return Err(format!(
                "{processes} process(es): {} of {burst} Succeeded, {} Failed",
                stats.succeeded, stats.failed
            ));
        }
    }
    println!(
        "PostgreSQL: two processes against one: {:.2}x",
        rates[1] / rates[0]
    );
    Ok(())
}

fn status_counts(c: &mut AnyConnection, since: i64) -> QueryResult<Vec<(String, i64)>> {
    scans::table
        .filter(scans::created_at.ge(since))
        .group_by(scans::status)
        .select((scans::status, diesel::dsl::count_star()))
        .load(c)
}

#[derive(Debug)]
struct Stats {
    succeeded: i64,
    failed: i64,
    retried: i64,
    errors: Vec<String>,
    first_claim: i64,
    last_finish: i64,
    findings: i64,
    active_findings: i64,
}

fn stats(pool: &Pool, since: i64) -> Stats {
    let mut conn = pool.get().unwrap();
    let c = &mut *conn;
    let counts = status_counts(c, since).unwrap();
    let count = |s: &str| {
        counts
            .iter()
            .find(|(status, _)| status == s)
            .map_or(0, |(_, n)| *n)
    };
    let round = || scans::table.filter(scans::created_at.ge(since));
    let (first_claim, last_finish): (Option<i64>, Option<i64>) = round()
        .select((
            diesel::dsl::min(scans::started_at),
            diesel::dsl::max(scans::finished_at),
        ))
        .first(c)
        .unwrap();
    let retried = round()
        .filter(scans::attempts.gt(1))
        .count()
        .get_result(c)
        .unwrap();
    let errors = round()
        .filter(scans::error_code.is_not_null())
        .select(scans::error_code.assume_not_null())
        .distinct()
        .load(c)
        .unwrap();
    Stats {
        succeeded: count("Succeeded"),
        failed: count("Failed"),
        retried,
        errors,
        first_claim: first_claim.unwrap_or(0),
        last_finish: last_finish.unwrap_or(0),
        findings: findings::table.count().get_result(c).unwrap(),
        active_findings: findings::table
            .filter(findings::resolved_at.is_null())
            .count()
            .get_result(c)
            .unwrap(),
    }
}

/// Where a rescan's time goes: what a worker does for one `Rescan` (claim, registry, stored
/// inventory, image, match, finding rows, then one transaction: image, merge, assessment, finish,
/// commit), on one connection without the async hand-offs, each step timed; findings unchanged.
fn profile_phases(pool: &Pool, label: &str, key: &str, sample: usize) {
    const PHASES: [&str; 11] = [
        "claim (UPDATE … RETURNING + SELECT)",
        "registry look-up",
        "inventories::load",
        "images::find_by_digest",
        "match_stored",
        "findings::rows (fingerprints)",
        "tx: images::ensure",
        "tx: findings::merge",
        "tx: images::record_assessment",
        "tx: scans::finish",
        "tx: BEGIN + COMMIT",
    ];
    let mut conn = pool.get().unwrap();
    let c = &mut *conn;
    prepare(c, Round::Unchanged);
    let now = Timestamp::now().micros();
    queue_due(c, &RescanSettings::default(), now).unwrap();
    let cache = CandidateCache::default();
    let mut spent = [Duration::ZERO; PHASES.len()];
    let (mut findings_total, mut packages_total) = (0, 0);
    let started = Instant::now();
    for _ in 0..sample {
        let mut lap = Instant::now();
        let mut step = |i: usize, spent: &mut [Duration; PHASES.len()]| {
            spent[i] += lap.elapsed();
            lap = Instant::now();
        };
        let now = Timestamp::now().micros();
        let who = store::scans::Claimant {
            owner: "profile",
            now,
            lease_until: now + 60_000_000,
            subscription_cap: 1,
        };
        let scan = store::scans::claim(c, who).unwrap().expect("a queued scan");
        step(0, &mut spent);
        let registry = store::registries::find_by_row_id(c, &scan.registry_id)
            .unwrap()
            .unwrap();
        step(1, &mut spent);
        let digest = scan.digest.clone().unwrap();
        let inventory = inventories::load(c, &digest, key).unwrap().unwrap();
        step(2, &mut spent);
        let image = store::images::find_by_digest(c, &scan.registry_id, &scan.repository, &digest)
            .unwrap()
            .unwrap();
        step(3, &mut spent);
        let (report, _) = match_stored(c, &cache, &inventory).unwrap();
        step(4, &mut spent);
        let rows = finding_rows::rows(&registry, &image, &report.matches, now);
        step(5, &mut spent);
        findings_total += rows.len();
        packages_total += inventory.packages.len();
        let mut inside = Duration::ZERO;
        let tx = Instant::now();
        c.transaction::<_, diesel::result::Error, _>(|c| {
            let mut t = Instant::now();
            let mut mark = |i: usize, t: &mut Instant| {
                let d = t.elapsed();
                spent[i] += d;
                inside += d;
                *t = Instant::now();
            };
            let image = store::images::ensure(c, &image, None)?;
            mark(6, &mut t);
            store::findings::merge(c, &image.id, &rows, now)?;
            mark(7, &mut t);
            store::images::record_assessment(
                c,
                &image.id,
                &Assessed {
                    index_digest: None,
                    platform: image.platform.clone(),
                    os: image.os.clone(),
                    health: "Unhealthy".to_owned(),
                    health_reason: None,
                    scanned_at: now,
                    coverage: "[]".to_owned(),
                    advisories_synced_at: None,
                    unreadable_files: 0,
                    media_type: None,
                    os_version: image.os_version.clone(),
                },
            )?;
            mark(8, &mut t);
            let kept = store::scans::finish(
                c,
                &scan.id,
                "profile",
                now,
                &Outcome::Succeeded {
                    digest: Some(digest.clone()),
                    summary: "{}".to_owned(),
                },
            )?;
            assert!(kept);
            mark(9, &mut t);
            Ok(())
        })
        .unwrap();
        spent[10] += tx.elapsed().saturating_sub(inside);
    }
    let total = started.elapsed();
    let sum: Duration = spent.iter().sum();
    drop(conn);
    // A worker takes a pooled connection four times per rescan (claim, registry, re-match, results).
    let checkout = Instant::now();
    for _ in 0..200 {
        drop(pool.get().unwrap());
    }
    let checkout = checkout.elapsed() / 200;
    println!(
        "{label}: phase profile of {sample} rescans on one connection, findings unchanged \
         ({:.0} packages, {:.1} findings per image on average): {:.2} ms per image ({:.0} images/s)",
        packages_total as f64 / sample as f64,
        findings_total as f64 / sample as f64,
        common::ms(total) / sample as f64,
        sample as f64 / total.as_secs_f64()
    );
    println!(
        "{label}:   (not in the profile: a pool checkout, r2d2 tests each with SELECT 1: {:.3} ms; a worker makes 4 per rescan)",
        common::ms(checkout)
    );
    for (name, d) in PHASES.iter().zip(spent) {
        println!(
            "{label}:   {name:<38} {:>7.3} ms/image  {:>5.1}%",
            common::ms(d) / sample as f64,
            100.0 * d.as_secs_f64() / sum.as_secs_f64()
        );
    }
}
