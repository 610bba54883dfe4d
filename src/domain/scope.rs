use std::fmt;

use super::pattern::{case_insensitive as ci, inner};
use super::{NameError, RegistryName, ResourceGroupName, SubscriptionId};

/// A connected registry's ARM resource id.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RegistryId {
    pub subscription: SubscriptionId,
    pub resource_group: ResourceGroupName,
    pub name: RegistryName,
}

impl RegistryId {
    /// The resource id from stored (already validated) parts.
    pub fn format(subscription: &str, resource_group: &str, name: &str) -> String {
        format!(
            "/subscriptions/{subscription}/resourceGroups/{resource_group}/providers/Microsoft.ContainerRegistry/registries/{name}"
        )
    }
}

impl fmt::Display for RegistryId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&Self::format(
            self.subscription.as_str(),
            self.resource_group.as_str(),
            self.name.as_str(),
        ))
    }
}

/// Where a list reaches: a subscription, a resource group or one registry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    Subscription(SubscriptionId),
    ResourceGroup(SubscriptionId, ResourceGroupName),
    Registry(RegistryId),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScopeError {
    #[error(
        "scope {0:?} is not supported: use subscriptions/{{id}}, subscriptions/{{id}}/resourceGroups/{{name}} or a registry resource id"
    )]
    Unsupported(String),
    #[error(transparent)]
    Name(#[from] NameError),
}

impl Scope {
    /// What [`Self::parse`] accepts.
    pub fn pattern() -> String {
        format!(
            "^/*{}/(?:{})(?:/{}/(?:{})(?:/{}/{}/{}/(?:{}))?)?$",
            ci("subscriptions"),
            inner(SubscriptionId::PATTERN),
            ci("resourceGroups"),
            inner(ResourceGroupName::PATTERN),
            ci("providers"),
            ci("Microsoft.ContainerRegistry"),
            ci("registries"),
            inner(RegistryName::PATTERN),
        )
    }

    /// Parses `subscriptions/{sub}[/resourceGroups/{rg}[/providers/Microsoft.ContainerRegistry/registries/{name}]]`,
    /// with or without a leading `/`; ARM's segment keywords are case-insensitive.
    pub fn parse(raw: &str) -> Result<Self, ScopeError> {
        let trimmed = raw.trim_start_matches('/');
        let parts: Vec<&str> = trimmed.split('/').collect();
        let keyword =
            |i: usize, word: &str| parts.get(i).is_some_and(|p| p.eq_ignore_ascii_case(word));
        let unsupported = || ScopeError::Unsupported(raw.chars().take(200).collect());
        if !keyword(0, "subscriptions") {
            return Err(unsupported());
        }
        match parts.len() {
            2 => Ok(Self::Subscription(SubscriptionId::parse(parts[1])?)),
            4 if keyword(2, "resourceGroups") => Ok(Self::ResourceGroup(
                SubscriptionId::parse(parts[1])?,
                ResourceGroupName::parse(parts[3])?,
            )),
            8 if keyword(2, "resourceGroups")
                && keyword(4, "providers")
                && keyword(5, "Microsoft.ContainerRegistry")
                && keyword(6, "registries") =>
            {
                Ok(Self::Registry(RegistryId {
                    subscription: SubscriptionId::parse(parts[1])?,
                    resource_group: ResourceGroupName::parse(parts[3])?,
                    name: RegistryName::parse(parts[7])?,
                }))
            }
            _ => Err(unsupported()),
        }
    }

    pub fn subscription(&self) -> &SubscriptionId {
        match self {
            Self::Subscription(s) | Self::ResourceGroup(s, _) => s,
            Self::Registry(r) => &r.subscription,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_three_scopes() {
        assert_eq!(
            Scope::parse("subscriptions/S1").unwrap(),
            Scope::Subscription(SubscriptionId::parse("s1").unwrap())
        );
        let rg = Scope::parse("/subscriptions/s1/resourcegroups/RG").unwrap();
        assert!(matches!(rg, Scope::ResourceGroup(_, ref g) if g.as_str() == "rg"));
        let reg = Scope::parse("subscriptions/s1/resourceGroups/rg/providers/Microsoft.ContainerRegistry/registries/r1")
            .unwrap();
        match reg {
            Scope::Registry(id) => assert_eq!(
                id.to_string(),
                "/subscriptions/s1/resourceGroups/rg/providers/Microsoft.ContainerRegistry/registries/r1"
            ),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn refuses_other_scopes() {
        for bad in [
            "",
            "providers/Microsoft.Management/managementGroups/mg",
            "subscriptions",
            "subscriptions/s1/resourceGroups",
            "subscriptions/s1/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/vm",
            "subscriptions/s 1",
        ] {
            assert!(Scope::parse(bad).is_err(), "{bad}");
        }
    }
}
