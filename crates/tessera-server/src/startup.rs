//! Start-up: master key, store, key ring, router, and the serve loop. `main` and the tests
//! both go through [`prepare`] and [`serve`], so tests exercise the real application.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::{HeaderName, HeaderValue, Method};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::Router;
use tessera_core::accounts::{AccountsPolicy, AccountsService, LockoutPolicy};
use tessera_core::audit::AuditLog;
use tessera_core::cache::CachedStore;
use tessera_core::crypto::MasterKey;
use tessera_core::directory::Directory;
use tessera_core::keys::{check_master_key, holds_keys, load_ring, KeyLoadError};
use tessera_core::maintenance::{KeyPolicy, Maintenance};
use tessera_core::metrics::{Metrics, Stopwatch};
use tessera_core::model::{MasterKeyCheck, PurgeCounts};
use tessera_core::service::{TokenPolicy, TokenService};
use tessera_core::store::{KeyStore, Stores};
use tessera_core::Clock;
use tessera_store_postgres::PgStore;
use tessera_store_sqlite::SqliteStore;
use tokio::net::TcpListener;
use tower_http::catch_panic::CatchPanicLayer;

use crate::config::{whole_seconds, Config, Database};
use crate::error::{self, Refusal};
use crate::ratelimit::RateLimiter;
use crate::state::{AppState, Shared};

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The SQLite database could not be opened.
    #[error(transparent)]
    Sqlite(#[from] tessera_store_sqlite::OpenError),
    /// The PostgreSQL database could not be opened.
    #[error(transparent)]
    Postgres(#[from] tessera_store_postgres::OpenError),
    /// The master key is missing or malformed.
    #[error("master key: {0}")]
    MasterKey(String),
    /// An admin command was pointed at a SQLite file that does not exist.
    #[error("there is no database at {0} (looked for that file): run `tessera admin migrate` to make one, or add --create to this command")]
    NoDatabase(PathBuf),
    /// Keys could not be loaded.
    #[error(transparent)]
    Keys(#[from] tessera_core::keys::KeyLoadError),
    /// Binding or serving failed.
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// Opens `database` (applying pending migrations), recording operation latencies in
/// `metrics`: every store of the one backend, uncached.
pub async fn open_store(database: &Database, metrics: Arc<Metrics>) -> Result<Stores, StartError> {
    Ok(match database {
        Database::Sqlite(path) => Stores::from_backend(Arc::new(
            SqliteStore::open(path.clone())?.with_metrics(metrics),
        )),
        Database::Postgres(url) => Stores::from_backend(Arc::new(
            PgStore::connect(url.expose()).await?.with_metrics(metrics),
        )),
    })
}

/// `admin migrate`: applies pending migrations; returns the schema version before and after.
pub async fn migrate(database: &Database) -> Result<(i64, i64), StartError> {
    Ok(match database {
        Database::Sqlite(path) => SqliteStore::open(path.clone())?.schema_versions(),
        Database::Postgres(url) => tessera_store_postgres::migrate(url.expose()).await?,
    })
}

/// Where the master key file lives by default: beside the SQLite file.
fn default_key_file(database: &Database) -> Option<PathBuf> {
    let db = database.sqlite_path()?;
    let mut name = db.file_name()?.to_os_string();
    name.push(".master-key");
    Some(db.with_file_name(name))
}

/// Refuses a SQLite database whose file does not exist, naming the file looked for. Admin
/// commands call it before opening a database (opening one creates it), so that a mistyped
/// path is not silently a new, empty installation with credentials nobody can use.
pub fn require_database(database: &Database) -> Result<(), StartError> {
    match database.sqlite_path() {
        Some(path) if !path.exists() => Err(StartError::NoDatabase(path.to_path_buf())),
        _ => Ok(()),
    }
}

/// The master key for the database whose keys are `store`, checked against it before
/// anything is written with it; returns the key and the database's recorded check.
///
/// The key comes from `TESSERA_MASTER_KEY`, else `--master-key-file`, else the file beside the
/// SQLite database. That file is created (mode 0600, with a new random key) only when it is
/// missing *and* the database holds no key and no check value: a database that holds keys was
/// made with a key that is now lost or kept elsewhere, and a new one could not open it (before
/// this rule, such a start left a stray key file that later starts kept using). Callers open
/// the database first, and `serve` binds its port first, so that a failure there creates
/// nothing.
pub async fn master_key_for(
    config: &Config,
    store: &dyn KeyStore,
    clock: &dyn Clock,
) -> Result<(MasterKey, MasterKeyCheck), StartError> {
    let master = read_master_key(config, store).await?;
    let check = check_master_key(store, &master, clock).await?;
    Ok((master, check))
}

async fn read_master_key(config: &Config, store: &dyn KeyStore) -> Result<MasterKey, StartError> {
    if let Some(text) = &config.master_key {
        return MasterKey::from_base64(text.expose())
            .map_err(|e| StartError::MasterKey(e.to_string()));
    }
    let path = match &config.master_key_file {
        Some(p) => p.clone(),
        None => default_key_file(&config.database).ok_or_else(|| {
            StartError::MasterKey("set TESSERA_MASTER_KEY or --master-key-file".into())
        })?,
    };
    if path.exists() {
        let text = std::fs::read_to_string(&path)
            .map_err(|e| StartError::MasterKey(format!("cannot read {}: {e}", path.display())))?;
        return MasterKey::from_base64(&text)
            .map_err(|e| StartError::MasterKey(format!("{}: {e}", path.display())));
    }
    if config.master_key_file.is_some() {
        return Err(StartError::MasterKey(format!(
            "{} does not exist",
            path.display()
        )));
    }
    if holds_keys(store).await.map_err(KeyLoadError::from)? {
        return Err(StartError::MasterKey(format!(
            "the database holds keys, but its master key file {} does not exist: the key it was \
             made with is lost or kept elsewhere. Restore the file, or give the key with \
             TESSERA_MASTER_KEY or --master-key-file; no new key file was created (a new key \
             could not open this database)",
            path.display()
        )));
    }
    let (key, text) = MasterKey::generate();
    write_private(&path, text.expose())?;
    tracing::warn!(path = %path.display(), "created a new master key file; back it up, the database is useless without it");
    Ok(key)
}

fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(path)?;
    f.write_all(text.as_bytes())?;
    f.write_all(b"\n")?;
    f.sync_all()
}

/// A database opened for the server, before anything has been written to it: no master key
/// file, no check value, no keys (see [`prepare_opened`]).
#[derive(Debug)]
pub struct Opened {
    stores: Stores,
    metrics: Arc<Metrics>,
}

/// Opens the configured database (applying migrations), and nothing else: `serve` binds its
/// port after this and before [`prepare_opened`] creates anything, so that a bad database or
/// a busy port leaves no key file and no keys behind.
pub async fn open_database(config: &Config) -> Result<Opened, StartError> {
    let metrics = Arc::new(Metrics::default());
    let stores = open_store(&config.database, metrics.clone()).await?;
    Ok(Opened { stores, metrics })
}

/// Opens everything the server needs and returns the handler state: [`open_database`], then
/// [`prepare_opened`].
pub async fn prepare(config: Config, clock: Arc<dyn Clock>) -> Result<AppState, StartError> {
    let opened = open_database(&config).await?;
    prepare_opened(config, clock, opened).await
}

/// Finishes start-up on an opened database: the master key (created only for a database that
/// holds no keys, and checked against the database before anything is written with it), the
/// first keys, and the services.
pub async fn prepare_opened(
    config: Config,
    clock: Arc<dyn Clock>,
    opened: Opened,
) -> Result<AppState, StartError> {
    let Opened { stores, metrics } = opened;
    let (master, check) = master_key_for(&config, stores.keys.as_ref(), clock.as_ref()).await?;
    let stores = CachedStore::in_front_of(stores, clock.clone(), whole_seconds(config.cache_ttl));
    let ring = Arc::new(load_ring(stores.keys.as_ref(), &master, clock.as_ref(), &check).await?);
    let policy = TokenPolicy {
        refresh_grace: whole_seconds(config.refresh_grace),
        access_lifetime: whole_seconds(config.access_token_lifetime),
        max_lifetime: whole_seconds(config.max_token_lifetime),
        relay_host: config.relay_host.clone(),
        ..TokenPolicy::default()
    };
    let audit = AuditLog::start(stores.audit.clone());
    let maintenance = Arc::new(Maintenance::new(
        &stores,
        ring.clone(),
        master.clone(),
        clock.clone(),
        KeyPolicy {
            // A retired key must open everything it could have sealed: the longest access
            // token plus its refresh token's extra time, and a minute of slack.
            retired_lifetime: policy.max_lifetime.max(policy.access_lifetime)
                + policy.refresh_extra
                + 60,
            audit_retention: (config.audit_retention_days > 0)
                .then(|| i64::from(config.audit_retention_days) * 24 * 3600),
            ..KeyPolicy::default()
        },
        audit.clone(),
    ));
    let service = Arc::new(
        TokenService::new(&stores, ring.clone(), clock.clone(), master.clone(), policy)
            .with_audit(audit.clone())
            .with_metrics(metrics.clone()),
    );
    let directory = Arc::new(Directory::new(
        stores.directory.clone(),
        clock.clone(),
        service.passwords().clone(),
        audit.clone(),
    ));
    let policy = AccountsPolicy {
        alg: config.accounts_signing_alg,
        lockout: LockoutPolicy {
            failures: config.lockout_failures.get(),
            window: whole_seconds(config.lockout_window),
            lock: whole_seconds(config.lockout),
            address_failures: config.login_address_failures.get(),
        },
        ..AccountsPolicy::default()
    };
    let accounts = Arc::new(AccountsService::beside(&service, stores, policy));
    Ok(AppState::new(Shared {
        service,
        directory,
        accounts,
        maintenance,
        embed_limiter: Arc::new(RateLimiter::new(config.embed_rate_per_minute.get(), clock)),
        config: Arc::new(config),
    }))
}

static REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The metrics label of a method: a static name, so counting a request allocates nothing for
/// it, and one label for unusual methods, so clients cannot grow the label set.
fn method_label(method: &Method) -> &'static str {
    const KNOWN: [(Method, &str); 7] = [
        (Method::GET, "GET"),
        (Method::POST, "POST"),
        (Method::PUT, "PUT"),
        (Method::PATCH, "PATCH"),
        (Method::DELETE, "DELETE"),
        (Method::HEAD, "HEAD"),
        (Method::OPTIONS, "OPTIONS"),
    ];
    KNOWN
        .iter()
        .find(|(m, _)| m == method)
        .map_or("OTHER", |(_, name)| name)
}

/// Reads every request body before any handler runs, within the body limit and the
/// body-read deadline, and runs the handler within the request deadline.
///
/// - A `Content-Length` over the limit is refused at once (413), before a byte of the body
///   is read: waiting for 60 KB the server will throw away only helps a slow client.
/// - The body (announced or chunked) must arrive within `limits.body_read`, and the whole
///   request be answered within `limits.request`: a client that promises a body and sends one
///   byte gets 408, a handler stuck behind an unavailable database 503, both in the dialect of
///   the path and with the connection closed (`error::refusal_response`).
/// - Handlers check credentials before they read the body, so without this a 401 could be
///   written while the body was still on its way (clients such as `requests` send headers and
///   body in two writes); hyper then closed the keep-alive connection, and a client reusing it
///   (the VMware SDK) saw its next request dropped without an answer.
async fn read_body_first(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let limits = state.config.limits;
    let limit = state.config.body_limit;
    let started = tokio::time::Instant::now();
    let headers = req.headers();
    let announced = headers
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    let chunked = headers.contains_key(axum::http::header::TRANSFER_ENCODING);
    let accounts = error::is_accounts_path(req.uri().path());
    let req = match announced {
        Some(n) if n > limit as u64 => return error::refusal_response(accounts, Refusal::TooLarge),
        Some(0) => req,
        Some(_) => match read_whole(req, limit, limits.body_read).await {
            Ok(req) => req,
            Err(why) => return error::refusal_response(accounts, why),
        },
        None if chunked => match read_whole(req, limit, limits.body_read).await {
            Ok(req) => req,
            Err(why) => return error::refusal_response(accounts, why),
        },
        None => req,
    };
    let left = limits.request.saturating_sub(started.elapsed());
    match tokio::time::timeout(left, next.run(req)).await {
        Ok(resp) => resp,
        Err(_) => {
            // The refusal log names the route and request id (`request_id`).
            tracing::warn!("request deadline passed; answered 503");
            error::refusal_response(accounts, Refusal::Deadline)
        }
    }
}

/// Reads `req`'s body into memory within `limit` bytes and `within` time.
async fn read_whole(
    req: Request,
    limit: usize,
    within: std::time::Duration,
) -> Result<Request, Refusal> {
    let (parts, body) = req.into_parts();
    let outcome = tokio::time::timeout(within, axum::body::to_bytes(body, limit)).await;
    let why = match outcome {
        Ok(Ok(bytes)) => return Ok(Request::from_parts(parts, axum::body::Body::from(bytes))),
        Err(_) => Refusal::BodyTimeout,
        Ok(Err(e)) => {
            // `to_bytes` says "length limit exceeded" through the error's source chain.
            let too_large = std::error::Error::source(&e)
                .is_some_and(|s| s.is::<http_body_util::LengthLimitError>());
            if too_large {
                Refusal::TooLarge
            } else {
                Refusal::BodyBroken
            }
        }
    };
    Err(why)
}

/// Gives every request an id (the caller's, if it is short and plain, else a new one), puts it
/// on the response and in the request's tracing span, logs the outcome and counts it in the
/// metrics by route template (never the raw path, which would make label sets unbounded).
async fn request_id(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let id = req
        .headers()
        .get(&REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| {
            !v.is_empty()
                && v.len() <= 64
                && v.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
        .map(str::to_string)
        .unwrap_or_else(|| tessera_core::ids::random_uuid().to_string());
    let path = req
        .extensions()
        .get::<MatchedPath>()
        .map_or("<unmatched>", |p| p.as_str())
        .to_string();
    let method = req.method().clone();
    // Kept for the refusal log (a reference-counted clone, not a copy of the header).
    let auth = req
        .headers()
        .get(axum::http::header::AUTHORIZATION)
        .cloned();
    // The client, behind trusted proxies if any: the address the lockout and the limits see
    // (`extract::ClientAddr`), computed here for the refusal log only.
    let client = crate::extract::client_address(&state, req.extensions(), req.headers());
    let span = tracing::info_span!("request", %method, path = %path, request_id = %id);
    let watch = Stopwatch::start();
    let accounts = error::is_accounts_path(req.uri().path());
    let mut resp = tracing::Instrument::instrument(next.run(req), span.clone()).await;
    if resp.extensions().get::<Panicked>().is_some() {
        resp = span.in_scope(|| error::panic_response(accounts));
    }
    if let Ok(v) = HeaderValue::from_str(&id) {
        resp.headers_mut().insert(REQUEST_ID.clone(), v);
    }
    let elapsed = watch.elapsed();
    let status = resp.status().as_u16();
    if crate::telemetry::is_refusal(status) {
        crate::telemetry::log_refusal(
            &id,
            &path,
            status,
            client,
            auth.as_ref(),
            resp.extensions().get::<crate::telemetry::Principal>(),
        );
    }
    state
        .service
        .metrics()
        .http
        .observe(&(path, method_label(&method), status), elapsed);
    span.in_scope(|| {
        tracing::debug!(status, micros = elapsed.as_micros() as u64, "done");
    });
    resp
}

/// The whole router.
pub fn router(state: AppState) -> Router {
    layered(crate::openapi::api().0, state)
}

/// `routes` behind the middleware every request passes: the request id, metrics and refusal
/// log, the panic catcher, the body deadlines and the body limit.
pub fn layered(routes: Router<AppState>, state: AppState) -> Router {
    let limit = state.config.body_limit;
    routes
        .layer(DefaultBodyLimit::max(limit))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            read_body_first,
        ))
        // tower-http's catcher turns a panic into a response instead of a dropped
        // connection; `request_id`, which knows the path, restates it in the dialect.
        .layer(CatchPanicLayer::custom(|_| {
            let mut r = Response::new(axum::body::Body::empty());
            r.extensions_mut().insert(Panicked);
            r
        }))
        .layer(middleware::from_fn_with_state(state.clone(), request_id))
        .with_state(state)
}

/// Marks the placeholder response of a handler that panicked.
#[derive(Clone, Copy)]
struct Panicked;

/// Serves on `listener` until `shutdown` completes, then drains in-flight requests.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let every =
        std::time::Duration::from_secs(state.maintenance.policy().sync_interval.max(1) as u64);
    let upkeep = tokio::spawn(upkeep(state.clone(), every));
    // The purge runs as its own task so that a backlog (a million families expiring together)
    // never delays key sync, which must run on time: other nodes promote a pending key
    // assuming this one has loaded it.
    let purge = tokio::spawn(purge_loop(state.clone(), every));
    let audit = state.service.audit().clone();
    let limits = state.config.limits;
    let app = router(state);
    let result = crate::connections::serve(listener, app, limits, shutdown).await;
    upkeep.abort();
    purge.abort();
    // Every request has been answered; write the audit events they queued before the process
    // (and with it the audit task) ends.
    audit.flush().await;
    result
}

/// The background loop: key sync (rotation, activation, seal counts) `every` key-sync
/// interval of real time. Failures are logged and retried next round.
async fn upkeep(state: AppState, every: std::time::Duration) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if let Err(e) = state.maintenance.sync_keys().await {
            tracing::error!(error = %e, "key sync failed");
        }
        state.embed_limiter.prune();
        state.accounts.lockout().prune();
    }
}

/// Purges everything due ([`Maintenance::purge`]: bounded rounds back to back, so a backlog
/// drains in short transactions that grants interleave with), then waits `every`.
async fn purge_loop(state: AppState, every: std::time::Duration) {
    loop {
        match state.maintenance.purge().await {
            Ok(c) if c != PurgeCounts::default() => tracing::info!(
                families = c.families,
                sessions = c.sessions,
                audit_events = c.audit_events,
                keys = c.keys_destroyed,
                "purged expired rows"
            ),
            Ok(_) => {}
            Err(e) => tracing::error!(error = %e, "purge failed"),
        }
        tokio::time::sleep(every).await;
    }
}
