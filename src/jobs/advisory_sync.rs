//! Advisory sources kept current on a schedule: OSV ecosystem exports (`osv:Debian`), zips at a
//! URL, local directories, and the feeds (`kev`, `epss`, `debian-tracker`, `nvd`).
//!
//! A sync claims its source's row by lease (`store::advisory_sources::claim`, one compare-and-set
//! UPDATE), so of several processes on one database exactly one syncs a source at a time; the
//! lease is renewed while it works and given back with the outcome. The first sync of an `osv:`
//! source downloads `<base>/<ECOSYSTEM>/all.zip` (a conditional GET: a 304 means nothing to do);
//! later ones read `modified_id.csv` (newest first) and fetch only `<ID>.json` of the records
//! modified since the cursor, falling back to the zip when more than [`MAX_INCREMENTAL`] changed
//! or the list is missing. Every download is streamed to a temporary file and checked (it opens
//! and holds at least one OSV record) before anything is imported, so a truncated or foreign file,
//! an HTTP error or a timeout leaves the stored data as it was; the failure is recorded with the
//! source and retried with a doubling delay. Records are imported by `import_advisories` (by
//! `modified`, withdrawn ones as records carrying `withdrawn`; nothing is deleted), and the
//! images holding changed packages are queued for an `AdvisoryUpdate` re-match.

use std::collections::BTreeSet;
use std::io::BufRead;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use serde::Serialize;
use tokio_util::sync::CancellationToken;
use utoipa::ToSchema;

use super::advisory_sources::{self, Downloaded, Source, SourceError, Validators};
use super::feeds::FeedLoader;
use super::import_advisories::{self, ImportSummary, Rejection};
use super::queue::Queue;
use super::rescans;
use super::{coverage, exploit_intel, severity_sources};
use crate::domain::{Feed, SourceName, Timestamp};
use crate::scanner::advisories::ecosystem::{self, OsRelease, os_ecosystems};
use crate::scanner::advisories::matcher::PackageKind;
use crate::scanner::advisories::osv;
use crate::store::advisory_sources::{SourceRow, Success};
use crate::store::{self, AnyConnection, Pool, StoreError};

/// Records listed as changed above which a sync downloads the whole zip instead.
pub const MAX_INCREMENTAL: usize = 1000;
/// Record files fetched at once by an incremental sync.
const PARALLEL_FETCHES: usize = 8;
/// The longest wait before a failing source is tried again.
const MAX_BACKOFF: Duration = Duration::from_secs(6 * 3600);
/// The largest single record file fetched by an incremental sync.
const MAX_RECORD_DOWNLOAD: u64 = advisory_sources::MAX_RECORD_BYTES;

/// Which sources to keep current.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceSelection {
    /// The base OSV ecosystems of every package in the stored inventories.
    pub auto: bool,
    pub named: Vec<SourceName>,
}

impl SourceSelection {
    /// `auto`, source names, or both, comma-separated (`auto,kev,epss`).
    pub fn parse(list: &str) -> Result<Self, String> {
        let mut selection = Self {
            auto: false,
            named: Vec::new(),
        };
        for item in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            if item == "auto" {
                selection.auto = true;
            } else {
                let name = SourceName::parse(item).map_err(|e| e.to_string())?;
                if !selection.named.contains(&name) {
                    selection.named.push(name);
                }
            }
        }
        Ok(selection)
    }
}

/// Where each feed is downloaded from (an http(s) URL or a path).
#[derive(Debug, Clone)]
pub struct FeedLocations {
    pub kev: String,
    pub epss: String,
    pub debian_tracker: String,
    pub nvd: String,
}

impl FeedLocations {
    pub const KEV: &'static str =
        "https://www.cisa.gov/sites/default/files/feeds/known_exploited_vulnerabilities.json";
    pub const EPSS: &'static str = "https://epss.empiricalsecurity.com/epss_scores-current.csv.gz";
    pub const DEBIAN_TRACKER: &'static str =
        "https://security-tracker.debian.org/tracker/data/json";
    pub const NVD: &'static str =
        "https://nvd.nist.gov/feeds/json/cve/2.0/nvdcve-2.0-modified.json.gz";

    fn of(&self, feed: Feed) -> &str {
        match feed {
            Feed::Kev => &self.kev,
            Feed::Epss => &self.epss,
            Feed::DebianTracker => &self.debian_tracker,
            Feed::Nvd => &self.nvd,
        }
    }
}

