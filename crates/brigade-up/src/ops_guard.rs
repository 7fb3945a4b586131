//! Cross-site request defence of the ops API and the dashboard.
//!
//! They listen on loopback, but a web page the operator visits can still send requests to
//! 127.0.0.1: a form or `fetch` with `mode: "no-cors"` reaches a POST endpoint without reading
//! the answer, and DNS rebinding (a name that resolves to 127.0.0.1) even makes the page
//! same-origin. So every request is checked:
//!
//! - `Host` must be an IP address or `localhost` (a rebound name is refused);
//! - a state-changing request (anything but GET, HEAD, OPTIONS) must not come from another
//!   site (`Sec-Fetch-Site` other than `same-origin`/`none`, or an `Origin` other than the
//!   request's own host), and must carry the per-start token in `X-Brigade-Ops-Token`.
//!
//! The token is random per start. `brigade up` writes it to `<data dir>/ops-token`, readable by
//! its user only, for the CLI (`brigade rollout`, `brigade scale`); the dashboard page reads it
//! from `GET /api/dashboard/config`, which a page of another site cannot read (no CORS), and
//! sends it with its requests. A custom header also makes any cross-site `fetch` preflighted,
//! and no preflight is ever answered.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::Response;
use base64::Engine as _;

/// The header carrying the token.
pub const TOKEN_HEADER: &str = "x-brigade-ops-token";
/// The token file's name in the data directory.
pub const TOKEN_FILE: &str = "ops-token";

/// The per-start token; cheap to clone.
#[derive(Clone)]
pub struct OpsToken(Arc<str>);

impl std::fmt::Debug for OpsToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("OpsToken(***)")
    }
}

impl OpsToken {
    /// A fresh random token (32 random bytes, URL-safe base64).
    pub fn generate() -> Self {
        let bytes: [u8; 32] = rand::random();
        Self(
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .encode(bytes)
                .into(),
        )
    }

    /// The token's text.
    pub fn value(&self) -> &str {
        &self.0
    }

    /// Writes the token to `<data_dir>/ops-token`, readable and writable by this user only,
    /// replacing an older start's token.
    pub fn write(&self, data_dir: &Path) -> std::io::Result<PathBuf> {
        use std::os::unix::fs::OpenOptionsExt;
        let path = token_path(data_dir);
        let _ = std::fs::remove_file(&path);
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)?;
        file.write_all(self.0.as_bytes())?;
        Ok(path)
    }

    /// Whether `candidate` is this token (compared in constant time).
    fn matches(&self, candidate: &[u8]) -> bool {
        let expected = self.0.as_bytes();
        expected.len() == candidate.len()
            && expected
                .iter()
                .zip(candidate)
                .fold(0u8, |diff, (a, b)| diff | (a ^ b))
                == 0
    }
}

/// Where a running `brigade up` on `data_dir` keeps its token.
pub fn token_path(data_dir: &Path) -> PathBuf {
    data_dir.join(TOKEN_FILE)
}

/// Reads the token of the `brigade up` running on `data_dir`.
pub fn read_token(data_dir: &Path) -> std::io::Result<String> {
    Ok(std::fs::read_to_string(token_path(data_dir))?
        .trim()
        .to_owned())
}

/// The answer of `GET /api/ops-token-file`: where the token is, never the token.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct TokenFile {
    /// The token file's absolute path.
    pub path: PathBuf,
}

