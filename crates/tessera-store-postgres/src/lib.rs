//! The PostgreSQL implementation of [`Store`], for several Tessera nodes sharing one database.
//!
//! Its observable behaviour is the SQLite store's, method by method: the same records, the same
//! [`StoreError`] for the same mistake, the same outcome of every race the SQLite writer decides
//! by running writes one at a time. Here writes from many nodes run concurrently, so each
//! method states how it stays correct:
//!
//! - single-statement writes are autocommitted; multi-statement writes run in one transaction
//!   (READ COMMITTED), and every method returns only after its commit;
//! - the refresh race is one conditional `UPDATE … WHERE generation = $n`: PostgreSQL
//!   re-checks the condition on the row a concurrent winner committed, so of N concurrent
//!   spends of one generation exactly one updates a row;
//! - read-modify-write methods lock the row they read (`FOR UPDATE`), key activation takes an
//!   advisory lock, and a grant that lost a race to create the same subscriber is retried (and
//!   then finds it), as are transactions PostgreSQL aborts for a deadlock.
//!
//! Ids are stored as `UUID`, which orders exactly like SQLite's canonical UUID text, so
//! keyset pages come out in the same order on both backends.

mod pool;
mod rows;
pub mod testing;
mod transfer;

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use tessera_core::clock::UnixTime;
use tessera_core::ids::*;
use tessera_core::metrics::{Metrics, Stopwatch};
use tessera_core::model::*;
use tessera_core::store::{next_batch, ExportRow, Store, StoreError, StoreResult};
use tokio_postgres::error::SqlState;
use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, Row, Transaction};
use uuid::Uuid;

use pool::{GetError, Params, Pool, Pooled, Settings, Statements};
use rows::*;

/// The migrations this build knows, in order. The schema version is the number applied; the
/// versions mean the same schema as the SQLite store's versions.
const MIGRATIONS: &[&str] = &[
    include_str!("../migrations/0001_init.sql"),
    include_str!("../migrations/0002_lifecycle.sql"),
    include_str!("../migrations/0003_operators.sql"),
    include_str!("../migrations/0004_hot_path.sql"),
    include_str!("../migrations/0005_purge.sql"),
    include_str!("../migrations/0006_grant_writes.sql"),
    include_str!("../migrations/0007_identity_keys.sql"),
    include_str!("../migrations/0008_master_key_check.sql"),
];

/// The newest schema version this build knows.
const KNOWN_VERSION: i64 = MIGRATIONS.len() as i64;

/// Advisory lock held (for its transaction) by whoever migrates, so that nodes starting
/// together migrate one after the other. The number is arbitrary but fixed ("tessera" in ASCII).
const MIGRATION_LOCK: i64 = 0x0074_6573_7365_7261;

/// Advisory lock serialising key activations, so that two nodes activating two keys of one
/// purpose at once cannot both leave theirs active.
const KEY_LOCK: i64 = 0x0174_6573_7365_7261;

/// How many times a transaction is re-run after PostgreSQL aborted it for a deadlock, a
/// serialization failure or a lost creation race.
const RETRIES: u32 = 3;

/// Whether `url` names a PostgreSQL database (`postgres://…` or `postgresql://…`).
pub fn is_postgres_url(url: &str) -> bool {
    url.starts_with("postgres://") || url.starts_with("postgresql://")
}

/// Why the database could not be opened or migrated.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// The URL is invalid, the server cannot be reached, or it refused a statement.
    #[error("cannot use the PostgreSQL database {target}: {}", describe(.source))]
    Postgres {
        /// `user@host:port/dbname` (never the password).
        target: String,
        /// The cause.
        source: tokio_postgres::Error,
    },
    /// The URL's pool parameters (`pool_max_size`, `pool_wait_timeout`) are invalid, or the
    /// pool gave no connection for another reason than the server's (the message says).
    #[error("cannot use the PostgreSQL database: {0}")]
    Pool(String),
    /// The database was migrated by a newer Tessera.
    #[error("the database schema is version {found}, newer than this Tessera knows ({known}); upgrade Tessera")]
    TooNew {
        /// Version recorded in the database.
        found: i64,
        /// Newest version this build knows.
        known: i64,
    },
}

/// An error with its causes, on one line (tokio-postgres prints only the outermost).
pub(crate) fn describe(e: &tokio_postgres::Error) -> String {
    if let Some(db) = e.as_db_error() {
        return format!("{db} (SQLSTATE {})", db.code().code());
    }
    let mut out = e.to_string();
    let mut cause = std::error::Error::source(e);
    while let Some(c) = cause {
        out.push_str(": ");
        out.push_str(&c.to_string());
        cause = c.source();
    }
    out
}

/// How an operation failed, before it is mapped to a [`StoreError`].
pub(crate) enum Fail {
    /// PostgreSQL or the connection failed.
    Pg(tokio_postgres::Error),
    /// A uniqueness violation that a concurrent transaction may have caused after this one
    /// looked: worth running the transaction again (which then sees the other's row).
    Raced(tokio_postgres::Error),
    /// A decision of the store itself (`NotFound`, a bad row).
    Store(StoreError),
}

impl From<tokio_postgres::Error> for Fail {
    fn from(e: tokio_postgres::Error) -> Self {
        Fail::Pg(e)
    }
}

impl From<StoreError> for Fail {
    fn from(e: StoreError) -> Self {
        Fail::Store(e)
    }
}

impl Fail {
    /// Marks a uniqueness violation as possibly caused by a concurrent creation.
    fn raced(self) -> Fail {
        match self {
            Fail::Pg(e) if e.code() == Some(&SqlState::UNIQUE_VIOLATION) => Fail::Raced(e),
            other => other,
        }
    }

    /// Whether running the transaction again may succeed.
    fn retryable(&self) -> bool {
        match self {
            Fail::Raced(_) => true,
            Fail::Pg(e) => matches!(
                e.code(),
                Some(&SqlState::T_R_DEADLOCK_DETECTED | &SqlState::T_R_SERIALIZATION_FAILURE)
            ),
            Fail::Store(_) => false,
        }
    }

    fn into_store(self) -> StoreError {
        match self {
            Fail::Pg(e) | Fail::Raced(e) => map_pg(&e),
            Fail::Store(e) => e,
        }
    }
}

/// Maps PostgreSQL errors to the store's small vocabulary, as the SQLite store maps SQLite's:
/// a foreign-key failure means the parent is missing (`NotFound`); any other constraint
/// failure is a `Conflict` named after the rule (`email`, `reference`, else `unique`).
fn map_pg(e: &tokio_postgres::Error) -> StoreError {
    let Some(db) = e.as_db_error() else {
        return StoreError::Unavailable(describe(e));
    };
    if db.code() == &SqlState::FOREIGN_KEY_VIOLATION {
        return StoreError::NotFound;
    }
    // Class 23: integrity constraint violations (unique, not null, check, exclusion).
    if db.code().code().starts_with("23") {
        let names = [db.constraint(), db.column()];
        let names = names.iter().flatten();
        return if names.clone().any(|n| n.contains("email")) {
            StoreError::Conflict("email".into())
        } else if names.clone().any(|n| n.contains("reference")) {
            StoreError::Conflict("reference".into())
        } else {
            StoreError::Conflict("unique".into())
        };
    }
    StoreError::Unavailable(describe(e))
}

/// Runs `$body` on the pooled connection `$db`, again (a few times) when PostgreSQL aborted
/// it for a deadlock, a serialization failure or a lost creation race
/// ([`Fail::retryable`]). Inside `$body`, `$client` is the connection and `$st` the statement
/// cache; the body is an async block evaluating to `Result<_, Fail>`.
macro_rules! retrying {
    ($db:ident, |$client:ident, $st:ident| $body:block) => {{
        let mut attempt = 0;
        loop {
            let ($client, $st) = $db.parts();
            let result: Result<_, Fail> = async $body.await;
            match result {
                Err(e) if attempt < RETRIES && e.retryable() => attempt += 1,
                other => break other,
            }
        }
    }};
}

/// Runs `$body` in a transaction on the pooled connection `$db` and commits it, retrying as
/// [`retrying!`] does. Inside `$body`, `$tx` is the transaction and `$st` the statement cache,
/// and `?` aborts (the dropped transaction rolls back).
macro_rules! transaction {
    ($db:ident, |$tx:ident, $st:ident| $body:block) => {
        retrying!($db, |client, $st| {
            let $tx = client.transaction().await?;
            let value = $body;
            $tx.commit().await?;
            Ok(value)
        })
    };
}

