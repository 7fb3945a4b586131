//! The off-peak jobs of `brigade up` — what each one does and how `up.toml` configures them.
//! When they run is [`scheduler`](crate::scheduler)'s business.
//!
//! ```toml
//! [jobs]
//! admin_email = "admin@brigade.demo"   # password: BRIGADE_JOBS_ADMIN_PASSWORD or BRIGADE_DEMO_PASSWORD
//! sample_interval_ms = 1000            # how often the balancer's in-flight counts are read
//! backup_keep = 7
//!
//! [jobs.warm-caches]                   # a job's table states it completely
//! schedule = ["*/5 * * * *"]           # cron, UTC; several allowed
//! quiet = { below_in_flight = 2.0, for_secs = 30 }
//!
//! [jobs.daily-report]
//! schedule = ["*/15 * * * *", "5 0 * * *"]
//!
//! [jobs.backup]
//! schedule = ["0 3 * * *"]
//! ```
//! A job with a schedule becomes due at each cron time; with a `quiet` condition too it then
//! waits until every replica has had fewer than `below_in_flight` requests in flight (the
//! balancer's count, averaged over the primaries) for `for_secs`. A job with only a quiet
//! condition runs once at the start of each quiet spell.

use std::time::Duration;

use serde::{Deserialize, Serialize};

mod run;

pub(crate) use run::{AdminSession, JobTarget, execute};

/// Why the jobs configuration was refused.
#[derive(Debug, thiserror::Error)]
pub enum JobsConfigError {
    /// The file cannot be read.
    #[error("cannot read it")]
    Read(#[source] std::io::Error),
    /// The TOML does not parse or has unknown keys (the message names key and line).
    #[error(transparent)]
    Toml(#[from] toml::de::Error),
    /// A value is out of range or a cron expression does not parse.
    #[error("{key}: {message}")]
    Invalid {
        /// Dotted path of the key, e.g. `jobs.backup.schedule[0]`.
        key: String,
        /// What is wrong.
        message: String,
    },
    /// A job's schedule is not a five-field cron expression.
    #[error("{key}: {problem}")]
    Schedule {
        /// Dotted path of the key, e.g. `jobs.backup.schedule[0]`.
        key: String,
        /// What is wrong with it.
        problem: ScheduleProblem,
    },
}

/// What is wrong with a cron expression of a job's schedule.
#[derive(Debug, thiserror::Error)]
pub enum ScheduleProblem {
    /// Not five fields.
    #[error("{0:?} must have five fields: minute hour day-of-month month day-of-week")]
    FieldCount(String),
    /// Five fields that croner refuses.
    #[error("{text:?} is not a cron expression: {cause}")]
    Cron {
        /// The expression.
        text: String,
        /// croner's reason.
        cause: croner::errors::CronError,
    },
}

/// The whole `up.toml`: top-level keys that mirror `brigade up`'s flags (a flag given on the
/// command line wins over the file), `[autoscale]` and `[jobs]`; unknown keys are refused.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpFile {
    /// `--data-dir`.
    pub data_dir: Option<std::path::PathBuf>,
    /// `--port`.
    pub port: Option<u16>,
    /// `--ops-port`.
    pub ops_port: Option<u16>,
    /// `--replicas`.
    pub replicas: Option<u16>,
    /// `--kitchen-replicas`.
    pub kitchen_replicas: Option<u16>,
    /// `false` = `--no-demo`.
    pub demo: Option<bool>,
    /// `false` = `--no-watch`.
    pub watch: Option<bool>,
    /// `--alert-rules` (added to the flag's files).
    #[serde(default)]
    pub alert_rules: Vec<std::path::PathBuf>,
    /// `--tls-cert` (with `tls_key`).
    pub tls_cert: Option<std::path::PathBuf>,
    /// `--tls-key` (with `tls_cert`).
    pub tls_key: Option<std::path::PathBuf>,
    /// `true` = `--tls-self-signed` (not with `tls_cert` and `tls_key`).
    pub tls_self_signed: Option<bool>,
    /// `[autoscale]`: the `--autoscale-*` flags.
    #[serde(default)]
    pub autoscale: AutoscaleSection,
    /// `[backup]`: continuous backups of the SQLite store.
    #[serde(default)]
    pub backup: crate::BackupSection,
    /// `[standby]`: the local streaming standby (`--local-standby`).
    #[serde(default)]
    pub standby: crate::standby::StandbySection,
    #[serde(default)]
    jobs: JobsSection,
}

/// `[autoscale]` of up.toml, as written; `max` turns autoscaling on.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AutoscaleSection {
    /// `--autoscale-max`.
    pub max: Option<usize>,
    /// `--autoscale-metric`: `in-flight` or `cpu`.
    pub metric: Option<String>,
    /// `--autoscale-target-in-flight`.
    pub target_in_flight: Option<f64>,
    /// `--autoscale-target-cpu`.
    pub target_cpu: Option<f64>,
    /// `--scale-down-window-secs`.
    pub scale_down_window_secs: Option<u64>,
    /// `--autoscale-interval-ms`.
    pub interval_ms: Option<u64>,
}

