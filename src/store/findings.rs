use diesel::prelude::*;

use std::sync::Arc;

use super::exploit_intel::{self, ExploitIntel, ScoreBound, UNSCORED};
use super::filter::{
    Comparison, Condition, Cursor, FilterError, KeyType, KeyValue, Kind, List, Listing, Node,
    Property, Test, by_id, choose, keyset, sql, test,
};
use super::schema::{findings, images, mdvm_names};
use super::{AnyConnection, MultiBackend};
use crate::domain::odata::{CompareOp, Expr, Literal, OrderBy, Value};
use crate::domain::{
    FindingPlace, Severity, cve_ids, mdvm_sub_assessment_name, mdvm_vulnerabilities,
};

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
    /// The file the package was read from: which binary or archive to rebuild.
    pub file_path: Option<String>,
    /// How many sub-assessments the finding is under the MDVM key: one per CVE its advisory
    /// names, or one under the advisory's own id (`domain::mdvm_vulnerability_count`).
    pub mdvm_vulnerabilities: i32,
    /// The id of the active exemption the finding is exempt by (see `jobs::exemptions`).
    pub exempted_by: Option<String>,
}

/// A finding as lists and reads show it: the row, whether its image runs in a cluster, and what
/// is known of its advisory's exploitation.
#[derive(Debug, Clone, PartialEq)]
pub struct ListedFinding {
    pub finding: FindingRow,
    pub running: bool,
    pub intel: Option<Arc<ExploitIntel>>,
    /// What imported VEX documents say about it (every status, `affected` too).
    pub vex: Vec<Arc<super::vex::VexStatementRow>>,
}

