//! The Accounts API (accounts-api.md): logins, refresh ids, the quirks of field clients (§9),
//! lockout, roles on every management endpoint, and key rotation of the signing keys.

use std::net::IpAddr;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use reqwest::{Client, Method, StatusCode};
use serde_json::{json, Value};
use tessera_core::model::Role;

use crate::helpers::*;

fn client_from(addr: &str) -> Client {
    Client::builder()
        .local_address(addr.parse::<IpAddr>().unwrap())
        .build()
        .unwrap()
}

fn decode_part(token: &str, i: usize) -> Value {
    let part = token.split('.').nth(i).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
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
    app.operator("administrator@vsphere.local", Role::Admin, false)
        .await;
    // Terraform re-logs in with its stale Bearer and, in older releases, two identical
    // Content-Type lines; unknown fields are ignored.
    let r = app
        .accounts()
        .bearer("eyJhbGciOiJIUzI1NiJ9.e30.stale")
        .raw(Method::POST, accounts_path::TOKENS)
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
    let v = r.value().await;
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
    let (s, _) = app.accounts().bearer(access).users().await;
    assert_eq!(s, StatusCode::OK);
}

#[tokio::test]
async fn refresh_ids_are_read_in_every_encoding_reused_and_expire_absolutely() {
    let app = spawn_app().await;
    app.operator("ops@local", Role::Operator, false).await;
    let (_, id) = app.accounts().tokens("ops@local").await;
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
        let r = app.accounts().refresh(body, ct).await;
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
        let (s, _) = app.accounts().bearer(&token).projects().await;
        assert_eq!(s, StatusCode::OK);
    }
    let r = app.accounts().refresh("", Some("application/json")).await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_error(&r.json().await.unwrap(), "REFRESH_TOKEN_REQUIRED");
    let r = app
        .accounts()
        .refresh("\"00000000-0000-0000-0000-000000000000\"", None)
        .await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    assert_error(&r.json().await.unwrap(), "REFRESH_TOKEN_NOT_FOUND");
    // 24 h absolute, however often it is used.
    app.clock.advance(86_399);
    assert_eq!(
        app.accounts().refresh(&quoted, None).await.status(),
        StatusCode::OK
    );
    app.clock.advance(1);
    let r = app.accounts().refresh(&quoted, None).await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    assert_error(&r.json().await.unwrap(), "REFRESH_TOKEN_NOT_FOUND");
}

#[tokio::test]
async fn invalidate_answers_204_for_any_well_formed_id() {
    let app = spawn_app().await;
    app.operator("ops@local", Role::Operator, false).await;
    let (access, id) = app.accounts().tokens("ops@local").await;
    let del = |body: String, bearer: bool| {
        let caller = app
            .accounts()
            .maybe_bearer(bearer.then_some(access.as_str()));
        async move { caller.invalidate(&body).await }
    };
    let unknown = "\"00000000-0000-0000-0000-000000000000\"".to_string();
    let r = del(unknown, false).await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert!(r.text().await.unwrap().is_empty());
    // Some scripts send a Bearer; it is ignored.
    assert_eq!(
        del(format!("\"{id}\""), true).await.status(),
        StatusCode::NO_CONTENT
    );
    let r = app.accounts().refresh(&id, None).await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    // Access tokens already minted stay valid until they expire (A10).
    let (s, _) = app.accounts().bearer(&access).projects().await;
    assert_eq!(s, StatusCode::OK);
    for (body, code) in [
        ("", "REFRESH_TOKEN_REQUIRED"),
        ("\"not-an-id\"", "MALFORMED_REQUEST_BODY"),
    ] {
        let r = del(body.to_string(), false).await;
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{body}");
        assert_error(&r.json().await.unwrap(), code);
    }
}

