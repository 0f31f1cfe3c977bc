//! Tessera's domain: identifiers, principals, token formats, the key ring, the token service
//! and the [`store`] traits. This crate does no HTTP and no SQL.

pub mod accounts;
pub mod admin;
pub mod audit;
pub mod cache;
pub mod clock;
pub mod crypto;
pub mod directory;
pub mod export;
pub mod ids;
pub mod json;
pub mod jws;
pub mod keyring;
pub mod keys;
pub mod maintenance;
pub mod metrics;
pub mod model;
pub mod secret;
pub mod service;
pub mod store;
pub mod token;
pub mod verifier;

pub use clock::{Clock, ManualClock, SystemClock, UnixTime};
pub use secret::Secret;

/// The module boundaries ARCHITECTURE.md states, checked on the source: a `use` slipped in
/// compiles fine, so only a test notices.
#[cfg(test)]
mod boundaries {
    /// Every module of the crate, with its source.
    const MODULES: &[(&str, &str)] = &[
        ("accounts.rs", include_str!("accounts.rs")),
        ("audit.rs", include_str!("audit.rs")),
        ("cache.rs", include_str!("cache.rs")),
        ("clock.rs", include_str!("clock.rs")),
        ("crypto.rs", include_str!("crypto.rs")),
        ("export.rs", include_str!("export.rs")),
        ("ids.rs", include_str!("ids.rs")),
        ("json.rs", include_str!("json.rs")),
        ("jws.rs", include_str!("jws.rs")),
        ("keyring.rs", include_str!("keyring.rs")),
        ("keys.rs", include_str!("keys.rs")),
        ("lib.rs", include_str!("lib.rs")),
        ("maintenance.rs", include_str!("maintenance.rs")),
        ("metrics.rs", include_str!("metrics.rs")),
        ("model.rs", include_str!("model.rs")),
        ("secret.rs", include_str!("secret.rs")),
        ("service.rs", include_str!("service.rs")),
        ("store.rs", include_str!("store.rs")),
        ("token.rs", include_str!("token.rs")),
        ("verifier.rs", include_str!("verifier.rs")),
    ];

    /// The code of a module: its text before its tests, without comments (which may name
    /// anything).
    fn code(source: &str) -> String {
        let end = source.find("#[cfg(test)]").unwrap_or(source.len());
        source[..end]
            .lines()
            .filter(|l| !l.trim_start().starts_with("//"))
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Whether `code` reaches into `path` (every use of a crate or module is a path through
    /// it: `use path::…` or `path::Item`).
    fn names(code: &str, path: &str) -> bool {
        let prefix = format!("{path}::");
        code.split(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':'))
            .any(|word| word.starts_with(&prefix))
    }

    #[test]
    fn only_crypto_knows_the_crypto_crates() {
        let crates = [
            "aes_gcm",
            "argon2",
            "ed25519_dalek",
            "getrandom",
            "hmac",
            "sha2",
            "subtle",
        ];
        for (file, source) in MODULES {
            if *file == "crypto.rs" || *file == "lib.rs" {
                continue;
            }
            let code = code(source);
            for krate in crates {
                assert!(!names(&code, krate), "{file} uses {krate}");
            }
        }
    }

    #[test]
    fn the_key_ring_knows_neither_token_format_and_the_formats_do_not_know_each_other() {
        let find = |name: &str| code(MODULES.iter().find(|(f, _)| *f == name).unwrap().1);
        let keyring = find("keyring.rs");
        for format in ["token", "jws"] {
            assert!(
                !names(&keyring, &format!("crate::{format}")),
                "keyring.rs uses {format}"
            );
        }
        assert!(!names(&find("token.rs"), "crate::jws"), "token.rs uses jws");
    }

    #[test]
    fn core_renders_neither_prometheus_text_nor_a_jwks() {
        for (file, source) in MODULES {
            let code = code(source);
            for wire in ["# TYPE", "# HELP", "\"kty\""] {
                assert!(!code.contains(wire), "{file} writes {wire}");
            }
        }
    }
}
