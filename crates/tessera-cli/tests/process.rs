//! Whole-process tests: real `tessera serve` processes killed with SIGKILL under load,
//! (on PostgreSQL) several nodes sharing one database, and an installation moved to another
//! database with `tessera admin export` / `import`.
//!
//! PostgreSQL cases read `TESSERA_TEST_POSTGRES_URL`; without it they print SKIP and pass.

use std::io::Write;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use tokio::sync::Mutex;

use support::MASTER_KEY;

mod support;

/// A running `tessera serve`; killed (SIGKILL) when dropped.
struct Node {
    child: Child,
    base: String,
}

impl Node {
    fn start(database: &str, extra: &[&str]) -> Node {
        let mut cmd = Node::command(database);
        cmd.args(extra).env("RUST_LOG", "warn");
        Node::spawn(cmd)
    }

    /// `tessera serve` on a free port of `database`, for [`Node::spawn`].
    fn command(database: &str) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_tessera"));
        cmd.args(["serve", "--listen", "127.0.0.1:0", "--database", database])
            .env("TESSERA_MASTER_KEY", MASTER_KEY)
            .stdout(Stdio::piped());
        cmd
    }

    /// Starts `cmd` and waits for the address it listens on.
    fn spawn(mut cmd: Command) -> Node {
        let mut child = cmd.spawn().expect("tessera serve starts");
        let base = support::listening_on(&mut child);
        Node { child, base }
    }

    /// `kill -9`: no graceful shutdown, no flush.
    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill();
    }
}