/// The PostgreSQL store.
#[derive(Debug)]
pub struct PgStore {
    pool: Arc<Pool>,
    /// Queues single family inserts for [`family_batches`].
    families: tokio::sync::mpsc::Sender<FamilyJob>,
    /// Queues refresh rotations for [`rotation_batches`].
    rotations: tokio::sync::mpsc::Sender<RotateJob>,
    metrics: Arc<Metrics>,
    schema_before: i64,
}

/// Records one operation's latency when dropped, whichever way the operation ended.
struct Timed<'a> {
    metrics: &'a Metrics,
    op: &'static str,
    watch: Stopwatch,
}

impl Drop for Timed<'_> {
    fn drop(&mut self) {
        self.metrics.store.observe(&self.op, self.watch.elapsed());
    }
}

/// Parses the URL, builds the pool and borrows its first connection (the one that runs the
/// migrations), so that a database that cannot be reached is an error at start-up.
async fn open_url(url: &str) -> Result<(Pool, Pooled), OpenError> {
    let pool = Pool::new(Settings::parse(url)?)?;
    let first = pool.get().await.map_err(|e| match e {
        GetError::Connect(source) => OpenError::Postgres {
            target: pool.target().to_string(),
            source,
        },
        other => OpenError::Pool(StoreError::from(other).to_string()),
    })?;
    Ok((pool, first))
}

/// The recorded schema version (0 for an empty database).
async fn schema_version<C: tokio_postgres::GenericClient + Sync>(
    c: &C,
) -> Result<i64, tokio_postgres::Error> {
    // `to_regclass` resolves through the search path, as the migrations' own statements do.
    let exists: bool = c
        .query_one("SELECT to_regclass('schema_version') IS NOT NULL", &[])
        .await?
        .get(0);
    if !exists {
        return Ok(0);
    }
    c.query_one("SELECT COALESCE(MAX(version), 0) FROM schema_version", &[])
        .await
        .map(|r| r.get(0))
}

/// Applies pending migrations; returns the version found and the version now.
async fn run_migrations(client: &mut Client, target: &str) -> Result<(i64, i64), OpenError> {
    run_migrations_through(client, target, KNOWN_VERSION).await
}

/// Applies the pending migrations up to version `through` (the tests build databases of an
/// older version with it); returns the version found and the version now.
async fn run_migrations_through(
    client: &mut Client,
    target: &str,
    through: i64,
) -> Result<(i64, i64), OpenError> {
    let err = |source| OpenError::Postgres {
        target: target.to_string(),
        source,
    };
    // A quick look first, so that a database from a newer Tessera is refused before anything
    // is locked or created, and an up-to-date one costs no transaction.
    let found = schema_version(&*client).await.map_err(err)?;
    if found > KNOWN_VERSION {
        return Err(OpenError::TooNew {
            found,
            known: KNOWN_VERSION,
        });
    }
    if found >= through {
        return Ok((found, found));
    }
    let tx = client.transaction().await.map_err(err)?;
    // Whoever holds the lock migrates; the others wait, then find nothing left to do. The lock
    // is taken before anything is created, so that two nodes never race on CREATE TABLE.
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .await
        .map_err(err)?;
    tx.batch_execute("CREATE TABLE IF NOT EXISTS schema_version (version BIGINT NOT NULL)")
        .await
        .map_err(err)?;
    let before = schema_version(&tx).await.map_err(err)?;
    if before > KNOWN_VERSION {
        return Err(OpenError::TooNew {
            found: before,
            known: KNOWN_VERSION,
        });
    }
    for (v, sql) in (1..=through).zip(MIGRATIONS) {
        if v > before {
            tx.batch_execute(sql).await.map_err(err)?;
            tx.execute("INSERT INTO schema_version (version) VALUES ($1)", &[&v])
                .await
                .map_err(err)?;
            tracing::info!(version = v, "applied PostgreSQL migration");
        }
    }
    tx.commit().await.map_err(err)?;
    Ok((before, through.max(before)))
}

/// Applies pending migrations to the database at `url` and returns the schema version before
/// and after (`tessera admin migrate`). Refuses a database newer than this build.
pub async fn migrate(url: &str) -> Result<(i64, i64), OpenError> {
    let (pool, mut first) = open_url(url).await?;
    run_migrations(first.parts().0, pool.target()).await
}

impl PgStore {
    /// Connects to the database at `url` (`postgres://user@host:port/dbname?…`, no TLS),
    /// refuses a schema newer than this build knows, and applies pending migrations.
    /// Connections are opened as needed, up to 16 or the URL's `pool_max_size`; a call that
    /// finds them all busy for 5 s (or the URL's `pool_wait_timeout`, in seconds) fails with
    /// [`StoreError::Unavailable`].
    pub async fn connect(url: &str) -> Result<PgStore, OpenError> {
        let (pool, mut first) = open_url(url).await?;
        let (before, _) = run_migrations(first.parts().0, pool.target()).await?;
        first.keep();
        let pool = Arc::new(pool);
        let (families, queue) = tokio::sync::mpsc::channel(4096);
        tokio::spawn(family_batches(pool.clone(), queue));
        let (rotations, queue) = tokio::sync::mpsc::channel(4096);
        tokio::spawn(rotation_batches(pool.clone(), queue));
        Ok(PgStore {
            pool,
            families,
            rotations,
            metrics: Arc::default(),
            schema_before: before,
        })
    }

    /// Records operation latencies in `metrics` (by default they go to a private set).
    pub fn with_metrics(mut self, metrics: Arc<Metrics>) -> Self {
        self.metrics = metrics;
        self
    }

    /// The schema version found when connecting and the version now (after migrations).
    pub fn schema_versions(&self) -> (i64, i64) {
        (self.schema_before, KNOWN_VERSION)
    }

