//! Pure types: parsed once at the edge, trusted everywhere after.

mod advisory_source;
mod assessment;
mod credentials;
mod digest;
mod exemption;
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
mod vex;

pub use advisory_source::{Feed, SourceName, SourceNameError};
pub use assessment::{
    AssessmentKey, CONTAINER_REGISTRY_ASSESSMENT_KEY, MDVM_ASSESSMENT_KEY, azure_os_version,
    cve_ids, mdvm_sub_assessment_name, mdvm_vulnerabilities, mdvm_vulnerability_count,
    package_language,
};
pub use credentials::RegistryCredentials;
pub use digest::Digest;
pub use exemption::{
    CompareVersions, Criteria, CriteriaError, ExemptionCategory, ExemptionScope,
    ExemptionScopeError, ExemptionState, FindingFacts, FindingPlace, FixStatus, PackageCriterion,
};
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
pub use vex::{
    JUSTIFICATIONS, OPENVEX_CONTEXT, VexClaim, VexDocument, VexError, VexPackage, VexProduct,
    VexStatus,
};
