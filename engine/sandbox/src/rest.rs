//! The sandbox's REST API (`/api/v3/*`): parameter parsing, API-key, signature
//! and timestamp validation, weights and rate limits, and the endpoints.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::Response;
use rust_decimal::Decimal;
use serde_json::{json, Value};

use keel_core::instrument::Instrument;
use keel_core::order::{OrderType, Side, TimeInForce};
use keel_core::sim::{NewOrder, OrderAsked};
use keel_core::symbol::Symbol;

use super::exchange::{d8, execution_report, order_json, order_response, Reject, UserMsg};
use super::limits::{self, Gate};
use super::market_rest::{self, Ticker};
use super::replace::Failed;
use super::{App, OrderFault, RestFault};

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

pub(crate) fn reply(status: StatusCode, body: &Value, weight: u64, extra: &[(&str, String)]) -> Response {
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

/// The `418` of a banned IP, with `Retry-After` until the ban lifts.
fn banned_reply(until_ms: i64, used: u64, retry_after_s: u64) -> Response {
    let mut resp = error_reply(&limits::banned(until_ms), used, Some(retry_after_s));
    *resp.status_mut() = StatusCode::IM_A_TEAPOT;
    resp
}

fn until_after(now_ms: i64, seconds: u64) -> i64 {
    now_ms.saturating_add(i64::try_from(seconds.saturating_mul(1000)).unwrap_or(i64::MAX))
}

/// Order entry and cancels that cost no weight when they succeed (Binance,
/// since 2026-04-02); failed ones are charged.
pub(crate) fn free_when_done(method: &Method, path: &str) -> bool {
    matches!(
        (method.as_str(), path),
        ("POST", "order" | "order/cancelReplace" | "orderList/oco") | ("DELETE", "order" | "openOrders" | "orderList")
    )
}

/// Endpoint weight (request weight units).
pub(crate) fn weight_of(method: &Method, path: &str, p: &Params) -> u64 {
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
        (_, "klines" | "uiKlines" | "avgPrice") => 2,
        (_, "trades" | "historicalTrades") => 25,
        (_, "aggTrades") => 4,
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
        ("GET", "order" | "orderList") => 4,
        ("GET", "openOrderList") => 6,
        ("GET", "allOrderList") => 20,
        ("GET", "openOrders") => {
            if has_symbol {
                6
            } else {
                80
            }
        }
        ("GET", "allOrders" | "account" | "account/commission") => 20,
        ("GET", "rateLimit/order") => 40,
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
        (
            _,
            "order"
                | "order/test"
                | "order/cancelReplace"
                | "openOrders"
                | "allOrders"
                | "account"
                | "account/commission"
                | "myTrades"
                | "rateLimit/order"
                | "order/oco"
                | "orderList"
                | "openOrderList"
                | "allOrderList"
                | "orderList/oco"
                | "orderList/oto"
                | "orderList/otoco"
                | "orderList/opo"
                | "orderList/opoco"
                | "order/amend/keepPriority"
        )
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
    if headers.contains_key("x-mbx-apikey") || pairs.iter().any(|(k, _)| k == "signature") {
        app.faults.note_signed_request();
    }
    let params = Params::from_pairs(pairs);
    let now = app.faults.server_now_ms();

    // Request weight, per IP and minute, shared with the WebSocket API.
    let weight = weight_of(&method, &path, &params);
    app.faults.charge_weight(weight);
    let gate = app.limits.charge(weight, now);
    let used = app.limits.used(now);
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
            RestFault::RateLimited { retry_after_s } => {
                error_reply(&app.limits.too_much_weight(), used, Some(retry_after_s))
            }
            RestFault::Banned { retry_after_s } => banned_reply(until_after(now, retry_after_s), used, retry_after_s),
            // A stalled request then fails (its client gave up long ago).
            RestFault::ServerError | RestFault::Stall { .. } => reply(
                StatusCode::SERVICE_UNAVAILABLE,
                &json!({"code": -1001, "msg": "Internal error; unable to process your request. Please try again."}),
                used,
                &[],
            ),
        };
    }
    match gate {
        Gate::Pass => {}
        Gate::Limited { retry_after_ms } => {
            return error_reply(&app.limits.too_much_weight(), used, Some(limits::retry_after_s(retry_after_ms)))
        }
        Gate::Banned { until_ms } => {
            return banned_reply(until_ms, used, limits::retry_after_s(until_ms - now));
        }
    }

    let account = if is_signed(&method, &path) {
        match authenticate(&app, &headers, &raw_query, &body, &params, now) {
            Ok(a) => Some(a),
            Err(r) => return error_reply(&r, used, None),
        }
    } else {
        None
    };

    app.catch_up(now);
    if let Some(known) = known_params(&method, &path) {
        let signed: &[&str] = if account.is_some() { &["timestamp", "signature", "recvWindow"] } else { &[] };
        let all: Vec<&str> = known.iter().chain(signed).copied().collect();
        if let Err(r) = params.all_read(&all) {
            return error_reply(&r, used, None);
        }
    }

    let result = match (method.as_str(), path.as_str(), account) {
        ("GET", "ping", _) => Ok(json!({})),
        ("GET", "time", _) => Ok(json!({"serverTime": now})),
        ("GET", "exchangeInfo", _) => exchange_info(&app, &params, now),
        ("GET", "klines" | "uiKlines", _) => market_rest::klines(&app, &params),
        ("GET", "depth", _) => market_rest::depth(&app, &params),
        ("GET", "trades", _) => market_rest::trades(&app, &params),
        ("GET", "historicalTrades", _) => market_rest::historical_trades(&app, &params),
        ("GET", "aggTrades", _) => market_rest::agg_trades(&app, &params),
        ("GET", "ticker/bookTicker", _) => market_rest::tickers(&app, &params, Ticker::Book, now),
        ("GET", "ticker/price", _) => market_rest::tickers(&app, &params, Ticker::Price, now),
        ("GET", "ticker/24hr", _) => market_rest::tickers(&app, &params, Ticker::Day, now),
        ("GET", "avgPrice", _) => market_rest::avg_price(&app, &params),
        ("POST", "order", Some(acc)) => return place_order(&app, &params, acc, now, weight).await,
        ("POST", "order/test", Some(acc)) => order_test(&app, &params, acc),
        ("POST", "order/cancelReplace", Some(acc)) => {
            return match super::replace::cancel_replace(&app, &params, acc, now) {
                Ok(v) => {
                    app.limits.refund(weight, now);
                    let (c10, c1d) = app.limits.order_counts(acc, now);
                    let counts =
                        [("x-mbx-order-count-10s", c10.to_string()), ("x-mbx-order-count-1d", c1d.to_string())];
                    reply(StatusCode::OK, &v, app.limits.used(now), &counts)
                }
                Err(Failed::Refused(r, wait)) => error_reply(&r, used, wait),
                Err(Failed::Parts { status, error, data }) => reply(
                    StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST),
                    &json!({"code": error.code, "msg": error.msg, "data": data}),
                    used,
                    &[],
                ),
            };
        }
        ("GET", "account/commission", Some(acc)) => account_commission(&app, &params, acc),
        ("GET", "order", Some(acc)) => query_order(&app, &params, acc),
        ("DELETE", "order", Some(acc)) => return cancel_with_faults(&app, &params, acc, now, weight).await,
        ("GET", "openOrders", Some(acc)) => open_orders(&app, &params, acc),
        ("DELETE", "openOrders", Some(acc)) => cancel_all(&app, &params, acc, now),
        ("GET", "allOrders", Some(acc)) => all_orders(&app, &params, acc),
        ("GET", "account", Some(acc)) => account_info(&app, &params, acc, now),
        ("GET", "myTrades", Some(acc)) => my_trades(&app, &params, acc),
        ("POST", "orderList/oco", Some(acc)) => {
            return match super::order_list::place_oco(&app, &params, acc, now) {
                Ok((v, (c10, c1d))) => {
                    app.limits.refund(weight, now);
                    let counts =
                        [("x-mbx-order-count-10s", c10.to_string()), ("x-mbx-order-count-1d", c1d.to_string())];
                    reply(StatusCode::OK, &v, app.limits.used(now), &counts)
                }
                Err((r, wait)) => error_reply(&r, used, wait),
            };
        }
        ("DELETE", "orderList", Some(acc)) => super::order_list::cancel(&app, &params, acc, now),
        ("GET", "orderList", Some(acc)) => super::order_list::query(&app, &params, acc),
        ("GET", "openOrderList", Some(acc)) => Ok(super::order_list::open(&app, acc)),
        ("GET", "allOrderList", Some(acc)) => super::order_list::all(&app, &params, acc),
        ("POST", "orderList/oto" | "orderList/otoco" | "orderList/opo" | "orderList/opoco", Some(_)) => {
            not_enabled(&app, &params, &path)
        }
        ("PUT", "order/amend/keepPriority", Some(_)) => not_enabled(&app, &params, &path),
        ("GET", "rateLimit/order", Some(acc)) => Ok(Value::Array(app.limits.orders_json(acc, now).into())),
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
        Ok(v) => {
            if free_when_done(&method, &path) {
                app.limits.refund(weight, now);
            }
            reply(StatusCode::OK, &v, app.limits.used(now), &[])
        }
        Err(r) => error_reply(&r, used, None),
    }
}

