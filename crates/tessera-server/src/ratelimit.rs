//! A per-client-address token bucket for public endpoints (the embed exchange).
//!
//! State lives in memory: a limit that a restart resets is acceptable for abuse damping, and
//! it keeps the public endpoint free of writes. The map is pruned of full buckets as it grows.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use tessera_core::Clock;

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at_ms: i64,
}

/// A rate limiter keyed by client address.
#[derive(Debug)]
pub struct RateLimiter {
    per_minute: f64,
    burst: f64,
    clock: Arc<dyn Clock>,
    buckets: Mutex<HashMap<IpAddr, Bucket>>,
}

impl RateLimiter {
    /// `per_minute` sustained, with a burst of the same size.
    pub fn new(per_minute: u32, clock: Arc<dyn Clock>) -> Self {
        RateLimiter {
            per_minute: per_minute.max(1) as f64,
            burst: per_minute.max(1) as f64,
            clock,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Forgets addresses whose buckets have refilled completely: they carry no state worth
    /// keeping, so the map shrinks back after a burst of distinct clients.
    pub fn prune(&self) {
        let now = self.clock.now_millis();
        let rate_ms = self.per_minute / 60_000.0;
        let burst = self.burst;
        let mut map = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        map.retain(|_, b| b.tokens + (now - b.at_ms).max(0) as f64 * rate_ms < burst);
    }

    /// How many addresses are tracked (for tests and metrics).
    pub fn tracked(&self) -> usize {
        self.buckets.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// Takes one token for `ip`. `Err(seconds)` says how long until one is available.
    pub fn check(&self, ip: IpAddr) -> Result<(), u64> {
        let now = self.clock.now_millis();
        let rate_ms = self.per_minute / 60_000.0;
        let mut map = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        if map.len() > 100_000 {
            let burst = self.burst;
            map.retain(|_, b| b.tokens + (now - b.at_ms) as f64 * rate_ms < burst);
        }
        let b = map.entry(ip).or_insert(Bucket {
            tokens: self.burst,
            at_ms: now,
        });
        b.tokens = (b.tokens + (now - b.at_ms).max(0) as f64 * rate_ms).min(self.burst);
        b.at_ms = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            Ok(())
        } else {
            Err(((1.0 - b.tokens) / rate_ms / 1000.0).ceil() as u64)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tessera_core::{ManualClock, UnixTime};

    #[test]
    fn limits_per_address_and_refills_with_time() {
        let clock = ManualClock::new(UnixTime(1_000));
        let rl = RateLimiter::new(3, Arc::new(clock.clone()));
        let a: IpAddr = "127.0.0.1".parse().unwrap();
        let b: IpAddr = "127.0.0.2".parse().unwrap();
        for _ in 0..3 {
            assert!(rl.check(a).is_ok());
        }
        assert_eq!(rl.check(a), Err(20));
        assert!(rl.check(b).is_ok(), "another address has its own bucket");
        clock.advance(20);
        assert!(rl.check(a).is_ok());
    }
}
