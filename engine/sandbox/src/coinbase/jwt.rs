//! Verifying Coinbase JWTs as the exchange does (reference §2.4), lenient
//! exactly where real clients differ (issue 15's notes):
//!
//! - the signature: ES256 as a raw 64-byte `r‖s` (a DER signature is
//!   refused, as at Coinbase) or EdDSA, against the public key registered
//!   under the header's `kid`; the header's `alg` must be that key's;
//! - time: `nbf - 5 s <= now < exp + 5 s`, and `exp - nbf` at most 120 s;
//! - REST only: a `uri` claim, or any entry of a `uris` array, equal to
//!   `"METHOD host/path"` for the request — the method and path exactly (no
//!   query), the host as the `Host` header case-insensitively, with or
//!   without the port, and a leading `https://`/`http://` ignored (ccxt
//!   keeps `http://`);
//! - everything else (`iss`, `sub`, `aud`, `iat`, the nonce) is ignored, so
//!   the official SDK's, ccxt's and the CDP SDK's tokens all pass.

use std::collections::HashMap;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde_json::Value;

/// The longest validity a token may claim (`exp - nbf`).
pub const MAX_LIFETIME_S: i64 = 120;

/// Clock tolerance either side of the validity window (Coinbase documents
/// none; the reference suggests a small one).
pub const SKEW_S: i64 = 5;

/// A registered API key's public half.
#[derive(Debug, Clone)]
pub enum PublicKey {
    /// ECDSA P-256: verifies `ES256`.
    Es256(p256::ecdsa::VerifyingKey),
    /// Ed25519: verifies `EdDSA`.
    EdDsa(ed25519_dalek::VerifyingKey),
}

impl PublicKey {
    /// Reads a key from PEM: a public key (`-----BEGIN PUBLIC KEY-----`,
    /// P-256 or Ed25519), or a private key whose public half is wanted
    /// (`EC PRIVATE KEY`, or PKCS#8 `PRIVATE KEY` of either kind) — the
    /// sandbox hands out test keys and registers their public halves. The
    /// error never repeats the key.
    pub fn from_pem(pem: &str) -> Result<Self, String> {
        use ed25519_dalek::pkcs8::{DecodePrivateKey as _, DecodePublicKey as _};
        let pem = pem.trim().replace("\\n", "\n");
        if pem.contains("-----BEGIN PUBLIC KEY-----") {
            if let Ok(k) = p256::ecdsa::VerifyingKey::from_public_key_pem(&pem) {
                return Ok(Self::Es256(k));
            }
            return ed25519_dalek::VerifyingKey::from_public_key_pem(&pem)
                .map(Self::EdDsa)
                .map_err(|_| "a PUBLIC KEY PEM that is neither P-256 nor Ed25519".to_string());
        }
        if pem.contains("-----BEGIN EC PRIVATE KEY-----") {
            return p256::SecretKey::from_sec1_pem(&pem)
                .map(|k| Self::Es256(p256::ecdsa::VerifyingKey::from(k.public_key())))
                .map_err(|_| "an EC PRIVATE KEY PEM that is not a P-256 key".to_string());
        }
        if pem.contains("-----BEGIN PRIVATE KEY-----") {
            if let Ok(k) = p256::SecretKey::from_pkcs8_pem(&pem) {
                return Ok(Self::Es256(p256::ecdsa::VerifyingKey::from(k.public_key())));
            }
            return ed25519_dalek::SigningKey::from_pkcs8_pem(&pem)
                .map(|k| Self::EdDsa(k.verifying_key()))
                .map_err(|_| "a PRIVATE KEY (PKCS#8) PEM that is neither P-256 nor Ed25519".to_string());
        }
        Err("not a PEM key (PUBLIC KEY, EC PRIVATE KEY or PRIVATE KEY)".to_string())
    }

    /// The JOSE `alg` this key verifies.
    pub fn alg(&self) -> &'static str {
        match self {
            Self::Es256(_) => "ES256",
            Self::EdDsa(_) => "EdDSA",
        }
    }

    fn verifies(&self, message: &[u8], signature: &[u8]) -> bool {
        match self {
            Self::Es256(k) => {
                use p256::ecdsa::signature::Verifier as _;
                // Exactly r‖s: a DER signature (70–72 bytes) is not a JWS signature.
                signature.len() == 64
                    && p256::ecdsa::Signature::from_slice(signature).is_ok_and(|s| k.verify(message, &s).is_ok())
            }
            Self::EdDsa(k) => {
                ed25519_dalek::Signature::from_slice(signature).is_ok_and(|s| k.verify_strict(message, &s).is_ok())
            }
        }
    }
}

