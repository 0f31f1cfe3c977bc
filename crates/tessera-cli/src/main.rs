//! The `tessera` binary: `serve` runs the server, `admin …` works directly on the database.
//! Every admin command prints one JSON object on stdout; errors go to stderr with exit code 1.

use std::net::SocketAddr;
use std::num::{NonZeroU32, NonZeroUsize};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

mod bench;
mod render;

/// mimalloc instead of the system allocator: a request allocates and frees many small
/// buffers on whichever worker thread runs it, and glibc's allocator spent about a sixth of
/// the server's CPU on that under load (measured with `perf` during `tessera bench`); it also
/// kept freed argon2 blocks in per-thread arenas.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use clap::{Args, Parser, Subcommand};
use serde_json::json;
use tessera_core::admin::{Actor, Admin};
use tessera_core::ids::{AddressId, ApiTokenId, ProjectId};
use tessera_core::jws::SigningAlg;
use tessera_core::keyring::KeyPurpose;
use tessera_core::model::Role;
use tessera_core::{Secret, SystemClock, UnixTime};
use tessera_server::config::{
    Config, ConnectionLimits, Database, DEFAULT_BODY_LIMIT, DEFAULT_DATABASE, DEFAULT_LISTEN,
    MAX_SECONDS,
};
use tessera_server::startup::{
    master_key_for, migrate, open_database, open_store, prepare_opened, require_database,
};
use tessera_server::transfer;

#[derive(Parser)]
#[command(name = "tessera", version, about = "A self-hosted token authority")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server.
    Serve(ServeArgs),
    /// Measure throughput and latency per workload with a built-in load generator.
    Bench(bench::BenchArgs),
    /// Administer the database directly.
    Admin {
        #[command(flatten)]
        db: DbArgs,
        /// Make the SQLite database if its file does not exist. Without it, admin commands
        /// (but `migrate` and `import`, which make databases) refuse a missing file, so that a
        /// mistyped path does not become a new installation.
        #[arg(long, global = true)]
        create: bool,
        #[command(subcommand)]
        command: AdminCommand,
    },
}

/// Where the database and master key are; shared by every command.
#[derive(Args, Clone)]
struct DbArgs {
    /// Database URL: sqlite://PATH, sqlite:///ABSOLUTE/PATH or postgres://USER@HOST:PORT/DBNAME.
    #[arg(long = "database", env = "TESSERA_DATABASE_URL", default_value = DEFAULT_DATABASE, global = true, hide_env_values = true, value_parser = DatabaseParser)]
    database: Database,
    /// File holding the master key (base64 of 32 bytes). Default: beside the SQLite file.
    #[arg(long, env = "TESSERA_MASTER_KEY_FILE", global = true)]
    master_key_file: Option<PathBuf>,
}

