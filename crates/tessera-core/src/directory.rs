//! The directory of a project: its subscribers, rooms, resources and addresses, as the Fabric
//! resource endpoints manage them. Every rule about them lives here, once: which kind a path
//! may name, that an unknown id costs no password hashing, that a password change revokes the
//! subscriber's sessions and is audited, what a subscriber's Bearer token may see.
//!
//! Handlers parse the wire input into the arguments of one method here and render what it
//! returns; they never reach the store.

use std::sync::Arc;

use serde_json::{Map, Value};

use crate::audit::AuditLog;
use crate::clock::Clock;
use crate::ids::{AddressId, ProjectId, ResourceId};
use crate::model::{
    Address, AddressQuery, AuditEvent, NewResource, Page, PageOf, Resource, ResourceDeletion,
    ResourceKind, ResourceListing, RoomPatch, RoomUpdate, SubscriberPatch, SubscriberProfile,
    SubscriberUpdate,
};
use crate::service::{PasswordPool, Rule, ServiceError, ServiceResult};
use crate::store::{DirectoryStore, StoreError};
use crate::Secret;

/// Who reads the directory: a project's backend (everything of the project) or one of its
/// subscribers with a SAT (rooms and applications, and its own address only).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reader {
    /// A project backend with its Basic credentials.
    Project(ProjectId),
    /// A subscriber with a Bearer SAT.
    Subscriber {
        /// The subscriber's project.
        project: ProjectId,
        /// The subscriber.
        subscriber: ResourceId,
    },
}

impl Reader {
    /// The reader's project.
    pub fn project(&self) -> ProjectId {
        match *self {
            Reader::Project(p) | Reader::Subscriber { project: p, .. } => p,
        }
    }
}

/// A new subscriber, as `POST /api/fabric/resources/subscribers` gives it.
#[derive(Debug)]
pub struct NewSubscriber {
    /// The email, also the reference it is found by.
    pub email: String,
    /// A password to sign in with, if any.
    pub password: Option<Secret<String>>,
    /// The profile fields given.
    pub profile: SubscriberPatch,
}

/// The directory service. Cheap to share behind an `Arc`.
#[derive(Debug)]
pub struct Directory {
    store: Arc<dyn DirectoryStore>,
    clock: Arc<dyn Clock>,
    passwords: Arc<PasswordPool>,
    audit: AuditLog,
}

impl Directory {
    /// Assembles the service over the same directory store (cached, on a server), clock,
    /// hashing threads and audit log as the token service.
    pub fn new(
        store: Arc<dyn DirectoryStore>,
        clock: Arc<dyn Clock>,
        passwords: Arc<PasswordPool>,
        audit: AuditLog,
    ) -> Self {
        Directory {
            store,
            clock,
            passwords,
            audit,
        }
    }

    async fn hash(&self, pw: Option<Secret<String>>) -> ServiceResult<Option<String>> {
        match pw {
            Some(pw) => Ok(Some(self.passwords.hash(pw).await?)),
            None => Ok(None),
        }
    }

