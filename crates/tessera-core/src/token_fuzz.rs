//! A bounded, seeded fuzz of the token parsers, in the normal `cargo test` run: the Fabric JWE
//! ([`KeyRing::open`], its header checks and the claims fast path [`ClaimsReader`]) and the
//! Accounts JWS ([`crate::jws::verify`], through its public API only).
//!
//! What it holds, for arbitrary bytes and for mutations of valid tokens (bit flips,
//! truncations, duplicated, swapped and spliced segments, segments grown up to the 64 KiB
//! request-body limit):
//! - nothing panics;
//! - nothing that differs from a token Tessera issued opens or verifies;
//! - every accepted token re-serialises to itself: its claims write back to the bytes they were
//!   read from, the fast reader and serde agree on every plaintext the fast reader accepts, a
//!   re-seal of the opened claims under the same key opens to the same claims, and a JWS (whose
//!   signatures are deterministic) re-signs to the very same string.
//!
//! It lives inside `token` (as a child module) because the fast reader and the claims' JSON
//! writer are private there. The generator is a small SplitMix64 rather than a dependency;
//! `TESSERA_FUZZ_SEED` replays another seed, and every failure names the seed and the input.

use std::panic::{catch_unwind, AssertUnwindSafe};

use super::*;
use crate::jws::{self, AccountsClaims, JwsError, SigningAlg};
use crate::keyring::{test_key, KeyMaterial, KeyState};
// The crate directly, not `crypto`'s wrapper: an independent way to make ciphertexts.
use aes_gcm::aead::{AeadInPlace, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce};

/// The request-body limit (64 KiB): no token a client can send is longer.
const BODY_LIMIT: usize = 64 * 1024;
const NOW: i64 = 1_700_000_000;

/// SplitMix64: small, fast and good enough to drive mutations reproducibly.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`n` > 0).
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn chance(&mut self, one_in: usize) -> bool {
        self.below(one_in) == 0
    }

    fn pick<'a, T>(&mut self, xs: &'a [T]) -> &'a T {
        &xs[self.below(xs.len())]
    }

    fn uuid(&mut self) -> Uuid {
        Uuid::from_u64_pair(self.next(), self.next())
    }

    /// A length that is usually short, sometimes near the token limit, rarely up to the body
    /// limit.
    fn length(&mut self) -> usize {
        match self.below(10) {
            0 => MAX_TOKEN_LEN - 8 + self.below(16),
            1 => self.below(BODY_LIMIT + 1),
            _ => self.below(300),
        }
    }

    /// Text of `len` characters from `alphabet`.
    fn text(&mut self, alphabet: &[u8], len: usize) -> String {
        (0..len).map(|_| *self.pick(alphabet) as char).collect()
    }
}

const B64URL: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
/// Characters a hostile token is made of: base64url, the separator, and the look-alikes of
/// other base64 flavours, padding, whitespace and JSON.
const TOKEN_CHARS: &[u8] =
    b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_..+/= \"{}:,\\";

fn seed() -> u64 {
    std::env::var("TESSERA_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x7e55_e7a0_f022_0018)
}

/// Runs `f`, turning a panic into a test failure that names the seed and the input.
fn no_panic<R>(seed: u64, input: &str, f: impl FnOnce() -> R) -> R {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(r) => r,
        Err(_) => panic!("panicked on seed {seed} with input {:?}", abbreviate(input)),
    }
}

/// The input as a failure message shows it (a 64 KiB token is not readable anyway).
fn abbreviate(s: &str) -> String {
    if s.len() <= 400 {
        return s.to_string();
    }
    let cut = (0..=200)
        .rev()
        .find(|&i| s.is_char_boundary(i))
        .unwrap_or(0);
    format!("{}… ({} bytes)", &s[..cut], s.len())
}

