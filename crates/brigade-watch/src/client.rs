//! A small client of watch's HTTP API, for `brigade watch silence …`.

use serde_json::{Value, json};

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
}

async fn call(request: reqwest::RequestBuilder, url: &str) -> Result<Value, ClientError> {
    let response = request.send().await.map_err(|e| ClientError::Unreachable {
        url: url.to_owned(),
        message: crate::error_chain(&e.without_url()),
    })?;
    let status = response.status();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    if status.is_success() {
        Ok(body)
    } else {
        Err(ClientError::Rejected {
            status: status.as_u16(),
            detail: body["detail"].as_str().unwrap_or("no detail").to_owned(),
        })
    }
}

/// Creates a silence; returns its id.
pub async fn add_silence(
    base: &str,
    matchers: &[String],
    duration: &str,
    created_by: &str,
    comment: &str,
) -> Result<String, ClientError> {
    let url = format!("{}/api/v1/silences", base.trim_end_matches('/'));
    let body = json!({ "matchers": matchers, "duration": duration, "createdBy": created_by, "comment": comment });
    let answer = call(reqwest::Client::new().post(&url).json(&body), &url).await?;
    Ok(answer["silenceID"].as_str().unwrap_or_default().to_owned())
}

/// Lists silences.
pub async fn list_silences(base: &str) -> Result<Vec<Value>, ClientError> {
    let url = format!("{}/api/v1/silences", base.trim_end_matches('/'));
    let answer = call(reqwest::Client::new().get(&url), &url).await?;
    Ok(answer["silences"].as_array().cloned().unwrap_or_default())
}

/// Expires a silence.
pub async fn expire_silence(base: &str, id: &str) -> Result<(), ClientError> {
    let url = format!("{}/api/v1/silences/{id}", base.trim_end_matches('/'));
    call(reqwest::Client::new().delete(&url), &url)
        .await
        .map(|_| ())
}
