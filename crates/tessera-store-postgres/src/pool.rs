//! The pool of PostgreSQL connections: `deadpool-postgres`, with a bounded wait for a
//! connection, and our rule for which connections go back to it.
//!
//! At most [`Settings::max_size`] connections exist; they are opened lazily and kept idle after
//! use (last in, first out, so that a light load keeps a few warm connections, each with its
//! prepared statements, rather than cycling through all of them). A request that finds every
//! connection busy waits at most [`Settings::wait`] and then fails with
//! `StoreError::Unavailable` (answered 503), instead of queueing until the request deadline.
//!
//! Which connections are reused:
//! - one whose operation failed at the connection level (I/O error, server gone) or was
//!   cancelled half-way (the caller's future was dropped, so the protocol state is unknown) is
//!   taken out of the pool and closed by [`Pooled`]'s drop; the next caller opens a fresh one;
//! - one the server closed while it sat idle (PostgreSQL restarted, `pg_terminate_backend`,
//!   `idle_session_timeout`) is dropped when it is next checked out: deadpool's recycling
//!   looks at `is_closed()` first.
//!
//! Recycling is `RecyclingMethod::Fast` (that `is_closed()` check and nothing else), not
//! `Verified`: a verifying `SELECT 1` would be a second round trip on every store call, the
//! hot paths' dominant cost. What it would add is small: a connection that died silently (no
//! FIN reached us, e.g. a network partition) surfaces as an I/O error on its next operation,
//! which answers that one request 503 and discards the connection.
//!
//! Prepared statements are cached per connection by deadpool-postgres (`StatementCache`, which
//! lives and dies with its connection), keyed by SQL text like the cache it replaced; a cache
//! hit costs an uncontended read lock and a hash of the SQL, next to a network round trip.

use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::{
    Manager, ManagerConfig, Object, PoolError, QueueMode, RecyclingMethod, Runtime, StatementCache,
    TimeoutType,
};
use tessera_core::store::{StoreError, StoreResult};
use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, Config, GenericClient, NoTls, Row, Statement};

use crate::{describe, Fail, OpenError};

/// The most connections one store opens to the database, unless the URL says
/// (`pool_max_size`).
pub(crate) const MAX_CONNECTIONS: usize = 16;

/// How long a request waits for a free connection, unless the URL says (`pool_wait_timeout`).
/// Well inside the server's request deadline (30 s), so that an exhausted pool answers 503
/// with its own reason rather than the deadline's.
pub(crate) const WAIT_TIMEOUT: Duration = Duration::from_secs(5);

/// How long opening a connection may take when the URL does not say (`connect_timeout`).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The URL query parameter setting the pool size (1 to [`MAX_SIZE_LIMIT`]).
pub(crate) const POOL_MAX_SIZE: &str = "pool_max_size";

/// The URL query parameter setting the wait for a free connection, in seconds (decimals
/// allowed, more than 0 and at most [`WAIT_LIMIT`]).
pub(crate) const POOL_WAIT_TIMEOUT: &str = "pool_wait_timeout";

/// The largest `pool_max_size` accepted: far above what one node can use (PostgreSQL's own
/// default `max_connections` is 100), low enough to catch a typo.
const MAX_SIZE_LIMIT: usize = 1024;

/// The longest `pool_wait_timeout` accepted, in seconds: past the request deadline a longer
/// wait could not change any answer.
const WAIT_LIMIT: f64 = 3600.0;

