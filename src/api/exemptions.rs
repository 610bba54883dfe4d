//! Exemptions (api-version 2026-11-01): `{scope}/providers/Microsoft.Security/exemptions/{name}`
//! at a subscription, a resource group, a registry, a repository
//! (`{registryId}/repositories/{repository}`) or one image (`…/images/{digest}`), their lists and
//! their history. What an exemption does to findings and health is `jobs::exemptions`.
//!
//! Decisions:
//! - Readers may read exemptions; Contributors (and Admins) may create, change and delete them.
//! - A list at a scope shows the exemptions at that scope and under it.
//! - `expiresOn` must lie in the future when written; a PUT with a later `expiresOn` makes an
//!   expired exemption active again (its history says so).
//! - `exemptFindings` is how many present findings the exemption exempts now (a finding several
//!   exemptions match counts under the earliest created). A PUT's response also says how many
//!   findings its criteria match, and warns when that is none (a typo in a CVE id shows at once).
//! - DELETE answers 200 with the deleted exemption, 204 when there was none; its history stays.

use std::collections::HashMap;

use actix_web::{HttpRequest, HttpResponse, web};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};

use super::AppState;
use super::api_version;
use super::input::Json;
use super::paging::{ListQuery, paginate};
use crate::api::auth::Caller;
use crate::domain::{Criteria, ExemptionCategory, ExemptionScope, ExemptionState, Role, Timestamp};
use crate::error::{ApiError, CloudError};
use crate::jobs::exemptions::{self, ExemptionSpec};
use crate::store;
use crate::store::exemptions::{ExemptionRow, HistoryRow};

pub const EXEMPTION_TYPE: &str = "Microsoft.Security/exemptions";

/// Longest name, justification and display name.
const MAX_NAME: usize = 90;
/// What [`check_name`] accepts.
pub const NAME_PATTERN: &str = "^[A-Za-z0-9_-][A-Za-z0-9_.-]{0,89}$";
const MAX_JUSTIFICATION: usize = 4000;
const MAX_DISPLAY_NAME: usize = 256;

#[derive(Debug, Serialize, ToSchema)]
pub struct Exemption {
    /// `/{scope}/providers/Microsoft.Security/exemptions/{name}`
    pub id: String,
    pub name: String,
    /// `Microsoft.Security/exemptions`
    #[serde(rename = "type")]
    pub resource_type: String,
    pub properties: ExemptionProperties,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExemptionProperties {
    /// The scope's resource id.
    pub scope: String,
    pub criteria: Criteria,
    pub category: ExemptionCategory,
    pub justification: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    /// RFC 3339; absent: never expires.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_on: Option<String>,
    pub state: ExemptionState,
    /// The subject of the token that created it.
    pub created_by: String,
    pub created_at: String,
    pub updated_by: String,
    pub updated_at: String,
    /// Present findings it exempts now; absent in history entries.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exempt_findings: Option<i64>,
    /// In a PUT's response: present findings its criteria match in its scope (some may be exempt
    /// by an earlier exemption).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub matched_findings: Option<usize>,
    /// In a PUT's response: what may be wrong, such as criteria that match no finding now.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExemptionList {
    pub value: Vec<Exemption>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_link: Option<String>,
}

/// One change of an exemption.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct HistoryEntry {
    /// `Created`, `Updated`, `Deleted` or `Expired`.
    pub action: String,
    /// The token subject that made the change (`crowsnest` for expiry).
    pub actor: String,
    /// RFC 3339.
    pub at: String,
    /// The exemption before the change; absent for `Created`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub before: Option<Exemption>,
    /// The exemption after the change; absent for `Deleted`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub after: Option<Exemption>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ExemptionHistory {
    pub value: Vec<HistoryEntry>,
}

/// A PUT body: `properties` with `criteria`, `category`, `justification` and optionally
/// `expiresOn` and `displayName`. Read-only fields sent back are ignored.
#[derive(Debug, Deserialize, ToSchema)]
pub struct ExemptionUpdate {
    #[schema(value_type = ExemptionUpdateProperties)]
    pub properties: Value,
}

