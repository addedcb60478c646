//! The webhook server's TLS: the serving certificate from `<cert_dir>/tls.crt` and `tls.key`
//! (reloaded when the files change, as cert-manager rotates them, so a rotation needs no
//! restart), and a listener that hands axum finished TLS connections.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rustls::ServerConfig;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

use super::WebhookError;

/// The certificate file in the cert directory (PEM, leaf first, then intermediates).
pub const CERT_FILE: &str = "tls.crt";
/// The private key file in the cert directory (PEM: PKCS#8, PKCS#1 or SEC1).
pub const KEY_FILE: &str = "tls.key";

/// How long a client may take to finish the TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The PEM contents of `tls.crt` and `tls.key`.
#[derive(Clone, PartialEq, Eq)]
struct PemFiles {
    cert_path: PathBuf,
    cert: Vec<u8>,
    key_path: PathBuf,
    key: Vec<u8>,
}

impl PemFiles {
    fn read(dir: &Path) -> Result<Self, WebhookError> {
        let cert_path = dir.join(CERT_FILE);
        let key_path = dir.join(KEY_FILE);
        Ok(Self {
            cert: read(&cert_path)?,
            key: read(&key_path)?,
            cert_path,
            key_path,
        })
    }

    fn certified_key(&self) -> Result<CertifiedKey, WebhookError> {
        let (cert_path, key_path) = (&self.cert_path, &self.key_path);
        let chain = CertificateDer::pem_slice_iter(&self.cert)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| invalid(cert_path, format!("not a PEM certificate chain: {e}")))?;
        if chain.is_empty() {
            return Err(invalid(cert_path, "contains no PEM CERTIFICATE block"));
        }
        let key = PrivateKeyDer::from_pem_slice(&self.key).map_err(|e| match e {
            rustls::pki_types::pem::Error::NoItemsFound => invalid(
                key_path,
                "contains no PEM private key (PRIVATE KEY, RSA PRIVATE KEY or EC PRIVATE KEY)",
            ),
            e => invalid(key_path, format!("not a PEM private key: {e}")),
        })?;
        CertifiedKey::from_der(chain, key, &provider()).map_err(|e| match e {
            rustls::Error::InconsistentKeys(_) => invalid(
                key_path,
                format!("does not match the certificate in {}", cert_path.display()),
            ),
            e => invalid(key_path, format!("unusable private key: {e}")),
        })
    }
}

fn read(path: &Path) -> Result<Vec<u8>, WebhookError> {
    std::fs::read(path).map_err(|source| WebhookError::ReadTls {
        path: path.to_owned(),
        source,
    })
}

fn invalid(path: &Path, reason: impl Into<String>) -> WebhookError {
    WebhookError::InvalidTls {
        path: path.to_owned(),
        reason: reason.into(),
    }
}

fn provider() -> CryptoProvider {
    rustls::crypto::ring::default_provider()
}

/// Serves the certificate from the cert directory, reloading it when the files change. A
/// rotation that leaves the files unreadable or mismatched keeps the previous certificate.
pub(super) struct ReloadingCertResolver {
    dir: PathBuf,
    current: Mutex<(PemFiles, Arc<CertifiedKey>)>,
}

impl fmt::Debug for ReloadingCertResolver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReloadingCertResolver")
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

impl ReloadingCertResolver {
    /// Loads the certificate now; fails, naming the file at fault, if it cannot.
    pub(super) fn new(dir: &Path) -> Result<Self, WebhookError> {
        let files = PemFiles::read(dir)?;
        let key = files.certified_key()?;
        Ok(Self {
            dir: dir.to_owned(),
            current: Mutex::new((files, Arc::new(key))),
        })
    }

    fn current(&self) -> Arc<CertifiedKey> {
        let mut current = match self.current.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        // Two small files per handshake: cheap, and exact where modification times are coarse.
        let files = match PemFiles::read(&self.dir) {
            Ok(files) => files,
            Err(e) => {
                tracing::warn!(error = %e, "keeping the previous webhook serving certificate");
                return current.1.clone();
            }
        };
        if files != current.0 {
            match files.certified_key() {
                Ok(key) => {
                    tracing::info!(dir = %self.dir.display(), "reloaded the webhook serving certificate");
                    *current = (files, Arc::new(key));
                }
                Err(e) => {
                    // Remember the contents so a broken file is reported once, not on every
                    // handshake; the next change is tried again.
                    tracing::warn!(error = %e, "keeping the previous webhook serving certificate");
                    current.0 = files;
                }
            }
        }
        current.1.clone()
    }
}

impl ResolvesServerCert for ReloadingCertResolver {
    fn resolve(&self, _client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current())
    }
}

/// The rustls server configuration: HTTP/1.1 over TLS with the certificate from `cert_dir`.
pub(super) fn server_config(cert_dir: &Path) -> Result<ServerConfig, WebhookError> {
    let resolver = ReloadingCertResolver::new(cert_dir)?;
    let mut config = ServerConfig::builder_with_provider(Arc::new(provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| WebhookError::Tls(e.to_string()))?
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(resolver));
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

/// A listener for `axum::serve` that yields connections whose TLS handshake has finished.
/// Handshakes run in their own tasks, so a slow or broken client delays no one else.
pub(super) struct TlsListener {
    connections: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    local_addr: SocketAddr,
    accept_task: tokio::task::JoinHandle<()>,
}

impl fmt::Debug for TlsListener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsListener")
            .field("local_addr", &self.local_addr)
            .finish_non_exhaustive()
    }
}

