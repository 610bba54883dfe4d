//! [`ImageReference`]: `host[:port]/repository[:tag][@digest]`, parsed once and trusted after.

use std::fmt;

use super::error::ReferenceError;
use crate::domain::{Digest, RepositoryName, pattern};

/// Docker Hub's names: a one-component repository there means `library/<name>`.
const DOCKER_HUB_HOSTS: [&str; 3] = ["docker.io", "index.docker.io", "registry-1.docker.io"];

/// A fully qualified image reference. There is no implicit registry: the first component is
/// always the registry host (it must contain `.` or `:`, or be `localhost`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ImageReference {
    /// `host[:port]` as written (Docker Hub names kept as written too).
    pub registry: String,
    /// Lower-case path such as `library/alpine` or `team/app/api`.
    pub repository: String,
    pub tag: Option<String>,
    pub digest: Option<Digest>,
}

impl ImageReference {
    /// The longest reference.
    pub const MAX_LEN: usize = 1024;

    /// The bounds [`Self::pattern`] cannot say: a host of at most 253 characters, a repository
    /// of at most 255, and at most [`Self::MAX_LEN`] once trimmed.
    pub fn length_patterns() -> [String; 3] {
        let ws = pattern::WHITE_SPACE;
        let not_ws = format!("[^{}", &ws[1..]);
        [
            format!("^{ws}*(?:\\[|[^:/]{{1,253}}[:/])"),
            format!("^[^/]*/[a-z0-9._/-]{{1,255}}(?:[:@]|{ws}*$)"),
            format!("^{ws}*{not_ws}{{1,{}}}{ws}*$", Self::MAX_LEN),
        ]
    }

    /// What [`Self::parse`] accepts after `str::trim` (the surrounding white space is in the
    /// pattern), when its host is also a [`LoginServer`](crate::domain::LoginServer), as the
    /// scans API requires; with [`Self::length_patterns`].
    pub fn pattern() -> String {
        let (label, port, ws) = (pattern::LABEL, pattern::PORT, pattern::WHITE_SPACE);
        let host = format!(
            "(?:{label}(?:\\.{label})+(?::{port})?|{label}:{port}|localhost|\\[{}\\](?::{port})?)",
            pattern::ipv6(false)
        );
        format!(
            "^{ws}*{host}/(?:{})(?::[A-Za-z0-9_][A-Za-z0-9_.-]{{0,127}})?(?:@(?:{}))?{ws}*$",
            pattern::inner(RepositoryName::PATTERN),
            pattern::inner(Digest::PATTERN),
        )
    }

    /// Parses `host[:port]/repo[/more]:tag`, `host/repo@sha256:…` and `host/repo:tag@sha256:…`.
    /// Without tag and digest the tag is left `None` ([`Self::reference`] then says `latest`).
    /// On Docker Hub (`docker.io`, `index.docker.io`) a one-component repository gets `library/`.
    pub fn parse(s: &str) -> Result<Self, ReferenceError> {
        let err = |reason: String| ReferenceError::new(s, reason);
        if s.is_empty() {
            return Err(err("the reference is empty".into()));
        }
        if s.len() > 1024 {
            return Err(err("the reference is longer than 1024 characters".into()));
        }
        if s.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(err("the reference contains whitespace".into()));
        }
        if s.contains("://") {
            return Err(err(
                "a reference has no scheme: write host[:port]/repository[:tag][@digest]".into(),
            ));
        }
        let (name, digest) = match s.split_once('@') {
            Some((name, d)) => {
                let digest = Digest::parse(d).map_err(|e| err(e.to_string()))?;
                (name, Some(digest))
            }
            None => (s, None),
        };
        let Some((host, path)) = name.split_once('/') else {
            return Err(err(
                "no registry host: expected host[:port]/repository[:tag][@digest]".into(),
            ));
        };
        if host.is_empty() {
            return Err(err("the registry host is empty".into()));
        }
        if !(host.contains('.') || host.contains(':') || host == "localhost") {
            return Err(err(format!(
                "the first component {host:?} is not a registry host (it must contain '.' or ':' \
                 or be 'localhost'); for Docker Hub write docker.io/{name}"
            )));
        }
        validate_host(host).map_err(err)?;
        // The tag is after the last ':' of the path (the host's port is not in `path`).
        let (repo, tag) = match path.rsplit_once(':') {
            Some((repo, tag)) => {
                validate_tag(tag).map_err(err)?;
                (repo, Some(tag.to_owned()))
            }
            None => (path, None),
        };
        validate_repository(repo).map_err(err)?;
        let repository = if DOCKER_HUB_HOSTS.contains(&host.to_ascii_lowercase().as_str())
            && !repo.contains('/')
        {
            format!("library/{repo}")
        } else {
            repo.to_owned()
        };
        Ok(Self {
            registry: host.to_owned(),
            repository,
            tag,
            digest,
        })
    }

    /// What to ask the registry for: the digest if there is one, else the tag, else `latest`.
    pub fn reference(&self) -> String {
        match (&self.digest, &self.tag) {
            (Some(d), _) => d.to_string(),
            (None, Some(t)) => t.clone(),
            (None, None) => "latest".to_owned(),
        }
    }
}

