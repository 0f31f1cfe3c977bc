//! Limits the OpenAPI document states are the limits the server enforces (found by running
//! Schemathesis with every check, which sends what the document allows and expects it taken).
//!
//! JSON Schema's `minLength`/`maxLength` count characters (code points), so every length the
//! server checks is counted in characters too: a limit in bytes cannot be written in the
//! document, and a 1024-character name of accented letters would be "valid" yet refused.
//!
//! The helpers are local to this file on purpose: it starts the real application itself and
//! depends on nothing but the crate's public API.

use std::sync::Arc;

use reqwest::{Client, StatusCode};
use serde_json::{json, Value};
use tessera_core::admin::{Actor, Admin};
use tessera_core::crypto::MasterKey;
use tessera_core::ids::ProjectId;
use tessera_core::model::Role;
use tessera_core::{ManualClock, Secret, UnixTime};
use tessera_server::config::Database;
use tessera_server::Config;

/// A running server, its admin handle and one project's Basic credentials.
struct App {
    base: String,
    client: Client,
    admin: Admin,
    project: (String, String),
    _dir: tempfile::TempDir,
}

async fn start() -> App {
    let dir = tempfile::tempdir().unwrap();
    let (_, key) = MasterKey::generate();
    let config = Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        database: Database::Sqlite(dir.path().join("tessera.db")),
        master_key: Some(key),
        ..Config::default()
    };
    let clock = ManualClock::new(UnixTime(1_800_000_000));
    let state = tessera_server::prepare(config.clone(), Arc::new(clock.clone()))
        .await
        .unwrap();
    let admin = state.accounts.admin(Actor::Cli);
    let listener = tokio::net::TcpListener::bind(config.listen).await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    // The server runs until the test's runtime ends.
    tokio::spawn(async move {
        tessera_server::serve(listener, state, std::future::pending())
            .await
            .unwrap();
    });
    let (p, _, secret) = admin.new_project("limits").await.unwrap();
    App {
        base,
        client: Client::new(),
        admin,
        project: (p.id.to_string(), secret.into_inner()),
        _dir: dir,
    }
}

impl App {
    async fn post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        let r = self
            .client
            .post(format!("{}{path}", self.base))
            .basic_auth(&self.project.0, Some(&self.project.1))
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = r.status();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    /// Creates a subscriber from `body`.
    async fn post_subscriber(&self, body: Value) -> (StatusCode, Value) {
        self.post("/api/fabric/resources/subscribers", body).await
    }

    /// Creates a conference room from `body`.
    async fn post_room(&self, body: Value) -> (StatusCode, Value) {
        self.post("/api/fabric/resources/conference_rooms", body)
            .await
    }

    /// The JSON document at `path`, fetched without credentials.
    /// Logs in to the Accounts API and returns the access token; the login must succeed.
    async fn access_token(&self, username: &str, password: &str) -> String {
        let body = json!({ "username": username, "password": password });
        let r = self
            .client
            .post(format!("{}/v1/tokens", self.base))
            .json(&body);
        let r = r.send().await.unwrap();
        assert!(r.status().is_success(), "{}", r.status());
        let login: Value = r.json().await.unwrap();
        login["accessToken"].as_str().unwrap().to_string()
    }

    async fn get_json(&self, path: &str) -> Value {
        let url = format!("{}{path}", self.base);
        let response = self.client.get(url).send().await.unwrap();
        response.json().await.unwrap()
    }
}

/// Two bytes in UTF-8, one character.
fn accented(n: usize) -> String {
    "é".repeat(n)
}

/// Free text is limited to 1024 characters, not 1024 bytes: 1024 `é` (2048 bytes) used to be
/// refused as "too long (maximum is 1024 characters)".
#[tokio::test]
async fn fabric_text_limit_counts_characters() {
    let app = start().await;
    let (s, body) = app
        .post_subscriber(json!({ "email": accented(1024), "first_name": accented(1024) }))
        .await;
    assert_eq!(s, StatusCode::CREATED, "{body}");
    assert_eq!(body["subscriber"]["first_name"], accented(1024));

    let (s, body) = app
        .post_subscriber(json!({ "email": "a@example.com", "first_name": accented(1025) }))
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["errors"][0]["attribute"], "first_name");

    let (s, body) = app.post_room(json!({ "name": accented(1024) })).await;
    assert_eq!(s, StatusCode::CREATED, "{body}");
}

/// A password is 8 to 72 characters; 72 `é` (144 bytes) used to be refused as too long.
#[tokio::test]
async fn fabric_password_limit_counts_characters() {
    let app = start().await;
    let (s, body) = app
        .post_subscriber(json!({ "email": "pw@example.com", "password": accented(72) }))
        .await;
    assert_eq!(s, StatusCode::CREATED, "{body}");
    let (s, body) = app
        .post_subscriber(json!({ "email": "pw2@example.com", "password": accented(73) }))
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["errors"][0]["attribute"], "password");
}

