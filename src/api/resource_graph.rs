//! Azure Resource Graph over Crowsnest's data: `POST /providers/Microsoft.ResourceGraph/resources`
//! runs a KQL query (`domain::kql`) over two tables and pages the result as Resource Graph does.
//!
//! - `securityresources`: every finding as a `microsoft.security/assessments/subassessments` row
//!   (the sub-assessment exactly as the Sub-Assessments API renders it, in Resource Graph's row
//!   envelope with `assessmentKey` and `timeGenerated`), each registry's
//!   `microsoft.security/assessments` row (as the Assessments API renders it), and each
//!   subscription's `microsoft.security/pricings` rows (as the Pricings API renders them; only
//!   for a caller that may read plans, Contributor and up);
//! - `resources`: each connected registry as a `microsoft.containerregistry/registries` row.
//!
//! [`Tables`] is the row source. The query's leading `where` conditions ([`Constraint`]) narrow
//! what it reads: `type` picks the kinds of rows, `subscriptionId`, `resourceGroup` and
//! `assessmentKey` the scope and keys, and conditions on the sub-assessment's `name` and
//! `properties` become the Sub-Assessments list's `$filter` (`store::findings`), so the database
//! answers them. Everything is read in keyset batches, so a query over every row holds one batch
//! at a time; the engine tests every row again. Finding batches start small and double up to
//! [`FINDING_BATCH`], so a query that stops early (`take 100`) renders little more than it
//! returns. A query that reads nothing of a sub-assessment but its type, scope, key and status
//! (`summarize count() by tostring(properties.status.severity)`, see [`Scan::reads`]) gets rows
//! holding only those, built from a few columns of each finding ([`STATUS_ROW_PATHS`]).
//!
//! Decisions:
//! - What a query sees is the token's subscriptions intersected with the request's
//!   `subscriptions` (all of the token's when the request names none). A subscription the token
//!   does not reach contributes no rows and no error, as in Resource Graph. Management groups are
//!   not modelled: a request that names them is refused.
//! - `type` is lowercase in rows, as Resource Graph stores it, and the source compares `type`
//!   conditions without regard to case (Resource Graph's types are case-insensitive).
//! - Paging: `$top` is 100 by default and at most 1000. A `$skipToken` is handed out when rows
//!   remain and the result has an `id` column (Resource Graph's rule: the `id` keeps pages
//!   stable); it holds the next offset, the page size and a hash of the query and the visible
//!   subscriptions, so it is refused with another query or another scope. Without an `id` column
//!   the rows past the page are dropped and `resultTruncated` says `"true"`.
//! - Crowsnest has no tenants and no regions: `tenantId` is empty, security resources are in
//!   `location: global` as in Azure, registries have an empty `location`.

use std::collections::VecDeque;

use actix_web::{HttpResponse, web};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use sha2::{Digest as _, Sha256};
use utoipa::ToSchema;

use super::AppState;
use super::api_version::{self, ApiVersionQuery};
use super::input::Json;
use crate::api::auth::Caller;
use crate::domain::kql::{
    self, ColumnType, CompareOp, Constraint, ExecError, Output, Row, Scan, Source, Test, Window,
};
use crate::domain::odata::{self, Expr, Literal};
use crate::domain::{AssessmentKey, PricingPlan, Role, SubscriptionId, Timestamp};
use crate::error::{ApiError, CloudError};
use crate::jobs::mdvm::{self, MdvmDetails};
use crate::jobs::pricings;
use crate::store::filter::{List, Listing};
use crate::store::findings::{
    FindingScope, FindingSelection, FindingState, FindingStatusRow, Findings, ListedFinding,
};
use crate::store::registries::RegistryRow;
use crate::store::summary::Tally;
use crate::store::{self, AnyConnection, QueryError};

/// `$top` when the request sets none, and its largest value.
pub const DEFAULT_TOP: u64 = 100;
pub const MAX_TOP: u64 = 1000;
/// Findings read per database round trip: the first batch, and the most (each batch doubles).
pub const FIRST_FINDING_BATCH: i64 = 100;
pub const FINDING_BATCH: i64 = 1000;
/// Findings read per round trip when only their status is read ([`STATUS_ROW_PATHS`]).
pub const STATUS_BATCH: i64 = 20_000;
/// Subscriptions whose plans are read per round trip.
const SUBSCRIPTION_BATCH: usize = 100;
/// Registries read per round trip (each assessment row counts its registry's images and findings).
const REGISTRY_BATCH: i64 = 100;

const SUB_ASSESSMENT_ROW_TYPE: &str = "microsoft.security/assessments/subassessments";
const ASSESSMENT_ROW_TYPE: &str = "microsoft.security/assessments";
const REGISTRY_ROW_TYPE: &str = "microsoft.containerregistry/registries";
const PRICING_ROW_TYPE: &str = "microsoft.security/pricings";

/// The paths of a sub-assessment row that the status-only read fills (everything under them
/// too), with the values the full rendering gives them.
pub const STATUS_ROW_PATHS: &[&[&str]] = &[
    &["type"],
    &["subscriptionId"],
    &["resourceGroup"],
    &["location"],
    &["tenantId"],
    &["kind"],
    &["assessmentKey"],
    &["properties", "status", "code"],
    &["properties", "status", "severity"],
    &["properties", "additionalData", "assessedResourceType"],
];

/// The assessment keys whose sub-assessments `securityresources` holds.
const ASSESSMENT_KEYS: [&str; 2] = [
    AssessmentKey::ContainerRegistry.as_str(),
    AssessmentKey::Mdvm.as_str(),
];

/// Resource Graph's `QueryRequest`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct QueryRequest {
    /// The subscriptions to query; the token's subscriptions when left out.
    #[serde(default)]
    pub subscriptions: Option<Vec<String>>,
    /// Not modelled by Crowsnest: a request naming management groups is refused.
    #[serde(default)]
    pub management_groups: Option<Vec<String>>,
    /// The KQL query.
    pub query: String,
    #[serde(default)]
    pub options: Option<QueryRequestOptions>,
    /// Facet requests; each is answered with a `FacetError` (facets are not computed).
    #[serde(default)]
    #[schema(value_type = Option<Vec<Object>>)]
    pub facets: Option<Vec<Value>>,
}

/// Resource Graph's `QueryRequestOptions`.
#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct QueryRequestOptions {
    /// A token from an earlier response to the same query and subscriptions.
    #[serde(rename = "$skipToken", default)]
    pub skip_token: Option<String>,
    /// Rows per page: 1 to 1000, 100 by default; overrides the token's page size.
    #[serde(rename = "$top", default)]
    #[schema(minimum = 1, maximum = 1000)]
    pub top: Option<i64>,
    /// Rows to skip from the start of the result; overrides the token's offset.
    #[serde(rename = "$skip", default)]
    #[schema(minimum = 0)]
    pub skip: Option<i64>,
    #[serde(rename = "resultFormat", default)]
    pub result_format: Option<ResultFormat>,
    /// Accepted and without effect (it concerns tenant-wide queries over many subscriptions).
    #[serde(rename = "allowPartialScopes", default)]
    pub allow_partial_scopes: Option<bool>,
    /// Accepted and without effect.
    #[serde(rename = "authorizationScopeFilter", default)]
    pub authorization_scope_filter: Option<String>,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub enum ResultFormat {
    /// `{columns: [{name, type}], rows: [[…]]}`
    Table,
    /// One object per row.
    #[default]
    ObjectArray,
}

