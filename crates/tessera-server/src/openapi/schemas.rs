//! The pieces the typed descriptions share: field schemas that read the server's own limits
//! (so a limit is written once, where it is enforced or next to it), the conversion of such a
//! schema into utoipa's model, and the reusable responses of both dialects.
//!
//! Field schemas are JSON values rather than utoipa attributes where an attribute cannot say
//! what the server enforces: utoipa's attributes take literals (not the core's constants),
//! and its model has no place for some JSON Schema keywords we need (`anyOf` with `const`
//! inside a string schema, say). [`raw`] carries such a value into the document verbatim.

use std::collections::BTreeMap;

use serde_json::{json, Map, Value};
use tessera_core::model::ResourceKind;
use utoipa::openapi::extensions::Extensions;
use utoipa::openapi::schema::{Object, Schema, SchemaType};
use utoipa::openapi::{RefOr, Response};
use utoipa::ToSchema;

/// A JSON Schema value as utoipa's model, written back exactly as given: every member rides
/// in the object's extension map, which utoipa serialises flattened and unchanged (an
/// `Object` with no type and nothing else set adds nothing of its own).
pub(crate) fn raw(v: Value) -> RefOr<Schema> {
    let Value::Object(members) = v else {
        panic!("a schema is a JSON object")
    };
    let mut extensions = Extensions::default();
    extensions.extend(members);
    let mut object = Object::with_type(SchemaType::AnyValue);
    object.extensions = Some(extensions);
    RefOr::T(Schema::Object(object))
}

/// An object whose one member, required, is `id` with the schema `id` (the Accounts API names
/// roles and refresh ids this way).
pub(crate) fn id_object(id: Value) -> RefOr<Schema> {
    raw(json!({
        "type": "object",
        "required": ["id"],
        "properties": { "id": id },
    }))
}

pub(crate) fn schema_ref(name: &str) -> Value {
    json!({ "$ref": format!("#/components/schemas/{name}") })
}

pub(crate) fn string() -> Value {
    json!({ "type": "string" })
}

/// A string without NUL, which `Fields::string` refuses (not every store can keep it).
pub(crate) const NO_NUL: &str = "^[^\\x00]*$";

/// A string with at least one character that is not white space and no NUL: what the server
/// reads as present after trimming a required name. The white space is Rust's
/// `char::is_whitespace`, spelled out because `\s` means different sets in different regex
/// dialects (Python's includes U+001C to U+001F, ECMAScript's lacks U+0085).
pub(crate) const NOT_BLANK: &str = concat!(
    "^[^\\x00]*",
    "[^\\x00\\t\\n\\x0B\\f\\r \\x85\\xA0\\u1680\\u2000-\\u200A\\u2028\\u2029\\u202F\\u205F\\u3000]",
    "[^\\x00]*$"
);

/// `v`, or `null`: Fabric bodies read a `null` member as an absent one (the SDKs send `None`
/// as `null`), so every optional member of a Fabric request accepts it.
pub(crate) fn or_null(mut v: Value) -> Value {
    match v.get_mut("type") {
        Some(Value::String(t)) => {
            let t = std::mem::take(t);
            v["type"] = json!([t, "null"]);
        }
        Some(Value::Array(ts)) => ts.push("null".into()),
        _ => {}
    }
    if let Some(Value::Array(e)) = v.get_mut("enum") {
        e.push(Value::Null);
    }
    v
}

/// A required Fabric name: present, not blank, at most 1024 characters.
pub(crate) fn name_text(description: &str) -> Value {
    json!({ "type": "string", "maxLength": 1024, "pattern": NOT_BLANK,
            "description": description })
}

/// Free text as `Fields::string` reads it: at most 1024 characters (longer values are refused,
/// not truncated) and no NUL.
pub(crate) fn text(description: &str) -> Value {
    let mut v = json!({ "type": "string", "maxLength": 1024, "pattern": NO_NUL });
    if !description.is_empty() {
        v["description"] = description.into();
    }
    v
}

pub(crate) fn uuid() -> Value {
    json!({ "type": "string", "format": "uuid" })
}

pub(crate) fn date_time() -> Value {
    json!({ "type": "string", "format": "date-time" })
}

/// A page number as the server parses it: a `u64`.
pub(crate) fn page_number_schema() -> Value {
    json!({ "type": "integer", "minimum": 0, "maximum": u64::MAX })
}

