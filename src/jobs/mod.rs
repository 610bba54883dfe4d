//! Work that runs outside a request: advisory imports (and, later, scans and rescans).

pub mod advisory_sources;
pub mod import_advisories;
pub mod inventories;
pub mod matching;
pub mod scan;