#[derive(Args)]
struct ServeArgs {
    /// Address to listen on; `:PORT` listens on 127.0.0.1 (`:0` picks a free port).
    #[arg(long, env = "TESSERA_LISTEN", default_value = DEFAULT_LISTEN, value_parser = parse_listen)]
    listen: SocketAddr,
    /// The URL clients reach this server at (e.g. `https://tokens.example.com`), for absolute
    /// links; without it links are relative. Never taken from request headers.
    #[arg(long, env = "TESSERA_PUBLIC_URL", value_parser = parse_public_url)]
    public_url: Option<String>,
    /// Seconds from a request's first byte until its headers must be complete.
    #[arg(long, env = "TESSERA_HEADER_READ_TIMEOUT_SECONDS", default_value = "10", value_parser = seconds::<1>)]
    header_read_timeout_seconds: Duration,
    /// Seconds a request's whole body may take to arrive.
    #[arg(long, env = "TESSERA_BODY_READ_TIMEOUT_SECONDS", default_value = "10", value_parser = seconds::<1>)]
    body_read_timeout_seconds: Duration,
    /// Seconds a connection may wait for the first byte of its next request.
    #[arg(long, env = "TESSERA_KEEP_ALIVE_TIMEOUT_SECONDS", default_value = "30", value_parser = seconds::<1>)]
    keep_alive_timeout_seconds: Duration,
    /// Seconds from a request's headers to its response (body read included); a request
    /// still running then is answered 503.
    #[arg(long, env = "TESSERA_REQUEST_TIMEOUT_SECONDS", default_value = "30", value_parser = seconds::<1>)]
    request_timeout_seconds: Duration,
    /// Connections served at once; more wait in the listen backlog.
    #[arg(long, env = "TESSERA_MAX_CONNECTIONS", default_value = "4096", value_parser = at_least_one)]
    max_connections: NonZeroUsize,
    #[command(flatten)]
    db: DbArgs,
    /// Seconds a just-spent refresh token is still honoured (0 disables).
    #[arg(long, env = "TESSERA_REFRESH_GRACE_SECONDS", default_value = "5", value_parser = seconds::<0>)]
    refresh_grace_seconds: Duration,
    /// Default access-token lifetime in seconds.
    #[arg(long, env = "TESSERA_ACCESS_TOKEN_LIFETIME_SECONDS", default_value = "7200", value_parser = seconds::<1>)]
    access_token_lifetime_seconds: Duration,
    /// The furthest token expiry a caller may request, seconds from now.
    #[arg(long, env = "TESSERA_MAX_TOKEN_LIFETIME_SECONDS", default_value = "86400", value_parser = seconds::<1>)]
    max_token_lifetime_seconds: Duration,
    /// Largest request body in bytes.
    #[arg(long, env = "TESSERA_BODY_LIMIT", default_value_t = DEFAULT_BODY_LIMIT)]
    body_limit: usize,
    /// Embed exchanges allowed per client address per minute (at least 1).
    #[arg(long, env = "TESSERA_EMBED_RATE_PER_MINUTE", default_value = "60", value_parser = at_least_one_u32)]
    embed_rate_per_minute: NonZeroU32,
    /// Relay host announced in token headers (`ch`).
    #[arg(long, env = "TESSERA_RELAY_HOST")]
    relay_host: Option<String>,
    /// How Accounts API access tokens are signed: HS256 (as the original) or EdDSA (public
    /// keys at `GET /v1/tokens/jwks`).
    #[arg(long, env = "TESSERA_ACCOUNTS_SIGNING_ALG", default_value = "HS256", value_parser = parse_alg)]
    accounts_signing_alg: SigningAlg,
    /// Failed logins of one account from one address that lock the pair (at least 1).
    #[arg(long, env = "TESSERA_LOCKOUT_FAILURES", default_value = "5", value_parser = at_least_one)]
    lockout_failures: NonZeroUsize,
    /// Seconds over which failed logins count (at least 1).
    #[arg(long, env = "TESSERA_LOCKOUT_WINDOW_SECONDS", default_value = "180", value_parser = seconds::<1>)]
    lockout_window_seconds: Duration,
    /// Seconds a locked (account, address) pair stays locked.
    #[arg(long, env = "TESSERA_LOCKOUT_SECONDS", default_value = "900", value_parser = seconds::<0>)]
    lockout_seconds: Duration,
    /// Failed logins from one address, over all accounts, that block the address (at least 1).
    #[arg(long, env = "TESSERA_LOGIN_ADDRESS_FAILURES", default_value = "30", value_parser = at_least_one)]
    login_address_failures: NonZeroUsize,
    /// Proxies (address blocks, comma-separated, e.g. `10.0.0.0/8,192.0.2.7`) whose
    /// `X-Forwarded-For` or `Forwarded` header names the client; none by default.
    #[arg(long, env = "TESSERA_TRUSTED_PROXIES", default_value = "")]
    trusted_proxies: tessera_server::proxies::TrustedProxies,
    /// Seconds cached credentials, address ownership and session families are trusted (0
    /// turns caching off). Changes made through another node or `tessera admin` show within
    /// this plus one second; changes made through this node show at once.
    #[arg(long, env = "TESSERA_CACHE_TTL_SECONDS", default_value_t = tessera_core::cache::DEFAULT_TTL.unsigned_abs(), value_parser = seconds_u64::<0>)]
    cache_ttl_seconds: u64,
    /// Days audit events are kept before the background purge removes them (0 keeps them
    /// forever).
    #[arg(long, env = "TESSERA_AUDIT_RETENTION_DAYS", default_value_t = 90)]
    audit_retention_days: u32,
}

/// A socket address, or `:PORT` for that port on the default (loopback) host.
fn parse_listen(s: &str) -> Result<SocketAddr, String> {
    let full = match s.strip_prefix(':') {
        Some(port) => format!("127.0.0.1:{port}"),
        None => s.to_string(),
    };
    full.parse()
        .map_err(|_| format!("{s:?}: give HOST:PORT (e.g. 0.0.0.0:8080) or :PORT"))
}