/// A mutation of `token`: one to three edits of the kinds that matter to a compact
/// serialization. `others` are valid tokens to splice segments from.
fn mutate(rng: &mut Rng, token: &str, others: &[String]) -> String {
    let mut t: Vec<u8> = token.as_bytes().to_vec();
    for _ in 0..1 + rng.below(3) {
        match rng.below(12) {
            // A bit flip anywhere (possibly making the text invalid UTF-8, see below).
            0 if !t.is_empty() => {
                let i = rng.below(t.len());
                t[i] ^= 1 << rng.below(8);
            }
            // One character replaced.
            1 if !t.is_empty() => {
                let i = rng.below(t.len());
                t[i] = *rng.pick(TOKEN_CHARS);
            }
            // Truncated.
            2 => t.truncate(rng.below(t.len() + 1)),
            // Characters inserted.
            3 => {
                let at = rng.below(t.len() + 1);
                let n = 1 + rng.below(4);
                let ins = rng.text(TOKEN_CHARS, n);
                t.splice(at..at, ins.bytes());
            }
            // A range deleted.
            4 if !t.is_empty() => {
                let a = rng.below(t.len());
                let b = (a + 1 + rng.below(8)).min(t.len());
                t.drain(a..b);
            }
            // Segment-level edits: duplicate, drop, swap, splice from another token, grow.
            5..=10 => {
                let text = String::from_utf8_lossy(&t).into_owned();
                let mut segs: Vec<String> = text.split('.').map(str::to_string).collect();
                let i = rng.below(segs.len());
                match rng.below(6) {
                    0 => {
                        let s = segs[i].clone();
                        segs.insert(i, s);
                    }
                    1 if segs.len() > 1 => {
                        segs.remove(i);
                    }
                    2 => {
                        let j = rng.below(segs.len());
                        segs.swap(i, j);
                    }
                    3 if !others.is_empty() => {
                        let other: Vec<&str> = rng.pick(others).split('.').collect();
                        if let Some(s) = other.get(i) {
                            segs[i] = s.to_string();
                        }
                    }
                    4 => {
                        // Grown to a hostile size: near the token limit or up to the body limit.
                        let len = rng.length();
                        segs[i] = rng.text(B64URL, len);
                    }
                    _ => {
                        let len = rng.below(40);
                        segs[i].push_str(&rng.text(B64URL, len));
                    }
                }
                t = segs.join(".").into_bytes();
            }
            // Case of one character changed (base64url is case-sensitive).
            _ if !t.is_empty() => {
                let i = rng.below(t.len());
                t[i] = if t[i].is_ascii_lowercase() {
                    t[i].to_ascii_uppercase()
                } else {
                    t[i].to_ascii_lowercase()
                };
            }
            _ => t.push(b'.'),
        }
    }
    // A request body carries text: invalid UTF-8 reaches the parsers as replacement
    // characters at worst.
    String::from_utf8_lossy(&t).into_owned()
}

/// Arbitrary input: random bytes, random token-like text, or five random segments.
fn arbitrary(rng: &mut Rng) -> String {
    match rng.below(3) {
        0 => {
            let len = rng.length();
            let bytes: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
            String::from_utf8_lossy(&bytes).into_owned()
        }
        1 => {
            let len = rng.length();
            rng.text(TOKEN_CHARS, len)
        }
        _ => {
            let n = 2 + rng.below(5);
            (0..n)
                .map(|_| {
                    let len = rng.below(60);
                    rng.text(B64URL, len)
                })
                .collect::<Vec<_>>()
                .join(".")
        }
    }
}

// --- Fabric JWE ---

const ACCESS_KEY: [u8; 32] = [0xa1; 32];
const REFRESH_KEY: [u8; 32] = [0xb2; 32];

fn fabric_ring() -> KeyRing {
    let key = |kid: &str, purpose, state, material| KeyMaterial {
        kid: kid.into(),
        purpose,
        state,
        material,
    };
    KeyRing::new([
        key("a-new", KeyPurpose::Access, KeyState::Active, ACCESS_KEY),
        key("a-old", KeyPurpose::Access, KeyState::Retired, [0xa0; 32]),
        key("r-new", KeyPurpose::Refresh, KeyState::Active, REFRESH_KEY),
    ])
}

