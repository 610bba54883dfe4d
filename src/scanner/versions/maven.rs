//! Maven `ComparableVersion` order, as osv-scalibr's `semantic` package (which
//! osv-scanner and osv.dev's `go/osv/ecosystem` use) implements it:
//!
//! * the version splits into tokens at `.` and `-` and at every digit/non-digit
//!   transition (which counts as a `-`); each token remembers its separator;
//! * tokens are lower-cased; an empty token is `0`; `cr` is `rc`; `ga`,
//!   `final` and `release` are the empty qualifier; `a`, `b`, `m` directly
//!   followed by a digit are `alpha`, `beta`, `milestone`; numbers lose their
//!   leading zeros (and are compared with arbitrary precision);
//! * trailing "null" tokens (`0`, empty) are trimmed, at the end and before
//!   every `-`, from the end backwards;
//! * tokens compare pairwise, the shorter version padded with nulls (`0`
//!   after `.`, empty after `-`; empty before `sp`): numbers numerically and
//!   after qualifiers; known qualifiers `alpha < beta < milestone < rc <
//!   snapshot < "" < sp` before unknown ones, which sort lexically; with
//!   different separators `.qualifier < -qualifier < -number < .number`.
//!
//! Maven accepts any string; only the empty string and strings with white
//! space or control characters are rejected here. Digits are ASCII digits.

use std::cmp::Ordering;

use super::{Scheme, VersionError, cmp_decimal};

#[derive(Debug, Clone, PartialEq, Eq)]
struct Token {
    /// `""` (first token), `"."` or `"-"`.
    prefix: &'static str,
    value: String,
    /// A padding token, not part of the version.
    is_null: bool,
}

impl Token {
    fn is_number(&self) -> bool {
        !self.value.is_empty() && self.value.bytes().all(|c| c.is_ascii_digit())
    }

    fn should_trim(&self) -> bool {
        matches!(self.value.as_str(), "0" | "" | "final" | "ga")
    }

    fn same(&self, other: &Token) -> bool {
        self.prefix == other.prefix && self.value == other.value
    }

    /// `.qualifier < -qualifier < -number < .number`.
    fn qualifier_order(&self) -> u8 {
        match (self.is_number(), self.prefix) {
            (true, "-") => 2,
            (true, _) => 3,
            (false, "-") => 1,
            (false, _) => 0,
        }
    }

    fn null_for(other: &Token) -> Token {
        let value = if other.prefix == "-" || other.value == "sp" {
            ""
        } else {
            "0"
        };
        Token {
            prefix: if other.prefix == "-" { "-" } else { "." },
            value: value.to_owned(),
            is_null: true,
        }
    }

    fn less_than(&self, other: &Token) -> bool {
        if self.prefix != other.prefix {
            return self.qualifier_order() < other.qualifier_order();
        }
        let (a_num, b_num) = (self.is_number(), other.is_number());
        if a_num && b_num {
            return cmp_decimal(&self.value, &other.value) == Ordering::Less;
        }
        // Numbers sort after qualifiers, unless they are padding.
        if a_num && !self.is_null {
            return false;
        }
        if b_num && !other.is_null {
            return true;
        }
        const KEYWORDS: [&str; 7] = ["alpha", "beta", "milestone", "rc", "snapshot", "", "sp"];
        let rank = |v: &str| {
            KEYWORDS
                .iter()
                .position(|k| *k == v)
                .unwrap_or(KEYWORDS.len())
        };
        let (ra, rb) = (rank(&self.value), rank(&other.value));
        if ra == KEYWORDS.len() && rb == KEYWORDS.len() {
            return self.value < other.value;
        }
        ra < rb
    }
}

/// A tokenised Maven version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MavenVersion {
    tokens: Vec<Token>,
}

fn is_digit(c: char) -> bool {
    c.is_ascii_digit()
}

