//! The Stripe provider: PaymentIntents with manual capture.
//!
//! Authorise = create a PaymentIntent with `capture_method=manual&confirm=true` (the amount is
//! held, status `requires_capture`); capture and void = `/capture` and `/cancel` on it. Every
//! POST carries an `Idempotency-Key` derived from the payment id and the operation, so a call
//! that failed without an answer (connection error, per-attempt timeout, 409, 429, 5xx) is retried
//! up to `max_retries` times without ever charging twice. Card errors (HTTP 402) are declines;
//! any other 4xx means brigade sent something Stripe does not accept: it is logged as an error
//! and reported as [`PaymentError::Unavailable`].

use std::time::Duration;

use brigade_core::config::StripeSettings;
use reqwest::{Method, StatusCode};
use serde_json::Value;

use crate::ConfigError;
use crate::{Authorization, Charge, PaymentError, PaymentProvider};

/// The payment method charged: Stripe's test card. brigade has no card collection yet, so
/// the Stripe provider is for test mode and for servers speaking the same API.
pub const PAYMENT_METHOD: &str = "pm_card_visa";

/// First retry delay; doubled on each further retry.
const BACKOFF_START: Duration = Duration::from_millis(50);
/// Longest delay between two attempts.
const BACKOFF_MAX: Duration = Duration::from_secs(1);

/// Stripe's PaymentIntents API at a configurable base URL.
pub struct StripeProvider {
    client: reqwest::Client,
    base_url: String,
    secret_key: String,
    request_timeout: Duration,
    max_retries: u32,
}

impl std::fmt::Debug for StripeProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StripeProvider")
            .field("base_url", &self.base_url)
            .field("secret_key", &"***")
            .field("request_timeout", &self.request_timeout)
            .field("max_retries", &self.max_retries)
            .finish()
    }
}

/// A definite answer from Stripe (anything worth retrying never gets here).
#[derive(Debug)]
enum Reply {
    /// 2xx with its JSON body.
    Ok(Value),
    /// HTTP 402 or `type: card_error`: the card was refused; the decline code (or code).
    Card(String),
    /// Another 4xx: the request was wrong or the object is in the wrong state.
    Rejected {
        status: StatusCode,
        code: Option<String>,
        message: String,
    },
}

impl StripeProvider {
    /// A client for `settings`; fails when the key or URL is unusable.
    pub fn new(settings: &StripeSettings) -> Result<Self, ConfigError> {
        if settings.secret_key.is_empty() {
            return Err(ConfigError::Invalid {
                key: "payments.stripe.secret_key",
                message: "is required when payments.provider is stripe".to_owned(),
            });
        }
        let base_url = settings.base_url.trim_end_matches('/').to_owned();
        if !(base_url.starts_with("http://") || base_url.starts_with("https://")) {
            return Err(ConfigError::Invalid {
                key: "payments.stripe.base_url",
                message: "must start with http:// or https://".to_owned(),
            });
        }
        let request_timeout = Duration::from_millis(settings.request_timeout_ms.max(1));
        let client = reqwest::Client::builder()
            .connect_timeout(request_timeout)
            .build()
            .map_err(|e| ConfigError::Invalid {
                key: "payments.stripe",
                message: format!("cannot build the HTTP client: {e}"),
            })?;
        Ok(Self {
            client,
            base_url,
            secret_key: settings.secret_key.clone(),
            request_timeout,
            max_retries: settings.max_retries,
        })
    }

    /// One API call with retries of everything that got no definite answer.
    async fn call(
        &self,
        method: Method,
        path: &str,
        idempotency_key: Option<&str>,
        form: &[(&str, String)],
    ) -> Result<Reply, PaymentError> {
        let url = format!("{}{path}", self.base_url);
        let mut attempt = 0;
        loop {
            let mut request = self
                .client
                .request(method.clone(), &url)
                .bearer_auth(&self.secret_key)
                .timeout(self.request_timeout);
            if let Some(key) = idempotency_key {
                request = request.header("Idempotency-Key", key);
            }
            if method == Method::POST {
                request = request.form(form);
            }
            let failure = match self.attempt(request).await {
                Ok(reply) => return Ok(reply),
                Err(failure) => failure,
            };
            if attempt >= self.max_retries {
                return Err(failure);
            }
            let delay = BACKOFF_START
                .saturating_mul(1 << attempt.min(16))
                .min(BACKOFF_MAX);
            tracing::debug!(%method, path, attempt, reason = %failure, ?delay, "retrying Stripe call");
            tokio::time::sleep(delay).await;
            attempt += 1;
        }
    }

