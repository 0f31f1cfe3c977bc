//! The accept loop: how many connections are served at once, and how long a connection may
//! take over each part of a request.
//!
//! `axum::serve` has no timeouts at all, so a client that sends its headers a byte every few
//! seconds (or promises a body and never sends it) held a connection and a task for ever;
//! a few thousand of them exhausted the file descriptors and the server stopped accepting.
//! Here:
//!
//! - **Keep-alive idle** and **header read** deadlines live in [`Guarded`], a wrapper around
//!   each connection's socket: while no request is being handled, a connection that sends
//!   nothing for `keep_alive` is closed, and once the first byte of a request has arrived its
//!   headers must be complete within `header_read` (not reset by each byte, so trickling
//!   does not help).
//! - **Body read** and **request** deadlines are enforced around the handler, in
//!   `startup::read_body_first`, which answers them in the request's dialect.
//! - **The connection cap** is a semaphore taken before `accept`: when every permit is in
//!   use the loop stops accepting (new connections wait in the kernel's listen backlog, and
//!   are served as soon as a connection closes) and says so in the log, once per episode.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

use axum::extract::ConnectInfo;
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::time::{Instant, Sleep};
use tower_service::Service;

use crate::config::ConnectionLimits;

/// File descriptors kept back from the connection cap for the database, the listener, the
/// log and the key file.
const RESERVED_FDS: u64 = 128;

/// Whether a request of the connection is being handled (set by the service, read by the
/// socket wrapper: a connection waiting for its handler is not idle).
///
/// When the handler ends, the connection's task is woken (`waker`): hyper does not read the
/// socket again after a read came back pending, until that read's waker fires, so without
/// this the keep-alive deadline would never be armed on a connection that goes quiet after
/// its response.
#[derive(Debug, Default)]
struct Busy {
    handling: AtomicBool,
    waker: Mutex<Option<Waker>>,
}

impl Busy {
    fn is_handling(&self) -> bool {
        self.handling.load(Ordering::Acquire)
    }

    fn start(&self) {
        self.handling.store(true, Ordering::Release);
    }

    fn end(&self) {
        self.handling.store(false, Ordering::Release);
        let waker = self.waker.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(w) = waker {
            w.wake();
        }
    }

    fn wake_at_end(&self, cx: &Context<'_>) {
        *self.waker.lock().unwrap_or_else(|e| e.into_inner()) = Some(cx.waker().clone());
    }
}

/// Where a connection is between requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Waiting for the first byte of a request: the keep-alive deadline runs, and is pushed
    /// back by every byte the server writes (a response still going out).
    Idle,
    /// The first bytes of a request have arrived: its headers must be complete by the
    /// deadline set then.
    Head,
    /// A request is being handled; its own deadlines apply (`read_body_first`).
    Handling,
}

/// A socket with the keep-alive and header deadlines. Expiry is reported as an I/O error
/// (`TimedOut`), on which hyper closes the connection.
pub struct Guarded<S> {
    inner: S,
    busy: Arc<Busy>,
    limits: ConnectionLimits,
    phase: Phase,
    deadline: Pin<Box<Sleep>>,
}

impl<S> Guarded<S> {
    fn new(inner: S, busy: Arc<Busy>, limits: ConnectionLimits) -> Self {
        Guarded {
            inner,
            busy,
            phase: Phase::Idle,
            deadline: Box::pin(tokio::time::sleep(limits.keep_alive)),
            limits,
        }
    }

    fn set_deadline(&mut self, after: std::time::Duration) {
        self.deadline.as_mut().reset(Instant::now() + after);
    }

    /// Follows the handler: while it runs nothing here times out; when it is done the
    /// connection is idle again.
    fn track_handler(&mut self) {
        let busy = self.busy.is_handling();
        match (self.phase, busy) {
            (Phase::Handling, false) => {
                self.phase = Phase::Idle;
                self.set_deadline(self.limits.keep_alive);
            }
            (Phase::Idle | Phase::Head, true) => self.phase = Phase::Handling,
            _ => {}
        }
    }

