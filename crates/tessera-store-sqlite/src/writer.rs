//! The group-committing writer thread.
//!
//! Callers send a job (a closure over the connection). The writer thread takes every job that
//! is queued, opens one `BEGIN IMMEDIATE` transaction, runs the jobs, commits once and, once
//! the commit's WAL frames are on disk, hands each caller its result. A commit failure fails
//! every job in the batch.
//!
//! A job that fails — say, on a uniqueness conflict — must roll back alone. Savepoints do that,
//! but they cost: SQLite copies every page a savepoint is the first to change into its
//! sub-journal, and the jobs of a batch all change the same hot pages (the last leaf of each
//! index), so a savepoint per job copied a dozen pages per request. Jobs therefore first run
//! without savepoints; only if one fails is the transaction rolled back and the whole batch run
//! again, each job in its own savepoint. Failures are the exception on the hot path, and a job
//! is a `Fn` so that it can run twice; its first result is discarded.
//!
//! The commit and its fsync are pipelined. The writer's connection runs at `synchronous =
//! NORMAL`, so `COMMIT` writes the batch's WAL frames without waiting for the disk, and the
//! batch goes to a second thread, the syncer, which calls `fdatasync` on the WAL file and only
//! then hands each caller its result. Meanwhile the writer runs the next batch. One sync
//! covers every batch written before it started, so under load each sync answers several
//! batches. SQLite still syncs the WAL itself where its own consistency needs it (a new WAL
//! header, before a checkpoint copies frames into the database), which `NORMAL` keeps.
//!
//! What the pipeline changes for readers: a committed batch is visible to other connections
//! from its `COMMIT`, a fraction of a millisecond before it is durable. Every response that
//! depends on a write waits for that write's sync, and a sync covers every earlier commit, so
//! whatever a job reads on the writer's connection (a refresh retry finding its generation
//! spent, a grant finding an existing subscriber) is durable before its caller hears of it.
//! Only the reader connections can see a commit before its sync: an introspection or a
//! listing may report a row that a crash within that fraction of a millisecond then loses,
//! as if the write had not happened, and nobody was told that it had. No token is handed out
//! on such a read alone.
//!
//! A failed `fdatasync` fails its batches and every later write: after a failed sync, Linux
//! may have dropped the dirty pages and reports the error once, so a later sync that
//! succeeds proves nothing about the earlier frames. The server needs a restart (SQLite's
//! recovery then reads the WAL as it is on disk).
//!
//! Measured (`tessera bench`, alternating builds, 2026-12-05, 64 connections, ratios to
//! healthz over three runs each): subscriber-new 0.09 → 0.11–0.12, subscriber-existing
//! 0.15–0.20 → 0.21–0.22, refresh 0.26–0.30 → 0.29–0.32, guest grants beside argon2 logins
//! 0.64–0.79 → 0.83–1.05 of their solo rate; guest, invite within the noise. On a
//! machine whose cores were already saturated (2026-12-01) the same design measured no
//! gain; it costs one thread hand-off per batch, not per request.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use rusqlite::Connection;
use tessera_core::store::{StoreError, StoreResult};
use tokio::sync::{mpsc, oneshot};

/// A queued write.
trait Job: Send {
    /// Runs the job's statements, keeps their result and says whether they succeeded. May be
    /// called again (in a new transaction) after a rollback; the last result counts.
    fn attempt(&mut self, conn: &Connection) -> bool;
    /// Delivers the kept result once the batch's fate is known (`None` = committed).
    fn reply(self: Box<Self>, failure: Option<&str>);
}

/// A closure and what its last attempt returned.
struct Pending<T, F> {
    f: F,
    result: Option<StoreResult<T>>,
    done: oneshot::Sender<StoreResult<T>>,
}

impl<T, F> Job for Pending<T, F>
where
    T: Send,
    F: Fn(&Connection) -> StoreResult<T> + Send,
{
    fn attempt(&mut self, conn: &Connection) -> bool {
        let result = (self.f)(conn);
        let ok = result.is_ok();
        self.result = Some(result);
        ok
    }

    fn reply(self: Box<Self>, failure: Option<&str>) {
        let out = match (failure, self.result) {
            (None, Some(result)) => result,
            (Some(e), _) => Err(StoreError::Unavailable(format!("commit failed: {e}"))),
            (None, None) => Err(StoreError::Unavailable("the writer skipped a job".into())),
        };
        let _ = self.done.send(out);
    }
}

/// The most jobs one transaction takes, so one batch cannot grow without bound under load.
const MAX_BATCH: usize = 512;

/// Handle to the writer thread. Dropping every handle stops the thread.
#[derive(Debug, Clone)]
pub(crate) struct Writer {
    tx: mpsc::Sender<Box<dyn Job>>,
}

