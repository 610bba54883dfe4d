//! The scan engine. So far: the version orders advisories are matched with.

pub mod versions;
