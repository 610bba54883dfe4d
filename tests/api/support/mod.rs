//! Support code shared by the integration tests.

use std::net::TcpListener;

pub mod app;
pub mod database;
pub mod fake_registry;
pub mod fixtures;
pub mod http;
pub mod images;
pub mod registry;
pub mod rows;

/// Pick a free loopback port (bind :0, read it, release it).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind 127.0.0.1:0")
        .port()
}
