//! Administration of an installation: projects and their API tokens, applications, embed
//! widgets, operators, keys and the audit trail. The admin CLI (which works on the database
//! directly, also while a server runs on it) and the management API (`/v1/…`, as a logged-in
//! operator) both act through [`Admin`], so each rule exists once, here: name limits, that a
//! token is revoked only under its own project, that an operator cannot delete, disable or
//! demote itself, that the active key can be neither retired nor destroyed.
//!
//! Results are domain values; the front-ends render them (the CLI as JSON lines, the API in
//! the Accounts dialect). New secrets are returned once, as [`Secret`]s.

use std::sync::Arc;

use crate::accounts::{new_operator, valid_username};
use crate::clock::{Clock, UnixTime};
use crate::crypto::{hex, new_secret, random_bytes, MasterKey};
use crate::ids::{AddressId, ApiTokenId, EmbedId, OperatorId, ProjectId, ResourceId};
use crate::keyring::{KeyMaterial, KeyPurpose, KeyState};
use crate::keys::unwrap_all;
use crate::maintenance::pending_key;
use crate::model::{
    ApiToken, AuditEvent, AuditFilter, AuditPage, Embed, NewResource, Operator, OperatorKind,
    OperatorPatch, Project, ResourceKind, Role, StoredKey,
};
use crate::store::{StoreError, Stores};
use crate::Secret;

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

/// Who administers: the local CLI, or an operator through the management API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Actor {
    /// `tessera admin …` on the database.
    Cli,
    /// A logged-in operator.
    Operator(OperatorId),
    /// A tool of Tessera's own acting on the database, by name (`bench`).
    Tool(&'static str),
}

impl Actor {
    /// How audit events name the actor: `admin` for the CLI, `operator:<id>` for the API.
    pub fn audit_name(&self) -> String {
        match self {
            Actor::Cli => "admin".into(),
            Actor::Operator(id) => format!("operator:{id}"),
            Actor::Tool(name) => (*name).into(),
        }
    }
}

/// What admin commands work with.
#[derive(Debug, Clone)]
pub struct Admin {
    /// The stores.
    pub stores: Stores,
    /// The master key (for hashing new credentials).
    pub master: MasterKey,
    /// The clock.
    pub clock: Arc<dyn Clock>,
    /// Who acts.
    pub actor: Actor,
}

/// A new embed widget: its id and its public `c2c_` token (shown once).
#[derive(Debug)]
pub struct NewEmbed {
    /// The widget's id.
    pub id: EmbedId,
    /// The token a page embeds.
    pub token: Secret<String>,
}

fn not_found(what: &'static str) -> impl Fn(StoreError) -> AdminError {
    move |e| match e {
        StoreError::NotFound => AdminError::NotFound(what),
        other => AdminError::Store(other),
    }
}

impl Admin {
    fn new_token(&self, project: ProjectId, name: &str) -> (ApiToken, Secret<String>) {
        let secret = new_secret(API_TOKEN_PREFIX);
        let token = ApiToken {
            id: ApiTokenId::random(),
            project_id: project,
            name: name.to_string(),
            hash: self.master.credential_hash(secret.expose()),
            created_at: self.clock.now(),
            revoked_at: None,
        };
        (token, secret)
    }