/// Resource Graph's `QueryResponse`.
#[derive(Debug, Serialize, ToSchema)]
pub struct QueryResponse {
    /// Rows in the whole result.
    #[serde(rename = "totalRecords")]
    pub total_records: u64,
    /// Rows in this response.
    pub count: u64,
    /// `"true"` when rows past this page were dropped (the result has no `id` column to page by).
    #[serde(rename = "resultTruncated")]
    #[schema(value_type = String)]
    pub result_truncated: &'static str,
    /// Send it back in `options` with the same query and subscriptions for the next page.
    #[serde(rename = "$skipToken", skip_serializing_if = "Option::is_none")]
    pub skip_token: Option<String>,
    /// An array of objects, or `{columns, rows}` with `resultFormat: table`.
    #[schema(value_type = Value)]
    pub data: Value,
    #[schema(value_type = Vec<Object>)]
    pub facets: Vec<Value>,
}

/// Runs a Resource Graph query over the subscriptions the caller may read.
#[utoipa::path(
    post,
    path = "/providers/Microsoft.ResourceGraph/resources",
    operation_id = "Resources",
    tag = "ResourceGraph",
    params(ApiVersionQuery),
    request_body = QueryRequest,
    responses(
        (status = 200, description = "One page of the query's result", body = QueryResponse),
        (status = "default", description = "CloudError; a refused query has code BadRequest and the fault (InvalidQuery or ParserFailure, with line, characterPositionInLine and token) in details", body = CloudError)
    ),
    security(("bearer" = []))
)]
pub async fn resources(
    state: web::Data<AppState>,
    caller: Caller,
    query: web::Query<ApiVersionQuery>,
    body: Json<QueryRequest>,
) -> Result<HttpResponse, ApiError> {
    api_version::require_one_of(query.api_version.as_deref(), api_version::RESOURCE_GRAPH)?;
    caller.require_role(Role::Reader)?;
    let request = body.into_inner();
    if request
        .management_groups
        .as_ref()
        .is_some_and(|groups| !groups.is_empty())
    {
        return Err(ApiError::invalid_parameter(
            "managementGroups",
            "Crowsnest has no management groups; name the subscriptions to query.",
        ));
    }
    let visible = visible_subscriptions(&caller, request.subscriptions.as_deref());
    let options = request.options.unwrap_or_default();
    let fingerprint = fingerprint(&request.query, visible.as_deref());
    let window = window(&options, &fingerprint)?;
    let parsed = kql::parse(&request.query).map_err(ApiError::InvalidQuery)?;
    let now = Timestamp::now();
    let public_url = state.public_url.clone();
    let reads_plans = caller.require_role(Role::Contributor).is_ok();
    let output = store::run(&state.pool, move |conn| {
        let mut tables = Tables::new(conn, visible, public_url, reads_plans);
        match kql::execute(&parsed, &mut tables, window, now) {
            Ok(output) => Ok(Ok(output)),
            Err(ExecError::Query(e)) => Ok(Err(e)),
            Err(ExecError::Source(e)) => Err(e),
        }
    })
    .await?
    .map_err(ApiError::InvalidQuery)?;
    let response = respond(
        output,
        window,
        &fingerprint,
        options.result_format.unwrap_or_default(),
        request.facets.as_deref().unwrap_or_default(),
    );
    super::json_response(&response, 4096 + response.count as usize * 2560)
}

/// The subscriptions a query sees: the token's, narrowed to the request's when it names some;
/// `None` for every subscription (a token for all of them, a request naming none).
fn visible_subscriptions(caller: &Caller, requested: Option<&[String]>) -> Option<Vec<String>> {
    let granted: Option<Vec<String>> = caller
        .subscriptions()
        .map(|subs| subs.into_iter().map(|s| s.as_str().to_owned()).collect());
    let requested: Option<Vec<String>> = requested.map(|subs| {
        subs.iter()
            // A name that is not a subscription id reaches nothing, like one the token lacks.
            .filter_map(|s| SubscriptionId::parse(s).ok())
            .map(|s| s.as_str().to_owned())
            .collect()
    });
    let mut visible = match (granted, requested) {
        (None, requested) => requested?,
        (Some(granted), None) => granted,
        (Some(granted), Some(requested)) => requested
            .into_iter()
            .filter(|s| granted.contains(s))
            .collect(),
    };
    visible.sort();
    visible.dedup();
    Some(visible)
}

/// A short hash of the query and the subscriptions it sees: a skip token's tie to its query.
fn fingerprint(query: &str, visible: Option<&[String]>) -> String {
    let scope = visible.map_or_else(|| "*".to_owned(), |subs| subs.join(","));
    let digest = Sha256::digest(format!("{query}\n{scope}").as_bytes());
    hex::encode(&digest[..8])
}

/// What a `$skipToken` holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct SkipToken {
    /// The fingerprint of the query and scope it was issued for.
    query: String,
    skip: u64,
    top: u64,
}

impl SkipToken {
    fn encode(&self) -> String {
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(self).unwrap_or_default())
    }

    fn decode(token: &str, fingerprint: &str) -> Result<Self, ApiError> {
        let invalid = || {
            ApiError::invalid_parameter(
                "options.$skipToken",
                "The $skipToken was not issued for this query and these subscriptions; send the query again without it.",
            )
        };
        if token.len() > 512 {
            return Err(invalid());
        }
        let bytes = URL_SAFE_NO_PAD.decode(token).map_err(|_| invalid())?;
        let decoded: Self = serde_json::from_slice(&bytes).map_err(|_| invalid())?;
        if decoded.query != fingerprint || !(1..=MAX_TOP).contains(&decoded.top) {
            return Err(invalid());
        }
        Ok(decoded)
    }
}

/// The rows asked for: `$skip` and `$top`, else the token's, else from the start, 100.
fn window(options: &QueryRequestOptions, fingerprint: &str) -> Result<Window, ApiError> {
    let token = options
        .skip_token
        .as_deref()
        .map(|t| SkipToken::decode(t, fingerprint))
        .transpose()?;
    let top = match options.top {
        None => token.as_ref().map_or(DEFAULT_TOP, |t| t.top),
        Some(top) => u64::try_from(top)
            .ok()
            .filter(|top| (1..=MAX_TOP).contains(top))
            .ok_or_else(|| {
                ApiError::invalid_parameter(
                    "options.$top",
                    format!("$top must be between 1 and {MAX_TOP}; it was {top}."),
                )
            })?,
    };
    let skip = match options.skip {
        None => token.as_ref().map_or(0, |t| t.skip),
        Some(skip) => u64::try_from(skip).map_err(|_| {
            ApiError::invalid_parameter(
                "options.$skip",
                format!("$skip must be 0 or more; it was {skip}."),
            )
        })?,
    };
    Ok(Window { skip, top })
}

fn column_type_name(kind: ColumnType) -> &'static str {
    match kind {
        ColumnType::String => "string",
        ColumnType::Integer => "integer",
        ColumnType::Number => "number",
        ColumnType::Boolean => "boolean",
        ColumnType::Datetime => "datetime",
        ColumnType::Object => "object",
    }
}

