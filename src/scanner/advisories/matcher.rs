//! The pure matcher: an image's inventory against candidate advisories.
//!
//! OS packages are matched by **source** package (dpkg `Source:`, apk origin `o:`, the source
//! RPM) in the distribution's own ecosystem ([`os_ecosystems`]); the version compared is the
//! source version when the package database gives one (dpkg `Source: name (version)`), else the
//! installed version. RPM distributions whose records name binary RPMs (Red Hat, AlmaLinux,
//! Rocky Linux) are matched by binary name too, always with the installed EVR (a source RPM file
//! name carries no epoch). Language packages are matched in `PyPI`, `npm`, `crates.io`, `Go`,
//! `Maven`, `RubyGems`, `NuGet`, `Packagist` by their normalised name ([`normalize_name`]),
//! except those an OS package installed (their `owner`): a package belongs to one owner, and
//! those are assessed through it.
//!
//! The OSV Debian records (DSA/DLA bundle, osv.dev's `DEBIAN-CVE-*`) use `Debian:<major>`
//! (`Debian:10`), the Alpine secdb records `Alpine:v<major>.<minor>` (`Alpine:v3.10`), exactly
//! as [`os_ecosystems`] spells them.
//!
//! Storage: a [`Candidate`] is an [`AdvisoryMeta`] (one `advisories` row: id, dates, aliases,
//! upstream, summary, details, references, severity inputs — or that struct as one JSON column)
//! plus one [`AffectedPackage`] (one `affected_ranges` row keyed by ecosystem + name, the rest
//! as JSON) plus the alias severity the store looked up when the record decides none itself
//! ([`super::severity::needs_alias`]). All three are serde types, so the store rebuilds a
//! candidate with two `serde_json::from_str` calls and no re-parsing of the OSV record.

use std::borrow::Cow;
use std::cell::OnceCell;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::domain::Severity;

use super::ecosystem::{NameKeys, OsEcosystems, OsRelease, normalize_name, os_ecosystems};
use super::osv::{Advisory, AdvisoryMeta, AffectedPackage};
use super::ranges::{self, Prepared, Verdict};
use super::ratings::CveRating;
use super::severity::{AliasSeverity, SeverityInfo, resolve_parts, severity_serde};

/// Which package manager an installed package comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum PackageKind {
    Dpkg,
    Apk,
    Rpm,
    Python,
    Npm,
    Cargo,
    Go,
    Maven,
    RubyGems,
    Packagist,
    NuGet,
}

impl PackageKind {
    pub fn is_os(self) -> bool {
        matches!(
            self,
            PackageKind::Dpkg | PackageKind::Apk | PackageKind::Rpm
        )
    }

    /// The OSV ecosystem of a language package.
    pub fn language_ecosystem(self) -> Option<&'static str> {
        match self {
            PackageKind::Python => Some("PyPI"),
            PackageKind::Npm => Some("npm"),
            PackageKind::Cargo => Some("crates.io"),
            PackageKind::Go => Some("Go"),
            PackageKind::Maven => Some("Maven"),
            PackageKind::RubyGems => Some("RubyGems"),
            PackageKind::Packagist => Some("Packagist"),
            PackageKind::NuGet => Some("NuGet"),
            PackageKind::Dpkg | PackageKind::Apk | PackageKind::Rpm => None,
        }
    }

    /// Whether an OS family's records describe this package manager's packages.
    fn fits(self, category: &str) -> bool {
        match self {
            PackageKind::Dpkg => matches!(category, "Debian" | "Ubuntu"),
            PackageKind::Apk => category == "Alpine",
            PackageKind::Rpm => matches!(
                category,
                "Red Hat" | "AlmaLinux" | "Rocky Linux" | "SUSE" | "openSUSE"
            ),
            _ => false,
        }
    }
}

/// One installed package, as an analyzer found it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InventoryPackage {
    pub kind: PackageKind,
    /// The binary package name as installed.
    pub name: String,
    /// As installed (dpkg/apk version, RPM `[epoch:]version-release`, ...).
    pub version: String,
    /// dpkg `Source:` name, apk origin, source RPM (name or `name-ver-rel.src.rpm`).
    pub source_name: Option<String>,
    /// dpkg `Source: name (version)`; absent when the source version is the binary's.
    pub source_version: Option<String>,
    pub layer_digest: Option<String>,
    /// The file the package was read from (a package database, a binary, an archive; `!` joins
    /// an archive's path to a nested one's), so a user knows what to rebuild.
    #[serde(default)]
    pub file_path: Option<String>,
    /// The OS package whose file list holds `file_path`, for a language package an OS package
    /// installed: it is assessed as part of that package, not again in its own ecosystem.
    #[serde(default)]
    pub owner: Option<String>,
}

