//! Submitting scans: a scan is a row in `scans`, queued in the caller's transaction or on its own.

use std::sync::Arc;

use diesel::Connection;
use tokio::sync::Notify;

use crate::domain::{ScanTrigger, Timestamp};
use crate::jobs::pricings;
use crate::store::images::ImageRow;
use crate::store::registries::RegistryRow;
use crate::store::scans::{ScanRow, ScanTarget};
use crate::store::{self, AnyConnection, Pool, StoreError};

/// Submits scans and wakes this process's workers.
#[derive(Clone)]
pub struct Queue {
    pool: Pool,
    pub(super) wake: Arc<Notify>,
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
    /// Whether `scan`, the scan that stands for this submission, was queued under the same
    /// idempotency key for another image: another registry, repository or tag, or another digest
    /// when both name one (a digest the scan resolved from the tag counts as named).
    pub fn reuses_key_of_another_image(&self, scan: &ScanRow) -> bool {
        let same_key =
            self.idempotency_key.is_some() && scan.idempotency_key == self.idempotency_key;
        let other_digest = matches!((&scan.digest, &self.digest), (Some(a), Some(b)) if a != b);
        same_key
            && (scan.registry_id != self.registry.id
                || scan.repository != self.repository
                || scan.tag != self.tag
                || other_digest)
    }

    fn row(&self, now: i64) -> ScanRow {
        let target = ScanTarget {
            subscription_id: &self.registry.subscription_id,
            registry_id: &self.registry.id,
            repository: &self.repository,
            digest: self.digest.as_deref(),
            tag: self.tag.as_deref(),
        };
        ScanRow {
            idempotency_key: self.idempotency_key.clone(),
            ..ScanRow::queued(target, self.trigger, now)
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

/// Queues re-assessments of `images` in the caller's connection (see [`Queue::submit_reassessments`]);
/// images of subscriptions whose Defender plan is Free are passed over.
pub fn reassess_in(
    conn: &mut AnyConnection,
    images: &[ImageRow],
    trigger: ScanTrigger,
) -> diesel::QueryResult<usize> {
    let now = Timestamp::now().micros();
    let free = pricings::free_among(conn, images.iter().map(|i| i.subscription_id.as_str()))?;
    let rows: Vec<ScanRow> = images
        .iter()
        .filter(|image| !free.contains(&image.subscription_id))
        .map(|image| {
            let target = ScanTarget {
                subscription_id: &image.subscription_id,
                registry_id: &image.registry_id,
                repository: &image.repository,
                digest: Some(&image.digest),
                tag: None,
            };
            ScanRow::queued(target, trigger, now)
        })
        .collect();
    conn.transaction(|c| store::scans::enqueue_many(c, &rows))
}
