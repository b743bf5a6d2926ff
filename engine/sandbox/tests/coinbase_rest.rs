//! The Coinbase-protocol REST side over real HTTP, signed here by hand with
//! `p256` and `ed25519-dalek` (this crate cannot use the adapter): what the
//! JWT rules mean on the wire (a DER signature, `uri` spellings real clients
//! send, an Ed25519 key, a key registered in config for a second account),
//! and that Coinbase is a second protocol over the one exchange — an order
//! placed through it rests in the core the Binance protocol serves.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use ed25519_dalek::pkcs8::DecodePrivateKey as _;
use serde_json::{json, Value};

use keel_sandbox::coinbase::test_key::KeyType;
use keel_sandbox::{Sandbox, SandboxAccountConfig, SandboxConfig, SandboxHandle, DEFAULT_API_KEY};

enum Signer {
    Ec(p256::ecdsa::SigningKey),
    EcDer(p256::ecdsa::SigningKey),
    Ed(ed25519_dalek::SigningKey),
}

impl Signer {
    fn from_pem(pem: &str) -> Self {
        match p256::SecretKey::from_sec1_pem(pem) {
            Ok(k) => Self::Ec(p256::ecdsa::SigningKey::from(k)),
            Err(_) => Self::Ed(ed25519_dalek::SigningKey::from_pkcs8_pem(pem).expect("an Ed25519 PKCS#8 key")),
        }
    }

    fn token(&self, kid: &str, claims: Value) -> String {
        let alg = if matches!(self, Self::Ed(_)) { "EdDSA" } else { "ES256" };
        let header = json!({"alg": alg, "typ": "JWT", "kid": kid, "nonce": "ab".repeat(32)});
        let input =
            format!("{}.{}", URL_SAFE_NO_PAD.encode(header.to_string()), URL_SAFE_NO_PAD.encode(claims.to_string()));
        let sig: Vec<u8> = match self {
            Self::Ec(k) | Self::EcDer(k) => {
                use p256::ecdsa::signature::Signer as _;
                let s: p256::ecdsa::Signature = k.sign(input.as_bytes());
                if matches!(self, Self::EcDer(_)) {
                    s.to_der().as_bytes().to_vec()
                } else {
                    s.to_bytes().to_vec()
                }
            }
            Self::Ed(k) => {
                use ed25519_dalek::Signer as _;
                k.sign(input.as_bytes()).to_bytes().to_vec()
            }
        };
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig))
    }
}

fn now_s() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}

fn claims(kid: &str, uri: Value) -> Value {
    let mut c = json!({"sub": kid, "iss": "cdp", "nbf": now_s(), "exp": now_s() + 120});
    match uri {
        Value::Array(_) => c["uris"] = uri,
        u => c["uri"] = u,
    }
    c
}

async fn call(sb: &SandboxHandle, method: &str, path: &str, token: &str, body: Option<Value>) -> (u16, String) {
    let http = reqwest::Client::new();
    let url = format!("http://{}{path}", sb.addr);
    let req = if method == "POST" { http.post(url) } else { http.get(url) };
    let req = match body {
        Some(b) => req.json(&b),
        None => req,
    };
    let resp = req.bearer_auth(token).send().await.expect("answers");
    (resp.status().as_u16(), resp.text().await.expect("body"))
}

async fn start(cfg: SandboxConfig) -> (SandboxHandle, Signer, String) {
    let sb = Sandbox::start(SandboxConfig { generate_coinbase_key: true, ..cfg }).await.expect("starts");
    sb.market.pause();
    let signer = Signer::from_pem(sb.coinbase_private_key_pem.as_deref().expect("a test key"));
    let kid = sb.coinbase_key_name.clone().expect("its name");
    (sb, signer, kid)
}

