//! Bearer tokens: HS256 with the configured secret, RS256/ES256 from a JWKS; the `Caller` extractor.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use actix_web::dev::Payload;
use actix_web::{FromRequest, HttpRequest, web};
use futures_util::future::LocalBoxFuture;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, JwkSet, KeyAlgorithm};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation, errors::ErrorKind};
use serde::{Deserialize, Serialize};
use tokio::sync::{Mutex, RwLock};

use crate::config::{AuthSettings, Secret};
use crate::domain::{Role, SubscriptionId};
use crate::error::ApiError;

/// Keys older than this are fetched again before use, so revoked keys stop working.
const MAX_JWKS_AGE: Duration = Duration::from_secs(3600);

#[derive(Debug, Serialize, Deserialize)]
pub struct Claims {
    pub iss: String,
    pub aud: String,
    pub sub: String,
    pub exp: i64,
    pub nbf: i64,
    pub iat: i64,
    pub roles: Vec<String>,
    pub subscriptions: SubscriptionsClaim,
}

/// `"*"` or a list of subscription ids (which may itself hold `"*"`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(untagged)]
pub enum SubscriptionsClaim {
    One(String),
    Many(Vec<String>),
}

/// The claims Crowsnest reads; anything else in the token is ignored.
#[derive(Debug, Deserialize)]
struct ReadClaims {
    #[serde(default)]
    sub: Option<String>,
    #[serde(default)]
    roles: Vec<String>,
    #[serde(default)]
    subscriptions: Option<SubscriptionsClaim>,
}

/// Who is calling, proven by a verified token.
#[derive(Debug, Clone)]
pub struct Caller {
    pub subject: String,
    /// The highest known role in the token, if any.
    pub role: Option<Role>,
    subscriptions: Grant,
}

#[derive(Debug, Clone)]
enum Grant {
    All,
    Only(HashSet<SubscriptionId>),
}

impl Caller {
    /// Allowed to act with `role` on `subscription`? Checked before the subscription is looked up,
    /// so a refusal says nothing about whether it exists.
    pub fn authorize(&self, subscription: &SubscriptionId, role: Role) -> Result<(), ApiError> {
        let granted = match &self.subscriptions {
            Grant::All => true,
            Grant::Only(set) => set.contains(subscription),
        };
        if !granted {
            return Err(ApiError::Forbidden(format!(
                "The client '{}' does not have authorization over scope '/subscriptions/{subscription}'.",
                self.subject
            )));
        }
        self.require_role(role)
    }

    /// The subscriptions the token reaches; None when it reaches every one.
    pub fn subscriptions(&self) -> Option<Vec<&SubscriptionId>> {
        match &self.subscriptions {
            Grant::All => None,
            Grant::Only(set) => Some(set.iter().collect()),
        }
    }

    pub fn require_role(&self, role: Role) -> Result<(), ApiError> {
        match self.role {
            Some(held) if held >= role => Ok(()),
            Some(held) => Err(ApiError::Forbidden(format!(
                "The client '{}' has the role {held} but this action needs {role}.",
                self.subject
            ))),
            None => Err(ApiError::Forbidden(format!(
                "The client '{}' has no Crowsnest role (Reader, Contributor or Admin); this action needs {role}.",
                self.subject
            ))),
        }
    }
}

pub struct Authenticator {
    issuer: String,
    audience: String,
    hs256: Option<DecodingKey>,
    jwks: Option<Jwks>,
}

struct Jwks {
    url: url::Url,
    client: reqwest::Client,
    keys: RwLock<HashMap<String, (Algorithm, DecodingKey)>>,
    last_fetch: Mutex<Option<Instant>>,
    /// A refresh for an unknown `kid` is skipped when the last one was more recent than this, so
    /// forged `kid`s cannot turn the service into a JWKS flooder.
    min_refresh: Duration,
}

