//! `GET /metrics`: every counter and histogram of [`tessera_core::metrics::Metrics`], plus key
//! ages and encryption counts read at scrape time, in the Prometheus text format (0.0.4).
//!
//! Core counts; this module owns the wire format: the metric names, help texts and label sets
//! (dashboards depend on them, so they do not change). The text is written by
//! `prometheus-client`'s encoder from typed label sets; the counters themselves stay core's
//! atomics, read at scrape time through a [`Collector`], because recording into
//! `prometheus-client`'s own histograms takes a mutex per observation, and the HTTP and store
//! histograms are observed on every request.

use std::sync::Arc;

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::prometheus_text::{self, CONTENT_TYPE};
use prometheus_client::encoding::{
    DescriptorEncoder, EncodeLabelSet, EncodeLabelValue, EncodeMetric, NoLabelSet,
};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;
use tessera_core::metrics::{Histogram, Metrics, RefreshResult, BUCKETS, KINDS};
use tessera_core::model::StoredKey;
use tessera_core::UnixTime;

use crate::error::FabricError;
use crate::state::AppState;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// The metrics route.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(metrics))
}

/// Prometheus metrics
///
/// Requests by route and status with latency histograms, tokens issued by kind, refreshes by
/// result, reuse detections, introspections by result, operator logins, store operation
/// latency, and each key's age and encryption count, in the Prometheus text format 0.0.4.
/// Unauthenticated, like `/healthz`: expose it only where your scraper can reach it.
#[utoipa::path(get, path = "/metrics", tag = "Service", operation_id = "metrics",
    responses((status = 200, description = "The metrics.", body = String,
               content_type = "text/plain; version=0.0.4")))]
async fn metrics(State(state): State<AppState>) -> Result<impl IntoResponse, FabricError> {
    // A store that cannot answer is 503, like every other endpoint's (error.rs).
    let keys = state.maintenance.key_stats().await?;
    let scrape = Scrape {
        metrics: state.service.metrics().clone(),
        keys,
        now: state.service.clock().now(),
    };
    Ok((
        [(header::CONTENT_TYPE, CONTENT_TYPE)],
        render(scrape).map_err(|e| FabricError::Internal(e.to_string()))?,
    ))
}

/// What one scrape reports: core's counters, and the keys with their seal counts as read for
/// it.
struct Scrape {
    metrics: Arc<Metrics>,
    keys: Vec<(StoredKey, u64)>,
    now: UnixTime,
}

impl std::fmt::Debug for Scrape {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Not the keys: their wrapped material has no business in a log.
        f.debug_struct("Scrape").field("now", &self.now).finish()
    }
}

/// The scrape in the Prometheus text exposition format (version 0.0.4).
fn render(scrape: Scrape) -> Result<String, std::fmt::Error> {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(scrape));
    let mut out = String::with_capacity(16 * 1024);
    prometheus_text::encode(&mut out, &registry)?;
    Ok(out)
}

/// `tessera_http_requests_total` and `tessera_http_request_duration_seconds`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct HttpLabels {
    /// The route template, never the path (ids would make a series per record).
    route: String,
    method: &'static str,
    status: u16,
}

/// `tessera_tokens_issued_total`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct KindLabels {
    kind: &'static str,
}

/// `tessera_refreshes_total`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct RefreshLabels {
    result: RefreshLabel,
}

/// How a refresh ended, as its label value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, EncodeLabelValue)]
#[allow(non_camel_case_types)] // The variants are the label values.
enum RefreshLabel {
    rotated,
    grace,
    reuse_detected,
    rejected,
}

impl From<RefreshResult> for RefreshLabel {
    fn from(r: RefreshResult) -> Self {
        match r {
            RefreshResult::Rotated => RefreshLabel::rotated,
            RefreshResult::Grace => RefreshLabel::grace,
            RefreshResult::ReuseDetected => RefreshLabel::reuse_detected,
            RefreshResult::Rejected => RefreshLabel::rejected,
        }
    }
}

/// `tessera_introspections_total` and `tessera_operator_logins_total`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ResultLabels {
    result: &'static str,
}

/// `tessera_store_operation_duration_seconds`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct StoreLabels {
    op: &'static str,
}

/// `tessera_key_age_seconds` and `tessera_key_encryptions`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct KeyLabels {
    kid: String,
    purpose: &'static str,
    state: &'static str,
}

