//! The Coinbase-protocol sandbox's JWT check (reference §2.4 and issue 15's
//! notes): tokens shaped like the official Python SDK's, ccxt's and the CDP
//! SDK's pass; a wrong method or path, an expired or not-yet-valid token, a
//! too-long validity, a wrong key, a DER signature, a missing or unknown
//! `kid` are refused. Tokens are built by hand here from the reference's
//! description, with fixed test-only keys.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde_json::{json, Value};

use keel_sandbox::coinbase::jwt::{verify_rest, verify_ws, JwtError, KeyRegistry, PublicKey, RestRequest};

const NOW: i64 = 1_780_000_000;
const EC_KEY: &str = "organizations/test-org/apiKeys/test-ec";
const ED_KEY: &str = "organizations/test-org/apiKeys/test-ed";
const PATH: &str = "/api/v3/brokerage/accounts";

fn ec(seed: u8) -> p256::ecdsa::SigningKey {
    p256::ecdsa::SigningKey::from_slice(&[seed; 32]).unwrap()
}

fn ed(seed: u8) -> ed25519_dalek::SigningKey {
    ed25519_dalek::SigningKey::from_bytes(&[seed; 32])
}

fn registry() -> KeyRegistry {
    let mut keys = KeyRegistry::default();
    keys.insert(EC_KEY, PublicKey::Es256(*ec(0x21).verifying_key()));
    keys.insert(ED_KEY, PublicKey::EdDsa(ed(0x22).verifying_key()));
    keys
}

enum Key {
    Ec(p256::ecdsa::SigningKey),
    EcDer(p256::ecdsa::SigningKey),
    Ed(ed25519_dalek::SigningKey),
}

fn token(key: &Key, header: Value, claims: Value) -> String {
    let input =
        format!("{}.{}", URL_SAFE_NO_PAD.encode(header.to_string()), URL_SAFE_NO_PAD.encode(claims.to_string()));
    let sig: Vec<u8> = match key {
        Key::Ec(k) => {
            use p256::ecdsa::signature::Signer as _;
            let s: p256::ecdsa::Signature = k.sign(input.as_bytes());
            s.to_bytes().to_vec()
        }
        Key::EcDer(k) => {
            use p256::ecdsa::signature::Signer as _;
            let s: p256::ecdsa::Signature = k.sign(input.as_bytes());
            s.to_der().as_bytes().to_vec()
        }
        Key::Ed(k) => {
            use ed25519_dalek::Signer as _;
            k.sign(input.as_bytes()).to_bytes().to_vec()
        }
    };
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig))
}

/// The official Python SDK (≥ 1.4.1): `uri = "METHOD host:port/path"`, a
/// 64-hex nonce, `iss: "cdp"`.
fn sdk_header(alg: &str, kid: &str) -> Value {
    json!({"alg": alg, "typ": "JWT", "kid": kid, "nonce": "ab".repeat(32)})
}

fn sdk_claims(kid: &str, uri: Option<&str>) -> Value {
    let mut c = json!({"sub": kid, "iss": "cdp", "nbf": NOW, "exp": NOW + 120});
    if let Some(u) = uri {
        c["uri"] = u.into();
    }
    c
}