/// The parameters an endpoint reads, for Binance's `-1104` on any other
/// (`None`: the endpoint checks its own — order entry — or is refused anyway).
fn known_params(method: &Method, path: &str) -> Option<&'static [&'static str]> {
    const TICKER: &[&str] = &["symbol", "symbols", "symbolStatus"];
    Some(match (method.as_str(), path) {
        (_, "ping" | "time" | "rateLimit/order") => &[],
        (_, "exchangeInfo") => &["symbol", "symbols", "permissions", "showPermissionSets", "symbolStatus"],
        (_, "depth") => &["symbol", "limit", "symbolStatus"],
        (_, "trades") => &["symbol", "limit"],
        (_, "historicalTrades") => &["symbol", "limit", "fromId"],
        (_, "aggTrades") => &["symbol", "fromId", "startTime", "endTime", "limit"],
        (_, "klines" | "uiKlines") => &["symbol", "interval", "startTime", "endTime", "timeZone", "limit"],
        (_, "avgPrice") => &["symbol"],
        (_, "ticker/24hr") => &["symbol", "symbols", "type", "symbolStatus"],
        (_, "ticker/price" | "ticker/bookTicker") => TICKER,
        ("GET", "order") => &["symbol", "orderId", "origClientOrderId"],
        ("DELETE", "order") => &["symbol", "orderId", "origClientOrderId", "newClientOrderId", "cancelRestrictions"],
        (_, "openOrders") => &["symbol"],
        (_, "allOrders") => &["symbol", "orderId", "startTime", "endTime", "limit"],
        (_, "account") => &["omitZeroBalances"],
        (_, "account/commission") => &["symbol"],
        (_, "myTrades") => &["symbol", "orderId", "startTime", "endTime", "fromId", "limit"],
        ("GET", "orderList") => &["orderListId", "origClientOrderId"],
        ("DELETE", "orderList") => &["symbol", "orderListId", "listClientOrderId", "newClientOrderId"],
        ("GET", "openOrderList") => &[],
        ("GET", "allOrderList") => &["fromId", "startTime", "endTime", "limit"],
        _ => return None,
    })
}

