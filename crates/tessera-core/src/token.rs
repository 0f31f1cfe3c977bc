//! Fabric token formats: compact JWE with `alg=dir`, `enc=A256GCM`, sealed and opened with the
//! access and refresh keys of the [`KeyRing`] ([`KeyRing::seal`], [`KeyRing::open`]).
//!
//! The algorithm set is fixed per token class. Validation never trusts the header: it must name
//! exactly `dir` / `A256GCM`, carry no parameter outside a short allow-list (so `zip`, `jku`,
//! `x5u`, `jwk`, `crit` are all refused), have the `typ` of the expected class, and name a
//! `kid` that exists in the local ring *for that class's purpose*. Only then does any crypto
//! run. Access and refresh tokens are sealed under different keys, so even a forged `typ`
//! cannot make one class decrypt as the other.

use std::sync::OnceLock;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::clock::UnixTime;
use crate::crypto::{random_bytes, Aes256GcmKey};
use crate::ids::{AddressId, FamilyId, ProjectId, TokenId};
use crate::keyring::{KeyForm, KeyPurpose, KeyRing};

/// Tokens longer than this are refused before any decoding: the parser never allocates in
/// proportion to a hostile length.
pub const MAX_TOKEN_LEN: usize = 8 * 1024;
const MAX_HEADER_B64: usize = 512;

/// The token classes Tessera seals as JWE.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenClass {
    /// Access token, header `typ: SAT`.
    Access,
    /// Refresh token, header `typ: Refresh`.
    Refresh,
}

impl TokenClass {
    fn typ(self) -> &'static str {
        match self {
            TokenClass::Access => "SAT",
            TokenClass::Refresh => "Refresh",
        }
    }

    fn purpose(self) -> KeyPurpose {
        match self {
            TokenClass::Access => KeyPurpose::Access,
            TokenClass::Refresh => KeyPurpose::Refresh,
        }
    }
}

/// The kind of principal a token speaks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PrincipalKind {
    /// A project's end user.
    Subscriber,
    /// An anonymous visitor limited to listed addresses.
    Guest,
    /// A guest invited to one subscriber address.
    Invite,
    /// A guest arriving through a click-to-call widget.
    Embed,
}

impl PrincipalKind {
    /// Stable text form used in storage and output.
    pub fn as_str(self) -> &'static str {
        match self {
            PrincipalKind::Subscriber => "subscriber",
            PrincipalKind::Guest => "guest",
            PrincipalKind::Invite => "invite",
            PrincipalKind::Embed => "embed",
        }
    }

    /// Parses [`PrincipalKind::as_str`].
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "subscriber" => Some(PrincipalKind::Subscriber),
            "guest" => Some(PrincipalKind::Guest),
            "invite" => Some(PrincipalKind::Invite),
            "embed" => Some(PrincipalKind::Embed),
            _ => None,
        }
    }
}

/// The claims inside a Fabric token. Short field names keep tokens small; they are private to
/// Tessera (clients cannot read a JWE).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// Subject: the subscriber id, or a fresh id for a guest.
    pub sub: Uuid,
    /// The project that issued the token.
    pub pid: ProjectId,
    /// The principal kind.
    pub knd: PrincipalKind,
    /// The session family.
    pub fam: FamilyId,
    /// The token's own id.
    pub jti: TokenId,
    /// Issued at, Unix seconds.
    pub iat: i64,
    /// Expires at, Unix seconds.
    pub exp: i64,
    /// For restricted tokens: the addresses the holder may reach.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub adr: Vec<AddressId>,
    /// The application the token is bound to, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app: Option<Uuid>,
    /// Refresh tokens only: the family generation this token may spend.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gen: Option<i64>,
    /// An optional scope (`sat:refresh`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scp: Option<String>,
}