/// The response for one window of the result.
fn respond(
    output: Output,
    window: Window,
    fingerprint: &str,
    format: ResultFormat,
    facets: &[Value],
) -> QueryResponse {
    let count = output.rows.len() as u64;
    let next = window.skip.saturating_add(count);
    let more = next < output.total_records;
    let pageable = output.columns.iter().any(|c| c.name == "id");
    let skip_token = (more && pageable).then(|| {
        SkipToken {
            query: fingerprint.to_owned(),
            skip: next,
            top: window.top,
        }
        .encode()
    });
    let data = match format {
        ResultFormat::Table => json!({
            "columns": output
                .columns
                .iter()
                .map(|c| json!({"name": c.name, "type": column_type_name(c.kind)}))
                .collect::<Vec<_>>(),
            "rows": output.rows,
        }),
        ResultFormat::ObjectArray => Value::Array(
            output
                .rows
                .into_iter()
                .map(|row| {
                    Value::Object(
                        output
                            .columns
                            .iter()
                            .map(|c| c.name.clone())
                            .zip(row)
                            .collect(),
                    )
                })
                .collect(),
        ),
    };
    QueryResponse {
        total_records: output.total_records,
        count,
        result_truncated: if more && !pageable { "true" } else { "false" },
        skip_token,
        data,
        facets: facets.iter().map(facet_error).collect(),
    }
}

/// Facets are not computed; each request gets Resource Graph's `FacetError`, so a client sees
/// why its facet is missing instead of an empty answer presented as complete.
fn facet_error(request: &Value) -> Value {
    json!({
        "expression": request.get("expression").cloned().unwrap_or(Value::Null),
        "resultType": "FacetError",
        "errors": [{
            "code": "NotSupported",
            "message": "Crowsnest does not compute facets; run the facet as a query of its own (summarize … by).",
        }],
    })
}

// ---------------------------------------------------------------------------------------------
// The tables

/// The kinds of rows, each read by its own query.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Part {
    SubAssessments,
    Assessments,
    Pricings,
    Registries,
}

impl Part {
    fn row_type(self) -> &'static str {
        match self {
            Self::SubAssessments => SUB_ASSESSMENT_ROW_TYPE,
            Self::Assessments => ASSESSMENT_ROW_TYPE,
            Self::Pricings => PRICING_ROW_TYPE,
            Self::Registries => REGISTRY_ROW_TYPE,
        }
    }

    fn of_table(table: &str) -> &'static [Part] {
        if table.eq_ignore_ascii_case("securityresources") {
            &[Self::SubAssessments, Self::Assessments, Self::Pricings]
        } else if table.eq_ignore_ascii_case("resources") {
            &[Self::Registries]
        } else {
            &[]
        }
    }
}

/// What one `rows` call reads, decided from the constraints before any row is read.
#[derive(Debug, Clone)]
struct Plan {
    parts: Vec<Part>,
    /// `None`: every subscription.
    subscriptions: Option<Vec<String>>,
    resource_groups: Option<Vec<String>>,
    /// The assessment keys whose sub-assessments are rendered.
    keys: Vec<&'static str>,
    /// The findings that may pass the conditions on sub-assessments' names and properties.
    findings: Listing<Findings>,
    /// When the query reads nothing of a sub-assessment row but [`STATUS_ROW_PATHS`]: those of
    /// them it reads.
    status_paths: Option<Vec<StatusPath>>,
}

type StatusPath = &'static [&'static str];

/// All that a status-only row shows of its finding.
struct StatusOf<'a> {
    subscription_id: &'a str,
    resource_group: &'a str,
    state: FindingState,
    severity: &'a str,
}

impl<'a> StatusOf<'a> {
    fn of(finding: &'a FindingStatusRow) -> Self {
        Self {
            subscription_id: &finding.subscription_id,
            resource_group: &finding.resource_group,
            state: FindingState::of(finding.resolved_at, finding.exempted_by.as_deref()),
            severity: &finding.severity,
        }
    }
}

/// The [`STATUS_ROW_PATHS`] that `reads` need, if every path in `reads` is one of them or lies
/// under one.
fn status_paths(reads: &[Vec<String>]) -> Option<Vec<StatusPath>> {
    let covering = |read: &Vec<String>| {
        STATUS_ROW_PATHS.iter().copied().find(|filled| {
            read.len() >= filled.len() && filled.iter().zip(read).all(|(a, b)| a == b)
        })
    };
    let mut needed: Vec<StatusPath> = Vec::new();
    for read in reads {
        let filled = covering(read)?;
        if !needed.contains(&filled) {
            needed.push(filled);
        }
    }
    Some(needed)
}

/// The strings a `OneOf` test names (other values can match no string column).
fn strings(values: &[Value]) -> Vec<&str> {
    values.iter().filter_map(Value::as_str).collect()
}

fn one_of_matches(test: &Test, candidate: &str) -> bool {
    match test {
        Test::OneOf {
            values,
            ignore_case,
        } => strings(values).iter().any(|v| {
            if *ignore_case {
                v.eq_ignore_ascii_case(candidate)
            } else {
                *v == candidate
            }
        }),
        Test::Compare { .. } => true,
    }
}

impl Plan {
    fn new(table: &str, scan: &Scan, visible: Option<&[String]>) -> Self {
        let constraints = &scan.constraints[..];
        let mut parts = Part::of_table(table).to_vec();
        let mut subscriptions = visible.map(<[String]>::to_vec);
        let mut resource_groups: Option<Vec<String>> = None;
        let mut keys = ASSESSMENT_KEYS.to_vec();
        for constraint in constraints {
            let test = &constraint.test;
            match constraint
                .column
                .iter()
                .map(String::as_str)
                .collect::<Vec<_>>()[..]
            {
                ["type"] => {
                    // Resource Graph's types are case-insensitive, whichever operator is used.
                    if let Test::OneOf { values, .. } = test {
                        let named = strings(values);
                        parts
                            .retain(|p| named.iter().any(|n| n.eq_ignore_ascii_case(p.row_type())));
                    }
                }
                ["subscriptionId"] => {
                    if let Test::OneOf {
                        values,
                        ignore_case,
                    } = test
                    {
                        // Stored subscription ids are lowercase (`SubscriptionId`).
                        let named: Vec<String> = strings(values)
                            .into_iter()
                            .map(|s| {
                                if *ignore_case {
                                    s.to_ascii_lowercase()
                                } else {
                                    s.to_owned()
                                }
                            })
                            .collect();
                        subscriptions = Some(match subscriptions {
                            None => named,
                            Some(visible) => {
                                visible.into_iter().filter(|s| named.contains(s)).collect()
                            }
                        });
                    }
                }
                ["resourceGroup"] => {
                    if let Test::OneOf {
                        values,
                        ignore_case: false,
                    } = test
                    {
                        let named: Vec<String> =
                            strings(values).into_iter().map(str::to_owned).collect();
                        resource_groups = Some(match resource_groups {
                            None => named,
                            Some(kept) => kept.into_iter().filter(|g| named.contains(g)).collect(),
                        });
                    }
                }
                ["assessmentKey"] => keys.retain(|key| one_of_matches(test, key)),
                ["properties", "additionalData", member, ..] => {
                    keys.retain(|key| {
                        AssessmentKey::parse(key).is_none_or(|key| {
                            may_match_additional_data(key, member, &constraint.column, test)
                        })
                    });
                }
                _ => {}
            }
        }
        if keys.is_empty() {
            parts.retain(|p| *p != Part::SubAssessments);
        }
        let findings = finding_listing(&keys, constraints);
        Plan {
            parts,
            subscriptions,
            resource_groups,
            keys,
            findings,
            status_paths: scan.reads.as_deref().and_then(status_paths),
        }
    }
}

