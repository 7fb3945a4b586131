//! The scheduler of `brigade up`: runs the off-peak [jobs](crate::jobs) on their cron
//! schedules and/or when the replicas are quiet — the reference's "prepare pizza bases before
//! the rush".
//!
//! Every `sample_interval` it reads the in-flight requests per primary replica from the
//! balancer's admin API (the number the autoscaler uses) when a job has a quiet condition,
//! and asks each job's [`Timer`] whether it is due. A due job starts in its own task unless it
//! is still running. Each run is a supervisor event (`kind = "job"`, the job as instance,
//! outcome and duration in the message) and the last one per job is kept for the ops API:
//! `GET /api/jobs` lists the jobs, `POST /api/jobs/{job}/run` runs one now and answers when it
//! is done.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse as _;
use axum::routing::{get, post};
use brigade_balance::api::{BackendView, PoolView, Pools};
use brigade_core::Problem;
use brigade_core::Shutdown;
use chrono::{DateTime, Utc};
use tokio::task::JoinSet;

use crate::api::{EventKind, EventLevel, Service};
use crate::child_state::ChildState;
use crate::jobs::{self, AdminSession, JobPlan, JobTarget, JobsPlan};
use crate::public::PublicEndpoint;
use crate::shared::Shared;
use crate::topology::UpOptions;

pub(crate) mod board;

pub use board::Trigger;
use board::{Board, JobOutcome, JobRun, JobState, JobView, QuietView, Runner};

/// When one job is due: pure, driven with explicit times and load readings.
#[derive(Debug, Default)]
pub struct Timer {
    /// The next cron time (computed from the first step on: no catch-up of missed times).
    next_fire: Option<DateTime<Utc>>,
    /// A cron time passed and the run still waits for quiet.
    pending: bool,
    /// Since when the load has been below the job's threshold.
    quiet_since: Option<DateTime<Utc>>,
    /// A quiet-only job already ran in the current quiet spell.
    ran_this_spell: bool,
}

impl Timer {
    /// Advances to `now` with the current in-flight requests per replica (`None`: unknown,
    /// which never counts as quiet) and says whether the job should start.
    pub fn step(
        &mut self,
        plan: &JobPlan,
        now: DateTime<Utc>,
        load: Option<f64>,
    ) -> Option<Trigger> {
        if !plan.schedule.is_empty() {
            match self.next_fire {
                None => self.next_fire = plan.next_after(now),
                Some(at) if now >= at => {
                    self.pending = true;
                    self.next_fire = plan.next_after(now);
                }
                Some(_) => {}
            }
        }
        let Some(quiet) = plan.quiet else {
            return std::mem::take(&mut self.pending).then_some(Trigger::Schedule);
        };
        match load {
            Some(load) if load < quiet.below_in_flight => {
                self.quiet_since.get_or_insert(now);
            }
            _ => {
                self.quiet_since = None;
                self.ran_this_spell = false;
            }
        }
        let quiet_long_enough = self
            .quiet_since
            .is_some_and(|since| (now - since).to_std().unwrap_or_default() >= quiet.duration);
        if !quiet_long_enough {
            return None;
        }
        if plan.schedule.is_empty() {
            (!std::mem::replace(&mut self.ran_this_spell, true)).then_some(Trigger::Quiet)
        } else {
            std::mem::take(&mut self.pending).then_some(Trigger::ScheduleWhenQuiet)
        }
    }

    /// The next cron time, once known.
    pub fn next_fire(&self) -> Option<DateTime<Utc>> {
        self.next_fire
    }
}

/// What the runs of `options`' jobs share; `None` (logged) when the public port's certificate
/// cannot be read, which the balancer serving it makes unlikely.
fn runner(options: &UpOptions, public: &PublicEndpoint) -> Option<Runner> {
    let plan = &options.jobs;
    let admin = AdminSession::new(
        public.clone(),
        plan.admin_email.clone(),
        plan.admin_password.clone(),
        options.data_dir.clone(),
    );
    match admin {
        Ok(admin) => Some(Runner {
            admin,
            binary: options.binary.clone(),
            data_dir: options.data_dir.clone(),
            backup_keep: plan.backup_keep,
        }),
        Err(error) => {
            tracing::error!(%error, "no off-peak jobs: they cannot reach the public port");
            None
        }
    }
}

