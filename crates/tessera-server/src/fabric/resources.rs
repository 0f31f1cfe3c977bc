//! Fabric resources: subscribers (§6), conference rooms, the generic resource views and
//! addresses (§7), with the pagination envelope (§8).

use std::collections::HashMap;

use axum::extract::rejection::QueryRejection;
use axum::extract::{MatchedPath, Query, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::Json;
use serde_json::{json, Map, Value};
use tessera_core::directory::NewSubscriber;
use tessera_core::ids::{ProjectId, ResourceId};
use tessera_core::model::*;
use tessera_core::Secret;
use utoipa::openapi::path::{Parameter, ParameterIn};
use utoipa::IntoParams;

use super::{address_json, envelope, link_path, path_id, resource_json, subscriber_patch, Paging};
use crate::error::{FabricError, FieldError};
use crate::extract::{AnyAuth, Fields, JsonBody, PathParam, ProjectAuth};
use crate::openapi::schemas::{
    address_type_filter, address_types, date_time, json_schema, list_of, name_text, or_null,
    password, profile_properties, query_param, schema_ref, string, text, uuid, FabricBadJson,
    FabricBadPaging, FabricBadQuery, FabricDeleted, FabricNotFound, FabricTooLarge,
    FabricUnauthorized, FabricValidationErrors,
};
use crate::state::AppState;

type QueryMap = Result<Query<HashMap<String, String>>, QueryRejection>;

fn query(q: QueryMap) -> Result<HashMap<String, String>, FabricError> {
    q.map(|Query(m)| m).map_err(|_| FabricError::BadRequest)
}

impl Paging {
    /// Reads the paging parameters of a list's query string.
    fn read(q: QueryMap) -> Result<Self, FabricError> {
        Paging::parse(&query(q)?)
    }
}

/// A new subscriber (S2).
#[derive(Debug)]
pub(crate) struct SubscriberCreate {
    email: String,
    password: Option<Secret<String>>,
    profile: SubscriberPatch,
}

impl SubscriberCreate {
    /// Reads and checks every member, reporting every bad one at once.
    fn read(body: Map<String, Value>) -> Result<Self, FabricError> {
        let mut f = Fields::new(body);
        let email = f.required_string("email");
        let password = f.password("password");
        let profile = subscriber_patch(&mut f, &["timezone", "time_zone"]);
        f.finish()?;
        Ok(Self {
            email: email.ok_or_else(|| FieldError::missing("email"))?,
            password: password.map(Secret::new),
            profile,
        })
    }
}

/// A create body's schema: the update body `U`'s members, with the string `required` required.
fn create_schema<U: utoipa::ToSchema>(
    required: &str,
) -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
    crate::openapi::schemas::raw(json!({ "allOf": [
        schema_ref(&U::name()),
        { "required": [required], "properties": { required: { "type": "string" } } },
    ] }))
}

impl utoipa::PartialSchema for SubscriberCreate {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        create_schema::<SubscriberUpdate>("email")
    }
}

impl utoipa::ToSchema for SubscriberCreate {
    fn schemas(
        out: &mut Vec<(
            String,
            utoipa::openapi::RefOr<utoipa::openapi::schema::Schema>,
        )>,
    ) {
        crate::openapi::schemas::add::<SubscriberUpdate>(out);
    }
}

/// Create a subscriber (S2)
///
/// Also creates the subscriber's address (`/private/<email>`). Without a password the
/// subscriber has none to log in with.
#[utoipa::path(post, path = "/api/fabric/resources/subscribers", tag = "Subscribers",
    operation_id = "createSubscriber", security(("projectBasic" = [])),
    request_body = inline(SubscriberCreate),
    responses(
        (status = 201, description = "The new subscriber.", body = SubscriberResponse),
        FabricBadJson, FabricUnauthorized, FabricTooLarge,
        (status = 422, body = FabricValidationErrors, description = "`email` missing, a bad \
         `password` (8 to 72 characters), a non-string field, or `email` already taken in the \
         project (`not_unique_within_project`)."),
    ))]
