//! Tracing, installed once by the binary. Filter with `RUST_LOG` (default `info`).
//!
//! Nothing secret is ever recorded: handlers never put request bodies, tokens or credentials
//! in fields, and secret types print as `[redacted]` if one slips into a `Debug`.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

/// Installs the global subscriber, writing to stderr (stdout is for command output). Colours
/// only on a terminal: escape codes in a log file or a collector are noise, and styling every
/// request's span fields cost about as much CPU as parsing its HTTP request.
pub fn init() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .with_target(false)
        .try_init();
}
