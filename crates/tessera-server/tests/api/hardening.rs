//! What an attacker, a slow client and a careless proxy find (issue 18): parser
//! differentials, numbers beyond range, hostile `Host` headers, non-UTF-8 paths, and clients
//! that send slowly or not at all, tested with real sockets.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use tessera_core::model::Role;
use tessera_server::config::ConnectionLimits;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::helpers::*;

fn addr(app: &TestApp) -> String {
    app.base.trim_start_matches("http://").to_string()
}

fn basic(p: &Project) -> String {
    use base64::Engine;
    let raw = format!("{}:{}", p.id, p.token);
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(raw)
    )
}

/// A response read off a raw socket: status, head (lower-cased) and body.
#[derive(Debug)]
struct Raw {
    status: u16,
    head: String,
    body: String,
}

/// Reads one HTTP/1.1 response (with a `Content-Length`) from `s`, or `None` if the
/// connection closes first or nothing complete arrives within `within`.
async fn read_response(s: &mut TcpStream, within: Duration) -> Option<Raw> {
    let mut buf = Vec::new();
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
            let len: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .map_or(0, |v| v.trim().parse().unwrap());
            if buf.len() >= end + 4 + len {
                let status = head[9..12].parse().unwrap();
                let body = String::from_utf8_lossy(&buf[end + 4..end + 4 + len]).into_owned();
                return Some(Raw { status, head, body });
            }
        }
        let mut chunk = [0u8; 4096];
        match tokio::time::timeout_at(deadline, s.read(&mut chunk)).await {
            Ok(Ok(0)) | Ok(Err(_)) | Err(_) => return None,
            Ok(Ok(n)) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

/// Whether the server has closed `s` (EOF or reset) within `within`, reading and discarding
/// whatever it sends first.
async fn closed_within(s: &mut TcpStream, within: Duration) -> bool {
    let deadline = tokio::time::Instant::now() + within;
    let mut chunk = [0u8; 4096];
    loop {
        match tokio::time::timeout_at(deadline, s.read(&mut chunk)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => continue,
            Err(_) => return false,
        }
    }
}

async fn healthz_ok(app: &TestApp) {
    let r = app.healthz().await;
    assert_eq!(r.status(), StatusCode::OK);
}

/// POSTs `body` as it is (duplicate members and all), with `p`'s Basic credentials if given.
async fn post_text(
    app: &TestApp,
    p: Option<&Project>,
    path: &str,
    content_type: &str,
    body: String,
) -> reqwest::Response {
    let mut req = app
        .client
        .post(app.url(path))
        .header("content-type", content_type);
    if let Some(p) = p {
        req = req.basic_auth(&p.id, Some(&p.token));
    }
    req.body(body).send().await.unwrap()
}

const JSON: &str = "application/json";

async fn send_raw(app: &TestApp, bytes: &[u8]) -> TcpStream {
    let mut s = TcpStream::connect(addr(app)).await.unwrap();
    s.write_all(bytes).await.unwrap();
    s
}

#[tokio::test]
async fn duplicate_json_members_are_refused_on_every_json_endpoint() {
    let (app, p) = spawn_with_project().await;
    let room = app.room_address(&p, "r").await;
    // The attack of the issue: a WAF that reads the first "username" sees "nobody".
    app.operator("admin@local", Role::Admin, false).await;
    let login =
        format!(r#"{{"username":"nobody","username":"admin@local","password":"{PASSWORD}"}}"#);
    let r = post_text(&app, None, accounts_path::TOKENS, JSON, login).await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let v = r.value().await;
    assert_eq!(v["errorCode"], "MALFORMED_REQUEST_BODY");
    assert!(v["message"].as_str().unwrap().contains("more than once"));
    assert!(v.get("accessToken").is_none());

    // Every Fabric JSON endpoint, at the top level and nested.
    let top = format!(r#"{{"allowed_addresses":["{room}"],"allowed_addresses":["{room}"]}}"#);
    let nested = r#"{"reference":"a@example.com","x":{"k":[{"a":1,"a":2}]}}"#;
    for (path, body) in [
        (fabric_path::GUEST_TOKENS, top.as_str()),
        (fabric_path::SUBSCRIBER_TOKENS, nested),
        (
            fabric_path::SUBSCRIBER_TOKENS,
            r#"{"reference":"a@example.com","reference":"b@example.com"}"#,
        ),
        (
            fabric_path::REFRESH,
            r#"{"refresh_token":"a","refresh_token":"b"}"#,
        ),
        (
            fabric_path::INVITES,
            r#"{"address_id":"a","address_id":"b"}"#,
        ),
        (fabric_path::EMBED_TOKENS, r#"{"token":"a","token":"b"}"#),
        (
            fabric_path::SUBSCRIBERS,
            r#"{"email":"a@example.com","email":"b@example.com"}"#,
        ),
        (fabric_path::ROOMS, r#"{"name":"a","meta":{"x":1,"x":2}}"#),
        (fabric_path::INTROSPECT, r#"{"token":"a","token":"b"}"#),
        (fabric_path::REVOKE, r#"{"token":"a","token":"b"}"#),
    ] {
        let r = post_text(&app, Some(&p), path, JSON, body.to_string()).await;
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{path} {body}");
        let v = r.value().await;
        assert_eq!(v, json!({"error": "Bad Request"}), "{path}");
    }
    // Nothing was created by the refused bodies.
    let subs = app.fabric(&p).list_subscribers("").await.value().await;
    assert_eq!(subs["data"].as_array().unwrap().len(), 0);
    // A form naming `token` twice is refused the same way.
    let form = "application/x-www-form-urlencoded";
    let r = post_text(
        &app,
        Some(&p),
        fabric_path::INTROSPECT,
        form,
        "token=a&token=b".into(),
    )
    .await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn numbers_out_of_range_and_bad_aliases_are_422_naming_the_field() {
    let (app, p) = spawn_with_project().await;
    let room = app.room_address(&p, "r").await;
    let guest =
        |expire: &str| format!(r#"{{"allowed_addresses":["{room}"],"expire_at":{expire}}}"#);
    for (expire, message) in [
        ("1e400", "Expire At is a number out of range"),
        ("-1e400", "Expire At is a number out of range"),
        ("1e308", "Expire At must be less than or equal to"),
        (
            "\"99999999999999999999999\"",
            "Expire At must be less than or equal to",
        ),
        ("-1e308", "Expire At must be greater than"),
        ("1700000000.5", "Expire At must be an integer"),
    ] {
        let r = post_text(
            &app,
            Some(&p),
            fabric_path::GUEST_TOKENS,
            JSON,
            guest(expire),
        )
        .await;
        assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY, "{expire}");
        let v = r.value().await;
        assert_eq!(v["errors"][0]["attribute"], "expire_at", "{expire}");
        let got = v["errors"][0]["message"].as_str().unwrap();
        assert!(got.starts_with(message), "{expire}: {got}");
    }

    // PUT with a valid `timezone` and a bad `time_zone` beside it: the alias is checked too.
    let (sid, _) = app.subscriber(&p, "tz@example.com").await;
    let r = app
        .fabric(&p)
        .update_subscriber(&sid, json!({"timezone": "Europe/Paris", "time_zone": 5}))
        .await;
    let (code, attr) = first_error(r).await;
    assert_eq!((code.as_str(), attr), ("not_a_string", json!("time_zone")));
}

#[tokio::test]
async fn a_path_id_that_is_not_utf8_gets_the_dialects_json_404() {
    let (app, p) = spawn_with_project().await;
    for path in [
        format!("{}/%FF", fabric_path::RESOURCES),
        format!("{}/%C3%28", fabric_path::SUBSCRIBERS),
        format!("{}/%FF%FE", fabric_path::ADDRESSES),
    ] {
        let r = app.fabric(&p).raw(Method::GET, &path).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::NOT_FOUND, "{path}");
        assert_eq!(
            r.headers()["content-type"].to_str().unwrap(),
            "application/json",
            "{path}"
        );
        assert_eq!(r.value().await, json!({"error": "Not Found"}));
    }
    let (at, _) = app.logged_in("admin@local", Role::Admin).await;
    let (s, v) = app.accounts().bearer(&at).project("%FF").await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert_eq!(v["errorCode"], "NOT_FOUND");
}

/// Lists a project's subscribers with a hostile `Host` over a raw socket.
async fn links_with_host(app: &TestApp, p: &Project, host: &str) -> Value {
    let req = format!(
        "GET /api/fabric/resources/subscribers?page_size=1 HTTP/1.1\r\nHost: {host}\r\n\
         Authorization: {}\r\n\r\n",
        basic(p)
    );
    let mut s = send_raw(app, req.as_bytes()).await;
    let r = read_response(&mut s, Duration::from_secs(5)).await.unwrap();
    assert_eq!(r.status, 200, "{r:?}");
    serde_json::from_str::<Value>(&r.body).unwrap()["links"].clone()
}

#[tokio::test]
async fn pagination_links_never_come_from_the_host_header() {
    let (app, p) = spawn_with_project().await;
    app.subscriber(&p, "a@example.com").await;
    app.subscriber(&p, "b@example.com").await;
    let links = links_with_host(&app, &p, "evil.example").await;
    for name in ["self", "first", "next"] {
        let link = links[name].as_str().unwrap();
        assert!(
            link.starts_with(&format!("{}?", fabric_path::SUBSCRIBERS)),
            "{name}: {link}"
        );
        assert!(!link.contains("evil"), "{link}");
    }

    // With a public URL, links are absolute on it, whatever the Host says.
    let app = spawn_with(|c| c.public_url = Some("https://tokens.example.com/base".into())).await;
    let p = app.project().await;
    app.subscriber(&p, "a@example.com").await;
    app.subscriber(&p, "b@example.com").await;
    let links = links_with_host(&app, &p, "evil.example").await;
    let next = links["next"].as_str().unwrap();
    assert!(
        next.starts_with("https://tokens.example.com/base/api/fabric/resources/subscribers?"),
        "{next}"
    );
    // The document names the public URL as its server, also whatever the Host says.
    let doc = app
        .client
        .get(app.url("/openapi.json"))
        .header("host", "evil.example")
        .send()
        .await
        .unwrap()
        .value()
        .await;
    assert_eq!(
        doc["servers"],
        json!([{"url": "https://tokens.example.com/base"}])
    );
    // Following it (by its query, as the SDK does) reaches the second page.
    let query = next.split_once('?').unwrap().1;
    let page = app
        .fabric(&p)
        .list_subscribers(&format!("?{query}"))
        .await
        .value()
        .await;
    assert_eq!(page["data"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn a_content_length_over_the_limit_is_refused_before_the_body_is_read() {
    let (app, p) = spawn_with_project().await;
    for (path, fabric) in [
        (fabric_path::GUEST_TOKENS, true),
        (accounts_path::TOKENS, false),
    ] {
        // Headers only: the 60 MB body never comes. The answer must not wait for it.
        let req = format!(
            "POST {path} HTTP/1.1\r\nHost: t\r\nAuthorization: {}\r\n\
             Content-Type: application/json\r\nContent-Length: 60000000\r\n\r\n",
            basic(&p)
        );
        let mut s = send_raw(&app, req.as_bytes()).await;
        let r = read_response(&mut s, Duration::from_secs(2))
            .await
            .expect("answered without the body");
        assert_eq!(r.status, 413, "{path}");
        assert!(r.head.contains("connection: close"), "{}", r.head);
        let v: Value = serde_json::from_str(&r.body).unwrap();
        if fabric {
            assert_eq!(v, json!({"error": "Payload Too Large"}));
        } else {
            assert_eq!(v["errorCode"], "PAYLOAD_TOO_LARGE");
        }
    }
    // A chunked body that grows past the limit is refused too.
    let mut s = send_raw(
        &app,
        b"POST /api/fabric/guests/tokens HTTP/1.1\r\nHost: t\r\n\
          Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n",
    )
    .await;
    let chunk = format!("{:x}\r\n{}\r\n", 70_000, "x".repeat(70_000));
    let _ = s.write_all(chunk.as_bytes()).await;
    let r = read_response(&mut s, Duration::from_secs(5)).await.unwrap();
    assert_eq!(r.status, 413);
}

fn short_limits(c: &mut tessera_server::Config) {
    c.limits = ConnectionLimits {
        header_read: Duration::from_millis(1000),
        body_read: Duration::from_millis(1000),
        keep_alive: Duration::from_millis(1000),
        request: Duration::from_secs(5),
        max_connections: 64.try_into().unwrap(),
    };
}

#[tokio::test]
async fn stalled_clients_are_disconnected_while_others_are_served() {
    let app = spawn_with(short_limits).await;
    let p = app.project().await;

    // 1. Headers trickled a byte every 300 ms: the header deadline runs from the first byte
    //    and is not pushed back by the next ones.
    let trickler = {
        let addr = addr(&app);
        tokio::spawn(async move {
            let mut s = TcpStream::connect(addr).await.unwrap();
            let started = tokio::time::Instant::now();
            for b in
                b"POST /api/fabric/guests/tokens HTTP/1.1\r\nHost: t\r\nX-Slow: aaaaaaaaaaaaaaaa"
            {
                if s.write_all(&[*b]).await.is_err() {
                    return started.elapsed();
                }
                tokio::time::sleep(Duration::from_millis(300)).await;
                let mut probe = [0u8; 1];
                if let Ok(Ok(0) | Err(_)) =
                    tokio::time::timeout(Duration::from_millis(1), s.read(&mut probe)).await
                {
                    return started.elapsed();
                }
            }
            Duration::MAX
        })
    };

    // 2. A body promised (60,000 bytes) and one byte sent: 408 in the Fabric format, then
    //    the connection is closed.
    let promised = format!(
        "POST /api/fabric/guests/tokens HTTP/1.1\r\nHost: t\r\nAuthorization: {}\r\n\
         Content-Type: application/json\r\nContent-Length: 60000\r\n\r\n{{",
        basic(&p)
    );
    let mut stalled_body = send_raw(&app, promised.as_bytes()).await;

    // 3. A connection that never sends anything, and one that goes quiet after a request.
    let mut silent = TcpStream::connect(addr(&app)).await.unwrap();
    let mut kept = send_raw(&app, b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n").await;
    let first = read_response(&mut kept, Duration::from_secs(2))
        .await
        .unwrap();
    assert_eq!(first.status, 200);

    // Meanwhile, well-behaved clients are served, repeatedly.
    for _ in 0..5 {
        healthz_ok(&app).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let r = read_response(&mut stalled_body, Duration::from_secs(4))
        .await
        .expect("a 408 for the stalled body");
    assert_eq!(r.status, 408);
    assert_eq!(
        serde_json::from_str::<Value>(&r.body).unwrap(),
        json!({"error": "Request Timeout"})
    );
    assert!(closed_within(&mut stalled_body, Duration::from_secs(2)).await);
    assert!(closed_within(&mut silent, Duration::from_secs(3)).await);
    assert!(closed_within(&mut kept, Duration::from_secs(3)).await);
    let lasted = trickler.await.unwrap();
    assert!(
        lasted < Duration::from_secs(4),
        "the trickling client was cut off after {lasted:?}"
    );
    healthz_ok(&app).await;
}

#[tokio::test]
async fn a_slow_body_in_the_accounts_dialect_gets_its_408() {
    let app = spawn_with(short_limits).await;
    let mut s = send_raw(
        &app,
        b"POST /v1/tokens HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n\
          Content-Length: 100\r\n\r\n{\"user",
    )
    .await;
    let r = read_response(&mut s, Duration::from_secs(4)).await.unwrap();
    assert_eq!(r.status, 408);
    let v: Value = serde_json::from_str(&r.body).unwrap();
    assert_eq!(v["errorCode"], "REQUEST_TIMEOUT");
}

#[tokio::test]
async fn connections_over_the_cap_wait_until_one_closes() {
    let app = spawn_with(|c| {
        c.limits = ConnectionLimits {
            max_connections: 3.try_into().unwrap(),
            keep_alive: Duration::from_secs(30),
            ..ConnectionLimits::default()
        }
    })
    .await;
    let mut held = Vec::new();
    for _ in 0..3 {
        let mut s = send_raw(&app, b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n").await;
        assert_eq!(
            read_response(&mut s, Duration::from_secs(2))
                .await
                .unwrap()
                .status,
            200
        );
        held.push(s);
    }
    // The fourth is not accepted while three are open...
    let mut fourth = send_raw(&app, b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n").await;
    assert!(
        read_response(&mut fourth, Duration::from_millis(500))
            .await
            .is_none(),
        "served beyond the cap"
    );
    // ...and is served as soon as one of them closes.
    drop(held.pop());
    let r = read_response(&mut fourth, Duration::from_secs(5))
        .await
        .expect("served once a connection closed");
    assert_eq!(r.status, 200);
}

#[tokio::test]
async fn a_request_past_its_deadline_gets_503_not_500() {
    let app = spawn_with(|c| c.limits.request = Duration::from_secs(1)).await;
    let p = app.project().await;
    let room = app.room_address(&p, "r").await;
    let (at, _) = app.logged_in("admin@local", Role::Admin).await;
    // Another process holds the database's write lock (an admin command in a long
    // transaction, say): writes wait for it, up to SQLite's busy timeout of 10 s.
    let path = app.config.database.sqlite_path().unwrap();
    let blocker = rusqlite::Connection::open(path).unwrap();
    blocker.execute_batch("BEGIN IMMEDIATE").unwrap();

    let started = tokio::time::Instant::now();
    let r = app
        .fabric(&p)
        .guest_token(json!({ "allowed_addresses": [room] }))
        .await;
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(r.value().await, json!({"error": "Service Unavailable"}));
    let (s, v) = app.accounts().bearer(&at).create_project("blocked").await;
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(v["errorCode"], "SERVICE_UNAVAILABLE");
    // What needs no write is still served meanwhile.
    healthz_ok(&app).await;

    blocker.execute_batch("COMMIT").unwrap();
    let r = app
        .fabric(&p)
        .guest_token(json!({ "allowed_addresses": [room] }))
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
}

/// A log sink for one test: what the server's tracing writes, as text.
#[derive(Clone, Default)]
struct Captured(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Captured {
    type Writer = Captured;
    fn make_writer(&'a self) -> Captured {
        self.clone()
    }
}

#[tokio::test]
async fn refusals_are_logged_at_the_default_level_without_their_secrets() {
    // The test runtime runs the server's tasks on this thread, so a thread-local subscriber
    // sees everything the server logs.
    let logs = Captured::default();
    let subscriber = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new("info"))
        .with_writer(logs.clone())
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let app = spawn_with(|c| c.embed_rate_per_minute = 1.try_into().unwrap()).await;
    let p = app.project().await;
    let wrong = Project {
        id: p.id.clone(),
        token: "tsr_the-wrong-secret-token".into(),
    };
    let r = app.fabric(&wrong).resources("").await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    app.operator("admin@local", Role::Admin, false).await;
    let (s, _) = app
        .accounts()
        .login("admin@local", "not-the-Passw0rd")
        .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    // A rate-limited embed exchange (one per minute per address).
    for _ in 0..2 {
        app.fabric_anonymous().embed_token("c2c_nothing").await;
    }
    let text = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    let line = |needle: &str| {
        text.lines()
            .find(|l| l.contains("request refused") && l.contains(needle))
            .unwrap_or_else(|| panic!("no refusal logged with {needle}:\n{text}"))
            .to_string()
    };
    let basic = line(&format!("principal=\"project:{}\"", p.id));
    assert!(basic.contains("status=401") && basic.contains("client=\"127.0.0.1\""));
    assert!(basic.contains("route=\"/api/fabric/resources\"") && basic.contains("request_id="));
    assert!(line("principal=\"user:admin@local\"").contains("route=\"/v1/tokens\""));
    assert!(line("status=429").contains("route=\"/api/fabric/embeds/tokens\""));
    for secret in [
        "the-wrong-secret-token",
        "not-the-Passw0rd",
        "c2c_nothing",
        &p.token,
    ] {
        assert!(!text.contains(secret), "{secret} reached the log");
    }
}

/// Found by Schemathesis with all its checks (stateful): a subscriber whose email changed
/// still answers to its old email as its reference, and a new subscriber with that email
/// was a unique-index conflict answered 500.
#[tokio::test]
async fn an_email_that_is_another_subscribers_reference_is_taken_not_a_500() {
    let (app, p) = spawn_with_project().await;
    let (sid, _) = app.subscriber(&p, "a@example.com").await;
    let r = app
        .fabric(&p)
        .update_subscriber(&sid, json!({"email": "b@example.com"}))
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let r = app
        .fabric(&p)
        .create_subscriber(json!({"email": "A@example.com"}))
        .await;
    let (code, attr) = first_error(r).await;
    assert_eq!(
        (code.as_str(), attr),
        ("not_unique_within_project", json!("email"))
    );
    // The old reference still finds the first subscriber.
    let t: Value = app.fabric(&p).grant("a@example.com").await;
    assert_eq!(t["subscriber_id"], sid);
}

/// RFC 6749 §5.2 `invalid_request` for a malformed introspection or revocation: before, a
/// JSON body that was not an object (or whose `token` was not a string) was answered as an
/// unknown token (`{"active": false}` / 200), hiding the client's bug.
#[tokio::test]
async fn oauth_endpoints_refuse_a_json_body_that_is_not_an_object() {
    let (app, p) = spawn_with_project().await;
    // Malformed: 400. An empty body or one without a token still names nothing: not an error.
    let cases = [
        ("[null, null]", StatusCode::BAD_REQUEST),
        ("\"tok\"", StatusCode::BAD_REQUEST),
        ("{\"token\": 5}", StatusCode::BAD_REQUEST),
        // The hint is ignored, but a non-string one is as malformed as a non-string token
        // (Schemathesis sent `{"token_type_hint": 0}` and saw it accepted).
        (
            "{\"token\": \"a\", \"token_type_hint\": 0}",
            StatusCode::BAD_REQUEST,
        ),
        (
            "{\"token_type_hint\": [\"access_token\"]}",
            StatusCode::BAD_REQUEST,
        ),
        (
            "{\"token\": \"a\", \"token_type_hint\": \"x\"}",
            StatusCode::OK,
        ),
        // Null counts as absent, as the document says.
        (
            "{\"token\": null, \"token_type_hint\": null}",
            StatusCode::OK,
        ),
        ("{\"token\": \"a\"", StatusCode::BAD_REQUEST),
        ("", StatusCode::OK),
        ("{}", StatusCode::OK),
    ];
    for path in [fabric_path::INTROSPECT, fabric_path::REVOKE] {
        for (body, status) in cases {
            let r = app
                .fabric(&p)
                .raw(reqwest::Method::POST, path)
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), status, "{path} {body:?}");
            if status == StatusCode::BAD_REQUEST {
                assert_eq!(r.value().await, json!({"error": "Bad Request"}));
            }
        }
    }
}

/// A handler that panics is answered with its dialect's 500 (and the request id), and the
/// server goes on serving: before, the connection was dropped without an answer.
#[tokio::test]
async fn a_handler_that_panics_is_answered_500_in_its_dialect() {
    use axum::routing::get;
    let app = spawn_app().await;
    let boom = || async {
        if true {
            panic!("a bug");
        }
        ""
    };
    let routes = axum::Router::new()
        .route("/api/fabric/boom", get(boom))
        .route("/v1/boom", get(boom))
        .route("/fine", get(|| async { "fine" }));
    let router = tessera_server::startup::layered(routes, app.state.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await });

    let get = |path: &str| app.client.get(format!("{base}{path}")).send();

    let r = get("/api/fabric/boom").await.unwrap();
    assert_eq!(r.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert!(r.headers().contains_key("x-request-id"));
    let body: Value = r.json().await.unwrap();
    assert_eq!(body, json!({ "error": "Internal Server Error" }));

    let r = get("/v1/boom").await.unwrap();
    assert_eq!(r.status(), StatusCode::INTERNAL_SERVER_ERROR);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["errorCode"], "INTERNAL_SERVER_ERROR", "{body}");
    assert!(body["referenceToken"].is_string(), "{body}");

    let r = get("/fine").await.unwrap();
    assert_eq!(r.text().await.unwrap(), "fine");
}
