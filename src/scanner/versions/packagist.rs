//! Packagist (Composer) version order, as osv-scalibr's `semantic` package
//! implements it for osv.dev's `go/osv/ecosystem`; it is PHP's
//! `version_compare` on the version with a leading `v` removed:
//!
//! * one leading `v`, then one leading `V`, is dropped;
//! * `-`, `_` and `+` become `.`, and a `.` is inserted at every boundary
//!   between an ASCII digit and any other character but `.`; the result splits
//!   at `.` into parts (empty parts kept);
//! * parts compare pairwise: numbers numerically (arbitrary precision); other
//!   parts by the special form they start with, `dev` (and anything unknown,
//!   and the empty part) < `a` < `b` < `rc`/`RC` < `#` < `p` (so `alpha` is
//!   `a`, `beta` is `b`, `pl` and `patch` are `p`); a number against a
//!   non-number counts as `#`;
//! * when one version has parts left over, it is greater if the first of them
//!   is a number; otherwise each left-over non-number is compared with `#`
//!   until one differs (`1.0 < 1.0.0`, `1.0pl1 > 1.0 > 1.0rc1`).
//!
//! As osv.dev's Packagist ecosystem does, a version containing `#` is an error:
//! `#` equals every number, which breaks transitivity (`1 = # = 2`). The empty
//! string and strings with blanks or control characters are errors too.
//!
//! One deliberate difference: osv-scalibr decides "a left-over part is a
//! number" with Go's `strconv.Atoi`, which fails on numbers beyond 64 bits and
//! so makes `1.0.99999999999999999999` equal to `1.0`; here any run of digits
//! is a number.

use std::cmp::Ordering;

use super::{Scheme, VersionError, cmp_decimal};

/// A parsed Packagist version: its parts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackagistVersion {
    parts: Vec<String>,
}

impl PackagistVersion {
    pub fn parse(s: &str) -> Result<PackagistVersion, VersionError> {
        let err = |reason: &str| VersionError::new(Scheme::Packagist, s, reason);
        if s.is_empty() {
            return Err(err("empty version"));
        }
        if s.contains('#') {
            return Err(err(
                "contains `#`, which equals every number and cannot be ordered",
            ));
        }
        if s.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(err("contains blanks or control characters"));
        }
        let v = s.strip_prefix('v').unwrap_or(s);
        let v = v.strip_prefix('V').unwrap_or(v);
        let mut canonical = String::with_capacity(v.len() * 2);
        let mut previous: Option<char> = None;
        for c in v.chars() {
            let c = if matches!(c, '-' | '_' | '+') { '.' } else { c };
            if let Some(p) = previous
                && p != '.'
                && c != '.'
                && p.is_ascii_digit() != c.is_ascii_digit()
            {
                canonical.push('.');
            }
            canonical.push(c);
            previous = Some(c);
        }
        Ok(PackagistVersion {
            parts: canonical.split('.').map(str::to_owned).collect(),
        })
    }
}