/// Order lists and amends, which exchangeInfo says are not enabled
/// (`otoAllowed`, `opoAllowed`, `amendAllowed` false): Binance's refusal for
/// the symbol (`-2010`, `-2038` for an amend). OCO lists are served (see
/// `order_list`); the deprecated `order/oco` is not (as on the testnet).
fn not_enabled(app: &App, p: &Params, path: &str) -> Result<Value, Reject> {
    instrument(app, p.req("symbol")?)?;
    Err(match path {
        "order/amend/keepPriority" => Reject::new(-2038, "Order amend is not supported for this symbol."),
        "orderList/opo" | "orderList/opoco" => Reject::new(-2010, "OPO orders are not supported for this symbol."),
        // OTO and OTOCO have no message of their own in errors.md.
        _ => Reject::new(-2010, "Unsupported order combination"),
    })
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
pub(crate) fn account_commission(app: &App, p: &Params, _account: u32) -> Result<Value, Reject> {
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

pub(crate) fn instrument(app: &App, symbol: &str) -> Result<Instrument, Reject> {
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
        "orderTypes": ["LIMIT", "LIMIT_MAKER", "MARKET", "STOP_LOSS", "STOP_LOSS_LIMIT", "TAKE_PROFIT", "TAKE_PROFIT_LIMIT"],
        "icebergAllowed": false,
        "ocoAllowed": true,
        "otoAllowed": false,
        "opoAllowed": false,
        "quoteOrderQtyMarketAllowed": true,
        "allowTrailingStop": false,
        "cancelReplaceAllowed": true,
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
            {"filterType": "MAX_NUM_ORDER_LISTS", "maxNumOrderLists": super::order_list::MAX_NUM_ORDER_LISTS},
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

/// A validated new-order request and its response type.
pub(crate) struct ParsedOrder {
    pub new: NewOrder,
    pub resp_type: String,
    /// The order type as sent (`STOP_LOSS_LIMIT`, `LIMIT_MAKER`, …).
    pub kind: String,
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
    parse_order(app, p, account, &[])
}

/// Validates a new order's parameters and the symbol's filters — what
/// Binance checks before the order reaches the matching engine (see
/// [`matching_checks`] for the rest). `also_read` names the parameters of
/// an endpoint that carries more than the order (cancelReplace).
pub(crate) fn parse_order(app: &App, p: &Params, account: u32, also_read: &[&str]) -> Result<ParsedOrder, Reject> {
    let known: Vec<&str> = NEW_ORDER_PARAMS.iter().chain(also_read).copied().collect();
    p.all_read(&known)?;
    let symbol = p.req("symbol")?;
    self_trade_prevention(p)?;
    let inst = instrument(app, symbol)?;
    let side = match p.req("side")? {
        "BUY" => Side::Buy,
        "SELL" => Side::Sell,
        _ => return Err(Reject::new(-1117, "Invalid side.")),
    };
    let type_s = p.req("type")?;
    // exchangeInfo says icebergAllowed and allowTrailingStop are false.
    if p.get("icebergQty").is_some() {
        return Err(Reject::new(-2010, "Iceberg orders are not supported for this symbol."));
    }
    if p.get("trailingDelta").is_some() {
        return Err(Reject::new(-2010, "Trailing stop orders are not supported for this symbol."));
    }
    if p.get("pegPriceType").is_some() || p.get("pegOffsetValue").is_some() || p.get("pegOffsetType").is_some() {
        return Err(Reject::new(-2010, "Pegged orders are not supported for this symbol."));
    }
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
            (OrderType::StopLimit { stop, price: need_price(price, "price")? }, need_tif()?, false)
        }
        "STOP_LOSS" | "TAKE_PROFIT" => {
            // Executed as a market order once triggered: no price, no time in force.
            if tif.is_some() {
                return Err(Reject::new(-1106, "Parameter 'timeInForce' sent when not required."));
            }
            if price.is_some() {
                return Err(Reject::new(-1106, "Parameter 'price' sent when not required."));
            }
            (OrderType::StopMarket { stop: need_price(stop, "stopPrice")? }, TimeInForce::Gtc, false)
        }
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
    let resp_type = match p.get("newOrderRespType") {
        Some(t @ ("ACK" | "RESULT" | "FULL")) => t.to_string(),
        Some(_) => return Err(Reject::new(-1100, "Illegal characters found in parameter 'newOrderRespType'.")),
        None if matches!(type_s, "LIMIT" | "MARKET") => "FULL".into(),
        None => "ACK".into(),
    };
    let client_order_id = match p.get("newClientOrderId") {
        Some(c) => client_id("newClientOrderId", c)?.to_string(),
        None => app.ex.lock().auto_client_id(),
    };
    let asked = OrderAsked {
        quote_order_qty: quote_qty.filter(|_| order_type.is_market()),
        post_only: maker_only,
        fee_in_quote: false,
    };
    Ok(ParsedOrder {
        new: NewOrder { account, client_order_id, symbol: Symbol::new(symbol), side, order_type, qty, tif, asked },
        resp_type,
        kind: type_s.to_string(),
    })
}

/// The `selfTradePreventionMode` of an order or a list: exchangeInfo allows
/// only NONE (allowedSelfTradePreventionModes).
pub(crate) fn self_trade_prevention(p: &Params) -> Result<(), Reject> {
    match p.get("selfTradePreventionMode") {
        None | Some("NONE") => Ok(()),
        Some("EXPIRE_TAKER" | "EXPIRE_MAKER" | "EXPIRE_BOTH" | "DECREMENT" | "TRANSFER") => {
            Err(Reject::new(-1013, "This symbol does not allow the specified self-trade prevention mode."))
        }
        Some(_) => Err(Reject::new(-1100, "Illegal characters found in parameter 'selfTradePreventionMode'.")),
    }
}

/// What the matching engine refuses against the market at that moment: a
/// stop already on the wrong side of it (it would trigger at once) and a
/// post-only order that would take.
fn matching_checks(app: &App, parsed: &ParsedOrder) -> Result<(), Reject> {
    let new = &parsed.new;
    let Some(q) = app.ex.lock().quote(new.symbol.as_str()) else { return Ok(()) };
    let market = if new.side == Side::Buy { q.ask } else { q.bid };
    if let Some(stop) = new.order_type.stop_price() {
        // A stop-loss buy triggers above the market, a take-profit buy
        // below it (sells the other way round).
        let loss = parsed.kind.starts_with("STOP_LOSS");
        let wants_above = (new.side == Side::Buy) == loss;
        if (wants_above && stop <= market) || (!wants_above && stop >= market) {
            return Err(Reject::new(-2010, "Order would trigger immediately."));
        }
    }
    if let (true, Some(px)) = (new.asked.post_only, new.order_type.limit_price()) {
        let crosses = match new.side {
            Side::Buy => px >= q.ask,
            Side::Sell => px <= q.bid,
        };
        if crosses {
            return Err(Reject::new(-2010, "Order would immediately match and take."));
        }
    }
    Ok(())
}

/// Sends a validated order to the matching engine and publishes what it
/// did: the order as `NEW`, then each execution (or the balances it locked).
pub(crate) fn submit(
    app: &App,
    parsed: &ParsedOrder,
    now: i64,
) -> Result<(keel_core::sim::SimOrder, Vec<keel_core::sim::Execution>), Reject> {
    matching_checks(app, parsed)?;
    let account = parsed.new.account;
    let mut st = app.ex.lock();
    let (order, execs) = st.place(parsed.new.clone(), now)?;
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
    Ok((order, execs))
}

/// The legal form of a client order id on Binance spot.
const CLIENT_ID_RANGE: &str = "^[a-zA-Z0-9-_]{1,36}$";

/// A client order id parameter (`newClientOrderId`, a cancel's own id),
/// refused with `-1100` naming the legal range when it is outside it.
pub(crate) fn client_id<'a>(name: &str, value: &'a str) -> Result<&'a str, Reject> {
    let legal =
        (1..=36).contains(&value.len()) && value.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if legal {
        Ok(value)
    } else {
        Err(Reject::new(
            -1100,
            format!("Illegal characters found in parameter '{name}'; legal range is '{CLIENT_ID_RANGE}'."),
        ))
    }
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
    let counts = app.limits.count_order(account, now).map_err(|(r, wait)| (r, Some(limits::retry_after_s(wait))))?;
    let (order, execs) = submit(app, &parsed, now).map_err(|r| (r, None))?;
    Ok(Placed { order, execs, resp_type: parsed.resp_type, counts })
}

