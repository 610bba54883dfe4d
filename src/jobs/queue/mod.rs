//! The scan queue and its workers (DESIGN §6). Submissions are rows in `scans`; a worker leases
//! one, renews the lease while it works, and stores the results, the scan's end and the billing
//! record in one transaction that only commits while it still holds the lease. A process killed at
//! any point leaves either a Queued scan or a Running one whose lease runs out and is taken again.

use std::sync::Arc;
use std::time::Duration;

use diesel::Connection;
use serde::Serialize;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::domain::{ScanStatus, ScanTrigger, Severity, Timestamp, health_cause};
use crate::scanner::registry::{ClientConfig, ImageReference, RegistryClient};
use crate::store::images::{Assessed, ImageRow};
use crate::store::registries::RegistryRow;
use crate::store::scans::{Outcome, ScanRow};
use crate::store::{self, AnyConnection, Pool, StoreError};

use super::findings;
use super::inventories;
use super::matching::match_stored;
use super::scan::{self as engine_scan, Engine, ScanError, ScanResult, ScannedImage};

/// How the queue runs.
#[derive(Debug, Clone)]
pub struct QueueSettings {
    /// Workers in this process; 0 makes an API-only node.
    pub workers: usize,
    /// How long a lease lasts; renewed at a third of it while the scan runs.
    pub lease: Duration,
    /// Attempts before a scan fails for good.
    pub max_attempts: u32,
    /// Delay before the first retry; doubled for each further attempt, at most an hour.
    pub retry_delay: Duration,
    /// How often an idle worker looks for work queued by other processes.
    pub poll: Duration,
}

impl Default for QueueSettings {
    fn default() -> Self {
        Self {
            workers: std::thread::available_parallelism().map_or(2, |n| n.get()),
            lease: Duration::from_secs(60),
            max_attempts: 5,
            retry_delay: Duration::from_secs(5),
            poll: Duration::from_secs(1),
        }
    }
}

/// Submits scans and wakes this process's workers.
#[derive(Clone)]
pub struct Queue {
    pool: Pool,
    wake: Arc<Notify>,
}

/// A scan to queue.
#[derive(Debug, Clone)]
pub struct Submission {
    pub registry: RegistryRow,
    pub repository: String,
    pub tag: Option<String>,
    pub digest: Option<String>,
    pub trigger: ScanTrigger,
    pub idempotency_key: Option<String>,
}

impl Submission {
    fn row(&self, now: i64) -> ScanRow {
        ScanRow {
            id: store::new_ordered_id(),
            subscription_id: self.registry.subscription_id.clone(),
            registry_id: self.registry.id.clone(),
            repository: self.repository.clone(),
            tag: self.tag.clone(),
            digest: self.digest.clone(),
            triggered_by: self.trigger.as_str().to_owned(),
            status: ScanStatus::Queued.as_str().to_owned(),
            attempts: 0,
            run_after: now,
            lease_owner: None,
            lease_until: None,
            pending_key: Some(store::scans::pending_key(
                &self.registry.id,
                &self.repository,
                self.digest.as_deref(),
                self.tag.as_deref(),
            )),
            idempotency_key: self.idempotency_key.clone(),
            error_code: None,
            error_message: None,
            summary: None,
            created_at: now,
            started_at: None,
            finished_at: None,
        }
    }
}

impl Queue {
    pub fn new(pool: Pool) -> Self {
        Self {
            pool,
            wake: Arc::new(Notify::new()),
        }
    }

    /// Queues a scan in the caller's transaction; call [`Queue::wake`] after it commits.
    pub fn submit_in(
        conn: &mut AnyConnection,
        submission: &Submission,
    ) -> diesel::QueryResult<(ScanRow, bool)> {
        store::scans::enqueue(conn, &submission.row(Timestamp::now().micros()))
    }

    /// Queues a scan; returns the scan that stands (an earlier one with the same idempotency key,
    /// or the image's pending scan) and whether it is new.
    pub async fn submit(&self, submission: Submission) -> Result<(ScanRow, bool), StoreError> {
        let queued = store::run(&self.pool, move |c| Self::submit_in(c, &submission)).await?;
        self.wake();
        Ok(queued)
    }