impl InventoryPackage {
    /// A language package read from the file at `file_path` of the layer `layer_digest`: no
    /// source package, no owner yet (`analyzers::owners` sets it).
    pub fn language(
        kind: PackageKind,
        name: impl Into<String>,
        version: impl Into<String>,
        file_path: &str,
        layer_digest: &str,
    ) -> Self {
        InventoryPackage {
            kind,
            name: name.into(),
            version: version.into(),
            source_name: None,
            source_version: None,
            layer_digest: Some(layer_digest.to_owned()),
            file_path: Some(file_path.to_owned()),
            owner: None,
        }
    }
}

/// What an image contains.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Inventory {
    pub os: Option<OsRelease>,
    pub packages: Vec<InventoryPackage>,
    /// Executables and archives an analyzer wanted but could not read: what the packages may
    /// miss, so the image is never Healthy on their account.
    #[serde(default)]
    pub unreadable: Vec<UnreadablePath>,
}

/// A file of the image an analyzer wanted and could not read, with a stable code (`Truncated`,
/// `TooLarge`, `TooDeep`, `Malformed`, ...) and the reason.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnreadablePath {
    pub path: String,
    pub analyzer: String,
    pub code: String,
    pub reason: String,
}

impl Inventory {
    /// How many distinct files could not be read (an ELF file two analyzers tried counts once).
    pub fn unreadable_files(&self) -> usize {
        let paths: std::collections::BTreeSet<&str> =
            self.unreadable.iter().map(|u| u.path.as_str()).collect();
        paths.len()
    }
}

/// One affected package of one advisory, as the store hands it to the matcher.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Candidate {
    /// Shared by every affected entry of the record.
    pub advisory: Arc<AdvisoryMeta>,
    pub affected: Arc<AffectedPackage>,
    /// The severity of one of the advisory's aliases / upstream ids, looked up by the store when
    /// [`super::severity::needs_alias`] says the record decides none itself.
    pub alias_severity: Option<AliasSeverity>,
    /// The outside ratings of the advisory's CVE ids (Debian tracker, NVD), looked up by the
    /// store; [`super::severity`] says how they decide.
    #[serde(default)]
    pub ratings: Vec<CveRating>,
}

impl Candidate {
    /// One candidate per affected package of a record (no alias severity, no outside ratings).
    pub fn from_advisory(a: &Advisory) -> Vec<Candidate> {
        let meta = Arc::new(a.meta.clone());
        a.affected
            .iter()
            .map(|p| Candidate {
                advisory: meta.clone(),
                affected: Arc::new(p.clone()),
                alias_severity: None,
                ratings: Vec::new(),
            })
            .collect()
    }
}

/// A titled link (Azure's `cve` and `vendorReferences` entries).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Link {
    pub title: String,
    pub link: String,
}

/// One finding: an advisory affecting one installed (binary) package.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Match {
    pub advisory_id: String,
    /// The binary package as installed.
    pub package_name: String,
    pub installed_version: String,
    /// The source package the advisory names, when not the binary's own name.
    pub source_name: Option<String>,
    /// The version that was compared (the source version when the database gave one).
    pub compared_version: String,
    pub fixed_version: Option<String>,
    /// The advisory's ecosystem (`Debian:10`, `PyPI`).
    pub ecosystem: String,
    /// OS family (`Debian`, `Alpine`, `Red Hat`, ...) or language ecosystem (`PyPI`, ...).
    pub category: String,
    #[serde(with = "severity_serde")]
    pub severity: Severity,
    pub severity_source: String,
    pub cvss_v2: Option<f64>,
    pub cvss_v3: Option<f64>,
    pub cvss_v4: Option<f64>,
    pub display_name: String,
    pub description: String,
    pub remediation: String,
    pub impact: String,
    pub cves: Vec<Link>,
    pub vendor_references: Vec<Link>,
    pub published: Option<DateTime<Utc>>,
    /// A fixed version exists in this ecosystem.
    pub patchable: bool,
    pub layer_digest: Option<String>,
    /// The file the package was read from (see [`InventoryPackage::file_path`]).
    pub file_path: Option<String>,
}

