//! Work that runs outside a request: advisory imports, the scan queue and its workers, rescans.

pub mod advisory_sources;
pub mod findings;
pub mod import_advisories;
pub mod inventories;
pub mod matching;
pub mod queue;
pub mod registries;
pub mod registry_events;
pub mod rescans;
pub mod running_images;
pub mod scan;
