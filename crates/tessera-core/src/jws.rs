//! Accounts API access tokens: compact JWS with the claims of the original (accounts-api.md §5).
//!
//! HS256 by default, as the original signs; EdDSA (Ed25519) when resource servers should verify
//! with a published public key. Both take their 32 bytes of material from the `signing` purpose
//! of the [`KeyRing`], so these keys rotate, retire and are destroyed like the Fabric keys.
//!
//! Verification pins everything before any crypto runs: the header must be exactly
//! `{"alg", "kid"}` (plus an optional `"typ": "JWT"`), `alg` must be the configured algorithm,
//! and `kid` selects only among signing keys.
//!
//! # Subkeys
//!
//! A signing key's 32 bytes are never used directly: the HS256 secret is
//! `HMAC-SHA256(material, "tessera/v2/jws/hs256")` and the Ed25519 seed is
//! `HMAC-SHA256(material, "tessera/v2/jws/ed25519")`, so the secret MAC key and the seed of a
//! published public key are never the same bytes. Earlier builds used the material as both.
//! Tokens they signed keep verifying until they expire, through a narrow legacy path: only for
//! signing keys that existed before the upgrade, only for tokens issued before it
//! ([`KeyRing::accept_legacy_signatures`]), and only for tokens whose lifetime is at most
//! [`LEGACY_MAX_LIFETIME`] (what those builds issued), so the path closes by itself an hour
//! after the upgrade. A forged token gains nothing from it: it needs a signature under the raw
//! material, which only the old builds made. And a token an attacker kept from before holds
//! `HMAC(material, signing input)` for a signing input that is base64url with a dot; the
//! labels contain `/`, so no signature ever made is one of the subkeys.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::{Deserialize, Serialize};

use crate::clock::UnixTime;
use crate::crypto::{Ed25519Public, Ed25519Signer, HmacSha256};
use crate::keyring::{KeyForm, KeyPurpose, KeyRing};
use crate::token::MAX_TOKEN_LEN;

/// The issuer every Accounts token carries (the original's value).
pub const ISSUER: &str = "vcf-auth";
/// The audience every Accounts token carries (the original's value).
pub const AUDIENCE: &str = "sddc-services";

/// How Accounts tokens are signed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SigningAlg {
    /// HMAC-SHA256 with a secret key, as the original; nothing to publish.
    #[default]
    Hs256,
    /// Ed25519; public keys are published as a JWKS.
    EdDsa,
}

impl SigningAlg {
    /// The JOSE name.
    pub fn as_str(self) -> &'static str {
        match self {
            SigningAlg::Hs256 => "HS256",
            SigningAlg::EdDsa => "EdDSA",
        }
    }

    /// Parses [`SigningAlg::as_str`].
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "HS256" => Some(SigningAlg::Hs256),
            "EdDSA" => Some(SigningAlg::EdDsa),
            _ => None,
        }
    }
}

/// The longest lifetime of an Accounts access token signed before subkeys (the 1 h the
/// builds before them issued); a legacy-signed token claiming a longer one is refused.
pub const LEGACY_MAX_LIFETIME: i64 = 3600;

/// The label of the HS256 subkey. Not a possible JWS signing input (it contains `/`).
const HS256_LABEL: &[u8] = b"tessera/v2/jws/hs256";
/// The label of the Ed25519 subkey. Not a possible JWS signing input (it contains `/`).
const ED25519_LABEL: &[u8] = b"tessera/v2/jws/ed25519";

/// The subkey of `material` for `label`.
fn subkey(material: &[u8; 32], label: &[u8]) -> [u8; 32] {
    HmacSha256::new(material).tag(label)
}

/// A signing key's two uses of its material, each through its own subkey, prepared once per
/// loaded key (the ring keeps it as the key's [`KeyForm`]); and the raw material's verifiers,
/// for the legacy path.
struct SigningKey {
    hmac: HmacSha256,
    ed: Ed25519Signer,
    ed_public: Ed25519Public,
    legacy_hmac: HmacSha256,
    legacy_ed: Ed25519Public,
}

impl KeyForm for SigningKey {
    /// Prepares `material` for both algorithms.
    fn from_material(material: &[u8; 32]) -> Self {
        let ed = Ed25519Signer::from_seed(&subkey(material, ED25519_LABEL));
        SigningKey {
            hmac: HmacSha256::new(&subkey(material, HS256_LABEL)),
            ed_public: ed.public(),
            ed,
            legacy_hmac: HmacSha256::new(material),
            legacy_ed: Ed25519Signer::from_seed(material).public(),
        }
    }
}

