//! The management plane behind Accounts Bearer tokens: roles, operators (`/v1/users`),
//! projects and their API tokens, keys and audit events.
//!
//! Roles (security.md): VIEWER reads everything; OPERATOR also manages projects and their
//! credentials; ADMIN also manages operators and keys. Each handler states its role first.

use std::borrow::Cow;
use std::collections::HashMap;

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::Json;
use serde_json::{json, Map, Value};
use tessera_core::accounts::valid_username;
use tessera_core::ids::{ApiTokenId, OperatorId, ProjectId};
use tessera_core::model::{ApiToken, Operator, OperatorKind, OperatorPatch, Project, Role};
use tessera_core::store::StoreError;
use tessera_core::{Secret, UnixTime};

use super::{malformed, Caller, V1Json, V1Path};
use crate::error::V1Error;
use crate::openapi::schemas::{
    add, date_time, id_object, optional_body, page_of, query_param, raw, schema_ref, string,
    v1_page_number_schema, v1_page_size_schema, AccountsErrorBody, V1BadInput, V1BadPaging,
    V1Forbidden, V1NotFound, V1TooLarge, V1Unauthorized, NOT_BLANK, NO_NUL,
};
use crate::state::AppState;
use tessera_core::admin::{Actor, Admin};
use tessera_core::keyring::{KeyPurpose, KeyState};
use utoipa::openapi::path::{Parameter, ParameterIn};
use utoipa::openapi::schema::Schema;
use utoipa::openapi::RefOr;
use utoipa::{IntoParams, PartialSchema, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// The management routes (under `/v1`).
pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_roles))
        .routes(routes!(list_users, create_users))
        .routes(optional_body(routes!(update_user, delete_user)))
        .routes(routes!(list_projects, create_project))
        .routes(routes!(get_project, delete_project))
        .routes(optional_body(routes!(list_api_tokens, create_api_token)))
        .routes(routes!(revoke_api_token))
        .routes(routes!(list_keys))
        .routes(routes!(rotate_keys))
        .routes(routes!(list_audit_events))
}

/// The largest page a client may ask for.
const MAX_PAGE_SIZE: u64 = 1000;
/// The page size when none is asked for.
const DEFAULT_PAGE_SIZE: u64 = 100;

type QueryMap = Result<Query<HashMap<String, String>>, axum::extract::rejection::QueryRejection>;

/// `pageNumber` (zero-based) and `pageSize` from the query string.
struct Paging {
    number: u64,
    size: u64,
}

impl Paging {
    fn from(q: &HashMap<String, String>) -> Result<Self, V1Error> {
        let num = |key: &str, default: u64| -> Result<u64, V1Error> {
            match q.get(key) {
                None => Ok(default),
                Some(v) => v.parse::<u64>().map_err(|_| {
                    V1Error::BadRequest(
                        "INVALID_REQUEST",
                        format!("{key} must be a non-negative integer."),
                    )
                }),
            }
        };
        let size = num("pageSize", DEFAULT_PAGE_SIZE)?;
        if size == 0 || size > MAX_PAGE_SIZE {
            return Err(V1Error::BadRequest(
                "INVALID_REQUEST",
                format!("pageSize must be between 1 and {MAX_PAGE_SIZE}."),
            ));
        }
        Ok(Paging {
            number: num("pageNumber", 0)?,
            size,
        })
    }

    /// The parameters' descriptions, for the operations that list.
    fn parameters() -> Vec<Parameter> {
        vec![
            query_param(
                "pageNumber",
                "Zero-based page number; 0 by default.",
                v1_page_number_schema(),
            ),
            query_param(
                "pageSize",
                "Elements per page, 1 to 1000; 100 by default.",
                v1_page_size_schema(MAX_PAGE_SIZE, DEFAULT_PAGE_SIZE),
            ),
        ]
    }

    fn offset(&self) -> u64 {
        self.number.saturating_mul(self.size)
    }

    /// The page envelope around `elements`, out of `total`.
    fn page(&self, elements: Vec<Value>, total: u64) -> Value {
        json!({
            "elements": elements,
            "pageMetadata": {
                "pageNumber": self.number,
                "pageSize": self.size,
                "totalElements": total,
                "totalPages": total.div_ceil(self.size),
            }
        })
    }

    /// Pages through a list held in memory.
    fn slice<T>(&self, all: &[T], render: impl Fn(&T) -> Value) -> Value {
        let items = all
            .iter()
            .skip(usize::try_from(self.offset()).unwrap_or(usize::MAX))
            .take(self.size as usize)
            .map(render)
            .collect();
        self.page(items, all.len() as u64)
    }
}

// Hand-written: the limits are this module's constants.
impl IntoParams for Paging {
    fn into_params(_: impl Fn() -> Option<ParameterIn>) -> Vec<Parameter> {
        Self::parameters()
    }
}

fn query(q: QueryMap) -> Result<HashMap<String, String>, V1Error> {
    q.map(|Query(m)| m).map_err(|_| {
        V1Error::BadRequest(
            "INVALID_REQUEST",
            "The query string cannot be decoded.".into(),
        )
    })
}

fn parse_id<T: std::str::FromStr>(raw: &str, what: &str) -> Result<T, V1Error> {
    raw.parse()
        .map_err(|_| V1Error::NotFound("NOT_FOUND", format!("The {what} was not found.")))
}

/// Administration as `caller`: every management rule lives in [`Admin`].
fn admin_for(state: &AppState, caller: &Operator) -> Admin {
    state.accounts.admin(Actor::Operator(caller.id))
}

fn object(body: Option<Value>) -> Result<Map<String, Value>, V1Error> {
    match body {
        Some(Value::Object(m)) => Ok(m),
        None => Ok(Map::new()),
        Some(_) => Err(malformed("The body must be a JSON object.")),
    }
}