/// Query parameters, as tokio-postgres takes them.
pub(crate) type Params<'a> = &'a [&'a (dyn ToSql + Sync)];

/// Where to connect and how many connections to keep: a database URL parsed once.
pub(crate) struct Settings {
    /// The connection parameters tokio-postgres understands (the URL without ours).
    pub(crate) config: Config,
    /// The most connections open at once.
    pub(crate) max_size: usize,
    /// How long a caller waits for a free connection before `Unavailable`.
    pub(crate) wait: Duration,
}

impl Settings {
    /// Parses a `postgres://` URL (or a `key=value` connection string): takes out the pool's
    /// own query parameters ([`POOL_MAX_SIZE`], [`POOL_WAIT_TIMEOUT`]), which tokio-postgres
    /// would refuse as unknown, and hands the rest to tokio-postgres. Fills in what the URL left
    /// unset: a bounded connect time and a name in `pg_stat_activity`.
    pub(crate) fn parse(url: &str) -> Result<Settings, OpenError> {
        let (rest, max_size, wait) = take_pool_params(url)?;
        let mut config: Config = rest.parse().map_err(|source| OpenError::Postgres {
            target: "(unparsable URL)".into(),
            source,
        })?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        if config.get_application_name().is_none() {
            config.application_name("tessera");
        }
        Ok(Settings {
            config,
            max_size: max_size.unwrap_or(MAX_CONNECTIONS),
            wait: wait.unwrap_or(WAIT_TIMEOUT),
        })
    }

    /// `user@host:port/dbname` for messages: never the password.
    pub(crate) fn target(&self) -> String {
        target(&self.config)
    }
}

/// Splits the pool's parameters off a URL's query: the URL without them, and their values.
fn take_pool_params(url: &str) -> Result<(String, Option<usize>, Option<Duration>), OpenError> {
    let invalid = |reason: String| OpenError::Pool(reason);
    let Some((base, query)) = url.split_once('?') else {
        return Ok((url.to_string(), None, None));
    };
    let (mut max_size, mut wait) = (None, None);
    let mut kept: Vec<&str> = Vec::new();
    for pair in query.split('&') {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        match key {
            POOL_MAX_SIZE => {
                let n = value
                    .parse::<usize>()
                    .ok()
                    .filter(|n| (1..=MAX_SIZE_LIMIT).contains(n))
                    .ok_or_else(|| {
                        invalid(format!(
                            "{POOL_MAX_SIZE} must be a whole number from 1 to {MAX_SIZE_LIMIT}, \
                             not {value:?}"
                        ))
                    })?;
                max_size = Some(n);
            }
            POOL_WAIT_TIMEOUT => {
                let d = value
                    .parse::<f64>()
                    .ok()
                    .filter(|s| *s > 0.0 && *s <= WAIT_LIMIT)
                    .and_then(|s| Duration::try_from_secs_f64(s).ok())
                    .ok_or_else(|| {
                        invalid(format!(
                            "{POOL_WAIT_TIMEOUT} must be a number of seconds above 0 and at \
                             most {WAIT_LIMIT}, not {value:?}"
                        ))
                    })?;
                wait = Some(d);
            }
            _ => kept.push(pair),
        }
    }
    let rest = if kept.is_empty() {
        base.to_string()
    } else {
        format!("{base}?{}", kept.join("&"))
    };
    Ok((rest, max_size, wait))
}

/// `user@host:port/dbname` for messages: never the password.
pub(crate) fn target(config: &Config) -> String {
    let hosts: Vec<String> = config
        .get_hosts()
        .iter()
        .zip(config.get_ports().iter().chain(std::iter::repeat(&5432)))
        .map(|(h, p)| match h {
            tokio_postgres::config::Host::Tcp(h) => format!("{h}:{p}"),
            #[cfg(unix)]
            tokio_postgres::config::Host::Unix(path) => format!("{}:{p}", path.display()),
        })
        .collect();
    format!(
        "{}@{}/{}",
        config.get_user().unwrap_or(""),
        hosts.join(","),
        config.get_dbname().unwrap_or("")
    )
}

/// The connection pool.
pub(crate) struct Pool {
    inner: deadpool_postgres::Pool,
    /// `user@host:port/dbname`, for messages.
    target: String,
    /// The wait bound, for the message when it passes.
    wait: Duration,
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The config is left out on purpose: it may hold a password.
        let status = self.inner.status();
        f.debug_struct("Pool")
            .field("target", &self.target)
            .field("open", &status.size)
            .field("idle", &status.available)
            .field("max", &status.max_size)
            .field("wait", &self.wait)
            .finish()
    }
}