#[tokio::test]
async fn der_signatures_are_refused_and_real_clients_uri_spellings_pass() {
    let (sb, signer, kid) = start(SandboxConfig::default()).await;
    let path = "/api/v3/brokerage/accounts";
    let host = sb.addr.to_string();
    let port_less = format!("127.0.0.1{path}");
    let cases = [
        ("SDK: host:port/path", json!(format!("GET {host}{path}")), 200),
        ("host without the port", json!(format!("GET {port_less}")), 200),
        ("ccxt over http keeps the scheme", json!(format!("GET http://{host}{path}")), 200),
        ("CDP SDK: a uris array", json!([format!("GET {host}/elsewhere"), format!("GET {host}{path}")]), 200),
        ("the query signed", json!(format!("GET {host}{path}?limit=1")), 401),
        ("another host", json!(format!("GET api.coinbase.com{path}")), 401),
    ];
    for (name, uri, want) in cases {
        let (status, body) = call(&sb, "GET", path, &signer.token(&kid, claims(&kid, uri)), None).await;
        assert_eq!(status, want, "{name}: {body}");
    }
    let Signer::Ec(k) = signer else { panic!("the default test key is EC") };
    let der = Signer::EcDer(k).token(&kid, claims(&kid, json!(format!("GET {host}{path}"))));
    assert_eq!(call(&sb, "GET", path, &der, None).await, (401, "Unauthorized".to_string()), "DER is not JWS");
    sb.shutdown().await;
}

#[tokio::test]
async fn an_order_placed_as_coinbase_rests_in_the_one_exchange_binance_serves() {
    let (sb, signer, kid) = start(SandboxConfig::default()).await;
    let host = sb.addr.to_string();
    let path = "/api/v3/brokerage/orders";
    let body = json!({"client_order_id": "one-exchange", "product_id": "ETH-USDT", "side": "SELL",
                      "order_configuration": {"limit_limit_gtc": {"base_size": "0.5", "limit_price": "999999"}}});
    let token = signer.token(&kid, claims(&kid, json!(format!("POST {host}{path}"))));
    let (status, text) = call(&sb, "POST", path, &token, Some(body)).await;
    assert_eq!(status, 200, "{text}");
    assert_eq!(serde_json::from_str::<Value>(&text).unwrap()["success"], true, "{text}");
    // The Binance protocol's account (the same account) sees it, and its hold.
    let orders = sb.market.orders(DEFAULT_API_KEY, "ETHUSDT");
    assert_eq!(orders.iter().map(|o| o.client_order_id.as_str()).collect::<Vec<_>>(), ["one-exchange"]);
    let eth = sb.market.balances(DEFAULT_API_KEY).into_iter().find(|b| b.asset == "ETH").expect("ETH");
    assert_eq!(eth.locked, "0.5".parse().unwrap());
    sb.shutdown().await;
}

#[tokio::test]
async fn an_ed25519_test_key_and_a_key_registered_for_a_second_account_both_work() {
    let second = ed25519_dalek::SigningKey::from_bytes(&[0x33; 32]);
    let second_pem = ed25519_dalek::pkcs8::EncodePublicKey::to_public_key_pem(
        &second.verifying_key(),
        ed25519_dalek::pkcs8::spki::der::pem::LineEnding::LF,
    )
    .unwrap();
    let base = SandboxConfig::default();
    let mut accounts = base.accounts.clone();
    accounts.push(SandboxAccountConfig {
        api_key: "second".into(),
        api_secret: "second-secret".into(),
        balances: [("USDT".to_string(), "42".parse().unwrap())].into_iter().collect(),
        coinbase_key_name: Some("organizations/o/apiKeys/second".into()),
        coinbase_public_key: Some(second_pem),
        ..base.accounts[0].clone()
    });
    let cfg = SandboxConfig { coinbase_key_type: KeyType::Ed25519, accounts, ..base };
    let (sb, signer, kid) = start(cfg).await;
    assert!(matches!(signer, Signer::Ed(_)), "an Ed25519 test key");
    let host = sb.addr.to_string();
    let path = "/api/v3/brokerage/accounts";
    let uri = json!(format!("GET {host}{path}"));
    let (status, text) = call(&sb, "GET", path, &signer.token(&kid, claims(&kid, uri.clone())), None).await;
    assert_eq!(status, 200, "{text}");
    assert!(text.contains("\"currency\":\"BTC\""), "the first account's wallets: {text}");

    let kid2 = "organizations/o/apiKeys/second";
    let (status, text) = call(&sb, "GET", path, &Signer::Ed(second).token(kid2, claims(kid2, uri)), None).await;
    assert_eq!(status, 200, "{text}");
    let v: Value = serde_json::from_str(&text).unwrap();
    let currencies: Vec<&str> =
        v["accounts"].as_array().unwrap().iter().filter_map(|a| a["currency"].as_str()).collect();
    assert_eq!(currencies, ["USDT"], "the second account's own wallets: {text}");
    assert_eq!(v["accounts"][0]["available_balance"]["value"], "42");
    sb.shutdown().await;
}