pub(crate) async fn create_subscriber(
    State(state): State<AppState>,
    ProjectAuth(project): ProjectAuth,
    JsonBody(body): JsonBody,
) -> Result<impl IntoResponse, FabricError> {
    let request = SubscriberCreate::read(body)?;
    let new = NewSubscriber {
        email: request.email,
        password: request.password,
        profile: request.profile,
    };
    let r = state.directory.create_subscriber(project, new).await?;
    Ok((StatusCode::CREATED, Json(resource_json(&r))))
}

/// List subscribers (S1)
///
/// Oldest first.
#[utoipa::path(get, path = "/api/fabric/resources/subscribers", tag = "Subscribers",
    operation_id = "listSubscribers", security(("projectBasic" = [])), params(Paging),
    responses(
        (status = 200, description = "A page of subscribers.", body = SubscriberList),
        FabricBadQuery, FabricUnauthorized, FabricBadPaging,
    ))]
pub(crate) async fn list_subscribers(
    state: State<AppState>,
    auth: ProjectAuth,
    matched: MatchedPath,
    q: QueryMap,
) -> Result<impl IntoResponse, FabricError> {
    let paging = Paging::read(q)?;
    list_kind(state, auth, matched, paging, Some(ResourceKind::Subscriber)).await
}

/// List conference rooms
///
/// Oldest first.
#[utoipa::path(get, path = "/api/fabric/resources/conference_rooms", tag = "Conference rooms",
    operation_id = "listConferenceRooms", security(("projectBasic" = [])), params(Paging),
    responses(
        (status = 200, description = "A page of conference rooms.", body = ConferenceRoomList),
        FabricBadQuery, FabricUnauthorized, FabricBadPaging,
    ))]
pub(crate) async fn list_rooms(
    state: State<AppState>,
    auth: ProjectAuth,
    matched: MatchedPath,
    q: QueryMap,
) -> Result<impl IntoResponse, FabricError> {
    let paging = Paging::read(q)?;
    list_kind(state, auth, matched, paging, Some(ResourceKind::Room)).await
}

/// List resources
///
/// Every resource of the project, oldest first.
#[utoipa::path(get, path = "/api/fabric/resources", tag = "Resources",
    operation_id = "listResources", security(("projectBasic" = [])), params(Paging),
    responses(
        (status = 200, description = "A page of resources.", body = ResourceList),
        FabricBadQuery, FabricUnauthorized, FabricBadPaging,
    ))]
pub(crate) async fn list_resources(
    state: State<AppState>,
    auth: ProjectAuth,
    matched: MatchedPath,
    q: QueryMap,
) -> Result<impl IntoResponse, FabricError> {
    let paging = Paging::read(q)?;
    list_kind(state, auth, matched, paging, None).await
}

async fn list_kind(
    State(state): State<AppState>,
    ProjectAuth(project): ProjectAuth,
    matched: MatchedPath,
    paging: Paging,
    kind: Option<ResourceKind>,
) -> Result<Json<Value>, FabricError> {
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

/// Get a subscriber (S3)
#[utoipa::path(get, path = "/api/fabric/resources/subscribers/{id}", tag = "Subscribers",
    operation_id = "getSubscriber", security(("projectBasic" = [])),
    params(("id" = Uuid, Path, description = "Subscriber id (the same UUID as its resource id).")),
    responses(
        (status = 200, description = "The subscriber.", body = SubscriberResponse),
        FabricUnauthorized, FabricNotFound,
    ))]
pub(crate) async fn get_subscriber(
    State(state): State<AppState>,
    ProjectAuth(project): ProjectAuth,
    PathParam(id): PathParam<String>,
) -> Result<impl IntoResponse, FabricError> {
    let r = get_kind(&state, project, &id, Some(ResourceKind::Subscriber)).await?;
    Ok(Json(resource_json(&r)))
}

