//! Registry notifications (Docker Distribution's webhook envelopes): a push queues a scan, a pull
//! moves `lastPulledAt`, a delete removes the image. Each event id is handled once; the answer
//! comes as soon as the envelope is recorded (scans run later).

use actix_web::{HttpRequest, web};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::AppState;
use super::api_version::{self, ApiVersionQuery};
use super::auth::bearer;
use super::registries::RegistryPath;
use crate::domain::{Digest, RegistryId, RepositoryName, text};
use crate::error::{ApiError, CloudError};
use crate::jobs::registries::WebhookSecret;
use crate::jobs::registry_events::{self, ImageAction, RegistryEvent};
use crate::store::{self, registries::RegistryRow};

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

/// An [`Envelope`] as read: each event is checked before it is typed.
#[derive(Deserialize)]
struct RawEnvelope {
    events: Vec<serde_json::Value>,
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
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EventsAccepted {
    /// Events acted on (a scan queued, a pull or delete recorded).
    pub accepted: usize,
    /// Events seen before (redeliveries), not acted on again.
    pub duplicates: usize,
    /// Events that need nothing: blob pushes and pulls, mounts, pushes of images already scanned.
    pub ignored: usize,
    /// Events refused because a string in them holds a NUL character (U+0000), which cannot be
    /// stored; each is logged and not acted on (the envelope is still answered 200, so the
    /// registry does not redeliver it forever).
    pub rejected: usize,
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
    let invalid = |e: serde_json::Error| {
        ApiError::bad_request(
            "InvalidRequestContent",
            format!("The body is not a registry notification envelope: {e}"),
        )
    };
    // Events are read one by one, so one that cannot be stored is set aside alone: refusing the
    // envelope would have the registry redeliver it forever, holding up the notifications after it.
    let envelope: RawEnvelope = serde_json::from_slice(&body).map_err(invalid)?;
    let mut events = Vec::with_capacity(envelope.events.len());
    let mut rejected = 0;
    for (position, event) in envelope.events.into_iter().enumerate() {
        if let Some(path) = text::unstorable_at(&event) {
            let registry = RegistryId::format(
                &registry.subscription_id,
                &registry.resource_group,
                &registry.name,
            );
            let field = format!("events[{position}].{path}");
            tracing::warn!(%registry, field = %field.escape_debug(),
                "registry event rejected: it holds a NUL character (U+0000), which cannot be stored");
            rejected += 1;
            continue;
        }
        let event = Event::deserialize(event).map_err(invalid)?;
        events.push(RegistryEvent {
            action: understand(&event),
            id: event.id,
        });
    }
    let recorded = registry_events::receive(&state.pool, &state.queue, registry, events).await?;
    Ok(web::Json(EventsAccepted {
        accepted: recorded.accepted,
        duplicates: recorded.duplicates,
        ignored: recorded.ignored,
        rejected,
        scans: recorded.scans,
    }))
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
        .and_then(bearer)
        .ok_or_else(refused)?;
    let presented = WebhookSecret::hash(secret);
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

/// The event as an action on images, or `None` for blob events, mounts and malformed targets.
fn understand(event: &Event) -> Option<ImageAction> {
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
        "push" if manifest => Some(ImageAction::Push {
            repository,
            digest: digest?,
            tag,
            index: t
                .media_type
                .as_deref()
                .is_some_and(|m| INDEX_TYPES.contains(&m)),
        }),
        // The scanner's own reads are not pulls by users (they would keep every image "in use").
        "pull" if manifest && !by_scanner(event) => Some(ImageAction::Pull {
            repository,
            digest: digest?,
        }),
        // A delete carries no media type: by digest it removes the manifest, by tag the tag.
        "delete" => match (digest, tag) {
            (Some(digest), _) => Some(ImageAction::DeleteDigest { repository, digest }),
            (None, Some(tag)) => Some(ImageAction::DeleteTag { repository, tag }),
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
