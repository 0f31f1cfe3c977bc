//! The Fabric dialect (fabric-api.md): routes, and the hand-written conversion of domain
//! records to the wire JSON.

mod resources;
mod tokens;

use axum::extract::MatchedPath;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Map, Value};
use tessera_core::json::ObjectWriter;
use tessera_core::model::{Address, Page, PageOf, Resource, ResourceKind};
use tessera_core::service::IssuedTokens;
use uuid::Uuid;

use crate::error::{FabricError, FieldError};
use crate::state::AppState;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::openapi::schemas::optional_body;

/// Every Fabric route.
pub fn routes() -> OpenApiRouter<AppState> {
    use resources::*;
    use tokens::*;
    OpenApiRouter::new()
        .routes(routes!(subscriber_token))
        .routes(routes!(refresh_token))
        .routes(routes!(guest_token))
        .routes(routes!(invite_token))
        .routes(routes!(embed_token))
        .routes(routes!(list_resources))
        .routes(routes!(list_subscribers, create_subscriber))
        .routes(optional_body(routes!(
            get_subscriber,
            update_subscriber,
            delete_subscriber
        )))
        .routes(routes!(subscriber_addresses))
        .routes(routes!(list_rooms, create_room))
        .routes(optional_body(routes!(get_room, update_room, delete_room)))
        // The SDK's room `list_addresses` uses the singular path; both are served.
        .routes(routes!(room_addresses))
        .routes(routes!(room_addresses_singular))
        .routes(routes!(get_resource, delete_resource))
        .routes(routes!(any_resource_addresses))
        .routes(routes!(list_addresses))
        .routes(routes!(get_address))
}

/// Parses an id from a path. A malformed id names nothing, so it is a 404 like any unknown id.
pub(crate) fn path_id<T: std::str::FromStr>(raw: &str) -> Result<T, FabricError> {
    raw.parse().map_err(|_| FabricError::NotFound)
}

/// Reads the subscriber profile fields a request may set. The time zone is `time_zone` on the
/// token endpoint and `timezone` on the subscriber resource; `tz_fields` names the accepted
/// spellings in order of preference.
pub(crate) fn subscriber_patch(
    f: &mut crate::extract::Fields,
    tz_fields: &[&str],
) -> tessera_core::model::SubscriberPatch {
    tessera_core::model::SubscriberPatch {
        email: None,
        first_name: f.string("first_name"),
        last_name: f.string("last_name"),
        display_name: f.string("display_name"),
        job_title: f.string("job_title"),
        // Every spelling given is checked (a bad alias beside a good one is still an error,
        // not silently dropped); the first given wins.
        timezone: tz_fields
            .iter()
            .map(|n| f.string(n))
            .collect::<Vec<_>>()
            .into_iter()
            .flatten()
            .next(),
        country: f.string("country"),
        region: f.string("region"),
        company_name: f.string("company_name"),
    }
}

/// A token answer: a JSON object of string (or null) members, in the order given.
///
/// Written with [`ObjectWriter`] rather than through `serde_json::Value`: the tokens are ~1 KB
/// each, and building a map of copies and escaping it byte by byte into a growing buffer was a
/// tenth of a guest grant's CPU. Callers give the members in sorted order, which is what the
/// map wrote.
pub(crate) fn token_answer(status: StatusCode, members: &[(&str, Option<&str>)]) -> Response {
    let len: usize = members
        .iter()
        .map(|(k, v)| k.len() + v.map_or(4, str::len) + 6)
        .sum();
    let mut w = ObjectWriter::with_capacity(len + 2);
    for (name, value) in members {
        w.opt_str(name, *value);
    }
    json_response(status, w.finish())
}

/// A response with a JSON body written by hand.
pub(crate) fn json_response(status: StatusCode, body: Vec<u8>) -> Response {
    (
        status,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        body,
    )
        .into_response()
}

