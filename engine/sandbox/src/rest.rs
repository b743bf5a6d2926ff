//! The sandbox's REST API (`/api/v3/*`): parameter parsing, API-key, signature
//! and timestamp validation, weights and rate limits, and the endpoints.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::Response;
use rust_decimal::Decimal;
use serde_json::{json, Value};

use keel_core::instrument::Instrument;
use keel_core::market::Bar;
use keel_core::order::{OrderType, Side, TimeInForce};
use keel_core::sim::NewOrder;
use keel_core::symbol::Symbol;

use super::exchange::{d8, execution_report, order_json, order_response, Reject, UserMsg, BAR_MS};
use super::{App, OrderFault, RestFault};

/// Request weight and order counters.
#[derive(Debug, Default)]
pub struct LimitCounters {
    minute: i64,
    weight: u64,
    orders: HashMap<u32, VecDeque<i64>>,
}

/// Parsed request parameters (query wins over body).
pub(crate) struct Params {
    map: HashMap<String, String>,
}

impl Params {
    pub(crate) fn from_pairs(pairs: Vec<(String, String)>) -> Self {
        Self { map: pairs.into_iter().collect() }
    }

    /// Binance's `-1104` when a parameter was sent that the endpoint does
    /// not read: "read 'N' parameter(s) but was sent 'M'".
    pub(crate) fn all_read(&self, known: &[&str]) -> Result<(), Reject> {
        let sent = self.map.len();
        let read = self.map.keys().filter(|k| known.contains(&k.as_str())).count();
        if read == sent {
            return Ok(());
        }
        Err(Reject::new(
            -1104,
            format!("Not all sent parameters were read; read '{read}' parameter(s) but was sent '{sent}'."),
        ))
    }

    pub(crate) fn get(&self, k: &str) -> Option<&str> {
        self.map.get(k).map(String::as_str).filter(|v| !v.is_empty())
    }

    pub(crate) fn req(&self, k: &str) -> Result<&str, Reject> {
        self.get(k).ok_or_else(|| {
            Reject::new(-1102, format!("Mandatory parameter '{k}' was not sent, was empty/null, or malformed."))
        })
    }

    pub(crate) fn dec(&self, k: &str) -> Result<Option<Decimal>, Reject> {
        match self.get(k) {
            None => Ok(None),
            Some(v) => {
                if !v.chars().all(|c| c.is_ascii_digit() || c == '.') {
                    return Err(Reject::new(-1100, format!("Illegal characters found in parameter '{k}'; legal range is '^([0-9]{{1,20}})(\\.[0-9]{{1,20}})?$'.")));
                }
                let d: Decimal = v
                    .parse()
                    .map_err(|_| Reject::new(-1100, format!("Illegal characters found in parameter '{k}'.")))?;
                if d.scale() > 8 {
                    return Err(Reject::new(-1111, format!("Parameter '{k}' has too much precision.")));
                }
                Ok(Some(d))
            }
        }
    }

    pub(crate) fn int(&self, k: &str) -> Result<Option<i64>, Reject> {
        match self.get(k) {
            None => Ok(None),
            Some(v) => v
                .parse()
                .map(Some)
                .map_err(|_| Reject::new(-1100, format!("Illegal characters found in parameter '{k}'."))),
        }
    }
}

fn reply(status: StatusCode, body: &Value, weight: u64, extra: &[(&str, String)]) -> Response {
    let mut resp = Response::new(Body::from(body.to_string()));
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert("content-type", HeaderValue::from_static("application/json;charset=UTF-8"));
    if let Ok(v) = HeaderValue::from_str(&weight.to_string()) {
        h.insert("x-mbx-used-weight-1m", v.clone());
        h.insert("x-mbx-used-weight", v);
    }
    for (k, v) in extra {
        if let (Ok(name), Ok(val)) = (axum::http::HeaderName::from_bytes(k.as_bytes()), HeaderValue::from_str(v)) {
            h.insert(name, val);
        }
    }
    resp
}

fn error_reply(r: &Reject, weight: u64, retry_after_s: Option<u64>) -> Response {
    let status = StatusCode::from_u16(crate::auth::http_status(r)).unwrap_or(StatusCode::BAD_REQUEST);
    let extra: Vec<(&str, String)> = retry_after_s.map(|s| vec![("retry-after", s.to_string())]).unwrap_or_default();
    reply(status, &json!({"code": r.code, "msg": r.msg}), weight, &extra)
}

/// Endpoint weight (request weight units).
fn weight_of(method: &Method, path: &str, p: &Params) -> u64 {
    let has_symbol = p.get("symbol").is_some();
    match (method.as_str(), path) {
        (_, "ping" | "time") => 1,
        (_, "exchangeInfo") => 20,
        (_, "depth") => match p.get("limit").and_then(|l| l.parse::<u32>().ok()).unwrap_or(100) {
            0..=100 => 5,
            101..=500 => 25,
            501..=1000 => 50,
            _ => 250,
        },
        (_, "klines" | "avgPrice") => 2,
        (_, "ticker/bookTicker" | "ticker/price") => {
            if has_symbol {
                2
            } else {
                4
            }
        }
        (_, "ticker/24hr") => {
            if has_symbol {
                2
            } else {
                80
            }
        }
        ("GET", "order") => 4,
        ("GET", "openOrders") => {
            if has_symbol {
                6
            } else {
                80
            }
        }
        ("GET", "allOrders" | "account" | "account/commission") => 20,
        ("POST", "order/test") if p.get("computeCommissionRates") == Some("true") => 20,
        ("GET", "myTrades") => {
            if p.get("orderId").is_some() {
                5
            } else {
                20
            }
        }
        _ => 1,
    }
}

fn is_signed(method: &Method, path: &str) -> bool {
    matches!(
        (method.as_str(), path),
        (_, "order" | "order/test" | "openOrders" | "allOrders" | "account" | "account/commission" | "myTrades")
    )
}

fn parse_pairs(s: &str) -> Vec<(String, String)> {
    serde_urlencoded::from_str::<Vec<(String, String)>>(s).unwrap_or_default()
}

