//! Counters and latency histograms, rendered in the Prometheus text format.
//!
//! Hand-rolled rather than a metrics crate: the set is small and fixed, and recording must cost
//! a few atomic adds on the token hot path. Families whose label values are known up front
//! (token kinds, refresh outcomes) are arrays of atomics; families keyed by a route or a store
//! operation take a read lock on a map that only grows while new keys are first seen.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::hash::Hash;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

#[cfg(doc)]
use crate::token::PrincipalKind;

/// Upper bounds of the latency buckets, in seconds: 100 µs to 5 s.
const BUCKETS: [f64; 14] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
];

/// Measures elapsed wall time for latency metrics.
#[derive(Debug, Clone, Copy)]
pub struct Stopwatch(Instant);

impl Stopwatch {
    /// Starts measuring.
    pub fn start() -> Self {
        // Latency measurement only: no decision depends on it, so the injected-clock rule
        // (which exists to make expiry testable) does not apply.
        #[allow(clippy::disallowed_methods)]
        Stopwatch(Instant::now())
    }

    /// Time since [`Stopwatch::start`].
    pub fn elapsed(&self) -> Duration {
        self.0.elapsed()
    }
}

/// A cumulative latency histogram.
#[derive(Debug, Default)]
pub struct Histogram {
    buckets: [AtomicU64; BUCKETS.len()],
    count: AtomicU64,
    sum_nanos: AtomicU64,
}

impl Histogram {
    /// Records one observation.
    pub fn observe(&self, d: Duration) {
        let secs = d.as_secs_f64();
        // Stored per bucket (not cumulatively) so one add suffices; summed when rendered.
        if let Some(i) = BUCKETS.iter().position(|b| secs <= *b) {
            self.buckets[i].fetch_add(1, Ordering::Relaxed);
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_nanos
            .fetch_add(d.as_nanos().min(u64::MAX as u128) as u64, Ordering::Relaxed);
    }

    /// How many observations were recorded.
    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    fn render(&self, out: &mut String, name: &str, labels: &str) {
        let sep = if labels.is_empty() { "" } else { "," };
        let mut cumulative = 0;
        for (i, bound) in BUCKETS.iter().enumerate() {
            cumulative += self.buckets[i].load(Ordering::Relaxed);
            let _ = writeln!(
                out,
                "{name}_bucket{{{labels}{sep}le=\"{bound}\"}} {cumulative}"
            );
        }
        let count = self.count();
        let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {count}");
        let sum = self.sum_nanos.load(Ordering::Relaxed) as f64 / 1e9;
        let _ = writeln!(out, "{name}_sum{{{labels}}} {sum}");
        let _ = writeln!(out, "{name}_count{{{labels}}} {count}");
    }
}

/// Histograms keyed by a label set that is discovered at run time.
#[derive(Debug)]
pub struct HistogramMap<K> {
    map: RwLock<HashMap<K, Arc<Histogram>>>,
}

impl<K> Default for HistogramMap<K> {
    fn default() -> Self {
        HistogramMap {
            map: RwLock::new(HashMap::new()),
        }
    }
}

impl<K: Hash + Eq + Clone + Ord> HistogramMap<K> {
    /// Records `d` under `key`.
    pub fn observe(&self, key: &K, d: Duration) {
        let found = self
            .map
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(key)
            .cloned();
        let h = match found {
            Some(h) => h,
            None => self
                .map
                .write()
                .unwrap_or_else(|e| e.into_inner())
                .entry(key.clone())
                .or_default()
                .clone(),
        };
        h.observe(d);
    }

    /// A snapshot of every key and histogram, sorted by key for stable output.
    pub fn snapshot(&self) -> Vec<(K, Arc<Histogram>)> {
        let mut all: Vec<_> = self
            .map
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|(k, h)| (k.clone(), h.clone()))
            .collect();
        all.sort_by(|a, b| a.0.cmp(&b.0));
        all
    }
}

/// How a refresh ended, for `tessera_refreshes_total{result}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefreshResult {
    /// A new pair was issued.
    Rotated,
    /// A spent token inside the grace window got the current generation.
    Grace,
    /// A spent token outside the window: the family was revoked.
    ReuseDetected,
    /// Expired, revoked, unknown or malformed.
    Rejected,
}

impl RefreshResult {
    const ALL: [RefreshResult; 4] = [
        RefreshResult::Rotated,
        RefreshResult::Grace,
        RefreshResult::ReuseDetected,
        RefreshResult::Rejected,
    ];

    fn index(self) -> usize {
        self as usize
    }

    fn as_str(self) -> &'static str {
        match self {
            RefreshResult::Rotated => "rotated",
            RefreshResult::Grace => "grace",
            RefreshResult::ReuseDetected => "reuse_detected",
            RefreshResult::Rejected => "rejected",
        }
    }
}

/// Who tokens are issued to: the four Fabric principal kinds, then Accounts operators.
const KINDS: [&str; 5] = ["subscriber", "guest", "invite", "embed", "operator"];

/// The principal kind of Accounts API tokens, for [`Metrics::token_issued`].
pub const OPERATOR: &str = "operator";

