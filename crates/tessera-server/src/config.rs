//! One typed configuration, built by the CLI from flags and `TESSERA_*` variables and passed
//! explicitly (no globals). Secrets are wrapped so they never print.

use std::fmt;
use std::net::SocketAddr;
use std::num::{NonZeroU32, NonZeroUsize};
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use tessera_core::jws::SigningAlg;
use tessera_core::Secret;

/// The default listen address.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
/// The default database.
pub const DEFAULT_DATABASE: &str = "sqlite://tessera.db";
/// The longest duration any `*_seconds` setting accepts: a hundred years. Longer ones would
/// overflow when added to a Unix time in seconds, and no deployment means them.
pub const MAX_SECONDS: u64 = 100 * 365 * 24 * 3600;
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
    pub max_connections: NonZeroUsize,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        ConnectionLimits {
            header_read: Duration::from_secs(10),
            body_read: Duration::from_secs(10),
            keep_alive: Duration::from_secs(30),
            request: Duration::from_secs(30),
            max_connections: NonZeroUsize::new(4096).expect("4096 is not zero"),
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

/// The database, parsed once from its URL (`--database`, `TESSERA_DATABASE_URL`). The server,
/// the admin commands, export and import and the bench all match on it; nothing else looks
/// at a URL's scheme.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Database {
    /// A SQLite file: `sqlite://PATH` (relative to the working directory) or
    /// `sqlite:///ABSOLUTE/PATH`; `sqlite:PATH` is accepted too, and a `?…` suffix is ignored.
    Sqlite(PathBuf),
    /// A PostgreSQL database: `postgres://…` or `postgresql://…`.
    Postgres(PostgresUrl),
}

/// Why a database URL was refused. The message repeats the URL with any password replaced.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DatabaseUrlError {
    /// The scheme names no backend this build has.
    #[error("unsupported database URL {0:?}: use sqlite://PATH, sqlite:///ABSOLUTE/PATH or postgres://USER@HOST:PORT/DBNAME")]
    Unsupported(String),
    /// `sqlite://` without a path.
    #[error("the database URL {0:?} names no file: use sqlite://PATH or sqlite:///ABSOLUTE/PATH")]
    NoPath(String),
}

impl Database {
    /// Parses a database URL; see [`Database`] for the forms accepted.
    pub fn parse(url: &str) -> Result<Database, DatabaseUrlError> {
        if tessera_store_postgres::is_postgres_url(url) {
            return Ok(Database::Postgres(PostgresUrl(url.to_string())));
        }
        if url.starts_with("sqlite:") {
            // The SQLite store owns the form of its URLs; an empty path is refused here so
            // that the message can say what is missing.
            return tessera_store_sqlite::path_from_url(url)
                .map(Database::Sqlite)
                .ok_or_else(|| DatabaseUrlError::NoPath(redact_url(url)));
        }
        Err(DatabaseUrlError::Unsupported(redact_url(url)))
    }

    /// The SQLite file, for a SQLite database.
    pub fn sqlite_path(&self) -> Option<&std::path::Path> {
        match self {
            Database::Sqlite(path) => Some(path),
            Database::Postgres(_) => None,
        }
    }

    /// The backend's name, as the bench reports it: `sqlite` or `postgres`.
    pub fn backend(&self) -> &'static str {
        match self {
            Database::Sqlite(_) => "sqlite",
            Database::Postgres(_) => "postgres",
        }
    }

    /// The whole URL, password included, to hand to another process (`tessera serve
    /// --database …`). Never log or print it; [`fmt::Display`] is the printable form.
    pub fn expose_url(&self) -> String {
        match self {
            Database::Sqlite(path) => format!("sqlite://{}", path.display()),
            Database::Postgres(url) => url.expose().to_string(),
        }
    }
}

impl FromStr for Database {
    type Err = DatabaseUrlError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Database::parse(s)
    }
}

impl fmt::Display for Database {
    /// `sqlite://PATH`, or the PostgreSQL URL with its password replaced by `***`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Database::Sqlite(path) => write!(f, "sqlite://{}", path.display()),
            Database::Postgres(url) => fmt::Display::fmt(url, f),
        }
    }
}

/// A PostgreSQL connection URL. It may hold a password (`postgres://user:pw@host/db` or
/// `?password=pw`), so its `Display` and `Debug` replace that with `***`; only
/// [`PostgresUrl::expose`] gives the text that connects.
#[derive(Clone, PartialEq, Eq)]
pub struct PostgresUrl(String);

impl PostgresUrl {
    /// The URL as given, password included: for connecting, never for printing.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for PostgresUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&redact_url(&self.0))
    }
}

impl fmt::Debug for PostgresUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("PostgresUrl")
            .field(&redact_url(&self.0))
            .finish()
    }
}

