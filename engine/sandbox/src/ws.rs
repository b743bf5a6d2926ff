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

use super::exchange::{kline_obj, MarketKind, MarketMsg, Reject};
use super::rest::{account_info, cancel_order, interval_ms, open_orders, query_order, Params};
use super::ws_session::{place_order, Session};
use super::{App, ConnCmd};

/// `/ws` with no stream: subscriptions come by `SUBSCRIBE`.
pub(crate) async fn raw_root(State(app): State<Arc<App>>, up: WebSocketUpgrade) -> Response {
    up.on_upgrade(move |s| market_conn(app, s, Vec::new(), false))
}

/// `/ws/<stream>` (raw payloads).
pub(crate) async fn raw_stream(
    State(app): State<Arc<App>>,
    Path(stream): Path<String>,
    up: WebSocketUpgrade,
) -> Response {
    let streams = stream.split('/').map(str::to_string).filter(|s| !s.is_empty()).collect();
    up.on_upgrade(move |s| market_conn(app, s, streams, false))
}

/// `/stream?streams=a/b/c` (combined payloads `{stream, data}`).
pub(crate) async fn combined(
    State(app): State<Arc<App>>,
    Query(q): Query<HashMap<String, String>>,
    up: WebSocketUpgrade,
) -> Response {
    let streams = q
        .get("streams")
        .map(|s| s.split('/').map(str::to_string).filter(|s| !s.is_empty()).collect())
        .unwrap_or_default();
    up.on_upgrade(move |s| market_conn(app, s, streams, true))
}

fn text(v: &Value) -> Message {
    Message::Text(Utf8Bytes::from(v.to_string()))
}

/// Per-connection aggregation of 1m bars into a longer interval.
#[derive(Default)]
struct Agg {
    closed_part: Option<Bar>,
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
        (MarketKind::Bar { bar, closed, trades }, k) if k.starts_with("kline_") => {
            let interval_s = &k[6..];
            let interval = interval_ms(interval_s)?;
            let (out, out_closed) = if interval == 60_000 {
                (bar.clone(), *closed)
            } else {
                let agg = aggs.entry(stream.to_string()).or_default();
                let merged = merge(agg.closed_part.as_ref(), bar, interval);
                if *closed {
                    if bar.close_time == merged.close_time {
                        agg.closed_part = None;
                        (merged, true)
                    } else {
                        agg.closed_part = Some(merged.clone());
                        (merged, false)
                    }
                } else {
                    (merged, false)
                }
            };
            Some(
                json!({"e": "kline", "E": now, "s": out.symbol.as_str(), "k": kline_obj(&out, interval_s, out_closed, *trades)}),
            )
        }
        _ => None,
    }
}

async fn market_conn(app: Arc<App>, mut socket: WebSocket, mut streams: Vec<String>, combined: bool) {
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
                    let reply = control(&t, &mut streams);
                    if socket.send(text(&reply)).await.is_err() {
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

/// SUBSCRIBE / UNSUBSCRIBE / LIST_SUBSCRIPTIONS.
fn control(t: &str, streams: &mut Vec<String>) -> Value {
    let Ok(v) = serde_json::from_str::<Value>(t) else {
        return json!({"code": 3, "msg": "Invalid JSON: expected value at line 1 column 1"});
    };
    let id = v.get("id").cloned().unwrap_or(Value::Null);
    let params: Vec<String> = v
        .get("params")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).map(str::to_string).collect())
        .unwrap_or_default();
    match v.get("method").and_then(Value::as_str) {
        Some("SUBSCRIBE") => {
            for p in params {
                if !streams.contains(&p) {
                    streams.push(p);
                }
            }
            json!({"result": null, "id": id})
        }
        Some("UNSUBSCRIBE") => {
            streams.retain(|s| !params.contains(s));
            json!({"result": null, "id": id})
        }
        Some("LIST_SUBSCRIPTIONS") => json!({"result": streams, "id": id}),
        _ => {
            json!({"code": 2, "msg": "Invalid request: unknown variant, expected one of SUBSCRIBE, UNSUBSCRIBE, LIST_SUBSCRIPTIONS", "id": id})
        }
    }
}

/// `/ws-api/v3`.
pub(crate) async fn ws_api(State(app): State<Arc<App>>, up: WebSocketUpgrade) -> Response {
    if app.faults.ws_api_refused() {
        let mut refused = Response::new(axum::body::Body::empty());
        *refused.status_mut() = axum::http::StatusCode::SERVICE_UNAVAILABLE;
        return refused;
    }
    up.on_upgrade(move |s| api_conn(app, s))
}

fn rate_limits(app: &App) -> Value {
    json!([{"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1, "limit": app.cfg.weight_limit_1m, "count": 2}])
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

async fn api_conn(app: Arc<App>, mut socket: WebSocket) {
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
            Some(v) = later_rx.recv() => {
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
                    if let Some(reply) = reply {
                        if socket.send(text(&reply)).await.is_err() {
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
    let params = v.get("params").and_then(Value::as_object).cloned().unwrap_or_default();
    let now = app.faults.server_now_ms();
    let method = v.get("method").and_then(Value::as_str).unwrap_or("");
    app.faults.note_ws_request(method);
    if let Some((reply, ended)) = session.handle(app, &id, method, &params, now) {
        return (Some(reply), ended);
    }
    let reply = match method {
        "ping" => ok(app, &id, json!({})),
        "time" => ok(app, &id, json!({"serverTime": now})),
        "exchangeInfo" => {
            let p = Params::from_pairs(params.iter().map(|(k, v)| (k.clone(), raw_value(v))).collect());
            match super::rest::exchange_info(app, &p, now) {
                Ok(v) => ok(app, &id, v),
                Err(r) => reject(app, &id, &r),
            }
        }
        "order.place" | "order.test" | "order.status" | "order.cancel" | "openOrders.status" | "account.status" => {
            let account = match session.authorize(app, &params, now) {
                Ok(a) => a,
                Err(r) => return (Some(reject(app, &id, &r)), Vec::new()),
            };
            let p = Params::from_pairs(params.iter().map(|(k, v)| (k.clone(), raw_value(v))).collect());
            let res = match method {
                "order.place" => return (place_order(app, &id, p, account, now, later), Vec::new()),
                "order.test" => super::rest::order_test(app, &p, account),
                "order.status" => query_order(app, &p, account),
                "order.cancel" => cancel_order(app, &p, account, now),
                "openOrders.status" => open_orders(app, &p, account),
                _ => account_info(app, &p, account, now),
            };
            match res {
                Ok(v) => ok(app, &id, v),
                Err(r) => reject(app, &id, &r),
            }
        }
        "userDataStream.start" | "userDataStream.ping" | "userDataStream.stop" => {
            err(app, &id, 410, -1020, "This operation is not supported.")
        }
        _ => err(app, &id, 400, -1020, "This operation is not supported."),
    };
    (Some(reply), Vec::new())
}