    /// Queues re-assessments of stored images (pending ones are left as they are); returns how
    /// many were queued.
    pub async fn submit_reassessments(
        &self,
        images: Vec<ImageRow>,
        trigger: ScanTrigger,
    ) -> Result<usize, StoreError> {
        let queued = store::run(&self.pool, move |c| reassess_in(c, &images, trigger)).await?;
        if queued > 0 {
            self.wake();
        }
        Ok(queued)
    }

    pub fn wake(&self) {
        self.wake.notify_waiters();
    }
}

/// Queues re-assessments of `images` in the caller's connection (see [`Queue::submit_reassessments`]).
pub fn reassess_in(
    conn: &mut AnyConnection,
    images: &[ImageRow],
    trigger: ScanTrigger,
) -> diesel::QueryResult<usize> {
    let now = Timestamp::now().micros();
    let rows: Vec<ScanRow> = images
        .iter()
        .map(|image| ScanRow {
            id: store::new_ordered_id(),
            subscription_id: image.subscription_id.clone(),
            registry_id: image.registry_id.clone(),
            repository: image.repository.clone(),
            tag: None,
            digest: Some(image.digest.clone()),
            triggered_by: trigger.as_str().to_owned(),
            status: ScanStatus::Queued.as_str().to_owned(),
            attempts: 0,
            run_after: now,
            lease_owner: None,
            lease_until: None,
            pending_key: Some(store::scans::pending_key(
                &image.registry_id,
                &image.repository,
                Some(&image.digest),
                None,
            )),
            idempotency_key: None,
            error_code: None,
            error_message: None,
            summary: None,
            created_at: now,
            started_at: None,
            finished_at: None,
        })
        .collect();
    conn.transaction(|c| store::scans::enqueue_many(c, &rows))
}

/// What a finished scan found, as the scans API shows it.
#[derive(Debug, Clone, Default, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Summary {
    /// The first image's OS (`debian 12`), when known.
    pub os: Option<String>,
    pub package_count: usize,
    pub findings: SeverityCounts,
    pub patchable: usize,
    pub images: Vec<ImageSummary>,
    /// Index children that were not scanned, with the reason.
    pub skipped: Vec<String>,
}

#[derive(Debug, Clone, Default, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct SeverityCounts {
    #[serde(rename = "Critical")]
    pub critical: usize,
    #[serde(rename = "High")]
    pub high: usize,
    #[serde(rename = "Medium")]
    pub medium: usize,
    #[serde(rename = "Low")]
    pub low: usize,
}

impl SeverityCounts {
    fn add(&mut self, severity: Severity) {
        match severity {
            Severity::Critical => self.critical += 1,
            Severity::High => self.high += 1,
            Severity::Medium => self.medium += 1,
            Severity::Low => self.low += 1,
        }
    }
}