impl Claims {
    /// The claims as JSON: the same bytes as `serde_json::to_vec` (a unit test holds the two
    /// equal), written with [`ObjectWriter`](crate::json::ObjectWriter): sealing spent more
    /// time in serde's escaping of the UUIDs (14 in a guest token) than in AES-GCM.
    fn to_json(&self) -> Vec<u8> {
        let scp_len = self.scp.as_ref().map_or(0, |s| s.len() * 2 + 10);
        let mut w = crate::json::ObjectWriter::with_capacity(256 + 39 * self.adr.len() + scp_len);
        w.uuid("sub", &self.sub)
            .uuid("pid", &self.pid.0)
            .str("knd", self.knd.as_str())
            .uuid("fam", &self.fam.0)
            .uuid("jti", &self.jti.0)
            .int("iat", self.iat)
            .int("exp", self.exp);
        if !self.adr.is_empty() {
            w.uuids("adr", self.adr.iter().map(|a| &a.0));
        }
        if let Some(app) = &self.app {
            w.uuid("app", app);
        }
        if let Some(gen) = self.gen {
            w.int("gen", gen);
        }
        if let Some(scp) = &self.scp {
            w.str("scp", scp);
        }
        w.finish()
    }

    /// Reads claims as [`Claims::to_json`] writes them, falling back to serde for any other
    /// spelling (member order, whitespace, escapes, tokens from other versions). Opening a
    /// token spent more time in serde's field matching and UUID visitors than in AES-GCM;
    /// the fast path reads the fixed layout directly. Only authenticated plaintext reaches it.
    fn from_json(bytes: &[u8]) -> Result<Claims, serde_json::Error> {
        match (ClaimsReader { b: bytes, at: 0 }).claims() {
            Some(c) => Ok(c),
            None => serde_json::from_slice(bytes),
        }
    }
}

/// The fast path of [`Claims::from_json`]: `None` at the first byte that is not the layout
/// [`Claims::to_json`] writes.
struct ClaimsReader<'a> {
    b: &'a [u8],
    at: usize,
}

impl ClaimsReader<'_> {
    fn lit(&mut self, s: &[u8]) -> Option<()> {
        let end = self.at + s.len();
        (self.b.get(self.at..end)? == s).then(|| self.at = end)
    }

    /// A string without escapes.
    fn plain(&mut self) -> Option<&str> {
        self.lit(b"\"")?;
        let len = self.b[self.at..].iter().position(|&c| c == b'"')?;
        let s = &self.b[self.at..self.at + len];
        if s.iter().any(|&c| c == b'\\' || c < 0x20) {
            return None;
        }
        self.at += len + 1;
        std::str::from_utf8(s).ok()
    }

    fn uuid(&mut self) -> Option<Uuid> {
        let s = self.b.get(self.at..self.at + 38)?;
        if s[0] != b'"' || s[37] != b'"' {
            return None;
        }
        self.at += 38;
        Uuid::try_parse_ascii(&s[1..37]).ok()
    }

    fn int(&mut self) -> Option<i64> {
        let len = self.b[self.at..]
            .iter()
            .position(|&c| !(c.is_ascii_digit() || c == b'-'))?;
        let text = &self.b[self.at..self.at + len];
        // JSON has no leading zeros; `str::parse` would take them. Nor does serde read `-0`
        // as an integer (it is the float -0.0): the fast path must refuse what serde refuses.
        let digits = text.strip_prefix(b"-").unwrap_or(text);
        if digits.len() > 1 && digits[0] == b'0' || (digits.len() < text.len() && digits == b"0") {
            return None;
        }
        let n = std::str::from_utf8(text).ok()?.parse().ok()?;
        self.at += len;
        Some(n)
    }

    fn claims(&mut self) -> Option<Claims> {
        self.lit(b"{\"sub\":")?;
        let sub = self.uuid()?;
        self.lit(b",\"pid\":")?;
        let pid = ProjectId(self.uuid()?);
        self.lit(b",\"knd\":")?;
        let knd = PrincipalKind::parse(self.plain()?)?;
        self.lit(b",\"fam\":")?;
        let fam = FamilyId(self.uuid()?);
        self.lit(b",\"jti\":")?;
        let jti = TokenId(self.uuid()?);
        self.lit(b",\"iat\":")?;
        let iat = self.int()?;
        self.lit(b",\"exp\":")?;
        let exp = self.int()?;
        let mut c = Claims {
            sub,
            pid,
            knd,
            fam,
            jti,
            iat,
            exp,
            adr: Vec::new(),
            app: None,
            gen: None,
            scp: None,
        };
        if self.lit(b",\"adr\":[").is_some() {
            loop {
                c.adr.push(AddressId(self.uuid()?));
                if self.lit(b",").is_none() {
                    break;
                }
            }
            self.lit(b"]")?;
        }
        if self.lit(b",\"app\":").is_some() {
            c.app = Some(self.uuid()?);
        }
        if self.lit(b",\"gen\":").is_some() {
            c.gen = Some(self.int()?);
        }
        if self.lit(b",\"scp\":").is_some() {
            c.scp = Some(self.plain()?.to_owned());
        }
        self.lit(b"}")?;
        (self.at == self.b.len()).then_some(c)
    }
}

