use std::fmt;

use super::pattern;

/// Why a name from a path or body was refused; the message is meant for the client.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{kind} {value:?} is invalid: {rule}")]
pub struct NameError {
    pub kind: &'static str,
    pub value: String,
    pub rule: &'static str,
}

impl NameError {
    fn new(kind: &'static str, value: &str, rule: &'static str) -> Self {
        let value: String = value.chars().take(100).collect();
        Self { kind, value, rule }
    }
}

macro_rules! name_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(String);

        impl $name {
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl std::str::FromStr for $name {
            type Err = NameError;
            fn from_str(s: &str) -> Result<Self, NameError> {
                Self::parse(s)
            }
        }
    };
}

name_type!(
    /// A subscription id: ARM uses GUIDs; Crowsnest also accepts short names such as `prod`.
    /// Case-insensitive, kept in lower case.
    SubscriptionId
);
name_type!(
    /// A resource group name (ARM rules), case-insensitive, kept in lower case.
    ResourceGroupName
);
name_type!(
    /// A connected registry's name: a DNS label, case-insensitive, kept in lower case.
    RegistryName
);
name_type!(
    /// A repository inside a registry, as the distribution spec defines it (`library/debian`).
    RepositoryName
);
name_type!(
    /// `host[:port]` of a registry, lower case.
    LoginServer
);

impl SubscriptionId {
    /// What [`Self::parse`] accepts.
    pub const PATTERN: &str = "^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$";

    pub fn parse(s: &str) -> Result<Self, NameError> {
        const RULE: &str = "use 1-64 letters, digits, '-' or '_', starting with a letter or digit";
        let ok = (1..=64).contains(&s.len())
            && s.starts_with(|c: char| c.is_ascii_alphanumeric())
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if ok {
            Ok(Self(s.to_ascii_lowercase()))
        } else {
            Err(NameError::new("subscription id", s, RULE))
        }
    }
}

impl ResourceGroupName {
    /// What [`Self::parse`] accepts.
    pub const PATTERN: &str = "^[A-Za-z0-9_.()-]{0,89}[A-Za-z0-9_()-]$";

    pub fn parse(s: &str) -> Result<Self, NameError> {
        const RULE: &str = "use 1-90 letters, digits, '_', '-', '.', '(' or ')', not ending in '.'";
        let ok = (1..=90).contains(&s.len())
            && !s.ends_with('.')
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || "_-.()".contains(c));
        if ok {
            Ok(Self(s.to_ascii_lowercase()))
        } else {
            Err(NameError::new("resource group name", s, RULE))
        }
    }
}

impl RegistryName {
    /// What [`Self::parse`] accepts.
    pub const PATTERN: &str = "^[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?$";

    pub fn parse(s: &str) -> Result<Self, NameError> {
        const RULE: &str =
            "use 1-63 letters, digits or '-', starting and ending with a letter or digit";
        let ok = (1..=63).contains(&s.len())
            && s.starts_with(|c: char| c.is_ascii_alphanumeric())
            && s.ends_with(|c: char| c.is_ascii_alphanumeric())
            && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
        if ok {
            Ok(Self(s.to_ascii_lowercase()))
        } else {
            Err(NameError::new("registry name", s, RULE))
        }
    }
}

impl RepositoryName {
    /// What [`Self::parse`] accepts, with [`Self::MAX_LEN`].
    pub const PATTERN: &str =
        "^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*$";
    pub const MAX_LEN: usize = 255;

    /// `path-component(/path-component)*`, each `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*`, 255 characters at most.
    pub fn parse(s: &str) -> Result<Self, NameError> {
        const RULE: &str = "use lower-case path components of [a-z0-9] joined by '.', '_', '__' or '-', separated by '/'";
        let component_ok = |c: &str| {
            let bytes = c.as_bytes();
            if bytes.is_empty() || !is_alnum(bytes[0]) || !is_alnum(bytes[bytes.len() - 1]) {
                return false;
            }
            let mut i = 0;
            while i < bytes.len() {
                if is_alnum(bytes[i]) {
                    i += 1;
                    continue;
                }
                let start = i;
                while i < bytes.len() && !is_alnum(bytes[i]) {
                    i += 1;
                }
                let sep = &c[start..i];
                if !(sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|b| b == b'-')) {
                    return false;
                }
            }
            true
        };
        if s.len() <= Self::MAX_LEN && s.split('/').all(component_ok) {
            Ok(Self(s.to_owned()))
        } else {
            Err(NameError::new("repository name", s, RULE))
        }
    }
}

