//! The `tessera` binary: `serve` runs the server, `admin …` works directly on the database.
//! Every admin command prints one JSON object on stdout; errors go to stderr with exit code 1.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

mod bench;

/// mimalloc instead of the system allocator: a request allocates and frees many small
/// buffers on whichever worker thread runs it, and glibc's allocator spent about a sixth of
/// the server's CPU on that under load (measured with `perf` during `tessera bench`); it also
/// kept freed argon2 blocks in per-thread arenas.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use clap::{Args, Parser, Subcommand};
use serde_json::json;
use tessera_core::ids::{AddressId, ApiTokenId, ProjectId};
use tessera_core::jws::SigningAlg;
use tessera_core::keyring::KeyPurpose;
use tessera_core::model::Role;
use tessera_core::{Secret, SystemClock};
use tessera_server::admin::Admin;
use tessera_server::config::{
    Config, ConnectionLimits, DEFAULT_BODY_LIMIT, DEFAULT_DATABASE, DEFAULT_LISTEN,
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
    /// Database URL.
    #[arg(long = "database", env = "TESSERA_DATABASE_URL", default_value = DEFAULT_DATABASE, global = true)]
    database: String,
    /// File holding the master key (base64 of 32 bytes). Default: beside the SQLite file.
    #[arg(long, env = "TESSERA_MASTER_KEY_FILE", global = true)]
    master_key_file: Option<PathBuf>,
}

#[derive(Args)]
struct ServeArgs {
    /// Address to listen on; `:PORT` listens on 127.0.0.1 (`:0` picks a free port).
    #[arg(long, env = "TESSERA_LISTEN", default_value = DEFAULT_LISTEN, value_parser = parse_listen)]
    listen: SocketAddr,
    /// The URL clients reach this server at (e.g. https://tokens.example.com), for absolute
    /// links; without it links are relative. Never taken from request headers.
    #[arg(long, env = "TESSERA_PUBLIC_URL", value_parser = parse_public_url)]
    public_url: Option<String>,
    /// Seconds from a request's first byte until its headers must be complete.
    #[arg(long, env = "TESSERA_HEADER_READ_TIMEOUT_SECONDS", default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..))]
    header_read_timeout_seconds: u64,
    /// Seconds a request's whole body may take to arrive.
    #[arg(long, env = "TESSERA_BODY_READ_TIMEOUT_SECONDS", default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..))]
    body_read_timeout_seconds: u64,
    /// Seconds a connection may wait for the first byte of its next request.
    #[arg(long, env = "TESSERA_KEEP_ALIVE_TIMEOUT_SECONDS", default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..))]
    keep_alive_timeout_seconds: u64,
    /// Seconds from a request's headers to its response (body read included); a request
    /// still running then is answered 503.
    #[arg(long, env = "TESSERA_REQUEST_TIMEOUT_SECONDS", default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..))]
    request_timeout_seconds: u64,
    /// Connections served at once; more wait in the listen backlog.
    #[arg(long, env = "TESSERA_MAX_CONNECTIONS", default_value_t = 4096, value_parser = clap::value_parser!(u64).range(1..))]
    max_connections: u64,
    #[command(flatten)]
    db: DbArgs,
    /// Seconds a just-spent refresh token is still honoured (0 disables).
    #[arg(long, env = "TESSERA_REFRESH_GRACE_SECONDS", default_value_t = 5)]
    refresh_grace_seconds: i64,
    /// Default access-token lifetime in seconds.
    #[arg(
        long,
        env = "TESSERA_ACCESS_TOKEN_LIFETIME_SECONDS",
        default_value_t = 7200
    )]
    access_token_lifetime_seconds: i64,
    /// The furthest token expiry a caller may request, seconds from now.
    #[arg(
        long,
        env = "TESSERA_MAX_TOKEN_LIFETIME_SECONDS",
        default_value_t = 86400
    )]
    max_token_lifetime_seconds: i64,
    /// Largest request body in bytes.
    #[arg(long, env = "TESSERA_BODY_LIMIT", default_value_t = DEFAULT_BODY_LIMIT)]
    body_limit: usize,
    /// Embed exchanges allowed per client address per minute.
    #[arg(long, env = "TESSERA_EMBED_RATE_PER_MINUTE", default_value_t = 60)]
    embed_rate_per_minute: u32,
    /// Relay host announced in token headers (`ch`).
    #[arg(long, env = "TESSERA_RELAY_HOST")]
    relay_host: Option<String>,
    /// How Accounts API access tokens are signed: HS256 (as the original) or EdDSA (public
    /// keys at `GET /v1/tokens/jwks`).
    #[arg(long, env = "TESSERA_ACCOUNTS_SIGNING_ALG", default_value = "HS256", value_parser = parse_alg)]
    accounts_signing_alg: SigningAlg,
    /// Failed logins of one account from one address that lock the pair.
    #[arg(long, env = "TESSERA_LOCKOUT_FAILURES", default_value_t = 5)]
    lockout_failures: usize,
    /// Seconds over which failed logins count.
    #[arg(long, env = "TESSERA_LOCKOUT_WINDOW_SECONDS", default_value_t = 180)]
    lockout_window_seconds: i64,
    /// Seconds a locked (account, address) pair stays locked.
    #[arg(long, env = "TESSERA_LOCKOUT_SECONDS", default_value_t = 900)]
    lockout_seconds: i64,
    /// Failed logins from one address, over all accounts, that block the address.
    #[arg(long, env = "TESSERA_LOGIN_ADDRESS_FAILURES", default_value_t = 30)]
    login_address_failures: usize,
    /// Seconds cached credentials, address ownership and session families are trusted (0
    /// turns caching off). Changes made through another node or `tessera admin` show within
    /// this plus one second; changes made through this node show at once.
    #[arg(long, env = "TESSERA_CACHE_TTL_SECONDS", default_value_t = tessera_core::cache::DEFAULT_TTL)]
    cache_ttl_seconds: i64,
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
        database_url: db.database.clone(),
        master_key: master_key_env(),
        master_key_file: db.master_key_file.clone(),
        ..Config::default()
    }
}

