//! HTTP only: one module per resource, the auth extractor, and the wiring of routes and error bodies.

pub mod advisories;
pub mod api_version;
pub mod assessments;
pub mod auth;
pub mod images;
pub mod odata;
pub mod operations;
pub mod paging;
pub mod registries;
pub mod registry_events;
pub mod running_images;
pub mod scans;
pub mod sub_assessments;
pub mod usage;
pub mod webhook;

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::ServiceResponse;
use actix_web::http::header::{self, HeaderValue};
use actix_web::middleware::ErrorHandlerResponse;
use actix_web::{HttpRequest, HttpResponse, error, web};
use utoipa::OpenApi;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};

use crate::domain::{Role, Scope};
use crate::error::{ApiError, CloudError, CloudErrorBody};
use crate::store::{Pool, findings::FindingScope};
use auth::Caller;

/// Largest JSON body accepted.
pub const MAX_JSON_BODY: usize = 1024 * 1024;

pub struct AppState {
    pub pool: Pool,
    /// Base of every URL the service hands out.
    pub public_url: url::Url,
    /// Where submissions and registry notifications queue scans.
    pub queue: crate::jobs::queue::Queue,
}

/// Parses a `{scope}` path, checks the caller may read it, and names the rows it reaches.
/// Authorization comes before any lookup, so a refused caller learns nothing about the scope.
pub async fn resolve_scope(
    state: &AppState,
    caller: &Caller,
    raw: &str,
    role: Role,
) -> Result<FindingScope, ApiError> {
    let scope = Scope::parse(raw).map_err(|e| ApiError::BadRequest {
        code: "InvalidScope",
        message: e.to_string(),
        target: Some("scope".to_owned()),
    })?;
    caller.authorize(scope.subscription(), role)?;
    Ok(match scope {
        Scope::Subscription(sub) => FindingScope::Subscription(sub.as_str().to_owned()),
        Scope::ResourceGroup(sub, rg) => {
            FindingScope::ResourceGroup(sub.as_str().to_owned(), rg.as_str().to_owned())
        }
        Scope::Registry(id) => {
            FindingScope::Registry(registries::find_registry(state, id).await?.id)
        }
    })
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Crowsnest",
        description = "Vulnerability assessment for container registries, with an Azure Security Center Sub-Assessments compatible API.",
        license(name = "Apache-2.0")
    ),
    paths(
        sub_assessments::list_all,
        sub_assessments::list,
        sub_assessments::get,
        registries::put,
        registries::get,
        registries::delete,
        registries::list,
        registries::list_by_resource_group,
        registry_events::notify,
        scans::submit,
        scans::get,
        scans::list,
        usage::list,
        images::list,
        images::get,
        assessments::list,
        assessments::get,
        assessments::summary,
        running_images::report,
        advisories::import,
        advisories::get,
        advisories::status,
        operations::healthz,
        operations::readyz,
    ),
    components(schemas(CloudError, CloudErrorBody)),
    modifiers(&BearerAuth),
    tags(
        (name = "SubAssessments", description = "Findings, as Azure's Sub-Assessments API (api-version 2019-01-01-preview)"),
        (name = "Registries", description = "Connected registries (api-version 2026-11-01)"),
        (name = "Images", description = "Per-image health, running images and the vulnerability summary (api-version 2026-11-01)"),
        (name = "Assessments", description = "The registry-level assessment, as Azure's Assessments API (api-version 2021-06-01)"),
        (name = "Scans", description = "Scan submissions, their progress, and usage (api-version 2026-11-01)"),
        (name = "Advisories", description = "The OSV advisory database (api-version 2026-11-01)"),
        (name = "Operations", description = "Probes, metrics and documentation")
    )
)]
pub struct ApiDoc;

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
    }
}

/// The OpenAPI document, as `crowsnest openapi` prints it and `openapi/openapi.json` stores it.
pub fn openapi_json() -> String {
    let mut text = ApiDoc::openapi().to_pretty_json().unwrap_or_default();
    text.push('\n');
    text
}

