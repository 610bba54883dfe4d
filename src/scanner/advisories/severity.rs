//! Severity of a finding, decided once a package is found affected. The first rule that gives a
//! level wins, the package's own distribution first (as Trivy does), then CVSS, then an alias's:
//!
//! 1. the record's own rating for its distribution and release: the Debian security tracker's
//!    `ecosystem_specific.urgency` (source `debian_urgency`), the Ubuntu priority (severity type
//!    `Ubuntu`; source `ubuntu_priority`). Levels: Debian `unimportant` and `low` → Low,
//!    `medium` → Medium, `high` → High (a trailing `**`, a guessed urgency, is ignored; `not
//!    yet assigned`, `end-of-life` decide nothing); Ubuntu `negligible` and `low` → Low,
//!    `medium`, `high`, `critical`.
//! 2. the record's own CVSS: the v3 vector, else the v4 vector, scored with the `cvss` crate →
//!    [`Severity::from_cvss`] (source `cvss_v3` / `cvss_v4`). The affected entry's own
//!    `severity[]` replaces the record's when present. Red Hat's and SUSE's OSV records state
//!    their rating this way, so for them this is the distribution's own rating. A CVSS v2 base
//!    score is kept for display but never decides the level.
//! 3. the record's database severity: `database_specific.severity` (GHSA: LOW, MODERATE, HIGH,
//!    CRITICAL; source `ghsa`).
//! 4. the ratings of the record's CVE ids (its id when it is one, its aliases and upstream ids),
//!    loaded from sources of their own ([`super::ratings`]): each CVE is rated by the
//!    distribution's tracker when the package is Debian's — the urgency for the package and the
//!    release (`Debian:12` → `bookworm`), else the package's urgency in `sid`, which is where
//!    the tracker states it once for every release — and otherwise by NVD's CVSS. Several CVEs
//!    combine to the **highest** of their levels (ties: the smallest CVE id), because a DSA
//!    fixing one critical and ten minor CVEs must still trip a gate on High. Source
//!    `debian-tracker:<CVE>` or `nvd:<CVE>`.
//! 5. an alias record's severity, supplied by the caller ([`AliasSeverity`]; source
//!    `alias:<id>`).
//! 6. Medium, source `default`.

use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::domain::Severity;

use super::ecosystem::base;
use super::osv::{Advisory, AffectedPackage, SeverityData, SeverityScore};
use super::ratings::{CveRating, RatingSource, debian_codename, debian_level};

/// A resolved severity.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SeverityInfo {
    #[serde(with = "severity_serde")]
    pub level: Severity,
    /// `debian_urgency`, `ubuntu_priority`, `cvss_v3`, `cvss_v4`, `ghsa`,
    /// `debian-tracker:<CVE>`, `nvd:<CVE>`, `alias:<id>`, `default`.
    pub source: String,
    pub cvss_v2: Option<f64>,
    pub cvss_v3: Option<f64>,
    pub cvss_v4: Option<f64>,
}

impl SeverityInfo {
    pub fn is_default(&self) -> bool {
        self.source == "default"
    }
}

/// The severity of an alias of the advisory (e.g. the `CVE-…` record a DSA or an Alpine record
/// refers to), which the caller looks up; see [`needs_alias`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AliasSeverity {
    /// The alias's id (`CVE-2023-1393`).
    pub id: String,
    /// Its own resolved severity ([`resolve_record`] of the alias record).
    pub severity: SeverityInfo,
}

pub use crate::domain::severity_serde;

/// Base score of a severity entry: a CVSS vector of the given version, or a bare number.
pub fn score(entry: &SeverityScore) -> Option<f64> {
    let s = entry.score.trim();
    let from_vector = match entry.kind.as_str() {
        "CVSS_V2" => cvss::v2::Vector::from_str(s)
            .ok()
            .map(|v| v.score().value()),
        "CVSS_V3" => cvss::v3::Vector::from_str(s)
            .ok()
            .map(|v| v.score().value()),
        "CVSS_V4" => cvss::v4::Vector::from_str(s)
            .ok()
            .map(|v| v.score().value()),
        _ => return None,
    };
    from_vector.or_else(|| s.parse::<f64>().ok().filter(|n| (0.0..=10.0).contains(n)))
}

