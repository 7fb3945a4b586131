//! Read-your-writes across stateless replicas: the `Brigade-Read-After` fence.
//!
//! A replica that has a standby answers every write with the primary's WAL position after it,
//! as the `Brigade-Read-After` header and a `brigade_read_after` cookie. A client that sends
//! either back has its stale-tolerant reads served by the standby only once the standby has
//! replayed past that position, else by the primary; so it sees its own writes at once, from
//! any replica the balancer picks, while the standby serves everyone else. The cookie does
//! it for browsers; API clients echo the header. The cookie lives a little longer than the
//! standby may lag (see [`fence_lifetime`]): after that, any standby within the bound holds
//! the write anyway.
//!
//! A malformed header is the client's mistake (400 naming it); a malformed cookie is treated
//! as a fence no standby reaches (reads go to the primary) rather than rejected, so a browser
//! holding one is never locked out.

use std::time::Duration;

use axum::extract::Request;
use axum::response::{IntoResponse, Response};
use brigade_core::{FieldError, Problem};
use brigade_store::replica::{Lsn, ReadScope, with_read_scope};
use http::{HeaderMap, HeaderValue, Method, header};

use crate::state::AppState;

/// The request and response header carrying the fence.
pub const HEADER: &str = "brigade-read-after";
/// The cookie carrying it for browsers.
pub const COOKIE: &str = "brigade_read_after";

/// Reads the caller's fence, runs the request (`inner`) under it, and answers a write with a
/// new one. A step of [`crate::per_request::steps`]; without a standby it only runs `inner`.
pub async fn fence<F, Fut>(state: &AppState, request: Request, inner: F) -> Response
where
    F: FnOnce(Request) -> Fut,
    Fut: Future<Output = Response>,
{
    if state.settings.storage.read_url.is_none() {
        return inner(request).await;
    }
    let after = match fence_of(request.headers()) {
        Ok(after) => after,
        Err(problem) => return problem.into_response(),
    };
    let writes = !matches!(
        *request.method(),
        Method::GET | Method::HEAD | Method::OPTIONS
    );
    let scope = after.map_or(ReadScope::Any, ReadScope::After);
    let mut response = with_read_scope(scope, inner(request)).await;
    if writes && !response.status().is_client_error() {
        // Unknown position (the primary did not answer): a fence no standby reaches.
        let position = match state.store.read_fence().await {
            Ok(position) => position,
            Err(error) => {
                tracing::warn!(%error, "no WAL position after a write; fencing to the primary");
                Some(Lsn::MAX)
            }
        };
        if let Some(position) = position {
            let lifetime = fence_lifetime(state.settings.storage.read_max_lag_ms);
            set_fence(response.headers_mut(), position, lifetime);
        }
    }
    response
}

/// How long a fence is kept: the lag bound, plus how stale the sampler's view of the standby
/// may be (an interval and two sample timeouts), plus a second for the primary to flush.
pub fn fence_lifetime(read_max_lag_ms: u64) -> Duration {
    Duration::from_millis(read_max_lag_ms) + Duration::from_millis(3_500)
}

/// The later of the header's and the cookie's fence; `Err` for a malformed header.
fn fence_of(headers: &HeaderMap) -> Result<Option<Lsn>, Box<Problem>> {
    let from_header = match headers.get(HEADER) {
        None => None,
        Some(value) => Some(
            value
                .to_str()
                .ok()
                .and_then(|text| text.trim().parse::<Lsn>().ok())
                .ok_or_else(|| {
                    let message = brigade_store::replica::InvalidLsn.to_string();
                    Box::new(Problem::invalid(
                        http::StatusCode::BAD_REQUEST,
                        vec![FieldError::new("Brigade-Read-After", message)],
                    ))
                })?,
        ),
    };
    let from_cookie = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|cookies| cookies.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .filter(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value.parse::<Lsn>().unwrap_or(Lsn::MAX))
        .max();
    Ok(from_header.max(from_cookie))
}

fn set_fence(headers: &mut HeaderMap, position: Lsn, lifetime: Duration) {
    let max_age = lifetime.as_secs() + u64::from(lifetime.subsec_nanos() > 0);
    let cookie = format!("{COOKIE}={position}; Path=/; Max-Age={max_age}; HttpOnly; SameSite=Lax");
    if let (Ok(value), Ok(cookie)) = (
        HeaderValue::from_str(&position.to_string()),
        HeaderValue::from_str(&cookie),
    ) {
        headers.insert(HEADER, value);
        headers.append(header::SET_COOKIE, cookie);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, HeaderValue::from_str(value).unwrap());
        }
        map
    }

    #[test]
    fn the_later_of_header_and_cookie_wins() {
        assert_eq!(fence_of(&headers(&[])).unwrap(), None);
        let both = headers(&[
            (HEADER, "0/3000060"),
            ("cookie", "a=b; brigade_read_after=0/4000000"),
        ]);
        assert_eq!(fence_of(&both).unwrap(), Some(Lsn(0x400_0000)));
        let header_only = headers(&[(HEADER, " 1/0 ")]);
        assert_eq!(fence_of(&header_only).unwrap(), Some(Lsn(1 << 32)));
    }

    #[test]
    fn a_bad_header_is_refused_and_a_bad_cookie_pins_the_primary() {
        let problem = fence_of(&headers(&[(HEADER, "yesterday")])).unwrap_err();
        assert_eq!(problem.status, http::StatusCode::BAD_REQUEST);
        let cookie = headers(&[("cookie", "brigade_read_after=garbage")]);
        assert_eq!(fence_of(&cookie).unwrap(), Some(Lsn::MAX));
    }

    #[test]
    fn a_write_is_answered_with_header_and_cookie() {
        let mut map = HeaderMap::new();
        set_fence(&mut map, Lsn(0x300_0060), fence_lifetime(5_000));
        assert_eq!(map.get(HEADER).unwrap(), "0/3000060");
        assert_eq!(
            map.get(header::SET_COOKIE).unwrap(),
            "brigade_read_after=0/3000060; Path=/; Max-Age=9; HttpOnly; SameSite=Lax"
        );
    }
}
