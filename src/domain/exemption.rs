//! Exemptions: findings a team declares do not apply to it (a waiver, or a mitigation), where the
//! declaration reaches, which findings it matches and until when.
//!
//! Decisions:
//! - Criteria combine with "and"; the values of one criterion with "or". An exemption with no
//!   criterion matches every finding in its scope (a whole image waived, for instance).
//! - `advisoryIds` match a finding's advisory id and every alias it names (its CVE ids), without
//!   regard to case: exempting `CVE-2023-1234` exempts the DSA that fixes it.
//! - A package's `ecosystem` matches the finding's ecosystem or its family (`Debian` matches
//!   `Debian:12`); its `versionRange` is comma-separated comparisons (`>=1.2, <1.4`, `=2.0.1`)
//!   in the ecosystem's own version order. A version that order cannot compare matches nothing.

use std::cmp::Ordering;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::pattern::{case_insensitive as ci, inner};
use super::{
    Digest, RegistryId, RepositoryName, ResourceGroupName, Scope, Severity, SubscriptionId,
};

/// Why findings are exempt: the risk is accepted, or it is mitigated (a VEX `not_affected` or
/// `fixed` statement is a mitigation).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub enum ExemptionCategory {
    Waiver,
    Mitigated,
}

impl ExemptionCategory {
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Waiver => "Waiver",
            Self::Mitigated => "Mitigated",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "Waiver" => Some(Self::Waiver),
            "Mitigated" => Some(Self::Mitigated),
            _ => None,
        }
    }
}

/// An exemption applies until its `expiresOn`, then shows `Expired` (it is never deleted by
/// expiry).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub enum ExemptionState {
    Active,
    Expired,
}

impl ExemptionState {
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Active => "Active",
            Self::Expired => "Expired",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "Active" => Some(Self::Active),
            "Expired" => Some(Self::Expired),
            _ => None,
        }
    }
}

/// Whether the finding's advisory names a fixed version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub enum FixStatus {
    FixAvailable,
    NoFixAvailable,
}

/// Where an exemption reaches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExemptionScope {
    Subscription(SubscriptionId),
    ResourceGroup(SubscriptionId, ResourceGroupName),
    Registry(RegistryId),
    Repository(RegistryId, RepositoryName),
    Image(RegistryId, RepositoryName, Digest),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "scope {0:?} is not supported: use a subscription, a resource group, a registry, \
     {{registryId}}/repositories/{{repository}} or {{registryId}}/repositories/{{repository}}/images/{{digest}}"
)]
pub struct ExemptionScopeError(String);

impl ExemptionScope {
    /// Parses a scope as [`Scope::parse`] does, or a registry's id followed by
    /// `/repositories/{repository}` and optionally `/images/{digest}` (repositories may hold `/`).
    pub fn parse(raw: &str) -> Result<Self, ExemptionScopeError> {
        let refused = || ExemptionScopeError(raw.chars().take(200).collect());
        let trimmed = raw.trim_start_matches('/');
        let lower = trimmed.to_ascii_lowercase();
        let Some(at) = lower.find("/repositories/") else {
            return Ok(match Scope::parse(trimmed).map_err(|_| refused())? {
                Scope::Subscription(s) => Self::Subscription(s),
                Scope::ResourceGroup(s, g) => Self::ResourceGroup(s, g),
                Scope::Registry(r) => Self::Registry(r),
            });
        };
        let Ok(Scope::Registry(registry)) = Scope::parse(&trimmed[..at]) else {
            return Err(refused());
        };
        let rest = &trimmed[at + "/repositories/".len()..];
        // `…/images/{digest}` ends an image's scope; a repository may have `images` in its name.
        let image = rest.to_ascii_lowercase().rfind("/images/").and_then(|i| {
            let digest = Digest::parse(&rest[i + "/images/".len()..]).ok()?;
            Some((&rest[..i], digest))
        });
        Ok(match image {
            Some((repository, digest)) => Self::Image(
                registry,
                RepositoryName::parse(repository).map_err(|_| refused())?,
                digest,
            ),
            None => Self::Repository(
                registry,
                RepositoryName::parse(rest).map_err(|_| refused())?,
            ),
        })
    }

