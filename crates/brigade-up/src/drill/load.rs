//! The drill's load: clients doing what customers do (menu reads, orders with their own
//! `Idempotency-Key`) until stopped, every answer recorded under its phase.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::Mutex;
use tokio::task::JoinHandle;

/// The phases of a drill; the index of each phase's slot in the samples.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Before the fault.
    Before = 0,
    /// From the fault until the system is whole again.
    During = 1,
    /// After recovery.
    After = 2,
}

/// What the clients saw, per phase.
#[derive(Default)]
pub struct Samples {
    /// Every request's latency.
    pub latencies: [Vec<Duration>; 3],
    /// Requests that did not succeed.
    pub failed: [usize; 3],
    /// Failed requests by HTTP status (`"503"`) or transport error (`"timeout"`).
    pub statuses: [BTreeMap<String, usize>; 3],
    /// Failed HTTP answers that were not `application/problem+json`.
    pub not_problem: [usize; 3],
    /// What the failed requests got, in words, counted.
    pub reasons: BTreeMap<String, usize>,
    /// Ids of orders answered 201.
    pub acknowledged: Vec<String>,
    /// When each of `acknowledged` was answered (same order).
    pub acknowledged_at: Vec<Instant>,
    /// The slowest request of each phase and its trace id.
    pub slowest_trace: [Option<(Duration, String)>; 3],
    /// Trace ids of the first [`FAILED_TRACES_KEPT`] failed requests of each phase.
    pub failed_traces: [Vec<String>; 3],
}

/// Failed requests per phase whose trace ids the report names.
pub const FAILED_TRACES_KEPT: usize = 5;

impl Samples {
    /// Records one request that counts in phase `slot`, took `elapsed` and ran as `trace`.
    fn record(
        &mut self,
        slot: usize,
        elapsed: Duration,
        trace: String,
        outcome: Result<(), Failure>,
        placed: Option<String>,
    ) {
        self.latencies[slot].push(elapsed);
        if let Err(failure) = outcome {
            self.failed[slot] += 1;
            *self.statuses[slot].entry(failure.status).or_default() += 1;
            if !failure.problem {
                self.not_problem[slot] += 1;
            }
            *self.reasons.entry(failure.reason).or_default() += 1;
            if self.failed_traces[slot].len() < FAILED_TRACES_KEPT {
                self.failed_traces[slot].push(trace.clone());
            }
        }
        if self.slowest_trace[slot]
            .as_ref()
            .is_none_or(|(slowest, _)| elapsed > *slowest)
        {
            self.slowest_trace[slot] = Some((elapsed, trace));
        }
        if let Some(id) = placed {
            self.acknowledged.push(id);
            self.acknowledged_at.push(Instant::now());
        }
    }
}

/// A new sampled W3C trace context for one request and its trace id: every request of the
/// drill starts its own trace, so the report can name the traces of its slowest and failed
/// requests, and the ops dashboard's Traces view opens them (watch keeps failed and slow
/// traces longest).
fn new_trace() -> (String, String) {
    let trace = format!("{:032x}", rand::random::<u128>().max(1));
    let span = format!("{:016x}", rand::random::<u64>().max(1));
    (format!("00-{trace}-{span}-01"), trace)
}

/// Where and what the clients send.
#[derive(Clone)]
pub struct Target {
    /// `http://PUBLIC/api/v1/shops/{shop}/menu`.
    pub menu_url: String,
    /// `http://PUBLIC/api/v1/orders`.
    pub orders_url: String,
    /// The customer's token.
    pub token: String,
    /// The order every client places.
    pub order: brigade_domain::NewOrder,
    /// Prefix of the idempotency keys (unique per drill run).
    pub key_prefix: String,
}

/// The running load.
pub struct Load {
    http: reqwest::Client,
    target: Target,
    phase: Arc<AtomicU8>,
    /// The samples, shared with the clients.
    pub samples: Arc<Mutex<Samples>>,
    clients: Vec<(Arc<AtomicBool>, JoinHandle<()>)>,
    next_client: usize,
}

impl Load {
    /// Starts `clients` clients in the before phase.
    pub fn start(http: reqwest::Client, target: Target, clients: usize) -> Self {
        let mut load = Self {
            http,
            target,
            phase: Arc::new(AtomicU8::new(Phase::Before as u8)),
            samples: Arc::new(Mutex::new(Samples::default())),
            clients: Vec::new(),
            next_client: 0,
        };
        let stop = Arc::new(AtomicBool::new(false));
        load.add(clients, &stop);
        load
    }