/// The members of `additionalData` in the sub-assessments of `key`, as their schema names them;
/// empty if the schema cannot say.
fn additional_data_members(key: AssessmentKey) -> Vec<String> {
    use super::sub_assessments::{
        AzureContainerRegistryVulnerability, ContainerRegistryVulnerabilityProperties,
    };
    use utoipa::PartialSchema;
    use utoipa::openapi::{RefOr, Schema};
    let schema = match key {
        AssessmentKey::ContainerRegistry => ContainerRegistryVulnerabilityProperties::schema(),
        AssessmentKey::Mdvm => AzureContainerRegistryVulnerability::schema(),
    };
    match schema {
        RefOr::T(Schema::Object(object)) => object.properties.keys().cloned().collect(),
        _ => Vec::new(),
    }
}

/// Whether a sub-assessment under `key` may pass `test` on `column`, a path under
/// `properties.additionalData.{member}`. Not when the rows of the key have no such member and
/// the test asks for non-empty strings (a missing member reads as null, or as `""` against a
/// string), nor when it asks for an `assessedResourceType` other than the key's.
fn may_match_additional_data(
    key: AssessmentKey,
    member: &str,
    column: &[String],
    test: &Test,
) -> bool {
    let Test::OneOf {
        values,
        ignore_case,
    } = test
    else {
        return true;
    };
    let named = strings(values);
    if named.len() != values.len() || named.iter().any(|v| v.is_empty()) {
        return true;
    }
    if column.len() == 3 && member == "assessedResourceType" {
        let own = super::sub_assessments::assessed_resource_type(key);
        return named.iter().any(|v| {
            if *ignore_case {
                v.eq_ignore_ascii_case(own)
            } else {
                *v == own
            }
        });
    }
    let members = additional_data_members(key);
    members.is_empty() || members.iter().any(|m| m == member)
}

/// The `$filter` path of the Sub-Assessments list that holds the same value as `column` of a
/// sub-assessment row under `key`, when there is one.
fn filter_path(key: &str, column: &[String]) -> Option<String> {
    // Both are the finding's last sighting.
    let last_seen = || Some("properties/additionalData/lastSeen".to_owned());
    let path = column.iter().map(String::as_str).collect::<Vec<_>>();
    match AssessmentKey::parse(key)? {
        AssessmentKey::ContainerRegistry => match path[..] {
            ["timeGenerated"] | ["properties", "timeGenerated"] => last_seen(),
            ["name"] => Some("name".to_owned()),
            ["properties", ..] => {
                let path = column.join("/");
                // The properties whose names are those of the rendered sub-assessment.
                <Findings as List>::PROPERTIES
                    .iter()
                    .any(|p| p.path == path)
                    .then_some(path)
            }
            _ => None,
        },
        // The MDVM view shows each finding as its CVEs under derived names: a CVE condition
        // selects the findings naming it (the engine keeps the one row), and the name has no
        // column to compare with.
        AssessmentKey::Mdvm => {
            let found = match path[..] {
                ["timeGenerated"] | ["properties", "timeGenerated"] => {
                    "properties/additionalData/lastSeen"
                }
                ["properties", "id"]
                | ["properties", "displayName"]
                | [
                    "properties",
                    "additionalData",
                    "vulnerabilityDetails",
                    "cveId",
                ] => "properties/additionalData/cveId",
                ["properties", "status", "code"] => "properties/status/code",
                ["properties", "status", "severity"]
                | [
                    "properties",
                    "additionalData",
                    "vulnerabilityDetails",
                    "severity",
                ] => "properties/status/severity",
                [
                    "properties",
                    "additionalData",
                    "artifactDetails",
                    "repositoryName",
                ] => "properties/additionalData/repositoryName",
                ["properties", "additionalData", "artifactDetails", "digest"] => {
                    "properties/additionalData/imageDigest"
                }
                [
                    "properties",
                    "additionalData",
                    "softwareDetails",
                    "packageName",
                ] => "properties/additionalData/packageName",
                _ => return None,
            };
            Some(found.to_owned())
        }
    }
}

/// Properties whose `$filter` comparison ignores case (their values are names of a fixed set).
const CASELESS: &[&str] = &[
    "properties/status/severity",
    "properties/status/code",
    "properties/additionalData/severity",
];

fn literal(value: &Value) -> Option<Literal> {
    Some(match value {
        Value::String(s) => Literal::String(s.clone()),
        Value::Bool(b) => Literal::Bool(*b),
        Value::Null => Literal::Null,
        Value::Number(n) => match n.as_i64() {
            Some(i) => Literal::Integer(i),
            None => Literal::Decimal(n.as_f64()?),
        },
        _ => return None,
    })
}

/// A constraint as a `$filter` comparison of the Sub-Assessments list under `key`, when the list
/// can test it exactly as the engine will (or more loosely).
fn filter_of(key: &str, constraint: &Constraint) -> Option<Expr> {
    let path = filter_path(key, &constraint.column)?;
    let property = odata::Property { path, position: 0 };
    let value = |literal| odata::Value {
        literal,
        position: 0,
    };
    let expr = match &constraint.test {
        Test::OneOf {
            values,
            ignore_case,
        } => {
            if *ignore_case && !CASELESS.contains(&property.path.as_str()) {
                return None;
            }
            let literals = values.iter().map(literal).collect::<Option<Vec<_>>>()?;
            match &literals[..] {
                [] => return None,
                [one] => Expr::Compare {
                    property,
                    op: odata::CompareOp::Eq,
                    value: value(one.clone()),
                },
                _ => Expr::In {
                    property,
                    values: literals.into_iter().map(value).collect(),
                },
            }
        }
        Test::Compare { op, value: v } => Expr::Compare {
            property,
            op: match op {
                CompareOp::Lt => odata::CompareOp::Lt,
                CompareOp::Le => odata::CompareOp::Le,
                CompareOp::Gt => odata::CompareOp::Gt,
                CompareOp::Ge => odata::CompareOp::Ge,
            },
            value: value(literal(v)?),
        },
    };
    // A comparison the list refuses (a value of another type) is left to the engine.
    store::findings::listing(Some(&expr), None).ok()?;
    Some(expr)
}

/// The findings whose sub-assessments under some of `keys` may pass `constraints`: per key, the
/// `and` of the constraints the list can test; over the keys, their `or`.
fn finding_listing(keys: &[&str], constraints: &[Constraint]) -> Listing<Findings> {
    let mut per_key = Vec::new();
    for key in keys {
        let tests = constraints.iter().filter_map(|c| filter_of(key, c));
        match tests.reduce(|a, b| Expr::And(Box::new(a), Box::new(b))) {
            Some(expr) => per_key.push(expr),
            // This key's rows are all candidates: nothing narrows the read.
            None => return Listing::all(),
        }
    }
    per_key
        .into_iter()
        .reduce(|a, b| Expr::Or(Box::new(a), Box::new(b)))
        .and_then(|expr| store::findings::listing(Some(&expr), None).ok())
        .unwrap_or_else(Listing::all)
}