impl SigningKey {
    /// Whether `sig` is the signature builds before subkeys made over `input` (the raw
    /// material as HMAC key or Ed25519 seed).
    fn verify_legacy(&self, alg: SigningAlg, input: &[u8], sig: &[u8]) -> bool {
        match alg {
            SigningAlg::Hs256 => self.legacy_hmac.verify(input, sig),
            SigningAlg::EdDsa => self.legacy_ed.verify(input, sig),
        }
    }

    fn sign(&self, alg: SigningAlg, input: &[u8]) -> Vec<u8> {
        match alg {
            SigningAlg::Hs256 => self.hmac.tag(input).to_vec(),
            SigningAlg::EdDsa => self.ed.sign(input).to_vec(),
        }
    }

    fn verify(&self, alg: SigningAlg, input: &[u8], sig: &[u8]) -> bool {
        match alg {
            // Constant-time comparison.
            SigningAlg::Hs256 => self.hmac.verify(input, sig),
            SigningAlg::EdDsa => self.ed_public.verify(input, sig),
        }
    }
}

/// The claims of an Accounts access token, named as the original names them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountsClaims {
    /// Token id.
    pub jti: String,
    /// Always [`ISSUER`].
    pub iss: String,
    /// Always [`AUDIENCE`].
    pub aud: String,
    /// The operator's username.
    pub sub: String,
    /// The operator's username (again, as the original).
    pub user: String,
    /// The operator's username (again, as the original).
    pub name: String,
    /// Permission strings of the operator's role.
    pub scope: Vec<String>,
    /// Issued at (Unix seconds).
    pub iat: i64,
    /// Not before (= `iat`).
    pub nbf: i64,
    /// Expiry (Unix seconds).
    pub exp: i64,
}

#[derive(Serialize)]
struct HeaderOut<'a> {
    alg: &'a str,
    kid: &'a str,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct HeaderIn<'a> {
    alg: &'a str,
    kid: &'a str,
    #[serde(default)]
    typ: Option<&'a str>,
}

/// Why a JWS was not accepted (deliberately coarse: callers answer 401 for all of them).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum JwsError {
    /// Not a well-formed compact JWS of the expected profile.
    #[error("malformed token")]
    Malformed,
    /// Unknown key, or the signature does not verify.
    #[error("bad signature")]
    BadSignature,
    /// Outside its validity period (or not ours: wrong issuer or audience).
    #[error("expired or not yet valid")]
    Expired,
    /// There is no active signing key.
    #[error("no active signing key")]
    NoKey,
}

/// Signs `claims` with the active signing key.
pub fn sign(ring: &KeyRing, alg: SigningAlg, claims: &AccountsClaims) -> Result<String, JwsError> {
    let payload = serde_json::to_vec(claims).map_err(|_| JwsError::Malformed)?;
    ring.with_active(KeyPurpose::Signing, |kid, key: &SigningKey| {
        let header = serde_json::to_vec(&HeaderOut {
            alg: alg.as_str(),
            kid,
        })
        .expect("a header always serializes");
        let mut out = URL_SAFE_NO_PAD.encode(header);
        out.push('.');
        URL_SAFE_NO_PAD.encode_string(&payload, &mut out);
        let sig = key.sign(alg, out.as_bytes());
        out.push('.');
        URL_SAFE_NO_PAD.encode_string(sig, &mut out);
        out
    })
    .ok_or(JwsError::NoKey)
}

