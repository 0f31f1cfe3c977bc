//! The embedded SQLite implementation of [`Store`].
//!
//! SQLite has one writer at a time. Instead of letting request tasks fight over the write lock,
//! every write is sent to one writer thread that drains whatever writes are queued, runs each
//! inside its own savepoint of one shared transaction, commits once, and only then answers every
//! caller (group commit). One fsync thus covers many requests, and no caller hears "ok" before
//! its rows are durable. Reads run on a small pool of connections in WAL mode and never wait for
//! the writer.

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
use tessera_core::store::{ExportRow, Store, StoreError, StoreResult};

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

fn insert_family(conn: &Connection, f: &Family) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT INTO families (id, project_id, kind, subject, generation, created_at, expires_at, rotated_at, revoked_at, tokens_expire_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
    )?
    .execute(params![
        f.id.to_string(),
        f.project_id.to_string(),
        f.kind.as_str(),
        f.subject.to_string(),
        f.generation,
        f.created_at.0,
        f.expires_at.0,
        f.rotated_at.map(|t| t.0),
        f.revoked_at.map(|t| t.0),
        f.stored_tokens_expire_at().0
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

/// The subscriber a grant's reference names: by reference first, then by email, then by id.
/// Three point lookups on their own indexes; one `OR` of the three made SQLite scan the
/// project's subscribers, which grew with every new reference.
fn find_subscriber_id(
    conn: &Connection,
    project: ProjectId,
    key: &str,
) -> rusqlite::Result<Option<String>> {
    const LOOKUPS: [&str; 3] = [
        "SELECT id FROM subscribers WHERE project_id = ?1 AND reference_key = ?2",
        "SELECT id FROM subscribers WHERE project_id = ?1 AND email_key = ?2",
        "SELECT id FROM subscribers WHERE project_id = ?1 AND id = ?2",
    ];
    let project = project.to_string();
    // Only a UUID can name a subscriber by id: other references skip that lookup.
    let lookups = if key.parse::<uuid::Uuid>().is_ok() {
        &LOOKUPS[..]
    } else {
        &LOOKUPS[..2]
    };
    for sql in lookups {
        let found = conn
            .prepare_cached(sql)?
            .query_row(params![project, key], |r| r.get(0))
            .optional()?;
        if found.is_some() {
            return Ok(found);
        }
    }
    Ok(None)
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

#[async_trait]
impl Store for SqliteStore {
    async fn create_project(&self, project: Project, token: ApiToken) -> StoreResult<()> {
        self.write("create_project", move |c| {
            c.execute(
                "INSERT INTO projects (id, name, created_at) VALUES (?1, ?2, ?3)",
                params![project.id.to_string(), project.name, project.created_at.0],
            )
            .map_err(map_err)?;
            insert_api_token(c, &token).map_err(map_err)
        })
        .await
    }

    async fn get_project(&self, id: ProjectId) -> StoreResult<Project> {
        self.read("get_project", move |c| {
            c.query_row(
                &format!("SELECT {PROJECT_COLS} FROM projects WHERE id = ?1"),
                [id.to_string()],
                project_row,
            )
        })
        .await
    }

    async fn create_api_token(&self, token: ApiToken) -> StoreResult<()> {
        self.write("create_api_token", move |c| {
            insert_api_token(c, &token).map_err(map_err)
        })
        .await
    }

    async fn list_api_tokens(&self, project: ProjectId) -> StoreResult<Vec<ApiToken>> {
        self.read("list_api_tokens", move |c| {
            let mut st = c.prepare_cached(&format!(
                "SELECT {API_TOKEN_COLS} FROM api_tokens WHERE project_id = ?1 ORDER BY created_at, id"
            ))?;
            let rows = st.query_map([project.to_string()], api_token_row)?;
            rows.collect()
        })
        .await
    }

    async fn revoke_api_token(&self, id: ApiTokenId, at: UnixTime) -> StoreResult<()> {
        self.write("revoke_api_token", move |c| {
            let n = c
                .execute(
                    "UPDATE api_tokens SET revoked_at = COALESCE(revoked_at, ?2) WHERE id = ?1",
                    params![id.to_string(), at.0],
                )
                .map_err(map_err)?;
            if n == 0 {
                Err(StoreError::NotFound)
            } else {
                Ok(())
            }
        })
        .await
    }

    async fn find_api_token(
        &self,
        project: ProjectId,
        hash: [u8; 32],
    ) -> StoreResult<Option<ApiToken>> {
        self.read("find_api_token", move |c| {
            c.prepare_cached(&format!(
                "SELECT {API_TOKEN_COLS} FROM api_tokens
                 WHERE hash = ?1 AND project_id = ?2 AND revoked_at IS NULL"
            ))?
            .query_row(params![&hash[..], project.to_string()], api_token_row)
            .optional()
        })
        .await
    }

    async fn list_keys(&self) -> StoreResult<Vec<StoredKey>> {
        self.read("list_keys", |c| {
            let mut st = c.prepare_cached(
                "SELECT kid, purpose, state, wrapped, created_at, activated_at, retired_at, sealed
                 FROM keys ORDER BY created_at, kid",
            )?;
            let rows = st.query_map([], key_row)?;
            rows.collect()
        })
        .await
    }

    async fn insert_key(&self, key: StoredKey) -> StoreResult<()> {
        self.write("insert_key", move |c| {
            c.execute(
                "INSERT INTO keys (kid, purpose, state, wrapped, created_at, activated_at, retired_at, sealed)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                params![
                    key.kid,
                    key.purpose.as_str(),
                    key.state.as_str(),
                    key.wrapped,
                    key.created_at.0,
                    key.activated_at.map(|t| t.0),
                    key.retired_at.map(|t| t.0),
                    key.sealed
                ],
            )
            .map(|_| ())
            .map_err(map_err)
        })
        .await
    }

    async fn master_key_check(&self) -> StoreResult<Option<MasterKeyCheck>> {
        self.read("master_key_check", |c| {
            c.prepare_cached("SELECT value, recorded_at FROM master_key_check WHERE id = 1")?
                .query_row([], check_row)
                .optional()
        })
        .await
    }

    async fn record_master_key_check(&self, check: MasterKeyCheck) -> StoreResult<MasterKeyCheck> {
        self.write("record_master_key_check", move |c| {
            c.execute(
                "INSERT INTO master_key_check (id, value, recorded_at) VALUES (1, ?1, ?2)
                 ON CONFLICT (id) DO NOTHING",
                params![check.value.to_vec(), check.recorded_at.0],
            )
            .map_err(map_err)?;
            c.query_row(
                "SELECT value, recorded_at FROM master_key_check WHERE id = 1",
                [],
                check_row,
            )
            .map_err(map_err)
        })
        .await
    }

    async fn create_resource(&self, new: NewResource) -> StoreResult<()> {
        self.write("create_resource", move |c| {
            insert_resource(c, &new, None).map_err(map_err)
        })
        .await
    }

    async fn get_resource(&self, project: ProjectId, id: ResourceId) -> StoreResult<Resource> {
        self.read("get_resource", move |c| {
            c.prepare_cached(&format!(
                "SELECT {RESOURCE_COLS} FROM resources r LEFT JOIN subscribers s ON s.id = r.id
                 WHERE r.id = ?1 AND r.project_id = ?2"
            ))?
            .query_row(params![id.to_string(), project.to_string()], resource_row)
        })
        .await
    }

    async fn list_resources(
        &self,
        project: ProjectId,
        kind: Option<ResourceKind>,
        page: Page,
    ) -> StoreResult<PageOf<Resource>> {
        self.read("list_resources", move |c| {
            let mut st = c.prepare_cached(&format!(
                "SELECT {RESOURCE_COLS} FROM resources r LEFT JOIN subscribers s ON s.id = r.id
                 WHERE r.project_id = ?1 AND (?2 IS NULL OR r.kind = ?2) AND (?3 IS NULL OR r.id > ?3)
                 ORDER BY r.id LIMIT ?4"
            ))?;
            let rows = st.query_map(
                params![
                    project.to_string(),
                    kind.map(|k| k.as_str()),
                    page.after.map(|u| u.to_string()),
                    page.size as i64 + 1
                ],
                resource_row,
            )?;
            page_of(rows.collect::<rusqlite::Result<Vec<_>>>()?, page.size)
        })
        .await
    }

    async fn update_subscriber(
        &self,
        project: ProjectId,
        id: ResourceId,
        patch: SubscriberPatch,
        password_hash: Option<String>,
        at: UnixTime,
    ) -> StoreResult<Resource> {
        self.write("update_subscriber", move |c| {
            let n = update_subscriber_row(c, project, id, &patch, password_hash.as_deref(), at)
                .map_err(map_err)?;
            if n == 0 {
                return Err(StoreError::NotFound);
            }
            // Changing the password revokes the subscriber's sessions (security.md).
            if password_hash.is_some() {
                revoke_subject(c, project, id, at).map_err(map_err)?;
            }
            read_resource(c, project, id)
        })
        .await
    }

    async fn update_room(
        &self,
        project: ProjectId,
        id: ResourceId,
        kind: ResourceKind,
        patch: RoomPatch,
        at: UnixTime,
    ) -> StoreResult<Resource> {
        self.write("update_room", move |c| {
            let mut r = read_resource(c, project, id)?;
            if r.kind != kind {
                return Err(StoreError::NotFound);
            }
            if let Some(n) = &patch.name {
                r.name = n.clone();
            }
            if let Some(d) = &patch.display_name {
                r.display_name = d.clone();
            }
            r.data.extend(patch.data.clone());
            c.execute(
                "UPDATE resources SET name = ?2, display_name = ?3, data = ?4, updated_at = ?5 WHERE id = ?1",
                params![
                    id.to_string(),
                    r.name,
                    r.display_name,
                    serde_json::Value::Object(r.data.clone()).to_string(),
                    at.0
                ],
            )
            .map_err(map_err)?;
            c.execute(
                "UPDATE addresses SET name = ?2, display_name = ?3 WHERE resource_id = ?1",
                params![id.to_string(), r.name, r.display_name],
            )
            .map_err(map_err)?;
            r.updated_at = at;
            Ok(r)
        })
        .await
    }

    async fn delete_resource(
        &self,
        project: ProjectId,
        id: ResourceId,
        kind: ResourceKind,
        at: UnixTime,
    ) -> StoreResult<()> {
        self.write("delete_resource", move |c| {
            let n = c
                .execute(
                    "DELETE FROM resources WHERE id = ?1 AND project_id = ?2 AND kind = ?3",
                    params![id.to_string(), project.to_string(), kind.as_str()],
                )
                .map_err(map_err)?;
            if n == 0 {
                return Err(StoreError::NotFound);
            }
            if kind == ResourceKind::Subscriber {
                revoke_subject(c, project, id, at).map_err(map_err)?;
            }
            Ok(())
        })
        .await
    }

    async fn get_address(&self, project: ProjectId, id: AddressId) -> StoreResult<Address> {
        self.read("get_address", move |c| {
            c.prepare_cached(&format!(
                "SELECT {ADDRESS_COLS} FROM addresses WHERE id = ?1 AND project_id = ?2"
            ))?
            .query_row(params![id.to_string(), project.to_string()], address_row)
        })
        .await
    }

    async fn list_addresses(
        &self,
        project: ProjectId,
        q: AddressQuery,
        page: Page,
    ) -> StoreResult<PageOf<Address>> {
        self.read("list_addresses", move |c| {
            let mut st = c.prepare_cached(&format!(
                "SELECT {ADDRESS_COLS} FROM addresses
                 WHERE project_id = ?1
                   AND (?2 IS NULL OR kind = ?2)
                   AND (?3 IS NULL OR display_name = ?3)
                   AND (?4 IS NULL OR resource_id = ?4)
                   AND (?5 IS NULL OR kind != 'subscriber' OR resource_id = ?5)
                   AND (?6 IS NULL OR id > ?6)
                 ORDER BY id LIMIT ?7"
            ))?;
            let rows = st.query_map(
                params![
                    project.to_string(),
                    q.kind.map(|k| k.as_str()),
                    q.display_name,
                    q.resource_id.map(|r| r.to_string()),
                    q.visible_to.map(|r| r.to_string()),
                    page.after.map(|u| u.to_string()),
                    page.size as i64 + 1
                ],
                address_row,
            )?;
            page_of(rows.collect::<rusqlite::Result<Vec<_>>>()?, page.size)
        })
        .await
    }

    async fn existing_addresses(
        &self,
        project: ProjectId,
        ids: &[AddressId],
    ) -> StoreResult<Vec<AddressId>> {
        let ids = ids.to_vec();
        self.read("existing_addresses", move |c| {
            let mut st =
                c.prepare_cached("SELECT 1 FROM addresses WHERE id = ?1 AND project_id = ?2")?;
            let project = project.to_string();
            let mut out = Vec::with_capacity(ids.len());
            for id in ids {
                if st.exists(params![id.to_string(), project])? {
                    out.push(id);
                }
            }
            Ok(out)
        })
        .await
    }

    async fn grant_subscriber(
        &self,
        project: ProjectId,
        upsert: SubscriberUpsert,
        family: Family,
        at: UnixTime,
    ) -> StoreResult<ResourceId> {
        self.write("grant_subscriber", move |c| {
            let key = identity_key(&upsert.reference);
            let existing = find_subscriber_id(c, project, &key).map_err(map_err)?;
            let id = match existing {
                Some(id) => {
                    let id = ResourceId(id.parse().map_err(unavailable)?);
                    if upsert.changes_existing() {
                        update_subscriber_row(
                            c,
                            project,
                            id,
                            &upsert.patch,
                            upsert.password_hash.as_deref(),
                            at,
                        )
                        .map_err(map_err)?;
                    }
                    if upsert.password_hash.is_some() {
                        revoke_subject(c, project, id, at).map_err(map_err)?;
                    }
                    id
                }
                None => {
                    insert_resource(c, &upsert.create, Some(&upsert.reference)).map_err(map_err)?;
                    upsert.create.resource.id
                }
            };
            let family = Family {
                subject: id.0,
                ..family.clone()
            };
            insert_family(c, &family).map_err(map_err)?;
            Ok(id)
        })
        .await
    }

    async fn create_family(&self, family: Family) -> StoreResult<()> {
        self.write("create_family", move |c| {
            insert_family(c, &family).map_err(map_err)
        })
        .await
    }

    async fn insert_families(&self, families: Vec<Family>) -> StoreResult<()> {
        self.write("insert_families", move |c| {
            families
                .iter()
                .try_for_each(|f| insert_family(c, f))
                .map_err(map_err)
        })
        .await
    }

    async fn get_family(&self, id: FamilyId) -> StoreResult<Family> {
        self.read("get_family", move |c| {
            c.prepare_cached(&format!("SELECT {FAMILY_COLS} FROM families WHERE id = ?1"))?
                .query_row([id.to_string()], family_row)
        })
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
        self.write("rotate_family", move |c| {
            // The conditional update is the whole race: only the request that still sees the
            // generation it spends advances it. The writer thread serialises it anyway, but the
            // statement stays correct on a backend with concurrent writers.
            let n = c
                .prepare_cached(
                    "UPDATE families SET generation = generation + 1, rotated_at = ?4,
                         tokens_expire_at = MIN(?5, expires_at)
                     WHERE id = ?1 AND project_id = ?2 AND generation = ?3
                       AND revoked_at IS NULL AND expires_at > ?4",
                )
                .and_then(|mut st| {
                    st.execute(params![
                        id.to_string(),
                        project.to_string(),
                        generation,
                        at.0,
                        tokens_expire_at.0
                    ])
                })
                .map_err(map_err)?;
            let fam = c
                .prepare_cached(&format!(
                    "SELECT {FAMILY_COLS} FROM families WHERE id = ?1 AND project_id = ?2"
                ))
                .and_then(|mut st| {
                    st.query_row(params![id.to_string(), project.to_string()], family_row)
                        .optional()
                })
                .map_err(map_err)?;
            Ok(match fam {
                None => RotateOutcome::NotFound,
                Some(f) if n == 1 => RotateOutcome::Rotated(f),
                Some(f) if f.revoked_at.is_some() || f.expires_at <= at => RotateOutcome::Dead,
                Some(f) => RotateOutcome::Stale(f),
            })
        })
        .await
    }

    async fn revoke_family(&self, id: FamilyId, at: UnixTime) -> StoreResult<()> {
        self.write("revoke_family", move |c| {
            c.execute(
                "UPDATE families SET revoked_at = ?2 WHERE id = ?1 AND revoked_at IS NULL",
                params![id.to_string(), at.0],
            )
            .map(|_| ())
            .map_err(map_err)
        })
        .await
    }

    async fn purge(&self, request: PurgeRequest) -> StoreResult<PurgeCounts> {
        self.write("purge", move |c| {
            // Families whose newest token has expired can never be used again; revoked ones
            // answer "inactive" just as well once deleted, but they are kept until their
            // tokens expire so that reuse of a revoked chain still reads as reuse in logs.
            // Each DELETE takes at most `limit` rows through its index (see `Store::purge`).
            let delete = |sql: &str, before: i64| -> StoreResult<u64> {
                c.prepare_cached(sql)
                    .and_then(|mut st| st.execute(params![before, request.limit]))
                    .map(|n| n as u64)
                    .map_err(map_err)
            };
            let families = delete(
                "DELETE FROM families WHERE id IN
                     (SELECT id FROM families WHERE tokens_expire_at < ?1 LIMIT ?2)",
                request.before.0,
            )?;
            let sessions = delete(
                "DELETE FROM operator_sessions WHERE hash IN
                     (SELECT hash FROM operator_sessions WHERE expires_at < ?1 LIMIT ?2)",
                request.before.0,
            )?;
            let audit_events = match request.audit_before {
                Some(before) => delete(
                    "DELETE FROM audit_events WHERE seq IN
                         (SELECT seq FROM audit_events WHERE at < ?1 LIMIT ?2)",
                    before.0,
                )?,
                None => 0,
            };
            let keys_destroyed = c
                .execute(
                    "UPDATE keys SET state = 'destroyed', wrapped = x''
                     WHERE state = 'retired' AND retired_at < ?1",
                    [request.retired_before.0],
                )
                .map_err(map_err)? as u64;
            Ok(PurgeCounts {
                families,
                sessions,
                audit_events,
                keys_destroyed,
            })
        })
        .await
    }

    async fn count_families(&self) -> StoreResult<u64> {
        self.read("count_families", |c| {
            c.query_row("SELECT COUNT(*) FROM families", [], |r| r.get::<_, i64>(0))
        })
        .await
        .map(|n| n as u64)
    }

    async fn activate_key(&self, kid: &str, at: UnixTime) -> StoreResult<()> {
        let kid = kid.to_string();
        self.write("activate_key", move |c| {
            let purpose: String = c
                .query_row(
                    "SELECT purpose FROM keys WHERE kid = ?1 AND state = 'pending'",
                    [&kid],
                    |r| r.get(0),
                )
                .map_err(map_err)?;
            c.execute(
                "UPDATE keys SET state = 'retired', retired_at = ?2 WHERE purpose = ?1 AND state = 'active'",
                params![purpose, at.0],
            )
            .map_err(map_err)?;
            c.execute(
                "UPDATE keys SET state = 'active', activated_at = ?2 WHERE kid = ?1",
                params![kid, at.0],
            )
            .map_err(map_err)?;
            Ok(())
        })
        .await
    }

    async fn retire_key(&self, kid: &str, at: UnixTime) -> StoreResult<()> {
        let kid = kid.to_string();
        self.write("retire_key", move |c| {
            let n = c
                .execute(
                    "UPDATE keys SET state = 'retired', retired_at = ?2
                     WHERE kid = ?1 AND state IN ('pending', 'active')",
                    params![kid, at.0],
                )
                .map_err(map_err)?;
            if n == 0 {
                Err(StoreError::NotFound)
            } else {
                Ok(())
            }
        })
        .await
    }

    async fn destroy_key(&self, kid: &str) -> StoreResult<()> {
        let kid = kid.to_string();
        self.write("destroy_key", move |c| {
            let n = c
                .execute(
                    "UPDATE keys SET state = 'destroyed', wrapped = x'' WHERE kid = ?1 AND state != 'destroyed'",
                    [&kid],
                )
                .map_err(map_err)?;
            if n == 0 {
                Err(StoreError::NotFound)
            } else {
                Ok(())
            }
        })
        .await
    }

    async fn add_seal_counts(&self, counts: Vec<(String, u64)>) -> StoreResult<()> {
        self.write("add_seal_counts", move |c| {
            let mut st = c
                .prepare_cached("UPDATE keys SET sealed = sealed + ?2 WHERE kid = ?1")
                .map_err(map_err)?;
            for (kid, n) in &counts {
                st.execute(params![kid, *n as i64]).map_err(map_err)?;
            }
            Ok(())
        })
        .await
    }

    async fn append_audit(&self, events: Vec<AuditEvent>) -> StoreResult<()> {
        self.write("append_audit", move |c| {
            let mut st = c
                .prepare_cached(
                    "INSERT INTO audit_events (at, project_id, action, actor, subject, detail)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                )
                .map_err(map_err)?;
            for e in &events {
                st.execute(params![
                    e.at.0,
                    e.project_id.map(|p| p.to_string()),
                    e.action,
                    e.actor,
                    e.subject,
                    serde_json::to_string(&e.detail).map_err(unavailable)?
                ])
                .map_err(map_err)?;
            }
            Ok(())
        })
        .await
    }

    async fn audit_events(
        &self,
        project: Option<ProjectId>,
        since: UnixTime,
        offset: u64,
        limit: u32,
    ) -> StoreResult<Vec<AuditEvent>> {
        self.read("audit_events", move |c| {
            let mut st = c.prepare_cached(
                "SELECT at, project_id, action, actor, subject, detail FROM audit_events
                 WHERE at >= ?1 AND (?2 IS NULL OR project_id = ?2)
                 ORDER BY seq LIMIT ?3 OFFSET ?4",
            )?;
            let rows = st.query_map(
                params![
                    since.0,
                    project.map(|p| p.to_string()),
                    limit as i64,
                    offset.min(i64::MAX as u64) as i64
                ],
                audit_row,
            )?;
            rows.collect()
        })
        .await
    }

    async fn count_audit_events(
        &self,
        project: Option<ProjectId>,
        since: UnixTime,
    ) -> StoreResult<u64> {
        self.read("count_audit_events", move |c| {
            c.query_row(
                "SELECT COUNT(*) FROM audit_events WHERE at >= ?1 AND (?2 IS NULL OR project_id = ?2)",
                params![since.0, project.map(|p| p.to_string())],
                |r| r.get::<_, i64>(0),
            )
            .map(|n| n.max(0) as u64)
        })
        .await
    }

    async fn list_projects(&self) -> StoreResult<Vec<Project>> {
        self.read("list_projects", |c| {
            let mut st = c.prepare_cached(&format!(
                "SELECT {PROJECT_COLS} FROM projects ORDER BY created_at, id"
            ))?;
            let rows = st.query_map([], project_row)?;
            rows.collect()
        })
        .await
    }

    async fn delete_project(&self, id: ProjectId) -> StoreResult<()> {
        self.write("delete_project", move |c| {
            let id = id.to_string();
            // Families and subscribers carry the project id without a foreign key (they are
            // on the hot path); resources, addresses, tokens and embeds cascade. Only
            // subscriber families are indexed by project, so this scans families: deleting a
            // project is rare, an index entry per grant is not.
            c.execute("DELETE FROM families WHERE project_id = ?1", [&id])
                .map_err(map_err)?;
            c.execute("DELETE FROM resources WHERE project_id = ?1", [&id])
                .map_err(map_err)?;
            let n = c
                .execute("DELETE FROM projects WHERE id = ?1", [&id])
                .map_err(map_err)?;
            if n == 0 {
                return Err(StoreError::NotFound);
            }
            Ok(())
        })
        .await
    }

    async fn create_operator(&self, op: Operator) -> StoreResult<()> {
        self.write("create_operator", move |c| {
            c.execute(
                "INSERT INTO operators (id, username, username_key, domain, kind, role,
                     password_hash, api_key_hash, disabled, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
                params![
                    op.id.to_string(),
                    op.username,
                    identity_key(&op.username),
                    op.domain,
                    op.kind.as_str(),
                    op.role.as_str(),
                    op.password_hash,
                    op.api_key_hash.as_ref().map(|h| &h[..]),
                    op.disabled,
                    op.created_at.0
                ],
            )
            .map(|_| ())
            .map_err(|e| match map_err(e) {
                StoreError::Conflict(_) => StoreError::Conflict("username".into()),
                other => other,
            })
        })
        .await
    }

    async fn get_operator(&self, id: OperatorId) -> StoreResult<Operator> {
        self.read("get_operator", move |c| {
            c.prepare_cached(&format!(
                "SELECT {OPERATOR_COLS} FROM operators WHERE id = ?1"
            ))?
            .query_row([id.to_string()], operator_row)
        })
        .await
    }

    async fn find_operator(&self, username: &str) -> StoreResult<Option<Operator>> {
        let key = identity_key(username);
        self.read("find_operator", move |c| {
            c.prepare_cached(&format!(
                "SELECT {OPERATOR_COLS} FROM operators WHERE username_key = ?1"
            ))?
            .query_row([key], operator_row)
            .optional()
        })
        .await
    }

    async fn find_operator_by_key(&self, hash: [u8; 32]) -> StoreResult<Option<Operator>> {
        self.read("find_operator_by_key", move |c| {
            c.prepare_cached(&format!(
                "SELECT {OPERATOR_COLS} FROM operators WHERE api_key_hash = ?1"
            ))?
            .query_row([&hash[..]], operator_row)
            .optional()
        })
        .await
    }

    async fn list_operators(&self) -> StoreResult<Vec<Operator>> {
        self.read("list_operators", |c| {
            let mut st = c.prepare_cached(&format!(
                "SELECT {OPERATOR_COLS} FROM operators ORDER BY created_at, id"
            ))?;
            let rows = st.query_map([], operator_row)?;
            rows.collect()
        })
        .await
    }

    async fn update_operator(&self, id: OperatorId, patch: OperatorPatch) -> StoreResult<Operator> {
        self.write("update_operator", move |c| {
            let id = id.to_string();
            let n = c
                .execute(
                    "UPDATE operators SET disabled = COALESCE(?2, disabled), role = COALESCE(?3, role)
                     WHERE id = ?1",
                    params![id, patch.disabled, patch.role.map(Role::as_str)],
                )
                .map_err(map_err)?;
            if n == 0 {
                return Err(StoreError::NotFound);
            }
            if patch.disabled == Some(true) {
                c.execute("DELETE FROM operator_sessions WHERE operator_id = ?1", [&id])
                    .map_err(map_err)?;
            }
            c.query_row(
                &format!("SELECT {OPERATOR_COLS} FROM operators WHERE id = ?1"),
                [&id],
                operator_row,
            )
            .map_err(map_err)
        })
        .await
    }

    async fn set_operator_password(&self, id: OperatorId, hash: String) -> StoreResult<()> {
        self.write("set_operator_password", move |c| {
            c.execute(
                "UPDATE operators SET password_hash = ?2 WHERE id = ?1",
                params![id.to_string(), hash],
            )
            .map(|_| ())
            .map_err(map_err)
        })
        .await
    }

    async fn delete_operator(&self, id: OperatorId) -> StoreResult<()> {
        self.write("delete_operator", move |c| {
            let n = c
                .execute("DELETE FROM operators WHERE id = ?1", [id.to_string()])
                .map_err(map_err)?;
            if n == 0 {
                return Err(StoreError::NotFound);
            }
            Ok(())
        })
        .await
    }

    async fn create_operator_session(&self, s: OperatorSession) -> StoreResult<()> {
        self.write("create_operator_session", move |c| {
            c.prepare_cached(
                "INSERT INTO operator_sessions (hash, operator_id, created_at, expires_at)
                 VALUES (?1, ?2, ?3, ?4)",
            )
            .and_then(|mut st| {
                st.execute(params![
                    &s.hash[..],
                    s.operator_id.to_string(),
                    s.created_at.0,
                    s.expires_at.0
                ])
            })
            .map(|_| ())
            .map_err(map_err)
        })
        .await
    }

    async fn find_operator_session(&self, hash: [u8; 32]) -> StoreResult<Option<OperatorSession>> {
        self.read("find_operator_session", move |c| {
            c.prepare_cached(
                "SELECT hash, operator_id, created_at, expires_at FROM operator_sessions WHERE hash = ?1",
            )?
            .query_row([&hash[..]], operator_session_row)
            .optional()
        })
        .await
    }

    async fn delete_operator_session(&self, hash: [u8; 32]) -> StoreResult<()> {
        self.write("delete_operator_session", move |c| {
            c.execute("DELETE FROM operator_sessions WHERE hash = ?1", [&hash[..]])
                .map(|_| ())
                .map_err(map_err)
        })
        .await
    }

    async fn create_embed(&self, embed: Embed) -> StoreResult<()> {
        self.write("create_embed", move |c| {
            let addrs: Vec<String> = embed.addresses.iter().map(|a| a.to_string()).collect();
            c.execute(
                "INSERT INTO embeds (id, project_id, token_hash, addresses, enabled, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![
                    embed.id.to_string(),
                    embed.project_id.to_string(),
                    &embed.token_hash[..],
                    serde_json::to_string(&addrs).unwrap_or_default(),
                    embed.enabled,
                    embed.created_at.0
                ],
            )
            .map(|_| ())
            .map_err(map_err)
        })
        .await
    }

    async fn find_embed(&self, token_hash: [u8; 32]) -> StoreResult<Option<Embed>> {
        self.read("find_embed", move |c| {
            c.prepare_cached(
                "SELECT id, project_id, token_hash, addresses, enabled, created_at FROM embeds WHERE token_hash = ?1",
            )?
            .query_row([&token_hash[..]], embed_row)
            .optional()
        })
        .await
    }

    async fn export_all(&self) -> StoreResult<Vec<(&'static str, Vec<ExportRow>)>> {
        self.read("export_all", transfer::export_all).await
    }

    async fn import_all(&self, tables: Vec<(String, Vec<ExportRow>)>) -> StoreResult<()> {
        // Decoded before the writer: a job may run twice, the decoding need not.
        let rows = tessera_core::export::decode_tables(tables).map_err(StoreError::Invalid)?;
        self.write("import_all", move |c| transfer::import_all(c, &rows))
            .await
    }
}

fn insert_api_token(c: &Connection, t: &ApiToken) -> rusqlite::Result<()> {
    c.execute(
        "INSERT INTO api_tokens (id, project_id, name, hash, created_at, revoked_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![
            t.id.to_string(),
            t.project_id.to_string(),
            t.name,
            &t.hash[..],
            t.created_at.0,
            t.revoked_at.map(|x| x.0)
        ],
    )
    .map(|_| ())
}

fn read_resource(c: &Connection, project: ProjectId, id: ResourceId) -> StoreResult<Resource> {
    c.prepare_cached(&format!(
        "SELECT {RESOURCE_COLS} FROM resources r LEFT JOIN subscribers s ON s.id = r.id
         WHERE r.id = ?1 AND r.project_id = ?2"
    ))
    .and_then(|mut st| st.query_row(params![id.to_string(), project.to_string()], resource_row))
    .map_err(map_err)
}

fn page_of<T>(mut items: Vec<T>, size: u32) -> rusqlite::Result<PageOf<T>> {
    let more = items.len() > size as usize;
    items.truncate(size as usize);
    Ok(PageOf { items, more })
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
            store.grant_subscriber(project, upsert, family, UnixTime(10))
        };
        let kate = grant("kate@x").await.unwrap();
        assert_ne!(kate.to_string(), kelvin, "kate@x is not \u{212A}ate@x");
        assert_eq!(grant("\u{212A}ATE@X").await.unwrap().to_string(), kelvin);
        assert_ne!(grant("\u{E5}sa@x").await.unwrap().to_string(), angstrom);
        assert_eq!(grant("BOB@x").await.unwrap().to_string(), bob);
        assert_eq!(grant("ref-42").await.unwrap().to_string(), emile);
        assert_eq!(grant("\u{C9}mile@x").await.unwrap().to_string(), emile);
        let name = |op: Option<Operator>| op.map(|o| o.username);
        assert_eq!(
            name(store.find_operator("ADMIN@LOCAL").await.unwrap()).as_deref(),
            Some("Admin@Local")
        );
        assert_eq!(
            name(store.find_operator("adm\u{130}n@LOCAL").await.unwrap()).as_deref(),
            Some("ADM\u{130}N@local")
        );
        assert_eq!(store.find_operator("kate@local").await.unwrap(), None);
    }
}