pub(crate) fn page_size_schema() -> Value {
    json!({ "type": "integer", "minimum": 1, "maximum": 1000, "default": 50 })
}

/// `PA` and a hyphenated UUID, which is all the server parses back.
pub(crate) fn page_token_schema() -> Value {
    json!({ "type": "string", "pattern": format!("^PA{UUID_PATTERN}$") })
}

/// A hyphenated UUID, unanchored.
pub(crate) const UUID_PATTERN: &str = "[0-9a-fA-F]{8}(-[0-9a-fA-F]{4}){3}-[0-9a-fA-F]{12}";

pub(crate) fn address_types() -> Vec<&'static str> {
    [
        ResourceKind::Subscriber,
        ResourceKind::Room,
        ResourceKind::App,
    ]
    .map(ResourceKind::as_str)
    .to_vec()
}

pub(crate) fn address_type_filter() -> Value {
    json!({ "type": "string", "maxLength": 32, "examples": address_types() })
}

/// An expiry as `Fields::expiry` reads it (fabric-api.md §13 item 4).
pub(crate) fn expiry(description: &str) -> Value {
    json!({
        "type": ["number", "string"],
        "description": format!(
            "{description} Unix seconds (an integral float or a numeric string is accepted \
             too) or an RFC 3339 date-time; it must lie in the future and at most the \
             configured maximum lifetime ahead (24 h by default), e.g. now + 3600. The \
             window moves with the clock, so the schema cannot state it and gives no example: \
             any fixed instant is refused once it has passed."
        ),
    })
}

pub(crate) fn list_of(item: &str) -> Value {
    json!({
        "type": "object",
        "required": ["data", "links"],
        "properties": {
            "data": { "type": "array", "items": schema_ref(item) },
            "links": schema_ref("PageLinks"),
        },
    })
}

/// The profile members a subscriber request may set.
pub(crate) fn profile_properties(tz: &str) -> Map<String, Value> {
    let mut m = Map::new();
    for f in [
        "first_name",
        "last_name",
        "display_name",
        "job_title",
        "country",
        "region",
        "company_name",
    ] {
        m.insert(f.into(), or_null(text("")));
    }
    m.insert(tz.into(), or_null(text("The subscriber's time zone.")));
    m
}

pub(crate) fn password() -> Value {
    or_null(json!({
        "type": "string",
        "maxLength": 72,
        "pattern": NO_NUL,
        "anyOf": [{ "const": "" }, { "minLength": 8 }],
        "description": "8 to 72 characters; empty, null or absent leaves the password \
                        unchanged.",
    }))
}

// ---- Reusable responses ----------------------------------------------------------------------

/// One response of the document: `status` → description, and a JSON body of the named
/// component schema (none for `None`), plus headers.
pub(crate) fn reply(
    description: &str,
    body: Option<&str>,
    headers: &[(&str, &str)],
) -> RefOr<Response> {
    let mut v = json!({ "description": description });
    if let Some(name) = body {
        v["content"] = json!({ "application/json": { "schema": schema_ref(name) } });
    }
    if !headers.is_empty() {
        v["headers"] = Value::Object(
            headers
                .iter()
                .map(|(name, description)| {
                    (
                        (*name).to_string(),
                        json!({ "description": description, "schema": string() }),
                    )
                })
                .collect::<Map<String, Value>>(),
        );
    }
    RefOr::T(serde_json::from_value(v).expect("a response utoipa reads"))
}