/// Pairs rows with whether their images run in a cluster and with their advisories' exploit
/// intelligence: one look-up by primary keys for each, for the lot.
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
    let mut advisories: Vec<&str> = rows.iter().map(|r| r.advisory_id.as_str()).collect();
    advisories.sort_unstable();
    advisories.dedup();
    let intel = exploit_intel::attached(conn, &advisories)?;
    let about: Vec<super::vex::Finding<'_>> = rows
        .iter()
        .map(|r| super::vex::Finding {
            id: &r.id,
            place: FindingPlace {
                subscription: &r.subscription_id,
                resource_group: &r.resource_group,
                registry_name: &r.registry_name,
                repository: &r.repository,
                digest: &r.image_digest,
            },
            advisory_id: &r.advisory_id,
            cves: &r.cves,
            package_name: &r.package_name,
        })
        .collect();
    let mut vex = super::vex::on_findings(conn, &about)?;
    Ok(rows
        .into_iter()
        .map(|finding| ListedFinding {
            running: running.contains(&finding.image_id),
            intel: intel.get(&finding.advisory_id).cloned(),
            vex: vex.remove(&finding.id).unwrap_or_default(),
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

/// Open findings (not resolved) whose severity no source decided (`severitySource: default`), in
/// a scope or (None) everywhere: what the severity sources' status reports as still unrated.
pub fn default_severity_count(
    conn: &mut AnyConnection,
    scope: Option<&FindingScope>,
) -> QueryResult<i64> {
    let mut query = findings::table
        .filter(findings::severity_source.eq("default"))
        .filter(findings::resolved_at.is_null())
        .into_boxed::<MultiBackend>();
    if let Some(scope) = scope {
        query = query.filter(in_scope(scope));
    }
    query.count().get_result(conn)
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

/// [`list`] for a list that shows a finding as several rows (the MDVM view, one per CVE): when a
/// page ended inside the finding `resume`, that finding comes first (if the listing's filter still
/// keeps it), then up to `limit` findings after the listing's cursor.
pub fn list_resuming(
    conn: &mut AnyConnection,
    scope: &FindingScope,
    listing: &Listing<Findings>,
    resume: Option<&str>,
    limit: i64,
) -> QueryResult<Vec<ListedFinding>> {
    let mut rows = Vec::new();
    if let Some(id) = resume {
        let mut unpaged = listing.clone();
        unpaged.after = None;
        rows.extend(
            unpaged
                .query()
                .filter(in_scope(scope))
                .filter(findings::id.eq(id.to_owned()))
                .select(FindingRow::as_select())
                .limit(1)
                .load(conn)?,
        );
    }
    rows.extend(
        listing
            .query()
            .filter(in_scope(scope))
            .select(FindingRow::as_select())
            .limit(limit)
            .load(conn)?,
    );
    with_running(conn, rows)
}

/// The finding and vulnerability an MDVM sub-assessment `name` stands for, in `scope`.
pub fn find_by_mdvm_name(
    conn: &mut AnyConnection,
    scope: &FindingScope,
    name: &str,
) -> QueryResult<Option<(ListedFinding, String)>> {
    let named: Option<(String, String)> = mdvm_names::table
        .find(name)
        .select((mdvm_names::finding_id, mdvm_names::vulnerability))
        .first(conn)
        .optional()?;
    let Some((id, vulnerability)) = named else {
        return Ok(None);
    };
    Ok(find(conn, scope, &id)?.map(|row| (row, vulnerability)))
}

#[derive(Debug, Clone, PartialEq, Eq, Insertable)]
#[diesel(table_name = mdvm_names)]
struct MdvmNameRow {
    name: String,
    finding_id: String,
    vulnerability: String,
}

/// The MDVM names of findings given by (id, advisory id, `cves` JSON).
fn mdvm_name_rows<'a>(
    findings: impl IntoIterator<Item = (&'a str, &'a str, &'a str)>,
) -> Vec<MdvmNameRow> {
    let mut rows = Vec::new();
    for (id, advisory_id, cves) in findings {
        let cves = cve_ids(cves);
        for vulnerability in mdvm_vulnerabilities(advisory_id, cves.iter().map(String::as_str)) {
            rows.push(MdvmNameRow {
                name: mdvm_sub_assessment_name(id, vulnerability).to_string(),
                finding_id: id.to_owned(),
                vulnerability: vulnerability.to_owned(),
            });
        }
    }
    rows
}

fn insert_mdvm_names(conn: &mut AnyConnection, rows: &[MdvmNameRow]) -> QueryResult<()> {
    for chunk in rows.chunks(500) {
        on_each_backend!(conn, c => diesel::insert_into(mdvm_names::table).values(chunk).execute(c))?;
    }
    Ok(())
}

/// Stores the MDVM names of findings written without them (by a version before the names were
/// stored, or by a bulk load), and their count on the finding, a batch at a time; returns how many
/// findings it named. Every finding has at least one name, so a finding without any is one to
/// fill in.
pub fn fill_mdvm_names(conn: &mut AnyConnection) -> QueryResult<usize> {
    const BATCH: i64 = 5000;
    let mut named = 0;
    // In id order from where the last batch ended, so each batch reads only its own findings.
    let mut after = String::new();
    loop {
        let unnamed: Vec<(String, String, String)> = findings::table
            .filter(findings::id.gt(&after))
            .filter(diesel::dsl::not(diesel::dsl::exists(
                mdvm_names::table.filter(mdvm_names::finding_id.eq(findings::id)),
            )))
            .select((findings::id, findings::advisory_id, findings::cves))
            .order(findings::id.asc())
            .limit(BATCH)
            .load(conn)?;
        let Some((last, _, _)) = unnamed.last() else {
            return Ok(named);
        };
        after = last.clone();
        named += unnamed.len();
        let rows = mdvm_name_rows(
            unnamed
                .iter()
                .map(|(id, advisory, cves)| (id.as_str(), advisory.as_str(), cves.as_str())),
        );
        insert_mdvm_names(conn, &rows)?;
        let mut counts: std::collections::BTreeMap<&str, i32> = std::collections::BTreeMap::new();
        for row in &rows {
            *counts.entry(row.finding_id.as_str()).or_default() += 1;
        }
        let mut by_count: std::collections::BTreeMap<i32, Vec<&str>> =
            std::collections::BTreeMap::new();
        for (id, count) in counts {
            by_count.entry(count).or_default().push(id);
        }
        for (count, ids) in by_count {
            for chunk in ids.chunks(500) {
                diesel::update(
                    findings::table
                        .filter(findings::id.eq_any(chunk))
                        .filter(findings::mdvm_vulnerabilities.ne(count)),
                )
                .set(findings::mdvm_vulnerabilities.eq(count))
                .execute(conn)?;
            }
        }
    }
}

/// The MDVM names of findings about to be written, each row's count set to its number of names:
/// the count always says what the names say, whatever the caller's rows held.
fn name(rows: &mut [FindingRow]) -> Vec<MdvmNameRow> {
    let names = mdvm_name_rows(
        rows.iter()
            .map(|r| (r.id.as_str(), r.advisory_id.as_str(), r.cves.as_str())),
    );
    // Names come out finding by finding, in the rows' order.
    let mut names_of = names.iter().map(|n| n.finding_id.as_str()).peekable();
    for row in rows.iter_mut() {
        let mut count = 0;
        while names_of.next_if(|id| *id == row.id).is_some() {
            count += 1;
        }
        row.mdvm_vulnerabilities = count;
    }
    names
}

/// Which findings a Resource Graph query reads: those of the subscriptions it may see (`None`:
/// every subscription), of these resource groups when it names some, that `listing`'s filter keeps.
#[derive(Debug, Clone)]
pub struct FindingSelection {
    pub subscriptions: Option<Vec<String>>,
    pub resource_groups: Option<Vec<String>>,
    pub listing: Listing<Findings>,
}

impl FindingSelection {
    /// The selected findings after the id `after`, in id order.
    fn after(&self, after: Option<&str>) -> findings::BoxedQuery<'static, MultiBackend> {
        let mut query = self.listing.query();
        // One value is an equality, so that PostgreSQL walks an index in id order (`= ANY` over
        // the leading column makes it sort every row in scope for each batch).
        match self.subscriptions.as_deref() {
            None => {}
            Some([one]) => query = query.filter(findings::subscription_id.eq(one.clone())),
            Some(many) => query = query.filter(findings::subscription_id.eq_any(many.to_vec())),
        }
        match self.resource_groups.as_deref() {
            None => {}
            Some([one]) => query = query.filter(findings::resource_group.eq(one.clone())),
            Some(many) => query = query.filter(findings::resource_group.eq_any(many.to_vec())),
        }
        if let Some(after) = after {
            query = query.filter(findings::id.gt(after.to_owned()));
        }
        query
    }
}

/// Up to `limit` findings of `selection` after the id `after`, in id order: one batch of a
/// read that goes through every selected finding in bounded memory.
pub fn batch(
    conn: &mut AnyConnection,
    selection: &FindingSelection,
    after: Option<&str>,
    limit: i64,
) -> QueryResult<Vec<ListedFinding>> {
    let rows = selection
        .after(after)
        .select(FindingRow::as_select())
        .limit(limit)
        .load(conn)?;
    with_running(conn, rows)
}

/// The few columns of a finding that its status and its count of CVEs come from: what a
/// Resource Graph query that counts findings by status or severity reads instead of whole rows.
#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable)]
#[diesel(table_name = findings)]
pub struct FindingStatusRow {
    pub id: String,
    pub subscription_id: String,
    pub resource_group: String,
    pub severity: String,
    pub resolved_at: Option<i64>,
    pub mdvm_vulnerabilities: i32,
    pub exempted_by: Option<String>,
}

/// [`batch`], reading only [`FindingStatusRow`]'s columns.
pub fn status_batch(
    conn: &mut AnyConnection,
    selection: &FindingSelection,
    after: Option<&str>,
    limit: i64,
) -> QueryResult<Vec<FindingStatusRow>> {
    selection
        .after(after)
        .select(FindingStatusRow::as_select())
        .limit(limit)
        .load(conn)
}

/// How many of a selection's findings share a subscription, resource group, state and severity:
/// all that a sub-assessment row read by status ([`FindingStatusRow`]) tells apart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusCount {
    pub subscription_id: String,
    pub resource_group: String,
    pub state: FindingState,
    pub severity: String,
    pub findings: u64,
    /// Their sub-assessments under the MDVM key (the sum of their `mdvm_vulnerabilities`).
    pub mdvm_vulnerabilities: u64,
}

/// The selected findings counted by [`StatusCount`]'s groups, in the database: a query that
/// only counts them by status or severity reads a few rows, not every finding.
pub fn status_counts(
    conn: &mut AnyConnection,
    selection: &FindingSelection,
) -> QueryResult<Vec<StatusCount>> {
    use diesel::dsl::sql;
    use diesel::sql_types::{BigInt, Bool};
    // Not boxed: diesel groups only statements whose types it sees.
    let mut condition: Condition<findings::table> = Box::new(true.into_sql::<Bool>());
    if let Some(filter) = selection.listing.condition(finding_condition) {
        condition = Box::new(condition.and(filter));
    }
    match selection.subscriptions.as_deref() {
        None => {}
        Some([one]) => {
            condition = Box::new(condition.and(findings::subscription_id.eq(one.clone())))
        }
        Some(many) => {
            condition = Box::new(condition.and(findings::subscription_id.eq_any(many.to_vec())))
        }
    }
    if let Some(groups) = selection.resource_groups.clone() {
        condition = Box::new(condition.and(findings::resource_group.eq_any(groups)));
    }
    // One pass over the rows: each state's findings and MDVM sub-assessments as conditional sums.
    let summed = |state: FindingState, of: &str| {
        sql::<BigInt>(&format!(
            "CAST(COALESCE(SUM(CASE WHEN {} THEN {of} ELSE 0 END), 0) AS BIGINT)",
            state.sql()
        ))
    };
    type Group = (String, String, String, i64, i64, i64, i64, i64, i64);
    let groups: Vec<Group> = findings::table
        .filter(condition)
        .group_by((
            findings::subscription_id,
            findings::resource_group,
            findings::severity,
        ))
        .select((
            findings::subscription_id,
            findings::resource_group,
            findings::severity,
            summed(FindingState::Vulnerable, "1"),
            summed(FindingState::Vulnerable, "findings.mdvm_vulnerabilities"),
            summed(FindingState::Resolved, "1"),
            summed(FindingState::Resolved, "findings.mdvm_vulnerabilities"),
            summed(FindingState::Exempt, "1"),
            summed(FindingState::Exempt, "findings.mdvm_vulnerabilities"),
        ))
        .load(conn)?;
    let mut counts = Vec::new();
    for (subscription_id, resource_group, severity, vf, vm, rf, rm, ef, em) in groups {
        for (state, findings, mdvm) in [
            (FindingState::Vulnerable, vf, vm),
            (FindingState::Resolved, rf, rm),
            (FindingState::Exempt, ef, em),
        ] {
            if findings > 0 {
                counts.push(StatusCount {
                    subscription_id: subscription_id.clone(),
                    resource_group: resource_group.clone(),
                    state,
                    severity: severity.clone(),
                    findings: findings as u64,
                    mdvm_vulnerabilities: mdvm.max(0) as u64,
                });
            }
        }
    }
    Ok(counts)
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
    let mut rows = rows.to_vec();
    let names = name(&mut rows);
    for row in &rows {
        diesel::insert_into(findings::table)
            .values(row)
            .execute(conn)?;
    }
    insert_mdvm_names(conn, &names)
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
    let names = name(&mut rewrite);
    for chunk in rewrite.chunks(100) {
        on_each_backend!(conn, c => diesel::insert_into(findings::table).values(chunk).execute(c))?;
    }
    // The replaced rows' names went with them.
    insert_mdvm_names(conn, &names)?;
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

// ---------------------------------------------------------------------------------------------
// The sub-assessment list: its `$filter` properties, sort keys and keyset query

/// The sub-assessment list.
#[derive(Debug, Clone, Copy)]
pub struct Findings;

#[derive(Debug, Clone, PartialEq)]
pub enum FindingLeaf {
    Id(Test<String>),
    AdvisoryId(Test<String>),
    Category(Test<String>),
    Repository(Test<String>),
    ImageDigest(Test<String>),
    PackageName(Test<String>),
    Ecosystem(Test<String>),
    /// In one of these states (never empty, never all three).
    States(Vec<FindingState>),
    /// `severity_rank IN (…)`.
    Ranks(Vec<i32>),
    Patchable(bool),
    /// On an image some cluster runs (true) or not (false).
    Running(bool),
    FirstSeen(Test<i64>),
    LastSeen(Test<i64>),
    /// Names this CVE among its `cve` links, or is that advisory.
    Cve(String),
    /// Its advisory or an alias is in the KEV catalogue (true) or none is (false).
    KnownExploited(bool),
    /// Its advisory or an alias has an EPSS score within the bound.
    Scored(ScoreBound),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FindingKey {
    Id,
    SeverityRank,
    Cvss,
    FirstSeen,
    LastSeen,
    Repository,
    Epss,
}

impl List for Findings {
    type Row = ListedFinding;
    type Leaf = FindingLeaf;
    type Key = FindingKey;
    const NAME: &'static str = "findings";
    const PROPERTIES: &'static [Property<FindingLeaf>] = &[
        Property {
            path: "name",
            kind: Kind::Text(FindingLeaf::Id),
        },
        Property {
            path: "properties/id",
            kind: Kind::Text(FindingLeaf::AdvisoryId),
        },
        Property {
            path: "properties/category",
            kind: Kind::Text(FindingLeaf::Category),
        },
        Property {
            path: "properties/status/code",
            kind: Kind::Custom(status_code),
        },
        Property {
            path: "properties/status/cause",
            kind: Kind::Custom(status_cause),
        },
        Property {
            path: "properties/status/severity",
            kind: Kind::Custom(severity_2019),
        },
        Property {
            path: "properties/additionalData/severity",
            kind: Kind::Custom(severity),
        },
        Property {
            path: "properties/additionalData/repositoryName",
            kind: Kind::Text(FindingLeaf::Repository),
        },
        Property {
            path: "properties/additionalData/imageDigest",
            kind: Kind::Text(FindingLeaf::ImageDigest),
        },
        Property {
            path: "properties/additionalData/patchable",
            kind: Kind::Flag(FindingLeaf::Patchable),
        },
        Property {
            path: "properties/additionalData/packageName",
            kind: Kind::Text(FindingLeaf::PackageName),
        },
        Property {
            path: "properties/additionalData/ecosystem",
            kind: Kind::Text(FindingLeaf::Ecosystem),
        },
        Property {
            path: "properties/additionalData/cveId",
            kind: Kind::Custom(cve),
        },
        Property {
            path: "properties/additionalData/firstSeen",
            kind: Kind::Time(FindingLeaf::FirstSeen),
        },
        Property {
            path: "properties/additionalData/lastSeen",
            kind: Kind::Time(FindingLeaf::LastSeen),
        },
        Property {
            path: "properties/additionalData/running",
            kind: Kind::Flag(FindingLeaf::Running),
        },
        Property {
            path: "properties/additionalData/knownExploited",
            kind: Kind::Custom(known_exploited),
        },
        Property {
            path: "properties/additionalData/epss/score",
            kind: Kind::Custom(epss_score),
        },
    ];
    const KEYS: &'static [(&'static str, FindingKey)] = &[
        ("name", FindingKey::Id),
        ("properties/status/severity", FindingKey::SeverityRank),
        ("properties/additionalData/cvss", FindingKey::Cvss),
        ("properties/additionalData/firstSeen", FindingKey::FirstSeen),
        ("properties/additionalData/lastSeen", FindingKey::LastSeen),
        (
            "properties/additionalData/repositoryName",
            FindingKey::Repository,
        ),
        ("properties/additionalData/epss/score", FindingKey::Epss),
    ];
    const ID: FindingKey = FindingKey::Id;

    fn key_type(key: FindingKey) -> Option<KeyType> {
        match key {
            FindingKey::Id => None,
            FindingKey::SeverityRank | FindingKey::FirstSeen | FindingKey::LastSeen => {
                Some(KeyType::Int)
            }
            FindingKey::Cvss | FindingKey::Epss => Some(KeyType::Float),
            FindingKey::Repository => Some(KeyType::Text),
        }
    }

    fn key_value(key: FindingKey, row: &ListedFinding) -> Option<KeyValue> {
        let epss = row
            .intel
            .as_ref()
            .and_then(|i| i.epss.as_ref())
            .map_or(UNSCORED, |e| e.score);
        let row = &row.finding;
        match key {
            FindingKey::Id => None,
            FindingKey::SeverityRank => Some(KeyValue::Int(row.severity_rank.into())),
            FindingKey::Cvss => Some(KeyValue::Float(
                row.cvss3_base.or(row.cvss2_base).unwrap_or(0.0),
            )),
            FindingKey::FirstSeen => Some(KeyValue::Int(row.first_seen)),
            FindingKey::LastSeen => Some(KeyValue::Int(row.last_seen)),
            FindingKey::Repository => Some(KeyValue::Text(row.repository.clone())),
            FindingKey::Epss => Some(KeyValue::Float(epss)),
        }
    }

    fn id(row: &ListedFinding) -> &str {
        &row.finding.id
    }
}

/// Where a finding stands: what its status code and cause show.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FindingState {
    /// Present and not exempt: Unhealthy, cause `Vulnerable`.
    Vulnerable,
    /// No longer found: Healthy, cause `Resolved`.
    Resolved,
    /// Present, and matched by an active exemption: NotApplicable, cause `Exempt`.
    Exempt,
}