/// Claims of every shape `to_json` writes: each optional member present or not, and values
/// at the edges (negative, zero, `i64` limits, scopes that need escaping).
fn random_claims(rng: &mut Rng, class: TokenClass) -> Claims {
    let int = |rng: &mut Rng| match rng.below(5) {
        0 => i64::MAX,
        1 => i64::MIN,
        2 => 0,
        3 => -(rng.below(1000) as i64),
        _ => NOW + rng.below(100_000) as i64,
    };
    let n_adr = *rng.pick(&[0, 0, 1, 2, 10]);
    Claims {
        sub: rng.uuid(),
        pid: ProjectId(rng.uuid()),
        knd: *rng.pick(&[
            PrincipalKind::Subscriber,
            PrincipalKind::Guest,
            PrincipalKind::Invite,
            PrincipalKind::Embed,
        ]),
        fam: FamilyId(rng.uuid()),
        jti: TokenId(rng.uuid()),
        iat: int(rng),
        exp: int(rng),
        adr: (0..n_adr).map(|_| AddressId(rng.uuid())).collect(),
        app: rng.chance(3).then(|| rng.uuid()),
        gen: (class == TokenClass::Refresh).then(|| int(rng)),
        scp: rng.chance(3).then(|| {
            rng.pick(&["sat:refresh", "", "\"quoted\" \\ \u{1}", "é ✓ \u{7f}"])
                .to_string()
        }),
    }
}

/// Seals `plaintext` under `key` with the encoded header `h`, bypassing `Claims`: how a
/// holder of the key could make any authenticated plaintext and any header.
fn seal_raw(key: &[u8; 32], h: &str, plaintext: &[u8], rng: &mut Rng) -> String {
    let cipher = Aes256Gcm::new(&(*key).into());
    let iv: [u8; 12] = std::array::from_fn(|_| rng.next() as u8);
    let mut buf = plaintext.to_vec();
    let tag = cipher
        .encrypt_in_place_detached(Nonce::from_slice(&iv), h.as_bytes(), &mut buf)
        .unwrap();
    compact(h, &iv, &buf, &tag)
}

/// The fast reader's answer for `bytes`, if it accepts them.
fn fast(bytes: &[u8]) -> Option<Claims> {
    ClaimsReader { b: bytes, at: 0 }.claims()
}

#[test]
fn fabric_tokens_open_only_as_sealed_and_reseal_to_the_same_claims() {
    let seed = seed();
    let mut rng = Rng(seed);
    let ring = fabric_ring();
    let mut issued = Vec::new();
    for i in 0..200 {
        let class = if i % 2 == 0 {
            TokenClass::Access
        } else {
            TokenClass::Refresh
        };
        let claims = random_claims(&mut rng, class);
        let ch = rng.chance(4).then_some("relay.example");
        let token = ring.seal(class, &claims, ch).unwrap();
        // Accepted tokens re-serialise to themselves: the claims open as sealed, write back
        // to what serde writes, read back (fast path or serde) as the same claims, and a
        // re-seal of the opened claims opens to them again.
        let opened = ring.open(class, &token).unwrap();
        assert_eq!(opened, claims, "seed {seed}");
        let json = opened.to_json();
        assert_eq!(json, serde_json::to_vec(&opened).unwrap(), "seed {seed}");
        assert_eq!(Claims::from_json(&json).ok().as_ref(), Some(&opened));
        if let Some(c) = fast(&json) {
            assert_eq!(c, opened, "seed {seed}");
        }
        let resealed = ring.seal(class, &opened, ch).unwrap();
        assert_ne!(resealed, token, "a fresh IV every time");
        assert_eq!(ring.open(class, &resealed).unwrap(), claims, "seed {seed}");
        // The other class never opens it.
        let other = if class == TokenClass::Access {
            TokenClass::Refresh
        } else {
            TokenClass::Access
        };
        assert_eq!(
            ring.open(other, &token),
            Err(TokenError::WrongType),
            "seed {seed}"
        );
        issued.push((class, claims, token));
    }
    let tokens: Vec<String> = issued.iter().map(|(_, _, t)| t.clone()).collect();
    for round in 0..4000 {
        let (class, _, token) = &issued[round % issued.len()];
        let m = mutate(&mut rng, token, &tokens);
        let got = no_panic(seed, &m, || ring.open(*class, &m));
        // Splicing can rebuild an issued token (all of another one's segments): that one is
        // genuine and opens; anything else must not.
        if let Some((genuine_class, genuine, _)) = issued.iter().find(|(_, _, t)| *t == m) {
            if genuine_class == class {
                assert_eq!(got.as_ref(), Ok(genuine), "seed {seed}");
            } else {
                assert!(got.is_err(), "seed {seed}");
            }
        } else {
            assert!(
                got.is_err(),
                "seed {seed}: a changed token opened: {:?}",
                abbreviate(&m)
            );
        }
    }
    for _ in 0..2000 {
        let a = arbitrary(&mut rng);
        for class in [TokenClass::Access, TokenClass::Refresh] {
            let got = no_panic(seed, &a, || ring.open(class, &a));
            assert!(got.is_err(), "seed {seed}: {:?} opened", abbreviate(&a));
        }
    }
}

