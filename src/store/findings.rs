use diesel::prelude::*;

use super::AnyConnection;
use super::schema::findings;

#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Insertable)]
#[diesel(table_name = findings)]
pub struct FindingRow {
    pub id: String,
    pub subscription_id: String,
    pub resource_group: String,
    pub registry_id: String,
    pub registry_name: String,
    pub image_id: String,
    pub repository: String,
    pub image_digest: String,
    pub advisory_id: String,
    pub package_name: String,
    pub installed_version: String,
    pub fixed_version: Option<String>,
    pub ecosystem: String,
    pub category: String,
    pub severity: String,
    pub severity_source: String,
    pub cvss2_base: Option<f64>,
    pub cvss3_base: Option<f64>,
    pub display_name: String,
    pub description: String,
    pub remediation: String,
    pub impact: String,
    /// JSON array of `{title, link}`.
    pub cves: String,
    /// JSON array of `{title, link}`.
    pub vendor_references: String,
    pub published_at: Option<i64>,
    pub patchable: bool,
    pub layer_digest: Option<String>,
    pub first_seen: i64,
    pub last_seen: i64,
    pub resolved_at: Option<i64>,
}

/// Which findings a list reaches. Registries are named by their row id.
#[derive(Debug, Clone)]
pub enum FindingScope {
    Subscription(String),
    ResourceGroup(String, String),
    Registry(String),
}

fn in_scope(scope: &FindingScope) -> findings::BoxedQuery<'_, super::MultiBackend> {
    let query = findings::table.into_boxed();
    match scope {
        FindingScope::Subscription(sub) => query.filter(findings::subscription_id.eq(sub)),
        FindingScope::ResourceGroup(sub, rg) => query
            .filter(findings::subscription_id.eq(sub))
            .filter(findings::resource_group.eq(rg)),
        FindingScope::Registry(registry_id) => query.filter(findings::registry_id.eq(registry_id)),
    }
}

/// One page in id order, starting after `after` (keyset paging: stable while rows are added).
pub fn list(
    conn: &mut AnyConnection,
    scope: &FindingScope,
    after: Option<&str>,
    limit: i64,
) -> QueryResult<Vec<FindingRow>> {
    let mut query = in_scope(scope)
        .select(FindingRow::as_select())
        .order(findings::id.asc())
        .limit(limit);
    if let Some(after) = after {
        query = query.filter(findings::id.gt(after));
    }
    query.load(conn)
}

pub fn find(
    conn: &mut AnyConnection,
    scope: &FindingScope,
    id: &str,
) -> QueryResult<Option<FindingRow>> {
    in_scope(scope)
        .select(FindingRow::as_select())
        .filter(findings::id.eq(id))
        .first(conn)
        .optional()
}

/// Inserts rows one statement each (diesel has no multi-row insert across backends); wrap the call
/// in a transaction to make it atomic and fast on SQLite.
pub fn insert(conn: &mut AnyConnection, rows: &[FindingRow]) -> QueryResult<()> {
    for row in rows {
        diesel::insert_into(findings::table)
            .values(row)
            .execute(conn)?;
    }
    Ok(())
}