/// The ARG row envelope around a rendered resource (`id`, `name`, `type`, `properties`).
fn envelope(resource: Value, subscription: &str, resource_group: &str, location: &str) -> Row {
    let Value::Object(mut resource) = resource else {
        return Row::new();
    };
    let mut row = Map::new();
    let mut take = |key: &str| resource.remove(key).unwrap_or(Value::Null);
    let row_type = take("type")
        .as_str()
        .map(str::to_ascii_lowercase)
        .unwrap_or_default();
    row.insert("id".into(), take("id"));
    row.insert("name".into(), take("name"));
    row.insert("type".into(), Value::String(row_type));
    row.insert("properties".into(), take("properties"));
    for (key, value) in [
        ("tenantId", json!("")),
        ("kind", json!("")),
        ("location", json!(location)),
        ("resourceGroup", json!(resource_group)),
        ("subscriptionId", json!(subscription)),
        ("managedBy", json!("")),
        ("sku", Value::Null),
        ("plan", Value::Null),
        ("tags", Value::Null),
        ("identity", Value::Null),
        ("zones", Value::Null),
        ("extendedLocation", Value::Null),
    ] {
        row.insert(key.into(), value);
    }
    row
}

/// A finding's sub-assessments under `key` (one, or one per CVE under the MDVM key), as
/// `securityresources` rows, rendered as the Sub-Assessments API renders them.
fn sub_assessment_rows(
    key: AssessmentKey,
    listed: &ListedFinding,
    details: &MdvmDetails,
) -> Vec<Row> {
    let finding = &listed.finding;
    super::sub_assessments::render_sub_assessments(key, std::slice::from_ref(listed), details)
        .into_iter()
        .map(move |sub_assessment| {
            let rendered = serde_json::to_value(sub_assessment).unwrap_or_default();
            let mut row = envelope(
                rendered,
                &finding.subscription_id,
                &finding.resource_group,
                "global",
            );
            let time_generated = row
                .get("properties")
                .and_then(|p| p.get("timeGenerated"))
                .cloned()
                .unwrap_or(Value::Null);
            row.insert("assessmentKey".into(), json!(key.as_str()));
            row.insert("timeGenerated".into(), time_generated);
            row
        })
        .collect()
}

/// A finding's sub-assessment under `key` with only `paths` (of [`STATUS_ROW_PATHS`]) filled;
/// it has [`sub_assessments_under`] of them.
fn status_row(key: AssessmentKey, finding: &StatusOf<'_>, paths: &[StatusPath]) -> Row {
    let mut row = Row::new();
    for path in paths {
        let value = match *path {
            ["type"] => json!(SUB_ASSESSMENT_ROW_TYPE),
            ["subscriptionId"] => json!(finding.subscription_id),
            ["resourceGroup"] => json!(finding.resource_group),
            ["location"] => json!("global"),
            ["assessmentKey"] => json!(key.as_str()),
            ["properties", "status", "code"] => {
                serde_json::to_value(super::sub_assessments::status_code(finding.state))
                    .unwrap_or_default()
            }
            ["properties", "status", "severity"] => json!(
                super::sub_assessments::finding_severity(finding.severity)
                    .azure_2019()
                    .as_str()
            ),
            ["properties", "additionalData", "assessedResourceType"] => {
                json!(super::sub_assessments::assessed_resource_type(key))
            }
            // `tenantId`, `kind`
            _ => json!(""),
        };
        insert_at(&mut row, path, value);
    }
    row
}

/// How many sub-assessments a finding is under `key` (one per CVE under the MDVM key).
fn sub_assessments_under(key: AssessmentKey, finding: &FindingStatusRow) -> u64 {
    match key {
        AssessmentKey::ContainerRegistry => 1,
        AssessmentKey::Mdvm => finding.mdvm_vulnerabilities.max(0) as u64,
    }
}

/// Sets `value` at `path` in `row`, making the objects on the way.
fn insert_at(row: &mut Row, path: &[&str], value: Value) {
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    let mut object = row;
    for parent in parents {
        let slot = object
            .entry(*parent)
            .or_insert_with(|| Value::Object(Row::new()));
        if !slot.is_object() {
            *slot = Value::Object(Row::new());
        }
        let Value::Object(inner) = slot else {
            return;
        };
        object = inner;
    }
    object.insert((*last).to_owned(), value);
}

fn assessment_row(registry: &RegistryRow, tally: &Tally, key: AssessmentKey) -> Row {
    let rendered = serde_json::to_value(super::assessments::assessment(registry, tally, key))
        .unwrap_or_default();
    envelope(
        rendered,
        &registry.subscription_id,
        &registry.resource_group,
        "global",
    )
}

fn pricing_row(subscription: &str, plan: PricingPlan, pricing: &pricings::Pricing) -> Row {
    let rendered = serde_json::to_value(super::pricings::render(subscription, plan, pricing))
        .unwrap_or_default();
    envelope(rendered, subscription, "", "")
}

fn registry_row(public_url: &url::Url, registry: RegistryRow) -> Row {
    let (subscription, resource_group) = (
        registry.subscription_id.clone(),
        registry.resource_group.clone(),
    );
    let rendered = serde_json::to_value(super::registries::render(public_url, registry, None))
        .unwrap_or_default();
    envelope(rendered, &subscription, &resource_group, "")
}

/// The row source of a query: the tables over one connection, seeing only `visible`.
pub struct Tables<'c> {
    conn: &'c mut AnyConnection,
    /// `None`: every subscription.
    visible: Option<Vec<String>>,
    public_url: url::Url,
    /// Whether the caller may read Defender plans (the `microsoft.security/pricings` rows).
    reads_plans: bool,
}

impl<'c> Tables<'c> {
    pub fn new(
        conn: &'c mut AnyConnection,
        visible: Option<Vec<String>>,
        public_url: url::Url,
        reads_plans: bool,
    ) -> Self {
        Self {
            conn,
            visible,
            public_url,
            reads_plans,
        }
    }
}

impl<'c> Tables<'c> {
    fn stream<'a>(&'a mut self, table: &str, scan: &Scan, counted: bool) -> RowStream<'a, 'c> {
        let mut plan = Plan::new(table, scan, self.visible.as_deref());
        if !self.reads_plans {
            plan.parts.retain(|p| *p != Part::Pricings);
        }
        RowStream {
            tables: self,
            plan,
            part: 0,
            after: None,
            batch: FIRST_FINDING_BATCH,
            subscription: 0,
            buffered: VecDeque::new(),
            counted,
            failed: false,
        }
    }
}

impl Source for Tables<'_> {
    type Error = QueryError;

    fn rows<'a>(
        &'a mut self,
        table: &str,
        scan: &Scan,
    ) -> Result<Box<dyn Iterator<Item = Result<Row, QueryError>> + 'a>, QueryError> {
        Ok(Box::new(
            self.stream(table, scan, false)
                .map(|row| row.map(|(row, _)| row)),
        ))
    }

    fn counted_rows<'a>(
        &'a mut self,
        table: &str,
        scan: &Scan,
    ) -> Result<Box<dyn Iterator<Item = Result<(Row, u64), QueryError>> + 'a>, QueryError> {
        Ok(Box::new(self.stream(table, scan, true)))
    }

    fn has_table(&self, table: &str) -> bool {
        !Part::of_table(table).is_empty()
    }
}

