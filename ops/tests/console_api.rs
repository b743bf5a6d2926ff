//! The endpoints the console needs (issue 14): flatten, cancel one order,
//! resume a strategy, the audit log of operator actions, the equity history
//! and the PnL — against the real engine over loopback HTTP, on real sled
//! stores; the equity history and the audit log across a restart of the real
//! `keel` binary.

mod common;
mod http_support;

use std::time::Duration;

use http_support::{eventually, start, Running, BASE};
use keel_core::order::OrderStatus;
use keel_core::Decimal;
use reqwest::StatusCode;
use serde_json::Value;

const TOKEN_ENV: &str = "KEEL_TEST_CONSOLE_API_TOKEN";
const TOKEN: &str = "console-token-5e4d3c-0123456789abcdef0123";

/// BASE with a drawdown limit, a grid on ETHUSDT (buys resting far below
/// the price, which a wide price band lets through, to cancel),
/// equity recorded every second and the API on a free port.
fn config() -> String {
    std::env::set_var(TOKEN_ENV, TOKEN);
    format!(
        r#"{BASE}max_drawdown_pct = "12.5"
price_band_pct = "60"

[[strategy]]
id = "eth_grid"
kind = "grid"
symbol = "ETHUSDT"
params = {{ lower = "1500", upper = "2100", levels = 4, qty = "0.01" }}

[store]
equity_interval = "1s"

[http]
listen = "127.0.0.1:0"
token_env = "{TOKEN_ENV}"
rate_limit_per_minute = 100000
rate_limit_burst = 10000
"#
    )
}

fn client() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().timeout(Duration::from_secs(10)).build().expect("client")
}

/// Who calls: the console (`X-Keel-Client: web`) or another HTTP client.
#[derive(Clone, Copy, PartialEq)]
enum Caller {
    Web,
    Http,
}

async fn call(
    base: &str,
    method: reqwest::Method,
    path: &str,
    token: Option<&str>,
    from: Caller,
    body: Option<&str>,
) -> (StatusCode, Value) {
    let mut req = client().request(method, format!("{base}{path}"));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    if from == Caller::Web {
        req = req.header("X-Keel-Client", "web");
    }
    if let Some(b) = body {
        req = req.header("content-type", "application/json").body(b.to_string());
    }
    let resp = req.send().await.expect("request");
    let status = resp.status();
    (status, resp.json().await.unwrap_or(Value::Null))
}

async fn get(base: &str, path: &str) -> (StatusCode, Value) {
    call(base, reqwest::Method::GET, path, Some(TOKEN), Caller::Http, None).await
}

async fn post(r: &Running, path: &str, from: Caller, body: Option<&str>) -> (StatusCode, Value) {
    call(&r.base_url(), reqwest::Method::POST, path, Some(TOKEN), from, body).await
}

fn decimal(v: &Value) -> Decimal {
    v.as_str().and_then(|s| s.parse().ok()).unwrap_or_else(|| panic!("a decimal string: {v}"))
}

/// `2026-12-06T07:31:37.123Z` for `ts` ms.
fn assert_iso(time: &Value, ts: &Value) {
    let (time, ts) = (time.as_str().unwrap_or_default(), ts.as_i64().unwrap_or_default());
    assert_eq!(time, ops::summary::rfc3339(ts), "time matches ts");
    assert!(time.len() == 24 && time.ends_with('Z') && time.as_bytes()[10] == b'T', "ISO-8601 UTC: {time}");
}