/// What a PUT sets (documented shape; parsed field by field so that a refusal names its field).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[allow(dead_code)]
pub struct ExemptionUpdateProperties {
    /// Every criterion given must hold; the values of one criterion are alternatives. None: every
    /// finding in the scope.
    #[serde(default)]
    criteria: Option<Criteria>,
    /// `Waiver` (risk accepted) or `Mitigated`.
    category: ExemptionCategory,
    /// Why; required.
    justification: String,
    /// RFC 3339, in the future.
    #[serde(default)]
    expires_on: Option<String>,
    #[serde(default)]
    display_name: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ExemptionQuery {
    #[serde(rename = "api-version")]
    #[param(rename = "api-version")]
    pub api_version: Option<String>,
}

/// What a PUT asks for, checked.
struct Requested {
    criteria: Criteria,
    category: ExemptionCategory,
    justification: String,
    expires_at: Option<i64>,
    display_name: Option<String>,
}

fn parse_update(properties: &Value, now: Timestamp) -> Result<Requested, ApiError> {
    let Some(fields) = properties.as_object() else {
        return Err(ApiError::invalid_parameter(
            "properties",
            "properties must be an object with criteria, category and justification.",
        ));
    };
    let text = |name: &str| -> Result<Option<&str>, ApiError> {
        match fields.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.as_str())),
            Some(_) => Err(ApiError::invalid_parameter(
                &format!("properties.{name}"),
                format!("properties.{name} must be a string."),
            )),
        }
    };
    let criteria: Criteria = match fields.get("criteria") {
        None | Some(Value::Null) => Criteria::default(),
        Some(value) => serde_json::from_value(value.clone()).map_err(|e| {
            ApiError::invalid_parameter("properties.criteria", format!("properties.criteria: {e}"))
        })?,
    };
    criteria
        .validate()
        .map_err(|e| ApiError::invalid_parameter(&e.field, e.to_string()))?;
    let category = text("category")?
        .and_then(ExemptionCategory::parse)
        .ok_or_else(|| {
            ApiError::invalid_parameter(
                "properties.category",
                "properties.category is required: Waiver (risk accepted) or Mitigated.",
            )
        })?;
    let justification = text("justification")?
        .map(str::trim)
        .filter(|j| !j.is_empty())
        .ok_or_else(|| {
            ApiError::invalid_parameter(
                "properties.justification",
                "properties.justification is required: say why the findings do not apply.",
            )
        })?;
    if justification.chars().count() > MAX_JUSTIFICATION {
        return Err(ApiError::invalid_parameter(
            "properties.justification",
            format!("properties.justification is longer than {MAX_JUSTIFICATION} characters."),
        ));
    }
    let expires_at = match text("expiresOn")? {
        None => None,
        Some(raw) => {
            let at = chrono::DateTime::parse_from_rfc3339(raw).map_err(|_| {
                ApiError::invalid_parameter(
                    "properties.expiresOn",
                    "properties.expiresOn must be an RFC 3339 time, such as 2027-01-31T00:00:00Z.",
                )
            })?;
            let micros = at.timestamp_micros();
            if micros <= now.micros() {
                return Err(ApiError::invalid_parameter(
                    "properties.expiresOn",
                    "properties.expiresOn is in the past: an exemption must expire in the future.",
                ));
            }
            Some(micros)
        }
    };
    let display_name = text("displayName")?.map(str::to_owned);
    if display_name
        .as_deref()
        .is_some_and(|d| d.chars().count() > MAX_DISPLAY_NAME)
    {
        return Err(ApiError::invalid_parameter(
            "properties.displayName",
            format!("properties.displayName is longer than {MAX_DISPLAY_NAME} characters."),
        ));
    }
    Ok(Requested {
        criteria,
        category,
        justification: justification.to_owned(),
        expires_at,
        display_name,
    })
}

