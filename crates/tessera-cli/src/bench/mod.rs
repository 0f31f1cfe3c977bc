//! `tessera bench`: a shipped benchmark with its own load generator.
//!
//! It prepares a project (API token, ten room addresses, subscribers, an embed widget, an
//! operator) through the admin functions and the Fabric API, then drives each workload over
//! loopback HTTP/1.1 keep-alive connections for a fixed time and reports requests/s, latency
//! percentiles, errors, and the ratio to `GET /healthz` measured in the same run. Ratios, not
//! absolute figures, are what carry from one machine (or one noisy moment) to another; with
//! `--rounds` the first pass runs several times and the report adds each workload's median.
//!
//! By default it starts its own `tessera serve` as a child process on a temporary SQLite
//! database on the current directory's disk (not `/tmp`, which may be memory: a benchmark of
//! durable writes must pay for real fsyncs), so that the server's peak RSS can be read apart
//! from the load generator's. `--database postgres://…` runs that server on PostgreSQL;
//! `--url` targets a server that is already running (its database must be given too, for the
//! set-up and the `--families` preload).
//!
//! On a database it did not make (`--database`, with or without `--url`) the bench removes
//! what it added — its project, with everything in it, and its operator — when the run ends,
//! also when a workload fails or the run is interrupted with Ctrl-C; a temporary database
//! goes away whole. Only a killed bench leaves them behind, and then it has already printed
//! their ids.

mod http;
mod load;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::num::NonZeroUsize;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use clap::Args;
use serde_json::{json, Value};
use tessera_core::admin::{Actor, Admin};
use tessera_core::crypto::{password, MasterKey};
use tessera_core::ids::{AddressId, FamilyId, OperatorId, ProjectId};
use tessera_core::model::{Family, Role};
use tessera_core::store::FamilyStore;
use tessera_core::token::PrincipalKind;
use tessera_core::{Clock, Secret, SystemClock, UnixTime};
use tessera_server::config::{Config, Database};
use tessera_server::startup::{master_key_for, open_store};

use http::Conn;
use load::{Outcome, Workload};

/// `tessera bench` options.
#[derive(Args, Debug)]
#[command(
    after_help = "The bench adds a project (\"bench <run>\", with rooms, subscribers, \
an embed widget and grants) and an ADMIN operator (bench-<run>@tessera.local) to the database. \
On a database given with --database (also with --url) it deletes both when the run ends, also \
after a failure or Ctrl-C, and says so; the temporary database of a run without --database is \
removed whole."
)]
pub struct BenchArgs {
    /// A running server to load instead of starting one (needs `--database` for set-up). The
    /// bench adds its own project and operator to that database and removes them at the end.
    #[arg(long)]
    url: Option<String>,
    /// The database: with `--url`, the running server's; otherwise the one the bench's own
    /// server uses (default: a temporary SQLite file). A PostgreSQL database should be empty
    /// or hold keys wrapped with TESSERA_MASTER_KEY.
    #[arg(long, value_parser = crate::DatabaseParser)]
    database: Option<Database>,
    /// Master key file of the database given with `--database`.
    #[arg(long)]
    master_key_file: Option<PathBuf>,
    /// Where the temporary SQLite database goes (it must be on a real disk).
    #[arg(long, default_value = ".")]
    dir: PathBuf,
    /// Concurrent keep-alive connections per workload (at least 1).
    #[arg(long, default_value = "64", value_parser = crate::at_least_one)]
    connections: NonZeroUsize,
    /// Measured seconds per workload (more than 0).
    #[arg(long, default_value_t = 10.0, value_parser = positive_seconds)]
    duration: f64,
    /// Unmeasured seconds before each workload (0 or more).
    #[arg(long, default_value_t = 1.0, value_parser = seconds_or_zero)]
    warmup: f64,
    /// Live refresh families to preload (bulk insert, not HTTP); the durable workloads then
    /// run a second time and are compared with their empty-database figures.
    #[arg(long, default_value_t = 0)]
    families: u64,
    /// Runs the first pass this many times and reports each workload's median ratio to
    /// healthz with its spread: on a shared machine one pass's ratios move by ±15 %.
    #[arg(long, default_value = "1", value_parser = crate::at_least_one)]
    rounds: NonZeroUsize,
    /// Only these workloads (comma separated); `healthz` always runs.
    #[arg(long, value_delimiter = ',')]
    workloads: Vec<String>,
    /// Also write the results as JSON to this file.
    #[arg(long)]
    json: Option<PathBuf>,
}

/// Seconds as a decimal, more than 0 (a measurement of no time has no rate).
fn positive_seconds(s: &str) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(x) if x > 0.0 && x <= 86_400.0 => Ok(x),
        _ => Err(format!(
            "{s:?}: give seconds, more than 0 and at most 86400"
        )),
    }
}

/// Seconds as a decimal, 0 or more.
fn seconds_or_zero(s: &str) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(x) if (0.0..=86_400.0).contains(&x) => Ok(x),
        _ => Err(format!("{s:?}: give seconds from 0 to 86400")),
    }
}