impl Writer {
    /// Starts the writer thread on `conn` (switched to `synchronous = NORMAL`) and the syncer
    /// thread on the database's WAL file, `wal`.
    ///
    /// A connection that is not in WAL mode (SQLite refuses WAL on some file systems) keeps
    /// `synchronous = FULL`: its commits are durable when they return.
    pub(crate) fn start(conn: Connection, wal: PathBuf) -> rusqlite::Result<Self> {
        let mode: String = conn.query_row("PRAGMA journal_mode", [], |r| r.get(0))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Ok(Self::start_with(conn, Box::new(CommitIsDurable)));
        }
        conn.execute_batch("PRAGMA synchronous = NORMAL")?;
        Ok(Self::start_with(
            conn,
            Box::new(WalFile {
                path: wal,
                file: None,
            }),
        ))
    }

    /// Starts the two threads with `sync` as what makes a commit durable.
    fn start_with(conn: Connection, sync: Box<dyn Flush>) -> Self {
        let (tx, rx) = mpsc::channel::<Box<dyn Job>>(4096);
        let (to_syncer, batches) = std::sync::mpsc::channel();
        let failed = Arc::new(AtomicBool::new(false));
        let seen = failed.clone();
        std::thread::Builder::new()
            .name("tessera-sqlite-sync".into())
            .spawn(move || syncer(sync, batches, seen))
            .expect("spawning the syncer thread");
        std::thread::Builder::new()
            .name("tessera-sqlite-writer".into())
            .spawn(move || run(conn, rx, to_syncer, failed))
            .expect("spawning the writer thread");
        Writer { tx }
    }

    /// Runs `f` in the next batch and returns its result once the batch is committed. `f` may
    /// run more than once (see the module's documentation); only its last run is committed.
    pub(crate) async fn run<T, F>(&self, f: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: Fn(&Connection) -> StoreResult<T> + Send + 'static,
    {
        let (done, wait) = oneshot::channel();
        let job = Box::new(Pending {
            f,
            result: None,
            done,
        });
        self.tx
            .send(job)
            .await
            .map_err(|_| StoreError::Unavailable("the writer has stopped".into()))?;
        wait.await
            .map_err(|_| StoreError::Unavailable("the writer dropped a job".into()))?
    }
}

/// A batch smaller than this, taken while the previous batch held more than one job (so
/// writers are arriving concurrently), waits [`LINGER`] for company before it commits.
const LINGER_BELOW: usize = 32;
/// How long a small batch under concurrent load waits for more jobs. A commit costs its
/// fsync and a rewrite of every page it touched, however few rows changed on them: under
/// load, a fifth of a millisecond of waiting turns many small commits into one large one,
/// and that I/O was most of the writer's time. A lone writer never waits.
const LINGER: std::time::Duration = std::time::Duration::from_micros(200);

fn drain(rx: &mut mpsc::Receiver<Box<dyn Job>>, batch: &mut Vec<Box<dyn Job>>) {
    while batch.len() < MAX_BATCH {
        match rx.try_recv() {
            Ok(j) => batch.push(j),
            Err(_) => break,
        }
    }
}

/// Runs every job of `batch` in one transaction and commits it: first without savepoints, and
/// if a job fails, again from a rolled-back start with a savepoint per job.
fn commit(conn: &Connection, batch: &mut [Box<dyn Job>]) -> rusqlite::Result<()> {
    conn.execute_batch("BEGIN IMMEDIATE")?;
    if !batch.iter_mut().all(|job| job.attempt(conn)) {
        // Some errors (an I/O error, a full disk) have SQLite roll back on its own.
        if !conn.is_autocommit() {
            conn.execute_batch("ROLLBACK")?;
        }
        conn.execute_batch("BEGIN IMMEDIATE")?;
        for job in batch.iter_mut() {
            // Cached statements: a batch with a failure runs these once per job.
            conn.prepare_cached("SAVEPOINT job")?.execute([])?;
            if !job.attempt(conn) {
                conn.prepare_cached("ROLLBACK TO job")?.execute([])?;
            }
            conn.prepare_cached("RELEASE job")?.execute([])?;
        }
    }
    conn.execute_batch("COMMIT")
}

/// Makes what the writer committed durable.
trait Flush: Send {
    /// Returns once every committed WAL frame is on disk.
    fn sync(&mut self) -> std::io::Result<()>;
}

/// The WAL file, opened on its first sync (SQLite creates it with the first write) through
/// a descriptor of our own: `fdatasync` flushes the file's pages whichever descriptor wrote
/// them. The WAL keeps its inode while any connection is open, which the writer's is.
struct WalFile {
    path: PathBuf,
    file: Option<std::fs::File>,
}

impl Flush for WalFile {
    fn sync(&mut self) -> std::io::Result<()> {
        let file = match &mut self.file {
            Some(f) => f,
            None => self.file.insert(std::fs::File::open(&self.path)?),
        };
        file.sync_data()
    }
}

/// Nothing to do: the commit itself synced.
struct CommitIsDurable;