impl Default for FeedLocations {
    fn default() -> Self {
        Self {
            kev: Self::KEV.to_owned(),
            epss: Self::EPSS.to_owned(),
            debian_tracker: Self::DEBIAN_TRACKER.to_owned(),
            nvd: Self::NVD.to_owned(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct SyncSettings {
    pub sources: SourceSelection,
    /// Where OSV's export lives (`<base>/<ECOSYSTEM>/all.zip`, …).
    pub osv_base: url::Url,
    pub feeds: FeedLocations,
    /// Whether `serve` syncs by itself (on start, then when sources fall due).
    pub background: bool,
    /// How often OSV sources, zips and directories are synced.
    pub interval: Duration,
    /// How often the feeds are synced.
    pub feed_interval: Duration,
    /// The first retry's delay after a failure; doubled for each further one, up to 6 hours.
    pub retry: Duration,
    /// Connecting, and waiting for each read of a download, give up after this long.
    pub timeout: Duration,
    /// How long a claim on a source lasts (renewed while the sync runs).
    pub lease: Duration,
}

pub const OSV_BASE: &str = "https://osv-vulnerabilities.storage.googleapis.com";

/// The flags' defaults, except that background syncing is off: settings built in code (tests,
/// benchmarks) never reach the internet unless they ask to.
impl Default for SyncSettings {
    fn default() -> Self {
        Self {
            sources: SourceSelection {
                auto: true,
                named: Vec::new(),
            },
            osv_base: url::Url::parse(OSV_BASE).unwrap_or_else(|_| unreachable!()),
            feeds: FeedLocations::default(),
            background: false,
            interval: Duration::from_secs(3600),
            feed_interval: Duration::from_secs(24 * 3600),
            retry: Duration::from_secs(60),
            timeout: Duration::from_secs(60),
            lease: Duration::from_secs(300),
        }
    }
}

/// The loader of each feed (written beside the feed's tables); a feed without one would fail its
/// sync with a status saying so.
pub fn feed_loader(feed: Feed) -> Option<FeedLoader> {
    match feed {
        Feed::Kev => Some(exploit_intel::load_kev),
        Feed::Epss => Some(exploit_intel::load_epss),
        Feed::DebianTracker => Some(severity_sources::load_debian_tracker),
        Feed::Nvd => Some(severity_sources::load_nvd),
    }
}

/// How a sync of one source ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
pub enum SyncResult {
    /// New or changed data was stored.
    Updated,
    /// The source had nothing new (its freshness still moved).
    Unchanged,
    /// Nothing was stored; the error is in the status and the sync is retried later.
    Failed,
    /// Another process is syncing this source right now.
    Busy,
    /// Not due yet (scheduled syncs only).
    NotDue,
}

/// What a sync of one source did.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SyncReport {
    pub source: String,
    pub result: SyncResult,
    /// Records the source holds (as of this sync).
    pub records: u64,
    /// Records new to the database or replacing older versions.
    pub changed: u64,
    /// Records refused, each with its id and reason; the rest was stored.
    pub rejected: Vec<Rejection>,
    /// Stored images queued for re-assessment because advisories for their packages changed.
    pub images_queued: usize,
    /// Files (or records) downloaded.
    pub downloads: u64,
    pub error: Option<String>,
    pub seconds: f64,
}

impl SyncReport {
    fn new(source: &SourceName, result: SyncResult) -> Self {
        Self {
            source: source.to_string(),
            result,
            records: 0,
            changed: 0,
            rejected: Vec::new(),
            images_queued: 0,
            downloads: 0,
            error: None,
            seconds: 0.0,
        }
    }
}

/// Receives progress: the source and the records read so far.
pub type SyncProgress = Arc<dyn Fn(&str, u64) + Send + Sync>;

/// What a source's work produced, before it is recorded.
struct Done {
    changed: bool,
    records: i64,
    newest: Option<i64>,
    validators: Validators,
    cursor: Option<String>,
    import: Option<ImportSummary>,
    feed_changed: u64,
    downloads: u64,
}

impl Done {
    /// Nothing new: everything stays as the last success left it.
    fn unchanged(row: &SourceRow, downloads: u64) -> Self {
        Self {
            changed: false,
            records: row.records,
            newest: row.newest_modified,
            validators: validators_of(row),
            cursor: row.sync_cursor.clone(),
            import: None,
            feed_changed: 0,
            downloads,
        }
    }
}

fn validators_of(row: &SourceRow) -> Validators {
    Validators {
        etag: row.etag.clone(),
        last_modified: row.last_modified.clone(),
    }
}

/// Syncs sources as one owner (a process): its lease claims carry `owner`.
#[derive(Clone)]
pub struct Syncer {
    pool: Pool,
    settings: Arc<SyncSettings>,
    owner: String,
    queue: Option<Queue>,
    client: reqwest::Client,
    /// The `auto` sources, kept while the stored inventories stay the same (reading every
    /// package's kind costs a pass over the packages).
    auto: Arc<std::sync::Mutex<Option<AutoSources>>>,
}

type AutoSources = ((i64, Option<i64>), Vec<SourceName>);

impl Syncer {
    /// `queue`, when given, is woken after a sync queued re-assessments.
    pub fn new(pool: Pool, settings: SyncSettings, queue: Option<Queue>) -> Result<Self, String> {
        let client = advisory_sources::client(settings.timeout, Some(settings.timeout))?;
        Ok(Self {
            pool,
            settings: Arc::new(settings),
            owner: format!("sync-{}", store::new_id()),
            queue,
            client,
            auto: Arc::default(),
        })
    }

    pub fn settings(&self) -> &SyncSettings {
        &self.settings
    }

    /// The configured sources: those named, and with `auto` the base OSV ecosystem of every
    /// package in the stored inventories.
    pub async fn configured(&self) -> Result<Vec<SourceName>, StoreError> {
        let mut names: BTreeSet<SourceName> = self.settings.sources.named.iter().cloned().collect();
        if self.settings.sources.auto {
            names.extend(self.auto_sources().await?);
        }
        Ok(names.into_iter().collect())
    }

    async fn auto_sources(&self) -> Result<Vec<SourceName>, StoreError> {
        let cached = self.auto.lock().ok().and_then(|c| c.clone());
        let sources = store::run(&self.pool, move |c| {
            let fingerprint = store::inventories::fingerprint(c)?;
            match cached {
                Some((seen, sources)) if seen == fingerprint => Ok((fingerprint, sources)),
                _ => Ok((fingerprint, inventory_ecosystems(c)?)),
            }
        })
        .await?;
        if let Ok(mut cache) = self.auto.lock() {
            *cache = Some(sources.clone());
        }
        Ok(sources.1)
    }

    /// Syncs `names` now, whether due or not (a source another process is syncing is reported
    /// `Busy`); one after the other.
    pub async fn sync(
        &self,
        names: &[SourceName],
        progress: Option<SyncProgress>,
    ) -> Vec<SyncReport> {
        let mut reports = Vec::new();
        for name in names {
            reports.push(self.sync_one(name, true, progress.clone()).await);
        }
        reports
    }

    /// Syncs the configured sources that are due.
    pub async fn sync_due(&self) -> Result<Vec<SyncReport>, StoreError> {
        let mut reports = Vec::new();
        for name in self.configured().await? {
            let report = self.sync_one(&name, false, None).await;
            if report.result != SyncResult::NotDue {
                reports.push(report);
            }
        }
        Ok(reports)
    }

    fn interval_of(&self, source: &SourceName) -> Duration {
        match source {
            SourceName::Feed(_) => self.settings.feed_interval,
            _ => self.settings.interval,
        }
    }

    async fn sync_one(
        &self,
        source: &SourceName,
        force: bool,
        progress: Option<SyncProgress>,
    ) -> SyncReport {
        let started = std::time::Instant::now();
        let name = source.to_string();
        let now = Timestamp::now().micros();
        let until = now + Timestamp::span_micros(self.settings.lease);
        let (claim_name, owner) = (name.clone(), self.owner.clone());
        let claimed = store::run(&self.pool, move |c| {
            store::transaction(c, |c| {
                store::advisory_sources::claim(c, &claim_name, &owner, now, until, force)
            })
        })
        .await;
        let row = match claimed {
            Ok(Some(row)) => row,
            Ok(None) if force => return SyncReport::new(source, SyncResult::Busy),
            Ok(None) => {
                // Not due, or due but claimed by another process: either way not ours now.
                let name = name.clone();
                let busy = store::run(&self.pool, move |c| store::advisory_sources::find(c, &name))
                    .await
                    .ok()
                    .flatten()
                    .is_some_and(|r| {
                        r.lease_owner.is_some() && r.lease_until.is_some_and(|u| u >= now)
                    });
                let result = if busy {
                    SyncResult::Busy
                } else {
                    SyncResult::NotDue
                };
                return SyncReport::new(source, result);
            }
            Err(e) => {
                let mut report = SyncReport::new(source, SyncResult::Failed);
                report.error = Some(format!("cannot claim the source: {e}"));
                return report;
            }
        };
        let renewing = self.keep_lease(&name);
        let work = self.work(source, &row, progress).await;
        renewing.cancel();
        let mut report = self.record(source, &row, work).await;
        report.seconds = started.elapsed().as_secs_f64();
        match report.result {
            SyncResult::Failed => {
                tracing::warn!(source = %name, error = report.error.as_deref().unwrap_or(""), "advisory source sync failed")
            }
            _ => {
                tracing::info!(source = %name, result = ?report.result, records = report.records, changed = report.changed,
                images_queued = report.images_queued, downloads = report.downloads, "advisory source synced")
            }
        }
        report
    }

    /// Renews the lease on `name` at a third of its length until the token is cancelled.
    fn keep_lease(&self, name: &str) -> CancellationToken {
        let stop = CancellationToken::new();
        let (pool, name, owner, lease) = (
            self.pool.clone(),
            name.to_owned(),
            self.owner.clone(),
            self.settings.lease,
        );
        let token = stop.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    () = tokio::time::sleep(lease / 3) => {}
                    () = token.cancelled() => return,
                }
                let (name, owner) = (name.clone(), owner.clone());
                let until = Timestamp::now().micros() + Timestamp::span_micros(lease);
                let renewed = store::run(&pool, move |c| {
                    store::advisory_sources::renew(c, &name, &owner, until)
                })
                .await;
                if !matches!(renewed, Ok(true)) {
                    tracing::warn!(
                        ?renewed,
                        "the lease on an advisory source could not be renewed"
                    );
                }
            }
        });
        stop
    }

    /// Stores the outcome and gives the lease back.
    async fn record(
        &self,
        source: &SourceName,
        row: &SourceRow,
        work: Result<Done, String>,
    ) -> SyncReport {
        let now = Timestamp::now().micros();
        let name = source.to_string();
        let owner = self.owner.clone();
        match work {
            Ok(done) => {
                let mut report = SyncReport::new(
                    source,
                    if done.changed {
                        SyncResult::Updated
                    } else {
                        SyncResult::Unchanged
                    },
                );
                report.records = u64::try_from(done.records).unwrap_or(0);
                report.downloads = done.downloads;
                report.changed = done.feed_changed;
                if let Some(summary) = &done.import {
                    report.changed = summary.added + summary.updated;
                    report.rejected = summary.rejected.clone();
                }
                let success = Success {
                    at: now,
                    next_run_at: now + Timestamp::span_micros(self.interval_of(source)),
                    records: done.records,
                    newest_modified: done.newest,
                    changed: i64::try_from(report.changed).unwrap_or(i64::MAX),
                    etag: done.validators.etag.clone(),
                    last_modified: done.validators.last_modified.clone(),
                    sync_cursor: done.cursor.clone(),
                };
                let hook_source = source.clone();
                let recorded = store::run(&self.pool, move |c| {
                    store::transaction(c, |c| {
                        after_successful_sync(c, &hook_source, &owner, &success)
                    })
                })
                .await;
                match recorded {
                    Ok(queued) => {
                        report.images_queued += queued;
                        if queued > 0
                            && let Some(queue) = &self.queue
                        {
                            queue.wake();
                        }
                    }
                    Err(e) => {
                        report.error = Some(format!(
                            "synced, but the outcome could not be recorded: {e}"
                        ));
                    }
                }
                if let Some(summary) = &done.import {
                    report.images_queued += rescans::after_import(self.queue.as_ref(), summary);
                }
                report
            }
            Err(error) => {
                let backoff = self
                    .settings
                    .retry
                    .saturating_mul(2u32.saturating_pow(u32::try_from(row.failures).unwrap_or(0)))
                    .min(MAX_BACKOFF);
                let next = now + Timestamp::span_micros(backoff);
                let stored = error.clone();
                let recorded = store::run(&self.pool, move |c| {
                    store::advisory_sources::record_failure(c, &name, &owner, &stored, next)
                })
                .await;
                if let Err(e) = recorded {
                    tracing::warn!(error = %e, "cannot record an advisory source's failure");
                }
                let mut report = SyncReport::new(source, SyncResult::Failed);
                report.records = u64::try_from(row.records).unwrap_or(0);
                report.error = Some(error);
                report
            }
        }
    }

    async fn work(
        &self,
        source: &SourceName,
        row: &SourceRow,
        progress: Option<SyncProgress>,
    ) -> Result<Done, String> {
        match source {
            SourceName::Osv(ecosystem) => self.sync_osv(source, ecosystem, row, progress).await,
            SourceName::Archive(url) => {
                self.sync_zip(source, url, Some(&validators_of(row)), row, progress)
                    .await
            }
            SourceName::Local(path) => {
                let done = self.import(source, path.clone(), 0, progress).await?;
                Ok(done)
            }
            SourceName::Feed(feed) => self.sync_feed(*feed, row).await,
        }
    }

    fn osv_url(&self, ecosystem: &str, file: &str) -> Result<url::Url, String> {
        osv_url(&self.settings.osv_base, ecosystem, file)
    }

    async fn sync_osv(
        &self,
        source: &SourceName,
        ecosystem: &str,
        row: &SourceRow,
        progress: Option<SyncProgress>,
    ) -> Result<Done, String> {
        let zip = self.osv_url(ecosystem, "all.zip")?;
        let cursor = row
            .sync_cursor
            .as_deref()
            .filter(|_| row.last_success_at.is_some());
        let Some(cursor) = cursor else {
            return self
                .sync_zip(source, &zip, Some(&validators_of(row)), row, progress)
                .await;
        };
        let list = self.osv_url(ecosystem, "modified_id.csv")?;
        match self.changed_since(&list, cursor).await? {
            Changes::Listed(changed) if changed.is_empty() => Ok(Done::unchanged(row, 1)),
            Changes::Listed(changed) => {
                self.fetch_records(source, ecosystem, changed, row, progress)
                    .await
            }
            // So many changed that one zip is cheaper; it is newer than the validators say
            // (the list moved on), so ask for it unconditionally.
            Changes::TooMany => {
                let mut done = self.sync_zip(source, &zip, None, row, progress).await?;
                done.downloads += 1;
                Ok(done)
            }
            // A mirror without the list: the zip's validators tell whether anything changed.
            Changes::NoList => {
                let mut done = self
                    .sync_zip(source, &zip, Some(&validators_of(row)), row, progress)
                    .await?;
                done.downloads += 1;
                Ok(done)
            }
        }
    }

    /// The ids `modified_id.csv` lists as modified after `cursor` (newest first), with the
    /// newest time among them.
    async fn changed_since(&self, list: &url::Url, cursor: &str) -> Result<Changes, String> {
        let cursor = osv::timestamp(cursor)
            .map_err(|e| format!("the stored cursor {cursor:?} is not a time: {e}"))?;
        let downloaded = advisory_sources::download_with(
            &self.client,
            list,
            import_advisories::MAX_DOWNLOAD_BYTES,
            None,
        )
        .await;
        let file = match downloaded {
            Ok(Downloaded::Fresh { file, .. }) => file,
            Ok(Downloaded::NotModified) => return Ok(Changes::NoList),
            Err(SourceError::Status {
                status: 404 | 403, ..
            }) => return Ok(Changes::NoList),
            Err(e) => return Err(e.to_string()),
        };
        let list = list.to_string();
        tokio::task::spawn_blocking(move || read_changes(&list, file.path(), cursor))
            .await
            .map_err(|e| format!("reading the list of changes failed: {e}"))?
    }

    /// Fetches the listed records one file each, then imports them; nothing is imported unless
    /// every fetch succeeded (the cursor stays, so the next sync asks again).
    async fn fetch_records(
        &self,
        source: &SourceName,
        ecosystem: &str,
        changed: Vec<(Timestamp, String)>,
        row: &SourceRow,
        progress: Option<SyncProgress>,
    ) -> Result<Done, String> {
        let newest = changed.iter().map(|(t, _)| *t).max();
        let mut urls = Vec::with_capacity(changed.len());
        for (_, id) in &changed {
            urls.push((id.clone(), self.osv_url(ecosystem, &format!("{id}.json"))?));
        }
        let fetched: Vec<Result<(String, tempfile::NamedTempFile), String>> =
            futures_util::stream::iter(urls)
                .map(|(id, url)| {
                    let client = self.client.clone();
                    async move {
                        match advisory_sources::download_with(
                            &client,
                            &url,
                            MAX_RECORD_DOWNLOAD,
                            None,
                        )
                        .await
                        {
                            Ok(Downloaded::Fresh { file, .. }) => Ok((id, file)),
                            Ok(Downloaded::NotModified) => Err(format!("{url} answered 304")),
                            Err(e) => Err(e.to_string()),
                        }
                    }
                })
                .buffer_unordered(PARALLEL_FETCHES)
                .collect()
                .await;
        let mut files = Vec::with_capacity(fetched.len());
        for result in fetched {
            files.push(result?);
        }
        files.sort_by(|a, b| a.0.cmp(&b.0));
        let downloads = files.len() as u64 + 1;
        let pool = self.pool.clone();
        let name = source.to_string();
        let summary = tokio::task::spawn_blocking(move || {
            let named: Vec<(String, PathBuf)> = files
                .iter()
                .map(|(id, file)| (format!("{name}:{id}.json"), file.path().to_path_buf()))
                .collect();
            let report = progress_fn(progress, &name);
            import_advisories::import_files(&pool, &named, &*report)
        })
        .await
        .map_err(|e| format!("the import failed: {e}"))?
        .map_err(|e| e.to_string())?;
        let changed = summary.added + summary.updated;
        Ok(Done {
            changed: changed > 0,
            records: row.records + i64::try_from(summary.added).unwrap_or(0),
            newest: row
                .newest_modified
                .max(summary.newest_modified.map(Timestamp::micros)),
            validators: validators_of(row),
            cursor: newest
                .map(Timestamp::rfc3339)
                .or_else(|| row.sync_cursor.clone()),
            import: Some(summary),
            feed_changed: 0,
            downloads,
        })
    }

    /// Downloads a zip (conditionally, with `validators`) and imports it; a 304 is no change.
    async fn sync_zip(
        &self,
        source: &SourceName,
        url: &url::Url,
        validators: Option<&Validators>,
        row: &SourceRow,
        progress: Option<SyncProgress>,
    ) -> Result<Done, String> {
        let validators = validators.filter(|v| v.etag.is_some() || v.last_modified.is_some());
        let downloaded = advisory_sources::download_with(
            &self.client,
            url,
            import_advisories::MAX_DOWNLOAD_BYTES,
            validators,
        )
        .await
        .map_err(|e| e.to_string())?;
        let (file, validators) = match downloaded {
            Downloaded::NotModified => return Ok(Done::unchanged(row, 1)),
            Downloaded::Fresh { file, validators } => (file, validators),
        };
        let mut done = self
            .import(source, file.path().to_path_buf(), 1, progress)
            .await?;
        drop(file);
        done.validators = validators;
        Ok(done)
    }

    /// Checks a local file or directory holds OSV records, then imports all of it; the cursor
    /// becomes the newest `modified` read.
    async fn import(
        &self,
        source: &SourceName,
        path: PathBuf,
        downloads: u64,
        progress: Option<SyncProgress>,
    ) -> Result<Done, String> {
        let pool = self.pool.clone();
        let name = source.to_string();
        let summary = tokio::task::spawn_blocking(move || {
            advisory_sources::require_records(&name, &path).map_err(|e| e.to_string())?;
            let report = progress_fn(progress, &name);
            import_advisories::import_files(&pool, &[(name.clone(), path)], &*report)
                .map_err(|e| e.to_string())
        })
        .await
        .map_err(|e| format!("the import failed: {e}"))??;
        let newest = summary.newest_modified;
        Ok(Done {
            changed: summary.added + summary.updated > 0,
            records: i64::try_from(summary.added + summary.updated + summary.unchanged)
                .unwrap_or(i64::MAX),
            newest: newest.map(Timestamp::micros),
            validators: Validators::default(),
            cursor: newest.map(Timestamp::rfc3339),
            import: Some(summary),
            feed_changed: 0,
            downloads,
        })
    }

    async fn sync_feed(&self, feed: Feed, row: &SourceRow) -> Result<Done, String> {
        let loader = feed_loader(feed).ok_or_else(|| {
            format!(
                "this build has no loader for the `{}` feed: it cannot be synced",
                feed.as_str()
            )
        })?;
        let location = Source::parse(self.settings.feeds.of(feed));
        let (path, validators, temp, downloads) = match &location {
            Source::Path(path) => (path.clone(), Validators::default(), None, 0),
            Source::Url(url) => {
                let downloaded = advisory_sources::download_with(
                    &self.client,
                    url,
                    import_advisories::MAX_DOWNLOAD_BYTES,
                    Some(&validators_of(row))
                        .filter(|v| v.etag.is_some() || v.last_modified.is_some()),
                )
                .await
                .map_err(|e| e.to_string())?;
                match downloaded {
                    Downloaded::NotModified => return Ok(Done::unchanged(row, 1)),
                    Downloaded::Fresh { file, validators } => {
                        (file.path().to_path_buf(), validators, Some(file), 1)
                    }
                }
            }
        };
        let pool = self.pool.clone();
        let loaded = tokio::task::spawn_blocking(move || loader(&pool, &path))
            .await
            .map_err(|e| format!("loading the feed failed: {e}"))??;
        drop(temp);
        Ok(Done {
            changed: loaded.changed > 0,
            records: i64::try_from(loaded.records).unwrap_or(i64::MAX),
            newest: loaded.newest.map(Timestamp::micros),
            validators,
            cursor: None,
            import: None,
            feed_changed: loaded.changed,
            downloads,
        })
    }
}

