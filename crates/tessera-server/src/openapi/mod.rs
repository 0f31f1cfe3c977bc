//! The OpenAPI 3.1 description of Tessera's HTTP interface, derived from the router, and the
//! routes that serve it (`GET /openapi.json`, and `GET /docs` rendered by [`crate::docs`]).
//!
//! One place lists the routes: [`api`]. Every route is added there through utoipa-axum's
//! `routes!`, which takes a handler's `#[utoipa::path]` annotation (method, path, parameters,
//! request and response types, prose) both to register the handler with axum and to add the
//! operation to the document, so a route cannot be served undocumented, and a documented
//! route is one the router serves. Request and response bodies are types implementing
//! `ToSchema`; their schemas are collected as components. [`document`] then adds what every
//! operation shares (the `X-Request-Id` header on every response, and the answers of the
//! middleware in front of every handler) and serialises the result once.

pub(crate) mod schemas;

use std::sync::LazyLock;

use axum::http::{header, HeaderName, HeaderValue};
use axum::response::IntoResponse;
use axum::Router;
use serde_json::{json, Map, Value};
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::openapi::tag::Tag;
use utoipa::openapi::OpenApi as Document;
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::{FabricError, V1Error};
use crate::state::AppState;

/// The sections of the document, in page order, with their descriptions.
pub const TAGS: &[(&str, &str)] = &[
    (
        "Tokens",
        "Fabric token grants (T1–T5): subscriber, refresh, guest, invite and click-to-call embed \
         tokens. Tokens are compact JWE, opaque to clients.",
    ),
    (
        "Subscribers",
        "A project's end users (S1–S6). A subscriber's resource id and subscriber id are the \
         same UUID.",
    ),
    (
        "Conference rooms",
        "Rooms store whatever members clients send beside `name` and `display_name`.",
    ),
    (
        "Resources",
        "Every resource of the project, whatever its kind.",
    ),
    (
        "Addresses",
        "Each resource has one address; addresses are what guest, invite and embed tokens are \
         restricted to.",
    ),
    (
        "OAuth 2.0",
        "Token introspection (RFC 7662) and revocation (RFC 7009) for resource servers and \
         project backends.",
    ),
    (
        "Accounts",
        "The Accounts API's login, compatible with VMware Cloud Foundation SDDC Manager's \
         `/v1/tokens`: an account's name and password, or a service account's API key, buy a \
         one-hour access token (a compact JWS) and a refresh id. Public. Every error under \
         `/v1` is an `AccountsError`.",
    ),
    (
        "Management",
        "The management plane under `/v1`: accounts, roles, Fabric projects and their API \
         tokens, keys and the audit log. Every operation needs an Accounts access token \
         (`Authorization: Bearer`), and its description names the least role it needs: VIEWER \
         may call every GET, OPERATOR also manages projects and their API tokens, ADMIN also \
         users and keys. Lists are pages (`elements` and `pageMetadata`).",
    ),
    ("Service", "Health and this documentation."),
];

/// What the document says beyond its operations: info, tags, security schemes.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Tessera",
        description = "A self-hosted token authority speaking SignalWire's Fabric token API. \
                       Errors are `{\"error\": …}`, or `{\"errors\": […]}` for 422; a path \
                       served with other methods answers 405, an unknown path 404. Fabric \
                       request bodies are JSON (a non-JSON `Content-Type` is a 422 \
                       `invalid_content_type`); the OAuth 2.0 endpoints also take forms. \
                       The Accounts API under `/v1` (SDDC Manager-compatible) answers \
                       every error with an `AccountsError` instead.",
        license(name = "Apache-2.0", identifier = "Apache-2.0"),
    ),
    components(schemas(
        schemas::FabricErrorBody,
        schemas::FabricValidationError,
        schemas::FabricValidationErrors,
    )),
    modifiers(&Sections)
)]
struct ApiDoc;

/// Adds the tags (from [`TAGS`]) and the security schemes.
struct Sections;

