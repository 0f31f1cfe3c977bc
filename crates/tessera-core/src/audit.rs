//! Audit events, appended off the request path: `record` only queues; a background task
//! writes whatever is queued in one batch.

use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};

use crate::model::AuditEvent;
use crate::store::AuditStore;

/// The most events written in one batch.
const BATCH: usize = 512;

/// How many events found waiting mean the log is under load, and how long it then waits for
/// more before writing. Under load an event is queued per grant, and writing whatever had
/// queued during the previous commit put an audit job into nearly every commit of the SQLite
/// writer: the rightmost leaf of the table and of its two indexes, ~6 of the ~14 pages each
/// guest-grant commit wrote to the WAL. Waiting lets a few commits in ten carry the audit
/// instead: `tessera bench` guest grants went from 14–18 to ~11.5 pages per commit and from
/// 1.30 to 0.96 `pwrite`s per grant (throughput the same within this machine's noise). A
/// quiet log (a few events at a time) writes at once, as before.
const BUSY: usize = 8;
/// See [`BUSY`].
const LINGER: std::time::Duration = std::time::Duration::from_millis(10);

/// What the writer task receives: an event, or a request to write everything queued so far.
#[derive(Debug)]
enum Message {
    Event(AuditEvent),
    Flush(oneshot::Sender<()>),
}

/// A handle that queues audit events. Cloning is cheap; a disabled log drops events.
#[derive(Debug, Clone)]
pub struct AuditLog {
    tx: Option<mpsc::Sender<Message>>,
}

impl AuditLog {
    /// A log that records nothing (for tools that write their own events directly).
    pub fn disabled() -> Self {
        AuditLog { tx: None }
    }

    /// Starts the writer task on the current Tokio runtime.
    pub fn start(store: Arc<dyn AuditStore>) -> Self {
        let (tx, mut rx) = mpsc::channel::<Message>(65_536);
        tokio::spawn(async move {
            let mut batch = Vec::with_capacity(BATCH);
            while crate::store::next_batch(&mut rx, &mut batch, BATCH).await {
                let flushing = batch.iter().any(|m| matches!(m, Message::Flush(_)));
                if !flushing && (BUSY..BATCH).contains(&batch.len()) {
                    tokio::time::sleep(LINGER).await;
                    crate::store::take_queued(&mut rx, &mut batch, BATCH);
                }
                let mut events = Vec::with_capacity(batch.len());
                let mut waiting = Vec::new();
                for m in batch.drain(..) {
                    match m {
                        Message::Event(e) => events.push(e),
                        Message::Flush(done) => waiting.push(done),
                    }
                }
                let n = events.len();
                if n > 0 {
                    if let Err(e) = store.append_audit(events).await {
                        tracing::error!(error = %e, lost = n, "audit events could not be written");
                    }
                }
                for done in waiting {
                    let _ = done.send(());
                }
            }
        });
        AuditLog { tx: Some(tx) }
    }

    /// Queues an event. Never waits: if the queue is full (the database is far behind), the
    /// event is dropped and the loss is logged, rather than slowing token issuance.
    pub fn record(&self, event: AuditEvent) {
        if let Some(tx) = &self.tx {
            if tx.try_send(Message::Event(event)).is_err() {
                tracing::warn!("audit queue full; an audit event was dropped");
            }
        }
    }

    /// Returns once every event recorded before the call has been written (or its write has
    /// failed and been logged). The server calls it after its last request has been answered,
    /// so that stopping loses no event of the requests it served.
    pub async fn flush(&self) {
        let Some(tx) = &self.tx else {
            return;
        };
        let (done, written) = oneshot::channel();
        if tx.send(Message::Flush(done)).await.is_ok() {
            let _ = written.await;
        }
    }
}
