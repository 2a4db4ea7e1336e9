//! TLS served by the relay itself (`TLS_CERT`, `TLS_KEY`), for a single machine with no proxy
//! in front. rustls with the ring provider (the binary's only one), TLS 1.2 and 1.3, HTTP/1.1
//! by ALPN (the accept loop serves HTTP/1.1 with upgrades). The certificate and key are read
//! again on SIGHUP: a renewed certificate needs no restart, and connections already open keep
//! the one they were made with. A reload that fails (a missing file, a key that does not match)
//! keeps the certificate in use and says why.

use std::path::{Path, PathBuf};
use std::sync::{Arc, PoisonError, RwLock};

use anyhow::Context as _;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::ServerConfig;
use tokio_rustls::TlsAcceptor;

/// The certificate in use and where it is read from.
#[derive(Clone)]
pub struct Tls {
    cert: Arc<Path>,
    key: Arc<Path>,
    acceptor: Arc<RwLock<TlsAcceptor>>,
}

impl Tls {
    /// Reads the PEM certificate chain and private key; fails naming the setting to fix.
    pub fn load(cert: PathBuf, key: PathBuf) -> anyhow::Result<Self> {
        let acceptor = acceptor(&cert, &key)?;
        Ok(Self { cert: cert.into(), key: key.into(), acceptor: Arc::new(RwLock::new(acceptor)) })
    }

    /// The acceptor for a new connection: the certificate loaded last.
    pub fn acceptor(&self) -> TlsAcceptor {
        self.acceptor.read().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// Reads the files again; on failure the certificate in use stays.
    pub fn reload(&self) -> anyhow::Result<()> {
        let fresh = acceptor(&self.cert, &self.key)?;
        *self.acceptor.write().unwrap_or_else(PoisonError::into_inner) = fresh;
        Ok(())
    }

    /// Reloads on every SIGHUP, until the server stops (the task is aborted).
    pub async fn reload_on_hangup(self) {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            let mut hangups = match signal(SignalKind::hangup()) {
                Ok(hangups) => hangups,
                Err(err) => {
                    tracing::error!(error = %err, "cannot listen for SIGHUP: the TLS certificate will not be reloaded");
                    return;
                }
            };
            while hangups.recv().await.is_some() {
                match self.reload() {
                    Ok(()) => tracing::info!("reloaded the TLS certificate"),
                    Err(err) => tracing::error!("kept the TLS certificate in use: {err:#}"),
                }
            }
        }
    }
}

fn acceptor(cert: &Path, key: &Path) -> anyhow::Result<TlsAcceptor> {
    let chain = CertificateDer::pem_file_iter(cert)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .with_context(|| format!("TLS_CERT: cannot read a PEM certificate chain from {}", cert.display()))?;
    anyhow::ensure!(!chain.is_empty(), "TLS_CERT: no certificate in {}", cert.display());
    let key = PrivateKeyDer::from_pem_file(key)
        .with_context(|| format!("TLS_KEY: cannot read a PEM private key from {}", key.display()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("TLS: no protocol version available")?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .context("TLS_KEY: the key does not fit the certificate (or is of a kind rustls cannot use)")?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    fn self_signed(host: &str) -> (String, String) {
        let cert = rcgen::generate_simple_self_signed(vec![host.to_owned()]).unwrap();
        (cert.cert.pem(), cert.key_pair.serialize_pem())
    }

    #[test]
    fn bad_files_name_the_setting_and_a_failed_reload_keeps_the_certificate() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = self_signed("localhost");
        let (other_cert, _) = self_signed("localhost");
        let cert_path = write(dir.path(), "cert.pem", &cert);
        let key_path = write(dir.path(), "key.pem", &key);
        let missing = dir.path().join("missing.pem");
        let err = Tls::load(missing.clone(), key_path.clone()).err().unwrap();
        assert!(format!("{err:#}").starts_with("TLS_CERT:"), "{err:#}");
        let err = Tls::load(cert_path.clone(), write(dir.path(), "empty.pem", "")).err().unwrap();
        assert!(format!("{err:#}").starts_with("TLS_KEY:"), "{err:#}");
        let err = Tls::load(write(dir.path(), "other.pem", &other_cert), key_path.clone()).err().unwrap();
        assert!(format!("{err:#}").contains("does not fit"), "{err:#}");

        let tls = Tls::load(cert_path.clone(), key_path).unwrap();
        std::fs::write(&cert_path, "not a certificate").unwrap();
        let err = tls.reload().unwrap_err();
        assert!(format!("{err:#}").starts_with("TLS_CERT:"), "{err:#}");
    }
}
