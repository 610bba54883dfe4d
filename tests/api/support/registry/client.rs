//! A client of the distribution API that answers the Basic / Bearer challenge flow, and pushes
//! images and indexes built with `support::images`.
#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use super::TestRegistry;
use crate::support::images::{Image, MT_DOCKER_LIST, MT_OCI_INDEX, Platform, sha256_digest};

/// All four manifest types: Distribution 2.8 answers 404 for an OCI manifest/index unless the
/// Accept header names its type, so always send all of them.
pub const ACCEPT_ALL_MANIFESTS: &str = "application/vnd.oci.image.index.v1+json, \
application/vnd.oci.image.manifest.v1+json, \
application/vnd.docker.distribution.manifest.list.v2+json, \
application/vnd.docker.distribution.manifest.v2+json";

/// Parse a `WWW-Authenticate` value: `(scheme, params)`, e.g.
/// `("Bearer", {realm, service, scope})`. Quoted values may contain commas.
pub fn parse_www_authenticate(h: &str) -> (String, BTreeMap<String, String>) {
    let h = h.trim();
    let (scheme, rest) = h.split_once(' ').unwrap_or((h, ""));
    let mut params = BTreeMap::new();
    let chars: Vec<char> = rest.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        while i < chars.len() && (chars[i] == ',' || chars[i].is_whitespace()) {
            i += 1;
        }
        let ks = i;
        while i < chars.len() && chars[i] != '=' {
            i += 1;
        }
        let key: String = chars[ks..i]
            .iter()
            .collect::<String>()
            .trim()
            .to_ascii_lowercase();
        i += 1; // '='
        let mut val = String::new();
        if i < chars.len() && chars[i] == '"' {
            i += 1;
            while i < chars.len() && chars[i] != '"' {
                if chars[i] == '\\' && i + 1 < chars.len() {
                    i += 1;
                }
                val.push(chars[i]);
                i += 1;
            }
            i += 1;
        } else {
            while i < chars.len() && chars[i] != ',' {
                val.push(chars[i]);
                i += 1;
            }
        }
        if !key.is_empty() {
            params.insert(key, val.trim().to_string());
        }
    }
    (scheme.to_string(), params)
}

/// `repository:<repo>:pull`
pub fn pull_scope(repo: &str) -> String {
    format!("repository:{repo}:pull")
}
/// `repository:<repo>:pull,push`
pub fn push_scope(repo: &str) -> String {
    format!("repository:{repo}:pull,push")
}

/// A manifest fetched from the registry.
#[derive(Clone, Debug)]
pub struct FetchedManifest {
    pub status: StatusCode,
    pub bytes: Vec<u8>,
    pub content_type: String,
    /// `Docker-Content-Digest` header.
    pub digest: String,
}

/// HTTP client for one registry. Sends requests, and on a 401 answers the challenge:
/// `Basic` → retries with the credentials; `Bearer` → fetches a token from the realm
/// (with Basic credentials if it has any, anonymously otherwise) for the given scope, caches
/// it per scope and retries once.
#[derive(Clone)]
pub struct RegistryClient {
    http: reqwest::Client,
    base: String,
    creds: Option<(String, String)>,
    state: Arc<Mutex<AuthState>>,
}

#[derive(Default)]
struct AuthState {
    basic: bool,
    tokens: HashMap<String, String>,
}