/// A package whose status against an advisory is unknown (reported, never "not vulnerable").
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Unknown {
    pub package: String,
    pub version: String,
    /// `None` when no advisory could be looked up for the package at all.
    pub advisory_id: Option<String>,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct MatchReport {
    pub matches: Vec<Match>,
    pub unknown: Vec<Unknown>,
    /// Set when the image has OS packages but its OS has no advisory ecosystem.
    pub unsupported_os: Option<String>,
}

/// One `(ecosystem, name)` to look a package up under, and the version to compare there.
struct Lookup<'a> {
    ecosystem: &'a str,
    name: Cow<'a, str>,
    version: &'a str,
    /// The source package name, when the lookup is by a source name other than the binary's.
    source: Option<&'a str>,
    category: &'a str,
}

/// The name of a source RPM given as a file name (`openssl-3.0.7-24.el9.src.rpm` → `openssl`);
/// a plain name is returned as is.
pub fn srpm_name(source: &str) -> &str {
    let Some(nvr) = source
        .strip_suffix(".src.rpm")
        .or_else(|| source.strip_suffix(".nosrc.rpm"))
    else {
        return source;
    };
    let mut parts = nvr.rsplitn(3, '-');
    match (parts.next(), parts.next(), parts.next()) {
        (Some(_release), Some(_version), Some(name)) if !name.is_empty() => name,
        _ => nvr,
    }
}

/// Where to look a package up, or why it cannot be looked up at all (`Err(None)`: an OS
/// package on an unsupported OS, reported once as `unsupported_os`). A language package an OS
/// package installed (`owner`) is looked up nowhere: it is assessed as part of its owner, whose
/// distribution patches it without changing its upstream version.
fn lookups<'a>(
    pkg: &'a InventoryPackage,
    os: Option<&'a OsEcosystems>,
) -> Result<Vec<Lookup<'a>>, Option<String>> {
    if let Some(ecosystem) = pkg.kind.language_ecosystem() {
        if pkg.owner.is_some() {
            return Ok(Vec::new());
        }
        let name = Cow::Owned(normalize_name(ecosystem, &pkg.name));
        return Ok(vec![Lookup {
            ecosystem,
            name,
            version: &pkg.version,
            source: None,
            category: ecosystem,
        }]);
    }
    let os = os.ok_or(None)?;
    if !pkg.kind.fits(os.category) {
        return Err(Some(format!(
            "{:?} package on this {} image: no advisory ecosystem for it",
            pkg.kind, os.category
        )));
    }
    let source = pkg
        .source_name
        .as_deref()
        .map(|s| {
            if pkg.kind == PackageKind::Rpm {
                srpm_name(s)
            } else {
                s
            }
        })
        .map(str::trim)
        .filter(|s| !s.is_empty() && *s != pkg.name);
    let mut names: [Option<(&str, &str, Option<&str>)>; 2] = [None, None];
    match os.names {
        NameKeys::Source => {
            let version = match pkg.kind {
                // A source RPM's version has no epoch: compare the installed EVR.
                PackageKind::Rpm => pkg.version.as_str(),
                _ => pkg.source_version.as_deref().unwrap_or(&pkg.version),
            };
            names[0] = Some((source.unwrap_or(&pkg.name), version, source));
        }
        NameKeys::BinaryAndSource => {
            names[0] = Some((&pkg.name, &pkg.version, None));
            names[1] = source.map(|src| (src, pkg.version.as_str(), Some(src)));
        }
    }
    let mut out = Vec::with_capacity(os.ecosystems.len() * 2);
    for ecosystem in &os.ecosystems {
        for (name, version, source) in names.iter().flatten() {
            out.push(Lookup {
                ecosystem,
                name: Cow::Borrowed(*name),
                version,
                source: *source,
                category: os.category,
            });
        }
    }
    Ok(out)
}

/// The distinct `(ecosystem, normalised name)` pairs whose candidates the store must load for
/// this inventory (one query: `WHERE (ecosystem, package) IN (...)`), sorted.
pub fn match_keys(inv: &Inventory) -> Vec<(String, String)> {
    let os = inv.os.as_ref().and_then(os_ecosystems);
    let mut keys: Vec<(String, String)> = inv
        .packages
        .iter()
        .filter_map(|p| lookups(p, os.as_ref()).ok())
        .flatten()
        .map(|l| (l.ecosystem.to_owned(), l.name.into_owned()))
        .collect();
    keys.sort();
    keys.dedup();
    keys
}

/// An ecosystem of an image's packages: the one its records are filed under (an OS package's
/// release's first: `Debian:12`, `Ubuntu:22.04:LTS`; a language package's: `PyPI`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackageEcosystem {
    pub ecosystem: String,
    /// Every ecosystem these packages are looked up in (`Ubuntu:Pro:22.04:LTS` too).
    pub matched_in: Vec<String>,
    pub packages: usize,
}

