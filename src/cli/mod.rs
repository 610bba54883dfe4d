//! The binary's commands past argument parsing: what they print and write. Not part of the
//! library; their decisions live there (`jobs`).

pub mod advisories;
pub mod registry;
pub mod scan;
pub mod scan_json;
pub mod vex;
