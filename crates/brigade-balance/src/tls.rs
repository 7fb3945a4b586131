//! TLS on the public listener: rustls on aws-lc-rs (the workspace's one crypto provider), TLS
//! 1.2 and 1.3 only, ALPN `http/1.1`, and certificates that can be replaced while connections
//! stay open.
//!
//! The served certificate sits behind an `ArcSwap` in a [`CertStore`] that rustls asks on every
//! handshake ([`ResolvesServerCert`]): a reload (SIGHUP or `POST /admin/tls/reload`) reads the
//! files, checks that key and certificate belong together, and swaps the pair. Connections
//! already open keep the session they negotiated; new handshakes get the new certificate. A
//! reload that fails keeps the running certificate.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arc_swap::ArcSwap;
use rustls::ServerConfig;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use serde::{Deserialize, Serialize};

/// `[tls]` in balance.toml (or `--tls-cert` / `--tls-key`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM certificate chain, leaf first; relative paths are relative to balance.toml's folder.
    pub cert: PathBuf,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
    /// A plain-HTTP listener that answers every request with a 308 to the same URL on https.
    #[serde(default)]
    pub redirect_listen: Option<std::net::SocketAddr>,
    /// `Strict-Transport-Security: max-age=…` on every answer; 0 leaves the header out.
    #[serde(default = "default_hsts_max_age")]
    pub hsts_max_age_secs: u64,
}

fn default_hsts_max_age() -> u64 {
    // One year: the value hstspreload.org asks for.
    31_536_000
}

impl TlsConfig {
    /// A configuration of these files with defaults for the rest.
    pub fn new(cert: PathBuf, key: PathBuf) -> Self {
        Self {
            cert,
            key,
            redirect_listen: None,
            hsts_max_age_secs: default_hsts_max_age(),
        }
    }
}

/// Why a certificate or key cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file is missing or is not PEM of the expected kind.
    #[error("{key} {path}: {message}")]
    File {
        /// The setting naming the file: `tls.cert` or `tls.key`.
        key: &'static str,
        /// The file.
        path: String,
        /// What is wrong.
        message: String,
    },
    /// Certificate and key do not belong together, or the key type is not supported.
    #[error("tls.key {path}: {message}")]
    Unusable {
        /// The key file.
        path: String,
        /// rustls's reason.
        message: String,
    },
    /// A self-signed certificate could not be made or written.
    #[error("cannot make a self-signed certificate: {0}")]
    SelfSigned(String),
}

/// The provider every TLS object of the balancer uses.
fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// Reads and checks a certificate chain and its key.
pub fn load_pair(cert: &Path, key: &Path) -> Result<CertifiedKey, TlsError> {
    let file_error = |key_name, path: &Path, message: String| TlsError::File {
        key: key_name,
        path: path.display().to_string(),
        message,
    };
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .and_then(|certs| certs.collect::<Result<_, _>>())
        .map_err(|error| file_error("tls.cert", cert, error.to_string()))?;
    if chain.is_empty() {
        return Err(file_error(
            "tls.cert",
            cert,
            "holds no PEM certificate".into(),
        ));
    }
    let private = PrivateKeyDer::from_pem_file(key)
        .map_err(|error| file_error("tls.key", key, error.to_string()))?;
    CertifiedKey::from_der(chain, private, &provider()).map_err(|error| TlsError::Unusable {
        path: key.display().to_string(),
        message: error.to_string(),
    })
}

/// The certificate served now, and the files it is reloaded from.
#[derive(Debug)]
pub struct CertStore {
    current: ArcSwap<CertifiedKey>,
    cert: PathBuf,
    key: PathBuf,
}

impl CertStore {
    /// Loads the pair once; the balancer does not start without it.
    pub fn load(cert: &Path, key: &Path) -> Result<Self, TlsError> {
        Ok(Self {
            current: ArcSwap::from_pointee(load_pair(cert, key)?),
            cert: cert.to_owned(),
            key: key.to_owned(),
        })
    }

    /// Reads the files again and serves them to new handshakes; on error the running pair stays.
    pub fn reload(&self) -> Result<(), TlsError> {
        let pair = load_pair(&self.cert, &self.key)?;
        self.current.store(Arc::new(pair));
        tracing::info!(cert = %self.cert.display(), "TLS certificate reloaded");
        Ok(())
    }
}

impl ResolvesServerCert for CertStore {
    fn resolve(&self, _client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.load_full())
    }
}

/// The server side: TLS 1.3 and 1.2 only (rustls has no older versions), ALPN `http/1.1`, the
/// certificate from `store`.
pub fn server_config(store: Arc<CertStore>) -> Result<Arc<ServerConfig>, TlsError> {
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|error| TlsError::Unusable {
            path: store.key.display().to_string(),
            message: error.to_string(),
        })?
        .with_no_client_auth()
        .with_cert_resolver(store);
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Makes a self-signed certificate for `names` (DNS names or IP addresses) and writes
/// `cert.pem` and `key.pem` (mode 0600) into `dir`; returns their paths. For trying TLS on one
/// machine (`brigade up --tls-self-signed`): browsers will warn, as they should.
pub fn self_signed(dir: &Path, names: &[String]) -> Result<(PathBuf, PathBuf), TlsError> {
    let failed = |error: &dyn std::fmt::Display| TlsError::SelfSigned(error.to_string());
    let made = rcgen::generate_simple_self_signed(names.to_vec()).map_err(|e| failed(&e))?;
    std::fs::create_dir_all(dir).map_err(|e| failed(&e))?;
    let cert = dir.join("cert.pem");
    let key = dir.join("key.pem");
    std::fs::write(&cert, made.cert.pem()).map_err(|e| failed(&e))?;
    write_private(&key, made.signing_key.serialize_pem().as_bytes()).map_err(|e| failed(&e))?;
    Ok((cert, key))
}

/// The pair `cert.pem`/`key.pem` in `dir` when it still loads, so an exception a browser keeps
/// for it stays valid across restarts; else a new self-signed one for `names`. Returns the
/// paths and whether the pair was made now. The same files serve a user who puts their own
/// certificate there: a pair that loads is never replaced.
pub fn keep_or_make_self_signed(
    dir: &Path,
    names: &[String],
) -> Result<(PathBuf, PathBuf, bool), TlsError> {
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    if load_pair(&cert, &key).is_ok() {
        return Ok((cert, key, false));
    }
    let (cert, key) = self_signed(dir, names)?;
    Ok((cert, key, true))
}

/// Writes a file only its owner can read.
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)?.write_all(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_self_signed_pair_loads_and_a_mismatched_one_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = self_signed(&dir.path().join("a"), &["localhost".into()]).unwrap();
        assert!(load_pair(&cert, &key).is_ok());
        let (_, other_key) = self_signed(&dir.path().join("b"), &["localhost".into()]).unwrap();
        let error = load_pair(&cert, &other_key).unwrap_err().to_string();
        assert!(error.starts_with("tls.key"), "{error}");
        let error = load_pair(&key, &key).unwrap_err().to_string();
        assert!(error.starts_with("tls.cert"), "{error}");
        let error = load_pair(&dir.path().join("missing.pem"), &key)
            .unwrap_err()
            .to_string();
        assert!(error.starts_with("tls.cert"), "{error}");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&key).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }
}
