//! Registry notifications (Docker Distribution's webhook envelopes): a push queues a scan, a pull
//! moves `lastPulledAt`, a delete removes the image. Each event id is handled once; the answer
//! comes as soon as the envelope is recorded (scans run later).

use actix_web::{HttpRequest, web};
use diesel::Connection;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use utoipa::ToSchema;

use super::AppState;
use super::api_version::{self, ApiVersionQuery};
use super::registries::RegistryPath;
use crate::domain::{Digest, RepositoryName, ScanTrigger, Timestamp};
use crate::error::{ApiError, CloudError};
use crate::jobs::queue::{Queue, Submission};
use crate::store::images::ImageRow;
use crate::store::registries::RegistryRow;
use crate::store::{self, AnyConnection};

/// Largest envelope accepted; the registry sends one event per envelope, a few kB each.
pub const MAX_ENVELOPE: usize = 1024 * 1024;

const MANIFEST_TYPES: [&str; 4] = [
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
];
const INDEX_TYPES: [&str; 2] = [
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
];

/// The envelope as Distribution sends it (`{"events": [...]}`); unknown fields are ignored.
#[derive(Debug, Deserialize, ToSchema)]
pub struct Envelope {
    pub events: Vec<Event>,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct Event {
    pub id: String,
    /// `push`, `pull`, `mount` or `delete`.
    pub action: String,
    pub target: Target,
    #[serde(default)]
    pub request: Request,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct Request {
    pub useragent: Option<String>,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Target {
    pub media_type: Option<String>,
    pub digest: Option<String>,
    pub repository: Option<String>,
    pub tag: Option<String>,
}

/// What was done with an envelope's events.
#[derive(Debug, Default, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EventsAccepted {
    /// Events acted on (a scan queued, a pull or delete recorded).
    pub accepted: usize,
    /// Events seen before (redeliveries), not acted on again.
    pub duplicates: usize,
    /// Events that need nothing: blob pushes and pulls, mounts, pushes of images already scanned.
    pub ignored: usize,
    /// Scans queued or already pending for pushed images.
    pub scans: Vec<String>,
}

/// Receives a registry's notifications. Authenticated by the registry's webhook secret
/// (`Authorization: Bearer <secret>`), not by a user token.
#[utoipa::path(
    post,
    path = "/subscriptions/{subscriptionId}/resourceGroups/{resourceGroupName}/providers/Microsoft.ContainerRegistry/registries/{registryName}/providers/Microsoft.Security/registryEvents",
    operation_id = "RegistryEvents_Notify",
    tag = "Registries",
    params(RegistryPath, ApiVersionQuery),
    request_body(content = Envelope, content_type = "application/vnd.docker.distribution.events.v1+json"),
    responses(
        (status = 200, description = "Recorded; scans run later", body = EventsAccepted),
        (status = "default", description = "CloudError", body = CloudError)
    )
)]
pub async fn notify(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<RegistryPath>,
    query: web::Query<ApiVersionQuery>,
    body: web::Bytes,
) -> Result<web::Json<EventsAccepted>, ApiError> {
    api_version::require(query.api_version.as_deref(), api_version::CROWSNEST)?;
    let registry = authenticate(&state, &req, &path).await?;
    if body.len() > MAX_ENVELOPE {
        return Err(ApiError::PayloadTooLarge(format!(
            "A notification envelope may be at most {MAX_ENVELOPE} bytes."
        )));
    }
    let envelope: Envelope = serde_json::from_slice(&body).map_err(|e| {
        ApiError::bad_request(
            "InvalidRequestContent",
            format!("The body is not a registry notification envelope: {e}"),
        )
    })?;
    let outcome = store::run(&state.pool, move |c| {
        c.transaction(|c| apply(c, &registry, &envelope.events))
    })
    .await?;
    if !outcome.scans.is_empty() {
        state.queue.wake();
    }
    Ok(web::Json(outcome))
}

