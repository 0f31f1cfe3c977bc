//! Local administration that works directly on the database (also while a server runs on it).
//! Each function returns the JSON object the CLI prints; secrets appear only in the output of
//! the call that created them.

use std::sync::Arc;

use serde_json::{json, Value};
use tessera_core::crypto::{new_secret, random_bytes, MasterKey};
use tessera_core::ids::{AddressId, ApiTokenId, EmbedId, ProjectId};
use tessera_core::model::{ApiToken, Embed, NewResource, Project, ResourceKind};
use tessera_core::store::{Store, StoreError};
use tessera_core::Clock;

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

    /// `project create --name NAME` → `{"project_id", "api_token"}`.
    pub async fn create_project(&self, name: &str) -> Result<Value, AdminError> {
        if name.trim().is_empty() {
            return Err(AdminError::Invalid(
                "the project name must not be empty".into(),
            ));
        }
        let project = Project {
            id: ProjectId::random(),
            name: name.to_string(),
            created_at: self.clock.now(),
        };
        let (token, secret) = self.new_token(project.id, "default");
        let id = project.id;
        self.store.create_project(project, token).await?;
        Ok(json!({ "project_id": id.to_string(), "api_token": secret }))
    }

    /// `api-token create --project ID [--name N]` → `{"id", "api_token"}`.
    pub async fn create_api_token(
        &self,
        project: ProjectId,
        name: &str,
    ) -> Result<Value, AdminError> {
        self.store
            .get_project(project)
            .await
            .map_err(not_found("project"))?;
        let (token, secret) = self.new_token(project, name);
        let id = token.id;
        self.store.create_api_token(token).await?;
        Ok(json!({ "id": id.to_string(), "api_token": secret }))
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

    /// `api-token revoke --id ID` → `{"id", "revoked": true}`.
    pub async fn revoke_api_token(&self, id: ApiTokenId) -> Result<Value, AdminError> {
        self.store
            .revoke_api_token(id, self.clock.now())
            .await
            .map_err(not_found("api token"))?;
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
        let hex: String = random_bytes::<16>()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let token = format!("c2c_{hex}");
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
        Ok(json!({ "id": id.to_string(), "token": token }))
    }
}
