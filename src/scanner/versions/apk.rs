//! Alpine `apk` version order, ported from apk-tools `src/version.c` (master,
//! i.e. apk v3, whose `test/unit/version.data` is a superset of 2.14's).
//!
//! Grammar: `digit{.digit}...{letter}{_suf{#}}...{~hash}{-r#}` where `suf` is
//! one of `alpha < beta < pre < rc < (none) < cvs < svn < git < hg < p`. A
//! number after the first one compares as a string when either side has a
//! leading zero (`1.05 < 1.1`), numerically otherwise.
//!
//! apk-tools never fails a comparison: a version is tokenised until the first
//! token that does not fit the grammar, and that "invalid" token then sorts
//! after a pre-release suffix but before the end of a version (so `1.0 <
//! 1.0bc` but `1.0_foo < 1.0`). [`compare`] keeps that order, with these
//! deliberate differences:
//!
//! * a version that does not even start with a digit (empty, `.1`, `a`, `v1`)
//!   cannot be parsed at all: error;
//! * when both versions turn invalid at the same token after an equal prefix,
//!   apk-tools answers EQUAL although the strings differ (`1-ruff1` vs
//!   `1-ruff2`): error, per the crate-wide "never silently Equal" contract;
//! * digits right after the letter (`6.6.2p1-r0`) are read as a number, as
//!   apk-tools up to 2.10 did (Alpine <= 3.10, whose `apk version -t`
//!   produced osv-scalibr's generated fixture). Later apk-tools call that
//!   invalid and, comparing two such versions, answer EQUAL; OSV's Alpine
//!   data does contain them;
//! * numbers are compared with arbitrary precision (apk-tools wraps at 2^64).
//!
//! [`validate`] is strict: exactly what apk v3's `apk_version_validate`
//! accepts (so `6.6.2p1-r0` is invalid there).

use std::cmp::Ordering;

use super::{Scheme, VersionError, cmp_decimal};

/// Token kinds, in apk-tools' order (`enum PARTS`): the order matters, both for
/// what may follow what and for the tail comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    InitialDigit,
    Digit,
    Letter,
    Suffix,
    SuffixNo,
    CommitHash,
    RevisionNo,
    End,
    Invalid,
}

/// Suffix ranks; `None` (no suffix) is the pivot between pre- and post-release.
const SUFFIXES: [&str; 10] = [
    "alpha", "beta", "pre", "rc", "", "cvs", "svn", "git", "hg", "p",
];
const SUFFIX_NONE: usize = 4;

#[derive(Debug, Clone, Copy)]
struct Token<'a> {
    kind: Kind,
    /// Index into [`SUFFIXES`] for `Kind::Suffix`.
    suffix: usize,
    value: &'a [u8],
}

struct Lexer<'a> {
    rest: &'a [u8],
    tok: Token<'a>,
    /// Read digits right after the letter as a number, as apk <= 2.10 did
    /// (for [`compare`], not [`validate`]).
    lenient: bool,
}

fn take_while(b: &[u8], pred: impl Fn(u8) -> bool) -> (&[u8], &[u8]) {
    let n = b.iter().position(|&c| !pred(c)).unwrap_or(b.len());
    b.split_at(n)
}

impl<'a> Lexer<'a> {
    /// `token_first`: an initial run of digits.
    fn new(s: &'a str, lenient: bool) -> Self {
        let mut lx = Lexer {
            lenient,
            rest: s.as_bytes(),
            tok: Token {
                kind: Kind::InitialDigit,
                suffix: SUFFIX_NONE,
                value: &[],
            },
        };
        lx.parse_digits();
        lx
    }

    fn parse_digits(&mut self) {
        let (digits, rest) = take_while(self.rest, |c| c.is_ascii_digit());
        self.tok.value = digits;
        self.rest = rest;
        if digits.is_empty() {
            self.tok.kind = Kind::Invalid;
        }
    }

    fn invalid(&mut self) {
        self.tok.kind = Kind::Invalid;
    }

