//! Submitting scans: a scan is a row in `scans`, queued in the caller's transaction or on its own.

use std::sync::Arc;

use diesel::Connection;
use tokio::sync::Notify;

use crate::domain::{ScanStatus, ScanTrigger, Timestamp};
use crate::store::images::ImageRow;
use crate::store::registries::RegistryRow;
use crate::store::scans::ScanRow;
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
