//! The sandbox speaks Binance on the wire: raw HTTP and WebSocket checks of
//! signatures, timestamps, error codes, HTTP statuses, weight headers, market
//! data endpoints, stream control messages and the WebSocket API.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use keel_binance::sign::sign_ws;
use keel_sandbox::{RestFault, Sandbox, SandboxConfig, SandboxHandle};
use serde_json::{json, Value};
use tokio::time::timeout;
use tokio_tungstenite::tungstenite::Message;
use wire::{call, call_with_key, next_json, next_matching, now_ms, WAIT};

mod wire;

async fn start(cfg: SandboxConfig) -> SandboxHandle {
    Sandbox::start(SandboxConfig { history_bars: 30, ..cfg }).await.expect("sandbox starts")
}

/// A sandbox whose BTCUSDT market is held still at 60 000.
async fn start_frozen(cfg: SandboxConfig) -> SandboxHandle {
    let sb = start(cfg).await;
    sb.market.pause();
    sb.market.set_price("BTCUSDT", "60000".parse().unwrap());
    sb.market.step(1);
    sb
}

/// A GTC limit buy of 0.01 BTCUSDT at `price` with client id `cid`.
fn limit_buy(cid: &'static str, price: &'static str) -> Vec<(&'static str, &'static str)> {
    vec![
        ("symbol", "BTCUSDT"),
        ("side", "BUY"),
        ("type", "LIMIT"),
        ("timeInForce", "GTC"),
        ("quantity", "0.01"),
        ("price", price),
        ("newClientOrderId", cid),
    ]
}

#[tokio::test]
async fn public_endpoints_answer_like_binance() {
    let sb = start(SandboxConfig::demo()).await;
    let r = call(&sb, "GET", "/api/v3/ping", &[], false).await;
    assert_eq!((r.status, r.body.clone()), (200, json!({})));
    assert_eq!(r.weight, Some(1));
    let t = call(&sb, "GET", "/api/v3/time", &[], false).await;
    assert!((t.body["serverTime"].as_i64().unwrap() - now_ms()).abs() < 5000);
    let info = call(&sb, "GET", "/api/v3/exchangeInfo", &[("symbol", "BTCUSDT")], false).await;
    let info: keel_binance::model::ExchangeInfo = serde_json::from_value(info.body).unwrap();
    assert_eq!(info.symbols.len(), 1);
    assert_eq!(info.rate_limits.len(), 4);
    let inst = keel_binance::venue::instrument_of(&info.symbols[0]);
    assert_eq!(inst.tick_size, "0.01".parse().unwrap());
    let kl =
        call(&sb, "GET", "/api/v3/klines", &[("symbol", "BTCUSDT"), ("interval", "1m"), ("limit", "10")], false).await;
    let kl: Vec<keel_binance::model::Kline> = serde_json::from_value(kl.body).unwrap();
    assert_eq!(kl.len(), 10);
    for w in kl.windows(2) {
        assert_eq!(w[1].open_time - w[0].open_time, 60_000);
    }
    let k5 = call(&sb, "GET", "/api/v3/klines", &[("symbol", "BTCUSDT"), ("interval", "5m")], false).await;
    assert!(!k5.body.as_array().unwrap().is_empty());
    let depth = call(&sb, "GET", "/api/v3/depth", &[("symbol", "BTCUSDT"), ("limit", "5")], false).await;
    let depth: keel_binance::model::Depth = serde_json::from_value(depth.body).unwrap();
    assert_eq!(depth.bids.len(), 5);
    for (path, params) in [
        ("/api/v3/ticker/bookTicker", vec![("symbol", "BTCUSDT")]),
        ("/api/v3/ticker/price", vec![("symbol", "ETHUSDT")]),
        ("/api/v3/ticker/24hr", vec![("symbol", "BTCUSDT")]),
        ("/api/v3/avgPrice", vec![("symbol", "BTCUSDT")]),
        ("/api/v3/ticker/price", vec![]),
    ] {
        let r = call(&sb, "GET", path, &params, false).await;
        assert_eq!(r.status, 200, "{path}: {}", r.body);
    }
    let bad = call(&sb, "GET", "/api/v3/depth", &[("symbol", "NOPE")], false).await;
    assert_eq!((bad.status, bad.body["code"].as_i64()), (400, Some(-1121)));
    let gone = call(&sb, "POST", "/api/v3/userDataStream", &[], false).await;
    assert_eq!(gone.status, 410);
    sb.shutdown().await;
}

#[tokio::test]
async fn signed_requests_are_validated_as_documented() {
    let sb = start(SandboxConfig::demo()).await;
    struct Case {
        name: &'static str,
        params: Vec<(&'static str, String)>,
        key: Option<&'static str>,
        status: u16,
        code: i64,
    }
    let old = (now_ms() - 10_000).to_string();
    let ahead = (now_ms() + 5_000).to_string();
    let cases = [
        Case { name: "no key", params: vec![], key: Some(""), status: 401, code: -2014 },
        Case { name: "unknown key", params: vec![], key: Some("nope"), status: 401, code: -2015 },
        Case {
            name: "bad signature",
            params: vec![("signature", "00".repeat(32))],
            key: None,
            status: 400,
            code: -1022,
        },
        Case { name: "stale", params: vec![("timestamp", old)], key: None, status: 400, code: -1021 },
        Case { name: "ahead", params: vec![("timestamp", ahead)], key: None, status: 400, code: -1021 },
        Case {
            name: "recvWindow too big",
            params: vec![("recvWindow", "60001".into())],
            key: None,
            status: 400,
            code: -1131,
        },
    ];
    for c in cases {
        let params: Vec<(&str, &str)> = c.params.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let r = call_with_key(&sb, "GET", "/api/v3/account", &params, true, c.key).await;
        assert_eq!((r.status, r.body["code"].as_i64()), (c.status, Some(c.code)), "{}: {}", c.name, r.body);
    }
    // A symbol needing percent-encoding signs and verifies over the encoded form.
    let r = call(&sb, "GET", "/api/v3/openOrders", &[("symbol", "１２３４５６")], true).await;
    assert_eq!(r.body["code"].as_i64(), Some(-1121), "{}", r.body);
    let ok = call(&sb, "GET", "/api/v3/account", &[("recvWindow", "5000")], true).await;
    assert_eq!(ok.status, 200);
    // Every request counts, refused ones included: 7 × account (20) + openOrders (6).
    assert_eq!(ok.weight, Some(7 * 20 + 6));
    sb.shutdown().await;
}

#[tokio::test]
async fn order_endpoints_and_error_codes() {
    let sb = start_frozen(SandboxConfig { order_limit_10s: 3, ..SandboxConfig::demo() }).await;
    let base = [("symbol", "BTCUSDT"), ("side", "BUY"), ("type", "LIMIT"), ("timeInForce", "GTC")];
    struct Case {
        name: &'static str,
        extra: Vec<(&'static str, &'static str)>,
        code: i64,
    }
    let cases = [
        Case { name: "missing price", extra: vec![("quantity", "0.01")], code: -1102 },
        Case { name: "off tick", extra: vec![("quantity", "0.01"), ("price", "50000.001")], code: -1013 },
        Case { name: "too precise", extra: vec![("quantity", "0.01"), ("price", "50000.000000001")], code: -1111 },
        Case { name: "off step", extra: vec![("quantity", "0.000015"), ("price", "50000")], code: -1013 },
        Case { name: "notional", extra: vec![("quantity", "0.00001"), ("price", "50000")], code: -1013 },
        Case {
            name: "bad tif",
            extra: vec![("quantity", "0.01"), ("price", "50000"), ("timeInForce", "GTX")],
            code: -1115,
        },
    ];
    for c in cases {
        let mut p: Vec<(&str, &str)> =
            base.iter().copied().filter(|(k, _)| !c.extra.iter().any(|(ek, _)| ek == k)).collect();
        p.extend(c.extra.iter().copied());
        let r = call(&sb, "POST", "/api/v3/order/test", &p, true).await;
        assert_eq!(r.body["code"].as_i64(), Some(c.code), "{}: {}", c.name, r.body);
    }
    let mut p = base.to_vec();
    p.extend([("quantity", "0.01"), ("price", "50000"), ("newClientOrderId", "raw-1")]);
    let r = call(&sb, "POST", "/api/v3/order", &p, true).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.order_count, Some(1));
    assert_eq!(r.body["status"], "NEW");
    assert_eq!(r.body["fills"], json!([]));
    let dup = call(&sb, "POST", "/api/v3/order", &p, true).await;
    assert_eq!(dup.body, json!({"code": -2010, "msg": "Duplicate order sent."}));
    let q = call(&sb, "GET", "/api/v3/order", &[("symbol", "BTCUSDT"), ("origClientOrderId", "raw-1")], true).await;
    assert_eq!(q.body["clientOrderId"], "raw-1");
    let none = call(&sb, "GET", "/api/v3/order", &[("symbol", "BTCUSDT"), ("origClientOrderId", "x")], true).await;
    assert_eq!(none.body["code"].as_i64(), Some(-2013));
    let c = call(&sb, "DELETE", "/api/v3/order", &[("symbol", "BTCUSDT"), ("origClientOrderId", "raw-1")], true).await;
    assert_eq!((c.body["status"].as_str(), c.body["origClientOrderId"].as_str()), (Some("CANCELED"), Some("raw-1")));
    let c2 = call(&sb, "DELETE", "/api/v3/order", &[("symbol", "BTCUSDT"), ("origClientOrderId", "raw-1")], true).await;
    assert_eq!(c2.body["code"].as_i64(), Some(-2011));
    let c3 = call(&sb, "DELETE", "/api/v3/openOrders", &[("symbol", "BTCUSDT")], true).await;
    assert_eq!(c3.body["code"].as_i64(), Some(-2011));
    // Unfilled-order limit: 3 per 10 s in this config (the rejected duplicate counted too).
    let mut p2 = base.to_vec();
    p2.extend([("quantity", "0.01"), ("price", "50000")]);
    let third = call(&sb, "POST", "/api/v3/order", &p2, true).await;
    assert_eq!(third.order_count, Some(3));
    let over = call(&sb, "POST", "/api/v3/order", &p2, true).await;
    assert_eq!((over.status, over.body["code"].as_i64()), (429, Some(-1015)), "{}", over.body);
    assert!(over.retry_after.is_some());
    let all = call(&sb, "GET", "/api/v3/allOrders", &[("symbol", "BTCUSDT")], true).await;
    assert_eq!(all.body.as_array().unwrap().len(), 2);
    let open = call(&sb, "GET", "/api/v3/openOrders", &[], true).await;
    assert_eq!(open.body.as_array().unwrap().len(), 1);
    let cancel_all = call(&sb, "DELETE", "/api/v3/openOrders", &[("symbol", "BTCUSDT")], true).await;
    assert_eq!(cancel_all.body.as_array().unwrap().len(), 1);
    // Injected rate limit and ban.
    sb.faults.fail_next_requests(RestFault::RateLimited { retry_after_s: 7 }, 1);
    let r = call(&sb, "GET", "/api/v3/ping", &[], false).await;
    assert_eq!((r.status, r.retry_after, r.body["code"].as_i64()), (429, Some(7), Some(-1003)));
    sb.faults.fail_next_requests(RestFault::Banned { retry_after_s: 60 }, 1);
    let r = call(&sb, "GET", "/api/v3/ping", &[], false).await;
    assert_eq!((r.status, r.retry_after), (418, Some(60)));
    let r = call(&sb, "GET", "/api/v3/ping", &[], false).await;
    assert_eq!(r.status, 418, "the ban holds");
    sb.shutdown().await;
}