/// What the bench runs against.
struct Target {
    addr: SocketAddr,
    admin: Admin,
    server: Option<Child>,
    backend: &'static str,
    /// The temporary database's directory, when the bench made one: kept so that it lives as
    /// long as the run, and removed with everything the bench added when it is dropped.
    temp_dir: Option<tempfile::TempDir>,
}

impl Drop for Target {
    fn drop(&mut self) {
        if let Some(child) = &mut self.server {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Target {
    /// Whether the database outlives the run (one given with `--database`), so that what the
    /// bench adds to it must be removed again.
    fn keeps_database(&self) -> bool {
        self.temp_dir.is_none()
    }

    /// The server's peak and current resident set in MiB, when the bench started it.
    fn rss_mib(&self) -> Option<(f64, f64)> {
        let pid = self.server.as_ref()?.id();
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        let field = |name: &str| -> Option<f64> {
            let line = status.lines().find(|l| l.starts_with(name))?;
            let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
            Some(kb / 1024.0)
        };
        Some((field("VmHWM:")?, field("VmRSS:")?))
    }
}

async fn open_target(args: &BenchArgs) -> Result<Target, String> {
    let mut dir = None;
    let database = match &args.database {
        Some(d) => d.clone(),
        None if args.url.is_some() => {
            return Err("--url needs --database (the running server's) for the set-up".into())
        }
        None => {
            let d = tempfile::Builder::new()
                .prefix("tessera-bench-")
                .tempdir_in(&args.dir)
                .map_err(|e| format!("cannot make a directory in {}: {e}", args.dir.display()))?;
            let database = Database::Sqlite(d.path().join("bench.db"));
            dir = Some(d);
            database
        }
    };
    // Our own server on a database without a key gets a fresh master key; otherwise the
    // usual resolution (TESSERA_MASTER_KEY, --master-key-file, the file beside SQLite).
    let env_key = std::env::var("TESSERA_MASTER_KEY")
        .ok()
        .filter(|s| !s.is_empty());
    let key_text = match (&env_key, &args.master_key_file, args.url.is_some()) {
        (Some(k), _, _) => Some(k.clone()),
        (None, None, false) if dir.is_some() || matches!(database, Database::Postgres(_)) => {
            Some(MasterKey::generate().1.into_inner())
        }
        _ => None,
    };
    let config = Config {
        database: database.clone(),
        master_key: key_text.clone().map(Secret::new),
        master_key_file: args.master_key_file.clone(),
        ..Config::default()
    };
    let stores = open_store(&database, Default::default())
        .await
        .map_err(|e| e.to_string())?;
    let (master, _) = master_key_for(&config, stores.keys.as_ref(), &SystemClock)
        .await
        .map_err(|e| e.to_string())?;
    let admin = Admin {
        stores,
        master,
        clock: Arc::new(SystemClock),
        actor: Actor::Tool("bench"),
    };
    let (addr, server) = match &args.url {
        Some(url) => {
            let hostport = url
                .trim_start_matches("http://")
                .trim_end_matches('/')
                .to_string();
            let addr = tokio::net::lookup_host(&hostport)
                .await
                .ok()
                .and_then(|mut a| a.next())
                .ok_or_else(|| format!("cannot resolve {url} (give http://HOST:PORT)"))?;
            (addr, None)
        }
        None => {
            let (addr, child) = spawn_server(&database, key_text.as_deref(), args)?;
            (addr, Some(child))
        }
    };
    Ok(Target {
        addr,
        admin,
        server,
        backend: database.backend(),
        temp_dir: dir,
    })
}

/// Starts `tessera serve` on port 0 and reads the port from its first line.
fn spawn_server(
    database: &Database,
    master_key: Option<&str>,
    args: &BenchArgs,
) -> Result<(SocketAddr, Child), String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let log_path = args.dir.join("tessera-bench-server.log");
    let log =
        std::fs::File::create(&log_path).map_err(|e| format!("{}: {e}", log_path.display()))?;
    let mut cmd = Command::new(exe);
    cmd.args(["serve", "--listen", "127.0.0.1:0"])
        // Through the environment rather than the command line, where any user of the
        // machine could read a PostgreSQL password in the process list.
        .env("TESSERA_DATABASE_URL", database.expose_url())
        // The embed limit is abuse damping per client address; every bench connection comes
        // from 127.0.0.1, so it is lifted for the bench's own server.
        .args(["--embed-rate-per-minute", "4000000000"])
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(log);
    if let Some(k) = master_key {
        cmd.env("TESSERA_MASTER_KEY", k);
    }
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("cannot start the server: {e}"))?;
    let stdout = child.stdout.take().ok_or("no stdout")?;
    let mut line = String::new();
    BufReader::new(stdout)
        .read_line(&mut line)
        .map_err(|e| e.to_string())?;
    let addr = line
        .trim()
        .strip_prefix("listening on http://")
        .and_then(|a| a.parse().ok())
        .ok_or_else(|| {
            format!(
                "the server did not start (said {line:?}); see {}",
                log_path.display()
            )
        })?;
    Ok((addr, child))
}

/// Everything the workloads use, made once.
pub(crate) struct Fixture {
    pub addr: SocketAddr,
    /// `Basic …` for the project.
    pub basic: String,
    /// Ten room addresses.
    pub addresses: Vec<String>,
    /// References of existing subscribers.
    pub references: Vec<String>,
    /// A subscriber address to invite to.
    pub invite_address: String,
    /// The widget's `c2c_` token.
    pub embed: String,
    /// Live access tokens to introspect.
    pub access_tokens: Vec<String>,
    /// Operator credentials (`{"username","password"}` body).
    pub login_body: String,
    /// `Bearer …` for the management plane.
    pub operator_bearer: String,
    /// A tag unique to this run, for new references.
    pub run: String,
    project: ProjectId,
}

async fn expect(conn: &mut Conn, request: &[u8], status: u16, what: &str) -> Result<Value, String> {
    let r = conn
        .call(request)
        .await
        .map_err(|e| format!("{what}: {e}"))?;
    if r.status != status {
        return Err(format!(
            "{what}: status {} ({})",
            r.status,
            String::from_utf8_lossy(r.body)
        ));
    }
    r.json().map_err(|e| format!("{what}: {e}"))
}

async fn first_address(conn: &mut Conn, basic: &str, resource: &str) -> Result<String, String> {
    let req = http::request(
        "GET",
        &format!("/api/fabric/resources/{resource}/addresses"),
        &[("Authorization", basic)],
        "",
    );
    let v = expect(conn, &req, 200, "list addresses").await?;
    v["data"][0]["id"]
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| "a resource without an address".into())
}