/// The first scorable entry of a kind.
fn first_score(scores: &[SeverityScore], kind: &str) -> Option<f64> {
    scores.iter().filter(|s| s.kind == kind).find_map(score)
}

fn ghsa_level(s: &str) -> Option<Severity> {
    match s.trim().to_ascii_uppercase().as_str() {
        "LOW" => Some(Severity::Low),
        "MODERATE" | "MEDIUM" => Some(Severity::Medium),
        "HIGH" => Some(Severity::High),
        "CRITICAL" => Some(Severity::Critical),
        _ => None,
    }
}

fn ubuntu_level(s: &str) -> Option<Severity> {
    match s.trim().to_ascii_lowercase().as_str() {
        "negligible" | "low" => Some(Severity::Low),
        "medium" => Some(Severity::Medium),
        "high" => Some(Severity::High),
        "critical" => Some(Severity::Critical),
        _ => None,
    }
}

/// Resolves the severity of one affected entry of a record without outside ratings (see the
/// module docs).
pub fn resolve(
    advisory: &Advisory,
    affected: &AffectedPackage,
    alias: Option<&AliasSeverity>,
) -> SeverityInfo {
    resolve_parts(&advisory.meta.severity, affected, alias, &[])
}

/// The record-level severity (no affected entry's override, no outside ratings): what an alias
/// record contributes.
pub fn resolve_record(advisory: &Advisory) -> SeverityInfo {
    own_severity(
        &advisory.meta.severity.scores,
        &[advisory.meta.severity.database_severity.as_deref()],
        None,
    )
    .unwrap_or_else(|(v2, v3, v4)| default(v2, v3, v4))
}

/// [`resolve`] from the stored parts (what a [`super::matcher::Candidate`] carries), with the
/// ratings of the record's CVE ids (any others are ignored).
pub fn resolve_parts(
    record: &SeverityData,
    affected: &AffectedPackage,
    alias: Option<&AliasSeverity>,
    ratings: &[CveRating],
) -> SeverityInfo {
    let scores = if affected.severity.is_empty() {
        &record.scores
    } else {
        &affected.severity
    };
    let urgency = if base(&affected.ecosystem) == "Debian" {
        affected.urgency.as_deref()
    } else {
        None
    };
    let (v2, v3, v4) = match own_severity(
        scores,
        &[
            affected.database_severity.as_deref(),
            record.database_severity.as_deref(),
        ],
        urgency,
    ) {
        Ok(info) => return info,
        Err(scores) => scores,
    };
    if let Some(info) = from_ratings(affected, ratings, (v2, v3, v4)) {
        return info;
    }
    if let Some(alias) = alias.filter(|a| !a.severity.is_default()) {
        return SeverityInfo {
            level: alias.severity.level,
            source: format!("alias:{}", alias.id),
            cvss_v2: v2.or(alias.severity.cvss_v2),
            cvss_v3: alias.severity.cvss_v3,
            cvss_v4: alias.severity.cvss_v4,
        };
    }
    default(v2, v3, v4)
}

/// True when the record and entry decide nothing themselves, so an alias's severity could be
/// used: the store should then look up the advisory's aliases / upstream ids.
pub fn needs_alias(record: &SeverityData, affected: &AffectedPackage) -> bool {
    resolve_parts(record, affected, None, &[]).is_default()
}

fn default(cvss_v2: Option<f64>, cvss_v3: Option<f64>, cvss_v4: Option<f64>) -> SeverityInfo {
    SeverityInfo {
        level: Severity::Medium,
        source: "default".to_owned(),
        cvss_v2,
        cvss_v3,
        cvss_v4,
    }
}

