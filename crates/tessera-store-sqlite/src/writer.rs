//! The group-committing writer thread.
//!
//! Callers send a job (a closure over the connection). The writer thread takes every job that
//! is queued, opens one `BEGIN IMMEDIATE` transaction, runs the jobs, commits once
//! (`synchronous = FULL`: the commit returns once its WAL frames are on disk) and only then
//! hands each caller its result. A commit failure fails every job in the batch.
//!
//! A job that fails — say, on a uniqueness conflict — must roll back alone. Savepoints do that,
//! but they cost: SQLite copies every page a savepoint is the first to change into its
//! sub-journal, and the jobs of a batch all change the same hot pages (the last leaf of each
//! index), so a savepoint per job copied a dozen pages per request. Jobs therefore first run
//! without savepoints; only if one fails is the transaction rolled back and the whole batch run
//! again, each job in its own savepoint. Failures are the exception on the hot path, and a job
//! is a `Fn` so that it can run twice; its first result is discarded.
//!
//! Why the writer syncs on its own thread rather than handing the fsync to a second thread
//! and going on with the next batch: that pipeline was measured (`tessera bench`) and gained
//! nothing alone, while beside argon2 logins it kept only ~0.7 of the guest grant rate
//! against ~0.9 for this design: every extra hand-off between threads waits behind the
//! hashing threads for a core. Measured again on 2026-12-01 (the writer at `synchronous =
//! NORMAL`, a second thread calling `fdatasync` on the WAL before answering a committed
//! batch): still no gain, because the machine runs out of CPU before the writer runs out of
//! commit slots.

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
    /// Starts the writer thread on `conn`.
    pub(crate) fn start(conn: Connection) -> Self {
        let (tx, rx) = mpsc::channel::<Box<dyn Job>>(4096);
        std::thread::Builder::new()
            .name("tessera-sqlite-writer".into())
            .spawn(move || run(conn, rx))
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

fn run(conn: Connection, mut rx: mpsc::Receiver<Box<dyn Job>>) {
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
        let failure = commit(&conn, &mut batch).err().map(|e| {
            tracing::error!(error = %e, "SQLite batch failed; rolling back");
            let _ = conn.execute_batch("ROLLBACK");
            e.to_string()
        });
        for job in batch.drain(..) {
            job.reply(failure.as_deref());
        }
    }
}