#[tokio::test]
async fn market_streams_and_control_messages() {
    let sb = start(SandboxConfig { ping_interval_ms: 200, ..SandboxConfig::demo() }).await;
    let (mut ws, _) = tokio_tungstenite::connect_async(format!(
        "{}/stream?streams=btcusdt@kline_1m/ethusdt@bookTicker",
        sb.ws_stream_url
    ))
    .await
    .unwrap();
    let mut seen = std::collections::HashSet::new();
    while seen.len() < 2 {
        let v = next_json(&mut ws).await;
        seen.insert(v["stream"].as_str().unwrap().to_string());
        if v["stream"] == "btcusdt@kline_1m" {
            assert_eq!(v["data"]["e"], "kline");
            assert_eq!(v["data"]["k"]["i"], "1m");
        }
    }
    // Server pings arrive (tungstenite answers them).
    let got_ping = timeout(WAIT, async {
        while let Some(Ok(m)) = ws.next().await {
            if matches!(m, Message::Ping(_)) {
                return true;
            }
        }
        false
    })
    .await;
    assert_eq!(got_ping, Ok(true));

    let (mut raw, _) = tokio_tungstenite::connect_async(format!("{}/ws", sb.ws_stream_url)).await.unwrap();
    raw.send(Message::Text(
        json!({"method": "SUBSCRIBE", "params": ["btcusdt@trade", "btcusdt@kline_5m"], "id": 1}).to_string().into(),
    ))
    .await
    .unwrap();
    assert_eq!(next_json(&mut raw).await, json!({"result": null, "id": 1}));
    raw.send(Message::Text(json!({"method": "LIST_SUBSCRIPTIONS", "id": 2}).to_string().into())).await.unwrap();
    loop {
        let v = next_json(&mut raw).await;
        if v.get("id") == Some(&json!(2)) {
            assert_eq!(v["result"], json!(["btcusdt@trade", "btcusdt@kline_5m"]));
            break;
        }
    }
    let v = loop {
        let v = next_json(&mut raw).await;
        if v["e"] == "trade" {
            break v;
        }
    };
    assert_eq!(v["s"], "BTCUSDT");
    // serverShutdown on a raw stream.
    sb.faults.server_shutdown();
    loop {
        let v = next_json(&mut raw).await;
        if v["e"] == "serverShutdown" {
            break;
        }
    }
    sb.shutdown().await;
}

#[tokio::test]
async fn ws_api_user_data_subscription() {
    let sb = start(SandboxConfig::demo()).await;
    sb.market.pause();
    sb.market.step(1);
    let (mut ws, _) = tokio_tungstenite::connect_async(sb.ws_api_url.clone()).await.unwrap();
    let send = |v: Value| Message::Text(v.to_string().into());
    ws.send(send(json!({"id": "p", "method": "ping"}))).await.unwrap();
    assert_eq!(next_json(&mut ws).await["status"], 200);
    let ts = now_ms().to_string();
    let bad = json!({"id": "s0", "method": "userDataStream.subscribe.signature",
        "params": {"apiKey": sb.api_key, "timestamp": ts.parse::<i64>().unwrap(), "signature": "00"}});
    ws.send(send(bad)).await.unwrap();
    assert_eq!(next_json(&mut ws).await["error"]["code"], -1022);
    let params = vec![("apiKey".to_string(), sb.api_key.clone()), ("timestamp".to_string(), ts.clone())];
    let sig = sign_ws(&sb.api_secret, &params);
    let req = json!({"id": "s1", "method": "userDataStream.subscribe.signature",
        "params": {"apiKey": sb.api_key, "timestamp": ts.parse::<i64>().unwrap(), "signature": sig}});
    ws.send(send(req)).await.unwrap();
    let mut r = next_json(&mut ws).await;
    let limits = r.as_object_mut().and_then(|m| m.remove("rateLimits")).unwrap_or_default();
    assert_eq!(r, json!({"id": "s1", "status": 200, "result": {"subscriptionId": 0}}));
    assert_eq!(limits[0]["rateLimitType"], "REQUEST_WEIGHT", "{limits}");
    ws.send(send(json!({"id": "st", "method": "session.status"}))).await.unwrap();
    assert_eq!(next_json(&mut ws).await["result"]["userDataStream"], true);
    // An order placed over REST shows up as wrapped events.
    let p = [("symbol", "BTCUSDT"), ("side", "BUY"), ("type", "MARKET"), ("quantity", "0.001")];
    let r = call(&sb, "POST", "/api/v3/order", &p, true).await;
    assert_eq!(r.body["status"], "FILLED");
    let mut kinds = Vec::new();
    while kinds.len() < 3 {
        let v = next_json(&mut ws).await;
        assert_eq!(v["subscriptionId"], 0);
        kinds.push(v["event"]["e"].as_str().unwrap().to_string() + ":" + v["event"]["x"].as_str().unwrap_or(""));
    }
    assert_eq!(kinds, ["executionReport:NEW", "executionReport:TRADE", "outboundAccountPosition:"]);
    ws.send(send(json!({"id": "u", "method": "userDataStream.unsubscribe"}))).await.unwrap();
    assert_eq!(next_json(&mut ws).await["status"], 200);
    assert_eq!(next_json(&mut ws).await["event"]["e"], "eventStreamTerminated");
    sb.shutdown().await;
}

