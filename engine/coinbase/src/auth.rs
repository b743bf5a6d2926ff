//! Coinbase's per-request JWTs (reference §2.2, §2.3): a CDP key name and an
//! EC P-256 (ES256) or Ed25519 (EdDSA) private key sign a short-lived token
//! bound to one method and path.
//!
//! The private key is a secret: [`Credentials`] prints `<redacted>` in its
//! `Debug`, and no error carries any part of the key text.

use std::fmt;

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use serde_json::json;

/// How long a token is valid: "Your JWT expires after 2 minutes".
pub const JWT_LIFETIME_S: i64 = 120;

/// The issuer since SDK 1.4.1 (2024-05); before it was `coinbase-cloud`.
pub const ISSUER: &str = "cdp";

/// Why a key cannot be used. Never holds any part of the key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// The key text is not a key Coinbase issues.
    #[error("the Coinbase private key is not usable: {0}")]
    Key(String),
    /// The key name (`kid`) is empty.
    #[error("the Coinbase API key name is empty")]
    NoKeyName,
    /// Signing failed (not expected with a well-formed key).
    #[error("signing the Coinbase JWT failed")]
    Sign,
}

/// The JWS algorithm of a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    /// ECDSA on P-256 with SHA-256; raw 64-byte `r‖s` signatures.
    Es256,
    /// Ed25519 (RFC 8037).
    EdDsa,
}

impl Algorithm {
    /// The JOSE `alg` value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Es256 => "ES256",
            Self::EdDsa => "EdDSA",
        }
    }
}

enum PrivateKey {
    Es256(p256::ecdsa::SigningKey),
    EdDsa(ed25519_dalek::SigningKey),
}

/// A CDP API key: its name and private key, able to sign Coinbase JWTs.
pub struct Credentials {
    key_name: String,
    key: PrivateKey,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("key_name", &self.key_name)
            .field("algorithm", &self.algorithm())
            .field("private_key", &"<redacted>")
            .finish()
    }
}

impl Credentials {
    /// Reads a key as CDP issues it (reference §2.1): an EC P-256 key in
    /// SEC1 PEM (`-----BEGIN EC PRIVATE KEY-----`), a P-256 or Ed25519 key in
    /// PKCS#8 PEM (`-----BEGIN PRIVATE KEY-----`), or an Ed25519 key as raw
    /// base64 of its 32-byte seed or 64-byte seed‖public key. Literal `\n`
    /// sequences (a PEM pasted into one line) are read as newlines.
    pub fn new(key_name: &str, private_key: &str) -> Result<Self, AuthError> {
        let key_name = key_name.trim();
        if key_name.is_empty() {
            return Err(AuthError::NoKeyName);
        }
        let key = parse_private_key(private_key)?;
        Ok(Self { key_name: key_name.to_string(), key })
    }

    /// The key name (`kid` and `sub`).
    pub fn key_name(&self) -> &str {
        &self.key_name
    }

    /// The algorithm the key signs with.
    pub fn algorithm(&self) -> Algorithm {
        match self.key {
            PrivateKey::Es256(_) => Algorithm::Es256,
            PrivateKey::EdDsa(_) => Algorithm::EdDsa,
        }
    }

    /// The public key: SEC1 uncompressed point (65 bytes) for ES256, the
    /// 32-byte key for EdDSA — what a verifier registers for this key name.
    pub fn public_key_bytes(&self) -> Vec<u8> {
        match &self.key {
            PrivateKey::Es256(k) => k.verifying_key().to_encoded_point(false).as_bytes().to_vec(),
            PrivateKey::EdDsa(k) => k.verifying_key().to_bytes().to_vec(),
        }
    }

    /// The token for one REST request: `uri` = `"METHOD host/path"` (no
    /// scheme, no query — anything after `?` in `path` is dropped), valid
    /// from `now_s` for [`JWT_LIFETIME_S`]. `host` is the host the request
    /// goes to, with its port when the URL has one.
    pub fn rest_jwt(&self, method: &str, host: &str, path: &str, now_s: i64) -> Result<String, AuthError> {
        self.jwt(Some(rest_uri(method, host, path)), now_s)
    }

    /// The token for a WebSocket subscribe: the same claims without `uri`.
    pub fn ws_jwt(&self, now_s: i64) -> Result<String, AuthError> {
        self.jwt(None, now_s)
    }

