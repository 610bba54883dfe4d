//! RPM order over `[epoch:]version[-release]` strings, as OSV's Red Hat /
//! SUSE / AlmaLinux / Rocky ... advisories and rpm databases use them.
//!
//! Each part is compared with `rpmvercmp` semantics (`~` sorts before
//! anything, `^` after the end but before anything else, digit runs
//! numerically, letter runs as strings, every other byte a separator), which
//! is what `rpm-version`'s `Evr` ordering implements; [`rpmvercmp`] exposes it
//! for a single part.
//!
//! Splitting follows osv-scalibr's Red Hat comparator (used by osv-scanner and
//! osv.dev) rather than `rpm_version::Evr::parse`:
//!
//! * an epoch is only the text before the first `:` when it is all digits
//!   (as in rpm's own `parseEVR`); `Evr::parse` would take `a` as the epoch
//!   of `a:1`;
//! * a missing release sorts before any release, even an empty one
//!   (`1 < 1-`, `1 < 1-0`); `Evr::parse` cannot tell `1` from `1-`. (rpm
//!   itself ignores the release when either side lacks one, which is not a
//!   total order.)
//!
//! Versions are rejected when empty, when the version part is empty, or when
//! they contain white space or control characters; everything else is an RPM
//! version (rpm accepts any bytes).

use std::cmp::Ordering;

use rpm_version::Evr as CrateEvr;

use super::{Scheme, VersionError};

/// A parsed `[epoch:]version[-release]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Evr {
    /// Digits only; `None` when absent (which compares as 0).
    pub epoch: Option<String>,
    pub version: String,
    /// `None` when there is no `-` at all; `Some("")` for a trailing `-`.
    pub release: Option<String>,
}

impl Evr {
    pub fn parse(s: &str) -> Result<Evr, VersionError> {
        let err = |reason: &str| VersionError::new(Scheme::Rpm, s, reason);
        if s.is_empty() {
            return Err(err("empty version"));
        }
        if let Some(c) = s.chars().find(|c| c.is_whitespace() || c.is_control()) {
            return Err(err(&format!("contains {c:?}")));
        }
        let (epoch, vr) = match s.split_once(':') {
            Some((e, rest)) if e.bytes().all(|c| c.is_ascii_digit()) => (Some(e), rest),
            _ => (None, s),
        };
        let (version, release) = match vr.split_once('-') {
            Some((v, r)) => (v, Some(r)),
            None => (vr, None),
        };
        if version.is_empty() {
            return Err(err("empty version part"));
        }
        Ok(Evr {
            epoch: epoch.filter(|e| !e.is_empty()).map(str::to_owned),
            version: version.to_owned(),
            release: release.map(str::to_owned),
        })
    }
}

impl Ord for Evr {
    fn cmp(&self, other: &Self) -> Ordering {
        rpmvercmp(
            self.epoch.as_deref().unwrap_or("0"),
            other.epoch.as_deref().unwrap_or("0"),
        )
        .then_with(|| rpmvercmp(&self.version, &other.version))
        .then_with(|| match (&self.release, &other.release) {
            (None, None) => Ordering::Equal,
            (None, Some(_)) => Ordering::Less,
            (Some(_), None) => Ordering::Greater,
            (Some(a), Some(b)) => rpmvercmp(a, b),
        })
    }
}

impl PartialOrd for Evr {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// `rpmvercmp(a, b)` on one EVR part, by way of `rpm-version`.
pub fn rpmvercmp(a: &str, b: &str) -> Ordering {
    CrateEvr::new("0", a, "").cmp(&CrateEvr::new("0", b, ""))
}

pub fn validate(v: &str) -> Result<(), VersionError> {
    Evr::parse(v).map(|_| ())
}

pub fn compare(a: &str, b: &str) -> Result<Ordering, VersionError> {
    Ok(Evr::parse(a)?.cmp(&Evr::parse(b)?))
}

#[cfg(test)]
mod tests {
    use super::super::fixture;
    use super::super::testutil::{self, Tally};
    use super::*;
    use proptest::prelude::*;