#[tokio::test]
async fn ws_api_order_methods() {
    let sb = start_frozen(SandboxConfig::demo()).await;
    let (mut ws, _) = tokio_tungstenite::connect_async(sb.ws_api_url.clone()).await.unwrap();
    let signed = |id: &str, method: &str, extra: &[(&str, &str)]| ws_signed(&sb, id, method, extra);
    let order = [
        ("symbol", "BTCUSDT"),
        ("side", "BUY"),
        ("type", "LIMIT"),
        ("timeInForce", "GTC"),
        ("quantity", "0.01"),
        ("price", "59000"),
        ("newClientOrderId", "ws-1"),
    ];
    ws.send(signed("1", "order.place", &order)).await.unwrap();
    let r = next_json(&mut ws).await;
    assert_eq!((r["status"].as_u64(), r["result"]["status"].as_str()), (Some(200), Some("NEW")), "{r}");
    ws.send(signed("2", "order.status", &[("symbol", "BTCUSDT"), ("origClientOrderId", "ws-1")])).await.unwrap();
    assert_eq!(next_json(&mut ws).await["result"]["clientOrderId"], "ws-1");
    ws.send(signed("3", "openOrders.status", &[("symbol", "BTCUSDT")])).await.unwrap();
    assert_eq!(next_json(&mut ws).await["result"].as_array().map(Vec::len), Some(1));
    ws.send(signed("4", "order.cancel", &[("symbol", "BTCUSDT"), ("origClientOrderId", "ws-1")])).await.unwrap();
    assert_eq!(next_json(&mut ws).await["result"]["status"], "CANCELED");
    ws.send(signed("5", "order.cancel", &[("symbol", "BTCUSDT"), ("origClientOrderId", "ws-1")])).await.unwrap();
    let r = next_json(&mut ws).await;
    assert_eq!((r["status"].as_u64(), r["error"]["code"].as_i64()), (Some(400), Some(-2011)));
    sb.shutdown().await;
}

#[tokio::test]
async fn replays_a_kline_csv() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("btc.csv");
    std::fs::write(&path, "1,100,110,90,105,10,59999\n2,105,106,95,96,5,119999\n3,96,99,96,98,1,179999\n").unwrap();
    let mut cfg = SandboxConfig { history_bars: 3, ..SandboxConfig::demo() };
    cfg.replay.insert("BTCUSDT".into(), path);
    let sb = start_exact(cfg).await;
    sb.market.pause();
    let kl = call(&sb, "GET", "/api/v3/klines", &[("symbol", "BTCUSDT"), ("interval", "1m")], false).await;
    let kl: Vec<keel_binance::model::Kline> = serde_json::from_value(kl.body).unwrap();
    let ohlc: Vec<[String; 4]> =
        kl.iter().map(|k| [k.open, k.high, k.low, k.close].map(|d| d.normalize().to_string())).collect();
    assert_eq!(ohlc, [["100", "110", "90", "105"], ["105", "106", "95", "96"], ["96", "99", "96", "98"]]);
    let bad = SandboxConfig { replay: [("NOPE".to_string(), dir.path().join("x"))].into(), ..SandboxConfig::demo() };
    assert!(Sandbox::start(bad).await.is_err());
    sb.shutdown().await;
}

async fn start_exact(cfg: SandboxConfig) -> SandboxHandle {
    Sandbox::start(cfg).await.expect("sandbox starts")
}

#[tokio::test]
async fn order_entry_refuses_what_binance_refuses() {
    let sb = start_frozen(SandboxConfig::demo()).await;
    let order = |kind: &'static str, side: &'static str, stop: &'static str, price: &'static str, cid: &'static str| {
        vec![
            ("symbol", "BTCUSDT"),
            ("side", side),
            ("type", kind),
            ("timeInForce", "GTC"),
            ("quantity", "0.01"),
            ("price", price),
            ("stopPrice", stop),
            ("newClientOrderId", cid),
        ]
    };
    // A stop on the wrong side of the market would trigger at once.
    for (kind, side, stop, price) in [
        ("STOP_LOSS_LIMIT", "BUY", "59000", "59010"),
        ("TAKE_PROFIT_LIMIT", "BUY", "61000", "61010"),
        ("STOP_LOSS_LIMIT", "SELL", "61000", "60990"),
        ("TAKE_PROFIT_LIMIT", "SELL", "59000", "58990"),
    ] {
        let r = call(&sb, "POST", "/api/v3/order", &order(kind, side, stop, price, "wrong-side"), true).await;
        assert_eq!(
            r.body,
            json!({"code": -2010, "msg": "Order would trigger immediately."}),
            "{kind} {side} stop {stop}"
        );
    }
    // On the right side they rest, not working until triggered, and say which they are.
    for (kind, side, stop, price, cid) in [
        ("STOP_LOSS_LIMIT", "BUY", "61000", "61010", "sl-buy"),
        ("TAKE_PROFIT_LIMIT", "BUY", "59000", "59010", "tp-buy"),
    ] {
        let r = call(&sb, "POST", "/api/v3/order", &order(kind, side, stop, price, cid), true).await;
        assert_eq!(r.status, 200, "{kind}: {}", r.body);
        let q = call(&sb, "GET", "/api/v3/order", &[("symbol", "BTCUSDT"), ("origClientOrderId", cid)], true).await;
        assert_eq!((q.body["type"].as_str(), q.body["isWorking"].as_bool()), (Some(kind), Some(false)), "{}", q.body);
    }
    // The price rises through the stop-loss: it triggers and works.
    sb.market.set_price("BTCUSDT", "61005".parse().unwrap());
    sb.market.step(1);
    let q = call(&sb, "GET", "/api/v3/order", &[("symbol", "BTCUSDT"), ("origClientOrderId", "sl-buy")], true).await;
    assert_eq!(q.body["isWorking"], true, "{}", q.body);
    let q = call(&sb, "GET", "/api/v3/order", &[("symbol", "BTCUSDT"), ("origClientOrderId", "tp-buy")], true).await;
    assert_eq!(q.body["isWorking"], false, "the take-profit buy waits for the price to fall: {}", q.body);

    // A parameter the endpoint does not read.
    let mut p = order("LIMIT", "BUY", "1", "50000", "extra-param");
    p.retain(|(k, _)| *k != "stopPrice");
    p.push(("colour", "blue"));
    let sent = p.len() + 2; // with timestamp and signature
    let r = call(&sb, "POST", "/api/v3/order", &p, true).await;
    let msg = format!("Not all sent parameters were read; read '{}' parameter(s) but was sent '{sent}'.", sent - 1);
    assert_eq!(r.body, json!({"code": -1104, "msg": msg}));

    // A client order id is unique among open orders only.
    let mut p = order("LIMIT", "BUY", "1", "50000", "again");
    p.retain(|(k, _)| *k != "stopPrice");
    assert_eq!(call(&sb, "POST", "/api/v3/order", &p, true).await.status, 200);
    let dup = call(&sb, "POST", "/api/v3/order", &p, true).await;
    assert_eq!(dup.body, json!({"code": -2010, "msg": "Duplicate order sent."}));
    call(&sb, "DELETE", "/api/v3/order", &[("symbol", "BTCUSDT"), ("origClientOrderId", "again")], true).await;
    let reused = call(&sb, "POST", "/api/v3/order", &p, true).await;
    assert_eq!(reused.status, 200, "the id of a final order may be used again: {}", reused.body);

    // A market order echoes GTC.
    let m = [("symbol", "BTCUSDT"), ("side", "BUY"), ("type", "MARKET"), ("quantity", "0.001")];
    let r = call(&sb, "POST", "/api/v3/order", &m, true).await;
    assert_eq!(r.body["timeInForce"], "GTC", "{}", r.body);

    // exchangeInfo lists what is served.
    let info = call(&sb, "GET", "/api/v3/exchangeInfo", &[("symbol", "BTCUSDT")], false).await;
    assert_eq!(
        info.body["symbols"][0]["orderTypes"],
        json!(["LIMIT", "LIMIT_MAKER", "MARKET", "STOP_LOSS", "STOP_LOSS_LIMIT", "TAKE_PROFIT", "TAKE_PROFIT_LIMIT"])
    );
    sb.shutdown().await;
}

