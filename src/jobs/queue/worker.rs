//! The worker loop: claim due scans, hold their leases while they run, and hand the outcome to
//! [`super::outcome`].

use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use crate::domain::{ScanTrigger, Timestamp};
use crate::jobs::engine::{self, Engine, ScanError, ScanResult, ScannedImage};
use crate::scanner::registry::{ClientConfig, ImageReference, RegistryClient};
use crate::store::scans::{Claimant, ScanRow, ScanTarget};
use crate::store::{self, StoreError};

use super::outcome::{Assessment, Failure, complete, complete_together};
use super::{Queue, QueueSettings};

/// Starts `settings.workers` workers; they run until the runtime stops.
pub fn spawn_workers(
    engine: Arc<Engine>,
    queue: Queue,
    settings: QueueSettings,
    stop: CancellationToken,
) {
    let process = format!(
        "{}:{}:{}",
        hostname(),
        std::process::id(),
        &store::new_id()[..8]
    );
    for n in 0..settings.workers {
        let worker = Worker {
            owner: format!("{process}:{n}"),
            engine: engine.clone(),
            queue: queue.clone(),
            settings: settings.clone(),
        };
        let stop = stop.clone();
        tokio::spawn(async move {
            tokio::select! {
                () = worker.run() => {}
                () = stop.cancelled() => {}
            }
        });
    }
}

/// Wakes this process's idle workers when another process (or this one) queues scans: on
/// PostgreSQL a thread of its own listens for the notification the queueing transaction sends
/// (see `store::wakeups`). Nothing on SQLite, where the poll alone finds other processes' scans.
pub fn spawn_wakeups(database: store::DatabaseUrl, queue: Queue, stop: CancellationToken) {
    if !matches!(database, store::DatabaseUrl::Postgres(_)) {
        return;
    }
    // A thread, not `spawn_blocking`: the runtime's shutdown does not wait for it.
    let spawned = std::thread::Builder::new()
        .name("scan-wakeups".to_owned())
        .spawn(move || {
            store::wakeups::listen_scans_queued(&database, &|| stop.is_cancelled(), &|| {
                queue.wake()
            });
        });
    if let Err(e) = spawned {
        tracing::warn!(error = %e, "cannot start the scan wake-up listener; idle workers poll");
    }
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_else(|_| "crowsnest".to_owned())
}

struct Worker {
    owner: String,
    engine: Arc<Engine>,
    queue: Queue,
    settings: QueueSettings,
}

/// Re-assessments claimed together after a first one: they are matched one after another and
/// stored in one transaction, so a daily rescan of thousands of images pays one claim, one lease
/// renewal and one commit per batch instead of per image. Scans that need a pull are never
/// batched: each keeps a worker of its own.
const REASSESSMENT_BATCH: i64 = 64;

impl Worker {
    async fn run(self) {
        loop {
            // Registered before looking, so a wake-up between the look and the wait is not lost.
            let woken = self.queue.wake.notified();
            match self.claim().await {
                Ok(mut scans) if scans.len() == 1 => {
                    self.execute(scans.remove(0)).await;
                    continue;
                }
                Ok(scans) if !scans.is_empty() => {
                    self.execute_reassessments(scans).await;
                    continue;
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(worker = %self.owner, error = %e, "cannot read the scan queue")
                }
            }
            let _ = tokio::time::timeout(self.settings.poll, woken).await;
        }
    }

    /// The next due scan; when it is a first attempt at a re-assessment, with the re-assessments
    /// due after it (up to [`REASSESSMENT_BATCH`] in all).
    async fn claim(&self) -> Result<Vec<ScanRow>, StoreError> {
        let owner = self.owner.clone();
        let lease = Timestamp::span_micros(self.settings.lease);
        let subscription_cap = self.settings.subscription_cap();
        store::run(&self.engine.pool, move |c| {
            let now = Timestamp::now().micros();
            let who = Claimant {
                owner: &owner,
                now,
                lease_until: now + lease,
                subscription_cap,
            };
            let Some(first) = store::scans::claim(c, who)? else {
                return Ok(Vec::new());
            };
            let batch = first.attempts == 1 && first.trigger().is_reassessment();
            let mut scans = vec![first];
            if batch {
                scans.extend(store::scans::claim_reassessments(
                    c,
                    who,
                    REASSESSMENT_BATCH - 1,
                )?);
            }
            Ok(scans)
        })
        .await
    }

