//! The Defender plan per subscription and what it decides. On Standard (the default) a
//! subscription's images are scanned and billed as everywhere else; on Free its registry pushes
//! are recorded (image rows, tags, events) with the cause `PlanDisabled` but queue no scan, cluster
//! reports queue none, scan submissions are refused, and re-assessments (the daily rescan, the
//! re-matches after imports, ratings or aged data) pass its images over. Nothing unscanned is
//! billed, since billing happens when a scan is stored.
//!
//! A change of tier acts in its own transaction: to Free, the subscription's scans not yet
//! started are cancelled and its unscanned images take the cause `PlanDisabled`; to Standard,
//! the images recorded while Free and never assessed are queued (as pushes) and go back to
//! `NotScanned`. A scan already started (running, or waiting for a retry) when the plan goes Free
//! finishes and is billed. Images assessed while Standard keep their last assessment, unrefreshed.
//!
//! Decisions:
//! - The default tier of a subscription without a row is Standard, fixed: a self-hosted scanner is
//!   installed to scan, and a subscription is no entity here (it exists through its registries),
//!   so there is no moment to apply a configured default at; a subscription that should start Free
//!   is set Free before its registry is connected.
//! - `ContainerRegistry`, Azure's deprecated plan replaced by `Containers`, is the same state under
//!   its old name: reading it shows the Containers tier, writing it sets it.
//! - Index pushes while Free record nothing but the event (their children have no rows), so a
//!   switch to Standard does not scan them; their next push does.

use std::collections::HashSet;

use crate::domain::{PricingPlan, PricingTier, ScanTrigger, Timestamp, health_cause};
use crate::store::pricings::PricingRow;
use crate::store::scans::{ScanRow, ScanTarget};
use crate::store::{self, AnyConnection};

/// The tier of a subscription that never set one.
pub const DEFAULT_TIER: PricingTier = PricingTier::Standard;

/// What a cancelled scan says when its subscription's plan went Free.
const CANCELLED: &str = "The subscription's Defender plan (Containers) was set to Free.";

/// A subscription's plan as it stands: its stored row, or the default.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pricing {
    pub tier: PricingTier,
    /// When the tier was last set to Standard (microseconds); none while Free or on the default.
    pub enablement_time: Option<i64>,
    /// Whether a row was stored (false: the default applies).
    pub stored: bool,
}

impl Pricing {
    fn of(row: Option<&PricingRow>) -> Self {
        match row {
            Some(row) => Self {
                tier: PricingTier::parse(&row.pricing_tier).unwrap_or(DEFAULT_TIER),
                enablement_time: row.enablement_time,
                stored: true,
            },
            None => Self {
                tier: DEFAULT_TIER,
                enablement_time: None,
                stored: false,
            },
        }
    }
}

/// What a change of tier did.
#[derive(Debug, Clone)]
pub struct Change {
    pub pricing: Pricing,
    /// No row stood before (the subscription was on the default).
    pub created: bool,
    /// Images recorded while Free now queued for a scan.
    pub scans_queued: usize,
    /// Scans not yet started cancelled by a switch to Free.
    pub scans_cancelled: usize,
}

pub fn get(conn: &mut AnyConnection, subscription: &str) -> diesel::QueryResult<Pricing> {
    let row = store::pricings::get(conn, subscription, PricingPlan::STORED.as_str())?;
    Ok(Pricing::of(row.as_ref()))
}

/// Whether the subscription's images are scanned now.
pub fn scans(conn: &mut AnyConnection, subscription: &str) -> diesel::QueryResult<bool> {
    Ok(get(conn, subscription)?.tier == PricingTier::Standard)
}

