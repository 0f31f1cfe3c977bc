//! The PostgreSQL store against a real server: migrations, the refresh race across
//! connections and nodes, and a differential run that replays one script of every store trait's
//! methods against the SQLite store and this one and demands identical answers, each also the
//! expected one at the script's meaningful steps.
//!
//! Needs `TESSERA_TEST_POSTGRES_URL` (e.g. `postgres://postgres@127.0.0.1:5432/test`); without
//! it every test prints SKIP and passes. Each test works in a scratch schema of its own.

use std::sync::Arc;

use tessera_core::export::{ColumnType, EXPORT_TABLES};
use tessera_core::ids::*;
use tessera_core::keyring::{KeyPurpose, KeyState};
use tessera_core::metrics::Metrics;
use tessera_core::model::*;
use tessera_core::store::{
    DirectoryStore, FamilyStore, KeyStore, OperatorStore, StoreError, Stores,
};
use tessera_core::token::PrincipalKind;
use tessera_core::UnixTime;
use tessera_store_postgres::testing::{scratch_schema, url_from_env, with_search_path};
use tessera_store_postgres::{is_postgres_url, migrate, OpenError, PgStore};
use uuid::Uuid;

/// The test server's URL, or return (after the SKIP line) from the test.
macro_rules! base_url {
    () => {
        match url_from_env() {
            Some(url) => url,
            None => return,
        }
    };
}

/// A raw connection into `url`, for looking behind the store.
async fn raw(url: &str) -> tokio_postgres::Client {
    let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .expect("raw connection");
    tokio::spawn(async move {
        let _ = conn.await;
    });
    client
}

async fn versions(url: &str) -> Vec<i64> {
    raw(url)
        .await
        .query("SELECT version FROM schema_version ORDER BY version", &[])
        .await
        .expect("schema_version")
        .iter()
        .map(|r| r.get(0))
        .collect()
}

// --- builders (deterministic ids, so both backends see identical input) ---

fn id(n: u128) -> Uuid {
    Uuid::from_u128(0x0190_0000_0000_7000_8000_0000_0000_0000 + n)
}

fn t(s: i64) -> UnixTime {
    UnixTime(s)
}

/// A purge request with no audit retention.
fn purge_at(before: i64, retired_before: i64, limit: u32) -> PurgeRequest {
    PurgeRequest {
        before: t(before),
        retired_before: t(retired_before),
        audit_before: None,
        limit,
    }
}

fn project(n: u128, created: i64) -> Project {
    Project {
        id: ProjectId(id(n)),
        name: format!("project {n}"),
        created_at: t(created),
    }
}

fn token(n: u128, project: ProjectId, hash: u8, created: i64) -> ApiToken {
    ApiToken {
        id: ApiTokenId(id(n)),
        project_id: project,
        name: format!("token {n}"),
        hash: [hash; 32],
        created_at: t(created),
        revoked_at: None,
    }
}

fn resource(
    n: u128,
    project: ProjectId,
    kind: ResourceKind,
    name: &str,
    subscriber: Option<SubscriberProfile>,
) -> NewResource {
    let mut data = serde_json::Map::new();
    if kind != ResourceKind::Subscriber {
        data.insert("size".into(), serde_json::json!(1.5));
        data.insert("tags".into(), serde_json::json!(["a", {"b": null}]));
    }
    NewResource {
        resource: Resource {
            id: ResourceId(id(n)),
            project_id: project,
            kind,
            name: address_name(name),
            display_name: name.to_string(),
            created_at: t(1000 + n as i64),
            updated_at: t(1000 + n as i64),
            subscriber,
            data,
        },
        address: Address {
            id: AddressId(id(n + 0x10_0000)),
            project_id: project,
            resource_id: ResourceId(id(n)),
            kind,
            name: address_name(name),
            display_name: name.to_string(),
            locked: false,
            cover_url: String::new(),
            preview_url: String::new(),
            created_at: t(1000 + n as i64),
        },
        password_hash: None,
    }
}

fn subscriber(n: u128, project: ProjectId, email: &str) -> NewResource {
    let profile = SubscriberProfile {
        email: email.into(),
        first_name: "First".into(),
        ..Default::default()
    };
    resource(n, project, ResourceKind::Subscriber, email, Some(profile))
}

fn upsert(
    n: u128,
    project: ProjectId,
    reference: &str,
    email: &str,
    password: Option<&str>,
) -> SubscriberUpsert {
    SubscriberUpsert {
        reference: reference.into(),
        patch: SubscriberPatch {
            email: Some(email.into()),
            last_name: Some(format!("via {reference}")),
            ..Default::default()
        },
        password_hash: password.map(str::to_string),
        create: subscriber(n, project, email),
    }
}

fn family(n: u128, project: ProjectId, kind: PrincipalKind, subject: Uuid) -> Family {
    Family {
        id: FamilyId(id(n)),
        project_id: project,
        kind,
        subject,
        generation: 1,
        created_at: t(1000),
        expires_at: t(5000),
        tokens_expire_at: t(1600),
        rotated_at: None,
        revoked_at: None,
    }
}

fn key(kid: &str, purpose: KeyPurpose, state: KeyState, created: i64) -> StoredKey {
    StoredKey {
        kid: kid.into(),
        purpose,
        state,
        wrapped: kid.as_bytes().to_vec(),
        created_at: t(created),
        activated_at: (state == KeyState::Active).then_some(t(created)),
        retired_at: None,
        sealed: 0,
    }
}

fn operator(n: u128, username: &str, key: Option<u8>) -> Operator {
    Operator {
        id: OperatorId(id(n)),
        username: username.into(),
        domain: Some("local".into()),
        kind: if key.is_some() {
            OperatorKind::Service
        } else {
            OperatorKind::User
        },
        role: Role::Operator,
        password_hash: key.is_none().then(|| "$argon2id$fake".to_string()),
        api_key_hash: key.map(|k| [k; 32]),
        disabled: false,
        created_at: t(900 + n as i64),
    }
}

fn page(size: u32, after: Option<Uuid>) -> Page {
    Page { size, after }
}

// --- plain tests ---

#[test]
fn recognises_postgres_urls() {
    assert!(is_postgres_url("postgres://u@h/db"));
    assert!(is_postgres_url("postgresql://u@h:5433/db?sslmode=disable"));
    assert!(!is_postgres_url("sqlite://tessera.db"));
    assert!(!is_postgres_url("tessera.db"));
}

#[test]
fn search_path_is_encoded_into_the_url() {
    assert_eq!(
        with_search_path("postgres://u@h/db", "t_x"),
        "postgres://u@h/db?options=-c%20search_path%3Dt_x"
    );
    assert_eq!(
        with_search_path("postgres://u@h/db?application_name=a", "t_x"),
        "postgres://u@h/db?application_name=a&options=-c%20search_path%3Dt_x"
    );
    assert_eq!(
        with_search_path("host=h user=u", "t_x"),
        "host=h user=u options='-c search_path=t_x'"
    );
}

#[tokio::test]
async fn unreachable_server_is_a_clear_error_without_the_password() {
    // Port 1 on loopback: nothing listens there, so the connection is refused at once.
    let err = PgStore::connect("postgres://tessera:s3cret@127.0.0.1:1/tessera?connect_timeout=5")
        .await
        .expect_err("nothing listens on port 1");
    let msg = err.to_string();
    assert!(matches!(err, OpenError::Postgres { .. }), "{msg}");
    assert!(msg.contains("tessera@127.0.0.1:1/tessera"), "{msg}");
    assert!(!msg.contains("s3cret"), "{msg}");
    let err = migrate("postgres://u@h/db?sslmode=nonsense")
        .await
        .expect_err("bad URL");
    assert!(err.to_string().contains("invalid"), "{err}");
}

// --- the pool ---

/// `url` with more query parameters.
fn with_params(url: &str, params: &str) -> String {
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}{params}")
}

/// How many sessions named `app` the server has.
async fn sessions(c: &tokio_postgres::Client, app: &str) -> i64 {
    c.query_one(
        "SELECT COUNT(*) FROM pg_stat_activity WHERE application_name = $1",
        &[&app],
    )
    .await
    .expect("pg_stat_activity")
    .get(0)
}

