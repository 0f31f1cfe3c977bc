//! Loading the key ring from the store, and creating the first keys.
//!
//! Key material is stored wrapped under the master key; this module is where it is unwrapped
//! into a [`KeyRing`].

use crate::clock::Clock;
use crate::crypto::{random_bytes, MasterKey};
use crate::keyring::{new_kid, KeyMaterial, KeyPurpose, KeyRing, KeyState};
use crate::model::{MasterKeyCheck, StoredKey};
use crate::store::{KeyStore, StoreError};

/// Why keys could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum KeyLoadError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A stored key does not unwrap: most likely the wrong master key for this database.
    #[error("key {0} cannot be unwrapped: is this the master key this database was created with?")]
    WrongMasterKey(String),
    /// The master key is not the one the database's check value was recorded with.
    #[error("{WRONG_MASTER_KEY}")]
    MasterKeyMismatch,
}

/// What every command says when it is given another master key than its database's.
pub const WRONG_MASTER_KEY: &str = "this is not the master key of this database (its check \
     value was recorded with another key); nothing was written. Use the key the database was \
     created with: TESSERA_MASTER_KEY, --master-key-file, or the .master-key file beside a \
     SQLite database";

/// Refuses a master key that is not the database's, before anything is written with it, and
/// returns the database's check (recording it first if the database has none yet).
///
/// A database with a check compares it. A database without one (created before the check
/// existed, or new) is checked by unwrapping every stored key, and the check is recorded only
/// if they all unwrap: from then on the comparison alone decides, also for commands that never
/// unwrap a key (creating an API token writes a hash under the master key). A database whose
/// only keyed rows are credential hashes, with no key, cannot be checked that way (a hash of an
/// unknown secret proves nothing); its check records the key first given.
pub async fn check_master_key(
    store: &dyn KeyStore,
    master: &MasterKey,
    clock: &dyn Clock,
) -> Result<MasterKeyCheck, KeyLoadError> {
    if let Some(found) = store.master_key_check().await? {
        return if master.matches_check(&found.value) {
            Ok(found)
        } else {
            Err(KeyLoadError::MasterKeyMismatch)
        };
    }
    let stored = store.list_keys().await?;
    if unwrap_all(master, &stored).is_err() {
        return Err(KeyLoadError::MasterKeyMismatch);
    }
    let recorded = store
        .record_master_key_check(MasterKeyCheck {
            value: master.check_value(),
            recorded_at: clock.now(),
        })
        .await?;
    // Another process may have recorded its own key's check between the read and the write.
    if master.matches_check(&recorded.value) {
        Ok(recorded)
    } else {
        Err(KeyLoadError::MasterKeyMismatch)
    }
}

/// Whether the database holds anything that only its master key opens: a key or a check value.
/// A new master key is generated only for a database that holds neither.
pub async fn holds_keys(store: &dyn KeyStore) -> Result<bool, StoreError> {
    Ok(store.master_key_check().await?.is_some() || !store.list_keys().await?.is_empty())
}

/// Unwraps every usable stored key into ring material.
pub fn unwrap_all(
    master: &MasterKey,
    stored: &[StoredKey],
) -> Result<Vec<KeyMaterial>, KeyLoadError> {
    stored
        .iter()
        .filter(|k| k.state != KeyState::Destroyed)
        .map(|k| {
            let material = master
                .unwrap(&k.kid, &k.wrapped)
                .map_err(|_| KeyLoadError::WrongMasterKey(k.kid.clone()))?;
            Ok(KeyMaterial {
                kid: k.kid.clone(),
                purpose: k.purpose,
                state: k.state,
                material,
            })
        })
        .collect()
}

/// Makes sure every purpose has an active key (creating one on first start), then loads the
/// ring. Accounts tokens signed before JWS subkeys (by a build older than the master-key
/// check `check`, which came in the same release) keep verifying until they expire: only with
/// the signing keys that existed before the check was recorded, and only if issued before it.
pub async fn load_ring(
    store: &dyn KeyStore,
    master: &MasterKey,
    clock: &dyn Clock,
    check: &MasterKeyCheck,
) -> Result<KeyRing, KeyLoadError> {
    let mut stored = store.list_keys().await?;
    for purpose in KeyPurpose::ALL {
        let has_active = stored
            .iter()
            .any(|k| k.purpose == purpose && k.state == KeyState::Active);
        if !has_active {
            let kid = new_kid(purpose);
            let now = clock.now();
            let key = StoredKey {
                wrapped: master.wrap(&kid, &random_bytes::<32>()),
                kid,
                purpose,
                state: KeyState::Active,
                created_at: now,
                activated_at: Some(now),
                retired_at: None,
                sealed: 0,
            };
            store.insert_key(key.clone()).await?;
            tracing::info!(kid = %key.kid, purpose = purpose.as_str(), "created the first key");
            stored.push(key);
        }
    }
    let ring = KeyRing::new(unwrap_all(master, &stored)?);
    let legacy = stored
        .iter()
        .filter(|k| k.purpose == KeyPurpose::Signing && k.created_at < check.recorded_at)
        .map(|k| k.kid.clone());
    ring.accept_legacy_signatures(legacy, check.recorded_at);
    Ok(ring)
}
