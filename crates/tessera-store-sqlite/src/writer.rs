//! The group-committing writer thread.
//!
//! Callers send a job (a closure over the connection). The thread takes every job that is
//! queued, opens one `BEGIN IMMEDIATE` transaction, runs each job inside its own savepoint (so a
//! job that fails — say, on a uniqueness conflict — rolls back alone), commits once, and only
//! after the commit hands each caller its result. A commit failure fails every job in the batch.

use rusqlite::Connection;
use tessera_core::store::{StoreError, StoreResult};
use tokio::sync::{mpsc, oneshot};

/// Delivers a job's result once the batch's fate is known (`None` = committed).
type Reply = Box<dyn FnOnce(Option<&str>) + Send>;
/// A job: runs its statements and says whether they succeeded.
type Job = Box<dyn FnOnce(&Connection) -> (bool, Reply) + Send>;

/// The most jobs one transaction takes, so one batch cannot grow without bound under load.
const MAX_BATCH: usize = 512;

/// Handle to the writer thread. Dropping every handle stops the thread.
#[derive(Debug, Clone)]
pub(crate) struct Writer {
    tx: mpsc::Sender<Job>,
}

impl Writer {
    pub(crate) fn start(conn: Connection) -> Self {
        let (tx, rx) = mpsc::channel::<Job>(4096);
        std::thread::Builder::new()
            .name("tessera-sqlite-writer".into())
            .spawn(move || run(conn, rx))
            .expect("spawning the writer thread");
        Writer { tx }
    }

    pub(crate) async fn run<T, F>(&self, f: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> StoreResult<T> + Send + 'static,
    {
        let (done, wait) = oneshot::channel();
        let job: Job = Box::new(move |conn| {
            let result = f(conn);
            let ok = result.is_ok();
            let reply: Reply = Box::new(move |commit_error| {
                let _ = done.send(match commit_error {
                    None => result,
                    Some(e) => Err(StoreError::Unavailable(format!("commit failed: {e}"))),
                });
            });
            (ok, reply)
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

fn drain(rx: &mut mpsc::Receiver<Job>, batch: &mut Vec<Job>) {
    while batch.len() < MAX_BATCH {
        match rx.try_recv() {
            Ok(j) => batch.push(j),
            Err(_) => break,
        }
    }
}

fn run(conn: Connection, mut rx: mpsc::Receiver<Job>) {
    let mut batch: Vec<Job> = Vec::with_capacity(MAX_BATCH);
    let mut replies: Vec<Reply> = Vec::with_capacity(MAX_BATCH);
    let mut previous = 0;
    while let Some(first) = rx.blocking_recv() {
        batch.push(first);
        drain(&mut rx, &mut batch);
        if batch.len() < LINGER_BELOW && previous > 1 {
            std::thread::sleep(LINGER);
            drain(&mut rx, &mut batch);
        }
        previous = batch.len();
        let outcome = (|| -> rusqlite::Result<()> {
            conn.execute_batch("BEGIN IMMEDIATE")?;
            for job in batch.drain(..) {
                // Cached statements: these run once per request, so parsing them each time
                // would be a measurable share of the writer's work.
                conn.prepare_cached("SAVEPOINT job")?.execute([])?;
                let (ok, reply) = job(&conn);
                if !ok {
                    conn.prepare_cached("ROLLBACK TO job")?.execute([])?;
                }
                conn.prepare_cached("RELEASE job")?.execute([])?;
                replies.push(reply);
            }
            conn.execute_batch("COMMIT")
        })();
        let err = match outcome {
            Ok(()) => None,
            Err(e) => {
                tracing::error!(error = %e, "SQLite batch failed; rolling back");
                let _ = conn.execute_batch("ROLLBACK");
                Some(e.to_string())
            }
        };
        // Jobs never reached (the batch failed early) are dropped: their callers see
        // "the writer dropped a job", an Unavailable error, never a false success.
        batch.clear();
        for reply in replies.drain(..) {
            reply(err.as_deref());
        }
    }
}
