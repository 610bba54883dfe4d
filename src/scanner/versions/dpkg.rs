//! Debian version order (`dpkg --compare-versions`).
//!
//! Parsing follows dpkg's `parseversion()` (lib/dpkg/parsehelp.c),
//! including the cases dpkg only *warns* about (upstream not starting with a
//! digit, invalid characters), which make `parseversion()` fail and so are
//! errors here. The result is a [`debversion::Version`].
//!
//! Ordering is dpkg's `verrevcmp()`. It is implemented here rather than taken
//! from `debversion`'s `Ord`, because `debversion` 0.5.5 orders an empty digit
//! run below a run of zeros (`1.` < `1.0`, and so `1.0~` > `1.`), where dpkg
//! reads an empty run as 0 (`1.` == `1.0`, `1.0~` < `1.`). `debversion`'s own
//! `FromStr` also differs from dpkg (it accepts `a:0-0`, `1.0-`, `0:`,
//! `-1:0-1` and `0:abc3-0`, and rejects surrounding blanks that dpkg
//! strips), hence the own parser.

use std::cmp::Ordering;

use super::{Scheme, VersionError, cmp_decimal};

pub use debversion::Version;

fn err(v: &str, reason: &str) -> VersionError {
    VersionError::new(Scheme::Dpkg, v, reason)
}

fn is_blank(c: char) -> bool {
    c == ' ' || c == '\t'
}

/// The epoch as dpkg reads it with `strtol(s, &end, 10)`, which skips C
/// white space and takes an optional sign before the digits, and must then
/// have stopped right at the colon.
fn parse_epoch(e: &str) -> Result<u32, &'static str> {
    let t = e.trim_start_matches([' ', '\t', '\n', '\u{b}', '\u{c}', '\r']);
    let (negative, digits) = match t.as_bytes().first() {
        Some(b'-') => (true, &t[1..]),
        Some(b'+') => (false, &t[1..]),
        _ => (false, t),
    };
    if digits.is_empty() || !digits.as_bytes()[0].is_ascii_digit() {
        return Err("epoch in version is empty");
    }
    if !digits.bytes().all(|c| c.is_ascii_digit()) {
        return Err("epoch in version is not number");
    }
    let significant = digits.trim_start_matches('0');
    if negative && !significant.is_empty() {
        return Err("epoch in version is negative");
    }
    match significant.parse::<i32>() {
        Ok(v) => u32::try_from(v).map_err(|_| "epoch in version is negative"),
        Err(_) if significant.is_empty() => Ok(0),
        Err(_) => Err("epoch in version is too big"),
    }
}

/// Parses like dpkg's `parseversion()`.
pub fn parse(input: &str) -> Result<Version, VersionError> {
    let s = input.trim_start_matches(is_blank);
    if s.is_empty() {
        return Err(err(input, "version string is empty"));
    }
    let end = s.find(is_blank).unwrap_or(s.len());
    if !s[end..].trim_start_matches(is_blank).is_empty() {
        return Err(err(input, "version string has embedded spaces"));
    }
    let s = &s[..end];

    let (epoch, rest) = match s.split_once(':') {
        Some((e, rest)) => {
            let epoch = parse_epoch(e).map_err(|reason| err(input, reason))?;
            if rest.is_empty() {
                return Err(err(input, "nothing after colon in version number"));
            }
            (Some(epoch), rest)
        }
        None => (None, s),
    };

    let (upstream, revision) = match rest.rsplit_once('-') {
        Some((_, "")) => return Err(err(input, "revision number is empty")),
        Some((u, r)) => (u, Some(r)),
        None => (rest, None),
    };
    let Some(first) = upstream.chars().next() else {
        return Err(err(input, "version number is empty"));
    };
    if !first.is_ascii_digit() {
        return Err(err(input, "version number does not start with digit"));
    }
    if let Some(c) = upstream
        .chars()
        .find(|&c| !c.is_ascii_alphanumeric() && !".-+~:".contains(c))
    {
        return Err(err(
            input,
            &format!("invalid character {c:?} in version number"),
        ));
    }
    if let Some(c) = revision
        .unwrap_or("")
        .chars()
        .find(|&c| !c.is_ascii_alphanumeric() && !".+~".contains(c))
    {
        return Err(err(
            input,
            &format!("invalid character {c:?} in revision number"),
        ));
    }
    Ok(Version {
        epoch,
        upstream_version: upstream.to_owned(),
        debian_revision: revision.map(str::to_owned),
    })
}

