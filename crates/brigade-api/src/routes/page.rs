//! Cursor pagination shared by every list: `limit` and an opaque `cursor` naming the last id
//! of the previous page (ids are UUID v7, so "older than" is "smaller than"), which keeps pages
//! stable while new rows arrive.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use brigade_core::{FieldError, Problem};
use http::StatusCode;
use uuid::Uuid;

use crate::error::ApiResult;

/// Largest page of any list.
pub const MAX_PAGE: u32 = 100;
/// Page size when the client names none.
pub const DEFAULT_PAGE: u32 = 20;

/// The requested page size, checked.
pub fn limit(requested: Option<u32>) -> ApiResult<u32> {
    let limit = requested.unwrap_or(DEFAULT_PAGE);
    if (1..=MAX_PAGE).contains(&limit) {
        Ok(limit)
    } else {
        Err(bad_query(
            "limit",
            &format!("must be between 1 and {MAX_PAGE}"),
        ))
    }
}

/// The id a `cursor` names, if one was sent.
pub fn cursor(cursor: Option<&str>) -> ApiResult<Option<Uuid>> {
    cursor
        .map(|cursor| {
            URL_SAFE_NO_PAD
                .decode(cursor)
                .ok()
                .and_then(|bytes| Uuid::from_slice(&bytes).ok())
                .ok_or_else(|| bad_query("cursor", "is not a cursor returned by this API"))
        })
        .transpose()
}

/// The cursor of the page after `items`, absent when this page was the last.
pub fn next_cursor<T>(items: &[T], limit: u32, id: impl Fn(&T) -> Uuid) -> Option<String> {
    if items.len() < limit as usize {
        return None;
    }
    items
        .last()
        .map(|last| URL_SAFE_NO_PAD.encode(id(last).as_bytes()))
}

fn bad_query(field: &str, message: &str) -> crate::ApiError {
    Problem::invalid(
        StatusCode::BAD_REQUEST,
        vec![FieldError::new(field, message)],
    )
    .into()
}