#[tokio::test]
async fn bad_credentials_and_bad_specs_answer_in_the_error_format() {
    let app = spawn_app().await;
    app.operator("admin@local", Role::Admin, false).await;
    let pool = app.state.service.passwords().clone();
    let before = pool.verifications();
    let (s1, wrong) = app.accounts().login("admin@local", "wrong").await;
    let (s2, unknown) = app.accounts().login("nobody@local", "wrong").await;
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
    let (s, v) = app
        .accounts()
        .login_with(json!({"apiKey": "tsk_nope"}))
        .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert_error(&v, "INVALID_CREDENTIALS");
    for body in [
        json!({}),
        json!({"username": "admin@local"}),
        json!({"password": "x"}),
    ] {
        let (s, v) = app.accounts().login_with(body.clone()).await;
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
            .accounts()
            .raw(Method::POST, accounts_path::TOKENS)
            .header("content-type", "application/json")
            .body(raw)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{raw}");
        assert_error(&r.json().await.unwrap(), "MALFORMED_REQUEST_BODY");
    }
    // Protected endpoints: no Bearer, garbage, a Fabric token, an expired token.
    let (access, _) = app.accounts().tokens("admin@local").await;
    let p = app.project().await;
    let sat = app.fabric(&p).grant("x").await;
    for bearer in [None, Some("garbage"), Some(sat["token"].as_str().unwrap())] {
        let (s, v) = app.accounts().maybe_bearer(bearer).users().await;
        assert_eq!(s, StatusCode::UNAUTHORIZED, "{bearer:?}");
        assert_error(&v, "Unauthorized");
    }
    // An Accounts token is no Fabric token either.
    let r = app.fabric_bearer(&access).addresses("").await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    app.clock.advance(3600 + 5); // expiry plus the leeway
    let r = app
        .accounts()
        .bearer(&access)
        .raw(Method::GET, accounts_path::USERS)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(r.headers()["www-authenticate"], "Bearer");
    assert_error(&r.json().await.unwrap(), "Unauthorized");
    let (s, v) = app
        .accounts()
        .call(Method::GET, "/v1/nothing-here", None)
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert_error(&v, "NOT_FOUND");
    let (s, v) = app
        .accounts()
        .call(Method::PUT, accounts_path::TOKENS, None)
        .await;
    assert_eq!(s, StatusCode::METHOD_NOT_ALLOWED);
    assert_error(&v, "METHOD_NOT_ALLOWED");
    let big = "x".repeat(tessera_server::config::DEFAULT_BODY_LIMIT + 1);
    let (s, v) = app.accounts().login("admin@local", &big).await;
    assert_eq!(s, StatusCode::PAYLOAD_TOO_LARGE);
    assert_error(&v, "PAYLOAD_TOO_LARGE");
}

