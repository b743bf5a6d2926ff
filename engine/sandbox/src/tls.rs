//! HTTPS and WSS for the sandbox (`[sandbox] tls`, `keel sandbox --tls`):
//! a self-signed certificate for `127.0.0.1` and `localhost`, written out so
//! a client that insists on TLS (the official Coinbase Python SDK builds
//! `https://` URLs only) can be told to trust it, and a listener that hands
//! axum connections after their TLS handshake.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

use crate::SandboxError;

/// The certificate's file name in `key_dir` (PEM; it is also the CA a
/// client trusts, being self-signed).
pub const CERT_FILE: &str = "sandbox-cert.pem";

/// How long a client may take over its TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The certificate a TLS sandbox serves.
pub struct Certificate {
    /// The certificate (PEM).
    pub cert_pem: String,
    /// Where it was written (none: no `key_dir`, in memory only).
    pub path: Option<PathBuf>,
    config: Arc<rustls::ServerConfig>,
}

impl Certificate {
    /// A new self-signed certificate for `127.0.0.1` and `localhost`,
    /// written to `dir/`[`CERT_FILE`] when a dir is given. A new one each
    /// start: its key lives only in memory, so nothing secret is on disk.
    pub fn generate(dir: Option<&Path>) -> Result<Self, SandboxError> {
        let names = vec!["127.0.0.1".to_string(), "localhost".to_string()];
        let rcgen::CertifiedKey { cert, signing_key } = rcgen::generate_simple_self_signed(names)
            .map_err(|e| SandboxError::Config(format!("sandbox.tls: cannot make a certificate: {e}")))?;
        let cert_pem = cert.pem();
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(signing_key.serialize_der()));
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| SandboxError::Config(format!("sandbox.tls: {e}")))?
            .with_no_client_auth()
            .with_single_cert(vec![CertificateDer::from(cert.der().to_vec())], key)
            .map_err(|e| SandboxError::Config(format!("sandbox.tls: {e}")))?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        let path = match dir {
            Some(dir) => {
                let path = dir.join(CERT_FILE);
                std::fs::write(&path, &cert_pem)
                    .map_err(|e| SandboxError::Config(format!("sandbox.tls: cannot write {}: {e}", path.display())))?;
                Some(path)
            }
            None => None,
        };
        Ok(Self { cert_pem, path, config: Arc::new(config) })
    }

    /// A listener that serves `tcp` through TLS: handshakes run in their
    /// own tasks, so a client that stalls in one holds up no one else.
    pub(crate) fn listener(&self, tcp: TcpListener) -> std::io::Result<TlsListener> {
        let addr = tcp.local_addr()?;
        let acceptor = TlsAcceptor::from(self.config.clone());
        let (tx, rx) = mpsc::channel(64);
        let task = tokio::spawn(accept_loop(tcp, acceptor, tx));
        Ok(TlsListener { rx, addr, _task: AbortOnDrop(task) })
    }
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

async fn accept_loop(tcp: TcpListener, acceptor: TlsAcceptor, tx: mpsc::Sender<(TlsStream<TcpStream>, SocketAddr)>) {
    loop {
        let (stream, peer) = match tcp.accept().await {
            Ok(c) => c,
            Err(e) => {
                tracing::debug!(error = %e, "sandbox tls: accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let (acceptor, tx) = (acceptor.clone(), tx.clone());
        tokio::spawn(async move {
            match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                Ok(Ok(tls)) => {
                    let _ = tx.send((tls, peer)).await;
                }
                Ok(Err(e)) => tracing::debug!(error = %e, %peer, "sandbox tls: handshake failed"),
                Err(_) => tracing::debug!(%peer, "sandbox tls: handshake timed out"),
            }
        });
    }
}

/// Connections after their TLS handshake, for `axum::serve`.
pub(crate) struct TlsListener {
    rx: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    addr: SocketAddr,
    _task: AbortOnDrop,
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.rx.recv().await {
            Some(c) => c,
            // The accept loop ended (the server is stopping): wait for the shutdown.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.addr)
    }
}
