//! Where decisions are made and the scanner meets the store: what a registry's notifications, a
//! cluster's report and a registry connection mean (`registry_events`, `running_images`,
//! `registries`), and the work that runs outside a request: the scan engine over stored inventories
//! (`engine`, `inventories`, `matching`, `findings`), the scan queue and its workers (`queue`),
//! advisory imports, severity sources (`severity_sources`) and rescans, and the advisory coverage
//! verdicts rest on (`coverage`), and what the MDVM assessment shows of findings beyond their rows
//! (`mdvm`). The API calls in here; nothing in here knows HTTP.

pub mod advisory_sources;
pub mod advisory_sync;
pub mod coverage;
pub mod engine;
pub mod exemptions;
pub mod exploit_intel;
pub mod feeds;
pub mod findings;
pub mod import_advisories;
pub mod inventories;
pub mod matching;
pub mod mdvm;
pub mod pricings;
pub mod queue;
pub mod registries;
pub mod registry_events;
pub mod rescans;
pub mod running_images;
pub mod severity_sources;
pub mod vex;
