//! The Defender plan per subscription, as Azure's Pricings API (api-version 2024-01-01, what
//! azure-mgmt-security 7.0.0 sends): `Containers`, and `ContainerRegistry` (Azure's deprecated
//! name for it) showing and setting the same state. What the tier decides is `jobs::pricings`.
//!
//! Constant fields, since Crowsnest has no trial, no sub-plans and no scopes below a subscription:
//! `freeTrialRemainingTime` is `PT0S`, `enforce` and `inherited` are `"False"`, `subPlan` and
//! `inheritedFrom` are absent. `resourcesCoverageStatus` follows the tier (`FullyCovered` on
//! Standard, `NotCovered` on Free), as does the one extension,
//! `ContainerRegistriesVulnerabilityAssessments`. `enablementTime` is when the tier was last set to
//! Standard, absent on Free and on the default (never set). Other plan names are 404.

use actix_web::{HttpResponse, web};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::AppState;
use super::api_version;
use super::input::Json;
use crate::api::auth::Caller;
use crate::domain::{
    PricingPlan, PricingTier, Role, Scope, SubscriptionId, Timestamp, parse_name_filter,
};
use crate::error::{ApiError, CloudError};
use crate::jobs::pricings::{self, Pricing};
use crate::store;

pub const PRICING_TYPE: &str = "Microsoft.Security/pricings";

/// The extension of the Containers plan that is registry scanning.
pub const SCANNING_EXTENSION: &str = "ContainerRegistriesVulnerabilityAssessments";

