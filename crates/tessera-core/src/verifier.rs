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

use crate::clock::UnixTime;
use crate::token::{check_time, Claims, KeyMaterial, KeyRing, TokenClass, TokenError};

/// Checks access tokens against a fixed set of keys.
///
/// ```
/// use tessera_core::token::{Claims, KeyMaterial, KeyPurpose, KeyRing, KeyState, PrincipalKind, TokenClass};
/// use tessera_core::verifier::Verifier;
/// use tessera_core::ids::{FamilyId, ProjectId, TokenId};
/// use tessera_core::UnixTime;
///
/// // In a real resource server the key comes from Tessera (`tessera admin keys list`
/// // names the kids; the material is distributed out of band).
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

    /// Validates an access token at time `now` and returns its claims.
    pub fn verify(&self, token: &str, now: UnixTime) -> Result<Claims, TokenError> {
        let claims = self.ring.open(TokenClass::Access, token)?;
        check_time(&claims, now, self.leeway)?;
        Ok(claims)
    }
}
