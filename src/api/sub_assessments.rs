//! The Azure Security Center Sub-Assessments API (2019-01-01-preview) over the findings table,
//! under both assessment keys: the container registry one (`dbd0cb49-…`, one sub-assessment per
//! finding, `ContainerRegistryVulnerability`) and the MDVM one (`c0b7cfc6-…`, one per CVE a
//! finding names, `AzureContainerRegistryVulnerability`). [`render_sub_assessments`] renders rows
//! under either key; every route and the Resource Graph go through it.
//!
//! Decisions:
//! * `{scope}/subAssessments` (all assessments) lists the container registry key's sub-assessments
//!   only: listing both would show every finding two or more times, and clients that count
//!   findings through it (as the SDK check does) would count each twice. The MDVM view is under
//!   its key.
//! * Under the MDVM key, `$filter` and `$orderby` select and order findings; each finding kept is
//!   shown as its CVEs in CVE order. A skip token names the last CVE shown, so a page may end
//!   inside a finding.

use std::borrow::Cow;

use actix_web::{HttpRequest, HttpResponse, web};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::api_version::{self, ApiVersionQuery};
use super::assessments::{EpssScore, KnownExploited, assessment_key};
use super::odata::QueryOptions;
use super::paging::{ListQuery, Page, keyset_page};
use super::{AppState, resolve_scope};
use crate::api::auth::Caller;
use crate::domain::{
    AssessmentKey, RegistryId, Role, Severity, Timestamp, azure_os_version,
    mdvm_sub_assessment_name, mdvm_vulnerabilities, package_language,
};
use crate::error::{ApiError, CloudError};
use crate::jobs::mdvm::{self, CvssVector, MdvmDetails};
use crate::store::findings::{FindingState, ListedFinding};
use crate::store::{self};

pub const SUB_ASSESSMENT_TYPE: &str = "Microsoft.Security/assessments/subAssessments";

/// A list of sub-assessments; `nextLink` is absent on the last page.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecuritySubAssessmentList<'a> {
    pub value: Vec<SubAssessment<'a>>,
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
    /// `Vulnerable` while present, `Resolved` once a later scan no longer finds it, `Exempt` while
    /// an active exemption matches it (its code is then `NotApplicable`).
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

/// A sub-assessment under either key: the key decides the shape.
#[derive(Debug, Serialize, ToSchema)]
#[serde(untagged)]
// Rendered values live only while one page is serialized: a box per MDVM row would cost more than
// the size difference.
#[allow(clippy::large_enum_variant)]
pub enum SubAssessment<'a> {
    ContainerRegistry(SecuritySubAssessment<'a>),
    Mdvm(MdvmSubAssessment<'a>),
}

/// One CVE of one finding, as Azure's MDVM assessment (`c0b7cfc6-…`) shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct MdvmSubAssessment<'a> {
    /// `{registryId}/providers/Microsoft.Security/assessments/c0b7cfc6-…/subAssessments/{name}`
    pub id: String,
    /// UUID v5 of (the finding's name, the CVE id): stable across rescans.
    pub name: String,
    /// Always `Microsoft.Security/assessments/subAssessments`.
    #[serde(rename = "type")]
    pub resource_type: &'static str,
    pub properties: MdvmSubAssessmentProperties<'a>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MdvmSubAssessmentProperties<'a> {
    /// The CVE id (the advisory id when the advisory names no CVE).
    pub id: String,
    /// The CVE id, as Azure shows it.
    pub display_name: String,
    pub description: &'a str,
    pub remediation: &'a str,
    pub time_generated: String,
    pub resource_details: ResourceDetails,
    pub status: SubAssessmentStatus,
    pub additional_data: AzureContainerRegistryVulnerability<'a>,
}

/// Azure's `AzureContainerRegistryVulnerability` additional data.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AzureContainerRegistryVulnerability<'a> {
    /// Always `AzureContainerRegistryVulnerability`.
    pub assessed_resource_type: &'static str,
    pub vulnerability_details: VulnerabilityDetails<'a>,
    pub artifact_details: ArtifactDetails<'a>,
    pub software_details: SoftwareDetails<'a>,
    /// The CVSS 3.x base score; `null` when none is known.
    #[serde(rename = "cvssV30Score")]
    pub cvss_v30_score: Option<f64>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct VulnerabilityDetails<'a> {
    pub cve_id: String,
    /// Low, Medium, High or Critical: the finding's severity.
    pub severity: &'static str,
    /// By CVSS version, `2.0` and `3.0` (3.0 and 3.1 vectors); `null` where none is known.
    pub cvss: MdvmCvss,
    /// The CVE's NVD page, then the advisory's references.
    pub references: Vec<Link<'a>>,
    pub weaknesses: Weaknesses,
    /// The advisory's publication time; `null` when the record gives none.
    pub published_date: Option<String>,
    /// When the advisory record was last modified.
    pub last_modified_date: Option<String>,
    /// Always the empty form: no source Crowsnest reads says how a CVE is exploited.
    pub exploitability_assessment: ExploitabilityAssessment,
    /// Always empty: no source Crowsnest reads publishes workarounds.
    pub workarounds: Vec<Link<'a>>,
    /// Always the empty form (every part `""`): Crowsnest names packages by ecosystem and
    /// name, not by CPE.
    pub cpe: Cpe,
}