impl FindingState {
    /// The states in the order of the status codes and causes that name them.
    pub const ALL: [FindingState; 3] = [Self::Vulnerable, Self::Resolved, Self::Exempt];

    pub fn of(resolved_at: Option<i64>, exempted_by: Option<&str>) -> Self {
        match (resolved_at, exempted_by) {
            (Some(_), _) => Self::Resolved,
            (None, Some(_)) => Self::Exempt,
            (None, None) => Self::Vulnerable,
        }
    }

    /// [`Self::condition`] as SQL, for conditional aggregates.
    fn sql(self) -> &'static str {
        match self {
            Self::Vulnerable => "findings.resolved_at IS NULL AND findings.exempted_by IS NULL",
            Self::Resolved => "findings.resolved_at IS NOT NULL",
            Self::Exempt => "findings.resolved_at IS NULL AND findings.exempted_by IS NOT NULL",
        }
    }

    fn condition(self) -> Condition<findings::table> {
        match self {
            Self::Vulnerable => Box::new(
                findings::resolved_at
                    .is_null()
                    .and(findings::exempted_by.is_null()),
            ),
            Self::Resolved => Box::new(findings::resolved_at.is_not_null()),
            Self::Exempt => Box::new(
                findings::resolved_at
                    .is_null()
                    .and(findings::exempted_by.is_not_null()),
            ),
        }
    }
}

