//! Read caches in front of the [`FamilyStore`] and the [`DirectoryStore`] of any backend, for
//! the hot path's lookups that rarely change: project API tokens, address ownership, embed
//! widgets and session families.
//!
//! [`CachedStore`] stands in front of those two concerns only ([`CachedStore::in_front_of`]);
//! operators, keys, audit and transfer go to the backend directly (an import only succeeds into an
//! empty database, of which no cache holds anything). The cached reads answer from memory while an
//! entry is younger than the time-to-live. Every write that passes through the wrapper and could
//! change a cached answer evicts it first-hand (a revoked family, a revoked API token, a deleted
//! project or resource), so on the node that made a change it shows at once. Writes made elsewhere
//! — another node on the same PostgreSQL, or `tessera admin` on the same SQLite file — show within
//! the TTL plus one second ([`REREAD_GRACE_MS`]: while one request reads an expired entry again,
//! the others still answer from it). That is the documented staleness bound. Decisions that must be
//! exact are never made from the cache: refresh rotation and reuse detection always go to the
//! database.
//!
//! Each cache is bounded; a full shard is emptied rather than tracked for recency, which keeps
//! a lookup at one lock and one hash probe.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hash, RandomState};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;

use crate::clock::{Clock, UnixTime};
use crate::ids::{AddressId, ApiTokenId, FamilyId, ProjectId, ResourceId};
use crate::model::*;
use crate::store::{DirectoryStore, FamilyStore, StoreError, StoreResult, Stores};

/// How long cached answers live by default, in seconds. A change made on another node shows
/// within two seconds: the TTL plus [`REREAD_GRACE_MS`].
pub const DEFAULT_TTL: i64 = 1;

/// How long past its TTL an entry may still answer while one request reads it again. Without
/// it, every request for an expired entry went to the database until the first read came back:
/// on PostgreSQL under load that read took tens of milliseconds, the requests missing behind
/// it queued on the pool and made the next reads slower still, and half of all introspections
/// went to the database (`tessera bench`: 36,421 family reads for 75,714 introspections of 256
/// tokens). Now one request re-reads an expired entry and the others answer from it meanwhile,
/// for at most this long (the second the documentation has always allowed beyond the TTL).
pub const REREAD_GRACE_MS: i64 = 1000;

const SHARDS: usize = 16;

/// A cached answer.
struct Entry<V> {
    value: V,
    /// When it was read (taken before the read, so that the TTL bounds its age).
    read_ms: i64,
    /// When a request took on reading it again, once it had expired.
    reread_ms: Option<i64>,
}

/// A bounded map from keys to values stamped with when they were read.
struct TtlMap<K, V> {
    shards: Vec<Mutex<HashMap<K, Entry<V>>>>,
    hasher: RandomState,
    per_shard: usize,
    /// Milliseconds an entry lives.
    ttl_ms: i64,
}

impl<K: Hash + Eq, V: Clone> TtlMap<K, V> {
    fn new(capacity: usize, ttl_seconds: i64) -> Self {
        TtlMap {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            hasher: RandomState::new(),
            per_shard: (capacity / SHARDS).max(1),
            ttl_ms: ttl_seconds.saturating_mul(1000),
        }
    }

    fn shard(&self, key: &K) -> std::sync::MutexGuard<'_, HashMap<K, Entry<V>>> {
        let i = self.hasher.hash_one(key) as usize % SHARDS;
        // A panic while holding a shard cannot leave it half-written (inserts and removals
        // are single calls), so a poisoned lock is still safe to use.
        self.shards[i].lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The answer for `key`, or `None` when the caller must read it (and [`TtlMap::put`] it).
    ///
    /// An entry answers while it is younger than the TTL. Once it is older, the first caller
    /// gets `None` and reads it again; until that read is put (or for [`REREAD_GRACE_MS`],
    /// should it never be), other callers still get the old answer, if it is younger than the
    /// TTL plus the grace. Entries are stamped in milliseconds, so they expire spread over
    /// time rather than together at the turn of each second.
    fn get(&self, key: &K, now_ms: i64) -> Option<V> {
        if self.ttl_ms <= 0 {
            return None;
        }
        let mut shard = self.shard(key);
        let e = shard.get_mut(key)?;
        let age = now_ms - e.read_ms;
        if age < 0 || age >= self.ttl_ms + REREAD_GRACE_MS {
            return None;
        }
        if age < self.ttl_ms {
            return Some(e.value.clone());
        }
        match e.reread_ms {
            Some(at) if now_ms >= at && now_ms - at < REREAD_GRACE_MS => Some(e.value.clone()),
            _ => {
                e.reread_ms = Some(now_ms);
                None
            }
        }
    }