/// Why a token was refused. Deliberately coarse: callers map these to wire errors and never
/// tell a client which check failed beyond "wrong type" and "expired".
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Not a well-formed compact JWE of our profile (including forbidden header parameters).
    #[error("malformed token")]
    Malformed,
    /// A well-formed token of another class (e.g. an access token where a refresh token is due).
    #[error("wrong token type")]
    WrongType,
    /// The `kid` is not in the local ring for this purpose (unknown, or destroyed).
    #[error("unknown key")]
    UnknownKey,
    /// Authentication failed: the token was altered or made with another key.
    #[error("invalid token")]
    Invalid,
    /// The token has expired.
    #[error("token expired")]
    Expired,
    /// The token claims to be issued in the future beyond the leeway.
    #[error("token issued in the future")]
    NotYetValid,
}

/// The protected header. Unknown members are refused (`deny_unknown_fields`), which is how
/// `zip`, `jku`, `x5u`, `jwk` and `crit` are all rejected.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Header<'a> {
    alg: &'a str,
    enc: &'a str,
    typ: &'a str,
    kid: &'a str,
    #[serde(default)]
    #[allow(dead_code)]
    ch: Option<String>,
}

/// The compact serialization of a `dir` JWE: the encoded header, an empty encrypted key, then
/// the base64url of the IV, ciphertext and tag, written once into a buffer of the exact length.
fn compact(header_b64: &str, iv: &[u8], ciphertext: &[u8], tag: &[u8]) -> String {
    let encoded = |n: usize| base64::encoded_len(n, false).expect("a token is far below usize");
    let len = header_b64.len()
        + 2
        + encoded(iv.len())
        + 1
        + encoded(ciphertext.len())
        + 1
        + encoded(tag.len());
    let mut out = vec![b'.'; len];
    out[..header_b64.len()].copy_from_slice(header_b64.as_bytes());
    let mut at = header_b64.len() + 2;
    for (i, part) in [iv, ciphertext, tag].into_iter().enumerate() {
        if i > 0 {
            at += 1;
        }
        at += URL_SAFE_NO_PAD
            .encode_slice(part, &mut out[at..])
            .expect("the buffer has the encoded length");
    }
    debug_assert_eq!(at, len);
    String::from_utf8(out).expect("base64url and dots are ASCII")
}

/// A JWE key's prepared form: what [`KeyRing`] keeps beside an access or refresh key.
struct JweKey {
    cipher: Aes256GcmKey,
    /// The protected header this key seals under, encoded on its first seal: every token a key
    /// seals has the same one (its purpose fixes `typ`, and `ch` is configuration).
    header: OnceLock<SealHeader>,
}

impl KeyForm for JweKey {
    fn from_material(material: &[u8; 32]) -> Self {
        JweKey {
            cipher: Aes256GcmKey::new(material),
            header: OnceLock::new(),
        }
    }
}

