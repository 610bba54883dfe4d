//! Connected registries: `Microsoft.ContainerRegistry/registries` resources.

use actix_web::{HttpRequest, HttpResponse, web};
use serde::{Deserialize, Deserializer, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::AppState;
use super::api_version::{self, ApiVersionQuery};
use super::input::Json;
use super::paging::{ListQuery, paginate};
use crate::api::auth::Caller;
use crate::domain::{
    LoginServer, RegistryCredentials, RegistryId, RegistryName, ResourceGroupName, Role,
    SubscriptionId, Timestamp,
};
use crate::error::{ApiError, CloudError};
use crate::jobs::registries::{self, Connected, OnReconnect, RegistrySettings, WebhookSecret};
use crate::store::{self, registries::RegistryRow};

pub const REGISTRY_TYPE: &str = "Microsoft.ContainerRegistry/registries";

#[derive(Debug, Deserialize, ToSchema)]
pub struct RegistryPut {
    pub properties: RegistryPutProperties,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RegistryPutProperties {
    /// `host[:port]` of the registry, e.g. `registry.example.com` or `127.0.0.1:5000`.
    pub login_server: String,
    /// Talk plain HTTP to this registry (only for registries on a trusted network).
    #[serde(default)]
    pub insecure: bool,
    /// Pull credentials, write-only. Omit to keep the stored ones; `null` removes them.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<RegistryCredentials>)]
    pub credentials: Option<Option<RegistryCredentials>>,
}

/// Tells a field sent as `null` (Some(None)) from one left out (None, via `#[serde(default)]`).
fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Registry {
    pub id: String,
    pub name: String,
    #[serde(rename = "type")]
    pub resource_type: String,
    pub properties: RegistryProperties,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RegistryProperties {
    pub login_server: String,
    pub insecure: bool,
    /// `None`, `Basic` or `Token`; the credentials themselves are never returned.
    pub credentials_type: String,
    pub webhook: Webhook,
    pub created_at: String,
    pub updated_at: String,
}

/// Where the registry sends its notifications.
#[derive(Debug, Serialize, ToSchema)]
pub struct Webhook {
    pub url: String,
    /// Returned once, when the registry is created; send it as `Authorization: Bearer <secret>`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RegistryList {
    pub value: Vec<Registry>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_link: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct RegistryPath {
    #[serde(rename = "subscriptionId")]
    #[param(rename = "subscriptionId")]
    pub subscription_id: String,
    #[serde(rename = "resourceGroupName")]
    #[param(rename = "resourceGroupName")]
    pub resource_group_name: String,
    #[serde(rename = "registryName")]
    #[param(rename = "registryName")]
    pub registry_name: String,
}

impl RegistryPath {
    /// The registry's id, once the caller is known to hold `role` on its subscription.
    fn authorize(&self, caller: &Caller, role: Role) -> Result<RegistryId, ApiError> {
        let id = self.parse()?;
        caller.authorize(&id.subscription, role)?;
        Ok(id)
    }

    pub fn parse(&self) -> Result<RegistryId, ApiError> {
        Ok(RegistryId {
            subscription: SubscriptionId::parse(&self.subscription_id)?,
            resource_group: ResourceGroupName::parse(&self.resource_group_name)?,
            name: RegistryName::parse(&self.registry_name)?,
        })
    }
}

/// A registry as this API and Resource Graph's `resources` table show it.
pub(super) fn render(public_url: &url::Url, row: RegistryRow, secret: Option<String>) -> Registry {
    let id = registry_id(&row);
    let credentials_type = row
        .credentials
        .as_deref()
        .and_then(|json| serde_json::from_str::<RegistryCredentials>(json).ok())
        .map_or("None", |c| c.kind());
    Registry {
        properties: RegistryProperties {
            login_server: row.login_server,
            insecure: row.insecure,
            credentials_type: credentials_type.to_owned(),
            webhook: Webhook {
                url: super::webhook::url(public_url, &id),
                secret,
            },
            created_at: Timestamp::from_micros(row.created_at).rfc3339(),
            updated_at: Timestamp::from_micros(row.updated_at).rfc3339(),
        },
        id,
        name: row.name,
        resource_type: REGISTRY_TYPE.to_owned(),
    }
}

/// Connects a registry, or changes a connected one.
#[utoipa::path(
    put,
    path = "/subscriptions/{subscriptionId}/resourceGroups/{resourceGroupName}/providers/Microsoft.ContainerRegistry/registries/{registryName}",
    operation_id = "Registries_CreateOrUpdate",
    tag = "Registries",
    params(RegistryPath, ApiVersionQuery),
    request_body = RegistryPut,
    responses(
        (status = 200, description = "Updated", body = Registry),
        (status = 201, description = "Created; the only response that carries the webhook secret", body = Registry),
        (status = "default", description = "CloudError", body = CloudError)
    ),
    security(("bearer" = []))
)]
pub async fn put(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<RegistryPath>,
    query: web::Query<ApiVersionQuery>,
    body: Json<RegistryPut>,
) -> Result<HttpResponse, ApiError> {
    api_version::require(query.api_version.as_deref(), api_version::CROWSNEST)?;
    let id = path.authorize(&caller, Role::Contributor)?;
    let props = body.into_inner().properties;
    let login_server = LoginServer::parse(&props.login_server)
        .map_err(|e| ApiError::invalid_parameter("properties.loginServer", e.to_string()))?;
    let credentials = match props.credentials {
        None => None,
        Some(None) => Some(None),
        Some(Some(c)) => {
            c.validate()
                .map_err(|m| ApiError::invalid_parameter("properties.credentials", m))?;
            let json = serde_json::to_string(&c).map_err(|e| ApiError::Internal(e.into()))?;
            Some(Some(json))
        }
    };
    let secret = WebhookSecret::generate()
        .map_err(|e| ApiError::Internal(anyhow::anyhow!("no randomness: {e}")))?;
    let settings = RegistrySettings {
        login_server,
        insecure: props.insecure,
        credentials,
    };
    match registries::connect(&state.pool, id, settings, &secret, OnReconnect::KeepSecret).await? {
        Connected::Created(row) => {
            tracing::info!(registry = %registry_id(&row), login_server = %row.login_server, insecure = row.insecure, by = %caller.subject, "registry connected");
            Ok(HttpResponse::Created().json(render(&state.public_url, row, Some(secret.plain))))
        }
        Connected::Updated(row) => {
            tracing::info!(registry = %registry_id(&row), login_server = %row.login_server, insecure = row.insecure, by = %caller.subject, "registry updated");
            Ok(HttpResponse::Ok().json(render(&state.public_url, row, None)))
        }
        Connected::LoginServerTaken(other) => Err(ApiError::Conflict {
            code: "LoginServerAlreadyConnected",
            message: format!(
                "The login server '{}' is already connected in this subscription as {}.",
                other.login_server,
                RegistryId::format(&other.subscription_id, &other.resource_group, &other.name)
            ),
        }),
    }
}

fn registry_id(row: &RegistryRow) -> String {
    RegistryId::format(&row.subscription_id, &row.resource_group, &row.name)
}

/// The connected registry, or a 404 naming it.
pub async fn find_registry(state: &AppState, id: RegistryId) -> Result<RegistryRow, ApiError> {
    let name = id.to_string();
    store::run(&state.pool, move |c| store::registries::find(c, &id))
        .await?
        .ok_or_else(|| {
            ApiError::not_found(
                "ResourceNotFound",
                format!("The registry '{name}' is not connected."),
            )
        })
}

/// Reads a connected registry (never its credentials or webhook secret).
#[utoipa::path(
    get,
    path = "/subscriptions/{subscriptionId}/resourceGroups/{resourceGroupName}/providers/Microsoft.ContainerRegistry/registries/{registryName}",
    operation_id = "Registries_Get",
    tag = "Registries",
    params(RegistryPath, ApiVersionQuery),
    responses(
        (status = 200, description = "The registry", body = Registry),
        (status = "default", description = "CloudError", body = CloudError)
    ),
    security(("bearer" = []))
)]
pub async fn get(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<RegistryPath>,
    query: web::Query<ApiVersionQuery>,
) -> Result<web::Json<Registry>, ApiError> {
    api_version::require(query.api_version.as_deref(), api_version::CROWSNEST)?;
    let id = path.authorize(&caller, Role::Reader)?;
    let row = find_registry(&state, id).await?;
    Ok(web::Json(render(&state.public_url, row, None)))
}

