use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::{App, HttpResponse, HttpServer, web};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use crowsnest::domain::Role;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

use crate::backend_tests;
use crate::support::app::*;
use crate::support::database::Backend;

backend_tests!(
    requests_without_a_valid_token_get_401_with_a_challenge,
    roles_and_subscriptions_decide_403,
    jwks_tokens_are_verified_and_keys_refreshed_on_unknown_kid,
);

const LIST: &str = "/subscriptions/sub-1/providers/Microsoft.Security/subAssessments?api-version=2019-01-01-preview";

fn claims(overrides: Value) -> Value {
    let now = chrono::Utc::now().timestamp();
    let mut claims = json!({
        "iss": "crowsnest", "aud": "crowsnest", "sub": "someone",
        "exp": now + 600, "nbf": now - 10, "iat": now - 10,
        "roles": ["Reader"], "subscriptions": ["sub-1"],
    });
    for (k, v) in overrides.as_object().unwrap() {
        claims[k] = v.clone();
    }
    claims
}

fn hs256(app: &TestApp, claims: &Value) -> String {
    let secret = app.auth.hs256_secret.as_ref().unwrap().expose();
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(secret),
    )
    .unwrap()
}

async fn status_with(app: &TestApp, authorization: Option<&str>) -> (u16, Option<String>, Value) {
    let mut request = app.client.get(app.url(LIST));
    if let Some(value) = authorization {
        request = request.header("Authorization", value);
    }
    let response = request.send().await.unwrap();
    let challenge = response
        .headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_owned());
    let (status, body) = json_of(response).await;
    (status, challenge, body)
}

async fn requests_without_a_valid_token_get_401_with_a_challenge(backend: Backend) {
    let app = spawn_app(backend).await;
    let good = hs256(&app, &claims(json!({})));
    let (status, _, _) = status_with(&app, Some(&format!("Bearer {good}"))).await;
    assert_eq!(status, 200, "the control token works");

    let now = chrono::Utc::now().timestamp();
    let other_key = jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims(json!({})),
        &EncodingKey::from_secret(b"another-secret-that-is-long-enough-000"),
    )
    .unwrap();
    let unsigned = {
        let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
        let payload = URL_SAFE_NO_PAD.encode(claims(json!({})).to_string());
        format!("{header}.{payload}.")
    };
    let tampered = {
        let mut parts: Vec<String> = good.split('.').map(str::to_owned).collect();
        parts[1] = URL_SAFE_NO_PAD
            .encode(claims(json!({"roles": ["Admin"], "subscriptions": "*"})).to_string());
        parts.join(".")
    };
    let cases: Vec<(&str, Option<String>)> = vec![
        ("no header", None),
        ("basic scheme", Some("Basic dXNlcjpwYXNz".to_owned())),
        ("empty bearer", Some("Bearer ".to_owned())),
        ("garbage", Some("Bearer not.a.jwt".to_owned())),
        (
            "expired",
            Some(format!(
                "Bearer {}",
                hs256(&app, &claims(json!({"exp": now - 3600})))
            )),
        ),
        (
            "not yet valid",
            Some(format!(
                "Bearer {}",
                hs256(&app, &claims(json!({"nbf": now + 3600})))
            )),
        ),
        (
            "wrong audience",
            Some(format!(
                "Bearer {}",
                hs256(&app, &claims(json!({"aud": "someone-else"})))
            )),
        ),
        (
            "wrong issuer",
            Some(format!(
                "Bearer {}",
                hs256(&app, &claims(json!({"iss": "https://evil.example"})))
            )),
        ),
        (
            "no exp",
            Some(format!(
                "Bearer {}",
                hs256(&app, &{
                    let mut c = claims(json!({}));
                    c.as_object_mut().unwrap().remove("exp");
                    c
                })
            )),
        ),
        ("other secret", Some(format!("Bearer {other_key}"))),
        ("alg none", Some(format!("Bearer {unsigned}"))),
        ("tampered payload", Some(format!("Bearer {tampered}"))),
        (
            "RS256 without a JWKS",
            Some(format!(
                "Bearer {}",
                rs256(&claims(json!({})), "test-rsa-1")
            )),
        ),
    ];
    for (case, header) in cases {
        let (status, challenge, body) = status_with(&app, header.as_deref()).await;
        assert_cloud_error(status, &body, 401, "AuthenticationFailed");
        let challenge = challenge.unwrap_or_else(|| panic!("{case}: no WWW-Authenticate"));
        assert!(challenge.starts_with("Bearer"), "{case}: {challenge}");
    }
}

