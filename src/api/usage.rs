//! Billing: which images a subscription was billed for (each digest once, on its first successful scan).

use actix_web::{HttpRequest, web};
use chrono::{DateTime, Datelike, TimeZone, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::AppState;
use super::api_version;
use super::paging::{ListQuery, paginate};
use crate::api::auth::Caller;
use crate::domain::{RegistryId, Role, SubscriptionId, Timestamp};
use crate::error::{ApiError, CloudError};
use crate::store;

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct UsageQuery {
    #[serde(rename = "api-version")]
    #[param(rename = "api-version")]
    pub api_version: Option<String>,
    /// Start of the period (RFC 3339, inclusive); default: the start of the current month (UTC).
    pub from: Option<String>,
    /// End of the period (RFC 3339, exclusive); default: now.
    pub to: Option<String>,
    #[serde(rename = "$top")]
    #[param(rename = "$top", value_type = Option<i64>, minimum = 1, maximum = 1000)]
    pub top: Option<String>,
    #[serde(rename = "$skipToken")]
    #[param(rename = "$skipToken")]
    pub skip_token: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Usage {
    pub from: String,
    pub to: String,
    /// Images billed in the period (all pages).
    pub billed_images: i64,
    pub value: Vec<BillingRecord>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_link: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct BillingRecord {
    pub digest: String,
    /// The registry row's id when it was billed (the registry may have been disconnected since).
    pub registry_id: String,
    pub repository: String,
    pub scan_id: String,
    pub billed_at: String,
}

fn parse_time(raw: &str, target: &str) -> Result<i64, ApiError> {
    DateTime::parse_from_rfc3339(raw)
        .map(|t| t.with_timezone(&Utc).timestamp_micros())
        .map_err(|e| {
            ApiError::invalid_parameter(
                target,
                format!("{target} must be an RFC 3339 time such as 2026-11-01T00:00:00Z: {e}."),
            )
        })
}

/// Lists the images billed in a period.
#[utoipa::path(
    get,
    path = "/subscriptions/{subscriptionId}/providers/Microsoft.Security/usage",
    operation_id = "Usage_List",
    tag = "Scans",
    params(("subscriptionId" = String, Path, description = "The subscription"), UsageQuery),
    responses(
        (status = 200, description = "Billing records, oldest first", body = Usage),
        (status = "default", description = "CloudError", body = CloudError)
    ),
    security(("bearer" = []))
)]
pub async fn list(
    state: web::Data<AppState>,
    caller: Caller,
    req: HttpRequest,
    path: web::Path<String>,
    query: web::Query<UsageQuery>,
) -> Result<web::Json<Usage>, ApiError> {
    api_version::require(query.api_version.as_deref(), api_version::CROWSNEST)?;
    let subscription = SubscriptionId::parse(&path)?;
    caller.authorize(&subscription, Role::Reader)?;
    let now = Utc::now();
    let from = match query.from.as_deref() {
        Some(raw) => parse_time(raw, "from")?,
        None => Utc
            .with_ymd_and_hms(now.year(), now.month(), 1, 0, 0, 0)
            .single()
            .map_or(0, |t| t.timestamp_micros()),
    };
    let to = match query.to.as_deref() {
        Some(raw) => parse_time(raw, "to")?,
        None => now.timestamp_micros() + 1,
    };
    if from >= to {
        return Err(ApiError::invalid_parameter(
            "from",
            "from must be earlier than to.",
        ));
    }
    let page = ListQuery {
        api_version: None,
        top: query.top.clone(),
        skip_token: query.skip_token.clone(),
    }
    .page(2)?;
    let after = match &page.after {
        Some(k) => Some((
            k[0].parse::<i64>().map_err(|_| {
                ApiError::invalid_parameter(
                    "$skipToken",
                    "The $skipToken is not one this service issued.",
                )
            })?,
            k[1].clone(),
        )),
        None => None,
    };
    let top = page.top;
    let sub = subscription.as_str().to_owned();
    let (rows, count) = store::run(&state.pool, move |c| {
        let rows = store::billing::list(
            c,
            &sub,
            from,
            to,
            after.as_ref().map(|(t, id)| (*t, id.as_str())),
            top + 1,
        )?;
        let count = store::billing::count(c, &sub, from, to)?;
        Ok((rows, count))
    })
    .await?;
    let registries: std::collections::HashMap<String, String> = {
        let ids: Vec<String> = rows.iter().map(|r| r.registry_id.clone()).collect();
        store::run(&state.pool, move |c| store::registries::by_row_ids(c, &ids))
            .await?
            .into_iter()
            .map(|(id, r)| {
                (
                    id,
                    RegistryId::format(&r.subscription_id, &r.resource_group, &r.name),
                )
            })
            .collect()
    };
    let page = paginate(
        rows,
        top,
        |r| vec![r.billed_at.to_string(), r.id.clone()],
        |token| super::paging::next_link(&state.public_url, req.path(), req.query_string(), token),
        |r| BillingRecord {
            registry_id: registries
                .get(&r.registry_id)
                .cloned()
                .unwrap_or(r.registry_id),
            digest: r.digest,
            repository: r.repository,
            scan_id: r.scan_id,
            billed_at: Timestamp::from_micros(r.billed_at).rfc3339(),
        },
    );
    Ok(web::Json(Usage {
        from: Timestamp::from_micros(from).rfc3339(),
        to: Timestamp::from_micros(to).rfc3339(),
        billed_images: count,
        value: page.value,
        next_link: page.next_link,
    }))
}
