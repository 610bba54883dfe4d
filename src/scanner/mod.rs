//! The scan engine: package analyzers over an image's files, OSV advisories and their matching,
//! and the version orders they need.

pub mod advisories;
pub mod analyzers;
pub mod files;
pub mod layers;
pub mod local;
pub mod pipeline;
pub mod registry;
pub mod versions;