/// The access token and, when the grant has one, its refresh token, as the wire pair; T1
/// adds the `subscriber_id`.
pub(crate) fn token_pair(
    status: StatusCode,
    tokens: &IssuedTokens,
    subscriber_id: Option<&str>,
) -> Response {
    let refresh = (
        "refresh_token",
        tokens.refresh.as_ref().map(|r| r.expose().as_str()),
    );
    let access = ("token", Some(tokens.access.expose().as_str()));
    match subscriber_id {
        Some(id) => token_answer(status, &[refresh, ("subscriber_id", Some(id)), access]),
        None => token_answer(status, &[refresh, access]),
    }
}

/// The address's dialable channels (fabric-api.md §13 item 15).
fn channels(a: &Address) -> Value {
    let base = format!("/{}/{}", a.kind.context(), a.name);
    json!({
        "audio": format!("{base}?channel=audio"),
        "video": format!("{base}?channel=video"),
        "messaging": format!("{base}?channel=messaging"),
    })
}

/// A `FabricAddress`.
pub(crate) fn address_json(a: &Address) -> Value {
    json!({
        "id": a.id.to_string(),
        "resource_id": a.resource_id.to_string(),
        "name": a.name,
        "display_name": a.display_name,
        "type": a.kind.as_str(),
        "cover_url": a.cover_url,
        "preview_url": a.preview_url,
        "locked": a.locked,
        "channels": channels(a),
        "created_at": a.created_at.to_rfc3339(),
    })
}

/// The resource `type` string of each kind.
fn resource_type(kind: ResourceKind) -> &'static str {
    match kind {
        ResourceKind::Subscriber => "subscriber",
        ResourceKind::Room => "video_room",
        ResourceKind::App => "application",
    }
}

/// A resource envelope: the common fields plus the kind's own object.
pub(crate) fn resource_json(r: &Resource) -> Value {
    let mut v = json!({
        "id": r.id.to_string(),
        "project_id": r.project_id.to_string(),
        "display_name": r.display_name,
        "type": resource_type(r.kind),
        "created_at": r.created_at.to_rfc3339(),
        "updated_at": r.updated_at.to_rfc3339(),
    });
    match r.kind {
        ResourceKind::Subscriber => {
            let p = r.subscriber.clone().unwrap_or_default();
            v["subscriber"] = json!({
                "id": r.id.to_string(),
                "email": p.email,
                "first_name": p.first_name,
                "last_name": p.last_name,
                "display_name": p.display_name,
                "job_title": p.job_title,
                "timezone": p.timezone,
                "country": p.country,
                "region": p.region,
                "company_name": p.company_name,
            });
        }
        ResourceKind::Room => {
            let mut m: Map<String, Value> = r.data.clone();
            m.insert("id".into(), r.id.to_string().into());
            m.insert("name".into(), r.name.clone().into());
            m.insert("display_name".into(), r.display_name.clone().into());
            v["conference_room"] = Value::Object(m);
        }
        ResourceKind::App => {
            let mut m: Map<String, Value> = r.data.clone();
            m.insert("id".into(), r.id.to_string().into());
            m.insert("name".into(), r.name.clone().into());
            v["application"] = Value::Object(m);
        }
    }
    v
}

/// Pagination parameters (fabric-api.md §8, §13 item 19).
#[derive(Debug)]
pub(crate) struct Paging {
    pub page: Page,
    pub number: u64,
}

/// Default and largest page sizes.
const DEFAULT_PAGE_SIZE: u32 = 50;
const MAX_PAGE_SIZE: u32 = 1000;

