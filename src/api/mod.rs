//! HTTP only: one module per resource, the auth extractor, and the wiring of routes and error bodies.

pub mod advisories;
pub mod advisory_sources;
pub mod api_version;
pub mod assessments;
pub mod auth;
pub mod body_deadline;
pub mod contract;
pub mod exemptions;
pub mod images;
pub mod input;
pub mod odata;
pub mod operations;
pub mod paging;
pub mod pricings;
pub mod registries;
pub mod registry_events;
pub mod resource_graph;
pub mod running_images;
pub mod scans;
pub mod sub_assessments;
pub mod usage;
pub mod vex;
pub mod webhook;

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{AppService, HttpServiceFactory, ServiceResponse};
use actix_web::http::Method;
use actix_web::http::header::{self, HeaderValue};
use actix_web::middleware::{ErrorHandlerResponse, from_fn};
use actix_web::{FromRequest, Handler, HttpRequest, HttpResponse, Responder, error, web};
use utoipa::OpenApi;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};

use crate::domain::{Role, Scope};
use crate::error::{ApiError, CloudError, CloudErrorBody, ErrorDetail};
use crate::store::{Pool, findings::FindingScope};
use auth::Caller;
use contract::Contract;

/// Largest JSON body accepted.
pub const MAX_JSON_BODY: usize = 1024 * 1024;

pub struct AppState {
    pub pool: Pool,
    /// Base of every URL the service hands out.
    pub public_url: url::Url,
    /// Where submissions and registry notifications queue scans.
    pub queue: crate::jobs::queue::Queue,
    /// What one cluster report of running images may hold and start.
    pub report_limits: crate::jobs::running_images::ReportLimits,
    /// Syncs advisory sources on request, as this process.
    pub advisory_sync: crate::jobs::advisory_sync::Syncer,
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
        pricings::list,
        pricings::get,
        pricings::put,
        exemptions::put,
        exemptions::get,
        exemptions::delete,
        exemptions::list,
        exemptions::history,
        vex::import,
        vex::list,
        images::list,
        images::get,
        assessments::list,
        assessments::get,
        assessments::summary,
        running_images::report,
        advisories::import,
        advisories::get,
        advisories::status,
        advisory_sources::list,
        advisory_sources::sync,
        resource_graph::resources,
        operations::healthz,
        operations::readyz,
    ),
    components(schemas(CloudError, CloudErrorBody, ErrorDetail)),
    modifiers(&BearerAuth, &Contract),
    tags(
        (name = "SubAssessments", description = "Findings, as Azure's Sub-Assessments API (api-version 2019-01-01-preview), under the container registry key (dbd0cb49-…) and the MDVM key (c0b7cfc6-…)"),
        (name = "Registries", description = "Connected registries (api-version 2026-11-01)"),
        (name = "Images", description = "Per-image health, running images and the vulnerability summary (api-version 2026-11-01)"),
        (name = "Assessments", description = "The registry-level assessments (container registry and MDVM keys), as Azure's Assessments API (api-version 2021-06-01)"),
        (name = "Scans", description = "Scan submissions, their progress, and usage (api-version 2026-11-01)"),
        (name = "Pricings", description = "The Defender plan per subscription, as Azure's Pricings API (api-version 2024-01-01)"),
        (name = "Exemptions", description = "Findings declared not to apply, at a scope, until an expiry, with their history (api-version 2026-11-01)"),
        (name = "Advisories", description = "The OSV advisory database (api-version 2026-11-01)"),
        (name = "ResourceGraph", description = "Queries of findings, assessments and registries, as Azure Resource Graph (api-version 2021-03-01 or 2022-10-01)"),
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

/// One path of the route table: its handlers by method, every other method answered 405 with
/// the `Allow` header, and strings the database cannot store refused before any handler runs.
struct Resource {
    inner: actix_web::Resource,
    methods: Vec<Method>,
}

fn resource(path: &str) -> Resource {
    Resource {
        inner: web::resource(path),
        methods: Vec::new(),
    }
}

impl Resource {
    fn route<F, Args>(mut self, method: Method, handler: F) -> Self
    where
        F: Handler<Args>,
        Args: FromRequest + 'static,
        F::Output: Responder + 'static,
    {
        self.inner = self.inner.route(web::method(method.clone()).to(handler));
        self.methods.push(method);
        self
    }

    fn app_data<U: 'static>(mut self, data: U) -> Self {
        self.inner = self.inner.app_data(data);
        self
    }
}