impl JweKey {
    /// Decodes and authenticates the encoded IV, ciphertext and tag of a token whose encoded
    /// protected header (the AAD) is `h`, and reads the claims.
    fn open(&self, h: &str, iv: &str, ct: &str, tag: &str) -> Result<Claims, TokenError> {
        // The caller checked the encoded lengths (16 and 22 characters), which decode to
        // exactly 12 and 16 bytes, or fail as non-canonical base64url.
        let iv: [u8; 12] = URL_SAFE_NO_PAD
            .decode(iv)
            .ok()
            .and_then(|v| v.try_into().ok())
            .ok_or(TokenError::Malformed)?;
        let tag: [u8; 16] = URL_SAFE_NO_PAD
            .decode(tag)
            .ok()
            .and_then(|v| v.try_into().ok())
            .ok_or(TokenError::Malformed)?;
        let mut buf = URL_SAFE_NO_PAD
            .decode(ct)
            .map_err(|_| TokenError::Malformed)?;
        self.cipher
            .open(&iv, h.as_bytes(), &mut buf, &tag)
            .map_err(|_| TokenError::Invalid)?;
        Claims::from_json(&buf).map_err(|_| TokenError::Invalid)
    }
}

/// A key's encoded protected header and the `ch` it was encoded with.
struct SealHeader {
    ch: Option<String>,
    b64: String,
}

impl SealHeader {
    fn new(class: TokenClass, kid: &str, ch: Option<&str>) -> SealHeader {
        // Member order follows the originals (alg, enc, then typ) so clients that print the
        // header see what they expect. Kids are our own base64url text and `ch` is validated
        // configuration, so the header is written directly; `ch` is still escaped as JSON.
        let header = match ch {
            Some(ch) => format!(
                r#"{{"alg":"dir","enc":"A256GCM","ch":{},"typ":"{}","kid":"{kid}"}}"#,
                serde_json::Value::from(ch),
                class.typ()
            ),
            None => format!(
                r#"{{"alg":"dir","enc":"A256GCM","typ":"{}","kid":"{kid}"}}"#,
                class.typ()
            ),
        };
        SealHeader {
            ch: ch.map(str::to_owned),
            b64: URL_SAFE_NO_PAD.encode(header),
        }
    }
}

/// The JWE operations of the ring. They live here, with the format, and reach the keys only
/// through the ring's format-neutral accessors: the ring knows nothing of JWE.
impl KeyRing {
    /// Seals `claims` as a compact JWE of `class` with the purpose's active key.
    ///
    /// # Errors
    /// `UnknownKey` when the purpose has no active key (a start-up invariant violated).
    pub fn seal(
        &self,
        class: TokenClass,
        claims: &Claims,
        ch: Option<&str>,
    ) -> Result<String, TokenError> {
        self.with_active(class.purpose(), |kid, key: &JweKey| {
            let cached = key.header.get_or_init(|| SealHeader::new(class, kid, ch));
            let other;
            let header = if cached.ch.as_deref() == ch {
                cached
            } else {
                other = SealHeader::new(class, kid, ch);
                &other
            };
            let mut buf = claims.to_json();
            let iv = random_bytes::<12>();
            let tag = key
                .cipher
                .seal(&iv, header.b64.as_bytes(), &mut buf)
                .map_err(|_| TokenError::Invalid)?;
            Ok(compact(&header.b64, &iv, &buf, &tag))
        })
        .ok_or(TokenError::UnknownKey)?
    }