    /// Creates a project and its first API token; returns both and the token's secret.
    pub async fn new_project(
        &self,
        name: &str,
    ) -> Result<(Project, ApiToken, Secret<String>), AdminError> {
        // Characters, not bytes, as the message (and the OpenAPI `maxLength`) says.
        if name.trim().is_empty() || name.chars().count() > 256 || name.contains('\0') {
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
        self.stores
            .directory
            .create_project(project.clone(), token.clone())
            .await?;
        self.stores
            .audit
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

    /// Deletes a project and everything in it.
    pub async fn delete_project(&self, id: ProjectId) -> Result<(), AdminError> {
        self.stores
            .directory
            .delete_project(id)
            .await
            .map_err(not_found("project"))?;
        self.record(Some(id), "project.deleted", format!("project:{id}"))
            .await?;
        Ok(())
    }

    /// Deletes an operator (user or service) and its sessions. An operator cannot delete
    /// itself: an installation must not lose its last administrator by accident.
    pub async fn delete_operator(&self, id: OperatorId) -> Result<(), AdminError> {
        if self.actor == Actor::Operator(id) {
            return Err(AdminError::Invalid(
                "An administrator cannot delete itself.".into(),
            ));
        }
        self.stores
            .operators
            .delete_operator(id)
            .await
            .map_err(not_found("operator"))?;
        self.record(None, "operator.deleted", format!("operator:{id}"))
            .await?;
        Ok(())
    }

    /// Creates an API token for a project; returns it and its secret (shown once).
    pub async fn new_api_token(
        &self,
        project: ProjectId,
        name: &str,
    ) -> Result<(ApiToken, Secret<String>), AdminError> {
        if name.chars().count() > 256 || name.contains('\0') {
            return Err(AdminError::Invalid(
                "the token name must be at most 256 characters, without NUL".into(),
            ));
        }
        self.stores
            .directory
            .get_project(project)
            .await
            .map_err(not_found("project"))?;
        let (token, secret) = self.new_token(project, name);
        self.stores
            .directory
            .create_api_token(token.clone())
            .await?;
        self.record(
            Some(project),
            "api_token.created",
            format!("api_token:{}", token.id),
        )
        .await?;
        Ok((token, secret))
    }

    /// Creates an operator: a user with a password, or (`service`) a service account whose
    /// API key is returned (shown once).
    pub async fn create_operator(
        &self,
        username: &str,
        password: Option<Secret<String>>,
        role: Role,
        service: bool,
    ) -> Result<(OperatorId, Option<Secret<String>>), AdminError> {
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
                Some(crate::crypto::password::hash(pw.expose()))
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
        self.stores
            .operators
            .create_operator(op)
            .await
            .map_err(|e| match e {
                StoreError::Conflict(_) => {
                    AdminError::Invalid(format!("{username:?} already exists"))
                }
                other => AdminError::Store(other),
            })?;
        self.record(None, "operator.created", format!("operator:{id}"))
            .await?;
        Ok((id, key))
    }

    /// Every operator.
    pub async fn list_operators(&self) -> Result<Vec<Operator>, AdminError> {
        Ok(self.stores.operators.list_operators().await?)
    }

    /// Disables or enables an operator, or changes its role. An operator cannot disable or
    /// demote itself (it would lock itself out, possibly the last administrator with it).
    pub async fn update_operator(
        &self,
        id: OperatorId,
        patch: OperatorPatch,
    ) -> Result<Operator, AdminError> {
        let demotes = patch.role.is_some_and(|r| r < Role::Admin);
        if self.actor == Actor::Operator(id) && (patch.disabled == Some(true) || demotes) {
            return Err(AdminError::Invalid(
                "An administrator cannot disable or demote itself.".into(),
            ));
        }
        let op = self
            .stores
            .operators
            .update_operator(id, patch)
            .await
            .map_err(not_found("user"))?;
        self.record(None, "operator.updated", format!("operator:{id}"))
            .await?;
        Ok(op)
    }

    /// Every project.
    pub async fn list_projects(&self) -> Result<Vec<Project>, AdminError> {
        Ok(self.stores.directory.list_projects().await?)
    }

    /// One project.
    pub async fn project(&self, id: ProjectId) -> Result<Project, AdminError> {
        self.stores
            .directory
            .get_project(id)
            .await
            .map_err(not_found("project"))
    }

    /// A project's API tokens (never their secrets, which are not stored).
    pub async fn list_api_tokens(&self, project: ProjectId) -> Result<Vec<ApiToken>, AdminError> {
        self.project(project).await?;
        Ok(self.stores.directory.list_api_tokens(project).await?)
    }

    /// Revokes an API token. With `project`, the token must belong to it (the management API
    /// addresses tokens under their project).
    pub async fn revoke_api_token(
        &self,
        project: Option<ProjectId>,
        id: ApiTokenId,
    ) -> Result<(), AdminError> {
        if let Some(project) = project {
            let tokens = self.stores.directory.list_api_tokens(project).await?;
            if !tokens.iter().any(|t| t.id == id) {
                return Err(AdminError::NotFound("api token"));
            }
        }
        self.stores
            .directory
            .revoke_api_token(id, self.clock.now())
            .await
            .map_err(not_found("api token"))?;
        self.record(project, "api_token.revoked", format!("api_token:{id}"))
            .await?;
        Ok(())
    }

    /// Creates an application (an id a subscriber token can be bound to) with its address.
    pub async fn create_application(
        &self,
        project: ProjectId,
        name: &str,
    ) -> Result<(ResourceId, AddressId), AdminError> {
        if name.trim().is_empty() {
            return Err(AdminError::Invalid(
                "the application name must not be empty".into(),
            ));
        }
        self.stores
            .directory
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
        self.stores.directory.create_resource(new).await?;
        Ok((id, address))
    }

    /// Creates a click-to-call widget for 1 to 10 of the project's addresses.
    pub async fn create_embed(
        &self,
        project: ProjectId,
        addresses: &[AddressId],
    ) -> Result<NewEmbed, AdminError> {
        self.stores
            .directory
            .get_project(project)
            .await
            .map_err(not_found("project"))?;
        let mut addrs = addresses.to_vec();
        addrs.sort();
        addrs.dedup();
        if addrs.is_empty() || addrs.len() > crate::service::MAX_ALLOWED_ADDRESSES {
            return Err(AdminError::Invalid(format!(
                "an embed needs 1 to {} addresses",
                crate::service::MAX_ALLOWED_ADDRESSES
            )));
        }
        let found = self
            .stores
            .directory
            .existing_addresses(project, &addrs)
            .await?;
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
        self.stores.directory.create_embed(embed).await?;
        self.record(Some(project), "embed.created", format!("embed:{id}"))
            .await?;
        Ok(NewEmbed {
            id,
            token: Secret::new(token),
        })
    }

    /// Appends one audit event of this actor.
    async fn record(
        &self,
        project: Option<ProjectId>,
        action: &str,
        subject: String,
    ) -> Result<(), AdminError> {
        let event = self.audit(project, action, subject);
        Ok(self.stores.audit.append_audit(vec![event]).await?)
    }

    fn audit(&self, project: Option<ProjectId>, action: &str, subject: String) -> AuditEvent {
        AuditEvent {
            at: self.clock.now(),
            project_id: project,
            action: action.into(),
            actor: self.actor.audit_name(),
            subject,
            detail: Default::default(),
        }
    }

    /// Every key (wrapped: material never leaves the database this way).
    pub async fn keys_list(&self) -> Result<Vec<StoredKey>, AdminError> {
        Ok(self.stores.keys.list_keys().await?)
    }

    /// Adds a pending key per purpose and returns them. Running nodes load it and make it
    /// active after the propagation delay, so no node ever meets a token sealed with a key it
    /// has not loaded.
    pub async fn keys_rotate(&self) -> Result<Vec<StoredKey>, AdminError> {
        let mut kids = Vec::new();
        for purpose in KeyPurpose::ALL {
            let key = pending_key(&self.master, purpose, self.clock.now());
            kids.push(key.clone());
            let event = self.audit(None, "key.rotated", key.kid.clone());
            self.stores.keys.insert_key(key).await?;
            self.stores.audit.append_audit(vec![event]).await?;
        }
        Ok(kids)
    }

    /// Refuses (with `why`) unless `kid` names a key that is not the active one: a node must
    /// always have an active key to seal with.
    async fn not_active(&self, kid: &str, why: &str) -> Result<(), AdminError> {
        let keys = self.stores.keys.list_keys().await?;
        let key = keys
            .iter()
            .find(|k| k.kid == kid)
            .ok_or(AdminError::NotFound("key"))?;
        if key.state == KeyState::Active {
            return Err(AdminError::Invalid(why.into()));
        }
        Ok(())
    }

    /// `keys retire --kid K`: the key stops sealing but still opens its tokens. The active key
    /// cannot be retired before a successor is active (rotate first).
    pub async fn keys_retire(&self, kid: &str) -> Result<(), AdminError> {
        self.not_active(
            kid,
            "the active key cannot be retired: run `keys rotate` and wait for the new key to become active",
        )
        .await?;
        self.stores
            .keys
            .retire_key(kid, self.clock.now())
            .await
            .map_err(not_found("pending key"))?;
        self.record(None, "key.retired", kid.into()).await?;
        Ok(())
    }

    /// `keys destroy --kid K`: erases the material; every token it made stops working. Only
    /// retired or pending keys can be destroyed.
    pub async fn keys_destroy(&self, kid: &str) -> Result<(), AdminError> {
        self.not_active(
            kid,
            "the active key cannot be destroyed; rotate and retire it first",
        )
        .await?;
        self.stores
            .keys
            .destroy_key(kid)
            .await
            .map_err(not_found("key"))?;
        self.record(None, "key.destroyed", kid.into()).await?;
        Ok(())
    }

    /// The access keys, unwrapped, for [`crate::verifier::key_export`] (the format
    /// [`crate::verifier::Verifier::from_export`] loads). They are as secret as the master key:
    /// Fabric tokens are `dir` JWE, so these keys also *mint* access tokens. Only access keys
    /// leave the database (refresh and signing keys are not needed to check a SAT), and each
    /// export is recorded as an audit event.
    pub async fn keys_export(&self, purpose: KeyPurpose) -> Result<Vec<KeyMaterial>, AdminError> {
        if purpose != KeyPurpose::Access {
            return Err(AdminError::Invalid(
                "only access keys can be exported (--purpose access)".into(),
            ));
        }
        let stored: Vec<_> = self
            .stores
            .keys
            .list_keys()
            .await?
            .into_iter()
            .filter(|k| k.purpose == purpose)
            .collect();
        let keys =
            unwrap_all(&self.master, &stored).map_err(|e| AdminError::Invalid(e.to_string()))?;
        self.record(
            None,
            "keys.exported",
            format!("purpose:{}", purpose.as_str()),
        )
        .await?;
        Ok(keys)
    }

    /// One page of audit events at or after `since` (of one project, or all), oldest first,
    /// with the number of all such events.
    pub async fn audit_page(
        &self,
        project: Option<ProjectId>,
        since: UnixTime,
        offset: u64,
        limit: u32,
    ) -> Result<(u64, Vec<AuditEvent>), AdminError> {
        let total = self
            .stores
            .audit
            .count_audit_events(AuditFilter { project, since })
            .await?;
        let events = self
            .stores
            .audit
            .audit_events(AuditFilter { project, since }, AuditPage { offset, limit })
            .await?;
        Ok((total, events))
    }

    /// Audit events at or after `since` (of one project, or all), oldest first, at most
    /// 10,000.
    pub async fn audit_tail(
        &self,
        project: Option<ProjectId>,
        since: UnixTime,
    ) -> Result<Vec<AuditEvent>, AdminError> {
        Ok(self
            .stores
            .audit
            .audit_events(
                AuditFilter { project, since },
                AuditPage {
                    offset: 0,
                    limit: 10_000,
                },
            )
            .await?)
    }
}