/// The scope, parsed and authorized for `role`.
pub(super) fn scope_of(caller: &Caller, raw: &str, role: Role) -> Result<ExemptionScope, ApiError> {
    let scope = ExemptionScope::parse(raw).map_err(|e| ApiError::BadRequest {
        code: "InvalidScope",
        message: e.to_string(),
        target: Some("scope".to_owned()),
    })?;
    caller.authorize(scope.subscription(), role)?;
    Ok(scope)
}

fn check_name(name: &str) -> Result<(), ApiError> {
    let valid = !name.is_empty()
        && name.len() <= MAX_NAME
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        && !name.starts_with('.');
    if valid {
        Ok(())
    } else {
        Err(ApiError::BadRequest {
            code: "InvalidResourceName",
            message: format!(
                "The exemption name '{}' is invalid: use 1 to {MAX_NAME} letters, digits, '-', '_' or '.', not starting with '.'.",
                name.chars().take(100).collect::<String>()
            ),
            target: Some("exemptionName".to_owned()),
        })
    }
}

fn not_found(name: &str) -> ApiError {
    ApiError::not_found(
        "ExemptionNotFound",
        format!(
            "The exemption '{}' does not exist at this scope.",
            name.chars().take(100).collect::<String>()
        ),
    )
}

fn time(micros: i64) -> String {
    Timestamp::from_micros(micros).rfc3339()
}

/// An exemption as the API shows it.
pub fn render(row: &ExemptionRow, exempt_findings: Option<i64>) -> Exemption {
    Exemption {
        id: row.resource_id.clone(),
        name: row.name.clone(),
        resource_type: EXEMPTION_TYPE.to_owned(),
        properties: ExemptionProperties {
            scope: format!("/{}", row.scope),
            criteria: serde_json::from_str(&row.criteria).unwrap_or_default(),
            category: ExemptionCategory::parse(&row.category).unwrap_or(ExemptionCategory::Waiver),
            justification: row.justification.clone(),
            display_name: row.display_name.clone(),
            expires_on: row.expires_at.map(time),
            state: ExemptionState::parse(&row.state).unwrap_or(ExemptionState::Active),
            created_by: row.created_by.clone(),
            created_at: time(row.created_at),
            updated_by: row.updated_by.clone(),
            updated_at: time(row.updated_at),
            exempt_findings,
            matched_findings: None,
            warnings: Vec::new(),
        },
    }
}

fn render_history(entry: &HistoryRow) -> HistoryEntry {
    let side = |json: &Option<String>| {
        json.as_deref()
            .and_then(|j| serde_json::from_str::<ExemptionRow>(j).ok())
            .map(|row| render(&row, None))
    };
    HistoryEntry {
        action: entry.action.clone(),
        actor: entry.actor.clone(),
        at: time(entry.at),
        before: side(&entry.before),
        after: side(&entry.after),
    }
}

/// Creates or replaces an exemption (Contributor).
#[utoipa::path(
    put,
    path = "/{exemptionScope}/providers/Microsoft.Security/exemptions/{exemptionName}",
    operation_id = "Exemptions_CreateOrUpdate",
    tag = "Exemptions",
    params(
        ("exemptionScope" = String, Path, description = "A subscription, resource group or registry id, `{registryId}/repositories/{repository}` or `…/images/{digest}`"),
        ("exemptionName" = String, Path, description = "The exemption's name"),
        ExemptionQuery
    ),
    request_body = ExemptionUpdate,
    responses(
        (status = 200, description = "Updated", body = Exemption),
        (status = 201, description = "Created", body = Exemption),
        (status = "default", description = "CloudError", body = CloudError)
    ),
    security(("bearer" = []))
)]
pub async fn put(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<(String, String)>,
    query: web::Query<ExemptionQuery>,
    body: Json<ExemptionUpdate>,
) -> Result<HttpResponse, ApiError> {
    api_version::require(query.api_version.as_deref(), api_version::CROWSNEST)?;
    let (raw_scope, name) = path.into_inner();
    let scope = scope_of(&caller, &raw_scope, Role::Contributor)?;
    check_name(&name)?;
    let now = Timestamp::now();
    let requested = parse_update(&body.into_inner().properties, now)?;
    let id = exemptions::exemption_key(&scope, &name);
    let subject = caller.subject.clone();
    let spec = ExemptionSpec {
        criteria: requested.criteria,
        category: requested.category,
        justification: requested.justification,
        expires_at: requested.expires_at,
        display_name: requested.display_name,
    };
    let written = store::run_transaction(&state.pool, move |c| {
        let (before, row) = exemptions::write(c, &scope, &name, &spec, &subject, now.micros())?;
        let matched = exemptions::apply(c, &scope, Some(&id))?;
        let exempt = store::exemptions::exempt_counts(c, std::slice::from_ref(&id))?;
        Ok((
            before.is_some(),
            row,
            matched,
            exempt.get(&id).copied().unwrap_or(0),
        ))
    })
    .await?;
    let (replaced, row, matched, exempt) = written;
    tracing::info!(exemption = %row.resource_id, by = %caller.subject, matched, replaced, "exemption written");
    let mut body = render(&row, Some(exempt));
    body.properties.matched_findings = Some(matched);
    if matched == 0 {
        body.properties.warnings.push(
            "The criteria match no present finding in this scope now: check the advisory ids, packages and digests (the exemption still applies to findings that appear later)."
                .to_owned(),
        );
    }
    Ok(if replaced {
        HttpResponse::Ok().json(body)
    } else {
        HttpResponse::Created().json(body)
    })
}