impl UpFile {
    /// Parses an up.toml text.
    pub fn parse(text: &str) -> Result<Self, JobsConfigError> {
        Ok(toml::from_str(text)?)
    }

    /// Reads and parses an up.toml file (errors do not repeat the path: the caller names it).
    pub fn load(path: &std::path::Path) -> Result<Self, JobsConfigError> {
        let text = std::fs::read_to_string(path).map_err(JobsConfigError::Read)?;
        Self::parse(&text)
    }

    /// The jobs of its `[jobs]` section (defaults for what it leaves out).
    pub fn jobs_plan(&self) -> Result<JobsPlan, JobsConfigError> {
        JobsPlan::from_section(self.jobs.clone())
    }
}

/// `[jobs]` as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct JobsSection {
    enabled: bool,
    admin_email: String,
    sample_interval_ms: u64,
    backup_keep: u16,
    #[serde(rename = "warm-caches")]
    warm_caches: Option<JobSection>,
    #[serde(rename = "daily-report")]
    daily_report: Option<JobSection>,
    backup: Option<JobSection>,
}

impl Default for JobsSection {
    fn default() -> Self {
        Self {
            enabled: true,
            admin_email: "admin@brigade.demo".into(),
            sample_interval_ms: 1000,
            backup_keep: 7,
            warm_caches: None,
            daily_report: None,
            backup: None,
        }
    }
}

/// One `[jobs.<name>]` table.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct JobSection {
    #[serde(default = "yes")]
    enabled: bool,
    #[serde(default)]
    schedule: Vec<String>,
    quiet: Option<QuietSection>,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct QuietSection {
    below_in_flight: f64,
    for_secs: u64,
}

/// What a job does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum JobKind {
    /// `POST /api/v1/admin/cache/warm` on every ready replica (each has its own in-process
    /// cache unless Redis is shared, so going through the balancer would warm only one).
    WarmCaches,
    /// `POST /api/v1/admin/reports/daily/refresh` through the balancer's public port.
    DailyReport,
    /// `brigade backup --data-dir <dir> --keep N`, a child process like `brigade demo-data`.
    Backup,
}

impl JobKind {
    /// The job's name in up.toml, events and the ops API.
    pub fn name(self) -> &'static str {
        match self {
            Self::WarmCaches => "warm-caches",
            Self::DailyReport => "daily-report",
            Self::Backup => "backup",
        }
    }

    /// Whether the job calls the API as an admin.
    pub fn needs_admin(self) -> bool {
        !matches!(self, Self::Backup)
    }
}

/// "When the replicas are this quiet for this long".
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Quiet {
    /// In-flight requests per primary replica must stay below this…
    pub below_in_flight: f64,
    /// …for this long.
    pub duration: Duration,
}

/// One job and when it runs.
#[derive(Debug, Clone)]
pub struct JobPlan {
    /// What it does.
    pub kind: JobKind,
    /// Cron expressions (UTC), as written, with their parsed form.
    pub schedule: Vec<(String, croner::Cron)>,
    /// The load condition, if any.
    pub quiet: Option<Quiet>,
}

impl JobPlan {
    fn new(
        kind: JobKind,
        schedule: &[&str],
        quiet: Option<Quiet>,
    ) -> Result<Self, JobsConfigError> {
        let schedule = schedule
            .iter()
            .enumerate()
            .map(|(i, text)| {
                parse_cron(text)
                    .map(|cron| ((*text).to_owned(), cron))
                    .map_err(|problem| JobsConfigError::Schedule {
                        key: format!("jobs.{}.schedule[{i}]", kind.name()),
                        problem,
                    })
            })
            .collect::<Result<_, _>>()?;
        Ok(Self {
            kind,
            schedule,
            quiet,
        })
    }