/// The plan of each of `subscriptions` as it stands (its row, or the default), in their order:
/// what a `microsoft.security/pricings` row of Resource Graph shows too.
pub fn of_subscriptions(
    conn: &mut AnyConnection,
    subscriptions: &[String],
) -> diesel::QueryResult<Vec<(String, Pricing)>> {
    let rows = store::pricings::list(conn, subscriptions)?;
    Ok(subscriptions
        .iter()
        .map(|sub| {
            let row = rows
                .iter()
                .find(|r| &r.subscription_id == sub && r.plan == PricingPlan::STORED.as_str());
            (sub.clone(), Pricing::of(row))
        })
        .collect())
}

/// Those of `subscriptions` whose plan is Free.
pub fn free_among<'a>(
    conn: &mut AnyConnection,
    subscriptions: impl IntoIterator<Item = &'a str>,
) -> diesel::QueryResult<HashSet<String>> {
    let distinct: HashSet<&str> = subscriptions.into_iter().collect();
    let listed: Vec<String> = distinct.into_iter().map(str::to_owned).collect();
    Ok(of_subscriptions(conn, &listed)?
        .into_iter()
        .filter(|(_, pricing)| pricing.tier == PricingTier::Free)
        .map(|(sub, _)| sub)
        .collect())
}

/// Sets a subscription's tier on behalf of `by`, with what the change means, in the caller's
/// transaction; call the queue's `wake` after it commits when scans were queued.
pub fn set(
    conn: &mut AnyConnection,
    subscription: &str,
    tier: PricingTier,
    by: &str,
) -> diesel::QueryResult<Change> {
    store::lock_pricing(conn, subscription, true)?;
    let now = Timestamp::now().micros();
    let before = get(conn, subscription)?;
    let enablement_time = match (tier, before.tier) {
        (PricingTier::Free, _) => None,
        // Set to Standard again: the last time it was set is still the first.
        (PricingTier::Standard, PricingTier::Standard) => before.enablement_time.or(Some(now)),
        (PricingTier::Standard, PricingTier::Free) => Some(now),
    };
    store::pricings::put(
        conn,
        &PricingRow {
            subscription_id: subscription.to_owned(),
            plan: PricingPlan::STORED.as_str().to_owned(),
            pricing_tier: tier.as_str().to_owned(),
            enablement_time,
            changed_by: by.to_owned(),
            changed_at: now,
        },
    )?;
    let (mut scans_queued, mut scans_cancelled) = (0, 0);
    match (before.tier, tier) {
        (PricingTier::Standard, PricingTier::Free) => {
            let unstarted: Vec<String> = store::scans::unstarted(conn, subscription, None)?
                .into_iter()
                .map(|s| s.id)
                .collect();
            scans_cancelled = store::scans::cancel(
                conn,
                &unstarted,
                now,
                health_cause::PLAN_DISABLED,
                CANCELLED,
            )?;
            store::images::recause_unscanned(
                conn,
                subscription,
                health_cause::NOT_SCANNED,
                health_cause::PLAN_DISABLED,
            )?;
        }
        (PricingTier::Free, PricingTier::Standard) => {
            let recorded = store::images::unscanned_with_cause(
                conn,
                subscription,
                health_cause::PLAN_DISABLED,
            )?;
            let scans: Vec<ScanRow> = recorded
                .iter()
                .map(|image| {
                    let target = ScanTarget {
                        subscription_id: &image.subscription_id,
                        registry_id: &image.registry_id,
                        repository: &image.repository,
                        digest: Some(&image.digest),
                        tag: None,
                    };
                    ScanRow::queued(target, ScanTrigger::Push, now)
                })
                .collect();
            scans_queued = store::scans::enqueue_many(conn, &scans)?;
            store::images::recause_unscanned(
                conn,
                subscription,
                health_cause::PLAN_DISABLED,
                health_cause::NOT_SCANNED,
            )?;
        }
        _ => {}
    }
    Ok(Change {
        pricing: Pricing {
            tier,
            enablement_time,
            stored: true,
        },
        created: !before.stored,
        scans_queued,
        scans_cancelled,
    })
}