/// A Defender plan's pricing configuration.
#[derive(Debug, Serialize, ToSchema)]
pub struct PricingResource {
    /// `/subscriptions/{id}/providers/Microsoft.Security/pricings/{name}`
    pub id: String,
    /// `Containers` or `ContainerRegistry`.
    pub name: String,
    /// `Microsoft.Security/pricings`
    #[serde(rename = "type")]
    pub resource_type: String,
    pub properties: PricingProperties,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PricingProperties {
    /// `Standard`: the subscription's images are scanned and billed; `Free`: recorded only.
    #[schema(example = "Standard")]
    pub pricing_tier: String,
    /// Never present: the plan has no sub-plans.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sub_plan: Option<String>,
    /// Always `PT0S`: there is no free trial.
    pub free_trial_remaining_time: String,
    /// When the tier was last set to Standard (RFC 3339); absent on Free and before any change.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub enablement_time: Option<String>,
    /// Always `"False"`: there are no scopes below a subscription to force it on.
    pub enforce: String,
    /// Always `"False"`: a subscription's plan is its own.
    pub inherited: String,
    /// Never present (nothing is inherited).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub inherited_from: Option<String>,
    /// `FullyCovered` on Standard, `NotCovered` on Free.
    pub resources_coverage_status: String,
    /// `ContainerRegistriesVulnerabilityAssessments`, enabled on Standard.
    pub extensions: Vec<PricingExtension>,
    /// True for `ContainerRegistry`, replaced by `Containers`.
    pub deprecated: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replaced_by: Option<Vec<String>>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PricingExtension {
    /// `ContainerRegistriesVulnerabilityAssessments`
    pub name: String,
    /// `"True"` or `"False"` (strings, as Azure writes them).
    pub is_enabled: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PricingList {
    pub value: Vec<PricingResource>,
}

/// A PUT body. Read-only fields a client sends back (`id`, `enablementTime`, …) are ignored.
#[derive(Debug, Deserialize, ToSchema)]
pub struct PricingUpdate {
    pub properties: PricingUpdateProperties,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PricingUpdateProperties {
    /// `Free` or `Standard`.
    pub pricing_tier: String,
    /// Must be absent (or null): the plan has no sub-plans.
    #[serde(default)]
    pub sub_plan: Option<String>,
    /// `"False"` or absent.
    #[serde(default)]
    pub enforce: Option<String>,
    /// Optional; `ContainerRegistriesVulnerabilityAssessments` may be named, enabled exactly when
    /// the tier is Standard (registry scanning is the plan).
    #[serde(default)]
    pub extensions: Option<Vec<PricingExtension>>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PricingListQuery {
    #[serde(rename = "api-version")]
    #[param(rename = "api-version")]
    pub api_version: Option<String>,
    /// `name in (planName1,planName2,...)`: only these plans.
    #[serde(rename = "$filter")]
    #[param(rename = "$filter")]
    pub filter: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PricingQuery {
    #[serde(rename = "api-version")]
    #[param(rename = "api-version")]
    pub api_version: Option<String>,
}

/// A plan's resource as the API shows it.
pub fn render(subscription: &str, plan: PricingPlan, pricing: &Pricing) -> PricingResource {
    let standard = pricing.tier == PricingTier::Standard;
    let flag = |on: bool| if on { "True" } else { "False" }.to_owned();
    PricingResource {
        id: format!(
            "/subscriptions/{subscription}/providers/Microsoft.Security/pricings/{}",
            plan.as_str()
        ),
        name: plan.as_str().to_owned(),
        resource_type: PRICING_TYPE.to_owned(),
        properties: PricingProperties {
            pricing_tier: pricing.tier.as_str().to_owned(),
            sub_plan: None,
            free_trial_remaining_time: "PT0S".to_owned(),
            enablement_time: pricing
                .enablement_time
                .filter(|_| standard)
                .map(|t| Timestamp::from_micros(t).rfc3339()),
            enforce: flag(false),
            inherited: flag(false),
            inherited_from: None,
            resources_coverage_status: if standard {
                "FullyCovered"
            } else {
                "NotCovered"
            }
            .to_owned(),
            extensions: vec![PricingExtension {
                name: SCANNING_EXTENSION.to_owned(),
                is_enabled: flag(standard),
            }],
            deprecated: plan.replaced_by().is_some(),
            replaced_by: plan.replaced_by().map(|p| vec![p.as_str().to_owned()]),
        },
    }
}

/// The subscription of a `{scopeId}`, checked against the caller before anything is looked up.
fn authorize(caller: &Caller, raw_scope: &str, role: Role) -> Result<SubscriptionId, ApiError> {
    let invalid = |message: String| ApiError::BadRequest {
        code: "InvalidScope",
        message,
        target: Some("scope".to_owned()),
    };
    match Scope::parse(raw_scope).map_err(|e| invalid(e.to_string()))? {
        Scope::Subscription(subscription) => {
            caller.authorize(&subscription, role)?;
            Ok(subscription)
        }
        _ => Err(invalid(
            "Defender plans are set per subscription: use the scope subscriptions/{id}.".to_owned(),
        )),
    }
}

fn plan(name: &str) -> Result<PricingPlan, ApiError> {
    PricingPlan::parse(name).ok_or_else(|| {
        ApiError::not_found(
            "PricingNotFound",
            format!(
                "The pricing '{}' does not exist here: Crowsnest has the plans Containers and ContainerRegistry (its deprecated name).",
                name.chars().take(100).collect::<String>()
            ),
        )
    })
}

/// The tier a PUT body asks for, after checking the rest of it agrees.
fn requested_tier(props: &PricingUpdateProperties) -> Result<PricingTier, ApiError> {
    let tier = PricingTier::parse(&props.pricing_tier).ok_or_else(|| {
        ApiError::invalid_parameter(
            "properties.pricingTier",
            format!(
                "The pricing tier '{}' is invalid: use Free or Standard.",
                props.pricing_tier.chars().take(40).collect::<String>()
            ),
        )
    })?;
    if props.sub_plan.as_deref().is_some_and(|s| !s.is_empty()) {
        return Err(ApiError::invalid_parameter(
            "properties.subPlan",
            "The Containers plan has no sub-plans: leave subPlan out.",
        ));
    }
    if props.enforce.as_deref().is_some_and(|e| e != "False") {
        return Err(ApiError::invalid_parameter(
            "properties.enforce",
            "enforce can only be \"False\": there are no scopes below a subscription to force the plan on.",
        ));
    }
    for extension in props.extensions.iter().flatten() {
        let enabled = match extension.is_enabled.as_str() {
            "True" => true,
            "False" => false,
            _ => {
                return Err(ApiError::invalid_parameter(
                    "properties.extensions",
                    "An extension's isEnabled is \"True\" or \"False\".",
                ));
            }
        };
        if extension.name != SCANNING_EXTENSION {
            return Err(ApiError::invalid_parameter(
                "properties.extensions",
                format!(
                    "The Containers plan has the one extension {SCANNING_EXTENSION}, not '{}'.",
                    extension.name.chars().take(100).collect::<String>()
                ),
            ));
        }
        if enabled != (tier == PricingTier::Standard) {
            return Err(ApiError::invalid_parameter(
                "properties.extensions",
                format!(
                    "{SCANNING_EXTENSION} is registry scanning, which is the plan itself: it is enabled exactly when pricingTier is Standard."
                ),
            ));
        }
    }
    Ok(tier)
}

/// Lists the subscription's Defender plans (Containers and ContainerRegistry).
#[utoipa::path(
    get,
    path = "/{scope}/providers/Microsoft.Security/pricings",
    operation_id = "Pricings_List",
    tag = "Pricings",
    params(
        ("scope" = String, Path, description = "`subscriptions/{subscriptionId}`: plans are set per subscription"),
        PricingListQuery
    ),
    responses(
        (status = 200, description = "The plans", body = PricingList),
        (status = "default", description = "CloudError", body = CloudError)
    ),
    security(("bearer" = []))
)]
pub async fn list(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
    query: web::Query<PricingListQuery>,
) -> Result<web::Json<PricingList>, ApiError> {
    api_version::require(query.api_version.as_deref(), api_version::PRICINGS)?;
    let subscription = authorize(&caller, &path, Role::Contributor)?;
    let wanted = match query.filter.as_deref() {
        None => None,
        Some(filter) => {
            Some(
                parse_name_filter(filter).map_err(|message| ApiError::BadRequest {
                    code: "InvalidFilter",
                    message: message.to_owned(),
                    target: Some("$filter".to_owned()),
                })?,
            )
        }
    };
    let sub = subscription.as_str().to_owned();
    let pricing = store::run(&state.pool, move |c| pricings::get(c, &sub)).await?;
    let value = PricingPlan::ALL
        .into_iter()
        .filter(|plan| {
            wanted
                .as_ref()
                .is_none_or(|names| names.iter().any(|n| n.eq_ignore_ascii_case(plan.as_str())))
        })
        .map(|plan| render(subscription.as_str(), plan, &pricing))
        .collect();
    Ok(web::Json(PricingList { value }))
}

/// Reads a subscription's Defender plan.
#[utoipa::path(
    get,
    path = "/{scope}/providers/Microsoft.Security/pricings/{pricingName}",
    operation_id = "Pricings_Get",
    tag = "Pricings",
    params(
        ("scope" = String, Path, description = "`subscriptions/{subscriptionId}`: plans are set per subscription"),
        ("pricingName" = String, Path, description = "Containers, or ContainerRegistry (deprecated; the same state)"),
        PricingQuery
    ),
    responses(
        (status = 200, description = "The plan", body = PricingResource),
        (status = "default", description = "CloudError", body = CloudError)
    ),
    security(("bearer" = []))
)]
pub async fn get(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<(String, String)>,
    query: web::Query<PricingQuery>,
) -> Result<web::Json<PricingResource>, ApiError> {
    api_version::require(query.api_version.as_deref(), api_version::PRICINGS)?;
    let (scope, name) = path.into_inner();
    let subscription = authorize(&caller, &scope, Role::Contributor)?;
    let plan = plan(&name)?;
    let sub = subscription.as_str().to_owned();
    let pricing = store::run(&state.pool, move |c| pricings::get(c, &sub)).await?;
    Ok(web::Json(render(subscription.as_str(), plan, &pricing)))
}

/// Sets a subscription's Defender plan (Admin). To Free: its pushes are recorded, not scanned or
/// billed; scans not started are cancelled. To Standard: the images recorded while Free are queued.
#[utoipa::path(
    put,
    path = "/{scope}/providers/Microsoft.Security/pricings/{pricingName}",
    operation_id = "Pricings_Update",
    tag = "Pricings",
    params(
        ("scope" = String, Path, description = "`subscriptions/{subscriptionId}`: plans are set per subscription"),
        ("pricingName" = String, Path, description = "Containers, or ContainerRegistry (deprecated; the same state)"),
        PricingQuery
    ),
    request_body = PricingUpdate,
    responses(
        (status = 200, description = "Updated", body = PricingResource),
        (status = 201, description = "Set for the first time (the subscription was on the default)", body = PricingResource),
        (status = "default", description = "CloudError", body = CloudError)
    ),
    security(("bearer" = []))
)]
pub async fn put(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<(String, String)>,
    query: web::Query<PricingQuery>,
    body: Json<PricingUpdate>,
) -> Result<HttpResponse, ApiError> {
    api_version::require(query.api_version.as_deref(), api_version::PRICINGS)?;
    let (scope, name) = path.into_inner();
    let subscription = authorize(&caller, &scope, Role::Admin)?;
    let plan = plan(&name)?;
    let tier = requested_tier(&body.into_inner().properties)?;
    let (sub, by) = (subscription.as_str().to_owned(), caller.subject.clone());
    let change =
        store::run_transaction(&state.pool, move |c| pricings::set(c, &sub, tier, &by)).await?;
    if change.scans_queued > 0 {
        state.queue.wake();
    }
    tracing::info!(
        subscription = %subscription,
        tier = %tier,
        by = %caller.subject,
        scans_queued = change.scans_queued,
        scans_cancelled = change.scans_cancelled,
        "Defender plan set"
    );
    let body = render(subscription.as_str(), plan, &change.pricing);
    Ok(if change.created {
        HttpResponse::Created().json(body)
    } else {
        HttpResponse::Ok().json(body)
    })
}