fn invalid(message: impl Into<String>) -> V1Error {
    V1Error::BadRequest("INVALID_REQUEST", message.into())
}

// ---- roles and users ---------------------------------------------------------------------

fn role_json(r: Role) -> Value {
    json!({ "id": r.id(), "name": r.as_str(), "description": r.description() })
}

/// A role: what a user may do.
// Described only: `role_json` writes it. Hand-written for the core's role names and ids.
pub(crate) struct RoleView;

impl PartialSchema for RoleView {
    fn schema() -> RefOr<Schema> {
        raw(json!({
            "type": "object",
            "required": ["id", "name", "description"],
            "properties": {
                "id": { "type": "string", "examples": Role::ALL.map(Role::id),
                        "description": "Stable across installations." },
                "name": { "type": "string", "enum": Role::ALL.map(Role::as_str) },
                "description": string(),
            },
        }))
    }
}

impl ToSchema for RoleView {
    fn name() -> Cow<'static, str> {
        "Role".into()
    }
}

/// A role named by its id (or its name).
// Hand-written: the accepted values are the core's role ids and names.
pub(crate) struct RoleReference;

impl PartialSchema for RoleReference {
    fn schema() -> RefOr<Schema> {
        id_object(json!({
            "type": "string",
            "enum": Role::ALL.map(Role::id).into_iter()
                .chain(Role::ALL.map(Role::as_str)).collect::<Vec<_>>(),
            "description": "A role's `id` from `GET /v1/roles`; its `name` is accepted too \
                            (both ASCII case-insensitively).",
        }))
    }
}

impl ToSchema for RoleReference {}

page_of!(
    /// A page of roles.
    RolePage,
    RoleView
);

/// List roles
///
/// Role: VIEWER or above. ADMIN, OPERATOR and VIEWER; each may do all that the next may.
#[utoipa::path(get, path = "/roles", tag = "Management", operation_id = "listRoles",
    security(("accountsBearer" = [])), params(Paging),
    responses(
        (status = 200, description = "A page of roles.", body = RolePage),
        V1BadPaging, V1Unauthorized,
    ))]
async fn list_roles(caller: Caller, q: QueryMap) -> Result<impl IntoResponse, V1Error> {
    caller.require(Role::Viewer)?;
    let paging = Paging::from(&query(q)?)?;
    let mut roles = Role::ALL.to_vec();
    roles.reverse();
    Ok(Json(paging.slice(&roles, |r| role_json(*r))))
}

fn user_json(op: &Operator) -> Value {
    json!({
        "id": op.id.to_string(),
        "name": op.username,
        "domain": op.domain,
        "type": op.kind.as_str(),
        "role": { "id": op.role.id() },
        "creationTimestamp": op.created_at.to_rfc3339(),
        "disabled": op.disabled,
    })
}

/// The user kinds, as the wire names them.
fn user_type() -> Value {
    json!({ "type": "string",
            "enum": [OperatorKind::User.as_str(), OperatorKind::Service.as_str()],
            "description": "A USER logs in with a password, a SERVICE user with an API key." })
}

fn user_type_schema() -> RefOr<Schema> {
    raw(user_type())
}

/// A user (an account of the Accounts API).
#[derive(ToSchema)]
#[schema(as = User)]
#[allow(dead_code)] // Describes what `user_json` writes.
pub(crate) struct UserView {
    id: uuid::Uuid,
    /// The login name.
    name: String,
    #[schema(required)]
    domain: Option<String>,
    #[schema(rename = "type", value_type = String, schema_with = user_type_schema)]
    kind: (),
    role: RoleReference,
    #[schema(rename = "creationTimestamp", value_type = String, format = DateTime)]
    creation_timestamp: String,
    disabled: bool,
}

/// A new user; a SERVICE user's carries its API key.
// Described only: `create_users` writes it. Hand-written for the `allOf`.
pub(crate) struct UserCreated;

impl PartialSchema for UserCreated {
    fn schema() -> RefOr<Schema> {
        raw(json!({
            "allOf": [
                schema_ref("User"),
                { "properties": { "apiKey": {
                    "type": "string",
                    "description": "SERVICE users only, and only in this reply: the key to log \
                                    in with.",
                } } },
            ],
        }))
    }
}

impl ToSchema for UserCreated {
    fn schemas(out: &mut Vec<(String, RefOr<Schema>)>) {
        add::<UserView>(out);
    }
}

page_of!(
    /// A page of users.
    UserPage,
    UserView
);

page_of!(
    /// A page of new users.
    UserCreatedPage,
    UserCreated
);

/// List users
///
/// Role: VIEWER or above. API keys are never listed.
#[utoipa::path(get, path = "/users", tag = "Management", operation_id = "listUsers",
    security(("accountsBearer" = [])), params(Paging),
    responses(
        (status = 200, description = "A page of users.", body = UserPage),
        V1BadPaging, V1Unauthorized,
    ))]
async fn list_users(
    State(state): State<AppState>,
    caller: Caller,
    q: QueryMap,
) -> Result<impl IntoResponse, V1Error> {
    let me = caller.require(Role::Viewer)?;
    let paging = Paging::from(&query(q)?)?;
    let ops = admin_for(&state, me).list_operators().await?;
    Ok(Json(paging.slice(&ops, user_json)))
}

/// One user to create, read and checked (an element of `POST /v1/users`).
#[derive(Debug)]
pub(crate) struct UserCreate {
    name: String,
    domain: Option<String>,
    kind: OperatorKind,
    role: Role,
    password: Option<Secret<String>>,
}