impl fmt::Display for ImageReference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry, self.repository)?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

impl std::str::FromStr for ImageReference {
    type Err = ReferenceError;
    fn from_str(s: &str) -> Result<Self, ReferenceError> {
        Self::parse(s)
    }
}

/// `host[:port]`: DNS name or IPv4 (letters, digits, `-`, `.`), or `[IPv6]`; port 1-65535.
pub(crate) fn validate_host(host: &str) -> Result<(), String> {
    let (name, port) = if let Some(rest) = host.strip_prefix('[') {
        let Some((v6, after)) = rest.split_once(']') else {
            return Err(format!("registry host {host:?} has an unclosed '['"));
        };
        if v6.is_empty() || !v6.chars().all(|c| c.is_ascii_hexdigit() || c == ':') {
            return Err(format!(
                "registry host {host:?} is not a valid IPv6 address"
            ));
        }
        match after {
            "" => (None, None),
            p => match p.strip_prefix(':') {
                Some(p) => (None, Some(p)),
                None => return Err(format!("registry host {host:?} is invalid")),
            },
        }
    } else {
        match host.split_once(':') {
            Some((n, p)) => (Some(n), Some(p)),
            None => (Some(host), None),
        }
    };
    if let Some(name) = name {
        let labels_ok = !name.is_empty()
            && name.split('.').all(|l| {
                !l.is_empty()
                    && !l.starts_with('-')
                    && !l.ends_with('-')
                    && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            });
        if !labels_ok {
            return Err(format!(
                "registry host {host:?} is invalid: use a DNS name or IP address with an optional :port"
            ));
        }
    }
    if let Some(port) = port {
        let ok = !port.is_empty()
            && port.len() <= 5
            && port.bytes().all(|b| b.is_ascii_digit())
            && port.parse::<u16>().is_ok_and(|p| p > 0);
        if !ok {
            return Err(format!("registry port {port:?} is invalid"));
        }
    }
    Ok(())
}

/// A repository name of the distribution spec: `/`-separated components of lower-case letters
/// and digits joined by `.`, `_`, `__` or runs of `-`; at most 255 characters.
pub fn validate_repository(repo: &str) -> Result<(), String> {
    if repo.is_empty() {
        return Err("the repository is empty".into());
    }
    if repo.len() > 255 {
        return Err(format!(
            "the repository is {} characters long, more than 255",
            repo.len()
        ));
    }
    if repo.chars().any(|c| c.is_ascii_uppercase()) {
        return Err(format!("repository {repo:?} must be lower case"));
    }
    for component in repo.split('/') {
        if component.is_empty() {
            return Err(format!("repository {repo:?} has an empty path component"));
        }
        if !valid_component(component.as_bytes()) {
            return Err(format!(
                "repository component {component:?} is invalid: use lower-case letters and digits \
                 separated by '.', '_', '__' or '-'"
            ));
        }
    }
    Ok(())
}

fn valid_component(b: &[u8]) -> bool {
    let alnum = |c: u8| c.is_ascii_lowercase() || c.is_ascii_digit();
    let mut i = 0;
    loop {
        let start = i;
        while i < b.len() && alnum(b[i]) {
            i += 1;
        }
        if i == start {
            return false; // empty run: leading or doubled separator
        }
        if i == b.len() {
            return true;
        }
        match b[i] {
            b'.' => i += 1,
            b'_' => {
                i += 1;
                if b.get(i) == Some(&b'_') {
                    i += 1;
                }
            }
            b'-' => {
                while b.get(i) == Some(&b'-') {
                    i += 1;
                }
            }
            _ => return false,
        }
    }
}

