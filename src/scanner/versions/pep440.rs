//! PEP 440 order (PyPI), as `packaging.version.Version` (>= 22) implements it,
//! by way of `pep440_rs`.
//!
//! `LegacyVersion` (anything that is not PEP 440, e.g. `0.1-bulbasaur`) was
//! removed from `packaging` 22 and is an error here. Surrounding white space
//! is ignored, as `packaging`'s `^\s*...\s*$` does. `pep440_rs` keeps each
//! number in a `u64`, so a version with a larger number is an error here
//! (`packaging` has no limit).

use std::cmp::Ordering;

use super::{Scheme, VersionError};

pub use pep440_rs::Version;

/// Python's `\s` for `str` patterns: Unicode white space plus the ASCII
/// information separators U+001C..U+001F.
fn is_python_space(c: char) -> bool {
    c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c)
}

pub fn parse(v: &str) -> Result<Version, VersionError> {
    v.trim_matches(is_python_space)
        .parse::<Version>()
        .map_err(|e| VersionError::new(Scheme::Pep440, v, e.to_string()))
}

pub fn validate(v: &str) -> Result<(), VersionError> {
    parse(v).map(|_| ())
}

pub fn compare(a: &str, b: &str) -> Result<Ordering, VersionError> {
    Ok(parse(a)?.cmp(&parse(b)?))
}

#[cfg(test)]
mod tests {
    use super::super::fixture;
    use super::super::testutil::{self, Json, JsonExt, Tally};
    use super::*;
    use proptest::prelude::*;

    /// `VERSIONS` from packaging's test_version.py, in ascending order: every
    /// pair is checked, as its `test_comparison_true/false` do.
    #[test]
    fn packaging_versions_sorted() {
        let name = "pep440/packaging-VERSIONS.sorted.txt";
        let list: Vec<String> = testutil::read(&fixture(name))
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(str::to_owned)
            .collect();
        let mut t = Tally::new(name);
        for (i, a) in list.iter().enumerate() {
            for (j, b) in list.iter().enumerate() {
                assert_eq!(compare(a, b), Ok(i.cmp(&j)), "{a} vs {b}");
                t.ran("pairwise ordering");
            }
        }
        eprintln!("{name}: {} versions", list.len());
        t.finish();
    }

    /// The cases of packaging's `test_version.py` that are about parsing and
    /// ordering; the ones about other API surface are skipped by name.
    #[test]
    fn packaging_test_version() {
        let name = "pep440/packaging-test_version.extracted.json";
        let doc = testutil::read_json(name);
        let mut t = Tally::new(name);

        let versions = doc.at("module_constants").at("VERSIONS").arr();
        let sorted: Vec<&str> = versions.iter().map(Json::str).collect();
        let file = testutil::read(&fixture("pep440/packaging-VERSIONS.sorted.txt"));
        assert_eq!(
            sorted,
            file.lines().collect::<Vec<_>>(),
            "VERSIONS list differs"
        );

        for p in doc.at("parametrize").arr() {
            let test = p.at("test").str();
            let cases = p.get("cases").map(Json::arr).unwrap_or(&[]);
            match test {
                "test_invalid_versions" => {
                    for c in cases {
                        let v = c.str();
                        assert!(parse(v).is_err(), "{v:?} should be invalid");
                        t.ran(test);
                    }
                }
                "test_normalized_versions" | "test_version_str_repr" => {
                    // [input, normalized]: both parse, and compare equal.
                    for c in cases {
                        let [v, norm] = c.arr() else { panic!("{c:?}") };
                        assert_eq!(compare(v.str(), norm.str()), Ok(Ordering::Equal), "{c:?}");
                        assert_eq!(parse(v.str()).unwrap().to_string(), norm.str(), "{c:?}");
                        t.ran(test);
                    }
                }
                "test_pickle_roundtrip" => {
                    for c in cases {
                        assert!(parse(c.str()).is_ok(), "{c:?}");
                        t.ran(test);
                    }
                }
                "test_version_public"
                | "test_version_base_version"
                | "test_version_epoch"
                | "test_version_release"
                | "test_version_local"
                | "test_version_pre"
                | "test_version_is_prerelease"
                | "test_version_dev"
                | "test_version_is_devrelease"
                | "test_version_post"
                | "test_version_is_postrelease" => {
                    // Attribute accessors are not part of the comparator;
                    // what applies is that each version parses.
                    for c in cases {
                        let v = c.arr()[0].str();
                        assert!(parse(v).is_ok(), "{test}: {v:?}");
                        t.ran("attribute-test versions parse");
                    }
                }
                "test_valid_versions"
                | "test_version_hash"
                | "test_comparison_true"
                | "test_comparison_false" => {
                    // Over VERSIONS: covered by packaging_versions_sorted.
                    t.skipped("over VERSIONS, run in packaging_versions_sorted");
                }
                "test_non_string_versions_raise_invalid_version" => {
                    t.skipped_n("non-string inputs (None, int, list, bytes)", cases.len());
                }
                "test_oversized_version_raises_valueerror" => {
                    // Built from expressions ('1' * 5000), not literals.
                    t.skipped("non-literal cases");
                }
                "test_from_parts"
                | "test_dunder_op_returns_notimplemented"
                | "test_compare_other"
                | "test_base_version_notimplemented_with_non_base_version" => {
                    t.skipped_n(
                        "Python API surface (constructors, dunder methods)",
                        cases.len().max(1),
                    );
                }
                other => panic!("unclassified parametrize {other}"),
            }
        }
        assert!(t.count("test_invalid_versions") > 0);
        assert!(t.count("test_normalized_versions") > 0);
        t.finish();
    }

