//! The one error type handlers return, and the one envelope clients see: ARM's CloudError.

use actix_web::http::header::{self, HeaderValue};
use actix_web::http::{ConnectionType, StatusCode};
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;
use utoipa::ToSchema;

use crate::domain::kql::KqlError;
use crate::store::StoreError;

/// ARM's error envelope: `{"error": {"code", "message", "target"?}}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct CloudError {
    pub error: CloudErrorBody,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CloudErrorBody {
    /// A machine-readable code such as `InvalidApiVersionParameter` or `ResourceNotFound`.
    pub code: String,
    /// What went wrong and, where it helps, how to fix it.
    pub message: String,
    /// The parameter or field the error is about.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// What exactly was wrong, where (Resource Graph: the query's line, position and token).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub details: Vec<ErrorDetail>,
}

/// One detail of an error: Resource Graph's `ErrorDetails`, whose extra properties say where in the
/// query the fault is.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ErrorDetail {
    /// `InvalidQuery` or `ParserFailure`.
    pub code: String,
    pub message: String,
    /// 1-based line of the offending token.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<usize>,
    /// 1-based character position of the offending token within its line.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub character_position_in_line: Option<usize>,
    /// The offending token as written (empty at the end of the query).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 400: the request is wrong; `code` names how.
    #[error("{message}")]
    BadRequest {
        code: &'static str,
        message: String,
        target: Option<String>,
    },
    /// 400: a Resource Graph query that does not parse or cannot run, as Resource Graph says it
    /// (code `BadRequest`, the fault in `details`).
    #[error("{}", .0.message)]
    InvalidQuery(KqlError),
    /// 401: no usable credentials.
    #[error("{0}")]
    Unauthenticated(String),
    /// 403: authenticated, but not allowed here.
    #[error("{0}")]
    Forbidden(String),
    #[error("{message}")]
    NotFound { code: &'static str, message: String },
    /// 405; `allow` lists the methods the resource takes (the `Allow` header).
    #[error("{message}")]
    MethodNotAllowed { message: String, allow: String },
    /// 408: the request body did not arrive in time; the connection is closed.
    #[error("{0}")]
    RequestTimeout(String),
    #[error("{message}")]
    Conflict { code: &'static str, message: String },
    #[error("{0}")]
    PayloadTooLarge(String),
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// 422: the request is well-formed but contradicts an earlier one (`target` names what).
    #[error("{message}")]
    Unprocessable {
        code: &'static str,
        message: String,
        target: Option<String>,
    },
    /// 503: a dependency (the database) cannot be reached now; retrying later may work.
    #[error("{0}")]
    Unavailable(String),
    /// 500: a bug or an unexpected failure; the details are logged, never sent.
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl ApiError {
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::BadRequest {
            code,
            message: message.into(),
            target: None,
        }
    }

    pub fn invalid_parameter(target: &str, message: impl Into<String>) -> Self {
        Self::BadRequest {
            code: "InvalidParameter",
            message: message.into(),
            target: Some(target.to_owned()),
        }
    }

    pub fn not_found(code: &'static str, message: impl Into<String>) -> Self {
        Self::NotFound {
            code,
            message: message.into(),
        }
    }

    fn code(&self) -> &str {
        match self {
            Self::BadRequest { code, .. }
            | Self::NotFound { code, .. }
            | Self::Conflict { code, .. }
            | Self::Unprocessable { code, .. } => code,
            Self::InvalidQuery(_) => "BadRequest",
            Self::Unauthenticated(_) => "AuthenticationFailed",
            Self::Forbidden(_) => "AuthorizationFailed",
            Self::MethodNotAllowed { .. } => "MethodNotAllowed",
            Self::RequestTimeout(_) => "RequestTimeout",
            Self::PayloadTooLarge(_) => "RequestEntityTooLarge",
            Self::UnsupportedMediaType(_) => "UnsupportedMediaType",
            Self::Unavailable(_) => "ServiceUnavailable",
            Self::Internal(_) => "InternalServerError",
        }
    }
}

/// A resource name in the path or body that does not parse.
impl From<crate::domain::NameError> for ApiError {
    fn from(e: crate::domain::NameError) -> Self {
        Self::bad_request("InvalidResourceName", e.to_string())
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Unavailable(_) | StoreError::Connect { .. } => {
                tracing::error!(error = %e, "database unavailable");
                Self::Unavailable("The database is unavailable; retry later.".to_owned())
            }
            // A write that clashed with a concurrent one (transactions aborted for a deadlock or
            // a serialization failure were already run again, see `store::transaction`).
            e if e.is_conflict() => Self::Conflict {
                code: "Conflict",
                message: "A concurrent request changed this resource; read it again and retry."
                    .to_owned(),
            },
            other => Self::Internal(anyhow::Error::new(other)),
        }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::BadRequest { .. } | Self::InvalidQuery(_) => StatusCode::BAD_REQUEST,
            Self::Unauthenticated(_) => StatusCode::UNAUTHORIZED,
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::NotFound { .. } => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            Self::RequestTimeout(_) => StatusCode::REQUEST_TIMEOUT,
            Self::Conflict { .. } => StatusCode::CONFLICT,
            Self::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::Unprocessable { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            Self::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let message = match self {
            Self::Internal(cause) => {
                let incident = uuid::Uuid::new_v4();
                tracing::error!(%incident, error = ?cause, "internal error");
                format!(
                    "An internal error occurred (incident {incident}); the details are in the service log."
                )
            }
            other => other.to_string(),
        };
        let target = match self {
            Self::BadRequest { target, .. } | Self::Unprocessable { target, .. } => target.clone(),
            _ => None,
        };
        let details = match self {
            Self::InvalidQuery(e) => vec![ErrorDetail {
                code: e.code.to_owned(),
                message: e.message.clone(),
                line: Some(e.line),
                character_position_in_line: Some(e.position),
                token: Some(e.token.clone()),
            }],
            _ => Vec::new(),
        };
        let body = CloudError {
            error: CloudErrorBody {
                code: self.code().to_owned(),
                message,
                target,
                details,
            },
        };
        let mut response = HttpResponse::build(self.status_code()).json(body);
        match self {
            Self::Unauthenticated(reason) => {
                let challenge = format!(
                    "Bearer realm=\"crowsnest\", error=\"invalid_token\", error_description=\"{}\"",
                    reason.replace(['"', '\\'], "'")
                );
                let value = HeaderValue::from_str(&challenge)
                    .unwrap_or_else(|_| HeaderValue::from_static("Bearer realm=\"crowsnest\""));
                response
                    .headers_mut()
                    .insert(header::WWW_AUTHENTICATE, value);
            }
            Self::MethodNotAllowed { allow, .. } => {
                if let Ok(value) = HeaderValue::from_str(allow) {
                    response.headers_mut().insert(header::ALLOW, value);
                }
            }
            // The rest of the body was never read, so the connection cannot carry another request.
            Self::RequestTimeout(_) => response
                .head_mut()
                .set_connection_type(ConnectionType::Close),
            _ => {}
        }
        response
    }
}
