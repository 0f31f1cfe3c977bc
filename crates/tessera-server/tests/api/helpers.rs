//! `spawn_app()` and the typed test client.
//!
//! Every endpoint path the tests call is written once, here: [`Fabric`] speaks the Fabric API
//! as a project (Basic), a subscriber (Bearer) or nobody, and [`Accounts`] speaks the
//! Accounts API anonymously or with an operator's Bearer. Tests then read as what a user does
//! (`app.fabric(&p).subscriber_token(...)`, `app.accounts().login(user, pw)`), and only the
//! bad-input tests that must send malformed bytes use the raw escape hatches
//! ([`TestApp::url`], [`Fabric::raw`], [`Accounts::call`]).

use std::sync::Arc;

use base64::Engine;
use reqwest::{Client, Method, RequestBuilder, Response, StatusCode};
use serde_json::{json, Value};
use tessera_core::admin::{Actor, Admin};
use tessera_core::crypto::MasterKey;
use tessera_core::model::Role;
use tessera_core::{ManualClock, Secret, UnixTime};
use tessera_server::config::Database;
use tessera_server::Config;
use tokio::sync::oneshot;

use fabric_path::*;

/// A running server.
pub struct TestApp {
    pub base: String,
    pub client: Client,
    pub clock: ManualClock,
    pub admin: Admin,
    pub config: Config,
    pub state: tessera_server::AppState,
    _dir: Arc<tempfile::TempDir>,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

/// Credentials of one project.
#[derive(Clone, Debug)]
pub struct Project {
    pub id: String,
    pub token: String,
}

pub const START: UnixTime = UnixTime(1_800_000_000);

pub async fn spawn_app() -> TestApp {
    spawn_with(|_| {}).await
}

/// A running server with one project: where most Fabric tests begin.
pub async fn spawn_with_project() -> (TestApp, Project) {
    let app = spawn_app().await;
    let p = app.project().await;
    (app, p)
}

pub async fn spawn_with(tweak: impl FnOnce(&mut Config)) -> TestApp {
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let (_, key) = MasterKey::generate();
    let mut config = Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        database: Database::Sqlite(dir.path().join("tessera.db")),
        master_key: Some(key),
        ..Config::default()
    };
    tweak(&mut config);
    start(config, ManualClock::new(START), dir).await
}

/// Starts the app on `config` (whose database may already hold an installation) at `clock`.
pub async fn start(config: Config, clock: ManualClock, dir: Arc<tempfile::TempDir>) -> TestApp {
    let state = tessera_server::prepare(config.clone(), Arc::new(clock.clone()))
        .await
        .expect("app starts");
    let admin = state.accounts.admin(Actor::Cli);
    let listener = tokio::net::TcpListener::bind(config.listen).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = oneshot::channel::<()>();
    let kept = state.clone();
    let task = tokio::spawn(async move {
        tessera_server::serve(listener, state, async {
            let _ = rx.await;
        })
        .await
        .unwrap();
    });
    TestApp {
        base: format!("http://{addr}"),
        client: Client::new(),
        clock,
        admin,
        config,
        state: kept,
        _dir: dir,
        shutdown: Some(tx),
        task: Some(task),
    }
}

impl TestApp {
    /// Stops the server and starts a new one on the same database and master key.
    pub async fn restart(mut self) -> TestApp {
        self.stop().await;
        let mut config = self.config.clone();
        config.listen = "127.0.0.1:0".parse().unwrap();
        start(config, self.clock.clone(), self._dir.clone()).await
    }

