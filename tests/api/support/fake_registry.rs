//! An in-process fake OCI registry (on a tokio TcpListener, speaking the HTTP/1.1 of
//! `support::http`) with Basic / Bearer auth, a token endpoint and fault injection.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use serde_json::json;
use tokio::io::AsyncWriteExt;

pub const SERVICE: &str = "fake-registry";

pub use crate::support::http::Framing;
pub use crate::support::http::HttpRequest as Req;
use crate::support::http::{HttpResponse, read_request, write_response};
use crate::support::images::Image;
pub use crate::support::images::sha256_digest as sha256;
pub use crate::support::images::{
    MT_DOCKER_CONFIG as DOCKER_CONFIG, MT_DOCKER_LAYER_GZIP as DOCKER_LAYER,
    MT_DOCKER_MANIFEST as DOCKER_MANIFEST, MT_OCI_CONFIG as OCI_CONFIG, MT_OCI_INDEX as OCI_INDEX,
    MT_OCI_LAYER_GZIP as OCI_LAYER, MT_OCI_MANIFEST as OCI_MANIFEST,
};

#[derive(Clone, Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub framing: Framing,
    /// How long to wait before answering; the registry answers other requests meanwhile.
    pub delay: Duration,
}

impl Resp {
    pub fn new(status: u16) -> Self {
        Self {
            status,
            headers: Vec::new(),
            body: Vec::new(),
            framing: Framing::Exact,
            delay: Duration::ZERO,
        }
    }
    pub fn header(mut self, k: &str, v: &str) -> Self {
        self.headers.push((k.into(), v.into()));
        self
    }
    pub fn body(mut self, b: impl Into<Vec<u8>>) -> Self {
        self.body = b.into();
        self
    }
    pub fn framing(mut self, f: Framing) -> Self {
        self.framing = f;
        self
    }
    pub fn delay(mut self, d: Duration) -> Self {
        self.delay = d;
        self
    }
}

#[derive(Clone, Debug, Default)]
pub enum FakeAuth {
    #[default]
    None,
    Basic {
        user: String,
        password: String,
    },
    /// Token flow: `/token` issues tokens for Basic `user`/`password` (or anonymously when
    /// `anonymous`), and for the OAuth2 refresh grant with `identity_token`. `static_token` is
    /// accepted by the registry directly.
    Bearer {
        user: String,
        password: String,
        anonymous: bool,
        identity_token: Option<String>,
        static_token: Option<String>,
    },
    /// 401 without any WWW-Authenticate.
    NoChallenge,
}

pub type Hook = Box<dyn FnMut(&Req) -> Option<Resp> + Send>;

#[derive(Default)]
pub struct State {
    /// (repo, tag or digest) → (media type, bytes)
    pub manifests: HashMap<(String, String), (String, Vec<u8>)>,
    /// (repo, digest) → bytes
    pub blobs: HashMap<(String, String), Vec<u8>>,
    pub auth: FakeAuth,
    pub requests: Vec<Req>,
    pub hook: Option<Hook>,
    /// token → scope
    pub tokens: HashMap<String, String>,
    pub token_requests: Vec<Req>,
}

