//! The registry client: resolves image references with the OCI distribution API and streams
//! blobs (DESIGN.md §5 step 1).
//!
//! * [`ImageReference`] parses `host[:port]/repo[:tag][@digest]`.
//! * [`RegistryClient::manifest`]: one manifest by tag or digest, size-bounded, digest-checked,
//!   parsed by media type (OCI manifest/index, Docker schema 2 manifest/list).
//! * [`RegistryClient::resolve`]: a reference → its linux images (an index's other children are
//!   listed as skipped, with their platform and the reason), each with its verified config.
//! * [`RegistryClient::blob`] / [`RegistryClient::blob_for`]: a blob as a bounded,
//!   length-checked [`BlobStream`] (usable as `AsyncRead`, and from sync code through
//!   `tokio_util::io::SyncIoBridge`); [`RegistryClient::blob_bytes`] for small verified blobs.
//!
//! Auth: anonymous, Basic and the Docker bearer-token flow (see `auth.rs`). Plain HTTP only for
//! registries connected as `insecure`. Retries with exponential backoff and jitter on 429, 5xx,
//! connect errors and timeouts, honouring `Retry-After`. Credentials and tokens are never logged
//! and never appear in errors.

mod auth;
mod blob;
mod error;
pub(crate) mod manifest;
mod reference;

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use reqwest::header::{
    ACCEPT, AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE, HeaderMap, HeaderValue,
};
use reqwest::{Response, StatusCode};
use url::Url;

use crate::domain::{Digest, RegistryCredentials};
use auth::{AuthMode, AuthState, Challenge, Secret};
use blob::{digest_like, sha256_of};
use error::Ctx;

pub use blob::BlobStream;
pub use error::{ReferenceError, RegistryError};
pub use manifest::{
    DOCKER_CONFIG, DOCKER_MANIFEST, DOCKER_MANIFEST_LIST, Descriptor, IndexEntry, MANIFEST_ACCEPT,
    ManifestKind, OCI_CONFIG, OCI_INDEX, OCI_MANIFEST, Platform, is_image_config,
};
pub use reference::{ImageReference, validate_repository, validate_tag};

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

/// How the registry client introduces itself (registries log it; notifications carry it).
pub const USER_AGENT_PRODUCT: &str = "crowsnest/";
const USER_AGENT: &str = concat!("crowsnest/", env!("CARGO_PKG_VERSION"));

/// A fetched, digest-verified and parsed manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchedManifest {
    /// The requested digest, or (by tag) the sha256 of the bytes, checked against
    /// `Docker-Content-Digest` when the registry sent one.
    pub digest: Digest,
    pub media_type: String,
    pub bytes: Vec<u8>,
    pub kind: ManifestKind,
}

/// One linux image of a resolved reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedImage {
    pub manifest_digest: Digest,
    pub media_type: String,
    pub manifest_bytes: Vec<u8>,
    /// From the index entry when there is one, else from the config.
    pub platform: Platform,
    pub config: Descriptor,
    /// The config blob, digest-verified.
    pub config_bytes: Vec<u8>,
    pub layers: Vec<Descriptor>,
}

/// A manifest that is not scanned, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkippedManifest {
    /// `os/arch[/variant]`, or `unknown`.
    pub platform: String,
    pub digest: Digest,
    pub reason: String,
}

/// What a reference resolves to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    /// Set when the reference named an index / manifest list.
    pub index_digest: Option<Digest>,
    pub images: Vec<ResolvedImage>,
    pub skipped: Vec<SkippedManifest>,
}

/// A client for one registry (cheap to clone; clones share connections and cached tokens).
#[derive(Debug, Clone)]
pub struct RegistryClient {
    http: reqwest::Client,
    /// The login server as given, without scheme: named in every error.
    registry: String,
    base: Url,
    config: Arc<ClientConfig>,
    auth: Arc<Mutex<AuthState>>,
}

/// What authorization a request carried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SentAuth {
    Anonymous,
    Basic,
    DirectToken,
    Bearer { fresh: bool },
}