#[tokio::test]
async fn service_users_log_in_with_an_api_key_shown_once() {
    let app = spawn_app().await;
    let (admin, _) = app.logged_in("admin@local", Role::Admin).await;
    let (s, v) = app
        .accounts()
        .bearer(&admin)
        .create_users(
            json!([{"name": "automation", "type": "SERVICE", "role": {"id": Role::Operator.id()}}]),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let key = v["elements"][0]["apiKey"].as_str().unwrap().to_string();
    let (s, t) = app
        .accounts()
        .login_with(json!({"apiKey": key, "username": "ignored"}))
        .await;
    assert_eq!(s, StatusCode::OK, "{t}");
    assert_eq!(
        decode_part(t["accessToken"].as_str().unwrap(), 1)["sub"],
        "automation"
    );
    // Listed without its key; stored only as a hash.
    let (_, list) = app.accounts().bearer(&admin).users().await;
    assert!(!list.to_string().contains(&key));
    let ops = app.admin.stores.operators.list_operators().await.unwrap();
    assert!(!format!("{ops:?}").contains(&key));
}

#[tokio::test]
async fn lockout_is_per_account_and_address_and_ends() {
    let app = spawn_app().await;
    app.operator("admin@local", Role::Admin, false).await;
    let one = client_from("127.0.0.1");
    let two = client_from("127.0.0.2");
    let good = json!({"username": "admin@local", "password": PASSWORD});
    let bad = json!({"username": "admin@local", "password": "guess"});
    for _ in 0..5 {
        let (s, _) = app.accounts().via(&one).login_with(bad.clone()).await;
        assert_eq!(s, StatusCode::UNAUTHORIZED);
    }
    // Locked at 127.0.0.1, answered exactly like bad credentials, without hashing.
    let before = app.state.service.passwords().verifications();
    let (s, v) = app.accounts().via(&one).login_with(good.clone()).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert_error(&v, "INVALID_CREDENTIALS");
    assert_eq!(app.state.service.passwords().verifications(), before);
    // The same account still logs in from another address.
    assert_eq!(
        app.accounts().via(&two).login_with(good.clone()).await.0,
        StatusCode::OK
    );
    app.clock.advance(899);
    assert_eq!(
        app.accounts().via(&one).login_with(good.clone()).await.0,
        StatusCode::UNAUTHORIZED
    );
    app.clock.advance(1);
    assert_eq!(
        app.accounts().via(&one).login_with(good.clone()).await.0,
        StatusCode::OK
    );
    // Spraying many accounts from one address blocks that address only; API keys count too.
    for i in 0..30 {
        let body = if i % 2 == 0 {
            json!({"username": format!("user{i}@local"), "password": "x"})
        } else {
            json!({"apiKey": format!("tsk_guess{i}")})
        };
        assert_eq!(
            app.accounts().via(&two).login_with(body).await.0,
            StatusCode::UNAUTHORIZED
        );
    }
    assert_eq!(
        app.accounts().via(&two).login_with(good.clone()).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        app.accounts().via(&one).login_with(good).await.0,
        StatusCode::OK
    );
}

/// Usernames compare ASCII case-insensitively and otherwise byte for byte: a look-alike
/// (KELVIN SIGN for `K`, `İ` for `I`) neither logs in as the operator it resembles nor is
/// refused as its duplicate, and failures for one never lock the other out.
#[tokio::test]
async fn look_alike_usernames_neither_log_in_nor_lock_out_each_other() {
    let app = spawn_app().await;
    app.operator("admin@local", Role::Admin, false).await;
    app.operator("kate@local", Role::Viewer, false).await;
    for look_alike in [
        "ADM\u{130}N@local",
        "\u{212A}ate@local",
        "\u{212A}ATE@LOCAL",
    ] {
        let (s, v) = app.accounts().login(look_alike, PASSWORD).await;
        assert_eq!(s, StatusCode::UNAUTHORIZED, "{look_alike:?}: {v}");
    }
    // ASCII case still folds.
    let (s, v) = app.accounts().login("KATE@LOCAL", PASSWORD).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(
        decode_part(v["accessToken"].as_str().unwrap(), 1)["sub"],
        "kate@local"
    );

    // The look-alikes can be created, through the management plane too, and are their own.
    let (admin, _) = app.accounts().tokens("admin@local").await;
    let user = |name: &str| {
        json!([{"name": name, "type": "USER", "role": {"id": Role::Viewer.id()},
                "password": "another password"}])
    };
    for name in ["\u{212A}ate@local", "ADM\u{130}N@local"] {
        let (s, v) = app.accounts().bearer(&admin).create_users(user(name)).await;
        assert_eq!(s, StatusCode::CREATED, "{name:?}: {v}");
        let (s, v) = app.accounts().login(name, "another password").await;
        assert_eq!(s, StatusCode::OK, "{name:?}: {v}");
        assert_eq!(
            decode_part(v["accessToken"].as_str().unwrap(), 1)["sub"],
            name
        );
    }
    let (s, v) = app
        .accounts()
        .bearer(&admin)
        .create_users(user("KATE@local"))
        .await;
    assert_eq!(s, StatusCode::CONFLICT, "{v}");

    // Locking the look-alike out at an address leaves the real account open there; and the
    // other way round, with an operator that does not exist as the look-alike.
    // After locking one username out at an address: (username, password, answer) from there.
    type Then = &'static [(&'static str, &'static str, StatusCode)];
    let table: [(&str, &str, Then); 2] = [
        (
            "127.0.0.1",
            "\u{212A}ate@local",
            &[
                // Locked: even the right password is refused from there.
                (
                    "\u{212A}ate@local",
                    "another password",
                    StatusCode::UNAUTHORIZED,
                ),
                ("kate@local", PASSWORD, StatusCode::OK),
            ],
        ),
        (
            "127.0.0.2",
            "admin@local",
            &[("ADM\u{130}N@local", "another password", StatusCode::OK)],
        ),
    ];
    for (address, locked, then) in table {
        let client = client_from(address);
        for _ in 0..5 {
            let (s, _) = app.accounts().via(&client).login(locked, "guess").await;
            assert_eq!(s, StatusCode::UNAUTHORIZED, "{locked:?} from {address}");
        }
        for &(user, password, status) in then {
            let (s, v) = app.accounts().via(&client).login(user, password).await;
            assert_eq!(s, status, "{user:?} from {address} after {locked:?}: {v}");
        }
    }
}

/// What one management call needs: a fresh fixture per attempt for the destructive ones.
async fn attempt(app: &TestApp, admin: &str, bearer: &str, op: &str) -> StatusCode {
    let as_admin = app.accounts().bearer(admin);
    let (s, project) = as_admin.create_project("fx").await;
    assert_eq!(s, StatusCode::CREATED);
    let pid = project["id"].as_str().unwrap();
    let tid = project["apiToken"]["id"].as_str().unwrap();
    let (_, users) = as_admin
        .create_users(json!([{"name": format!("fx-{}", uuid::Uuid::new_v4()), "type": "SERVICE", "role": {"id": Role::Viewer.id()}}]))
        .await;
    let uid = users["elements"][0]["id"].as_str().unwrap();
    let new_user = json!([{"name": format!("n-{}", uuid::Uuid::new_v4()), "type": "USER", "password": "pw12345678", "role": {"id": Role::Viewer.id()}}]);
    let caller = app.accounts().bearer(bearer);
    let (status, _) = match op {
        "GET /v1/roles" => caller.roles().await,
        "GET /v1/users" => caller.users().await,
        "POST /v1/users" => caller.create_users(new_user).await,
        "PATCH /v1/users/{id}" => caller.update_user(uid, json!({"disabled": true})).await,
        "DELETE /v1/users/{id}" => caller.delete_user(uid).await,
        "GET /v1/projects" => caller.projects().await,
        "POST /v1/projects" => caller.create_project("p").await,
        "GET /v1/projects/{id}" => caller.project(pid).await,
        "DELETE /v1/projects/{id}" => caller.delete_project(pid).await,
        "GET /v1/projects/{id}/api-tokens" => caller.api_tokens(pid).await,
        "POST /v1/projects/{id}/api-tokens" => caller.create_api_token(pid, "ci").await,
        "DELETE /v1/projects/{id}/api-tokens/{tokenId}" => caller.delete_api_token(pid, tid).await,
        "GET /v1/keys" => caller.keys().await,
        "POST /v1/keys/rotate" => caller.rotate_keys().await,
        "GET /v1/audit-events" => caller.audit_events(&format!("?projectId={pid}")).await,
        other => panic!("no fixture for {other}"),
    };
    status
}

#[tokio::test]
async fn every_management_endpoint_allows_its_role_and_denies_the_one_below() {
    let app = spawn_app().await;
    app.operator("admin@local", Role::Admin, false).await;
    app.operator("operator@local", Role::Operator, false).await;
    app.operator("viewer@local", Role::Viewer, false).await;
    let (admin, _) = app.accounts().tokens("admin@local").await;
    let (operator_t, _) = app.accounts().tokens("operator@local").await;
    let (viewer, _) = app.accounts().tokens("viewer@local").await;
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
                let (s, _) = app.accounts().roles().await;
                assert_eq!(s, StatusCode::UNAUTHORIZED);
            }
        }
    }
}

