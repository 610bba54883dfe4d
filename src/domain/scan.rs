use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::Severity;

/// Why a scan was queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
pub enum ScanTrigger {
    /// Submitted through the scans API.
    Api,
    /// The registry notified a push.
    Push,
    /// The daily re-assessment of pulled, pushed and running images.
    Rescan,
    /// An advisory import changed advisories for a package the image holds.
    AdvisoryUpdate,
    /// A cluster reported the image running and it had never been scanned.
    Runtime,
}

impl ScanTrigger {
    pub const ALL: [Self; 5] = [
        Self::Api,
        Self::Push,
        Self::Rescan,
        Self::AdvisoryUpdate,
        Self::Runtime,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Api => "Api",
            Self::Push => "Push",
            Self::Rescan => "Rescan",
            Self::AdvisoryUpdate => "AdvisoryUpdate",
            Self::Runtime => "Runtime",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == s)
    }

    /// The claim order: interactive scans (0: someone waits for them) before background ones (1).
    pub fn priority(self) -> i32 {
        match self {
            Self::Api | Self::Push => 0,
            Self::Runtime | Self::Rescan | Self::AdvisoryUpdate => 1,
        }
    }

    /// Re-assessments match the stored inventory again; the others read the image from the
    /// registry (unless its inventory is already stored) and are billed on first success.
    pub fn is_reassessment(self) -> bool {
        matches!(self, Self::Rescan | Self::AdvisoryUpdate)
    }
}

/// Where a scan is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
pub enum ScanStatus {
    Queued,
    Running,
    Succeeded,
    Failed,
}

impl ScanStatus {
    pub const ALL: [Self; 4] = [Self::Queued, Self::Running, Self::Succeeded, Self::Failed];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "Queued",
            Self::Running => "Running",
            Self::Succeeded => "Succeeded",
            Self::Failed => "Failed",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == s)
    }

    pub fn is_pending(self) -> bool {
        matches!(self, Self::Queued | Self::Running)
    }
}

// Unhealthy with findings, Healthy without, NotApplicable when it cannot be told (not scanned
// yet, the scan failed, or the OS has no advisory data). The doc line below is the published
// schema's description, kept as it is so the OpenAPI document does not change with the code's layout.
/// An image's health (DESIGN §1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub enum HealthCode {
    Healthy,
    Unhealthy,
    NotApplicable,
}

impl HealthCode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Healthy => "Healthy",
            Self::Unhealthy => "Unhealthy",
            Self::NotApplicable => "NotApplicable",
        }
    }
}

/// Why an image is NotApplicable.
pub mod health_cause {
    pub const NOT_SCANNED: &str = "NotScanned";
    pub const SCAN_FAILED: &str = "ScanFailed";
    pub const UNSUPPORTED_OS: &str = "UnsupportedOs";
    /// Some ecosystem of the image's packages has no advisory data loaded at all.
    pub const NO_ADVISORY_DATA: &str = "NoAdvisoryData";
    /// Executables or archives of the image could not be read: what they hold was not assessed.
    pub const UNREADABLE_CONTENT: &str = "UnreadableContent";
    /// Some ecosystem's advisory data is older than the maximum age.
    pub const ADVISORIES_STALE: &str = "AdvisoriesStale";
    /// The subscription's Defender plan is Free: the image was recorded but not scanned.
    pub const PLAN_DISABLED: &str = "PlanDisabled";
}

/// Whether advisory data for an ecosystem was loaded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum AdvisoryData {
    Loaded,
    None,
}

/// One ecosystem of an image's packages and the advisory data its verdict rests on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EcosystemCoverage {
    /// As records name it: `Debian:12`, `Ubuntu:22.04:LTS`, `PyPI`.
    pub ecosystem: String,
    /// The image's packages in it.
    pub packages: usize,
    /// `loaded` or `none` (the packages were not assessed).
    pub advisories: AdvisoryData,
    /// When its data was last loaded (a sync or an import), RFC 3339.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub synced_at: Option<String>,
    /// The data is older than the service's maximum age (`CROWSNEST_ADVISORY_MAX_AGE`).
    pub stale: bool,
}

/// An assessed image's health: findings make it Unhealthy whatever else; without findings it is
/// Healthy only when every ecosystem of its packages had loaded, fresh advisory data and every
/// executable and archive an analyzer wanted could be read.
pub fn verdict(
    findings: usize,
    unsupported_os: bool,
    coverage: &[EcosystemCoverage],
    unreadable_files: usize,
) -> (HealthCode, Option<&'static str>) {
    if findings > 0 {
        (HealthCode::Unhealthy, None)
    } else if unsupported_os {
        (
            HealthCode::NotApplicable,
            Some(health_cause::UNSUPPORTED_OS),
        )
    } else if coverage.iter().any(|c| c.advisories == AdvisoryData::None) {
        (
            HealthCode::NotApplicable,
            Some(health_cause::NO_ADVISORY_DATA),
        )
    } else if unreadable_files > 0 {
        (
            HealthCode::NotApplicable,
            Some(health_cause::UNREADABLE_CONTENT),
        )
    } else if coverage.iter().any(|c| c.stale) {
        (
            HealthCode::NotApplicable,
            Some(health_cause::ADVISORIES_STALE),
        )
    } else {
        (HealthCode::Healthy, None)
    }
}