    async fn stop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.task.take() {
            let _ = t.await;
        }
    }

    pub fn maintenance(&self) -> &tessera_core::maintenance::Maintenance {
        &self.state.maintenance
    }

    pub async fn project(&self) -> Project {
        let (project, _, secret) = self.admin.new_project("test").await.unwrap();
        Project {
            id: project.id.to_string(),
            token: secret.into_inner(),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Creates a subscriber through the API and returns (resource id, address id).
    pub async fn subscriber(&self, p: &Project, email: &str) -> (String, String) {
        self.fabric(p).new_subscriber(email).await
    }

    /// Creates a room and returns its address id.
    pub async fn room_address(&self, p: &Project, name: &str) -> String {
        self.fabric(p).new_room(name).await.1
    }
}

/// Decodes a token's protected header.
pub fn header(token: &str) -> Value {
    let h = token.split('.').next().unwrap();
    serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(h)
            .unwrap(),
    )
    .unwrap()
}

/// The first 422 item's code and attribute.
pub async fn first_error(r: Response) -> (String, Value) {
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let v = r.value().await;
    let e = &v["errors"][0];
    (
        e["code"].as_str().unwrap().to_string(),
        e["attribute"].clone(),
    )
}

#[allow(dead_code)]
pub fn secret(s: &str) -> Secret<String> {
    Secret::new(s.to_string())
}

/// The password [`TestApp::operator`] gives every human operator.
pub const PASSWORD: &str = "C0rrect horse battery!";

/// How a [`Fabric`] client authenticates.
#[derive(Clone)]
enum FabricAuth {
    /// A project's id and API token, as HTTP Basic.
    Project(Project),
    /// A subscriber's (or guest's) access token.
    Bearer(String),
    /// No Authorization header at all.
    Anonymous,
}

/// The Fabric API (fabric-api.md) as one caller sees it: one method per endpoint, each
/// answering the raw [`Response`] so that tests assert on status, headers and body alike.
/// It owns what it needs (the HTTP client is a shared handle), so a clone can be moved into a
/// spawned task for the concurrency tests.
#[derive(Clone)]
pub struct Fabric {
    client: Client,
    base: String,
    auth: FabricAuth,
}

/// The Fabric endpoint paths, written once.
pub mod fabric_path {
    /// `POST`: a subscriber access token (SAT) and its refresh token.
    pub const SUBSCRIBER_TOKENS: &str = "/api/fabric/subscribers/tokens";
    /// `POST`: exchanges a refresh token.
    pub const REFRESH: &str = "/api/fabric/subscribers/tokens/refresh";
    /// `POST`: a guest token for some addresses.
    pub const GUEST_TOKENS: &str = "/api/fabric/guests/tokens";
    /// `POST`: an invite token for one subscriber address.
    pub const INVITES: &str = "/api/fabric/subscriber/invites";
    /// `POST`: exchanges a click-to-call embed token; unauthenticated.
    pub const EMBED_TOKENS: &str = "/api/fabric/embeds/tokens";
    /// `GET`: the addresses; `/{id}` one of them.
    pub const ADDRESSES: &str = "/api/fabric/addresses";
    /// `GET`: every resource; `/{id}` one, `/{id}/addresses` its addresses.
    pub const RESOURCES: &str = "/api/fabric/resources";
    /// `GET`/`POST`: subscribers; `/{id}` one of them (`GET`, `PUT`, `DELETE`).
    pub const SUBSCRIBERS: &str = "/api/fabric/resources/subscribers";
    /// `GET`/`POST`: conference rooms; `/{id}` one of them (`GET`, `PUT`, `DELETE`).
    pub const ROOMS: &str = "/api/fabric/resources/conference_rooms";
    /// `POST` (form): RFC 7662 introspection.
    pub const INTROSPECT: &str = "/oauth2/introspect";
    /// `POST` (form): RFC 7009 revocation.
    pub const REVOKE: &str = "/oauth2/revoke";
}

impl Fabric {
    /// A request to `path` with this client's credentials; the escape hatch for bodies the
    /// typed methods cannot send.
    pub fn raw(&self, method: Method, path: &str) -> RequestBuilder {
        let rb = self.client.request(method, format!("{}{path}", self.base));
        match &self.auth {
            FabricAuth::Project(p) => rb.basic_auth(&p.id, Some(&p.token)),
            FabricAuth::Bearer(t) => rb.bearer_auth(t),
            FabricAuth::Anonymous => rb,
        }
    }

