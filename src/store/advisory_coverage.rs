//! Which ecosystems have advisory data and as of when: one row per ecosystem as records name it
//! (`Debian:12`, `PyPI`) or per whole export (`Debian`, every release of it).

use diesel::prelude::*;

use super::schema::{advisory_coverage, affected_ranges};
use super::{AnyConnection, MultiBackend};

#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, Insertable)]
#[diesel(table_name = advisory_coverage)]
pub struct CoverageRow {
    pub ecosystem: String,
    pub advisories: i64,
    pub synced_at: i64,
}

/// The rows of these ecosystems (those that have one).
pub fn of(conn: &mut AnyConnection, ecosystems: &[String]) -> QueryResult<Vec<CoverageRow>> {
    let mut out = Vec::new();
    for chunk in ecosystems.chunks(500) {
        out.extend(
            advisory_coverage::table
                .filter(advisory_coverage::ecosystem.eq_any(chunk))
                .select(CoverageRow::as_select())
                .load(conn)?,
        );
    }
    Ok(out)
}

/// Records the data of `row.ecosystem` as loaded: inserted, or updated with the newer time.
pub fn record(conn: &mut AnyConnection, row: &CoverageRow) -> QueryResult<()> {
    on_each_backend!(conn, c => diesel::insert_into(advisory_coverage::table)
        .values(row)
        .on_conflict(advisory_coverage::ecosystem)
        .do_update()
        .set((
            advisory_coverage::advisories.eq(row.advisories),
            advisory_coverage::synced_at.eq(row.synced_at),
        ))
        .execute(c))
    .map(drop)
}

/// Stored advisories naming the ecosystem; a name without a release (`Debian`) counts every
/// release's (`Debian:12`, `Debian:11`, …).
pub fn count_advisories(conn: &mut AnyConnection, ecosystem: &str) -> QueryResult<i64> {
    let named = affected_ranges::ecosystem.eq(ecosystem.to_owned());
    let query = affected_ranges::table
        .select(diesel::dsl::count(affected_ranges::advisory_id).aggregate_distinct())
        .into_boxed::<MultiBackend>();
    let query = if ecosystem.contains(':') {
        query.filter(named)
    } else {
        let releases = format!("{}:%", super::filter::escape_like(ecosystem));
        query.filter(named.or(affected_ranges::ecosystem.like(releases).escape('\\')))
    };
    query.first(conn)
}
