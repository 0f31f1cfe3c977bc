//! Token issuance, refresh rotation, reuse detection, durability.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::helpers::*;

#[tokio::test]
async fn healthz_answers_with_a_request_id() {
    let app = spawn_app().await;
    let r = app.healthz().await;
    assert_eq!(r.status(), StatusCode::OK);
    assert!(r.headers().contains_key("x-request-id"));
    let r = app.client.get(app.url("/nope")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    assert!(r.headers().contains_key("x-request-id"));
    assert_eq!(r.value().await, json!({"error": "Not Found"}));
}

#[tokio::test]
async fn subscriber_token_upserts_and_refresh_rotates() {
    let (app, p) = spawn_with_project().await;
    let t = app
        .fabric(&p)
        .grant_with(json!({"reference": "Alice@Example.com", "time_zone": "UTC"}))
        .await;
    let sid = t["subscriber_id"].as_str().unwrap().to_string();
    assert_eq!(header(t["token"].as_str().unwrap())["typ"], "SAT");
    assert_eq!(
        header(t["refresh_token"].as_str().unwrap())["typ"],
        "Refresh"
    );
    // The same reference in another case finds the same subscriber and patches it.
    let t2 = app
        .fabric(&p)
        .grant_with(json!({"reference": "alice@example.com", "first_name": "A"}))
        .await;
    assert_eq!(t2["subscriber_id"], sid.as_str());
    let s = app.fabric(&p).get_subscriber(&sid).await.value().await;
    assert_eq!(s["subscriber"]["timezone"], "UTC");
    assert_eq!(s["subscriber"]["first_name"], "A");
    // The subscriber id also works as a reference.
    let t3 = app.fabric(&p).grant(&sid).await;
    assert_eq!(t3["subscriber_id"], sid.as_str());

    let rt = t["refresh_token"].as_str().unwrap();
    let r = app.fabric(&p).refresh(&rt).await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let n = r.value().await;
    assert_ne!(n["token"], t["token"]);
    assert_ne!(n["refresh_token"], t["refresh_token"]);
    let r = app.fabric(&p).refresh(&n["refresh_token"]).await;
    assert_eq!(r.status(), StatusCode::CREATED);
}

#[tokio::test]
async fn reuse_after_the_grace_window_revokes_the_whole_family() {
    let (app, p) = spawn_with_project().await;
    let t: Value = app.fabric(&p).grant("bob").await;
    let old = t["refresh_token"].clone();
    let n = app.fabric(&p).refresh(&old).await.value().await;
    // Within the 5 s grace window the spent token is honoured (an honest retry)...
    app.clock.advance(2);
    let r = app.fabric(&p).refresh(&old).await;
    assert_eq!(r.status(), StatusCode::CREATED);
    // ...after it, it is a replay: the family dies, including the newest refresh token and
    // the access token (as a Bearer).
    app.clock.advance(10);
    let (code, attr) = first_error(app.fabric(&p).refresh(&old).await).await;
    assert_eq!(
        (code.as_str(), attr),
        ("token_invalid", json!("refresh_token"))
    );
    let r = app.fabric(&p).refresh(&n["refresh_token"]).await;
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let r = app
        .fabric_bearer(n["token"].as_str().unwrap())
        .addresses("")
        .await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn grace_zero_makes_concurrent_refreshes_yield_exactly_one_winner() {
    let app = spawn_with(|c| c.refresh_grace = std::time::Duration::ZERO).await;
    let p = app.project().await;
    let t: Value = app.fabric(&p).grant("carol").await;
    let rt = t["refresh_token"].as_str().unwrap().to_string();
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let (project, rt) = (app.fabric(&p), rt.clone());
        tasks.push(tokio::spawn(
            async move { project.refresh(&rt).await.status() },
        ));
    }
    let mut statuses = Vec::new();
    for t in tasks {
        statuses.push(t.await.unwrap());
    }
    assert_eq!(
        statuses
            .iter()
            .filter(|s| **s == StatusCode::CREATED)
            .count(),
        1,
        "{statuses:?}"
    );
    assert!(
        statuses
            .iter()
            .all(|s| *s == StatusCode::CREATED || *s == StatusCode::UNPROCESSABLE_ENTITY),
        "{statuses:?}"
    );
}

#[tokio::test]
async fn expired_refresh_tokens_say_token_expired_and_access_tokens_are_not_refresh_tokens() {
    let (app, p) = spawn_with_project().await;
    let t: Value = app.fabric(&p).grant("dave").await;
    let (code, _) = first_error(app.fabric(&p).refresh(&t["token"]).await).await;
    assert_eq!(code, "not_a_refresh_token");
    app.clock.advance(2 * 3600 + 5 * 60 + 60);
    let (code, attr) = first_error(app.fabric(&p).refresh(&t["refresh_token"]).await).await;
    assert_eq!(
        (code.as_str(), attr),
        ("token_expired", json!("refresh_token"))
    );
}

#[tokio::test]
async fn another_projects_credentials_cannot_refresh() {
    let app = spawn_app().await;
    let (p1, p2) = (app.project().await, app.project().await);
    let t: Value = app.fabric(&p1).grant("erin").await;
    let (code, _) = first_error(app.fabric(&p2).refresh(&t["refresh_token"]).await).await;
    assert_eq!(code, "token_invalid");
    // And the failed attempt did not spend it.
    let r = app.fabric(&p1).refresh(&t["refresh_token"]).await;
    assert_eq!(r.status(), StatusCode::CREATED);
}

#[tokio::test]
async fn tokens_handed_out_survive_a_restart() {
    let (app, p) = spawn_with_project().await;
    let a = app.room_address(&p, "lobby").await;
    let g: Value = app.fabric(&p).guest(&[a.as_str()]).await;
    let s: Value = app.fabric(&p).grant("frank").await;
    let app = app.restart().await;
    for rt in [&g["refresh_token"], &s["refresh_token"]] {
        let r = app.fabric(&p).refresh(&rt).await;
        assert_eq!(r.status(), StatusCode::CREATED);
    }
}

/// A token answer is a JSON object of exactly `members`, each a non-empty string.
async fn assert_token_members(r: reqwest::Response, members: &[&str]) {
    assert_eq!(r.headers()["content-type"], "application/json");
    let body = r.value().await;
    let mut names: Vec<&str> = body
        .as_object()
        .unwrap()
        .keys()
        .map(|k| k.as_str())
        .collect();
    names.sort_unstable();
    assert_eq!(names, members);
    for m in members {
        assert!(!body[m].as_str().unwrap().is_empty(), "{m}");
    }
}

#[tokio::test]
async fn guest_invite_and_embed_tokens() {
    let (app, p) = spawn_with_project().await;
    let room = app.room_address(&p, "lobby").await;
    let (_, sub_addr) = app.subscriber(&p, "gina@example.com").await;
    let r = app
        .fabric(&p)
        .guest_token(json!({"allowed_addresses": [room, sub_addr], "expire_at": START.0 + 86_400}))
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    assert_token_members(r, &["refresh_token", "token"]).await;
    let r = app
        .fabric(&p)
        .guest_token(json!({"allowed_addresses": [room], "expire_at": "2027-01-15T00:00:00Z"}))
        .await;
    // START is in 2027-01-15; an RFC 3339 expiry before it is in the past.
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let r = app.fabric(&p).invite(json!({"address_id": sub_addr})).await;
    assert_eq!(r.status(), StatusCode::CREATED);
    assert_token_members(r, &["token"]).await;
    // A room is not a subscriber address.
    let (code, attr) = first_error(app.fabric(&p).invite(json!({"address_id": room})).await).await;
    assert_eq!(
        (code.as_str(), attr),
        ("invalid_parameter", json!("address_id"))
    );

    let pid = p.id.parse().unwrap();
    let e = app
        .admin
        .create_embed(pid, &[room.parse().unwrap()])
        .await
        .unwrap();
    let c2c = e.token.expose().as_str();
    // No authentication at all.
    let r = app.fabric_anonymous().embed_token(c2c).await;
    assert_eq!(r.status(), StatusCode::CREATED);
    assert_token_members(r, &["token"]).await;
    // A wrong Authorization header is ignored.
    let r = app
        .fabric_anonymous()
        .raw(Method::POST, fabric_path::EMBED_TOKENS)
        .basic_auth("x", Some("y"))
        .json(&json!({"token": c2c}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let r = app
        .fabric_anonymous()
        .embed_token("c2c_00000000000000000000000000000000")
        .await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let (code, _) = first_error(app.fabric_anonymous().embed_token("abc").await).await;
    assert_eq!(code, "token_has_invalid_prefix");
}

#[tokio::test]
async fn the_embed_exchange_is_rate_limited_per_client_address() {
    let app = spawn_with(|c| c.embed_rate_per_minute = 3.try_into().unwrap()).await;
    let unknown = "c2c_00000000000000000000000000000000";
    for _ in 0..3 {
        let r = app.fabric_anonymous().embed_token(unknown).await;
        assert_eq!(r.status(), StatusCode::NOT_FOUND);
    }
    let r = app.fabric_anonymous().embed_token(unknown).await;
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(r.headers().contains_key("retry-after"));
    app.clock.advance(60);
    let r = app.fabric_anonymous().embed_token(unknown).await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn bearer_sat_has_subscriber_scope_and_guests_have_none() {
    let (app, p) = spawn_with_project().await;
    let room = app.room_address(&p, "hall").await;
    let (_, other_addr) = app.subscriber(&p, "other@example.com").await;
    let t: Value = app.fabric(&p).grant("hank@example.com").await;
    let sat = t["token"].as_str().unwrap();
    let list = app.fabric_bearer(sat).addresses("").await.value().await;
    let ids: Vec<&str> = list["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["id"].as_str().unwrap())
        .collect();
    assert!(ids.contains(&room.as_str()));
    assert!(
        !ids.contains(&other_addr.as_str()),
        "another subscriber's address is not visible"
    );
    assert_eq!(ids.len(), 2, "the room and the subscriber's own address");
    let own = ids.iter().find(|i| **i != room).unwrap().to_string();
    let r = app
        .fabric_bearer(sat)
        .invite(json!({"address_id": own}))
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let r = app
        .fabric_bearer(sat)
        .invite(json!({"address_id": other_addr}))
        .await;
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let g: Value = app.fabric(&p).guest(&[room.as_str()]).await;
    let r = app
        .fabric_bearer(g["token"].as_str().unwrap())
        .addresses("")
        .await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(r.value().await, json!({"error": "Unauthorized"}));
    // A refresh token is not a Bearer credential, and Bearer is not accepted for tokens.
    let r = app
        .fabric_bearer(t["refresh_token"].as_str().unwrap())
        .addresses("")
        .await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let r = app
        .fabric_bearer(sat)
        .guest_token(json!({"allowed_addresses": [room]}))
        .await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    // An expired SAT is refused.
    app.clock.advance(3 * 3600);
    assert_eq!(
        app.fabric_bearer(sat).addresses("").await.status(),
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn password_change_and_deletion_revoke_the_subscribers_sessions() {
    let (app, p) = spawn_with_project().await;
    let t: Value = app.fabric(&p).grant("ivy@example.com").await;
    let sid = t["subscriber_id"].as_str().unwrap();
    let r = app
        .fabric(&p)
        .update_subscriber(sid, json!({"password": "correct horse"}))
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let r = app.fabric(&p).refresh(&t["refresh_token"]).await;
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let t: Value = app.fabric(&p).grant("ivy@example.com").await;
    let r = app.fabric(&p).delete_subscriber(sid).await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let r = app.fabric(&p).refresh(&t["refresh_token"]).await;
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
}

#[tokio::test]
async fn unbound_sat_refresh_scope_is_capped_at_sixty_seconds() {
    let (app, p) = spawn_with_project().await;
    let t = app
        .fabric(&p)
        .grant_with(json!({"reference": "jo", "scope": "sat:refresh"}))
        .await;
    let sat = t["token"].as_str().unwrap();
    assert_eq!(
        app.fabric_bearer(sat).addresses("").await.status(),
        StatusCode::OK
    );
    app.clock.advance(61 + 5);
    assert_eq!(
        app.fabric_bearer(sat).addresses("").await.status(),
        StatusCode::UNAUTHORIZED
    );
}

/// Grants a subscriber token for `reference` with a profile field and a password; returns
/// the answer.
async fn grant_as(app: &TestApp, p: &Project, reference: &str, first_name: &str) -> Value {
    let r = app
        .fabric(p)
        .subscriber_token(json!({
            "reference": reference,
            "first_name": first_name,
            "password": format!("{first_name}'s password"),
        }))
        .await;
    assert_eq!(r.status(), StatusCode::OK, "{reference:?}");
    r.json().await.unwrap()
}

/// A reference that only Unicode case mapping or normalisation would make another (KELVIN
/// SIGN for `K`, ANGSTROM SIGN for `Å`, fullwidth letters, final sigma…) is a subscriber of
/// its own: granting it, with a profile and a password, neither patches the other, nor sets
/// its password, nor ends its sessions; in either order of creation. ASCII case still folds.
#[tokio::test]
async fn look_alike_references_are_subscribers_of_their_own() {
    let app = spawn_app().await;
    for reverse in [false, true] {
        let p = app.project().await;
        for (a, b) in crate::store_contract::LOOK_ALIKES {
            let (first, second) = if reverse { (b, a) } else { (a, b) };
            let original = grant_as(&app, &p, first, "Original").await;
            let sid = original["subscriber_id"].as_str().unwrap();
            let other = grant_as(&app, &p, second, "Mallory").await;
            assert_ne!(other["subscriber_id"], sid, "{second:?} reached {first:?}");
            let s = app.fabric(&p).get_subscriber(sid).await.value().await;
            assert_eq!(s["subscriber"]["first_name"], "Original", "{first:?}");
            assert_eq!(s["subscriber"]["email"], first);
            // A password set on the subscriber would have revoked this session.
            let r = app.fabric(&p).refresh(&original["refresh_token"]).await;
            assert_eq!(r.status(), StatusCode::CREATED, "{first:?}'s session ended");
            // Each is found again by itself (with a fresh family of its own each time).
            for (name, id) in [
                (first, sid),
                (second, other["subscriber_id"].as_str().unwrap()),
            ] {
                let again = app
                    .fabric(&p)
                    .subscriber_token(json!({"reference": name}))
                    .await;
                let again = again.value().await;
                assert_eq!(again["subscriber_id"], id, "{name:?}");
            }
        }
    }
    let p = app.project().await;
    let kate = grant_as(&app, &p, "kate@example.com", "Kate").await;
    let upper = app
        .fabric(&p)
        .subscriber_token(json!({"reference": "KATE@EXAMPLE.COM"}))
        .await;
    let upper = upper.value().await;
    assert_eq!(upper["subscriber_id"], kate["subscriber_id"]);
}