impl UserCreate {
    /// Reads element `i`; the first bad member is reported, naming the element.
    fn read(i: usize, v: &Value) -> Result<Self, V1Error> {
        let at = |m: &str| invalid(format!("Element {i}: {m}"));
        let Value::Object(m) = v else {
            return Err(at("must be a User object."));
        };
        let text = |key: &str| -> Result<Option<String>, V1Error> {
            match m.get(key) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(s)) => Ok(Some(s.clone())),
                Some(_) => Err(at(&format!("{key} must be a string."))),
            }
        };
        let name = text("name")?.ok_or_else(|| at("name is required."))?;
        if !valid_username(&name) {
            return Err(at("name must be 1 to 256 characters without spaces."));
        }
        let kind = text("type")?.ok_or_else(|| at("type is required."))?;
        let kind = OperatorKind::parse(&kind)
            .ok_or_else(|| at("type must be USER or SERVICE (groups are not supported)."))?;
        let role = match m.get("role") {
            Some(Value::Object(r)) => r.get("id").and_then(Value::as_str).and_then(Role::from_id),
            _ => None,
        }
        .ok_or_else(|| at("role must be {\"id\": …} naming a role of GET /v1/roles."))?;
        let password = text("password")?.filter(|p| !p.is_empty());
        match (kind, &password) {
            (OperatorKind::User, None) => {
                return Err(at(
                    "a USER needs a password (Tessera keeps its own passwords).",
                ))
            }
            (OperatorKind::Service, Some(_)) => {
                return Err(at(
                    "a SERVICE logs in with its API key and takes no password.",
                ))
            }
            _ => {}
        }
        Ok(Self {
            name,
            domain: match text("domain")?.filter(|d| !d.is_empty()) {
                Some(d) if !valid_username(&d) => {
                    return Err(at("domain must be 1 to 256 characters without spaces."))
                }
                d => d,
            },
            kind,
            role,
            password: password.map(Secret::new),
        })
    }
}

/// A character `valid_username` allows: neither a control character (Unicode Cc) nor white
/// space (Rust's `char::is_whitespace`), spelled out for the same reason as `NOT_BLANK`.
const USERNAME_CHARS: &str = concat!(
    "[^\\x00-\\x20\\x7F-\\xA0\\u1680\\u2000-\\u200A\\u2028\\u2029\\u202F\\u205F",
    "\\u3000]"
);

// Hand-written: `if/then/else` (a USER needs a password, a SERVICE user must not send one;
// "" counts as none) and the login-name pattern.
impl PartialSchema for UserCreate {
    fn schema() -> RefOr<Schema> {
        raw(json!({
            "type": "object",
            "required": ["name", "type", "role"],
            "if": { "required": ["type"],
                    "properties": { "type": { "const": OperatorKind::Service.as_str() } } },
            // "" and null count as no password.
            "then": { "properties": { "password": { "enum": ["", null] } } },
            "else": { "required": ["password"],
                      "properties": { "password": { "type": "string", "minLength": 1 } } },
            "properties": {
                "name": { "type": "string", "maxLength": 256,
                          "pattern": format!("^{USERNAME_CHARS}+$"),
                          "description": "The login name, unique (ASCII \
                                          case-insensitively and otherwise byte for byte): 1 \
                                          to 256 characters without whitespace or control \
                                          characters." },
                "domain": { "type": ["string", "null"], "maxLength": 256,
                            "pattern": format!("^{USERNAME_CHARS}*$"),
                            "description": "Empty or null for none; otherwise like `name`." },
                "type": user_type(),
                "role": schema_ref("RoleReference"),
                "password": { "type": ["string", "null"], "format": "password",
                              "description": "Required for a USER (Tessera keeps its own \
                                              passwords); refused for a SERVICE user (empty \
                                              or null counts as none)." },
            },
        }))
    }
}

impl ToSchema for UserCreate {
    fn schemas(out: &mut Vec<(String, RefOr<Schema>)>) {
        add::<RoleReference>(out);
    }
}

/// The most users one `POST /v1/users` creates.
const MAX_NEW_USERS: usize = 100;

/// The body of `POST /v1/users`: one to [`MAX_NEW_USERS`] users, every one checked.
#[derive(Debug)]
pub(crate) struct UserCreateList(Vec<UserCreate>);

impl UserCreateList {
    fn read(body: Option<Value>) -> Result<Self, V1Error> {
        let items = match body {
            Some(Value::Array(a)) if !a.is_empty() => a,
            Some(Value::Array(_)) | None => {
                return Err(invalid("Send an array of at least one User."))
            }
            Some(_) => return Err(malformed("The body must be an array of User objects.")),
        };
        if items.len() > MAX_NEW_USERS {
            return Err(invalid("At most 100 users per request."));
        }
        items
            .iter()
            .enumerate()
            .map(|(i, v)| UserCreate::read(i, v))
            .collect::<Result<Vec<_>, _>>()
            .map(Self)
    }
}

// Inline in the operation: the array's bounds are this module's constant.
impl PartialSchema for UserCreateList {
    fn schema() -> RefOr<Schema> {
        raw(json!({ "type": "array", "items": schema_ref("UserCreate"),
                    "minItems": 1, "maxItems": MAX_NEW_USERS }))
    }
}

impl ToSchema for UserCreateList {
    fn schemas(out: &mut Vec<(String, RefOr<Schema>)>) {
        add::<UserCreate>(out);
    }
}

/// Create users
///
/// Role: ADMIN. One to 100 users; every element is checked before any user is created. A USER
/// logs in with its name and `password`, which it therefore needs; a SERVICE user takes no
/// password and logs in with the `apiKey` of its element in this reply, the only place it is
/// ever shown (Tessera keeps only a hash, so unlike SDDC Manager it cannot show it again).
#[utoipa::path(post, path = "/users", tag = "Management", operation_id = "createUsers",
    security(("accountsBearer" = [])),
    request_body(content = inline(UserCreateList), content_type = "application/json"),
    responses(
        (status = 201, description = "A page of the new users.", body = UserCreatedPage),
        V1BadInput, V1Unauthorized, V1Forbidden,
        (status = 409, body = AccountsErrorBody,
         description = "A user of that name exists already (`USER_ALREADY_EXISTS`)."),
        V1TooLarge,
    ))]