    fn jwt(&self, uri: Option<String>, now_s: i64) -> Result<String, AuthError> {
        // 32 random bytes as hex, as the official SDK's `secrets.token_hex()`.
        let nonce = hex::encode(rand::random::<[u8; 32]>());
        let header = json!({"alg": self.algorithm().as_str(), "typ": "JWT", "kid": self.key_name, "nonce": nonce});
        let mut claims = json!({
            "sub": self.key_name,
            "iss": ISSUER,
            "nbf": now_s,
            "exp": now_s + JWT_LIFETIME_S,
        });
        if let Some(uri) = uri {
            claims["uri"] = uri.into();
        }
        let signing_input =
            format!("{}.{}", URL_SAFE_NO_PAD.encode(header.to_string()), URL_SAFE_NO_PAD.encode(claims.to_string()));
        let signature = self.sign(signing_input.as_bytes())?;
        Ok(format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(signature)))
    }

    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, AuthError> {
        use p256::ecdsa::signature::Signer as _;
        match &self.key {
            PrivateKey::Es256(k) => {
                let sig: p256::ecdsa::Signature = k.try_sign(message).map_err(|_| AuthError::Sign)?;
                // JWS wants r‖s (RFC 7518 §3.4), never DER.
                Ok(sig.to_bytes().to_vec())
            }
            PrivateKey::EdDsa(k) => Ok(k.sign(message).to_bytes().to_vec()),
        }
    }
}

/// The `uri` claim of a REST request: `"METHOD host/path"`, the method in
/// upper case, the query (anything after `?`) left out.
pub fn rest_uri(method: &str, host: &str, path: &str) -> String {
    let path = path.split_once('?').map_or(path, |(p, _)| p);
    format!("{} {host}{path}", method.to_ascii_uppercase())
}