/// Rows pulled in batches, part after part.
struct RowStream<'a, 'c> {
    tables: &'a mut Tables<'c>,
    plan: Plan,
    /// Index into `plan.parts`.
    part: usize,
    /// The last row id of the part read so far (keyset).
    after: Option<String>,
    /// Findings to read in the next full batch.
    batch: i64,
    /// Index into the plan's subscriptions of the one whose findings are being read.
    subscription: usize,
    /// Rows read and not yet handed over, each with how many identical rows it stands for.
    buffered: VecDeque<(Row, u64)>,
    /// Whether runs of equal rows may be handed over once (`Source::counted_rows`).
    counted: bool,
    failed: bool,
}

impl RowStream<'_, '_> {
    /// Moves the findings' read on to the next visible subscription; false when there is none.
    fn next_subscription(&mut self) -> bool {
        if self.plan.subscriptions.is_none() {
            return false;
        }
        self.subscription += 1;
        self.after = None;
        self.batch = FIRST_FINDING_BATCH;
        true
    }

    /// Reads the current part's next batch into the buffer; false when the part is exhausted.
    fn fill(&mut self, part: Part) -> Result<bool, QueryError> {
        let plan = &self.plan;
        let conn = &mut *self.tables.conn;
        let after = self.after.as_deref();
        let subscriptions = plan.subscriptions.as_deref();
        let groups = plan.resource_groups.as_deref();
        match part {
            Part::SubAssessments => {
                // One subscription after another: each is one index range in id order.
                let subscriptions = match &plan.subscriptions {
                    None => None,
                    Some(all) => match all.get(self.subscription) {
                        Some(one) => Some(vec![one.clone()]),
                        None => return Ok(false),
                    },
                };
                let selection = FindingSelection {
                    subscriptions,
                    resource_groups: plan.resource_groups.clone(),
                    listing: plan.findings.clone(),
                };
                let keys: Vec<AssessmentKey> = plan
                    .keys
                    .iter()
                    .filter_map(|key| AssessmentKey::parse(key))
                    .collect();
                if let Some(paths) = &plan.status_paths {
                    if self.counted {
                        // The database counts each subscription's findings by what tells their
                        // rows apart; each group is handed over once, with its number.
                        if after.is_some() {
                            return Ok(self.next_subscription());
                        }
                        self.after = Some(String::new());
                        for group in store::findings::status_counts(conn, &selection)? {
                            let status = StatusOf {
                                subscription_id: &group.subscription_id,
                                resource_group: &group.resource_group,
                                state: group.state,
                                severity: &group.severity,
                            };
                            for key in &keys {
                                let times = match key {
                                    AssessmentKey::ContainerRegistry => group.findings,
                                    AssessmentKey::Mdvm => group.mdvm_vulnerabilities,
                                };
                                self.buffered
                                    .push_back((status_row(*key, &status, paths), times));
                            }
                        }
                        return Ok(true);
                    }
                    let batch =
                        store::findings::status_batch(conn, &selection, after, STATUS_BATCH)?;
                    let Some(last) = batch.last() else {
                        return Ok(self.next_subscription());
                    };
                    self.after = Some(last.id.clone());
                    for finding in &batch {
                        let status = StatusOf::of(finding);
                        for key in &keys {
                            let row = status_row(*key, &status, paths);
                            let times = sub_assessments_under(*key, finding);
                            self.buffered
                                .extend(std::iter::repeat_n(row, times as usize).map(|r| (r, 1)));
                        }
                    }
                    return Ok(true);
                }
                let batch = store::findings::batch(conn, &selection, after, self.batch)?;
                self.batch = (self.batch * 2).min(FINDING_BATCH);
                let Some(last) = batch.last() else {
                    return Ok(self.next_subscription());
                };
                self.after = Some(last.finding.id.clone());
                let details = if keys.contains(&AssessmentKey::Mdvm) {
                    mdvm::details(conn, &batch)?
                } else {
                    MdvmDetails::default()
                };
                for listed in &batch {
                    for key in &keys {
                        self.buffered.extend(
                            sub_assessment_rows(*key, listed, &details)
                                .into_iter()
                                .map(|r| (r, 1)),
                        );
                    }
                }
            }
            Part::Pricings => {
                // Plans belong to subscriptions, outside every resource group.
                if groups.is_some_and(|groups| !groups.iter().any(String::is_empty)) {
                    return Ok(false);
                }
                let mut batch: Vec<String> = match subscriptions {
                    Some(subscriptions) => subscriptions.to_vec(),
                    None => store::pricings::subscriptions(conn)?,
                };
                batch.sort();
                batch.dedup();
                batch.retain(|s| after.is_none_or(|after| s.as_str() > after));
                batch.truncate(SUBSCRIPTION_BATCH);
                let Some(last) = batch.last() else {
                    return Ok(false);
                };
                self.after = Some(last.clone());
                for (subscription, pricing) in pricings::of_subscriptions(conn, &batch)? {
                    for plan in PricingPlan::ALL {
                        self.buffered
                            .push_back((pricing_row(&subscription, plan, &pricing), 1));
                    }
                }
            }
            Part::Assessments | Part::Registries => {
                let batch =
                    store::registries::batch(conn, subscriptions, groups, after, REGISTRY_BATCH)?;
                let Some(last) = batch.last() else {
                    return Ok(false);
                };
                self.after = Some(last.id.clone());
                for registry in batch {
                    if part == Part::Assessments {
                        let tally =
                            Tally::load(conn, &FindingScope::Registry(registry.id.clone()))?;
                        for key in AssessmentKey::ALL {
                            if plan.keys.contains(&key.as_str()) {
                                self.buffered
                                    .push_back((assessment_row(&registry, &tally, key), 1));
                            }
                        }
                    } else {
                        self.buffered
                            .push_back((registry_row(&self.tables.public_url, registry), 1));
                    }
                }
            }
        }
        Ok(true)
    }
}