async fn create_users(
    State(state): State<AppState>,
    caller: Caller,
    V1Json(body): V1Json,
) -> Result<impl IntoResponse, V1Error> {
    let me = caller.require(Role::Admin)?;
    let UserCreateList(users) = UserCreateList::read(body)?;
    let mut created = Vec::with_capacity(users.len());
    for u in users {
        let (op, key) = state
            .accounts
            .create_operator(Some(me), &u.name, u.domain, u.kind, u.role, u.password)
            .await
            .map_err(|e| match e {
                tessera_core::accounts::AccountsError::Store(StoreError::Conflict(_)) => {
                    V1Error::Conflict(
                        "USER_ALREADY_EXISTS",
                        format!("A user named {:?} already exists.", u.name),
                    )
                }
                other => other.into(),
            })?;
        let mut v = user_json(&op);
        if let Some(k) = key {
            v["apiKey"] = Value::String(k.into_inner());
        }
        created.push(v);
    }
    let total = created.len() as u64;
    let paging = Paging {
        number: 0,
        size: total.max(1),
    };
    Ok((StatusCode::CREATED, Json(paging.page(created, total))))
}

/// What `PATCH /v1/users/{id}` changes, read and checked.
#[derive(Debug)]
pub(crate) struct UserPatch {
    disabled: Option<bool>,
    role: Option<Role>,
}

impl UserPatch {
    fn read(body: Option<Value>) -> Result<Self, V1Error> {
        let m = object(body)?;
        let disabled = match m.get("disabled") {
            None | Some(Value::Null) => None,
            Some(Value::Bool(b)) => Some(*b),
            Some(_) => return Err(malformed("disabled must be a boolean.")),
        };
        let role = match m.get("role") {
            None | Some(Value::Null) => None,
            Some(Value::Object(r)) => Some(
                r.get("id")
                    .and_then(Value::as_str)
                    .and_then(Role::from_id)
                    .ok_or_else(|| invalid("role.id names no role of GET /v1/roles."))?,
            ),
            Some(_) => return Err(malformed("role must be an object.")),
        };
        Ok(Self { disabled, role })
    }
}

// Hand-written: `role` is a reference or null (`anyOf`).
impl PartialSchema for UserPatch {
    fn schema() -> RefOr<Schema> {
        raw(json!({
            "type": "object",
            "description": "`disabled`, `role`, both, or neither (nothing changes); a null \
                            member counts as absent.",
            "properties": {
                "disabled": { "type": ["boolean", "null"],
                              "description": "Disabling invalidates the user's refresh ids." },
                "role": { "anyOf": [schema_ref("RoleReference"), { "type": "null" }] },
            },
        }))
    }
}

impl ToSchema for UserPatch {
    fn schemas(out: &mut Vec<(String, RefOr<Schema>)>) {
        add::<RoleReference>(out);
    }
}

/// Disable, enable or change the role of a user
///
/// Role: ADMIN. Only the members sent change. Disabling a user invalidates its refresh ids at
/// once, and its access tokens stop working at their next use. An administrator cannot disable
/// or demote itself (400).
#[utoipa::path(patch, path = "/users/{id}", tag = "Management", operation_id = "updateUser",
    security(("accountsBearer" = [])),
    params(("id" = uuid::Uuid, Path, description = "User id.")),
    request_body = UserPatch,
    responses(
        (status = 200, description = "The updated user.", body = UserView),
        V1BadInput, V1Unauthorized, V1Forbidden, V1TooLarge, V1NotFound,
    ))]
async fn update_user(
    State(state): State<AppState>,
    caller: Caller,
    V1Path(id): V1Path<String>,
    V1Json(body): V1Json,
) -> Result<impl IntoResponse, V1Error> {
    let me = caller.require(Role::Admin)?;
    let id: OperatorId = parse_id(&id, "user")?;
    let patch = UserPatch::read(body)?;
    let op = admin_for(&state, me)
        .update_operator(
            id,
            OperatorPatch {
                disabled: patch.disabled,
                role: patch.role,
            },
        )
        .await?;
    Ok(Json(user_json(&op)))
}

/// Delete a user
///
/// Role: ADMIN. Also invalidates the user's refresh ids. An administrator cannot delete itself
/// (400).
#[utoipa::path(delete, path = "/users/{id}", tag = "Management", operation_id = "deleteUser",
    security(("accountsBearer" = [])),
    params(("id" = uuid::Uuid, Path, description = "User id.")),
    responses(
        (status = 204, description = "Deleted."),
        (status = 400, body = AccountsErrorBody,
         description = "The caller tried to delete itself (`INVALID_REQUEST`)."),
        V1Unauthorized, V1Forbidden, V1NotFound,
    ))]
async fn delete_user(
    State(state): State<AppState>,
    caller: Caller,
    V1Path(id): V1Path<String>,
) -> Result<impl IntoResponse, V1Error> {
    let me = caller.require(Role::Admin)?;
    let id: OperatorId = parse_id(&id, "user")?;
    admin_for(&state, me).delete_operator(id).await?;
    Ok(StatusCode::NO_CONTENT)
}

// ---- projects and their API tokens --------------------------------------------------------

fn project_json(p: &Project) -> Value {
    json!({
        "id": p.id.to_string(),
        "name": p.name,
        "creationTimestamp": p.created_at.to_rfc3339(),
    })
}

