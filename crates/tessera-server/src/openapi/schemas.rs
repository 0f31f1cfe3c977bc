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

pub(crate) fn non_negative() -> Value {
    json!({ "type": "integer", "minimum": 0 })
}

pub(crate) fn positive() -> Value {
    json!({ "type": "integer", "minimum": 1 })
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

pub(crate) fn openapi_object() -> Value {
    json!({ "type": "object", "description": "An OpenAPI 3.1 document." })
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

/// A non-blank string (see [`NOT_BLANK`]), for a required name the server trims.
pub(crate) fn not_blank() -> RefOr<Schema> {
    raw(json!({ "type": "string", "pattern": NOT_BLANK }))
}

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
                   not an object or names a member twice, a `token` that is not a string, or a \
                   form naming `token` twice.", Some("FabricError")),
    }
);

/// A query parameter of a Fabric operation, optional, with its schema as a JSON value.
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
