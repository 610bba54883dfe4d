//! What a cluster's report of running containers means: it replaces the cluster's previous report,
//! the running flags of images follow every cluster's latest report, and images from connected
//! registries that were never assessed are scanned now (`Runtime`).

use std::collections::{BTreeSet, HashMap};

use crate::domain::{LoginServer, ScanTrigger};
use crate::store::running_images::RunningImageRow;
use crate::store::{self, AnyConnection, Pool, StoreError};

use super::queue::{Queue, Submission};

/// Replaces the cluster's report in one transaction and wakes the workers for the scans it queued.
pub async fn report(
    pool: &Pool,
    queue: &Queue,
    subscription: String,
    cluster: String,
    rows: Vec<RunningImageRow>,
) -> Result<Applied, StoreError> {
    let applied =
        store::run_transaction(pool, move |c| apply(c, &subscription, &cluster, &rows)).await?;
    if applied.scans_queued > 0 {
        queue.wake();
    }
    Ok(applied)
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
    /// Registry hosts the report names that are not connected.
    pub unconnected: Vec<String>,
}

fn apply(
    c: &mut AnyConnection,
    subscription: &str,
    cluster: &str,
    rows: &[RunningImageRow],
) -> diesel::QueryResult<Applied> {
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
    store::lock_keys(
        c,
        images.chain(std::iter::once(format!("running {subscription}"))),
    )?;
    store::running_images::replace(c, subscription, cluster, rows)?;
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
    let running: Vec<(String, String, String)> = running.into_iter().collect();
    store::running_images::mark_running(c, subscription, &running)?;

    let mut images = BTreeSet::new();
    let mut unconnected = BTreeSet::new();
    let mut connected = 0;
    let mut scans_queued = 0;
    for row in rows {
        let (Some(host), Some(repository), Some(digest)) =
            (&row.registry, &row.repository, &row.digest)
        else {
            continue;
        };
        if !images.insert((host.clone(), repository.clone(), digest.clone())) {
            continue;
        }
        let Some(registry) = lookup(&registries, host) else {
            unconnected.insert(host.clone());
            continue;
        };
        connected += 1;
        if store::images::assessed(c, &registry.id, repository, digest)? {
            continue;
        }
        let (_, created) = Queue::submit_in(
            c,
            &Submission {
                registry: registry.clone(),
                repository: repository.clone(),
                tag: None,
                digest: Some(digest.clone()),
                trigger: ScanTrigger::Runtime,
                idempotency_key: None,
            },
        )?;
        if created {
            scans_queued += 1;
        }
    }
    Ok(Applied {
        images: images.len(),
        connected,
        scans_queued,
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
