//! The Coinbase REST entry point (`/api/v3/brokerage/…`): routing, the JWT
//! check on private routes (a failure is a bare `401 Unauthorized`, §2.6),
//! the error bodies of §8, and the market-data, account, time and fee
//! endpoints. Orders are in [`super::orders`].
//!
//! As at Coinbase: a body on GET is ignored, query arrays are repeated keys
//! (`product_ids=A&product_ids=B`, also `product_ids[]=`), booleans are read
//! case-insensitively, every number is sent as a string.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::Response;
use rust_decimal::Decimal;
use serde_json::{json, Value};

use keel_core::instrument::Instrument;
use keel_core::market::Bar;

use super::ids::{bound, dec, hashed_uuid, product_id, rfc3339};
use super::jwt::{verify_rest, RestRequest};
use super::{edit, orders, preview, rate};
use crate::{App, RestFault};

/// The path prefix of every Coinbase REST route.
pub const PREFIX: &str = "/api/v3/brokerage/";

/// Most accounts a page (default 49, as documented).
const ACCOUNTS_MAX: usize = 250;
/// Most candles one request returns.
const CANDLES_MAX: usize = 350;
/// Most trades one ticker request returns.
const TRADES_MAX: usize = 1000;

/// A request's query: repeated keys kept, a `[]` suffix dropped.
pub(crate) struct Query(Vec<(String, String)>);

impl Query {
    fn parse(raw: &str) -> Self {
        let pairs = serde_urlencoded::from_str::<Vec<(String, String)>>(raw).unwrap_or_default();
        Self(pairs.into_iter().map(|(k, v)| (k.trim_end_matches("[]").to_string(), v)).collect())
    }

    /// The first value of `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str()).filter(|v| !v.is_empty())
    }

    /// Every value of `key` (comma-separated values split too).
    pub fn all(&self, key: &str) -> Vec<String> {
        self.0
            .iter()
            .filter(|(k, _)| k == key)
            .flat_map(|(_, v)| v.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_string))
            .collect()
    }

    /// A count parameter: its default when absent, clamped to `1..=max`.
    pub fn limit(&self, default: usize, max: usize) -> Result<usize, String> {
        match self.get("limit") {
            None => Ok(default),
            Some(v) => {
                v.parse::<usize>().map(|n| n.clamp(1, max)).map_err(|_| format!("limit argument is invalid: {v:?}"))
            }
        }
    }

    /// A paging cursor (an offset into the list, as this sandbox issues them).
    pub fn cursor(&self) -> Result<usize, String> {
        match self.get("cursor") {
            None => Ok(0),
            Some(v) => v.parse().map_err(|_| format!("cursor argument is invalid: {v:?}")),
        }
    }
}

/// A JSON answer.
pub(crate) fn reply(status: StatusCode, body: &Value) -> Response {
    let mut r = Response::new(Body::from(body.to_string()));
    *r.status_mut() = status;
    r.headers_mut().insert("content-type", HeaderValue::from_static("application/json"));
    r
}

/// The observed error shape (§8): `{error, error_details, message}`.
pub(crate) fn error(status: StatusCode, code: &str, message: &str) -> Response {
    reply(status, &json!({"error": code, "error_details": message, "message": message}))
}

/// A 400 `INVALID_ARGUMENT`.
pub(crate) fn invalid_argument(message: &str) -> Response {
    error(StatusCode::BAD_REQUEST, "INVALID_ARGUMENT", message)
}

/// The bare 401 every auth failure gets (§2.6).
fn unauthorized() -> Response {
    let mut r = Response::new(Body::from("Unauthorized"));
    *r.status_mut() = StatusCode::UNAUTHORIZED;
    r.headers_mut().insert("content-type", HeaderValue::from_static("text/plain; charset=utf-8"));
    r
}

