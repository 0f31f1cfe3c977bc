//! The group-committing writer thread and its WAL syncer.
//!
//! Callers send a job (a closure over the connection). The writer thread takes every job that
//! is queued, opens one `BEGIN IMMEDIATE` transaction, runs the jobs and commits once. A commit
//! failure fails every job in the batch.
//!
//! A job that fails — say, on a uniqueness conflict — must roll back alone. Savepoints do that,
//! but they cost: SQLite copies every page a savepoint is the first to change into its
//! sub-journal, and the jobs of a batch all change the same hot pages (the last leaf of each
//! index), so a savepoint per job copied a dozen pages per request. Jobs therefore first run
//! without savepoints; only if one fails is the transaction rolled back and the whole batch run
//! again, each job in its own savepoint. Failures are the exception on the hot path, and a job
//! is a `Fn` so that it can run twice; its first result is discarded.
//!
//! A committed batch is not answered yet: the writer hands its replies to the syncer thread,
//! which makes the WAL durable (`fdatasync`) and only then answers. The writer's connection
//! commits with `synchronous = NORMAL` (SQLite writes the WAL frames but does not sync them),
//! so the writer goes on with the next batch while the previous one's sync is in flight, and
//! one sync covers every batch committed before it began. No caller hears of a commit before
//! its WAL frames are on disk, which is the guarantee `synchronous = FULL` gave, without a
//! writer that sits idle through every fsync.

use rusqlite::Connection;
use tessera_core::store::{StoreError, StoreResult};
use tokio::sync::{mpsc, oneshot};

/// A queued write.
trait Job: Send {
    /// Runs the job's statements, keeps their result and says whether they succeeded. May be
    /// called again (in a new transaction) after a rollback; the last result counts.
    fn attempt(&mut self, conn: &Connection) -> bool;
    /// Delivers the kept result once the batch's fate is known (`None` = committed and durable).
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

/// What makes committed WAL frames durable: the WAL file itself (`fdatasync`), or a stand-in
/// in tests.
pub(crate) trait Durable: Send + 'static {
    /// Returns once everything written to the WAL so far is on disk.
    fn sync(&self) -> std::io::Result<()>;
}

