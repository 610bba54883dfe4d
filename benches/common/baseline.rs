//! The machine's own speed, measured in the same run as a benchmark, so that each figure can also be
//! read as a ratio to it: two machines "of the same kind" can differ by a factor of two in CPU or in
//! how fast PostgreSQL commits, and a bench that only prints images/s cannot tell a slower machine
//! from slower code.
//!
//! - CPU: SHA-256 over 64 MiB held in memory, one core, best of three (MB/s).
//! - PostgreSQL: `pgbench` on a scratch database (scale 10), 2 clients for 5 s each: select-only
//!   (`-S`, reads from shared buffers) and simple-update (`-N`, one commit per transaction, so it
//!   follows the disk's flush latency).

use std::process::Command;
use std::time::Instant;

use sha2::{Digest as _, Sha256};

use super::BenchDb;

#[derive(Debug, Clone, Copy)]
pub struct Baseline {
    /// SHA-256 throughput of one core, MB/s.
    pub cpu_mb_s: f64,
    /// pgbench select-only transactions per second (2 clients).
    pub pg_select_tps: f64,
    /// pgbench simple-update transactions per second (2 clients).
    pub pg_write_tps: f64,
}

impl Baseline {
    /// Measures the machine; panics with the reason when pgbench cannot run (the benches need
    /// PostgreSQL anyway).
    pub fn measure() -> Self {
        let cpu_mb_s = cpu_mb_s();
        let db = BenchDb::postgres();
        let url = match &db.url {
            crowsnest::store::DatabaseUrl::Postgres(url) => url.clone(),
            crowsnest::store::DatabaseUrl::Sqlite(_) => unreachable!("a PostgreSQL database"),
        };
        pgbench(&["-i", "-q", "-s", "10", &url]);
        let pg_select_tps = tps(&pgbench(&[
            "-n", "-S", "-c", "2", "-j", "2", "-T", "5", &url,
        ]));
        let pg_write_tps = tps(&pgbench(&[
            "-n", "-N", "-c", "2", "-j", "2", "-T", "5", &url,
        ]));
        let baseline = Self {
            cpu_mb_s,
            pg_select_tps,
            pg_write_tps,
        };
        println!("{}", baseline.line());
        baseline
    }

    pub fn line(&self) -> String {
        format!(
            "machine baseline: CPU {:.0} MB/s (SHA-256, one core); PostgreSQL pgbench {:.0} select-only tps, {:.0} simple-update tps (2 clients)",
            self.cpu_mb_s, self.pg_select_tps, self.pg_write_tps
        )
    }

    /// `value` per 1,000 pgbench simple-update transactions per second.
    pub fn per_k_write_tps(&self, value: f64) -> f64 {
        value / self.pg_write_tps * 1000.0
    }

    /// `value` per 1,000 pgbench select-only transactions per second.
    pub fn per_k_select_tps(&self, value: f64) -> f64 {
        value / self.pg_select_tps * 1000.0
    }

    /// `value` per 1,000 MB/s of single-core SHA-256.
    pub fn per_k_cpu(&self, value: f64) -> f64 {
        value / self.cpu_mb_s * 1000.0
    }

    /// A throughput with its ratios to the three baselines.
    pub fn ratios(&self, value: f64) -> String {
        format!(
            "{:.1} per 1k write tps, {:.1} per 1k select tps, {:.1} per GB/s CPU",
            self.per_k_write_tps(value),
            self.per_k_select_tps(value),
            self.per_k_cpu(value)
        )
    }
}

fn cpu_mb_s() -> f64 {
    let data = vec![0x5au8; 64 << 20];
    let best = (0..3)
        .map(|_| {
            let start = Instant::now();
            let digest = Sha256::digest(&data);
            std::hint::black_box(digest);
            start.elapsed().as_secs_f64()
        })
        .fold(f64::INFINITY, f64::min);
    data.len() as f64 / 1e6 / best
}

fn pgbench(args: &[&str]) -> String {
    let output = Command::new("pgbench")
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("the machine baseline needs pgbench (postgresql-client): {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "pgbench {args:?} failed: {text}");
    text
}

/// The `tps = …` figure pgbench prints.
fn tps(report: &str) -> f64 {
    report
        .lines()
        .find_map(|line| {
            let rest = line.trim().strip_prefix("tps = ")?;
            rest.split_whitespace().next()?.parse().ok()
        })
        .unwrap_or_else(|| panic!("no tps in pgbench's report: {report}"))
}
