//! Small cryptographic building blocks: random secrets, the keyed hash for high-entropy
//! credentials, the master key that wraps key material, and argon2id for human passwords.
//!
//! This module and [`crate::token`] are the only places that know the crypto crates.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

use crate::secret::Secret;

/// Bytes read from the OS at a time into each thread's pool.
const POOL: usize = 1024;

thread_local! {
    /// OS random bytes not yet handed out, and how many of them are used.
    static RANDOM_POOL: std::cell::RefCell<([u8; POOL], usize)> =
        const { std::cell::RefCell::new(([0; POOL], POOL)) };
}

/// Fills a fresh array from the operating system's CSPRNG.
///
/// The bytes are the OS's own, read a kilobyte at a time into a per-thread pool: a grant
/// needs half a dozen random values (nonces, token and family ids), and one `getrandom`
/// system call for each was a measurable share of the request. Each byte is handed out once
/// and overwritten with zero as it leaves the pool.
///
/// # Panics
/// Only if the operating system has no random source at all, in which case no token could be
/// issued safely anyway.
pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut out = [0u8; N];
    if N > POOL / 4 {
        getrandom::getrandom(&mut out).expect("the OS random source failed");
        return out;
    }
    RANDOM_POOL.with(|pool| {
        let mut pool = pool.borrow_mut();
        let (bytes, used) = &mut *pool;
        if *used + N > POOL {
            getrandom::getrandom(bytes).expect("the OS random source failed");
            *used = 0;
        }
        let taken = &mut bytes[*used..*used + N];
        out.copy_from_slice(taken);
        taken.fill(0);
        *used += N;
    });
    out
}

/// Lower-case hexadecimal, two digits per byte.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[(b >> 4) as usize] as char);
        s.push(DIGITS[(b & 15) as usize] as char);
    }
    s
}

/// Parses [`hex`] (either case); `None` for an odd length or a non-hex digit.
pub fn unhex(s: &str) -> Option<Vec<u8>> {
    let digit = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    let s = s.as_bytes();
    if s.len() % 2 != 0 {
        return None;
    }
    s.chunks(2)
        .map(|p| Some(digit(p[0])? << 4 | digit(p[1])?))
        .collect()
}

/// A 256-bit random secret in base64url, prefixed so that leaked credentials are recognisable
/// by secret scanners (`tsr_` for project API tokens, `tsk_` for operator API keys).
pub fn new_secret(prefix: &str) -> Secret<String> {
    Secret::new(format!(
        "{prefix}{}",
        URL_SAFE_NO_PAD.encode(random_bytes::<32>())
    ))
}

/// The master key: 32 bytes kept outside the database. It wraps every key stored in the
/// database and keys the credential hash.
#[derive(Clone)]
pub struct MasterKey {
    wrap: Aes256Gcm,
    credential_hash_key: [u8; 32],
    check: [u8; 32],
}

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey([redacted])")
    }
}

/// The master key could not be read.
#[derive(Debug, thiserror::Error)]
#[error("the master key must be base64 of exactly 32 bytes")]
pub struct BadMasterKey;

/// Key material could not be unwrapped: wrong master key or damaged row.
#[derive(Debug, thiserror::Error)]
#[error("stored key material could not be unwrapped with this master key")]
pub struct UnwrapError;