/// Whole seconds, at least `MIN` and at most [`MAX_SECONDS`]: a flag out of range stops the
/// start with a message naming it, instead of being raised or lowered silently.
fn seconds<const MIN: u64>(s: &str) -> Result<Duration, String> {
    seconds_u64::<MIN>(s).map(Duration::from_secs)
}

/// [`seconds`] as a plain number of seconds.
fn seconds_u64<const MIN: u64>(s: &str) -> Result<u64, String> {
    match s.trim().parse::<u64>() {
        Ok(n) if (MIN..=MAX_SECONDS).contains(&n) => Ok(n),
        _ => Err(format!(
            "give whole seconds from {MIN} to {MAX_SECONDS} (100 years)"
        )),
    }
}

/// A count that must be at least 1.
fn at_least_one(s: &str) -> Result<NonZeroUsize, String> {
    s.trim()
        .parse()
        .map_err(|_| "give a whole number of at least 1".to_string())
}

/// A rate that must be at least 1.
fn at_least_one_u32(s: &str) -> Result<NonZeroU32, String> {
    s.trim()
        .parse()
        .map_err(|_| format!("give a whole number from 1 to {}", u32::MAX))
}

/// Parses `--database` (and `TESSERA_DATABASE_URL`) into a [`Database`]. A plain `FromStr`
/// parser would do, but clap repeats a refused value in its message, and a mistyped
/// PostgreSQL URL carries its password: this parser's message shows the URL redacted only.
/// It also keeps clap from listing the variable's value in `--help` (`hide_env_values`).
#[derive(Clone)]
struct DatabaseParser;

impl clap::builder::TypedValueParser for DatabaseParser {
    type Value = Database;

    fn parse_ref(
        &self,
        cmd: &clap::Command,
        arg: Option<&clap::Arg>,
        value: &std::ffi::OsStr,
    ) -> Result<Database, clap::Error> {
        let name = arg.map_or_else(|| "--database".to_string(), ToString::to_string);
        let refuse = |why: String| {
            clap::Error::raw(
                clap::error::ErrorKind::InvalidValue,
                format!("invalid value for '{name}': {why}\n"),
            )
            .with_cmd(cmd)
        };
        let text = value
            .to_str()
            .ok_or_else(|| refuse("the URL is not UTF-8".into()))?;
        Database::parse(text).map_err(|e| refuse(e.to_string()))
    }
}

fn parse_public_url(s: &str) -> Result<String, String> {
    tessera_server::config::parse_public_url(s)
}

fn parse_alg(s: &str) -> Result<SigningAlg, String> {
    SigningAlg::parse(s).ok_or_else(|| format!("{s:?}: use HS256 or EdDSA"))
}

#[derive(Subcommand)]
enum AdminCommand {
    /// Projects.
    Project {
        #[command(subcommand)]
        command: ProjectCommand,
    },
    /// Project API tokens.
    #[command(name = "api-token")]
    ApiToken {
        #[command(subcommand)]
        command: ApiTokenCommand,
    },
    /// Applications.
    Application {
        #[command(subcommand)]
        command: ApplicationCommand,
    },
    /// Click-to-call embed widgets.
    Embed {
        #[command(subcommand)]
        command: EmbedCommand,
    },
    /// Token keys: list, rotate, retire, destroy.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// Audit events.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// Apply pending schema migrations (`serve` also applies them on start).
    Migrate,
    /// Write the whole installation to stdout as JSON lines (stop every server first).
    Export,
    /// Read an export from stdin into an empty database, in one transaction. Serve it with
    /// the master key of the installation it came from.
    Import,
    /// Operators of the management plane (the Accounts API's users).
    User {
        #[command(subcommand)]
        command: UserCommand,
    },
}

#[derive(Subcommand)]
enum UserCommand {
    /// Create an operator: a user with a password, or with --service a service account whose
    /// API key is printed once.
    Create {
        #[arg(long)]
        username: String,
        /// The password (users only); also read from TESSERA_OPERATOR_PASSWORD.
        #[arg(long, env = "TESSERA_OPERATOR_PASSWORD", hide_env_values = true)]
        password: Option<String>,
        /// ADMIN, OPERATOR or VIEWER.
        #[arg(long, value_parser = parse_role)]
        role: Role,
        /// A service account that logs in with an API key.
        #[arg(long)]
        service: bool,
    },
    /// List operators.
    List,
}

