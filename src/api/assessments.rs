//! The registry-level assessment in Azure's Assessments shape (api-version 2021-06-01), and
//! Crowsnest's vulnerability summary of a scope.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};

use actix_web::{HttpRequest, web};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::api_version::{self, ApiVersionQuery};
use super::paging::{ListQuery, paginate};
use super::{AppState, resolve_scope};
use crate::api::auth::Caller;
use crate::domain::{
    AssessmentKey, CONTAINER_REGISTRY_ASSESSMENT_KEY, HealthCode, MDVM_ASSESSMENT_KEY, RegistryId,
    Role, Scope, Severity, health_cause,
};
use crate::error::{ApiError, CloudError};
use crate::store;
use crate::store::findings::FindingScope;
use crate::store::registries::RegistryRow;
use crate::store::summary::Tally;

pub const ASSESSMENT_TYPE: &str = "Microsoft.Security/assessments";

#[derive(Debug, Serialize, ToSchema)]
pub struct SecurityAssessment {
    pub id: String,
    pub name: String,
    #[serde(rename = "type")]
    pub resource_type: String,
    pub properties: SecurityAssessmentProperties,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecurityAssessmentProperties {
    pub resource_details: AzureResourceDetails,
    pub display_name: String,
    pub status: AssessmentStatus,
    /// Counts as strings (Azure's `additionalData` is a string map).
    pub additional_data: BTreeMap<String, String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AzureResourceDetails {
    /// Always `Azure`.
    pub source: String,
    pub id: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AssessmentStatus {
    pub code: HealthCode,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cause: Option<String>,
    pub description: String,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecurityAssessmentList {
    pub value: Vec<SecurityAssessment>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_link: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct AssessmentScopePath {
    /// `subscriptions/{id}`, `subscriptions/{id}/resourceGroups/{name}` or a registry resource id.
    pub scope: String,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct AssessmentPath {
    /// A registry resource id.
    pub scope: String,
    /// `dbd0cb49-b563-45e7-9724-889e799fa648` (container registry) or
    /// `c0b7cfc6-3172-465a-b378-53c7ff2cc0d5` (MDVM).
    #[serde(rename = "assessmentName")]
    #[param(rename = "assessmentName")]
    pub assessment_name: String,
}

/// A registry's assessment under `key`, as this API and Resource Graph's `securityresources` table
/// show it. Both keys judge the same images, so they share the status; the counts are of the key's
/// sub-assessments: findings under the container registry key, one per CVE under the MDVM key.
pub(super) fn assessment(
    registry: &RegistryRow,
    tally: &Tally,
    key: AssessmentKey,
) -> SecurityAssessment {
    let registry_id = RegistryId::format(
        &registry.subscription_id,
        &registry.resource_group,
        &registry.name,
    );
    let unhealthy = tally.images(HealthCode::Unhealthy);
    let healthy = tally.images(HealthCode::Healthy);
    let not_applicable = tally.images(HealthCode::NotApplicable);
    let total = unhealthy + healthy + not_applicable;
    let no_data = tally.not_applicable(health_cause::NO_ADVISORY_DATA);
    let stale = tally.not_applicable(health_cause::ADVISORIES_STALE);
    // Images whose verdict the missing or aged data withholds are said apart, never counted healthy.
    let unassessed = match (no_data, stale) {
        (0, 0) => String::new(),
        _ => format!(
            " {no_data} image(s) have no advisory data for an ecosystem of their packages, {stale} only stale data."
        ),
    };
    let (counts, patchable, what) = match key {
        AssessmentKey::ContainerRegistry => {
            (&tally.findings, tally.patchable, "vulnerability findings")
        }
        AssessmentKey::Mdvm => (
            &tally.vulnerabilities,
            tally.patchable_vulnerabilities,
            "vulnerabilities (one per CVE and finding)",
        ),
    };
    let count = |s: Severity| counts.get(s.as_str()).copied().unwrap_or(0);
    let all: i64 = counts.values().sum();
    let status = if unhealthy > 0 {
        AssessmentStatus {
            code: HealthCode::Unhealthy,
            cause: None,
            description: format!(
                "{unhealthy} of {total} images have {all} active {what} ({} Critical, {} High, {} Medium, {} Low; {patchable} patchable).{unassessed}",
                count(Severity::Critical),
                count(Severity::High),
                count(Severity::Medium),
                count(Severity::Low),
            ),
        }
    } else if healthy > 0 {
        AssessmentStatus {
            code: HealthCode::Healthy,
            cause: None,
            description: format!(
                "None of the {healthy} assessed images has an active vulnerability finding.{unassessed}"
            ),
        }
    } else if no_data > 0 || stale > 0 {
        AssessmentStatus {
            code: HealthCode::NotApplicable,
            cause: Some(
                if no_data > 0 {
                    health_cause::NO_ADVISORY_DATA
                } else {
                    health_cause::ADVISORIES_STALE
                }
                .to_owned(),
            ),
            description: format!(
                "None of the {total} images could be assessed against current advisory data.{unassessed}"
            ),
        }
    } else if tally.not_applicable(health_cause::PLAN_DISABLED) > 0 {
        AssessmentStatus {
            code: HealthCode::NotApplicable,
            cause: Some(health_cause::PLAN_DISABLED.to_owned()),
            description: format!(
                "{} of the {total} images were recorded while the subscription's Defender plan (Containers) was Free and not scanned.",
                tally.not_applicable(health_cause::PLAN_DISABLED)
            ),
        }
    } else {
        AssessmentStatus {
            code: HealthCode::NotApplicable,
            cause: Some(health_cause::NOT_SCANNED.to_owned()),
            description: if total == 0 {
                "No image of this registry is known yet.".to_owned()
            } else {
                format!("None of the {total} images could be assessed yet.")
            },
        }
    };
    let mut additional_data = BTreeMap::new();
    for (key, n) in [
        ("images", total),
        ("unhealthyImages", unhealthy),
        ("healthyImages", healthy),
        ("notApplicableImages", not_applicable),
        ("noAdvisoryDataImages", no_data),
        ("staleAdvisoriesImages", stale),
        ("findings", all),
        ("criticalFindings", count(Severity::Critical)),
        ("highFindings", count(Severity::High)),
        ("mediumFindings", count(Severity::Medium)),
        ("lowFindings", count(Severity::Low)),
        ("patchableFindings", patchable),
    ] {
        additional_data.insert(key.to_owned(), n.to_string());
    }
    SecurityAssessment {
        id: format!(
            "{registry_id}/providers/Microsoft.Security/assessments/{}",
            key.as_str()
        ),
        name: key.as_str().to_owned(),
        resource_type: ASSESSMENT_TYPE.to_owned(),
        properties: SecurityAssessmentProperties {
            resource_details: AzureResourceDetails {
                source: "Azure".to_owned(),
                id: registry_id,
            },
            display_name: key.display_name().to_owned(),
            status,
            additional_data,
        },
    }
}

/// Crowsnest has two assessments over the same findings (see `domain::AssessmentKey`); any other
/// key is a 404 (not an empty answer), so a mistyped key is noticed.
pub(super) fn assessment_key(key: &str) -> Result<AssessmentKey, ApiError> {
    AssessmentKey::parse(key).ok_or_else(|| {
        ApiError::not_found(
            "AssessmentNotFound",
            format!(
                "No assessment '{}' here: Crowsnest provides the container image assessments '{CONTAINER_REGISTRY_ASSESSMENT_KEY}' and '{MDVM_ASSESSMENT_KEY}' (MDVM).",
                key.chars().take(64).collect::<String>()
            ),
        )
    })
}

/// The registry's assessment under either key: Unhealthy when any image has active findings,
/// Healthy when assessed images have none, NotApplicable before anything was assessed. The counts
/// in `additionalData` are of the key's sub-assessments (findings, or CVEs of findings for MDVM).
#[utoipa::path(
    get,
    path = "/{scope}/providers/Microsoft.Security/assessments/{assessmentName}",
    operation_id = "Assessments_Get",
    tag = "Assessments",
    params(AssessmentPath, ApiVersionQuery),
    responses(
        (status = 200, description = "The assessment", body = SecurityAssessment),
        (status = "default", description = "CloudError", body = CloudError)
    ),
    security(("bearer" = []))
)]
pub async fn get(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<AssessmentPath>,
    query: web::Query<ApiVersionQuery>,
) -> Result<web::Json<SecurityAssessment>, ApiError> {
    api_version::require(query.api_version.as_deref(), api_version::ASSESSMENTS)?;
    let key = assessment_key(&path.assessment_name)?;
    let Ok(Scope::Registry(_)) = Scope::parse(&path.scope) else {
        // Subscriptions and resource groups are valid scopes elsewhere; this assessment is a registry's.
        resolve_scope(&state, &caller, &path.scope, Role::Reader).await?;
        return Err(ApiError::not_found(
            "AssessmentNotFound",
            "The container registry assessment exists on registries; use a registry resource id as the scope.",
        ));
    };
    let scope = resolve_scope(&state, &caller, &path.scope, Role::Reader).await?;
    let FindingScope::Registry(row_id) = scope.clone() else {
        return Err(ApiError::Internal(anyhow::anyhow!(
            "a registry scope resolved to another scope"
        )));
    };
    let found = store::run(&state.pool, move |c| {
        let Some(registry) = store::registries::find_by_row_id(c, &row_id)? else {
            return Ok(None);
        };
        Ok(Some((registry, Tally::load(c, &scope)?)))
    })
    .await?;
    // The scope named this registry a moment ago: only a concurrent delete lands here.
    let (registry, tally) = found.ok_or_else(|| {
        ApiError::Internal(anyhow::anyhow!(
            "the registry was deleted while its assessment was read"
        ))
    })?;
    Ok(web::Json(assessment(&registry, &tally, key)))
}

/// The assessments under a scope: two per connected registry, the container registry one
/// (`dbd0cb49-…`) then the MDVM one (`c0b7cfc6-…`).
#[utoipa::path(
    get,
    path = "/{scope}/providers/Microsoft.Security/assessments",
    operation_id = "Assessments_List",
    tag = "Assessments",
    params(AssessmentScopePath, ListQuery),
    responses(
        (status = 200, description = "One page of assessments", body = SecurityAssessmentList),
        (status = "default", description = "CloudError", body = CloudError)
    ),
    security(("bearer" = []))
)]
pub async fn list(
    state: web::Data<AppState>,
    caller: Caller,
    req: HttpRequest,
    path: web::Path<AssessmentScopePath>,
    query: web::Query<ListQuery>,
) -> Result<web::Json<SecurityAssessmentList>, ApiError> {
    api_version::require(query.api_version.as_deref(), api_version::ASSESSMENTS)?;
    let scope = resolve_scope(&state, &caller, &path.scope, Role::Reader).await?;
    let page = query.page(3)?;
    let top = page.top;
    // A token names the last (registry, key) shown; a page that ended on a registry's first key
    // resumes at that registry.
    let after = match &page.after {
        None => None,
        Some(token) => {
            let key =
                AssessmentKey::parse(&token[2]).ok_or_else(super::paging::invalid_skip_token)?;
            Some((token[0].clone(), token[1].clone(), key))
        }
    };
    let cursor = after.clone();
    let rows = store::run(&state.pool, move |c| {
        let after = cursor;
        let inclusive = after
            .as_ref()
            .is_some_and(|(_, _, key)| Some(*key) != AssessmentKey::ALL.last().copied());
        let from = after
            .as_ref()
            .map(|(rg, name, _)| (rg.as_str(), name.as_str()));
        let registries = match &scope {
            FindingScope::Registry(id) => store::registries::find_by_row_id(c, id)?
                .into_iter()
                .collect(),
            FindingScope::Subscription(sub) => {
                store::registries::list_from(c, sub, None, from, inclusive, top + 1)?
            }
            FindingScope::ResourceGroup(sub, rg) => {
                store::registries::list_from(c, sub, Some(rg), from, inclusive, top + 1)?
            }
        };
        let mut out = Vec::with_capacity(registries.len());
        for registry in registries {
            let tally = Tally::load(c, &FindingScope::Registry(registry.id.clone()))?;
            out.push((registry, tally));
        }
        Ok(out)
    })
    .await?;
    // Each registry's assessments, both keys in order, less those a previous page showed.
    let items: Vec<(&RegistryRow, &Tally, AssessmentKey)> = rows
        .iter()
        .flat_map(|(r, tally)| AssessmentKey::ALL.map(|key| (r, tally, key)))
        .filter(|(r, _, key)| match &after {
            Some((rg, name, shown)) if r.resource_group == *rg && r.name == *name => {
                AssessmentKey::ALL.iter().position(|k| k == key)
                    > AssessmentKey::ALL.iter().position(|k| k == shown)
            }
            _ => true,
        })
        .collect();
    let page = paginate(
        items,
        top,
        |(r, _, key)| {
            vec![
                r.resource_group.clone(),
                r.name.clone(),
                key.as_str().to_owned(),
            ]
        },
        |token| super::paging::next_link(&state.public_url, req.path(), req.query_string(), token),
        |(r, tally, key)| assessment(r, tally, key),
    );
    Ok(web::Json(SecurityAssessmentList {
        value: page.value,
        next_link: page.next_link,
    }))
}

/// A scope's vulnerability picture at a glance.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct VulnerabilitySummary {
    /// Images per health code (`Healthy`, `Unhealthy`, `NotApplicable`).
    pub images_by_health: BTreeMap<String, i64>,
    /// NotApplicable images per cause (`NotScanned`, `ScanFailed`, `UnsupportedOs`,
    /// `NoAdvisoryData`, `UnreadableContent`, `AdvisoriesStale`, `PlanDisabled`).
    pub not_applicable_by_cause: BTreeMap<String, i64>,
    /// Active findings per severity (`Critical`, `High`, `Medium`, `Low`).
    pub findings_by_severity: BTreeMap<String, i64>,
    pub patchable_findings: i64,
    /// Present findings an active exemption matches: listed (NotApplicable, cause `Exempt`),
    /// counted in nothing above.
    pub exempt_findings: i64,
    /// The advisories affecting the most images.
    pub top_advisories: Vec<TopAdvisory>,
    /// The images with the most active findings.
    pub top_images: Vec<TopImage>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TopAdvisory {
    pub id: String,
    pub affected_images: i64,
    pub highest_severity: Option<String>,
    /// As on the advisory's findings: its KEV entry, `null` when not catalogued.
    pub known_exploited: Option<KnownExploited<'static>>,
    /// As on the advisory's findings: its highest EPSS score, `null` when unscored.
    pub epss: Option<EpssScore<'static>>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TopImage {
    pub registry_id: String,
    pub repository: String,
    pub digest: String,
    pub findings: i64,
    pub highest_severity: Option<String>,
}

/// A KEV catalogue entry (CISA's field names).
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct KnownExploited<'a> {
    /// The catalogued CVE (the advisory's id or an alias).
    #[schema(value_type = String)]
    pub cve_id: Cow<'a, str>,
    /// `YYYY-MM-DD`.
    #[schema(value_type = String)]
    pub date_added: Cow<'a, str>,
    /// `YYYY-MM-DD`: when CISA requires federal agencies to have acted.
    #[schema(value_type = String)]
    pub due_date: Cow<'a, str>,
    #[schema(value_type = String)]
    pub required_action: Cow<'a, str>,
    /// `Known` or `Unknown`.
    #[schema(value_type = Option<String>)]
    pub known_ransomware_campaign_use: Option<Cow<'a, str>>,
}

/// An EPSS score: the probability of exploitation in the next 30 days.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EpssScore<'a> {
    /// The scored CVE (the advisory's id or an alias).
    #[schema(value_type = String)]
    pub cve_id: Cow<'a, str>,
    /// 0 to 1.
    pub score: f64,
    /// 0 to 1: the share of scored CVEs at or below this score.
    pub percentile: f64,
    /// `YYYY-MM-DD`: the day FIRST scored.
    #[schema(value_type = String)]
    pub date: Cow<'a, str>,
}

