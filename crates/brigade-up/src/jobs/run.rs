//! Running one job: the admin session the API jobs call the service with, and what each job
//! does. A failure is a [`JobError`], worded once for the job's run record and event.

use std::path::PathBuf;
use std::time::Duration;

use brigade_api::routes::accounts::Session;
use brigade_api::routes::reports::{CacheWarmed, DailyReport};
use brigade_core::Problem;

use super::JobKind;
use crate::public::{PublicEndpoint, PublicError};

/// Why a job run failed; the text is what the run record and the event say.
#[derive(Debug, thiserror::Error)]
pub(crate) enum JobError {
    /// Neither a configured nor a recorded password for the admin account.
    #[error(
        "no password for {email}: set BRIGADE_JOBS_ADMIN_PASSWORD (or BRIGADE_DEMO_PASSWORD), \
         or record it with `brigade demo-data --reset-passwords`"
    )]
    NoPassword { email: String },
    /// The log-in request got no answer.
    #[error("log-in as {email}: {source}")]
    LogIn {
        email: String,
        source: reqwest::Error,
    },
    /// The service refused the log-in.
    #[error("log-in as {email} refused: HTTP {status}")]
    LogInRefused { email: String, status: u16 },
    /// The log-in's answer is not a session.
    #[error("log-in answer: {0}")]
    LogInAnswer(reqwest::Error),
    /// An admin call got no answer.
    #[error("POST {url}: {source}")]
    Request { url: String, source: reqwest::Error },
    /// An admin call was refused; `detail` is the problem's.
    #[error("POST {url}: HTTP {status} {detail}")]
    Refused {
        url: String,
        status: u16,
        detail: String,
    },
    /// An admin call's answer is not the expected body.
    #[error("POST {url}: unexpected answer: {source}")]
    Answer { url: String, source: reqwest::Error },
    /// A fresh token was refused too.
    #[error("POST {url}: the admin token was refused twice")]
    TokenRefused { url: String },
    /// warm-caches found no ready replica.
    #[error("no ready replica to warm")]
    NoReplica,
    /// Some replicas could not be warmed; `why` lists each one's error.
    #[error("{failed} of {replicas} replica(s) not warmed: {why}")]
    NotWarmed {
        failed: usize,
        replicas: usize,
        why: String,
    },
    /// `brigade backup` ran past its time limit.
    #[error("brigade backup took longer than 30 minutes")]
    BackupTimedOut,
    /// `brigade backup` could not be started.
    #[error("cannot run {}: {source}", binary.display())]
    Spawn {
        binary: PathBuf,
        source: std::io::Error,
    },
    /// `brigade backup` failed; `last_line` is the last line it wrote to stderr.
    #[error("brigade backup failed ({status}): {last_line}")]
    BackupFailed {
        status: std::process::ExitStatus,
        last_line: String,
    },
}

/// What a job run needs to reach the service (the public port is the admin session's).
pub(crate) struct JobTarget {
    /// Ready replicas' addresses (warm-caches calls each).
    pub replicas: Vec<String>,
    /// The `brigade` binary (the backup job runs `brigade backup`).
    pub binary: PathBuf,
    /// `--data-dir` of the store.
    pub data_dir: PathBuf,
}

/// Logs in as the jobs' admin through the public port and keeps the token until it stops
/// working.
pub(crate) struct AdminSession {
    /// Trusts the public port's certificate when it speaks TLS.
    http: reqwest::Client,
    public: PublicEndpoint,
    email: String,
    password: Option<String>,
    /// Where `demo-accounts.json` is: read at each log-in when no password was given, so a
    /// `brigade demo-data --reset-passwords` takes effect without a restart.
    data_dir: PathBuf,
    token: tokio::sync::Mutex<Option<String>>,
}

impl AdminSession {
    pub(crate) fn new(
        public: PublicEndpoint,
        email: String,
        password: Option<String>,
        data_dir: PathBuf,
    ) -> Result<Self, PublicError> {
        Ok(Self {
            http: public.client(reqwest::Client::builder().timeout(Duration::from_secs(60)))?,
            public,
            email,
            password,
            data_dir,
            token: tokio::sync::Mutex::new(None),
        })
    }

    /// Whether a password is known: given, or recorded by `brigade demo-data`.
    pub(crate) fn has_password(&self) -> bool {
        self.password().is_some()
    }

    fn password(&self) -> Option<String> {
        self.password
            .clone()
            .or_else(|| crate::demo_accounts::password_of(&self.data_dir, &self.email))
    }