    /// Opens a token of `class`, checking the header profile, the key and the authentication
    /// tag. Time is *not* checked here: see [`check_time`].
    pub fn open(&self, class: TokenClass, token: &str) -> Result<Claims, TokenError> {
        if token.len() > MAX_TOKEN_LEN {
            return Err(TokenError::Malformed);
        }
        let mut parts = token.split('.');
        let (Some(h), Some(ek), Some(iv), Some(ct), Some(tag), None) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        ) else {
            return Err(TokenError::Malformed);
        };
        if !ek.is_empty() || h.len() > MAX_HEADER_B64 || iv.len() != 16 || tag.len() != 22 {
            return Err(TokenError::Malformed);
        }
        let purpose = class.purpose();
        // A header this node has sealed under is recognised as it is: it needs no decoding or
        // checking (it is the one the key writes), and most tokens a node opens were sealed
        // under its own keys. Any other header is decoded and checked first.
        let recognised = self.find_key(purpose, |key: &JweKey| {
            key.header
                .get()
                .is_some_and(|sealed| sealed.b64 == h)
                .then(|| key.open(h, iv, ct, tag))
        });
        let claims = match recognised {
            Some(opened) => opened?,
            None => {
                let header_json = URL_SAFE_NO_PAD
                    .decode(h)
                    .map_err(|_| TokenError::Malformed)?;
                let kid = checked_kid(class, &header_json)?;
                self.with_key(purpose, kid, |key: &JweKey| key.open(h, iv, ct, tag))
                    .ok_or(TokenError::UnknownKey)??
            }
        };
        // A refresh token must carry a generation and an access token must not: one more guard
        // against a token being used as the other class.
        if (class == TokenClass::Refresh) != claims.gen.is_some() {
            return Err(TokenError::Invalid);
        }
        Ok(claims)
    }
}

/// Checks the decoded protected header of a token of `class` against the profile, and returns
/// the `kid` it names.
fn checked_kid(class: TokenClass, header_json: &[u8]) -> Result<&str, TokenError> {
    let header: Header<'_> =
        serde_json::from_slice(header_json).map_err(|_| TokenError::Malformed)?;
    if header.alg != "dir" || header.enc != "A256GCM" {
        return Err(TokenError::Malformed);
    }
    if header.typ != class.typ() {
        return if header.typ == "SAT" || header.typ == "Refresh" {
            Err(TokenError::WrongType)
        } else {
            Err(TokenError::Malformed)
        };
    }
    Ok(header.kid)
}

