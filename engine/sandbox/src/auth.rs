//! What the exchange side of the Binance protocol checks and answers: HMAC
//! and Ed25519 signatures as Binance verifies them, and the HTTP status each
//! error code travels with.
//!
//! The sandbox verifies signatures with its own code, not the adapter's signer:
//! a signing bug in the adapter must show up as `-1022` here, as it would on
//! Binance, instead of being mirrored by a shared implementation.

use base64::Engine as _;
use ed25519_dalek::pkcs8::DecodePublicKey;
use ed25519_dalek::{Signature, Verifier, VerifyingKey};
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::exchange::Reject;

/// How an API key proves a request: an HMAC secret shared with the client, or
/// an Ed25519 public key whose private half only the client holds.
#[derive(Debug, Clone)]
pub enum KeyAuth {
    /// HMAC-SHA256: a hex signature, case-insensitive.
    Hmac(String),
    /// Ed25519: a base64 signature, case-sensitive.
    Ed25519(VerifyingKey),
}

impl KeyAuth {
    /// Whether `signature` signs a REST request (see [`rest_signature_valid`]).
    pub fn rest_valid(&self, raw_query: &str, body: &str, signature: &str) -> bool {
        match self {
            Self::Hmac(secret) => rest_signature_valid(secret, raw_query, body, signature),
            Self::Ed25519(key) => {
                ed25519_valid(key, &format!("{}{}", without_signature(raw_query), without_signature(body)), signature)
            }
        }
    }

    /// Whether `signature` signs WebSocket API parameters (see [`ws_signature_valid`]).
    pub fn ws_valid(&self, params: &[(String, String)], signature: &str) -> bool {
        match self {
            Self::Hmac(secret) => ws_signature_valid(secret, params, signature),
            Self::Ed25519(key) => ed25519_valid(key, &ws_payload(params), signature),
        }
    }

    /// True for an Ed25519 key (the only kind `session.logon` takes).
    pub fn is_ed25519(&self) -> bool {
        matches!(self, Self::Ed25519(_))
    }
}

/// Reads an Ed25519 public key in PEM (`-----BEGIN PUBLIC KEY-----`, what
/// Binance asks a user to register); the error says what is wrong.
pub fn ed25519_public_key(pem: &str) -> Result<VerifyingKey, String> {
    VerifyingKey::from_public_key_pem(pem.trim())
        .map_err(|e| format!("not an Ed25519 public key in PEM (-----BEGIN PUBLIC KEY-----): {e}"))
}

/// Whether a base64 `signature` is the key's Ed25519 signature of the UTF-8
/// bytes of `payload`. Base64 is case-sensitive; anything that does not decode
/// to 64 bytes is simply not a valid signature.
fn ed25519_valid(key: &VerifyingKey, payload: &str, signature: &str) -> bool {
    let Ok(bytes) = base64::engine::general_purpose::STANDARD.decode(signature.trim()) else { return false };
    let Ok(sig) = Signature::from_slice(&bytes) else { return false };
    key.verify(payload.as_bytes(), &sig).is_ok()
}

/// `hex(HMAC_SHA256(secret, payload))`, lower case.
fn hmac_hex(secret: &str, payload: &str) -> String {
    // HMAC accepts keys of any length, so this never fails.
    match Hmac::<Sha256>::new_from_slice(secret.as_bytes()) {
        Ok(mut mac) => {
            mac.update(payload.as_bytes());
            hex::encode(mac.finalize().into_bytes())
        }
        Err(_) => String::new(),
    }
}

/// Constant-time comparison of two hex signatures (case-insensitive).
fn same_hex(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes().zip(b.bytes()).fold(0u8, |acc, (x, y)| acc | (x.to_ascii_lowercase() ^ y.to_ascii_lowercase()))
            == 0
}

/// Whether `signature` signs a REST request: the query string as received
/// without its `signature` pair, followed by the body without it.
pub fn rest_signature_valid(secret: &str, raw_query: &str, body: &str, signature: &str) -> bool {
    let payload = format!("{}{}", without_signature(raw_query), without_signature(body));
    same_hex(&hmac_hex(secret, &payload), signature)
}

/// A form-encoded string without its `signature` pair (and empty pairs).
fn without_signature(s: &str) -> String {
    s.split('&').filter(|kv| !kv.starts_with("signature=") && !kv.is_empty()).collect::<Vec<_>>().join("&")
}

/// Whether `signature` signs WebSocket API parameters: every parameter except
/// `signature`, sorted by name, joined as `k=v&…` with raw values.
pub fn ws_signature_valid(secret: &str, params: &[(String, String)], signature: &str) -> bool {
    same_hex(&hmac_hex(secret, &ws_payload(params)), signature)
}

/// The WebSocket API's signed payload: every parameter except `signature`,
/// sorted by name, joined as `k=v&…` with raw values.
fn ws_payload(params: &[(String, String)]) -> String {
    let mut sorted: Vec<&(String, String)> = params.iter().filter(|(k, _)| k != "signature").collect();
    sorted.sort_by(|a, b| a.0.cmp(&b.0));
    sorted.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("&")
}