#[tokio::test]
async fn microsecond_timestamps_commission_rates_and_self_trade_prevention() {
    let sb = start(SandboxConfig::demo()).await;
    // A timestamp in microseconds is as good as one in milliseconds.
    let us = (now_ms() * 1000 + 123).to_string();
    let r = call(&sb, "GET", "/api/v3/account", &[("timestamp", us.as_str())], true).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let stale_us = ((now_ms() - 10_000) * 1000).to_string();
    let r = call(&sb, "GET", "/api/v3/account", &[("timestamp", stale_us.as_str())], true).await;
    assert_eq!(r.body["code"].as_i64(), Some(-1021), "{}", r.body);

    // The account's rates, in the documented shape (0.10 % maker and taker by default).
    let r = call(&sb, "GET", "/api/v3/account/commission", &[("symbol", "BTCUSDT")], true).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["standardCommission"]["maker"], "0.00100000", "{}", r.body);
    for k in ["standardCommission", "specialCommission", "taxCommission"] {
        let keys: Vec<&str> = r.body[k].as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(keys.len(), 4, "{k}: {keys:?}");
    }
    assert_eq!(r.body["discount"]["enabledForAccount"], false);
    let order = [
        ("symbol", "BTCUSDT"),
        ("side", "BUY"),
        ("type", "LIMIT"),
        ("timeInForce", "GTC"),
        ("quantity", "0.01"),
        ("price", "50000"),
    ];
    let plain = call(&sb, "POST", "/api/v3/order/test", &order, true).await;
    assert_eq!(plain.body, json!({}));
    let mut with_rates = order.to_vec();
    with_rates.push(("computeCommissionRates", "true"));
    let r = call(&sb, "POST", "/api/v3/order/test", &with_rates, true).await;
    assert_eq!(r.body["standardCommissionForOrder"]["taker"], "0.00100000", "{}", r.body);
    assert!(r.body["specialCommissionForOrder"].is_object() && r.body["taxCommissionForOrder"].is_object());

    // Only the modes exchangeInfo allows.
    let mut stp = order.to_vec();
    stp.push(("selfTradePreventionMode", "EXPIRE_TAKER"));
    let r = call(&sb, "POST", "/api/v3/order", &stp, true).await;
    assert_eq!(
        r.body,
        json!({"code": -1013, "msg": "This symbol does not allow the specified self-trade prevention mode."})
    );
    sb.shutdown().await;
}

#[tokio::test]
async fn order_echoes_client_ids_and_lookup_windows_as_documented() {
    let sb = start_frozen(SandboxConfig::demo()).await;
    let limit = |cid: &'static str| limit_buy(cid, "50000");
    let illegal = json!({"code": -1100, "msg": "Illegal characters found in parameter 'newClientOrderId'; legal range is '^[a-zA-Z0-9-_]{1,36}$'."});
    for cid in ["has.dot", "has:colon", "has/slash", "x234567890123456789012345678901234567"] {
        let r = call(&sb, "POST", "/api/v3/order", &limit(cid), true).await;
        assert_eq!(r.body, illegal, "{cid}");
    }
    let ok = call(&sb, "POST", "/api/v3/order", &limit("A-z_09-123456789012345678901234567"), true).await;
    assert_eq!(ok.status, 200, "36 legal characters: {}", ok.body);

    // What exchangeInfo says is not served is refused with the documented messages.
    let info = call(&sb, "GET", "/api/v3/exchangeInfo", &[("symbol", "BTCUSDT")], false).await;
    let sym = &info.body["symbols"][0];
    assert_eq!((sym["icebergAllowed"].as_bool(), sym["allowTrailingStop"].as_bool()), (Some(false), Some(false)));
    let mut p = limit("iceberg");
    p.push(("icebergQty", "0.001"));
    let r = call(&sb, "POST", "/api/v3/order", &p, true).await;
    assert_eq!(r.body, json!({"code": -2010, "msg": "Iceberg orders are not supported for this symbol."}));
    let mut p = limit("trailing");
    p.push(("trailingDelta", "100"));
    let r = call(&sb, "POST", "/api/v3/order", &p, true).await;
    assert_eq!(r.body, json!({"code": -2010, "msg": "Trailing stop orders are not supported for this symbol."}));

    // Echoes: LIMIT_MAKER stays LIMIT_MAKER; a quote-sized market order echoes its amount.
    let maker = [
        ("symbol", "BTCUSDT"),
        ("side", "BUY"),
        ("type", "LIMIT_MAKER"),
        ("quantity", "0.01"),
        ("price", "50000"),
        ("newClientOrderId", "maker"),
    ];
    assert_eq!(call(&sb, "POST", "/api/v3/order", &maker, true).await.status, 200);
    let q = call(&sb, "GET", "/api/v3/order", &[("symbol", "BTCUSDT"), ("origClientOrderId", "maker")], true).await;
    assert_eq!(q.body["type"], "LIMIT_MAKER", "{}", q.body);
    let spend = [("symbol", "BTCUSDT"), ("side", "BUY"), ("type", "MARKET"), ("quoteOrderQty", "100")];
    let r = call(&sb, "POST", "/api/v3/order", &spend, true).await;
    assert_eq!((r.status, r.body["origQuoteOrderQty"].as_str()), (200, Some("100.00000000")), "{}", r.body);

    // A client id used again: each fill lists its own order.
    let buy = |cid: &'static str| {
        [("symbol", "BTCUSDT"), ("side", "BUY"), ("type", "MARKET"), ("quantity", "0.001"), ("newClientOrderId", cid)]
    };
    let first = call(&sb, "POST", "/api/v3/order", &buy("twice"), true).await;
    let second = call(&sb, "POST", "/api/v3/order", &buy("twice"), true).await;
    let (first_id, second_id) = (first.body["orderId"].clone(), second.body["orderId"].clone());
    assert_ne!(first_id, second_id);
    let first_trade = first.body["fills"][0]["tradeId"].clone();
    let trades = call(&sb, "GET", "/api/v3/myTrades", &[("symbol", "BTCUSDT")], true).await;
    let of_first = trades.body.as_array().unwrap().iter().find(|t| t["id"] == first_trade).unwrap();
    assert_eq!(of_first["orderId"], first_id, "the first order's fill names the first order");

    // Trade ids count per symbol, as on Binance: an ETHUSDT fill may carry a
    // BTCUSDT fill's id, and each still names (and finds) its own order.
    let eth = [("symbol", "ETHUSDT"), ("side", "BUY"), ("type", "MARKET"), ("quantity", "0.01")];
    let eth_order = call(&sb, "POST", "/api/v3/order", &eth, true).await;
    assert_eq!(eth_order.status, 200, "{}", eth_order.body);
    for symbol in ["BTCUSDT", "ETHUSDT"] {
        let trades = call(&sb, "GET", "/api/v3/myTrades", &[("symbol", symbol)], true).await;
        for t in trades.body.as_array().unwrap() {
            let id = t["orderId"].to_string();
            let o = call(&sb, "GET", "/api/v3/order", &[("symbol", symbol), ("orderId", &id)], true).await;
            assert_eq!((o.status, &o.body["symbol"]), (200, &json!(symbol)), "{symbol} trade {t}: order {}", o.body);
        }
    }
    let eth_trades = call(&sb, "GET", "/api/v3/myTrades", &[("symbol", "ETHUSDT")], true).await;
    let eth_trade = &eth_trades.body[0];
    assert_eq!(eth_trade["orderId"], eth_order.body["orderId"], "{eth_trade}");
    assert_eq!(eth_trade["id"], eth_order.body["fills"][0]["tradeId"], "{eth_trade}");

    // Time windows: inclusive bounds, at most 24 hours, and the documented combinations.
    let now = now_ms();
    let (past, future) = ((now - 60_000).to_string(), (now + 60_000).to_string());
    let day_and_more = (now - 60_000 - 24 * 3_600_000 - 1).to_string();
    for path in ["/api/v3/allOrders", "/api/v3/myTrades"] {
        let r =
            call(&sb, "GET", path, &[("symbol", "BTCUSDT"), ("startTime", &day_and_more), ("endTime", &past)], true)
                .await;
        assert_eq!(
            r.body,
            json!({"code": -1127, "msg": "More than 24 hours between startTime and endTime."}),
            "{path}"
        );
        let r = call(&sb, "GET", path, &[("symbol", "BTCUSDT"), ("startTime", &future)], true).await;
        assert_eq!(r.body, json!([]), "{path}: nothing after the window's start");
        let r = call(&sb, "GET", path, &[("symbol", "BTCUSDT"), ("endTime", &past)], true).await;
        assert_eq!(r.body, json!([]), "{path}: nothing before the window's end");
        let r =
            call(&sb, "GET", path, &[("symbol", "BTCUSDT"), ("startTime", &past), ("endTime", &future)], true).await;
        assert!(r.body.as_array().is_some_and(|a| a.len() >= 3), "{path}: all of them in the window: {}", r.body);
    }
    let r = call(&sb, "GET", "/api/v3/myTrades", &[("symbol", "BTCUSDT"), ("fromId", "1"), ("startTime", &past)], true)
        .await;
    assert_eq!(r.body, json!({"code": -1128, "msg": "Combination of optional parameters invalid."}));
    sb.shutdown().await;
}

