//! The embedded SQLite backend: [`SqliteStore`] implements every store trait of
//! `tessera_core::store`, one module per trait (`families`, `directory`, `operators`, `keys`,
//! `audit`, `transfer`); this file holds opening, migrations, the read and write paths, and
//! the helpers more than one concern uses.
//!
//! SQLite has one writer at a time. Instead of letting request tasks fight over the write lock,
//! every write is sent to one writer thread that drains whatever writes are queued, runs each
//! inside its own savepoint of one shared transaction, commits once, and only then answers every
//! caller (group commit). One fsync thus covers many requests, and no caller hears "ok" before
//! its rows are durable. Reads run on a small pool of connections in WAL mode and never wait for
//! the writer.

mod audit;
mod directory;
mod families;
mod keys;
mod operators;
mod rows;
mod transfer;
mod writer;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use rusqlite::{params, Connection, OptionalExtension};
use tessera_core::clock::UnixTime;
use tessera_core::ids::*;
use tessera_core::metrics::{Metrics, Stopwatch};
use tessera_core::model::*;
use tessera_core::store::{
    AuditStore, DirectoryStore, FamilyStore, KeyStore, OperatorStore, StoreError, StoreResult,
};

use rows::*;

/// The migrations this build knows, in order. The schema version is the number applied.
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

/// Read connections (and so concurrent reads). Reads are point lookups that take
/// microseconds; more connections than cores only add memory and contention.
const READERS: usize = 4;

/// Why the database could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// SQLite refused.
    #[error("cannot open the SQLite database {path}: {source}")]
    Sqlite {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: rusqlite::Error,
    },
    /// The file was written by a newer Tessera.
    #[error("the database schema is version {found}, newer than this Tessera knows ({known}); upgrade Tessera")]
    TooNew {
        /// Version in the file.
        found: i64,
        /// Newest version this build knows.
        known: i64,
    },
}

/// Parses `sqlite://PATH` (also `sqlite:PATH`) into a file path. `sqlite://tessera.db` is
/// relative to the working directory; `sqlite:///var/lib/tessera.db` is absolute.
pub fn path_from_url(url: &str) -> Option<PathBuf> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    let rest = rest.split('?').next().unwrap_or(rest);
    (!rest.is_empty()).then(|| PathBuf::from(rest))
}

/// The SQLite store.
#[derive(Debug)]
pub struct SqliteStore {
    path: PathBuf,
    writer: writer::Writer,
    readers: Arc<Mutex<Vec<Connection>>>,
    /// Bounds concurrent reads to the pool's size, so a burst queues for a connection instead
    /// of opening (and closing) a new one per read.
    read_permits: Arc<tokio::sync::Semaphore>,
    /// Dropping it stops the checkpointer thread.
    _stop_checkpoints: std::sync::mpsc::Sender<()>,
    metrics: Arc<Metrics>,
    schema_before: i64,
}

/// The WAL file SQLite keeps beside the database at `path`.
fn wal_path(path: &Path) -> PathBuf {
    let mut wal = path.as_os_str().to_owned();
    wal.push("-wal");
    wal.into()
}

fn unavailable(e: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable(e.to_string())
}

fn open_connection(path: &Path) -> rusqlite::Result<Connection> {
    let conn = Connection::open(path)?;
    // WAL lets readers run beside the writer; synchronous=FULL makes every commit durable
    // even across power loss (the writer's own connection switches to NORMAL and syncs the
    // WAL on a second thread: see `writer`); busy_timeout lets admin commands share the file
    // with a running server.
    conn.execute_batch(
        "PRAGMA journal_mode = WAL;
         PRAGMA synchronous = FULL;
         PRAGMA busy_timeout = 10000;
         PRAGMA foreign_keys = ON;
         PRAGMA temp_store = MEMORY;",
    )?;
    // temp_store = MEMORY above: the writer runs each job in a savepoint, and SQLite keeps the
    // pages a savepoint may have to restore in a sub-journal, which otherwise spills to a
    // temporary file: a quarter of the writer's time went to those writes.
    //
    // Every statement of the store is prepared once per connection: the writer alone uses more
    // than rusqlite's default of 16, and an evicted statement is parsed again on its next use.
    conn.set_prepared_statement_cache_capacity(64);
    Ok(conn)
}

