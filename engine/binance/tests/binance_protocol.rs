//! Binance protocol layer against the documented fixtures in
//! `../shared/fixtures/binance`: signing vectors, every payload parses, every
//! error maps to the right class. Without the fixtures each test says it is
//! skipped and passes, unless `KEEL_REQUIRE_FIXTURES=1` (CI) makes it fail.

use std::path::{Path, PathBuf};

use keel_binance::error::BinanceError;
use keel_binance::model::*;
use keel_binance::sign::{encode_query, sign_rest, sign_ws, ws_payload};
use keel_binance::venue::instrument_of;
use serde_json::Value;

/// The Binance fixture folder, or `None` (said on stderr) when it is absent.
fn fixtures() -> Option<PathBuf> {
    keel_testkit::fixtures("binance")
}

fn load(dir: &Path, name: &str) -> Value {
    let path = dir.join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn pairs_of(payload: &str) -> Vec<(String, String)> {
    payload
        .split('&')
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap();
            (k.to_string(), v.to_string())
        })
        .collect()
}

#[test]
fn hmac_signing_vectors() {
    let Some(dir) = fixtures() else { return };
    let v = load(&dir, "signing_hmac_vectors.json");
    let secret = v["hmac_secret"].as_str().unwrap();
    for case in v["rest"].as_array().unwrap() {
        let payload = case["payload"].as_str().unwrap();
        assert_eq!(sign_rest(secret, payload, ""), case["signature"].as_str().unwrap(), "rest {payload}");
        // The encoder must produce the documented encoded payload from raw values.
        if let Some(raw) = case["raw_symbol"].as_str() {
            let mut pairs = pairs_of(payload);
            pairs[0].1 = raw.to_string();
            assert_eq!(encode_query(&pairs), payload);
        }
    }
    for case in v["ws_api"].as_array().unwrap() {
        let payload = case["payload"].as_str().unwrap();
        let mut pairs = pairs_of(payload);
        pairs.reverse(); // order must not matter: the canonical form sorts
        pairs.push(("signature".into(), "ignored".into()));
        assert_eq!(ws_payload(&pairs), payload);
        assert_eq!(sign_ws(secret, &pairs), case["signature"].as_str().unwrap(), "ws {payload}");
    }
}

fn expected_error_class(name: &str, code: i64, msg: &str) -> &'static str {
    match code {
        -1003 if msg.contains("banned") => "banned",
        -1003 | -1015 => "rate_limited",
        -1006 | -1007 => "outcome_unknown",
        -2013 => "not_found",
        -2011 if name.contains("unknown_order") => "not_found",
        _ => "rejected",
    }
}

/// The HTTP status Binance documents for an error code (fixtures carry only the body).
fn http_status(code: i64, msg: &str) -> u16 {
    match code {
        -1003 if msg.contains("banned") => 418,
        -1003 | -1015 => 429,
        -1000 | -1001 | -1006 | -1007 | -1008 => 503,
        _ => 400,
    }
}

#[test]
fn every_error_fixture_is_classified() {
    let Some(dir) = fixtures() else { return };
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        if !name.starts_with("error_") {
            continue;
        }
        let api: ApiError = serde_json::from_value(load(&dir, &name)).unwrap_or_else(|e| panic!("{name}: {e}"));
        let status = http_status(api.code, &api.msg);
        let (code, msg) = (api.code, api.msg.clone());
        let err = BinanceError::from_api(status, api, Some(3));
        let got = err.to_venue();
        assert_eq!(got.code(), expected_error_class(&name, code, &msg), "{name}: {got:?}");
        if let keel_core::venue::VenueError::Rejected { reason, .. } = &got {
            assert_eq!(reason, &msg, "{name}: venue reason kept");
        }
        if code == -1021 {
            assert!(err.needs_time_resync(), "{name}");
        }
        if code == -1007 {
            assert!(err.outcome_unknown() && !err.is_retryable(), "{name}");
        }
        n += 1;
    }
    assert!(n >= 30, "only {n} error fixtures found");
}