/// Waits (at most 6 s) until the server minute has at least 6 s left, so a
/// short sequence of requests is counted in one minute.
async fn early_in_a_minute() {
    while now_ms().rem_euclid(60_000) > 54_000 {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn ws_signed(sb: &SandboxHandle, id: &str, method: &str, extra: &[(&str, &str)]) -> Message {
    let mut pairs: Vec<(String, String)> = extra.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    pairs.push(("apiKey".into(), sb.api_key.clone()));
    pairs.push(("timestamp".into(), now_ms().to_string()));
    let sig = sign_ws(&sb.api_secret, &pairs);
    let mut params: serde_json::Map<String, Value> = pairs.into_iter().map(|(k, v)| (k, Value::String(v))).collect();
    params.insert("signature".into(), Value::String(sig));
    Message::Text(json!({"id": id, "method": method, "params": params}).to_string().into())
}

fn limit_count(reply: &Value, kind: &str, interval: &str) -> Option<u64> {
    reply["rateLimits"]
        .as_array()?
        .iter()
        .find(|l| l["rateLimitType"] == kind && l["interval"] == interval)
        .and_then(|l| l["count"].as_u64())
}

#[tokio::test]
async fn request_weight_is_shared_by_rest_and_the_ws_api_and_orders_are_counted() {
    let sb = start_frozen(SandboxConfig::demo()).await;
    early_in_a_minute().await;
    let w0 = call(&sb, "GET", "/api/v3/time", &[], false).await.weight.unwrap();
    // Connecting costs 2, a `time` 1, both counted with REST's.
    let (mut ws, _) = tokio_tungstenite::connect_async(sb.ws_api_url.clone()).await.unwrap();
    ws.send(Message::Text(json!({"id": "t", "method": "time"}).to_string().into())).await.unwrap();
    let r = next_json(&mut ws).await;
    assert_eq!(limit_count(&r, "REQUEST_WEIGHT", "MINUTE"), Some(w0 + 3), "{r}");
    assert_eq!(call(&sb, "GET", "/api/v3/time", &[], false).await.weight, Some(w0 + 4));

    // An order placed over the WS API reports the account's ORDERS counters
    // (first) and costs no weight when it succeeds.
    let order = [
        ("symbol", "BTCUSDT"),
        ("side", "BUY"),
        ("type", "LIMIT"),
        ("timeInForce", "GTC"),
        ("quantity", "0.01"),
        ("price", "59000"),
    ];
    ws.send(ws_signed(&sb, "o", "order.place", &order)).await.unwrap();
    let r = next_json(&mut ws).await;
    assert_eq!(r["status"], 200, "{r}");
    assert_eq!(r["rateLimits"][0]["rateLimitType"], "ORDERS", "{r}");
    assert_eq!((limit_count(&r, "ORDERS", "SECOND"), limit_count(&r, "ORDERS", "DAY")), (Some(1), Some(1)), "{r}");
    assert_eq!(limit_count(&r, "REQUEST_WEIGHT", "MINUTE"), Some(w0 + 4), "a placed order is free: {r}");
    // A refused one is charged.
    let mut bad = order.to_vec();
    bad.retain(|(k, _)| *k != "price");
    ws.send(ws_signed(&sb, "b", "order.place", &bad)).await.unwrap();
    let r = next_json(&mut ws).await;
    assert_eq!((r["status"].as_u64(), limit_count(&r, "REQUEST_WEIGHT", "MINUTE")), (Some(400), Some(w0 + 5)), "{r}");
    // REST sees the same order count.
    let r = call(&sb, "GET", "/api/v3/rateLimit/order", &[], true).await;
    assert_eq!(r.body[0]["count"], 1, "{}", r.body);
    assert_eq!(r.body[1]["interval"], "DAY", "{}", r.body);
    // returnRateLimits=false hides them.
    ws.send(Message::Text(
        json!({"id": "h", "method": "time", "params": {"returnRateLimits": false}}).to_string().into(),
    ))
    .await
    .unwrap();
    let r = next_json(&mut ws).await;
    assert_eq!((r["status"].as_u64(), r.get("rateLimits")), (Some(200), None), "{r}");
    sb.shutdown().await;
}

#[tokio::test]
async fn a_client_that_keeps_sending_after_429s_is_banned_with_418() {
    let cfg = SandboxConfig { weight_limit_1m: 10, ban_after_429s: 2, first_ban_s: 30, ..SandboxConfig::demo() };
    let sb = start(cfg).await;
    early_in_a_minute().await;
    for _ in 0..10 {
        assert_eq!(call(&sb, "GET", "/api/v3/ping", &[], false).await.status, 200);
    }
    for _ in 0..2 {
        let r = call(&sb, "GET", "/api/v3/ping", &[], false).await;
        assert_eq!(r.status, 429, "{}", r.body);
        assert_eq!(r.body["code"], -1003);
        assert!(
            r.retry_after.is_some_and(|s| (1..=60).contains(&s)),
            "Retry-After until the minute ends: {:?}",
            r.retry_after
        );
    }
    let r = call(&sb, "GET", "/api/v3/ping", &[], false).await;
    assert_eq!(r.status, 418, "the third 429 in a minute bans: {}", r.body);
    let msg = r.body["msg"].as_str().unwrap_or_default();
    assert!(msg.starts_with("Way too much request weight used; IP banned until "), "{msg}");
    assert!(
        r.retry_after.is_some_and(|s| (29..=30).contains(&s)),
        "Retry-After until the ban lifts: {:?}",
        r.retry_after
    );
    // The ban holds for the WebSocket API too: the connection is refused.
    let refused = tokio_tungstenite::connect_async(sb.ws_api_url.clone()).await;
    match refused {
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => assert_eq!(resp.status().as_u16(), 418),
        other => panic!("a banned IP cannot connect to the WS API: {other:?}"),
    }
    sb.shutdown().await;
}

/// The keys of a JSON object, sorted.
fn keys(v: &Value) -> Vec<String> {
    let mut k: Vec<String> = v.as_object().map(|m| m.keys().cloned().collect()).unwrap_or_default();
    k.sort();
    k
}

#[tokio::test]
async fn cancel_replace_follows_the_documented_outcome_matrix() {
    let sb = start_frozen(SandboxConfig::demo()).await;

    let replace =
        |mode: &'static str, cancel: &'static str, kind: &'static str, price: &'static str, cid: &'static str| {
            let mut p =
                vec![("cancelReplaceMode", mode), ("cancelOrigClientOrderId", cancel), ("newClientOrderId", cid)];
            p.extend([("symbol", "BTCUSDT"), ("side", "BUY"), ("type", kind), ("quantity", "0.01"), ("price", price)]);
            if kind == "LIMIT" {
                p.push(("timeInForce", "GTC"));
            }
            p
        };
    let open_ids = || async {
        let r = call(&sb, "GET", "/api/v3/openOrders", &[("symbol", "BTCUSDT")], true).await;
        let mut ids: Vec<String> =
            r.body.as_array().unwrap().iter().map(|o| o["clientOrderId"].as_str().unwrap().to_string()).collect();
        ids.sort();
        ids
    };
    assert_eq!(call(&sb, "POST", "/api/v3/order", &limit_buy("old", "59000"), true).await.status, 200);

    // Both parts succeed.
    let r = call(
        &sb,
        "POST",
        "/api/v3/order/cancelReplace",
        &replace("STOP_ON_FAILURE", "old", "LIMIT", "59500", "new"),
        true,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        (r.body["cancelResult"].as_str(), r.body["newOrderResult"].as_str()),
        (Some("SUCCESS"), Some("SUCCESS"))
    );
    let cancel = &r.body["cancelResponse"];
    assert_eq!(
        (cancel["origClientOrderId"].as_str(), cancel["status"].as_str()),
        (Some("old"), Some("CANCELED")),
        "{cancel}"
    );
    let placed = &r.body["newOrderResponse"];
    assert_eq!((placed["clientOrderId"].as_str(), placed["status"].as_str()), (Some("new"), Some("NEW")), "{placed}");
    assert_eq!(open_ids().await, ["new"]);
    if let Some(dir) = keel_testkit::fixtures("binance") {
        let doc: Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join("rest_cancelReplace_success.json")).unwrap())
                .unwrap();
        assert_eq!(keys(&r.body), keys(&doc));
        assert_eq!(keys(cancel), keys(&doc["cancelResponse"]), "the cancel's fields");
        assert_eq!(keys(placed), keys(&doc["newOrderResponse"]), "the new order's fields");
    }

    // The cancel fails under STOP_ON_FAILURE: nothing is placed.
    let r = call(
        &sb,
        "POST",
        "/api/v3/order/cancelReplace",
        &replace("STOP_ON_FAILURE", "gone", "LIMIT", "59400", "never"),
        true,
    )
    .await;
    assert_eq!(r.status, 400);
    assert_eq!(
        r.body,
        json!({"code": -2022, "msg": "Order cancel-replace failed.", "data": {"cancelResult": "FAILURE",
            "newOrderResult": "NOT_ATTEMPTED", "cancelResponse": {"code": -2011, "msg": "Unknown order sent."}, "newOrderResponse": null}})
    );
    // Under ALLOW_FAILURE the new order goes in anyway: 409, partially failed.
    let r = call(
        &sb,
        "POST",
        "/api/v3/order/cancelReplace",
        &replace("ALLOW_FAILURE", "gone", "LIMIT", "59400", "anyway"),
        true,
    )
    .await;
    assert_eq!((r.status, r.body["code"].as_i64()), (409, Some(-2021)), "{}", r.body);
    assert_eq!(r.body["msg"], "Order cancel-replace partially failed.");
    assert_eq!(
        (r.body["data"]["cancelResult"].as_str(), r.body["data"]["newOrderResult"].as_str()),
        (Some("FAILURE"), Some("SUCCESS"))
    );
    assert_eq!(open_ids().await, ["anyway", "new"]);
    // The cancel succeeds and the new order is refused by the matching engine: 409.
    let r = call(
        &sb,
        "POST",
        "/api/v3/order/cancelReplace",
        &replace("STOP_ON_FAILURE", "anyway", "LIMIT_MAKER", "60100", "taker"),
        true,
    )
    .await;
    assert_eq!((r.status, r.body["code"].as_i64()), (409, Some(-2021)), "{}", r.body);
    assert_eq!(
        r.body["data"]["newOrderResponse"],
        json!({"code": -2010, "msg": "Order would immediately match and take."})
    );
    assert_eq!(r.body["data"]["cancelResponse"]["status"], "CANCELED");
    assert_eq!(open_ids().await, ["new"]);
    // Both fail.
    let r = call(
        &sb,
        "POST",
        "/api/v3/order/cancelReplace",
        &replace("ALLOW_FAILURE", "gone", "LIMIT_MAKER", "60100", "taker"),
        true,
    )
    .await;
    assert_eq!((r.status, r.body["code"].as_i64()), (400, Some(-2022)), "{}", r.body);
    assert_eq!(
        (r.body["data"]["cancelResult"].as_str(), r.body["data"]["newOrderResult"].as_str()),
        (Some("FAILURE"), Some("FAILURE"))
    );
    // A filter failure refuses the whole request before the cancel.
    let r = call(
        &sb,
        "POST",
        "/api/v3/order/cancelReplace",
        &replace("STOP_ON_FAILURE", "new", "LIMIT", "59400.001", "bad-tick"),
        true,
    )
    .await;
    assert_eq!((r.status, r.body.clone()), (400, json!({"code": -1013, "msg": "Filter failure: PRICE_FILTER"})));
    assert_eq!(open_ids().await, ["new"], "nothing was canceled");

    // cancelRestrictions, on cancels and cancel-replaces alike.
    let only = |v: &'static str| [("symbol", "BTCUSDT"), ("origClientOrderId", "new"), ("cancelRestrictions", v)];
    let r = call(&sb, "DELETE", "/api/v3/order", &only("ONLY_PARTIALLY_FILLED"), true).await;
    assert_eq!(r.body, json!({"code": -2011, "msg": "Order was not canceled due to cancel restrictions."}));
    let r = call(&sb, "DELETE", "/api/v3/order", &only("SOMETIMES"), true).await;
    assert_eq!(r.body, json!({"code": -1145, "msg": "Invalid cancelRestrictions"}));

    // Over the WebSocket API: the same, with the order counters.
    let (mut ws, _) = tokio_tungstenite::connect_async(sb.ws_api_url.clone()).await.unwrap();
    ws.send(ws_signed(
        &sb,
        "cr",
        "order.cancelReplace",
        &replace("STOP_ON_FAILURE", "new", "LIMIT", "59600", "via-ws"),
    ))
    .await
    .unwrap();
    let r = next_json(&mut ws).await;
    assert_eq!((r["status"].as_u64(), r["result"]["newOrderResult"].as_str()), (Some(200), Some("SUCCESS")), "{r}");
    assert_eq!(r["rateLimits"][0]["rateLimitType"], "ORDERS", "{r}");
    ws.send(ws_signed(&sb, "cr2", "order.cancelReplace", &replace("STOP_ON_FAILURE", "gone", "LIMIT", "59600", "no")))
        .await
        .unwrap();
    let r = next_json(&mut ws).await;
    assert_eq!((r["status"].as_u64(), r["error"]["code"].as_i64()), (Some(400), Some(-2022)), "{r}");
    assert_eq!(r["error"]["data"]["newOrderResult"], "NOT_ATTEMPTED", "{r}");
    assert_eq!(open_ids().await, ["via-ws"]);
    sb.shutdown().await;
}