fn api_token_json(t: &ApiToken) -> Value {
    json!({
        "id": t.id.to_string(),
        "name": t.name,
        "creationTimestamp": t.created_at.to_rfc3339(),
        "revocationTimestamp": t.revoked_at.map(|r| r.to_rfc3339()),
    })
}

/// A Fabric project.
#[derive(ToSchema)]
#[schema(as = Project)]
#[allow(dead_code)] // Describes what `project_json` writes.
pub(crate) struct ProjectView {
    /// Also the Fabric API's Basic user name.
    id: uuid::Uuid,
    name: String,
    #[schema(rename = "creationTimestamp", value_type = String, format = DateTime)]
    creation_timestamp: String,
}

/// A new project with its first API token.
// Described only: `create_project` writes it. Hand-written for the `allOf`.
pub(crate) struct ProjectCreated;

impl PartialSchema for ProjectCreated {
    fn schema() -> RefOr<Schema> {
        raw(json!({
            "allOf": [
                schema_ref("Project"),
                { "required": ["apiToken"],
                  "properties": { "apiToken": schema_ref("ApiTokenCreated") } },
            ],
        }))
    }
}

impl ToSchema for ProjectCreated {
    fn schemas(out: &mut Vec<(String, RefOr<Schema>)>) {
        add::<ProjectView>(out);
        add::<ApiTokenCreated>(out);
    }
}

/// An API token's record, never its secret.
#[derive(ToSchema)]
#[schema(as = ApiToken)]
#[allow(dead_code)] // Describes what `api_token_json` writes.
pub(crate) struct ApiTokenView {
    id: uuid::Uuid,
    /// Empty when none was given.
    name: String,
    #[schema(rename = "creationTimestamp", value_type = String, format = DateTime)]
    creation_timestamp: String,
    #[schema(rename = "revocationTimestamp", value_type = Option<String>, format = DateTime,
             required)]
    revocation_timestamp: Option<String>,
}

/// A new API token, with its secret.
#[derive(ToSchema)]
#[allow(dead_code)] // Describes what `create_api_token` and `create_project` write.
pub(crate) struct ApiTokenCreated {
    id: uuid::Uuid,
    name: String,
    #[schema(rename = "creationTimestamp", value_type = String, format = DateTime)]
    creation_timestamp: String,
    /// The secret, shown only once: the Fabric API's Basic password, with the project id as
    /// user name.
    token: String,
}

page_of!(
    /// A page of projects.
    ProjectPage,
    ProjectView
);

page_of!(
    /// A page of API tokens.
    ApiTokenPage,
    ApiTokenView
);

/// List Fabric projects
///
/// Role: VIEWER or above.
#[utoipa::path(get, path = "/projects", tag = "Management", operation_id = "listProjects",
    security(("accountsBearer" = [])), params(Paging),
    responses(
        (status = 200, description = "A page of projects.", body = ProjectPage),
        V1BadPaging, V1Unauthorized,
    ))]
async fn list_projects(
    State(state): State<AppState>,
    caller: Caller,
    q: QueryMap,
) -> Result<impl IntoResponse, V1Error> {
    let me = caller.require(Role::Viewer)?;
    let paging = Paging::from(&query(q)?)?;
    let projects = admin_for(&state, me).list_projects().await?;
    Ok(Json(paging.slice(&projects, project_json)))
}

/// The project to create, read and checked for its type (the name's rules are the core's).
#[derive(Debug)]
pub(crate) struct ProjectCreate {
    name: String,
}

impl ProjectCreate {
    fn read(body: Option<Value>) -> Result<Self, V1Error> {
        let m = object(body)?;
        match m.get("name") {
            Some(Value::String(s)) => Ok(Self { name: s.clone() }),
            None | Some(Value::Null) => Err(invalid("name is required.")),
            Some(_) => Err(malformed("name must be a string.")),
        }
    }
}

// Hand-written: `NOT_BLANK` is the server's pattern.
impl PartialSchema for ProjectCreate {
    fn schema() -> RefOr<Schema> {
        raw(json!({
            "type": "object",
            "required": ["name"],
            "properties": { "name": {
                "type": "string", "maxLength": 256, "pattern": NOT_BLANK,
                "description": "1 to 256 characters, not all white space, without NUL.",
            } },
        }))
    }
}

impl ToSchema for ProjectCreate {}

/// Create a Fabric project
///
/// Role: OPERATOR or ADMIN. The project comes with a first API token: the project id and the
/// token are the HTTP Basic credentials of the Fabric API. The token is shown only in this
/// reply.
#[utoipa::path(post, path = "/projects", tag = "Management", operation_id = "createProject",
    security(("accountsBearer" = [])), request_body = ProjectCreate,
    responses(
        (status = 201, description = "The new project and its API token.",
         body = ProjectCreated),
        V1BadInput, V1Unauthorized, V1Forbidden, V1TooLarge,
    ))]
async fn create_project(
    State(state): State<AppState>,
    caller: Caller,
    V1Json(body): V1Json,
) -> Result<impl IntoResponse, V1Error> {
    let me = caller.require(Role::Operator)?;
    let request = ProjectCreate::read(body)?;
    let (project, token, secret) = admin_for(&state, me).new_project(&request.name).await?;
    let mut v = project_json(&project);
    let mut t = api_token_json(&token);
    t["token"] = Value::String(secret.into_inner());
    v["apiToken"] = t;
    Ok((StatusCode::CREATED, Json(v)))
}

async fn project_of(state: &AppState, me: &Operator, raw: &str) -> Result<Project, V1Error> {
    let id: ProjectId = parse_id(raw, "project")?;
    Ok(admin_for(state, me).project(id).await?)
}

