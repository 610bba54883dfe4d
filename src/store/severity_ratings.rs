//! Rows and queries of `severity_ratings`: CVE ratings by sources other than the advisories
//! (the Debian security tracker per release and source package, NVD for every package).

use std::collections::BTreeMap;

use diesel::dsl::count_star;
use diesel::prelude::*;

use super::AnyConnection;
use super::schema::severity_ratings;

/// Rows per multi-row INSERT (nine columns; SQLite allows 32,766 bound parameters).
const CHUNK: usize = 1000;

#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Insertable)]
#[diesel(table_name = severity_ratings)]
pub struct RatingRow {
    pub cve: String,
    pub source: String,
    /// The release codename it rates for; empty for every release.
    pub release_name: String,
    /// The source package it rates; empty for every package.
    pub package: String,
    /// Low, Medium, High or Critical.
    pub severity: String,
    /// The source's own words (an urgency, a CVSS vector).
    pub rating: String,
    pub cvss2_base: Option<f64>,
    pub cvss3_base: Option<f64>,
    pub loaded_at: i64,
}

impl RatingRow {
    /// Everything but the load time: what tells a changed rating.
    fn content(&self) -> impl PartialEq + Ord + '_ {
        (
            &self.release_name,
            &self.package,
            &self.severity,
            &self.rating,
            self.cvss2_base.map(f64::to_bits),
            self.cvss3_base.map(f64::to_bits),
        )
    }
}

/// What [`apply`] changed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Applied {
    /// Ratings new, different from the stored ones, or (for a complete file) gone.
    pub changed: u64,
    /// The CVE ids whose ratings changed: the findings to re-decide.
    pub cves: Vec<String>,
}

/// Whether a file holds all of a source's ratings or only some.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Coverage {
    /// The whole source (the tracker's export): stored CVEs missing from it lose their ratings.
    Complete,
    /// Some CVEs (an NVD page or yearly feed): others are left as they are.
    Partial,
}

/// Stores one source's ratings, replacing per CVE the rows that differ. Run it in a transaction
/// so a file is stored whole or not at all. `rows` must all be of `source`.
pub fn apply(
    conn: &mut AnyConnection,
    source: &str,
    rows: &[RatingRow],
    coverage: Coverage,
) -> QueryResult<Applied> {
    let mut fresh: BTreeMap<&str, Vec<&RatingRow>> = BTreeMap::new();
    for row in rows {
        fresh.entry(&row.cve).or_default().push(row);
    }
    for group in fresh.values_mut() {
        group.sort_by(|a, b| a.content().cmp(&b.content()));
        // A key given twice (the key is the primary key): one of them, the same every time.
        group.dedup_by(|a, b| (&a.release_name, &a.package) == (&b.release_name, &b.package));
    }
    let mut applied = Applied::default();
    let mut replace: Vec<String> = Vec::new();
    // The stored ratings are read a thousand CVEs at a time, never all at once.
    let cves: Vec<&str> = fresh.keys().copied().collect();
    for chunk in cves.chunks(CHUNK) {
        let stored = of_source_for(conn, source, chunk)?;
        let mut old: BTreeMap<&str, Vec<&RatingRow>> = BTreeMap::new();
        for row in &stored {
            old.entry(&row.cve).or_default().push(row);
        }
        for cve in chunk {
            let group = &fresh[cve];
            let before = old.get(cve).map(Vec::as_slice).unwrap_or_default();
            let differs = |a: &&RatingRow, among: &[&RatingRow]| {
                !among.iter().any(|b| a.content() == b.content())
            };
            let changed = group.iter().filter(|r| differs(r, before)).count()
                + before.iter().filter(|r| differs(r, group)).count();
            if changed > 0 {
                applied.changed += changed as u64;
                replace.push((*cve).to_owned());
            }
        }
    }
    if coverage == Coverage::Complete {
        for (cve, rows) in rated_cves(conn, source)? {
            if !fresh.contains_key(cve.as_str()) {
                applied.changed += u64::try_from(rows).unwrap_or_default();
                replace.push(cve);
            }
        }
    }
    for chunk in replace.chunks(CHUNK) {
        diesel::delete(
            severity_ratings::table
                .filter(severity_ratings::source.eq(source))
                .filter(severity_ratings::cve.eq_any(chunk)),
        )
        .execute(conn)?;
    }
    let inserted: Vec<&RatingRow> = replace
        .iter()
        .filter_map(|cve| fresh.get(cve.as_str()))
        .flatten()
        .copied()
        .collect();
    for chunk in inserted.chunks(CHUNK) {
        let chunk: Vec<RatingRow> = chunk.iter().map(|r| (*r).clone()).collect();
        on_each_backend!(conn, c => diesel::insert_into(severity_ratings::table).values(&chunk).execute(c))?;
    }
    applied.cves = replace;
    Ok(applied)
}

/// The CVE ids a source rates, with how many ratings each has.
fn rated_cves(conn: &mut AnyConnection, source: &str) -> QueryResult<Vec<(String, i64)>> {
    severity_ratings::table
        .filter(severity_ratings::source.eq(source))
        .group_by(severity_ratings::cve)
        .select((severity_ratings::cve, count_star()))
        .load(conn)
}

fn of_source_for(
    conn: &mut AnyConnection,
    source: &str,
    cves: &[&str],
) -> QueryResult<Vec<RatingRow>> {
    let mut out = Vec::new();
    for chunk in cves.chunks(CHUNK) {
        out.extend(
            severity_ratings::table
                .filter(severity_ratings::source.eq(source))
                .filter(severity_ratings::cve.eq_any(chunk))
                .select(RatingRow::as_select())
                .load(conn)?,
        );
    }
    Ok(out)
}

/// Every rating of these CVE ids, by any source: one query per thousand ids.
pub fn for_cves(conn: &mut AnyConnection, cves: &[String]) -> QueryResult<Vec<RatingRow>> {
    let mut out = Vec::new();
    for chunk in cves.chunks(CHUNK) {
        out.extend(
            severity_ratings::table
                .filter(severity_ratings::cve.eq_any(chunk))
                .select(RatingRow::as_select())
                .load(conn)?,
        );
    }
    Ok(out)
}

/// Ratings stored per source, by source name.
pub fn counts(conn: &mut AnyConnection) -> QueryResult<Vec<(String, i64)>> {
    severity_ratings::table
        .group_by(severity_ratings::source)
        .select((severity_ratings::source, count_star()))
        .order(severity_ratings::source.asc())
        .load(conn)
}