/// A merge update of a subscriber (S4): only the members given change.
#[derive(Debug)]
pub(crate) struct SubscriberUpdate {
    password: Option<Secret<String>>,
    patch: SubscriberPatch,
}

impl SubscriberUpdate {
    /// Reads and checks every member, reporting every bad one at once.
    fn read(body: Map<String, Value>) -> Result<Self, FabricError> {
        let mut f = Fields::new(body);
        let email = f.string("email");
        if email.as_deref().is_some_and(|e| e.trim().is_empty()) {
            f.errors.push(FieldError::missing("email"));
        }
        let password = f.password("password");
        let mut patch = subscriber_patch(&mut f, &["timezone", "time_zone"]);
        patch.email = email;
        f.finish()?;
        Ok(Self {
            password: password.map(Secret::new),
            patch,
        })
    }
}

impl utoipa::PartialSchema for SubscriberUpdate {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        let mut properties = Map::new();
        properties.insert(
            "email".into(),
            or_null(name_text("Unique in the project; required on create.")),
        );
        properties.insert("password".into(), password());
        properties.extend(profile_properties("timezone"));
        properties.insert("time_zone".into(), or_null(text("Alias of `timezone`.")));
        crate::openapi::schemas::raw(json!({
            "type": "object",
            "description": "Unknown members are ignored. On update only the members sent \
                            change; a null member counts as absent.",
            "properties": properties,
        }))
    }
}

impl utoipa::ToSchema for SubscriberUpdate {
    fn name() -> std::borrow::Cow<'static, str> {
        "SubscriberRequest".into()
    }
}

/// Update a subscriber (S4)
///
/// A merge: only the members sent change. Changing the password revokes the subscriber's
/// sessions.
#[utoipa::path(put, path = "/api/fabric/resources/subscribers/{id}", tag = "Subscribers",
    operation_id = "updateSubscriber", security(("projectBasic" = [])),
    params(("id" = Uuid, Path, description = "Subscriber id (the same UUID as its resource id).")),
    request_body = SubscriberUpdate,
    responses(
        (status = 200, description = "The updated subscriber.", body = SubscriberResponse),
        FabricBadJson, FabricUnauthorized, FabricNotFound, FabricTooLarge,
        (status = 422, body = FabricValidationErrors, description = "An empty `email`, a bad \
         `password`, a non-string field, or an `email` taken by another subscriber."),
    ))]
pub(crate) async fn update_subscriber(
    State(state): State<AppState>,
    ProjectAuth(project): ProjectAuth,
    PathParam(id): PathParam<String>,
    JsonBody(body): JsonBody,
) -> Result<impl IntoResponse, FabricError> {
    let id: ResourceId = path_id(&id)?;
    let request = SubscriberUpdate::read(body)?;
    let r = state
        .directory
        .update_subscriber(project, id, request.patch, request.password)
        .await?;
    Ok(Json(resource_json(&r)))
}

/// Delete a subscriber (S5)
///
/// Also deletes its address and revokes its sessions.
#[utoipa::path(delete, path = "/api/fabric/resources/subscribers/{id}", tag = "Subscribers",
    operation_id = "deleteSubscriber", security(("projectBasic" = [])),
    params(("id" = Uuid, Path, description = "Subscriber id (the same UUID as its resource id).")),
    responses(FabricDeleted, FabricUnauthorized, FabricNotFound))]
pub(crate) async fn delete_subscriber(
    state: State<AppState>,
    auth: ProjectAuth,
    PathParam(id): PathParam<String>,
) -> Result<impl IntoResponse, FabricError> {
    delete_kind(state, auth, &id, Some(ResourceKind::Subscriber)).await
}

/// Delete a conference room
///
/// Also deletes its address.
#[utoipa::path(delete, path = "/api/fabric/resources/conference_rooms/{id}",
    tag = "Conference rooms", operation_id = "deleteConferenceRoom",
    security(("projectBasic" = [])),
    params(("id" = Uuid, Path, description = "Conference room (resource) id.")),
    responses(FabricDeleted, FabricUnauthorized, FabricNotFound))]
