//! A per-client token bucket for public endpoints (the embed exchange).
//!
//! State lives in memory: a limit that a restart resets is acceptable for abuse damping, and
//! it keeps the public endpoint free of writes.
//!
//! Three properties matter on a public endpoint, and each shapes the design:
//!
//! - **No global lock on the hot path.** The buckets are split over [`SHARDS`] maps, each
//!   behind its own mutex, and a client's shard is chosen by a keyed hash (std's
//!   `RandomState`, so a caller cannot aim its addresses at one shard). A check locks one shard
//!   for one hash-map lookup; a std mutex suits that, since nothing awaits while holding it.
//! - **A check costs the same however many clients are tracked.** It never sweeps: idle
//!   buckets are dropped by [`RateLimiter::prune`], which the server's upkeep loop calls every
//!   few seconds, one shard at a time. Memory is bounded by a cap on tracked clients
//!   ([`MAX_TRACKED`]); a client that arrives while its shard is full is not tracked but draws
//!   from that shard's one *overflow* bucket until pruning makes room. So filling the table
//!   never evicts, and never resets, anyone's bucket, and a flood of fresh addresses is
//!   limited as one client rather than let through.
//! - **A client is what an attacker cannot multiply cheaply.** An IPv4 address is one client;
//!   an IPv6 client is its /64 (the smallest prefix a site is routinely given, so one host or
//!   LAN can hold 2^64 addresses), and an IPv4-mapped IPv6 address (`::ffff:a.b.c.d`, which a
//!   dual-stack listener reports for IPv4 peers) is the IPv4 address it carries.

use std::collections::hash_map::Entry;
use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use tessera_core::Clock;

/// How many independently locked maps the buckets are spread over. A power of two well above
/// the number of worker threads keeps two concurrent checks from meeting on one lock.
pub const SHARDS: usize = 16;

/// How many clients are tracked at most, over all shards (each holds a sixteenth). A full
/// table takes about 17 MiB (hash-map slots of 33 bytes, up to half of them spare); filling
/// it needs that many distinct IPv4 addresses or IPv6 /64s within one refill period (a
/// minute at most), since a bucket that has refilled is pruned.
pub const MAX_TRACKED: usize = 1 << 18;

/// The unit a limit applies to: an IPv4 address or an IPv6 /64.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum ClientKey {
    V4(u32),
    /// The upper 64 bits of the address: its /64 prefix.
    V6(u64),
}

