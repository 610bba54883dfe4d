//! The scan engine. So far: OSV advisories, their matching, and the version orders they need.

pub mod advisories;
pub mod versions;