/// The states whose names (in [`FindingState::ALL`]'s order) a comparison keeps.
fn states(c: &Comparison<'_>, names: &[&'static str]) -> Result<Node<FindingLeaf>, FilterError> {
    let kept = choose(c, names, false, "")?;
    let states: Vec<FindingState> = FindingState::ALL
        .into_iter()
        .enumerate()
        .filter(|(i, _)| kept.contains(i))
        .map(|(_, s)| s)
        .collect();
    Ok(match states.len() {
        0 => Node::Const(false),
        3 => Node::Const(true),
        _ => Node::Leaf(FindingLeaf::States(states)),
    })
}

/// Unhealthy while present, Healthy once resolved, NotApplicable while exempt.
fn status_code(c: &Comparison<'_>) -> Result<Node<FindingLeaf>, FilterError> {
    states(c, &["Unhealthy", "Healthy", "NotApplicable"])
}

/// `Vulnerable`, `Resolved` or `Exempt`, as the status code.
fn status_cause(c: &Comparison<'_>) -> Result<Node<FindingLeaf>, FilterError> {
    states(c, &["Vulnerable", "Resolved", "Exempt"])
}

/// The severity a finding is shown with, by its rank (an unknown severity, rank 0, shows as Medium).
fn shown(rank: i32) -> Severity {
    Severity::from_rank(rank).unwrap_or(Severity::Medium)
}