fn kind_index(kind: &str) -> usize {
    KINDS.iter().position(|k| *k == kind).unwrap_or(0)
}

/// Everything Tessera counts. One per process, shared by the service, the store and the HTTP
/// layer; [`Metrics::render`] writes the whole set.
#[derive(Debug, Default)]
pub struct Metrics {
    /// HTTP requests by (route, method, status).
    pub http: HistogramMap<(String, &'static str, u16)>,
    /// Store operation latency by operation name.
    pub store: HistogramMap<&'static str>,
    issued: [AtomicU64; KINDS.len()],
    refreshes: [AtomicU64; RefreshResult::ALL.len()],
    introspections: [AtomicU64; 2],
    logins: [AtomicU64; 2],
}

impl Metrics {
    /// Counts a token pair issued to a principal of `kind` ([`PrincipalKind::as_str`] or
    /// [`OPERATOR`]).
    pub fn token_issued(&self, kind: &str) {
        self.issued[kind_index(kind)].fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a refresh attempt by outcome.
    pub fn refresh(&self, result: RefreshResult) {
        self.refreshes[result.index()].fetch_add(1, Ordering::Relaxed);
    }

    /// Counts an introspection by whether the token was active.
    pub fn introspection(&self, active: bool) {
        self.introspections[usize::from(active)].fetch_add(1, Ordering::Relaxed);
    }

    /// Counts an operator login attempt by outcome.
    pub fn login(&self, success: bool) {
        self.logins[usize::from(success)].fetch_add(1, Ordering::Relaxed);
    }

    /// Writes every metric in the Prometheus text exposition format (version 0.0.4).
    pub fn render(&self, out: &mut String) {
        describe(
            out,
            "tessera_http_requests_total",
            "counter",
            "HTTP requests by route, method and status.",
        );
        let http = self.http.snapshot();
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
            h.render(out, "tessera_http_request_duration_seconds", &labels);
        }
        describe(
            out,
            "tessera_tokens_issued_total",
            "counter",
            "Token pairs issued, by principal kind.",
        );
        for (i, kind) in KINDS.iter().enumerate() {
            let n = self.issued[i].load(Ordering::Relaxed);
            let _ = writeln!(out, "tessera_tokens_issued_total{{kind=\"{}\"}} {n}", kind);
        }
        describe(
            out,
            "tessera_refreshes_total",
            "counter",
            "Refresh attempts by result.",
        );
        for (i, r) in RefreshResult::ALL.iter().enumerate() {
            let n = self.refreshes[i].load(Ordering::Relaxed);
            let _ = writeln!(
                out,
                "tessera_refreshes_total{{result=\"{}\"}} {n}",
                r.as_str()
            );
        }
        describe(
            out,
            "tessera_refresh_reuse_detections_total",
            "counter",
            "Spent refresh tokens replayed outside the grace window (each revoked a family).",
        );
        let reuse = self.refreshes[RefreshResult::ReuseDetected.index()].load(Ordering::Relaxed);
        let _ = writeln!(out, "tessera_refresh_reuse_detections_total {reuse}");
        describe(
            out,
            "tessera_introspections_total",
            "counter",
            "Introspections by result.",
        );
        for (i, result) in ["inactive", "active"].iter().enumerate() {
            let n = self.introspections[i].load(Ordering::Relaxed);
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
        for (i, result) in ["failure", "success"].iter().enumerate() {
            let n = self.logins[i].load(Ordering::Relaxed);
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
        for (op, h) in self.store.snapshot() {
            h.render(
                out,
                "tessera_store_operation_duration_seconds",
                &format!("op=\"{op}\""),
            );
        }
    }
}

/// Writes the `# HELP` and `# TYPE` lines of a metric family.
pub fn describe(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// Escapes a label value (backslash, quote, newline).
pub fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::token::PrincipalKind;

    #[test]
    fn histogram_is_cumulative_and_renders_every_bucket() {
        let m = Metrics::default();
        let key = ("/healthz".to_string(), "GET", 200);
        m.http.observe(&key, Duration::from_micros(50));
        m.http.observe(&key, Duration::from_millis(3));
        m.http.observe(&key, Duration::from_secs(9));
        m.token_issued(PrincipalKind::Guest.as_str());
        m.refresh(RefreshResult::ReuseDetected);
        let mut out = String::new();
        m.render(&mut out);
        assert!(out.contains(
            "tessera_http_requests_total{route=\"/healthz\",method=\"GET\",status=\"200\"} 3"
        ));
        assert!(out.contains("le=\"0.0001\"} 1\n"), "{out}");
        assert!(out.contains("le=\"0.005\"} 2\n"), "{out}");
        assert!(out.contains("le=\"5\"} 2\n"), "{out}");
        assert!(out.contains("le=\"+Inf\"} 3\n"), "{out}");
        assert!(out.contains("tessera_tokens_issued_total{kind=\"guest\"} 1"));
        assert!(out.contains("tessera_refreshes_total{result=\"reuse_detected\"} 1"));
        assert!(out.contains("tessera_refresh_reuse_detections_total 1"));
        assert_eq!(escape("a\"b\\c\n"), "a\\\"b\\\\c\\n");
    }
}
