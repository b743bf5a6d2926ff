//! The console's live events (`GET /api/v1/events`) and candles
//! (`GET /api/v1/candles`) against the real engine in process, over loopback HTTP.

mod common;
mod http_support;

use std::collections::HashMap;
use std::time::Duration;

use http_support::{eventually, start, Running, BASE};
use reqwest::StatusCode;
use serde_json::{json, Value};
use tokio::time::{timeout_at, Instant};

const TOKEN_ENV: &str = "KEEL_TEST_CONSOLE_EVENTS_TOKEN";
const TOKEN: &str = "console-events-token-5d4c3b2a-0123456789abcdef";
const SECRET_ENV: &str = "KEEL_TEST_CONSOLE_EVENTS_SECRET";
const SECRET: &str = "console-events-secret-9a8b7c-0123456789abcdef";

/// How long any one wait for an event may take.
const WAIT: Duration = Duration::from_secs(15);

async fn engine() -> Running {
    engine_with("").await
}

/// The engine with `strategies` (TOML) beside the base ones.
async fn engine_with(strategies: &str) -> Running {
    std::env::set_var(TOKEN_ENV, TOKEN);
    std::env::set_var(SECRET_ENV, SECRET);
    start(&format!(
        "{BASE}\n{strategies}\n[http]\nlisten = \"127.0.0.1:0\"\ntoken_env = \"{TOKEN_ENV}\"\nwebhook_secret_env = \"{SECRET_ENV}\"\nrate_limit_per_minute = 100000\nrate_limit_burst = 10000\n"
    ))
    .await
}

fn client() -> reqwest::Client {
    // No overall timeout: streams stay open; every wait below has its own deadline.
    reqwest::Client::builder().no_proxy().connect_timeout(Duration::from_secs(5)).build().expect("client")
}

async fn get(r: &Running, path: &str, token: Option<&str>) -> (StatusCode, Value) {
    let mut req = client().get(format!("{}{path}", r.base_url())).timeout(Duration::from_secs(10));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let resp = req.send().await.expect("request");
    let status = resp.status();
    (status, resp.json().await.unwrap_or(Value::Null))
}

async fn post(r: &Running, path: &str, token: Option<&str>, body: &Value) -> (StatusCode, Value) {
    let mut req = client().post(format!("{}{path}", r.base_url())).timeout(Duration::from_secs(10)).json(body);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let resp = req.send().await.expect("request");
    let status = resp.status();
    (status, resp.json().await.unwrap_or(Value::Null))
}

/// One message of the stream: an event with its data, or a comment.
#[derive(Debug, Clone, PartialEq)]
enum Message {
    Event(String, Value),
    Comment(String),
}

/// An open event stream, read message by message.
struct Stream {
    resp: reqwest::Response,
    buf: String,
}

impl Stream {
    async fn open(r: &Running) -> Result<Stream, (StatusCode, String)> {
        Self::open_at(&r.base_url()).await
    }

    async fn open_at(base: &str) -> Result<Stream, (StatusCode, String)> {
        let resp =
            client().get(format!("{base}/api/v1/events")).bearer_auth(TOKEN).send().await.expect("the server answers");
        if resp.status() != StatusCode::OK {
            let status = resp.status();
            return Err((status, resp.text().await.unwrap_or_default()));
        }
        Ok(Stream { resp, buf: String::new() })
    }

    /// The next message, `None` when the stream ended (or failed), `Err` at the deadline.
    async fn next_by(&mut self, deadline: Instant) -> Result<Option<Message>, ()> {
        loop {
            if let Some(end) = self.buf.find("\n\n") {
                let block: String = self.buf.drain(..end + 2).collect();
                return Ok(Some(parse(block.trim_end())));
            }
            match timeout_at(deadline, self.resp.chunk()).await {
                Err(_) => return Err(()),
                Ok(Ok(Some(bytes))) => self.buf.push_str(&String::from_utf8_lossy(&bytes)),
                Ok(Ok(None)) | Ok(Err(_)) => return Ok(None),
            }
        }
    }

    /// The first event named `name` whose data `pred` accepts, within [`WAIT`].
    async fn wait_for(&mut self, name: &str, pred: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + WAIT;
        let mut seen = Vec::new();
        loop {
            match self.next_by(deadline).await {
                Ok(Some(Message::Event(n, data))) if n == name && pred(&data) => return data,
                Ok(Some(m)) => seen.push(m),
                Ok(None) => panic!("the stream ended waiting for `{name}`; seen {seen:?}"),
                Err(()) => {
                    panic!("no matching `{name}` within {WAIT:?}; seen {} messages, last {:?}", seen.len(), seen.last())
                }
            }
        }
    }
}

