//! Counters and latency histograms: what Tessera counts, not how it is exposed (the server
//! renders them in the Prometheus text format at `GET /metrics`).
//!
//! Hand-rolled rather than a metrics crate: the set is small and fixed, and recording must cost
//! a few atomic adds on the token hot path. Families whose label values are known up front
//! (token kinds, refresh outcomes) are arrays of atomics; families keyed by a route or a store
//! operation take a read lock on a map that only grows while new keys are first seen.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

#[cfg(doc)]
use crate::token::PrincipalKind;

/// Upper bounds of the latency buckets, in seconds: 100 µs to 5 s.
pub const BUCKETS: [f64; 14] = [
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

    /// For each bound of [`BUCKETS`], how many observations were at most that long and longer
    /// than the bound before (not cumulative). Observations beyond the last bound are only in
    /// [`Histogram::count`].
    pub fn bucket_counts(&self) -> [(f64, u64); BUCKETS.len()] {
        std::array::from_fn(|i| (BUCKETS[i], self.buckets[i].load(Ordering::Relaxed)))
    }

    /// The sum of all observations, in seconds.
    pub fn sum_seconds(&self) -> f64 {
        self.sum_nanos.load(Ordering::Relaxed) as f64 / 1e9
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
    /// Every outcome, in a fixed order.
    pub const ALL: [RefreshResult; 4] = [
        RefreshResult::Rotated,
        RefreshResult::Grace,
        RefreshResult::ReuseDetected,
        RefreshResult::Rejected,
    ];

    fn index(self) -> usize {
        self as usize
    }
}

/// Who tokens are issued to: the four Fabric principal kinds ([`PrincipalKind::as_str`]),
/// then Accounts operators ([`OPERATOR`]).
pub const KINDS: [&str; 5] = ["subscriber", "guest", "invite", "embed", "operator"];

/// The principal kind of Accounts API tokens, for [`Metrics::token_issued`].
pub const OPERATOR: &str = "operator";

fn kind_index(kind: &str) -> usize {
    KINDS.iter().position(|k| *k == kind).unwrap_or(0)
}

/// Everything Tessera counts. One per process, shared by the service, the store and the HTTP
/// layer, which reads it back to expose it.
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

    /// Token pairs issued to principals of `kind` (one of [`KINDS`]).
    pub fn tokens_issued(&self, kind: &str) -> u64 {
        self.issued[kind_index(kind)].load(Ordering::Relaxed)
    }

    /// Refresh attempts that ended as `result`.
    pub fn refreshes(&self, result: RefreshResult) -> u64 {
        self.refreshes[result.index()].load(Ordering::Relaxed)
    }

    /// Introspections that found the token active (`true`) or not.
    pub fn introspections(&self, active: bool) -> u64 {
        self.introspections[usize::from(active)].load(Ordering::Relaxed)
    }

    /// Operator login attempts that succeeded (`true`) or failed.
    pub fn logins(&self, success: bool) -> u64 {
        self.logins[usize::from(success)].load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::token::PrincipalKind;

    #[test]
    fn histograms_count_per_bucket_and_every_counter_reads_back() {
        let m = Metrics::default();
        let key = ("/healthz".to_string(), "GET", 200);
        m.http.observe(&key, Duration::from_micros(50));
        m.http.observe(&key, Duration::from_millis(3));
        m.http.observe(&key, Duration::from_secs(9));
        let (_, h) = &m.http.snapshot()[0];
        assert_eq!(h.count(), 3);
        let buckets = h.bucket_counts();
        assert_eq!(buckets[0], (0.0001, 1));
        assert_eq!(buckets[5], (0.005, 1));
        assert_eq!(buckets.iter().map(|(_, n)| n).sum::<u64>(), 2);
        assert!((h.sum_seconds() - 9.00305).abs() < 1e-9);
        m.token_issued(PrincipalKind::Guest.as_str());
        m.token_issued(OPERATOR);
        m.refresh(RefreshResult::ReuseDetected);
        m.introspection(false);
        m.login(true);
        assert_eq!(m.tokens_issued("guest"), 1);
        assert_eq!(m.tokens_issued(OPERATOR), 1);
        assert_eq!(m.tokens_issued("subscriber"), 0);
        assert_eq!(m.refreshes(RefreshResult::ReuseDetected), 1);
        assert_eq!(m.refreshes(RefreshResult::Rotated), 0);
        assert_eq!((m.introspections(false), m.introspections(true)), (1, 0));
        assert_eq!((m.logins(false), m.logins(true)), (0, 1));
    }
}
