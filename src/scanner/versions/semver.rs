//! SemVer 2.0.0 precedence, with the coercions osv.dev applies to the
//! versions of SEMVER-typed OSV ranges (`osv/semver_index.py`, `coerce`):
//!
//! * one leading `v` is dropped (`v1.2.3`, Go's module versions);
//! * a missing minor or patch is `0` (`1` is `1.0.0`, `1.2` is `1.2.0`);
//! * leading zeros are dropped from major/minor/patch and from numeric
//!   pre-release identifiers (`01.02.03-rc.01` is `1.2.3-rc.1`);
//! * an empty pre-release or build identifier becomes `-`
//!   (`1.0.0-a..1` is `1.0.0-a.-.1`).
//!
//! What is still not SemVer after that (a fourth number, `=1.2.3`, spaces,
//! garbage) is an error. Build metadata does not take part in precedence.
//!
//! Major/minor/patch are compared with arbitrary precision: the `semver`
//! crate stores them as `u64` and rejects the 30-digit components that
//! osv-scalibr's fixture orders (osv.dev's Python `semver` has no such
//! limit). Pre-release and build identifiers are validated and ordered by
//! the `semver` crate's `Prerelease` / `BuildMetadata`. Digits are ASCII only
//! (Python's `\d` would also take other scripts' digits).

use std::cmp::Ordering;

use super::{Scheme, VersionError, cmp_decimal};

/// A parsed (coerced) SemVer version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SemverVersion {
    /// Decimal digits, no leading zero.
    pub major: String,
    pub minor: String,
    pub patch: String,
    pub pre: ::semver::Prerelease,
    pub build: ::semver::BuildMetadata,
}

impl SemverVersion {
    /// SemVer precedence (build metadata ignored).
    pub fn cmp_precedence(&self, other: &Self) -> Ordering {
        cmp_decimal(&self.major, &other.major)
            .then_with(|| cmp_decimal(&self.minor, &other.minor))
            .then_with(|| cmp_decimal(&self.patch, &other.patch))
            .then_with(|| self.pre.cmp(&other.pre))
    }

    /// The same version as a `semver::Version`, when its numbers fit `u64`.
    pub fn to_semver(&self) -> Option<::semver::Version> {
        Some(::semver::Version {
            major: self.major.parse().ok()?,
            minor: self.minor.parse().ok()?,
            patch: self.patch.parse().ok()?,
            pre: self.pre.clone(),
            build: self.build.clone(),
        })
    }
}

fn leading_digits(s: &str) -> (&str, &str) {
    let n = s.bytes().take_while(u8::is_ascii_digit).count();
    s.split_at(n)
}

/// Python's `str(int(digits))`.
fn strip_zeros(digits: &str) -> &str {
    let t = digits.trim_start_matches('0');
    if t.is_empty() && !digits.is_empty() {
        "0"
    } else {
        t
    }
}

/// osv.dev's `_coerce_suffix` on each dot-separated identifier.
fn coerce_identifiers(s: &str, strip_numeric_zeros: bool) -> String {
    s.split('.')
        .map(|c| {
            if c.is_empty() {
                "-"
            } else if strip_numeric_zeros && c.bytes().all(|b| b.is_ascii_digit()) {
                strip_zeros(c)
            } else {
                c
            }
        })
        .collect::<Vec<_>>()
        .join(".")
}

