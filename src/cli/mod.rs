//! What the binary's commands print; not part of the library.

pub mod scan;
pub mod scan_json;