    /// packaging's `test_specifiers.py` is about specifier matching, which
    /// the comparator does not do; what applies is the list of versions its
    /// `test_specifiers_normalized` feeds to `Specifier("==" + v)`: each must
    /// parse (including `v1.0` and surrounding white space).
    #[test]
    fn packaging_test_specifiers() {
        let name = "pep440/packaging-test_specifiers.extracted.json";
        let doc = testutil::read_json(name);
        let mut t = Tally::new(name);
        for p in doc.at("parametrize").arr() {
            let test = p.at("test").str();
            let n = p.get("cases").map(|c| c.arr().len()).unwrap_or(1);
            if test == "test_specifiers_normalized" {
                for c in p.at("cases").arr() {
                    assert!(parse(c.str()).is_ok(), "{c:?}");
                    t.ran(test);
                }
            } else {
                t.skipped_n("specifier semantics, not version order", n);
            }
        }
        t.finish();
    }

    /// The "legacy versions" block of osv-scalibr's PyPI fixture: these are
    /// `LegacyVersion`s, gone since packaging 22 (osv.dev uses a current
    /// packaging), so not PEP 440 versions.
    const LEGACY: &[&str] = &[
        "0.1-bulbasaur",
        "0.1-charmander",
        "0.9-doduo",
        "0.9-eevee",
        "0.9-fearow",
        "0.9-gyarados",
        "0.9-horsea",
        "0.9-ivysaur",
        "-class.-jw.util.version.version-pre",
        "-class.-jw.util.version.version-preview",
        "-class.-jw.util.version.version-dev",
    ];

    /// osv-scalibr's PyPI fixture; lines with a [`LEGACY`] version must be
    /// errors and are counted as skipped.
    #[test]
    fn osv_scalibr_pypi_versions() {
        let name = "osv-semantic/pypi-versions.txt";
        let mut t = Tally::new(name);
        for l in testutil::scalibr_lines(name) {
            if LEGACY.contains(&l.a.as_str()) || LEGACY.contains(&l.b.as_str()) {
                assert!(compare(&l.a, &l.b).is_err(), "{}", l.line);
                assert!(compare(&l.b, &l.a).is_err(), "{}", l.line);
                t.skipped("LegacyVersion (not PEP 440, removed in packaging 22)");
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
        for v in LEGACY {
            assert!(validate(v).is_err(), "{v}");
        }
        t.finish();
    }

    /// Generated with an older `packaging` that still had `LegacyVersion`:
    /// lines with a non-PEP 440 version (`0.7.10p1`, `trunk`,
    /// `2013-01-21T20:33:09+0100`, ...) order legacy versions and are
    /// skipped. packaging's own `VERSION_PATTERN` rejects exactly 69 distinct
    /// strings in this file; `pep440_rs` must reject the same number.
    #[test]
    fn osv_scalibr_pypi_versions_generated() {
        let mut rejected = std::collections::BTreeSet::new();
        let t = testutil::run_scalibr_file_skipping(
            "osv-semantic/pypi-versions-generated.txt",
            compare,
            |l| {
                let mut legacy = false;
                for v in [&l.a, &l.b] {
                    if validate(v).is_err() {
                        rejected.insert(v.clone());
                        legacy = true;
                    }
                }
                legacy.then_some("LegacyVersion (not PEP 440, removed in packaging 22)")
            },
        );
        assert_eq!(rejected.len(), 69, "{rejected:?}");
        t.finish();
    }

    #[test]
    fn corner_cases() {
        assert_eq!(compare(" 1.0\u{1f}", "v1.0"), Ok(Ordering::Equal));
        assert_eq!(compare("1.0.post1", "1.0-1"), Ok(Ordering::Equal));
        assert_eq!(compare("1.0+abc.5", "1.0+abc.10"), Ok(Ordering::Less));
        assert!(validate("").is_err());
        // pep440_rs keeps numbers in u64; packaging has no limit. Such
        // versions are errors here (none occurs in the fixtures).
        assert!(validate("1.18446744073709551616").is_err());
        assert!(validate("1.18446744073709551615").is_ok());
    }

    fn pep440_version() -> impl Strategy<Value = String> {
        (
            prop::option::of(0u32..3),
            prop::collection::vec(0u32..12, 1..4),
            prop::option::of((
                prop::sample::select(vec!["a", "b", "rc", "c", "alpha", "pre"]),
                0u32..4,
            )),
            prop::option::of(0u32..3),
            prop::option::of(0u32..3),
            prop::option::of("[a-z0-9]{1,3}(\\.[a-z0-9]{1,3}){0,2}"),
        )
            .prop_map(|(epoch, rel, pre, post, dev, local)| {
                let mut s = String::new();
                if let Some(e) = epoch {
                    s.push_str(&format!("{e}!"));
                }
                s.push_str(&rel.iter().map(u32::to_string).collect::<Vec<_>>().join("."));
                if let Some((k, n)) = pre {
                    s.push_str(&format!("{k}{n}"));
                }
                if let Some(p) = post {
                    s.push_str(&format!(".post{p}"));
                }
                if let Some(d) = dev {
                    s.push_str(&format!(".dev{d}"));
                }
                if let Some(l) = local {
                    s.push_str(&format!("+{l}"));
                }
                s
            })
    }

    proptest! {
        #[test]
        fn reflexive(a in pep440_version()) {
            prop_assert_eq!(compare(&a, &a), Ok(Ordering::Equal));
        }

        #[test]
        fn antisymmetric(a in pep440_version(), b in pep440_version()) {
            let ab = compare(&a, &b).map_err(|e| TestCaseError::fail(e.to_string()))?;
            let ba = compare(&b, &a).map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(ab, ba.reverse());
        }

        #[test]
        fn transitive(a in pep440_version(), b in pep440_version(), c in pep440_version()) {
            testutil::check_transitive(compare, &a, &b, &c)?;
        }
    }
}
