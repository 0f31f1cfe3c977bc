//! The Accounts API (accounts-api.md): logins, refresh ids, the quirks of field clients (§9),
//! lockout, roles on every management endpoint, and key rotation of the signing keys.

use std::net::IpAddr;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use reqwest::{Client, Method, StatusCode};
use serde_json::{json, Value};
use tessera_core::model::Role;
use tessera_core::Secret;

use crate::helpers::*;

pub(crate) const PASSWORD: &str = "C0rrect horse battery!";

/// Creates an operator through the admin CLI's logic; returns its API key for a service.
pub(crate) async fn operator(
    app: &TestApp,
    name: &str,
    role: Role,
    service: bool,
) -> Option<String> {
    let pw = (!service).then(|| secret(PASSWORD));
    let out = app
        .admin
        .create_operator(name, pw, role, service)
        .await
        .unwrap();
    out.1.map(Secret::into_inner)
}

fn client_from(addr: &str) -> Client {
    Client::builder()
        .local_address(addr.parse::<IpAddr>().unwrap())
        .build()
        .unwrap()
}

async fn login_from(client: &Client, app: &TestApp, body: Value) -> (StatusCode, Value) {
    let r = client
        .post(app.url("/v1/tokens"))
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = r.status();
    assert_eq!(r.headers()["content-type"], "application/json");
    (status, r.json().await.unwrap())
}

async fn login(app: &TestApp, user: &str, pw: &str) -> (StatusCode, Value) {
    login_from(&app.client, app, json!({"username": user, "password": pw})).await
}

/// Logs in and returns (access token, refresh id).
pub(crate) async fn tokens(app: &TestApp, user: &str) -> (String, String) {
    let (s, v) = login(app, user, PASSWORD).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    (
        v["accessToken"].as_str().unwrap().to_string(),
        v["refreshToken"]["id"].as_str().unwrap().to_string(),
    )
}

fn decode_part(token: &str, i: usize) -> Value {
    let part = token.split('.').nth(i).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
}

async fn call(
    app: &TestApp,
    method: Method,
    path: &str,
    bearer: Option<&str>,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let mut rb = app.client.request(method, app.url(path));
    if let Some(b) = bearer {
        rb = rb.bearer_auth(b);
    }
    if let Some(body) = body {
        rb = rb.json(&body);
    }
    let r = rb.send().await.unwrap();
    let status = r.status();
    let text = r.text().await.unwrap();
    let v = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap()
    };
    (status, v)
}

async fn refresh_raw(app: &TestApp, body: &str, content_type: Option<&str>) -> reqwest::Response {
    let mut rb = app
        .client
        .patch(app.url("/v1/tokens/access-token/refresh"))
        .body(body.to_string());
    if let Some(ct) = content_type {
        rb = rb.header("content-type", ct);
    }
    rb.send().await.unwrap()
}

fn assert_error(v: &Value, code: &str) {
    assert_eq!(v["errorCode"], code, "{v}");
    assert!(v["message"].as_str().is_some_and(|m| !m.is_empty()), "{v}");
    assert!(v["arguments"].is_array() && v["causes"].is_array() && v["nestedErrors"].is_array());
    assert!(v["context"].is_object());
    assert_eq!(v["referenceToken"].as_str().unwrap().len(), 6);
}

