//! The token server of token-auth registries: issues RS256 JWTs signed with the committed test
//! key, certificate in the JOSE `x5c` header.
#![allow(dead_code)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use serde_json::{Value, json};

use super::{TOKEN_CERT_PEM, TOKEN_ISSUER};
use crate::support::http::{HttpRequest, HttpResponse, MiniServer};

const TOKEN_KEY_PEM: &str = include_str!("../../../fixtures/registry/token-issuer.key.pem");

/// In-process Docker token server (`GET /token?service=..&scope=..`): valid Basic credentials
/// get every requested action; anonymous requests get a token with no access; wrong
/// credentials get 401. RS256, certificate in `x5c`, claims iss/sub/aud/exp/nbf/iat/jti/access.
pub struct TokenServer {
    server: MiniServer,
    state: Arc<TokenState>,
}

/// A token the server issued (for assertions).
#[derive(Clone, Debug)]
pub struct IssuedToken {
    pub subject: String,
    pub scopes: Vec<String>,
    pub access: Value,
}

struct TokenState {
    user: String,
    password: String,
    key: jsonwebtoken::EncodingKey,
    x5c: Vec<String>,
    counter: AtomicUsize,
    issued: Mutex<Vec<IssuedToken>>,
}

impl TokenServer {
    pub fn start(user: &str, password: &str) -> TokenServer {
        let key = jsonwebtoken::EncodingKey::from_rsa_pem(TOKEN_KEY_PEM.as_bytes())
            .expect("parse committed token issuer key");
        let state = Arc::new(TokenState {
            user: user.to_string(),
            password: password.to_string(),
            key,
            x5c: vec![pem_to_der_b64(TOKEN_CERT_PEM)],
            counter: AtomicUsize::new(0),
            issued: Mutex::new(Vec::new()),
        });
        let st = state.clone();
        let server =
            MiniServer::start("token-server", Arc::new(move |req| token_handler(&st, req)));
        TokenServer { server, state }
    }
    /// `http://127.0.0.1:PORT/token` (the registry's `auth.token.realm`).
    pub fn realm(&self) -> String {
        format!("{}/token", self.server.url())
    }
    /// Tokens issued so far (401s for bad credentials are not recorded).
    pub fn issued(&self) -> Vec<IssuedToken> {
        self.state.issued.lock().expect("lock").clone()
    }
}

fn pem_to_der_b64(pem: &str) -> String {
    // x5c wants standard base64 of the DER: the PEM body is exactly that, minus line breaks.
    let body: String = pem
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .map(str::trim)
        .collect();
    // Round-trip to validate.
    let der = B64
        .decode(body.as_bytes())
        .expect("certificate PEM is base64");
    B64.encode(der)
}

fn token_handler(st: &TokenState, req: &HttpRequest) -> HttpResponse {
    if req.path() != "/token" || req.method != "GET" {
        return HttpResponse::new(404);
    }
    let mut subject = String::new();
    let mut authed = false;
    if let Some(a) = req.header("authorization") {
        let creds = a
            .strip_prefix("Basic ")
            .and_then(|b| B64.decode(b.trim()).ok())
            .and_then(|b| String::from_utf8(b).ok());
        match creds.as_deref().and_then(|c| c.split_once(':')) {
            Some((u, p)) if u == st.user && p == st.password => {
                subject = u.to_string();
                authed = true;
            }
            _ => {
                return HttpResponse::json(
                    401,
                    &json!({"details": "incorrect username or password"}),
                );
            }
        }
    }
    let q = req.query();
    let service = q
        .iter()
        .find(|(k, _)| k == "service")
        .map(|(_, v)| v.clone())
        .unwrap_or_default();
    let scopes: Vec<String> = q
        .iter()
        .filter(|(k, _)| k == "scope")
        .flat_map(|(_, v)| v.split(' ').map(str::to_owned).collect::<Vec<_>>())
        .filter(|s| !s.is_empty())
        .collect();
    let mut access = Vec::new();
    if authed {
        for sc in &scopes {
            // type:name:actions, where name may itself contain ':' (host:port/name)
            let Some((typ, rest)) = sc.split_once(':') else {
                continue;
            };
            let Some((name, actions)) = rest.rsplit_once(':') else {
                continue;
            };
            let actions: Vec<&str> = actions.split(',').filter(|a| !a.is_empty()).collect();
            access.push(json!({"type": typ, "name": name, "actions": actions}));
        }
    }
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    let n = st.counter.fetch_add(1, Ordering::SeqCst);
    let claims = json!({
        "iss": TOKEN_ISSUER,
        "sub": subject,
        "aud": service,
        "exp": now + 300,
        "nbf": now - 10,
        "iat": now,
        "jti": format!("crowsnest-{now:x}-{n}"),
        "access": access,
    });
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
    header.x5c = Some(st.x5c.clone());
    let token = match jsonwebtoken::encode(&header, &claims, &st.key) {
        Ok(t) => t,
        Err(e) => return HttpResponse::json(500, &json!({"details": e.to_string()})),
    };
    st.issued.lock().expect("lock").push(IssuedToken {
        subject,
        scopes,
        access: claims["access"].clone(),
    });
    HttpResponse::json(
        200,
        &json!({"token": token, "access_token": token, "expires_in": 300, "issued_at": rfc3339(now)}),
    )
}

/// RFC 3339 UTC timestamp for unix seconds (civil-from-days, no chrono needed).
fn rfc3339(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}