/// The ecosystems of an inventory's packages, sorted. Packages that cannot be looked up anywhere
/// (an unsupported OS) are left out: they are reported otherwise; so are language packages an
/// OS package owns (assessed through it).
pub fn package_ecosystems(inv: &Inventory) -> Vec<PackageEcosystem> {
    let os = inv.os.as_ref().and_then(os_ecosystems);
    let mut by_ecosystem: BTreeMap<&str, PackageEcosystem> = BTreeMap::new();
    let all: Vec<Vec<Lookup<'_>>> = inv
        .packages
        .iter()
        .filter_map(|p| lookups(p, os.as_ref()).ok())
        .collect();
    for lookups in &all {
        let Some(first) = lookups.first() else {
            continue;
        };
        let entry = by_ecosystem
            .entry(first.ecosystem)
            .or_insert_with(|| PackageEcosystem {
                ecosystem: first.ecosystem.to_owned(),
                matched_in: Vec::new(),
                packages: 0,
            });
        entry.packages += 1;
        for lookup in lookups {
            if !entry.matched_in.iter().any(|e| e == lookup.ecosystem) {
                entry.matched_in.push(lookup.ecosystem.to_owned());
            }
        }
    }
    by_ecosystem.into_values().collect()
}

fn unsupported_os(inv: &Inventory) -> String {
    match &inv.os {
        None => "OS packages found but no os-release: the OS is unknown".to_owned(),
        Some(os) => format!(
            "no advisories for OS {:?} version {:?}{}",
            os.id,
            os.version_id.as_deref().unwrap_or(""),
            os.pretty_name
                .as_deref()
                .map(|p| format!(" ({p})"))
                .unwrap_or_default()
        ),
    }
}

/// Matches an inventory against the candidates the store loaded for [`match_keys`]. Withdrawn
/// advisories never match; each (advisory, binary package) pair gives at most one match.
pub fn match_inventory(inv: &Inventory, candidates: &[Candidate]) -> MatchReport {
    let os = inv.os.as_ref().and_then(os_ecosystems);
    let mut report = MatchReport::default();
    if os.is_none() && inv.packages.iter().any(|p| p.kind.is_os()) {
        report.unsupported_os = Some(unsupported_os(inv));
    }
    let lookups: Vec<_> = inv
        .packages
        .iter()
        .map(|p| lookups(p, os.as_ref()))
        .collect();
    // Index only the candidates some package looks up; each entry prepares (validates and
    // sorts) its events and resolves its severity once, on first use.
    let mut index: HashMap<(&str, &str), Vec<Slot<'_>>> = HashMap::new();
    for lookup in lookups.iter().flatten().flatten() {
        index.entry((lookup.ecosystem, &*lookup.name)).or_default();
    }
    for c in candidates.iter().filter(|c| c.advisory.withdrawn.is_none()) {
        if let Some(slots) =
            index.get_mut(&(c.affected.ecosystem.as_str(), c.affected.name.as_str()))
        {
            slots.push(Slot {
                candidate: c,
                prepared: OnceCell::new(),
                severity: OnceCell::new(),
            });
        }
    }

    for (pkg, lookups) in inv.packages.iter().zip(&lookups) {
        let lookups = match lookups {
            Ok(l) => l,
            Err(None) => continue,
            Err(Some(reason)) => {
                report.unknown.push(Unknown {
                    package: pkg.name.clone(),
                    version: pkg.version.clone(),
                    advisory_id: None,
                    reason: reason.clone(),
                });
                continue;
            }
        };
        // Few advisories per package: a vector beats a hash set here.
        let mut matched: Vec<&str> = Vec::new();
        let mut failed: Vec<(&str, String)> = Vec::new();
        for lookup in lookups {
            let Some(slots) = index.get(&(lookup.ecosystem, &*lookup.name)) else {
                continue;
            };
            for slot in slots {
                let candidate = slot.candidate;
                let id = candidate.advisory.id.as_str();
                if matched.contains(&id) {
                    continue;
                }
                let verdict = slot
                    .prepared
                    .get_or_init(|| ranges::prepare(&candidate.affected))
                    .evaluate(lookup.version);
                match verdict {
                    Ok(v) if v.affected => {
                        matched.push(id);
                        let severity = slot.severity.get_or_init(|| {
                            resolve_parts(
                                &candidate.advisory.severity,
                                &candidate.affected,
                                candidate.alias_severity.as_ref(),
                                &candidate.ratings,
                            )
                        });
                        report
                            .matches
                            .push(build_match(pkg, lookup, candidate, v, severity));
                    }
                    Ok(_) => {}
                    Err(e) => failed.push((id, e.to_string())),
                }
            }
        }
        let mut reported: Vec<&str> = Vec::new();
        for (id, reason) in failed {
            if !matched.contains(&id) && !reported.contains(&id) {
                reported.push(id);
                report.unknown.push(Unknown {
                    package: pkg.name.clone(),
                    version: pkg.version.clone(),
                    advisory_id: Some(id.to_owned()),
                    reason,
                });
            }
        }
    }
    report
}

