//! The sandbox's Ed25519 API keys and WebSocket API sessions, on the wire:
//! Ed25519 signatures verified and refused on REST and the WebSocket API,
//! `session.logon` (Ed25519 keys only), `session.status`, `session.logout`,
//! `userDataStream.subscribe` after a logon, signed requests that omit
//! `apiKey` and `signature` on a logged-on session, and `exchangeInfo`.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use keel_binance::sign::encode_query;
use keel_binance::Credentials;
use keel_sandbox::{Sandbox, SandboxConfig, SandboxHandle};
use serde_json::{json, Value};
use tokio::time::timeout;
use tokio_tungstenite::tungstenite::Message;

const WAIT: Duration = Duration::from_secs(10);

type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64
}

async fn start() -> SandboxHandle {
    let sb = Sandbox::start(SandboxConfig { history_bars: 30, ..SandboxConfig::demo() }).await.expect("sandbox");
    sb.market.pause();
    assert!(sb.market.set_price("BTCUSDT", "60000".parse().unwrap()));
    sb.market.step(1);
    sb
}

/// The sandbox's generated Ed25519 key, as a client holds it.
fn ed25519(sb: &SandboxHandle) -> Credentials {
    let key = sb.ed25519_api_key.as_deref().expect("the default account has an Ed25519 key");
    Credentials::ed25519(key, sb.ed25519_private_key_pem.as_deref().expect("its private key")).expect("a valid key")
}

fn hmac(sb: &SandboxHandle) -> Credentials {
    Credentials::new(&sb.api_key, &sb.api_secret)
}

