//! Shared application state handed to every handler.

use std::sync::Arc;

use tessera_core::accounts::AccountsService;
use tessera_core::directory::Directory;
use tessera_core::maintenance::Maintenance;
use tessera_core::service::TokenService;

use crate::config::Config;
use crate::ratelimit::RateLimiter;

/// Everything a handler needs; cheap to clone: one reference count, because axum clones the
/// state for every extractor and middleware of every request (with a field per `Arc`, those
/// clones and drops were 3 % of an introspection's CPU).
#[derive(Debug, Clone)]
pub struct AppState(Arc<Shared>);

impl AppState {
    /// Wraps the parts.
    pub fn new(shared: Shared) -> Self {
        AppState(Arc::new(shared))
    }
}

impl std::ops::Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

/// The parts of [`AppState`].
#[derive(Debug)]
pub struct Shared {
    /// The token service (and through it the store, clock and keys).
    pub service: Arc<TokenService>,
    /// The directory of projects' subscribers, rooms, resources and addresses.
    pub directory: Arc<Directory>,
    /// The configuration.
    pub config: Arc<Config>,
    /// Background upkeep: key sync and cleanup.
    pub maintenance: Arc<Maintenance>,
    /// Rate limit of the public embed exchange.
    pub embed_limiter: Arc<RateLimiter>,
    /// The Accounts API: operator logins and management-plane bearer checks.
    pub accounts: Arc<AccountsService>,
}