/// What the bench added to the database, for [`Made::remove`] to take away again. Each part
/// is recorded the moment it exists, so that a set-up failing halfway leaves nothing behind.
#[derive(Debug, Default)]
struct Made {
    project: Option<ProjectId>,
    operator: Option<(OperatorId, String)>,
}

impl Made {
    /// Deletes the bench's operator and its project (with everything in it: rooms,
    /// subscribers, the widget, the families of every grant). Both are attempted even if one
    /// fails; the error names what is left, with its id, for removal by hand.
    async fn remove(&mut self, admin: &Admin) -> Result<Vec<String>, String> {
        let mut removed = Vec::new();
        let mut left = Vec::new();
        if let Some((id, username)) = self.operator.take() {
            match admin.delete_operator(id).await {
                Ok(()) => removed.push(format!("operator {username}")),
                Err(e) => left.push(format!("operator {username} ({id}): {e}")),
            }
        }
        if let Some(id) = self.project.take() {
            match admin.delete_project(id).await {
                Ok(()) => removed.push(format!("project {id}")),
                Err(e) => left.push(format!("project {id}: {e}")),
            }
        }
        if left.is_empty() {
            Ok(removed)
        } else {
            Err(format!(
                "could not remove what the bench added: {}",
                left.join("; ")
            ))
        }
    }
}

async fn prepare(
    target: &Target,
    connections: NonZeroUsize,
    made: &mut Made,
) -> Result<Fixture, String> {
    let admin = &target.admin;
    let run = tessera_core::crypto::hex(&tessera_core::crypto::random_bytes::<4>());
    let (project, _, secret) = admin
        .new_project(&format!("bench {run}"))
        .await
        .map_err(|e| e.to_string())?;
    made.project = Some(project.id);
    let basic = format!(
        "Basic {}",
        STANDARD.encode(format!("{}:{}", project.id, secret.expose()))
    );
    let username = format!("bench-{run}@tessera.local");
    let pw = tessera_core::crypto::hex(&tessera_core::crypto::random_bytes::<12>());
    let (operator_id, _) = admin
        .create_operator(&username, Some(Secret::new(pw.clone())), Role::Admin, false)
        .await
        .map_err(|e| e.to_string())?;
    made.operator = Some((operator_id, username.clone()));
    if target.keeps_database() {
        eprintln!(
            "added project {} and ADMIN operator {username} to the database; \
             they are removed when the bench ends",
            project.id
        );
    }
    let mut conn = Conn::connect(target.addr)
        .await
        .map_err(|e| format!("cannot connect to {}: {e}", target.addr))?;
    let mut addresses = Vec::new();
    for i in 0..10 {
        let req = http::post_json(
            "/api/fabric/resources/conference_rooms",
            Some(&basic),
            &json!({ "name": format!("bench-room-{i}") }).to_string(),
        );
        let room = expect(&mut conn, &req, 201, "create a room").await?;
        let id = room["id"]
            .as_str()
            .ok_or("a room without an id")?
            .to_string();
        addresses.push(first_address(&mut conn, &basic, &id).await?);
    }
    let mut references = Vec::new();
    let mut invite_address = String::new();
    for i in 0..connections.get() {
        let reference = format!("bench-{run}-existing-{i}@example.com");
        let req = http::post_json(
            "/api/fabric/subscribers/tokens",
            Some(&basic),
            &json!({ "reference": reference }).to_string(),
        );
        let v = expect(&mut conn, &req, 200, "create a subscriber").await?;
        if i == 0 {
            let sid = v["subscriber_id"].as_str().ok_or("no subscriber_id")?;
            invite_address = first_address(&mut conn, &basic, sid).await?;
        }
        references.push(reference);
    }
    let addr_ids: Vec<AddressId> = addresses.iter().filter_map(|a| a.parse().ok()).collect();
    let embed = admin
        .create_embed(project.id, &addr_ids)
        .await
        .map_err(|e| e.to_string())?
        .token
        .into_inner();
    let guest_body = json!({ "allowed_addresses": addresses }).to_string();
    let mut access_tokens = Vec::new();
    for _ in 0..256 {
        let req = http::post_json("/api/fabric/guests/tokens", Some(&basic), &guest_body);
        let v = expect(&mut conn, &req, 201, "a guest token").await?;
        access_tokens.push(v["token"].as_str().ok_or("no token")?.to_string());
    }
    let login_body = json!({ "username": username, "password": pw }).to_string();
    let req = http::post_json("/v1/tokens", None, &login_body);
    let v = expect(&mut conn, &req, 200, "an operator login").await?;
    let operator_bearer = format!(
        "Bearer {}",
        v["accessToken"].as_str().ok_or("no accessToken")?
    );
    Ok(Fixture {
        addr: target.addr,
        basic,
        addresses,
        references,
        invite_address,
        embed,
        access_tokens,
        login_body,
        operator_bearer,
        run,
        project: project.id,
    })
}