/// CVSS v2, v3, v4 base scores.
type Scores = (Option<f64>, Option<f64>, Option<f64>);

/// Steps 1–3: what the record says itself; `Err` carries its scores for the later steps.
fn own_severity(
    scores: &[SeverityScore],
    database: &[Option<&str>],
    urgency: Option<&str>,
) -> Result<SeverityInfo, Scores> {
    let v2 = first_score(scores, "CVSS_V2");
    let v3 = first_score(scores, "CVSS_V3");
    let v4 = first_score(scores, "CVSS_V4");
    let info = |level, source: &str| SeverityInfo {
        level,
        source: source.to_owned(),
        cvss_v2: v2,
        cvss_v3: v3,
        cvss_v4: v4,
    };
    if let Some(level) = urgency.and_then(debian_level) {
        return Ok(info(level, "debian_urgency"));
    }
    if let Some(level) = scores
        .iter()
        .filter(|s| s.kind == "Ubuntu")
        .find_map(|s| ubuntu_level(&s.score))
    {
        return Ok(info(level, "ubuntu_priority"));
    }
    if let Some(s) = v3 {
        return Ok(info(Severity::from_cvss(s), "cvss_v3"));
    }
    if let Some(s) = v4 {
        return Ok(info(Severity::from_cvss(s), "cvss_v4"));
    }
    if let Some(level) = database.iter().flatten().find_map(|s| ghsa_level(s)) {
        return Ok(info(level, "ghsa"));
    }
    Err((v2, v3, v4))
}