impl Modify for Sections {
    fn modify(&self, doc: &mut Document) {
        doc.tags = Some(
            TAGS.iter()
                .map(|(name, description)| {
                    let mut tag = Tag::new(*name);
                    tag.description = Some((*description).into());
                    tag
                })
                .collect(),
        );
        let components = doc.components.get_or_insert_with(Default::default);
        let scheme = |scheme, format: Option<&str>, description: &str| {
            let mut http = Http::new(scheme);
            http.bearer_format = format.map(Into::into);
            http.description = Some(description.into());
            SecurityScheme::Http(http)
        };
        components.add_security_scheme(
            "projectBasic",
            scheme(
                HttpAuthScheme::Basic,
                None,
                "User: the project id (UUID). Password: one of the project's API tokens.",
            ),
        );
        components.add_security_scheme(
            "subscriberBearer",
            scheme(
                HttpAuthScheme::Bearer,
                Some("JWE"),
                "A subscriber's access token (SAT), as issued by \
                 `POST /api/fabric/subscribers/tokens`; it grants subscriber scope.",
            ),
        );
        components.add_security_scheme(
            "accountsBearer",
            scheme(
                HttpAuthScheme::Bearer,
                Some("JWS"),
                "An Accounts access token, as issued by `POST /v1/tokens` (valid one hour). The \
                 user's role decides what it may call: VIEWER every GET, OPERATOR also projects \
                 and their API tokens, ADMIN also users and keys. The role and the user's state \
                 are read at each call, so a change takes effect at once.",
            ),
        );
    }
}

/// Every route Tessera serves, with its description: the router and the document both come
/// from here (see the module documentation).
pub fn api() -> (Router<AppState>, Document) {
    let (v1, v1_doc) = crate::accounts::routes().split_for_parts();
    // `/v1` answers unknown paths and methods in its own dialect.
    let v1 = v1
        .fallback(|| async { V1Error::NotFound("NOT_FOUND", "No such endpoint.".into()) })
        .method_not_allowed_fallback(|| async { V1Error::MethodNotAllowed });
    let (router, doc) = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(healthz))
        .routes(routes!(openapi_json))
        .routes(routes!(docs_page))
        .merge(crate::fabric::routes())
        .merge(crate::oauth2::routes())
        .merge(crate::metrics::routes())
        .split_for_parts();
    let router = router
        .nest("/v1", v1)
        .fallback(|| async { FabricError::NotFound })
        .method_not_allowed_fallback(|| async { FabricError::MethodNotAllowed });
    (router, doc.nest("/v1", v1_doc))
}

/// The OpenAPI 3.1 document, as JSON.
pub fn document() -> Value {
    let mut doc = serde_json::to_value(api().1).expect("the document serialises");
    request_id_header(&mut doc);
    shared_answers(&mut doc);
    doc
}

/// The `X-Request-Id` response header, which every response carries and refers to.
fn request_id_header(doc: &mut Value) {
    doc["components"]["headers"] = json!({
        "X-Request-Id": {
            "description": "The caller's request id if it was short and plain, else a new one; \
                            it also appears in the server's logs.",
            "schema": { "type": "string" },
        },
    });
}

/// What every operation shares, added to each in its dialect's error format: the
/// `X-Request-Id` header on every response (the `request_id` middleware sets it); a 500 (any
/// handler can meet an internal error); a 503 (the database cannot answer, or the request
/// outlived `--request-timeout-seconds`); and, where the operation reads a body, a 408 (the
/// body did not arrive within `--body-read-timeout-seconds`).
fn shared_answers(doc: &mut Value) {
    let paths = doc["paths"].as_object_mut().expect("paths");
    for (path, item) in paths.iter_mut() {
        let (error, internal) = if path.starts_with("/v1/") {
            ("AccountsError", schemas::V1_INTERNAL)
        } else {
            (
                "FabricError",
                "An internal error; it is logged with a reference id and the body says nothing \
                 more.",
            )
        };
        for op in item.as_object_mut().expect("path item").values_mut() {
            let reads_body = op.get("requestBody").is_some();
            let responses = op["responses"].as_object_mut().expect("responses");
            let mut add = |status: &str, description: &str| {
                responses.entry(status).or_insert_with(|| {
                    json!({
                        "description": description,
                        "content": { JSON: { "schema": schemas::schema_ref(error) } },
                    })
                });
            };
            add("500", internal);
            add(
                "503",
                "The database cannot answer now, or the request outlived the request deadline \
                 (`--request-timeout-seconds`); nothing was changed that the answer does not \
                 report, and the request may be retried.",
            );
            if reads_body {
                add(
                    "408",
                    "The body did not arrive within the body deadline \
                     (`--body-read-timeout-seconds`); the connection is closed.",
                );
            }
            for reply in responses.values_mut() {
                let headers = reply
                    .as_object_mut()
                    .expect("response")
                    .entry("headers")
                    .or_insert_with(|| Value::Object(Map::new()));
                headers["X-Request-Id"] = json!({ "$ref": "#/components/headers/X-Request-Id" });
            }
        }
    }
}

const JSON: &str = "application/json";

/// The document, serialised once: it depends only on the build.
static DOCUMENT: LazyLock<Value> = LazyLock::new(document);

