//! The OTLP/HTTP exporter: a batch of spans, written by [`super::otlp`], POSTed as
//! `application/x-protobuf` to the collector's `/v1/traces`.
//!
//! Configured by the standard variables, read once at start:
//!
//! | variable | meaning |
//! |---|---|
//! | `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` | the full URL spans are POSTed to |
//! | `OTEL_EXPORTER_OTLP_ENDPOINT` | a base URL; `/v1/traces` is appended (default `http://localhost:4318`) |
//! | `OTEL_EXPORTER_OTLP_HEADERS`, `OTEL_EXPORTER_OTLP_TRACES_HEADERS` | `key=value,…` sent with every export, values percent-decoded; the second wins per key |
//! | `OTEL_EXPORTER_OTLP_TIMEOUT`, `OTEL_EXPORTER_OTLP_TRACES_TIMEOUT` | milliseconds an export may take (default 10 000); the second wins |
//!
//! Only `http/protobuf` is spoken, whatever `OTEL_EXPORTER_OTLP_PROTOCOL` says.

use std::sync::OnceLock;
use std::time::Duration;

use http::{HeaderMap, HeaderName, HeaderValue};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::{OTelSdkError, OTelSdkResult};
use opentelemetry_sdk::trace::{SpanData, SpanExporter};

use super::TraceExportError;
use super::otlp::{EncodedResource, export_request};

/// The default base address of an OTLP/HTTP collector.
const DEFAULT_ENDPOINT: &str = "http://localhost:4318";
/// How long an export may take when no variable says.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// Where and how spans are sent.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Destination {
    url: reqwest::Url,
    headers: HeaderMap,
    timeout: Duration,
}

impl Destination {
    /// The destination the standard variables name (see the module docs).
    pub(super) fn from_env() -> Result<Self, TraceExportError> {
        Self::from_lookup(|name| std::env::var(name).ok().filter(|v| !v.trim().is_empty()))
    }

    /// Spans POSTed to `base`'s `/v1/traces`: the collector a process is attached to when no
    /// variable names one (so none of their headers are meant for it).
    pub(super) fn collector(base: &str) -> Result<Self, TraceExportError> {
        Ok(Self {
            url: traces_url("the collector's address", base)?,
            headers: HeaderMap::new(),
            timeout: DEFAULT_TIMEOUT,
        })
    }

    fn from_lookup(var: impl Fn(&str) -> Option<String>) -> Result<Self, TraceExportError> {
        const TRACES_ENDPOINT: &str = "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT";
        const ENDPOINT: &str = "OTEL_EXPORTER_OTLP_ENDPOINT";
        let url = match (var(TRACES_ENDPOINT), var(ENDPOINT)) {
            (Some(url), _) => parse_url(TRACES_ENDPOINT, url.trim())?,
            (None, Some(base)) => traces_url(ENDPOINT, &base)?,
            (None, None) => traces_url(ENDPOINT, DEFAULT_ENDPOINT)?,
        };
        let mut headers = HeaderMap::new();
        for name in [
            "OTEL_EXPORTER_OTLP_HEADERS",
            "OTEL_EXPORTER_OTLP_TRACES_HEADERS",
        ] {
            if let Some(list) = var(name) {
                for (key, value) in parse_headers(name, &list)? {
                    headers.insert(key, value);
                }
            }
        }
        let timeout = [
            "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT",
            "OTEL_EXPORTER_OTLP_TIMEOUT",
        ]
        .into_iter()
        .find_map(|name| var(name)?.trim().parse::<u64>().ok())
        .map_or(DEFAULT_TIMEOUT, Duration::from_millis);
        Ok(Self {
            url,
            headers,
            timeout,
        })
    }
}

/// `base` with `/v1/traces` appended, as the specification asks of the general endpoint.
fn traces_url(variable: &'static str, base: &str) -> Result<reqwest::Url, TraceExportError> {
    parse_url(
        variable,
        &format!("{}/v1/traces", base.trim().trim_end_matches('/')),
    )
}

fn parse_url(variable: &'static str, text: &str) -> Result<reqwest::Url, TraceExportError> {
    let url = reqwest::Url::parse(text).map_err(|error| TraceExportError::Exporter {
        variable,
        reason: format!("{text:?}: {error}"),
    })?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(TraceExportError::Exporter {
            variable,
            reason: format!("{text:?}: the scheme must be http or https"),
        });
    }
    Ok(url)
}

