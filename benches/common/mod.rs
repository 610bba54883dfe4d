//! Shared by the benchmarks: databases to measure on, and a small timing summary.

#![allow(dead_code)]

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
        if let Some((admin, name)) = &self.drop_pg
            && let Ok(mut conn) = PgConnection::establish(admin)
        {
            let _ = conn.batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"));
        }
    }
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
