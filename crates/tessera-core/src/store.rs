//! The storage contract, one trait per concern: [`FamilyStore`] (grants and token families),
//! [`DirectoryStore`] (projects, API tokens, resources, addresses, embeds), [`OperatorStore`]
//! (operators and their sessions), [`KeyStore`], [`AuditStore`] and [`TransferStore`] (moving
//! a whole installation). A backend (SQLite, PostgreSQL) implements them all ([`Backend`]);
//! services hold the [`Stores`] they need, each an `Arc<dyn Trait>`, so that a decorator such
//! as [`crate::cache::CachedStore`] stands in front of only the concerns it caches. Everything
//! above the traits sees only domain records and [`StoreError`].
//!
//! Every Fabric query takes the project id and filters by it *in the store*, so a record of
//! another project is indistinguishable from a missing one even if a handler forgets a check.
//! Every write method returns only after its transaction has committed: callers may hand out
//! tokens as soon as a write returns `Ok`.

use std::sync::Arc;

use async_trait::async_trait;

use crate::clock::UnixTime;
pub use crate::export::{ExportRow, EXPORT_TABLES};
use crate::ids::{AddressId, ApiTokenId, FamilyId, OperatorId, ProjectId, ResourceId};
use crate::model::*;

/// The few ways a store can fail.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// The record does not exist (in this project).
    #[error("not found")]
    NotFound,
    /// A uniqueness rule was violated; the string names the rule (e.g. `email`).
    #[error("conflict on {0}")]
    Conflict(String),
    /// The database failed or is unreachable; the message is for logs only.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// An import cannot be applied as given (an unknown table, a malformed row, a row the
    /// schema refuses, or a database that is not empty); the message says why.
    #[error("{0}")]
    Invalid(String),
}

/// Shorthand for store results.
pub type StoreResult<T> = Result<T, StoreError>;

/// Group commit's gathering step: waits for the first queued item, then takes every other one
/// already queued, up to `max` in `batch`. Returns `false` once every sender is gone and the
/// queue is empty.
pub async fn next_batch<T>(
    queue: &mut tokio::sync::mpsc::Receiver<T>,
    batch: &mut Vec<T>,
    max: usize,
) -> bool {
    let Some(first) = queue.recv().await else {
        return false;
    };
    batch.push(first);
    take_queued(queue, batch, max);
    true
}

/// Moves the items already queued into `batch` until it holds `max`, without waiting.
pub fn take_queued<T>(queue: &mut tokio::sync::mpsc::Receiver<T>, batch: &mut Vec<T>, max: usize) {
    while batch.len() < max {
        match queue.try_recv() {
            Ok(item) => batch.push(item),
            Err(_) => break,
        }
    }
}

/// Grants and token families: the hot path of issuance, refresh and introspection.
///
/// `grant_subscriber` lives here although it also upserts a subscriber: it is a grant (one
/// transaction whose purpose is opening a family), it is on the hot path with the other family
/// writes, and what it can change in a cache is families (setting a password revokes the
/// subject's families), not the directory.
#[async_trait]
pub trait FamilyStore: Send + Sync + std::fmt::Debug {
    /// Upserts `grant.upsert` by reference and opens `grant.family` for it, in one
    /// transaction. The reference's [`crate::ids::identity_key`] is matched against the subscribers'
    /// reference keys, then their email keys, then (when it is one) their ids; no match
    /// creates `grant.upsert.create`. Returns the subscriber id (the family's subject is set to it
    /// by the store).
    async fn grant_subscriber(&self, grant: GrantWrite) -> StoreResult<ResourceId>;
    /// Opens a family (guest, invite and embed grants).
    async fn create_family(&self, family: Family) -> StoreResult<()>;
    /// Opens many families in one transaction. For bulk loads (the benchmark's
    /// `--families` preload) that must not go through HTTP; `Conflict` if an id exists.
    async fn insert_families(&self, families: Vec<Family>) -> StoreResult<()>;
    /// Reads a family.
    async fn get_family(&self, id: FamilyId) -> StoreResult<Family>;
    /// Spends the rotation's generation of a family of its project in one conditional update,
    /// recording when the tokens about to be issued will expire.
    async fn rotate_family(&self, rotation: Rotation) -> StoreResult<RotateOutcome>;
    /// Revokes a family (idempotent).
    async fn revoke_family(&self, id: FamilyId, at: UnixTime) -> StoreResult<()>;
    /// One bounded purge round (it sits with the families: they are most of what it deletes,
    /// and the only part a cache must hear of): deletes up to `limit` families whose tokens have all expired,
    /// up to `limit` expired operator sessions and up to `limit` audit events older than the
    /// retention, and destroys retired keys past their lifetime. Callers repeat rounds while
    /// [`PurgeCounts::hit_limit`] says more may be waiting.
    ///
    /// A family's `tokens_expire_at` is never later than its `expires_at` (every write of the
    /// column takes the minimum), so a family is dead once its `tokens_expire_at` has passed.
    async fn purge(&self, request: PurgeRequest) -> StoreResult<PurgeCounts>;
    /// Counts family rows (for tests and metrics).
    async fn count_families(&self) -> StoreResult<u64>;
}

