//! Read caches in front of any [`Store`], for the hot path's lookups that rarely change:
//! project API tokens, address ownership, embed widgets and session families.
//!
//! [`CachedStore`] wraps a store and forwards every call; the cached reads answer from memory
//! while an entry is younger than the time-to-live. Every write that passes through the wrapper
//! and could change a cached answer evicts it first-hand (a revoked family, a revoked API token,
//! a deleted project or resource), so on the node that made a change it shows at once. Writes
//! made elsewhere — another node on the same PostgreSQL, or `tessera admin` on the same SQLite
//! file — show once the entry expires: that is the documented staleness bound, the TTL plus
//! the clock's one-second resolution. Decisions that must be exact are never made from the
//! cache: refresh rotation and reuse detection always go to the database.
//!
//! Each cache is bounded; a full shard is emptied rather than tracked for recency, which keeps
//! a lookup at one lock and one hash probe.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hash, RandomState};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;

use crate::clock::{Clock, UnixTime};
use crate::ids::{AddressId, ApiTokenId, FamilyId, OperatorId, ProjectId, ResourceId};
use crate::model::*;
use crate::store::{ExportRow, Store, StoreResult};

/// How long cached answers live by default, in seconds. With the clock's one-second
/// resolution, a change made on another node shows within two seconds.
pub const DEFAULT_TTL: i64 = 1;

const SHARDS: usize = 16;

/// A bounded map from keys to values stamped with when they were read.
struct TtlMap<K, V> {
    shards: Vec<Mutex<HashMap<K, (V, UnixTime)>>>,
    hasher: RandomState,
    per_shard: usize,
    ttl: i64,
}

impl<K: Hash + Eq, V: Clone> TtlMap<K, V> {
    fn new(capacity: usize, ttl: i64) -> Self {
        TtlMap {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            hasher: RandomState::new(),
            per_shard: (capacity / SHARDS).max(1),
            ttl,
        }
    }

    fn shard(&self, key: &K) -> std::sync::MutexGuard<'_, HashMap<K, (V, UnixTime)>> {
        let i = self.hasher.hash_one(key) as usize % SHARDS;
        // A panic while holding a shard cannot leave it half-written (inserts and removals
        // are single calls), so a poisoned lock is still safe to use.
        self.shards[i].lock().unwrap_or_else(|e| e.into_inner())
    }

    fn get(&self, key: &K, now: UnixTime) -> Option<V> {
        if self.ttl <= 0 {
            return None;
        }
        let shard = self.shard(key);
        match shard.get(key) {
            Some((v, at)) if now.0 < at.0 + self.ttl && now.0 >= at.0 => Some(v.clone()),
            _ => None,
        }
    }

    fn put(&self, key: K, value: V, now: UnixTime) {
        if self.ttl <= 0 {
            return;
        }
        let mut shard = self.shard(&key);
        if shard.len() >= self.per_shard && !shard.contains_key(&key) {
            shard.clear();
        }
        shard.insert(key, (value, now));
    }

    fn remove(&self, key: &K) {
        self.shard(key).remove(key);
    }

    fn clear(&self) {
        for s in &self.shards {
            s.lock().unwrap_or_else(|e| e.into_inner()).clear();
        }
    }
}

/// A [`Store`] with read caches in front of it (see the module documentation).
pub struct CachedStore {
    inner: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    api_tokens: TtlMap<(ProjectId, [u8; 32]), ApiToken>,
    /// Address ownership: the project an address belongs to.
    addresses: TtlMap<AddressId, ProjectId>,
    embeds: TtlMap<[u8; 32], Embed>,
    families: TtlMap<FamilyId, Family>,
}

