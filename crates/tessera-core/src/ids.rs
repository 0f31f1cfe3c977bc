//! Identifier newtypes, and the one comparison key of the names callers choose.
//!
//! Each id type is a UUID on the wire, but the types keep a subscriber id from being passed
//! where a project id is expected. Subscriber references and emails and operator usernames
//! are free text; [`identity_key`] is the only way they are compared.

use std::fmt;
use std::str::FromStr;
use uuid::Uuid;

/// A random (v4) UUID from [`crate::crypto::random_bytes`].
pub fn random_uuid() -> Uuid {
    uuid::Builder::from_random_bytes(crate::crypto::random_bytes::<16>()).into_uuid()
}

/// The comparison key of a subscriber reference, a subscriber email or an operator username:
/// ASCII letters folded to lower case, every other byte kept as it is.
///
/// Two identifiers name the same principal exactly when their keys are equal, so `KATE@x`
/// and `kate@x` are one subscriber, but `\u{212A}ate@x` (KELVIN SIGN) is not `kate@x`, `ſ` is
/// not `s`, `\u{C5}` is not `\u{212B}` (ANGSTROM SIGN) and a fullwidth `\u{FF4B}` is not `k`.
/// Unicode case mapping or normalisation is deliberately absent: a project backend that
/// checks its own users' uniqueness with a plain or ASCII-only comparison would otherwise
/// see two accounts where Tessera sees one, and the second could take over the first's
/// subscriber (security.md, "Identifiers"). ASCII folding is also what every store can do
/// identically (PostgreSQL's `lower()` follows the database locale, SQLite's does not), and
/// it is narrower than the Unicode lowercasing used before migration 7, so recomputing the
/// stored keys can never make two rows collide (see the tests below).
///
/// Every key derived from these names goes through this function: the stores' reference,
/// email and username keys and the login lockout's account key.
pub fn identity_key(name: &str) -> String {
    name.to_ascii_lowercase()
}

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(pub Uuid);

        impl $name {
            /// A new random (v4) identifier.
            pub fn random() -> Self {
                $name(random_uuid())
            }

            /// A new time-ordered (v7) identifier, so that listing by id lists by creation.
            pub fn ordered(millis: i64) -> Self {
                $name(
                    uuid::Builder::from_unix_timestamp_millis(
                        millis.max(0) as u64,
                        &crate::crypto::random_bytes::<10>(),
                    )
                    .into_uuid(),
                )
            }

            /// The underlying UUID.
            pub fn uuid(&self) -> Uuid {
                self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.hyphenated().fmt(f)
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                self.0.serialize(s)
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                Uuid::deserialize(d).map($name)
            }
        }

        impl FromStr for $name {
            type Err = uuid::Error;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                // Only the canonical hyphenated form is accepted: ids are compared as text in
                // places (URLs, logs) and a second spelling of one id would be a trap.
                if s.len() != 36 {
                    return Uuid::parse_str("-").map($name);
                }
                Uuid::parse_str(s).map($name)
            }
        }
    };
}

id_type!(
    /// A project (tenant).
    ProjectId
);
id_type!(
    /// A project API token record (not the secret).
    ApiTokenId
);
id_type!(
    /// A Fabric resource: subscriber, room or application. A subscriber's resource id is also
    /// its subscriber id (fabric-api.md §13 item 9).
    ResourceId
);
id_type!(
    /// A Fabric address.
    AddressId
);
id_type!(
    /// A session family: one login or grant and all of its refresh tokens.
    FamilyId
);
id_type!(
    /// An embed (click-to-call) widget.
    EmbedId
);
id_type!(
    /// A token's own id (`jti`), or a guest principal's id.
    TokenId
);
id_type!(
    /// An operator: a person or a service account of the management plane.
    OperatorId
);

#[cfg(test)]
mod tests {
    use super::identity_key;
    use std::collections::HashMap;

