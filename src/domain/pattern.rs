//! The parsers of this layer written as regular expressions, for the OpenAPI document: a client
//! or a fuzzer that follows a pattern sends what the parser accepts and nothing it refuses.
//! Each pattern is anchored and uses only syntax that ECMA-262, Python's `re` and Rust's `regex`
//! read alike (no look-around, no `\s`: Python's `\s` also matches U+001C–U+001F). What a
//! pattern cannot say (a length over several parts) goes into `maxLength` beside it.
//! `tests/api/contract.rs` holds each pattern against its parser.

/// A DNS label: 1–63 letters, digits or `-`, not starting or ending with `-`.
pub const LABEL: &str = "[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?";

/// A port, 1–65535, digits only, without leading zeros.
pub const PORT: &str =
    "(?:[1-9][0-9]{0,3}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5])";

/// A string without NUL, the one character no backend stores (`domain::text`).
pub const STORABLE: &str = "^[^\\u0000]*$";

/// The characters `str::trim` removes (Unicode White_Space).
pub const WHITE_SPACE: &str =
    "[\\t\\n\\x0B\\f\\r \\x85\\xA0\\u1680\\u2000-\\u200A\\u2028\\u2029\\u202F\\u205F\\u3000]";

const HEX4: &str = "[0-9A-Fa-f]{1,4}";
const OCTET: &str = "(?:25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])";

/// An IPv6 address as `std::net::Ipv6Addr` reads it; `embedded_ipv4` allows a dotted IPv4 tail.
pub fn ipv6(embedded_ipv4: bool) -> String {
    let h = HEX4;
    let mut forms = vec![
        format!("(?:{h}:){{7}}{h}"),
        format!("(?:{h}:){{1,7}}:"),
        format!("(?:{h}:){{1,6}}:{h}"),
        format!("(?:{h}:){{1,5}}(?::{h}){{1,2}}"),
        format!("(?:{h}:){{1,4}}(?::{h}){{1,3}}"),
        format!("(?:{h}:){{1,3}}(?::{h}){{1,4}}"),
        format!("(?:{h}:){{1,2}}(?::{h}){{1,5}}"),
        format!("{h}:(?::{h}){{1,6}}"),
        format!(":(?:(?::{h}){{1,7}}|:)"),
    ];
    if embedded_ipv4 {
        // A dotted tail counts as two groups; before `::` it may not stand.
        let v4 = format!("{OCTET}(?:\\.{OCTET}){{3}}");
        forms.push(format!("(?:{h}:){{6}}{v4}"));
        forms.push(format!("::(?:{h}:){{0,5}}{v4}"));
        for head in 1..=5 {
            let tail = 5 - head;
            forms.push(format!("(?:{h}:){{{head}}}:(?:{h}:){{0,{tail}}}{v4}"));
        }
    }
    format!("(?:{})", forms.join("|"))
}

/// ARM's keyword `word`, matched without regard to ASCII case.
pub fn case_insensitive(word: &str) -> String {
    word.chars()
        .map(|c| {
            if c.is_ascii_alphabetic() {
                format!("[{}{}]", c.to_ascii_uppercase(), c.to_ascii_lowercase())
            } else if c == '.' {
                "\\.".to_owned()
            } else {
                c.to_string()
            }
        })
        .collect()
}

/// `pattern` without its anchors, to be embedded in a larger one.
pub fn inner(pattern: &str) -> &str {
    let p = pattern.strip_prefix('^').unwrap_or(pattern);
    p.strip_suffix('$').unwrap_or(p)
}

/// A UUID in each form `uuid::Uuid::parse_str` reads: simple, hyphenated, braced, URN.
pub const UUID: &str = "^(?:[0-9A-Fa-f]{32}|(?:urn:uuid:)?[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}|\\{[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}\\})$";

/// A string holding something besides white space (what survives `str::trim`), and no NUL.
pub fn not_blank() -> String {
    let ws = &WHITE_SPACE[1..WHITE_SPACE.len() - 1];
    format!("^[^\\u0000]*[^\\u0000{ws}][^\\u0000]*$")
}
