//! `crowsnest advisories sync` and `advisories status`: the synced advisory sources from the
//! command line.

use std::io::IsTerminal;
use std::sync::{Arc, Mutex};

use anyhow::Context;

use crowsnest::config::{AdvisorySyncArgs, DatabaseArgs};
use crowsnest::domain::{SourceName, Timestamp};
use crowsnest::jobs::advisory_sync::{SyncProgress, SyncReport, SyncResult, Syncer};
use crowsnest::jobs::import_advisories::Rejection;
use crowsnest::store::{self, DatabaseUrl, Pool};

fn open(db: &DatabaseArgs) -> anyhow::Result<Pool> {
    let url = DatabaseUrl::parse(&db.database_url)?;
    let pool = store::connect(&url, 2)?;
    store::migrate(&pool)?;
    Ok(pool)
}

/// Syncs the named sources (or the configured ones) now, whether due or not; prints what each
/// did. Fails when any source failed.
pub fn sync(db: &DatabaseArgs, args: &AdvisorySyncArgs, sources: &[String]) -> anyhow::Result<()> {
    let pool = open(db)?;
    let settings = args.settings()?;
    let names = sources
        .iter()
        .map(|s| SourceName::parse(s))
        .collect::<Result<Vec<_>, _>>()?;
    let runtime = tokio::runtime::Runtime::new()?;
    let reports = runtime.block_on(async {
        let syncer = Syncer::new(pool, settings, None).map_err(|e| anyhow::anyhow!(e))?;
        let names = if names.is_empty() {
            syncer.configured().await?
        } else {
            names
        };
        if names.is_empty() {
            println!(
                "no advisory sources to sync: no stored image has packages yet; name sources \
                 (crowsnest advisories sync osv:Debian) or set CROWSNEST_ADVISORY_SOURCES"
            );
        }
        anyhow::Ok(syncer.sync(&names, Some(progress_bar())).await)
    })?;
    for report in &reports {
        print_report(report);
    }
    let failed = reports
        .iter()
        .filter(|r| matches!(r.result, SyncResult::Failed | SyncResult::Busy))
        .count();
    if failed > 0 {
        anyhow::bail!("{failed} of {} source(s) did not sync", reports.len());
    }
    Ok(())
}

/// A spinner per source on a terminal (records read so far); nothing otherwise.
fn progress_bar() -> SyncProgress {
    if !std::io::stderr().is_terminal() {
        return Arc::new(|_, _| {});
    }
    let bar: Mutex<Option<(String, indicatif::ProgressBar)>> = Mutex::new(None);
    Arc::new(move |source: &str, records: u64| {
        let Ok(mut current) = bar.lock() else {
            return;
        };
        if current.as_ref().is_none_or(|(name, _)| name != source) {
            if let Some((_, old)) = current.take() {
                old.finish_and_clear();
            }
            let spinner = indicatif::ProgressBar::new_spinner();
            spinner.set_style(
                indicatif::ProgressStyle::with_template(
                    "{spinner} {msg}: {pos} records read ({per_sec}) {elapsed}",
                )
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
            );
            spinner.set_message(source.to_owned());
            *current = Some((source.to_owned(), spinner));
        }
        if let Some((_, spinner)) = current.as_ref() {
            spinner.set_position(records);
        }
    })
}

/// The lines an import and a sync both print under their summary: the images queued for a
/// re-match and each rejected record.
pub fn print_queued_and_rejected(images_queued: usize, rejected: &[Rejection]) {
    if images_queued > 0 {
        println!("  {images_queued} stored image(s) queued for re-assessment");
    }
    for r in rejected {
        println!(
            "  rejected {} ({}): {}",
            r.id.as_deref().unwrap_or("?"),
            r.file,
            r.reason
        );
    }
}

fn print_report(r: &SyncReport) {
    let what = match r.result {
        SyncResult::Updated => format!("{} records, {} changed", r.records, r.changed),
        SyncResult::Unchanged => format!("{} records, nothing new", r.records),
        SyncResult::Failed => format!("failed: {}", r.error.as_deref().unwrap_or("unknown error")),
        SyncResult::Busy => "another process is syncing it now".to_owned(),
        SyncResult::NotDue => "not due".to_owned(),
    };
    println!(
        "{}: {what} ({} downloads, {:.2} s)",
        r.source, r.downloads, r.seconds
    );
    print_queued_and_rejected(r.images_queued, &r.rejected);
    if r.result != SyncResult::Failed
        && let Some(error) = &r.error
    {
        println!("  warning: {error}");
    }
}

/// Prints every configured or synced source: last success, records, newest record, last error,
/// next run.
pub fn status(db: &DatabaseArgs, args: &AdvisorySyncArgs) -> anyhow::Result<()> {
    let pool = open(db)?;
    let settings = args.settings()?;
    let runtime = tokio::runtime::Runtime::new()?;
    let configured = runtime.block_on(async {
        let syncer = Syncer::new(pool.clone(), settings, None).map_err(|e| anyhow::anyhow!(e))?;
        anyhow::Ok(syncer.configured().await?)
    })?;
    let rows = store::run_blocking(&pool, store::advisory_sources::list)
        .context("cannot read the advisory sources")?;
    let mut names: Vec<String> = configured.iter().map(ToString::to_string).collect();
    names.extend(rows.iter().map(|r| r.name.clone()));
    names.sort();
    names.dedup();
    if names.is_empty() {
        println!("no advisory sources configured or synced yet");
    }
    let time = |t: Option<i64>| {
        t.map(|t| Timestamp::from_micros(t).rfc3339())
            .unwrap_or_else(|| "never".to_owned())
    };
    for name in names {
        let row = rows.iter().find(|r| r.name == name);
        let configured = if configured.iter().any(|c| c.to_string() == name) {
            ""
        } else {
            " (not configured)"
        };
        println!("{name}{configured}");
        match row {
            None => println!("  never synced; due now"),
            Some(row) => {
                println!(
                    "  last success {}, last attempt {}, next run {}",
                    time(row.last_success_at),
                    time(row.last_attempt_at),
                    time(Some(row.next_run_at).filter(|t| *t > 0))
                );
                println!(
                    "  {} records, newest modified {}, {} changed by the last sync",
                    row.records,
                    time(row.newest_modified),
                    row.last_changed
                );
                if let Some(error) = &row.last_error {
                    println!(
                        "  last error ({} failure(s) in a row): {error}",
                        row.failures
                    );
                }
            }
        }
    }
    Ok(())
}
