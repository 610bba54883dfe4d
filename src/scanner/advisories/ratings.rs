//! Severity ratings of CVE ids published apart from the OSV records, and the parsers of the files
//! that carry them:
//!
//! * the Debian security tracker's JSON export (`{source package: {CVE: {releases: {codename:
//!   {status, fixed_version, urgency}}}}}`, source `debian-tracker`): one rating per CVE, source
//!   package and release codename whose urgency is a level (`unimportant` and `low` → Low,
//!   `medium` → Medium, `high` → High; a trailing `**`, the tracker's mark of a guessed urgency,
//!   is ignored; `not yet assigned`, `end-of-life` and anything else rate nothing);
//! * NVD's CVE JSON 2.0 (an API page or a feed file, `vulnerabilities[].cve.metrics`, source
//!   `nvd`): one rating per CVE, from the first of `cvssMetricV31`, `cvssMetricV30`,
//!   `cvssMetricV2` that has a metric, NVD's own (`type: Primary`) preferred over a secondary
//!   one. A v3 score rates by the CVSS bands ([`Severity::from_cvss`]); a CVE NVD scored with v2
//!   only rates by NVD's v2 bands (below 4 Low, below 7 Medium, else High: v2 has no Critical).
//!
//! Both files are read as a stream (the tracker's export is 50 MB and more, NVD's yearly feeds
//! are as large): only the ratings are kept, one source package of the tracker at a time.
//! How a finding uses the ratings is [`super::severity`]'s business.

use std::collections::HashMap;
use std::fmt;
use std::io::Read;

use chrono::{DateTime, NaiveDateTime, Utc};
use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};

use crate::domain::Severity;

use crate::domain::severity_serde;

/// Where a rating comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum RatingSource {
    #[serde(rename = "debian-tracker")]
    DebianTracker,
    #[serde(rename = "nvd")]
    Nvd,
}

impl RatingSource {
    pub const ALL: [RatingSource; 2] = [Self::DebianTracker, Self::Nvd];

    /// The source's name, as stored and as shown in `severitySource` (`nvd:CVE-…`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::DebianTracker => "debian-tracker",
            Self::Nvd => "nvd",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|v| v.as_str() == s)
    }
}

/// One rating of one CVE by one source.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CveRating {
    pub cve: String,
    pub source: RatingSource,
    /// The distribution release it rates for (a Debian codename: `bookworm`, `sid`); empty when
    /// it rates the CVE everywhere (NVD).
    pub release: String,
    /// The source package it rates; empty when it rates the CVE for every package (NVD).
    pub package: String,
    #[serde(with = "severity_serde")]
    pub level: Severity,
    /// The source's own words: the urgency (`unimportant`) or the CVSS vector.
    pub rating: String,
    pub cvss_v2: Option<f64>,
    pub cvss_v3: Option<f64>,
}

/// The Debian release codename of an OSV `Debian:<major>` release (`12` → `bookworm`);
/// `unstable` and `sid` are `sid`.
pub fn debian_codename(release: &str) -> Option<&'static str> {
    let major = release.split('.').next().unwrap_or(release);
    Some(match major {
        "unstable" | "sid" => "sid",
        "4" => "etch",
        "5" => "lenny",
        "6" => "squeeze",
        "7" => "wheezy",
        "8" => "jessie",
        "9" => "stretch",
        "10" => "buster",
        "11" => "bullseye",
        "12" => "bookworm",
        "13" => "trixie",
        "14" => "forky",
        "15" => "duke",
        _ => return None,
    })
}

/// A Debian security tracker urgency as a level (see the module docs); shared by the OSV
/// records' `ecosystem_specific.urgency` and the tracker's export.
pub fn debian_level(s: &str) -> Option<Severity> {
    // The tracker marks guessed urgencies with a trailing "**" ("low**").
    match s.trim().trim_end_matches('*').to_ascii_lowercase().as_str() {
        "unimportant" | "low" => Some(Severity::Low),
        "medium" => Some(Severity::Medium),
        "high" => Some(Severity::High),
        _ => None,
    }
}

/// Reads the Debian security tracker's JSON export. An error says what was wrong; nothing is
/// returned then.
pub fn parse_debian_tracker(reader: impl Read) -> Result<Vec<CveRating>, String> {
    let mut out = Vec::new();
    each_debian_tracker_rating(reader, &mut |r| out.push(r))?;
    Ok(out)
}

