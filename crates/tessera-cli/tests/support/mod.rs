//! What the test binaries that start real `tessera serve` processes share.

use std::io::{BufRead, BufReader};
use std::process::Child;

/// The master key every test server starts with (`TESSERA_MASTER_KEY`).
pub const MASTER_KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

/// Reads the first line a starting `tessera serve` prints (its stdout must be piped) and
/// returns the base URL it listens on (`http://127.0.0.1:port`).
pub fn listening_on(child: &mut Child) -> String {
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    line.trim()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .to_string()
}