    async fn send(&self, method: Method, path: &str, body: Option<Value>) -> Response {
        let mut rb = self.raw(method, path);
        if let Some(body) = body {
            rb = rb.json(&body);
        }
        rb.send().await.unwrap()
    }

    async fn get(&self, path: String) -> Response {
        self.send(Method::GET, &path, None).await
    }

    async fn post(&self, path: &str, body: Value) -> Response {
        self.send(Method::POST, path, Some(body)).await
    }

    /// Posts the form `token=...`, as the RFC 7662 and 7009 endpoints read it.
    async fn post_token_form(&self, path: &str, token: &str) -> Response {
        let rb = self.raw(Method::POST, path).form(&[("token", token)]);
        rb.send().await.unwrap()
    }

    /// `POST /api/fabric/subscribers/tokens` with `body` (`reference`, profile fields...).
    pub async fn subscriber_token(&self, body: Value) -> Response {
        self.post(SUBSCRIBER_TOKENS, body).await
    }

    /// [`Fabric::subscriber_token`] for `reference`, expecting 200; answers its body.
    pub async fn grant(&self, reference: &str) -> Value {
        self.grant_with(json!({"reference": reference})).await
    }

    /// [`Fabric::subscriber_token`] with `body`, expecting 200; answers its body.
    pub async fn grant_with(&self, body: Value) -> Value {
        let r = self.subscriber_token(body).await;
        assert_eq!(r.status(), StatusCode::OK, "{}", r.url());
        r.value().await
    }

    /// `POST /api/fabric/subscribers/tokens/refresh` with `{"refresh_token": rt}`.
    pub async fn refresh(&self, rt: &(impl AsJson + ?Sized)) -> Response {
        let body = json!({"refresh_token": rt.as_json()});
        self.post(REFRESH, body).await
    }

    /// `POST /api/fabric/guests/tokens` with `body` (`allowed_addresses`, `expire_at`).
    pub async fn guest_token(&self, body: Value) -> Response {
        self.post(GUEST_TOKENS, body).await
    }

    /// [`Fabric::guest_token`] for `addresses`, expecting 201; answers its body.
    pub async fn guest(&self, addresses: &[&str]) -> Value {
        let r = self
            .guest_token(json!({"allowed_addresses": addresses}))
            .await;
        assert_eq!(r.status(), StatusCode::CREATED);
        r.value().await
    }

    /// `POST /api/fabric/subscriber/invites` with `body` (`address_id`, `expires_at`).
    pub async fn invite(&self, body: Value) -> Response {
        self.post(INVITES, body).await
    }

    /// `POST /api/fabric/embeds/tokens` exchanging the click-to-call `token`.
    pub async fn embed_token(&self, token: &str) -> Response {
        self.post(EMBED_TOKENS, json!({"token": token})).await
    }

    /// `GET /api/fabric/addresses` with `query` (empty, or starting with `?`).
    pub async fn addresses(&self, query: &str) -> Response {
        self.get(format!("{ADDRESSES}{query}")).await
    }

    /// `GET /api/fabric/addresses/{id}`.
    pub async fn address(&self, id: &str) -> Response {
        self.get(format!("{ADDRESSES}/{id}")).await
    }

    /// `GET /api/fabric/resources` with `query` (empty, or starting with `?`).
    pub async fn resources(&self, query: &str) -> Response {
        self.get(format!("{RESOURCES}{query}")).await
    }

    /// `GET /api/fabric/resources/{id}`.
    pub async fn resource(&self, id: &str) -> Response {
        self.get(format!("{RESOURCES}/{id}")).await
    }

    /// `GET /api/fabric/resources/{id}/addresses`.
    pub async fn resource_addresses(&self, id: &str) -> Response {
        self.get(format!("{RESOURCES}/{id}/addresses")).await
    }

