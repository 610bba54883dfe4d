//! `crowsnest scan --format json`: the CLI's JSON contract, camelCase like the API.
//!
//! These types exist apart from the scanner's own (whose serde form is what the database stores,
//! e.g. an inventory's OS release) so that neither format can change the other.

use chrono::{DateTime, Utc};
use serde::Serialize;

use crowsnest::domain::EcosystemCoverage;
use crowsnest::jobs::coverage::Coverage;
use crowsnest::jobs::engine::{ScanResult, ScannedImage, SkippedImage};
use crowsnest::scanner::advisories::ecosystem::OsRelease;
use crowsnest::scanner::advisories::matcher::{
    InventoryPackage, Link, Match, PackageKind, Unknown, UnreadablePath,
};

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ScanOutput<'a> {
    pub reference: &'a str,
    /// The index's digest, when the reference named an index (one image per platform).
    pub index_digest: Option<String>,
    pub images: Vec<ImageOutput<'a>>,
    pub skipped: Vec<SkippedOutput<'a>>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageOutput<'a> {
    pub digest: String,
    pub platform: &'a str,
    pub os: Option<OsOutput<'a>>,
    pub inventory_reused: bool,
    pub seconds: f64,
    pub packages: Vec<PackageOutput<'a>>,
    pub findings: Vec<FindingOutput<'a>>,
    pub unknown: Vec<UnknownOutput<'a>>,
    pub unsupported_os: Option<&'a str>,
    /// Per ecosystem of its packages, the advisory data it was matched against and as of when.
    pub coverage: &'a [EcosystemCoverage],
    /// Executables and archives an analyzer wanted but could not read, with a code and reason.
    pub unreadable: &'a [UnreadablePath],
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OsOutput<'a> {
    pub id: &'a str,
    pub version_id: Option<&'a str>,
    pub id_like: &'a [String],
    pub pretty_name: Option<&'a str>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PackageOutput<'a> {
    pub kind: PackageKind,
    pub name: &'a str,
    pub version: &'a str,
    pub source_name: Option<&'a str>,
    pub source_version: Option<&'a str>,
    pub layer_digest: Option<&'a str>,
    pub file_path: Option<&'a str>,
    /// The OS package that installed this language package's files: assessed as part of it.
    pub owner: Option<&'a str>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FindingOutput<'a> {
    pub advisory_id: &'a str,
    pub package_name: &'a str,
    pub installed_version: &'a str,
    pub source_name: Option<&'a str>,
    pub compared_version: &'a str,
    pub fixed_version: Option<&'a str>,
    pub ecosystem: &'a str,
    pub category: &'a str,
    pub severity: &'static str,
    pub severity_source: &'a str,
    pub cvss_v2: Option<f64>,
    pub cvss_v3: Option<f64>,
    pub cvss_v4: Option<f64>,
    pub display_name: &'a str,
    pub description: &'a str,
    pub remediation: &'a str,
    pub impact: &'a str,
    pub cves: &'a [Link],
    pub vendor_references: &'a [Link],
    pub published: Option<DateTime<Utc>>,
    pub patchable: bool,
    pub layer_digest: Option<&'a str>,
    pub file_path: Option<&'a str>,
    /// The exemption that exempts it (with `--registry-id`): it does not count toward --fail-on.
    pub exempt_by: Option<&'a str>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UnknownOutput<'a> {
    pub package: &'a str,
    pub version: &'a str,
    pub advisory_id: Option<&'a str>,
    pub reason: &'a str,
}

#[derive(Serialize)]
pub struct SkippedOutput<'a> {
    pub platform: &'a str,
    pub reason: &'a str,
}

impl<'a> ScanOutput<'a> {
    /// `exempt`: per image, per match, the exemption that exempts it.
    pub fn new(
        reference: &'a str,
        result: &'a ScanResult,
        coverage: &'a [Coverage],
        exempt: &'a [Vec<Option<String>>],
    ) -> Self {
        Self {
            reference,
            index_digest: result.index_digest.as_ref().map(ToString::to_string),
            images: result
                .images
                .iter()
                .zip(coverage)
                .zip(exempt)
                .map(|((image, coverage), exempt)| {
                    ImageOutput::new(image, &coverage.ecosystems, exempt)
                })
                .collect(),
            skipped: result.skipped.iter().map(SkippedOutput::from).collect(),
        }
    }
}

impl<'a> ImageOutput<'a> {
    fn new(
        i: &'a ScannedImage,
        coverage: &'a [EcosystemCoverage],
        exempt: &'a [Option<String>],
    ) -> Self {
        Self {
            digest: i.manifest_digest.to_string(),
            platform: &i.platform,
            os: i.inventory.os.as_ref().map(OsOutput::from),
            inventory_reused: i.reused,
            seconds: i.seconds,
            packages: i
                .inventory
                .packages
                .iter()
                .map(PackageOutput::from)
                .collect(),
            findings: i
                .report
                .matches
                .iter()
                .zip(
                    exempt
                        .iter()
                        .map(Option::as_deref)
                        .chain(std::iter::repeat(None)),
                )
                .map(|(m, exempt_by)| FindingOutput {
                    exempt_by,
                    ..FindingOutput::from(m)
                })
                .collect(),
            unknown: i.report.unknown.iter().map(UnknownOutput::from).collect(),
            unsupported_os: i.report.unsupported_os.as_deref(),
            coverage,
            unreadable: &i.inventory.unreadable,
        }
    }
}

impl<'a> From<&'a OsRelease> for OsOutput<'a> {
    fn from(o: &'a OsRelease) -> Self {
        Self {
            id: &o.id,
            version_id: o.version_id.as_deref(),
            id_like: &o.id_like,
            pretty_name: o.pretty_name.as_deref(),
        }
    }
}

impl<'a> From<&'a InventoryPackage> for PackageOutput<'a> {
    fn from(p: &'a InventoryPackage) -> Self {
        Self {
            kind: p.kind,
            name: &p.name,
            version: &p.version,
            source_name: p.source_name.as_deref(),
            source_version: p.source_version.as_deref(),
            layer_digest: p.layer_digest.as_deref(),
            file_path: p.file_path.as_deref(),
            owner: p.owner.as_deref(),
        }
    }
}

