//! Fabric resources: subscribers (§6), conference rooms, the generic resource views and
//! addresses (§7), with the pagination envelope (§8).

use std::collections::HashMap;

use axum::extract::rejection::QueryRejection;
use axum::extract::{MatchedPath, Query, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::Json;
use serde_json::{Map, Value};
use tessera_core::ids::{AddressId, ProjectId, ResourceId};
use tessera_core::model::*;
use tessera_core::Secret;

use super::{address_json, envelope, link_path, path_id, resource_json, subscriber_patch, Paging};
use crate::error::{FabricError, FieldError};
use crate::extract::{AnyAuth, Caller, Fields, JsonBody, PathParam, ProjectAuth};
use crate::state::AppState;

type QueryMap = Result<Query<HashMap<String, String>>, QueryRejection>;

fn query(q: QueryMap) -> Result<HashMap<String, String>, FabricError> {
    q.map(|Query(m)| m).map_err(|_| FabricError::BadRequest)
}

async fn hash_password(
    state: &AppState,
    pw: Option<String>,
) -> Result<Option<String>, FabricError> {
    match pw {
        Some(pw) => Ok(Some(state.service.passwords().hash(Secret::new(pw)).await?)),
        None => Ok(None),
    }
}

/// S2 `POST /api/fabric/resources/subscribers` → 201.
pub(crate) async fn create_subscriber(
    State(state): State<AppState>,
    ProjectAuth(project): ProjectAuth,
    JsonBody(body): JsonBody,
) -> Result<impl IntoResponse, FabricError> {
    let mut f = Fields::new(body);
    let email = f.required_string("email");
    let password = f.password("password");
    let patch = subscriber_patch(&mut f, &["timezone", "time_zone"]);
    f.finish()?;
    let email = email.unwrap_or_default();
    let mut profile = SubscriberProfile {
        email: email.clone(),
        ..Default::default()
    };
    patch.apply(&mut profile);
    let mut new = NewResource::build(
        state.service.clock().as_ref(),
        project,
        ResourceKind::Subscriber,
        &email,
        profile.display_name.clone(),
        Some(profile),
        Map::new(),
    );
    // Without a password the subscriber simply has none to log in with, which is as safe as
    // the random one the original would set, and costs no hashing.
    new.password_hash = hash_password(&state, password).await?;
    let r = new.resource.clone();
    state.service.store().create_resource(new).await?;
    Ok((StatusCode::CREATED, Json(resource_json(&r))))
}

/// S1 `GET /api/fabric/resources/subscribers`.
pub(crate) async fn list_subscribers(
    state: State<AppState>,
    auth: ProjectAuth,
    matched: MatchedPath,
    q: QueryMap,
) -> Result<impl IntoResponse, FabricError> {
    list_kind(state, auth, matched, q, Some(ResourceKind::Subscriber)).await
}

/// `GET /api/fabric/resources/conference_rooms`.
pub(crate) async fn list_rooms(
    state: State<AppState>,
    auth: ProjectAuth,
    matched: MatchedPath,
    q: QueryMap,
) -> Result<impl IntoResponse, FabricError> {
    list_kind(state, auth, matched, q, Some(ResourceKind::Room)).await
}

/// `GET /api/fabric/resources`: every resource of the project.
pub(crate) async fn list_resources(
    state: State<AppState>,
    auth: ProjectAuth,
    matched: MatchedPath,
    q: QueryMap,
) -> Result<impl IntoResponse, FabricError> {
    list_kind(state, auth, matched, q, None).await
}

async fn list_kind(
    State(state): State<AppState>,
    ProjectAuth(project): ProjectAuth,
    matched: MatchedPath,
    q: QueryMap,
    kind: Option<ResourceKind>,
) -> Result<Json<Value>, FabricError> {
    let q = query(q)?;
    let paging = Paging::parse(&q)?;
    let page = state
        .service
        .store()
        .list_resources(project, kind, paging.page)
        .await?;
    Ok(Json(envelope(
        state.config.public_url.as_deref(),
        &link_path(&matched, None),
        &[],
        &paging,
        &page,
        |r| r.id.0,
        resource_json,
    )))
}

async fn get_kind(
    state: &AppState,
    project: ProjectId,
    id: &str,
    kind: Option<ResourceKind>,
) -> Result<Resource, FabricError> {
    let id: ResourceId = path_id(id)?;
    let r = state.service.store().get_resource(project, id).await?;
    if kind.is_some_and(|k| k != r.kind) {
        return Err(FabricError::NotFound);
    }
    Ok(r)
}

/// S3 `GET /api/fabric/resources/subscribers/{id}`.
pub(crate) async fn get_subscriber(
    State(state): State<AppState>,
    ProjectAuth(project): ProjectAuth,
    PathParam(id): PathParam<String>,
) -> Result<impl IntoResponse, FabricError> {
    let r = get_kind(&state, project, &id, Some(ResourceKind::Subscriber)).await?;
    Ok(Json(resource_json(&r)))
}

/// S4 `PUT /api/fabric/resources/subscribers/{id}`: a merge update (fabric-api.md §13 item 10).
pub(crate) async fn update_subscriber(
    State(state): State<AppState>,
    ProjectAuth(project): ProjectAuth,
    PathParam(id): PathParam<String>,
    JsonBody(body): JsonBody,
) -> Result<impl IntoResponse, FabricError> {
    let id: ResourceId = path_id(&id)?;
    let mut f = Fields::new(body);
    let email = f.string("email");
    if email.as_deref().is_some_and(|e| e.trim().is_empty()) {
        f.errors.push(FieldError::missing("email"));
    }
    let password = f.password("password");
    let mut patch = subscriber_patch(&mut f, &["timezone", "time_zone"]);
    patch.email = email;
    f.finish()?;
    // Check existence first so an unknown id costs no password hashing.
    get_kind(
        &state,
        project,
        &id.to_string(),
        Some(ResourceKind::Subscriber),
    )
    .await?;
    let hash = hash_password(&state, password).await?;
    let changed = hash.is_some();
    let now = state.service.clock().now();
    let r = state
        .service
        .store()
        .update_subscriber(project, id, patch, hash, now)
        .await?;
    if changed {
        state.service.audit_credential(
            project,
            format!("project:{project}"),
            "subscriber.password_changed",
            format!("subscriber:{id}"),
        );
    }
    Ok(Json(resource_json(&r)))
}

/// S5 `DELETE /api/fabric/resources/subscribers/{id}` → 204; revokes its sessions.
pub(crate) async fn delete_subscriber(
    state: State<AppState>,
    auth: ProjectAuth,
    PathParam(id): PathParam<String>,
) -> Result<impl IntoResponse, FabricError> {
    delete_kind(state, auth, &id, Some(ResourceKind::Subscriber)).await
}

/// `DELETE /api/fabric/resources/conference_rooms/{id}` → 204.
pub(crate) async fn delete_room(
    state: State<AppState>,
    auth: ProjectAuth,
    PathParam(id): PathParam<String>,
) -> Result<impl IntoResponse, FabricError> {
    delete_kind(state, auth, &id, Some(ResourceKind::Room)).await
}

/// `DELETE /api/fabric/resources/{id}` → 204, whatever the kind.
pub(crate) async fn delete_resource(
    state: State<AppState>,
    auth: ProjectAuth,
    PathParam(id): PathParam<String>,
) -> Result<impl IntoResponse, FabricError> {
    delete_kind(state, auth, &id, None).await
}

async fn delete_kind(
    State(state): State<AppState>,
    ProjectAuth(project): ProjectAuth,
    id: &str,
    kind: Option<ResourceKind>,
) -> Result<StatusCode, FabricError> {
    let r = get_kind(&state, project, id, kind).await?;
    let now = state.service.clock().now();
    state
        .service
        .store()
        .delete_resource(project, r.id, r.kind, now)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /api/fabric/resources/{id}`.
pub(crate) async fn get_resource(
    State(state): State<AppState>,
    ProjectAuth(project): ProjectAuth,
    PathParam(id): PathParam<String>,
) -> Result<impl IntoResponse, FabricError> {
    Ok(Json(resource_json(
        &get_kind(&state, project, &id, None).await?,
    )))
}

/// Room fields managed by Tessera itself; everything else a client sends is stored as given.
const ROOM_OWN_FIELDS: [&str; 4] = ["id", "name", "display_name", "type"];

fn room_data(map: Map<String, Value>) -> Map<String, Value> {
    map.into_iter()
        .filter(|(k, _)| !ROOM_OWN_FIELDS.contains(&k.as_str()))
        .collect()
}

/// `POST /api/fabric/resources/conference_rooms` → 201.
pub(crate) async fn create_room(
    State(state): State<AppState>,
    ProjectAuth(project): ProjectAuth,
    JsonBody(body): JsonBody,
) -> Result<impl IntoResponse, FabricError> {
    let mut f = Fields::new(body);
    let name = f.required_string("name");
    let display_name = f.string("display_name");
    f.finish()?;
    let name = name.unwrap_or_default();
    let display = display_name.unwrap_or_else(|| name.clone());
    let new = NewResource::build(
        state.service.clock().as_ref(),
        project,
        ResourceKind::Room,
        &name,
        display,
        None,
        room_data(f.into_map()),
    );
    let r = new.resource.clone();
    state.service.store().create_resource(new).await?;
    Ok((StatusCode::CREATED, Json(resource_json(&r))))
}

/// `GET /api/fabric/resources/conference_rooms/{id}`.
pub(crate) async fn get_room(
    State(state): State<AppState>,
    ProjectAuth(project): ProjectAuth,
    PathParam(id): PathParam<String>,
) -> Result<impl IntoResponse, FabricError> {
    Ok(Json(resource_json(
        &get_kind(&state, project, &id, Some(ResourceKind::Room)).await?,
    )))
}

/// `PUT /api/fabric/resources/conference_rooms/{id}`: a merge update.
pub(crate) async fn update_room(
    State(state): State<AppState>,
    ProjectAuth(project): ProjectAuth,
    PathParam(id): PathParam<String>,
    JsonBody(body): JsonBody,
) -> Result<impl IntoResponse, FabricError> {
    let id: ResourceId = path_id(&id)?;
    let mut f = Fields::new(body);
    let name = f.string("name");
    if name.as_deref().is_some_and(|n| n.trim().is_empty()) {
        f.errors.push(FieldError::missing("name"));
    }
    let display_name = f.string("display_name");
    f.finish()?;
    let patch = RoomPatch {
        name,
        display_name,
        data: room_data(f.into_map()),
    };
    let now = state.service.clock().now();
    let r = state
        .service
        .store()
        .update_room(project, id, ResourceKind::Room, patch, now)
        .await?;
    Ok(Json(resource_json(&r)))
}

/// `GET /api/fabric/resources/{id}/addresses` (and the subscriber and room forms).
pub(crate) async fn resource_addresses(
    State(state): State<AppState>,
    ProjectAuth(project): ProjectAuth,
    PathParam(id): PathParam<String>,
    matched: MatchedPath,
    q: QueryMap,
) -> Result<impl IntoResponse, FabricError> {
    let q = query(q)?;
    let paging = Paging::parse(&q)?;
    let r = get_kind(&state, project, &id, None).await?;
    let query = AddressQuery {
        resource_id: Some(r.id),
        ..Default::default()
    };
    let page = state
        .service
        .store()
        .list_addresses(project, query, paging.page)
        .await?;
    Ok(Json(envelope(
        state.config.public_url.as_deref(),
        &link_path(&matched, Some(r.id.0)),
        &[],
        &paging,
        &page,
        |a| a.id.0,
        address_json,
    )))
}

/// A1 `GET /api/fabric/addresses`, filters `type` and `display_name`. Basic sees the project's
/// addresses; a subscriber's Bearer sees rooms and applications plus its own address.
pub(crate) async fn list_addresses(
    State(state): State<AppState>,
    AnyAuth(caller): AnyAuth,
    matched: MatchedPath,
    q: QueryMap,
) -> Result<impl IntoResponse, FabricError> {
    let q = query(q)?;
    let paging = Paging::parse(&q)?;
    let kind = match q.get("type").map(String::as_str) {
        None | Some("") => None,
        Some(t) => match ResourceKind::parse(t) {
            Some(k) => Some(k),
            // A type no address has (`call`, say) is a valid filter that matches nothing.
            None if t.len() <= 32 => {
                return Ok(Json(empty_envelope(
                    state.config.public_url.as_deref(),
                    &link_path(&matched, None),
                    &paging,
                    &q,
                )))
            }
            None => return Err(FieldError::invalid("type", "is invalid").into()),
        },
    };
    let display_name = q.get("display_name").filter(|d| !d.is_empty()).cloned();
    let query = AddressQuery {
        kind,
        display_name: display_name.clone(),
        resource_id: None,
        visible_to: match caller {
            Caller::Project(_) => None,
            Caller::Subscriber { subscriber, .. } => Some(subscriber),
        },
    };
    let page = state
        .service
        .store()
        .list_addresses(caller.project(), query, paging.page)
        .await?;
    let filters = [
        ("type", q.get("type").cloned()),
        ("display_name", display_name),
    ];
    Ok(Json(envelope(
        state.config.public_url.as_deref(),
        &link_path(&matched, None),
        &filters,
        &paging,
        &page,
        |a| a.id.0,
        address_json,
    )))
}

fn empty_envelope(
    public_url: Option<&str>,
    path: &str,
    paging: &Paging,
    q: &HashMap<String, String>,
) -> Value {
    let page: PageOf<Address> = PageOf {
        items: Vec::new(),
        more: false,
    };
    envelope(
        public_url,
        path,
        &[("type", q.get("type").cloned())],
        paging,
        &page,
        |a| a.id.0,
        address_json,
    )
}

/// A2 `GET /api/fabric/addresses/{id}`: a bare `FabricAddress`.
pub(crate) async fn get_address(
    State(state): State<AppState>,
    AnyAuth(caller): AnyAuth,
    PathParam(id): PathParam<String>,
) -> Result<impl IntoResponse, FabricError> {
    let id: AddressId = path_id(&id)?;
    let a = state
        .service
        .store()
        .get_address(caller.project(), id)
        .await?;
    if let Caller::Subscriber { subscriber, .. } = caller {
        if a.kind == ResourceKind::Subscriber && a.resource_id != subscriber {
            return Err(FabricError::NotFound);
        }
    }
    Ok(Json(address_json(&a)))
}
