//! The HTTP control API against the real engine in process, over loopback HTTP.

mod common;
mod http_support;

use std::time::Duration;

use http_support::{eventually, sample, start, Running, BASE};
use keel_core::trading::TradingState;
use reqwest::StatusCode;
use serde_json::{json, Value};

const TOKEN_ENV: &str = "KEEL_TEST_HTTP_API_TOKEN";
const TOKEN: &str = "test-token-9f8e7d-0123456789abcdef0123";
const SECRET_ENV: &str = "KEEL_TEST_HTTP_WEBHOOK_SECRET";
const SECRET: &str = "tv-secret-1a2b3c-0123456789abcdef0123";

fn config(rate_per_minute: u32, burst: u32) -> String {
    std::env::set_var(TOKEN_ENV, TOKEN);
    std::env::set_var(SECRET_ENV, SECRET);
    format!(
        "{BASE}\n[http]\nlisten = \"127.0.0.1:0\"\ntoken_env = \"{TOKEN_ENV}\"\nwebhook_secret_env = \"{SECRET_ENV}\"\nrate_limit_per_minute = {rate_per_minute}\nrate_limit_burst = {burst}\n"
    )
}

async fn engine() -> Running {
    start(&config(100_000, 10_000)).await
}

fn client() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().timeout(Duration::from_secs(10)).build().expect("client")
}

async fn get(r: &Running, path: &str, token: Option<&str>) -> (StatusCode, String) {
    let mut req = client().get(format!("{}{path}", r.base_url()));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let resp = req.send().await.expect("request");
    let status = resp.status();
    (status, resp.text().await.unwrap_or_default())
}

async fn post(r: &Running, path: &str, token: Option<&str>, body: Option<&str>) -> (StatusCode, Value) {
    let mut req = client().post(format!("{}{path}", r.base_url()));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    if let Some(b) = body {
        req = req.header("content-type", "application/json").body(b.to_string());
    }
    let resp = req.send().await.expect("request");
    let status = resp.status();
    (status, resp.json().await.unwrap_or(Value::Null))
}

fn json_of(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or(Value::Null)
}