impl MavenVersion {
    pub fn parse(s: &str) -> Result<MavenVersion, VersionError> {
        if s.is_empty() {
            return Err(VersionError::new(Scheme::Maven, s, "empty version"));
        }
        if let Some(c) = s.chars().find(|c| c.is_whitespace() || c.is_control()) {
            return Err(VersionError::new(
                Scheme::Maven,
                s,
                format!("contains {c:?}"),
            ));
        }
        let mut tokens = Vec::new();
        let mut prefix = "";
        let mut rest = s;
        loop {
            let end = rest.find(['.', '-']).unwrap_or(rest.len());
            let raw = &rest[..end];
            // Split at digit/non-digit transitions.
            let mut start = 0;
            let mut chars = raw.char_indices().peekable();
            while let Some((_, c)) = chars.next() {
                let boundary = match chars.peek() {
                    Some(&(j, d)) if is_digit(c) != is_digit(d) => Some(j),
                    None => Some(raw.len()),
                    _ => None,
                };
                if let Some(j) = boundary {
                    tokens.push(Self::token(prefix, &raw[start..j], j != raw.len()));
                    prefix = "-";
                    start = j;
                }
            }
            if raw.is_empty() {
                tokens.push(Self::token(prefix, "", false));
            }
            if end == rest.len() {
                break;
            }
            prefix = if rest.as_bytes()[end] == b'.' {
                "."
            } else {
                "-"
            };
            rest = &rest[end + 1..];
        }

        // Trim trailing nulls, at the end and before each `-`, backwards.
        let mut i = tokens.len().saturating_sub(1);
        'trim: while i > 0 {
            if tokens[i].should_trim() {
                tokens.remove(i);
                i -= 1;
                continue;
            }
            // Skip back to the token that starts this `-` group...
            while tokens[i].prefix != "-" {
                if i == 0 {
                    break 'trim;
                }
                i -= 1;
            }
            // ...and go on trimming right before it.
            if i == 0 {
                break;
            }
            i -= 1;
        }
        Ok(MavenVersion { tokens })
    }

    fn token(prefix: &'static str, raw: &str, followed_by_digit: bool) -> Token {
        let mut value = raw.to_lowercase();
        if value.is_empty() {
            value = "0".to_owned();
        }
        match value.as_str() {
            "cr" => value = "rc".to_owned(),
            "ga" | "final" | "release" => value.clear(),
            "a" if followed_by_digit => value = "alpha".to_owned(),
            "b" if followed_by_digit => value = "beta".to_owned(),
            "m" if followed_by_digit => value = "milestone".to_owned(),
            _ => {}
        }
        if !value.is_empty() && value.bytes().all(|c| c.is_ascii_digit()) {
            let t = value.trim_start_matches('0');
            value = if t.is_empty() { "0" } else { t }.to_owned();
        }
        Token {
            prefix,
            value,
            is_null: false,
        }
    }

    fn less_than(&self, other: &MavenVersion) -> bool {
        let n = self.tokens.len().max(other.tokens.len());
        for i in 0..n {
            let (left, right) = match (self.tokens.get(i), other.tokens.get(i)) {
                (Some(l), Some(r)) => (l.clone(), r.clone()),
                (None, Some(r)) => (Token::null_for(r), r.clone()),
                (Some(l), None) => (l.clone(), Token::null_for(l)),
                (None, None) => break,
            };
            if left.same(&right) {
                continue;
            }
            return left.less_than(&right);
        }
        false
    }
}

impl Ord for MavenVersion {
    fn cmp(&self, other: &Self) -> Ordering {
        let same = self.tokens.len() == other.tokens.len()
            && self
                .tokens
                .iter()
                .zip(&other.tokens)
                .all(|(a, b)| a.same(b));
        if same {
            Ordering::Equal
        } else if self.less_than(other) {
            Ordering::Less
        } else {
            Ordering::Greater
        }
    }
}

impl PartialOrd for MavenVersion {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

pub fn validate(v: &str) -> Result<(), VersionError> {
    MavenVersion::parse(v).map(|_| ())
}

pub fn compare(a: &str, b: &str) -> Result<Ordering, VersionError> {
    Ok(MavenVersion::parse(a)?.cmp(&MavenVersion::parse(b)?))
}

#[cfg(test)]
mod tests {
    use super::super::testutil;
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn osv_scalibr_maven_versions() {
        testutil::run_scalibr_file("osv-semantic/maven-versions.txt", compare).finish();
    }

