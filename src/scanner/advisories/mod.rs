//! OSV advisories: parsing records, range semantics, severity, and the pure matcher.
//!
//! Nothing here touches a database or the network. The flow is:
//!
//! 1. [`osv::parse_records`] turns OSV JSON into [`osv::Advisory`] values (the store keeps them:
//!    `advisories` row from [`osv::AdvisoryMeta`], one `affected_ranges` row per
//!    [`osv::AffectedPackage`]).
//! 2. [`matcher::match_keys`] names the `(ecosystem, package)` pairs an inventory needs; the
//!    store loads those `affected_ranges` rows (one query) and rebuilds [`matcher::Candidate`]s.
//! 3. [`matcher::match_inventory`] evaluates OSV range semantics ([`ranges`]) with the version
//!    orders of [`crate::scanner::versions`] and resolves severity ([`severity`]), with the
//!    ratings of the records' CVE ids that other sources publish ([`ratings`]).

pub mod ecosystem;
pub mod exploit_intel;
pub mod matcher;
pub mod osv;
pub mod ranges;
pub mod ratings;
pub mod severity;

#[cfg(test)]
mod testdata;