pub struct Fake {
    pub addr: SocketAddr,
    pub state: Arc<Mutex<State>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Fake {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Fake {
    pub async fn start(auth: FakeAuth) -> Fake {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(Mutex::new(State {
            auth,
            ..State::default()
        }));
        let st = state.clone();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let st = st.clone();
                tokio::spawn(async move {
                    let _ = serve(stream, st, addr).await;
                });
            }
        });
        Fake { addr, state, task }
    }

    /// `127.0.0.1:PORT`
    pub fn host(&self) -> String {
        self.addr.to_string()
    }

    pub fn set_hook(&self, hook: impl FnMut(&Req) -> Option<Resp> + Send + 'static) {
        self.state.lock().unwrap().hook = Some(Box::new(hook));
    }

    pub fn requests(&self) -> Vec<Req> {
        self.state.lock().unwrap().requests.clone()
    }

    pub fn token_requests(&self) -> Vec<Req> {
        self.state.lock().unwrap().token_requests.clone()
    }

    pub fn put_blob(&self, repo: &str, bytes: &[u8]) -> String {
        let d = sha256(bytes);
        self.state
            .lock()
            .unwrap()
            .blobs
            .insert((repo.into(), d.clone()), bytes.to_vec());
        d
    }

    /// Stores a manifest by digest (and by `tag`); returns its digest.
    pub fn put_manifest(
        &self,
        repo: &str,
        tag: Option<&str>,
        media_type: &str,
        bytes: &[u8],
    ) -> String {
        let d = sha256(bytes);
        let mut st = self.state.lock().unwrap();
        st.manifests.insert(
            (repo.into(), d.clone()),
            (media_type.into(), bytes.to_vec()),
        );
        if let Some(t) = tag {
            st.manifests
                .insert((repo.into(), t.into()), (media_type.into(), bytes.to_vec()));
        }
        d
    }

    /// Stores `image` in `repo`: its config and layers, and its manifest by digest (and by
    /// `tag`); returns the manifest's digest.
    pub fn put_built_image(&self, repo: &str, tag: Option<&str>, image: &Image) -> String {
        self.put_blob(repo, &image.config_bytes());
        for layer in &image.layers {
            self.put_blob(repo, &layer.blob);
        }
        self.put_manifest(
            repo,
            tag,
            image.manifest_media_type(),
            &image.manifest_bytes(),
        )
    }

    /// Pushes a one-layer image; returns (manifest digest, manifest bytes, layer bytes).
    pub fn put_image(
        &self,
        repo: &str,
        tag: Option<&str>,
        docker: bool,
        os: &str,
        arch: &str,
    ) -> PushedFake {
        let layer: Vec<u8> = format!("layer of {repo} {os}/{arch} ")
            .bytes()
            .cycle()
            .take(3000)
            .collect();
        let config = serde_json::to_vec(&json!({
            "architecture": arch, "os": os,
            "rootfs": {"type": "layers", "diff_ids": [sha256(b"x")]},
        }))
        .unwrap();
        let (mt, cmt, lmt) = if docker {
            (DOCKER_MANIFEST, DOCKER_CONFIG, DOCKER_LAYER)
        } else {
            (OCI_MANIFEST, OCI_CONFIG, OCI_LAYER)
        };
        let config_digest = self.put_blob(repo, &config);
        let layer_digest = self.put_blob(repo, &layer);
        let manifest = serde_json::to_vec(&json!({
            "schemaVersion": 2, "mediaType": mt,
            "config": {"mediaType": cmt, "digest": config_digest, "size": config.len()},
            "layers": [{"mediaType": lmt, "digest": layer_digest, "size": layer.len()}],
        }))
        .unwrap();
        let digest = self.put_manifest(repo, tag, mt, &manifest);
        PushedFake {
            digest,
            manifest,
            config_digest,
            layer,
            layer_digest,
        }
    }
}

pub struct PushedFake {
    pub digest: String,
    pub manifest: Vec<u8>,
    pub config_digest: String,
    pub layer: Vec<u8>,
    pub layer_digest: String,
}

async fn serve(
    mut stream: tokio::net::TcpStream,
    st: Arc<Mutex<State>>,
    addr: SocketAddr,
) -> std::io::Result<()> {
    let mut first = [0u8; 1];
    if stream.peek(&mut first).await? == 1 && first[0] == 0x16 {
        // A TLS ClientHello on this plain-HTTP port: answer like Go's net/http does.
        stream
            .write_all(b"HTTP/1.0 400 Bad Request\r\n\r\nClient sent an HTTP request to an HTTPS server.\n")
            .await?;
        return Ok(());
    }
    let Some(req) = read_request(&mut stream).await? else {
        return Ok(());
    };
    let Resp {
        status,
        headers,
        body,
        framing,
        delay,
    } = handle(&st, &req, addr);
    tokio::time::sleep(delay).await;
    let response = HttpResponse {
        status,
        headers,
        body,
    };
    write_response(&mut stream, &req, &response, framing).await
}

fn json_resp(status: u16, v: serde_json::Value) -> Resp {
    Resp::new(status)
        .header("Content-Type", "application/json")
        .body(serde_json::to_vec(&v).unwrap())
}