/// Refresh tokens to start one chain per connection (each run spends its own).
async fn refresh_seeds(fx: &Fixture, n: usize, pass: usize) -> Result<Vec<String>, String> {
    let mut conn = Conn::connect(fx.addr).await.map_err(|e| e.to_string())?;
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let req = http::post_json(
            "/api/fabric/subscribers/tokens",
            Some(&fx.basic),
            &json!({ "reference": format!("bench-{}-chain-{pass}-{i}@example.com", fx.run) })
                .to_string(),
        );
        let v = expect(&mut conn, &req, 200, "a refresh seed").await?;
        out.push(
            v["refresh_token"]
                .as_str()
                .ok_or("no refresh_token")?
                .to_string(),
        );
    }
    Ok(out)
}

/// Bulk-inserts `n` live families of the project (guests and subscribers, as a busy
/// installation holds), in transactions of 20,000.
async fn preload_families(
    store: &Arc<dyn FamilyStore>,
    project: ProjectId,
    n: u64,
) -> Result<(), String> {
    let now = SystemClock.now();
    let now_ms = SystemClock.now_millis();
    let chunk = 20_000u64;
    let mut done = 0;
    while done < n {
        let take = chunk.min(n - done);
        let families = (0..take)
            .map(|i| {
                let k = done + i;
                // Spread over the last two hours, as live grants would be: time-ordered ids
                // made then, so the preload lands where real families of that age would.
                let born = now_ms - ((n - k) as i64 * 7_200_000 / n as i64);
                Family {
                    id: FamilyId::ordered(born),
                    project_id: project,
                    kind: if k % 2 == 0 {
                        PrincipalKind::Guest
                    } else {
                        PrincipalKind::Subscriber
                    },
                    subject: FamilyId::ordered(born).0,
                    generation: 1,
                    created_at: UnixTime(born / 1000),
                    expires_at: now.plus(30 * 24 * 3600),
                    tokens_expire_at: now.plus(2 * 3600 + 300),
                    rotated_at: None,
                    revoked_at: None,
                }
            })
            .collect();
        store
            .insert_families(families)
            .await
            .map_err(|e| format!("preloading families: {e}"))?;
        done += take;
        if done % 200_000 == 0 || done == n {
            eprintln!("  preloaded {done} families");
        }
    }
    Ok(())
}

/// What argon2 allows on this machine: one hash's time (median of five, one thread) and the
/// floor the issue defines from it (cores ÷ one hash time), plus the rate measured with one
/// hashing thread per core at once, since memory-hard hashes on shared cores rarely scale
/// perfectly.
#[derive(Debug, Clone, Copy)]
struct Argon2Floor {
    one_hash_s: f64,
    floor: f64,
    parallel: f64,
}

/// Measures [`Argon2Floor`] off the async threads. The bench calls it right before its first
/// login workload, with the server idle between workloads: taken minutes earlier, on a shared
/// machine, the floor and the logins measured different machines (10.9–16.3 ms per hash in
/// one evening's runs).
async fn measure_argon2(cores: usize) -> Result<Argon2Floor, String> {
    tokio::task::spawn_blocking(move || argon2_floor(cores))
        .await
        .map_err(|e| e.to_string())
}

fn argon2_floor(cores: usize) -> Argon2Floor {
    const PW: &str = "correct horse battery staple";
    let phc = password::hash(PW);
    let mut times = Vec::new();
    for _ in 0..5 {
        let t = load::Timer::start();
        assert!(password::verify(PW, &phc));
        times.push(t.elapsed().as_secs_f64());
    }
    times.sort_by(f64::total_cmp);
    let one = times[times.len() / 2];
    // Each thread hashes once untimed (its first 19 MiB come from the OS, page by page),
    // then all start together.
    let rounds = 8;
    let ready = std::sync::Barrier::new(cores);
    let slowest = std::thread::scope(|s| {
        let threads: Vec<_> = (0..cores)
            .map(|_| {
                s.spawn(|| {
                    assert!(password::verify(PW, &phc));
                    ready.wait();
                    let t = load::Timer::start();
                    for _ in 0..rounds {
                        assert!(password::verify(PW, &phc));
                    }
                    t.elapsed().as_secs_f64()
                })
            })
            .collect();
        threads
            .into_iter()
            .filter_map(|t| t.join().ok())
            .fold(0.0, f64::max)
    });
    Argon2Floor {
        one_hash_s: one,
        floor: cores as f64 / one,
        parallel: (cores * rounds) as f64 / slowest,
    }
}