pub(crate) async fn delete_room(
    state: State<AppState>,
    auth: ProjectAuth,
    PathParam(id): PathParam<String>,
) -> Result<impl IntoResponse, FabricError> {
    delete_kind(state, auth, &id, Some(ResourceKind::Room)).await
}

/// Delete a resource
///
/// Whatever its kind; deleting a subscriber revokes its sessions.
#[utoipa::path(delete, path = "/api/fabric/resources/{id}", tag = "Resources",
    operation_id = "deleteResource", security(("projectBasic" = [])),
    params(("id" = Uuid, Path, description = "Resource id.")),
    responses(FabricDeleted, FabricUnauthorized, FabricNotFound))]
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

/// Get a resource
#[utoipa::path(get, path = "/api/fabric/resources/{id}", tag = "Resources",
    operation_id = "getResource", security(("projectBasic" = [])),
    params(("id" = Uuid, Path, description = "Resource id.")),
    responses(
        (status = 200, description = "The resource.", body = ResourceDoc),
        FabricUnauthorized, FabricNotFound,
    ))]
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

/// A new conference room.
#[derive(Debug)]
pub(crate) struct RoomCreate {
    name: String,
    display_name: Option<String>,
    /// The other members, stored as given.
    data: Map<String, Value>,
}

impl RoomCreate {
    /// Reads and checks every member, reporting every bad one at once.
    fn read(body: Map<String, Value>) -> Result<Self, FabricError> {
        let mut f = Fields::new(body);
        let name = f.required_string("name");
        let display_name = f.string("display_name");
        f.finish()?;
        Ok(Self {
            name: name.ok_or_else(|| FieldError::missing("name"))?,
            display_name,
            data: room_data(f.into_map()),
        })
    }
}

impl utoipa::PartialSchema for RoomCreate {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        create_schema::<RoomUpdate>("name")
    }
}

impl utoipa::ToSchema for RoomCreate {
    fn schemas(
        out: &mut Vec<(
            String,
            utoipa::openapi::RefOr<utoipa::openapi::schema::Schema>,
        )>,
    ) {
        crate::openapi::schemas::add::<RoomUpdate>(out);
    }
}

/// Create a conference room
///
/// Also creates the room's address (`/public/<name>`).
#[utoipa::path(post, path = "/api/fabric/resources/conference_rooms", tag = "Conference rooms",
    operation_id = "createConferenceRoom", security(("projectBasic" = [])),
    request_body = inline(RoomCreate),
    responses(
        (status = 201, description = "The new room.", body = ConferenceRoomResponse),
        FabricBadJson, FabricUnauthorized, FabricTooLarge,
        (status = 422, body = FabricValidationErrors,
         description = "`name` missing or a non-string `name`/`display_name`."),
    ))]
pub(crate) async fn create_room(
    State(state): State<AppState>,
    ProjectAuth(project): ProjectAuth,
    JsonBody(body): JsonBody,
) -> Result<impl IntoResponse, FabricError> {
    let request = RoomCreate::read(body)?;
    let r = state
        .directory
        .create_room(project, &request.name, request.display_name, request.data)
        .await?;
    Ok((StatusCode::CREATED, Json(resource_json(&r))))
}

/// Get a conference room
#[utoipa::path(get, path = "/api/fabric/resources/conference_rooms/{id}",
    tag = "Conference rooms", operation_id = "getConferenceRoom",
    security(("projectBasic" = [])),
    params(("id" = Uuid, Path, description = "Conference room (resource) id.")),
    responses(
        (status = 200, description = "The room.", body = ConferenceRoomResponse),
        FabricUnauthorized, FabricNotFound,
    ))]
pub(crate) async fn get_room(
    State(state): State<AppState>,
    ProjectAuth(project): ProjectAuth,
    PathParam(id): PathParam<String>,
) -> Result<impl IntoResponse, FabricError> {
    Ok(Json(resource_json(
        &get_kind(&state, project, &id, Some(ResourceKind::Room)).await?,
    )))
}

