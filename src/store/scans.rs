//! The durable scan queue: leases with expiry, one pending scan per image, and every state change
//! conditional on still holding the lease. Also the scan list's `$filter` properties and keyset
//! query (see `store::filter`).

use diesel::prelude::*;
use diesel::sql_types::{BigInt, Text};

use super::filter::{
    Condition, FilterError, KeyType, KeyValue, Kind, List, Listing, NULL_TIME, Property, Test,
    by_id, keyset, nullable_test, sql, test,
};
use super::schema::scans;
use super::{AnyConnection, MultiBackend};
use crate::domain::odata::{Expr, OrderBy};
use crate::domain::{ScanStatus, ScanTrigger};

#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Insertable)]
#[diesel(table_name = scans)]
pub struct ScanRow {
    pub id: String,
    pub subscription_id: String,
    pub registry_id: String,
    pub repository: String,
    pub tag: Option<String>,
    pub digest: Option<String>,
    pub triggered_by: String,
    pub status: String,
    pub attempts: i32,
    pub run_after: i64,
    pub lease_owner: Option<String>,
    pub lease_until: Option<i64>,
    pub pending_key: Option<String>,
    pub idempotency_key: Option<String>,
    pub error_code: Option<String>,
    pub error_message: Option<String>,
    /// JSON (see `domain::Summary`).
    pub summary: Option<String>,
    pub created_at: i64,
    pub started_at: Option<i64>,
    pub finished_at: Option<i64>,
    /// The claim order (see `ScanTrigger::priority`).
    pub priority: i32,
}

/// The image a new scan is of: a repository of a connected registry, by digest or by tag.
#[derive(Debug, Clone, Copy)]
pub struct ScanTarget<'a> {
    pub subscription_id: &'a str,
    pub registry_id: &'a str,
    pub repository: &'a str,
    pub digest: Option<&'a str>,
    pub tag: Option<&'a str>,
}

impl ScanRow {
    /// A scan of `target`, queued now and due at once; it stands for the image's pending scan.
    pub fn queued(target: ScanTarget<'_>, trigger: ScanTrigger, now: i64) -> Self {
        Self {
            id: super::new_ordered_id(),
            subscription_id: target.subscription_id.to_owned(),
            registry_id: target.registry_id.to_owned(),
            repository: target.repository.to_owned(),
            tag: target.tag.map(str::to_owned),
            digest: target.digest.map(str::to_owned),
            triggered_by: trigger.as_str().to_owned(),
            status: ScanStatus::Queued.as_str().to_owned(),
            attempts: 0,
            run_after: now,
            lease_owner: None,
            lease_until: None,
            pending_key: Some(pending_key(
                target.registry_id,
                target.repository,
                target.digest,
                target.tag,
            )),
            idempotency_key: None,
            error_code: None,
            error_message: None,
            summary: None,
            created_at: now,
            started_at: None,
            finished_at: None,
            priority: trigger.priority(),
        }
    }

    /// Why the scan was queued; a value this version does not know reads as `Api`.
    pub fn trigger(&self) -> ScanTrigger {
        ScanTrigger::parse(&self.triggered_by).unwrap_or(ScanTrigger::Api)
    }
}

/// The key that keeps one pending scan per image: by digest when it is known, else by tag
/// (no part can hold a space, so the key is unambiguous).
pub fn pending_key(
    registry_id: &str,
    repository: &str,
    digest: Option<&str>,
    tag: Option<&str>,
) -> String {
    match (digest, tag) {
        (Some(digest), _) => format!("{registry_id} {repository} {digest}"),
        (None, Some(tag)) => format!("{registry_id} {repository} tag:{tag}"),
        (None, None) => format!("{registry_id} {repository}"),
    }
}

pub fn find(
    conn: &mut AnyConnection,
    subscription: &str,
    id: &str,
) -> QueryResult<Option<ScanRow>> {
    scans::table
        .filter(scans::subscription_id.eq(subscription))
        .filter(scans::id.eq(id))
        .select(ScanRow::as_select())
        .first(conn)
        .optional()
}

fn find_by_idempotency_key(
    conn: &mut AnyConnection,
    subscription: &str,
    key: &str,
) -> QueryResult<Option<ScanRow>> {
    scans::table
        .filter(scans::subscription_id.eq(subscription))
        .filter(scans::idempotency_key.eq(key))
        .select(ScanRow::as_select())
        .first(conn)
        .optional()
}

