//! One typed configuration, built by the CLI from flags and `TESSERA_*` variables and passed
//! explicitly (no globals). Secrets are wrapped so they never print.

use std::net::SocketAddr;
use std::path::PathBuf;

use tessera_core::Secret;

/// The default listen address.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
/// The default database.
pub const DEFAULT_DATABASE: &str = "sqlite://tessera.db";
/// The largest request body accepted (64 KiB); larger bodies get 413.
pub const DEFAULT_BODY_LIMIT: usize = 64 * 1024;

/// Server configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Address to listen on (port 0 picks a free port).
    pub listen: SocketAddr,
    /// Database URL (`sqlite://PATH`).
    pub database_url: String,
    /// The master key itself (base64 of 32 bytes), from `TESSERA_MASTER_KEY`.
    pub master_key: Option<Secret<String>>,
    /// A file holding the master key.
    pub master_key_file: Option<PathBuf>,
    /// Grace window for a just-spent refresh token, seconds (0 disables).
    pub refresh_grace_seconds: i64,
    /// Default access-token lifetime, seconds.
    pub access_token_lifetime_seconds: i64,
    /// The furthest expiry a caller may request, seconds from now.
    pub max_token_lifetime_seconds: i64,
    /// Largest request body, bytes.
    pub body_limit: usize,
    /// Embed exchanges allowed per client address per minute.
    pub embed_rate_per_minute: u32,
    /// Relay host announced in token headers (`ch`).
    pub relay_host: Option<String>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: DEFAULT_LISTEN.parse().expect("valid default"),
            database_url: DEFAULT_DATABASE.into(),
            master_key: None,
            master_key_file: None,
            refresh_grace_seconds: 5,
            access_token_lifetime_seconds: 2 * 3600,
            max_token_lifetime_seconds: 24 * 3600,
            body_limit: DEFAULT_BODY_LIMIT,
            embed_rate_per_minute: 60,
            relay_host: None,
        }
    }
}