async fn place_order(app: &App, p: &Params, account: u32, mut now: i64, weight: u64) -> Response {
    let used = app.limits.used(now);
    match app.faults.take_before_execute_fault() {
        Some(OrderFault::ErrorBeforeExecute) => return unknown_reply(-1001, used),
        Some(OrderFault::DelayBeforeExecute { hold_ms }) => {
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
    match app.faults.take_after_execute_fault() {
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
    app.limits.refund(weight, now);
    reply(StatusCode::OK, &body, app.limits.used(now), &counts)
}

fn find_order(app: &App, p: &Params, account: u32) -> Result<(String, String), Reject> {
    find_order_by(app, p, account, "orderId", "origClientOrderId")
}

/// The symbol and client id of the order a request names by `id_key` (an
/// order id) and/or `orig_key` (a client id): by order id first, the client
/// id then checked against it (`-2039`).
pub(crate) fn find_order_by(
    app: &App,
    p: &Params,
    account: u32,
    id_key: &str,
    orig_key: &str,
) -> Result<(String, String), Reject> {
    let symbol = p.req("symbol")?.to_string();
    let cid = match (p.int(id_key)?, p.get(orig_key)) {
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
                format!("Param '{orig_key}' or '{id_key}' must be sent, but both were empty/null!"),
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

pub(crate) fn cancel_one(
    app: &App,
    account: u32,
    symbol: &str,
    cid: &str,
    cancel_id: Option<&str>,
    restrictions: Option<&str>,
    now: i64,
) -> Result<Value, Reject> {
    let mut st = app.ex.lock();
    // `cancelRestrictions`: cancel only an order in the named state.
    let wanted = match restrictions {
        None => None,
        Some("ONLY_NEW") => Some(keel_core::order::OrderStatus::Accepted),
        Some("ONLY_PARTIALLY_FILLED") => Some(keel_core::order::OrderStatus::PartiallyFilled),
        Some(_) => return Err(Reject::new(-1145, "Invalid cancelRestrictions")),
    };
    if let Some(want) = wanted {
        let status = st.core().order_by_client(account, cid).filter(|o| o.status.is_open()).map(|o| o.status);
        if status.is_some_and(|s| s != want) {
            return Err(Reject::new(-2011, "Order was not canceled due to cancel restrictions."));
        }
    }
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

/// `DELETE /api/v3/order` with any scripted cancel fault: `-1001` before
/// the cancel, `-1007` after it (outcome unknown to the client), or the
/// answer held back before or after it.
async fn cancel_with_faults(app: &App, p: &Params, account: u32, mut now: i64, weight: u64) -> Response {
    let fault = app.faults.next_cancel_fault();
    match fault {
        Some(OrderFault::ErrorBeforeExecute) => return unknown_reply(-1001, app.limits.used(now)),
        Some(OrderFault::DelayBeforeExecute { hold_ms }) => {
            tokio::time::sleep(Duration::from_millis(hold_ms)).await;
            now = app.faults.server_now_ms();
        }
        _ => {}
    }
    let result = cancel_order(app, p, account, now);
    match (fault, result) {
        (Some(OrderFault::ErrorAfterExecute), _) => unknown_reply(-1007, app.limits.used(now)),
        (fault, Ok(v)) => {
            if let Some(OrderFault::TimeoutAfterExecute { hold_ms }) = fault {
                tokio::time::sleep(Duration::from_millis(hold_ms)).await;
            }
            app.limits.refund(weight, now);
            reply(StatusCode::OK, &v, app.limits.used(now), &[])
        }
        (_, Err(r)) => error_reply(&r, app.limits.used(now), None),
    }
}

/// A `503` whose outcome the client cannot know: `-1001` (internal error)
/// or `-1007` (timeout; execution status unknown).
fn unknown_reply(code: i64, used: u64) -> Response {
    let msg = if code == -1007 {
        "Timeout waiting for response from backend server. Send status unknown; execution status unknown."
    } else {
        "Internal error; unable to process your request. Please try again."
    };
    reply(StatusCode::SERVICE_UNAVAILABLE, &json!({"code": code, "msg": msg}), used, &[])
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
    let cancel_id = p.get("newClientOrderId").map(|c| client_id("newClientOrderId", c)).transpose()?;
    // A leg of an open list: cancelling it cancels the list.
    let list =
        app.ex.lock().core().order_by_client(account, &cid).filter(|o| o.status.is_open()).and_then(|o| o.list_id);
    if let Some(list_id) = list {
        return super::order_list::cancel_by_id(app, account, list_id, cancel_id, now);
    }
    cancel_one(app, account, &symbol, &cid, cancel_id, p.get("cancelRestrictions"), now)
}

pub(crate) fn cancel_all(app: &App, p: &Params, account: u32, now: i64) -> Result<Value, Reject> {
    let symbol = p.req("symbol")?;
    instrument(app, symbol)?;
    let open = app.ex.lock().core().open_orders(account, Some(symbol));
    if open.is_empty() {
        return Err(Reject::new(-2011, "Unknown order sent."));
    }
    let mut out = Vec::new();
    let mut lists = Vec::new();
    for o in open {
        match o.list_id {
            // Both legs of a list go in one list entry.
            Some(id) if lists.contains(&id) => {}
            Some(id) => {
                lists.push(id);
                out.push(super::order_list::cancel_by_id(app, account, id, None, now)?);
            }
            None => out.push(cancel_one(app, account, symbol, &o.client_order_id, None, None, now)?),
        }
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

pub(crate) fn all_orders(app: &App, p: &Params, account: u32) -> Result<Value, Reject> {
    let symbol = p.req("symbol")?;
    instrument(app, symbol)?;
    let window = TimeWindow::of(p)?;
    let from = p.int("orderId")?;
    let limit = limit_of(p)?;
    let list = app.ex.lock().core().all_orders(account, symbol);
    let chosen: Vec<Value> = list
        .iter()
        .filter(|o| from.is_none_or(|id| o.order_id as i64 >= id) && window.holds(o.created_ms))
        .map(order_json)
        .collect();
    Ok(Value::Array(window.page(chosen, limit, from.is_some())))
}

/// The `limit` of a list endpoint: default 500, at most 1000.
fn limit_of(p: &Params) -> Result<usize, Reject> {
    Ok(p.int("limit")?.unwrap_or(500).clamp(1, 1000) as usize)
}

/// A `startTime`/`endTime` filter as Binance bounds it: both inclusive, at
/// most 24 hours apart (`-1127`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct TimeWindow {
    start: Option<i64>,
    end: Option<i64>,
}

impl TimeWindow {
    const MAX_MS: i64 = 24 * 3_600_000;

    pub(crate) fn of(p: &Params) -> Result<Self, Reject> {
        let (start, end) = (p.int("startTime")?, p.int("endTime")?);
        if let (Some(s), Some(e)) = (start, end) {
            if e - s > Self::MAX_MS {
                return Err(Reject::new(-1127, "More than 24 hours between startTime and endTime."));
            }
        }
        Ok(Self { start, end })
    }

    pub(crate) fn is_set(&self) -> bool {
        self.start.is_some() || self.end.is_some()
    }

    pub(crate) fn holds(&self, ms: i64) -> bool {
        self.start.is_none_or(|s| ms >= s) && self.end.is_none_or(|e| ms <= e)
    }

    /// `limit` items, oldest first: from the start when the query names one
    /// (a start time or a first id), else the most recent.
    pub(crate) fn page(&self, items: Vec<Value>, limit: usize, from_id: bool) -> Vec<Value> {
        let skip = if from_id || self.start.is_some() { 0 } else { items.len().saturating_sub(limit) };
        items.into_iter().skip(skip).take(limit).collect()
    }
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

pub(crate) fn my_trades(app: &App, p: &Params, account: u32) -> Result<Value, Reject> {
    let symbol = p.req("symbol")?;
    instrument(app, symbol)?;
    let window = TimeWindow::of(p)?;
    let from_id = p.int("fromId")?.map(|v| v.max(0) as u64);
    let order_id = p.int("orderId")?;
    // The documented combinations: a time window goes with neither a first
    // trade id nor an order id.
    if window.is_set() && (from_id.is_some() || order_id.is_some()) {
        return Err(Reject::new(-1128, "Combination of optional parameters invalid."));
    }
    let limit = limit_of(p)?;
    let st = app.ex.lock();
    let mut out = Vec::new();
    for f in st.core().fills(account, symbol, from_id) {
        let order = f.trade_id.as_u64().and_then(|t| st.core().order_of_trade(symbol, t));
        let oid = order.map(|o| o.order_id).unwrap_or(0);
        let list_id = order.map_or(-1, super::exchange::list_id_json);
        if order_id.is_some_and(|id| id as u64 != oid) || !window.holds(f.ts_ms) {
            continue;
        }
        out.push(json!({
            "symbol": symbol, "id": f.trade_id, "orderId": oid, "orderListId": list_id,
            "price": d8(f.price), "qty": d8(f.qty), "quoteQty": d8(f.price * f.qty),
            "commission": d8(f.fee), "commissionAsset": f.fee_asset, "time": f.ts_ms,
            "isBuyer": f.side == Side::Buy, "isMaker": f.is_maker, "isBestMatch": true,
        }));
    }
    Ok(Value::Array(window.page(out, limit, from_id.is_some())))
}
