//! Matches an inventory against the stored advisories: the store picks the candidates (one query,
//! plus two for alias severities when some candidate needs one), the pure matcher decides.

use std::collections::HashMap;

use crate::domain::Severity;
use crate::scanner::advisories::matcher::{self, AdvisoryMeta, Candidate, Inventory, MatchReport};
use crate::scanner::advisories::osv::AffectedPackage;
use crate::scanner::advisories::severity::{self, AliasSeverity, SeverityInfo};
use crate::store::{self, AnyConnection};

/// What a match cost in database round trips (at most 3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cost {
    pub round_trips: u32,
    pub candidates: usize,
}

pub fn match_stored(
    conn: &mut AnyConnection,
    inventory: &Inventory,
) -> diesel::QueryResult<(MatchReport, Cost)> {
    let keys = matcher::match_keys(inventory);
    let rows = store::advisories::candidates(conn, &keys)?;
    let mut round_trips = 1;
    // A record's JSON is shared by its affected rows: parse each once.
    let mut metas: HashMap<String, AdvisoryMeta> = HashMap::new();
    let mut candidates = Vec::with_capacity(rows.len());
    for row in rows {
        let affected: AffectedPackage = match serde_json::from_str(&row.affected) {
            Ok(a) => a,
            Err(e) => {
                tracing::error!(advisory = %row.advisory_id, error = %e, "unreadable stored affected entry; re-import the advisory");
                continue;
            }
        };
        if !metas.contains_key(&row.advisory_id) {
            match serde_json::from_str::<AdvisoryMeta>(&row.record) {
                Ok(meta) => {
                    metas.insert(row.advisory_id.clone(), meta);
                }
                Err(e) => {
                    tracing::error!(advisory = %row.advisory_id, error = %e, "unreadable stored advisory; re-import it");
                    continue;
                }
            }
        }
        let Some(meta) = metas.get(&row.advisory_id) else {
            continue;
        };
        candidates.push(Candidate {
            advisory: meta.clone(),
            affected,
            alias_severity: None,
        });
    }
    let mut needing: Vec<String> = candidates
        .iter()
        .filter(|c| severity::needs_alias(&c.advisory.severity, &c.affected))
        .map(|c| c.advisory.id.clone())
        .collect();
    needing.sort_unstable();
    needing.dedup();
    if !needing.is_empty() {
        let lent = store::advisories::alias_severities(conn, &needing)?;
        round_trips += 2;
        for candidate in &mut candidates {
            if let Some(options) = lent.get(&candidate.advisory.id) {
                candidate.alias_severity = strongest(options);
            }
        }
    }
    let cost = Cost {
        round_trips,
        candidates: candidates.len(),
    };
    Ok((matcher::match_inventory(inventory, &candidates), cost))
}

/// The most severe of an advisory's aliases (ties: the first id in order, for stable results).
fn strongest(options: &[store::advisories::AliasSeverity]) -> Option<AliasSeverity> {
    options
        .iter()
        .filter_map(|o| {
            Some(AliasSeverity {
                id: o.advisory_id.clone(),
                severity: SeverityInfo {
                    level: Severity::parse(&o.severity)?,
                    source: o.severity_source.clone(),
                    cvss_v2: o.cvss2_base,
                    cvss_v3: o.cvss3_base,
                    cvss_v4: None,
                },
            })
        })
        .max_by(|a, b| {
            a.severity
                .level
                .cmp(&b.severity.level)
                .then_with(|| b.id.cmp(&a.id))
        })
}