/// A CVSS base score with its vector.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CvssWithVector {
    pub base: f64,
    pub cvss_vector_string: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MdvmCvss {
    #[serde(rename = "2.0")]
    pub v2: Option<CvssWithVector>,
    #[serde(rename = "3.0")]
    pub v3: Option<CvssWithVector>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Weaknesses {
    /// The advisory's CWE ids (GitHub's `database_specific.cwe_ids`); empty when it has none.
    pub cwe: Vec<Cwe>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Cwe {
    pub id: String,
}

#[derive(Debug, Default, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExploitabilityAssessment {
    pub exploit_steps_published: bool,
    pub exploit_steps_verified: bool,
    pub is_in_exploit_kit: bool,
    pub exploit_uris: Vec<String>,
    pub types: Vec<String>,
}

/// A CPE 2.3 name, part by part.
#[derive(Debug, Default, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Cpe {
    pub uri: String,
    pub part: String,
    pub vendor: String,
    pub product: String,
    pub version: String,
    pub update: String,
    pub edition: String,
    pub language: String,
    pub software_edition: String,
    pub target_software: String,
    pub target_hardware: String,
    pub other: String,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ArtifactDetails<'a> {
    /// The registry's login server.
    pub registry_host: &'a str,
    pub repository_name: &'a str,
    /// The image's manifest digest.
    pub digest: &'a str,
    /// The repository's tags on this image, sorted.
    pub tags: Vec<&'a str>,
    /// Always `ContainerImage`.
    pub artifact_type: &'static str,
    /// The media type of the manifest the image was scanned from (OCI or Docker schema 2); `""`
    /// for an image scanned before Crowsnest kept it.
    pub media_type: &'a str,
    /// When the registry last notified a push of this image; `null` when it reached Crowsnest
    /// otherwise (an API scan, a cluster report).
    #[serde(rename = "lastPushedToRegistryUTC")]
    pub last_pushed_to_registry_utc: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SoftwareDetails<'a> {
    /// `OS` (a package of the OS release) or `Language` (a language ecosystem's package).
    pub category: &'static str,
    /// The language of a `Language` package (`python`, `javascript`, `go`, `rust`, `java`,
    /// `ruby`, `php`, `.net`); `""` for an OS package.
    pub language: &'static str,
    pub os_details: OsDetails,
    pub package_name: &'a str,
    /// The installed version.
    pub version: &'a str,
    /// The first fixed version; `""` when there is none.
    pub fixed_version: &'a str,
    /// `FixAvailable` or `NoFixAvailable`.
    pub fix_status: &'static str,
    /// The OS release's os-release `ID` for an OS package (`debian`); `""` for a language package.
    pub vendor: String,
    /// The file the package was read from; empty when unknown.
    pub evidence: Vec<&'a str>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct OsDetails {
    /// The OS of the image's platform: `linux`.
    pub os_platform: String,
    /// Azure's spelling of the OS release (`ubuntu_linux_20.04`, `debian_linux_12`,
    /// `alpine_linux_3.19`; other families `{ID}_{VERSION_ID}`); `""` without an os-release.
    pub os_version: String,
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
    /// What imported VEX documents say about it, whatever their status (`affected` and
    /// `under_investigation` too); absent when none does.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub vex: Vec<super::vex::VexStatement>,
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
    /// The assessment key: `dbd0cb49-b563-45e7-9724-889e799fa648` (one sub-assessment per finding)
    /// or `c0b7cfc6-3172-465a-b378-53c7ff2cc0d5` (MDVM: one per CVE of each finding).
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
    /// The assessment key: `dbd0cb49-b563-45e7-9724-889e799fa648` (one sub-assessment per finding)
    /// or `c0b7cfc6-3172-465a-b378-53c7ff2cc0d5` (MDVM: one per CVE of each finding).
    #[serde(rename = "assessmentName")]
    #[param(rename = "assessmentName")]
    pub assessment_name: String,
    /// The sub-assessment name (a UUID; under the MDVM key, UUID v5 of the finding's name and the CVE).
    #[serde(rename = "subAssessmentName")]
    #[param(rename = "subAssessmentName")]
    pub sub_assessment_name: String,
}

