//! The sandbox's WebSocket surfaces: market streams (`/ws/<stream>`,
//! `/stream?streams=`) and the WebSocket API (`/ws-api/v3`).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, Query, State};
use axum::response::Response;
use serde_json::{json, Value};
use tokio::sync::broadcast::error::RecvError;

use keel_core::market::Bar;

use super::tape::BarStats;

use super::exchange::{kline_obj, MarketKind, MarketMsg, Reject};
use super::limits::{self, Gate};
use super::replace::Failed;
use super::rest::{account_info, interval_ms, open_orders, query_order, Params};
use super::ws_session::{place_order, Session};
use super::{App, ConnCmd};

/// `/ws` with no stream: subscriptions come by `SUBSCRIBE`.
pub(crate) async fn raw_root(State(app): State<Arc<App>>, up: WebSocketUpgrade) -> Response {
    if let Some(refused) = market_refused(&app) {
        return refused;
    }
    up.on_upgrade(move |s| market_conn(app, s, Vec::new(), false))
}

/// HTTP 503 to a market-stream upgrade while the market streams are down
/// ([`crate::FaultControl::refuse_market_streams`]).
fn market_refused(app: &App) -> Option<Response> {
    app.faults.market_streams_refused().then(|| {
        let mut refused = Response::new(axum::body::Body::empty());
        *refused.status_mut() = axum::http::StatusCode::SERVICE_UNAVAILABLE;
        refused
    })
}

/// `/ws/<stream>` (raw payloads).
pub(crate) async fn raw_stream(
    State(app): State<Arc<App>>,
    Path(stream): Path<String>,
    up: WebSocketUpgrade,
) -> Response {
    if let Some(refused) = market_refused(&app) {
        return refused;
    }
    let streams = stream.split('/').map(str::to_string).filter(|s| !s.is_empty()).collect();
    up.on_upgrade(move |s| market_conn(app, s, streams, false))
}

/// `/stream?streams=a/b/c` (combined payloads `{stream, data}`).
pub(crate) async fn combined(
    State(app): State<Arc<App>>,
    Query(q): Query<HashMap<String, String>>,
    up: WebSocketUpgrade,
) -> Response {
    if let Some(refused) = market_refused(&app) {
        return refused;
    }
    let streams = q
        .get("streams")
        .map(|s| s.split('/').map(str::to_string).filter(|s| !s.is_empty()).collect())
        .unwrap_or_default();
    up.on_upgrade(move |s| market_conn(app, s, streams, true))
}

fn text(v: &Value) -> Message {
    Message::Text(Utf8Bytes::from(v.to_string()))
}

/// Per-connection aggregation of 1m bars (and their trades) into a longer interval.
#[derive(Default)]
struct Agg {
    closed_part: Option<(Bar, BarStats)>,
}

fn merge(a: Option<&Bar>, b: &Bar, interval: i64) -> Bar {
    let open = b.open_time - b.open_time.rem_euclid(interval);
    match a {
        Some(x) if x.open_time == open => Bar {
            high: x.high.max(b.high),
            low: x.low.min(b.low),
            close: b.close,
            volume: x.volume + b.volume,
            ..x.clone()
        },
        _ => Bar { open_time: open, close_time: open + interval - 1, ..b.clone() },
    }
}

/// What a market message means for one subscribed stream, if anything.
fn payload_for(stream: &str, msg: &MarketMsg, aggs: &mut HashMap<String, Agg>, now: i64) -> Option<Value> {
    let (sym, kind) = stream.split_once('@')?;
    if sym != msg.symbol_lower {
        return None;
    }
    match (&msg.kind, kind) {
        (MarketKind::Trade { trade, .. }, "trade") => Some(trade.clone()),
        (MarketKind::Trade { agg, .. }, "aggTrade") => Some(agg.clone()),
        (MarketKind::Book(b), "bookTicker") => Some(b.clone()),
        (MarketKind::Bar { bar, closed, stats }, k) if k.starts_with("kline_") => {
            let interval_s = &k[6..];
            let interval = interval_ms(interval_s)?;
            let (out, out_stats, out_closed) = if interval == 60_000 {
                (bar.clone(), *stats, *closed)
            } else {
                let agg = aggs.entry(stream.to_string()).or_default();
                let part = agg.closed_part.as_ref();
                let merged = merge(part.map(|(b, _)| b), bar, interval);
                let mut merged_stats =
                    part.filter(|(b, _)| b.open_time == merged.open_time).map(|(_, s)| *s).unwrap_or_default();
                merged_stats.merge(stats);
                if *closed {
                    if bar.close_time == merged.close_time {
                        agg.closed_part = None;
                        (merged, merged_stats, true)
                    } else {
                        agg.closed_part = Some((merged.clone(), merged_stats));
                        (merged, merged_stats, false)
                    }
                } else {
                    (merged, merged_stats, false)
                }
            };
            Some(
                json!({"e": "kline", "E": now, "s": out.symbol.as_str(), "k": kline_obj(&out, interval_s, out_closed, &out_stats)}),
            )
        }
        (other, k) => super::streams::payload(k, other),
    }
}