    /// The first cron time strictly after `after`, over every expression.
    pub fn next_after(
        &self,
        after: chrono::DateTime<chrono::Utc>,
    ) -> Option<chrono::DateTime<chrono::Utc>> {
        self.schedule
            .iter()
            .filter_map(|(_, cron)| cron.find_next_occurrence(&after, false).ok())
            .min()
    }
}

/// Parses a five-field cron expression (minute hour day-of-month month day-of-week).
fn parse_cron(text: &str) -> Result<croner::Cron, ScheduleProblem> {
    if text.split_whitespace().count() != 5 {
        return Err(ScheduleProblem::FieldCount(text.to_owned()));
    }
    croner::Cron::new(text)
        .parse()
        .map_err(|cause| ScheduleProblem::Cron {
            text: text.to_owned(),
            cause,
        })
}

/// Everything the scheduler needs: the jobs and how to reach the service as an admin.
#[derive(Debug, Clone)]
pub struct JobsPlan {
    /// Run the scheduler at all.
    pub enabled: bool,
    /// The jobs.
    pub jobs: Vec<JobPlan>,
    /// Account the API jobs log in as (admin role).
    pub admin_email: String,
    /// Its password; without one, the API jobs cannot run (an event says so at start).
    pub admin_password: Option<String>,
    /// How often load is read for quiet conditions (and due jobs are checked).
    pub sample_interval: Duration,
    /// Backups kept by the backup job.
    pub backup_keep: u16,
}

impl Default for JobsPlan {
    /// Warm caches every 5 minutes when quiet, refresh the daily report every 15 minutes and
    /// at 00:05 UTC (so yesterday is complete), back up at 03:00 UTC.
    fn default() -> Self {
        Self::from_section(JobsSection::default()).expect("the default jobs are valid")
    }
}

impl QuietSection {
    /// The quiet condition of the job at `key` (`jobs.<name>`), its values in range.
    fn check(self, key: &str) -> Result<Quiet, JobsConfigError> {
        let invalid = |field: &str, message: &str| JobsConfigError::Invalid {
            key: format!("{key}.quiet.{field}"),
            message: message.into(),
        };
        if !self.below_in_flight.is_finite() || self.below_in_flight <= 0.0 {
            return Err(invalid("below_in_flight", "must be positive"));
        }
        if self.for_secs > 86_400 {
            return Err(invalid("for_secs", "must be at most 86400"));
        }
        Ok(Quiet {
            below_in_flight: self.below_in_flight,
            duration: Duration::from_secs(self.for_secs),
        })
    }
}

impl JobsPlan {
    /// The plan of an `up.toml` text (only the `[jobs]` section exists); defaults for
    /// everything it leaves out.
    pub fn from_toml(text: &str) -> Result<Self, JobsConfigError> {
        UpFile::parse(text)?.jobs_plan()
    }

    /// The plan of an `up.toml` file (errors do not repeat the path: the caller names it).
    pub fn load(path: &std::path::Path) -> Result<Self, JobsConfigError> {
        let text = std::fs::read_to_string(path).map_err(JobsConfigError::Read)?;
        Self::from_toml(&text)
    }