/// A finding under the container registry key (`dbd0cb49-…`).
fn render_container_registry(listed: &ListedFinding) -> SecuritySubAssessment<'_> {
    let row = &listed.finding;
    let registry = RegistryId::format(
        &row.subscription_id,
        &row.resource_group,
        &row.registry_name,
    );
    let severity = finding_severity(&row.severity);
    let links = |json| serde_json::from_str::<Vec<Link<'_>>>(json).unwrap_or_default();
    let time = |micros: i64| Timestamp::from_micros(micros).rfc3339();
    SecuritySubAssessment {
        id: format!(
            "{registry}/providers/Microsoft.Security/assessments/{}/subAssessments/{}",
            AssessmentKey::ContainerRegistry.as_str(),
            row.id
        ),
        name: &row.id,
        resource_type: SUB_ASSESSMENT_TYPE,
        properties: SubAssessmentProperties {
            id: &row.advisory_id,
            display_name: &row.display_name,
            status: status(listed, severity),
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
                assessed_resource_type: assessed_resource_type(AssessmentKey::ContainerRegistry),
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
                vex: listed.vex.iter().map(|v| super::vex::render(v)).collect(),
            },
        },
    }
}

/// A finding's severity as stored (a value it cannot hold reads as Medium).
pub fn finding_severity(stored: &str) -> Severity {
    Severity::parse(stored).unwrap_or(Severity::Medium)
}

/// `additionalData.assessedResourceType` of every sub-assessment under `key`.
pub const fn assessed_resource_type(key: AssessmentKey) -> &'static str {
    match key {
        AssessmentKey::ContainerRegistry => "ContainerRegistryVulnerability",
        AssessmentKey::Mdvm => "AzureContainerRegistryVulnerability",
    }
}

/// A finding's `status.code`, the same under both keys: Unhealthy while present, Healthy once
/// resolved, NotApplicable while exempt.
pub const fn status_code(state: FindingState) -> StatusCode {
    match state {
        FindingState::Vulnerable => StatusCode::Unhealthy,
        FindingState::Resolved => StatusCode::Healthy,
        FindingState::Exempt => StatusCode::NotApplicable,
    }
}

/// A finding's status, the same under both keys.
fn status(listed: &ListedFinding, severity: Severity) -> SubAssessmentStatus {
    let finding = &listed.finding;
    let state = FindingState::of(finding.resolved_at, finding.exempted_by.as_deref());
    let (cause, description) = match (state, finding.resolved_at, &finding.exempted_by) {
        (FindingState::Resolved, Some(at), _) => (
            "Resolved",
            Cow::Owned(format!(
                "Not found by the image's scans since {}.",
                Timestamp::from_micros(at).rfc3339()
            )),
        ),
        (FindingState::Exempt, _, Some(exemption)) => (
            "Exempt",
            Cow::Owned(format!("Exempt by the exemption /{exemption}.")),
        ),
        _ => (
            "Vulnerable",
            Cow::Borrowed("The image contains a vulnerable package."),
        ),
    };
    SubAssessmentStatus {
        code: status_code(state),
        cause,
        description,
        severity: severity.azure_2019().as_str(),
    }
}

