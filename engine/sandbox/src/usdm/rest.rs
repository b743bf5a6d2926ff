//! `fapi` REST (`/fapi/v1/*`, `/futures/data/*`): the read-only market-data
//! subset in the documented shapes and error codes, with the futures limits —
//! request weight per minute (`X-MBX-USED-WEIGHT-1M`, its own budget beside
//! spot's), the 500 / 5 min bucket of `fundingRate` + `fundingInfo` and the
//! 1000 / 5 min bucket of `/futures/data`, `429` with the futures `-1003`
//! text, and the ban (`418`) for a client that keeps going.

use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::http::{Method, StatusCode, Uri};
use axum::response::Response;
use serde_json::{json, Value};

use keel_core::futures::OiPeriod;

use super::super::exchange::{d8, Reject};
use super::super::limits::{self, Gate, LimitConfig, Limits};
use super::super::rest::{reply, Params};
use super::super::{App, RestFault};

const FIVE_MIN_MS: i64 = 300_000;
const DAY_MS: i64 = 86_400_000;
/// `openInterestHist` keeps the last 30 days.
const OI_HIST_DAYS: i64 = 30;

/// A fixed 5-minute request bucket.
#[derive(Debug)]
struct Bucket {
    limit: u64,
    window: Mutex<(i64, u64)>,
}

impl Bucket {
    fn new(limit: u64) -> Self {
        Self { limit, window: Mutex::new((0, 0)) }
    }

    /// Counts a request; the ms until the window ends when it is over.
    fn take(&self, now_ms: i64) -> Option<i64> {
        let mut w = self.window.lock().unwrap_or_else(|p| p.into_inner());
        let start = now_ms - now_ms.rem_euclid(FIVE_MIN_MS);
        if w.0 != start {
            *w = (start, 0);
        }
        w.1 += 1;
        (self.limit > 0 && w.1 > self.limit).then(|| start + FIVE_MIN_MS - now_ms)
    }
}

/// The futures request limits (one sandbox is one IP).
#[derive(Debug)]
pub(crate) struct FapiLimits {
    weight: Limits,
    weight_1m: u64,
    funding: Bucket,
    futures_data: Bucket,
}

impl FapiLimits {
    /// From the sandbox's config.
    pub fn new(cfg: &super::UsdmConfig, ban_after_429s: u32, first_ban_ms: i64) -> Self {
        Self {
            weight: Limits::new(LimitConfig {
                weight_1m: cfg.weight_limit_1m,
                orders_10s: 0,
                orders_1d: 0,
                ban_after_429s,
                first_ban_ms,
            }),
            weight_1m: cfg.weight_limit_1m,
            funding: Bucket::new(cfg.funding_requests_per_5m),
            futures_data: Bucket::new(cfg.futures_data_requests_per_5m),
        }
    }
}

fn too_many(limit: u64) -> Reject {
    Reject::new(
        -1003,
        format!(
            "Too many requests; current limit is {limit} requests per minute. Please use the websocket for live updates to avoid polling the API."
        ),
    )
}

fn banned(until_ms: i64) -> Reject {
    Reject::new(
        -1003,
        format!("Way too many requests; IP banned until {until_ms}. Please use the websocket for live updates to avoid bans."),
    )
}

fn error(r: &Reject, used: u64, retry_after_ms: Option<i64>) -> Response {
    let status = StatusCode::from_u16(crate::auth::http_status(r)).unwrap_or(StatusCode::BAD_REQUEST);
    let extra: Vec<(&str, String)> =
        retry_after_ms.map(|ms| vec![("retry-after", limits::retry_after_s(ms).to_string())]).unwrap_or_default();
    reply(status, &json!({"code": r.code, "msg": r.msg}), used, &extra)
}

fn invalid_symbol() -> Reject {
    Reject::new(-1121, "Invalid symbol.")
}

fn not_valid(k: &str) -> Reject {
    Reject::new(-1130, format!("Data sent for parameter '{k}' is not valid."))
}

/// Endpoint weights (USDⓈ-M docs; `fundingRate`'s is not stated: 1).
fn weight_of(path: &str, p: &Params) -> u64 {
    let all = p.get("symbol").is_none();
    match path {
        "fapi/v1/premiumIndex" if all => 10,
        "fapi/v1/ticker/24hr" if all => 40,
        "fapi/v1/fundingInfo" | "futures/data/openInterestHist" => 0,
        _ => 1,
    }
}