    /// `GET /api/fabric/resources/subscribers` with `query` (empty, or starting with `?`).
    pub async fn list_subscribers(&self, query: &str) -> Response {
        self.get(format!("{SUBSCRIBERS}{query}")).await
    }

    /// `POST /api/fabric/resources/subscribers` with `body`.
    pub async fn create_subscriber(&self, body: Value) -> Response {
        self.post(SUBSCRIBERS, body).await
    }

    /// `GET /api/fabric/resources/subscribers/{id}`.
    pub async fn get_subscriber(&self, id: &str) -> Response {
        self.get(format!("{SUBSCRIBERS}/{id}")).await
    }

    /// `PUT /api/fabric/resources/subscribers/{id}` with `body`.
    pub async fn update_subscriber(&self, id: &str, body: Value) -> Response {
        let path = format!("{SUBSCRIBERS}/{id}");
        self.send(Method::PUT, &path, Some(body)).await
    }

    /// `DELETE /api/fabric/resources/subscribers/{id}`.
    pub async fn delete_subscriber(&self, id: &str) -> Response {
        let path = format!("{SUBSCRIBERS}/{id}");
        self.send(Method::DELETE, &path, None).await
    }

    /// `GET /api/fabric/resources/subscribers/{id}/addresses`.
    pub async fn subscriber_addresses(&self, id: &str) -> Response {
        self.get(format!("{SUBSCRIBERS}/{id}/addresses")).await
    }

    /// `GET /api/fabric/resources/conference_rooms` with `query` (empty, or starting with `?`).
    pub async fn list_rooms(&self, query: &str) -> Response {
        self.get(format!("{ROOMS}{query}")).await
    }

    /// `POST /api/fabric/resources/conference_rooms` with `body` (`name`, ...).
    pub async fn create_room(&self, body: Value) -> Response {
        self.post(ROOMS, body).await
    }

    /// `GET /api/fabric/resources/conference_rooms/{id}`.
    pub async fn get_room(&self, id: &str) -> Response {
        self.get(format!("{ROOMS}/{id}")).await
    }

    /// `PUT /api/fabric/resources/conference_rooms/{id}` with `body`.
    pub async fn update_room(&self, id: &str, body: Value) -> Response {
        self.send(Method::PUT, &format!("{ROOMS}/{id}"), Some(body))
            .await
    }

    /// `DELETE /api/fabric/resources/conference_rooms/{id}`.
    pub async fn delete_room(&self, id: &str) -> Response {
        self.send(Method::DELETE, &format!("{ROOMS}/{id}"), None)
            .await
    }

    /// `POST /oauth2/introspect` with the form `token=...`.
    pub async fn introspect(&self, token: &str) -> Response {
        self.post_token_form(INTROSPECT, token).await
    }

    /// `POST /oauth2/revoke` with the form `token=...`.
    pub async fn revoke(&self, token: &str) -> Response {
        self.post_token_form(REVOKE, token).await
    }

    /// Creates a subscriber and answers (resource id, its address id).
    pub async fn new_subscriber(&self, email: &str) -> (String, String) {
        let r = self.create_subscriber(json!({"email": email})).await;
        assert_eq!(r.status(), StatusCode::CREATED);
        let id = id_of(&r.json().await.unwrap());
        let a = self.subscriber_addresses(&id).await.value().await;
        (id, a["data"][0]["id"].as_str().unwrap().to_string())
    }

    /// Creates a room named `name` and answers (resource id, its address id).
    pub async fn new_room(&self, name: &str) -> (String, String) {
        let r = self.create_room(json!({"name": name})).await;
        assert_eq!(r.status(), StatusCode::CREATED);
        let id = id_of(&r.json().await.unwrap());
        let a = self.resource_addresses(&id).await.value().await;
        (id, a["data"][0]["id"].as_str().unwrap().to_string())
    }
}

