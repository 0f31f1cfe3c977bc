//! RFC 7662 introspection and RFC 7009 revocation for resource servers, authenticated with the
//! project's Basic credentials. Both accept `application/x-www-form-urlencoded` (the RFCs'
//! encoding) and JSON.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::Json;
use serde_json::{json, Value};

use tessera_core::json::{any_byte, ObjectWriter};
use tessera_core::token::PrincipalKind;

use crate::error::FabricError;
use crate::extract::{ProjectAuth, RawBody};
use crate::fabric::json_response;
use crate::openapi::schemas::{
    json_schema, optional_body, uuid, FabricTooLarge, FabricUnauthorized, OAuthBadRequest,
};
use crate::state::AppState;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// The OAuth 2.0 routes.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(optional_body(routes!(introspect)))
        .routes(optional_body(routes!(revoke)))
}

/// The form's or JSON object's members, as both endpoints document them.
fn token_request(description: &str) -> Value {
    // Any hint is accepted: the RFCs let a server ignore hints it does not know (the hint
    // registry is open), and the token itself says what it is.
    json!({
        "type": "object",
        "description": description,
        "properties": {
            // `null` counts as absent in a JSON body, as in the Fabric bodies.
            "token": {
                "type": ["string", "null"],
                "description": "The token. The RFCs require it; a missing, null or unreadable one \
                                (or an empty body) is answered as an unknown token, not as an \
                                error.",
            },
            "token_type_hint": {
                "type": ["string", "null"],
                "examples": ["access_token", "refresh_token"],
                "description": "Accepted and ignored, as RFC 7009 allows; the token itself says \
                                what it is.",
            },
        },
    })
}

json_schema! {
    /// What `POST /oauth2/introspect` reads (`TokenRequest` holds it once read).
    pub(crate) struct IntrospectionRequest = token_request(
        "A form (`token=…`), as RFC 7662 specifies, or the same members as a JSON object. \
         `token` must not be given twice (400).",
    );
}

json_schema! {
    /// What `POST /oauth2/revoke` reads (`TokenRequest` holds it once read).
    pub(crate) struct RevocationRequest = token_request("As for introspection.");
}

json_schema! {
    /// What `introspect` writes by hand.
    pub(crate) struct IntrospectionResponse = {
        let kinds = [
            PrincipalKind::Subscriber,
            PrincipalKind::Guest,
            PrincipalKind::Invite,
            PrincipalKind::Embed,
        ]
        .map(PrincipalKind::as_str);
        json!({
            "type": "object",
            "required": ["active"],
            "description": "An inactive token is answered exactly `{\"active\": false}`; the \
                            other members are present only when `active` is true.",
            "properties": {
                "active": { "type": "boolean" },
                "token_type": { "const": "Bearer" },
                "sub": { "type": "string", "description": "The principal's id." },
                "exp": { "type": "integer", "description": "Expiry, Unix seconds." },
                "iat": { "type": "integer", "description": "Issue time, Unix seconds." },
                "jti": { "type": "string", "description": "The token's id." },
                "project_id": uuid(),
                "kind": { "type": "string", "enum": kinds },
                "allowed_addresses": { "type": "array", "items": uuid(),
                                       "description": "For guest, invite and embed tokens." },
                "application_id": { "type": ["string", "null"], "format": "uuid" },
                "family_id": { "type": "string", "format": "uuid",
                               "description": "The session family; revoking it deactivates \
                                               the token." },
            },
        })
    };
}

/// The token an OAuth 2.0 request names, if it names one: a missing `token`, or an empty body,
/// is answered like an unknown token (RFC 7662 §2.2, RFC 7009 §2.2), not as an error.
#[derive(Debug)]
struct TokenRequest {
    token: Option<String>,
}

impl TokenRequest {
    /// Reads `token` from a form or JSON body; a malformed body is a 400 (see [`token_param`]).
    fn read(headers: &HeaderMap, body: &Bytes) -> Result<Self, FabricError> {
        Ok(Self {
            token: token_param(headers, body)?,
        })
    }
}

fn hex_val(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
}

/// Decodes one `application/x-www-form-urlencoded` component.
fn form_decode(s: &str) -> Option<String> {
    // Tokens are base64url and dots: nothing to decode, and this runs per introspection
    // (`contains` with a char set was a tenth of one).
    if !any_byte(s.as_bytes(), |b| (b == b'%') | (b == b'+')) {
        return Some(s.to_string());
    }
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hi = hex_val(*b.get(i + 1)?)?;
                let lo = hex_val(*b.get(i + 2)?)?;
                out.push(hi << 4 | lo);
                i += 2;
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8(out).ok()
}

/// The `token` parameter from a form or JSON body; `None` if absent or unreadable.
///
/// A body that names `token` twice (a JSON member at any depth, or a form parameter) is
/// refused: RFC 6749 §3.2 forbids repeated parameters, and which copy counts would otherwise
/// depend on the parser (a proxy that checked the first saw another token than Tessera).
fn token_param(headers: &HeaderMap, body: &Bytes) -> Result<Option<String>, FabricError> {
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    if ct.starts_with("application/json") {
        // An empty body names no token (answered like a missing one); anything else must be
        // an object whose `token` and `token_type_hint`, if given, are strings: RFC 6749
        // §5.2's `invalid_request` otherwise, rather than a silent "inactive" that hides a
        // client's bug. The hint's value is ignored, its type is not: a form can only send
        // a string, and the document says so.
        if body.iter().all(u8::is_ascii_whitespace) {
            return Ok(None);
        }
        let Ok(Value::Object(m)) = crate::json_body::parse(body) else {
            return Err(FabricError::BadRequest);
        };
        if !matches!(
            m.get("token_type_hint"),
            None | Some(Value::Null | Value::String(_))
        ) {
            return Err(FabricError::BadRequest);
        }
        return match m.get("token") {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(t)) => Ok(Some(t.clone())),
            Some(_) => Err(FabricError::BadRequest),
        };
    }
    let Ok(text) = std::str::from_utf8(body) else {
        return Ok(None);
    };
    let mut found = None;
    for pair in text.split('&') {
        let Some((k, v)) = pair.split_once('=') else {
            continue;
        };
        if k == "token" || form_decode(k).as_deref() == Some("token") {
            if found.is_some() {
                return Err(FabricError::BadRequest);
            }
            found = Some(form_decode(v));
        }
    }
    Ok(found.flatten())
}

