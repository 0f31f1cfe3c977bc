//! The Accounts dialect (accounts-api.md): the VCF SDDC Manager token family under `/v1/tokens`
//! and, behind its Bearer tokens, Tessera's management plane (`manage.rs`).
//!
//! The token endpoints are deliberately lenient about what clients put on the wire (§9, §10):
//! any `Authorization` header is ignored, `Content-Type` is not enforced (so duplicated or
//! missing headers are fine), unknown fields are ignored, and a refresh id may arrive quoted,
//! bare or wrapped in an object. Every error is the JSON `Error` object with a `message`.

mod manage;

use std::net::SocketAddr;

use axum::body::Bytes;
use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, patch, post};
use axum::Json;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde_json::{json, Map, Value};
use tessera_core::accounts::is_refresh_id;
use tessera_core::jws::{PublicKey, PublicKeyBytes, SigningAlg};
use tessera_core::model::{Operator, Role};
use tessera_core::Secret;

use crate::error::{FabricError, V1Error};
use crate::extract::RawBody;
use crate::json_body::JsonError;
use crate::state::AppState;
use utoipa_axum::router::OpenApiRouter;

/// The `/v1` routes (nested under `/v1` by the router).
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .route("/tokens", post(create_token))
        .route("/tokens/access-token/refresh", patch(refresh))
        .route("/tokens/refresh-token", axum::routing::delete(invalidate))
        .route("/tokens/jwks", get(jwks))
        .merge(manage::routes())
}

/// A raw body, read by the Fabric dialect's [`RawBody`] and its rejections restated in this
/// dialect's format.
pub(crate) struct V1Bytes(pub Bytes);

impl FromRequest<AppState> for V1Bytes {
    type Rejection = V1Error;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        match RawBody::from_request(req, state).await {
            Ok(RawBody(bytes)) => Ok(V1Bytes(bytes)),
            Err(FabricError::PayloadTooLarge) => Err(V1Error::PayloadTooLarge),
            Err(_) => Err(malformed("The body cannot be read.")),
        }
    }
}

/// A path parameter; one that cannot be read (not UTF-8 once decoded) names nothing: the
/// dialect's 404 rather than axum's plain-text 400.
pub(crate) struct V1Path<T>(pub T);

impl<T: serde::de::DeserializeOwned + Send> FromRequestParts<AppState> for V1Path<T> {
    type Rejection = V1Error;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        match crate::extract::PathParam::<T>::from_request_parts(parts, state).await {
            Ok(crate::extract::PathParam(v)) => Ok(V1Path(v)),
            Err(_) => Err(V1Error::NotFound("NOT_FOUND", "Not found.".into())),
        }
    }
}

/// A JSON body of any shape; `None` when empty.
pub(crate) struct V1Json(pub Option<Value>);

impl FromRequest<AppState> for V1Json {
    type Rejection = V1Error;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let V1Bytes(bytes) = V1Bytes::from_request(req, state).await?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(V1Json(None));
        }
        parse_body(&bytes).map(|v| V1Json(Some(v)))
    }
}

pub(crate) fn malformed(message: &str) -> V1Error {
    V1Error::BadRequest("MALFORMED_REQUEST_BODY", message.into())
}

/// Reads a JSON body with the one strict reader (`json_body`), stating what is wrong in this
/// dialect's words. Member names are echoed shortened, so a 60 KB name is not sent back.
fn parse_body(bytes: &[u8]) -> Result<Value, V1Error> {
    fn short(name: &str) -> String {
        name.chars().take(64).collect()
    }
    crate::json_body::parse(bytes).map_err(|e| match e {
        JsonError::Syntax => malformed("The request body is not valid JSON."),
        JsonError::Duplicate { member } => malformed(&format!(
            "The request body names a member more than once (in {:?}).",
            short(&member)
        )),
        JsonError::OutOfRange { member } => malformed(&format!(
            "The request body has a number out of range (in {:?}).",
            short(&member)
        )),
    })
}