/// Checks expiry (with `leeway` seconds of tolerance for clock skew) and that `iat` is not in
/// the future beyond the same leeway.
pub fn check_time(claims: &Claims, now: UnixTime, leeway: i64) -> Result<(), TokenError> {
    if claims.exp.saturating_add(leeway) <= now.0 {
        return Err(TokenError::Expired);
    }
    if claims.iat > now.0.saturating_add(leeway) {
        return Err(TokenError::NotYetValid);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::random_bytes;
    use crate::keyring::{KeyMaterial, KeyState};

    fn ring() -> KeyRing {
        KeyRing::new([
            KeyMaterial {
                kid: "a1".into(),
                purpose: KeyPurpose::Access,
                state: KeyState::Active,
                material: random_bytes(),
            },
            KeyMaterial {
                kid: "r1".into(),
                purpose: KeyPurpose::Refresh,
                state: KeyState::Active,
                material: random_bytes(),
            },
        ])
    }

    fn claims(gen: Option<i64>) -> Claims {
        Claims {
            sub: Uuid::new_v4(),
            pid: ProjectId::random(),
            knd: PrincipalKind::Guest,
            fam: FamilyId::random(),
            jti: TokenId::random(),
            iat: 1_700_000_000,
            exp: 1_700_007_200,
            adr: vec![AddressId::random(); 10],
            app: None,
            gen,
            scp: None,
        }
    }

    fn b64json(v: &serde_json::Value) -> String {
        URL_SAFE_NO_PAD.encode(v.to_string())
    }

    #[test]
    fn round_trip_both_classes() {
        let r = ring();
        let c = claims(None);
        let t = r.seal(TokenClass::Access, &c, None).unwrap();
        assert_eq!(t.split('.').count(), 5);
        assert_eq!(t.split('.').nth(1), Some(""));
        assert_eq!(r.open(TokenClass::Access, &t).unwrap(), c);
        let c = claims(Some(3));
        let t = r
            .seal(TokenClass::Refresh, &c, Some("relay.example"))
            .unwrap();
        assert_eq!(r.open(TokenClass::Refresh, &t).unwrap(), c);
    }

    #[test]
    fn claims_json_is_what_serde_writes() {
        let full = Claims {
            knd: PrincipalKind::Subscriber,
            adr: vec![AddressId::random(), AddressId::random()],
            app: Some(Uuid::new_v4()),
            gen: Some(-7),
            scp: Some("sat:refresh \"quoted\" \\ \u{1} é".into()),
            iat: 0,
            exp: i64::MAX,
            ..claims(None)
        };
        let one = Claims {
            knd: PrincipalKind::Invite,
            adr: vec![AddressId::random()],
            iat: -1,
            ..claims(Some(0))
        };
        let bare = Claims {
            knd: PrincipalKind::Embed,
            adr: Vec::new(),
            ..claims(None)
        };
        for c in [claims(None), claims(Some(12)), full, one, bare] {
            let json = c.to_json();
            assert_eq!(
                String::from_utf8(json.clone()).unwrap(),
                serde_json::to_string(&c).unwrap()
            );
            // Read back by the fast path (but for the escaped scope) and by serde alike.
            let fast = ClaimsReader { b: &json, at: 0 }.claims();
            assert_eq!(
                fast.is_some(),
                c.scp.as_deref().is_none_or(|s| !s.contains('"'))
            );
            assert_eq!(Claims::from_json(&json).unwrap(), c);
        }
    }

    #[test]
    fn claims_in_any_other_spelling_are_read_by_serde() {
        let c = Claims {
            app: Some(Uuid::new_v4()),
            scp: Some("sat:refresh".into()),
            ..claims(Some(2))
        };
        let json = String::from_utf8(c.to_json()).unwrap();
        let spellings = [
            // Members in another order, whitespace, an unknown member, upper-case hex.
            serde_json::to_string(&serde_json::json!({
                "exp": c.exp, "iat": c.iat, "jti": c.jti, "fam": c.fam, "knd": "guest",
                "pid": c.pid, "sub": c.sub, "adr": c.adr, "app": c.app, "gen": c.gen,
                "scp": c.scp,
            }))
            .unwrap(),
            serde_json::to_string_pretty(&c).unwrap(),
            json.replacen('}', r#","new":1}"#, 1),
            json.to_uppercase()
                .replace("SUB", "sub")
                .replace("PID", "pid")
                .replace("KND", "knd")
                .replace("GUEST", "guest")
                .replace("FAM", "fam")
                .replace("JTI", "jti")
                .replace("IAT", "iat")
                .replace("EXP", "exp")
                .replace("ADR", "adr")
                .replace("APP", "app")
                .replace("GEN", "gen")
                .replace("SCP", "scp")
                .replace("SAT:REFRESH", "sat:refresh"),
        ];
        for text in spellings {
            assert_eq!(Claims::from_json(text.as_bytes()).unwrap(), c, "{text}");
        }
        // What serde refuses, the fast path refuses too.
        for bad in [
            json.replacen(&format!(r#""iat":{}"#, c.iat), r#""iat":0123"#, 1),
            json.replacen('}', "}}", 1),
            json.replacen(r#""knd":"guest""#, r#""knd":"ghost""#, 1),
            json[..json.len() - 1].to_string(),
            json.replacen(
                &c.sub.to_string(),
                "not-a-uuid-not-a-uuid-not-a-uuid-123",
                1,
            ),
        ] {
            assert!(Claims::from_json(bad.as_bytes()).is_err(), "{bad}");
            assert!(serde_json::from_str::<Claims>(&bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_key_seals_with_the_relay_host_of_each_call() {
        let r = ring();
        let header = |t: &str| {
            String::from_utf8(
                URL_SAFE_NO_PAD
                    .decode(t.split('.').next().unwrap())
                    .unwrap(),
            )
            .unwrap()
        };
        let plain = r.seal(TokenClass::Access, &claims(None), None).unwrap();
        let relayed = r
            .seal(TokenClass::Access, &claims(None), Some("relay.example"))
            .unwrap();
        assert!(!header(&plain).contains("\"ch\""));
        assert!(header(&relayed).contains(r#""ch":"relay.example""#));
        assert_eq!(
            header(&r.seal(TokenClass::Access, &claims(None), None).unwrap()),
            header(&plain)
        );
        assert!(r.open(TokenClass::Access, &relayed).is_ok());
    }

    #[test]
    fn header_has_the_expected_profile() {
        let r = ring();
        let t = r.seal(TokenClass::Access, &claims(None), None).unwrap();
        let h = URL_SAFE_NO_PAD
            .decode(t.split('.').next().unwrap())
            .unwrap();
        assert_eq!(
            String::from_utf8(h).unwrap(),
            r#"{"alg":"dir","enc":"A256GCM","typ":"SAT","kid":"a1"}"#
        );
    }

    #[test]
    fn every_single_bit_flip_is_rejected() {
        let r = ring();
        for (class, gen) in [(TokenClass::Access, None), (TokenClass::Refresh, Some(1))] {
            let t = r.seal(class, &claims(gen), None).unwrap();
            let bytes = t.as_bytes();
            for i in 0..bytes.len() {
                for bit in 0..8 {
                    let mut b = bytes.to_vec();
                    b[i] ^= 1 << bit;
                    // A flip may produce invalid UTF-8; such a token cannot even be presented
                    // as a string, which is a rejection too.
                    if let Ok(s) = String::from_utf8(b) {
                        assert!(
                            r.open(class, &s).is_err(),
                            "flip at byte {i} bit {bit} accepted"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn a_node_opens_tokens_sealed_elsewhere_before_and_after_sealing_itself() {
        let material: [u8; 32] = random_bytes();
        let node = || {
            KeyRing::new([KeyMaterial {
                kid: "a1".into(),
                purpose: KeyPurpose::Access,
                state: KeyState::Active,
                material,
            }])
        };
        let (one, two) = (node(), node());
        let c = claims(None);
        let from_one = one.seal(TokenClass::Access, &c, None).unwrap();
        // `two` has not sealed yet: the header is decoded and checked.
        assert_eq!(two.open(TokenClass::Access, &from_one).unwrap(), c);
        // Now it has, with the same header: the header is recognised.
        two.seal(TokenClass::Access, &c, None).unwrap();
        assert_eq!(two.open(TokenClass::Access, &from_one).unwrap(), c);
        // A node configured with a relay host opens tokens sealed without one, and back.
        let relayed = two
            .seal(TokenClass::Access, &c, Some("relay.example"))
            .unwrap();
        assert_eq!(one.open(TokenClass::Access, &relayed).unwrap(), c);
    }

    #[test]
    fn wrong_class_is_rejected_as_wrong_type() {
        let r = ring();
        let access = r.seal(TokenClass::Access, &claims(None), None).unwrap();
        let refresh = r.seal(TokenClass::Refresh, &claims(Some(1)), None).unwrap();
        assert_eq!(
            r.open(TokenClass::Refresh, &access),
            Err(TokenError::WrongType)
        );
        assert_eq!(
            r.open(TokenClass::Access, &refresh),
            Err(TokenError::WrongType)
        );
    }

    /// Re-heads a valid token with a different header; the tag no longer matches (the header
    /// is the AAD), but the point is that the header checks refuse it before any crypto.
    fn with_header(t: &str, header: serde_json::Value) -> String {
        let rest: Vec<&str> = t.splitn(2, '.').collect();
        format!("{}.{}", b64json(&header), rest[1])
    }

    #[test]
    fn other_algorithms_zip_and_unknown_kid_are_rejected_before_crypto() {
        let r = ring();
        let t = r.seal(TokenClass::Access, &claims(None), None).unwrap();
        let cases = [
            serde_json::json!({"alg":"none","enc":"A256GCM","typ":"SAT","kid":"a1"}),
            serde_json::json!({"alg":"A256KW","enc":"A256GCM","typ":"SAT","kid":"a1"}),
            serde_json::json!({"alg":"RSA1_5","enc":"A256GCM","typ":"SAT","kid":"a1"}),
            serde_json::json!({"alg":"PBES2-HS256+A128KW","enc":"A256GCM","typ":"SAT","kid":"a1"}),
            serde_json::json!({"alg":"DIR","enc":"A256GCM","typ":"SAT","kid":"a1"}),
            serde_json::json!({"alg":"dir","enc":"A128GCM","typ":"SAT","kid":"a1"}),
            serde_json::json!({"alg":"dir","enc":"A256CBC-HS512","typ":"SAT","kid":"a1"}),
            serde_json::json!({"alg":"dir","enc":"a256gcm","typ":"SAT","kid":"a1"}),
            serde_json::json!({"alg":"dir","enc":"A256GCM","typ":"SAT","kid":"a1","zip":"DEF"}),
            serde_json::json!({"alg":"dir","enc":"A256GCM","typ":"SAT","kid":"a1","jku":"http://x"}),
            serde_json::json!({"alg":"dir","enc":"A256GCM","typ":"JWT","kid":"a1"}),
            serde_json::json!({"alg":"dir","enc":"A256GCM","typ":"sat","kid":"a1"}),
        ];
        for h in cases {
            assert_eq!(
                r.open(TokenClass::Access, &with_header(&t, h.clone())),
                Err(TokenError::Malformed),
                "{h}"
            );
        }
        let unknown = serde_json::json!({"alg":"dir","enc":"A256GCM","typ":"SAT","kid":"zz"});
        assert_eq!(
            r.open(TokenClass::Access, &with_header(&t, unknown)),
            Err(TokenError::UnknownKey)
        );
        // The refresh key's kid does not open access tokens.
        let cross = serde_json::json!({"alg":"dir","enc":"A256GCM","typ":"SAT","kid":"r1"});
        assert_eq!(
            r.open(TokenClass::Access, &with_header(&t, cross)),
            Err(TokenError::UnknownKey)
        );
        // A correct-looking header that differs from the sealed one fails authentication.
        let same = serde_json::json!({"enc":"A256GCM","alg":"dir","typ":"SAT","kid":"a1"});
        assert_eq!(
            r.open(TokenClass::Access, &with_header(&t, same)),
            Err(TokenError::Invalid)
        );
    }

    #[test]
    fn garbage_never_panics() {
        let r = ring();
        for g in [
            "",
            ".",
            "....",
            "a.b.c.d.e",
            "eyJ9..AAAAAAAAAAAAAAAA.x.AAAAAAAAAAAAAAAAAAAAAA",
            &"x".repeat(MAX_TOKEN_LEN + 1),
        ] {
            assert!(r.open(TokenClass::Access, g).is_err());
        }
    }

    #[test]
    fn a_destroyed_key_no_longer_opens_its_tokens() {
        let material = random_bytes();
        let key = |state| KeyMaterial {
            kid: "a1".into(),
            purpose: KeyPurpose::Access,
            state,
            material,
        };
        let r = KeyRing::new([key(KeyState::Active)]);
        let t = r.seal(TokenClass::Access, &claims(None), None).unwrap();
        r.replace([key(KeyState::Retired)]);
        assert!(r.open(TokenClass::Access, &t).is_ok());
        assert_eq!(
            r.seal(TokenClass::Access, &claims(None), None),
            Err(TokenError::UnknownKey)
        );
        r.replace([key(KeyState::Destroyed)]);
        assert_eq!(r.open(TokenClass::Access, &t), Err(TokenError::UnknownKey));
    }

    #[test]
    fn expiry_uses_the_given_time_and_leeway() {
        let c = claims(None);
        assert!(check_time(&c, UnixTime(c.exp - 1), 0).is_ok());
        assert_eq!(check_time(&c, UnixTime(c.exp), 0), Err(TokenError::Expired));
        assert!(check_time(&c, UnixTime(c.exp + 5), 10).is_ok());
        assert_eq!(
            check_time(&c, UnixTime(c.iat - 100), 10),
            Err(TokenError::NotYetValid)
        );
    }
}

// The bounded fuzz of the parsers; a child module, since the claims fast path is private here.
#[cfg(test)]
#[path = "token_fuzz.rs"]
mod fuzz;
