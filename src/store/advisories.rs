use std::collections::HashMap;

use diesel::dsl::count;
use diesel::prelude::*;

use super::AnyConnection;
use super::schema::{
    advisories, advisory_aliases, advisory_generation, advisory_imports, affected_ranges,
};
use crate::domain::Severity;

/// Rows per multi-row INSERT of the narrow tables (SQLite allows 32,766 bound parameters).
const INSERT_CHUNK: usize = 1000;

#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Insertable)]
#[diesel(table_name = advisories)]
pub struct AdvisoryRow {
    pub id: String,
    pub modified: i64,
    pub published: Option<i64>,
    pub withdrawn: Option<i64>,
    pub summary: String,
    /// The record's own severity (None when it has none and must borrow an alias's).
    pub severity: Option<String>,
    pub severity_source: Option<String>,
    pub cvss2_base: Option<f64>,
    pub cvss3_base: Option<f64>,
    /// The most severe related record's severity (see [`relend`]); None when inserting.
    pub lent_from: Option<String>,
    pub lent_severity: Option<String>,
    pub lent_severity_source: Option<String>,
    pub lent_cvss2_base: Option<f64>,
    pub lent_cvss3_base: Option<f64>,
    /// The parsed advisory, JSON.
    pub record: String,
    /// The record as imported, JSON.
    pub raw: String,
    pub imported_at: i64,
}

#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Insertable)]
#[diesel(table_name = affected_ranges)]
pub struct AffectedRow {
    pub advisory_id: String,
    pub seq: i32,
    pub ecosystem: String,
    pub package: String,
    /// The affected entry (ranges, versions, severity override), JSON.
    pub affected: String,
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = advisory_aliases)]
pub struct AliasRow {
    pub advisory_id: String,
    pub alias: String,
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = advisory_imports)]
pub struct ImportRow {
    pub id: String,
    pub source: String,
    pub started_at: i64,
    pub finished_at: i64,
    pub added: i32,
    pub updated: i32,
    pub unchanged: i32,
    pub withdrawn: i32,
    pub rejected: i32,
}

/// One advisory ready to store.
#[derive(Debug, Clone)]
pub struct NewAdvisory {
    pub row: AdvisoryRow,
    pub affected: Vec<AffectedRow>,
    pub aliases: Vec<String>,
}

