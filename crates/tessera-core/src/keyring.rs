//! Key material and the in-memory key ring that both token formats use.
//!
//! A key is 32 bytes of material with an id, a purpose and a life-cycle state. The ring holds
//! the loaded keys per purpose and knows which one seals (signs) new tokens; it knows nothing
//! of what a format does with a key. Each format turns a key's material into its own prepared
//! form, a `KeyForm` (the JWE's AES-GCM cipher in [`crate::token`], the JWS's subkeys in
//! [`crate::jws`]), which the ring builds on first use and keeps beside the key, so the
//! formats depend on the ring and the ring on neither. A key's purpose decides which format
//! uses it, so each key ever has one form.
//!
//! The ring is loaded from the store (unwrapped under the master key) by [`crate::keys`] and
//! swapped wholesale by key sync ([`crate::maintenance`]).

use std::any::Any;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, RwLock};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;

use crate::clock::UnixTime;
use crate::crypto::random_bytes;

/// What a key is for. Each purpose has its own keys, so a key never serves two token classes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyPurpose {
    /// Fabric access tokens (SAT).
    Access,
    /// Fabric refresh tokens.
    Refresh,
    /// Accounts API access tokens (JWS: an HMAC key, or an Ed25519 seed).
    Signing,
}

impl KeyPurpose {
    /// Stable text form used in storage and output.
    pub fn as_str(self) -> &'static str {
        match self {
            KeyPurpose::Access => "access",
            KeyPurpose::Refresh => "refresh",
            KeyPurpose::Signing => "signing",
        }
    }

    /// Parses [`KeyPurpose::as_str`].
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "access" => Some(KeyPurpose::Access),
            "refresh" => Some(KeyPurpose::Refresh),
            "signing" => Some(KeyPurpose::Signing),
            _ => None,
        }
    }

    /// Every purpose, for start-up checks.
    pub const ALL: [KeyPurpose; 3] = [KeyPurpose::Access, KeyPurpose::Refresh, KeyPurpose::Signing];
}

/// A key's life cycle: pending → active → retired (decrypt only) → destroyed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyState {
    /// Loaded by nodes but not yet used to seal.
    Pending,
    /// Seals new tokens (one per purpose) and opens old ones.
    Active,
    /// Opens tokens it made until they have all expired; seals nothing.
    Retired,
    /// Gone: tokens it made no longer open.
    Destroyed,
}

impl KeyState {
    /// Stable text form used in storage and output.
    pub fn as_str(self) -> &'static str {
        match self {
            KeyState::Pending => "pending",
            KeyState::Active => "active",
            KeyState::Retired => "retired",
            KeyState::Destroyed => "destroyed",
        }
    }

    /// Parses [`KeyState::as_str`].
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "pending" => Some(KeyState::Pending),
            "active" => Some(KeyState::Active),
            "retired" => Some(KeyState::Retired),
            "destroyed" => Some(KeyState::Destroyed),
            _ => None,
        }
    }
}

/// A key as handed to the ring: its id, purpose, state and plain material.
pub struct KeyMaterial {
    /// The key id carried in token headers.
    pub kid: String,
    /// What the key is for.
    pub purpose: KeyPurpose,
    /// Its state; destroyed keys are never loaded.
    pub state: KeyState,
    /// The 256-bit key.
    pub material: [u8; 32],
}

/// A key for tests: `byte` repeated as its material.
#[cfg(test)]
pub(crate) fn test_key(kid: &str, purpose: KeyPurpose, state: KeyState, byte: u8) -> KeyMaterial {
    KeyMaterial {
        kid: kid.into(),
        purpose,
        state,
        material: [byte; 32],
    }
}

impl std::fmt::Debug for KeyMaterial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyMaterial")
            .field("kid", &self.kid)
            .field("purpose", &self.purpose)
            .field("state", &self.state)
            .field("material", &"[redacted]")
            .finish()
    }
}

/// A new key id for a purpose: a short prefix naming the purpose plus 64 random bits.
pub fn new_kid(purpose: KeyPurpose) -> String {
    let prefix = match purpose {
        KeyPurpose::Access => "a",
        KeyPurpose::Refresh => "r",
        KeyPurpose::Signing => "s",
    };
    let mut s = String::from(prefix);
    s.push('-');
    URL_SAFE_NO_PAD.encode_string(random_bytes::<8>(), &mut s);
    s
}