/// Reads an exemption (Reader).
#[utoipa::path(
    get,
    path = "/{exemptionScope}/providers/Microsoft.Security/exemptions/{exemptionName}",
    operation_id = "Exemptions_Get",
    tag = "Exemptions",
    params(
        ("exemptionScope" = String, Path, description = "The exemption's scope"),
        ("exemptionName" = String, Path, description = "The exemption's name"),
        ExemptionQuery
    ),
    responses(
        (status = 200, description = "The exemption", body = Exemption),
        (status = "default", description = "CloudError", body = CloudError)
    ),
    security(("bearer" = []))
)]
pub async fn get(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<(String, String)>,
    query: web::Query<ExemptionQuery>,
) -> Result<web::Json<Exemption>, ApiError> {
    api_version::require(query.api_version.as_deref(), api_version::CROWSNEST)?;
    let (raw_scope, name) = path.into_inner();
    let scope = scope_of(&caller, &raw_scope, Role::Reader)?;
    check_name(&name)?;
    let id = exemptions::exemption_key(&scope, &name);
    let found = store::run(&state.pool, move |c| {
        let Some(row) = store::exemptions::get(c, &id)? else {
            return Ok(None);
        };
        let counts = store::exemptions::exempt_counts(c, std::slice::from_ref(&id))?;
        Ok(Some((row, counts.get(&id).copied().unwrap_or(0))))
    })
    .await?;
    let (row, exempt) = found.ok_or_else(|| not_found(&name))?;
    Ok(web::Json(render(&row, Some(exempt))))
}

/// Deletes an exemption (Contributor); its findings are weighed again at once. Its history stays.
#[utoipa::path(
    delete,
    path = "/{exemptionScope}/providers/Microsoft.Security/exemptions/{exemptionName}",
    operation_id = "Exemptions_Delete",
    tag = "Exemptions",
    params(
        ("exemptionScope" = String, Path, description = "The exemption's scope"),
        ("exemptionName" = String, Path, description = "The exemption's name"),
        ExemptionQuery
    ),
    responses(
        (status = 200, description = "Deleted", body = Exemption),
        (status = 204, description = "There was no such exemption"),
        (status = "default", description = "CloudError", body = CloudError)
    ),
    security(("bearer" = []))
)]
pub async fn delete(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<(String, String)>,
    query: web::Query<ExemptionQuery>,
) -> Result<HttpResponse, ApiError> {
    api_version::require(query.api_version.as_deref(), api_version::CROWSNEST)?;
    let (raw_scope, name) = path.into_inner();
    let scope = scope_of(&caller, &raw_scope, Role::Contributor)?;
    check_name(&name)?;
    let id = exemptions::exemption_key(&scope, &name);
    let subject = caller.subject.clone();
    let deleted = store::run_transaction(&state.pool, move |c| {
        let deleted = exemptions::remove(c, &scope, &id, &subject, Timestamp::now().micros())?;
        if deleted.is_some() {
            exemptions::apply(c, &scope, None)?;
        }
        Ok(deleted)
    })
    .await?;
    Ok(match deleted {
        Some(row) => {
            tracing::info!(exemption = %row.resource_id, by = %caller.subject, "exemption deleted");
            HttpResponse::Ok().json(render(&row, Some(0)))
        }
        None => HttpResponse::NoContent().finish(),
    })
}

