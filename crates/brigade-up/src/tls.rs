//! TLS on `brigade up`'s public port: the user's certificate and key, or a self-signed pair for
//! this machine kept in the data directory. The balancer serves whichever it is
//! ([`crate::configs::balance`] puts it in the `[tls]` section of balance.toml).

use std::path::{Path, PathBuf};

use brigade_balance::tls::{TlsError, keep_or_make_self_signed};

/// The names the self-signed certificate is made for: the loopback address `up` listens on
/// (what the banner prints and brigade's own clients dial) and the name browsers use for it.
const LOCAL_NAMES: [&str; 2] = ["localhost", "127.0.0.1"];

/// How the public port speaks TLS (`--tls-cert`/`--tls-key` or `--tls-self-signed`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PublicTls {
    /// The user's PEM certificate chain and private key (absolute paths).
    Files {
        /// Certificate chain, leaf first.
        cert: PathBuf,
        /// Its private key.
        key: PathBuf,
    },
    /// A certificate for `localhost` and 127.0.0.1, made on the first start in
    /// `<data-dir>/up/tls/` and kept there.
    SelfSigned,
}

/// The certificate and key the balancer serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TlsFiles {
    /// PEM certificate chain; also what brigade's own clients trust on the public port.
    pub cert: PathBuf,
    /// PEM private key.
    pub key: PathBuf,
}

impl PublicTls {
    /// The files to serve: the user's, or the self-signed pair of the data directory (made
    /// when missing or unusable).
    pub(crate) fn files(&self, data_dir: &Path) -> Result<TlsFiles, TlsError> {
        match self {
            Self::Files { cert, key } => Ok(TlsFiles {
                cert: cert.clone(),
                key: key.clone(),
            }),
            Self::SelfSigned => local_pair(&dir(data_dir)),
        }
    }
}

/// Where the self-signed pair lives.
pub(crate) fn dir(data_dir: &Path) -> PathBuf {
    data_dir.join("up").join("tls")
}

/// The self-signed pair in `dir`: the one already there when it still loads, else a new one.
fn local_pair(dir: &Path) -> Result<TlsFiles, TlsError> {
    let names = LOCAL_NAMES.map(str::to_owned);
    let (cert, key, made) = keep_or_make_self_signed(dir, &names)?;
    if made {
        tracing::info!(cert = %cert.display(), "made a self-signed certificate for localhost");
    } else {
        tracing::info!(cert = %cert.display(), "serving the self-signed certificate made before");
    }
    Ok(TlsFiles { cert, key })
}

#[cfg(test)]
mod tests {
    use super::*;
    use brigade_balance::tls::load_pair;

    #[test]
    fn the_self_signed_pair_is_made_once_and_kept() {
        let data = tempfile::tempdir().unwrap();
        let first = PublicTls::SelfSigned.files(data.path()).unwrap();
        assert_eq!(first.cert, dir(data.path()).join("cert.pem"));
        let pem = std::fs::read(&first.cert).unwrap();
        let again = PublicTls::SelfSigned.files(data.path()).unwrap();
        assert_eq!(again, first);
        assert_eq!(
            std::fs::read(&again.cert).unwrap(),
            pem,
            "the same certificate"
        );

        // A pair that no longer loads is replaced.
        std::fs::write(&first.key, "not a key").unwrap();
        let replaced = PublicTls::SelfSigned.files(data.path()).unwrap();
        assert!(load_pair(&replaced.cert, &replaced.key).is_ok());
        assert_ne!(std::fs::read(&replaced.cert).unwrap(), pem);
    }
}
