//! `spawn_app()` and friends.

use std::sync::Arc;

use base64::Engine;
use reqwest::{Client, Response, StatusCode};
use serde_json::{json, Value};
use tessera_core::admin::{Actor, Admin};
use tessera_core::crypto::MasterKey;
use tessera_core::{ManualClock, Secret, UnixTime};
use tessera_server::config::Database;
use tessera_server::Config;
use tokio::sync::oneshot;

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
    let admin = Admin {
        store: state.service.store().clone(),
        master: state.service.master().clone(),
        clock: Arc::new(clock.clone()),
        actor: Actor::Cli,
    };
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

    pub async fn post(&self, p: &Project, path: &str, body: Value) -> Response {
        self.client
            .post(self.url(path))
            .basic_auth(&p.id, Some(&p.token))
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    pub async fn get(&self, p: &Project, path: &str) -> Response {
        self.client
            .get(self.url(path))
            .basic_auth(&p.id, Some(&p.token))
            .send()
            .await
            .unwrap()
    }

    pub async fn bearer_get(&self, token: &str, path: &str) -> Response {
        self.client
            .get(self.url(path))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
    }

    /// Creates a subscriber through the API and returns (resource id, address id).
    pub async fn subscriber(&self, p: &Project, email: &str) -> (String, String) {
        let r = self
            .post(
                p,
                "/api/fabric/resources/subscribers",
                json!({"email": email}),
            )
            .await;
        assert_eq!(r.status(), StatusCode::CREATED);
        let id = r.json::<Value>().await.unwrap()["id"]
            .as_str()
            .unwrap()
            .to_string();
        let a: Value = self
            .get(
                p,
                &format!("/api/fabric/resources/subscribers/{id}/addresses"),
            )
            .await
            .json()
            .await
            .unwrap();
        (id, a["data"][0]["id"].as_str().unwrap().to_string())
    }

    /// Creates a room and returns its address id.
    pub async fn room_address(&self, p: &Project, name: &str) -> String {
        let r = self
            .post(
                p,
                "/api/fabric/resources/conference_rooms",
                json!({"name": name}),
            )
            .await;
        assert_eq!(r.status(), StatusCode::CREATED);
        let id = r.json::<Value>().await.unwrap()["id"]
            .as_str()
            .unwrap()
            .to_string();
        let a: Value = self
            .get(p, &format!("/api/fabric/resources/{id}/addresses"))
            .await
            .json()
            .await
            .unwrap();
        a["data"][0]["id"].as_str().unwrap().to_string()
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
    let v: Value = r.json().await.unwrap();
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