/// A merge update of a conference room: only the members given change.
#[derive(Debug)]
pub(crate) struct RoomUpdate {
    patch: RoomPatch,
}

impl RoomUpdate {
    /// Reads and checks every member, reporting every bad one at once.
    fn read(body: Map<String, Value>) -> Result<Self, FabricError> {
        let mut f = Fields::new(body);
        let name = f.string("name");
        if name.as_deref().is_some_and(|n| n.trim().is_empty()) {
            f.errors.push(FieldError::missing("name"));
        }
        let display_name = f.string("display_name");
        f.finish()?;
        Ok(Self {
            patch: RoomPatch {
                name,
                display_name,
                data: room_data(f.into_map()),
            },
        })
    }
}

impl utoipa::PartialSchema for RoomUpdate {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        crate::openapi::schemas::raw(json!({
            "type": "object",
            "description": "Members other than `name` and `display_name` are stored as given \
                            (except `id` and `type`). On update only the members sent change.",
            "properties": {
                "name": or_null(name_text("Required on create; names the address \
                                           (`/public/<name>`).")),
                "display_name": or_null(text("Defaults to `name`.")),
            },
            "additionalProperties": true,
        }))
    }
}

impl utoipa::ToSchema for RoomUpdate {
    fn name() -> std::borrow::Cow<'static, str> {
        "ConferenceRoomRequest".into()
    }
}

/// Update a conference room
///
/// A merge: only the members sent change.
#[utoipa::path(put, path = "/api/fabric/resources/conference_rooms/{id}",
    tag = "Conference rooms", operation_id = "updateConferenceRoom",
    security(("projectBasic" = [])),
    params(("id" = Uuid, Path, description = "Conference room (resource) id.")),
    request_body = RoomUpdate,
    responses(
        (status = 200, description = "The updated room.", body = ConferenceRoomResponse),
        FabricBadJson, FabricUnauthorized, FabricNotFound, FabricTooLarge,
        (status = 422, body = FabricValidationErrors,
         description = "An empty `name` or a non-string `name`/`display_name`."),
    ))]
pub(crate) async fn update_room(
    State(state): State<AppState>,
    ProjectAuth(project): ProjectAuth,
    PathParam(id): PathParam<String>,
    JsonBody(body): JsonBody,
) -> Result<impl IntoResponse, FabricError> {
    let id: ResourceId = path_id(&id)?;
    let request = RoomUpdate::read(body)?;
    let r = state
        .directory
        .update_room(project, id, request.patch)
        .await?;
    Ok(Json(resource_json(&r)))
}

/// The answers of every `…/{id}/addresses` list.
macro_rules! addresses_of {
    ($(#[$doc:meta])* $name:ident, $path:literal, $tag:literal, $id:literal, $desc:literal) => {
        $(#[$doc])*
        #[utoipa::path(get, path = $path, tag = $tag, operation_id = $id,
            security(("projectBasic" = [])),
            params(("id" = Uuid, Path, description = $desc), Paging),
            responses(
                (status = 200, description = "A page of addresses.", body = FabricAddressList),
                FabricBadQuery, FabricUnauthorized, FabricNotFound, FabricBadPaging,
            ))]
        pub(crate) async fn $name(
            state: State<AppState>,
            auth: ProjectAuth,
            id: PathParam<String>,
            matched: MatchedPath,
            q: QueryMap,
        ) -> Result<impl IntoResponse, FabricError> {
            resource_addresses(state, auth, id, matched, q).await
        }
    };
}

// One handler per path: utoipa describes one path per handler, and these four serve the same
// list.
addresses_of!(
    /// List a subscriber's addresses (S6)
    subscriber_addresses,
    "/api/fabric/resources/subscribers/{id}/addresses",
    "Subscribers",
    "listSubscriberAddresses",
    "Subscriber id (the same UUID as its resource id)."
);

