use diesel::prelude::*;

use super::AnyConnection;
use super::schema::registries;
use crate::domain::RegistryId;

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = registries)]
pub struct RegistryRow {
    pub id: String,
    pub subscription_id: String,
    pub resource_group: String,
    pub name: String,
    pub login_server: String,
    pub insecure: bool,
    /// JSON of the pull credentials; never leaves the service.
    pub credentials: Option<String>,
    pub webhook_secret_sha256: String,
    pub created_at: i64,
    pub updated_at: i64,
}

/// The fields a PUT may change; `credentials: None` keeps the stored ones, `Some(None)` clears them.
#[derive(Debug, Clone, AsChangeset)]
#[diesel(table_name = registries)]
pub struct RegistryChanges {
    pub login_server: String,
    pub insecure: bool,
    pub credentials: Option<Option<String>>,
    pub updated_at: i64,
}

pub fn find(conn: &mut AnyConnection, id: &RegistryId) -> QueryResult<Option<RegistryRow>> {
    registries::table
        .filter(registries::subscription_id.eq(id.subscription.as_str()))
        .filter(registries::resource_group.eq(id.resource_group.as_str()))
        .filter(registries::name.eq(id.name.as_str()))
        .select(RegistryRow::as_select())
        .first(conn)
        .optional()
}

pub fn find_by_login_server(
    conn: &mut AnyConnection,
    subscription: &str,
    login_server: &str,
) -> QueryResult<Option<RegistryRow>> {
    registries::table
        .filter(registries::subscription_id.eq(subscription))
        .filter(registries::login_server.eq(login_server))
        .select(RegistryRow::as_select())
        .first(conn)
        .optional()
}

pub fn insert(conn: &mut AnyConnection, row: &RegistryRow) -> QueryResult<()> {
    diesel::insert_into(registries::table)
        .values(row)
        .execute(conn)
        .map(drop)
}

pub fn update(
    conn: &mut AnyConnection,
    id: &str,
    changes: &RegistryChanges,
) -> QueryResult<RegistryRow> {
    diesel::update(registries::table.find(id))
        .set(changes)
        .execute(conn)?;
    registries::table
        .find(id)
        .select(RegistryRow::as_select())
        .first(conn)
}

/// Deletes the registry with its images and findings; false when there was none.
pub fn delete(conn: &mut AnyConnection, id: &str) -> QueryResult<bool> {
    // SQLite enforces the cascade only when foreign keys are on for the connection; delete explicitly.
    diesel::delete(
        super::schema::findings::table.filter(super::schema::findings::registry_id.eq(id)),
    )
    .execute(conn)?;
    diesel::delete(
        super::schema::image_tags::table.filter(super::schema::image_tags::registry_id.eq(id)),
    )
    .execute(conn)?;
    diesel::delete(super::schema::images::table.filter(super::schema::images::registry_id.eq(id)))
        .execute(conn)?;
    Ok(diesel::delete(registries::table.find(id)).execute(conn)? > 0)
}

/// Up to `limit` registries after the row id `after`, in row id order, of these subscriptions
/// (`None`: every one) and resource groups (`None`: every one): one batch of a read through every
/// registry a Resource Graph query may see.
pub fn batch(
    conn: &mut AnyConnection,
    subscriptions: Option<&[String]>,
    resource_groups: Option<&[String]>,
    after: Option<&str>,
    limit: i64,
) -> QueryResult<Vec<RegistryRow>> {
    let mut query = registries::table
        .select(RegistryRow::as_select())
        .order(registries::id.asc())
        .limit(limit)
        .into_boxed();
    if let Some(subscriptions) = subscriptions {
        query = query.filter(registries::subscription_id.eq_any(subscriptions.to_vec()));
    }
    if let Some(groups) = resource_groups {
        query = query.filter(registries::resource_group.eq_any(groups.to_vec()));
    }
    if let Some(after) = after {
        query = query.filter(registries::id.gt(after.to_owned()));
    }
    query.load(conn)
}

/// One page of a subscription's (or resource group's) registries in (resource group, name) order,
/// starting after `after`.
pub fn list(
    conn: &mut AnyConnection,
    subscription: &str,
    resource_group: Option<&str>,
    after: Option<(&str, &str)>,
    limit: i64,
) -> QueryResult<Vec<RegistryRow>> {
    list_from(conn, subscription, resource_group, after, false, limit)
}

/// [`list`] from `from`, itself included when `inclusive` (a page that ended inside a registry's
/// rows resumes at it).
pub fn list_from(
    conn: &mut AnyConnection,
    subscription: &str,
    resource_group: Option<&str>,
    from: Option<(&str, &str)>,
    inclusive: bool,
    limit: i64,
) -> QueryResult<Vec<RegistryRow>> {
    let mut query = registries::table
        .filter(registries::subscription_id.eq(subscription))
        .select(RegistryRow::as_select())
        .order((registries::resource_group.asc(), registries::name.asc()))
        .limit(limit)
        .into_boxed();
    if let Some(rg) = resource_group {
        query = query.filter(registries::resource_group.eq(rg));
    }
    if let Some((rg, name)) = from {
        let same_group = registries::resource_group.eq(rg);
        query = if inclusive {
            query.filter(
                registries::resource_group
                    .gt(rg)
                    .or(same_group.and(registries::name.ge(name))),
            )
        } else {
            query.filter(
                registries::resource_group
                    .gt(rg)
                    .or(same_group.and(registries::name.gt(name))),
            )
        };
    }
    query.load(conn)
}

/// A registry by its row id (as scans and images refer to it).
pub fn find_by_row_id(conn: &mut AnyConnection, id: &str) -> QueryResult<Option<RegistryRow>> {
    registries::table
        .find(id)
        .select(RegistryRow::as_select())
        .first(conn)
        .optional()
}

/// Registries by row id, for rendering rows that refer to them (one query).
pub fn by_row_ids(
    conn: &mut AnyConnection,
    ids: &[String],
) -> QueryResult<std::collections::HashMap<String, RegistryRow>> {
    let mut out = std::collections::HashMap::new();
    for chunk in ids.chunks(500) {
        for row in registries::table
            .filter(registries::id.eq_any(chunk))
            .select(RegistryRow::as_select())
            .load::<RegistryRow>(conn)?
        {
            out.insert(row.id.clone(), row);
        }
    }
    Ok(out)
}

/// Replaces a registry's webhook secret (its SHA-256, hex).
pub fn set_webhook_secret(
    conn: &mut AnyConnection,
    id: &str,
    secret_sha256: &str,
    updated_at: i64,
) -> QueryResult<()> {
    diesel::update(registries::table.find(id))
        .set((
            registries::webhook_secret_sha256.eq(secret_sha256),
            registries::updated_at.eq(updated_at),
        ))
        .execute(conn)
        .map(drop)
}