/// One row of the report.
struct Row {
    name: String,
    outcome: Outcome,
    note: String,
    /// Its rate against its own yardstick, where it has one besides healthz: a login
    /// workload's against the argon2 floor, guest grants beside logins against their solo rate.
    versus: Option<f64>,
}

impl Row {
    /// This row's requests/s as a share of `healthz`, the pass's mean healthz rate.
    fn ratio(&self, healthz: f64) -> f64 {
        self.outcome.rps / healthz
    }

    fn json(&self, healthz: f64) -> Value {
        let o = &self.outcome;
        json!({
            "workload": self.name,
            "requests_per_second": round(o.rps, 1),
            "p50_ms": round(o.p50_ms, 3),
            "p99_ms": round(o.p99_ms, 3),
            "p999_ms": round(o.p999_ms, 3),
            "succeeded": o.succeeded,
            "errors": o.errors,
            "ratio_to_healthz": round(self.ratio(healthz), 3),
            "note": self.note,
        })
    }
}

fn round(x: f64, digits: i32) -> f64 {
    let m = 10f64.powi(digits);
    (x * m).round() / m
}

/// Whether a workload (or report row) is logins: argon2 bounds them, so they are judged
/// against its floor, not against healthz.
fn argon2_bound(name: &str) -> bool {
    name.starts_with("login")
}

/// A ratio to healthz as the tables print it: a dash for the login workloads.
fn ratio_cell(name: &str, ratio: f64) -> String {
    if argon2_bound(name) {
        "—".into()
    } else {
        format!("{ratio:.2}")
    }
}

/// The header of the rate column: successful requests only, as [`load::Outcome::rps`].
const RATE_HEADER: &str = "ok req/s";

fn print_table(title: &str, rows: &[Row], healthz: f64) {
    println!("\n{title} (rates and latencies count successful requests; errors apart)");
    println!(
        "{:<34} {:>10} {:>8} {:>8} {:>8} {:>7} {:>8}  note",
        "workload", RATE_HEADER, "p50 ms", "p99 ms", "p99.9", "errors", "÷healthz"
    );
    for r in rows {
        let o = &r.outcome;
        println!(
            "{:<34} {:>10.0} {:>8.2} {:>8.2} {:>8.2} {:>7} {:>8}  {}",
            r.name,
            o.rps,
            o.p50_ms,
            o.p99_ms,
            o.p999_ms,
            o.errors,
            ratio_cell(&r.name, r.ratio(healthz)),
            r.note
        );
    }
}

/// The workloads of one pass, in order.
const DURABLE: &[&str] = &["guest", "subscriber-new", "subscriber-existing", "refresh"];
const ALL: &[&str] = &[
    "introspect",
    "guest",
    "subscriber-new",
    "subscriber-existing",
    "refresh",
    "invite",
    "embed",
    "login",
    "list",
    "login+guest",
];

fn unknown_workload(name: &str) -> String {
    format!(
        "unknown workload {name:?}; known: healthz, {}",
        ALL.join(", ")
    )
}

struct Settings {
    connections: usize,
    duration: Duration,
    warmup: Duration,
}

async fn run_one(
    fx: &Arc<Fixture>,
    s: &Settings,
    name: &str,
    pass: usize,
) -> Result<Outcome, String> {
    let workload = match name {
        "healthz" => Workload::Healthz,
        "introspect" => Workload::Introspect,
        "guest" => Workload::Guest,
        "subscriber-new" => Workload::SubscriberNew,
        "subscriber-existing" => Workload::SubscriberExisting,
        "refresh" => Workload::Refresh(refresh_seeds(fx, s.connections, pass).await?),
        "invite" => Workload::Invite,
        "embed" => Workload::Embed,
        "login" => Workload::Login,
        "list" => Workload::List,
        other => return Err(unknown_workload(other)),
    };
    eprintln!("  {name} …");
    Ok(load::run(
        fx.clone(),
        workload,
        s.connections,
        s.warmup,
        s.duration,
        pass,
    )
    .await)
}

/// argon2's figures, measured once, right before the first login workload (while the server
/// is idle) or at the end of a run that had none.
struct Hashing {
    cores: usize,
    floor: Option<Argon2Floor>,
}

impl Hashing {
    /// The figures, measured now if they have not been yet.
    async fn figures(&mut self) -> Result<Argon2Floor, String> {
        match self.floor {
            Some(a) => Ok(a),
            None => Ok(*self.floor.insert(measure_argon2(self.cores).await?)),
        }
    }
}