addresses_of!(
    /// List a conference room's addresses
    room_addresses,
    "/api/fabric/resources/conference_rooms/{id}/addresses",
    "Conference rooms",
    "listConferenceRoomAddresses",
    "Conference room (resource) id."
);

addresses_of!(
    /// List a conference room's addresses (singular path)
    ///
    /// The same as `/api/fabric/resources/conference_rooms/{id}/addresses`, at the path the
    /// Python SDK's room `list_addresses` uses.
    room_addresses_singular,
    "/api/fabric/resources/conference_room/{id}/addresses",
    "Conference rooms",
    "listConferenceRoomAddressesSingular",
    "Conference room (resource) id."
);

addresses_of!(
    /// List a resource's addresses (A3)
    any_resource_addresses,
    "/api/fabric/resources/{id}/addresses",
    "Resources",
    "listResourceAddresses",
    "Resource id."
);

/// The addresses of one resource, whatever the path that named it.
async fn resource_addresses(
    State(state): State<AppState>,
    ProjectAuth(project): ProjectAuth,
    PathParam(id): PathParam<String>,
    matched: MatchedPath,
    q: QueryMap,
) -> Result<impl IntoResponse, FabricError> {
    let paging = Paging::read(q)?;
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

/// Which addresses a list asks for by `type`.
#[derive(Debug, Clone, Copy)]
enum TypeFilter {
    /// No filter (absent or empty).
    Any,
    /// Addresses of this kind.
    Kind(ResourceKind),
    /// A type no address has (`call`, say): a valid filter that matches nothing.
    Nothing,
}

/// The query of `GET /api/fabric/addresses` (A1): paging and filters.
#[derive(Debug)]
pub(crate) struct AddressFilter {
    paging: Paging,
    kind: TypeFilter,
    /// `type` as given, which the page links repeat.
    type_text: Option<String>,
    display_name: Option<String>,
}

impl AddressFilter {
    fn read(q: QueryMap) -> Result<Self, FabricError> {
        let q = query(q)?;
        let paging = Paging::parse(&q)?;
        let type_text = q.get("type").cloned();
        let kind = match type_text.as_deref() {
            None | Some("") => TypeFilter::Any,
            Some(t) => match ResourceKind::parse(t) {
                Some(k) => TypeFilter::Kind(k),
                // Counted in characters, as the document's `maxLength` counts them (and as
                // every other Fabric length is counted).
                None if t.chars().count() <= MAX_TYPE_FILTER => TypeFilter::Nothing,
                None => return Err(FieldError::invalid("type", "is invalid").into()),
            },
        };
        Ok(Self {
            paging,
            kind,
            type_text,
            display_name: q.get("display_name").filter(|d| !d.is_empty()).cloned(),
        })
    }
}

/// The longest `type` filter read as a type (longer ones are a 422).
const MAX_TYPE_FILTER: usize = 32;

impl IntoParams for AddressFilter {
    fn into_params(_: impl Fn() -> Option<ParameterIn>) -> Vec<Parameter> {
        let mut params = Paging::into_params(|| Some(ParameterIn::Query));
        params.push(query_param(
            "type",
            "Only addresses of this type. A type no address has (`call`, say) matches \
             nothing; one longer than 32 characters is a 422.",
            address_type_filter(),
        ));
        params.push(query_param(
            "display_name",
            "Only addresses with this display name.",
            string(),
        ));
        params
    }
}

/// List addresses (A1)
///
/// Basic credentials see every address of the project; a subscriber's Bearer SAT sees rooms
/// and applications plus its own address.
#[utoipa::path(get, path = "/api/fabric/addresses", tag = "Addresses",
    operation_id = "listAddresses",
    security(("projectBasic" = []), ("subscriberBearer" = [])), params(AddressFilter),
    responses(
        (status = 200, description = "A page of addresses.", body = FabricAddressList),
        FabricBadQuery, FabricUnauthorized,
        (status = 422, body = FabricValidationErrors, description = "Bad paging (see the list \
         endpoints) or an over-long `type` (`invalid_parameter`)."),
    ))]