/// Step 4: each CVE's rating for this package (the Debian tracker's for a Debian package, else
/// NVD's), the highest deciding. The record's own scores stay for display; without any, the
/// deciding CVE's NVD scores are shown.
fn from_ratings(
    affected: &AffectedPackage,
    ratings: &[CveRating],
    (v2, v3, v4): Scores,
) -> Option<SeverityInfo> {
    let codename = match affected.ecosystem.split_once(':') {
        Some(("Debian", release)) => debian_codename(release),
        _ if affected.ecosystem == "Debian" => Some("sid"),
        _ => None,
    };
    let tracker = |cve: &str, release: &str| {
        ratings.iter().find(|r| {
            r.source == RatingSource::DebianTracker
                && r.cve == cve
                && r.package == affected.name
                && r.release == release
        })
    };
    let nvd = |cve: &str| {
        ratings
            .iter()
            .find(|r| r.source == RatingSource::Nvd && r.cve == cve)
    };
    let mut cves: Vec<&str> = ratings.iter().map(|r| r.cve.as_str()).collect();
    cves.sort_unstable();
    cves.dedup();
    let (cve, rating) = cves
        .into_iter()
        .filter_map(|cve| {
            let distribution =
                codename.and_then(|release| tracker(cve, release).or_else(|| tracker(cve, "sid")));
            distribution.or_else(|| nvd(cve)).map(|r| (cve, r))
        })
        // The first of the highest: `max_by` would keep the last.
        .fold(None::<(&str, &CveRating)>, |best, next| match best {
            Some(b) if b.1.level >= next.1.level => Some(b),
            _ => Some(next),
        })?;
    let shown = if v2.is_some() || v3.is_some() || v4.is_some() {
        (v2, v3)
    } else {
        nvd(cve).map_or((None, None), |n| (n.cvss_v2, n.cvss_v3))
    };
    Some(SeverityInfo {
        level: rating.level,
        source: format!("{}:{cve}", rating.source.as_str()),
        cvss_v2: shown.0,
        cvss_v3: shown.1,
        cvss_v4: v4,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scanner::advisories::osv::{parse_record, parse_records, parse_value};
    use crate::scanner::advisories::testdata;

    fn record(rel: &str) -> Advisory {
        parse_record(&testdata::read_bytes(&format!("osv/records/{rel}"))).unwrap()
    }

    fn first(a: &Advisory) -> SeverityInfo {
        resolve(a, &a.affected[0], None)
    }

    #[test]
    fn ghsa_with_cvss_v3() {
        // GHSA-9v2f-6vcg-3hgv: CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H, database severity
        // CRITICAL; the vector decides.
        let a = record("ghsa/osv-linter-testdata/GHSA-9v2f-6vcg-3hgv.json");
        let s = first(&a);
        assert_eq!(s.level, Severity::Critical);
        assert_eq!(s.source, "cvss_v3");
        assert_eq!(s.cvss_v3, Some(9.8));
        assert_eq!(s.cvss_v2, None);
    }

    #[test]
    fn cvss_v4_only() {
        // RUSTSEC-2024-0445: CVSS:4.0/AV:N/AC:L/AT:P/PR:L/UI:N/VC:L/VI:L/VA:L/SC:N/SI:N/SA:N.
        let a = record("crates.io/RUSTSEC-2024-0445.json");
        let s = first(&a);
        assert_eq!(s.source, "cvss_v4");
        assert_eq!(s.cvss_v3, None);
        let v4 = s.cvss_v4.unwrap();
        assert_eq!(s.level, Severity::from_cvss(v4));
        // GitHub shows GHSA-hxf5-99xg-86hw as Low 2.3 as well.
        assert_eq!(v4, 2.3);
        assert_eq!(s.level, Severity::Low);
    }

    #[test]
    fn v3_preferred_over_v4_and_v2_kept() {
        let bundle = parse_records(&testdata::read_bytes(
            "osv/records/maven/bundle-osv-scalibr-zeppelin-server-vulnerabilities.json",
        ));
        let both = bundle
            .iter()
            .flatten()
            .find(|a| {
                a.meta.severity.scores.iter().any(|s| s.kind == "CVSS_V4")
                    && a.meta.severity.scores.iter().any(|s| s.kind == "CVSS_V3")
            })
            .unwrap();
        let s = first(both);
        assert_eq!(s.source, "cvss_v3");
        assert!(s.cvss_v3.is_some() && s.cvss_v4.is_some());

        let v2 = parse_value(serde_json::json!({
            "id": "X-1", "modified": "2024-01-01T00:00:00Z",
            "severity": [{"type": "CVSS_V2", "score": "AV:N/AC:L/Au:N/C:P/I:P/A:P"}],
            "affected": [{"package": {"ecosystem": "PyPI", "name": "x"}, "versions": ["1"]}]
        }))
        .unwrap();
        let s = first(&v2);
        assert_eq!(s.cvss_v2, Some(7.5));
        assert_eq!((s.level, s.source.as_str()), (Severity::Medium, "default"));
    }

    #[test]
    fn debian_urgency_from_osv_scanner_input() {
        // osv-scanner's filter test input embeds full Debian CVE records with urgencies.
        let input = testdata::read_json("golden/osv-scanner/filter-some-input.json");
        let mut seen = Vec::new();
        for result in input["results"].as_array().unwrap() {
            for package in result["packages"].as_array().unwrap() {
                for vuln in package["vulnerabilities"].as_array().unwrap() {
                    let a = parse_value(vuln.clone()).unwrap();
                    if a.meta.id.starts_with("CVE-") {
                        seen.push((a.meta.id.clone(), a.affected[0].urgency.clone(), first(&a)));
                    }
                }
            }
        }
        let (id, urgency, s) = seen.iter().find(|(id, ..)| id == "CVE-2024-1013").unwrap();
        assert_eq!(
            (id.as_str(), urgency.as_deref()),
            ("CVE-2024-1013", Some("unimportant"))
        );
        assert_eq!(
            (s.level, s.source.as_str()),
            (Severity::Low, "debian_urgency")
        );
        let (_, urgency, s) = seen.iter().find(|(id, ..)| id == "CVE-2024-3847").unwrap();
        assert_eq!(urgency.as_deref(), Some("low"));
        assert_eq!(
            (s.level, s.source.as_str()),
            (Severity::Low, "debian_urgency")
        );
    }

    #[test]
    fn ghsa_database_severity_and_ubuntu_priority() {
        let input = testdata::read_json("golden/osv-scanner/filter-some-input.json");
        let ghsa = input["results"][0]["packages"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|p| p["vulnerabilities"].as_array().unwrap().iter())
            .find(|v| v["id"] == "GHSA-mc8h-8q98-g5hr")
            .unwrap();
        let a = parse_value(ghsa.clone()).unwrap();
        let s = first(&a);
        if a.meta.severity.scores.is_empty() {
            assert_eq!((s.level, s.source.as_str()), (Severity::Low, "ghsa"));
        }

        let u = record("ubuntu/UBUNTU-CVE-2025-38094.json");
        let s = first(&u);
        assert_eq!(
            (s.level, s.source.as_str()),
            (Severity::Medium, "ubuntu_priority")
        );

        // A Go entry's "urgency" is not Debian's.
        let go = parse_value(serde_json::json!({
            "id": "X-1", "modified": "2024-01-01T00:00:00Z",
            "affected": [{"package": {"ecosystem": "Go", "name": "x"}, "versions": ["1"],
                          "ecosystem_specific": {"urgency": "high"}}]
        }))
        .unwrap();
        assert_eq!(first(&go).source, "default");
    }

    #[test]
    fn alias_then_default() {
        // DSA records carry no severity at all.
        let entries = testdata::zip_entries("osv/debian-dsa-dla.zip");
        let (_, bytes) = entries
            .iter()
            .find(|(n, _)| n == "DSA-5380-1.json")
            .unwrap();
        let dsa = parse_record(bytes).unwrap();
        assert!(needs_alias(&dsa.meta.severity, &dsa.affected[0]));
        let s = first(&dsa);
        assert_eq!((s.level, s.source.as_str()), (Severity::Medium, "default"));

        let alias = AliasSeverity {
            id: "CVE-2023-1393".to_owned(),
            severity: SeverityInfo {
                level: Severity::High,
                source: "cvss_v3".to_owned(),
                cvss_v2: None,
                cvss_v3: Some(7.8),
                cvss_v4: None,
            },
        };
        let s = resolve(&dsa, &dsa.affected[0], Some(&alias));
        assert_eq!(s.level, Severity::High);
        assert_eq!(s.source, "alias:CVE-2023-1393");
        assert_eq!(s.cvss_v3, Some(7.8));
        // An alias that itself only has the default contributes nothing.
        let weak = AliasSeverity {
            id: "CVE-X".into(),
            severity: SeverityInfo {
                source: "default".into(),
                ..alias.severity.clone()
            },
        };
        assert_eq!(
            resolve(&dsa, &dsa.affected[0], Some(&weak)).source,
            "default"
        );
        // The record's own severity beats the alias.
        let ghsa = record("ghsa/osv-linter-testdata/GHSA-9v2f-6vcg-3hgv.json");
        assert_eq!(
            resolve(&ghsa, &ghsa.affected[0], Some(&alias)).source,
            "cvss_v3"
        );
        assert_eq!(resolve_record(&ghsa).level, Severity::Critical);
    }

    fn bundle_record(name: &str) -> Advisory {
        let entries = testdata::zip_entries("osv/debian-dsa-dla.zip");
        let (_, bytes) = entries.iter().find(|(n, _)| n == name).unwrap();
        parse_record(bytes).unwrap()
    }

    /// The real tracker and NVD excerpts' ratings of the record's CVE ids.
    fn fixture_ratings(a: &Advisory) -> Vec<CveRating> {
        use crate::scanner::advisories::ratings::{parse_debian_tracker, parse_nvd};
        let tracker = parse_debian_tracker(
            testdata::read_bytes("severity/debian-tracker-excerpt.json").as_slice(),
        )
        .unwrap();
        let gz = testdata::read_bytes("severity/nvd-cve-excerpt.json.gz");
        let nvd = parse_nvd(flate2::read::GzDecoder::new(gz.as_slice())).unwrap();
        tracker
            .into_iter()
            .chain(nvd.ratings)
            .filter(|r| a.meta.aliases.contains(&r.cve))
            .collect()
    }

    #[test]
    fn tracker_urgency_of_a_cve_alias_decides_before_nvd() {
        // DLA-3182-1 (vim, Debian:10) aliases 41 CVEs; of those the excerpts rate CVE-2021-3984:
        // the tracker says `unimportant` (on the sid line), NVD 7.8.
        let dla = bundle_record("DLA-3182-1.json");
        let ratings = fixture_ratings(&dla);
        assert_eq!(ratings.len(), 2, "{ratings:#?}");
        let s = resolve_parts(&dla.meta.severity, &dla.affected[0], None, &ratings);
        assert_eq!(
            (s.level, s.source.as_str()),
            (Severity::Low, "debian-tracker:CVE-2021-3984")
        );
        // NVD's score is shown beside the distribution's rating.
        assert_eq!(s.cvss_v3, Some(7.8));
        // Without the tracker, NVD decides.
        let nvd_only: Vec<CveRating> = ratings
            .iter()
            .filter(|r| r.source == RatingSource::Nvd)
            .cloned()
            .collect();
        let s = resolve_parts(&dla.meta.severity, &dla.affected[0], None, &nvd_only);
        assert_eq!(
            (s.level, s.source.as_str()),
            (Severity::High, "nvd:CVE-2021-3984")
        );
        // The tracker's rating is for vim, not for another package of the same CVE.
        let mut other = dla.affected[0].clone();
        other.name = "neovim".into();
        assert_eq!(
            resolve_parts(&dla.meta.severity, &other, None, &ratings).source,
            "nvd:CVE-2021-3984"
        );
        // A lent alias comes after both.
        let alias = AliasSeverity {
            id: "CVE-2021-3984".into(),
            severity: SeverityInfo {
                level: Severity::Critical,
                source: "cvss_v3".into(),
                cvss_v2: None,
                cvss_v3: Some(9.8),
                cvss_v4: None,
            },
        };
        let s = resolve_parts(
            &dla.meta.severity,
            &dla.affected[0],
            Some(&alias),
            &nvd_only,
        );
        assert_eq!(s.source, "nvd:CVE-2021-3984");
    }

    #[test]
    fn release_rating_before_sid_and_highest_cve_wins() {
        let dla = bundle_record("DLA-3182-1.json");
        let rating = |cve: &str, source, release: &str, level| CveRating {
            cve: cve.into(),
            source,
            release: release.into(),
            package: if source == RatingSource::Nvd {
                ""
            } else {
                "vim"
            }
            .into(),
            level,
            rating: "test".into(),
            cvss_v2: None,
            cvss_v3: None,
        };
        let [a, b] = [&dla.meta.aliases[0], &dla.meta.aliases[1]];
        let tracker = RatingSource::DebianTracker;
        // buster (Debian:10) has its own urgency: it beats the sid one.
        let ratings = vec![
            rating(a, tracker, "sid", Severity::Low),
            rating(a, tracker, "buster", Severity::High),
            rating(a, tracker, "bookworm", Severity::Low),
        ];
        let s = resolve_parts(&dla.meta.severity, &dla.affected[0], None, &ratings);
        assert_eq!(
            (s.level, s.source),
            (Severity::High, format!("debian-tracker:{a}"))
        );
        // One CVE rated Low by the tracker, another High by NVD only: the highest decides.
        let ratings = vec![
            rating(a, tracker, "sid", Severity::Low),
            rating(a, RatingSource::Nvd, "", Severity::Critical),
            rating(b, RatingSource::Nvd, "", Severity::High),
        ];
        let s = resolve_parts(&dla.meta.severity, &dla.affected[0], None, &ratings);
        assert_eq!((s.level, s.source), (Severity::High, format!("nvd:{b}")));
        // Ties: the smallest CVE id.
        let ratings = vec![
            rating(b, RatingSource::Nvd, "", Severity::High),
            rating(a, RatingSource::Nvd, "", Severity::High),
        ];
        let first = a.min(b);
        let s = resolve_parts(&dla.meta.severity, &dla.affected[0], None, &ratings);
        assert_eq!(s.source, format!("nvd:{first}"));
        // A tracker rating means nothing for a package outside Debian.
        let mut alpine = dla.affected[0].clone();
        alpine.ecosystem = "Alpine:v3.18".into();
        let ratings = vec![rating(a, tracker, "sid", Severity::High)];
        assert_eq!(
            resolve_parts(&dla.meta.severity, &alpine, None, &ratings).source,
            "default"
        );
    }

    #[test]
    fn distribution_rating_before_the_records_cvss() {
        // An Ubuntu record with a priority and a CVSS vector: the priority decides (vendor first).
        let u = parse_value(serde_json::json!({
            "id": "UBUNTU-CVE-2099-1", "modified": "2024-01-01T00:00:00Z",
            "severity": [{"type": "CVSS_V3", "score": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"},
                         {"type": "Ubuntu", "score": "low"}],
            "affected": [{"package": {"ecosystem": "Ubuntu:22.04:LTS", "name": "x"}, "versions": ["1"]}]
        }))
        .unwrap();
        let s = first(&u);
        assert_eq!(
            (s.level, s.source.as_str()),
            (Severity::Low, "ubuntu_priority")
        );
        assert_eq!(s.cvss_v3, Some(9.8));
        // A Red Hat record's own CVSS is Red Hat's rating; NVD does not override it.
        let rh = record("redhat/RHSA-2024_4546.json");
        let nvd = CveRating {
            cve: rh.meta.upstream[0].clone(),
            source: RatingSource::Nvd,
            release: String::new(),
            package: String::new(),
            level: Severity::Low,
            rating: "x".into(),
            cvss_v2: None,
            cvss_v3: Some(1.0),
        };
        let s = resolve_parts(&rh.meta.severity, &rh.affected[0], None, &[nvd]);
        assert_eq!((s.level, s.source.as_str()), (Severity::High, "cvss_v3"));
    }

    #[test]
    fn per_package_severity_overrides() {
        let a = parse_value(serde_json::json!({
            "id": "X-1", "modified": "2024-01-01T00:00:00Z",
            "severity": [{"type": "CVSS_V3", "score": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"}],
            "affected": [
                {"package": {"ecosystem": "PyPI", "name": "a"}, "versions": ["1"]},
                {"package": {"ecosystem": "PyPI", "name": "b"}, "versions": ["1"],
                 "severity": [{"type": "CVSS_V3", "score": "CVSS:3.1/AV:L/AC:H/PR:H/UI:R/S:U/C:L/I:N/A:N"}]}
            ]
        }))
        .unwrap();
        assert_eq!(resolve(&a, &a.affected[0], None).level, Severity::Critical);
        let b = resolve(&a, &a.affected[1], None);
        assert_eq!(b.level, Severity::Low);
        assert_eq!(b.cvss_v3, Some(1.8));
    }

    #[test]
    fn levels() {
        assert_eq!(debian_level("low**"), Some(Severity::Low));
        assert_eq!(debian_level("not yet assigned"), None);
        assert_eq!(debian_level("end-of-life"), None);
        assert_eq!(ubuntu_level("negligible"), Some(Severity::Low));
        assert_eq!(ubuntu_level("untriaged"), None);
        assert_eq!(ghsa_level("MODERATE"), Some(Severity::Medium));
        let json = serde_json::to_string(&SeverityInfo {
            level: Severity::Critical,
            source: "cvss_v3".into(),
            cvss_v2: None,
            cvss_v3: Some(9.8),
            cvss_v4: None,
        })
        .unwrap();
        assert!(json.contains("\"level\":\"Critical\""), "{json}");
        let back: SeverityInfo = serde_json::from_str(&json).unwrap();
        assert_eq!(back.level, Severity::Critical);
    }
}
