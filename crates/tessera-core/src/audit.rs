//! Audit events, appended off the request path: `record` only queues; a background task
//! writes whatever is queued in one batch.

use std::sync::Arc;

use tokio::sync::mpsc;

use crate::model::AuditEvent;
use crate::store::Store;

/// The most events written in one batch.
const BATCH: usize = 512;

/// A handle that queues audit events. Cloning is cheap; a disabled log drops events.
#[derive(Debug, Clone)]
pub struct AuditLog {
    tx: Option<mpsc::Sender<AuditEvent>>,
}

impl AuditLog {
    /// A log that records nothing (for tools that write their own events directly).
    pub fn disabled() -> Self {
        AuditLog { tx: None }
    }

    /// Starts the writer task on the current Tokio runtime.
    pub fn start(store: Arc<dyn Store>) -> Self {
        let (tx, mut rx) = mpsc::channel::<AuditEvent>(65_536);
        tokio::spawn(async move {
            let mut batch = Vec::with_capacity(BATCH);
            while crate::store::next_batch(&mut rx, &mut batch, BATCH).await {
                let n = batch.len();
                if let Err(e) = store.append_audit(std::mem::take(&mut batch)).await {
                    tracing::error!(error = %e, lost = n, "audit events could not be written");
                }
            }
        });
        AuditLog { tx: Some(tx) }
    }

    /// Queues an event. Never waits: if the queue is full (the database is far behind), the
    /// event is dropped and the loss is logged, rather than slowing token issuance.
    pub fn record(&self, event: AuditEvent) {
        if let Some(tx) = &self.tx {
            if tx.try_send(event).is_err() {
                tracing::warn!("audit queue full; an audit event was dropped");
            }
        }
    }
}
