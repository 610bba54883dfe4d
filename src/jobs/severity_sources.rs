//! Severity sources: loading the Debian security tracker's export (`debian-tracker`) and NVD's
//! CVE data (`nvd`) into `severity_ratings`, as the synced sources' [`FeedLoader`]s.
//!
//! A file is read whole (streamed, gzip recognised by its magic bytes) before anything is stored,
//! then stored in one transaction, so a truncated or foreign file leaves the stored ratings as
//! they were. The tracker's export holds every rating, so CVEs it no longer rates lose their
//! tracker rating; an NVD file (an API page, a yearly feed) holds some CVEs and replaces only
//! theirs. When ratings change, the same transaction moves the advisories' generation (cached
//! candidates are dropped) and queues an `AdvisoryUpdate` re-match of every stored image holding
//! a package of an advisory that goes by one of the changed CVE ids, so stored findings,
//! health and counts follow without a pull. How ratings decide a finding's severity is
//! [`crate::scanner::advisories::severity`]'s module doc.

use std::io::{BufRead, BufReader, Read};
use std::path::Path;

use super::feeds::FeedLoaded;
use super::rescans;
use crate::domain::Timestamp;
use crate::scanner::advisories::ratings::{self, CveRating, RatingSource};
use crate::store::severity_ratings::{self, Coverage, RatingRow};
use crate::store::{self, AnyConnection, Pool};

/// Loads the Debian security tracker's JSON export
/// (`https://security-tracker.debian.org/tracker/data/json`), plain or gzip.
pub fn load_debian_tracker(pool: &Pool, path: &Path) -> Result<FeedLoaded, String> {
    let now = Timestamp::now().micros();
    let mut rows = Vec::new();
    ratings::each_debian_tracker_rating(open(path)?, &mut |r| rows.push(row(r, now)))?;
    store_rows(
        pool,
        RatingSource::DebianTracker,
        &rows,
        Coverage::Complete,
        None,
    )
}

/// Loads NVD CVE JSON 2.0: an API response page or a feed file, plain or gzip.
pub fn load_nvd(pool: &Pool, path: &Path) -> Result<FeedLoaded, String> {
    let parsed = ratings::parse_nvd(open(path)?)?;
    let now = Timestamp::now().micros();
    let rows: Vec<RatingRow> = parsed.ratings.into_iter().map(|r| row(r, now)).collect();
    store_rows(
        pool,
        RatingSource::Nvd,
        &rows,
        Coverage::Partial,
        parsed.newest.map(Timestamp::from_datetime),
    )
}

/// The file's bytes, decompressed when they start with gzip's magic bytes.
fn open(path: &Path) -> Result<Box<dyn Read>, String> {
    let file =
        std::fs::File::open(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let mut reader = BufReader::with_capacity(1 << 16, file);
    let head = reader
        .fill_buf()
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    Ok(if head.starts_with(&[0x1f, 0x8b]) {
        Box::new(BufReader::new(flate2::read::MultiGzDecoder::new(reader)))
    } else {
        Box::new(reader)
    })
}

fn store_rows(
    pool: &Pool,
    source: RatingSource,
    rows: &[RatingRow],
    coverage: Coverage,
    newest: Option<Timestamp>,
) -> Result<FeedLoaded, String> {
    let records = rows.len() as u64;
    let changed = store::run_blocking(pool, |c| {
        store::transaction(c, |c| apply(c, source, rows, coverage))
    })
    .map_err(|e| format!("cannot store the {} ratings: {e}", source.as_str()))?;
    Ok(FeedLoaded {
        records,
        changed,
        newest,
    })
}

/// Stores the ratings and, when they changed, has the findings they decide re-matched.
fn apply(
    conn: &mut AnyConnection,
    source: RatingSource,
    rows: &[RatingRow],
    coverage: Coverage,
) -> diesel::QueryResult<u64> {
    let applied = severity_ratings::apply(conn, source.as_str(), rows, coverage)?;
    if applied.changed > 0 {
        store::advisories::bump_generation(conn)?;
        let packages = store::advisories::packages_naming(conn, &applied.cves)?;
        let queued = rescans::queue_holding(conn, &packages)?;
        if queued > 0 {
            tracing::info!(
                source = source.as_str(),
                queued,
                "severity ratings changed: images queued for re-assessment"
            );
        }
    }
    Ok(applied.changed)
}

fn row(r: CveRating, loaded_at: i64) -> RatingRow {
    RatingRow {
        cve: r.cve,
        source: r.source.as_str().to_owned(),
        release_name: r.release,
        package: r.package,
        severity: r.level.as_str().to_owned(),
        rating: r.rating,
        cvss2_base: r.cvss_v2,
        cvss3_base: r.cvss_v3,
        loaded_at,
    }
}
