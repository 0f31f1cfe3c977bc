//! The bad-input table: every endpoint, every kind of malformed input, the documented 4xx and
//! never a 500.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::helpers::*;

/// A request body: JSON, or raw bytes with a content type.
enum Body {
    Json(Value),
    Raw(&'static str, &'static str),
}

struct Case {
    method: Method,
    path: String,
    body: Body,
    status: StatusCode,
    /// For 422: the expected first code and attribute.
    code: Option<(&'static str, Option<&'static str>)>,
}

fn case(
    method: Method,
    path: &str,
    body: Body,
    status: u16,
    code: Option<(&'static str, Option<&'static str>)>,
) -> Case {
    Case {
        method,
        path: path.to_string(),
        body,
        status: StatusCode::from_u16(status).unwrap(),
        code,
    }
}

#[tokio::test]
async fn bad_input_gets_the_documented_4xx_never_a_500() {
    let (app, p) = spawn_with_project().await;
    let room = app.room_address(&p, "r").await;
    let (sid, sub_addr) = app.subscriber(&p, "n@example.com").await;
    let now = START.0;
    let eleven: Vec<String> = (0..11).map(|_| uuid::Uuid::new_v4().to_string()).collect();
    let post = Method::POST;
    use fabric_path::*;
    let t1 = SUBSCRIBER_TOKENS;
    let t2 = REFRESH;
    let t3 = GUEST_TOKENS;
    let t4 = INVITES;
    let t5 = EMBED_TOKENS;
    let s2 = SUBSCRIBERS;
    let s4 = format!("{SUBSCRIBERS}/{sid}");
    let rooms = ROOMS;
    let mut cases = Vec::new();
    // Malformed JSON, a non-object, and a wrong content type, for every body-taking endpoint.
    for path in [t1, t2, t3, t4, t5, s2, rooms] {
        cases.push(case(
            post.clone(),
            path,
            Body::Raw("application/json", "{\"reference\": "),
            400,
            None,
        ));
        cases.push(case(
            post.clone(),
            path,
            Body::Raw("application/json", "[1,2]"),
            422,
            Some(("invalid_parameter", None)),
        ));
        cases.push(case(
            post.clone(),
            path,
            Body::Raw("application/x-www-form-urlencoded", "a=b"),
            422,
            Some(("invalid_content_type", None)),
        ));
        cases.push(case(
            post.clone(),
            path,
            Body::Raw("text/plain", "{}"),
            422,
            Some(("invalid_content_type", None)),
        ));
    }
    cases.push(case(
        Method::PUT,
        &s4,
        Body::Raw("application/json", "{"),
        400,
        None,
    ));
    // Missing fields.
    cases.push(case(
        post.clone(),
        t1,
        Body::Json(json!({})),
        422,
        Some(("missing_required_parameter", Some("reference"))),
    ));
    cases.push(case(
        post.clone(),
        t1,
        Body::Json(json!({"reference": ""})),
        422,
        Some(("missing_required_parameter", Some("reference"))),
    ));
    cases.push(case(
        post.clone(),
        t2,
        Body::Json(json!({})),
        422,
        Some(("missing_required_parameter", Some("refresh_token"))),
    ));
    cases.push(case(
        post.clone(),
        t3,
        Body::Json(json!({})),
        422,
        Some(("missing_required_parameter", Some("allowed_addresses"))),
    ));
    cases.push(case(
        post.clone(),
        t3,
        Body::Json(json!({"allowed_addresses": []})),
        422,
        Some(("missing_required_parameter", Some("allowed_addresses"))),
    ));
    cases.push(case(
        post.clone(),
        t4,
        Body::Json(json!({})),
        422,
        Some(("missing_required_parameter", Some("address_id"))),
    ));
    cases.push(case(
        post.clone(),
        t5,
        Body::Json(json!({"token": ""})),
        422,
        Some(("missing_required_parameter", Some("token"))),
    ));
    cases.push(case(
        post.clone(),
        s2,
        Body::Json(json!({"first_name": "x"})),
        422,
        Some(("missing_required_parameter", Some("email"))),
    ));
    cases.push(case(
        post.clone(),
        rooms,
        Body::Json(json!({})),
        422,
        Some(("missing_required_parameter", Some("name"))),
    ));
    // Wrong types.
    cases.push(case(
        post.clone(),
        t1,
        Body::Json(json!({"reference": 5})),
        422,
        Some(("not_a_string", Some("reference"))),
    ));
    cases.push(case(
        post.clone(),
        t1,
        Body::Json(json!({"reference": "a", "first_name": ["x"]})),
        422,
        Some(("not_a_string", Some("first_name"))),
    ));
    cases.push(case(
        post.clone(),
        t1,
        Body::Json(json!({"reference": "a", "expire_at": true})),
        422,
        Some(("invalid_parameter", Some("expire_at"))),
    ));
    cases.push(case(
        post.clone(),
        t1,
        Body::Json(json!({"reference": "a", "expire_at": "soon"})),
        422,
        Some(("invalid_parameter", Some("expire_at"))),
    ));
    cases.push(case(
        post.clone(),
        t1,
        Body::Json(json!({"reference": "a", "password": "short"})),
        422,
        Some(("invalid_parameter", Some("password"))),
    ));
    cases.push(case(
        post.clone(),
        t1,
        Body::Json(json!({"reference": "a", "scope": "admin"})),
        422,
        Some(("invalid_parameter", Some("scope"))),
    ));
    cases.push(case(
        post.clone(),
        t1,
        Body::Json(json!({"reference": "a", "fingerprint": "short"})),
        422,
        Some(("invalid_parameter", Some("fingerprint"))),
    ));
    cases.push(case(
        post.clone(),
        t2,
        Body::Json(json!({"refresh_token": 1})),
        422,
        Some(("not_a_string", Some("refresh_token"))),
    ));
    cases.push(case(
        post.clone(),
        t2,
        Body::Json(json!({"refresh_token": "garbage"})),
        422,
        Some(("token_invalid", Some("refresh_token"))),
    ));
    cases.push(case(
        post.clone(),
        t3,
        Body::Json(json!({"allowed_addresses": room})),
        422,
        Some(("not_an_array_of_strings", Some("allowed_addresses"))),
    ));
    cases.push(case(
        post.clone(),
        t3,
        Body::Json(json!({"allowed_addresses": [1]})),
        422,
        Some(("not_an_array_of_strings", Some("allowed_addresses"))),
    ));
    cases.push(case(
        post.clone(),
        t4,
        Body::Json(json!({"address_id": 7})),
        422,
        Some(("not_a_string", Some("address_id"))),
    ));
    cases.push(case(
        post.clone(),
        t5,
        Body::Json(json!({"token": {}})),
        422,
        Some(("not_a_string", Some("token"))),
    ));
    cases.push(case(
        Method::PUT,
        &s4,
        Body::Json(json!({"email": ""})),
        422,
        Some(("missing_required_parameter", Some("email"))),
    ));
    cases.push(case(
        Method::PUT,
        &s4,
        Body::Json(json!({"password": "x"})),
        422,
        Some(("invalid_parameter", Some("password"))),
    ));
    // Eleven addresses.
    cases.push(case(
        post.clone(),
        t3,
        Body::Json(json!({"allowed_addresses": eleven})),
        422,
        Some(("allowed_address_limit_exceeded", Some("allowed_addresses"))),
    ));
    // Invalid UUIDs in bodies and paths.
    cases.push(case(
        post.clone(),
        t3,
        Body::Json(json!({"allowed_addresses": ["not-a-uuid"]})),
        422,
        Some(("unrecognized_fabric_addresses", Some("allowed_addresses"))),
    ));
    cases.push(case(
        post.clone(),
        t3,
        Body::Json(json!({"allowed_addresses": [uuid::Uuid::nil()]})),
        422,
        Some(("must_belong_to_project", Some("allowed_addresses"))),
    ));
    cases.push(case(
        post.clone(),
        t4,
        Body::Json(json!({"address_id": "nope"})),
        422,
        Some(("invalid_parameter", Some("address_id"))),
    ));
    cases.push(case(
        post.clone(),
        t1,
        Body::Json(json!({"reference": "a", "application_id": "nope"})),
        422,
        Some(("invalid_parameter", Some("application_id"))),
    ));
    cases.push(case(
        post.clone(),
        t1,
        Body::Json(json!({"reference": "a", "application_id": uuid::Uuid::new_v4()})),
        422,
        Some(("provided_id_is_unrecognized", Some("application_id"))),
    ));
    for path in [
        format!("{SUBSCRIBERS}/nope"),
        format!("{ADDRESSES}/nope"),
        format!("{RESOURCES}/nope/addresses"),
        format!("{ROOMS}/12"),
    ] {
        cases.push(case(Method::GET, &path, Body::Json(json!({})), 404, None));
    }
    // Past and too-distant expiries, on every endpoint that takes one.
    cases.push(case(
        post.clone(),
        t1,
        Body::Json(json!({"reference": "a", "expire_at": now - 1})),
        422,
        Some(("invalid_parameter", Some("expire_at"))),
    ));
    cases.push(case(
        post.clone(),
        t1,
        Body::Json(json!({"reference": "a", "expire_at": now + 86_401})),
        422,
        Some(("invalid_parameter", Some("expire_at"))),
    ));
    cases.push(case(
        post.clone(),
        t3,
        Body::Json(json!({"allowed_addresses": [room], "expire_at": 1})),
        422,
        Some(("invalid_parameter", Some("expire_at"))),
    ));
    cases.push(case(
        post.clone(),
        t3,
        Body::Json(json!({"allowed_addresses": [room], "expire_at": now + 10_000_000})),
        422,
        Some(("invalid_parameter", Some("expire_at"))),
    ));
    cases.push(case(
        post.clone(),
        t4,
        Body::Json(json!({"address_id": sub_addr, "expires_at": 1})),
        422,
        Some(("invalid_parameter", Some("expires_at"))),
    ));
    cases.push(case(
        post.clone(),
        t4,
        Body::Json(json!({"address_id": sub_addr, "expires_at": "9999-01-01T00:00:00Z"})),
        422,
        Some(("invalid_parameter", Some("expires_at"))),
    ));
    // Pagination parameters.
    cases.push(case(
        Method::GET,
        &format!("{ADDRESSES}?page_size=0"),
        Body::Json(json!({})),
        422,
        Some(("invalid_parameter", Some("page_size"))),
    ));
    cases.push(case(
        Method::GET,
        &format!("{ADDRESSES}?page_size=abc"),
        Body::Json(json!({})),
        422,
        Some(("invalid_parameter", Some("page_size"))),
    ));
    // A method the path does not have.
    cases.push(case(Method::PATCH, t1, Body::Json(json!({})), 405, None));

    for c in cases {
        // The embed exchange is the one unauthenticated endpoint.
        let caller = if c.path == t5 {
            app.fabric_anonymous()
        } else {
            app.fabric(&p)
        };
        let mut req = caller.raw(c.method.clone(), &c.path);
        req = match &c.body {
            Body::Json(v) => req.json(v),
            Body::Raw(ct, text) => req.header("content-type", *ct).body(*text),
        };
        let r = req.send().await.unwrap();
        let status = r.status();
        let ct = r
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_string());
        let body: Value = r.json().await.unwrap_or(Value::Null);
        let what = format!("{} {} -> {status} {body}", c.method, c.path);
        assert_eq!(status, c.status, "{what}");
        assert_eq!(ct.as_deref(), Some("application/json"), "{what}");
        if let Some((code, attr)) = c.code {
            assert_eq!(body["errors"][0]["code"], code, "{what}");
            assert_eq!(body["errors"][0]["attribute"], json!(attr), "{what}");
            assert_eq!(body["errors"][0]["type"], "validation_error", "{what}");
        } else {
            assert!(body["error"].is_string(), "{what}");
        }
    }
}

