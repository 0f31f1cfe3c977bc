//! Fabric token endpoints T1–T5 (fabric-api.md §3–§5).

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde_json::{json, Map, Value};
use tessera_core::clock::UnixTime;
use tessera_core::ids::{AddressId, ResourceId};
use tessera_core::model::{NewResource, ResourceKind, SubscriberPatch, SubscriberProfile};
use tessera_core::service::{
    SubscriberGrant, TokenService, MAX_ALLOWED_ADDRESSES, SCOPE_SAT_REFRESH,
};
use tessera_core::Secret;
use utoipa::openapi::schema::Schema;
use utoipa::openapi::RefOr;
use utoipa::{PartialSchema, ToSchema};
use uuid::Uuid;

use super::{subscriber_patch, token_answer, token_pair};
use crate::error::{FabricError, FieldError};
use crate::extract::{AnyAuth, Caller, ClientAddr, ExpiryWindow, Fields, JsonBody, ProjectAuth};
use crate::openapi::schemas::{
    expiry, or_null, password, profile_properties, raw, FabricBadJson, FabricErrorBody,
    FabricTooLarge, FabricUnauthorized, FabricValidationErrors, NOT_BLANK,
};
use crate::state::AppState;

/// The subscriber to create or update, and the token's options (T1).
#[derive(Debug)]
pub(crate) struct SubscriberTokenRequest {
    reference: String,
    expire_at: Option<UnixTime>,
    application_id: Option<ResourceId>,
    password: Option<Secret<String>>,
    patch: SubscriberPatch,
    scope: Option<String>,
    fingerprint: Option<String>,
}

impl SubscriberTokenRequest {
    /// Reads and checks every member, reporting every bad one at once.
    fn read(body: Map<String, Value>, window: ExpiryWindow) -> Result<Self, FabricError> {
        let mut f = Fields::new(body);
        let reference = f.required_string("reference");
        let expire_at = f.expiry(&["expire_at", "expires_at"], window);
        let application_id = f.uuid("application_id");
        let password = f.password("password");
        let patch = subscriber_patch(&mut f, &["time_zone"]);
        let scope = f.string("scope");
        if scope.as_deref().is_some_and(|s| s != SCOPE_SAT_REFRESH) {
            f.errors.push(FieldError::invalid(
                "scope",
                &format!("must be {SCOPE_SAT_REFRESH}"),
            ));
        }
        let fingerprint = f.string("fingerprint");
        if fingerprint.as_deref().is_some_and(|fp| !is_fingerprint(fp)) {
            f.errors.push(FieldError::invalid(
                "fingerprint",
                "must be 43 characters of [A-Za-z0-9_-]",
            ));
        }
        f.finish()?;
        Ok(Self {
            reference: reference.ok_or_else(|| FieldError::missing("reference"))?,
            expire_at,
            application_id,
            password: password.map(Secret::new),
            patch,
            scope,
            fingerprint,
        })
    }
}

/// The window a grant's requested expiry must lie in.
fn expiry_window(svc: &TokenService) -> ExpiryWindow {
    ExpiryWindow {
        now: svc.clock().now(),
        max_lifetime: svc.policy().max_lifetime,
    }
}