    /// `a<TAB>b<TAB>-1|0|1` lines after a `#` header.
    fn run_tsv(name: &str, mut check: impl FnMut(&str, &str, Ordering)) -> Tally {
        let mut t = Tally::new(name);
        for line in testutil::read(&fixture(name)).lines() {
            if line.starts_with('#') || line.trim().is_empty() {
                continue;
            }
            let f: Vec<&str> = line.split('\t').collect();
            let [a, b, r] = f.as_slice() else {
                panic!("{name}: bad line {line:?}")
            };
            let want = match *r {
                "-1" => Ordering::Less,
                "0" => Ordering::Equal,
                "1" => Ordering::Greater,
                _ => panic!("{name}: bad result in {line:?}"),
            };
            check(a, b, want);
            t.ran("rpmvercmp");
        }
        t
    }

    /// rpm's `tests/rpmvercmp.at`, active cases: against `rpmvercmp` and,
    /// since none has a `:` or `-`, against the EVR comparison too.
    #[test]
    fn rpm_rpmvercmp_at() {
        run_tsv("rpm/rpmvercmp.at.tsv", |a, b, want| {
            assert_eq!(rpmvercmp(a, b), want, "rpmvercmp({a}, {b})");
            assert_eq!(compare(a, b), Ok(want), "compare({a}, {b})");
            assert_eq!(compare(b, a), Ok(want.reverse()), "compare({b}, {a})");
        })
        .finish();
    }

    /// The `dnl`-commented cases of `rpmvercmp.at`: rpm documents them as its
    /// actual (arguably buggy) behaviour, so they are asserted as such.
    #[test]
    fn rpm_rpmvercmp_at_commented_oddities() {
        run_tsv("rpm/rpmvercmp.at.commented-oddities.tsv", |a, b, want| {
            assert_eq!(rpmvercmp(a, b), want, "rpmvercmp({a}, {b})");
            assert_eq!(compare(a, b), Ok(want), "compare({a}, {b})");
        })
        .finish();
    }

    /// `a op b` files from claircore (`#` comments, `==` for equality).
    fn claircore_lines(name: &str) -> Vec<(usize, String, Vec<String>)> {
        testutil::read(&fixture(name))
            .lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty() && !l.starts_with('#'))
            .map(|(i, l)| {
                (
                    i + 1,
                    l.to_owned(),
                    l.split_whitespace().map(str::to_owned).collect(),
                )
            })
            .collect()
    }

    #[test]
    fn claircore_rpmvercmp() {
        let name = "rpm/claircore-rpmvercmp.txt";
        let mut t = Tally::new(name);
        for (n, line, f) in claircore_lines(name) {
            let [a, op, b] = f.as_slice() else {
                panic!("{name}:{n}: {line:?}")
            };
            let want = testutil::op_ordering(op);
            assert_eq!(rpmvercmp(a, b), want, "{name}:{n} {line}");
            assert_eq!(rpmvercmp(b, a), want.reverse(), "{name}:{n} {line}");
            assert_eq!(compare(a, b), Ok(want), "{name}:{n} {line}");
            t.ran("rpmvercmp");
        }
        t.finish();
    }

    /// claircore's NEVRA comparison file. Only its "EVR strings work."
    /// section compares EVRs; the other sections order package *names* and
    /// *architectures* (claircore's NEVRA type), which is not a version order.
    #[test]
    fn claircore_nevra_compare() {
        let name = "rpm/claircore-nevra-compare.txt";
        let mut t = Tally::new(name);
        let mut section = String::new();
        for (n, line) in testutil::read(&fixture(name)).lines().enumerate() {
            if line.starts_with('#') {
                section = line.to_owned();
                continue;
            }
            if line.trim().is_empty() {
                continue;
            }
            let f: Vec<&str> = line.split_whitespace().collect();
            let [a, op, b] = f.as_slice() else {
                panic!("{name}:{}: {line:?}", n + 1)
            };
            if section != "# EVR strings work." {
                t.skipped("NEVRA name/arch ordering, not an EVR order");
                continue;
            }
            let want = testutil::op_ordering(op);
            assert_eq!(compare(a, b), Ok(want), "{line}");
            assert_eq!(compare(b, a), Ok(want.reverse()), "{line}");
            t.ran("EVR ordering");
        }
        t.finish();
    }