/// The operator behind a valid `Authorization: Bearer` access token.
pub(crate) struct Caller(pub Operator);

impl Caller {
    /// Refuses (403) unless the caller's role is at least `role`.
    pub(crate) fn require(&self, role: Role) -> Result<&Operator, V1Error> {
        if self.0.role >= role {
            Ok(&self.0)
        } else {
            Err(V1Error::Forbidden)
        }
    }
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = V1Error;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let token = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                let (scheme, rest) = v.split_once(' ')?;
                scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim())
            })
            .ok_or(V1Error::Unauthorized)?;
        Ok(Caller(state.accounts.authenticate(token).await?))
    }
}

/// An optional string member: absent or null is `None`; another type is malformed.
fn opt_string(m: &Map<String, Value>, key: &str) -> Result<Option<String>, V1Error> {
    match m.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(malformed(&format!("{key} must be a string."))),
    }
}

/// `POST /v1/tokens`: username + password, or an API key (which takes precedence, A6). A
/// refused login carries the username it tried (never the password or key) for the refusal
/// log.
async fn create_token(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    V1Json(body): V1Json,
) -> axum::response::Response {
    let mut who = None;
    match login(&state, peer, body, &mut who).await {
        Ok(answer) => answer.into_response(),
        Err(e) => {
            let mut r = e.into_response();
            if let Some(who) = who {
                r.extensions_mut().insert(crate::telemetry::Principal(who));
            }
            r
        }
    }
}

async fn login(
    state: &AppState,
    peer: SocketAddr,
    body: Option<Value>,
    who: &mut Option<String>,
) -> Result<Json<Value>, V1Error> {
    let spec = match body {
        Some(Value::Object(m)) => m,
        Some(_) => return Err(malformed("The body must be a TokenCreationSpec object.")),
        None => Map::new(),
    };
    let api_key = opt_string(&spec, "apiKey")?.filter(|k| !k.is_empty());
    let id_token = opt_string(&spec, "idToken")?.filter(|t| !t.is_empty());
    let username = opt_string(&spec, "username")?.filter(|u| !u.is_empty());
    let password = opt_string(&spec, "password")?.filter(|p| !p.is_empty());
    let addr = peer.ip();
    let tokens = if let Some(key) = api_key {
        *who = Some("api key".into());
        state.accounts.login_api_key(Secret::new(key), addr).await?
    } else if id_token.is_some() {
        // There is no SSO here to check an id token against: it can never be valid.
        return Err(V1Error::InvalidCredentials);
    } else {
        match (username, password) {
            (Some(u), Some(p)) => {
                *who = Some(format!("user:{u}"));
                state
                    .accounts
                    .login_password(&u, Secret::new(p), addr)
                    .await?
            }
            (u, p) => {
                let missing: Vec<&str> = [("username", u.is_none()), ("password", p.is_none())]
                    .into_iter()
                    .filter_map(|(name, absent)| absent.then_some(name))
                    .collect();
                return Err(V1Error::BadRequest(
                    "TOKEN_SPEC_INVALID",
                    format!(
                        "Provide username and password, or apiKey (missing: {}).",
                        missing.join(", ")
                    ),
                ));
            }
        }
    };
    // 200, not 201: the original answers 200, and older Terraform providers panic on 201 (A1).
    Ok(Json(json!({
        "accessToken": tokens.access.expose(),
        "refreshToken": { "id": tokens.refresh_id.expose() },
    })))
}

/// Reads a refresh id sent as a JSON string, a bare id (trimmed), or `{"id": …}` (A3).
/// `Ok(None)` for an empty body.
fn refresh_id(body: &[u8]) -> Result<Option<String>, V1Error> {
    let text = std::str::from_utf8(body)
        .map_err(|_| malformed("The refresh token id must be text."))?
        .trim();
    if text.is_empty() {
        return Ok(None);
    }
    let id = match text.as_bytes()[0] {
        b'"' => serde_json::from_str::<String>(text)
            .map_err(|_| malformed("The refresh token id is not a valid JSON string."))?,
        b'{' => match parse_body(text.as_bytes())? {
            Value::Object(m) => opt_string(&m, "id")?.unwrap_or_default(),
            _ => return Err(malformed("The body is not valid JSON.")),
        },
        _ => text.to_string(),
    };
    let id = id.trim().to_string();
    Ok((!id.is_empty()).then_some(id))
}

