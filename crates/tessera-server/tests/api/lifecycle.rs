//! Introspection, revocation, key rotation under load, cleanup and audit.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use tessera_core::ids::ProjectId;
use tessera_core::keyring::KeyPurpose;
use tessera_core::maintenance::pending_key;
use tessera_core::model::{AuditEvent, AuditFilter};

use crate::helpers::*;

async fn introspect(app: &TestApp, p: &Project, token: &str) -> Value {
    let r = app.fabric(p).introspect(token).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["content-type"], "application/json");
    r.json().await.unwrap()
}

/// Stopping the server writes the audit events of the requests it answered, even those the
/// audit log was holding back for company under load: read right after the restart, without
/// waiting, every grant is there.
#[tokio::test]
async fn stopping_writes_the_audit_events_of_answered_requests() {
    let (app, p) = spawn_with_project().await;
    let room = app.room_address(&p, "lobby").await;
    let mut tasks = Vec::new();
    for _ in 0..32 {
        let (project, body) = (app.fabric(&p), json!({"allowed_addresses": [room]}));
        tasks.push(tokio::spawn(async move {
            project.guest_token(body).await.status()
        }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap(), StatusCode::CREATED);
    }
    let app = app.restart().await;
    let issued = audit_of(&app, p.id.parse().unwrap())
        .await
        .into_iter()
        .filter(|e| e.action == "token.issued")
        .count();
    assert_eq!(issued, 32);
}

/// Repeated addresses count once, in the order first named.
#[tokio::test]
async fn guest_addresses_named_twice_count_once_in_first_seen_order() {
    let (app, p) = spawn_with_project().await;
    let mut rooms = Vec::new();
    for i in 0..4 {
        rooms.push(app.room_address(&p, &format!("room {i}")).await);
    }
    let named = [3, 1, 3, 3, 0, 1, 2, 0, 2, 3].map(|i| &rooms[i]);
    let g = app
        .fabric(&p)
        .guest_token(json!({"allowed_addresses": named}))
        .await
        .value()
        .await;
    let v = introspect(&app, &p, g["token"].as_str().unwrap()).await;
    let want = [3, 1, 0, 2].map(|i| &rooms[i]);
    assert_eq!(v["allowed_addresses"], json!(want));
}

#[tokio::test]
async fn introspection_answers_active_only_for_live_access_tokens_of_the_project() {
    let app = spawn_app().await;
    let (p, other) = (app.project().await, app.project().await);
    let room = app.room_address(&p, "lobby").await;
    let g: Value = app.fabric(&p).guest(&[room.as_str()]).await;
    let access = g["token"].as_str().unwrap();
    let v = introspect(&app, &p, access).await;
    assert_eq!(v["active"], true);
    assert_eq!(v["kind"], "guest");
    assert_eq!(v["project_id"], p.id.as_str());
    assert_eq!(v["allowed_addresses"], json!([room]));
    assert_eq!(v["token_type"], "Bearer");
    for k in ["sub", "jti", "family_id"] {
        assert!(v[k].as_str().unwrap().parse::<uuid::Uuid>().is_ok(), "{k}");
    }
    assert!(v["exp"].as_i64().unwrap() > v["iat"].as_i64().unwrap());
    // A guest token has no application: the member is there, and null.
    assert_eq!(v.get("application_id"), Some(&Value::Null));
    // JSON bodies work too.
    let r = app
        .fabric(&p)
        .raw(Method::POST, fabric_path::INTROSPECT)
        .json(&json!({"token": access}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.value().await["active"], true);
    let inactive = json!({"active": false});
    assert_eq!(
        introspect(&app, &other, access).await,
        inactive,
        "another project's token"
    );
    assert_eq!(
        introspect(&app, &p, g["refresh_token"].as_str().unwrap()).await,
        inactive,
        "refresh as access"
    );
    assert_eq!(introspect(&app, &p, "garbage").await, inactive);
    let r = app.fabric_anonymous().introspect(access).await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    // Revocation by refresh token kills the access token too; unknown tokens answer 200.
    let r = app
        .fabric(&p)
        .revoke(g["refresh_token"].as_str().unwrap())
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(
        introspect(&app, &p, access).await,
        inactive,
        "revoked family"
    );
    let r = app.fabric(&p).revoke("nope").await;
    assert_eq!(r.status(), StatusCode::OK);
    // Expiry, by the manual clock.
    let s: Value = app.fabric(&p).grant("x").await;
    assert_eq!(
        introspect(&app, &p, s["token"].as_str().unwrap()).await["active"],
        true
    );
    app.clock.advance(2 * 3600 + 60);
    assert_eq!(
        introspect(&app, &p, s["token"].as_str().unwrap()).await,
        inactive,
        "expired"
    );
}

#[tokio::test]
async fn rotation_during_load_fails_nothing_and_old_tokens_stay_active() {
    let (app, p) = spawn_with_project().await;
    let state_store = app.admin.stores.keys.clone();
    let mut before = Vec::new();
    for i in 0..5 {
        let t = app.fabric(&p).grant(&format!("r{i}")).await;
        before.push(t);
    }
    // Load: issue and refresh concurrently while keys rotate.
    let mut tasks = Vec::new();
    for i in 0..4 {
        let project = app.fabric(&p);
        tasks.push(tokio::spawn(async move {
            let mut statuses = Vec::new();
            for j in 0..15 {
                let t = project
                    .subscriber_token(json!({"reference": format!("load{i}-{j}")}))
                    .await
                    .value()
                    .await;
                let r = project.refresh(&t["refresh_token"]).await;
                statuses.push(r.status());
            }
            statuses
        }));
    }
    for purpose in KeyPurpose::ALL {
        state_store
            .insert_key(pending_key(
                &app.admin.master,
                purpose,
                tessera_core::Clock::now(&app.clock),
            ))
            .await
            .unwrap();
    }
    app.maintenance().sync_keys().await.unwrap();
    app.clock.advance(60);
    app.maintenance().sync_keys().await.unwrap();
    for t in tasks {
        for s in t.await.unwrap() {
            assert_eq!(s, StatusCode::CREATED);
        }
    }
    let keys = state_store.list_keys().await.unwrap();
    assert_eq!(
        keys.iter()
            .filter(|k| k.state == tessera_core::keyring::KeyState::Retired)
            .count(),
        KeyPurpose::ALL.len()
    );
    for t in &before {
        assert_eq!(
            introspect(&app, &p, t["token"].as_str().unwrap()).await["active"],
            true
        );
        let r = app.fabric(&p).refresh(&t["refresh_token"]).await;
        assert_eq!(
            r.status(),
            StatusCode::CREATED,
            "old refresh token under a retired key"
        );
    }
    // New tokens use the new keys.
    let t: Value = app.fabric(&p).grant("after").await;
    let kid = header(t["token"].as_str().unwrap())["kid"]
        .as_str()
        .unwrap()
        .to_string();
    let active = keys
        .iter()
        .find(|k| {
            k.purpose == KeyPurpose::Access && k.state == tessera_core::keyring::KeyState::Active
        })
        .unwrap();
    assert_eq!(kid, active.kid);
}

#[tokio::test]
async fn cleanup_returns_the_families_table_to_its_live_size() {
    let (app, p) = spawn_with_project().await;
    let room = app.room_address(&p, "lobby").await;
    for _ in 0..10 {
        app.fabric(&p)
            .guest_token(json!({"allowed_addresses": [room]}))
            .await;
    }
    let store = app.admin.stores.families.clone();
    assert_eq!(store.count_families().await.unwrap(), 10);
    app.clock.advance(3600);
    let live: Value = app.fabric(&p).grant("live").await;
    app.maintenance().purge().await.unwrap();
    assert_eq!(
        store.count_families().await.unwrap(),
        11,
        "nothing purged before expiry"
    );
    app.clock.advance(2 * 3600);
    app.maintenance().purge().await.unwrap();
    assert_eq!(
        store.count_families().await.unwrap(),
        1,
        "only the live family remains"
    );
    let r = app.fabric(&p).refresh(&live["refresh_token"]).await;
    assert_eq!(r.status(), StatusCode::CREATED);
}

/// A project's audit events, oldest first, as the store holds them.
async fn audit_of(app: &TestApp, project: ProjectId) -> Vec<AuditEvent> {
    let since = tessera_core::UnixTime(0);
    app.admin.audit_tail(Some(project), since).await.unwrap()
}

/// The project's audit actions once `issued` `token.issued` events have been written (the
/// request path queues them).
async fn audit_after_grants(app: &TestApp, project: &str, issued: usize) -> Vec<String> {
    let pid = project.parse().unwrap();
    for _ in 0..200 {
        let actions: Vec<String> = audit_of(app, pid)
            .await
            .into_iter()
            .map(|e| e.action)
            .collect();
        if actions.iter().filter(|a| *a == "token.issued").count() >= issued {
            return actions;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    panic!("the audit log never showed {issued} grants");
}

#[tokio::test]
async fn audit_events_are_purged_once_past_the_retention_and_kept_without_one() {
    for days in [1, 0] {
        let app = spawn_with(|c| c.audit_retention_days = days).await;
        let p = app.project().await;
        let room = app.room_address(&p, "lobby").await;
        let project = app.fabric(&p);
        let grant = || project.guest_token(json!({"allowed_addresses": [room]}));
        grant().await;
        let old = audit_after_grants(&app, &p.id, 1).await;
        app.clock.advance(2 * 24 * 3600);
        grant().await;
        let all = audit_after_grants(&app, &p.id, 2).await;
        let counts = app.maintenance().purge().await.unwrap();
        let left = app
            .admin
            .stores
            .audit
            .count_audit_events(AuditFilter {
                project: Some(p.id.parse().unwrap()),
                since: tessera_core::UnixTime(0),
            })
            .await
            .unwrap() as usize;
        if days > 0 {
            // Everything from before the clock moved (the set-up's events and the first
            // grant) is past a day's retention; the second grant's event stays.
            assert_eq!(left, all.len() - old.len(), "{all:?}");
            assert!(counts.audit_events >= old.len() as u64, "{counts:?}");
        } else {
            assert_eq!(left, all.len());
            assert_eq!(counts.audit_events, 0);
        }
    }
}

#[tokio::test]
async fn audit_events_record_issuance_refresh_and_reuse_without_secrets() {
    let app = spawn_with(|c| c.refresh_grace = std::time::Duration::ZERO).await;
    let p = app.project().await;
    let t = app
        .fabric(&p)
        .grant_with(json!({"reference": "aud", "password": "a secret pw"}))
        .await;
    app.fabric(&p).refresh(&t["refresh_token"]).await;
    app.fabric(&p).refresh(&t["refresh_token"]).await;
    let (sid, _) = app.subscriber(&p, "pw@example.com").await;
    let r = app
        .fabric(&p)
        .update_subscriber(&sid, json!({"password": "another secret"}))
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let pid = p.id.parse().unwrap();
    let (extra, extra_secret) = app.admin.new_api_token(pid, "ci").await.unwrap();
    let extra_id = extra.id;
    app.admin
        .revoke_api_token(Some(pid), extra_id)
        .await
        .unwrap();
    let mut events = Vec::new();
    for _ in 0..200 {
        events = audit_of(&app, pid).await;
        if events.len() >= 9 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    // The request path queues its events while admin commands append directly, so only each
    // source's own order is fixed.
    let actions: Vec<&str> = events.iter().map(|e| e.action.as_str()).collect();
    let (queued, direct): (Vec<&str>, Vec<&str>) = actions
        .into_iter()
        .partition(|a| !a.starts_with("project.") && !a.starts_with("api_token."));
    assert_eq!(
        queued,
        [
            "subscriber.password_set",
            "token.issued",
            "token.refreshed",
            "refresh.reuse_detected",
            "subscriber.password_changed",
        ]
    );
    assert_eq!(
        direct,
        [
            "project.created",
            "api_token.created",
            "api_token.created",
            "api_token.revoked",
        ]
    );
    let text = format!("{events:?}");
    for secret in [
        t["token"].as_str().unwrap(),
        t["refresh_token"].as_str().unwrap(),
        "a secret pw",
        "another secret",
        p.token.as_str(),
        extra_secret.expose().as_str(),
    ] {
        assert!(!text.contains(secret));
    }
}

#[tokio::test]
async fn metrics_count_requests_tokens_refreshes_introspections_and_keys() {
    let app = spawn_with(|c| c.refresh_grace = std::time::Duration::ZERO).await;
    let p = app.project().await;
    let t: Value = app.fabric(&p).grant("m").await;
    for _ in 0..2 {
        app.fabric(&p).refresh(&t["refresh_token"]).await;
    }
    introspect(&app, &p, t["token"].as_str().unwrap()).await;
    introspect(&app, &p, "garbage").await;
    let r = app.metrics().await;
    assert_eq!(r.status(), StatusCode::OK);
    assert!(r.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain; version=0.0.4"));
    let text = r.text().await.unwrap();
    for line in [
        r#"tessera_tokens_issued_total{kind="subscriber"} 1"#,
        r#"tessera_tokens_issued_total{kind="guest"} 0"#,
        r#"tessera_refreshes_total{result="rotated"} 1"#,
        r#"tessera_refreshes_total{result="reuse_detected"} 1"#,
        "tessera_refresh_reuse_detections_total 1",
        r#"tessera_introspections_total{result="active"} 0"#,
        r#"tessera_introspections_total{result="inactive"} 2"#,
        r#"tessera_http_requests_total{route="/api/fabric/subscribers/tokens",method="POST",status="200"} 1"#,
        r#"tessera_http_requests_total{route="/api/fabric/subscribers/tokens/refresh",method="POST",status="201"} 1"#,
        r#"tessera_http_requests_total{route="/api/fabric/subscribers/tokens/refresh",method="POST",status="422"} 1"#,
        r#"tessera_http_request_duration_seconds_count{route="/oauth2/introspect",method="POST",status="200"} 2"#,
        r#"tessera_store_operation_duration_seconds_count{op="grant_subscriber"} 1"#,
    ] {
        assert!(text.contains(line), "missing {line:?} in\n{text}");
    }
    // The access token was revoked with its family by the reuse, so it introspected inactive.
    // Every live key shows an age and an encryption count; the access key sealed 2 tokens.
    let access = text
        .lines()
        .find(|l| {
            l.starts_with("tessera_key_encryptions{")
                && l.contains(r#"purpose="access",state="active""#)
        })
        .expect("an active access key");
    assert!(access.ends_with(" 2"), "{access}");
    assert!(text.contains("tessera_key_age_seconds{"));
    // Label values are route templates, never raw paths with ids in them.
    assert!(!text.contains(&p.id));
}
