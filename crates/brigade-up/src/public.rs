//! How brigade's own clients reach the public port — the jobs, the drills and whatever reads
//! `up`'s status from another process: its URL (`https://` when the port speaks TLS) and the
//! certificate to trust there. The ops API's status carries it as `public_url` and
//! `public_ca`, so a `brigade drill` in another shell talks to a TLS `up` like to a plain one.

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::tls::TlsFiles;

/// The public port as a client sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublicEndpoint {
    /// `http://127.0.0.1:8080`, or `https://…` when the port speaks TLS; no trailing slash.
    #[serde(rename = "public_url")]
    pub url: String,
    /// The PEM certificate chain the port serves (TLS only, an absolute path on the machine
    /// `up` runs on).
    #[serde(rename = "public_ca", default)]
    pub ca: Option<PathBuf>,
}

/// Why no client for the public port could be made.
#[derive(Debug, thiserror::Error)]
pub enum PublicError {
    /// The certificate file cannot be read.
    #[error("public_ca {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The file holds no usable PEM certificate.
    #[error("public_ca {path}: {source}")]
    Certificate {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: reqwest::Error,
    },
    /// The HTTP client could not be built.
    #[error("cannot make a client for the public port: {0}")]
    Client(#[source] reqwest::Error),
}

impl PublicEndpoint {
    /// The public port at `address`, over TLS with `tls`.
    pub(crate) fn new(address: SocketAddr, tls: Option<&TlsFiles>) -> Self {
        match tls {
            Some(files) => Self {
                url: format!("https://{address}"),
                ca: Some(files.cert.clone()),
            },
            None => Self {
                url: format!("http://{address}"),
                ca: None,
            },
        }
    }

    /// The URL of `path` (starting with `/`) on the public port.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.url)
    }

    /// `builder` made into a client of the public port. Over TLS it trusts the certificates of
    /// the served chain and nothing else, and does not compare names: it dials the loopback
    /// socket `up` holds itself, where a certificate made for a public name (a real one of the
    /// user's) could never match the address. Plain http needs nothing.
    pub fn client(&self, builder: reqwest::ClientBuilder) -> Result<reqwest::Client, PublicError> {
        let builder = match &self.ca {
            Some(path) => {
                let pem = std::fs::read(path).map_err(|source| PublicError::Read {
                    path: path.clone(),
                    source,
                })?;
                let chain = reqwest::Certificate::from_pem_bundle(&pem).map_err(|source| {
                    PublicError::Certificate {
                        path: path.clone(),
                        source,
                    }
                })?;
                builder
                    .tls_certs_only(chain)
                    .tls_danger_accept_invalid_hostnames(true)
            }
            None => builder,
        };
        builder.build().map_err(PublicError::Client)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_status_carries_the_endpoint_and_an_older_one_means_plain_http() {
        let address: SocketAddr = "127.0.0.1:8443".parse().unwrap();
        let tls = TlsFiles {
            cert: "/data/up/tls/cert.pem".into(),
            key: "/data/up/tls/key.pem".into(),
        };
        let endpoint = PublicEndpoint::new(address, Some(&tls));
        assert_eq!(
            endpoint.url("/api/v1/shops"),
            "https://127.0.0.1:8443/api/v1/shops"
        );
        let mut status = serde_json::to_value(&endpoint).unwrap();
        status["public"] = "127.0.0.1:8443".into();
        status["children"] = serde_json::json!([]);
        status["events"] = serde_json::json!([]);
        let status: crate::api::Status = serde_json::from_value(status).unwrap();
        assert_eq!(status.public_endpoint(), Some(endpoint));

        let older: crate::api::Status = serde_json::from_value(
            serde_json::json!({"public": "127.0.0.1:8080", "children": [], "events": []}),
        )
        .unwrap();
        let plain = older.public_endpoint().unwrap();
        assert_eq!(
            plain,
            PublicEndpoint::new("127.0.0.1:8080".parse().unwrap(), None)
        );
        assert_eq!(plain.ca, None);
        assert!(plain.client(reqwest::Client::builder()).is_ok());
    }

    #[test]
    fn a_missing_certificate_file_is_named() {
        let endpoint = PublicEndpoint {
            url: "https://127.0.0.1:1".into(),
            ca: Some("/nonexistent/cert.pem".into()),
        };
        let error = endpoint
            .client(reqwest::Client::builder())
            .unwrap_err()
            .to_string();
        assert!(
            error.starts_with("public_ca /nonexistent/cert.pem"),
            "{error}"
        );
    }
}