pub fn parse(input: &str) -> Result<SemverVersion, VersionError> {
    let err = |reason: String| VersionError::new(Scheme::Semver, input, reason);
    let v = input.strip_prefix('v').unwrap_or(input);

    // ^(\d+)(\.\d+)?(\.\d+)?(.*)$
    let (major, mut rest) = leading_digits(v);
    if major.is_empty() {
        return Err(err("does not start with a number".into()));
    }
    let mut minor_patch = ["0", "0"];
    for slot in &mut minor_patch {
        if let Some(after_dot) = rest.strip_prefix('.') {
            let (n, r) = leading_digits(after_dot);
            if n.is_empty() {
                break;
            }
            *slot = strip_zeros(n);
            rest = r;
        } else {
            break;
        }
    }

    // ^(-[^+]*)?(\+.*)?(.*)$ on the rest; a non-empty third group is never
    // valid SemVer.
    let (pre, build) = match rest.as_bytes().first() {
        None => ("", None),
        Some(b'-') => match rest[1..].split_once('+') {
            Some((p, b)) => (p, Some(b)),
            None => (&rest[1..], None),
        },
        Some(b'+') => ("", Some(&rest[1..])),
        Some(_) => return Err(err(format!("unexpected {rest:?} after the version core"))),
    };
    let pre = if rest.starts_with('-') {
        let coerced = coerce_identifiers(pre, true);
        ::semver::Prerelease::new(&coerced)
            .map_err(|e| err(format!("pre-release {coerced:?}: {e}")))?
    } else {
        ::semver::Prerelease::EMPTY
    };
    let build = match build {
        Some(b) => {
            let coerced = coerce_identifiers(b, false);
            ::semver::BuildMetadata::new(&coerced)
                .map_err(|e| err(format!("build metadata {coerced:?}: {e}")))?
        }
        None => ::semver::BuildMetadata::EMPTY,
    };
    Ok(SemverVersion {
        major: strip_zeros(major).to_owned(),
        minor: minor_patch[0].to_owned(),
        patch: minor_patch[1].to_owned(),
        pre,
        build,
    })
}

pub fn validate(v: &str) -> Result<(), VersionError> {
    parse(v).map(|_| ())
}

pub fn compare(a: &str, b: &str) -> Result<Ordering, VersionError> {
    Ok(parse(a)?.cmp_precedence(&parse(b)?))
}

#[cfg(test)]
mod tests {
    use super::super::testutil::{self, Json, JsonExt, Tally};
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn coercions() {
        let p = |s: &str| {
            let v = parse(s).unwrap();
            let mut out = format!("{}.{}.{}", v.major, v.minor, v.patch);
            if !v.pre.is_empty() {
                out.push_str(&format!("-{}", v.pre));
            }
            if !v.build.is_empty() {
                out.push_str(&format!("+{}", v.build));
            }
            out
        };
        assert_eq!(p("1"), "1.0.0");
        assert_eq!(p("v1.2"), "1.2.0");
        assert_eq!(p("01.02.03-rc.01"), "1.2.3-rc.1");
        assert_eq!(p("1.0.0-a..1"), "1.0.0-a.-.1");
        assert_eq!(p("1.0.0+"), "1.0.0+-");
        assert_eq!(p("1-beta"), "1.0.0-beta");
        assert_eq!(p("1.2-0a"), "1.2.0-0a");
        assert_eq!(
            p("v0.0.0-20231016150651-428517fef5b9"),
            "0.0.0-20231016150651-428517fef5b9"
        );
        assert_eq!(p("2.0.0+incompatible"), "2.0.0+incompatible");
        for bad in [
            "",
            "v",
            "vv1",
            "=1.2.3",
            " 1.2.3",
            "1.2.3 ",
            "1.2.3.4",
            "1.2a",
            "1.",
            "x",
            "1.2.3-a b",
        ] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
        assert_eq!(
            parse("1.2.3-beta.1").unwrap().to_semver(),
            Some(::semver::Version::parse("1.2.3-beta.1").unwrap())
        );
        assert_eq!(parse("99999999999999999999.0.0").unwrap().to_semver(), None);
        assert_eq!(compare("1.0.0", "1.0.0-rc.1"), Ok(Ordering::Greater));
        assert_eq!(compare("1.0.0+a", "1.0.0+b"), Ok(Ordering::Equal));
    }