/// One page of a list: the items from `cursor`, and the next cursor (`""`
/// at the end).
pub(crate) fn page<T>(items: Vec<T>, cursor: usize, limit: usize) -> (Vec<T>, String) {
    let total = items.len();
    let end = cursor.saturating_add(limit).min(total);
    let next = if end < total { end.to_string() } else { String::new() };
    (items.into_iter().skip(cursor).take(limit).collect(), next)
}

/// The REST entry point for every path under [`PREFIX`].
pub(crate) async fn handle(
    State(app): State<Arc<App>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: String,
) -> Response {
    let latency = app.faults.latency();
    if latency > 0 {
        tokio::time::sleep(std::time::Duration::from_millis(latency)).await;
    }
    let Some(path) = uri.path().strip_prefix(PREFIX) else { return not_found() };
    let path = path.trim_end_matches('/').to_string();
    let q = Query::parse(uri.query().unwrap_or(""));
    let now = app.faults.server_now_ms();

    // The Binance side's fault injection, shared: paths are named below
    // `/api/v3/` there, so here `brokerage/<path>`.
    let logged = format!("brokerage/{path}");
    app.faults.note_request(method.as_str(), &logged);
    if app.faults.path_fails(&logged) {
        return unavailable();
    }
    if let Some(fault) = app.faults.next_rest_fault(now) {
        return match fault {
            RestFault::RateLimited { retry_after_s } | RestFault::Banned { retry_after_s } => {
                too_many_requests(retry_after_s)
            }
            RestFault::Stall { hold_ms } => {
                // A stalled request then fails (its client gave up long ago).
                tokio::time::sleep(std::time::Duration::from_millis(hold_ms)).await;
                unavailable()
            }
            RestFault::ServerError => unavailable(),
        };
    }
    app.catch_up(now);
    let parts: Vec<&str> = path.split('/').collect();
    let get = method == Method::GET;

    // Public routes: an Authorization header, if any, is not checked (§10.4).
    let public = parts.first() == Some(&"market") || parts.as_slice() == ["time"];
    if public {
        let charged = app.coinbase.rates.charge("public", app.coinbase.public_per_s, now);
        let answer = if charged.over { too_many_requests(1) } else { public_route(&app, get, &parts, &q, now) };
        return with_rate(answer, charged);
    }

    let (account, charged) = match authenticate(&app, &method, &uri, &headers, now) {
        Ok(a) => a,
        Err(refused) => return *refused,
    };
    let answer = match (get, parts.as_slice()) {
        (true, ["products"]) => products(&app, &q),
        (true, ["products", id]) => product(&app, id),
        (true, ["product_book"]) => product_book(&app, &q, now),
        (true, ["best_bid_ask"]) => best_bid_ask(&app, &q, now),
        (true, ["products", id, "candles"]) => candles(&app, id, &q),
        (true, ["products", id, "ticker"]) => ticker(&app, id, &q),
        (true, ["accounts"]) => accounts(&app, account, &q),
        (true, ["accounts", uuid]) => account_one(&app, account, uuid),
        (true, ["transaction_summary"]) => transaction_summary(&app, account),
        (true, ["key_permissions"]) => key_permissions(&app, account),
        (false, ["orders"]) if method == Method::POST => orders::create_with_faults(&app, account, &body, now).await,
        (false, ["orders", "batch_cancel"]) if method == Method::POST => {
            super::faults::batch_cancel_with_faults(&app, account, &body).await
        }
        (false, ["orders", "preview"]) if method == Method::POST => preview::preview(&app, account, &body),
        (false, ["orders", "edit"]) if method == Method::POST => edit::edit(&app, account, &body, now),
        (false, ["orders", "edit_preview"]) if method == Method::POST => edit::edit_preview(&app, account, &body),
        (true, ["orders", "historical", "batch"]) => orders::list(&app, account, &q),
        (true, ["orders", "historical", "fills"]) => orders::fills(&app, account, &q),
        (true, ["orders", "historical", id]) => orders::get(&app, account, id),
        _ => not_found(),
    };
    with_rate(answer, charged)
}

