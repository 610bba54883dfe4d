//! Re-assessments without pulling: the daily rescan of pulled, pushed and running images (with the
//! minute pass over Healthy images whose advisory data aged, `coverage::queue_stale`), and the
//! immediate re-match of the images an advisory import (or a change of severity ratings)
//! concerns. All only queue scans (one pending
//! per image), so running them twice, or in two processes, queues nothing twice.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::domain::{ScanTrigger, Timestamp};
use crate::store::{self, AnyConnection, Pool};

use super::coverage;
use super::import_advisories::ImportSummary;
use super::queue::{DEFAULT_ADVISORY_MAX_AGE, Queue, reassess_in};

#[derive(Debug, Clone)]
pub struct RescanSettings {
    /// An image is re-assessed when its last assessment is older than this.
    pub interval: Duration,
    /// Images pulled or pushed within this window are re-assessed (running ones always).
    pub active_within: Duration,
    /// A Healthy image whose advisory data is older than this is re-matched (and becomes
    /// `AdvisoriesStale` unless the data was refreshed meanwhile).
    pub advisory_max_age: Duration,
}

impl Default for RescanSettings {
    fn default() -> Self {
        Self {
            interval: Duration::from_secs(24 * 3600),
            active_within: Duration::from_secs(30 * 24 * 3600),
            advisory_max_age: DEFAULT_ADVISORY_MAX_AGE,
        }
    }
}

/// Images queued per pass; the next pass takes the rest.
const BATCH: i64 = 1000;

/// Queues a `Rescan` for every image that is due; returns how many were queued.
pub fn queue_due(
    conn: &mut AnyConnection,
    settings: &RescanSettings,
    now: i64,
) -> diesel::QueryResult<usize> {
    let assessed_before = now - Timestamp::span_micros(settings.interval);
    let active_since = now - Timestamp::span_micros(settings.active_within);
    let mut queued = 0;
    let mut after: Option<(i64, String)> = None;
    loop {
        let cursor = after.as_ref().map(|(at, id)| (*at, id.as_str()));
        let due =
            store::images::due_for_rescan(conn, assessed_before, active_since, BATCH, cursor)?;
        queued += reassess_in(conn, &due, ScanTrigger::Rescan)?;
        match due.last() {
            Some(last) if i64::try_from(due.len()).unwrap_or(0) == BATCH => {
                after = Some((last.scanned_at.unwrap_or_default(), last.id.clone()));
            }
            _ => return Ok(queued),
        }
    }
}

/// Queues an `AdvisoryUpdate` for every scanned image holding one of these packages (binary or
/// source name); returns how many were queued.
pub fn queue_holding(conn: &mut AnyConnection, names: &[String]) -> diesel::QueryResult<usize> {
    if names.is_empty() {
        return Ok(0);
    }
    let images = store::images::holding_packages(conn, names)?;
    reassess_in(conn, &images, ScanTrigger::AdvisoryUpdate)
}

/// After an import (which queued the images it concerns in its last transaction): wakes this
/// process's workers when it queued any; returns how many it queued.
pub fn after_import(queue: Option<&Queue>, summary: &ImportSummary) -> usize {
    let queued = summary.images_queued;
    if queued > 0 {
        tracing::info!(
            queued,
            "advisories changed: images queued for re-assessment"
        );
        if let Some(queue) = queue {
            queue.wake();
        }
    }
    queued
}

/// Looks for due images and for Healthy images whose advisory data has aged every minute (or
/// every interval, when shorter) and forgets old notification ids; runs until the runtime stops.
pub fn spawn_scheduler(
    pool: Pool,
    queue: Queue,
    settings: RescanSettings,
    stop: CancellationToken,
) {
    let tick = settings.interval.min(Duration::from_secs(60));
    tokio::spawn(async move {
        while !stop.is_cancelled() {
            let (s, q) = (settings.clone(), queue.clone());
            let passed = store::run(&pool, move |c| {
                let now = Timestamp::now().micros();
                store::registry_events::prune(
                    c,
                    now - Timestamp::span_micros(Duration::from_secs(7 * 24 * 3600)),
                )?;
                Ok(queue_due(c, &s, now)? + coverage::queue_stale(c, s.advisory_max_age, now)?)
            })
            .await;
            match passed {
                Ok(0) => {}
                Ok(queued) => {
                    tracing::info!(queued, "images queued for their periodic re-assessment");
                    q.wake();
                }
                Err(e) => tracing::warn!(error = %e, "cannot queue the periodic re-assessments"),
            }
            tokio::select! {
                () = tokio::time::sleep(tick) => {}
                () = stop.cancelled() => {}
            }
        }
    });
}
