//! RFC 7662 introspection and RFC 7009 revocation for resource servers, authenticated with the
//! project's Basic credentials. Both accept `application/x-www-form-urlencoded` (the RFCs'
//! encoding) and JSON.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::post;
use axum::{Json, Router};
use serde_json::{json, Value};

use tessera_core::json::{any_byte, ObjectWriter};

use crate::error::FabricError;
use crate::extract::{ProjectAuth, RawBody};
use crate::fabric::json_response;
use crate::state::AppState;

/// The OAuth 2.0 routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/oauth2/introspect", post(introspect))
        .route("/oauth2/revoke", post(revoke))
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

/// `POST /oauth2/introspect`: `{"active": true, …}` for a live access token of the caller's
/// project, exactly `{"active": false}` for anything else.
async fn introspect(
    State(state): State<AppState>,
    ProjectAuth(project): ProjectAuth,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> Result<axum::response::Response, FabricError> {
    let Some(token) = token_param(&headers, &body)? else {
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

/// `POST /oauth2/revoke`: revokes the token's family; unknown tokens also answer 200 (RFC 7009
/// §2.2), so the endpoint says nothing about which tokens exist.
async fn revoke(
    State(state): State<AppState>,
    ProjectAuth(project): ProjectAuth,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> Result<impl IntoResponse, FabricError> {
    if let Some(token) = token_param(&headers, &body)? {
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
