//! VEX (api-version 2026-11-01): `POST {scope}/providers/Microsoft.Security/vex` imports an
//! OpenVEX 0.2 document at a scope (Contributor); `GET` lists the statements kept at the scope and
//! under it (Reader). What an import does is `jobs::vex`.

use actix_web::web;
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

use super::AppState;
use super::api_version;
use super::exemptions::{ExemptionQuery, scope_of};
use super::input::Json;
use crate::api::auth::Caller;
use crate::domain::{Role, Timestamp, VexDocument};
use crate::error::{ApiError, CloudError};
use crate::jobs::vex::{self, VexImported};
use crate::store::{self, vex::VexStatementRow};

/// A statement kept from an imported document, about one product.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct VexStatement {
    pub vulnerability: String,
    pub aliases: Vec<String>,
    /// The product's package URL.
    pub product: String,
    /// `not_affected`, `affected`, `fixed` or `under_investigation`.
    pub status: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub justification: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub impact_statement: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub action_statement: Option<String>,
    /// When the statement was known to be true (RFC 3339).
    pub timestamp: String,
    /// The document's `@id` and author.
    pub document: String,
    pub author: String,
    /// The scope it was imported at.
    pub scope: String,
    /// The exemption a `not_affected` or `fixed` statement stands behind.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exemption: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct VexStatementList {
    pub value: Vec<VexStatement>,
}

pub fn render(row: &VexStatementRow) -> VexStatement {
    VexStatement {
        vulnerability: row.vulnerability.clone(),
        aliases: serde_json::from_str(&row.aliases).unwrap_or_default(),
        product: row.product.clone(),
        status: row.status.clone(),
        justification: row.justification.clone(),
        impact_statement: row.impact_statement.clone(),
        action_statement: row.action_statement.clone(),
        timestamp: Timestamp::from_micros(row.stated_at).rfc3339(),
        document: row.document_id.clone(),
        author: row.author.clone(),
        scope: format!("/{}", row.scope),
        exemption: row.exemption_id.as_ref().map(|id| format!("/{id}")),
    }
}

/// Imports an OpenVEX 0.2 document at a scope (Contributor): `not_affected` and `fixed`
/// statements become `Mitigated` exemptions; every statement is kept. Idempotent.
#[utoipa::path(
    post,
    path = "/{exemptionScope}/providers/Microsoft.Security/vex",
    operation_id = "Vex_Import",
    tag = "Exemptions",
    params(
        ("exemptionScope" = String, Path, description = "Where the document's statements apply: a subscription, resource group, registry, repository or image"),
        ExemptionQuery
    ),
    request_body(content = Object, description = "An OpenVEX 0.2 document (https://openvex.dev/ns/v0.2.0)"),
    responses(
        (status = 200, description = "What the import did", body = VexImported),
        (status = "default", description = "CloudError", body = CloudError)
    ),
    security(("bearer" = []))
)]
pub async fn import(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
    query: web::Query<ExemptionQuery>,
    body: Json<Value>,
) -> Result<web::Json<VexImported>, ApiError> {
    api_version::require(query.api_version.as_deref(), api_version::CROWSNEST)?;
    let scope = scope_of(&caller, &path, Role::Contributor)?;
    let document = VexDocument::parse(&body.into_inner())
        .map_err(|e| ApiError::invalid_parameter(&e.field, e.to_string()))?;
    let actor = caller.subject.clone();
    let imported = store::run_transaction(&state.pool, move |c| {
        vex::import(c, &scope, &document, &actor, Timestamp::now().micros())
    })
    .await?;
    tracing::info!(
        by = %caller.subject,
        statements = imported.statements,
        recorded = imported.recorded,
        exemptions_created = imported.exemptions_created,
        "VEX document imported"
    );
    Ok(web::Json(imported))
}

/// The VEX statements kept at a scope and under it (Reader).
#[utoipa::path(
    get,
    path = "/{exemptionScope}/providers/Microsoft.Security/vex",
    operation_id = "Vex_List",
    tag = "Exemptions",
    params(
        ("exemptionScope" = String, Path, description = "A subscription, resource group, registry, repository or image"),
        ExemptionQuery
    ),
    responses(
        (status = 200, description = "The statements", body = VexStatementList),
        (status = "default", description = "CloudError", body = CloudError)
    ),
    security(("bearer" = []))
)]
pub async fn list(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
    query: web::Query<ExemptionQuery>,
) -> Result<web::Json<VexStatementList>, ApiError> {
    api_version::require(query.api_version.as_deref(), api_version::CROWSNEST)?;
    let scope = scope_of(&caller, &path, Role::Reader)?;
    let rows = store::run(&state.pool, move |c| {
        store::vex::under(c, scope.subscription().as_str(), &scope.id())
    })
    .await?;
    Ok(web::Json(VexStatementList {
        value: rows.iter().map(render).collect(),
    }))
}