/// The directory of a project: the project itself and its API tokens, its resources
/// (subscribers, rooms, applications) and their addresses, and its embed widgets.
#[async_trait]
pub trait DirectoryStore: Send + Sync + std::fmt::Debug {
    // --- projects and API tokens ---

    /// Creates a project with its first API token.
    async fn create_project(&self, project: Project, token: ApiToken) -> StoreResult<()>;
    /// Reads a project.
    async fn get_project(&self, id: ProjectId) -> StoreResult<Project>;
    /// Every project, oldest first.
    async fn list_projects(&self) -> StoreResult<Vec<Project>>;
    /// Deletes a project with everything in it (resources, credentials, sessions), so every
    /// token it issued stops introspecting as active.
    async fn delete_project(&self, id: ProjectId) -> StoreResult<()>;
    /// Adds an API token to an existing project (`NotFound` if the project does not exist).
    async fn create_api_token(&self, token: ApiToken) -> StoreResult<()>;
    /// Lists a project's API tokens, revoked ones included.
    async fn list_api_tokens(&self, project: ProjectId) -> StoreResult<Vec<ApiToken>>;
    /// Revokes an API token.
    async fn revoke_api_token(&self, id: ApiTokenId, at: UnixTime) -> StoreResult<()>;
    /// Finds a live API token of a project by the hash of its secret.
    async fn find_api_token(
        &self,
        project: ProjectId,
        hash: [u8; 32],
    ) -> StoreResult<Option<ApiToken>>;

    // --- resources and addresses ---

    /// Creates a resource and its address. `Conflict("email")` when a subscriber with the
    /// same email (compared by [`crate::ids::identity_key`]) exists in the project.
    async fn create_resource(&self, new: NewResource) -> StoreResult<()>;
    /// Reads a resource of a project (any kind).
    async fn get_resource(&self, project: ProjectId, id: ResourceId) -> StoreResult<Resource>;
    /// Lists a project's resources, optionally of one kind.
    async fn list_resources(&self, listing: ResourceListing) -> StoreResult<PageOf<Resource>>;
    /// Updates a subscriber's profile and optionally its password hash.
    async fn update_subscriber(&self, update: SubscriberUpdate) -> StoreResult<Resource>;
    /// Updates a room (or application): replaces given fields, merges `data`.
    async fn update_room(&self, update: RoomUpdate) -> StoreResult<Resource>;
    /// Deletes a resource of the given kind with its address; for subscribers, also revokes
    /// every family whose subject it is.
    async fn delete_resource(&self, deletion: ResourceDeletion) -> StoreResult<()>;
    /// Reads an address of a project.
    async fn get_address(&self, project: ProjectId, id: AddressId) -> StoreResult<Address>;
    /// What an address of the project belongs to (`NotFound` for another project's). Every
    /// invite asks it; [`crate::cache::CachedStore`] keeps the answers.
    async fn address_owner(&self, project: ProjectId, id: AddressId) -> StoreResult<AddressOwner> {
        let a = self.get_address(project, id).await?;
        Ok(AddressOwner {
            project_id: a.project_id,
            resource_id: a.resource_id,
            kind: a.kind,
        })
    }
    /// Lists a project's addresses.
    async fn list_addresses(
        &self,
        project: ProjectId,
        query: AddressQuery,
        page: Page,
    ) -> StoreResult<PageOf<Address>>;
    /// Of `ids`, returns those that are addresses of the project, in the order asked. Only
    /// ownership is asked for (a guest grant checks ten addresses), so only ids come back.
    async fn existing_addresses(
        &self,
        project: ProjectId,
        ids: &[AddressId],
    ) -> StoreResult<Vec<AddressId>>;