async fn market_conn(app: Arc<App>, mut socket: WebSocket, mut streams: Vec<String>, mut combined: bool) {
    let _counted = app.faults.market_connection();
    let mut market = app.ex.market_tx.subscribe();
    let mut cmds = app.faults.subscribe();
    let mut aggs: HashMap<String, Agg> = HashMap::new();
    let mut ping = tokio::time::interval(Duration::from_millis(app.cfg.ping_interval_ms.max(100)));
    ping.tick().await;
    loop {
        tokio::select! {
            m = market.recv() => match m {
                Ok(msg) => {
                    let now = app.faults.server_now_ms();
                    let garble = matches!(msg.kind, MarketKind::Bar { .. }) && app.faults.take_garbled_kline();
                    for s in &streams {
                        if let Some(mut data) = payload_for(s, &msg, &mut aggs, now) {
                            if garble && data["e"] == "kline" {
                                data["k"] = json!("garbled");
                            }
                            let v = if combined { json!({"stream": s, "data": data}) } else { data };
                            if socket.send(text(&v)).await.is_err() {
                                return;
                            }
                        }
                    }
                }
                Err(RecvError::Lagged(_)) => return,
                Err(RecvError::Closed) => return,
            },
            c = cmds.recv() => match c {
                Ok(ConnCmd::Drop) | Err(RecvError::Closed) => return,
                Ok(ConnCmd::ServerShutdown) => {
                    let ev = json!({"e": "serverShutdown", "E": app.faults.server_now_ms()});
                    let v = if combined { json!({"stream": "!serverShutdown", "data": ev}) } else { ev };
                    let _ = socket.send(text(&v)).await;
                    let _ = socket.send(Message::Close(None)).await;
                    return;
                }
                Err(RecvError::Lagged(_)) => {}
            },
            _ = ping.tick() => {
                if socket.send(Message::Ping(axum::body::Bytes::from_static(b"keel"))).await.is_err() {
                    return;
                }
            }
            incoming = socket.recv() => match incoming {
                Some(Ok(Message::Text(t))) => {
                    let listed = |lower: &str| app.ex.lock().market_view(&lower.to_uppercase()).is_some();
                    let (reply, close) = super::streams::control(&t, &mut streams, &mut combined, &listed);
                    if socket.send(text(&reply)).await.is_err() || close {
                        let _ = socket.send(Message::Close(None)).await;
                        return;
                    }
                }
                Some(Ok(Message::Close(_))) => {
                    // Complete the closing handshake: the reply is queued, flush it.
                    let _ = futures_util::SinkExt::flush(&mut socket).await;
                    return;
                }
                None | Some(Err(_)) => return,
                Some(Ok(_)) => {}
            },
        }
    }
}

/// `/ws-api/v3`. A connection costs 2 request weight; a banned or
/// rate-limited IP is refused before the upgrade, as on Binance.
pub(crate) async fn ws_api(
    State(app): State<Arc<App>>,
    Query(q): Query<HashMap<String, String>>,
    up: WebSocketUpgrade,
) -> Response {
    if app.faults.ws_api_refused() {
        let mut refused = Response::new(axum::body::Body::empty());
        *refused.status_mut() = axum::http::StatusCode::SERVICE_UNAVAILABLE;
        return refused;
    }
    let now = app.faults.server_now_ms();
    let refused = match app.limits.charge(CONNECT_WEIGHT, now) {
        Gate::Pass => None,
        Gate::Limited { retry_after_ms } => Some((429, app.limits.too_much_weight(), retry_after_ms)),
        Gate::Banned { until_ms } => Some((418, limits::banned(until_ms), until_ms - now)),
    };
    if let Some((status, r, wait_ms)) = refused {
        let mut resp = Response::new(axum::body::Body::from(json!({"code": r.code, "msg": r.msg}).to_string()));
        *resp.status_mut() =
            axum::http::StatusCode::from_u16(status).unwrap_or(axum::http::StatusCode::TOO_MANY_REQUESTS);
        if let Ok(v) = axum::http::HeaderValue::from_str(&limits::retry_after_s(wait_ms).to_string()) {
            resp.headers_mut().insert("retry-after", v);
        }
        return resp;
    }
    // `returnRateLimits=false` in the URL hides them unless a request asks.
    let rate_limits_default = q.get("returnRateLimits").map(String::as_str) != Some("false");
    up.on_upgrade(move |s| api_conn(app, s, rate_limits_default))
}

