//! Imports OSV records into the advisory store: parse, then apply in batches, each in one transaction.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::Instant;

use serde::Serialize;
use utoipa::ToSchema;

use super::advisory_sources::{self, Entry, RecordFormat, Skipped, Source, SourceError};
use super::coverage;
use super::queue::reassess_in;
use crate::domain::{ScanTrigger, Timestamp};
use crate::scanner::advisories::osv::{self, Advisory};
use crate::scanner::advisories::severity;
use crate::store::advisories::{AdvisoryRow, AffectedRow, Applied, ImportRow, NewAdvisory};
use crate::store::{self, Pool, StoreError};

/// Records applied per transaction.
const BATCH: usize = 500;
/// The largest download accepted for a URL source.
pub const MAX_DOWNLOAD_BYTES: u64 = 4 * 1024 * 1024 * 1024;

/// What an import did.
#[derive(Debug, Clone, Default, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ImportSummary {
    /// What was imported (paths, URLs or `request body`).
    pub sources: Vec<String>,
    /// Records new to the database.
    pub added: u64,
    /// Records that replaced an older version (a newer `modified`).
    pub updated: u64,
    /// Records already stored as they are (or newer).
    pub unchanged: u64,
    /// Of the added and updated records, those marked withdrawn (they no longer match).
    pub withdrawn: u64,
    /// Records refused, each with its reason; the rest of the import went on.
    pub rejected: Vec<Rejection>,
    /// Parts of records that cannot be used (GIT ranges), counted by reason.
    pub ignored: Vec<IgnoredCount>,
    /// Files that were not records (neither `.json` nor `.yaml`/`.yml`), by name: their advisories
    /// were not imported.
    pub skipped_files: Vec<String>,
    pub seconds: f64,
    /// Stored images queued for re-assessment because advisories for their packages changed, or
    /// because they lacked the data this import brought.
    pub images_queued: usize,
    /// Ecosystems that had no advisory data before this import.
    pub newly_covered: Vec<String>,
    /// The (ecosystem, package) pairs whose advisories changed: the images to re-match.
    #[serde(skip)]
    pub changed_packages: BTreeSet<(String, String)>,
    /// The newest `modified` of the records read (stored or not).
    #[serde(skip)]
    pub newest_modified: Option<Timestamp>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Rejection {
    /// The record's id, when it could be read.
    pub id: Option<String>,
    /// The file (or `zip:entry`) it came from.
    pub file: String,
    pub reason: String,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct IgnoredCount {
    pub reason: String,
    pub count: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error(transparent)]
    Source(#[from] SourceError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Receives progress: records seen so far.
pub type Progress<'a> = &'a (dyn Fn(u64) + Sync);

/// Local files for an import: paths as given, URLs downloaded (streamed) to temporary files that
/// live as long as this value.
pub struct Prepared {
    pub files: Vec<(String, PathBuf)>,
    _downloads: Vec<tempfile::NamedTempFile>,
}

pub async fn prepare(sources: &[Source]) -> Result<Prepared, SourceError> {
    let mut files = Vec::new();
    let mut downloads = Vec::new();
    for source in sources {
        match source {
            Source::Path(path) => files.push((source.describe(), path.clone())),
            Source::Url(url) => {
                let file = advisory_sources::download(url, MAX_DOWNLOAD_BYTES).await?;
                files.push((source.describe(), file.path().to_path_buf()));
                downloads.push(file);
            }
        }
    }
    Ok(Prepared {
        files,
        _downloads: downloads,
    })
}

/// Imports files (a record, a directory of records or a zip each), named for messages. Blocking.
pub fn import_files(
    pool: &Pool,
    files: &[(String, PathBuf)],
    progress: Progress<'_>,
) -> Result<ImportSummary, ImportError> {
    let names = files.iter().map(|(name, _)| name.clone()).collect();
    let mut importer = Importer::new(pool, names, progress);
    for (name, path) in files {
        let mut skipped = Skipped::new();
        advisory_sources::for_each_entry(name, path, &mut skipped, &mut |entry| {
            importer.entry(entry)
        })?;
        importer.summary.skipped_files.extend(skipped);
    }
    importer.finish()
}

struct Importer<'a> {
    pool: &'a Pool,
    progress: Progress<'a>,
    started: Instant,
    started_at: Timestamp,
    batch: Vec<NewAdvisory>,
    /// The (ecosystem, package) pairs of each record in `batch`, in the same order.
    batch_packages: Vec<Vec<(String, String)>>,
    batch_withdrawn: Vec<bool>,
    /// The ecosystems of every stored record, changed or not: their data is current now.
    loaded_ecosystems: BTreeSet<String>,
    seen: u64,
    error: Option<ImportError>,
    summary: ImportSummary,
    ignored: std::collections::BTreeMap<String, u64>,
}

impl<'a> Importer<'a> {
    fn new(pool: &'a Pool, sources: Vec<String>, progress: Progress<'a>) -> Self {
        Self {
            pool,
            progress,
            started: Instant::now(),
            started_at: Timestamp::now(),
            batch: Vec::new(),
            batch_packages: Vec::new(),
            batch_withdrawn: Vec::new(),
            loaded_ecosystems: BTreeSet::new(),
            seen: 0,
            error: None,
            summary: ImportSummary {
                sources,
                ..ImportSummary::default()
            },
            ignored: Default::default(),
        }
    }

    fn entry(&mut self, entry: Result<Entry, SourceError>) {
        if self.error.is_some() {
            return;
        }
        let entry = match entry {
            Ok(entry) => entry,
            Err(e) => {
                self.summary.rejected.push(Rejection {
                    id: None,
                    file: source_name(&e),
                    reason: e.to_string(),
                });
                return;
            }
        };
        let records = match entry.format {
            RecordFormat::Json => osv::parse_records(&entry.bytes),
            RecordFormat::Yaml => osv::parse_yaml_records(&entry.bytes),
        };
        for parsed in records {
            self.seen += 1;
            match parsed {
                Ok(advisory) => {
                    let modified = Timestamp::from_datetime(advisory.meta.modified);
                    if self.summary.newest_modified.is_none_or(|n| n < modified) {
                        self.summary.newest_modified = Some(modified);
                    }
                    for note in &advisory.ignored {
                        *self.ignored.entry(note.clone()).or_default() += 1;
                    }
                    match to_rows(&advisory) {
                        Ok(new) => {
                            self.batch_packages.push(
                                advisory
                                    .affected
                                    .iter()
                                    .map(|a| (a.ecosystem.clone(), a.name.clone()))
                                    .collect(),
                            );
                            self.batch_withdrawn.push(advisory.meta.withdrawn.is_some());
                            self.batch.push(new);
                        }
                        Err(reason) => self.summary.rejected.push(Rejection {
                            id: Some(advisory.meta.id.clone()),
                            file: entry.name.clone(),
                            reason,
                        }),
                    }
                }
                Err(e) => self.summary.rejected.push(Rejection {
                    id: e.id.clone(),
                    file: entry.name.clone(),
                    reason: e.reason.clone(),
                }),
            }
            if self.batch.len() >= BATCH {
                self.flush();
            }
        }
        (self.progress)(self.seen);
    }

    fn flush(&mut self) {
        if self.batch.is_empty() || self.error.is_some() {
            return;
        }
        let batch = std::mem::take(&mut self.batch);
        let packages = std::mem::take(&mut self.batch_packages);
        let withdrawn = std::mem::take(&mut self.batch_withdrawn);
        let applied = self
            .pool
            .get()
            .map_err(|e| StoreError::Unavailable(e.to_string()))
            .and_then(|mut conn| {
                store::transaction(&mut conn, |c| store::advisories::apply(c, &batch))
                    .map_err(StoreError::from)
            });
        match applied {
            Ok(outcome) => {
                self.loaded_ecosystems.extend(
                    packages
                        .iter()
                        .flatten()
                        .map(|(ecosystem, _)| ecosystem.clone()),
                );
                for ((applied, packages), withdrawn) in
                    outcome.into_iter().zip(packages).zip(withdrawn)
                {
                    match applied {
                        Applied::Added => self.summary.added += 1,
                        Applied::Updated => self.summary.updated += 1,
                        Applied::Unchanged => {
                            self.summary.unchanged += 1;
                            continue;
                        }
                    }
                    if withdrawn {
                        self.summary.withdrawn += 1;
                    }
                    self.summary.changed_packages.extend(packages);
                }
            }
            Err(e) => self.error = Some(e.into()),
        }
    }

    fn finish(mut self) -> Result<ImportSummary, ImportError> {
        self.flush();
        if let Some(e) = self.error {
            return Err(e);
        }
        self.summary.ignored = self
            .ignored
            .into_iter()
            .map(|(reason, count)| IgnoredCount { reason, count })
            .collect();
        self.summary.seconds = self.started.elapsed().as_secs_f64();
        let row = ImportRow {
            id: store::new_id(),
            source: self.summary.sources.join(", "),
            started_at: self.started_at.micros(),
            finished_at: Timestamp::now().micros(),
            added: count(self.summary.added),
            updated: count(self.summary.updated),
            unchanged: count(self.summary.unchanged),
            withdrawn: count(self.summary.withdrawn),
            rejected: count(self.summary.rejected.len() as u64),
        };
        let mut conn = self
            .pool
            .get()
            .map_err(|e| StoreError::Unavailable(e.to_string()))?;
        let ecosystems: Vec<String> = self.loaded_ecosystems.into_iter().collect();
        let changed_packages = package_names(&self.summary.changed_packages);
        // The images that lacked this data and those holding a changed package are queued in one
        // transaction, so an image that is both is queued once.
        let (loaded, queued_for_changes) = store::transaction(&mut conn, |c| {
            // Every record this import wrote carries an `imported_at` from after its start.
            store::advisories::relend_written_since(c, self.started_at.micros())?;
            store::advisories::record_import(c, &row)?;
            let loaded = coverage::data_loaded(c, &ecosystems, self.started_at)?;
            let holding = store::images::holding_packages(c, &changed_packages)?;
            Ok((
                loaded,
                reassess_in(c, &holding, ScanTrigger::AdvisoryUpdate)?,
            ))
        })
        .map_err(StoreError::from)?;
        self.summary.newly_covered = loaded.newly_covered;
        self.summary.images_queued += loaded.images_queued + queued_for_changes;
        Ok(self.summary)
    }
}

/// The package names (binary or source) of the changed (ecosystem, package) pairs, once each.
fn package_names(changed: &BTreeSet<(String, String)>) -> Vec<String> {
    let names: BTreeSet<&String> = changed.iter().map(|(_, name)| name).collect();
    names.into_iter().cloned().collect()
}

fn count(n: u64) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

fn source_name(e: &SourceError) -> String {
    match e {
        SourceError::Io { path, .. } | SourceError::Zip { path, .. } => path.clone(),
        SourceError::Download { url, .. } | SourceError::Status { url, .. } => url.clone(),
        SourceError::TooLarge { name, .. }
        | SourceError::NotRecords { name, .. }
        | SourceError::NoRecords { name, .. } => name.clone(),
    }
}

/// The rows that store one advisory; the record-level severity is kept so aliases can borrow it.
fn to_rows(advisory: &Advisory) -> Result<NewAdvisory, String> {
    let record = serde_json::to_string(&advisory.meta)
        .map_err(|e| format!("cannot store the record: {e}"))?;
    let raw = serde_json::to_string(&advisory.raw)
        .map_err(|e| format!("cannot store the record: {e}"))?;
    // Only a severity the record decides itself is worth lending to the records that alias it.
    let own = Some(severity::resolve_record(advisory)).filter(|s| !s.is_default());
    let affected = advisory
        .affected
        .iter()
        .enumerate()
        .map(|(seq, a)| {
            Ok(AffectedRow {
                advisory_id: advisory.meta.id.clone(),
                seq: i32::try_from(seq).map_err(|_| "too many affected packages".to_owned())?,
                ecosystem: a.ecosystem.clone(),
                package: a.name.clone(),
                affected: serde_json::to_string(a)
                    .map_err(|e| format!("cannot store the record: {e}"))?,
            })
        })
        .collect::<Result<Vec<_>, String>>()?;
    Ok(NewAdvisory {
        row: AdvisoryRow {
            id: advisory.meta.id.clone(),
            modified: Timestamp::from_datetime(advisory.meta.modified).micros(),
            published: advisory
                .meta
                .published
                .map(|t| Timestamp::from_datetime(t).micros()),
            withdrawn: advisory
                .meta
                .withdrawn
                .map(|t| Timestamp::from_datetime(t).micros()),
            summary: advisory.meta.summary.clone().unwrap_or_default(),
            severity: own.as_ref().map(|s| s.level.as_str().to_owned()),
            severity_source: own.as_ref().map(|s| s.source.to_string()),
            cvss2_base: own.as_ref().and_then(|s| s.cvss_v2),
            cvss3_base: own.as_ref().and_then(|s| s.cvss_v3),
            lent_from: None,
            lent_severity: None,
            lent_severity_source: None,
            lent_cvss2_base: None,
            lent_cvss3_base: None,
            record,
            raw,
            imported_at: Timestamp::now().micros(),
        },
        affected,
        aliases: advisory
            .meta
            .aliases
            .iter()
            .chain(&advisory.meta.upstream)
            .cloned()
            .collect(),
    })
}