    /// Stores `value`, read at `read_ms` (taken before the read).
    fn put(&self, key: K, value: V, read_ms: i64) {
        if self.ttl_ms <= 0 {
            return;
        }
        let mut shard = self.shard(&key);
        if shard.len() >= self.per_shard && !shard.contains_key(&key) {
            shard.clear();
        }
        shard.insert(
            key,
            Entry {
                value,
                read_ms,
                reread_ms: None,
            },
        );
    }

    fn remove(&self, key: &K) {
        self.shard(key).remove(key);
    }

    /// Records what a read found, begun at `read_ms`: the value, or that it is gone (so that
    /// no other request answers from an expired entry while it waits out the grace).
    fn settle(&self, key: K, found: Option<V>, read_ms: i64) {
        match found {
            Some(v) => self.put(key, v, read_ms),
            None => self.remove(&key),
        }
    }

    fn clear(&self) {
        for s in &self.shards {
            s.lock().unwrap_or_else(|e| e.into_inner()).clear();
        }
    }
}

/// Read caches in front of a backend's families and directory (see the module documentation).
pub struct CachedStore {
    inner_families: Arc<dyn FamilyStore>,
    inner_directory: Arc<dyn DirectoryStore>,
    clock: Arc<dyn Clock>,
    api_tokens: TtlMap<(ProjectId, [u8; 32]), ApiToken>,
    /// Address ownership: the project an address belongs to.
    addresses: TtlMap<AddressId, ProjectId>,
    /// Address owners with the resource and its kind, for invites. Renames leave them as they
    /// are; only deletions forget them.
    owners: TtlMap<AddressId, AddressOwner>,
    embeds: TtlMap<[u8; 32], Embed>,
    families: TtlMap<FamilyId, Family>,
}

impl std::fmt::Debug for CachedStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CachedStore")
            .field("families", &self.inner_families)
            .field("directory", &self.inner_directory)
            .finish_non_exhaustive()
    }
}

impl CachedStore {
    /// `stores` with a cache in front of their families and directory; entries live `ttl`
    /// seconds (0 or less turns caching off).
    pub fn in_front_of(stores: Stores, clock: Arc<dyn Clock>, ttl: i64) -> Stores {
        let cached = Arc::new(CachedStore::new(&stores, clock, ttl));
        Stores {
            families: cached.clone(),
            directory: cached,
            ..stores
        }
    }

    /// Caches in front of the families and directory of `inner`; entries live `ttl` seconds
    /// (0 or less turns caching off).
    pub fn new(inner: &Stores, clock: Arc<dyn Clock>, ttl: i64) -> Self {
        CachedStore {
            inner_families: inner.families.clone(),
            inner_directory: inner.directory.clone(),
            clock,
            api_tokens: TtlMap::new(4096, ttl),
            addresses: TtlMap::new(65_536, ttl),
            owners: TtlMap::new(65_536, ttl),
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
        self.owners.clear();
        self.embeds.clear();
        self.families.clear();
    }
}

#[async_trait]
impl FamilyStore for CachedStore {
    async fn grant_subscriber(&self, grant: GrantWrite) -> StoreResult<ResourceId> {
        let revokes = grant.upsert.password_hash.is_some();
        let r = self.inner_families.grant_subscriber(grant).await;
        if revokes {
            self.forget_revoked_subject();
        }
        r
    }

    async fn create_family(&self, family: Family) -> StoreResult<()> {
        self.inner_families.create_family(family).await
    }

    async fn insert_families(&self, families: Vec<Family>) -> StoreResult<()> {
        self.inner_families.insert_families(families).await
    }

