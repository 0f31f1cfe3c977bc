//! Scratch schemas for tests that need PostgreSQL (this crate's and the server's contract
//! suite).
//!
//! Tests read the server's URL from [`URL_VAR`]; without it they say SKIP and pass, so the
//! suite runs anywhere and CI, which sets the variable, runs it for real. Each test works in a
//! schema of its own, created here and dropped by [`SchemaGuard`], so tests run in parallel
//! against one database without seeing each other's rows.

use tokio_postgres::NoTls;

/// The environment variable naming the test server, e.g.
/// `postgres://postgres@127.0.0.1:5432/test`.
pub const URL_VAR: &str = "TESSERA_TEST_POSTGRES_URL";

/// The test server's URL, or `None` after printing `SKIP: TESSERA_TEST_POSTGRES_URL is not
/// set` through [`skip`] (the caller then returns early and passes).
pub fn url_from_env() -> Option<String> {
    match std::env::var(URL_VAR) {
        Ok(url) if !url.trim().is_empty() => Some(url),
        _ => {
            skip(&format!("{URL_VAR} is not set"));
            None
        }
    }
}

/// Prints `SKIP: {reason}` where `cargo test` shows it: the one way every test of the
/// workspace reports a suite that did not run for want of a prerequisite (a PostgreSQL URL,
/// a Python SDK).
///
/// libtest captures what `print!`/`eprint!` write (it swaps their output sink per test
/// thread) and shows it only for failed tests, so a skipped test that passes would say
/// nothing. A write to the process's stderr handle goes around that capture; the line is
/// written in one call so that parallel tests do not interleave inside it, and names the test
/// (libtest runs each on a thread named after it), since the `test … ok` lines of parallel
/// tests come in any order.
pub fn skip(reason: &str) {
    use std::io::Write;
    let line = match std::thread::current().name() {
        Some(test) if test != "main" => format!("SKIP: {test}: {reason}\n"),
        _ => format!("SKIP: {reason}\n"),
    };
    let _ = std::io::stderr().lock().write_all(line.as_bytes());
}

/// Creates a fresh, empty schema `t_<random>` and returns a URL that works in it (its
/// `search_path` is set through the `options` parameter), with the guard that drops it.
///
/// # Panics
///
/// If the server cannot be reached or refuses to create the schema: this is a test helper.
pub async fn scratch_schema(base_url: &str) -> (String, SchemaGuard) {
    let schema = format!("t_{}", uuid::Uuid::new_v4().simple());
    let client = connect(base_url)
        .await
        .unwrap_or_else(|e| panic!("cannot reach the test PostgreSQL: {e}"));
    client
        .batch_execute(&format!("CREATE SCHEMA {schema}"))
        .await
        .unwrap_or_else(|e| panic!("cannot create schema {schema}: {e}"));
    let url = with_search_path(base_url, &schema);
    (
        url,
        SchemaGuard {
            base_url: base_url.to_string(),
            schema,
            dropped: false,
        },
    )
}

/// `base_url` with its search path set to `schema`. URLs take it percent-encoded
/// (`options=-c%20search_path%3Dt_x`); key=value connection strings as a quoted value.
pub fn with_search_path(base_url: &str, schema: &str) -> String {
    if crate::is_postgres_url(base_url) {
        let sep = if base_url.contains('?') { '&' } else { '?' };
        format!("{base_url}{sep}options=-c%20search_path%3D{schema}")
    } else {
        format!("{base_url} options='-c search_path={schema}'")
    }
}

async fn connect(url: &str) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
    let (client, connection) = tokio_postgres::connect(url, NoTls).await?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(client)
}

/// Owns a scratch schema: dropping the guard (also while a failing test unwinds) drops the
/// schema with everything in it. Prefer [`SchemaGuard::drop_now`] at the end of a test that
/// passed; the `Drop` fallback has to run its own small runtime on a helper thread.
#[derive(Debug)]
pub struct SchemaGuard {
    base_url: String,
    schema: String,
    dropped: bool,
}

impl SchemaGuard {
    /// The schema's name.
    pub fn schema(&self) -> &str {
        &self.schema
    }

    /// Drops the schema now. A failure is printed, not raised: it only leaves litter.
    pub async fn drop_now(mut self) {
        self.dropped = true;
        if let Err(e) = drop_schema(&self.base_url, &self.schema).await {
            eprintln!("warning: could not drop schema {}: {e}", self.schema);
        }
    }
}

async fn drop_schema(base_url: &str, schema: &str) -> Result<(), tokio_postgres::Error> {
    let client = connect(base_url).await?;
    // A connection of the test that is stuck in a transaction would otherwise block this
    // forever; failing leaves the schema behind, which is better than a hung test run.
    client
        .batch_execute(&format!(
            "SET lock_timeout = '10s'; DROP SCHEMA IF EXISTS {schema} CASCADE"
        ))
        .await
}

impl Drop for SchemaGuard {
    fn drop(&mut self) {
        if self.dropped {
            return;
        }
        self.dropped = true;
        let (url, schema) = (self.base_url.clone(), self.schema.clone());
        // Drop cannot await, and blocking the test's own runtime (often single-threaded)
        // would stall the connection tasks it drives; a helper thread with its own runtime
        // does neither.
        let worker = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build();
            match rt {
                Ok(rt) => {
                    if let Err(e) = rt.block_on(drop_schema(&url, &schema)) {
                        eprintln!("warning: could not drop schema {schema}: {e}");
                    }
                }
                Err(e) => eprintln!("warning: could not drop schema {schema}: {e}"),
            }
        });
        let _ = worker.join();
    }
}

/// Migrates the database at `url` to schema `version` only, as an older Tessera left it, so
/// that a test can write rows the old way and then let this build migrate them.
///
/// # Panics
///
/// If the migrations fail: this is a test helper.
pub async fn migrate_to(url: &str, version: i64) {
    let (pool, mut first) = crate::open_url(url).await.expect("connect");
    crate::run_migrations_through(first.parts().0, pool.target(), version)
        .await
        .expect("migrate");
    first.keep();
}