    /// `token_next`: classify by the first byte and check the previous token
    /// allows this one.
    fn advance(&mut self) {
        let Some(&c) = self.rest.first() else {
            self.tok.kind = Kind::End;
            return;
        };
        let prev = self.tok.kind;
        match c {
            b'a'..=b'z' => {
                if prev > Kind::Digit {
                    return self.invalid();
                }
                self.tok.value = &self.rest[..1];
                self.tok.kind = Kind::Letter;
                self.rest = &self.rest[1..];
            }
            b'.' | b'0'..=b'9' => {
                if c == b'.' {
                    if prev > Kind::Digit {
                        return self.invalid();
                    }
                    self.rest = &self.rest[1..];
                }
                self.tok.kind = match prev {
                    Kind::InitialDigit | Kind::Digit => Kind::Digit,
                    // apk <= 2.10 read `2p1` as letter `p`, number 1.
                    Kind::Letter if self.lenient && c != b'.' => Kind::Digit,
                    Kind::Suffix => Kind::SuffixNo,
                    _ => return self.invalid(),
                };
                self.parse_digits();
            }
            b'_' => {
                if prev > Kind::SuffixNo {
                    return self.invalid();
                }
                let (name, rest) = take_while(&self.rest[1..], |c| c.is_ascii_lowercase());
                self.rest = rest;
                self.tok.value = name;
                match SUFFIXES
                    .iter()
                    .position(|s| !s.is_empty() && s.as_bytes() == name)
                {
                    Some(i) => {
                        self.tok.suffix = i;
                        self.tok.kind = Kind::Suffix;
                    }
                    None => self.invalid(),
                }
            }
            b'~' => {
                if prev >= Kind::CommitHash {
                    return self.invalid();
                }
                let (hash, rest) = take_while(&self.rest[1..], |c| {
                    c.is_ascii_digit() || (b'a'..=b'f').contains(&c)
                });
                if hash.is_empty() {
                    return self.invalid();
                }
                self.rest = rest;
                self.tok.value = hash;
                self.tok.kind = Kind::CommitHash;
            }
            b'-' => {
                if prev >= Kind::RevisionNo || !self.rest.starts_with(b"-r") {
                    return self.invalid();
                }
                self.rest = &self.rest[2..];
                self.tok.kind = Kind::RevisionNo;
                self.parse_digits();
            }
            _ => self.invalid(),
        }
    }
}

fn digits_str(b: &[u8]) -> &str {
    // Only ever called on runs of ASCII digits.
    std::str::from_utf8(b).unwrap_or("")
}

/// `token_cmp`, for two tokens of the same kind.
fn token_cmp(a: &Token<'_>, b: &Token<'_>) -> Ordering {
    match a.kind {
        // A leading zero makes a (non-initial) number compare as a string, as
        // in Gentoo: 1.05 < 1.1 < 1.10.
        Kind::Digit if a.value.first() == Some(&b'0') || b.value.first() == Some(&b'0') => {
            a.value.cmp(b.value)
        }
        Kind::Digit | Kind::InitialDigit | Kind::SuffixNo | Kind::RevisionNo => {
            cmp_decimal(digits_str(a.value), digits_str(b.value))
        }
        Kind::Letter => a.value.cmp(b.value),
        Kind::Suffix => a.suffix.cmp(&b.suffix),
        Kind::CommitHash | Kind::End | Kind::Invalid => a.value.cmp(b.value),
    }
}

/// What `apk_version_compare_fuzzy` decides.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Raw {
    Ord(Ordering),
    /// Both versions became invalid at the same token, after equal prefixes:
    /// apk-tools says EQUAL.
    BothInvalid,
}