/// A token as tests hold it: a string, or the JSON member it was read from (which may be
/// anything, for the tests that send the wrong thing).
pub trait AsJson {
    /// The token as a JSON value.
    fn as_json(&self) -> Value;
}

impl AsJson for str {
    fn as_json(&self) -> Value {
        Value::from(self)
    }
}

impl AsJson for String {
    fn as_json(&self) -> Value {
        Value::from(self.as_str())
    }
}

impl AsJson for Value {
    fn as_json(&self) -> Value {
        self.clone()
    }
}

impl<T: AsJson + ?Sized> AsJson for &T {
    fn as_json(&self) -> Value {
        (**self).as_json()
    }
}

/// Reading a response's JSON body in one step, as nearly every test does.
pub trait JsonBody {
    /// The body as JSON; panics (failing the test) if it is not JSON.
    fn value(self) -> impl std::future::Future<Output = Value>;
}

impl JsonBody for Response {
    async fn value(self) -> Value {
        self.json().await.unwrap()
    }
}

/// The `id` member of a JSON object, as a string.
pub fn id_of(v: &Value) -> String {
    v["id"].as_str().unwrap().to_string()
}

/// The Accounts API paths, written once.
pub mod accounts_path {
    /// `POST`: a login; `PUT` is not allowed.
    pub const TOKENS: &str = "/v1/tokens";
    /// `PATCH`: a refresh id for a new access token.
    pub const REFRESH: &str = "/v1/tokens/access-token/refresh";
    /// `DELETE`: invalidates a refresh id.
    pub const INVALIDATE: &str = "/v1/tokens/refresh-token";
    /// `GET`: the public signing keys.
    pub const JWKS: &str = "/v1/tokens/jwks";
    /// `GET`: the roles.
    pub const ROLES: &str = "/v1/roles";
    /// `GET`/`POST`: operators; `/{id}` one of them (`PATCH`, `DELETE`).
    pub const USERS: &str = "/v1/users";
    /// `GET`/`POST`: projects; `/{id}` one, `/{id}/api-tokens[/{tokenId}]` its API tokens.
    pub const PROJECTS: &str = "/v1/projects";
    /// `GET`: the key ring.
    pub const KEYS: &str = "/v1/keys";
    /// `POST`: rotates the keys.
    pub const ROTATE: &str = "/v1/keys/rotate";
    /// `GET`: the audit trail.
    pub const AUDIT: &str = "/v1/audit-events";
}

/// The Accounts API (accounts-api.md) as one caller sees it: anonymous, or with an operator's
/// Bearer, from the app's client or one bound to another source address. Management calls
/// answer `(status, JSON body or Null)`.
#[derive(Clone, Copy)]
pub struct Accounts<'a> {
    app: &'a TestApp,
    client: &'a Client,
    bearer: Option<&'a str>,
}

impl<'a> Accounts<'a> {
    /// The same caller presenting `token` as its Bearer.
    pub fn bearer(self, token: &'a str) -> Self {
        Accounts {
            bearer: Some(token),
            ..self
        }
    }

    /// The same caller presenting `token`, if any, as its Bearer.
    pub fn maybe_bearer(self, token: Option<&'a str>) -> Self {
        Accounts {
            bearer: token,
            ..self
        }
    }

    /// The same caller sending through `client` (e.g. bound to another source address).
    pub fn via(self, client: &'a Client) -> Self {
        Accounts { client, ..self }
    }

    /// A request to `path` with this caller's Bearer; the escape hatch for raw bodies.
    pub fn raw(self, method: Method, path: &str) -> RequestBuilder {
        let rb = self.client.request(method, self.app.url(path));
        match self.bearer {
            Some(b) => rb.bearer_auth(b),
            None => rb,
        }
    }

    /// Any call, answering the status and the JSON body (`Null` when empty).
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut rb = self.raw(method, path);
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