impl RegistryClient {
    /// `base` = `http://127.0.0.1:PORT`.
    pub fn new(base: &str, creds: Option<(&str, &str)>) -> Self {
        let http = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(30))
            .build()
            .expect("build reqwest client");
        Self {
            http,
            base: base.trim_end_matches('/').to_string(),
            creds: creds.map(|(u, p)| (u.to_string(), p.to_string())),
            state: Arc::default(),
        }
    }
    pub fn base_url(&self) -> &str {
        &self.base
    }
    /// The underlying reqwest client (no auth applied).
    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    fn basic_header(&self) -> Option<String> {
        self.creds
            .as_ref()
            .map(|(u, p)| format!("Basic {}", B64.encode(format!("{u}:{p}"))))
    }

    fn cached_auth(&self, scope: &str) -> Option<String> {
        let st = self.state.lock().expect("lock");
        if let Some(t) = st.tokens.get(scope) {
            return Some(format!("Bearer {t}"));
        }
        if st.basic { self.basic_header() } else { None }
    }

    /// Fetch a bearer token from `realm` (what a docker client does after a Bearer challenge).
    /// Returns `None` if the token server refuses (e.g. 401 for wrong credentials).
    pub async fn fetch_token(&self, realm: &str, service: &str, scope: &str) -> Option<String> {
        let mut url = reqwest::Url::parse(realm).expect("token realm is a URL");
        {
            let mut q = url.query_pairs_mut();
            if !service.is_empty() {
                q.append_pair("service", service);
            }
            if !scope.is_empty() {
                q.append_pair("scope", scope);
            }
        }
        let mut rb = self.http.get(url);
        if let Some(b) = self.basic_header() {
            rb = rb.header(reqwest::header::AUTHORIZATION, b);
        }
        let resp = rb.send().await.expect("token request");
        if !resp.status().is_success() {
            return None;
        }
        let v: Value = resp.json().await.expect("token response is JSON");
        v["token"]
            .as_str()
            .or(v["access_token"].as_str())
            .map(str::to_owned)
    }

    /// Send a request (`path_or_url` = `/v2/...` or an absolute URL such as an upload
    /// `Location`), answering an auth challenge once. `scope` is what a Bearer token is
    /// requested for (empty = the challenge's own scope).
    pub async fn send(
        &self,
        method: Method,
        path_or_url: &str,
        headers: &[(&str, &str)],
        body: Option<&[u8]>,
        scope: &str,
    ) -> reqwest::Response {
        let url = if path_or_url.starts_with("http://") || path_or_url.starts_with("https://") {
            path_or_url.to_string()
        } else {
            format!("{}{}", self.base, path_or_url)
        };
        let build = |auth: Option<&str>| {
            let mut rb = self.http.request(method.clone(), &url);
            for (k, v) in headers {
                rb = rb.header(*k, *v);
            }
            if let Some(b) = body {
                rb = rb.body(b.to_vec());
            }
            if let Some(a) = auth {
                rb = rb.header(reqwest::header::AUTHORIZATION, a);
            }
            rb
        };
        let first_auth = self.cached_auth(scope);
        let resp = build(first_auth.as_deref())
            .send()
            .await
            .unwrap_or_else(|e| panic!("{method} {url}: {e}"));
        if resp.status() != StatusCode::UNAUTHORIZED {
            return resp;
        }
        let Some(challenge) = resp
            .headers()
            .get(reqwest::header::WWW_AUTHENTICATE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
        else {
            return resp;
        };
        let (scheme, params) = parse_www_authenticate(&challenge);
        let auth = if scheme.eq_ignore_ascii_case("basic") {
            let Some(b) = self.basic_header() else {
                return resp;
            };
            if first_auth.as_deref() == Some(b.as_str()) {
                return resp; // credentials were already rejected
            }
            self.state.lock().expect("lock").basic = true;
            b
        } else if scheme.eq_ignore_ascii_case("bearer") {
            let realm = params.get("realm").cloned().unwrap_or_default();
            let service = params.get("service").cloned().unwrap_or_default();
            let want = if scope.is_empty() {
                params.get("scope").cloned().unwrap_or_default()
            } else {
                scope.to_string()
            };
            let Some(token) = self.fetch_token(&realm, &service, &want).await else {
                return resp;
            };
            self.state
                .lock()
                .expect("lock")
                .tokens
                .insert(scope.to_string(), token.clone());
            format!("Bearer {token}")
        } else {
            return resp;
        };
        build(Some(&auth))
            .send()
            .await
            .unwrap_or_else(|e| panic!("{method} {url} (retry with auth): {e}"))
    }

    /// HEAD a blob; returns the status.
    pub async fn head_blob(&self, repo: &str, digest: &str) -> StatusCode {
        self.send(
            Method::HEAD,
            &format!("/v2/{repo}/blobs/{digest}"),
            &[],
            None,
            &pull_scope(repo),
        )
        .await
        .status()
    }

    /// GET a blob; panics unless 200 and the content hashes to `digest`.
    pub async fn get_blob(&self, repo: &str, digest: &str) -> Vec<u8> {
        let resp = self
            .send(
                Method::GET,
                &format!("/v2/{repo}/blobs/{digest}"),
                &[],
                None,
                &pull_scope(repo),
            )
            .await;
        let status = resp.status();
        let bytes = resp.bytes().await.expect("read blob body").to_vec();
        assert_eq!(
            status,
            StatusCode::OK,
            "GET blob {repo}@{digest}: {}",
            String::from_utf8_lossy(&bytes)
        );
        assert_eq!(
            sha256_digest(&bytes),
            digest,
            "blob {repo}@{digest} content digest mismatch"
        );
        bytes
    }

    /// GET a manifest with all four manifest media types accepted (no status check).
    pub async fn get_manifest(&self, repo: &str, reference: &str) -> FetchedManifest {
        self.fetch_manifest(Method::GET, repo, reference).await
    }
    /// HEAD a manifest with all four manifest media types accepted (no status check).
    pub async fn head_manifest(&self, repo: &str, reference: &str) -> FetchedManifest {
        self.fetch_manifest(Method::HEAD, repo, reference).await
    }

    async fn fetch_manifest(&self, method: Method, repo: &str, reference: &str) -> FetchedManifest {
        let resp = self
            .send(
                method,
                &format!("/v2/{repo}/manifests/{reference}"),
                &[("Accept", ACCEPT_ALL_MANIFESTS)],
                None,
                &pull_scope(repo),
            )
            .await;
        let h = |n: &str| {
            resp.headers()
                .get(n)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_string()
        };
        let (content_type, digest, status) =
            (h("content-type"), h("docker-content-digest"), resp.status());
        let bytes = resp.bytes().await.expect("read manifest body").to_vec();
        FetchedManifest {
            status,
            bytes,
            content_type,
            digest,
        }
    }

    /// Upload a blob (skipped if HEAD says it exists): POST `/blobs/uploads/`, then a
    /// monolithic `PUT <Location>&digest=`. Returns the digest.
    pub async fn push_blob(&self, repo: &str, data: &[u8]) -> String {
        self.push_blob_with_digest(repo, data, &sha256_digest(data))
            .await
    }

    /// [`push_blob`](Self::push_blob) with a precomputed digest (the registry still verifies it).
    pub async fn push_blob_with_digest(&self, repo: &str, data: &[u8], digest: &str) -> String {
        let digest = digest.to_string();
        let scope = push_scope(repo);
        let head = self
            .send(
                Method::HEAD,
                &format!("/v2/{repo}/blobs/{digest}"),
                &[],
                None,
                &scope,
            )
            .await;
        if head.status() == StatusCode::OK {
            return digest;
        }
        let post = self
            .send(
                Method::POST,
                &format!("/v2/{repo}/blobs/uploads/"),
                &[],
                None,
                &scope,
            )
            .await;
        let status = post.status();
        let location = post
            .headers()
            .get(reqwest::header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        if status != StatusCode::ACCEPTED {
            let body = post.text().await.unwrap_or_default();
            panic!("POST /v2/{repo}/blobs/uploads/: {status} {body}");
        }
        let location = location.expect("upload Location header");
        let sep = if location.contains('?') { '&' } else { '?' };
        let put_url = format!("{location}{sep}digest={digest}");
        let put = self
            .send(
                Method::PUT,
                &put_url,
                &[("Content-Type", "application/octet-stream")],
                Some(data),
                &scope,
            )
            .await;
        let got = created_digest(put, &format!("PUT blob {repo}@{digest}")).await;
        assert_eq!(got, digest, "registry digest for uploaded blob");
        digest
    }

    /// PUT a manifest (or index) by tag or digest; returns the registry's digest, which must
    /// equal sha256(bytes).
    pub async fn put_manifest(
        &self,
        repo: &str,
        reference: &str,
        media_type: &str,
        bytes: &[u8],
    ) -> String {
        let resp = self
            .send(
                Method::PUT,
                &format!("/v2/{repo}/manifests/{reference}"),
                &[("Content-Type", media_type)],
                Some(bytes),
                &push_scope(repo),
            )
            .await;
        let got = created_digest(
            resp,
            &format!("PUT manifest {repo}:{reference} ({media_type})"),
        )
        .await;
        assert_eq!(
            got,
            sha256_digest(bytes),
            "registry digest for manifest {repo}:{reference}"
        );
        got
    }

    /// Push config, layers and manifest of `image`; the manifest by `tag`, or by digest if None.
    pub async fn push_image(&self, repo: &str, tag: Option<&str>, image: &Image) -> PushedImage {
        let config_bytes = image.config_bytes();
        let config_digest = self.push_blob(repo, &config_bytes).await;
        let mut layer_digests = Vec::with_capacity(image.layers.len());
        for layer in &image.layers {
            layer_digests.push(
                self.push_blob_with_digest(repo, &layer.blob, &layer.digest)
                    .await,
            );
        }
        let manifest_bytes = image.manifest_bytes();
        let manifest_digest = sha256_digest(&manifest_bytes);
        let reference = tag.unwrap_or(&manifest_digest).to_string();
        let media_type = image.manifest_media_type();
        self.put_manifest(repo, &reference, media_type, &manifest_bytes)
            .await;
        PushedImage {
            repo: repo.to_string(),
            tag: tag.map(str::to_owned),
            manifest_digest,
            manifest_media_type: media_type.to_string(),
            manifest_bytes,
            config_digest,
            config_bytes,
            layer_digests,
        }
    }

    /// Push an index / manifest list over already pushed images (same repo) by `tag`.
    pub async fn push_index(
        &self,
        repo: &str,
        tag: &str,
        children: &[(PushedImage, Platform)],
        kind: IndexKind,
    ) -> PushedIndex {
        let bytes = index_bytes(children, kind);
        let digest = self
            .put_manifest(repo, tag, kind.media_type(), &bytes)
            .await;
        PushedIndex {
            repo: repo.to_string(),
            tag: tag.to_string(),
            digest,
            media_type: kind.media_type().to_string(),
            bytes,
            children: children
                .iter()
                .map(|(p, _)| p.manifest_digest.clone())
                .collect(),
        }
    }
}

/// Asserts that `what` answered 201 Created; returns its `Docker-Content-Digest`.
async fn created_digest(response: reqwest::Response, what: &str) -> String {
    let status = response.status();
    let digest = response
        .headers()
        .get("docker-content-digest")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let body = response.text().await.unwrap_or_default();
    assert_eq!(status, StatusCode::CREATED, "{what}: {body}");
    digest
}

/// Push `image` to `registry` (with its credentials). See [`RegistryClient::push_image`].
pub async fn push_image(
    registry: &TestRegistry,
    repo: &str,
    tag: Option<&str>,
    image: &Image,
) -> PushedImage {
    registry.client().push_image(repo, tag, image).await
}

/// Push an index over pushed images. See [`RegistryClient::push_index`].
pub async fn push_index(
    registry: &TestRegistry,
    repo: &str,
    tag: &str,
    children: &[(PushedImage, Platform)],
    kind: IndexKind,
) -> PushedIndex {
    registry
        .client()
        .push_index(repo, tag, children, kind)
        .await
}

/// Result of [`push_image`].
#[derive(Clone, Debug)]
pub struct PushedImage {
    pub repo: String,
    pub tag: Option<String>,
    pub manifest_digest: String,
    pub manifest_media_type: String,
    pub manifest_bytes: Vec<u8>,
    pub config_digest: String,
    pub config_bytes: Vec<u8>,
    pub layer_digests: Vec<String>,
}

/// Result of [`push_index`].
#[derive(Clone, Debug)]
pub struct PushedIndex {
    pub repo: String,
    pub tag: String,
    pub digest: String,
    pub media_type: String,
    pub bytes: Vec<u8>,
    pub children: Vec<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IndexKind {
    OciIndex,
    DockerManifestList,
}

impl IndexKind {
    pub fn media_type(self) -> &'static str {
        match self {
            Self::OciIndex => MT_OCI_INDEX,
            Self::DockerManifestList => MT_DOCKER_LIST,
        }
    }
}

fn index_bytes(children: &[(PushedImage, Platform)], kind: IndexKind) -> Vec<u8> {
    let manifests: Vec<Value> = children
        .iter()
        .map(|(p, plat)| {
            json!({
                "mediaType": p.manifest_media_type,
                "digest": p.manifest_digest,
                "size": p.manifest_bytes.len(),
                "platform": plat.to_json(),
            })
        })
        .collect();
    serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": kind.media_type(),
        "manifests": manifests,
    }))
    .expect("serialize index")
}