fn find_pending(conn: &mut AnyConnection, key: &str) -> QueryResult<Option<ScanRow>> {
    scans::table
        .filter(scans::pending_key.eq(key))
        .select(ScanRow::as_select())
        .first(conn)
        .optional()
}

/// Queues `row` unless a scan with its idempotency key, or a pending scan of the same image,
/// already exists; returns the scan that stands and whether it is the new one.
pub fn enqueue(conn: &mut AnyConnection, row: &ScanRow) -> QueryResult<(ScanRow, bool)> {
    // A pending scan can finish between the failed insert and the look-up: try again then.
    for _ in 0..3 {
        if let Some(key) = &row.idempotency_key
            && let Some(first) = find_by_idempotency_key(conn, &row.subscription_id, key)?
        {
            return Ok((first, false));
        }
        let inserted = on_each_backend!(conn, c => diesel::insert_into(scans::table)
            .values(row)
            .on_conflict_do_nothing()
            .execute(c))?;
        if inserted == 1 {
            super::wakeups::notify_scans_queued(conn)?;
            return Ok((row.clone(), true));
        }
        if let Some(pending) = row.pending_key.as_deref()
            && let Some(existing) = find_pending(conn, pending)?
        {
            return Ok((existing, false));
        }
    }
    Err(diesel::result::Error::RollbackTransaction)
}

/// Queues many scans at once, skipping images that already have one pending; returns how many
/// were queued.
pub fn enqueue_many(conn: &mut AnyConnection, rows: &[ScanRow]) -> QueryResult<usize> {
    let mut queued = 0;
    match conn {
        AnyConnection::Postgresql(c) => {
            for chunk in rows.chunks(200) {
                queued += diesel::insert_into(scans::table)
                    .values(chunk)
                    .on_conflict_do_nothing()
                    .execute(c)?;
            }
        }
        // diesel has no multi-row INSERT … ON CONFLICT for SQLite; one statement each is cheap there.
        AnyConnection::Sqlite(c) => {
            for row in rows {
                queued += diesel::insert_into(scans::table)
                    .values(row)
                    .on_conflict_do_nothing()
                    .execute(c)?;
            }
        }
    }
    if queued > 0 {
        super::wakeups::notify_scans_queued(conn)?;
    }
    Ok(queued)
}

/// Which of these pending keys a Queued or Running scan holds.
pub fn pending_of(
    conn: &mut AnyConnection,
    keys: &[String],
) -> QueryResult<std::collections::HashSet<String>> {
    let mut held = std::collections::HashSet::new();
    for chunk in keys.chunks(1000) {
        held.extend(
            scans::table
                .filter(scans::pending_key.eq_any(chunk))
                .select(scans::pending_key.assume_not_null())
                .load::<String>(conn)?,
        );
    }
    Ok(held)
}

/// A subscription's scans (of `trigger`, or all) that are queued and were never started.
pub fn unstarted(
    conn: &mut AnyConnection,
    subscription: &str,
    trigger: Option<ScanTrigger>,
) -> QueryResult<Vec<ScanRow>> {
    let mut query = scans::table
        .filter(scans::subscription_id.eq(subscription))
        .filter(scans::status.eq("Queued"))
        .filter(scans::attempts.eq(0))
        .select(ScanRow::as_select())
        .into_boxed();
    if let Some(trigger) = trigger {
        query = query.filter(scans::triggered_by.eq(trigger.as_str()));
    }
    query.load(conn)
}

/// Fails the scans of `ids` that are still queued and were never started, with `code`; returns
/// how many.
pub fn cancel(
    conn: &mut AnyConnection,
    ids: &[String],
    now: i64,
    code: &str,
    message: &str,
) -> QueryResult<usize> {
    let mut cancelled = 0;
    for chunk in ids.chunks(1000) {
        cancelled += diesel::update(
            scans::table
                .filter(scans::id.eq_any(chunk))
                .filter(scans::status.eq("Queued"))
                .filter(scans::attempts.eq(0)),
        )
        .set((
            scans::status.eq("Failed"),
            scans::error_code.eq(code),
            scans::error_message.eq(message),
            scans::pending_key.eq(None::<String>),
            scans::finished_at.eq(now),
        ))
        .execute(conn)?;
    }
    Ok(cancelled)
}

