//! OSV records (schema 1.x, JSON) parsed into [`Advisory`].
//!
//! Own serde structs rather than the `osv` crate (0.3.0): that crate deserializes
//! `package.ecosystem` into a closed enum, so one record naming an ecosystem it does not know
//! (`Root:Alpine:3.18`, `CleanStart`, `Azure Linux`, `TuxCare:…` — all valid in schema 1.7)
//! fails as a whole; it normalises the ecosystem string instead of keeping it as written; it
//! cannot say *why* a record is malformed (which event, which range); and it pulls `lazy-regex`
//! into the build. Here unknown fields are ignored, the ecosystem is kept verbatim, and every
//! rejection names the problem.
//!
//! Rejected (with a [`RecordError`] naming the field): malformed JSON, a missing or empty `id`,
//! a missing or unparsable `modified` (and an unparsable `published` / `withdrawn`), an affected
//! entry without a package (unless all its ranges are GIT ranges) or with a package lacking
//! ecosystem/name and no purl to derive them from, a range without type or with an unknown
//! type, a range without an `introduced` event (osv-linter R0001), a GIT range whose events
//! repeat a commit (R0002 "range-is-distinct", the `_invalid/nondistinct` case), a range mixing
//! `fixed` and `last_affected` (forbidden by the schema), and an event with zero or several keys.
//!
//! R0002 is not applied to ECOSYSTEM/SEMVER ranges: real records repeat a version there on
//! purpose (RustSec's `RUSTSEC-2024-0399` has `introduced 0.23.0, fixed 0.23.0` for "not
//! affected before 0.23.13"), and [`super::ranges`] orders equal-version events so that such a
//! pair is the empty interval osv.dev makes of it. Rejecting the record would drop a real
//! advisory.
//!
//! GIT ranges are not an error: they are dropped and counted in [`Advisory::ignored`], since a
//! commit range cannot be evaluated against an installed package version.

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::ecosystem::normalize_name;
use crate::domain::text;

/// Why a record was rejected; `id` when it could be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("OSV record {}: {reason}", id.as_deref().unwrap_or("(no id)"))]
pub struct RecordError {
    pub id: Option<String>,
    pub reason: String,
}

/// One `references[]` entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reference {
    /// `ADVISORY`, `WEB`, `FIX`, ... as written.
    pub kind: String,
    pub url: String,
}

/// One `severity[]` entry, as written (`CVSS_V2`, `CVSS_V3`, `CVSS_V4`, `Ubuntu`, ...).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeverityScore {
    pub kind: String,
    pub score: String,
}

/// The record-level inputs of severity resolution.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct SeverityData {
    /// The record's `severity[]`.
    pub scores: Vec<SeverityScore>,
    /// `database_specific.severity` (GHSA: LOW / MODERATE / HIGH / CRITICAL).
    pub database_severity: Option<String>,
}

/// A version event of a range.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Event {
    Introduced(String),
    Fixed(String),
    LastAffected(String),
    Limit(String),
}

impl Event {
    pub fn version(&self) -> &str {
        match self {
            Event::Introduced(v) | Event::Fixed(v) | Event::LastAffected(v) | Event::Limit(v) => v,
        }
    }
}

/// The evaluable range types (GIT ranges are dropped at parse time).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum RangeKind {
    Ecosystem,
    Semver,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Range {
    pub kind: RangeKind,
    /// As written in the record (sorting is the evaluator's job).
    pub events: Vec<Event>,
}

/// One `affected[]` entry with a package.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AffectedPackage {
    /// As written ("Debian:12", "Alpine:v3.18", "PyPI", ...).
    pub ecosystem: String,
    /// Normalised per ecosystem ([`normalize_name`]).
    pub name: String,
    pub purl: Option<String>,
    pub ranges: Vec<Range>,
    pub versions: Vec<String>,
    /// The entry's own `severity[]`, which overrides the record's.
    #[serde(default)]
    pub severity: Vec<SeverityScore>,
    /// `ecosystem_specific.urgency` (Debian security tracker urgency).
    #[serde(default)]
    pub urgency: Option<String>,
    /// `database_specific.severity` of this entry.
    #[serde(default)]
    pub database_severity: Option<String>,
}

/// The record-level fields of an advisory: what a match reads about it (everything but the
/// affected packages), and what its `advisories` row keeps as the `record` JSON, so this type's
/// serde form is a stored format.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AdvisoryMeta {
    pub id: String,
    pub modified: DateTime<Utc>,
    pub published: Option<DateTime<Utc>>,
    pub withdrawn: Option<DateTime<Utc>>,
    pub aliases: Vec<String>,
    /// `upstream[]` (Alpine and Ubuntu records name their CVE here rather than in `aliases`).
    pub upstream: Vec<String>,
    pub summary: Option<String>,
    pub details: Option<String>,
    pub references: Vec<Reference>,
    pub severity: SeverityData,
}