impl HttpServiceFactory for Resource {
    fn register(self, config: &mut AppService) {
        let allow = self
            .methods
            .iter()
            .map(Method::as_str)
            .collect::<Vec<_>>()
            .join(", ");
        self.inner
            .default_service(web::to(move |req: HttpRequest| {
                let allow = allow.clone();
                async move {
                    Err::<HttpResponse, _>(ApiError::MethodNotAllowed {
                        message: format!(
                            "The method {} is not supported on this resource; it takes {allow}.",
                            req.method()
                        ),
                        allow,
                    })
                }
            }))
            .wrap(from_fn(input::refuse_unstorable_uri))
            .register(config);
    }
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    const SCOPE: &str = "/{scope:.+}/providers/Microsoft.Security";
    const REGISTRY: &str = "/subscriptions/{subscriptionId}/resourceGroups/{resourceGroupName}/providers/Microsoft.ContainerRegistry/registries/{registryName}";
    cfg.app_data(web::JsonConfig::default().limit(MAX_JSON_BODY).error_handler(json_error))
        .app_data(web::QueryConfig::default().error_handler(|e, _| query_error(e)))
        .app_data(web::PathConfig::default().error_handler(|e, _| path_error(e)))
        .service(resource("/healthz").route(Method::GET, operations::healthz))
        .service(resource("/readyz").route(Method::GET, operations::readyz))
        .service(
            resource("/subscriptions/{subscriptionId}/providers/Microsoft.ContainerRegistry/registries")
                .route(Method::GET, registries::list),
        )
        .service(
            resource("/subscriptions/{subscriptionId}/resourceGroups/{resourceGroupName}/providers/Microsoft.ContainerRegistry/registries")
                .route(Method::GET, registries::list_by_resource_group),
        )
        .service(
            resource(&format!("{REGISTRY}/providers/Microsoft.Security/registryEvents"))
                .app_data(web::PayloadConfig::new(registry_events::MAX_ENVELOPE))
                .route(Method::POST, registry_events::notify),
        )
        .service(
            resource("/subscriptions/{subscriptionId}/providers/Microsoft.Security/scans")
                .route(Method::POST, scans::submit)
                .route(Method::GET, scans::list),
        )
        .service(
            resource("/subscriptions/{subscriptionId}/providers/Microsoft.Security/scans/{scanId}")
                .route(Method::GET, scans::get),
        )
        .service(
            resource("/subscriptions/{subscriptionId}/providers/Microsoft.Security/usage")
                .route(Method::GET, usage::list),
        )
        .service(
            resource(REGISTRY)
                .route(Method::PUT, registries::put)
                .route(Method::GET, registries::get)
                .route(Method::DELETE, registries::delete),
        )
        .service(
            resource("/providers/Microsoft.Security/advisories:import")
                .app_data(web::PayloadConfig::new(advisories::MAX_IMPORT_BYTES))
                .route(Method::POST, advisories::import),
        )
        .service(resource("/providers/Microsoft.Security/advisories:status").route(Method::GET, advisories::status))
        .service(resource("/providers/Microsoft.Security/advisorySources").route(Method::GET, advisory_sources::list))
        .service(
            resource("/providers/Microsoft.Security/advisorySources/{name}:sync")
                .route(Method::POST, advisory_sources::sync),
        )
        .service(
            resource("/providers/Microsoft.ResourceGraph/resources")
                .route(Method::POST, resource_graph::resources),
        )
        .service(resource("/providers/Microsoft.Security/advisories/{id}").route(Method::GET, advisories::get))
        .service(
            resource("/subscriptions/{subscriptionId}/providers/Microsoft.Security/clusters/{cluster}/runningImages")
                .app_data(web::PayloadConfig::new(running_images::MAX_REPORT))
                .route(Method::PUT, running_images::report),
        )
        .service(resource(&format!("{SCOPE}/pricings")).route(Method::GET, pricings::list))
        .service(
            resource(&format!("{SCOPE}/pricings/{{pricingName}}"))
                .route(Method::GET, pricings::get)
                .route(Method::PUT, pricings::put),
        )
        .service(resource(&format!("{SCOPE}/exemptions")).route(Method::GET, exemptions::list))
        .service(
            resource(&format!("{SCOPE}/vex"))
                .route(Method::POST, vex::import)
                .route(Method::GET, vex::list),
        )
        .service(
            resource(&format!("{SCOPE}/exemptions/{{exemptionName}}"))
                .route(Method::GET, exemptions::get)
                .route(Method::PUT, exemptions::put)
                .route(Method::DELETE, exemptions::delete),
        )
        .service(
            resource(&format!("{SCOPE}/exemptions/{{exemptionName}}/history"))
                .route(Method::GET, exemptions::history),
        )
        .service(resource(&format!("{SCOPE}/images")).route(Method::GET, images::list))
        .service(resource(&format!("{SCOPE}/images/{{digest}}")).route(Method::GET, images::get))
        .service(resource(&format!("{SCOPE}/vulnerabilitySummary")).route(Method::GET, assessments::summary))
        .service(resource(&format!("{SCOPE}/assessments")).route(Method::GET, assessments::list))
        .service(resource(&format!("{SCOPE}/assessments/{{assessmentName}}")).route(Method::GET, assessments::get))
        .service(resource(&format!("{SCOPE}/subAssessments")).route(Method::GET, sub_assessments::list_all))
        .service(
            resource(&format!("{SCOPE}/assessments/{{assessmentName}}/subAssessments"))
                .route(Method::GET, sub_assessments::list),
        )
        .service(
            resource(&format!("{SCOPE}/assessments/{{assessmentName}}/subAssessments/{{subAssessmentName}}"))
                .route(Method::GET, sub_assessments::get),
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
        408 => "RequestTimeout",
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
            details: Vec::new(),
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