/// The ranks whose shown severity (`view`ed) a comparison keeps, over `names` in order.
fn ranks(
    c: &Comparison<'_>,
    names: &[&'static str],
    view: fn(Severity) -> Severity,
    hint: &str,
) -> Result<Node<FindingLeaf>, FilterError> {
    let kept = choose(c, names, true, hint)?;
    let ranks: Vec<i32> = (0..=4)
        .filter(|r| {
            let name = view(shown(*r)).as_str();
            names
                .iter()
                .position(|n| *n == name)
                .is_some_and(|i| kept.contains(&i))
        })
        .collect();
    Ok(if ranks.is_empty() {
        Node::Const(false)
    } else {
        Node::Leaf(FindingLeaf::Ranks(ranks))
    })
}

/// The 2019 API's Low/Medium/High: a Critical finding shows (and matches) as High.
fn severity_2019(c: &Comparison<'_>) -> Result<Node<FindingLeaf>, FilterError> {
    ranks(
        c,
        &["Low", "Medium", "High"],
        Severity::azure_2019,
        " (Critical findings show as High here; properties/additionalData/severity tells them apart)",
    )
}

fn severity(c: &Comparison<'_>) -> Result<Node<FindingLeaf>, FilterError> {
    ranks(c, &["Low", "Medium", "High", "Critical"], |s| s, "")
}

fn cve(c: &Comparison<'_>) -> Result<Node<FindingLeaf>, FilterError> {
    let mut leaves = Vec::new();
    for value in c.values {
        match &value.literal {
            Literal::String(s) => leaves.push(Node::Leaf(FindingLeaf::Cve(s.clone()))),
            _ => return Err(c.type_error(value, "a string")),
        }
    }
    match c.op {
        None | Some(CompareOp::Eq) => Ok(Node::any(leaves.into_iter())),
        Some(CompareOp::Ne) => Ok(Node::Not(Box::new(Node::any(leaves.into_iter())))),
        Some(_) => Err(c.op_error("a CVE id", "eq, ne or in")),
    }
}

/// `knownExploited eq null` (not catalogued) or `ne null`: the entry's content is not filterable.
fn known_exploited(c: &Comparison<'_>) -> Result<Node<FindingLeaf>, FilterError> {
    match (c.op, c.values) {
        (Some(CompareOp::Eq), [value]) if value.literal == Literal::Null => {
            Ok(Node::Leaf(FindingLeaf::KnownExploited(false)))
        }
        (Some(CompareOp::Ne), [value]) if value.literal == Literal::Null => {
            Ok(Node::Leaf(FindingLeaf::KnownExploited(true)))
        }
        (Some(CompareOp::Eq | CompareOp::Ne), [value]) => Err(c.type_error(value, "null or not")),
        _ => Err(c.op_error("an object", "eq null or ne null")),
    }
}

/// A finding's EPSS score is the highest of its CVEs', so each comparison is said with "some CVE
/// scores at least / above": `lt x` is "scored, and no CVE at x or above".
fn epss_score(c: &Comparison<'_>) -> Result<Node<FindingLeaf>, FilterError> {
    let scored = |bound| Node::Leaf(FindingLeaf::Scored(bound));
    let not = |node| Node::Not(Box::new(node));
    let and = |a, b| Node::And(Box::new(a), Box::new(b));
    let equal = |x: f64| {
        and(
            scored(ScoreBound::AtLeast(x)),
            not(scored(ScoreBound::Above(x))),
        )
    };
    let number = |value: &Value| match value.literal {
        Literal::Integer(n) => Ok(Some(n as f64)),
        Literal::Decimal(x) => Ok(Some(x)),
        Literal::Null => Ok(None),
        _ => Err(c.type_error(value, "a number")),
    };
    let Some(op) = c.op else {
        let mut nodes = Vec::new();
        for value in c.values {
            nodes.push(match number(value)? {
                Some(x) => equal(x),
                None => not(scored(ScoreBound::Any)),
            });
        }
        return Ok(Node::any(nodes.into_iter()));
    };
    let [value] = c.values else {
        return Err(c.op_error("a number", "eq, ne, gt, ge, lt, le or in"));
    };
    Ok(match (op, number(value)?) {
        (CompareOp::Eq, None) => not(scored(ScoreBound::Any)),
        (CompareOp::Ne, None) => scored(ScoreBound::Any),
        (_, None) => return Err(c.null_error()),
        (CompareOp::Eq, Some(x)) => equal(x),
        (CompareOp::Ne, Some(x)) => not(equal(x)),
        (CompareOp::Gt, Some(x)) => scored(ScoreBound::Above(x)),
        (CompareOp::Ge, Some(x)) => scored(ScoreBound::AtLeast(x)),
        (CompareOp::Lt, Some(x)) => {
            and(scored(ScoreBound::Any), not(scored(ScoreBound::AtLeast(x))))
        }
        (CompareOp::Le, Some(x)) => and(scored(ScoreBound::Any), not(scored(ScoreBound::Above(x)))),
    })
}

/// A LIKE pattern that finds `"title"` (as JSON writes it) anywhere in the `cves` text.
fn cve_pattern(title: &str) -> String {
    let quoted = serde_json::to_string(title).unwrap_or_default();
    format!("%{}%", super::filter::escape_like(&quoted))
}

fn rank_of(n: i64) -> i32 {
    i32::try_from(n).unwrap_or(if n < 0 { i32::MIN } else { i32::MAX })
}

fn finding_condition(leaf: &FindingLeaf) -> Condition<findings::table> {
    type T = findings::table;
    match leaf {
        FindingLeaf::Id(t) => test!(T, findings::id, t),
        FindingLeaf::AdvisoryId(t) => test!(T, findings::advisory_id, t),
        FindingLeaf::Category(t) => test!(T, findings::category, t),
        FindingLeaf::Repository(t) => test!(T, findings::repository, t),
        FindingLeaf::ImageDigest(t) => test!(T, findings::image_digest, t),
        FindingLeaf::PackageName(t) => test!(T, findings::package_name, t),
        FindingLeaf::Ecosystem(t) => test!(T, findings::ecosystem, t),
        FindingLeaf::FirstSeen(t) => test!(T, findings::first_seen, t),
        FindingLeaf::LastSeen(t) => test!(T, findings::last_seen, t),
        FindingLeaf::States(states) => states
            .iter()
            .map(|s| s.condition())
            .reduce(|a, b| Box::new(a.or(b)))
            .unwrap_or_else(|| Box::new(false.into_sql::<diesel::sql_types::Bool>())),
        FindingLeaf::Ranks(ranks) => Box::new(findings::severity_rank.eq_any(ranks.clone())),
        FindingLeaf::Patchable(b) => Box::new(findings::patchable.eq(*b)),
        FindingLeaf::Running(b) => {
            let running = findings::image_id.eq_any(
                images::table
                    .filter(images::running.eq(true))
                    .select(images::id),
            );
            if *b {
                Box::new(running)
            } else {
                Box::new(diesel::dsl::not(running))
            }
        }
        FindingLeaf::KnownExploited(true) => exploit_intel::known_exploited_findings(),
        FindingLeaf::KnownExploited(false) => {
            Box::new(diesel::dsl::not(exploit_intel::known_exploited_findings()))
        }
        FindingLeaf::Scored(bound) => exploit_intel::scored_findings(*bound),
        FindingLeaf::Cve(title) => Box::new(
            findings::cves
                .like(cve_pattern(title))
                .escape('\\')
                .or(findings::advisory_id.eq(title.clone())),
        ),
    }
}

impl Listing<Findings> {
    /// All findings (no scope yet) that pass the filter, in order, after the cursor.
    pub fn query(&self) -> findings::BoxedQuery<'static, MultiBackend> {
        let mut query = findings::table.into_boxed();
        if let Some(condition) = self.condition(finding_condition) {
            query = query.filter(condition);
        }
        let after = self.after.clone();
        let id = after.as_ref().map(|c| c.id.clone());
        let key = |c: &Cursor| c.key.clone().unwrap_or(KeyValue::Int(0));
        let d = self.descending;
        match self.key {
            FindingKey::Id => by_id!(query, findings::id, d, id),
            FindingKey::SeverityRank => keyset!(
                query,
                findings::severity_rank,
                findings::id,
                d,
                after.map(|c| (rank_of(key(&c).int()), c.id))
            ),
            FindingKey::Cvss => keyset!(
                query,
                sql::score(findings::cvss3_base, findings::cvss2_base, 0.0),
                findings::id,
                d,
                after.map(|c| (key(&c).float(), c.id))
            ),
            FindingKey::FirstSeen => keyset!(
                query,
                findings::first_seen,
                findings::id,
                d,
                after.map(|c| (key(&c).int(), c.id))
            ),
            FindingKey::LastSeen => keyset!(
                query,
                findings::last_seen,
                findings::id,
                d,
                after.map(|c| (key(&c).int(), c.id))
            ),
            FindingKey::Repository => keyset!(
                query,
                findings::repository,
                findings::id,
                d,
                after.map(|c| (key(&c).text(), c.id))
            ),
            FindingKey::Epss => keyset!(
                query,
                exploit_intel::finding_epss_score(),
                findings::id,
                d,
                after.map(|c| (key(&c).float(), c.id))
            ),
        }
    }
}

