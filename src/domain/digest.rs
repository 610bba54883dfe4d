use std::fmt;

/// A content digest, `sha256:<64 hex>` or `sha512:<128 hex>`, lower case.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("digest {0:?} is invalid: expected sha256:<64 hex digits> or sha512:<128 hex digits>")]
pub struct DigestError(String);

impl Digest {
    /// What [`Self::parse`] accepts.
    pub const PATTERN: &str = "^(?:sha256:[0-9a-f]{64}|sha512:[0-9a-f]{128})$";

    pub fn parse(s: &str) -> Result<Self, DigestError> {
        let hex_len = match s.split_once(':') {
            Some(("sha256", hex)) => (hex, 64),
            Some(("sha512", hex)) => (hex, 128),
            _ => return Err(DigestError(s.chars().take(140).collect())),
        };
        let (hex, len) = hex_len;
        if hex.len() == len
            && hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            Ok(Self(s.to_owned()))
        } else {
            Err(DigestError(s.chars().take(140).collect()))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::str::FromStr for Digest {
    type Err = DigestError;
    fn from_str(s: &str) -> Result<Self, DigestError> {
        Self::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_only_well_formed_digests() {
        let good = format!("sha256:{}", "a".repeat(64));
        assert_eq!(Digest::parse(&good).unwrap().as_str(), good);
        assert!(Digest::parse(&format!("sha512:{}", "0".repeat(128))).is_ok());
        for bad in [
            String::new(),
            "sha256:".into(),
            format!("sha256:{}", "A".repeat(64)),
            format!("sha256:{}", "a".repeat(63)),
            format!("md5:{}", "a".repeat(32)),
            format!("sha256:{}g", "a".repeat(63)),
        ] {
            assert!(Digest::parse(&bad).is_err(), "{bad}");
        }
    }
}
