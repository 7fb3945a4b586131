//! Sending notifications: HTTP receivers with reqwest, e-mail with lettre; retries with
//! exponential backoff, every attempt counted in
//! `brigade_watch_notifications_total{receiver,integration,outcome}` (outcome `success`,
//! `retry` or `failure`). Webhook URLs, routing keys and passwords are secrets: errors are
//! logged without them.

use std::collections::HashMap;
use std::time::Duration;
use tracing::Instrument as _;

use lettre::message::header::ContentType;
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use serde_json::Value;

use super::{Notification, payload};
use crate::config::{DeliveryConfig, EmailConfig, ReceiverConfig};

/// Counter of delivery attempts.
pub const NOTIFICATIONS_TOTAL: &str = "brigade_watch_notifications_total";

/// Why one attempt failed, and whether trying again can help.
#[derive(Debug)]
struct AttemptError {
    message: String,
    retryable: bool,
}

/// Sends notifications to the configured receivers.
#[derive(Debug, Clone)]
pub struct Deliverer {
    http: reqwest::Client,
    receivers: HashMap<String, ReceiverConfig>,
    external_url: String,
    timeout: Duration,
    initial_backoff: Duration,
    max_backoff: Duration,
    max_attempts: u32,
}

impl Deliverer {
    /// A deliverer for these receivers.
    pub fn new(
        receivers: &[ReceiverConfig],
        delivery: &DeliveryConfig,
        external_url: &str,
    ) -> Result<Self, reqwest::Error> {
        let timeout = delivery.timeout.get();
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .user_agent(concat!("brigade-watch/", env!("CARGO_PKG_VERSION")))
            .build()?;
        metrics::describe_counter!(
            NOTIFICATIONS_TOTAL,
            "Notification delivery attempts by receiver, integration and outcome."
        );
        Ok(Self {
            http,
            receivers: receivers
                .iter()
                .map(|r| (r.name.clone(), r.clone()))
                .collect(),
            external_url: external_url.to_owned(),
            timeout,
            initial_backoff: delivery.initial_backoff.get(),
            max_backoff: delivery.max_backoff.get(),
            max_attempts: delivery.max_attempts.max(1),
        })
    }

    /// Sends a notification to every integration of its receiver, each retried on its own;
    /// true when all of them succeeded.
    pub async fn deliver(&self, n: &Notification) -> bool {
        let Some(receiver) = self.receivers.get(&n.receiver) else {
            // A route to an unnamed receiver (no receivers configured): nothing to send.
            return true;
        };
        let mut jobs = Vec::new();
        for hook in &receiver.webhook_configs {
            let body = payload::webhook(n, &self.external_url);
            jobs.push(self.with_retries(&receiver.name, "webhook", move |this| {
                let body = body.clone();
                let url = hook.url.clone();
                async move { this.post(&url, &body).await }
            }));
        }
        for slack in &receiver.slack_configs {
            let body = payload::slack(n, slack.channel.as_deref());
            jobs.push(self.with_retries(&receiver.name, "slack", move |this| {
                let body = body.clone();
                let url = slack.api_url.clone();
                async move { this.post(&url, &body).await }
            }));
        }
        for pd in &receiver.pagerduty_configs {
            let body = payload::pagerduty(n, &pd.routing_key, &self.external_url);
            jobs.push(self.with_retries(&receiver.name, "pagerduty", move |this| {
                let body = body.clone();
                let url = pd.url.clone();
                async move { this.post(&url, &body).await }
            }));
        }
        for email in &receiver.email_configs {
            let subject = payload::title(n);
            let body = payload::email_body(n, &self.external_url);
            jobs.push(self.with_retries(&receiver.name, "email", move |this| {
                let subject = subject.clone();
                let body = body.clone();
                async move { this.send_email(email, &subject, &body).await }
            }));
        }
        let mut all = true;
        for job in jobs {
            all &= job.await;
        }
        all
    }

    fn with_retries<'a, F, Fut>(
        &'a self,
        receiver: &'a str,
        integration: &'static str,
        attempt: F,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = bool> + Send + 'a>>
    where
        F: Fn(&'a Self) -> Fut + Send + 'a,
        Fut: std::future::Future<Output = Result<(), AttemptError>> + Send + 'a,
    {
        Box::pin(async move {
            let mut backoff = self.initial_backoff;
            for number in 1..=self.max_attempts {
                let span = crate::work_spans::delivery_attempt(integration, number);
                let outcome = attempt(self).instrument(span.clone()).await;
                if let Err(error) = &outcome {
                    brigade_core::traces::mark_failed(&span, &error.message);
                }
                let label = match &outcome {
                    Ok(()) => "success",
                    Err(e) if e.retryable && number < self.max_attempts => "retry",
                    Err(_) => "failure",
                };
                metrics::counter!(NOTIFICATIONS_TOTAL, "receiver" => receiver.to_owned(), "integration" => integration, "outcome" => label)
                    .increment(1);
                match outcome {
                    Ok(()) => return true,
                    Err(error) if label == "retry" => {
                        tracing::warn!(
                            receiver,
                            integration,
                            attempt = number,
                            error = error.message,
                            "notification failed, retrying"
                        );
                        tokio::time::sleep(backoff).await;
                        backoff = (backoff * 2).min(self.max_backoff);
                    }
                    Err(error) => {
                        tracing::error!(
                            receiver,
                            integration,
                            attempt = number,
                            error = error.message,
                            "notification failed, giving up"
                        );
                        return false;
                    }
                }
            }
            false
        })
    }

    async fn post(&self, url: &str, body: &Value) -> Result<(), AttemptError> {
        let response = self
            .http
            .post(url)
            .json(body)
            .send()
            .await
            .map_err(|e| AttemptError {
                message: crate::error_chain(&e.without_url()),
                retryable: true,
            })?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        // Like Alertmanager: 4xx other than 429 will not get better by retrying.
        Err(AttemptError {
            message: format!("receiver answered {status}"),
            retryable: status.is_server_error() || status.as_u16() == 429,
        })
    }

    async fn send_email(
        &self,
        config: &EmailConfig,
        subject: &str,
        body: &str,
    ) -> Result<(), AttemptError> {
        let permanent = |message: String| AttemptError {
            message,
            retryable: false,
        };
        let message = Message::builder()
            .from(
                config
                    .from
                    .parse()
                    .map_err(|e| permanent(format!("from: {e}")))?,
            )
            .to(config
                .to
                .parse()
                .map_err(|e| permanent(format!("to: {e}")))?)
            .subject(subject)
            .header(ContentType::TEXT_PLAIN)
            .body(body.to_owned())
            .map_err(|e| permanent(e.to_string()))?;
        let (host, port) = config
            .smarthost
            .rsplit_once(':')
            .and_then(|(h, p)| p.parse::<u16>().ok().map(|p| (h.to_owned(), p)))
            .ok_or_else(|| permanent("smarthost must be host:port".into()))?;
        let mut builder = if config.require_tls {
            AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(&host)
                .map_err(|e| permanent(e.to_string()))?
        } else {
            AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&host)
        }
        .port(port)
        .timeout(Some(self.timeout));
        if let (Some(user), Some(password)) = (&config.auth_username, &config.auth_password) {
            builder = builder.credentials(Credentials::new(user.clone(), password.clone()));
        }
        builder
            .build()
            .send(message)
            .await
            .map(|_| ())
            .map_err(|e| AttemptError {
                message: e.to_string(),
                retryable: !e.is_permanent(),
            })
    }
}
