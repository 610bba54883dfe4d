//! Aggregates over a scope's active findings, for the vulnerability summary and assessments.

use diesel::dsl::{count, count_star, max};
use diesel::prelude::*;
use diesel::sql_types::Bool;

use super::findings::FindingScope;
use super::schema::findings;
use super::{AnyConnection, MultiBackend};

type Condition = Box<dyn BoxableExpression<findings::table, MultiBackend, SqlType = Bool>>;

/// Active findings in the scope, as a condition (grouped queries cannot be boxed whole).
fn active_in(scope: &FindingScope) -> Condition {
    let active = findings::resolved_at.is_null();
    match scope.clone() {
        FindingScope::Subscription(sub) => Box::new(active.and(findings::subscription_id.eq(sub))),
        FindingScope::ResourceGroup(sub, rg) => Box::new(
            active
                .and(findings::subscription_id.eq(sub))
                .and(findings::resource_group.eq(rg)),
        ),
        FindingScope::Registry(registry_id) => {
            Box::new(active.and(findings::registry_id.eq(registry_id)))
        }
    }
}

/// Active findings per (severity, patchable).
pub fn severity_counts(
    conn: &mut AnyConnection,
    scope: &FindingScope,
) -> QueryResult<Vec<(String, bool, i64)>> {
    findings::table
        .filter(active_in(scope))
        .group_by((findings::severity, findings::patchable))
        .select((findings::severity, findings::patchable, count_star()))
        .load(conn)
}

/// The advisories affecting the most images: (advisory id, images, highest severity rank).
pub fn top_advisories(
    conn: &mut AnyConnection,
    scope: &FindingScope,
    limit: i64,
) -> QueryResult<Vec<(String, i64, Option<i32>)>> {
    findings::table
        .filter(active_in(scope))
        .group_by(findings::advisory_id)
        .select((
            findings::advisory_id,
            count(findings::image_id).aggregate_distinct(),
            max(findings::severity_rank),
        ))
        .order((
            count(findings::image_id).aggregate_distinct().desc(),
            findings::advisory_id.asc(),
        ))
        .limit(limit)
        .load(conn)
}

/// The images with the most active findings: (image id, findings, highest severity rank).
pub fn top_images(
    conn: &mut AnyConnection,
    scope: &FindingScope,
    limit: i64,
) -> QueryResult<Vec<(String, i64, Option<i32>)>> {
    findings::table
        .filter(active_in(scope))
        .group_by(findings::image_id)
        .select((
            findings::image_id,
            count_star(),
            max(findings::severity_rank),
        ))
        .order((count_star().desc(), findings::image_id.asc()))
        .limit(limit)
        .load(conn)
}
