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

mod legacy;
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

/// Every `(method, path)` the document describes, e.g. `("GET", "/v1/users/{id}")`: the
/// derived operations and those the table still holds, for tests that compare it with what the
/// router serves.
pub fn route_table() -> Vec<(String, String)> {
    let derived = serde_json::to_value(api().1).expect("the document serialises");
    let mut routes: Vec<(String, String)> = legacy::route_table()
        .into_iter()
        .map(|(method, path)| (method.to_string(), path.to_string()))
        .collect();
    for (path, item) in derived["paths"].as_object().expect("paths") {
        for method in item.as_object().expect("path item").keys() {
            routes.push((method.to_ascii_uppercase(), path.clone()));
        }
    }
    routes
}

/// The OpenAPI 3.1 document, as JSON.
pub fn document() -> Value {
    let mut doc = serde_json::to_value(api().1).expect("the document serialises");
    take_legacy(&mut doc, legacy::document());
    shared_answers(&mut doc);
    doc
}

/// Adds the operations and schemas of the table that the derived document does not hold yet.
fn take_legacy(doc: &mut Value, legacy: Value) {
    let paths = doc["paths"].as_object_mut().expect("paths");
    for (path, item) in legacy["paths"].as_object().expect("paths") {
        let target = paths
            .entry(path.clone())
            .or_insert_with(|| Value::Object(Map::new()));
        for (method, op) in item.as_object().expect("path item") {
            if target.get(method).is_none() {
                target[method] = op.clone();
            }
        }
    }
    let schemas = doc["components"]
        .as_object_mut()
        .expect("components")
        .entry("schemas")
        .or_insert_with(|| Value::Object(Map::new()));
    for (name, schema) in legacy["components"]["schemas"]
        .as_object()
        .expect("schemas")
    {
        if schemas.get(name).is_none() {
            schemas[name] = schema.clone();
        }
    }
    doc["components"]["headers"] = legacy["components"]["headers"].clone();
}

/// What every operation shares, added to each: the `X-Request-Id` header on every response
/// (the `request_id` middleware sets it), and a 500 in the operation's dialect (every handler
/// can meet an internal error).
fn shared_answers(doc: &mut Value) {
    let paths = doc["paths"].as_object_mut().expect("paths");
    for (path, item) in paths.iter_mut() {
        let (error, description) = if path.starts_with("/v1/") {
            ("AccountsError", schemas::V1_INTERNAL)
        } else {
            (
                "FabricError",
                "An internal error; it is logged with a reference id and the body says nothing \
                 more.",
            )
        };
        for op in item.as_object_mut().expect("path item").values_mut() {
            let responses = op["responses"].as_object_mut().expect("responses");
            responses.entry("500").or_insert_with(|| {
                json!({
                    "description": description,
                    "content": { JSON: { "schema": schemas::schema_ref(error) } },
                })
            });
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

/// The server is ready.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)] // Documents the answer, which is constant and written in place.
struct Healthz {
    #[schema(value_type = String, schema_with = healthz_status)]
    status: (),
}

fn healthz_status() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
    schemas::raw(json!({ "const": "ok" }))
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