/// The HTTP status Binance sends with a refusal.
pub fn http_status(r: &Reject) -> u16 {
    match r.code {
        -2015 | -2014 => 401,
        -1003 if r.msg.contains("banned") => 418,
        -1003 | -1015 => 429,
        -1000 | -1001 | -1006 | -1007 | -1008 => 503,
        _ => 400,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    // The HMAC example of Binance's REST documentation (SIGNED endpoint security).
    const SECRET: &str = "NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j";
    const QUERY: &str = "symbol=LTCBTC&side=BUY&type=LIMIT&timeInForce=GTC&quantity=1&price=0.1&recvWindow=5000&timestamp=1499827319559";
    const SIGNATURE: &str = "c8db56825ae71d6d79447849e617115f4a920fa2acdcab2b053c4b2838bd6b71";

    #[test]
    fn rest_signatures_verify_the_documented_example_wherever_the_params_travel() {
        assert!(rest_signature_valid(SECRET, &format!("{QUERY}&signature={SIGNATURE}"), "", SIGNATURE));
        assert!(rest_signature_valid(SECRET, "", &format!("{QUERY}&signature={SIGNATURE}"), SIGNATURE));
        assert!(rest_signature_valid(SECRET, QUERY, "", &SIGNATURE.to_uppercase()));
        assert!(!rest_signature_valid(SECRET, &QUERY.replace("LTCBTC", "LTCETH"), "", SIGNATURE));
        assert!(!rest_signature_valid("other", QUERY, "", SIGNATURE));
    }

    #[test]
    fn ws_signatures_sort_the_params_and_skip_the_signature() {
        let params = p(&[("timestamp", "2"), ("apiKey", "k")]);
        let sig = hmac_hex("s", "apiKey=k&timestamp=2");
        let mut with_sig = params.clone();
        with_sig.push(("signature".into(), sig.clone()));
        assert!(ws_signature_valid("s", &with_sig, &sig));
        assert!(!ws_signature_valid("s", &p(&[("timestamp", "3"), ("apiKey", "k")]), &sig));
    }

    /// A key pair made here with the crate's own signer: the sandbox's
    /// verification must accept what any Ed25519 implementation signs.
    fn ed25519_pair() -> (ed25519_dalek::SigningKey, KeyAuth) {
        let signing = ed25519_dalek::SigningKey::from_bytes(&[7u8; 32]);
        let auth = KeyAuth::Ed25519(signing.verifying_key());
        (signing, auth)
    }

    fn b64_sign(key: &ed25519_dalek::SigningKey, payload: &str) -> String {
        use ed25519_dalek::Signer;
        base64::engine::general_purpose::STANDARD.encode(key.sign(payload.as_bytes()).to_bytes())
    }

    #[test]
    fn ed25519_rest_signatures_sign_the_query_as_sent() {
        let (key, auth) = ed25519_pair();
        let sig = b64_sign(&key, QUERY);
        // The signature travels percent-encoded; the server reads it decoded.
        assert!(auth.rest_valid(&format!("{QUERY}&signature=x"), "", &sig));
        assert!(auth.rest_valid("", QUERY, &sig), "params in the body");
        let (head, tail) = QUERY.split_at(30);
        assert!(auth.rest_valid(head, tail, &sig), "query followed by body");
        let cases = [
            ("another payload", auth.rest_valid(&QUERY.replace("LTCBTC", "LTCETH"), "", &sig)),
            ("case changed", auth.rest_valid(QUERY, "", &sig.to_lowercase())),
            ("not base64", auth.rest_valid(QUERY, "", "%%%")),
            ("too short", auth.rest_valid(QUERY, "", "AAAA")),
            ("an HMAC signature", auth.rest_valid(QUERY, "", SIGNATURE)),
        ];
        for (name, valid) in cases {
            assert!(!valid, "{name} must be refused");
        }
    }

    #[test]
    fn ed25519_ws_signatures_sort_the_params_and_hmac_keys_keep_hex() {
        let (key, auth) = ed25519_pair();
        let params = p(&[("timestamp", "2"), ("apiKey", "k"), ("symbol", "１２３")]);
        let sig = b64_sign(&key, "apiKey=k&symbol=１２３&timestamp=2");
        assert!(auth.ws_valid(&params, &sig));
        assert!(!auth.ws_valid(&p(&[("timestamp", "3"), ("apiKey", "k")]), &sig));
        let hmac = KeyAuth::Hmac("s".into());
        assert!(hmac.ws_valid(&p(&[("apiKey", "k")]), &hmac_hex("s", "apiKey=k")));
        assert!(!hmac.ws_valid(&p(&[("apiKey", "k")]), &sig), "an Ed25519 signature is no HMAC");
        assert!(auth.is_ed25519() && !hmac.is_ed25519());
    }

    #[test]
    fn public_keys_are_read_from_pem_and_garbage_is_named() {
        // The sample key of Binance's "API Key Types" FAQ.
        let pem = "-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEAgmDRTtj2FA+wzJUIlAL9ly1eovjLBu7uXUFR+jFULmg=\n-----END PUBLIC KEY-----\n";
        assert!(ed25519_public_key(pem).is_ok());
        let err = ed25519_public_key("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----").unwrap_err();
        assert!(err.contains("Ed25519 public key"), "{err}");
    }

    #[test]
    fn statuses_follow_binance() {
        let cases = [
            (-2015, "Invalid API-key", 401),
            (-1003, "Way too much request weight used; IP banned until 1.", 418),
            (-1003, "Too much request weight used", 429),
            (-1015, "Too many new orders", 429),
            (-1007, "Timeout", 503),
            (-2010, "insufficient balance", 400),
        ];
        for (code, msg, want) in cases {
            assert_eq!(http_status(&Reject { code, msg: msg.into() }), want, "{code} {msg}");
        }
    }
}