/// Get a Fabric project
///
/// Role: VIEWER or above.
#[utoipa::path(get, path = "/projects/{id}", tag = "Management", operation_id = "getProject",
    security(("accountsBearer" = [])),
    params(("id" = uuid::Uuid, Path,
            description = "Project id (also the Fabric API's Basic user name).")),
    responses(
        (status = 200, description = "The project.", body = ProjectView),
        V1Unauthorized, V1NotFound,
    ))]
async fn get_project(
    State(state): State<AppState>,
    caller: Caller,
    V1Path(id): V1Path<String>,
) -> Result<impl IntoResponse, V1Error> {
    let me = caller.require(Role::Viewer)?;
    Ok(Json(project_json(&project_of(&state, me, &id).await?)))
}

/// Delete a Fabric project
///
/// Role: OPERATOR or ADMIN. The project's resources, API tokens and sessions go with it.
#[utoipa::path(delete, path = "/projects/{id}", tag = "Management",
    operation_id = "deleteProject", security(("accountsBearer" = [])),
    params(("id" = uuid::Uuid, Path,
            description = "Project id (also the Fabric API's Basic user name).")),
    responses(
        (status = 204, description = "Deleted."),
        V1Unauthorized, V1Forbidden, V1NotFound,
    ))]
async fn delete_project(
    State(state): State<AppState>,
    caller: Caller,
    V1Path(id): V1Path<String>,
) -> Result<impl IntoResponse, V1Error> {
    let me = caller.require(Role::Operator)?;
    let id: ProjectId = parse_id(&id, "project")?;
    admin_for(&state, me).delete_project(id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// List a project's API tokens
///
/// Role: VIEWER or above. Records only, never the secrets; a revoked token has a
/// `revocationTimestamp`.
#[utoipa::path(get, path = "/projects/{id}/api-tokens", tag = "Management",
    operation_id = "listProjectApiTokens", security(("accountsBearer" = [])),
    params(("id" = uuid::Uuid, Path,
            description = "Project id (also the Fabric API's Basic user name)."), Paging),
    responses(
        (status = 200, description = "A page of API tokens.", body = ApiTokenPage),
        V1BadPaging, V1Unauthorized,
        (status = 404, body = AccountsErrorBody, description = "No such project (`NOT_FOUND`)."),
    ))]
async fn list_api_tokens(
    State(state): State<AppState>,
    caller: Caller,
    V1Path(id): V1Path<String>,
    q: QueryMap,
) -> Result<impl IntoResponse, V1Error> {
    let me = caller.require(Role::Viewer)?;
    let paging = Paging::from(&query(q)?)?;
    let project = project_of(&state, me, &id).await?;
    let tokens = admin_for(&state, me).list_api_tokens(project.id).await?;
    Ok(Json(paging.slice(&tokens, api_token_json)))
}

/// The API token to create, read and checked for its type (the name's rules are the core's).
#[derive(Debug)]
pub(crate) struct ApiTokenCreate {
    /// Empty when none is given.
    name: String,
}

impl ApiTokenCreate {
    fn read(body: Option<Value>) -> Result<Self, V1Error> {
        let m = object(body)?;
        let name = match m.get("name") {
            Some(Value::String(s)) => s.clone(),
            // The documented default: a token without a name.
            None | Some(Value::Null) => String::new(),
            Some(_) => return Err(malformed("name must be a string.")),
        };
        Ok(Self { name })
    }
}

// Hand-written: `NO_NUL` is the server's pattern.
impl PartialSchema for ApiTokenCreate {
    fn schema() -> RefOr<Schema> {
        raw(json!({
            "type": "object",
            "description": "The body may also be empty.",
            "properties": { "name": {
                "type": ["string", "null"], "maxLength": 256, "pattern": NO_NUL,
                "description": "At most 256 characters, without NUL; empty by default.",
            } },
        }))
    }
}

impl ToSchema for ApiTokenCreate {}

/// Create an API token for a project
///
/// Role: OPERATOR or ADMIN. The secret is shown only in this reply.
#[utoipa::path(post, path = "/projects/{id}/api-tokens", tag = "Management",
    operation_id = "createProjectApiToken", security(("accountsBearer" = [])),
    params(("id" = uuid::Uuid, Path,
            description = "Project id (also the Fabric API's Basic user name).")),
    request_body = ApiTokenCreate,
    responses(
        (status = 201, description = "The new token, with its secret.", body = ApiTokenCreated),
        V1BadInput, V1Unauthorized, V1Forbidden, V1TooLarge,
        (status = 404, body = AccountsErrorBody, description = "No such project (`NOT_FOUND`)."),
    ))]
async fn create_api_token(
    State(state): State<AppState>,
    caller: Caller,
    V1Path(id): V1Path<String>,
    V1Json(body): V1Json,
) -> Result<impl IntoResponse, V1Error> {
    let me = caller.require(Role::Operator)?;
    let request = ApiTokenCreate::read(body)?;
    let project = project_of(&state, me, &id).await?;
    let (token, secret) = admin_for(&state, me)
        .new_api_token(project.id, &request.name)
        .await?;
    let mut v = api_token_json(&token);
    v["token"] = Value::String(secret.into_inner());
    Ok((StatusCode::CREATED, Json(v)))
}

/// Revoke a project's API token
///
/// Role: OPERATOR or ADMIN. The token authenticates nothing from then on.
#[utoipa::path(delete, path = "/projects/{id}/api-tokens/{tokenId}", tag = "Management",
    operation_id = "revokeProjectApiToken", security(("accountsBearer" = [])),
    params(
        ("id" = uuid::Uuid, Path,
         description = "Project id (also the Fabric API's Basic user name)."),
        ("tokenId" = uuid::Uuid, Path, description = "API token record id (not the secret)."),
    ),
    responses(
        (status = 204, description = "Revoked."),
        V1Unauthorized, V1Forbidden,
        (status = 404, body = AccountsErrorBody,
         description = "No such project, or no such token in it (`NOT_FOUND`)."),
    ))]
