//! Rows of `pricings`: the Defender plan a subscription set, with who set it and when. A
//! subscription without a row is on the default tier (`jobs::pricings::DEFAULT_TIER`).

use diesel::prelude::*;
use diesel::upsert::excluded;

use super::AnyConnection;
use super::schema::{pricings, registries};

#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, Insertable)]
#[diesel(table_name = pricings)]
pub struct PricingRow {
    pub subscription_id: String,
    /// The plan's stored name (`Containers`).
    pub plan: String,
    /// `Free` or `Standard`.
    pub pricing_tier: String,
    /// When the tier was last set to Standard; none while Free.
    pub enablement_time: Option<i64>,
    /// The caller (token subject) that last changed it.
    pub changed_by: String,
    pub changed_at: i64,
}

pub fn get(
    conn: &mut AnyConnection,
    subscription: &str,
    plan: &str,
) -> QueryResult<Option<PricingRow>> {
    pricings::table
        .find((subscription, plan))
        .select(PricingRow::as_select())
        .first(conn)
        .optional()
}

/// Writes the row, replacing the subscription's earlier one for the plan.
pub fn put(conn: &mut AnyConnection, row: &PricingRow) -> QueryResult<()> {
    on_each_backend!(conn, c => diesel::insert_into(pricings::table)
        .values(row)
        .on_conflict((pricings::subscription_id, pricings::plan))
        .do_update()
        .set((
            pricings::pricing_tier.eq(excluded(pricings::pricing_tier)),
            pricings::enablement_time.eq(excluded(pricings::enablement_time)),
            pricings::changed_by.eq(excluded(pricings::changed_by)),
            pricings::changed_at.eq(excluded(pricings::changed_at)),
        ))
        .execute(c))
    .map(drop)
}

/// The rows of these subscriptions (every plan), by subscription then plan. Subscriptions on the
/// default tier have none.
pub fn list(conn: &mut AnyConnection, subscriptions: &[String]) -> QueryResult<Vec<PricingRow>> {
    let mut rows = Vec::new();
    for chunk in subscriptions.chunks(1000) {
        rows.extend(
            pricings::table
                .filter(pricings::subscription_id.eq_any(chunk))
                .select(PricingRow::as_select())
                .order((pricings::subscription_id.asc(), pricings::plan.asc()))
                .load(conn)?,
        );
    }
    rows.sort_by(|a, b| (&a.subscription_id, &a.plan).cmp(&(&b.subscription_id, &b.plan)));
    Ok(rows)
}

/// Every subscription Crowsnest knows of: those with a registry or a stored plan, sorted.
pub fn subscriptions(conn: &mut AnyConnection) -> QueryResult<Vec<String>> {
    let mut known: Vec<String> = registries::table
        .select(registries::subscription_id)
        .distinct()
        .load(conn)?;
    known.extend(
        pricings::table
            .select(pricings::subscription_id)
            .distinct()
            .load::<String>(conn)?,
    );
    known.sort();
    known.dedup();
    Ok(known)
}
