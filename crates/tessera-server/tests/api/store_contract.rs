//! One storage contract, run against every backend: what the token service relies on from a
//! `Store`, called directly (the HTTP tests cover the rest through the real app).
//!
//! PostgreSQL runs when `TESSERA_TEST_POSTGRES_URL` is set (CI sets it), in a scratch schema
//! that is dropped afterwards; without it the test says SKIP and passes.

use std::sync::Arc;

use tessera_core::crypto::MasterKey;
use tessera_core::ids::{ApiTokenId, FamilyId, OperatorId, ProjectId};
use tessera_core::maintenance::pending_key;
use tessera_core::model::*;
use tessera_core::store::{Store, StoreError};
use tessera_core::token::{KeyPurpose, KeyState, PrincipalKind};
use tessera_core::{ManualClock, UnixTime};
use uuid::Uuid;

use crate::helpers::START;

fn project() -> (Project, ApiToken) {
    let p = Project {
        id: ProjectId::random(),
        name: "contract".into(),
        created_at: START,
    };
    let t = ApiToken {
        id: ApiTokenId::random(),
        project_id: p.id,
        name: "default".into(),
        hash: rand_hash(),
        created_at: START,
        revoked_at: None,
    };
    (p, t)
}

fn rand_hash() -> [u8; 32] {
    tessera_core::crypto::random_bytes::<32>()
}

fn family(project: ProjectId, kind: PrincipalKind) -> Family {
    Family {
        id: FamilyId::random(),
        project_id: project,
        kind,
        subject: Uuid::new_v4(),
        generation: 1,
        created_at: START,
        expires_at: START.plus(3600),
        tokens_expire_at: START.plus(600),
        rotated_at: None,
        revoked_at: None,
    }
}

fn upsert(
    clock: &ManualClock,
    project: ProjectId,
    reference: &str,
    email: &str,
) -> SubscriberUpsert {
    let profile = SubscriberProfile {
        email: email.into(),
        ..Default::default()
    };
    SubscriberUpsert {
        reference: reference.into(),
        patch: SubscriberPatch {
            email: Some(email.into()),
            ..Default::default()
        },
        password_hash: None,
        create: NewResource::build(
            clock,
            project,
            ResourceKind::Subscriber,
            email,
            String::new(),
            Some(profile),
            Default::default(),
        ),
    }
}

/// Projects, API tokens and their hashes.
async fn projects_and_tokens(s: &dyn Store) {
    let (p, t) = project();
    s.create_project(p.clone(), t.clone()).await.unwrap();
    assert_eq!(s.get_project(p.id).await.unwrap(), p);
    assert!(s.list_projects().await.unwrap().contains(&p));
    let found = s.find_api_token(p.id, t.hash).await.unwrap();
    assert_eq!(found.as_ref().map(|x| x.id), Some(t.id));
    s.revoke_api_token(t.id, START.plus(1)).await.unwrap();
    let listed = s.list_api_tokens(p.id).await.unwrap();
    assert_eq!(listed[0].revoked_at, Some(START.plus(1)));
    assert!(matches!(
        s.revoke_api_token(ApiTokenId::random(), START).await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        s.get_project(ProjectId::random()).await,
        Err(StoreError::NotFound)
    ));
}

/// Refresh rotation: one conditional update decides every race.
async fn rotation(s: Arc<dyn Store>) {
    let (p, t) = project();
    s.create_project(p.clone(), t).await.unwrap();
    let f = family(p.id, PrincipalKind::Guest);
    s.create_family(f.clone()).await.unwrap();
    assert_eq!(s.get_family(f.id).await.unwrap(), f);
    let now = START.plus(10);
    match s
        .rotate_family(p.id, f.id, 1, now, now.plus(600))
        .await
        .unwrap()
    {
        RotateOutcome::Rotated(n) => {
            assert_eq!(n.generation, 2);
            assert_eq!(n.rotated_at, Some(now));
            assert_eq!(n.tokens_expire_at, now.plus(600));
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        s.rotate_family(p.id, f.id, 1, now, now).await.unwrap(),
        RotateOutcome::Stale(n) if n.generation == 2
    ));
    // Another project cannot spend it.
    assert_eq!(
        s.rotate_family(ProjectId::random(), f.id, 2, now, now)
            .await
            .unwrap(),
        RotateOutcome::NotFound
    );
    // Of many concurrent spends of one generation, exactly one wins.
    let mut tasks = Vec::new();
    for _ in 0..32 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            s.rotate_family(p.id, f.id, 2, now, now.plus(600))
                .await
                .unwrap()
        }));
    }
    let mut won = 0;
    for t in tasks {
        if matches!(t.await.unwrap(), RotateOutcome::Rotated(_)) {
            won += 1;
        }
    }
    assert_eq!(won, 1);
    s.revoke_family(f.id, now).await.unwrap();
    assert_eq!(
        s.rotate_family(p.id, f.id, 3, now, now).await.unwrap(),
        RotateOutcome::Dead
    );
    assert_eq!(
        s.rotate_family(p.id, FamilyId::random(), 1, now, now)
            .await
            .unwrap(),
        RotateOutcome::NotFound
    );
}