#[actix_rt::test]
async fn health_ready_and_metrics_need_no_token() {
    let r = engine().await;
    let (status, body) = get(&r, "/health", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(json_of(&body)["status"], "ok");

    let ready = eventually(10, || async { get(&r, "/ready", None).await.0 == StatusCode::OK }).await;
    let (_, body) = get(&r, "/ready", None).await;
    assert!(ready, "/ready never became 200: {body}");
    let body = json_of(&body);
    assert_eq!(body["ready"], true);
    assert_eq!(body["market_stream"], true);
    assert_eq!(body["user_stream"], true);
    assert_eq!(body["futures_stream"], serde_json::Value::Null, "no futures feed runs here: {body}");

    let resp = client().get(format!("{}/metrics", r.base_url())).send().await.expect("metrics");
    assert_eq!(resp.status(), StatusCode::OK);
    let ct = resp.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
    assert!(ct.starts_with("text/plain; version=0.0.4"), "content type {ct}");
    let text = resp.text().await.unwrap_or_default();
    assert!(text.contains("# TYPE keel_orders_submitted_total counter"), "{text}");
    assert_eq!(sample(&text, "keel_build_info{version=\"0.1.0\"}"), Some(1.0));
    assert_eq!(sample(&text, "keel_stream_connected{stream=\"market\"}"), Some(1.0));

    let (status, body) = get(&r, "/nope", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(json_of(&body)["error"].is_string());
    r.stop().await;
}

#[actix_rt::test]
async fn every_api_route_needs_the_bearer_token() {
    let r = engine().await;
    let before = {
        let (_, m) = get(&r, "/metrics", None).await;
        sample(&m, "keel_http_unauthorized_total").unwrap_or(0.0)
    };
    let gets = [
        "/api/v1/status",
        "/api/v1/positions",
        "/api/v1/orders",
        "/api/v1/balances",
        "/api/v1/strategies",
        "/api/v1/trades?limit=5",
        "/api/v1/trades.csv",
    ];
    for path in gets {
        for token in [None, Some("wrong"), Some("")] {
            let (status, body) = get(&r, path, token).await;
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{path} with {token:?}");
            let err = json_of(&body)["error"].as_str().unwrap_or_default().to_string();
            assert!(!err.is_empty(), "{path}: JSON error, got {body}");
            assert!(!body.contains(TOKEN), "the token is never echoed");
        }
        let (status, _) = get(&r, path, Some(TOKEN)).await;
        assert_eq!(status, StatusCode::OK, "{path} with the token");
    }
    let posts = [
        "/api/v1/emergency-stop",
        "/api/v1/resume",
        "/api/v1/strategies/btc_sma/pause",
        "/api/v1/strategies/btc_sma/start",
        "/api/v1/orders/cancel-all",
    ];
    for path in posts {
        let (status, body) = post(&r, path, None, Some(r#"{"reason":"x"}"#)).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{path}");
        assert!(body["error"].is_string());
        // Malformed JSON from a client without the token is still a 401: auth comes first.
        let (status, _) = post(&r, path, Some("wrong"), Some("{not json")).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{path}");
    }
    assert_eq!(r.handle.risk().await.map(|s| s.trading_state).ok(), Some(TradingState::Active));
    let (_, m) = get(&r, "/metrics", None).await;
    let after = sample(&m, "keel_http_unauthorized_total").unwrap_or(0.0);
    assert!(after - before >= 31.0, "unauthorized counted: {before} → {after}");
    r.stop().await;
}

#[actix_rt::test]
async fn reads_answer_json_with_decimal_strings() {
    let r = engine().await;
    let t = Some(TOKEN);
    let (status, body) = get(&r, "/api/v1/status", t).await;
    assert_eq!(status, StatusCode::OK);
    let status_json = json_of(&body);
    assert_eq!(status_json["trading_state"], "ACTIVE");
    assert_eq!(status_json["venue"], "paper");
    assert!(status_json["strategies"].as_array().map(|a| a.len()) == Some(2), "{body}");

    let (_, body) = get(&r, "/api/v1/balances", t).await;
    let balances = json_of(&body);
    let usdt = balances["balances"]
        .as_array()
        .and_then(|a| a.iter().find(|b| b["asset"] == "USDT").cloned())
        .unwrap_or(Value::Null);
    assert!(usdt["free"].is_string(), "money is a JSON string: {body}");

    let (_, body) = get(&r, "/api/v1/strategies", t).await;
    let ids: Vec<String> = json_of(&body)
        .as_array()
        .map(|a| a.iter().filter_map(|s| s["id"].as_str().map(String::from)).collect())
        .unwrap_or_default();
    assert_eq!(ids, vec!["btc_sma".to_string(), "tv".to_string()]);

    let (status, body) = get(&r, "/api/v1/positions", t).await;
    assert_eq!(status, StatusCode::OK);
    assert!(json_of(&body).is_array(), "{body}");
    let (status, body) = get(&r, "/api/v1/orders", t).await;
    assert_eq!(status, StatusCode::OK);
    assert!(json_of(&body).is_array(), "{body}");

    struct Case {
        path: &'static str,
        want: StatusCode,
    }
    let cases = [
        Case { path: "/api/v1/trades", want: StatusCode::OK },
        Case { path: "/api/v1/trades?limit=3", want: StatusCode::OK },
        Case { path: "/api/v1/trades?limit=0", want: StatusCode::BAD_REQUEST },
        Case { path: "/api/v1/trades?limit=abc", want: StatusCode::BAD_REQUEST },
        Case { path: "/api/v1/trades?limit=99999999", want: StatusCode::BAD_REQUEST },
        Case { path: "/api/v1/trades?bogus=1", want: StatusCode::BAD_REQUEST },
    ];
    for c in cases {
        let (status, body) = get(&r, c.path, t).await;
        assert_eq!(status, c.want, "{}: {body}", c.path);
        if c.want == StatusCode::BAD_REQUEST {
            assert!(json_of(&body)["error"].is_string(), "{body}");
        }
    }
    r.stop().await;
}

#[actix_rt::test]
async fn emergency_stop_halts_and_persists_and_resume_clears_it() {
    let r = engine().await;
    let t = Some(TOKEN);
    struct Case {
        name: &'static str,
        body: &'static str,
        reason_contains: &'static str,
    }
    let bad = [
        Case { name: "not json", body: "{reason: nope", reason_contains: "malformed JSON" },
        Case { name: "wrong type", body: r#"{"reason": "x", "flatten": "yes"}"#, reason_contains: "malformed JSON" },
        Case { name: "unknown field", body: r#"{"reason": "x", "flaten": true}"#, reason_contains: "unknown field" },
    ];
    for c in bad {
        let (status, body) = post(&r, "/api/v1/emergency-stop", t, Some(c.body)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{}", c.name);
        let err = body["error"].as_str().unwrap_or_default();
        assert!(err.contains(c.reason_contains), "{}: {err}", c.name);
    }
    assert_eq!(r.handle.risk().await.map(|s| s.trading_state).ok(), Some(TradingState::Active));

    let (status, body) =
        post(&r, "/api/v1/emergency-stop", t, Some(r#"{"reason": "operator test", "flatten": false}"#)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["trading_state"], "HALTED");
    assert_eq!(body["emergency_stop"]["active"], true);
    assert_eq!(body["emergency_stop"]["reason"], "operator test");
    let stored = r.store.emergency_stop().expect("store readable");
    assert!(stored.active, "persisted before the answer");
    assert!(stored.set_by.as_deref().unwrap_or_default().starts_with("operator:http:"), "{stored:?}");

    let (status, body) = post(&r, "/api/v1/resume", t, None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["emergency_stop"]["active"], false);
    assert!(!r.store.emergency_stop().expect("store readable").active);
    assert_ne!(body["trading_state"], "HALTED");
    r.stop().await;
}

#[actix_rt::test]
async fn pause_start_and_cancel_all() {
    let r = engine().await;
    let t = Some(TOKEN);
    let (status, body) = post(&r, "/api/v1/strategies/btc_sma/pause", t, None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["paused"], true);
    let paused = r.handle.strategies().await.map(|s| s.iter().any(|s| s.id.as_str() == "btc_sma" && s.paused));
    assert_eq!(paused.ok(), Some(true));
    let (status, body) = post(&r, "/api/v1/strategies/btc_sma/start", t, None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let running = r.handle.strategies().await.map(|s| s.iter().any(|s| s.id.as_str() == "btc_sma" && !s.paused));
    assert_eq!(running.ok(), Some(true));
    let (status, body) = post(&r, "/api/v1/strategies/nope/pause", t, None).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert!(body["error"].as_str().unwrap_or_default().contains("nope"));

    let (status, body) = post(&r, "/api/v1/orders/cancel-all", t, None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body["requested"].is_u64());
    let (status, body) = post(&r, "/api/v1/orders/cancel-all", t, Some(r#"{"symbol": "btcusdt"}"#)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = post(&r, "/api/v1/orders/cancel-all", t, Some(r#"{"symbol": "DOGEUSDT"}"#)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    r.stop().await;
}

#[actix_rt::test]
async fn tradingview_webhook_becomes_a_signal_for_the_webhook_strategy() {
    let r = engine().await;
    // Wait for prices, so the order can pass the risk guard's checks.
    assert!(eventually(10, || async { r.handle.prices().get("BTCUSDT").is_some() }).await);
    let path = "/api/v1/webhook/tradingview";
    struct Case {
        name: &'static str,
        body: Value,
        want: StatusCode,
    }
    let cases = [
        Case {
            name: "wrong secret",
            body: json!({"secret": "nope", "strategy_id": "tv", "symbol": "BTCUSDT", "action": "buy"}),
            want: StatusCode::UNAUTHORIZED,
        },
        Case {
            name: "missing secret",
            body: json!({"strategy_id": "tv", "symbol": "BTCUSDT", "action": "buy"}),
            want: StatusCode::UNAUTHORIZED,
        },
        Case {
            name: "unknown strategy",
            body: json!({"secret": SECRET, "strategy_id": "ghost", "symbol": "BTCUSDT", "action": "buy"}),
            want: StatusCode::NOT_FOUND,
        },
        Case {
            name: "not a webhook strategy",
            body: json!({"secret": SECRET, "strategy_id": "btc_sma", "symbol": "BTCUSDT", "action": "buy"}),
            want: StatusCode::BAD_REQUEST,
        },
        Case {
            name: "bad action",
            body: json!({"secret": SECRET, "strategy_id": "tv", "symbol": "BTCUSDT", "action": "hodl"}),
            want: StatusCode::BAD_REQUEST,
        },
        Case {
            name: "other symbol",
            body: json!({"secret": SECRET, "strategy_id": "tv", "symbol": "ETHUSDT", "action": "buy"}),
            want: StatusCode::BAD_REQUEST,
        },
        Case {
            name: "negative qty",
            body: json!({"secret": SECRET, "strategy_id": "tv", "symbol": "BTCUSDT", "action": "buy", "qty": "-1"}),
            want: StatusCode::BAD_REQUEST,
        },
    ];
    for c in cases {
        let (status, body) = post(&r, path, None, Some(&c.body.to_string())).await;
        assert_eq!(status, c.want, "{}: {body}", c.name);
        assert!(body["error"].is_string(), "{}: {body}", c.name);
        assert!(!body.to_string().contains(SECRET), "{}: the secret is never echoed", c.name);
    }
    let (status, body) = post(&r, path, None, Some("{\"secret\": ")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body["error"].as_str().unwrap_or_default().contains("malformed JSON"));

    let alert =
        json!({"secret": SECRET, "strategy_id": "tv", "symbol": "BINANCE:BTCUSDT", "action": "buy", "qty": "0.02"});
    let (status, body) = post(&r, path, None, Some(&alert.to_string())).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(body["symbol"], "BTCUSDT");
    // The order goes through the risk guard to the venue and fills: it shows in the journal.
    let filled = eventually(10, || async {
        let (_, body) = get(&r, "/api/v1/trades?limit=1000", Some(TOKEN)).await;
        json_of(&body)
            .as_array()
            .map(|a| {
                a.iter().any(|f| {
                    f["strategy_id"] == "tv" && f["qty"].as_str().and_then(|q| q.parse::<f64>().ok()) == Some(0.02)
                })
            })
            .unwrap_or(false)
    })
    .await;
    assert!(filled, "the webhook order filled");
    let (status, csv) = get(&r, "/api/v1/trades.csv", Some(TOKEN)).await;
    assert_eq!(status, StatusCode::OK);
    let mut lines = csv.lines();
    assert_eq!(
        lines.next(),
        Some("time,ts_ms,trade_id,strategy_id,symbol,side,price,qty,notional,fee,fee_asset,is_maker,client_order_id")
    );
    assert!(lines.any(|l| l.contains(",tv,BTCUSDT,BUY,")), "{csv}");
    // The journal is the store's; positions are the portfolio's snapshot,
    // which takes the fill in its own turn: awaited, not read at once.
    let held = eventually(10, || async {
        let (_, text) = get(&r, "/api/v1/positions", Some(TOKEN)).await;
        json_of(&text).as_array().map(|a| a.iter().any(|p| p["symbol"] == "BTCUSDT")).unwrap_or(false)
    })
    .await;
    let (_, text) = get(&r, "/api/v1/positions", Some(TOKEN)).await;
    assert!(held, "{text}");
    r.stop().await;
}

#[actix_rt::test]
async fn failed_authentications_lock_out_only_failed_attempts() {
    let r = start(&config(60, 5)).await;
    let mut statuses = Vec::new();
    for _ in 0..8 {
        statuses.push(get(&r, "/api/v1/status", Some("wrong")).await.0);
    }
    assert!(statuses[..5].iter().all(|s| *s == StatusCode::UNAUTHORIZED), "{statuses:?}");
    assert!(statuses[5..].iter().all(|s| *s == StatusCode::TOO_MANY_REQUESTS), "{statuses:?}");
    let resp = client().get(format!("{}/api/v1/orders", r.base_url())).send().await.expect("request");
    assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS, "no token at all is a failure too");
    assert!(resp.headers().get("retry-after").is_some());
    let body: Value = resp.json().await.unwrap_or(Value::Null);
    assert!(body["error"].as_str().unwrap_or_default().contains("rate limit"), "{body}");
    // A webhook alert with a wrong secret from the locked-out address is refused the same way.
    let alert = json!({"secret": "nope", "strategy_id": "tv", "symbol": "BTCUSDT", "action": "buy"});
    let (status, _) = post(&r, "/api/v1/webhook/tradingview", None, Some(&alert.to_string())).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);

    // The same address with the token: never throttled, however often (a dashboard).
    for _ in 0..20 {
        let (status, body) = get(&r, "/api/v1/status", Some(TOKEN)).await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    // The probes have their own limit.
    for path in ["/health", "/metrics", "/ready"] {
        let (status, _) = get(&r, path, None).await;
        assert_ne!(status, StatusCode::TOO_MANY_REQUESTS, "{path}");
    }
    r.stop().await;
}

#[actix_rt::test]
async fn probes_have_their_own_limit() {
    std::env::set_var(TOKEN_ENV, TOKEN);
    let r =
        start(&format!("{}probe_rate_limit_per_minute = 60\nprobe_rate_limit_burst = 3\n", config(100_000, 10_000)))
            .await;
    let mut statuses = Vec::new();
    for _ in 0..5 {
        statuses.push(get(&r, "/health", None).await.0);
    }
    assert_eq!(&statuses[..3], &[StatusCode::OK; 3], "{statuses:?}");
    assert_eq!(statuses[4], StatusCode::TOO_MANY_REQUESTS, "{statuses:?}");
    let (status, body) = get(&r, "/api/v1/status", Some(TOKEN)).await;
    assert_eq!(status, StatusCode::OK, "the API is not throttled by the probes: {body}");
    r.stop().await;
}

/// Bad-credential requests from `tasks` concurrent clients on this address
/// until `stop` is set; returns how many were answered 401 and 429.
fn flood(
    base: String,
    tasks: usize,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    answered: std::sync::Arc<std::sync::atomic::AtomicU64>,
    locked: std::sync::Arc<std::sync::atomic::AtomicU64>,
) -> Vec<tokio::task::JoinHandle<()>> {
    use std::sync::atomic::Ordering;
    (0..tasks)
        .map(|i| {
            let (base, stop, answered, locked) = (base.clone(), stop.clone(), answered.clone(), locked.clone());
            tokio::spawn(async move {
                let c = client();
                let mut n = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    n += 1;
                    let req = match n % 3 {
                        0 => c.post(format!("{base}/api/v1/emergency-stop")).bearer_auth(format!("guess-{i}-{n}")),
                        1 => c.get(format!("{base}/api/v1/status")),
                        _ => c
                            .post(format!("{base}/api/v1/webhook/tradingview"))
                            .body(r#"{"secret":"guess","strategy_id":"tv","symbol":"BTCUSDT","action":"buy"}"#),
                    };
                    if let Ok(resp) = req.send().await {
                        answered.fetch_add(1, Ordering::Relaxed);
                        if resp.status() == StatusCode::TOO_MANY_REQUESTS {
                            locked.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
            })
        })
        .collect()
}

#[actix_rt::test]
async fn an_authenticated_emergency_stop_answers_under_a_flood_of_bad_credentials() {
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    use std::sync::Arc;
    // The shipped defaults: 30 failures, then 2 a second.
    let r = start(&config(120, 30)).await;
    let stop = Arc::new(AtomicBool::new(false));
    let (answered, locked) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let flooders = flood(r.base_url(), 6, stop.clone(), answered.clone(), locked.clone());
    let engaged = eventually(30, || async { locked.load(Ordering::Relaxed) >= 200 }).await;
    assert!(engaged, "the lockout engaged: {} answered", answered.load(Ordering::Relaxed));

    // A dashboard polling with the token at 5/s for 2 s never sees 429.
    let mut tick = tokio::time::interval(Duration::from_millis(200));
    for _ in 0..10 {
        tick.tick().await;
        let (status, body) = get(&r, "/api/v1/status", Some(TOKEN)).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let (status, _) = get(&r, "/metrics", None).await;
        assert_eq!(status, StatusCode::OK, "/metrics under the flood");
    }

    let started = std::time::Instant::now();
    let (status, body) = post(&r, "/api/v1/emergency-stop", Some(TOKEN), Some(r#"{"reason":"flood test"}"#)).await;
    let took = started.elapsed();
    let during = answered.load(Ordering::Relaxed);
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(took < Duration::from_millis(100), "the emergency stop took {took:?} under the flood");
    assert!(r.store.emergency_stop().expect("store readable").active, "the stop is set");
    stop.store(true, Ordering::Relaxed);
    for f in flooders {
        let _ = f.await;
    }
    assert!(answered.load(Ordering::Relaxed) > during, "the flood was still running when the stop was sent");
    r.stop().await;
}

#[actix_rt::test]
async fn refusals_are_logged_with_the_address_and_never_the_credential() {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = dir.path().join("config.toml");
    let text = format!(
        "{}\n[http]\nlisten = \"127.0.0.1:0\"\ntoken_env = \"{TOKEN_ENV}\"\nrate_limit_per_minute = 60\nrate_limit_burst = 2\n",
        BASE.replace("log_level = \"warn\"", "log_level = \"info\"")
    );
    std::fs::write(&config, text).expect("config written");
    let mut keel = common::spawn_run(&config, &dir.path().join("data"), &[], &[(TOKEN_ENV, TOKEN)]);
    keel.wait_for("HTTP API and /metrics listening", 1);
    let listen =
        keel.seen.iter().find(|v| v["message"] == "HTTP API and /metrics listening").map(|v| v["listen"].clone());
    let base = format!("http://{}", listen.and_then(|v| v.as_str().map(String::from)).unwrap_or_default());
    let guess = "presented-credential-must-not-be-logged-0123456789";
    let mut statuses = Vec::new();
    for _ in 0..6 {
        let resp = client().get(format!("{base}/api/v1/status")).bearer_auth(guess).send().await.expect("request");
        statuses.push(resp.status());
    }
    assert_eq!(statuses[0], StatusCode::UNAUTHORIZED, "{statuses:?}");
    assert_eq!(statuses[5], StatusCode::TOO_MANY_REQUESTS, "{statuses:?}");
    keel.wait_for("HTTP request refused: authentication failed", 1);
    keel.sigterm();
    let (_, lines) = keel.finish();
    let refused: Vec<_> =
        lines.iter().filter(|v| v["message"].as_str().unwrap_or("").starts_with("HTTP request refused")).collect();
    assert_eq!(refused.len(), 1, "one line per address per 10 s, not one per request: {refused:#?}");
    assert_eq!(refused[0]["remote"], "127.0.0.1", "{:?}", refused[0]);
    assert_eq!(refused[0]["status"], 401, "{:?}", refused[0]);
    assert_eq!(refused[0]["level"], "WARN", "{:?}", refused[0]);
    for line in &lines {
        let text = line.to_string();
        assert!(!text.contains(guess) && !text.contains(TOKEN), "a credential in the log: {text}");
    }
}

#[test]
fn weak_secrets_refuse_to_start_with_one_line_naming_the_variable() {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = dir.path().join("config.toml");
    let text = format!("{BASE}\n[http]\nlisten = \"127.0.0.1:0\"\ntoken_env = \"{TOKEN_ENV}\"\nwebhook_secret_env = \"{SECRET_ENV}\"\n");
    std::fs::write(&config, text).expect("config written");
    struct Case {
        name: &'static str,
        token: &'static str,
        secret: &'static str,
        names: &'static str,
        says: &'static str,
    }
    let cases = [
        Case { name: "short token", token: "xQz9wK", secret: SECRET, names: TOKEN_ENV, says: "shorter than 32" },
        Case {
            name: "the shipped placeholder",
            token: "change-me-to-a-long-random-string",
            secret: SECRET,
            names: TOKEN_ENV,
            says: "placeholder",
        },
        Case {
            name: "short webhook secret",
            token: TOKEN,
            secret: "tv-secret",
            names: SECRET_ENV,
            says: "shorter than 32",
        },
    ];
    for c in cases {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_keel"))
            .args(["run", "--exit-after", "20s", "--config"])
            .arg(&config)
            .arg("--data-dir")
            .arg(dir.path().join("data"))
            .env(TOKEN_ENV, c.token)
            .env(SECRET_ENV, c.secret)
            .output()
            .expect("keel runs");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{}: started anyway: {stderr}", c.name);
        let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("keel: ")).collect();
        assert_eq!(errors.len(), 1, "{}: one line: {stderr}", c.name);
        assert!(errors[0].contains(c.names) && errors[0].contains(c.says), "{}: {}", c.name, errors[0]);
        let all = format!("{stderr}{}", String::from_utf8_lossy(&out.stdout));
        assert!(!all.contains(c.token) && !all.contains(c.secret), "{}: a secret printed: {all}", c.name);
    }
}

#[actix_rt::test]
async fn the_listener_serves_https_with_a_configured_certificate() {
    let dir = tempfile::tempdir().expect("temp dir");
    let names = vec!["127.0.0.1".to_string(), "localhost".to_string()];
    let rcgen::CertifiedKey { cert, signing_key } = rcgen::generate_simple_self_signed(names).expect("certificate");
    let (cert_path, key_path) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert_path, cert.pem()).expect("cert written");
    std::fs::write(&key_path, signing_key.serialize_pem()).expect("key written");
    let text = format!(
        "{}tls_cert = {:?}\ntls_key = {:?}\n",
        config(100_000, 10_000),
        cert_path.display().to_string(),
        key_path.display().to_string()
    );
    let r = start(&text).await;
    let base = r.base_url();
    assert!(base.starts_with("https://"), "{base}");
    let trusting = reqwest::Client::builder()
        .no_proxy()
        .add_root_certificate(reqwest::Certificate::from_pem(cert.pem().as_bytes()).expect("pem"))
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client");
    let resp = trusting.get(format!("{base}/api/v1/status")).bearer_auth(TOKEN).send().await.expect("https request");
    assert_eq!(resp.status(), StatusCode::OK);
    let body: Value = resp.json().await.unwrap_or(Value::Null);
    assert_eq!(body["trading_state"], "ACTIVE", "{body}");
    // Plain HTTP to the same port gets no answer, and a client that does not
    // trust the certificate refuses it.
    let plain = base.replacen("https://", "http://", 1);
    let answer = client().get(format!("{plain}/health")).send().await;
    assert!(answer.map(|r| !r.status().is_success()).unwrap_or(true), "plain HTTP answered");
    assert!(client().get(format!("{base}/health")).send().await.is_err(), "an untrusted certificate was accepted");
    r.stop().await;
}

#[actix_rt::test]
async fn a_wrong_method_is_405_with_allow_and_head_works_where_get_does() {
    let r = engine().await;
    let c = client();
    struct Case {
        method: reqwest::Method,
        path: &'static str,
        allow: &'static str,
    }
    let cases = [
        Case { method: reqwest::Method::POST, path: "/health", allow: "GET, HEAD" },
        Case { method: reqwest::Method::DELETE, path: "/api/v1/status", allow: "GET, HEAD" },
        Case { method: reqwest::Method::GET, path: "/api/v1/emergency-stop", allow: "POST" },
        Case { method: reqwest::Method::PUT, path: "/api/v1/strategies/btc_sma/pause", allow: "POST" },
        Case { method: reqwest::Method::GET, path: "/api/v1/webhook/tradingview", allow: "POST" },
    ];
    for case in cases {
        let resp =
            c.request(case.method.clone(), format!("{}{}", r.base_url(), case.path)).bearer_auth(TOKEN).send().await;
        let resp = resp.expect("request");
        assert_eq!(resp.status(), StatusCode::METHOD_NOT_ALLOWED, "{} {}", case.method, case.path);
        let allow = resp.headers().get("allow").and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
        assert_eq!(allow, case.allow, "{} {}", case.method, case.path);
    }
    assert!(!r.store.emergency_stop().expect("store readable").active, "a GET never sets the stop");
    for path in ["/health", "/metrics", "/api/v1/status", "/api/v1/trades.csv"] {
        let resp = c.head(format!("{}{path}", r.base_url())).bearer_auth(TOKEN).send().await.expect("request");
        assert_eq!(resp.status(), StatusCode::OK, "HEAD {path}");
        assert!(resp.bytes().await.map(|b| b.is_empty()).unwrap_or(false), "HEAD {path} has no body");
    }
    let resp = c.head(format!("{}/api/v1/status", r.base_url())).send().await.expect("request");
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED, "HEAD needs the token like GET");
    let (status, _) = get(&r, "/api/v1/nope", Some(TOKEN)).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "an unknown path is still 404");
    r.stop().await;
}

const WEBHOOK: &str = "/api/v1/webhook/tradingview";

/// The `tv` strategy's fill quantities in the journal, oldest first.
async fn tv_fills(base: &str) -> Vec<String> {
    let resp = client().get(format!("{base}/api/v1/trades?limit=1000")).bearer_auth(TOKEN).send().await;
    let Ok(resp) = resp else { return Vec::new() };
    let fills: Value = resp.json().await.unwrap_or(Value::Null);
    fills
        .as_array()
        .map(|a| {
            a.iter()
                .filter(|f| f["strategy_id"] == "tv")
                .filter_map(|f| f["qty"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

async fn post_alert(base: &str, alert: &Value) -> (StatusCode, Value) {
    let resp = client().post(format!("{base}{WEBHOOK}")).json(alert).send().await.expect("request");
    let status = resp.status();
    (status, resp.json().await.unwrap_or(Value::Null))
}

fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

#[actix_rt::test]
async fn a_replayed_alert_id_or_an_old_alert_places_no_order_and_tradingview_fields_are_accepted() {
    let r = engine().await;
    assert!(eventually(10, || async { r.handle.prices().get("BTCUSDT").is_some() }).await);
    let base = r.base_url();
    // TradingView's usual placeholders ride along and are ignored.
    let alert = json!({
        "secret": SECRET, "strategy_id": "tv", "symbol": "BTCUSDT", "action": "buy", "qty": "0.02",
        "id": "alert-7f3a", "price": 65012.5, "time": "2025-01-01T00:00:00Z", "ticker": "BTCUSDT",
        "exchange": "BINANCE", "interval": "5", "volume": "12.3", "close": "65010.1", "comment": "entry"
    });
    let (status, body) = post_alert(&base, &alert).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(body["id"], "alert-7f3a", "{body}");
    let ignored: Vec<&str> = body["ignored"].as_array().map(|a| a.iter().filter_map(Value::as_str).collect()).unwrap();
    assert!(ignored.contains(&"price") && ignored.contains(&"time") && !ignored.contains(&"ticker"), "{body}");
    assert!(eventually(10, || async { tv_fills(&base).await == ["0.02"] }).await, "the first alert filled");

    // The same alert 1.7 s later: refused, and no order.
    tokio::time::sleep(Duration::from_millis(1700)).await;
    let (status, body) = post_alert(&base, &alert).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    let error = body["error"].as_str().unwrap_or_default();
    assert!(error.contains("alert-7f3a") && error.contains("already") && error.contains("no order"), "{body}");

    // Old alerts are refused whatever their id; the form of the time does not matter.
    let old = now_ms() - 10 * 60_000;
    let old_iso = chrono::DateTime::from_timestamp_millis(old).map(|t| t.to_rfc3339()).unwrap_or_default();
    for (name, ts) in [("iso", json!(old_iso)), ("epoch ms", json!(old)), ("epoch s", json!(old / 1000))] {
        let mut a = alert.clone();
        a["id"] = json!(format!("old-{name}"));
        a["timestamp"] = ts;
        let (status, body) = post_alert(&base, &a).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{name}: {body}");
        assert!(body["error"].as_str().unwrap_or_default().contains("webhook_max_age"), "{name}: {body}");
    }
    let mut bad = alert.clone();
    bad["id"] = json!("bad-ts");
    bad["timestamp"] = json!("yesterday");
    let (status, body) = post_alert(&base, &bad).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");

    // A fresh alert with a new id goes through: the journal then holds the
    // first and this one, and nothing of the refused ones.
    let mut fresh = alert.clone();
    fresh["id"] = json!("alert-7f3b");
    fresh["qty"] = json!("0.03");
    fresh["timestamp"] = json!(now_ms());
    let (status, body) = post_alert(&base, &fresh).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert!(eventually(10, || async { tv_fills(&base).await.len() >= 2 }).await, "the fresh alert filled");
    assert_eq!(tv_fills(&base).await, ["0.02", "0.03"]);
    r.stop().await;
}

/// `keel run` on `dir`'s config (venue `mode`, the HTTP API on a free port); its base URL once listening.
fn spawn_keel(dir: &std::path::Path, mode: &str) -> (common::Keel, String) {
    let config = dir.join("config.toml");
    let text = format!(
        "{}\n[http]\nlisten = \"127.0.0.1:0\"\ntoken_env = \"{TOKEN_ENV}\"\nwebhook_secret_env = \"{SECRET_ENV}\"\nwebhook_id_window = \"1h\"\n",
        BASE.replace("log_level = \"warn\"", "log_level = \"info\"").replace("mode = \"paper\"", &format!("mode = \"{mode}\""))
    );
    std::fs::write(&config, text).expect("config written");
    let mut keel = common::spawn_run(&config, &dir.join("data"), &[], &[(TOKEN_ENV, TOKEN), (SECRET_ENV, SECRET)]);
    keel.wait_for("HTTP API and /metrics listening", 1);
    let listen =
        keel.seen.iter().find(|v| v["message"] == "HTTP API and /metrics listening").map(|v| v["listen"].clone());
    let base = format!("http://{}", listen.and_then(|v| v.as_str().map(String::from)).unwrap_or_default());
    (keel, base)
}

/// Market data has reached the engine (the risk guard refuses orders before).
async fn ready(base: &str) -> bool {
    eventually(30, || async {
        let Ok(resp) = client().get(format!("{base}/metrics")).send().await else { return false };
        let text = resp.text().await.unwrap_or_default();
        sample(&text, "keel_market_events_total").unwrap_or(0.0) > 2.0
    })
    .await
}

#[actix_rt::test]
async fn an_alert_id_is_remembered_across_a_restart_of_the_binary() {
    let dir = tempfile::tempdir().expect("temp dir");
    let alert = json!({"secret": SECRET, "strategy_id": "tv", "symbol": "BTCUSDT", "action": "buy", "qty": "0.02", "id": "tv-restart-1"});

    let (keel, base) = spawn_keel(dir.path(), "paper");
    assert!(ready(&base).await, "the engine is ready");
    let (status, body) = post_alert(&base, &alert).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let filled = eventually(10, || async { tv_fills(&base).await == ["0.02"] }).await;
    keel.sigterm();
    let (exit, lines) = keel.finish();
    let notable: Vec<_> = lines.iter().filter(|v| v["level"] != "INFO" && v["level"] != "DEBUG").collect();
    assert!(filled, "the alert filled: {notable:#?}");
    assert!(exit.success(), "{exit:?}");

    let (keel, base) = spawn_keel(dir.path(), "paper");
    assert!(ready(&base).await, "the engine is ready again");
    let (status, body) = post_alert(&base, &alert).await;
    assert_eq!(status, StatusCode::CONFLICT, "the id survived the restart: {body}");
    let mut next = alert.clone();
    next["id"] = json!("tv-restart-2");
    next["qty"] = json!("0.03");
    let (status, body) = post_alert(&base, &next).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert!(eventually(10, || async { tv_fills(&base).await.len() >= 2 }).await, "the new alert filled");
    assert_eq!(tv_fills(&base).await, ["0.02", "0.03"], "one order for the replayed alert");
    keel.sigterm();
    let _ = keel.finish();
}

#[actix_rt::test]
async fn the_venue_mode_is_in_the_status_the_metrics_and_the_start_up_lines() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (mut keel, base) = spawn_keel(dir.path(), "sandbox");
    let (status, text) = {
        let resp = client().get(format!("{base}/api/v1/status")).bearer_auth(TOKEN).send().await.expect("request");
        (resp.status(), resp.text().await.unwrap_or_default())
    };
    assert_eq!(status, StatusCode::OK, "{text}");
    let body = json_of(&text);
    assert_eq!(body["venue_mode"], "sandbox", "{text}");
    assert_eq!(body["venue"], "binance", "the venue beside it: {text}");
    let metrics =
        client().get(format!("{base}/metrics")).send().await.expect("request").text().await.unwrap_or_default();
    assert_eq!(sample(&metrics, "keel_info{exchange=\"binance\",venue_mode=\"sandbox\"}"), Some(1.0), "{metrics}");
    assert_eq!(metrics.matches("keel_info{").count(), 1, "one mode only: {metrics}");
    keel.wait_for("keel running; Ctrl-C or SIGTERM stops it", 1);
    keel.sigterm();
    let (_, lines) = keel.finish();
    let line =
        |message: &str| lines.iter().find(|v| v["message"].as_str().is_some_and(|m| m.starts_with(message))).cloned();
    let first = line("venue mode: ").unwrap_or_default();
    assert_eq!(first["venue_mode"], "sandbox", "{first}");
    assert!(first["message"].as_str().unwrap_or_default().contains("SANDBOX"), "{first}");
    let running = line("keel running").unwrap_or_default();
    assert_eq!(running["venue_mode"], "sandbox", "{running}");
}

/// What `strategy` holds by the journal of the engine `r` (its fills'
/// quantities, net of commissions paid in the base asset).
async fn held_by(r: &Running, strategy: &str) -> rust_decimal::Decimal {
    let (_, body) = get(r, "/api/v1/trades?limit=1000", Some(TOKEN)).await;
    let fills = json_of(&body);
    let mut held = rust_decimal::Decimal::ZERO;
    for f in fills.as_array().into_iter().flatten().filter(|f| f["strategy_id"] == strategy) {
        let qty = dec_of(&f["qty"]);
        held += if f["side"] == "BUY" { qty } else { -qty };
        if f["fee_asset"] == "BTC" {
            held -= dec_of(&f["fee"]);
        }
    }
    held
}

fn dec_of(v: &Value) -> rust_decimal::Decimal {
    v.as_str().and_then(|s| s.parse().ok()).unwrap_or_else(|| panic!("a decimal string: {v}"))
}

#[actix_rt::test]
async fn strategies_carry_the_engines_own_pnl_and_it_adds_up_to_the_portfolios() {
    // Two webhook strategies on one symbol and nothing else trading, so every
    // fill is the test's.
    let sma = "[[strategy]]\nid = \"btc_sma\"\nkind = \"sma_cross\"\nsymbol = \"BTCUSDT\"\nparams = { fast = 5, slow = 20, qty = \"0.01\" }\n";
    let base = BASE.replace(sma, "")
        + "\n[[strategy]]\nid = \"tv2\"\nkind = \"webhook\"\nsymbol = \"BTCUSDT\"\nparams = { qty = \"0.01\" }\n";
    assert!(!base.contains("btc_sma"), "the sma strategy is left out");
    std::env::set_var(TOKEN_ENV, TOKEN);
    std::env::set_var(SECRET_ENV, SECRET);
    let r = start(&format!(
        "{base}\n[http]\nlisten = \"127.0.0.1:0\"\ntoken_env = \"{TOKEN_ENV}\"\nwebhook_secret_env = \"{SECRET_ENV}\"\nrate_limit_per_minute = 100000\nrate_limit_burst = 10000\n"
    ))
    .await;
    assert!(eventually(10, || async { r.handle.prices().get("BTCUSDT").is_some() }).await);
    let path = "/api/v1/webhook/tradingview";
    // Both buy at different prices; tv sells part (realizing on its own
    // cost); then both close, so every strategy ends flat.
    // Each step waits until the journal shows the strategy holding what the
    // step leaves (an order may fill in parts).
    let d = |s: &str| s.parse::<rust_decimal::Decimal>().unwrap_or_default();
    let steps = [
        ("tv", "buy", Some("0.02"), (d("0.019"), d("1"))),
        ("tv2", "buy", None, (d("0.009"), d("1"))),
        ("tv", "sell", Some("0.01"), (d("0.009"), d("0.011"))),
        ("tv", "close", None, (d("0"), d("0"))),
        ("tv2", "close", None, (d("0"), d("0"))),
    ];
    for (i, (strategy, action, qty, (low, high))) in steps.into_iter().enumerate() {
        let mut alert = json!({"secret": SECRET, "strategy_id": strategy, "symbol": "BTCUSDT", "action": action, "id": format!("pnl-{i}")});
        if let Some(q) = qty {
            alert["qty"] = json!(q);
        }
        let (status, body) = post(&r, path, None, Some(&alert.to_string())).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{strategy} {action}: {body}");
        let done = eventually(10, || async {
            let held = held_by(&r, strategy).await;
            low <= held && held <= high
        })
        .await;
        assert!(done, "{strategy} {action} filled: holds {}", held_by(&r, strategy).await);
    }
    // A fill is in the journal a moment before the account has applied it:
    // wait until the account's symbol position is flat too.
    let flat = eventually(10, || async {
        r.handle.portfolio().await.is_ok_and(|p| p.positions.iter().all(|p| p.position.qty.is_zero()))
    })
    .await;
    assert!(flat, "the account is flat");

    let (status, body) = get(&r, "/api/v1/strategies", Some(TOKEN)).await;
    assert_eq!(status, StatusCode::OK);
    let strategies = json_of(&body);
    let list = strategies.as_array().unwrap_or_else(|| panic!("an array: {body}"));
    assert_eq!(list.len(), 2, "{body}");
    let (mut realized, mut fees) = (rust_decimal::Decimal::ZERO, rust_decimal::Decimal::ZERO);
    for s in list {
        let (r_pnl, fee, upnl) = (dec_of(&s["realized_pnl"]), dec_of(&s["fees"]), dec_of(&s["unrealized_pnl"]));
        assert!(fee > rust_decimal::Decimal::ZERO, "{}: paid fees: {s}", s["id"]);
        assert!(r_pnl != rust_decimal::Decimal::ZERO, "{}: realized something on a round trip: {s}", s["id"]);
        assert_eq!(upnl, rust_decimal::Decimal::ZERO, "{}: flat, nothing unrealized: {s}", s["id"]);
        assert!(s["pnl_since"].is_null(), "the whole history counts: {s}");
        realized += r_pnl;
        fees += fee;
    }
    let (_, body) = get(&r, "/api/v1/status", Some(TOKEN)).await;
    let portfolio = &json_of(&body)["portfolio"];
    // Average prices are quotients (28 significant digits): the symbol's and
    // each strategy's round differently in the last digits, so realized PnL
    // adds up to far below a quote asset's smallest unit, not to the digit.
    let portfolio_realized = dec_of(&portfolio["realized_pnl"]);
    assert_eq!(realized.round_dp(12), portfolio_realized.round_dp(12), "realized sums to the portfolio's: {body}");
    assert_eq!(fees, dec_of(&portfolio["fees"]), "fees sum to the portfolio's: {body}");
    r.stop().await;
}
