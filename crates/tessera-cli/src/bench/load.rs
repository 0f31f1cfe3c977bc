//! The load generator: N keep-alive connections, each sending its workload's next request as
//! soon as the previous answer arrived (a closed loop), for a warm-up and then a measured
//! window. Every latency of a successful request in the window is kept (4 bytes each), so the
//! percentiles are exact.
//!
//! Only successes are throughput: a failed request (a wrong status, a missing field, a broken
//! connection) is counted as an error and nothing else. A server that answers 429 or 500 in
//! a microsecond would otherwise read as the fastest one (an embed run once reported 145,748
//! rate-limited answers as 72,875 req/s), and its fast refusals would pull the percentiles
//! down with it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;

use super::http::{self, Conn};
use super::Fixture;

/// Measures elapsed time. The bench measures durations and never reads the time of day, which
/// is what the workspace's clock rule is about.
#[derive(Clone, Copy)]
pub(crate) struct Timer(Instant);

impl Timer {
    #[allow(clippy::disallowed_methods)]
    pub fn start() -> Timer {
        Timer(Instant::now())
    }

    pub fn elapsed(&self) -> Duration {
        self.0.elapsed()
    }
}

/// What each request of a run does.
pub(crate) enum Workload {
    Healthz,
    Introspect,
    Guest,
    SubscriberNew,
    SubscriberExisting,
    /// Each connection rotates its own chain, starting from one of these refresh tokens.
    Refresh(Vec<String>),
    Invite,
    Embed,
    Login,
    List,
}

/// The result of one run.
#[derive(Debug, Clone, Default)]
pub(crate) struct Outcome {
    /// Successful requests per second of the measured window (errors are not in it).
    pub rps: f64,
    /// Latency percentiles of the successful requests.
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    /// Requests of the window that succeeded.
    pub succeeded: u64,
    /// Requests of the window that failed (and connection attempts that did).
    pub errors: u64,
}

impl Outcome {
    /// The figures of a window of `duration`: `latencies_us` holds one entry per successful
    /// request, `errors` counts the failures, which add to no rate and no percentile.
    pub(crate) fn of(mut latencies_us: Vec<u32>, errors: u64, duration: Duration) -> Outcome {
        latencies_us.sort_unstable();
        let pct = |p: f64| -> f64 {
            if latencies_us.is_empty() {
                return 0.0;
            }
            let n = latencies_us.len();
            let i = ((n as f64 * p).ceil() as usize).clamp(1, n) - 1;
            latencies_us[i] as f64 / 1000.0
        };
        Outcome {
            rps: latencies_us.len() as f64 / duration.as_secs_f64(),
            p50_ms: pct(0.50),
            p99_ms: pct(0.99),
            p999_ms: pct(0.999),
            succeeded: latencies_us.len() as u64,
            errors,
        }
    }
}

/// One connection's view of its workload.
struct Source {
    fixed: Vec<Vec<u8>>,
    next: usize,
    status: u16,
    /// A substring a good answer has (introspection must say active).
    must_contain: Option<&'static [u8]>,
    kind: Kind,
}

enum Kind {
    Fixed,
    NewReference { prefix: String, count: u64 },
    Chain(String),
}

fn form(basic: &str, token: &str) -> Vec<u8> {
    http::request(
        "POST",
        "/oauth2/introspect",
        &[
            ("Authorization", basic),
            ("Content-Type", "application/x-www-form-urlencoded"),
        ],
        &format!("token={token}"),
    )
}