/// The `fapi` entry point.
pub(crate) async fn handle(State(app): State<Arc<App>>, method: Method, uri: Uri) -> Response {
    let path = uri.path().trim_start_matches('/').to_string();
    let pairs = serde_urlencoded::from_str::<Vec<(String, String)>>(uri.query().unwrap_or("")).unwrap_or_default();
    let p = Params::from_pairs(pairs);
    let now = app.faults.server_now_ms();
    let lim = &app.usdm.limits;
    let gate = lim.weight.charge(weight_of(&path, &p), now);
    let used = lim.weight.used(now);
    match gate {
        Gate::Pass => {}
        Gate::Limited { retry_after_ms } => return error(&too_many(lim.weight_1m), used, Some(retry_after_ms)),
        Gate::Banned { until_ms } => return error(&banned(until_ms), used, Some(until_ms - now)),
    }
    // Scripted faults, as on spot: the next request(s) fail before anything runs.
    if let Some(fault) = app.faults.next_rest_fault(now) {
        if let RestFault::Stall { hold_ms } = fault {
            tokio::time::sleep(std::time::Duration::from_millis(hold_ms)).await;
        }
        return match fault {
            RestFault::RateLimited { retry_after_s } => {
                error(&too_many(lim.weight_1m), used, Some(i64::try_from(retry_after_s * 1000).unwrap_or(i64::MAX)))
            }
            RestFault::Banned { retry_after_s } => {
                let ms = i64::try_from(retry_after_s * 1000).unwrap_or(i64::MAX);
                error(&banned(now.saturating_add(ms)), used, Some(ms))
            }
            RestFault::ServerError | RestFault::Stall { .. } => error(
                &Reject::new(-1001, "Internal error; unable to process your request. Please try again."),
                used,
                None,
            ),
        };
    }
    let bucket = match path.as_str() {
        "fapi/v1/fundingRate" | "fapi/v1/fundingInfo" => Some(&lim.funding),
        p if p.starts_with("futures/data/") => Some(&lim.futures_data),
        _ => None,
    };
    if let Some(wait) = bucket.and_then(|b| b.take(now)) {
        let limit = bucket.map_or(0, |b| b.limit);
        let r = Reject::new(
            -1003,
            format!("Too many requests; current limit is {limit} requests per 5 minutes. Please use the websocket for live updates to avoid polling the API."),
        );
        return error(&r, used, Some(wait));
    }
    if method != Method::GET {
        return error(&Reject::new(-1020, "This operation is not supported."), used, None);
    }
    app.catch_up(now);
    let result = match path.as_str() {
        "fapi/v1/ping" => Ok(json!({})),
        "fapi/v1/time" => Ok(json!({"serverTime": now})),
        "fapi/v1/premiumIndex" => premium_index(&app, &p),
        "fapi/v1/fundingRate" => funding_rate(&app, &p),
        "fapi/v1/fundingInfo" => Ok(funding_info(&app)),
        "fapi/v1/openInterest" => open_interest(&app, &p),
        "futures/data/openInterestHist" => open_interest_hist(&app, &p),
        "fapi/v1/exchangeInfo" => Ok(exchange_info(&app, now)),
        "fapi/v1/ticker/24hr" => ticker_24hr(&app, &p, now),
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
        Err(r) => error(&r, used, None),
    }
}

fn known(app: &App, symbol: &str) -> Result<(), Reject> {
    let st = app.ex.lock();
    st.market_view(symbol).map(|_| ()).ok_or_else(invalid_symbol)
}

fn premium_index(app: &App, p: &Params) -> Result<Value, Reject> {
    let st = app.ex.lock();
    let all = app.usdm.snapshots(&st);
    match p.get("symbol") {
        Some(s) => all.iter().find(|x| x.symbol == s).map(|x| x.premium_json()).ok_or_else(invalid_symbol),
        None => Ok(Value::Array(all.iter().map(|x| x.premium_json()).collect())),
    }
}

