//! The registry client against an in-process fake registry (fault injection) and against a real
//! Docker Distribution registry.

mod fake_tests;
mod real_tests;