    fn time(&self, op: &'static str) -> Timed<'_> {
        Timed {
            metrics: &self.metrics,
            op,
            watch: Stopwatch::start(),
        }
    }

    async fn db(&self) -> StoreResult<Pooled> {
        self.pool.conn().await
    }

    /// Runs one statement (autocommitted) on a pooled connection; returns its rows.
    async fn query(&self, sql: &'static str, params: Params<'_>) -> StoreResult<Vec<Row>> {
        let mut db = self.db().await?;
        let r = async {
            let (c, st) = db.parts();
            Ok(st.query(&*c, sql, params).await?)
        }
        .await;
        db.finish(r)
    }

    /// Runs one statement (autocommitted), timed as `op`; returns how many rows it touched.
    async fn execute(
        &self,
        op: &'static str,
        sql: &'static str,
        params: Params<'_>,
    ) -> StoreResult<u64> {
        let _t = self.time(op);
        let mut db = self.db().await?;
        let r = async {
            let (c, st) = db.parts();
            Ok(st.execute(&*c, sql, params).await?)
        }
        .await;
        db.finish(r)
    }

    /// The one row a query must find, mapped (`NotFound` without it), timed as `op`.
    async fn fetch_one<T>(
        &self,
        op: &'static str,
        sql: &'static str,
        params: Params<'_>,
        map: RowMap<T>,
    ) -> StoreResult<T> {
        let _t = self.time(op);
        let rows = self.query(sql, params).await?;
        one(rows.into_iter().next(), map).map_err(Fail::into_store)
    }

    /// The row a query may find, mapped, timed as `op`.
    async fn fetch_maybe<T>(
        &self,
        op: &'static str,
        sql: &'static str,
        params: Params<'_>,
        map: RowMap<T>,
    ) -> StoreResult<Option<T>> {
        let _t = self.time(op);
        let rows = self.query(sql, params).await?;
        maybe(rows.into_iter().next(), map).map_err(Fail::into_store)
    }

    /// Every row of a query, mapped, timed as `op`.
    async fn fetch_all<T>(
        &self,
        op: &'static str,
        sql: &'static str,
        params: Params<'_>,
        map: RowMap<T>,
    ) -> StoreResult<Vec<T>> {
        let _t = self.time(op);
        let rows = self.query(sql, params).await?;
        rows.iter()
            .map(map)
            .collect::<Result<_, _>>()
            .map_err(Fail::into_store)
    }
}

/// Maps a row to a record.
type RowMap<T> = fn(&Row) -> Result<T, Fail>;

/// The one row a query must find, mapped; `NotFound` without it.
fn one<T>(row: Option<Row>, map: RowMap<T>) -> Result<T, Fail> {
    match row {
        Some(r) => map(&r),
        None => Err(Fail::Store(StoreError::NotFound)),
    }
}

/// The row a query may find, mapped.
fn maybe<T>(row: Option<Row>, map: RowMap<T>) -> Result<Option<T>, Fail> {
    row.as_ref().map(map).transpose()
}

/// A `COUNT(*)` row.
fn count_row(r: &Row) -> Result<u64, Fail> {
    Ok(r.try_get::<_, i64>(0)?.max(0) as u64)
}

fn page_of<T>(mut items: Vec<T>, size: u32) -> PageOf<T> {
    let more = items.len() > size as usize;
    items.truncate(size as usize);
    PageOf { items, more }
}

/// `NotFound` when a write touched no row.
fn found(n: u64) -> StoreResult<()> {
    if n == 0 {
        Err(StoreError::NotFound)
    } else {
        Ok(())
    }
}

fn json(map: &serde_json::Map<String, serde_json::Value>) -> serde_json::Value {
    serde_json::Value::Object(map.clone())
}

async fn insert_api_token(tx: &Transaction<'_>, st: &Statements, t: &ApiToken) -> Result<(), Fail> {
    st.execute(
        tx,
        "INSERT INTO api_tokens (id, project_id, name, hash, created_at, revoked_at)
         VALUES ($1, $2, $3, $4, $5, $6)",
        &[
            &t.id.0,
            &t.project_id.0,
            &t.name,
            &&t.hash[..],
            &t.created_at.0,
            &t.revoked_at.map(|x| x.0),
        ],
    )
    .await?;
    Ok(())
}

/// Column lists of the rows a new resource and a family write, in the order
/// [`ResourceValues`] and [`FamilyValues`] bind their values.
const RESOURCE_COLUMNS: &str =
    "id, project_id, kind, name, display_name, data, created_at, updated_at";
const SUBSCRIBER_COLUMNS: &str = "id, project_id, reference_key, email, email_key, first_name, \
     last_name, display_name, job_title, timezone, country, region, company_name, password_hash";
const ADDRESS_COLUMNS: &str = "id, project_id, resource_id, kind, name, display_name, locked, \
     cover_url, preview_url, created_at";
const FAMILY_COLUMNS: &str = "id, project_id, kind, subject, generation, created_at, expires_at, \
     rotated_at, revoked_at, tokens_expire_at";

/// One statement inserting a row into each of `tables` (name, columns), numbering the
/// parameters across them. More than one table makes data-modifying CTEs: one statement, so
/// one round trip, atomic on its own, with foreign keys checked at its end once every row is
/// there.
fn insert_sql(tables: &[(&str, &str)]) -> String {
    let mut next = 0;
    let mut inserts: Vec<String> = tables
        .iter()
        .map(|(table, columns)| {
            let n = columns.split(',').count();
            let values: Vec<String> = (next + 1..=next + n).map(|i| format!("${i}")).collect();
            next += n;
            format!(
                "INSERT INTO {table} ({columns}) VALUES ({})",
                values.join(", ")
            )
        })
        .collect();
    let last = inserts.pop().unwrap_or_default();
    if inserts.is_empty() {
        return last;
    }
    let ctes: Vec<String> = inserts
        .iter()
        .enumerate()
        .map(|(i, insert)| format!("row{i} AS ({insert})"))
        .collect();
    format!("WITH {} {last}", ctes.join(", "))
}

/// The statement for a new resource: its resource row, its subscriber row if it is one, its
/// address, and the first family of its subject if one is granted with it. Built once per
/// shape.
fn insert_resource_sql(subscriber: bool, family: bool) -> &'static str {
    static SQL: std::sync::OnceLock<[String; 4]> = std::sync::OnceLock::new();
    let all = SQL.get_or_init(|| {
        [(false, false), (false, true), (true, false), (true, true)].map(|(s, f)| {
            let mut tables = vec![("resources", RESOURCE_COLUMNS)];
            if s {
                tables.push(("subscribers", SUBSCRIBER_COLUMNS));
            }
            tables.push(("addresses", ADDRESS_COLUMNS));
            if f {
                tables.push(("families", FAMILY_COLUMNS));
            }
            insert_sql(&tables)
        })
    });
    &all[usize::from(subscriber) * 2 + usize::from(family)]
}

/// What a new resource binds that is computed rather than borrowed, held so that its
/// parameter list can borrow it.
struct ResourceValues<'a> {
    new: &'a NewResource,
    kind: &'static str,
    address_kind: &'static str,
    data: serde_json::Value,
    reference_key: String,
    email_key: String,
    family: Option<FamilyValues<'a>>,
}

impl<'a> ResourceValues<'a> {
    fn new(new: &'a NewResource, reference: Option<&str>, family: Option<&'a Family>) -> Self {
        let email = new.resource.subscriber.as_ref().map(|s| s.email.as_str());
        ResourceValues {
            new,
            kind: new.resource.kind.as_str(),
            address_kind: new.address.kind.as_str(),
            data: json(&new.resource.data),
            reference_key: identity_key(reference.or(email).unwrap_or_default()),
            email_key: identity_key(email.unwrap_or_default()),
            family: family.map(FamilyValues::new),
        }
    }

    /// The parameters of [`insert_resource_sql`] of the same shape, in its order.
    fn params(&self) -> Vec<&(dyn ToSql + Sync)> {
        let r = &self.new.resource;
        let a = &self.new.address;
        let mut p: Vec<&(dyn ToSql + Sync)> = vec![
            &r.id.0,
            &r.project_id.0,
            &self.kind,
            &r.name,
            &r.display_name,
            &self.data,
            &r.created_at.0,
            &r.updated_at.0,
        ];
        if let Some(s) = &r.subscriber {
            p.extend::<[&(dyn ToSql + Sync); 14]>([
                &r.id.0,
                &r.project_id.0,
                &self.reference_key,
                &s.email,
                &self.email_key,
                &s.first_name,
                &s.last_name,
                &s.display_name,
                &s.job_title,
                &s.timezone,
                &s.country,
                &s.region,
                &s.company_name,
                &self.new.password_hash,
            ]);
        }
        p.extend::<[&(dyn ToSql + Sync); 10]>([
            &a.id.0,
            &a.project_id.0,
            &a.resource_id.0,
            &self.address_kind,
            &a.name,
            &a.display_name,
            &a.locked,
            &a.cover_url,
            &a.preview_url,
            &a.created_at.0,
        ]);
        if let Some(f) = &self.family {
            p.extend(f.params());
        }
        p
    }
}

/// What a family binds that is computed rather than borrowed.
struct FamilyValues<'a> {
    f: &'a Family,
    kind: &'static str,
    rotated_at: Option<i64>,
    revoked_at: Option<i64>,
    tokens_expire_at: i64,
}

impl<'a> FamilyValues<'a> {
    fn new(f: &'a Family) -> Self {
        FamilyValues {
            f,
            kind: f.kind.as_str(),
            rotated_at: f.rotated_at.map(|t| t.0),
            revoked_at: f.revoked_at.map(|t| t.0),
            tokens_expire_at: f.stored_tokens_expire_at().0,
        }
    }

    /// The parameters in [`FAMILY_COLUMNS`] order.
    fn params(&self) -> [&(dyn ToSql + Sync); 10] {
        [
            &self.f.id.0,
            &self.f.project_id.0,
            &self.kind,
            &self.f.subject,
            &self.f.generation,
            &self.f.created_at.0,
            &self.f.expires_at.0,
            &self.rotated_at,
            &self.revoked_at,
            &self.tokens_expire_at,
        ]
    }
}

/// Inserts a new resource (and its subscriber row and address) in one statement, with the
/// first family of its subject when `family` is given. A subscriber's reference key is
/// `reference`, or its email.
async fn insert_resource<C: tokio_postgres::GenericClient + Sync>(
    c: &C,
    st: &Statements,
    new: &NewResource,
    reference: Option<&str>,
    family: Option<&Family>,
) -> Result<(), Fail> {
    let values = ResourceValues::new(new, reference, family);
    let sql = insert_resource_sql(new.resource.subscriber.is_some(), family.is_some());
    st.execute(c, sql, &values.params()).await?;
    Ok(())
}

async fn insert_family<C: tokio_postgres::GenericClient + Sync>(
    c: &C,
    st: &Statements,
    f: &Family,
) -> Result<(), Fail> {
    static SQL: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let sql = SQL.get_or_init(|| insert_sql(&[("families", FAMILY_COLUMNS)]));
    st.execute(c, sql, &FamilyValues::new(f).params()).await?;
    Ok(())
}