/// Runs `healthz`, each of `names`, and `healthz` again, and returns the rows and the mean
/// of the two healthz rates that the ratios divide by: a machine that got busier or quieter
/// during the pass then skews no workload's ratio.
async fn run_pass(
    fx: &Arc<Fixture>,
    settings: &Settings,
    names: &[&str],
    pass: usize,
    hashing: &mut Hashing,
) -> Result<(Vec<Row>, f64), String> {
    let healthz = run_one(fx, settings, "healthz", pass).await?;
    let mut rows = vec![Row {
        name: "healthz".into(),
        note: String::new(),
        outcome: healthz,
        versus: None,
    }];
    let mut solo_guest = None;
    for &name in names {
        // The login workloads are judged by argon2's figures.
        let argon2 = if argon2_bound(name) {
            Some(hashing.figures().await?)
        } else {
            None
        };
        if let (Some(a), "login+guest") = (argon2, name) {
            rows.extend(mixed(fx, settings, a.floor, solo_guest, hashing.cores).await);
            continue;
        }
        let outcome = run_one(fx, settings, name, pass).await?;
        let mut note = String::new();
        if name == "guest" {
            solo_guest = Some(outcome.rps);
        }
        if let Some(a) = argon2 {
            note = format!(
                "{:.2} × argon2 floor ({:.0}/s), {:.2} × measured parallel ({:.0}/s)",
                outcome.rps / a.floor,
                a.floor,
                outcome.rps / a.parallel,
                a.parallel
            );
        }
        rows.push(Row {
            name: name.to_string(),
            note,
            versus: argon2.map(|a| outcome.rps / a.floor),
            outcome,
        });
    }
    let last = run_one(fx, settings, "healthz", pass).await?;
    let base = ((rows[0].outcome.rps + last.rps) / 2.0).max(f64::MIN_POSITIVE);
    rows.push(Row {
        name: "healthz (again, last)".into(),
        note: String::new(),
        outcome: last,
        versus: None,
    });
    rows[0].note = format!("ratios are to the mean of both healthz runs: {base:.0}/s");
    Ok((rows, base))
}

/// One workload over the rounds of the first pass.
struct Summary {
    name: String,
    /// Its ratio to healthz in each round, in round order.
    ratios: Vec<f64>,
    median_ratio: f64,
    median_rps: f64,
    median_p99_ms: f64,
    /// The median of [`Row::versus`] over the rounds, for the rows that have one.
    median_versus: Option<f64>,
    errors: u64,
}

impl Summary {
    fn json(&self) -> Value {
        json!({
            "workload": self.name,
            "ratios_to_healthz": self.ratios.iter().map(|r| round(*r, 3)).collect::<Vec<_>>(),
            "median_ratio_to_healthz": round(self.median_ratio, 3),
            "median_requests_per_second": round(self.median_rps, 1),
            "median_p99_ms": round(self.median_p99_ms, 3),
            "median_versus_own_yardstick": self.median_versus.map(|v| round(v, 3)),
            "errors": self.errors,
        })
    }
}

/// The median of `xs` (the mean of the middle two for an even count); 0 for none.
fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    match xs.len() {
        0 => 0.0,
        n if n % 2 == 1 => xs[n / 2],
        n => (xs[n / 2 - 1] + xs[n / 2]) / 2.0,
    }
}

/// Each workload's figures over `rounds` (each round's rows, all in the same order, and the
/// healthz rate its ratios divide by). The healthz rows are the yardstick, not a workload,
/// and are left out.
fn summarize(rounds: &[(Vec<Row>, f64)]) -> Vec<Summary> {
    let Some((first, _)) = rounds.first() else {
        return Vec::new();
    };
    let workloads = first.len().saturating_sub(1);
    (1..workloads)
        .map(|i| {
            let rows: Vec<&Row> = rounds.iter().map(|(rows, _)| &rows[i]).collect();
            let ratios: Vec<f64> = rounds
                .iter()
                .map(|(rows, base)| rows[i].ratio(*base))
                .collect();
            Summary {
                name: rows[0].name.clone(),
                median_ratio: median(ratios.clone()),
                ratios,
                median_rps: median(rows.iter().map(|r| r.outcome.rps).collect()),
                median_p99_ms: median(rows.iter().map(|r| r.outcome.p99_ms).collect()),
                median_versus: rows[0]
                    .versus
                    .map(|_| median(rows.iter().filter_map(|r| r.versus).collect())),
                errors: rows.iter().map(|r| r.outcome.errors).sum(),
            }
        })
        .collect()
}