/// What a finished scan found, as the scans API shows it.
#[derive(Debug, Clone, Default, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Summary {
    /// The first image's OS (`debian 12`), when known.
    pub os: Option<String>,
    pub package_count: usize,
    pub findings: SeverityCounts,
    pub patchable: usize,
    pub images: Vec<ImageSummary>,
    /// Index children that were not scanned, with the reason.
    pub skipped: Vec<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
pub struct SeverityCounts {
    #[serde(rename = "Critical")]
    pub critical: usize,
    #[serde(rename = "High")]
    pub high: usize,
    #[serde(rename = "Medium")]
    pub medium: usize,
    #[serde(rename = "Low")]
    pub low: usize,
}

impl Summary {
    /// Adds one scanned image: its line, its findings' severities and how many are patchable.
    pub fn add_image(
        &mut self,
        image: ImageSummary,
        severities: impl IntoIterator<Item = Severity>,
        patchable: usize,
    ) {
        for severity in severities {
            self.findings.add(severity);
        }
        self.patchable += patchable;
        self.package_count += image.package_count;
        if self.os.is_none() {
            self.os.clone_from(&image.os);
        }
        self.images.push(image);
    }
}

impl SeverityCounts {
    pub fn add(&mut self, severity: Severity) {
        match severity {
            Severity::Critical => self.critical += 1,
            Severity::High => self.high += 1,
            Severity::Medium => self.medium += 1,
            Severity::Low => self.low += 1,
        }
    }
}

#[derive(Debug, Clone, Default, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ImageSummary {
    pub digest: String,
    pub platform: String,
    pub os: Option<String>,
    pub package_count: usize,
    pub findings: usize,
    /// The inventory was already stored: no layer was pulled.
    pub reused_inventory: bool,
    /// Set when the image's OS has no advisory ecosystem.
    pub unsupported_os: Option<String>,
    /// Per ecosystem of its packages, the advisory data it was assessed against.
    pub coverage: Vec<EcosystemCoverage>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for t in ScanTrigger::ALL {
            assert_eq!(ScanTrigger::parse(t.as_str()), Some(t));
        }
        for s in ScanStatus::ALL {
            assert_eq!(ScanStatus::parse(s.as_str()), Some(s));
        }
        assert_eq!(ScanStatus::parse("queued"), None);
        assert!(ScanTrigger::Rescan.is_reassessment());
        assert!(!ScanTrigger::Push.is_reassessment());
    }

    fn covered(ecosystem: &str, advisories: AdvisoryData, stale: bool) -> EcosystemCoverage {
        EcosystemCoverage {
            ecosystem: ecosystem.to_owned(),
            packages: 3,
            advisories,
            synced_at: None,
            stale,
        }
    }

    #[test]
    fn healthy_needs_fresh_data_for_every_ecosystem() {
        let fresh = covered("Debian:12", AdvisoryData::Loaded, false);
        let stale = covered("PyPI", AdvisoryData::Loaded, true);
        let missing = covered("npm", AdvisoryData::None, false);
        assert_eq!(
            verdict(0, false, std::slice::from_ref(&fresh), 0),
            (HealthCode::Healthy, None)
        );
        assert_eq!(
            verdict(0, false, &[fresh.clone(), stale.clone()], 0),
            (
                HealthCode::NotApplicable,
                Some(health_cause::ADVISORIES_STALE)
            )
        );
        assert_eq!(
            verdict(0, false, &[stale.clone(), missing.clone()], 0),
            (
                HealthCode::NotApplicable,
                Some(health_cause::NO_ADVISORY_DATA)
            )
        );
        assert_eq!(
            verdict(0, true, std::slice::from_ref(&missing), 0),
            (
                HealthCode::NotApplicable,
                Some(health_cause::UNSUPPORTED_OS)
            )
        );
        assert_eq!(
            verdict(0, false, &[fresh.clone(), stale.clone()], 1),
            (
                HealthCode::NotApplicable,
                Some(health_cause::UNREADABLE_CONTENT)
            )
        );
        assert_eq!(
            verdict(2, true, &[missing, stale], 3),
            (HealthCode::Unhealthy, None)
        );
        let json = serde_json::to_value(&fresh).unwrap();
        assert_eq!(json["advisories"], "loaded");
        assert_eq!(json["stale"], false);
    }
}
