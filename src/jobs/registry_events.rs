//! What a registry's notifications mean: a push queues a scan (unless that digest was assessed
//! already, when only the tag is recorded, or the subscription's Defender plan is Free, when the
//! image is recorded as `PlanDisabled`), a pull moves `lastPulledAt`, a delete removes the image
//! or the tag. Each event id is acted on once: registries redeliver until they get an answer.

use crate::domain::{ScanTrigger, Timestamp, health_cause};
use crate::store::images::ImageRow;
use crate::store::registries::RegistryRow;
use crate::store::{self, AnyConnection, Pool, StoreError};

use super::pricings;
use super::queue::{Queue, Submission};

/// One notification, as understood at the edge.
#[derive(Debug, Clone)]
pub struct RegistryEvent {
    /// The registry's id for the event (unique per registry).
    pub id: String,
    /// What it does to images; `None` for events that need nothing (blob events, mounts, scanner
    /// pulls, malformed targets). Such events are still recorded as seen.
    pub action: Option<ImageAction>,
}

/// An event's effect on images; repositories and digests are already validated.
#[derive(Debug, Clone)]
pub enum ImageAction {
    Push {
        repository: String,
        digest: String,
        tag: Option<String>,
        /// The manifest is an index (or a Docker manifest list).
        index: bool,
    },
    Pull {
        repository: String,
        digest: String,
    },
    DeleteDigest {
        repository: String,
        digest: String,
    },
    DeleteTag {
        repository: String,
        tag: String,
    },
}

/// What was done with a batch of events.
#[derive(Debug, Default)]
pub struct Recorded {
    /// Events acted on (a scan queued, a pull or delete recorded).
    pub accepted: usize,
    /// Events seen before, not acted on again.
    pub duplicates: usize,
    /// Events that needed nothing.
    pub ignored: usize,
    /// Scans queued or already pending for pushed images.
    pub scans: Vec<String>,
}

/// Longest event id recorded; longer ones are ignored.
const MAX_EVENT_ID: usize = 200;

/// Records an envelope's events in one transaction and wakes the workers for the scans it queued.
pub async fn receive(
    pool: &Pool,
    queue: &Queue,
    registry: RegistryRow,
    events: Vec<RegistryEvent>,
) -> Result<Recorded, StoreError> {
    let recorded = store::run_transaction(pool, move |c| record(c, &registry, &events)).await?;
    if !recorded.scans.is_empty() {
        queue.wake();
    }
    Ok(recorded)
}

fn record(
    c: &mut AnyConnection,
    registry: &RegistryRow,
    events: &[RegistryEvent],
) -> diesel::QueryResult<Recorded> {
    let mut out = Recorded::default();
    let now = Timestamp::now().micros();
    // Envelopes naming the same events, images or tags in another order would otherwise lock
    // their rows in opposite orders and deadlock.
    store::lock_pricing(c, &registry.subscription_id, false)?;
    store::lock_keys(c, lock_keys(&registry.id, events))?;
    let scanning = pricings::scans(c, &registry.subscription_id)?;
    for event in events {
        if event.id.is_empty() || event.id.len() > MAX_EVENT_ID {
            out.ignored += 1;
            continue;
        }
        if !store::registry_events::record_once(c, &registry.id, &event.id, now)? {
            out.duplicates += 1;
            continue;
        }
        let Some(action) = &event.action else {
            out.ignored += 1;
            continue;
        };
        let acted = match action {
            ImageAction::Push {
                repository,
                digest,
                tag,
                index,
            } => {
                let pushed = Pushed {
                    repository,
                    digest,
                    tag: tag.as_deref(),
                    index: *index,
                };
                out.scans.extend(push(c, registry, &pushed, scanning, now)?);
                true
            }
            ImageAction::Pull { repository, digest } => {
                store::images::record_pull(c, &registry.id, repository, digest, now)? > 0
            }
            ImageAction::DeleteDigest { repository, digest } => {
                let key = store::scans::pending_key(&registry.id, repository, Some(digest), None);
                store::scans::cancel_queued(
                    c,
                    &key,
                    now,
                    "the image was deleted from the registry",
                )?;
                store::images::delete_digest(c, &registry.id, repository, digest)? > 0
            }
            ImageAction::DeleteTag { repository, tag } => {
                store::images::remove_tag(c, &registry.id, repository, tag)? > 0
            }
        };
        if acted {
            out.accepted += 1;
        } else {
            out.ignored += 1;
        }
    }
    Ok(out)
}

/// What recording `events` writes: each event id, and the images and tags their actions touch.
fn lock_keys(registry: &str, events: &[RegistryEvent]) -> Vec<String> {
    let mut keys = Vec::new();
    for event in events {
        keys.push(format!("event {registry} {}", event.id));
        match &event.action {
            Some(ImageAction::Push {
                repository,
                digest,
                tag,
                ..
            }) => {
                keys.push(store::image_key(registry, repository, digest));
                if let Some(tag) = tag {
                    keys.push(store::tag_key(registry, repository, tag));
                }
            }
            Some(
                ImageAction::Pull { repository, digest }
                | ImageAction::DeleteDigest { repository, digest },
            ) => keys.push(store::image_key(registry, repository, digest)),
            Some(ImageAction::DeleteTag { repository, tag }) => {
                keys.push(store::tag_key(registry, repository, tag));
            }
            None => {}
        }
    }
    keys
}

/// A manifest a push names.
struct Pushed<'a> {
    repository: &'a str,
    digest: &'a str,
    tag: Option<&'a str>,
    /// An index (or a Docker manifest list).
    index: bool,
}

/// A pushed manifest: a digest already assessed only gains the tag; anything else is scanned,
/// unless the subscription's plan is Free (`scanning` false): then it is recorded as `PlanDisabled`.
/// Returns the scan that stands for it, if one was needed.
fn push(
    c: &mut AnyConnection,
    registry: &RegistryRow,
    pushed: &Pushed<'_>,
    scanning: bool,
    now: i64,
) -> diesel::QueryResult<Option<String>> {
    let Pushed {
        repository,
        digest,
        tag,
        index,
    } = *pushed;
    if !index {
        let unscanned = ImageRow::unscanned(registry, repository, digest, now);
        let template = ImageRow {
            pushed_at: Some(now),
            health_reason: if scanning {
                unscanned.health_reason.clone()
            } else {
                Some(health_cause::PLAN_DISABLED.to_owned())
            },
            ..unscanned
        };
        let image = store::images::ensure(c, &template, Some(now))?;
        if let Some(tag) = tag {
            store::images::set_tag(c, &image, tag, now)?;
        }
        if image.scanned_at.is_some() || !scanning {
            return Ok(None);
        }
    } else if !scanning || store::images::index_assessed(c, &registry.id, repository, digest)? {
        return Ok(None);
    }
    let (scan, _) = Queue::submit_in(
        c,
        &Submission {
            registry: registry.clone(),
            repository: repository.to_owned(),
            tag: tag.map(str::to_owned),
            digest: Some(digest.to_owned()),
            trigger: ScanTrigger::Push,
            idempotency_key: None,
        },
    )?;
    Ok(Some(scan.id))
}
