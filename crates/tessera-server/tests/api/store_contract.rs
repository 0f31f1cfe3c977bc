//! One storage contract, run against every backend (SQLite, SQLite behind the read caches,
//! PostgreSQL): what the services rely on from each store trait, called directly and
//! organised trait by trait (the HTTP tests cover the rest through the real app).
//!
//! PostgreSQL runs when `TESSERA_TEST_POSTGRES_URL` is set (CI sets it), in a scratch schema
//! that is dropped afterwards; without it the test says SKIP and passes. The same goes for
//! moving a populated installation between backends (`export_all` / `import_all`).

use std::sync::Arc;

use tessera_core::cache::CachedStore;
use tessera_core::crypto::MasterKey;
use tessera_core::ids::{
    AddressId, ApiTokenId, EmbedId, FamilyId, OperatorId, ProjectId, ResourceId,
};
use tessera_core::keyring::{KeyPurpose, KeyState};
use tessera_core::maintenance::pending_key;
use tessera_core::model::*;
use tessera_core::store::{
    DirectoryStore, ExportRow, FamilyStore, KeyStore, StoreError, StoreResult, Stores,
    EXPORT_TABLES,
};
use tessera_core::token::PrincipalKind;
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

/// Asserts that a store call answers `NotFound`.
async fn assert_not_found<T: std::fmt::Debug>(
    call: impl std::future::Future<Output = StoreResult<T>>,
) {
    let answer = call.await;
    assert!(matches!(answer, Err(StoreError::NotFound)), "{answer:?}");
}

fn rand_hash() -> [u8; 32] {
    tessera_core::crypto::random_bytes::<32>()
}

/// A day-long Accounts session of `operator`.
fn session_of(operator: OperatorId) -> OperatorSession {
    OperatorSession {
        hash: rand_hash(),
        operator_id: operator,
        created_at: START,
        expires_at: START.plus(86_400),
    }
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

/// Upserts a subscriber through a grant that opens a fresh subscriber family for it.
async fn grant(
    s: &Stores,
    project: ProjectId,
    upsert: SubscriberUpsert,
    at: UnixTime,
) -> StoreResult<ResourceId> {
    let family = family(project, PrincipalKind::Subscriber);
    s.families
        .grant_subscriber(GrantWrite {
            project,
            upsert,
            family,
            at,
        })
        .await
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

/// The whole contract against one backend's stores, trait by trait ([`TransferStore`] has its
/// own tests below: moving an installation needs empty stores).
///
/// [`TransferStore`]: tessera_core::store::TransferStore
pub async fn contract(s: &Stores) {
    // KeyStore.
    master_key_checks(s).await;
    keys(s).await;
    // FamilyStore.
    bulk_families(s).await;
    rotation(s).await;
    subscribers(s).await;
    subscriber_identities(s).await;
    concurrent_failures(s).await;
    bounded_purge(s).await;
    purge_and_delete(s).await;
    // DirectoryStore.
    projects_and_tokens(s).await;
    resources_and_addresses(s).await;
    embeds(s).await;
    // OperatorStore.
    operators(s).await;
    operator_identities(s).await;
    // AuditStore.
    audit(s).await;
}

// --- FamilyStore: grants, families, purge ---

/// Refresh rotation: one conditional update decides every race.
async fn rotation(s: &Stores) {
    let (p, t) = project();
    s.directory.create_project(p.clone(), t).await.unwrap();
    let f = family(p.id, PrincipalKind::Guest);
    s.families.create_family(f.clone()).await.unwrap();
    assert_eq!(s.families.get_family(f.id).await.unwrap(), f);
    let now = START.plus(10);
    match s
        .families
        .rotate_family(Rotation {
            project: p.id,
            id: f.id,
            generation: 1,
            at: now,
            tokens_expire_at: now.plus(600),
        })
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
        s.families.rotate_family(Rotation {
            project: p.id,
            id: f.id,
            generation: 1,
            at: now,
            tokens_expire_at: now,
        }).await.unwrap(),
        RotateOutcome::Stale(n) if n.generation == 2
    ));
    // Another project cannot spend it.
    assert_eq!(
        s.families
            .rotate_family(Rotation {
                project: ProjectId::random(),
                id: f.id,
                generation: 2,
                at: now,
                tokens_expire_at: now
            })
            .await
            .unwrap(),
        RotateOutcome::NotFound
    );
    // Of many concurrent spends of one generation, exactly one wins.
    let mut tasks = Vec::new();
    for _ in 0..32 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            s.families
                .rotate_family(Rotation {
                    project: p.id,
                    id: f.id,
                    generation: 2,
                    at: now,
                    tokens_expire_at: now.plus(600),
                })
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
    s.families.revoke_family(f.id, now).await.unwrap();
    assert_eq!(
        s.families
            .rotate_family(Rotation {
                project: p.id,
                id: f.id,
                generation: 3,
                at: now,
                tokens_expire_at: now
            })
            .await
            .unwrap(),
        RotateOutcome::Dead
    );
    assert_eq!(
        s.families
            .rotate_family(Rotation {
                project: p.id,
                id: FamilyId::random(),
                generation: 1,
                at: now,
                tokens_expire_at: now
            })
            .await
            .unwrap(),
        RotateOutcome::NotFound
    );
}

/// A grant refused because its email is another subscriber's: a conflict on `email`, and
/// the family it would have opened was never stored.
async fn assert_email_taken(s: &Stores, out: StoreResult<ResourceId>, family: FamilyId) {
    assert!(
        matches!(out, Err(StoreError::Conflict(ref c)) if c == "email"),
        "{out:?}"
    );
    assert_not_found(s.families.get_family(family)).await;
}