/// dpkg's `order()`: `~` sorts before everything, even the end of the part,
/// then letters, then everything else.
fn order(c: Option<u8>) -> i32 {
    match c {
        None => 0,
        Some(c) if c.is_ascii_digit() => 0,
        Some(c) if c.is_ascii_alphabetic() => i32::from(c),
        Some(b'~') => -1,
        Some(c) => i32::from(c) + 256,
    }
}

/// dpkg's `verrevcmp()`; digit runs are compared with arbitrary precision.
pub fn verrevcmp(a: &str, b: &str) -> Ordering {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let (mut i, mut j) = (0, 0);
    while i < a.len() || j < b.len() {
        while (i < a.len() && !a[i].is_ascii_digit()) || (j < b.len() && !b[j].is_ascii_digit()) {
            let ac = order(a.get(i).copied());
            let bc = order(b.get(j).copied());
            if ac != bc {
                return ac.cmp(&bc);
            }
            i += 1;
            j += 1;
        }
        let (da, db) = (i, j);
        while i < a.len() && a[i].is_ascii_digit() {
            i += 1;
        }
        while j < b.len() && b[j].is_ascii_digit() {
            j += 1;
        }
        let da = std::str::from_utf8(&a[da..i]).unwrap_or("");
        let db = std::str::from_utf8(&b[db..j]).unwrap_or("");
        let r = cmp_decimal(da, db);
        if r != Ordering::Equal {
            return r;
        }
    }
    Ordering::Equal
}

/// dpkg's `dpkg_version_compare()`.
pub fn cmp_versions(a: &Version, b: &Version) -> Ordering {
    a.epoch
        .unwrap_or(0)
        .cmp(&b.epoch.unwrap_or(0))
        .then_with(|| verrevcmp(&a.upstream_version, &b.upstream_version))
        .then_with(|| {
            verrevcmp(
                a.debian_revision.as_deref().unwrap_or(""),
                b.debian_revision.as_deref().unwrap_or(""),
            )
        })
}

pub fn validate(v: &str) -> Result<(), VersionError> {
    parse(v).map(|_| ())
}

pub fn compare(a: &str, b: &str) -> Result<Ordering, VersionError> {
    Ok(cmp_versions(&parse(a)?, &parse(b)?))
}

#[cfg(test)]
mod tests {
    use super::super::fixture;
    use super::super::testutil::{self, Json, JsonExt, Tally};
    use super::*;
    use proptest::prelude::*;

    /// dpkg's `scripts/t/Dpkg_Version.t` `__DATA__`: `v1 v2 sign`.
    #[test]
    fn dpkg_version_t_data() {
        let name = "dpkg/Dpkg_Version.t.__DATA__.txt";
        let mut t = Tally::new(name);
        for line in testutil::read(&fixture(name)).lines() {
            if line.trim().is_empty() {
                continue;
            }
            let f: Vec<&str> = line.split_whitespace().collect();
            let [a, b, sign] = f.as_slice() else {
                panic!("bad line {line:?}")
            };
            let want = match *sign {
                "-1" => Ordering::Less,
                "0" => Ordering::Equal,
                "1" => Ordering::Greater,
                _ => panic!("bad sign in {line:?}"),
            };
            assert_eq!(compare(a, b), Ok(want), "{line}");
            assert_eq!(compare(b, a), Ok(want.reverse()), "{line} reversed");
            t.ran("ordering");
        }
        t.finish();
    }