/// What a token format makes of a key's material: prepared once per loaded key (a cipher's
/// key schedule, derived subkeys), because preparing it per token would cost more than the
/// token's own crypto.
pub(crate) trait KeyForm: Any + Send + Sync {
    /// Prepares `material` for this format.
    fn from_material(material: &[u8; 32]) -> Self;
}

/// One key as loaded in memory.
struct LoadedKey {
    /// Kept so that the format's form can be made on first use: the ring does not know which
    /// format a key serves until one asks for it.
    material: [u8; 32],
    /// Seals (or signatures) made with this key since it was loaded; persisted by the key
    /// manager.
    sealed: AtomicU64,
    /// The format's prepared form of `material`, made on first use.
    form: OnceLock<Box<dyn Any + Send + Sync>>,
}

impl LoadedKey {
    /// The key's form for format `F`: made on the first call; `None` if the key already serves
    /// another format (never, while each purpose belongs to one format).
    fn form<F: KeyForm>(&self) -> Option<&F> {
        self.form
            .get_or_init(|| Box::new(F::from_material(&self.material)))
            .downcast_ref()
    }
}

#[derive(Default)]
struct PurposeRing {
    active: Option<String>,
    keys: HashMap<String, Arc<LoadedKey>>,
}

/// The in-memory key ring: for each purpose, the keys that may open tokens and the one that
/// seals new ones. Cheap to share (`Arc`) and to swap wholesale when keys change.
///
/// The token formats add their operations: [`KeyRing::seal`] and [`KeyRing::open`] (JWE, in
/// [`crate::token`]); [`crate::jws::sign`] and [`crate::jws::verify`] take the ring.
#[derive(Default)]
pub struct KeyRing {
    rings: RwLock<HashMap<KeyPurpose, PurposeRing>>,
    /// Signing keys whose pre-subkey signatures are still accepted, and the time before which
    /// such a token must have been issued ([`KeyRing::accept_legacy_signatures`]).
    legacy_jws: RwLock<Option<(HashSet<String>, i64)>>,
}

impl std::fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KeyRing([redacted])")
    }
}

impl KeyRing {
    /// A ring holding `keys` (destroyed keys are skipped; pending keys open but never seal).
    pub fn new(keys: impl IntoIterator<Item = KeyMaterial>) -> Self {
        let ring = KeyRing::default();
        ring.replace(keys);
        ring
    }

    /// Replaces the ring's contents. Keys already loaded keep their in-memory seal counters
    /// and prepared forms.
    pub fn replace(&self, keys: impl IntoIterator<Item = KeyMaterial>) {
        let mut rings = self.rings.write().unwrap_or_else(|e| e.into_inner());
        let mut fresh: HashMap<KeyPurpose, PurposeRing> = HashMap::new();
        for k in keys {
            if k.state == KeyState::Destroyed {
                continue;
            }
            let old = rings
                .get(&k.purpose)
                .and_then(|r| r.keys.get(&k.kid))
                .cloned();
            let loaded = old.unwrap_or_else(|| {
                Arc::new(LoadedKey {
                    material: k.material,
                    sealed: AtomicU64::new(0),
                    form: OnceLock::new(),
                })
            });
            let pr = fresh.entry(k.purpose).or_default();
            if k.state == KeyState::Active {
                pr.active = Some(k.kid.clone());
            }
            pr.keys.insert(k.kid, loaded);
        }
        *rings = fresh;
    }

    /// Whether a purpose has an active key.
    pub fn has_active(&self, purpose: KeyPurpose) -> bool {
        let rings = self.rings.read().unwrap_or_else(|e| e.into_inner());
        rings.get(&purpose).is_some_and(|r| r.active.is_some())
    }

    /// Seal counts per kid since load, for the key manager to persist.
    pub fn seal_counts(&self) -> Vec<(String, u64)> {
        let rings = self.rings.read().unwrap_or_else(|e| e.into_inner());
        rings
            .values()
            .flat_map(|r| r.keys.iter())
            .map(|(kid, k)| (kid.clone(), k.sealed.load(Ordering::Relaxed)))
            .collect()
    }