fn parse(block: &str) -> Message {
    let mut name = String::new();
    let mut data = String::new();
    for line in block.lines() {
        if let Some(c) = line.strip_prefix(':') {
            return Message::Comment(c.trim().to_string());
        }
        if let Some(n) = line.strip_prefix("event: ") {
            name = n.to_string();
        } else if let Some(d) = line.strip_prefix("data: ") {
            assert!(data.is_empty(), "one data line per event: {block:?}");
            data = d.to_string();
        }
    }
    Message::Event(name, serde_json::from_str(&data).unwrap_or(Value::Null))
}

async fn with_prices(r: &Running) {
    assert!(eventually(10, || async { r.handle.prices().get("BTCUSDT").is_some() }).await, "no prices");
}

#[actix_rt::test]
async fn events_need_the_token_and_say_hello_first() {
    let r = engine().await;
    for token in [None, Some("wrong-token-0123456789abcdef0123456789")] {
        let mut req = client().get(format!("{}/api/v1/events", r.base_url()));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let resp = req.send().await.expect("request");
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED, "token {token:?}");
    }
    let mut s = Stream::open(&r).await.expect("stream opens");
    let ct = s.resp.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
    assert_eq!(ct, "text/event-stream");
    let first = s.next_by(Instant::now() + WAIT).await;
    assert_eq!(
        first,
        Ok(Some(Message::Event(
            "hello".into(),
            json!({ "venue_mode": "paper", "exchange": null, "trading_state": "ACTIVE" })
        )))
    );
    let head = client().head(format!("{}/api/v1/events", r.base_url())).bearer_auth(TOKEN).send().await;
    let head = head.expect("HEAD");
    assert_eq!(head.status(), StatusCode::OK);
    assert_eq!(head.headers().get("content-type").and_then(|v| v.to_str().ok()), Some("text/event-stream"));
    r.stop().await;
}

#[actix_rt::test]
async fn a_webhook_order_arrives_as_order_and_fill_events_shaped_like_the_snapshots() {
    let r = engine().await;
    with_prices(&r).await;
    let mut s = Stream::open(&r).await.expect("stream opens");
    s.wait_for("hello", |_| true).await;
    let alert = json!({ "secret": SECRET, "strategy_id": "tv", "symbol": "BTCUSDT", "action": "buy", "qty": "0.02" });
    let (status, body) = post(&r, "/api/v1/webhook/tradingview", None, &alert).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");

    // Every change of the order, in order, up to its final state; the fill on the way.
    let mut statuses = Vec::new();
    let mut fill = None;
    let mut last_order = Value::Null;
    let deadline = Instant::now() + WAIT;
    while statuses.last().map(String::as_str) != Some("filled") || fill.is_none() {
        match s.next_by(deadline).await {
            Ok(Some(Message::Event(name, data))) if data["strategy_id"] == "tv" => match name.as_str() {
                "order" => {
                    statuses.push(data["status"].as_str().unwrap_or_default().to_string());
                    last_order = data;
                }
                "fill" => fill = Some(data),
                _ => {}
            },
            Ok(Some(_)) => {}
            other => panic!("no filled order and fill: {other:?}; statuses {statuses:?}"),
        }
    }
    assert_eq!(statuses.first().map(String::as_str), Some("new"), "{statuses:?}");
    assert!(statuses.iter().any(|s| s == "submitted"), "{statuses:?}");
    assert_eq!(last_order["qty"], "0.02", "{last_order}");
    assert_eq!(last_order["filled_qty"], "0.02", "{last_order}");

    // The fill is one item of /api/v1/trades, exactly.
    let fill = fill.unwrap_or_default();
    assert_eq!(fill["client_order_id"], last_order["client_order_id"]);
    let (status, trades) = get(&r, "/api/v1/trades?limit=1000", Some(TOKEN)).await;
    assert_eq!(status, StatusCode::OK);
    let item = trades.as_array().and_then(|a| a.iter().find(|t| t["trade_id"] == fill["trade_id"]).cloned());
    assert_eq!(item, Some(fill.clone()), "the fill event is the trades item");
    assert!(fill["time"].as_str().is_some_and(|t| t.ends_with('Z')), "{fill}");

    // The order is the order as /api/v1/orders serialises it (the stored order's JSON).
    let cid = last_order["client_order_id"].as_str().unwrap_or_default().to_string();
    let stored = eventually(5, || async {
        let stored = r.store.order(&cid).ok().flatten().map(|o| serde_json::to_value(o).unwrap_or_default());
        stored.as_ref() == Some(&last_order)
    })
    .await;
    assert!(stored, "the final order event is the stored order: {last_order}");
    r.stop().await;
}