/// Project and API token names are at most 256 characters, not bytes.
#[tokio::test]
async fn project_and_token_names_count_characters() {
    let app = start().await;
    let (project, _, _) = app.admin.new_project(&accented(256)).await.unwrap();
    assert!(app.admin.new_project(&accented(257)).await.is_err());
    let id: ProjectId = project.id;
    app.admin.new_api_token(id, &accented(256)).await.unwrap();
    assert!(app.admin.new_api_token(id, &accented(257)).await.is_err());
}

/// An operator's username is at most 256 characters, not bytes, as `UserCreate.name`'s
/// `maxLength` says: 256 `é` (512 bytes) used to be refused, and such a name logs in.
#[tokio::test]
async fn usernames_count_characters() {
    let app = start().await;
    let pw = || Some(Secret::new("Limits-Passw0rd!".to_string()));
    app.admin
        .create_operator(&accented(256), pw(), Role::Admin, false)
        .await
        .unwrap();
    assert!(app
        .admin
        .create_operator(&accented(257), pw(), Role::Admin, false)
        .await
        .is_err());
    // Logs in (the helper asserts the login succeeds).
    app.access_token(&accented(256), "Limits-Passw0rd!").await;

    let doc = app.get_json("/openapi.json").await;
    let user = &doc["components"]["schemas"]["UserCreate"]["properties"];
    assert_eq!(user["name"]["maxLength"], 256);
    assert_eq!(user["domain"]["maxLength"], 256);
}

/// A SERVICE user's `password` may be null (it counts as none, as the server always read it),
/// and the document says so: Schemathesis sent `"password": null` as invalid data and saw 201.
#[tokio::test]
async fn a_service_users_null_password_is_documented() {
    let app = start().await;
    let pw = "Limits-Passw0rd!";
    app.admin
        .create_operator(
            "admin",
            Some(Secret::new(pw.to_string())),
            Role::Admin,
            false,
        )
        .await
        .unwrap();
    let access = app.access_token("admin", pw).await;
    let create = |user: Value| {
        app.client
            .post(format!("{}/v1/users", app.base))
            .bearer_auth(&access)
            .json(&json!([user]))
            .send()
    };
    let svc = json!({ "name": "svc", "type": "SERVICE", "role": { "id": "ADMIN" },
                      "password": null });
    assert_eq!(create(svc).await.unwrap().status(), StatusCode::CREATED);
    // A USER still needs one.
    let user = json!({ "name": "u", "type": "USER", "role": { "id": "ADMIN" },
                       "password": null });
    assert_eq!(
        create(user).await.unwrap().status(),
        StatusCode::BAD_REQUEST
    );

    let doc = app.get_json("/openapi.json").await;
    let user = &doc["components"]["schemas"]["UserCreate"];
    assert_eq!(
        user["properties"]["password"]["type"],
        json!(["string", "null"])
    );
    assert_eq!(
        user["then"]["properties"]["password"]["enum"],
        json!(["", null])
    );
    assert_eq!(user["else"]["properties"]["password"]["type"], "string");
}

