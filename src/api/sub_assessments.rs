//! The Azure Security Center Sub-Assessments API (2019-01-01-preview) over the findings table.

use std::borrow::Cow;

use actix_web::{HttpRequest, HttpResponse, web};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::api_version::{self, ApiVersionQuery};
use super::assessments::{EpssScore, KnownExploited, require_assessment};
use super::odata::QueryOptions;
use super::paging::{ListQuery, Page, keyset_page};
use super::{AppState, resolve_scope};
use crate::api::auth::Caller;
use crate::domain::{CONTAINER_REGISTRY_ASSESSMENT_KEY, RegistryId, Role, Severity, Timestamp};
use crate::error::{ApiError, CloudError};
use crate::store::{self, findings::ListedFinding};

pub const SUB_ASSESSMENT_TYPE: &str = "Microsoft.Security/assessments/subAssessments";

/// A list of sub-assessments; `nextLink` is absent on the last page.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecuritySubAssessmentList<'a> {
    pub value: Vec<SecuritySubAssessment<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_link: Option<String>,
}

// The wire types borrow the stored row's text: a page of 100 findings is about 220 kB of JSON, and
// copying each string into an owned struct first would cost more than writing it out.

/// One vulnerability found in one image: an ARM proxy resource.
#[derive(Debug, Serialize, ToSchema)]
pub struct SecuritySubAssessment<'a> {
    /// `{registryId}/providers/Microsoft.Security/assessments/{key}/subAssessments/{name}`
    pub id: String,
    /// UUID v5 of (subscription, registry, repository, digest, advisory, package): stable across rescans.
    pub name: &'a str,
    /// Always `Microsoft.Security/assessments/subAssessments`.
    #[serde(rename = "type")]
    pub resource_type: &'static str,
    pub properties: SubAssessmentProperties<'a>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SubAssessmentProperties<'a> {
    /// The advisory id (CVE-…, DSA-…, GHSA-…).
    pub id: &'a str,
    pub display_name: &'a str,
    pub status: SubAssessmentStatus,
    pub remediation: &'a str,
    pub impact: &'a str,
    /// The OS family or language ecosystem.
    pub category: &'a str,
    pub description: &'a str,
    pub time_generated: String,
    pub resource_details: ResourceDetails,
    pub additional_data: ContainerRegistryVulnerabilityProperties<'a>,
}

#[derive(Debug, Serialize, ToSchema)]
pub enum StatusCode {
    Healthy,
    Unhealthy,
    NotApplicable,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SubAssessmentStatus {
    pub code: StatusCode,
    /// `Vulnerable` while present, `Resolved` once a later scan no longer finds it.
    pub cause: &'static str,
    #[schema(value_type = String)]
    pub description: Cow<'static, str>,
    /// Low, Medium or High (a Critical finding is shown as High; see `additionalData.severity`).
    pub severity: &'static str,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ResourceDetails {
    /// Always `Azure`.
    pub source: &'static str,
    /// `{registryId}/repositories/{repository}/images/{digest}`
    pub id: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Link<'a> {
    #[serde(borrow)]
    #[schema(value_type = String)]
    pub title: Cow<'a, str>,
    #[serde(borrow)]
    #[schema(value_type = String)]
    pub link: Cow<'a, str>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Cvss {
    pub base: f64,
}

/// Base scores by CVSS version; `null` where the advisory has none.
#[derive(Debug, Serialize, ToSchema)]
pub struct CvssScores {
    #[serde(rename = "2.0")]
    pub v2: Option<Cvss>,
    #[serde(rename = "3.0")]
    pub v3: Option<Cvss>,
}

/// Azure's `ContainerRegistryVulnerabilityProperties`, plus Crowsnest's extension fields.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ContainerRegistryVulnerabilityProperties<'a> {
    /// Always `ContainerRegistryVulnerability`.
    pub assessed_resource_type: &'static str,
    /// Always `Vulnerability`.
    #[serde(rename = "type")]
    pub vulnerability_type: &'static str,
    pub cvss: CvssScores,
    pub patchable: bool,
    pub cve: Vec<Link<'a>>,
    pub published_time: Option<String>,
    pub vendor_references: Vec<Link<'a>>,
    pub repository_name: &'a str,
    pub image_digest: &'a str,
    pub package_name: &'a str,
    pub installed_version: &'a str,
    pub fixed_version: Option<&'a str>,
    pub ecosystem: &'a str,
    /// Low, Medium, High or Critical.
    pub severity: &'static str,
    /// What decided the severity: the record's own `debian_urgency`, `ubuntu_priority`,
    /// `cvss_v3`, `cvss_v4` or `ghsa`; a rating of one of its CVEs, `debian-tracker:<CVE>` or
    /// `nvd:<CVE>`; an alias record's, `alias:<id>`; else `default` (Medium).
    pub severity_source: &'a str,
    pub layer_digest: Option<&'a str>,
    /// The file the package was read from (a package database, an executable, an archive;
    /// `!` separates an archive from an archive nested in it).
    pub file_path: Option<&'a str>,
    pub first_seen: String,
    pub last_seen: String,
    pub resolved_at: Option<String>,
    /// The image runs in a cluster (see the running-images report).
    pub running: bool,
    /// The advisory, or one of its aliases, is in CISA's catalogue of Known Exploited
    /// Vulnerabilities; `null` when none is.
    pub known_exploited: Option<KnownExploited<'a>>,
    /// FIRST's EPSS score, the highest among the advisory's id and aliases; `null` when none is
    /// scored.
    pub epss: Option<EpssScore<'a>>,
}