    /// Creates a subscriber. Without a password it simply has none to sign in with, which is
    /// as safe as the random one the original would set, and costs no hashing.
    pub async fn create_subscriber(
        &self,
        project: ProjectId,
        new: NewSubscriber,
    ) -> ServiceResult<Resource> {
        let mut profile = SubscriberProfile {
            email: new.email.clone(),
            ..Default::default()
        };
        new.profile.apply(&mut profile);
        let mut row = NewResource::build(
            self.clock.as_ref(),
            project,
            ResourceKind::Subscriber,
            &new.email,
            profile.display_name.clone(),
            Some(profile),
            Map::new(),
        );
        row.password_hash = self.hash(new.password).await?;
        let r = row.resource.clone();
        match self.store.create_resource(row).await {
            Ok(()) => Ok(r),
            // A subscriber made here is found by its email as its reference; another one
            // already answers to that reference (its email changed since), so the new one
            // could never be found by it: the email is taken, as for an email conflict.
            Err(StoreError::Conflict(what)) if what == "reference" => {
                Err(ServiceError::Rule(Rule::EmailTaken))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Creates a room named `name` (its address name is derived from it), showing as
    /// `display_name` (the name when absent), storing `data` as the client sent it.
    pub async fn create_room(
        &self,
        project: ProjectId,
        name: &str,
        display_name: Option<String>,
        data: Map<String, Value>,
    ) -> ServiceResult<Resource> {
        let display = display_name.unwrap_or_else(|| name.to_string());
        let row = NewResource::build(
            self.clock.as_ref(),
            project,
            ResourceKind::Room,
            name,
            display,
            None,
            data,
        );
        let r = row.resource.clone();
        self.store.create_resource(row).await?;
        Ok(r)
    }

    /// A page of the project's resources, of one kind or all.
    pub async fn list(
        &self,
        project: ProjectId,
        kind: Option<ResourceKind>,
        page: Page,
    ) -> ServiceResult<PageOf<Resource>> {
        let listing = ResourceListing::new(project, kind, page);
        Ok(self.store.list_resources(listing).await?)
    }

    /// One resource of the project; with `kind`, only of that kind (a room's id on the
    /// subscribers path names nothing: 404, as any unknown id).
    pub async fn get(
        &self,
        project: ProjectId,
        id: ResourceId,
        kind: Option<ResourceKind>,
    ) -> ServiceResult<Resource> {
        let r = self.store.get_resource(project, id).await?;
        if kind.is_some_and(|k| k != r.kind) {
            return Err(ServiceError::NotFound);
        }
        Ok(r)
    }

    /// Merges `patch` into a subscriber and sets its password if one is given. The
    /// subscriber must exist before any hashing is spent on it; a new password revokes the
    /// subscriber's sessions (in the store's update) and is audited.
    pub async fn update_subscriber(
        &self,
        project: ProjectId,
        id: ResourceId,
        patch: SubscriberPatch,
        password: Option<Secret<String>>,
    ) -> ServiceResult<Resource> {
        self.get(project, id, Some(ResourceKind::Subscriber))
            .await?;
        let hash = self.hash(password).await?;
        let changed = hash.is_some();
        let r = self
            .store
            .update_subscriber(SubscriberUpdate {
                project,
                id,
                patch,
                password_hash: hash,
                at: self.clock.now(),
            })
            .await?;
        if changed {
            self.audit.record(AuditEvent {
                at: self.clock.now(),
                project_id: Some(project),
                actor: format!("project:{project}"),
                action: "subscriber.password_changed".into(),
                subject: format!("subscriber:{id}"),
                detail: Map::new(),
            });
        }
        Ok(r)
    }

    /// Merges `patch` into a room.
    pub async fn update_room(
        &self,
        project: ProjectId,
        id: ResourceId,
        patch: RoomPatch,
    ) -> ServiceResult<Resource> {
        Ok(self
            .store
            .update_room(RoomUpdate {
                project,
                id,
                kind: ResourceKind::Room,
                patch,
                at: self.clock.now(),
            })
            .await?)
    }

    /// Deletes a resource (of `kind`, if given) with its address; a subscriber's sessions are
    /// revoked with it.
    pub async fn delete(
        &self,
        project: ProjectId,
        id: ResourceId,
        kind: Option<ResourceKind>,
    ) -> ServiceResult<()> {
        let r = self.get(project, id, kind).await?;
        Ok(self
            .store
            .delete_resource(ResourceDeletion {
                project,
                id: r.id,
                kind: r.kind,
                at: self.clock.now(),
            })
            .await?)
    }

    /// A page of the addresses `reader` may see that match `query`: a subscriber sees rooms
    /// and applications plus its own address.
    pub async fn addresses(
        &self,
        reader: Reader,
        mut query: AddressQuery,
        page: Page,
    ) -> ServiceResult<PageOf<Address>> {
        query.visible_to = match reader {
            Reader::Project(_) => None,
            Reader::Subscriber { subscriber, .. } => Some(subscriber),
        };
        Ok(self
            .store
            .list_addresses(reader.project(), query, page)
            .await?)
    }

    /// A page of one resource's addresses (of `kind`, if given).
    pub async fn resource_addresses(
        &self,
        project: ProjectId,
        id: ResourceId,
        kind: Option<ResourceKind>,
        page: Page,
    ) -> ServiceResult<(Resource, PageOf<Address>)> {
        let r = self.get(project, id, kind).await?;
        let query = AddressQuery {
            resource_id: Some(r.id),
            ..Default::default()
        };
        let addresses = self.store.list_addresses(project, query, page).await?;
        Ok((r, addresses))
    }

    /// One address `reader` may see: another subscriber's address is as unknown to a
    /// subscriber as a missing one.
    pub async fn address(&self, reader: Reader, id: AddressId) -> ServiceResult<Address> {
        let a = self.store.get_address(reader.project(), id).await?;
        if let Reader::Subscriber { subscriber, .. } = reader {
            if a.kind == ResourceKind::Subscriber && a.resource_id != subscriber {
                return Err(ServiceError::NotFound);
            }
        }
        Ok(a)
    }
}
