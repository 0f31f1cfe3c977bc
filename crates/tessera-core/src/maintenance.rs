//! Background upkeep, shared by every node: keeping the key ring in step with the database
//! (loading new keys, promoting pending keys once every node has had time to load them,
//! rotating by age and by use, persisting seal counts) and purging dead rows.
//!
//! Each step is a plain async method so tests call it directly under a manual clock; the
//! server runs them on an interval.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::audit::AuditLog;
use crate::clock::{Clock, UnixTime};
use crate::crypto::{random_bytes, MasterKey};
use crate::keyring::{new_kid, KeyPurpose, KeyRing, KeyState};
use crate::keys::{unwrap_all, KeyLoadError};
use crate::model::{AuditEvent, PurgeCounts, PurgeRequest, StoredKey};
use crate::store::{FamilyStore, KeyStore, StoreResult, Stores};

/// Timings of key life cycle and cleanup, in seconds.
#[derive(Debug, Clone)]
pub struct KeyPolicy {
    /// How often nodes reload keys. A pending key is promoted only after twice this, so every
    /// node has loaded it before any token is sealed with it.
    pub sync_interval: i64,
    /// Rotate when the active key is older than this.
    pub rotation_period: i64,
    /// Rotate when the active key has sealed this many tokens. AES-GCM with random 96-bit
    /// nonces must stay well below 2^32 encryptions per key; this default (2^28) keeps the
    /// collision probability under 2^-40.
    pub max_seals: u64,
    /// How long a retired key keeps opening tokens: the longest token lifetime it could have
    /// made plus slack. After that it is destroyed.
    pub retired_lifetime: i64,
    /// How long audit events are kept; `None` keeps them forever.
    pub audit_retention: Option<i64>,
}

/// The default audit retention: 90 days.
pub const DEFAULT_AUDIT_RETENTION: i64 = 90 * 24 * 3600;

/// Rows of each kind one purge round removes. A round is one short transaction; on SQLite it
/// shares the writer with token grants, and deleting 1000 families there takes a few
/// milliseconds, which is what a grant in the same batch waits at most.
pub const PURGE_ROUND: u32 = 1000;

impl Default for KeyPolicy {
    fn default() -> Self {
        KeyPolicy {
            sync_interval: 5,
            rotation_period: 30 * 24 * 3600,
            max_seals: 1 << 28,
            retired_lifetime: 24 * 3600 + 300 + 60,
            audit_retention: Some(DEFAULT_AUDIT_RETENTION),
        }
    }
}

/// Creates a pending key for `purpose`.
pub fn pending_key(master: &MasterKey, purpose: KeyPurpose, now: UnixTime) -> StoredKey {
    let kid = new_kid(purpose);
    StoredKey {
        wrapped: master.wrap(&kid, &random_bytes::<32>()),
        kid,
        purpose,
        state: KeyState::Pending,
        created_at: now,
        activated_at: None,
        retired_at: None,
        sealed: 0,
    }
}

/// The upkeep of one node.
#[derive(Debug)]
pub struct Maintenance {
    keys: Arc<dyn KeyStore>,
    /// For the purge, which the families' store runs.
    families: Arc<dyn FamilyStore>,
    ring: Arc<KeyRing>,
    master: MasterKey,
    clock: Arc<dyn Clock>,
    policy: KeyPolicy,
    audit: AuditLog,
    persisted: Mutex<HashMap<String, u64>>,
}

impl Maintenance {
    /// Assembles the upkeep for a node's ring.
    pub fn new(
        stores: &Stores,
        ring: Arc<KeyRing>,
        master: MasterKey,
        clock: Arc<dyn Clock>,
        policy: KeyPolicy,
        audit: AuditLog,
    ) -> Self {
        Maintenance {
            keys: stores.keys.clone(),
            families: stores.families.clone(),
            ring,
            master,
            clock,
            policy,
            audit,
            persisted: Mutex::new(HashMap::new()),
        }
    }

    /// The policy.
    pub fn policy(&self) -> &KeyPolicy {
        &self.policy
    }

    fn event(&self, action: &str, subject: &str) {
        self.audit.record(AuditEvent {
            at: self.clock.now(),
            project_id: None,
            action: action.into(),
            actor: "system".into(),
            subject: subject.into(),
            detail: Default::default(),
        });
    }