    /// Lines of osv-scalibr's SemVer fixture that osv-scalibr's own lenient
    /// "semver-like" parser accepts but SemVer (and osv.dev) does not.
    const NOT_SEMVER: &[&str] = &["1.1.3.4.5 = 1.1.3.4.5"];

    #[test]
    fn osv_scalibr_semver_versions() {
        let name = "osv-semantic/semver-versions.txt";
        let mut t = Tally::new(name);
        for l in testutil::scalibr_lines(name) {
            if NOT_SEMVER.contains(&l.line.as_str()) {
                assert!(compare(&l.a, &l.b).is_err(), "{}", l.line);
                t.skipped("more than three numbers: osv-scalibr reads them as build metadata, SemVer/osv.dev reject");
                continue;
            }
            let want = testutil::op_ordering(&l.op);
            assert_eq!(compare(&l.a, &l.b), Ok(want), "{}: {}", l.lineno, l.line);
            assert_eq!(
                compare(&l.b, &l.a),
                Ok(want.reverse()),
                "{}: {}",
                l.lineno,
                l.line
            );
            t.ran("ordering");
        }
        t.finish();
    }

    /// node-semver's `test/fixtures`. Only the version fixtures apply:
    /// ranges, comparators, increments and truncations are npm range/API
    /// semantics that OSV's SemVer order does not have.
    #[test]
    fn node_semver_fixtures() {
        let name = "semver/node-semver-fixtures.json";
        let doc = testutil::read_json(name);
        let mut t = Tally::new(name);
        let fixtures = doc.at("fixtures");
        let Json::Object(files) = fixtures else {
            panic!("fixtures is not an object")
        };
        for (file, cases) in files {
            let cases = cases.arr();
            match file.as_str() {
                "comparisons.js" => {
                    // [v1, v2, options]: v1 > v2.
                    for c in cases {
                        let f = c.arr();
                        let (a, b) = (f[0].str(), f[1].str());
                        assert_eq!(compare(a, b), Ok(Ordering::Greater), "{c:?}");
                        assert_eq!(compare(b, a), Ok(Ordering::Less), "{c:?}");
                        t.ran(file);
                    }
                }
                "equality.js" => {
                    // [v1, v2, loose]: equal. node-semver trims white space
                    // around a version, and loose mode also takes `=` and
                    // `v ` prefixes: node-semver input syntax, not OSV's
                    // (osv.dev rejects them), so those must be errors here.
                    for c in cases {
                        let f = c.arr();
                        let (a, b) = (f[0].str(), f[1].str());
                        if validate(a).is_err() || validate(b).is_err() {
                            let node_syntax =
                                |v: &str| v.trim() != v || v.contains('=') || v.contains("v ");
                            assert!(node_syntax(a) || node_syntax(b), "{c:?}");
                            t.skipped("equality.js: node-semver input syntax (`=`, spaces)");
                            continue;
                        }
                        assert_eq!(compare(a, b), Ok(Ordering::Equal), "{c:?}");
                        assert_eq!(compare(b, a), Ok(Ordering::Equal), "{c:?}");
                        t.ran(file);
                    }
                }
                "valid-versions.js" => {
                    // [v, major, minor, patch, prerelease[], build[]].
                    for c in cases {
                        let f = c.arr();
                        let v = parse(f[0].str()).unwrap_or_else(|e| panic!("{c:?}: {e}"));
                        assert_eq!(v.major, f[1].num(), "{c:?}");
                        assert_eq!(v.minor, f[2].num(), "{c:?}");
                        assert_eq!(v.patch, f[3].num(), "{c:?}");
                        let pre: Vec<String> = f[4]
                            .arr()
                            .iter()
                            .map(|p| match p {
                                Json::Number(n) => n.to_string(),
                                other => other.str().to_owned(),
                            })
                            .collect();
                        let got_pre: Vec<&str> = if v.pre.is_empty() {
                            vec![]
                        } else {
                            v.pre.as_str().split('.').collect()
                        };
                        assert_eq!(got_pre, pre, "{c:?}");
                        let build: Vec<&str> = f[5].arr().iter().map(Json::str).collect();
                        let got_build: Vec<&str> = if v.build.is_empty() {
                            vec![]
                        } else {
                            v.build.as_str().split('.').collect()
                        };
                        assert_eq!(got_build, build, "{c:?}");
                        t.ran(file);
                    }
                }
                "invalid-versions.js" => {
                    // [value, reason, options].
                    for c in cases {
                        let f = c.arr();
                        match (&f[0], f[1].str()) {
                            (Json::String(_), "too long" | "too big") => {
                                // JavaScript limits (256 characters,
                                // Number.MAX_SAFE_INTEGER); OSV compares
                                // numbers of any size.
                                t.skipped("invalid-versions.js: JS length/number limits");
                            }
                            (Json::String(v), _) => {
                                assert!(validate(v).is_err(), "{c:?}");
                                t.ran(file);
                            }
                            _ => t.skipped("invalid-versions.js: non-string JS values"),
                        }
                    }
                }
                "comparator-intersection.js"
                | "increments.js"
                | "range-exclude.js"
                | "range-include.js"
                | "range-intersection.js"
                | "range-parse.js"
                | "truncations.js"
                | "version-gt-range.js"
                | "version-lt-range.js"
                | "version-not-gt-range.js"
                | "version-not-lt-range.js" => {
                    t.skipped_n(&format!("{file}: npm range/API semantics"), cases.len());
                }
                other => panic!("unclassified node-semver fixture {other}"),
            }
        }
        for f in [
            "comparisons.js",
            "equality.js",
            "valid-versions.js",
            "invalid-versions.js",
        ] {
            assert!(t.count(f) > 0, "{f} ran nothing");
        }
        t.finish();
    }