/// A family to insert and where its result goes.
type FamilyJob = (Family, tokio::sync::oneshot::Sender<StoreResult<()>>);

/// The most families one statement inserts.
const FAMILY_BATCH: usize = 256;

/// Group commit for grants on PostgreSQL: takes every queued [`Store::create_family`], inserts
/// them with one statement in one transaction, and answers each caller after the commit.
/// Guest, invite and embed grants are one insert each; one statement and one commit per
/// grant made PostgreSQL's per-statement and per-commit work the limit, and sharing them
/// lets one WAL flush cover a batch. While a batch commits the next one gathers. Should a
/// batch fail (a family of a project deleted meanwhile), its families are retried one by one
/// so that each caller gets its own answer.
async fn family_batches(pool: Arc<Pool>, mut queue: tokio::sync::mpsc::Receiver<FamilyJob>) {
    let mut batch: Vec<FamilyJob> = Vec::with_capacity(FAMILY_BATCH);
    while next_batch(&mut queue, &mut batch, FAMILY_BATCH).await {
        match insert_family_rows(&pool, batch.iter().map(|(f, _)| f)).await {
            Ok(()) => {
                for (_, reply) in batch.drain(..) {
                    let _ = reply.send(Ok(()));
                }
            }
            // One family, or no connection (a pool that stayed busy, a server gone): one by one
            // would only fail again, each after its own wait.
            Err(e) if batch.len() == 1 || matches!(e, StoreError::Unavailable(_)) => {
                for (_, reply) in batch.drain(..) {
                    let _ = reply.send(Err(e.clone()));
                }
            }
            Err(_) => {
                for (family, reply) in batch.drain(..) {
                    let one = insert_family_rows(&pool, [&family]).await;
                    let _ = reply.send(one);
                }
            }
        }
    }
}

/// Inserts families with one `UNNEST` statement (one round trip, autocommitted: all or none).
async fn insert_family_rows<'a>(
    pool: &Pool,
    families: impl IntoIterator<Item = &'a Family>,
) -> StoreResult<()> {
    let mut cols = FamilyColumns::default();
    for f in families {
        cols.push(f);
    }
    let mut db = pool.conn().await?;
    let r = async {
        let (c, st) = db.parts();
        st.execute(
            &*c,
            "INSERT INTO families (id, project_id, kind, subject, generation, created_at,
                 expires_at, rotated_at, revoked_at, tokens_expire_at)
             SELECT * FROM UNNEST($1::uuid[], $2::uuid[], $3::text[], $4::uuid[],
                 $5::int8[], $6::int8[], $7::int8[], $8::int8[], $9::int8[], $10::int8[])",
            &[
                &cols.id,
                &cols.project_id,
                &cols.kind,
                &cols.subject,
                &cols.generation,
                &cols.created_at,
                &cols.expires_at,
                &cols.rotated_at,
                &cols.revoked_at,
                &cols.tokens_expire_at,
            ],
        )
        .await?;
        Ok(())
    }
    .await;
    db.finish(r)
}

/// A refresh rotation to decide and where its outcome goes.
struct RotateJob {
    project: ProjectId,
    id: FamilyId,
    generation: i64,
    at: UnixTime,
    tokens_expire_at: UnixTime,
    reply: tokio::sync::oneshot::Sender<StoreResult<RotateOutcome>>,
}

/// Group commit for refresh rotations on PostgreSQL: every queued rotation is tried in one
/// conditional `UPDATE … FROM UNNEST(…)` (one statement, one commit). The condition is the
/// single-row one: the family of that project, at that generation, alive. Rows the statement
/// rotated are answered `Rotated`; the others (a spent generation, a revoked or unknown
/// family) are classified by a fresh read, off this loop. Two rotations of one family in one
/// batch join the same row, which PostgreSQL updates once, so exactly one of them wins; a
/// rotation racing another node's waits for the row lock and re-checks the condition, as the
/// single-row update did.
async fn rotation_batches(pool: Arc<Pool>, mut queue: tokio::sync::mpsc::Receiver<RotateJob>) {
    let mut batch: Vec<RotateJob> = Vec::with_capacity(FAMILY_BATCH);
    while next_batch(&mut queue, &mut batch, FAMILY_BATCH).await {
        let rotated = match rotate_rows(&pool, &batch).await {
            Ok(rotated) => rotated,
            Err(e) => {
                for job in batch.drain(..) {
                    let _ = job.reply.send(Err(e.clone()));
                }
                continue;
            }
        };
        for (job, family) in batch.drain(..).zip(rotated) {
            match family {
                Some(f) => {
                    let _ = job.reply.send(Ok(RotateOutcome::Rotated(f)));
                }
                None => {
                    let pool = pool.clone();
                    tokio::spawn(async move {
                        let outcome = classify(&pool, job.project, job.id, job.at).await;
                        let _ = job.reply.send(outcome);
                    });
                }
            }
        }
    }
}

/// Spends each job's generation if it is current; returns, job by job, the family as the
/// rotation left it, or `None` where nothing was rotated.
async fn rotate_rows(pool: &Pool, jobs: &[RotateJob]) -> StoreResult<Vec<Option<Family>>> {
    let idx: Vec<i64> = (0..jobs.len() as i64).collect();
    let ids: Vec<uuid::Uuid> = jobs.iter().map(|j| j.id.0).collect();
    let projects: Vec<uuid::Uuid> = jobs.iter().map(|j| j.project.0).collect();
    let generations: Vec<i64> = jobs.iter().map(|j| j.generation).collect();
    let ats: Vec<i64> = jobs.iter().map(|j| j.at.0).collect();
    let expiries: Vec<i64> = jobs.iter().map(|j| j.tokens_expire_at.0).collect();
    let mut db = pool.conn().await?;
    let r = async {
        let (c, st) = db.parts();
        let rows = st
            .query(
                &*c,
                "UPDATE families AS f SET generation = f.generation + 1, rotated_at = v.at,
                     tokens_expire_at = LEAST(v.tea, f.expires_at)
                 FROM UNNEST($1::int8[], $2::uuid[], $3::uuid[], $4::int8[], $5::int8[],
                     $6::int8[]) AS v(idx, id, project_id, generation, at, tea)
                 WHERE f.id = v.id AND f.project_id = v.project_id
                   AND f.generation = v.generation
                   AND f.revoked_at IS NULL AND f.expires_at > v.at
                 RETURNING f.id, f.project_id, f.kind, f.subject, f.generation, f.created_at,
                     f.expires_at, f.rotated_at, f.revoked_at, f.tokens_expire_at, v.idx",
                &[&idx, &ids, &projects, &generations, &ats, &expiries],
            )
            .await?;
        let mut rotated = vec![None; jobs.len()];
        for row in &rows {
            let idx: i64 = row.try_get(10)?;
            rotated[idx as usize] = Some(family_row(row)?);
        }
        Ok(rotated)
    }
    .await;
    db.finish(r)
}

/// Why a rotation did not happen: the family as it is now (a new statement, so it sees the
/// rotation that beat this one).
async fn classify(
    pool: &Pool,
    project: ProjectId,
    id: FamilyId,
    at: UnixTime,
) -> StoreResult<RotateOutcome> {
    let mut db = pool.conn().await?;
    let r = async {
        let (c, st) = db.parts();
        let row = st
            .query_opt(
                &*c,
                concat!(
                    "SELECT ",
                    family_cols!(),
                    " FROM families WHERE id = $1 AND project_id = $2"
                ),
                &[&id.0, &project.0],
            )
            .await?;
        Ok(match maybe(row, family_row)? {
            None => RotateOutcome::NotFound,
            Some(f) if f.revoked_at.is_some() || f.expires_at <= at => RotateOutcome::Dead,
            Some(f) => RotateOutcome::Stale(f),
        })
    }
    .await;
    db.finish(r)
}

/// Families as columns, for one `UNNEST` insert of many rows.
#[derive(Default)]
struct FamilyColumns {
    id: Vec<uuid::Uuid>,
    project_id: Vec<uuid::Uuid>,
    kind: Vec<&'static str>,
    subject: Vec<uuid::Uuid>,
    generation: Vec<i64>,
    created_at: Vec<i64>,
    expires_at: Vec<i64>,
    rotated_at: Vec<Option<i64>>,
    revoked_at: Vec<Option<i64>>,
    tokens_expire_at: Vec<i64>,
}