impl NewAdvisory {
    /// An advisory known only by its id, summary and aliases: no affected package, no severity
    /// (for findings seeded by hand in tests and benches).
    pub fn without_packages(id: String, summary: String, aliases: Vec<String>, now: i64) -> Self {
        Self {
            row: AdvisoryRow {
                id,
                modified: now,
                published: None,
                withdrawn: None,
                summary,
                severity: None,
                severity_source: None,
                cvss2_base: None,
                cvss3_base: None,
                lent_from: None,
                lent_severity: None,
                lent_severity_source: None,
                lent_cvss2_base: None,
                lent_cvss3_base: None,
                record: "{}".to_owned(),
                raw: "{}".to_owned(),
                imported_at: now,
            },
            affected: Vec::new(),
            aliases,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    Added,
    Updated,
    /// The stored record is as new or newer.
    Unchanged,
}

/// Stores a batch: records newer than the stored ones replace them, others are left alone. Run it
/// in a transaction so a record is replaced whole or not at all. Three statements per table at most.
pub fn apply(conn: &mut AnyConnection, batch: &[NewAdvisory]) -> QueryResult<Vec<Applied>> {
    let ids: Vec<&str> = batch.iter().map(|a| a.row.id.as_str()).collect();
    let stored: HashMap<String, i64> = advisories::table
        .filter(advisories::id.eq_any(&ids))
        .select((advisories::id, advisories::modified))
        .load::<(String, i64)>(conn)?
        .into_iter()
        .collect();
    // Within one batch the newest copy of an id wins; earlier copies count as unchanged.
    let mut newest: HashMap<&str, usize> = HashMap::new();
    for (i, a) in batch.iter().enumerate() {
        let keep = newest
            .get(a.row.id.as_str())
            .is_none_or(|&j| batch[j].row.modified < a.row.modified);
        if keep {
            newest.insert(&a.row.id, i);
        }
    }
    let outcome: Vec<Applied> = batch
        .iter()
        .enumerate()
        .map(|(i, a)| {
            if newest.get(a.row.id.as_str()) != Some(&i) {
                return Applied::Unchanged;
            }
            match stored.get(&a.row.id) {
                None => Applied::Added,
                Some(&modified) if modified < a.row.modified => Applied::Updated,
                Some(_) => Applied::Unchanged,
            }
        })
        .collect();
    let replaced: Vec<&str> = batch
        .iter()
        .zip(&outcome)
        .filter(|(_, o)| **o == Applied::Updated)
        .map(|(a, _)| a.row.id.as_str())
        .collect();
    for chunk in replaced.chunks(INSERT_CHUNK) {
        diesel::delete(affected_ranges::table.filter(affected_ranges::advisory_id.eq_any(chunk)))
            .execute(conn)?;
        diesel::delete(advisory_aliases::table.filter(advisory_aliases::advisory_id.eq_any(chunk)))
            .execute(conn)?;
        diesel::delete(advisories::table.filter(advisories::id.eq_any(chunk))).execute(conn)?;
    }
    let written: Vec<&NewAdvisory> = batch
        .iter()
        .zip(&outcome)
        .filter(|(_, o)| **o != Applied::Unchanged)
        .map(|(a, _)| a)
        .collect();
    let rows: Vec<AdvisoryRow> = written.iter().map(|a| a.row.clone()).collect();
    let affected: Vec<AffectedRow> = written
        .iter()
        .flat_map(|a| a.affected.iter().cloned())
        .collect();
    let aliases: Vec<AliasRow> = written
        .iter()
        .flat_map(|a| {
            let mut unique: Vec<&String> = a
                .aliases
                .iter()
                .filter(|alias| **alias != a.row.id)
                .collect();
            unique.sort();
            unique.dedup();
            unique.into_iter().map(|alias| AliasRow {
                advisory_id: a.row.id.clone(),
                alias: alias.clone(),
            })
        })
        .collect();
    for chunk in rows.chunks(INSERT_CHUNK / 10) {
        on_each_backend!(conn, c => diesel::insert_into(advisories::table).values(chunk).execute(c))?;
    }
    for chunk in affected.chunks(INSERT_CHUNK) {
        on_each_backend!(conn, c => diesel::insert_into(affected_ranges::table).values(chunk).execute(c))?;
    }
    for chunk in aliases.chunks(INSERT_CHUNK) {
        on_each_backend!(conn, c => diesel::insert_into(advisory_aliases::table).values(chunk).execute(c))?;
    }
    if !written.is_empty() {
        bump_generation(conn)?;
    }
    Ok(outcome)
}

/// The advisories' generation: it moves whenever a transaction changes them.
pub fn generation(conn: &mut AnyConnection) -> QueryResult<i64> {
    advisory_generation::table
        .find(1)
        .select(advisory_generation::generation)
        .first(conn)
}

/// Part of every transaction that changes advisories or what decides their findings' severity
/// (the row lock also orders concurrent imports).
pub fn bump_generation(conn: &mut AnyConnection) -> QueryResult<()> {
    diesel::update(advisory_generation::table.find(1))
        .set(advisory_generation::generation.eq(advisory_generation::generation + 1))
        .execute(conn)
        .map(drop)
}

pub fn find(conn: &mut AnyConnection, id: &str) -> QueryResult<Option<AdvisoryRow>> {
    advisories::table
        .find(id)
        .select(AdvisoryRow::as_select())
        .first(conn)
        .optional()
}

/// What the MDVM sub-assessments show of these advisories beyond their findings: (id, modified,
/// the record as imported), one query per 500 ids.
pub fn as_imported(
    conn: &mut AnyConnection,
    ids: &[&str],
) -> QueryResult<Vec<(String, i64, String)>> {
    let mut out = Vec::new();
    for chunk in ids.chunks(500) {
        out.extend(
            advisories::table
                .filter(advisories::id.eq_any(chunk))
                .select((advisories::id, advisories::modified, advisories::raw))
                .load::<(String, i64, String)>(conn)?,
        );
    }
    Ok(out)
}

/// The packages (as `affected_ranges` name them) of the live advisories that are one of these
/// CVE ids or list one among their aliases or upstream ids: whose findings a rating of those CVEs
/// decides.
pub fn packages_naming(conn: &mut AnyConnection, cves: &[String]) -> QueryResult<Vec<String>> {
    let mut ids: Vec<String> = Vec::new();
    for chunk in cves.chunks(INSERT_CHUNK) {
        ids.extend(chunk.iter().cloned());
        ids.extend(
            advisory_aliases::table
                .filter(advisory_aliases::alias.eq_any(chunk))
                .select(advisory_aliases::advisory_id)
                .load::<String>(conn)?,
        );
    }
    ids.sort_unstable();
    ids.dedup();
    let mut packages: Vec<String> = Vec::new();
    for chunk in ids.chunks(INSERT_CHUNK) {
        packages.extend(
            affected_ranges::table
                .inner_join(advisories::table)
                .filter(affected_ranges::advisory_id.eq_any(chunk))
                .filter(advisories::withdrawn.is_null())
                .select(affected_ranges::package)
                .distinct()
                .load::<String>(conn)?,
        );
    }
    packages.sort_unstable();
    packages.dedup();
    Ok(packages)
}

/// An affected entry that may concern an inventory, with the severity its advisory's aliases lend.
#[derive(Debug, Clone)]
pub struct CandidateKey {
    pub ecosystem: String,
    pub package: String,
    pub advisory_id: String,
    pub seq: i32,
    pub modified: i64,
    pub lent: Option<AliasSeverity>,
}

/// An affected entry with its advisory's parsed record, both JSON.
#[derive(Debug, Clone, Queryable)]
pub struct CandidateRow {
    pub advisory_id: String,
    pub seq: i32,
    pub modified: i64,
    pub affected: String,
    pub record: String,
}

/// The affected entries of live (not withdrawn) advisories for any of these (ecosystem, package)
/// pairs, in one query of small rows; the result holds exactly those pairs.
pub fn candidate_keys(
    conn: &mut AnyConnection,
    keys: &[(String, String)],
) -> QueryResult<Vec<CandidateKey>> {
    if keys.is_empty() {
        return Ok(Vec::new());
    }
    let mut ecosystems: Vec<&str> = keys.iter().map(|(e, _)| e.as_str()).collect();
    ecosystems.sort_unstable();
    ecosystems.dedup();
    let mut packages: Vec<&str> = keys.iter().map(|(_, p)| p.as_str()).collect();
    packages.sort_unstable();
    packages.dedup();
    type Row = (
        String,
        i32,
        i64,
        String,
        String,
        Option<String>,
        Option<String>,
        Option<String>,
        Option<f64>,
        Option<f64>,
    );
    let rows: Vec<Row> = affected_ranges::table
        .inner_join(advisories::table)
        .filter(affected_ranges::package.eq_any(&packages))
        .filter(affected_ranges::ecosystem.eq_any(&ecosystems))
        .filter(advisories::withdrawn.is_null())
        .select((
            affected_ranges::advisory_id,
            affected_ranges::seq,
            advisories::modified,
            affected_ranges::ecosystem,
            affected_ranges::package,
            advisories::lent_from,
            advisories::lent_severity,
            advisories::lent_severity_source,
            advisories::lent_cvss2_base,
            advisories::lent_cvss3_base,
        ))
        .load(conn)?;
    let wanted: std::collections::HashSet<(&str, &str)> =
        keys.iter().map(|(e, p)| (e.as_str(), p.as_str())).collect();
    Ok(rows
        .into_iter()
        .filter(|row| wanted.contains(&(row.3.as_str(), row.4.as_str())))
        .map(
            |(
                advisory_id,
                seq,
                modified,
                ecosystem,
                package,
                from,
                severity,
                source,
                cvss2,
                cvss3,
            )| {
                let lent = match (from, severity, source) {
                    (Some(from), Some(severity), Some(source)) => Some(AliasSeverity {
                        advisory_id: from,
                        severity,
                        severity_source: source,
                        cvss2_base: cvss2,
                        cvss3_base: cvss3,
                    }),
                    _ => None,
                };
                CandidateKey {
                    ecosystem,
                    package,
                    advisory_id,
                    seq,
                    modified,
                    lent,
                }
            },
        )
        .collect())
}

/// Every affected entry of these advisories with the parsed records, to decode.
pub fn candidate_rows(
    conn: &mut AnyConnection,
    advisory_ids: &[String],
) -> QueryResult<Vec<CandidateRow>> {
    let mut out = Vec::new();
    for chunk in advisory_ids.chunks(INSERT_CHUNK) {
        out.extend(
            affected_ranges::table
                .inner_join(advisories::table)
                .filter(affected_ranges::advisory_id.eq_any(chunk))
                .select((
                    affected_ranges::advisory_id,
                    affected_ranges::seq,
                    advisories::modified,
                    affected_ranges::affected,
                    advisories::record,
                ))
                .load::<CandidateRow>(conn)?,
        );
    }
    Ok(out)
}

/// A severity an advisory can lend to its aliases.
#[derive(Debug, Clone, PartialEq, Queryable)]
pub struct AliasSeverity {
    pub advisory_id: String,
    pub severity: String,
    pub severity_source: String,
    pub cvss2_base: Option<f64>,
    pub cvss3_base: Option<f64>,
}

/// Severities of the advisories related to `ids` by alias, in either direction: keyed by the id in
/// `ids` they belong to. Two queries, whatever the number of ids.
pub fn alias_severities(
    conn: &mut AnyConnection,
    ids: &[String],
) -> QueryResult<HashMap<String, Vec<AliasSeverity>>> {
    let mut out: HashMap<String, Vec<AliasSeverity>> = HashMap::new();
    if ids.is_empty() {
        return Ok(out);
    }
    let select = (
        advisories::id,
        advisories::severity.assume_not_null(),
        advisories::severity_source.assume_not_null(),
        advisories::cvss2_base,
        advisories::cvss3_base,
    );
    // Forward: our id lists an alias that is itself a stored advisory with a severity.
    let forward: Vec<(String, AliasSeverity)> = advisory_aliases::table
        .inner_join(advisories::table.on(advisories::id.eq(advisory_aliases::alias)))
        .filter(advisory_aliases::advisory_id.eq_any(ids))
        .filter(advisories::severity.is_not_null())
        .filter(advisories::withdrawn.is_null())
        .select((advisory_aliases::advisory_id, select))
        .load(conn)?;
    // Backward: a stored advisory with a severity lists our id among its aliases.
    let backward: Vec<(String, AliasSeverity)> = advisory_aliases::table
        .inner_join(advisories::table.on(advisories::id.eq(advisory_aliases::advisory_id)))
        .filter(advisory_aliases::alias.eq_any(ids))
        .filter(advisories::severity.is_not_null())
        .filter(advisories::withdrawn.is_null())
        .select((advisory_aliases::alias, select))
        .load(conn)?;
    for (id, severity) in forward.into_iter().chain(backward) {
        out.entry(id).or_default().push(severity);
    }
    Ok(out)
}

/// Re-computes the lent severities around every advisory written at or after `since` (an
/// import's start; see [`relend`]), one page of ids at a time: an import of millions of records
/// holds one page in memory, not every id it wrote.
pub fn relend_written_since(conn: &mut AnyConnection, since: i64) -> QueryResult<usize> {
    let mut after = String::new();
    let mut lent = 0;
    loop {
        let page: Vec<String> = advisories::table
            .filter(advisories::imported_at.ge(since))
            .filter(advisories::id.gt(&after))
            .order(advisories::id.asc())
            .select(advisories::id)
            .limit(INSERT_CHUNK as i64)
            .load(conn)?;
        let Some(last) = page.last() else {
            return Ok(lent);
        };
        after = last.clone();
        lent += relend(conn, &page)?;
    }
}

/// Re-computes the severity lent to each advisory by its aliases, for the stored advisories whose
/// aliases' severities may have changed: those in `changed` and those related to them by alias.
/// Run after an import, in a transaction, so matching needs no alias look-up.
pub fn relend(conn: &mut AnyConnection, changed: &[String]) -> QueryResult<usize> {
    let mut affected: std::collections::BTreeSet<String> = changed.iter().cloned().collect();
    for chunk in changed.chunks(INSERT_CHUNK) {
        let forward: Vec<String> = advisory_aliases::table
            .filter(advisory_aliases::alias.eq_any(chunk))
            .select(advisory_aliases::advisory_id)
            .load(conn)?;
        // Only aliases that are stored advisories can be lent a severity; a CVE id named by
        // thousands of records but not stored itself would otherwise be re-examined for each.
        let backward: Vec<String> = advisory_aliases::table
            .inner_join(advisories::table.on(advisories::id.eq(advisory_aliases::alias)))
            .filter(advisory_aliases::advisory_id.eq_any(chunk))
            .select(advisory_aliases::alias)
            .load(conn)?;
        affected.extend(forward);
        affected.extend(backward);
    }
    let affected: Vec<String> = affected.into_iter().collect();
    let mut lent = 0;
    for chunk in affected.chunks(INSERT_CHUNK) {
        diesel::update(advisories::table.filter(advisories::id.eq_any(chunk)))
            .set((
                advisories::lent_from.eq(None::<String>),
                advisories::lent_severity.eq(None::<String>),
                advisories::lent_severity_source.eq(None::<String>),
                advisories::lent_cvss2_base.eq(None::<f64>),
                advisories::lent_cvss3_base.eq(None::<f64>),
            ))
            .execute(conn)?;
        for (id, options) in alias_severities(conn, chunk)? {
            let Some(best) = strongest(&options) else {
                continue;
            };
            diesel::update(advisories::table.find(&id))
                .set((
                    advisories::lent_from.eq(&best.advisory_id),
                    advisories::lent_severity.eq(&best.severity),
                    advisories::lent_severity_source.eq(&best.severity_source),
                    advisories::lent_cvss2_base.eq(best.cvss2_base),
                    advisories::lent_cvss3_base.eq(best.cvss3_base),
                ))
                .execute(conn)?;
            lent += 1;
        }
    }
    Ok(lent)
}

/// The most severe (ties: the smallest id, so the choice is stable).
fn strongest(options: &[AliasSeverity]) -> Option<AliasSeverity> {
    options
        .iter()
        .filter(|o| Severity::parse(&o.severity).is_some())
        .max_by(|a, b| {
            Severity::parse(&a.severity)
                .cmp(&Severity::parse(&b.severity))
                .then_with(|| b.advisory_id.cmp(&a.advisory_id))
        })
        .cloned()
}

pub fn record_import(conn: &mut AnyConnection, row: &ImportRow) -> QueryResult<()> {
    bump_generation(conn)?;
    diesel::insert_into(advisory_imports::table)
        .values(row)
        .execute(conn)
        .map(drop)
}

/// What the advisory database holds.
#[derive(Debug, Clone)]
pub struct Status {
    pub advisories: i64,
    pub withdrawn: i64,
    /// Live advisories per ecosystem, by ecosystem name.
    pub per_ecosystem: Vec<(String, i64)>,
    pub last_import: Option<ImportRow>,
}

pub fn status(conn: &mut AnyConnection) -> QueryResult<Status> {
    let advisories: i64 = advisories::table.count().get_result(conn)?;
    let withdrawn: i64 = advisories::table
        .filter(advisories::withdrawn.is_not_null())
        .count()
        .get_result(conn)?;
    let per_ecosystem: Vec<(String, i64)> = affected_ranges::table
        .inner_join(advisories::table)
        .filter(advisories::withdrawn.is_null())
        .group_by(affected_ranges::ecosystem)
        .select((
            affected_ranges::ecosystem,
            count(affected_ranges::advisory_id).aggregate_distinct(),
        ))
        .order(affected_ranges::ecosystem.asc())
        .load(conn)?;
    let last_import = advisory_imports::table
        .order(advisory_imports::finished_at.desc())
        .select(ImportRow::as_select())
        .first(conn)
        .optional()?;
    Ok(Status {
        advisories,
        withdrawn,
        per_ecosystem,
        last_import,
    })
}