async fn roles_and_subscriptions_decide_403(backend: Backend) {
    let app = spawn_app(backend).await;
    let registry = "/subscriptions/sub-1/resourceGroups/rg/providers/Microsoft.ContainerRegistry/registries/reg?api-version=2026-11-01";
    let body = json!({"properties": {"loginServer": "registry.example.com"}});

    let reader = app.token("sub-1", Role::Reader);
    let (status, error) = app.put_json(registry, &reader, &body).await;
    assert_cloud_error(status, &error, 403, "AuthorizationFailed");
    let contributor = app.token("sub-1", Role::Contributor);
    let (status, created) = app.put_json(registry, &contributor, &body).await;
    assert_eq!(status, 201, "{created}");
    let admin = app.token("sub-1", Role::Admin);
    let (status, _) = app.put_json(registry, &admin, &body).await;
    assert_eq!(status, 200);
    let (status, _) = app.get_json(registry, &reader).await;
    assert_eq!(status, 200, "Reader reads");

    // A token without any Crowsnest role, and one with several subscriptions in a list.
    let no_role = hs256(&app, &claims(json!({"roles": ["Something.Else"]})));
    let (status, error) = app.get_json(registry, &no_role).await;
    assert_cloud_error(status, &error, 403, "AuthorizationFailed");
    let listed = hs256(&app, &claims(json!({"subscriptions": ["other", "SUB-1"]})));
    let (status, _) = app.get_json(registry, &listed).await;
    assert_eq!(status, 200, "subscription ids are case-insensitive");
    let star = hs256(&app, &claims(json!({"subscriptions": "*"})));
    let (status, _) = app.get_json(registry, &star).await;
    assert_eq!(status, 200);
    let none = hs256(&app, &claims(json!({"subscriptions": []})));
    let (status, error) = app.get_json(registry, &none).await;
    assert_cloud_error(status, &error, 403, "AuthorizationFailed");
}

fn rs256(claims: &Value, kid: &str) -> String {
    let key = EncodingKey::from_rsa_pem(include_bytes!("../fixtures/jwt/rsa-private.pem")).unwrap();
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some(kid.to_owned());
    jsonwebtoken::encode(&header, claims, &key).unwrap()
}

fn es256(claims: &Value, kid: &str) -> String {
    let key = EncodingKey::from_ec_pem(include_bytes!("../fixtures/jwt/ec-private.pem")).unwrap();
    let mut header = Header::new(Algorithm::ES256);
    header.kid = Some(kid.to_owned());
    jsonwebtoken::encode(&header, claims, &key).unwrap()
}

/// A JWKS endpoint whose key set the test can change, counting fetches.
struct JwksServer {
    url: url::Url,
    keys: Arc<Mutex<Value>>,
    fetches: Arc<AtomicUsize>,
    handle: actix_web::dev::ServerHandle,
}

