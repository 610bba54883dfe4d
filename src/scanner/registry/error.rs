//! [`RegistryError`]: every failure of the registry client, with a stable short code.
//!
//! Messages name the registry, the repository and the manifest/blob they are about; they never
//! contain credentials or tokens (none of the fields can hold one).

/// An invalid image reference (or repository / tag / login server).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid image reference {input:?}: {reason}")]
pub struct ReferenceError {
    /// The rejected input (cut at 256 characters).
    pub input: String,
    pub reason: String,
}

impl ReferenceError {
    pub(crate) fn new(input: &str, reason: impl Into<String>) -> Self {
        Self {
            input: input.chars().take(256).collect(),
            reason: reason.into(),
        }
    }
}

/// A failure of the registry client. [`RegistryError::code`] gives a stable short code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegistryError {
    #[error(transparent)]
    InvalidReference(#[from] ReferenceError),

    #[error("registry {registry}: unauthorized for repository {repository}: {reason}")]
    Unauthorized {
        registry: String,
        repository: String,
        reason: String,
    },

    #[error("registry {registry}: manifest {reference} not found in repository {repository}")]
    ManifestNotFound {
        registry: String,
        repository: String,
        reference: String,
    },

    #[error("registry {registry}: blob {digest} not found in repository {repository}")]
    BlobNotFound {
        registry: String,
        repository: String,
        digest: String,
    },

    #[error("registry {registry} unavailable (repository {repository}): {reason}")]
    Unavailable {
        registry: String,
        repository: String,
        reason: String,
    },

    #[error(
        "registry {registry}: too many requests (HTTP 429) for repository {repository} after {attempts} attempt(s)"
    )]
    TooManyRequests {
        registry: String,
        repository: String,
        attempts: u32,
    },

    #[error(
        "registry {registry}: digest mismatch for {what} in repository {repository}: expected {expected}, got {actual}"
    )]
    DigestMismatch {
        registry: String,
        repository: String,
        /// e.g. `manifest latest`, `blob sha256:…`.
        what: String,
        expected: String,
        actual: String,
    },

    #[error(
        "registry {registry}: manifest {reference} in repository {repository} is larger than the limit of {limit} bytes"
    )]
    ManifestTooLarge {
        registry: String,
        repository: String,
        reference: String,
        limit: u64,
    },

    #[error(
        "registry {registry}: manifest {reference} in repository {repository} has {count} layers, more than the limit of {limit}"
    )]
    TooManyLayers {
        registry: String,
        repository: String,
        reference: String,
        count: usize,
        limit: usize,
    },

    #[error(
        "registry {registry}: blob {digest} in repository {repository} is larger than the limit of {limit} bytes{}",
        size.map(|s| format!(" ({s} bytes)")).unwrap_or_default()
    )]
    BlobTooLarge {
        registry: String,
        repository: String,
        digest: String,
        /// The declared size, when the registry or the manifest declared one.
        size: Option<u64>,
        limit: u64,
    },

    #[error(
        "registry {registry}: blob {digest} in repository {repository}: received {received} bytes, expected {expected}{}",
        detail.as_deref().map(|d| format!(" ({d})")).unwrap_or_default()
    )]
    BlobSizeMismatch {
        registry: String,
        repository: String,
        digest: String,
        expected: u64,
        received: u64,
        detail: Option<String>,
    },

    #[error(
        "registry {registry}: {what} in repository {repository} has unsupported media type {media_type:?}"
    )]
    UnsupportedMediaType {
        registry: String,
        repository: String,
        what: String,
        media_type: String,
    },

    #[error("registry {registry}: invalid {what} in repository {repository}: {reason}")]
    InvalidManifest {
        registry: String,
        repository: String,
        what: String,
        reason: String,
    },
}

impl RegistryError {
    /// A stable short code for APIs, metrics and scan results.
    pub fn code(&self) -> &'static str {
        match self {
            Self::InvalidReference(_) => "InvalidReference",
            Self::Unauthorized { .. } => "RegistryUnauthorized",
            Self::ManifestNotFound { .. } => "ManifestNotFound",
            Self::BlobNotFound { .. } => "BlobNotFound",
            Self::Unavailable { .. } => "RegistryUnavailable",
            Self::TooManyRequests { .. } => "TooManyRequests",
            Self::DigestMismatch { .. } => "DigestMismatch",
            Self::ManifestTooLarge { .. } => "ManifestTooLarge",
            Self::TooManyLayers { .. } => "TooManyLayers",
            Self::BlobTooLarge { .. } => "LayerTooLarge",
            Self::BlobSizeMismatch { .. } => "BlobSizeMismatch",
            Self::UnsupportedMediaType { .. } => "UnsupportedMediaType",
            Self::InvalidManifest { .. } => "InvalidManifest",
        }
    }

    /// Whether retrying later may succeed (registry down, rate limited, a transfer cut short).
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            Self::Unavailable { .. } | Self::TooManyRequests { .. } | Self::BlobSizeMismatch { .. }
        )
    }

    /// The [`RegistryError`] inside an `io::Error` produced by a blob reader
    /// ([`super::BlobStream::into_async_read`]), if it is one.
    pub fn from_io(err: &std::io::Error) -> Option<&RegistryError> {
        err.get_ref()
            .and_then(|e| e.downcast_ref::<RegistryError>())
    }
}

/// Registry + repository of a request: every error names both.
#[derive(Debug, Clone)]
pub(crate) struct Ctx {
    pub registry: String,
    pub repository: String,
}

impl Ctx {
    pub fn unauthorized(&self, reason: impl Into<String>) -> RegistryError {
        RegistryError::Unauthorized {
            registry: self.registry.clone(),
            repository: self.repository.clone(),
            reason: reason.into(),
        }
    }
    pub fn unavailable(&self, reason: impl Into<String>) -> RegistryError {
        RegistryError::Unavailable {
            registry: self.registry.clone(),
            repository: self.repository.clone(),
            reason: reason.into(),
        }
    }
    pub fn invalid(&self, what: impl Into<String>, reason: impl Into<String>) -> RegistryError {
        RegistryError::InvalidManifest {
            registry: self.registry.clone(),
            repository: self.repository.clone(),
            what: what.into(),
            reason: reason.into(),
        }
    }
    pub fn unsupported(&self, what: impl Into<String>, media_type: &str) -> RegistryError {
        RegistryError::UnsupportedMediaType {
            registry: self.registry.clone(),
            repository: self.repository.clone(),
            what: what.into(),
            media_type: media_type.chars().take(256).collect(),
        }
    }
    pub fn digest_mismatch(
        &self,
        what: impl Into<String>,
        expected: impl ToString,
        actual: impl ToString,
    ) -> RegistryError {
        RegistryError::DigestMismatch {
            registry: self.registry.clone(),
            repository: self.repository.clone(),
            what: what.into(),
            expected: expected.to_string(),
            actual: actual.to_string(),
        }
    }
    pub fn blob_too_large(&self, digest: &str, size: Option<u64>, limit: u64) -> RegistryError {
        RegistryError::BlobTooLarge {
            registry: self.registry.clone(),
            repository: self.repository.clone(),
            digest: digest.to_owned(),
            size,
            limit,
        }
    }
}
