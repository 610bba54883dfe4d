//! Registry authentication: `WWW-Authenticate` challenges, the per-client auth state (mode
//! learnt from the first challenge, tokens per scope), and the flow every registry request goes
//! through (`RegistryClient::get_authed`).
//!
//! The flow:
//! * anonymous first (or, with `Token` credentials, the token sent as `Bearer` directly);
//! * `401` + `Basic` challenge → Basic credentials on every later request;
//! * `401` + `Bearer realm,service[,scope]` → a token from the realm for
//!   `repository:<repo>:pull`, cached per scope until `expires_in`:
//!   - `Basic` credentials: `GET realm?service=&scope=` with HTTP Basic auth;
//!   - no credentials: the same GET, anonymously;
//!   - `Token` credentials (after the registry refused it as a bearer): it is an identity
//!     (refresh) token: `POST realm` with the OAuth2 form `grant_type=refresh_token`,
//!     `refresh_token`, `service`, `scope`, `client_id` (the Docker token spec's
//!     "OAuth2 token" endpoint, what Docker/ACR do with an identity token);
//! * a 401 without a challenge, or a 401 after authenticating → `Unauthorized`.

use std::collections::HashMap;
use std::fmt;
use std::sync::MutexGuard;
use std::time::{Duration, Instant};

use reqwest::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, HeaderValue};
use reqwest::{Response, StatusCode};
use serde::Deserialize;
use url::Url;

use super::RegistryClient;
use super::error::{Ctx, RegistryError};
use super::transport::{Target, describe_reqwest, read_limited};
use crate::domain::RegistryCredentials;

/// A string that is never printed.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Secret(pub String);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// A parsed `WWW-Authenticate` challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Challenge {
    Basic,
    Bearer {
        realm: String,
        service: Option<String>,
        scope: Option<String>,
    },
    /// Another scheme (or a Bearer challenge without realm): cannot be answered.
    Other(String),
}

/// Picks the challenge to answer among all `WWW-Authenticate` values (Bearer preferred).
pub(crate) fn pick_challenge<'a>(values: impl Iterator<Item = &'a str>) -> Option<Challenge> {
    let all: Vec<Challenge> = values.map(parse_challenge).collect();
    all.iter()
        .find(|c| matches!(c, Challenge::Bearer { .. }))
        .or_else(|| all.iter().find(|c| matches!(c, Challenge::Basic)))
        .or_else(|| all.first())
        .cloned()
}

pub(crate) fn parse_challenge(value: &str) -> Challenge {
    let value = value.trim();
    let (scheme, rest) = value
        .split_once(|c: char| c.is_ascii_whitespace())
        .unwrap_or((value, ""));
    let params = parse_params(rest);
    let get = |k: &str| {
        params
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(k))
            .map(|(_, v)| v.clone())
    };
    if scheme.eq_ignore_ascii_case("basic") {
        Challenge::Basic
    } else if scheme.eq_ignore_ascii_case("bearer") {
        match get("realm").filter(|r| !r.is_empty()) {
            Some(realm) => Challenge::Bearer {
                realm,
                service: get("service"),
                scope: get("scope"),
            },
            None => Challenge::Other("Bearer without realm".into()),
        }
    } else {
        Challenge::Other(scheme.chars().take(32).collect())
    }
}

/// `k=v, k="quoted \" value", …` → pairs.
fn parse_params(s: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut chars = s.chars().peekable();
    loop {
        while chars
            .peek()
            .is_some_and(|c| c.is_ascii_whitespace() || *c == ',')
        {
            chars.next();
        }
        let mut key = String::new();
        while let Some(&c) = chars.peek() {
            if c == '=' || c == ',' {
                break;
            }
            key.push(c);
            chars.next();
        }
        if key.is_empty() && chars.peek().is_none() {
            return out;
        }
        let mut value = String::new();
        if chars.peek() == Some(&'=') {
            chars.next();
            while chars.peek().is_some_and(|c| c.is_ascii_whitespace()) {
                chars.next();
            }
            if chars.peek() == Some(&'"') {
                chars.next();
                while let Some(c) = chars.next() {
                    match c {
                        '\\' => {
                            if let Some(n) = chars.next() {
                                value.push(n);
                            }
                        }
                        '"' => break,
                        c => value.push(c),
                    }
                }
            } else {
                while let Some(&c) = chars.peek() {
                    if c == ',' {
                        break;
                    }
                    value.push(c);
                    chars.next();
                }
                value = value.trim().to_owned();
            }
        }
        let key = key.trim().to_owned();
        if !key.is_empty() {
            out.push((key, value));
        }
    }
}

/// The token service's answer (`token` or, OAuth2 style, `access_token`).
#[derive(Deserialize)]
pub(crate) struct TokenResponse {
    token: Option<String>,
    access_token: Option<String>,
    expires_in: Option<u64>,
}

