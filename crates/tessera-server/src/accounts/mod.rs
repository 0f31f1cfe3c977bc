//! The Accounts dialect (accounts-api.md): the VCF SDDC Manager token family under `/v1/tokens`
//! and, behind its Bearer tokens, Tessera's management plane (`manage.rs`).
//!
//! The token endpoints are deliberately lenient about what clients put on the wire (§9, §10):
//! any `Authorization` header is ignored, `Content-Type` is not enforced (so duplicated or
//! missing headers are fine), unknown fields are ignored, and a refresh id may arrive quoted,
//! bare or wrapped in an object. Every error is the JSON `Error` object with a `message`.

mod manage;

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::Json;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde_json::{json, Map, Value};
use tessera_core::accounts::is_refresh_id;
use tessera_core::jws::{PublicKey, PublicKeyBytes, SigningAlg};
use tessera_core::model::{Operator, Role};
use tessera_core::Secret;
use utoipa::openapi::schema::Schema;
use utoipa::openapi::RefOr;
use utoipa::{PartialSchema, ToSchema};

use crate::error::{FabricError, V1Error};
use crate::extract::{ClientAddr, RawBody};
use crate::json_body::JsonError;
use crate::openapi::schemas::{
    add, id_object, raw, schema_ref, string, AccountsErrorBody, V1TooLarge, UUID_PATTERN,
};
use crate::state::AppState;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// The `/v1` routes (nested under `/v1` by the router).
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_token))
        .routes(routes!(refresh))
        .routes(routes!(invalidate))
        .routes(routes!(jwks))
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

/// How a login authenticates (`TokenCreationSpec`), read and checked.
#[derive(Debug)]
pub(crate) enum TokenCreationSpec {
    /// A SERVICE user's API key; it wins over a name and password sent beside it (A6).
    ApiKey(Secret<String>),
    /// SDDC Manager's SSO login, which Tessera cannot check: always refused.
    IdToken,
    /// A USER's name and password.
    Password {
        username: String,
        password: Secret<String>,
    },
}

impl TokenCreationSpec {
    /// Reads the body (`None` when empty): every member is checked for its type first, then
    /// the credentials are chosen; empty strings count as absent.
    fn read(body: Option<Value>) -> Result<Self, V1Error> {
        let spec = match body {
            Some(Value::Object(m)) => m,
            Some(_) => return Err(malformed("The body must be a TokenCreationSpec object.")),
            None => Map::new(),
        };
        let api_key = opt_string(&spec, "apiKey")?.filter(|k| !k.is_empty());
        let id_token = opt_string(&spec, "idToken")?.filter(|t| !t.is_empty());
        let username = opt_string(&spec, "username")?.filter(|u| !u.is_empty());
        let password = opt_string(&spec, "password")?.filter(|p| !p.is_empty());
        if let Some(key) = api_key {
            return Ok(Self::ApiKey(Secret::new(key)));
        }
        if id_token.is_some() {
            return Ok(Self::IdToken);
        }
        match (username, password) {
            (Some(username), Some(password)) => Ok(Self::Password {
                username,
                password: Secret::new(password),
            }),
            (u, p) => {
                let missing: Vec<&str> = [("username", u.is_none()), ("password", p.is_none())]
                    .into_iter()
                    .filter_map(|(name, absent)| absent.then_some(name))
                    .collect();
                Err(V1Error::BadRequest(
                    "TOKEN_SPEC_INVALID",
                    format!(
                        "Provide username and password, or apiKey (missing: {}).",
                        missing.join(", ")
                    ),
                ))
            }
        }
    }
}

// Hand-written: `anyOf` over the two ways to log in, with `minLength` inside each branch.
impl PartialSchema for TokenCreationSpec {
    fn schema() -> RefOr<Schema> {
        raw(json!({
            "type": "object",
            "description": "Either `apiKey`, or `username` and `password`; `apiKey` wins when \
                            both are sent. Empty strings count as absent; unknown members are \
                            ignored.",
            "anyOf": [
                { "required": ["apiKey"], "properties": { "apiKey": { "minLength": 1 } } },
                { "required": ["username", "password"],
                  "properties": { "username": { "minLength": 1 },
                                  "password": { "minLength": 1 } } },
            ],
            "properties": {
                "username": string(),
                "password": { "type": "string", "format": "password" },
                "apiKey": { "type": "string", "description": "A SERVICE user's API key." },
                "idToken": { "type": "string",
                             "description": "SDDC Manager's SSO login. Tessera has no SSO: \
                                             an `idToken` without `apiKey` is always a 401." },
            },
        }))
    }
}