/// The REST entry point (also the router's fallback).
pub(crate) async fn handle(
    State(app): State<Arc<App>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: String,
) -> Response {
    let latency = app.faults.latency();
    if latency > 0 {
        tokio::time::sleep(Duration::from_millis(latency)).await;
    }
    let Some(path) = uri.path().strip_prefix("/api/v3/") else {
        return reply(
            StatusCode::NOT_FOUND,
            &json!({"code": -1020, "msg": "This operation is not supported."}),
            0,
            &[],
        );
    };
    let path = path.to_string();
    app.faults.note_request(method.as_str(), &path);
    let raw_query = uri.query().unwrap_or("").to_string();
    let mut pairs = parse_pairs(&body);
    pairs.extend(parse_pairs(&raw_query));
    let params = Params::from_pairs(pairs);
    let now = app.faults.server_now_ms();

    // Weight accounting (per minute of server time).
    let weight = weight_of(&method, &path, &params);
    app.faults.charge_weight(weight);
    let (used, over) = {
        let mut l = app.limits.lock().unwrap_or_else(|p| p.into_inner());
        let minute = now.div_euclid(60_000);
        if l.minute != minute {
            l.minute = minute;
            l.weight = 0;
        }
        l.weight += weight;
        (l.weight, l.weight > app.cfg.weight_limit_1m)
    };
    let secs_to_minute = ((60_000 - now.rem_euclid(60_000)) as u64).div_ceil(1000);
    if app.faults.path_fails(&path) {
        return reply(
            StatusCode::SERVICE_UNAVAILABLE,
            &json!({"code": -1001, "msg": "Internal error; unable to process your request. Please try again."}),
            used,
            &[],
        );
    }
    if let Some(fault) = app.faults.next_rest_fault(now) {
        if let RestFault::Stall { hold_ms } = fault {
            tokio::time::sleep(Duration::from_millis(hold_ms)).await;
        }
        return match fault {
            RestFault::RateLimited { retry_after_s } => error_reply(
                &Reject::new(-1003, format!("Too much request weight used; current limit is {} request weight per 1 MINUTE. Please use WebSocket Streams for live updates to avoid polling the API.", app.cfg.weight_limit_1m)),
                used,
                Some(retry_after_s),
            ),
            RestFault::Banned { retry_after_s } => {
                let until = now + retry_after_s as i64 * 1000;
                let r = Reject::new(-1003, format!("Way too much request weight used; IP banned until {until}. Please use WebSocket Streams for live updates to avoid bans."));
                let mut resp = error_reply(&r, used, Some(retry_after_s));
                *resp.status_mut() = StatusCode::IM_A_TEAPOT;
                resp
            }
            // A stalled request then fails (its client gave up long ago).
            RestFault::ServerError | RestFault::Stall { .. } => reply(StatusCode::SERVICE_UNAVAILABLE, &json!({"code": -1001, "msg": "Internal error; unable to process your request. Please try again."}), used, &[]),
        };
    }
    if over {
        return error_reply(
            &Reject::new(-1003, format!("Too much request weight used; current limit is {} request weight per 1 MINUTE. Please use WebSocket Streams for live updates to avoid polling the API.", app.cfg.weight_limit_1m)),
            used,
            Some(secs_to_minute),
        );
    }

    let account = if is_signed(&method, &path) {
        match authenticate(&app, &headers, &raw_query, &body, &params, now) {
            Ok(a) => Some(a),
            Err(r) => return error_reply(&r, used, None),
        }
    } else {
        None
    };

    let result = match (method.as_str(), path.as_str(), account) {
        ("GET", "ping", _) => Ok(json!({})),
        ("GET", "time", _) => Ok(json!({"serverTime": now})),
        ("GET", "exchangeInfo", _) => exchange_info(&app, &params, now),
        ("GET", "klines" | "uiKlines", _) => klines(&app, &params),
        ("GET", "depth", _) => depth(&app, &params),
        ("GET", "ticker/bookTicker", _) => tickers(&app, &params, book_ticker_json),
        ("GET", "ticker/price", _) => tickers(&app, &params, price_ticker_json),
        ("GET", "ticker/24hr", _) => tickers(&app, &params, ticker_24h_json),
        ("GET", "avgPrice", _) => avg_price(&app, &params),
        ("POST", "order", Some(acc)) => return place_order(&app, &params, acc, now, used).await,
        ("POST", "order/test", Some(acc)) => order_test(&app, &params, acc),
        ("GET", "account/commission", Some(acc)) => account_commission(&app, &params, acc),
        ("GET", "order", Some(acc)) => query_order(&app, &params, acc),
        ("DELETE", "order", Some(acc)) => cancel_order(&app, &params, acc, now),
        ("GET", "openOrders", Some(acc)) => open_orders(&app, &params, acc),
        ("DELETE", "openOrders", Some(acc)) => cancel_all(&app, &params, acc, now),
        ("GET", "allOrders", Some(acc)) => all_orders(&app, &params, acc),
        ("GET", "account", Some(acc)) => account_info(&app, &params, acc, now),
        ("GET", "myTrades", Some(acc)) => my_trades(&app, &params, acc),
        ("POST" | "PUT" | "DELETE", "userDataStream", _) => {
            return reply(
                StatusCode::GONE,
                &json!({"code": -1020, "msg": "This operation is not supported."}),
                used,
                &[],
            );
        }
        _ => {
            return reply(
                StatusCode::NOT_FOUND,
                &json!({"code": -1020, "msg": "This operation is not supported."}),
                used,
                &[],
            )
        }
    };
    match result {
        Ok(v) => reply(StatusCode::OK, &v, used, &[]),
        Err(r) => error_reply(&r, used, None),
    }
}

/// `POST /api/v3/order/test`: validates like an order and places nothing;
/// with `computeCommissionRates=true` it answers the rates the order would pay.
pub(crate) fn order_test(app: &App, p: &Params, account: u32) -> Result<Value, Reject> {
    parse_new_order(app, p, account)?;
    match p.get("computeCommissionRates") {
        None | Some("false") => Ok(json!({})),
        Some("true") => {
            let (maker, taker) = commission_rates(app);
            let zero = d8(Decimal::ZERO);
            Ok(json!({
                "standardCommissionForOrder": {"maker": maker, "taker": taker},
                "specialCommissionForOrder": {"maker": zero, "taker": zero},
                "taxCommissionForOrder": {"maker": zero, "taker": zero},
                "discount": no_discount(),
            }))
        }
        Some(_) => Err(Reject::new(-1100, "Illegal characters found in parameter 'computeCommissionRates'.")),
    }
}

