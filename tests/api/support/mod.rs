//! Support code shared by the integration tests.

pub mod app;
pub mod database;
pub mod fake_registry;
pub mod fixtures;
pub mod http;
pub mod images;
pub mod registry;
pub mod rows;