impl Source {
    fn new(fx: &Fixture, w: &Workload, conn: usize, pass: usize) -> Source {
        let fixed = |reqs: Vec<Vec<u8>>, status| Source {
            next: conn % reqs.len().max(1),
            fixed: reqs,
            status,
            must_contain: None,
            kind: Kind::Fixed,
        };
        // The same JSON request on every send.
        let post = |path: &str, auth: Option<&str>, body: serde_json::Value, status| {
            fixed(vec![http::post_json(path, auth, &body.to_string())], status)
        };
        match w {
            Workload::Healthz => fixed(vec![http::request("GET", "/healthz", &[], "")], 200),
            Workload::Introspect => Source {
                must_contain: Some(b"\"active\":true"),
                ..fixed(
                    fx.access_tokens
                        .iter()
                        .map(|t| form(&fx.basic, t))
                        .collect(),
                    200,
                )
            },
            Workload::Guest => post(
                "/api/fabric/guests/tokens",
                Some(&fx.basic),
                json!({ "allowed_addresses": fx.addresses }),
                201,
            ),
            Workload::SubscriberExisting => fixed(
                fx.references
                    .iter()
                    .map(|r| {
                        http::post_json(
                            "/api/fabric/subscribers/tokens",
                            Some(&fx.basic),
                            &json!({ "reference": r }).to_string(),
                        )
                    })
                    .collect(),
                200,
            ),
            Workload::SubscriberNew => Source {
                kind: Kind::NewReference {
                    prefix: format!("bench-{}-p{pass}-c{conn}-", fx.run),
                    count: 0,
                },
                ..fixed(Vec::new(), 200)
            },
            Workload::Refresh(seeds) => Source {
                kind: Kind::Chain(seeds[conn % seeds.len()].clone()),
                ..fixed(Vec::new(), 201)
            },
            Workload::Invite => post(
                "/api/fabric/subscriber/invites",
                Some(&fx.basic),
                json!({ "address_id": fx.invite_address }),
                201,
            ),
            Workload::Embed => post(
                "/api/fabric/embeds/tokens",
                None,
                json!({ "token": fx.embed }),
                201,
            ),
            Workload::Login => fixed(
                vec![http::post_json("/v1/tokens", None, &fx.login_body)],
                200,
            ),
            Workload::List => fixed(
                vec![http::request(
                    "GET",
                    "/v1/users",
                    &[("Authorization", &fx.operator_bearer)],
                    "",
                )],
                200,
            ),
        }
    }

    /// The next request's bytes.
    fn request(&mut self, fx: &Fixture) -> std::borrow::Cow<'_, [u8]> {
        match &mut self.kind {
            Kind::Fixed => {
                let i = self.next;
                self.next = (self.next + 1) % self.fixed.len();
                std::borrow::Cow::Borrowed(&self.fixed[i])
            }
            Kind::NewReference { prefix, count } => {
                *count += 1;
                let body = format!("{{\"reference\":\"{prefix}{count}@example.com\"}}");
                std::borrow::Cow::Owned(http::post_json(
                    "/api/fabric/subscribers/tokens",
                    Some(&fx.basic),
                    &body,
                ))
            }
            Kind::Chain(token) => {
                let body = format!("{{\"refresh_token\":\"{token}\"}}");
                std::borrow::Cow::Owned(http::post_json(
                    "/api/fabric/subscribers/tokens/refresh",
                    Some(&fx.basic),
                    &body,
                ))
            }
        }
    }

    /// Judges an answer; a refresh chain moves on to the token it was handed.
    fn accept(&mut self, status: u16, body: &[u8]) -> bool {
        if status != self.status {
            return false;
        }
        if let Some(needle) = self.must_contain {
            if http::find(body, needle).is_none() {
                return false;
            }
        }
        if let Kind::Chain(token) = &mut self.kind {
            match http::json_str(body, "refresh_token") {
                Some(t) => *token = t.to_string(),
                None => return false,
            }
        }
        true
    }
}

/// What one connection measured.
#[derive(Default)]
struct Tally {
    /// One latency per successful request.
    latencies_us: Vec<u32>,
    errors: u64,
}