/// Request weight of opening a WebSocket API connection.
const CONNECT_WEIGHT: u64 = 2;

fn rate_limits(app: &App) -> Value {
    json!([app.limits.weight_json(app.faults.server_now_ms())])
}

/// The REST endpoint a WebSocket API method matches (for its weight).
fn rest_twin(method: &str) -> Option<(axum::http::Method, &'static str)> {
    use axum::http::Method as M;
    Some(match method {
        "ping" => (M::GET, "ping"),
        "time" => (M::GET, "time"),
        "exchangeInfo" => (M::GET, "exchangeInfo"),
        "order.place" => (M::POST, "order"),
        "order.test" => (M::POST, "order/test"),
        "order.status" => (M::GET, "order"),
        "order.cancel" => (M::DELETE, "order"),
        "order.cancelReplace" => (M::POST, "order/cancelReplace"),
        "openOrders.status" => (M::GET, "openOrders"),
        "openOrders.cancelAll" => (M::DELETE, "openOrders"),
        "allOrders" => (M::GET, "allOrders"),
        "myTrades" => (M::GET, "myTrades"),
        "account.status" => (M::GET, "account"),
        "account.commission" => (M::GET, "account/commission"),
        "account.rateLimits.orders" => (M::GET, "rateLimit/order"),
        _ => return None,
    })
}

/// A WebSocket API method's request weight: its REST twin's, else 2 (the
/// session and user-data-stream methods).
fn ws_weight(method: &str, p: &Params) -> u64 {
    match rest_twin(method) {
        Some((m, path)) => super::rest::weight_of(&m, path, p),
        None => 2,
    }
}

pub(crate) fn ok(app: &App, id: &Value, result: Value) -> Value {
    json!({"id": id, "status": 200, "result": result, "rateLimits": rate_limits(app)})
}

pub(crate) fn err(app: &App, id: &Value, status: u16, code: i64, msg: &str) -> Value {
    json!({"id": id, "status": status, "error": {"code": code, "msg": msg}, "rateLimits": rate_limits(app)})
}

/// A refusal as an answer, with the HTTP status its code travels with.
pub(crate) fn reject(app: &App, id: &Value, r: &Reject) -> Value {
    err(app, id, crate::auth::http_status(r), r.code, &r.msg)
}

