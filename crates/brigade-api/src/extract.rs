//! Extractors whose rejections are problem+json naming the offending field, so bad input gets
//! the same answer shape as every other error (axum's `error-handling` example, taken further:
//! the field path comes from `serde_path_to_error`).

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Request};
use brigade_core::{FieldError, Problem};
use bytes::Bytes;
use http::request::Parts;
use http::{StatusCode, header};
use serde::de::DeserializeOwned;

use crate::auth::ClientAddress;
use crate::error::ApiError;
use crate::state::AppState;

/// A JSON body. Malformed JSON → 400; valid JSON of the wrong shape (unknown, missing or
/// mistyped fields) → 422 naming the field; a body over the limit → 413; not JSON → 415.
#[derive(Debug, Clone, Copy, Default)]
pub struct Json<T>(pub T);

impl<S, T> FromRequest<S> for Json<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let is_json = request
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .map(|mime| {
                let mime = mime.trim().to_ascii_lowercase();
                mime == "application/json" || mime.ends_with("+json")
            })
            .unwrap_or(false);
        if !is_json {
            return Err(Problem::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported-media-type",
                "The body must be JSON",
            )
            .with_detail("send the body with Content-Type: application/json")
            .into());
        }
        let bytes = Bytes::from_request(request, state)
            .await
            .map_err(|rejection| {
                if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                    ApiError::from(
                        Problem::new(
                            StatusCode::PAYLOAD_TOO_LARGE,
                            "payload-too-large",
                            "The body is too large",
                        )
                        .with_detail(rejection.body_text()),
                    )
                } else {
                    Problem::bad_request(rejection.body_text()).into()
                }
            })?;
        parse_json(&bytes).map(Json)
    }
}

/// Parses a JSON body with the error rules of [`Json`].
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    // Syntax first, over the whole body: `{} {}` is malformed (400) even though its first
    // value would have been a shape error (422).
    if let Err(error) = serde_json::from_slice::<serde::de::IgnoredAny>(bytes) {
        return Err(if bytes.iter().all(u8::is_ascii_whitespace) {
            Problem::bad_request("the body is empty; send a JSON object").into()
        } else {
            Problem::bad_request(format!("the body is not valid JSON: {error}")).into()
        });
    }
    // Every brigade body is an object; serde would also accept an array for a struct.
    if bytes.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err(Problem::invalid_field("body", "must be a JSON object").into());
    }
    if let Some(field) = control_character_in_json(bytes) {
        return Err(control_character_problem(field));
    }
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(&mut deserializer).map_err(|error| {
        let (field, message) =
            field_and_message(&error.path().to_string(), &error.inner().to_string());
        Problem::invalid(
            StatusCode::UNPROCESSABLE_ENTITY,
            vec![FieldError::new(field, message)],
        )
        .into()
    })
}

/// Query parameters. Unknown, missing or mistyped parameters → 400 naming the parameter.
#[derive(Debug, Clone, Copy, Default)]
pub struct Query<T>(pub T);

impl<S, T> FromRequestParts<S> for Query<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let query = parts.uri.query().unwrap_or_default();
        if let Some((key, _)) = form_urlencoded::parse(query.as_bytes()).find(|(key, value)| {
            brigade_domain::has_control_character(key)
                || brigade_domain::has_control_character(value)
        }) {
            return Err(control_character_problem(key.into_owned()));
        }
        let deserializer =
            serde_urlencoded::Deserializer::new(form_urlencoded::parse(query.as_bytes()));
        serde_path_to_error::deserialize(deserializer)
            .map(Query)
            .map_err(|error| {
                let (field, message) =
                    field_and_message(&error.path().to_string(), &error.inner().to_string());
                Problem::invalid(
                    StatusCode::BAD_REQUEST,
                    vec![FieldError::new(field, message)],
                )
                .into()
            })
    }
}

/// 422 naming a field that holds a control character.
fn control_character_problem(field: String) -> ApiError {
    Problem::invalid(
        StatusCode::UNPROCESSABLE_ENTITY,
        vec![FieldError::new(
            field,
            brigade_domain::CONTROL_CHARACTER_MESSAGE,
        )],
    )
    .into()
}

/// The path of the first string (value or key) in a JSON body that holds a control character.
/// JSON can carry one only as an escape (`\u0000`, `\n`, …; raw ones are a syntax error), so a
/// body without a backslash is passed at the cost of one scan.
fn control_character_in_json(bytes: &[u8]) -> Option<String> {
    if !bytes.contains(&b'\\') {
        return None;
    }
    let value: serde_json::Value = serde_json::from_slice(bytes).ok()?;
    find_control_character(&value, "")
}

fn find_control_character(value: &serde_json::Value, path: &str) -> Option<String> {
    use brigade_domain::has_control_character;
    match value {
        serde_json::Value::String(text) => has_control_character(text).then(|| path.to_owned()),
        serde_json::Value::Array(items) => items
            .iter()
            .enumerate()
            .find_map(|(index, item)| find_control_character(item, &format!("{path}[{index}]"))),
        serde_json::Value::Object(fields) => fields.iter().find_map(|(key, item)| {
            let field = if path.is_empty() {
                key.clone()
            } else {
                format!("{path}.{key}")
            };
            if has_control_character(key) {
                return Some(field);
            }
            find_control_character(item, &field)
        }),
        _ => None,
    }
}