/// `<base>/<ECOSYSTEM>/<file>`, the ecosystem and the file each one percent-encoded path segment
/// (`Red%20Hat`, `RHSA-2024%3A4546.json`).
fn osv_url(base: &url::Url, ecosystem: &str, file: &str) -> Result<url::Url, String> {
    let mut url = base.clone();
    url.path_segments_mut()
        .map_err(|()| format!("{base} cannot be a base URL"))?
        .pop_if_empty()
        .push(ecosystem)
        .push(file);
    Ok(url)
}

/// What `modified_id.csv` says changed since the cursor.
enum Changes {
    /// These records (time, id), newest first.
    Listed(Vec<(Timestamp, String)>),
    /// More than [`MAX_INCREMENTAL`].
    TooMany,
    /// The list is missing or unreadable.
    NoList,
}

/// Reads `<ISO time>,<id>` lines (newest first) up to the first at or before `cursor`. An id
/// written `<ECOSYSTEM>/<id>` (the export's top-level list) is taken without its directory.
fn read_changes(
    name: &str,
    path: &std::path::Path,
    cursor: chrono::DateTime<chrono::Utc>,
) -> Result<Changes, String> {
    let file = std::fs::File::open(path).map_err(|e| format!("cannot read {name}: {e}"))?;
    let mut changed = Vec::new();
    for (number, line) in std::io::BufReader::new(file).lines().enumerate() {
        let line = line.map_err(|e| format!("cannot read {name}: {e}"))?;
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let parsed = line.split_once(',').and_then(|(time, id)| {
            let id = id.trim().rsplit('/').next().unwrap_or("").to_owned();
            Some((osv::timestamp(time.trim()).ok()?, id)).filter(|(_, id)| valid_id(id))
        });
        let Some((time, id)) = parsed else {
            tracing::warn!(
                list = name,
                line = number + 1,
                "unreadable line in the list of changes: downloading the zip instead"
            );
            return Ok(Changes::NoList);
        };
        if time <= cursor {
            break;
        }
        if changed.len() == MAX_INCREMENTAL {
            return Ok(Changes::TooMany);
        }
        changed.push((Timestamp::from_datetime(time), id));
    }
    Ok(Changes::Listed(changed))
}

