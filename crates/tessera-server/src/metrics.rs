//! `GET /metrics`: every counter and histogram of [`tessera_core::metrics::Metrics`], plus key
//! ages and encryption counts read at scrape time, in the Prometheus text format.
//!
//! Core counts; this module owns the wire format: the metric names, help texts and label
//! values (dashboards depend on them, so they do not change).

use std::fmt::Write as _;

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use tessera_core::metrics::{Histogram, Metrics, RefreshResult, KINDS};

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
    render(state.service.metrics(), &mut out);
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

/// The label value of a refresh outcome in `tessera_refreshes_total{result}`.
fn refresh_label(result: RefreshResult) -> &'static str {
    match result {
        RefreshResult::Rotated => "rotated",
        RefreshResult::Grace => "grace",
        RefreshResult::ReuseDetected => "reuse_detected",
        RefreshResult::Rejected => "rejected",
    }
}

/// Writes every metric of `m` in the Prometheus text exposition format (version 0.0.4).
fn render(m: &Metrics, out: &mut String) {
    describe(
        out,
        "tessera_http_requests_total",
        "counter",
        "HTTP requests by route, method and status.",
    );
    let http = m.http.snapshot();
    for ((route, method, status), h) in &http {
        let _ = writeln!(
            out,
            "tessera_http_requests_total{{route=\"{}\",method=\"{method}\",status=\"{status}\"}} {}",
            escape(route),
            h.count()
        );
    }
    describe(
        out,
        "tessera_http_request_duration_seconds",
        "histogram",
        "HTTP request latency by route, method and status.",
    );
    for ((route, method, status), h) in &http {
        let labels = format!(
            "route=\"{}\",method=\"{method}\",status=\"{status}\"",
            escape(route)
        );
        histogram(out, "tessera_http_request_duration_seconds", &labels, h);
    }
    describe(
        out,
        "tessera_tokens_issued_total",
        "counter",
        "Token pairs issued, by principal kind.",
    );
    for kind in KINDS {
        let n = m.tokens_issued(kind);
        let _ = writeln!(out, "tessera_tokens_issued_total{{kind=\"{kind}\"}} {n}");
    }
    describe(
        out,
        "tessera_refreshes_total",
        "counter",
        "Refresh attempts by result.",
    );
    for r in RefreshResult::ALL {
        let _ = writeln!(
            out,
            "tessera_refreshes_total{{result=\"{}\"}} {}",
            refresh_label(r),
            m.refreshes(r)
        );
    }
    describe(
        out,
        "tessera_refresh_reuse_detections_total",
        "counter",
        "Spent refresh tokens replayed outside the grace window (each revoked a family).",
    );
    let reuse = m.refreshes(RefreshResult::ReuseDetected);
    let _ = writeln!(out, "tessera_refresh_reuse_detections_total {reuse}");
    describe(
        out,
        "tessera_introspections_total",
        "counter",
        "Introspections by result.",
    );
    for (result, active) in [("inactive", false), ("active", true)] {
        let n = m.introspections(active);
        let _ = writeln!(
            out,
            "tessera_introspections_total{{result=\"{result}\"}} {n}"
        );
    }
    describe(
        out,
        "tessera_operator_logins_total",
        "counter",
        "Accounts API logins by result.",
    );
    for (result, success) in [("failure", false), ("success", true)] {
        let n = m.logins(success);
        let _ = writeln!(
            out,
            "tessera_operator_logins_total{{result=\"{result}\"}} {n}"
        );
    }
    describe(
        out,
        "tessera_store_operation_duration_seconds",
        "histogram",
        "Store operation latency, including queueing for the writer.",
    );
    for (op, h) in m.store.snapshot() {
        histogram(
            out,
            "tessera_store_operation_duration_seconds",
            &format!("op=\"{op}\""),
            &h,
        );
    }
}

/// Writes one histogram's series: a cumulative bucket per bound and `+Inf`, the sum and the
/// count.
fn histogram(out: &mut String, name: &str, labels: &str, h: &Histogram) {
    let sep = if labels.is_empty() { "" } else { "," };
    for (bound, cumulative) in h.cumulative_buckets() {
        let _ = writeln!(
            out,
            "{name}_bucket{{{labels}{sep}le=\"{bound}\"}} {cumulative}"
        );
    }
    let count = h.count();
    let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {count}");
    let _ = writeln!(out, "{name}_sum{{{labels}}} {}", h.sum_seconds());
    let _ = writeln!(out, "{name}_count{{{labels}}} {count}");
}

/// Writes the `# HELP` and `# TYPE` lines of a metric family.
fn describe(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// Escapes a label value (backslash, quote, newline).
fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tessera_core::metrics::OPERATOR;
    use tessera_core::token::PrincipalKind;

    use super::*;

    #[test]
    fn every_family_is_rendered_with_its_names_and_labels() {
        let m = Metrics::default();
        let key = ("/healthz".to_string(), "GET", 200);
        m.http.observe(&key, Duration::from_micros(50));
        m.http.observe(&key, Duration::from_millis(3));
        m.http.observe(&key, Duration::from_secs(9));
        m.store.observe(&"grant_guest", Duration::from_millis(1));
        m.token_issued(PrincipalKind::Guest.as_str());
        m.token_issued(OPERATOR);
        m.refresh(RefreshResult::ReuseDetected);
        m.introspection(true);
        m.login(false);
        let mut out = String::new();
        render(&m, &mut out);
        for line in [
            "# TYPE tessera_http_requests_total counter\n",
            "tessera_http_requests_total{route=\"/healthz\",method=\"GET\",status=\"200\"} 3\n",
            "# TYPE tessera_http_request_duration_seconds histogram\n",
            "tessera_http_request_duration_seconds_bucket{route=\"/healthz\",method=\"GET\",status=\"200\",le=\"0.0001\"} 1\n",
            "le=\"0.005\"} 2\n",
            "le=\"5\"} 2\n",
            "le=\"+Inf\"} 3\n",
            "tessera_http_request_duration_seconds_sum{route=\"/healthz\",method=\"GET\",status=\"200\"} 9.00305\n",
            "tessera_http_request_duration_seconds_count{route=\"/healthz\",method=\"GET\",status=\"200\"} 3\n",
            "tessera_tokens_issued_total{kind=\"guest\"} 1\n",
            "tessera_tokens_issued_total{kind=\"operator\"} 1\n",
            "tessera_tokens_issued_total{kind=\"subscriber\"} 0\n",
            "tessera_refreshes_total{result=\"reuse_detected\"} 1\n",
            "tessera_refreshes_total{result=\"grace\"} 0\n",
            "tessera_refresh_reuse_detections_total 1\n",
            "tessera_introspections_total{result=\"active\"} 1\n",
            "tessera_introspections_total{result=\"inactive\"} 0\n",
            "tessera_operator_logins_total{result=\"failure\"} 1\n",
            "tessera_store_operation_duration_seconds_count{op=\"grant_guest\"} 1\n",
        ] {
            assert!(out.contains(line), "missing {line:?} in\n{out}");
        }
        assert_eq!(escape("a\"b\\c\n"), "a\\\"b\\\\c\\n");
    }
}