/// Subscribers are upserted by reference (case-insensitively); emails are unique per project.
async fn subscribers(s: &dyn Store) {
    let clock = ManualClock::new(START);
    let (p, t) = project();
    s.create_project(p.clone(), t).await.unwrap();
    let a = s
        .grant_subscriber(
            p.id,
            upsert(&clock, p.id, "Alice", "a@x.io"),
            family(p.id, PrincipalKind::Subscriber),
            START,
        )
        .await
        .unwrap();
    let again = s
        .grant_subscriber(
            p.id,
            upsert(&clock, p.id, "alice", "a@x.io"),
            family(p.id, PrincipalKind::Subscriber),
            START,
        )
        .await
        .unwrap();
    assert_eq!(a, again);
    s.grant_subscriber(
        p.id,
        upsert(&clock, p.id, "bob", "b@x.io"),
        family(p.id, PrincipalKind::Subscriber),
        START,
    )
    .await
    .unwrap();
    let taken = s
        .grant_subscriber(
            p.id,
            upsert(&clock, p.id, "carol", "A@X.io"),
            family(p.id, PrincipalKind::Subscriber),
            START,
        )
        .await;
    assert!(
        matches!(taken, Err(StoreError::Conflict(ref c)) if c == "email"),
        "{taken:?}"
    );
    // A password change revokes the subscriber's families.
    let fam = family(p.id, PrincipalKind::Subscriber);
    let fam_id = fam.id;
    s.grant_subscriber(p.id, upsert(&clock, p.id, "alice", "a@x.io"), fam, START)
        .await
        .unwrap();
    let mut pw = upsert(&clock, p.id, "alice", "a@x.io");
    pw.password_hash = Some("$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".into());
    s.grant_subscriber(
        p.id,
        pw,
        family(p.id, PrincipalKind::Subscriber),
        START.plus(5),
    )
    .await
    .unwrap();
    assert!(s.get_family(fam_id).await.unwrap().revoked_at.is_some());
    // Another project sees none of it.
    assert!(matches!(
        s.get_resource(ProjectId::random(), a).await,
        Err(StoreError::NotFound)
    ));
}

/// Keys: activation retires the previous key of the purpose; seal counts add up.
async fn keys(s: &dyn Store) {
    let (master, _) = MasterKey::generate();
    let first = pending_key(&master, KeyPurpose::Refresh, START);
    let second = pending_key(&master, KeyPurpose::Refresh, START);
    s.insert_key(first.clone()).await.unwrap();
    s.insert_key(second.clone()).await.unwrap();
    s.activate_key(&first.kid, START).await.unwrap();
    s.activate_key(&second.kid, START.plus(1)).await.unwrap();
    s.add_seal_counts(vec![(second.kid.clone(), 3), (second.kid.clone(), 4)])
        .await
        .unwrap();
    let all = s.list_keys().await.unwrap();
    let get = |kid: &str| all.iter().find(|k| k.kid == kid).unwrap().clone();
    assert_eq!(get(&first.kid).state, KeyState::Retired);
    assert_eq!(get(&second.kid).state, KeyState::Active);
    assert_eq!(get(&second.kid).sealed, 7);
    s.destroy_key(&first.kid).await.unwrap();
    let destroyed = s
        .list_keys()
        .await
        .unwrap()
        .into_iter()
        .find(|k| k.kid == first.kid)
        .unwrap();
    assert_eq!(destroyed.state, KeyState::Destroyed);
    assert!(destroyed.wrapped.is_empty());
}