/// One edit of a claims document that keeps it JSON-like: the plaintexts a key holder (an
/// older or newer version of Tessera) might have sealed.
fn mutate_json(rng: &mut Rng, json: &[u8]) -> Vec<u8> {
    let mut j = json.to_vec();
    match rng.below(9) {
        0 if !j.is_empty() => {
            let i = rng.below(j.len());
            j[i] ^= 1 << rng.below(8);
        }
        1 if !j.is_empty() => {
            let i = rng.below(j.len());
            j[i] = *rng.pick(b"0123456789-+.eE \t\n\"\\,:{}[]u");
        }
        2 => {
            let at = rng.below(j.len() + 1);
            let ws = *rng.pick(&[&b" "[..], b"\n", b"0", b"-", b"00", b"\\u0041"]);
            j.splice(at..at, ws.iter().copied());
        }
        3 if !j.is_empty() => {
            let a = rng.below(j.len());
            let b = (a + 1 + rng.below(6)).min(j.len());
            j.drain(a..b);
        }
        4 => j.truncate(rng.below(j.len() + 1)),
        // A member written twice (the fast reader cannot see it; serde must refuse it).
        5 => {
            let text = String::from_utf8_lossy(&j).into_owned();
            if let Some(at) = text.find(",\"iat\":") {
                let end = text[at + 1..]
                    .find(',')
                    .map_or(text.len() - 1, |e| at + 1 + e);
                let member = text[at..end].to_string();
                j = format!("{}{member}{}", &text[..end], &text[end..]).into_bytes();
            }
        }
        // Members reordered: still valid JSON for serde, not the fast reader's layout.
        6 => {
            if let Ok(serde_json::Value::Object(m)) = serde_json::from_slice(&j) {
                let mut members: Vec<_> = m.into_iter().collect();
                members.reverse();
                j = serde_json::to_vec(&members.into_iter().collect::<serde_json::Map<_, _>>())
                    .unwrap();
            }
        }
        // A number at or past the `i64` edges.
        7 => {
            let text = String::from_utf8_lossy(&j).into_owned();
            let n = *rng.pick(&[
                "9223372036854775807",
                "9223372036854775808",
                "-9223372036854775808",
                "-9223372036854775809",
                "1e3",
                "1.0",
                "-0",
                "01",
            ]);
            if let Some(at) = text.find("\"exp\":") {
                let start = at + 6;
                let end = start
                    + text[start..]
                        .find(|c: char| !(c.is_ascii_digit() || c == '-'))
                        .unwrap_or(0);
                j = format!("{}{n}{}", &text[..start], &text[end..]).into_bytes();
            }
        }
        _ => {
            let at = rng.below(j.len() + 1);
            let b = rng.next() as u8;
            j.insert(at, b);
        }
    }
    j
}

#[test]
fn the_claims_fast_path_agrees_with_serde_on_every_authenticated_plaintext() {
    let seed = seed();
    let mut rng = Rng(seed ^ 1);
    let ring = fabric_ring();
    // The encoded headers the ring seals under (one per class).
    let header = |class| {
        let c = random_claims(&mut Rng(7), class);
        let t = ring.seal(class, &c, None).unwrap();
        t.split('.').next().unwrap().to_string()
    };
    let headers = [
        (TokenClass::Access, header(TokenClass::Access), ACCESS_KEY),
        (
            TokenClass::Refresh,
            header(TokenClass::Refresh),
            REFRESH_KEY,
        ),
    ];
    let mut fast_accepted = 0;
    for round in 0..6000 {
        let (class, h, key) = &headers[round % 2];
        let mut json = random_claims(&mut rng, *class).to_json();
        for _ in 0..1 + rng.below(2) {
            json = mutate_json(&mut rng, &json);
        }
        let shown = String::from_utf8_lossy(&json).into_owned();
        let by_serde = serde_json::from_slice::<Claims>(&json).ok();
        let by_fast = no_panic(seed, &shown, || fast(&json));
        if let Some(c) = &by_fast {
            fast_accepted += 1;
            assert_eq!(by_serde.as_ref(), Some(c), "seed {seed}: {shown}");
            // What it accepted writes back to a document it reads as the same claims (not
            // always the same bytes: it also takes upper-case UUIDs, as serde does).
            assert_eq!(fast(&c.to_json()).as_ref(), Some(c), "seed {seed}: {shown}");
        }
        // Through the whole of `open`: a plaintext sealed under the right key and header opens
        // to serde's reading, or not at all (and a refresh token needs its generation).
        let token = seal_raw(key, h, &json, &mut rng);
        let opened = no_panic(seed, &shown, || ring.open(*class, &token));
        let expected = by_serde.filter(|c| c.gen.is_some() == (*class == TokenClass::Refresh));
        assert_eq!(opened.ok(), expected, "seed {seed}: {shown}");
    }
    // The mutations are mild enough that the fast path is exercised, not only refused.
    assert!(fast_accepted > 100, "{fast_accepted}");
}