#[tokio::test]
async fn stop_loss_and_take_profit_market_orders_trigger_as_documented() {
    let sb = start_frozen(SandboxConfig::demo()).await;
    let stop = |kind: &'static str, side: &'static str, stop: &'static str, cid: &'static str| {
        vec![
            ("symbol", "BTCUSDT"),
            ("side", side),
            ("type", kind),
            ("quantity", "0.01"),
            ("stopPrice", stop),
            ("newClientOrderId", cid),
        ]
    };
    let query = |cid: &'static str| {
        let sb = &sb;
        async move {
            call(sb, "GET", "/api/v3/order", &[("symbol", "BTCUSDT"), ("origClientOrderId", cid)], true).await.body
        }
    };
    // Wrong side: would trigger at once.
    for (kind, side, px) in
        [("STOP_LOSS", "SELL", "60500"), ("TAKE_PROFIT", "SELL", "59500"), ("STOP_LOSS", "BUY", "59500")]
    {
        let r = call(&sb, "POST", "/api/v3/order", &stop(kind, side, px, "wrong"), true).await;
        assert_eq!(r.body, json!({"code": -2010, "msg": "Order would trigger immediately."}), "{kind} {side} {px}");
    }
    // A price or a time in force is not read by a market-on-trigger order.
    let mut p = stop("STOP_LOSS", "SELL", "59500", "priced");
    p.push(("price", "59400"));
    let r = call(&sb, "POST", "/api/v3/order", &p, true).await;
    assert_eq!(r.body, json!({"code": -1106, "msg": "Parameter 'price' sent when not required."}));
    // The right side: they rest, not working, named as sent; the default answer is ACK.
    let r = call(&sb, "POST", "/api/v3/order", &stop("STOP_LOSS", "SELL", "59500", "sl"), true).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(keys(&r.body), ["clientOrderId", "orderId", "orderListId", "symbol", "transactTime"], "ACK: {}", r.body);
    assert_eq!(call(&sb, "POST", "/api/v3/order", &stop("TAKE_PROFIT", "SELL", "60500", "tp"), true).await.status, 200);
    for (cid, kind) in [("sl", "STOP_LOSS"), ("tp", "TAKE_PROFIT")] {
        let q = query(cid).await;
        assert_eq!(
            (q["type"].as_str(), q["isWorking"].as_bool(), q["status"].as_str()),
            (Some(kind), Some(false), Some("NEW")),
            "{q}"
        );
        assert_eq!(q["stopPrice"], "59500.00000000".replace("59500", if cid == "sl" { "59500" } else { "60500" }));
    }
    // The price falls through the stop-loss: it sells at the market; the take-profit waits.
    sb.market.set_price("BTCUSDT", "59400".parse().unwrap());
    sb.market.step(1);
    let q = query("sl").await;
    assert_eq!((q["status"].as_str(), q["executedQty"].as_str()), (Some("FILLED"), Some("0.01000000")), "{q}");
    let avg = q["cummulativeQuoteQty"].as_str().unwrap().parse::<f64>().unwrap() / 0.01;
    assert!((59_000.0..59_500.0).contains(&avg), "filled at the market below the stop, not at the stop: {avg}");
    assert_eq!(query("tp").await["status"], "NEW");
    sb.shutdown().await;
}

