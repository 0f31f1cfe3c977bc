//! An offline verifier for resource servers that embed Tessera's library: it checks a Fabric
//! access token (SAT) against a key ring in-process, without calling the server.
//!
//! What it checks: the header profile, the key, the authentication tag, expiry and `iat`.
//! What it cannot check: revocation (a revoked family is only known to the server). Use
//! `POST /oauth2/introspect` where revocation must take effect before the token expires, or
//! keep access-token lifetimes short.
//!
//! Fabric tokens are `dir` JWE under a symmetric key, so whoever holds the access keys could
//! also mint tokens: hand them only to services you trust as much as Tessera itself.
//!
//! The keys come from `tessera admin keys export --purpose access`, whose output
//! [`Verifier::from_export`] reads ([`key_export`] writes it):
//!
//! ```json
//! {"tessera_keys": 1, "purpose": "access",
//!  "keys": [{"kid": "a-…", "state": "active", "material": "<base64url of 32 bytes>"}]}
//! ```
//!
//! It is a snapshot: after a rotation (every 30 days, or `tessera admin keys rotate`) export
//! again, or tokens sealed with the new key are refused as `UnknownKey`. Pending keys are
//! included, so exporting right after a rotation covers the key that becomes active next.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::Deserialize;

use crate::clock::UnixTime;
use crate::keyring::{KeyMaterial, KeyPurpose, KeyRing, KeyState};
use crate::token::{check_time, Claims, TokenClass, TokenError};

/// The version of the key export format.
pub const KEY_EXPORT_FORMAT: u32 = 1;

/// The key export of `purpose` (see the module documentation): every key given that is of
/// that purpose and not destroyed. The result holds key material in the clear.
pub fn key_export(purpose: KeyPurpose, keys: &[KeyMaterial]) -> serde_json::Value {
    let keys: Vec<serde_json::Value> = keys
        .iter()
        .filter(|k| k.purpose == purpose && k.state != KeyState::Destroyed)
        .map(|k| {
            serde_json::json!({
                "kid": k.kid,
                "state": k.state.as_str(),
                "material": URL_SAFE_NO_PAD.encode(k.material),
            })
        })
        .collect();
    serde_json::json!({
        "tessera_keys": KEY_EXPORT_FORMAT,
        "purpose": purpose.as_str(),
        "keys": keys,
    })
}