/// A device fingerprint: base64url (no padding) of 32 bytes.
fn is_fingerprint(fp: &str) -> bool {
    fp.len() == 43
        && fp
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

impl PartialSchema for SubscriberTokenRequest {
    fn schema() -> RefOr<Schema> {
        let mut properties = Map::new();
        properties.insert(
            "reference".into(),
            json!({
                "type": "string", "maxLength": 1024, "pattern": NOT_BLANK,
                "description": "Identifies the subscriber in the project, often an email. A new \
                                subscriber gets it as its email; an existing one (matched by the \
                                reference it was created with, then by email, then by id; ASCII \
                                case-insensitively and otherwise byte for byte, with no Unicode \
                                case mapping or normalisation) is updated with the fields given.",
            }),
        );
        properties.insert(
            "expire_at".into(),
            or_null(expiry(
                "When the access token expires; two hours from now by default.",
            )),
        );
        properties.insert(
            "expires_at".into(),
            or_null(expiry("Alias of `expire_at`.")),
        );
        properties.insert(
            "application_id".into(),
            or_null(json!({ "type": "string", "format": "uuid",
                    "description": "An application of the project to bind the token to." })),
        );
        properties.insert("password".into(), password());
        properties.extend(profile_properties("time_zone"));
        properties.insert(
            "fingerprint".into(),
            or_null(json!({ "type": "string", "pattern": "^[A-Za-z0-9_-]{43}$",
                    "description": "Binds the token to a device (base64url of 32 bytes)." })),
        );
        properties.insert(
            "scope".into(),
            or_null(json!({ "type": "string", "enum": [SCOPE_SAT_REFRESH],
                    "description": "Lets the holder refresh from the browser; without \
                                    `fingerprint` the token lives at most 60 s." })),
        );
        raw(json!({
            "type": "object",
            "required": ["reference"],
            "description": "Unknown members are ignored.",
            "properties": properties,
        }))
    }
}

impl ToSchema for SubscriberTokenRequest {}

/// The subscriber's id and tokens.
// Written by hand by `token_pair`; Schemathesis checks every answer against this schema.
#[derive(ToSchema)]
#[allow(dead_code)] // Describes what `token_pair` writes by hand.
pub(crate) struct SubscriberTokenResponse {
    subscriber_id: Uuid,
    /// Access token (JWE, `typ` SAT).
    token: String,
    /// Refresh token (JWE, `typ` Refresh).
    refresh_token: String,
}

/// An access token and its refresh token.
// Written by hand by `token_pair`.
#[derive(ToSchema)]
#[allow(dead_code)] // Describes what `token_pair` writes by hand.
pub(crate) struct TokenPair {
    /// Access token (JWE, `typ` SAT).
    token: String,
    /// Refresh token (JWE, `typ` Refresh).
    refresh_token: String,
}

/// An access token without a refresh token.
// Written by hand by `token_answer`.
#[derive(ToSchema)]
#[allow(dead_code)] // Describes what `token_answer` writes by hand.
pub(crate) struct TokenOnly {
    /// Access token (JWE, `typ` SAT).
    token: String,
}

/// Create a subscriber token (T1)
///
/// Creates the subscriber named by `reference` (its email becomes the reference) or updates
/// the profile fields given, then issues an access token and a refresh token. Answers 200, not
/// 201, as the original does.
#[utoipa::path(post, path = "/api/fabric/subscribers/tokens", tag = "Tokens",
    operation_id = "createSubscriberToken", security(("projectBasic" = [])),
    request_body = SubscriberTokenRequest,
    responses(
        (status = 200, description = "The subscriber's tokens.", body = SubscriberTokenResponse),
        FabricBadJson, FabricUnauthorized, FabricTooLarge,
        (status = 422, body = FabricValidationErrors, description = "A bad field: e.g. \
         `missing_required_parameter` (`reference`), `invalid_parameter` (`expire_at`, \
         `password`, `scope`, `fingerprint`), `provided_id_is_unrecognized` \
         (`application_id`), `invalid_content_type`."),
    ))]
pub(crate) async fn subscriber_token(
    State(state): State<AppState>,
    ProjectAuth(project): ProjectAuth,
    JsonBody(body): JsonBody,
) -> Result<impl IntoResponse, FabricError> {
    let svc = &state.service;
    let request = SubscriberTokenRequest::read(body, expiry_window(svc))?;
    let reference = request.reference;
    let mut profile = SubscriberProfile {
        email: reference.clone(),
        ..SubscriberProfile::default()
    };
    request.patch.apply(&mut profile);
    let create = NewResource::build(
        svc.clock().as_ref(),
        project,
        ResourceKind::Subscriber,
        &reference,
        profile.display_name.clone(),
        Some(profile),
        Default::default(),
    );
    let grant = SubscriberGrant {
        reference,
        expire_at: request.expire_at,
        application_id: request.application_id,
        password: request.password,
        patch: request.patch,
        scope: request.scope,
        fingerprint: request.fingerprint,
    };
    let (sid, tokens) = svc.grant_subscriber(project, grant, create).await?;
    Ok(token_pair(StatusCode::OK, &tokens, Some(&sid.to_string())))
}