    async fn get_family(&self, id: FamilyId) -> StoreResult<Family> {
        let now = self.clock.now_millis();
        if let Some(f) = self.families.get(&id, now) {
            return Ok(f);
        }
        let read = self.inner_families.get_family(id).await;
        match &read {
            Ok(f) => self.families.settle(id, Some(f.clone()), now),
            Err(StoreError::NotFound) => self.families.settle(id, None, now),
            // The store failed: it said nothing about the family.
            Err(_) => {}
        }
        read
    }

    async fn rotate_family(&self, rotation: Rotation) -> StoreResult<RotateOutcome> {
        // Rotation is decided by the database, never by the cache; the cached row's
        // generation would be stale after it.
        self.families.remove(&rotation.id);
        self.inner_families.rotate_family(rotation).await
    }

    async fn revoke_family(&self, id: FamilyId, at: UnixTime) -> StoreResult<()> {
        let r = self.inner_families.revoke_family(id, at).await;
        self.families.remove(&id);
        r
    }

    async fn purge(&self, request: PurgeRequest) -> StoreResult<PurgeCounts> {
        let counts = self.inner_families.purge(request).await?;
        // Which families went is not reported; they were dead anyway, but a purge through the
        // cache must show at once like any other change made through it.
        if counts.families > 0 {
            self.families.clear();
        }
        Ok(counts)
    }

    async fn count_families(&self) -> StoreResult<u64> {
        self.inner_families.count_families().await
    }
}

#[async_trait]
impl DirectoryStore for CachedStore {
    async fn create_project(&self, project: Project, token: ApiToken) -> StoreResult<()> {
        self.inner_directory.create_project(project, token).await
    }

    async fn get_project(&self, id: ProjectId) -> StoreResult<Project> {
        self.inner_directory.get_project(id).await
    }

    async fn list_projects(&self) -> StoreResult<Vec<Project>> {
        self.inner_directory.list_projects().await
    }

    async fn delete_project(&self, id: ProjectId) -> StoreResult<()> {
        let r = self.inner_directory.delete_project(id).await;
        self.clear();
        r
    }

    async fn create_api_token(&self, token: ApiToken) -> StoreResult<()> {
        self.inner_directory.create_api_token(token).await
    }

    async fn list_api_tokens(&self, project: ProjectId) -> StoreResult<Vec<ApiToken>> {
        self.inner_directory.list_api_tokens(project).await
    }

    async fn revoke_api_token(&self, id: ApiTokenId, at: UnixTime) -> StoreResult<()> {
        let r = self.inner_directory.revoke_api_token(id, at).await;
        // Keyed by hash, not id: a rare revocation clears every credential.
        self.api_tokens.clear();
        r
    }

    async fn find_api_token(
        &self,
        project: ProjectId,
        hash: [u8; 32],
    ) -> StoreResult<Option<ApiToken>> {
        let now = self.clock.now_millis();
        if let Some(t) = self.api_tokens.get(&(project, hash), now) {
            return Ok(Some(t));
        }
        // Only hits are kept: a token created a moment ago must work at once, and wrong
        // secrets must not fill the cache.
        let found = self.inner_directory.find_api_token(project, hash).await?;
        self.api_tokens.settle((project, hash), found.clone(), now);
        Ok(found)
    }

    async fn create_resource(&self, new: NewResource) -> StoreResult<()> {
        self.inner_directory.create_resource(new).await
    }

    async fn get_resource(&self, project: ProjectId, id: ResourceId) -> StoreResult<Resource> {
        self.inner_directory.get_resource(project, id).await
    }

    async fn list_resources(&self, listing: ResourceListing) -> StoreResult<PageOf<Resource>> {
        self.inner_directory.list_resources(listing).await
    }

    async fn update_subscriber(&self, update: SubscriberUpdate) -> StoreResult<Resource> {
        let renamed = update.patch.display_name.is_some();
        let revokes = update.password_hash.is_some();
        let r = self.inner_directory.update_subscriber(update).await;
        if renamed {
            self.addresses.clear();
        }
        if revokes {
            self.forget_revoked_subject();
        }
        r
    }

    async fn update_room(&self, update: RoomUpdate) -> StoreResult<Resource> {
        let r = self.inner_directory.update_room(update).await;
        // Its address is renamed: forget the cached address records.
        self.addresses.clear();
        r
    }