#[derive(Debug, Clone, Default, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ImageSummary {
    pub digest: String,
    pub platform: String,
    pub os: Option<String>,
    pub package_count: usize,
    pub findings: usize,
    /// The inventory was already stored: no layer was pulled.
    pub reused_inventory: bool,
    /// Set when the image's OS has no advisory ecosystem.
    pub unsupported_os: Option<String>,
}

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
        store::run(&self.engine.pool, move |c| {
            let now = Timestamp::now().micros();
            let Some(first) = store::scans::claim(c, &owner, now, now + lease)? else {
                return Ok(Vec::new());
            };
            let batch = first.attempts == 1 && trigger_of(&first).is_reassessment();
            let mut scans = vec![first];
            if batch {
                scans.extend(store::scans::claim_reassessments(
                    c,
                    &owner,
                    now,
                    now + lease,
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
                Some(result) => result,
                None => {
                    tracing::warn!(scan = %scan.id, "lease lost while scanning; another worker has the scan");
                    return;
                }
            }
        };
        let (owner, settings, id) = (self.owner.clone(), self.settings.clone(), scan.id.clone());
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
        log_end(&id, started, &stored);
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
        let rematched = match rematched {
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
        let (owner, settings) = (self.owner.clone(), self.settings.clone());
        let stored = store::run(&self.engine.pool, move |c| {
            complete_together(c, &done, &owner, &settings)
        })
        .await;
        for (n, id) in ids.iter().enumerate() {
            log_end(id, started, &stored.as_ref().map(|kept| kept[n]));
        }
        // Their analyzers changed since the inventory was stored (or it is gone): read them again.
        for scan in to_pull {
            self.run_started(scan, started).await;
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

    async fn assess(&self, scan: &ScanRow) -> Result<Assessment, Failure> {
        // A re-match reads the registry itself (and finds nothing when it is gone).
        if trigger_of(scan).is_reassessment()
            && let Some(result) = self
                .rematch_all(std::slice::from_ref(scan))
                .await
                .map_err(Failure::store)?
                .pop()
                .flatten()
        {
            return Ok(result);
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
        let result = engine_scan::scan(&self.engine, &client, &reference)
            .await
            .map_err(|e| Failure::scan(&e))?;
        Ok(Assessment { registry, result })
    }

    /// Matches the stored inventories of `scans` again, one database connection for all; `None`
    /// for a scan without a digest, without an inventory built by the current analyzers, or whose
    /// registry is gone.
    async fn rematch_all(&self, scans: &[ScanRow]) -> Result<Vec<Option<Assessment>>, StoreError> {
        let key = crate::scanner::analyzers::cache_key(&crate::scanner::analyzers::analyzer_ids(
            &self.engine.analyzers,
        ));
        let (scans, cache) = (scans.to_vec(), self.engine.cache.clone());
        store::run(&self.engine.pool, move |c| {
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
                    let Some(inventory) = inventories::load(c, digest, &key)? else {
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
                    let (report, _) = match_stored(c, &cache, &inventory)?;
                    Ok(Some(Assessment {
                        registry: registry.clone(),
                        result: ScanResult {
                            index_digest: None,
                            images: vec![ScannedImage {
                                manifest_digest,
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
                .collect()
        })
        .await
    }
}

fn trigger_of(scan: &ScanRow) -> ScanTrigger {
    ScanTrigger::parse(&scan.triggered_by).unwrap_or(ScanTrigger::Api)
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

/// Stores a scan's outcome in one transaction; false when the lease was lost (nothing is written
/// then).
fn complete(
    c: &mut AnyConnection,
    scan: &ScanRow,
    owner: &str,
    settings: &QueueSettings,
    outcome: Result<&Assessment, Failure>,
) -> diesel::QueryResult<bool> {
    c.transaction(|c| {
        let now = Timestamp::now().micros();
        // Writing first takes SQLite's write lock now: a transaction that read first and wrote
        // later would fail with "database is locked" when another writer committed in between,
        // instead of waiting its turn. It also checks the lease early.
        if !store::scans::hold(c, std::slice::from_ref(&scan.id), owner)? {
            return Err(diesel::result::Error::RollbackTransaction);
        }
        let kept = match outcome {
            Ok(assessment) => store_assessment(c, scan, owner, assessment, now)?,
            Err(failure) => store_failure(c, scan, owner, settings, failure, now)?,
        };
        if !kept {
            return Err(diesel::result::Error::RollbackTransaction);
        }
        Ok(true)
    })
    .or_else(|e| match e {
        diesel::result::Error::RollbackTransaction => Ok(false),
        e => Err(e),
    })
}

/// Stores many assessed scans in one transaction; when that fails (a lease lost, a conflict),
/// each is stored on its own, so one scan's trouble does not hold back the others. Returns, per
/// scan, whether its result was kept.
fn complete_together(
    c: &mut AnyConnection,
    done: &[(ScanRow, Assessment)],
    owner: &str,
    settings: &QueueSettings,
) -> diesel::QueryResult<Vec<bool>> {
    let ids: Vec<String> = done.iter().map(|(scan, _)| scan.id.clone()).collect();
    let together = c.transaction(|c| {
        let now = Timestamp::now().micros();
        // Written first for the reasons given in `complete`.
        if !store::scans::hold(c, &ids, owner)? {
            return Err(diesel::result::Error::RollbackTransaction);
        }
        for (scan, assessment) in done {
            if !store_assessment(c, scan, owner, assessment, now)? {
                return Err(diesel::result::Error::RollbackTransaction);
            }
        }
        Ok(())
    });
    match together {
        Ok(()) => Ok(vec![true; done.len()]),
        Err(e) => {
            if !matches!(e, diesel::result::Error::RollbackTransaction) {
                tracing::warn!(scans = done.len(), error = %e, "cannot store the batch together; storing each scan alone");
            }
            done.iter()
                .map(|(scan, assessment)| complete(c, scan, owner, settings, Ok(assessment)))
                .collect()
        }
    }
}

struct Assessment {
    registry: RegistryRow,
    result: ScanResult,
}

#[derive(Debug, Clone)]
struct Failure {
    code: String,
    message: String,
    retryable: bool,
}

impl Failure {
    fn registry_gone() -> Self {
        Self {
            code: "RegistryNotConnected".to_owned(),
            message: "the registry was disconnected".to_owned(),
            retryable: false,
        }
    }

    fn store(e: StoreError) -> Self {
        Self {
            code: "DatabaseUnavailable".to_owned(),
            message: e.to_string(),
            retryable: true,
        }
    }

    fn scan(e: &ScanError) -> Self {
        let code = e.code();
        Self {
            code: code.to_owned(),
            message: e.to_string(),
            retryable: retryable(code),
        }
    }
}

/// Errors that may pass: the registry or the database away, throttling, a damaged download.
fn retryable(code: &str) -> bool {
    matches!(
        code,
        "RegistryUnavailable"
            | "TooManyRequests"
            | "DatabaseUnavailable"
            | "LayerTruncated"
            | "DigestMismatch"
            | "BlobSizeMismatch"
            | "Interrupted"
    )
}

fn os_name(os: Option<&crate::scanner::advisories::ecosystem::OsRelease>) -> Option<String> {
    os.map(|os| match &os.version_id {
        Some(v) => format!("{} {v}", os.id),
        None => os.id.clone(),
    })
}

fn store_assessment(
    c: &mut AnyConnection,
    scan: &ScanRow,
    owner: &str,
    assessment: &Assessment,
    now: i64,
) -> diesel::QueryResult<bool> {
    let Assessment { registry, result } = assessment;
    let trigger = trigger_of(scan);
    let mut summary = Summary {
        skipped: result
            .skipped
            .iter()
            .map(|s| format!("{}: {}", s.platform, s.reason))
            .collect(),
        ..Summary::default()
    };
    let single = result.images.len() == 1 && result.index_digest.is_none();
    for scanned in &result.images {
        let digest = scanned.manifest_digest.to_string();
        let os = os_name(scanned.inventory.os.as_ref());
        let template = ImageRow {
            id: store::new_id(),
            registry_id: registry.id.clone(),
            subscription_id: registry.subscription_id.clone(),
            repository: scan.repository.clone(),
            digest: digest.clone(),
            index_digest: result.index_digest.as_ref().map(ToString::to_string),
            platform: Some(scanned.platform.clone()).filter(|p| !p.is_empty()),
            os: os.clone(),
            health: "NotApplicable".to_owned(),
            health_reason: Some(health_cause::NOT_SCANNED.to_owned()),
            pushed_at: None,
            pulled_at: None,
            scanned_at: None,
            running: false,
            created_at: now,
        };
        // A new row for an image a cluster already reported (a Runtime scan) starts out running.
        let digests: Vec<String> = std::iter::once(digest.clone())
            .chain(template.index_digest.clone())
            .collect();
        let template = ImageRow {
            running: store::running_images::runs(
                c,
                &registry.subscription_id,
                &registry.login_server,
                &scan.repository,
                &digests,
            )?,
            ..template
        };
        let image = store::images::ensure(c, &template, None)?;
        let rows = findings::rows(registry, &image, &scanned.report.matches, now);
        store::findings::merge(c, &image.id, &rows, now)?;
        let (health, reason) = if !rows.is_empty() {
            ("Unhealthy", None)
        } else if scanned.report.unsupported_os.is_some() {
            ("NotApplicable", Some(health_cause::UNSUPPORTED_OS))
        } else {
            ("Healthy", None)
        };
        store::images::record_assessment(
            c,
            &image.id,
            &Assessed {
                index_digest: template.index_digest.clone(),
                platform: template.platform.clone(),
                os: os.clone(),
                health: health.to_owned(),
                health_reason: reason.map(str::to_owned),
                scanned_at: now,
            },
        )?;
        if single && let Some(tag) = &scan.tag {
            store::images::set_tag(
                c,
                &store::images::ImageTagRow {
                    registry_id: registry.id.clone(),
                    repository: scan.repository.clone(),
                    tag: tag.clone(),
                    image_id: image.id.clone(),
                    updated_at: now,
                },
            )?;
        }
        if !trigger.is_reassessment() {
            store::billing::bill_once(
                c,
                &store::billing::BillingRow {
                    id: store::new_id(),
                    subscription_id: registry.subscription_id.clone(),
                    digest: digest.clone(),
                    registry_id: registry.id.clone(),
                    repository: scan.repository.clone(),
                    scan_id: scan.id.clone(),
                    billed_at: now,
                },
            )?;
        }
        let mut counts = SeverityCounts::default();
        for m in &scanned.report.matches {
            counts.add(m.severity);
        }
        summary.findings.critical += counts.critical;
        summary.findings.high += counts.high;
        summary.findings.medium += counts.medium;
        summary.findings.low += counts.low;
        summary.patchable += scanned
            .report
            .matches
            .iter()
            .filter(|m| m.patchable)
            .count();
        summary.package_count += scanned.inventory.packages.len();
        if summary.os.is_none() {
            summary.os = os.clone();
        }
        summary.images.push(ImageSummary {
            digest,
            platform: scanned.platform.clone(),
            os,
            package_count: scanned.inventory.packages.len(),
            findings: rows.len(),
            reused_inventory: scanned.reused,
            unsupported_os: scanned.report.unsupported_os.clone(),
        });
    }
    let digest = result
        .index_digest
        .as_ref()
        .map(ToString::to_string)
        .or_else(|| result.images.first().map(|i| i.manifest_digest.to_string()))
        .or_else(|| scan.digest.clone());
    let summary = serde_json::to_string(&summary).unwrap_or_default();
    store::scans::finish(
        c,
        &scan.id,
        owner,
        now,
        &Outcome::Succeeded { digest, summary },
    )
}

fn store_failure(
    c: &mut AnyConnection,
    scan: &ScanRow,
    owner: &str,
    settings: &QueueSettings,
    failure: Failure,
    now: i64,
) -> diesel::QueryResult<bool> {
    let attempts = u32::try_from(scan.attempts).unwrap_or(0);
    if failure.retryable && attempts < settings.max_attempts {
        let delay = settings
            .retry_delay
            .saturating_mul(2u32.saturating_pow(attempts.saturating_sub(1)))
            .min(Duration::from_secs(3600));
        tracing::warn!(scan = %scan.id, code = %failure.code, error = %failure.message, attempt = attempts, retry_in = ?delay, "scan failed; will retry");
        return store::scans::finish(
            c,
            &scan.id,
            owner,
            now,
            &Outcome::Retry {
                run_after: now + Timestamp::span_micros(delay),
                code: failure.code,
                message: failure.message,
            },
        );
    }
    tracing::warn!(scan = %scan.id, code = %failure.code, error = %failure.message, attempts, "scan failed");
    if let Some(digest) = &scan.digest
        && let Some(image) =
            store::images::find_by_digest(c, &scan.registry_id, &scan.repository, digest)?
    {
        store::images::record_failure(c, &image.id, health_cause::SCAN_FAILED)?;
    }
    store::scans::finish(
        c,
        &scan.id,
        owner,
        now,
        &Outcome::Failed {
            code: failure.code,
            message: failure.message,
        },
    )
}