#[tokio::test]
async fn password_login_answers_200_with_the_claims_of_the_original() {
    let app = spawn_app().await;
    operator(&app, "administrator@vsphere.local", Role::Admin, false).await;
    // Terraform re-logs in with its stale Bearer and, in older releases, two identical
    // Content-Type lines; unknown fields are ignored.
    let r = app
        .client
        .post(app.url("/v1/tokens"))
        .bearer_auth("eyJhbGciOiJIUzI1NiJ9.e30.stale")
        .header("content-type", "application/json")
        .header("content-type", "application/json")
        .body(
            json!({"username": "administrator@vsphere.local", "password": PASSWORD, "extra": 1})
                .to_string(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let v: Value = r.json().await.unwrap();
    let access = v["accessToken"].as_str().unwrap();
    let id = v["refreshToken"]["id"].as_str().unwrap();
    assert!(access.starts_with("eyJ") && access.contains('.'));
    assert_eq!(id.len(), 36);
    assert!(tessera_core::accounts::is_refresh_id(id));
    let header = decode_part(access, 0);
    assert_eq!(header["alg"], "HS256");
    assert!(header["kid"].as_str().unwrap().starts_with("s-"));
    let c = decode_part(access, 1);
    assert_eq!(c["iss"], "vcf-auth");
    assert_eq!(c["aud"], "sddc-services");
    for k in ["sub", "user", "name"] {
        assert_eq!(c[k], "administrator@vsphere.local");
    }
    assert_eq!(c["iat"], START.0);
    assert_eq!(c["nbf"], START.0);
    assert_eq!(
        c["exp"].as_i64().unwrap() - c["iat"].as_i64().unwrap(),
        3600
    );
    assert_eq!(c["scope"].as_array().unwrap().len(), 8);
    assert!(uuid::Uuid::parse_str(c["jti"].as_str().unwrap()).is_ok());
    // The token works as a Bearer on the management plane.
    let (s, _) = call(&app, Method::GET, "/v1/users", Some(access), None).await;
    assert_eq!(s, StatusCode::OK);
}

#[tokio::test]
async fn refresh_ids_are_read_in_every_encoding_reused_and_expire_absolutely() {
    let app = spawn_app().await;
    operator(&app, "ops@local", Role::Operator, false).await;
    let (_, id) = tokens(&app, "ops@local").await;
    let quoted = format!("\"{id}\"");
    let wrapped = json!({"id": id}).to_string();
    let spaced = format!("  {id}\n");
    // SDKs: quoted JSON; PowerVCF: the raw id, with or without a JSON content type; scripts:
    // an object. The same id works every time (no rotation).
    for (body, ct) in [
        (quoted.as_str(), Some("application/json")),
        (id.as_str(), Some("application/json")),
        (id.as_str(), None),
        (spaced.as_str(), Some("text/plain")),
        (wrapped.as_str(), Some("application/x-www-form-urlencoded")),
    ] {
        let r = refresh_raw(&app, body, ct).await;
        assert_eq!(r.status(), StatusCode::OK, "{body:?}");
        assert!(r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/json"));
        let text = r.text().await.unwrap();
        // A JSON-quoted string, as the Python SDK needs.
        let token: String = serde_json::from_str(&text).unwrap();
        // PowerVCF decodes the payload and reads a numeric exp.
        assert!(decode_part(&token, 1)["exp"].is_i64());
        let (s, _) = call(&app, Method::GET, "/v1/projects", Some(&token), None).await;
        assert_eq!(s, StatusCode::OK);
    }
    let r = refresh_raw(&app, "", Some("application/json")).await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_error(&r.json().await.unwrap(), "REFRESH_TOKEN_REQUIRED");
    let r = refresh_raw(&app, "\"00000000-0000-0000-0000-000000000000\"", None).await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    assert_error(&r.json().await.unwrap(), "REFRESH_TOKEN_NOT_FOUND");
    // 24 h absolute, however often it is used.
    app.clock.advance(86_399);
    assert_eq!(
        refresh_raw(&app, &quoted, None).await.status(),
        StatusCode::OK
    );
    app.clock.advance(1);
    let r = refresh_raw(&app, &quoted, None).await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    assert_error(&r.json().await.unwrap(), "REFRESH_TOKEN_NOT_FOUND");
}

#[tokio::test]
async fn invalidate_answers_204_for_any_well_formed_id() {
    let app = spawn_app().await;
    operator(&app, "ops@local", Role::Operator, false).await;
    let (access, id) = tokens(&app, "ops@local").await;
    let del = |body: String, bearer: bool| {
        let mut rb = app
            .client
            .delete(app.url("/v1/tokens/refresh-token"))
            .body(body);
        if bearer {
            rb = rb.bearer_auth(&access);
        }
        rb.send()
    };
    let unknown = "\"00000000-0000-0000-0000-000000000000\"".to_string();
    let r = del(unknown, false).await.unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert!(r.text().await.unwrap().is_empty());
    // Some scripts send a Bearer; it is ignored.
    assert_eq!(
        del(format!("\"{id}\""), true).await.unwrap().status(),
        StatusCode::NO_CONTENT
    );
    let r = refresh_raw(&app, &id, None).await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    // Access tokens already minted stay valid until they expire (A10).
    let (s, _) = call(&app, Method::GET, "/v1/projects", Some(&access), None).await;
    assert_eq!(s, StatusCode::OK);
    for (body, code) in [
        ("", "REFRESH_TOKEN_REQUIRED"),
        ("\"not-an-id\"", "MALFORMED_REQUEST_BODY"),
    ] {
        let r = del(body.to_string(), false).await.unwrap();
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{body}");
        assert_error(&r.json().await.unwrap(), code);
    }
}

#[tokio::test]
async fn bad_credentials_and_bad_specs_answer_in_the_error_format() {
    let app = spawn_app().await;
    operator(&app, "admin@local", Role::Admin, false).await;
    let pool = app.state.service.passwords().clone();
    let before = pool.verifications();
    let (s1, wrong) = login(&app, "admin@local", "wrong").await;
    let (s2, unknown) = login(&app, "nobody@local", "wrong").await;
    // An unknown user costs the same argon2 work as a wrong password.
    assert_eq!(pool.verifications() - before, 2);
    for (s, v) in [(s1, &wrong), (s2, &unknown)] {
        assert_eq!(s, StatusCode::UNAUTHORIZED);
        assert_error(v, "INVALID_CREDENTIALS");
    }
    let strip = |v: &Value| {
        let mut v = v.clone();
        v["referenceToken"] = Value::Null;
        v
    };
    assert_eq!(strip(&wrong), strip(&unknown));
    let (s, v) = login_from(&app.client, &app, json!({"apiKey": "tsk_nope"})).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert_error(&v, "INVALID_CREDENTIALS");
    for body in [
        json!({}),
        json!({"username": "admin@local"}),
        json!({"password": "x"}),
    ] {
        let (s, v) = login_from(&app.client, &app, body.clone()).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{body}");
        assert_error(&v, "TOKEN_SPEC_INVALID");
    }
    // PowerVCF concatenates JSON by hand, so a quote in a password yields invalid JSON.
    for raw in [
        "{\"username\": \"admin@local\",\"password\": \"a\"b\"}",
        "[1]",
        "{\"username\": 5, \"password\": \"x\"}",
    ] {
        let r = app
            .client
            .post(app.url("/v1/tokens"))
            .header("content-type", "application/json")
            .body(raw)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{raw}");
        assert_error(&r.json().await.unwrap(), "MALFORMED_REQUEST_BODY");
    }
    // Protected endpoints: no Bearer, garbage, a Fabric token, an expired token.
    let (access, _) = tokens(&app, "admin@local").await;
    let p = app.project().await;
    let sat: Value = app
        .post(
            &p,
            "/api/fabric/subscribers/tokens",
            json!({"reference": "x"}),
        )
        .await
        .json()
        .await
        .unwrap();
    for bearer in [None, Some("garbage"), Some(sat["token"].as_str().unwrap())] {
        let (s, v) = call(&app, Method::GET, "/v1/users", bearer, None).await;
        assert_eq!(s, StatusCode::UNAUTHORIZED, "{bearer:?}");
        assert_error(&v, "Unauthorized");
    }
    // An Accounts token is no Fabric token either.
    let r = app.bearer_get(&access, "/api/fabric/addresses").await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    app.clock.advance(3600 + 5); // expiry plus the leeway
    let r = app
        .client
        .get(app.url("/v1/users"))
        .bearer_auth(&access)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(r.headers()["www-authenticate"], "Bearer");
    assert_error(&r.json().await.unwrap(), "Unauthorized");
    let (s, v) = call(&app, Method::GET, "/v1/nothing-here", None, None).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert_error(&v, "NOT_FOUND");
    let (s, v) = call(&app, Method::PUT, "/v1/tokens", None, None).await;
    assert_eq!(s, StatusCode::METHOD_NOT_ALLOWED);
    assert_error(&v, "METHOD_NOT_ALLOWED");
    let big = "x".repeat(tessera_server::config::DEFAULT_BODY_LIMIT + 1);
    let (s, v) = login(&app, "admin@local", &big).await;
    assert_eq!(s, StatusCode::PAYLOAD_TOO_LARGE);
    assert_error(&v, "PAYLOAD_TOO_LARGE");
}

#[tokio::test]
async fn service_users_log_in_with_an_api_key_shown_once() {
    let app = spawn_app().await;
    operator(&app, "admin@local", Role::Admin, false).await;
    let (admin, _) = tokens(&app, "admin@local").await;
    let (s, v) = call(
        &app,
        Method::POST,
        "/v1/users",
        Some(&admin),
        Some(
            json!([{"name": "automation", "type": "SERVICE", "role": {"id": Role::Operator.id()}}]),
        ),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let key = v["elements"][0]["apiKey"].as_str().unwrap().to_string();
    let (s, t) = login_from(
        &app.client,
        &app,
        json!({"apiKey": key, "username": "ignored"}),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{t}");
    assert_eq!(
        decode_part(t["accessToken"].as_str().unwrap(), 1)["sub"],
        "automation"
    );
    // Listed without its key; stored only as a hash.
    let (_, list) = call(&app, Method::GET, "/v1/users", Some(&admin), None).await;
    assert!(!list.to_string().contains(&key));
    let ops = app.admin.store.list_operators().await.unwrap();
    assert!(!format!("{ops:?}").contains(&key));
}

#[tokio::test]
async fn lockout_is_per_account_and_address_and_ends() {
    let app = spawn_app().await;
    operator(&app, "admin@local", Role::Admin, false).await;
    let one = client_from("127.0.0.1");
    let two = client_from("127.0.0.2");
    let good = json!({"username": "admin@local", "password": PASSWORD});
    let bad = json!({"username": "admin@local", "password": "guess"});
    for _ in 0..5 {
        let (s, _) = login_from(&one, &app, bad.clone()).await;
        assert_eq!(s, StatusCode::UNAUTHORIZED);
    }
    // Locked at 127.0.0.1, answered exactly like bad credentials, without hashing.
    let before = app.state.service.passwords().verifications();
    let (s, v) = login_from(&one, &app, good.clone()).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert_error(&v, "INVALID_CREDENTIALS");
    assert_eq!(app.state.service.passwords().verifications(), before);
    // The same account still logs in from another address.
    assert_eq!(login_from(&two, &app, good.clone()).await.0, StatusCode::OK);
    app.clock.advance(899);
    assert_eq!(
        login_from(&one, &app, good.clone()).await.0,
        StatusCode::UNAUTHORIZED
    );
    app.clock.advance(1);
    assert_eq!(login_from(&one, &app, good.clone()).await.0, StatusCode::OK);
    // Spraying many accounts from one address blocks that address only; API keys count too.
    for i in 0..30 {
        let body = if i % 2 == 0 {
            json!({"username": format!("user{i}@local"), "password": "x"})
        } else {
            json!({"apiKey": format!("tsk_guess{i}")})
        };
        assert_eq!(
            login_from(&two, &app, body).await.0,
            StatusCode::UNAUTHORIZED
        );
    }
    assert_eq!(
        login_from(&two, &app, good.clone()).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(login_from(&one, &app, good).await.0, StatusCode::OK);
}

/// Usernames compare ASCII case-insensitively and otherwise byte for byte: a look-alike
/// (KELVIN SIGN for `K`, `İ` for `I`) neither logs in as the operator it resembles nor is
/// refused as its duplicate, and failures for one never lock the other out.
#[tokio::test]
async fn look_alike_usernames_neither_log_in_nor_lock_out_each_other() {
    let app = spawn_app().await;
    operator(&app, "admin@local", Role::Admin, false).await;
    operator(&app, "kate@local", Role::Viewer, false).await;
    for look_alike in [
        "ADM\u{130}N@local",
        "\u{212A}ate@local",
        "\u{212A}ATE@LOCAL",
    ] {
        let (s, v) = login(&app, look_alike, PASSWORD).await;
        assert_eq!(s, StatusCode::UNAUTHORIZED, "{look_alike:?}: {v}");
    }
    // ASCII case still folds.
    let (s, v) = login(&app, "KATE@LOCAL", PASSWORD).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(
        decode_part(v["accessToken"].as_str().unwrap(), 1)["sub"],
        "kate@local"
    );

    // The look-alikes can be created, through the management plane too, and are their own.
    let (admin, _) = tokens(&app, "admin@local").await;
    let user = |name: &str| {
        json!([{"name": name, "type": "USER", "role": {"id": Role::Viewer.id()},
                "password": "another password"}])
    };
    for name in ["\u{212A}ate@local", "ADM\u{130}N@local"] {
        let (s, v) = call(
            &app,
            Method::POST,
            "/v1/users",
            Some(&admin),
            Some(user(name)),
        )
        .await;
        assert_eq!(s, StatusCode::CREATED, "{name:?}: {v}");
        let (s, v) = login(&app, name, "another password").await;
        assert_eq!(s, StatusCode::OK, "{name:?}: {v}");
        assert_eq!(
            decode_part(v["accessToken"].as_str().unwrap(), 1)["sub"],
            name
        );
    }
    let (s, v) = call(
        &app,
        Method::POST,
        "/v1/users",
        Some(&admin),
        Some(user("KATE@local")),
    )
    .await;
    assert_eq!(s, StatusCode::CONFLICT, "{v}");

    // Locking the look-alike out at an address leaves the real account open there.
    let one = client_from("127.0.0.1");
    let bad = json!({"username": "\u{212A}ate@local", "password": "guess"});
    for _ in 0..5 {
        assert_eq!(
            login_from(&one, &app, bad.clone()).await.0,
            StatusCode::UNAUTHORIZED
        );
    }
    let good = json!({"username": "\u{212A}ate@local", "password": "another password"});
    assert_eq!(
        login_from(&one, &app, good).await.0,
        StatusCode::UNAUTHORIZED,
        "locked"
    );
    let kate = json!({"username": "kate@local", "password": PASSWORD});
    assert_eq!(login_from(&one, &app, kate).await.0, StatusCode::OK);
    // And the other way round, with an operator that does not exist as the look-alike.
    let two = client_from("127.0.0.2");
    let bad = json!({"username": "admin@local", "password": "guess"});
    for _ in 0..5 {
        assert_eq!(
            login_from(&two, &app, bad.clone()).await.0,
            StatusCode::UNAUTHORIZED
        );
    }
    let dotted = json!({"username": "ADM\u{130}N@local", "password": "another password"});
    assert_eq!(login_from(&two, &app, dotted).await.0, StatusCode::OK);
}

/// What one management call needs: a fresh fixture per attempt for the destructive ones.
async fn attempt(app: &TestApp, admin: &str, bearer: &str, op: &str) -> StatusCode {
    let (s, project) = call(
        app,
        Method::POST,
        "/v1/projects",
        Some(admin),
        Some(json!({"name": "fx"})),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED);
    let pid = project["id"].as_str().unwrap();
    let tid = project["apiToken"]["id"].as_str().unwrap();
    let (_, users) = call(
        app,
        Method::POST,
        "/v1/users",
        Some(admin),
        Some(json!([{"name": format!("fx-{}", uuid::Uuid::new_v4()), "type": "SERVICE", "role": {"id": Role::Viewer.id()}}])),
    )
    .await;
    let uid = users["elements"][0]["id"].as_str().unwrap();
    let new_user = json!([{"name": format!("n-{}", uuid::Uuid::new_v4()), "type": "USER", "password": "pw12345678", "role": {"id": Role::Viewer.id()}}]);
    let (method, path, body) = match op {
        "GET /v1/roles" => (Method::GET, "/v1/roles".to_string(), None),
        "GET /v1/users" => (Method::GET, "/v1/users".into(), None),
        "POST /v1/users" => (Method::POST, "/v1/users".into(), Some(new_user)),
        "PATCH /v1/users/{id}" => (
            Method::PATCH,
            format!("/v1/users/{uid}"),
            Some(json!({"disabled": true})),
        ),
        "DELETE /v1/users/{id}" => (Method::DELETE, format!("/v1/users/{uid}"), None),
        "GET /v1/projects" => (Method::GET, "/v1/projects".into(), None),
        "POST /v1/projects" => (
            Method::POST,
            "/v1/projects".into(),
            Some(json!({"name": "p"})),
        ),
        "GET /v1/projects/{id}" => (Method::GET, format!("/v1/projects/{pid}"), None),
        "DELETE /v1/projects/{id}" => (Method::DELETE, format!("/v1/projects/{pid}"), None),
        "GET /v1/projects/{id}/api-tokens" => {
            (Method::GET, format!("/v1/projects/{pid}/api-tokens"), None)
        }
        "POST /v1/projects/{id}/api-tokens" => (
            Method::POST,
            format!("/v1/projects/{pid}/api-tokens"),
            Some(json!({"name": "ci"})),
        ),
        "DELETE /v1/projects/{id}/api-tokens/{tokenId}" => (
            Method::DELETE,
            format!("/v1/projects/{pid}/api-tokens/{tid}"),
            None,
        ),
        "GET /v1/keys" => (Method::GET, "/v1/keys".into(), None),
        "POST /v1/keys/rotate" => (Method::POST, "/v1/keys/rotate".into(), None),
        "GET /v1/audit-events" => (
            Method::GET,
            format!("/v1/audit-events?projectId={pid}"),
            None,
        ),
        other => panic!("no fixture for {other}"),
    };
    call(app, method, &path, Some(bearer), body).await.0
}

#[tokio::test]
async fn every_management_endpoint_allows_its_role_and_denies_the_one_below() {
    let app = spawn_app().await;
    operator(&app, "admin@local", Role::Admin, false).await;
    operator(&app, "operator@local", Role::Operator, false).await;
    operator(&app, "viewer@local", Role::Viewer, false).await;
    let (admin, _) = tokens(&app, "admin@local").await;
    let (operator_t, _) = tokens(&app, "operator@local").await;
    let (viewer, _) = tokens(&app, "viewer@local").await;
    let table = [
        ("GET /v1/roles", Role::Viewer),
        ("GET /v1/users", Role::Viewer),
        ("POST /v1/users", Role::Admin),
        ("PATCH /v1/users/{id}", Role::Admin),
        ("DELETE /v1/users/{id}", Role::Admin),
        ("GET /v1/projects", Role::Viewer),
        ("POST /v1/projects", Role::Operator),
        ("GET /v1/projects/{id}", Role::Viewer),
        ("DELETE /v1/projects/{id}", Role::Operator),
        ("GET /v1/projects/{id}/api-tokens", Role::Viewer),
        ("POST /v1/projects/{id}/api-tokens", Role::Operator),
        (
            "DELETE /v1/projects/{id}/api-tokens/{tokenId}",
            Role::Operator,
        ),
        ("GET /v1/keys", Role::Viewer),
        ("POST /v1/keys/rotate", Role::Admin),
        ("GET /v1/audit-events", Role::Viewer),
    ];
    let token_of = |r: Role| match r {
        Role::Admin => admin.as_str(),
        Role::Operator => operator_t.as_str(),
        Role::Viewer => viewer.as_str(),
    };
    for (op, least) in table {
        let allowed = attempt(&app, &admin, token_of(least), op).await;
        assert!(allowed.is_success(), "{op} as {least:?}: {allowed}");
        let below = match least {
            Role::Admin => Some(Role::Operator),
            Role::Operator => Some(Role::Viewer),
            Role::Viewer => None,
        };
        match below {
            Some(b) => assert_eq!(
                attempt(&app, &admin, token_of(b), op).await,
                StatusCode::FORBIDDEN,
                "{op} as {b:?}"
            ),
            // The weakest role is allowed; without a token it is 401.
            None => {
                let (s, _) = call(&app, Method::GET, "/v1/roles", None, None).await;
                assert_eq!(s, StatusCode::UNAUTHORIZED);
            }
        }
    }
}

#[tokio::test]
async fn disabling_or_deleting_an_operator_ends_its_sessions() {
    let app = spawn_app().await;
    operator(&app, "admin@local", Role::Admin, false).await;
    operator(&app, "ops@local", Role::Operator, false).await;
    let (admin, _) = tokens(&app, "admin@local").await;
    let (ops, ops_refresh) = tokens(&app, "ops@local").await;
    let ops_id = decode_users(&app, &admin, "ops@local").await;
    let (s, v) = call(
        &app,
        Method::PATCH,
        &format!("/v1/users/{ops_id}"),
        Some(&admin),
        Some(json!({"disabled": true})),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["disabled"], true);
    assert_eq!(
        refresh_raw(&app, &ops_refresh, None).await.status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        call(&app, Method::GET, "/v1/projects", Some(&ops), None)
            .await
            .0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        login(&app, "ops@local", PASSWORD).await.0,
        StatusCode::UNAUTHORIZED
    );
    // Enabled again, then deleted.
    call(
        &app,
        Method::PATCH,
        &format!("/v1/users/{ops_id}"),
        Some(&admin),
        Some(json!({"disabled": false})),
    )
    .await;
    let (_, again) = tokens(&app, "ops@local").await;
    let (s, _) = call(
        &app,
        Method::DELETE,
        &format!("/v1/users/{ops_id}"),
        Some(&admin),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    assert_eq!(
        refresh_raw(&app, &again, None).await.status(),
        StatusCode::NOT_FOUND
    );
    let (s, v) = call(
        &app,
        Method::DELETE,
        &format!("/v1/users/{ops_id}"),
        Some(&admin),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert_error(&v, "NOT_FOUND");
    // An administrator cannot lock itself out.
    let admin_id = decode_users(&app, &admin, "admin@local").await;
    let (s, v) = call(
        &app,
        Method::DELETE,
        &format!("/v1/users/{admin_id}"),
        Some(&admin),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_error(&v, "INVALID_REQUEST");
}

async fn decode_users(app: &TestApp, admin: &str, name: &str) -> String {
    let (_, list) = call(app, Method::GET, "/v1/users", Some(admin), None).await;
    list["elements"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["name"] == name)
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string()
}

#[tokio::test]
async fn projects_and_api_tokens_through_the_management_plane() {
    let app = spawn_app().await;
    operator(&app, "ops@local", Role::Operator, false).await;
    let (ops, _) = tokens(&app, "ops@local").await;
    let (s, p) = call(
        &app,
        Method::POST,
        "/v1/projects",
        Some(&ops),
        Some(json!({"name": "shop"})),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED);
    let pid = p["id"].as_str().unwrap().to_string();
    let project = Project {
        id: pid.clone(),
        token: p["apiToken"]["token"].as_str().unwrap().to_string(),
    };
    // The token works on the Fabric API.
    let r = app
        .post(
            &project,
            "/api/fabric/subscribers/tokens",
            json!({"reference": "a"}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let sat: Value = r.json().await.unwrap();
    let (s, t) = call(
        &app,
        Method::POST,
        &format!("/v1/projects/{pid}/api-tokens"),
        Some(&ops),
        Some(json!({"name": "ci"})),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED);
    let (_, list) = call(
        &app,
        Method::GET,
        &format!("/v1/projects/{pid}/api-tokens"),
        Some(&ops),
        None,
    )
    .await;
    assert_eq!(list["pageMetadata"]["totalElements"], 2);
    assert!(!list.to_string().contains(t["token"].as_str().unwrap()));
    let first = p["apiToken"]["id"].as_str().unwrap();
    let (s, _) = call(
        &app,
        Method::DELETE,
        &format!("/v1/projects/{pid}/api-tokens/{first}"),
        Some(&ops),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let r = app
        .post(
            &project,
            "/api/fabric/subscribers/tokens",
            json!({"reference": "a"}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    // Paging and filters of the audit trail.
    let (s, page) = call(
        &app,
        Method::GET,
        &format!("/v1/audit-events?projectId={pid}&pageSize=2&pageNumber=0"),
        Some(&ops),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(page["elements"].as_array().unwrap().len(), 2);
    assert_eq!(page["elements"][0]["action"], "project.created");
    assert!(page["pageMetadata"]["totalElements"].as_u64().unwrap() >= 4);
    for bad in [
        "pageSize=0",
        "pageNumber=x",
        "projectId=nope",
        "since=yesterday",
    ] {
        let (s, v) = call(
            &app,
            Method::GET,
            &format!("/v1/audit-events?{bad}"),
            Some(&ops),
            None,
        )
        .await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{bad}");
        assert_error(&v, "INVALID_REQUEST");
    }
    // Deleting the project ends its sessions.
    let r = app
        .client
        .post(app.url("/oauth2/introspect"))
        .basic_auth(&pid, Some(t["token"].as_str().unwrap()))
        .form(&[("token", sat["token"].as_str().unwrap())])
        .send()
        .await
        .unwrap();
    let family: uuid::Uuid = r.json::<Value>().await.unwrap()["family_id"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let (s, _) = call(
        &app,
        Method::DELETE,
        &format!("/v1/projects/{pid}"),
        Some(&ops),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, _) = call(
        &app,
        Method::GET,
        &format!("/v1/projects/{pid}"),
        Some(&ops),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert!(matches!(
        app.admin
            .store
            .get_family(tessera_core::ids::FamilyId(family))
            .await,
        Err(tessera_core::store::StoreError::NotFound)
    ));
}

#[tokio::test]
async fn eddsa_tokens_verify_with_the_published_jwks_and_survive_rotation() {
    let app = spawn_with(|c| c.accounts_signing_alg = tessera_core::jws::SigningAlg::EdDsa).await;
    operator(&app, "admin@local", Role::Admin, false).await;
    let (access, _) = tokens(&app, "admin@local").await;
    assert_eq!(decode_part(&access, 0)["alg"], "EdDSA");
    let jwks: Value = app
        .client
        .get(app.url("/v1/tokens/jwks"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let verify = |token: &str, jwks: &Value| {
        let kid = decode_part(token, 0)["kid"].as_str().unwrap().to_string();
        let jwk = jwks["keys"]
            .as_array()
            .unwrap()
            .iter()
            .find(|k| k["kid"] == kid.as_str())
            .expect("published");
        assert_eq!(jwk["crv"], "Ed25519");
        let x: [u8; 32] = URL_SAFE_NO_PAD
            .decode(jwk["x"].as_str().unwrap())
            .unwrap()
            .try_into()
            .unwrap();
        let key = ed25519_dalek::VerifyingKey::from_bytes(&x).unwrap();
        let (input, sig) = token.rsplit_once('.').unwrap();
        let sig =
            ed25519_dalek::Signature::from_slice(&URL_SAFE_NO_PAD.decode(sig).unwrap()).unwrap();
        key.verify_strict(input.as_bytes(), &sig).is_ok()
    };
    assert!(verify(&access, &jwks));
    // Rotation: a pending signing key is published before it signs; old tokens keep working.
    let (s, rotated) = call(&app, Method::POST, "/v1/keys/rotate", Some(&access), None).await;
    assert_eq!(s, StatusCode::OK);
    assert!(rotated["elements"]
        .as_array()
        .unwrap()
        .iter()
        .any(|k| k["purpose"] == "signing"));
    app.clock.advance(11);
    app.maintenance().sync_keys().await.unwrap();
    let (fresh, _) = tokens(&app, "admin@local").await;
    assert_ne!(
        decode_part(&fresh, 0)["kid"],
        decode_part(&access, 0)["kid"]
    );
    let jwks: Value = app
        .client
        .get(app.url("/v1/tokens/jwks"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(verify(&fresh, &jwks) && verify(&access, &jwks));
    assert_eq!(
        call(&app, Method::GET, "/v1/keys", Some(&access), None)
            .await
            .0,
        StatusCode::OK
    );
    // HS256 publishes nothing.
    let hs = spawn_app().await;
    let j: Value = hs
        .client
        .get(hs.url("/v1/tokens/jwks"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(j, json!({"keys": []}));
}

/// A database keyed by a build from before JWS subkeys (its keys older than its master-key
/// check, which came in the same release): Accounts tokens that build signed with the raw
/// material keep working until they expire, and nothing signed that way after the upgrade
/// does.
#[tokio::test]
async fn tokens_signed_before_subkeys_keep_working_until_they_expire() {
    use std::sync::Arc;

    use ed25519_dalek::Signer;
    use tessera_core::crypto::MasterKey;
    use tessera_core::jws::{AccountsClaims, SigningAlg, AUDIENCE, ISSUER};
    use tessera_core::keyring::{KeyPurpose, KeyState};
    use tessera_core::model::StoredKey;
    use tessera_core::store::Store;
    use tessera_core::ManualClock;

    let dir = Arc::new(tempfile::tempdir().unwrap());
    let path = dir.path().join("tessera.db");
    let (master, key_text) = MasterKey::generate();
    let material = [9u8; 32];
    let before = START.plus(-7200);
    {
        let old = tessera_store_sqlite::SqliteStore::open(&path).unwrap();
        for purpose in KeyPurpose::ALL {
            let kid = format!("{}-old", &purpose.as_str()[..1]);
            old.insert_key(StoredKey {
                wrapped: master.wrap(&kid, &material),
                kid,
                purpose,
                state: KeyState::Active,
                created_at: before,
                activated_at: Some(before),
                retired_at: None,
                sealed: 0,
            })
            .await
            .unwrap();
        }
    }
    let config = tessera_server::config::Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        database: tessera_server::config::Database::Sqlite(path.clone()),
        master_key: Some(key_text),
        accounts_signing_alg: SigningAlg::EdDsa,
        ..Default::default()
    };
    let app = start(config, ManualClock::new(START), dir).await;
    operator(&app, "root@local", Role::Admin, false).await;
    let legacy = |iat: i64| {
        let claims = AccountsClaims {
            jti: "j".into(),
            iss: ISSUER.into(),
            aud: AUDIENCE.into(),
            sub: "root@local".into(),
            user: "root@local".into(),
            name: "root@local".into(),
            scope: vec![],
            iat,
            nbf: iat,
            exp: iat + 3600,
        };
        let mut t = URL_SAFE_NO_PAD.encode(r#"{"alg":"EdDSA","kid":"s-old"}"#);
        t.push('.');
        t.push_str(&URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims).unwrap()));
        let sig = ed25519_dalek::SigningKey::from_bytes(&material).sign(t.as_bytes());
        format!("{t}.{}", URL_SAFE_NO_PAD.encode(sig.to_bytes()))
    };
    let issued_before = legacy(START.0 - 600);
    let r = app.bearer_get(&issued_before, "/v1/users").await;
    assert_eq!(r.status(), StatusCode::OK);
    // Signed that way after the upgrade (the check was recorded at START): refused.
    let issued_after = legacy(START.0 + 1);
    let r = app.bearer_get(&issued_after, "/v1/users").await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    // New tokens are signed with the subkey, and the old one dies at its expiry.
    let (access, _) = tokens(&app, "root@local").await;
    // Past its expiry and the verification leeway.
    app.clock.advance(3100);
    assert_eq!(
        app.bearer_get(&issued_before, "/v1/users").await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        app.bearer_get(&access, "/v1/users").await.status(),
        StatusCode::OK
    );
}