/// Why the ops token could not be found.
#[derive(Debug, thiserror::Error)]
pub enum DiscoverError {
    /// Nothing answers at the ops address.
    #[error("nothing answers at {0}; is `brigade up` running?")]
    NotRunning(String),
    /// Something answers, but not with the token file's path.
    #[error("{0} does not name an ops token file")]
    NotOps(String),
    /// The file is not readable (another user's `brigade up`).
    #[error("cannot read the ops token {}: {source}", path.display())]
    Unreadable {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// Asks the ops API at `ops` (`host:port`) where its token file is and reads it: works for
/// the user who runs `brigade up` (the file is theirs alone), and for nobody else.
pub async fn discover(http: &reqwest::Client, ops: &str) -> Result<String, DiscoverError> {
    let answer = http
        .get(format!("http://{ops}/api/ops-token-file"))
        .send()
        .await
        .map_err(|_| DiscoverError::NotRunning(ops.to_owned()))?;
    let file: TokenFile = answer
        .json()
        .await
        .map_err(|_| DiscoverError::NotOps(ops.to_owned()))?;
    let token =
        std::fs::read_to_string(&file.path).map_err(|source| DiscoverError::Unreadable {
            path: file.path.clone(),
            source,
        })?;
    Ok(token.trim().to_owned())
}

/// Middleware: refuses what the module documentation says, with 403 problem+json.
pub async fn guard(State(token): State<OpsToken>, request: Request, next: Next) -> Response {
    if let Err(reason) = check(&token, request.method(), request.headers()) {
        tracing::warn!(
            method = %request.method(),
            path = request.uri().path(),
            reason,
            "ops request refused"
        );
        return crate::problem::problem(StatusCode::FORBIDDEN, reason);
    }
    next.run(request).await
}

fn check(token: &OpsToken, method: &Method, headers: &HeaderMap) -> Result<(), &'static str> {
    let host = headers
        .get(header::HOST)
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default();
    if !is_address_host(host) {
        return Err("Host must be an IP address or localhost");
    }
    if matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS) {
        return Ok(());
    }
    let site = headers
        .get("sec-fetch-site")
        .and_then(|value| value.to_str().ok());
    if site.is_some_and(|site| site != "same-origin" && site != "none") {
        return Err("cross-site requests are refused");
    }
    if let Some(origin) = headers.get(header::ORIGIN) {
        let own = [format!("http://{host}"), format!("https://{host}")];
        if !own.iter().any(|own| origin.as_bytes() == own.as_bytes()) {
            return Err("cross-origin requests are refused");
        }
    }
    match headers.get(TOKEN_HEADER) {
        Some(value) if token.matches(value.as_bytes()) => Ok(()),
        Some(_) => Err("the X-Brigade-Ops-Token header does not match this start's token"),
        None => Err(
            "send the X-Brigade-Ops-Token header (the token is in <data dir>/ops-token of brigade up)",
        ),
    }
}

/// `127.0.0.1:8081`, `[::1]:8081`, `localhost:8081` (any port, or none).
fn is_address_host(host: &str) -> bool {
    let name = if let Some(rest) = host.strip_prefix('[') {
        return rest
            .split(']')
            .next()
            .is_some_and(|ip| ip.parse::<std::net::Ipv6Addr>().is_ok());
    } else {
        host.rsplit_once(':').map_or(host, |(name, _)| name)
    };
    name.eq_ignore_ascii_case("localhost") || name.parse::<std::net::Ipv4Addr>().is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, value.parse().unwrap());
        }
        map
    }

    #[test]
    fn only_same_site_requests_with_the_token_change_anything() {
        let token = OpsToken::generate();
        let good = token.value().to_owned();
        let post = Method::POST;
        let ok = headers(&[("host", "127.0.0.1:8081"), (TOKEN_HEADER, &good)]);
        assert!(check(&token, &post, &ok).is_ok());
        let same_origin = headers(&[
            ("host", "127.0.0.1:8081"),
            ("origin", "http://127.0.0.1:8081"),
            ("sec-fetch-site", "same-origin"),
            (TOKEN_HEADER, &good),
        ]);
        assert!(check(&token, &post, &same_origin).is_ok());
        for refused in [
            headers(&[("host", "127.0.0.1:8081")]),
            headers(&[("host", "127.0.0.1:8081"), (TOKEN_HEADER, "guess")]),
            headers(&[("host", "evil.example:8081"), (TOKEN_HEADER, &good)]),
            headers(&[
                ("host", "127.0.0.1:8081"),
                ("sec-fetch-site", "cross-site"),
                (TOKEN_HEADER, &good),
            ]),
            headers(&[
                ("host", "127.0.0.1:8081"),
                ("origin", "http://evil.example"),
                (TOKEN_HEADER, &good),
            ]),
        ] {
            assert!(check(&token, &post, &refused).is_err(), "{refused:?}");
        }
        // Reads need no token, but a rebound name is refused for them too.
        assert!(check(&token, &Method::GET, &headers(&[("host", "[::1]:8081")])).is_ok());
        assert!(check(&token, &Method::GET, &headers(&[("host", "localhost")])).is_ok());
        assert!(check(&token, &Method::GET, &headers(&[("host", "evil.example")])).is_err());
    }

    #[test]
    fn the_token_file_is_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let token = OpsToken::generate();
        let path = token.write(dir.path()).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(read_token(dir.path()).unwrap(), token.value());
        // A new start replaces it.
        let next = OpsToken::generate();
        next.write(dir.path()).unwrap();
        assert_eq!(read_token(dir.path()).unwrap(), next.value());
    }
}