fn parse_role(s: &str) -> Result<Role, String> {
    Role::parse(s).ok_or_else(|| format!("{s:?}: use ADMIN, OPERATOR or VIEWER"))
}

#[derive(Subcommand)]
enum KeysCommand {
    /// List keys (never their material).
    List,
    /// Add a pending key per purpose; running servers activate it after the propagation delay.
    Rotate,
    /// Retire a key: it opens its tokens until they expire but seals nothing.
    Retire {
        #[arg(long)]
        kid: String,
    },
    /// Destroy a key: every token it made stops working.
    Destroy {
        #[arg(long)]
        kid: String,
    },
    /// Print the unwrapped access keys for an offline `Verifier` (tessera_core::verifier).
    /// SECRET: access keys also mint tokens; keep the output like the master key.
    Export {
        /// Which keys: only `access` can be exported.
        #[arg(long, value_parser = parse_export_purpose)]
        purpose: KeyPurpose,
    },
}

fn parse_export_purpose(s: &str) -> Result<KeyPurpose, String> {
    match KeyPurpose::parse(s) {
        Some(KeyPurpose::Access) => Ok(KeyPurpose::Access),
        _ => Err(format!(
            "{s:?}: only access keys can be exported (refresh and signing keys never leave the database)"
        )),
    }
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Print audit events as JSON lines, oldest first.
    Tail {
        #[arg(long)]
        project: Option<ProjectId>,
        /// Only events at or after this time (Unix seconds or RFC 3339).
        #[arg(long)]
        since: Option<String>,
    },
}

fn parse_since(s: &str) -> i64 {
    s.parse::<i64>()
        .ok()
        .or_else(|| tessera_core::UnixTime::parse_rfc3339(s).map(|t| t.0))
        .unwrap_or_else(|| {
            fail(format!(
                "--since {s:?} is neither Unix seconds nor RFC 3339"
            ))
        })
}

#[derive(Subcommand)]
enum ProjectCommand {
    /// Create a project and its first API token.
    Create {
        #[arg(long)]
        name: String,
    },
}

#[derive(Subcommand)]
enum ApiTokenCommand {
    /// Create an API token (shown once).
    Create {
        #[arg(long)]
        project: ProjectId,
        #[arg(long, default_value = "")]
        name: String,
    },
    /// List a project's API tokens.
    List {
        #[arg(long)]
        project: ProjectId,
    },
    /// Revoke an API token.
    Revoke {
        #[arg(long)]
        id: ApiTokenId,
    },
}

#[derive(Subcommand)]
enum ApplicationCommand {
    /// Create an application.
    Create {
        #[arg(long)]
        project: ProjectId,
        #[arg(long)]
        name: String,
    },
}

#[derive(Subcommand)]
enum EmbedCommand {
    /// Create an embed widget for up to ten addresses.
    Create {
        #[arg(long)]
        project: ProjectId,
        #[arg(long = "address", required = true)]
        addresses: Vec<AddressId>,
    },
}

fn master_key_env() -> Option<Secret<String>> {
    std::env::var("TESSERA_MASTER_KEY")
        .ok()
        .filter(|s| !s.is_empty())
        .map(Secret::new)
}

fn config_for(db: &DbArgs) -> Config {
    Config {
        database: db.database.clone(),
        master_key: master_key_env(),
        master_key_file: db.master_key_file.clone(),
        ..Config::default()
    }
}

fn fail(message: impl std::fmt::Display) -> ! {
    eprintln!("{}", json!({ "error": message.to_string() }));
    std::process::exit(1);
}

impl ServeArgs {
    /// The server's configuration: the flags are already checked by their parsers, so this
    /// only moves them into place.
    fn into_config(self) -> Config {
        Config {
            listen: self.listen,
            refresh_grace: self.refresh_grace_seconds,
            access_token_lifetime: self.access_token_lifetime_seconds,
            max_token_lifetime: self.max_token_lifetime_seconds,
            body_limit: self.body_limit,
            embed_rate_per_minute: self.embed_rate_per_minute,
            relay_host: self.relay_host,
            accounts_signing_alg: self.accounts_signing_alg,
            lockout_failures: self.lockout_failures,
            lockout_window: self.lockout_window_seconds,
            lockout: self.lockout_seconds,
            login_address_failures: self.login_address_failures,
            trusted_proxies: self.trusted_proxies,
            cache_ttl: Duration::from_secs(self.cache_ttl_seconds),
            audit_retention_days: self.audit_retention_days,
            public_url: self.public_url,
            limits: ConnectionLimits {
                header_read: self.header_read_timeout_seconds,
                body_read: self.body_read_timeout_seconds,
                keep_alive: self.keep_alive_timeout_seconds,
                request: self.request_timeout_seconds,
                max_connections: self.max_connections,
            },
            ..config_for(&self.db)
        }
    }
}