/// Verifies a token: profile, key, signature, issuer, audience and validity period (with
/// `leeway` seconds of clock skew).
pub fn verify(
    ring: &KeyRing,
    alg: SigningAlg,
    token: &str,
    now: UnixTime,
    leeway: i64,
) -> Result<AccountsClaims, JwsError> {
    if token.len() > MAX_TOKEN_LEN {
        return Err(JwsError::Malformed);
    }
    let mut parts = token.split('.');
    let (Some(h), Some(p), Some(s), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(JwsError::Malformed);
    };
    let header = URL_SAFE_NO_PAD.decode(h).map_err(|_| JwsError::Malformed)?;
    let header: HeaderIn = serde_json::from_slice(&header).map_err(|_| JwsError::Malformed)?;
    if header.alg != alg.as_str() || header.typ.is_some_and(|t| t != "JWT") {
        return Err(JwsError::Malformed);
    }
    let sig = URL_SAFE_NO_PAD.decode(s).map_err(|_| JwsError::Malformed)?;
    let input = &token.as_bytes()[..h.len() + 1 + p.len()];
    let good = ring
        .with_key(KeyPurpose::Signing, header.kid, |key: &SigningKey| {
            key.verify(alg, input, &sig)
        })
        .unwrap_or(false);
    // The legacy path is tried only for a key named for it, and only after the subkey failed.
    let legacy_before = if good {
        None
    } else {
        ring.legacy_signatures_before(header.kid).filter(|_| {
            ring.with_key(KeyPurpose::Signing, header.kid, |key: &SigningKey| {
                key.verify_legacy(alg, input, &sig)
            })
            .unwrap_or(false)
        })
    };
    if !good && legacy_before.is_none() {
        return Err(JwsError::BadSignature);
    }
    let payload = URL_SAFE_NO_PAD.decode(p).map_err(|_| JwsError::Malformed)?;
    let claims: AccountsClaims =
        serde_json::from_slice(&payload).map_err(|_| JwsError::Malformed)?;
    if let Some(before) = legacy_before {
        // Signed under the raw material: it must be a token the old builds issued before the
        // upgrade, with the lifetime they gave, or it is treated as not signed at all.
        if claims.iat >= before || claims.exp.saturating_sub(claims.iat) > LEGACY_MAX_LIFETIME {
            return Err(JwsError::BadSignature);
        }
    }
    if claims.iss != ISSUER
        || claims.aud != AUDIENCE
        || now.0 >= claims.exp.saturating_add(leeway)
        || now.0.saturating_add(leeway) < claims.nbf
    {
        return Err(JwsError::Expired);
    }
    Ok(claims)
}

/// A public key resource servers verify Accounts tokens with. The server publishes these as
/// a JWKS; core only says which keys there are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicKey {
    /// The key id tokens signed with it carry.
    pub kid: String,
    /// The key itself, by algorithm.
    pub key: PublicKeyBytes,
}

/// The bytes of a public key, by the algorithm they verify.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PublicKeyBytes {
    /// An Ed25519 public key (RFC 8032), verifying [`SigningAlg::EdDsa`] signatures: the public
    /// key of the signing key's Ed25519 subkey.
    Ed25519([u8; 32]),
}