pub(crate) async fn list_addresses(
    State(state): State<AppState>,
    AnyAuth(caller): AnyAuth,
    matched: MatchedPath,
    q: QueryMap,
) -> Result<impl IntoResponse, FabricError> {
    let filter = AddressFilter::read(q)?;
    let kind = match filter.kind {
        TypeFilter::Any => None,
        TypeFilter::Kind(k) => Some(k),
        TypeFilter::Nothing => {
            return Ok(Json(empty_envelope(
                state.config.public_url.as_deref(),
                &link_path(&matched, None),
                &filter.paging,
                filter.type_text,
            )))
        }
    };
    let query = AddressQuery {
        kind,
        display_name: filter.display_name.clone(),
        ..Default::default()
    };
    let page = state
        .directory
        .addresses(caller, query, filter.paging.page)
        .await?;
    let filters = [
        ("type", filter.type_text),
        ("display_name", filter.display_name),
    ];
    Ok(Json(envelope(
        state.config.public_url.as_deref(),
        &link_path(&matched, None),
        &filters,
        &filter.paging,
        &page,
        |a| a.id.0,
        address_json,
    )))
}

fn empty_envelope(
    public_url: Option<&str>,
    path: &str,
    paging: &Paging,
    type_text: Option<String>,
) -> Value {
    let page: PageOf<Address> = PageOf {
        items: Vec::new(),
        more: false,
    };
    envelope(
        public_url,
        path,
        &[("type", type_text)],
        paging,
        &page,
        |a| a.id.0,
        address_json,
    )
}

/// Get an address (A2)
///
/// A subscriber's Bearer SAT sees another subscriber's address as 404.
#[utoipa::path(get, path = "/api/fabric/addresses/{id}", tag = "Addresses",
    operation_id = "getAddress",
    security(("projectBasic" = []), ("subscriberBearer" = [])),
    params(("id" = Uuid, Path, description = "Address id.")),
    responses(
        (status = 200, description = "The address.", body = FabricAddress),
        FabricUnauthorized, FabricNotFound,
    ))]
pub(crate) async fn get_address(
    State(state): State<AppState>,
    AnyAuth(caller): AnyAuth,
    PathParam(id): PathParam<String>,
) -> Result<impl IntoResponse, FabricError> {
    let a = state.directory.address(caller, path_id(&id)?).await?;
    Ok(Json(address_json(&a)))
}

// ---- What the handlers answer ----------------------------------------------------------------
// Written by hand by `resource_json`, `address_json` and `envelope` (fabric/mod.rs); these types
// only describe it.

/// The common resource members plus the kind's own object under `member`.
fn resource_envelope(kind: &str, member: &str, object: Value) -> Value {
    json!({
        "type": "object",
        "required": ["id", "project_id", "display_name", "type", "created_at", "updated_at",
                     member],
        "properties": {
            "id": uuid(),
            "project_id": uuid(),
            "display_name": string(),
            "type": { "const": kind },
            "created_at": date_time(),
            "updated_at": date_time(),
            member: object,
        },
    })
}

/// A room's or application's own object: its id and names plus the members clients stored.
fn kind_object(names: &[&str]) -> Value {
    let mut props = Map::new();
    props.insert("id".into(), uuid());
    for n in names {
        props.insert((*n).into(), string());
    }
    let required: Vec<&String> = props.keys().collect();
    json!({
        "type": "object",
        "required": required,
        "properties": props,
        "additionalProperties": true,
    })
}

json_schema! {
    /// A subscriber's profile.
    pub(crate) struct Subscriber = {
        let mut inner = Map::new();
        inner.insert("id".into(), uuid());
        for f in [
            "email",
            "first_name",
            "last_name",
            "display_name",
            "job_title",
            "timezone",
            "country",
            "region",
            "company_name",
        ] {
            inner.insert(f.into(), string());
        }
        let required: Vec<&String> = inner.keys().collect();
        json!({
            "type": "object",
            "description": "Unset members are empty strings.",
            "required": required,
            "properties": inner,
        })
    };
}

