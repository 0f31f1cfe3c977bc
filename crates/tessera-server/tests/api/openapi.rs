//! The API description: `/openapi.json` and `/docs` are served, and the document and the router
//! agree route for route, in both directions.

use std::collections::BTreeSet;

use reqwest::{Method, StatusCode};
use serde_json::Value;

use crate::helpers::{spawn_app, TestApp};

/// Every route the router serves, written down by reading `fabric/mod.rs`, `oauth2.rs`,
/// `openapi.rs` and `startup.rs`, and the Accounts API's contract for `/v1`. It is deliberately not derived from the document: a route
/// added to the router must be added here and to the document, or a test fails.
const SERVED: &[(&str, &str)] = &[
    ("POST", "/api/fabric/subscribers/tokens"),
    ("POST", "/api/fabric/subscribers/tokens/refresh"),
    ("POST", "/api/fabric/guests/tokens"),
    ("POST", "/api/fabric/subscriber/invites"),
    ("POST", "/api/fabric/embeds/tokens"),
    ("GET", "/api/fabric/resources"),
    ("GET", "/api/fabric/resources/subscribers"),
    ("POST", "/api/fabric/resources/subscribers"),
    ("GET", "/api/fabric/resources/subscribers/{id}"),
    ("PUT", "/api/fabric/resources/subscribers/{id}"),
    ("DELETE", "/api/fabric/resources/subscribers/{id}"),
    ("GET", "/api/fabric/resources/subscribers/{id}/addresses"),
    ("GET", "/api/fabric/resources/conference_rooms"),
    ("POST", "/api/fabric/resources/conference_rooms"),
    ("GET", "/api/fabric/resources/conference_rooms/{id}"),
    ("PUT", "/api/fabric/resources/conference_rooms/{id}"),
    ("DELETE", "/api/fabric/resources/conference_rooms/{id}"),
    (
        "GET",
        "/api/fabric/resources/conference_rooms/{id}/addresses",
    ),
    (
        "GET",
        "/api/fabric/resources/conference_room/{id}/addresses",
    ),
    ("GET", "/api/fabric/resources/{id}"),
    ("DELETE", "/api/fabric/resources/{id}"),
    ("GET", "/api/fabric/resources/{id}/addresses"),
    ("GET", "/api/fabric/addresses"),
    ("GET", "/api/fabric/addresses/{id}"),
    ("POST", "/oauth2/introspect"),
    ("POST", "/oauth2/revoke"),
    ("GET", "/healthz"),
    ("GET", "/openapi.json"),
    ("GET", "/docs"),
    ("GET", "/metrics"),
    // The Accounts API (/v1).
    ("POST", "/v1/tokens"),
    ("PATCH", "/v1/tokens/access-token/refresh"),
    ("DELETE", "/v1/tokens/refresh-token"),
    ("GET", "/v1/tokens/jwks"),
    ("GET", "/v1/roles"),
    ("GET", "/v1/users"),
    ("POST", "/v1/users"),
    ("PATCH", "/v1/users/{id}"),
    ("DELETE", "/v1/users/{id}"),
    ("GET", "/v1/projects"),
    ("POST", "/v1/projects"),
    ("GET", "/v1/projects/{id}"),
    ("DELETE", "/v1/projects/{id}"),
    ("GET", "/v1/projects/{id}/api-tokens"),
    ("POST", "/v1/projects/{id}/api-tokens"),
    ("DELETE", "/v1/projects/{id}/api-tokens/{tokenId}"),
    ("GET", "/v1/keys"),
    ("POST", "/v1/keys/rotate"),
    ("GET", "/v1/audit-events"),
];

async fn document(app: &TestApp) -> Value {
    let r = app
        .client
        .get(app.url("/openapi.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    r.json().await.unwrap()
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
    let r = app
        .client
        .get(app.url("/openapi.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
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
    for (method, path) in SERVED {
        assert!(
            doc["paths"][path][method.to_ascii_lowercase()].is_object(),
            "{method} {path} is served but not documented"
        );
    }
    // The table the document is built from lists exactly the served routes, no more.
    let served: BTreeSet<(String, String)> = SERVED
        .iter()
        .map(|(m, p)| (m.to_string(), p.to_string()))
        .collect();
    let table: BTreeSet<(String, String)> = tessera_server::openapi::route_table()
        .into_iter()
        .map(|(m, p)| (m.to_string(), p.to_string()))
        .collect();
    assert_eq!(table, served);
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
    for (method, path) in SERVED {
        assert_served(&app, method, path).await;
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
