//! Fabric resources: subscribers (§6), conference rooms, the generic resource views and
//! addresses (§7), with the pagination envelope (§8).

use std::collections::HashMap;

use axum::extract::rejection::QueryRejection;
use axum::extract::{MatchedPath, Query, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::Json;
use serde_json::{Map, Value};
use tessera_core::directory::NewSubscriber;
use tessera_core::ids::{ProjectId, ResourceId};
use tessera_core::model::*;
use tessera_core::Secret;

use super::{address_json, envelope, link_path, path_id, resource_json, subscriber_patch, Paging};
use crate::error::{FabricError, FieldError};
use crate::extract::{AnyAuth, Fields, JsonBody, PathParam, ProjectAuth};
use crate::state::AppState;

type QueryMap = Result<Query<HashMap<String, String>>, QueryRejection>;

fn query(q: QueryMap) -> Result<HashMap<String, String>, FabricError> {
    q.map(|Query(m)| m).map_err(|_| FabricError::BadRequest)
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
    let profile = subscriber_patch(&mut f, &["timezone", "time_zone"]);
    f.finish()?;
    let (Some(email), password) = (email, password) else {
        // `finish` reported the missing email.
        return Err(FabricError::Internal("validated email missing".into()));
    };
    let new = NewSubscriber {
        email,
        password: password.map(Secret::new),
        profile,
    };
    let r = state.directory.create_subscriber(project, new).await?;
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
    let page = state.directory.list(project, kind, paging.page).await?;
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

/// One resource of the project by its path id; with `kind`, only of that kind.
async fn get_kind(
    state: &AppState,
    project: ProjectId,
    id: &str,
    kind: Option<ResourceKind>,
) -> Result<Resource, FabricError> {
    Ok(state.directory.get(project, path_id(id)?, kind).await?)
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
    let r = state
        .directory
        .update_subscriber(project, id, patch, password.map(Secret::new))
        .await?;
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
    state.directory.delete(project, path_id(id)?, kind).await?;
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
    let Some(name) = name else {
        // `finish` reported the missing name.
        return Err(FabricError::Internal("validated name missing".into()));
    };
    let r = state
        .directory
        .create_room(project, &name, display_name, room_data(f.into_map()))
        .await?;
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
    let r = state.directory.update_room(project, id, patch).await?;
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
    let (r, page) = state
        .directory
        .resource_addresses(project, path_id(&id)?, None, paging.page)
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
        ..Default::default()
    };
    let page = state
        .directory
        .addresses(caller, query, paging.page)
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
    let a = state.directory.address(caller, path_id(&id)?).await?;
    Ok(Json(address_json(&a)))
}