    /// What [`Self::parse`] accepts.
    pub fn pattern() -> String {
        let scope = Scope::pattern();
        let registry = scope.strip_suffix(")?)?$").unwrap_or(&scope);
        format!(
            "{registry}(?:/{}/(?:{})(?:/{}/(?:{}))?)?)?)?$",
            ci("repositories"),
            inner(RepositoryName::PATTERN),
            ci("images"),
            inner(Digest::PATTERN),
        )
    }

    pub fn subscription(&self) -> &SubscriptionId {
        match self {
            Self::Subscription(s) | Self::ResourceGroup(s, _) => s,
            Self::Registry(r) | Self::Repository(r, _) | Self::Image(r, _, _) => &r.subscription,
        }
    }

    /// The scope as its canonical resource id, without a leading `/`.
    pub fn id(&self) -> String {
        let registry = |r: &RegistryId| {
            RegistryId::format(
                r.subscription.as_str(),
                r.resource_group.as_str(),
                r.name.as_str(),
            )
            .trim_start_matches('/')
            .to_owned()
        };
        match self {
            Self::Subscription(s) => format!("subscriptions/{}", s.as_str()),
            Self::ResourceGroup(s, g) => {
                format!("subscriptions/{}/resourceGroups/{}", s.as_str(), g.as_str())
            }
            Self::Registry(r) => registry(r),
            Self::Repository(r, repo) => format!("{}/repositories/{}", registry(r), repo.as_str()),
            Self::Image(r, repo, d) => format!(
                "{}/repositories/{}/images/{}",
                registry(r),
                repo.as_str(),
                d.as_str()
            ),
        }
    }

    /// Whether a finding of `place` lies in this scope.
    pub fn covers(&self, place: &FindingPlace<'_>) -> bool {
        let same_registry = |r: &RegistryId| {
            r.subscription.as_str() == place.subscription
                && r.resource_group
                    .as_str()
                    .eq_ignore_ascii_case(place.resource_group)
                && r.name.as_str().eq_ignore_ascii_case(place.registry_name)
        };
        match self {
            Self::Subscription(s) => s.as_str() == place.subscription,
            Self::ResourceGroup(s, g) => {
                s.as_str() == place.subscription
                    && g.as_str().eq_ignore_ascii_case(place.resource_group)
            }
            Self::Registry(r) => same_registry(r),
            Self::Repository(r, repo) => same_registry(r) && repo.as_str() == place.repository,
            Self::Image(r, repo, d) => {
                same_registry(r) && repo.as_str() == place.repository && d.as_str() == place.digest
            }
        }
    }
}

/// Where a finding is: what an exemption's scope is compared with.
#[derive(Debug, Clone, Copy)]
pub struct FindingPlace<'a> {
    pub subscription: &'a str,
    pub resource_group: &'a str,
    pub registry_name: &'a str,
    pub repository: &'a str,
    pub digest: &'a str,
}

/// What of a finding an exemption's criteria are compared with.
#[derive(Debug, Clone)]
pub struct FindingFacts<'a> {
    pub place: FindingPlace<'a>,
    pub advisory_id: &'a str,
    /// The CVE ids (and other aliases) the finding names.
    pub aliases: &'a [String],
    pub package_name: &'a str,
    pub ecosystem: &'a str,
    pub installed_version: &'a str,
    pub severity: Severity,
    pub fix_available: bool,
    /// The image's OS release in Azure's spelling (`debian_linux_12`), when known.
    pub os_version: Option<&'a str>,
}

/// One package an exemption names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PackageCriterion {
    pub name: String,
    /// The finding's ecosystem (`Debian:12`) or its family (`Debian`, `PyPI`); any when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ecosystem: Option<String>,
    /// Comparisons joined by commas, in the ecosystem's version order: `>=1.2, <1.4`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version_range: Option<String>,
}

