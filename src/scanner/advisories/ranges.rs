//! OSV range semantics, as the schema's "Evaluation" section defines them:
//!
//! ```text
//! IsAffected(v) = v in versions || any range: BeforeLimits(v, range) && Vulnerable(v, range)
//! Vulnerable: walk the events sorted by version; introduced <= v sets vulnerable,
//!             fixed <= v clears it, last_affected < v clears it.
//! BeforeLimits: no limit events, or v < some limit ("*" is infinity).
//! ```
//!
//! `introduced: "0"` sorts before every version. Events are sorted with the package's version
//! order ([`Scheme::for_ecosystem`]; SEMVER ranges always use [`Scheme::Semver`]); events with
//! equal versions keep a fixed order (introduced, last_affected, fixed, limit), so that
//! `introduced X, fixed X` is the empty interval (RustSec emits that pair; osv.dev expands it to
//! no version) and `introduced X, last_affected X` is the single version X.
//!
//! Beyond the spec's exact string match, an explicit `versions` entry also matches a version
//! that is *equal under the ecosystem's order* (`1.0` and `1.0.0` in PyPI); entries that do not
//! parse under that order are only matched as strings.
//!
//! Errors are never "not affected": an ecosystem with no known order, an installed version or an
//! event version that cannot be parsed all give a [`RangeError`] (an exact string match in
//! `versions` is still reported as affected).

use std::cmp::Ordering;

use crate::scanner::versions::{Scheme, VersionError};

use super::osv::{AffectedPackage, Event, RangeKind};

/// Whether a version is affected, and the version that fixes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    pub affected: bool,
    /// When affected through a range: the `fixed` event that closes the interval the version
    /// lies in (the smallest one when several ranges match; `None` when the interval ends with
    /// `last_affected`, a limit, or nothing). Otherwise: the smallest `fixed` above the version.
    pub fixed: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RangeError {
    #[error("ecosystem {ecosystem:?} has no known version order")]
    UnknownEcosystem { ecosystem: String },
    #[error("installed version {version:?} cannot be parsed as {scheme:?}: {reason}")]
    InstalledVersion {
        version: String,
        scheme: Scheme,
        reason: String,
    },
    #[error("advisory version {version:?} cannot be parsed as {scheme:?}: {reason}")]
    EventVersion {
        version: String,
        scheme: Scheme,
        reason: String,
    },
}

impl RangeError {
    fn installed(e: VersionError) -> Self {
        RangeError::InstalledVersion {
            version: e.version,
            scheme: e.scheme,
            reason: e.reason,
        }
    }

    fn event(e: VersionError) -> Self {
        RangeError::EventVersion {
            version: e.version,
            scheme: e.scheme,
            reason: e.reason,
        }
    }
}

/// One range with its events sorted once.
#[derive(Debug, Clone)]
struct PreparedRange<'a> {
    scheme: Scheme,
    /// Sorted; limit events are kept apart.
    events: Vec<&'a Event>,
    /// Finite limits (`None` when the range has no limit or an infinite one).
    limits: Option<Vec<&'a str>>,
}

/// An affected package ready to be evaluated against many versions: the events of each range
/// are validated and sorted once (borrowing from the package).
#[derive(Debug, Clone)]
pub struct Prepared<'a> {
    ecosystem: &'a str,
    scheme: Option<Scheme>,
    versions: &'a [String],
    ranges: Result<Vec<PreparedRange<'a>>, RangeError>,
}

fn is_origin(e: &Event) -> bool {
    matches!(e, Event::Introduced(v) if v == "0")
}

fn rank(e: &Event) -> u8 {
    match e {
        Event::Introduced(_) => 0,
        Event::LastAffected(_) => 1,
        Event::Fixed(_) => 2,
        Event::Limit(_) => 3,
    }
}

fn cmp_events(scheme: Scheme, a: &Event, b: &Event) -> Result<Ordering, VersionError> {
    let by_version = match (is_origin(a), is_origin(b)) {
        (true, true) => Ordering::Equal,
        (true, false) => Ordering::Less,
        (false, true) => Ordering::Greater,
        (false, false) => scheme.compare(a.version(), b.version())?,
    };
    Ok(by_version.then_with(|| rank(a).cmp(&rank(b))))
}