impl Collector for Scrape {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let m = &self.metrics;
        // Counters are named without `_total`: the encoder appends it.
        let http = m.http.snapshot();
        let http: Vec<(HttpLabels, &Histogram)> = http
            .iter()
            .map(|((route, method, status), h)| {
                let labels = HttpLabels {
                    route: route.clone(),
                    method,
                    status: *status,
                };
                (labels, &**h)
            })
            .collect();
        let mut family = encoder.encode_descriptor(
            "tessera_http_requests",
            "HTTP requests by route, method and status.",
            None,
            MetricType::Counter,
        )?;
        for (labels, h) in &http {
            ConstCounter::new(h.count()).encode(family.encode_family(labels)?)?;
        }
        let mut family = encoder.encode_descriptor(
            "tessera_http_request_duration_seconds",
            "HTTP request latency by route, method and status.",
            None,
            MetricType::Histogram,
        )?;
        for (labels, h) in &http {
            histogram(&mut family.encode_family(labels)?, h)?;
        }
        let mut family = encoder.encode_descriptor(
            "tessera_tokens_issued",
            "Token pairs issued, by principal kind.",
            None,
            MetricType::Counter,
        )?;
        for kind in KINDS {
            ConstCounter::new(m.tokens_issued(kind))
                .encode(family.encode_family(&KindLabels { kind })?)?;
        }
        let mut family = encoder.encode_descriptor(
            "tessera_refreshes",
            "Refresh attempts by result.",
            None,
            MetricType::Counter,
        )?;
        for r in RefreshResult::ALL {
            let labels = RefreshLabels { result: r.into() };
            ConstCounter::new(m.refreshes(r)).encode(family.encode_family(&labels)?)?;
        }
        ConstCounter::new(m.refreshes(RefreshResult::ReuseDetected)).encode(
            encoder.encode_descriptor(
                "tessera_refresh_reuse_detections",
                "Spent refresh tokens replayed outside the grace window (each revoked a family).",
                None,
                MetricType::Counter,
            )?,
        )?;
        let mut family = encoder.encode_descriptor(
            "tessera_introspections",
            "Introspections by result.",
            None,
            MetricType::Counter,
        )?;
        for (result, active) in [("inactive", false), ("active", true)] {
            ConstCounter::new(m.introspections(active))
                .encode(family.encode_family(&ResultLabels { result })?)?;
        }
        let mut family = encoder.encode_descriptor(
            "tessera_operator_logins",
            "Accounts API logins by result.",
            None,
            MetricType::Counter,
        )?;
        for (result, success) in [("failure", false), ("success", true)] {
            ConstCounter::new(m.logins(success))
                .encode(family.encode_family(&ResultLabels { result })?)?;
        }
        let mut family = encoder.encode_descriptor(
            "tessera_store_operation_duration_seconds",
            "Store operation latency, including queueing for the writer.",
            None,
            MetricType::Histogram,
        )?;
        for (op, h) in m.store.snapshot() {
            histogram(&mut family.encode_family(&StoreLabels { op })?, &h)?;
        }
        let keys: Vec<(KeyLabels, &StoredKey, u64)> = self
            .keys
            .iter()
            .map(|(k, sealed)| {
                let labels = KeyLabels {
                    kid: k.kid.clone(),
                    purpose: k.purpose.as_str(),
                    state: k.state.as_str(),
                };
                (labels, k, *sealed)
            })
            .collect();
        let mut family = encoder.encode_descriptor(
            "tessera_key_age_seconds",
            "Seconds since each key was created.",
            None,
            MetricType::Gauge,
        )?;
        for (labels, k, _) in &keys {
            ConstGauge::new((self.now.0 - k.created_at.0).max(0))
                .encode(family.encode_family(labels)?)?;
        }
        let mut family = encoder.encode_descriptor(
            "tessera_key_encryptions",
            "Tokens each key has sealed (all nodes' synced counts plus this node's unsynced ones).",
            None,
            MetricType::Gauge,
        )?;
        for (labels, _, sealed) in &keys {
            // A gauge of i64: a count beyond it is not a count this process can reach.
            let sealed = i64::try_from(*sealed).unwrap_or(i64::MAX);
            ConstGauge::new(sealed).encode(family.encode_family(labels)?)?;
        }
        Ok(())
    }
}

/// Writes one histogram: its buckets (the encoder accumulates them and adds `+Inf`), sum and
/// count.
fn histogram(
    metric: &mut prometheus_client::encoding::MetricEncoder<'_>,
    h: &Histogram,
) -> Result<(), std::fmt::Error> {
    let mut buckets: Vec<(f64, u64)> = Vec::with_capacity(BUCKETS.len() + 1);
    buckets.extend(h.bucket_counts());
    // Read after the buckets: an observation counts its bucket first, so the count is never
    // behind them.
    let count = h.count();
    let bounded: u64 = buckets.iter().map(|(_, n)| n).sum();
    buckets.push((f64::INFINITY, count.saturating_sub(bounded)));
    metric.encode_histogram::<NoLabelSet>(h.sum_seconds(), count, &buckets, None)
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
        let out = render(Scrape {
            metrics: Arc::new(m),
            keys: Vec::new(),
            now: UnixTime(0),
        })
        .unwrap();
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
        // Every family is described once, with the help text as it was.
        assert!(out.contains(
            "# HELP tessera_refreshes_total Refresh attempts by result.\n\
             # TYPE tessera_refreshes_total counter\n"
        ));
        assert_eq!(out.matches("# TYPE ").count(), 10, "{out}");
    }

    #[test]
    fn label_values_are_escaped_and_keys_are_reported() {
        let m = Metrics::default();
        m.http.observe(
            &("/a\"b\\c\nd".to_string(), "GET", 404),
            Duration::from_millis(1),
        );
        let key = StoredKey {
            kid: "a-1".into(),
            purpose: tessera_core::keyring::KeyPurpose::Access,
            state: tessera_core::keyring::KeyState::Active,
            wrapped: Vec::new(),
            created_at: UnixTime(100),
            activated_at: None,
            retired_at: None,
            sealed: 0,
        };
        let out = render(Scrape {
            metrics: Arc::new(m),
            keys: vec![(key, 7)],
            now: UnixTime(160),
        })
        .unwrap();
        assert!(
            out.contains(
                "tessera_http_requests_total{route=\"/a\\\"b\\\\c\\nd\",method=\"GET\",status=\"404\"} 1\n"
            ),
            "{out}"
        );
        assert!(out.contains(
            "tessera_key_age_seconds{kid=\"a-1\",purpose=\"access\",state=\"active\"} 60\n"
        ));
        assert!(out.contains(
            "tessera_key_encryptions{kid=\"a-1\",purpose=\"access\",state=\"active\"} 7\n"
        ));
    }
}