/// Lists the exemptions at a scope and under it (Reader), by id.
#[utoipa::path(
    get,
    path = "/{exemptionScope}/providers/Microsoft.Security/exemptions",
    operation_id = "Exemptions_List",
    tag = "Exemptions",
    params(
        ("exemptionScope" = String, Path, description = "A subscription, resource group, registry, repository or image"),
        ListQuery
    ),
    responses(
        (status = 200, description = "A page of exemptions", body = ExemptionList),
        (status = "default", description = "CloudError", body = CloudError)
    ),
    security(("bearer" = []))
)]
pub async fn list(
    state: web::Data<AppState>,
    req: HttpRequest,
    caller: Caller,
    path: web::Path<String>,
    query: web::Query<ListQuery>,
) -> Result<web::Json<ExemptionList>, ApiError> {
    api_version::require(query.api_version.as_deref(), api_version::CROWSNEST)?;
    let scope = scope_of(&caller, &path, Role::Reader)?;
    let page = query.page(1)?;
    let after = page.after.and_then(|mut key| key.pop());
    let top = page.top;
    let (rows, counts) = store::run(&state.pool, move |c| {
        let rows = store::exemptions::list_under(
            c,
            scope.subscription().as_str(),
            &scope.id(),
            after.as_deref(),
            top + 1,
        )?;
        let ids: Vec<String> = rows.iter().map(|r| r.id.clone()).collect();
        let counts = store::exemptions::exempt_counts(c, &ids)?;
        Ok((rows, counts))
    })
    .await?;
    let counts: HashMap<String, i64> = counts;
    let page = paginate(
        rows,
        top,
        |row| vec![row.id.clone()],
        |token| super::paging::next_link(&state.public_url, req.path(), req.query_string(), token),
        |row| {
            let exempt = counts.get(&row.id).copied().unwrap_or(0);
            render(&row, Some(exempt))
        },
    );
    Ok(web::Json(ExemptionList {
        value: page.value,
        next_link: page.next_link,
    }))
}

/// An exemption's history, oldest first (Reader): every create, change, delete and expiry, kept
/// after the exemption is deleted.
#[utoipa::path(
    get,
    path = "/{exemptionScope}/providers/Microsoft.Security/exemptions/{exemptionName}/history",
    operation_id = "Exemptions_History",
    tag = "Exemptions",
    params(
        ("exemptionScope" = String, Path, description = "The exemption's scope"),
        ("exemptionName" = String, Path, description = "The exemption's name"),
        ExemptionQuery
    ),
    responses(
        (status = 200, description = "Its changes", body = ExemptionHistory),
        (status = "default", description = "CloudError", body = CloudError)
    ),
    security(("bearer" = []))
)]
pub async fn history(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<(String, String)>,
    query: web::Query<ExemptionQuery>,
) -> Result<web::Json<ExemptionHistory>, ApiError> {
    api_version::require(query.api_version.as_deref(), api_version::CROWSNEST)?;
    let (raw_scope, name) = path.into_inner();
    let scope = scope_of(&caller, &raw_scope, Role::Reader)?;
    check_name(&name)?;
    let id = exemptions::exemption_key(&scope, &name);
    let entries = store::run(&state.pool, move |c| store::exemptions::history(c, &id)).await?;
    if entries.is_empty() {
        return Err(not_found(&name));
    }
    Ok(web::Json(ExemptionHistory {
        value: entries.iter().map(render_history).collect(),
    }))
}
