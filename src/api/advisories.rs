//! The advisory database: OSV import, look-up and status (api-version 2026-11-01).

use actix_web::web;
use futures_util::StreamExt;
use serde::Serialize;
use std::io::Write;
use utoipa::{IntoParams, ToSchema};

use super::AppState;
use super::api_version::{self, ApiVersionQuery};
use crate::api::auth::Caller;
use crate::domain::{Role, Timestamp};
use crate::error::{ApiError, CloudError};
use crate::jobs::advisory_sources;
use crate::jobs::import_advisories::{self, ImportSummary};
use crate::jobs::rescans;
use crate::store;
use crate::store::findings::FindingScope;

/// What the import body is called in answers (never its temporary file's path).
const REQUEST_BODY: &str = "request body";

/// The largest import body accepted (osv.dev's whole `all.zip` is a few hundred MiB).
pub const MAX_IMPORT_BYTES: usize = 1024 * 1024 * 1024;

#[derive(Debug, serde::Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct AdvisoryPath {
    /// The OSV id (`DSA-5532-1`, `GHSA-…`, `CVE-…`).
    pub id: String,
}

/// One stored advisory.
#[derive(Debug, Serialize, ToSchema)]
pub struct Advisory {
    /// `/providers/Microsoft.Security/advisories/{id}`
    pub id: String,
    pub name: String,
    #[serde(rename = "type")]
    pub resource_type: String,
    pub properties: AdvisoryProperties,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AdvisoryProperties {
    pub summary: String,
    pub modified: String,
    pub published: Option<String>,
    /// Set when the record was withdrawn: it no longer matches anything.
    pub withdrawn: Option<String>,
    /// The record's own severity, when it has one (else findings borrow an alias's).
    pub severity: Option<String>,
    pub severity_source: Option<String>,
    pub imported_at: String,
    /// The OSV record as imported.
    #[schema(value_type = Object)]
    pub record: serde_json::Value,
}

/// What the advisory database holds.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AdvisoryStatus {
    pub advisories: i64,
    pub withdrawn: i64,
    /// Live advisories per OSV ecosystem (`Debian:12`, `Alpine:v3.18`, `PyPI`, …).
    pub per_ecosystem: Vec<EcosystemCount>,
    pub last_import: Option<LastImport>,
    /// CVE ratings stored per severity source (`debian-tracker`, `nvd`).
    pub severity_ratings: Vec<RatingCount>,
    /// Open findings, in the subscriptions the caller reaches, whose severity no source decided
    /// (`severitySource: default`, shown as Medium).
    pub default_severity_findings: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RatingCount {
    pub source: String,
    pub ratings: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct EcosystemCount {
    pub ecosystem: String,
    pub advisories: i64,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LastImport {
    pub source: String,
    pub started_at: String,
    pub finished_at: String,
    pub added: i32,
    pub updated: i32,
    pub unchanged: i32,
    pub withdrawn: i32,
    pub rejected: i32,
}

/// Imports OSV records: one JSON record, a JSON array of records, `{"vulns": […]}`, or a zip of
/// records (osv.dev's `all.zip` layout). Malformed records (a NUL character in any string
/// included) are rejected with their ids and reasons; the rest are imported. A body that is neither
/// JSON nor a zip is refused. Re-importing the same data changes nothing.
#[utoipa::path(
    post,
    path = "/providers/Microsoft.Security/advisories:import",
    operation_id = "Advisories_Import",
    tag = "Advisories",
    params(ApiVersionQuery),
    request_body(content = Object, description = "An OSV record, an array of them, `{\"vulns\": […]}`, or a zip of records (application/zip)", content_type = "application/json"),
    responses(
        (status = 200, description = "What the import did", body = ImportSummary),
        (status = "default", description = "CloudError", body = CloudError)
    ),
    security(("bearer" = []))
)]
pub async fn import(
    state: web::Data<AppState>,
    caller: Caller,
    query: web::Query<ApiVersionQuery>,
    mut payload: web::Payload,
) -> Result<web::Json<ImportSummary>, ApiError> {
    api_version::require(query.api_version.as_deref(), api_version::CROWSNEST)?;
    caller.require_role(Role::Admin)?;
    // Spooled to disk: a zip of every advisory need not fit in memory.
    let internal = |e: std::io::Error| ApiError::Internal(e.into());
    let mut body = tempfile::NamedTempFile::new().map_err(internal)?;
    let mut size = 0usize;
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| {
            ApiError::bad_request(
                "InvalidRequestContent",
                format!("The request body could not be read: {e}"),
            )
        })?;
        size += chunk.len();
        if size > MAX_IMPORT_BYTES {
            return Err(ApiError::PayloadTooLarge(format!(
                "An import body may hold at most {MAX_IMPORT_BYTES} bytes."
            )));
        }
        body.write_all(&chunk).map_err(internal)?;
    }
    if size == 0 {
        return Err(ApiError::bad_request(
            "InvalidRequestContent",
            "The request body is empty: send OSV JSON or a zip of records.",
        ));
    }
    let pool = state.pool.clone();
    let summary = web::block(move || {
        advisory_sources::require_json_or_zip(REQUEST_BODY, body.path())?;
        import_advisories::import_files(
            &pool,
            &[(REQUEST_BODY.to_owned(), body.path().to_path_buf())],
            &|_| {},
        )
    })
    .await
    .map_err(|e| ApiError::Internal(anyhow::anyhow!("the import task failed: {e}")))?
    .map_err(|e| match e {
        import_advisories::ImportError::Source(source) => {
            ApiError::bad_request("InvalidRequestContent", source.to_string())
        }
        import_advisories::ImportError::Store(store) => store.into(),
    })?;
    rescans::after_import(Some(&state.queue), &summary);
    tracing::info!(by = %caller.subject, added = summary.added, updated = summary.updated, unchanged = summary.unchanged,
        rejected = summary.rejected.len(), images_queued = summary.images_queued, "advisories imported");
    Ok(web::Json(summary))
}