    /// Whether the running deadline (if any) has passed; registers the waker otherwise (with
    /// the deadline, or with the handler's end while one runs).
    fn expired(&mut self, cx: &mut Context<'_>) -> bool {
        if self.phase == Phase::Handling {
            self.busy.wake_at_end(cx);
            // It may have ended between the check above and registering.
            if self.busy.is_handling() {
                return false;
            }
            self.track_handler();
        }
        self.deadline.as_mut().poll(cx).is_ready()
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Guarded<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        this.track_handler();
        let before = buf.filled().len();
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if buf.filled().len() > before && this.phase == Phase::Idle {
                    this.phase = Phase::Head;
                    this.set_deadline(this.limits.header_read);
                }
                Poll::Ready(Ok(()))
            }
            Poll::Pending if this.expired(cx) => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                match this.phase {
                    Phase::Head => "request headers not received in time",
                    _ => "idle connection",
                },
            ))),
            other => other,
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Guarded<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        this.track_handler();
        let r = Pin::new(&mut this.inner).poll_write(cx, data);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) && this.phase == Phase::Idle {
            // A response going out: the client is not idle until it has it.
            this.set_deadline(this.limits.keep_alive);
        }
        r
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Clears the connection's busy flag when the handler's future ends, however it ends.
struct Done(Arc<Busy>);

impl Drop for Done {
    fn drop(&mut self) {
        self.0.end();
    }
}

/// The connection cap that this process can honour: `wanted`, raising the soft limit on open
/// files to the hard one if needed, and lowered (with a warning) if even that is too few.
fn connection_cap(wanted: std::num::NonZeroUsize) -> usize {
    use rustix::process::{getrlimit, setrlimit, Resource};
    let wanted = wanted.get();
    let need = wanted as u64 + RESERVED_FDS;
    let mut limit = getrlimit(Resource::Nofile);
    if let Some(current) = limit.current.filter(|&c| c < need) {
        let raised = limit.maximum.map_or(need, |max| max.min(need));
        if raised > current {
            limit.current = Some(raised);
            if setrlimit(Resource::Nofile, limit).is_err() {
                limit.current = Some(current);
            }
        }
    }
    match limit.current {
        Some(fds) if fds < need => {
            let cap = fds.saturating_sub(RESERVED_FDS).max(1) as usize;
            tracing::warn!(
                wanted,
                cap,
                open_files_limit = fds,
                "the open-files limit allows fewer connections than --max-connections; serving at most {cap}"
            );
            cap
        }
        _ => wanted,
    }
}

/// Serves `app` on `listener` until `shutdown` completes, then lets in-flight requests finish.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: ConnectionLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let cap = connection_cap(limits.max_connections);
    let permits = Arc::new(Semaphore::new(cap));
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    let mut at_cap = false;
    loop {
        let permit = match permits.clone().try_acquire_owned() {
            Ok(p) => {
                at_cap = false;
                p
            }
            Err(_) => {
                if !at_cap {
                    tracing::warn!(
                        max_connections = cap,
                        "connection limit reached: new connections wait in the listen backlog until one closes"
                    );
                    at_cap = true;
                }
                tokio::select! {
                    p = permits.clone().acquire_owned() => p.expect("the semaphore is never closed"),
                    _ = &mut shutdown => break,
                }
            }
        };
        let (stream, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of descriptors or memory, or a connection reset before it was
                    // taken: say so and go on (after a pause, so a full table is not spun on).
                    tracing::error!(error = %e, "accepting a connection failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = &mut shutdown => break,
        };
        // Small requests and answers: Nagle's delay would only add latency.
        let _ = stream.set_nodelay(true);
        let busy = Arc::new(Busy::default());
        let io = TokioIo::new(Guarded::new(stream, busy.clone(), limits));
        let app = app.clone();
        // Every request is tagged with the peer's address (as `ConnectInfo`, which the
        // handlers, the lockout and the rate limits read).
        let service = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
            busy.start();
            let done = Done(busy.clone());
            req.extensions_mut().insert(ConnectInfo(peer));
            let mut app = app.clone();
            async move {
                let _done = done;
                app.call(req).await
            }
        });
        let conn = hyper::server::conn::http1::Builder::new()
            .keep_alive(true)
            .serve_connection(io, service);
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
            drop(permit);
        });
    }
    drop(listener);
    graceful.shutdown().await;
    Ok(())
}