/// One page of a subscription's scans: those `listing` keeps, in its order, after its skip token.
pub fn list(
    conn: &mut AnyConnection,
    subscription: &str,
    listing: &Listing<Scans>,
    limit: i64,
) -> QueryResult<Vec<ScanRow>> {
    listing
        .query()
        .filter(scans::subscription_id.eq(subscription))
        .select(ScanRow::as_select())
        .limit(limit)
        .load(conn)
}

#[derive(QueryableByName)]
struct ClaimedId {
    #[diesel(sql_type = Text)]
    id: String,
}

// Each claim is one statement: the sub-select picks due scans and the update takes them;
// PostgreSQL skips rows another worker is taking at that moment. Scans whose lease ran out come
// first (there are few, and they must not wait behind a long queue), then queued scans by
// priority and due time. Each condition is served by an index (the partial one on running scans'
// lease_until, then (status, priority, run_after)) without sorting the queue. `{now}` is now,
// `{owner}` the claiming worker, `{cap}` how many workers one subscription may hold.
// A scan taken over was admitted under its cap once already, and re-assessments are not capped;
// there `{cap}` (never below 1) is only named so that every claim binds the same parameters.
const EXPIRED: (&str, &str) = (
    "status = 'Running' AND lease_until < {now} AND {cap} > 0",
    "lease_until",
);
const QUEUED: (&str, &str) = (
    "status = 'Queued' AND run_after <= {now} \
     AND (triggered_by IN ('Rescan', 'AdvisoryUpdate') OR {fair})",
    "priority, run_after",
);
const QUEUED_REASSESSMENTS: (&str, &str) = (
    "status = 'Queued' AND run_after <= {now} AND triggered_by IN ('Rescan', 'AdvisoryUpdate') \
     AND {cap} > 0",
    "priority, run_after",
);
// A subscription's share: the workers (of any process) holding a live lease on one of its scans,
// counted against the scans that pull from a registry (Push, Api, Runtime), which can hold a
// worker for as long as a slow registry takes. Re-assessments re-match stored inventories in
// batches of a few milliseconds per image and come after every pull in priority: they are not
// capped, so an installation with one subscription rescans with all its workers.
// this one aside (a re-assessment batch is one worker). The subscriptions at their cap are read
// once per claim from the running scans (the partial index on lease_until) and passed over: one
// subscription's backlog leaves the other workers to the others. Skipping a capped backlog costs
// a hash probe per queued row (about 9 ms for 20,000 on PostgreSQL).
const FAIR: &str = "q.subscription_id NOT IN (SELECT r.subscription_id FROM scans r \
     WHERE r.status = 'Running' AND r.lease_owner <> {owner} AND r.lease_until >= {now} \
     GROUP BY r.subscription_id HAVING count(DISTINCT r.lease_owner) >= {cap})";

fn claim_sql(postgres: bool, (due, order): (&str, &str)) -> String {
    let (p, lock) = if postgres {
        ("$", " FOR UPDATE SKIP LOCKED")
    } else {
        ("?", "")
    };
    let due = due
        .replace("{fair}", FAIR)
        .replace("{owner}", &format!("{p}1"))
        .replace("{now}", &format!("{p}3"))
        .replace("{cap}", &format!("{p}5"));
    format!(
        "UPDATE scans SET status = 'Running', lease_owner = {p}1, lease_until = {p}2, \
         attempts = attempts + 1, started_at = {p}3 \
         WHERE id IN (SELECT id FROM scans q WHERE {due} ORDER BY {order} LIMIT {p}4{lock}) \
         RETURNING id",
    )
}

/// Who claims, when, and how much one subscription may hold.
#[derive(Debug, Clone, Copy)]
pub struct Claimant<'a> {
    pub owner: &'a str,
    pub now: i64,
    pub lease_until: i64,
    /// Workers one subscription's scans may hold at once, across processes.
    pub subscription_cap: i64,
}

// Distinguishes the claim's advisory lock from the migrations'.
const CLAIM_LOCK: i64 = 0x6372_6f77_7371_7565;