/// Registers the jobs of `options` and starts the scheduler; `None` when jobs are off. It stops
/// with `stop`, cancelling runs in progress (a backup child is killed; its partial file never
/// becomes a backup).
pub(crate) fn start(
    options: &UpOptions,
    shared: &Shared,
    admin_address: &str,
    public: &PublicEndpoint,
    stop: Shutdown,
) -> Option<tokio::task::JoinHandle<()>> {
    let plan: &JobsPlan = &options.jobs;
    if !plan.enabled || plan.jobs.is_empty() {
        return None;
    }
    let runner = Arc::new(runner(options, public)?);
    let jobs: Vec<Arc<JobState>> = plan
        .jobs
        .iter()
        .map(|job| {
            let blocked = (job.kind.needs_admin() && !runner.admin.has_password()).then(|| {
                format!(
                    "not scheduled: no password for {} (set BRIGADE_JOBS_ADMIN_PASSWORD or \
                     BRIGADE_DEMO_PASSWORD, or record it in {} with `brigade demo-data`)",
                    plan.admin_email,
                    crate::demo_accounts::path(&options.data_dir).display()
                )
            });
            Arc::new(JobState {
                plan: job.clone(),
                running: Arc::new(tokio::sync::Mutex::new(())),
                view: Mutex::new(JobView {
                    name: job.kind.name(),
                    schedule: job.schedule.iter().map(|(text, _)| text.clone()).collect(),
                    quiet: job.quiet.map(|q| QuietView {
                        below_in_flight: q.below_in_flight,
                        for_secs: q.duration.as_secs(),
                    }),
                    scheduled: blocked.is_none(),
                    note: blocked,
                    next_run: None,
                    running: false,
                    last_run: None,
                }),
            })
        })
        .collect();
    *shared.jobs.0.lock().unwrap_or_else(|p| p.into_inner()) = Some(Board {
        jobs: jobs.clone(),
        runner: runner.clone(),
    });
    let summary: Vec<String> = jobs.iter().map(|job| describe(&job.plan)).collect();
    shared.events.push(
        EventLevel::Info,
        EventKind::Jobs,
        None,
        format!("scheduler started: {}", summary.join("; ")),
    );
    for job in &jobs {
        let view = job.view.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(note) = &view.note {
            shared.events.push(
                EventLevel::Warn,
                EventKind::Job,
                Some(view.name),
                note.clone(),
            );
        }
    }
    Some(tokio::spawn(schedule(
        jobs,
        runner,
        plan.sample_interval,
        admin_address.to_owned(),
        shared.clone(),
        stop,
    )))
}

/// A job's timing in words, for the start event.
fn describe(plan: &JobPlan) -> String {
    let mut words = plan.kind.name().to_owned();
    if !plan.schedule.is_empty() {
        let crons: Vec<&str> = plan.schedule.iter().map(|(t, _)| t.as_str()).collect();
        words.push_str(&format!(" at \"{}\" UTC", crons.join("\", \"")));
    }
    if let Some(quiet) = plan.quiet {
        words.push_str(&format!(
            " when under {} in flight per replica for {} s",
            quiet.below_in_flight,
            quiet.duration.as_secs()
        ));
    }
    words
}

/// The loop: sample, step every timer, start what is due.
async fn schedule(
    jobs: Vec<Arc<JobState>>,
    runner: Arc<Runner>,
    every: Duration,
    admin_address: String,
    shared: Shared,
    stop: Shutdown,
) {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        .build()
        .unwrap_or_default();
    let pools_url = format!("http://{admin_address}/admin/pools");
    let mut timers: Vec<Timer> = jobs.iter().map(|_| Timer::default()).collect();
    let mut runs = JoinSet::new();
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = stop.wait() => break,
        }
        while runs.try_join_next().is_some() {}
        let scheduled =
            |job: &JobState| job.view.lock().unwrap_or_else(|p| p.into_inner()).scheduled;
        let wants_load = jobs
            .iter()
            .any(|job| job.plan.quiet.is_some() && scheduled(job));
        let load = if wants_load {
            in_flight_per_replica(&http, &pools_url).await
        } else {
            None
        };
        let now = Utc::now();
        for (job, timer) in jobs.iter().zip(&mut timers) {
            if !scheduled(job) {
                continue;
            }
            let due = timer.step(&job.plan, now, load);
            job.view.lock().unwrap_or_else(|p| p.into_inner()).next_run = timer.next_fire();
            let Some(trigger) = due else { continue };
            let Ok(guard) = job.running.clone().try_lock_owned() else {
                continue; // still running from last time: this run is covered by it
            };
            let (job, runner, shared) = (job.clone(), runner.clone(), shared.clone());
            runs.spawn(async move {
                run_job(&job, &runner, &shared, trigger).await;
                drop(guard);
            });
        }
    }
    runs.shutdown().await;
}

/// In-flight requests per primary replica over every pool, from the balancer's admin API.
async fn in_flight_per_replica(http: &reqwest::Client, url: &str) -> Option<f64> {
    let view: Pools = http.get(url).send().await.ok()?.json().await.ok()?;
    let primaries: Vec<&BackendView> = view.pools.iter().flat_map(PoolView::primaries).collect();
    if primaries.is_empty() {
        return None;
    }
    let in_flight: u64 = primaries.iter().map(|b| b.in_flight).sum();
    Some(in_flight as f64 / primaries.len() as f64)
}