fn print_summary(summary: &[Summary], rounds: usize) {
    println!(
        "\nover {rounds} rounds: medians, then each round's ratio to healthz and their spread"
    );
    println!(
        "{:<34} {:>10} {:>8} {:>8} {:>7}  ratios",
        "workload", RATE_HEADER, "÷healthz", "p99 ms", "errors"
    );
    for w in summary {
        // The login workloads are judged by the argon2 floor alone; the others by their
        // ratios to healthz, and guest beside logins also by its solo rate.
        let detail = if argon2_bound(&w.name) {
            w.median_versus
                .map(|v| format!("median {v:.2} × argon2 floor"))
                .unwrap_or_default()
        } else {
            let (lo, hi) = w.ratios.iter().fold((f64::INFINITY, 0f64), |(lo, hi), r| {
                (lo.min(*r), hi.max(*r))
            });
            let each: Vec<String> = w.ratios.iter().map(|r| format!("{r:.2}")).collect();
            let versus = w
                .median_versus
                .map(|v| format!("; median {v:.2} × solo guest"))
                .unwrap_or_default();
            format!("{} (spread {lo:.2}–{hi:.2}){versus}", each.join(", "))
        };
        println!(
            "{:<34} {:>10.0} {:>8} {:>8.2} {:>7}  {detail}",
            w.name,
            w.median_rps,
            ratio_cell(&w.name, w.median_ratio),
            w.median_p99_ms,
            w.errors,
        );
    }
}

/// Runs the benchmark and prints the report.
pub async fn run(args: BenchArgs) -> Result<(), String> {
    let wanted: Vec<String> = if args.workloads.is_empty() {
        ALL.iter().map(|s| s.to_string()).collect()
    } else {
        args.workloads.clone()
    };
    for w in &wanted {
        if !ALL.contains(&w.as_str()) && w != "healthz" {
            return Err(unknown_workload(w));
        }
    }
    let settings = Settings {
        connections: args.connections.get(),
        duration: Duration::from_secs_f64(args.duration),
        warmup: Duration::from_secs_f64(args.warmup),
    };
    let target = open_target(&args).await?;
    let mut made = Made::default();
    // Ctrl-C ends the measurement, not the process, so that the clean-up below still runs.
    let result = tokio::select! {
        r = measure(&args, &wanted, &settings, &target, &mut made) => r,
        _ = tokio::signal::ctrl_c() => Err("interrupted".into()),
    };
    if !target.keeps_database() {
        // The temporary database goes away whole with `target`.
        return result;
    }
    match made.remove(&target.admin).await {
        Ok(removed) if removed.is_empty() => result,
        Ok(removed) => {
            eprintln!(
                "removed what the bench added to the database: {}",
                removed.join(", ")
            );
            result
        }
        // A failed run's own error comes first; the clean-up's follows it.
        Err(e) => Err(match result {
            Ok(()) => e,
            Err(first) => format!("{first}\n{e}"),
        }),
    }
}

/// Prepares the fixtures (recording in `made` what it adds), runs the passes and prints the
/// report.
async fn measure(
    args: &BenchArgs,
    wanted: &[String],
    settings: &Settings,
    target: &Target,
    made: &mut Made,
) -> Result<(), String> {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    eprintln!(
        "preparing fixtures on http://{} ({})",
        target.addr, target.backend
    );
    let fx = Arc::new(prepare(target, args.connections, made).await?);

    let mut passes = Vec::new();
    let mut hashing = Hashing { cores, floor: None };
    // Each pass runs under its own number (the round; the preloaded pass after the last),
    // so that new references never repeat across passes.
    let mut rounds: Vec<(Vec<Row>, f64)> = Vec::new();
    let names: Vec<&str> = wanted.iter().map(String::as_str).collect();
    for round in 0..args.rounds.get() {
        let (rows, base) = run_pass(&fx, settings, &names, round, &mut hashing).await?;
        let title = format!(
            "{} connections, {:.0} s each, {} backend, {cores} cores{}",
            args.connections,
            args.duration,
            target.backend,
            if args.rounds.get() > 1 {
                format!(" — round {} of {}", round + 1, args.rounds)
            } else {
                String::new()
            }
        );
        print_table(&title, &rows, base);
        passes.push(json!({
            "families": 0,
            "round": round + 1,
            "results": rows.iter().map(|r| r.json(base)).collect::<Vec<_>>(),
        }));
        rounds.push((rows, base));
    }
    // Each workload of the first pass (the median over its rounds): requests/s and ratio.
    let summary = summarize(&rounds);
    if args.rounds.get() > 1 {
        print_summary(&summary, args.rounds.get());
    }
    if args.families > 0 {
        eprintln!("preloading {} families …", args.families);
        preload_families(&target.admin.stores.families, fx.project, args.families).await?;
        let names: Vec<&str> = names
            .iter()
            .copied()
            .filter(|w| DURABLE.contains(w) || *w == "introspect")
            .collect();
        let (mut rows, base) =
            run_pass(&fx, settings, &names, args.rounds.get(), &mut hashing).await?;
        // The comparison with the empty database divides ratios, each to its own pass's
        // healthz, so that the machine getting busier between the passes does not read as
        // the database's size; the plain requests/s quotient follows in brackets.
        let workloads = rows.len() - 1;
        for row in &mut rows[1..workloads] {
            if let Some(empty) = summary.iter().find(|w| w.name == row.name) {
                row.note = format!(
                    "{:.2} × empty database ({:.2} × its req/s)",
                    row.outcome.rps / base / empty.median_ratio,
                    row.outcome.rps / empty.median_rps
                );
            }
        }
        print_table(
            &format!("with {} preloaded families", args.families),
            &rows,
            base,
        );
        passes.push(json!({
            "families": args.families,
            "results": rows.iter().map(|r| r.json(base)).collect::<Vec<_>>(),
        }));
    }
    let rss = target.rss_mib();
    let argon2 = hashing.figures().await?;
    let floor = argon2.floor;
    println!(
        "\nargon2id: {:.1} ms per hash, floor {floor:.0} logins/s ({cores} cores ÷ one hash), \
         {:.0} hashes/s measured with {cores} threads at once",
        argon2.one_hash_s * 1000.0,
        argon2.parallel
    );
    match rss {
        Some((peak, now)) => println!("server RSS: peak {peak:.0} MiB, now {now:.0} MiB"),
        None => println!("server RSS: not measured (the server is not the bench's own)"),
    }
    if let Some(path) = &args.json {
        let doc = json!({
            "date": SystemClock.now().to_rfc3339(),
            "backend": target.backend,
            "cores": cores,
            "connections": args.connections,
            "duration_s": args.duration,
            "argon2_hash_ms": round(argon2.one_hash_s * 1000.0, 2),
            "argon2_floor_per_second": round(floor, 1),
            "argon2_parallel_per_second": round(argon2.parallel, 1),
            "server_peak_rss_mib": rss.map(|r| round(r.0, 1)),
            "rates": "requests_per_second and the latencies count successful requests only; errors are counted apart",
            "passes": passes,
            "rounds": args.rounds,
            "summary": summary.iter().map(Summary::json).collect::<Vec<_>>(),
        });
        std::fs::write(path, format!("{doc:#}\n"))
            .map_err(|e| format!("{}: {e}", path.display()))?;
    }
    Ok(())
}

