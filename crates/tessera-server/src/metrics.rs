//! `GET /metrics`: every counter and histogram of [`tessera_core::metrics::Metrics`], plus key
//! ages and encryption counts read at scrape time, in the Prometheus text format.

use std::fmt::Write as _;

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use tessera_core::metrics::describe;

use crate::error::FabricError;
use crate::state::AppState;

/// The content type of the Prometheus text exposition format.
const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The metrics route.
pub fn routes() -> Router<AppState> {
    Router::new().route("/metrics", get(metrics))
}

async fn metrics(State(state): State<AppState>) -> Result<impl IntoResponse, FabricError> {
    let mut out = String::with_capacity(16 * 1024);
    state.service.metrics().render(&mut out);
    let keys = state
        .maintenance
        .key_stats()
        .await
        .map_err(|e| FabricError::Internal(e.to_string()))?;
    let now = state.service.clock().now();
    describe(
        &mut out,
        "tessera_key_age_seconds",
        "gauge",
        "Seconds since each key was created.",
    );
    for (k, _) in &keys {
        let _ = writeln!(
            out,
            "tessera_key_age_seconds{{kid=\"{}\",purpose=\"{}\",state=\"{}\"}} {}",
            k.kid,
            k.purpose.as_str(),
            k.state.as_str(),
            (now.0 - k.created_at.0).max(0)
        );
    }
    describe(
        &mut out,
        "tessera_key_encryptions",
        "gauge",
        "Tokens each key has sealed (all nodes' synced counts plus this node's unsynced ones).",
    );
    for (k, sealed) in &keys {
        let _ = writeln!(
            out,
            "tessera_key_encryptions{{kid=\"{}\",purpose=\"{}\",state=\"{}\"}} {sealed}",
            k.kid,
            k.purpose.as_str(),
            k.state.as_str(),
        );
    }
    Ok(([(header::CONTENT_TYPE, CONTENT_TYPE)], out))
}
