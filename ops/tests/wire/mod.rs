//! Raw wire helpers for tests that talk to the sandbox as a Binance client
//! written from the docs would: signed REST calls, WebSocket reads, and
//! comparison of payload shapes with the documented fixtures.

#![allow(dead_code)]

use std::path::Path;
use std::time::Duration;

use futures_util::StreamExt;
use keel_binance::sign::{encode_query, sign_rest};
use keel_sandbox::SandboxHandle;
use serde_json::Value;
use tokio::time::timeout;
use tokio_tungstenite::tungstenite::Message;

/// How long a test waits for one message.
pub const WAIT: Duration = Duration::from_secs(10);

/// The wall clock (ms).
pub fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64
}

/// A REST answer.
pub struct Resp {
    /// HTTP status.
    pub status: u16,
    /// `x-mbx-used-weight-1m`.
    pub weight: Option<u64>,
    /// `x-mbx-order-count-10s`.
    pub order_count: Option<u64>,
    /// `Retry-After` (s).
    pub retry_after: Option<u64>,
    /// The body.
    pub body: Value,
}

/// Calls the sandbox's REST API; `signed` adds the timestamp (unless sent),
/// the signature (unless sent) and the test key.
pub async fn call(sb: &SandboxHandle, method: &str, path: &str, params: &[(&str, &str)], signed: bool) -> Resp {
    call_with_key(sb, method, path, params, signed, None).await
}

/// As [`call`], with `key` as the `X-MBX-APIKEY` header (also unsigned).
pub async fn call_with_key(
    sb: &SandboxHandle,
    method: &str,
    path: &str,
    params: &[(&str, &str)],
    signed: bool,
    key: Option<&str>,
) -> Resp {
    let mut pairs: Vec<(String, String)> = params.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    if signed && !pairs.iter().any(|(k, _)| k == "timestamp") {
        pairs.push(("timestamp".into(), now_ms().to_string()));
    }
    let mut query = encode_query(&pairs);
    if signed && !pairs.iter().any(|(k, _)| k == "signature") {
        let sig = sign_rest(&sb.api_secret, &query, "");
        query = format!("{query}&signature={sig}");
    }
    let url = format!("{}{}?{}", sb.rest_url, path, query);
    let mut req = reqwest::Client::new().request(method.parse().unwrap(), url);
    if let Some(k) = key.or(signed.then_some(sb.api_key.as_str())) {
        req = req.header("X-MBX-APIKEY", k);
    }
    let resp = req.send().await.unwrap();
    let h = |n: &str| resp.headers().get(n).and_then(|v| v.to_str().ok()).and_then(|v| v.parse().ok());
    let (status, weight, order_count, retry_after) =
        (resp.status().as_u16(), h("x-mbx-used-weight-1m"), h("x-mbx-order-count-10s"), h("retry-after"));
    let body = resp.json().await.unwrap_or(Value::Null);
    Resp { status, weight, order_count, retry_after, body }
}

/// The next text message of a WebSocket as JSON (pings are skipped).
pub async fn next_json<S>(ws: &mut S) -> Value
where
    S: futures_util::Stream<Item = Result<Message, tokio_tungstenite::tungstenite::Error>> + Unpin,
{
    loop {
        let m = timeout(WAIT, ws.next()).await.expect("message in time").expect("open").expect("ok");
        if let Message::Text(t) = m {
            return serde_json::from_str(t.as_str()).unwrap();
        }
    }
}

/// The next message satisfying `pred` (others are skipped), within [`WAIT`].
pub async fn next_matching<S>(ws: &mut S, what: &str, pred: impl Fn(&Value) -> bool) -> Value
where
    S: futures_util::Stream<Item = Result<Message, tokio_tungstenite::tungstenite::Error>> + Unpin,
{
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        assert!(tokio::time::Instant::now() < deadline, "no {what} within {WAIT:?}");
        let v = next_json(ws).await;
        if pred(&v) {
            return v;
        }
    }
}

/// Loads a documented payload.
pub fn fixture(dir: &Path, name: &str) -> Value {
    let path = dir.join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Asserts `got` has the documented shape of `want`: the same keys in every
/// object, the same JSON type at every place (arrays compared element-wise
/// with the documented first element; a documented tuple position by position).
pub fn assert_shape(got: &Value, want: &Value, at: &str) {
    assert_eq!(kind(got), kind(want), "{at}: {got} vs documented {want}");
    match (got, want) {
        (Value::Object(g), Value::Object(w)) => {
            let mut gk: Vec<&String> = g.keys().collect();
            let mut wk: Vec<&String> = w.keys().collect();
            gk.sort();
            wk.sort();
            assert_eq!(gk, wk, "{at}: field set");
            for (k, wv) in w {
                assert_shape(&g[k], wv, &format!("{at}.{k}"));
            }
        }
        (Value::Array(g), Value::Array(w)) => {
            let Some(first) = w.first() else { return };
            // A documented array of scalars of mixed types is a tuple (a kline row).
            let tuple = w.iter().any(|x| kind(x) != kind(first));
            for (i, gv) in g.iter().enumerate() {
                let wv = if tuple {
                    w.get(i).unwrap_or_else(|| panic!("{at}[{i}]: beyond the documented tuple"))
                } else {
                    first
                };
                assert_shape(gv, wv, &format!("{at}[{i}]"));
            }
            if tuple {
                assert_eq!(g.len(), w.len(), "{at}: tuple length");
            }
        }
        _ => {}
    }
}