/// The document as served without a public URL.
static DOCUMENT_JSON: LazyLock<String> = LazyLock::new(|| DOCUMENT.to_string());

/// The page, rendered once for the same reason.
static DOCS_HTML: LazyLock<String> = LazyLock::new(|| crate::docs::render(&DOCUMENT));

/// The page loads nothing and runs nothing; the policy makes that a promise the browser keeps
/// even if a future edit slips in an external reference.
const DOCS_CSP: &str =
    "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'; \
     frame-ancestors 'none'";

schemas::json_schema! {
    /// The server is ready.
    struct Healthz = json!({
        "type": "object",
        "description": "The server is ready.",
        "required": ["status"],
        "properties": { "status": { "const": "ok" } },
    });
}

/// Health check
///
/// 200 once the server is ready.
#[utoipa::path(get, path = "/healthz", tag = "Service", operation_id = "health",
    responses((status = 200, description = "Ready.", body = Healthz)))]
async fn healthz() -> impl IntoResponse {
    axum::Json(json!({"status": "ok"}))
}

/// This API as an OpenAPI 3.1 document
///
/// Derived from the router's typed handlers, like `/docs`.
#[utoipa::path(get, path = "/openapi.json", tag = "Service", operation_id = "openapiDocument",
    responses((status = 200, description = "The OpenAPI document.",
               body = Object, content_type = "application/json")))]
async fn openapi_json(
    axum::extract::State(state): axum::extract::State<AppState>,
) -> impl IntoResponse {
    // With a configured public URL the document names it as its server, so a client
    // generated from it calls the public address; without one, OpenAPI's default (the
    // document's own origin) applies. Never from the Host header.
    let body = match &state.config.public_url {
        Some(url) => {
            let mut doc = DOCUMENT.clone();
            doc["servers"] = json!([{ "url": url }]);
            doc.to_string()
        }
        None => DOCUMENT_JSON.clone(),
    };
    (
        [(header::CONTENT_TYPE, HeaderValue::from_static(JSON))],
        body,
    )
}

/// This API as a web page
///
/// Self-contained HTML rendered from the OpenAPI document; it loads nothing else.
#[utoipa::path(get, path = "/docs", tag = "Service", operation_id = "apiDocs",
    responses((status = 200, description = "The page.", body = String,
               content_type = "text/html; charset=utf-8")))]
