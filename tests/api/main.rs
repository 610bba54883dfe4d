//! The service's integration tests: one binary, every database test on SQLite and on PostgreSQL.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

mod advisories;
mod advisory_sync;
mod architecture;
mod auth;
mod cli;
mod compose;
mod concurrency;
mod contract;
mod coverage;
mod ecosystems;
mod errors;
mod exemptions;
mod exploit_intel;
mod fairness;
mod filters;
mod health;
mod hostile_input;
mod inventories;
mod mdvm;
mod openapi;
mod operations;
mod pipeline;
mod pricings;
mod queue_processes;
mod registries;
mod registry_client;
mod registry_harness;
mod resource_graph;
mod scan;
mod scan_lifecycle;
mod severity;
mod sub_assessments;
mod vex;
