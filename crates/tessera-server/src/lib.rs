//! Tessera's HTTP server: the Fabric dialect, configuration, telemetry and start-up.
//!
//! Only this crate knows HTTP and JSON. Handlers are thin: parse the wire input into core
//! request types, call the [`tessera_core::service::TokenService`], render the result.

pub mod accounts;
pub mod config;
pub mod connections;
pub mod docs;
pub mod error;
pub mod extract;
pub mod fabric;
pub mod json_body;
pub mod metrics;
pub mod oauth2;
pub mod openapi;
pub mod proxies;
pub mod ratelimit;
pub mod startup;
pub mod state;
pub mod telemetry;
pub mod transfer;

pub use config::Config;
pub use startup::{prepare, router, serve, StartError};
pub use state::AppState;
