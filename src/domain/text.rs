//! Text the database can store. PostgreSQL's text types take every Unicode scalar value but U+0000
//! (NUL); SQLite would store it, so it is refused for both, and a request means the same on both.
//! A Rust string holds nothing else either backend refuses (no lone surrogates, valid UTF-8).

use serde_json::Value;

/// The one character a backend cannot store in text.
pub const UNSTORABLE: char = '\0';

/// Whether `text` can be stored as it is.
pub fn storable(text: &str) -> bool {
    !text.contains(UNSTORABLE)
}

/// The path (`items[3].metadata.name`) of the first string or object key in `value` that cannot be
/// stored, in document order; `""` when `value` itself is that string, `None` when all can be.
pub fn unstorable_at(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => (!storable(s)).then(String::new),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .find_map(|(i, item)| unstorable_at(item).map(|rest| join(&format!("[{i}]"), &rest))),
        Value::Object(map) => map.iter().find_map(|(key, item)| {
            if storable(key) {
                unstorable_at(item).map(|rest| join(key, &rest))
            } else {
                Some(key.clone())
            }
        }),
        _ => None,
    }
}

/// The path is built on the way out, so only the offending value's path is ever written.
fn join(head: &str, rest: &str) -> String {
    if rest.is_empty() || rest.starts_with('[') {
        format!("{head}{rest}")
    } else {
        format!("{head}.{rest}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_first_nul_is_found_with_its_path() {
        assert_eq!(unstorable_at(&json!({"a": ["x", {"b": "ok"}]})), None);
        assert_eq!(unstorable_at(&json!("a\u{0}")).as_deref(), Some(""));
        let value = json!({"items": [{"name": "ok"}, {"metadata": {"name": "x\u{0}y"}}]});
        assert_eq!(
            unstorable_at(&value).as_deref(),
            Some("items[1].metadata.name")
        );
        let value = json!({"labels": {"k\u{0}": "v"}});
        assert_eq!(unstorable_at(&value).as_deref(), Some("labels.k\u{0}"));
        assert_eq!(unstorable_at(&json!([1, "\u{0}"])).as_deref(), Some("[1]"));
        assert_eq!(
            unstorable_at(&json!({"a": [[{"b": "\u{0}"}]]})).as_deref(),
            Some("a[0][0].b")
        );
        assert!(storable("sha256:ab%00"));
        assert!(!storable("a\u{0}"));
    }
}