    /// Letters that case mapping or normalisation would confuse with ASCII ones or with each
    /// other, beside the ASCII letters they resemble and two separators.
    const TRICKY: [char; 24] = [
        'a', 'A', 'k', 'K', 's', 'S', 'i', 'I', '@', '.',        //
        '\u{212A}', // KELVIN SIGN
        '\u{17F}',  // LATIN SMALL LETTER LONG S
        '\u{FF4B}', // FULLWIDTH LATIN SMALL LETTER K
        '\u{FF2B}', // FULLWIDTH LATIN CAPITAL LETTER K
        '\u{130}',  // LATIN CAPITAL LETTER I WITH DOT ABOVE
        '\u{131}',  // LATIN SMALL LETTER DOTLESS I
        '\u{307}',  // COMBINING DOT ABOVE
        '\u{C5}',   // LATIN CAPITAL LETTER A WITH RING ABOVE
        '\u{E5}',   // LATIN SMALL LETTER A WITH RING ABOVE
        '\u{212B}', // ANGSTROM SIGN
        '\u{3A3}',  // GREEK CAPITAL LETTER SIGMA
        '\u{3C3}',  // GREEK SMALL LETTER SIGMA
        '\u{3C2}',  // GREEK SMALL LETTER FINAL SIGMA
        '\u{39F}',  // GREEK CAPITAL LETTER OMICRON
    ];

    /// Every string of up to `max` characters of [`TRICKY`].
    fn tricky_strings(max: usize) -> Vec<String> {
        let mut all = vec![String::new()];
        let mut last = vec![String::new()];
        for _ in 0..max {
            last = last
                .iter()
                .flat_map(|s| {
                    TRICKY.iter().map(move |c| {
                        let mut n = s.clone();
                        n.push(*c);
                        n
                    })
                })
                .collect();
            all.extend(last.iter().cloned());
        }
        all
    }

    #[test]
    fn only_ascii_letters_fold() {
        assert_eq!(identity_key("KATE@Example.COM"), "kate@example.com");
        for (a, b) in [
            ("\u{212A}ate@x", "kate@x"),
            ("\u{17F}am@x", "sam@x"),
            ("\u{FF4B}ate@x", "kate@x"),
            ("\u{FF2B}ATE@x", "\u{FF4B}ate@x"),
            ("ADM\u{130}N@local", "admin@local"),
            ("ADM\u{130}N@local", "admi\u{307}n@local"),
            ("\u{131}vy@x", "ivy@x"),
            ("\u{212B}sa@x", "\u{C5}sa@x"),
            ("\u{C5}sa@x", "\u{E5}sa@x"),
            ("\u{39F}\u{3A3}@x", "\u{3BF}\u{3C2}@x"),
            ("\u{3BF}\u{3C3}@x", "\u{3BF}\u{3C2}@x"),
        ] {
            assert_ne!(identity_key(a), identity_key(b), "{a:?} vs {b:?}");
        }
        // Non-ASCII text is kept byte for byte, capitals included.
        assert_eq!(identity_key("\u{C5}SA@X"), "\u{C5}sa@x");
    }

    /// Migration 7 recomputes keys written with Unicode `to_lowercase` as `identity_key`.
    /// Keys equal under the new rule were equal under the old one, so rows that were unique
    /// stay unique: checked for every string of up to four tricky characters.
    #[test]
    fn ascii_folding_joins_nothing_that_unicode_lowercasing_kept_apart() {
        let mut seen: HashMap<String, (String, String)> = HashMap::new();
        for s in tricky_strings(4) {
            let old = s.to_lowercase();
            let new = identity_key(&s);
            if let Some((first, first_old)) = seen.get(&new) {
                assert_eq!(
                    first_old, &old,
                    "{first:?} and {s:?} share the new key {new:?}"
                );
            } else {
                seen.insert(new, (s, old));
            }
        }
    }

    /// The migration updates rows one at a time under unique indexes, so no new key may
    /// equal an old key still in the table. Old keys are fixed points of `to_lowercase`; a
    /// key that the migration changes is not, so the two never meet. Checked for every
    /// character, and for every string of up to four tricky characters (where Greek final
    /// sigma depends on its neighbours).
    #[test]
    fn a_changed_key_never_equals_an_old_one() {
        let check = |s: &str| {
            let old = s.to_lowercase();
            assert_eq!(old.to_lowercase(), old, "{s:?}: old keys are fixed points");
            let new = identity_key(s);
            if new != old {
                assert_ne!(new.to_lowercase(), new, "{s:?}: a changed key is not one");
            }
        };
        for c in (0..=0x10FFFF).filter_map(char::from_u32) {
            check(c.encode_utf8(&mut [0; 4]));
        }
        for s in tricky_strings(4) {
            check(&s);
        }
    }
}