/// The document's request schemas say what the server does with the inputs Schemathesis found
/// misdescribed: optional bodies, `null` members, blank names, page tokens, hints and roles.
#[tokio::test]
async fn document_states_what_the_server_accepts() {
    let app = start().await;
    let doc = app.get_json("/openapi.json").await;
    let paths = &doc["paths"];
    let schemas = &doc["components"]["schemas"];

    // A merge with nothing in it succeeds, so these bodies are optional…
    for (path, method) in [
        ("/api/fabric/resources/subscribers/{id}", "put"),
        ("/api/fabric/resources/conference_rooms/{id}", "put"),
        ("/oauth2/introspect", "post"),
        ("/oauth2/revoke", "post"),
        ("/v1/users/{id}", "patch"),
        ("/v1/projects/{id}/api-tokens", "post"),
    ] {
        assert_eq!(
            paths[path][method]["requestBody"]["required"], false,
            "{method} {path}"
        );
    }
    // …and a body the operation cannot do without stays required.
    assert_eq!(
        paths["/api/fabric/guests/tokens"]["post"]["requestBody"]["required"],
        true
    );
    // And the server really does answer an empty merge with 200.
    let (s, room) = app.post_room(json!({ "name": "r" })).await;
    assert_eq!(s, StatusCode::CREATED);
    let r = app
        .client
        .put(format!(
            "{}/api/fabric/resources/conference_rooms/{}",
            app.base,
            room["id"].as_str().unwrap()
        ))
        .basic_auth(&app.project.0, Some(&app.project.1))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);

    // Null counts as absent in Fabric bodies, so optional members accept it.
    let room_req = &schemas["ConferenceRoomRequest"]["properties"];
    assert_eq!(room_req["display_name"]["type"], json!(["string", "null"]));
    let (s, body) = app
        .post_room(json!({ "name": "n", "display_name": null }))
        .await;
    assert_eq!(s, StatusCode::CREATED, "{body}");
    // A required name is not blank: the server trims it.
    assert!(room_req["name"]["pattern"].is_string());
    let (s, _) = app.post_room(json!({ "name": "\r" })).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    // A password is empty or 8 characters at least.
    let pw = &schemas["SubscriberRequest"]["properties"]["password"];
    assert_eq!(pw["anyOf"], json!([{ "const": "" }, { "minLength": 8 }]));
    // Hints are open-ended (RFC 7009 lets a server ignore unknown ones).
    let oauth = &schemas["IntrospectionRequest"]["properties"];
    assert!(oauth["token_type_hint"]["enum"].is_null());
    // A JSON body's `null` counts as absent there too; any other non-string is a 400.
    assert_eq!(oauth["token_type_hint"]["type"], json!(["string", "null"]));
    assert_eq!(oauth["token"]["type"], json!(["string", "null"]));
    // A role reference names a role.
    assert!(schemas["RoleReference"]["properties"]["id"]["enum"]
        .as_array()
        .unwrap()
        .contains(&json!("ADMIN")));
    // A page token is `PA` and a UUID: 36 hex digits and dashes in any order are not one.
    let pattern = paths["/api/fabric/resources"]["get"]["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "page_token")
        .unwrap()["schema"]["pattern"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(pattern.contains("{8}(-"), "{pattern}");
    // No expiry example: any fixed instant is refused once it has passed.
    let expire_at = &schemas["GuestTokenRequest"]["properties"]["expire_at"];
    assert!(expire_at["examples"].is_null(), "{expire_at}");
}

/// The addresses list's `type` filter is at most 32 characters, as the document's
/// `maxLength` says: 20 `é` (40 bytes) used to be a 422.
#[tokio::test]
async fn address_type_filter_counts_characters() {
    let app = start().await;
    let list = |t: String| {
        app.client
            .get(format!("{}/api/fabric/addresses", app.base))
            .basic_auth(&app.project.0, Some(&app.project.1))
            .query(&[("type", t)])
            .send()
    };
    let r = list(accented(32)).await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let r = list(accented(33)).await.unwrap();
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
}

/// Every operation `tests/fuzz/schemathesis.toml` widens a check for is one the document
/// serves: Schemathesis silently ignores an entry that matches nothing, so a renamed path
/// would otherwise make the fuzz run fail on a class it had been told about.
#[tokio::test]
async fn schemathesis_configuration_names_documented_operations() {
    let app = start().await;
    let doc = app.get_json("/openapi.json").await;
    let config = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tests/fuzz/schemathesis.toml"
    ))
    .unwrap();
    let mut named = 0;
    for quoted in config
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .flat_map(|l| l.split('"').skip(1).step_by(2))
    {
        let Some((method, path)) = quoted.split_once(' ') else {
            continue;
        };
        if !["GET", "POST", "PUT", "PATCH", "DELETE"].contains(&method) {
            continue;
        }
        named += 1;
        assert!(
            doc["paths"][path][method.to_ascii_lowercase()].is_object(),
            "schemathesis.toml names {quoted}, which the document does not have"
        );
    }
    assert!(
        named >= 16,
        "only {named} operations found in schemathesis.toml"
    );
}

/// `page_number` may be as large as `u64::MAX` (the document's maximum) with a page token:
/// the `next` link's number saturates. It was `number + 1`, which panicked (debug builds; a
/// release build wrapped to 0) when Schemathesis asked for page `u64::MAX` of a longer list.
#[tokio::test]
async fn the_last_page_number_has_a_next_link() {
    let app = start().await;
    for name in ["a", "b", "c"] {
        let (s, _) = app
            .post(
                "/api/fabric/resources/conference_rooms",
                json!({ "name": name }),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED);
    }
    let get = |query: String| {
        app.client
            .get(format!(
                "{}/api/fabric/resources/conference_rooms?{query}",
                app.base
            ))
            .basic_auth(&app.project.0, Some(&app.project.1))
            .send()
    };
    let first: Value = get("page_size=1".into())
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let next = first["links"]["next"].as_str().unwrap();
    let token = next
        .split("page_token=")
        .nth(1)
        .unwrap()
        .split('&')
        .next()
        .unwrap();
    let r = get(format!(
        "page_number={}&page_size=1&page_token={token}",
        u64::MAX
    ))
    .await
    .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let page: Value = r.json().await.unwrap();
    let next = page["links"]["next"].as_str().unwrap();
    assert!(
        next.contains(&format!("page_number={}&", u64::MAX)),
        "{next}"
    );
}