    async fn execute(&self, scan: ScanRow) {
        log_start(&scan);
        self.run_started(scan, std::time::Instant::now()).await;
    }

    /// Runs a scan whose start is logged already, and stores its outcome.
    async fn run_started(&self, scan: ScanRow, started: std::time::Instant) {
        // The advisories' generation a re-match was made against, if this scan was one.
        let mut rematched_at = None;
        let outcome = if scan.attempts
            > i32::try_from(self.settings.max_attempts).unwrap_or(i32::MAX)
        {
            // Leases ran out this many times: the scan itself stops its workers (a crash, an OOM kill).
            Err(Failure {
                code: "WorkerLost".to_owned(),
                message: format!(
                    "the scan was abandoned {} times without finishing (the worker stopped)",
                    scan.attempts - 1
                ),
                retryable: false,
            })
        } else {
            match self
                .with_lease(std::slice::from_ref(&scan), self.assess(&scan))
                .await
            {
                Some(Ok((assessment, matched_at))) => {
                    rematched_at = matched_at;
                    Ok(assessment)
                }
                Some(Err(failure)) => Err(failure),
                None => {
                    tracing::warn!(scan = %scan.id, "lease lost while scanning; another worker has the scan");
                    return;
                }
            }
        };
        let (owner, settings, id) = (self.owner.clone(), self.settings.clone(), scan.id.clone());
        let kept = scan.clone();
        let rematch_again = again(&scan);
        let stored = store::run(&self.engine.pool, move |c| {
            complete(
                c,
                &scan,
                &owner,
                &settings,
                outcome.as_ref().map_err(Clone::clone),
            )
        })
        .await;
        let stored = match stored {
            // The result clashed with a concurrent writer: the scan is retried now, not left
            // Running until its lease runs out.
            Err(e) if e.is_conflict() => {
                tracing::warn!(scan = %id, error = %e, "cannot store the scan's results");
                let (owner, settings, failure) =
                    (self.owner.clone(), self.settings.clone(), Failure::store(e));
                store::run(&self.engine.pool, move |c| {
                    complete(c, &kept, &owner, &settings, Err(failure))
                })
                .await
            }
            other => other,
        };
        log_end(&id, started, &stored);
        if let (Some(generation), Ok(_)) = (rematched_at, &stored) {
            self.requeue_if_advisories_moved(generation, vec![rematch_again])
                .await;
        }
    }

    /// Re-assessments claimed together: those whose inventory is stored are matched and stored in
    /// one transaction (one by one when that fails); the others are scanned one after another.
    async fn execute_reassessments(&self, scans: Vec<ScanRow>) {
        let started = std::time::Instant::now();
        for scan in &scans {
            log_start(scan);
        }
        let Some(rematched) = self.with_lease(&scans, self.rematch_all(&scans)).await else {
            tracing::warn!(
                scans = scans.len(),
                "leases lost while re-matching; other workers have the scans"
            );
            return;
        };
        let (rematched, generation) = match rematched {
            Ok(rematched) => rematched,
            Err(e) => {
                // The database is away: each scan is retried later with its own backoff.
                let failure = Failure::store(e);
                for scan in scans {
                    let failure = failure.clone();
                    let (owner, settings, id) =
                        (self.owner.clone(), self.settings.clone(), scan.id.clone());
                    let stored = store::run(&self.engine.pool, move |c| {
                        complete(c, &scan, &owner, &settings, Err(failure))
                    })
                    .await;
                    log_end(&id, started, &stored);
                }
                return;
            }
        };
        let mut done = Vec::new();
        let mut to_pull = Vec::new();
        for (scan, assessment) in scans.into_iter().zip(rematched) {
            match assessment {
                Some(assessment) => done.push((scan, assessment)),
                None => to_pull.push(scan),
            }
        }
        let ids: Vec<String> = done.iter().map(|(scan, _)| scan.id.clone()).collect();
        let again: Vec<ScanRow> = done.iter().map(|(scan, _)| again(scan)).collect();
        let (owner, settings) = (self.owner.clone(), self.settings.clone());
        let stored = store::run(&self.engine.pool, move |c| {
            complete_together(c, &done, &owner, &settings)
        })
        .await;
        for (n, id) in ids.iter().enumerate() {
            log_end(id, started, &stored.as_ref().map(|kept| kept[n]));
        }
        if stored.is_ok() {
            self.requeue_if_advisories_moved(generation, again).await;
        }
        // Their analyzers changed since the inventory was stored (or it is gone): read them again.
        for scan in to_pull {
            self.run_started(scan, started).await;
        }
    }