/// Checks a private request's bearer JWT (a bare 401 when it fails, boxed:
/// a response is large) and
/// charges the key's account's private bucket (a 429 when over): the
/// account and the charge.
pub(crate) fn authenticate(
    app: &App,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    now: i64,
) -> Result<(u32, rate::Charged), Box<Response>> {
    let token = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")));
    let host = headers.get("host").and_then(|v| v.to_str().ok()).unwrap_or("");
    let Some(token) = token else { return Err(Box::new(unauthorized())) };
    let req = RestRequest { method: method.as_str(), host, path: uri.path() };
    let account = match verify_rest(&app.coinbase.registry, token, req, now.div_euclid(1000)) {
        Ok(kid) => match app.coinbase.accounts.get(&kid) {
            Some(id) => *id,
            None => return Err(Box::new(unauthorized())),
        },
        Err(e) => {
            tracing::info!(reason = %e, path = %uri.path(), "coinbase sandbox: refused a JWT");
            return Err(Box::new(unauthorized()));
        }
    };
    let charged = app.coinbase.rates.charge(&format!("account-{account}"), app.coinbase.private_per_s, now);
    if charged.over {
        return Err(Box::new(with_rate(too_many_requests(1), charged)));
    }
    Ok((account, charged))
}

/// The public routes (`time`, `market/…`).
fn public_route(app: &App, get: bool, parts: &[&str], q: &Query, now: i64) -> Response {
    match (get, parts) {
        (true, ["time"]) => time(app, now),
        (true, ["market", "products"]) => products(app, q),
        (true, ["market", "products", id]) => product(app, id),
        (true, ["market", "product_book"]) => product_book(app, q, now),
        (true, ["market", "products", id, "candles"]) => candles(app, id, q),
        (true, ["market", "products", id, "ticker"]) => ticker(app, id, q),
        // The public namespace needs no token, also to be told a route is unknown.
        _ => not_found(),
    }
}

/// Adds the `x-ratelimit-*` headers of a bucket to an answer.
pub(crate) fn with_rate(mut r: Response, c: rate::Charged) -> Response {
    for (name, value) in [
        ("x-ratelimit-limit", c.limit.to_string()),
        ("x-ratelimit-remaining", c.remaining.to_string()),
        ("x-ratelimit-reset", c.reset_s.to_string()),
    ] {
        if let Ok(v) = HeaderValue::from_str(&value) {
            r.headers_mut().insert(name, v);
        }
    }
    r
}

/// HTTP 503: nothing was done (or, after an order executed, its outcome is
/// unknown to the client).
pub(crate) fn unavailable() -> Response {
    error(StatusCode::SERVICE_UNAVAILABLE, "UNAVAILABLE", "service unavailable, try again later")
}

/// HTTP 429 with `Retry-After` (the body shape is the reference's choice, §7).
pub(crate) fn too_many_requests(retry_after_s: u64) -> Response {
    let mut r = error(StatusCode::TOO_MANY_REQUESTS, "RESOURCE_EXHAUSTED", "Too many requests");
    if let Ok(v) = HeaderValue::from_str(&retry_after_s.to_string()) {
        r.headers_mut().insert("retry-after", v);
    }
    r
}

fn not_found() -> Response {
    error(StatusCode::NOT_FOUND, "NOT_FOUND", "Not Found")
}

/// `GET /time`: camelCase keys, string values (§4.7). When the market runs
/// faster than the server clock (`speed` above 1) its candles are not on
/// the server's time, so the answer adds Keel's extension `keelMarketClock`
/// (the market's time and speed) for clients to find the bars by; Coinbase
/// clients ignore the unknown key.
fn time(app: &App, now: i64) -> Response {
    let iso = chrono::DateTime::from_timestamp_millis(now)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let mut body =
        json!({"iso": iso, "epochSeconds": now.div_euclid(1000).to_string(), "epochMillis": now.to_string()});
    let (market_ms, speed) = {
        let st = app.ex.lock();
        (st.sim_ms, st.speed())
    };
    if speed != 1.0 {
        body["keelMarketClock"] = json!({"epochMillis": market_ms.to_string(), "speed": speed.to_string()});
    }
    reply(StatusCode::OK, &body)
}