/// A header member for [`the_header_profile_is_enforced_before_any_plaintext_is_trusted`]:
/// its JSON text and whether it belongs to the profile for an access token.
fn header_member(rng: &mut Rng) -> (&'static str, String, bool) {
    let m: (&str, &str, bool) = *rng.pick(&[
        ("alg", "\"dir\"", true),
        ("alg", "\"none\"", false),
        ("alg", "\"A256KW\"", false),
        ("alg", "\"DIR\"", false),
        ("enc", "\"A256GCM\"", true),
        ("enc", "\"A128GCM\"", false),
        ("enc", "\"A256CBC-HS512\"", false),
        ("typ", "\"SAT\"", true),
        ("typ", "\"Refresh\"", false),
        ("typ", "\"JWT\"", false),
        ("kid", "\"a-new\"", true),
        ("kid", "\"a-old\"", true),
        ("kid", "\"r-new\"", false),
        ("kid", "\"nope\"", false),
        ("kid", "7", false),
        ("ch", "\"relay.example\"", true),
        ("ch", "null", true),
        ("ch", "3", false),
        ("zip", "\"DEF\"", false),
        ("crit", "[\"exp\"]", false),
        ("jku", "\"https://evil.example/jwks\"", false),
        ("jwk", "{}", false),
        ("x5u", "\"https://evil.example\"", false),
        ("cty", "\"JWT\"", false),
    ]);
    (m.0, m.1.to_string(), m.2)
}

#[test]
fn the_header_profile_is_enforced_before_any_plaintext_is_trusted() {
    let seed = seed();
    let mut rng = Rng(seed ^ 2);
    let ring = fabric_ring();
    let claims = random_claims(&mut rng, TokenClass::Access);
    let json = claims.to_json();
    let mut accepted = 0;
    let profile = |kid: &str| {
        vec![
            ("alg", "\"dir\"".to_string(), true),
            ("enc", "\"A256GCM\"".to_string(), true),
            ("typ", "\"SAT\"".to_string(), true),
            ("kid", format!("\"{kid}\""), true),
        ]
    };
    for _ in 0..3000 {
        // A header of the profile (members in any order, `ch` or not), then up to three
        // edits: a member replaced, added or dropped. Or a heap of random members.
        let mut members = if rng.chance(5) {
            let n = 1 + rng.below(6);
            (0..n).map(|_| header_member(&mut rng)).collect()
        } else {
            let mut m = profile(if rng.chance(3) { "a-old" } else { "a-new" });
            if rng.chance(3) {
                m.push(("ch", "\"relay.example\"".to_string(), true));
            }
            for _ in 0..rng.below(4) {
                let i = rng.below(m.len());
                match rng.below(3) {
                    0 => m[i] = header_member(&mut rng),
                    1 => m.insert(i, header_member(&mut rng)),
                    _ if m.len() > 1 => {
                        m.remove(i);
                    }
                    _ => {}
                }
            }
            m
        };
        for i in (1..members.len()).rev() {
            members.swap(i, rng.below(i + 1));
        }
        // In the profile: every member allowed, no member twice, and the four required ones
        // present (`ch` optional). A forged header is sealed with the right key, so only the
        // header checks stand between it and the plaintext.
        let names: Vec<&str> = members.iter().map(|m| m.0).collect();
        let distinct = names
            .iter()
            .enumerate()
            .all(|(i, n)| !names[..i].contains(n));
        let complete = ["alg", "enc", "typ", "kid"]
            .iter()
            .all(|r| names.contains(r));
        let valid = distinct && complete && members.iter().all(|m| m.2);
        let sep = *rng.pick(&[",", ", ", " ,\n"]);
        let body: Vec<String> = members
            .iter()
            .map(|(k, v, _)| format!("\"{k}\":{v}"))
            .collect();
        let header = format!("{{{}}}", body.join(sep));
        let h = URL_SAFE_NO_PAD.encode(&header);
        // `a-old` is a retired key: its material, not the active one's.
        let key = if header.contains("\"a-old\"") {
            [0xa0; 32]
        } else {
            ACCESS_KEY
        };
        let token = seal_raw(&key, &h, &json, &mut rng);
        let got = no_panic(seed, &header, || ring.open(TokenClass::Access, &token));
        if valid {
            accepted += 1;
            assert_eq!(got.as_ref(), Ok(&claims), "seed {seed}: {header}");
        } else {
            assert!(got.is_err(), "seed {seed}: {header} was accepted");
        }
    }
    // Both sides of the line are exercised.
    assert!(accepted > 300 && accepted < 2700, "{accepted}");
}