/// A refresh token to rotate (T2).
#[derive(Debug, ToSchema)]
pub(crate) struct RefreshRequest {
    #[schema(schema_with = refresh_token_schema)]
    refresh_token: String,
}

fn refresh_token_schema() -> RefOr<Schema> {
    raw(json!({
        "type": "string", "pattern": NOT_BLANK,
        "description": "A refresh token this project issued; any other is a 422 `token_invalid`.",
    }))
}

impl RefreshRequest {
    fn read(body: Map<String, Value>) -> Result<Self, FabricError> {
        Ok(Self {
            refresh_token: Fields::only_required_string(body, "refresh_token")?,
        })
    }
}

/// Refresh a subscriber token (T2)
///
/// Rotates a refresh token: both tokens are replaced and the presented one is spent.
/// Presenting a spent refresh token again within the grace window is answered as an honest
/// retry; after it, the whole session family is revoked.
#[utoipa::path(post, path = "/api/fabric/subscribers/tokens/refresh", tag = "Tokens",
    operation_id = "refreshSubscriberToken", security(("projectBasic" = [])),
    request_body = RefreshRequest,
    responses(
        (status = 201, description = "The new token pair.", body = TokenPair),
        FabricBadJson, FabricUnauthorized, FabricTooLarge,
        (status = 422, body = FabricValidationErrors, description =
         "`missing_required_parameter`, `not_a_refresh_token` (an access token was given), \
         `token_expired`, or `token_invalid` (unknown, spent, revoked, or another project's), \
         all on `refresh_token`."),
    ))]
pub(crate) async fn refresh_token(
    State(state): State<AppState>,
    ProjectAuth(project): ProjectAuth,
    JsonBody(body): JsonBody,
) -> Result<impl IntoResponse, FabricError> {
    let request = RefreshRequest::read(body)?;
    let tokens = state
        .service
        .refresh(project, &request.refresh_token)
        .await?;
    Ok(token_pair(StatusCode::CREATED, &tokens, None))
}

/// Reads `allowed_addresses`: an array of UUID strings, at most ten. The count is checked
/// before the ids so that eleven addresses always get the limit error.
fn allowed_addresses(f: &mut Fields) -> Option<Vec<AddressId>> {
    // Read in place: a copy of the array (ten strings) cost more than parsing the ids.
    let read = address_ids(f.raw(ALLOWED_ADDRESSES));
    read.map_err(|e| f.errors.push(e)).ok()
}

/// The guest grant's member naming its addresses.
const ALLOWED_ADDRESSES: &str = "allowed_addresses";

fn address_ids(raw: Option<&Value>) -> Result<Vec<AddressId>, FieldError> {
    let not_strings = || {
        FieldError::new(
            "not_an_array_of_strings",
            ALLOWED_ADDRESSES,
            "Allowed Addresses must be an array of strings",
        )
    };
    let items = match raw {
        None => return Err(FieldError::missing(ALLOWED_ADDRESSES)),
        Some(Value::Array(items)) => items,
        Some(_) => return Err(not_strings()),
    };
    if items.is_empty() {
        return Err(FieldError::missing(ALLOWED_ADDRESSES));
    }
    if items.len() > tessera_core::service::MAX_ALLOWED_ADDRESSES {
        return Err(FieldError::new(
            "allowed_address_limit_exceeded",
            ALLOWED_ADDRESSES,
            format!(
                "maximum number of allowed addresses is {}",
                tessera_core::service::MAX_ALLOWED_ADDRESSES
            ),
        ));
    }
    items
        .iter()
        .map(|item| match item.as_str().map(str::parse::<AddressId>) {
            Some(Ok(id)) => Ok(id),
            Some(Err(_)) => Err(FieldError::new(
                "unrecognized_fabric_addresses",
                ALLOWED_ADDRESSES,
                "Allowed Addresses contains an invalid address id",
            )),
            None => Err(not_strings()),
        })
        .collect()
}