    /// Advisories or severity ratings that changed while these images were matched could not
    /// queue them again (their running scans held the images' pending keys): queue them now, so
    /// the change is not left for the daily rescan.
    async fn requeue_if_advisories_moved(&self, matched_at: i64, again: Vec<ScanRow>) {
        let queued = store::run(&self.engine.pool, move |c| {
            if again.is_empty() || store::advisories::generation(c)? == matched_at {
                return Ok(0);
            }
            store::scans::enqueue_many(c, &again)
        })
        .await;
        match queued {
            Ok(0) => {}
            Ok(queued) => {
                tracing::info!(queued, "advisories changed during a re-match: queued again");
                self.queue.wake();
            }
            Err(e) => tracing::warn!(error = %e, "could not queue changed images again"),
        }
    }

    /// Runs `work` while renewing the leases of `scans`; `None` when one of them was lost.
    async fn with_lease<T>(&self, scans: &[ScanRow], work: impl Future<Output = T>) -> Option<T> {
        let every = self.settings.lease / 3;
        let ids: Vec<String> = scans.iter().map(|s| s.id.clone()).collect();
        let renew = async {
            loop {
                tokio::time::sleep(every).await;
                let (renewed, owner, lease) = (
                    ids.clone(),
                    self.owner.clone(),
                    Timestamp::span_micros(self.settings.lease),
                );
                let kept = store::run(&self.engine.pool, move |c| {
                    store::scans::renew(c, &renewed, &owner, Timestamp::now().micros() + lease)
                })
                .await;
                match kept {
                    Ok(true) => {}
                    Ok(false) => return,
                    // The database is away: keep working, the final write will tell.
                    Err(e) => tracing::warn!(scans = ?ids, error = %e, "cannot renew the lease"),
                }
            }
        };
        tokio::select! {
            result = work => Some(result),
            () = renew => None,
        }
    }

    /// The scan's assessment, with the advisories' generation it was matched against when it
    /// was a re-match of the stored inventory.
    async fn assess(&self, scan: &ScanRow) -> Result<(Assessment, Option<i64>), Failure> {
        // A re-match reads the registry itself (and finds nothing when it is gone).
        if scan.trigger().is_reassessment() {
            let (mut rematched, generation) = self
                .rematch_all(std::slice::from_ref(scan))
                .await
                .map_err(Failure::store)?;
            if let Some(result) = rematched.pop().flatten() {
                return Ok((result, Some(generation)));
            }
        }
        let registry_id = scan.registry_id.clone();
        let registry = store::run(&self.engine.pool, move |c| {
            store::registries::find_by_row_id(c, &registry_id)
        })
        .await
        .map_err(Failure::store)?
        .ok_or_else(Failure::registry_gone)?;
        let credentials = match registry.credentials.as_deref() {
            Some(json) => Some(serde_json::from_str(json).map_err(|_| Failure {
                code: "RegistryCredentialsUnreadable".to_owned(),
                message:
                    "the stored credentials cannot be read; connect the registry again".to_owned(),
                retryable: false,
            })?),
            None => None,
        };
        let reference = ImageReference {
            registry: registry.login_server.clone(),
            repository: scan.repository.clone(),
            tag: scan.tag.clone(),
            digest: scan
                .digest
                .as_deref()
                .and_then(|d| crate::domain::Digest::parse(d).ok()),
        };
        let config = ClientConfig {
            insecure: registry.insecure,
            credentials,
            ..ClientConfig::default()
        };
        let client = RegistryClient::new(&registry.login_server, config)
            .map_err(|e| Failure::scan(&ScanError::from(e)))?;
        let result = engine::scan(&self.engine, &client, &reference)
            .await
            .map_err(|e| Failure::scan(&e))?;
        Ok((Assessment { registry, result }, None))
    }