#[tokio::test]
async fn disabling_or_deleting_an_operator_ends_its_sessions() {
    let app = spawn_app().await;
    app.operator("admin@local", Role::Admin, false).await;
    app.operator("ops@local", Role::Operator, false).await;
    let (admin, _) = app.accounts().tokens("admin@local").await;
    let (ops, ops_refresh) = app.accounts().tokens("ops@local").await;
    let ops_id = app.accounts().bearer(&admin).user_id("ops@local").await;
    let (s, v) = app
        .accounts()
        .bearer(&admin)
        .update_user(&ops_id, json!({"disabled": true}))
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["disabled"], true);
    assert_eq!(
        app.accounts().refresh(&ops_refresh, None).await.status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        app.accounts().bearer(&ops).projects().await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        app.accounts().login("ops@local", PASSWORD).await.0,
        StatusCode::UNAUTHORIZED
    );
    // Enabled again, then deleted.
    app.accounts()
        .bearer(&admin)
        .update_user(&ops_id, json!({"disabled": false}))
        .await;
    let (_, again) = app.accounts().tokens("ops@local").await;
    let (s, _) = app.accounts().bearer(&admin).delete_user(&ops_id).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    assert_eq!(
        app.accounts().refresh(&again, None).await.status(),
        StatusCode::NOT_FOUND
    );
    let (s, v) = app.accounts().bearer(&admin).delete_user(&ops_id).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert_error(&v, "NOT_FOUND");
    // An administrator cannot lock itself out.
    let admin_id = app.accounts().bearer(&admin).user_id("admin@local").await;
    let (s, v) = app.accounts().bearer(&admin).delete_user(&admin_id).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_error(&v, "INVALID_REQUEST");
}

