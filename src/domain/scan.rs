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
}