fn admin(database: &str, args: &[&str]) -> Value {
    let out = Command::new(env!("CARGO_BIN_EXE_tessera"))
        .arg("admin")
        .args(args)
        .args(["--database", database])
        .env("TESSERA_MASTER_KEY", MASTER_KEY)
        .output()
        .expect("tessera admin runs");
    assert!(
        out.status.success(),
        "admin {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[derive(Clone)]
struct Creds {
    id: String,
    token: String,
}

fn project(database: &str) -> Creds {
    // The first command on a new SQLite file: it makes the database.
    let p = admin(
        database,
        &["project", "create", "--name", "process", "--create"],
    );
    Creds {
        id: p["project_id"].as_str().unwrap().into(),
        token: p["api_token"].as_str().unwrap().into(),
    }
}

/// What clients were told: access tokens issued, and each chain's newest refresh token.
#[derive(Default)]
struct Told {
    access: Vec<String>,
    chains: Vec<String>,
}

async fn post(
    client: &reqwest::Client,
    url: String,
    p: &Creds,
    body: Value,
) -> Result<(u16, Value), reqwest::Error> {
    let r = client
        .post(url)
        .basic_auth(&p.id, Some(&p.token))
        .json(&body)
        .send()
        .await?;
    let status = r.status().as_u16();
    Ok((status, r.json().await?))
}

/// Issues and refreshes from `workers` tasks against `bases` (round robin) until stopped.
/// A chain whose request was in flight when the server died keeps the token it sent: after a
/// restart within the grace window that token must still work (rotation committed or not).
async fn load(bases: Vec<String>, p: Creds, workers: usize, told: Arc<Mutex<Told>>) {
    let client = reqwest::Client::new();
    let mut tasks = Vec::new();
    for w in 0..workers {
        let (client, p, told, bases) = (client.clone(), p.clone(), told.clone(), bases.clone());
        tasks.push(tokio::spawn(async move {
            let mut n = 0usize;
            loop {
                let base = &bases[(w + n) % bases.len()];
                n += 1;
                let Ok((200, t)) = post(
                    &client,
                    format!("{base}/api/fabric/subscribers/tokens"),
                    &p,
                    json!({"reference": format!("w{w}-{n}")}),
                )
                .await
                else {
                    return;
                };
                let mut refresh = t["refresh_token"].as_str().unwrap().to_string();
                let slot = {
                    let mut told = told.lock().await;
                    told.access.push(t["token"].as_str().unwrap().into());
                    told.chains.push(refresh.clone());
                    told.chains.len() - 1
                };
                for _ in 0..5 {
                    let base = &bases[(w + n) % bases.len()];
                    n += 1;
                    match post(
                        &client,
                        format!("{base}/api/fabric/subscribers/tokens/refresh"),
                        &p,
                        json!({"refresh_token": refresh}),
                    )
                    .await
                    {
                        Ok((201, r)) => {
                            refresh = r["refresh_token"].as_str().unwrap().into();
                            let mut told = told.lock().await;
                            told.chains[slot] = refresh.clone();
                            told.access.push(r["token"].as_str().unwrap().into());
                        }
                        Ok((status, body)) => panic!("refresh answered {status}: {body}"),
                        Err(_) => return,
                    }
                }
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
}

/// After the crash: every chain's newest token refreshes, every access token introspects active.
async fn check_nothing_lost(base: &str, p: &Creds, told: &Told) {
    let client = reqwest::Client::new();
    for chain in &told.chains {
        let (status, body) = post(
            &client,
            format!("{base}/api/fabric/subscribers/tokens/refresh"),
            p,
            json!({"refresh_token": chain}),
        )
        .await
        .unwrap();
        assert_eq!(
            status, 201,
            "a refresh token a client held was lost: {body}"
        );
    }
    for access in &told.access {
        let r = client
            .post(format!("{base}/oauth2/introspect"))
            .basic_auth(&p.id, Some(&p.token))
            .form(&[("token", access.as_str())])
            .send()
            .await
            .unwrap();
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["active"], true, "an issued access token was lost");
    }
}

async fn crash_under_load(database: &str) {
    let p = project(database);
    // A generous grace window: a chain caught mid-refresh by the kill retries its token after
    // the restart, and must get the current generation whether or not the rotation committed.
    let args = ["--refresh-grace-seconds", "120"];
    let mut node = Node::start(database, &args);
    let told = Arc::new(Mutex::new(Told::default()));
    let running = tokio::spawn(load(vec![node.base.clone()], p.clone(), 16, told.clone()));
    tokio::time::sleep(Duration::from_millis(1500)).await;
    node.kill();
    running.await.unwrap();
    let told = told.lock().await;
    assert!(
        told.chains.len() >= 16,
        "the load did too little: {}",
        told.chains.len()
    );
    eprintln!(
        "{database}: {} chains, {} access tokens told before the kill",
        told.chains.len(),
        told.access.len()
    );
    let node = Node::start(database, &args);
    check_nothing_lost(&node.base, &p, &told).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_loses_nothing_when_killed_under_load() {
    let dir = tempfile::tempdir().unwrap();
    let database = format!("sqlite://{}", dir.path().join("t.db").display());
    crash_under_load(&database).await;
}

/// A scratch PostgreSQL schema for one test, or `None` (with a SKIP line) without
/// `TESSERA_TEST_POSTGRES_URL`.
async fn postgres() -> Option<(String, tessera_store_postgres::testing::SchemaGuard)> {
    let Ok(base) = std::env::var("TESSERA_TEST_POSTGRES_URL") else {
        tessera_store_postgres::testing::skip(
            "TESSERA_TEST_POSTGRES_URL is not set; the PostgreSQL process tests did not run",
        );
        return None;
    };
    Some(tessera_store_postgres::testing::scratch_schema(&base).await)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_loses_nothing_when_killed_under_load() {
    let Some((database, guard)) = postgres().await else {
        return;
    };
    crash_under_load(&database).await;
    guard.drop_now().await;
}

fn kid_of(token: &str) -> String {
    use base64::Engine;
    let header = token.split('.').next().unwrap();
    let header: Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(header)
            .unwrap(),
    )
    .unwrap();
    header["kid"].as_str().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_on_one_postgres_act_as_one() {
    let Some((database, guard)) = postgres().await else {
        return;
    };
    let p = project(&database);
    admin(
        &database,
        &[
            "user",
            "create",
            "--username",
            "root@local",
            "--password",
            "pw-for-the-test",
            "--role",
            "ADMIN",
        ],
    );
    let a = Node::start(&database, &["--refresh-grace-seconds", "0"]);
    let b = Node::start(&database, &["--refresh-grace-seconds", "0"]);
    let client = reqwest::Client::new();
    let issue = |node: &Node, reference: &str| {
        post(
            &client,
            node.url("/api/fabric/subscribers/tokens"),
            &p,
            json!({"reference": reference}),
        )
    };
    let introspect = |node: &Node, token: String| {
        let req = client
            .post(node.url("/oauth2/introspect"))
            .basic_auth(&p.id, Some(&p.token))
            .form(&[("token", token)]);
        async move { req.send().await.unwrap().json::<Value>().await.unwrap()["active"].clone() }
    };

    // Issued on A, refreshed and introspected on B.
    let (s, t) = issue(&a, "cross").await.unwrap();
    assert_eq!(s, 200);
    let (s, r) = post(
        &client,
        b.url("/api/fabric/subscribers/tokens/refresh"),
        &p,
        json!({"refresh_token": t["refresh_token"]}),
    )
    .await
    .unwrap();
    assert_eq!(s, 201, "{r}");
    assert_eq!(
        introspect(&b, r["token"].as_str().unwrap().into()).await,
        true
    );

    // 32 concurrent spends of one refresh token across both nodes: exactly one wins.
    let (_, t) = issue(&a, "race").await.unwrap();
    let token = t["refresh_token"].as_str().unwrap().to_string();
    let mut tasks = Vec::new();
    for i in 0..32 {
        let url = if i % 2 == 0 { &a } else { &b }.url("/api/fabric/subscribers/tokens/refresh");
        let (client, p, token) = (client.clone(), p.clone(), token.clone());
        tasks.push(tokio::spawn(async move {
            post(&client, url, &p, json!({"refresh_token": token}))
                .await
                .unwrap()
        }));
    }
    let mut winners = Vec::new();
    for t in tasks {
        let (status, body) = t.await.unwrap();
        match status {
            201 => winners.push(body),
            422 => {}
            other => panic!("a racing refresh answered {other}: {body}"),
        }
    }
    assert_eq!(winners.len(), 1);
    // Reuse detection revoked the family, so the winner's token is now inactive on both.
    let winner = winners[0]["token"].as_str().unwrap().to_string();
    assert_eq!(introspect(&a, winner.clone()).await, false);
    assert_eq!(introspect(&b, winner).await, false);

    // A revocation through A is seen by A at once and by B within the documented bound: B
    // has just read (and cached) the family, and keeps it for the cache TTL (1 s) plus the
    // clock's one-second resolution.
    let (_, t) = issue(&a, "revoked").await.unwrap();
    let access = t["token"].as_str().unwrap().to_string();
    assert_eq!(introspect(&b, access.clone()).await, true);
    client
        .post(a.url("/oauth2/revoke"))
        .basic_auth(&p.id, Some(&p.token))
        .form(&[("token", access.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(introspect(&a, access.clone()).await, false);
    // 50 polls 50 ms apart: 2.5 s, the bound and some slack.
    let mut polls = 0;
    while introspect(&b, access.clone()).await != false {
        polls += 1;
        assert!(
            polls < 50,
            "B still sees a revoked family as active after the staleness bound"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // A key rotated through A's management API is used by B within the bound: loaded at the
    // next key sync (5 s), activated after twice that.
    let login: Value = client
        .post(a.url("/v1/tokens"))
        .json(&json!({"username": "root@local", "password": "pw-for-the-test"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let rotated: Value = client
        .post(a.url("/v1/keys/rotate"))
        .bearer_auth(login["accessToken"].as_str().unwrap())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let new_access_kid = rotated["elements"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["purpose"] == "access")
        .unwrap()["kid"]
        .as_str()
        .unwrap()
        .to_string();
    let bound = Duration::from_secs(5 + 10 + 5 + 5);
    let started = tokio::time::Instant::now();
    loop {
        let (_, t) = issue(&b, "after-rotation").await.unwrap();
        let token = t["token"].as_str().unwrap().to_string();
        if kid_of(&token) == new_access_kid {
            // And A accepts what B sealed with it.
            assert_eq!(introspect(&a, token).await, true);
            break;
        }
        assert!(
            started.elapsed() < bound,
            "node B did not use the rotated key within {bound:?}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    drop((a, b));
    guard.drop_now().await;
}

/// `tessera admin ARGS` fed `stdin`, without any master key (export and import need none).
fn admin_keyless(database: &str, args: &[&str], stdin: &[u8]) -> std::process::Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_tessera"))
        .arg("admin")
        .args(args)
        .args(["--database", database])
        .env_remove("TESSERA_MASTER_KEY")
        .env_remove("TESSERA_MASTER_KEY_FILE")
        .env("RUST_LOG", "warn")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("tessera admin runs");
    // Import reads all of its input before it writes anything, so this cannot deadlock.
    let mut input = child.stdin.take().unwrap();
    input.write_all(stdin).unwrap();
    drop(input);
    child.wait_with_output().unwrap()
}

const OPERATOR_PASSWORD: &str = "pw-for-the-move";

/// What clients of the source installation hold when it is moved.
struct Held {
    project: Creds,
    access: Vec<String>,
    chains: Vec<String>,
    embed: String,
    accounts_access: String,
    accounts_refresh: String,
}

/// A SQLite installation in use: a project with an application and a widget, subscriber and
/// guest tokens (one chain refreshed once), an embed exchange and an operator's login.
async fn populate_through_http(source: &str) -> Held {
    let p = project(source);
    let app = admin(
        source,
        &[
            "application",
            "create",
            "--project",
            &p.id,
            "--name",
            "lobby",
        ],
    );
    let address = app["address_id"].as_str().unwrap().to_string();
    let embed = admin(
        source,
        &["embed", "create", "--project", &p.id, "--address", &address],
    );
    let embed = embed["token"].as_str().unwrap().to_string();
    admin(
        source,
        &[
            "user",
            "create",
            "--username",
            "root@local",
            "--password",
            OPERATOR_PASSWORD,
            "--role",
            "ADMIN",
        ],
    );
    let node = Node::start(source, &[]);
    let client = reqwest::Client::new();
    let (mut access, mut chains) = (Vec::new(), Vec::new());
    for reference in ["alice", "bob"] {
        let (s, t) = post(
            &client,
            node.url("/api/fabric/subscribers/tokens"),
            &p,
            json!({"reference": reference}),
        )
        .await
        .unwrap();
        assert_eq!(s, 200, "{t}");
        access.push(t["token"].as_str().unwrap().to_string());
        chains.push(t["refresh_token"].as_str().unwrap().to_string());
    }
    let (s, g) = post(
        &client,
        node.url("/api/fabric/guests/tokens"),
        &p,
        json!({"allowed_addresses": [address]}),
    )
    .await
    .unwrap();
    assert_eq!(s, 201, "{g}");
    access.push(g["token"].as_str().unwrap().to_string());
    chains.push(g["refresh_token"].as_str().unwrap().to_string());
    let (s, r) = post(
        &client,
        node.url("/api/fabric/subscribers/tokens/refresh"),
        &p,
        json!({"refresh_token": chains[0]}),
    )
    .await
    .unwrap();
    assert_eq!(s, 201, "{r}");
    chains[0] = r["refresh_token"].as_str().unwrap().to_string();
    access.push(r["token"].as_str().unwrap().to_string());
    let r = client
        .post(node.url("/api/fabric/embeds/tokens"))
        .json(&json!({"token": embed}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 201);
    let e: Value = r.json().await.unwrap();
    access.push(e["token"].as_str().unwrap().to_string());
    let login: Value = client
        .post(node.url("/v1/tokens"))
        .json(&json!({"username": "root@local", "password": OPERATOR_PASSWORD}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    Held {
        project: p,
        access,
        chains,
        embed,
        accounts_access: login["accessToken"].as_str().unwrap().to_string(),
        accounts_refresh: login["refreshToken"]["id"].as_str().unwrap().to_string(),
    }
}

/// Moves a SQLite installation in use to `target` with `admin export` / `admin import`, and
/// serves it there with the same master key: everything its clients hold still works.
async fn move_installation(target: &str) {
    let dir = tempfile::tempdir().unwrap();
    let source = format!("sqlite://{}", dir.path().join("source.db").display());
    let held = populate_through_http(&source).await;
    // The node serving the source was killed when populate_through_http returned.

    let export = admin_keyless(&source, &["export"], b"");
    assert!(
        export.status.success(),
        "export: {}",
        String::from_utf8_lossy(&export.stderr)
    );
    let dump = export.stdout;
    let header: Value =
        serde_json::from_slice(dump.split(|b| *b == b'\n').next().unwrap()).unwrap();
    assert_eq!(header, json!({"tessera_export": 1, "schema_version": 8}));
    let stderr = String::from_utf8_lossy(&export.stderr);
    let exported: Value = serde_json::from_str(stderr.lines().last().unwrap()).unwrap();

    admin(target, &["migrate"]);
    let import = admin_keyless(target, &["import"], &dump);
    assert!(
        import.status.success(),
        "import: {}",
        String::from_utf8_lossy(&import.stderr)
    );
    let imported: Value = serde_json::from_slice(&import.stdout).unwrap();
    assert_eq!(imported["imported"], exported["exported"]);
    assert!(imported["note"].as_str().unwrap().contains("master key"));
    let counts = &imported["imported"];
    assert_eq!(counts["projects"], 1);
    assert_eq!(counts["operators"], 1);
    assert_eq!(counts["operator_sessions"], 1);
    assert_eq!(counts["embeds"], 1);
    assert_eq!(
        counts["families"], 4,
        "alice, bob, the guest and the embed exchange"
    );
    assert!(counts["keys"].as_u64().unwrap() >= 3);

    // A second import would merge two installations: refused, and the first stays intact.
    let again = admin_keyless(target, &["import"], &dump);
    assert!(!again.status.success());
    let error: Value = serde_json::from_slice(&again.stderr).unwrap();
    assert!(
        error["error"].as_str().unwrap().contains("not empty"),
        "{error}"
    );

    let node = Node::start(target, &[]);
    let client = reqwest::Client::new();
    let p = &held.project;
    // Access tokens introspect active with the project's API token (which authenticates).
    for token in &held.access {
        let r = client
            .post(node.url("/oauth2/introspect"))
            .basic_auth(&p.id, Some(&p.token))
            .form(&[("token", token.as_str())])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 200);
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["active"], true, "an access token died in the move: {v}");
    }
    // Every chain's newest refresh token refreshes.
    for chain in &held.chains {
        let (s, body) = post(
            &client,
            node.url("/api/fabric/subscribers/tokens/refresh"),
            p,
            json!({"refresh_token": chain}),
        )
        .await
        .unwrap();
        assert_eq!(s, 201, "a refresh token died in the move: {body}");
    }
    // New grants work, and the widget still exchanges.
    let (s, _) = post(
        &client,
        node.url("/api/fabric/subscribers/tokens"),
        p,
        json!({"reference": "carol"}),
    )
    .await
    .unwrap();
    assert_eq!(s, 200);
    let r = client
        .post(node.url("/api/fabric/embeds/tokens"))
        .json(&json!({"token": held.embed}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 201);

    // The operator: the Accounts refresh id refreshes, the earlier access token still works,
    // and the password still logs in.
    let r = client
        .patch(node.url("/v1/tokens/access-token/refresh"))
        .header("content-type", "application/json")
        .body(json!(held.accounts_refresh).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let refreshed: String = r.json().await.unwrap();
    for bearer in [&refreshed, &held.accounts_access] {
        let r = client
            .get(node.url("/v1/projects"))
            .bearer_auth(bearer)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 200);
    }
    let r = client
        .post(node.url("/v1/tokens"))
        .json(&json!({"username": "root@local", "password": OPERATOR_PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_installation_moves_from_sqlite_to_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let target = format!("sqlite://{}", dir.path().join("target.db").display());
    move_installation(&target).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_installation_moves_from_sqlite_to_postgres() {
    let Some((database, guard)) = postgres().await else {
        return;
    };
    move_installation(&database).await;
    guard.drop_now().await;
}

// --- logs ---

/// A server whose stderr is a file (not a terminal) writes plain text: no colour escapes in
/// what log collectors read. Each request's debug line carries its span fields.
#[tokio::test]
async fn logs_written_to_a_file_carry_no_terminal_escapes() {
    let dir = tempfile::tempdir().unwrap();
    let log_path = dir.path().join("server.log");
    let database = format!("sqlite://{}", dir.path().join("t.db").display());
    let mut cmd = Node::command(&database);
    cmd.env("RUST_LOG", "debug")
        .stderr(std::fs::File::create(&log_path).unwrap());
    let mut node = Node::spawn(cmd);
    let r = reqwest::get(node.url("/healthz")).await.unwrap();
    assert_eq!(r.status(), 200);
    node.kill();
    let log = std::fs::read_to_string(&log_path).unwrap();
    assert!(log.contains("/healthz"), "{log}");
    assert!(!log.contains('\u{1b}'), "{log}");
}

// --- the shipped benchmark ---

/// `tessera bench` runs every workload against its own server, preloads families, and reports
/// each workload with requests and no errors (short windows: this checks the tool, not speed).
/// Runs `tessera bench` with `args`, its temporary database in `dir`, and returns what it
/// printed and the JSON report it wrote; fails the test if it did not succeed.
fn run_bench(dir: &std::path::Path, args: &[&str]) -> (String, Value) {
    let out = bench_output(dir, args, MasterKeyFrom::Default);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report = serde_json::from_slice(&std::fs::read(dir.join("bench.json")).unwrap()).unwrap();
    (stdout, report)
}

/// Where a bench run's master key comes from.
#[derive(Clone, Copy, PartialEq)]
enum MasterKeyFrom {
    /// The bench's own resolution (a fresh key for its temporary database).
    Default,
    /// `TESSERA_MASTER_KEY` = [`MASTER_KEY`], the key of the test servers' databases.
    Env,
}

/// Runs `tessera bench` with `args`, `--dir dir` and `--json dir/bench.json`, whatever its
/// outcome.
fn bench_output(dir: &std::path::Path, args: &[&str], key: MasterKeyFrom) -> std::process::Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_tessera"));
    cmd.arg("bench")
        .args(args)
        .arg("--dir")
        .arg(dir)
        .arg("--json")
        .arg(dir.join("bench.json"))
        .env_remove("TESSERA_MASTER_KEY");
    if key == MasterKeyFrom::Env {
        cmd.env("TESSERA_MASTER_KEY", MASTER_KEY);
    }
    cmd.output().unwrap()
}

/// The names of the projects and the usernames of the operators `database` holds.
async fn projects_and_operators(database: &str) -> (Vec<String>, Vec<String>) {
    let database = database.parse().unwrap();
    let stores = tessera_server::startup::open_store(&database, Default::default())
        .await
        .unwrap();
    let projects = stores.directory.list_projects().await.unwrap();
    let operators = stores.operators.list_operators().await.unwrap();
    (
        projects.into_iter().map(|p| p.name).collect(),
        operators.into_iter().map(|o| o.username).collect(),
    )
}

/// The short, quick bench run of the clean-up tests; `list` needs the bench's operator.
const SHORT_BENCH: [&str; 8] = [
    "--connections",
    "2",
    "--duration",
    "0.3",
    "--warmup",
    "0.1",
    "--workloads",
    "guest,list",
];

/// `--url … --database …` adds a project and an ADMIN operator to a live installation for the
/// run; afterwards the database holds exactly what it held before, and the bench said so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_benchmark_removes_what_it_added_to_a_running_installation() {
    let dir = tempfile::tempdir().unwrap();
    let database = format!("sqlite://{}", dir.path().join("live.db").display());
    let node = Node::start(&database, &[]);
    project(&database);
    admin(
        &database,
        &[
            "user",
            "create",
            "--username",
            "owner@example.com",
            "--password",
            "owner-password",
            "--role",
            "admin",
        ],
    );
    let before = projects_and_operators(&database).await;
    assert_eq!(before.0.len(), 1);
    assert_eq!(before.1.len(), 1);
    let mut args = vec!["--url", node.base.as_str(), "--database", database.as_str()];
    args.extend(SHORT_BENCH);
    let out = bench_output(dir.path(), &args, MasterKeyFrom::Env);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    // The operator existed during the run: the management workload was served.
    let report: Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("bench.json")).unwrap()).unwrap();
    let list = report["passes"][0]["results"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["workload"] == "list")
        .unwrap()
        .clone();
    assert!(list["succeeded"].as_u64().unwrap() > 0, "{list}");
    assert_eq!(list["errors"], 0, "{list}");
    assert!(stderr.contains("ADMIN operator bench-"), "{stderr}");
    assert!(
        stderr.contains("removed what the bench added to the database: operator bench-"),
        "{stderr}"
    );
    assert_eq!(projects_and_operators(&database).await, before);
}

/// A run that fails after the set-up has added its project and operator (here: the server
/// at `--url` is not there) still removes them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_benchmark_removes_what_it_added_when_the_run_fails() {
    let dir = tempfile::tempdir().unwrap();
    let database = format!("sqlite://{}", dir.path().join("live.db").display());
    drop(Node::start(&database, &[]));
    project(&database);
    let before = projects_and_operators(&database).await;
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", l.local_addr().unwrap())
    };
    let mut args = vec!["--url", closed.as_str(), "--database", database.as_str()];
    args.extend(SHORT_BENCH);
    let out = bench_output(dir.path(), &args, MasterKeyFrom::Env);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(stderr.contains("cannot connect"), "{stderr}");
    assert!(stderr.contains("removed what the bench added"), "{stderr}");
    assert_eq!(projects_and_operators(&database).await, before);
}

/// The bench's own server on a PostgreSQL database it is given leaves no project or
/// operator there either.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_benchmark_removes_what_it_added_to_a_postgres_database() {
    let Some((database, guard)) = postgres().await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let mut args = vec!["--database", database.as_str()];
    args.extend(SHORT_BENCH);
    let out = bench_output(dir.path(), &args, MasterKeyFrom::Env);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("removed what the bench added"), "{stderr}");
    assert_eq!(
        projects_and_operators(&database).await,
        (Vec::new(), Vec::new())
    );
    guard.drop_now().await;
}

/// Every workload of a preloaded pass is compared with its empty-database figure.
fn assert_compared_with_empty(pass: &Value) {
    for r in pass["results"].as_array().unwrap() {
        let w = r["workload"].as_str().unwrap();
        if !w.starts_with("healthz") {
            let note = r["note"].as_str().unwrap();
            assert!(note.contains("× empty database"), "{w}: {note}");
        }
    }
}

#[test]
fn the_benchmark_runs_every_workload_without_errors() {
    let dir = tempfile::tempdir().unwrap();
    let (stdout, report) = run_bench(
        dir.path(),
        &[
            "--connections",
            "4",
            // Long enough that every login connection sends a measured request even when
            // the debug build's argon2 runs beside the other process tests.
            "--duration",
            "1",
            "--warmup",
            "0.2",
            "--families",
            "3000",
        ],
    );
    assert!(stdout.contains("÷healthz"), "{stdout}");
    assert!(stdout.contains("server RSS: peak"), "{stdout}");
    assert!(report["server_peak_rss_mib"].as_f64().unwrap() > 0.0);
    assert!(report["argon2_floor_per_second"].as_f64().unwrap() > 0.0);
    let passes = report["passes"].as_array().unwrap();
    assert_eq!(passes.len(), 2, "an empty pass and a preloaded one");
    assert_eq!(passes[1]["families"], 3000);
    let names = |pass: &Value| -> Vec<String> {
        pass["results"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["workload"].as_str().unwrap().to_string())
            .collect()
    };
    let first = names(&passes[0]);
    for w in [
        "healthz",
        "introspect",
        "guest",
        "subscriber-new",
        "subscriber-existing",
        "refresh",
        "invite",
        "embed",
        "login",
        "list",
        "guest (beside login)",
    ] {
        assert!(first.iter().any(|n| n == w), "{w} missing from {first:?}");
    }
    assert!(names(&passes[1]).iter().any(|n| n == "refresh"));
    assert_compared_with_empty(&passes[1]);
    for pass in passes {
        for r in pass["results"].as_array().unwrap() {
            assert_eq!(r["errors"], 0, "{r}");
            assert!(r["succeeded"].as_u64().unwrap() > 0, "{r}");
        }
    }
    // The temporary database went away with the run.
    let left: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with("tessera-bench-")
        })
        .filter(|e| e.path().is_dir())
        .collect();
    assert!(left.is_empty());
}

/// `--rounds` repeats the first pass and reports each workload's median over the rounds; the
/// preloaded pass is compared with those medians.
#[test]
fn the_benchmark_reports_medians_over_rounds() {
    let dir = tempfile::tempdir().unwrap();
    let (stdout, report) = run_bench(
        dir.path(),
        &[
            "--connections",
            "2",
            "--duration",
            "0.3",
            "--warmup",
            "0.1",
            "--rounds",
            "3",
            "--families",
            "100",
            "--workloads",
            "guest,subscriber-new",
        ],
    );
    assert!(stdout.contains("round 3 of 3"), "{stdout}");
    assert!(stdout.contains("over 3 rounds"), "{stdout}");
    assert_eq!(report["rounds"], 3);
    let passes = report["passes"].as_array().unwrap();
    assert_eq!(passes.len(), 4, "three rounds and the preloaded pass");
    for (i, pass) in passes[..3].iter().enumerate() {
        assert_eq!(pass["round"], i + 1);
        assert_eq!(pass["families"], 0);
    }
    assert_eq!(passes[3]["families"], 100);
    let summary = report["summary"].as_array().unwrap();
    let names: Vec<&str> = summary
        .iter()
        .map(|w| w["workload"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["guest", "subscriber-new"]);
    for w in summary {
        let ratios: Vec<f64> = w["ratios_to_healthz"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r.as_f64().unwrap())
            .collect();
        assert_eq!(ratios.len(), 3, "{w}");
        let mut sorted = ratios.clone();
        sorted.sort_by(f64::total_cmp);
        assert_eq!(
            w["median_ratio_to_healthz"].as_f64().unwrap(),
            sorted[1],
            "{w}"
        );
        assert_eq!(w["errors"], 0, "{w}");
    }
    assert_compared_with_empty(&passes[3]);
}

// --- keys and operator mistakes (issue 18) ---

const OTHER_MASTER_KEY: &str = "ERERERERERERERERERERERERERERERERERERERERERE=";

/// `tessera ARGS` with `master_key` (or none), without inheriting any key from the caller's
/// environment.
fn tessera(args: &[&str], master_key: Option<&str>) -> std::process::Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_tessera"));
    cmd.args(args)
        .env_remove("TESSERA_MASTER_KEY")
        .env_remove("TESSERA_MASTER_KEY_FILE")
        .env_remove("TESSERA_DATABASE_URL")
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null());
    if let Some(key) = master_key {
        cmd.env("TESSERA_MASTER_KEY", key);
    }
    cmd.output().expect("tessera runs")
}

/// `tessera admin keys export --purpose PURPOSE` on `database` with `master_key`.
fn keys_export(database: &str, purpose: &str, master_key: &str) -> std::process::Output {
    tessera(
        &[
            "admin",
            "keys",
            "export",
            "--purpose",
            purpose,
            "--database",
            database,
        ],
        Some(master_key),
    )
}

/// Fails the test with the command's stderr unless it succeeded.
fn assert_succeeded(out: &std::process::Output) {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The JSON error line a failed command wrote on stderr (its last line).
fn refused(out: &std::process::Output) -> String {
    assert!(!out.status.success(), "the command succeeded");
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let line = stderr.lines().last().unwrap_or_default();
    let v: Value = serde_json::from_str(line).unwrap_or_else(|_| panic!("not JSON: {stderr}"));
    v["error"].as_str().unwrap().to_string()
}

/// The whole database as `admin export` writes it (the rows, byte for byte), and its counts.
fn snapshot(database: &str) -> (Vec<u8>, Value) {
    let out = admin_keyless(database, &["export"], b"");
    assert_succeeded(&out);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let counts: Value = serde_json::from_str(stderr.lines().last().unwrap()).unwrap();
    (out.stdout, counts["exported"].clone())
}

/// A SQLite installation with keys (a server started on it once), a project and an address.
fn keyed_installation(dir: &std::path::Path) -> (String, Creds, String) {
    let database = format!("sqlite://{}", dir.join("t.db").display());
    let p = project(&database);
    drop(Node::start(&database, &[]));
    let app = admin(
        &database,
        &["application", "create", "--project", &p.id, "--name", "a"],
    );
    let address = app["address_id"].as_str().unwrap().to_string();
    (database, p, address)
}

#[test]
fn every_command_refuses_another_master_key_before_writing() {
    let dir = tempfile::tempdir().unwrap();
    let (database, p, address) = keyed_installation(dir.path());
    let (before, counts) = snapshot(&database);
    assert!(counts["keys"].as_u64().unwrap() >= 3);
    assert_eq!(counts["master_key_check"], 1);
    let attempts: [&[&str]; 5] = [
        &["admin", "project", "create", "--name", "x"],
        &["admin", "api-token", "create", "--project", &p.id],
        &[
            "admin",
            "embed",
            "create",
            "--project",
            &p.id,
            "--address",
            &address,
        ],
        &[
            "admin",
            "user",
            "create",
            "--username",
            "bot",
            "--role",
            "ADMIN",
            "--service",
        ],
        &["admin", "keys", "rotate"],
    ];
    for args in attempts {
        let mut args = args.to_vec();
        args.extend(["--database", &database]);
        let out = tessera(&args, Some(OTHER_MASTER_KEY));
        let error = refused(&out);
        assert!(
            error.contains("not the master key of this database"),
            "{args:?}: {error}"
        );
        assert!(out.stdout.is_empty(), "{args:?} printed a credential");
        assert_eq!(
            snapshot(&database).0,
            before,
            "{args:?} wrote to the database"
        );
    }
    // `serve` refuses it with the same check.
    let out = tessera(
        &["serve", "--listen", "127.0.0.1:0", "--database", &database],
        Some(OTHER_MASTER_KEY),
    );
    assert!(refused(&out).contains("not the master key of this database"));
    assert_eq!(snapshot(&database).0, before);
    // The right key still works.
    tessera(
        &["admin", "keys", "list", "--database", &database],
        Some(MASTER_KEY),
    )
    .status
    .success()
    .then_some(())
    .expect("the right key is accepted");
}

#[test]
fn the_check_refuses_a_wrong_key_on_a_database_without_keys_yet() {
    // A project made before any server ran: no key unwraps, only the check tells the keys
    // apart, and a server started with another key must not create keys under it.
    let dir = tempfile::tempdir().unwrap();
    let database = format!("sqlite://{}", dir.path().join("t.db").display());
    project(&database);
    let (before, counts) = snapshot(&database);
    assert_eq!(counts["keys"], 0);
    let out = tessera(
        &["serve", "--listen", "127.0.0.1:0", "--database", &database],
        Some(OTHER_MASTER_KEY),
    );
    assert!(refused(&out).contains("not the master key of this database"));
    let out = tessera(
        &[
            "admin",
            "project",
            "create",
            "--name",
            "y",
            "--database",
            &database,
        ],
        Some(OTHER_MASTER_KEY),
    );
    assert!(refused(&out).contains("not the master key of this database"));
    assert_eq!(snapshot(&database).0, before);
}

/// Whether `path` exists.
fn exists(path: &std::path::Path) -> bool {
    std::fs::metadata(path).is_ok()
}

#[test]
fn serve_on_a_busy_port_creates_no_key_file_and_no_keys() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("t.db");
    let database = format!("sqlite://{}", db.display());
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let listen = busy.local_addr().unwrap().to_string();
    let out = tessera(
        &["serve", "--listen", &listen, "--database", &database],
        None,
    );
    assert!(refused(&out).contains("cannot listen"));
    assert!(
        !exists(&dir.path().join("t.db.master-key")),
        "a stray key file"
    );
    let (_, counts) = snapshot(&database);
    assert_eq!(counts["keys"], 0);
    assert_eq!(counts["master_key_check"], 0);
    // With the port free, the same command creates the key file and the keys.
    drop(busy);
    let node = Node::spawn({
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_tessera"));
        cmd.args(["serve", "--listen", "127.0.0.1:0", "--database", &database])
            .env_remove("TESSERA_MASTER_KEY")
            .env_remove("TESSERA_MASTER_KEY_FILE")
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped());
        cmd
    });
    drop(node);
    assert!(exists(&dir.path().join("t.db.master-key")));
    assert!(snapshot(&database).1["keys"].as_u64().unwrap() >= 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_on_a_busy_port_creates_no_keys_on_postgres() {
    let Some((database, guard)) = postgres().await else {
        return;
    };
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let listen = busy.local_addr().unwrap().to_string();
    let out = tessera(
        &["serve", "--listen", &listen, "--database", &database],
        Some(MASTER_KEY),
    );
    assert!(refused(&out).contains("cannot listen"));
    let (_, counts) = snapshot(&database);
    assert_eq!(counts["keys"], 0, "keys that would block an import");
    assert_eq!(counts["master_key_check"], 0);
    guard.drop_now().await;
}

#[test]
fn a_damaged_database_gets_no_key_file() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("t.db");
    std::fs::write(&db, vec![0x5a; 8192]).unwrap();
    let database = format!("sqlite://{}", db.display());
    let out = tessera(
        &["serve", "--listen", "127.0.0.1:0", "--database", &database],
        None,
    );
    refused(&out);
    let out = tessera(
        &[
            "admin",
            "project",
            "create",
            "--name",
            "x",
            "--database",
            &database,
        ],
        None,
    );
    refused(&out);
    assert!(
        !exists(&dir.path().join("t.db.master-key")),
        "a stray key file"
    );
}

#[test]
fn a_keyed_database_whose_key_file_is_missing_is_refused_without_a_new_one() {
    // Keyed through the environment; then started without it, which used to create a fresh
    // (wrong) key file beside the database.
    let dir = tempfile::tempdir().unwrap();
    let (database, _, _) = keyed_installation(dir.path());
    let key_file = dir.path().join("t.db.master-key");
    let (before, _) = snapshot(&database);
    let out = tessera(
        &["serve", "--listen", "127.0.0.1:0", "--database", &database],
        None,
    );
    let error = refused(&out);
    assert!(
        error.contains("holds keys") && error.contains("does not exist"),
        "{error}"
    );
    assert!(error.contains(&key_file.display().to_string()), "{error}");
    let out = tessera(&["admin", "user", "list", "--database", &database], None);
    assert!(refused(&out).contains("holds keys"));
    assert!(
        !exists(&key_file),
        "a key file was created for a keyed database"
    );
    assert_eq!(snapshot(&database).0, before);
}

#[test]
fn admin_commands_refuse_a_database_that_does_not_exist() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("typo.db");
    let database = format!("sqlite://{}", db.display());
    for args in [
        &["admin", "project", "create", "--name", "x"][..],
        &["admin", "user", "list"][..],
        &["admin", "keys", "list"][..],
    ] {
        let mut args = args.to_vec();
        args.extend(["--database", &database]);
        let out = tessera(&args, Some(MASTER_KEY));
        let error = refused(&out);
        assert!(error.contains(&db.display().to_string()), "{error}");
        assert!(error.contains("--create"), "{error}");
        assert!(!exists(&db), "{args:?} made a database");
        assert!(!exists(&dir.path().join("typo.db.master-key")));
    }
    // Commands that make databases still do; --create makes one for any command.
    let made = dir.path().join("made.db");
    let out = tessera(
        &[
            "admin",
            "migrate",
            "--database",
            &format!("sqlite://{}", made.display()),
        ],
        None,
    );
    assert!(out.status.success());
    assert!(exists(&made));
    let out = tessera(
        &[
            "admin",
            "project",
            "create",
            "--name",
            "x",
            "--create",
            "--database",
            &database,
        ],
        Some(MASTER_KEY),
    );
    assert_succeeded(&out);
    assert!(exists(&db));
}

/// Before, `--lockout-failures 0` started a server that locked accounts after one failure,
/// as if 1 had been given; an out-of-range flag now stops the start with a message naming it,
/// before the database is opened or anything is created.
#[test]
fn serve_refuses_an_out_of_range_flag_before_touching_anything() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("t.db");
    let database = format!("sqlite://{}", db.display());
    for flag in [
        "--lockout-failures=0",
        "--lockout-window-seconds=0",
        "--lockout-seconds=-1",
        "--embed-rate-per-minute=0",
        "--access-token-lifetime-seconds=0",
    ] {
        let out = tessera(
            &[
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--database",
                &database,
                flag,
            ],
            Some(MASTER_KEY),
        );
        assert_eq!(out.status.code(), Some(2), "{flag} was accepted");
        let stderr = String::from_utf8_lossy(&out.stderr);
        let name = flag.split('=').next().unwrap();
        assert!(stderr.contains(name), "{flag}: {stderr}");
        assert!(stderr.contains("give "), "{flag}: {stderr}");
        assert!(out.stdout.is_empty(), "{flag}: it listened");
        assert!(!exists(&db), "{flag}: a database was made");
    }
}

/// A PostgreSQL URL's password never reaches the terminal: before, `--help` listed
/// `TESSERA_DATABASE_URL`'s value whole, and a URL of an unknown scheme was repeated whole in
/// the error.
#[test]
fn the_database_password_is_never_printed() {
    let help = Command::new(env!("CARGO_BIN_EXE_tessera"))
        .args(["serve", "--help"])
        .env(
            "TESSERA_DATABASE_URL",
            "postgres://tessera:s3cret@db/tessera",
        )
        .output()
        .unwrap();
    assert!(help.status.success());
    let text = String::from_utf8_lossy(&help.stdout);
    assert!(text.contains("TESSERA_DATABASE_URL"), "{text}");
    assert!(!text.contains("s3cret"), "{text}");

    for url in [
        "mysql://tessera:s3cret@db/tessera",
        "postgre://tessera:s3cret@db/tessera",
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_tessera"))
            .args(["admin", "migrate"])
            .env("TESSERA_DATABASE_URL", url)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("unsupported database URL"), "{stderr}");
        assert!(stderr.contains("tessera:***@db/tessera"), "{stderr}");
        assert!(!stderr.contains("s3cret"), "{stderr}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exported_access_keys_verify_a_token_the_server_issued() {
    use tessera_core::verifier::Verifier;
    use tessera_core::Clock;

    let dir = tempfile::tempdir().unwrap();
    let (database, p, address) = keyed_installation(dir.path());
    let node = Node::start(&database, &[]);
    let (status, body) = post(
        &reqwest::Client::new(),
        node.url("/api/fabric/guests/tokens"),
        &p,
        json!({ "allowed_addresses": [address] }),
    )
    .await
    .unwrap();
    assert_eq!(status, 201, "{body}");
    let token = body["token"].as_str().unwrap().to_string();

    let out = keys_export(&database, "access", MASTER_KEY);
    assert_succeeded(&out);
    let export = String::from_utf8(out.stdout).unwrap();
    let verifier = Verifier::from_export(&export, 5).expect("the export loads");
    let now = tessera_core::SystemClock.now();
    let claims = verifier
        .verify(&token, now)
        .expect("the SAT verifies offline");
    assert_eq!(claims.pid.to_string(), p.id);
    // Tampered: one character of the ciphertext changed.
    let at = token.match_indices('.').nth(2).unwrap().0 + 1;
    let mut tampered = token.clone().into_bytes();
    tampered[at] = if tampered[at] == b'A' { b'B' } else { b'A' };
    assert!(verifier
        .verify(std::str::from_utf8(&tampered).unwrap(), now)
        .is_err());
    // The refresh token is not an access token, and nothing but access keys is exported.
    let refresh = body["refresh_token"].as_str().unwrap();
    assert!(verifier.verify(refresh, now).is_err());
    let out = keys_export(&database, "signing", MASTER_KEY);
    assert!(!out.status.success());
    // Another master key exports nothing.
    let out = keys_export(&database, "access", OTHER_MASTER_KEY);
    assert!(refused(&out).contains("not the master key"));
}
