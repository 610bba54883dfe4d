//! Pure types: parsed once at the edge, trusted everywhere after.

mod advisory_source;
mod credentials;
mod digest;
mod finding;
pub mod kql;
mod names;
pub mod odata;
pub mod pattern;
mod pricing;
mod role;
mod scan;
mod scope;
mod severity;
pub mod text;
mod time;

pub use advisory_source::{Feed, SourceName, SourceNameError};
pub use credentials::RegistryCredentials;
pub use digest::Digest;
pub use finding::finding_name;
pub use names::{
    LoginServer, NameError, RegistryName, RepositoryName, ResourceGroupName, SubscriptionId,
};
pub use pricing::{PricingPlan, PricingTier, parse_name_filter};
pub use role::Role;
pub use scan::{
    AdvisoryData, EcosystemCoverage, HealthCode, ImageSummary, ScanStatus, ScanTrigger,
    SeverityCounts, Summary, health_cause, verdict,
};
pub use scope::{RegistryId, Scope};
pub use severity::{Severity, severity_serde};
pub use time::Timestamp;

/// The key of the "Container registry images should have vulnerability findings resolved" assessment.
pub const CONTAINER_REGISTRY_ASSESSMENT_KEY: &str = "dbd0cb49-b563-45e7-9724-889e799fa648";