impl Pool {
    /// A pool for `settings`. Opens nothing yet: connections are opened as callers need them.
    pub(crate) fn new(settings: Settings) -> Result<Pool, OpenError> {
        let target = settings.target();
        let manager_config = ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        };
        // TLS goes here: the next issue passes a rustls `MakeTlsConnect` (chosen from the
        // URL's `sslmode` and root certificates) instead of `NoTls`. Several hosts and
        // `target_session_attrs` need nothing here: they are part of tokio-postgres's `Config`.
        let manager = Manager::from_config(settings.config, NoTls, manager_config);
        let inner = deadpool_postgres::Pool::builder(manager)
            .max_size(settings.max_size)
            .queue_mode(QueueMode::Lifo)
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(settings.wait))
            // Opening is bounded by the config's `connect_timeout`, and recycling does no I/O
            // (`Fast`): neither needs a timer of the pool's.
            .create_timeout(None)
            .recycle_timeout(None)
            .build()
            .map_err(|e| OpenError::Pool(format!("cannot build the connection pool: {e}")))?;
        Ok(Pool {
            inner,
            target,
            wait: settings.wait,
        })
    }

    /// `user@host:port/dbname`, for messages.
    pub(crate) fn target(&self) -> &str {
        &self.target
    }

    /// Borrows a connection: an idle one, else a new one if fewer than the maximum are open,
    /// else the first one returned within the wait bound.
    pub(crate) async fn get(&self) -> Result<Pooled, GetError> {
        let object = self.inner.get().await.map_err(|e| match e {
            PoolError::Backend(e) => GetError::Connect(e),
            PoolError::Timeout(TimeoutType::Wait) => GetError::Busy(self.wait),
            other => GetError::Other(other.to_string()),
        })?;
        let statements = Statements(object.statement_cache.clone());
        Ok(Pooled {
            object: Some(object),
            statements,
            healthy: false,
        })
    }

    /// Borrows a connection for the store: failures as [`StoreError::Unavailable`].
    pub(crate) async fn conn(&self) -> StoreResult<Pooled> {
        self.get().await.map_err(StoreError::from)
    }
}

/// Why no connection could be borrowed.
#[derive(Debug)]
pub(crate) enum GetError {
    /// Opening a new connection failed.
    Connect(tokio_postgres::Error),
    /// Every connection stayed busy for the whole wait bound.
    Busy(Duration),
    /// The pool itself refused (it cannot happen with this pool's settings; kept as text).
    Other(String),
}

impl From<GetError> for StoreError {
    fn from(e: GetError) -> Self {
        StoreError::Unavailable(match e {
            GetError::Connect(e) => describe(&e),
            GetError::Busy(wait) => {
                format!("no PostgreSQL connection became free within {wait:?}")
            }
            GetError::Other(why) => why,
        })
    }
}

/// A borrowed connection. It returns to the pool on drop only if [`Pooled::finish`] saw the
/// operation through without a connection-level failure; otherwise it is taken out of the
/// pool and closed.
pub(crate) struct Pooled {
    object: Option<Object>,
    statements: Statements,
    healthy: bool,
}

impl Pooled {
    /// The client and its statement cache, borrowed separately so that a transaction (which
    /// borrows the client mutably) can still prepare statements.
    pub(crate) fn parts(&mut self) -> (&mut Client, &Statements) {
        let client: &mut Client = self.object.as_mut().expect("present until drop");
        (client, &self.statements)
    }

    /// Ends an operation that went well outside [`Pooled::finish`] (the migrations): the
    /// connection goes back to the pool.
    pub(crate) fn keep(mut self) {
        self.healthy = true;
    }

    /// Ends the operation: maps its error and decides whether the connection can be reused.
    pub(crate) fn finish<T>(mut self, result: Result<T, Fail>) -> StoreResult<T> {
        self.healthy = match &result {
            Ok(_) | Err(Fail::Store(_)) => true,
            // A database error (a constraint, say) leaves the session usable; anything else
            // (I/O, protocol, a failed conversion mid-stream) may not have.
            Err(Fail::Pg(e) | Fail::Raced(e)) => e.as_db_error().is_some(),
        };
        result.map_err(Fail::into_store)
    }
}

impl Drop for Pooled {
    fn drop(&mut self) {
        if let Some(object) = self.object.take() {
            if !self.healthy {
                // Out of the pool for good (its slot frees for a new connection); dropping the
                // client closes the connection.
                drop(Object::take(object));
            }
            // A healthy one returns to the pool when `object` drops here.
        }
    }
}