/// The sub-assessment listing of a request.
pub fn listing(
    filter: Option<&Expr>,
    order: Option<&OrderBy>,
) -> Result<Listing<Findings>, FilterError> {
    Listing::new(filter, order)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::odata::{CompareOp, parse_filter, parse_orderby};
    use crate::store::filter::check;

    fn error_at<L: List>(filter: &str) -> (usize, String) {
        match check::<L>(filter) {
            Err(FilterError::Filter { position, message }) => (position, message),
            other => panic!("{filter}: {other:?}"),
        }
    }

    #[test]
    fn domain_names_agree() {
        for s in Severity::ALL {
            assert_eq!(shown(s.rank()), s);
        }
    }

    #[test]
    fn severities_become_rank_sets() {
        let ranks = |f: &str| match check::<Findings>(f).unwrap() {
            Node::Leaf(FindingLeaf::Ranks(r)) => r,
            other => panic!("{f}: {other:?}"),
        };
        let s = "properties/status/severity";
        let a = "properties/additionalData/severity";
        assert_eq!(ranks(&format!("{s} eq 'High'")), vec![3, 4]);
        assert_eq!(ranks(&format!("{s} eq 'medium'")), vec![0, 2]);
        assert_eq!(ranks(&format!("{s} ne 'High'")), vec![0, 1, 2]);
        assert_eq!(ranks(&format!("{s} ge 'Medium'")), vec![0, 2, 3, 4]);
        assert_eq!(ranks(&format!("{s} in ('Low', 'High')")), vec![1, 3, 4]);
        assert_eq!(ranks(&format!("{a} eq 'Critical'")), vec![4]);
        assert_eq!(ranks(&format!("{a} gt 'High'")), vec![4]);
        assert_eq!(ranks(&format!("{a} lt 'High'")), vec![0, 1, 2]);
        assert_eq!(
            check::<Findings>(&format!("{s} gt 'High'")).unwrap(),
            Node::Const(false)
        );
        let (position, message) = error_at::<Findings>(&format!("{s} eq 'Critical'"));
        assert_eq!(position, 30);
        assert!(message.contains("use Low, Medium, High"), "{message}");
        let (position, message) = error_at::<Findings>(&format!("{a} eq 'Huge'"));
        assert_eq!(position, 38, "{message}");
    }

    #[test]
    fn status_code_and_flags_fold_to_what_rows_can_hold() {
        let c = "properties/status/code";
        assert_eq!(
            check::<Findings>(&format!("{c} eq 'Unhealthy'")).unwrap(),
            Node::Leaf(FindingLeaf::States(vec![FindingState::Vulnerable]))
        );
        assert_eq!(
            check::<Findings>(&format!("{c} ne 'Unhealthy'")).unwrap(),
            Node::Leaf(FindingLeaf::States(vec![
                FindingState::Resolved,
                FindingState::Exempt
            ]))
        );
        assert_eq!(
            check::<Findings>(&format!("{c} eq 'NotApplicable'")).unwrap(),
            Node::Leaf(FindingLeaf::States(vec![FindingState::Exempt]))
        );
        assert_eq!(
            check::<Findings>("properties/status/cause eq 'Exempt'").unwrap(),
            Node::Leaf(FindingLeaf::States(vec![FindingState::Exempt]))
        );

        let p = "properties/additionalData/patchable";
        assert_eq!(
            check::<Findings>(&format!("{p} ne true")).unwrap(),
            Node::Leaf(FindingLeaf::Patchable(false))
        );
        assert_eq!(
            check::<Findings>(&format!("{p} in (true, false)")).unwrap(),
            Node::Const(true)
        );
    }

    #[test]
    fn values_are_typed() {
        let t = "properties/additionalData/firstSeen";
        assert_eq!(
            check::<Findings>(&format!("{t} ge 2026-11-01T00:00:00Z")).unwrap(),
            Node::Leaf(FindingLeaf::FirstSeen(Test::Compare(
                CompareOp::Ge,
                1_793_491_200_000_000
            )))
        );
        assert_eq!(
            check::<Findings>(&format!("{t} ge '2026-11-01T00:00:00Z'")).unwrap(),
            check::<Findings>(&format!("{t} ge 2026-11-01T00:00:00Z")).unwrap(),
        );
        for (filter, position, says) in [
            (
                "properties/foo eq 1",
                0,
                "unknown property 'properties/foo' at position 0; known: name, properties/id",
            ),
            (
                "name eq 'a' and properties/foo eq 1",
                16,
                "unknown property",
            ),
            (
                "properties/additionalData/patchable eq 'yes'",
                39,
                "cannot compare properties/additionalData/patchable (a boolean) with a string",
            ),
            (
                "properties/additionalData/patchable gt true",
                39,
                "'gt' does not apply",
            ),
            (
                "properties/category eq true",
                23,
                "(a string) with a boolean",
            ),
            (
                "properties/category gt null",
                23,
                "null can only be compared with eq or ne",
            ),
            (
                "properties/additionalData/lastSeen lt 5",
                38,
                "(a date-time) with a number",
            ),
            (
                "properties/additionalData/lastSeen lt 'soon'",
                38,
                "'soon' is not a date-time",
            ),
            (
                "properties/additionalData/cveId gt 'CVE-1'",
                35,
                "'gt' does not apply",
            ),
            (
                "properties/additionalData/knownExploited eq true",
                44,
                "cannot compare properties/additionalData/knownExploited (null or not) with a boolean",
            ),
            (
                "properties/additionalData/knownExploited in (null)",
                45,
                "use eq null or ne null",
            ),
            (
                "properties/additionalData/epss/score gt 'high'",
                40,
                "(a number) with a string",
            ),
            (
                "properties/additionalData/epss/score ge null",
                40,
                "null can only be compared with eq or ne",
            ),
            (
                "properties/status/code lt 'Healthy'",
                26,
                "'lt' does not apply",
            ),
            (
                "properties/status/code eq 'Broken'",
                26,
                "use Unhealthy, Healthy, NotApplicable",
            ),
        ] {
            let (at, message) = error_at::<Findings>(filter);
            assert_eq!(at, position, "{filter}: {message}");
            assert!(message.contains(says), "{filter}: {message}");
            assert!(
                message.contains(&format!("at position {position}")),
                "{filter}: {message}"
            );
        }
    }

    #[test]
    fn tokens_belong_to_one_listing() {
        let filter = parse_filter("properties/category eq 'Debian'").unwrap();
        let asc = parse_orderby("properties/additionalData/cvss").unwrap();
        let desc = parse_orderby("properties/additionalData/cvss desc").unwrap();
        let listing = super::listing(Some(&filter), Some(&asc)).unwrap();
        assert_eq!(listing.token_len(), 3);
        let token = vec![
            listing.fingerprint.clone(),
            "7.5".to_owned(),
            "id-1".to_owned(),
        ];
        let resumed = listing.clone().after(&token).unwrap();
        assert_eq!(
            resumed.after,
            Some(Cursor {
                key: Some(KeyValue::Float(7.5)),
                id: "id-1".to_owned()
            })
        );
        let other = super::listing(Some(&filter), Some(&desc)).unwrap();
        assert_eq!(other.after(&token).err(), Some(FilterError::SkipToken));
        let unfiltered = super::listing(None, Some(&asc)).unwrap();
        assert_eq!(unfiltered.after(&token).err(), Some(FilterError::SkipToken));
        let bad_key = vec![
            listing.fingerprint.clone(),
            "x".to_owned(),
            "id-1".to_owned(),
        ];
        assert_eq!(
            listing.clone().after(&bad_key).err(),
            Some(FilterError::SkipToken)
        );
        assert_eq!(super::listing(None, None).unwrap().token_len(), 2);
        let unknown = parse_orderby("properties/category").unwrap();
        assert!(matches!(
            super::listing(None, Some(&unknown)),
            Err(FilterError::OrderBy { position: 0, .. })
        ));
    }

    #[test]
    fn cve_patterns_escape_like_wildcards() {
        assert_eq!(cve_pattern("CVE-2023-1234"), "%\"CVE-2023-1234\"%");
        assert_eq!(cve_pattern("a%b_c\\"), "%\"a\\%b\\_c\\\\\\\\\"%");
    }
}