/// Declares a set of responses that many operations share, as a type the `responses(...)` of
/// `#[utoipa::path]` can name.
macro_rules! shared_responses {
    ($(#[$doc:meta])* $name:ident { $($status:literal => ($description:expr, $body:expr $(, $hname:literal => $hdesc:literal)*)),+ $(,)? }) => {
        $(#[$doc])*
        pub(crate) struct $name;

        impl utoipa::IntoResponses for $name {
            fn responses() -> BTreeMap<String, RefOr<Response>> {
                BTreeMap::from([$((
                    $status.to_string(),
                    reply($description, $body, &[$(($hname, $hdesc)),*]),
                )),+])
            }
        }
    };
}

shared_responses!(
    /// A Fabric operation's Basic credentials are missing or wrong.
    FabricUnauthorized {
        "401" => ("Credentials are missing or wrong.", Some("FabricError"),
                  "WWW-Authenticate" => "`Basic realm=\"tessera\"`."),
    }
);

shared_responses!(
    /// A Fabric JSON body that is not JSON.
    FabricBadJson {
        "400" => ("The body is not valid JSON, or names a member twice.", Some("FabricError")),
    }
);

shared_responses!(
    /// A Fabric id that names nothing in the caller's project.
    FabricNotFound {
        "404" => ("No such record in the caller's project (a malformed id is answered the \
                   same way).", Some("FabricError")),
    }
);

shared_responses!(
    /// A body over the configured limit, in the Fabric dialect.
    FabricTooLarge {
        "413" => ("The body exceeds the configured limit (`--body-limit`, 64 KiB by default).",
                  Some("FabricError")),
    }
);

// ---- Error bodies ----------------------------------------------------------------------------

/// An error of the Fabric dialect.
#[derive(ToSchema)]
#[schema(as = FabricError)]
#[allow(dead_code)] // Describes what `crate::error` writes.
pub(crate) struct FabricErrorBody {
    #[schema(examples("Unauthorized"))]
    error: String,
}

/// One bad field.
#[derive(ToSchema)]
#[allow(dead_code)] // Describes what `crate::error` writes.
pub(crate) struct FabricValidationError {
    #[schema(value_type = String, schema_with = validation_error_type)]
    r#type: (),
    #[schema(examples("missing_required_parameter"))]
    code: String,
    message: String,
    /// The field, or null when the error is not about one.
    #[schema(required)]
    attribute: Option<String>,
    /// The code's documentation.
    url: String,
}

fn validation_error_type() -> RefOr<Schema> {
    raw(json!({ "const": "validation_error" }))
}

/// The Fabric dialect's answer to bad fields (422).
#[derive(ToSchema)]
#[allow(dead_code)] // Describes what `crate::error` writes.
pub(crate) struct FabricValidationErrors {
    /// One item per bad field.
    #[schema(min_items = 1)]
    errors: Vec<FabricValidationError>,
}

// ---- Fabric resources, addresses and OAuth 2.0 (port of the resource operations) -------------

shared_responses!(
    /// A Fabric list's query string that cannot be decoded.
    FabricBadQuery {
        "400" => ("The query string cannot be decoded.", Some("FabricError")),
    }
);

shared_responses!(
    /// A Fabric list's paging parameters that the server refuses.
    FabricBadPaging {
        "422" => ("Bad paging: `page_size` outside 1–1000, `page_number` not a non-negative \
                   integer, `page_token` malformed (`page_token_is_invalid`) or missing when \
                   `page_number` > 0 (`page_token_required`).", Some("FabricValidationErrors")),
    }
);

shared_responses!(
    /// A Fabric resource deleted.
    FabricDeleted {
        "204" => ("Deleted.", None),
    }
);

shared_responses!(
    /// A malformed OAuth 2.0 request.
    OAuthBadRequest {
        "400" => ("A malformed request (RFC 6749 §5.2 `invalid_request`): a JSON body that is \
                   not an object or names a member twice, a `token` or `token_type_hint` that is \
                   neither a string nor null, or a form naming `token` twice.", Some("FabricError")),
    }
);

/// A query parameter (never required) with a schema given as JSON.
pub(crate) fn query_param(
    name: &str,
    description: &str,
    schema: Value,
) -> utoipa::openapi::path::Parameter {
    use utoipa::openapi::path::{ParameterBuilder, ParameterIn};
    use utoipa::openapi::Required;
    ParameterBuilder::new()
        .name(name)
        .parameter_in(ParameterIn::Query)
        .required(Required::False)
        .description(Some(description))
        .schema(Some(raw(schema)))
        .build()
}

/// Declares a type whose schema is written as JSON (see [`raw`]), with the named schemas it
/// refers to, so that they are collected into the document with it.
macro_rules! json_schema {
    ($(#[$doc:meta])* $vis:vis struct $name:ident $(as $alias:literal)?
     $([$($dep:ty),* $(,)?])? = $body:expr;) => {
        $(#[$doc])*
        #[allow(dead_code)] // Describes what the handlers write; never built.
        $vis struct $name;

        impl utoipa::PartialSchema for $name {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                $crate::openapi::schemas::raw($body)
            }
        }

        impl utoipa::ToSchema for $name {
            $(fn name() -> std::borrow::Cow<'static, str> {
                std::borrow::Cow::Borrowed($alias)
            })?

            fn schemas(out: &mut Vec<(String, utoipa::openapi::RefOr<utoipa::openapi::schema::Schema>)>) {
                $($(
                    out.push((
                        <$dep as utoipa::ToSchema>::name().into_owned(),
                        <$dep as utoipa::PartialSchema>::schema(),
                    ));
                    <$dep as utoipa::ToSchema>::schemas(out);
                )*)?
                let _ = out;
            }
        }
    };
}
pub(crate) use json_schema;

// ==== The Accounts API (/v1) =================================================================
// Every 4xx and 5xx under `/v1` is an `AccountsError` (SDDC Manager's `Error` object); the
// pieces below are the /v1 operations' shared answers, paging parameters and page schemas.

shared_responses!(
    /// A /v1 body or query with a bad member.
    V1BadInput {
        "400" => ("Bad input (`INVALID_REQUEST`), or a body that is not JSON or has a member \
                   of the wrong type (`MALFORMED_REQUEST_BODY`).", Some("AccountsError")),
    }
);

shared_responses!(
    /// Bad /v1 paging parameters.
    V1BadPaging {
        "400" => ("`pageNumber` not a non-negative integer, `pageSize` outside 1–1000, or a \
                   query string that cannot be decoded (`INVALID_REQUEST`).",
                  Some("AccountsError")),
    }
);

shared_responses!(
    /// A management operation's bearer token is missing or no longer good.
    V1Unauthorized {
        "401" => ("The bearer access token is missing, invalid or expired, or its user is \
                   disabled or deleted (`Unauthorized`).", Some("AccountsError"),
                  "WWW-Authenticate" => "`Bearer`."),
    }
);

shared_responses!(
    /// The caller's role is below the operation's.
    V1Forbidden {
        "403" => ("The caller's role is too weak (`Forbidden`).", Some("AccountsError")),
    }
);

shared_responses!(
    /// A /v1 id that names nothing.
    V1NotFound {
        "404" => ("No such record (`NOT_FOUND`).", Some("AccountsError")),
    }
);

shared_responses!(
    /// A body over the configured limit, in the /v1 dialect.
    V1TooLarge {
        "413" => ("The body exceeds the configured limit (`--body-limit`, 64 KiB by default; \
                   `PAYLOAD_TOO_LARGE`).", Some("AccountsError")),
    }
);

/// What `shared_answers` says of a /v1 500.
pub(crate) const V1_INTERNAL: &str = "An internal error (`INTERNAL_SERVER_ERROR`), logged with \
                                      the body's `referenceToken`; the body says nothing more.";

/// Adds `T` and the components it refers to, for a hand-written schema's
/// `ToSchema::schemas` (utoipa collects only what a derive names).
pub(crate) fn add<T: ToSchema>(out: &mut Vec<(String, RefOr<Schema>)>) {
    out.push((T::name().into_owned(), T::schema()));
    T::schemas(out);
}

/// `pageNumber` as the /v1 lists parse it: a `u64`, 0 by default.
pub(crate) fn v1_page_number_schema() -> Value {
    json!({ "type": "integer", "minimum": 0, "maximum": u64::MAX, "default": 0 })
}

/// `pageSize` as the /v1 lists parse it.
pub(crate) fn v1_page_size_schema(max: u64, default: u64) -> Value {
    json!({ "type": "integer", "minimum": 1, "maximum": max, "default": default })
}

/// SDDC Manager's `Error` object, the body of every /v1 error.
// A hand-written schema: its `causes` items are unnamed objects whose members are optional
// but not nullable, and `nestedErrors` refers to the schema itself.
pub(crate) struct AccountsErrorBody;

impl utoipa::PartialSchema for AccountsErrorBody {
    fn schema() -> RefOr<Schema> {
        raw(json!({
            "type": "object",
            "required": ["message"],
            "description": "SDDC Manager's `Error` object: the body of every 4xx and 5xx under \
                            `/v1`. Tessera sends every member.",
            "properties": {
                "errorCode": {
                    "type": "string",
                    "examples": ["TOKEN_SPEC_INVALID", "MALFORMED_REQUEST_BODY",
                                 "INVALID_CREDENTIALS", "REFRESH_TOKEN_REQUIRED",
                                 "REFRESH_TOKEN_NOT_FOUND", "Unauthorized", "Forbidden",
                                 "NOT_FOUND", "INVALID_REQUEST", "USER_ALREADY_EXISTS",
                                 "METHOD_NOT_ALLOWED", "PAYLOAD_TOO_LARGE",
                                 "INTERNAL_SERVER_ERROR"],
                },
                "errorType": { "type": "string", "examples": ["ERROR"] },
                "arguments": { "type": "array", "items": string() },
                "context": { "type": "object", "additionalProperties": string() },
                "message": { "type": "string", "description": "What went wrong." },
                "remediationMessage": { "type": "string",
                                        "description": "What to do about it; may be empty." },
                "causes": {
                    "type": "array",
                    "items": { "type": "object",
                               "properties": { "type": string(), "message": string() } },
                },
                "nestedErrors": { "type": "array", "items": schema_ref("AccountsError") },
                "referenceToken": {
                    "type": "string",
                    "description": "Identifies this occurrence of the error; quote it when \
                                    reporting one.",
                    "examples": ["AB12CD"],
                },
            },
        }))
    }
}

impl ToSchema for AccountsErrorBody {
    fn name() -> std::borrow::Cow<'static, str> {
        "AccountsError".into()
    }
}

/// A /v1 list's page: `elements` and where they sit in the whole.
// The generic envelope each `…Page` schema refines with its element type.
pub(crate) struct Page;

impl utoipa::PartialSchema for Page {
    fn schema() -> RefOr<Schema> {
        raw(json!({
            "type": "object",
            "required": ["elements", "pageMetadata"],
            "properties": {
                "elements": { "type": "array" },
                "pageMetadata": schema_ref("PageMetadata"),
            },
        }))
    }
}

impl ToSchema for Page {
    fn schemas(out: &mut Vec<(String, RefOr<Schema>)>) {
        add::<PageMetadata>(out);
    }
}

/// Where a page sits in the whole list.
#[derive(ToSchema)]
#[allow(dead_code)] // Describes what `accounts::manage::Paging::page` writes.
pub(crate) struct PageMetadata {
    /// Zero-based.
    #[schema(rename = "pageNumber")]
    page_number: u64,
    #[schema(rename = "pageSize")]
    page_size: u64,
    #[schema(rename = "totalElements")]
    total_elements: u64,
    #[schema(rename = "totalPages")]
    total_pages: u64,
}

/// Declares `$page`, the schema of a page of `$item`s (`allOf` the generic [`Page`]).
macro_rules! page_of {
    ($(#[$doc:meta])* $page:ident, $item:ty) => {
        $(#[$doc])*
        pub(crate) struct $page;

        impl utoipa::PartialSchema for $page {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                let item = <$item as utoipa::ToSchema>::name();
                $crate::openapi::schemas::raw(serde_json::json!({
                    "allOf": [
                        $crate::openapi::schemas::schema_ref("Page"),
                        { "properties": { "elements": {
                            "type": "array",
                            "items": $crate::openapi::schemas::schema_ref(&item),
                        } } },
                    ],
                }))
            }
        }

        impl utoipa::ToSchema for $page {
            fn schemas(out: &mut Vec<(String, utoipa::openapi::RefOr<utoipa::openapi::schema::Schema>)>) {
                $crate::openapi::schemas::add::<$crate::openapi::schemas::Page>(out);
                $crate::openapi::schemas::add::<$item>(out);
            }
        }
    };
}
pub(crate) use page_of;

/// Marks the request body of the operations in `route` optional: the handler reads an empty
/// body as an empty object and can succeed on it. utoipa's attribute can only say so with an
/// `Option<T>` body, which would also document a JSON `null` body, which the server refuses.
pub(crate) fn optional_body<S>(
    mut route: utoipa_axum::router::UtoipaMethodRouter<S>,
) -> utoipa_axum::router::UtoipaMethodRouter<S> {
    for item in route.1.paths.values_mut() {
        let ops = [&mut item.post, &mut item.put, &mut item.patch];
        for body in ops
            .into_iter()
            .flatten()
            .filter_map(|op| op.request_body.as_mut())
        {
            body.required = Some(utoipa::openapi::Required::False);
        }
    }
    route
}