    fn semver_version() -> impl Strategy<Value = String> {
        (
            prop::bool::ANY,
            0u32..4,
            prop::option::of(0u32..4),
            prop::option::of(0u32..4),
            prop::option::of(prop::collection::vec(
                "[0-9]{1,2}|[a-zA-Z-][a-zA-Z0-9-]{0,3}",
                1..4,
            )),
            prop::option::of("[a-z0-9]{1,3}"),
        )
            .prop_map(|(v, major, minor, patch, pre, build)| {
                let mut s = if v { "v".to_owned() } else { String::new() };
                s.push_str(&major.to_string());
                if let Some(m) = minor {
                    s.push_str(&format!(".{m}"));
                    if let Some(p) = patch {
                        s.push_str(&format!(".{p}"));
                    }
                }
                if let Some(pre) = pre {
                    s.push('-');
                    s.push_str(&pre.join("."));
                }
                if let Some(b) = build {
                    s.push('+');
                    s.push_str(&b);
                }
                s
            })
    }

    proptest! {
        #[test]
        fn reflexive(a in semver_version()) {
            prop_assert_eq!(compare(&a, &a), Ok(Ordering::Equal));
        }

        #[test]
        fn antisymmetric(a in semver_version(), b in semver_version()) {
            let ab = compare(&a, &b).map_err(|e| TestCaseError::fail(e.to_string()))?;
            let ba = compare(&b, &a).map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(ab, ba.reverse());
        }

        #[test]
        fn transitive(a in semver_version(), b in semver_version(), c in semver_version()) {
            testutil::check_transitive(compare, &a, &b, &c)?;
        }

        /// Where both fit the crate, our precedence is the crate's.
        #[test]
        fn agrees_with_semver_crate(a in semver_version(), b in semver_version()) {
            let (va, vb) = (parse(&a).unwrap(), parse(&b).unwrap());
            let (sa, sb) = (va.to_semver().unwrap(), vb.to_semver().unwrap());
            prop_assert_eq!(va.cmp_precedence(&vb), sa.cmp_precedence(&sb));
        }
    }
}