/// Tunes the connection that becomes the writer's: a larger page cache for the index pages
/// that inserts touch. It keeps an automatic checkpoint (every 4000 pages, 16 MiB, of WAL), because only a
/// checkpoint that the writing connection runs right after its commit reliably finds the WAL
/// fully copied, which is what lets the next commit start the WAL over from its beginning (a
/// restart from another thread under steady writes never found that moment, and the WAL grew
/// without bound). The [`checkpointer`] has by then copied most frames, so that checkpoint is
/// short.
fn tune_writer(conn: &Connection) -> rusqlite::Result<()> {
    conn.execute_batch(
        "PRAGMA cache_size = -16384;
         PRAGMA wal_autocheckpoint = 4000;",
    )
}

/// How often the checkpointer copies committed WAL frames into the database file.
const CHECKPOINT_EVERY: std::time::Duration = std::time::Duration::from_millis(20);

/// Runs passive checkpoints on its own connection until `stop` is dropped, so that copying
/// WAL frames into the database mostly happens off the thread every write waits for. A
/// passive checkpoint never blocks the writer or the readers; it copies what no reader still
/// needs.
fn checkpointer(path: PathBuf, stop: std::sync::mpsc::Receiver<()>) {
    let conn = match open_connection(&path) {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "the checkpointer could not open the database");
            return;
        }
    };
    while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) = stop.recv_timeout(CHECKPOINT_EVERY)
    {
        if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
            tracing::warn!(error = %e, "WAL checkpoint failed; retrying");
        }
    }
    // Leave a small WAL behind for the next start.
    let _ = conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()));
}

fn migrate(conn: &mut Connection) -> Result<(), rusqlite::Error> {
    migrate_through(conn, MIGRATIONS)
}

/// Applies those of `migrations` (the first versions, in order) that the database lacks.
fn migrate_through(conn: &mut Connection, migrations: &[&str]) -> Result<(), rusqlite::Error> {
    conn.execute_batch("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")?;
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let current: i64 = tx.query_row(
        "SELECT COALESCE(MAX(version), 0) FROM schema_version",
        [],
        |r| r.get(0),
    )?;
    for (i, sql) in migrations.iter().enumerate() {
        let v = i as i64 + 1;
        if v > current {
            tx.execute_batch(sql)?;
            tx.execute("INSERT INTO schema_version (version) VALUES (?1)", [v])?;
        }
    }
    tx.commit()
}

impl SqliteStore {
    /// Opens (creating if needed) the database file and applies pending migrations.
    pub fn open(path: impl Into<PathBuf>) -> Result<Self, OpenError> {
        let path = path.into();
        let err = |source| OpenError::Sqlite {
            path: path.clone(),
            source,
        };
        let mut conn = open_connection(&path).map_err(err)?;
        let found: i64 = {
            conn.execute_batch(
                "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)",
            )
            .map_err(err)?;
            conn.query_row(
                "SELECT COALESCE(MAX(version), 0) FROM schema_version",
                [],
                |r| r.get(0),
            )
            .map_err(err)?
        };
        let known = MIGRATIONS.len() as i64;
        if found > known {
            return Err(OpenError::TooNew { found, known });
        }
        migrate(&mut conn).map_err(err)?;
        tune_writer(&conn).map_err(err)?;
        let (stop_checkpoints, stop) = std::sync::mpsc::channel();
        let cp_path = path.clone();
        std::thread::Builder::new()
            .name("tessera-sqlite-checkpoint".into())
            .spawn(move || checkpointer(cp_path, stop))
            .expect("spawning the checkpointer thread");
        Ok(SqliteStore {
            schema_before: found,
            _stop_checkpoints: stop_checkpoints,
            writer: writer::Writer::start(conn, wal_path(&path)).map_err(err)?,
            readers: Arc::new(Mutex::new(Vec::new())),
            read_permits: Arc::new(tokio::sync::Semaphore::new(READERS)),
            metrics: Arc::default(),
            path,
        })
    }