/// `key=value,key2=value2`, keys trimmed, values percent-decoded (the W3C Baggage format the
/// specification names).
fn parse_headers(
    variable: &'static str,
    list: &str,
) -> Result<Vec<(HeaderName, HeaderValue)>, TraceExportError> {
    let invalid = |reason: String| TraceExportError::Exporter { variable, reason };
    list.split(',')
        .filter(|pair| !pair.trim().is_empty())
        .map(|pair| {
            let (key, value) = pair
                .split_once('=')
                // The entry is not echoed: it may hold a credential.
                .ok_or_else(|| invalid("an entry is not key=value".to_owned()))?;
            let value = percent_encoding::percent_decode_str(value.trim()).decode_utf8_lossy();
            let name = HeaderName::from_bytes(key.trim().as_bytes())
                .map_err(|_| invalid(format!("{:?} is not a header name", key.trim())))?;
            let value = HeaderValue::from_str(&value)
                .map_err(|_| invalid(format!("the value of {name} is not a header value")))?;
            Ok((name, value))
        })
        .collect()
}

/// Sends batches to one [`Destination`]; the blocking HTTP client is built on first export, in
/// the export thread (it must not be built or dropped on an async runtime).
#[derive(Debug)]
pub(super) struct HttpExporter {
    destination: Destination,
    resource: EncodedResource,
    client: OnceLock<Result<reqwest::blocking::Client, String>>,
}

impl HttpExporter {
    pub(super) fn new(destination: Destination) -> Self {
        Self {
            destination,
            resource: EncodedResource::default(),
            client: OnceLock::new(),
        }
    }

    fn client(&self) -> Result<&reqwest::blocking::Client, OTelSdkError> {
        self.client
            .get_or_init(|| {
                reqwest::blocking::Client::builder()
                    .timeout(self.destination.timeout)
                    .build()
                    .map_err(|error| error.to_string())
            })
            .as_ref()
            .map_err(|error| OTelSdkError::InternalFailure(error.clone()))
    }

    /// Posts one batch; an answer other than 2xx is a failure.
    pub(super) fn send(&self, batch: &[SpanData]) -> OTelSdkResult {
        let body = export_request(batch, &self.resource);
        let answer = self
            .client()?
            .post(self.destination.url.clone())
            .headers(self.destination.headers.clone())
            .header(http::header::CONTENT_TYPE, "application/x-protobuf")
            .body(body)
            .send()
            .map_err(|error| OTelSdkError::InternalFailure(error.to_string()))?;
        if answer.status().is_success() {
            Ok(())
        } else {
            Err(OTelSdkError::InternalFailure(format!(
                "the collector at {} answered {}",
                self.destination.url,
                answer.status()
            )))
        }
    }
}

impl SpanExporter for HttpExporter {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        self.send(&batch)
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.resource = EncodedResource::new(resource);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn destination(vars: &[(&str, &str)]) -> Result<Destination, TraceExportError> {
        Destination::from_lookup(|name| {
            vars.iter()
                .find(|(key, _)| *key == name)
                .map(|(_, value)| (*value).to_owned())
        })
    }

    #[test]
    fn the_general_endpoint_gets_the_traces_path_and_the_traces_endpoint_is_used_as_is() {
        let url = |vars: &[(&str, &str)]| destination(vars).unwrap().url.to_string();
        assert_eq!(url(&[]), "http://localhost:4318/v1/traces");
        assert_eq!(
            url(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:9464/")]),
            "http://127.0.0.1:9464/v1/traces"
        );
        assert_eq!(
            url(&[
                ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://a:1"),
                ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "https://b:2/custom")
            ]),
            "https://b:2/custom"
        );
    }

    #[test]
    fn a_bad_endpoint_or_header_names_its_variable() {
        for (vars, named) in [
            (
                vec![("OTEL_EXPORTER_OTLP_ENDPOINT", "not a url")],
                "OTEL_EXPORTER_OTLP_ENDPOINT",
            ),
            (
                vec![("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "ftp://x/")],
                "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
            ),
            (
                vec![("OTEL_EXPORTER_OTLP_HEADERS", "no-equals-sign")],
                "OTEL_EXPORTER_OTLP_HEADERS",
            ),
        ] {
            let error = destination(&vars).unwrap_err().to_string();
            assert!(error.contains(named), "{error}");
            assert!(error.starts_with("invalid configuration"), "{error}");
        }
    }

    #[test]
    fn headers_are_percent_decoded_and_the_traces_ones_win() {
        let found = destination(&[
            (
                "OTEL_EXPORTER_OTLP_HEADERS",
                "authorization=Basic%20dXNlcg%3D%3D, x-tenant = a",
            ),
            ("OTEL_EXPORTER_OTLP_TRACES_HEADERS", "x-tenant=b"),
            ("OTEL_EXPORTER_OTLP_TIMEOUT", "2500"),
        ])
        .unwrap();
        assert_eq!(found.headers["authorization"], "Basic dXNlcg==");
        assert_eq!(found.headers["x-tenant"], "b");
        assert_eq!(found.timeout, Duration::from_millis(2500));
    }
}