    fn from_section(section: JobsSection) -> Result<Self, JobsConfigError> {
        let invalid = |key: &str, message: &str| JobsConfigError::Invalid {
            key: key.into(),
            message: message.into(),
        };
        if !(50..=60_000).contains(&section.sample_interval_ms) {
            return Err(invalid(
                "jobs.sample_interval_ms",
                "must be between 50 and 60000",
            ));
        }
        if !(1..=1000).contains(&section.backup_keep) {
            return Err(invalid("jobs.backup_keep", "must be between 1 and 1000"));
        }
        if section.admin_email.trim().is_empty() {
            return Err(invalid("jobs.admin_email", "must not be empty"));
        }
        let defaults = [
            (
                JobKind::WarmCaches,
                section.warm_caches,
                &["*/5 * * * *"][..],
                Some(Quiet {
                    below_in_flight: 2.0,
                    duration: Duration::from_secs(30),
                }),
            ),
            (
                JobKind::DailyReport,
                section.daily_report,
                &["*/15 * * * *", "5 0 * * *"][..],
                None,
            ),
            (JobKind::Backup, section.backup, &["0 3 * * *"][..], None),
        ];
        let mut jobs = Vec::new();
        for (kind, written, schedule, quiet) in defaults {
            let plan = match written {
                None => JobPlan::new(kind, schedule, quiet)?,
                Some(job) if !job.enabled => continue,
                Some(job) => {
                    let key = format!("jobs.{}", kind.name());
                    let quiet = job.quiet.map(|quiet| quiet.check(&key)).transpose()?;
                    if job.schedule.is_empty() && quiet.is_none() {
                        return Err(invalid(
                            &key,
                            "needs a schedule, a quiet condition or both (or enabled = false)",
                        ));
                    }
                    let schedule: Vec<&str> = job.schedule.iter().map(String::as_str).collect();
                    JobPlan::new(kind, &schedule, quiet)?
                }
            };
            jobs.push(plan);
        }
        Ok(Self {
            enabled: section.enabled,
            jobs,
            admin_email: section.admin_email,
            admin_password: None,
            sample_interval: Duration::from_millis(section.sample_interval_ms),
            backup_keep: section.backup_keep,
        })
    }

    /// Drops a job (e.g. the backup when the store is PostgreSQL).
    pub fn without(mut self, kind: JobKind) -> Self {
        self.jobs.retain(|job| job.kind != kind);
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_defaults_are_the_documented_ones() {
        let plan = JobsPlan::default();
        assert!(plan.enabled);
        let names: Vec<_> = plan.jobs.iter().map(|j| j.kind.name()).collect();
        assert_eq!(names, ["warm-caches", "daily-report", "backup"]);
        let at = |text: &str| {
            chrono::DateTime::parse_from_rfc3339(text)
                .unwrap()
                .with_timezone(&chrono::Utc)
        };
        let report = &plan.jobs[1];
        assert_eq!(
            report.next_after(at("2026-11-22T23:59:00Z")),
            Some(at("2026-11-23T00:00:00Z"))
        );
        assert_eq!(
            report.next_after(at("2026-11-23T00:00:00Z")),
            Some(at("2026-11-23T00:05:00Z")),
            "the after-midnight run"
        );
        assert_eq!(
            plan.jobs[2].next_after(at("2026-11-22T03:00:00Z")),
            Some(at("2026-11-23T03:00:00Z"))
        );
        assert_eq!(
            plan.jobs[0].quiet.unwrap().duration,
            Duration::from_secs(30)
        );
    }

    #[test]
    fn up_toml_overrides_and_errors_name_the_key() {
        let plan = JobsPlan::from_toml(
            "[jobs]\nbackup_keep = 3\n[jobs.warm-caches]\nquiet = { below_in_flight = 1.5, for_secs = 5 }\n\
             [jobs.backup]\nenabled = false\n",
        )
        .unwrap();
        assert_eq!(plan.backup_keep, 3);
        assert_eq!(plan.jobs.len(), 2, "the backup is off");
        assert!(
            plan.jobs[0].schedule.is_empty(),
            "a table states the job completely"
        );
        assert_eq!(plan.jobs[0].quiet.unwrap().below_in_flight, 1.5);

        for (text, key) in [
            (
                "[jobs.daily-report]\nschedule = [\"*/15 * * *\"]\n",
                "jobs.daily-report.schedule[0]",
            ),
            (
                "[jobs.daily-report]\nschedule = [\"0 3 * * *\", \"61 * * * *\"]\n",
                "jobs.daily-report.schedule[1]",
            ),
            ("[jobs.backup]\n", "jobs.backup"),
            (
                "[jobs.warm-caches]\nquiet = { below_in_flight = 0.0, for_secs = 5 }\n",
                "jobs.warm-caches.quiet.below_in_flight",
            ),
            ("[jobs]\nbackup_keep = 0\n", "jobs.backup_keep"),
            (
                "[jobs]\nsample_interval_ms = 1\n",
                "jobs.sample_interval_ms",
            ),
            ("[jobs]\nbackups = 3\n", "backups"),
            ("[jobs.vacuum]\nschedule = []\n", "vacuum"),
            ("[replicas]\n", "replicas"),
        ] {
            let error = JobsPlan::from_toml(text).unwrap_err().to_string();
            assert!(error.contains(key), "{text:?}: {error}");
        }
    }
}