#[actix_rt::test]
async fn the_new_endpoints_need_the_token_and_refuse_bad_input() {
    let r = start(&config()).await;
    let base = r.base_url();
    use reqwest::Method;
    let endpoints = [
        (Method::POST, "/api/v1/flatten"),
        (Method::POST, "/api/v1/orders/x-1/cancel"),
        (Method::POST, "/api/v1/strategies/btc_sma/resume"),
        (Method::GET, "/api/v1/audit"),
        (Method::GET, "/api/v1/equity"),
        (Method::GET, "/api/v1/pnl"),
    ];
    for (method, path) in &endpoints {
        for token in [None, Some("wrong-token")] {
            let (status, body) = call(&base, method.clone(), path, token, Caller::Web, None).await;
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{method} {path} with {token:?}: {body}");
            assert!(body["error"].is_string(), "{path}: {body}");
        }
    }
    // A wrong method is 405 with Allow; HEAD is served where GET is.
    let (status, _) = call(&base, Method::GET, "/api/v1/flatten", Some(TOKEN), Caller::Http, None).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    let (status, _) = call(&base, Method::POST, "/api/v1/equity", Some(TOKEN), Caller::Http, None).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    for path in ["/api/v1/audit", "/api/v1/equity", "/api/v1/pnl"] {
        let (status, _) = call(&base, Method::HEAD, path, Some(TOKEN), Caller::Http, None).await;
        assert_eq!(status, StatusCode::OK, "HEAD {path}");
    }

    struct Bad {
        path: &'static str,
        body: &'static str,
        want: StatusCode,
        says: &'static str,
    }
    let bad = [
        Bad { path: "/api/v1/flatten", body: "{symbol", want: StatusCode::BAD_REQUEST, says: "malformed JSON" },
        Bad {
            path: "/api/v1/flatten",
            body: r#"{"sym": "BTCUSDT"}"#,
            want: StatusCode::BAD_REQUEST,
            says: "unknown field",
        },
        Bad {
            path: "/api/v1/flatten",
            body: r#"{"symbol": "DOGEUSDT"}"#,
            want: StatusCode::BAD_REQUEST,
            says: "not a configured symbol",
        },
        Bad {
            path: "/api/v1/orders/x-1/cancel",
            body: r#"{"x": 1}"#,
            want: StatusCode::BAD_REQUEST,
            says: "unknown field",
        },
        Bad {
            path: "/api/v1/orders/no-such-order/cancel",
            body: "",
            want: StatusCode::NOT_FOUND,
            says: "not an open order",
        },
        Bad { path: "/api/v1/strategies/ghost/resume", body: "", want: StatusCode::NOT_FOUND, says: "ghost" },
    ];
    for c in bad {
        let body = (!c.body.is_empty()).then_some(c.body);
        let (status, answer) = post(&r, c.path, Caller::Http, body).await;
        assert_eq!(status, c.want, "{} {}: {answer}", c.path, c.body);
        let err = answer["error"].as_str().unwrap_or_default();
        assert!(err.contains(c.says), "{} {}: {err}", c.path, c.body);
    }
    for query in ["limit=0", "limit=x", "limit=100001", "lim=3"] {
        for path in ["/api/v1/audit", "/api/v1/equity"] {
            let (status, body) = get(&base, &format!("{path}?{query}")).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{path}?{query}: {body}");
        }
    }
    // Refused input is not an action: only the two attempts that reached the
    // engine (an order that is not open, a strategy that does not exist) are kept.
    let (_, audit) = get(&base, "/api/v1/audit").await;
    let records = audit["records"].as_array().cloned().unwrap_or_default();
    let seen: Vec<(&str, &str, bool)> = records
        .iter()
        .map(|r| {
            (r["action"].as_str().unwrap_or(""), r["by"].as_str().unwrap_or(""), r["ok"].as_bool().unwrap_or(true))
        })
        .collect();
    assert_eq!(seen, [("resume_strategy", "http", false), ("cancel_order", "http", false)], "{audit}");
    assert!(records[1]["detail"].as_str().unwrap_or_default().starts_with("no-such-order"), "{audit}");
    r.stop().await;
}