#[tokio::test]
async fn unread_parameters_and_features_not_enabled_get_binances_answers() {
    let sb = start(SandboxConfig::default()).await;
    // Any endpoint refuses a parameter it does not read.
    let r = call(&sb, "GET", "/api/v3/depth", &[("symbol", "BTCUSDT"), ("depth", "5")], false).await;
    let unread = |read: usize, sent: usize| json!({"code": -1104, "msg": format!("Not all sent parameters were read; read '{read}' parameter(s) but was sent '{sent}'.")});
    assert_eq!((r.status, r.body), (400, unread(1, 2)));
    let r = call(&sb, "GET", "/api/v3/account", &[("fooBar", "1")], true).await;
    assert_eq!(r.body, unread(2, 3), "timestamp and signature are read, fooBar is not");
    // Features exchangeInfo says are off (and the deprecated OCO endpoint, which the testnet does not list).
    let oto = [("symbol", "BTCUSDT"), ("side", "SELL"), ("quantity", "0.01")];
    let r = call(&sb, "POST", "/api/v3/orderList/oto", &oto, true).await;
    assert_eq!((r.status, r.body), (400, json!({"code": -2010, "msg": "Unsupported order combination"})));
    let r = call(&sb, "POST", "/api/v3/order/oco", &oto, true).await;
    assert_eq!((r.status, r.body["code"].as_i64()), (404, Some(-1020)));
    let amend = [("symbol", "BTCUSDT"), ("orderId", "1"), ("newQty", "0.001")];
    let r = call(&sb, "PUT", "/api/v3/order/amend/keepPriority", &amend, true).await;
    assert_eq!(r.body, json!({"code": -2038, "msg": "Order amend is not supported for this symbol."}));
    let pegged = [
        ("symbol", "BTCUSDT"),
        ("side", "BUY"),
        ("type", "LIMIT"),
        ("timeInForce", "GTC"),
        ("quantity", "0.01"),
        ("price", "50000"),
        ("pegPriceType", "PRIMARY_PEG"),
    ];
    let r = call(&sb, "POST", "/api/v3/order", &pegged, true).await;
    assert_eq!(r.body, json!({"code": -2010, "msg": "Pegged orders are not supported for this symbol."}));

    // Real time (the default): the last kline is the bar in progress, as on Binance.
    let now = now_ms();
    let r =
        call(&sb, "GET", "/api/v3/klines", &[("symbol", "BTCUSDT"), ("interval", "1m"), ("limit", "3")], false).await;
    let last = r.body.as_array().and_then(|a| a.last()).cloned().unwrap_or_default();
    let minute = now - now.rem_euclid(60_000);
    assert!(
        [minute, minute + 60_000].contains(&last[0].as_i64().unwrap_or_default()),
        "the last kline opens in the current minute ({minute}): {last}"
    );
    assert!(last[6].as_i64().unwrap_or_default() >= now, "its close time is still ahead: {last}");

    // The WebSocket API serves account history and market data too.
    let (mut ws, _) = tokio_tungstenite::connect_async(sb.ws_api_url.clone()).await.unwrap();
    ws.send(ws_signed(&sb, "t", "myTrades", &[("symbol", "BTCUSDT")])).await.unwrap();
    let r = next_json(&mut ws).await;
    assert_eq!((r["status"].as_u64(), r["result"].is_array()), (Some(200), true), "{r}");
    ws.send(Message::Text(
        json!({"id": "d", "method": "depth", "params": {"symbol": "BTCUSDT", "limit": 5}}).to_string().into(),
    ))
    .await
    .unwrap();
    let r = next_json(&mut ws).await;
    assert!(r["result"]["lastUpdateId"].is_u64() && r["result"]["bids"].is_array(), "{r}");
    sb.shutdown().await;
}

#[tokio::test]
async fn the_first_depth_diff_covers_only_changes_since_the_server_opened() {
    // 30 bars of 10 ticks are generated before the server opens (300 book updates).
    let sb = start(SandboxConfig::demo()).await;
    // Connected at once: the first 1000 ms diff comes after the server opened.
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("{}/ws/btcusdt@depth", sb.ws_stream_url)).await.unwrap();
    let first = next_json(&mut ws).await;
    let (u_first, u_last) = (first["U"].as_u64().unwrap(), first["u"].as_u64().unwrap());
    assert!(u_first > 300, "the history generated before the server opened is not in a diff: U={u_first} u={u_last}");
    assert!(first["b"].as_array().unwrap().len() < 500, "a diff of a second, not of the history");
    sb.shutdown().await;
}

/// In real time the market's clock is the server clock: just after a minute
/// starts, REST klines already end with the new minute's bar (the market
/// clock used to lag by up to a tick, 6 s at the default ticks).
#[tokio::test]
async fn at_real_time_the_bar_in_progress_turns_over_on_the_minute() {
    let sb = start(SandboxConfig::default()).await;
    // Wait (at most a minute) for the next minute to have just begun.
    let next = sb.faults.server_now_ms() / 60_000 * 60_000 + 60_000;
    tokio::time::sleep(Duration::from_millis((next - sb.faults.server_now_ms()).max(0) as u64 + 300)).await;
    let asked = sb.faults.server_now_ms();
    let r =
        call(&sb, "GET", "/api/v3/klines", &[("symbol", "BTCUSDT"), ("interval", "1m"), ("limit", "2")], false).await;
    let opens: Vec<i64> = r.body.as_array().unwrap().iter().map(|k| k[0].as_i64().unwrap()).collect();
    assert_eq!(opens, [next - 60_000, next], "asked at {asked}, 300 ms into the minute {next}");
    sb.shutdown().await;
}

/// A trade belongs to the kline whose `[t, T]` holds its time, as on
/// Binance: the aggregate trades REST gives for a closed bar's window are
/// that bar's trade count, volume and quote volume. (The tick on the minute,
/// which closes the bar, was stamped with the next bar's open time and so
/// showed in the next bar's window; a raw client caught it as a trade id
/// outside the kline's `f..L`.)
#[tokio::test]
async fn the_trades_in_a_closed_klines_window_are_its_trades() {
    let sb = start(SandboxConfig::default()).await;
    let r =
        call(&sb, "GET", "/api/v3/klines", &[("symbol", "BTCUSDT"), ("interval", "1m"), ("limit", "12")], false).await;
    let bars = r.body.as_array().unwrap().clone();
    // The last bar is in progress; every other one is closed.
    for k in &bars[..bars.len() - 1] {
        let (t, close) = (k[0].as_i64().unwrap(), k[6].as_i64().unwrap());
        let (start_time, end_time) = (t.to_string(), close.to_string());
        let agg = call(
            &sb,
            "GET",
            "/api/v3/aggTrades",
            &[("symbol", "BTCUSDT"), ("startTime", &start_time), ("endTime", &end_time), ("limit", "1000")],
            false,
        )
        .await;
        let trades = agg.body.as_array().unwrap();
        let dec = |v: &Value| v.as_str().unwrap().parse::<rust_decimal::Decimal>().unwrap();
        let volume: rust_decimal::Decimal = trades.iter().map(|a| dec(&a["q"])).sum();
        let quote: rust_decimal::Decimal = trades.iter().map(|a| dec(&a["p"]) * dec(&a["q"])).sum();
        assert_eq!(trades.len() as i64, k[8].as_i64().unwrap(), "trade count of the bar at {t}");
        assert_eq!(volume, dec(&k[5]), "volume of the bar at {t}: its window's trades {trades:?}");
        assert_eq!(quote, dec(&k[7]), "quote volume of the bar at {t}");
    }
    sb.shutdown().await;
}

/// A SELL OCO of 0.01 BTCUSDT around 60 000: take-profit LIMIT_MAKER at
/// `tp`, stop STOP_LOSS_LIMIT at 59 000 (limit 58 900), legs `<id>-tp`/`<id>-sl`.
fn sell_oco(id: &'static str, tp: &'static str) -> Vec<(&'static str, String)> {
    vec![
        ("symbol", "BTCUSDT".into()),
        ("side", "SELL".into()),
        ("quantity", "0.01".into()),
        ("listClientOrderId", id.into()),
        ("aboveType", "LIMIT_MAKER".into()),
        ("abovePrice", tp.into()),
        ("aboveClientOrderId", format!("{id}-tp")),
        ("belowType", "STOP_LOSS_LIMIT".into()),
        ("belowStopPrice", "59000".into()),
        ("belowPrice", "58900".into()),
        ("belowTimeInForce", "GTC".into()),
        ("belowClientOrderId", format!("{id}-sl")),
    ]
}

fn pairs<'a>(v: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    v.iter().map(|(k, v)| (*k, v.as_str())).collect()
}

