//! Rows of `exemptions` and `exemption_history`, and the findings an exemption is weighed against.

use diesel::prelude::*;

use super::schema::{exemption_history, exemptions, findings, images};
use super::{AnyConnection, MultiBackend};

#[derive(
    Debug,
    Clone,
    PartialEq,
    Eq,
    Queryable,
    Selectable,
    Insertable,
    AsChangeset,
    serde::Serialize,
    serde::Deserialize,
)]
#[diesel(table_name = exemptions, treat_none_as_null = true)]
pub struct ExemptionRow {
    /// The resource id in lower case: the key.
    pub id: String,
    /// The resource id as first written.
    pub resource_id: String,
    pub subscription_id: String,
    /// The scope's canonical id (`domain::ExemptionScope::id`).
    pub scope: String,
    pub name: String,
    /// `domain::Criteria`, JSON.
    pub criteria: String,
    pub category: String,
    pub justification: String,
    pub display_name: Option<String>,
    pub expires_at: Option<i64>,
    /// `Active` or `Expired`.
    pub state: String,
    pub created_by: String,
    pub created_at: i64,
    pub updated_by: String,
    pub updated_at: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, Insertable)]
#[diesel(table_name = exemption_history)]
pub struct HistoryRow {
    pub id: String,
    /// The exemption's key ([`ExemptionRow::id`]).
    pub exemption_id: String,
    pub subscription_id: String,
    /// `Created`, `Updated`, `Deleted` or `Expired`.
    pub action: String,
    pub actor: String,
    pub at: i64,
    /// The resource as the API rendered it before and after, JSON.
    pub before: Option<String>,
    pub after: Option<String>,
}

pub fn get(conn: &mut AnyConnection, id: &str) -> QueryResult<Option<ExemptionRow>> {
    exemptions::table
        .find(id)
        .select(ExemptionRow::as_select())
        .first(conn)
        .optional()
}

/// Writes the row, replacing the one with its id.
pub fn put(conn: &mut AnyConnection, row: &ExemptionRow) -> QueryResult<()> {
    let updated = diesel::update(exemptions::table.find(&row.id))
        .set(row)
        .execute(conn)?;
    if updated == 0 {
        diesel::insert_into(exemptions::table)
            .values(row)
            .execute(conn)?;
    }
    Ok(())
}

/// Marks an active exemption `Expired`; false when it was not active (another process expired
/// or changed it first).
pub fn expire(conn: &mut AnyConnection, id: &str) -> QueryResult<bool> {
    diesel::update(
        exemptions::table
            .find(id)
            .filter(exemptions::state.eq("Active")),
    )
    .set(exemptions::state.eq("Expired"))
    .execute(conn)
    .map(|n| n == 1)
}

pub fn delete(conn: &mut AnyConnection, id: &str) -> QueryResult<usize> {
    diesel::delete(exemptions::table.find(id)).execute(conn)
}

/// The exemptions of a subscription whose key starts with `scope/` (a canonical scope id, in
/// lower case): those at the scope and under it, in key order after `after`, up to `limit`.
pub fn list_under(
    conn: &mut AnyConnection,
    subscription: &str,
    scope: &str,
    after: Option<&str>,
    limit: i64,
) -> QueryResult<Vec<ExemptionRow>> {
    let pattern = format!(
        "{}/%",
        super::filter::escape_like(&scope.to_ascii_lowercase())
    );
    let mut query = exemptions::table
        .filter(exemptions::subscription_id.eq(subscription.to_owned()))
        .filter(exemptions::id.like(pattern).escape('\\'))
        .into_boxed::<MultiBackend>();
    if let Some(after) = after {
        query = query.filter(exemptions::id.gt(after.to_owned()));
    }
    query
        .order(exemptions::id.asc())
        .limit(limit)
        .select(ExemptionRow::as_select())
        .load(conn)
}

/// A subscription's active exemptions, earliest created first (the order that decides which of
/// several matching exemptions a finding is exempt by).
pub fn active(conn: &mut AnyConnection, subscription: &str) -> QueryResult<Vec<ExemptionRow>> {
    exemptions::table
        .filter(exemptions::subscription_id.eq(subscription))
        .filter(exemptions::state.eq("Active"))
        .order((exemptions::created_at.asc(), exemptions::id.asc()))
        .select(ExemptionRow::as_select())
        .load(conn)
}

/// The active exemptions of these subscriptions, earliest created first.
pub fn active_in(
    conn: &mut AnyConnection,
    subscriptions: &[String],
) -> QueryResult<Vec<ExemptionRow>> {
    exemptions::table
        .filter(exemptions::subscription_id.eq_any(subscriptions))
        .filter(exemptions::state.eq("Active"))
        .order((exemptions::created_at.asc(), exemptions::id.asc()))
        .select(ExemptionRow::as_select())
        .load(conn)
}