/// Leases up to `limit` scans matching `due` to the claimant, in claim order.
fn claim_where(
    conn: &mut AnyConnection,
    due: (&str, &str),
    who: Claimant<'_>,
    limit: i64,
) -> QueryResult<Vec<ScanRow>> {
    let sql = claim_sql(matches!(conn, AnyConnection::Postgresql(_)), due);
    let claimed: Vec<ClaimedId> = match conn {
        // Claims take turns: two workers of different processes cannot both count a subscription
        // below its cap and both take a scan of it. A claim is one short statement.
        AnyConnection::Postgresql(c) => c.transaction(|c| {
            diesel::sql_query("SELECT pg_advisory_xact_lock($1)")
                .bind::<BigInt, _>(CLAIM_LOCK)
                .execute(c)?;
            diesel::sql_query(&sql)
                .bind::<Text, _>(who.owner)
                .bind::<BigInt, _>(who.lease_until)
                .bind::<BigInt, _>(who.now)
                .bind::<BigInt, _>(limit)
                .bind::<BigInt, _>(who.subscription_cap)
                .load(c)
        })?,
        // SQLite runs one writing statement at a time: the count and the update agree.
        AnyConnection::Sqlite(c) => diesel::sql_query(&sql)
            .bind::<Text, _>(who.owner)
            .bind::<BigInt, _>(who.lease_until)
            .bind::<BigInt, _>(who.now)
            .bind::<BigInt, _>(limit)
            .bind::<BigInt, _>(who.subscription_cap)
            .load(c)?,
    };
    if claimed.is_empty() {
        return Ok(Vec::new());
    }
    let ids: Vec<String> = claimed.into_iter().map(|c| c.id).collect();
    let mut rows: Vec<ScanRow> = scans::table
        .filter(scans::id.eq_any(&ids))
        .select(ScanRow::as_select())
        .load(conn)?;
    rows.sort_by_key(|r| (r.priority, r.run_after));
    Ok(rows)
}

/// Leases the next scan to the claimant: one whose lease ran out, else the first queued one (by
/// priority, then due time) of a subscription below its cap.
pub fn claim(conn: &mut AnyConnection, who: Claimant<'_>) -> QueryResult<Option<ScanRow>> {
    for due in [EXPIRED, QUEUED] {
        if let Some(scan) = claim_where(conn, due, who, 1)?.pop() {
            return Ok(Some(scan));
        }
    }
    Ok(None)
}

/// Leases up to `limit` queued re-assessments (`Rescan`, `AdvisoryUpdate`) that are due, in claim
/// order: they re-match stored inventories, quick enough to run and store together.
pub fn claim_reassessments(
    conn: &mut AnyConnection,
    who: Claimant<'_>,
    limit: i64,
) -> QueryResult<Vec<ScanRow>> {
    claim_where(conn, QUEUED_REASSESSMENTS, who, limit)
}

type Leased<'a> = diesel::helper_types::Filter<
    diesel::helper_types::Filter<
        diesel::helper_types::Find<scans::table, &'a str>,
        diesel::helper_types::Eq<scans::lease_owner, &'a str>,
    >,
    diesel::helper_types::Eq<scans::status, &'static str>,
>;

/// The scan, while `owner` holds its lease.
fn leased<'a>(id: &'a str, owner: &'a str) -> Leased<'a> {
    scans::table
        .find(id)
        .filter(scans::lease_owner.eq(owner))
        .filter(scans::status.eq("Running"))
}

/// The scans of `ids` that `owner` still holds.
fn all_held(
    ids: &[String],
    owner: &str,
) -> Box<
    dyn BoxableExpression<
            scans::table,
            MultiBackend,
            SqlType = diesel::sql_types::Nullable<diesel::sql_types::Bool>,
        >,
> {
    Box::new(
        scans::id
            .eq_any(ids.to_vec())
            .and(scans::lease_owner.eq(owner.to_owned()))
            .and(scans::status.eq("Running")),
    )
}

/// Extends the leases of `ids`; false unless this owner still holds every one of them.
pub fn renew(
    conn: &mut AnyConnection,
    ids: &[String],
    owner: &str,
    lease_until: i64,
) -> QueryResult<bool> {
    diesel::update(scans::table.filter(all_held(ids, owner)))
        .set(scans::lease_until.eq(lease_until))
        .execute(conn)
        .map(|n| n == ids.len())
}

/// Writes to the scans of `ids` without changing them (no index moves); false unless this owner
/// still holds every one of them. A transaction that starts with it takes SQLite's write lock at
/// once and learns early whether its leases are still held.
pub fn hold(conn: &mut AnyConnection, ids: &[String], owner: &str) -> QueryResult<bool> {
    diesel::update(scans::table.filter(all_held(ids, owner)))
        .set(scans::lease_owner.eq(owner))
        .execute(conn)
        .map(|n| n == ids.len())
}

