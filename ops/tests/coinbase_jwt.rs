//! Issue 15's JWT test, across the adapter and the sandbox (which never see
//! each other; ops sees both): tokens `keel-coinbase` builds, from every key
//! form CDP issues, verify with the Coinbase-protocol sandbox's verifier for
//! the request they were built for, and are refused for another method or
//! path, once expired, and under another key.
//!
//! The keys below are throwaway test keys generated for this file; they were
//! never registered anywhere.

use keel_coinbase::auth::{Algorithm, Credentials};
use keel_sandbox::coinbase::jwt::{verify_rest, verify_ws, JwtError, KeyRegistry, PublicKey, RestRequest};

const TEST_EC_SEC1: &str = "-----BEGIN EC PRIVATE KEY-----
MHcCAQEEIHMmxgE8H8fG3gFivruKSZmqLXDN3eD0N4kiLqP/NbZsoAoGCCqGSM49
AwEHoUQDQgAEXnWnW2DGihpO4JYIg7al+jSM1TrUuIQ6KVnJzjCXWsKNZLLGdx9y
Xg94mvCnQnTHiMVC090cZxhfkpW1dAZ7lA==
-----END EC PRIVATE KEY-----
";

/// The same P-256 key in PKCS#8.
const TEST_EC_PKCS8: &str = "-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgcybGATwfx8beAWK+
u4pJmaotcM3d4PQ3iSIuo/81tmyhRANCAARedadbYMaKGk7glgiDtqX6NIzVOtS4
hDopWcnOMJdawo1kssZ3H3JeD3ia8KdCdMeIxULT3RxnGF+SlbV0BnuU
-----END PRIVATE KEY-----
";

/// Another P-256 key (the "wrong key").
const TEST_EC_OTHER: &str = "-----BEGIN EC PRIVATE KEY-----
MHcCAQEEIG1RsmqAzq1g3YcVKBo/ITU77Z43+IKRFZm04a0rZPoBoAoGCCqGSM49
AwEHoUQDQgAELo44QdgOlXg7ohaWseHMxrwKdvnVbeP+humEU8ZY0YoFpPV4qMh1
tuXuoga+zQQyL9RME2pSsHywYaBueMYVqg==
-----END EC PRIVATE KEY-----
";

const TEST_ED_PKCS8: &str = "-----BEGIN PRIVATE KEY-----
MC4CAQAwBQYDK2VwBCIEIJUEbBUqY4qmZ40FDV23+y7HkNIePF2ZcyxjTvSTtJ1j
-----END PRIVATE KEY-----
";

/// The same Ed25519 key as raw base64 of its seed (the form ccxt takes).
const TEST_ED_RAW: &str = "lQRsFSpjiqZnjQUNXbf7LseQ0h48XZlzLGNO9JO0nWM=";

const NAME: &str = "organizations/keel-test/apiKeys/jwt-test";
const NOW: i64 = 1_780_000_000;
const HOST: &str = "127.0.0.1:8443";
const ORDER_PATH: &str = "/api/v3/brokerage/orders/historical/0b3c5a6e-1111-4c4c-9d9d-123456789abc";

fn registry_with(pem: &str) -> KeyRegistry {
    let mut keys = KeyRegistry::default();
    keys.insert(NAME, PublicKey::from_pem(pem).expect("test key"));
    keys
}

fn request(method: &'static str, path: &'static str) -> RestRequest<'static> {
    RestRequest { method, host: HOST, path }
}

#[test]
fn adapter_tokens_verify_with_the_sandbox_and_only_for_their_request() {
    // (key text the adapter is given, its algorithm, the PEM the sandbox registers)
    let cases = [
        ("EC SEC1", TEST_EC_SEC1, Algorithm::Es256, TEST_EC_SEC1),
        ("EC PKCS#8", TEST_EC_PKCS8, Algorithm::Es256, TEST_EC_SEC1),
        ("EC pasted on one line", &TEST_EC_SEC1.replace('\n', "\\n"), Algorithm::Es256, TEST_EC_SEC1),
        ("Ed25519 PKCS#8", TEST_ED_PKCS8, Algorithm::EdDsa, TEST_ED_PKCS8),
        ("Ed25519 raw base64", TEST_ED_RAW, Algorithm::EdDsa, TEST_ED_PKCS8),
    ];
    for (name, key_text, alg, registered) in cases {
        let creds = Credentials::new(NAME, key_text).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(creds.algorithm(), alg, "{name}");
        let keys = registry_with(registered);
        // The adapter signs the path with its query; the query is never signed.
        let token = creds.rest_jwt("GET", HOST, &format!("{ORDER_PATH}?client_order_id=x"), NOW).unwrap();
        assert_eq!(verify_rest(&keys, &token, request("GET", ORDER_PATH), NOW), Ok(NAME.to_string()), "{name}");
        assert!(verify_rest(&keys, &token, request("GET", ORDER_PATH), NOW + 119).is_ok(), "{name}: within 120 s");
        assert!(
            matches!(verify_rest(&keys, &token, request("GET", ORDER_PATH), NOW + 125), Err(JwtError::Expired { .. })),
            "{name}: expired"
        );
        assert!(
            matches!(verify_rest(&keys, &token, request("POST", ORDER_PATH), NOW), Err(JwtError::WrongUri { .. })),
            "{name}: another method"
        );
        assert!(
            matches!(
                verify_rest(&keys, &token, request("GET", "/api/v3/brokerage/orders/historical/batch"), NOW),
                Err(JwtError::WrongUri { .. })
            ),
            "{name}: another path"
        );
        let ws = creds.ws_jwt(NOW).unwrap();
        assert_eq!(verify_ws(&keys, &ws, NOW), Ok(NAME.to_string()), "{name}: websocket");
        assert_eq!(verify_rest(&keys, &ws, request("GET", ORDER_PATH), NOW), Err(JwtError::MissingUri), "{name}");
    }
}

#[test]
fn a_token_under_another_key_is_refused() {
    let creds = Credentials::new(NAME, TEST_EC_OTHER).unwrap();
    let token = creds.rest_jwt("POST", HOST, "/api/v3/brokerage/orders", NOW).unwrap();
    let req = request("POST", "/api/v3/brokerage/orders");
    assert_eq!(verify_rest(&registry_with(TEST_EC_SEC1), &token, req, NOW), Err(JwtError::BadSignature));
    assert!(verify_rest(&registry_with(TEST_EC_OTHER), &token, req, NOW).is_ok(), "the right key passes");
    // An Ed25519 token for a name registered with a P-256 key.
    let ed = Credentials::new(NAME, TEST_ED_PKCS8).unwrap().rest_jwt("POST", HOST, "/api/v3/brokerage/orders", NOW);
    assert!(matches!(
        verify_rest(&registry_with(TEST_EC_SEC1), &ed.unwrap(), req, NOW),
        Err(JwtError::WrongAlgorithm { .. })
    ));
}