impl<'a> KnownExploited<'a> {
    pub fn of(entry: &'a store::exploit_intel::KnownExploited) -> Self {
        Self {
            cve_id: Cow::Borrowed(&entry.cve_id),
            date_added: Cow::Borrowed(&entry.date_added),
            due_date: Cow::Borrowed(&entry.due_date),
            required_action: Cow::Borrowed(&entry.required_action),
            known_ransomware_campaign_use: entry
                .known_ransomware_campaign_use
                .as_deref()
                .map(Cow::Borrowed),
        }
    }

    fn into_owned(self) -> KnownExploited<'static> {
        KnownExploited {
            cve_id: Cow::Owned(self.cve_id.into_owned()),
            date_added: Cow::Owned(self.date_added.into_owned()),
            due_date: Cow::Owned(self.due_date.into_owned()),
            required_action: Cow::Owned(self.required_action.into_owned()),
            known_ransomware_campaign_use: self
                .known_ransomware_campaign_use
                .map(|used| Cow::Owned(used.into_owned())),
        }
    }
}

impl<'a> EpssScore<'a> {
    pub fn of(epss: &'a store::exploit_intel::Epss) -> Self {
        Self {
            cve_id: Cow::Borrowed(&epss.cve_id),
            score: epss.score,
            percentile: epss.percentile,
            date: Cow::Borrowed(&epss.date),
        }
    }

