//! Tessera's domain: identifiers, principals, token formats, the key ring, the token service
//! and the [`store::Store`] trait. This crate does no HTTP and no SQL.

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
