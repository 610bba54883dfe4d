//! Rows of the synced advisory sources: their status, HTTP validators, incremental cursor, and
//! the lease one process holds while it syncs a source.

use diesel::prelude::*;

use super::AnyConnection;
use super::schema::advisory_sources;

#[derive(Debug, Clone, PartialEq, Queryable, Selectable)]
#[diesel(table_name = advisory_sources)]
pub struct SourceRow {
    pub name: String,
    pub last_attempt_at: Option<i64>,
    pub last_success_at: Option<i64>,
    /// Records the source held at its last successful sync.
    pub records: i64,
    /// The newest `modified` (or feed date) among them.
    pub newest_modified: Option<i64>,
    /// Records the last successful sync added or changed.
    pub last_changed: i64,
    pub last_error: Option<String>,
    /// When the source is due; 0 for a source never synced.
    pub next_run_at: i64,
    /// Failed syncs since the last success (the backoff's exponent).
    pub failures: i32,
    pub etag: Option<String>,
    pub last_modified: Option<String>,
    /// Where an incremental sync starts: the newest `modified` already imported (RFC 3339).
    pub sync_cursor: Option<String>,
    pub lease_owner: Option<String>,
    pub lease_until: Option<i64>,
}

/// What a successful sync leaves in the row.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Success {
    pub at: i64,
    pub next_run_at: i64,
    pub records: i64,
    pub newest_modified: Option<i64>,
    pub changed: i64,
    pub etag: Option<String>,
    pub last_modified: Option<String>,
    pub sync_cursor: Option<String>,
}

/// Adds rows (due at once) for sources not seen before.
pub fn ensure(conn: &mut AnyConnection, names: &[String]) -> QueryResult<()> {
    for name in names {
        on_each_backend!(conn, c => diesel::insert_into(advisory_sources::table)
            .values(advisory_sources::name.eq(name.as_str()))
            .on_conflict_do_nothing()
            .execute(c))?;
    }
    Ok(())
}

/// Takes the lease on `name` for `owner` until `until`, when nobody else holds a live one and,
/// unless `force`, the source is due: one compare-and-set UPDATE, so of several processes trying
/// at once exactly one wins. Returns the row as claimed, or `None` when the claim failed.
pub fn claim(
    conn: &mut AnyConnection,
    name: &str,
    owner: &str,
    now: i64,
    until: i64,
    force: bool,
) -> QueryResult<Option<SourceRow>> {
    ensure(conn, &[name.to_owned()])?;
    let free = advisory_sources::lease_owner
        .is_null()
        .or(advisory_sources::lease_until.lt(now))
        .or(advisory_sources::lease_owner.eq(owner));
    let target = advisory_sources::table
        .filter(advisory_sources::name.eq(name))
        .filter(free);
    let set = (
        advisory_sources::lease_owner.eq(owner),
        advisory_sources::lease_until.eq(until),
        advisory_sources::last_attempt_at.eq(now),
    );
    let claimed = if force {
        diesel::update(target).set(set).execute(conn)?
    } else {
        diesel::update(target.filter(advisory_sources::next_run_at.le(now)))
            .set(set)
            .execute(conn)?
    };
    if claimed == 0 {
        return Ok(None);
    }
    find(conn, name)
}

/// Extends `owner`'s lease; false when it was lost (taken over after it ran out).
pub fn renew(conn: &mut AnyConnection, name: &str, owner: &str, until: i64) -> QueryResult<bool> {
    let n = diesel::update(held(name, owner))
        .set(advisory_sources::lease_until.eq(until))
        .execute(conn)?;
    Ok(n == 1)
}

/// Records a success and gives the lease back; false when `owner` no longer held it.
pub fn record_success(
    conn: &mut AnyConnection,
    name: &str,
    owner: &str,
    success: &Success,
) -> QueryResult<bool> {
    let n = diesel::update(held(name, owner))
        .set((
            advisory_sources::last_success_at.eq(success.at),
            advisory_sources::next_run_at.eq(success.next_run_at),
            advisory_sources::records.eq(success.records),
            advisory_sources::newest_modified.eq(success.newest_modified),
            advisory_sources::last_changed.eq(success.changed),
            advisory_sources::etag.eq(success.etag.as_deref()),
            advisory_sources::last_modified.eq(success.last_modified.as_deref()),
            advisory_sources::sync_cursor.eq(success.sync_cursor.as_deref()),
            advisory_sources::last_error.eq(None::<String>),
            advisory_sources::failures.eq(0),
            advisory_sources::lease_owner.eq(None::<String>),
            advisory_sources::lease_until.eq(None::<i64>),
        ))
        .execute(conn)?;
    Ok(n == 1)
}

/// Records a failure (one more, retried at `next_run_at`) and gives the lease back; the stored
/// validators and cursor stay as the last success left them.
pub fn record_failure(
    conn: &mut AnyConnection,
    name: &str,
    owner: &str,
    error: &str,
    next_run_at: i64,
) -> QueryResult<bool> {
    let n = diesel::update(held(name, owner))
        .set((
            advisory_sources::last_error.eq(error),
            advisory_sources::next_run_at.eq(next_run_at),
            advisory_sources::failures.eq(advisory_sources::failures + 1),
            advisory_sources::lease_owner.eq(None::<String>),
            advisory_sources::lease_until.eq(None::<i64>),
        ))
        .execute(conn)?;
    Ok(n == 1)
}

/// The row of `name` while `owner` holds its lease.
type Held<'a> = diesel::dsl::Filter<
    diesel::dsl::Filter<advisory_sources::table, diesel::dsl::Eq<advisory_sources::name, &'a str>>,
    diesel::dsl::Eq<advisory_sources::lease_owner, &'a str>,
>;

fn held<'a>(name: &'a str, owner: &'a str) -> Held<'a> {
    advisory_sources::table
        .filter(advisory_sources::name.eq(name))
        .filter(advisory_sources::lease_owner.eq(owner))
}

pub fn find(conn: &mut AnyConnection, name: &str) -> QueryResult<Option<SourceRow>> {
    advisory_sources::table
        .find(name)
        .select(SourceRow::as_select())
        .first(conn)
        .optional()
}

/// Every source ever synced (or tried), by name.
pub fn list(conn: &mut AnyConnection) -> QueryResult<Vec<SourceRow>> {
    advisory_sources::table
        .order(advisory_sources::name.asc())
        .select(SourceRow::as_select())
        .load(conn)
}