impl Paging {
    /// Reads `page_size`, `page_number` and `page_token` from the query.
    pub(crate) fn parse(
        q: &std::collections::HashMap<String, String>,
    ) -> Result<Paging, FabricError> {
        let size = match q.get("page_size") {
            None => DEFAULT_PAGE_SIZE,
            Some(s) => match s.parse::<u32>() {
                Ok(n) if (1..=MAX_PAGE_SIZE).contains(&n) => n,
                _ => {
                    return Err(FieldError::invalid(
                        "page_size",
                        &format!("must be an integer from 1 to {MAX_PAGE_SIZE}"),
                    )
                    .into())
                }
            },
        };
        let number = match q.get("page_number") {
            None => 0,
            Some(s) => s.parse::<u64>().map_err(|_| {
                FieldError::invalid("page_number", "must be a non-negative integer")
            })?,
        };
        let after = match q.get("page_token") {
            None => None,
            Some(t) => Some(
                t.strip_prefix("PA")
                    .and_then(|u| Uuid::parse_str(u).ok())
                    .ok_or_else(|| {
                        FieldError::new(
                            "page_token_is_invalid",
                            "page_token",
                            "Page token is invalid",
                        )
                    })?,
            ),
        };
        if number > 0 && after.is_none() {
            return Err(FieldError::new(
                "page_token_required",
                "page_token",
                "Page token is required for pages after the first",
            )
            .into());
        }
        Ok(Paging {
            page: Page { size, after },
            number,
        })
    }
}

impl utoipa::IntoParams for Paging {
    fn into_params(
        _: impl Fn() -> Option<utoipa::openapi::path::ParameterIn>,
    ) -> Vec<utoipa::openapi::path::Parameter> {
        use crate::openapi::schemas::{
            page_number_schema, page_size_schema, page_token_schema, query_param,
        };
        vec![
            query_param(
                "page_size",
                "Items per page, 1 to 1000; 50 by default.",
                page_size_schema(),
            ),
            query_param(
                "page_number",
                "0-based page number; pages after the first need `page_token`. Follow \
                 `links.next` rather than building it.",
                page_number_schema(),
            ),
            query_param(
                "page_token",
                "Opaque continuation token from `links.next` (`PA` + the last id seen).",
                page_token_schema(),
            ),
        ]
    }
}

/// The path a list's links name: the route's template with its id filled in by the server.
///
/// Not the request's own path: that is the client's text (`//evil.example/…` would make a
/// relative link point at another host), and nothing in a link may come from the request
/// but the query the server itself validated.
pub(crate) fn link_path(route: &MatchedPath, id: Option<Uuid>) -> String {
    match id {
        Some(id) => route.as_str().replace("{id}", &id.to_string()),
        None => route.as_str().to_string(),
    }
}

/// Renders a `{data, links}` envelope. Links carry every parameter the next request needs
/// (the SDK re-requests the original path with exactly the `next` query).
///
/// Links are relative (`/api/fabric/…?…`) unless the server was given a public URL
/// (`--public-url`), in which case they are absolute on it. They are never built from the
/// `Host` header: an SDK that follows `next` sends the project's credentials there.
pub(crate) fn envelope<T>(
    public_url: Option<&str>,
    path: &str,
    filters: &[(&str, Option<String>)],
    paging: &Paging,
    page: &PageOf<T>,
    last_id: impl Fn(&T) -> Uuid,
    render: impl Fn(&T) -> Value,
) -> Value {
    let base = format!("{}{path}", public_url.unwrap_or(""));
    let size = paging.page.size;
    let extra: String = filters
        .iter()
        .filter_map(|(k, v)| v.as_ref().map(|v| format!("&{k}={}", urlencode(v))))
        .collect();
    let mut links = json!({
        "self": match paging.page.after {
            Some(a) => format!("{base}?page_number={}&page_size={size}&page_token=PA{a}{extra}", paging.number),
            None => format!("{base}?page_number=0&page_size={size}{extra}"),
        },
        "first": format!("{base}?page_number=0&page_size={size}{extra}"),
    });
    if page.more {
        if let Some(last) = page.items.last() {
            // The page token says where the next page starts; the number is only echoed, and
            // the document allows any up to u64::MAX, so it saturates instead of overflowing.
            links["next"] = format!(
                "{base}?page_number={}&page_size={size}&page_token=PA{}{extra}",
                paging.number.saturating_add(1),
                last_id(last)
            )
            .into();
        }
    }
    json!({ "data": page.items.iter().map(render).collect::<Vec<_>>(), "links": links })
}

fn urlencode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
