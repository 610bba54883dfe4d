//! Logging: human-readable by default (coloured only on a terminal), JSON with
//! `CROWSNEST_LOG_FORMAT=json`; level from `RUST_LOG`.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

/// actix-web-prom warns on every request to a route with a regex segment (`{scope:.+}`) although
/// it labels it correctly with the route pattern; its warnings are noise.
pub const DEFAULT_FILTER: &str = "info,actix_server=warn,actix_web_prom=error";

pub fn init() {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(DEFAULT_FILTER));
    let json = std::env::var("CROWSNEST_LOG_FORMAT").is_ok_and(|v| v.eq_ignore_ascii_case("json"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Colour codes are noise in a file or a journal.
        .with_ansi(std::io::stderr().is_terminal());
    let result = if json {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
    // A second init (tests, embedding) keeps the first subscriber.
    drop(result);
}
