//! [`BlobStream`]: a blob's HTTP body as a stream of chunks, bounded and length-checked.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_util::Stream;
use sha2::Digest as _;
use tokio::io::AsyncRead;

use super::error::{Ctx, RegistryError};
use crate::domain::Digest;

type Body = Pin<Box<dyn Stream<Item = reqwest::Result<Bytes>> + Send>>;

/// A blob being downloaded. As a [`Stream`] of `Result<Bytes, RegistryError>` it:
/// * fails with `LayerTooLarge` as soon as more than the limit has arrived (never truncates);
/// * fails with `BlobSizeMismatch` when the body ends before (or runs past) the expected size:
///   the descriptor's size when given, else the `Content-Length`;
/// * maps transport errors (reset, read-idle timeout) to `RegistryUnavailable`;
/// * verifies the digest at the end only when [`BlobStream::verify_digest`] was called
///   (a layer reader that hashes the compressed stream itself need not).
pub struct BlobStream {
    ctx: Ctx,
    digest: Digest,
    content_length: Option<u64>,
    expected: Option<u64>,
    limit: u64,
    received: u64,
    hasher: Option<Hasher>,
    body: Body,
    done: bool,
}

enum Hasher {
    Sha256(sha2::Sha256),
    Sha512(sha2::Sha512),
}

impl Hasher {
    fn for_digest(d: &Digest) -> Self {
        if d.as_str().starts_with("sha512:") {
            Self::Sha512(sha2::Sha512::new())
        } else {
            Self::Sha256(sha2::Sha256::new())
        }
    }
    fn update(&mut self, b: &[u8]) {
        match self {
            Self::Sha256(h) => h.update(b),
            Self::Sha512(h) => h.update(b),
        }
    }
    fn finish(self) -> String {
        match self {
            Self::Sha256(h) => format!("sha256:{}", hex::encode(h.finalize())),
            Self::Sha512(h) => format!("sha512:{}", hex::encode(h.finalize())),
        }
    }
}

/// The digest of `bytes` in the algorithm of `like` (sha256 or sha512).
pub(crate) fn digest_like(like: &Digest, bytes: &[u8]) -> String {
    let mut h = Hasher::for_digest(like);
    h.update(bytes);
    h.finish()
}

/// `sha256:<hex>` of `bytes`.
pub(crate) fn sha256_of(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(sha2::Sha256::digest(bytes)))
}

impl BlobStream {
    pub(crate) fn new(
        ctx: Ctx,
        digest: Digest,
        content_length: Option<u64>,
        expected: Option<u64>,
        limit: u64,
        body: Body,
    ) -> Self {
        Self {
            ctx,
            digest,
            content_length,
            expected: expected.or(content_length),
            limit,
            received: 0,
            hasher: None,
            body,
            done: false,
        }
    }

    pub fn digest(&self) -> &Digest {
        &self.digest
    }

    /// The `Content-Length` the registry declared, if any.
    pub fn content_length(&self) -> Option<u64> {
        self.content_length
    }

    /// The size the body must have: the descriptor's size when given, else `Content-Length`.
    pub fn size(&self) -> Option<u64> {
        self.expected
    }

    /// Bytes received so far.
    pub fn received(&self) -> u64 {
        self.received
    }

    /// Also check the digest: the end of the stream becomes a `DigestMismatch` error when the
    /// content does not hash to [`Self::digest`].
    pub fn verify_digest(mut self) -> Self {
        self.hasher = Some(Hasher::for_digest(&self.digest));
        self
    }

    /// An `AsyncRead` over the body; errors are `io::Error`s wrapping the [`RegistryError`]
    /// (get it back with [`RegistryError::from_io`]). For sync code, wrap it in
    /// `tokio_util::io::SyncIoBridge` inside `spawn_blocking`.
    pub fn into_async_read(self) -> impl AsyncRead + Send + Unpin + 'static {
        tokio_util::io::StreamReader::new(IoStream(self))
    }

    /// Reads the whole body into memory (it is bounded by the limit).
    pub async fn collect(mut self) -> Result<Vec<u8>, RegistryError> {
        use futures_util::StreamExt as _;
        let cap = self.expected.unwrap_or(0).min(self.limit).min(16 << 20);
        let mut out = Vec::with_capacity(usize::try_from(cap).unwrap_or(0));
        while let Some(chunk) = self.next().await {
            out.extend_from_slice(&chunk?);
        }
        Ok(out)
    }

    fn size_mismatch(&self, expected: u64, detail: Option<String>) -> RegistryError {
        RegistryError::BlobSizeMismatch {
            registry: self.ctx.registry.clone(),
            repository: self.ctx.repository.clone(),
            digest: self.digest.to_string(),
            expected,
            received: self.received,
            detail,
        }
    }

    fn fail(&mut self, e: RegistryError) -> Poll<Option<Result<Bytes, RegistryError>>> {
        self.done = true;
        Poll::Ready(Some(Err(e)))
    }
}

impl Stream for BlobStream {
    type Item = Result<Bytes, RegistryError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        if this.done {
            return Poll::Ready(None);
        }
        match this.body.as_mut().poll_next(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Some(Ok(chunk))) => {
                this.received += chunk.len() as u64;
                if this.received > this.limit {
                    let e = this.ctx.blob_too_large(
                        this.digest.as_str(),
                        this.expected.filter(|&s| s > this.limit),
                        this.limit,
                    );
                    return this.fail(e);
                }
                if let Some(expected) = this.expected
                    && this.received > expected
                {
                    let e = this.size_mismatch(expected, Some("body longer than declared".into()));
                    return this.fail(e);
                }
                if let Some(h) = this.hasher.as_mut() {
                    h.update(&chunk);
                }
                Poll::Ready(Some(Ok(chunk)))
            }
            Poll::Ready(Some(Err(e))) => {
                let detail = super::transport::describe_reqwest(&e);
                let err = match this.expected {
                    Some(expected) if this.received < expected => {
                        this.size_mismatch(expected, Some(format!("body cut short: {detail}")))
                    }
                    _ => this.ctx.unavailable(format!(
                        "reading blob {} failed after {} bytes: {detail}",
                        this.digest, this.received
                    )),
                };
                this.fail(err)
            }
            Poll::Ready(None) => {
                if let Some(expected) = this.expected
                    && this.received < expected
                {
                    let e = this.size_mismatch(expected, Some("body cut short".into()));
                    return this.fail(e);
                }
                this.done = true;
                if let Some(h) = this.hasher.take() {
                    let actual = h.finish();
                    if actual != this.digest.as_str() {
                        let e = this.ctx.digest_mismatch(
                            format!("blob {}", this.digest),
                            &this.digest,
                            actual,
                        );
                        return Poll::Ready(Some(Err(e)));
                    }
                }
                Poll::Ready(None)
            }
        }
    }
}

impl std::fmt::Debug for BlobStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlobStream")
            .field("registry", &self.ctx.registry)
            .field("repository", &self.ctx.repository)
            .field("digest", &self.digest)
            .field("content_length", &self.content_length)
            .field("expected", &self.expected)
            .field("received", &self.received)
            .finish_non_exhaustive()
    }
}

/// [`BlobStream`] with `io::Error`s, for `StreamReader`.
struct IoStream(BlobStream);

impl Stream for IoStream {
    type Item = std::io::Result<Bytes>;
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        Pin::new(&mut self.0)
            .poll_next(cx)
            .map(|o| o.map(|r| r.map_err(std::io::Error::other)))
    }
}
