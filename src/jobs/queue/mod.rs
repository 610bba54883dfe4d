//! The scan queue and its workers. Submissions are rows in `scans` (`submission.rs`); a worker
//! leases one, renews the lease while it works (`worker.rs`), and stores the results, the scan's end
//! and the billing record in one transaction that only commits while it still holds the lease
//! (`outcome.rs`). A process killed at any point leaves either a Queued scan or a Running one whose
//! lease runs out and is taken again. Retries: passing failures (registry or database away,
//! throttling, damaged downloads) are retried with a doubling delay up to the attempt limit.
//! Claims go by priority (interactive triggers first), then due time, and pass over a subscription
//! that holds its share of the workers. Idle workers wait for a wake-up (a submission in this
//! process, or a PostgreSQL notification from any process) or the poll.

mod outcome;
mod submission;
mod worker;

use std::time::Duration;

pub use submission::{Queue, Submission, reassess_in};
pub use worker::{spawn_wakeups, spawn_workers};

/// How old advisory data may be before verdicts resting on it stop being Healthy.
pub const DEFAULT_ADVISORY_MAX_AGE: Duration = Duration::from_secs(7 * 24 * 3600);

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
    /// The part of `workers` one subscription's scans may hold at once, counted over every
    /// process's running scans; above 1 when several processes share the queue.
    pub subscription_share: f64,
    /// Advisory data older than this makes a verdict without findings `AdvisoriesStale`.
    pub advisory_max_age: Duration,
}

impl QueueSettings {
    /// Workers one subscription may hold: its share of this process's workers, at least one.
    pub fn subscription_cap(&self) -> i64 {
        let workers = self.workers as f64 * self.subscription_share;
        // Bounded by the setting's check: a share of at most 1000 of at most usize workers.
        (workers.ceil() as i64).max(1)
    }
}

impl Default for QueueSettings {
    fn default() -> Self {
        Self {
            workers: std::thread::available_parallelism().map_or(2, |n| n.get()),
            lease: Duration::from_secs(60),
            max_attempts: 5,
            retry_delay: Duration::from_secs(5),
            poll: Duration::from_secs(1),
            subscription_share: 0.5,
            advisory_max_age: DEFAULT_ADVISORY_MAX_AGE,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_subscription_holds_its_share_rounded_up_and_at_least_one_worker() {
        let cap = |workers, subscription_share| {
            QueueSettings {
                workers,
                subscription_share,
                ..QueueSettings::default()
            }
            .subscription_cap()
        };
        assert_eq!(cap(2, 0.5), 1);
        assert_eq!(cap(3, 0.5), 2);
        assert_eq!(cap(8, 0.25), 2);
        assert_eq!(cap(1, 0.1), 1);
        assert_eq!(cap(0, 0.5), 1);
        assert_eq!(cap(2, 2.0), 4);
    }
}