/// A candidate in the matcher's index, with what is computed once for it.
struct Slot<'c> {
    candidate: &'c Candidate,
    prepared: OnceCell<Prepared<'c>>,
    severity: OnceCell<SeverityInfo>,
}

fn build_match(
    pkg: &InventoryPackage,
    lookup: &Lookup<'_>,
    candidate: &Candidate,
    verdict: Verdict,
    severity: &SeverityInfo,
) -> Match {
    let a = &candidate.advisory;
    let ecosystem = candidate.affected.ecosystem.clone();
    let remediation = match &verdict.fixed {
        Some(fixed) => {
            let mut text = format!(
                "Upgrade {} from {} to {fixed} or later.",
                pkg.name, pkg.version
            );
            if let Some(src) = lookup.source {
                text.push_str(&format!(
                    " The fix is in source package {src} version {fixed}."
                ));
            }
            if ecosystem.contains(":Pro:") {
                text.push_str(" The fixed version is available through Ubuntu Pro.");
            }
            text
        }
        None => format!(
            "No fix is available yet; {} {} remains affected by {}. Remove the package or \
             mitigate the vulnerability until a fixed version is published.",
            pkg.name, pkg.version, a.id
        ),
    };
    // A distribution's rating is named, not the score beside it: "Low; CVSS 7.8" would mislead.
    let scored = !(matches!(
        severity.source.as_str(),
        "debian_urgency" | "ubuntu_priority" | "ghsa"
    ) || severity.source.starts_with("debian-tracker:"));
    let impact = match (severity.source.as_str(), severity.cvss_v3, severity.cvss_v4) {
        ("cvss_v4", _, Some(s)) => format!("{} severity; CVSS 4.0 {s:.1}", severity.level),
        (_, Some(s), _) if scored => format!("{} severity; CVSS 3.x {s:.1}", severity.level),
        (_, None, Some(s)) if scored => format!("{} severity; CVSS 4.0 {s:.1}", severity.level),
        (source, _, _) => format!("{} severity ({source})", severity.level),
    };
    let mut cves: Vec<Link> = Vec::new();
    for id in std::iter::once(&a.id)
        .chain(&a.aliases)
        .chain(&a.upstream)
        .filter(|id| id.starts_with("CVE-"))
    {
        if !cves.iter().any(|l| &l.title == id) {
            cves.push(Link {
                title: id.clone(),
                link: format!("https://nvd.nist.gov/vuln/detail/{id}"),
            });
        }
    }
    let mut vendor_references: Vec<Link> = Vec::new();
    for r in &a.references {
        if !vendor_references.iter().any(|l| l.link == r.url) {
            vendor_references.push(Link {
                title: if r.kind.is_empty() {
                    "Reference".to_owned()
                } else {
                    r.kind.clone()
                },
                link: r.url.clone(),
            });
        }
    }
    let headline = a.summary.as_deref().unwrap_or(&a.id);
    Match {
        advisory_id: a.id.clone(),
        package_name: pkg.name.clone(),
        installed_version: pkg.version.clone(),
        source_name: lookup.source.map(str::to_owned),
        compared_version: lookup.version.to_owned(),
        patchable: verdict.fixed.is_some(),
        fixed_version: verdict.fixed,
        ecosystem,
        category: lookup.category.to_owned(),
        severity: severity.level,
        severity_source: severity.source.clone(),
        cvss_v2: severity.cvss_v2,
        cvss_v3: severity.cvss_v3,
        cvss_v4: severity.cvss_v4,
        display_name: format!("{}: {headline}", pkg.name),
        description: a
            .details
            .as_deref()
            .or(a.summary.as_deref())
            .unwrap_or(&a.id)
            .to_owned(),
        remediation,
        impact,
        cves,
        vendor_references,
        published: a.published,
        layer_digest: pkg.layer_digest.clone(),
        file_path: pkg.file_path.clone(),
    }
}

#[cfg(test)]
mod tests;