fn prepare_range(scheme: Scheme, events: &[Event]) -> Result<PreparedRange<'_>, RangeError> {
    let mut sorted = Vec::with_capacity(events.len());
    let mut limits: Option<Vec<&str>> = None;
    let mut infinite = false;
    for e in events {
        match e {
            Event::Limit(v) if v.contains('*') => infinite = true,
            Event::Limit(v) => {
                scheme.validate(v).map_err(RangeError::event)?;
                limits.get_or_insert_with(Vec::new).push(v.as_str());
            }
            e if is_origin(e) => sorted.push(e),
            e => {
                scheme.validate(e.version()).map_err(RangeError::event)?;
                sorted.push(e);
            }
        }
    }
    if sorted.len() > 1 {
        let mut failure = None;
        sorted.sort_by(|a, b| match cmp_events(scheme, a, b) {
            Ok(o) => o,
            Err(e) => {
                failure.get_or_insert(e);
                Ordering::Equal
            }
        });
        if let Some(e) = failure {
            return Err(RangeError::event(e));
        }
    }
    Ok(PreparedRange {
        scheme,
        events: sorted,
        limits: if infinite { None } else { limits },
    })
}

/// Validates and sorts an affected package's ranges once.
pub fn prepare(pkg: &AffectedPackage) -> Prepared<'_> {
    let scheme = Scheme::for_ecosystem(&pkg.ecosystem);
    let ranges = pkg
        .ranges
        .iter()
        .map(|r| {
            let s = match r.kind {
                RangeKind::Semver => Scheme::Semver,
                RangeKind::Ecosystem => scheme.ok_or_else(|| RangeError::UnknownEcosystem {
                    ecosystem: pkg.ecosystem.clone(),
                })?,
            };
            prepare_range(s, &r.events)
        })
        .collect();
    Prepared {
        ecosystem: &pkg.ecosystem,
        scheme,
        versions: &pkg.versions,
        ranges,
    }
}

/// Is `version` of this package affected? (Prepares and evaluates; use [`prepare`] once and
/// [`Prepared::evaluate`] for many versions.)
pub fn affected(pkg: &AffectedPackage, version: &str) -> Result<Verdict, RangeError> {
    prepare(pkg).evaluate(version)
}

/// What one range says about a version.
struct RangeOutcome<'a> {
    vulnerable: bool,
    /// The fixed event closing the interval `v` lies in (when vulnerable).
    closing_fix: Option<&'a str>,
    /// The smallest fixed event above `v`.
    next_fix: Option<&'a str>,
}

impl<'a> PreparedRange<'a> {
    /// `v` is parsed by every comparison; a range that compares nothing (only
    /// `introduced: "0"`) validates it explicitly, so an unparseable version is an error
    /// whatever the events.
    fn evaluate(&self, v: &str) -> Result<RangeOutcome<'a>, VersionError> {
        let before_limits = match &self.limits {
            None => true,
            Some(limits) => {
                let mut any = false;
                for l in limits {
                    if self.scheme.compare(v, l)? == Ordering::Less {
                        any = true;
                        break;
                    }
                }
                any
            }
        };
        if self.limits.is_none() && self.events.iter().all(|e| is_origin(e)) {
            self.scheme.validate(v)?;
        }
        let mut vulnerable = false;
        let mut above = self.events.len();
        for (k, e) in self.events.iter().enumerate() {
            if is_origin(e) {
                vulnerable = true;
                continue;
            }
            let ord = self.scheme.compare(v, e.version())?;
            if ord == Ordering::Less {
                // Sorted: this and every later event is above v and cannot change the state.
                above = k;
                break;
            }
            match e {
                Event::Introduced(_) => vulnerable = true,
                Event::Fixed(_) => vulnerable = false,
                Event::LastAffected(_) if ord == Ordering::Greater => vulnerable = false,
                Event::LastAffected(_) | Event::Limit(_) => {}
            }
        }
        let rest = &self.events[above..];
        let next_fix = rest.iter().find_map(|e| match e {
            Event::Fixed(f) => Some(f.as_str()),
            _ => None,
        });
        let closing_fix = rest
            .iter()
            .find_map(|e| match e {
                Event::Fixed(f) => Some(Some(f.as_str())),
                Event::LastAffected(_) | Event::Limit(_) => Some(None),
                Event::Introduced(_) => None,
            })
            .flatten();
        Ok(RangeOutcome {
            vulnerable: vulnerable && before_limits,
            closing_fix,
            next_fix,
        })
    }
}

