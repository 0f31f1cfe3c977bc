//! Integration tests: user stories told through HTTP against the real application, started on
//! port 0 with its own temporary SQLite database and a manual clock. One test binary.

mod accounts;
mod bad_input;
mod hardening;
mod helpers;
mod lifecycle;
mod openapi;
mod resources;
mod schema_limits;
mod store_contract;
mod tokens;