/// How a leased scan ends.
#[derive(Debug, Clone)]
pub enum Outcome {
    Succeeded {
        digest: Option<String>,
        summary: String,
    },
    Failed {
        code: String,
        message: String,
    },
    /// Back to the queue, due again at `run_after`; the error is kept for the record.
    Retry {
        run_after: i64,
        code: String,
        message: String,
    },
}

/// Ends (or requeues) a scan this owner holds; false when the lease is lost, and then nothing is
/// written. Run it in the transaction that stores the scan's results.
pub fn finish(
    conn: &mut AnyConnection,
    id: &str,
    owner: &str,
    now: i64,
    outcome: &Outcome,
) -> QueryResult<bool> {
    let target = leased(id, owner);
    let n = match outcome {
        Outcome::Succeeded { digest, summary } => diesel::update(target)
            .set((
                scans::status.eq("Succeeded"),
                scans::digest.eq(digest),
                scans::summary.eq(summary),
                scans::error_code.eq(None::<String>),
                scans::error_message.eq(None::<String>),
                scans::pending_key.eq(None::<String>),
                scans::lease_owner.eq(None::<String>),
                scans::lease_until.eq(None::<i64>),
                scans::finished_at.eq(now),
            ))
            .execute(conn)?,
        Outcome::Failed { code, message } => diesel::update(target)
            .set((
                scans::status.eq("Failed"),
                scans::error_code.eq(code),
                scans::error_message.eq(message),
                scans::pending_key.eq(None::<String>),
                scans::lease_owner.eq(None::<String>),
                scans::lease_until.eq(None::<i64>),
                scans::finished_at.eq(now),
            ))
            .execute(conn)?,
        Outcome::Retry {
            run_after,
            code,
            message,
        } => diesel::update(target)
            .set((
                scans::status.eq("Queued"),
                scans::run_after.eq(run_after),
                scans::error_code.eq(code),
                scans::error_message.eq(message),
                scans::lease_owner.eq(None::<String>),
                scans::lease_until.eq(None::<i64>),
            ))
            .execute(conn)?,
    };
    Ok(n == 1)
}

/// Fails the queued scans of an image that was deleted from its registry.
pub fn cancel_queued(
    conn: &mut AnyConnection,
    key: &str,
    now: i64,
    message: &str,
) -> QueryResult<usize> {
    diesel::update(
        scans::table
            .filter(scans::pending_key.eq(key))
            .filter(scans::status.eq("Queued")),
    )
    .set((
        scans::status.eq("Failed"),
        scans::error_code.eq("ImageDeleted"),
        scans::error_message.eq(message),
        scans::pending_key.eq(None::<String>),
        scans::finished_at.eq(now),
    ))
    .execute(conn)
}

// ---------------------------------------------------------------------------------------------
// The scan list: its `$filter` properties, sort keys and keyset query

/// A subscription's scans.
#[derive(Debug, Clone, Copy)]
pub struct Scans;

#[derive(Debug, Clone, PartialEq)]
pub enum ScanLeaf {
    Id(Test<String>),
    Status(Vec<String>),
    Trigger(Vec<String>),
    Repository(Test<String>),
    Digest(Test<String>),
    Tag(Test<String>),
    CreatedAt(Test<i64>),
    FinishedAt(Test<i64>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScanKey {
    /// Ids are UUID v7: id order is submission order.
    Id,
    FinishedAt,
}

/// `ScanStatus` and `ScanTrigger` names (a test checks they agree).
const SCAN_STATUSES: &[&str] = &["Queued", "Running", "Succeeded", "Failed"];
const SCAN_TRIGGERS: &[&str] = &["Api", "Push", "Rescan", "AdvisoryUpdate", "Runtime"];

impl List for Scans {
    type Row = ScanRow;
    type Leaf = ScanLeaf;
    type Key = ScanKey;
    const NAME: &'static str = "scans";
    const PROPERTIES: &'static [Property<ScanLeaf>] = &[
        Property {
            path: "name",
            kind: Kind::Text(ScanLeaf::Id),
        },
        Property {
            path: "properties/status",
            kind: Kind::Choice(SCAN_STATUSES, ScanLeaf::Status),
        },
        Property {
            path: "properties/trigger",
            kind: Kind::Choice(SCAN_TRIGGERS, ScanLeaf::Trigger),
        },
        Property {
            path: "properties/repository",
            kind: Kind::Text(ScanLeaf::Repository),
        },
        Property {
            path: "properties/digest",
            kind: Kind::Text(ScanLeaf::Digest),
        },
        Property {
            path: "properties/tag",
            kind: Kind::Text(ScanLeaf::Tag),
        },
        Property {
            path: "properties/createdAt",
            kind: Kind::Time(ScanLeaf::CreatedAt),
        },
        Property {
            path: "properties/finishedAt",
            kind: Kind::Time(ScanLeaf::FinishedAt),
        },
    ];
    const KEYS: &'static [(&'static str, ScanKey)] = &[
        ("name", ScanKey::Id),
        ("properties/createdAt", ScanKey::Id),
        ("properties/finishedAt", ScanKey::FinishedAt),
    ];
    const ID: ScanKey = ScanKey::Id;

    fn key_type(key: ScanKey) -> Option<KeyType> {
        match key {
            ScanKey::Id => None,
            ScanKey::FinishedAt => Some(KeyType::Int),
        }
    }

    fn key_value(key: ScanKey, row: &ScanRow) -> Option<KeyValue> {
        match key {
            ScanKey::Id => None,
            ScanKey::FinishedAt => Some(KeyValue::Int(row.finished_at.unwrap_or(NULL_TIME))),
        }
    }

    fn id(row: &ScanRow) -> &str {
        &row.id
    }
}

