//! Matches an inventory against the stored advisories: the store picks the candidates, with the
//! severities their aliases lend them, in one query, and the outside ratings of their CVE ids
//! (Debian tracker, NVD) in one more; the pure matcher decides. Decoded candidates are kept
//! between matches, keyed by record and `modified`, and ratings per CVE while the advisories'
//! generation (which a ratings change moves too) stands, so a warm match decodes nothing.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::domain::Severity;
use crate::scanner::advisories::matcher::{self, Candidate, Inventory, MatchReport};
use crate::scanner::advisories::osv::{AdvisoryMeta, AffectedPackage};
use crate::scanner::advisories::ratings::{CveRating, RatingSource};
use crate::scanner::advisories::severity::{self, AliasSeverity, SeverityInfo};
use crate::store::advisories::{CandidateKey, CandidateRow};
use crate::store::severity_ratings::RatingRow;
use crate::store::{self, AnyConnection};

/// What a match cost: database round trips and candidates considered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cost {
    pub round_trips: u32,
    pub candidates: usize,
}

/// What a match reads from the store, kept between matches: the candidate keys per
/// (ecosystem, package) and the ratings per CVE id, valid while the advisories' generation stays
/// the same, and the decoded
/// affected entries per (advisory, position), valid while the advisory's `modified` stays the same.
#[derive(Default)]
pub struct CandidateCache {
    keys: Mutex<KeyCache>,
    entries: Mutex<HashMap<(String, i32), Decoded>>,
}

#[derive(Default)]
struct KeyCache {
    generation: Option<i64>,
    by_package: HashMap<(String, String), Arc<[CandidateKey]>>,
    /// Every CVE id looked up, rated or not.
    ratings: HashMap<String, Arc<[CveRating]>>,
}

#[derive(Clone)]
struct Decoded {
    modified: i64,
    advisory: Arc<AdvisoryMeta>,
    affected: Arc<AffectedPackage>,
}