/// `{scope}`: where a list reaches.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct ScopePath {
    /// `subscriptions/{id}`, `subscriptions/{id}/resourceGroups/{name}` or a registry resource id.
    #[param(allow_reserved)]
    pub scope: String,
}

/// `$filter` and `$orderby` of the sub-assessment lists (Crowsnest extensions).
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SubAssessmentListOptions {
    /// An OData filter: `eq`, `ne`, `gt`, `ge`, `lt`, `le`, `in (…)`, `and`, `or`, `not` and
    /// parentheses over `name`, `properties/id`, `properties/category`, `properties/status/code`
    /// (Unhealthy, Healthy), `properties/status/severity` (Low, Medium, High; High includes
    /// Critical), and under `properties/additionalData/`: `severity` (Low … Critical),
    /// `repositoryName`, `imageDigest`, `patchable`, `packageName`, `ecosystem`, `cveId`,
    /// `firstSeen`, `lastSeen` (date-times such as 2026-11-01T00:00:00Z), `running`,
    /// `knownExploited` (`eq null` or `ne null`: in CISA's KEV catalogue or not) and `epss/score`
    /// (a number from 0 to 1; the highest of the advisory's CVEs, `eq null` when none is scored).
    /// Example: `properties/status/severity eq 'High' and properties/additionalData/patchable eq true`.
    #[serde(rename = "$filter")]
    #[param(rename = "$filter")]
    pub filter: Option<String>,
    /// One sort key, then `asc` (the default) or `desc`: `name` (the default order),
    /// `properties/status/severity`, `properties/additionalData/cvss`,
    /// `properties/additionalData/firstSeen`, `properties/additionalData/lastSeen`,
    /// `properties/additionalData/repositoryName` or `properties/additionalData/epss/score`
    /// (unscored findings sort below every score). Ties are broken by `name`.
    #[serde(rename = "$orderby")]
    #[param(rename = "$orderby")]
    pub orderby: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct AssessmentPath {
    /// `subscriptions/{id}`, `subscriptions/{id}/resourceGroups/{name}` or a registry resource id.
    #[param(allow_reserved)]
    pub scope: String,
    /// The assessment key: `dbd0cb49-b563-45e7-9724-889e799fa648`.
    #[serde(rename = "assessmentName")]
    #[param(rename = "assessmentName")]
    pub assessment_name: String,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct SubAssessmentPath {
    /// `subscriptions/{id}`, `subscriptions/{id}/resourceGroups/{name}` or a registry resource id.
    #[param(allow_reserved)]
    pub scope: String,
    /// The assessment key: `dbd0cb49-b563-45e7-9724-889e799fa648`.
    #[serde(rename = "assessmentName")]
    #[param(rename = "assessmentName")]
    pub assessment_name: String,
    /// The sub-assessment name (a UUID).
    #[serde(rename = "subAssessmentName")]
    #[param(rename = "subAssessmentName")]
    pub sub_assessment_name: String,
}

pub fn render(listed: &ListedFinding) -> SecuritySubAssessment<'_> {
    let row = &listed.finding;
    let registry = RegistryId::format(
        &row.subscription_id,
        &row.resource_group,
        &row.registry_name,
    );
    let severity = Severity::parse(&row.severity).unwrap_or(Severity::Medium);
    let (code, cause, description) = match row.resolved_at {
        None => (
            StatusCode::Unhealthy,
            "Vulnerable",
            Cow::Borrowed("The image contains a vulnerable package."),
        ),
        Some(at) => (
            StatusCode::Healthy,
            "Resolved",
            Cow::Owned(format!(
                "Not found by the image's scans since {}.",
                Timestamp::from_micros(at).rfc3339()
            )),
        ),
    };
    let links = |json| serde_json::from_str::<Vec<Link<'_>>>(json).unwrap_or_default();
    let time = |micros: i64| Timestamp::from_micros(micros).rfc3339();
    SecuritySubAssessment {
        id: format!(
            "{registry}/providers/Microsoft.Security/assessments/{CONTAINER_REGISTRY_ASSESSMENT_KEY}/subAssessments/{}",
            row.id
        ),
        name: &row.id,
        resource_type: SUB_ASSESSMENT_TYPE,
        properties: SubAssessmentProperties {
            id: &row.advisory_id,
            display_name: &row.display_name,
            status: SubAssessmentStatus {
                code,
                cause,
                description,
                severity: severity.azure_2019().as_str(),
            },
            remediation: &row.remediation,
            impact: &row.impact,
            category: &row.category,
            description: &row.description,
            time_generated: time(row.last_seen),
            resource_details: ResourceDetails {
                source: "Azure",
                id: format!(
                    "{registry}/repositories/{}/images/{}",
                    row.repository, row.image_digest
                ),
            },
            additional_data: ContainerRegistryVulnerabilityProperties {
                assessed_resource_type: "ContainerRegistryVulnerability",
                vulnerability_type: "Vulnerability",
                cvss: CvssScores {
                    v2: row.cvss2_base.map(|base| Cvss { base }),
                    v3: row.cvss3_base.map(|base| Cvss { base }),
                },
                patchable: row.patchable,
                cve: links(&row.cves),
                published_time: row.published_at.map(time),
                vendor_references: links(&row.vendor_references),
                repository_name: &row.repository,
                image_digest: &row.image_digest,
                package_name: &row.package_name,
                installed_version: &row.installed_version,
                fixed_version: row.fixed_version.as_deref(),
                ecosystem: &row.ecosystem,
                severity: severity.as_str(),
                severity_source: &row.severity_source,
                layer_digest: row.layer_digest.as_deref(),
                file_path: row.file_path.as_deref(),
                first_seen: time(row.first_seen),
                last_seen: time(row.last_seen),
                resolved_at: row.resolved_at.map(time),
                running: listed.running,
                known_exploited: listed
                    .intel
                    .as_deref()
                    .and_then(|i| i.known_exploited.as_ref())
                    .map(KnownExploited::of),
                epss: listed
                    .intel
                    .as_deref()
                    .and_then(|i| i.epss.as_ref())
                    .map(EpssScore::of),
            },
        },
    }
}

/// One page of findings, rendered by [`json_page`] while the page still owns the rows.
async fn list_page(
    state: &AppState,
    caller: &Caller,
    req: &HttpRequest,
    scope: &str,
    query: &ListQuery,
    options: &SubAssessmentListOptions,
) -> Result<Page<ListedFinding>, ApiError> {
    api_version::require(query.api_version.as_deref(), api_version::SUB_ASSESSMENTS)?;
    let scope = resolve_scope(state, caller, scope, Role::Reader).await?;
    let options = QueryOptions::parse(options.filter.as_deref(), options.orderby.as_deref())?;
    let listing = store::findings::listing(options.filter.as_ref(), options.orderby.as_ref())?;
    keyset_page(state, req, query, listing, |listing, limit| {
        store::run(&state.pool, move |c| {
            store::findings::list(c, &scope, Some(&listing), limit)
        })
    })
    .await
}

/// About 2.2 kB of JSON per finding.
fn json_page(page: Page<ListedFinding>) -> Result<HttpResponse, ApiError> {
    let list = SecuritySubAssessmentList {
        value: page.value.iter().map(render).collect(),
        next_link: page.next_link,
    };
    super::json_response(&list, 4096 + list.value.len() * 2560)
}

/// Lists every sub-assessment under a subscription, resource group or registry.
#[utoipa::path(
    get,
    path = "/{scope}/providers/Microsoft.Security/subAssessments",
    operation_id = "SubAssessments_ListAll",
    tag = "SubAssessments",
    params(ScopePath, ListQuery, SubAssessmentListOptions),
    responses(
        (status = 200, description = "One page of sub-assessments", body = SecuritySubAssessmentList),
        (status = "default", description = "CloudError", body = CloudError)
    ),
    security(("bearer" = []))
)]
pub async fn list_all(
    state: web::Data<AppState>,
    caller: Caller,
    req: HttpRequest,
    path: web::Path<ScopePath>,
    query: web::Query<ListQuery>,
    options: web::Query<SubAssessmentListOptions>,
) -> Result<HttpResponse, ApiError> {
    let page = list_page(&state, &caller, &req, &path.scope, &query, &options).await?;
    json_page(page)
}