async fn docs_page() -> impl IntoResponse {
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/html; charset=utf-8"),
            ),
            (
                HeaderName::from_static("content-security-policy"),
                HeaderValue::from_static(DOCS_CSP),
            ),
        ],
        DOCS_HTML.as_str(),
    )
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeSet, HashSet};
    use std::path::Path;

    use super::*;

    fn walk_refs(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::Object(m) => {
                if let Some(Value::String(r)) = m.get("$ref") {
                    out.push(r.clone());
                }
                m.values().for_each(|v| walk_refs(v, out));
            }
            Value::Array(a) => a.iter().for_each(|v| walk_refs(v, out)),
            _ => {}
        }
    }

    /// Every operation of the document: `(method, path, operation)`.
    fn operations(d: &Value) -> Vec<(String, String, Value)> {
        let mut out = Vec::new();
        for (path, item) in d["paths"].as_object().expect("paths") {
            for (method, op) in item.as_object().expect("path item") {
                out.push((method.clone(), path.clone(), op.clone()));
            }
        }
        out
    }

    fn statuses(op: &Value) -> BTreeSet<u16> {
        op["responses"]
            .as_object()
            .expect("responses")
            .keys()
            .map(|s| s.parse().expect("a numeric status"))
            .collect()
    }

    fn parameter_names(op: &Value, location: &str) -> BTreeSet<String> {
        op["parameters"]
            .as_array()
            .map(|ps| {
                ps.iter()
                    .filter(|p| p["in"] == location)
                    .map(|p| p["name"].as_str().expect("name").to_string())
                    .collect()
            })
            .unwrap_or_default()
    }

    fn is_public(op: &Value) -> bool {
        op["security"].as_array().is_none_or(|s| {
            s.iter()
                .all(|r| r.as_object().is_some_and(|m| m.is_empty()))
        })
    }

    #[test]
    fn document_is_openapi_3_1_with_project_info() {
        let d = document();
        assert_eq!(d["openapi"], "3.1.0");
        assert_eq!(d["info"]["title"], "Tessera");
        assert_eq!(d["info"]["version"], env!("CARGO_PKG_VERSION"));
        let schemes = &d["components"]["securitySchemes"];
        assert_eq!(schemes["projectBasic"]["scheme"], "basic");
        assert_eq!(schemes["subscriberBearer"]["scheme"], "bearer");
        assert_eq!(schemes["accountsBearer"]["scheme"], "bearer");
        assert_eq!(schemes["accountsBearer"]["bearerFormat"], "JWS");
    }

    #[test]
    fn every_ref_resolves() {
        let d = document();
        let mut refs = Vec::new();
        walk_refs(&d, &mut refs);
        assert!(!refs.is_empty());
        for r in refs {
            let pointer = r.strip_prefix('#').expect("local reference");
            assert!(d.pointer(pointer).is_some(), "dangling {r}");
        }
    }

    #[test]
    fn named_schemas_exist() {
        let d = document();
        for name in [
            "FabricError",
            "FabricValidationErrors",
            "SubscriberTokenRequest",
            "SubscriberTokenResponse",
            "RefreshRequest",
            "TokenPair",
            "GuestTokenRequest",
            "InviteRequest",
            "EmbedRequest",
            "TokenOnly",
            "Healthz",
            "IntrospectionResponse",
            "AccountsError",
            "TokenCreationSpec",
            "AccountsTokenPair",
            "JWKS",
        ] {
            assert!(
                d["components"]["schemas"][name].is_object(),
                "missing schema {name}"
            );
        }
        let channels = &d["components"]["schemas"]["FabricAddress"]["properties"]["channels"];
        for c in ["audio", "video", "messaging"] {
            assert!(channels["properties"][c].is_object());
        }
    }

    #[test]
    fn operations_are_unique_tagged_and_successful() {
        let d = document();
        let mut ids = HashSet::new();
        let tags: HashSet<&str> = TAGS.iter().map(|(t, _)| *t).collect();
        for (method, path, op) in operations(&d) {
            let id = op["operationId"].as_str().expect("operationId");
            assert!(ids.insert(id.to_string()), "duplicate id {id}");
            let tag = op["tags"][0].as_str().expect("a tag");
            assert!(tags.contains(tag), "unknown tag {tag}");
            assert!(
                op["summary"].as_str().is_some_and(|s| !s.is_empty()),
                "{id}"
            );
            assert!(
                statuses(&op).iter().any(|s| s / 100 == 2),
                "{method} {path} has no success"
            );
        }
    }

    #[test]
    fn path_parameters_match_placeholders() {
        for (_, path, op) in operations(&document()) {
            let placeholders: BTreeSet<String> = path
                .split('/')
                .filter_map(|s| Some(s.strip_prefix('{')?.strip_suffix('}')?.to_string()))
                .collect();
            assert_eq!(placeholders, parameter_names(&op, "path"), "{path}");
        }
    }

    #[test]
    fn error_responses_follow_the_extractors() {
        for (method, path, op) in operations(&document()) {
            let s = statuses(&op);
            let id = op["operationId"].as_str().unwrap_or_default();
            // Credentials are checked by an extractor on every authenticated route; the
            // Accounts login is public but checks the credentials its body carries.
            let authenticated = !is_public(&op) || id == "createAccessToken";
            assert_eq!(s.contains(&401), authenticated, "{method} {path} and 401");
            let body = &op["requestBody"]["content"];
            // `JsonBody` answers 400 for non-JSON, 413 over the limit and 422 for a wrong
            // Content-Type or a non-object, on every route that reads a Fabric body.
            if path.starts_with("/api/fabric/") && body.is_object() {
                for code in [400, 413, 422] {
                    assert!(s.contains(&code), "{method} {path} lacks {code}");
                }
            }
            // The `/v1` body readers answer 400 for a bad body and 413 over the limit.
            if path.starts_with("/v1/") && body.is_object() {
                assert!(s.contains(&400) && s.contains(&413), "{method} {path}");
            }
            // Path ids are looked up, and a malformed one is 404 like an unknown one.
            if path.contains("{id}") {
                assert!(s.contains(&404), "{method} {path} lacks 404");
            }
            let query = parameter_names(&op, "query");
            if query.contains("page_size") {
                assert!(s.contains(&422) && s.contains(&400), "{method} {path}");
            }
            if query.contains("pageSize") {
                assert!(s.contains(&400), "{method} {path}");
            }
            // Every operation can meet an internal error, an unavailable database or its
            // deadline, and one that reads a body a slow body: all in its dialect.
            let error = if path.starts_with("/v1/") {
                "#/components/schemas/AccountsError"
            } else {
                "#/components/schemas/FabricError"
            };
            let mut shared = vec!["500", "503"];
            if body.is_object() {
                shared.push("408");
            }
            for status in shared {
                assert_eq!(
                    op["responses"][status]["content"][JSON]["schema"]["$ref"], error,
                    "{method} {path} {status}"
                );
            }
            for reply in op["responses"].as_object().unwrap().values() {
                assert!(
                    reply["headers"]["X-Request-Id"].is_object(),
                    "{method} {path}"
                );
            }
        }
    }

    #[test]
    fn accounts_operations_answer_accounts_errors_and_name_their_role() {
        let d = document();
        let v1: Vec<_> = operations(&d)
            .into_iter()
            .filter(|(_, path, _)| path.starts_with("/v1/"))
            .collect();
        assert_eq!(v1.len(), 19);
        for (method, path, op) in v1 {
            for (status, reply) in op["responses"].as_object().unwrap() {
                if status.as_str() >= "400" {
                    assert_eq!(
                        reply["content"][JSON]["schema"]["$ref"],
                        "#/components/schemas/AccountsError",
                        "{method} {path} {status}"
                    );
                }
            }
            if op["tags"][0] == "Accounts" {
                assert!(is_public(&op), "{method} {path}");
                continue;
            }
            assert_eq!(op["tags"][0], "Management", "{method} {path}");
            assert_eq!(op["security"], json!([{ "accountsBearer": [] }]));
            let description = op["description"].as_str().unwrap_or_default();
            assert!(description.starts_with("Role: "), "{method} {path}");
            let unauthorized = &op["responses"]["401"]["headers"]["WWW-Authenticate"];
            assert!(unauthorized.is_object(), "{method} {path}");
        }
        let refresh = &d["paths"]["/v1/tokens/access-token/refresh"]["patch"];
        assert_eq!(refresh["operationId"], "refreshAccessToken");
    }

    #[test]
    fn embed_exchange_is_public_and_rate_limited() {
        let d = document();
        let op = &d["paths"]["/api/fabric/embeds/tokens"]["post"];
        let s = statuses(op);
        for code in [201, 403, 404, 422, 429] {
            assert!(s.contains(&code), "{code}");
        }
        assert!(!s.contains(&401));
        assert!(is_public(op));
        assert!(op["responses"]["429"]["headers"]["Retry-After"].is_object());
    }

    #[test]
    fn addresses_list_documents_its_filters() {
        let d = document();
        let op = &d["paths"]["/api/fabric/addresses"]["get"];
        let want: BTreeSet<String> = [
            "page_size",
            "page_number",
            "page_token",
            "type",
            "display_name",
        ]
        .map(String::from)
        .into();
        assert_eq!(parameter_names(op, "query"), want);
        assert_eq!(
            op["security"],
            json!([{ "projectBasic": [] }, { "subscriberBearer": [] }])
        );
    }

    #[test]
    fn introspection_takes_form_or_json() {
        let d = document();
        let content = &d["paths"]["/oauth2/introspect"]["post"]["requestBody"]["content"];
        assert!(content["application/x-www-form-urlencoded"].is_object());
        assert!(content[JSON].is_object());
        let kinds = &d["components"]["schemas"]["IntrospectionResponse"]["properties"]["kind"];
        assert_eq!(
            kinds["enum"],
            json!(["subscriber", "guest", "invite", "embed"])
        );
    }

    #[test]
    fn served_json_is_the_document() {
        let served: Value = serde_json::from_str(&DOCUMENT_JSON).unwrap();
        assert_eq!(served, document());
    }

    /// A route added with axum's `route` would be served without a description: every route
    /// goes through `routes!` (see the module documentation), which this holds on the source.
    #[test]
    fn every_route_is_added_with_its_description() {
        fn visit(dir: &Path, offenders: &mut Vec<String>) {
            for entry in std::fs::read_dir(dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    visit(&path, offenders);
                } else if path.extension().is_some_and(|e| e == "rs") {
                    let text = std::fs::read_to_string(&path).unwrap();
                    for (n, line) in text.lines().enumerate() {
                        let code = line.split("//").next().unwrap_or_default();
                        // Spelled in two halves so that this line does not match itself.
                        let needles = [concat!(".rou", "te("), concat!(".rou", "te_service(")];
                        if needles.iter().any(|n| code.contains(n)) {
                            offenders.push(format!("{}:{}", path.display(), n + 1));
                        }
                    }
                }
            }
        }
        let mut offenders = Vec::new();
        visit(
            &Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
            &mut offenders,
        );
        assert!(offenders.is_empty(), "undocumented routes: {offenders:?}");
    }
}