#[actix_rt::test]
async fn every_action_is_audited_with_who_and_from_where() {
    let r = start(&config()).await;
    let base = r.base_url();

    // Pause and resume a strategy from the console; `/start` stays an alias.
    let (status, body) = post(&r, "/api/v1/strategies/btc_sma/pause", Caller::Web, None).await;
    assert_eq!((status, body["paused"].as_bool()), (StatusCode::OK, Some(true)), "{body}");
    let (status, body) = post(&r, "/api/v1/strategies/btc_sma/resume", Caller::Web, None).await;
    assert_eq!((status, body["paused"].as_bool()), (StatusCode::OK, Some(false)), "{body}");
    let running = r.handle.strategies().await.map(|s| s.iter().any(|s| s.id.as_str() == "btc_sma" && !s.paused));
    assert_eq!(running.ok(), Some(true));
    let (status, _) = post(&r, "/api/v1/strategies/btc_sma/start", Caller::Http, None).await;
    assert_eq!(status, StatusCode::OK);

    // Cancel one of the grid's resting buys by its client order id.
    let resting = eventually(30, || async {
        r.handle.open_orders().await.is_ok_and(|o| o.iter().any(|o| o.strategy_id.as_str() == "eth_grid"))
    })
    .await;
    assert!(resting, "the grid placed no resting order");
    let orders = r.handle.open_orders().await.expect("orders");
    let cid =
        orders.iter().find(|o| o.strategy_id.as_str() == "eth_grid").expect("a grid order").client_order_id.clone();
    let (status, body) = post(&r, &format!("/api/v1/orders/{cid}/cancel"), Caller::Web, None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!((body["ok"].as_bool(), body["client_order_id"].as_str()), (Some(true), Some(cid.as_str())));
    let canceled = eventually(10, || async {
        r.store.order(&cid).ok().flatten().is_some_and(|o| o.status == OrderStatus::Canceled)
    })
    .await;
    assert!(canceled, "the order reached the venue's cancel and is stored canceled");
    // Once final it is not open any more.
    let (status, _) = post(&r, &format!("/api/v1/orders/{cid}/cancel"), Caller::Web, None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // Flatten (nothing held, so nothing to close), cancel-all from another client.
    let (status, body) = post(&r, "/api/v1/flatten", Caller::Web, Some(r#"{"symbol": "btcusdt"}"#)).await;
    assert_eq!((status, body["ok"].as_bool()), (StatusCode::OK, Some(true)), "{body}");
    assert!(body["requested"].is_u64(), "{body}");
    let (status, body) = post(&r, "/api/v1/orders/cancel-all", Caller::Http, None).await;
    assert_eq!(status, StatusCode::OK, "{body}");

    // The emergency stop from the console is set by `web:127.0.0.1`.
    let (status, body) = post(&r, "/api/v1/emergency-stop", Caller::Web, Some(r#"{"reason": "console test"}"#)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let stored = r.store.emergency_stop().expect("store readable");
    assert!(stored.active);
    assert_eq!(stored.set_by.as_deref(), Some("web:127.0.0.1"), "{stored:?}");
    let (status, _) = post(&r, "/api/v1/resume", Caller::Web, None).await;
    assert_eq!(status, StatusCode::OK);
    // Any other caller stays `operator:http:<ip>`.
    let (status, _) = post(&r, "/api/v1/emergency-stop", Caller::Http, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(r.store.emergency_stop().expect("store").set_by.as_deref(), Some("operator:http:127.0.0.1"));
    post(&r, "/api/v1/resume", Caller::Http, None).await;

    let (status, audit) = get(&base, "/api/v1/audit").await;
    assert_eq!(status, StatusCode::OK);
    let records = audit["records"].as_array().cloned().unwrap_or_default();
    let seen: Vec<(String, String, bool)> = records
        .iter()
        .map(|r| {
            let s = |k: &str| r[k].as_str().unwrap_or_default().to_string();
            (s("action"), s("by"), r["ok"].as_bool().unwrap_or(false))
        })
        .collect();
    let want = [
        ("resume", "http", true),
        ("emergency_stop", "http", true),
        ("resume", "web", true),
        ("emergency_stop", "web", true),
        ("cancel_all", "http", true),
        ("flatten", "web", true),
        ("cancel_order", "web", false),
        ("cancel_order", "web", true),
        ("resume_strategy", "http", true),
        ("resume_strategy", "web", true),
        ("pause_strategy", "web", true),
    ];
    let want: Vec<(String, String, bool)> = want.iter().map(|(a, b, ok)| (a.to_string(), b.to_string(), *ok)).collect();
    assert_eq!(seen, want, "newest first: {audit:#}");
    let mut last_ts = i64::MAX;
    for rec in &records {
        let remote = rec["remote"].as_str().unwrap_or_default();
        let port = remote.strip_prefix("127.0.0.1:").and_then(|p| p.parse::<u16>().ok());
        assert!(port.is_some_and(|p| p > 0), "remote is the caller's ip:port: {rec}");
        assert_iso(&rec["time"], &rec["ts"]);
        let ts = rec["ts"].as_i64().unwrap_or_default();
        assert!(ts <= last_ts, "newest first");
        last_ts = ts;
    }
    let detail = |i: usize| records[i]["detail"].as_str().unwrap_or_default().to_string();
    assert_eq!(detail(3), "console test");
    assert_eq!(detail(5), "BTCUSDT");
    assert_eq!(detail(7), cid);
    assert_eq!(detail(10), "btc_sma");
    // The same records are in the store.
    let stored = r.store.audit(100).expect("audit readable");
    assert_eq!(stored.len(), records.len());
    assert_eq!((stored[3].by.as_str(), stored[3].action.as_str()), ("web", "emergency_stop"));
    let (_, two) = get(&base, "/api/v1/audit?limit=2").await;
    assert_eq!(two["records"].as_array().map(Vec::len), Some(2));
    assert_eq!(two["records"][0], records[0]);
    r.stop().await;
}

#[actix_rt::test]
async fn equity_history_and_pnl() {
    let r = start(&config()).await;
    let base = r.base_url();
    let day = ops::summary::utc_day_start(ops::summary::now_ms());
    // No more trading once what is on its way settles, so the PnL read
    // twice below is the same.
    r.handle.set_paused("btc_sma", true, "test: PnL holds still").await.expect("paused");
    let settled = eventually(10, || async {
        r.handle.open_orders().await.is_ok_and(|o| o.iter().all(|o| o.strategy_id.as_str() != "btc_sma"))
    })
    .await;
    assert!(settled, "btc_sma's orders did not settle");
    // A point a second once prices are known.
    let enough = eventually(20, || async {
        get(&base, "/api/v1/equity").await.1["points"].as_array().is_some_and(|p| p.len() >= 3)
    })
    .await;
    assert!(enough, "no equity points were written");
    let (status, body) = get(&base, "/api/v1/equity").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["quote_asset"], "USDT");
    assert_eq!(body["max_drawdown"], "0.125", "the risk limit as a fraction: {body}");
    let points = body["points"].as_array().cloned().unwrap_or_default();
    let mut last = 0;
    for p in &points {
        assert_iso(&p["time"], &p["ts"]);
        let ts = p["ts"].as_i64().unwrap_or_default();
        assert!(ts > last, "oldest first, one point per time: {body}");
        last = ts;
        // 100 000 USDT and no coins held at the start: equity is the cash.
        assert!(decimal(&p["equity"]) > Decimal::new(99_000, 0), "{p}");
    }
    let peak = decimal(&body["peak"]);
    let drawdown = decimal(&body["drawdown"]);
    assert!(peak > Decimal::new(99_000, 0), "{body}");
    assert!(drawdown >= Decimal::ZERO && drawdown < Decimal::ONE, "{body}");
    // The same points are in the store, and `limit` takes the newest.
    let stored = r.store.equity_history(points.len()).expect("equity readable");
    assert_eq!(stored.len(), points.len());
    assert_eq!(stored[0].ts_ms, points[0]["ts"].as_i64().unwrap_or_default());
    let (_, one) = get(&base, "/api/v1/equity?limit=1").await;
    let one = one["points"].as_array().cloned().unwrap_or_default();
    assert_eq!(one.len(), 1);
    assert!(one[0]["ts"].as_i64() >= points.last().and_then(|p| p["ts"].as_i64()), "the newest point");

    let (status, pnl) = get(&base, "/api/v1/pnl").await;
    assert_eq!(status, StatusCode::OK, "{pnl}");
    assert_eq!(pnl["quote_asset"], "USDT");
    let portfolio = r.handle.portfolio().await.expect("portfolio");
    assert_eq!(decimal(&pnl["total"]["realized"]), portfolio.realized_pnl, "{pnl}");
    assert_eq!(decimal(&pnl["total"]["fees"]), portfolio.fees, "{pnl}");
    // Unrealized moves with the price of what btc_sma still holds: only its form is fixed.
    decimal(&pnl["total"]["unrealized"]);
    if ops::summary::utc_day_start(ops::summary::now_ms()) == day {
        // A new store, all of whose fills are from today.
        assert_eq!(pnl["today"]["realized"], pnl["total"]["realized"], "{pnl}");
        assert_eq!(pnl["today"]["fees"], pnl["total"]["fees"], "{pnl}");
    }
    r.stop().await;
}

#[actix_rt::test]
async fn equity_history_and_audit_log_survive_a_restart_of_keel() {
    let dir = tempfile::tempdir().expect("temp dir");
    let config_path = dir.path().join("keel.toml");
    let text = config().replace("log_level = \"warn\"", "log_level = \"info\"");
    std::fs::write(&config_path, text).expect("config written");
    let data = dir.path().join("data");
    let env = [(TOKEN_ENV, TOKEN)];

    let mut keel = common::spawn_run(&config_path, &data, &[], &env);
    let base = keel.http_base();
    let enough = eventually(30, || async {
        get(&base, "/api/v1/equity").await.1["points"].as_array().is_some_and(|p| p.len() >= 2)
    })
    .await;
    assert!(enough, "no equity points were written");
    let stop = Some(r#"{"reason":"before restart"}"#);
    let (status, _) =
        call(&base, reqwest::Method::POST, "/api/v1/emergency-stop", Some(TOKEN), Caller::Web, stop).await;
    assert_eq!(status, StatusCode::OK);
    let (status, before) = get(&base, "/api/v1/equity?limit=43200").await;
    assert_eq!(status, StatusCode::OK, "{before}");
    let before = before["points"].as_array().cloned().unwrap_or_default();
    keel.wait_for("operator action", 1);
    let logged = keel.seen.iter().find(|v| v["message"] == "operator action").cloned().unwrap_or_default();
    assert_eq!((logged["level"].as_str(), logged["by"].as_str()), (Some("INFO"), Some("web")), "{logged}");
    assert_eq!((logged["action"].as_str(), logged["ok"].as_bool()), (Some("emergency_stop"), Some(true)), "{logged}");
    assert!(logged["remote"].as_str().unwrap_or_default().starts_with("127.0.0.1:"), "{logged}");
    assert_eq!(logged["detail"], "before restart");
    keel.sigterm();
    let (status, stop_lines) = keel.finish();
    common::assert_stopped("the run", status, &stop_lines);

    let mut keel = common::spawn_run(&config_path, &data, &[], &env);
    let base = keel.http_base();
    let (_, after) = get(&base, "/api/v1/equity?limit=43200").await;
    let after = after["points"].as_array().cloned().unwrap_or_default();
    assert!(after.len() >= before.len(), "{} points before, {} after", before.len(), after.len());
    assert_eq!(after[..before.len()], before[..], "the points written before the restart are kept, exactly");
    let more = eventually(30, || async {
        get(&base, "/api/v1/equity?limit=43200").await.1["points"].as_array().is_some_and(|p| p.len() > before.len())
    })
    .await;
    assert!(more, "the history goes on after the restart");
    let (_, audit) = get(&base, "/api/v1/audit").await;
    let first = &audit["records"][0];
    assert_eq!((first["action"].as_str(), first["by"].as_str()), (Some("emergency_stop"), Some("web")), "{audit}");
    let (_, status_body) = get(&base, "/api/v1/status").await;
    assert_eq!(status_body["emergency_stop"]["set_by"], "web:127.0.0.1", "{status_body}");
    keel.sigterm();
    let (status, stop_lines) = keel.finish();
    common::assert_stopped("the run", status, &stop_lines);
}
