//! The name of a synced advisory source: an OSV ecosystem export (`osv:Debian`, `osv:Red Hat`),
//! a zip of OSV records at an http(s) URL, a local directory or zip, or one of the feeds
//! (`kev`, `epss`, `debian-tracker`, `nvd`). The name is the source's key in the database.

use std::fmt;
use std::path::PathBuf;

/// A feed that is not OSV records: one downloaded file, loaded by its own loader.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Feed {
    Kev,
    Epss,
    DebianTracker,
    Nvd,
}

impl Feed {
    pub const ALL: [Feed; 4] = [Feed::Kev, Feed::Epss, Feed::DebianTracker, Feed::Nvd];

    pub fn as_str(self) -> &'static str {
        match self {
            Feed::Kev => "kev",
            Feed::Epss => "epss",
            Feed::DebianTracker => "debian-tracker",
            Feed::Nvd => "nvd",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SourceName {
    /// An ecosystem of OSV's export, as OSV spells it (`Debian`, `Red Hat`, `crates.io`).
    Osv(String),
    /// A zip of OSV records at an http(s) URL.
    Archive(url::Url),
    /// A directory of OSV records, or a zip of them, on this machine.
    Local(PathBuf),
    Feed(Feed),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("'{name}' is not an advisory source: {reason}")]
pub struct SourceNameError {
    pub name: String,
    pub reason: &'static str,
}

impl SourceName {
    const OSV_PREFIX: &'static str = "osv:";

    pub fn parse(raw: &str) -> Result<Self, SourceNameError> {
        let name = raw.trim();
        let fail = |reason| SourceNameError {
            name: raw.chars().take(200).collect(),
            reason,
        };
        if name.is_empty() {
            return Err(fail("the name is empty"));
        }
        if name.contains('\0') {
            return Err(fail("the name holds a NUL character"));
        }
        if let Some(feed) = Feed::ALL.into_iter().find(|f| f.as_str() == name) {
            return Ok(Self::Feed(feed));
        }
        if let Some(ecosystem) = name.strip_prefix(Self::OSV_PREFIX) {
            let ecosystem = ecosystem.trim();
            if ecosystem.is_empty() {
                return Err(fail(
                    "`osv:` must be followed by an ecosystem, e.g. osv:Debian",
                ));
            }
            return Ok(Self::Osv(ecosystem.to_owned()));
        }
        if name == "auto" {
            return Err(fail(
                "`auto` stands for the ecosystems of the stored images, not for one source",
            ));
        }
        match url::Url::parse(name) {
            Ok(url) if matches!(url.scheme(), "http" | "https") => Ok(Self::Archive(url)),
            // `C:\…` and other one-letter "schemes" are paths; anything else with a scheme is not.
            Ok(url) if url.scheme().len() > 1 => Err(fail(
                "only http(s) URLs, paths, osv:<ecosystem> and the feeds are sources",
            )),
            _ => Ok(Self::Local(PathBuf::from(name))),
        }
    }

    /// The OSV ecosystem whose export this is, for `osv:` sources.
    pub fn ecosystem(&self) -> Option<&str> {
        match self {
            Self::Osv(ecosystem) => Some(ecosystem),
            _ => None,
        }
    }

    pub fn feed(&self) -> Option<Feed> {
        match self {
            Self::Feed(feed) => Some(*feed),
            _ => None,
        }
    }
}

impl fmt::Display for SourceName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Osv(ecosystem) => write!(f, "{}{ecosystem}", Self::OSV_PREFIX),
            Self::Archive(url) => write!(f, "{url}"),
            Self::Local(path) => write!(f, "{}", path.display()),
            Self::Feed(feed) => f.write_str(feed.as_str()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_and_print_back() {
        for name in [
            "osv:Debian",
            "osv:Red Hat",
            "kev",
            "debian-tracker",
            "https://example.com/osv/all.zip",
            "/srv/osv/records",
            "records.zip",
        ] {
            assert_eq!(SourceName::parse(name).unwrap().to_string(), name);
        }
        assert_eq!(
            SourceName::parse(" osv:crates.io ").unwrap(),
            SourceName::Osv("crates.io".into())
        );
        assert_eq!(SourceName::parse("nvd").unwrap().feed(), Some(Feed::Nvd));
        assert!(matches!(
            SourceName::parse("http://mirror/x.zip").unwrap(),
            SourceName::Archive(_)
        ));
    }

    #[test]
    fn bad_names_are_refused_with_a_reason() {
        for name in [
            "",
            "  ",
            "osv:",
            "osv: ",
            "auto",
            "ftp://host/x.zip",
            "a\0b",
        ] {
            assert!(SourceName::parse(name).is_err(), "{name:?}");
        }
    }
}