/// A parsed OSV record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Advisory {
    #[serde(flatten)]
    pub meta: AdvisoryMeta,
    pub related: Vec<String>,
    pub affected: Vec<AffectedPackage>,
    /// What was dropped and why ("GIT range ignored for <repo>").
    pub ignored: Vec<String>,
    /// The record as given.
    pub raw: Value,
}

impl Advisory {
    pub fn is_withdrawn(&self) -> bool {
        self.meta.withdrawn.is_some()
    }
}

// ---------------------------------------------------------------------------------------------
// Raw serde shapes. Lenient about absent/null fields, strict about types.

#[derive(Deserialize)]
struct RawRecord {
    id: Option<String>,
    published: Option<String>,
    withdrawn: Option<String>,
    #[serde(default)]
    aliases: Option<Vec<String>>,
    #[serde(default)]
    related: Option<Vec<String>>,
    #[serde(default)]
    upstream: Option<Vec<String>>,
    summary: Option<String>,
    details: Option<String>,
    #[serde(default)]
    severity: Option<Vec<RawSeverity>>,
    #[serde(default)]
    affected: Option<Vec<RawAffected>>,
    #[serde(default)]
    references: Option<Vec<RawReference>>,
    database_specific: Option<Value>,
}

#[derive(Deserialize)]
struct RawSeverity {
    #[serde(rename = "type")]
    kind: String,
    score: String,
}

#[derive(Deserialize)]
struct RawReference {
    #[serde(rename = "type")]
    kind: Option<String>,
    url: Option<String>,
}

#[derive(Deserialize)]
struct RawPackage {
    ecosystem: Option<String>,
    name: Option<String>,
    purl: Option<String>,
}

#[derive(Deserialize)]
struct RawAffected {
    package: Option<RawPackage>,
    #[serde(default)]
    severity: Option<Vec<RawSeverity>>,
    #[serde(default)]
    ranges: Option<Vec<RawRange>>,
    #[serde(default)]
    versions: Option<Vec<String>>,
    ecosystem_specific: Option<Value>,
    database_specific: Option<Value>,
}

#[derive(Deserialize)]
struct RawRange {
    #[serde(rename = "type")]
    kind: Option<String>,
    repo: Option<String>,
    #[serde(default)]
    events: Option<Vec<Map<String, Value>>>,
}

// ---------------------------------------------------------------------------------------------

/// What a record as imported says beyond what matching reads: its CWE ids (GitHub's
/// `database_specific.cwe_ids`) and its record-level `severity[]` entries.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecordExtras {
    pub cwe_ids: Vec<String>,
    pub severity: Vec<SeverityScore>,
}

