//! Connecting registries: one connection per subscription and login server. The webhook secret is
//! made when a registry is connected, shown once, and kept only as its SHA-256 hash.

use base64::Engine as _;
use sha2::{Digest as _, Sha256};

use crate::domain::{LoginServer, RegistryId, Timestamp};
use crate::store::registries::{RegistryChanges, RegistryRow};
use crate::store::{self, Pool, StoreError};

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

impl WebhookSecret {
    /// 32 random bytes, URL-safe base64.
    pub fn generate() -> Result<Self, getrandom::Error> {
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes)?;
        Ok(Self::from_plain(
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes),
        ))
    }

    pub fn from_plain(plain: String) -> Self {
        let sha256 = hex::encode(Sha256::digest(plain.as_bytes()));
        Self { plain, sha256 }
    }
}

/// What connecting did.
#[derive(Debug)]
pub enum Connected {
    /// A new connection, holding the secret's hash.
    Created(RegistryRow),
    /// The registry was connected already: its settings changed, its secret did not.
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
) -> Result<Connected, StoreError> {
    let now = Timestamp::now().micros();
    let secret_hash = secret.sha256.clone();
    store::run_transaction(pool, move |c| {
        let existing = store::registries::find(c, &id)?;
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
                    webhook_secret_sha256: secret_hash,
                    created_at: now,
                    updated_at: now,
                };
                store::registries::insert(c, &row).map(|()| Connected::Created(row))
            }
        }
    })
    .await
}

/// Disconnects the registry; its images and findings go with it. False when it was not connected.
pub async fn disconnect(pool: &Pool, id: RegistryId) -> Result<bool, StoreError> {
    store::run_transaction(pool, move |c| match store::registries::find(c, &id)? {
        Some(row) => store::registries::delete(c, &row.id),
        None => Ok(false),
    })
    .await
}