/// One advisory, with the OSV record as imported.
#[utoipa::path(
    get,
    path = "/providers/Microsoft.Security/advisories/{id}",
    operation_id = "Advisories_Get",
    tag = "Advisories",
    params(AdvisoryPath, ApiVersionQuery),
    responses(
        (status = 200, description = "The advisory", body = Advisory),
        (status = "default", description = "CloudError", body = CloudError)
    ),
    security(("bearer" = []))
)]
pub async fn get(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<AdvisoryPath>,
    query: web::Query<ApiVersionQuery>,
) -> Result<web::Json<Advisory>, ApiError> {
    api_version::require(query.api_version.as_deref(), api_version::CROWSNEST)?;
    caller.require_role(Role::Reader)?;
    let id = path.into_inner().id;
    let lookup = id.clone();
    let row = store::run(&state.pool, move |c| store::advisories::find(c, &lookup)).await?;
    let row = row.ok_or_else(|| {
        ApiError::not_found(
            "AdvisoryNotFound",
            format!(
                "No advisory '{}' has been imported.",
                id.chars().take(100).collect::<String>()
            ),
        )
    })?;
    let time = |t: i64| Timestamp::from_micros(t).rfc3339();
    Ok(web::Json(Advisory {
        id: format!("/providers/Microsoft.Security/advisories/{}", row.id),
        name: row.id,
        resource_type: "Microsoft.Security/advisories".to_owned(),
        properties: AdvisoryProperties {
            summary: row.summary,
            modified: time(row.modified),
            published: row.published.map(time),
            withdrawn: row.withdrawn.map(time),
            severity: row.severity,
            severity_source: row.severity_source,
            imported_at: time(row.imported_at),
            record: serde_json::from_str(&row.raw).unwrap_or(serde_json::Value::Null),
        },
    }))
}

/// Counts per ecosystem, the last import, the severity ratings per source and the caller's
/// findings still rated by default.
#[utoipa::path(
    get,
    path = "/providers/Microsoft.Security/advisories:status",
    operation_id = "Advisories_Status",
    tag = "Advisories",
    params(ApiVersionQuery),
    responses(
        (status = 200, description = "The advisory database", body = AdvisoryStatus),
        (status = "default", description = "CloudError", body = CloudError)
    ),
    security(("bearer" = []))
)]
pub async fn status(
    state: web::Data<AppState>,
    caller: Caller,
    query: web::Query<ApiVersionQuery>,
) -> Result<web::Json<AdvisoryStatus>, ApiError> {
    api_version::require(query.api_version.as_deref(), api_version::CROWSNEST)?;
    caller.require_role(Role::Reader)?;
    let scopes: Option<Vec<FindingScope>> = caller.subscriptions().map(|subscriptions| {
        subscriptions
            .into_iter()
            .map(|s| FindingScope::Subscription(s.as_str().to_owned()))
            .collect()
    });
    let (status, ratings, unrated) = store::run(&state.pool, move |c| {
        let unrated = match &scopes {
            None => store::findings::default_severity_count(c, None)?,
            Some(scopes) => scopes.iter().try_fold(0, |sum, scope| {
                store::findings::default_severity_count(c, Some(scope)).map(|n| sum + n)
            })?,
        };
        Ok((
            store::advisories::status(c)?,
            store::severity_ratings::counts(c)?,
            unrated,
        ))
    })
    .await?;
    let time = |t: i64| Timestamp::from_micros(t).rfc3339();
    Ok(web::Json(AdvisoryStatus {
        advisories: status.advisories,
        withdrawn: status.withdrawn,
        per_ecosystem: status
            .per_ecosystem
            .into_iter()
            .map(|(ecosystem, advisories)| EcosystemCount {
                ecosystem,
                advisories,
            })
            .collect(),
        last_import: status.last_import.map(|i| LastImport {
            source: i.source,
            started_at: time(i.started_at),
            finished_at: time(i.finished_at),
            added: i.added,
            updated: i.updated,
            unchanged: i.unchanged,
            withdrawn: i.withdrawn,
            rejected: i.rejected,
        }),
        severity_ratings: ratings
            .into_iter()
            .map(|(source, ratings)| RatingCount { source, ratings })
            .collect(),
        default_severity_findings: unrated,
    }))
}