/// The vulnerabilities a finding is shown as under the MDVM key: its CVEs, sorted, or its advisory.
pub fn mdvm_vulnerabilities_of(listed: &ListedFinding) -> Vec<String> {
    let cves = crate::domain::cve_ids(&listed.finding.cves);
    mdvm_vulnerabilities(&listed.finding.advisory_id, cves.iter().map(String::as_str))
        .into_iter()
        .map(str::to_owned)
        .collect()
}

/// One vulnerability of a finding under the MDVM key (`c0b7cfc6-…`). `vulnerability` is one of
/// [`mdvm_vulnerabilities_of`] the finding; `details` are [`mdvm::details`] of a set of rows
/// holding it.
pub fn render_mdvm<'a>(
    listed: &'a ListedFinding,
    vulnerability: &str,
    details: &'a MdvmDetails,
) -> MdvmSubAssessment<'a> {
    let row = &listed.finding;
    let registry = RegistryId::format(
        &row.subscription_id,
        &row.resource_group,
        &row.registry_name,
    );
    let severity = finding_severity(&row.severity);
    let time = |micros: i64| Timestamp::from_micros(micros).rfc3339();
    let name = mdvm_sub_assessment_name(&row.id, vulnerability).to_string();
    let image = details.images.get(&row.image_id);
    let advisory = details.advisories.get(&row.advisory_id);
    let alone = mdvm_vulnerabilities_of(listed).len() == 1;
    let cvss = details.cvss(&row.advisory_id, vulnerability, alone);
    let with_vector = |v: CvssVector| CvssWithVector {
        base: v.base,
        cvss_vector_string: v.vector,
    };
    let cvss_v30_score = cvss.v3.as_ref().map(|v| v.base);
    let mut references: Vec<Link<'a>> = Vec::new();
    if vulnerability.starts_with("CVE-") {
        references.push(Link {
            title: Cow::Owned(vulnerability.to_owned()),
            link: Cow::Owned(format!("https://nvd.nist.gov/vuln/detail/{vulnerability}")),
        });
    }
    references
        .extend(serde_json::from_str::<Vec<Link<'a>>>(&row.vendor_references).unwrap_or_default());
    let language = package_language(&row.ecosystem);
    let os = image.and_then(|i| i.os.as_ref());
    let os_version = os
        .and_then(|os| azure_os_version(&os.id, os.version_id.as_deref()))
        .unwrap_or_default();
    MdvmSubAssessment {
        id: format!(
            "{registry}/providers/Microsoft.Security/assessments/{}/subAssessments/{name}",
            AssessmentKey::Mdvm.as_str()
        ),
        name,
        resource_type: SUB_ASSESSMENT_TYPE,
        properties: MdvmSubAssessmentProperties {
            id: vulnerability.to_owned(),
            display_name: vulnerability.to_owned(),
            description: &row.description,
            remediation: &row.remediation,
            time_generated: time(row.last_seen),
            resource_details: ResourceDetails {
                source: "Azure",
                id: format!(
                    "{registry}/repositories/{}/images/{}",
                    row.repository, row.image_digest
                ),
            },
            status: status(listed, severity),
            additional_data: AzureContainerRegistryVulnerability {
                assessed_resource_type: assessed_resource_type(AssessmentKey::Mdvm),
                vulnerability_details: VulnerabilityDetails {
                    cve_id: vulnerability.to_owned(),
                    severity: severity.as_str(),
                    cvss: MdvmCvss {
                        v2: cvss.v2.map(with_vector),
                        v3: cvss.v3.map(with_vector),
                    },
                    references,
                    weaknesses: Weaknesses {
                        cwe: advisory
                            .map(|a| a.cwe_ids.iter().map(|id| Cwe { id: id.clone() }).collect())
                            .unwrap_or_default(),
                    },
                    published_date: row.published_at.map(time),
                    last_modified_date: advisory.map(|a| time(a.modified)),
                    exploitability_assessment: ExploitabilityAssessment::default(),
                    workarounds: Vec::new(),
                    cpe: Cpe::default(),
                },
                artifact_details: ArtifactDetails {
                    registry_host: details
                        .login_servers
                        .get(&row.registry_id)
                        .map_or("", String::as_str),
                    repository_name: &row.repository,
                    digest: &row.image_digest,
                    tags: image
                        .map(|i| i.tags.iter().map(String::as_str).collect())
                        .unwrap_or_default(),
                    artifact_type: "ContainerImage",
                    media_type: image.and_then(|i| i.media_type.as_deref()).unwrap_or(""),
                    last_pushed_to_registry_utc: image.and_then(|i| i.pushed_at).map(time),
                },
                software_details: SoftwareDetails {
                    category: if language.is_some() { "Language" } else { "OS" },
                    language: language.unwrap_or(""),
                    os_details: OsDetails {
                        os_platform: image
                            .map_or_else(|| "linux".to_owned(), |i| i.os_platform.clone()),
                        os_version,
                    },
                    package_name: &row.package_name,
                    version: &row.installed_version,
                    fixed_version: row.fixed_version.as_deref().unwrap_or(""),
                    fix_status: if row.patchable {
                        "FixAvailable"
                    } else {
                        "NoFixAvailable"
                    },
                    vendor: match (language, os) {
                        (None, Some(os)) => os.id.to_ascii_lowercase(),
                        _ => String::new(),
                    },
                    evidence: row.file_path.as_deref().into_iter().collect(),
                },
                cvss_v30_score,
            },
        },
    }
}