impl Flush for CommitIsDurable {
    fn sync(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A committed batch on its way to the syncer, or the error that failed its commit.
type Committed = (Vec<Box<dyn Job>>, Option<String>);

/// Why a write fails once a sync has failed.
const SYNC_FAILED: &str = "the database could not be synced to disk; restart the server";

/// Syncs and answers committed batches: everything queued when a sync starts is answered by
/// it. Failed commits are answered too, in order, without waiting for anything.
fn syncer(
    mut sync: Box<dyn Flush>,
    batches: std::sync::mpsc::Receiver<Committed>,
    failed: Arc<AtomicBool>,
) {
    let mut done: Vec<Committed> = Vec::new();
    while let Ok(first) = batches.recv() {
        done.push(first);
        done.extend(batches.try_iter());
        let synced = if failed.load(Ordering::Acquire) {
            Err(SYNC_FAILED.to_string())
        } else {
            sync.sync().map_err(|e| {
                tracing::error!(error = %e, "fdatasync of the SQLite WAL failed; failing every write from now on");
                failed.store(true, Ordering::Release);
                format!("{SYNC_FAILED} ({e})")
            })
        };
        for (batch, failure) in done.drain(..) {
            let failure = failure.or_else(|| synced.clone().err());
            for job in batch {
                job.reply(failure.as_deref());
            }
        }
    }
}

fn run(
    conn: Connection,
    mut rx: mpsc::Receiver<Box<dyn Job>>,
    to_syncer: std::sync::mpsc::Sender<Committed>,
    failed: Arc<AtomicBool>,
) {
    let mut batch: Vec<Box<dyn Job>> = Vec::with_capacity(MAX_BATCH);
    let mut previous = 0;
    while let Some(first) = rx.blocking_recv() {
        batch.push(first);
        drain(&mut rx, &mut batch);
        if batch.len() < LINGER_BELOW && previous > 1 {
            std::thread::sleep(LINGER);
            drain(&mut rx, &mut batch);
        }
        previous = batch.len();
        let failure = if failed.load(Ordering::Acquire) {
            Some(SYNC_FAILED.to_string())
        } else {
            commit(&conn, &mut batch).err().map(|e| {
                tracing::error!(error = %e, "SQLite batch failed; rolling back");
                let _ = conn.execute_batch("ROLLBACK");
                e.to_string()
            })
        };
        let committed = std::mem::replace(&mut batch, Vec::with_capacity(MAX_BATCH));
        // The syncer stops only once this sender is dropped; were it gone, the jobs' dropped
        // reply channels would tell their callers.
        let _ = to_syncer.send((committed, failure));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// A flush that finishes only when the test sends it an outcome.
    struct Gate {
        outcomes: std::sync::mpsc::Receiver<std::io::Result<()>>,
    }

    impl Flush for Gate {
        fn sync(&mut self) -> std::io::Result<()> {
            self.outcomes
                .recv()
                .unwrap_or_else(|_| Err(std::io::Error::other("the test hung up")))
        }
    }

    fn gated_writer() -> (Writer, std::sync::mpsc::Sender<std::io::Result<()>>) {
        let (outcome, outcomes) = std::sync::mpsc::channel();
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch("CREATE TABLE t (v INTEGER NOT NULL)")
            .unwrap();
        (
            Writer::start_with(conn, Box::new(Gate { outcomes })),
            outcome,
        )
    }

    async fn insert(writer: &Writer, v: i64) -> StoreResult<usize> {
        writer
            .run(move |c| {
                c.execute("INSERT INTO t (v) VALUES (?1)", [v])
                    .map_err(crate::map_err)
            })
            .await
    }

    #[tokio::test]
    async fn a_write_is_answered_only_after_the_sync_that_follows_its_commit() {
        let (writer, outcome) = gated_writer();
        let w = writer.clone();
        let mut pending = tokio::spawn(async move { insert(&w, 1).await });
        let early = tokio::time::timeout(Duration::from_millis(300), &mut pending).await;
        assert!(early.is_err(), "answered before its sync: {early:?}");
        outcome.send(Ok(())).unwrap();
        assert_eq!(pending.await.unwrap().unwrap(), 1);
    }

    #[tokio::test]
    async fn a_failed_sync_fails_its_writes_and_every_later_one() {
        let (writer, outcome) = gated_writer();
        outcome.send(Err(std::io::Error::other("EIO"))).unwrap();
        let first = insert(&writer, 1).await;
        assert!(
            matches!(&first, Err(StoreError::Unavailable(m)) if m.contains("synced") && m.contains("EIO")),
            "{first:?}"
        );
        // A later sync would report success, which proves nothing about the lost pages.
        outcome.send(Ok(())).unwrap();
        let later = insert(&writer, 2).await;
        assert!(
            matches!(&later, Err(StoreError::Unavailable(m)) if m.contains("restart")),
            "{later:?}"
        );
    }
}