    /// dpkg's `lib/dpkg/t/t-version.c` `parseversion()` cases, plus the
    /// invalid-character loops its JSON note describes.
    #[test]
    fn t_version_c_parse_cases() {
        let name = "dpkg/t-version.c.parse-cases.json";
        let doc = testutil::read_json(name);
        let mut t = Tally::new(name);
        for case in doc.at("cases").arr() {
            let input = case.at("input").str();
            let valid = matches!(case.at("valid"), Json::Bool(true));
            let got = parse(input);
            if valid {
                let v = got.unwrap_or_else(|e| panic!("{input:?}: {e}"));
                let exp = case.at("expected");
                let epoch: u32 = exp.at("epoch").num().parse().unwrap();
                assert_eq!(v.epoch.unwrap_or(0), epoch, "{input:?}");
                assert_eq!(v.upstream_version, exp.at("upstream").str(), "{input:?}");
                assert_eq!(
                    v.debian_revision.as_deref().unwrap_or(""),
                    exp.at("revision").str(),
                    "{input:?}"
                );
                t.ran("valid");
            } else {
                assert!(got.is_err(), "{input:?} should be rejected, got {got:?}");
                t.ran("invalid");
            }
        }
        // From the note: "each of !#@$%&/|\<>()[]{};,_=*^' is invalid in
        // upstream '0:0X-0' and each of !#@$%&/|\<>()[]{}:;,_=*^' is invalid
        // in revision '0:0-X'".
        for c in "!#@$%&/|\\<>()[]{};,_=*^'".chars() {
            let v = format!("0:0{c}-0");
            assert!(parse(&v).is_err(), "{v:?}");
            t.ran("invalid (note: upstream char loop)");
        }
        for c in "!#@$%&/|\\<>()[]{}:;,_=*^'".chars() {
            let v = format!("0:0-{c}");
            assert!(parse(&v).is_err(), "{v:?}");
            t.ran("invalid (note: revision char loop)");
        }
        t.finish();
    }

    #[test]
    fn osv_scalibr_debian_versions() {
        testutil::run_scalibr_file("osv-semantic/debian-versions.txt", compare).finish();
    }

    #[test]
    fn osv_scalibr_debian_versions_generated() {
        testutil::run_scalibr_file("osv-semantic/debian-versions-generated.txt", compare).finish();
    }

    /// osv.dev's `FuzzDpkgMonotonicity` regression corpus: pairs that once
    /// broke osv.dev. The fuzz target checks a coarse index, not the order, so
    /// there is no expected answer; what applies here is that each pair is
    /// handled consistently (both directions agree, errors only for strings
    /// dpkg rejects) and, where dpkg's own answer is known, that answer.
    #[test]
    fn osv_dev_fuzz_corpus() {
        let dir = "osv-dev/fuzz-corpus/FuzzDpkgMonotonicity";
        let mut t = Tally::new(dir);
        let mut entries: Vec<_> = std::fs::read_dir(fixture(dir))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        entries.sort();
        for e in entries {
            let args = testutil::go_fuzz_strings(&format!("{dir}/{e}"));
            let [a, b] = args.as_slice() else {
                panic!("{e}: {args:?}")
            };
            let ab = compare(a, b);
            let ba = compare(b, a);
            match (&ab, &ba) {
                (Ok(x), Ok(y)) => assert_eq!(*x, y.reverse(), "{a:?} {b:?}"),
                _ => {
                    assert!(ab.is_err() && ba.is_err(), "{a:?} {b:?}");
                    assert!(validate(a).is_err() || validate(b).is_err());
                }
            }
            t.ran("consistent pair");
        }
        // dpkg's answers for those pairs: "~" does not start with a digit;
        // "1. " is "1." once blanks are stripped, and an empty digit run is 0.
        assert!(compare("1", "~").is_err());
        assert_eq!(compare("0.~", "0."), Ok(Ordering::Less));
        assert_eq!(compare("1.0", "1. "), Ok(Ordering::Equal));
        t.finish();
    }