/// Findings as the sub-assessments of `key`, in order: one per finding under the container
/// registry key, one per vulnerability (CVE) of each finding under the MDVM key. `details` are
/// [`mdvm::details`] of the same rows (unused, and may be empty, under the container registry
/// key). The sub-assessment routes and the Resource Graph render rows through this one function.
pub fn render_sub_assessments<'a>(
    key: AssessmentKey,
    rows: &'a [ListedFinding],
    details: &'a MdvmDetails,
) -> Vec<SubAssessment<'a>> {
    match key {
        AssessmentKey::ContainerRegistry => rows
            .iter()
            .map(|row| SubAssessment::ContainerRegistry(render_container_registry(row)))
            .collect(),
        AssessmentKey::Mdvm => rows
            .iter()
            .flat_map(|row| {
                mdvm_vulnerabilities_of(row)
                    .into_iter()
                    .map(move |v| (row, v))
            })
            .map(|(row, v)| SubAssessment::Mdvm(render_mdvm(row, &v, details)))
            .collect(),
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
    let none = MdvmDetails::default();
    let list = SecuritySubAssessmentList {
        value: render_sub_assessments(AssessmentKey::ContainerRegistry, &page.value, &none),
        next_link: page.next_link,
    };
    super::json_response(&list, 4096 + list.value.len() * 2560)
}