impl std::fmt::Debug for CachedStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CachedStore")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl CachedStore {
    /// Wraps `inner`; entries live `ttl` seconds (0 or less turns caching off).
    pub fn new(inner: Arc<dyn Store>, clock: Arc<dyn Clock>, ttl: i64) -> Self {
        CachedStore {
            inner,
            clock,
            api_tokens: TtlMap::new(4096, ttl),
            addresses: TtlMap::new(65_536, ttl),
            embeds: TtlMap::new(4096, ttl),
            // A family is about 150 bytes here: 64 Ki of them stay well inside the memory
            // budget while covering every token a busy node introspects within a second.
            families: TtlMap::new(65_536, ttl),
        }
    }

    /// After the store revoked every family of a subject (a password set or changed, a
    /// subscriber deleted): families are cached by id, not by subject, and this is rare, so
    /// every cached family is forgotten.
    fn forget_revoked_subject(&self) {
        self.families.clear();
    }

    /// Forgets every cached answer.
    pub fn clear(&self) {
        self.api_tokens.clear();
        self.addresses.clear();
        self.embeds.clear();
        self.families.clear();
    }
}

#[async_trait]
impl Store for CachedStore {
    async fn create_project(&self, project: Project, token: ApiToken) -> StoreResult<()> {
        self.inner.create_project(project, token).await
    }

    async fn get_project(&self, id: ProjectId) -> StoreResult<Project> {
        self.inner.get_project(id).await
    }

    async fn create_api_token(&self, token: ApiToken) -> StoreResult<()> {
        self.inner.create_api_token(token).await
    }

    async fn list_api_tokens(&self, project: ProjectId) -> StoreResult<Vec<ApiToken>> {
        self.inner.list_api_tokens(project).await
    }

    async fn revoke_api_token(&self, id: ApiTokenId, at: UnixTime) -> StoreResult<()> {
        let r = self.inner.revoke_api_token(id, at).await;
        // Keyed by hash, not id: a rare revocation clears every credential.
        self.api_tokens.clear();
        r
    }

    async fn find_api_token(
        &self,
        project: ProjectId,
        hash: [u8; 32],
    ) -> StoreResult<Option<ApiToken>> {
        let now = self.clock.now();
        if let Some(t) = self.api_tokens.get(&(project, hash), now) {
            return Ok(Some(t));
        }
        // Only hits are kept: a token created a moment ago must work at once, and wrong
        // secrets must not fill the cache.
        let found = self.inner.find_api_token(project, hash).await?;
        if let Some(t) = &found {
            self.api_tokens.put((project, hash), t.clone(), now);
        }
        Ok(found)
    }

    async fn list_keys(&self) -> StoreResult<Vec<StoredKey>> {
        self.inner.list_keys().await
    }

    async fn insert_key(&self, key: StoredKey) -> StoreResult<()> {
        self.inner.insert_key(key).await
    }

    async fn create_resource(&self, new: NewResource) -> StoreResult<()> {
        self.inner.create_resource(new).await
    }

    async fn get_resource(&self, project: ProjectId, id: ResourceId) -> StoreResult<Resource> {
        self.inner.get_resource(project, id).await
    }

    async fn list_resources(
        &self,
        project: ProjectId,
        kind: Option<ResourceKind>,
        page: Page,
    ) -> StoreResult<PageOf<Resource>> {
        self.inner.list_resources(project, kind, page).await
    }

    async fn update_subscriber(
        &self,
        project: ProjectId,
        id: ResourceId,
        patch: SubscriberPatch,
        password_hash: Option<String>,
        at: UnixTime,
    ) -> StoreResult<Resource> {
        let renamed = patch.display_name.is_some();
        let revokes = password_hash.is_some();
        let r = self
            .inner
            .update_subscriber(project, id, patch, password_hash, at)
            .await;
        if renamed {
            self.addresses.clear();
        }
        if revokes {
            self.forget_revoked_subject();
        }
        r
    }