/// The addresses a guest may reach (T3).
#[derive(Debug)]
pub(crate) struct GuestTokenRequest {
    allowed_addresses: Vec<AddressId>,
    expire_at: Option<UnixTime>,
}

impl GuestTokenRequest {
    fn read(body: Map<String, Value>, window: ExpiryWindow) -> Result<Self, FabricError> {
        let mut f = Fields::new(body);
        let addresses = allowed_addresses(&mut f);
        let expire_at = f.expiry(&["expire_at", "expires_at"], window);
        f.finish()?;
        Ok(Self {
            allowed_addresses: addresses.ok_or_else(|| FieldError::missing(ALLOWED_ADDRESSES))?,
            expire_at,
        })
    }
}

impl PartialSchema for GuestTokenRequest {
    fn schema() -> RefOr<Schema> {
        raw(json!({
            "type": "object",
            "required": [ALLOWED_ADDRESSES],
            "properties": {
                ALLOWED_ADDRESSES: {
                    "type": "array", "items": { "type": "string", "format": "uuid" },
                    "minItems": 1, "maxItems": MAX_ALLOWED_ADDRESSES,
                    "description": "Address ids of the project the guest may reach \
                                    (duplicates count once).",
                },
                "expire_at": or_null(expiry("When the access token expires; two hours from \
                                             now by default.")),
                "expires_at": or_null(expiry("Alias of `expire_at`.")),
            },
        }))
    }
}

impl ToSchema for GuestTokenRequest {}

/// Create a guest token (T3)
///
/// Issues a token pair for an anonymous visitor that may reach only the listed addresses of
/// the project.
#[utoipa::path(post, path = "/api/fabric/guests/tokens", tag = "Tokens",
    operation_id = "createGuestToken", security(("projectBasic" = [])),
    request_body = GuestTokenRequest,
    responses(
        (status = 201, description = "The guest's token pair.", body = TokenPair),
        FabricBadJson, FabricUnauthorized, FabricTooLarge,
        (status = 422, body = FabricValidationErrors, description =
         "`allowed_addresses` missing or empty (`missing_required_parameter`), too long \
         (`allowed_address_limit_exceeded`), not UUIDs (`unrecognized_fabric_addresses`), or \
         not all the project's (`must_belong_to_project`); or a bad `expire_at`."),
    ))]
pub(crate) async fn guest_token(
    State(state): State<AppState>,
    ProjectAuth(project): ProjectAuth,
    JsonBody(body): JsonBody,
) -> Result<impl IntoResponse, FabricError> {
    let svc = &state.service;
    let request = GuestTokenRequest::read(body, expiry_window(svc))?;
    let tokens = svc
        .grant_guest(project, request.allowed_addresses, request.expire_at)
        .await?;
    Ok(token_pair(StatusCode::CREATED, &tokens, None))
}

/// An address to invite to (T4).
#[derive(Debug)]
pub(crate) struct InviteRequest {
    address_id: AddressId,
    expires_at: Option<UnixTime>,
}

impl InviteRequest {
    fn read(body: Map<String, Value>, window: ExpiryWindow) -> Result<Self, FabricError> {
        let mut f = Fields::new(body);
        let address: Option<AddressId> = if f.raw("address_id").is_none() {
            f.errors.push(FieldError::missing("address_id"));
            None
        } else {
            match f.string("address_id").map(|s| s.parse()) {
                Some(Ok(a)) => Some(a),
                Some(Err(_)) => {
                    f.errors.push(FieldError::new(
                        "invalid_parameter",
                        "address_id",
                        "Address is invalid",
                    ));
                    None
                }
                None => None,
            }
        };
        let expires_at = f.expiry(&["expires_at", "expire_at"], window);
        f.finish()?;
        Ok(Self {
            address_id: address.ok_or_else(|| FieldError::missing("address_id"))?,
            expires_at,
        })
    }
}