/// Introspect a token (RFC 7662)
///
/// Tells a project backend or resource server whether an access token is active: sealed by
/// Tessera, unexpired, of the caller's project, and its session family not revoked. Anything
/// else is exactly `{"active": false}`.
#[utoipa::path(post, path = "/oauth2/introspect", tag = "OAuth 2.0",
    operation_id = "introspectToken", security(("projectBasic" = [])),
    // Optional (`optional_body`): an empty body is answered like a missing `token`.
    request_body(content(
        (IntrospectionRequest = "application/x-www-form-urlencoded"),
        (IntrospectionRequest = "application/json"),
    )),
    responses(
        (status = 200, description = "The token's state. A missing `token` or one Tessera did \
         not issue is inactive, not an error.", body = IntrospectionResponse),
        OAuthBadRequest, FabricUnauthorized, FabricTooLarge,
    ))]
async fn introspect(
    State(state): State<AppState>,
    ProjectAuth(project): ProjectAuth,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> Result<axum::response::Response, FabricError> {
    let Some(token) = TokenRequest::read(&headers, &body)?.token else {
        return Ok(Json(json!({"active": false})).into_response());
    };
    let claims = state.service.introspect(project, &token).await?;
    let Some(c) = claims else {
        return Ok(Json(json!({"active": false})).into_response());
    };
    // Written by hand (the members are ids and numbers): this is the hottest answer a
    // resource server asks for, and serde's escaping of its UUIDs was a tenth of it.
    let mut w = ObjectWriter::with_capacity(400 + 39 * c.adr.len());
    w.bool("active", true)
        .str("token_type", "Bearer")
        .uuid("sub", &c.sub)
        .int("exp", c.exp)
        .int("iat", c.iat)
        .uuid("jti", &c.jti.0)
        .uuid("project_id", &c.pid.0)
        .str("kind", c.knd.as_str())
        .uuids("allowed_addresses", c.adr.iter().map(|a| &a.0))
        .opt_uuid("application_id", c.app.as_ref())
        .uuid("family_id", &c.fam.0);
    Ok(json_response(StatusCode::OK, w.finish()))
}

/// Revoke a token (RFC 7009)
///
/// Revokes the token's session family, so the family's refresh and access tokens stop
/// working. An unknown or already revoked token is answered 200 too, as RFC 7009 requires.
// Unknown tokens answer 200 (RFC 7009 §2.2), so the endpoint says nothing about which tokens
// exist.
#[utoipa::path(post, path = "/oauth2/revoke", tag = "OAuth 2.0",
    operation_id = "revokeToken", security(("projectBasic" = [])),
    // Optional (`optional_body`): an empty body is answered like a missing `token`.
    request_body(content(
        (RevocationRequest = "application/x-www-form-urlencoded"),
        (RevocationRequest = "application/json"),
    )),
    responses(
        (status = 200, description = "Revoked (or nothing to revoke). Empty body."),
        OAuthBadRequest, FabricUnauthorized, FabricTooLarge,
    ))]
async fn revoke(
    State(state): State<AppState>,
    ProjectAuth(project): ProjectAuth,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> Result<impl IntoResponse, FabricError> {
    if let Some(token) = TokenRequest::read(&headers, &body)?.token {
        state.service.revoke(project, &token).await?;
    }
    Ok(StatusCode::OK)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_decoding() {
        assert_eq!(form_decode("a%2Eb+c").as_deref(), Some("a.b c"));
        assert_eq!(form_decode("%zz"), None);
        assert_eq!(form_decode("%4"), None);
        let mut h = HeaderMap::new();
        h.insert(
            header::CONTENT_TYPE,
            "application/x-www-form-urlencoded".parse().unwrap(),
        );
        let param = |h: &HeaderMap, body: &'static str| token_param(h, &Bytes::from(body));
        assert_eq!(
            param(&h, "token_type_hint=x&token=abc.def")
                .unwrap()
                .as_deref(),
            Some("abc.def")
        );
        assert!(param(&h, "token=a&token=b").is_err());
        assert!(param(&h, "token=a&%74oken=b").is_err());
        h.insert(header::CONTENT_TYPE, "application/json".parse().unwrap());
        assert_eq!(param(&h, r#"{"token":"t"}"#).unwrap().as_deref(), Some("t"));
        assert!(param(&h, r#"{"token":"a","token":"b"}"#).is_err());
        // Not an object, not JSON, or a token that is not a string: a malformed request.
        for bad in [
            "[",
            "[null]",
            "\"t\"",
            "5",
            r#"{"token": 5}"#,
            r#"{"token": {}}"#,
        ] {
            assert!(param(&h, bad).is_err(), "{bad}");
        }
        // No body, or no token in it: nothing to look at, answered as inactive.
        assert_eq!(param(&h, "").unwrap(), None);
        assert_eq!(param(&h, "{}").unwrap(), None);
        assert_eq!(param(&h, r#"{"token": null}"#).unwrap(), None);
    }
}
