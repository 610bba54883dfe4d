//! RubyGems `Gem::Version` order, as osv-scalibr's `semantic` package (which
//! osv.dev's `go/osv/ecosystem` uses for RubyGems) implements it:
//!
//! * the version splits into segments at `.` and at every digit/non-digit
//!   boundary (`1.0.a10` is `1 0 a 10`);
//! * segments up to the first non-numeric one are the release, the rest (a
//!   letter makes a pre-release) the pre-release part; trailing zero segments
//!   are dropped from each part (`1.0` is `1`, `1.0.a.0` is `1.a`);
//! * segments compare pairwise, the shorter version padded with `0`: numbers
//!   numerically (arbitrary precision), strings byte-wise (case-sensitive), a
//!   number above a string (so `1.a < 1 < 1.0.1`).
//!
//! Two deliberate differences from osv-scalibr, both what `Gem::Version`
//! itself does:
//!
//! * `-` becomes `.pre.` (`1.0.0-rc1` is `1.0.0.pre.rc1`). RubyGems rewrites
//!   it when a gem is built, so an installed gemspec never has a `-`, and an
//!   advisory's `1.0.0-rc1` must order as the installed `1.0.0.pre.rc1` does
//!   (osv-scalibr keeps `-rc` as a segment, which sorts before every letter).
//! * A zero segment is any run of zeros (`00`), as `Gem::Version` reads
//!   segments as integers; osv-scalibr only drops the literal `0`.
//!
//! osv-scalibr accepts any string. Here a version must match
//! `Gem::Version`'s pattern, `[0-9]+(\.[0-9a-zA-Z]+)*(-[0-9A-Za-z-]+(\.[0-9A-Za-z-]+)*)?`,
//! except that letters may follow the first digits (`1beta`, which
//! osv-scalibr's fixture orders), and without the surrounding blanks RubyGems
//! strips, so garbage is an error rather than silently ordered; the empty
//! string (RubyGems' `0`) is an error too.

use std::cmp::Ordering;

use super::{Scheme, VersionError, cmp_decimal};

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    /// ASCII digits, leading zeros removed (`""` is zero).
    Number(String),
    Text(String),
}

impl Segment {
    fn is_zero(&self) -> bool {
        matches!(self, Segment::Number(n) if n.is_empty())
    }

    fn cmp(&self, other: &Segment) -> Ordering {
        match (self, other) {
            (Segment::Number(a), Segment::Number(b)) => cmp_decimal(a, b),
            (Segment::Text(a), Segment::Text(b)) => a.as_bytes().cmp(b.as_bytes()),
            (Segment::Number(_), Segment::Text(_)) => Ordering::Greater,
            (Segment::Text(_), Segment::Number(_)) => Ordering::Less,
        }
    }
}

/// A parsed RubyGems version: its canonical segments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GemVersion {
    segments: Vec<Segment>,
}

fn is_valid(v: &str) -> bool {
    let (release, pre) = match v.split_once('-') {
        Some((release, pre)) => (release, Some(pre)),
        None => (v, None),
    };
    let mut parts = release.split('.');
    let first_is_number = parts.next().is_some_and(|p| {
        p.bytes().next().is_some_and(|b| b.is_ascii_digit())
            && p.bytes().all(|b| b.is_ascii_alphanumeric())
    });
    let rest_alphanumeric =
        parts.all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_alphanumeric()));
    let pre_ok = pre.is_none_or(|pre| {
        pre.split('.')
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'))
    });
    first_is_number && rest_alphanumeric && pre_ok
}

impl GemVersion {
    pub fn parse(s: &str) -> Result<GemVersion, VersionError> {
        if !is_valid(s) {
            return Err(VersionError::new(
                Scheme::RubyGems,
                s,
                "not a RubyGems version (a digit, then dot-separated letters and digits, \
                 optionally `-` and a pre-release)",
            ));
        }
        let rewritten = s.replace('-', ".pre.");
        let mut segments = Vec::new();
        for part in rewritten.split('.') {
            // Split at digit/non-digit boundaries; `--` leaves empty parts,
            // which `Gem::Version` (scanning for runs) never sees either.
            let mut rest = part;
            while let Some(first) = rest.bytes().next() {
                let digits = first.is_ascii_digit();
                let end = rest
                    .bytes()
                    .position(|b| b.is_ascii_digit() != digits)
                    .unwrap_or(rest.len());
                let (run, tail) = rest.split_at(end);
                segments.push(if digits {
                    Segment::Number(run.trim_start_matches('0').to_owned())
                } else {
                    Segment::Text(run.to_owned())
                });
                rest = tail;
            }
        }
        // Canonical segments: trailing zeros dropped from the release and
        // from the pre-release part separately.
        let pre_start = segments
            .iter()
            .position(|s| matches!(s, Segment::Text(_)))
            .unwrap_or(segments.len());
        let mut pre = segments.split_off(pre_start);
        for part in [&mut segments, &mut pre] {
            while part.last().is_some_and(Segment::is_zero) {
                part.pop();
            }
        }
        segments.append(&mut pre);
        Ok(GemVersion { segments })
    }
}