/// The instrument a product id names.
pub(crate) fn instrument_of(app: &App, id: &str) -> Option<Instrument> {
    app.ex.lock().instruments().into_iter().find(|i| product_id(i) == id)
}

fn unknown_product(id: &str) -> Response {
    error(StatusCode::NOT_FOUND, "NOT_FOUND", &format!("ProductID {id} could not be found"))
}

/// A product as `/products` lists it (§4.2).
fn product_json(app: &App, inst: &Instrument) -> Value {
    let st = app.ex.lock();
    let last = st.core().last_price(inst.symbol.as_str());
    let mid = st.quote(inst.symbol.as_str()).map(|q| (q.bid + q.ask) / Decimal::TWO);
    drop(st);
    let trading = inst.status.is_trading();
    let cancel_only = matches!(inst.status, keel_core::instrument::SymbolStatus::CancelOnly);
    json!({
        "product_id": product_id(inst),
        "price": last.map(dec).unwrap_or_default(),
        "price_percentage_change_24h": "0",
        "volume_24h": "0",
        "volume_percentage_change_24h": "0",
        "base_increment": dec(inst.step_size),
        "quote_increment": dec(inst.tick_size),
        "quote_min_size": dec(inst.min_notional),
        "quote_max_size": dec(bound(inst.max_notional)),
        "base_min_size": dec(inst.min_qty),
        "base_max_size": dec(bound(inst.max_qty)),
        "base_name": inst.base_asset,
        "quote_name": inst.quote_asset,
        "watched": false,
        "is_disabled": !trading && !cancel_only,
        "new": false,
        "status": if trading { "online" } else { "offline" },
        "cancel_only": cancel_only,
        "limit_only": false,
        "post_only": false,
        "trading_disabled": !trading,
        "auction_mode": false,
        "product_type": "SPOT",
        "quote_currency_id": inst.quote_asset,
        "base_currency_id": inst.base_asset,
        "fcm_trading_session_details": null,
        "mid_market_price": mid.map(dec).unwrap_or_default(),
        "alias": "",
        "alias_to": [],
        "base_display_symbol": inst.base_asset,
        "quote_display_symbol": inst.quote_asset,
        "view_only": false,
        "price_increment": dec(inst.tick_size),
        "display_name": product_id(inst),
        "product_venue": "CBE",
    })
}

/// `GET /products` (and `/market/products`): `product_ids` filters,
/// `limit`/`offset` page.
fn products(app: &App, q: &Query) -> Response {
    let wanted = q.all("product_ids");
    if q.get("product_type").is_some_and(|t| !t.eq_ignore_ascii_case("SPOT")) {
        return reply(StatusCode::OK, &json!({"products": [], "num_products": 0}));
    }
    let all: Vec<Instrument> = app
        .ex
        .lock()
        .instruments()
        .into_iter()
        .filter(|i| wanted.is_empty() || wanted.contains(&product_id(i)))
        .collect();
    let offset = q.get("offset").and_then(|v| v.parse::<usize>().ok()).unwrap_or(0);
    let limit = match q.limit(all.len().max(1), usize::MAX) {
        Ok(l) => l,
        Err(r) => return invalid_argument(&r),
    };
    let list: Vec<Value> = all.iter().skip(offset).take(limit).map(|i| product_json(app, i)).collect();
    reply(StatusCode::OK, &json!({"products": list, "num_products": all.len()}))
}

/// `GET /products/{id}`: the product itself, no wrapper.
fn product(app: &App, id: &str) -> Response {
    match instrument_of(app, id) {
        Some(inst) => reply(StatusCode::OK, &product_json(app, &inst)),
        None => unknown_product(id),
    }
}

