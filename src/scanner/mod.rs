//! The scanner: the registry client and local images, the layer pipeline and the package
//! analyzers over an image's files, OSV advisories and their matching, and the version orders
//! they need. None of it touches the database.
//!
//! The scan engine, which runs these steps and keeps their results in the database, is
//! [`crate::jobs::engine`].

pub mod advisories;
pub mod analyzers;
pub mod files;
pub mod layers;
pub mod local;
pub mod pipeline;
pub mod registry;
pub mod versions;
