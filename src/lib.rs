//! Crowsnest: vulnerability assessment for container registries behind an Azure-compatible API.

pub mod api;
pub mod config;
pub mod domain;
pub mod error;
pub mod jobs;
pub mod scanner;
pub mod startup;
pub mod store;
pub mod telemetry;