impl Authenticator {
    pub fn new(settings: &AuthSettings) -> anyhow::Result<Self> {
        let jwks = match &settings.jwks_url {
            Some(url) => Some(Jwks {
                url: url.clone(),
                client: reqwest::Client::builder()
                    .timeout(Duration::from_secs(10))
                    .build()
                    .map_err(|e| anyhow::anyhow!("cannot build the JWKS client: {e}"))?,
                keys: RwLock::new(HashMap::new()),
                last_fetch: Mutex::new(None),
                min_refresh: settings.jwks_min_refresh,
            }),
            None => None,
        };
        Ok(Self {
            issuer: settings.issuer.clone(),
            audience: settings.audience.clone(),
            hs256: settings
                .hs256_secret
                .as_ref()
                .map(|s| DecodingKey::from_secret(s.expose())),
            jwks,
        })
    }

    pub async fn verify(&self, token: &str) -> Result<Caller, ApiError> {
        let unauthenticated = |m: &str| ApiError::Unauthenticated(m.to_owned());
        let header = jsonwebtoken::decode_header(token)
            .map_err(|_| unauthenticated("The token is malformed."))?;
        let (algorithm, key) = match header.alg {
            Algorithm::HS256 => {
                let key = self
                    .hs256
                    .clone()
                    .ok_or_else(|| unauthenticated("HS256 tokens are not accepted here."))?;
                (Algorithm::HS256, key)
            }
            Algorithm::RS256 | Algorithm::ES256 => {
                let jwks = self.jwks.as_ref().ok_or_else(|| {
                    unauthenticated("No JWKS is configured for RS256/ES256 tokens.")
                })?;
                let kid = header
                    .kid
                    .as_deref()
                    .ok_or_else(|| unauthenticated("The token has no 'kid'."))?;
                jwks.key(kid).await?
            }
            other => {
                return Err(ApiError::Unauthenticated(format!(
                    "The algorithm {other:?} is not accepted."
                )));
            }
        };
        if algorithm != header.alg {
            return Err(unauthenticated(
                "The token's algorithm does not match its key.",
            ));
        }
        let mut validation = Validation::new(algorithm);
        validation.set_issuer(&[&self.issuer]);
        validation.set_audience(&[&self.audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud"]);
        validation.validate_nbf = true;
        validation.leeway = 30;
        let data = jsonwebtoken::decode::<ReadClaims>(token, &key, &validation).map_err(|e| {
            ApiError::Unauthenticated(
                match e.kind() {
                    ErrorKind::ExpiredSignature => "The token has expired.",
                    ErrorKind::ImmatureSignature => "The token is not valid yet.",
                    ErrorKind::InvalidIssuer => "The token's issuer is not accepted.",
                    ErrorKind::InvalidAudience => "The token's audience is not accepted.",
                    ErrorKind::InvalidSignature => "The token's signature is invalid.",
                    ErrorKind::MissingRequiredClaim(_) => {
                        "The token lacks a required claim (exp, iss, aud)."
                    }
                    _ => "The token is invalid.",
                }
                .to_owned(),
            )
        })?;
        Ok(caller_from(data.claims))
    }
}

fn caller_from(claims: ReadClaims) -> Caller {
    // Unknown roles are ignored: another application's roles in a shared issuer's tokens are not ours.
    let role = claims.roles.iter().filter_map(|r| Role::parse(r)).max();
    let subscriptions = match claims.subscriptions {
        Some(SubscriptionsClaim::One(s)) if s == "*" => Grant::All,
        Some(SubscriptionsClaim::One(s)) => {
            Grant::Only(SubscriptionId::parse(&s).into_iter().collect())
        }
        Some(SubscriptionsClaim::Many(list)) if list.iter().any(|s| s == "*") => Grant::All,
        Some(SubscriptionsClaim::Many(list)) => Grant::Only(
            list.iter()
                .filter_map(|s| SubscriptionId::parse(s).ok())
                .collect(),
        ),
        None => Grant::Only(HashSet::new()),
    };
    Caller {
        subject: claims.sub.unwrap_or_else(|| "unknown".to_owned()),
        role,
        subscriptions,
    }
}

impl Jwks {
    async fn key(&self, kid: &str) -> Result<(Algorithm, DecodingKey), ApiError> {
        let stale = self
            .last_fetch
            .lock()
            .await
            .is_none_or(|t| t.elapsed() > MAX_JWKS_AGE);
        if !stale && let Some(found) = self.keys.read().await.get(kid) {
            return Ok(found.clone());
        }
        self.refresh(stale).await;
        self.keys.read().await.get(kid).cloned().ok_or_else(|| {
            ApiError::Unauthenticated(format!(
                "The signing key '{}' is unknown.",
                kid.chars().take(64).collect::<String>()
            ))
        })
    }

    /// Fetches the key set again unless another caller just did.
    async fn refresh(&self, force: bool) {
        let mut last = self.last_fetch.lock().await;
        if !force && last.is_some_and(|t| t.elapsed() < self.min_refresh) {
            return;
        }
        *last = Some(Instant::now());
        match self.fetch().await {
            Ok(keys) => *self.keys.write().await = keys,
            Err(e) => {
                tracing::warn!(url = %self.url, error = %e, "cannot fetch the JWKS; keeping the keys we had")
            }
        }
    }

    async fn fetch(&self) -> anyhow::Result<HashMap<String, (Algorithm, DecodingKey)>> {
        let set: JwkSet = self
            .client
            .get(self.url.clone())
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        let mut keys = HashMap::new();
        for jwk in &set.keys {
            let Some(kid) = jwk.common.key_id.clone() else {
                continue;
            };
            let algorithm = match (&jwk.algorithm, jwk.common.key_algorithm) {
                (AlgorithmParameters::RSA(_), None | Some(KeyAlgorithm::RS256)) => Algorithm::RS256,
                (AlgorithmParameters::EllipticCurve(ec), None | Some(KeyAlgorithm::ES256))
                    if ec.curve == EllipticCurve::P256 =>
                {
                    Algorithm::ES256
                }
                _ => continue,
            };
            match DecodingKey::from_jwk(jwk) {
                Ok(key) => {
                    keys.insert(kid, (algorithm, key));
                }
                Err(e) => tracing::warn!(%kid, error = %e, "skipping an unusable JWKS key"),
            }
        }
        Ok(keys)
    }
}

impl FromRequest for Caller {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let authenticator = req.app_data::<web::Data<Authenticator>>().cloned();
        let header = req
            .headers()
            .get(actix_web::http::header::AUTHORIZATION)
            .map(|v| v.to_str().map(str::to_owned));
        Box::pin(async move {
            let authenticator = authenticator.ok_or_else(|| {
                ApiError::Internal(anyhow::anyhow!("no authenticator configured"))
            })?;
            let token = match header {
                None => {
                    return Err(ApiError::Unauthenticated(
                        "An 'Authorization: Bearer <token>' header is required.".to_owned(),
                    ));
                }
                Some(Err(_)) => {
                    return Err(ApiError::Unauthenticated(
                        "The Authorization header is not ASCII.".to_owned(),
                    ));
                }
                Some(Ok(value)) => match bearer(&value) {
                    Some(token) => token.to_owned(),
                    None => {
                        return Err(ApiError::Unauthenticated(
                            "The Authorization header must be 'Bearer <token>'.".to_owned(),
                        ));
                    }
                },
            };
            authenticator.verify(&token).await
        })
    }
}

/// The token of an `Authorization: Bearer <token>` value. The scheme is case-insensitive
/// (RFC 9110 §11.1): `bearer` and `BEARER` are the same scheme.
pub fn bearer(authorization: &str) -> Option<&str> {
    let (scheme, token) = authorization.trim_start().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// Mints an HS256 token for `crowsnest token` and for tests.
pub fn mint_hs256(
    secret: &Secret,
    settings: &AuthSettings,
    subject: &str,
    subscriptions: SubscriptionsClaim,
    role: Role,
    ttl: Duration,
) -> anyhow::Result<String> {
    let now = chrono::Utc::now().timestamp();
    let ttl = i64::try_from(ttl.as_secs()).map_err(|_| anyhow::anyhow!("the TTL is too long"))?;
    let claims = Claims {
        iss: settings.issuer.clone(),
        aud: settings.audience.clone(),
        sub: subject.to_owned(),
        exp: now + ttl,
        nbf: now,
        iat: now,
        roles: vec![role.as_str().to_owned()],
        subscriptions,
    };
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(secret.expose()),
    )
    .map_err(|e| anyhow::anyhow!("cannot sign the token: {e}"))
}