    /// Moves the clients to `phase`: requests started from now on count there.
    pub fn enter(&self, phase: Phase) {
        self.phase.store(phase as u8, Ordering::Relaxed);
    }

    /// Adds `clients` more clients that stop when `stop` is set (or with the rest).
    pub fn add(&mut self, clients: usize, stop: &Arc<AtomicBool>) {
        for _ in 0..clients {
            self.next_client += 1;
            let task = tokio::spawn(client(
                self.http.clone(),
                self.target.clone(),
                self.next_client,
                self.phase.clone(),
                self.samples.clone(),
                stop.clone(),
            ));
            self.clients.push((stop.clone(), task));
        }
    }

    /// Stops every client and waits for their last requests.
    pub async fn stop(self) -> Arc<Mutex<Samples>> {
        for (stop, _) in &self.clients {
            stop.store(true, Ordering::Relaxed);
        }
        for (_, task) in self.clients {
            let _ = task.await;
        }
        self.samples
    }
}

/// First pause of a client after a failure; it doubles per failure in a row.
const FIRST_PAUSE: Duration = Duration::from_millis(50);
/// Longest pause, whatever `Retry-After` says (the drill's phases are seconds long).
const LONGEST_PAUSE: Duration = Duration::from_secs(2);

/// One client: a menu read, then an order with a fresh key, until `stop`. Like a careful
/// client, after a 5xx, a 429 or a broken connection it pauses (the answer's `Retry-After`,
/// else a pause that doubles), and an order whose connection broke is placed again with the
/// same key.
async fn client(
    http: reqwest::Client,
    target: Target,
    worker: usize,
    phase: Arc<AtomicU8>,
    samples: Arc<Mutex<Samples>>,
    stop: Arc<AtomicBool>,
) {
    let mut n = 0_u64;
    let mut pending: Option<String> = None;
    let mut pause = FIRST_PAUSE;
    while !stop.load(Ordering::Relaxed) {
        n += 1;
        let started_in = phase.load(Ordering::Relaxed);
        let started = Instant::now();
        let (traceparent, trace) = new_trace();
        let (outcome, placed) = if pending.is_none() && n.is_multiple_of(2) {
            let menu = http
                .get(&target.menu_url)
                .header("traceparent", &traceparent);
            match menu.send().await {
                Ok(r) if r.status().is_success() => (Ok(()), None),
                Ok(r) => (Err(failure("GET menu", r).await), None),
                Err(e) => (Err(transport("GET menu", &e)), None),
            }
        } else {
            let key = pending
                .take()
                .unwrap_or_else(|| format!("{}-{worker}-{n}", target.key_prefix));
            let answer = http
                .post(&target.orders_url)
                .bearer_auth(&target.token)
                .header("idempotency-key", &key)
                // The drill's own orders are found by this prefix in the audit trail.
                .header("x-request-id", &key)
                .header("traceparent", &traceparent)
                .json(&target.order)
                .send()
                .await;
            let outcome = match answer {
                Ok(response) if response.status().as_u16() == 201 => {
                    let order: Option<brigade_domain::Order> = response.json().await.ok();
                    (Ok(()), order.map(|order| order.id.to_string()))
                }
                Ok(response) => (Err(failure("POST order", response).await), None),
                Err(e) => (Err(transport("POST order", &e)), None),
            };
            // A broken connection leaves the order's fate unknown: the same key tells the
            // service it is the same order. An answer is final for its key (a replayed key
            // would replay it), so after one the next order gets a new key.
            if outcome.0.as_ref().is_err_and(|f| f.unanswered) {
                pending = Some(key);
            }
            outcome
        };
        let elapsed = started.elapsed();
        let slot = slot(started_in, phase.load(Ordering::Relaxed));
        let wait = outcome.as_ref().err().and_then(|f| f.retry);
        samples
            .lock()
            .await
            .record(slot, elapsed, trace, outcome, placed);
        match wait {
            Some(asked) => {
                tokio::time::sleep(asked.unwrap_or(pause).min(LONGEST_PAUSE)).await;
                pause = (pause * 2).min(LONGEST_PAUSE);
            }
            None => pause = FIRST_PAUSE,
        }
    }
}