/// Operators and their sessions.
async fn operators(s: &dyn Store) {
    let op = Operator {
        id: OperatorId::random(),
        username: format!("Admin-{}@Local", Uuid::new_v4()),
        domain: None,
        kind: OperatorKind::Service,
        role: Role::Admin,
        password_hash: None,
        api_key_hash: Some(rand_hash()),
        disabled: false,
        created_at: START,
    };
    s.create_operator(op.clone()).await.unwrap();
    let mut twin = op.clone();
    twin.id = OperatorId::random();
    twin.username = op.username.to_uppercase();
    twin.api_key_hash = None;
    assert!(matches!(
        s.create_operator(twin).await,
        Err(StoreError::Conflict(ref c)) if c == "username"
    ));
    assert_eq!(
        s.find_operator(&op.username.to_lowercase()).await.unwrap(),
        Some(op.clone())
    );
    assert_eq!(
        s.find_operator_by_key(op.api_key_hash.unwrap())
            .await
            .unwrap(),
        Some(op.clone())
    );
    let session = OperatorSession {
        hash: rand_hash(),
        operator_id: op.id,
        created_at: START,
        expires_at: START.plus(86_400),
    };
    s.create_operator_session(session.clone()).await.unwrap();
    assert_eq!(
        s.find_operator_session(session.hash).await.unwrap(),
        Some(session.clone())
    );
    let changed = s
        .update_operator(
            op.id,
            OperatorPatch {
                disabled: Some(true),
                role: Some(Role::Viewer),
            },
        )
        .await
        .unwrap();
    assert!(changed.disabled);
    assert_eq!(changed.role, Role::Viewer);
    assert_eq!(s.find_operator_session(session.hash).await.unwrap(), None);
    s.create_operator_session(session.clone()).await.unwrap();
    s.delete_operator(op.id).await.unwrap();
    assert_eq!(s.find_operator_session(session.hash).await.unwrap(), None);
    assert!(matches!(
        s.delete_operator(op.id).await,
        Err(StoreError::NotFound)
    ));
    s.delete_operator_session(session.hash).await.unwrap();
}

/// Audit paging and counting, filtered by project and time.
async fn audit(s: &dyn Store) {
    let (p, t) = project();
    s.create_project(p.clone(), t).await.unwrap();
    let events: Vec<AuditEvent> = (0..5)
        .map(|i| AuditEvent {
            at: START.plus(i),
            project_id: Some(p.id),
            action: format!("a{i}"),
            actor: "test".into(),
            subject: "s".into(),
            detail: Default::default(),
        })
        .collect();
    s.append_audit(events).await.unwrap();
    assert_eq!(s.count_audit_events(Some(p.id), START).await.unwrap(), 5);
    assert_eq!(
        s.count_audit_events(Some(p.id), START.plus(3))
            .await
            .unwrap(),
        2
    );
    let page = s.audit_events(Some(p.id), START, 1, 2).await.unwrap();
    let actions: Vec<_> = page.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(actions, ["a1", "a2"]);
}

/// Purge removes what can never be used again; deleting a project removes its families.
async fn purge_and_delete(s: &dyn Store) {
    let (p, t) = project();
    s.create_project(p.clone(), t).await.unwrap();
    let live = family(p.id, PrincipalKind::Guest);
    let mut dead = family(p.id, PrincipalKind::Guest);
    dead.tokens_expire_at = START.plus(10);
    s.create_family(live.clone()).await.unwrap();
    s.create_family(dead.clone()).await.unwrap();
    s.purge(START.plus(11), UnixTime(0)).await.unwrap();
    assert!(matches!(
        s.get_family(dead.id).await,
        Err(StoreError::NotFound)
    ));
    s.get_family(live.id).await.unwrap();
    s.delete_project(p.id).await.unwrap();
    assert!(matches!(
        s.get_family(live.id).await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        s.get_project(p.id).await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        s.delete_project(p.id).await,
        Err(StoreError::NotFound)
    ));
}

/// The whole contract against one store.
pub async fn contract(s: Arc<dyn Store>) {
    projects_and_tokens(s.as_ref()).await;
    rotation(s.clone()).await;
    subscribers(s.as_ref()).await;
    keys(s.as_ref()).await;
    operators(s.as_ref()).await;
    audit(s.as_ref()).await;
    purge_and_delete(s.as_ref()).await;
}

#[tokio::test]
async fn sqlite_keeps_the_storage_contract() {
    let dir = tempfile::tempdir().unwrap();
    let store = tessera_store_sqlite::SqliteStore::open(dir.path().join("c.db")).unwrap();
    contract(Arc::new(store)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_keeps_the_storage_contract() {
    let Ok(base) = std::env::var("TESSERA_TEST_POSTGRES_URL") else {
        println!("SKIP: TESSERA_TEST_POSTGRES_URL is not set; the PostgreSQL contract did not run");
        return;
    };
    let (url, guard) = tessera_store_postgres::testing::scratch_schema(&base).await;
    let store = tessera_store_postgres::PgStore::connect(&url)
        .await
        .unwrap();
    contract(Arc::new(store)).await;
    guard.drop_now().await;
}