/// A tag: `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`.
pub fn validate_tag(tag: &str) -> Result<(), String> {
    let b = tag.as_bytes();
    let word = |c: u8| c.is_ascii_alphanumeric() || c == b'_';
    if b.is_empty() {
        return Err("the tag is empty".into());
    }
    if b.len() > 128 {
        return Err(format!("tag {tag:?} is longer than 128 characters"));
    }
    if !word(b[0]) || !b.iter().all(|&c| word(c) || c == b'.' || c == b'-') {
        return Err(format!(
            "tag {tag:?} is invalid: use letters, digits, '_', '.' and '-' (not first)"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(c: char) -> String {
        format!("sha256:{}", c.to_string().repeat(64))
    }

    #[test]
    fn parses_good_references() {
        let r = ImageReference::parse("myreg.azurecr.io/team/app:1.2.3").unwrap();
        assert_eq!(r.registry, "myreg.azurecr.io");
        assert_eq!(r.repository, "team/app");
        assert_eq!(r.tag.as_deref(), Some("1.2.3"));
        assert_eq!(r.digest, None);
        assert_eq!(r.reference(), "1.2.3");

        let r = ImageReference::parse("127.0.0.1:5000/test/alpine").unwrap();
        assert_eq!(r.registry, "127.0.0.1:5000");
        assert_eq!(r.repository, "test/alpine");
        assert_eq!(r.tag, None);
        assert_eq!(r.reference(), "latest");

        let s = format!("localhost:5000/a/b/c@{}", d('a'));
        let r = ImageReference::parse(&s).unwrap();
        assert_eq!(r.registry, "localhost:5000");
        assert_eq!(r.repository, "a/b/c");
        assert_eq!(r.digest.as_ref().unwrap().as_str(), d('a'));
        assert_eq!(r.reference(), d('a'));
        assert_eq!(r.to_string(), s);

        let s = format!("localhost/x:v1@{}", d('b'));
        let r = ImageReference::parse(&s).unwrap();
        assert_eq!(
            (r.registry.as_str(), r.tag.as_deref()),
            ("localhost", Some("v1"))
        );
        assert_eq!(r.reference(), d('b'), "digest wins over tag");
        assert_eq!(r.to_string(), s);

        let r = ImageReference::parse("docker.io/alpine:3.19").unwrap();
        assert_eq!(r.repository, "library/alpine");
        let r = ImageReference::parse("docker.io/library/alpine").unwrap();
        assert_eq!(r.repository, "library/alpine");
        let r = ImageReference::parse("docker.io/bitnami/redis:7").unwrap();
        assert_eq!(r.repository, "bitnami/redis");

        for ok in [
            "r.io/a.b_c__d---e/f1:Tag_1.x-y",
            "r.io/a:_x",
            "[::1]:5000/a:b",
            "sub.domain-1.example.com:443/x",
        ] {
            ImageReference::parse(ok).unwrap_or_else(|e| panic!("{ok}: {e}"));
        }
    }

    #[test]
    fn rejects_bad_references_with_clear_messages() {
        let cases: &[(&str, &str)] = &[
            ("", "empty"),
            ("alpine", "no registry host"),
            ("library/alpine:3", "not a registry host"),
            ("r.io/Team/app", "must be lower case"),
            ("r.io//app", "empty path component"),
            ("r.io/app/", "empty path component"),
            ("r.io/", "repository is empty"),
            ("/app", "host is empty"),
            ("r.io/app:", "tag is empty"),
            ("r.io/app:-x", "is invalid"),
            ("r.io/a..b", "is invalid"),
            ("r.io/-a", "is invalid"),
            ("r.io/a_", "is invalid"),
            ("r.io/app@sha256:1234", "digest"),
            ("r.io/app@md5:abc", "digest"),
            ("https://r.io/app", "scheme"),
            ("r.io/ap p", "whitespace"),
            ("r.io:99999/app", "port"),
            ("r.io:/app", "port"),
            ("bad_host.io/app", "registry host"),
        ];
        for (input, needle) in cases {
            let e = ImageReference::parse(input).expect_err(input);
            let msg = e.to_string();
            assert!(msg.contains(needle), "{input:?}: {msg}");
        }
        let long_tag = format!("r.io/app:{}", "a".repeat(129));
        assert!(ImageReference::parse(&long_tag).is_err());
        let upper_digest = format!("r.io/app@sha256:{}", "A".repeat(64));
        assert!(ImageReference::parse(&upper_digest).is_err());
    }
}
