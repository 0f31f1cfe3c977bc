//! Loading the key ring from the store, and creating the first keys.
//!
//! Key material is stored wrapped under the master key; this module is where it is unwrapped
//! into a [`KeyRing`].

use crate::clock::Clock;
use crate::crypto::{random_bytes, MasterKey};
use crate::model::StoredKey;
use crate::store::{Store, StoreError};
use crate::token::{new_kid, KeyMaterial, KeyPurpose, KeyRing, KeyState};

/// Why keys could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum KeyLoadError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A stored key does not unwrap: most likely the wrong master key for this database.
    #[error("key {0} cannot be unwrapped: is this the master key this database was created with?")]
    WrongMasterKey(String),
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
/// ring.
pub async fn load_ring(
    store: &dyn Store,
    master: &MasterKey,
    clock: &dyn Clock,
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
    Ok(KeyRing::new(unwrap_all(master, &stored)?))
}