impl MasterKey {
    /// Builds the master key from raw bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        // Sub-keys are derived with HMAC under distinct labels so that the wrapping key and the
        // credential hash key are never the same bytes.
        let derive = |label: &[u8]| -> [u8; 32] {
            let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&bytes).expect("any key length");
            mac.update(label);
            mac.finalize().into_bytes().into()
        };
        let wrap_key = derive(b"tessera/v1/key-wrap");
        // The check value is a MAC of a fixed label under a third sub-key: stored in the
        // database, it tells a right key from a wrong one without revealing either sub-key.
        let mut check =
            <Hmac<Sha256> as Mac>::new_from_slice(&derive(b"tessera/v1/master-key-check"))
                .expect("any key length");
        check.update(b"tessera master key check");
        MasterKey {
            wrap: Aes256Gcm::new(&wrap_key.into()),
            credential_hash_key: derive(b"tessera/v1/credential-hash"),
            check: check.finalize().into_bytes().into(),
        }
    }

    /// Parses the base64 (standard alphabet, surrounding white space ignored) text form.
    pub fn from_base64(text: &str) -> Result<Self, BadMasterKey> {
        let raw = STANDARD.decode(text.trim()).map_err(|_| BadMasterKey)?;
        let bytes: [u8; 32] = raw.try_into().map_err(|_| BadMasterKey)?;
        Ok(Self::from_bytes(bytes))
    }

    /// A new random master key and its base64 text form.
    pub fn generate() -> (Self, Secret<String>) {
        let bytes = random_bytes::<32>();
        (Self::from_bytes(bytes), Secret::new(STANDARD.encode(bytes)))
    }

    /// The value a database records to recognise this key ([`crate::model::MasterKeyCheck`]).
    /// Equal for equal keys, different (but for a 2^-256 chance) for different ones.
    pub fn check_value(&self) -> [u8; 32] {
        self.check
    }

    /// Whether `recorded` is this key's check value (compared in constant time).
    pub fn matches_check(&self, recorded: &[u8; 32]) -> bool {
        ct_eq(&self.check, recorded)
    }

    /// Encrypts key material for storage; `label` (the kid) is bound as associated data so a
    /// wrapped key cannot be moved to another row.
    pub fn wrap(&self, label: &str, material: &[u8; 32]) -> Vec<u8> {
        let nonce = random_bytes::<12>();
        let mut out = nonce.to_vec();
        let ct = self
            .wrap
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: material,
                    aad: label.as_bytes(),
                },
            )
            .expect("AES-GCM encryption of 32 bytes cannot fail");
        out.extend_from_slice(&ct);
        out
    }

    /// Reverses [`MasterKey::wrap`].
    pub fn unwrap(&self, label: &str, wrapped: &[u8]) -> Result<[u8; 32], UnwrapError> {
        if wrapped.len() != 12 + 32 + 16 {
            return Err(UnwrapError);
        }
        let (nonce, ct) = wrapped.split_at(12);
        let pt = self
            .wrap
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: ct,
                    aad: label.as_bytes(),
                },
            )
            .map_err(|_| UnwrapError)?;
        pt.try_into().map_err(|_| UnwrapError)
    }

    /// The keyed hash under which high-entropy credentials (API tokens, API keys, embed tokens,
    /// refresh ids) are stored. A fast keyed hash is right here: the inputs carry 128+ bits of
    /// entropy, so there is nothing to brute-force, and a database leak alone does not let
    /// anyone test guesses without the master key.
    pub fn credential_hash(&self, secret: &str) -> [u8; 32] {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.credential_hash_key)
            .expect("any key length");
        mac.update(secret.as_bytes());
        mac.finalize().into_bytes().into()
    }
}

/// Compares two byte strings in constant time (for equal lengths).
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && bool::from(a.ct_eq(b))
}

/// argon2id with OWASP's minimum parameters (m = 19 MiB, t = 2, p = 1). The parameters are
/// stored inside the PHC string, so they can be raised later without invalidating old hashes.
pub mod password {
    use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
    use argon2::{Algorithm, Argon2, Params, Version};

