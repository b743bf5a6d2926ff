//! The Coinbase protocol's test API key: a CDP-style key (a key name and an
//! EC P-256 private key in SEC1 PEM, or Ed25519 in PKCS#8 PEM with
//! `coinbase_key_type = "ed25519"`) made for the first account when the
//! config registers none, so a client can sign JWTs without making a key.
//!
//! As for the Binance test key ([`crate::test_key`]): the private PEM is
//! written with mode 0600 to the key dir (else the state dir) and read back
//! at the next start; without a dir it lives in memory only. Only its file
//! is ever shown.

use std::path::{Path, PathBuf};

use ed25519_dalek::pkcs8::DecodePrivateKey as _;
use p256::pkcs8::LineEnding;
use rand::RngCore as _;
use serde::{Deserialize, Serialize};

use super::ids::hashed_uuid;
use super::jwt::PublicKey;
use crate::{SandboxConfig, SandboxError};

/// The kind of test key the Coinbase protocol makes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KeyType {
    /// ECDSA P-256 (ES256), what Coinbase issues by default.
    #[default]
    Ec,
    /// Ed25519 (EdDSA).
    Ed25519,
}

impl KeyType {
    /// The private key's file name in the key dir.
    pub fn file_name(self) -> &'static str {
        match self {
            Self::Ec => "keel-sandbox-coinbase-ec.pem",
            Self::Ed25519 => "keel-sandbox-coinbase-ed25519.pem",
        }
    }
}

/// The generated (or re-read) Coinbase test key of the first account.
pub struct CoinbaseTestKey {
    /// The key name (JWT `kid` and `sub`): `organizations/keel-sandbox/apiKeys/<uuid>`.
    pub key_name: String,
    /// The private key PEM.
    pub private_key_pem: String,
    /// Where it is kept (none: in memory only).
    pub path: Option<PathBuf>,
    /// An Ed25519 key's second form, beside the PEM: raw base64 of the seed
    /// and public key (64 bytes, as the CDP portal issues it). ccxt takes
    /// an Ed25519 secret only so (given a PEM it signs ES256).
    pub base64_path: Option<PathBuf>,
}

impl std::fmt::Debug for CoinbaseTestKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CoinbaseTestKey")
            .field("key_name", &self.key_name)
            .field("private_key_pem", &"<redacted>")
            .field("path", &self.path)
            .field("base64_path", &self.base64_path)
            .finish()
    }
}

/// Gives the first account its Coinbase test key when the config asks for
/// one and the account registers none: reads the key dir's key, or makes one
/// and writes it there. Sets the account's `coinbase_key_name` and
/// `coinbase_public_key`.
pub(crate) fn prepare(cfg: &mut SandboxConfig) -> Result<Option<CoinbaseTestKey>, SandboxError> {
    if !cfg.generate_coinbase_key {
        return Ok(None);
    }
    let Some(first) = cfg.accounts.first() else { return Ok(None) };
    if first.coinbase_public_key.is_some() {
        return Ok(None);
    }
    let kind = cfg.coinbase_key_type;
    let path = cfg.key_dir.clone().or_else(|| cfg.state_dir.clone()).map(|d| d.join(kind.file_name()));
    let pem = match &path {
        Some(p) if p.exists() => read(p)?,
        _ => {
            let pem = generate(kind)?;
            if let Some(p) = &path {
                crate::test_key::write_private(p, &pem)?;
                tracing::info!(path = %p.display(), "sandbox: generated a Coinbase test API key (private key written with mode 0600)");
            }
            pem
        }
    };
    let public = public_pem(&pem)?;
    let base64_path = match (&path, kind) {
        (Some(p), KeyType::Ed25519) => {
            // Derived from the PEM at every start, so it never goes stale.
            let b64 = p.with_extension("b64");
            if b64.exists() {
                std::fs::remove_file(&b64)
                    .map_err(|e| SandboxError::Config(format!("cannot replace the test key {}: {e}", b64.display())))?;
            }
            crate::test_key::write_private(&b64, &raw_base64(&pem)?)?;
            Some(b64)
        }
        _ => None,
    };
    let key_name = format!("organizations/keel-sandbox/apiKeys/{}", hashed_uuid(&["coinbase-key", &public]));
    if let Some(acc) = cfg.accounts.first_mut() {
        acc.coinbase_key_name = Some(key_name.clone());
        acc.coinbase_public_key = Some(public);
    }
    Ok(Some(CoinbaseTestKey { key_name, private_key_pem: pem, path, base64_path }))
}

/// An Ed25519 PKCS#8 PEM as raw base64 of seed and public key.
fn raw_base64(pem: &str) -> Result<String, SandboxError> {
    use base64::Engine as _;
    let k = ed25519_dalek::SigningKey::from_pkcs8_pem(pem)
        .map_err(|e| SandboxError::Config(format!("cannot read the Coinbase Ed25519 test key: {e}")))?;
    Ok(base64::engine::general_purpose::STANDARD.encode(k.to_keypair_bytes()))
}

fn generate(kind: KeyType) -> Result<String, SandboxError> {
    let bad = |e: String| SandboxError::Config(format!("cannot encode the Coinbase test key: {e}"));
    match kind {
        KeyType::Ed25519 => crate::test_key::pem_of(&crate::test_key::generate()),
        KeyType::Ec => {
            // Rejection sampling: 32 random bytes are a valid scalar but for
            // a vanishing fraction (zero or above the group order).
            let secret = loop {
                let mut bytes = [0u8; 32];
                rand::rng().fill_bytes(&mut bytes);
                if let Ok(k) = p256::SecretKey::from_slice(&bytes) {
                    break k;
                }
            };
            sec1_pem_with_curve(&secret).map_err(|e| bad(e.to_string()))
        }
    }
}