// --- Accounts JWS ---

fn accounts_ring() -> KeyRing {
    KeyRing::new([
        test_key("s-new", KeyPurpose::Signing, KeyState::Active, 0x5a),
        test_key("s-old", KeyPurpose::Signing, KeyState::Retired, 0x5b),
        // Same material under a Fabric purpose: a `kid` may not reach across purposes.
        test_key("a-new", KeyPurpose::Access, KeyState::Active, 0x5a),
    ])
}

fn random_accounts_claims(rng: &mut Rng) -> AccountsClaims {
    let name = rng
        .pick(&[
            "admin@local",
            "ci-bot",
            "kate@example.com",
            "\u{212a}ate@example.com",
            "quote\"and\\slash",
            "",
        ])
        .to_string();
    AccountsClaims {
        jti: rng.uuid().to_string(),
        iss: jws::ISSUER.into(),
        aud: jws::AUDIENCE.into(),
        sub: name.clone(),
        user: name.clone(),
        name,
        scope: (0..rng.below(4))
            .map(|i| ["USER_READ", "USER_WRITE", "KEY_ROTATE", "\u{1}"][i].to_string())
            .collect(),
        iat: NOW - 10,
        nbf: NOW - 10,
        exp: NOW + 3600,
    }
}

#[test]
fn accounts_tokens_verify_only_as_signed_and_resign_to_themselves() {
    let seed = seed();
    let mut rng = Rng(seed ^ 3);
    let ring = accounts_ring();
    for alg in [SigningAlg::Hs256, SigningAlg::EdDsa] {
        let other = match alg {
            SigningAlg::Hs256 => SigningAlg::EdDsa,
            SigningAlg::EdDsa => SigningAlg::Hs256,
        };
        let mut issued = Vec::new();
        for _ in 0..40 {
            let claims = random_accounts_claims(&mut rng);
            let token = jws::sign(&ring, alg, &claims).unwrap();
            let verified = jws::verify(&ring, alg, &token, UnixTime(NOW), 0).unwrap();
            assert_eq!(verified, claims, "seed {seed}");
            // Both algorithms sign deterministically: the accepted token re-serialises to
            // itself, byte for byte.
            assert_eq!(
                jws::sign(&ring, alg, &verified).unwrap(),
                token,
                "seed {seed}"
            );
            assert!(jws::verify(&ring, other, &token, UnixTime(NOW), 0).is_err());
            issued.push((claims, token));
        }
        let tokens: Vec<String> = issued.iter().map(|(_, t)| t.clone()).collect();
        // Ed25519 verification costs far more than an HMAC in a debug build.
        let rounds = if alg == SigningAlg::Hs256 { 3000 } else { 600 };
        for round in 0..rounds {
            let (_, token) = &issued[round % issued.len()];
            let m = mutate(&mut rng, token, &tokens);
            let got = no_panic(seed, &m, || jws::verify(&ring, alg, &m, UnixTime(NOW), 0));
            // Splicing can rebuild an issued token: that one is genuine and verifies.
            if let Some((genuine, _)) = issued.iter().find(|(_, t)| *t == m) {
                assert_eq!(got.as_ref(), Ok(genuine), "seed {seed}");
            } else {
                assert!(
                    got.is_err(),
                    "seed {seed}: a changed {alg:?} token verified: {:?}",
                    abbreviate(&m)
                );
            }
        }
        for _ in 0..1000 {
            let a = arbitrary(&mut rng);
            let got = no_panic(seed, &a, || jws::verify(&ring, alg, &a, UnixTime(NOW), 0));
            assert!(got.is_err(), "seed {seed}: {:?} verified", abbreviate(&a));
        }
    }
}