/// One page of the MDVM view: the listing's findings as their vulnerabilities. Its skip token is
/// the listing's for the last finding shown, plus the last CVE shown of it (`""` when all were).
async fn mdvm_page(
    state: &AppState,
    caller: &Caller,
    req: &HttpRequest,
    scope: &str,
    query: &ListQuery,
    options: &SubAssessmentListOptions,
) -> Result<HttpResponse, ApiError> {
    let scope = resolve_scope(state, caller, scope, Role::Reader).await?;
    let options = QueryOptions::parse(options.filter.as_deref(), options.orderby.as_deref())?;
    let mut listing = store::findings::listing(options.filter.as_ref(), options.orderby.as_ref())?;
    let page = query.page(listing.token_len() + 1)?;
    // The finding a page ended inside, and its last CVE shown.
    let mut resume: Option<(String, String)> = None;
    if let Some((last_shown, cursor)) = page.after.as_deref().and_then(<[String]>::split_last) {
        listing = listing.after(cursor)?;
        if let (false, Some(finding)) = (last_shown.is_empty(), cursor.last()) {
            resume = Some((finding.clone(), last_shown.clone()));
        }
    }
    let loading = listing.clone();
    let resume_id = resume.as_ref().map(|(id, _)| id.clone());
    let limit = page.top + 1;
    let (rows, details) = store::run(&state.pool, move |c| {
        let rows =
            store::findings::list_resuming(c, &scope, &loading, resume_id.as_deref(), limit)?;
        let details = mdvm::details(c, &rows)?;
        Ok((rows, details))
    })
    .await?;
    let top = usize::try_from(page.top).unwrap_or(usize::MAX);
    // (row, vulnerability, the finding's last): up to one more than the page, to tell a next one.
    let mut shown: Vec<(usize, String, bool)> = Vec::new();
    for (i, row) in rows.iter().enumerate() {
        let vulnerabilities = mdvm_vulnerabilities_of(row);
        let count = vulnerabilities.len();
        for (j, vulnerability) in vulnerabilities.into_iter().enumerate() {
            let seen = matches!(&resume, Some((id, cve))
                if i == 0 && row.finding.id == *id && vulnerability.as_str() <= cve.as_str());
            if !seen {
                shown.push((i, vulnerability, j + 1 == count));
            }
        }
        if shown.len() > top {
            break;
        }
    }
    let next_link = if shown.len() > top {
        shown.truncate(top);
        shown.last().map(|(i, vulnerability, last_of_finding)| {
            let mut token = listing.token(&rows[*i]);
            token.push(if *last_of_finding {
                String::new()
            } else {
                vulnerability.clone()
            });
            super::paging::next_link(
                &state.public_url,
                req.path(),
                req.query_string(),
                &super::paging::encode_token(&token),
            )
        })
    } else {
        None
    };
    let list = SecuritySubAssessmentList {
        value: shown
            .iter()
            .map(|(i, vulnerability, _)| {
                SubAssessment::Mdvm(render_mdvm(&rows[*i], vulnerability, &details))
            })
            .collect(),
        next_link,
    };
    super::json_response(&list, 4096 + list.value.len() * 3072)
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

/// Lists the sub-assessments of one assessment under a scope: the container registry key's (one
/// per finding) or the MDVM key's (one per CVE of each finding, in the findings' order, then CVE
/// order; `$filter` and `$orderby` select and order the findings).
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
    match assessment_key(&path.assessment_name)? {
        AssessmentKey::ContainerRegistry => {
            let page = list_page(&state, &caller, &req, &path.scope, &query, &options).await?;
            json_page(page)
        }
        AssessmentKey::Mdvm => {
            mdvm_page(&state, &caller, &req, &path.scope, &query, &options).await
        }
    }
}

/// Gets one sub-assessment.
#[utoipa::path(
    get,
    path = "/{scope}/providers/Microsoft.Security/assessments/{assessmentName}/subAssessments/{subAssessmentName}",
    operation_id = "SubAssessments_Get",
    tag = "SubAssessments",
    params(SubAssessmentPath, ApiVersionQuery),
    responses(
        (status = 200, description = "The sub-assessment", body = SubAssessment),
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
    let key = assessment_key(&assessment_name)?;
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
    let id = uuid::Uuid::parse_str(&name).map_err(|_| not_found())?;
    match key {
        AssessmentKey::ContainerRegistry => {
            let id = id.to_string();
            let found = store::run(&state.pool, move |c| store::findings::find(c, &scope, &id))
                .await?
                .ok_or_else(not_found)?;
            let none = MdvmDetails::default();
            let rows = [found];
            let rendered = render_sub_assessments(key, &rows, &none);
            super::json_response(&rendered[0], 4096)
        }
        AssessmentKey::Mdvm => {
            let (found, details) = store::run(&state.pool, move |c| {
                let Some((row, vulnerability)) = mdvm::find_by_name(c, &scope, &id)? else {
                    return Ok(None);
                };
                let details = mdvm::details(c, std::slice::from_ref(&row))?;
                Ok(Some(((row, vulnerability), details)))
            })
            .await?
            .ok_or_else(not_found)?;
            let (row, vulnerability) = found;
            super::json_response(&render_mdvm(&row, &vulnerability, &details), 4096)
        }
    }
}