fn compare_raw(a: &str, b: &str, fuzzy: bool) -> Raw {
    let mut la = Lexer::new(a, true);
    let mut lb = Lexer::new(b, true);
    while la.tok.kind == lb.tok.kind && la.tok.kind < Kind::End {
        let r = token_cmp(&la.tok, &lb.tok);
        if r != Ordering::Equal {
            return Raw::Ord(r);
        }
        la.advance();
        lb.advance();
    }
    let (ta, tb) = (la.tok, lb.tok);
    if ta.kind == tb.kind {
        return if ta.kind == Kind::Invalid {
            Raw::BothInvalid
        } else {
            Raw::Ord(Ordering::Equal)
        };
    }
    if tb.kind == Kind::End && fuzzy {
        return Raw::Ord(Ordering::Equal);
    }
    // Equal so far: the longer version is greater, unless what follows is a
    // pre-release suffix; the larger token kind sorts first.
    if ta.kind == Kind::Suffix && ta.suffix < SUFFIX_NONE {
        return Raw::Ord(Ordering::Less);
    }
    if tb.kind == Kind::Suffix && tb.suffix < SUFFIX_NONE {
        return Raw::Ord(Ordering::Greater);
    }
    Raw::Ord(tb.kind.cmp(&ta.kind))
}

fn err(v: &str, reason: &str) -> VersionError {
    VersionError::new(Scheme::Apk, v, reason)
}

/// A version apk can place at all: it must start with a digit.
fn check_orderable(v: &str) -> Result<(), VersionError> {
    if Lexer::new(v, true).tok.kind == Kind::Invalid {
        return Err(err(v, "does not start with a digit"));
    }
    Ok(())
}

/// `apk_version_validate`: the whole string follows the grammar.
pub fn validate(v: &str) -> Result<(), VersionError> {
    let mut lx = Lexer::new(v, false);
    while lx.tok.kind < Kind::End {
        lx.advance();
    }
    if lx.tok.kind == Kind::End {
        Ok(())
    } else {
        let at = v.len() - lx.rest.len();
        Err(err(v, &format!("not an apk version from byte {at} on")))
    }
}

/// `apk version -t a b`, see the module docs for the two error cases.
pub fn compare(a: &str, b: &str) -> Result<Ordering, VersionError> {
    check_orderable(a)?;
    check_orderable(b)?;
    match compare_raw(a, b, false) {
        Raw::Ord(o) => Ok(o),
        Raw::BothInvalid => Err(err(
            b,
            &format!("apk-tools cannot tell it from {a:?}: both turn invalid at the same token"),
        )),
    }
}

/// `apk_version_match(a, op, b)`: whether `a op b` holds, for a dependency
/// operator made of `<`, `>`, `=`, `~` (fuzzy: `b` is a prefix of `a`) and a
/// leading `!` (negation), as in `apk version -t` and `test/version.data`.
pub fn version_match(a: &str, op: &str, b: &str) -> Result<bool, VersionError> {
    let (negate, op) = match op.strip_prefix('!') {
        Some(rest) => (true, rest),
        None => (false, op),
    };
    if op.is_empty() || !op.chars().all(|c| matches!(c, '<' | '>' | '=' | '~')) {
        return Err(err(b, &format!("unknown apk operator {op:?}")));
    }
    check_orderable(a)?;
    check_orderable(b)?;
    let fuzzy = op.contains('~');
    let result = match compare_raw(a, b, fuzzy) {
        Raw::Ord(o) => o,
        Raw::BothInvalid => Ordering::Equal,
    };
    let ok = match result {
        Ordering::Less => op.contains('<'),
        Ordering::Greater => op.contains('>'),
        Ordering::Equal => op.contains('=') || fuzzy,
    };
    Ok(ok != negate)
}

#[cfg(test)]
mod tests {
    use super::super::fixture;
    use super::super::testutil::{self, Tally};
    use super::*;
    use proptest::prelude::*;

    fn ord(op: &str) -> Ordering {
        match op {
            "<" => Ordering::Less,
            ">" => Ordering::Greater,
            "=" => Ordering::Equal,
            _ => panic!("bad op {op}"),
        }
    }

