//! Subscribers, rooms, addresses, pagination and project isolation.

use std::collections::HashSet;

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::*;

#[tokio::test]
async fn pagination_walks_every_subscriber_once() {
    let (app, p) = spawn_with_project().await;
    let mut created = HashSet::new();
    for i in 0..7 {
        created.insert(app.subscriber(&p, &format!("u{i}@example.com")).await.0);
    }
    let mut seen = HashSet::new();
    let mut query = "?page_size=3".to_string();
    let mut pages = 0;
    loop {
        let r = app.fabric(&p).list_subscribers(&query).await;
        let v = r.value().await;
        pages += 1;
        for s in v["data"].as_array().unwrap() {
            assert!(
                seen.insert(s["id"].as_str().unwrap().to_string()),
                "duplicate"
            );
        }
        match v["links"]["next"].as_str() {
            Some(next) => query = format!("?{}", next.split_once('?').unwrap().1),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(seen, created);
    let r = app.fabric(&p).list_subscribers("?page_number=2").await;
    assert_eq!(first_error(r).await.0, "page_token_required");
    let r = app
        .fabric(&p)
        .list_subscribers("?page_number=1&page_token=PAnope")
        .await;
    assert_eq!(first_error(r).await.0, "page_token_is_invalid");
}

#[tokio::test]
async fn a_project_sees_nothing_of_another() {
    let app = spawn_app().await;
    let (p1, p2) = (app.project().await, app.project().await);
    let (sid, addr) = app.subscriber(&p1, "kim@example.com").await;
    let room = app.room_address(&p1, "secret-room").await;
    let other = app.fabric(&p2);
    for (path, r) in [
        ("subscriber", other.get_subscriber(&sid).await),
        ("its addresses", other.subscriber_addresses(&sid).await),
        ("resource", other.resource(&sid).await),
        ("its address", other.address(&addr).await),
        ("room address", other.address(&room).await),
    ] {
        assert_eq!(r.status(), StatusCode::NOT_FOUND, "{path}");
        assert_eq!(r.value().await, json!({"error": "Not Found"}));
    }
    for (path, r) in [
        ("subscribers", other.list_subscribers("").await),
        ("addresses", other.addresses("").await),
        ("resources", other.resources("").await),
        ("rooms", other.list_rooms("").await),
    ] {
        let v = r.value().await;
        assert_eq!(v["data"], json!([]), "{path}");
    }
    let (code, attr) = first_error(
        app.fabric(&p2)
            .guest_token(json!({"allowed_addresses": [room]}))
            .await,
    )
    .await;
    assert_eq!(
        (code.as_str(), attr),
        ("must_belong_to_project", json!("allowed_addresses"))
    );
    let r = app.fabric(&p2).delete_subscriber(&sid).await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    assert_eq!(
        app.fabric(&p1).get_subscriber(&sid).await.status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn wrong_or_revoked_credentials_are_unauthorized() {
    let (app, p) = spawn_with_project().await;
    let bad = Project {
        id: p.id.clone(),
        token: "tsr_wrong".into(),
    };
    let r = app.fabric(&bad).addresses("").await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(r.value().await, json!({"error": "Unauthorized"}));
    let r = app.fabric_anonymous().addresses("").await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let pid = p.id.parse().unwrap();
    let (second, secret) = app.admin.new_api_token(pid, "ci").await.unwrap();
    let p2 = Project {
        id: p.id.clone(),
        token: secret.into_inner(),
    };
    assert_eq!(app.fabric(&p2).addresses("").await.status(), StatusCode::OK);
    app.admin.revoke_api_token(None, second.id).await.unwrap();
    assert_eq!(
        app.fabric(&p2).addresses("").await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(app.fabric(&p).addresses("").await.status(), StatusCode::OK);
}

#[tokio::test]
async fn subscriber_crud_merges_updates_and_rejects_duplicate_email() {
    let (app, p) = spawn_with_project().await;
    let r = app
        .fabric(&p)
        .create_subscriber(
            json!({"email": "lee@example.com", "first_name": "Lee", "last_name": "Ng"}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let s = r.value().await;
    assert_eq!(s["type"], "subscriber");
    let id = s["id"].as_str().unwrap();
    let r = app
        .fabric(&p)
        .update_subscriber(id, json!({"display_name": "Z"}))
        .await;
    let u = r.value().await;
    assert_eq!(u["subscriber"]["display_name"], "Z");
    assert_eq!(u["subscriber"]["first_name"], "Lee");
    assert_eq!(u["display_name"], "Z");
    let (code, attr) = first_error(
        app.fabric(&p)
            .create_subscriber(json!({"email": "LEE@example.com"}))
            .await,
    )
    .await;
    assert_eq!(
        (code.as_str(), attr),
        ("not_unique_within_project", json!("email"))
    );
}

#[tokio::test]
async fn rooms_store_what_clients_send_and_filters_work() {
    let (app, p) = spawn_with_project().await;
    let r = app.fabric(&p).create_room(json!({"name": "standup", "display_name": "Stand-up", "max_members": 12, "enable_room_previews": true})).await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let room = r.value().await;
    assert_eq!(room["conference_room"]["max_members"], 12);
    let id = room["id"].as_str().unwrap();
    let r = app
        .fabric(&p)
        .update_room(id, json!({"max_members": 20}))
        .await;
    let room = r.value().await;
    assert_eq!(room["conference_room"]["max_members"], 20);
    assert_eq!(room["conference_room"]["enable_room_previews"], true);
    app.subscriber(&p, "mo@example.com").await;
    let v = app.fabric(&p).addresses("?type=room").await.value().await;
    assert_eq!(v["data"].as_array().unwrap().len(), 1);
    assert_eq!(
        v["data"][0]["channels"]["audio"],
        "/public/standup?channel=audio"
    );
    let v = app
        .fabric(&p)
        .addresses("?display_name=Stand-up")
        .await
        .value()
        .await;
    assert_eq!(v["data"].as_array().unwrap().len(), 1);
    let v = app.fabric(&p).addresses("?type=call").await.value().await;
    assert_eq!(v["data"], json!([]));
    let r = app.fabric(&p).delete_room(id).await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        app.fabric(&p).get_room(id).await.status(),
        StatusCode::NOT_FOUND
    );
}
