//! A small client of watch's HTTP API, for `brigade watch silence …`: it reads the answers into
//! the types the server writes them from ([`crate::contract`]).

use brigade_core::Problem;
use serde::de::DeserializeOwned;

use crate::contract::{NewSilence, SilenceCreated, SilenceView, SilencesAnswer};

/// What went wrong talking to a running watch.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// No answer.
    #[error("cannot reach brigade watch at {url}: {message}")]
    Unreachable {
        /// The API URL.
        url: String,
        /// The cause.
        message: String,
    },
    /// An error answer (its problem detail).
    #[error("brigade watch answered {status}: {detail}")]
    Rejected {
        /// HTTP status.
        status: u16,
        /// The problem's detail.
        detail: String,
    },
    /// A success answer that is not the contract's shape (a different version of watch).
    #[error("brigade watch at {url} answered in an unexpected shape: {message}")]
    Unexpected {
        /// The API URL.
        url: String,
        /// The parser's reason.
        message: String,
    },
}

/// Sends `request`; the answer as `T`, or the problem's detail when refused.
async fn call<T: DeserializeOwned>(
    request: reqwest::RequestBuilder,
    url: &str,
) -> Result<T, ClientError> {
    let response = request.send().await.map_err(|e| ClientError::Unreachable {
        url: url.to_owned(),
        message: crate::error_chain(&e.without_url()),
    })?;
    let status = response.status();
    let body = response.bytes().await.unwrap_or_default();
    if !status.is_success() {
        let problem: Option<Problem> = serde_json::from_slice(&body).ok();
        return Err(ClientError::Rejected {
            status: status.as_u16(),
            detail: problem
                .and_then(|p| p.detail)
                .unwrap_or_else(|| "no detail".to_owned()),
        });
    }
    serde_json::from_slice(&body).map_err(|e| ClientError::Unexpected {
        url: url.to_owned(),
        message: e.to_string(),
    })
}

/// Creates a silence; returns its id.
pub async fn add_silence(base: &str, silence: &NewSilence) -> Result<String, ClientError> {
    let url = format!("{}/api/v1/silences", base.trim_end_matches('/'));
    let created: SilenceCreated =
        call(reqwest::Client::new().post(&url).json(silence), &url).await?;
    Ok(created.silence_id)
}

/// Lists silences.
pub async fn list_silences(base: &str) -> Result<Vec<SilenceView>, ClientError> {
    let url = format!("{}/api/v1/silences", base.trim_end_matches('/'));
    let answer: SilencesAnswer = call(reqwest::Client::new().get(&url), &url).await?;
    Ok(answer.silences)
}

/// Expires a silence; returns it as it now is.
pub async fn expire_silence(base: &str, id: &str) -> Result<SilenceView, ClientError> {
    let url = format!("{}/api/v1/silences/{id}", base.trim_end_matches('/'));
    call(reqwest::Client::new().delete(&url), &url).await
}