    /// Matches the stored inventories of `scans` again, one database connection for all; `None`
    /// for a scan without a digest, without an inventory built by the current analyzers, or whose
    /// registry is gone.
    /// With the results, the advisories' generation read before matching.
    async fn rematch_all(
        &self,
        scans: &[ScanRow],
    ) -> Result<(Vec<Option<Assessment>>, i64), StoreError> {
        let key = self.engine.analyzers_key();
        let (scans, cache) = (scans.to_vec(), self.engine.cache.clone());
        store::run(&self.engine.pool, move |c| {
            let generation = store::advisories::generation(c)?;
            let registry_ids: Vec<String> = scans.iter().map(|s| s.registry_id.clone()).collect();
            let registries = store::registries::by_row_ids(c, &registry_ids)?;
            scans
                .iter()
                .map(|scan| {
                    let started = std::time::Instant::now();
                    let (Some(digest), Some(registry)) =
                        (scan.digest.as_deref(), registries.get(&scan.registry_id))
                    else {
                        return Ok(None);
                    };
                    let Ok(manifest_digest) = crate::domain::Digest::parse(digest) else {
                        return Ok(None);
                    };
                    let Some((inventory, report)) =
                        engine::rematch_stored(c, &cache, &key, &manifest_digest)?
                    else {
                        return Ok(None);
                    };
                    let platform = store::images::find_by_digest(
                        c,
                        &scan.registry_id,
                        &scan.repository,
                        digest,
                    )?
                    .and_then(|image| image.platform)
                    .unwrap_or_default();
                    Ok(Some(Assessment {
                        registry: registry.clone(),
                        result: ScanResult {
                            index_digest: None,
                            images: vec![ScannedImage {
                                manifest_digest,
                                // No manifest was fetched: the image keeps the one it has.
                                media_type: None,
                                platform,
                                inventory,
                                reused: true,
                                report,
                                seconds: started.elapsed().as_secs_f64(),
                            }],
                            skipped: Vec::new(),
                        },
                    }))
                })
                .collect::<diesel::QueryResult<_>>()
                .map(|assessed| (assessed, generation))
        })
        .await
    }
}

/// An `AdvisoryUpdate` of the image `scan` re-assessed.
fn again(scan: &ScanRow) -> ScanRow {
    let target = ScanTarget {
        subscription_id: &scan.subscription_id,
        registry_id: &scan.registry_id,
        repository: &scan.repository,
        digest: scan.digest.as_deref(),
        tag: None,
    };
    ScanRow::queued(
        target,
        ScanTrigger::AdvisoryUpdate,
        Timestamp::now().micros(),
    )
}

fn log_start(scan: &ScanRow) {
    tracing::info!(scan = %scan.id, trigger = %scan.triggered_by, repository = %scan.repository, attempt = scan.attempts, "scan started");
}

fn log_end<E: std::fmt::Display>(id: &str, started: std::time::Instant, stored: &Result<bool, E>) {
    match stored {
        Ok(true) => {
            tracing::info!(scan = %id, seconds = started.elapsed().as_secs_f64(), "scan finished")
        }
        Ok(false) => {
            tracing::warn!(scan = %id, "lease lost before the results were stored; another worker has the scan")
        }
        // The lease runs out and the scan is taken again: nothing is lost.
        Err(e) => tracing::error!(scan = %id, error = %e, "cannot store the scan's results"),
    }
}