/// Subscribers are upserted by reference (case-insensitively); emails are unique per project.
async fn subscribers(s: &Stores) {
    let clock = ManualClock::new(START);
    let (p, t) = project();
    s.directory.create_project(p.clone(), t).await.unwrap();
    let a = grant(s, p.id, upsert(&clock, p.id, "Alice", "a@x.io"), START)
        .await
        .unwrap();
    let again = grant(s, p.id, upsert(&clock, p.id, "alice", "a@x.io"), START)
        .await
        .unwrap();
    assert_eq!(a, again);
    // A request that names only the reference changes nothing about the subscriber, not even
    // its `updated_at`, and still opens a family for it.
    let before = s.directory.get_resource(p.id, a).await.unwrap();
    let mut bare = upsert(&clock, p.id, "ALICE", "a@x.io");
    bare.patch = SubscriberPatch::default();
    let fam = family(p.id, PrincipalKind::Subscriber);
    let fam_id = fam.id;
    assert_eq!(
        s.families
            .grant_subscriber(GrantWrite {
                project: p.id,
                upsert: bare,
                family: fam,
                at: START.plus(2)
            })
            .await
            .unwrap(),
        a
    );
    assert_eq!(s.directory.get_resource(p.id, a).await.unwrap(), before);
    assert_eq!(s.families.get_family(fam_id).await.unwrap().subject, a.0);
    grant(s, p.id, upsert(&clock, p.id, "bob", "b@x.io"), START)
        .await
        .unwrap();
    let taken = grant(s, p.id, upsert(&clock, p.id, "carol", "A@X.io"), START).await;
    assert!(
        matches!(taken, Err(StoreError::Conflict(ref c)) if c == "email"),
        "{taken:?}"
    );
    // A profile update reaches the resource and its address; the new family is the
    // subscriber's.
    let mut renamed = upsert(&clock, p.id, "alice", "a@x.io");
    renamed.patch.display_name = Some("Alice A.".into());
    let fam = family(p.id, PrincipalKind::Subscriber);
    let fam_id = fam.id;
    s.families
        .grant_subscriber(GrantWrite {
            project: p.id,
            upsert: renamed,
            family: fam,
            at: START.plus(3),
        })
        .await
        .unwrap();
    let r = s.directory.get_resource(p.id, a).await.unwrap();
    assert_eq!(
        (r.display_name.as_str(), r.updated_at),
        ("Alice A.", START.plus(3))
    );
    let query = AddressQuery {
        resource_id: Some(a),
        ..Default::default()
    };
    let page = Page {
        size: 10,
        after: None,
    };
    let addresses = s.directory.list_addresses(p.id, query, page).await.unwrap();
    assert_eq!(addresses.items.len(), 1);
    assert_eq!(addresses.items[0].display_name, "Alice A.");
    assert_eq!(s.families.get_family(fam_id).await.unwrap().subject, a.0);
    // Moving an existing subscriber to a taken email fails whole: no family, no change.
    let mut moved = upsert(&clock, p.id, "alice", "b@x.io");
    moved.patch.display_name = Some("Moved".into());
    let fam = family(p.id, PrincipalKind::Subscriber);
    let fam_id = fam.id;
    let taken = s
        .families
        .grant_subscriber(GrantWrite {
            project: p.id,
            upsert: moved,
            family: fam,
            at: START.plus(4),
        })
        .await;
    assert_email_taken(s, taken, fam_id).await;
    assert_eq!(
        s.directory
            .get_resource(p.id, a)
            .await
            .unwrap()
            .display_name,
        "Alice A."
    );
    // A password change revokes the subscriber's families.
    let fam = family(p.id, PrincipalKind::Subscriber);
    let fam_id = fam.id;
    s.families
        .grant_subscriber(GrantWrite {
            project: p.id,
            upsert: upsert(&clock, p.id, "alice", "a@x.io"),
            family: fam,
            at: START,
        })
        .await
        .unwrap();
    let mut pw = upsert(&clock, p.id, "alice", "a@x.io");
    pw.password_hash = Some("$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".into());
    grant(s, p.id, pw, START.plus(5)).await.unwrap();
    assert!(s
        .families
        .get_family(fam_id)
        .await
        .unwrap()
        .revoked_at
        .is_some());
    // Another project sees none of it.
    assert_not_found(s.directory.get_resource(ProjectId::random(), a)).await;
}

/// Pairs of identifiers that only Unicode case mapping or normalisation would make one:
/// each side must stay its own subscriber or operator (security.md, "Identifiers").
pub const LOOK_ALIKES: [(&str, &str); 11] = [
    ("kate@example.com", "\u{212A}ate@example.com"), // KELVIN SIGN
    ("sam@example.com", "\u{17F}am@example.com"),    // LATIN SMALL LETTER LONG S
    ("kim@example.com", "\u{FF4B}im@example.com"),   // FULLWIDTH LATIN SMALL LETTER K
    ("\u{FF2B}IM@example.com", "\u{FF4B}im@example.com"), // FULLWIDTH CAPITAL and small K
    ("\u{130}lse@example.com", "i\u{307}lse@example.com"), // I WITH DOT ABOVE, i + dot
    ("iris@example.com", "\u{130}ris@example.com"),
    ("ivy@example.com", "\u{131}vy@example.com"), // DOTLESS I
    ("\u{C5}sa@example.com", "\u{212B}sa@example.com"), // Å and ANGSTROM SIGN
    ("\u{E5}sa@example.com", "\u{C5}sa@example.com"), // å and Å
    (
        "\u{39F}\u{394}\u{39F}\u{3A3}@example.com",
        "\u{3BF}\u{3B4}\u{3BF}\u{3C2}@example.com",
    ), // ΟΔΟΣ, οδος (final sigma)
    (
        "\u{3BF}\u{3B4}\u{3BF}\u{3C3}@example.com",
        "\u{3BF}\u{3B4}\u{3BF}\u{3C2}@example.com",
    ), // σ and ς
];

/// References, emails and usernames compare ASCII case-insensitively and otherwise byte for
/// byte: every look-alike of [`LOOK_ALIKES`] is a subscriber (and an operator) of its own,
/// found again by itself in any ASCII case, in either order of creation.
async fn subscriber_identities(s: &Stores) {
    let clock = ManualClock::new(START);
    // Each order of creation in a project of its own: the look-alike first, then the name
    // it resembles, must not find the look-alike either.
    let mut last = None;
    for reverse in [false, true] {
        let (p, t) = project();
        s.directory.create_project(p.clone(), t).await.unwrap();
        let mut ids = std::collections::HashMap::new();
        for (a, b) in LOOK_ALIKES {
            let pair = if reverse { [b, a] } else { [a, b] };
            for name in pair {
                let fam = family(p.id, PrincipalKind::Subscriber);
                let upsert = upsert(&clock, p.id, name, name);
                let id = s
                    .families
                    .grant_subscriber(GrantWrite {
                        project: p.id,
                        upsert,
                        family: fam,
                        at: START,
                    })
                    .await
                    .unwrap();
                let known = *ids.entry(name).or_insert(id);
                assert_eq!(known, id, "{name:?} is found again");
            }
        }
        let distinct: std::collections::HashSet<_> = ids.values().collect();
        assert_eq!(
            distinct.len(),
            ids.len(),
            "one subscriber per look-alike: {ids:?}"
        );
        last = Some((p, ids));
    }
    let (p, ids) = last.unwrap();
    let grant = |reference: &str| {
        let upsert = upsert(&clock, p.id, reference, reference);
        s.families.grant_subscriber(GrantWrite {
            project: p.id,
            upsert,
            family: family(p.id, PrincipalKind::Subscriber),
            at: START,
        })
    };
    // ASCII case still folds, beside non-ASCII letters too.
    assert_eq!(
        grant("KATE@EXAMPLE.COM").await.unwrap(),
        ids["kate@example.com"]
    );
    assert_eq!(
        grant("\u{212A}ATE@Example.com").await.unwrap(),
        ids["\u{212A}ate@example.com"]
    );
    // An email is unique by the same key: a look-alike email is free, an ASCII case variant
    // is taken.
    let kelvin = ids["\u{212A}ate@example.com"];
    let moved = s
        .directory
        .update_subscriber(SubscriberUpdate {
            project: p.id,
            id: kelvin,
            patch: SubscriberPatch {
                email: Some("Kate@Example.com".into()),
                ..Default::default()
            },
            password_hash: None,
            at: START,
        })
        .await;
    assert!(
        matches!(moved, Err(StoreError::Conflict(ref c)) if c == "email"),
        "{moved:?}"
    );
}