#[actix_rt::test]
async fn a_resting_order_event_is_the_open_orders_item() {
    // A grid keeps limit orders resting on the book, and replaces them as they fill.
    let grid = "[[strategy]]\nid = \"grid\"\nkind = \"grid\"\nsymbol = \"ETHUSDT\"\nparams = { lower = \"2900\", upper = \"3500\", levels = 7, qty = \"0.01\" }\n";
    let r = engine_with(grid).await;
    let mut s = Stream::open(&r).await.expect("stream opens");
    s.wait_for("hello", |_| true).await;
    let mut latest: HashMap<String, Value> = HashMap::new();
    let deadline = Instant::now() + WAIT;
    let mut matched = None;
    while matched.is_none() {
        // Read what the stream has said so far (a short look), then compare with the snapshot.
        let look = (Instant::now() + Duration::from_millis(200)).min(deadline);
        while let Ok(Some(m)) = s.next_by(look).await {
            if let Message::Event(name, data) = m {
                if name == "order" && data["strategy_id"] == "grid" {
                    latest.insert(data["client_order_id"].as_str().unwrap_or_default().to_string(), data);
                }
            }
        }
        let (status, open) = get(&r, "/api/v1/orders", Some(TOKEN)).await;
        assert_eq!(status, StatusCode::OK);
        matched = open.as_array().and_then(|items| {
            items
                .iter()
                .find(|item| item["client_order_id"].as_str().and_then(|c| latest.get(c)) == Some(item))
                .cloned()
        });
        assert!(
            Instant::now() < deadline,
            "no open order equal to its last order event; events {latest:?}, open {open}"
        );
    }
    let order = matched.unwrap_or_default();
    assert_eq!(order["order_type"]["type"], "limit", "{order}");
    r.stop().await;
}

#[actix_rt::test]
async fn an_emergency_stop_and_a_resume_arrive_as_emergency_stop_and_state_events() {
    let r = engine().await;
    let mut s = Stream::open(&r).await.expect("stream opens");
    s.wait_for("hello", |_| true).await;
    let (status, _) = post(&r, "/api/v1/emergency-stop", Some(TOKEN), &json!({"reason": "hold orders"})).await;
    assert_eq!(status, StatusCode::OK);
    let stop = s.wait_for("emergency_stop", |_| true).await;
    assert_eq!(stop["active"], true, "{stop}");
    assert_eq!(stop["reason"], "hold orders", "{stop}");
    assert!(stop["by"].as_str().is_some_and(|b| b.ends_with("127.0.0.1")), "{stop}");
    let state = s.wait_for("state", |_| true).await;
    assert_ne!(state["trading_state"], "ACTIVE", "{state}");
    assert!(state["reason"].as_str().is_some_and(|r| !r.is_empty()), "{state}");

    let (status, _) = post(&r, "/api/v1/resume", Some(TOKEN), &json!({})).await;
    assert_eq!(status, StatusCode::OK);
    let cleared = s.wait_for("emergency_stop", |_| true).await;
    assert_eq!(cleared["active"], false, "{cleared}");
    let state = s.wait_for("state", |_| true).await;
    assert_eq!(state["trading_state"], "ACTIVE", "{state}");
    r.stop().await;
}