    fn hasher() -> Argon2<'static> {
        let params = Params::new(19 * 1024, 2, 1, None).expect("valid argon2 parameters");
        Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
    }

    /// Hashes a password into a PHC string. Costs ~20 ms of CPU: call it off the async threads.
    pub fn hash(password: &str) -> String {
        let salt_bytes = super::random_bytes::<16>();
        let salt = SaltString::encode_b64(&salt_bytes).expect("16 bytes is a valid salt");
        hasher()
            .hash_password(password.as_bytes(), &salt)
            .expect("argon2 with valid parameters cannot fail")
            .to_string()
    }

    /// Does the same work as [`verify`] against a fixed hash and never matches: an unknown user
    /// then costs what a wrong password costs, so timing does not reveal which names exist.
    pub fn verify_nobody(password: &str) -> bool {
        static NOBODY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
        let phc = NOBODY.get_or_init(|| hash("tessera: no such operator"));
        let _ = verify(password, phc);
        false
    }

    /// Whether `phc` was made with other parameters than [`hash`] uses now, so that a
    /// successful login should store a fresh hash.
    pub fn needs_rehash(phc: &str) -> bool {
        let current = hasher();
        match PasswordHash::new(phc) {
            Ok(parsed) => {
                let now = current.params();
                parsed.algorithm != Algorithm::Argon2id.ident()
                    || Params::try_from(&parsed).map_or(true, |p| {
                        (p.m_cost(), p.t_cost(), p.p_cost())
                            != (now.m_cost(), now.t_cost(), now.p_cost())
                    })
            }
            Err(_) => true,
        }
    }

    /// Checks a password against a PHC string; a malformed stored hash never matches.
    pub fn verify(password: &str, phc: &str) -> bool {
        match PasswordHash::new(phc) {
            Ok(parsed) => hasher()
                .verify_password(password.as_bytes(), &parsed)
                .is_ok(),
            Err(_) => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pooled_random_bytes_never_repeat_across_refills() {
        // More than a few pools' worth, in sizes that do not divide the pool evenly.
        let mut seen = std::collections::HashSet::new();
        for _ in 0..2000 {
            assert!(seen.insert(random_bytes::<12>()), "a nonce repeated");
            assert!(seen.insert(random_bytes::<12>()));
            let big = random_bytes::<512>();
            assert!(big.iter().any(|&b| b != 0));
        }
    }

    #[test]
    fn wrap_round_trips_and_binds_the_label() {
        let (mk, _) = MasterKey::generate();
        let material = random_bytes::<32>();
        let wrapped = mk.wrap("kid-1", &material);
        assert_eq!(mk.unwrap("kid-1", &wrapped).unwrap(), material);
        assert!(mk.unwrap("kid-2", &wrapped).is_err());
        let (other, _) = MasterKey::generate();
        assert!(other.unwrap("kid-1", &wrapped).is_err());
    }

    #[test]
    fn the_check_value_tells_keys_apart_and_is_none_of_the_sub_keys() {
        let (mk, text) = MasterKey::generate();
        let again = MasterKey::from_base64(text.expose()).unwrap();
        assert_eq!(mk.check_value(), again.check_value());
        assert!(mk.matches_check(&again.check_value()));
        let (other, _) = MasterKey::generate();
        assert!(!mk.matches_check(&other.check_value()));
        assert_ne!(mk.check_value(), mk.credential_hash_key);
    }

    #[test]
    fn master_key_text_form_is_strict() {
        let (_, text) = MasterKey::generate();
        assert!(MasterKey::from_base64(text.expose()).is_ok());
        assert!(MasterKey::from_base64("c2hvcnQ=").is_err());
        assert!(
            format!("{:?}", MasterKey::from_base64(text.expose()).unwrap()).contains("redacted")
        );
    }

    #[test]
    fn old_parameters_ask_for_a_rehash() {
        use argon2::password_hash::{PasswordHasher, SaltString};
        let current = password::hash("pw");
        assert!(!password::needs_rehash(&current));
        let weak = argon2::Argon2::new(
            argon2::Algorithm::Argon2id,
            argon2::Version::V0x13,
            argon2::Params::new(8 * 1024, 1, 1, None).unwrap(),
        )
        .hash_password(b"pw", &SaltString::encode_b64(b"0123456789abcdef").unwrap())
        .unwrap()
        .to_string();
        assert!(password::verify("pw", &weak));
        assert!(password::needs_rehash(&weak));
        assert!(password::needs_rehash("not a phc string"));
        assert!(!password::verify_nobody("pw"));
    }

    #[test]
    fn password_hash_verifies_only_the_right_password() {
        let h = password::hash("hunter22");
        assert!(h.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"));
        assert!(password::verify("hunter22", &h));
        assert!(!password::verify("hunter23", &h));
        assert!(!password::verify("hunter22", "not a hash"));
    }
}
