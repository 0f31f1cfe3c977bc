//! Small cryptographic building blocks: random secrets, the keyed hash for high-entropy
//! credentials, the master key that wraps key material, argon2id for human passwords, and the
//! primitives the token formats compose (HMAC-SHA256, Ed25519, AES-256-GCM with a detached
//! tag).
//!
//! This is the only module that knows the crypto crates: the token formats ([`crate::token`],
//! [`crate::jws`]) are JOSE built from the types here, so reviewing what Tessera asks of the
//! crates means reading this file.

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

/// HMAC-SHA256 under one key, with the key schedule computed once: a token format keeps one
/// per key and clones it per message (two hash blocks' state, cheaper than re-keying).
#[derive(Clone)]
pub(crate) struct HmacSha256(Hmac<Sha256>);

impl HmacSha256 {
    /// Keys the MAC with `key` (any length).
    pub(crate) fn new(key: &[u8]) -> Self {
        HmacSha256(<Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC takes any key length"))
    }

    /// The tag of `input`.
    pub(crate) fn tag(&self, input: &[u8]) -> [u8; 32] {
        let mut mac = self.0.clone();
        mac.update(input);
        mac.finalize().into_bytes().into()
    }

    /// Whether `tag` is the tag of `input`, compared in constant time.
    pub(crate) fn verify(&self, input: &[u8], tag: &[u8]) -> bool {
        let mut mac = self.0.clone();
        mac.update(input);
        mac.verify_slice(tag).is_ok()
    }
}

/// An Ed25519 (RFC 8032) signing key, expanded once from its 32-byte seed.
pub(crate) struct Ed25519Signer(ed25519_dalek::SigningKey);

impl Ed25519Signer {
    /// The signing key of `seed`.
    pub(crate) fn from_seed(seed: &[u8; 32]) -> Self {
        Ed25519Signer(ed25519_dalek::SigningKey::from_bytes(seed))
    }

    /// The signature of `input`.
    pub(crate) fn sign(&self, input: &[u8]) -> [u8; 64] {
        use ed25519_dalek::Signer;
        self.0.sign(input).to_bytes()
    }

    /// The public key.
    pub(crate) fn public(&self) -> Ed25519Public {
        Ed25519Public(self.0.verifying_key())
    }
}

/// An Ed25519 public key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Ed25519Public(ed25519_dalek::VerifyingKey);

impl Ed25519Public {
    /// Whether `sig` is a signature of `input` under this key (false for a signature that is
    /// not 64 bytes).
    pub(crate) fn verify(&self, input: &[u8], sig: &[u8]) -> bool {
        use ed25519_dalek::Verifier;
        ed25519_dalek::Signature::from_slice(sig).is_ok_and(|s| self.0.verify(input, &s).is_ok())
    }

    /// The key's 32 bytes, as published.
    pub(crate) fn to_bytes(self) -> [u8; 32] {
        self.0.to_bytes()
    }
}

/// An AES-256-GCM key, its schedule computed once, for formats that place the nonce and the
/// tag themselves (the JWE's compact serialization carries them as separate parts).
pub(crate) struct Aes256GcmKey(Aes256Gcm);

/// Authentication failed (or a message too long for GCM, which no token is).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct AeadError;

impl Aes256GcmKey {
    /// The key of `material`.
    pub(crate) fn new(material: &[u8; 32]) -> Self {
        Aes256GcmKey(Aes256Gcm::new(material.into()))
    }

    /// Encrypts `buf` in place under the 96-bit `nonce`, authenticating `aad` too, and returns
    /// the 128-bit tag.
    pub(crate) fn seal(
        &self,
        nonce: &[u8; 12],
        aad: &[u8],
        buf: &mut [u8],
    ) -> Result<[u8; 16], AeadError> {
        use aes_gcm::aead::AeadInPlace;
        let tag = self
            .0
            .encrypt_in_place_detached(Nonce::from_slice(nonce), aad, buf)
            .map_err(|_| AeadError)?;
        Ok(tag.into())
    }

    /// Decrypts `buf` in place if `tag` authenticates it and `aad` under `nonce`; on failure
    /// `buf` is not plaintext and must be discarded.
    pub(crate) fn open(
        &self,
        nonce: &[u8; 12],
        aad: &[u8],
        buf: &mut [u8],
        tag: &[u8; 16],
    ) -> Result<(), AeadError> {
        use aes_gcm::aead::AeadInPlace;
        self.0
            .decrypt_in_place_detached(Nonce::from_slice(nonce), aad, buf, tag.into())
            .map_err(|_| AeadError)
    }
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

    fn unhex_array<const N: usize>(s: &str) -> [u8; N] {
        unhex(s).unwrap().try_into().unwrap()
    }

    #[test]
    fn the_token_primitives_give_the_published_answers() {
        // RFC 4231, test case 2 (HMAC-SHA256 of "what do ya want for nothing?" under "Jefe").
        let mac = HmacSha256::new(b"Jefe");
        let input = b"what do ya want for nothing?";
        let tag = mac.tag(input);
        assert_eq!(
            hex(&tag),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        assert!(mac.verify(input, &tag));
        assert!(!mac.verify(input, &tag[..31]));
        assert!(!mac.verify(b"what do ya want for nothing!", &tag));
        // RFC 8032 §7.1, test 1 (the empty message).
        let signer = Ed25519Signer::from_seed(&unhex_array(
            "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
        ));
        assert_eq!(
            hex(&signer.public().to_bytes()),
            "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"
        );
        let sig = signer.sign(b"");
        assert_eq!(
            hex(&sig),
            "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"
        );
        assert!(signer.public().verify(b"", &sig));
        assert!(!signer.public().verify(b"x", &sig));
        assert!(!signer.public().verify(b"", &sig[..63]));
        // NIST GCM test case 14 (AES-256, zero key and nonce, one zero block).
        let key = Aes256GcmKey::new(&[0; 32]);
        let mut buf = [0u8; 16];
        let tag = key.seal(&[0; 12], b"", &mut buf).unwrap();
        assert_eq!(hex(&buf), "cea7403d4d606b6e074ec5d3baf39d18");
        assert_eq!(hex(&tag), "d0d1c8a799996bf0265b98b5d48ab919");
        let mut bad = buf;
        bad[0] ^= 1;
        assert_eq!(key.open(&[0; 12], b"", &mut bad, &tag), Err(AeadError));
        assert_eq!(
            key.open(&[0; 12], b"aad", &mut buf.clone(), &tag),
            Err(AeadError)
        );
        key.open(&[0; 12], b"", &mut buf, &tag).unwrap();
        assert_eq!(buf, [0; 16]);
    }

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