#[tokio::test]
async fn projects_and_api_tokens_through_the_management_plane() {
    let app = spawn_app().await;
    let (ops, _) = app.logged_in("ops@local", Role::Operator).await;
    let (s, p) = app.accounts().bearer(&ops).create_project("shop").await;
    assert_eq!(s, StatusCode::CREATED);
    let pid = p["id"].as_str().unwrap().to_string();
    let project = Project {
        id: pid.clone(),
        token: p["apiToken"]["token"].as_str().unwrap().to_string(),
    };
    // The token works on the Fabric API.
    let r = app
        .fabric(&project)
        .subscriber_token(json!({"reference": "a"}))
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let sat = r.value().await;
    let (s, t) = app
        .accounts()
        .bearer(&ops)
        .create_api_token(&pid, "ci")
        .await;
    assert_eq!(s, StatusCode::CREATED);
    let (_, list) = app.accounts().bearer(&ops).api_tokens(&pid).await;
    assert_eq!(list["pageMetadata"]["totalElements"], 2);
    assert!(!list.to_string().contains(t["token"].as_str().unwrap()));
    let first = p["apiToken"]["id"].as_str().unwrap();
    let (s, _) = app
        .accounts()
        .bearer(&ops)
        .delete_api_token(&pid, first)
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let r = app
        .fabric(&project)
        .subscriber_token(json!({"reference": "a"}))
        .await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    // Paging and filters of the audit trail.
    let (s, page) = app
        .accounts()
        .bearer(&ops)
        .audit_events(&format!("?projectId={pid}&pageSize=2&pageNumber=0"))
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
        let (s, v) = app
            .accounts()
            .bearer(&ops)
            .audit_events(&format!("?{bad}"))
            .await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{bad}");
        assert_error(&v, "INVALID_REQUEST");
    }
    // Deleting the project ends its sessions.
    let second = Project {
        id: pid.clone(),
        token: t["token"].as_str().unwrap().to_string(),
    };
    let r = app
        .fabric(&second)
        .introspect(sat["token"].as_str().unwrap())
        .await;
    let family: uuid::Uuid = r.value().await["family_id"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let (s, _) = app.accounts().bearer(&ops).delete_project(&pid).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, _) = app.accounts().bearer(&ops).project(&pid).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert!(matches!(
        app.admin
            .stores
            .families
            .get_family(tessera_core::ids::FamilyId(family))
            .await,
        Err(tessera_core::store::StoreError::NotFound)
    ));
}

