//! What the binary's commands print; not part of the library.

pub mod scan;