    /// The schema version found when opening and the version now (after migrations).
    pub fn schema_versions(&self) -> (i64, i64) {
        (self.schema_before, MIGRATIONS.len() as i64)
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs a read on a pooled connection, off the async threads.
    async fn read<T, F>(&self, op: &'static str, f: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    {
        let watch = Stopwatch::start();
        let out = self.read_inner(f).await;
        self.metrics.store.observe(&op, watch.elapsed());
        out
    }

    async fn read_inner<T, F>(&self, f: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    {
        let permit = self
            .read_permits
            .clone()
            .acquire_owned()
            .await
            .map_err(unavailable)?;
        let pool = self.readers.clone();
        let path = self.path.clone();
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            let conn = pool.lock().unwrap_or_else(|e| e.into_inner()).pop();
            let conn = match conn {
                Some(c) => c,
                None => open_connection(&path).map_err(unavailable)?,
            };
            let out = f(&conn).map_err(map_err);
            pool.lock().unwrap_or_else(|e| e.into_inner()).push(conn);
            out
        })
        .await
        .map_err(unavailable)?
    }

    /// Runs a write through the group-committing writer; returns after its commit.
    async fn write<T, F>(&self, op: &'static str, f: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: Fn(&Connection) -> StoreResult<T> + Send + 'static,
    {
        let watch = Stopwatch::start();
        let out = self.writer.run(f).await;
        self.metrics.store.observe(&op, watch.elapsed());
        out
    }

    /// Records operation latencies in `metrics` (by default they go to a private set).
    pub fn with_metrics(mut self, metrics: Arc<Metrics>) -> Self {
        self.metrics = metrics;
        self
    }
}

/// `NotFound` when a write changed no row (the record does not exist, in this project).
fn found(n: usize) -> StoreResult<()> {
    if n == 0 {
        Err(StoreError::NotFound)
    } else {
        Ok(())
    }
}

/// Maps SQLite errors to the store's small vocabulary.
fn map_err(e: rusqlite::Error) -> StoreError {
    match &e {
        rusqlite::Error::QueryReturnedNoRows => StoreError::NotFound,
        rusqlite::Error::SqliteFailure(f, msg)
            if f.code == rusqlite::ErrorCode::ConstraintViolation =>
        {
            let m = msg.as_deref().unwrap_or("");
            if m.contains("email") {
                StoreError::Conflict("email".into())
            } else if m.contains("reference") {
                StoreError::Conflict("reference".into())
            } else if m.contains("FOREIGN KEY") {
                StoreError::NotFound
            } else {
                StoreError::Conflict("unique".into())
            }
        }
        _ => StoreError::Unavailable(e.to_string()),
    }
}

fn insert_resource(
    conn: &Connection,
    new: &NewResource,
    reference: Option<&str>,
) -> rusqlite::Result<()> {
    let r = &new.resource;
    conn.prepare_cached(
        "INSERT INTO resources (id, project_id, kind, name, display_name, data, created_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )?
    .execute(params![
        r.id.to_string(),
        r.project_id.to_string(),
        r.kind.as_str(),
        r.name,
        r.display_name,
        serde_json::Value::Object(r.data.clone()).to_string(),
        r.created_at.0,
        r.updated_at.0
    ])?;
    if let Some(s) = &r.subscriber {
        let reference_key = identity_key(reference.unwrap_or(&s.email));
        conn.prepare_cached(
            "INSERT INTO subscribers (id, project_id, reference_key, email, email_key, first_name,
                last_name, display_name, job_title, timezone, country, region, company_name, password_hash)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
        )?
        .execute(params![
            r.id.to_string(),
            r.project_id.to_string(),
            reference_key,
            s.email,
            identity_key(&s.email),
            s.first_name,
            s.last_name,
            s.display_name,
            s.job_title,
            s.timezone,
            s.country,
            s.region,
            s.company_name,
            new.password_hash
        ])?;
    }
    let a = &new.address;
    conn.prepare_cached(
        "INSERT INTO addresses (id, project_id, resource_id, kind, name, display_name, locked,
            cover_url, preview_url, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
    )?
    .execute(params![
        a.id.to_string(),
        a.project_id.to_string(),
        a.resource_id.to_string(),
        a.kind.as_str(),
        a.name,
        a.display_name,
        a.locked,
        a.cover_url,
        a.preview_url,
        a.created_at.0
    ])?;
    Ok(())
}

fn update_subscriber_row(
    conn: &Connection,
    project: ProjectId,
    id: ResourceId,
    patch: &SubscriberPatch,
    password_hash: Option<&str>,
    at: UnixTime,
) -> rusqlite::Result<usize> {
    let n = conn
        .prepare_cached(
            "UPDATE subscribers SET
                email = COALESCE(?3, email), email_key = COALESCE(?13, email_key),
                first_name = COALESCE(?4, first_name), last_name = COALESCE(?5, last_name),
                display_name = COALESCE(?6, display_name), job_title = COALESCE(?7, job_title),
                timezone = COALESCE(?8, timezone), country = COALESCE(?9, country),
                region = COALESCE(?10, region), company_name = COALESCE(?11, company_name),
                password_hash = COALESCE(?12, password_hash)
             WHERE id = ?1 AND project_id = ?2",
        )?
        .execute(params![
            id.to_string(),
            project.to_string(),
            patch.email,
            patch.first_name,
            patch.last_name,
            patch.display_name,
            patch.job_title,
            patch.timezone,
            patch.country,
            patch.region,
            patch.company_name,
            password_hash,
            // Folded here, as on insert, by the one function every identity key goes through.
            patch.email.as_deref().map(identity_key)
        ])?;
    if n > 0 {
        conn.prepare_cached(
            "UPDATE resources SET updated_at = ?2, display_name = COALESCE(?3, display_name) WHERE id = ?1",
        )?
        .execute(params![id.to_string(), at.0, patch.display_name])?;
        if let Some(d) = &patch.display_name {
            conn.prepare_cached("UPDATE addresses SET display_name = ?2 WHERE resource_id = ?1")?
                .execute(params![id.to_string(), d])?;
        }
    }
    Ok(n)
}

/// Revokes a subscriber's live families. `kind` lets it use the partial index of subscriber
/// families (migration 6).
const REVOKE_SUBJECT: &str = "UPDATE families SET revoked_at = ?3
     WHERE project_id = ?1 AND subject = ?2 AND kind = 'subscriber' AND revoked_at IS NULL";

fn revoke_subject(
    conn: &Connection,
    project: ProjectId,
    subject: ResourceId,
    at: UnixTime,
) -> rusqlite::Result<usize> {
    conn.prepare_cached(REVOKE_SUBJECT)?.execute(params![
        project.to_string(),
        subject.to_string(),
        at.0
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A database created at schema `version` holding `rows` (SQL), then opened by this build
    /// (which migrates it to the latest version). Returns a plain connection to it afterwards.
    fn upgraded_from(version: usize, rows: &str) -> (tempfile::TempDir, Connection) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(format!("v{version}.db"));
        {
            let mut conn = open_connection(&path).unwrap();
            migrate_through(&mut conn, &MIGRATIONS[..version]).unwrap();
            conn.execute_batch(rows).unwrap();
        }
        let store = SqliteStore::open(&path).unwrap();
        assert_eq!(
            store.schema_versions(),
            (version as i64, MIGRATIONS.len() as i64)
        );
        drop(store);
        let conn = Connection::open(&path).unwrap();
        (dir, conn)
    }

    /// Migration 5 brings families whose `tokens_expire_at` outlived their `expires_at` in
    /// line (the purge now looks at `tokens_expire_at` alone) and drops the index it no
    /// longer needs; families already in line keep their value.
    #[test]
    fn migration_5_clamps_tokens_expiry_and_drops_the_expiry_index() {
        let (_dir, conn) = upgraded_from(
            4,
            "INSERT INTO projects (id, name, created_at) VALUES ('p', 'p', 1);
             INSERT INTO families (id, project_id, kind, subject, generation, created_at,
                 expires_at, tokens_expire_at)
             VALUES ('over', 'p', 'guest', 's', 1, 1, 100, 500),
                    ('fine', 'p', 'guest', 's', 1, 1, 100, 50);",
        );
        let expiry = |id: &str| -> i64 {
            conn.query_row(
                "SELECT tokens_expire_at FROM families WHERE id = ?1",
                [id],
                |r| r.get(0),
            )
            .unwrap()
        };
        assert_eq!(expiry("over"), 100);
        assert_eq!(expiry("fine"), 50);
        let indexes: i64 = conn
            .query_row(
                "SELECT COUNT(*) FROM sqlite_master WHERE type = 'index' AND name = 'families_expiry'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(indexes, 0);
    }

    /// Migration 6 keeps every audit event with its `seq` (new ones continue after them, with
    /// no `sqlite_sequence` row to maintain), and revoking a subscriber's families still finds
    /// them through the partial index that now leaves other families out.
    #[test]
    fn migration_6_rebuilds_audit_events_and_indexes_only_subscriber_families() {
        let (_dir, conn) = upgraded_from(
            5,
            "INSERT INTO audit_events (seq, at, project_id, action, actor, subject, detail)
             VALUES (7, 100, 'p', 'a', 'x', 's', '{}'), (41, 101, NULL, 'b', 'y', 't', '{}');",
        );
        conn.execute(
            "INSERT INTO audit_events (at, project_id, action, actor, subject, detail)
             VALUES (102, 'p', 'c', 'z', 'u', '{}')",
            [],
        )
        .unwrap();
        let seqs: Vec<(i64, String)> = conn
            .prepare("SELECT seq, action FROM audit_events ORDER BY seq")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        let want = [(7, "a"), (41, "b"), (42, "c")].map(|(s, a)| (s, a.to_string()));
        assert_eq!(seqs, want);
        let sequences: i64 = conn
            .query_row(
                "SELECT COUNT(*) FROM sqlite_master WHERE name = 'sqlite_sequence'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        if sequences > 0 {
            let audit: i64 = conn
                .query_row(
                    "SELECT COUNT(*) FROM sqlite_sequence WHERE name = 'audit_events'",
                    [],
                    |r| r.get(0),
                )
                .unwrap();
            assert_eq!(audit, 0, "audit inserts no longer maintain sqlite_sequence");
        }
        let plan: String = conn
            .prepare(&format!("EXPLAIN QUERY PLAN {REVOKE_SUBJECT}"))
            .unwrap()
            .query_map(["p", "s", "1"], |r| r.get::<_, String>(3))
            .unwrap()
            .collect::<Result<Vec<_>, _>>()
            .unwrap()
            .join("; ");
        assert!(plan.contains("families_subscriber"), "{plan}");
    }

    /// Migration 7 recomputes the identity keys that schema 6 wrote with Unicode lowercasing
    /// (KELVIN SIGN became `k`, ANGSTROM SIGN `å`), so that a look-alike no longer finds
    /// another subscriber or operator; keys that were ASCII already, and references that
    /// were not the email, are left as they were.
    #[tokio::test]
    async fn migration_7_recomputes_identity_keys_with_ascii_folding() {
        let kelvin = "01900000-0000-7000-8000-000000000001";
        let angstrom = "01900000-0000-7000-8000-000000000002";
        let emile = "01900000-0000-7000-8000-000000000003";
        let bob = "01900000-0000-7000-8000-000000000004";
        let project = "01900000-0000-7000-8000-0000000000ff";
        let mut rows =
            format!("INSERT INTO projects (id, name, created_at) VALUES ('{project}', 'p', 1);");
        // (id, email, reference_key, email_key) as schema 6 wrote them.
        for (id, email, reference_key, email_key) in [
            (kelvin, "\u{212A}ate@x", "kate@x", "kate@x"),
            (angstrom, "\u{212B}sa@x", "\u{E5}sa@x", "\u{E5}sa@x"),
            (emile, "\u{C9}MILE@X", "ref-42", "\u{E9}mile@x"),
            (bob, "Bob@X", "bob@x", "bob@x"),
        ] {
            rows += &format!(
                "INSERT INTO resources (id, project_id, kind, name, display_name, created_at,
                     updated_at) VALUES ('{id}', '{project}', 'subscriber', 'n', '', 1, 1);
                 INSERT INTO subscribers (id, project_id, reference_key, email, email_key)
                 VALUES ('{id}', '{project}', '{reference_key}', '{email}', '{email_key}');"
            );
        }
        for (i, (username, key)) in [
            ("ADM\u{130}N@local", "admi\u{307}n@local"),
            ("Admin@Local", "admin@local"),
            ("\u{212A}ate@local", "kate@local"),
        ]
        .into_iter()
        .enumerate()
        {
            rows += &format!(
                "INSERT INTO operators (id, username, username_key, kind, role, created_at)
                 VALUES ('01900000-0000-7000-8000-00000000010{i}', '{username}', '{key}',
                     'user', 'ADMIN', 1);"
            );
        }
        let (dir, conn) = upgraded_from(6, &rows);
        let keys = |id: &str| -> (String, String) {
            conn.query_row(
                "SELECT reference_key, email_key FROM subscribers WHERE id = ?1",
                [id],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap()
        };
        let pair = |a: &str, b: &str| (a.to_string(), b.to_string());
        assert_eq!(keys(kelvin), pair("\u{212A}ate@x", "\u{212A}ate@x"));
        assert_eq!(keys(angstrom), pair("\u{212B}sa@x", "\u{212B}sa@x"));
        assert_eq!(keys(emile), pair("ref-42", "\u{C9}mile@x"));
        assert_eq!(keys(bob), pair("bob@x", "bob@x"));
        let usernames: Vec<String> = conn
            .prepare("SELECT username_key FROM operators ORDER BY id")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(
            usernames,
            ["adm\u{130}n@local", "admin@local", "\u{212A}ate@local"]
        );
        drop(conn);

        // The store now keeps the look-alikes apart from the names they resembled.
        let store = SqliteStore::open(dir.path().join("v6.db")).unwrap();
        let project = ProjectId(project.parse().unwrap());
        let clock = tessera_core::ManualClock::new(UnixTime(10));
        let grant = |reference: &str| {
            let family = Family {
                id: FamilyId::random(),
                project_id: project,
                kind: tessera_core::token::PrincipalKind::Subscriber,
                subject: uuid::Uuid::nil(),
                generation: 1,
                created_at: UnixTime(10),
                expires_at: UnixTime(100),
                tokens_expire_at: UnixTime(100),
                rotated_at: None,
                revoked_at: None,
            };
            let profile = SubscriberProfile {
                email: reference.into(),
                ..Default::default()
            };
            let upsert = SubscriberUpsert {
                reference: reference.into(),
                patch: SubscriberPatch::default(),
                password_hash: None,
                create: NewResource::build(
                    &clock,
                    project,
                    ResourceKind::Subscriber,
                    reference,
                    String::new(),
                    Some(profile),
                    Default::default(),
                ),
            };
            store.grant_subscriber(GrantWrite {
                project,
                upsert,
                family,
                at: UnixTime(10),
            })
        };
        let kate = grant("kate@x").await.unwrap();
        assert_ne!(kate.to_string(), kelvin, "kate@x is not \u{212A}ate@x");
        assert_eq!(grant("\u{212A}ATE@X").await.unwrap().to_string(), kelvin);
        assert_ne!(grant("\u{E5}sa@x").await.unwrap().to_string(), angstrom);
        assert_eq!(grant("BOB@x").await.unwrap().to_string(), bob);
        assert_eq!(grant("ref-42").await.unwrap().to_string(), emile);
        assert_eq!(grant("\u{C9}mile@x").await.unwrap().to_string(), emile);
        // Operators are found by any spelling that folds to their username's identity key.
        for (spelling, username) in [
            ("ADMIN@LOCAL", Some("Admin@Local")),
            ("adm\u{130}n@LOCAL", Some("ADM\u{130}N@local")),
            ("kate@local", None),
        ] {
            let found = store.find_operator(spelling).await.unwrap();
            assert_eq!(found.map(|o| o.username).as_deref(), username, "{spelling}");
        }
    }
}