    #[test]
    fn osv_scalibr_maven_versions_generated() {
        testutil::run_scalibr_file("osv-semantic/maven-versions-generated.txt", compare).finish();
    }

    #[test]
    fn tokenising() {
        let toks = |s: &str| -> Vec<String> {
            MavenVersion::parse(s)
                .unwrap()
                .tokens
                .iter()
                .map(|t| format!("{}{}", t.prefix, t.value))
                .collect()
        };
        assert_eq!(toks("1.0-alpha1"), ["1", "-alpha", "-1"]);
        assert_eq!(toks("1.0.0-RC.2"), ["1", "-rc", ".2"]);
        assert_eq!(toks("1-ga-1"), ["1", "-1"]);
        assert_eq!(toks("1.."), ["1"]);
        assert_eq!(toks("1.0.é1"), ["1", ".0", ".é", "-1"]);
        assert!(MavenVersion::parse("").is_err());
        assert!(MavenVersion::parse("1 .0").is_err());
        assert_eq!(compare("1.0", "1.0.0.0-ga"), Ok(Ordering::Equal));
        assert_eq!(compare("1.0-SNAPSHOT", "1.0"), Ok(Ordering::Less));
        assert_eq!(
            compare(
                "123456789012345678901234567890",
                "123456789012345678901234567891"
            ),
            Ok(Ordering::Less)
        );
    }

    /// Maven's own `ComparableVersion` is not transitive once a `.qualifier`
    /// meets a `-qualifier` (a list item beats a string item, `1-1 > 1-sp`):
    /// 4 > 4-alpha > 4.sp > 4, in Maven and so in osv-scalibr and here.
    #[test]
    fn maven_order_has_a_known_cycle() {
        assert_eq!(compare("4", "4-alpha"), Ok(Ordering::Greater));
        assert_eq!(compare("4-alpha", "4.sp"), Ok(Ordering::Greater));
        assert_eq!(compare("4.sp", "4"), Ok(Ordering::Greater));
    }

    /// Versions as Maven projects write them: numbers joined by `.`,
    /// qualifiers (and build numbers) after `-` or glued to a number, and
    /// the `.RELEASE` / `.Final` / `.GA` markers at the end. (Mixing `.sp`
    /// with `-alpha` is where Maven's own order has the cycle above.)
    fn maven_version() -> impl Strategy<Value = String> {
        let qualifier = prop::sample::select(vec![
            "alpha",
            "a1",
            "beta",
            "b2",
            "m1",
            "milestone-2",
            "rc",
            "cr",
            "RC1",
            "rc2",
            "snapshot",
            "SNAPSHOT",
            "ga",
            "final",
            "release",
            "sp",
            "sp1",
            "foo",
            "x",
            "1",
            "2",
            "10",
            "01",
            "0",
        ]);
        (
            prop::collection::vec(prop::sample::select(vec!["0", "1", "2", "10", "01"]), 1..4),
            prop::collection::vec((prop::bool::ANY, qualifier), 0..3),
            prop::sample::select(vec!["", ".RELEASE", ".Final", ".GA"]),
        )
            .prop_map(|(nums, quals, marker)| {
                let mut s = nums.join(".");
                for (glued, q) in quals {
                    if !glued || q.starts_with(|c: char| c.is_ascii_digit()) {
                        s.push('-');
                    }
                    s.push_str(q);
                }
                s.push_str(marker);
                s
            })
    }

    proptest! {
        #[test]
        fn reflexive(a in maven_version()) {
            prop_assert_eq!(compare(&a, &a), Ok(Ordering::Equal));
        }

        #[test]
        fn antisymmetric(a in maven_version(), b in maven_version()) {
            let ab = compare(&a, &b).map_err(|e| TestCaseError::fail(e.to_string()))?;
            let ba = compare(&b, &a).map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(ab, ba.reverse());
        }

        #[test]
        fn transitive(a in maven_version(), b in maven_version(), c in maven_version()) {
            testutil::check_transitive(compare, &a, &b, &c)?;
        }
    }
}