    /// Where `debversion` 0.5.5's `Ord` differs from dpkg (see module docs).
    #[test]
    fn debversion_crate_bug_is_worked_around() {
        let a: Version = "1.0~".parse().unwrap();
        let b: Version = "1.".parse().unwrap();
        assert_eq!(
            a.cmp(&b),
            Ordering::Greater,
            "debversion still has the bug?"
        );
        assert_eq!(compare("1.0~", "1."), Ok(Ordering::Less));
        assert_eq!(compare("1.0", "1."), Ok(Ordering::Equal));
        // and its parser, more lenient than dpkg in some ways, stricter in one
        for v in ["a:0-0", "1.0-", "0:", "-1:0-1", "0:abc3-0"] {
            assert!(v.parse::<Version>().is_ok(), "debversion rejects {v:?} now");
            assert!(parse(v).is_err(), "{v:?}");
        }
        assert!("  0:0-1".parse::<Version>().is_err());
        assert!(parse("  0:0-1").is_ok());
    }

    #[test]
    fn parse_corner_cases() {
        assert_eq!(parse("+1:0").map(|v| v.epoch), Ok(Some(1)));
        assert!(parse("-0:0").is_ok());
        assert!(parse("2147483648:0").is_err());
        assert_eq!(parse("2147483647:0").map(|v| v.epoch), Ok(Some(2147483647)));
        assert!(parse("1:").is_err());
        assert!(parse("1.0 ").is_ok());
        assert!(parse("1.0é").is_err());
    }

    fn dpkg_version() -> impl Strategy<Value = String> {
        (
            prop::option::of(0u32..4),
            "[0-9][0-9a-zA-Z.+~]{0,8}",
            prop::option::of("[0-9a-z.+~]{1,6}"),
        )
            .prop_map(|(e, u, r)| {
                let mut s = String::new();
                if let Some(e) = e {
                    s.push_str(&format!("{e}:"));
                }
                s.push_str(&u);
                if let Some(r) = r {
                    s.push('-');
                    s.push_str(&r);
                }
                s
            })
    }

    fn dpkg_version_ending_in_digits() -> impl Strategy<Value = String> {
        (
            prop::option::of(0u32..4),
            "[0-9]([0-9a-zA-Z.+~]{0,7}[0-9])?",
            prop::option::of("([0-9a-z.+~]{0,5})?[0-9]"),
        )
            .prop_map(|(e, u, r)| {
                let e = e.map(|e| format!("{e}:")).unwrap_or_default();
                let r = r.map(|r| format!("-{r}")).unwrap_or_default();
                format!("{e}{u}{r}")
            })
    }

    proptest! {
        #[test]
        fn generated_versions_are_valid(a in dpkg_version()) {
            prop_assert!(validate(&a).is_ok(), "{}", a);
        }

        #[test]
        fn reflexive(a in dpkg_version()) {
            prop_assert_eq!(compare(&a, &a), Ok(Ordering::Equal));
        }

        #[test]
        fn antisymmetric(a in dpkg_version(), b in dpkg_version()) {
            let ab = compare(&a, &b).map_err(|e| TestCaseError::fail(e.to_string()))?;
            let ba = compare(&b, &a).map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(ab, ba.reverse());
        }

        #[test]
        fn transitive(a in dpkg_version(), b in dpkg_version(), c in dpkg_version()) {
            testutil::check_transitive(compare, &a, &b, &c)?;
        }

        /// Where dpkg and debversion agree, i.e. when every part ends in a
        /// digit so that an empty digit run never meets a non-empty one, the
        /// crate's order is ours.
        #[test]
        fn agrees_with_debversion_on_common_ground(
            a in dpkg_version_ending_in_digits(),
            b in dpkg_version_ending_in_digits(),
        ) {
            let (va, vb) = (parse(&a).unwrap(), parse(&b).unwrap());
            prop_assert_eq!(cmp_versions(&va, &vb), va.cmp(&vb));
        }
    }
}