    // --- embeds ---

    /// Creates an embed widget.
    async fn create_embed(&self, embed: Embed) -> StoreResult<()>;
    /// Finds a widget by the hash of its public token.
    async fn find_embed(&self, token_hash: [u8; 32]) -> StoreResult<Option<Embed>>;
}

/// Operators of the management plane and their Accounts sessions (refresh ids).
#[async_trait]
pub trait OperatorStore: Send + Sync + std::fmt::Debug {
    /// Creates an operator; `Conflict("username")` if the name is taken (compared by
    /// [`crate::ids::identity_key`]).
    async fn create_operator(&self, operator: Operator) -> StoreResult<()>;
    /// An operator by id.
    async fn get_operator(&self, id: OperatorId) -> StoreResult<Operator>;
    /// An operator by username (compared by [`crate::ids::identity_key`]).
    async fn find_operator(&self, username: &str) -> StoreResult<Option<Operator>>;
    /// An operator by the keyed hash of its API key.
    async fn find_operator_by_key(&self, hash: [u8; 32]) -> StoreResult<Option<Operator>>;
    /// Every operator, oldest first.
    async fn list_operators(&self) -> StoreResult<Vec<Operator>>;
    /// Changes an operator; disabling it also deletes its sessions, in the same transaction.
    async fn update_operator(&self, id: OperatorId, patch: OperatorPatch) -> StoreResult<Operator>;
    /// Replaces an operator's password hash.
    async fn set_operator_password(&self, id: OperatorId, hash: String) -> StoreResult<()>;
    /// Deletes an operator and its sessions.
    async fn delete_operator(&self, id: OperatorId) -> StoreResult<()>;
    /// Stores an Accounts refresh id (by hash).
    async fn create_operator_session(&self, session: OperatorSession) -> StoreResult<()>;
    /// Finds an Accounts refresh id by hash.
    async fn find_operator_session(&self, hash: [u8; 32]) -> StoreResult<Option<OperatorSession>>;
    /// Deletes an Accounts refresh id (idempotent).
    async fn delete_operator_session(&self, hash: [u8; 32]) -> StoreResult<()>;
}

/// Signing and sealing keys (stored wrapped under the master key), their life cycle and seal
/// counters, and the master-key check value.
#[async_trait]
pub trait KeyStore: Send + Sync + std::fmt::Debug {
    /// All keys, destroyed ones included.
    async fn list_keys(&self) -> StoreResult<Vec<StoredKey>>;
    /// Inserts a new key.
    async fn insert_key(&self, key: StoredKey) -> StoreResult<()>;
    /// Makes `kid` the active key of its purpose and retires the previously active one, in one
    /// transaction. Only a pending key can be activated.
    async fn activate_key(&self, kid: &str, at: UnixTime) -> StoreResult<()>;
    /// Retires a pending or active key.
    async fn retire_key(&self, kid: &str, at: UnixTime) -> StoreResult<()>;
    /// Destroys a key: state destroyed, material erased.
    async fn destroy_key(&self, kid: &str) -> StoreResult<()>;
    /// Adds seal counts (kid, count since last call) to the persisted counters.
    async fn add_seal_counts(&self, counts: Vec<(String, u64)>) -> StoreResult<()>;
    /// The recorded master-key check, if any (databases from before it existed have none until
    /// a command with the right key records it).
    async fn master_key_check(&self) -> StoreResult<Option<MasterKeyCheck>>;
    /// Records `check` unless a check is already recorded, and returns the one the database
    /// holds afterwards: the first writer wins, so two processes with different keys racing on
    /// a new database cannot both believe their key is the database's.
    async fn record_master_key_check(&self, check: MasterKeyCheck) -> StoreResult<MasterKeyCheck>;
}