    async fn update_room(
        &self,
        project: ProjectId,
        id: ResourceId,
        kind: ResourceKind,
        patch: RoomPatch,
        at: UnixTime,
    ) -> StoreResult<Resource> {
        let r = self.inner.update_room(project, id, kind, patch, at).await;
        // Its address is renamed: forget the cached address records.
        self.addresses.clear();
        r
    }

    async fn delete_resource(
        &self,
        project: ProjectId,
        id: ResourceId,
        kind: ResourceKind,
        at: UnixTime,
    ) -> StoreResult<()> {
        let r = self.inner.delete_resource(project, id, kind, at).await;
        // Its address goes with it (addresses are cached by id, not by resource).
        self.addresses.clear();
        if kind == ResourceKind::Subscriber {
            self.forget_revoked_subject();
        }
        r
    }

    async fn get_address(&self, project: ProjectId, id: AddressId) -> StoreResult<Address> {
        self.inner.get_address(project, id).await
    }

    async fn list_addresses(
        &self,
        project: ProjectId,
        query: AddressQuery,
        page: Page,
    ) -> StoreResult<PageOf<Address>> {
        self.inner.list_addresses(project, query, page).await
    }

    async fn existing_addresses(
        &self,
        project: ProjectId,
        ids: &[AddressId],
    ) -> StoreResult<Vec<AddressId>> {
        let now = self.clock.now();
        let mut found = Vec::with_capacity(ids.len());
        let mut missing = Vec::new();
        for id in ids {
            match self.addresses.get(id, now) {
                Some(owner) if owner == project => found.push(*id),
                // Another project's address is as good as missing; the store decides.
                _ => missing.push(*id),
            }
        }
        if !missing.is_empty() {
            for id in self.inner.existing_addresses(project, &missing).await? {
                self.addresses.put(id, project, now);
                found.push(id);
            }
        }
        Ok(found)
    }

    async fn grant_subscriber(
        &self,
        project: ProjectId,
        upsert: SubscriberUpsert,
        family: Family,
        at: UnixTime,
    ) -> StoreResult<ResourceId> {
        let revokes = upsert.password_hash.is_some();
        let r = self
            .inner
            .grant_subscriber(project, upsert, family, at)
            .await;
        if revokes {
            self.forget_revoked_subject();
        }
        r
    }

    async fn create_family(&self, family: Family) -> StoreResult<()> {
        self.inner.create_family(family).await
    }

    async fn insert_families(&self, families: Vec<Family>) -> StoreResult<()> {
        self.inner.insert_families(families).await
    }

    async fn get_family(&self, id: FamilyId) -> StoreResult<Family> {
        let now = self.clock.now();
        if let Some(f) = self.families.get(&id, now) {
            return Ok(f);
        }
        let f = self.inner.get_family(id).await?;
        self.families.put(id, f.clone(), now);
        Ok(f)
    }

    async fn rotate_family(
        &self,
        project: ProjectId,
        id: FamilyId,
        generation: i64,
        at: UnixTime,
        tokens_expire_at: UnixTime,
    ) -> StoreResult<RotateOutcome> {
        // Rotation is decided by the database, never by the cache; the cached row's
        // generation would be stale after it.
        self.families.remove(&id);
        self.inner
            .rotate_family(project, id, generation, at, tokens_expire_at)
            .await
    }

    async fn revoke_family(&self, id: FamilyId, at: UnixTime) -> StoreResult<()> {
        let r = self.inner.revoke_family(id, at).await;
        self.families.remove(&id);
        r
    }

    async fn purge(&self, request: PurgeRequest) -> StoreResult<PurgeCounts> {
        let counts = self.inner.purge(request).await?;
        // Which families went is not reported; they were dead anyway, but a purge through the
        // cache must show at once like any other change made through it.
        if counts.families > 0 {
            self.families.clear();
        }
        Ok(counts)
    }

    async fn count_families(&self) -> StoreResult<u64> {
        self.inner.count_families().await
    }

    async fn activate_key(&self, kid: &str, at: UnixTime) -> StoreResult<()> {
        self.inner.activate_key(kid, at).await
    }