/// [`parse_debian_tracker`] handing each rating over as it is read, so the caller keeps them in
/// its own form; on an error the caller must drop what it was given.
pub fn each_debian_tracker_rating(
    reader: impl Read,
    rating: &mut dyn FnMut(CveRating),
) -> Result<(), String> {
    let mut packages = 0u64;
    let mut de = serde_json::Deserializer::from_reader(reader);
    de.deserialize_map(TrackerVisitor {
        rating,
        packages: &mut packages,
    })
    .and_then(|()| de.end())
    .map_err(|e| format!("not a Debian security tracker export: {e}"))?;
    if packages == 0 {
        return Err("not a Debian security tracker export: it names no source package".to_owned());
    }
    Ok(())
}

struct TrackerVisitor<'a> {
    rating: &'a mut dyn FnMut(CveRating),
    packages: &'a mut u64,
}

#[derive(Deserialize)]
struct TrackerCve {
    #[serde(default)]
    releases: HashMap<String, TrackerRelease>,
}

#[derive(Deserialize)]
struct TrackerRelease {
    #[serde(default)]
    urgency: Option<String>,
}

impl<'de> Visitor<'de> for TrackerVisitor<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object of source packages")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        // One package's CVEs at a time: the largest (linux) holds some ten thousand.
        while let Some(package) = map.next_key::<String>()? {
            let cves: HashMap<String, TrackerCve> = map.next_value()?;
            *self.packages += 1;
            for (cve, entry) in cves {
                if !cve.starts_with("CVE-") {
                    // TEMP-… ids of issues without a CVE yet: no finding names them.
                    continue;
                }
                for (release, state) in entry.releases {
                    let Some(urgency) = state.urgency else {
                        continue;
                    };
                    let Some(level) = debian_level(&urgency) else {
                        continue;
                    };
                    (self.rating)(CveRating {
                        cve: cve.clone(),
                        source: RatingSource::DebianTracker,
                        release,
                        package: package.clone(),
                        level,
                        rating: urgency,
                        cvss_v2: None,
                        cvss_v3: None,
                    });
                }
            }
        }
        Ok(())
    }
}

/// NVD ratings of a file, and the newest `lastModified` it states.
#[derive(Debug, Default)]
pub struct NvdRatings {
    pub ratings: Vec<CveRating>,
    pub newest: Option<DateTime<Utc>>,
}

/// Reads NVD CVE JSON 2.0 (an API response page or a feed file).
pub fn parse_nvd(reader: impl Read) -> Result<NvdRatings, String> {
    let mut out = NvdRatings::default();
    let mut seen = false;
    let mut de = serde_json::Deserializer::from_reader(reader);
    de.deserialize_map(NvdVisitor {
        out: &mut out,
        seen: &mut seen,
    })
    .and_then(|()| de.end())
    .map_err(|e| format!("not NVD CVE JSON 2.0: {e}"))?;
    if !seen {
        return Err("not NVD CVE JSON 2.0: no `vulnerabilities` array".to_owned());
    }
    Ok(out)
}

struct NvdVisitor<'a> {
    out: &'a mut NvdRatings,
    seen: &'a mut bool,
}

impl<'de> Visitor<'de> for NvdVisitor<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an NVD CVE API 2.0 object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(key) = map.next_key::<String>()? {
            if key == "vulnerabilities" {
                *self.seen = true;
                map.next_value_seed(NvdItems { out: self.out })?;
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(())
    }
}

/// The `vulnerabilities` array, read one item at a time.
struct NvdItems<'a> {
    out: &'a mut NvdRatings,
}

impl<'de> DeserializeSeed<'de> for NvdItems<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, de: D) -> Result<(), D::Error> {
        de.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for NvdItems<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an array of vulnerabilities")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while let Some(item) = seq.next_element::<NvdItem>()? {
            let cve = item.cve;
            if let Some(modified) = cve.last_modified.as_deref().and_then(nvd_time) {
                self.out.newest = self.out.newest.max(Some(modified));
            }
            if let Some(rating) = nvd_rating(&cve) {
                self.out.ratings.push(rating);
            }
        }
        Ok(())
    }
}

