//! Matches an inventory against the stored advisories: the store picks the candidates, with the
//! severities their aliases lend them, in one query; the pure matcher decides.

use std::collections::HashMap;

use crate::domain::Severity;
use crate::scanner::advisories::matcher::{self, AdvisoryMeta, Candidate, Inventory, MatchReport};
use crate::scanner::advisories::osv::AffectedPackage;
use crate::scanner::advisories::severity::{self, AliasSeverity, SeverityInfo};
use crate::store::{self, AnyConnection};

/// What a match cost: database round trips (one) and candidates considered.
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
    let round_trips = 1;
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
        let alias_severity = row
            .lent
            .as_ref()
            .and_then(lent)
            .filter(|_| severity::needs_alias(&meta.severity, &affected));
        candidates.push(Candidate {
            advisory: meta.clone(),
            affected,
            alias_severity,
        });
    }
    let cost = Cost {
        round_trips,
        candidates: candidates.len(),
    };
    Ok((matcher::match_inventory(inventory, &candidates), cost))
}

/// The store's lent severity as the matcher takes it.
fn lent(l: &store::advisories::AliasSeverity) -> Option<AliasSeverity> {
    Some(AliasSeverity {
        id: l.advisory_id.clone(),
        severity: SeverityInfo {
            level: Severity::parse(&l.severity)?,
            source: l.severity_source.clone(),
            cvss_v2: l.cvss2_base,
            cvss_v3: l.cvss3_base,
            cvss_v4: None,
        },
    })
}
