//! Connecting a registry with a webhook secret the operator chose (`crowsnest registry connect`),
//! so a deployment can set up Crowsnest and the registry's notifications before either runs. The
//! API's `PUT …/registries/{name}` generates the secret instead, and shows it once.

use diesel::Connection as _;
use sha2::{Digest as _, Sha256};

use crate::domain::{LoginServer, RegistryId, Timestamp};
use crate::store::registries::{RegistryChanges, RegistryRow};
use crate::store::{self, Pool, StoreError};

/// The shortest webhook secret accepted: as hard to guess as the API's generated ones.
pub const MIN_SECRET_LEN: usize = 32;

pub struct RegistryConnection<'a> {
    pub id: &'a RegistryId,
    pub login_server: &'a LoginServer,
    /// Plain HTTP to the registry.
    pub insecure: bool,
    /// What the registry sends as `Authorization: Bearer <secret>`; only its SHA-256 is stored.
    pub webhook_secret: &'a str,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Connected {
    Created,
    Updated,
}

#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error(
        "the webhook secret must be at least {MIN_SECRET_LEN} characters, printable ASCII without spaces"
    )]
    WeakSecret,
    #[error(
        "the login server '{login_server}' is already connected in this subscription as {registry}"
    )]
    LoginServerTaken {
        login_server: String,
        registry: String,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// How a webhook secret is stored, and what a notification's bearer token is compared with.
pub fn webhook_secret_sha256(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// Connects the registry, or updates the connected one (login server, plain HTTP, webhook
/// secret), so running it again with the same arguments changes nothing. Stored pull
/// credentials are kept.
pub fn connect(pool: &Pool, c: &RegistryConnection<'_>) -> Result<Connected, ConnectError> {
    // A header value, sent verbatim; the webhook trims what follows `Bearer `.
    if c.webhook_secret.len() < MIN_SECRET_LEN
        || !c.webhook_secret.bytes().all(|b| b.is_ascii_graphic())
    {
        return Err(ConnectError::WeakSecret);
    }
    let secret_sha256 = webhook_secret_sha256(c.webhook_secret);
    let now = Timestamp::now().micros();
    let outcome = store::run_blocking(pool, |conn| {
        conn.transaction(|conn| {
            let existing = store::registries::find(conn, c.id)?;
            if let Some(other) = store::registries::find_by_login_server(
                conn,
                c.id.subscription.as_str(),
                c.login_server.as_str(),
            )? && existing.as_ref().is_none_or(|e| e.id != other.id)
            {
                return Ok(Err(other));
            }
            match existing {
                Some(row) => {
                    let changes = RegistryChanges {
                        login_server: c.login_server.as_str().to_owned(),
                        insecure: c.insecure,
                        credentials: None,
                        updated_at: now,
                    };
                    store::registries::update(conn, &row.id, &changes)?;
                    store::registries::set_webhook_secret(conn, &row.id, &secret_sha256, now)?;
                    Ok(Ok(Connected::Updated))
                }
                None => {
                    let row = RegistryRow {
                        id: store::new_id(),
                        subscription_id: c.id.subscription.as_str().to_owned(),
                        resource_group: c.id.resource_group.as_str().to_owned(),
                        name: c.id.name.as_str().to_owned(),
                        login_server: c.login_server.as_str().to_owned(),
                        insecure: c.insecure,
                        credentials: None,
                        webhook_secret_sha256: secret_sha256.clone(),
                        created_at: now,
                        updated_at: now,
                    };
                    store::registries::insert(conn, &row)?;
                    Ok(Ok(Connected::Created))
                }
            }
        })
    })?;
    outcome.map_err(|other| ConnectError::LoginServerTaken {
        login_server: other.login_server,
        registry: RegistryId::format(&other.subscription_id, &other.resource_group, &other.name),
    })
}
