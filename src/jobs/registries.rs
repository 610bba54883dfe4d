//! Connecting registries: one connection per subscription and login server. The webhook secret is
//! made when the API connects a registry and shown once, or chosen by the operator
//! (`crowsnest registry connect`, so a deployment configures both ends before either runs); only
//! its SHA-256 hash is kept.

use base64::Engine as _;
use sha2::{Digest as _, Sha256};

use crate::domain::{LoginServer, RegistryId, Timestamp};
use crate::store::registries::{RegistryChanges, RegistryRow};
use crate::store::{self, AnyConnection, Pool, StoreError};

/// What a connection says about the registry.
#[derive(Debug, Clone)]
pub struct RegistrySettings {
    pub login_server: LoginServer,
    /// Plain HTTP (a registry on a trusted network).
    pub insecure: bool,
    /// Pull credentials as stored JSON: `None` keeps the stored ones, `Some(None)` removes them.
    pub credentials: Option<Option<String>>,
}

/// A registry's webhook secret: the plain text for the caller to see once, the hash to keep.
#[derive(Clone)]
pub struct WebhookSecret {
    pub plain: String,
    pub sha256: String,
}

/// The shortest webhook secret an operator may choose: as hard to guess as a generated one.
pub const MIN_SECRET_LEN: usize = 32;

#[derive(Debug, thiserror::Error)]
#[error(
    "the webhook secret must be at least {MIN_SECRET_LEN} characters, printable ASCII without spaces"
)]
pub struct WeakSecret;

impl WebhookSecret {
    /// 32 random bytes, URL-safe base64.
    pub fn generate() -> Result<Self, getrandom::Error> {
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes)?;
        Ok(Self::from_plain(
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes),
        ))
    }

    /// An operator's own secret. It travels verbatim in a header (`Bearer <secret>`).
    pub fn chosen(plain: &str) -> Result<Self, WeakSecret> {
        if plain.len() < MIN_SECRET_LEN || !plain.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(WeakSecret);
        }
        Ok(Self::from_plain(plain.to_owned()))
    }

    fn from_plain(plain: String) -> Self {
        let sha256 = Self::hash(&plain);
        Self { plain, sha256 }
    }

    /// How a secret is stored, and what a notification's bearer token is compared with.
    pub fn hash(plain: &str) -> String {
        hex::encode(Sha256::digest(plain.as_bytes()))
    }
}

/// What happens to the secret of a registry that is connected already.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnReconnect {
    /// The API's PUT: the secret shown when the registry was connected stays valid.
    KeepSecret,
    /// The operator's command: the given secret replaces the stored one, so running it again
    /// with the same arguments changes nothing.
    ReplaceSecret,
}

/// What connecting did.
#[derive(Debug)]
pub enum Connected {
    /// A new connection, holding the secret's hash.
    Created(RegistryRow),
    /// The registry was connected already: its settings changed.
    Updated(RegistryRow),
    /// Another registry of the subscription has this login server; nothing changed.
    LoginServerTaken(RegistryRow),
}

/// Connects the registry `id`, or changes its settings when it is connected already.
pub async fn connect(
    pool: &Pool,
    id: RegistryId,
    settings: RegistrySettings,
    secret: &WebhookSecret,
    on_reconnect: OnReconnect,
) -> Result<Connected, StoreError> {
    let secret = secret.clone();
    store::run_transaction(pool, move |c| {
        connect_in(c, &id, settings.clone(), &secret, on_reconnect)
    })
    .await
}

/// [`connect`] for callers outside the async runtime (the CLI).
pub fn connect_blocking(
    pool: &Pool,
    id: &RegistryId,
    settings: RegistrySettings,
    secret: &WebhookSecret,
    on_reconnect: OnReconnect,
) -> Result<Connected, StoreError> {
    store::run_blocking(pool, |c| {
        store::transaction(c, |c| {
            connect_in(c, id, settings.clone(), secret, on_reconnect)
        })
    })
}

fn connect_in(
    c: &mut AnyConnection,
    id: &RegistryId,
    settings: RegistrySettings,
    secret: &WebhookSecret,
    on_reconnect: OnReconnect,
) -> diesel::QueryResult<Connected> {
    let now = Timestamp::now().micros();
    let existing = store::registries::find(c, id)?;
    if let Some(other) = store::registries::find_by_login_server(
        c,
        id.subscription.as_str(),
        settings.login_server.as_str(),
    )? && existing.as_ref().is_none_or(|e| e.id != other.id)
    {
        return Ok(Connected::LoginServerTaken(other));
    }
    match existing {
        Some(row) => {
            let changes = RegistryChanges {
                login_server: settings.login_server.as_str().to_owned(),
                insecure: settings.insecure,
                credentials: settings.credentials,
                updated_at: now,
            };
            if on_reconnect == OnReconnect::ReplaceSecret {
                store::registries::set_webhook_secret(c, &row.id, &secret.sha256, now)?;
            }
            store::registries::update(c, &row.id, &changes).map(Connected::Updated)
        }
        None => {
            let row = RegistryRow {
                id: store::new_id(),
                subscription_id: id.subscription.as_str().to_owned(),
                resource_group: id.resource_group.as_str().to_owned(),
                name: id.name.as_str().to_owned(),
                login_server: settings.login_server.as_str().to_owned(),
                insecure: settings.insecure,
                credentials: settings.credentials.flatten(),
                webhook_secret_sha256: secret.sha256.clone(),
                created_at: now,
                updated_at: now,
            };
            store::registries::insert(c, &row).map(|()| Connected::Created(row))
        }
    }
}

/// Disconnects the registry; its images and findings go with it. False when it was not connected.
pub async fn disconnect(pool: &Pool, id: RegistryId) -> Result<bool, StoreError> {
    store::run_transaction(pool, move |c| match store::registries::find(c, &id)? {
        Some(row) => store::registries::delete(c, &row.id),
        None => Ok(false),
    })
    .await
}