impl TokenResponse {
    /// The token and its lifetime (the spec's default is 60 s when `expires_in` is absent).
    pub fn into_token(self) -> Option<(Secret, Duration)> {
        let token = self
            .token
            .filter(|t| !t.is_empty())
            .or(self.access_token.filter(|t| !t.is_empty()))?;
        let ttl = Duration::from_secs(self.expires_in.unwrap_or(60).clamp(1, 24 * 3600));
        Some((Secret(token), ttl))
    }
}

/// What the registry asked for in its first challenge.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) enum AuthMode {
    /// No challenge seen yet (or anonymous access works).
    #[default]
    Unknown,
    Basic,
    Bearer {
        realm: String,
        service: Option<String>,
    },
}

#[derive(Debug)]
struct CachedToken {
    token: Secret,
    expires: Instant,
}

/// Shared auth state of one client.
#[derive(Debug, Default)]
pub(crate) struct AuthState {
    pub mode: AuthMode,
    /// `Token` credentials were sent as a bearer and refused: exchange them at the realm.
    pub direct_token_refused: bool,
    tokens: HashMap<String, CachedToken>,
}

impl AuthState {
    pub fn token(&self, scope: &str) -> Option<Secret> {
        self.tokens
            .get(scope)
            .filter(|t| Instant::now() < t.expires)
            .map(|t| t.token.clone())
    }

    /// Caches `token` for `scope`, expiring a little before the service says (10 % margin,
    /// at most 30 s) so a request never starts with a token about to expire.
    pub fn store(&mut self, scope: &str, token: Secret, ttl: Duration) {
        let margin = (ttl / 10).min(Duration::from_secs(30));
        self.tokens.retain(|_, t| Instant::now() < t.expires);
        self.tokens.insert(
            scope.to_owned(),
            CachedToken {
                token,
                expires: Instant::now() + ttl - margin,
            },
        );
    }

    pub fn forget(&mut self, scope: &str) {
        self.tokens.remove(scope);
    }
}

/// What authorization a request carried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SentAuth {
    Anonymous,
    Basic,
    DirectToken,
    Bearer { fresh: bool },
}

impl RegistryClient {
    fn state(&self) -> MutexGuard<'_, AuthState> {
        // A panic while holding the lock cannot leave the state inconsistent: keep going.
        self.auth
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// GET `url` for `repository`, answering auth challenges (the flow above).
    pub(super) async fn get_authed(
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
            let challenge = pick_challenge(
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
        let parsed: TokenResponse = serde_json::from_slice(&body).map_err(|_| {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_challenges() {
        assert_eq!(
            parse_challenge(r#"Basic realm="basic-realm""#),
            Challenge::Basic
        );
        assert_eq!(
            parse_challenge(
                r#"Bearer realm="http://127.0.0.1:5053/token",service="local-registry",scope="repository:test/alpsynth:pull""#
            ),
            Challenge::Bearer {
                realm: "http://127.0.0.1:5053/token".into(),
                service: Some("local-registry".into()),
                scope: Some("repository:test/alpsynth:pull".into()),
            }
        );
        assert_eq!(
            parse_challenge(
                r#"bearer Realm="https://a/t", scope="repository:a:pull,push", error="x\"y""#
            ),
            Challenge::Bearer {
                realm: "https://a/t".into(),
                service: None,
                scope: Some("repository:a:pull,push".into()),
            }
        );
        assert!(matches!(parse_challenge("Bearer"), Challenge::Other(_)));
        assert!(matches!(
            parse_challenge("Negotiate abc"),
            Challenge::Other(_)
        ));
        let picked = pick_challenge(["Basic realm=x", "Bearer realm=\"r\""].into_iter());
        assert!(matches!(picked, Some(Challenge::Bearer { .. })));
        assert_eq!(pick_challenge(std::iter::empty()), None);
    }

    #[test]
    fn token_response_and_cache() {
        let r: TokenResponse =
            serde_json::from_str(r#"{"access_token":"abc","expires_in":300}"#).unwrap();
        let (t, ttl) = r.into_token().unwrap();
        assert_eq!((t.0.as_str(), ttl.as_secs()), ("abc", 300));
        let r: TokenResponse = serde_json::from_str(r#"{"token":"","access_token":""}"#).unwrap();
        assert!(r.into_token().is_none());
        let r: TokenResponse = serde_json::from_str(r#"{"token":"t"}"#).unwrap();
        assert_eq!(r.into_token().unwrap().1.as_secs(), 60);

        let mut st = AuthState::default();
        st.store("s", Secret("x".into()), Duration::from_secs(60));
        assert_eq!(st.token("s"), Some(Secret("x".into())));
        assert_eq!(st.token("other"), None);
        st.store("e", Secret("y".into()), Duration::from_millis(1));
        std::thread::sleep(Duration::from_millis(5));
        assert_eq!(st.token("e"), None);
        st.forget("s");
        assert_eq!(st.token("s"), None);
        assert_eq!(format!("{:?}", Secret("hunter2".into())), "***");
    }
}