    async fn delete_resource(&self, deletion: ResourceDeletion) -> StoreResult<()> {
        let r = self.inner_directory.delete_resource(deletion).await;
        // Its address goes with it (addresses are cached by id, not by resource).
        self.addresses.clear();
        self.owners.clear();
        if deletion.kind == ResourceKind::Subscriber {
            self.forget_revoked_subject();
        }
        r
    }

    async fn get_address(&self, project: ProjectId, id: AddressId) -> StoreResult<Address> {
        self.inner_directory.get_address(project, id).await
    }

    async fn address_owner(&self, project: ProjectId, id: AddressId) -> StoreResult<AddressOwner> {
        let now = self.clock.now_millis();
        let found = match self.owners.get(&id, now) {
            hit @ Some(_) => hit,
            None => {
                let read = match self.inner_directory.address_owner(project, id).await {
                    Ok(owner) => Some(owner),
                    Err(StoreError::NotFound) => None,
                    Err(e) => return Err(e),
                };
                self.owners.settle(id, read, now);
                read
            }
        };
        // Another project's address is not found, as the store would answer.
        found
            .filter(|owner| owner.project_id == project)
            .ok_or(StoreError::NotFound)
    }

    async fn list_addresses(
        &self,
        project: ProjectId,
        query: AddressQuery,
        page: Page,
    ) -> StoreResult<PageOf<Address>> {
        self.inner_directory
            .list_addresses(project, query, page)
            .await
    }

    async fn existing_addresses(
        &self,
        project: ProjectId,
        ids: &[AddressId],
    ) -> StoreResult<Vec<AddressId>> {
        let now = self.clock.now_millis();
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
            let existing = self
                .inner_directory
                .existing_addresses(project, &missing)
                .await?;
            for id in missing {
                let owned = existing.contains(&id);
                self.addresses.settle(id, owned.then_some(project), now);
                if owned {
                    found.push(id);
                }
            }
        }
        Ok(found)
    }

    async fn create_embed(&self, embed: Embed) -> StoreResult<()> {
        self.inner_directory.create_embed(embed).await
    }

    async fn find_embed(&self, token_hash: [u8; 32]) -> StoreResult<Option<Embed>> {
        let now = self.clock.now_millis();
        if let Some(e) = self.embeds.get(&token_hash, now) {
            return Ok(Some(e));
        }
        let found = self.inner_directory.find_embed(token_hash).await?;
        self.embeds.settle(token_hash, found.clone(), now);
        Ok(found)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_expired_entry_is_read_again_by_one_caller_while_the_others_answer_from_it() {
        let m: TtlMap<u8, &str> = TtlMap::new(64, 1);
        assert_eq!(m.get(&1, 0), None);
        m.put(1, "old", 0);
        assert_eq!(m.get(&1, 999), Some("old"));
        // Expired: the first caller reads again; until it puts, the others get the old answer.
        assert_eq!(m.get(&1, 1000), None);
        assert_eq!(m.get(&1, 1001), Some("old"));
        assert_eq!(m.get(&1, 1500), Some("old"));
        m.put(1, "new", 1000);
        assert_eq!(m.get(&1, 1999), Some("new"));
        // A re-read that never comes back: after the grace another caller takes it on, and
        // past the TTL plus the grace nobody answers from the old entry.
        assert_eq!(m.get(&1, 2000), None);
        assert_eq!(m.get(&1, 2999), Some("new"));
        assert_eq!(m.get(&1, 3000), None);
        assert_eq!(m.get(&1, 3001), None);
        // Removed (gone in the store): nobody answers from it.
        m.put(2, "two", 0);
        assert_eq!(m.get(&2, 1000), None);
        m.remove(&2);
        assert_eq!(m.get(&2, 1001), None);
        // An entry from the future (the clock moved back) is not trusted.
        m.put(3, "three", 5000);
        assert_eq!(m.get(&3, 4000), None);
    }

    #[test]
    fn a_zero_ttl_caches_nothing() {
        let m: TtlMap<u8, &str> = TtlMap::new(64, 0);
        m.put(1, "x", 0);
        assert_eq!(m.get(&1, 0), None);
    }
}