/// Keeps the smaller of two fixed versions under `scheme` (the one already kept on a
/// comparison error).
fn keep_smaller<'a>(scheme: Scheme, kept: &mut Option<&'a str>, candidate: Option<&'a str>) {
    match (*kept, candidate) {
        (_, None) => {}
        (None, Some(c)) => *kept = Some(c),
        (Some(k), Some(c)) => {
            if scheme.compare(c, k) == Ok(Ordering::Less) {
                *kept = Some(c);
            }
        }
    }
}

impl Prepared<'_> {
    pub fn ecosystem(&self) -> &str {
        self.ecosystem
    }

    /// Whether some range contains `v`, the smallest fix closing a containing interval, and
    /// the smallest fix above `v` overall.
    fn scan(&self, v: &str) -> Result<(bool, Option<&str>, Option<&str>), RangeError> {
        let ranges = self.ranges.as_ref().map_err(Clone::clone)?;
        let mut in_range = false;
        let mut closing: Option<&str> = None;
        let mut next: Option<&str> = None;
        for r in ranges {
            let o = r.evaluate(v).map_err(|e| {
                if e.version == v {
                    RangeError::installed(e)
                } else {
                    RangeError::event(e)
                }
            })?;
            if o.vulnerable {
                in_range = true;
                keep_smaller(r.scheme, &mut closing, o.closing_fix);
            }
            keep_smaller(r.scheme, &mut next, o.next_fix);
        }
        Ok((in_range, closing, next))
    }

    /// Is `v` affected, and what fixes it.
    pub fn evaluate(&self, v: &str) -> Result<Verdict, RangeError> {
        if self.versions.iter().any(|x| x == v) {
            // Certain whatever else fails; the fix is best effort.
            let fixed = self
                .scan(v)
                .ok()
                .and_then(|(_, _, next)| next)
                .map(str::to_owned);
            return Ok(Verdict {
                affected: true,
                fixed,
            });
        }
        let Some(scheme) = self.scheme else {
            return Err(RangeError::UnknownEcosystem {
                ecosystem: self.ecosystem.to_owned(),
            });
        };
        let (in_range, closing, next) = self.scan(v)?;
        let listed = if self.versions.is_empty() {
            false
        } else {
            scheme.validate(v).map_err(RangeError::installed)?;
            self.versions
                .iter()
                .any(|x| scheme.compare(v, x) == Ok(Ordering::Equal))
        };
        let fixed = if in_range { closing } else { next };
        Ok(Verdict {
            affected: listed || in_range,
            fixed: fixed.map(str::to_owned),
        })
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::scanner::advisories::osv::{Range, parse_record};
    use crate::scanner::advisories::testdata;

    fn ev(s: &str) -> Event {
        let (k, v) = s.split_once('=').unwrap();
        let v = v.to_owned();
        match k {
            "i" => Event::Introduced(v),
            "f" => Event::Fixed(v),
            "la" => Event::LastAffected(v),
            "l" => Event::Limit(v),
            _ => panic!("{k}"),
        }
    }

    fn pkg(ecosystem: &str, ranges: &[(RangeKind, &[&str])], versions: &[&str]) -> AffectedPackage {
        AffectedPackage {
            ecosystem: ecosystem.to_owned(),
            name: "p".to_owned(),
            purl: None,
            ranges: ranges
                .iter()
                .map(|(kind, events)| Range {
                    kind: *kind,
                    events: events.iter().map(|e| ev(e)).collect(),
                })
                .collect(),
            versions: versions.iter().map(|v| (*v).to_owned()).collect(),
            severity: Vec::new(),
            urgency: None,
            database_severity: None,
        }
    }

    const E: RangeKind = RangeKind::Ecosystem;
    const S: RangeKind = RangeKind::Semver;

    /// `(version, affected, fixed)` rows against one package.
    fn check(p: &AffectedPackage, rows: &[(&str, bool, Option<&str>)]) {
        let prepared = prepare(p);
        for (v, want, fix) in rows {
            let got = prepared.evaluate(v).unwrap_or_else(|e| panic!("{v}: {e}"));
            assert_eq!(
                got,
                Verdict {
                    affected: *want,
                    fixed: fix.map(str::to_owned)
                },
                "{v} in {:?}",
                p.ranges
            );
            assert_eq!(affected(p, v).unwrap(), got);
        }
    }

    #[test]
    fn introduced_zero_and_fixed() {
        let p = pkg("Debian:10", &[(E, &["i=0", "f=1.2-3"])], &[]);
        check(
            &p,
            &[
                ("0.1", true, Some("1.2-3")),
                ("1.2-2", true, Some("1.2-3")),
                ("1:0.1", false, None),
                ("1.2-3", false, None),
                ("1.2-3+deb10u1", false, None),
            ],
        );
        // Introduced "0" only: every version.
        let p = pkg("Alpine:v3.18", &[(E, &["i=0"])], &[]);
        check(&p, &[("0.0.1-r0", true, None), ("99-r9", true, None)]);
        // Unsorted input.
        let p = pkg("PyPI", &[(E, &["f=2.0", "i=1.0"])], &[]);
        check(
            &p,
            &[
                ("0.9", false, Some("2.0")),
                ("1.0", true, Some("2.0")),
                ("2.0", false, None),
            ],
        );
    }

    #[test]
    fn several_intervals_in_one_range() {
        let p = pkg(
            "npm",
            &[(S, &["i=1.0.0", "f=1.0.2", "i=3.0.0", "f=3.2.5"])],
            &[],
        );
        check(
            &p,
            &[
                ("0.9.0", false, Some("1.0.2")),
                ("1.0.0", true, Some("1.0.2")),
                ("1.0.1", true, Some("1.0.2")),
                ("1.0.2", false, Some("3.2.5")),
                ("2.9.9", false, Some("3.2.5")),
                ("3.0.0-rc.1", false, Some("3.2.5")),
                ("3.0.0", true, Some("3.2.5")),
                ("3.2.5", false, None),
            ],
        );
    }

    #[test]
    fn last_affected() {
        // osv.dev's OSV-TEST-last-affected-01, with ECOSYSTEM versions instead of commits.
        let p = pkg("PyPI", &[(E, &["i=1.0", "la=1.5"])], &[]);
        check(
            &p,
            &[
                ("0.9", false, None),
                ("1.0", true, None),
                ("1.5", true, None),
                ("1.5.post1", false, None),
                ("2.0", false, None),
            ],
        );
        let p = pkg("Go", &[(S, &["i=0", "la=1.4.0"])], &[]);
        check(&p, &[("v1.4.0", true, None), ("1.4.1", false, None)]);
    }

    #[test]
    fn limit() {
        // osv.dev's OSV-128 (PyPI grpcio): ECOSYSTEM introduced 1.13.0, limit 1.14.2, and a
        // versions entry that is no PEP 440 version.
        let p = pkg(
            "PyPI",
            &[(E, &["i=1.13.0", "l=1.14.2"])],
            &["branch-v0.1.1"],
        );
        check(
            &p,
            &[
                ("1.12.0", false, None),
                ("1.13.0", true, None),
                ("1.14.1", true, None),
                ("1.14.2", false, None),
                ("1.15.0", false, None),
                ("branch-v0.1.1", true, None),
            ],
        );
        // Limit bounds the whole range, fixed events included.
        let p = pkg(
            "npm",
            &[(S, &["i=0", "f=2.0.0", "i=3.0.0", "l=4.0.0"])],
            &[],
        );
        check(
            &p,
            &[
                ("1.0.0", true, Some("2.0.0")),
                ("2.5.0", false, None),
                ("3.5.0", true, None),
                ("4.0.0", false, None),
            ],
        );
        // Several limits: below any of them; "*" is infinity.
        let p = pkg("npm", &[(S, &["i=0", "l=1.0.0", "l=5.0.0"])], &[]);
        check(&p, &[("4.9.9", true, None), ("5.0.0", false, None)]);
        let p = pkg("npm", &[(S, &["i=0", "l=1.0.0", "l=*"])], &[]);
        check(&p, &[("100.0.0", true, None)]);
    }

    #[test]
    fn several_ranges_are_ored() {
        let p = pkg(
            "Maven",
            &[(E, &["i=1.0", "f=1.5"]), (E, &["i=2.0", "f=2.3"])],
            &[],
        );
        check(
            &p,
            &[
                ("1.2", true, Some("1.5")),
                ("1.7", false, Some("2.3")),
                ("2.1", true, Some("2.3")),
                ("2.3", false, None),
            ],
        );
        // Overlapping ranges that both match: the smallest closing fix.
        let p = pkg(
            "PyPI",
            &[(E, &["i=0", "f=3.0"]), (E, &["i=1.0", "f=2.0"])],
            &[],
        );
        check(
            &p,
            &[("1.5", true, Some("2.0")), ("2.5", true, Some("3.0"))],
        );
    }

    #[test]
    fn explicit_versions() {
        let p = pkg("PyPI", &[], &["4.36.1", "1.0"]);
        check(
            &p,
            &[
                ("4.36.1", true, None),
                ("1.0.0", true, None),
                ("1.0.post0", false, None),
                ("4.36.2", false, None),
            ],
        );
        // Versions and ranges together.
        let p = pkg("PyPI", &[(E, &["i=2.0", "f=2.1"])], &["1.5"]);
        check(
            &p,
            &[
                ("1.5", true, Some("2.1")),
                ("2.0.5", true, Some("2.1")),
                ("1.6", false, Some("2.1")),
            ],
        );
    }

    #[test]
    fn semver_ranges_use_semver_whatever_the_ecosystem() {
        // Debian order would put 1.0.0~rc1 before 1.0.0 too, but SemVer rejects "~": proof the
        // SEMVER range is read as SemVer.
        let p = pkg("Debian:12", &[(S, &["i=0", "f=1.0.0"])], &[]);
        assert!(matches!(
            affected(&p, "1.0.0~rc1"),
            Err(RangeError::InstalledVersion {
                scheme: Scheme::Semver,
                ..
            })
        ));
        check(
            &p,
            &[("1.0.0-rc.1", true, Some("1.0.0")), ("1.0.0", false, None)],
        );
    }

    #[test]
    fn errors_are_never_false() {
        let p = pkg("Debian:12", &[(E, &["i=0", "f=1.0-1"])], &[]);
        let err = affected(&p, "a:b").unwrap_err();
        assert!(
            matches!(&err, RangeError::InstalledVersion { version, scheme: Scheme::Dpkg, .. } if version == "a:b")
        );
        assert!(
            err.to_string()
                .starts_with("installed version \"a:b\" cannot be parsed as Dpkg")
        );

        let p = pkg("PyPI", &[(E, &["i=0", "f=not a version"])], &[]);
        let err = affected(&p, "1.0").unwrap_err();
        assert!(
            matches!(&err, RangeError::EventVersion { version, scheme: Scheme::Pep440, .. } if version == "not a version"),
            "{err}"
        );

        let p = pkg("Pub", &[(E, &["i=0", "f=1.0"])], &["0.5"]);
        assert_eq!(
            affected(&p, "0.9"),
            Err(RangeError::UnknownEcosystem {
                ecosystem: "Pub".into()
            })
        );
        // ... unless the exact string is listed.
        assert!(affected(&p, "0.5").unwrap().affected);
        let p = pkg("CRAN", &[], &["1.0"]);
        assert!(affected(&p, "2.0").is_err());
        // An unparseable version never falls through to "not affected", even with a listed
        // version list only.
        let p = pkg("PyPI", &[], &["1.0"]);
        assert!(matches!(
            affected(&p, "???"),
            Err(RangeError::InstalledVersion { .. })
        ));
    }

    /// Real records: a Debian DSA, an Alpine secdb record, GHSA/Go/RustSec with SEMVER and
    /// ECOSYSTEM ranges.
    #[test]
    fn real_records() {
        let dsa =
            parse_record(&testdata::read_bytes("osv/records/debian/DSA-3029-1.json")).unwrap();
        let p = &dsa.affected[0];
        assert_eq!(p.ecosystem, "Debian:7");
        let fixed = match &p.ranges[0].events[1] {
            Event::Fixed(f) => f.clone(),
            e => panic!("{e:?}"),
        };
        let v = affected(p, &fixed).unwrap();
        assert!(!v.affected);
        let older = format!("{}~0", fixed);
        assert_eq!(
            affected(p, &older).unwrap(),
            Verdict {
                affected: true,
                fixed: Some(fixed.clone())
            }
        );

        let alpine = parse_record(&testdata::read_bytes(
            "osv/records/alpine/CVE-2022-27449.json",
        ))
        .unwrap();
        for p in &alpine.affected {
            assert!(p.ecosystem.starts_with("Alpine:v3."), "{}", p.ecosystem);
            for r in &p.ranges {
                for e in &r.events {
                    if let Event::Fixed(f) = e {
                        assert!(!affected(p, f).unwrap().affected);
                    }
                }
            }
        }

        // RUSTSEC-2024-0445: SEMVER introduced 0.0.0-0, fixed 3.4.1.
        let r = parse_record(&testdata::read_bytes(
            "osv/records/crates.io/RUSTSEC-2024-0445.json",
        ))
        .unwrap();
        let p = &r.affected[0];
        check(
            p,
            &[
                ("0.0.0-0", true, Some("3.4.1")),
                ("3.4.0", true, Some("3.4.1")),
                ("3.4.1", false, None),
            ],
        );
    }

    #[test]
    fn repeated_version_is_an_empty_interval() {
        // RUSTSEC-2024-0399 (rustls): introduced 0.23.0, fixed 0.23.0, introduced 0.23.13,
        // fixed 0.23.18.
        let r = parse_record(&testdata::read_bytes(
            "osv/records/crates.io/RUSTSEC-2024-0399.json",
        ))
        .unwrap();
        check(
            &r.affected[0],
            &[
                ("0.22.4", false, Some("0.23.0")),
                ("0.23.0", false, Some("0.23.18")),
                ("0.23.12", false, Some("0.23.18")),
                ("0.23.13", true, Some("0.23.18")),
                ("0.23.17", true, Some("0.23.18")),
                ("0.23.18", false, None),
            ],
        );
        let p = pkg("PyPI", &[(E, &["la=1.0", "i=1.0"])], &[]);
        check(
            &p,
            &[
                ("1.0", true, None),
                ("0.9", false, None),
                ("1.0.1", false, None),
            ],
        );
    }

    /// Every evaluable range of every JSON fixture record: each event version behaves as the
    /// spec says at its own boundary (introduced affected unless a later event at the same
    /// version clears it, fixed not affected), or the record's versions do not parse — which is
    /// reported, never "not affected".
    #[test]
    fn boundaries_of_all_fixture_records() {
        let mut checked = 0;
        let mut errors = 0;
        for file in testdata::record_files() {
            if !file.ends_with(".json") || file.starts_with("_") {
                continue;
            }
            for advisory in super::super::osv::parse_records(&testdata::read_bytes(&format!(
                "osv/records/{file}"
            )))
            .into_iter()
            .flatten()
            {
                for p in &advisory.affected {
                    if Scheme::for_ecosystem(&p.ecosystem).is_none() {
                        continue;
                    }
                    for r in &p.ranges {
                        let single = Range {
                            kind: r.kind,
                            events: r.events.clone(),
                        };
                        let one = AffectedPackage {
                            ranges: vec![single],
                            versions: vec![],
                            ..p.clone()
                        };
                        for e in &r.events {
                            if let Event::Fixed(f) = e {
                                match affected(&one, f) {
                                    Ok(v) => {
                                        assert!(
                                            !v.affected,
                                            "{} {} fixed {f}",
                                            advisory.meta.id, p.name
                                        );
                                        checked += 1;
                                    }
                                    Err(_) => errors += 1,
                                }
                            }
                        }
                    }
                }
            }
        }
        // 1504 = 1488 + the 16 fixed events of the RubyGems (10), NuGet (5) and Packagist (1)
        // records, which have an order since those ecosystems got theirs.
        assert_eq!((checked, errors), (1504, 0));
    }

    /// The spec's pseudocode, transcribed literally (full sort, no early exit).
    fn reference(events: &[Event], v: u32) -> bool {
        let num = |s: &str| -> u32 { s.split('.').next().unwrap().parse().unwrap() };
        let limits: Vec<u32> = events
            .iter()
            .filter_map(|e| match e {
                Event::Limit(l) => Some(num(l)),
                _ => None,
            })
            .collect();
        if !limits.is_empty() && !limits.iter().any(|l| v < *l) {
            return false;
        }
        let mut sorted: Vec<&Event> = events
            .iter()
            .filter(|e| !matches!(e, Event::Limit(_)))
            .collect();
        sorted.sort_by_key(|e| {
            if is_origin(e) {
                -1
            } else {
                i64::from(num(e.version()))
            }
        });
        let mut vulnerable = false;
        for e in sorted {
            match e {
                Event::Introduced(x) if x == "0" || v >= num(x) => vulnerable = true,
                Event::Fixed(x) if v >= num(x) => vulnerable = false,
                Event::LastAffected(x) if v > num(x) => vulnerable = false,
                _ => {}
            }
        }
        vulnerable
    }

    fn version(n: u32) -> String {
        format!("{n}.0.0")
    }

    /// Valid event lists: distinct versions, at least one introduced, not both fixed and
    /// last_affected.
    fn events() -> impl Strategy<Value = Vec<Event>> {
        (
            proptest::collection::btree_set(1u32..40, 1..8),
            proptest::collection::vec(0u8..4, 8),
            any::<bool>(),
            any::<bool>(),
        )
            .prop_map(|(versions, kinds, last_affected, origin)| {
                let mut out: Vec<Event> = versions
                    .into_iter()
                    .zip(kinds)
                    .map(|(n, k)| match k {
                        0 | 1 => Event::Introduced(version(n)),
                        2 if last_affected => Event::LastAffected(version(n)),
                        2 => Event::Fixed(version(n)),
                        _ => Event::Limit(version(n)),
                    })
                    .collect();
                if origin || !out.iter().any(|e| matches!(e, Event::Introduced(_))) {
                    out.push(Event::Introduced("0".into()));
                }
                out.reverse();
                out
            })
    }

    proptest! {
        #[test]
        fn matches_the_spec_pseudocode(events in events(), v in 0u32..45) {
            let p = AffectedPackage {
                ranges: vec![Range { kind: RangeKind::Semver, events: events.clone() }],
                ..pkg("npm", &[], &[])
            };
            let got = affected(&p, &version(v)).unwrap();
            prop_assert_eq!(got.affected, reference(&events, v), "{:?} at {}", events, v);
            if let Some(f) = &got.fixed {
                // A reported fix is a fixed event above the version.
                prop_assert!(events.contains(&Event::Fixed(f.clone())));
                prop_assert!(Scheme::Semver.compare(f, &version(v)).unwrap() == Ordering::Greater);
            }
        }

        #[test]
        fn boundary_versions(a in 1u32..1000, gap in 1u32..1000) {
            let (intro, fix) = (version(a), version(a + gap));
            let p = pkg("crates.io", &[], &[]);
            let p = AffectedPackage {
                ranges: vec![Range { kind: RangeKind::Ecosystem, events: vec![Event::Introduced(intro.clone()), Event::Fixed(fix.clone())] }],
                ..p
            };
            // equal to introduced: affected, fixed by `fix`; equal to fixed: not affected.
            prop_assert_eq!(affected(&p, &intro).unwrap(), Verdict { affected: true, fixed: Some(fix.clone()) });
            prop_assert_eq!(affected(&p, &fix).unwrap(), Verdict { affected: false, fixed: None });
            prop_assert!(!affected(&p, &version(a - 1)).unwrap().affected);
            let last = AffectedPackage {
                ranges: vec![Range { kind: RangeKind::Ecosystem, events: vec![Event::Introduced(intro.clone()), Event::LastAffected(fix.clone())] }],
                ..p.clone()
            };
            prop_assert!(affected(&last, &fix).unwrap().affected);
            prop_assert!(!affected(&last, &version(a + gap + 1)).unwrap().affected);
            let limited = AffectedPackage {
                ranges: vec![Range { kind: RangeKind::Ecosystem, events: vec![Event::Introduced("0".into()), Event::Limit(fix.clone())] }],
                ..p
            };
            prop_assert!(affected(&limited, &intro).unwrap().affected);
            prop_assert!(!affected(&limited, &fix).unwrap().affected);
        }
    }
}
