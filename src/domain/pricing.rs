//! The Defender plan of a subscription (Azure's `Microsoft.Security/pricings`): its tier and the
//! plan names Crowsnest answers to.

use std::fmt;

/// Whether a subscription's registry images are assessed: Standard scans and bills them, Free
/// records them only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PricingTier {
    Free,
    Standard,
}

impl PricingTier {
    pub const ALL: [Self; 2] = [Self::Free, Self::Standard];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Free => "Free",
            Self::Standard => "Standard",
        }
    }

    /// As Azure spells it (exactly; `standard` is refused like any other unknown tier).
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == s)
    }
}

impl fmt::Display for PricingTier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A plan name Crowsnest answers to. Both stand for the one switch it has, registry scanning:
/// `ContainerRegistry` is Azure's deprecated name for it, replaced by `Containers`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PricingPlan {
    Containers,
    ContainerRegistry,
}

impl PricingPlan {
    /// In the order the list shows them.
    pub const ALL: [Self; 2] = [Self::Containers, Self::ContainerRegistry];

    /// The name the state is stored under: one row stands for both names.
    pub const STORED: Self = Self::Containers;

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Containers => "Containers",
            Self::ContainerRegistry => "ContainerRegistry",
        }
    }

    /// ARM resource names are case-insensitive; the answer spells the name Azure's way.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|p| p.as_str().eq_ignore_ascii_case(s))
    }

    /// The plan that replaces a deprecated one.
    pub fn replaced_by(self) -> Option<Self> {
        match self {
            Self::Containers => None,
            Self::ContainerRegistry => Some(Self::Containers),
        }
    }
}

/// The one `$filter` Azure's pricings list takes: `name in (Containers,KeyVaults)` (names bare or
/// in single quotes, keywords in any case). Returns the names as written; the message says what
/// is wrong otherwise.
pub fn parse_name_filter(filter: &str) -> Result<Vec<String>, &'static str> {
    const SHAPE: &str = "The only $filter this list takes is name in (planName1,planName2,...).";
    let rest = filter.trim();
    let rest = strip_keyword(rest, "name").ok_or(SHAPE)?;
    let rest = strip_keyword(rest.trim_start(), "in").ok_or(SHAPE)?;
    let inner = rest
        .trim()
        .strip_prefix('(')
        .and_then(|r| r.strip_suffix(')'))
        .ok_or(SHAPE)?;
    inner
        .split(',')
        .map(|name| {
            let name = name.trim();
            let name = name
                .strip_prefix('\'')
                .and_then(|n| n.strip_suffix('\''))
                .unwrap_or(name);
            if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric()) {
                Err("A plan name in $filter is empty or holds characters other than letters and digits.")
            } else {
                Ok(name.to_owned())
            }
        })
        .collect()
}

/// `rest` after `word` (any case) when a space or `(` follows it.
fn strip_keyword<'a>(rest: &'a str, word: &str) -> Option<&'a str> {
    let head = rest.get(..word.len())?;
    let tail = &rest[word.len()..];
    (head.eq_ignore_ascii_case(word) && tail.starts_with([' ', '('])).then_some(tail)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tiers_are_spelled_exactly_and_plans_case_insensitively() {
        assert_eq!(PricingTier::parse("Free"), Some(PricingTier::Free));
        assert_eq!(PricingTier::parse("standard"), None);
        assert_eq!(
            PricingPlan::parse("containers"),
            Some(PricingPlan::Containers)
        );
        assert_eq!(
            PricingPlan::parse("CONTAINERREGISTRY"),
            Some(PricingPlan::ContainerRegistry)
        );
        assert_eq!(PricingPlan::parse("VirtualMachines"), None);
        assert_eq!(
            PricingPlan::ContainerRegistry.replaced_by(),
            Some(PricingPlan::Containers)
        );
    }

    #[test]
    fn the_name_filter_takes_azures_shape_only() {
        assert_eq!(
            parse_name_filter("name in (VirtualMachines,KeyVaults)"),
            Ok(vec!["VirtualMachines".to_owned(), "KeyVaults".to_owned()])
        );
        assert_eq!(
            parse_name_filter(" NAME IN ( 'Containers' , ContainerRegistry )"),
            Ok(vec![
                "Containers".to_owned(),
                "ContainerRegistry".to_owned()
            ])
        );
        for bad in [
            "",
            "name eq 'Containers'",
            "name in Containers",
            "name in ()",
            "name in (a,,b)",
            "named in (a)",
            "name in (a b)",
        ] {
            assert!(parse_name_filter(bad).is_err(), "{bad:?} was taken");
        }
    }
}