/// `url` with the password of its user information (`scheme://user:PASSWORD@host`) and the
/// value of any `password=` query parameter replaced by `***`.
///
/// The user information is taken to end at the *last* `@`, so that a password holding an
/// unescaped `@`, `/` or `?` is still hidden whole; a URL that has an `@` further on (in a
/// query value) then shows less than it could, never more.
fn redact_url(url: &str) -> String {
    let (scheme, rest) = match url.find("://") {
        Some(i) => url.split_at(i + 3),
        None => ("", url),
    };
    let (userinfo, after) = match rest.rfind('@') {
        Some(at) => (Some(&rest[..at]), &rest[at..]),
        None => (None, rest),
    };
    let mut out = String::with_capacity(url.len());
    out.push_str(scheme);
    if let Some(userinfo) = userinfo {
        match userinfo.split_once(':') {
            Some((user, _password)) => {
                out.push_str(user);
                out.push_str(":***");
            }
            None => out.push_str(userinfo),
        }
    }
    match after.split_once('?') {
        Some((head, query)) => {
            out.push_str(head);
            out.push('?');
            let params: Vec<String> = query
                .split('&')
                .map(|param| match param.split_once('=') {
                    Some((key, _)) if key.eq_ignore_ascii_case("password") => {
                        format!("{key}=***")
                    }
                    _ => param.to_string(),
                })
                .collect();
            out.push_str(&params.join("&"));
        }
        None => out.push_str(after),
    }
    out
}

/// Server configuration. Every field holds a value already checked: the CLI's flags parse
/// into these types, so a count that must be positive is a `NonZero*` and a span of time a
/// [`Duration`] (the flags take whole seconds, bounded by [`MAX_SECONDS`]).
#[derive(Debug, Clone)]
pub struct Config {
    /// Address to listen on (port 0 picks a free port).
    pub listen: SocketAddr,
    /// The database.
    pub database: Database,
    /// The master key itself (base64 of 32 bytes), from `TESSERA_MASTER_KEY`.
    pub master_key: Option<Secret<String>>,
    /// A file holding the master key.
    pub master_key_file: Option<PathBuf>,
    /// Grace window for a just-spent refresh token (zero disables).
    pub refresh_grace: Duration,
    /// Default access-token lifetime (the CLI accepts at least a second).
    pub access_token_lifetime: Duration,
    /// The furthest expiry a caller may request, from now (the CLI accepts at least a second).
    pub max_token_lifetime: Duration,
    /// Largest request body, bytes.
    pub body_limit: usize,
    /// Embed exchanges allowed per client address per minute.
    pub embed_rate_per_minute: NonZeroU32,
    /// Relay host announced in token headers (`ch`).
    pub relay_host: Option<String>,
    /// How Accounts access tokens are signed.
    pub accounts_signing_alg: SigningAlg,
    /// Failed logins of one account from one address, within the window, that lock the pair.
    pub lockout_failures: NonZeroUsize,
    /// The window over which failed logins count (the CLI accepts at least a second).
    pub lockout_window: Duration,
    /// How long a locked (account, address) pair stays locked.
    pub lockout: Duration,
    /// Failed logins from one address, over all accounts, within the window, that block the
    /// address for `lockout`.
    pub login_address_failures: NonZeroUsize,
    /// Proxies whose `X-Forwarded-For` / `Forwarded` headers name the client (none by
    /// default: the TCP peer is the client).
    pub trusted_proxies: crate::proxies::TrustedProxies,
    /// How long cached credentials, address ownership and session families are trusted (zero
    /// turns the caches off). Changes made through this node show at once; changes made by
    /// another node or by `tessera admin` show within this plus one second.
    pub cache_ttl: Duration,
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
            database: Database::parse(DEFAULT_DATABASE).expect("valid default"),
            master_key: None,
            master_key_file: None,
            refresh_grace: Duration::from_secs(5),
            access_token_lifetime: Duration::from_secs(2 * 3600),
            max_token_lifetime: Duration::from_secs(24 * 3600),
            body_limit: DEFAULT_BODY_LIMIT,
            embed_rate_per_minute: NonZeroU32::new(60).expect("not zero"),
            relay_host: None,
            accounts_signing_alg: SigningAlg::Hs256,
            lockout_failures: NonZeroUsize::new(5).expect("not zero"),
            lockout_window: Duration::from_secs(180),
            lockout: Duration::from_secs(900),
            login_address_failures: NonZeroUsize::new(30).expect("not zero"),
            trusted_proxies: Default::default(),
            cache_ttl: Duration::from_secs(tessera_core::cache::DEFAULT_TTL.unsigned_abs()),
            audit_retention_days: 90,
            public_url: None,
            limits: ConnectionLimits::default(),
        }
    }
}