/// The registered API keys, by key name (the JWT `kid`).
#[derive(Debug, Clone, Default)]
pub struct KeyRegistry {
    keys: HashMap<String, PublicKey>,
}

impl KeyRegistry {
    /// Registers (or replaces) a key.
    pub fn insert(&mut self, key_name: impl Into<String>, key: PublicKey) {
        self.keys.insert(key_name.into(), key);
    }

    /// The key registered under `key_name`.
    pub fn get(&self, key_name: &str) -> Option<&PublicKey> {
        self.keys.get(key_name)
    }
}

/// Why a token is refused. Coinbase answers every one of them with a bare
/// `401 Unauthorized`; the reason is for the sandbox's log.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JwtError {
    /// Not three base64url parts of JSON.
    #[error("malformed token: {0}")]
    Malformed(&'static str),
    /// No `kid` in the header.
    #[error("the header has no kid")]
    MissingKid,
    /// A `kid` no key is registered under.
    #[error("unknown key {0:?}")]
    UnknownKey(String),
    /// The header's `alg` is not the registered key's.
    #[error("alg {got:?} does not fit the key ({want})")]
    WrongAlgorithm {
        /// What the header says.
        got: String,
        /// What the key verifies.
        want: &'static str,
    },
    /// The signature does not verify (wrong key, tampered, or DER-encoded).
    #[error("bad signature")]
    BadSignature,
    /// `nbf`/`exp` missing or not integers.
    #[error("nbf and exp must be integer seconds")]
    MissingTimes,
    /// Claims a validity longer than 120 s (or none).
    #[error("validity of {0} s is not within (0, 120]")]
    BadLifetime(i64),
    /// Not valid yet.
    #[error("not valid before {nbf} (now {now})")]
    NotYetValid {
        /// `nbf`.
        nbf: i64,
        /// Server time.
        now: i64,
    },
    /// Expired.
    #[error("expired at {exp} (now {now})")]
    Expired {
        /// `exp`.
        exp: i64,
        /// Server time.
        now: i64,
    },
    /// A REST token without `uri` or `uris`.
    #[error("a REST token needs a uri claim")]
    MissingUri,
    /// No `uri` names this request.
    #[error("uri {got:?} is not {want:?}")]
    WrongUri {
        /// The claimed uri(s).
        got: Vec<String>,
        /// The request, as `METHOD host/path`.
        want: String,
    },
}

/// One REST request as the server received it.
#[derive(Debug, Clone, Copy)]
pub struct RestRequest<'a> {
    /// HTTP method.
    pub method: &'a str,
    /// The `Host` header (host, maybe with a port).
    pub host: &'a str,
    /// The path, without the query.
    pub path: &'a str,
}

/// Checks a REST request's bearer token; the key name on success.
pub fn verify_rest(keys: &KeyRegistry, token: &str, req: RestRequest<'_>, now_s: i64) -> Result<String, JwtError> {
    let (kid, claims) = verify_token(keys, token, now_s)?;
    let mut uris: Vec<String> = Vec::new();
    if let Some(u) = claims.get("uri").and_then(Value::as_str) {
        uris.push(u.to_string());
    }
    if let Some(list) = claims.get("uris").and_then(Value::as_array) {
        uris.extend(list.iter().filter_map(Value::as_str).map(str::to_string));
    }
    if uris.is_empty() {
        return Err(JwtError::MissingUri);
    }
    if uris.iter().any(|u| uri_matches(u, req)) {
        Ok(kid)
    } else {
        Err(JwtError::WrongUri { got: uris, want: format!("{} {}{}", req.method, req.host, req.path) })
    }
}

/// Checks a WebSocket subscribe's token (no `uri`); the key name on success.
pub fn verify_ws(keys: &KeyRegistry, token: &str, now_s: i64) -> Result<String, JwtError> {
    verify_token(keys, token, now_s).map(|(kid, _)| kid)
}