/// Which findings in its scope an exemption matches.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Criteria {
    /// Advisory ids or their aliases (`CVE-2023-1234`, `DSA-5532-1`, `GHSA-…`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub advisory_ids: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub packages: Vec<PackageCriterion>,
    /// `Low`, `Medium`, `High`, `Critical`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schema(inline, value_type = Vec<String>)]
    pub severities: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fix_status: Option<FixStatus>,
    /// Azure's spelling of OS releases: `ubuntu_linux_20.04`, `debian_linux_12`, `alpine_linux_3.19`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub os_versions: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub image_digests: Vec<String>,
}

/// What is wrong with criteria, naming the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct CriteriaError {
    pub field: String,
    pub message: String,
}

/// `compare(ecosystem, a, b)`: the ecosystem's version order, `None` when it cannot compare them.
pub type CompareVersions<'a> = dyn Fn(&str, &str, &str) -> Option<Ordering> + 'a;

impl Criteria {
    /// Refuses what could never match as meant: empty values, bad digests, unparsable ranges.
    pub fn validate(&self) -> Result<(), CriteriaError> {
        let error = |field: String, message: &str| CriteriaError {
            field,
            message: message.to_owned(),
        };
        for (i, id) in self.advisory_ids.iter().enumerate() {
            if id.trim().is_empty() || id.len() > 200 {
                return Err(error(
                    format!("properties.criteria.advisoryIds[{i}]"),
                    "an advisory id is 1 to 200 characters",
                ));
            }
        }
        for (i, package) in self.packages.iter().enumerate() {
            if package.name.trim().is_empty() || package.name.len() > 400 {
                return Err(error(
                    format!("properties.criteria.packages[{i}].name"),
                    "a package name is 1 to 400 characters",
                ));
            }
            if let Some(range) = &package.version_range {
                parse_range(range).map_err(|message| CriteriaError {
                    field: format!("properties.criteria.packages[{i}].versionRange"),
                    message,
                })?;
            }
        }
        for (i, severity) in self.severities.iter().enumerate() {
            if Severity::parse(severity).is_none() {
                return Err(error(
                    format!("properties.criteria.severities[{i}]"),
                    "a severity is Low, Medium, High or Critical",
                ));
            }
        }
        for (i, os) in self.os_versions.iter().enumerate() {
            if os.trim().is_empty() || os.len() > 100 {
                return Err(error(
                    format!("properties.criteria.osVersions[{i}]"),
                    "an OS version is 1 to 100 characters, as `debian_linux_12`",
                ));
            }
        }
        for (i, digest) in self.image_digests.iter().enumerate() {
            if Digest::parse(digest).is_err() {
                return Err(error(
                    format!("properties.criteria.imageDigests[{i}]"),
                    "expected sha256:<64 hex digits> or sha512:<128 hex digits>",
                ));
            }
        }
        Ok(())
    }

    /// Whether a finding meets every criterion given.
    pub fn matches(&self, finding: &FindingFacts<'_>, compare: &CompareVersions<'_>) -> bool {
        let advisory = || {
            self.advisory_ids.iter().any(|id| {
                id.eq_ignore_ascii_case(finding.advisory_id)
                    || finding.aliases.iter().any(|a| id.eq_ignore_ascii_case(a))
            })
        };
        let package = || {
            self.packages
                .iter()
                .any(|p| package_matches(p, finding, compare))
        };
        let fix = |status: FixStatus| match status {
            FixStatus::FixAvailable => finding.fix_available,
            FixStatus::NoFixAvailable => !finding.fix_available,
        };
        let os = || {
            finding
                .os_version
                .is_some_and(|v| self.os_versions.iter().any(|o| o.eq_ignore_ascii_case(v)))
        };
        (self.advisory_ids.is_empty() || advisory())
            && (self.packages.is_empty() || package())
            && (self.severities.is_empty()
                || self
                    .severities
                    .iter()
                    .any(|s| Severity::parse(s) == Some(finding.severity)))
            && self.fix_status.is_none_or(fix)
            && (self.os_versions.is_empty() || os())
            && (self.image_digests.is_empty()
                || self
                    .image_digests
                    .iter()
                    .any(|d| d.eq_ignore_ascii_case(finding.place.digest)))
    }
}