impl ClientKey {
    fn of(ip: IpAddr) -> Self {
        match crate::proxies::canonical(ip) {
            IpAddr::V4(v4) => ClientKey::V4(v4.to_bits()),
            IpAddr::V6(v6) => ClientKey::V6((v6.to_bits() >> 64) as u64),
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at_ms: i64,
}

/// One lock's worth of clients, and the bucket shared by those it had no room for.
#[derive(Debug)]
struct Shard {
    buckets: HashMap<ClientKey, Bucket>,
    overflow: Bucket,
}

/// A rate limiter keyed by client (IPv4 address or IPv6 /64).
#[derive(Debug)]
pub struct RateLimiter {
    per_minute: f64,
    burst: f64,
    clock: Arc<dyn Clock>,
    /// Picks a client's shard. Separate from the maps' own hashers, which would otherwise see
    /// only keys that agree in the bits used here and cluster.
    shard_of: RandomState,
    per_shard: usize,
    shards: Box<[Mutex<Shard>]>,
}

impl RateLimiter {
    /// `per_minute` sustained, with a burst of the same size, for at most [`MAX_TRACKED`]
    /// clients.
    pub fn new(per_minute: u32, clock: Arc<dyn Clock>) -> Self {
        Self::with_capacity(per_minute, MAX_TRACKED, clock)
    }

    /// As [`RateLimiter::new`], tracking at most `max_tracked` clients (rounded up to a
    /// multiple of [`SHARDS`]).
    pub fn with_capacity(per_minute: u32, max_tracked: usize, clock: Arc<dyn Clock>) -> Self {
        let burst = per_minute.max(1) as f64;
        let now = clock.now_millis();
        let shards = (0..SHARDS)
            .map(|_| {
                Mutex::new(Shard {
                    buckets: HashMap::new(),
                    overflow: Bucket {
                        tokens: burst,
                        at_ms: now,
                    },
                })
            })
            .collect();
        RateLimiter {
            per_minute: burst,
            burst,
            clock,
            shard_of: RandomState::new(),
            per_shard: max_tracked.div_ceil(SHARDS).max(1),
            shards,
        }
    }

    /// Tokens gained per millisecond.
    fn rate_ms(&self) -> f64 {
        self.per_minute / 60_000.0
    }

    /// A poisoned shard is still consistent (a bucket is two plain fields written together),
    /// so a panic elsewhere must not turn the endpoint into a permanent 500.
    fn lock(shard: &Mutex<Shard>) -> MutexGuard<'_, Shard> {
        shard.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn shard_index(&self, key: ClientKey) -> usize {
        (self.shard_of.hash_one(key) % SHARDS as u64) as usize
    }

    /// Forgets clients whose buckets have refilled completely: they carry no state worth
    /// keeping (a new bucket starts full), so the map shrinks back after a burst of distinct
    /// clients. Locks one shard at a time, so checks on the others go on meanwhile, and the
    /// work under each lock is bounded by the shard's cap.
    pub fn prune(&self) {
        let now = self.clock.now_millis();
        for shard in self.shards.iter() {
            Self::lock(shard)
                .buckets
                .retain(|_, b| !self.is_full(b, now));
        }
    }

    fn is_full(&self, b: &Bucket, now: i64) -> bool {
        b.tokens + (now - b.at_ms).max(0) as f64 * self.rate_ms() >= self.burst
    }

    /// How many clients are tracked (for tests and metrics).
    pub fn tracked(&self) -> usize {
        self.shards
            .iter()
            .map(|s| Self::lock(s).buckets.len())
            .sum()
    }

    /// Takes one token for the client at `ip`. `Err(seconds)` says how long until one is
    /// available. Locks only the client's shard, for one lookup (and at most one insert).
    pub fn check(&self, ip: IpAddr) -> Result<(), u64> {
        let key = ClientKey::of(ip);
        let now = self.clock.now_millis();
        let mut guard = Self::lock(&self.shards[self.shard_index(key)]);
        let shard = &mut *guard;
        let room = shard.buckets.len() < self.per_shard;
        let bucket = match shard.buckets.entry(key) {
            Entry::Occupied(e) => e.into_mut(),
            Entry::Vacant(e) if room => e.insert(Bucket {
                tokens: self.burst,
                at_ms: now,
            }),
            Entry::Vacant(_) => &mut shard.overflow,
        };
        self.take(bucket, now)
    }

    /// The token-bucket step: refill for the time since the bucket was last seen, then take one.
    fn take(&self, b: &mut Bucket, now: i64) -> Result<(), u64> {
        let rate_ms = self.rate_ms();
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
    use std::net::{Ipv4Addr, Ipv6Addr};
    use std::sync::mpsc;
    use std::time::Duration;

    use super::*;
    use tessera_core::{ManualClock, UnixTime};

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn limits_per_address_and_refills_with_time() {
        let clock = ManualClock::new(UnixTime(1_000));
        let rl = RateLimiter::new(3, Arc::new(clock.clone()));
        let a = ip("127.0.0.1");
        let b = ip("127.0.0.2");
        for _ in 0..3 {
            assert!(rl.check(a).is_ok());
        }
        assert_eq!(rl.check(a), Err(20));
        assert!(rl.check(b).is_ok(), "another address has its own bucket");
        clock.advance(20);
        assert!(rl.check(a).is_ok());
    }

    #[test]
    fn addresses_of_one_ipv6_64_share_a_bucket() {
        let clock = ManualClock::new(UnixTime(1_000));
        let rl = RateLimiter::new(2, Arc::new(clock.clone()));
        assert!(rl.check(ip("2001:db8:1:2::1")).is_ok());
        assert!(rl.check(ip("2001:db8:1:2:ffff:ffff:ffff:ffff")).is_ok());
        assert!(
            rl.check(ip("2001:db8:1:2:abcd::7")).is_err(),
            "a third address of the same /64 finds the bucket empty"
        );
        assert!(
            rl.check(ip("2001:db8:1:3::1")).is_ok(),
            "the neighbouring /64 is another client"
        );
        assert_eq!(rl.tracked(), 2);
    }

    #[test]
    fn ipv4_mapped_ipv6_is_the_ipv4_address() {
        let clock = ManualClock::new(UnixTime(1_000));
        let rl = RateLimiter::new(2, Arc::new(clock.clone()));
        let mapped = IpAddr::V6(Ipv4Addr::new(1, 2, 3, 4).to_ipv6_mapped());
        assert_eq!(mapped, ip("::ffff:1.2.3.4"));
        assert!(rl.check(mapped).is_ok());
        assert!(rl.check(ip("1.2.3.4")).is_ok());
        assert!(rl.check(mapped).is_err(), "one client under both spellings");
        // Every IPv4-mapped address lies in one /64 (::ffff:0:0/96 ⊂ ::/64): keyed as IPv6,
        // all IPv4 clients of a dual-stack listener would have shared a single bucket.
        assert!(rl.check(ip("::ffff:1.2.3.5")).is_ok());
        assert_eq!(
            ClientKey::of(ip("::ffff:1.2.3.4")),
            ClientKey::of(ip("1.2.3.4"))
        );
        assert_ne!(
            ClientKey::of(IpAddr::V6(Ipv6Addr::UNSPECIFIED)),
            ClientKey::of(IpAddr::V4(Ipv4Addr::UNSPECIFIED)),
        );
    }

    /// The old limiter swept the whole map inside `check` once it held more than 100,000
    /// addresses, dropping every idle entry on that request. A check must touch only its own
    /// client: with the table full of idle entries, a new client's check adds one entry and
    /// removes none.
    #[test]
    fn check_never_sweeps_the_table() {
        let clock = ManualClock::new(UnixTime(1_000));
        let rl = RateLimiter::new(60, Arc::new(clock.clone()));
        let many = 100_001u32;
        for i in 0..many {
            rl.check(IpAddr::V4(Ipv4Addr::from_bits(0x0a00_0000 + i)))
                .unwrap();
        }
        assert_eq!(rl.tracked(), many as usize);
        clock.advance(120);
        rl.check(ip("192.0.2.1")).unwrap();
        assert_eq!(rl.tracked(), many as usize + 1, "check removed entries");
        rl.prune();
        assert_eq!(rl.tracked(), 1, "prune is where idle entries go");
    }

    /// A check locks its own shard and no other: with every other shard held by this thread,
    /// a check from another thread still completes (under one global lock it would wait).
    #[test]
    fn check_locks_only_its_own_shard() {
        let clock = ManualClock::new(UnixTime(1_000));
        let rl = Arc::new(RateLimiter::new(60, Arc::new(clock)));
        let client = ip("198.51.100.7");
        let mine = rl.shard_index(ClientKey::of(client));
        let held: Vec<_> = (0..SHARDS)
            .filter(|&i| i != mine)
            .map(|i| RateLimiter::lock(&rl.shards[i]))
            .collect();
        let (tx, rx) = mpsc::channel();
        let worker = {
            let rl = Arc::clone(&rl);
            std::thread::spawn(move || tx.send(rl.check(client)).unwrap())
        };
        let answer = rx.recv_timeout(Duration::from_secs(10));
        drop(held);
        worker.join().unwrap();
        assert_eq!(answer, Ok(Ok(())), "check waited on another shard's lock");
    }

    #[test]
    fn prune_removes_idle_entries_and_keeps_active_ones() {
        let clock = ManualClock::new(UnixTime(1_000));
        let rl = RateLimiter::new(60, Arc::new(clock.clone()));
        let (idle, busy) = (ip("192.0.2.1"), ip("192.0.2.2"));
        rl.check(idle).unwrap();
        clock.advance(30);
        for _ in 0..30 {
            rl.check(busy).unwrap();
        }
        clock.advance(30);
        // `idle` has been refilling for 60 s (full); `busy` spent 30 tokens 30 s ago and has
        // regained 30 of them, one short of full.
        rl.check(busy).unwrap();
        rl.prune();
        assert_eq!(rl.tracked(), 1);
        // The survivor kept its state: 59 of 60 tokens left, not a fresh bucket of 60.
        for _ in 0..59 {
            rl.check(busy).unwrap();
        }
        assert!(rl.check(busy).is_err());
    }

    /// At the cap, newcomers share an overflow bucket; tracked clients keep their buckets,
    /// so a flood of fresh addresses can neither reset anyone's limit nor pass unlimited.
    #[test]
    fn at_the_cap_newcomers_share_an_overflow_bucket() {
        let clock = ManualClock::new(UnixTime(1_000));
        let rl = RateLimiter::with_capacity(2, SHARDS, Arc::new(clock.clone()));
        let victim = ip("203.0.113.9");
        rl.check(victim).unwrap();
        rl.check(victim).unwrap();
        assert!(rl.check(victim).is_err());
        // Enough fresh addresses to fill every shard (one entry each) several times over.
        let mut refused = 0;
        for i in 0..(SHARDS as u32 * 32) {
            if rl
                .check(IpAddr::V4(Ipv4Addr::from_bits(0x0a00_0000 + i)))
                .is_err()
            {
                refused += 1;
            }
        }
        assert_eq!(rl.tracked(), SHARDS, "the cap holds");
        assert!(
            refused > 0,
            "untracked newcomers are limited, not let through"
        );
        assert!(
            rl.check(victim).is_err(),
            "the flood did not reset the victim"
        );
        // Once the tracked buckets refill, pruning makes room for new clients again.
        clock.advance(60);
        rl.prune();
        assert_eq!(rl.tracked(), 0);
        rl.check(ip("192.0.2.50")).unwrap();
        assert_eq!(rl.tracked(), 1);
    }
}
