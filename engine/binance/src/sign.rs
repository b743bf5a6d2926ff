//! Request signing: HMAC-SHA256 (hex) or Ed25519 (base64) over the REST
//! payload exactly as sent (percent-encoded, mandatory since 2026-01-15) and
//! over the WebSocket API's canonical form (parameters sorted by name, raw
//! UTF-8 values).

use base64::Engine as _;
use ed25519_dalek::pkcs8::DecodePrivateKey;
use ed25519_dalek::{Signer as _, SigningKey};
use hmac::{Hmac, Mac};
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use sha2::Sha256;

/// Characters left as they are in a query value: the unreserved set of RFC 3986.
const QUERY_VALUE: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.').remove(b'~');

/// Percent-encodes one query component (name or value).
pub fn encode_component(s: &str) -> String {
    utf8_percent_encode(s, QUERY_VALUE).to_string()
}

/// Builds the percent-encoded query string `k=v&k=v` in the given order. This
/// string is both what is sent and what is signed.
pub fn encode_query(params: &[(String, String)]) -> String {
    let mut out = String::new();
    for (i, (k, v)) in params.iter().enumerate() {
        if i > 0 {
            out.push('&');
        }
        out.push_str(&encode_component(k));
        out.push('=');
        out.push_str(&encode_component(v));
    }
    out
}

/// `hex(HMAC_SHA256(secret, payload))`, lower case.
pub fn hmac_hex(secret: &str, payload: &str) -> String {
    // HMAC accepts keys of any length, so this never fails.
    match Hmac::<Sha256>::new_from_slice(secret.as_bytes()) {
        Ok(mut mac) => {
            mac.update(payload.as_bytes());
            hex::encode(mac.finalize().into_bytes())
        }
        Err(_) => String::new(),
    }
}

/// Signs a REST payload (query string followed by the body, as sent).
pub fn sign_rest(secret: &str, query: &str, body: &str) -> String {
    let mut payload = String::with_capacity(query.len() + body.len());
    payload.push_str(query);
    payload.push_str(body);
    hmac_hex(secret, &payload)
}

/// The WebSocket API canonical payload: every parameter except `signature`,
/// sorted by name, joined as `k=v&…` with raw (not encoded) values.
pub fn ws_payload(params: &[(String, String)]) -> String {
    let mut sorted: Vec<&(String, String)> = params.iter().filter(|(k, _)| k != "signature").collect();
    sorted.sort_by(|a, b| a.0.cmp(&b.0));
    sorted.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("&")
}

/// Signs WebSocket API parameters.
pub fn sign_ws(secret: &str, params: &[(String, String)]) -> String {
    hmac_hex(secret, &ws_payload(params))
}

/// Reads an Ed25519 private key in PKCS#8 PEM; the error names the format
/// expected, never the key.
pub fn ed25519_private_key(pem: &str) -> Result<SigningKey, String> {
    SigningKey::from_pkcs8_pem(pem.trim())
        .map_err(|e| format!("not an unencrypted Ed25519 private key in PKCS#8 PEM (-----BEGIN PRIVATE KEY-----): {e}"))
}

/// `base64(Ed25519(key, payload))`: the signature of the UTF-8 bytes of the
/// payload, standard base64 with padding.
pub fn sign_ed25519(key: &SigningKey, payload: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(key.sign(payload.as_bytes()).to_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn encodes_unicode_as_documented() {
        let q = encode_query(&p(&[("symbol", "１２３４５６"), ("side", "BUY")]));
        assert_eq!(q, "symbol=%EF%BC%91%EF%BC%92%EF%BC%93%EF%BC%94%EF%BC%95%EF%BC%96&side=BUY");
        assert_eq!(encode_component("0.1"), "0.1");
        assert_eq!(encode_component("a b+c/="), "a%20b%2Bc%2F%3D");
    }

    #[test]
    fn ed25519_signatures_verify_and_bad_pem_is_named_not_echoed() {
        use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
        use ed25519_dalek::pkcs8::EncodePrivateKey;
        use ed25519_dalek::Verifier;
        let key = SigningKey::from_bytes(&[3u8; 32]);
        let pem = key.to_pkcs8_pem(LineEnding::LF).unwrap();
        let read = ed25519_private_key(&pem).unwrap();
        let sig = sign_ed25519(&read, "apiKey=k&timestamp=1");
        let bytes = base64::engine::general_purpose::STANDARD.decode(&sig).unwrap();
        let sig = ed25519_dalek::Signature::from_slice(&bytes).unwrap();
        assert!(key.verifying_key().verify(b"apiKey=k&timestamp=1", &sig).is_ok());
        let err = ed25519_private_key("-----BEGIN PRIVATE KEY-----\nc2VjcmV0\n-----END PRIVATE KEY-----").unwrap_err();
        assert!(err.contains("PKCS#8") && !err.contains("c2VjcmV0"), "{err}");
    }

    #[test]
    fn ws_payload_sorts_and_skips_signature() {
        let got = ws_payload(&p(&[("timestamp", "2"), ("signature", "x"), ("apiKey", "k")]));
        assert_eq!(got, "apiKey=k&timestamp=2");
    }
}