/// `GET /api/v3/account` with `key` in the header and `signature` as given
/// (already encoded for the query); returns status and body.
async fn account(sb: &SandboxHandle, key: &str, query: &str, signature: &str) -> (u16, Value) {
    let url = format!("{}/api/v3/account?{query}&signature={signature}", sb.rest_url);
    let resp = reqwest::Client::new().get(url).header("X-MBX-APIKEY", key).send().await.unwrap();
    (resp.status().as_u16(), resp.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn ed25519_rest_signatures_are_verified_and_refused() {
    let sb = start().await;
    let ed = ed25519(&sb);
    let query = encode_query(&[("timestamp".to_string(), now_ms().to_string())]);
    let good = ed.sign_rest(&query, "");
    let encode = keel_binance::sign::encode_component;
    let (status, body) = account(&sb, ed.api_key(), &query, &encode(&good)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["canTrade"], true);
    assert_eq!(
        body["balances"],
        account(&sb, &sb.api_key, &query, &hmac(&sb).sign_rest(&query, "")).await.1["balances"],
        "both keys are the same account"
    );

    let other = ed.sign_rest(&format!("{query}&recvWindow=5000"), "");
    let cases = [
        ("a signature of another payload", encode(&other)),
        ("an HMAC signature on an Ed25519 key", hmac(&sb).sign_rest(&query, "")),
        ("a changed character", encode(&good.replacen(&good[..1], if &good[..1] == "A" { "B" } else { "A" }, 1))),
        ("not base64", "%%%%".to_string()),
    ];
    for (name, sig) in cases {
        let (status, body) = account(&sb, ed.api_key(), &query, &sig).await;
        assert_eq!(
            (status, body.clone()),
            (400, json!({"code": -1022, "msg": "Signature for this request is not valid."})),
            "{name}"
        );
    }
    sb.shutdown().await;
}

async fn connect(sb: &SandboxHandle) -> Ws {
    tokio_tungstenite::connect_async(sb.ws_api_url.clone()).await.expect("ws-api connects").0
}

async fn next_json(ws: &mut Ws) -> Value {
    loop {
        let msg = timeout(WAIT, ws.next()).await.expect("a message in time").expect("open").expect("readable");
        if let Message::Text(t) = msg {
            return serde_json::from_str(t.as_str()).expect("JSON");
        }
    }
}

/// Sends a request and returns its response (events arriving first are kept in `events`).
async fn call(ws: &mut Ws, req: Value, events: &mut Vec<Value>) -> Value {
    let id = req["id"].clone();
    ws.send(Message::Text(req.to_string().into())).await.unwrap();
    loop {
        let v = next_json(ws).await;
        if v.get("event").is_some() {
            events.push(v);
        } else if v["id"] == id {
            return v;
        }
    }
}

/// Params of a signed request: `extra`, `apiKey`, `timestamp`, `signature`.
fn signed(creds: &Credentials, extra: &[(&str, &str)]) -> Value {
    let mut pairs: Vec<(String, String)> = extra.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    pairs.push(("apiKey".into(), creds.api_key().to_string()));
    pairs.push(("timestamp".into(), now_ms().to_string()));
    let signature = creds.sign_ws(&pairs);
    let mut params: serde_json::Map<String, Value> = pairs.into_iter().map(|(k, v)| (k, Value::String(v))).collect();
    params.insert("signature".into(), Value::String(signature));
    Value::Object(params)
}

fn error_of(r: &Value) -> (u64, i64, String) {
    (
        r["status"].as_u64().unwrap_or(0),
        r["error"]["code"].as_i64().unwrap_or(0),
        r["error"]["msg"].as_str().unwrap_or("").to_string(),
    )
}

/// The keys of a documented WS-API result (fixture), when the fixtures are present.
fn documented_keys(fixture: &str) -> Option<Vec<String>> {
    let dir = keel_testkit::fixtures("binance")?;
    let text = std::fs::read_to_string(dir.join(fixture)).expect("fixture readable");
    let v: Value = serde_json::from_str(&text).expect("fixture is JSON");
    let mut keys: Vec<String> = v["result"].as_object().expect("a result object").keys().cloned().collect();
    keys.sort();
    Some(keys)
}

fn keys_of(v: &Value) -> Vec<String> {
    let mut keys: Vec<String> = v.as_object().map(|o| o.keys().cloned().collect()).unwrap_or_default();
    keys.sort();
    keys
}

#[tokio::test]
async fn ws_api_session_logon_subscribe_trade_and_logout() {
    let sb = start().await;
    let ed = ed25519(&sb);
    let mut ws = connect(&sb).await;
    let mut events = Vec::new();

    // Before a logon: no subscription without a signature, no signed request without a key.
    let r = call(&mut ws, json!({"id": "sub0", "method": "userDataStream.subscribe"}), &mut events).await;
    assert_eq!(
        error_of(&r),
        (400, -1193, "WebSocket session not authenticated. Recommendation: use session.logon".into())
    );
    let bare = json!({"symbol": "BTCUSDT", "origClientOrderId": "x", "timestamp": now_ms()});
    let r = call(&mut ws, json!({"id": "q0", "method": "order.status", "params": bare}), &mut events).await;
    assert_eq!(
        error_of(&r),
        (400, -1102, "Mandatory parameter 'apiKey' was not sent, was empty/null, or malformed.".into())
    );

    // Refused logons: table of what Binance refuses.
    let mut tampered = signed(&ed, &[]);
    // One millisecond off the signed timestamp: the signature no longer matches.
    let signed_at: i64 = tampered["timestamp"].as_str().and_then(|t| t.parse().ok()).unwrap_or_default();
    tampered["timestamp"] = json!((signed_at - 1).to_string());
    let cases = [
        ("an HMAC key, correctly signed", signed(&hmac(&sb), &[]), (400, -1022)),
        ("a signature of other params", tampered, (400, -1022)),
        ("an unknown key", signed(&Credentials::new("nope", "s"), &[]), (401, -2015)),
        ("no params", json!({}), (400, -1102)),
    ];
    for (name, params, want) in cases {
        let r = call(&mut ws, json!({"id": name, "method": "session.logon", "params": params}), &mut events).await;
        let (status, code, _) = error_of(&r);
        assert_eq!((status, code), (want.0, want.1), "{name}: {r}");
    }
    // The HMAC key itself is fine: the same signing subscribes by signature.
    let r = call(
        &mut ws,
        json!({"id": "sig", "method": "userDataStream.subscribe.signature", "params": signed(&hmac(&sb), &[])}),
        &mut events,
    )
    .await;
    assert_eq!(r["result"], json!({"subscriptionId": 0}), "{r}");
    let r = call(&mut ws, json!({"id": "un", "method": "userDataStream.unsubscribe"}), &mut events).await;
    assert_eq!(r["status"], 200);

    // The logon.
    let params = signed(&ed, &[]);
    let ts: i64 = params["timestamp"].as_str().unwrap().parse().unwrap();
    let r = call(&mut ws, json!({"id": "logon", "method": "session.logon", "params": params}), &mut events).await;
    assert_eq!(r["status"], 200, "{r}");
    let result = &r["result"];
    assert_eq!(result["apiKey"], ed.api_key());
    assert_eq!(result["authorizedSince"], ts, "authorizedSince is the logon's timestamp");
    assert_eq!(result["userDataStream"], false);
    if let Some(keys) = documented_keys("wsapi_session_logon_response.json") {
        assert_eq!(keys_of(result), keys, "the documented result fields");
    }
    let r = call(&mut ws, json!({"id": "st", "method": "session.status"}), &mut events).await;
    assert_eq!(
        (r["result"]["apiKey"].clone(), r["result"]["authorizedSince"].clone()),
        (json!(ed.api_key()), json!(ts))
    );
    if let Some(keys) = documented_keys("wsapi_session_status_response.json") {
        assert_eq!(keys_of(&r["result"]), keys);
    }

    // Subscribe without params; a second one for the same account is refused.
    let r = call(&mut ws, json!({"id": "sub1", "method": "userDataStream.subscribe"}), &mut events).await;
    let sid = r["result"]["subscriptionId"].as_u64().expect("a subscription id");
    assert_eq!(keys_of(&r["result"]), ["subscriptionId"]);
    let r = call(&mut ws, json!({"id": "sub2", "method": "userDataStream.subscribe"}), &mut events).await;
    assert_eq!(error_of(&r), (400, -2035, "User Data Stream subscription already active.".into()));
    let r = call(&mut ws, json!({"id": "st2", "method": "session.status"}), &mut events).await;
    assert_eq!(r["result"]["userDataStream"], true);

    // Signed requests omit apiKey and signature; the timestamp stays mandatory.
    let order = json!({"symbol": "BTCUSDT", "side": "BUY", "type": "MARKET", "quantity": "0.001",
        "newClientOrderId": "logon-1", "timestamp": now_ms()});
    let r = call(&mut ws, json!({"id": "o1", "method": "order.place", "params": order}), &mut events).await;
    assert_eq!(r["result"]["status"], "FILLED", "{r}");
    let r = call(
        &mut ws,
        json!({"id": "o2", "method": "order.status", "params": {"symbol": "BTCUSDT", "origClientOrderId": "logon-1"}}),
        &mut events,
    )
    .await;
    assert_eq!(
        error_of(&r),
        (400, -1102, "Mandatory parameter 'timestamp' was not sent, was empty/null, or malformed.".into())
    );
    // An ad hoc key on the same connection overrides the session's.
    let r = call(
        &mut ws,
        json!({"id": "o3", "method": "order.status",
            "params": signed(&hmac(&sb), &[("symbol", "BTCUSDT"), ("origClientOrderId", "logon-1")])}),
        &mut events,
    )
    .await;
    assert_eq!(r["result"]["clientOrderId"], "logon-1", "{r}");

    // The order's execution reports arrive on the logon's subscription.
    while events.iter().filter(|e| e["event"]["e"] == "executionReport").count() < 2 {
        events.push(next_json(&mut ws).await);
    }
    let reports: Vec<String> = events
        .iter()
        .filter(|e| e["event"]["e"] == "executionReport")
        .map(|e| {
            assert_eq!(e["subscriptionId"], sid);
            format!("{}:{}", e["event"]["c"].as_str().unwrap(), e["event"]["x"].as_str().unwrap())
        })
        .collect();
    assert_eq!(reports[..2], ["logon-1:NEW", "logon-1:TRADE"]);

    // Logout forgets the key and ends the logon's subscription.
    let r = call(&mut ws, json!({"id": "out", "method": "session.logout"}), &mut events).await;
    let result = &r["result"];
    assert_eq!((result["apiKey"].clone(), result["authorizedSince"].clone()), (Value::Null, Value::Null));
    assert_eq!(result["userDataStream"], false);
    let ended = loop {
        let v = next_json(&mut ws).await;
        if v["event"]["e"] == "eventStreamTerminated" {
            break v;
        }
    };
    assert_eq!(ended["subscriptionId"], sid);
    let r = call(
        &mut ws,
        json!({"id": "o4", "method": "order.status",
            "params": {"symbol": "BTCUSDT", "origClientOrderId": "logon-1", "timestamp": now_ms()}}),
        &mut events,
    )
    .await;
    assert_eq!(error_of(&r).1, -1102, "after a logout the key must be sent again: {r}");
    sb.shutdown().await;
}

#[tokio::test]
async fn ws_api_exchange_info_is_the_rest_one() {
    let sb = start().await;
    let mut ws = connect(&sb).await;
    let mut events = Vec::new();
    let r =
        call(&mut ws, json!({"id": "x", "method": "exchangeInfo", "params": {"symbols": ["BTCUSDT"]}}), &mut events)
            .await;
    assert_eq!(r["status"], 200, "{r}");
    let rest: Value = reqwest::get(format!("{}/api/v3/exchangeInfo?symbol=BTCUSDT", sb.rest_url))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut ws_result = r["result"].clone();
    let mut rest = rest;
    for v in [&mut ws_result, &mut rest] {
        v["serverTime"] = Value::Null;
    }
    assert_eq!(ws_result, rest);
    let info: keel_binance::model::ExchangeInfo = serde_json::from_value(r["result"].clone()).unwrap();
    assert_eq!(info.symbols.len(), 1);
    let r =
        call(&mut ws, json!({"id": "y", "method": "exchangeInfo", "params": {"symbol": "NOPE"}}), &mut events).await;
    assert_eq!((error_of(&r).0, error_of(&r).1), (400, -1121));
    sb.shutdown().await;
}

#[tokio::test]
async fn a_configured_ed25519_public_key_is_an_api_key_of_its_account() {
    use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
    use ed25519_dalek::pkcs8::{EncodePrivateKey, EncodePublicKey};
    let key = ed25519_dalek::SigningKey::from_bytes(&[42u8; 32]);
    let public = key.verifying_key().to_public_key_pem(LineEnding::LF).unwrap();
    let private = key.to_pkcs8_pem(LineEnding::LF).unwrap();
    let cfg: SandboxConfig = toml::from_str(&format!(
        "[[accounts]]\napi_key = \"k\"\napi_secret = \"s\"\ned25519_api_key = \"my-ed\"\ned25519_public_key = \"\"\"\n{public}\"\"\"\nbalances = {{ USDT = \"100\" }}\n"
    ))
    .unwrap();
    let sb = Sandbox::start(SandboxConfig { history_bars: 5, ..cfg }).await.unwrap();
    assert_eq!(sb.ed25519_api_key.as_deref(), Some("my-ed"));
    assert!(sb.ed25519_private_key_pem.is_none(), "a registered key's private half is the user's, not the sandbox's");
    let ed = Credentials::ed25519("my-ed", &private).unwrap();
    let query = encode_query(&[("timestamp".to_string(), now_ms().to_string())]);
    let sig = keel_binance::sign::encode_component(&ed.sign_rest(&query, ""));
    let (status, body) = account(&sb, "my-ed", &query, &sig).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["balances"][0]["asset"], "USDT");

    // A key that is not one is named at start.
    let bad = SandboxConfig {
        accounts: vec![keel_sandbox::SandboxAccountConfig {
            ed25519_public_key: Some("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n".into()),
            ..SandboxConfig::default().accounts[0].clone()
        }],
        ..SandboxConfig::default()
    };
    let err = Sandbox::start(bad).await.err().expect("refused").to_string();
    assert!(err.contains("sandbox.accounts[0].ed25519_public_key"), "{err}");
    sb.shutdown().await;
}

/// Runs `keel sandbox` in `dir` (its working dir, no config there: the
/// built-in default) until it is ready; returns its human lines and the
/// ready object, and stops it.
fn standalone_once(dir: &std::path::Path) -> (Vec<String>, Value) {
    use std::io::{BufRead, BufReader};
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_keel"))
        .args(["sandbox", "--listen", "127.0.0.1:0"])
        .current_dir(dir)
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("keel sandbox starts");
    let stdout = child.stdout.take().expect("piped");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut human = Vec::new();
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(json) = line.strip_prefix(ops::cmd_sandbox::READY_PREFIX) {
                let _ = tx.send((human, json.to_string()));
                return;
            }
            human.push(line);
        }
    });
    let got = rx.recv_timeout(Duration::from_secs(60));
    let _ = child.kill();
    let _ = child.wait();
    let (human, ready) = got.expect("a ready line");
    (human, serde_json::from_str(&ready).expect("ready JSON"))
}