fn levels(list: &[(Decimal, Decimal)]) -> Value {
    Value::Array(list.iter().map(|(p, s)| json!({"price": dec(*p), "size": dec(*s)})).collect())
}

/// One product's book, `n` levels a side, as `pricebook` objects hold it.
fn pricebook(app: &App, inst: &Instrument, n: usize, now: i64) -> Value {
    let mut st = app.ex.lock();
    let (bids, asks) = match st.depth_parts(inst.symbol.as_str()) {
        Some((core, book)) => {
            book.refresh(core, inst.symbol.as_str());
            book.top(n)
        }
        None => (Vec::new(), Vec::new()),
    };
    json!({"product_id": product_id(inst), "bids": levels(&bids), "asks": levels(&asks), "time": rfc3339(now)})
}

/// `GET /product_book?product_id=…&limit=N`.
fn product_book(app: &App, q: &Query, now: i64) -> Response {
    let Some(id) = q.get("product_id") else { return invalid_argument("product_id is required") };
    let Some(inst) = instrument_of(app, id) else { return unknown_product(id) };
    let n = match q.limit(50, 500) {
        Ok(n) => n,
        Err(r) => return invalid_argument(&r),
    };
    let book = pricebook(app, &inst, n, now);
    let best = |side: &str| book[side][0]["price"].as_str().and_then(|p| p.parse::<Decimal>().ok());
    let (bid, ask) = (best("bids"), best("asks"));
    let mid = bid.zip(ask).map(|(b, a)| (b + a) / Decimal::TWO);
    let spread = bid.zip(ask).map(|(b, a)| a - b);
    let spread_bps = spread.zip(mid).filter(|(_, m)| !m.is_zero()).map(|(s, m)| s / m * Decimal::from(10_000));
    let last = app.ex.lock().core().last_price(inst.symbol.as_str());
    reply(
        StatusCode::OK,
        &json!({
            "pricebook": book,
            "last": last.map(dec).unwrap_or_default(),
            "mid_market": mid.map(dec).unwrap_or_default(),
            "spread_bps": spread_bps.map(|v| dec(v.round_dp(4))).unwrap_or_default(),
            "spread_absolute": spread.map(dec).unwrap_or_default(),
        }),
    )
}

/// `GET /best_bid_ask?product_ids=…` (none: every product).
fn best_bid_ask(app: &App, q: &Query, now: i64) -> Response {
    let wanted = q.all("product_ids");
    let insts = app.ex.lock().instruments();
    let books: Vec<Value> = insts
        .iter()
        .filter(|i| wanted.is_empty() || wanted.contains(&product_id(i)))
        .map(|i| pricebook(app, i, 1, now))
        .collect();
    reply(StatusCode::OK, &json!({"pricebooks": books}))
}

/// Seconds of a candle granularity (§4.5).
fn granularity_s(g: &str) -> Option<i64> {
    Some(match g {
        "ONE_MINUTE" => 60,
        "FIVE_MINUTE" => 300,
        "FIFTEEN_MINUTE" => 900,
        "THIRTY_MINUTE" => 1800,
        "ONE_HOUR" => 3600,
        "TWO_HOUR" => 7200,
        "FOUR_HOUR" => 14_400,
        "SIX_HOUR" => 21_600,
        "ONE_DAY" => 86_400,
        _ => return None,
    })
}