impl FamilyColumns {
    fn push(&mut self, f: &Family) {
        self.id.push(f.id.0);
        self.project_id.push(f.project_id.0);
        self.kind.push(f.kind.as_str());
        self.subject.push(f.subject);
        self.generation.push(f.generation);
        self.created_at.push(f.created_at.0);
        self.expires_at.push(f.expires_at.0);
        self.rotated_at.push(f.rotated_at.map(|t| t.0));
        self.revoked_at.push(f.revoked_at.map(|t| t.0));
        self.tokens_expire_at.push(f.stored_tokens_expire_at().0);
    }
}

/// Applies a profile patch (and password) to a subscriber of `project`; the number of
/// subscriber rows changed (0 or 1). The resource's update time and display name, and its
/// address's display name, follow.
async fn update_subscriber_row(
    tx: &Transaction<'_>,
    st: &Statements,
    project: ProjectId,
    id: ResourceId,
    patch: &SubscriberPatch,
    password_hash: Option<&str>,
    at: UnixTime,
) -> Result<u64, Fail> {
    // The key is folded here, with the same function every other key goes through (SQL's
    // lower() would follow the database's locale and fold more than ASCII).
    let email_key = patch.email.as_deref().map(identity_key);
    let n = st
        .execute(
            tx,
            "UPDATE subscribers SET
                email = COALESCE($3, email), email_key = COALESCE($4, email_key),
                first_name = COALESCE($5, first_name), last_name = COALESCE($6, last_name),
                display_name = COALESCE($7, display_name), job_title = COALESCE($8, job_title),
                timezone = COALESCE($9, timezone), country = COALESCE($10, country),
                region = COALESCE($11, region), company_name = COALESCE($12, company_name),
                password_hash = COALESCE($13, password_hash)
             WHERE id = $1 AND project_id = $2",
            &[
                &id.0,
                &project.0,
                &patch.email,
                &email_key,
                &patch.first_name,
                &patch.last_name,
                &patch.display_name,
                &patch.job_title,
                &patch.timezone,
                &patch.country,
                &patch.region,
                &patch.company_name,
                &password_hash,
            ],
        )
        .await?;
    if n > 0 {
        st.execute(
            tx,
            "UPDATE resources SET updated_at = $2, display_name = COALESCE($3, display_name)
             WHERE id = $1",
            &[&id.0, &at.0, &patch.display_name],
        )
        .await?;
        if let Some(d) = &patch.display_name {
            st.execute(
                tx,
                "UPDATE addresses SET display_name = $2 WHERE resource_id = $1",
                &[&id.0, d],
            )
            .await?;
        }
    }
    Ok(n)
}

/// Revokes every live family of a subject.
async fn revoke_subject(
    tx: &Transaction<'_>,
    st: &Statements,
    project: ProjectId,
    subject: ResourceId,
    at: UnixTime,
) -> Result<u64, Fail> {
    Ok(st
        .execute(
            tx,
            // `kind` names the partial index of subscriber families (migration 6).
            "UPDATE families SET revoked_at = $3
             WHERE project_id = $1 AND subject = $2 AND kind = 'subscriber'
               AND revoked_at IS NULL",
            &[&project.0, &subject.0, &at.0],
        )
        .await?)
}

const READ_RESOURCE: &str = concat!(
    "SELECT ",
    resource_cols!(),
    " FROM resources r LEFT JOIN subscribers s ON s.id = r.id
     WHERE r.id = $1 AND r.project_id = $2"
);

#[async_trait]
impl Store for PgStore {
    async fn create_project(&self, project: Project, token: ApiToken) -> StoreResult<()> {
        let _t = self.time("create_project");
        let mut db = self.db().await?;
        let r = transaction!(db, |tx, st| {
            st.execute(
                &tx,
                "INSERT INTO projects (id, name, created_at) VALUES ($1, $2, $3)",
                &[&project.id.0, &project.name, &project.created_at.0],
            )
            .await?;
            insert_api_token(&tx, st, &token).await?;
        });
        db.finish(r)
    }

    async fn get_project(&self, id: ProjectId) -> StoreResult<Project> {
        self.fetch_one(
            "get_project",
            concat!("SELECT ", project_cols!(), " FROM projects WHERE id = $1"),
            &[&id.0],
            project_row,
        )
        .await
    }

    async fn create_api_token(&self, token: ApiToken) -> StoreResult<()> {
        let _t = self.time("create_api_token");
        let mut db = self.db().await?;
        let r = transaction!(db, |tx, st| {
            insert_api_token(&tx, st, &token).await?;
        });
        db.finish(r)
    }

    async fn list_api_tokens(&self, project: ProjectId) -> StoreResult<Vec<ApiToken>> {
        self.fetch_all(
            "list_api_tokens",
            concat!(
                "SELECT ",
                api_token_cols!(),
                " FROM api_tokens WHERE project_id = $1 ORDER BY created_at, id"
            ),
            &[&project.0],
            api_token_row,
        )
        .await
    }

    async fn revoke_api_token(&self, id: ApiTokenId, at: UnixTime) -> StoreResult<()> {
        let n = self
            .execute(
                "revoke_api_token",
                "UPDATE api_tokens SET revoked_at = COALESCE(revoked_at, $2) WHERE id = $1",
                &[&id.0, &at.0],
            )
            .await?;
        found(n)
    }

    async fn find_api_token(
        &self,
        project: ProjectId,
        hash: [u8; 32],
    ) -> StoreResult<Option<ApiToken>> {
        self.fetch_maybe(
            "find_api_token",
            concat!(
                "SELECT ",
                api_token_cols!(),
                " FROM api_tokens WHERE hash = $1 AND project_id = $2 AND revoked_at IS NULL"
            ),
            &[&&hash[..], &project.0],
            api_token_row,
        )
        .await
    }

    async fn list_keys(&self) -> StoreResult<Vec<StoredKey>> {
        self.fetch_all(
            "list_keys",
            concat!(
                "SELECT ",
                key_cols!(),
                " FROM keys ORDER BY created_at, kid"
            ),
            &[],
            key_row,
        )
        .await
    }

    async fn insert_key(&self, key: StoredKey) -> StoreResult<()> {
        self.execute(
            "insert_key",
            concat!(
                "INSERT INTO keys (",
                key_cols!(),
                ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
            ),
            &[
                &key.kid,
                &key.purpose.as_str(),
                &key.state.as_str(),
                &key.wrapped,
                &key.created_at.0,
                &key.activated_at.map(|t| t.0),
                &key.retired_at.map(|t| t.0),
                &key.sealed,
            ],
        )
        .await
        .map(drop)
    }

    async fn master_key_check(&self) -> StoreResult<Option<MasterKeyCheck>> {
        self.fetch_maybe(
            "master_key_check",
            "SELECT value, recorded_at FROM master_key_check WHERE id = 1",
            &[],
            check_row,
        )
        .await
    }

    async fn record_master_key_check(&self, check: MasterKeyCheck) -> StoreResult<MasterKeyCheck> {
        self.execute(
            "record_master_key_check",
            "INSERT INTO master_key_check (id, value, recorded_at) VALUES (1, $1, $2)
             ON CONFLICT (id) DO NOTHING",
            &[&check.value.as_slice(), &check.recorded_at.0],
        )
        .await?;
        // A separate statement: it sees the row a concurrent first writer committed, which the
        // insert's own snapshot may not.
        self.fetch_one(
            "master_key_check",
            "SELECT value, recorded_at FROM master_key_check WHERE id = 1",
            &[],
            check_row,
        )
        .await
    }

    async fn create_resource(&self, new: NewResource) -> StoreResult<()> {
        let _t = self.time("create_resource");
        let mut db = self.db().await?;
        let r = transaction!(db, |tx, st| {
            insert_resource(&tx, st, &new, None, None).await?;
        });
        db.finish(r)
    }

    async fn get_resource(&self, project: ProjectId, id: ResourceId) -> StoreResult<Resource> {
        self.fetch_one(
            "get_resource",
            READ_RESOURCE,
            &[&id.0, &project.0],
            resource_row,
        )
        .await
    }

