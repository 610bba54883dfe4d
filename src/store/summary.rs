//! Aggregates over a scope's active findings, for the vulnerability summary and assessments.

use std::collections::BTreeMap;

use diesel::dsl::{count, count_star, max, sum};
use diesel::prelude::*;
use diesel::sql_types::Bool;

use super::findings::{FindingScope, in_scope};
use super::schema::findings;
use super::{AnyConnection, MultiBackend};
use crate::domain::{HealthCode, Severity, health_cause};

/// Active findings in the scope: present and not exempt.
fn active_in(
    scope: &FindingScope,
) -> Box<dyn BoxableExpression<findings::table, MultiBackend, SqlType = Bool>> {
    Box::new(
        findings::resolved_at
            .is_null()
            .and(findings::exempted_by.is_null())
            .and(in_scope(scope)),
    )
}

/// Active findings per (severity, patchable): (severity, patchable, findings, MDVM
/// sub-assessments).
pub fn severity_counts(
    conn: &mut AnyConnection,
    scope: &FindingScope,
) -> QueryResult<Vec<(String, bool, i64, i64)>> {
    findings::table
        .filter(active_in(scope))
        .group_by((findings::severity, findings::patchable))
        .select((
            findings::severity,
            findings::patchable,
            count_star(),
            sum(findings::mdvm_vulnerabilities),
        ))
        .load::<(String, bool, i64, Option<i64>)>(conn)
        .map(|rows| {
            rows.into_iter()
                .map(|(severity, patchable, findings, mdvm)| {
                    (severity, patchable, findings, mdvm.unwrap_or(0))
                })
                .collect()
        })
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

/// An image among those with the most active findings.
#[derive(Debug, Queryable)]
pub struct TopImageRow {
    /// The registry's row id.
    pub registry_id: String,
    pub repository: String,
    pub digest: String,
    pub findings: i64,
    pub highest_rank: Option<i32>,
}

/// The images with the most active findings. Findings carry their image's registry, repository
/// and digest, so no image rows are read.
pub fn top_images(
    conn: &mut AnyConnection,
    scope: &FindingScope,
    limit: i64,
) -> QueryResult<Vec<TopImageRow>> {
    findings::table
        .filter(active_in(scope))
        .group_by((
            findings::image_id,
            findings::registry_id,
            findings::repository,
            findings::image_digest,
        ))
        .select((
            findings::registry_id,
            findings::repository,
            findings::image_digest,
            count_star(),
            max(findings::severity_rank),
        ))
        .order((count_star().desc(), findings::image_id.asc()))
        .limit(limit)
        .load(conn)
}

/// Images per health and NotApplicable images per cause, findings per severity.
#[derive(Debug, Default)]
pub struct Tally {
    pub images: BTreeMap<String, i64>,
    /// NotApplicable images per cause (`NotScanned`, `ScanFailed`, `UnsupportedOs`,
    /// `NoAdvisoryData`, `UnreadableContent`, `AdvisoriesStale`, `PlanDisabled`).
    pub causes: BTreeMap<String, i64>,
    pub findings: BTreeMap<String, i64>,
    pub patchable: i64,
    /// Active findings' MDVM sub-assessments (one per CVE) per severity.
    pub vulnerabilities: BTreeMap<String, i64>,
    pub patchable_vulnerabilities: i64,
    /// Present findings an active exemption matches (counted in none of the above).
    pub exempt: i64,
}

impl Tally {
    pub fn load(c: &mut AnyConnection, scope: &FindingScope) -> QueryResult<Self> {
        let mut tally = Tally::default();
        for (health, cause, n) in super::images::health_counts(c, scope)? {
            if health == HealthCode::NotApplicable.as_str() {
                let cause = cause.unwrap_or_else(|| health_cause::NOT_SCANNED.to_owned());
                *tally.causes.entry(cause).or_default() += n;
            }
            *tally.images.entry(health).or_default() += n;
        }
        for (severity, patchable, n, vulnerabilities) in severity_counts(c, scope)? {
            *tally.findings.entry(severity.clone()).or_default() += n;
            *tally.vulnerabilities.entry(severity).or_default() += vulnerabilities;
            if patchable {
                tally.patchable += n;
                tally.patchable_vulnerabilities += vulnerabilities;
            }
        }
        tally.exempt = findings::table
            .filter(findings::resolved_at.is_null())
            .filter(findings::exempted_by.is_not_null())
            .filter(in_scope(scope))
            .count()
            .get_result(c)?;
        Ok(tally)
    }

    pub fn not_applicable(&self, cause: &str) -> i64 {
        self.causes.get(cause).copied().unwrap_or(0)
    }

    pub fn images(&self, code: HealthCode) -> i64 {
        self.images.get(code.as_str()).copied().unwrap_or(0)
    }

    pub fn findings(&self) -> i64 {
        self.findings.values().sum()
    }

    pub fn severity(&self, s: Severity) -> i64 {
        self.findings.get(s.as_str()).copied().unwrap_or(0)
    }
}