/// Disconnects a registry and forgets its images and findings. 200 when it existed, 204 when not.
#[utoipa::path(
    delete,
    path = "/subscriptions/{subscriptionId}/resourceGroups/{resourceGroupName}/providers/Microsoft.ContainerRegistry/registries/{registryName}",
    operation_id = "Registries_Delete",
    tag = "Registries",
    params(RegistryPath, ApiVersionQuery),
    responses(
        (status = 200, description = "Deleted"),
        (status = 204, description = "There was no such registry"),
        (status = "default", description = "CloudError", body = CloudError)
    ),
    security(("bearer" = []))
)]
pub async fn delete(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<RegistryPath>,
    query: web::Query<ApiVersionQuery>,
) -> Result<HttpResponse, ApiError> {
    api_version::require(query.api_version.as_deref(), api_version::CROWSNEST)?;
    let id = path.authorize(&caller, Role::Contributor)?;
    let name = id.to_string();
    let deleted = registries::disconnect(&state.pool, id).await?;
    if deleted {
        tracing::info!(registry = %name, by = %caller.subject, "registry disconnected");
    }
    Ok(if deleted {
        HttpResponse::Ok().finish()
    } else {
        HttpResponse::NoContent().finish()
    })
}

async fn list_registries(
    state: &AppState,
    caller: &Caller,
    req: &HttpRequest,
    subscription: &str,
    resource_group: Option<&str>,
    query: &ListQuery,
) -> Result<RegistryList, ApiError> {
    api_version::require(query.api_version.as_deref(), api_version::CROWSNEST)?;
    let subscription = SubscriptionId::parse(subscription)?;
    let resource_group = resource_group.map(ResourceGroupName::parse).transpose()?;
    caller.authorize(&subscription, Role::Reader)?;
    let page = query.page(2)?;
    let top = page.top;
    let rows = store::run(&state.pool, move |c| {
        let after = page.after.as_ref().map(|k| (k[0].as_str(), k[1].as_str()));
        store::registries::list(
            c,
            subscription.as_str(),
            resource_group.as_ref().map(|g| g.as_str()),
            after,
            top + 1,
        )
    })
    .await?;
    let page = paginate(
        rows,
        top,
        |r| vec![r.resource_group.clone(), r.name.clone()],
        |token| super::paging::next_link(&state.public_url, req.path(), req.query_string(), token),
        |r| render(&state.public_url, r, None),
    );
    Ok(RegistryList {
        value: page.value,
        next_link: page.next_link,
    })
}