impl ToSchema for TokenCreationSpec {}

/// A refresh id as the answer to a login carries it.
// Hand-written: the UUID pattern is the server's constant.
pub(crate) struct RefreshTokenId;

impl PartialSchema for RefreshTokenId {
    fn schema() -> RefOr<Schema> {
        id_object(json!({
            "type": "string",
            "pattern": format!("^{UUID_PATTERN}$"),
            "description": "The refresh id (UUID-shaped). Reusable until 24 h after the login, \
                            unless invalidated.",
        }))
    }
}

impl ToSchema for RefreshTokenId {}

/// An Accounts access token (a compact JWS), as the login and the refresh answer it.
// Described only: the handlers write the token string itself.
pub(crate) struct AccessToken;

impl PartialSchema for AccessToken {
    fn schema() -> RefOr<Schema> {
        raw(access_token())
    }
}

impl ToSchema for AccessToken {}

fn access_token() -> Value {
    json!({
        "type": "string",
        "description": "A compact JWS: header `alg` HS256 or EdDSA and a `kid`; claims `jti`, \
                        `iss` \"vcf-auth\", `aud` \"sddc-services\", `sub`, `user` and `name` \
                        (all the user name), `scope` (the role's permission strings, e.g. \
                        `USER_READ`), `iat`, `nbf` and `exp` (`iat` + 3600, in seconds).",
        "examples": ["eyJhbGciOiJIUzI1NiIsImtpZCI6Ii4uLiJ9.eyJqdGkiOiIuLi4ifQ.c2ln"],
    })
}

/// SDDC Manager's `TokenPair`.
// Described only: `login` writes it with `json!`.
pub(crate) struct AccountsTokenPair;

impl PartialSchema for AccountsTokenPair {
    fn schema() -> RefOr<Schema> {
        raw(json!({
            "type": "object",
            "required": ["accessToken", "refreshToken"],
            "description": "SDDC Manager's `TokenPair`.",
            "properties": {
                "accessToken": access_token(),
                "refreshToken": schema_ref("RefreshTokenId"),
            },
        }))
    }
}

impl ToSchema for AccountsTokenPair {
    fn schemas(out: &mut Vec<(String, RefOr<Schema>)>) {
        add::<RefreshTokenId>(out);
    }
}

/// Log in: create an access token and a refresh id
///
/// Public: any `Authorization` header is ignored. Takes an `apiKey` (a SERVICE user's) or a
/// `username` and `password`; `apiKey` wins when both are sent. Five failed logins for one
/// account from one client address within 180 s lock that pair for 900 s, answered like wrong
/// credentials; other addresses can still log in, and a per-address failure limit stops
/// guessing across accounts.
// A refused login carries the username it tried (never the password or key) for the refusal
// log.
#[utoipa::path(post, path = "/tokens", tag = "Accounts", operation_id = "createAccessToken",
    request_body = TokenCreationSpec,
    responses(
        (status = 200, description = "The access token and the refresh id.",
         body = AccountsTokenPair),
        (status = 400, body = AccountsErrorBody, description = "No usable credentials \
         (`TOKEN_SPEC_INVALID`), or a body that is not JSON or has a member of the wrong type \
         (`MALFORMED_REQUEST_BODY`)."),
        (status = 401, body = AccountsErrorBody, description = "Wrong or unknown credentials, \
         or a disabled or locked account, all answered alike (`INVALID_CREDENTIALS`)."),
        V1TooLarge,
    ))]