impl Iterator for RowStream<'_, '_> {
    type Item = Result<(Row, u64), QueryError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(row) = self.buffered.pop_front() {
                return Some(Ok(row));
            }
            if self.failed {
                return None;
            }
            let part = *self.plan.parts.get(self.part)?;
            match self.fill(part) {
                Ok(true) => {}
                Ok(false) => {
                    self.part += 1;
                    self.after = None;
                    self.subscription = 0;
                }
                Err(e) => {
                    self.failed = true;
                    return Some(Err(e));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::kql::Column;

    fn one_of(column: &str, values: &[Value], ignore_case: bool) -> Constraint {
        Constraint {
            column: column.split('.').map(str::to_owned).collect(),
            test: Test::OneOf {
                values: values.to_vec(),
                ignore_case,
            },
        }
    }

    fn compare(column: &str, op: CompareOp, value: Value) -> Constraint {
        Constraint {
            column: column.split('.').map(str::to_owned).collect(),
            test: Test::Compare { op, value },
        }
    }

    fn scan(constraints: &[Constraint]) -> Scan {
        Scan {
            constraints: constraints.to_vec(),
            reads: None,
        }
    }

    fn filter_text(key: &str, constraint: &Constraint) -> Option<String> {
        filter_of(key, constraint).map(|e| e.to_string())
    }

    const KEY: &str = crate::domain::CONTAINER_REGISTRY_ASSESSMENT_KEY;

    #[test]
    fn types_pick_the_parts_without_regard_to_case() {
        let plan = |table: &str, constraints: &[Constraint]| {
            Plan::new(table, &scan(constraints), None).parts
        };
        assert_eq!(
            plan("securityresources", &[]),
            vec![Part::SubAssessments, Part::Assessments, Part::Pricings]
        );
        assert_eq!(plan("SecurityResources", &[]).len(), 3);
        assert_eq!(plan("Resources", &[]), vec![Part::Registries]);
        assert!(plan("advisorresources", &[]).is_empty());
        for ignore_case in [false, true] {
            let sub = one_of(
                "type",
                &[json!("Microsoft.Security/assessments/subAssessments")],
                ignore_case,
            );
            assert_eq!(
                plan("securityresources", &[sub]),
                vec![Part::SubAssessments]
            );
        }
        let both = one_of(
            "type",
            &[
                json!("microsoft.security/assessments"),
                json!("microsoft.containerregistry/registries"),
            ],
            false,
        );
        assert_eq!(
            plan("securityresources", std::slice::from_ref(&both)),
            vec![Part::Assessments]
        );
        assert_eq!(plan("resources", &[both]), vec![Part::Registries]);
        let other = one_of("type", &[json!("microsoft.compute/virtualmachines")], true);
        assert!(plan("resources", &[other]).is_empty());
        // A key no sub-assessment has leaves the assessments (which have no key column).
        let key = one_of(
            "assessmentKey",
            &[json!("00000000-0000-0000-0000-000000000000")],
            false,
        );
        assert_eq!(
            plan("securityresources", &[key]),
            vec![Part::Assessments, Part::Pricings]
        );
        let plans = one_of("type", &[json!("Microsoft.Security/pricings")], true);
        assert_eq!(plan("securityresources", &[plans]), vec![Part::Pricings]);
    }

    #[test]
    fn a_condition_on_a_member_one_key_lacks_leaves_that_key_out() {
        let keys = |constraint: Constraint| {
            Plan::new("securityresources", &scan(&[constraint]), None).keys
        };
        let container_registry = AssessmentKey::ContainerRegistry.as_str();
        let mdvm = AssessmentKey::Mdvm.as_str();
        let repository = |column: &str, value: &str| one_of(column, &[json!(value)], false);
        assert_eq!(
            keys(repository(
                "properties.additionalData.repositoryName",
                "team/app"
            )),
            [container_registry]
        );
        assert_eq!(
            keys(repository(
                "properties.additionalData.artifactDetails.repositoryName",
                "team/app"
            )),
            [mdvm]
        );
        // A missing member equals "" in Kusto; a comparison is not a OneOf test.
        assert_eq!(
            keys(repository("properties.additionalData.repositoryName", "")),
            [container_registry, mdvm]
        );
        assert_eq!(
            keys(compare(
                "properties.additionalData.cvssV30Score",
                CompareOp::Gt,
                json!(7)
            )),
            [container_registry, mdvm]
        );
        assert_eq!(
            keys(one_of(
                "properties.additionalData.assessedResourceType",
                &[json!("azurecontainerregistryvulnerability")],
                true
            )),
            [mdvm]
        );
        assert_eq!(
            keys(repository(
                "properties.additionalData.assessedResourceType",
                "ContainerRegistryVulnerability"
            )),
            [container_registry]
        );
        // Both keys' rows have a severity under `properties.status`.
        assert_eq!(
            keys(repository("properties.status.severity", "High")),
            [container_registry, mdvm]
        );
        let members = additional_data_members(AssessmentKey::Mdvm);
        assert!(
            members.contains(&"softwareDetails".to_owned()),
            "{members:?}"
        );
    }

    #[test]
    fn status_rows_serve_queries_that_read_no_more_than_status() {
        let path = |p: &str| p.split('.').map(str::to_owned).collect::<Vec<_>>();
        let suffice = |paths: &[&str]| {
            status_paths(&paths.iter().map(|p| path(p)).collect::<Vec<_>>()).is_some()
        };
        assert!(suffice(&[]));
        assert!(suffice(&[
            "type",
            "properties.status.severity",
            "assessmentKey"
        ]));
        assert!(suffice(&["properties.status.code.x", "subscriptionId"]));
        // A whole object, or a property the status-only rows leave out, needs the full rows.
        assert!(!suffice(&["properties.status"]));
        assert!(!suffice(&["properties"]));
        assert!(!suffice(&["type", "id"]));
        assert!(!suffice(&["properties.additionalData.repositoryName"]));
        // Only what is read is built.
        let needed = status_paths(&[
            path("properties.status.severity.x"),
            path("type"),
            path("type"),
        ]);
        assert_eq!(
            needed,
            Some(vec![
                &["properties", "status", "severity"][..],
                &["type"][..]
            ])
        );
    }

    #[test]
    fn subscriptions_are_only_ever_narrowed() {
        let visible = vec!["sub-a".to_owned(), "sub-b".to_owned()];
        let subs = |constraints: &[Constraint], visible: Option<&[String]>| {
            Plan::new("securityresources", &scan(constraints), visible).subscriptions
        };
        assert_eq!(subs(&[], Some(&visible)), Some(visible.clone()));
        assert_eq!(subs(&[], None), None);
        let named = one_of("subscriptionId", &[json!("sub-b"), json!("sub-c")], false);
        assert_eq!(
            subs(std::slice::from_ref(&named), Some(&visible)),
            Some(vec!["sub-b".to_owned()])
        );
        assert_eq!(
            subs(&[named], None),
            Some(vec!["sub-b".to_owned(), "sub-c".to_owned()])
        );
        let caseless = one_of("subscriptionId", &[json!("SUB-A")], true);
        assert_eq!(
            subs(&[caseless], Some(&visible)),
            Some(vec!["sub-a".to_owned()])
        );
        let exact = one_of("subscriptionId", &[json!("SUB-A")], false);
        assert_eq!(subs(&[exact], Some(&visible)), Some(vec![]));
        let groups = |constraints: &[Constraint]| {
            Plan::new("securityresources", &scan(constraints), None).resource_groups
        };
        assert_eq!(
            groups(&[one_of("resourceGroup", &[json!("rg")], false)]),
            Some(vec!["rg".to_owned()])
        );
        // The database compares case-sensitively: a caseless test is left to the engine.
        assert_eq!(
            groups(&[one_of("resourceGroup", &[json!("RG")], true)]),
            None
        );
    }

    #[test]
    fn sub_assessment_conditions_become_the_lists_filter() {
        let cases = [
            (
                one_of("properties.status.severity", &[json!("High")], false),
                Some("properties/status/severity eq 'High'"),
            ),
            (
                one_of(
                    "properties.status.severity",
                    &[json!("high"), json!("low")],
                    true,
                ),
                Some("properties/status/severity in ('high', 'low')"),
            ),
            (
                one_of("properties.status.code", &[json!("Unhealthy")], false),
                Some("properties/status/code eq 'Unhealthy'"),
            ),
            (
                one_of(
                    "properties.additionalData.repositoryName",
                    &[json!("team/app")],
                    false,
                ),
                Some("properties/additionalData/repositoryName eq 'team/app'"),
            ),
            (
                one_of(
                    "properties.additionalData.imageDigest",
                    &[json!("sha256:ab")],
                    false,
                ),
                Some("properties/additionalData/imageDigest eq 'sha256:ab'"),
            ),
            (
                one_of("properties.id", &[json!("CVE-2023-5678")], false),
                Some("properties/id eq 'CVE-2023-5678'"),
            ),
            (
                one_of(
                    "name",
                    &[json!("5a0e9c1e-0000-0000-0000-000000000000")],
                    false,
                ),
                Some("name eq '5a0e9c1e-0000-0000-0000-000000000000'"),
            ),
            (
                one_of("properties.additionalData.patchable", &[json!(true)], false),
                Some("properties/additionalData/patchable eq true"),
            ),
            (
                compare(
                    "properties.timeGenerated",
                    CompareOp::Gt,
                    json!("2026-12-07T13:00:00Z"),
                ),
                Some("properties/additionalData/lastSeen gt '2026-12-07T13:00:00Z'"),
            ),
            (
                compare(
                    "timeGenerated",
                    CompareOp::Le,
                    json!("2026-12-07T13:00:00Z"),
                ),
                Some("properties/additionalData/lastSeen le '2026-12-07T13:00:00Z'"),
            ),
            // A repository compared without regard to case cannot be a database equality.
            (
                one_of(
                    "properties.additionalData.repositoryName",
                    &[json!("Team/App")],
                    true,
                ),
                None,
            ),
            // Values of another type, or that are no date-time, are left to the engine.
            (
                one_of(
                    "properties.additionalData.repositoryName",
                    &[json!(5)],
                    false,
                ),
                None,
            ),
            (
                compare("properties.timeGenerated", CompareOp::Gt, json!("soon")),
                None,
            ),
            (one_of("properties.unknown", &[json!("x")], false), None),
            (one_of("location", &[json!("global")], false), None),
        ];
        for (constraint, expected) in cases {
            assert_eq!(
                filter_text(KEY, &constraint).as_deref(),
                expected,
                "{constraint:?}"
            );
        }
    }

    #[test]
    fn every_pushed_condition_reaches_the_listing() {
        let constraints = [
            one_of(
                "type",
                &[json!("microsoft.security/assessments/subassessments")],
                false,
            ),
            one_of("properties.status.severity", &[json!("High")], false),
            one_of(
                "properties.additionalData.repositoryName",
                &[json!("team/app")],
                false,
            ),
            one_of("location", &[json!("global")], false),
        ];
        let listing = finding_listing(&[KEY], &constraints);
        let expected = store::findings::listing(
            Some(
                &odata::parse_filter(
                    "properties/status/severity eq 'High' and properties/additionalData/repositoryName eq 'team/app'",
                )
                .unwrap(),
            ),
            None,
        )
        .unwrap();
        assert_eq!(format!("{listing:?}"), format!("{expected:?}"));
        let everything = finding_listing(&[KEY], &constraints[3..]);
        assert_eq!(
            format!("{everything:?}"),
            format!("{:?}", Listing::<Findings>::all())
        );
    }

    #[test]
    fn skip_tokens_belong_to_their_query_and_scope() {
        let subs = vec!["sub-a".to_owned()];
        let print = fingerprint("securityresources | project id", Some(&subs));
        assert_ne!(
            print,
            fingerprint("securityresources | project id, name", Some(&subs))
        );
        assert_ne!(print, fingerprint("securityresources | project id", None));
        let token = SkipToken {
            query: print.clone(),
            skip: 300,
            top: 150,
        }
        .encode();
        let options = |token: Option<&str>, top, skip| QueryRequestOptions {
            skip_token: token.map(str::to_owned),
            top,
            skip,
            ..QueryRequestOptions::default()
        };
        assert_eq!(
            window(&options(None, None, None), &print).unwrap(),
            Window { skip: 0, top: 100 }
        );
        assert_eq!(
            window(&options(Some(&token), None, None), &print).unwrap(),
            Window {
                skip: 300,
                top: 150
            }
        );
        assert_eq!(
            window(&options(Some(&token), Some(10), Some(5)), &print).unwrap(),
            Window { skip: 5, top: 10 }
        );
        let other = fingerprint("resources", Some(&subs));
        for (options, print) in [
            (options(Some(&token), None, None), other.as_str()),
            (options(Some("not a token"), None, None), print.as_str()),
            (options(None, Some(0), None), print.as_str()),
            (options(None, Some(1001), None), print.as_str()),
            (options(None, None, Some(-1)), print.as_str()),
        ] {
            let error = window(&options, print).unwrap_err();
            assert!(
                matches!(
                    error,
                    ApiError::BadRequest {
                        code: "InvalidParameter",
                        ..
                    }
                ),
                "{error:?}"
            );
        }
    }

    fn output(columns: &[&str], rows: usize, total: u64) -> Output {
        Output {
            columns: columns
                .iter()
                .map(|name| Column {
                    name: (*name).to_owned(),
                    kind: ColumnType::String,
                })
                .collect(),
            rows: (0..rows)
                .map(|i| columns.iter().map(|c| json!(format!("{c}-{i}"))).collect())
                .collect(),
            total_records: total,
        }
    }

    #[test]
    fn pages_have_a_token_only_when_the_result_has_an_id() {
        let window = Window { skip: 10, top: 2 };
        let paged = respond(
            output(&["id", "name"], 2, 15),
            window,
            "f",
            ResultFormat::ObjectArray,
            &[],
        );
        assert_eq!((paged.total_records, paged.count), (15, 2));
        assert_eq!(paged.result_truncated, "false");
        let token = SkipToken::decode(paged.skip_token.as_deref().unwrap(), "f").unwrap();
        assert_eq!((token.skip, token.top), (12, 2));
        assert_eq!(
            paged.data,
            json!([{"id": "id-0", "name": "name-0"}, {"id": "id-1", "name": "name-1"}])
        );

        let last = respond(
            output(&["id"], 2, 12),
            window,
            "f",
            ResultFormat::ObjectArray,
            &[],
        );
        assert_eq!((last.skip_token, last.result_truncated), (None, "false"));

        let summary = respond(
            output(&["severity"], 2, 15),
            window,
            "f",
            ResultFormat::Table,
            &[],
        );
        assert_eq!(
            (summary.skip_token, summary.result_truncated),
            (None, "true")
        );
        assert_eq!(
            summary.data,
            json!({"columns": [{"name": "severity", "type": "string"}], "rows": [["severity-0"], ["severity-1"]]})
        );
        let facets = respond(
            output(&["id"], 0, 0),
            window,
            "f",
            ResultFormat::Table,
            &[json!({"expression": "location"})],
        );
        assert_eq!(facets.facets[0]["resultType"], "FacetError");
        assert_eq!(facets.facets[0]["expression"], "location");
    }

    #[test]
    fn rows_carry_resource_graphs_envelope() {
        let row = envelope(
            json!({"id": "/subscriptions/s/x", "name": "n", "type": "Microsoft.Security/assessments", "properties": {"a": 1}}),
            "s",
            "rg",
            "global",
        );
        let keys: Vec<&str> = row.keys().map(String::as_str).collect();
        for key in [
            "id",
            "name",
            "type",
            "tenantId",
            "kind",
            "location",
            "resourceGroup",
            "subscriptionId",
            "managedBy",
            "sku",
            "plan",
            "properties",
            "tags",
            "identity",
            "zones",
            "extendedLocation",
        ] {
            assert!(keys.contains(&key), "{key} missing from {keys:?}");
        }
        assert_eq!(row.len(), 16);
        assert_eq!(row["type"], "microsoft.security/assessments");
        assert_eq!(row["properties"], json!({"a": 1}));
        assert_eq!(
            (&row["subscriptionId"], &row["resourceGroup"]),
            (&json!("s"), &json!("rg"))
        );
    }
}
