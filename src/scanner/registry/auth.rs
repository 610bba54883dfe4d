//! Registry authentication: `WWW-Authenticate` challenges, the Docker token flow's response,
//! and the per-client auth state (mode learnt from the first challenge, tokens per scope).
//!
//! The flow (see [`super::RegistryClient`]):
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
use std::time::{Duration, Instant};

use serde::Deserialize;

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
