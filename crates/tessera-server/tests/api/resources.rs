//! Subscribers, rooms, addresses, pagination and project isolation.

use std::collections::HashSet;

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::*;

#[tokio::test]
async fn pagination_walks_every_subscriber_once() {
    let app = spawn_app().await;
    let p = app.project().await;
    let mut created = HashSet::new();
    for i in 0..7 {
        created.insert(app.subscriber(&p, &format!("u{i}@example.com")).await.0);
    }
    let mut seen = HashSet::new();
    let mut path = "/api/fabric/resources/subscribers?page_size=3".to_string();
    let mut pages = 0;
    loop {
        let v: Value = app.get(&p, &path).await.json().await.unwrap();
        pages += 1;
        for s in v["data"].as_array().unwrap() {
            assert!(
                seen.insert(s["id"].as_str().unwrap().to_string()),
                "duplicate"
            );
        }
        match v["links"]["next"].as_str() {
            Some(next) => {
                path = format!(
                    "/api/fabric/resources/subscribers?{}",
                    next.split_once('?').unwrap().1
                )
            }
            None => break,
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(seen, created);
    let r = app
        .get(&p, "/api/fabric/resources/subscribers?page_number=2")
        .await;
    assert_eq!(first_error(r).await.0, "page_token_required");
    let r = app
        .get(
            &p,
            "/api/fabric/resources/subscribers?page_number=1&page_token=PAnope",
        )
        .await;
    assert_eq!(first_error(r).await.0, "page_token_is_invalid");
}

#[tokio::test]
async fn a_project_sees_nothing_of_another() {
    let app = spawn_app().await;
    let (p1, p2) = (app.project().await, app.project().await);
    let (sid, addr) = app.subscriber(&p1, "kim@example.com").await;
    let room = app.room_address(&p1, "secret-room").await;
    for path in [
        format!("/api/fabric/resources/subscribers/{sid}"),
        format!("/api/fabric/resources/subscribers/{sid}/addresses"),
        format!("/api/fabric/resources/{sid}"),
        format!("/api/fabric/addresses/{addr}"),
        format!("/api/fabric/addresses/{room}"),
    ] {
        let r = app.get(&p2, &path).await;
        assert_eq!(r.status(), StatusCode::NOT_FOUND, "{path}");
        assert_eq!(
            r.json::<Value>().await.unwrap(),
            json!({"error": "Not Found"})
        );
    }
    for path in [
        "/api/fabric/resources/subscribers",
        "/api/fabric/addresses",
        "/api/fabric/resources",
        "/api/fabric/resources/conference_rooms",
    ] {
        let v: Value = app.get(&p2, path).await.json().await.unwrap();
        assert_eq!(v["data"], json!([]), "{path}");
    }
    let (code, attr) = first_error(
        app.post(
            &p2,
            "/api/fabric/guests/tokens",
            json!({"allowed_addresses": [room]}),
        )
        .await,
    )
    .await;
    assert_eq!(
        (code.as_str(), attr),
        ("must_belong_to_project", json!("allowed_addresses"))
    );
    let r = app
        .client
        .delete(app.url(&format!("/api/fabric/resources/subscribers/{sid}")))
        .basic_auth(&p2.id, Some(&p2.token))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    assert_eq!(
        app.get(&p1, &format!("/api/fabric/resources/subscribers/{sid}"))
            .await
            .status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn wrong_or_revoked_credentials_are_unauthorized() {
    let app = spawn_app().await;
    let p = app.project().await;
    let bad = Project {
        id: p.id.clone(),
        token: "tsr_wrong".into(),
    };
    let r = app.get(&bad, "/api/fabric/addresses").await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        r.json::<Value>().await.unwrap(),
        json!({"error": "Unauthorized"})
    );
    let r = app
        .client
        .get(app.url("/api/fabric/addresses"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let pid = p.id.parse().unwrap();
    let (second, secret) = app.admin.new_api_token(pid, "ci").await.unwrap();
    let p2 = Project {
        id: p.id.clone(),
        token: secret.into_inner(),
    };
    assert_eq!(
        app.get(&p2, "/api/fabric/addresses").await.status(),
        StatusCode::OK
    );
    app.admin.revoke_api_token(None, second.id).await.unwrap();
    assert_eq!(
        app.get(&p2, "/api/fabric/addresses").await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        app.get(&p, "/api/fabric/addresses").await.status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn subscriber_crud_merges_updates_and_rejects_duplicate_email() {
    let app = spawn_app().await;
    let p = app.project().await;
    let r = app
        .post(
            &p,
            "/api/fabric/resources/subscribers",
            json!({"email": "lee@example.com", "first_name": "Lee", "last_name": "Ng"}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let s: Value = r.json().await.unwrap();
    assert_eq!(s["type"], "subscriber");
    let id = s["id"].as_str().unwrap();
    let r = app
        .client
        .put(app.url(&format!("/api/fabric/resources/subscribers/{id}")))
        .basic_auth(&p.id, Some(&p.token))
        .json(&json!({"display_name": "Z"}))
        .send()
        .await
        .unwrap();
    let u: Value = r.json().await.unwrap();
    assert_eq!(u["subscriber"]["display_name"], "Z");
    assert_eq!(u["subscriber"]["first_name"], "Lee");
    assert_eq!(u["display_name"], "Z");
    let (code, attr) = first_error(
        app.post(
            &p,
            "/api/fabric/resources/subscribers",
            json!({"email": "LEE@example.com"}),
        )
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
    let app = spawn_app().await;
    let p = app.project().await;
    let r = app.post(&p, "/api/fabric/resources/conference_rooms", json!({"name": "standup", "display_name": "Stand-up", "max_members": 12, "enable_room_previews": true})).await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let room: Value = r.json().await.unwrap();
    assert_eq!(room["conference_room"]["max_members"], 12);
    let id = room["id"].as_str().unwrap();
    let r = app
        .client
        .put(app.url(&format!("/api/fabric/resources/conference_rooms/{id}")))
        .basic_auth(&p.id, Some(&p.token))
        .json(&json!({"max_members": 20}))
        .send()
        .await
        .unwrap();
    let room: Value = r.json().await.unwrap();
    assert_eq!(room["conference_room"]["max_members"], 20);
    assert_eq!(room["conference_room"]["enable_room_previews"], true);
    app.subscriber(&p, "mo@example.com").await;
    let v: Value = app
        .get(&p, "/api/fabric/addresses?type=room")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(v["data"].as_array().unwrap().len(), 1);
    assert_eq!(
        v["data"][0]["channels"]["audio"],
        "/public/standup?channel=audio"
    );
    let v: Value = app
        .get(&p, "/api/fabric/addresses?display_name=Stand-up")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(v["data"].as_array().unwrap().len(), 1);
    let v: Value = app
        .get(&p, "/api/fabric/addresses?type=call")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(v["data"], json!([]));
    let r = app
        .client
        .delete(app.url(&format!("/api/fabric/resources/conference_rooms/{id}")))
        .basic_auth(&p.id, Some(&p.token))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        app.get(&p, &format!("/api/fabric/resources/conference_rooms/{id}"))
            .await
            .status(),
        StatusCode::NOT_FOUND
    );
}
