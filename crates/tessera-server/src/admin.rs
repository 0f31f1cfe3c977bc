//! Local administration that works directly on the database (also while a server runs on it).
//! Each function returns the JSON object the CLI prints; secrets appear only in the output of
//! the call that created them.

use std::sync::Arc;

use serde_json::{json, Value};
use tessera_core::accounts::{new_operator, valid_username};
use tessera_core::crypto::{hex, new_secret, random_bytes, MasterKey};
use tessera_core::ids::{AddressId, ApiTokenId, EmbedId, OperatorId, ProjectId};
use tessera_core::keyring::{KeyPurpose, KeyState};
use tessera_core::keys::unwrap_all;
use tessera_core::maintenance::pending_key;
use tessera_core::model::{
    ApiToken, AuditEvent, Embed, NewResource, OperatorKind, Project, ResourceKind, Role,
};
use tessera_core::store::{Store, StoreError};
use tessera_core::verifier::key_export;
use tessera_core::Clock;
use tessera_core::Secret;
use tessera_core::UnixTime;

/// The prefix of project API tokens.
pub const API_TOKEN_PREFIX: &str = "tsr_";

/// Why an admin command failed.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// A referenced record does not exist.
    #[error("{0} not found")]
    NotFound(&'static str),
    /// The input is not acceptable.
    #[error("{0}")]
    Invalid(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What admin commands work with.
#[derive(Debug, Clone)]
pub struct Admin {
    /// The store.
    pub store: Arc<dyn Store>,
    /// The master key (for hashing new credentials).
    pub master: MasterKey,
    /// The clock.
    pub clock: Arc<dyn Clock>,
    /// Who acts, as audit events name it: `admin` for the CLI, `operator:<id>` for the API.
    pub actor: String,
}

fn not_found(what: &'static str) -> impl Fn(StoreError) -> AdminError {
    move |e| match e {
        StoreError::NotFound => AdminError::NotFound(what),
        other => AdminError::Store(other),
    }
}

impl Admin {
    fn new_token(&self, project: ProjectId, name: &str) -> (ApiToken, String) {
        let secret = new_secret(API_TOKEN_PREFIX);
        let token = ApiToken {
            id: ApiTokenId::random(),
            project_id: project,
            name: name.to_string(),
            hash: self.master.credential_hash(secret.expose()),
            created_at: self.clock.now(),
            revoked_at: None,
        };
        (token, secret.into_inner())
    }

    /// Creates a project and its first API token; returns both and the token's secret.
    pub async fn new_project(&self, name: &str) -> Result<(Project, ApiToken, String), AdminError> {
        if name.trim().is_empty() || name.len() > 256 || name.contains('\0') {
            return Err(AdminError::Invalid(
                "the project name must be 1 to 256 characters, without NUL".into(),
            ));
        }
        let project = Project {
            id: ProjectId::random(),
            name: name.to_string(),
            created_at: self.clock.now(),
        };
        let (token, secret) = self.new_token(project.id, "default");
        let id = project.id;
        self.store
            .create_project(project.clone(), token.clone())
            .await?;
        self.store
            .append_audit(vec![
                self.audit(Some(id), "project.created", format!("project:{id}")),
                self.audit(
                    Some(id),
                    "api_token.created",
                    format!("api_token:{}", token.id),
                ),
            ])
            .await?;
        Ok((project, token, secret))
    }

    /// `project create --name NAME` → `{"project_id", "api_token"}`.
    pub async fn create_project(&self, name: &str) -> Result<Value, AdminError> {
        let (project, _, secret) = self.new_project(name).await?;
        Ok(json!({ "project_id": project.id.to_string(), "api_token": secret }))
    }

    /// Deletes a project and everything in it.
    pub async fn delete_project(&self, id: ProjectId) -> Result<(), AdminError> {
        self.store
            .delete_project(id)
            .await
            .map_err(not_found("project"))?;
        self.store
            .append_audit(vec![self.audit(
                Some(id),
                "project.deleted",
                format!("project:{id}"),
            )])
            .await?;
        Ok(())
    }

    /// Deletes an operator (user or service) and its sessions.
    pub async fn delete_operator(&self, id: OperatorId) -> Result<(), AdminError> {
        self.store
            .delete_operator(id)
            .await
            .map_err(not_found("operator"))?;
        self.store
            .append_audit(vec![self.audit(
                None,
                "operator.deleted",
                format!("operator:{id}"),
            )])
            .await?;
        Ok(())
    }

    /// Creates an API token for a project; returns it and its secret (shown once).
    pub async fn new_api_token(
        &self,
        project: ProjectId,
        name: &str,
    ) -> Result<(ApiToken, String), AdminError> {
        if name.len() > 256 || name.contains('\0') {
            return Err(AdminError::Invalid(
                "the token name must be at most 256 characters, without NUL".into(),
            ));
        }
        self.store
            .get_project(project)
            .await
            .map_err(not_found("project"))?;
        let (token, secret) = self.new_token(project, name);
        self.store.create_api_token(token.clone()).await?;
        self.store
            .append_audit(vec![self.audit(
                Some(project),
                "api_token.created",
                format!("api_token:{}", token.id),
            )])
            .await?;
        Ok((token, secret))
    }

    /// `api-token create --project ID [--name N]` → `{"id", "api_token"}`.
    pub async fn create_api_token(
        &self,
        project: ProjectId,
        name: &str,
    ) -> Result<Value, AdminError> {
        let (token, secret) = self.new_api_token(project, name).await?;
        Ok(json!({ "id": token.id.to_string(), "api_token": secret }))
    }

    /// `user create --username U [--password P] --role R [--service]` → `{"id"}`, plus
    /// `"api_key"` (shown once) for a service.
    pub async fn create_operator(
        &self,
        username: &str,
        password: Option<Secret<String>>,
        role: Role,
        service: bool,
    ) -> Result<Value, AdminError> {
        if !valid_username(username) {
            return Err(AdminError::Invalid(
                "the username must be 1 to 256 characters without spaces".into(),
            ));
        }
        let kind = if service {
            OperatorKind::Service
        } else {
            OperatorKind::User
        };
        let hash = match (kind, password) {
            (OperatorKind::User, Some(pw)) if !pw.expose().is_empty() => {
                Some(tessera_core::crypto::password::hash(pw.expose()))
            }
            (OperatorKind::User, _) => {
                return Err(AdminError::Invalid("a user needs --password".into()))
            }
            (OperatorKind::Service, Some(_)) => {
                return Err(AdminError::Invalid(
                    "a service logs in with its API key; --password is not used".into(),
                ))
            }
            (OperatorKind::Service, None) => None,
        };
        let (op, key) = new_operator(
            &self.master,
            self.clock.as_ref(),
            username,
            None,
            kind,
            role,
            hash,
        );
        let id = op.id;
        self.store.create_operator(op).await.map_err(|e| match e {
            StoreError::Conflict(_) => AdminError::Invalid(format!("{username:?} already exists")),
            other => AdminError::Store(other),
        })?;
        self.store
            .append_audit(vec![self.audit(
                None,
                "operator.created",
                format!("operator:{id}"),
            )])
            .await?;
        let mut out = json!({ "id": id.to_string() });
        if let Some(k) = key {
            out["api_key"] = Value::String(k.into_inner());
        }
        Ok(out)
    }

    /// `user list` → `{"users": [{"id", "username", "type", "role", "disabled", "created_at"}]}`.
    pub async fn list_operators(&self) -> Result<Value, AdminError> {
        let ops = self.store.list_operators().await?;
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
        Ok(json!({ "users": items }))
    }

    /// `api-token list --project ID` → `{"api_tokens": [...]}` (never the secrets).
    pub async fn list_api_tokens(&self, project: ProjectId) -> Result<Value, AdminError> {
        self.store
            .get_project(project)
            .await
            .map_err(not_found("project"))?;
        let tokens = self.store.list_api_tokens(project).await?;
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
        Ok(json!({ "project_id": project.to_string(), "api_tokens": items }))
    }

    /// `api-token revoke --id ID` → `{"id", "revoked": true}`. With `project`, the token must
    /// belong to it (the management API addresses tokens under their project).
    pub async fn revoke_api_token(
        &self,
        project: Option<ProjectId>,
        id: ApiTokenId,
    ) -> Result<Value, AdminError> {
        if let Some(project) = project {
            let tokens = self.store.list_api_tokens(project).await?;
            if !tokens.iter().any(|t| t.id == id) {
                return Err(AdminError::NotFound("api token"));
            }
        }
        self.store
            .revoke_api_token(id, self.clock.now())
            .await
            .map_err(not_found("api token"))?;
        self.store
            .append_audit(vec![self.audit(
                project,
                "api_token.revoked",
                format!("api_token:{id}"),
            )])
            .await?;
        Ok(json!({ "id": id.to_string(), "revoked": true }))
    }

    /// `application create --project ID --name N` → `{"id", "address_id"}`.
    pub async fn create_application(
        &self,
        project: ProjectId,
        name: &str,
    ) -> Result<Value, AdminError> {
        if name.trim().is_empty() {
            return Err(AdminError::Invalid(
                "the application name must not be empty".into(),
            ));
        }
        self.store
            .get_project(project)
            .await
            .map_err(not_found("project"))?;
        let new = NewResource::build(
            self.clock.as_ref(),
            project,
            ResourceKind::App,
            name,
            name.to_string(),
            None,
            Default::default(),
        );
        let (id, address) = (new.resource.id, new.address.id);
        self.store.create_resource(new).await?;
        Ok(json!({ "id": id.to_string(), "address_id": address.to_string() }))
    }

    /// `embed create --project ID --address A [...]` → `{"id", "token"}`.
    pub async fn create_embed(
        &self,
        project: ProjectId,
        addresses: &[AddressId],
    ) -> Result<Value, AdminError> {
        self.store
            .get_project(project)
            .await
            .map_err(not_found("project"))?;
        let mut addrs = addresses.to_vec();
        addrs.sort();
        addrs.dedup();
        if addrs.is_empty() || addrs.len() > tessera_core::service::MAX_ALLOWED_ADDRESSES {
            return Err(AdminError::Invalid(format!(
                "an embed needs 1 to {} addresses",
                tessera_core::service::MAX_ALLOWED_ADDRESSES
            )));
        }
        let found = self.store.existing_addresses(project, &addrs).await?;
        if found.len() != addrs.len() {
            return Err(AdminError::NotFound("address (in this project)"));
        }
        let token = format!("c2c_{}", hex(&random_bytes::<16>()));
        let embed = Embed {
            id: EmbedId::random(),
            project_id: project,
            token_hash: self.master.credential_hash(&token),
            addresses: addrs,
            enabled: true,
            created_at: self.clock.now(),
        };
        let id = embed.id;
        self.store.create_embed(embed).await?;
        self.store
            .append_audit(vec![self.audit(
                Some(project),
                "embed.created",
                format!("embed:{id}"),
            )])
            .await?;
        Ok(json!({ "id": id.to_string(), "token": token }))
    }

    fn audit(&self, project: Option<ProjectId>, action: &str, subject: String) -> AuditEvent {
        AuditEvent {
            at: self.clock.now(),
            project_id: project,
            action: action.into(),
            actor: self.actor.clone(),
            subject,
            detail: Default::default(),
        }
    }

    /// `keys list` → `{"keys": [{kid, purpose, state, created_at, activated_at, retired_at,
    /// sealed}]}` (never key material).
    pub async fn keys_list(&self) -> Result<Value, AdminError> {
        let keys = self.store.list_keys().await?;
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
        Ok(json!({ "keys": items }))
    }

    /// `keys rotate` → a pending key per purpose. Running nodes load it and make it active
    /// after the propagation delay, so no node ever meets a token sealed with a key it has not
    /// loaded.
    pub async fn keys_rotate(&self) -> Result<Value, AdminError> {
        let mut kids = Vec::new();
        for purpose in KeyPurpose::ALL {
            let key = pending_key(&self.master, purpose, self.clock.now());
            kids.push(json!({"kid": key.kid, "purpose": purpose.as_str(), "state": "pending"}));
            let event = self.audit(None, "key.rotated", key.kid.clone());
            self.store.insert_key(key).await?;
            self.store.append_audit(vec![event]).await?;
        }
        Ok(json!({ "keys": kids }))
    }

    /// `keys retire --kid K`: the key stops sealing but still opens its tokens. The active key
    /// cannot be retired before a successor is active (rotate first).
    pub async fn keys_retire(&self, kid: &str) -> Result<Value, AdminError> {
        let keys = self.store.list_keys().await?;
        let key = keys
            .iter()
            .find(|k| k.kid == kid)
            .ok_or(AdminError::NotFound("key"))?;
        if key.state == KeyState::Active {
            return Err(AdminError::Invalid(
                "the active key cannot be retired: run `keys rotate` and wait for the new key to become active".into(),
            ));
        }
        self.store
            .retire_key(kid, self.clock.now())
            .await
            .map_err(not_found("pending key"))?;
        self.store
            .append_audit(vec![self.audit(None, "key.retired", kid.into())])
            .await?;
        Ok(json!({ "kid": kid, "state": "retired" }))
    }

    /// `keys destroy --kid K`: erases the material; every token it made stops working. Only
    /// retired or pending keys can be destroyed.
    pub async fn keys_destroy(&self, kid: &str) -> Result<Value, AdminError> {
        let keys = self.store.list_keys().await?;
        let key = keys
            .iter()
            .find(|k| k.kid == kid)
            .ok_or(AdminError::NotFound("key"))?;
        if key.state == KeyState::Active {
            return Err(AdminError::Invalid(
                "the active key cannot be destroyed; rotate and retire it first".into(),
            ));
        }
        self.store
            .destroy_key(kid)
            .await
            .map_err(not_found("key"))?;
        self.store
            .append_audit(vec![self.audit(None, "key.destroyed", kid.into())])
            .await?;
        Ok(json!({ "kid": kid, "state": "destroyed" }))
    }

    /// `keys export --purpose access` → the access keys, unwrapped, in the format
    /// [`tessera_core::verifier::Verifier::from_export`] loads (see
    /// [`tessera_core::verifier::key_export`]). The output is as secret as the master key:
    /// Fabric tokens are `dir` JWE, so these keys also *mint* access tokens. Only access keys
    /// leave the database (refresh and signing keys are not needed to check a SAT), and each
    /// export is recorded as an audit event.
    pub async fn keys_export(&self, purpose: KeyPurpose) -> Result<Value, AdminError> {
        if purpose != KeyPurpose::Access {
            return Err(AdminError::Invalid(
                "only access keys can be exported (--purpose access)".into(),
            ));
        }
        let stored: Vec<_> = self
            .store
            .list_keys()
            .await?
            .into_iter()
            .filter(|k| k.purpose == purpose)
            .collect();
        let keys =
            unwrap_all(&self.master, &stored).map_err(|e| AdminError::Invalid(e.to_string()))?;
        let out = key_export(purpose, &keys);
        self.store
            .append_audit(vec![self.audit(
                None,
                "keys.exported",
                format!("purpose:{}", purpose.as_str()),
            )])
            .await?;
        Ok(out)
    }

    /// `audit tail [--project ID] [--since T]`: events as JSON objects, oldest first.
    pub async fn audit_tail(
        &self,
        project: Option<ProjectId>,
        since: i64,
    ) -> Result<Vec<Value>, AdminError> {
        let events = self
            .store
            .audit_events(project, UnixTime(since), 0, 10_000)
            .await?;
        Ok(events
            .into_iter()
            .map(|e| {
                json!({
                    "at": e.at.to_rfc3339(),
                    "project_id": e.project_id.map(|p| p.to_string()),
                    "action": e.action,
                    "actor": e.actor,
                    "subject": e.subject,
                    "detail": Value::Object(e.detail),
                })
            })
            .collect())
    }
}