#[tokio::test]
async fn eddsa_tokens_verify_with_the_published_jwks_and_survive_rotation() {
    let app = spawn_with(|c| c.accounts_signing_alg = tessera_core::jws::SigningAlg::EdDsa).await;
    let (access, _) = app.logged_in("admin@local", Role::Admin).await;
    assert_eq!(decode_part(&access, 0)["alg"], "EdDSA");
    let jwks = app.accounts().jwks().await;
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
    let (s, rotated) = app.accounts().bearer(&access).rotate_keys().await;
    assert_eq!(s, StatusCode::OK);
    assert!(rotated["elements"]
        .as_array()
        .unwrap()
        .iter()
        .any(|k| k["purpose"] == "signing"));
    app.clock.advance(11);
    app.maintenance().sync_keys().await.unwrap();
    let (fresh, _) = app.accounts().tokens("admin@local").await;
    assert_ne!(
        decode_part(&fresh, 0)["kid"],
        decode_part(&access, 0)["kid"]
    );
    let jwks = app.accounts().jwks().await;
    assert!(verify(&fresh, &jwks) && verify(&access, &jwks));
    assert_eq!(
        app.accounts().bearer(&access).keys().await.0,
        StatusCode::OK
    );
    // HS256 publishes nothing.
    let hs = spawn_app().await;
    let j = hs.accounts().jwks().await;
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
    use tessera_core::store::KeyStore;
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
    app.operator("root@local", Role::Admin, false).await;
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
    // What `GET /v1/users` answers a bearer of `token`.
    let users_as = |token: &str| {
        let request = app
            .accounts()
            .bearer(token)
            .raw(Method::GET, accounts_path::USERS);
        async move { request.send().await.unwrap().status() }
    };
    let issued_before = legacy(START.0 - 600);
    assert_eq!(users_as(&issued_before).await, StatusCode::OK);
    // Signed that way after the upgrade (the check was recorded at START): refused.
    let issued_after = legacy(START.0 + 1);
    assert_eq!(users_as(&issued_after).await, StatusCode::UNAUTHORIZED);
    // New tokens are signed with the subkey, and the old one dies at its expiry.
    let (access, _) = app.accounts().tokens("root@local").await;
    // Past its expiry and the verification leeway.
    app.clock.advance(3100);
    assert_eq!(users_as(&issued_before).await, StatusCode::UNAUTHORIZED);
    assert_eq!(users_as(&access).await, StatusCode::OK);
}

/// Behind a trusted proxy, failures from one forwarded client lock that client only, not the
/// proxy's address or the other clients behind it (issue 20: every client used to be the
/// balancer, so one attacker locked an account for everybody).
#[tokio::test]
async fn behind_a_trusted_proxy_the_lockout_is_per_forwarded_client() {
    let app = spawn_with(|c| c.trusted_proxies = "127.0.0.0/8".parse().unwrap()).await;
    app.operator("admin@local", Role::Admin, false).await;
    let login = |from: &str, password: &str| {
        let body = json!({"username": "admin@local", "password": password});
        let rb = app.accounts().raw(Method::POST, accounts_path::TOKENS);
        rb.header("X-Forwarded-For", format!("198.51.100.77, {from}"))
            .json(&body)
            .send()
    };
    for _ in 0..5 {
        let r = login("203.0.113.5", "guess").await.unwrap();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    }
    // 203.0.113.5 is locked out (answered like bad credentials)...
    let r = login("203.0.113.5", PASSWORD).await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    // ...but not another client behind the same proxy, nor the proxy's own address, and the
    // address left of the client's (its own claim, 198.51.100.77) was not what was counted.
    let r = login("203.0.113.6", PASSWORD).await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let (s, _) = app.accounts().login("admin@local", PASSWORD).await;
    assert_eq!(s, StatusCode::OK);
}

/// A peer that is not a trusted proxy cannot escape its lockout by rotating
/// `X-Forwarded-For` (by default no proxy is trusted).
#[tokio::test]
async fn an_untrusted_peer_cannot_escape_its_lockout_with_forwarding_headers() {
    let app = spawn_app().await;
    app.operator("admin@local", Role::Admin, false).await;
    let login = |n: u32, password: &str| {
        let body = json!({"username": "admin@local", "password": password});
        let rb = app.accounts().raw(Method::POST, accounts_path::TOKENS);
        rb.header("X-Forwarded-For", format!("203.0.113.{n}"))
            .header("Forwarded", format!("for=198.51.100.{n}"))
            .json(&body)
            .send()
    };
    for n in 0..5 {
        assert_eq!(
            login(n, "guess").await.unwrap().status(),
            StatusCode::UNAUTHORIZED
        );
    }
    let r = login(99, PASSWORD).await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "still locked");
}