json_schema! {
    /// A subscriber resource.
    pub(crate) struct SubscriberResponse [Subscriber] =
        resource_envelope("subscriber", "subscriber", schema_ref("Subscriber"));
}

json_schema! {
    /// A conference room's own object.
    pub(crate) struct ConferenceRoom = kind_object(&["name", "display_name"]);
}

json_schema! {
    /// A conference room resource.
    pub(crate) struct ConferenceRoomResponse [ConferenceRoom] =
        resource_envelope("video_room", "conference_room", schema_ref("ConferenceRoom"));
}

json_schema! {
    /// An application's own object.
    pub(crate) struct Application = kind_object(&["name"]);
}

json_schema! {
    /// A resource of any kind.
    pub(crate) struct ResourceDoc as "Resource" [Subscriber, ConferenceRoom, Application] = json!({
        "type": "object",
        "description": "Exactly one of `subscriber`, `conference_room` and `application` is \
                        present, as `type` says.",
        "required": ["id", "project_id", "display_name", "type", "created_at", "updated_at"],
        "properties": {
            "id": uuid(),
            "project_id": uuid(),
            "display_name": string(),
            "type": { "type": "string", "enum": ["subscriber", "video_room", "application"] },
            "created_at": date_time(),
            "updated_at": date_time(),
            "subscriber": schema_ref("Subscriber"),
            "conference_room": schema_ref("ConferenceRoom"),
            "application": schema_ref("Application"),
        },
    });
}

json_schema! {
    /// An address.
    pub(crate) struct FabricAddress = json!({
        "type": "object",
        "required": ["id", "resource_id", "name", "display_name", "type", "cover_url",
                     "preview_url", "locked", "channels", "created_at"],
        "properties": {
            "id": uuid(),
            "resource_id": uuid(),
            "name": string(),
            "display_name": string(),
            "type": { "type": "string", "enum": address_types() },
            "cover_url": { "type": "string", "description": "May be empty." },
            "preview_url": { "type": "string", "description": "May be empty." },
            "locked": { "type": "boolean", "description": "Whether it refuses calls." },
            "channels": {
                "type": "object",
                "required": ["audio", "video", "messaging"],
                "description": "Dialable forms, `/<context>/<name>?channel=<kind>`; \
                                subscribers are `private`, rooms and applications `public`.",
                "properties": { "audio": string(), "video": string(), "messaging": string() },
            },
            "created_at": date_time(),
        },
    });
}

json_schema! {
    /// A list's links.
    pub(crate) struct PageLinks = json!({
        "type": "object",
        "required": ["self", "first"],
        // The table said "absolute URLs built from the request's Host header", which
        // `envelope` deliberately never does.
        "description": "Paths relative to the server (`/api/fabric/…?…`), or absolute URLs on \
                        its configured public URL (`--public-url`); never built from the \
                        request's Host header. Each carries every parameter the next request \
                        needs. `next` and `prev` are omitted when there is no such page.",
        "properties": {
            "self": string(),
            "first": string(),
            "next": string(),
            "prev": string(),
        },
    });
}

json_schema! {
    /// A page of subscribers.
    pub(crate) struct SubscriberList [SubscriberResponse, PageLinks] =
        list_of("SubscriberResponse");
}

json_schema! {
    /// A page of conference rooms.
    pub(crate) struct ConferenceRoomList [ConferenceRoomResponse, PageLinks] =
        list_of("ConferenceRoomResponse");
}

json_schema! {
    /// A page of resources.
    pub(crate) struct ResourceList [ResourceDoc, PageLinks] = list_of("Resource");
}

json_schema! {
    /// A page of addresses.
    pub(crate) struct FabricAddressList [FabricAddress, PageLinks] = list_of("FabricAddress");
}