/// `GET /products/{id}/candles?start&end&granularity&limit`: buckets of the
/// 1m bars (the bar in progress included), newest first, `start` in UNIX
/// seconds; empty buckets are left out, as at Coinbase.
fn candles(app: &App, id: &str, q: &Query) -> Response {
    let Some(inst) = instrument_of(app, id) else { return unknown_product(id) };
    let Some(gran) = q.get("granularity").and_then(granularity_s) else {
        return invalid_argument("granularity argument is invalid");
    };
    let secs = |k: &str| q.get(k).map(|v| v.parse::<i64>().map_err(|_| format!("{k} argument is invalid")));
    let (start, end) = match (secs("start").transpose(), secs("end").transpose()) {
        (Ok(s), Ok(e)) => (s, e),
        (Err(r), _) | (_, Err(r)) => return invalid_argument(&r),
    };
    let limit = match q.limit(CANDLES_MAX, CANDLES_MAX) {
        Ok(l) => l,
        Err(r) => return invalid_argument(&r),
    };
    let st = app.ex.lock();
    let Some(view) = st.market_view(inst.symbol.as_str()) else { return unknown_product(id) };
    let seam = crate::history::Seam::of(view.history.first().or(view.current));
    let mut buckets: Vec<Bar> = Vec::new();
    for bar in view.history.iter().chain(view.current) {
        let bucket = bar.open_time.div_euclid(1000).div_euclid(gran) * gran;
        match buckets.last_mut() {
            Some(b) if b.open_time == bucket => {
                b.high = b.high.max(bar.high);
                b.low = b.low.min(bar.low);
                b.close = bar.close;
                b.volume += bar.volume;
            }
            _ => buckets.push(Bar { open_time: bucket, ..bar.clone() }),
        }
    }
    drop(st);
    // Older than the live window: the deterministic past, as `klines`
    // serves it (only with an `end`: the newest `limit` of a window are served).
    let cfg = app.cfg.symbols.iter().find(|c| c.symbol == inst.symbol.as_str());
    if let (Some(cfg), Some(s), Some(e)) = (cfg, start, end) {
        let stop = buckets.first().map_or(i64::MAX, |b| b.open_time).min(e.saturating_add(1)).saturating_mul(1000);
        let from = (s * 1000).max(stop.saturating_sub((limit as i64 + 1) * gran * 1000));
        let past = crate::history::Past { sym: cfg, cfg: &app.cfg.archive, seam };
        let past = past.bars(gran * 1000, from, stop, limit + 1);
        let past = past.into_iter().map(|(b, _)| Bar { open_time: b.open_time.div_euclid(1000), ..b });
        buckets = past.chain(buckets).collect();
    }
    let list: Vec<Value> = buckets
        .iter()
        .rev()
        .filter(|b| start.is_none_or(|s| b.open_time >= s) && end.is_none_or(|e| b.open_time <= e))
        .take(limit)
        .map(|b| {
            json!({"start": b.open_time.to_string(), "low": dec(b.low), "high": dec(b.high), "open": dec(b.open),
                   "close": dec(b.close), "volume": dec(b.volume)})
        })
        .collect();
    reply(StatusCode::OK, &json!({"candles": list}))
}

/// `GET /products/{id}/ticker?limit=N`: recent public trades, newest first,
/// `side` the taker's; with the best bid and ask.
fn ticker(app: &App, id: &str, q: &Query) -> Response {
    let Some(inst) = instrument_of(app, id) else { return unknown_product(id) };
    let limit = match q.limit(100, TRADES_MAX) {
        Ok(l) => l,
        Err(r) => return invalid_argument(&r),
    };
    let st = app.ex.lock();
    let quote = st.quote(inst.symbol.as_str());
    let Some(view) = st.market_view(inst.symbol.as_str()) else { return unknown_product(id) };
    let pid = product_id(&inst);
    let trades: Vec<Value> = view
        .tape
        .recent(limit)
        .into_iter()
        .rev()
        .map(|t| {
            json!({"trade_id": t.id.to_string(), "product_id": pid, "price": dec(t.price), "size": dec(t.qty),
                   "time": rfc3339(t.time), "side": if t.buyer_maker { "SELL" } else { "BUY" }, "bid": "", "ask": "",
                   "exchange": "CBE"})
        })
        .collect();
    drop(st);
    reply(
        StatusCode::OK,
        &json!({"trades": trades, "best_bid": quote.as_ref().map(|q| dec(q.bid)).unwrap_or_default(),
                "best_ask": quote.as_ref().map(|q| dec(q.ask)).unwrap_or_default()}),
    )
}