/// Path parameters. Every brigade path parameter is a UUID, so a rejection names the first
/// parameter that is not one (400).
#[derive(Debug, Clone, Copy, Default)]
pub struct Path<T>(pub T);

impl<S, T> FromRequestParts<S> for Path<T>
where
    S: Send + Sync,
    T: DeserializeOwned + Send,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(value)) => Ok(Path(value)),
            Err(rejection) => {
                let raw = axum::extract::RawPathParams::from_request_parts(parts, state).await;
                let bad = raw.ok().and_then(|params| {
                    params
                        .iter()
                        .find(|(_, value)| uuid::Uuid::parse_str(value).is_err())
                        .map(|(key, _)| key.to_owned())
                });
                Err(match bad {
                    Some(key) => Problem::invalid(
                        StatusCode::BAD_REQUEST,
                        vec![FieldError::new(key, "is not a valid id (expected a UUID)")],
                    )
                    .into(),
                    None => Problem::bad_request(rejection.body_text()).into(),
                })
            }
        }
    }
}

/// Splits a serde error into the full field path and a message, so that "missing field `x`"
/// at `items[0]` is reported on `items[0].x` and "unknown field `y`" on `y` itself.
fn field_and_message(path: &str, message: &str) -> (String, String) {
    let path = if path == "." { "" } else { path };
    let named = |prefix: &str| {
        message
            .strip_prefix(prefix)
            .and_then(|rest| rest.strip_prefix('`'))
            .and_then(|rest| rest.split('`').next())
            .map(str::to_owned)
    };
    let join = |name: &str| {
        if path.is_empty() {
            name.to_owned()
        } else {
            format!("{path}.{name}")
        }
    };
    // serde appends " at line L column C" to some messages; the position is noise here.
    let message = match message.rfind(" at line ") {
        Some(index) => &message[..index],
        None => message,
    };
    if let Some(name) = named("missing field ") {
        return (join(&name), "is required".to_owned());
    }
    if let Some(name) = named("unknown field ") {
        // serde_path_to_error already put the unknown key at the end of the path.
        let field = if path.ends_with(&name) {
            path.to_owned()
        } else {
            join(&name)
        };
        return (field, "is not a known field".to_owned());
    }
    let field = if path.is_empty() {
        "body".to_owned()
    } else {
        path.to_owned()
    };
    (field, message.to_owned())
}

/// The validated `Idempotency-Key` header, if sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyKeyHeader(pub Option<String>);

impl<S: Send + Sync> FromRequestParts<S> for IdempotencyKeyHeader {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let Some(value) = parts.headers.get("idempotency-key") else {
            return Ok(Self(None));
        };
        let key = value.to_str().unwrap_or_default();
        if key.is_empty() || key.len() > 255 || !key.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(Problem::invalid(
                StatusCode::BAD_REQUEST,
                vec![FieldError::new(
                    "Idempotency-Key",
                    "must be 1-255 visible ASCII characters",
                )],
            )
            .into());
        }
        Ok(Self(Some(key.to_owned())))
    }
}

/// The client's address by the trusted-proxy rule (`server.trusted_proxies`; see
/// `auth::client`).
impl FromRequestParts<AppState> for ClientAddress {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ConnectInfo(peer)| peer.ip())
            .ok_or_else(|| {
                ApiError::Internal("the connection's peer address is unknown".to_owned())
            })?;
        Ok(Self(crate::auth::client_address(
            peer,
            &parts.headers,
            &state.settings.server.trusted_proxies,
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Line {
        item_id: String,
        quantity: u32,
    }

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Body {
        items: Vec<Line>,
    }

    fn field_of(json: &str) -> (u16, String) {
        match parse_json::<Body>(json.as_bytes()) {
            Ok(_) => panic!("{json} parsed"),
            Err(ApiError::Problem(p)) => (
                p.status,
                p.errors
                    .first()
                    .map(|e| e.field.clone())
                    .unwrap_or_default(),
            ),
            Err(other) => panic!("{other:?}"),
        }
    }

    #[test]
    fn names_the_field_that_failed() {
        assert_eq!(
            field_of(r#"{"items":[{"item_id":"a"}]}"#),
            (422, "items[0].quantity".into())
        );
        assert_eq!(
            field_of(r#"{"items":[{"item_id":"a","quantity":-1}]}"#),
            (422, "items[0].quantity".into())
        );
        assert_eq!(
            field_of(r#"{"items":[{"item_id":"a","quantity":1,"x":2}]}"#),
            (422, "items[0].x".into())
        );
        assert_eq!(field_of(r#"{"items":5}"#), (422, "items".into()));
        assert_eq!(field_of(r#"{"items":[]"#).0, 400);
        assert_eq!(field_of("").0, 400);
        assert_eq!(field_of(r#"{"items":[]} trailing"#).0, 400);
        assert_eq!(
            field_of(r#"{"items":[{"item_id":"a\u0000","quantity":1}]}"#),
            (422, "items[0].item_id".into())
        );
        assert_eq!(
            field_of(r#"{"items\u001b":[]}"#),
            (422, "items\u{1b}".into())
        );
    }
}