    fn into_owned(self) -> EpssScore<'static> {
        EpssScore {
            cve_id: Cow::Owned(self.cve_id.into_owned()),
            date: Cow::Owned(self.date.into_owned()),
            ..self
        }
    }
}

const TOP: i64 = 10;

fn severity_of_rank(rank: Option<i32>) -> Option<String> {
    rank.and_then(Severity::from_rank)
        .map(|s| s.as_str().to_owned())
}

/// Images by health, findings by severity, and the top advisories and images of a scope.
#[utoipa::path(
    get,
    path = "/{scope}/providers/Microsoft.Security/vulnerabilitySummary",
    operation_id = "VulnerabilitySummary_Get",
    tag = "Images",
    params(AssessmentScopePath, ApiVersionQuery),
    responses(
        (status = 200, description = "The summary", body = VulnerabilitySummary),
        (status = "default", description = "CloudError", body = CloudError)
    ),
    security(("bearer" = []))
)]
pub async fn summary(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<AssessmentScopePath>,
    query: web::Query<ApiVersionQuery>,
) -> Result<web::Json<VulnerabilitySummary>, ApiError> {
    api_version::require(query.api_version.as_deref(), api_version::CROWSNEST)?;
    let scope = resolve_scope(&state, &caller, &path.scope, Role::Reader).await?;
    let summary = store::run(&state.pool, move |c| {
        let tally = Tally::load(c, &scope)?;
        let advisories = store::summary::top_advisories(c, &scope, TOP)?;
        let ids: Vec<&str> = advisories.iter().map(|(id, _, _)| id.as_str()).collect();
        let intel = store::exploit_intel::for_advisories(c, &ids)?;
        let images = store::summary::top_images(c, &scope, TOP)?;
        let registry_ids: Vec<String> = images.iter().map(|i| i.registry_id.clone()).collect();
        let registries: HashMap<String, String> = store::registries::by_row_ids(c, &registry_ids)?
            .into_iter()
            .map(|(id, r)| {
                (
                    id,
                    RegistryId::format(&r.subscription_id, &r.resource_group, &r.name),
                )
            })
            .collect();
        let top_images = images
            .into_iter()
            .map(|image| TopImage {
                registry_id: registries
                    .get(&image.registry_id)
                    .cloned()
                    .unwrap_or_default(),
                repository: image.repository,
                digest: image.digest,
                findings: image.findings,
                highest_severity: severity_of_rank(image.highest_rank),
            })
            .collect();
        Ok(VulnerabilitySummary {
            images_by_health: tally.images.clone(),
            not_applicable_by_cause: tally.causes.clone(),
            findings_by_severity: tally.findings.clone(),
            patchable_findings: tally.patchable,
            exempt_findings: tally.exempt,
            top_advisories: advisories
                .into_iter()
                .map(|(id, affected_images, rank)| {
                    let intel = intel.get(&id);
                    TopAdvisory {
                        known_exploited: intel
                            .and_then(|i| i.known_exploited.as_ref())
                            .map(|k| KnownExploited::of(k).into_owned()),
                        epss: intel
                            .and_then(|i| i.epss.as_ref())
                            .map(|e| EpssScore::of(e).into_owned()),
                        id,
                        affected_images,
                        highest_severity: severity_of_rank(rank),
                    }
                })
                .collect(),
            top_images,
        })
    })
    .await?;
    Ok(web::Json(summary))
}