impl<'a> From<&'a Match> for FindingOutput<'a> {
    fn from(m: &'a Match) -> Self {
        Self {
            advisory_id: &m.advisory_id,
            package_name: &m.package_name,
            installed_version: &m.installed_version,
            source_name: m.source_name.as_deref(),
            compared_version: &m.compared_version,
            fixed_version: m.fixed_version.as_deref(),
            ecosystem: &m.ecosystem,
            category: &m.category,
            severity: m.severity.as_str(),
            severity_source: &m.severity_source,
            cvss_v2: m.cvss_v2,
            cvss_v3: m.cvss_v3,
            cvss_v4: m.cvss_v4,
            display_name: &m.display_name,
            description: &m.description,
            remediation: &m.remediation,
            impact: &m.impact,
            cves: &m.cves,
            vendor_references: &m.vendor_references,
            published: m.published,
            patchable: m.patchable,
            layer_digest: m.layer_digest.as_deref(),
            file_path: m.file_path.as_deref(),
            exempt_by: None,
        }
    }
}

impl<'a> From<&'a Unknown> for UnknownOutput<'a> {
    fn from(u: &'a Unknown) -> Self {
        Self {
            package: &u.package,
            version: &u.version,
            advisory_id: u.advisory_id.as_deref(),
            reason: &u.reason,
        }
    }
}

impl<'a> From<&'a SkippedImage> for SkippedOutput<'a> {
    fn from(s: &'a SkippedImage) -> Self {
        Self {
            platform: &s.platform,
            reason: &s.reason,
        }
    }
}
