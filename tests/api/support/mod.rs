//! Support code shared by the integration tests.

pub mod app;
pub mod fake_registry;
pub mod registry;