fn required_refresh_id(body: &[u8]) -> Result<String, V1Error> {
    refresh_id(body)?.ok_or_else(|| {
        V1Error::BadRequest(
            "REFRESH_TOKEN_REQUIRED",
            "The refresh token id is required.".into(),
        )
    })
}

/// `PATCH /v1/tokens/access-token/refresh` → 200 with the new access token as a JSON string.
async fn refresh(
    State(state): State<AppState>,
    V1Bytes(body): V1Bytes,
) -> Result<impl IntoResponse, V1Error> {
    let id = required_refresh_id(&body)?;
    let access = state.accounts.refresh(&id).await?;
    Ok(Json(Value::String(access.into_inner())))
}

/// `DELETE /v1/tokens/refresh-token` → 204 for any well-formed id, known or not (A11).
async fn invalidate(
    State(state): State<AppState>,
    V1Bytes(body): V1Bytes,
) -> Result<impl IntoResponse, V1Error> {
    let id = required_refresh_id(&body)?;
    if !is_refresh_id(&id) {
        return Err(malformed("The refresh token id is not well formed."));
    }
    state.accounts.invalidate(&id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /v1/tokens/jwks`: the public keys resource servers verify EdDSA tokens with.
async fn jwks(State(state): State<AppState>) -> impl IntoResponse {
    Json(jwks_document(&state.accounts.public_keys()))
}

/// The JWKS (RFC 7517) of `keys`: `{"keys": [...]}`, each an `OKP` key (RFC 8037) for
/// verifying signatures only.
fn jwks_document(keys: &[PublicKey]) -> Value {
    let keys: Vec<Value> = keys
        .iter()
        .map(|k| match &k.key {
            PublicKeyBytes::Ed25519(x) => json!({
                "kty": "OKP",
                "crv": "Ed25519",
                "alg": SigningAlg::EdDsa.as_str(),
                "use": "sig",
                "kid": k.kid,
                "x": URL_SAFE_NO_PAD.encode(x),
            }),
        })
        .collect();
    json!({ "keys": keys })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_jwks_is_an_okp_key_per_public_key_in_the_order_given() {
        let key = |kid: &str, byte: u8| PublicKey {
            kid: kid.into(),
            key: PublicKeyBytes::Ed25519([byte; 32]),
        };
        assert_eq!(jwks_document(&[]), json!({"keys": []}));
        let x = |byte: u8| URL_SAFE_NO_PAD.encode([byte; 32]);
        assert_eq!(
            jwks_document(&[key("s-1", 1), key("s-2", 2)]),
            json!({"keys": [
                {"kty": "OKP", "crv": "Ed25519", "alg": "EdDSA", "use": "sig", "kid": "s-1", "x": x(1)},
                {"kty": "OKP", "crv": "Ed25519", "alg": "EdDSA", "use": "sig", "kid": "s-2", "x": x(2)},
            ]})
        );
    }

    #[test]
    fn refresh_ids_are_read_in_every_client_encoding() {
        let id = "3c6b0e2a-1111-2222-3333-44445555b911";
        for body in [
            format!("\"{id}\""),
            format!("\"{id}\"\n"),
            id.to_string(),
            format!("  {id}\r\n"),
            format!("{{\"id\":\"{id}\"}}"),
        ] {
            assert_eq!(
                refresh_id(body.as_bytes()).unwrap().as_deref(),
                Some(id),
                "{body}"
            );
        }
        assert_eq!(refresh_id(b"  ").unwrap(), None);
        assert_eq!(refresh_id(b"\"\"").unwrap(), None);
        assert!(refresh_id(b"\"unterminated").is_err());
        assert!(refresh_id(b"{\"id\": 5}").is_err());
    }
}