#[tokio::test]
async fn connections_the_server_closed_are_not_handed_out_again() {
    let base = base_url!();
    let (url, guard) = scratch_schema(&base).await;
    // A name of its own in pg_stat_activity, so that only this store's sessions are ended.
    let app = format!("tessera_recycle_{}", Uuid::new_v4().simple());
    let store = PgStore::connect(&with_params(&url, &format!("application_name={app}")))
        .await
        .expect("connect");
    // Several calls at once, so that several connections sit idle in the pool afterwards.
    let (a, b, c, d) = tokio::join!(
        store.list_projects(),
        store.list_projects(),
        store.list_projects(),
        store.list_projects()
    );
    for r in [a, b, c, d] {
        r.expect("list before");
    }
    let admin = raw(&base).await;
    let ended: i64 = admin
        .query_one(
            "SELECT COUNT(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity
              WHERE application_name = $1) AS t",
            &[&app],
        )
        .await
        .expect("terminate")
        .get(0);
    assert!(ended >= 1, "the store had no session to end");
    // As after a PostgreSQL restart: every idle connection of the pool is dead. Wait until
    // the backends have exited (each sent its FATAL and closed the socket first), then let the
    // connection tasks read that.
    for _ in 0..250 {
        if sessions(&admin, &app).await == 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(sessions(&admin, &app).await, 0, "the backends did not exit");
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    // No call gets a dead connection: each is checked out healthy or replaced by a new one.
    for _ in 0..(ended + 2) {
        store.list_projects().await.expect("list after the restart");
    }
    let p = project(1, 100);
    store
        .create_project(p.clone(), token(2, p.id, 2, 100))
        .await
        .expect("a write after the restart");
    assert!(
        sessions(&admin, &app).await >= 1,
        "new connections were opened"
    );
    drop(store);
    guard.drop_now().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exhausted_pool_answers_unavailable_after_its_wait_timeout() {
    let base = base_url!();
    let (url, guard) = scratch_schema(&base).await;
    let store = Arc::new(
        PgStore::connect(&with_params(&url, "pool_max_size=1&pool_wait_timeout=0.3"))
            .await
            .expect("connect"),
    );
    // Hold the pool's only connection: a read blocked behind a lock another session holds.
    let locker = raw(&url).await;
    locker
        .batch_execute("BEGIN; LOCK TABLE projects IN ACCESS EXCLUSIVE MODE")
        .await
        .expect("lock");
    let blocked = tokio::spawn({
        let store = store.clone();
        async move { store.list_projects().await }
    });
    let mut waiting = false;
    for _ in 0..250 {
        let n: i64 = locker
            .query_one("SELECT COUNT(*) FROM pg_locks WHERE NOT granted", &[])
            .await
            .expect("pg_locks")
            .get(0);
        if n > 0 {
            waiting = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(waiting, "the first call never reached the lock");
    // The next call cannot get a connection: it fails after the wait (0.3 s), long before the
    // lock goes.
    let next = tokio::time::timeout(
        std::time::Duration::from_secs(5),
        store.get_project(ProjectId(id(99))),
    )
    .await
    .expect("answered after the pool's wait timeout, not after the lock");
    match next {
        Err(StoreError::Unavailable(why)) => {
            assert!(
                why.contains("no PostgreSQL connection became free"),
                "{why}"
            )
        }
        other => panic!("expected Unavailable, got {other:?}"),
    }
    // Grants queued meanwhile are answered together, after one wait, not one wait each (40 ×
    // 0.3 s): the group commit does not retry a batch one by one when there is no connection.
    let grants: Vec<_> = (0..40u128)
        .map(|i| {
            let store = store.clone();
            let f = family(100 + i, ProjectId(id(1)), PrincipalKind::Guest, id(200 + i));
            tokio::spawn(async move { store.create_family(f).await })
        })
        .collect();
    let answers = tokio::time::timeout(std::time::Duration::from_secs(4), async {
        let mut answers = Vec::new();
        for g in grants {
            answers.push(g.await.expect("join"));
        }
        answers
    })
    .await
    .expect("the queued grants were answered after one wait, not one wait each");
    for a in answers {
        assert!(matches!(a, Err(StoreError::Unavailable(_))), "{a:?}");
    }
    // Once the lock goes, the held call finishes and the pool serves again.
    locker.batch_execute("ROLLBACK").await.expect("unlock");
    assert!(blocked
        .await
        .expect("join")
        .expect("the held call")
        .is_empty());
    assert!(matches!(
        store.get_project(ProjectId(id(99))).await,
        Err(StoreError::NotFound)
    ));
    drop(store);
    guard.drop_now().await;
}

// --- migrations ---

/// The schema version of this build (the number of migrations).
const LATEST: i64 = 8;

#[tokio::test]
async fn migrations_apply_once_and_are_idempotent() {
    let base = base_url!();
    let (url, guard) = scratch_schema(&base).await;
    assert_eq!(migrate(&url).await.expect("first migrate"), (0, LATEST));
    assert_eq!(
        migrate(&url).await.expect("second migrate"),
        (LATEST, LATEST)
    );
    let store = PgStore::connect(&url).await.expect("connect");
    assert_eq!(store.schema_versions(), (LATEST, LATEST));
    assert_eq!(versions(&url).await, (1..=LATEST).collect::<Vec<_>>());
    // Every table landed in the scratch schema, none in public.
    let n: i64 = raw(&url)
        .await
        .query_one(
            "SELECT COUNT(*) FROM pg_tables WHERE schemaname = $1",
            &[&guard.schema()],
        )
        .await
        .expect("count")
        .get(0);
    assert_eq!(n, 13, "schema_version plus twelve tables");
    drop(store);
    guard.drop_now().await;
}

/// The export's column list is the schema's, with PostgreSQL's type for each column type: a
/// migration that adds or changes a column fails here until `EXPORT_TABLES` follows it.
#[tokio::test]
async fn export_tables_match_the_schema() {
    let base = base_url!();
    let (url, guard) = scratch_schema(&base).await;
    migrate(&url).await.expect("migrate");
    let rows = raw(&url)
        .await
        .query(
            "SELECT table_name::text, column_name::text, data_type::text, udt_name::text
             FROM information_schema.columns
             WHERE table_schema = $1 AND table_name <> 'schema_version'
             ORDER BY table_name, ordinal_position",
            &[&guard.schema()],
        )
        .await
        .expect("columns");
    let found: Vec<(String, String, String)> = rows
        .iter()
        .map(|r| {
            let (data_type, udt): (String, String) = (r.get(2), r.get(3));
            let ty = if data_type == "ARRAY" { udt } else { data_type };
            (r.get(0), r.get(1), ty)
        })
        .collect();
    let mut tables = EXPORT_TABLES.iter().collect::<Vec<_>>();
    tables.sort_by_key(|t| t.name);
    let want: Vec<(String, String, String)> = tables
        .iter()
        .flat_map(|t| {
            t.columns.iter().map(|c| {
                let ty = match c.ty {
                    ColumnType::Uuid => "uuid",
                    ColumnType::Text => "text",
                    ColumnType::Integer => "bigint",
                    ColumnType::Flag => "boolean",
                    ColumnType::Bytes => "bytea",
                    ColumnType::Json => "json",
                    ColumnType::UuidList => "_uuid",
                };
                (t.name.to_string(), c.name.to_string(), ty.to_string())
            })
        })
        .collect();
    assert_eq!(found, want);
    guard.drop_now().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn nodes_starting_together_migrate_once() {
    let base = base_url!();
    let (url, guard) = scratch_schema(&base).await;
    let tasks: Vec<_> = (0..6)
        .map(|_| {
            let url = url.clone();
            tokio::spawn(async move { PgStore::connect(&url).await })
        })
        .collect();
    let mut fresh = 0;
    for task in tasks {
        let store = task.await.expect("join").expect("connect");
        let (before, after) = store.schema_versions();
        assert_eq!(after, LATEST);
        if before == 0 {
            fresh += 1;
        }
    }
    assert_eq!(fresh, 1, "exactly one node found an empty database");
    assert_eq!(versions(&url).await, (1..=LATEST).collect::<Vec<_>>());
    guard.drop_now().await;
}

#[tokio::test]
async fn a_newer_schema_is_refused() {
    let base = base_url!();
    let (url, guard) = scratch_schema(&base).await;
    migrate(&url).await.expect("migrate");
    raw(&url)
        .await
        .execute("INSERT INTO schema_version (version) VALUES (99)", &[])
        .await
        .expect("bump");
    let err = PgStore::connect(&url).await.expect_err("too new");
    assert!(
        matches!(
            err,
            OpenError::TooNew {
                found: 99,
                known: LATEST
            }
        ),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        format!(
            "the database schema is version 99, newer than this Tessera knows ({LATEST}); \
             upgrade Tessera"
        )
    );
    let err = migrate(&url).await.expect_err("too new");
    assert!(matches!(err, OpenError::TooNew { found: 99, .. }));
    guard.drop_now().await;
}

/// Migration 7 recomputes the identity keys that schema 6 wrote with Unicode lowercasing
/// (KELVIN SIGN became `k`, ANGSTROM SIGN `å`), with an ASCII-only fold whatever the
/// database's locale, so that a look-alike no longer finds another subscriber or operator;
/// keys that were ASCII already, and references that were not the email, are left alone.
#[tokio::test]
async fn migration_7_recomputes_identity_keys_with_ascii_folding() {
    let base = base_url!();
    let (url, guard) = scratch_schema(&base).await;
    tessera_store_postgres::testing::migrate_to(&url, 6).await;
    assert_eq!(versions(&url).await, (1..=6).collect::<Vec<_>>());
    let db = raw(&url).await;
    let p = project(1, 100);
    db.execute(
        "INSERT INTO projects (id, name, created_at) VALUES ($1, 'p', 1)",
        &[&p.id.0],
    )
    .await
    .expect("project");
    // (id, email, reference_key, email_key) as schema 6 wrote them.
    let rows = [
        (10, "\u{212A}ate@x", "kate@x", "kate@x"),
        (11, "\u{212B}sa@x", "\u{E5}sa@x", "\u{E5}sa@x"),
        (12, "\u{C9}MILE@X", "ref-42", "\u{E9}mile@x"),
        (13, "Bob@X", "bob@x", "bob@x"),
    ];
    for (n, email, reference_key, email_key) in rows {
        db.execute(
            "INSERT INTO resources (id, project_id, kind, name, display_name, created_at,
                 updated_at) VALUES ($1, $2, 'subscriber', 'n', '', 1, 1)",
            &[&id(n), &p.id.0],
        )
        .await
        .expect("resource");
        db.execute(
            "INSERT INTO subscribers (id, project_id, reference_key, email, email_key)
             VALUES ($1, $2, $3, $4, $5)",
            &[&id(n), &p.id.0, &reference_key, &email, &email_key],
        )
        .await
        .expect("subscriber");
    }
    let operators = [
        (20, "ADM\u{130}N@local", "admi\u{307}n@local"),
        (21, "Admin@Local", "admin@local"),
        (22, "\u{212A}ate@local", "kate@local"),
    ];
    for (n, username, key) in operators {
        db.execute(
            "INSERT INTO operators (id, username, username_key, kind, role, created_at)
             VALUES ($1, $2, $3, 'user', 'ADMIN', 1)",
            &[&id(n), &username, &key],
        )
        .await
        .expect("operator");
    }

    let store = PgStore::connect(&url).await.expect("connect");
    assert_eq!(store.schema_versions(), (6, LATEST));
    let keys = |n: u128| {
        let db = &db;
        async move {
            let r = db
                .query_one(
                    "SELECT reference_key, email_key FROM subscribers WHERE id = $1",
                    &[&id(n)],
                )
                .await
                .expect("keys");
            (r.get::<_, String>(0), r.get::<_, String>(1))
        }
    };
    let pair = |a: &str, b: &str| (a.to_string(), b.to_string());
    assert_eq!(keys(10).await, pair("\u{212A}ate@x", "\u{212A}ate@x"));
    assert_eq!(keys(11).await, pair("\u{212B}sa@x", "\u{212B}sa@x"));
    assert_eq!(keys(12).await, pair("ref-42", "\u{C9}mile@x"));
    assert_eq!(keys(13).await, pair("bob@x", "bob@x"));
    let usernames: Vec<String> = db
        .query("SELECT username_key FROM operators ORDER BY id", &[])
        .await
        .expect("operators")
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(
        usernames,
        ["adm\u{130}n@local", "admin@local", "\u{212A}ate@local"]
    );

    // The store now keeps the look-alikes apart from the names they resembled.
    let mut next = 100;
    let mut grant = |reference: &str| {
        next += 1;
        let upsert = SubscriberUpsert {
            reference: reference.into(),
            patch: SubscriberPatch::default(),
            password_hash: None,
            create: subscriber(next, p.id, reference),
        };
        let family = family(next + 1000, p.id, PrincipalKind::Subscriber, Uuid::nil());
        let store = &store;
        async move {
            store
                .grant_subscriber(GrantWrite {
                    project: p.id,
                    upsert,
                    family,
                    at: t(1000),
                })
                .await
                .expect("grant")
        }
    };
    assert_ne!(grant("kate@x").await, ResourceId(id(10)));
    assert_eq!(grant("\u{212A}ATE@X").await, ResourceId(id(10)));
    assert_ne!(grant("\u{E5}sa@x").await, ResourceId(id(11)));
    assert_eq!(grant("BOB@x").await, ResourceId(id(13)));
    assert_eq!(grant("ref-42").await, ResourceId(id(12)));
    assert_eq!(grant("\u{C9}mile@x").await, ResourceId(id(12)));
    // Operators are found by any spelling that folds to their username's identity key.
    for (spelling, username) in [
        ("ADMIN@LOCAL", Some("Admin@Local")),
        ("adm\u{130}n@LOCAL", Some("ADM\u{130}N@local")),
        ("kate@local", None),
    ] {
        let found = store.find_operator(spelling).await.unwrap();
        assert_eq!(found.map(|o| o.username).as_deref(), username, "{spelling}");
    }
    drop(store);
    guard.drop_now().await;
}

#[tokio::test]
async fn dropping_the_guard_drops_the_schema() {
    let base = base_url!();
    let (url, guard) = scratch_schema(&base).await;
    let store = PgStore::connect(&url).await.expect("connect");
    store.count_families().await.expect("in use");
    let schema = guard.schema().to_string();
    // As when a test panics: no drop_now, the store (and its idle connections) still alive.
    drop(guard);
    let left: i64 = raw(&base)
        .await
        .query_one(
            "SELECT COUNT(*) FROM pg_namespace WHERE nspname = $1",
            &[&schema],
        )
        .await
        .expect("count")
        .get(0);
    assert_eq!(left, 0);
    drop(store);
}

// --- the refresh race ---

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_refreshes_of_one_generation_have_exactly_one_winner() {
    let base = base_url!();
    let (url, guard) = scratch_schema(&base).await;
    // Two stores on one database stand for two nodes; each has its own connections.
    let nodes = [
        Arc::new(PgStore::connect(&url).await.expect("node a")),
        Arc::new(PgStore::connect(&url).await.expect("node b")),
    ];
    let p = project(1, 100);
    let fam = family(2, p.id, PrincipalKind::Subscriber, id(3));
    nodes[0].create_family(fam.clone()).await.expect("family");

    for generation in 1..=5 {
        let barrier = Arc::new(tokio::sync::Barrier::new(32));
        let tasks: Vec<_> = (0..32)
            .map(|i| {
                let store = nodes[i % 2].clone();
                let barrier = barrier.clone();
                tokio::spawn(async move {
                    barrier.wait().await;
                    store
                        .rotate_family(Rotation {
                            project: p.id,
                            id: fam.id,
                            generation,
                            at: t(2000),
                            tokens_expire_at: t(4000),
                        })
                        .await
                })
            })
            .collect();
        let (mut rotated, mut stale) = (0, 0);
        for task in tasks {
            match task.await.expect("join").expect("no store error") {
                RotateOutcome::Rotated(f) => {
                    rotated += 1;
                    assert_eq!(f.generation, generation + 1);
                }
                RotateOutcome::Stale(f) => {
                    stale += 1;
                    assert!(f.generation > generation);
                }
                other => panic!("unexpected {other:?}"),
            }
        }
        assert_eq!((rotated, stale), (1, 31), "generation {generation}");
    }
    let f = nodes[1].get_family(fam.id).await.expect("family");
    assert_eq!(f.generation, 6);
    assert_eq!(f.tokens_expire_at, t(4000));
    drop(nodes);
    guard.drop_now().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_grants_of_a_new_reference_create_one_subscriber() {
    let base = base_url!();
    let (url, guard) = scratch_schema(&base).await;
    let store = Arc::new(PgStore::connect(&url).await.expect("connect"));
    let p = project(1, 100);
    store
        .create_project(p.clone(), token(2, p.id, 2, 100))
        .await
        .expect("project");
    let barrier = Arc::new(tokio::sync::Barrier::new(12));
    let tasks: Vec<_> = (0..12u128)
        .map(|i| {
            let store = store.clone();
            let barrier = barrier.clone();
            tokio::spawn(async move {
                // Each request would create its own resource; only one may.
                let up = upsert(100 + i, p.id, "Race@Example.com", "race@example.com", None);
                let fam = family(200 + i, p.id, PrincipalKind::Subscriber, Uuid::nil());
                barrier.wait().await;
                store
                    .grant_subscriber(GrantWrite {
                        project: p.id,
                        upsert: up,
                        family: fam,
                        at: t(1500),
                    })
                    .await
            })
        })
        .collect();
    let mut ids = Vec::new();
    for task in tasks {
        ids.push(task.await.expect("join").expect("grant"));
    }
    ids.dedup();
    assert_eq!(ids.len(), 1, "one subscriber for one reference: {ids:?}");
    let all = store
        .list_resources(ResourceListing::new(
            p.id,
            Some(ResourceKind::Subscriber),
            page(50, None),
        ))
        .await
        .expect("list");
    assert_eq!(all.items.len(), 1);
    assert_eq!(store.count_families().await.expect("count"), 12);
    drop(store);
    guard.drop_now().await;
}

// --- focused behaviour ---

#[tokio::test]
async fn subscriber_upserts_and_their_conflicts() {
    let base = base_url!();
    let (url, guard) = scratch_schema(&base).await;
    let s = PgStore::connect(&url).await.expect("connect");
    let p = project(1, 100);
    s.create_project(p.clone(), token(2, p.id, 2, 100))
        .await
        .expect("project");

    // Created by reference; found again case-insensitively, by email and by id.
    let alice = s
        .grant_subscriber(GrantWrite {
            project: p.id,
            upsert: upsert(10, p.id, "Alice@X.com", "Alice@X.com", None),
            family: family(20, p.id, PrincipalKind::Subscriber, Uuid::nil()),
            at: t(1000),
        })
        .await
        .expect("create");
    assert_eq!(alice, ResourceId(id(10)));
    for (n, reference) in [(21, "alice@x.COM"), (22, &alice.to_string()[..])] {
        let again = s
            .grant_subscriber(GrantWrite {
                project: p.id,
                upsert: upsert(11, p.id, reference, "alice@x.com", None),
                family: family(n, p.id, PrincipalKind::Subscriber, Uuid::nil()),
                at: t(1001),
            })
            .await
            .expect("upsert");
        assert_eq!(again, alice, "{reference}");
    }
    assert_eq!(
        s.get_family(FamilyId(id(21))).await.unwrap().subject,
        alice.0
    );

    // A password change revokes the subscriber's live families.
    s.grant_subscriber(GrantWrite {
        project: p.id,
        upsert: upsert(
            12,
            p.id,
            "ALICE@x.com",
            "alice@x.com",
            Some("$argon2id$new"),
        ),
        family: family(23, p.id, PrincipalKind::Subscriber, Uuid::nil()),
        at: t(1002),
    })
    .await
    .expect("password change");
    for n in [20, 21, 22] {
        assert_eq!(
            s.get_family(FamilyId(id(n))).await.unwrap().revoked_at,
            Some(t(1002))
        );
    }
    assert_eq!(
        s.get_family(FamilyId(id(23))).await.unwrap().revoked_at,
        None
    );

    // A new reference whose email another subscriber holds: Conflict("email"), and nothing of
    // the failed grant remains.
    let err = s
        .grant_subscriber(GrantWrite {
            project: p.id,
            upsert: upsert(13, p.id, "bob", "ALICE@X.COM", None),
            family: family(24, p.id, PrincipalKind::Subscriber, Uuid::nil()),
            at: t(1003),
        })
        .await
        .expect_err("email taken");
    assert!(
        matches!(err, StoreError::Conflict(ref c) if c == "email"),
        "{err:?}"
    );
    assert!(matches!(
        s.get_family(FamilyId(id(24))).await,
        Err(StoreError::NotFound)
    ));

    // create_resource: same email → email; a reference taken by another email → reference.
    let err = s
        .create_resource(subscriber(14, p.id, "alice@X.com"))
        .await
        .expect_err("dup");
    assert!(
        matches!(err, StoreError::Conflict(ref c) if c == "email"),
        "{err:?}"
    );
    s.grant_subscriber(GrantWrite {
        project: p.id,
        upsert: upsert(15, p.id, "carol", "carol@x.com", None),
        family: family(25, p.id, PrincipalKind::Subscriber, Uuid::nil()),
        at: t(1004),
    })
    .await
    .expect("carol");
    let err = s
        .create_resource(subscriber(16, p.id, "Carol"))
        .await
        .expect_err("reference taken");
    assert!(
        matches!(err, StoreError::Conflict(ref c) if c == "reference"),
        "{err:?}"
    );

    // update_subscriber to a taken email → email; unknown → NotFound.
    let err = s
        .update_subscriber(SubscriberUpdate {
            project: p.id,
            id: ResourceId(id(15)),
            patch: SubscriberPatch {
                email: Some("ALICE@x.com".into()),
                ..Default::default()
            },
            password_hash: None,
            at: t(1005),
        })
        .await
        .expect_err("taken");
    assert!(
        matches!(err, StoreError::Conflict(ref c) if c == "email"),
        "{err:?}"
    );
    let err = s
        .update_subscriber(SubscriberUpdate {
            project: p.id,
            id: ResourceId(id(99)),
            patch: SubscriberPatch::default(),
            password_hash: None,
            at: t(1005),
        })
        .await
        .expect_err("missing");
    assert!(matches!(err, StoreError::NotFound));

    // One subscriber's reference is another's email: the reference match wins.
    s.grant_subscriber(GrantWrite {
        project: p.id,
        upsert: upsert(18, p.id, "dave", "dave@x.com", None),
        family: family(27, p.id, PrincipalKind::Subscriber, Uuid::nil()),
        at: t(1007),
    })
    .await
    .expect("dave");
    s.update_subscriber(SubscriberUpdate {
        project: p.id,
        id: ResourceId(id(15)),
        patch: SubscriberPatch {
            email: Some("Dave".into()),
            ..Default::default()
        },
        password_hash: None,
        at: t(1007),
    })
    .await
    .expect("carol's email is now dave");
    let who = s
        .grant_subscriber(GrantWrite {
            project: p.id,
            upsert: upsert(19, p.id, "DAVE", "dave@x.com", None),
            family: family(28, p.id, PrincipalKind::Subscriber, Uuid::nil()),
            at: t(1008),
        })
        .await
        .expect("ambiguous grant");
    assert_eq!(who, ResourceId(id(18)));

    // A grant in a project that does not exist: the resource's foreign key → NotFound.
    let other = ProjectId(id(98));
    let err = s
        .grant_subscriber(GrantWrite {
            project: other,
            upsert: upsert(17, other, "dave", "dave@x.com", None),
            family: family(26, other, PrincipalKind::Subscriber, Uuid::nil()),
            at: t(1006),
        })
        .await
        .expect_err("no project");
    assert!(matches!(err, StoreError::NotFound), "{err:?}");
    drop(s);
    guard.drop_now().await;
}

#[tokio::test]
async fn purge_removes_dead_families_sessions_and_old_retired_keys() {
    let base = base_url!();
    let (url, guard) = scratch_schema(&base).await;
    let s = PgStore::connect(&url).await.expect("connect");
    let p = ProjectId(id(1));
    let mut live = family(10, p, PrincipalKind::Guest, id(2));
    live.tokens_expire_at = t(3000);
    let mut spent = family(11, p, PrincipalKind::Guest, id(2));
    spent.tokens_expire_at = t(1500);
    let mut over = family(12, p, PrincipalKind::Guest, id(2));
    over.expires_at = t(1800);
    over.tokens_expire_at = t(2500);
    for f in [&live, &spent, &over] {
        s.create_family(f.clone()).await.expect("family");
    }
    s.insert_key(key("old", KeyPurpose::Access, KeyState::Pending, 10))
        .await
        .unwrap();
    s.insert_key(key("new", KeyPurpose::Access, KeyState::Pending, 20))
        .await
        .unwrap();
    s.retire_key("old", t(100)).await.unwrap();
    s.retire_key("new", t(300)).await.unwrap();
    let op = operator(30, "ops@local", None);
    s.create_operator(op.clone()).await.unwrap();
    for (h, expires) in [(1u8, 1500), (2, 2500)] {
        s.create_operator_session(OperatorSession {
            hash: [h; 32],
            operator_id: op.id,
            created_at: t(1000),
            expires_at: t(expires),
        })
        .await
        .unwrap();
    }

    let counts = s.purge(purge_at(2000, 200, 1000)).await.expect("purge");
    assert_eq!(
        counts,
        PurgeCounts {
            families: 2,
            sessions: 1,
            audit_events: 0,
            keys_destroyed: 1
        }
    );
    assert_eq!(s.count_families().await.unwrap(), 1);
    assert!(s.get_family(live.id).await.is_ok());
    assert!(s.find_operator_session([1; 32]).await.unwrap().is_none());
    assert!(s.find_operator_session([2; 32]).await.unwrap().is_some());
    let keys = s.list_keys().await.unwrap();
    assert_eq!(keys[0].state, KeyState::Destroyed);
    assert!(keys[0].wrapped.is_empty());
    assert_eq!(keys[1].state, KeyState::Retired);
    assert_eq!(
        s.purge(purge_at(2000, 200, 1000)).await.unwrap(),
        PurgeCounts::default()
    );
    drop(s);
    guard.drop_now().await;
}

#[tokio::test]
async fn every_call_is_timed_in_the_shared_metrics() {
    let base = base_url!();
    let (url, guard) = scratch_schema(&base).await;
    let metrics = Arc::new(Metrics::default());
    let s = PgStore::connect(&url)
        .await
        .expect("connect")
        .with_metrics(metrics.clone());
    let _ = s.get_project(ProjectId(id(1))).await;
    let _ = s.count_families().await;
    let _ = s.count_families().await;
    let snap = metrics.store.snapshot();
    let count = |op: &str| {
        snap.iter()
            .find(|(k, _)| *k == op)
            .map(|(_, h)| h.count())
            .unwrap_or(0)
    };
    assert_eq!(count("get_project"), 1, "failed calls are timed too");
    assert_eq!(count("count_families"), 2);
    drop(s);
    guard.drop_now().await;
}

// --- the differential run ---

/// The keys after the script's key life cycle: kid, state and seal count.
const KEYS_AFTER_LIFE_CYCLE: [(&str, KeyState, i64); 4] = [
    ("K0", KeyState::Retired, 0),
    ("k1", KeyState::Destroyed, 0),
    ("k2", KeyState::Active, 8),
    ("s1", KeyState::Active, 2),
];

/// Kid, state and seal count of each key, by kid.
fn key_states(keys: &[StoredKey]) -> Vec<(&str, KeyState, i64)> {
    let mut states: Vec<_> = keys
        .iter()
        .map(|k| (k.kid.as_str(), k.state, k.sealed))
        .collect();
    states.sort_by_key(|k| k.0);
    states
}

/// The ids of a page of resources, in order.
fn resource_ids(page: &PageOf<Resource>) -> Vec<Uuid> {
    page.items.iter().map(|r| r.id.0).collect()
}

/// The actions of audit events, in order.
fn actions(events: &[AuditEvent]) -> Vec<&str> {
    events.iter().map(|e| e.action.as_str()).collect()
}

/// Calls every Store method, including the failing cases, and records each answer. Run
/// against two backends with the same input, the two records must be equal line for line.
async fn script(s: &Stores) -> Vec<String> {
    let mut log = Vec::new();
    macro_rules! rec {
        ($label:expr, $e:expr) => {{
            let r = $e.await;
            log.push(format!("{}: {:?}", $label, r));
            r
        }};
    }
    // Records the answer like `rec!` and asserts that it is the expected one: agreeing is not
    // enough, both backends must also be right.
    macro_rules! check {
        ($label:expr, $e:expr, $($want:tt)+) => {{
            let r = rec!($label, $e);
            assert!(matches!(&r, $($want)+), "{}: {:?}", $label, r);
            r
        }};
    }
    let p1 = project(1, 100);
    let p2 = project(2, 50);
    let missing = ProjectId(id(999));

    // Projects and tokens.
    rec!(
        "project p1",
        s.directory
            .create_project(p1.clone(), token(11, p1.id, 11, 100))
    )
    .unwrap();
    rec!(
        "project p2",
        s.directory
            .create_project(p2.clone(), token(12, p2.id, 12, 50))
    )
    .unwrap();
    let _ = check!(
        "project dup id",
        s.directory
            .create_project(p1.clone(), token(13, p1.id, 13, 100)),
        Err(StoreError::Conflict(_))
    );
    let _ = check!(
        "project token elsewhere",
        s.directory
            .create_project(project(3, 1), token(14, missing, 14, 1)),
        Err(StoreError::NotFound)
    );
    let _ = check!(
        "project p3 absent",
        s.directory.get_project(ProjectId(id(3))),
        Err(StoreError::NotFound)
    );
    let _ = check!(
        "project dup hash",
        s.directory
            .create_project(project(4, 1), token(15, ProjectId(id(4)), 11, 1)),
        Err(StoreError::Conflict(_))
    );
    let _ = check!(
        "get p1",
        s.directory.get_project(p1.id),
        Ok(p) if *p == p1
    );
    let _ = check!(
        "get missing",
        s.directory.get_project(missing),
        Err(StoreError::NotFound)
    );
    let _ = check!(
        "token 2",
        s.directory.create_api_token(token(16, p1.id, 16, 90)),
        Ok(())
    );
    let _ = check!(
        "token dup hash",
        s.directory.create_api_token(token(17, p1.id, 16, 90)),
        Err(StoreError::Conflict(_))
    );
    let _ = check!(
        "token no project",
        s.directory.create_api_token(token(18, missing, 18, 90)),
        Err(StoreError::NotFound)
    );
    let _ = check!(
        "list tokens",
        s.directory.list_api_tokens(p1.id),
        Ok(tokens) if tokens.len() == 2
    );
    let _ = check!(
        "revoke",
        s.directory.revoke_api_token(ApiTokenId(id(16)), t(150)),
        Ok(())
    );
    let _ = check!(
        "revoke again",
        s.directory.revoke_api_token(ApiTokenId(id(16)), t(250)),
        Ok(())
    );
    let _ = check!(
        "revoke missing",
        s.directory.revoke_api_token(ApiTokenId(id(19)), t(250)),
        Err(StoreError::NotFound)
    );
    let _ = check!(
        "find live",
        s.directory.find_api_token(p1.id, [11; 32]),
        Ok(Some(found)) if found.id == ApiTokenId(id(11))
    );
    let _ = check!(
        "find revoked",
        s.directory.find_api_token(p1.id, [16; 32]),
        Ok(None)
    );
    let _ = check!(
        "find other project",
        s.directory.find_api_token(p2.id, [11; 32]),
        Ok(None)
    );
    let _ = check!(
        "list tokens after",
        s.directory.list_api_tokens(p1.id),
        Ok(tokens) if tokens.iter().any(|k| k.id == ApiTokenId(id(16))
            && k.revoked_at == Some(t(150)))
    );

    // Keys.
    let _ = rec!(
        "key k1",
        s.keys
            .insert_key(key("k1", KeyPurpose::Access, KeyState::Active, 10))
    );
    let _ = rec!(
        "key k2",
        s.keys
            .insert_key(key("k2", KeyPurpose::Access, KeyState::Pending, 10))
    );
    let _ = rec!(
        "key K0",
        s.keys
            .insert_key(key("K0", KeyPurpose::Refresh, KeyState::Pending, 10))
    );
    let _ = rec!(
        "key s1",
        s.keys
            .insert_key(key("s1", KeyPurpose::Signing, KeyState::Active, 5))
    );
    let _ = check!(
        "key dup",
        s.keys
            .insert_key(key("k1", KeyPurpose::Refresh, KeyState::Pending, 1)),
        Err(StoreError::Conflict(_))
    );
    let _ = check!("activate k2", s.keys.activate_key("k2", t(20)), Ok(()));
    let _ = check!(
        "activate k2 again",
        s.keys.activate_key("k2", t(21)),
        Err(StoreError::NotFound)
    );
    let _ = check!(
        "activate k1 (retired)",
        s.keys.activate_key("k1", t(21)),
        Err(StoreError::NotFound)
    );
    let _ = check!(
        "activate missing",
        s.keys.activate_key("nope", t(21)),
        Err(StoreError::NotFound)
    );
    let _ = check!("activate K0", s.keys.activate_key("K0", t(22)), Ok(()));
    let _ = check!("retire K0", s.keys.retire_key("K0", t(23)), Ok(()));
    let _ = check!(
        "retire K0 again",
        s.keys.retire_key("K0", t(24)),
        Err(StoreError::NotFound)
    );
    let _ = check!("destroy k1", s.keys.destroy_key("k1"), Ok(()));
    let _ = check!(
        "destroy k1 again",
        s.keys.destroy_key("k1"),
        Err(StoreError::NotFound)
    );
    let _ = check!(
        "destroy missing",
        s.keys.destroy_key("nope"),
        Err(StoreError::NotFound)
    );
    let _ = rec!(
        "seal counts",
        s.keys.add_seal_counts(vec![
            ("k2".into(), 5),
            ("s1".into(), 2),
            ("k2".into(), 3),
            ("nope".into(), 9)
        ])
    );
    let _ = rec!("seal counts empty", s.keys.add_seal_counts(vec![]));
    let _ = check!(
        "list keys",
        s.keys.list_keys(),
        Ok(keys) if key_states(keys) == KEYS_AFTER_LIFE_CYCLE
    );

    // Resources.
    let alice = subscriber(100, p1.id, "Alice@Example.com");
    let _ = rec!("alice", s.directory.create_resource(alice.clone()));
    let _ = rec!(
        "lobby",
        s.directory
            .create_resource(resource(101, p1.id, ResourceKind::Room, "The Lobby", None))
    );
    let _ = rec!(
        "app",
        s.directory
            .create_resource(resource(102, p1.id, ResourceKind::App, "App", None))
    );
    let _ = rec!(
        "p2 room",
        s.directory
            .create_resource(resource(103, p2.id, ResourceKind::Room, "Other", None))
    );
    let _ = check!(
        "dup email",
        s.directory.create_resource(subscriber(104, p1.id, "alice@EXAMPLE.com")),
        Err(StoreError::Conflict(c)) if c == "email"
    );
    let _ = check!(
        "same email other project",
        s.directory
            .create_resource(subscriber(105, p2.id, "alice@example.com")),
        Ok(())
    );
    let _ = check!(
        "dup id",
        s.directory
            .create_resource(resource(101, p1.id, ResourceKind::Room, "Again", None)),
        Err(StoreError::Conflict(_))
    );
    let _ = check!(
        "no project",
        s.directory
            .create_resource(resource(106, missing, ResourceKind::Room, "X", None)),
        Err(StoreError::NotFound)
    );
    let mut with_pw = subscriber(107, p1.id, "pw@example.com");
    with_pw.password_hash = Some("$argon2id$x".into());
    let _ = rec!("with password", s.directory.create_resource(with_pw));
    for n in [100, 101, 102, 103, 104, 107] {
        let _ = rec!(
            format!("get {n} in p1"),
            s.directory.get_resource(p1.id, ResourceId(id(n)))
        );
    }
    let _ = check!(
        "list all",
        s.directory.list_resources(ResourceListing::new(p1.id, None, page(2, None))),
        Ok(page) if resource_ids(page) == [id(100), id(101)] && page.more
    );
    let _ = check!(
        "list after",
        s.directory.list_resources(ResourceListing::new(p1.id, None, page(2, Some(id(101))))),
        Ok(page) if resource_ids(page) == [id(102), id(107)] && !page.more
    );
    let _ = check!(
        "list rooms",
        s.directory.list_resources(ResourceListing::new(p1.id, Some(ResourceKind::Room), page(10, None))),
        Ok(page) if resource_ids(page) == [id(101)] && !page.more
    );
    let _ = check!(
        "list zero",
        s.directory.list_resources(ResourceListing::new(p1.id, None, page(0, None))),
        Ok(page) if page.items.is_empty()
    );
    let _ = check!(
        "update alice",
        s.directory.update_subscriber(SubscriberUpdate {
            project: p1.id,
            id: ResourceId(id(100)),
            patch: SubscriberPatch {
                display_name: Some("Alice A.".into()),
                country: Some("NZ".into()),
                ..Default::default()
            },
            password_hash: None,
            at: t(1200),
        }),
        Ok(r) if r.display_name == "Alice A." && r.updated_at == t(1200)
    );
    let _ = check!(
        "update alice email taken",
        s.directory.update_subscriber(SubscriberUpdate {
            project: p1.id,
            id: ResourceId(id(100)),
            patch: SubscriberPatch {
                email: Some("PW@example.com".into()),
                ..Default::default()
            },
            password_hash: None,
            at: t(1201),
        }),
        Err(StoreError::Conflict(c)) if c == "email"
    );
    let _ = check!(
        "update alice wrong project",
        s.directory.update_subscriber(SubscriberUpdate {
            project: p2.id,
            id: ResourceId(id(100)),
            patch: SubscriberPatch::default(),
            password_hash: None,
            at: t(1202)
        }),
        Err(StoreError::NotFound)
    );
    let _ = check!(
        "update room as subscriber",
        s.directory.update_subscriber(SubscriberUpdate {
            project: p1.id,
            id: ResourceId(id(101)),
            patch: SubscriberPatch::default(),
            password_hash: None,
            at: t(1202)
        }),
        Err(StoreError::NotFound)
    );
    let mut patch = RoomPatch {
        name: Some("lounge".into()),
        display_name: None,
        data: serde_json::Map::new(),
    };
    patch.data.insert("size".into(), serde_json::json!(3));
    patch
        .data
        .insert("new".into(), serde_json::json!({"x": [1, 2]}));
    let _ = check!(
        "update room",
        s.directory.update_room(RoomUpdate {
            project: p1.id,
            id: ResourceId(id(101)),
            kind: ResourceKind::Room,
            patch: patch.clone(),
            at: t(1300),
        }),
        Ok(r) if r.name == "lounge"
            && r.data["size"] == 3
            && r.data.contains_key("tags")
            && r.updated_at == t(1300)
    );
    let _ = check!(
        "update room as app",
        s.directory.update_room(RoomUpdate {
            project: p1.id,
            id: ResourceId(id(101)),
            kind: ResourceKind::App,
            patch: patch.clone(),
            at: t(1301)
        }),
        Err(StoreError::NotFound)
    );
    let _ = check!(
        "update room other project",
        s.directory.update_room(RoomUpdate {
            project: p2.id,
            id: ResourceId(id(101)),
            kind: ResourceKind::Room,
            patch,
            at: t(1301)
        }),
        Err(StoreError::NotFound)
    );
    let _ = rec!(
        "get room",
        s.directory.get_resource(p1.id, ResourceId(id(101)))
    );

    // Addresses.
    let a = |n: u128| AddressId(id(n + 0x10_0000));
    let _ = check!(
        "address",
        s.directory.get_address(p1.id, a(101)),
        Ok(found) if found.name == "lounge" && found.resource_id == ResourceId(id(101))
    );
    let _ = check!(
        "address other project",
        s.directory.get_address(p2.id, a(101)),
        Err(StoreError::NotFound)
    );
    let q = |kind, display_name: Option<&str>, resource_id, visible_to| AddressQuery {
        kind,
        display_name: display_name.map(str::to_string),
        resource_id,
        visible_to,
    };
    let _ = rec!(
        "addresses all",
        s.directory
            .list_addresses(p1.id, q(None, None, None, None), page(10, None))
    );
    let _ = rec!(
        "addresses paged",
        s.directory
            .list_addresses(p1.id, q(None, None, None, None), page(1, Some(a(100).0)))
    );
    let _ = rec!(
        "addresses rooms",
        s.directory.list_addresses(
            p1.id,
            q(Some(ResourceKind::Room), None, None, None),
            page(10, None)
        )
    );
    let _ = check!(
        "addresses by name",
        s.directory.list_addresses(p1.id, q(None, Some("App"), None, None), page(10, None)),
        Ok(page) if page.items.len() == 1 && page.items[0].id == a(102)
    );
    let _ = check!(
        "addresses of",
        s.directory.list_addresses(
            p1.id,
            q(None, None, Some(ResourceId(id(100))), None),
            page(10, None)
        ),
        Ok(page) if page.items.len() == 1 && page.items[0].id == a(100)
    );
    let _ = rec!(
        "addresses visible",
        s.directory.list_addresses(
            p1.id,
            q(None, None, None, Some(ResourceId(id(107)))),
            page(10, None)
        )
    );
    let _ = check!(
        "existing",
        s.directory.existing_addresses(p1.id, &[a(102), a(103), a(100), a(999), a(102)]),
        Ok(ids) if *ids == [a(102), a(100), a(102)]
    );
    let _ = check!(
        "existing none",
        s.directory.existing_addresses(p1.id, &[]),
        Ok(ids) if ids.is_empty()
    );

    // Grants and families.
    let f = |n| family(n, p1.id, PrincipalKind::Subscriber, Uuid::nil());
    let _ = check!(
        "grant new",
        s.families.grant_subscriber(GrantWrite {
            project: p1.id,
            upsert: upsert(200, p1.id, "Carol@Example.com", "carol@example.com", None),
            family: f(300),
            at: t(1400),
        }),
        Ok(r) if *r == ResourceId(id(200))
    );
    let _ = check!(
        "grant same ref",
        s.families.grant_subscriber(GrantWrite {
            project: p1.id,
            upsert: upsert(201, p1.id, "CAROL@example.com", "Carol@Example.com", None),
            family: f(301),
            at: t(1401),
        }),
        Ok(r) if *r == ResourceId(id(200))
    );
    let _ = check!(
        "grant by email",
        s.families.grant_subscriber(GrantWrite {
            project: p1.id,
            upsert: upsert(202, p1.id, "alice@example.COM", "alice@example.com", None),
            family: f(302),
            at: t(1402),
        }),
        Ok(r) if *r == ResourceId(id(100))
    );
    let _ = check!(
        "grant by id",
        s.families.grant_subscriber(GrantWrite {
            project: p1.id,
            upsert: upsert(203, p1.id, &id(107).to_string(), "pw@example.com", None),
            family: f(303),
            at: t(1403),
        }),
        Ok(r) if *r == ResourceId(id(107))
    );
    let _ = check!(
        "grant by id uppercase",
        s.families.grant_subscriber(GrantWrite { project: p1.id, upsert: upsert(
                204,
                p1.id,
                &id(107).to_string().to_uppercase(),
                "pw@example.com",
                None
            ), family: f(304), at: t(1404) }),
        Ok(r) if *r == ResourceId(id(107))
    );
    // dave's reference is erin's email: the reference match must win.
    let _ = check!(
        "grant dave",
        s.families.grant_subscriber(GrantWrite {
            project: p1.id,
            upsert: upsert(205, p1.id, "dave", "dave@example.com", None),
            family: f(305),
            at: t(1405),
        }),
        Ok(r) if *r == ResourceId(id(205))
    );
    let _ = check!(
        "grant erin",
        s.families.grant_subscriber(GrantWrite {
            project: p1.id,
            upsert: upsert(206, p1.id, "erin@example.com", "erin@example.com", None),
            family: f(306),
            at: t(1406),
        }),
        Ok(r) if *r == ResourceId(id(206))
    );
    let _ = rec!(
        "erin takes email dave",
        s.directory.update_subscriber(SubscriberUpdate {
            project: p1.id,
            id: ResourceId(id(206)),
            patch: SubscriberPatch {
                email: Some("DAVE".into()),
                ..Default::default()
            },
            password_hash: None,
            at: t(1407)
        })
    );
    // Granting "Dave" now matches dave by reference and erin by email. That case is not
    // replayed: SQLite's `LIMIT 1` without ORDER BY answers whichever row its query plan meets
    // first (today the smallest email_key: erin). PostgreSQL prefers the reference match; see
    // `subscriber_upserts_and_their_conflicts`.
    let _ = check!(
        "grant email taken",
        s.families.grant_subscriber(GrantWrite {
            project: p1.id,
            upsert: upsert(208, p1.id, "frank", "CAROL@example.com", None),
            family: f(308),
            at: t(1409),
        }),
        Err(StoreError::Conflict(c)) if c == "email"
    );
    let _ = check!(
        "grant reference taken",
        s.families.grant_subscriber(GrantWrite {
            project: p1.id,
            upsert: upsert(209, p1.id, "george", "george@example.com", None),
            family: f(309),
            at: t(1410),
        }),
        Ok(r) if *r == ResourceId(id(209))
    );
    let _ = check!(
        "grant ref is other's ref",
        s.directory.create_resource(subscriber(210, p1.id, "GEORGE")),
        Err(StoreError::Conflict(c)) if c == "reference"
    );
    let _ = check!(
        "grant dup family",
        s.families.grant_subscriber(GrantWrite {
            project: p1.id,
            upsert: upsert(211, p1.id, "harry", "harry@example.com", None),
            family: f(300),
            at: t(1411)
        }),
        Err(StoreError::Conflict(_))
    );
    let _ = check!(
        "harry absent",
        s.directory.get_resource(p1.id, ResourceId(id(211))),
        Err(StoreError::NotFound)
    );
    let _ = check!(
        "grant password",
        s.families.grant_subscriber(GrantWrite { project: p1.id, upsert: upsert(
                212,
                p1.id,
                "carol@example.com",
                "carol@example.com",
                Some("$argon2id$pw")
            ), family: f(310), at: t(1412) }),
        Ok(r) if *r == ResourceId(id(200))
    );
    let _ = check!(
        "grant no project",
        s.families.grant_subscriber(GrantWrite {
            project: missing,
            upsert: upsert(213, missing, "ivy", "ivy@example.com", None),
            family: family(311, missing, PrincipalKind::Subscriber, Uuid::nil()),
            at: t(1413)
        }),
        Err(StoreError::NotFound)
    );
    let mut granted = std::collections::BTreeMap::new();
    for n in 300..=311 {
        let r = rec!(
            format!("family {n}"),
            s.families.get_family(FamilyId(id(n)))
        );
        granted.insert(n, r.ok().map(|f| (f.subject, f.revoked_at)));
    }
    // Each successful grant opened its family for its subscriber; the refused ones opened
    // none; setting carol's password revoked her earlier families, not the one it opened.
    let carol = id(200);
    assert_eq!(granted[&300], Some((carol, Some(t(1412)))));
    assert_eq!(granted[&301], Some((carol, Some(t(1412)))));
    assert_eq!(granted[&302], Some((id(100), None)));
    assert_eq!(granted[&303], Some((id(107), None)));
    assert_eq!(granted[&309], Some((id(209), None)));
    assert_eq!(granted[&310], Some((carol, None)));
    for refused in [307, 308, 311] {
        assert_eq!(granted[&refused], None, "family {refused}");
    }
    for n in [200, 205, 206, 207, 209, 210] {
        let _ = rec!(
            format!("subscriber {n}"),
            s.directory.get_resource(p1.id, ResourceId(id(n)))
        );
    }
    let _ = rec!(
        "subscribers",
        s.directory.list_resources(ResourceListing::new(
            p1.id,
            Some(ResourceKind::Subscriber),
            page(50, None)
        ))
    );

    let g = family(400, p1.id, PrincipalKind::Guest, id(401));
    let _ = check!("guest family", s.families.create_family(g.clone()), Ok(()));
    let _ = check!(
        "guest family dup",
        s.families.create_family(g.clone()),
        Err(StoreError::Conflict(_))
    );
    let _ = rec!(
        "family no project",
        s.families
            .create_family(family(402, missing, PrincipalKind::Embed, id(1)))
    );
    let _ = check!(
        "rotate 1",
        s.families.rotate_family(Rotation {
            project: p1.id,
            id: g.id,
            generation: 1,
            at: t(1500),
            tokens_expire_at: t(9000),
        }),
        Ok(RotateOutcome::Rotated(f)) if f.generation == 2
            && f.rotated_at == Some(t(1500))
            && f.tokens_expire_at == t(5000)
    );
    let _ = check!(
        "rotate 1 again",
        s.families.rotate_family(Rotation {
            project: p1.id,
            id: g.id,
            generation: 1,
            at: t(1501),
            tokens_expire_at: t(9000),
        }),
        Ok(RotateOutcome::Stale(f)) if f.generation == 2
    );
    let _ = check!(
        "rotate 2",
        s.families.rotate_family(Rotation {
            project: p1.id,
            id: g.id,
            generation: 2,
            at: t(1502),
            tokens_expire_at: t(2500),
        }),
        Ok(RotateOutcome::Rotated(f)) if f.generation == 3 && f.tokens_expire_at == t(2500)
    );
    let _ = check!(
        "rotate future gen",
        s.families.rotate_family(Rotation {
            project: p1.id,
            id: g.id,
            generation: 7,
            at: t(1503),
            tokens_expire_at: t(2500),
        }),
        Ok(RotateOutcome::Stale(f)) if f.generation == 3
    );
    let _ = check!(
        "rotate wrong project",
        s.families.rotate_family(Rotation {
            project: p2.id,
            id: g.id,
            generation: 3,
            at: t(1503),
            tokens_expire_at: t(2500)
        }),
        Ok(RotateOutcome::NotFound)
    );
    let _ = check!(
        "rotate missing",
        s.families.rotate_family(Rotation {
            project: p1.id,
            id: FamilyId(id(499)),
            generation: 1,
            at: t(1503),
            tokens_expire_at: t(2500)
        }),
        Ok(RotateOutcome::NotFound)
    );
    let _ = check!(
        "rotate at expiry",
        s.families.rotate_family(Rotation {
            project: p1.id,
            id: g.id,
            generation: 3,
            at: t(5000),
            tokens_expire_at: t(6000)
        }),
        Ok(RotateOutcome::Dead)
    );
    let _ = check!(
        "rotate stale at expiry",
        s.families.rotate_family(Rotation {
            project: p1.id,
            id: g.id,
            generation: 2,
            at: t(5000),
            tokens_expire_at: t(6000)
        }),
        Ok(RotateOutcome::Dead)
    );
    let _ = check!(
        "revoke guest",
        s.families.revoke_family(g.id, t(1600)),
        Ok(())
    );
    let _ = check!(
        "revoke guest again",
        s.families.revoke_family(g.id, t(1700)),
        Ok(())
    );
    let _ = check!(
        "revoke missing",
        s.families.revoke_family(FamilyId(id(499)), t(1700)),
        Ok(())
    );
    let _ = check!(
        "rotate revoked",
        s.families.rotate_family(Rotation {
            project: p1.id,
            id: g.id,
            generation: 3,
            at: t(1800),
            tokens_expire_at: t(2500)
        }),
        Ok(RotateOutcome::Dead)
    );
    let _ = check!(
        "get guest",
        s.families.get_family(g.id),
        Ok(f) if f.generation == 3 && f.revoked_at == Some(t(1600))
    );
    let _ = check!("count families", s.families.count_families(), Ok(11));

    // Deleting resources.
    let _ = check!(
        "delete carol as room",
        s.directory.delete_resource(ResourceDeletion {
            project: p1.id,
            id: ResourceId(id(200)),
            kind: ResourceKind::Room,
            at: t(1900)
        }),
        Err(StoreError::NotFound)
    );
    let _ = check!(
        "delete carol",
        s.directory.delete_resource(ResourceDeletion {
            project: p1.id,
            id: ResourceId(id(200)),
            kind: ResourceKind::Subscriber,
            at: t(1900)
        }),
        Ok(())
    );
    let _ = check!(
        "delete carol again",
        s.directory.delete_resource(ResourceDeletion {
            project: p1.id,
            id: ResourceId(id(200)),
            kind: ResourceKind::Subscriber,
            at: t(1901)
        }),
        Err(StoreError::NotFound)
    );
    let _ = check!(
        "carol's families",
        s.families.get_family(FamilyId(id(310))),
        Ok(f) if f.revoked_at == Some(t(1900))
    );
    let _ = check!(
        "delete app",
        s.directory.delete_resource(ResourceDeletion {
            project: p1.id,
            id: ResourceId(id(102)),
            kind: ResourceKind::App,
            at: t(1902)
        }),
        Ok(())
    );
    let _ = check!(
        "app address",
        s.directory.get_address(p1.id, a(102)),
        Err(StoreError::NotFound)
    );

    // Audit.
    let ev = |at: i64, project: Option<ProjectId>, action: &str| {
        let mut detail = serde_json::Map::new();
        detail.insert("n".into(), serde_json::json!(at));
        AuditEvent {
            at: t(at),
            project_id: project,
            action: action.into(),
            actor: "system".into(),
            subject: format!("s{at}"),
            detail,
        }
    };
    let _ = rec!(
        "audit batch",
        s.audit.append_audit(vec![
            ev(10, Some(p1.id), "a"),
            ev(30, None, "b"),
            ev(20, Some(p2.id), "c"),
            ev(20, Some(p1.id), "d"),
        ])
    );
    let _ = rec!(
        "audit batch 2",
        s.audit
            .append_audit(vec![ev(5, Some(p1.id), "e"), ev(40, Some(p1.id), "f")])
    );
    let _ = rec!("audit empty", s.audit.append_audit(vec![]));
    let _ = check!(
        "audit all",
        s.audit.audit_events(
            AuditFilter { project: None, since: t(0) },
            AuditPage { offset: 0, limit: 100 }
        ),
        Ok(events) if actions(events) == ["a", "b", "c", "d", "e", "f"]
    );
    let _ = check!(
        "audit since",
        s.audit.audit_events(
            AuditFilter { project: None, since: t(20) },
            AuditPage { offset: 0, limit: 100 }
        ),
        Ok(events) if actions(events) == ["b", "c", "d", "f"]
    );
    let _ = check!(
        "audit p1 page",
        s.audit.audit_events(
            AuditFilter { project: Some(p1.id), since: t(10) },
            AuditPage { offset: 1, limit: 2 }
        ),
        Ok(events) if actions(events) == ["d", "f"]
    );
    let _ = check!(
        "audit huge offset",
        s.audit.audit_events(
            AuditFilter { project: None, since: t(0) },
            AuditPage { offset: u64::MAX, limit: 2 }
        ),
        Ok(events) if events.is_empty()
    );
    let _ = check!(
        "audit count",
        s.audit.count_audit_events(AuditFilter {
            project: None,
            since: t(0)
        }),
        Ok(6)
    );
    let _ = check!(
        "audit count p1",
        s.audit.count_audit_events(AuditFilter {
            project: Some(p1.id),
            since: t(15)
        }),
        Ok(2)
    );

    // Operators.
    let alice_op = operator(500, "Alice@Local", None);
    let svc = operator(501, "svc@local", Some(7));
    let _ = rec!("op alice", s.operators.create_operator(alice_op.clone()));
    let _ = rec!("op svc", s.operators.create_operator(svc.clone()));
    let _ = check!(
        "op dup name",
        s.operators.create_operator(operator(502, "ALICE@local", None)),
        Err(StoreError::Conflict(c)) if c == "username"
    );
    let _ = check!(
        "op dup key",
        s.operators
            .create_operator(operator(503, "other@local", Some(7))),
        Err(StoreError::Conflict(_))
    );
    let _ = check!(
        "op dup id",
        s.operators
            .create_operator(operator(500, "third@local", None)),
        Err(StoreError::Conflict(_))
    );
    let _ = check!(
        "get op",
        s.operators.get_operator(alice_op.id),
        Ok(o) if *o == alice_op
    );
    let _ = check!(
        "get op missing",
        s.operators.get_operator(OperatorId(id(599))),
        Err(StoreError::NotFound)
    );
    let _ = check!(
        "find op",
        s.operators.find_operator("alice@LOCAL"),
        Ok(Some(o)) if o.id == alice_op.id
    );
    let _ = check!(
        "find op missing",
        s.operators.find_operator("bob@local"),
        Ok(None)
    );
    let _ = check!(
        "find op by key",
        s.operators.find_operator_by_key([7; 32]),
        Ok(Some(o)) if o.id == svc.id
    );
    let _ = check!(
        "find op by bad key",
        s.operators.find_operator_by_key([8; 32]),
        Ok(None)
    );
    let _ = check!(
        "list ops",
        s.operators.list_operators(),
        Ok(ops) if ops.len() == 2
    );
    let session = |h: u8, op: OperatorId| OperatorSession {
        hash: [h; 32],
        operator_id: op,
        created_at: t(100),
        expires_at: t(200),
    };
    let _ = rec!(
        "session",
        s.operators.create_operator_session(session(1, alice_op.id))
    );
    let _ = rec!(
        "session 2",
        s.operators.create_operator_session(session(2, alice_op.id))
    );
    let _ = rec!(
        "session svc",
        s.operators.create_operator_session(session(3, svc.id))
    );
    let _ = check!(
        "session dup",
        s.operators.create_operator_session(session(1, svc.id)),
        Err(StoreError::Conflict(_))
    );
    let _ = check!(
        "session no operator",
        s.operators
            .create_operator_session(session(4, OperatorId(id(599)))),
        Err(StoreError::NotFound)
    );
    let _ = check!(
        "find session",
        s.operators.find_operator_session([1; 32]),
        Ok(Some(found)) if found.operator_id == alice_op.id
    );
    let _ = check!(
        "delete session",
        s.operators.delete_operator_session([2; 32]),
        Ok(())
    );
    let _ = check!(
        "delete session again",
        s.operators.delete_operator_session([2; 32]),
        Ok(())
    );
    let _ = check!(
        "find deleted session",
        s.operators.find_operator_session([2; 32]),
        Ok(None)
    );
    let _ = check!(
        "promote",
        s.operators.update_operator(
            alice_op.id,
            OperatorPatch {
                disabled: None,
                role: Some(Role::Admin)
            }
        ),
        Ok(o) if o.role == Role::Admin && !o.disabled
    );
    let _ = check!(
        "session kept",
        s.operators.find_operator_session([1; 32]),
        Ok(Some(_))
    );
    let _ = check!(
        "disable",
        s.operators.update_operator(
            alice_op.id,
            OperatorPatch {
                disabled: Some(true),
                role: None
            }
        ),
        Ok(o) if o.disabled
    );
    let _ = check!(
        "session gone",
        s.operators.find_operator_session([1; 32]),
        Ok(None)
    );
    let _ = check!(
        "enable",
        s.operators.update_operator(
            alice_op.id,
            OperatorPatch {
                disabled: Some(false),
                role: None
            }
        ),
        Ok(o) if !o.disabled
    );
    let _ = check!(
        "update missing op",
        s.operators
            .update_operator(OperatorId(id(599)), OperatorPatch::default()),
        Err(StoreError::NotFound)
    );
    let _ = rec!(
        "password",
        s.operators
            .set_operator_password(alice_op.id, "$argon2id$new".into())
    );
    let _ = rec!(
        "password missing op",
        s.operators
            .set_operator_password(OperatorId(id(599)), "$argon2id$x".into())
    );
    let _ = check!(
        "op after",
        async {
        s.operators.get_operator(alice_op.id).await.map(|o| o.password_hash)
    },
        Ok(Some(h)) if h == "$argon2id$new"
    );
    let _ = check!("delete svc", s.operators.delete_operator(svc.id), Ok(()));
    let _ = check!(
        "delete svc again",
        s.operators.delete_operator(svc.id),
        Err(StoreError::NotFound)
    );
    let _ = check!(
        "svc session gone",
        s.operators.find_operator_session([3; 32]),
        Ok(None)
    );

    // Embeds.
    let embed = Embed {
        id: EmbedId(id(600)),
        project_id: p1.id,
        token_hash: [60; 32],
        addresses: vec![a(101), a(100)],
        enabled: true,
        created_at: t(100),
    };
    let _ = rec!("embed", s.directory.create_embed(embed.clone()));
    let _ = check!(
        "embed dup hash",
        s.directory.create_embed(Embed {
            id: EmbedId(id(601)),
            ..embed.clone()
        }),
        Err(StoreError::Conflict(_))
    );
    let _ = check!(
        "embed no project",
        s.directory.create_embed(Embed {
            id: EmbedId(id(602)),
            token_hash: [62; 32],
            project_id: missing,
            ..embed.clone()
        }),
        Err(StoreError::NotFound)
    );
    let _ = check!(
        "embed empty",
        s.directory.create_embed(Embed {
            id: EmbedId(id(603)),
            token_hash: [63; 32],
            addresses: vec![],
            enabled: false,
            ..embed.clone()
        }),
        Ok(())
    );
    let _ = check!(
        "find embed",
        s.directory.find_embed([60; 32]),
        Ok(Some(found)) if found.id == embed.id && found.addresses == embed.addresses
    );
    let _ = check!(
        "find embed empty",
        s.directory.find_embed([63; 32]),
        Ok(Some(found)) if found.addresses.is_empty() && !found.enabled
    );
    let _ = check!(
        "find embed missing",
        s.directory.find_embed([61; 32]),
        Ok(None)
    );

    // Purge, then the project goes.
    let _ = check!(
        "purge",
        s.families.purge(purge_at(1700, 22, 1000)),
        Ok(c) if c.families == 10 && c.keys_destroyed == 0
    );
    let _ = check!(
        "purge more",
        s.families.purge(purge_at(5001, 1000, 1000)),
        Ok(c) if c.families == 1 && c.keys_destroyed == 1
    );
    let _ = rec!("keys after purge", s.keys.list_keys());
    let _ = check!("families after purge", s.families.count_families(), Ok(0));
    let _ = rec!(
        "family for p1",
        s.families
            .create_family(family(700, p1.id, PrincipalKind::Guest, id(1)))
    );
    let _ = rec!(
        "family for p2",
        s.families
            .create_family(family(701, p2.id, PrincipalKind::Guest, id(1)))
    );
    let _ = rec!("list projects", s.directory.list_projects());
    let _ = check!("delete p1", s.directory.delete_project(p1.id), Ok(()));
    let _ = check!(
        "delete p1 again",
        s.directory.delete_project(p1.id),
        Err(StoreError::NotFound)
    );
    let _ = check!(
        "delete missing",
        s.directory.delete_project(missing),
        Err(StoreError::NotFound)
    );
    let _ = check!(
        "p1 gone",
        s.directory.get_project(p1.id),
        Err(StoreError::NotFound)
    );
    let _ = check!(
        "p1 token gone",
        s.directory.find_api_token(p1.id, [11; 32]),
        Ok(None)
    );
    let _ = check!(
        "p1 resource gone",
        s.directory.get_resource(p1.id, ResourceId(id(101))),
        Err(StoreError::NotFound)
    );
    let _ = check!("p1 embed gone", s.directory.find_embed([60; 32]), Ok(None));
    let _ = check!(
        "p1 family gone",
        s.families.get_family(FamilyId(id(700))),
        Err(StoreError::NotFound)
    );
    let _ = check!(
        "p2 family kept",
        s.families.get_family(FamilyId(id(701))),
        Ok(f) if f.project_id == p2.id
    );
    let _ = check!("families at end", s.families.count_families(), Ok(1));
    let _ = check!(
        "projects at end",
        s.directory.list_projects(),
        Ok(projects) if *projects == [p2.clone()]
    );
    let _ = check!(
        "p2 resources",
        s.directory.list_resources(ResourceListing::new(p2.id, None, page(10, None))),
        Ok(page) if resource_ids(page) == [id(103), id(105)]
    );
    let _ = check!(
        "audit kept",
        s.audit.count_audit_events(AuditFilter {
            project: Some(p1.id),
            since: t(0)
        }),
        Ok(4)
    );
    log
}

#[tokio::test]
async fn answers_exactly_as_the_sqlite_store_does() {
    let base = base_url!();
    let (url, guard) = scratch_schema(&base).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let sqlite = tessera_store_sqlite::SqliteStore::open(dir.path().join("t.db")).expect("sqlite");
    let pg = PgStore::connect(&url).await.expect("postgres");
    let want = script(&Stores::from_backend(Arc::new(sqlite))).await;
    let got = script(&Stores::from_backend(Arc::new(pg))).await;
    assert_eq!(want.len(), got.len());
    let mut diffs = 0;
    for (w, g) in want.iter().zip(&got) {
        if w != g {
            diffs += 1;
            eprintln!("SQLite:     {w}\nPostgreSQL: {g}\n");
        }
    }
    assert!(
        !got.iter().any(|l| l.contains("Unavailable")),
        "a store failed: {got:#?}"
    );
    assert_eq!(diffs, 0, "{diffs} of {} answers differ (above)", want.len());
    guard.drop_now().await;
}