impl Durable for std::fs::File {
    fn sync(&self) -> std::io::Result<()> {
        self.sync_data()
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
    /// Starts the writer on `conn` and the syncer on `wal`, an open handle to the same
    /// database's WAL file. `conn` must commit with `synchronous = NORMAL`: durability is the
    /// syncer's job.
    pub(crate) fn start(conn: Connection, wal: impl Durable) -> std::io::Result<Self> {
        let (tx, rx) = mpsc::channel::<Box<dyn Job>>(4096);
        let (synced_tx, synced_rx) = std::sync::mpsc::channel::<Vec<Box<dyn Job>>>();
        std::thread::Builder::new()
            .name("tessera-sqlite-sync".into())
            .spawn(move || sync(wal, synced_rx))?;
        std::thread::Builder::new()
            .name("tessera-sqlite-writer".into())
            .spawn(move || run(conn, rx, synced_tx))?;
        Ok(Writer { tx })
    }

    /// Runs `f` in the next batch and returns its result once the batch is durable. `f` may
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
/// How long a small batch under concurrent load waits for more jobs. A commit rewrites every
/// page it touched, however few rows changed on them: under load, a fifth of a millisecond of
/// waiting turns many small commits into one large one, and that I/O was most of the writer's
/// time. A lone writer never waits.
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
        conn.execute_batch("ROLLBACK; BEGIN IMMEDIATE")?;
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

fn run(
    conn: Connection,
    mut rx: mpsc::Receiver<Box<dyn Job>>,
    synced: std::sync::mpsc::Sender<Vec<Box<dyn Job>>>,
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
        match commit(&conn, &mut batch) {
            Ok(()) => {
                let committed = std::mem::replace(&mut batch, Vec::with_capacity(MAX_BATCH));
                if let Err(std::sync::mpsc::SendError(orphans)) = synced.send(committed) {
                    // The syncer has died (it never returns on its own): nothing can vouch
                    // for these commits, so they are reported as failed.
                    for job in orphans {
                        job.reply(Some("the WAL syncer has stopped"));
                    }
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "SQLite batch failed; rolling back");
                let _ = conn.execute_batch("ROLLBACK");
                let err = e.to_string();
                for job in batch.drain(..) {
                    job.reply(Some(&err));
                }
            }
        }
    }
}

/// Answers committed batches once the WAL holding them is on disk. Every batch queued when a
/// sync begins was committed before it, so one `fdatasync` answers all of them: under load the
/// syncs group the writer's commits a second time.
///
/// A failed sync is final. Linux reports a write-back error to one `fsync` and may then
/// report success for data that never reached the disk, so after a failure no later commit
/// can be vouched for either: every write fails from then on (the store's writes answer
/// 503) until the process is restarted and SQLite recovers the WAL from what is on disk.
fn sync(wal: impl Durable, rx: std::sync::mpsc::Receiver<Vec<Box<dyn Job>>>) {
    let mut groups: Vec<Vec<Box<dyn Job>>> = Vec::new();
    let mut failed: Option<String> = None;
    while let Ok(first) = rx.recv() {
        groups.push(first);
        groups.extend(rx.try_iter());
        if failed.is_none() {
            if let Err(e) = wal.sync() {
                tracing::error!(error = %e, "syncing the SQLite WAL failed; refusing all writes until restarted");
                failed = Some(format!("syncing the WAL failed earlier: {e}"));
            }
        }
        for job in groups.drain(..).flatten() {
            job.reply(failed.as_deref());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Condvar, Mutex};
    use std::time::Duration;

    /// A WAL whose syncs wait until the test opens the gate, and fail once told to.
    #[derive(Clone, Default)]
    struct Gate(Arc<(Mutex<(bool, bool)>, Condvar)>);

    impl Gate {
        fn set(&self, open: bool, broken: bool) {
            *self.0 .0.lock().unwrap() = (open, broken);
            self.0 .1.notify_all();
        }
    }

    impl Durable for Gate {
        fn sync(&self) -> std::io::Result<()> {
            let (lock, cv) = &*self.0;
            let state = cv.wait_while(lock.lock().unwrap(), |s| !s.0).unwrap();
            if state.1 {
                Err(std::io::Error::other("disk on fire"))
            } else {
                Ok(())
            }
        }
    }

    fn writer(gate: &Gate) -> Writer {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch("CREATE TABLE t (n INTEGER)").unwrap();
        Writer::start(conn, gate.clone()).unwrap()
    }

    fn insert(n: i64) -> impl Fn(&Connection) -> StoreResult<usize> {
        move |c| {
            c.execute("INSERT INTO t (n) VALUES (?1)", [n])
                .map_err(|e| StoreError::Unavailable(e.to_string()))
        }
    }

    #[tokio::test]
    async fn no_write_is_answered_before_its_sync() {
        let gate = Gate::default();
        let w = writer(&gate);
        let pending = tokio::spawn({
            let w = w.clone();
            async move { w.run(insert(1)).await }
        });
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(
            !pending.is_finished(),
            "answered while its sync was still waiting"
        );
        gate.set(true, false);
        assert_eq!(pending.await.unwrap().unwrap(), 1);
        // Committed and synced: the next write sees it.
        let count = w
            .run(|c| {
                c.query_row("SELECT COUNT(*) FROM t", [], |r| r.get::<_, i64>(0))
                    .map_err(|e| StoreError::Unavailable(e.to_string()))
            })
            .await
            .unwrap();
        assert_eq!(count, 1);
    }

    #[tokio::test]
    async fn a_failed_sync_fails_its_writes_and_every_later_one() {
        let gate = Gate::default();
        let w = writer(&gate);
        gate.set(true, true);
        assert!(matches!(
            w.run(insert(1)).await,
            Err(StoreError::Unavailable(_))
        ));
        // The disk recovers, or says it did: nothing written since can be vouched for.
        gate.set(true, false);
        let later = w.run(insert(2)).await;
        assert!(
            matches!(&later, Err(StoreError::Unavailable(m)) if m.contains("earlier")),
            "{later:?}"
        );
    }
}
