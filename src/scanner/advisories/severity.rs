//! Severity of a finding, decided once a package is found affected; the first rule that gives a
//! level wins:
//!
//! 1. the CVSS v3 vector, else the CVSS v4 vector, scored with the `cvss` crate →
//!    [`Severity::from_cvss`] (source `cvss_v3` / `cvss_v4`). The affected entry's own
//!    `severity[]` replaces the record's when present. A CVSS v2 base score is kept for display
//!    but never decides the level.
//! 2. database/ecosystem-specific severity: `database_specific.severity` (GHSA: LOW, MODERATE,
//!    HIGH, CRITICAL; source `ghsa`), the Debian security tracker's
//!    `ecosystem_specific.urgency` (unimportant/low → Low, medium → Medium, high → High; "not yet
//!    assigned", "end-of-life" decide nothing; source `debian_urgency`), the Ubuntu priority
//!    (severity type `Ubuntu`: negligible/low → Low, medium, high, critical; source
//!    `ubuntu_priority`).
//! 3. an alias's severity, supplied by the caller ([`AliasSeverity`]; source `alias:<id>`).
//! 4. Medium, source `default`.

use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::domain::Severity;

use super::ecosystem::base;
use super::osv::{Advisory, AffectedPackage, SeverityData, SeverityScore};

/// A resolved severity.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SeverityInfo {
    #[serde(with = "severity_serde")]
    pub level: Severity,
    /// `cvss_v3`, `cvss_v4`, `ghsa`, `debian_urgency`, `ubuntu_priority`, `alias:<id>`,
    /// `default`.
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

/// `Severity` as its display string ("High") in JSON.
pub mod severity_serde {
    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    use crate::domain::Severity;

    pub fn serialize<S: Serializer>(s: &Severity, ser: S) -> Result<S::Ok, S::Error> {
        ser.serialize_str(s.as_str())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(de: D) -> Result<Severity, D::Error> {
        let s = String::deserialize(de)?;
        Severity::parse(&s).ok_or_else(|| D::Error::custom(format!("unknown severity {s:?}")))
    }
}

/// Base score of a severity entry: a CVSS vector of the given version, or a bare number.
fn score(entry: &SeverityScore) -> Option<f64> {
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

fn debian_level(s: &str) -> Option<Severity> {
    // The tracker marks guessed urgencies with a trailing "**" ("low**").
    match s.trim().trim_end_matches('*').to_ascii_lowercase().as_str() {
        "unimportant" | "low" => Some(Severity::Low),
        "medium" => Some(Severity::Medium),
        "high" => Some(Severity::High),
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

/// Resolves the severity of one affected entry of a record (see the module docs).
pub fn resolve(
    advisory: &Advisory,
    affected: &AffectedPackage,
    alias: Option<&AliasSeverity>,
) -> SeverityInfo {
    resolve_parts(&advisory.meta.severity, affected, alias)
}

/// The record-level severity (no affected entry's override): what an alias record contributes.
pub fn resolve_record(advisory: &Advisory) -> SeverityInfo {
    resolve_scores(
        &advisory.meta.severity.scores,
        &[advisory.meta.severity.database_severity.as_deref()],
        None,
        None,
    )
    .unwrap_or_else(|(v2, v3, v4)| default(v2, v3, v4))
}

/// [`resolve`] from the stored parts (what a [`super::matcher::Candidate`] carries).
pub fn resolve_parts(
    record: &SeverityData,
    affected: &AffectedPackage,
    alias: Option<&AliasSeverity>,
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
    match resolve_scores(
        scores,
        &[
            affected.database_severity.as_deref(),
            record.database_severity.as_deref(),
        ],
        urgency,
        alias,
    ) {
        Ok(info) => info,
        Err((v2, v3, v4)) => default(v2, v3, v4),
    }
}

/// True when the record and entry decide nothing themselves, so an alias's severity would be
/// used: the store should then look up the advisory's aliases / upstream ids.
pub fn needs_alias(record: &SeverityData, affected: &AffectedPackage) -> bool {
    resolve_parts(record, affected, None).is_default()
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

/// Steps 1–3; `Err` carries the scores for the default.
fn resolve_scores(
    scores: &[SeverityScore],
    database: &[Option<&str>],
    urgency: Option<&str>,
    alias: Option<&AliasSeverity>,
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
    if let Some(s) = v3 {
        return Ok(info(Severity::from_cvss(s), "cvss_v3"));
    }
    if let Some(s) = v4 {
        return Ok(info(Severity::from_cvss(s), "cvss_v4"));
    }
    if let Some(level) = database.iter().flatten().find_map(|s| ghsa_level(s)) {
        return Ok(info(level, "ghsa"));
    }
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
    if let Some(alias) = alias.filter(|a| !a.severity.is_default()) {
        return Ok(SeverityInfo {
            level: alias.severity.level,
            source: format!("alias:{}", alias.id),
            cvss_v2: v2.or(alias.severity.cvss_v2),
            cvss_v3: alias.severity.cvss_v3,
            cvss_v4: alias.severity.cvss_v4,
        });
    }
    Err((v2, v3, v4))
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