fn handle(st: &Arc<Mutex<State>>, req: &Req, addr: SocketAddr) -> Resp {
    let mut st = st.lock().unwrap();
    st.requests.push(req.clone());
    if let Some(hook) = st.hook.as_mut()
        && let Some(r) = hook(req)
    {
        return r;
    }
    if req.path() == "/token" {
        st.token_requests.push(req.clone());
        return token(&mut st, req);
    }
    let Some(rest) = req.path().strip_prefix("/v2/") else {
        return Resp::new(404);
    };
    // /v2/<repo>/(manifests|blobs)/<ref>
    let (repo, kind, reference) = if let Some((repo, r)) = rest.rsplit_once("/manifests/") {
        (repo.to_string(), "manifests", r.to_string())
    } else if let Some((repo, r)) = rest.rsplit_once("/blobs/") {
        (repo.to_string(), "blobs", r.to_string())
    } else {
        return Resp::new(404);
    };
    let scope = format!("repository:{repo}:pull");
    let authz = req.header("authorization").unwrap_or("").to_string();
    match &st.auth {
        FakeAuth::None => {}
        FakeAuth::NoChallenge => return Resp::new(401),
        FakeAuth::Basic { user, password } => {
            let want = format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
            );
            if authz != want {
                return json_resp(
                    401,
                    json!({"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}),
                )
                .header("WWW-Authenticate", "Basic realm=\"fake-realm\"");
            }
        }
        FakeAuth::Bearer { static_token, .. } => {
            let tok = authz.strip_prefix("Bearer ").unwrap_or("");
            let ok = (static_token.as_deref() == Some(tok) && !tok.is_empty())
                || st.tokens.get(tok) == Some(&scope);
            if !ok {
                return Resp::new(401).header(
                    "WWW-Authenticate",
                    &format!(
                        "Bearer realm=\"http://{addr}/token\",service=\"{SERVICE}\",scope=\"{scope}\""
                    ),
                );
            }
        }
    }
    if kind == "manifests" {
        match st.manifests.get(&(repo.clone(), reference.clone())) {
            Some((mt, bytes)) => {
                let accept = req.header("accept").unwrap_or("");
                if !accept.contains(mt.as_str()) {
                    return json_resp(
                        404,
                        json!({"errors":[{"code":"MANIFEST_UNKNOWN","message":"accept header does not support this type"}]}),
                    );
                }
                Resp::new(200)
                    .header("Content-Type", mt)
                    .header("Docker-Content-Digest", &sha256(bytes))
                    .body(bytes.clone())
            }
            None => json_resp(
                404,
                json!({"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown"}]}),
            ),
        }
    } else {
        match st.blobs.get(&(repo, reference)) {
            Some(b) => Resp::new(200)
                .header("Content-Type", "application/octet-stream")
                .body(b.clone()),
            None => json_resp(
                404,
                json!({"errors":[{"code":"BLOB_UNKNOWN","message":"blob unknown to registry"}]}),
            ),
        }
    }
}

fn token(st: &mut State, req: &Req) -> Resp {
    let FakeAuth::Bearer {
        user,
        password,
        anonymous,
        identity_token,
        ..
    } = st.auth.clone()
    else {
        return Resp::new(404);
    };
    let (service, scope) = if req.method == "POST" {
        let form: Vec<(String, String)> = url::form_urlencoded::parse(&req.body)
            .into_owned()
            .collect();
        let get = |k: &str| {
            form.iter()
                .find(|(key, _)| key == k)
                .map(|(_, v)| v.clone())
                .unwrap_or_default()
        };
        if get("grant_type") != "refresh_token"
            || identity_token.is_none()
            || Some(get("refresh_token")) != identity_token
        {
            return json_resp(401, json!({"details": "invalid identity token"}));
        }
        (get("service"), get("scope"))
    } else {
        let q = req.query();
        let get = |k: &str| {
            q.iter()
                .find(|(key, _)| key == k)
                .map(|(_, v)| v.clone())
                .unwrap_or_default()
        };
        match req.header("authorization") {
            Some(a) => {
                let want = format!(
                    "Basic {}",
                    base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
                );
                if a != want {
                    return json_resp(401, json!({"details": "incorrect username or password"}));
                }
            }
            None if anonymous => {}
            None => return json_resp(401, json!({"details": "authentication required"})),
        }
        (get("service"), get("scope"))
    };
    if service != SERVICE {
        return json_resp(400, json!({"details": "wrong service"}));
    }
    let t = format!("tok-{}", st.tokens.len() + 1);
    st.tokens.insert(t.clone(), scope);
    if req.method == "POST" {
        json_resp(200, json!({"access_token": t, "expires_in": 300}))
    } else {
        json_resp(200, json!({"token": t, "expires_in": 300}))
    }
}