/// `GET /api/v3/account/commission`: the account's rates for a symbol (the
/// sandbox charges the same to every account, with no special, tax or BNB part).
fn account_commission(app: &App, p: &Params, _account: u32) -> Result<Value, Reject> {
    let symbol = p.req("symbol")?;
    instrument(app, symbol)?;
    let (maker, taker) = commission_rates(app);
    let zero = d8(Decimal::ZERO);
    Ok(json!({
        "symbol": symbol,
        "standardCommission": {"maker": maker, "taker": taker, "buyer": zero, "seller": zero},
        "specialCommission": {"maker": zero, "taker": zero, "buyer": zero, "seller": zero},
        "taxCommission": {"maker": zero, "taker": zero, "buyer": zero, "seller": zero},
        "discount": no_discount(),
    }))
}

/// Maker and taker rates as Binance writes them (a fraction, 8 decimals).
fn commission_rates(app: &App) -> (String, String) {
    let rate = |bps: Decimal| d8(bps / Decimal::new(10_000, 0));
    (rate(app.cfg.maker_fee_bps), rate(app.cfg.taker_fee_bps))
}

fn no_discount() -> Value {
    json!({"enabledForAccount": false, "enabledForSymbol": false, "discountAsset": "BNB", "discount": d8(Decimal::ZERO)})
}

/// Validates API key, signature, timestamp and recvWindow; returns the account id.
fn authenticate(
    app: &App,
    headers: &HeaderMap,
    raw_query: &str,
    body: &str,
    p: &Params,
    now: i64,
) -> Result<u32, Reject> {
    let key = headers.get("x-mbx-apikey").and_then(|v| v.to_str().ok()).unwrap_or("");
    if key.is_empty() {
        return Err(Reject::new(-2014, "API-key format invalid."));
    }
    let Some(acc) = app.ex.keys.get(key) else {
        return Err(Reject::new(-2015, "Invalid API-key, IP, or permissions for action."));
    };
    let signature = p.req("signature")?;
    let ts = p.int("timestamp")?.ok_or_else(|| {
        Reject::new(-1102, "Mandatory parameter 'timestamp' was not sent, was empty/null, or malformed.")
    })?;
    let recv_window: Decimal = match p.get("recvWindow") {
        None => Decimal::new(5000, 0),
        Some(v) => v.parse().map_err(|_| Reject::new(-1100, "Illegal characters found in parameter 'recvWindow'."))?,
    };
    if recv_window > Decimal::new(60_000, 0) || recv_window <= Decimal::ZERO {
        return Err(Reject::new(-1131, "recvWindow must be less than 60000"));
    }
    if !acc.auth.rest_valid(raw_query, body, signature) {
        return Err(Reject::new(-1022, "Signature for this request is not valid."));
    }
    check_timing(ts, recv_window, now)?;
    Ok(acc.id)
}

/// Binance's timing security, shared by REST and the WebSocket API: a
/// `timestamp` in milliseconds or microseconds (told apart by size), at most
/// 1 s ahead of the server and no older than `recvWindow` (ms, decimals allowed).
pub(crate) fn check_timing(ts: i64, recv_window_ms: Decimal, now_ms: i64) -> Result<(), Reject> {
    // Milliseconds since the epoch have 13 digits until the year 2286; microseconds 16.
    let ts_us = if ts >= 100_000_000_000_000 { ts } else { ts.saturating_mul(1000) };
    let now_us = now_ms.saturating_mul(1000);
    if ts_us >= now_us + 1_000_000 {
        return Err(Reject::new(-1021, "Timestamp for this request was 1000ms ahead of the server's time."));
    }
    if Decimal::from(now_us - ts_us) > recv_window_ms * Decimal::ONE_THOUSAND {
        return Err(Reject::new(-1021, "Timestamp for this request is outside of the recvWindow."));
    }
    Ok(())
}

fn instrument(app: &App, symbol: &str) -> Result<Instrument, Reject> {
    app.ex.lock().core().instrument(symbol).cloned().ok_or_else(|| Reject::new(-1121, "Invalid symbol."))
}

fn status_name(s: &keel_core::instrument::SymbolStatus) -> String {
    use keel_core::instrument::SymbolStatus as S;
    match s {
        S::Trading => "TRADING".into(),
        S::Halt => "HALT".into(),
        S::Break => "BREAK".into(),
        S::CancelOnly => "CANCEL_ONLY".into(),
        S::EndOfDay => "END_OF_DAY".into(),
        S::Other(o) => o.clone(),
    }
}

fn symbol_json(i: &Instrument, app: &App) -> Value {
    let notional = app.cfg.symbols.iter().find(|s| s.symbol == i.symbol.as_str());
    let _ = notional;
    json!({
        "symbol": i.symbol.as_str(),
        "status": status_name(&i.status),
        "baseAsset": i.base_asset,
        "baseAssetPrecision": 8,
        "quoteAsset": i.quote_asset,
        "quotePrecision": 8,
        "quoteAssetPrecision": 8,
        "baseCommissionPrecision": 8,
        "quoteCommissionPrecision": 8,
        "orderTypes": ["LIMIT", "LIMIT_MAKER", "MARKET", "STOP_LOSS_LIMIT", "TAKE_PROFIT_LIMIT"],
        "icebergAllowed": false,
        "ocoAllowed": false,
        "otoAllowed": false,
        "opoAllowed": false,
        "quoteOrderQtyMarketAllowed": true,
        "allowTrailingStop": false,
        "cancelReplaceAllowed": false,
        "amendAllowed": false,
        "pegInstructionsAllowed": false,
        "isSpotTradingAllowed": true,
        "isMarginTradingAllowed": false,
        "filters": [
            {"filterType": "PRICE_FILTER", "minPrice": d8(i.min_price), "maxPrice": d8(i.max_price), "tickSize": d8(i.tick_size)},
            {"filterType": "LOT_SIZE", "minQty": d8(i.min_qty), "maxQty": d8(i.max_qty), "stepSize": d8(i.step_size)},
            {"filterType": "MARKET_LOT_SIZE", "minQty": d8(i.min_qty), "maxQty": d8(i.max_qty), "stepSize": d8(i.market_step_size)},
            {"filterType": "NOTIONAL", "minNotional": d8(i.min_notional), "applyMinToMarket": true, "maxNotional": d8(i.max_notional), "applyMaxToMarket": false, "avgPriceMins": 5},
            {"filterType": "MAX_NUM_ORDERS", "maxNumOrders": i.max_num_orders},
        ],
        "permissions": [],
        "permissionSets": [["SPOT"]],
        "defaultSelfTradePreventionMode": "NONE",
        "allowedSelfTradePreventionModes": ["NONE"],
    })
}

