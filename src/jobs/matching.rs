//! Matches an inventory against the stored advisories: the store picks the candidates, with the
//! severities their aliases lend them, in one query; the pure matcher decides. Decoded candidates
//! are kept between matches, keyed by record and `modified`, so a warm match decodes nothing.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::domain::Severity;
use crate::scanner::advisories::matcher::{self, AdvisoryMeta, Candidate, Inventory, MatchReport};
use crate::scanner::advisories::osv::AffectedPackage;
use crate::scanner::advisories::severity::{self, AliasSeverity, SeverityInfo};
use crate::store::advisories::CandidateRow;
use crate::store::{self, AnyConnection};

/// What a match cost: database round trips and candidates considered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cost {
    pub round_trips: u32,
    pub candidates: usize,
}

/// Decoded affected entries by (advisory, position), valid while the advisory's `modified` is the same.
#[derive(Default)]
pub struct CandidateCache {
    entries: Mutex<HashMap<(String, i32), Decoded>>,
}

#[derive(Clone)]
struct Decoded {
    modified: i64,
    advisory: Arc<AdvisoryMeta>,
    affected: Arc<AffectedPackage>,
}

/// Candidates are looked up by key (one query); only entries the cache lacks, or holds for an older
/// `modified`, are fetched and decoded (a second query, on a cold cache).
pub fn match_stored(
    conn: &mut AnyConnection,
    cache: &CandidateCache,
    inventory: &Inventory,
) -> diesel::QueryResult<(MatchReport, Cost)> {
    let keys = matcher::match_keys(inventory);
    let found = store::advisories::candidate_keys(conn, &keys)?;
    let mut round_trips = 1;
    let missing: Vec<String> = {
        let entries = lock(cache);
        let mut ids: Vec<String> = found
            .iter()
            .filter(|k| {
                entries
                    .get(&(k.advisory_id.clone(), k.seq))
                    .is_none_or(|d| d.modified != k.modified)
            })
            .map(|k| k.advisory_id.clone())
            .collect();
        ids.sort_unstable();
        ids.dedup();
        ids
    };
    if !missing.is_empty() {
        let rows = store::advisories::candidate_rows(conn, &missing)?;
        round_trips += 1;
        let decoded = decode(rows);
        lock(cache).extend(decoded);
    }
    let entries = lock(cache);
    let candidates: Vec<Candidate> = found
        .iter()
        .filter_map(|k| {
            let d = entries.get(&(k.advisory_id.clone(), k.seq))?;
            let alias_severity = k
                .lent
                .as_ref()
                .and_then(lent)
                .filter(|_| severity::needs_alias(&d.advisory.severity, &d.affected));
            Some(Candidate {
                advisory: d.advisory.clone(),
                affected: d.affected.clone(),
                alias_severity,
            })
        })
        .collect();
    drop(entries);
    let cost = Cost {
        round_trips,
        candidates: candidates.len(),
    };
    Ok((matcher::match_inventory(inventory, &candidates), cost))
}

fn lock(cache: &CandidateCache) -> std::sync::MutexGuard<'_, HashMap<(String, i32), Decoded>> {
    // A panic while holding the lock leaves only complete entries behind: keep using them.
    cache
        .entries
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn decode(rows: Vec<CandidateRow>) -> Vec<((String, i32), Decoded)> {
    // A record's JSON is shared by its affected rows: decode each once.
    let mut metas: HashMap<String, Arc<AdvisoryMeta>> = HashMap::new();
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        let affected: AffectedPackage = match serde_json::from_str(&row.affected) {
            Ok(a) => a,
            Err(e) => {
                tracing::error!(advisory = %row.advisory_id, error = %e, "unreadable stored affected entry; re-import the advisory");
                continue;
            }
        };
        let advisory = match metas.get(&row.advisory_id) {
            Some(meta) => meta.clone(),
            None => match serde_json::from_str::<AdvisoryMeta>(&row.record) {
                Ok(meta) => {
                    let meta = Arc::new(meta);
                    metas.insert(row.advisory_id.clone(), meta.clone());
                    meta
                }
                Err(e) => {
                    tracing::error!(advisory = %row.advisory_id, error = %e, "unreadable stored advisory; re-import it");
                    continue;
                }
            },
        };
        out.push((
            (row.advisory_id, row.seq),
            Decoded {
                modified: row.modified,
                advisory,
                affected: Arc::new(affected),
            },
        ));
    }
    out
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