async fn serve(args: ServeArgs) {
    let config = args.into_config();
    let listen = config.listen;
    // Nothing is created until what it depends on has succeeded: the database opens, then the
    // port binds, and only then may a master key file and the first keys be created.
    let opened = open_database(&config).await.unwrap_or_else(|e| fail(e));
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .unwrap_or_else(|e| fail(format!("cannot listen on {listen}: {e}")));
    let state = prepare_opened(config, Arc::new(SystemClock), opened)
        .await
        .unwrap_or_else(|e| fail(e));
    let addr = listener.local_addr().unwrap_or_else(|e| fail(e));
    tracing::info!(%addr, "listening");
    // One plain line on stdout, so scripts and tests can learn the port when listening on 0.
    println!("listening on http://{addr}");
    if let Err(e) = tessera_server::serve(listener, state, shutdown_signal()).await {
        fail(e);
    }
    tracing::info!("stopped");
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutting down; draining in-flight requests");
}

async fn admin(db: DbArgs, create: bool, command: AdminCommand) {
    let config = config_for(&db);
    if let AdminCommand::Migrate = command {
        // Only the schema: no master key is needed to migrate.
        match migrate(&config.database).await {
            Ok((from, to)) => println!("{}", json!({ "from_version": from, "to_version": to })),
            Err(e) => fail(e),
        }
        return;
    }
    // Export and import move wrapped key material as it is: no master key is needed.
    if let AdminCommand::Export = command {
        let stdout = std::io::stdout();
        let mut out = std::io::BufWriter::new(stdout.lock());
        match transfer::export_database(&config.database, &mut out).await {
            // The export itself is on stdout; the summary goes to stderr.
            Ok(summary) => eprintln!("{summary}"),
            Err(e) => fail(e),
        }
        return;
    }
    if let AdminCommand::Import = command {
        let mut input = std::io::stdin().lock();
        match transfer::import_database(&config.database, &mut input).await {
            Ok(summary) => println!("{summary}"),
            Err(e) => fail(e),
        }
        return;
    }
    if !create {
        require_database(&config.database).unwrap_or_else(|e| fail(e));
    }
    // The database first, then its master key, checked against it before anything is written.
    let stores = open_store(&config.database, Default::default())
        .await
        .unwrap_or_else(|e| fail(e));
    let (master, _) = master_key_for(&config, stores.keys.as_ref(), &SystemClock)
        .await
        .unwrap_or_else(|e| fail(e));
    let admin = Admin {
        stores,
        master,
        clock: Arc::new(SystemClock),
        actor: Actor::Cli,
    };
    let out = match command {
        AdminCommand::Project {
            command: ProjectCommand::Create { name },
        } => admin
            .new_project(&name)
            .await
            .map(|(project, _, secret)| render::new_project(&project, secret)),
        AdminCommand::ApiToken { command } => match command {
            ApiTokenCommand::Create { project, name } => admin
                .new_api_token(project, &name)
                .await
                .map(|(token, secret)| render::new_api_token(&token, secret)),
            ApiTokenCommand::List { project } => admin
                .list_api_tokens(project)
                .await
                .map(|tokens| render::api_tokens(project, &tokens)),
            ApiTokenCommand::Revoke { id } => admin
                .revoke_api_token(None, id)
                .await
                .map(|()| render::revoked(id)),
        },
        AdminCommand::Application {
            command: ApplicationCommand::Create { project, name },
        } => admin
            .create_application(project, &name)
            .await
            .map(|(id, address)| render::application(id, address)),
        AdminCommand::Embed {
            command: EmbedCommand::Create { project, addresses },
        } => admin
            .create_embed(project, &addresses)
            .await
            .map(render::embed),
        AdminCommand::Keys { command } => match command {
            KeysCommand::List => admin.keys_list().await.map(|k| render::keys(&k)),
            KeysCommand::Rotate => admin.keys_rotate().await.map(|k| render::rotated(&k)),
            KeysCommand::Retire { kid } => admin
                .keys_retire(&kid)
                .await
                .map(|()| render::key_state(&kid, "retired")),
            KeysCommand::Destroy { kid } => admin
                .keys_destroy(&kid)
                .await
                .map(|()| render::key_state(&kid, "destroyed")),
            KeysCommand::Export { purpose } => admin
                .keys_export(purpose)
                .await
                .map(|k| render::key_export(purpose, &k)),
        },
        // Handled above, before the master key is needed.
        AdminCommand::Migrate | AdminCommand::Export | AdminCommand::Import => return,
        AdminCommand::User { command } => match command {
            UserCommand::Create {
                username,
                password,
                role,
                service,
            } => admin
                .create_operator(&username, password.map(Secret::new), role, service)
                .await
                .map(|(id, key)| render::new_operator(id, key)),
            UserCommand::List => admin
                .list_operators()
                .await
                .map(|ops| render::operators(&ops)),
        },
        AdminCommand::Audit {
            command: AuditCommand::Tail { project, since },
        } => {
            let since = UnixTime(since.as_deref().map(parse_since).unwrap_or(0));
            match admin.audit_tail(project, since).await {
                Ok(events) => {
                    for e in events {
                        println!("{}", render::audit_event(e));
                    }
                    return;
                }
                Err(e) => Err(e),
            }
        }
    };
    match out {
        Ok(v) => println!("{v}"),
        Err(e) => fail(e),
    }
}