#[tokio::test]
async fn oco_order_lists_follow_binances_protocol() {
    let sb = start_frozen(SandboxConfig::demo()).await;
    let (mut ws, _) = tokio_tungstenite::connect_async(sb.ws_api_url.clone()).await.unwrap();
    ws.send(ws_signed(&sb, "s", "userDataStream.subscribe.signature", &[])).await.unwrap();
    assert_eq!(next_json(&mut ws).await["status"], 200);
    let info = call(&sb, "GET", "/api/v3/exchangeInfo", &[("symbol", "BTCUSDT")], false).await.body;
    assert_eq!(info["symbols"][0]["ocoAllowed"], true);
    let filters = info["symbols"][0]["filters"].as_array().cloned().unwrap_or_default();
    assert!(
        filters.iter().any(|f| f["filterType"] == "MAX_NUM_ORDER_LISTS" && f["maxNumOrderLists"] == 20),
        "{filters:?}"
    );
    let base = |body: &Value| -> (String, String) {
        let b = body["balances"].as_array().and_then(|a| a.iter().find(|b| b["asset"] == "BTC").cloned());
        let b = b.unwrap_or_default();
        (b["free"].as_str().unwrap_or("").to_string(), b["locked"].as_str().unwrap_or("").to_string())
    };
    let btc_before = base(&call(&sb, "GET", "/api/v3/account", &[], true).await.body);

    // Refusals, as Binance words them.
    let without = |k: &str| sell_oco("bad", "61000").into_iter().filter(|(n, _)| *n != k).collect::<Vec<_>>();
    let with = |k: &'static str, v: &str| {
        let mut o: Vec<(&'static str, String)> =
            sell_oco("bad", "61000").into_iter().filter(|(n, _)| *n != k).collect();
        o.push((k, v.to_string()));
        o
    };
    /// (what, the parameters, Binance's code and message)
    type Case = (&'static str, Vec<(&'static str, String)>, i64, &'static str);
    let cases: Vec<Case> = vec![
        (
            "no below type",
            without("belowType"),
            -1102,
            "Mandatory parameter 'belowType' was not sent, was empty/null, or malformed.",
        ),
        (
            "no time in force on the stop-limit",
            without("belowTimeInForce"),
            -1102,
            "Mandatory parameter 'belowTimeInForce' was not sent, was empty/null, or malformed.",
        ),
        ("a market leg", with("aboveType", "MARKET"), -1158, "Order type not supported in OCO."),
        (
            "the take-profit below the market",
            with("abovePrice", "59500"),
            -2010,
            "The relationship of the prices for the orders is not correct.",
        ),
        ("a buy with its limit above", with("side", "BUY"), -1165, "A limit order in a buy OCO must be below."),
        ("off the tick", with("abovePrice", "61000.001"), -1013, "Filter failure: PRICE_FILTER"),
    ];
    for (what, params, code, msg) in cases {
        let r = call(&sb, "POST", "/api/v3/orderList/oco", &pairs(&params), true).await;
        assert_eq!((r.status, r.body.clone()), (400, json!({"code": code, "msg": msg})), "{what}");
    }
    assert!(call(&sb, "GET", "/api/v3/openOrders", &[], true).await.body.as_array().is_some_and(Vec::is_empty));

    // Placed: one list, two legs (below first), locked once.
    let r = call(&sb, "POST", "/api/v3/orderList/oco", &pairs(&sell_oco("oco-1", "61000")), true).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let list_id = r.body["orderListId"].as_i64().unwrap();
    assert_eq!(
        (
            &r.body["contingencyType"],
            &r.body["listStatusType"],
            &r.body["listOrderStatus"],
            &r.body["listClientOrderId"]
        ),
        (&json!("OCO"), &json!("EXEC_STARTED"), &json!("EXECUTING"), &json!("oco-1"))
    );
    let legs: Vec<(String, String, i64)> = r.body["orderReports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| {
            (
                o["clientOrderId"].as_str().unwrap().into(),
                o["type"].as_str().unwrap().into(),
                o["orderListId"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        legs,
        vec![
            ("oco-1-sl".into(), "STOP_LOSS_LIMIT".into(), list_id),
            ("oco-1-tp".into(), "LIMIT_MAKER".into(), list_id)
        ]
    );
    assert_eq!(r.body["orders"][0]["clientOrderId"], "oco-1-sl");
    let open = call(&sb, "GET", "/api/v3/openOrders", &[("symbol", "BTCUSDT")], true).await.body;
    let open_lists: Vec<i64> = open.as_array().unwrap().iter().map(|o| o["orderListId"].as_i64().unwrap()).collect();
    assert_eq!(open_lists, vec![list_id, list_id], "both legs are open orders of the list");
    let (free, locked) = base(&call(&sb, "GET", "/api/v3/account", &[], true).await.body);
    let dec = |s: &str| s.parse::<rust_decimal::Decimal>().unwrap();
    assert_eq!(dec(&locked) - dec(&btc_before.1), dec("0.01"), "the quantity is locked once");
    assert_eq!(dec(&btc_before.0) - dec(&free), dec("0.01"));
    // The user stream: each leg NEW, then the list.
    let ls = next_matching(&mut ws, "listStatus", |v| v["event"]["e"] == "listStatus").await;
    assert_eq!(
        (&ls["event"]["l"], &ls["event"]["L"], &ls["event"]["C"], &ls["event"]["g"]),
        (&json!("EXEC_STARTED"), &json!("EXECUTING"), &json!("oco-1"), &json!(list_id))
    );

    let q = call(&sb, "GET", "/api/v3/orderList", &[("origClientOrderId", "oco-1")], true).await;
    assert_eq!(q.body["orderListId"].as_i64(), Some(list_id), "{}", q.body);
    let q = call(&sb, "GET", "/api/v3/openOrderList", &[], true).await.body;
    assert_eq!(q.as_array().map(Vec::len), Some(1));

    // Cancelled whole.
    let c =
        call(&sb, "DELETE", "/api/v3/orderList", &[("symbol", "BTCUSDT"), ("listClientOrderId", "oco-1")], true).await;
    assert_eq!((c.status, &c.body["listOrderStatus"]), (200, &json!("ALL_DONE")), "{}", c.body);
    let statuses: Vec<&str> =
        c.body["orderReports"].as_array().unwrap().iter().map(|o| o["status"].as_str().unwrap()).collect();
    assert_eq!(statuses, ["CANCELED", "CANCELED"]);
    assert!(call(&sb, "GET", "/api/v3/openOrders", &[], true).await.body.as_array().is_some_and(Vec::is_empty));
    assert_eq!(base(&call(&sb, "GET", "/api/v3/account", &[], true).await.body), btc_before, "the lock is released");
    let again =
        call(&sb, "DELETE", "/api/v3/orderList", &[("symbol", "BTCUSDT"), ("orderListId", &list_id.to_string())], true)
            .await;
    assert_eq!(again.body["code"], -2011);
    let all = call(&sb, "GET", "/api/v3/allOrderList", &[], true).await.body;
    assert_eq!(
        all.as_array().map(|a| a.iter().map(|l| l["listOrderStatus"].clone()).collect::<Vec<_>>()),
        Some(vec![json!("ALL_DONE")])
    );

    // Cancelling one leg cancels the list.
    call(&sb, "POST", "/api/v3/orderList/oco", &pairs(&sell_oco("oco-2", "61000")), true).await;
    let c =
        call(&sb, "DELETE", "/api/v3/order", &[("symbol", "BTCUSDT"), ("origClientOrderId", "oco-2-tp")], true).await;
    assert_eq!((c.status, &c.body["listClientOrderId"]), (200, &json!("oco-2")), "{}", c.body);
    assert!(call(&sb, "GET", "/api/v3/openOrders", &[], true).await.body.as_array().is_some_and(Vec::is_empty));

    // The price falls through the stop: the take-profit expires (OCO_TRIGGER), the list is done, the stop sells.
    let r = call(&sb, "POST", "/api/v3/orderList/oco", &pairs(&sell_oco("oco-3", "61000")), true).await;
    let list_id = r.body["orderListId"].as_i64().unwrap();
    sb.market.set_price("BTCUSDT", "58950".parse().unwrap());
    sb.market.step(1);
    let expired = next_matching(&mut ws, "the take-profit expired", |v| {
        v["event"]["c"] == "oco-3-tp" && v["event"]["X"] == "EXPIRED"
    })
    .await;
    assert_eq!((&expired["event"]["eR"], &expired["event"]["g"]), (&json!("OCO_TRIGGER"), &json!(list_id)));
    let done =
        next_matching(&mut ws, "the list done", |v| v["event"]["e"] == "listStatus" && v["event"]["C"] == "oco-3")
            .await;
    assert_eq!(done["event"]["L"], "ALL_DONE");
    let sl =
        call(&sb, "GET", "/api/v3/order", &[("symbol", "BTCUSDT"), ("origClientOrderId", "oco-3-sl")], true).await.body;
    assert_eq!((sl["status"].as_str(), sl["orderListId"].as_i64()), (Some("FILLED"), Some(list_id)), "{sl}");
    let trades =
        call(&sb, "GET", "/api/v3/myTrades", &[("symbol", "BTCUSDT"), ("orderId", &sl["orderId"].to_string())], true)
            .await
            .body;
    assert!(
        trades.as_array().is_some_and(|t| !t.is_empty() && t.iter().all(|t| t["orderListId"] == list_id)),
        "{trades}"
    );
    sb.shutdown().await;
}