/// Lists the sub-assessments of one assessment (the container registry key) under a scope.
#[utoipa::path(
    get,
    path = "/{scope}/providers/Microsoft.Security/assessments/{assessmentName}/subAssessments",
    operation_id = "SubAssessments_List",
    tag = "SubAssessments",
    params(AssessmentPath, ListQuery, SubAssessmentListOptions),
    responses(
        (status = 200, description = "One page of sub-assessments", body = SecuritySubAssessmentList),
        (status = "default", description = "CloudError", body = CloudError)
    ),
    security(("bearer" = []))
)]
pub async fn list(
    state: web::Data<AppState>,
    caller: Caller,
    req: HttpRequest,
    path: web::Path<AssessmentPath>,
    query: web::Query<ListQuery>,
    options: web::Query<SubAssessmentListOptions>,
) -> Result<HttpResponse, ApiError> {
    api_version::require(query.api_version.as_deref(), api_version::SUB_ASSESSMENTS)?;
    require_assessment(&path.assessment_name)?;
    let page = list_page(&state, &caller, &req, &path.scope, &query, &options).await?;
    json_page(page)
}

/// Gets one sub-assessment.
#[utoipa::path(
    get,
    path = "/{scope}/providers/Microsoft.Security/assessments/{assessmentName}/subAssessments/{subAssessmentName}",
    operation_id = "SubAssessments_Get",
    tag = "SubAssessments",
    params(SubAssessmentPath, ApiVersionQuery),
    responses(
        (status = 200, description = "The sub-assessment", body = SecuritySubAssessment),
        (status = "default", description = "CloudError", body = CloudError)
    ),
    security(("bearer" = []))
)]
pub async fn get(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<SubAssessmentPath>,
    query: web::Query<ApiVersionQuery>,
) -> Result<HttpResponse, ApiError> {
    let SubAssessmentPath {
        scope,
        assessment_name,
        sub_assessment_name: name,
    } = path.into_inner();
    api_version::require(query.api_version.as_deref(), api_version::SUB_ASSESSMENTS)?;
    require_assessment(&assessment_name)?;
    let scope = resolve_scope(&state, &caller, &scope, Role::Reader).await?;
    let not_found = || {
        ApiError::not_found(
            "SubAssessmentNotFound",
            format!(
                "No sub-assessment '{}' in this scope.",
                name.chars().take(64).collect::<String>()
            ),
        )
    };
    let id = uuid::Uuid::parse_str(&name)
        .map_err(|_| not_found())?
        .to_string();
    let found = store::run(&state.pool, move |c| store::findings::find(c, &scope, &id))
        .await?
        .ok_or_else(not_found)?;
    super::json_response(&render(&found), 4096)
}
