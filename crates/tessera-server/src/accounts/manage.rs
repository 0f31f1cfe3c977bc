//! The management plane behind Accounts Bearer tokens: roles, operators (`/v1/users`),
//! projects and their API tokens, keys and audit events.
//!
//! Roles (security.md): VIEWER reads everything; OPERATOR also manages projects and their
//! credentials; ADMIN also manages operators and keys. Each handler states its role first.

use std::collections::HashMap;

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::Json;
use serde_json::{json, Map, Value};
use tessera_core::accounts::valid_username;
use tessera_core::ids::{ApiTokenId, OperatorId, ProjectId};
use tessera_core::model::{ApiToken, Operator, OperatorKind, OperatorPatch, Project, Role};
use tessera_core::store::StoreError;
use tessera_core::{Secret, UnixTime};

use super::{malformed, Caller, V1Json, V1Path};
use crate::error::V1Error;
use crate::state::AppState;
use tessera_core::admin::{Actor, Admin};
use utoipa_axum::router::OpenApiRouter;

/// The management routes (under `/v1`).
pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .route("/roles", get(list_roles))
        .route("/users", get(list_users).post(create_users))
        .route(
            "/users/{id}",
            axum::routing::patch(update_user).delete(delete_user),
        )
        .route("/projects", get(list_projects).post(create_project))
        .route("/projects/{id}", get(get_project).delete(delete_project))
        .route(
            "/projects/{id}/api-tokens",
            get(list_api_tokens).post(create_api_token),
        )
        .route(
            "/projects/{id}/api-tokens/{token_id}",
            axum::routing::delete(revoke_api_token),
        )
        .route("/keys", get(list_keys))
        .route("/keys/rotate", post(rotate_keys))
        .route("/audit-events", get(list_audit_events))
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

/// `GET /v1/roles` (VIEWER).
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

/// `GET /v1/users` (VIEWER). API keys are never shown again after creation.
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

/// One validated element of a `POST /v1/users` body.
struct NewUser {
    name: String,
    domain: Option<String>,
    kind: OperatorKind,
    role: Role,
    password: Option<Secret<String>>,
}

fn new_user(i: usize, v: &Value) -> Result<NewUser, V1Error> {
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
    Ok(NewUser {
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

/// `POST /v1/users` (ADMIN): an array of users → 201 with the created page. A service's
/// element carries its API key, shown only here. Every element is checked before any is made.
async fn create_users(
    State(state): State<AppState>,
    caller: Caller,
    V1Json(body): V1Json,
) -> Result<impl IntoResponse, V1Error> {
    let me = caller.require(Role::Admin)?;
    let items = match body {
        Some(Value::Array(a)) if !a.is_empty() => a,
        Some(Value::Array(_)) | None => return Err(invalid("Send an array of at least one User.")),
        Some(_) => return Err(malformed("The body must be an array of User objects.")),
    };
    if items.len() > 100 {
        return Err(invalid("At most 100 users per request."));
    }
    let users = items
        .iter()
        .enumerate()
        .map(|(i, v)| new_user(i, v))
        .collect::<Result<Vec<_>, _>>()?;
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

/// `PATCH /v1/users/{id}` (ADMIN): `{"disabled": bool}` and/or `{"role": {"id"}}`. Disabling
/// ends the operator's refresh ids at once; its access tokens stop working at the next call.
async fn update_user(
    State(state): State<AppState>,
    caller: Caller,
    V1Path(id): V1Path<String>,
    V1Json(body): V1Json,
) -> Result<impl IntoResponse, V1Error> {
    let me = caller.require(Role::Admin)?;
    let id: OperatorId = parse_id(&id, "user")?;
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
    let op = admin_for(&state, me)
        .update_operator(id, OperatorPatch { disabled, role })
        .await?;
    Ok(Json(user_json(&op)))
}

/// `DELETE /v1/users/{id}` (ADMIN) → 204; its refresh ids go with it.
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

/// `GET /v1/projects` (VIEWER).
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

/// `POST /v1/projects` (OPERATOR): `{"name"}` → 201 with the first API token, shown once.
async fn create_project(
    State(state): State<AppState>,
    caller: Caller,
    V1Json(body): V1Json,
) -> Result<impl IntoResponse, V1Error> {
    let me = caller.require(Role::Operator)?;
    let m = object(body)?;
    let name = match m.get("name") {
        Some(Value::String(s)) => s.clone(),
        None | Some(Value::Null) => return Err(invalid("name is required.")),
        Some(_) => return Err(malformed("name must be a string.")),
    };
    let (project, token, secret) = admin_for(&state, me).new_project(&name).await?;
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

/// `GET /v1/projects/{id}` (VIEWER).
async fn get_project(
    State(state): State<AppState>,
    caller: Caller,
    V1Path(id): V1Path<String>,
) -> Result<impl IntoResponse, V1Error> {
    let me = caller.require(Role::Viewer)?;
    Ok(Json(project_json(&project_of(&state, me, &id).await?)))
}

/// `DELETE /v1/projects/{id}` (OPERATOR) → 204: its resources, credentials and sessions go.
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

/// `GET /v1/projects/{id}/api-tokens` (VIEWER): never the secrets.
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

/// `POST /v1/projects/{id}/api-tokens` (OPERATOR): `{"name"?}` → 201 with the token, once.
async fn create_api_token(
    State(state): State<AppState>,
    caller: Caller,
    V1Path(id): V1Path<String>,
    V1Json(body): V1Json,
) -> Result<impl IntoResponse, V1Error> {
    let me = caller.require(Role::Operator)?;
    let m = object(body)?;
    let name = match m.get("name") {
        Some(Value::String(s)) => s.clone(),
        None | Some(Value::Null) => String::new(),
        Some(_) => return Err(malformed("name must be a string.")),
    };
    let project = project_of(&state, me, &id).await?;
    let (token, secret) = admin_for(&state, me)
        .new_api_token(project.id, &name)
        .await?;
    let mut v = api_token_json(&token);
    v["token"] = Value::String(secret.into_inner());
    Ok((StatusCode::CREATED, Json(v)))
}

/// `DELETE /v1/projects/{id}/api-tokens/{token_id}` (OPERATOR) → 204.
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

/// `GET /v1/keys` (VIEWER): never key material.
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

/// `POST /v1/keys/rotate` (ADMIN): a pending key per purpose, activated by every node after
/// the propagation delay.
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

/// `GET /v1/audit-events` (VIEWER): `projectId`, `since` (RFC 3339 or Unix seconds),
/// `pageNumber`, `pageSize`; oldest first.
async fn list_audit_events(
    State(state): State<AppState>,
    caller: Caller,
    q: QueryMap,
) -> Result<impl IntoResponse, V1Error> {
    let me = caller.require(Role::Viewer)?;
    let q = query(q)?;
    let paging = Paging::from(&q)?;
    let project = match q.get("projectId") {
        None => None,
        Some(p) => Some(
            p.parse::<ProjectId>()
                .map_err(|_| invalid("projectId must be a project id."))?,
        ),
    };
    let since = match q.get("since") {
        None => UnixTime(0),
        Some(s) => s
            .parse::<i64>()
            .ok()
            .map(UnixTime)
            .or_else(|| UnixTime::parse_rfc3339(s))
            .ok_or_else(|| invalid("since must be RFC 3339 or Unix seconds."))?,
    };
    let (total, events) = admin_for(&state, me)
        .audit_page(project, since, paging.offset(), paging.size as u32)
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
    Ok(Json(paging.page(items, total)))
}