/// A JSON response serialised into a buffer sized up front (`web::Json` grows one from empty,
/// copying a large page several times). `estimate` is the expected size in bytes.
pub fn json_response<T: serde::Serialize>(
    value: &T,
    estimate: usize,
) -> Result<HttpResponse, ApiError> {
    let mut body = Vec::with_capacity(estimate);
    serde_json::to_writer(&mut body, value).map_err(|e| ApiError::Internal(e.into()))?;
    Ok(HttpResponse::Ok()
        .content_type(actix_web::http::header::ContentType::json())
        .body(body))
}

/// A resource whose other methods answer 405 with a CloudError.
fn resource(path: &str) -> actix_web::Resource {
    web::resource(path).default_service(web::to(|req: HttpRequest| async move {
        Err::<HttpResponse, _>(ApiError::MethodNotAllowed(format!(
            "The method {} is not supported on this resource.",
            req.method()
        )))
    }))
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    const SCOPE: &str = "/{scope:.+}/providers/Microsoft.Security";
    const REGISTRY: &str = "/subscriptions/{subscriptionId}/resourceGroups/{resourceGroupName}/providers/Microsoft.ContainerRegistry/registries/{registryName}";
    cfg.app_data(web::JsonConfig::default().limit(MAX_JSON_BODY).error_handler(json_error))
        .app_data(web::QueryConfig::default().error_handler(|e, _| query_error(e)))
        .app_data(web::PathConfig::default().error_handler(|e, _| path_error(e)))
        .service(resource("/healthz").route(web::get().to(operations::healthz)))
        .service(resource("/readyz").route(web::get().to(operations::readyz)))
        .service(
            resource("/subscriptions/{subscriptionId}/providers/Microsoft.ContainerRegistry/registries")
                .route(web::get().to(registries::list)),
        )
        .service(
            resource("/subscriptions/{subscriptionId}/resourceGroups/{resourceGroupName}/providers/Microsoft.ContainerRegistry/registries")
                .route(web::get().to(registries::list_by_resource_group)),
        )
        .service(
            resource(&format!("{REGISTRY}/providers/Microsoft.Security/registryEvents"))
                .app_data(web::PayloadConfig::new(registry_events::MAX_ENVELOPE))
                .route(web::post().to(registry_events::notify)),
        )
        .service(
            resource("/subscriptions/{subscriptionId}/providers/Microsoft.Security/scans")
                .route(web::post().to(scans::submit))
                .route(web::get().to(scans::list)),
        )
        .service(
            resource("/subscriptions/{subscriptionId}/providers/Microsoft.Security/scans/{scanId}")
                .route(web::get().to(scans::get)),
        )
        .service(
            resource("/subscriptions/{subscriptionId}/providers/Microsoft.Security/usage")
                .route(web::get().to(usage::list)),
        )
        .service(
            resource(REGISTRY)
                .route(web::put().to(registries::put))
                .route(web::get().to(registries::get))
                .route(web::delete().to(registries::delete)),
        )
        .service(
            resource("/providers/Microsoft.Security/advisories:import")
                .app_data(web::PayloadConfig::new(advisories::MAX_IMPORT_BYTES))
                .route(web::post().to(advisories::import)),
        )
        .service(resource("/providers/Microsoft.Security/advisories:status").route(web::get().to(advisories::status)))
        .service(resource("/providers/Microsoft.Security/advisories/{id}").route(web::get().to(advisories::get)))
        .service(
            resource("/subscriptions/{subscriptionId}/providers/Microsoft.Security/clusters/{cluster}/runningImages")
                .app_data(web::PayloadConfig::new(running_images::MAX_REPORT))
                .route(web::put().to(running_images::report)),
        )
        .service(resource(&format!("{SCOPE}/images")).route(web::get().to(images::list)))
        .service(resource(&format!("{SCOPE}/images/{{digest}}")).route(web::get().to(images::get)))
        .service(resource(&format!("{SCOPE}/vulnerabilitySummary")).route(web::get().to(assessments::summary)))
        .service(resource(&format!("{SCOPE}/assessments")).route(web::get().to(assessments::list)))
        .service(resource(&format!("{SCOPE}/assessments/{{assessmentName}}")).route(web::get().to(assessments::get)))
        .service(resource(&format!("{SCOPE}/subAssessments")).route(web::get().to(sub_assessments::list_all)))
        .service(
            resource(&format!("{SCOPE}/assessments/{{assessmentName}}/subAssessments"))
                .route(web::get().to(sub_assessments::list)),
        )
        .service(
            resource(&format!("{SCOPE}/assessments/{{assessmentName}}/subAssessments/{{subAssessmentName}}"))
                .route(web::get().to(sub_assessments::get)),
        );
}

