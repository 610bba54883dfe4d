//! Reading a small text file (a gemspec, Composer's `installed.json`, a .NET `*.deps.json`)
//! whole, within a size cap, and parsing it as JSON within serde_json's nesting limit. A file
//! that cannot be read that way is an [`UnreadableFile`] with a stable code:
//!
//! * `TooLarge`: longer than the cap (checked before reading, and again while reading);
//! * `TooDeep`: a JSON value that is read nested 128 levels deep or more (serde_json's limit),
//!   so a JSON bomb of 10,000 nested arrays is refused without recursing into it. Values in
//!   fields the document type does not read are skipped by serde_json without recursion, so a
//!   bomb there costs neither stack nor an error;
//! * `Malformed`: not JSON, or not the JSON document expected;
//! * `ReadFailed`: the content could not be read at all.

use std::io::Read;

use serde::de::DeserializeOwned;

use super::{CollectedFile, UnreadableFile};

/// The whole content of `file`, at most `cap` bytes.
pub fn read_capped(
    analyzer: &'static str,
    path: &str,
    file: &CollectedFile,
    cap: u64,
) -> Result<Vec<u8>, UnreadableFile> {
    let too_large = || {
        UnreadableFile::new(
            analyzer,
            path,
            "TooLarge",
            format!("larger than the {cap} bytes read from such a file"),
        )
    };
    if file.len() > cap {
        return Err(too_large());
    }
    let read_failed =
        |e: std::io::Error| UnreadableFile::new(analyzer, path, "ReadFailed", e.to_string());
    let mut bytes = Vec::new();
    file.open()
        .map_err(read_failed)?
        .take(cap.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(read_failed)?;
    if bytes.len() as u64 > cap {
        return Err(too_large());
    }
    Ok(bytes)
}

/// `bytes` (after a UTF-8 byte order mark, if any) as the JSON document `T`.
pub fn parse_json<T: DeserializeOwned>(
    analyzer: &'static str,
    path: &str,
    bytes: &[u8],
) -> Result<T, UnreadableFile> {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    serde_json::from_slice(bytes).map_err(|e| {
        let reason = e.to_string();
        // serde_json reports its nesting limit only through the message.
        let code = if reason.starts_with("recursion limit exceeded") {
            "TooDeep"
        } else {
            "Malformed"
        };
        UnreadableFile::new(analyzer, path, code, reason)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nested(depth: usize) -> String {
        "[".repeat(depth) + &"]".repeat(depth)
    }

    #[test]
    fn json_nesting_limit_is_128() {
        let parse = |depth: usize| {
            parse_json::<serde_json::Value>("test", "x.json", nested(depth).as_bytes())
                .map(|_| ())
                .map_err(|e| e.code)
        };
        assert_eq!(parse(127), Ok(()));
        assert_eq!(parse(128), Err("TooDeep"));
        assert_eq!(parse(10_000), Err("TooDeep"));
        // A field a typed document ignores is skipped without recursion, so it needs no limit.
        #[derive(serde::Deserialize)]
        struct Doc {
            #[serde(rename = "a")]
            _a: Option<String>,
        }
        let bomb = format!("{{\"a\":\"x\",\"ignored\":{}}}", nested(100_000));
        assert!(parse_json::<Doc>("test", "x.json", bomb.as_bytes()).is_ok());
        assert_eq!(
            parse_json::<Doc>("test", "x.json", b"{\"a\":1}")
                .err()
                .map(|e| e.code),
            Some("Malformed")
        );
        assert!(parse_json::<Doc>("test", "x.json", b"\xEF\xBB\xBF{\"a\":\"x\"}").is_ok());
    }

    #[test]
    fn size_cap() {
        let file = CollectedFile::new(vec![b'x'; 10], "sha256:l");
        assert_eq!(read_capped("test", "f", &file, 10).unwrap().len(), 10);
        let err = read_capped("test", "f", &file, 9).unwrap_err();
        assert_eq!(
            (err.analyzer, err.path.as_str(), err.code),
            ("test", "f", "TooLarge")
        );
    }
}