/// Writes that arrive together (SQLite commits them as one batch) succeed or fail each on its
/// own: a grant that fails halfway (its subscriber's email is taken, after its resource row
/// was written) leaves nothing behind and takes no concurrent grant with it.
async fn concurrent_failures(s: &Stores) {
    let clock = Arc::new(ManualClock::new(START));
    let (p, t) = project();
    s.directory.create_project(p.clone(), t).await.unwrap();
    grant(s, p.id, upsert(&clock, p.id, "owner", "taken@x.io"), START)
        .await
        .unwrap();
    let mut tasks = Vec::new();
    for i in 0..40 {
        let (s, clock) = (s.clone(), clock.clone());
        tasks.push(tokio::spawn(async move {
            let (reference, email) = if i % 2 == 0 {
                (format!("fine-{i}"), format!("fine-{i}@x.io"))
            } else {
                (format!("clash-{i}"), "taken@x.io".to_string())
            };
            let fam = family(p.id, PrincipalKind::Subscriber);
            let fam_id = fam.id;
            let out = s
                .families
                .grant_subscriber(GrantWrite {
                    project: p.id,
                    upsert: upsert(&clock, p.id, &reference, &email),
                    family: fam,
                    at: START,
                })
                .await;
            (i, fam_id, out)
        }));
    }
    for t in tasks {
        let (i, fam_id, out) = t.await.unwrap();
        if i % 2 == 0 {
            let id = out.unwrap();
            assert_eq!(s.families.get_family(fam_id).await.unwrap().subject, id.0);
        } else {
            assert_email_taken(s, out, fam_id).await;
        }
    }
    let page = Page {
        size: 100,
        after: None,
    };
    let listed = s
        .directory
        .list_resources(ResourceListing::new(
            p.id,
            Some(ResourceKind::Subscriber),
            page,
        ))
        .await
        .unwrap();
    assert_eq!(listed.items.len(), 21, "one owner and twenty fine grants");
}

/// Bulk inserts (the benchmark's preload) are all or nothing.
async fn bulk_families(s: &Stores) {
    let (p, t) = project();
    s.directory.create_project(p.clone(), t).await.unwrap();
    let batch: Vec<Family> = (0..3)
        .map(|_| family(p.id, PrincipalKind::Subscriber))
        .collect();
    let before = s.families.count_families().await.unwrap();
    s.families.insert_families(batch.clone()).await.unwrap();
    assert_eq!(s.families.count_families().await.unwrap(), before + 3);
    for f in &batch {
        assert_eq!(&s.families.get_family(f.id).await.unwrap(), f);
    }
    // A batch with one id that exists is refused whole: its new family is not there either.
    let fresh = family(p.id, PrincipalKind::Guest);
    let err = s
        .families
        .insert_families(vec![fresh.clone(), batch[0].clone()])
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "{err:?}");
    assert_eq!(s.families.count_families().await.unwrap(), before + 3);
    assert_not_found(s.families.get_family(fresh.id)).await;
}

/// A purge request for rows dead before `before`, keeping every key.
fn purge_request(before: UnixTime, audit_before: Option<UnixTime>, limit: u32) -> PurgeRequest {
    PurgeRequest {
        before,
        retired_before: UnixTime(0),
        audit_before,
        limit,
    }
}

/// A purge round removes at most `limit` rows of each kind, so a backlog drains in short
/// transactions; audit events go once past the retention; a family stored with tokens that
/// outlive it is kept to its own expiry.
async fn bounded_purge(s: &Stores) {
    let (p, t) = project();
    s.directory.create_project(p.clone(), t).await.unwrap();
    let past = START.plus(-10_000);
    let dead: Vec<Family> = (0..5)
        .map(|_| Family {
            tokens_expire_at: past,
            ..family(p.id, PrincipalKind::Guest)
        })
        .collect();
    s.families.insert_families(dead.clone()).await.unwrap();
    // Its tokens would outlive it: the store keeps tokens_expire_at at expires_at.
    let overlong = Family {
        expires_at: past.plus(5),
        tokens_expire_at: START.plus(600),
        ..family(p.id, PrincipalKind::Guest)
    };
    s.families.create_family(overlong.clone()).await.unwrap();
    assert_eq!(
        s.families
            .get_family(overlong.id)
            .await
            .unwrap()
            .tokens_expire_at,
        past.plus(5)
    );
    let mut events: Vec<AuditEvent> = (0..3)
        .map(|i| audit_event(p.id, past.plus(i), format!("old{i}")))
        .collect();
    events.push(audit_event(p.id, past.plus(100), "kept".into()));
    s.audit.append_audit(events).await.unwrap();

    let before = past.plus(10);
    let audit_before = Some(past.plus(50));
    let mut rounds = Vec::new();
    loop {
        let c = s
            .families
            .purge(purge_request(before, audit_before, 2))
            .await
            .unwrap();
        rounds.push((c.families, c.audit_events));
        if !c.hit_limit(2) {
            break;
        }
    }
    // Six dead families (five plus the overlong one) and three old events, two per round.
    assert_eq!(rounds, [(2, 2), (2, 1), (2, 0), (0, 0)]);
    for f in dead.iter().chain([&overlong]) {
        assert_not_found(s.families.get_family(f.id)).await;
    }
    let left = s
        .audit
        .audit_events(
            AuditFilter {
                project: Some(p.id),
                since: past,
            },
            AuditPage {
                offset: 0,
                limit: 10,
            },
        )
        .await
        .unwrap();
    let actions: Vec<_> = left.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(actions, ["kept"]);
    // No retention: audit events stay whatever their age.
    let c = s
        .families
        .purge(purge_request(before, None, 2))
        .await
        .unwrap();
    assert_eq!(c.audit_events, 0);
    assert_eq!(
        s.audit
            .count_audit_events(AuditFilter {
                project: Some(p.id),
                since: past
            })
            .await
            .unwrap(),
        1
    );
}

/// Purge removes what can never be used again; deleting a project removes its families.
async fn purge_and_delete(s: &Stores) {
    let (p, t) = project();
    s.directory.create_project(p.clone(), t).await.unwrap();
    let live = family(p.id, PrincipalKind::Guest);
    let mut dead = family(p.id, PrincipalKind::Guest);
    dead.tokens_expire_at = START.plus(10);
    s.families.create_family(live.clone()).await.unwrap();
    s.families.create_family(dead.clone()).await.unwrap();
    s.families
        .purge(purge_request(START.plus(11), None, 1000))
        .await
        .unwrap();
    assert_not_found(s.families.get_family(dead.id)).await;
    s.families.get_family(live.id).await.unwrap();
    s.directory.delete_project(p.id).await.unwrap();
    assert_not_found(s.families.get_family(live.id)).await;
    assert_not_found(s.directory.get_project(p.id)).await;
    assert_not_found(s.directory.delete_project(p.id)).await;
}

// --- DirectoryStore: projects, API tokens, resources, addresses, embeds ---

/// Projects, API tokens and their hashes.
async fn projects_and_tokens(s: &Stores) {
    let (p, t) = project();
    s.directory
        .create_project(p.clone(), t.clone())
        .await
        .unwrap();
    assert_eq!(s.directory.get_project(p.id).await.unwrap(), p);
    assert!(s.directory.list_projects().await.unwrap().contains(&p));
    let found = s.directory.find_api_token(p.id, t.hash).await.unwrap();
    assert_eq!(found.as_ref().map(|x| x.id), Some(t.id));
    s.directory
        .revoke_api_token(t.id, START.plus(1))
        .await
        .unwrap();
    let listed = s.directory.list_api_tokens(p.id).await.unwrap();
    assert_eq!(listed[0].revoked_at, Some(START.plus(1)));
    assert_not_found(s.directory.revoke_api_token(ApiTokenId::random(), START)).await;
    assert_not_found(s.directory.get_project(ProjectId::random())).await;
}

/// A room of `project` named `name`, built at `clock`.
fn room(clock: &ManualClock, project: ProjectId, name: &str) -> NewResource {
    NewResource::build(
        clock,
        project,
        ResourceKind::Room,
        name,
        format!("The {name}"),
        None,
        Default::default(),
    )
}