impl Ord for GemVersion {
    fn cmp(&self, other: &Self) -> Ordering {
        let zero = Segment::Number(String::new());
        let n = self.segments.len().max(other.segments.len());
        (0..n)
            .map(|i| {
                let a = self.segments.get(i).unwrap_or(&zero);
                let b = other.segments.get(i).unwrap_or(&zero);
                a.cmp(b)
            })
            .find(|o| o.is_ne())
            .unwrap_or(Ordering::Equal)
    }
}

impl PartialOrd for GemVersion {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

pub fn validate(v: &str) -> Result<(), VersionError> {
    GemVersion::parse(v).map(|_| ())
}

pub fn compare(a: &str, b: &str) -> Result<Ordering, VersionError> {
    Ok(GemVersion::parse(a)?.cmp(&GemVersion::parse(b)?))
}

#[cfg(test)]
mod tests {
    use super::super::testutil;
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn osv_scalibr_rubygems_versions() {
        testutil::run_scalibr_file("osv-semantic/rubygems-versions.txt", compare).finish();
    }

    #[test]
    fn osv_scalibr_rubygems_versions_generated() {
        testutil::run_scalibr_file("osv-semantic/rubygems-versions-generated.txt", compare)
            .finish();
    }

    #[test]
    fn gem_version_semantics() {
        let cmp = |a: &str, b: &str| compare(a, b).unwrap();
        // Trailing zeros, in the release and in the pre-release part.
        assert_eq!(cmp("1.0.0", "1"), Ordering::Equal);
        assert_eq!(cmp("1.00", "1"), Ordering::Equal);
        assert_eq!(cmp("1.0.a.0", "1.a"), Ordering::Equal);
        assert_eq!(cmp("01.2", "1.2"), Ordering::Equal);
        // A letter makes a pre-release: below the release, above the previous one.
        assert_eq!(cmp("1.0.a", "1.0"), Ordering::Less);
        assert_eq!(cmp("1.0.a", "0.9"), Ordering::Greater);
        assert_eq!(cmp("1.0.rc1", "1.0.rc.1"), Ordering::Equal);
        assert_eq!(cmp("1.0.B", "1.0.a"), Ordering::Less);
        // `-` is `.pre.`, as Gem::Version rewrites it (osv-scalibr differs here:
        // it orders `-rc1` before `beta`).
        assert_eq!(cmp("1.0.0-rc1", "1.0.0.pre.rc1"), Ordering::Equal);
        assert_eq!(cmp("1.0.0-rc1", "1.0.0.beta"), Ordering::Greater);
        assert_eq!(cmp("1.0.0-a-b", "1.0.0.pre.a.pre.b"), Ordering::Equal);
        assert_eq!(cmp("1.0.0-rc1", "1.0.0"), Ordering::Less);
        assert_eq!(
            cmp("99999999999999999999999.1", "99999999999999999999999.0.9"),
            Ordering::Greater
        );
        for bad in [
            "", " 1.0", "1.0 ", "a1", "1a.", ".1", "1.", "1..2", "1.0-", "1.0-a..b", "1_0",
            "1.0+b", "v1", "-1", "1.0.ä",
        ] {
            assert!(validate(bad).is_err(), "{bad:?}");
        }
        for good in [
            "0",
            "1beta",
            "1.a",
            "1.0-a-b",
            "1.0--a",
            "3.0.0.alpha.1.0",
            "1.2.3.4.5.6",
        ] {
            assert!(validate(good).is_ok(), "{good:?}");
        }
    }

    fn gem_version() -> impl Strategy<Value = String> {
        "[0-9]{1,2}(\\.([0-9]{1,2}|[a-c]{1,2}|0|00)){0,4}(-[a-c0-9]{1,2}(\\.[a-c0-9]{1,2}){0,1})?"
    }

    proptest! {
        #[test]
        fn reflexive(a in gem_version()) {
            prop_assert_eq!(compare(&a, &a), Ok(Ordering::Equal));
        }

        #[test]
        fn antisymmetric(a in gem_version(), b in gem_version()) {
            prop_assert_eq!(compare(&a, &b).unwrap(), compare(&b, &a).unwrap().reverse());
        }

        #[test]
        fn transitive(a in gem_version(), b in gem_version(), c in gem_version()) {
            testutil::check_transitive(compare, &a, &b, &c)?;
        }
    }
}
