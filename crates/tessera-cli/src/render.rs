//! The admin commands' output: each command's domain result as the one JSON object (or, for
//! `audit tail`, the JSON lines) it prints. The formats are the CLI's contract with scripts
//! (README's "Administration" table); new secrets appear only here, in the output of the
//! command that made them.

use serde_json::{json, Value};
use tessera_core::admin::NewEmbed;
use tessera_core::ids::{AddressId, ApiTokenId, OperatorId, ProjectId, ResourceId};
use tessera_core::keyring::{KeyMaterial, KeyPurpose};
use tessera_core::model::{ApiToken, AuditEvent, Operator, Project, StoredKey};
use tessera_core::Secret;

/// `project create` → `{"project_id", "api_token"}`.
pub fn new_project(project: &Project, secret: Secret<String>) -> Value {
    json!({ "project_id": project.id.to_string(), "api_token": secret.into_inner() })
}

/// `api-token create` → `{"id", "api_token"}`.
pub fn new_api_token(token: &ApiToken, secret: Secret<String>) -> Value {
    json!({ "id": token.id.to_string(), "api_token": secret.into_inner() })
}

/// `api-token list` → `{"project_id", "api_tokens": [{"id", "name", "created_at",
/// "revoked_at"}]}` (never the secrets).
pub fn api_tokens(project: ProjectId, tokens: &[ApiToken]) -> Value {
    let items: Vec<Value> = tokens
        .iter()
        .map(|t| {
            json!({
                "id": t.id.to_string(),
                "name": t.name,
                "created_at": t.created_at.to_rfc3339(),
                "revoked_at": t.revoked_at.map(|r| r.to_rfc3339()),
            })
        })
        .collect();
    json!({ "project_id": project.to_string(), "api_tokens": items })
}

/// `api-token revoke` → `{"id", "revoked": true}`.
pub fn revoked(id: ApiTokenId) -> Value {
    json!({ "id": id.to_string(), "revoked": true })
}

/// `application create` → `{"id", "address_id"}`.
pub fn application(id: ResourceId, address: AddressId) -> Value {
    json!({ "id": id.to_string(), "address_id": address.to_string() })
}

/// `embed create` → `{"id", "token"}`.
pub fn embed(embed: NewEmbed) -> Value {
    json!({ "id": embed.id.to_string(), "token": embed.token.into_inner() })
}

/// `user create` → `{"id"}`, plus `"api_key"` (shown once) for a service.
pub fn new_operator(id: OperatorId, key: Option<Secret<String>>) -> Value {
    let mut out = json!({ "id": id.to_string() });
    if let Some(k) = key {
        out["api_key"] = Value::String(k.into_inner());
    }
    out
}

/// `user list` → `{"users": [{"id", "username", "type", "role", "disabled", "created_at"}]}`.
pub fn operators(ops: &[Operator]) -> Value {
    let items: Vec<Value> = ops
        .iter()
        .map(|o| {
            json!({
                "id": o.id.to_string(),
                "username": o.username,
                "type": o.kind.as_str(),
                "role": o.role.as_str(),
                "disabled": o.disabled,
                "created_at": o.created_at.to_rfc3339(),
            })
        })
        .collect();
    json!({ "users": items })
}

/// `keys list` → `{"keys": [{kid, purpose, state, created_at, activated_at, retired_at,
/// sealed}]}` (never key material).
pub fn keys(keys: &[StoredKey]) -> Value {
    let items: Vec<Value> = keys
        .iter()
        .map(|k| {
            json!({
                "kid": k.kid,
                "purpose": k.purpose.as_str(),
                "state": k.state.as_str(),
                "created_at": k.created_at.to_rfc3339(),
                "activated_at": k.activated_at.map(|t| t.to_rfc3339()),
                "retired_at": k.retired_at.map(|t| t.to_rfc3339()),
                "sealed": k.sealed,
            })
        })
        .collect();
    json!({ "keys": items })
}

/// `keys rotate` → `{"keys": [{"kid", "purpose", "state": "pending"}]}`.
pub fn rotated(keys: &[StoredKey]) -> Value {
    let items: Vec<Value> = keys
        .iter()
        .map(|k| json!({"kid": k.kid, "purpose": k.purpose.as_str(), "state": k.state.as_str()}))
        .collect();
    json!({ "keys": items })
}

/// `keys retire` / `keys destroy` → `{"kid", "state"}`.
pub fn key_state(kid: &str, state: &str) -> Value {
    json!({ "kid": kid, "state": state })
}

/// `keys export --purpose access` → the format `Verifier::from_export` reads.
pub fn key_export(purpose: KeyPurpose, keys: &[KeyMaterial]) -> Value {
    tessera_core::verifier::key_export(purpose, keys)
}

/// `audit tail` → one JSON object per event.
pub fn audit_event(e: AuditEvent) -> Value {
    json!({
        "at": e.at.to_rfc3339(),
        "project_id": e.project_id.map(|p| p.to_string()),
        "action": e.action,
        "actor": e.actor,
        "subject": e.subject,
        "detail": Value::Object(e.detail),
    })
}