async fn connection(
    fx: Arc<Fixture>,
    mut source: Source,
    start: Timer,
    measure_from: Duration,
    until: Duration,
) -> Tally {
    let mut tally = Tally::default();
    let mut conn = Conn::connect(fx.addr).await.ok();
    loop {
        let sent_at = start.elapsed();
        if sent_at >= until {
            break;
        }
        let measured = sent_at >= measure_from;
        let Some(c) = conn.as_mut() else {
            if measured {
                tally.errors += 1;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
            conn = Conn::connect(fx.addr).await.ok();
            continue;
        };
        let answer = {
            let request = source.request(&fx);
            c.call(&request).await.map(|r| (r.status, r.body))
        };
        let ok = match answer {
            Ok((status, body)) => source.accept(status, body),
            Err(_) => {
                if c.reconnect().await.is_err() {
                    conn = None;
                }
                false
            }
        };
        if measured {
            if ok {
                let us = (start.elapsed() - sent_at)
                    .as_micros()
                    .min(u32::MAX as u128) as u32;
                tally.latencies_us.push(us);
            } else {
                tally.errors += 1;
            }
        }
        // A broken refresh chain cannot go on: its next token was never handed out.
        if !ok && matches!(source.kind, Kind::Chain(_)) {
            break;
        }
    }
    tally
}

/// Runs `workload` on `connections` connections: `warmup` unmeasured, then `duration`.
pub(crate) async fn run(
    fx: Arc<Fixture>,
    workload: Workload,
    connections: usize,
    warmup: Duration,
    duration: Duration,
    pass: usize,
) -> Outcome {
    let start = Timer::start();
    let until = warmup + duration;
    let tasks: Vec<_> = (0..connections)
        .map(|i| {
            let source = Source::new(&fx, &workload, i, pass);
            tokio::spawn(connection(fx.clone(), source, start, warmup, until))
        })
        .collect();
    let mut all = Vec::new();
    let mut errors = 0;
    for t in tasks {
        if let Ok(tally) = t.await {
            all.extend(tally.latencies_us);
            errors += tally.errors;
        }
    }
    Outcome::of(all, errors, duration)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU64, Ordering};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[test]
    fn failures_add_to_no_rate_and_no_percentile() {
        // 10 successes of 1–10 ms and 20 failures in one second: 10/s, not 30/s.
        let latencies: Vec<u32> = (1..=10).rev().map(|ms| ms * 1000).collect();
        let o = Outcome::of(latencies, 20, Duration::from_secs(1));
        assert_eq!(o.rps, 10.0);
        assert_eq!(o.succeeded, 10);
        assert_eq!(o.errors, 20);
        assert_eq!(o.p50_ms, 5.0);
        assert_eq!(o.p99_ms, 10.0);
        // Nothing but failures is no throughput at all.
        let none = Outcome::of(Vec::new(), 145_748, Duration::from_secs(2));
        assert_eq!((none.rps, none.succeeded, none.p99_ms), (0.0, 0, 0.0));
    }

    /// A server that answers every other request (counted across its connections) with 503,
    /// and counts what it answered each way.
    async fn flaky_server() -> (std::net::SocketAddr, Arc<[AtomicU64; 2]>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let counts: Arc<[AtomicU64; 2]> = Arc::new([AtomicU64::new(0), AtomicU64::new(0)]);
        let served = counts.clone();
        tokio::spawn(async move {
            let turn = Arc::new(AtomicU64::new(0));
            while let Ok((mut stream, _)) = listener.accept().await {
                let (turn, served) = (turn.clone(), served.clone());
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    loop {
                        // Requests are bodiless GETs: one ends at its blank line.
                        while http::find(&buf, b"\r\n\r\n").is_none() {
                            if stream.read_buf(&mut buf).await.unwrap_or(0) == 0 {
                                return;
                            }
                        }
                        let end = http::find(&buf, b"\r\n\r\n").unwrap() + 4;
                        buf.drain(..end);
                        let failed = turn.fetch_add(1, Ordering::Relaxed) % 2 == 1;
                        served[failed as usize].fetch_add(1, Ordering::Relaxed);
                        let status = if failed { "503 Busy" } else { "200 OK" };
                        let answer = format!("HTTP/1.1 {status}\r\nContent-Length: 2\r\n\r\n{{}}");
                        if stream.write_all(answer.as_bytes()).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        (addr, counts)
    }

    #[tokio::test]
    async fn a_round_with_failures_reports_the_rate_of_successes() {
        let (addr, counts) = flaky_server().await;
        let fx = Arc::new(Fixture {
            addr,
            basic: String::new(),
            addresses: Vec::new(),
            references: Vec::new(),
            invite_address: String::new(),
            embed: String::new(),
            access_tokens: Vec::new(),
            login_body: String::new(),
            operator_bearer: String::new(),
            run: "test".into(),
            project: tessera_core::ids::ProjectId::random(),
        });
        let window = Duration::from_millis(300);
        let o = run(fx, Workload::Healthz, 2, Duration::ZERO, window, 0).await;
        let ok = counts[0].load(Ordering::Relaxed);
        let failed = counts[1].load(Ordering::Relaxed);
        assert!(ok > 10 && failed > 10, "{ok} ok, {failed} failed");
        // With no warm-up every answer is in the window: each is either a success or an error.
        assert_eq!((o.succeeded, o.errors), (ok, failed));
        assert_eq!(o.rps, ok as f64 / window.as_secs_f64());
        assert!(o.rps < (ok + failed) as f64 / window.as_secs_f64());
    }
}