impl PartialSchema for InviteRequest {
    fn schema() -> RefOr<Schema> {
        raw(json!({
            "type": "object",
            "required": ["address_id"],
            "properties": {
                "address_id": { "type": "string", "format": "uuid",
                                "description": "A subscriber address." },
                "expires_at": or_null(expiry("When the token expires (note the `s`); two \
                                              hours from now by default.")),
                "expire_at": or_null(expiry("Alias of `expires_at`.")),
            },
        }))
    }
}

impl ToSchema for InviteRequest {}

/// Create an invite token (T4)
///
/// Issues an access token (no refresh token) for one subscriber address. With Basic
/// credentials any subscriber address of the project qualifies; with a subscriber's Bearer SAT
/// only that subscriber's own address does.
#[utoipa::path(post, path = "/api/fabric/subscriber/invites", tag = "Tokens",
    operation_id = "createInviteToken",
    security(("projectBasic" = []), ("subscriberBearer" = [])),
    request_body = InviteRequest,
    responses(
        (status = 201, description = "The invite token.", body = TokenOnly),
        FabricBadJson, FabricUnauthorized, FabricTooLarge,
        (status = 422, body = FabricValidationErrors, description =
         "`address_id` missing, malformed, or not an address the caller may invite to \
         (`invalid_parameter`, \"Address is invalid\"); or a bad `expires_at`."),
    ))]
pub(crate) async fn invite_token(
    State(state): State<AppState>,
    AnyAuth(caller): AnyAuth,
    JsonBody(body): JsonBody,
) -> Result<impl IntoResponse, FabricError> {
    let svc = &state.service;
    let request = InviteRequest::read(body, expiry_window(svc))?;
    let inviter = match caller {
        Caller::Project(_) => None,
        Caller::Subscriber { subscriber, .. } => Some(subscriber),
    };
    let tokens = svc
        .grant_invite(
            caller.project(),
            request.address_id,
            request.expires_at,
            inviter,
        )
        .await?;
    Ok(token_answer(
        StatusCode::CREATED,
        &[("token", Some(tokens.access.expose()))],
    ))
}

/// A widget's token to exchange (T5).
#[derive(Debug, ToSchema)]
pub(crate) struct EmbedRequest {
    /// The widget's public token.
    #[schema(pattern = "^c2c_[0-9a-fA-F]{32}$")]
    token: String,
}

impl EmbedRequest {
    fn read(body: Map<String, Value>) -> Result<Self, FabricError> {
        Ok(Self {
            token: Fields::only_required_string(body, "token")?,
        })
    }
}

/// Exchange a click-to-call widget token (T5)
///
/// Public: any `Authorization` header is ignored. Exchanges a widget's `c2c_` token for a
/// short-lived access token restricted to the widget's addresses. Rate-limited per client
/// address.
#[utoipa::path(post, path = "/api/fabric/embeds/tokens", tag = "Tokens",
    operation_id = "createEmbedToken", request_body = EmbedRequest,
    responses(
        (status = 201, description = "The guest access token.", body = TokenOnly),
        FabricBadJson,
        (status = 403, description = "The widget is disabled.", body = FabricErrorBody),
        (status = 404, description = "No widget has this token.", body = FabricErrorBody),
        FabricTooLarge,
        (status = 422, body = FabricValidationErrors, description =
         "`token` missing (`missing_required_parameter`) or without the `c2c_` prefix \
         (`token_has_invalid_prefix`)."),
        (status = 429, body = FabricErrorBody,
         description = "Too many exchanges from this client address (`--embed-rate-per-minute`).",
         headers(("Retry-After" = u64, description = "Seconds until the next exchange is allowed."))),
    ))]
pub(crate) async fn embed_token(
    State(state): State<AppState>,
    ClientAddr(client): ClientAddr,
    JsonBody(body): JsonBody,
) -> Result<impl IntoResponse, FabricError> {
    state
        .embed_limiter
        .check(client)
        .map_err(FabricError::TooManyRequests)?;
    let request = EmbedRequest::read(body)?;
    let tokens = state.service.grant_embed(&request.token).await?;
    Ok(token_answer(
        StatusCode::CREATED,
        &[("token", Some(tokens.access.expose()))],
    ))
}