/// The audit log.
#[async_trait]
pub trait AuditStore: Send + Sync + std::fmt::Debug {
    /// Appends audit events (called in batches, off the request path).
    async fn append_audit(&self, events: Vec<AuditEvent>) -> StoreResult<()>;
    /// Reads the audit events `filter` selects, oldest first, skipping the first
    /// `page.offset`.
    async fn audit_events(
        &self,
        filter: AuditFilter,
        page: AuditPage,
    ) -> StoreResult<Vec<AuditEvent>>;
    /// Counts what [`AuditStore::audit_events`] would page through.
    async fn count_audit_events(&self, filter: AuditFilter) -> StoreResult<u64>;
}

/// Moving an installation (`tessera admin export` / `import`).
#[async_trait]
pub trait TransferStore: Send + Sync + std::fmt::Debug {
    /// Every row of every table of [`EXPORT_TABLES`], in that order, read in one consistent
    /// snapshot and written in the backend-neutral format of [`crate::export`]; each table's
    /// rows in the order of its primary key.
    async fn export_all(&self) -> StoreResult<Vec<(&'static str, Vec<ExportRow>)>>;
    /// Writes an export into this store in one transaction, table by table in the order of
    /// [`EXPORT_TABLES`] whatever the order given, keeping every id, hash and sequence number
    /// (new audit events continue after the imported ones). Refuses, with `Invalid` and
    /// without writing anything, a store that already holds a row in any of those tables (so
    /// that two installations are never merged), an unknown table name, a malformed row, and
    /// any row the schema refuses (a duplicate, a missing parent). A master-key check that a
    /// command recorded on the otherwise empty target does not count as a row: it is replaced
    /// by the export's (the imported keys are wrapped under the source's master key).
    async fn import_all(&self, tables: Vec<(String, Vec<ExportRow>)>) -> StoreResult<()>;
}

/// A whole backend: one object implementing every concern (both store crates do).
pub trait Backend:
    FamilyStore + DirectoryStore + OperatorStore + KeyStore + AuditStore + TransferStore
{
}

impl<T> Backend for T where
    T: FamilyStore + DirectoryStore + OperatorStore + KeyStore + AuditStore + TransferStore
{
}

/// One store per concern, as the services take them. Cloning copies six `Arc`s.
#[derive(Debug, Clone)]
pub struct Stores {
    /// Grants and token families.
    pub families: Arc<dyn FamilyStore>,
    /// Projects, API tokens, resources, addresses and embeds.
    pub directory: Arc<dyn DirectoryStore>,
    /// Operators and their sessions.
    pub operators: Arc<dyn OperatorStore>,
    /// Keys and the master-key check.
    pub keys: Arc<dyn KeyStore>,
    /// The audit log.
    pub audit: Arc<dyn AuditStore>,
    /// Export and import of the whole installation.
    pub transfer: Arc<dyn TransferStore>,
}

impl Stores {
    /// Every concern served by the one `backend`.
    pub fn from_backend<B: Backend + 'static>(backend: Arc<B>) -> Self {
        Stores {
            families: backend.clone(),
            directory: backend.clone(),
            operators: backend.clone(),
            keys: backend.clone(),
            audit: backend.clone(),
            transfer: backend,
        }
    }
}