/// Lists the registries connected in a subscription.
#[utoipa::path(
    get,
    path = "/subscriptions/{subscriptionId}/providers/Microsoft.ContainerRegistry/registries",
    operation_id = "Registries_List",
    tag = "Registries",
    params(("subscriptionId" = String, Path, description = "The subscription"), ListQuery),
    responses(
        (status = 200, description = "One page of registries", body = RegistryList),
        (status = "default", description = "CloudError", body = CloudError)
    ),
    security(("bearer" = []))
)]
pub async fn list(
    state: web::Data<AppState>,
    caller: Caller,
    req: HttpRequest,
    path: web::Path<String>,
    query: web::Query<ListQuery>,
) -> Result<web::Json<RegistryList>, ApiError> {
    list_registries(&state, &caller, &req, &path, None, &query)
        .await
        .map(web::Json)
}

/// Lists the registries connected in a resource group.
#[utoipa::path(
    get,
    path = "/subscriptions/{subscriptionId}/resourceGroups/{resourceGroupName}/providers/Microsoft.ContainerRegistry/registries",
    operation_id = "Registries_ListByResourceGroup",
    tag = "Registries",
    params(
        ("subscriptionId" = String, Path, description = "The subscription"),
        ("resourceGroupName" = String, Path, description = "The resource group"),
        ListQuery
    ),
    responses(
        (status = 200, description = "One page of registries", body = RegistryList),
        (status = "default", description = "CloudError", body = CloudError)
    ),
    security(("bearer" = []))
)]
pub async fn list_by_resource_group(
    state: web::Data<AppState>,
    caller: Caller,
    req: HttpRequest,
    path: web::Path<(String, String)>,
    query: web::Query<ListQuery>,
) -> Result<web::Json<RegistryList>, ApiError> {
    let (subscription, resource_group) = path.into_inner();
    list_registries(
        &state,
        &caller,
        &req,
        &subscription,
        Some(&resource_group),
        &query,
    )
    .await
    .map(web::Json)
}
