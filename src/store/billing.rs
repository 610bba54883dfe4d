use diesel::prelude::*;

use super::AnyConnection;
use super::schema::billing_records;

#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Insertable)]
#[diesel(table_name = billing_records)]
pub struct BillingRow {
    pub id: String,
    pub subscription_id: String,
    pub digest: String,
    pub registry_id: String,
    pub repository: String,
    pub scan_id: String,
    pub billed_at: i64,
}

/// Writes the record unless the subscription was already billed for the digest; true when written.
pub fn bill_once(conn: &mut AnyConnection, row: &BillingRow) -> QueryResult<bool> {
    let written = on_each_backend!(conn, c => diesel::insert_into(billing_records::table)
        .values(row)
        .on_conflict_do_nothing()
        .execute(c))?;
    Ok(written == 1)
}

/// A subscription's records billed in `[from, to)`, oldest first, after the `(billed_at, id)` cursor.
pub fn list(
    conn: &mut AnyConnection,
    subscription: &str,
    from: i64,
    to: i64,
    after: Option<(i64, &str)>,
    limit: i64,
) -> QueryResult<Vec<BillingRow>> {
    let mut query = billing_records::table
        .filter(billing_records::subscription_id.eq(subscription))
        .filter(billing_records::billed_at.ge(from))
        .filter(billing_records::billed_at.lt(to))
        .select(BillingRow::as_select())
        .order((billing_records::billed_at.asc(), billing_records::id.asc()))
        .limit(limit)
        .into_boxed();
    if let Some((at, id)) = after {
        query = query.filter(
            billing_records::billed_at
                .gt(at)
                .or(billing_records::billed_at
                    .eq(at)
                    .and(billing_records::id.gt(id))),
        );
    }
    query.load(conn)
}

pub fn count(conn: &mut AnyConnection, subscription: &str, from: i64, to: i64) -> QueryResult<i64> {
    billing_records::table
        .filter(billing_records::subscription_id.eq(subscription))
        .filter(billing_records::billed_at.ge(from))
        .filter(billing_records::billed_at.lt(to))
        .count()
        .get_result(conn)
}