fn parse<T: serde::de::DeserializeOwned>(name: &str, v: &Value) -> T {
    serde_json::from_value(v.clone()).unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// Parses one fixture with the model Keel uses for it; returns false when the
/// payload has no typed model (it still must be valid JSON).
fn parse_fixture(name: &str, v: &Value) -> bool {
    let stem = name.trim_end_matches(".json");
    match stem {
        s if s.starts_with("error_") => {
            let _: ApiError = parse(name, v);
        }
        s if s.starts_with("filter_") => {
            let f: Filter = parse(name, v);
            let known = [
                "PRICE_FILTER",
                "LOT_SIZE",
                "MARKET_LOT_SIZE",
                "MIN_NOTIONAL",
                "NOTIONAL",
                "MAX_NUM_ORDERS",
                "PERCENT_PRICE_BY_SIDE",
            ];
            assert_eq!(f != Filter::Other, known.iter().any(|k| s == format!("filter_{k}")), "{name}: {f:?}");
        }
        s if s.starts_with("ratelimit_") => {
            let _: RateLimit = parse(name, v);
        }
        "rest_account" => {
            let a: Account = parse(name, v);
            assert!(a.can_trade && !a.balances.is_empty());
        }
        "rest_allOrders" | "rest_openOrders" => {
            let _: Vec<OrderInfo> = parse(name, v);
        }
        "rest_cancel_openOrders" => {
            for item in v.as_array().unwrap() {
                if item.get("orderId").is_some() {
                    let _: OrderInfo = parse(name, item);
                }
            }
        }
        "rest_avgPrice" => {
            let _: AvgPrice = parse(name, v);
        }
        "rest_cancel_order" | "rest_order_ack" | "rest_order_result" | "rest_query_order" => {
            let _: OrderInfo = parse(name, v);
        }
        "rest_order_full" => {
            let o: OrderInfo = parse(name, v);
            assert_eq!(o.fills.len(), 5);
            assert_eq!(o.fills[0].trade_id, 56);
        }
        "rest_depth" => {
            let _: Depth = parse(name, v);
        }
        s if s.starts_with("rest_exchangeInfo") => {
            let info: ExchangeInfo = parse(name, v);
            for s in &info.symbols {
                let i = instrument_of(s);
                assert_eq!(i.symbol.as_str(), s.symbol);
            }
        }
        "rest_klines" => {
            let k: Vec<Kline> = parse(name, v);
            assert_eq!(k[0].close_time, 1499644799999);
        }
        "rest_myTrades" => {
            let _: Vec<MyTrade> = parse(name, v);
        }
        "rest_ticker_bookTicker" => {
            let _: BookTickerRest = parse(name, v);
        }
        "rest_ticker_bookTicker_list" => {
            let _: Vec<BookTickerRest> = parse(name, v);
        }
        "rest_ticker_price" => {
            let _: PriceTicker = parse(name, v);
        }
        "rest_ticker_price_list" => {
            let _: Vec<PriceTicker> = parse(name, v);
        }
        "rest_time" => {
            let _: ServerTime = parse(name, v);
        }
        s if s.starts_with("ws_combined_") || s == "ws_serverShutdown_combined" => {
            let c: CombinedMessage = parse(name, v);
            let ev = StreamEvent::parse(&c.data).unwrap_or_else(|e| panic!("{name}: {e}"));
            if s == "ws_serverShutdown_combined" {
                assert_eq!(ev, StreamEvent::ServerShutdown);
            }
            if s == "ws_combined_kline" {
                assert!(matches!(ev, StreamEvent::Kline(_)));
            }
        }
        "ws_kline" | "ws_trade" | "ws_aggTrade" | "ws_bookTicker" | "ws_serverShutdown_raw" => {
            let ev = StreamEvent::parse(v).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert!(!matches!(ev, StreamEvent::Other(_)), "{name}: {ev:?}");
        }
        s if s.ends_with("_raw_legacy") => {
            let ev = UserDataEvent::parse(v).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert!(!matches!(ev, UserDataEvent::Other(_)), "{name}: {ev:?}");
        }
        "ws_executionReport"
        | "ws_outboundAccountPosition"
        | "ws_balanceUpdate"
        | "ws_eventStreamTerminated"
        | "ws_externalLockUpdate"
        | "ws_listStatus"
        | "wsapi_event_outboundAccountPosition"
        | "wsapi_serverShutdown" => {
            let m = WsApiMessage::parse(&v.to_string()).unwrap_or_else(|e| panic!("{name}: {e}"));
            let WsApiMessage::Event { event, .. } = m else { panic!("{name}: not an event") };
            let typed = !matches!(event, UserDataEvent::Other(_));
            assert_eq!(typed, stem != "ws_externalLockUpdate", "{name}: {event:?}");
        }
        s if s.starts_with("wsapi_") && v.get("method").is_none() => {
            let m = WsApiMessage::parse(&v.to_string()).unwrap_or_else(|e| panic!("{name}: {e}"));
            if let WsApiMessage::Response(r) = &m {
                assert_eq!(r.error.is_some(), r.status != 200, "{name}");
                if stem.starts_with("wsapi_order_place_") && r.status == 200 {
                    let _: OrderInfo = parse(name, r.result.as_ref().unwrap());
                }
            }
        }
        s if s.starts_with("ws_") => {
            // Other market streams and subscription control messages: the
            // parser must accept them without failing (they map to `Other`).
            if v.get("e").is_some() {
                StreamEvent::parse(v).unwrap_or_else(|e| panic!("{name}: {e}"));
            }
            return false;
        }
        _ => return false,
    }
    true
}

#[test]
fn every_fixture_parses() {
    let Some(dir) = fixtures() else { return };
    let mut typed = 0;
    let mut untyped = Vec::new();
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".json"))
        .collect();
    names.sort();
    for name in &names {
        let v = load(&dir, name);
        if parse_fixture(name, &v) {
            typed += 1;
        } else {
            untyped.push(name.clone());
        }
    }
    assert!(names.len() >= 150, "{} fixtures", names.len());
    assert!(typed >= 110, "typed {typed}; untyped: {untyped:?}");
    println!("{typed} typed, {} JSON-only: {untyped:?}", untyped.len());
}

