//! The PostgreSQL backend, for several Tessera nodes sharing one database: [`PgStore`]
//! implements every store trait of `tessera_core::store`, one module per trait (`families`,
//! with the grant and rotation batchers; `directory`, `operators`, `keys`, `audit`,
//! `transfer`); this file holds connecting, migrations, the query helpers and the helpers more
//! than one concern uses.
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
use tessera_core::store::{
    next_batch, AuditStore, DirectoryStore, FamilyStore, KeyStore, OperatorStore, StoreError,
    StoreResult,
};
use tokio_postgres::error::SqlState;
use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, Row, Transaction};
use uuid::Uuid;

use families::{family_batches, rotation_batches, FamilyJob, RotateJob};
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

// The concerns, declared after the macros above so that they can use them.
mod audit;
mod directory;
mod families;
mod keys;
mod operators;

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