    /// Runs `f` with the active key of `purpose` (its kid and its form for `F`) and counts one
    /// seal. `None` if the purpose has no active key.
    ///
    /// The read lock is held while `f` runs: it is shared, and only a key change (rare) waits
    /// for it.
    pub(crate) fn with_active<F: KeyForm, R>(
        &self,
        purpose: KeyPurpose,
        f: impl FnOnce(&str, &F) -> R,
    ) -> Option<R> {
        let rings = self.rings.read().unwrap_or_else(|e| e.into_inner());
        let ring = rings.get(&purpose)?;
        let kid = ring.active.as_deref()?;
        let key = ring.keys.get(kid)?;
        let out = f(kid, key.form()?);
        key.sealed.fetch_add(1, Ordering::Relaxed);
        Some(out)
    }

    /// Runs `f` with the key `kid` of `purpose`, in any loaded state. `None` if there is no
    /// such key for that purpose: a kid never selects a key of another purpose.
    pub(crate) fn with_key<F: KeyForm, R>(
        &self,
        purpose: KeyPurpose,
        kid: &str,
        f: impl FnOnce(&F) -> R,
    ) -> Option<R> {
        let rings = self.rings.read().unwrap_or_else(|e| e.into_inner());
        let key = rings.get(&purpose)?.keys.get(kid)?;
        Some(f(key.form()?))
    }

    /// The first `Some` that `f` returns for a key of `purpose` (in no particular order).
    pub(crate) fn find_key<F: KeyForm, R>(
        &self,
        purpose: KeyPurpose,
        mut f: impl FnMut(&F) -> Option<R>,
    ) -> Option<R> {
        let rings = self.rings.read().unwrap_or_else(|e| e.into_inner());
        rings
            .get(&purpose)?
            .keys
            .values()
            .find_map(|k| f(k.form()?))
    }

    /// `f` of every loaded key of `purpose`, sorted by kid (for stable output).
    pub(crate) fn each_key<F: KeyForm, R>(
        &self,
        purpose: KeyPurpose,
        mut f: impl FnMut(&str, &F) -> R,
    ) -> Vec<R> {
        let rings = self.rings.read().unwrap_or_else(|e| e.into_inner());
        let mut out: Vec<(&String, R)> = rings
            .get(&purpose)
            .map(|r| {
                r.keys
                    .iter()
                    .filter_map(|(kid, k)| Some((kid, f(kid, k.form()?))))
                    .collect()
            })
            .unwrap_or_default();
        out.sort_by(|a, b| a.0.cmp(b.0));
        out.into_iter().map(|(_, r)| r).collect()
    }

    /// Lets the Accounts JWS code accept signatures made as builds before separate subkeys made
    /// them (HS256 keyed with, and EdDSA seeded by, the raw material) by the signing keys
    /// `kids` on tokens issued before `before`, so that tokens issued before an upgrade keep
    /// working until they expire. Only keys that existed before the upgrade should be named;
    /// see [`crate::jws`] for the limits a legacy token must also meet.
    pub fn accept_legacy_signatures(
        &self,
        kids: impl IntoIterator<Item = String>,
        before: UnixTime,
    ) {
        let kids: HashSet<String> = kids.into_iter().collect();
        *self.legacy_jws.write().unwrap_or_else(|e| e.into_inner()) =
            (!kids.is_empty()).then_some((kids, before.0));
    }

