//! Storing a scan's outcome: its findings, the image's health, the tag, the billing record and the
//! scan's end, in one transaction that commits only while the worker still holds the lease.

use std::time::Duration;

use crate::domain::{ImageSummary, Summary, Timestamp, azure_os_version, health_cause, verdict};
use crate::jobs::coverage::{self, Coverage};
use crate::jobs::engine::{ScanError, ScanResult, ScannedImage};
use crate::jobs::exemptions::{self, ActiveExemptions};
use crate::jobs::findings;
use crate::store::images::{Assessed, ImageRow};
use crate::store::registries::RegistryRow;
use crate::store::scans::{Outcome, ScanRow};
use crate::store::{self, AnyConnection, StoreError};

use super::QueueSettings;

/// Stores a scan's outcome in one transaction; false when the lease was lost (nothing is written
/// then).
pub(super) fn complete(
    c: &mut AnyConnection,
    scan: &ScanRow,
    owner: &str,
    settings: &QueueSettings,
    outcome: Result<&Assessment, Failure>,
) -> diesel::QueryResult<bool> {
    let keys = match &outcome {
        Ok(assessment) => lock_keys(scan, assessment),
        Err(_) => failure_keys(scan),
    };
    store::transaction(c, |c| {
        let now = Timestamp::now().micros();
        // Findings are weighed against exemptions no writer is changing.
        let exemptions = match &outcome {
            Ok(assessment) => ActiveExemptions::hold(
                c,
                std::slice::from_ref(&assessment.registry.subscription_id),
            )?,
            Err(_) => ActiveExemptions::default(),
        };
        // Scans of the same image (by tag and by digest, a push and a runtime report) store
        // their results one after the other, not into each other's rows.
        store::lock_keys(c, &keys)?;
        // Writing first takes SQLite's write lock now: a transaction that read first and wrote
        // later would fail with "database is locked" when another writer committed in between,
        // instead of waiting its turn. It also checks the lease early.
        if !store::scans::hold(c, std::slice::from_ref(&scan.id), owner)? {
            return Err(diesel::result::Error::RollbackTransaction);
        }
        let kept = match &outcome {
            Ok(assessment) => {
                store_assessment(c, scan, owner, settings, assessment, &exemptions, now)?
            }
            Err(failure) => store_failure(c, scan, owner, settings, failure.clone(), now)?,
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

/// What storing an assessment writes besides the scan: each scanned image (its row, findings,
/// health, billing), its tag, and the index it came from.
fn lock_keys(scan: &ScanRow, assessment: &Assessment) -> Vec<String> {
    let registry = &scan.registry_id;
    let mut keys: Vec<String> = assessment
        .result
        .images
        .iter()
        .map(|image| store::image_key(registry, &scan.repository, image.manifest_digest.as_str()))
        .collect();
    keys.extend(failure_keys(scan));
    if let Some(index) = &assessment.result.index_digest {
        keys.push(store::image_key(registry, &scan.repository, index.as_str()));
    }
    keys
}

/// What storing a failure writes besides the scan: the health of the image it names.
fn failure_keys(scan: &ScanRow) -> Vec<String> {
    let mut keys = Vec::new();
    if let Some(digest) = &scan.digest {
        keys.push(store::image_key(
            &scan.registry_id,
            &scan.repository,
            digest,
        ));
    }
    if let Some(tag) = &scan.tag {
        keys.push(store::tag_key(&scan.registry_id, &scan.repository, tag));
    }
    keys
}

/// Stores many assessed scans in one transaction; when that fails (a lease lost, a conflict),
/// each is stored on its own, so one scan's trouble does not hold back the others. Returns, per
/// scan, whether its result was kept.
pub(super) fn complete_together(
    c: &mut AnyConnection,
    done: &[(ScanRow, Assessment)],
    owner: &str,
    settings: &QueueSettings,
) -> diesel::QueryResult<Vec<bool>> {
    let ids: Vec<String> = done.iter().map(|(scan, _)| scan.id.clone()).collect();
    let keys: Vec<String> = done
        .iter()
        .flat_map(|(scan, assessment)| lock_keys(scan, assessment))
        .collect();
    let mut subscriptions: Vec<String> = done
        .iter()
        .map(|(_, assessment)| assessment.registry.subscription_id.clone())
        .collect();
    subscriptions.sort_unstable();
    subscriptions.dedup();
    let together = store::transaction(c, |c| {
        let now = Timestamp::now().micros();
        // Locked and written first for the reasons given in `complete`.
        let exemptions = ActiveExemptions::hold(c, &subscriptions)?;
        store::lock_keys(c, &keys)?;
        if !store::scans::hold(c, &ids, owner)? {
            return Err(diesel::result::Error::RollbackTransaction);
        }
        for (scan, assessment) in done {
            if !store_assessment(c, scan, owner, settings, assessment, &exemptions, now)? {
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

pub(super) struct Assessment {
    pub(super) registry: RegistryRow,
    pub(super) result: ScanResult,
}

#[derive(Debug, Clone)]
pub(super) struct Failure {
    pub(super) code: String,
    pub(super) message: String,
    pub(super) retryable: bool,
}

impl Failure {
    pub(super) fn registry_gone() -> Self {
        Self {
            code: "RegistryNotConnected".to_owned(),
            message: "the registry was disconnected".to_owned(),
            retryable: false,
        }
    }

    /// A database error: a clash with a concurrent writer is a `Conflict`, anything else means
    /// the database is away. Both pass.
    pub(super) fn store(e: StoreError) -> Self {
        let code = if e.is_conflict() {
            "Conflict"
        } else {
            "DatabaseUnavailable"
        };
        Self {
            code: code.to_owned(),
            message: e.to_string(),
            retryable: true,
        }
    }

    pub(super) fn scan(e: &ScanError) -> Self {
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
            | "Conflict"
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

/// Stores what a successful scan found: each image's findings, health, tag and billing record,
/// then the scan's end with its summary.
fn store_assessment(
    c: &mut AnyConnection,
    scan: &ScanRow,
    owner: &str,
    settings: &QueueSettings,
    assessment: &Assessment,
    exemptions: &ActiveExemptions,
    now: i64,
) -> diesel::QueryResult<bool> {
    let Assessment { registry, result } = assessment;
    let mut summary = Summary {
        skipped: result
            .skipped
            .iter()
            .map(|s| format!("{}: {}", s.platform, s.reason))
            .collect(),
        ..Summary::default()
    };
    let index_digest = result.index_digest.as_ref().map(ToString::to_string);
    // A tag names the scanned image itself only when the reference was not an index.
    let tag = scan
        .tag
        .as_deref()
        .filter(|_| index_digest.is_none() && result.images.len() == 1);
    for scanned in &result.images {
        let os = os_name(scanned.inventory.os.as_ref());
        let image = assessed_image(
            c,
            registry,
            scan,
            index_digest.as_deref(),
            scanned,
            &os,
            now,
        )?;
        let coverage = coverage::of_inventory(
            c,
            &scanned.inventory,
            Timestamp::from_micros(now),
            settings.advisory_max_age,
        )?;
        let findings = record_findings(c, registry, &image, scanned, &coverage, exemptions, now)?;
        if let Some(tag) = tag {
            store::images::set_tag(c, &image, tag, now)?;
        }
        if !scan.trigger().is_reassessment() {
            bill(c, registry, scan, &image.digest, now)?;
        }
        summary.add_image(
            ImageSummary {
                digest: image.digest,
                platform: scanned.platform.clone(),
                os,
                package_count: scanned.inventory.packages.len(),
                findings,
                reused_inventory: scanned.reused,
                unsupported_os: scanned.report.unsupported_os.clone(),
                coverage: coverage.ecosystems,
            },
            scanned.report.matches.iter().map(|m| m.severity),
            scanned
                .report
                .matches
                .iter()
                .filter(|m| m.patchable)
                .count(),
        );
    }
    let digest = index_digest
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

/// The image's row, created when this is its first assessment; a new row for an image a cluster
/// already reported (a Runtime scan) starts out running.
fn assessed_image(
    c: &mut AnyConnection,
    registry: &RegistryRow,
    scan: &ScanRow,
    index_digest: Option<&str>,
    scanned: &ScannedImage,
    os: &Option<String>,
    now: i64,
) -> diesel::QueryResult<ImageRow> {
    let digest = scanned.manifest_digest.to_string();
    let digests: Vec<String> = std::iter::once(digest.clone())
        .chain(index_digest.map(str::to_owned))
        .collect();
    let running = store::running_images::runs(
        c,
        &registry.subscription_id,
        &registry.login_server,
        &scan.repository,
        &digests,
    )?;
    let template = ImageRow {
        index_digest: index_digest.map(str::to_owned),
        platform: Some(scanned.platform.clone()).filter(|p| !p.is_empty()),
        os: os.clone(),
        running,
        ..ImageRow::unscanned(registry, &scan.repository, &digest, now)
    };
    let mut image = store::images::ensure(c, &template, None)?;
    image.index_digest = template.index_digest;
    image.platform = template.platform;
    image.os = template.os;
    Ok(image)
}

/// Merges the image's findings and records its health and the advisory data behind it; returns
/// how many findings it has.
fn record_findings(
    c: &mut AnyConnection,
    registry: &RegistryRow,
    image: &ImageRow,
    scanned: &ScannedImage,
    coverage: &Coverage,
    exemptions: &ActiveExemptions,
    now: i64,
) -> diesel::QueryResult<usize> {
    let rows = findings::rows(registry, image, &scanned.report.matches, now);
    let os_version = scanned
        .inventory
        .os
        .as_ref()
        .and_then(|os| azure_os_version(&os.id, os.version_id.as_deref()));
    if os_version != image.os_version {
        // Exemptions' `osVersions` are weighed against it below.
        store::images::set_os_version(c, &image.id, os_version.as_deref())?;
    }
    store::findings::merge(c, &image.id, &rows, now)?;
    // New findings are born exempt where an exemption matches them; kept ones are weighed again
    // against the image's OS release as now read.
    let reweighed = exemptions::reweigh_image(c, exemptions, &registry.subscription_id, &image.id)?;
    let unexempt = if reweighed.exemptions == 0 {
        rows.len()
    } else {
        usize::try_from(store::exemptions::unexempt_count(c, &image.id)?).unwrap_or(usize::MAX)
    };
    let (health, reason) = verdict(
        unexempt,
        scanned.report.unsupported_os.is_some(),
        &coverage.ecosystems,
        scanned.inventory.unreadable_files(),
    );
    store::images::record_assessment(
        c,
        &image.id,
        &Assessed {
            index_digest: image.index_digest.clone(),
            platform: image.platform.clone(),
            os: image.os.clone(),
            health: health.as_str().to_owned(),
            health_reason: reason.map(str::to_owned),
            scanned_at: now,
            coverage: serde_json::to_string(&coverage.ecosystems).unwrap_or_default(),
            advisories_synced_at: coverage.oldest_synced_at,
            unreadable_files: i32::try_from(scanned.inventory.unreadable_files())
                .unwrap_or(i32::MAX),
            media_type: scanned
                .media_type
                .clone()
                .or_else(|| image.media_type.clone()),
            os_version,
        },
    )?;
    Ok(rows.len())
}

/// Bills the image to the subscription, once per digest whatever scans it again.
fn bill(
    c: &mut AnyConnection,
    registry: &RegistryRow,
    scan: &ScanRow,
    digest: &str,
    now: i64,
) -> diesel::QueryResult<()> {
    store::billing::bill_once(
        c,
        &store::billing::BillingRow {
            id: store::new_id(),
            subscription_id: registry.subscription_id.clone(),
            digest: digest.to_owned(),
            registry_id: registry.id.clone(),
            repository: scan.repository.clone(),
            scan_id: scan.id.clone(),
            billed_at: now,
        },
    )
    .map(drop)
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

#[cfg(test)]
mod tests {
    use diesel::result::{DatabaseErrorKind, Error};

    use super::*;

    fn database_error(kind: DatabaseErrorKind, message: &str) -> StoreError {
        StoreError::Query(Error::DatabaseError(kind, Box::new(message.to_owned())))
    }

    #[test]
    fn a_clash_with_a_concurrent_writer_is_a_conflict_not_an_unavailable_database() {
        for (kind, message) in [
            (
                DatabaseErrorKind::UniqueViolation,
                "duplicate key value violates unique constraint \"findings_pkey\"",
            ),
            (
                DatabaseErrorKind::ForeignKeyViolation,
                "insert or update on table \"packages\" violates foreign key constraint",
            ),
            (
                DatabaseErrorKind::SerializationFailure,
                "could not serialize",
            ),
            (DatabaseErrorKind::Unknown, "deadlock detected"),
        ] {
            let scan = ScanError::Store(database_error(kind, message));
            assert_eq!(scan.code(), "Conflict", "{message}");
            let failure = Failure::store(database_error(kind, message));
            assert_eq!(failure.code, "Conflict", "{message}");
            assert!(failure.retryable, "{message}");
        }
    }

    #[test]
    fn an_unreachable_database_is_still_unavailable() {
        for away in [
            StoreError::Unavailable("timed out waiting for connection".to_owned()),
            database_error(
                DatabaseErrorKind::ClosedConnection,
                "server closed the connection",
            ),
        ] {
            assert_eq!(Failure::store(away).code, "DatabaseUnavailable");
        }
    }
}