/// Active exemptions whose expiry is at or before `now`.
pub fn due_to_expire(conn: &mut AnyConnection, now: i64) -> QueryResult<Vec<ExemptionRow>> {
    exemptions::table
        .filter(exemptions::state.eq("Active"))
        .filter(exemptions::expires_at.le(now))
        .order(exemptions::id.asc())
        .select(ExemptionRow::as_select())
        .load(conn)
}

pub fn record(conn: &mut AnyConnection, row: &HistoryRow) -> QueryResult<()> {
    diesel::insert_into(exemption_history::table)
        .values(row)
        .execute(conn)
        .map(drop)
}

/// An exemption's history, oldest first.
pub fn history(conn: &mut AnyConnection, exemption_id: &str) -> QueryResult<Vec<HistoryRow>> {
    exemption_history::table
        .filter(exemption_history::exemption_id.eq(exemption_id))
        .order((exemption_history::at.asc(), exemption_history::id.asc()))
        .select(HistoryRow::as_select())
        .load(conn)
}

/// What of a finding (and its image) exemptions are weighed against.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = findings)]
pub struct Candidate {
    pub id: String,
    pub image_id: String,
    pub subscription_id: String,
    pub resource_group: String,
    pub registry_name: String,
    pub repository: String,
    pub image_digest: String,
    pub advisory_id: String,
    /// JSON links, as in `FindingRow::cves`.
    pub cves: String,
    pub package_name: String,
    pub ecosystem: String,
    pub installed_version: String,
    pub severity: String,
    pub fixed_version: Option<String>,
    pub exempted_by: Option<String>,
    #[diesel(select_expression = images::os_version)]
    pub os_version: Option<String>,
}

/// Where the candidates are read: a subscription's findings, narrowed by the columns given.
#[derive(Debug, Clone, Default)]
pub struct CandidateScope {
    pub subscription: String,
    pub resource_group: Option<String>,
    pub registry_name: Option<String>,
    pub repository: Option<String>,
    pub image_digest: Option<String>,
    pub image_id: Option<String>,
}

/// Up to `limit` present findings of `scope` after the id `after`, in id order. One image's are
/// read whole, by its index, whatever `limit` says (an id order over the subscription's index
/// would walk every finding of the subscription to find them).
pub fn candidates(
    conn: &mut AnyConnection,
    scope: &CandidateScope,
    after: &str,
    limit: i64,
) -> QueryResult<Vec<Candidate>> {
    if let Some(image) = &scope.image_id {
        if !after.is_empty() {
            return Ok(Vec::new());
        }
        return findings::table
            .inner_join(images::table)
            .filter(findings::image_id.eq(image.clone()))
            .filter(findings::resolved_at.is_null())
            .select(Candidate::as_select())
            .load(conn);
    }
    let mut query = findings::table
        .inner_join(images::table)
        .filter(findings::subscription_id.eq(scope.subscription.clone()))
        .filter(findings::resolved_at.is_null())
        .filter(findings::id.gt(after.to_owned()))
        .into_boxed::<MultiBackend>();
    if let Some(group) = &scope.resource_group {
        query = query.filter(findings::resource_group.eq(group.clone()));
    }
    if let Some(name) = &scope.registry_name {
        query = query.filter(findings::registry_name.eq(name.clone()));
    }
    if let Some(repository) = &scope.repository {
        query = query.filter(findings::repository.eq(repository.clone()));
    }
    if let Some(digest) = &scope.image_digest {
        query = query.filter(findings::image_digest.eq(digest.clone()));
    }
    query
        .order(findings::id.asc())
        .limit(limit)
        .select(Candidate::as_select())
        .load(conn)
}

/// Sets these findings' exemption (none: not exempt).
pub fn set_exempted_by(
    conn: &mut AnyConnection,
    finding_ids: &[&str],
    exemption: Option<&str>,
) -> QueryResult<()> {
    for chunk in finding_ids.chunks(500) {
        diesel::update(findings::table.filter(findings::id.eq_any(chunk)))
            .set(findings::exempted_by.eq(exemption))
            .execute(conn)?;
    }
    Ok(())
}

/// Present findings each of these exemptions exempts, by exemption id (none: absent).
pub fn exempt_counts(
    conn: &mut AnyConnection,
    exemption_ids: &[String],
) -> QueryResult<std::collections::HashMap<String, i64>> {
    let mut out = std::collections::HashMap::new();
    for chunk in exemption_ids.chunks(500) {
        let counted: Vec<(Option<String>, i64)> = findings::table
            .filter(findings::exempted_by.eq_any(chunk))
            .filter(findings::resolved_at.is_null())
            .group_by(findings::exempted_by)
            .select((findings::exempted_by, diesel::dsl::count_star()))
            .load(conn)?;
        out.extend(counted.into_iter().filter_map(|(id, n)| Some((id?, n))));
    }
    Ok(out)
}

/// Present findings of an image that no exemption matches.
pub fn unexempt_count(conn: &mut AnyConnection, image_id: &str) -> QueryResult<i64> {
    findings::table
        .filter(findings::image_id.eq(image_id))
        .filter(findings::resolved_at.is_null())
        .filter(findings::exempted_by.is_null())
        .count()
        .get_result(conn)
}