/// The phase a request counts in: the fault's when it overlapped the fault at all (a request
/// in flight when the fault began is one of its casualties), else the one it ran in.
fn slot(started_in: u8, ended_in: u8) -> usize {
    let (before, during) = (Phase::Before as u8, Phase::During as u8);
    if started_in == before && ended_in == before {
        Phase::Before as usize
    } else if started_in <= during {
        Phase::During as usize
    } else {
        Phase::After as usize
    }
}

/// One failed request.
struct Failure {
    /// HTTP status or transport error kind.
    status: String,
    /// Whether the answer was `application/problem+json` (transport errors count as such:
    /// they are reported by kind, not as bad answers).
    problem: bool,
    /// In words.
    reason: String,
    /// Whether a careful client tries again after a pause (5xx, 429, a broken connection), and
    /// the pause the answer asked for (`Retry-After` in seconds).
    retry: Option<Option<Duration>>,
    /// No answer came (the connection broke or timed out).
    unanswered: bool,
}

async fn failure(what: &str, response: reqwest::Response) -> Failure {
    let status = response.status().as_u16();
    let retry_after = response
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok()?.trim().parse::<u64>().ok())
        .map(Duration::from_secs);
    let retry = (status >= 500 || status == 429).then_some(retry_after);
    let problem = response
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/problem+json"));
    let body: Option<brigade_core::Problem> = response.json().await.ok();
    let kind = body
        .as_ref()
        .map_or("(not problem+json)", |p| p.kind.as_str());
    Failure {
        status: status.to_string(),
        problem,
        reason: format!("{what}: HTTP {status} {kind}"),
        retry,
        unanswered: false,
    }
}

fn transport(what: &str, error: &reqwest::Error) -> Failure {
    let kind = if error.is_timeout() {
        "timeout"
    } else if error.is_connect() {
        "connection refused"
    } else {
        "connection error"
    };
    Failure {
        status: kind.to_owned(),
        problem: true,
        reason: format!("{what}: {kind}"),
        retry: Some(None),
        unanswered: true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_overlapping_the_fault_counts_in_it() {
        let (b, d, a) = (Phase::Before as u8, Phase::During as u8, Phase::After as u8);
        assert_eq!(slot(b, b), 0);
        assert_eq!(slot(b, d), 1, "in flight when the fault began");
        assert_eq!(slot(b, a), 1, "in flight across the whole fault");
        assert_eq!(slot(d, a), 1, "started during it");
        assert_eq!(slot(a, a), 2);
    }

    fn failed() -> Result<(), Failure> {
        Err(Failure {
            status: "503".into(),
            problem: true,
            reason: "GET menu: HTTP 503 unavailable".into(),
            retry: Some(None),
            unanswered: false,
        })
    }

    #[test]
    fn the_slowest_and_the_first_failed_requests_keep_their_trace_ids() {
        let mut samples = Samples::default();
        let ms = Duration::from_millis;
        samples.record(1, ms(5), "a".into(), Ok(()), None);
        samples.record(1, ms(50), "b".into(), failed(), None);
        samples.record(1, ms(7), "c".into(), Ok(()), Some("order".into()));
        for n in 0..10 {
            samples.record(1, ms(1), format!("f{n}"), failed(), None);
        }
        assert_eq!(samples.slowest_trace[1], Some((ms(50), "b".into())));
        assert_eq!(samples.slowest_trace[0], None);
        assert_eq!(samples.failed_traces[1].len(), FAILED_TRACES_KEPT);
        assert_eq!(samples.failed_traces[1][..2], ["b", "f0"]);
        assert_eq!(samples.failed[1], 11);
        assert_eq!(samples.acknowledged, ["order"]);
    }

    #[test]
    fn every_request_starts_a_sampled_trace_of_its_own() {
        let (header, trace) = new_trace();
        let parts: Vec<&str> = header.split('-').collect();
        assert_eq!(parts.len(), 4);
        assert_eq!((parts[0], parts[3]), ("00", "01"));
        assert_eq!(parts[1], trace);
        assert_eq!((trace.len(), parts[2].len()), (32, 16));
        assert!(header.bytes().all(|b| b == b'-' || b.is_ascii_hexdigit()));
        assert_ne!(new_trace().1, trace);
    }
}