    async fn token(&self) -> Result<String, JobError> {
        let mut token = self.token.lock().await;
        if let Some(token) = token.as_ref() {
            return Ok(token.clone());
        }
        let Some(password) = self.password() else {
            return Err(JobError::NoPassword {
                email: self.email.clone(),
            });
        };
        let response = self
            .http
            .post(self.public.url("/api/v1/sessions"))
            .json(&brigade_domain::Credentials {
                email: self.email.clone(),
                password: password.to_owned(),
            })
            .send()
            .await
            .map_err(|source| JobError::LogIn {
                email: self.email.clone(),
                source,
            })?;
        if !response.status().is_success() {
            return Err(JobError::LogInRefused {
                email: self.email.clone(),
                status: response.status().as_u16(),
            });
        }
        let session: Session = response.json().await.map_err(JobError::LogInAnswer)?;
        let fresh = session.token;
        *token = Some(fresh.clone());
        Ok(fresh)
    }

    /// `POST url` as the admin; a 401 (token expired or revoked) logs in once more.
    async fn post<T: serde::de::DeserializeOwned>(&self, url: &str) -> Result<T, JobError> {
        for attempt in 0..2 {
            let token = self.token().await?;
            let response = self
                .http
                .post(url)
                .bearer_auth(&token)
                .send()
                .await
                .map_err(|source| JobError::Request {
                    url: url.to_owned(),
                    source,
                })?;
            let status = response.status();
            if status == reqwest::StatusCode::UNAUTHORIZED && attempt == 0 {
                *self.token.lock().await = None;
                continue;
            }
            if !status.is_success() {
                let problem: Option<Problem> = response.json().await.ok();
                let detail = problem.and_then(|p| p.detail).unwrap_or_default();
                return Err(JobError::Refused {
                    url: url.to_owned(),
                    status: status.as_u16(),
                    detail,
                });
            }
            return response.json().await.map_err(|source| JobError::Answer {
                url: url.to_owned(),
                source,
            });
        }
        Err(JobError::TokenRefused {
            url: url.to_owned(),
        })
    }
}

/// Runs one job once; `Ok` carries a one-line summary, `Err` why it failed.
pub(crate) async fn execute(
    kind: JobKind,
    target: &JobTarget,
    admin: &AdminSession,
    backup_keep: u16,
) -> Result<String, JobError> {
    match kind {
        JobKind::WarmCaches => warm_caches(target, admin).await,
        JobKind::DailyReport => {
            let url = admin.public.url("/api/v1/admin/reports/daily/refresh");
            let report: DailyReport = admin.post(&url).await?;
            Ok(format!(
                "refreshed {} to {}: {} row(s)",
                report.from,
                report.to,
                report.items.len()
            ))
        }
        JobKind::Backup => backup(target, backup_keep).await,
    }
}

/// Warms every ready replica's cache; fails when any replica could not be warmed.
async fn warm_caches(target: &JobTarget, admin: &AdminSession) -> Result<String, JobError> {
    if target.replicas.is_empty() {
        return Err(JobError::NoReplica);
    }
    let mut warmed = Vec::new();
    let mut failed = Vec::new();
    for replica in &target.replicas {
        let url = format!("http://{replica}/api/v1/admin/cache/warm");
        match admin.post::<CacheWarmed>(&url).await {
            Ok(body) => warmed.push(format!(
                "{replica}: {} menu(s), {} open shop(s)",
                body.menus, body.open_shops
            )),
            Err(error) => failed.push(error.to_string()),
        }
    }
    if failed.is_empty() {
        Ok(format!(
            "warmed {} replica(s) ({})",
            warmed.len(),
            warmed.join("; ")
        ))
    } else {
        Err(JobError::NotWarmed {
            failed: failed.len(),
            replicas: target.replicas.len(),
            why: failed.join("; "),
        })
    }
}

/// `brigade backup` as a child process: the same code as the command, and a crash in it
/// cannot take the supervisor down.
async fn backup(target: &JobTarget, keep: u16) -> Result<String, JobError> {
    let run = tokio::process::Command::new(&target.binary)
        .arg("backup")
        .arg("--log-format")
        .arg("json")
        .arg("--keep")
        .arg(keep.to_string())
        .arg("--data-dir")
        .arg(&target.data_dir)
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(Duration::from_secs(1800), run)
        .await
        .map_err(|_| JobError::BackupTimedOut)?
        .map_err(|source| JobError::Spawn {
            binary: target.binary.clone(),
            source,
        })?;
    let last_line = |bytes: &[u8]| {
        String::from_utf8_lossy(bytes)
            .lines()
            .rfind(|line| !line.trim_start().starts_with('{') && !line.trim().is_empty())
            .unwrap_or_default()
            .trim()
            .to_owned()
    };
    if output.status.success() {
        Ok(last_line(&output.stdout))
    } else {
        Err(JobError::BackupFailed {
            status: output.status,
            last_line: last_line(&output.stderr),
        })
    }
}