/// An id that names one file in the export's directory.
fn valid_id(id: &str) -> bool {
    !id.is_empty() && id != "." && id != ".." && !id.contains(['/', '\\', '\0'])
}

fn progress_fn(progress: Option<SyncProgress>, name: &str) -> Box<dyn Fn(u64) + Sync + Send> {
    let name = name.to_owned();
    match progress {
        Some(progress) => Box::new(move |n| progress(&name, n)),
        None => Box::new(|_| {}),
    }
}

/// Called after every successful sync, in the transaction that records it and gives the lease
/// back: the source's status moves, and so does the freshness of an OSV export's ecosystem as a
/// whole (`Debian` covers every Debian release, even one with no records yet), even when nothing
/// changed. Returns the images queued because their data was missing or stale.
pub fn after_successful_sync(
    conn: &mut AnyConnection,
    source: &SourceName,
    owner: &str,
    success: &Success,
) -> diesel::QueryResult<usize> {
    if !store::advisory_sources::record_success(conn, &source.to_string(), owner, success)? {
        tracing::warn!(source = %source, "the sync's lease was taken over before its outcome was recorded");
    }
    match source {
        SourceName::Osv(ecosystem) => Ok(coverage::data_loaded(
            conn,
            std::slice::from_ref(ecosystem),
            Timestamp::from_micros(success.at),
        )?
        .images_queued),
        _ => Ok(0),
    }
}