    /// Runs one apk-tools `version.data` file the way `test/unit/version_test.c`
    /// (master) and `test/version.sh` (2.14) read it: `#` starts a comment,
    /// `a op b` asserts `apk_version_match`, a lone `v` asserts validity and
    /// `!v` invalidity.
    fn run_apk_data(name: &str) -> Tally {
        let text = testutil::read(&fixture(name));
        let mut t = Tally::new(name);
        for (lineno, raw) in text.lines().enumerate() {
            let line = raw.split('#').next().unwrap_or("").trim();
            if line.is_empty() {
                continue;
            }
            let parts: Vec<&str> = line.split_whitespace().collect();
            match parts.as_slice() {
                [a, op, b] if !op.contains('~') && !op.contains('!') => {
                    let want = ord(op);
                    assert_eq!(compare(a, b), Ok(want), "{name}:{} {line}", lineno + 1);
                    assert_eq!(
                        compare(b, a),
                        Ok(want.reverse()),
                        "{name}:{} {line} (reversed)",
                        lineno + 1
                    );
                    assert_eq!(version_match(a, op, b), Ok(true), "{line}");
                    t.ran("ordering");
                }
                [a, op, b] => {
                    // Fuzzy (`~`) and negated matches: apk's dependency
                    // matching, not the total order; checked through
                    // `version_match`.
                    assert_eq!(
                        version_match(a, op, b),
                        Ok(true),
                        "{name}:{} {line}",
                        lineno + 1
                    );
                    t.ran("fuzzy/negated match");
                }
                [v] => {
                    if let Some(bad) = v.strip_prefix('!') {
                        assert!(validate(bad).is_err(), "{name}:{} {line}", lineno + 1);
                        t.ran("invalid");
                    } else {
                        assert_eq!(validate(v), Ok(()), "{name}:{} {line}", lineno + 1);
                        t.ran("valid");
                    }
                }
                _ => panic!("{name}:{}: unparseable line {raw:?}", lineno + 1),
            }
        }
        t
    }

    #[test]
    fn apk_tools_2_14_version_data() {
        run_apk_data("apk/apk-tools-2.14-stable-test-version.data").finish();
    }

    #[test]
    fn apk_tools_master_version_data() {
        let t = run_apk_data("apk/apk-tools-master-test-unit-version.data");
        assert!(t.count("invalid") > 0 && t.count("valid") > 0);
        assert!(t.count("fuzzy/negated match") > 0);
        t.finish();
    }

    const TIE: &str = "both sides turn invalid (for apk v3) at the same token after equal \
        prefixes: apk-tools says EQUAL for different strings, Crowsnest returns Err";
    const NOT_A_VERSION: &str = "does not start with a digit: not an apk version, Err";

    /// osv-scalibr's hand-written Alpine fixture follows osv-scalibr's own
    /// regex-based comparator, which differs from apk-tools on versions that
    /// apk v3 rejects. These are the lines where `compare` (apk-tools master
    /// order, see the module docs) answers differently, and why.
    const SCALIBR_ALPINE_DISAGREEMENTS: &[(&str, &str)] = &[
        (
            "1-r = 1-r0",
            "`-r` without a number is invalid in apk v3 and so sorts below `-r0` (apk 2.14 read it as r0)",
        ),
        ("0..1..0 < 0..1..1", TIE),
        ("0...1...0 < 0...1...1", TIE),
        ("0...1...0.r1 < 0...1...0.r2", TIE),
        ("0...1...0r1 < 0...1...0r2", TIE),
        ("0..8 = 0..8", TIE),
        ("0..8 > 0...8", TIE),
        ("0.8.21.r2 > 0.8.21.r1", TIE),
        (
            "1-r0-1 = 1-r-2",
            "apk v3: `1-r-2` is invalid at its empty revision, `1-r0-1` one token later, so 1-r0-1 is greater",
        ),
        ("1-r0-1 = 1-r0-2", TIE),
        ("1-ruff2 = 1-ruff1", TIE),
        ("1-ruff2 = 1--ruff1", TIE),
        ("1-r0-ruff2 = 1-r0-ruff1", TIE),
        (".1 < 1", NOT_A_VERSION),
        ("1 > .1", NOT_A_VERSION),
        (".2 > .1", NOT_A_VERSION),
        ("a < b", NOT_A_VERSION),
        ("c > b", NOT_A_VERSION),
        ("c = c", NOT_A_VERSION),
    ];