fn fail(message: impl std::fmt::Display) -> ! {
    eprintln!("{}", json!({ "error": message.to_string() }));
    std::process::exit(1);
}

async fn serve(args: ServeArgs) {
    let config = Config {
        listen: args.listen,
        refresh_grace_seconds: args.refresh_grace_seconds,
        access_token_lifetime_seconds: args.access_token_lifetime_seconds,
        max_token_lifetime_seconds: args.max_token_lifetime_seconds,
        body_limit: args.body_limit,
        embed_rate_per_minute: args.embed_rate_per_minute,
        relay_host: args.relay_host,
        accounts_signing_alg: args.accounts_signing_alg,
        lockout_failures: args.lockout_failures.max(1),
        lockout_window_seconds: args.lockout_window_seconds.max(1),
        lockout_seconds: args.lockout_seconds.max(0),
        login_address_failures: args.login_address_failures.max(1),
        cache_ttl_seconds: args.cache_ttl_seconds.max(0),
        audit_retention_days: args.audit_retention_days,
        public_url: args.public_url,
        limits: ConnectionLimits {
            header_read: Duration::from_secs(args.header_read_timeout_seconds),
            body_read: Duration::from_secs(args.body_read_timeout_seconds),
            keep_alive: Duration::from_secs(args.keep_alive_timeout_seconds),
            request: Duration::from_secs(args.request_timeout_seconds),
            max_connections: usize::try_from(args.max_connections).unwrap_or(usize::MAX),
        },
        ..config_for(&args.db)
    };
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
        match migrate(&config.database_url).await {
            Ok((from, to)) => println!("{}", json!({ "from_version": from, "to_version": to })),
            Err(e) => fail(e),
        }
        return;
    }
    // Export and import move wrapped key material as it is: no master key is needed.
    if let AdminCommand::Export = command {
        let stdout = std::io::stdout();
        let mut out = std::io::BufWriter::new(stdout.lock());
        match transfer::export_database(&config.database_url, &mut out).await {
            // The export itself is on stdout; the summary goes to stderr.
            Ok(summary) => eprintln!("{summary}"),
            Err(e) => fail(e),
        }
        return;
    }
    if let AdminCommand::Import = command {
        let mut input = std::io::stdin().lock();
        match transfer::import_database(&config.database_url, &mut input).await {
            Ok(summary) => println!("{summary}"),
            Err(e) => fail(e),
        }
        return;
    }
    if !create {
        require_database(&config.database_url).unwrap_or_else(|e| fail(e));
    }
    // The database first, then its master key, checked against it before anything is written.
    let store = open_store(&config.database_url, Default::default())
        .await
        .unwrap_or_else(|e| fail(e));
    let (master, _) = master_key_for(&config, store.as_ref(), &SystemClock)
        .await
        .unwrap_or_else(|e| fail(e));
    let admin = Admin {
        store,
        master,
        clock: Arc::new(SystemClock),
        actor: "admin".into(),
    };
    let out = match command {
        AdminCommand::Project {
            command: ProjectCommand::Create { name },
        } => admin.create_project(&name).await,
        AdminCommand::ApiToken { command } => match command {
            ApiTokenCommand::Create { project, name } => {
                admin.create_api_token(project, &name).await
            }
            ApiTokenCommand::List { project } => admin.list_api_tokens(project).await,
            ApiTokenCommand::Revoke { id } => admin.revoke_api_token(None, id).await,
        },
        AdminCommand::Application {
            command: ApplicationCommand::Create { project, name },
        } => admin.create_application(project, &name).await,
        AdminCommand::Embed {
            command: EmbedCommand::Create { project, addresses },
        } => admin.create_embed(project, &addresses).await,
        AdminCommand::Keys { command } => match command {
            KeysCommand::List => admin.keys_list().await,
            KeysCommand::Rotate => admin.keys_rotate().await,
            KeysCommand::Retire { kid } => admin.keys_retire(&kid).await,
            KeysCommand::Destroy { kid } => admin.keys_destroy(&kid).await,
            KeysCommand::Export { purpose } => admin.keys_export(purpose).await,
        },
        // Handled above, before the master key is needed.
        AdminCommand::Migrate | AdminCommand::Export | AdminCommand::Import => return,
        AdminCommand::User { command } => match command {
            UserCommand::Create {
                username,
                password,
                role,
                service,
            } => {
                admin
                    .create_operator(&username, password.map(Secret::new), role, service)
                    .await
            }
            UserCommand::List => admin.list_operators().await,
        },
        AdminCommand::Audit {
            command: AuditCommand::Tail { project, since },
        } => {
            let since = since.as_deref().map(parse_since).unwrap_or(0);
            match admin.audit_tail(project, since).await {
                Ok(lines) => {
                    for l in lines {
                        println!("{l}");
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
}