/// The base OSV ecosystem (`Debian` for `Debian:12`, `Red Hat` for its streams) of every
/// package in the stored inventories, as `osv:` sources.
pub fn inventory_ecosystems(conn: &mut AnyConnection) -> diesel::QueryResult<Vec<SourceName>> {
    let mut names = BTreeSet::new();
    for (os, kind) in store::inventories::os_and_kinds(conn)? {
        let Ok(kind) = serde_json::from_value::<PackageKind>(serde_json::Value::String(kind))
        else {
            continue;
        };
        if let Some(ecosystem) = kind.language_ecosystem() {
            names.insert(ecosystem.to_owned());
            continue;
        }
        let os: Option<OsRelease> = os
            .as_deref()
            .and_then(|json| serde_json::from_str(json).ok());
        for ecosystem in os
            .as_ref()
            .and_then(os_ecosystems)
            .map(|e| e.ecosystems)
            .unwrap_or_default()
        {
            names.insert(ecosystem::base(&ecosystem).to_owned());
        }
    }
    Ok(names.into_iter().map(SourceName::Osv).collect())
}

/// Syncs `names` now (for a command that needs data before it can answer, such as a scan on a
/// database without advisories for an image's ecosystems), as a process of its own.
pub async fn sync_sources(
    pool: &Pool,
    settings: &SyncSettings,
    names: &[SourceName],
) -> Result<Vec<SyncReport>, String> {
    let syncer = Syncer::new(pool.clone(), settings.clone(), None)?;
    Ok(syncer.sync(names, None).await)
}

