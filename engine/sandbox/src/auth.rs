//! What the exchange side of the Binance protocol checks and answers: HMAC
//! signatures as Binance verifies them, and the HTTP status each error code
//! travels with.
//!
//! The sandbox verifies signatures with its own code, not the adapter's signer:
//! a signing bug in the adapter must show up as `-1022` here, as it would on
//! Binance, instead of being mirrored by a shared implementation.

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::exchange::Reject;

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
    let mut sorted: Vec<&(String, String)> = params.iter().filter(|(k, _)| k != "signature").collect();
    sorted.sort_by(|a, b| a.0.cmp(&b.0));
    let payload = sorted.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("&");
    same_hex(&hmac_hex(secret, &payload), signature)
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