#[actix_rt::test]
async fn a_warn_line_arrives_as_a_log_event() {
    // The process's logging, as `keel run` installs it (a second init keeps the first).
    let _guard = ops::logging::init(ops::config::LogFormat::Text, "warn");
    let r = engine().await;
    let mut s = Stream::open(&r).await.expect("stream opens");
    s.wait_for("hello", |_| true).await;
    let guess = "a-guess-that-must-never-be-logged-0123456789";
    let (status, _) = get(&r, "/api/v1/status", Some(guess)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let line = s
        .wait_for("log", |d| {
            d["message"].as_str().is_some_and(|m| m.contains("HTTP request refused: authentication failed"))
        })
        .await;
    assert_eq!(line["level"], "WARN", "{line}");
    assert!(line["target"].as_str().is_some_and(|t| t.starts_with("ops::http")), "{line}");
    assert!(line["ts"].as_i64().is_some_and(|ts| ts > 1_600_000_000_000), "{line}");
    let message = line["message"].as_str().unwrap_or_default();
    assert!(message.contains("remote=127.0.0.1") && message.contains("status=401"), "{line}");
    assert!(!line.to_string().contains(guess), "the credential leaked: {line}");
    r.stop().await;
}

#[actix_rt::test]
async fn prices_come_at_most_once_a_second_per_symbol() {
    let r = engine().await;
    with_prices(&r).await;
    let mut s = Stream::open(&r).await.expect("stream opens");
    s.wait_for("hello", |_| true).await;
    // The simulated market moves many times a second; the stream says so at most once a second.
    let window = Duration::from_millis(3_500);
    let until = Instant::now() + window;
    let mut seen: HashMap<String, Vec<(String, i64)>> = HashMap::new();
    while let Ok(Some(m)) = s.next_by(until).await {
        if let Message::Event(name, data) = m {
            if name == "price" {
                let symbol = data["symbol"].as_str().unwrap_or_default().to_string();
                let price = data["price"].as_str().unwrap_or_default().to_string();
                assert!(price.parse::<rust_decimal::Decimal>().is_ok(), "{data}");
                seen.entry(symbol).or_default().push((price, data["ts"].as_i64().unwrap_or_default()));
            }
        }
    }
    let most = window.as_secs() as usize + 2;
    for symbol in ["BTCUSDT", "ETHUSDT"] {
        let prices = seen.get(symbol).cloned().unwrap_or_default();
        assert!((2..=most).contains(&prices.len()), "{symbol}: {} prices in {window:?}: {prices:?}", prices.len());
        assert!(prices.windows(2).all(|w| w[0].1 < w[1].1 && w[0].0 != w[1].0), "{symbol}: {prices:?}");
    }
    r.stop().await;
}

#[actix_rt::test]
async fn streams_past_the_cap_get_503_and_a_closed_one_frees_its_slot() {
    let r = engine().await;
    let mut open = Vec::new();
    for _ in 0..ops::http::events::MAX_STREAMS {
        let mut s = Stream::open(&r).await.expect("a stream within the cap opens");
        s.wait_for("hello", |_| true).await;
        open.push(s);
    }
    let refused = Stream::open(&r).await.err();
    assert_eq!(refused.as_ref().map(|e| e.0), Some(StatusCode::SERVICE_UNAVAILABLE), "{refused:?}");
    assert!(refused.is_some_and(|e| e.1.contains("too many event streams")));
    drop(open.pop());
    let reopened = eventually(10, || async { Stream::open(&r).await.is_ok() }).await;
    assert!(reopened, "a closed stream's slot was never freed");
    r.stop().await;
}

#[actix_rt::test]
async fn the_server_stops_promptly_with_a_stream_open_and_the_stream_ends() {
    let mut r = engine().await;
    let mut s = Stream::open(&r).await.expect("stream opens");
    s.wait_for("hello", |_| true).await;
    let surfaces = r.surfaces.take().expect("surfaces");
    let began = Instant::now();
    // The HTTP server's own graceful stop gives up after 5 s: an open stream must not make it wait.
    let stopped = tokio::time::timeout(Duration::from_secs(4), surfaces.stop()).await;
    assert!(stopped.is_ok(), "the surfaces did not stop within 4 s with a stream open");
    let took = began.elapsed();
    let deadline = Instant::now() + WAIT;
    loop {
        match s.next_by(deadline).await {
            Ok(None) => break,
            Ok(Some(_)) => continue,
            Err(()) => panic!("the stream did not end after the server stopped"),
        }
    }
    eprintln!("surfaces stopped in {took:?} with a stream open");
    r.stop().await;
}

#[actix_rt::test]
async fn candles_answer_closed_klines_and_refuse_bad_queries() {
    let r = engine().await;
    let path = "/api/v1/candles?symbol=btcusdt&interval=1m&limit=5";
    // The simulated market needs a moment to close five bars.
    let deadline = Instant::now() + WAIT;
    let body = loop {
        let (status, body) = get(&r, path, Some(TOKEN)).await;
        if status == StatusCode::OK && body["candles"].as_array().is_some_and(|c| c.len() == 5) {
            break body;
        }
        assert!(Instant::now() < deadline, "never five candles: {status} {body}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(body["symbol"], "BTCUSDT");
    assert_eq!(body["interval"], "1m");
    let candles = body["candles"].as_array().cloned().unwrap_or_default();
    let times: Vec<i64> = candles.iter().filter_map(|c| c["t"].as_i64()).collect();
    assert!(times.windows(2).all(|w| w[1] - w[0] == 60_000), "oldest first, one minute apart: {times:?}");
    for c in &candles {
        let n = |k: &str| c[k].as_str().and_then(|v| v.parse::<rust_decimal::Decimal>().ok());
        let (o, h, l, cl, v) = (n("o"), n("h"), n("l"), n("c"), n("v"));
        assert!(o.is_some() && cl.is_some() && v.is_some(), "decimal strings: {c}");
        assert!(h >= o.max(cl) && l <= o.min(cl), "high and low bound the candle: {c}");
    }
    // The simulated market closes many bars a second: the same answer again is the cache's.
    let (_, again) = get(&r, path, Some(TOKEN)).await;
    assert_eq!(again, body, "a second load within the cache time spends no venue request");

    let cases = [
        ("/api/v1/candles?symbol=DOGEUSDT&interval=1m", StatusCode::BAD_REQUEST, "not a configured symbol"),
        ("/api/v1/candles?interval=1m", StatusCode::BAD_REQUEST, "not a configured symbol"),
        ("/api/v1/candles?symbol=BTCUSDT&interval=7m", StatusCode::BAD_REQUEST, "interval"),
        ("/api/v1/candles?symbol=BTCUSDT&interval=5m", StatusCode::BAD_REQUEST, "venue refused"),
        ("/api/v1/candles?symbol=BTCUSDT&limit=0", StatusCode::BAD_REQUEST, "limit"),
        ("/api/v1/candles?symbol=BTCUSDT&limit=999", StatusCode::BAD_REQUEST, "limit"),
        ("/api/v1/candles?symbol=BTCUSDT&since=1", StatusCode::BAD_REQUEST, "bad query"),
    ];
    for (path, want, says) in cases {
        let (status, body) = get(&r, path, Some(TOKEN)).await;
        assert_eq!(status, want, "{path}: {body}");
        assert!(body["error"].as_str().is_some_and(|e| e.contains(says)), "{path}: {body}");
    }
    let (status, _) = get(&r, "/api/v1/candles?symbol=BTCUSDT", None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    r.stop().await;
}

#[actix_rt::test]
async fn the_keel_binary_streams_its_warn_lines_and_ends_the_stream_when_it_stops() {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = dir.path().join("config.toml");
    let base = BASE.replace("log_level = \"warn\"", "log_level = \"info\"");
    let text = format!("{base}\n[http]\nlisten = \"127.0.0.1:0\"\ntoken_env = \"{TOKEN_ENV}\"\n");
    std::fs::write(&config, text).expect("config written");
    let mut keel = common::spawn_run(&config, &dir.path().join("data"), &[], &[(TOKEN_ENV, TOKEN)]);
    keel.wait_for("HTTP API and /metrics listening", 1);
    let listen =
        keel.seen.iter().find(|v| v["message"] == "HTTP API and /metrics listening").map(|v| v["listen"].clone());
    let base = format!("http://{}", listen.and_then(|v| v.as_str().map(String::from)).unwrap_or_default());
    let mut s = Stream::open_at(&base).await.expect("stream opens");
    s.wait_for("hello", |_| true).await;
    let resp = client().get(format!("{base}/api/v1/positions")).send().await.expect("request");
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    // JSON logs (`--log-format json`, as the tests run keel) feed the stream too.
    let line = s
        .wait_for("log", |d| {
            d["message"].as_str().is_some_and(|m| m.starts_with("HTTP request refused: authentication failed"))
        })
        .await;
    assert_eq!(line["level"], "WARN", "{line}");
    assert!(line["message"].as_str().is_some_and(|m| m.contains("route=/api/v1/positions")), "{line}");
    keel.sigterm();
    let deadline = Instant::now() + WAIT;
    loop {
        match s.next_by(deadline).await {
            Ok(None) => break,
            Ok(Some(_)) => continue,
            Err(()) => panic!("the stream stayed open after SIGTERM"),
        }
    }
    let (status, lines) = keel.finish();
    common::assert_stopped("the run", status, &lines);
    let slow = lines.iter().find(|v| v["message"].as_str().is_some_and(|m| m.contains("did not stop within")));
    assert!(slow.is_none(), "the HTTP server waited on the open stream: {slow:?}");
}
