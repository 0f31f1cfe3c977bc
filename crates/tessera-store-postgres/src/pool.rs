//! A small pool of PostgreSQL connections, each with its own cache of prepared statements.
//!
//! No pool crate: the needs are small. At most [`MAX_CONNECTIONS`] connections exist; they are
//! opened lazily and kept idle after use. A connection goes back to the pool only when the
//! operation that borrowed it finished and reported no connection-level failure: one that
//! failed (I/O error, server gone) or whose operation was cancelled half-way (the caller's
//! future was dropped, so the protocol state is unknown) is closed instead, and the next
//! caller opens a fresh one.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use tessera_core::store::StoreResult;
use tokio::sync::{Semaphore, SemaphorePermit};
use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, Config, GenericClient, NoTls, Row, Statement};

use crate::Fail;

/// The most connections one store opens to the database.
pub(crate) const MAX_CONNECTIONS: usize = 16;

/// How long opening a connection may take when the URL does not say (`connect_timeout`).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Query parameters, as tokio-postgres takes them.
pub(crate) type Params<'a> = &'a [&'a (dyn ToSql + Sync)];

/// The connection pool.
pub(crate) struct Pool {
    config: Config,
    idle: Mutex<Vec<Conn>>,
    permits: Semaphore,
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The config is left out on purpose: it may hold a password.
        let idle = self.idle.lock().map(|v| v.len()).unwrap_or(0);
        f.debug_struct("Pool")
            .field("target", &target(&self.config))
            .field("idle", &idle)
            .field("max", &MAX_CONNECTIONS)
            .finish()
    }
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

/// One open connection.
pub(crate) struct Conn {
    pub(crate) client: Client,
    pub(crate) statements: Statements,
}

impl Pool {
    /// A pool for `config` holding `first` (the connection that ran the migrations).
    pub(crate) fn new(mut config: Config, first: Client) -> Pool {
        defaults(&mut config);
        Pool {
            config,
            idle: Mutex::new(vec![Conn {
                client: first,
                statements: Statements::default(),
            }]),
            permits: Semaphore::new(MAX_CONNECTIONS),
        }
    }

    /// Borrows a connection, opening one if none is idle.
    pub(crate) async fn get(&self) -> Result<Pooled<'_>, tokio_postgres::Error> {
        let permit = self
            .permits
            .acquire()
            .await
            .expect("the pool's semaphore is never closed");
        let idle = {
            let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
            // A connection the server closed while it sat idle is simply dropped.
            idle.retain(|c| !c.client.is_closed());
            idle.pop()
        };
        let conn = match idle {
            Some(c) => c,
            None => Conn {
                client: open(&self.config).await?,
                statements: Statements::default(),
            },
        };
        Ok(Pooled {
            pool: self,
            conn: Some(conn),
            healthy: false,
            _permit: permit,
        })
    }
}

/// Fills in what the URL left unset: a bounded connect time and a name in `pg_stat_activity`.
pub(crate) fn defaults(config: &mut Config) {
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(CONNECT_TIMEOUT);
    }
    if config.get_application_name().is_none() {
        config.application_name("tessera");
    }
}

/// Opens one connection and spawns the task that drives it.
pub(crate) async fn open(config: &Config) -> Result<Client, tokio_postgres::Error> {
    let (client, connection) = config.connect(NoTls).await?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::warn!(error = %crate::describe(&e), "PostgreSQL connection ended");
        }
    });
    Ok(client)
}

/// A borrowed connection. It returns to the pool on drop only if [`Pooled::finish`] saw the
/// operation through without a connection-level failure.
pub(crate) struct Pooled<'p> {
    pool: &'p Pool,
    conn: Option<Conn>,
    healthy: bool,
    _permit: SemaphorePermit<'p>,
}

impl Pooled<'_> {
    /// The client and its statement cache, borrowed separately so that a transaction (which
    /// borrows the client) can still prepare statements.
    pub(crate) fn parts(&mut self) -> (&mut Client, &mut Statements) {
        let conn = self.conn.as_mut().expect("present until drop");
        (&mut conn.client, &mut conn.statements)
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

impl Drop for Pooled<'_> {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            if self.healthy && !conn.client.is_closed() {
                self.pool
                    .idle
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push(conn);
            }
        }
    }
}

/// Prepared statements of one connection, by SQL text. Every statement is prepared once per
/// connection, so each later use is a single round trip.
#[derive(Default)]
pub(crate) struct Statements(HashMap<&'static str, Statement>);

impl Statements {
    /// The prepared form of `sql` on the connection behind `c`.
    async fn get<C: GenericClient + Sync>(
        &mut self,
        c: &C,
        sql: &'static str,
    ) -> Result<Statement, tokio_postgres::Error> {
        if let Some(st) = self.0.get(sql) {
            return Ok(st.clone());
        }
        let st = c.prepare(sql).await?;
        self.0.insert(sql, st.clone());
        Ok(st)
    }

    /// Runs a query returning rows.
    pub(crate) async fn query<C: GenericClient + Sync>(
        &mut self,
        c: &C,
        sql: &'static str,
        params: Params<'_>,
    ) -> Result<Vec<Row>, tokio_postgres::Error> {
        let st = self.get(c, sql).await?;
        c.query(&st, params).await
    }

    /// Runs a query returning at most one row.
    pub(crate) async fn query_opt<C: GenericClient + Sync>(
        &mut self,
        c: &C,
        sql: &'static str,
        params: Params<'_>,
    ) -> Result<Option<Row>, tokio_postgres::Error> {
        let st = self.get(c, sql).await?;
        c.query_opt(&st, params).await
    }

    /// Runs a statement and returns the number of rows it touched.
    pub(crate) async fn execute<C: GenericClient + Sync>(
        &mut self,
        c: &C,
        sql: &'static str,
        params: Params<'_>,
    ) -> Result<u64, tokio_postgres::Error> {
        let st = self.get(c, sql).await?;
        c.execute(&st, params).await
    }
}