    /// Every non-destroyed key with its encryption count: what the database holds plus what
    /// this node sealed since its last sync. For metrics.
    pub async fn key_stats(&self) -> Result<Vec<(StoredKey, u64)>, KeyLoadError> {
        let local: HashMap<String, u64> = self.ring.seal_counts().into_iter().collect();
        let persisted = self
            .persisted
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let stored = self.keys.list_keys().await?;
        Ok(stored
            .into_iter()
            .filter(|k| k.state != KeyState::Destroyed)
            .map(|k| {
                let unsynced = local
                    .get(&k.kid)
                    .copied()
                    .unwrap_or(0)
                    .saturating_sub(persisted.get(&k.kid).copied().unwrap_or(0));
                let total = (k.sealed.max(0) as u64).saturating_add(unsynced);
                (k, total)
            })
            .collect())
    }

    /// Persists seal counts, rotates if due, promotes pending keys whose propagation time has
    /// passed, and reloads the ring from the database.
    pub async fn sync_keys(&self) -> Result<(), KeyLoadError> {
        // Seal counts: persist the increase since the last sync, so the count survives
        // restarts and is shared by all nodes.
        let counts = self.ring.seal_counts();
        let deltas: Vec<(String, u64)> = {
            let mut persisted = self.persisted.lock().unwrap_or_else(|e| e.into_inner());
            counts
                .into_iter()
                .filter_map(|(kid, n)| {
                    let before = persisted.insert(kid.clone(), n).unwrap_or(0);
                    (n > before).then(|| (kid, n - before))
                })
                .collect()
        };
        if !deltas.is_empty() {
            self.keys.add_seal_counts(deltas).await?;
        }
        let now = self.clock.now();
        let stored = self.keys.list_keys().await?;
        for purpose in KeyPurpose::ALL {
            let of = |s: KeyState| {
                stored
                    .iter()
                    .filter(move |k| k.purpose == purpose && k.state == s)
            };
            let pending_exists = of(KeyState::Pending).next().is_some();
            let due = of(KeyState::Active).any(|k| {
                k.activated_at.unwrap_or(k.created_at).0 + self.policy.rotation_period <= now.0
                    || k.sealed as u64 >= self.policy.max_seals
            });
            if due && !pending_exists {
                let key = pending_key(&self.master, purpose, now);
                tracing::info!(kid = %key.kid, purpose = purpose.as_str(), "automatic rotation: new pending key");
                self.event("key.rotated", &key.kid);
                self.keys.insert_key(key).await?;
            }
            for k in of(KeyState::Pending) {
                if k.created_at.0 + 2 * self.policy.sync_interval <= now.0 {
                    self.keys.activate_key(&k.kid, now).await?;
                    tracing::info!(kid = %k.kid, purpose = purpose.as_str(), "key activated");
                    self.event("key.activated", &k.kid);
                }
            }
        }
        let stored = self.keys.list_keys().await?;
        self.ring.replace(unwrap_all(&self.master, &stored)?);
        Ok(())
    }

    /// One bounded purge round (see [`FamilyStore::purge`]): families whose tokens have all
    /// expired, expired operator sessions, audit events past the retention, and retired keys
    /// past their lifetime.
    async fn purge_round(&self) -> StoreResult<PurgeCounts> {
        let now = self.clock.now();
        let counts = self
            .families
            .purge(PurgeRequest {
                before: now.plus(-60),
                retired_before: now.plus(-self.policy.retired_lifetime),
                audit_before: self.policy.audit_retention.map(|r| now.plus(-r)),
                limit: PURGE_ROUND,
            })
            .await?;
        if counts.keys_destroyed > 0 {
            self.event("key.destroyed", "expired retired keys");
        }
        Ok(counts)
    }

    /// Purges everything that is due, in rounds back to back while [`PurgeCounts::hit_limit`]
    /// says more is waiting, and returns the total: a large backlog drains in short
    /// transactions that token grants interleave with.
    pub async fn purge(&self) -> StoreResult<PurgeCounts> {
        let mut total = PurgeCounts::default();
        loop {
            let round = self.purge_round().await?;
            total.add(round);
            if !round.hit_limit(PURGE_ROUND) {
                return Ok(total);
            }
        }
    }
}
