use diesel::prelude::*;

use super::filter::{Findings, Listing};
use super::schema::{findings, images};
use super::{AnyConnection, MultiBackend};

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
    /// A hash of the assessed content (see `jobs::findings`).
    pub fingerprint: String,
    /// Low 1, Medium 2, High 3, Critical 4: the severity as a sort key.
    pub severity_rank: i32,
}

/// A finding as lists and reads show it: the row, and whether its image runs in a cluster.
#[derive(Debug, Clone, PartialEq)]
pub struct ListedFinding {
    pub finding: FindingRow,
    pub running: bool,
}

/// Pairs rows with whether their images run in a cluster: one look-up by primary key for the lot.
fn with_running(
    conn: &mut AnyConnection,
    rows: Vec<FindingRow>,
) -> QueryResult<Vec<ListedFinding>> {
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    let mut images: Vec<&str> = rows.iter().map(|r| r.image_id.as_str()).collect();
    images.sort_unstable();
    images.dedup();
    let running: std::collections::HashSet<String> = images::table
        .filter(images::id.eq_any(&images))
        .filter(images::running.eq(true))
        .select(images::id)
        .load::<String>(conn)?
        .into_iter()
        .collect();
    Ok(rows
        .into_iter()
        .map(|finding| ListedFinding {
            running: running.contains(&finding.image_id),
            finding,
        })
        .collect())
}

/// Which findings a list reaches. Registries are named by their row id.
#[derive(Debug, Clone)]
pub enum FindingScope {
    Subscription(String),
    ResourceGroup(String, String),
    Registry(String),
}

/// The findings a scope reaches, as a condition (grouped queries cannot start from a boxed query).
pub fn in_scope(
    scope: &FindingScope,
) -> Box<dyn BoxableExpression<findings::table, MultiBackend, SqlType = diesel::sql_types::Bool>> {
    match scope.clone() {
        FindingScope::Subscription(sub) => Box::new(findings::subscription_id.eq(sub)),
        FindingScope::ResourceGroup(sub, rg) => Box::new(
            findings::subscription_id
                .eq(sub)
                .and(findings::resource_group.eq(rg)),
        ),
        FindingScope::Registry(registry_id) => Box::new(findings::registry_id.eq(registry_id)),
    }
}

/// One page of a scope's findings: those `listing` keeps, in its order, after its skip token
/// (keyset paging, stable while rows are added). Without a listing: every finding in id order.
pub fn list(
    conn: &mut AnyConnection,
    scope: &FindingScope,
    listing: Option<&Listing<Findings>>,
    limit: i64,
) -> QueryResult<Vec<ListedFinding>> {
    let query = match listing {
        Some(listing) => listing.query(),
        None => Listing::<Findings>::all().query(),
    };
    let rows = query
        .filter(in_scope(scope))
        .select(FindingRow::as_select())
        .limit(limit)
        .load(conn)?;
    with_running(conn, rows)
}

pub fn find(
    conn: &mut AnyConnection,
    scope: &FindingScope,
    id: &str,
) -> QueryResult<Option<ListedFinding>> {
    let row = findings::table
        .filter(in_scope(scope))
        .filter(findings::id.eq(id))
        .select(FindingRow::as_select())
        .first(conn)
        .optional()?;
    Ok(with_running(conn, row.into_iter().collect())?.pop())
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

/// What a merge did to an image's findings.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Merged {
    pub added: usize,
    pub changed: usize,
    pub kept: usize,
    pub resolved: usize,
}

/// Makes `current` (an assessment of `image_id`, every row with `last_seen = now`) the image's
/// active findings: new ones are inserted, ones whose content moved are rewritten (keeping
/// `first_seen`), ones still present get `last_seen = now`, vanished ones get `resolved_at = now`.
/// A finding that comes back is active again. Run it in the scan's transaction.
pub fn merge(
    conn: &mut AnyConnection,
    image_id: &str,
    current: &[FindingRow],
    now: i64,
) -> QueryResult<Merged> {
    use std::collections::{HashMap, HashSet};
    let stored: HashMap<String, (String, i64, Option<i64>)> = findings::table
        .filter(findings::image_id.eq(image_id))
        .select((
            findings::id,
            findings::fingerprint,
            findings::first_seen,
            findings::resolved_at,
        ))
        .load::<(String, String, i64, Option<i64>)>(conn)?
        .into_iter()
        .map(|(id, fingerprint, first_seen, resolved_at)| {
            (id, (fingerprint, first_seen, resolved_at))
        })
        .collect();
    let mut merged = Merged::default();
    let mut rewrite: Vec<FindingRow> = Vec::new();
    let mut reopen: Vec<&str> = Vec::new();
    for row in current {
        match stored.get(&row.id) {
            None => rewrite.push(row.clone()),
            Some((fingerprint, first_seen, resolved_at)) if *fingerprint != row.fingerprint => {
                merged.changed += 1;
                rewrite.push(FindingRow {
                    first_seen: *first_seen,
                    ..row.clone()
                });
            }
            Some((_, _, resolved_at)) => {
                merged.kept += 1;
                if resolved_at.is_some() {
                    reopen.push(&row.id);
                }
            }
        }
    }
    merged.added = rewrite.len() - merged.changed;
    let present: HashSet<&str> = current.iter().map(|r| r.id.as_str()).collect();
    let vanished: Vec<&str> = stored
        .iter()
        .filter(|(id, (_, _, resolved_at))| resolved_at.is_none() && !present.contains(id.as_str()))
        .map(|(id, _)| id.as_str())
        .collect();
    merged.resolved = vanished.len();
    for chunk in vanished.chunks(500) {
        diesel::update(findings::table.filter(findings::id.eq_any(chunk)))
            .set(findings::resolved_at.eq(now))
            .execute(conn)?;
    }
    for chunk in reopen.chunks(500) {
        diesel::update(findings::table.filter(findings::id.eq_any(chunk)))
            .set(findings::resolved_at.eq(None::<i64>))
            .execute(conn)?;
    }
    let replaced: Vec<&str> = rewrite
        .iter()
        .filter(|r| stored.contains_key(&r.id))
        .map(|r| r.id.as_str())
        .collect();
    for chunk in replaced.chunks(500) {
        diesel::delete(findings::table.filter(findings::id.eq_any(chunk))).execute(conn)?;
    }
    for chunk in rewrite.chunks(100) {
        on_each_backend!(conn, c => diesel::insert_into(findings::table).values(chunk).execute(c))?;
    }
    // Everything active now was seen now (rewritten rows already say so).
    if merged.kept > 0 {
        diesel::update(
            findings::table
                .filter(findings::image_id.eq(image_id))
                .filter(findings::resolved_at.is_null())
                .filter(findings::last_seen.lt(now)),
        )
        .set(findings::last_seen.eq(now))
        .execute(conn)?;
    }
    Ok(merged)
}