#[tokio::test]
async fn oversized_bodies_get_413() {
    let (app, p) = spawn_with_project().await;
    let big = "x".repeat(tessera_server::config::DEFAULT_BODY_LIMIT + 1);
    let r = app
        .fabric(&p)
        .subscriber_token(json!({"reference": big}))
        .await;
    assert_eq!(r.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(r.value().await, json!({"error": "Payload Too Large"}));
    // The RFC endpoints read raw form bodies; the limit answers in the same JSON there too.
    let f = app.fabric(&p);
    for (path, r) in [
        ("introspect", f.introspect(&big).await),
        ("revoke", f.revoke(&big).await),
    ] {
        assert_eq!(r.status(), StatusCode::PAYLOAD_TOO_LARGE, "{path}");
        assert_eq!(
            r.value().await,
            json!({"error": "Payload Too Large"}),
            "{path}"
        );
    }
}

#[tokio::test]
async fn several_bad_fields_are_reported_together() {
    let (app, p) = spawn_with_project().await;
    let r = app
        .fabric(&p)
        .invite(json!({"address_id": "x", "expires_at": "later"}))
        .await;
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let v = r.value().await;
    let attrs: Vec<&str> = v["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["attribute"].as_str().unwrap())
        .collect();
    assert_eq!(attrs, ["address_id", "expires_at"]);
}

#[tokio::test]
async fn nul_characters_are_refused_not_stored() {
    let (app, p) = spawn_with_project().await;
    let r = app
        .fabric(&p)
        .subscriber_token(json!({"reference": "a\u{0}b"}))
        .await;
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let (code, attr) = first_error(r).await;
    assert_eq!(code, "invalid_parameter");
    assert_eq!(attr, json!("reference"));
}

/// Sends `head`, waits, sends `body`, and reads one response (`None` if the server closed the
/// connection first).
async fn slow_body_exchange(
    stream: &mut tokio::net::TcpStream,
    head: &str,
    body: &str,
) -> Option<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    stream.write_all(head.as_bytes()).await.ok()?;
    // The body arrives well after the headers, as from a client that writes them separately.
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    stream.write_all(body.as_bytes()).await.ok()?;
    let mut buf = vec![0u8; 8192];
    let mut got = Vec::new();
    loop {
        let n = tokio::time::timeout(std::time::Duration::from_secs(5), stream.read(&mut buf))
            .await
            .ok()?
            .ok()?;
        if n == 0 {
            return None;
        }
        got.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&got).to_string();
        if let Some(end) = text.find("\r\n\r\n") {
            let length: usize = text[..end]
                .lines()
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.eq_ignore_ascii_case("content-length")
                        .then(|| v.trim().parse().ok())?
                })
                .unwrap_or(0);
            if got.len() >= end + 4 + length {
                return Some(text);
            }
        }
    }
}