enum Target<'a> {
    Manifest(&'a str),
    Blob(&'a Digest),
    Token,
}

impl RegistryClient {
    /// `login_server` is `host[:port]`, optionally with `https://` (or `http://` when
    /// `insecure`). Without a scheme: https, or http when `insecure`. `docker.io` and
    /// `index.docker.io` are served by `registry-1.docker.io`.
    pub fn new(login_server: &str, config: ClientConfig) -> Result<Self, RegistryError> {
        let bad = |reason: String| RegistryError::from(ReferenceError::new(login_server, reason));
        let s = login_server.trim().trim_end_matches('/');
        let (scheme, host) = if let Some(h) = s.strip_prefix("https://") {
            ("https", h)
        } else if let Some(h) = s.strip_prefix("http://") {
            if !config.insecure {
                return Err(bad(
                    "plain http:// is only allowed for a registry connected as insecure".into(),
                ));
            }
            ("http", h)
        } else if s.contains("://") {
            return Err(bad(
                "the login server's scheme must be https (or http when insecure)".into(),
            ));
        } else {
            (if config.insecure { "http" } else { "https" }, s)
        };
        if host.contains('/') || host.contains('@') {
            return Err(bad(
                "the login server must be host[:port], without path or user".into(),
            ));
        }
        reference::validate_host(host).map_err(bad)?;
        let api_host = match host.to_ascii_lowercase().as_str() {
            "docker.io" | "index.docker.io" => "registry-1.docker.io".to_owned(),
            _ => host.to_owned(),
        };
        let base = Url::parse(&format!("{scheme}://{api_host}/"))
            .map_err(|e| bad(format!("not a valid host: {e}")))?;
        let http = reqwest::Client::builder()
            .connect_timeout(config.timeouts.connect)
            .read_timeout(config.timeouts.read_idle)
            .redirect(reqwest::redirect::Policy::limited(5))
            .https_only(!config.insecure)
            .user_agent(USER_AGENT)
            .build()
            .map_err(|e| RegistryError::Unavailable {
                registry: host.to_owned(),
                repository: String::new(),
                reason: format!("cannot build the HTTP client: {}", describe_reqwest(&e)),
            })?;
        Ok(Self {
            http,
            registry: host.to_owned(),
            base,
            config: Arc::new(config),
            auth: Arc::default(),
        })
    }

    /// The login server (`host[:port]`).
    pub fn registry(&self) -> &str {
        &self.registry
    }

    pub fn config(&self) -> &ClientConfig {
        &self.config
    }

    /// GETs a manifest by tag or digest (Accept: OCI manifest + index, Docker v2 manifest +
    /// list), reading at most `max_manifest_bytes + 1` bytes; verifies its digest against the
    /// requested digest, or by tag against `Docker-Content-Digest` (the sha256 is computed in
    /// any case); parses it by media type and checks the layer count and declared layer sizes.
    pub async fn manifest(
        &self,
        repository: &str,
        reference: &str,
    ) -> Result<FetchedManifest, RegistryError> {
        check_repository(repository)?;
        let expected = if reference.contains(':') {
            Some(
                Digest::parse(reference)
                    .map_err(|e| ReferenceError::new(reference, e.to_string()))?,
            )
        } else {
            validate_tag(reference).map_err(|r| ReferenceError::new(reference, r))?;
            None
        };
        let ctx = self.ctx(repository);
        let url = self.url(&format!("v2/{repository}/manifests/{reference}"))?;
        let resp = self
            .get_authed(&ctx, &url, Some(MANIFEST_ACCEPT), true)
            .await?;
        if resp.status() != StatusCode::OK {
            return Err(self
                .status_error(&ctx, resp, Target::Manifest(reference))
                .await);
        }
        let limit = self.config.limits.max_manifest_bytes;
        let too_large = || RegistryError::ManifestTooLarge {
            registry: ctx.registry.clone(),
            repository: ctx.repository.clone(),
            reference: reference.to_owned(),
            limit,
        };
        if content_length(resp.headers()).is_some_and(|l| l > limit) {
            return Err(too_large());
        }
        let header_digest = header_str(resp.headers(), "docker-content-digest");
        let content_type = header_str(resp.headers(), CONTENT_TYPE.as_str());
        let bytes = match read_limited(resp, limit).await {
            Ok(Some(b)) => b,
            Ok(None) => return Err(too_large()),
            Err(e) => {
                return Err(ctx.unavailable(format!(
                    "reading manifest {reference} failed: {}",
                    describe_reqwest(&e)
                )));
            }
        };
        let what = format!("manifest {reference}");
        let digest = match expected {
            Some(d) => {
                let actual = digest_like(&d, &bytes);
                if actual != d.as_str() {
                    return Err(ctx.digest_mismatch(what, &d, actual));
                }
                d
            }
            None => {
                if let Some(h) = header_digest.as_deref() {
                    match Digest::parse(h) {
                        Ok(hd) => {
                            let actual = digest_like(&hd, &bytes);
                            if actual != hd.as_str() {
                                return Err(ctx.digest_mismatch(
                                    format!("{what} (Docker-Content-Digest)"),
                                    hd,
                                    actual,
                                ));
                            }
                        }
                        Err(_) => tracing::warn!(
                            registry = %ctx.registry, repository = %ctx.repository, reference,
                            "ignoring an invalid Docker-Content-Digest header"
                        ),
                    }
                }
                Digest::parse(&sha256_of(&bytes)).map_err(|e| ctx.invalid(&what, e.to_string()))?
            }
        };
        let (media_type, kind) = manifest::parse_manifest(&bytes, content_type.as_deref())
            .map_err(|e| match e {
                manifest::ParseError::Unsupported(mt) => ctx.unsupported(&what, &mt),
                manifest::ParseError::Invalid(r) => ctx.invalid(&what, r),
            })?;
        let limits = &self.config.limits;
        match &kind {
            ManifestKind::Image { layers, .. } => {
                if layers.len() > limits.max_layers {
                    return Err(RegistryError::TooManyLayers {
                        registry: ctx.registry.clone(),
                        repository: ctx.repository.clone(),
                        reference: reference.to_owned(),
                        count: layers.len(),
                        limit: limits.max_layers,
                    });
                }
                if let Some(l) = layers.iter().find(|l| l.size > limits.max_layer_bytes) {
                    return Err(ctx.blob_too_large(
                        l.digest.as_str(),
                        Some(l.size),
                        limits.max_layer_bytes,
                    ));
                }
            }
            ManifestKind::Index { manifests } => {
                if manifests.len() > limits.max_index_manifests {
                    return Err(ctx.invalid(
                        &what,
                        format!(
                            "the index lists {} manifests, more than the limit of {}",
                            manifests.len(),
                            limits.max_index_manifests
                        ),
                    ));
                }
            }
        }
        tracing::debug!(
            registry = %ctx.registry, repository = %ctx.repository, reference,
            digest = %digest, media_type, size = bytes.len(), "fetched manifest"
        );
        Ok(FetchedManifest {
            digest,
            media_type,
            bytes,
            kind,
        })
    }

    /// Resolves a reference to its images. A manifest → one image (skipped if its config's os
    /// is not linux); an index / manifest list → each linux child (fetched and verified by
    /// digest); other platforms, attestations, nested indexes and non-image artifacts are
    /// listed in `skipped`. Every image's config blob is fetched and verified.
    pub async fn resolve(&self, reference: &ImageReference) -> Result<Resolved, RegistryError> {
        if normalize_registry(&reference.registry) != normalize_registry(&self.registry) {
            return Err(ReferenceError::new(
                &reference.to_string(),
                format!(
                    "the reference is for registry {}, this client is for {}",
                    reference.registry, self.registry
                ),
            )
            .into());
        }
        let repo = reference.repository.as_str();
        let top = self.manifest(repo, &reference.reference()).await?;
        let mut resolved = Resolved {
            index_digest: None,
            images: Vec::new(),
            skipped: Vec::new(),
        };
        let manifests = match &top.kind {
            ManifestKind::Image { .. } => {
                self.add_image(repo, top, None, false, &mut resolved)
                    .await?;
                return Ok(resolved);
            }
            ManifestKind::Index { manifests } => manifests.clone(),
        };
        resolved.index_digest = Some(top.digest.clone());
        let ctx = self.ctx(repo);
        for entry in manifests {
            let d = &entry.descriptor;
            let platform = entry
                .platform
                .as_ref()
                .map_or_else(|| "unknown".to_owned(), ToString::to_string);
            let skip = |resolved: &mut Resolved, reason: String| {
                resolved.skipped.push(SkippedManifest {
                    platform: platform.clone(),
                    digest: d.digest.clone(),
                    reason,
                });
            };
            if entry.is_attestation() {
                skip(&mut resolved, "attestation manifest, not an image".into());
                continue;
            }
            if let Some(p) = &entry.platform
                && !p.is_linux()
            {
                skip(&mut resolved, format!("platform {p} is not linux"));
                continue;
            }
            if d.media_type == OCI_INDEX || d.media_type == DOCKER_MANIFEST_LIST {
                skip(&mut resolved, "nested index is not supported".into());
                continue;
            }
            if d.media_type != OCI_MANIFEST && d.media_type != DOCKER_MANIFEST {
                skip(
                    &mut resolved,
                    format!("media type {:?} is not an image manifest", d.media_type),
                );
                continue;
            }
            let child = self.manifest(repo, d.digest.as_str()).await?;
            if child.bytes.len() as u64 != d.size {
                return Err(ctx.invalid(
                    format!("index {}", top.digest),
                    format!(
                        "child {} is {} bytes, the index says {}",
                        d.digest,
                        child.bytes.len(),
                        d.size
                    ),
                ));
            }
            if matches!(child.kind, ManifestKind::Index { .. }) {
                skip(&mut resolved, "nested index is not supported".into());
                continue;
            }
            self.add_image(repo, child, entry.platform.clone(), true, &mut resolved)
                .await?;
        }
        Ok(resolved)
    }

    async fn add_image(
        &self,
        repo: &str,
        fetched: FetchedManifest,
        index_platform: Option<Platform>,
        in_index: bool,
        resolved: &mut Resolved,
    ) -> Result<(), RegistryError> {
        let ctx = self.ctx(repo);
        let ManifestKind::Image { config, layers } = fetched.kind else {
            return Err(ctx.invalid(
                format!("manifest {}", fetched.digest),
                "expected an image manifest",
            ));
        };
        let platform_str = |p: &Option<Platform>| {
            p.as_ref()
                .map_or_else(|| "unknown".to_owned(), ToString::to_string)
        };
        if !is_image_config(&config.media_type) {
            if in_index {
                resolved.skipped.push(SkippedManifest {
                    platform: platform_str(&index_platform),
                    digest: fetched.digest,
                    reason: format!(
                        "not a container image (config media type {:?})",
                        config.media_type
                    ),
                });
                return Ok(());
            }
            return Err(ctx.unsupported(
                format!("config of manifest {}", fetched.digest),
                &config.media_type,
            ));
        }
        let config_bytes = self
            .open_blob(
                repo,
                &config.digest,
                Some(config.size),
                self.config.limits.max_config_bytes,
            )
            .await?
            .verify_digest()
            .collect()
            .await?;
        let raw: manifest::RawConfig = serde_json::from_slice(&config_bytes).map_err(|e| {
            ctx.invalid(
                format!("config {}", config.digest),
                format!("not a valid image config: {e}"),
            )
        })?;
        let platform = index_platform.or_else(|| {
            raw.os.map(|os| Platform {
                os,
                architecture: raw.architecture.unwrap_or_default(),
                variant: raw.variant.filter(|v| !v.is_empty()),
            })
        });
        let platform = match platform {
            Some(p) if p.is_linux() => p,
            other => {
                let reason = match &other {
                    Some(p) => format!("platform {p} is not linux"),
                    None => "the image config names no os".to_owned(),
                };
                resolved.skipped.push(SkippedManifest {
                    platform: platform_str(&other),
                    digest: fetched.digest,
                    reason,
                });
                return Ok(());
            }
        };
        resolved.images.push(ResolvedImage {
            manifest_digest: fetched.digest,
            media_type: fetched.media_type,
            manifest_bytes: fetched.bytes,
            platform,
            config,
            config_bytes,
            layers,
        });
        Ok(())
    }

    /// Opens a blob (layer) stream bounded by `max_layer_bytes`. The caller verifies the digest
    /// as it consumes it (or calls [`BlobStream::verify_digest`]). The body's length is checked
    /// against `Content-Length`; prefer [`Self::blob_for`] when the descriptor is known.
    pub async fn blob(
        &self,
        repository: &str,
        digest: &Digest,
    ) -> Result<BlobStream, RegistryError> {
        self.open_blob(repository, digest, None, self.config.limits.max_layer_bytes)
            .await
    }

    /// Like [`Self::blob`], also checking the body against the descriptor's size (a declared
    /// size over `max_layer_bytes` fails before any request).
    pub async fn blob_for(
        &self,
        repository: &str,
        descriptor: &Descriptor,
    ) -> Result<BlobStream, RegistryError> {
        self.open_blob(
            repository,
            &descriptor.digest,
            Some(descriptor.size),
            self.config.limits.max_layer_bytes,
        )
        .await
    }

    /// A small blob (e.g. a config) in memory, at most `limit` bytes, digest-verified.
    pub async fn blob_bytes(
        &self,
        repository: &str,
        digest: &Digest,
        limit: u64,
    ) -> Result<Vec<u8>, RegistryError> {
        self.open_blob(repository, digest, None, limit)
            .await?
            .verify_digest()
            .collect()
            .await
    }

    async fn open_blob(
        &self,
        repository: &str,
        digest: &Digest,
        expected: Option<u64>,
        limit: u64,
    ) -> Result<BlobStream, RegistryError> {
        check_repository(repository)?;
        let ctx = self.ctx(repository);
        if let Some(size) = expected
            && size > limit
        {
            return Err(ctx.blob_too_large(digest.as_str(), Some(size), limit));
        }
        let url = self.url(&format!("v2/{repository}/blobs/{digest}"))?;
        let resp = self.get_authed(&ctx, &url, None, false).await?;
        if resp.status() != StatusCode::OK {
            return Err(self.status_error(&ctx, resp, Target::Blob(digest)).await);
        }
        let len = content_length(resp.headers());
        if let Some(len) = len
            && len > limit
        {
            return Err(ctx.blob_too_large(digest.as_str(), Some(len), limit));
        }
        tracing::debug!(
            registry = %ctx.registry, repository = %ctx.repository, digest = %digest,
            content_length = ?len, "streaming blob"
        );
        Ok(BlobStream::new(
            ctx,
            digest.clone(),
            len,
            expected,
            limit,
            Box::pin(resp.bytes_stream()),
        ))
    }

    // ---------------------------------------------------------------------------------------
    // HTTP: auth, retries, status mapping
    // ---------------------------------------------------------------------------------------

    fn ctx(&self, repository: &str) -> Ctx {
        Ctx {
            registry: self.registry.clone(),
            repository: repository.to_owned(),
        }
    }

    fn url(&self, path: &str) -> Result<Url, RegistryError> {
        self.base
            .join(path)
            .map_err(|e| ReferenceError::new(path, format!("cannot build the URL: {e}")).into())
    }

    fn state(&self) -> MutexGuard<'_, AuthState> {
        // A panic while holding the lock cannot leave the state inconsistent: keep going.
        self.auth
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// GET `url` for `repository`, answering auth challenges (see `auth.rs`).
    async fn get_authed(
        &self,
        ctx: &Ctx,
        url: &Url,
        accept: Option<&'static str>,
        whole_timeout: bool,
    ) -> Result<Response, RegistryError> {
        let scope = format!("repository:{}:pull", ctx.repository);
        for _round in 0..4 {
            let (sent, header) = self.authorization(ctx, &scope).await?;
            tracing::debug!(
                registry = %ctx.registry, repository = %ctx.repository, path = url.path(),
                auth = ?sent, "GET"
            );
            let resp = self
                .send_with_retry(ctx, !whole_timeout, || {
                    let mut rb = self.http.get(url.clone());
                    if let Some(a) = accept {
                        rb = rb.header(ACCEPT, a);
                    }
                    if let Some(h) = &header {
                        rb = rb.header(AUTHORIZATION, h.clone());
                    }
                    if whole_timeout {
                        rb = rb.timeout(self.config.timeouts.request);
                    }
                    rb
                })
                .await?;
            if resp.status() != StatusCode::UNAUTHORIZED {
                return Ok(resp);
            }
            let challenge = auth::pick_challenge(
                resp.headers()
                    .get_all(reqwest::header::WWW_AUTHENTICATE)
                    .iter()
                    .filter_map(|v| v.to_str().ok()),
            );
            let creds = self.config.credentials.as_ref();
            match (sent, challenge) {
                (_, None) => {
                    return Err(ctx.unauthorized(
                        "the registry answered 401 without a WWW-Authenticate challenge",
                    ));
                }
                (SentAuth::Basic, _) => {
                    return Err(ctx.unauthorized("the registry rejected the Basic credentials"));
                }
                (SentAuth::Bearer { fresh: true }, _) => {
                    self.state().forget(&scope);
                    return Err(ctx.unauthorized(
                        "the registry rejected the token issued by its token service \
                         (no pull access for these credentials?)",
                    ));
                }
                (SentAuth::Bearer { fresh: false }, _) => {
                    // A cached token that the registry no longer accepts: fetch a new one.
                    self.state().forget(&scope);
                }
                (SentAuth::DirectToken, Some(Challenge::Bearer { realm, service, .. })) => {
                    let mut st = self.state();
                    st.direct_token_refused = true;
                    st.mode = AuthMode::Bearer { realm, service };
                }
                (SentAuth::DirectToken, Some(_)) => {
                    return Err(ctx.unauthorized("the registry rejected the token credentials"));
                }
                (SentAuth::Anonymous, Some(Challenge::Basic)) => match creds {
                    Some(RegistryCredentials::Basic { .. }) => self.state().mode = AuthMode::Basic,
                    Some(RegistryCredentials::Token { .. }) => {
                        return Err(ctx.unauthorized(
                            "the registry asks for Basic credentials, but only a token is configured",
                        ));
                    }
                    None => {
                        return Err(ctx.unauthorized(
                            "authentication required (Basic challenge) and no credentials are configured",
                        ));
                    }
                },
                (SentAuth::Anonymous, Some(Challenge::Bearer { realm, service, .. })) => {
                    self.state().mode = AuthMode::Bearer { realm, service };
                }
                (SentAuth::Anonymous, Some(Challenge::Other(scheme))) => {
                    return Err(
                        ctx.unauthorized(format!("unsupported authentication scheme {scheme:?}"))
                    );
                }
            }
        }
        Err(ctx.unauthorized("authentication did not succeed after several challenges"))
    }

    /// The Authorization header for the next request, fetching a token when needed.
    async fn authorization(
        &self,
        ctx: &Ctx,
        scope: &str,
    ) -> Result<(SentAuth, Option<HeaderValue>), RegistryError> {
        let (mode, direct_refused, cached) = {
            let st = self.state();
            (st.mode.clone(), st.direct_token_refused, st.token(scope))
        };
        let creds = self.config.credentials.as_ref();
        Ok(match mode {
            AuthMode::Unknown => match creds {
                Some(RegistryCredentials::Token { token }) if !direct_refused => {
                    (SentAuth::DirectToken, Some(bearer(ctx, token)?))
                }
                _ => (SentAuth::Anonymous, None),
            },
            AuthMode::Basic => match creds {
                Some(RegistryCredentials::Basic { username, password }) => {
                    (SentAuth::Basic, Some(basic(ctx, username, password)?))
                }
                _ => (SentAuth::Anonymous, None),
            },
            AuthMode::Bearer { realm, service } => match cached {
                Some(t) => (SentAuth::Bearer { fresh: false }, Some(bearer(ctx, &t.0)?)),
                None => {
                    let t = self
                        .fetch_token(ctx, &realm, service.as_deref(), scope)
                        .await?;
                    (SentAuth::Bearer { fresh: true }, Some(bearer(ctx, &t.0)?))
                }
            },
        })
    }

    /// The token flow: GET realm?service=&scope= (Basic auth with Basic credentials), or with
    /// an identity token an OAuth2 `refresh_token` POST. Caches the token per scope.
    async fn fetch_token(
        &self,
        ctx: &Ctx,
        realm: &str,
        service: Option<&str>,
        scope: &str,
    ) -> Result<Secret, RegistryError> {
        let mut url = Url::parse(realm).map_err(|_| {
            ctx.unauthorized("the registry's Bearer challenge has a realm that is not a URL")
        })?;
        let _ = url.set_username("");
        let _ = url.set_password(None);
        url.set_query(None);
        url.set_fragment(None);
        let shown = url.to_string();
        if url.scheme() != "https" && !(self.config.insecure && url.scheme() == "http") {
            return Err(ctx.unauthorized(format!(
                "the token realm {shown} is not https (plain http is only allowed for a registry \
                 connected as insecure)"
            )));
        }
        let creds = self.config.credentials.as_ref();
        let resp = match creds {
            Some(RegistryCredentials::Token { token }) => {
                // The serializer is not Send: keep it out of the awaits below.
                let body = {
                    let mut form = url::form_urlencoded::Serializer::new(String::new());
                    form.append_pair("grant_type", "refresh_token");
                    form.append_pair("refresh_token", token);
                    if let Some(s) = service {
                        form.append_pair("service", s);
                    }
                    form.append_pair("scope", scope);
                    form.append_pair("client_id", "crowsnest");
                    form.finish()
                };
                self.send_with_retry(ctx, false, || {
                    self.http
                        .post(url.clone())
                        .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
                        .body(body.clone())
                        .timeout(self.config.timeouts.request)
                })
                .await?
            }
            _ => {
                let mut get_url = url.clone();
                {
                    let mut q = get_url.query_pairs_mut();
                    if let Some(s) = service {
                        q.append_pair("service", s);
                    }
                    q.append_pair("scope", scope);
                }
                let auth = match creds {
                    Some(RegistryCredentials::Basic { username, password }) => {
                        Some(basic(ctx, username, password)?)
                    }
                    _ => None,
                };
                self.send_with_retry(ctx, false, || {
                    let mut rb = self
                        .http
                        .get(get_url.clone())
                        .timeout(self.config.timeouts.request);
                    if let Some(a) = &auth {
                        rb = rb.header(AUTHORIZATION, a.clone());
                    }
                    rb
                })
                .await?
            }
        };
        let status = resp.status();
        if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
            let what = match creds {
                Some(RegistryCredentials::Basic { .. }) => "the Basic credentials",
                Some(RegistryCredentials::Token { .. }) => "the identity token",
                None => "an anonymous request",
            };
            return Err(ctx.unauthorized(format!(
                "the token service {shown} refused {what} (HTTP {})",
                status.as_u16()
            )));
        }
        if status != StatusCode::OK {
            return Err(self.status_error(ctx, resp, Target::Token).await);
        }
        let body = match read_limited(resp, 1 << 20).await {
            Ok(Some(b)) => b,
            Ok(None) => {
                return Err(ctx.unauthorized(format!(
                    "the token service {shown} answered more than 1 MiB"
                )));
            }
            Err(e) => {
                return Err(ctx.unavailable(format!(
                    "reading the token from {shown} failed: {}",
                    describe_reqwest(&e)
                )));
            }
        };
        let parsed: auth::TokenResponse = serde_json::from_slice(&body).map_err(|_| {
            ctx.unauthorized(format!("the token service {shown} did not answer JSON"))
        })?;
        let (token, ttl) = parsed.into_token().ok_or_else(|| {
            ctx.unauthorized(format!(
                "the token service {shown} answered without a token"
            ))
        })?;
        tracing::debug!(
            registry = %ctx.registry, repository = %ctx.repository, scope,
            ttl_secs = ttl.as_secs(), "obtained a registry token"
        );
        self.state().store(scope, token.clone(), ttl);
        Ok(token)
    }

    /// Sends with retries on 429 / 5xx (returned as the last response when retries run out),
    /// connect errors and timeouts (→ `RegistryUnavailable`).
    async fn send_with_retry(
        &self,
        ctx: &Ctx,
        header_timeout: bool,
        build: impl Fn() -> reqwest::RequestBuilder,
    ) -> Result<Response, RegistryError> {
        let retries = self.config.retries;
        let mut attempt: u32 = 0;
        loop {
            let fut = build().send();
            let result = if header_timeout {
                match tokio::time::timeout(self.config.timeouts.request, fut).await {
                    Ok(r) => r.map_err(|e| describe_send_error(&self.base, &e)),
                    Err(_) => Err(format!(
                        "no response within {:?}",
                        self.config.timeouts.request
                    )),
                }
            } else {
                fut.await.map_err(|e| describe_send_error(&self.base, &e))
            };
            let delay = match &result {
                Ok(resp) if !is_retryable(resp.status()) => None,
                Ok(resp) => Some(
                    retry_after(resp.headers(), self.config.backoff.max_retry_after)
                        .unwrap_or_else(|| self.backoff(attempt)),
                ),
                Err(_) => Some(self.backoff(attempt)),
            };
            // Out of retries, the last 429/5xx response is returned for the caller to map.
            let Some(delay) = delay.filter(|_| attempt < retries) else {
                return result.map_err(|reason| {
                    ctx.unavailable(format!("{reason} (after {} attempt(s))", attempt + 1))
                });
            };
            match &result {
                Ok(resp) => tracing::warn!(
                    registry = %ctx.registry, repository = %ctx.repository,
                    status = resp.status().as_u16(), attempt = attempt + 1, ?delay,
                    "registry request failed, retrying"
                ),
                Err(reason) => tracing::warn!(
                    registry = %ctx.registry, repository = %ctx.repository,
                    reason, attempt = attempt + 1, ?delay, "registry request failed, retrying"
                ),
            }
            drop(result);
            tokio::time::sleep(delay).await;
            attempt += 1;
        }
    }

    fn backoff(&self, attempt: u32) -> Duration {
        let b = &self.config.backoff;
        let factor = 1u32.checked_shl(attempt.min(20)).unwrap_or(u32::MAX);
        let full = b.initial.saturating_mul(factor).min(b.max);
        let half = full / 2;
        let span = u64::try_from(half.as_nanos()).unwrap_or(u64::MAX);
        if span == 0 {
            return full;
        }
        half + Duration::from_nanos(random_u64() % (span + 1))
    }

    /// The error for a final non-success status (after retries).
    async fn status_error(&self, ctx: &Ctx, resp: Response, target: Target<'_>) -> RegistryError {
        let status = resp.status();
        let attempts = self.config.retries + 1;
        match (status, &target) {
            (StatusCode::NOT_FOUND, Target::Manifest(reference)) => {
                return RegistryError::ManifestNotFound {
                    registry: ctx.registry.clone(),
                    repository: ctx.repository.clone(),
                    reference: (*reference).to_owned(),
                };
            }
            (StatusCode::NOT_FOUND, Target::Blob(digest)) => {
                return RegistryError::BlobNotFound {
                    registry: ctx.registry.clone(),
                    repository: ctx.repository.clone(),
                    digest: digest.to_string(),
                };
            }
            (StatusCode::TOO_MANY_REQUESTS, _) => {
                return RegistryError::TooManyRequests {
                    registry: ctx.registry.clone(),
                    repository: ctx.repository.clone(),
                    attempts,
                };
            }
            _ => {}
        }
        let what = match target {
            Target::Manifest(r) => format!("manifest {r}"),
            Target::Blob(d) => format!("blob {d}"),
            Target::Token => "the token request".to_owned(),
        };
        let detail = error_detail(resp).await;
        if status == StatusCode::FORBIDDEN {
            return ctx.unauthorized(format!("access to {what} denied (HTTP 403){detail}"));
        }
        if is_retryable(status) {
            return ctx.unavailable(format!(
                "HTTP {} for {what} after {attempts} attempt(s){detail}",
                status.as_u16()
            ));
        }
        ctx.unavailable(format!(
            "unexpected HTTP {} for {what}{detail}",
            status.as_u16()
        ))
    }
}