/// Resources and their addresses: read back as written, listed by kind and page, renamed
/// together, deleted together; another project's are not found.
async fn resources_and_addresses(s: &Stores) {
    let d = s.directory.as_ref();
    let clock = ManualClock::new(START);
    let (p, t) = project();
    d.create_project(p.clone(), t).await.unwrap();
    let lobby = room(&clock, p.id, "lobby");
    let hall = room(&clock, p.id, "hall");
    let app = NewResource::build(
        &clock,
        p.id,
        ResourceKind::App,
        "bot",
        "Bot".into(),
        None,
        Default::default(),
    );
    for r in [&lobby, &hall, &app] {
        d.create_resource(r.clone()).await.unwrap();
    }
    assert!(matches!(
        d.create_resource(lobby.clone()).await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(
        d.get_resource(p.id, lobby.resource.id).await.unwrap(),
        lobby.resource
    );
    assert_eq!(
        d.get_address(p.id, lobby.address.id).await.unwrap(),
        lobby.address
    );
    assert_eq!(
        d.address_owner(p.id, lobby.address.id).await.unwrap(),
        AddressOwner {
            project_id: p.id,
            resource_id: lobby.resource.id,
            kind: ResourceKind::Room,
        }
    );
    // Listed by kind, a page at a time, in id order.
    let first = Page {
        size: 1,
        after: None,
    };
    let rooms = d
        .list_resources(ResourceListing::new(p.id, Some(ResourceKind::Room), first))
        .await
        .unwrap();
    assert_eq!(rooms.items.len(), 1);
    assert!(rooms.more);
    let next = Page {
        size: 10,
        after: Some(rooms.items[0].id.0),
    };
    let rest = d
        .list_resources(ResourceListing::new(p.id, Some(ResourceKind::Room), next))
        .await
        .unwrap();
    assert_eq!(rest.items.len(), 1);
    assert!(!rest.more);
    let mut both = vec![rooms.items[0].id, rest.items[0].id];
    both.sort_by_key(|id| id.0);
    assert_eq!(both, {
        let mut want = vec![lobby.resource.id, hall.resource.id];
        want.sort_by_key(|id| id.0);
        want
    });
    let all = Page {
        size: 10,
        after: None,
    };
    assert_eq!(
        d.list_resources(ResourceListing::new(p.id, None, all))
            .await
            .unwrap()
            .items
            .len(),
        3
    );
    // Of the ids asked, the project's addresses come back, in the order asked.
    let stranger = AddressId::random();
    assert_eq!(
        d.existing_addresses(p.id, &[hall.address.id, stranger, lobby.address.id])
            .await
            .unwrap(),
        [hall.address.id, lobby.address.id]
    );
    // A rename reaches the address; data members merge.
    let mut data = serde_json::Map::new();
    data.insert("topic".into(), serde_json::json!("news"));
    let renamed = d
        .update_room(RoomUpdate {
            project: p.id,
            id: lobby.resource.id,
            kind: ResourceKind::Room,
            patch: RoomPatch {
                name: None,
                display_name: Some("Main lobby".into()),
                data,
            },
            at: START.plus(5),
        })
        .await
        .unwrap();
    assert_eq!(renamed.display_name, "Main lobby");
    assert_eq!(renamed.updated_at, START.plus(5));
    assert_eq!(renamed.data["topic"], "news");
    assert_eq!(
        d.get_resource(p.id, lobby.resource.id).await.unwrap(),
        renamed
    );
    let by_name = AddressQuery {
        display_name: Some("Main lobby".into()),
        ..Default::default()
    };
    let found = d.list_addresses(p.id, by_name, all).await.unwrap();
    assert_eq!(found.items.len(), 1);
    assert_eq!(found.items[0].id, lobby.address.id);
    // The kind must match: a room is not updated or deleted as an application.
    assert_not_found(d.update_room(RoomUpdate {
        project: p.id,
        id: lobby.resource.id,
        kind: ResourceKind::App,
        patch: RoomPatch::default(),
        at: START,
    }))
    .await;
    assert_not_found(d.delete_resource(ResourceDeletion {
        project: p.id,
        id: hall.resource.id,
        kind: ResourceKind::App,
        at: START,
    }))
    .await;
    // Another project sees none of it.
    let other = ProjectId::random();
    assert_not_found(d.get_resource(other, lobby.resource.id)).await;
    assert_not_found(d.get_address(other, lobby.address.id)).await;
    assert_not_found(d.address_owner(other, lobby.address.id)).await;
    assert!(d
        .existing_addresses(other, &[lobby.address.id])
        .await
        .unwrap()
        .is_empty());
    // Deleted with its address.
    d.delete_resource(ResourceDeletion {
        project: p.id,
        id: hall.resource.id,
        kind: ResourceKind::Room,
        at: START,
    })
    .await
    .unwrap();
    assert_not_found(d.get_resource(p.id, hall.resource.id)).await;
    assert_not_found(d.get_address(p.id, hall.address.id)).await;
    assert_not_found(d.delete_resource(ResourceDeletion {
        project: p.id,
        id: hall.resource.id,
        kind: ResourceKind::Room,
        at: START,
    }))
    .await;
}

/// Embed widgets are found by the hash of their public token, and only by it.
async fn embeds(s: &Stores) {
    let d = s.directory.as_ref();
    let clock = ManualClock::new(START);
    let (p, t) = project();
    d.create_project(p.clone(), t).await.unwrap();
    let lobby = room(&clock, p.id, "lobby");
    d.create_resource(lobby.clone()).await.unwrap();
    let embed = Embed {
        id: EmbedId::random(),
        project_id: p.id,
        token_hash: rand_hash(),
        addresses: vec![lobby.address.id],
        enabled: true,
        created_at: START,
    };
    d.create_embed(embed.clone()).await.unwrap();
    assert_eq!(d.find_embed(embed.token_hash).await.unwrap(), Some(embed));
    assert_eq!(d.find_embed(rand_hash()).await.unwrap(), None);
}

// --- OperatorStore: operators and sessions ---

/// Operators and their sessions.
async fn operators(s: &Stores) {
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
    s.operators.create_operator(op.clone()).await.unwrap();
    let mut twin = op.clone();
    twin.id = OperatorId::random();
    twin.username = op.username.to_uppercase();
    twin.api_key_hash = None;
    assert!(matches!(
        s.operators.create_operator(twin).await,
        Err(StoreError::Conflict(ref c)) if c == "username"
    ));
    assert_eq!(
        s.operators
            .find_operator(&op.username.to_ascii_lowercase())
            .await
            .unwrap(),
        Some(op.clone())
    );
    assert_eq!(
        s.operators
            .find_operator_by_key(op.api_key_hash.unwrap())
            .await
            .unwrap(),
        Some(op.clone())
    );
    let session = session_of(op.id);
    s.operators
        .create_operator_session(session.clone())
        .await
        .unwrap();
    assert_eq!(
        s.operators
            .find_operator_session(session.hash)
            .await
            .unwrap(),
        Some(session.clone())
    );
    let changed = s
        .operators
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
    assert_eq!(s.operators.get_operator(op.id).await.unwrap(), changed);
    assert!(s
        .operators
        .list_operators()
        .await
        .unwrap()
        .contains(&changed));
    s.operators
        .set_operator_password(op.id, "$argon2id$v=19$m=8,t=1,p=1$c2FsdA$aGFzaA".into())
        .await
        .unwrap();
    assert_eq!(
        s.operators
            .get_operator(op.id)
            .await
            .unwrap()
            .password_hash
            .as_deref(),
        Some("$argon2id$v=19$m=8,t=1,p=1$c2FsdA$aGFzaA")
    );
    assert_eq!(
        s.operators
            .find_operator_session(session.hash)
            .await
            .unwrap(),
        None
    );
    s.operators
        .create_operator_session(session.clone())
        .await
        .unwrap();
    s.operators.delete_operator(op.id).await.unwrap();
    assert_eq!(
        s.operators
            .find_operator_session(session.hash)
            .await
            .unwrap(),
        None
    );
    assert_not_found(s.operators.delete_operator(op.id)).await;
    assert_not_found(s.operators.get_operator(op.id)).await;
    s.operators
        .delete_operator_session(session.hash)
        .await
        .unwrap();
}

/// Usernames compare like references and emails: every look-alike of [`LOOK_ALIKES`] is an
/// operator of its own, found again by itself in any ASCII case.
async fn operator_identities(s: &Stores) {
    // Operators are global: a suffix keeps these names apart from the rest of the contract.
    let suffix = Uuid::new_v4().simple().to_string();
    let operator = |name: &str| Operator {
        id: OperatorId::random(),
        username: format!("{name}-{suffix}"),
        domain: None,
        kind: OperatorKind::User,
        role: Role::Admin,
        password_hash: Some("$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".into()),
        api_key_hash: None,
        disabled: false,
        created_at: START,
    };
    let mut names: Vec<&str> = LOOK_ALIKES.iter().flat_map(|(a, b)| [*a, *b]).collect();
    names.extend(["admin@local", "ADM\u{130}N@local", "adm\u{131}n@local"]);
    names.sort_unstable();
    names.dedup();
    let mut operators = Vec::new();
    for name in names {
        let op = operator(name);
        s.operators.create_operator(op.clone()).await.unwrap();
        operators.push((name, op));
    }
    for (name, op) in &operators {
        for spelling in [op.username.clone(), op.username.to_ascii_uppercase()] {
            let found = s.operators.find_operator(&spelling).await.unwrap();
            assert_eq!(found.map(|o| o.id), Some(op.id), "{spelling:?}");
        }
        let twin = operator(&name.to_ascii_uppercase());
        let taken = s.operators.create_operator(twin).await;
        assert!(
            matches!(taken, Err(StoreError::Conflict(ref c)) if c == "username"),
            "{name:?}: {taken:?}"
        );
    }
    let combining = format!("admi\u{307}n@local-{suffix}");
    assert_eq!(s.operators.find_operator(&combining).await.unwrap(), None);
}

// --- KeyStore: keys and the master-key check ---

/// Keys: activation retires the previous key of the purpose; seal counts add up.
async fn keys(s: &Stores) {
    let (master, _) = MasterKey::generate();
    let first = pending_key(&master, KeyPurpose::Refresh, START);
    let second = pending_key(&master, KeyPurpose::Refresh, START);
    s.keys.insert_key(first.clone()).await.unwrap();
    s.keys.insert_key(second.clone()).await.unwrap();
    s.keys.activate_key(&first.kid, START).await.unwrap();
    s.keys
        .activate_key(&second.kid, START.plus(1))
        .await
        .unwrap();
    s.keys
        .add_seal_counts(vec![(second.kid.clone(), 3), (second.kid.clone(), 4)])
        .await
        .unwrap();
    let all = s.keys.list_keys().await.unwrap();
    let get = |kid: &str| all.iter().find(|k| k.kid == kid).unwrap().clone();
    assert_eq!(get(&first.kid).state, KeyState::Retired);
    assert_eq!(get(&second.kid).state, KeyState::Active);
    assert_eq!(get(&second.kid).sealed, 7);
    s.keys.destroy_key(&first.kid).await.unwrap();
    let destroyed = s
        .keys
        .list_keys()
        .await
        .unwrap()
        .into_iter()
        .find(|k| k.kid == first.kid)
        .unwrap();
    assert_eq!(destroyed.state, KeyState::Destroyed);
    assert!(destroyed.wrapped.is_empty());
    // A pending key can be retired (and then never activated); an unknown one is not found.
    let third = pending_key(&master, KeyPurpose::Access, START);
    s.keys.insert_key(third.clone()).await.unwrap();
    s.keys.retire_key(&third.kid, START.plus(2)).await.unwrap();
    let all = s.keys.list_keys().await.unwrap();
    let retired = all.iter().find(|k| k.kid == third.kid).unwrap();
    assert_eq!(retired.state, KeyState::Retired);
    assert_eq!(retired.retired_at, Some(START.plus(2)));
    assert!(s
        .keys
        .activate_key(&third.kid, START.plus(3))
        .await
        .is_err());
    assert_not_found(s.keys.retire_key("no-such-kid", START)).await;
}

/// The master-key check: absent on a new database, recorded once, and the first recorded
/// value stays (a second process with another key learns the first one's value).
async fn master_key_checks(s: &Stores) {
    assert_eq!(s.keys.master_key_check().await.unwrap(), None);
    let first = MasterKeyCheck {
        value: rand_hash(),
        recorded_at: START,
    };
    assert_eq!(s.keys.record_master_key_check(first).await.unwrap(), first);
    let second = MasterKeyCheck {
        value: rand_hash(),
        recorded_at: START.plus(5),
    };
    assert_eq!(
        s.keys.record_master_key_check(second).await.unwrap(),
        first,
        "the first recorded check stays"
    );
    assert_eq!(s.keys.master_key_check().await.unwrap(), Some(first));
}

// --- AuditStore ---

/// An audit event of `project` at `at`.
fn audit_event(project: ProjectId, at: UnixTime, action: String) -> AuditEvent {
    AuditEvent {
        at,
        project_id: Some(project),
        action,
        actor: "test".into(),
        subject: "s".into(),
        detail: Default::default(),
    }
}

/// Audit paging and counting, filtered by project and time.
async fn audit(s: &Stores) {
    let (p, t) = project();
    s.directory.create_project(p.clone(), t).await.unwrap();
    let events: Vec<AuditEvent> = (0..5)
        .map(|i| audit_event(p.id, START.plus(i), format!("a{i}")))
        .collect();
    s.audit.append_audit(events).await.unwrap();
    assert_eq!(
        s.audit
            .count_audit_events(AuditFilter {
                project: Some(p.id),
                since: START
            })
            .await
            .unwrap(),
        5
    );
    assert_eq!(
        s.audit
            .count_audit_events(AuditFilter {
                project: Some(p.id),
                since: START.plus(3)
            })
            .await
            .unwrap(),
        2
    );
    let page = s
        .audit
        .audit_events(
            AuditFilter {
                project: Some(p.id),
                since: START,
            },
            AuditPage {
                offset: 1,
                limit: 2,
            },
        )
        .await
        .unwrap();
    let actions: Vec<_> = page.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(actions, ["a1", "a2"]);

    // A larger batch comes back in the order it was appended, with every field (the subject
    // and the detail object included), whatever statements a store writes it with.
    let (q, t) = project();
    s.directory.create_project(q.clone(), t).await.unwrap();
    let events: Vec<AuditEvent> = (0..45)
        .map(|i| {
            let mut e = audit_event(q.id, START.plus(i), format!("b{i}"));
            e.subject = format!("family:{i}");
            e.detail.insert("n".into(), i.into());
            e
        })
        .collect();
    s.audit.append_audit(events.clone()).await.unwrap();
    let back = s
        .audit
        .audit_events(
            AuditFilter {
                project: Some(q.id),
                since: START,
            },
            AuditPage {
                offset: 0,
                limit: 100,
            },
        )
        .await
        .unwrap();
    assert_eq!(back, events);
}

// --- each backend, cached and not ---

#[tokio::test]
async fn sqlite_keeps_the_storage_contract() {
    let dir = tempfile::tempdir().unwrap();
    contract(&Stores::from_backend(Arc::new(sqlite_store(&dir, "c.db")))).await;
}

/// The read caches change no answer of the contract.
#[tokio::test]
async fn cached_sqlite_keeps_the_storage_contract() {
    let dir = tempfile::tempdir().unwrap();
    let store = Stores::from_backend(Arc::new(sqlite_store(&dir, "c.db")));
    let clock = Arc::new(ManualClock::new(START));
    contract(&CachedStore::in_front_of(store, clock, 1)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_keeps_the_storage_contract() {
    let Ok(base) = std::env::var("TESSERA_TEST_POSTGRES_URL") else {
        tessera_store_postgres::testing::skip(
            "TESSERA_TEST_POSTGRES_URL is not set; the PostgreSQL contract did not run",
        );
        return;
    };
    let (url, guard) = tessera_store_postgres::testing::scratch_schema(&base).await;
    let store = tessera_store_postgres::PgStore::connect(&url)
        .await
        .unwrap();
    contract(&Stores::from_backend(Arc::new(store))).await;
    guard.drop_now().await;
}

/// A database from before the check existed (keys, no check): a key that does not unwrap
/// them is refused and records nothing; the right key records the check, which then decides
/// alone.
#[tokio::test]
async fn a_database_without_a_check_is_checked_by_unwrapping_its_keys() {
    use tessera_core::keys::{check_master_key, KeyLoadError};
    let dir = tempfile::tempdir().unwrap();
    let s = sqlite_store(&dir, "old.db");
    let clock = ManualClock::new(START);
    let (right, _) = MasterKey::generate();
    let (wrong, _) = MasterKey::generate();
    s.insert_key(pending_key(&right, KeyPurpose::Access, START))
        .await
        .unwrap();
    let refused = check_master_key(&s, &wrong, &clock).await;
    assert!(matches!(refused, Err(KeyLoadError::MasterKeyMismatch)));
    assert_eq!(s.master_key_check().await.unwrap(), None);
    clock.advance(10);
    let check = check_master_key(&s, &right, &clock).await.unwrap();
    assert_eq!(check.value, right.check_value());
    assert_eq!(check.recorded_at, START.plus(10));
    assert_eq!(s.master_key_check().await.unwrap(), Some(check));
    assert!(matches!(
        check_master_key(&s, &wrong, &clock).await,
        Err(KeyLoadError::MasterKeyMismatch)
    ));
    // A new database takes the first key it is given.
    let fresh = sqlite_store(&dir, "new.db");
    check_master_key(&fresh, &wrong, &clock).await.unwrap();
    assert!(check_master_key(&fresh, &right, &clock).await.is_err());
}

/// A burst of events, more than one batch (the log then waits for more before writing), is
/// written whole and in the order it was recorded.
#[tokio::test]
async fn the_audit_log_writes_a_burst_whole_and_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let store = Stores::from_backend(Arc::new(sqlite_store(&dir, "a.db")));
    let (p, t) = project();
    store.directory.create_project(p.clone(), t).await.unwrap();
    let log = tessera_core::audit::AuditLog::start(store.audit.clone());
    let events: Vec<AuditEvent> = (0..1500)
        .map(|i| audit_event(p.id, START, format!("e{i}")))
        .collect();
    for e in &events {
        log.record(e.clone());
    }
    for _ in 0..500 {
        if store
            .audit
            .count_audit_events(AuditFilter {
                project: Some(p.id),
                since: START,
            })
            .await
            .unwrap()
            == 1500
        {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let back = store
        .audit
        .audit_events(
            AuditFilter {
                project: Some(p.id),
                since: START,
            },
            AuditPage {
                offset: 0,
                limit: 2000,
            },
        )
        .await
        .unwrap();
    assert_eq!(back, events);
}

/// What the cache promises: a change made through it shows at once; a change made behind its
/// back (another node, `tessera admin`) shows once the entry is older than the TTL.
#[tokio::test]
async fn the_cache_is_fresh_through_itself_and_bounded_behind_its_back() {
    let dir = tempfile::tempdir().unwrap();
    let inner = Stores::from_backend(Arc::new(sqlite_store(&dir, "c.db")));
    let clock = Arc::new(ManualClock::new(START));
    let cached = CachedStore::new(&inner, clock.clone(), 1);
    let (p, t) = project();
    cached.create_project(p.clone(), t.clone()).await.unwrap();

    // Families: revoked through the cache, at once.
    let f = family(p.id, PrincipalKind::Guest);
    cached.create_family(f.clone()).await.unwrap();
    assert!(cached.get_family(f.id).await.unwrap().revoked_at.is_none());
    cached.revoke_family(f.id, START).await.unwrap();
    assert!(cached.get_family(f.id).await.unwrap().revoked_at.is_some());

    // Revoked behind its back: stale until the TTL passes, then fresh.
    let g = family(p.id, PrincipalKind::Guest);
    cached.create_family(g.clone()).await.unwrap();
    assert!(cached.get_family(g.id).await.unwrap().revoked_at.is_none());
    inner.families.revoke_family(g.id, START).await.unwrap();
    assert!(cached.get_family(g.id).await.unwrap().revoked_at.is_none());
    clock.advance(1);
    assert!(cached.get_family(g.id).await.unwrap().revoked_at.is_some());

    // Each entry lives the TTL from its own read, not until the next whole second (entries
    // expiring together made every request miss at once): read 900 ms into a second, it
    // still answers 500 ms later, in the next second, and is read again once the TTL is over.
    let h = family(p.id, PrincipalKind::Guest);
    cached.create_family(h.clone()).await.unwrap();
    clock.advance_millis(900);
    assert!(cached.get_family(h.id).await.unwrap().revoked_at.is_none());
    inner.families.revoke_family(h.id, START).await.unwrap();
    clock.advance_millis(500);
    assert!(cached.get_family(h.id).await.unwrap().revoked_at.is_none());
    clock.advance_millis(500);
    assert!(cached.get_family(h.id).await.unwrap().revoked_at.is_some());

    // A password set by a grant revokes the subscriber's sessions: at once, through the cache.
    let carol = |c: &ManualClock| upsert(c, p.id, "carol@example.com", "carol@example.com");
    let mut with_password = carol(&clock);
    with_password.password_hash = Some("$argon2id$v=19$m=8,t=1,p=1$c2FsdA$aGFzaA".into());
    let first = family(p.id, PrincipalKind::Subscriber);
    let sub = cached
        .grant_subscriber(GrantWrite {
            project: p.id,
            upsert: carol(&clock),
            family: first.clone(),
            at: START,
        })
        .await
        .unwrap();
    assert!(cached
        .get_family(first.id)
        .await
        .unwrap()
        .revoked_at
        .is_none());
    cached
        .grant_subscriber(GrantWrite {
            project: p.id,
            upsert: with_password,
            family: family(p.id, PrincipalKind::Subscriber),
            at: START,
        })
        .await
        .unwrap();
    let revoked = cached.get_family(first.id).await.unwrap();
    assert_eq!(revoked.subject, sub.0);
    assert!(revoked.revoked_at.is_some());

    // API tokens: a revocation through the cache ends the credential at once.
    assert!(cached.find_api_token(p.id, t.hash).await.unwrap().is_some());
    cached.revoke_api_token(t.id, START).await.unwrap();
    assert!(cached.find_api_token(p.id, t.hash).await.unwrap().is_none());

    // A wrong secret is never remembered: a token created a moment later works at once.
    let (q, u) = project();
    assert!(cached.find_api_token(q.id, u.hash).await.unwrap().is_none());
    inner
        .directory
        .create_project(q.clone(), u.clone())
        .await
        .unwrap();
    assert!(cached.find_api_token(q.id, u.hash).await.unwrap().is_some());

    // Addresses: another project's cached address is not this project's.
    let room = NewResource::build(
        clock.as_ref(),
        q.id,
        ResourceKind::Room,
        "lobby",
        "Lobby".into(),
        None,
        Default::default(),
    );
    let addr = room.address.id;
    cached.create_resource(room.clone()).await.unwrap();
    assert_eq!(
        cached
            .existing_addresses(q.id, &[addr])
            .await
            .unwrap()
            .len(),
        1
    );
    assert!(cached
        .existing_addresses(p.id, &[addr])
        .await
        .unwrap()
        .is_empty());
    // Its owner (what an invite checks), cached: the same answer as the store's, and another
    // project's address is not found even when the entry is in memory.
    let owner = AddressOwner {
        project_id: q.id,
        resource_id: room.resource.id,
        kind: ResourceKind::Room,
    };
    assert_eq!(
        inner.directory.address_owner(q.id, addr).await.unwrap(),
        owner
    );
    assert_eq!(cached.address_owner(q.id, addr).await.unwrap(), owner);
    assert_not_found(cached.address_owner(p.id, addr)).await;
    // Deleted through the cache: gone at once.
    cached
        .delete_resource(ResourceDeletion {
            project: q.id,
            id: room.resource.id,
            kind: ResourceKind::Room,
            at: START,
        })
        .await
        .unwrap();
    assert!(cached
        .existing_addresses(q.id, &[addr])
        .await
        .unwrap()
        .is_empty());
    assert_not_found(cached.address_owner(q.id, addr)).await;
    // Deleted behind its back: the owner answers until the TTL passes, then not.
    let hall = NewResource::build(
        clock.as_ref(),
        q.id,
        ResourceKind::Room,
        "hall",
        "Hall".into(),
        None,
        Default::default(),
    );
    cached.create_resource(hall.clone()).await.unwrap();
    let hall_addr = hall.address.id;
    assert!(cached.address_owner(q.id, hall_addr).await.is_ok());
    inner
        .directory
        .delete_resource(ResourceDeletion {
            project: q.id,
            id: hall.resource.id,
            kind: ResourceKind::Room,
            at: START,
        })
        .await
        .unwrap();
    assert!(cached.address_owner(q.id, hall_addr).await.is_ok());
    clock.advance(1);
    assert_not_found(cached.address_owner(q.id, hall_addr)).await;

    // A deleted project takes its cached families with it.
    let h = family(q.id, PrincipalKind::Guest);
    cached.create_family(h.clone()).await.unwrap();
    cached.get_family(h.id).await.unwrap();
    cached.delete_project(q.id).await.unwrap();
    assert_not_found(cached.get_family(h.id)).await;
}

// --- TransferStore: moving an installation (export_all / import_all) ---

/// What [`populate`] wrote, to read it back on the other side.
struct Populated {
    project: ProjectId,
    live_token: [u8; 32],
    resources: Vec<ResourceId>,
    addresses: Vec<AddressId>,
    family: FamilyId,
    embed: [u8; 32],
    session: [u8; 32],
}

/// A bit of everything, so that every table and every column type of the export holds rows:
/// NULLs and their values, flags both ways, empty and full byte strings, JSON documents,
/// address lists.
async fn populate(s: &Stores) -> Populated {
    let clock = ManualClock::new(START);
    let (p, t) = project();
    s.directory
        .create_project(p.clone(), t.clone())
        .await
        .unwrap();
    s.directory
        .revoke_api_token(t.id, START.plus(1))
        .await
        .unwrap();
    let live = ApiToken {
        id: ApiTokenId::random(),
        name: "second".into(),
        hash: rand_hash(),
        ..t
    };
    s.directory.create_api_token(live.clone()).await.unwrap();

    let (master, _) = MasterKey::generate();
    let active = pending_key(&master, KeyPurpose::Access, START);
    let destroyed = pending_key(&master, KeyPurpose::Refresh, START);
    s.keys
        .record_master_key_check(MasterKeyCheck {
            value: master.check_value(),
            recorded_at: START,
        })
        .await
        .unwrap();
    s.keys.insert_key(active.clone()).await.unwrap();
    s.keys.insert_key(destroyed.clone()).await.unwrap();
    s.keys.activate_key(&active.kid, START).await.unwrap();
    s.keys
        .add_seal_counts(vec![(active.kid.clone(), 9)])
        .await
        .unwrap();
    s.keys.destroy_key(&destroyed.kid).await.unwrap();

    let mut data = serde_json::Map::new();
    data.insert(
        "nested".into(),
        serde_json::json!({"list": [1, "é", null, true]}),
    );
    let mut room = NewResource::build(
        &clock,
        p.id,
        ResourceKind::Room,
        "Lobby",
        "The lobby ✓".into(),
        None,
        data,
    );
    room.address.locked = true;
    room.address.cover_url = "https://example.com/c.png".into();
    s.directory.create_resource(room.clone()).await.unwrap();
    let mut sub = upsert(&clock, p.id, "Ref-Ü", "ü@x.io");
    sub.password_hash = Some("$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".into());
    let sub_addr = sub.create.address.id;
    let fam = family(p.id, PrincipalKind::Subscriber);
    let sub_id = s
        .families
        .grant_subscriber(GrantWrite {
            project: p.id,
            upsert: sub,
            family: fam.clone(),
            at: START,
        })
        .await
        .unwrap();
    s.families
        .rotate_family(Rotation {
            project: p.id,
            id: fam.id,
            generation: 1,
            at: START.plus(2),
            tokens_expire_at: START.plus(600),
        })
        .await
        .unwrap();
    let guest = family(p.id, PrincipalKind::Guest);
    s.families.create_family(guest.clone()).await.unwrap();
    s.families
        .revoke_family(guest.id, START.plus(3))
        .await
        .unwrap();

    let embed = Embed {
        id: EmbedId::random(),
        project_id: p.id,
        token_hash: rand_hash(),
        addresses: vec![room.address.id, sub_addr],
        enabled: true,
        created_at: START,
    };
    s.directory.create_embed(embed.clone()).await.unwrap();

    let mut detail = serde_json::Map::new();
    detail.insert("why".into(), serde_json::json!("a \"quoted\" ✓"));
    s.audit
        .append_audit(vec![
            AuditEvent {
                at: START,
                project_id: Some(p.id),
                action: "first".into(),
                actor: "test".into(),
                subject: "s".into(),
                detail,
            },
            AuditEvent {
                at: START.plus(1),
                project_id: None,
                action: "second".into(),
                actor: "test".into(),
                subject: "s".into(),
                detail: Default::default(),
            },
        ])
        .await
        .unwrap();

    let user = Operator {
        id: OperatorId::random(),
        username: "Ops@Local".into(),
        domain: Some("local".into()),
        kind: OperatorKind::User,
        role: Role::Operator,
        password_hash: Some("$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".into()),
        api_key_hash: None,
        disabled: false,
        created_at: START,
    };
    let service = Operator {
        id: OperatorId::random(),
        username: "svc@local".into(),
        domain: None,
        kind: OperatorKind::Service,
        role: Role::Admin,
        password_hash: None,
        api_key_hash: Some(rand_hash()),
        disabled: false,
        created_at: START.plus(1),
    };
    s.operators.create_operator(user.clone()).await.unwrap();
    s.operators.create_operator(service.clone()).await.unwrap();
    s.operators
        .update_operator(
            service.id,
            OperatorPatch {
                disabled: Some(true),
                role: None,
            },
        )
        .await
        .unwrap();
    let session = session_of(user.id);
    s.operators
        .create_operator_session(session.clone())
        .await
        .unwrap();

    Populated {
        project: p.id,
        live_token: live.hash,
        resources: vec![room.resource.id, sub_id],
        addresses: vec![room.address.id, sub_addr],
        family: fam.id,
        embed: embed.token_hash,
        session: session.hash,
    }
}

/// Every table of `s`, for comparing whole installations.
/// Every audit event of the installation (the tests write far fewer than a page).
async fn all_audit_events(s: &Stores) -> Vec<AuditEvent> {
    let all = AuditFilter {
        project: None,
        since: UnixTime(0),
    };
    let page = AuditPage {
        offset: 0,
        limit: 100,
    };
    s.audit.audit_events(all, page).await.unwrap()
}

async fn dump(s: &Stores) -> Vec<(String, Vec<ExportRow>)> {
    s.transfer
        .export_all()
        .await
        .unwrap()
        .into_iter()
        .map(|(t, rows)| (t.to_string(), rows))
        .collect()
}

/// Moves a populated installation from `from` into the empty `to`: every row arrives as it
/// was and reads back as the same records; a second import, an unknown table and a bad row
/// are refused, the last without leaving anything in the (empty) `spare`.
pub async fn moves_intact(from: &Stores, to: &Stores, spare: &Stores) {
    let p = populate(from).await;
    let exported = dump(from).await;
    let names: Vec<&str> = exported.iter().map(|(t, _)| t.as_str()).collect();
    let listed: Vec<&str> = EXPORT_TABLES.iter().map(|t| t.name).collect();
    assert_eq!(names, listed);
    for (t, rows) in &exported {
        assert!(!rows.is_empty(), "populate left {t} empty");
    }
    // Given in reverse, imported in dependency order all the same. A check that a command
    // recorded on the empty target (with whatever key it was given) gives way to the source's.
    let mut input = exported.clone();
    input.reverse();
    let stray = MasterKeyCheck {
        value: rand_hash(),
        recorded_at: START,
    };
    to.keys.record_master_key_check(stray).await.unwrap();
    to.transfer.import_all(input.clone()).await.unwrap();
    assert_eq!(
        to.keys.master_key_check().await.unwrap(),
        from.keys.master_key_check().await.unwrap()
    );
    assert_eq!(
        dump(to).await,
        exported,
        "the installation changed on the way"
    );

    // The target reads the imported rows as the same records.
    assert_eq!(
        to.directory.get_project(p.project).await.unwrap(),
        from.directory.get_project(p.project).await.unwrap()
    );
    assert_eq!(
        to.directory.list_api_tokens(p.project).await.unwrap(),
        from.directory.list_api_tokens(p.project).await.unwrap()
    );
    assert!(to
        .directory
        .find_api_token(p.project, p.live_token)
        .await
        .unwrap()
        .is_some());
    assert_eq!(
        to.keys.list_keys().await.unwrap(),
        from.keys.list_keys().await.unwrap()
    );
    for id in &p.resources {
        assert_eq!(
            to.directory.get_resource(p.project, *id).await.unwrap(),
            from.directory.get_resource(p.project, *id).await.unwrap()
        );
    }
    for id in &p.addresses {
        assert_eq!(
            to.directory.get_address(p.project, *id).await.unwrap(),
            from.directory.get_address(p.project, *id).await.unwrap()
        );
    }
    assert_eq!(
        to.families.get_family(p.family).await.unwrap(),
        from.families.get_family(p.family).await.unwrap()
    );
    assert_eq!(
        to.directory.find_embed(p.embed).await.unwrap(),
        from.directory.find_embed(p.embed).await.unwrap()
    );
    assert_eq!(
        to.operators.find_operator_session(p.session).await.unwrap(),
        from.operators
            .find_operator_session(p.session)
            .await
            .unwrap()
    );
    assert_eq!(
        to.operators.list_operators().await.unwrap(),
        from.operators.list_operators().await.unwrap()
    );
    assert_eq!(all_audit_events(to).await, all_audit_events(from).await);
    // New audit events come after the imported ones.
    let later = AuditEvent {
        at: START,
        project_id: None,
        action: "after the move".into(),
        actor: "test".into(),
        subject: "s".into(),
        detail: Default::default(),
    };
    to.audit.append_audit(vec![later]).await.unwrap();
    let events = to
        .audit
        .audit_events(
            AuditFilter {
                project: None,
                since: UnixTime(0),
            },
            AuditPage {
                offset: 0,
                limit: 100,
            },
        )
        .await
        .unwrap();
    assert_eq!(events.len(), 3);
    assert_eq!(events[2].action, "after the move");

    // Never two installations in one database.
    let again = to.transfer.import_all(input.clone()).await;
    assert!(
        matches!(&again, Err(StoreError::Invalid(m)) if m.contains("not empty")),
        "{again:?}"
    );
    // An unknown table, a malformed row, a duplicate row: refused, nothing written.
    let unknown = spare
        .transfer
        .import_all(vec![("schema_version".into(), vec![])])
        .await;
    assert!(matches!(&unknown, Err(StoreError::Invalid(m)) if m.contains("unknown table")));
    let mut malformed = exported.clone();
    if let Some((_, rows)) = malformed.iter_mut().find(|(t, _)| t == "families") {
        rows[0].insert("generation".into(), serde_json::json!("two"));
    }
    let refused = spare.transfer.import_all(malformed).await;
    assert!(
        matches!(&refused, Err(StoreError::Invalid(m)) if m.contains("families.generation")),
        "{refused:?}"
    );
    let mut duplicated = exported.clone();
    if let Some((_, rows)) = duplicated.last_mut() {
        let first = rows[0].clone();
        rows.push(first);
    }
    let refused = spare.transfer.import_all(duplicated).await;
    assert!(
        matches!(&refused, Err(StoreError::Invalid(m)) if m.contains("operator_sessions")),
        "{refused:?}"
    );
    for (t, rows) in dump(spare).await {
        assert!(rows.is_empty(), "a refused import left rows in {t}");
    }
    // And the spare still takes the whole installation afterwards.
    spare.transfer.import_all(exported.clone()).await.unwrap();
    assert_eq!(dump(spare).await, exported);
}

fn sqlite_store(dir: &tempfile::TempDir, name: &str) -> tessera_store_sqlite::SqliteStore {
    tessera_store_sqlite::SqliteStore::open(dir.path().join(name)).unwrap()
}

#[tokio::test]
async fn sqlite_moves_intact_into_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let sqlite = |name| Stores::from_backend(Arc::new(sqlite_store(&dir, name)));
    moves_intact(&sqlite("from.db"), &sqlite("to.db"), &sqlite("spare.db")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_and_postgres_move_intact_into_each_other() {
    let Ok(base) = std::env::var("TESSERA_TEST_POSTGRES_URL") else {
        tessera_store_postgres::testing::skip(
            "TESSERA_TEST_POSTGRES_URL is not set; the PostgreSQL moves did not run",
        );
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let mut guards = Vec::new();
    let mut pg = Vec::new();
    for _ in 0..3 {
        let (url, guard) = tessera_store_postgres::testing::scratch_schema(&base).await;
        pg.push(Stores::from_backend(Arc::new(
            tessera_store_postgres::PgStore::connect(&url)
                .await
                .unwrap(),
        )));
        guards.push(guard);
    }
    // SQLite into PostgreSQL, then PostgreSQL into SQLite.
    let sqlite = |name| Stores::from_backend(Arc::new(sqlite_store(&dir, name)));
    moves_intact(&sqlite("a.db"), &pg[0], &pg[1]).await;
    moves_intact(&pg[2], &sqlite("b.db"), &sqlite("c.db")).await;
    drop(pg);
    for g in guards {
        g.drop_now().await;
    }
}
