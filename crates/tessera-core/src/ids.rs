//! Identifier newtypes. Each is a UUID on the wire, but the types keep a subscriber id from
//! being passed where a project id is expected.

use std::fmt;
use std::str::FromStr;
use uuid::Uuid;

/// A random (v4) UUID from [`crate::crypto::random_bytes`].
pub fn random_uuid() -> Uuid {
    uuid::Builder::from_random_bytes(crate::crypto::random_bytes::<16>()).into_uuid()
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