    /// `POST /v1/tokens` with `body`; checks the dialect's content type.
    pub async fn login_with(self, body: Value) -> (StatusCode, Value) {
        let r = self
            .raw(Method::POST, accounts_path::TOKENS)
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = r.status();
        assert_eq!(r.headers()["content-type"], "application/json");
        (status, r.json().await.unwrap())
    }

    /// `POST /v1/tokens` with a username and password.
    pub async fn login(self, user: &str, pw: &str) -> (StatusCode, Value) {
        self.login_with(json!({"username": user, "password": pw}))
            .await
    }

    /// Logs `user` in with [`PASSWORD`], expecting 200; answers (access token, refresh id).
    pub async fn tokens(self, user: &str) -> (String, String) {
        let (s, v) = self.login(user, PASSWORD).await;
        assert_eq!(s, StatusCode::OK, "{v}");
        (
            v["accessToken"].as_str().unwrap().to_string(),
            v["refreshToken"]["id"].as_str().unwrap().to_string(),
        )
    }

    /// `PATCH /v1/tokens/access-token/refresh` with the raw `body` and content type.
    pub async fn refresh(self, body: &str, content_type: Option<&str>) -> Response {
        let mut rb = self
            .raw(Method::PATCH, accounts_path::REFRESH)
            .body(body.to_string());
        if let Some(ct) = content_type {
            rb = rb.header("content-type", ct);
        }
        rb.send().await.unwrap()
    }

    /// `DELETE /v1/tokens/refresh-token` with the raw `body`.
    pub async fn invalidate(self, body: &str) -> Response {
        self.raw(Method::DELETE, accounts_path::INVALIDATE)
            .body(body.to_string())
            .send()
            .await
            .unwrap()
    }

    /// `GET /v1/tokens/jwks`, expecting JSON.
    pub async fn jwks(self) -> Value {
        let r = self.raw(Method::GET, accounts_path::JWKS).send().await;
        r.unwrap().json().await.unwrap()
    }

    /// `GET /v1/roles`.
    pub async fn roles(self) -> (StatusCode, Value) {
        self.call(Method::GET, accounts_path::ROLES, None).await
    }

    /// `GET /v1/users`.
    pub async fn users(self) -> (StatusCode, Value) {
        self.call(Method::GET, accounts_path::USERS, None).await
    }

    /// `POST /v1/users` with the array `body`.
    pub async fn create_users(self, body: Value) -> (StatusCode, Value) {
        self.call(Method::POST, accounts_path::USERS, Some(body))
            .await
    }

    /// `PATCH /v1/users/{id}` with `body`.
    pub async fn update_user(self, id: &str, body: Value) -> (StatusCode, Value) {
        let path = format!("{}/{id}", accounts_path::USERS);
        self.call(Method::PATCH, &path, Some(body)).await
    }

    /// `DELETE /v1/users/{id}`.
    pub async fn delete_user(self, id: &str) -> (StatusCode, Value) {
        let path = format!("{}/{id}", accounts_path::USERS);
        self.call(Method::DELETE, &path, None).await
    }

    /// The id of the operator named `name`, from `GET /v1/users`.
    pub async fn user_id(self, name: &str) -> String {
        let (_, list) = self.users().await;
        let found = list["elements"].as_array().unwrap().iter();
        id_of(found.clone().find(|u| u["name"] == name).unwrap())
    }

    /// `GET /v1/projects`.
    pub async fn projects(self) -> (StatusCode, Value) {
        self.call(Method::GET, accounts_path::PROJECTS, None).await
    }

    /// `POST /v1/projects` named `name`.
    pub async fn create_project(self, name: &str) -> (StatusCode, Value) {
        let body = json!({"name": name});
        self.call(Method::POST, accounts_path::PROJECTS, Some(body))
            .await
    }

    /// `GET /v1/projects/{id}`.
    pub async fn project(self, id: &str) -> (StatusCode, Value) {
        let path = format!("{}/{id}", accounts_path::PROJECTS);
        self.call(Method::GET, &path, None).await
    }