/// A 401 answered before the body arrived must not cost the client its keep-alive connection:
/// the next request on it gets an answer too (the VMware SDK reuses connections this way).
#[tokio::test]
async fn an_early_rejection_keeps_the_connection_usable() {
    let app = spawn_app().await;
    let addr = app.base.trim_start_matches("http://").to_string();
    let mut stream = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let body = r#"[{"name":"svc-x","type":"SERVICE","role":{"id":"x"}}]"#;
    let head = format!(
        "POST /v1/users HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer not-a-jwt\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    let first = slow_body_exchange(&mut stream, &head, body)
        .await
        .expect("an answer to the first request");
    assert!(first.starts_with("HTTP/1.1 401"), "{first}");
    let second = slow_body_exchange(&mut stream, "GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n", "")
        .await
        .expect("the connection stayed open for a second request");
    assert!(second.starts_with("HTTP/1.1 200"), "{second}");
    // The same for a Fabric endpoint with wrong project credentials.
    let body = r#"{"reference":"x@example.com"}"#;
    let head = format!(
        "POST /api/fabric/subscribers/tokens HTTP/1.1\r\nHost: t\r\n\
         Authorization: Basic eDp5\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\n\r\n",
        body.len()
    );
    let third = slow_body_exchange(&mut stream, &head, body)
        .await
        .expect("an answer to the third request");
    assert!(third.starts_with("HTTP/1.1 401"), "{third}");
    let fourth = slow_body_exchange(&mut stream, "GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n", "")
        .await
        .expect("still open");
    assert!(fourth.starts_with("HTTP/1.1 200"), "{fourth}");
}