    /// The time before which a pre-subkey signature by `kid` may have been made, if `kid`'s
    /// legacy signatures are accepted at all.
    pub(crate) fn legacy_signatures_before(&self, kid: &str) -> Option<i64> {
        let legacy = self.legacy_jws.read().unwrap_or_else(|e| e.into_inner());
        legacy
            .as_ref()
            .filter(|(kids, _)| kids.contains(kid))
            .map(|(_, before)| *before)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A form that records the material it was made from, to see what the ring hands out.
    struct Echo([u8; 32]);

    impl KeyForm for Echo {
        fn from_material(material: &[u8; 32]) -> Self {
            Echo(*material)
        }
    }

    /// Another format's form, to check that a key serves one format only.
    struct Other;

    impl KeyForm for Other {
        fn from_material(_: &[u8; 32]) -> Self {
            Other
        }
    }

    use super::test_key as key;

    #[test]
    fn the_active_key_seals_and_every_loaded_key_of_its_purpose_is_found() {
        let ring = KeyRing::new([
            key("a-1", KeyPurpose::Access, KeyState::Retired, 1),
            key("a-2", KeyPurpose::Access, KeyState::Active, 2),
            key("a-3", KeyPurpose::Access, KeyState::Pending, 3),
            key("a-4", KeyPurpose::Access, KeyState::Destroyed, 4),
            key("r-1", KeyPurpose::Refresh, KeyState::Active, 5),
        ]);
        assert!(ring.has_active(KeyPurpose::Access));
        assert!(!ring.has_active(KeyPurpose::Signing));
        assert_eq!(
            ring.with_active(KeyPurpose::Access, |kid, e: &Echo| (
                kid.to_string(),
                e.0[0]
            )),
            Some(("a-2".to_string(), 2))
        );
        assert!(ring
            .with_active(KeyPurpose::Signing, |_, _: &Echo| ())
            .is_none());
        // Any state but destroyed opens; a kid never selects a key of another purpose.
        assert_eq!(
            ring.with_key(KeyPurpose::Access, "a-1", |e: &Echo| e.0[0]),
            Some(1)
        );
        assert_eq!(
            ring.with_key(KeyPurpose::Access, "a-3", |e: &Echo| e.0[0]),
            Some(3)
        );
        assert!(ring
            .with_key(KeyPurpose::Access, "a-4", |_: &Echo| ())
            .is_none());
        assert!(ring
            .with_key(KeyPurpose::Access, "r-1", |_: &Echo| ())
            .is_none());
        assert_eq!(
            ring.each_key(KeyPurpose::Access, |kid, _: &Echo| kid.to_string()),
            ["a-1", "a-2", "a-3"]
        );
        assert_eq!(
            ring.find_key(KeyPurpose::Access, |e: &Echo| (e.0[0] == 3).then_some(3)),
            Some(3)
        );
        // Only the active key's use counted as a seal.
        let counts: HashMap<String, u64> = ring.seal_counts().into_iter().collect();
        assert_eq!(counts["a-2"], 1);
        assert_eq!(counts["a-1"], 0);
    }

    #[test]
    fn a_key_keeps_its_counter_and_form_across_a_replace_and_serves_one_format() {
        let ring = KeyRing::new([key("a-1", KeyPurpose::Access, KeyState::Active, 1)]);
        ring.with_active(KeyPurpose::Access, |_, _: &Echo| ());
        ring.replace([
            key("a-1", KeyPurpose::Access, KeyState::Retired, 1),
            key("a-2", KeyPurpose::Access, KeyState::Active, 2),
        ]);
        let counts: HashMap<String, u64> = ring.seal_counts().into_iter().collect();
        assert_eq!((counts["a-1"], counts["a-2"]), (1, 0));
        // The key already has its `Echo` form: another format does not get it.
        assert!(ring
            .with_key(KeyPurpose::Access, "a-1", |_: &Other| ())
            .is_none());
        ring.replace([key("a-1", KeyPurpose::Access, KeyState::Destroyed, 1)]);
        assert!(ring.seal_counts().is_empty());
    }

    #[test]
    fn kids_name_their_purpose_and_material_never_prints() {
        assert!(new_kid(KeyPurpose::Access).starts_with("a-"));
        assert!(new_kid(KeyPurpose::Refresh).starts_with("r-"));
        assert!(new_kid(KeyPurpose::Signing).starts_with("s-"));
        assert_ne!(new_kid(KeyPurpose::Access), new_kid(KeyPurpose::Access));
        let k = key("a-1", KeyPurpose::Access, KeyState::Active, 0xab);
        assert!(!format!("{k:?}").contains("171"));
        assert_eq!(format!("{:?}", KeyRing::new([k])), "KeyRing([redacted])");
    }
}
