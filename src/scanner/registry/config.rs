//! [`ClientConfig`]: how to talk to one registry: transport security, credentials, the size and
//! count [`Limits`], [`Timeouts`], and the retry policy ([`Backoff`]).

use std::time::Duration;

use crate::domain::RegistryCredentials;

/// Size and count limits: exceeding one is an error, never a silent truncation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// A manifest or index body (default 4 MiB; at most limit + 1 bytes are read).
    pub max_manifest_bytes: u64,
    /// An image config blob (default 8 MiB).
    pub max_config_bytes: u64,
    /// Layers of one image manifest (default 256).
    pub max_layers: usize,
    /// One compressed layer (default 4 GiB).
    pub max_layer_bytes: u64,
    /// Children of one index / manifest list (default 256).
    pub max_index_manifests: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_manifest_bytes: 4 << 20,
            max_config_bytes: 8 << 20,
            max_layers: 256,
            max_layer_bytes: 4 << 30,
            max_index_manifests: 256,
        }
    }
}

/// Timeouts of every request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Timeouts {
    /// TCP + TLS connect (default 10 s).
    pub connect: Duration,
    /// A whole manifest / token request; for a blob, the time until its response headers
    /// (default 60 s). A blob body is bounded by `read_idle` instead.
    pub request: Duration,
    /// Longest wait for the next bytes of a response body (default 60 s).
    pub read_idle: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            connect: Duration::from_secs(10),
            request: Duration::from_secs(60),
            read_idle: Duration::from_secs(60),
        }
    }
}

/// Backoff between retries: `initial * 2^attempt`, capped at `max`, with jitter (a random
/// delay in [d/2, d]). A `Retry-After: <seconds>` header replaces it, capped at `max_retry_after`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backoff {
    pub initial: Duration,
    pub max: Duration,
    pub max_retry_after: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            initial: Duration::from_millis(250),
            max: Duration::from_secs(8),
            max_retry_after: Duration::from_secs(60),
        }
    }
}

/// How to talk to one registry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientConfig {
    /// Plain `http://` allowed (and used when the login server has no scheme). Otherwise only
    /// https, for the registry, its redirects and its token realm.
    pub insecure: bool,
    pub credentials: Option<RegistryCredentials>,
    pub limits: Limits,
    pub timeouts: Timeouts,
    /// Retries after the first attempt on 429, 5xx (except 501/505), connect errors and
    /// timeouts (default 3).
    pub retries: u32,
    pub backoff: Backoff,
}

impl Default for ClientConfig {
    fn default() -> Self {
        Self {
            insecure: false,
            credentials: None,
            limits: Limits::default(),
            timeouts: Timeouts::default(),
            retries: 3,
            backoff: Backoff::default(),
        }
    }
}