/// Prepared statements of one connection, by SQL text. Every statement is prepared once per
/// connection, so each later use is a single round trip.
pub(crate) struct Statements(Arc<StatementCache>);

impl Statements {
    /// The prepared form of `sql` on the connection behind `c`.
    async fn get<C: GenericClient + Sync>(
        &self,
        c: &C,
        sql: &'static str,
    ) -> Result<Statement, tokio_postgres::Error> {
        self.0.prepare(c.client(), sql).await
    }

    /// Runs a query returning rows.
    pub(crate) async fn query<C: GenericClient + Sync>(
        &self,
        c: &C,
        sql: &'static str,
        params: Params<'_>,
    ) -> Result<Vec<Row>, tokio_postgres::Error> {
        let st = self.get(c, sql).await?;
        c.query(&st, params).await
    }

    /// Runs a query returning at most one row.
    pub(crate) async fn query_opt<C: GenericClient + Sync>(
        &self,
        c: &C,
        sql: &'static str,
        params: Params<'_>,
    ) -> Result<Option<Row>, tokio_postgres::Error> {
        let st = self.get(c, sql).await?;
        c.query_opt(&st, params).await
    }

    /// Runs a statement and returns the number of rows it touched.
    pub(crate) async fn execute<C: GenericClient + Sync>(
        &self,
        c: &C,
        sql: &'static str,
        params: Params<'_>,
    ) -> Result<u64, tokio_postgres::Error> {
        let st = self.get(c, sql).await?;
        c.execute(&st, params).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pool_parameters_are_taken_out_of_the_url() {
        let s = Settings::parse(
            "postgres://u@h:5433/db?application_name=a&pool_max_size=3&pool_wait_timeout=0.25\
             &connect_timeout=2",
        )
        .expect("valid");
        assert_eq!(s.max_size, 3);
        assert_eq!(s.wait, Duration::from_millis(250));
        // The others reached tokio-postgres.
        assert_eq!(s.config.get_application_name(), Some("a"));
        assert_eq!(
            s.config.get_connect_timeout(),
            Some(&Duration::from_secs(2))
        );
        assert_eq!(s.target(), "u@h:5433/db");

        let s = Settings::parse("postgres://u@h/db?pool_max_size=2").expect("valid");
        assert_eq!((s.max_size, s.wait), (2, WAIT_TIMEOUT));
        assert_eq!(s.config.get_application_name(), Some("tessera"));
        let s = Settings::parse("postgres://u@h/db").expect("valid");
        assert_eq!((s.max_size, s.wait), (MAX_CONNECTIONS, WAIT_TIMEOUT));
        assert_eq!(s.config.get_connect_timeout(), Some(&CONNECT_TIMEOUT));
    }

    #[test]
    fn bad_pool_parameters_are_refused_by_name() {
        for (url, name) in [
            ("postgres://u@h/db?pool_max_size=0", POOL_MAX_SIZE),
            ("postgres://u@h/db?pool_max_size=-1", POOL_MAX_SIZE),
            ("postgres://u@h/db?pool_max_size=1025", POOL_MAX_SIZE),
            ("postgres://u@h/db?pool_max_size=", POOL_MAX_SIZE),
            ("postgres://u@h/db?pool_wait_timeout=0", POOL_WAIT_TIMEOUT),
            ("postgres://u@h/db?pool_wait_timeout=NaN", POOL_WAIT_TIMEOUT),
            ("postgres://u@h/db?pool_wait_timeout=inf", POOL_WAIT_TIMEOUT),
            (
                "postgres://u@h/db?pool_wait_timeout=3601",
                POOL_WAIT_TIMEOUT,
            ),
            ("postgres://u@h/db?pool_wait_timeout=5s", POOL_WAIT_TIMEOUT),
        ] {
            let err = Settings::parse(url).err().expect(url);
            assert!(matches!(err, OpenError::Pool(_)), "{url}: {err}");
            assert!(err.to_string().contains(name), "{url}: {err}");
        }
    }
}