#[derive(Deserialize)]
struct NvdItem {
    cve: NvdCve,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct NvdCve {
    id: String,
    #[serde(default)]
    last_modified: Option<String>,
    #[serde(default)]
    metrics: NvdMetrics,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct NvdMetrics {
    #[serde(default)]
    cvss_metric_v31: Vec<NvdMetric>,
    #[serde(default)]
    cvss_metric_v30: Vec<NvdMetric>,
    #[serde(default)]
    cvss_metric_v2: Vec<NvdMetric>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct NvdMetric {
    #[serde(default, rename = "type")]
    kind: Option<String>,
    cvss_data: NvdCvssData,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct NvdCvssData {
    vector_string: String,
    base_score: f64,
}

/// NVD's own metric first, else the first secondary one; a score outside 0–10 is no score.
fn pick(metrics: &[NvdMetric]) -> Option<&NvdMetric> {
    let valid = || {
        metrics
            .iter()
            .filter(|m| (0.0..=10.0).contains(&m.cvss_data.base_score))
    };
    valid()
        .find(|m| m.kind.as_deref() == Some("Primary"))
        .or_else(|| valid().next())
}

fn nvd_rating(cve: &NvdCve) -> Option<CveRating> {
    if !cve.id.starts_with("CVE-") {
        return None;
    }
    let v3 = pick(&cve.metrics.cvss_metric_v31).or_else(|| pick(&cve.metrics.cvss_metric_v30));
    let v2 = pick(&cve.metrics.cvss_metric_v2);
    let (level, rating) = match (v3, v2) {
        (Some(m), _) => (
            Severity::from_cvss(m.cvss_data.base_score),
            &m.cvss_data.vector_string,
        ),
        (None, Some(m)) => (v2_level(m.cvss_data.base_score), &m.cvss_data.vector_string),
        (None, None) => return None,
    };
    Some(CveRating {
        cve: cve.id.clone(),
        source: RatingSource::Nvd,
        release: String::new(),
        package: String::new(),
        level,
        rating: rating.clone(),
        cvss_v2: v2.map(|m| m.cvss_data.base_score),
        cvss_v3: v3.map(|m| m.cvss_data.base_score),
    })
}

/// NVD's CVSS v2 severity bands.
fn v2_level(score: f64) -> Severity {
    match score {
        s if s >= 7.0 => Severity::High,
        s if s >= 4.0 => Severity::Medium,
        _ => Severity::Low,
    }
}

/// NVD's timestamps carry no zone (`2024-06-21T19:15:21.473`); they are UTC.
fn nvd_time(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .ok()
        .or_else(|| {
            NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f")
                .ok()
                .map(|t| t.and_utc())
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scanner::advisories::testdata;

    fn tracker() -> Vec<CveRating> {
        parse_debian_tracker(
            testdata::read_bytes("severity/debian-tracker-excerpt.json").as_slice(),
        )
        .unwrap()
    }

    fn nvd() -> NvdRatings {
        let gz = testdata::read_bytes("severity/nvd-cve-excerpt.json.gz");
        parse_nvd(flate2::read::GzDecoder::new(gz.as_slice())).unwrap()
    }

    #[test]
    fn tracker_excerpt_keeps_only_urgencies() {
        let ratings = tracker();
        // PROVENANCE.md: 9 release entries with an urgency (5 unimportant, 4 low), 136 "not yet
        // assigned".
        assert_eq!(ratings.len(), 9, "{ratings:#?}");
        let count = |word: &str| ratings.iter().filter(|r| r.rating == word).count();
        assert_eq!((count("unimportant"), count("low")), (5, 4));
        assert!(ratings.iter().all(|r| r.level == Severity::Low));
        let vim = ratings.iter().find(|r| r.cve == "CVE-2021-3984").unwrap();
        assert_eq!(
            (vim.package.as_str(), vim.release.as_str(), vim.source),
            ("vim", "sid", RatingSource::DebianTracker)
        );
        let wireshark = ratings.iter().find(|r| r.cve == "CVE-2018-16056").unwrap();
        assert_eq!(
            (wireshark.package.as_str(), wireshark.rating.as_str()),
            ("wireshark", "low")
        );
    }

    #[test]
    fn tracker_levels_and_refusals() {
        let json = br#"{"openssl": {
            "CVE-2099-0001": {"description": "x", "scope": "local", "releases": {
                "bookworm": {"status": "resolved", "fixed_version": "1", "urgency": "high"},
                "bullseye": {"status": "open", "urgency": "medium**"},
                "buster": {"status": "open", "urgency": "end-of-life"},
                "sid": {"status": "resolved", "urgency": "not yet assigned"}}},
            "TEMP-0000000-ABCDEF": {"releases": {"sid": {"urgency": "low"}}}}}"#;
        let mut ratings = parse_debian_tracker(json.as_slice()).unwrap();
        ratings.sort_by(|a, b| a.release.cmp(&b.release));
        let got: Vec<(&str, Severity)> = ratings
            .iter()
            .map(|r| (r.release.as_str(), r.level))
            .collect();
        assert_eq!(
            got,
            [("bookworm", Severity::High), ("bullseye", Severity::Medium)]
        );
        for bad in [
            &b"{}"[..],
            b"[]",
            b"{\"openssl\": {\"CVE-1\": ",
            b"{\"format\": \"NVD_CVE\"}",
        ] {
            let err = parse_debian_tracker(bad).unwrap_err();
            assert!(
                err.starts_with("not a Debian security tracker export"),
                "{err}"
            );
        }
    }

    #[test]
    fn nvd_excerpt_rates_every_scored_cve() {
        let parsed = nvd();
        // PROVENANCE.md: 76 CVEs, 45 with v3.x, 69 with v2; every one has a v3 or a v2 metric.
        assert_eq!(parsed.ratings.len(), 76);
        assert_eq!(
            parsed
                .ratings
                .iter()
                .filter(|r| r.cvss_v3.is_some())
                .count(),
            45
        );
        let by = |id: &str| parsed.ratings.iter().find(|r| r.cve == id).unwrap();
        // v3.1 primary, 7.8.
        let vim = by("CVE-2021-3984");
        assert_eq!(
            (vim.level, vim.cvss_v3, vim.cvss_v2),
            (Severity::High, Some(7.8), Some(6.8))
        );
        assert!(vim.rating.starts_with("CVSS:3.1/"), "{}", vim.rating);
        // Secondary 4.2 (GitLab) and primary 5.3 (NVD): NVD's decides.
        assert_eq!(by("CVE-2020-26421").cvss_v3, Some(5.3));
        // Only secondary v3.1 metrics: the first one.
        assert_eq!(by("CVE-2020-14593").cvss_v3, Some(7.4));
        // v2 only: NVD's v2 bands (7.5 is High, 9.3 stays High).
        let old = by("CVE-2004-2771");
        assert_eq!(
            (old.level, old.cvss_v3, old.cvss_v2),
            (Severity::High, None, Some(7.5))
        );
        assert_eq!(by("CVE-2011-3360").level, Severity::High);
        assert_eq!(by("CVE-2001-1593").level, Severity::Low);
        // v3.0 9.8.
        assert_eq!(by("CVE-2008-7313").level, Severity::Critical);
        assert_eq!(
            parsed.newest.unwrap().date_naive().to_string(),
            "2026-06-17",
            "PROVENANCE.md: lastModified values range up to 2026-06-17"
        );
    }

    #[test]
    fn nvd_refuses_what_is_not_nvd() {
        for bad in [
            &b"{}"[..],
            b"{\"CVE_Items\": []}",
            b"{\"vulnerabilities\": [{\"cve\": {\"id\": \"CVE-1\", \"metrics\": 3}}]}",
            b"{\"vulnerabilities\": [",
            b"[1, 2]",
        ] {
            let err = parse_nvd(bad).unwrap_err();
            assert!(err.starts_with("not NVD CVE JSON 2.0"), "{err}");
        }
        let empty = parse_nvd(&b"{\"vulnerabilities\": []}"[..]).unwrap();
        assert!(empty.ratings.is_empty());
    }

    #[test]
    fn codenames() {
        assert_eq!(debian_codename("12"), Some("bookworm"));
        assert_eq!(debian_codename("11"), Some("bullseye"));
        assert_eq!(debian_codename("10"), Some("buster"));
        assert_eq!(debian_codename("13"), Some("trixie"));
        assert_eq!(debian_codename("9"), Some("stretch"));
        assert_eq!(debian_codename("unstable"), Some("sid"));
        assert_eq!(debian_codename("99"), None);
    }
}