    async fn retire_key(&self, kid: &str, at: UnixTime) -> StoreResult<()> {
        self.inner.retire_key(kid, at).await
    }

    async fn destroy_key(&self, kid: &str) -> StoreResult<()> {
        self.inner.destroy_key(kid).await
    }

    async fn add_seal_counts(&self, counts: Vec<(String, u64)>) -> StoreResult<()> {
        self.inner.add_seal_counts(counts).await
    }

    async fn append_audit(&self, events: Vec<AuditEvent>) -> StoreResult<()> {
        self.inner.append_audit(events).await
    }

    async fn audit_events(
        &self,
        project: Option<ProjectId>,
        since: UnixTime,
        offset: u64,
        limit: u32,
    ) -> StoreResult<Vec<AuditEvent>> {
        self.inner.audit_events(project, since, offset, limit).await
    }

    async fn count_audit_events(
        &self,
        project: Option<ProjectId>,
        since: UnixTime,
    ) -> StoreResult<u64> {
        self.inner.count_audit_events(project, since).await
    }

    async fn list_projects(&self) -> StoreResult<Vec<Project>> {
        self.inner.list_projects().await
    }

    async fn delete_project(&self, id: ProjectId) -> StoreResult<()> {
        let r = self.inner.delete_project(id).await;
        self.clear();
        r
    }

    async fn create_operator(&self, operator: Operator) -> StoreResult<()> {
        self.inner.create_operator(operator).await
    }

    async fn get_operator(&self, id: OperatorId) -> StoreResult<Operator> {
        self.inner.get_operator(id).await
    }

    async fn find_operator(&self, username: &str) -> StoreResult<Option<Operator>> {
        self.inner.find_operator(username).await
    }

    async fn find_operator_by_key(&self, hash: [u8; 32]) -> StoreResult<Option<Operator>> {
        self.inner.find_operator_by_key(hash).await
    }

    async fn list_operators(&self) -> StoreResult<Vec<Operator>> {
        self.inner.list_operators().await
    }

    async fn update_operator(&self, id: OperatorId, patch: OperatorPatch) -> StoreResult<Operator> {
        self.inner.update_operator(id, patch).await
    }

    async fn set_operator_password(&self, id: OperatorId, hash: String) -> StoreResult<()> {
        self.inner.set_operator_password(id, hash).await
    }

    async fn delete_operator(&self, id: OperatorId) -> StoreResult<()> {
        self.inner.delete_operator(id).await
    }

    async fn create_operator_session(&self, session: OperatorSession) -> StoreResult<()> {
        self.inner.create_operator_session(session).await
    }

    async fn find_operator_session(&self, hash: [u8; 32]) -> StoreResult<Option<OperatorSession>> {
        self.inner.find_operator_session(hash).await
    }

    async fn delete_operator_session(&self, hash: [u8; 32]) -> StoreResult<()> {
        self.inner.delete_operator_session(hash).await
    }

    async fn create_embed(&self, embed: Embed) -> StoreResult<()> {
        self.inner.create_embed(embed).await
    }

    async fn find_embed(&self, token_hash: [u8; 32]) -> StoreResult<Option<Embed>> {
        let now = self.clock.now();
        if let Some(e) = self.embeds.get(&token_hash, now) {
            return Ok(Some(e));
        }
        let found = self.inner.find_embed(token_hash).await?;
        if let Some(e) = &found {
            self.embeds.put(token_hash, e.clone(), now);
        }
        Ok(found)
    }

    async fn export_all(&self) -> StoreResult<Vec<(&'static str, Vec<ExportRow>)>> {
        self.inner.export_all().await
    }

    async fn import_all(&self, tables: Vec<(String, Vec<ExportRow>)>) -> StoreResult<()> {
        let r = self.inner.import_all(tables).await;
        self.clear();
        r
    }
}