async fn create_token(
    State(state): State<AppState>,
    ClientAddr(client): ClientAddr,
    V1Json(body): V1Json,
) -> axum::response::Response {
    let mut who = None;
    match login(&state, client, body, &mut who).await {
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
    addr: std::net::IpAddr,
    body: Option<Value>,
    who: &mut Option<String>,
) -> Result<Json<Value>, V1Error> {
    let tokens = match TokenCreationSpec::read(body)? {
        TokenCreationSpec::ApiKey(key) => {
            *who = Some("api key".into());
            state.accounts.login_api_key(key, addr).await?
        }
        // There is no SSO here to check an id token against: it can never be valid.
        TokenCreationSpec::IdToken => return Err(V1Error::InvalidCredentials),
        TokenCreationSpec::Password { username, password } => {
            *who = Some(format!("user:{username}"));
            state
                .accounts
                .login_password(&username, password, addr)
                .await?
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
            // An absent or null `id` is no id, answered like an empty body.
            Value::Object(m) => opt_string(&m, "id")?.unwrap_or_default(),
            _ => return Err(malformed("The body is not valid JSON.")),
        },
        _ => text.to_string(),
    };
    let id = id.trim().to_string();
    Ok((!id.is_empty()).then_some(id))
}

/// The refresh id of `PATCH /v1/tokens/access-token/refresh` and `DELETE
/// /v1/tokens/refresh-token`, read whatever the `Content-Type` (A3).
#[derive(Debug)]
pub(crate) struct RefreshTokenIdBody {
    id: String,
}

impl RefreshTokenIdBody {
    /// Reads a required refresh id in any of its client encodings.
    fn read(body: &[u8]) -> Result<Self, V1Error> {
        let id = refresh_id(body)?.ok_or_else(|| {
            V1Error::BadRequest(
                "REFRESH_TOKEN_REQUIRED",
                "The refresh token id is required.".into(),
            )
        })?;
        Ok(Self { id })
    }

    /// Like [`Self::read`], and the id must also be shaped like a refresh id.
    fn read_well_formed(body: &[u8]) -> Result<Self, V1Error> {
        let request = Self::read(body)?;
        if !is_refresh_id(&request.id) {
            return Err(malformed("The refresh token id is not well formed."));
        }
        Ok(request)
    }
}

// Hand-written: `oneOf` a bare or JSON string (patterned with the server's UUID constant) and
// the `RefreshTokenId` object.
impl PartialSchema for RefreshTokenIdBody {
    fn schema() -> RefOr<Schema> {
        raw(json!({
            "description": "The refresh id as a JSON string (`\"<id>\"`), as `{\"id\": \
                            \"<id>\"}`, or bare (not JSON; surrounding whitespace is trimmed), \
                            whatever the `Content-Type`.",
            "oneOf": [
                { "type": "string",
                  "pattern": format!("^[\\t\\n\\x0B\\f\\r ]*{UUID_PATTERN}[\\t\\n\\x0B\\f\\r ]*$"),
                  "examples": ["4f8a0c1e-2b3d-4e5f-8a9b-0c1d2e3f4a5b"] },
                schema_ref("RefreshTokenId"),
            ],
        }))
    }
}

impl ToSchema for RefreshTokenIdBody {
    fn schemas(out: &mut Vec<(String, RefOr<Schema>)>) {
        add::<RefreshTokenId>(out);
    }
}

/// Refresh an access token
///
/// Public. Mints a new access token from a refresh id. The refresh id is not rotated: it can
/// be used again until 24 h after the login that issued it, unless it is invalidated first.
// The document lists JSON and plain text rather than `*/*`: the server reads JSON or a bare
// id, not any encoding of the schema (a YAML string, say, is malformed).
#[utoipa::path(patch, path = "/tokens/access-token/refresh", tag = "Accounts",
    operation_id = "refreshAccessToken",
    request_body(content(
        (RefreshTokenIdBody = "application/json"), (RefreshTokenIdBody = "text/plain"))),
    responses(
        (status = 200, description = "The new access token, as a JSON string.",
         body = inline(AccessToken)),
        (status = 400, body = AccountsErrorBody, description = "No refresh id \
         (`REFRESH_TOKEN_REQUIRED`), or a body that starts like JSON but is not a JSON string or \
         an object with a string `id` (`MALFORMED_REQUEST_BODY`)."),
        (status = 404, body = AccountsErrorBody, description = "The refresh id is unknown, \
         expired or invalidated (`REFRESH_TOKEN_NOT_FOUND`)."),
        V1TooLarge,
    ))]
async fn refresh(
    State(state): State<AppState>,
    V1Bytes(body): V1Bytes,
) -> Result<impl IntoResponse, V1Error> {
    let request = RefreshTokenIdBody::read(&body)?;
    let access = state.accounts.refresh(&request.id).await?;
    Ok(Json(Value::String(access.into_inner())))
}

/// Invalidate a refresh id (log out)
///
/// Public. The refresh id mints no more access tokens; access tokens it has already minted
/// stay valid until they expire.
// 204 for any well-formed id, known or not (A11).
#[utoipa::path(delete, path = "/tokens/refresh-token", tag = "Accounts",
    operation_id = "invalidateRefreshToken",
    request_body(content(
        (RefreshTokenIdBody = "application/json"), (RefreshTokenIdBody = "text/plain"))),
    responses(
        (status = 204, description = "Invalidated; an unknown refresh id is answered 204 too."),
        (status = 400, body = AccountsErrorBody, description = "No refresh id \
         (`REFRESH_TOKEN_REQUIRED`), or one not shaped like a refresh id \
         (`MALFORMED_REQUEST_BODY`)."),
        V1TooLarge,
    ))]