fn check_repository(repository: &str) -> Result<(), RegistryError> {
    validate_repository(repository).map_err(|r| ReferenceError::new(repository, r).into())
}

fn normalize_registry(r: &str) -> String {
    let r = r.to_ascii_lowercase();
    match r.as_str() {
        "index.docker.io" | "registry-1.docker.io" => "docker.io".to_owned(),
        _ => r,
    }
}

fn is_retryable(s: StatusCode) -> bool {
    s == StatusCode::TOO_MANY_REQUESTS
        || (s.is_server_error()
            && s != StatusCode::NOT_IMPLEMENTED
            && s != StatusCode::HTTP_VERSION_NOT_SUPPORTED)
}

/// `Retry-After: <seconds>` (an HTTP date falls back to the backoff).
fn retry_after(h: &HeaderMap, cap: Duration) -> Option<Duration> {
    let secs: u64 = h
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()?;
    Some(Duration::from_secs(secs).min(cap))
}

fn random_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default(),
    );
    h.finish()
}

fn content_length(h: &HeaderMap) -> Option<u64> {
    h.get(CONTENT_LENGTH)?.to_str().ok()?.trim().parse().ok()
}

fn header_str(h: &HeaderMap, name: &str) -> Option<String> {
    h.get(name)?.to_str().ok().map(|s| s.trim().to_owned())
}