async fn revoke_api_token(
    State(state): State<AppState>,
    caller: Caller,
    V1Path((id, token_id)): V1Path<(String, String)>,
) -> Result<impl IntoResponse, V1Error> {
    let me = caller.require(Role::Operator)?;
    let project = project_of(&state, me, &id).await?;
    let token_id: ApiTokenId = parse_id(&token_id, "api token")?;
    admin_for(&state, me)
        .revoke_api_token(Some(project.id), token_id)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

// ---- keys and audit -----------------------------------------------------------------------

/// A key's life-cycle record, never its material. `POST /v1/keys/rotate` answers only `kid`,
/// `purpose` and `state`.
// Described only: `list_keys` and `rotate_keys` write it. Hand-written for the core's enums.
pub(crate) struct KeyView;

impl PartialSchema for KeyView {
    fn schema() -> RefOr<Schema> {
        let purposes = KeyPurpose::ALL.map(KeyPurpose::as_str);
        let states = [
            KeyState::Pending,
            KeyState::Active,
            KeyState::Retired,
            KeyState::Destroyed,
        ]
        .map(KeyState::as_str);
        let nullable_date_time = json!({ "type": ["string", "null"], "format": "date-time" });
        raw(json!({
            "type": "object",
            "required": ["kid", "purpose", "state"],
            "description": "A key's life-cycle record, never its material. `POST \
                            /v1/keys/rotate` answers only `kid`, `purpose` and `state`.",
            "properties": {
                "kid": string(),
                "purpose": { "type": "string", "enum": purposes,
                             "description": "`access` and `refresh` seal Fabric tokens, \
                                             `signing` signs Accounts access tokens." },
                "state": { "type": "string", "enum": states },
                "creationTimestamp": date_time(),
                "activationTimestamp": nullable_date_time,
                "retirementTimestamp": nullable_date_time,
                "encryptions": { "type": "integer", "minimum": 0,
                                 "description": "How many tokens it has sealed." },
            },
        }))
    }
}

impl ToSchema for KeyView {
    fn name() -> Cow<'static, str> {
        "Key".into()
    }
}

page_of!(
    /// A page of keys.
    KeyPage,
    KeyView
);

/// List the server's keys
///
/// Role: VIEWER or above. Life-cycle records only, never key material.
#[utoipa::path(get, path = "/keys", tag = "Management", operation_id = "listKeys",
    security(("accountsBearer" = [])), params(Paging),
    responses(
        (status = 200, description = "A page of keys.", body = KeyPage),
        V1BadPaging, V1Unauthorized,
    ))]
async fn list_keys(
    State(state): State<AppState>,
    caller: Caller,
    q: QueryMap,
) -> Result<impl IntoResponse, V1Error> {
    let me = caller.require(Role::Viewer)?;
    let paging = Paging::from(&query(q)?)?;
    let keys = admin_for(&state, me).keys_list().await?;
    Ok(Json(paging.slice(&keys, |k| {
        json!({
            "kid": k.kid,
            "purpose": k.purpose.as_str(),
            "state": k.state.as_str(),
            "creationTimestamp": k.created_at.to_rfc3339(),
            "activationTimestamp": k.activated_at.map(|t| t.to_rfc3339()),
            "retirementTimestamp": k.retired_at.map(|t| t.to_rfc3339()),
            "encryptions": k.sealed,
        })
    })))
}

/// Rotate the keys
///
/// Role: ADMIN. Creates one pending key per purpose; the server promotes a pending key to
/// active once every node has had time to load it, and retires the key it replaces.
#[utoipa::path(post, path = "/keys/rotate", tag = "Management", operation_id = "rotateKeys",
    security(("accountsBearer" = [])),
    responses(
        (status = 200, description = "A page of the new pending keys (`kid`, `purpose` and \
         `state`).", body = KeyPage),
        V1Unauthorized, V1Forbidden,
    ))]