/// The [`RecordExtras`] of a stored raw record; a record that does not parse has none.
pub fn record_extras(raw: &str) -> RecordExtras {
    #[derive(Deserialize)]
    struct Extras {
        #[serde(default)]
        severity: Option<Vec<RawSeverity>>,
        database_specific: Option<Value>,
    }
    let Ok(extras) = serde_json::from_str::<Extras>(raw) else {
        return RecordExtras::default();
    };
    let cwe_ids = extras
        .database_specific
        .as_ref()
        .and_then(|d| d.get("cwe_ids"))
        .and_then(Value::as_array)
        .map(|ids| {
            ids.iter()
                .filter_map(Value::as_str)
                .filter(|id| id.starts_with("CWE-"))
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    RecordExtras {
        cwe_ids,
        severity: scores(extras.severity),
    }
}

/// Parses one OSV record.
pub fn parse_record(bytes: &[u8]) -> Result<Advisory, RecordError> {
    let value: Value = serde_json::from_slice(bytes).map_err(|e| RecordError {
        id: None,
        reason: format!("malformed JSON: {e}"),
    })?;
    if value.is_array() {
        return Err(RecordError {
            id: None,
            reason: "expected one OSV record, found a JSON array (use parse_records)".to_owned(),
        });
    }
    parse_value(value)
}

/// Parses a single record, a JSON array of records, or `{"vulns": [...]}` (the OSV API's and
/// osv-scalibr's bundle shape). Malformed JSON is one error.
pub fn parse_records(bytes: &[u8]) -> Vec<Result<Advisory, RecordError>> {
    let value: Value = match serde_json::from_slice(bytes) {
        Ok(v) => v,
        Err(e) => {
            return vec![Err(RecordError {
                id: None,
                reason: format!("malformed JSON: {e}"),
            })];
        }
    };
    records_in(value)
}

/// [`parse_records`] for records written as YAML (the same schema; PyPA's advisory-database
/// publishes its records so). The YAML reader refuses alias bombs (a repetition limit) and deep
/// nesting, and keys that are not strings, as JSON would.
pub fn parse_yaml_records(bytes: &[u8]) -> Vec<Result<Advisory, RecordError>> {
    match serde_yaml_ng::from_slice::<Value>(bytes) {
        Ok(value) => records_in(value),
        Err(e) => vec![Err(RecordError {
            id: None,
            reason: format!("malformed YAML: {e}"),
        })],
    }
}

/// The records a parsed file holds: one record, an array of them, or `{"vulns": [...]}`.
fn records_in(value: Value) -> Vec<Result<Advisory, RecordError>> {
    match value {
        Value::Array(items) => items.into_iter().map(parse_value).collect(),
        Value::Object(mut map)
            if map.get("vulns").is_some_and(Value::is_array) && !map.contains_key("id") =>
        {
            match map.remove("vulns") {
                Some(Value::Array(items)) => items.into_iter().map(parse_value).collect(),
                _ => Vec::new(),
            }
        }
        other => vec![parse_value(other)],
    }
}

/// Parses one record already read as JSON.
pub fn parse_value(value: Value) -> Result<Advisory, RecordError> {
    let id = value
        .get("id")
        .and_then(Value::as_str)
        .filter(|s| !s.trim().is_empty())
        .map(str::to_owned);
    let fail = |reason: String| RecordError {
        id: id.clone(),
        reason,
    };
    if !value.is_object() {
        return Err(fail("not a JSON object".to_owned()));
    }
    // Refused whole on both backends (PostgreSQL could not store it), so the rest of the
    // import goes on without it.
    if let Some(path) = text::unstorable_at(&value) {
        return Err(fail(format!(
            "{} holds a NUL character (U+0000), which cannot be stored",
            path.escape_debug()
        )));
    }
    match value.get("id") {
        None | Some(Value::Null) => return Err(fail("missing id".to_owned())),
        Some(Value::String(s)) if s.trim().is_empty() => return Err(fail("empty id".to_owned())),
        Some(Value::String(_)) => {}
        Some(_) => return Err(fail("id is not a string".to_owned())),
    }
    let modified = match value.get("modified") {
        None | Some(Value::Null) => return Err(fail("missing modified".to_owned())),
        Some(Value::String(m)) => {
            timestamp(m).map_err(|e| fail(format!("unparsable modified {m:?}: {e}")))?
        }
        Some(other) => return Err(fail(format!("unparsable modified {other}"))),
    };
    let raw = RawRecord::deserialize(&value).map_err(|e| fail(format!("malformed record: {e}")))?;
    let id_str = raw.id.as_deref().unwrap_or_default();
    let published = raw
        .published
        .as_deref()
        .map(|p| timestamp(p).map_err(|e| fail(format!("unparsable published {p:?}: {e}"))))
        .transpose()?;
    let withdrawn = raw
        .withdrawn
        .as_deref()
        .map(|w| timestamp(w).map_err(|e| fail(format!("unparsable withdrawn {w:?}: {e}"))))
        .transpose()?;

    let mut ignored = Vec::new();
    let mut affected = Vec::new();
    for (i, entry) in raw.affected.unwrap_or_default().into_iter().enumerate() {
        if let Some(pkg) = parse_affected(i, entry, &mut ignored).map_err(&fail)? {
            affected.push(pkg);
        }
    }

    let references = raw
        .references
        .unwrap_or_default()
        .into_iter()
        .enumerate()
        .map(|(i, r)| match r.url {
            Some(url) => Ok(Reference {
                kind: r.kind.unwrap_or_default(),
                url,
            }),
            None => Err(fail(format!("references[{i}] has no url"))),
        })
        .collect::<Result<Vec<_>, _>>()?;

    let severity = SeverityData {
        scores: scores(raw.severity),
        database_severity: string_field(raw.database_specific.as_ref(), "severity"),
    };

    Ok(Advisory {
        meta: AdvisoryMeta {
            id: id_str.trim().to_owned(),
            modified,
            published,
            withdrawn,
            aliases: raw.aliases.unwrap_or_default(),
            upstream: raw.upstream.unwrap_or_default(),
            summary: raw.summary.filter(|s| !s.trim().is_empty()),
            details: raw.details.filter(|s| !s.trim().is_empty()),
            references,
            severity,
        },
        related: raw.related.unwrap_or_default(),
        affected,
        ignored,
        raw: value,
    })
}

/// RFC 3339 (OSV's timestamps); a missing offset is read as UTC, as osv.dev does.
pub fn timestamp(s: &str) -> Result<DateTime<Utc>, chrono::ParseError> {
    DateTime::parse_from_rfc3339(s)
        .map(|d| d.with_timezone(&Utc))
        .or_else(|e| {
            chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f")
                .map(|n| n.and_utc())
                .map_err(|_| e)
        })
}

fn scores(raw: Option<Vec<RawSeverity>>) -> Vec<SeverityScore> {
    raw.unwrap_or_default()
        .into_iter()
        .map(|s| SeverityScore {
            kind: s.kind,
            score: s.score,
        })
        .collect()
}

/// A string member of an object-valued field (`database_specific.severity`).
fn string_field(object: Option<&Value>, key: &str) -> Option<String> {
    object
        .and_then(|o| o.get(key))
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

fn parse_affected(
    i: usize,
    entry: RawAffected,
    ignored: &mut Vec<String>,
) -> Result<Option<AffectedPackage>, String> {
    let raw_ranges = entry.ranges.unwrap_or_default();
    let package = match entry.package {
        Some(p) => match (p.ecosystem, p.name) {
            (Some(eco), Some(name)) if !eco.trim().is_empty() && !name.trim().is_empty() => {
                Some((eco, name, p.purl))
            }
            (_, _) => match p.purl.as_deref().and_then(from_purl) {
                Some((eco, name)) => Some((eco, name, p.purl)),
                None => {
                    return Err(format!(
                        "affected[{i}].package has no ecosystem/name and no purl to derive them from"
                    ));
                }
            },
        },
        None => None,
    };

    let mut ranges = Vec::new();
    let mut git_ranges = 0;
    for (j, range) in raw_ranges.into_iter().enumerate() {
        let at = format!("affected[{i}].ranges[{j}]");
        let Some(kind) = range.kind else {
            return Err(format!("{at} has no type"));
        };
        let events = parse_events(&at, kind == "GIT", range.events.unwrap_or_default())?;
        match kind.as_str() {
            "GIT" => {
                let repo = range.repo.unwrap_or_else(|| "(no repo)".to_owned());
                ignored.push(format!("GIT range ignored for {repo}"));
                git_ranges += 1;
            }
            "ECOSYSTEM" => ranges.push(Range {
                kind: RangeKind::Ecosystem,
                events,
            }),
            "SEMVER" => ranges.push(Range {
                kind: RangeKind::Semver,
                events,
            }),
            other => return Err(format!("{at} has unknown range type {other:?}")),
        }
    }

    let versions = entry.versions.unwrap_or_default();
    let Some((ecosystem, name, purl)) = package else {
        // No package: acceptable only for an entry that is nothing but GIT ranges (CVE records);
        // those ranges were noted above and the entry is dropped.
        if ranges.is_empty() && git_ranges > 0 {
            return Ok(None);
        }
        return Err(format!(
            "affected[{i}] has no package (and no purl to derive one)"
        ));
    };
    let name = normalize_name(&ecosystem, name.trim());
    Ok(Some(AffectedPackage {
        urgency: string_field(entry.ecosystem_specific.as_ref(), "urgency"),
        database_severity: string_field(entry.database_specific.as_ref(), "severity"),
        severity: scores(entry.severity),
        ecosystem,
        name,
        purl,
        ranges,
        versions,
    }))
}

fn parse_events(at: &str, git: bool, raw: Vec<Map<String, Value>>) -> Result<Vec<Event>, String> {
    let mut events = Vec::with_capacity(raw.len());
    for (k, object) in raw.into_iter().enumerate() {
        if object.len() != 1 {
            let keys: Vec<&str> = object.keys().map(String::as_str).collect();
            return Err(format!(
                "{at}.events[{k}] must have exactly one key, has {}: {keys:?}",
                object.len()
            ));
        }
        let Some((key, value)) = object.into_iter().next() else {
            return Err(format!("{at}.events[{k}] is empty"));
        };
        let Value::String(version) = value else {
            return Err(format!("{at}.events[{k}].{key} is not a string"));
        };
        events.push(match key.as_str() {
            "introduced" => Event::Introduced(version),
            "fixed" => Event::Fixed(version),
            "last_affected" => Event::LastAffected(version),
            "limit" => Event::Limit(version),
            other => return Err(format!("{at}.events[{k}] has unknown key {other:?}")),
        });
    }
    if !events.iter().any(|e| matches!(e, Event::Introduced(_))) {
        return Err(format!("{at} has no introduced event"));
    }
    let mut seen = HashSet::new();
    for e in events.iter().filter(|_| git) {
        if !seen.insert(e.version()) {
            return Err(format!(
                "{at} is not distinct: overlapping event {:?}",
                e.version()
            ));
        }
    }
    let fixed = events.iter().any(|e| matches!(e, Event::Fixed(_)));
    let last = events.iter().any(|e| matches!(e, Event::LastAffected(_)));
    if fixed && last {
        return Err(format!(
            "{at} has both fixed and last_affected events (mutually exclusive)"
        ));
    }
    Ok(events)
}

/// `(ecosystem, name)` from a package URL, for the purl types whose OSV ecosystem needs no
/// release suffix.
fn from_purl(purl: &str) -> Option<(String, String)> {
    let rest = purl.strip_prefix("pkg:")?;
    let rest = rest.split(['?', '#']).next()?;
    let rest = rest.split('@').next()?;
    let (kind, path) = rest.split_once('/')?;
    let decode = |s: &str| {
        s.replace("%40", "@")
            .replace("%2F", "/")
            .replace("%3A", ":")
    };
    let (namespace, name) = match path.rsplit_once('/') {
        Some((ns, n)) => (Some(decode(ns)), decode(n)),
        None => (None, decode(path)),
    };
    if name.is_empty() {
        return None;
    }
    let ecosystem = match kind.to_ascii_lowercase().as_str() {
        "pypi" => "PyPI",
        "npm" => "npm",
        "cargo" => "crates.io",
        "golang" => "Go",
        "maven" => "Maven",
        "gem" => "RubyGems",
        "nuget" => "NuGet",
        "composer" => "Packagist",
        "hex" => "Hex",
        "pub" => "Pub",
        _ => return None,
    };
    let name = match (ecosystem, namespace) {
        ("Maven", Some(group)) => format!("{group}:{name}"),
        ("npm" | "Go" | "Packagist", Some(ns)) => format!("{ns}/{name}"),
        (_, _) => name,
    };
    Some((ecosystem.to_owned(), normalize_name(ecosystem, &name)))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::scanner::advisories::testdata;

    /// Reason categories for counting rejections.
    fn category(reason: &str) -> &'static str {
        if reason.starts_with("missing id") {
            "missing id"
        } else if reason.contains("has no introduced event") {
            "no introduced"
        } else if reason.contains("not distinct") {
            "not distinct"
        } else if reason.contains("has no package") {
            "no package"
        } else if reason.starts_with("malformed JSON") {
            "malformed JSON"
        } else if reason.starts_with("missing modified") || reason.contains("unparsable") {
            "timestamp"
        } else {
            "other"
        }
    }

    struct Tally {
        parsed: usize,
        rejected: BTreeMap<&'static str, usize>,
        git_ignored: usize,
        withdrawn: usize,
    }

    fn tally<'a>(results: impl IntoIterator<Item = &'a Result<Advisory, RecordError>>) -> Tally {
        let mut t = Tally {
            parsed: 0,
            rejected: BTreeMap::new(),
            git_ignored: 0,
            withdrawn: 0,
        };
        for r in results {
            match r {
                Ok(a) => {
                    t.parsed += 1;
                    t.git_ignored += a.ignored.len();
                    t.withdrawn += usize::from(a.is_withdrawn());
                }
                Err(e) => *t.rejected.entry(category(&e.reason)).or_default() += 1,
            }
        }
        t
    }

    /// Every JSON file under `osv/records/` except `_schema/` (YAML files are not parsed).
    #[test]
    fn every_json_record_file() {
        let mut results = Vec::new();
        let mut per_file = BTreeMap::new();
        let mut yaml = 0;
        for file in testdata::record_files() {
            if file.starts_with("_schema/") {
                continue;
            }
            if file.ends_with(".yaml") {
                yaml += 1;
                continue;
            }
            assert!(file.ends_with(".json"), "{file}");
            let got = parse_records(&testdata::read_bytes(&format!("osv/records/{file}")));
            per_file.insert(file, got.len());
            results.extend(got);
        }
        assert_eq!(yaml, 18, "YAML records skipped");
        assert_eq!(per_file.len(), 136, "JSON files");
        assert_eq!(
            per_file["maven/bundle-osv-scalibr-zeppelin-server-vulnerabilities.json"],
            356
        );
        let rejected: Vec<_> = results
            .iter()
            .filter_map(|r| r.as_ref().err())
            .map(|e| (e.id.clone(), e.reason.clone()))
            .collect();
        for r in &rejected {
            eprintln!("REJECTED {r:?}");
        }
        let t = tally(&results);
        assert_eq!(results.len(), 491);
        assert_eq!(t.parsed, 478);
        // The eleven GHSA API-format inputs of the GHSA converter tests (`ghsaId`, no `id`), and the
        // two linter-invalid records (the third, nopackage, is structurally valid: see below).
        assert_eq!(
            t.rejected,
            BTreeMap::from([
                ("missing id", 11),
                ("no introduced", 1),
                ("not distinct", 1)
            ])
        );
        assert_eq!(t.withdrawn, 7);
        assert!(t.git_ignored > 0);
    }

    /// The osv-linter's deliberately invalid records.
    #[test]
    fn linter_invalid_records() {
        let read = |f: &str| testdata::read_bytes(&format!("osv/records/_invalid/{f}"));
        let e = parse_record(&read("nointroduced-CVE-2023-41045.json")).unwrap_err();
        assert_eq!(e.id.as_deref(), Some("CVE-2023-41045"));
        assert_eq!(e.reason, "affected[0].ranges[0] has no introduced event");

        let e = parse_record(&read("nondistinct-CVE-2018-5407.json")).unwrap_err();
        assert_eq!(e.id.as_deref(), Some("CVE-2018-5407"));
        assert_eq!(
            e.reason,
            "affected[6].ranges[1] is not distinct: overlapping event \
             \"e818b74be2170fbe957a07b0da4401c2b694b3b8\""
        );

        // P0001 "package-exists": `Gradi0` is not on PyPI. Only a registry lookup can tell, so
        // the pure parser accepts it (with the PEP 503 name).
        let a = parse_record(&read("nopackage-GHSA-9v2f-6vcg-3hgv.json")).unwrap();
        assert_eq!(a.affected[0].name, "gradi0");
        assert_eq!(a.affected[0].versions, ["4.36.1"]);

        // The valid originals of the first two parse; their GIT ranges are noted and dropped.
        let a = parse_record(&testdata::read_bytes(
            "osv/records/cve/osv-linter-testdata/CVE-2018-5407.json",
        ))
        .unwrap();
        assert_eq!(a.affected.len(), 6);
        assert_eq!(
            a.ignored,
            ["GIT range ignored for https://github.com/nodejs/node"]
        );
        let a = parse_record(&testdata::read_bytes(
            "osv/records/cve/osv-linter-testdata/CVE-2023-41045.json",
        ))
        .unwrap();
        assert!(a.affected.is_empty());
        assert_eq!(a.ignored.len(), 1);
    }

    #[test]
    fn debian_bundle() {
        let entries = testdata::zip_entries("osv/debian-dsa-dla.zip");
        assert_eq!(entries.len(), 6832);
        let results: Vec<_> = entries.iter().flat_map(|(_, b)| parse_records(b)).collect();
        let t = tally(&results);
        assert_eq!(t.parsed, 6832);
        assert!(t.rejected.is_empty(), "{:?}", t.rejected);
        let ecosystems: std::collections::BTreeSet<_> = results
            .iter()
            .flatten()
            .flat_map(|a| a.affected.iter().map(|p| p.ecosystem.clone()))
            .collect();
        assert_eq!(
            ecosystems.into_iter().collect::<Vec<_>>(),
            [
                "Debian:10",
                "Debian:11",
                "Debian:6",
                "Debian:7",
                "Debian:8",
                "Debian:9"
            ]
        );
        let dsa = results
            .iter()
            .flatten()
            .find(|a| a.meta.id == "DSA-5380-1")
            .unwrap();
        assert_eq!(dsa.meta.aliases, ["CVE-2023-1393"]);
        assert_eq!(
            dsa.meta.summary.as_deref(),
            Some("xorg-server - security update")
        );
        assert_eq!(
            dsa.affected[0].ranges[0].events,
            [
                Event::Introduced("0".into()),
                Event::Fixed("2:1.20.11-1+deb11u6".into())
            ]
        );
    }

    #[test]
    fn alpine_bundle() {
        let entries = testdata::zip_entries("osv/alpine-secdb.zip");
        assert_eq!(entries.len(), 2442);
        let results: Vec<_> = entries.iter().flat_map(|(_, b)| parse_records(b)).collect();
        let t = tally(&results);
        assert_eq!(t.parsed, 2442);
        assert!(t.rejected.is_empty(), "{:?}", t.rejected);
        let a = results
            .iter()
            .flatten()
            .find(|a| a.meta.id == "ALPINE-CVE-2019-10206")
            .unwrap();
        assert_eq!(a.meta.upstream, ["CVE-2019-10206"]);
        assert_eq!(a.affected.len(), 5);
        assert!(a.affected.iter().all(|p| p.name == "ansible"));
        assert_eq!(a.affected[0].ecosystem, "Alpine:v3.10");
    }

    #[test]
    fn fields() {
        let a = parse_record(&testdata::read_bytes(
            "osv/records/redhat/RHSA-2024_4546.json",
        ))
        .unwrap();
        assert_eq!(a.meta.id, "RHSA-2024:4546");
        assert_eq!(a.meta.upstream, ["CVE-2023-45288"]);
        assert_eq!(a.related, ["GO-2024-2687"]);
        assert_eq!(a.affected[0].ecosystem, "Red Hat:rhel_aus:8.6::appstream");
        assert_eq!(a.affected[0].name, "git-lfs");
        assert_eq!(
            a.affected[0].purl.as_deref(),
            Some("pkg:rpm/redhat/git-lfs")
        );
        assert_eq!(a.meta.severity.scores[0].kind, "CVSS_V3");
        assert_eq!(a.meta.modified.to_rfc3339(), "2024-09-02T14:30:00+00:00");
        assert_eq!(a.raw["id"], "RHSA-2024:4546");

        let w = parse_record(&testdata::read_bytes(
            "osv/records/pypi/osvdev-test_vuln_withdrawn.json",
        ))
        .unwrap();
        assert!(w.is_withdrawn());

        let g = parse_record(&testdata::read_bytes(
            "osv/records/_invalid/nopackage-GHSA-9v2f-6vcg-3hgv.json",
        ))
        .unwrap();
        assert_eq!(
            g.meta.severity.database_severity.as_deref(),
            Some("CRITICAL")
        );

        // Serde round trip (the store keeps its AdvisoryMeta and AffectedPackages as JSON).
        let json = serde_json::to_string(&a).unwrap();
        let back: Advisory = serde_json::from_str(&json).unwrap();
        assert_eq!(back, a);
    }

    /// The `advisories.record` column holds an [`AdvisoryMeta`] as JSON, and rows written by an
    /// earlier build must still read: its form is pinned here.
    #[test]
    fn advisory_meta_json_is_the_stored_record() {
        let a = parse_record(&testdata::read_bytes(
            "osv/records/redhat/RHSA-2024_4546.json",
        ))
        .unwrap();
        let json = serde_json::to_string(&a.meta).unwrap();
        assert!(
            json.starts_with(
                r#"{"id":"RHSA-2024:4546","modified":"2024-09-02T14:30:00Z","published":"2024-09-02T14:30:00Z","withdrawn":null,"aliases":[],"upstream":["CVE-2023-45288"],"summary":"Red Hat Security Advisory: git-lfs security update","details":null,"references":[{"kind":"ADVISORY","url":"https://access.redhat.com/errata/RHSA-2024:4546"},"#
            ),
            "{json}"
        );
        assert!(
            json.ends_with(
                r#""severity":{"scores":[{"kind":"CVSS_V3","score":"CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:N/A:H"}],"database_severity":null}}"#
            ),
            "{json}"
        );
        let back: AdvisoryMeta = serde_json::from_str(&json).unwrap();
        assert_eq!(back, a.meta);
    }

    #[test]
    fn bundle_shapes() {
        let one = br#"{"id":"X-1","modified":"2024-01-01T00:00:00Z"}"#;
        assert_eq!(parse_records(one).len(), 1);
        let arr = br#"[{"id":"X-1","modified":"2024-01-01T00:00:00Z"},{"id":"X-2"}]"#;
        let got = parse_records(arr);
        assert!(got[0].is_ok());
        assert_eq!(
            got[1].as_ref().unwrap_err(),
            &RecordError {
                id: Some("X-2".into()),
                reason: "missing modified".into()
            }
        );
        let vulns = br#"{"vulns":[{"id":"X-1","modified":"2024-01-01T00:00:00Z"}]}"#;
        assert_eq!(parse_records(vulns)[0].as_ref().unwrap().meta.id, "X-1");
        assert!(parse_record(arr).is_err());
        let bad = parse_records(b"{not json");
        assert_eq!(bad.len(), 1);
        assert!(
            bad[0]
                .as_ref()
                .unwrap_err()
                .reason
                .starts_with("malformed JSON")
        );
    }

    fn reject(json: &str) -> RecordError {
        parse_record(json.as_bytes()).unwrap_err()
    }

    #[test]
    fn rejection_reasons() {
        let pkg = r#""package":{"ecosystem":"PyPI","name":"x"}"#;
        let m = r#""modified":"2024-01-01T00:00:00Z""#;
        assert_eq!(reject(&format!("{{{m}}}")).reason, "missing id");
        assert_eq!(reject(&format!(r#"{{"id":" ",{m}}}"#)).reason, "empty id");
        assert_eq!(reject(r#"{"id":"A"}"#).reason, "missing modified");
        let e = reject(&format!(r#"{{"id":"A",{m},"summary":"x\u0000"}}"#));
        assert_eq!(
            (e.id.as_deref(), e.reason.as_str()),
            (
                Some("A"),
                "summary holds a NUL character (U+0000), which cannot be stored"
            )
        );
        assert!(
            reject(r#"{"id":"A","modified":"yesterday"}"#)
                .reason
                .starts_with("unparsable modified \"yesterday\"")
        );
        let e = reject(&format!(
            r#"{{"id":"A",{m},"affected":[{{"ranges":[{{"type":"ECOSYSTEM","events":[{{"introduced":"0"}}]}}]}}]}}"#
        ));
        assert_eq!(
            e.reason,
            "affected[0] has no package (and no purl to derive one)"
        );
        assert_eq!(e.id.as_deref(), Some("A"));
        let e = reject(&format!(
            r#"{{"id":"A",{m},"affected":[{{{pkg},"ranges":[{{"type":"NPM","events":[{{"introduced":"0"}}]}}]}}]}}"#
        ));
        assert_eq!(
            e.reason,
            "affected[0].ranges[0] has unknown range type \"NPM\""
        );
        let e = reject(&format!(
            r#"{{"id":"A",{m},"affected":[{{{pkg},"ranges":[{{"type":"ECOSYSTEM","events":[{{"introduced":"0","fixed":"1"}}]}}]}}]}}"#
        ));
        assert_eq!(
            e.reason,
            "affected[0].ranges[0].events[0] must have exactly one key, has 2: [\"fixed\", \"introduced\"]"
        );
        let e = reject(&format!(
            r#"{{"id":"A",{m},"affected":[{{{pkg},"ranges":[{{"type":"ECOSYSTEM","events":[{{"introduced":"0"}},{{"fixed":"1"}},{{"last_affected":"2"}}]}}]}}]}}"#
        ));
        assert!(e.reason.contains("mutually exclusive"), "{e}");
        let e = reject(&format!(
            r#"{{"id":"A",{m},"affected":[{{{pkg},"ranges":[{{"type":"ECOSYSTEM","events":[{{"introduced":0}}]}}]}}]}}"#
        ));
        assert_eq!(
            e.reason,
            "affected[0].ranges[0].events[0].introduced is not a string"
        );
        let e = reject(&format!(r#"{{"id":"A",{m},"aliases":"CVE-1"}}"#));
        assert!(
            e.reason.starts_with("malformed record: invalid type"),
            "{e}"
        );
        // Derive the package from its purl.
        let a = parse_record(
            format!(
                r#"{{"id":"A",{m},"affected":[{{"package":{{"purl":"pkg:pypi/Foo_Bar"}},"versions":["1"]}}]}}"#
            )
            .as_bytes(),
        )
        .unwrap();
        assert_eq!(
            (
                a.affected[0].ecosystem.as_str(),
                a.affected[0].name.as_str()
            ),
            ("PyPI", "foo-bar")
        );
        assert_eq!(
            from_purl("pkg:maven/org.apache.logging.log4j/log4j-core@2.0"),
            Some(("Maven".into(), "org.apache.logging.log4j:log4j-core".into()))
        );
        assert_eq!(
            from_purl("pkg:npm/%40babel/core"),
            Some(("npm".into(), "@babel/core".into()))
        );
        assert_eq!(from_purl("pkg:deb/debian/openssl"), None);
    }

    #[test]
    fn yaml_records_are_read_like_json_ones() {
        let dir = "osv/records/pypi";
        let mut read = 0;
        for entry in std::fs::read_dir(testdata::fixture(dir)).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_none_or(|e| e != "yaml") {
                continue;
            }
            let stem = path.file_stem().unwrap().to_str().unwrap().to_owned();
            let got = parse_yaml_records(&std::fs::read(&path).unwrap());
            let [Ok(advisory)] = &got[..] else {
                panic!("{stem}: {got:?}");
            };
            assert_eq!(advisory.meta.id, stem);
            assert!(
                advisory
                    .affected
                    .iter()
                    .any(|a| a.ecosystem == "PyPI" && !a.ranges.is_empty()),
                "{stem}: no PyPI range"
            );
            read += 1;
        }
        assert_eq!(read, 16, "the PyPI fixture holds 16 YAML records");
        // The same record published as JSON (osv-linter's test data) reads the same.
        let yaml = parse_yaml_records(&testdata::read_bytes(&format!("{dir}/PYSEC-2023-74.yaml")));
        let json = parse_records(&testdata::read_bytes(&format!(
            "{dir}/osv-linter-testdata/PYSEC-2023-74.json"
        )));
        assert_eq!(yaml, json);
    }

    #[test]
    fn a_bare_yaml_number_is_not_taken_for_a_version() {
        // YAML reads `2.10` as the number 2.1: the record is refused, never stored as fixed in 2.1.
        let record = b"id: X-1\nmodified: 2024-01-01T00:00:00Z\naffected:\n- package: {ecosystem: PyPI, name: p}\n  ranges:\n  - type: ECOSYSTEM\n    events:\n    - introduced: '0'\n    - fixed: 2.10\n";
        let got = parse_yaml_records(record);
        assert!(matches!(&got[..], [Err(_)]), "{got:?}");
        let quoted = String::from_utf8_lossy(record).replace("fixed: 2.10", "fixed: '2.10'");
        let got = parse_yaml_records(quoted.as_bytes());
        let [Ok(advisory)] = &got[..] else {
            panic!("{got:?}");
        };
        assert_eq!(advisory.meta.id, "X-1");
    }

    #[test]
    fn yaml_alias_bombs_and_garbage_are_errors() {
        let mut bomb = String::from("a: &a [x, x, x, x, x, x, x, x, x, x]\n");
        for (n, prev) in ["b", "c", "d", "e", "f", "g", "h", "i"]
            .iter()
            .zip(["a", "b", "c", "d", "e", "f", "g", "h"])
        {
            bomb.push_str(&format!("{n}: &{n} [*{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}]\n"));
        }
        let got = parse_yaml_records(bomb.as_bytes());
        assert!(matches!(&got[..], [Err(_)]), "{:?}", got.len());
        let got = parse_yaml_records(b"{not: [yaml");
        let [Err(e)] = &got[..] else {
            panic!("{got:?}");
        };
        assert!(e.reason.starts_with("malformed YAML"), "{}", e.reason);
    }
}
