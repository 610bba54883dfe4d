//! What a cluster's report of running containers means: it replaces the cluster's previous report,
//! the running flags of images follow every cluster's latest report, and images from connected
//! registries that were never assessed are scanned now (`Runtime`), up to a limit per report
//! (none while the subscription's Defender plan is Free).
//! `Runtime` scans not started yet of images no cluster runs any more are cancelled. Every step is
//! a few statements per repository, not one per container: a report of tens of thousands of pods
//! is one short transaction.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use crate::domain::{LoginServer, ScanTrigger, Timestamp};
use crate::store::running_images::RunningImageRow;
use crate::store::scans::{ScanRow, ScanTarget};
use crate::store::{self, AnyConnection, Pool, StoreError};

use super::pricings;
use super::queue::Queue;

/// How much one report may hold and start.
#[derive(Debug, Clone, Copy)]
pub struct ReportLimits {
    /// Pods in one report; a larger report is refused (413).
    pub max_pods: usize,
    /// Containers (init and ephemeral ones included) in one report; a larger one is refused (413).
    pub max_containers: usize,
    /// Never-assessed images one report queues scans for; the others wait for a later report.
    pub max_new_scans: usize,
}

impl Default for ReportLimits {
    fn default() -> Self {
        Self {
            max_pods: 50_000,
            max_containers: 100_000,
            max_new_scans: 1_000,
        }
    }
}

/// Replaces the cluster's report in one transaction and wakes the workers for the scans it queued.
pub async fn report(
    pool: &Pool,
    queue: &Queue,
    report: Report,
    limits: ReportLimits,
) -> Result<Applied, StoreError> {
    let applied = store::run_transaction(pool, move |c| apply(c, &report, limits)).await?;
    if applied.scans_queued > 0 {
        queue.wake();
    }
    Ok(applied)
}

/// A cluster's report of its running containers.
#[derive(Debug)]
pub struct Report {
    pub subscription: String,
    pub cluster: String,
    pub rows: Vec<RunningImageRow>,
}

/// What a report changed.
#[derive(Debug)]
pub struct Applied {
    /// Distinct images (registry, repository, digest) in the report.
    pub images: usize,
    /// Of those, images from registries connected in the subscription.
    pub connected: usize,
    /// Never-assessed images queued for a scan.
    pub scans_queued: usize,
    /// Never-assessed images not queued now: beyond `ReportLimits::max_new_scans`.
    pub scans_deferred: usize,
    /// Queued `Runtime` scans of images no cluster runs any more, cancelled before they started.
    pub scans_cancelled: usize,
    /// Registry hosts the report names that are not connected.
    pub unconnected: Vec<String>,
}

/// Why a report's `Runtime` scan ends before it started.
const NO_LONGER_RUNNING: &str = "no cluster of the subscription reports the image running any more";