/// A warm match is one round trip (the generation); packages the cache has not seen cost one
/// query for their candidate keys, and entries it lacks one more to fetch and decode them.
pub fn match_stored(
    conn: &mut AnyConnection,
    cache: &CandidateCache,
    inventory: &Inventory,
) -> diesel::QueryResult<(MatchReport, Cost)> {
    let keys = matcher::match_keys(inventory);
    let generation = store::advisories::generation(conn)?;
    let mut round_trips = 1;
    let unseen: Vec<(String, String)> = {
        let mut cached = lock(&cache.keys);
        if cached.generation != Some(generation) {
            cached.by_package.clear();
            cached.ratings.clear();
            cached.generation = Some(generation);
        }
        keys.iter()
            .filter(|k| !cached.by_package.contains_key(*k))
            .cloned()
            .collect()
    };
    let mut fresh: HashMap<(String, String), Arc<[CandidateKey]>> = HashMap::new();
    if !unseen.is_empty() {
        let fetched = store::advisories::candidate_keys(conn, &unseen)?;
        round_trips += 1;
        let mut grouped: HashMap<(String, String), Vec<CandidateKey>> =
            unseen.into_iter().map(|k| (k, Vec::new())).collect();
        for key in fetched {
            if let Some(group) = grouped.get_mut(&(key.ecosystem.clone(), key.package.clone())) {
                group.push(key);
            }
        }
        fresh = grouped.into_iter().map(|(k, g)| (k, g.into())).collect();
        let mut cached = lock(&cache.keys);
        // What was read is at least as new as `generation`; keep it only if nothing moved since.
        if cached.generation == Some(generation) {
            cached
                .by_package
                .extend(fresh.iter().map(|(k, g)| (k.clone(), g.clone())));
        }
    }
    let groups: Vec<Arc<[CandidateKey]>> = {
        let cached = lock(&cache.keys);
        keys.iter()
            .filter_map(|k| fresh.get(k).or_else(|| cached.by_package.get(k)).cloned())
            .collect()
    };
    let found = || groups.iter().flat_map(|g| g.iter());
    let missing: Vec<String> = {
        let entries = lock(&cache.entries);
        let mut ids: Vec<String> = found()
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
        lock(&cache.entries).extend(decoded);
    }
    let ratings = ratings_of(conn, cache, generation, &groups, &mut round_trips)?;
    let entries = lock(&cache.entries);
    let candidates: Vec<Candidate> = found()
        .filter_map(|k| {
            let d = entries.get(&(k.advisory_id.clone(), k.seq))?;
            let alias_severity = k
                .lent
                .as_ref()
                .and_then(lent)
                .filter(|_| severity::needs_alias(&d.advisory.severity, &d.affected));
            let ratings = cve_ids(&d.advisory)
                .filter_map(|cve| ratings.get(cve))
                .flat_map(|r| r.iter().cloned())
                .collect();
            Some(Candidate {
                advisory: d.advisory.clone(),
                affected: d.affected.clone(),
                alias_severity,
                ratings,
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

/// The CVE ids an advisory goes by: its own id when it is one, its aliases and upstream ids.
fn cve_ids(advisory: &AdvisoryMeta) -> impl Iterator<Item = &str> {
    std::iter::once(&advisory.id)
        .chain(&advisory.aliases)
        .chain(&advisory.upstream)
        .map(String::as_str)
        .filter(|id| id.starts_with("CVE-"))
}

/// The ratings of the candidates' CVE ids: from the cache, the ids it lacks in one query.
fn ratings_of(
    conn: &mut AnyConnection,
    cache: &CandidateCache,
    generation: i64,
    groups: &[Arc<[CandidateKey]>],
    round_trips: &mut u32,
) -> diesel::QueryResult<HashMap<String, Arc<[CveRating]>>> {
    let wanted: Vec<String> = {
        let entries = lock(&cache.entries);
        let mut ids: Vec<String> = groups
            .iter()
            .flat_map(|g| g.iter())
            .filter_map(|k| entries.get(&(k.advisory_id.clone(), k.seq)))
            .flat_map(|d| cve_ids(&d.advisory).map(str::to_owned).collect::<Vec<_>>())
            .collect();
        ids.sort_unstable();
        ids.dedup();
        ids
    };
    let mut out: HashMap<String, Arc<[CveRating]>> = HashMap::new();
    let missing: Vec<String> = {
        let cached = lock(&cache.keys);
        wanted
            .into_iter()
            .filter(|id| match cached.ratings.get(id) {
                Some(r) => {
                    out.insert(id.clone(), r.clone());
                    false
                }
                None => true,
            })
            .collect()
    };
    if missing.is_empty() {
        return Ok(out);
    }
    let rows = store::severity_ratings::for_cves(conn, &missing)?;
    *round_trips += 1;
    let mut fetched: HashMap<String, Vec<CveRating>> =
        missing.into_iter().map(|id| (id, Vec::new())).collect();
    for row in rows {
        if let (Some(rating), Some(group)) = (rating(&row), fetched.get_mut(&row.cve)) {
            group.push(rating);
        }
    }
    let fetched: Vec<(String, Arc<[CveRating]>)> =
        fetched.into_iter().map(|(id, r)| (id, r.into())).collect();
    let mut cached = lock(&cache.keys);
    if cached.generation == Some(generation) {
        cached
            .ratings
            .extend(fetched.iter().map(|(id, r)| (id.clone(), r.clone())));
    }
    out.extend(fetched);
    Ok(out)
}

/// A stored rating as the matcher takes it; a row this version cannot read rates nothing.
fn rating(row: &RatingRow) -> Option<CveRating> {
    Some(CveRating {
        cve: row.cve.clone(),
        source: RatingSource::parse(&row.source)?,
        release: row.release_name.clone(),
        package: row.package.clone(),
        level: Severity::parse(&row.severity)?,
        rating: row.rating.clone(),
        cvss_v2: row.cvss2_base,
        cvss_v3: row.cvss3_base,
    })
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic while holding the lock leaves only complete entries behind: keep using them.
    mutex
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
