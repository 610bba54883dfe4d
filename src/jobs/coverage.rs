//! The advisory data a verdict rests on. Which ecosystems have data, and as of when, is the
//! `advisory_coverage` table, moved only by [`data_loaded`] (after every import, and after every
//! successful sync of an ecosystem's export); an assessment records, per ecosystem of the image's
//! packages, whether data was loaded and whether it has aged past the maximum ([`of_inventory`]),
//! and the verdict follows (`domain::verdict`). Images follow the data without a pull: new data
//! re-matches the images that lacked it, and a Healthy image whose data ages is re-matched by the
//! scheduler's pass ([`queue_stale`]) and becomes `AdvisoriesStale`.

use std::collections::HashMap;
use std::time::Duration;

use crate::domain::{AdvisoryData, EcosystemCoverage, ScanTrigger, Timestamp};
use crate::scanner::advisories::ecosystem;
use crate::scanner::advisories::matcher::{self, Inventory};
use crate::store::advisory_coverage::{self, CoverageRow};
use crate::store::{self, AnyConnection};

use super::queue::reassess_in;

/// What recording loaded data did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DataLoaded {
    /// The ecosystems that had no data before.
    pub newly_covered: Vec<String>,
    /// Images queued for an `AdvisoryUpdate` re-match because they lacked data (none, or stale)
    /// for an ecosystem of the same family.
    pub images_queued: usize,
}

/// Records that the data of these ecosystems is current as of `at`: as records name them
/// (`Debian:12`, `PyPI`) after an import, or a whole export's name (`Debian`) after a sync. Then
/// queues a re-match of every image that lacked data in their families, so its health follows
/// without a pull. Call it in the transaction that stored the data; the caller wakes the workers
/// when images were queued.
pub fn data_loaded(
    conn: &mut AnyConnection,
    ecosystems: &[String],
    at: Timestamp,
) -> diesel::QueryResult<DataLoaded> {
    let mut names: Vec<String> = ecosystems
        .iter()
        .filter(|e| !e.trim().is_empty())
        .cloned()
        .collect();
    names.sort_unstable();
    names.dedup();
    if names.is_empty() {
        return Ok(DataLoaded::default());
    }
    let before: HashMap<String, i64> = advisory_coverage::of(conn, &names)?
        .into_iter()
        .map(|row| (row.ecosystem, row.synced_at))
        .collect();
    let mut loaded = DataLoaded::default();
    for name in &names {
        let advisories = advisory_coverage::count_advisories(conn, name)?;
        // An import of old files does not make newer data look older.
        let synced_at = before
            .get(name)
            .map_or(at.micros(), |&was| was.max(at.micros()));
        advisory_coverage::record(
            conn,
            &CoverageRow {
                ecosystem: name.clone(),
                advisories,
                synced_at,
            },
        )?;
        if !before.contains_key(name) {
            loaded.newly_covered.push(name.clone());
        }
    }
    let mut bases: Vec<String> = names
        .iter()
        .map(|e| ecosystem::base(e).to_owned())
        .collect();
    bases.dedup();
    let images = store::images::lacking_data(conn, &bases)?;
    loaded.images_queued = reassess_in(conn, &images, ScanTrigger::AdvisoryUpdate)?;
    Ok(loaded)
}

/// An image's coverage: one entry per ecosystem of its packages, and the oldest load time among
/// those with data.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Coverage {
    pub ecosystems: Vec<EcosystemCoverage>,
    pub oldest_synced_at: Option<i64>,
}

impl Coverage {
    /// The ecosystems without any data.
    pub fn missing(&self) -> Vec<&str> {
        self.ecosystems
            .iter()
            .filter(|c| c.advisories == AdvisoryData::None)
            .map(|c| c.ecosystem.as_str())
            .collect()
    }
}

/// What advisory data the inventory's packages had at `now`. An ecosystem is loaded when its own
/// row, the row of any ecosystem its packages are looked up in (`Ubuntu:Pro:22.04:LTS`), or its
/// family's whole export (`Ubuntu`) exists; as of the newest of those. Another release's data
/// never counts: `Alpine:v3.18` records say nothing about an Alpine 3.20 image.
pub fn of_inventory(
    conn: &mut AnyConnection,
    inventory: &Inventory,
    now: Timestamp,
    max_age: Duration,
) -> diesel::QueryResult<Coverage> {
    let needed = matcher::package_ecosystems(inventory);
    let mut keys: Vec<String> = needed
        .iter()
        .flat_map(|n| {
            n.matched_in
                .iter()
                .cloned()
                .chain(std::iter::once(ecosystem::base(&n.ecosystem).to_owned()))
        })
        .collect();
    keys.sort_unstable();
    keys.dedup();
    let synced: HashMap<String, i64> = advisory_coverage::of(conn, &keys)?
        .into_iter()
        .map(|row| (row.ecosystem, row.synced_at))
        .collect();
    let stale_before = now.micros() - Timestamp::span_micros(max_age);
    let mut coverage = Coverage::default();
    for need in needed {
        let newest = need
            .matched_in
            .iter()
            .map(String::as_str)
            .chain(std::iter::once(ecosystem::base(&need.ecosystem)))
            .filter_map(|key| synced.get(key).copied())
            .max();
        if let Some(at) = newest {
            coverage.oldest_synced_at = Some(coverage.oldest_synced_at.map_or(at, |o| o.min(at)));
        }
        coverage.ecosystems.push(EcosystemCoverage {
            ecosystem: need.ecosystem,
            packages: need.packages,
            advisories: if newest.is_some() {
                AdvisoryData::Loaded
            } else {
                AdvisoryData::None
            },
            synced_at: newest.map(|at| Timestamp::from_micros(at).rfc3339()),
            stale: newest.is_some_and(|at| at < stale_before),
        });
    }
    Ok(coverage)
}

/// Images re-matched per pass; the next pass takes the rest.
const STALE_BATCH: i64 = 1000;

/// Queues a `Rescan` of the Healthy images whose advisory data has aged past `max_age` since
/// they were assessed: the re-match finds the data stale (`AdvisoriesStale`) or, when it was
/// refreshed meanwhile, fresh (Healthy again, with the newer time). Returns how many were queued.
pub fn queue_stale(
    conn: &mut AnyConnection,
    max_age: Duration,
    now: i64,
) -> diesel::QueryResult<usize> {
    let before = now - Timestamp::span_micros(max_age);
    let images = store::images::healthy_on_data_before(conn, before, STALE_BATCH)?;
    reassess_in(conn, &images, ScanTrigger::Rescan)
}

/// How old data is, for people: `3 days`, `5 hours`, `12 minutes`.
pub fn age(synced_at: Timestamp, now: Timestamp) -> String {
    let seconds = (now.micros() - synced_at.micros()).max(0) / 1_000_000;
    let (n, unit) = match seconds {
        s if s >= 2 * 86_400 => (s / 86_400, "days"),
        s if s >= 2 * 3600 => (s / 3600, "hours"),
        s if s >= 120 => (s / 60, "minutes"),
        s => (s, "seconds"),
    };
    format!("{n} {unit}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_read_in_the_largest_whole_unit() {
        let now = Timestamp::from_micros(10 * 86_400 * 1_000_000);
        let ago = |s: i64| Timestamp::from_micros(now.micros() - s * 1_000_000);
        assert_eq!(age(ago(30), now), "30 seconds");
        assert_eq!(age(ago(600), now), "10 minutes");
        assert_eq!(age(ago(5 * 3600), now), "5 hours");
        assert_eq!(age(ago(8 * 86_400), now), "8 days");
    }
}
