//! One typed configuration, built by the CLI from flags and `TESSERA_*` variables and passed
//! explicitly (no globals). Secrets are wrapped so they never print.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use tessera_core::jws::SigningAlg;
use tessera_core::Secret;

/// The default listen address.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
/// The default database.
pub const DEFAULT_DATABASE: &str = "sqlite://tessera.db";
/// The largest request body accepted (64 KiB); larger bodies get 413.
pub const DEFAULT_BODY_LIMIT: usize = 64 * 1024;

/// How long a connection may take over each part of a request, and how many connections
/// are served at once. The defaults are in the range of the established servers' (nginx
/// 60 s per phase, Go's recommended `ReadHeaderTimeout` of a few seconds, hyper's 30 s for
/// headers): a slow client cannot hold a connection for minutes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// From the first byte of a request until its headers are complete.
    pub header_read: Duration,
    /// Reading a request's whole body, from the end of its headers.
    pub body_read: Duration,
    /// How long a connection may wait for the first byte of its next request (also a new
    /// connection's first request).
    pub keep_alive: Duration,
    /// From the end of a request's headers until its response is ready, body read included.
    pub request: Duration,
    /// Connections served at once; further ones wait in the listen backlog.
    pub max_connections: usize,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        ConnectionLimits {
            header_read: Duration::from_secs(10),
            body_read: Duration::from_secs(10),
            keep_alive: Duration::from_secs(30),
            request: Duration::from_secs(30),
            max_connections: 4096,
        }
    }
}

/// Checks a public URL: `http` or `https`, a host, an optional port and path, no query,
/// fragment or credentials. Returns it without a trailing slash.
pub fn parse_public_url(text: &str) -> Result<String, String> {
    let t = text.trim().trim_end_matches('/');
    let rest = t
        .strip_prefix("https://")
        .or_else(|| t.strip_prefix("http://"))
        .ok_or_else(|| format!("{text:?}: a public URL starts with https:// or http://"))?;
    let host = rest.split('/').next().unwrap_or("");
    let bad = |c: char| c.is_whitespace() || c.is_control() || matches!(c, '?' | '#' | '@' | '\\');
    if host.is_empty() || t.contains(bad) {
        return Err(format!(
            "{text:?}: give scheme, host, optional port and path, without query, fragment or credentials"
        ));
    }
    Ok(t.to_string())
}

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
    /// How Accounts access tokens are signed.
    pub accounts_signing_alg: SigningAlg,
    /// Failed logins of one account from one address, within the window, that lock the pair.
    pub lockout_failures: usize,
    /// The window over which failed logins count, seconds.
    pub lockout_window_seconds: i64,
    /// How long a locked (account, address) pair stays locked, seconds.
    pub lockout_seconds: i64,
    /// Failed logins from one address, over all accounts, within the window, that block the
    /// address for `lockout_seconds`.
    pub login_address_failures: usize,
    /// How long cached credentials, address ownership and session families are trusted,
    /// seconds (0 turns the caches off). Changes made through this node show at once; changes
    /// made by another node or by `tessera admin` show within this plus one second.
    pub cache_ttl_seconds: i64,
    /// Days audit events are kept (0 keeps them forever).
    pub audit_retention_days: u32,
    /// The URL clients reach this server at (`https://tokens.example.com`, no trailing
    /// slash), used wherever an absolute URL is needed; without it links are relative. Never
    /// taken from request headers.
    pub public_url: Option<String>,
    /// Connection timeouts and the connection cap.
    pub limits: ConnectionLimits,
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
            accounts_signing_alg: SigningAlg::Hs256,
            lockout_failures: 5,
            lockout_window_seconds: 180,
            lockout_seconds: 900,
            login_address_failures: 30,
            cache_ttl_seconds: tessera_core::cache::DEFAULT_TTL,
            audit_retention_days: 90,
            public_url: None,
            limits: ConnectionLimits::default(),
        }
    }
}
