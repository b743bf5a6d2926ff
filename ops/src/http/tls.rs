//! HTTPS for the listener (`[http] tls_cert`, `tls_key`) with rustls, and
//! the warning for a listener that serves plain HTTP beyond this machine.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// The server config for a PEM certificate chain and its key. Errors are one
/// line naming the key and the file.
pub fn server_config(cert: &Path, key: &Path) -> anyhow::Result<rustls::ServerConfig> {
    let certs = CertificateDer::pem_file_iter(cert)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| anyhow::anyhow!("http.tls_cert `{}`: cannot read a PEM certificate: {e}", cert.display()))?;
    if certs.is_empty() {
        anyhow::bail!("http.tls_cert `{}`: no certificate in the file", cert.display());
    }
    let key = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| anyhow::anyhow!("http.tls_key `{}`: cannot read a PEM private key: {e}", key.display()))?;
    // An explicit provider: no process-wide default needs installing first.
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| anyhow::anyhow!("http TLS: {e}"))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| anyhow::anyhow!("http.tls_cert / http.tls_key: the key does not fit the certificate: {e}"))
}

/// The start-up warning for `addr` served without TLS beyond loopback
/// (`None` on loopback or with TLS): tokens would cross the network in clear.
pub fn plain_http_warning(addr: SocketAddr, tls: bool) -> Option<String> {
    (!tls && !addr.ip().is_loopback()).then(|| {
        format!(
            "the HTTP API listens on {addr}, beyond this machine, without TLS: the API token crosses the network in clear; set [http] tls_cert and tls_key, or listen on 127.0.0.1 behind a TLS proxy"
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_http_beyond_loopback_is_warned_about() {
        let cases = [
            ("127.0.0.1:9184", false, false),
            ("[::1]:9184", false, false),
            ("0.0.0.0:9184", false, true),
            ("192.168.1.5:9184", false, true),
            ("0.0.0.0:9184", true, false),
        ];
        for (addr, tls, warned) in cases {
            let addr: SocketAddr = addr.parse().unwrap();
            assert_eq!(plain_http_warning(addr, tls).is_some(), warned, "{addr} tls={tls}");
        }
    }

    #[test]
    fn unreadable_files_name_their_key() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope.pem");
        let err = server_config(&missing, &missing).unwrap_err().to_string();
        assert!(err.starts_with("http.tls_cert") && err.contains("nope.pem"), "{err}");
    }
}