    /// Every line of osv-scalibr's hand-written Alpine fixture agrees with
    /// `compare` (both directions) except exactly the listed ones.
    #[test]
    fn osv_scalibr_alpine_versions() {
        let name = "osv-semantic/alpine-versions.txt";
        let mut t = Tally::new(name);
        let mut unexpected = Vec::new();
        let mut seen = vec![false; SCALIBR_ALPINE_DISAGREEMENTS.len()];
        for l in testutil::scalibr_lines(name) {
            let want = ord(&l.op);
            let got = (compare(&l.a, &l.b), compare(&l.b, &l.a));
            let agrees = got == (Ok(want), Ok(want.reverse()));
            let listed = SCALIBR_ALPINE_DISAGREEMENTS
                .iter()
                .position(|(line, _)| *line == l.line);
            match (agrees, listed) {
                (true, None) => t.ran("ordering"),
                (false, Some(i)) => {
                    seen[i] = true;
                    t.skipped("osv-scalibr's own comparator disagrees with apk-tools");
                }
                (true, Some(_)) => unexpected.push(format!("listed but agrees: {:?}", l.line)),
                (false, None) => unexpected.push(format!("{}: {:?} -> {got:?}", l.lineno, l.line)),
            }
        }
        testutil::assert_failures(name, &unexpected);
        for (i, (line, why)) in SCALIBR_ALPINE_DISAGREEMENTS.iter().enumerate() {
            assert!(seen[i], "listed line {line:?} ({why}) no longer in {name}");
        }
        t.finish();
    }

    #[test]
    fn osv_scalibr_alpine_versions_generated() {
        testutil::run_scalibr_file("osv-semantic/alpine-versions-generated.txt", compare).finish();
    }

    /// osv.dev's Alpine converter rejects these; so does `validate`.
    #[test]
    fn osv_dev_converter_invalid_versions() {
        let name = "osv-dev/alpine-converter-invalid_versions.txt";
        let mut t = Tally::new(name);
        for v in testutil::plain_list(name) {
            assert!(validate(&v).is_err(), "{v}");
            t.ran("invalid");
        }
        t.finish();
    }

    /// osv.dev's Alpine converter accepts these and writes them into OSV
    /// records, so each must be orderable against every other one. Eight
    /// are not valid apk v3 versions (`6.6.2p1-r0`, `10.2.22.r0`):
    /// `validate` rejects those, `compare` still orders them.
    #[test]
    fn osv_dev_converter_valid_versions() {
        let name = "osv-dev/alpine-converter-valid_versions.txt";
        let list = testutil::plain_list(name);
        let mut t = Tally::new(name);
        let mut invalid = 0;
        for (i, a) in list.iter().enumerate() {
            if validate(a).is_err() {
                invalid += 1;
            }
            for (j, b) in list.iter().enumerate() {
                let ab = compare(a, b);
                let ba = compare(b, a);
                match (&ab, &ba) {
                    (Ok(x), Ok(y)) => assert_eq!(*x, y.reverse(), "{a} {b}"),
                    // Only an entry apk v3 rejects compared with itself:
                    // such an entry is never Equal, not even to itself.
                    _ => assert!(i == j && validate(a).is_err(), "{a} {b}: {ab:?}"),
                }
            }
            t.ran("orderable against every other entry");
        }
        eprintln!("{name}: {invalid} entries are not strictly valid apk versions");
        assert_eq!(invalid, 8);
        t.finish();
    }