/// Signature and time checks shared by REST and WebSocket tokens.
fn verify_token(keys: &KeyRegistry, token: &str, now_s: i64) -> Result<(String, Value), JwtError> {
    let mut parts = token.trim().split('.');
    let (Some(h), Some(c), Some(s), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
        return Err(JwtError::Malformed("not three dot-separated parts"));
    };
    let header = json_part(h)?;
    let kid = header.get("kid").and_then(Value::as_str).filter(|k| !k.is_empty()).ok_or(JwtError::MissingKid)?;
    let key = keys.get(kid).ok_or_else(|| JwtError::UnknownKey(kid.to_string()))?;
    let alg = header.get("alg").and_then(Value::as_str).unwrap_or("");
    if alg != key.alg() {
        return Err(JwtError::WrongAlgorithm { got: alg.to_string(), want: key.alg() });
    }
    let signature = b64(s).ok_or(JwtError::Malformed("the signature is not base64url"))?;
    if !key.verifies(format!("{h}.{c}").as_bytes(), &signature) {
        return Err(JwtError::BadSignature);
    }
    let claims = json_part(c)?;
    let (Some(nbf), Some(exp)) = (claims.get("nbf").and_then(Value::as_i64), claims.get("exp").and_then(Value::as_i64))
    else {
        return Err(JwtError::MissingTimes);
    };
    let lifetime = exp.saturating_sub(nbf);
    if lifetime <= 0 || lifetime > MAX_LIFETIME_S {
        return Err(JwtError::BadLifetime(lifetime));
    }
    if now_s < nbf.saturating_sub(SKEW_S) {
        return Err(JwtError::NotYetValid { nbf, now: now_s });
    }
    if now_s >= exp.saturating_add(SKEW_S) {
        return Err(JwtError::Expired { exp, now: now_s });
    }
    Ok((kid.to_string(), claims))
}

/// base64url, with or without `=` padding.
fn b64(part: &str) -> Option<Vec<u8>> {
    URL_SAFE_NO_PAD.decode(part.trim_end_matches('=')).ok()
}

fn json_part(part: &str) -> Result<Value, JwtError> {
    let bytes = b64(part).ok_or(JwtError::Malformed("a part is not base64url"))?;
    match serde_json::from_slice(&bytes) {
        Ok(v @ Value::Object(_)) => Ok(v),
        _ => Err(JwtError::Malformed("a part is not a JSON object")),
    }
}

/// Whether a claimed `"METHOD [scheme://]host[:port]/path"` names the request.
fn uri_matches(claimed: &str, req: RestRequest<'_>) -> bool {
    let Some((method, rest)) = claimed.split_once(' ') else { return false };
    let rest = ["https://", "http://"]
        .iter()
        .find_map(|scheme| {
            rest.get(..scheme.len()).filter(|p| p.eq_ignore_ascii_case(scheme)).map(|_| &rest[scheme.len()..])
        })
        .unwrap_or(rest);
    let Some(slash) = rest.find('/') else { return false };
    let (host, path) = rest.split_at(slash);
    method.eq_ignore_ascii_case(req.method) && path == req.path && host_matches(host, req.host)
}

/// Hosts compare case-insensitively; a port on one side only is ignored.
fn host_matches(claimed: &str, actual: &str) -> bool {
    fn split(h: &str) -> (&str, Option<&str>) {
        // `[::1]:8443`, `127.0.0.1:8443`, `localhost`.
        match h.rsplit_once(':') {
            Some((name, port))
                if !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) && !name.ends_with(':') =>
            {
                (name, Some(port))
            }
            _ => (h, None),
        }
    }
    let (cn, cp) = split(claimed);
    let (an, ap) = split(actual);
    cn.eq_ignore_ascii_case(an) && (cp.is_none() || ap.is_none() || cp == ap)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uri_matching_table() {
        let req = RestRequest { method: "GET", host: "127.0.0.1:8443", path: "/api/v3/brokerage/accounts" };
        let cases = [
            ("GET 127.0.0.1:8443/api/v3/brokerage/accounts", true),
            ("GET 127.0.0.1/api/v3/brokerage/accounts", true),
            ("GET https://127.0.0.1:8443/api/v3/brokerage/accounts", true),
            ("GET http://127.0.0.1:8443/api/v3/brokerage/accounts", true),
            ("get 127.0.0.1:8443/api/v3/brokerage/accounts", true),
            ("POST 127.0.0.1:8443/api/v3/brokerage/accounts", false),
            ("GET 127.0.0.1:8443/api/v3/brokerage/orders", false),
            ("GET 127.0.0.1:8443/api/v3/brokerage/accounts?limit=1", false),
            ("GET 127.0.0.1:9999/api/v3/brokerage/accounts", false),
            ("GET api.coinbase.com/api/v3/brokerage/accounts", false),
            ("GET127.0.0.1:8443/api/v3/brokerage/accounts", false),
            ("GET 127.0.0.1:8443", false),
        ];
        for (uri, ok) in cases {
            assert_eq!(uri_matches(uri, req), ok, "{uri}");
        }
        let no_port = RestRequest { host: "LOCALHOST", ..req };
        assert!(uri_matches("GET localhost:8443/api/v3/brokerage/accounts", no_port));
    }
}