fn is_number(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

/// PHP's special forms, by prefix; a number counts as `#` (4).
fn weight(part: &str) -> u8 {
    if is_number(part) {
        return 4;
    }
    if part.starts_with("RC") {
        return 3;
    }
    ["dev", "a", "b", "rc", "#", "p"]
        .iter()
        .position(|special| part.starts_with(special))
        .and_then(|i| u8::try_from(i).ok())
        .unwrap_or(0)
}

fn cmp_part(a: &str, b: &str) -> Ordering {
    if is_number(a) && is_number(b) {
        cmp_decimal(a, b)
    } else {
        weight(a).cmp(&weight(b))
    }
}

/// How the left-over parts of the longer version compare with nothing.
fn cmp_rest(rest: &[String]) -> Ordering {
    for part in rest {
        if is_number(part) {
            return Ordering::Greater;
        }
        let o = weight(part).cmp(&weight("#"));
        if o.is_ne() {
            return o;
        }
    }
    Ordering::Equal
}

impl Ord for PackagistVersion {
    fn cmp(&self, other: &Self) -> Ordering {
        let (a, b) = (&self.parts, &other.parts);
        let common = a.len().min(b.len());
        a.iter()
            .zip(b)
            .map(|(x, y)| cmp_part(x, y))
            .find(|o| o.is_ne())
            .unwrap_or_else(|| match a.len().cmp(&b.len()) {
                Ordering::Greater => cmp_rest(a.get(common..).unwrap_or_default()),
                Ordering::Less => cmp_rest(b.get(common..).unwrap_or_default()).reverse(),
                Ordering::Equal => Ordering::Equal,
            })
    }
}

impl PartialOrd for PackagistVersion {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

pub fn validate(v: &str) -> Result<(), VersionError> {
    PackagistVersion::parse(v).map(|_| ())
}

pub fn compare(a: &str, b: &str) -> Result<Ordering, VersionError> {
    Ok(PackagistVersion::parse(a)?.cmp(&PackagistVersion::parse(b)?))
}

#[cfg(test)]
mod tests {
    use super::super::fixture;
    use super::super::testutil::{self, ScalibrLine, Tally};
    use super::*;
    use proptest::prelude::*;

    /// Lines with `#`, which osv.dev refuses (see the module docs).
    fn skip_hash(l: &ScalibrLine) -> Option<&'static str> {
        (l.a.contains('#') || l.b.contains('#')).then_some("`#` is refused, as osv.dev does")
    }

    #[test]
    fn osv_scalibr_packagist_versions() {
        testutil::run_scalibr_file_skipping(
            "osv-semantic/packagist-versions.txt",
            compare,
            skip_hash,
        )
        .finish();
    }

    #[test]
    fn osv_scalibr_packagist_versions_generated() {
        testutil::run_scalibr_file_skipping(
            "osv-semantic/packagist-versions-generated.txt",
            compare,
            skip_hash,
        )
        .finish();
    }

    #[test]
    fn osv_dev_packagist_test_cases() {
        testutil::run_scalibr_file_skipping("osv-dev/packagist_test_cases.txt", compare, skip_hash)
            .finish();
    }

    /// osv.dev's `FuzzPackagistMonotonicity` regression corpus: a pair that
    /// once broke osv.dev's coarse index. There is no expected order; each
    /// version is either refused (`#`) or ordered consistently both ways.
    #[test]
    fn osv_dev_fuzz_corpus() {
        let dir = "osv-dev/fuzz-corpus/FuzzPackagistMonotonicity";
        let mut t = Tally::new(dir);
        let mut entries: Vec<_> = std::fs::read_dir(fixture(dir))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        entries.sort();
        for e in entries {
            for v in testutil::go_fuzz_strings(&format!("{dir}/{e}")) {
                if v.contains('#') {
                    assert!(validate(&v).is_err(), "{v:?}");
                } else {
                    assert_eq!(compare(&v, &v), Ok(Ordering::Equal), "{v:?}");
                    assert_eq!(compare(&v, "1.0.0"), Ok(Ordering::Equal), "{v:?}");
                }
                t.ran("corpus version");
            }
        }
        t.finish();
    }

    #[test]
    fn packagist_semantics() {
        let cmp = |a: &str, b: &str| compare(a, b).unwrap();
        assert_eq!(cmp("v1.2.3", "1.2.3"), Ordering::Equal);
        assert_eq!(cmp("1.0", "1.0.0"), Ordering::Less);
        assert_eq!(cmp("1.0.99999999999999999999", "1.0"), Ordering::Greater);
        assert_eq!(cmp("1.0-alpha", "1.0a"), Ordering::Equal);
        assert_eq!(cmp("1.0-patch1", "1.0"), Ordering::Greater);
        assert_eq!(cmp("dev-main", "0.0.1"), Ordering::Less);
        assert_eq!(cmp("v3.1.0-alpha-1", "3.1.0"), Ordering::Less);
        for bad in ["", "1.0#", "#", "1.0 beta", "1.0\n"] {
            assert!(validate(bad).is_err(), "{bad:?}");
        }
    }

    fn packagist_version() -> impl Strategy<Value = String> {
        "v?[0-9]{1,2}([._+-]?([0-9]{1,2}|dev|a|b|rc|RC|p|pl|x)){0,4}"
    }

    proptest! {
        #[test]
        fn reflexive(a in packagist_version()) {
            prop_assert_eq!(compare(&a, &a), Ok(Ordering::Equal));
        }

        #[test]
        fn antisymmetric(a in packagist_version(), b in packagist_version()) {
            prop_assert_eq!(compare(&a, &b).unwrap(), compare(&b, &a).unwrap().reverse());
        }

        #[test]
        fn transitive(a in packagist_version(), b in packagist_version(), c in packagist_version()) {
            testutil::check_transitive(compare, &a, &b, &c)?;
        }
    }
}