/// Whole seconds of `d`, as the core's policies count time (`i64` seconds). Config values are
/// bounded by [`MAX_SECONDS`], so this never saturates for them.
pub fn whole_seconds(d: Duration) -> i64 {
    i64::try_from(d.as_secs()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn postgres(url: &str) -> Database {
        Database::Postgres(PostgresUrl(url.to_string()))
    }

    #[test]
    fn sqlite_urls_name_a_relative_or_absolute_file() {
        assert_eq!(
            Database::parse("sqlite://tessera.db"),
            Ok(Database::Sqlite("tessera.db".into()))
        );
        assert_eq!(
            Database::parse("sqlite://data/t.db"),
            Ok(Database::Sqlite("data/t.db".into()))
        );
        assert_eq!(
            Database::parse("sqlite:///var/lib/tessera.db"),
            Ok(Database::Sqlite("/var/lib/tessera.db".into()))
        );
        assert_eq!(
            Database::parse("sqlite:t.db"),
            Ok(Database::Sqlite("t.db".into()))
        );
        assert_eq!(
            Database::parse("sqlite://t.db?mode=rwc"),
            Ok(Database::Sqlite("t.db".into()))
        );
        let db = Database::parse("sqlite:///var/lib/tessera.db").unwrap();
        assert_eq!(db.to_string(), "sqlite:///var/lib/tessera.db");
        assert_eq!(db.expose_url(), "sqlite:///var/lib/tessera.db");
        assert_eq!(db.backend(), "sqlite");
        assert_eq!(
            db.sqlite_path(),
            Some(std::path::Path::new("/var/lib/tessera.db"))
        );
    }

    #[test]
    fn the_default_is_a_sqlite_file_beside_the_working_directory() {
        assert_eq!(
            Config::default().database,
            Database::Sqlite("tessera.db".into())
        );
    }

    #[test]
    fn postgres_urls_keep_their_text_for_connecting() {
        for url in [
            "postgres://tessera@db.internal:5432/tessera",
            "postgresql://u@h:5433/db?sslmode=disable",
        ] {
            let db = Database::parse(url).unwrap();
            assert_eq!(db, postgres(url));
            assert_eq!(db.expose_url(), url);
            assert_eq!(db.to_string(), url, "nothing to hide");
            assert_eq!(db.backend(), "postgres");
            assert_eq!(db.sqlite_path(), None);
        }
    }

    #[test]
    fn anything_else_is_refused_with_the_forms_accepted() {
        for garbage in [
            "",
            "tessera.db",
            "/var/lib/tessera.db",
            "mysql://u@h/db",
            "SQLITE://t.db",
            "postgres:/h/db",
            "http://h/db",
        ] {
            let err = Database::parse(garbage).unwrap_err();
            assert!(
                matches!(err, DatabaseUrlError::Unsupported(_)),
                "{garbage:?}: {err:?}"
            );
            let message = err.to_string();
            assert!(message.contains("sqlite://PATH"), "{message}");
            assert!(message.contains("postgres://"), "{message}");
        }
        for empty in ["sqlite://", "sqlite:", "sqlite://?mode=ro"] {
            let err = Database::parse(empty).unwrap_err();
            assert!(
                matches!(err, DatabaseUrlError::NoPath(_)),
                "{empty:?}: {err:?}"
            );
            assert!(err.to_string().contains("names no file"), "{err}");
        }
        assert!("mysql://h".parse::<Database>().is_err());
    }

    #[test]
    fn a_postgres_password_never_prints() {
        let cases = [
            (
                "postgres://tessera:s3cret@db:5432/tessera",
                "postgres://tessera:***@db:5432/tessera",
            ),
            (
                "postgresql://u:s3cret@h1,h2/db?sslmode=require",
                "postgresql://u:***@h1,h2/db?sslmode=require",
            ),
            // A password with unescaped URL delimiters is hidden whole.
            ("postgres://u:s3cret/x?y@z@h/db", "postgres://u:***@h/db"),
            (
                "postgres://u@h/db?password=s3cret&application_name=a",
                "postgres://u@h/db?password=***&application_name=a",
            ),
            (
                "postgres://h/db?sslmode=disable&Password=s3cret",
                "postgres://h/db?sslmode=disable&Password=***",
            ),
        ];
        for (url, shown) in cases {
            let db = Database::parse(url).unwrap();
            assert_eq!(db.to_string(), shown);
            assert_eq!(db.expose_url(), url, "the connecting text is whole");
            let debug = format!("{db:?}");
            assert!(debug.contains(shown), "{debug}");
            let config = Config {
                database: db.clone(),
                ..Config::default()
            };
            for printed in [debug, format!("{config:?}"), format!("{:#?}", config)] {
                assert!(!printed.contains("s3cret"), "{printed}");
            }
        }
        // A refused URL is repeated in the message, redacted as well.
        let err = Database::parse("mysql://root:s3cret@h/db").unwrap_err();
        assert!(!err.to_string().contains("s3cret"), "{err}");
        assert!(err.to_string().contains("mysql://root:***@h/db"), "{err}");
        let err = Database::parse("postgre://root:s3cret@h/db").unwrap_err();
        assert!(!format!("{err} {err:?}").contains("s3cret"), "{err:?}");
    }

    #[test]
    fn whole_seconds_of_a_duration() {
        assert_eq!(whole_seconds(Duration::from_secs(900)), 900);
        assert_eq!(whole_seconds(Duration::from_millis(1500)), 1);
        assert_eq!(
            whole_seconds(Duration::from_secs(MAX_SECONDS)),
            3_153_600_000
        );
        assert_eq!(whole_seconds(Duration::MAX), i64::MAX);
    }
}
