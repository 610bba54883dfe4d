//! Sending a registry request: retries with backoff (and `Retry-After`), bounded body reads,
//! and the mapping of failures (final statuses, transport errors) to [`RegistryError`]s that
//! name the registry and repository, never a URL or a credential.

use std::time::Duration;

use reqwest::header::{CONTENT_LENGTH, HeaderMap};
use reqwest::{Response, StatusCode};
use url::Url;

use super::RegistryClient;
use super::error::{Ctx, RegistryError};
use crate::domain::Digest;

pub(super) enum Target<'a> {
    Manifest(&'a str),
    Blob(&'a Digest),
    Token,
}

impl RegistryClient {
    /// Sends with retries on 429 / 5xx (returned as the last response when retries run out),
    /// connect errors and timeouts (→ `RegistryUnavailable`).
    pub(super) async fn send_with_retry(
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
    pub(super) async fn status_error(
        &self,
        ctx: &Ctx,
        resp: Response,
        target: Target<'_>,
    ) -> RegistryError {
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

pub(super) fn content_length(h: &HeaderMap) -> Option<u64> {
    h.get(CONTENT_LENGTH)?.to_str().ok()?.trim().parse().ok()
}

pub(super) fn header_str(h: &HeaderMap, name: &str) -> Option<String> {
    h.get(name)?.to_str().ok().map(|s| s.trim().to_owned())
}

/// Reads at most `limit` bytes: `Ok(None)` when the body is longer.
pub(super) async fn read_limited(
    mut resp: Response,
    limit: u64,
) -> Result<Option<Vec<u8>>, reqwest::Error> {
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
pub(super) fn describe_reqwest(e: &reqwest::Error) -> String {
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