fn parse_private_key(text: &str) -> Result<PrivateKey, AuthError> {
    let text = text.trim().replace("\\n", "\n");
    if text.contains("-----BEGIN EC PRIVATE KEY-----") {
        let secret = p256::SecretKey::from_sec1_pem(&text)
            .map_err(|_| AuthError::Key("an `EC PRIVATE KEY` PEM that is not a valid P-256 key (SEC1)".into()))?;
        return Ok(PrivateKey::Es256(secret.into()));
    }
    if text.contains("-----BEGIN PRIVATE KEY-----") {
        use ed25519_dalek::pkcs8::DecodePrivateKey as _;
        if let Ok(secret) = p256::SecretKey::from_pkcs8_pem(&text) {
            return Ok(PrivateKey::Es256(secret.into()));
        }
        return ed25519_dalek::SigningKey::from_pkcs8_pem(&text).map(PrivateKey::EdDsa).map_err(|_| {
            AuthError::Key("a `PRIVATE KEY` (PKCS#8) PEM that is neither a P-256 nor an Ed25519 key".into())
        });
    }
    if text.contains("-----BEGIN") {
        return Err(AuthError::Key(
            "a PEM of another kind: expected `EC PRIVATE KEY` (P-256) or `PRIVATE KEY` (PKCS#8, P-256 or Ed25519)"
                .into(),
        ));
    }
    let compact: String = text.chars().filter(|c| !c.is_whitespace()).collect();
    let bytes = STANDARD.decode(compact.as_bytes()).map_err(|_| {
        AuthError::Key("neither a PEM nor base64 (an Ed25519 key as CDP issues it is base64 of 32 or 64 bytes)".into())
    })?;
    match bytes.len() {
        // The seed, or seed‖public key "as issued by the CDP portal": the first 32 bytes.
        32 | 64 => {
            let mut seed = [0u8; 32];
            seed.copy_from_slice(&bytes[..32]);
            Ok(PrivateKey::EdDsa(ed25519_dalek::SigningKey::from_bytes(&seed)))
        }
        n => Err(AuthError::Key(format!("base64 of {n} bytes; an Ed25519 key is 32 or 64 bytes"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use p256::ecdsa::signature::Verifier as _;
    use p256::pkcs8::{EncodePrivateKey as _, LineEnding};

    /// A fixed test-only P-256 key (scalar 0x11…11), never a real credential.
    fn p256_key() -> p256::SecretKey {
        p256::SecretKey::from_slice(&[0x11; 32]).unwrap()
    }

    fn parts(token: &str) -> (serde_json::Value, serde_json::Value, Vec<u8>, String) {
        let mut it = token.split('.');
        let (h, c, s) = (it.next().unwrap(), it.next().unwrap(), it.next().unwrap());
        assert!(it.next().is_none());
        assert!(!token.contains('='), "no base64 padding: {token}");
        let json = |p: &str| serde_json::from_slice(&URL_SAFE_NO_PAD.decode(p).unwrap()).unwrap();
        (json(h), json(c), URL_SAFE_NO_PAD.decode(s).unwrap(), format!("{h}.{c}"))
    }

    #[test]
    fn es256_from_sec1_and_pkcs8_signs_raw_r_s_with_the_documented_claims() {
        let sec1 = p256_key().to_sec1_pem(LineEnding::LF).unwrap().to_string();
        let pkcs8 = p256_key().to_pkcs8_pem(LineEnding::LF).unwrap().to_string();
        let one_line = sec1.replace('\n', "\\n");
        for pem in [sec1, pkcs8, one_line] {
            let c = Credentials::new("organizations/o/apiKeys/k", &pem).unwrap();
            assert_eq!(c.algorithm(), Algorithm::Es256);
            let token =
                c.rest_jwt("get", "api.coinbase.com", "/api/v3/brokerage/accounts?limit=5", 1_700_000_000).unwrap();
            let (h, claims, sig, input) = parts(&token);
            assert_eq!(h["alg"], "ES256");
            assert_eq!(h["typ"], "JWT");
            assert_eq!(h["kid"], "organizations/o/apiKeys/k");
            assert_eq!(h["nonce"].as_str().unwrap().len(), 64);
            assert_eq!(claims["iss"], "cdp");
            assert_eq!(claims["sub"], "organizations/o/apiKeys/k");
            assert_eq!(claims["nbf"], 1_700_000_000);
            assert_eq!(claims["exp"], 1_700_000_120);
            assert_eq!(claims["uri"], "GET api.coinbase.com/api/v3/brokerage/accounts");
            assert_eq!(sig.len(), 64, "raw r||s, not DER");
            let sig = p256::ecdsa::Signature::from_slice(&sig).unwrap();
            let vk = p256::ecdsa::VerifyingKey::from(p256_key().public_key());
            assert!(vk.verify(input.as_bytes(), &sig).is_ok());
        }
    }

    #[test]
    fn eddsa_from_pkcs8_and_raw_base64_and_ws_tokens_have_no_uri() {
        use ed25519_dalek::pkcs8::EncodePrivateKey as _;
        let key = ed25519_dalek::SigningKey::from_bytes(&[7u8; 32]);
        let pkcs8 = key.to_pkcs8_pem(LineEnding::LF).unwrap().to_string();
        let seed = STANDARD.encode([7u8; 32]);
        let mut both = [7u8; 32].to_vec();
        both.extend_from_slice(key.verifying_key().as_bytes());
        let both = STANDARD.encode(both);
        for text in [pkcs8, seed, both] {
            let c = Credentials::new("k1", &text).unwrap();
            assert_eq!(c.algorithm(), Algorithm::EdDsa);
            assert_eq!(c.public_key_bytes(), key.verifying_key().to_bytes().to_vec());
            let (h, claims, sig, input) = parts(&c.ws_jwt(1_700_000_000).unwrap());
            assert_eq!(h["alg"], "EdDSA");
            assert!(claims.get("uri").is_none());
            assert_eq!(claims["exp"], 1_700_000_120);
            let sig = ed25519_dalek::Signature::from_slice(&sig).unwrap();
            assert!(key.verifying_key().verify(input.as_bytes(), &sig).is_ok());
        }
    }

    #[test]
    fn nonces_differ_between_tokens() {
        let c = Credentials::new("k", &STANDARD.encode([1u8; 32])).unwrap();
        let a = parts(&c.ws_jwt(1).unwrap()).0;
        let b = parts(&c.ws_jwt(1).unwrap()).0;
        assert_ne!(a["nonce"], b["nonce"]);
    }

    #[test]
    fn bad_keys_are_named_and_never_echoed_and_debug_hides_the_key() {
        let secretish = "c2VjcmV0c2VjcmV0";
        let cases = [
            format!("-----BEGIN EC PRIVATE KEY-----\n{secretish}\n-----END EC PRIVATE KEY-----"),
            format!("-----BEGIN PRIVATE KEY-----\n{secretish}\n-----END PRIVATE KEY-----"),
            format!("-----BEGIN RSA PRIVATE KEY-----\n{secretish}\n-----END RSA PRIVATE KEY-----"),
            secretish.to_string(),
            "not base64 at all!".to_string(),
        ];
        for text in cases {
            let err = Credentials::new("k", &text).unwrap_err().to_string();
            assert!(err.starts_with("the Coinbase private key is not usable"), "{err}");
            assert!(!err.contains(secretish), "{err}");
        }
        assert_eq!(Credentials::new(" ", &STANDARD.encode([1u8; 32])).unwrap_err(), AuthError::NoKeyName);
        let pem = p256_key().to_sec1_pem(LineEnding::LF).unwrap().to_string();
        let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
        let shown = format!("{:?}", Credentials::new("name", &pem).unwrap());
        assert!(shown.contains("<redacted>") && shown.contains("Es256") && !shown.contains(&body[..20]), "{shown}");
    }

    #[test]
    fn rest_uri_table() {
        let cases = [
            ("GET", "api.coinbase.com", "/api/v3/brokerage/accounts", "GET api.coinbase.com/api/v3/brokerage/accounts"),
            ("post", "localhost:8443", "/api/v3/brokerage/orders", "POST localhost:8443/api/v3/brokerage/orders"),
            ("GET", "h", "/p/o-1?x=1&y=2", "GET h/p/o-1"),
        ];
        for (m, h, p, want) in cases {
            assert_eq!(rest_uri(m, h, p), want);
        }
    }
}