/// The registry named by the path, when the bearer token is its webhook secret. An unknown
/// registry and a wrong secret answer alike, so the route tells nothing to a stranger.
async fn authenticate(
    state: &AppState,
    req: &HttpRequest,
    path: &RegistryPath,
) -> Result<RegistryRow, ApiError> {
    let refused = || {
        ApiError::Unauthenticated(
            "Send the registry's webhook secret as 'Authorization: Bearer <secret>'.".to_owned(),
        )
    };
    let secret = req
        .headers()
        .get(actix_web::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .ok_or_else(refused)?;
    let presented = hex::encode(Sha256::digest(secret.as_bytes()));
    let id = path.parse().map_err(|_| refused())?;
    let registry = store::run(&state.pool, move |c| store::registries::find(c, &id))
        .await?
        .ok_or_else(refused)?;
    if !constant_time_eq(
        presented.as_bytes(),
        registry.webhook_secret_sha256.as_bytes(),
    ) {
        return Err(refused());
    }
    Ok(registry)
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn apply(
    c: &mut AnyConnection,
    registry: &RegistryRow,
    events: &[Event],
) -> diesel::QueryResult<EventsAccepted> {
    let mut out = EventsAccepted::default();
    let now = Timestamp::now().micros();
    for event in events {
        if event.id.is_empty() || event.id.len() > 200 {
            out.ignored += 1;
            continue;
        }
        if !store::registry_events::record_once(c, &registry.id, &event.id, now)? {
            out.duplicates += 1;
            continue;
        }
        let Some(action) = understand(event) else {
            out.ignored += 1;
            continue;
        };
        let acted = match action {
            Action::Push {
                repository,
                digest,
                tag,
                index,
            } => push(
                c,
                registry,
                &repository,
                &digest,
                tag,
                index,
                now,
                &mut out.scans,
            )?,
            Action::Pull { repository, digest } => {
                store::images::record_pull(c, &registry.id, &repository, &digest, now)? > 0
            }
            Action::DeleteDigest { repository, digest } => {
                let key = store::scans::pending_key(&registry.id, &repository, Some(&digest), None);
                store::scans::cancel_queued(
                    c,
                    &key,
                    now,
                    "the image was deleted from the registry",
                )?;
                store::images::delete_digest(c, &registry.id, &repository, &digest)? > 0
            }
            Action::DeleteTag { repository, tag } => {
                store::images::remove_tag(c, &registry.id, &repository, &tag)? > 0
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

enum Action {
    Push {
        repository: String,
        digest: String,
        tag: Option<String>,
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

/// The event as an action on images, or `None` for blob events, mounts and malformed targets.
fn understand(event: &Event) -> Option<Action> {
    let t = &event.target;
    let repository = RepositoryName::parse(t.repository.as_deref()?)
        .ok()?
        .as_str()
        .to_owned();
    let digest = t
        .digest
        .as_deref()
        .and_then(|d| Digest::parse(d).ok())
        .map(|d| d.to_string());
    let manifest = t
        .media_type
        .as_deref()
        .is_some_and(|m| MANIFEST_TYPES.contains(&m));
    let tag = t
        .tag
        .clone()
        .filter(|tag| !tag.is_empty() && tag.len() <= 128);
    match event.action.as_str() {
        "push" if manifest => Some(Action::Push {
            repository,
            digest: digest?,
            tag,
            index: t
                .media_type
                .as_deref()
                .is_some_and(|m| INDEX_TYPES.contains(&m)),
        }),
        // The scanner's own reads are not pulls by users (they would keep every image "in use").
        "pull" if manifest && !by_scanner(event) => Some(Action::Pull {
            repository,
            digest: digest?,
        }),
        // A delete carries no media type: by digest it removes the manifest, by tag the tag.
        "delete" => match (digest, tag) {
            (Some(digest), _) => Some(Action::DeleteDigest { repository, digest }),
            (None, Some(tag)) => Some(Action::DeleteTag { repository, tag }),
            (None, None) => None,
        },
        _ => None,
    }
}

fn by_scanner(event: &Event) -> bool {
    event
        .request
        .useragent
        .as_deref()
        .is_some_and(|ua| ua.starts_with(crate::scanner::registry::USER_AGENT_PRODUCT))
}

/// A pushed manifest: a digest already assessed only gains the tag; anything else is scanned.
#[allow(clippy::too_many_arguments)]
fn push(
    c: &mut AnyConnection,
    registry: &RegistryRow,
    repository: &str,
    digest: &str,
    tag: Option<String>,
    index: bool,
    now: i64,
    scans: &mut Vec<String>,
) -> diesel::QueryResult<bool> {
    if !index {
        let template = ImageRow {
            pushed_at: Some(now),
            ..ImageRow::unscanned(registry, repository, digest, now)
        };
        let image = store::images::ensure(c, &template, Some(now))?;
        if let Some(tag) = &tag {
            store::images::set_tag(c, &image, tag, now)?;
        }
        if image.scanned_at.is_some() {
            return Ok(true);
        }
    } else if store::images::index_assessed(c, &registry.id, repository, digest)? {
        return Ok(true);
    }
    let (scan, _) = Queue::submit_in(
        c,
        &Submission {
            registry: registry.clone(),
            repository: repository.to_owned(),
            tag,
            digest: Some(digest.to_owned()),
            trigger: ScanTrigger::Push,
            idempotency_key: None,
        },
    )?;
    scans.push(scan.id);
    Ok(true)
}