async fn invalidate(
    State(state): State<AppState>,
    V1Bytes(body): V1Bytes,
) -> Result<impl IntoResponse, V1Error> {
    let request = RefreshTokenIdBody::read_well_formed(&body)?;
    state.accounts.invalidate(&request.id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A public key that verifies EdDSA access tokens (RFC 8037 `OKP`).
// Described only: `jwks_document` writes it. Hand-written for the `const` members.
pub(crate) struct Jwk;

impl PartialSchema for Jwk {
    fn schema() -> RefOr<Schema> {
        raw(json!({
            "type": "object",
            "required": ["kty", "crv", "x", "kid", "alg", "use"],
            "properties": {
                "kty": { "const": "OKP" },
                "crv": { "const": "Ed25519" },
                "x": { "type": "string", "description": "The public key, base64url." },
                "kid": { "type": "string", "description": "Matches the JWS header's `kid`." },
                "alg": { "const": SigningAlg::EdDsa.as_str() },
                "use": { "const": "sig" },
            },
        }))
    }
}

impl ToSchema for Jwk {
    fn name() -> std::borrow::Cow<'static, str> {
        "JWK".into()
    }
}

/// The key set (RFC 7517) that verifies access tokens.
#[derive(ToSchema)]
#[schema(as = JWKS)]
#[allow(dead_code)] // Describes what `jwks_document` writes.
pub(crate) struct Jwks {
    keys: Vec<Jwk>,
}

/// The public keys that verify access tokens (JWKS)
///
/// Public. The Ed25519 keys that verify EdDSA-signed access tokens, for services that verify
/// them themselves. Empty when the server signs with HS256, whose secret is never published.
#[utoipa::path(get, path = "/tokens/jwks", tag = "Accounts", operation_id = "getAccessTokenKeys",
    responses((status = 200, description = "The key set.", body = Jwks)))]
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

    /// The 400's code, or `"ok"` (the management handlers' tests use it too).
    pub(super) fn code<T>(r: Result<T, V1Error>) -> &'static str {
        match r {
            Ok(_) => "ok",
            Err(V1Error::BadRequest(code, _)) => code,
            Err(e) => panic!("not a 400: {e:?}"),
        }
    }

    #[test]
    fn a_login_spec_checks_every_member_before_choosing_credentials() {
        let read = |v: Value| TokenCreationSpec::read(Some(v));
        assert!(matches!(
            read(json!({"apiKey": "k", "username": "u", "password": "p"})),
            Ok(TokenCreationSpec::ApiKey(_))
        ));
        // A member of the wrong type is malformed even when `apiKey` would win.
        assert_eq!(
            code(read(json!({"apiKey": "k", "username": 5}))),
            "MALFORMED_REQUEST_BODY"
        );
        assert!(matches!(
            read(json!({"apiKey": "", "idToken": "t"})),
            Ok(TokenCreationSpec::IdToken)
        ));
        assert!(matches!(
            read(json!({"username": "u", "password": "p", "extra": 1})),
            Ok(TokenCreationSpec::Password { username, .. }) if username == "u"
        ));
        assert_eq!(
            code(read(json!({"username": "u", "password": ""}))),
            "TOKEN_SPEC_INVALID"
        );
        assert_eq!(code(TokenCreationSpec::read(None)), "TOKEN_SPEC_INVALID");
        assert_eq!(code(read(json!([]))), "MALFORMED_REQUEST_BODY");
    }

    #[test]
    fn only_a_refresh_id_shaped_id_is_invalidated() {
        let id = "3c6b0e2a-1111-2222-3333-44445555b911";
        assert_eq!(
            RefreshTokenIdBody::read_well_formed(id.as_bytes())
                .unwrap()
                .id,
            id
        );
        assert_eq!(
            code(RefreshTokenIdBody::read_well_formed(b"not-an-id")),
            "MALFORMED_REQUEST_BODY"
        );
        // Refresh only needs an id; the store says whether it is known.
        assert_eq!(
            RefreshTokenIdBody::read(b"not-an-id").unwrap().id,
            "not-an-id"
        );
        assert_eq!(
            code(RefreshTokenIdBody::read(b"{}")),
            "REFRESH_TOKEN_REQUIRED"
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