/// Unknown routes: a CloudError, never actix's empty 404.
pub async fn not_found(req: HttpRequest) -> Result<HttpResponse, ApiError> {
    let path: String = req.path().chars().take(200).collect();
    Err(ApiError::not_found(
        "NotFound",
        format!("No route matches '{} {path}'.", req.method()),
    ))
}

fn json_error(e: error::JsonPayloadError, _req: &HttpRequest) -> actix_web::Error {
    let api = match &e {
        error::JsonPayloadError::Overflow { .. }
        | error::JsonPayloadError::OverflowKnownLength { .. } => ApiError::PayloadTooLarge(
            format!("The request body is larger than {MAX_JSON_BODY} bytes."),
        ),
        error::JsonPayloadError::ContentType => ApiError::UnsupportedMediaType(
            "The request body must be JSON (Content-Type: application/json).".to_owned(),
        ),
        error::JsonPayloadError::Deserialize(inner) => ApiError::BadRequest {
            code: "InvalidRequestContent",
            message: format!("The request body is not valid: {inner}"),
            target: None,
        },
        other => ApiError::BadRequest {
            code: "InvalidRequestContent",
            message: format!("The request body could not be read: {other}"),
            target: None,
        },
    };
    api.into()
}

fn query_error(e: error::QueryPayloadError) -> actix_web::Error {
    ApiError::bad_request(
        "InvalidQueryParameter",
        format!("The query string is not valid: {e}"),
    )
    .into()
}

fn path_error(e: error::PathError) -> actix_web::Error {
    ApiError::bad_request("InvalidResourceName", format!("The path is not valid: {e}")).into()
}

/// Last line of defence: any error response that is not already JSON (from actix itself or a
/// middleware) is rewritten as a CloudError with the same status.
pub fn cloud_error_fallback<B: MessageBody + 'static>(
    res: ServiceResponse<B>,
) -> actix_web::Result<ErrorHandlerResponse<B>> {
    let is_json = res
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if is_json || !(res.status().is_client_error() || res.status().is_server_error()) {
        return Ok(ErrorHandlerResponse::Response(res.map_into_left_body()));
    }
    let status = res.status();
    let code = match status.as_u16() {
        400 => "BadRequest",
        404 => "NotFound",
        405 => "MethodNotAllowed",
        413 => "RequestEntityTooLarge",
        414 => "RequestUriTooLong",
        415 => "UnsupportedMediaType",
        431 => "RequestHeaderFieldsTooLarge",
        s if s >= 500 => "InternalServerError",
        _ => "BadRequest",
    };
    let message = status
        .canonical_reason()
        .unwrap_or("Request failed")
        .to_owned();
    let body = serde_json::to_string(&CloudError {
        error: CloudErrorBody {
            code: code.to_owned(),
            message,
            target: None,
        },
    })
    .unwrap_or_default();
    let (req, old) = res.into_parts();
    let mut new = HttpResponse::with_body(status, BoxBody::new(body));
    for (name, value) in old.headers() {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            new.headers_mut().append(name.clone(), value.clone());
        }
    }
    new.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Ok(ErrorHandlerResponse::Response(
        ServiceResponse::new(req, new).map_into_right_body(),
    ))
}