pub(crate) fn raw_value(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

async fn api_conn(app: Arc<App>, mut socket: WebSocket, rate_limits_default: bool) {
    let mut users = app.ex.user_tx.subscribe();
    let mut cmds = app.faults.subscribe();
    let mut session = Session::new(app.faults.server_now_ms());
    // Answers held back by a fault arrive here, while the connection goes on.
    let (later_tx, mut later_rx) = tokio::sync::mpsc::unbounded_channel::<Value>();
    let mut ping = tokio::time::interval(Duration::from_millis(app.cfg.ping_interval_ms.max(100)));
    ping.tick().await;
    loop {
        tokio::select! {
            m = users.recv() => match m {
                Ok(msg) => {
                    if msg.event["e"] == "outboundAccountPosition" && app.faults.balance_reports_withheld() {
                        continue;
                    }
                    let garble = msg.event["e"] == "executionReport"
                        && session.subs.iter().any(|(_, acc)| *acc == msg.account)
                        && app.faults.take_garbled_report();
                    for (sid, acc) in &session.subs {
                        if *acc == msg.account {
                            let mut event = msg.event.clone();
                            if garble {
                                event["S"] = json!("SIDEWAYS");
                            }
                            let v = json!({"subscriptionId": sid, "event": event});
                            if socket.send(text(&v)).await.is_err() {
                                return;
                            }
                        }
                    }
                }
                // A lost event cannot be replayed: close so the client reconciles.
                Err(_) => return,
            },
            Some(mut v) = later_rx.recv() => {
                if let (false, Value::Object(m)) = (rate_limits_default, &mut v) {
                    m.remove("rateLimits");
                }
                if socket.send(text(&v)).await.is_err() {
                    return;
                }
            }
            c = cmds.recv() => match c {
                Ok(ConnCmd::Drop) | Err(RecvError::Closed) => return,
                Ok(ConnCmd::ServerShutdown) => {
                    let v = json!({"event": {"e": "serverShutdown", "E": app.faults.server_now_ms()}});
                    let _ = socket.send(text(&v)).await;
                    let _ = socket.send(Message::Close(None)).await;
                    return;
                }
                Err(RecvError::Lagged(_)) => {}
            },
            _ = ping.tick() => {
                if socket.send(Message::Ping(axum::body::Bytes::from_static(b"keel"))).await.is_err() {
                    return;
                }
            }
            incoming = socket.recv() => match incoming {
                Some(Ok(Message::Text(t))) => {
                    let (reply, terminated) = api_request(&app, &t, &mut session, &later_tx);
                    if let Some(mut reply) = reply {
                        if let (false, Value::Object(m)) = (show_rate_limits(&t, rate_limits_default), &mut reply) {
                            m.remove("rateLimits");
                        }
                        if socket.send(text(&reply)).await.is_err() {
                            return;
                        }
                        // A banned IP is disconnected.
                        if reply["status"] == 418 {
                            let _ = socket.send(Message::Close(None)).await;
                            return;
                        }
                    }
                    for sid in terminated {
                        let v = json!({"subscriptionId": sid, "event": {"e": "eventStreamTerminated", "E": app.faults.server_now_ms()}});
                        if socket.send(text(&v)).await.is_err() {
                            return;
                        }
                    }
                }
                Some(Ok(Message::Close(_))) => {
                    // Complete the closing handshake: the reply is queued, flush it.
                    let _ = futures_util::SinkExt::flush(&mut socket).await;
                    return;
                }
                None | Some(Err(_)) => return,
                Some(Ok(_)) => {}
            },
        }
    }
}

/// Sets a reply's `rateLimits` to the account's `ORDERS` counters (order
/// placement affects them; Binance lists them first) and the request weight
/// as it stands now (after a successful order's refund).
pub(crate) fn append_orders(app: &App, reply: &mut Value, account: u32, now: i64) {
    if let Some(list) = reply.get_mut("rateLimits").and_then(Value::as_array_mut) {
        let mut fresh: Vec<Value> = app.limits.orders_json(account, now).into();
        fresh.push(app.limits.weight_json(now));
        *list = fresh;
    }
}

/// Whether a reply carries `rateLimits`: the request's `returnRateLimits`,
/// else the connection's default.
fn show_rate_limits(request: &str, default: bool) -> bool {
    serde_json::from_str::<Value>(request)
        .ok()
        .and_then(|v| v.get("params").and_then(|p| p.get("returnRateLimits")).and_then(Value::as_bool))
        .unwrap_or(default)
}

/// A `429` or `418` reply of the WebSocket API, with the documented `data`.
pub(crate) fn refused(app: &App, id: &Value, status: u16, r: &Reject, retry_at_ms: i64) -> Value {
    let mut v = err(app, id, status, r.code, &r.msg);
    v["error"]["data"] = json!({"serverTime": app.faults.server_now_ms(), "retryAfter": retry_at_ms});
    v
}

/// Handles one WS API request; returns the reply (none when a held answer
/// follows on `later`) and any terminated subscriptions.
fn api_request(
    app: &Arc<App>,
    t: &str,
    session: &mut Session,
    later: &tokio::sync::mpsc::UnboundedSender<Value>,
) -> (Option<Value>, Vec<u64>) {
    let Ok(v) = serde_json::from_str::<Value>(t) else {
        return (Some(err(app, &Value::Null, 400, -1100, "Illegal characters found in a parameter.")), Vec::new());
    };
    let id = v.get("id").cloned().unwrap_or(Value::Null);
    let mut params = v.get("params").and_then(Value::as_object).cloned().unwrap_or_default();
    // Read by the connection (see `show_rate_limits`), not by the method.
    params.remove("returnRateLimits");
    let now = app.faults.server_now_ms();
    let method = v.get("method").and_then(Value::as_str).unwrap_or("");
    app.faults.note_ws_request(method);
    app.catch_up(now);
    let weighed = Params::from_pairs(params.iter().map(|(k, v)| (k.clone(), raw_value(v))).collect());
    let weight = ws_weight(method, &weighed);
    match app.limits.charge(weight, now) {
        Gate::Pass => {}
        Gate::Limited { retry_after_ms } => {
            let r = app.limits.too_much_weight();
            return (Some(refused(app, &id, 429, &r, now + retry_after_ms)), Vec::new());
        }
        Gate::Banned { until_ms } => {
            return (Some(refused(app, &id, 418, &limits::banned(until_ms), until_ms)), Vec::new())
        }
    }
    if let Some((reply, ended)) = session.handle(app, &id, method, &params, now) {
        return (Some(reply), ended);
    }
    let reply = match method {
        "ping" => ok(app, &id, json!({})),
        "time" => ok(app, &id, json!({"serverTime": now})),
        "depth" | "trades.recent" | "trades.historical" | "trades.aggregate" | "klines" | "uiKlines" | "avgPrice"
        | "ticker.24hr" | "ticker.price" | "ticker.book" => {
            use super::market_rest::{self, Ticker};
            let p = Params::from_pairs(params.iter().map(|(k, v)| (k.clone(), raw_value(v))).collect());
            let res = match method {
                "depth" => market_rest::depth(app, &p),
                "trades.recent" => market_rest::trades(app, &p),
                "trades.historical" => market_rest::historical_trades(app, &p),
                "trades.aggregate" => market_rest::agg_trades(app, &p),
                "klines" | "uiKlines" => market_rest::klines(app, &p),
                "avgPrice" => market_rest::avg_price(app, &p),
                "ticker.24hr" => market_rest::tickers(app, &p, Ticker::Day, now),
                "ticker.price" => market_rest::tickers(app, &p, Ticker::Price, now),
                _ => market_rest::tickers(app, &p, Ticker::Book, now),
            };
            match res {
                Ok(v) => ok(app, &id, v),
                Err(r) => reject(app, &id, &r),
            }
        }
        "exchangeInfo" => {
            let p = Params::from_pairs(params.iter().map(|(k, v)| (k.clone(), raw_value(v))).collect());
            match super::rest::exchange_info(app, &p, now) {
                Ok(v) => ok(app, &id, v),
                Err(r) => reject(app, &id, &r),
            }
        }
        "order.place"
        | "order.test"
        | "order.status"
        | "order.cancel"
        | "order.cancelReplace"
        | "openOrders.status"
        | "openOrders.cancelAll"
        | "allOrders"
        | "myTrades"
        | "account.status"
        | "account.commission"
        | "account.rateLimits.orders" => {
            let account = match session.authorize(app, &params, now) {
                Ok(a) => a,
                Err(r) => return (Some(reject(app, &id, &r)), Vec::new()),
            };
            let p = Params::from_pairs(params.iter().map(|(k, v)| (k.clone(), raw_value(v))).collect());
            let res = match method {
                "order.place" => {
                    let mut reply = place_order(app, &id, p, account, now, later);
                    if let Some(r) = reply.as_mut().filter(|r| r["status"] == 200) {
                        app.limits.refund(weight, now);
                        append_orders(app, r, account, now);
                    }
                    return (reply, Vec::new());
                }
                "order.test" => super::rest::order_test(app, &p, account),
                "order.status" => query_order(app, &p, account),
                "order.cancel" => {
                    let reply = super::ws_session::cancel_order(app, &id, p, account, now, later);
                    if reply.as_ref().is_some_and(|r| r["status"] == 200) {
                        app.limits.refund(weight, now);
                    }
                    return (reply, Vec::new());
                }
                "order.cancelReplace" => match super::replace::cancel_replace(app, &p, account, now) {
                    Ok(v) => Ok(v),
                    Err(Failed::Refused(r, _)) => Err(r),
                    Err(Failed::Parts { status, error, data }) => {
                        let mut v = err(app, &id, status, error.code, &error.msg);
                        v["error"]["data"] = data;
                        append_orders(app, &mut v, account, now);
                        return (Some(v), Vec::new());
                    }
                },
                "openOrders.status" => open_orders(app, &p, account),
                "openOrders.cancelAll" => super::rest::cancel_all(app, &p, account, now),
                "allOrders" => super::rest::all_orders(app, &p, account),
                "myTrades" => super::rest::my_trades(app, &p, account),
                "account.commission" => super::rest::account_commission(app, &p, account),
                "account.rateLimits.orders" => Ok(Value::Array(app.limits.orders_json(account, now).into())),
                _ => account_info(app, &p, account, now),
            };
            if res.is_ok() && rest_twin(method).is_some_and(|(m, path)| super::rest::free_when_done(&m, path)) {
                app.limits.refund(weight, now);
            }
            let mut reply = match res {
                Ok(v) => ok(app, &id, v),
                Err(r) => reject(app, &id, &r),
            };
            if method == "order.cancelReplace" {
                append_orders(app, &mut reply, account, now);
            }
            reply
        }
        "userDataStream.start" | "userDataStream.ping" | "userDataStream.stop" => {
            err(app, &id, 410, -1020, "This operation is not supported.")
        }
        _ => err(app, &id, 400, -1020, "This operation is not supported."),
    };
    (Some(reply), Vec::new())
}