fn apply(
    c: &mut AnyConnection,
    report: &Report,
    limits: ReportLimits,
) -> diesel::QueryResult<Applied> {
    let (subscription, rows) = (report.subscription.as_str(), report.rows.as_slice());
    let now = Timestamp::now().micros();
    let registries: HashMap<String, store::registries::RegistryRow> =
        store::registries::list(c, subscription, None, None, 10_000)?
            .into_iter()
            .map(|r| (r.login_server.clone(), r))
            .collect();
    // Reports of one subscription rewrite the same running flags: one at a time. The images a
    // report may queue scans for are locked in the same order as a webhook locks them.
    let images = rows.iter().filter_map(|row| {
        let (Some(host), Some(repository), Some(digest)) =
            (&row.registry, &row.repository, &row.digest)
        else {
            return None;
        };
        lookup(&registries, host).map(|r| store::image_key(&r.id, repository, digest))
    });
    store::lock_pricing(c, subscription, false)?;
    store::lock_keys(
        c,
        images.chain(std::iter::once(format!("running {subscription}"))),
    )?;
    store::running_images::replace(c, subscription, &report.cluster, rows)?;
    // The running flags follow every cluster's latest report, not only this one.
    let mut running: BTreeSet<(String, String, String)> = BTreeSet::new();
    for row in store::running_images::all(c, subscription)? {
        let (Some(host), Some(repository), Some(digest)) =
            (&row.registry, &row.repository, &row.digest)
        else {
            continue;
        };
        if let Some(registry) = lookup(&registries, host) {
            running.insert((registry.id.clone(), repository.clone(), digest.clone()));
        }
    }
    let running_list: Vec<(String, String, String)> = running.iter().cloned().collect();
    store::running_images::mark_running(c, subscription, &running_list)?;

    // Scans a previous report queued for images that no cluster runs now: nobody needs them.
    let unneeded: Vec<String> =
        store::scans::unstarted(c, subscription, Some(ScanTrigger::Runtime))?
            .into_iter()
            .filter(|s| {
                s.digest.as_ref().is_none_or(|digest| {
                    !running.contains(&(
                        s.registry_id.clone(),
                        s.repository.clone(),
                        digest.clone(),
                    ))
                })
            })
            .map(|s| s.id)
            .collect();
    let scans_cancelled =
        store::scans::cancel(c, &unneeded, now, "NoLongerRunning", NO_LONGER_RUNNING)?;

    let mut images = BTreeSet::new();
    let mut unconnected = BTreeSet::new();
    // Connected images in report order, grouped by repository for the look-ups below.
    let mut candidates: Vec<(&store::registries::RegistryRow, &str, &str)> = Vec::new();
    for row in rows {
        let (Some(host), Some(repository), Some(digest)) =
            (&row.registry, &row.repository, &row.digest)
        else {
            continue;
        };
        if !images.insert((host.as_str(), repository.as_str(), digest.as_str())) {
            continue;
        }
        match lookup(&registries, host) {
            Some(registry) => candidates.push((registry, repository, digest)),
            None => {
                unconnected.insert(host.clone());
            }
        }
    }
    let connected = candidates.len();
    let mut by_repository: BTreeMap<(&str, &str), Vec<String>> = BTreeMap::new();
    for (registry, repository, digest) in &candidates {
        by_repository
            .entry((registry.id.as_str(), repository))
            .or_default()
            .push((*digest).to_owned());
    }
    let mut assessed: HashSet<(String, String, String)> = HashSet::new();
    for ((registry_id, repository), digests) in &by_repository {
        for digest in store::running_images::assessed(c, registry_id, repository, digests)? {
            assessed.insert(((*registry_id).to_owned(), (*repository).to_owned(), digest));
        }
    }
    let unassessed: Vec<ScanRow> = candidates
        .iter()
        .filter(|(registry, repository, digest)| {
            !assessed.contains(&(
                registry.id.clone(),
                (*repository).to_owned(),
                (*digest).to_owned(),
            ))
        })
        .map(|(registry, repository, digest)| {
            let target = ScanTarget {
                subscription_id: &registry.subscription_id,
                registry_id: &registry.id,
                repository,
                digest: Some(digest),
                tag: None,
            };
            ScanRow::queued(target, ScanTrigger::Runtime, now)
        })
        .collect();
    // Images already pending are neither queued again nor counted against the limit.
    let keys: Vec<String> = unassessed
        .iter()
        .filter_map(|r| r.pending_key.clone())
        .collect();
    let pending = store::scans::pending_of(c, &keys)?;
    // On the Free plan nothing is queued; the first report after a switch to Standard queues them.
    let scanning = pricings::scans(c, subscription)?;
    let new: Vec<ScanRow> = unassessed
        .into_iter()
        .filter(|_| scanning)
        .filter(|r| r.pending_key.as_ref().is_none_or(|k| !pending.contains(k)))
        .collect();
    let (now_queued, deferred) = new.split_at(new.len().min(limits.max_new_scans));
    let scans_queued = store::scans::enqueue_many(c, now_queued)?;
    Ok(Applied {
        images: images.len(),
        connected,
        scans_queued,
        scans_deferred: deferred.len(),
        scans_cancelled,
        unconnected: unconnected.into_iter().collect(),
    })
}

/// The connected registry for a host as the cluster names it (Docker Hub has several names).
fn lookup<'a>(
    registries: &'a HashMap<String, store::registries::RegistryRow>,
    host: &str,
) -> Option<&'a store::registries::RegistryRow> {
    let normalised = LoginServer::parse(host)
        .map(|l| l.as_str().to_owned())
        .unwrap_or_else(|_| host.to_owned());
    registries.get(&normalised).or_else(|| {
        (normalised == "docker.io")
            .then(|| {
                registries
                    .get("index.docker.io")
                    .or_else(|| registries.get("registry-1.docker.io"))
            })
            .flatten()
    })
}
