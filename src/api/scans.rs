//! Scan submissions and their progress: `Microsoft.Security/scans` in a subscription.

use actix_web::{HttpRequest, HttpResponse, web};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::AppState;
use super::api_version::{self, ApiVersionQuery};
use super::input::Json;
use super::odata::{self, QueryOptions};
use super::paging::{ListQuery, keyset_page};
use crate::api::auth::Caller;
use crate::domain::{
    Digest, LoginServer, RegistryId, RepositoryName, Role, ScanStatus, ScanTrigger, SubscriptionId,
    Timestamp, health_cause,
};
use crate::error::{ApiError, CloudError};
use crate::jobs::pricings;
use crate::jobs::queue::Submission;
use crate::scanner::registry::ImageReference;
use crate::store::{self, scans::ScanRow};

pub const SCAN_TYPE: &str = "Microsoft.Security/scans";
/// Seconds a client should wait before polling a queued scan.
const RETRY_AFTER_SECONDS: u32 = 2;
const MAX_IDEMPOTENCY_KEY: usize = 256;
/// What [`idempotency_key`] accepts (the white space around a header value is not part of it).
pub const IDEMPOTENCY_KEY_PATTERN: &str = "^[!-~]{1,256}$";

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ScanSubmission {
    /// `host[:port]/repository:tag` or `host[:port]/repository@sha256:…` on a connected registry.
    pub image: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Scan {
    pub id: String,
    pub name: String,
    #[serde(rename = "type")]
    pub resource_type: String,
    pub properties: ScanProperties,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ScanProperties {
    /// The image as scanned: `host/repository:tag` or `…@digest`.
    pub image: String,
    pub registry_id: String,
    pub repository: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
    /// The manifest (or index) digest; known once the scan resolved a tag.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
    pub trigger: ScanTrigger,
    pub status: ScanStatus,
    pub attempts: i32,
    pub created_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub started_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<String>,
    /// When a queued scan is due (later than `createdAt` while it waits to be retried).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_attempt_at: Option<String>,
    /// Why the scan failed (or, while it is retried, why the last attempt failed).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<ScanError>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<crate::domain::Summary>)]
    pub summary: Option<serde_json::Value>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ScanError {
    pub code: String,
    pub message: String,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ScanList {
    pub value: Vec<Scan>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_link: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ScanListQuery {
    /// The API version.
    #[serde(rename = "api-version")]
    #[param(rename = "api-version")]
    pub api_version: Option<String>,
    /// Page size, 1–1000 (default 100).
    #[serde(rename = "$top")]
    #[param(rename = "$top", value_type = Option<i64>, minimum = 1, maximum = 1000)]
    pub top: Option<String>,
    /// Where the next page starts; copy it from `nextLink`.
    #[serde(rename = "$skipToken")]
    #[param(rename = "$skipToken")]
    pub skip_token: Option<String>,
    /// `Queued`, `Running`, `Succeeded` or `Failed`.
    pub status: Option<String>,
    /// `Api`, `Push`, `Rescan`, `AdvisoryUpdate` or `Runtime`.
    pub trigger: Option<String>,
    pub repository: Option<String>,
    /// `sha256:…`
    pub digest: Option<String>,
    /// An OData filter: `eq`, `ne`, `gt`, `ge`, `lt`, `le`, `in (…)`, `and`, `or`, `not` and
    /// parentheses over `name`, `properties/status`, `properties/trigger`, `properties/repository`,
    /// `properties/digest`, `properties/tag`, `properties/createdAt` and `properties/finishedAt`
    /// (date-times such as 2026-11-01T00:00:00Z). Example:
    /// `properties/status in ('Queued', 'Running') and properties/trigger eq 'Push'`.
    /// The parameters above apply too.
    #[serde(rename = "$filter")]
    #[param(rename = "$filter")]
    pub filter: Option<String>,
    /// One sort key, then `asc` (the default) or `desc`: `name` or `properties/createdAt`
    /// (the same order: submission order, the default) or `properties/finishedAt` (unfinished
    /// scans first). Ties are broken by `name`.
    #[serde(rename = "$orderby")]
    #[param(rename = "$orderby")]
    pub orderby: Option<String>,
}

fn scan_url(subscription: &str, id: &str) -> String {
    format!("/subscriptions/{subscription}/providers/Microsoft.Security/scans/{id}")
}

fn render(row: ScanRow, registry_id: String, login_server: &str) -> Scan {
    let mut image = format!("{login_server}/{}", row.repository);
    if let Some(tag) = &row.tag {
        image.push(':');
        image.push_str(tag);
    }
    if let Some(digest) = &row.digest {
        image.push('@');
        image.push_str(digest);
    }
    let status = ScanStatus::parse(&row.status).unwrap_or(ScanStatus::Queued);
    let time = |t: Option<i64>| t.map(|t| Timestamp::from_micros(t).rfc3339());
    Scan {
        id: scan_url(&row.subscription_id, &row.id),
        name: row.id,
        resource_type: SCAN_TYPE.to_owned(),
        properties: ScanProperties {
            image,
            registry_id,
            repository: row.repository,
            tag: row.tag,
            digest: row.digest,
            trigger: ScanTrigger::parse(&row.triggered_by).unwrap_or(ScanTrigger::Api),
            status,
            attempts: row.attempts,
            created_at: Timestamp::from_micros(row.created_at).rfc3339(),
            started_at: time(row.started_at),
            finished_at: time(row.finished_at),
            next_attempt_at: (status == ScanStatus::Queued)
                .then(|| Timestamp::from_micros(row.run_after).rfc3339()),
            error: match (row.error_code, row.error_message) {
                (Some(code), Some(message)) => Some(ScanError { code, message }),
                _ => None,
            },
            summary: row
                .summary
                .as_deref()
                .and_then(|s| serde_json::from_str(s).ok()),
        },
    }
}

/// Renders scans with their registries' ids and login servers (one look-up per registry).
async fn render_all(state: &AppState, rows: Vec<ScanRow>) -> Result<Vec<Scan>, ApiError> {
    let ids: Vec<String> = rows.iter().map(|r| r.registry_id.clone()).collect();
    let registries =
        store::run(&state.pool, move |c| store::registries::by_row_ids(c, &ids)).await?;
    Ok(rows
        .into_iter()
        .map(|row| {
            let (id, login_server) = registries.get(&row.registry_id).map_or_else(
                || (String::new(), String::new()),
                |r| {
                    (
                        RegistryId::format(&r.subscription_id, &r.resource_group, &r.name),
                        r.login_server.clone(),
                    )
                },
            );
            render(row, id, &login_server)
        })
        .collect())
}

/// A polite client key: printable ASCII, at most 256 characters.
fn idempotency_key(req: &HttpRequest) -> Result<Option<String>, ApiError> {
    let Some(value) = req.headers().get("Idempotency-Key") else {
        return Ok(None);
    };
    let invalid = || {
        ApiError::invalid_parameter(
            "Idempotency-Key",
            format!(
                "The Idempotency-Key header must be 1 to {MAX_IDEMPOTENCY_KEY} printable ASCII characters."
            ),
        )
    };
    let key = value.to_str().map_err(|_| invalid())?.trim();
    if !valid_idempotency_key(key) {
        return Err(invalid());
    }
    Ok(Some(key.to_owned()))
}

/// 1 to 256 printable ASCII characters (after the white space around the value is dropped).
pub fn valid_idempotency_key(key: &str) -> bool {
    (1..=MAX_IDEMPOTENCY_KEY).contains(&key.len()) && key.bytes().all(|b| b.is_ascii_graphic())
}

/// Queues a scan of an image on a connected registry. A retried POST with the same
/// `Idempotency-Key` returns the first scan (the key sent with another image is refused with 422);
/// an image with a scan pending returns that scan. Refused (409 `PlanDisabled`) while the
/// subscription's Defender plan is Free.
#[utoipa::path(
    post,
    path = "/subscriptions/{subscriptionId}/providers/Microsoft.Security/scans",
    operation_id = "Scans_Submit",
    tag = "Scans",
    params(
        ("subscriptionId" = String, Path, description = "The subscription"),
        ("Idempotency-Key" = Option<String>, Header, description = "Makes a retried submission return the first scan"),
        ApiVersionQuery
    ),
    request_body = ScanSubmission,
    responses(
        (status = 202, description = "Queued (or the scan that stands); poll `Location`", body = Scan,
            headers(("Location" = String), ("Azure-AsyncOperation" = String), ("Retry-After" = u32))),
        (status = 409, description = "The subscription's Defender plan (Containers) is Free (`PlanDisabled`)", body = CloudError),
        (status = 422, description = "The Idempotency-Key was sent before with another image (`IdempotencyKeyReused`)", body = CloudError),
        (status = "default", description = "CloudError", body = CloudError)
    ),
    security(("bearer" = []))
)]
pub async fn submit(
    state: web::Data<AppState>,
    caller: Caller,
    req: HttpRequest,
    path: web::Path<String>,
    query: web::Query<ApiVersionQuery>,
    body: Json<ScanSubmission>,
) -> Result<HttpResponse, ApiError> {
    api_version::require(query.api_version.as_deref(), api_version::CROWSNEST)?;
    let subscription = SubscriptionId::parse(&path)?;
    caller.authorize(&subscription, Role::Contributor)?;
    let idempotency_key = idempotency_key(&req)?;
    let reference = ImageReference::parse(body.image.trim())
        .map_err(|e| ApiError::invalid_parameter("image", e.to_string()))?;
    let login_server = LoginServer::parse(&reference.registry)
        .map_err(|e| ApiError::invalid_parameter("image", e.to_string()))?;
    let sub = subscription.as_str().to_owned();
    let server = login_server.as_str().to_owned();
    let (registry, scanning) = store::run(&state.pool, move |c| {
        let registry = store::registries::find_by_login_server(c, &sub, &server)?;
        Ok((registry, pricings::scans(c, &sub)?))
    })
    .await?;
    let registry = registry.ok_or_else(|| {
        ApiError::not_found(
            "RegistryNotConnected",
            format!(
                "No registry with the login server '{}' is connected in subscription '{}'.",
                login_server.as_str(),
                subscription.as_str()
            ),
        )
    })?;
    if !scanning {
        return Err(ApiError::Conflict {
            code: health_cause::PLAN_DISABLED,
            message: format!(
                "The Defender plan (Containers) of subscription '{}' is Free: images are recorded but not scanned. Set it to Standard (PUT /subscriptions/{}/providers/Microsoft.Security/pricings/Containers) to scan.",
                subscription.as_str(),
                subscription.as_str()
            ),
        });
    }
    let submission = Submission {
        registry: registry.clone(),
        repository: reference.repository.clone(),
        tag: match (&reference.tag, &reference.digest) {
            (None, None) => Some("latest".to_owned()),
            (tag, _) => tag.clone(),
        },
        digest: reference.digest.as_ref().map(ToString::to_string),
        trigger: ScanTrigger::Api,
        idempotency_key,
    };
    let (row, created) = state.queue.submit(submission.clone()).await?;
    if submission.reuses_key_of_another_image(&row) {
        return Err(ApiError::Unprocessable {
            code: "IdempotencyKeyReused",
            message: format!(
                "This Idempotency-Key was used for scan '{}' of another image; send a new key with a new image.",
                row.id
            ),
            target: Some("Idempotency-Key".to_owned()),
        });
    }
    if created {
        tracing::info!(scan = %row.id, image = %reference, by = %caller.subject, "scan submitted");
    }
    let url = format!(
        "{}{}?api-version={}",
        state.public_url.as_str().trim_end_matches('/'),
        scan_url(&row.subscription_id, &row.id),
        api_version::CROWSNEST
    );
    let registry_id = RegistryId::format(
        &registry.subscription_id,
        &registry.resource_group,
        &registry.name,
    );
    let scan = render(row, registry_id, &registry.login_server);
    Ok(HttpResponse::Accepted()
        .insert_header(("Location", url.clone()))
        .insert_header(("Azure-AsyncOperation", url))
        .insert_header(("Retry-After", RETRY_AFTER_SECONDS.to_string()))
        .json(scan))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct ScanPath {
    #[serde(rename = "subscriptionId")]
    #[param(rename = "subscriptionId")]
    pub subscription_id: String,
    #[serde(rename = "scanId")]
    #[param(rename = "scanId")]
    pub scan_id: String,
}

/// Reads a scan: its status, attempts, error and summary.
#[utoipa::path(
    get,
    path = "/subscriptions/{subscriptionId}/providers/Microsoft.Security/scans/{scanId}",
    operation_id = "Scans_Get",
    tag = "Scans",
    params(ScanPath, ApiVersionQuery),
    responses(
        (status = 200, description = "The scan", body = Scan),
        (status = "default", description = "CloudError", body = CloudError)
    ),
    security(("bearer" = []))
)]
pub async fn get(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<ScanPath>,
    query: web::Query<ApiVersionQuery>,
) -> Result<HttpResponse, ApiError> {
    api_version::require(query.api_version.as_deref(), api_version::CROWSNEST)?;
    let subscription = SubscriptionId::parse(&path.subscription_id)?;
    caller.authorize(&subscription, Role::Reader)?;
    let id = path.scan_id.clone();
    let sub = subscription.as_str().to_owned();
    let row = store::run(&state.pool, move |c| store::scans::find(c, &sub, &id))
        .await?
        .ok_or_else(|| {
            ApiError::not_found(
                "ScanNotFound",
                format!("There is no scan '{}' in this subscription.", path.scan_id),
            )
        })?;
    let pending = ScanStatus::parse(&row.status).is_some_and(ScanStatus::is_pending);
    let scan = render_all(&state, vec![row]).await?.remove(0);
    let mut response = HttpResponse::Ok();
    if pending {
        response.insert_header(("Retry-After", RETRY_AFTER_SECONDS.to_string()));
    }
    Ok(response.json(scan))
}

/// Lists a subscription's scans, newest submissions included, filtered by status, trigger,
/// repository or digest, or by a `$filter`, and sorted by `$orderby`.
#[utoipa::path(
    get,
    path = "/subscriptions/{subscriptionId}/providers/Microsoft.Security/scans",
    operation_id = "Scans_List",
    tag = "Scans",
    params(("subscriptionId" = String, Path, description = "The subscription"), ScanListQuery),
    responses(
        (status = 200, description = "One page of scans", body = ScanList),
        (status = "default", description = "CloudError", body = CloudError)
    ),
    security(("bearer" = []))
)]
pub async fn list(
    state: web::Data<AppState>,
    caller: Caller,
    req: HttpRequest,
    path: web::Path<String>,
    query: web::Query<ScanListQuery>,
) -> Result<web::Json<ScanList>, ApiError> {
    api_version::require(query.api_version.as_deref(), api_version::CROWSNEST)?;
    let subscription = SubscriptionId::parse(&path)?;
    caller.authorize(&subscription, Role::Reader)?;
    // The simple parameters are checked here (with their own targets), then join the $filter.
    let status = query
        .status
        .as_deref()
        .map(|s| {
            ScanStatus::parse(s).ok_or_else(|| {
                ApiError::invalid_parameter(
                    "status",
                    format!("Unknown status {s:?}: use Queued, Running, Succeeded or Failed."),
                )
            })
        })
        .transpose()?;
    let trigger = query
        .trigger
        .as_deref()
        .map(|t| {
            ScanTrigger::parse(t).ok_or_else(|| {
                ApiError::invalid_parameter(
                    "trigger",
                    format!(
                        "Unknown trigger {t:?}: use Api, Push, Rescan, AdvisoryUpdate or Runtime."
                    ),
                )
            })
        })
        .transpose()?;
    let repository = query
        .repository
        .as_deref()
        .map(|r| {
            RepositoryName::parse(r)
                .map_err(|e| ApiError::invalid_parameter("repository", e.to_string()))
        })
        .transpose()?;
    let digest = query
        .digest
        .as_deref()
        .map(|d| Digest::parse(d).map_err(|e| ApiError::invalid_parameter("digest", e.to_string())))
        .transpose()?;
    let simple = [
        status.map(|s| odata::equals("properties/status", s.as_str())),
        trigger.map(|t| odata::equals("properties/trigger", t.as_str())),
        repository.map(|r| odata::equals("properties/repository", r.as_str())),
        digest.map(|d| odata::equals("properties/digest", d.as_str())),
    ]
    .into_iter()
    .flatten()
    .reduce(|a, b| crate::domain::odata::Expr::And(Box::new(a), Box::new(b)));
    let options =
        QueryOptions::parse(query.filter.as_deref(), query.orderby.as_deref())?.and(simple);
    let listing = store::scans::listing(options.filter.as_ref(), options.orderby.as_ref())?;
    let page_query = ListQuery {
        api_version: None,
        top: query.top.clone(),
        skip_token: query.skip_token.clone(),
    };
    let sub = subscription.as_str().to_owned();
    let page = keyset_page(&state, &req, &page_query, listing, |listing, limit| {
        store::run(&state.pool, move |c| {
            store::scans::list(c, &sub, &listing, limit)
        })
    })
    .await?;
    Ok(web::Json(ScanList {
        value: render_all(&state, page.value).await?,
        next_link: page.next_link,
    }))
}