    /// One HTTP attempt. `Err` is always worth retrying.
    async fn attempt(&self, request: reqwest::RequestBuilder) -> Result<Reply, PaymentError> {
        let response = request.send().await.map_err(transport_error)?;
        let status = response.status();
        let body = response.bytes().await.map_err(transport_error)?;
        // 409: another request with the same idempotency key is still running at Stripe (a
        // concurrent retry); its answer will be replayed to the next attempt.
        if status == StatusCode::TOO_MANY_REQUESTS
            || status == StatusCode::CONFLICT
            || status.is_server_error()
        {
            return Err(PaymentError::Unavailable {
                reason: format!("Stripe answered HTTP {}", status.as_u16()),
            });
        }
        let json: Value = serde_json::from_slice(&body).map_err(|e| PaymentError::Unavailable {
            reason: format!(
                "Stripe answered HTTP {} with a body that is not JSON: {e}",
                status.as_u16()
            ),
        })?;
        if status.is_success() {
            return Ok(Reply::Ok(json));
        }
        let error = &json["error"];
        let field = |name: &str| error[name].as_str().map(str::to_owned);
        if status == StatusCode::PAYMENT_REQUIRED || field("type").as_deref() == Some("card_error")
        {
            let reason = field("decline_code")
                .or_else(|| field("code"))
                .unwrap_or_else(|| "card_declined".to_owned());
            return Ok(Reply::Card(reason));
        }
        Ok(Reply::Rejected {
            status,
            code: field("code"),
            message: field("message").unwrap_or_default(),
        })
    }

    /// A 4xx that is not a card error: brigade sent something wrong. Logged loudly (it needs
    /// a fix, not a retry) and reported as unavailable.
    fn rejected(
        &self,
        charge: &Charge,
        operation: &str,
        status: StatusCode,
        code: Option<String>,
        message: String,
    ) -> PaymentError {
        let code = code.unwrap_or_default();
        tracing::error!(
            order_id = %charge.order_id,
            payment_id = %charge.payment_id,
            operation,
            status = status.as_u16(),
            code,
            message,
            "Stripe rejected a request brigade sent"
        );
        PaymentError::Unavailable {
            reason: format!(
                "Stripe rejected {operation}: HTTP {} {code}",
                status.as_u16()
            ),
        }
    }

    async fn create(&self, charge: &Charge) -> Result<Authorization, PaymentError> {
        let form = [
            ("amount", charge.amount_minor.to_string()),
            ("currency", charge.currency.to_ascii_lowercase()),
            ("capture_method", "manual".to_owned()),
            ("confirm", "true".to_owned()),
            ("payment_method", PAYMENT_METHOD.to_owned()),
            ("metadata[order_id]", charge.order_id.to_string()),
            ("metadata[payment_id]", charge.payment_id.to_string()),
        ];
        let key = charge.idempotency_key("authorize");
        match self
            .call(Method::POST, "/v1/payment_intents", Some(&key), &form)
            .await?
        {
            Reply::Ok(intent) => {
                let reference = intent_id(&intent)?;
                match intent["status"].as_str().unwrap_or_default() {
                    "requires_capture" | "succeeded" => Ok(Authorization::Approved { reference }),
                    // E.g. `requires_action` (3-D Secure), which brigade cannot complete.
                    other => Ok(Authorization::Declined {
                        reason: format!("payment_intent_{other}"),
                    }),
                }
            }
            Reply::Card(reason) => Ok(Authorization::Declined { reason }),
            Reply::Rejected {
                status,
                code,
                message,
            } => Err(self.rejected(charge, "authorize", status, code, message)),
        }
    }

    async fn retrieve_status(&self, charge: &Charge, id: &str) -> Result<String, PaymentError> {
        match self
            .call(Method::GET, &format!("/v1/payment_intents/{id}"), None, &[])
            .await?
        {
            Reply::Ok(intent) => Ok(intent["status"].as_str().unwrap_or_default().to_owned()),
            Reply::Card(reason) => Err(PaymentError::Unavailable { reason }),
            Reply::Rejected {
                status,
                code,
                message,
            } => Err(self.rejected(charge, "retrieve", status, code, message)),
        }
    }