/// Syncs the configured sources on start and then whenever one falls due (checked every minute,
/// or every interval when shorter); does nothing when background syncing is off.
pub fn spawn_scheduler(syncer: Syncer, stop: CancellationToken) {
    if !syncer.settings.background {
        return;
    }
    let tick = syncer
        .settings
        .interval
        .min(syncer.settings.feed_interval)
        .min(Duration::from_secs(60))
        .max(Duration::from_secs(1));
    tokio::spawn(async move {
        while !stop.is_cancelled() {
            if let Err(e) = syncer.sync_due().await {
                tracing::warn!(error = %e, "cannot tell which advisory sources are due");
            }
            tokio::select! {
                () = tokio::time::sleep(tick) => {}
                () = stop.cancelled() => {}
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn changes(text: &str, cursor: &str) -> Changes {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("modified_id.csv");
        std::fs::write(&path, text).unwrap();
        read_changes("list", &path, osv::timestamp(cursor).unwrap()).unwrap()
    }

    #[test]
    fn the_list_is_read_down_to_the_cursor() {
        let list = "2024-05-03T00:00:00Z,DSA-3-1\n2024-05-02T00:00:00Z,Debian/DSA-2-1\n2024-05-01T00:00:00Z,DSA-1-1\n";
        let Changes::Listed(ids) = changes(list, "2024-05-01T00:00:00Z") else {
            panic!("listed")
        };
        let ids: Vec<&str> = ids.iter().map(|(_, id)| id.as_str()).collect();
        assert_eq!(ids, ["DSA-3-1", "DSA-2-1"]);
        assert!(
            matches!(changes(list, "2024-05-03T00:00:00Z"), Changes::Listed(v) if v.is_empty())
        );
        assert!(matches!(
            changes("garbage\n", "2024-05-03T00:00:00Z"),
            Changes::NoList
        ));
        assert!(matches!(
            changes("2024-05-04T00:00:00Z,Debian/..\n", "2024-05-03T00:00:00Z"),
            Changes::NoList
        ));
    }

    #[test]
    fn a_long_list_falls_back_to_the_zip() {
        let list: String = (0..=MAX_INCREMENTAL)
            .map(|i| format!("2024-06-01T00:00:00Z,ID-{i}\n"))
            .collect();
        assert!(matches!(
            changes(&list, "2024-05-01T00:00:00Z"),
            Changes::TooMany
        ));
    }

    #[test]
    fn selections_and_base_ecosystems() {
        let selection = SourceSelection::parse("auto, kev,osv:Debian,kev").unwrap();
        assert!(selection.auto);
        assert_eq!(
            selection.named,
            [
                SourceName::Feed(Feed::Kev),
                SourceName::Osv("Debian".into())
            ]
        );
        assert!(SourceSelection::parse("osv:").is_err());
        assert_eq!(ecosystem::base("Ubuntu:Pro:22.04:LTS"), "Ubuntu");
        assert_eq!(
            ecosystem::base("Red Hat:enterprise_linux:9::baseos"),
            "Red Hat"
        );
        assert_eq!(ecosystem::base("PyPI"), "PyPI");
    }

    #[test]
    fn osv_urls_encode_the_ecosystem() {
        let base = url::Url::parse("http://mirror.example/osv/").unwrap();
        assert_eq!(
            osv_url(&base, "Red Hat", "all.zip").unwrap().as_str(),
            "http://mirror.example/osv/Red%20Hat/all.zip"
        );
        let base = url::Url::parse(OSV_BASE).unwrap();
        assert_eq!(
            osv_url(&base, "crates.io", "RUSTSEC-2024-0001.json")
                .unwrap()
                .as_str(),
            "https://osv-vulnerabilities.storage.googleapis.com/crates.io/RUSTSEC-2024-0001.json"
        );
    }
}