/// The UUID of an account's wallet in one currency.
fn account_uuid(account: u32, currency: &str) -> String {
    hashed_uuid(&["account", &account.to_string(), currency])
}

/// The UUID of the user owning an account.
pub(crate) fn user_uuid(account: u32) -> String {
    hashed_uuid(&["user", &account.to_string()])
}

/// One wallet per currency the account holds (§4.1): `available_balance`
/// is free, `hold` locked by open orders.
fn account_list(app: &App, account: u32) -> Vec<Value> {
    app.ex
        .lock()
        .balances(account)
        .iter()
        .map(|b| {
            json!({
                "uuid": account_uuid(account, &b.asset),
                "name": format!("{} Wallet", b.asset),
                "currency": b.asset,
                "available_balance": {"value": dec(b.free), "currency": b.asset},
                "default": true,
                "active": true,
                "created_at": "2024-01-01T00:00:00.000Z",
                "updated_at": "2024-01-01T00:00:00.000Z",
                "deleted_at": null,
                "type": "ACCOUNT_TYPE_CRYPTO",
                "ready": true,
                "hold": {"value": dec(b.locked), "currency": b.asset},
                "retail_portfolio_id": hashed_uuid(&["portfolio", &account.to_string()]),
                "platform": "ACCOUNT_PLATFORM_CONSUMER",
            })
        })
        .collect()
}

/// `GET /accounts?limit&cursor`.
fn accounts(app: &App, account: u32, q: &Query) -> Response {
    let (limit, cursor) = match (q.limit(49, ACCOUNTS_MAX), q.cursor()) {
        (Ok(l), Ok(c)) => (l, c),
        (Err(r), _) | (_, Err(r)) => return invalid_argument(&r),
    };
    let all = account_list(app, account);
    let (list, next) = page(all, cursor, limit);
    let size = list.len();
    reply(StatusCode::OK, &json!({"accounts": list, "has_next": !next.is_empty(), "cursor": next, "size": size}))
}

/// `GET /accounts/{uuid}`.
fn account_one(app: &App, account: u32, uuid: &str) -> Response {
    match account_list(app, account).into_iter().find(|a| a["uuid"] == uuid) {
        Some(a) => reply(StatusCode::OK, &json!({"account": a})),
        None => error(StatusCode::NOT_FOUND, "NOT_FOUND", "account not found"),
    }
}

/// `GET /key_permissions` (reference §1): the key views and trades as its
/// account's `can_trade` says; it never transfers.
fn key_permissions(app: &App, account: u32) -> Response {
    let can_trade = app.ex.keys.values().any(|k| k.id == account && k.can_trade);
    reply(
        StatusCode::OK,
        &json!({"can_view": true, "can_trade": can_trade, "can_transfer": false,
                "portfolio_uuid": hashed_uuid(&["portfolio", &account.to_string()]), "portfolio_type": "DEFAULT"}),
    )
}

/// `GET /transaction_summary`: the sandbox's one fee tier (rates as
/// fractions) and the account's traded volume and fees in quote units.
fn transaction_summary(app: &App, account: u32) -> Response {
    let (volume, fees) = orders::totals(app, account);
    let bps = Decimal::from(10_000);
    let f = app.ex.fees;
    let volume = dec(volume);
    let fees = dec(fees);
    reply(
        StatusCode::OK,
        &json!({
            "total_volume": volume,
            "total_fees": fees,
            "fee_tier": {
                "pricing_tier": "Keel sandbox",
                "usd_from": "0",
                "usd_to": "",
                "taker_fee_rate": dec(f.taker_bps / bps),
                "maker_fee_rate": dec(f.maker_bps / bps),
                "aop_from": "",
                "aop_to": "",
            },
            "margin_rate": null,
            "goods_and_services_tax": null,
            "advanced_trade_only_volume": volume,
            "advanced_trade_only_fees": fees,
            "coinbase_pro_volume": "0",
            "coinbase_pro_fees": "0",
            "total_balance": "",
            "has_promo_fee": false,
        }),
    )
}