fn limit_of(p: &Params, default: i64, max: i64) -> Result<usize, Reject> {
    match p.int("limit")? {
        None => Ok(default as usize),
        Some(l) if (1..=max).contains(&l) => Ok(l as usize),
        Some(_) => Err(not_valid("limit")),
    }
}

fn times(p: &Params) -> Result<(Option<i64>, Option<i64>), Reject> {
    let (s, e) = (p.int("startTime")?, p.int("endTime")?);
    if let (Some(s), Some(e)) = (s, e) {
        if s > e {
            return Err(Reject::new(-1023, "Start time is greater than end time."));
        }
    }
    Ok((s, e))
}

/// `GET /fapi/v1/fundingRate`: inclusive times; the first `limit` (default
/// 100, at most 1000) from `startTime`; without times the latest 200.
fn funding_rate(app: &App, p: &Params) -> Result<Value, Reject> {
    let (start, end) = times(p)?;
    let st = app.ex.lock();
    app.usdm.settle(&st);
    let symbols: Vec<String> = match p.get("symbol") {
        Some(s) => {
            st.market_view(s).ok_or_else(invalid_symbol)?;
            vec![s.to_string()]
        }
        None => st.symbols().into_iter().map(|(s, _)| s).collect(),
    };
    drop(st);
    let mut rows: Vec<(String, super::Settled)> = symbols
        .iter()
        .flat_map(|s| app.usdm.settled(s).into_iter().map(move |r| (s.clone(), r)))
        .filter(|(_, r)| start.is_none_or(|s| r.funding_time >= s) && end.is_none_or(|e| r.funding_time <= e))
        .collect();
    rows.sort_by_key(|(s, r)| (r.funding_time, s.clone()));
    let no_times = start.is_none() && end.is_none();
    let limit = limit_of(p, if no_times { 200 } else { 100 }, 1000)?;
    let rows: Vec<_> = if start.is_some() {
        rows.into_iter().take(limit).collect()
    } else {
        let skip = rows.len().saturating_sub(limit);
        rows.into_iter().skip(skip).collect()
    };
    Ok(Value::Array(
        rows.iter()
            .map(|(s, r)| {
                json!({"symbol": s, "fundingRate": d8(r.rate), "fundingTime": r.funding_time,
                       "markPrice": d8(r.mark_price), "rateType": "Regular"})
            })
            .collect(),
    ))
}

/// `GET /fapi/v1/fundingInfo`: only the adjusted symbols — a configured
/// interval or cap, or settling hourly after a capped settlement.
fn funding_info(app: &App) -> Value {
    let st = app.ex.lock();
    let cfg = &app.usdm.cfg;
    let rows = app
        .usdm
        .interval_hours_now(&st)
        .into_iter()
        .filter(|(s, hours)| {
            cfg.funding_interval_hours.contains_key(s)
                || cfg.rate_caps.contains_key(s)
                || *hours != cfg.interval_hours(s)
        })
        .map(|(s, hours)| {
            let cap = cfg.cap(&s);
            json!({"symbol": s, "adjustedFundingRateCap": d8(cap), "adjustedFundingRateFloor": d8(-cap),
                   "fundingIntervalHours": hours, "disclaimer": false})
        })
        .collect();
    Value::Array(rows)
}

fn open_interest(app: &App, p: &Params) -> Result<Value, Reject> {
    let symbol = p.req("symbol")?;
    known(app, symbol)?;
    let st = app.ex.lock();
    let now = st.sim_ms;
    let oi = app.usdm.open_interest_at(&st, symbol, now + 1).unwrap_or_default();
    Ok(json!({"openInterest": oi.to_string(), "symbol": symbol, "time": now}))
}

/// `GET /futures/data/openInterestHist`: `period` required, `limit` default
/// 30 and at most 500, nothing older than 30 days.
fn open_interest_hist(app: &App, p: &Params) -> Result<Value, Reject> {
    let symbol = p.req("symbol")?;
    let period = OiPeriod::parse(p.req("period")?).ok_or_else(|| not_valid("period"))?;
    let limit = limit_of(p, 30, 500)?;
    let (start, end) = times(p)?;
    known(app, symbol)?;
    let st = app.ex.lock();
    let now = st.sim_ms;
    if start.is_some_and(|s| s < now - OI_HIST_DAYS * DAY_MS) {
        return Err(not_valid("startTime"));
    }
    let end = end.map_or(now, |e| e.min(now));
    let rows = app.usdm.oi_history(&st, symbol, period.ms(), start, end, limit);
    let supply = super::circulating_supply(symbol);
    Ok(Value::Array(
        rows.into_iter()
            .map(|(t, oi, value)| {
                json!({"symbol": symbol, "sumOpenInterest": d8(oi), "sumOpenInterestValue": d8(value),
                       "CMCCirculatingSupply": d8(supply), "timestamp": t})
            })
            .collect(),
    ))
}

