//! Synced advisory sources: their status, and a sync on request (api-version 2026-11-01).

use actix_web::web;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::AppState;
use super::api_version::{self, ApiVersionQuery};
use crate::api::auth::Caller;
use crate::domain::{Role, SourceName, Timestamp};
use crate::error::{ApiError, CloudError};
use crate::jobs::advisory_sync::{SyncReport, SyncResult};
use crate::store;
use crate::store::advisory_sources::SourceRow;

const RESOURCE_TYPE: &str = "Microsoft.Security/advisorySources";

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct SourcePath {
    /// The source's name: `osv:<Ecosystem>` (`osv:Debian`, `osv:Red Hat`), a configured zip URL
    /// or directory (percent-encoded), or a feed (`kev`, `epss`, `debian-tracker`, `nvd`).
    pub name: String,
}

/// One advisory source.
#[derive(Debug, Serialize, ToSchema)]
pub struct AdvisorySource {
    /// `/providers/Microsoft.Security/advisorySources/{name}`
    pub id: String,
    pub name: String,
    #[serde(rename = "type")]
    pub resource_type: String,
    pub properties: AdvisorySourceProperties,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AdvisorySourceProperties {
    /// Whether `CROWSNEST_ADVISORY_SOURCES` (with `auto`, the stored images) names it; other
    /// sources are listed because they were synced once.
    pub configured: bool,
    pub last_attempt: Option<String>,
    /// The data's freshness: the last sync that succeeded, whether or not it changed anything.
    pub last_success: Option<String>,
    /// Records the source held at its last successful sync.
    pub records: i64,
    /// The newest `modified` among them (a feed's own date for feeds).
    pub newest_modified: Option<String>,
    /// Records the last successful sync added or changed.
    pub last_changed: i64,
    /// Why the syncs since the last success failed (null after a success).
    pub last_error: Option<String>,
    pub consecutive_failures: i32,
    /// When `serve` syncs it next (in the past: at its next look, within a minute).
    pub next_run: String,
    /// A process is syncing it now.
    pub syncing: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AdvisorySourceList {
    pub value: Vec<AdvisorySource>,
}

fn render(name: String, row: Option<SourceRow>, configured: bool, now: i64) -> AdvisorySource {
    let time = |t: i64| Timestamp::from_micros(t).rfc3339();
    let row = row.unwrap_or_else(|| SourceRow {
        name: name.clone(),
        last_attempt_at: None,
        last_success_at: None,
        records: 0,
        newest_modified: None,
        last_changed: 0,
        last_error: None,
        next_run_at: 0,
        failures: 0,
        etag: None,
        last_modified: None,
        sync_cursor: None,
        lease_owner: None,
        lease_until: None,
    });
    AdvisorySource {
        id: format!("/providers/Microsoft.Security/advisorySources/{name}"),
        name,
        resource_type: RESOURCE_TYPE.to_owned(),
        properties: AdvisorySourceProperties {
            configured,
            last_attempt: row.last_attempt_at.map(time),
            last_success: row.last_success_at.map(time),
            records: row.records,
            newest_modified: row.newest_modified.map(time),
            last_changed: row.last_changed,
            last_error: row.last_error,
            consecutive_failures: row.failures,
            // A source never synced is due at once.
            next_run: time(if row.next_run_at == 0 {
                now
            } else {
                row.next_run_at
            }),
            syncing: row.lease_owner.is_some() && row.lease_until.is_some_and(|u| u >= now),
        },
    }
}

/// The configured sources and every source synced before: when each last ran and succeeded,
/// what it holds, its last error and its next run.
#[utoipa::path(
    get,
    path = "/providers/Microsoft.Security/advisorySources",
    operation_id = "AdvisorySources_List",
    tag = "Advisories",
    params(ApiVersionQuery),
    responses(
        (status = 200, description = "The advisory sources, by name", body = AdvisorySourceList),
        (status = "default", description = "CloudError", body = CloudError)
    ),
    security(("bearer" = []))
)]
pub async fn list(
    state: web::Data<AppState>,
    caller: Caller,
    query: web::Query<ApiVersionQuery>,
) -> Result<web::Json<AdvisorySourceList>, ApiError> {
    api_version::require(query.api_version.as_deref(), api_version::CROWSNEST)?;
    caller.require_role(Role::Reader)?;
    let configured: Vec<String> = state
        .advisory_sync
        .configured()
        .await?
        .iter()
        .map(ToString::to_string)
        .collect();
    let mut rows: std::collections::BTreeMap<String, Option<SourceRow>> =
        configured.iter().map(|name| (name.clone(), None)).collect();
    for row in store::run(&state.pool, store::advisory_sources::list).await? {
        rows.insert(row.name.clone(), Some(row));
    }
    let now = Timestamp::now().micros();
    Ok(web::Json(AdvisorySourceList {
        value: rows
            .into_iter()
            .map(|(name, row)| {
                let configured = configured.contains(&name);
                render(name, row, configured, now)
            })
            .collect(),
    }))
}

/// Syncs one source now and answers with what the sync did (`result`: `Updated`, `Unchanged` or
/// `Failed`, with the error, which the source's status shows as well). Any `osv:` ecosystem may be
/// synced; a zip URL, directory or feed only when configured or synced before. 409 when another
/// process is syncing the source.
#[utoipa::path(
    post,
    path = "/providers/Microsoft.Security/advisorySources/{name}:sync",
    operation_id = "AdvisorySources_Sync",
    tag = "Advisories",
    params(SourcePath, ApiVersionQuery),
    responses(
        (status = 200, description = "What the sync did", body = SyncReport),
        (status = "default", description = "CloudError", body = CloudError)
    ),
    security(("bearer" = []))
)]
pub async fn sync(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<SourcePath>,
    query: web::Query<ApiVersionQuery>,
) -> Result<web::Json<SyncReport>, ApiError> {
    api_version::require(query.api_version.as_deref(), api_version::CROWSNEST)?;
    caller.require_role(Role::Admin)?;
    let raw = path.into_inner().name;
    let not_found = || {
        ApiError::not_found(
            "AdvisorySourceNotFound",
            format!(
                "'{}' is neither an osv:<Ecosystem> source nor a configured or known one.",
                raw.chars().take(200).collect::<String>()
            ),
        )
    };
    let source = SourceName::parse(&raw).map_err(|_| not_found())?;
    if source.ecosystem().is_none() {
        let name = source.to_string();
        let known = state.advisory_sync.configured().await?.contains(&source)
            || store::run(&state.pool, move |c| {
                store::advisory_sources::find(c, &name)
            })
            .await?
            .is_some();
        if !known {
            return Err(not_found());
        }
    }
    let report = state
        .advisory_sync
        .sync(std::slice::from_ref(&source), None)
        .await
        .into_iter()
        .next()
        .ok_or_else(|| ApiError::Internal(anyhow::anyhow!("the sync reported nothing")))?;
    if report.result == SyncResult::Busy {
        return Err(ApiError::Conflict {
            code: "AdvisorySourceBusy",
            message: format!("Another process is syncing '{source}' now; try again later."),
        });
    }
    tracing::info!(by = %caller.subject, source = %source, result = ?report.result, "advisory source synced on request");
    Ok(web::Json(report))
}