#[tokio::test]
async fn public_routes_need_no_token_and_unknown_routes_are_404_json() {
    let sb = Sandbox::start(SandboxConfig::default()).await.expect("starts");
    let base = format!("http://{}/api/v3/brokerage", sb.addr);
    let time = reqwest::get(format!("{base}/time")).await.unwrap();
    assert_eq!(time.status().as_u16(), 200);
    let unknown = reqwest::get(format!("{base}/market/nothing-here")).await.unwrap();
    assert_eq!(unknown.status().as_u16(), 404);
    let v: Value = unknown.json().await.unwrap();
    assert_eq!(v["error"], "NOT_FOUND");
    let private = reqwest::get(format!("{base}/products")).await.unwrap();
    assert_eq!(private.status().as_u16(), 401, "the authenticated twin needs a token");
    sb.shutdown().await;
}

#[tokio::test]
async fn past_the_per_second_limit_a_request_gets_429_and_every_answer_the_ratelimit_headers() {
    let cfg = SandboxConfig { coinbase_public_per_s: 3, coinbase_private_per_s: 3, ..SandboxConfig::default() };
    let (sb, signer, kid) = start(cfg).await;
    let http = reqwest::Client::new();
    let first = http.get(format!("http://{}/api/v3/brokerage/time", sb.addr)).send().await.unwrap();
    assert_eq!(first.headers().get("x-ratelimit-limit").and_then(|v| v.to_str().ok()), Some("3"));
    assert!(first.headers().contains_key("x-ratelimit-reset"));
    // 3 a second: 50 requests cannot all pass unless they spread over 17 s.
    let mut limited = None;
    for _ in 0..50 {
        let r = http.get(format!("http://{}/api/v3/brokerage/time", sb.addr)).send().await.unwrap();
        if r.status().as_u16() == 429 {
            limited = Some(r);
            break;
        }
    }
    let limited = limited.expect("a 429 past 3 public requests a second");
    assert_eq!(limited.headers().get("x-ratelimit-remaining").and_then(|v| v.to_str().ok()), Some("0"));
    assert_eq!(limited.headers().get("retry-after").and_then(|v| v.to_str().ok()), Some("1"));
    let body: Value = limited.json().await.unwrap();
    assert_eq!(body["error"], "RESOURCE_EXHAUSTED");

    let path = "/api/v3/brokerage/accounts";
    let uri = json!(format!("GET {}{path}", sb.addr));
    let mut statuses = Vec::new();
    for _ in 0..50 {
        let (status, _) = call(&sb, "GET", path, &signer.token(&kid, claims(&kid, uri.clone())), None).await;
        statuses.push(status);
        if status == 429 {
            break;
        }
    }
    assert_eq!(statuses.last(), Some(&429), "private requests are limited per key too: {statuses:?}");
    assert!(statuses.iter().all(|s| *s == 200 || *s == 429), "{statuses:?}");
    sb.shutdown().await;
}