/// The public keys of every loaded signing key (pending and retired ones too, so a verifier
/// knows a key before it signs and until its tokens expire), sorted by kid: Ed25519 keys for
/// EdDSA, nothing for HS256 (a shared secret is never published).
pub fn public_keys(ring: &KeyRing, alg: SigningAlg) -> Vec<PublicKey> {
    match alg {
        SigningAlg::Hs256 => Vec::new(),
        SigningAlg::EdDsa => {
            ring.each_key(KeyPurpose::Signing, |kid, key: &SigningKey| PublicKey {
                kid: kid.to_owned(),
                key: PublicKeyBytes::Ed25519(key.ed_public.to_bytes()),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keyring::{test_key, KeyMaterial, KeyState};
    use ed25519_dalek::{Signer, Verifier};
    use hmac::{Hmac, Mac};
    use sha2::Sha256;

    fn ring(kid: &str, byte: u8) -> KeyRing {
        KeyRing::new([KeyMaterial {
            kid: kid.into(),
            purpose: KeyPurpose::Signing,
            state: KeyState::Active,
            material: [byte; 32],
        }])
    }

    fn claims() -> AccountsClaims {
        AccountsClaims {
            jti: "j".into(),
            iss: ISSUER.into(),
            aud: AUDIENCE.into(),
            sub: "admin@local".into(),
            user: "admin@local".into(),
            name: "admin@local".into(),
            scope: vec!["USER_READ".into()],
            iat: 100,
            nbf: 100,
            exp: 3700,
        }
    }

    #[test]
    fn both_algorithms_round_trip_and_reject_tampering() {
        for alg in [SigningAlg::Hs256, SigningAlg::EdDsa] {
            let r = ring("s-1", 7);
            let t = sign(&r, alg, &claims()).unwrap();
            assert!(t.starts_with("eyJ"));
            assert_eq!(verify(&r, alg, &t, UnixTime(200), 0).unwrap(), claims());
            // Every single-bit flip is rejected.
            for i in 0..t.len() {
                for bit in 0..8 {
                    let mut b = t.as_bytes().to_vec();
                    b[i] ^= 1 << bit;
                    if let Ok(s) = std::str::from_utf8(&b) {
                        assert!(
                            verify(&r, alg, s, UnixTime(200), 0).is_err(),
                            "{alg:?} {i} {bit}"
                        );
                    }
                }
            }
            // Another key, another algorithm, expiry and not-before.
            assert_eq!(
                verify(&ring("s-1", 8), alg, &t, UnixTime(200), 0),
                Err(JwsError::BadSignature)
            );
            let other = if alg == SigningAlg::Hs256 {
                SigningAlg::EdDsa
            } else {
                SigningAlg::Hs256
            };
            assert_eq!(
                verify(&r, other, &t, UnixTime(200), 0),
                Err(JwsError::Malformed)
            );
            assert_eq!(
                verify(&r, alg, &t, UnixTime(3700), 0),
                Err(JwsError::Expired)
            );
            assert_eq!(verify(&r, alg, &t, UnixTime(50), 0), Err(JwsError::Expired));
        }
    }

    /// A token signed as builds before subkeys signed it: the raw material as HMAC key or
    /// Ed25519 seed.
    fn sign_legacy(material: &[u8; 32], alg: SigningAlg, kid: &str, c: &AccountsClaims) -> String {
        let mut out = URL_SAFE_NO_PAD.encode(
            serde_json::to_vec(&HeaderOut {
                alg: alg.as_str(),
                kid,
            })
            .unwrap(),
        );
        out.push('.');
        URL_SAFE_NO_PAD.encode_string(serde_json::to_vec(c).unwrap(), &mut out);
        let sig = match alg {
            SigningAlg::Hs256 => {
                let mut mac = Hmac::<Sha256>::new_from_slice(material).unwrap();
                mac.update(out.as_bytes());
                mac.finalize().into_bytes().to_vec()
            }
            SigningAlg::EdDsa => ed25519_dalek::SigningKey::from_bytes(material)
                .sign(out.as_bytes())
                .to_bytes()
                .to_vec(),
        };
        out.push('.');
        URL_SAFE_NO_PAD.encode_string(sig, &mut out);
        out
    }

    #[test]
    fn the_hs256_secret_and_the_ed25519_seed_are_separate_subkeys() {
        let material = [7u8; 32];
        let (hs, ed) = (
            subkey(&material, HS256_LABEL),
            subkey(&material, ED25519_LABEL),
        );
        assert_ne!(hs, ed);
        assert_ne!(hs, material);
        assert_ne!(ed, material);
        // What the ring signs is neither the raw-material MAC nor verifiable as it.
        let r = ring("s-1", 7);
        for alg in [SigningAlg::Hs256, SigningAlg::EdDsa] {
            let t = sign(&r, alg, &claims()).unwrap();
            assert_ne!(t, sign_legacy(&material, alg, "s-1", &claims()), "{alg:?}");
            assert_eq!(
                verify(
                    &r,
                    alg,
                    &sign_legacy(&material, alg, "s-1", &claims()),
                    UnixTime(200),
                    0
                ),
                Err(JwsError::BadSignature),
                "{alg:?}: a raw-material signature verified without the legacy path"
            );
        }
        // The published key is the subkey's, not the raw seed's.
        let raw_public = ed25519_dalek::SigningKey::from_bytes(&material).verifying_key();
        let subkey_public =
            ed25519_dalek::SigningKey::from_bytes(&subkey(&material, ED25519_LABEL))
                .verifying_key();
        assert_eq!(
            public_keys(&r, SigningAlg::EdDsa),
            [PublicKey {
                kid: "s-1".into(),
                key: PublicKeyBytes::Ed25519(subkey_public.to_bytes()),
            }]
        );
        assert_ne!(subkey_public, raw_public);
        // No signature ever made can be a subkey: signing inputs are base64url and one dot.
        for label in [HS256_LABEL, ED25519_LABEL] {
            assert!(label.contains(&b'/'));
        }
    }

    #[test]
    fn tokens_signed_before_subkeys_verify_until_they_expire() {
        for alg in [SigningAlg::Hs256, SigningAlg::EdDsa] {
            let r = ring("s-1", 7);
            // The upgrade happened at 1000; the token was issued at 100 for an hour.
            r.accept_legacy_signatures(["s-1".to_string()], UnixTime(1000));
            let old = sign_legacy(&[7; 32], alg, "s-1", &claims());
            assert_eq!(verify(&r, alg, &old, UnixTime(1200), 0).unwrap(), claims());
            assert_eq!(
                verify(&r, alg, &old, UnixTime(3700), 0),
                Err(JwsError::Expired)
            );
            // New tokens verify beside it.
            let new = sign(&r, alg, &claims()).unwrap();
            assert_eq!(verify(&r, alg, &new, UnixTime(1200), 0).unwrap(), claims());
        }
    }

    #[test]
    fn the_legacy_path_admits_no_forgery() {
        let alg = SigningAlg::Hs256;
        let r = KeyRing::new([
            test_key("s-old", KeyPurpose::Signing, KeyState::Active, 7),
            test_key("s-new", KeyPurpose::Signing, KeyState::Pending, 8),
        ]);
        r.accept_legacy_signatures(["s-old".to_string()], UnixTime(1000));
        let refused = |t: &str, now: i64| {
            assert_eq!(
                verify(&r, alg, t, UnixTime(now), 0),
                Err(JwsError::BadSignature),
                "{t}"
            )
        };
        // Issued (by an old build, or by whoever has the raw material) after the upgrade.
        let late = AccountsClaims {
            iat: 1000,
            nbf: 1000,
            exp: 4600,
            ..claims()
        };
        refused(&sign_legacy(&[7; 32], alg, "s-old", &late), 1100);
        // A lifetime the old builds never gave: it would outlive the legacy window.
        let long = AccountsClaims {
            exp: 100 + 30 * 86_400,
            ..claims()
        };
        refused(&sign_legacy(&[7; 32], alg, "s-old", &long), 200);
        // A key created after the upgrade has no legacy path.
        refused(&sign_legacy(&[8; 32], alg, "s-new", &claims()), 200);
        // An attacker holding an old token holds HMAC(material, its signing input). Used as
        // an HMAC key (a guess that it is the subkey) it signs nothing that verifies, on
        // either path, and the old signature on other claims fails like any other.
        let old = sign_legacy(&[7; 32], alg, "s-old", &claims());
        let (input, sig) = old.rsplit_once('.').unwrap();
        let stolen: [u8; 32] = URL_SAFE_NO_PAD.decode(sig).unwrap().try_into().unwrap();
        let admin = AccountsClaims {
            scope: vec!["USER_WRITE".into(), "USER_READ".into()],
            ..claims()
        };
        refused(&sign_legacy(&stolen, alg, "s-old", &admin), 200);
        let (header, _) = input.split_once('.').unwrap();
        let swapped = format!(
            "{header}.{}.{sig}",
            URL_SAFE_NO_PAD.encode(serde_json::to_vec(&admin).unwrap())
        );
        refused(&swapped, 200);
        // The old token itself still verifies, within its hour only.
        assert!(verify(&r, alg, &old, UnixTime(200), 0).is_ok());
        assert_eq!(
            verify(&r, alg, &old, UnixTime(3700), 0),
            Err(JwsError::Expired)
        );
    }

    #[test]
    fn alg_none_and_unknown_header_members_are_refused() {
        let r = ring("s-1", 7);
        let t = sign(&r, SigningAlg::Hs256, &claims()).unwrap();
        let (_, rest) = t.split_once('.').unwrap();
        for header in [
            r#"{"alg":"none","kid":"s-1"}"#,
            r#"{"alg":"HS256","kid":"s-1","jku":"http://x"}"#,
            r#"{"alg":"HS256","kid":"s-2"}"#,
            r#"{"alg":"HS256"}"#,
        ] {
            let forged = format!("{}.{rest}", URL_SAFE_NO_PAD.encode(header));
            assert!(
                verify(&r, SigningAlg::Hs256, &forged, UnixTime(200), 0).is_err(),
                "{header}"
            );
        }
    }

    #[test]
    fn only_ed25519_keys_are_published_and_they_verify_what_the_ring_signs() {
        let r = KeyRing::new([
            test_key("s-2", KeyPurpose::Signing, KeyState::Active, 2),
            test_key("s-1", KeyPurpose::Signing, KeyState::Retired, 1),
            test_key("a-1", KeyPurpose::Access, KeyState::Active, 3),
        ]);
        assert!(public_keys(&r, SigningAlg::Hs256).is_empty());
        let keys = public_keys(&r, SigningAlg::EdDsa);
        let kids: Vec<&str> = keys.iter().map(|k| k.kid.as_str()).collect();
        assert_eq!(kids, ["s-1", "s-2"]);
        let t = sign(&r, SigningAlg::EdDsa, &claims()).unwrap();
        let (input, sig) = t.rsplit_once('.').unwrap();
        let sig =
            ed25519_dalek::Signature::from_slice(&URL_SAFE_NO_PAD.decode(sig).unwrap()).unwrap();
        let PublicKeyBytes::Ed25519(x) = keys[1].key;
        let public = ed25519_dalek::VerifyingKey::from_bytes(&x).unwrap();
        assert!(public.verify(input.as_bytes(), &sig).is_ok());
    }
}