fn exchange_info(app: &App, now: i64) -> Value {
    let st = app.ex.lock();
    let symbols: Vec<Value> = st
        .instruments()
        .iter()
        .map(|i| {
            json!({
                "symbol": i.symbol.as_str(), "pair": i.symbol.as_str(), "contractType": "PERPETUAL",
                "deliveryDate": 4133404800000i64, "onboardDate": 1569398400000i64, "status": "TRADING",
                "maintMarginPercent": "2.5000", "requiredMarginPercent": "5.0000",
                "baseAsset": i.base_asset, "quoteAsset": i.quote_asset, "marginAsset": i.quote_asset,
                "pricePrecision": i.tick_size.scale(), "quantityPrecision": i.step_size.scale(),
                "baseAssetPrecision": 8, "quotePrecision": 8, "underlyingType": "COIN", "underlyingSubType": [],
                "settlePlan": 0, "triggerProtect": "0.0500",
                "filters": [
                    {"filterType": "PRICE_FILTER", "minPrice": i.min_price.to_string(), "maxPrice": i.max_price.to_string(), "tickSize": i.tick_size.to_string()},
                    {"filterType": "LOT_SIZE", "minQty": i.min_qty.to_string(), "maxQty": i.max_qty.to_string(), "stepSize": i.step_size.to_string()},
                    {"filterType": "MARKET_LOT_SIZE", "minQty": i.min_qty.to_string(), "maxQty": i.max_qty.to_string(), "stepSize": i.market_step_size.to_string()},
                    {"filterType": "MAX_NUM_ORDERS", "limit": 200},
                    {"filterType": "MIN_NOTIONAL", "notional": i.min_notional.to_string()},
                    {"filterType": "PERCENT_PRICE", "multiplierUp": "1.0500", "multiplierDown": "0.9500", "multiplierDecimal": "4"}
                ],
                "orderTypes": ["LIMIT", "MARKET", "STOP", "STOP_MARKET", "TAKE_PROFIT", "TAKE_PROFIT_MARKET", "TRAILING_STOP_MARKET"],
                "timeInForce": ["GTC", "IOC", "FOK", "GTX"], "liquidationFee": "0.012500", "marketTakeBound": "0.05",
            })
        })
        .collect();
    let w = app.usdm.cfg.weight_limit_1m;
    json!({
        "timezone": "UTC", "serverTime": now, "futuresType": "U_MARGINED",
        "rateLimits": [
            {"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1, "limit": w},
            {"rateLimitType": "ORDERS", "interval": "MINUTE", "intervalNum": 1, "limit": 1200},
        ],
        "exchangeFilters": [],
        "assets": [{"asset": "USDT", "marginAvailable": true, "autoAssetExchange": "-10000"}],
        "symbols": symbols,
    })
}

/// `GET /fapi/v1/ticker/24hr`: the perpetual's rolling day is its spot
/// twin's (the same price path), in the futures shape (no bid/ask, no
/// `prevClosePrice`).
fn ticker_24hr(app: &App, p: &Params, now: i64) -> Result<Value, Reject> {
    let st = app.ex.lock();
    let one = |symbol: &str| -> Option<Value> {
        let mut v = super::super::tickers::stats_24h(&st, symbol, now)?.rest_json();
        if let Some(o) = v.as_object_mut() {
            for k in ["prevClosePrice", "bidPrice", "bidQty", "askPrice", "askQty"] {
                o.remove(k);
            }
        }
        Some(v)
    };
    match p.get("symbol") {
        Some(s) => one(s).ok_or_else(invalid_symbol),
        None => Ok(Value::Array(st.symbols().iter().filter_map(|(s, _)| one(s)).collect())),
    }
}