fn basic(ctx: &Ctx, username: &str, password: &str) -> Result<HeaderValue, RegistryError> {
    use base64::Engine as _;
    let enc = base64::engine::general_purpose::STANDARD.encode(format!("{username}:{password}"));
    sensitive(ctx, &format!("Basic {enc}"))
}

fn bearer(ctx: &Ctx, token: &str) -> Result<HeaderValue, RegistryError> {
    sensitive(ctx, &format!("Bearer {token}"))
}

fn sensitive(ctx: &Ctx, value: &str) -> Result<HeaderValue, RegistryError> {
    let mut v = HeaderValue::from_str(value).map_err(|_| {
        ctx.unauthorized("the credentials contain characters not allowed in an HTTP header")
    })?;
    v.set_sensitive(true);
    Ok(v)
}

/// Reads at most `limit` bytes: `Ok(None)` when the body is longer.
async fn read_limited(mut resp: Response, limit: u64) -> Result<Option<Vec<u8>>, reqwest::Error> {
    let mut out = Vec::new();
    while let Some(chunk) = resp.chunk().await? {
        if out.len() as u64 + chunk.len() as u64 > limit {
            return Ok(None);
        }
        out.extend_from_slice(&chunk);
    }
    Ok(Some(out))
}

/// `: CODE: message` from a distribution error body (first 4 KiB), or empty.
async fn error_detail(resp: Response) -> String {
    #[derive(serde::Deserialize)]
    struct Body {
        errors: Vec<Item>,
    }
    #[derive(serde::Deserialize)]
    struct Item {
        code: Option<String>,
        message: Option<String>,
    }
    let Ok(Some(bytes)) = read_limited(resp, 4096).await else {
        return String::new();
    };
    let Ok(body) = serde_json::from_slice::<Body>(&bytes) else {
        return String::new();
    };
    let parts: Vec<String> = body
        .errors
        .iter()
        .take(3)
        .map(|e| {
            let msg: String = e
                .message
                .as_deref()
                .unwrap_or("")
                .chars()
                .take(200)
                .collect();
            format!("{}: {msg}", e.code.as_deref().unwrap_or("ERROR"))
        })
        .collect();
    if parts.is_empty() {
        String::new()
    } else {
        format!(": {}", parts.join("; "))
    }
}

/// A reqwest error without its URL (the caller names the registry), with the cause chain.
pub(crate) fn describe_reqwest(e: &reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "connection failed"
    } else if e.is_body() || e.is_decode() {
        "reading the response body failed"
    } else if e.is_redirect() {
        "redirect failed"
    } else if e.is_builder() {
        "invalid request"
    } else {
        "request failed"
    };
    let mut out = kind.to_owned();
    let mut seen: Vec<String> = Vec::new();
    let mut src = std::error::Error::source(e);
    while let Some(s) = src {
        let m = s.to_string();
        if !m.is_empty() && !seen.iter().any(|x| x.contains(&m)) {
            out.push_str(": ");
            out.push_str(&m);
            seen.push(m);
        }
        src = s.source();
    }
    out
}

fn describe_send_error(base: &Url, e: &reqwest::Error) -> String {
    let mut d = describe_reqwest(e);
    if base.scheme() == "https" && e.is_connect() && !d.to_ascii_lowercase().contains("refused") {
        d.push_str(
            " (TLS failed: if the registry only speaks plain HTTP, it must be connected as insecure)",
        );
    }
    if e.is_builder() && d.contains("scheme") {
        d.push_str(" (plain http is only allowed for a registry connected as insecure)");
    }
    d
}
