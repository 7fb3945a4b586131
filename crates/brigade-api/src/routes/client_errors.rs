//! `POST /api/v1/client-errors`: errors of brigade's pages, reported by their script
//! (`web/common.js`: uncaught errors, unhandled rejections, failed API calls).
//!
//! Each report becomes one error event in this replica's JSON log
//! ([`brigade_core::error_event`]), which the supervisor groups with the server's own errors.
//! What a report may carry is kept to what grouping needs, so no personal data rides along:
//! the kind, the message and top frames (URLs in them lose their origin, query and fragment),
//! the page's path (likewise), and the trace id of a failed API call. The client's address is
//! used for the rate limit only and never logged; the release is this binary's version.

use std::time::Instant;

use axum::extract::{DefaultBodyLimit, FromRequest, Request, State};
use brigade_core::error_event::{ErrorEvent, ErrorKind};
use brigade_core::{FieldError, Problem};
use http::StatusCode;
use serde::Deserialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::ClientAddress;
use crate::error::{ApiError, ApiResult};
use crate::extract::Json;
use crate::state::AppState;

/// The largest report body: a message and a few frames fit many times over.
pub const MAX_REPORT_BYTES: usize = 16 * 1024;
/// The most frames a report may list (the first few are kept).
pub const MAX_REPORT_FRAMES: usize = 50;
/// The longest page URL a report may name.
pub const MAX_PAGE_CHARS: usize = 2048;
/// What a page URL must look like: a path, or an http(s) URL.
pub const PAGE_PATTERN: &str = "^(/|https?://)";
/// What a trace id must look like (W3C Trace Context).
pub const TRACE_ID_PATTERN: &str = "^[0-9a-f]{32}$";

/// Routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(report_client_error))
        .layer(DefaultBodyLimit::max(MAX_REPORT_BYTES))
}

/// What the page saw.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ClientErrorKind {
    /// An error thrown and not caught (`window.onerror`).
    Error,
    /// A promise rejected and never handled (`unhandledrejection`).
    UnhandledRejection,
    /// A call to the API that failed: no answer, or a 5xx answer.
    Fetch,
}

impl From<ClientErrorKind> for ErrorKind {
    fn from(kind: ClientErrorKind) -> Self {
        match kind {
            ClientErrorKind::Error => Self::ClientError,
            ClientErrorKind::UnhandledRejection => Self::ClientRejection,
            ClientErrorKind::Fetch => Self::ClientFetch,
        }
    }
}

/// One error a page saw.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ClientErrorReport {
    /// What the page saw.
    pub kind: ClientErrorKind,
    /// The error's message (not blank); cut to 500 characters. URLs in it lose their query
    /// and fragment.
    #[schema(min_length = 1, pattern = r"\S")]
    pub message: String,
    /// The top frames of the stack, innermost first; the first 5 are kept, each cut to 200
    /// characters, URLs without origin, query and fragment.
    #[serde(default)]
    #[schema(max_items = 50)]
    pub frames: Vec<String>,
    /// The page: its path or URL. Only the path is kept.
    #[schema(min_length = 1, max_length = 2048, pattern = "^(/|https?://)")]
    pub page: String,
    /// The trace of the failed API call (from its answer's `traceparent`): 32 lowercase hex
    /// digits.
    #[serde(default)]
    #[schema(pattern = "^[0-9a-f]{32}$")]
    pub trace_id: Option<String>,
}

impl ClientErrorReport {
    /// The report as an error event, or the fields that are not valid.
    fn into_event(self) -> Result<ErrorEvent, Vec<FieldError>> {
        let mut errors = Vec::new();
        if self.message.trim().is_empty() {
            errors.push(FieldError::new("message", "must not be blank"));
        }
        if self.frames.len() > MAX_REPORT_FRAMES {
            errors.push(FieldError::new(
                "frames",
                format!("at most {MAX_REPORT_FRAMES} frames"),
            ));
        }
        let page_ok = self.page.starts_with('/')
            || self.page.starts_with("http://")
            || self.page.starts_with("https://");
        if !page_ok || self.page.chars().count() > MAX_PAGE_CHARS {
            errors.push(FieldError::new(
                "page",
                format!("must be a path or an http(s) URL of at most {MAX_PAGE_CHARS} characters"),
            ));
        }
        let trace_ok = self.trace_id.as_deref().is_none_or(|id| {
            id.len() == 32 && id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        });
        if !trace_ok {
            errors.push(FieldError::new(
                "trace_id",
                "must be 32 lowercase hex digits",
            ));
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        let mut event = ErrorEvent::new(self.kind.into(), &strip_urls(self.message.trim()))
            .with_frames(self.frames.iter().map(|frame| strip_urls(frame)))
            .with_route(page_path(&self.page));
        event.reported_trace_id = self.trace_id;
        Ok(event)
    }
}

/// Records an error a brigade page saw, for error tracking.
///
/// Each report is one error event in the replica's log; `brigade up` groups them (with the
/// server's own errors) by fingerprint. Rate-limited per client: a burst of 20, then one a
/// second.
#[utoipa::path(post, path = "/api/v1/client-errors", tag = "operations",
    request_body = ClientErrorReport,
    responses(
        (status = 202, description = "Recorded"),
        (status = 429, description = "Too many reports from this client; wait as Retry-After says",
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
    ))]
