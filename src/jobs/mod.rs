//! Work that runs outside a request: advisory imports, the scan queue and its workers, rescans.

pub mod advisory_sources;
pub mod findings;
pub mod import_advisories;
pub mod inventories;
pub mod matching;
pub mod queue;
pub mod rescans;
pub mod scan;
