//! The registry client: resolves image references with the OCI distribution API and streams
//! blobs. It is the first step of a registry scan: everything the layer pipeline reads comes
//! through it.
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
//! Auth: anonymous, Basic and the Docker bearer-token flow (`auth.rs`). Plain HTTP only for
//! registries connected as `insecure`. Retries with exponential backoff and jitter on 429, 5xx,
//! connect errors and timeouts, honouring `Retry-After` (`transport.rs`). Credentials and tokens
//! are never logged and never appear in errors.
//!
//! The client's limits, timeouts and retry policy are in `config.rs`; the manifest formats in
//! `manifest.rs`; the errors in `error.rs`.

mod auth;
mod blob;
mod config;
mod error;
pub(crate) mod manifest;
mod reference;
mod transport;

use std::sync::{Arc, Mutex};

use reqwest::StatusCode;
use reqwest::header::CONTENT_TYPE;
use url::Url;

use crate::domain::Digest;
use auth::AuthState;
use blob::{digest_like, sha256_of};
use error::Ctx;
use transport::{Target, content_length, describe_reqwest, header_str, read_limited};

pub use blob::BlobStream;
pub use config::{Backoff, ClientConfig, Limits, Timeouts};
pub use error::{ReferenceError, RegistryError};
pub use manifest::{
    DOCKER_CONFIG, DOCKER_MANIFEST, DOCKER_MANIFEST_LIST, Descriptor, IndexEntry, MANIFEST_ACCEPT,
    ManifestKind, OCI_CONFIG, OCI_INDEX, OCI_MANIFEST, Platform, is_image_config,
};
pub use reference::{ImageReference, validate_repository, validate_tag};

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