/// Runs a job once (the caller holds its lock), records the run and its event.
async fn run_job(job: &JobState, runner: &Runner, shared: &Shared, trigger: Trigger) -> JobRun {
    let name = job.plan.kind.name();
    job.view.lock().unwrap_or_else(|p| p.into_inner()).running = true;
    let status = shared.status();
    let target = JobTarget {
        replicas: status
            .children
            .iter()
            .filter(|child| child.service == Service::Serve && child.state == ChildState::Ready)
            .filter_map(|child| child.address.clone())
            .collect(),
        binary: runner.binary.clone(),
        data_dir: runner.data_dir.clone(),
    };
    let started_at = Utc::now();
    let started = Instant::now();
    let result = jobs::execute(job.plan.kind, &target, &runner.admin, runner.backup_keep).await;
    let duration_ms = started.elapsed().as_millis() as u64;
    let (outcome, detail) = match result {
        Ok(detail) => (JobOutcome::Succeeded, detail),
        Err(error) => (JobOutcome::Failed, error.to_string()),
    };
    let run = JobRun {
        job: name,
        trigger,
        started_at,
        duration_ms,
        outcome,
        detail,
    };
    shared.events.push(
        EventLevel::of_outcome(outcome == JobOutcome::Succeeded),
        EventKind::Job,
        Some(name),
        format!(
            "{name} {} in {duration_ms} ms ({}): {}",
            outcome.as_str(),
            trigger.as_str(),
            run.detail
        ),
    );
    let mut view = job.view.lock().unwrap_or_else(|p| p.into_inner());
    view.running = false;
    view.last_run = Some(run.clone());
    run
}

/// `GET /api/jobs` and `POST /api/jobs/{job}/run` on the ops port.
pub(crate) fn router() -> Router<Shared> {
    Router::new()
        .route("/api/jobs", get(list_jobs))
        .route("/api/jobs/{job}/run", post(run_now))
}

/// The extension member of a failed run's problem: the run itself.
#[derive(serde::Serialize)]
struct FailedRun {
    run: JobRun,
}

/// `GET /api/jobs`.
#[derive(serde::Serialize)]
struct JobList {
    jobs: Vec<JobView>,
}

async fn list_jobs(State(shared): State<Shared>) -> axum::Json<JobList> {
    let jobs: Vec<JobView> = shared
        .jobs
        .board()
        .map(|board| {
            board
                .jobs
                .iter()
                .map(|job| job.view.lock().unwrap_or_else(|p| p.into_inner()).clone())
                .collect()
        })
        .unwrap_or_default();
    axum::Json(JobList { jobs })
}

/// Runs the job now (after a run in progress finishes) and answers with the run: 200 when it
/// succeeded, 502 with the run when it failed, 404 for an unknown job.
async fn run_now(
    State(shared): State<Shared>,
    Path(name): Path<String>,
) -> axum::response::Response {
    let Some((job, runner)) = shared.jobs.job(&name) else {
        return crate::problem::problem(
            StatusCode::NOT_FOUND,
            format!("no job {name:?}; jobs: {:?}", shared.jobs.names()),
        );
    };
    let _turn = job.running.lock().await;
    let run = run_job(&job, &runner, &shared, Trigger::Ops).await;
    run_answer(run)
}