    /// `DELETE /v1/projects/{id}`.
    pub async fn delete_project(self, id: &str) -> (StatusCode, Value) {
        let path = format!("{}/{id}", accounts_path::PROJECTS);
        self.call(Method::DELETE, &path, None).await
    }

    /// `GET /v1/projects/{id}/api-tokens`.
    pub async fn api_tokens(self, project: &str) -> (StatusCode, Value) {
        let path = format!("{}/{project}/api-tokens", accounts_path::PROJECTS);
        self.call(Method::GET, &path, None).await
    }

    /// `POST /v1/projects/{id}/api-tokens` named `name`.
    pub async fn create_api_token(self, project: &str, name: &str) -> (StatusCode, Value) {
        let path = format!("{}/{project}/api-tokens", accounts_path::PROJECTS);
        self.call(Method::POST, &path, Some(json!({"name": name})))
            .await
    }

    /// `DELETE /v1/projects/{id}/api-tokens/{tokenId}`.
    pub async fn delete_api_token(self, project: &str, token: &str) -> (StatusCode, Value) {
        let path = format!("{}/{project}/api-tokens/{token}", accounts_path::PROJECTS);
        self.call(Method::DELETE, &path, None).await
    }

    /// `GET /v1/keys`.
    pub async fn keys(self) -> (StatusCode, Value) {
        self.call(Method::GET, accounts_path::KEYS, None).await
    }

    /// `POST /v1/keys/rotate`.
    pub async fn rotate_keys(self) -> (StatusCode, Value) {
        self.call(Method::POST, accounts_path::ROTATE, None).await
    }

    /// `GET /v1/audit-events` with `query` (empty, or starting with `?`).
    pub async fn audit_events(self, query: &str) -> (StatusCode, Value) {
        let path = format!("{}{query}", accounts_path::AUDIT);
        self.call(Method::GET, &path, None).await
    }
}

impl TestApp {
    /// The Fabric API as project `p` (HTTP Basic).
    pub fn fabric(&self, p: &Project) -> Fabric {
        self.fabric_as(FabricAuth::Project(p.clone()))
    }

    /// The Fabric API with `token` as the Bearer (a SAT, a guest token, or anything wrong).
    pub fn fabric_bearer(&self, token: &str) -> Fabric {
        self.fabric_as(FabricAuth::Bearer(token.to_string()))
    }

    /// The Fabric API without credentials.
    pub fn fabric_anonymous(&self) -> Fabric {
        self.fabric_as(FabricAuth::Anonymous)
    }

    fn fabric_as(&self, auth: FabricAuth) -> Fabric {
        Fabric {
            client: self.client.clone(),
            base: self.base.clone(),
            auth,
        }
    }

    /// `GET /healthz`.
    pub async fn healthz(&self) -> Response {
        let r = self.client.get(self.url("/healthz")).send().await;
        r.unwrap()
    }

    /// `GET /metrics`.
    pub async fn metrics(&self) -> Response {
        let r = self.client.get(self.url("/metrics")).send().await;
        r.unwrap()
    }

    /// The Accounts API, anonymously; [`Accounts::bearer`] adds an operator's token.
    pub fn accounts(&self) -> Accounts<'_> {
        Accounts {
            app: self,
            client: &self.client,
            bearer: None,
        }
    }

    /// Creates an operator through the admin CLI's logic, with [`PASSWORD`] unless it is a
    /// service user; answers a service user's API key.
    pub async fn operator(&self, name: &str, role: Role, service: bool) -> Option<String> {
        let pw = (!service).then(|| secret(PASSWORD));
        let out = self
            .admin
            .create_operator(name, pw, role, service)
            .await
            .unwrap();
        out.1.map(Secret::into_inner)
    }

    /// Creates a human operator with `role` and logs it in: (access token, refresh id).
    pub async fn logged_in(&self, name: &str, role: Role) -> (String, String) {
        self.operator(name, role, false).await;
        self.accounts().tokens(name).await
    }
}