fn scan_condition(leaf: &ScanLeaf) -> Condition<scans::table> {
    type T = scans::table;
    match leaf {
        ScanLeaf::Id(t) => test!(T, scans::id, t),
        ScanLeaf::Status(names) => Box::new(scans::status.eq_any(names.clone())),
        ScanLeaf::Trigger(names) => Box::new(scans::triggered_by.eq_any(names.clone())),
        ScanLeaf::Repository(t) => test!(T, scans::repository, t),
        ScanLeaf::Digest(t) => nullable_test!(T, scans::digest, t),
        ScanLeaf::Tag(t) => nullable_test!(T, scans::tag, t),
        ScanLeaf::CreatedAt(t) => test!(T, scans::created_at, t),
        ScanLeaf::FinishedAt(t) => nullable_test!(T, scans::finished_at, t),
    }
}

impl Listing<Scans> {
    /// All scans (no subscription yet) that pass the filter, in order, after the cursor.
    pub fn query(&self) -> scans::BoxedQuery<'static, MultiBackend> {
        let mut query = scans::table.into_boxed();
        if let Some(condition) = self.condition(scan_condition) {
            query = query.filter(condition);
        }
        let after = self.after.clone();
        let d = self.descending;
        match self.key {
            ScanKey::Id => by_id!(query, scans::id, d, after.map(|c| c.id)),
            ScanKey::FinishedAt => keyset!(
                query,
                sql::or_else(scans::finished_at, NULL_TIME),
                scans::id,
                d,
                after.map(|c| (c.key.map_or(0, |k| k.int()), c.id))
            ),
        }
    }
}

/// The scan listing of a request.
pub fn listing(
    filter: Option<&Expr>,
    order: Option<&OrderBy>,
) -> Result<Listing<Scans>, FilterError> {
    Listing::new(filter, order)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{ScanStatus, ScanTrigger};
    use crate::store::filter::Node;
    use crate::store::filter::check;

    #[test]
    fn domain_names_agree() {
        assert_eq!(
            SCAN_STATUSES,
            ScanStatus::ALL.map(ScanStatus::as_str).as_slice()
        );
        assert_eq!(
            SCAN_TRIGGERS,
            ScanTrigger::ALL.map(ScanTrigger::as_str).as_slice()
        );
    }

    #[test]
    fn statuses_fold_to_the_names_that_match() {
        assert_eq!(
            check::<Scans>("properties/status ne 'Queued'").unwrap(),
            Node::Leaf(ScanLeaf::Status(vec![
                "Running".into(),
                "Succeeded".into(),
                "Failed".into()
            ]))
        );
    }

    #[test]
    fn values_are_typed() {
        assert_eq!(
            check::<Scans>("properties/tag in ('a', null)").unwrap(),
            Node::Or(
                Box::new(Node::Leaf(ScanLeaf::Tag(Test::In(vec!["a".into()])))),
                Box::new(Node::Leaf(ScanLeaf::Tag(Test::IsNull(true))))
            )
        );
    }
}