/// Why a key export could not be loaded (the message says what is wrong, never the material).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a usable access key export: {0}")]
pub struct KeyExportError(String);

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ExportIn {
    tessera_keys: u32,
    purpose: String,
    keys: Vec<ExportedKey>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ExportedKey {
    kid: String,
    state: String,
    material: String,
}

/// Checks access tokens against a fixed set of keys.
///
/// ```
/// use tessera_core::keyring::{KeyMaterial, KeyPurpose, KeyRing, KeyState};
/// use tessera_core::token::{Claims, PrincipalKind, TokenClass};
/// use tessera_core::verifier::Verifier;
/// use tessera_core::ids::{FamilyId, ProjectId, TokenId};
/// use tessera_core::UnixTime;
///
/// // In a real resource server the keys come from Tessera: load the output of
/// // `tessera admin keys export --purpose access` with `Verifier::from_export`.
/// let key = || KeyMaterial {
///     kid: "a-demo".into(),
///     purpose: KeyPurpose::Access,
///     state: KeyState::Active,
///     material: [7u8; 32],
/// };
/// # let issuer = KeyRing::new([key()]);
/// # let claims = Claims {
/// #     sub: uuid::Uuid::new_v4(), pid: ProjectId::random(), knd: PrincipalKind::Guest,
/// #     fam: FamilyId::random(), jti: TokenId::random(), iat: 1_700_000_000,
/// #     exp: 1_700_007_200, adr: vec![], app: None, gen: None, scp: None,
/// # };
/// # let token = issuer.seal(TokenClass::Access, &claims, None).unwrap();
/// let verifier = Verifier::new([key()], 5);
/// let checked = verifier.verify(&token, UnixTime(1_700_000_100)).unwrap();
/// assert_eq!(checked.pid, claims.pid);
/// assert!(verifier.verify(&token, UnixTime(1_700_010_000)).is_err()); // expired
/// ```
#[derive(Debug)]
pub struct Verifier {
    ring: KeyRing,
    leeway: i64,
}

impl Verifier {
    /// A verifier for `keys` (access keys; others are ignored), tolerating `leeway` seconds
    /// of clock skew.
    pub fn new(keys: impl IntoIterator<Item = KeyMaterial>, leeway: i64) -> Self {
        Verifier {
            ring: KeyRing::new(keys),
            leeway,
        }
    }

    /// A verifier for the output of `tessera admin keys export --purpose access`, tolerating
    /// `leeway` seconds of clock skew. Refuses anything else: another format version or
    /// purpose, unknown members, a key whose material is not 32 bytes of base64url, a
    /// destroyed key, and an export without a single key.
    pub fn from_export(text: &str, leeway: i64) -> Result<Self, KeyExportError> {
        let fail = |m: &str| KeyExportError(m.to_string());
        let export: ExportIn =
            serde_json::from_str(text).map_err(|e| KeyExportError(e.to_string()))?;
        if export.tessera_keys != KEY_EXPORT_FORMAT {
            return Err(fail("unknown format version (tessera_keys)"));
        }
        if export.purpose != KeyPurpose::Access.as_str() {
            return Err(fail("not access keys"));
        }
        if export.keys.is_empty() {
            return Err(fail("no keys"));
        }
        let keys = export
            .keys
            .into_iter()
            .map(|k| {
                let state = KeyState::parse(&k.state)
                    .filter(|s| *s != KeyState::Destroyed)
                    .ok_or_else(|| KeyExportError(format!("key {:?}: bad state", k.kid)))?;
                let material: [u8; 32] = URL_SAFE_NO_PAD
                    .decode(&k.material)
                    .ok()
                    .and_then(|m| m.try_into().ok())
                    .ok_or_else(|| {
                        KeyExportError(format!("key {:?}: material is not 32 bytes", k.kid))
                    })?;
                if k.kid.is_empty() {
                    return Err(fail("a key without a kid"));
                }
                Ok(KeyMaterial {
                    kid: k.kid,
                    purpose: KeyPurpose::Access,
                    state,
                    material,
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Verifier::new(keys, leeway))
    }

    /// Validates an access token at time `now` and returns its claims.
    pub fn verify(&self, token: &str, now: UnixTime) -> Result<Claims, TokenError> {
        let claims = self.ring.open(TokenClass::Access, token)?;
        check_time(&claims, now, self.leeway)?;
        Ok(claims)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::{FamilyId, ProjectId, TokenId};
    use crate::token::PrincipalKind;

    use crate::keyring::test_key as key;

    #[test]
    fn an_export_loads_into_a_verifier_that_checks_tokens() {
        let keys = [
            key("a-1", KeyPurpose::Access, KeyState::Active, 1),
            key("a-0", KeyPurpose::Access, KeyState::Destroyed, 2),
            key("r-1", KeyPurpose::Refresh, KeyState::Active, 3),
        ];
        let text = key_export(KeyPurpose::Access, &keys).to_string();
        // Only the live access key is in it.
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["keys"].as_array().unwrap().len(), 1);
        assert_eq!(v["keys"][0]["kid"], "a-1");
        let issuer = KeyRing::new([key("a-1", KeyPurpose::Access, KeyState::Active, 1)]);
        let claims = Claims {
            sub: uuid::Uuid::new_v4(),
            pid: ProjectId::random(),
            knd: PrincipalKind::Guest,
            fam: FamilyId::random(),
            jti: TokenId::random(),
            iat: 1000,
            exp: 2000,
            adr: vec![],
            app: None,
            gen: None,
            scp: None,
        };
        let token = issuer.seal(TokenClass::Access, &claims, None).unwrap();
        let verifier = Verifier::from_export(&text, 0).unwrap();
        assert_eq!(verifier.verify(&token, UnixTime(1500)).unwrap(), claims);
        // One ciphertext character changed: the tag no longer matches.
        let at = token.match_indices('.').nth(2).unwrap().0 + 1;
        let mut tampered = token.into_bytes();
        tampered[at] = if tampered[at] == b'A' { b'B' } else { b'A' };
        assert_eq!(
            verifier.verify(std::str::from_utf8(&tampered).unwrap(), UnixTime(1500)),
            Err(TokenError::Invalid)
        );
    }

    #[test]
    fn anything_but_an_access_key_export_is_refused() {
        let good = key_export(
            KeyPurpose::Access,
            &[key("a-1", KeyPurpose::Access, KeyState::Active, 1)],
        );
        let with = |f: &dyn Fn(&mut serde_json::Value)| {
            let mut v = good.clone();
            f(&mut v);
            Verifier::from_export(&v.to_string(), 0).map(drop)
        };
        assert!(with(&|_| {}).is_ok());
        assert!(with(&|v| v["tessera_keys"] = 2.into()).is_err());
        assert!(with(&|v| v["purpose"] = "refresh".into()).is_err());
        assert!(with(&|v| v["keys"] = serde_json::json!([])).is_err());
        assert!(with(&|v| v["keys"][0]["material"] = "AAAA".into()).is_err());
        assert!(with(&|v| v["keys"][0]["state"] = "destroyed".into()).is_err());
        assert!(with(&|v| v["keys"][0]["kid"] = "".into()).is_err());
        assert!(with(&|v| v["extra"] = true.into()).is_err());
        assert!(Verifier::from_export("not json", 0).is_err());
        // The error never carries the material.
        let err = with(&|v| v["keys"][0]["state"] = "x".into()).unwrap_err();
        assert!(!err.to_string().contains(&URL_SAFE_NO_PAD.encode([1u8; 32])));
    }
}