fn is_alnum(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit()
}

impl LoginServer {
    /// The longest login server (a 253-character host name and a port).
    pub const MAX_LEN: usize = 260;

    /// The host's bound, which [`Self::pattern`] cannot say: at most 253 characters.
    pub const HOST_LENGTH_PATTERN: &str = "^(?:\\[|[^:]{1,253}(?::|$))";

    /// What [`Self::parse`] accepts, with [`Self::MAX_LEN`] and [`Self::HOST_LENGTH_PATTERN`].
    pub fn pattern() -> String {
        let label = pattern::LABEL;
        format!(
            "^(?:{label}(?:\\.{label})*|\\[{}\\])(?::{})?$",
            pattern::ipv6(true),
            pattern::PORT
        )
    }

    /// A host name, IPv4 address or bracketed IPv6 address, with an optional port.
    pub fn parse(s: &str) -> Result<Self, NameError> {
        const RULE: &str = "use host[:port], e.g. registry.example.com or 127.0.0.1:5000, without a scheme or path";
        let err = || NameError::new("login server", s, RULE);
        let (host, port) = if let Some(rest) = s.strip_prefix('[') {
            let (host, after) = rest.split_once(']').ok_or_else(err)?;
            if host.parse::<std::net::Ipv6Addr>().is_err() {
                return Err(err());
            }
            // Only a port may follow the address: `[::1]x` is not a login server.
            match after {
                "" => (host, None),
                _ => (host, Some(after.strip_prefix(':').ok_or_else(err)?)),
            }
        } else {
            match s.split_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (s, None),
            }
        };
        // Digits only (`u16::from_str` also takes `+80`), without leading zeros.
        if let Some(port) = port
            && !(port.bytes().all(|b| b.is_ascii_digit())
                && !port.starts_with('0')
                && matches!(port.parse::<u16>(), Ok(p) if p > 0))
        {
            return Err(err());
        }
        let label_ok = |l: &str| {
            (1..=63).contains(&l.len())
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        };
        let host_ok = s.starts_with('[') || (host.len() <= 253 && host.split('.').all(label_ok));
        if host_ok && s.len() <= 260 {
            Ok(Self(s.to_ascii_lowercase()))
        } else {
            Err(err())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_normalised_or_refused() {
        assert_eq!(SubscriptionId::parse("ABC-1").unwrap().as_str(), "abc-1");
        assert!(SubscriptionId::parse("").is_err());
        assert!(SubscriptionId::parse("a/b").is_err());
        assert_eq!(
            ResourceGroupName::parse("My.Rg(1)").unwrap().as_str(),
            "my.rg(1)"
        );
        assert!(ResourceGroupName::parse("rg.").is_err());
        assert!(RegistryName::parse("-bad").is_err());
        assert!(RegistryName::parse("bad_name").is_err());
        assert_eq!(RegistryName::parse("MyReg").unwrap().as_str(), "myreg");
    }

    #[test]
    fn repository_names_follow_the_distribution_grammar() {
        for ok in [
            "debian",
            "library/debian",
            "a/b/c",
            "my-app",
            "my__app",
            "a.b",
            "x---y",
        ] {
            assert!(RepositoryName::parse(ok).is_ok(), "{ok}");
        }
        for bad in [
            "", "Debian", "a//b", "-a", "a-", "a_._b", "/a", "a/", "a___b",
        ] {
            assert!(RepositoryName::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn login_servers_are_host_and_optional_port() {
        for ok in [
            "registry.example.com",
            "127.0.0.1:5000",
            "LOCALHOST:5000",
            "[::1]:5000",
            "[::1]",
        ] {
            assert!(LoginServer::parse(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "http://x",
            "x/y",
            "x:0",
            "x:99999",
            "x:",
            "-x.com",
            "[zz]:1",
            "a..b",
            "x:+80",
            "x:080",
            "[::1]x",
            "[::1]5000",
        ] {
            assert!(LoginServer::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(
            LoginServer::parse("Reg.Example.com:443").unwrap().as_str(),
            "reg.example.com:443"
        );
    }
}