async fn report_client_error(
    State(state): State<AppState>,
    ClientAddress(client): ClientAddress,
    request: Request,
) -> ApiResult<StatusCode> {
    if let Err(wait) = state.report_limit.take(client, Instant::now()) {
        return Err(ApiError::TooManyRequests {
            wait,
            detail: "too many error reports from this client; wait before sending more",
        });
    }
    let Json(report) = Json::<ClientErrorReport>::from_request(request, &state).await?;
    let event = report
        .into_event()
        .map_err(|errors| Problem::invalid(StatusCode::UNPROCESSABLE_ENTITY, errors))?;
    event.log();
    Ok(StatusCode::ACCEPTED)
}

/// The path of a page URL or path, without query and fragment.
fn page_path(page: &str) -> String {
    let path = match page.split_once("://") {
        Some((_, rest)) => rest.find('/').map_or("/", |at| &rest[at..]),
        None => page,
    };
    let end = path.find(['?', '#']).unwrap_or(path.len());
    path[..end].to_owned()
}

/// `text` with every http(s) URL in it cut to its path (no origin, query or fragment), keeping
/// a `:line:column` suffix as stacks write it: `at f (http://h:8080/a.js?v=1:3:9)` becomes
/// `at f (/a.js:3:9)`.
pub fn strip_urls(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("http://").or_else(|| rest.find("https://")) {
        out.push_str(&rest[..start]);
        let after = &rest[start..];
        let end = after
            .find(|c: char| c.is_whitespace() || matches!(c, ')' | '"' | '\'' | '<' | '>'))
            .unwrap_or(after.len());
        out.push_str(&url_path(&after[..end]));
        rest = &after[end..];
    }
    out.push_str(rest);
    out
}

/// One URL (possibly ending in `:line` or `:line:column`) as its path and that suffix.
fn url_path(url: &str) -> String {
    let (body, position) = split_position(url);
    let mut path = page_path(body);
    path.push_str(position);
    path
}

/// Splits a trailing `:12` or `:12:5` off a URL.
fn split_position(url: &str) -> (&str, &str) {
    let mut cut = url.len();
    for _ in 0..2 {
        let Some(colon) = url[..cut].rfind(':') else {
            break;
        };
        let digits = &url[colon + 1..cut];
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            break;
        }
        cut = colon;
    }
    (&url[..cut], &url[cut..])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_lose_origin_query_and_fragment_but_keep_their_position() {
        assert_eq!(
            strip_urls("at place (http://127.0.0.1:8080/assets/ordering.js?v=3#x:12:5)"),
            "at place (/assets/ordering.js:12:5)"
        );
        assert_eq!(
            strip_urls("place@https://shop.example/assets/a.js:3:9"),
            "place@/assets/a.js:3:9"
        );
        assert_eq!(
            strip_urls("GET http://h/api/v1/orders?status=ready failed"),
            "GET /api/v1/orders failed"
        );
        assert_eq!(strip_urls("no url here"), "no url here");
        assert_eq!(page_path("http://127.0.0.1:8080"), "/");
        assert_eq!(page_path("/orders/1?token=secret#top"), "/orders/1");
    }

    #[test]
    fn reports_are_validated_field_by_field() {
        let report = ClientErrorReport {
            kind: ClientErrorKind::Error,
            message: "  ".into(),
            frames: vec![String::new(); 51],
            page: "javascript:alert(1)".into(),
            trace_id: Some("XYZ".into()),
        };
        let errors = report.into_event().unwrap_err();
        let fields: Vec<_> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["message", "frames", "page", "trace_id"]);

        let event = ClientErrorReport {
            kind: ClientErrorKind::Fetch,
            message: "POST http://h/api/v1/orders?x=1 answered 503".into(),
            frames: vec!["at f (http://h/assets/ordering.js:1:2)".into()],
            page: "http://h/?customer=ann".into(),
            trace_id: Some("4bf92f3577b34da6a3ce929d0e0e4736".into()),
        }
        .into_event()
        .unwrap();
        assert_eq!(event.kind, ErrorKind::ClientFetch);
        assert_eq!(event.message, "POST /api/v1/orders answered 503");
        assert_eq!(event.frames, ["at f (/assets/ordering.js:1:2)"]);
        assert_eq!(event.route.as_deref(), Some("/"));
        assert_eq!(
            event.reported_trace_id.as_deref(),
            Some("4bf92f3577b34da6a3ce929d0e0e4736")
        );
    }
}
