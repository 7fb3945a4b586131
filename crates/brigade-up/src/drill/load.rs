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
        let (outcome, placed) = if pending.is_none() && n.is_multiple_of(2) {
            match http.get(&target.menu_url).send().await {
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
        {
            let mut samples = samples.lock().await;
            samples.latencies[slot].push(elapsed);
            if let Err(failure) = outcome {
                samples.failed[slot] += 1;
                *samples.statuses[slot].entry(failure.status).or_default() += 1;
                if !failure.problem {
                    samples.not_problem[slot] += 1;
                }
                *samples.reasons.entry(failure.reason).or_default() += 1;
            }
            if let Some(id) = placed {
                samples.acknowledged.push(id);
                samples.acknowledged_at.push(Instant::now());
            }
        }
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
}
