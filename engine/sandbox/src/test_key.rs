//! The sandbox's test Ed25519 API key: Binance's recommended key type, made
//! for the first account when the config registers none, so a client can
//! trade on Ed25519 (and `session.logon`) without generating a key itself.
//!
//! The private key is written as a PKCS#8 PEM with mode 0600 to the key dir
//! (`[sandbox] key_dir`, else the state dir) and read back at the next start,
//! so the key a client was given keeps working across restarts. Without a dir
//! it lives in memory only. It is test data for clients on this machine, not a
//! credential — but it is still never logged: only its file is shown.

use std::io::Write;
use std::path::{Path, PathBuf};

use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
use ed25519_dalek::pkcs8::{DecodePrivateKey, EncodePrivateKey, EncodePublicKey};
use ed25519_dalek::SigningKey;
use rand::RngCore;

use crate::{SandboxConfig, SandboxError};

/// The private key's file name in the key dir.
pub const KEY_FILE: &str = "keel-sandbox-ed25519.pem";

/// The generated (or re-read) test key of the first account.
pub struct TestKey {
    /// The private key, PKCS#8 PEM (`-----BEGIN PRIVATE KEY-----`).
    pub private_key_pem: String,
    /// Where it is kept (none: in memory only).
    pub path: Option<PathBuf>,
}

impl std::fmt::Debug for TestKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestKey").field("private_key_pem", &"<redacted>").field("path", &self.path).finish()
    }
}

/// Gives the first account its test key when the config asks for one and the
/// account registers no Ed25519 key of its own: reads the key dir's key, or
/// makes one and writes it there. Sets the account's `ed25519_public_key`.
pub(crate) fn prepare(cfg: &mut SandboxConfig) -> Result<Option<TestKey>, SandboxError> {
    if !cfg.generate_ed25519_key {
        return Ok(None);
    }
    let Some(first) = cfg.accounts.first() else { return Ok(None) };
    if first.ed25519_public_key.is_some() {
        return Ok(None);
    }
    let dir = cfg.key_dir.clone().or_else(|| cfg.state_dir.clone());
    let path = dir.map(|d| d.join(KEY_FILE));
    let signing = match &path {
        Some(p) if p.exists() => read(p)?,
        _ => {
            let key = generate();
            if let Some(p) = &path {
                write(p, &key)?;
                tracing::info!(path = %p.display(), "sandbox: generated a test Ed25519 API key (private key written with mode 0600)");
            }
            key
        }
    };
    let public = signing
        .verifying_key()
        .to_public_key_pem(LineEnding::LF)
        .map_err(|e| SandboxError::Config(format!("cannot encode the test Ed25519 public key: {e}")))?;
    let private_key_pem = pem_of(&signing)?;
    if let Some(acc) = cfg.accounts.first_mut() {
        acc.ed25519_public_key = Some(public);
    }
    Ok(Some(TestKey { private_key_pem, path }))
}

pub(crate) fn generate() -> SigningKey {
    let mut seed = [0u8; 32];
    rand::rng().fill_bytes(&mut seed);
    SigningKey::from_bytes(&seed)
}

/// PKCS#8 v1 (the private key only), as `openssl genpkey -algorithm ed25519`
/// writes it and Binance's key guide uses: clients that read v1 only (e.g.
/// Python's `cryptography`) refuse the v2 form with the public key inside.
pub(crate) fn pem_of(key: &SigningKey) -> Result<String, SandboxError> {
    ed25519_dalek::pkcs8::KeypairBytes { secret_key: key.to_bytes(), public_key: None }
        .to_pkcs8_pem(LineEnding::LF)
        .map(|pem| pem.to_string())
        .map_err(|e| SandboxError::Config(format!("cannot encode the test Ed25519 private key: {e}")))
}

fn read(path: &Path) -> Result<SigningKey, SandboxError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| SandboxError::Config(format!("cannot read the test key {}: {e}", path.display())))?;
    SigningKey::from_pkcs8_pem(&text).map_err(|e| {
        SandboxError::Config(format!(
            "{} is not an Ed25519 private key in PKCS#8 PEM ({e}); remove it to have a new one made",
            path.display()
        ))
    })
}

fn write(path: &Path, key: &SigningKey) -> Result<(), SandboxError> {
    write_private(path, &pem_of(key)?)
}

/// Writes a private key's PEM readable by its owner only, replacing nothing:
/// the file is created new (a file that appeared meanwhile is an error).
pub(crate) fn write_private(path: &Path, pem: &str) -> Result<(), SandboxError> {
    let fail = |e: std::io::Error| SandboxError::Config(format!("cannot write the test key {}: {e}", path.display()));
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(fail)?;
    }
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    let mut file = opts.open(path).map_err(fail)?;
    file.write_all(pem.as_bytes()).map_err(fail)?;
    file.sync_all().map_err(fail)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_private_key_is_written_as_openssl_writes_it() {
        let key = SigningKey::from_bytes(&[7u8; 32]);
        let pem = pem_of(&key).unwrap();
        // PKCS#8 v1: version 0, the Ed25519 OID, the 32-byte seed, nothing more.
        let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
        assert!(body.starts_with("MC4CAQAwBQYDK2VwBCIEI"), "{pem}");
        assert_eq!(body.len(), 64, "48 bytes of DER, no public key inside: {pem}");
        assert_eq!(SigningKey::from_pkcs8_pem(&pem).unwrap().to_bytes(), key.to_bytes());
    }

    #[test]
    fn the_key_is_written_owner_only_and_read_back_at_the_next_start() {
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = SandboxConfig { key_dir: Some(dir.path().join("keys")), ..SandboxConfig::default() };
        let first = prepare(&mut cfg).unwrap().unwrap();
        let path = dir.path().join("keys").join(KEY_FILE);
        assert_eq!(first.path.as_deref(), Some(path.as_path()));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "the private key is readable by its owner only");
        }
        assert!(std::fs::read_to_string(&path).unwrap().starts_with("-----BEGIN PRIVATE KEY-----"));
        let public = cfg.accounts[0].ed25519_public_key.clone().unwrap();
        assert!(crate::auth::ed25519_public_key(&public).is_ok());

        let mut again = SandboxConfig { key_dir: Some(dir.path().join("keys")), ..SandboxConfig::default() };
        let second = prepare(&mut again).unwrap().unwrap();
        assert_eq!(second.private_key_pem, first.private_key_pem, "the same key across restarts");
        assert_eq!(again.accounts[0].ed25519_public_key, Some(public));
    }

    #[test]
    fn no_dir_means_memory_only_and_a_registered_key_or_opt_out_means_none() {
        let mut cfg = SandboxConfig::default();
        let key = prepare(&mut cfg).unwrap().unwrap();
        assert!(key.path.is_none());
        assert!(!format!("{key:?}").contains("PRIVATE"), "Debug never shows the key");
        // The account now has a key: nothing more is generated.
        assert!(prepare(&mut cfg).unwrap().is_none());
        let mut off = SandboxConfig { generate_ed25519_key: false, ..SandboxConfig::default() };
        assert!(prepare(&mut off).unwrap().is_none());
        assert!(off.accounts[0].ed25519_public_key.is_none());
    }

    #[test]
    fn a_file_that_is_not_a_key_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(KEY_FILE), "not a key").unwrap();
        let mut cfg = SandboxConfig { state_dir: Some(dir.path().to_path_buf()), ..SandboxConfig::default() };
        let err = prepare(&mut cfg).unwrap_err().to_string();
        assert!(err.contains(KEY_FILE) && err.contains("PKCS#8"), "{err}");
    }
}
