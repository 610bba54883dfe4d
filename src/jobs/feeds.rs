//! What a non-OSV feed (a severity source, exploit intelligence) hands back after loading one
//! downloaded file into the store: the synced sources call every feed's loader the same way.

use std::path::Path;

use crate::domain::Timestamp;
use crate::store::Pool;

/// What loading one feed file did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FeedLoaded {
    /// Entries the file held (ratings, catalogue entries, score rows).
    pub records: u64,
    /// Of those, entries that were new or differed from what was stored.
    pub changed: u64,
    /// The newest date the file itself states (a catalogue's release, a score date), if any.
    pub newest: Option<Timestamp>,
}

/// Loads one downloaded feed file; the error is a sentence for the source's status. A loader
/// stores all of a file or nothing of it: a file that cannot be read must leave the stored data
/// as it was.
pub type FeedLoader = fn(&Pool, &Path) -> Result<FeedLoaded, String>;