impl JwksServer {
    async fn start(keys: Value) -> Self {
        let keys = Arc::new(Mutex::new(keys));
        let fetches = Arc::new(AtomicUsize::new(0));
        let (k, f) = (keys.clone(), fetches.clone());
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = HttpServer::new(move || {
            let (k, f) = (k.clone(), f.clone());
            App::new().route(
                "/jwks",
                web::get().to(move || {
                    let (k, f) = (k.clone(), f.clone());
                    async move {
                        f.fetch_add(1, Ordering::SeqCst);
                        let body = k.lock().unwrap().clone();
                        HttpResponse::Ok().json(body)
                    }
                }),
            )
        })
        .workers(1)
        .listen(listener)
        .unwrap()
        .run();
        let handle = server.handle();
        tokio::spawn(server);
        Self {
            url: url::Url::parse(&format!("http://127.0.0.1:{port}/jwks")).unwrap(),
            keys,
            fetches,
            handle,
        }
    }
}

impl Drop for JwksServer {
    fn drop(&mut self) {
        drop(self.handle.stop(false));
    }
}

async fn jwks_tokens_are_verified_and_keys_refreshed_on_unknown_kid(backend: Backend) {
    let all: Value = serde_json::from_str(include_str!("../fixtures/jwt/jwks.json")).unwrap();
    let rsa_only = json!({"keys": [all["keys"][0].clone()]});
    let jwks = JwksServer::start(rsa_only).await;
    let jwks_url = jwks.url.clone();
    let app = spawn_app_with(backend, move |s| {
        s.auth.jwks_url = Some(jwks_url);
        s.auth.jwks_min_refresh = Duration::from_millis(0);
    })
    .await;
    let bearer = |t: String| format!("Bearer {t}");

    let (status, _, body) =
        status_with(&app, Some(&bearer(rs256(&claims(json!({})), "test-rsa-1")))).await;
    assert_eq!(status, 200, "RS256 from the JWKS: {body}");
    assert_eq!(jwks.fetches.load(Ordering::SeqCst), 1);
    let (status, _, _) =
        status_with(&app, Some(&bearer(rs256(&claims(json!({})), "test-rsa-1")))).await;
    assert_eq!(status, 200);
    assert_eq!(jwks.fetches.load(Ordering::SeqCst), 1, "keys are cached");

    // The EC key is not published yet: refused after one refresh.
    let (status, challenge, body) =
        status_with(&app, Some(&bearer(es256(&claims(json!({})), "test-ec-1")))).await;
    assert_cloud_error(status, &body, 401, "AuthenticationFailed");
    assert!(challenge.is_some());
    assert_eq!(jwks.fetches.load(Ordering::SeqCst), 2);

    // Rotation: once published, the unknown kid triggers a refresh and the token is accepted.
    *jwks.keys.lock().unwrap() = all.clone();
    let (status, _, body) =
        status_with(&app, Some(&bearer(es256(&claims(json!({})), "test-ec-1")))).await;
    assert_eq!(status, 200, "ES256 after refresh: {body}");
    assert_eq!(jwks.fetches.load(Ordering::SeqCst), 3);

    // The right kid with the wrong algorithm, a signature by another key, and claims checks still apply.
    let (status, _, _) =
        status_with(&app, Some(&bearer(es256(&claims(json!({})), "test-rsa-1")))).await;
    assert_eq!(status, 401, "ES256 under an RSA key id");
    let expired = rs256(
        &claims(json!({"exp": chrono::Utc::now().timestamp() - 3600})),
        "test-rsa-1",
    );
    let (status, _, _) = status_with(&app, Some(&bearer(expired))).await;
    assert_eq!(status, 401);
    let wrong_aud = rs256(&claims(json!({"aud": "other"})), "test-rsa-1");
    let (status, _, _) = status_with(&app, Some(&bearer(wrong_aud))).await;
    assert_eq!(status, 401);
    let (status, _, _) = status_with(
        &app,
        Some(&bearer(rs256(&claims(json!({})), "no-such-kid"))),
    )
    .await;
    assert_eq!(status, 401);
    let other_subscription = rs256(&claims(json!({"subscriptions": ["sub-9"]})), "test-rsa-1");
    let (status, _, body) = status_with(&app, Some(&bearer(other_subscription))).await;
    assert_cloud_error(status, &body, 403, "AuthorizationFailed");
}