    #[test]
    fn corner_cases() {
        use Ordering::*;
        // apk 2.14 vs v3 differences, decided the v3 way.
        assert!(validate("0.1_pre2~1234abcd").is_ok());
        assert!(validate("0.1-r").is_err());
        assert!(validate("0.1_").is_err());
        assert_eq!(compare("1.0~1234", "1.0~2345"), Ok(Less));
        // Leading zeros: string order for non-initial numbers.
        assert_eq!(compare("1.05", "1.1"), Ok(Less));
        assert_eq!(compare("1.1", "1.10"), Ok(Less));
        assert_eq!(compare("01", "1"), Ok(Equal));
        // Arbitrary precision.
        assert_eq!(
            compare("18446744073709551617", "18446744073709551616"),
            Ok(Greater)
        );
        // Invalid tails: ordered, but never silently equal.
        assert_eq!(compare("1.0", "1.0bc"), Ok(Less));
        assert_eq!(compare("1.0", "1.0_foo"), Ok(Greater));
        assert_eq!(compare("1.0_rc1", "1.0_foo"), Ok(Less));
        // Digits after a letter, as apk <= 2.10 read them (OSV data has
        // `6.6.2p1-r0`): ordered by compare, rejected by validate.
        assert_eq!(compare("6.6.2p1-r0", "6.6.2p1-r1"), Ok(Less));
        assert_eq!(compare("6.6.2p1", "6.6.2_p1"), Ok(Greater));
        assert!(validate("6.6.2p1-r0").is_err());
        assert!(compare("1.0bc", "1.0bd").is_err());
        assert!(compare("1.0bc", "1.0bc").is_err());
        assert!(compare("", "").is_err());
        assert!(compare("v1.0", "1.0").is_err());
        assert_eq!(version_match("1.0bc", "=", "1.0bd"), Ok(true));
        assert!(version_match("1", "<>x", "2").is_err());
    }

    fn apk_version() -> impl Strategy<Value = String> {
        let suffix = prop::sample::select(vec![
            "_alpha", "_beta", "_pre", "_rc", "_cvs", "_svn", "_git", "_hg", "_p",
        ]);
        (
            prop::collection::vec("0|[1-9][0-9]{0,2}|0[0-9]", 1..4),
            prop::option::of("[a-e]"),
            prop::collection::vec((suffix, prop::option::of(0u32..20)), 0..3),
            prop::option::of("[0-9a-f]{1,4}"),
            prop::option::of(0u32..12),
        )
            .prop_map(|(nums, letter, sufs, hash, rev)| {
                let mut s = nums.join(".");
                if let Some(l) = letter {
                    s.push_str(&l);
                }
                for (suf, n) in sufs {
                    s.push_str(suf);
                    if let Some(n) = n {
                        s.push_str(&n.to_string());
                    }
                }
                if let Some(h) = hash {
                    s.push('~');
                    s.push_str(&h);
                }
                if let Some(r) = rev {
                    s.push_str(&format!("-r{r}"));
                }
                s
            })
    }

    /// Also versions apk v3 rejects: digits after the letter (which
    /// `compare` reads the apk 2.10 way) and invalid tails.
    fn apk_version_loose() -> impl Strategy<Value = String> {
        (
            apk_version(),
            prop::sample::select(vec!["", "p1", "p2", "b10", "_foo", ".r1", "-x", "bc", "_"]),
        )
            .prop_map(|(v, junk)| match v.find(['_', '~', '-']) {
                Some(i) if !junk.is_empty() => format!("{}{junk}{}", &v[..i], &v[i..]),
                _ => format!("{v}{junk}"),
            })
    }

    proptest! {
        #[test]
        fn loose_antisymmetric(a in apk_version_loose(), b in apk_version_loose()) {
            match (compare(&a, &b), compare(&b, &a)) {
                (Ok(x), Ok(y)) => prop_assert_eq!(x, y.reverse()),
                (Err(_), Err(_)) => {}
                other => prop_assert!(false, "{:?}", other),
            }
        }

        #[test]
        fn loose_transitive(a in apk_version_loose(), b in apk_version_loose(), c in apk_version_loose()) {
            testutil::check_transitive(compare, &a, &b, &c)?;
        }

        #[test]
        fn generated_versions_are_valid(a in apk_version()) {
            prop_assert_eq!(validate(&a), Ok(()));
        }

        #[test]
        fn reflexive(a in apk_version()) {
            prop_assert_eq!(compare(&a, &a), Ok(Ordering::Equal));
        }

        #[test]
        fn antisymmetric(a in apk_version(), b in apk_version()) {
            let ab = compare(&a, &b).map_err(|e| TestCaseError::fail(e.to_string()))?;
            let ba = compare(&b, &a).map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(ab, ba.reverse());
        }

        #[test]
        fn transitive(a in apk_version(), b in apk_version(), c in apk_version()) {
            testutil::check_transitive(compare, &a, &b, &c)?;
        }
    }
}
