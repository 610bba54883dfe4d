//! `api-version` checks: every route names the one version it serves.

use serde::Deserialize;
use utoipa::IntoParams;

use crate::error::ApiError;

/// The query of routes that take nothing but the version.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ApiVersionQuery {
    /// The API version.
    #[serde(rename = "api-version")]
    #[param(rename = "api-version")]
    pub api_version: Option<String>,
}

/// The Azure Assessments API (the registry-level assessment).
pub const ASSESSMENTS: &str = "2021-06-01";

/// The Azure Sub-Assessments API.
pub const SUB_ASSESSMENTS: &str = "2019-01-01-preview";
/// The Defender plans (`Microsoft.Security/pricings`), as azure-mgmt-security 7.0.0 sends it.
pub const PRICINGS: &str = "2024-01-01";

/// Crowsnest's own resources.
pub const CROWSNEST: &str = "2026-11-01";

/// Azure Resource Graph: the official Python SDK (azure-mgmt-resourcegraph 8.0.1) sends
/// 2021-03-01; the REST reference's examples use 2022-10-01 too. Both have the same request and
/// response.
pub const RESOURCE_GRAPH: &[&str] = &["2021-03-01", "2022-10-01"];

pub fn require(given: Option<&str>, supported: &'static str) -> Result<(), ApiError> {
    require_one_of(given, std::slice::from_ref(&supported))
}

/// For routes that serve several versions of one shape.
pub fn require_one_of(given: Option<&str>, supported: &[&'static str]) -> Result<(), ApiError> {
    let listed = supported.join("' or '");
    match given {
        None => Err(ApiError::BadRequest {
            code: "MissingApiVersionParameter",
            message: format!(
                "The api-version query parameter (?api-version=) is required for all requests. Use api-version={}.",
                supported.join(" or api-version=")
            ),
            target: Some("api-version".to_owned()),
        }),
        Some(v) if supported.contains(&v) => Ok(()),
        Some(v) => Err(ApiError::BadRequest {
            code: "InvalidApiVersionParameter",
            message: format!(
                "The api-version '{}' is invalid for this route. The supported version is '{listed}'.",
                v.chars().take(40).collect::<String>()
            ),
            target: Some("api-version".to_owned()),
        }),
    }
}
