//! Fabric token endpoints T1–T5 (fabric-api.md §3–§5).

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde_json::Value;
use tessera_core::ids::{AddressId, ResourceId};
use tessera_core::model::{NewResource, ResourceKind, SubscriberProfile};
use tessera_core::service::{SubscriberGrant, SCOPE_SAT_REFRESH};
use tessera_core::Secret;

use super::{subscriber_patch, token_answer, token_pair};
use crate::error::{FabricError, FieldError};
use crate::extract::{AnyAuth, Caller, Fields, JsonBody, ProjectAuth};
use crate::state::AppState;

/// T1 `POST /api/fabric/subscribers/tokens` → 200.
pub(crate) async fn subscriber_token(
    State(state): State<AppState>,
    ProjectAuth(project): ProjectAuth,
    JsonBody(body): JsonBody,
) -> Result<impl IntoResponse, FabricError> {
    let svc = &state.service;
    let now = svc.clock().now();
    let mut f = Fields::new(body);
    let reference = f.required_string("reference");
    let expire_at = f.expiry(&["expire_at", "expires_at"], now, svc.policy().max_lifetime);
    let application_id: Option<ResourceId> = f.uuid("application_id");
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
    if let Some(fp) = &fingerprint {
        if fp.len() != 43
            || !fp
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        {
            f.errors.push(FieldError::invalid(
                "fingerprint",
                "must be 43 characters of [A-Za-z0-9_-]",
            ));
        }
    }
    f.finish()?;
    let reference = reference.unwrap_or_default();
    let mut profile = SubscriberProfile {
        email: reference.clone(),
        ..SubscriberProfile::default()
    };
    patch.apply(&mut profile);
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
        expire_at,
        application_id,
        password: password.map(Secret::new),
        patch,
        scope,
        fingerprint,
    };
    let (sid, tokens) = svc.grant_subscriber(project, grant, create).await?;
    Ok(token_pair(StatusCode::OK, &tokens, Some(&sid.to_string())))
}

/// T2 `POST /api/fabric/subscribers/tokens/refresh` → 201.
pub(crate) async fn refresh_token(
    State(state): State<AppState>,
    ProjectAuth(project): ProjectAuth,
    JsonBody(body): JsonBody,
) -> Result<impl IntoResponse, FabricError> {
    let mut f = Fields::new(body);
    let token = f.required_string("refresh_token");
    f.finish()?;
    let tokens = state
        .service
        .refresh(project, token.as_deref().unwrap_or_default())
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

/// T3 `POST /api/fabric/guests/tokens` → 201.
pub(crate) async fn guest_token(
    State(state): State<AppState>,
    ProjectAuth(project): ProjectAuth,
    JsonBody(body): JsonBody,
) -> Result<impl IntoResponse, FabricError> {
    let svc = &state.service;
    let mut f = Fields::new(body);
    let addresses = allowed_addresses(&mut f);
    let expire_at = f.expiry(
        &["expire_at", "expires_at"],
        svc.clock().now(),
        svc.policy().max_lifetime,
    );
    f.finish()?;
    let tokens = svc
        .grant_guest(project, addresses.unwrap_or_default(), expire_at)
        .await?;
    Ok(token_pair(StatusCode::CREATED, &tokens, None))
}

/// T4 `POST /api/fabric/subscriber/invites` → 201. Basic (project scope: any subscriber
/// address) or a subscriber's Bearer SAT (only its own address).
pub(crate) async fn invite_token(
    State(state): State<AppState>,
    AnyAuth(caller): AnyAuth,
    JsonBody(body): JsonBody,
) -> Result<impl IntoResponse, FabricError> {
    let svc = &state.service;
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
    let expires_at = f.expiry(
        &["expires_at", "expire_at"],
        svc.clock().now(),
        svc.policy().max_lifetime,
    );
    f.finish()?;
    let inviter = match caller {
        Caller::Project(_) => None,
        Caller::Subscriber { subscriber, .. } => Some(subscriber),
    };
    let address = address.ok_or_else(|| FieldError::missing("address_id"))?;
    let tokens = svc
        .grant_invite(caller.project(), address, expires_at, inviter)
        .await?;
    Ok(token_answer(
        StatusCode::CREATED,
        &[("token", Some(tokens.access.expose()))],
    ))
}

/// T5 `POST /api/fabric/embeds/tokens` → 201. No authentication (any Authorization header is
/// ignored); rate-limited per client address.
pub(crate) async fn embed_token(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    JsonBody(body): JsonBody,
) -> Result<impl IntoResponse, FabricError> {
    state
        .embed_limiter
        .check(peer.ip())
        .map_err(FabricError::TooManyRequests)?;
    let mut f = Fields::new(body);
    let token = f.required_string("token");
    f.finish()?;
    let tokens = state
        .service
        .grant_embed(token.as_deref().unwrap_or_default())
        .await?;
    Ok(token_answer(
        StatusCode::CREATED,
        &[("token", Some(tokens.access.expose()))],
    ))
}