fn req(method: &'static str) -> RestRequest<'static> {
    RestRequest { method, host: "127.0.0.1:8443", path: PATH }
}

#[test]
fn real_client_shapes_are_accepted() {
    let keys = registry();
    // ccxt with an Ed25519 key: EdDSA, a `uris` array, aud cdp_service, a
    // 31-hex nonce (not zero-padded), iat.
    let ccxt_ed = token(
        &Key::Ed(ed(0x22)),
        json!({"alg": "EdDSA", "kid": ED_KEY, "nonce": "f".repeat(31)}),
        json!({"sub": ED_KEY, "iss": "cdp", "aud": ["cdp_service"], "nbf": NOW, "iat": NOW, "exp": NOW + 120,
               "uris": ["GET 127.0.0.1:8443/api/v3/brokerage/accounts"]}),
    );
    // ccxt's ES256 form (2024–2026): aud retail_rest_api_proxy, iss
    // coinbase-cloud, and with an http:// base URL the scheme stays in `uri`.
    let ccxt_ec = token(
        &Key::Ec(ec(0x21)),
        json!({"alg": "ES256", "kid": EC_KEY, "nonce": "0123456789abcdef0123456789abcde"}),
        json!({"aud": ["retail_rest_api_proxy"], "iss": "coinbase-cloud", "nbf": NOW, "iat": NOW, "exp": NOW + 120,
               "sub": EC_KEY, "uri": "GET http://127.0.0.1:8443/api/v3/brokerage/accounts"}),
    );
    let sdk = |uri: &str| token(&Key::Ec(ec(0x21)), sdk_header("ES256", EC_KEY), sdk_claims(EC_KEY, Some(uri)));
    let cases = [
        ("python SDK, host:port", sdk("GET 127.0.0.1:8443/api/v3/brokerage/accounts")),
        ("python SDK, no port", sdk("GET 127.0.0.1/api/v3/brokerage/accounts")),
        ("scheme left in", sdk("GET https://127.0.0.1:8443/api/v3/brokerage/accounts")),
        ("ccxt Ed25519 with uris", ccxt_ed),
        ("ccxt ES256 legacy claims with http://", ccxt_ec),
    ];
    for (name, t) in cases {
        let kid = verify_rest(&keys, &t, req("GET"), NOW + 1);
        assert!(kid.is_ok(), "{name}: {kid:?}");
    }
    // WebSocket JWTs carry no uri (the SDK's, and ccxt's).
    let ws = token(&Key::Ed(ed(0x22)), sdk_header("EdDSA", ED_KEY), sdk_claims(ED_KEY, None));
    assert_eq!(verify_ws(&keys, &ws, NOW), Ok(ED_KEY.to_string()));
    assert_eq!(verify_rest(&keys, &ws, req("GET"), NOW), Err(JwtError::MissingUri));
}

/// A refused case: its name, the token, the request, the server time, and
/// which refusal is the right one.
type Case = (&'static str, String, RestRequest<'static>, i64, fn(&JwtError) -> bool);

#[test]
fn bad_tokens_are_refused() {
    let keys = registry();
    let uri = "GET 127.0.0.1:8443/api/v3/brokerage/accounts";
    let good = token(&Key::Ec(ec(0x21)), sdk_header("ES256", EC_KEY), sdk_claims(EC_KEY, Some(uri)));
    assert!(verify_rest(&keys, &good, req("GET"), NOW).is_ok(), "the base case passes");
    let mut long = sdk_claims(EC_KEY, Some(uri));
    long["exp"] = (NOW + 121).into();
    let mut tampered = good.clone();
    tampered.replace_range(good.find('.').unwrap() + 1..good.find('.').unwrap() + 3, "ZZ");
    let no_kid = json!({"alg": "ES256", "typ": "JWT", "nonce": "00"});
    let cases: Vec<Case> = vec![
        ("wrong method", good.clone(), req("POST"), NOW, |e| matches!(e, JwtError::WrongUri { .. })),
        ("wrong path", good.clone(), RestRequest { path: "/api/v3/brokerage/orders", ..req("GET") }, NOW, |e| {
            matches!(e, JwtError::WrongUri { .. })
        }),
        ("wrong host", good.clone(), RestRequest { host: "localhost:8443", ..req("GET") }, NOW, |e| {
            matches!(e, JwtError::WrongUri { .. })
        }),
        ("expired (120 s + skew)", good.clone(), req("GET"), NOW + 125, |e| matches!(e, JwtError::Expired { .. })),
        ("not yet valid", good.clone(), req("GET"), NOW - 6, |e| matches!(e, JwtError::NotYetValid { .. })),
        ("validity over 120 s", token(&Key::Ec(ec(0x21)), sdk_header("ES256", EC_KEY), long), req("GET"), NOW, |e| {
            *e == JwtError::BadLifetime(121)
        }),
        (
            "wrong key",
            token(&Key::Ec(ec(0x99)), sdk_header("ES256", EC_KEY), sdk_claims(EC_KEY, Some(uri))),
            req("GET"),
            NOW,
            |e| *e == JwtError::BadSignature,
        ),
        (
            "DER signature",
            token(&Key::EcDer(ec(0x21)), sdk_header("ES256", EC_KEY), sdk_claims(EC_KEY, Some(uri))),
            req("GET"),
            NOW,
            |e| *e == JwtError::BadSignature,
        ),
        ("tampered claims", tampered, req("GET"), NOW, |e| {
            matches!(e, JwtError::BadSignature | JwtError::Malformed(_))
        }),
        ("missing kid", token(&Key::Ec(ec(0x21)), no_kid, sdk_claims(EC_KEY, Some(uri))), req("GET"), NOW, |e| {
            *e == JwtError::MissingKid
        }),
        (
            "unknown kid",
            token(
                &Key::Ec(ec(0x21)),
                sdk_header("ES256", "organizations/x/apiKeys/nobody"),
                sdk_claims(EC_KEY, Some(uri)),
            ),
            req("GET"),
            NOW,
            |e| matches!(e, JwtError::UnknownKey(k) if k == "organizations/x/apiKeys/nobody"),
        ),
        (
            "alg of another key type",
            token(&Key::Ed(ed(0x22)), sdk_header("EdDSA", EC_KEY), sdk_claims(EC_KEY, Some(uri))),
            req("GET"),
            NOW,
            |e| matches!(e, JwtError::WrongAlgorithm { .. }),
        ),
        ("not a JWT", "abc.def".to_string(), req("GET"), NOW, |e| matches!(e, JwtError::Malformed(_))),
    ];
    for (name, t, r, now, want) in cases {
        match verify_rest(&keys, &t, r, now) {
            Err(e) => assert!(want(&e), "{name}: refused for the wrong reason: {e}"),
            Ok(k) => panic!("{name}: accepted as {k}"),
        }
    }
    // The window's edges: valid until exp + 5 s, not from nbf - 5 s earlier.
    assert!(verify_rest(&keys, &good, req("GET"), NOW + 124).is_ok());
    assert!(verify_rest(&keys, &good, req("GET"), NOW - 5).is_ok());
}

#[test]
fn keys_register_from_pem_of_either_half() {
    use ed25519_dalek::pkcs8::EncodePublicKey as _;
    use p256::pkcs8::{EncodePrivateKey as _, LineEnding};
    let secret = p256::SecretKey::from_slice(&[0x21; 32]).unwrap();
    let pems = [
        secret.to_sec1_pem(LineEnding::LF).unwrap().to_string(),
        secret.to_pkcs8_pem(LineEnding::LF).unwrap().to_string(),
        secret.public_key().to_public_key_pem(LineEnding::LF).unwrap(),
    ];
    let uri = "GET 127.0.0.1:8443/api/v3/brokerage/accounts";
    let t = token(&Key::Ec(ec(0x21)), sdk_header("ES256", EC_KEY), sdk_claims(EC_KEY, Some(uri)));
    for pem in pems {
        let mut keys = KeyRegistry::default();
        keys.insert(EC_KEY, PublicKey::from_pem(&pem).unwrap());
        assert!(verify_rest(&keys, &t, req("GET"), NOW).is_ok(), "{pem}");
    }
    let ed_pub = ed(0x22).verifying_key().to_public_key_pem(LineEnding::LF).unwrap();
    assert_eq!(PublicKey::from_pem(&ed_pub).unwrap().alg(), "EdDSA");
    let err = PublicKey::from_pem("-----BEGIN PUBLIC KEY-----\nc2VjcmV0\n-----END PUBLIC KEY-----").unwrap_err();
    assert!(!err.contains("c2VjcmV0"), "{err}");
}
