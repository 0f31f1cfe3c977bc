//! The API description: `/openapi.json` and `/docs` are served, and the document and the router
//! agree route for route, in both directions.

use std::collections::BTreeSet;

use reqwest::{Method, StatusCode};
use serde_json::Value;

use crate::helpers::{accounts_path, fabric_path, spawn_app, TestApp};

/// Every route the router serves, written down from the wire contracts (fabric-api.md,
/// accounts-api.md) and the paths the test client knows. It is deliberately not derived from the
/// document: a route added to the router must be added here too, or a test fails.
fn served() -> Vec<(&'static str, String)> {
    use accounts_path as v1;
    use fabric_path as f;
    let id = |base: &str| format!("{base}/{{id}}");
    let projects_id = id(v1::PROJECTS);
    let gets = [
        f::RESOURCES.into(),
        id(f::RESOURCES),
        format!("{}/addresses", id(f::RESOURCES)),
        // The SDK's room `list_addresses` uses the singular path; both are served.
        "/api/fabric/resources/conference_room/{id}/addresses".into(),
        f::ADDRESSES.into(),
        id(f::ADDRESSES),
        "/healthz".into(),
        "/openapi.json".into(),
        "/docs".into(),
        "/metrics".into(),
        v1::JWKS.into(),
        v1::ROLES.into(),
        v1::USERS.into(),
        v1::PROJECTS.into(),
        projects_id.clone(),
        format!("{projects_id}/api-tokens"),
        v1::KEYS.into(),
        v1::AUDIT.into(),
    ];
    let posts = [
        f::SUBSCRIBER_TOKENS,
        f::REFRESH,
        f::GUEST_TOKENS,
        f::INVITES,
        f::EMBED_TOKENS,
        f::INTROSPECT,
        f::REVOKE,
        v1::TOKENS,
        v1::USERS,
        v1::PROJECTS,
        v1::ROTATE,
    ]
    .map(String::from);
    let deletes = [
        id(f::RESOURCES),
        v1::INVALIDATE.into(),
        id(v1::USERS),
        projects_id.clone(),
        format!("{projects_id}/api-tokens/{{tokenId}}"),
    ];
    let mut routes: Vec<(&str, String)> = Vec::new();
    routes.extend(gets.map(|p| ("GET", p)));
    routes.extend(posts.map(|p| ("POST", p)));
    routes.extend(deletes.map(|p| ("DELETE", p)));
    routes.extend([
        ("PATCH", v1::REFRESH.into()),
        ("PATCH", id(v1::USERS)),
        ("POST", format!("{projects_id}/api-tokens")),
    ]);
    // Subscribers and rooms: the same five operations and an address list each.
    for base in [f::SUBSCRIBERS, f::ROOMS] {
        routes.extend([
            ("GET", base.to_string()),
            ("POST", base.to_string()),
            ("GET", id(base)),
            ("PUT", id(base)),
            ("DELETE", id(base)),
            ("GET", format!("{}/addresses", id(base))),
        ]);
    }
    routes
}

/// `GET /openapi.json`, answered 200.
async fn fetch_document(app: &TestApp) -> reqwest::Response {
    let r = app.client.get(app.url("/openapi.json")).send().await;
    let r = r.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    r
}

async fn document(app: &TestApp) -> Value {
    fetch_document(app).await.json().await.unwrap()
}

/// Sends `method path` without credentials or body, with every `{id}` and `{tokenId}` a fresh
/// UUID.
async fn probe(app: &TestApp, method: &str, path: &str) -> StatusCode {
    let concrete = path
        .replace("{id}", &uuid::Uuid::new_v4().to_string())
        .replace("{tokenId}", &uuid::Uuid::new_v4().to_string());
    let method = Method::from_bytes(method.to_ascii_uppercase().as_bytes()).unwrap();
    app.client
        .request(method, app.url(&concrete))
        .send()
        .await
        .unwrap()
        .status()
}

/// Asserts that the router has a handler for `method path`. The router answers an unknown path
/// 404 and a known path with another method 405. Every route with an `{id}` authenticates before
/// it looks the id up, and the probe carries no credentials, so a handler answers 401 there, not
/// 404: a 404 can only mean that no route matched.
async fn assert_served(app: &TestApp, method: &str, path: &str) {
    let status = probe(app, method, path).await;
    assert_ne!(status, StatusCode::NOT_FOUND, "{method} {path}: no route");
    assert_ne!(
        status,
        StatusCode::METHOD_NOT_ALLOWED,
        "{method} {path}: method not routed"
    );
}

fn documented(doc: &Value) -> BTreeSet<(String, String)> {
    let mut out = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for method in item.as_object().expect("path item").keys() {
            out.insert((method.to_ascii_uppercase(), path.clone()));
        }
    }
    out
}

#[tokio::test]
async fn openapi_json_is_an_openapi_3_1_document() {
    let app = spawn_app().await;
    let r = fetch_document(&app).await;
    assert_eq!(r.headers()["content-type"], "application/json");
    let doc: Value = r.json().await.unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    assert_eq!(doc["info"]["title"], "Tessera");
    assert_eq!(doc["info"]["version"], env!("CARGO_PKG_VERSION"));
    assert!(doc["components"]["schemas"]["FabricError"].is_object());
    assert_eq!(doc, tessera_server::openapi::document());
}

#[tokio::test]
async fn every_served_route_is_documented() {
    let app = spawn_app().await;
    let doc = document(&app).await;
    let served: BTreeSet<(String, String)> = served()
        .into_iter()
        .map(|(m, p)| (m.to_string(), p))
        .collect();
    for (method, path) in &served {
        assert!(
            doc["paths"][path][method.to_ascii_lowercase()].is_object(),
            "{method} {path} is served but not documented"
        );
    }
    // The document lists exactly the served routes, no more.
    assert_eq!(documented(&doc), served);
}

#[tokio::test]
async fn every_listed_and_documented_route_is_served() {
    let app = spawn_app().await;
    // The probe can tell the cases apart: an unknown path is 404, a wrong method 405.
    assert_eq!(
        probe(&app, "GET", "/api/fabric/nope").await,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        probe(&app, "DELETE", "/healthz").await,
        StatusCode::METHOD_NOT_ALLOWED
    );
    for (method, path) in served() {
        assert_served(&app, method, &path).await;
    }
    let doc = document(&app).await;
    for (method, path) in documented(&doc) {
        assert_served(&app, &method, &path).await;
    }
}

#[tokio::test]
async fn docs_page_is_self_contained_html_covering_every_operation() {
    let app = spawn_app().await;
    let doc = document(&app).await;
    let r = app.client.get(app.url("/docs")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["content-type"], "text/html; charset=utf-8");
    let csp = r.headers()["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("default-src 'none'"), "{csp}");
    let html = r.text().await.unwrap();
    assert!(html.starts_with("<!DOCTYPE html>"));
    for banned in [
        "<script", "<link", "src=", "@import", "url(", "http://", "https://",
    ] {
        assert!(!html.contains(banned), "the page contains {banned}");
    }
    for (path, item) in doc["paths"].as_object().unwrap() {
        assert!(html.contains(path.as_str()), "{path} is not on the page");
        for op in item.as_object().unwrap().values() {
            let id = op["operationId"].as_str().unwrap();
            assert!(html.contains(&format!("id=\"op-{id}\"")), "{id}");
        }
    }
}