/// Logins and guest grants at once: the logins against the argon2 floor, the grants against
/// their solo rate (argon2 must not starve token issuance).
async fn mixed(
    fx: &Arc<Fixture>,
    s: &Settings,
    floor: f64,
    solo_guest: Option<f64>,
    cores: usize,
) -> Vec<Row> {
    eprintln!("  login+guest …");
    // Enough logins in flight to keep every hashing thread busy, plus queueing.
    let login_conns = (cores * 4).max(4);
    let (login, guest) = tokio::join!(
        load::run(
            fx.clone(),
            Workload::Login,
            login_conns,
            s.warmup,
            s.duration,
            0
        ),
        load::run(
            fx.clone(),
            Workload::Guest,
            s.connections,
            s.warmup,
            s.duration,
            0
        ),
    );
    let guest_note = match solo_guest {
        Some(solo) => format!("{:.2} × solo guest", guest.rps / solo),
        None => "run `guest` too for the solo comparison".into(),
    };
    vec![
        Row {
            name: format!("login (beside guest, {login_conns} conns)"),
            note: format!("{:.2} × argon2 floor", login.rps / floor),
            versus: Some(login.rps / floor),
            outcome: login,
        },
        Row {
            name: "guest (beside login)".into(),
            note: guest_note,
            versus: solo_guest.map(|solo| guest.rps / solo),
            outcome: guest,
        },
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(name: &str, rps: f64, p99_ms: f64, versus: Option<f64>) -> Row {
        Row {
            name: name.into(),
            outcome: Outcome {
                rps,
                p50_ms: p99_ms / 2.0,
                p99_ms,
                p999_ms: p99_ms * 2.0,
                succeeded: 100,
                errors: 0,
            },
            note: String::new(),
            versus,
        }
    }

    #[test]
    fn the_median_of_an_odd_count_is_the_middle_one_and_of_an_even_count_the_mean_of_two() {
        assert_eq!(median(vec![3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(vec![4.0, 1.0, 3.0, 2.0]), 2.5);
        assert_eq!(median(vec![7.0]), 7.0);
        assert_eq!(median(Vec::new()), 0.0);
    }

    #[test]
    fn rounds_are_summarized_per_workload_against_each_rounds_own_healthz() {
        let round = |healthz: f64, guest: f64, login: f64| {
            vec![
                row("healthz", healthz, 1.0, None),
                row("guest", guest, 4.0, None),
                row("login", login, 500.0, Some(login / 100.0)),
                row("healthz (again, last)", healthz, 1.0, None),
            ]
        };
        // The machine halves its speed in round 2: guest's req/s halve with it, its ratio
        // does not.
        let rounds = vec![
            (round(1000.0, 400.0, 90.0), 1000.0),
            (round(500.0, 200.0, 80.0), 500.0),
            (round(1000.0, 300.0, 100.0), 1000.0),
        ];
        let s = summarize(&rounds);
        let names: Vec<&str> = s.iter().map(|w| w.name.as_str()).collect();
        assert_eq!(
            names,
            ["guest", "login"],
            "healthz is the yardstick, not a row"
        );
        assert_eq!(s[0].ratios, [0.4, 0.4, 0.3]);
        assert_eq!(s[0].median_ratio, 0.4);
        assert_eq!(s[0].median_rps, 300.0);
        assert_eq!(s[0].median_p99_ms, 4.0);
        assert_eq!(s[0].median_versus, None);
        assert_eq!(s[1].median_versus, Some(0.9));
        assert!(summarize(&[]).is_empty());
    }
}