/// The OID of P-256 (`prime256v1`).
const P256_OID: sec1::der::asn1::ObjectIdentifier =
    sec1::der::asn1::ObjectIdentifier::new_unwrap("1.2.840.10045.3.1.7");

/// The key as SEC1 PEM (`EC PRIVATE KEY`) naming its curve, as Coinbase's
/// CDP keys and OpenSSL write it: p256's own encoding leaves the curve out,
/// and Python's `cryptography` (under the official SDK) refuses such a key.
fn sec1_pem_with_curve(secret: &p256::SecretKey) -> Result<String, sec1::der::Error> {
    use p256::elliptic_curve::sec1::ToEncodedPoint as _;
    use sec1::der::Encode as _;
    let scalar = secret.to_bytes();
    let point = secret.public_key().to_encoded_point(false);
    let key = sec1::EcPrivateKey {
        private_key: scalar.as_slice(),
        parameters: Some(sec1::EcParameters::NamedCurve(P256_OID)),
        public_key: Some(point.as_bytes()),
    };
    sec1::der::pem::encode_string("EC PRIVATE KEY", LineEnding::LF, &key.to_der()?)
        .map_err(|_| sec1::der::Error::from(sec1::der::ErrorKind::Failed))
}

/// The public half of a private PEM, as a `PUBLIC KEY` PEM.
fn public_pem(private: &str) -> Result<String, SandboxError> {
    use p256::pkcs8::EncodePublicKey as _;
    let bad = |e: String| SandboxError::Config(format!("cannot encode the Coinbase test key's public half: {e}"));
    if let Ok(k) = p256::SecretKey::from_sec1_pem(private) {
        return k.public_key().to_public_key_pem(LineEnding::LF).map_err(|e| bad(e.to_string()));
    }
    let k = ed25519_dalek::SigningKey::from_pkcs8_pem(private).map_err(|e| bad(e.to_string()))?;
    ed25519_dalek::pkcs8::EncodePublicKey::to_public_key_pem(&k.verifying_key(), LineEnding::LF)
        .map_err(|e| bad(e.to_string()))
}

fn read(path: &Path) -> Result<String, SandboxError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| SandboxError::Config(format!("cannot read the Coinbase test key {}: {e}", path.display())))?;
    PublicKey::from_pem(&text)
        .map_err(|e| SandboxError::Config(format!("{}: {e}; remove it to have a new one made", path.display())))?;
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ec_test_key_names_its_curve_as_openssl_and_python_expect() {
        let pem = generate(KeyType::Ec).unwrap();
        let (label, der) = sec1::der::pem::decode_vec(pem.as_bytes()).unwrap();
        assert_eq!(label, "EC PRIVATE KEY");
        let key: sec1::EcPrivateKey<'_> = sec1::der::Decode::from_der(&der).unwrap();
        assert_eq!(key.parameters, Some(sec1::EcParameters::NamedCurve(P256_OID)), "p256 alone leaves it out");
        let back = p256::SecretKey::from_sec1_pem(&pem).unwrap();
        assert_eq!(back.to_bytes().as_slice(), key.private_key);
    }

    #[test]
    fn both_key_types_are_written_owner_only_registered_and_read_back() {
        for (kind, begins, alg) in [
            (KeyType::Ec, "-----BEGIN EC PRIVATE KEY-----", "ES256"),
            (KeyType::Ed25519, "-----BEGIN PRIVATE KEY-----", "EdDSA"),
        ] {
            let dir = tempfile::tempdir().unwrap();
            let mk = || SandboxConfig {
                key_dir: Some(dir.path().to_path_buf()),
                coinbase_key_type: kind,
                generate_coinbase_key: true,
                ..SandboxConfig::default()
            };
            let mut cfg = mk();
            let key = prepare(&mut cfg).unwrap().unwrap();
            let path = dir.path().join(kind.file_name());
            assert_eq!(key.path.as_deref(), Some(path.as_path()));
            assert!(key.private_key_pem.starts_with(begins), "{kind:?}");
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
            }
            if kind == KeyType::Ed25519 {
                use base64::Engine as _;
                let b64_path = key.base64_path.clone().expect("an Ed25519 key has its base64 form");
                let text = std::fs::read_to_string(&b64_path).unwrap();
                assert_eq!(text.len(), 88, "64 bytes, as the CDP portal issues it (ccxt keys on the length)");
                let raw = base64::engine::general_purpose::STANDARD.decode(&text).unwrap();
                let seed: [u8; 32] = raw[..32].try_into().unwrap();
                let from_b64 = ed25519_dalek::SigningKey::from_bytes(&seed);
                let from_pem = ed25519_dalek::SigningKey::from_pkcs8_pem(&key.private_key_pem).unwrap();
                assert_eq!(from_b64.to_bytes(), from_pem.to_bytes(), "the same key in both forms");
                assert_eq!(&raw[32..], from_pem.verifying_key().as_bytes());
                #[cfg(unix)]
                {
                    use std::os::unix::fs::PermissionsExt;
                    assert_eq!(std::fs::metadata(&b64_path).unwrap().permissions().mode() & 0o777, 0o600);
                }
            } else {
                assert!(key.base64_path.is_none());
            }
            let public = cfg.accounts[0].coinbase_public_key.clone().unwrap();
            assert_eq!(PublicKey::from_pem(&public).unwrap().alg(), alg);
            assert_eq!(cfg.accounts[0].coinbase_key_name.as_deref(), Some(key.key_name.as_str()));
            assert!(!format!("{key:?}").contains("PRIVATE KEY-"), "Debug never shows the key");
            let mut again = mk();
            let second = prepare(&mut again).unwrap().unwrap();
            assert_eq!((second.private_key_pem, second.key_name), (key.private_key_pem, key.key_name));
        }
    }
}