fn main() {
    let cli = Cli::parse();
    tessera_server::telemetry::init();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap_or_else(|e| fail(e));
    rt.block_on(async move {
        match cli.command {
            Command::Serve(args) => serve(args).await,
            Command::Admin {
                db,
                create,
                command,
            } => admin(db, create, command).await,
            Command::Bench(args) => {
                if let Err(e) = bench::run(args).await {
                    fail(e);
                }
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listen_takes_a_bare_port_on_loopback() {
        assert_eq!(
            parse_listen(":0").unwrap(),
            "127.0.0.1:0".parse::<SocketAddr>().unwrap()
        );
        assert_eq!(
            parse_listen(":8080").unwrap(),
            "127.0.0.1:8080".parse::<SocketAddr>().unwrap()
        );
        assert_eq!(
            parse_listen("0.0.0.0:9000").unwrap(),
            "0.0.0.0:9000".parse::<SocketAddr>().unwrap()
        );
        assert!(parse_listen(":").is_err());
        assert!(parse_listen("localhost").is_err());
    }

    #[test]
    fn public_urls_are_checked() {
        assert_eq!(
            parse_public_url("https://tokens.example.com/").unwrap(),
            "https://tokens.example.com"
        );
        assert_eq!(
            parse_public_url("http://10.0.0.1:8080/tessera").unwrap(),
            "http://10.0.0.1:8080/tessera"
        );
        for bad in [
            "tokens.example.com",
            "ftp://x",
            "https://",
            "https://a.example/?q=1",
            "https://user@a.example",
            "https://a.example/#x",
            "https://a b.example",
        ] {
            assert!(parse_public_url(bad).is_err(), "{bad}");
        }
    }

    /// `tessera ARGS…` parsed as the binary would, or clap's error.
    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("tessera").chain(args.iter().copied()))
    }

    /// The server configuration `tessera serve ARGS…` would run with.
    fn serve_config(args: &[&str]) -> Config {
        let args: Vec<&str> = std::iter::once("serve")
            .chain(args.iter().copied())
            .collect();
        match parse(&args)
            .unwrap_or_else(|e| panic!("{args:?}: {e}"))
            .command
        {
            Command::Serve(serve) => serve.into_config(),
            _ => unreachable!("a serve command"),
        }
    }

    /// Whether this process has `TESSERA_*` settings of its own (clap would read them).
    fn environment_sets_flags() -> bool {
        std::env::vars().any(|(k, _)| k.starts_with("TESSERA_") && !k.starts_with("TESSERA_TEST_"))
    }

    #[test]
    fn serve_defaults_are_the_config_defaults() {
        if environment_sets_flags() {
            eprintln!("SKIP: serve_defaults_are_the_config_defaults: TESSERA_* is set");
            return;
        }
        let parsed = serve_config(&[]);
        assert_eq!(format!("{parsed:?}"), format!("{:?}", Config::default()));
    }

    #[test]
    fn serve_flags_become_typed_config_values() {
        let c = serve_config(&[
            "--database",
            "postgres://u:pw@h/db",
            "--lockout-failures",
            "1",
            "--lockout-window-seconds",
            "1",
            "--lockout-seconds",
            "0",
            "--refresh-grace-seconds",
            "0",
            "--cache-ttl-seconds",
            "0",
            "--max-connections",
            "2",
            "--embed-rate-per-minute",
            "1",
            "--access-token-lifetime-seconds",
            "3153600000",
        ]);
        assert_eq!(c.database.expose_url(), "postgres://u:pw@h/db");
        assert_eq!(c.lockout_failures.get(), 1);
        assert_eq!(c.lockout_window, Duration::from_secs(1));
        assert_eq!(c.lockout, Duration::ZERO);
        assert_eq!(c.refresh_grace, Duration::ZERO);
        assert_eq!(c.cache_ttl, Duration::ZERO);
        assert_eq!(c.limits.max_connections.get(), 2);
        assert_eq!(c.embed_rate_per_minute.get(), 1);
        assert_eq!(c.access_token_lifetime, Duration::from_secs(MAX_SECONDS));
    }

    /// Before, `--lockout-failures 0` ran with 1, a negative `--lockout-seconds` with 0, and
    /// the unchecked ones (`--access-token-lifetime-seconds 0`, `--embed-rate-per-minute 0`,
    /// a lifetime that overflows a Unix time) ran as given: each is now refused at start,
    /// by clap, naming the flag.
    #[test]
    fn out_of_range_flags_are_refused_with_a_message() {
        let cases: &[(&[&str], &str)] = &[
            (&["serve"], "--lockout-failures=0"),
            (&["serve"], "--login-address-failures=0"),
            (&["serve"], "--lockout-window-seconds=0"),
            (&["serve"], "--lockout-seconds=-1"),
            (&["serve"], "--refresh-grace-seconds=-5"),
            (&["serve"], "--cache-ttl-seconds=-1"),
            (&["serve"], "--access-token-lifetime-seconds=0"),
            (
                &["serve"],
                "--access-token-lifetime-seconds=9223372036854775807",
            ),
            (&["serve"], "--max-token-lifetime-seconds=0"),
            (&["serve"], "--max-token-lifetime-seconds=3153600001"),
            (&["serve"], "--embed-rate-per-minute=0"),
            (&["serve"], "--max-connections=0"),
            (&["serve"], "--header-read-timeout-seconds=0"),
            (&["serve"], "--request-timeout-seconds=ten"),
            (&["bench"], "--connections=0"),
            (&["bench"], "--rounds=0"),
            (&["bench"], "--duration=0"),
            (&["bench"], "--duration=NaN"),
            (&["bench"], "--warmup=-1"),
        ];
        for (command, flag) in cases {
            let args: Vec<&str> = command.iter().copied().chain([*flag]).collect();
            let Err(err) = parse(&args) else {
                panic!("{args:?} was accepted");
            };
            assert_eq!(
                err.kind(),
                clap::error::ErrorKind::ValueValidation,
                "{args:?}: {err}"
            );
            let name = flag.split('=').next().unwrap();
            let message = err.to_string();
            assert!(message.contains(name), "{args:?}: {message}");
            assert!(message.contains("give "), "says what to give: {message}");
        }
    }

    #[test]
    fn a_refused_database_url_is_shown_without_its_password() {
        let cases: [&[&str]; 3] = [
            &["admin", "--database", "mysql://root:s3cret@h/db", "migrate"],
            &["serve", "--database", "postgre://root:s3cret@h/db"],
            &[
                "bench",
                "--database",
                "pg://root:s3cret@h/db",
                "--rounds",
                "1",
            ],
        ];
        for args in cases {
            let Err(err) = parse(args) else {
                panic!("{args:?} was accepted");
            };
            let message = err.to_string();
            assert!(message.contains("--database"), "{message}");
            assert!(message.contains("root:***@h/db"), "{message}");
            assert!(!message.contains("s3cret"), "{message}");
        }
        let Err(err) = parse(&["admin", "--database", "sqlite://", "migrate"]) else {
            panic!("an empty SQLite path was accepted");
        };
        assert!(err.to_string().contains("names no file"), "{err}");
    }
}