async fn rotate_keys(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<impl IntoResponse, V1Error> {
    let me = caller.require(Role::Admin)?;
    let keys: Vec<Value> = admin_for(&state, me)
        .keys_rotate()
        .await?
        .iter()
        .map(|k| json!({"kid": k.kid, "purpose": k.purpose.as_str(), "state": k.state.as_str()}))
        .collect();
    let total = keys.len() as u64;
    let paging = Paging {
        number: 0,
        size: total.max(1),
    };
    Ok(Json(paging.page(keys, total)))
}

/// Who did what to which principal. Never carries a secret.
#[derive(ToSchema)]
#[schema(as = AuditEvent)]
#[allow(dead_code)] // Describes what `list_audit_events` writes.
pub(crate) struct AuditEventView {
    #[schema(value_type = String, format = DateTime)]
    timestamp: String,
    #[schema(rename = "projectId", required)]
    project_id: Option<uuid::Uuid>,
    #[schema(examples("token.issued", "key.rotated"))]
    action: String,
    #[schema(examples("admin", "system"))]
    actor: String,
    /// A family, subscriber, key or token id.
    subject: String,
    /// A few non-secret details.
    #[schema(value_type = Object)]
    detail: (),
}

page_of!(
    /// A page of audit events.
    AuditEventPage,
    AuditEventView
);

/// The audit log's filters and page, read and checked.
pub(crate) struct AuditQuery {
    project: Option<ProjectId>,
    since: UnixTime,
    paging: Paging,
}

impl AuditQuery {
    fn read(q: &HashMap<String, String>) -> Result<Self, V1Error> {
        let paging = Paging::from(q)?;
        let project = match q.get("projectId") {
            None => None,
            Some(p) => Some(
                p.parse::<ProjectId>()
                    .map_err(|_| invalid("projectId must be a project id."))?,
            ),
        };
        let since = match q.get("since") {
            // No lower bound: the whole log.
            None => UnixTime(0),
            Some(s) => s
                .parse::<i64>()
                .ok()
                .map(UnixTime)
                .or_else(|| UnixTime::parse_rfc3339(s))
                .ok_or_else(|| invalid("since must be RFC 3339 or Unix seconds."))?,
        };
        Ok(Self {
            project,
            since,
            paging,
        })
    }
}

// Hand-written: `since` is an `anyOf`, and the paging limits are this module's constants.
impl IntoParams for AuditQuery {
    fn into_params(_: impl Fn() -> Option<ParameterIn>) -> Vec<Parameter> {
        let mut params = vec![
            query_param(
                "projectId",
                "Only the events of this project.",
                json!({ "type": "string", "format": "uuid" }),
            ),
            // Unix seconds are an `i64`, so at most 18 digits here to stay clear of overflow.
            query_param(
                "since",
                "Only the events from this instant on: RFC 3339, or Unix seconds.",
                json!({
                    "type": "string",
                    "anyOf": [{ "pattern": "^[+-]?[0-9]{1,18}$" }, { "format": "date-time" }],
                    "examples": ["2027-01-15T08:00:00Z", "1800000000"],
                }),
            ),
        ];
        params.extend(Paging::parameters());
        params
    }
}

/// Read the audit log
///
/// Role: VIEWER or above. Oldest first. Events never carry a secret.
#[utoipa::path(get, path = "/audit-events", tag = "Management",
    operation_id = "listAuditEvents", security(("accountsBearer" = [])), params(AuditQuery),
    responses(
        (status = 200, description = "A page of audit events.", body = AuditEventPage),
        (status = 400, body = AccountsErrorBody, description = "Bad `projectId`, `since`, \
         `pageNumber` or `pageSize` (`INVALID_REQUEST`)."),
        V1Unauthorized,
    ))]
async fn list_audit_events(
    State(state): State<AppState>,
    caller: Caller,
    q: QueryMap,
) -> Result<impl IntoResponse, V1Error> {
    let me = caller.require(Role::Viewer)?;
    let q = AuditQuery::read(&query(q)?)?;
    let (total, events) = admin_for(&state, me)
        .audit_page(q.project, q.since, q.paging.offset(), q.paging.size as u32)
        .await?;
    let items = events
        .into_iter()
        .map(|e| {
            json!({
                "timestamp": e.at.to_rfc3339(),
                "projectId": e.project_id.map(|p| p.to_string()),
                "action": e.action,
                "actor": e.actor,
                "subject": e.subject,
                "detail": Value::Object(e.detail),
            })
        })
        .collect();
    Ok(Json(q.paging.page(items, total)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::accounts::tests::code;

    #[test]
    fn new_users_are_all_checked_and_a_password_goes_with_a_user_only() {
        let user = |kind: &str, password: Value| json!({"name": "n", "type": kind, "role": {"id": "VIEWER"}, "password": password});
        let read = |v: Value| UserCreateList::read(Some(v));
        let ok = read(json!([
            user("USER", json!("pw")),
            user("SERVICE", json!(""))
        ]))
        .unwrap();
        assert_eq!(ok.0.len(), 2);
        assert!(ok.0[0].password.is_some() && ok.0[1].password.is_none());
        for bad in [
            json!([user("USER", json!(""))]),
            json!([user("SERVICE", json!("pw"))]),
            json!([user("USER", json!("pw")), {"name": "n"}]),
            json!([]),
            Value::Array(vec![user("USER", json!("pw")); MAX_NEW_USERS + 1]),
        ] {
            assert_eq!(code(read(bad.clone())), "INVALID_REQUEST", "{bad}");
        }
        assert_eq!(code(UserCreateList::read(None)), "INVALID_REQUEST");
        assert_eq!(code(read(json!({}))), "MALFORMED_REQUEST_BODY");
    }

    #[test]
    fn a_user_patch_reads_null_as_absent() {
        let patch =
            UserPatch::read(Some(json!({"disabled": null, "role": {"id": "ADMIN"}}))).unwrap();
        assert_eq!((patch.disabled, patch.role), (None, Some(Role::Admin)));
        let empty = UserPatch::read(None).unwrap();
        assert_eq!((empty.disabled, empty.role), (None, None));
        assert_eq!(
            code(UserPatch::read(Some(json!({"disabled": "yes"})))),
            "MALFORMED_REQUEST_BODY"
        );
        assert_eq!(
            code(UserPatch::read(Some(json!({"role": {"id": "ROOT"}})))),
            "INVALID_REQUEST"
        );
    }

    #[test]
    fn the_audit_query_reads_seconds_or_rfc3339_and_pages() {
        let q = |pairs: &[(&str, &str)]| {
            let map: HashMap<String, String> = pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            AuditQuery::read(&map)
        };
        let all = q(&[]).unwrap();
        assert_eq!((all.project, all.since), (None, UnixTime(0)));
        assert_eq!((all.paging.number, all.paging.size), (0, DEFAULT_PAGE_SIZE));
        assert_eq!(
            q(&[("since", "1800000000")]).unwrap().since,
            UnixTime(1_800_000_000)
        );
        assert_eq!(
            q(&[("since", "1970-01-01T00:01:00Z")]).unwrap().since,
            UnixTime(60)
        );
        for bad in [
            ("since", "yesterday"),
            ("projectId", "p"),
            ("pageSize", "0"),
            ("pageSize", "1001"),
            ("pageNumber", "-1"),
        ] {
            assert_eq!(code(q(&[bad])), "INVALID_REQUEST", "{bad:?}");
        }
    }
}
