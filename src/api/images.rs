//! Per-image health: what a portal lists and what a CI gate asks before deploying a digest.

use std::collections::HashMap;

use actix_web::{HttpRequest, web};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::api_version::{self, ApiVersionQuery};
use super::odata::QueryOptions;
use super::paging::{ListQuery, keyset_page};
use super::{AppState, resolve_scope};
use crate::api::auth::Caller;
use crate::domain::{
    AdvisoryData, Digest, EcosystemCoverage, HealthCode, RegistryId, Role, Severity, Timestamp,
    health_cause,
};
use crate::error::{ApiError, CloudError};
use crate::store;
use crate::store::images::{ImageContext, ImageRow};
use crate::store::registries::RegistryRow;
use crate::store::running_images::RunningImageRow;

pub const IMAGE_TYPE: &str = "Microsoft.Security/images";

#[derive(Debug, Serialize, ToSchema)]
pub struct Image {
    /// `{registryId}/repositories/{repository}/images/{digest}`, as sub-assessments' `resourceDetails.id`.
    pub id: String,
    /// The manifest digest.
    pub name: String,
    #[serde(rename = "type")]
    pub resource_type: String,
    pub properties: ImageProperties,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ImageProperties {
    pub registry_id: String,
    pub login_server: String,
    pub repository: String,
    pub digest: String,
    /// The index (manifest list) this image is a platform of, when it was pushed as one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub index_digest: Option<String>,
    pub tags: Vec<String>,
    /// `os/arch[/variant]`, once scanned.
    pub platform: Option<String>,
    /// `debian 12`, `alpine 3.19`, …, once scanned.
    pub os: Option<String>,
    pub health: ImageHealth,
    /// Per ecosystem of the image's packages, the advisory data its last assessment rested on
    /// (`advisories: none`: those packages were not assessed); empty before an assessment.
    pub coverage: Vec<EcosystemCoverage>,
    /// Executables and archives an analyzer wanted but could not read at the last assessment
    /// (what they hold was not assessed; cause `UnreadableContent`).
    pub unreadable_files: i32,
    /// Active findings (unresolved, not exempt), and the exempt ones apart.
    pub findings: FindingCounts,
    pub last_pushed_at: Option<String>,
    pub last_pulled_at: Option<String>,
    pub last_scanned_at: Option<String>,
    /// Some cluster reported the image running.
    pub running: bool,
    /// Where it runs (the latest report of each cluster).
    pub running_in: Vec<RunningContainer>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ImageHealth {
    pub code: HealthCode,
    /// Why an image is NotApplicable: `NotScanned`, `ScanFailed`, `UnsupportedOs`,
    /// `NoAdvisoryData` (no advisory data for an ecosystem of its packages), `UnreadableContent`
    /// (executables or archives could not be read), `AdvisoriesStale` (that data is older than
    /// the service's maximum age) or `PlanDisabled` (recorded while the subscription's Defender
    /// plan was Free, not scanned).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cause: Option<String>,
    pub description: String,
}

#[derive(Debug, Default, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct FindingCounts {
    pub total: i64,
    #[serde(rename = "Critical")]
    pub critical: i64,
    #[serde(rename = "High")]
    pub high: i64,
    #[serde(rename = "Medium")]
    pub medium: i64,
    #[serde(rename = "Low")]
    pub low: i64,
    /// Findings with a fixed version available.
    pub patchable: i64,
    /// Present findings an active exemption matches: counted apart, not in the health.
    pub exempt: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RunningContainer {
    pub cluster: String,
    pub namespace: String,
    pub pod: String,
    pub container: String,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ImageList {
    pub value: Vec<Image>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_link: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct ImageScopePath {
    /// `subscriptions/{id}`, `subscriptions/{id}/resourceGroups/{name}` or a registry resource id.
    pub scope: String,
}

/// `$filter` and `$orderby` of the image list.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ImageListOptions {
    /// An OData filter (`eq`, `ne`, `gt`, `ge`, `lt`, `le`, `in (…)`, `and`, `or`, `not`,
    /// parentheses) over `properties/repository`, `properties/digest`, `properties/os`,
    /// `properties/platform`, `properties/health/code` (Healthy, Unhealthy, NotApplicable),
    /// `properties/health/cause` (NotScanned, ScanFailed, UnsupportedOs, NoAdvisoryData,
    /// UnreadableContent, AdvisoriesStale, PlanDisabled), `properties/running`, `properties/lastPushedAt`,
    /// `properties/lastPulledAt` and `properties/lastScannedAt`.
    /// Example: `properties/health/code eq 'Unhealthy' and properties/running eq true`.
    #[serde(rename = "$filter")]
    #[param(rename = "$filter")]
    pub filter: Option<String>,
    /// One sort key, then `asc` (the default) or `desc`: `properties/repository`,
    /// `properties/lastPushedAt`, `properties/lastPulledAt` or `properties/lastScannedAt`
    /// (images never pushed, pulled or scanned come first). Without it, and between ties, the
    /// order is the service's stable internal one.
    #[serde(rename = "$orderby")]
    #[param(rename = "$orderby")]
    pub orderby: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct ImagePath {
    /// `subscriptions/{id}`, `subscriptions/{id}/resourceGroups/{name}` or a registry resource id.
    pub scope: String,
    /// A manifest or index digest, `sha256:…`.
    pub digest: String,
}

/// Everything a page of images needs besides the rows, by image id.
struct Context {
    registries: HashMap<String, RegistryRow>,
    counts: HashMap<String, FindingCounts>,
    tags: HashMap<String, Vec<String>>,
    running: Vec<RunningImageRow>,
}

fn context(read: ImageContext, running: Vec<RunningImageRow>) -> Context {
    let mut counts: HashMap<String, FindingCounts> = HashMap::new();
    for (image_id, severity, patchable, n) in read.finding_counts {
        let entry = counts.entry(image_id).or_default();
        entry.total += n;
        if patchable {
            entry.patchable += n;
        }
        match Severity::parse(&severity) {
            Some(Severity::Critical) => entry.critical += n,
            Some(Severity::High) => entry.high += n,
            Some(Severity::Medium) => entry.medium += n,
            Some(Severity::Low) | None => entry.low += n,
        }
    }
    for (image_id, n) in read.exempt_counts {
        counts.entry(image_id).or_default().exempt += n;
    }
    let mut tags: HashMap<String, Vec<String>> = HashMap::new();
    for (image_id, tag) in read.tags {
        tags.entry(image_id).or_default().push(tag);
    }
    Context {
        registries: read.registries,
        counts,
        tags,
        running,
    }
}

/// The image's health as a CI gate reads it: Unhealthy with what to fix, Healthy, or
/// NotApplicable with the cause.
fn health(row: &ImageRow, counts: &FindingCounts, coverage: &[EcosystemCoverage]) -> ImageHealth {
    if counts.total > 0 {
        return ImageHealth {
            code: HealthCode::Unhealthy,
            cause: None,
            description: format!(
                "{} active vulnerability finding(s): {} Critical, {} High, {} Medium, {} Low; {} can be fixed by upgrading.",
                counts.total,
                counts.critical,
                counts.high,
                counts.medium,
                counts.low,
                counts.patchable
            ),
        };
    }
    let cause = row.health_reason.clone();
    match (row.health.as_str(), cause.as_deref()) {
        ("Healthy", _) | ("Unhealthy", _) => ImageHealth {
            code: HealthCode::Healthy,
            cause: None,
            description: "No active vulnerability findings.".to_owned(),
        },
        (_, Some(health_cause::SCAN_FAILED)) => ImageHealth {
            code: HealthCode::NotApplicable,
            cause,
            description: "The image could not be scanned; the scan's error says why.".to_owned(),
        },
        (_, Some(health_cause::NO_ADVISORY_DATA)) => ImageHealth {
            code: HealthCode::NotApplicable,
            cause,
            description: format!(
                "No advisory data is loaded for {}: those packages were not assessed. Import or sync it (`crowsnest advisories import`, `crowsnest advisories sync osv:<ecosystem>`).",
                named(coverage, |c| c.advisories == AdvisoryData::None)
            ),
        },
        (_, Some(health_cause::ADVISORIES_STALE)) => ImageHealth {
            code: HealthCode::NotApplicable,
            cause,
            description: format!(
                "The advisory data for {} is older than the maximum age: no finding against it is no proof of health.",
                named(coverage, |c| c.stale)
            ),
        },
        (_, Some(health_cause::UNREADABLE_CONTENT)) => ImageHealth {
            code: HealthCode::NotApplicable,
            cause,
            description: format!(
                "{} executable(s) or archive(s) of the image could not be read (truncated, malformed or past a limit): what they hold was not assessed. `crowsnest scan --format json` lists them with the reason.",
                row.unreadable_files
            ),
        },
        (_, Some(health_cause::PLAN_DISABLED)) => ImageHealth {
            code: HealthCode::NotApplicable,
            cause,
            description: "The subscription's Defender plan (Containers) is Free: the image was recorded but not scanned. Set the plan to Standard to scan it.".to_owned(),
        },
        (_, Some(health_cause::UNSUPPORTED_OS)) => ImageHealth {
            code: HealthCode::NotApplicable,
            cause,
            description: format!(
                "No advisory source covers this image's OS ({}).",
                row.os.as_deref().unwrap_or("unknown")
            ),
        },
        _ => ImageHealth {
            code: HealthCode::NotApplicable,
            cause: Some(health_cause::NOT_SCANNED.to_owned()),
            description: "The image has not been scanned yet.".to_owned(),
        },
    }
}

/// The ecosystems the predicate picks, for a sentence: `Ubuntu:22.04:LTS, PyPI`.
fn named(coverage: &[EcosystemCoverage], pick: impl Fn(&EcosystemCoverage) -> bool) -> String {
    let names: Vec<&str> = coverage
        .iter()
        .filter(|c| pick(c))
        .map(|c| c.ecosystem.as_str())
        .collect();
    if names.is_empty() {
        "an ecosystem of its packages".to_owned()
    } else {
        names.join(", ")
    }
}

fn render(row: ImageRow, context: &mut Context) -> Image {
    let (registry_id, login_server) = context.registries.get(&row.registry_id).map_or_else(
        || (String::new(), String::new()),
        |r| {
            (
                RegistryId::format(&r.subscription_id, &r.resource_group, &r.name),
                r.login_server.clone(),
            )
        },
    );
    let counts = context.counts.remove(&row.id).unwrap_or_default();
    let coverage: Vec<EcosystemCoverage> = row
        .coverage
        .as_deref()
        .and_then(|json| serde_json::from_str(json).ok())
        .unwrap_or_default();
    let time = |t: Option<i64>| t.map(|t| Timestamp::from_micros(t).rfc3339());
    let running_in = if row.running {
        context
            .running
            .iter()
            .filter(|r| {
                r.subscription_id == row.subscription_id
                    && r.digest
                        .as_deref()
                        .is_some_and(|d| d == row.digest || Some(d) == row.index_digest.as_deref())
            })
            .map(|r| RunningContainer {
                cluster: r.cluster.clone(),
                namespace: r.namespace.clone(),
                pod: r.pod.clone(),
                container: r.container.clone(),
            })
            .collect()
    } else {
        Vec::new()
    };
    Image {
        id: format!(
            "{registry_id}/repositories/{}/images/{}",
            row.repository, row.digest
        ),
        name: row.digest.clone(),
        resource_type: IMAGE_TYPE.to_owned(),
        properties: ImageProperties {
            health: health(&row, &counts, &coverage),
            coverage,
            unreadable_files: row.unreadable_files,
            registry_id,
            login_server,
            tags: context.tags.remove(&row.id).unwrap_or_default(),
            repository: row.repository,
            digest: row.digest,
            index_digest: row.index_digest,
            platform: row.platform,
            os: row.os,
            findings: counts,
            last_pushed_at: time(row.pushed_at),
            last_pulled_at: time(row.pulled_at),
            last_scanned_at: time(row.scanned_at),
            running: row.running,
            running_in,
        },
    }
}

/// Renders rows with their registries, counts, tags and clusters.
async fn render_all(state: &AppState, rows: Vec<ImageRow>) -> Result<Vec<Image>, ApiError> {
    let (rows, read, running) = store::run(&state.pool, move |c| {
        let read = store::images::context(c, &rows)?;
        let running = store::running_images::of_images(c, &rows)?;
        Ok((rows, read, running))
    })
    .await?;
    let mut context = context(read, running);
    Ok(rows.into_iter().map(|r| render(r, &mut context)).collect())
}

/// Lists the images in a subscription, resource group or registry, with their health.
#[utoipa::path(
    get,
    path = "/{scope}/providers/Microsoft.Security/images",
    operation_id = "Images_List",
    tag = "Images",
    params(ImageScopePath, ListQuery, ImageListOptions),
    responses(
        (status = 200, description = "One page of images", body = ImageList),
        (status = "default", description = "CloudError", body = CloudError)
    ),
    security(("bearer" = []))
)]
pub async fn list(
    state: web::Data<AppState>,
    caller: Caller,
    req: HttpRequest,
    path: web::Path<ImageScopePath>,
    query: web::Query<ListQuery>,
    options: web::Query<ImageListOptions>,
) -> Result<web::Json<ImageList>, ApiError> {
    api_version::require(query.api_version.as_deref(), api_version::CROWSNEST)?;
    let scope = resolve_scope(&state, &caller, &path.scope, Role::Reader).await?;
    let options = QueryOptions::parse(options.filter.as_deref(), options.orderby.as_deref())?;
    let listing = store::images::listing(options.filter.as_ref(), options.orderby.as_ref())?;
    let page = keyset_page(&state, &req, &query, listing, |listing, limit| {
        store::run(&state.pool, move |c| {
            store::images::list(c, &scope, &listing, limit)
        })
    })
    .await?;
    Ok(web::Json(ImageList {
        value: render_all(&state, page.value).await?,
        next_link: page.next_link,
    }))
}

/// Reads the image with a digest: what a CI gate asks before deploying it. When several
/// repositories in the scope hold the digest, the least healthy one answers (Unhealthy before
/// NotApplicable before Healthy).
#[utoipa::path(
    get,
    path = "/{scope}/providers/Microsoft.Security/images/{digest}",
    operation_id = "Images_Get",
    tag = "Images",
    params(ImagePath, ApiVersionQuery),
    responses(
        (status = 200, description = "The image", body = Image),
        (status = "default", description = "CloudError", body = CloudError)
    ),
    security(("bearer" = []))
)]
pub async fn get(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<ImagePath>,
    query: web::Query<ApiVersionQuery>,
) -> Result<web::Json<Image>, ApiError> {
    api_version::require(query.api_version.as_deref(), api_version::CROWSNEST)?;
    let scope = resolve_scope(&state, &caller, &path.scope, Role::Reader).await?;
    let digest = Digest::parse(&path.digest)
        .map_err(|e| ApiError::invalid_parameter("digest", e.to_string()))?
        .to_string();
    let wanted = digest.clone();
    let rows = store::run(&state.pool, move |c| {
        store::images::with_digest(c, &scope, &wanted)
    })
    .await?;
    if rows.is_empty() {
        return Err(ApiError::not_found(
            "ImageNotFound",
            format!("No image with digest '{digest}' is known in this scope."),
        ));
    }
    let mut images = render_all(&state, rows).await?;
    let rank = |i: &Image| match i.properties.health.code {
        HealthCode::Unhealthy => 0,
        HealthCode::NotApplicable => 1,
        HealthCode::Healthy => 2,
    };
    images.sort_by_key(rank);
    Ok(web::Json(images.remove(0)))
}
