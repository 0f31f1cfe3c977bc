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

fn run(conn: Connection, mut rx: mpsc::Receiver<Job>) {
    let mut batch: Vec<Job> = Vec::with_capacity(MAX_BATCH);
    let mut replies: Vec<Reply> = Vec::with_capacity(MAX_BATCH);
    while let Some(first) = rx.blocking_recv() {
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(j) => batch.push(j),
                Err(_) => break,
            }
        }
        let outcome = (|| -> rusqlite::Result<()> {
            conn.execute_batch("BEGIN IMMEDIATE")?;
            for job in batch.drain(..) {
                conn.execute_batch("SAVEPOINT job")?;
                let (ok, reply) = job(&conn);
                if ok {
                    conn.execute_batch("RELEASE job")?;
                } else {
                    conn.execute_batch("ROLLBACK TO job; RELEASE job")?;
                }
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