#[test]
fn exchange_info_filters_become_instrument() {
    let Some(dir) = fixtures() else { return };
    let info: ExchangeInfo = serde_json::from_value(load(&dir, "rest_exchangeInfo_all_filters.json")).unwrap();
    let i = instrument_of(&info.symbols[0]);
    assert_eq!(i.tick_size, "0.000001".parse().unwrap());
    assert_eq!(i.step_size, "0.001".parse().unwrap());
    assert!(i.min_notional > rust_decimal::Decimal::ZERO);
    assert_eq!(i.max_num_orders, 25);
    let rl: Vec<u64> = info.rate_limits.iter().map(|r| r.window_ms()).collect();
    assert!(rl.contains(&60_000) && rl.contains(&10_000));
}

#[test]
fn order_list_fixtures_parse() {
    let Some(dir) = fixtures() else { return };
    let m = WsApiMessage::parse(&load(&dir, "ws_listStatus.json").to_string()).unwrap();
    let WsApiMessage::Event { event: UserDataEvent::ListStatus(ls), .. } = m else { panic!("{m:?}") };
    assert_eq!(
        (ls.order_list_id, ls.contingency_type.as_str(), ls.list_status_type.as_str(), ls.list_order_status.as_str()),
        (2, "OCO", "EXEC_STARTED", "EXECUTING")
    );
    assert_eq!(ls.list_client_order_id, "F4QN4G8DlFATFlIUQ0cjdD");
    assert_eq!(ls.orders.iter().map(|o| o.order_id).collect::<Vec<_>>(), vec![17, 18]);
    // DELETE openOrders answers orders and order lists in one array.
    let all = load(&dir, "rest_cancel_openOrders.json");
    let list: OrderListInfo = all
        .as_array()
        .and_then(|a| a.iter().find(|v| v.get("contingencyType").is_some()))
        .map(|v| serde_json::from_value(v.clone()).expect("an order list"))
        .expect("the fixture holds a list");
    assert_eq!((list.order_list_id, list.list_order_status.as_str()), (1929, "ALL_DONE"));
    assert_eq!(list.order_reports.len(), 2);
    assert!(list.order_reports.iter().all(|o| o.order_list_id == 1929 && o.status.as_deref() == Some("CANCELED")));
    // An executionReport names its list (`g`); without it, none (-1).
    let mut v = load(&dir, "ws_executionReport.json")["event"].clone();
    let er: ExecutionReport = serde_json::from_value(v.clone()).unwrap();
    assert_eq!(er.order_list_id, -1);
    v["g"] = 1929.into();
    let er: ExecutionReport = serde_json::from_value(v).unwrap();
    assert_eq!(er.order_list_id, 1929);
}

#[test]
fn execution_report_fixture_translates() {
    let Some(dir) = fixtures() else { return };
    let m = WsApiMessage::parse(&load(&dir, "ws_executionReport.json").to_string()).unwrap();
    let WsApiMessage::Event { subscription_id, event: UserDataEvent::ExecutionReport(er) } = m else { panic!("{m:?}") };
    assert_eq!(subscription_id, Some(0));
    let (report, fill) = keel_binance::user::translate_execution(&er).expect("a known side and status");
    assert_eq!(report.client_order_id, "mUvoqJxFIILMdfAW5iGSOW");
    assert_eq!(report.status, keel_core::order::OrderStatus::Accepted);
    assert_eq!(report.venue_order_id, "4293153");
    assert!(fill.is_none(), "t = -1 is no trade");
    // A trade report carries the fill; a cancel report names the order by `C`.
    let mut v = load(&dir, "ws_executionReport.json")["event"].clone();
    v["x"] = "TRADE".into();
    v["X"] = "PARTIALLY_FILLED".into();
    v["t"] = 77.into();
    v["l"] = "0.5".into();
    v["L"] = "0.1".into();
    v["n"] = "0.001".into();
    v["N"] = "BNB".into();
    let er: ExecutionReport = serde_json::from_value(v.clone()).unwrap();
    let (_, fill) = keel_binance::user::translate_execution(&er).expect("a known side and status");
    let fill = fill.unwrap();
    assert_eq!((fill.trade_id.clone(), fill.qty, fill.fee_asset.as_str()), (77.into(), "0.5".parse().unwrap(), "BNB"));
    v["x"] = "CANCELED".into();
    v["X"] = "CANCELED".into();
    v["c"] = "cancel-req-1".into();
    v["C"] = "orig-1".into();
    let er: ExecutionReport = serde_json::from_value(v).unwrap();
    let (report, _) = keel_binance::user::translate_execution(&er).expect("a known side and status");
    assert_eq!((report.client_order_id.as_str(), report.status), ("orig-1", keel_core::order::OrderStatus::Canceled));
}