    /// POSTs `/v1/payment_intents/{id}/{action}`; done when the intent ends in `done_status`
    /// (also when it already was: the idempotency key may have expired, so an
    /// "unexpected state" answer is checked against the intent's current status).
    async fn transition(
        &self,
        charge: &Charge,
        id: &str,
        action: &str,
        operation: &str,
        form: &[(&str, String)],
        done_status: &str,
    ) -> Result<(), PaymentError> {
        check_id(id)?;
        let key = charge.idempotency_key(operation);
        let path = format!("/v1/payment_intents/{id}/{action}");
        match self.call(Method::POST, &path, Some(&key), form).await? {
            Reply::Ok(intent) => match intent["status"].as_str().unwrap_or_default() {
                status if status == done_status => Ok(()),
                status => Err(PaymentError::Unavailable {
                    reason: format!("{operation} left the payment intent in status {status}"),
                }),
            },
            Reply::Rejected { code, .. }
                if code.as_deref() == Some("payment_intent_unexpected_state") =>
            {
                match self.retrieve_status(charge, id).await? {
                    status if status == done_status => Ok(()),
                    status => Err(PaymentError::Unavailable {
                        reason: format!("cannot {operation} a payment intent in status {status}"),
                    }),
                }
            }
            Reply::Card(reason) => Err(PaymentError::Unavailable {
                reason: format!("{operation} refused: {reason}"),
            }),
            Reply::Rejected {
                status,
                code,
                message,
            } => Err(self.rejected(charge, operation, status, code, message)),
        }
    }
}

fn transport_error(error: reqwest::Error) -> PaymentError {
    if error.is_timeout() {
        PaymentError::Timeout
    } else {
        PaymentError::Unavailable {
            reason: format!("request to Stripe failed: {}", error.without_url()),
        }
    }
}

fn intent_id(intent: &Value) -> Result<String, PaymentError> {
    let id = intent["id"].as_str().unwrap_or_default();
    check_id(id)?;
    Ok(id.to_owned())
}

/// PaymentIntent ids go into URL paths: accept only what Stripe issues (`pi_` + alphanumerics).
fn check_id(id: &str) -> Result<(), PaymentError> {
    let ok = id.len() > 3
        && id.len() <= 255
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(PaymentError::Unavailable {
            reason: format!("not a payment intent id: {id:?}"),
        })
    }
}

#[async_trait::async_trait]
impl PaymentProvider for StripeProvider {
    fn name(&self) -> &'static str {
        "stripe"
    }

    async fn authorize(&self, charge: &Charge) -> Result<Authorization, PaymentError> {
        self.create(charge).await
    }

    async fn capture(&self, charge: &Charge, reference: &str) -> Result<(), PaymentError> {
        self.transition(charge, reference, "capture", "capture", &[], "succeeded")
            .await
    }

    async fn void(&self, charge: &Charge, reference: Option<&str>) -> Result<(), PaymentError> {
        let reference = match reference {
            Some(reference) => reference.to_owned(),
            // The authorise call never answered: repeating it with the same idempotency key
            // returns the intent it created, if any (or creates it now); either way cancelling
            // it leaves nothing held. A decline means nothing was held.
            None => match self.create(charge).await? {
                Authorization::Approved { reference } => reference,
                Authorization::Declined { .. } => return Ok(()),
            },
        };
        let form = [("cancellation_reason", "abandoned".to_owned())];
        self.transition(charge, &reference, "cancel", "void", &form, "canceled")
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_that_could_change_the_url_are_refused() {
        assert!(check_id("pi_3MtwBwLkdIwHu7ix28a3tqPa").is_ok());
        for bad in ["", "pi_", "pi_1/../../v1/charges", "pi_1?x=1", "pi 1"] {
            assert!(check_id(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn settings_without_a_key_or_with_a_bad_url_are_refused() {
        let mut settings = StripeSettings::default();
        let err = StripeProvider::new(&settings).unwrap_err();
        assert!(
            err.to_string().starts_with("payments.stripe.secret_key"),
            "{err}"
        );
        settings.secret_key = "sk_test_x".to_owned();
        settings.base_url = "ftp://example.com".to_owned();
        let err = StripeProvider::new(&settings).unwrap_err();
        assert!(
            err.to_string().starts_with("payments.stripe.base_url"),
            "{err}"
        );
    }

    #[test]
    fn debug_never_shows_the_secret_key() {
        let settings = StripeSettings {
            secret_key: "sk_test_very_secret".to_owned(),
            ..StripeSettings::default()
        };
        let provider = StripeProvider::new(&settings).unwrap();
        assert!(!format!("{provider:?}").contains("very_secret"));
    }
}