    async fn list_resources(
        &self,
        project: ProjectId,
        kind: Option<ResourceKind>,
        page: Page,
    ) -> StoreResult<PageOf<Resource>> {
        let items = self
            .fetch_all(
                "list_resources",
                concat!(
                    "SELECT ",
                    resource_cols!(),
                    " FROM resources r LEFT JOIN subscribers s ON s.id = r.id
                     WHERE r.project_id = $1 AND ($2::text IS NULL OR r.kind = $2)
                       AND ($3::uuid IS NULL OR r.id > $3)
                     ORDER BY r.id LIMIT $4"
                ),
                &[
                    &project.0,
                    &kind.map(ResourceKind::as_str),
                    &page.after,
                    &(page.size as i64 + 1),
                ],
                resource_row,
            )
            .await?;
        Ok(page_of(items, page.size))
    }

    async fn update_subscriber(
        &self,
        project: ProjectId,
        id: ResourceId,
        patch: SubscriberPatch,
        password_hash: Option<String>,
        at: UnixTime,
    ) -> StoreResult<Resource> {
        let _t = self.time("update_subscriber");
        let mut db = self.db().await?;
        let r = transaction!(db, |tx, st| {
            let n =
                update_subscriber_row(&tx, st, project, id, &patch, password_hash.as_deref(), at)
                    .await?;
            found(n)?;
            // Changing the password revokes the subscriber's sessions (security.md).
            if password_hash.is_some() {
                revoke_subject(&tx, st, project, id, at).await?;
            }
            let row = st
                .query_opt(&tx, READ_RESOURCE, &[&id.0, &project.0])
                .await?;
            one(row, resource_row)?
        });
        db.finish(r)
    }

    async fn update_room(
        &self,
        project: ProjectId,
        id: ResourceId,
        kind: ResourceKind,
        patch: RoomPatch,
        at: UnixTime,
    ) -> StoreResult<Resource> {
        let _t = self.time("update_room");
        let mut db = self.db().await?;
        let r = transaction!(db, |tx, st| {
            // The row stays locked until commit, so concurrent merges into `data` queue up
            // instead of overwriting each other.
            let row = st
                .query_opt(
                    &tx,
                    concat!(
                        "SELECT ",
                        resource_cols!(),
                        " FROM resources r LEFT JOIN subscribers s ON s.id = r.id
                         WHERE r.id = $1 AND r.project_id = $2 FOR UPDATE OF r"
                    ),
                    &[&id.0, &project.0],
                )
                .await?;
            let mut r = one(row, resource_row)?;
            if r.kind != kind {
                return Err(Fail::Store(StoreError::NotFound));
            }
            if let Some(n) = &patch.name {
                r.name.clone_from(n);
            }
            if let Some(d) = &patch.display_name {
                r.display_name.clone_from(d);
            }
            r.data.extend(patch.data.clone());
            st.execute(
                &tx,
                "UPDATE resources SET name = $2, display_name = $3, data = $4, updated_at = $5
                 WHERE id = $1",
                &[&id.0, &r.name, &r.display_name, &json(&r.data), &at.0],
            )
            .await?;
            st.execute(
                &tx,
                "UPDATE addresses SET name = $2, display_name = $3 WHERE resource_id = $1",
                &[&id.0, &r.name, &r.display_name],
            )
            .await?;
            r.updated_at = at;
            r
        });
        db.finish(r)
    }

    async fn delete_resource(
        &self,
        project: ProjectId,
        id: ResourceId,
        kind: ResourceKind,
        at: UnixTime,
    ) -> StoreResult<()> {
        let _t = self.time("delete_resource");
        let mut db = self.db().await?;
        let r = transaction!(db, |tx, st| {
            let n = st
                .execute(
                    &tx,
                    "DELETE FROM resources WHERE id = $1 AND project_id = $2 AND kind = $3",
                    &[&id.0, &project.0, &kind.as_str()],
                )
                .await?;
            found(n)?;
            if kind == ResourceKind::Subscriber {
                revoke_subject(&tx, st, project, id, at).await?;
            }
        });
        db.finish(r)
    }

    async fn get_address(&self, project: ProjectId, id: AddressId) -> StoreResult<Address> {
        self.fetch_one(
            "get_address",
            concat!(
                "SELECT ",
                address_cols!(),
                " FROM addresses WHERE id = $1 AND project_id = $2"
            ),
            &[&id.0, &project.0],
            address_row,
        )
        .await
    }

    async fn list_addresses(
        &self,
        project: ProjectId,
        q: AddressQuery,
        page: Page,
    ) -> StoreResult<PageOf<Address>> {
        let items = self
            .fetch_all(
                "list_addresses",
                concat!(
                    "SELECT ",
                    address_cols!(),
                    " FROM addresses
                     WHERE project_id = $1
                       AND ($2::text IS NULL OR kind = $2)
                       AND ($3::text IS NULL OR display_name = $3)
                       AND ($4::uuid IS NULL OR resource_id = $4)
                       AND ($5::uuid IS NULL OR kind <> 'subscriber' OR resource_id = $5)
                       AND ($6::uuid IS NULL OR id > $6)
                     ORDER BY id LIMIT $7"
                ),
                &[
                    &project.0,
                    &q.kind.map(ResourceKind::as_str),
                    &q.display_name,
                    &q.resource_id.map(|r| r.0),
                    &q.visible_to.map(|r| r.0),
                    &page.after,
                    &(page.size as i64 + 1),
                ],
                address_row,
            )
            .await?;
        Ok(page_of(items, page.size))
    }

    async fn existing_addresses(
        &self,
        project: ProjectId,
        ids: &[AddressId],
    ) -> StoreResult<Vec<AddressId>> {
        let ids: Vec<Uuid> = ids.iter().map(|a| a.0).collect();
        // In the order asked, once per mention (as the SQLite store answers).
        self.fetch_all(
            "existing_addresses",
            "SELECT addresses.id FROM unnest($1::uuid[]) WITH ORDINALITY AS q(qid, ord)
             JOIN addresses ON addresses.id = q.qid
             WHERE addresses.project_id = $2
             ORDER BY q.ord",
            &[&ids, &project.0],
            |r| Ok(AddressId(r.try_get(0)?)),
        )
        .await
    }