#[test]
fn accounts_headers_outside_the_profile_are_refused() {
    let ring = accounts_ring();
    let claims = random_accounts_claims(&mut Rng(seed() ^ 4));
    let token = jws::sign(&ring, SigningAlg::Hs256, &claims).unwrap();
    let (_, rest) = token.split_once('.').unwrap();
    let (payload, _) = rest.split_once('.').unwrap();
    // The Ed25519 public key, as published: the classic confusion MACs with it.
    let public = match &jws::public_keys(&ring, SigningAlg::EdDsa)[0].key {
        jws::PublicKeyBytes::Ed25519(x) => x.to_vec(),
    };
    for header in [
        r#"{"alg":"none","kid":"s-new"}"#,
        r#"{"alg":"HS256","kid":"s-new","kid":"s-old"}"#,
        r#"{"alg":"HS256","alg":"HS256","kid":"s-new"}"#,
        r#"{"alg":"HS256","kid":"a-new"}"#,
        r#"{"alg":"HS256","kid":"s-new","typ":"at+jwt"}"#,
        r#"{"alg":"HS256","kid":"s-new","jwk":{}}"#,
        r#"{"alg":"HS256","kid":"s-new","crit":["b64"],"b64":false}"#,
        r#"{"alg":"EdDSA","kid":"s-new"}"#,
    ] {
        let h = URL_SAFE_NO_PAD.encode(header);
        let input = format!("{h}.{payload}");
        let mut mac = <hmac::Hmac<sha2::Sha256> as hmac::Mac>::new_from_slice(&public).unwrap();
        hmac::Mac::update(&mut mac, input.as_bytes());
        let sig = URL_SAFE_NO_PAD.encode(hmac::Mac::finalize(mac).into_bytes());
        for forged in [format!("{input}."), format!("{input}.{sig}")] {
            for alg in [SigningAlg::Hs256, SigningAlg::EdDsa] {
                assert!(
                    jws::verify(&ring, alg, &forged, UnixTime(NOW), 0).is_err(),
                    "{header} under {alg:?}"
                );
            }
        }
    }
    // Well-formed but expired, not yet valid, or not ours (issuer, audience).
    for c in [
        AccountsClaims {
            exp: NOW,
            ..claims.clone()
        },
        AccountsClaims {
            nbf: NOW + 1,
            ..claims.clone()
        },
        AccountsClaims {
            iss: "someone-else".into(),
            ..claims.clone()
        },
        AccountsClaims {
            aud: "other-services".into(),
            ..claims.clone()
        },
    ] {
        let t = jws::sign(&ring, SigningAlg::Hs256, &c).unwrap();
        assert_eq!(
            jws::verify(&ring, SigningAlg::Hs256, &t, UnixTime(NOW), 0),
            Err(JwsError::Expired)
        );
    }
}

/// Found by the fuzz above: the fast path read `-0` as 0 where serde refuses it (it is the
/// float -0.0), a differential between the two readers of one plaintext.
#[test]
fn the_fast_path_refuses_minus_zero_as_serde_does() {
    let mut c = random_claims(&mut Rng(5), TokenClass::Access);
    c.exp = 0;
    let json = String::from_utf8(c.to_json()).unwrap();
    assert_eq!(fast(json.as_bytes()), Some(c.clone()));
    let minus = json.replace("\"exp\":0", "\"exp\":-0");
    assert!(serde_json::from_str::<Claims>(&minus).is_err());
    assert_eq!(fast(minus.as_bytes()), None);
    assert!(Claims::from_json(minus.as_bytes()).is_err());
}
