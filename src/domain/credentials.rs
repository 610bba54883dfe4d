use std::fmt;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Pull credentials for a registry: write-only through the API, and never printed.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum RegistryCredentials {
    /// HTTP basic credentials (also used for the token service's challenge flow).
    Basic { username: String, password: String },
    /// A bearer token sent as is (or an identity token exchanged with the token service).
    Token { token: String },
}

impl RegistryCredentials {
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Basic { .. } => "Basic",
            Self::Token { .. } => "Token",
        }
    }

    /// Refuses empty parts; the message never repeats a value.
    pub fn validate(&self) -> Result<(), &'static str> {
        match self {
            Self::Basic { username, .. } if username.trim().is_empty() => {
                Err("credentials.username must not be empty")
            }
            Self::Basic { password, .. } if password.is_empty() => {
                Err("credentials.password must not be empty")
            }
            Self::Token { token } if token.trim().is_empty() => {
                Err("credentials.token must not be empty")
            }
            _ => Ok(()),
        }
    }
}

impl fmt::Debug for RegistryCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RegistryCredentials::{}(***)", self.kind())
    }
}