    async fn grant_subscriber(
        &self,
        project: ProjectId,
        upsert: SubscriberUpsert,
        family: Family,
        at: UnixTime,
    ) -> StoreResult<ResourceId> {
        let _t = self.time("grant_subscriber");
        let key = identity_key(&upsert.reference);
        // The reference may be the subscriber id itself; ids are stored as UUID, so it is
        // compared only when it is one in canonical form (SQLite compares the text).
        let key_id = key
            .parse::<ResourceId>()
            .ok()
            .filter(|id| id.to_string() == key)
            .map(|id| id.0);
        let mut db = self.db().await?;
        // A reference match wins over an email match, which wins over an id match: three
        // point lookups, each on its own index. One statement with an OR of the three ran as a
        // prepared statement, whose generic plan (chosen while the table was small) scanned
        // every subscriber of the project.
        const BY_REFERENCE: &str =
            "SELECT id FROM subscribers WHERE project_id = $1 AND reference_key = $2";
        const BY_EMAIL: &str =
            "SELECT id FROM subscribers WHERE project_id = $1 AND email_key = $2";
        const BY_ID: &str = "SELECT id FROM subscribers WHERE project_id = $1 AND id = $2";
        let r = retrying!(db, |client, st| {
            // The look-ups run outside a transaction: inside one (read committed) they
            // locked nothing either, and a subscriber created meanwhile makes the insert
            // below fail on a unique index, after which the whole grant runs again.
            let lookups: [Option<(&'static str, &(dyn ToSql + Sync))>; 3] = [
                Some((BY_REFERENCE, &key)),
                Some((BY_EMAIL, &key)),
                key_id.as_ref().map(|id| (BY_ID, id as &(dyn ToSql + Sync))),
            ];
            let mut existing = None;
            for (sql, value) in lookups.into_iter().flatten() {
                existing = st.query_opt(&*client, sql, &[&project.0, value]).await?;
                if existing.is_some() {
                    break;
                }
            }
            let Some(row) = existing else {
                // A new subscriber is one statement, so one round trip and its own
                // transaction, instead of a transaction of six (begin, four inserts,
                // commit): round trips are what limits this grant on PostgreSQL.
                let family = Family {
                    subject: upsert.create.resource.id.0,
                    ..family.clone()
                };
                insert_resource(
                    &*client,
                    st,
                    &upsert.create,
                    Some(&upsert.reference),
                    Some(&family),
                )
                .await
                .map_err(Fail::raced)?;
                return Ok(upsert.create.resource.id);
            };
            let id = ResourceId(row.try_get(0)?);
            let family = Family {
                subject: id.0,
                ..family.clone()
            };
            // Nothing to write about the subscriber: the grant is the family's insert alone,
            // one statement instead of a transaction of four round trips.
            if !upsert.changes_existing() {
                insert_family(&*client, st, &family).await?;
                return Ok(id);
            }
            let tx = client.transaction().await?;
            update_subscriber_row(
                &tx,
                st,
                project,
                id,
                &upsert.patch,
                upsert.password_hash.as_deref(),
                at,
            )
            .await?;
            if upsert.password_hash.is_some() {
                revoke_subject(&tx, st, project, id, at).await?;
            }
            insert_family(&tx, st, &family).await?;
            tx.commit().await?;
            Ok(id)
        });
        db.finish(r)
    }

    async fn create_family(&self, family: Family) -> StoreResult<()> {
        let _t = self.time("create_family");
        let (reply, answer) = tokio::sync::oneshot::channel();
        let stopped = || StoreError::Unavailable("the family writer has stopped".into());
        self.families
            .send((family, reply))
            .await
            .map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }

    async fn insert_families(&self, families: Vec<Family>) -> StoreResult<()> {
        let _t = self.time("insert_families");
        insert_family_rows(&self.pool, &families).await
    }

    async fn get_family(&self, id: FamilyId) -> StoreResult<Family> {
        self.fetch_one(
            "get_family",
            concat!("SELECT ", family_cols!(), " FROM families WHERE id = $1"),
            &[&id.0],
            family_row,
        )
        .await
    }

    async fn rotate_family(
        &self,
        project: ProjectId,
        id: FamilyId,
        generation: i64,
        at: UnixTime,
        tokens_expire_at: UnixTime,
    ) -> StoreResult<RotateOutcome> {
        let _t = self.time("rotate_family");
        let (reply, answer) = tokio::sync::oneshot::channel();
        let stopped = || StoreError::Unavailable("the rotation writer has stopped".into());
        let job = RotateJob {
            project,
            id,
            generation,
            at,
            tokens_expire_at,
            reply,
        };
        self.rotations.send(job).await.map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }

    async fn revoke_family(&self, id: FamilyId, at: UnixTime) -> StoreResult<()> {
        self.execute(
            "revoke_family",
            "UPDATE families SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL",
            &[&id.0, &at.0],
        )
        .await
        .map(drop)
    }

    async fn purge(&self, request: PurgeRequest) -> StoreResult<PurgeCounts> {
        let _t = self.time("purge");
        let limit = i64::from(request.limit);
        let mut db = self.db().await?;
        let r = transaction!(db, |tx, st| {
            // Families whose newest token has expired can never be used again; revoked ones
            // are kept until their tokens expire so that reuse of a revoked chain still reads
            // as reuse in logs. Each DELETE takes at most `limit` rows through its index (see
            // `Store::purge`). Every node purges; SKIP LOCKED lets nodes that purge at the same
            // time take different rows instead of queueing on each other's row locks.
            let families = st
                .execute(
                    &tx,
                    "DELETE FROM families WHERE id IN
                         (SELECT id FROM families WHERE tokens_expire_at < $1 LIMIT $2
                          FOR UPDATE SKIP LOCKED)",
                    &[&request.before.0, &limit],
                )
                .await?;
            let sessions = st
                .execute(
                    &tx,
                    "DELETE FROM operator_sessions WHERE hash IN
                         (SELECT hash FROM operator_sessions WHERE expires_at < $1 LIMIT $2
                          FOR UPDATE SKIP LOCKED)",
                    &[&request.before.0, &limit],
                )
                .await?;
            let audit_events = match request.audit_before {
                Some(before) => {
                    st.execute(
                        &tx,
                        "DELETE FROM audit_events WHERE seq IN
                             (SELECT seq FROM audit_events WHERE at < $1 LIMIT $2
                              FOR UPDATE SKIP LOCKED)",
                        &[&before.0, &limit],
                    )
                    .await?
                }
                None => 0,
            };
            let keys_destroyed = st
                .execute(
                    &tx,
                    "UPDATE keys SET state = 'destroyed', wrapped = ''::bytea
                     WHERE state = 'retired' AND retired_at < $1",
                    &[&request.retired_before.0],
                )
                .await?;
            PurgeCounts {
                families,
                sessions,
                audit_events,
                keys_destroyed,
            }
        });
        db.finish(r)
    }

    async fn count_families(&self) -> StoreResult<u64> {
        self.fetch_one(
            "count_families",
            "SELECT COUNT(*) FROM families",
            &[],
            count_row,
        )
        .await
    }

    async fn activate_key(&self, kid: &str, at: UnixTime) -> StoreResult<()> {
        let _t = self.time("activate_key");
        let mut db = self.db().await?;
        let r = transaction!(db, |tx, st| {
            st.execute(&tx, "SELECT pg_advisory_xact_lock($1)", &[&KEY_LOCK])
                .await?;
            let row = st
                .query_opt(
                    &tx,
                    "SELECT purpose FROM keys WHERE kid = $1 AND state = 'pending' FOR UPDATE",
                    &[&kid],
                )
                .await?;
            let Some(row) = row else {
                return Err(Fail::Store(StoreError::NotFound));
            };
            let purpose: String = row.try_get(0)?;
            st.execute(
                &tx,
                "UPDATE keys SET state = 'retired', retired_at = $2
                 WHERE purpose = $1 AND state = 'active'",
                &[&purpose, &at.0],
            )
            .await?;
            st.execute(
                &tx,
                "UPDATE keys SET state = 'active', activated_at = $2 WHERE kid = $1",
                &[&kid, &at.0],
            )
            .await?;
        });
        db.finish(r)
    }

    async fn retire_key(&self, kid: &str, at: UnixTime) -> StoreResult<()> {
        let n = self
            .execute(
                "retire_key",
                "UPDATE keys SET state = 'retired', retired_at = $2
                 WHERE kid = $1 AND state IN ('pending', 'active')",
                &[&kid, &at.0],
            )
            .await?;
        found(n)
    }

    async fn destroy_key(&self, kid: &str) -> StoreResult<()> {
        let n = self
            .execute(
                "destroy_key",
                "UPDATE keys SET state = 'destroyed', wrapped = ''::bytea
                 WHERE kid = $1 AND state <> 'destroyed'",
                &[&kid],
            )
            .await?;
        found(n)
    }

    async fn add_seal_counts(&self, counts: Vec<(String, u64)>) -> StoreResult<()> {
        let _t = self.time("add_seal_counts");
        // One update per key, in kid order: two nodes flushing counts for the same keys then
        // lock the rows in the same order and cannot deadlock.
        let mut sums: BTreeMap<String, i64> = BTreeMap::new();
        for (kid, n) in counts {
            let sum = sums.entry(kid).or_default();
            *sum = sum.saturating_add(n.min(i64::MAX as u64) as i64);
        }
        let mut db = self.db().await?;
        let r = transaction!(db, |tx, st| {
            for (kid, n) in &sums {
                st.execute(
                    &tx,
                    "UPDATE keys SET sealed = sealed + $2 WHERE kid = $1",
                    &[kid, n],
                )
                .await?;
            }
        });
        db.finish(r)
    }

    async fn append_audit(&self, events: Vec<AuditEvent>) -> StoreResult<()> {
        let mut at = Vec::with_capacity(events.len());
        let mut project = Vec::with_capacity(events.len());
        let mut action = Vec::with_capacity(events.len());
        let mut actor = Vec::with_capacity(events.len());
        let mut subject = Vec::with_capacity(events.len());
        let mut detail = Vec::with_capacity(events.len());
        for e in events {
            at.push(e.at.0);
            project.push(e.project_id.map(|p| p.0));
            action.push(e.action);
            actor.push(e.actor);
            subject.push(e.subject);
            detail.push(serde_json::Value::Object(e.detail));
        }
        // One statement for the whole batch; rows are numbered in the order given.
        self.execute(
            "append_audit",
            "INSERT INTO audit_events (at, project_id, action, actor, subject, detail)
             SELECT at, project_id, action, actor, subject, detail
             FROM unnest($1::bigint[], $2::uuid[], $3::text[], $4::text[], $5::text[],
                         $6::json[])
                  WITH ORDINALITY AS e(at, project_id, action, actor, subject, detail, ord)
             ORDER BY ord",
            &[&at, &project, &action, &actor, &subject, &detail],
        )
        .await
        .map(drop)
    }

    async fn audit_events(
        &self,
        project: Option<ProjectId>,
        since: UnixTime,
        offset: u64,
        limit: u32,
    ) -> StoreResult<Vec<AuditEvent>> {
        self.fetch_all(
            "audit_events",
            concat!(
                "SELECT ",
                audit_cols!(),
                " FROM audit_events
                 WHERE at >= $1 AND ($2::uuid IS NULL OR project_id = $2)
                 ORDER BY seq LIMIT $3 OFFSET $4"
            ),
            &[
                &since.0,
                &project.map(|p| p.0),
                &(limit as i64),
                &(offset.min(i64::MAX as u64) as i64),
            ],
            audit_row,
        )
        .await
    }

    async fn count_audit_events(
        &self,
        project: Option<ProjectId>,
        since: UnixTime,
    ) -> StoreResult<u64> {
        self.fetch_one(
            "count_audit_events",
            "SELECT COUNT(*) FROM audit_events
             WHERE at >= $1 AND ($2::uuid IS NULL OR project_id = $2)",
            &[&since.0, &project.map(|p| p.0)],
            count_row,
        )
        .await
    }

    async fn list_projects(&self) -> StoreResult<Vec<Project>> {
        self.fetch_all(
            "list_projects",
            concat!(
                "SELECT ",
                project_cols!(),
                " FROM projects ORDER BY created_at, id"
            ),
            &[],
            project_row,
        )
        .await
    }

    async fn delete_project(&self, id: ProjectId) -> StoreResult<()> {
        let _t = self.time("delete_project");
        let mut db = self.db().await?;
        let r = transaction!(db, |tx, st| {
            // Families and subscribers carry the project id without a foreign key (they are
            // on the hot path); resources, addresses, tokens and embeds cascade. Only
            // subscriber families are indexed by project, so this scans families: deleting a
            // project is rare, an index entry per grant is not.
            st.execute(&tx, "DELETE FROM families WHERE project_id = $1", &[&id.0])
                .await?;
            st.execute(&tx, "DELETE FROM resources WHERE project_id = $1", &[&id.0])
                .await?;
            let n = st
                .execute(&tx, "DELETE FROM projects WHERE id = $1", &[&id.0])
                .await?;
            found(n)?;
        });
        db.finish(r)
    }

    async fn create_operator(&self, op: Operator) -> StoreResult<()> {
        self.execute(
            "create_operator",
            "INSERT INTO operators (id, username, username_key, domain, kind, role,
                 password_hash, api_key_hash, disabled, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
            &[
                &op.id.0,
                &op.username,
                &identity_key(&op.username),
                &op.domain,
                &op.kind.as_str(),
                &op.role.as_str(),
                &op.password_hash,
                &op.api_key_hash.as_ref().map(|h| &h[..]),
                &op.disabled,
                &op.created_at.0,
            ],
        )
        .await
        .map(drop)
        // As in the SQLite store, any constraint the new row breaks reads as a taken name.
        .map_err(|e| match e {
            StoreError::Conflict(_) => StoreError::Conflict("username".into()),
            other => other,
        })
    }

    async fn get_operator(&self, id: OperatorId) -> StoreResult<Operator> {
        self.fetch_one(
            "get_operator",
            concat!("SELECT ", operator_cols!(), " FROM operators WHERE id = $1"),
            &[&id.0],
            operator_row,
        )
        .await
    }

    async fn find_operator(&self, username: &str) -> StoreResult<Option<Operator>> {
        self.fetch_maybe(
            "find_operator",
            concat!(
                "SELECT ",
                operator_cols!(),
                " FROM operators WHERE username_key = $1"
            ),
            &[&identity_key(username)],
            operator_row,
        )
        .await
    }

    async fn find_operator_by_key(&self, hash: [u8; 32]) -> StoreResult<Option<Operator>> {
        self.fetch_maybe(
            "find_operator_by_key",
            concat!(
                "SELECT ",
                operator_cols!(),
                " FROM operators WHERE api_key_hash = $1"
            ),
            &[&&hash[..]],
            operator_row,
        )
        .await
    }

    async fn list_operators(&self) -> StoreResult<Vec<Operator>> {
        self.fetch_all(
            "list_operators",
            concat!(
                "SELECT ",
                operator_cols!(),
                " FROM operators ORDER BY created_at, id"
            ),
            &[],
            operator_row,
        )
        .await
    }

    async fn update_operator(&self, id: OperatorId, patch: OperatorPatch) -> StoreResult<Operator> {
        let _t = self.time("update_operator");
        let mut db = self.db().await?;
        let r = transaction!(db, |tx, st| {
            let row = st
                .query_opt(
                    &tx,
                    concat!(
                        "UPDATE operators SET disabled = COALESCE($2, disabled),
                             role = COALESCE($3, role)
                         WHERE id = $1 RETURNING ",
                        operator_cols!()
                    ),
                    &[&id.0, &patch.disabled, &patch.role.map(Role::as_str)],
                )
                .await?;
            let op = one(row, operator_row)?;
            if patch.disabled == Some(true) {
                st.execute(
                    &tx,
                    "DELETE FROM operator_sessions WHERE operator_id = $1",
                    &[&id.0],
                )
                .await?;
            }
            op
        });
        db.finish(r)
    }

    async fn set_operator_password(&self, id: OperatorId, hash: String) -> StoreResult<()> {
        // Like the SQLite store: no error for an unknown operator.
        self.execute(
            "set_operator_password",
            "UPDATE operators SET password_hash = $2 WHERE id = $1",
            &[&id.0, &hash],
        )
        .await
        .map(drop)
    }

    async fn delete_operator(&self, id: OperatorId) -> StoreResult<()> {
        // Its sessions go with it (ON DELETE CASCADE).
        let n = self
            .execute(
                "delete_operator",
                "DELETE FROM operators WHERE id = $1",
                &[&id.0],
            )
            .await?;
        found(n)
    }

    async fn create_operator_session(&self, s: OperatorSession) -> StoreResult<()> {
        self.execute(
            "create_operator_session",
            concat!(
                "INSERT INTO operator_sessions (",
                operator_session_cols!(),
                ") VALUES ($1, $2, $3, $4)"
            ),
            &[
                &&s.hash[..],
                &s.operator_id.0,
                &s.created_at.0,
                &s.expires_at.0,
            ],
        )
        .await
        .map(drop)
    }

    async fn find_operator_session(&self, hash: [u8; 32]) -> StoreResult<Option<OperatorSession>> {
        self.fetch_maybe(
            "find_operator_session",
            concat!(
                "SELECT ",
                operator_session_cols!(),
                " FROM operator_sessions WHERE hash = $1"
            ),
            &[&&hash[..]],
            operator_session_row,
        )
        .await
    }

    async fn delete_operator_session(&self, hash: [u8; 32]) -> StoreResult<()> {
        self.execute(
            "delete_operator_session",
            "DELETE FROM operator_sessions WHERE hash = $1",
            &[&&hash[..]],
        )
        .await
        .map(drop)
    }

    async fn create_embed(&self, embed: Embed) -> StoreResult<()> {
        let addresses: Vec<Uuid> = embed.addresses.iter().map(|a| a.0).collect();
        self.execute(
            "create_embed",
            concat!(
                "INSERT INTO embeds (",
                embed_cols!(),
                ") VALUES ($1, $2, $3, $4, $5, $6)"
            ),
            &[
                &embed.id.0,
                &embed.project_id.0,
                &&embed.token_hash[..],
                &addresses,
                &embed.enabled,
                &embed.created_at.0,
            ],
        )
        .await
        .map(drop)
    }

    async fn find_embed(&self, token_hash: [u8; 32]) -> StoreResult<Option<Embed>> {
        self.fetch_maybe(
            "find_embed",
            concat!(
                "SELECT ",
                embed_cols!(),
                " FROM embeds WHERE token_hash = $1"
            ),
            &[&&token_hash[..]],
            embed_row,
        )
        .await
    }

    async fn export_all(&self) -> StoreResult<Vec<(&'static str, Vec<ExportRow>)>> {
        let _t = self.time("export_all");
        let mut db = self.db().await?;
        let r = async {
            let (c, _) = db.parts();
            transfer::export_all(c).await
        }
        .await;
        db.finish(r)
    }

    async fn import_all(&self, tables: Vec<(String, Vec<ExportRow>)>) -> StoreResult<()> {
        let _t = self.time("import_all");
        let mut db = self.db().await?;
        let r = async {
            let (c, _) = db.parts();
            transfer::import_all(c, tables).await
        }
        .await;
        db.finish(r)
    }
}