pub(crate) fn exchange_info(app: &App, p: &Params, now: i64) -> Result<Value, Reject> {
    let all = app.ex.lock().instruments();
    let wanted: Option<Vec<String>> = if let Some(s) = p.get("symbol") {
        Some(vec![s.to_string()])
    } else if let Some(list) = p.get("symbols") {
        Some(
            serde_json::from_str::<Vec<String>>(list)
                .map_err(|_| Reject::new(-1100, "Illegal characters found in parameter 'symbols'."))?,
        )
    } else {
        None
    };
    let mut symbols = Vec::new();
    for i in &all {
        if wanted.as_ref().is_none_or(|w| w.iter().any(|s| s == i.symbol.as_str())) {
            symbols.push(symbol_json(i, app));
        }
    }
    if let Some(w) = &wanted {
        if symbols.len() != w.len() {
            return Err(Reject::new(-1121, "Invalid symbol."));
        }
    }
    Ok(json!({
        "timezone": "UTC",
        "serverTime": now,
        "rateLimits": [
            {"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1, "limit": app.cfg.weight_limit_1m},
            {"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10, "limit": app.cfg.order_limit_10s},
            {"rateLimitType": "ORDERS", "interval": "DAY", "intervalNum": 1, "limit": app.cfg.order_limit_1d},
            {"rateLimitType": "RAW_REQUESTS", "interval": "MINUTE", "intervalNum": 5, "limit": 300000},
        ],
        "exchangeFilters": [],
        "symbols": symbols,
    }))
}

/// Interval string to milliseconds (what the sandbox can build from 1m bars).
pub(crate) fn interval_ms(s: &str) -> Option<i64> {
    let (num, unit) = s.split_at(s.len().checked_sub(1)?);
    let n: i64 = num.parse().ok()?;
    let unit_ms = match unit {
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        "w" => 604_800_000,
        _ => return None,
    };
    let ms = n * unit_ms;
    let allowed = ["1m", "3m", "5m", "15m", "30m", "1h", "2h", "4h", "6h", "8h", "12h", "1d", "3d", "1w"];
    allowed.contains(&s).then_some(ms)
}

/// Aggregates 1m bars into bars of `interval` (open times aligned to the interval).
pub(crate) fn aggregate(bars: &[Bar], interval: i64) -> Vec<Bar> {
    if interval == BAR_MS {
        return bars.to_vec();
    }
    let mut out: Vec<Bar> = Vec::new();
    for b in bars {
        let open = b.open_time - b.open_time.rem_euclid(interval);
        match out.last_mut() {
            Some(last) if last.open_time == open => {
                last.high = last.high.max(b.high);
                last.low = last.low.min(b.low);
                last.close = b.close;
                last.volume += b.volume;
            }
            _ => out.push(Bar { open_time: open, close_time: open + interval - 1, ..b.clone() }),
        }
    }
    out
}

fn klines(app: &App, p: &Params) -> Result<Value, Reject> {
    let symbol = p.req("symbol")?;
    let interval = interval_ms(p.req("interval")?).ok_or_else(|| Reject::new(-1120, "Invalid interval."))?;
    let limit = p.int("limit")?.unwrap_or(500).clamp(1, 1000) as usize;
    let start = p.int("startTime")?;
    let end = p.int("endTime")?;
    // Only closed bars: simulated time runs ahead of the wall clock inside a
    // bar, so a client could not tell the bar in progress by its close time.
    let (bars, _current) = app.ex.lock().bars(symbol).ok_or_else(|| Reject::new(-1121, "Invalid symbol."))?;
    let mut agg = aggregate(&bars, interval);
    // A longer interval's last bucket is complete only if its last minute closed.
    if agg.last().is_some_and(|b| bars.last().is_some_and(|l| l.close_time < b.close_time)) {
        agg.pop();
    }
    let filtered: Vec<&Bar> =
        agg.iter().filter(|b| start.is_none_or(|s| b.open_time >= s) && end.is_none_or(|e| b.open_time <= e)).collect();
    let chosen: Vec<&Bar> = if start.is_some() {
        filtered.into_iter().take(limit).collect()
    } else {
        let skip = filtered.len().saturating_sub(limit);
        filtered.into_iter().skip(skip).collect()
    };
    Ok(Value::Array(
        chosen
            .into_iter()
            .map(|b| {
                json!([
                    b.open_time,
                    d8(b.open),
                    d8(b.high),
                    d8(b.low),
                    d8(b.close),
                    d8(b.volume),
                    b.close_time,
                    d8(b.volume * b.close),
                    1,
                    "0",
                    "0",
                    "0"
                ])
            })
            .collect(),
    ))
}

fn depth(app: &App, p: &Params) -> Result<Value, Reject> {
    let symbol = p.req("symbol")?;
    let limit = p.int("limit")?.unwrap_or(100).clamp(1, 5000) as usize;
    let inst = instrument(app, symbol)?;
    let q = app.ex.lock().quote(symbol).ok_or_else(|| Reject::new(-1112, "No orders on book for symbol."))?;
    let levels = (app.cfg.depth_levels as usize + 1).min(limit);
    let bids: Vec<Value> = (0..levels)
        .map(|k| q.bid - inst.tick_size * Decimal::from(k as u64))
        .filter(|p| *p > Decimal::ZERO)
        .map(|p| json!([d8(p), d8(q.bid_qty)]))
        .collect();
    let asks: Vec<Value> =
        (0..levels).map(|k| json!([d8(q.ask + inst.tick_size * Decimal::from(k as u64)), d8(q.ask_qty)])).collect();
    Ok(json!({"lastUpdateId": q.ts_ms, "bids": bids, "asks": asks}))
}

fn book_ticker_json(app: &App, symbol: &str) -> Option<Value> {
    let q = app.ex.lock().quote(symbol)?;
    Some(
        json!({"symbol": symbol, "bidPrice": d8(q.bid), "bidQty": d8(q.bid_qty), "askPrice": d8(q.ask), "askQty": d8(q.ask_qty)}),
    )
}

fn price_ticker_json(app: &App, symbol: &str) -> Option<Value> {
    let st = app.ex.lock();
    let price = st.core().last_price(symbol)?;
    Some(json!({"symbol": symbol, "price": d8(price)}))
}

fn ticker_24h_json(app: &App, symbol: &str) -> Option<Value> {
    let st = app.ex.lock();
    let (mut bars, current) = st.bars(symbol)?;
    bars.extend(current);
    let q = st.quote(symbol)?;
    drop(st);
    let window: Vec<&Bar> = bars.iter().rev().take(1440).collect();
    let first = window.last()?;
    let last = window.first()?;
    let high = window.iter().map(|b| b.high).max().unwrap_or_default();
    let low = window.iter().map(|b| b.low).min().unwrap_or_default();
    let volume: Decimal = window.iter().map(|b| b.volume).sum();
    let quote_volume: Decimal = window.iter().map(|b| b.volume * b.close).sum();
    let change = last.close - first.open;
    let pct =
        if first.open.is_zero() { Decimal::ZERO } else { (change * Decimal::ONE_HUNDRED / first.open).round_dp(3) };
    let wavg = if volume.is_zero() { last.close } else { (quote_volume / volume).round_dp(8) };
    Some(json!({
        "symbol": symbol, "priceChange": d8(change), "priceChangePercent": pct.to_string(), "weightedAvgPrice": d8(wavg),
        "prevClosePrice": d8(first.open), "lastPrice": d8(last.close), "lastQty": "0.00000000",
        "bidPrice": d8(q.bid), "bidQty": d8(q.bid_qty), "askPrice": d8(q.ask), "askQty": d8(q.ask_qty),
        "openPrice": d8(first.open), "highPrice": d8(high), "lowPrice": d8(low), "volume": d8(volume), "quoteVolume": d8(quote_volume),
        "openTime": first.open_time, "closeTime": last.close_time, "firstId": 0, "lastId": 0, "count": window.len(),
    }))
}

fn tickers(app: &App, p: &Params, one: fn(&App, &str) -> Option<Value>) -> Result<Value, Reject> {
    if let Some(s) = p.get("symbol") {
        instrument(app, s)?;
        return one(app, s).ok_or_else(|| Reject::new(-1121, "Invalid symbol."));
    }
    let names: Vec<String> = match p.get("symbols") {
        Some(list) => serde_json::from_str(list)
            .map_err(|_| Reject::new(-1100, "Illegal characters found in parameter 'symbols'."))?,
        None => app.ex.lock().instruments().iter().map(|i| i.symbol.to_string()).collect(),
    };
    let mut out = Vec::new();
    for n in names {
        out.push(one(app, &n).ok_or_else(|| Reject::new(-1121, "Invalid symbol."))?);
    }
    Ok(Value::Array(out))
}

fn avg_price(app: &App, p: &Params) -> Result<Value, Reject> {
    let symbol = p.req("symbol")?;
    let (bars, current) = app.ex.lock().bars(symbol).ok_or_else(|| Reject::new(-1121, "Invalid symbol."))?;
    let last5: Vec<&Bar> = bars.iter().rev().take(5).collect();
    let price = if last5.is_empty() {
        current.as_ref().map(|b| b.close).unwrap_or_default()
    } else {
        last5.iter().map(|b| b.close).sum::<Decimal>() / Decimal::from(last5.len() as u64)
    };
    let close_time = last5.first().map(|b| b.close_time).unwrap_or_default();
    Ok(json!({"mins": 5, "price": d8(price.round_dp(8)), "closeTime": close_time}))
}

/// A validated new-order request and its response type.
pub(crate) struct ParsedOrder {
    pub new: NewOrder,
    pub resp_type: String,
}

/// What `POST /api/v3/order` (and `order.place` on the WebSocket API) read:
/// the documented parameters, plus the request's own (`apiKey` on the WS-API).
const NEW_ORDER_PARAMS: &[&str] = &[
    "symbol",
    "side",
    "type",
    "timeInForce",
    "quantity",
    "quoteOrderQty",
    "price",
    "newClientOrderId",
    "strategyId",
    "strategyType",
    "stopPrice",
    "trailingDelta",
    "icebergQty",
    "newOrderRespType",
    "selfTradePreventionMode",
    "pegPriceType",
    "pegOffsetValue",
    "pegOffsetType",
    "recvWindow",
    "timestamp",
    "signature",
    "apiKey",
    "computeCommissionRates",
];

pub(crate) fn parse_new_order(app: &App, p: &Params, account: u32) -> Result<ParsedOrder, Reject> {
    p.all_read(NEW_ORDER_PARAMS)?;
    let symbol = p.req("symbol")?;
    // exchangeInfo allows only NONE here (allowedSelfTradePreventionModes).
    match p.get("selfTradePreventionMode") {
        None | Some("NONE") => {}
        Some("EXPIRE_TAKER" | "EXPIRE_MAKER" | "EXPIRE_BOTH" | "DECREMENT" | "TRANSFER") => {
            return Err(Reject::new(-1013, "This symbol does not allow the specified self-trade prevention mode."))
        }
        Some(_) => return Err(Reject::new(-1100, "Illegal characters found in parameter 'selfTradePreventionMode'.")),
    }
    let inst = instrument(app, symbol)?;
    let side = match p.req("side")? {
        "BUY" => Side::Buy,
        "SELL" => Side::Sell,
        _ => return Err(Reject::new(-1117, "Invalid side.")),
    };
    let type_s = p.req("type")?;
    let tif = match p.get("timeInForce") {
        None => None,
        Some("GTC") => Some(TimeInForce::Gtc),
        Some("IOC") => Some(TimeInForce::Ioc),
        Some("FOK") => Some(TimeInForce::Fok),
        Some(_) => return Err(Reject::new(-1115, "Invalid timeInForce.")),
    };
    let price = p.dec("price")?;
    let stop = p.dec("stopPrice")?;
    let qty = p.dec("quantity")?;
    let quote_qty = p.dec("quoteOrderQty")?;
    let need_price = |v: Option<Decimal>, name: &str| {
        v.ok_or_else(|| {
            Reject::new(-1102, format!("Mandatory parameter '{name}' was not sent, was empty/null, or malformed."))
        })
    };
    let need_tif = || {
        tif.ok_or_else(|| {
            Reject::new(-1102, "Mandatory parameter 'timeInForce' was not sent, was empty/null, or malformed.")
        })
    };
    let (order_type, tif, maker_only) = match type_s {
        "LIMIT" => (OrderType::Limit { price: need_price(price, "price")? }, need_tif()?, false),
        "LIMIT_MAKER" => (OrderType::Limit { price: need_price(price, "price")? }, TimeInForce::Gtc, true),
        "MARKET" => {
            if tif.is_some() {
                return Err(Reject::new(-1106, "Parameter 'timeInForce' sent when not required."));
            }
            // Binance echoes GTC for market orders (they execute at once anyway).
            (OrderType::Market, TimeInForce::Gtc, false)
        }
        "STOP_LOSS_LIMIT" | "TAKE_PROFIT_LIMIT" => {
            let stop = need_price(stop, "stopPrice")?;
            // A stop-loss buy triggers above the market, a take-profit buy
            // below it (sells the other way round); one already on the wrong
            // side would trigger at once, which Binance refuses.
            if let Some(q) = app.ex.lock().quote(symbol) {
                let market = if side == Side::Buy { q.ask } else { q.bid };
                let loss = type_s == "STOP_LOSS_LIMIT";
                let wants_above = (side == Side::Buy) == loss;
                if (wants_above && stop <= market) || (!wants_above && stop >= market) {
                    return Err(Reject::new(-2010, "Order would trigger immediately."));
                }
            }
            (OrderType::StopLimit { stop, price: need_price(price, "price")? }, need_tif()?, false)
        }
        "STOP_LOSS" | "TAKE_PROFIT" => return Err(Reject::new(-2010, "Unsupported order combination")),
        _ => return Err(Reject::new(-1116, "Invalid orderType.")),
    };
    let qty = match (qty, quote_qty, &order_type) {
        (Some(q), None, _) => q,
        (None, Some(qq), OrderType::Market) => {
            let q = app.ex.lock().quote(symbol).ok_or_else(|| Reject::new(-2010, "Market is closed."))?;
            let px = if side == Side::Buy { q.ask } else { q.bid };
            if px.is_zero() {
                return Err(Reject::new(-2010, "Market is closed."));
            }
            inst.round_qty(qq / px, true)
        }
        (Some(_), Some(_), _) => return Err(Reject::new(-1128, "Combination of optional parameters invalid.")),
        (None, _, _) => {
            return Err(Reject::new(
                -1102,
                "Mandatory parameter 'quantity' was not sent, was empty/null, or malformed.",
            ))
        }
    };
    // Filters the core does not check: tick and step multiples.
    if let Some(px) = order_type.limit_price() {
        if !inst.tick_size.is_zero() && !(px % inst.tick_size).is_zero() {
            return Err(Reject::new(-1013, "Filter failure: PRICE_FILTER"));
        }
    }
    let step = if order_type.is_market() { inst.market_step_size } else { inst.step_size };
    if !step.is_zero() && !(qty % step).is_zero() {
        return Err(Reject::new(
            -1013,
            if order_type.is_market() { "Filter failure: MARKET_LOT_SIZE" } else { "Filter failure: LOT_SIZE" },
        ));
    }
    let reference = match order_type.limit_price() {
        Some(px) => px,
        None => app.ex.lock().quote(symbol).map(|q| if side == Side::Buy { q.ask } else { q.bid }).unwrap_or_default(),
    };
    inst.check(qty, reference, order_type.is_market())
        .map_err(|v| super::exchange::reject_of(&keel_core::sim::MatchError::Filter(v)))?;
    if inst.max_num_orders > 0 && !order_type.is_market() {
        let open = app.ex.lock().core().open_orders(account, Some(symbol)).len();
        if open >= inst.max_num_orders as usize {
            return Err(Reject::new(-1013, "Filter failure: MAX_NUM_ORDERS"));
        }
    }
    if maker_only {
        if let (Some(q), Some(px)) = (app.ex.lock().quote(symbol), order_type.limit_price()) {
            let crosses = match side {
                Side::Buy => px >= q.ask,
                Side::Sell => px <= q.bid,
            };
            if crosses {
                return Err(Reject::new(-2010, "Order would immediately match and take."));
            }
        }
    }
    let resp_type = match p.get("newOrderRespType") {
        Some(t @ ("ACK" | "RESULT" | "FULL")) => t.to_string(),
        Some(_) => return Err(Reject::new(-1100, "Illegal characters found in parameter 'newOrderRespType'.")),
        None if matches!(type_s, "LIMIT" | "MARKET") => "FULL".into(),
        None => "ACK".into(),
    };
    let client_order_id = match p.get("newClientOrderId") {
        Some(c) => {
            if c.len() > 36 || !c.chars().all(|ch| ch.is_ascii_alphanumeric() || "._-:/".contains(ch)) {
                return Err(Reject::new(-1100, "Illegal characters found in parameter 'newClientOrderId'."));
            }
            c.to_string()
        }
        None => app.ex.lock().auto_client_id(),
    };
    Ok(ParsedOrder {
        new: NewOrder { account, client_order_id, symbol: Symbol::new(symbol), side, order_type, qty, tif },
        resp_type,
    })
}

/// Counts an order against the per-account order limits; `Err` with the retry time.
fn count_order(app: &App, account: u32, now: i64) -> Result<(u64, u64), (Reject, u64)> {
    let mut l = app.limits.lock().unwrap_or_else(|p| p.into_inner());
    let q = l.orders.entry(account).or_default();
    while q.front().is_some_and(|t| *t <= now - 86_400_000) {
        q.pop_front();
    }
    let in_10s = q.iter().filter(|t| **t > now - 10_000).count() as u64;
    let in_day = q.len() as u64;
    if in_10s >= app.cfg.order_limit_10s {
        let oldest = q.iter().find(|t| **t > now - 10_000).copied().unwrap_or(now);
        let wait = ((oldest + 10_000 - now).max(0) as u64).div_ceil(1000).max(1);
        return Err((
            Reject::new(
                -1015,
                format!("Too many new orders; current limit is {} orders per 10 SECOND.", app.cfg.order_limit_10s),
            ),
            wait,
        ));
    }
    if in_day >= app.cfg.order_limit_1d {
        return Err((
            Reject::new(
                -1015,
                format!("Too many new orders; current limit is {} orders per DAY.", app.cfg.order_limit_1d),
            ),
            3600,
        ));
    }
    q.push_back(now);
    Ok((in_10s + 1, in_day + 1))
}

/// The order counts after a placement (`X-MBX-ORDER-COUNT-10S`, `-1D`).
pub(crate) struct Placed {
    pub order: keel_core::sim::SimOrder,
    pub execs: Vec<keel_core::sim::Execution>,
    pub resp_type: String,
    pub counts: (u64, u64),
}

/// Validates, counts and executes a new order and publishes its user events.
/// `Err` carries the reject and an optional `Retry-After` (seconds).
pub(crate) fn place_core(app: &App, p: &Params, account: u32, now: i64) -> Result<Placed, (Reject, Option<u64>)> {
    if app.ex.keys.values().any(|k| k.id == account && !k.can_trade) {
        return Err((Reject::new(-2010, "This action is disabled on this account."), None));
    }
    let parsed = parse_new_order(app, p, account).map_err(|r| (r, None))?;
    let counts = count_order(app, account, now).map_err(|(r, wait)| (r, Some(wait)))?;
    let mut st = app.ex.lock();
    let (order, execs) = st.place(parsed.new.clone(), now).map_err(|r| (r, None))?;
    // Binance first reports the order as NEW, then each execution.
    let mut first = order.clone();
    first.status = keel_core::order::OrderStatus::Accepted;
    first.filled_qty = Decimal::ZERO;
    first.filled_quote = Decimal::ZERO;
    let new_exec = keel_core::sim::Execution { order: first, fill: None };
    let _ = app.ex.user_tx.send(Arc::new(UserMsg { account, event: execution_report(&new_exec, now, Some("NEW")) }));
    st.publish_executions(&app.ex.user_tx, &execs, now);
    if execs.is_empty() {
        if let Some(inst) = st.core().instrument(order.symbol.as_str()) {
            let assets = [inst.base_asset.clone(), inst.quote_asset.clone()];
            st.publish_balances(&app.ex.user_tx, account, &assets, now);
        }
    }
    Ok(Placed { order, execs, resp_type: parsed.resp_type, counts })
}

async fn place_order(app: &App, p: &Params, account: u32, mut now: i64, used: u64) -> Response {
    match app.faults.peek_order_fault() {
        Some(OrderFault::ErrorBeforeExecute) => {
            let _ = app.faults.next_order_fault();
            let body =
                json!({"code": -1001, "msg": "Internal error; unable to process your request. Please try again."});
            return reply(StatusCode::SERVICE_UNAVAILABLE, &body, used, &[]);
        }
        Some(OrderFault::DelayBeforeExecute { hold_ms }) => {
            let _ = app.faults.next_order_fault();
            tokio::time::sleep(Duration::from_millis(hold_ms)).await;
            now = app.faults.server_now_ms();
        }
        _ => {}
    }
    let placed = match place_core(app, p, account, now) {
        Ok(x) => x,
        Err((r, wait)) => return error_reply(&r, used, wait),
    };
    let (c10, c1d) = placed.counts;
    let counts = [("x-mbx-order-count-10s", c10.to_string()), ("x-mbx-order-count-1d", c1d.to_string())];
    // Only a fault that acts after execution is taken here: the next one
    // may belong to the next order.
    let after = match app.faults.peek_order_fault() {
        Some(f @ (OrderFault::ErrorAfterExecute | OrderFault::TimeoutAfterExecute { .. })) => {
            let _ = app.faults.next_order_fault();
            Some(f)
        }
        _ => None,
    };
    match after {
        Some(OrderFault::ErrorAfterExecute) => {
            return reply(
                StatusCode::SERVICE_UNAVAILABLE,
                &json!({"code": -1007, "msg": "Timeout waiting for response from backend server. Send status unknown; execution status unknown."}),
                used,
                &[],
            );
        }
        Some(OrderFault::TimeoutAfterExecute { hold_ms }) => tokio::time::sleep(Duration::from_millis(hold_ms)).await,
        Some(OrderFault::ErrorBeforeExecute | OrderFault::DelayBeforeExecute { .. }) | None => {}
    }
    let body = order_response(&placed.order, &placed.execs, &placed.resp_type, now);
    reply(StatusCode::OK, &body, used, &counts)
}

fn find_order(app: &App, p: &Params, account: u32) -> Result<(String, String), Reject> {
    let symbol = p.req("symbol")?.to_string();
    let cid = match (p.int("orderId")?, p.get("origClientOrderId")) {
        (Some(id), orig) => {
            let cid = app
                .ex
                .lock()
                .client_id_of(account, id as u64)
                .ok_or_else(|| Reject::new(-2013, "Order does not exist."))?;
            if orig.is_some_and(|o| o != cid) {
                return Err(Reject::new(-2039, "Client order ID is not correct for this order ID."));
            }
            cid
        }
        (None, Some(orig)) => orig.to_string(),
        (None, None) => {
            return Err(Reject::new(
                -1102,
                "Param 'origClientOrderId' or 'orderId' must be sent, but both were empty/null!",
            ))
        }
    };
    Ok((symbol, cid))
}

pub(crate) fn query_order(app: &App, p: &Params, account: u32) -> Result<Value, Reject> {
    instrument(app, p.req("symbol")?)?;
    let (symbol, cid) = find_order(app, p, account)?;
    let st = app.ex.lock();
    let o = st.core().order_by_client(account, &cid).filter(|o| o.symbol.as_str() == symbol);
    o.map(order_json).ok_or_else(|| Reject::new(-2013, "Order does not exist."))
}

fn cancel_one(
    app: &App,
    account: u32,
    symbol: &str,
    cid: &str,
    cancel_id: Option<&str>,
    now: i64,
) -> Result<Value, Reject> {
    let mut st = app.ex.lock();
    let cancel_id = cancel_id.map(str::to_string).unwrap_or_else(|| st.auto_client_id());
    let o = st.cancel(account, symbol, cid, now).map_err(|r| {
        if r.code == -2011 {
            Reject::new(-2011, "Unknown order sent.")
        } else {
            r
        }
    })?;
    let mut report =
        execution_report(&keel_core::sim::Execution { order: o.clone(), fill: None }, now, Some("CANCELED"));
    if let Value::Object(m) = &mut report {
        m.insert("c".into(), Value::String(cancel_id.clone()));
        m.insert("C".into(), Value::String(o.client_order_id.clone()));
    }
    let _ = app.ex.user_tx.send(Arc::new(UserMsg { account, event: report }));
    if let Some(inst) = st.core().instrument(symbol) {
        let assets = [inst.base_asset.clone(), inst.quote_asset.clone()];
        st.publish_balances(&app.ex.user_tx, account, &assets, now);
    }
    let mut v = order_json(&o);
    if let Value::Object(m) = &mut v {
        m.insert("origClientOrderId".into(), Value::String(o.client_order_id.clone()));
        m.insert("clientOrderId".into(), Value::String(cancel_id));
        m.insert("transactTime".into(), json!(now));
        for k in ["stopPrice", "icebergQty", "time", "updateTime", "isWorking", "workingTime"] {
            m.remove(k);
        }
    }
    Ok(v)
}

pub(crate) fn cancel_order(app: &App, p: &Params, account: u32, now: i64) -> Result<Value, Reject> {
    instrument(app, p.req("symbol")?)?;
    let (symbol, cid) = find_order(app, p, account).map_err(|r| {
        if r.code == -2013 {
            Reject::new(-2011, "Unknown order sent.")
        } else {
            r
        }
    })?;
    cancel_one(app, account, &symbol, &cid, p.get("newClientOrderId"), now)
}

fn cancel_all(app: &App, p: &Params, account: u32, now: i64) -> Result<Value, Reject> {
    let symbol = p.req("symbol")?;
    instrument(app, symbol)?;
    let open = app.ex.lock().core().open_orders(account, Some(symbol));
    if open.is_empty() {
        return Err(Reject::new(-2011, "Unknown order sent."));
    }
    let mut out = Vec::new();
    for o in open {
        out.push(cancel_one(app, account, symbol, &o.client_order_id, None, now)?);
    }
    Ok(Value::Array(out))
}

pub(crate) fn open_orders(app: &App, p: &Params, account: u32) -> Result<Value, Reject> {
    let symbol = p.get("symbol");
    if let Some(s) = symbol {
        instrument(app, s)?;
    }
    let list = app.ex.lock().core().open_orders(account, symbol);
    Ok(Value::Array(list.iter().map(order_json).collect()))
}

fn all_orders(app: &App, p: &Params, account: u32) -> Result<Value, Reject> {
    let symbol = p.req("symbol")?;
    instrument(app, symbol)?;
    let from = p.int("orderId")?.unwrap_or(0);
    let limit = p.int("limit")?.unwrap_or(500).clamp(1, 1000) as usize;
    let list = app.ex.lock().core().all_orders(account, symbol);
    let filtered: Vec<Value> = list.iter().filter(|o| o.order_id as i64 >= from).map(order_json).collect();
    let skip = if p.get("orderId").is_some() { 0 } else { filtered.len().saturating_sub(limit) };
    Ok(Value::Array(filtered.into_iter().skip(skip).take(limit).collect()))
}

pub(crate) fn account_info(app: &App, p: &Params, account: u32, now: i64) -> Result<Value, Reject> {
    let omit_zero = p.get("omitZeroBalances") == Some("true");
    let can_trade = app.ex.keys.values().any(|k| k.id == account && k.can_trade);
    let balances: Vec<Value> = app
        .ex
        .lock()
        .balances(account)
        .iter()
        .filter(|b| !omit_zero || !b.total().is_zero())
        .map(|b| json!({"asset": b.asset, "free": d8(b.free), "locked": d8(b.locked)}))
        .collect();
    let maker = (app.ex.fees.maker_bps).round().to_string().parse::<i64>().unwrap_or(0);
    let taker = (app.ex.fees.taker_bps).round().to_string().parse::<i64>().unwrap_or(0);
    let rate = |bps: Decimal| d8(bps / Decimal::new(10_000, 0));
    Ok(json!({
        "makerCommission": maker, "takerCommission": taker, "buyerCommission": 0, "sellerCommission": 0,
        "commissionRates": {"maker": rate(app.ex.fees.maker_bps), "taker": rate(app.ex.fees.taker_bps), "buyer": "0.00000000", "seller": "0.00000000"},
        "canTrade": can_trade, "canWithdraw": false, "canDeposit": false, "brokered": false,
        "requireSelfTradePrevention": false, "preventSor": false, "updateTime": now, "accountType": "SPOT",
        "balances": balances, "permissions": ["SPOT"], "uid": account,
    }))
}

fn my_trades(app: &App, p: &Params, account: u32) -> Result<Value, Reject> {
    let symbol = p.req("symbol")?;
    instrument(app, symbol)?;
    let from_id = p.int("fromId")?.map(|v| v.max(0) as u64);
    let order_id = p.int("orderId")?;
    let limit = p.int("limit")?.unwrap_or(500).clamp(1, 1000) as usize;
    let st = app.ex.lock();
    let fills = st.core().fills(account, symbol, from_id);
    let mut out = Vec::new();
    for f in &fills {
        let oid = st.core().order_by_client(account, &f.client_order_id).map(|o| o.order_id).unwrap_or(0);
        if order_id.is_some_and(|id| id as u64 != oid) {
            continue;
        }
        out.push(json!({
            "symbol": symbol, "id": f.trade_id, "orderId": oid, "orderListId": -1,
            "price": d8(f.price), "qty": d8(f.qty), "quoteQty": d8(f.price * f.qty),
            "commission": d8(f.fee), "commissionAsset": f.fee_asset, "time": f.ts_ms,
            "isBuyer": f.side == Side::Buy, "isMaker": f.is_maker, "isBestMatch": true,
        }));
    }
    let out: Vec<Value> = if from_id.is_some() {
        out.into_iter().take(limit).collect()
    } else {
        let skip = out.len().saturating_sub(limit);
        out.into_iter().skip(skip).collect()
    };
    Ok(Value::Array(out))
}