/// A succeeded run as itself (200); a failed one as a problem (502) carrying the run.
fn run_answer(run: JobRun) -> axum::response::Response {
    match run.outcome {
        JobOutcome::Succeeded => (StatusCode::OK, axum::Json(run)).into_response(),
        JobOutcome::Failed => crate::problem::Extended {
            problem: Problem::new(StatusCode::BAD_GATEWAY, "job-failed", "The job failed")
                .with_detail(run.detail.clone()),
            extension: FailedRun { run },
        }
        .into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jobs::{JobKind, Quiet};

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .unwrap()
            .with_timezone(&Utc)
    }

    fn plan(schedule: &[&str], quiet: Option<(f64, u64)>) -> JobPlan {
        JobPlan {
            kind: JobKind::WarmCaches,
            schedule: schedule
                .iter()
                .map(|s| ((*s).to_owned(), croner::Cron::new(s).parse().unwrap()))
                .collect(),
            quiet: quiet.map(|(below, secs)| Quiet {
                below_in_flight: below,
                duration: Duration::from_secs(secs),
            }),
        }
    }

    #[test]
    fn a_cron_job_runs_at_its_times_without_catching_up() {
        let plan = plan(&["*/15 * * * *"], None);
        let mut timer = Timer::default();
        assert_eq!(timer.step(&plan, at("2026-11-22T10:07:00Z"), None), None);
        assert_eq!(timer.next_fire(), Some(at("2026-11-22T10:15:00Z")));
        assert_eq!(timer.step(&plan, at("2026-11-22T10:14:59Z"), None), None);
        assert_eq!(
            timer.step(&plan, at("2026-11-22T10:15:00Z"), None),
            Some(Trigger::Schedule)
        );
        assert_eq!(
            timer.step(&plan, at("2026-11-22T10:15:01Z"), None),
            None,
            "once"
        );
        // The supervisor was suspended for an hour: one run, not four.
        assert_eq!(
            timer.step(&plan, at("2026-11-22T11:20:00Z"), None),
            Some(Trigger::Schedule)
        );
        assert_eq!(timer.next_fire(), Some(at("2026-11-22T11:30:00Z")));
        assert_eq!(timer.step(&plan, at("2026-11-22T11:21:00Z"), None), None);
    }

    #[test]
    fn a_quiet_condition_holds_a_due_job_until_load_stayed_low_long_enough() {
        let plan = plan(&["*/5 * * * *"], Some((2.0, 30)));
        let mut timer = Timer::default();
        timer.step(&plan, at("2026-11-22T10:04:00Z"), Some(9.0));
        // Due at 10:05, but busy.
        assert_eq!(
            timer.step(&plan, at("2026-11-22T10:05:00Z"), Some(5.0)),
            None
        );
        assert_eq!(
            timer.step(&plan, at("2026-11-22T10:05:10Z"), Some(1.0)),
            None,
            "quiet only just began"
        );
        assert_eq!(
            timer.step(&plan, at("2026-11-22T10:05:30Z"), Some(3.0)),
            None,
            "a burst resets the clock"
        );
        assert_eq!(
            timer.step(&plan, at("2026-11-22T10:05:31Z"), Some(0.5)),
            None
        );
        assert_eq!(
            timer.step(&plan, at("2026-11-22T10:05:50Z"), None),
            None,
            "unknown load is not quiet"
        );
        assert_eq!(
            timer.step(&plan, at("2026-11-22T10:06:00Z"), Some(0.0)),
            None
        );
        assert_eq!(
            timer.step(&plan, at("2026-11-22T10:06:30Z"), Some(1.9)),
            Some(Trigger::ScheduleWhenQuiet)
        );
        assert_eq!(
            timer.step(&plan, at("2026-11-22T10:07:00Z"), Some(0.0)),
            None,
            "once per cron time"
        );
        assert_eq!(
            timer.step(&plan, at("2026-11-22T10:10:00Z"), Some(0.0)),
            Some(Trigger::ScheduleWhenQuiet),
            "quiet all along: runs at the cron time"
        );
    }

    #[test]
    fn a_quiet_only_job_runs_once_per_quiet_spell() {
        let plan = plan(&[], Some((1.0, 10)));
        let mut timer = Timer::default();
        assert_eq!(
            timer.step(&plan, at("2026-11-22T10:00:00Z"), Some(0.0)),
            None
        );
        assert_eq!(
            timer.step(&plan, at("2026-11-22T10:00:10Z"), Some(0.0)),
            Some(Trigger::Quiet)
        );
        assert_eq!(
            timer.step(&plan, at("2026-11-22T10:05:00Z"), Some(0.0)),
            None
        );
        assert_eq!(
            timer.step(&plan, at("2026-11-22T10:06:00Z"), Some(4.0)),
            None,
            "the rush"
        );
        assert_eq!(
            timer.step(&plan, at("2026-11-22T10:07:00Z"), Some(0.0)),
            None
        );
        assert_eq!(
            timer.step(&plan, at("2026-11-22T10:07:10Z"), Some(0.0)),
            Some(Trigger::Quiet),
            "the next lull"
        );
    }

    #[tokio::test]
    async fn a_failed_run_is_a_problem_that_carries_the_run() {
        let run = JobRun {
            job: "backup",
            trigger: Trigger::Ops,
            started_at: at("2026-12-07T03:00:00Z"),
            duration_ms: 12,
            outcome: JobOutcome::Failed,
            detail: "disk full".into(),
        };
        let answer = run_answer(run.clone());
        assert_eq!(answer.status(), StatusCode::BAD_GATEWAY);
        assert_eq!(
            answer.headers()["content-type"],
            brigade_core::problem::PROBLEM_JSON
        );
        let body = axum::body::to_bytes(answer.into_body(), 1 << 16)
            .await
            .unwrap();
        let problem: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(problem["type"], "urn:brigade:problem:job-failed");
        assert_eq!(problem["status"], 502);
        assert_eq!(problem["detail"], "disk full");
        assert_eq!(problem["run"]["outcome"], "failed");
        assert_eq!(problem["run"]["trigger"], "ops");

        let succeeded = run_answer(JobRun {
            outcome: JobOutcome::Succeeded,
            ..run
        });
        assert_eq!(succeeded.status(), StatusCode::OK);
    }
}
