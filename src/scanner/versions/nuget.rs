//! NuGet version order, as osv-scalibr's `semantic` package (which osv.dev's
//! `go/osv/ecosystem` uses for NuGet) implements it, which is NuGet's own
//! `VersionComparer` for valid versions:
//!
//! * one leading `v` is dropped (osv-scalibr does; NuGet itself has none);
//! * one to four dot-separated numbers, the missing ones `0` (`1.0` is
//!   `1.0.0.0`), compared numerically with arbitrary precision;
//! * then SemVer 2.0.0 pre-release precedence, with identifiers compared
//!   case-insensitively (`1.0.0-BETA` is `1.0.0-beta`): a version without a
//!   pre-release is above one with, numeric identifiers compare numerically
//!   and below alphanumeric ones, more identifiers above fewer;
//! * build metadata (`+...`) does not take part.
//!
//! osv-scalibr accepts any string. Here a version must have NuGet's shape
//! (numbers, then optionally `-` and dot-separated non-empty identifiers of
//! ASCII letters, digits and `-`, then optionally `+` and the same), so garbage
//! and a fifth number are errors rather than silently ordered.

use std::cmp::Ordering;

use super::{Scheme, VersionError, cmp_decimal};

/// A parsed NuGet version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NuGetVersion {
    /// Up to four numbers, leading zeros removed.
    numbers: Vec<String>,
    /// Lower-cased pre-release identifiers; empty for a release.
    pre: Vec<String>,
}

fn identifiers_ok(s: &str) -> bool {
    s.split('.')
        .all(|i| !i.is_empty() && i.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'))
}

fn is_number(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

impl NuGetVersion {
    pub fn parse(s: &str) -> Result<NuGetVersion, VersionError> {
        let err = |reason: &str| VersionError::new(Scheme::NuGet, s, reason);
        let v = s.strip_prefix('v').unwrap_or(s);
        let (v, build) = match v.split_once('+') {
            Some((v, build)) => (v, Some(build)),
            None => (v, None),
        };
        let (core, pre) = match v.split_once('-') {
            Some((core, pre)) => (core, Some(pre)),
            None => (v, None),
        };
        let numbers: Vec<&str> = core.split('.').collect();
        if !numbers.iter().all(|n| is_number(n)) {
            return Err(err("does not start with dot-separated numbers"));
        }
        if numbers.len() > 4 {
            return Err(err("more than four numbers"));
        }
        if pre.is_some_and(|p| !identifiers_ok(p)) {
            return Err(err("malformed pre-release"));
        }
        if build.is_some_and(|b| !identifiers_ok(b)) {
            return Err(err("malformed build metadata"));
        }
        Ok(NuGetVersion {
            numbers: numbers
                .iter()
                .map(|n| n.trim_start_matches('0').to_owned())
                .collect(),
            pre: pre
                .map(|p| p.split('.').map(str::to_ascii_lowercase).collect())
                .unwrap_or_default(),
        })
    }
}

fn cmp_identifier(a: &str, b: &str) -> Ordering {
    match (is_number(a), is_number(b)) {
        (true, true) => cmp_decimal(a, b),
        (true, false) => Ordering::Less,
        (false, true) => Ordering::Greater,
        (false, false) => a.cmp(b),
    }
}

impl Ord for NuGetVersion {
    fn cmp(&self, other: &Self) -> Ordering {
        fn number(v: &NuGetVersion, i: usize) -> &str {
            v.numbers.get(i).map_or("", String::as_str)
        }
        let numbers = (0..4)
            .map(|i| cmp_decimal(number(self, i), number(other, i)))
            .find(|o| o.is_ne())
            .unwrap_or(Ordering::Equal);
        let pre = match (self.pre.is_empty(), other.pre.is_empty()) {
            (true, true) => Ordering::Equal,
            (true, false) => Ordering::Greater,
            (false, true) => Ordering::Less,
            (false, false) => self
                .pre
                .iter()
                .zip(&other.pre)
                .map(|(a, b)| cmp_identifier(a, b))
                .find(|o| o.is_ne())
                .unwrap_or_else(|| self.pre.len().cmp(&other.pre.len())),
        };
        numbers.then(pre)
    }
}

impl PartialOrd for NuGetVersion {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

pub fn validate(v: &str) -> Result<(), VersionError> {
    NuGetVersion::parse(v).map(|_| ())
}

pub fn compare(a: &str, b: &str) -> Result<Ordering, VersionError> {
    Ok(NuGetVersion::parse(a)?.cmp(&NuGetVersion::parse(b)?))
}

#[cfg(test)]
mod tests {
    use super::super::testutil;
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn osv_scalibr_nuget_versions() {
        testutil::run_scalibr_file("osv-semantic/nuget-versions.txt", compare).finish();
    }

    #[test]
    fn nuget_semantics() {
        let cmp = |a: &str, b: &str| compare(a, b).unwrap();
        assert_eq!(cmp("1", "1.0.0.0"), Ordering::Equal);
        assert_eq!(cmp("v1.2", "1.2.0"), Ordering::Equal);
        assert_eq!(cmp("1.0.0.1", "1.0.0"), Ordering::Greater);
        assert_eq!(cmp("1.0.0-RC.2", "1.0.0-rc.10"), Ordering::Less);
        assert_eq!(cmp("1.0.0-rc.1", "1.0.0-rc.a"), Ordering::Less);
        assert_eq!(cmp("1.0.0-rc", "1.0.0-rc.1"), Ordering::Less);
        assert_eq!(cmp("1.0.0-rc+x", "1.0.0-RC+y"), Ordering::Equal);
        for bad in [
            "",
            "v",
            "1.",
            ".1",
            "1..2",
            "1.2.3.4.5",
            "1.0-",
            "1.0-a..b",
            "1.0+",
            "1.0a",
            "1.0 ",
            "=1.0",
            "V1.0",
            "1.0-a_b",
        ] {
            assert!(validate(bad).is_err(), "{bad:?}");
        }
    }

    fn nuget_version() -> impl Strategy<Value = String> {
        "v?[0-9]{1,2}(\\.[0-9]{1,2}){0,3}(-[a-cA-C0-9]{1,2}(\\.[a-cA-C0-9]{1,2}){0,2})?(\\+[a-z]{1,2})?"
    }

    proptest! {
        #[test]
        fn reflexive(a in nuget_version()) {
            prop_assert_eq!(compare(&a, &a), Ok(Ordering::Equal));
        }

        #[test]
        fn antisymmetric(a in nuget_version(), b in nuget_version()) {
            prop_assert_eq!(compare(&a, &b).unwrap(), compare(&b, &a).unwrap().reverse());
        }

        #[test]
        fn transitive(a in nuget_version(), b in nuget_version(), c in nuget_version()) {
            testutil::check_transitive(compare, &a, &b, &c)?;
        }
    }
}