    /// claircore's NEVRA parse file: rows without a name or arch are EVRs.
    #[test]
    fn claircore_nevra_parse() {
        let name = "rpm/claircore-nevra-parse.txt";
        let mut t = Tally::new(name);
        let unquote = |s: &str| -> String {
            if s == "''" || s == "\"\"" {
                String::new()
            } else {
                s.to_owned()
            }
        };
        for (n, line, f) in claircore_lines(name) {
            let [input, nm, e, v, r, arch] = f.as_slice() else {
                panic!("{name}:{n}: {line:?}")
            };
            if !unquote(nm).is_empty() || !unquote(arch).is_empty() {
                t.skipped("has a package name or arch: NEVRA parsing, not EVR");
                continue;
            }
            let evr = Evr::parse(input).unwrap();
            assert_eq!(evr.epoch.unwrap_or_default(), unquote(e), "{line}");
            assert_eq!(evr.version, unquote(v), "{line}");
            assert_eq!(evr.release.unwrap_or_default(), unquote(r), "{line}");
            t.ran("EVR parse");
        }
        t.finish();
    }

    #[test]
    fn osv_scalibr_redhat_versions() {
        testutil::run_scalibr_file("osv-semantic/redhat-versions.txt", compare).finish();
    }

    /// Where `rpm_version::Evr::parse` splits differently (see module docs).
    #[test]
    fn crate_evr_parse_differences() {
        assert_eq!(
            rpm_version::rpm_evr_compare("1", "1-"),
            Ordering::Equal,
            "crate changed?"
        );
        assert_eq!(compare("1", "1-"), Ok(Ordering::Less));
        assert_eq!(CrateEvr::parse("a:1").epoch(), "a");
        assert_eq!(Evr::parse("a:1").unwrap().version, "a:1");
    }

    #[test]
    fn parse_corner_cases() {
        assert!(compare("", "1").is_err());
        assert!(compare("1:", "1").is_err());
        assert!(compare("1 2", "1").is_err());
        assert!(compare("-1", "1").is_err());
        assert_eq!(compare(":1", "0:1"), Ok(Ordering::Equal));
        assert_eq!(compare("0:1.0-1.el9", "1.0-1.el9"), Ok(Ordering::Equal));
        assert_eq!(compare("1:1.0-1.el9", "2.0-1.el9"), Ok(Ordering::Greater));
        let big = "99999999999999999999999";
        assert_eq!(compare(&format!("{big}:1"), "1:1"), Ok(Ordering::Greater));
    }

    fn rpm_version() -> impl Strategy<Value = String> {
        (
            prop::option::of("[0-9]{1,2}"),
            "[0-9a-zA-Z][0-9a-zA-Z._+~^]{0,7}",
            prop::option::of("[0-9a-zA-Z._+~^]{0,6}"),
        )
            .prop_map(|(e, v, r)| {
                let e = e.map(|e| format!("{e}:")).unwrap_or_default();
                let r = r.map(|r| format!("-{r}")).unwrap_or_default();
                format!("{e}{v}{r}")
            })
    }

    proptest! {
        #[test]
        fn reflexive(a in rpm_version()) {
            prop_assert_eq!(compare(&a, &a), Ok(Ordering::Equal));
        }

        #[test]
        fn antisymmetric(a in rpm_version(), b in rpm_version()) {
            let ab = compare(&a, &b).map_err(|e| TestCaseError::fail(e.to_string()))?;
            let ba = compare(&b, &a).map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(ab, ba.reverse());
        }

        #[test]
        fn transitive(a in rpm_version(), b in rpm_version(), c in rpm_version()) {
            testutil::check_transitive(compare, &a, &b, &c)?;
        }
    }
}