impl TlsListener {
    /// Starts accepting on `tcp` with `config`.
    pub(super) fn new(tcp: TcpListener, config: ServerConfig) -> std::io::Result<Self> {
        let local_addr = tcp.local_addr()?;
        let acceptor = TlsAcceptor::from(Arc::new(config));
        let (sender, connections) = mpsc::channel(64);
        let accept_task = tokio::spawn(accept_loop(tcp, acceptor, sender));
        Ok(Self {
            connections,
            local_addr,
            accept_task,
        })
    }

    /// The address the listener is bound to.
    pub(super) fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }
}

impl Drop for TlsListener {
    fn drop(&mut self) {
        self.accept_task.abort();
    }
}

async fn accept_loop(
    tcp: TcpListener,
    acceptor: TlsAcceptor,
    sender: mpsc::Sender<(TlsStream<TcpStream>, SocketAddr)>,
) {
    loop {
        let (stream, peer) = match tcp.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                // Out of file descriptors and the like: wait instead of spinning.
                tracing::warn!(error = %e, "accepting a webhook connection");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let acceptor = acceptor.clone();
        let sender = sender.clone();
        tokio::spawn(async move {
            match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                Ok(Ok(tls)) => {
                    let _ = sender.send((tls, peer)).await;
                }
                Ok(Err(e)) => tracing::debug!(%peer, error = %e, "webhook TLS handshake failed"),
                Err(_) => tracing::debug!(%peer, "webhook TLS handshake timed out"),
            }
        });
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.connections.recv().await {
            Some(connection) => connection,
            // The accept loop only ends when this listener is dropped.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.local_addr)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn self_signed() -> (String, String) {
        let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
        (cert.cert.pem(), cert.signing_key.serialize_pem())
    }

    /// The certificate the server would serve from `dir`, or why it cannot start.
    fn load(dir: &Path) -> Result<Arc<CertifiedKey>, WebhookError> {
        ReloadingCertResolver::new(dir).map(|resolver| resolver.current())
    }

    fn dir_with(cert: Option<&str>, key: Option<&str>) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        if let Some(cert) = cert {
            std::fs::write(dir.path().join(CERT_FILE), cert).unwrap();
        }
        if let Some(key) = key {
            std::fs::write(dir.path().join(KEY_FILE), key).unwrap();
        }
        dir
    }

    #[test]
    fn loads_a_matching_pair() {
        let (cert, key) = self_signed();
        let dir = dir_with(Some(&cert), Some(&key));
        let loaded = load(dir.path()).unwrap();
        assert_eq!(loaded.cert.len(), 1);
    }

    #[test]
    fn missing_files_are_named() {
        let (cert, key) = self_signed();
        let dir = dir_with(None, Some(&key));
        let error = load(dir.path()).unwrap_err().to_string();
        assert!(
            error.contains(&dir.path().join("tls.crt").display().to_string()),
            "{error}"
        );
        let dir = dir_with(Some(&cert), None);
        let error = load(dir.path()).unwrap_err().to_string();
        assert!(
            error.contains(&dir.path().join("tls.key").display().to_string()),
            "{error}"
        );
    }

    #[test]
    fn invalid_files_are_named() {
        let (cert, key) = self_signed();
        let dir = dir_with(Some("not a certificate"), Some(&key));
        let error = load(dir.path()).unwrap_err().to_string();
        assert!(
            error.contains("tls.crt") && error.contains("no PEM CERTIFICATE"),
            "{error}"
        );

        let dir = dir_with(Some(&cert), Some(&cert));
        let error = load(dir.path()).unwrap_err().to_string();
        assert!(
            error.contains("tls.key") && error.contains("no PEM private key"),
            "{error}"
        );

        let (_, other_key) = self_signed();
        let dir = dir_with(Some(&cert), Some(&other_key));
        let error = load(dir.path()).unwrap_err().to_string();
        assert!(
            error.contains("tls.key") && error.contains("does not match"),
            "{error}"
        );
    }

    #[test]
    fn a_rotated_certificate_is_served_and_a_broken_one_ignored() {
        let (cert, key) = self_signed();
        let dir = dir_with(Some(&cert), Some(&key));
        let resolver = ReloadingCertResolver::new(dir.path()).unwrap();
        let first = resolver.current();

        let (cert2, key2) = self_signed();
        std::fs::write(dir.path().join(KEY_FILE), key2).unwrap();
        std::fs::write(dir.path().join(CERT_FILE), &cert2).unwrap();
        let second = resolver.current();
        assert_ne!(first.cert, second.cert);
        assert_eq!(
            second.cert[0].as_ref(),
            CertificateDer::from_pem_slice(cert2.as_bytes())
                .unwrap()
                .as_ref()
        );

        std::fs::write(dir.path().join(CERT_FILE), "garbage").unwrap();
        assert_eq!(resolver.current().cert, second.cert);
    }
}