fn package_matches(
    package: &PackageCriterion,
    finding: &FindingFacts<'_>,
    compare: &CompareVersions<'_>,
) -> bool {
    if package.name != finding.package_name {
        return false;
    }
    if let Some(ecosystem) = &package.ecosystem {
        let family = finding.ecosystem.split(':').next().unwrap_or_default();
        if !ecosystem.eq_ignore_ascii_case(finding.ecosystem)
            && !ecosystem.eq_ignore_ascii_case(family)
        {
            return false;
        }
    }
    let Some(range) = &package.version_range else {
        return true;
    };
    let Ok(comparisons) = parse_range(range) else {
        return false;
    };
    comparisons.iter().all(|(op, version)| {
        compare(finding.ecosystem, finding.installed_version, version)
            .is_some_and(|ordering| op.holds(ordering))
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Comparison {
    Less,
    LessOrEqual,
    Equal,
    NotEqual,
    GreaterOrEqual,
    Greater,
}

impl Comparison {
    fn holds(self, ordering: Ordering) -> bool {
        match self {
            Self::Less => ordering == Ordering::Less,
            Self::LessOrEqual => ordering != Ordering::Greater,
            Self::Equal => ordering == Ordering::Equal,
            Self::NotEqual => ordering != Ordering::Equal,
            Self::GreaterOrEqual => ordering != Ordering::Less,
            Self::Greater => ordering == Ordering::Greater,
        }
    }
}

/// `>=1.2, <1.4` → its comparisons; a message saying what is wrong otherwise.
fn parse_range(range: &str) -> Result<Vec<(Comparison, &str)>, String> {
    let mut out = Vec::new();
    for part in range.split(',') {
        let part = part.trim();
        let (op, version) = [
            (">=", Comparison::GreaterOrEqual),
            ("<=", Comparison::LessOrEqual),
            ("!=", Comparison::NotEqual),
            ("==", Comparison::Equal),
            (">", Comparison::Greater),
            ("<", Comparison::Less),
            ("=", Comparison::Equal),
        ]
        .iter()
        .find_map(|(prefix, op)| part.strip_prefix(prefix).map(|rest| (*op, rest.trim())))
        .ok_or_else(|| {
            format!("{part:?} is not a comparison: use <, <=, =, !=, >= or > and a version, joined by commas")
        })?;
        if version.is_empty() || version.contains(char::is_whitespace) {
            return Err(format!("{part:?} names no version"));
        }
        out.push((op, version));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const DIGEST: &str = "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";

    fn facts<'a>(aliases: &'a [String]) -> FindingFacts<'a> {
        FindingFacts {
            place: FindingPlace {
                subscription: "sub-1",
                resource_group: "rg",
                registry_name: "reg",
                repository: "team/app",
                digest: DIGEST,
            },
            advisory_id: "DSA-5532-1",
            aliases,
            package_name: "openssl",
            ecosystem: "Debian:12",
            installed_version: "3.0.11-1~deb12u1",
            severity: Severity::High,
            fix_available: true,
            os_version: Some("debian_linux_12"),
        }
    }

    fn plain(_: &str, a: &str, b: &str) -> Option<Ordering> {
        Some(a.cmp(b))
    }

    #[test]
    fn every_criterion_given_must_hold() {
        let aliases = vec!["CVE-2023-5678".to_owned()];
        let finding = facts(&aliases);
        let matches = |c: &Criteria| c.matches(&finding, &plain);
        assert!(matches(&Criteria::default()), "no criterion: all");
        let by_alias = Criteria {
            advisory_ids: vec!["cve-2023-5678".into()],
            ..Criteria::default()
        };
        assert!(matches(&by_alias));
        let high = Criteria {
            severities: vec!["high".into()],
            ..by_alias.clone()
        };
        assert!(matches(&high));
        let low = Criteria {
            severities: vec!["Low".into()],
            ..by_alias.clone()
        };
        assert!(!matches(&low), "and across criteria");
        let no_fix = Criteria {
            fix_status: Some(FixStatus::NoFixAvailable),
            ..Criteria::default()
        };
        assert!(!matches(&no_fix));
        let os = Criteria {
            os_versions: vec!["ubuntu_linux_20.04".into(), "debian_linux_12".into()],
            ..Criteria::default()
        };
        assert!(matches(&os), "or within one");
        let other_digest = Criteria {
            image_digests: vec![DIGEST.replace('a', "b")],
            ..Criteria::default()
        };
        assert!(!matches(&other_digest));
        let other_cve = Criteria {
            advisory_ids: vec!["CVE-2023-0001".into()],
            ..Criteria::default()
        };
        assert!(!matches(&other_cve));
    }

    #[test]
    fn packages_match_by_name_family_and_range() {
        let finding = facts(&[]);
        let package = |ecosystem: Option<&str>, range: Option<&str>| Criteria {
            packages: vec![PackageCriterion {
                name: "openssl".into(),
                ecosystem: ecosystem.map(str::to_owned),
                version_range: range.map(str::to_owned),
            }],
            ..Criteria::default()
        };
        assert!(package(None, None).matches(&finding, &plain));
        assert!(package(Some("Debian"), None).matches(&finding, &plain));
        assert!(package(Some("Debian:12"), None).matches(&finding, &plain));
        assert!(!package(Some("Alpine"), None).matches(&finding, &plain));
        assert!(package(None, Some(">=3.0, <3.1")).matches(&finding, &plain));
        assert!(!package(None, Some("<3.0")).matches(&finding, &plain));
        let incomparable = |_: &str, _: &str, _: &str| None;
        assert!(!package(None, Some(">=1")).matches(&finding, &incomparable));
    }

    #[test]
    fn bad_criteria_name_their_field() {
        let bad_range = Criteria {
            packages: vec![PackageCriterion {
                name: "openssl".into(),
                ecosystem: None,
                version_range: Some("about 3".into()),
            }],
            ..Criteria::default()
        };
        assert_eq!(
            bad_range.validate().unwrap_err().field,
            "properties.criteria.packages[0].versionRange"
        );
        let bad_digest = Criteria {
            image_digests: vec!["sha256:xyz".into()],
            ..Criteria::default()
        };
        assert_eq!(
            bad_digest.validate().unwrap_err().field,
            "properties.criteria.imageDigests[0]"
        );
        assert_eq!(parse_range("<= 2.0 ,>1").unwrap().len(), 2);
    }

    #[test]
    fn scopes_parse_down_to_one_image() {
        let registry = "subscriptions/sub-1/resourceGroups/rg/providers/Microsoft.ContainerRegistry/registries/reg";
        let image = format!("/{registry}/repositories/team/app/images/{DIGEST}");
        let scope = ExemptionScope::parse(&image).unwrap();
        assert!(matches!(scope, ExemptionScope::Image(..)));
        assert_eq!(scope.id(), image.trim_start_matches('/'));
        let finding = facts(&[]);
        assert!(scope.covers(&finding.place));
        let repository =
            ExemptionScope::parse(&format!("{registry}/repositories/team/other")).unwrap();
        assert!(!repository.covers(&finding.place));
        assert!(
            ExemptionScope::parse("subscriptions/sub-1")
                .unwrap()
                .covers(&finding.place)
        );
        assert!(ExemptionScope::parse(&format!("{registry}/repositories/")).is_err());
        let named_images =
            ExemptionScope::parse(&format!("{registry}/repositories/team/images/app"));
        assert!(matches!(named_images, Ok(ExemptionScope::Repository(..))));
        let pattern = regex::Regex::new(&ExemptionScope::pattern()).unwrap();
        for accepted in [
            "subscriptions/sub-1".to_owned(),
            registry.to_owned(),
            format!("{registry}/repositories/team/images/app"),
            image.clone(),
        ] {
            assert!(pattern.is_match(&accepted), "{accepted}");
            assert!(ExemptionScope::parse(&accepted).is_ok(), "{accepted}");
        }
        assert!(!pattern.is_match(&format!("{registry}/repositories/")));
        assert!(ExemptionScope::parse("tenants/x").is_err());
    }
}