#[test]
fn keel_sandbox_prints_its_ed25519_key_and_keeps_it_in_its_working_dir() {
    let dir = tempfile::tempdir().unwrap();
    let (human, ready) = standalone_once(dir.path());
    let key = ready["ed25519_api_key"].as_str().expect("ed25519_api_key").to_string();
    let path = std::path::PathBuf::from(ready["ed25519_private_key_path"].as_str().expect("ed25519_private_key_path"));
    assert_eq!(path, dir.path().join(keel_sandbox::test_key::KEY_FILE), "written to the working dir");
    let pem = std::fs::read_to_string(&path).unwrap();
    assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----"));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
    }
    let text = human.join("\n");
    assert!(text.contains(&format!("Ed25519 API key:     {key}")), "{text}");
    assert!(text.contains(&path.display().to_string()), "{text}");
    assert!(text.contains("KEEL_BINANCE_PRIVATE_KEY_PATH"), "{text}");
    assert!(!text.contains("BEGIN PRIVATE KEY") && !ready.to_string().contains("PRIVATE KEY"), "never the key itself");
    for field in ["rest_url", "ws_stream_url", "ws_api_url", "api_key", "api_secret"] {
        assert!(ready[field].is_string(), "{field}: {ready}");
    }

    // The next start in the same place keeps the key a client was given.
    let (_, again) = standalone_once(dir.path());
    assert_eq!(again["ed25519_api_key"], json!(key));
    assert_eq!(std::fs::read_to_string(&path).unwrap(), pem);
}
