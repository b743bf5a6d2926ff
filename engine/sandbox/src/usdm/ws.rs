//! The futures streams on the routes Binance has served since 2026-04-23:
//! `/market/stream?streams=…` and `/market/ws[/…]` carry the mark-price
//! streams; `/public/…` accepts the same requests and, as on Binance, never
//! delivers a `/market` stream (it fails silently). Any path tail after
//! `/ws/` is accepted (ccxt.pro connects to `/market/ws/<n>`): the parts
//! that are not stream names are ignored.
//!
//! Streams: `<symbol>@markPrice` (every 3 s), `<symbol>@markPrice@1s`,
//! `!markPrice@arr[@1s]` (every perpetual, plus one COIN-M item with `st: 2`
//! so clients exercise their filter). Control messages `SUBSCRIBE`,
//! `UNSUBSCRIBE`, `LIST_SUBSCRIPTIONS`, `SET_PROPERTY` and `GET_PROPERTY`
//! answer with the request's `id` as sent (a number, or a UUID string as the
//! official SDK sends). A client that sends more than
//! [`MAX_INCOMING_PER_S`] messages (control messages, pings and pongs) in
//! a second is disconnected, as on Binance.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, Query, State};
use axum::response::Response;
use serde_json::{json, Value};
use tokio::sync::broadcast::error::RecvError;

use super::super::{App, ConnCmd};
use super::Snapshot;

/// Incoming messages a connection may send per second.
pub const MAX_INCOMING_PER_S: u32 = 10;

/// Which route a connection came in on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Route {
    /// `/market`: mark prices, tickers, klines.
    Market,
    /// `/public`: book data only (nothing this sandbox serves on futures).
    Public,
}

fn list(s: &str) -> Vec<String> {
    s.split('/').map(str::to_string).filter(|s| !s.is_empty()).collect()
}

fn combined_streams(q: &HashMap<String, String>) -> Vec<String> {
    q.get("streams").map(|s| list(s)).unwrap_or_default()
}

/// `/market/stream?streams=…`.
pub(crate) async fn market_combined(
    State(app): State<Arc<App>>,
    Query(q): Query<HashMap<String, String>>,
    up: WebSocketUpgrade,
) -> Response {
    up.on_upgrade(move |s| conn(app, s, Route::Market, combined_streams(&q), true))
}

/// `/public/stream?streams=…`.
pub(crate) async fn public_combined(
    State(app): State<Arc<App>>,
    Query(q): Query<HashMap<String, String>>,
    up: WebSocketUpgrade,
) -> Response {
    up.on_upgrade(move |s| conn(app, s, Route::Public, combined_streams(&q), true))
}

/// `/market/ws`.
pub(crate) async fn market_raw(State(app): State<Arc<App>>, up: WebSocketUpgrade) -> Response {
    up.on_upgrade(move |s| conn(app, s, Route::Market, Vec::new(), false))
}

/// `/market/ws/<anything>`.
pub(crate) async fn market_raw_tail(
    State(app): State<Arc<App>>,
    Path(tail): Path<String>,
    up: WebSocketUpgrade,
) -> Response {
    up.on_upgrade(move |s| conn(app, s, Route::Market, list(&tail), false))
}

/// `/public/ws`.
pub(crate) async fn public_raw(State(app): State<Arc<App>>, up: WebSocketUpgrade) -> Response {
    up.on_upgrade(move |s| conn(app, s, Route::Public, Vec::new(), false))
}

/// `/public/ws/<anything>`.
pub(crate) async fn public_raw_tail(
    State(app): State<Arc<App>>,
    Path(tail): Path<String>,
    up: WebSocketUpgrade,
) -> Response {
    up.on_upgrade(move |s| conn(app, s, Route::Public, list(&tail), false))
}

/// A mark-price stream's symbol (lower case, or `None` for the
/// all-market array) and whether it is the 1 s variant; none for a name
/// that is not a mark-price stream.
fn mark_stream(name: &str) -> Option<(Option<&str>, bool)> {
    let (head, fast) = match name.strip_suffix("@1s") {
        Some(h) => (h, true),
        None => (name, false),
    };
    if head == "!markPrice@arr" {
        return Some((None, fast));
    }
    head.strip_suffix("@markPrice").filter(|s| !s.is_empty() && !s.contains('@')).map(|s| (Some(s), fast))
}

/// The payload of mark-price stream `name` from `snaps`.
fn payload(name: &str, snaps: &[Snapshot]) -> Option<Value> {
    let (symbol, _) = mark_stream(name)?;
    match symbol {
        Some(lower) => snaps.iter().find(|s| s.symbol.to_lowercase() == lower).map(Snapshot::event_json),
        None => {
            let mut all: Vec<Value> = snaps.iter().map(Snapshot::event_json).collect();
            // One COIN-M item, as the merged all-market stream carries them.
            if let Some(first) = snaps.first() {
                let mut cm = first.event_json();
                cm["s"] = format!("{}USD_PERP", first.symbol.trim_end_matches("USDT")).into();
                cm["st"] = 2.into();
                all.push(cm);
            }
            Some(Value::Array(all))
        }
    }
}

/// Counts one incoming message; true past [`MAX_INCOMING_PER_S`] in the
/// current second.
fn too_many(window: &mut (tokio::time::Instant, u32)) -> bool {
    let now = tokio::time::Instant::now();
    if now.duration_since(window.0) >= Duration::from_secs(1) {
        *window = (now, 0);
    }
    window.1 += 1;
    window.1 > MAX_INCOMING_PER_S
}

fn text(v: &Value) -> Message {
    Message::Text(Utf8Bytes::from(v.to_string()))
}

/// Answers one control message; `None` when it asks for nothing to be sent.
fn control(raw: &str, streams: &mut Vec<String>, combined: &mut bool) -> Value {
    let Ok(req) = serde_json::from_str::<Value>(raw) else {
        return json!({"error": {"code": 3, "msg": "Invalid JSON: expected a request object"}, "id": null});
    };
    let id = req.get("id").cloned().unwrap_or(Value::Null);
    let params: Vec<Value> = req.get("params").and_then(Value::as_array).cloned().unwrap_or_default();
    let names = || params.iter().filter_map(Value::as_str).map(str::to_string).collect::<Vec<_>>();
    match req.get("method").and_then(Value::as_str) {
        Some("SUBSCRIBE") => {
            for n in names() {
                if !streams.contains(&n) {
                    streams.push(n);
                }
            }
            json!({"result": null, "id": id})
        }
        Some("UNSUBSCRIBE") => {
            let gone = names();
            streams.retain(|s| !gone.contains(s));
            json!({"result": null, "id": id})
        }
        Some("LIST_SUBSCRIPTIONS") => json!({"result": streams, "id": id}),
        Some("SET_PROPERTY") if params.first().and_then(Value::as_str) == Some("combined") => {
            match params.get(1).and_then(Value::as_bool) {
                Some(b) => {
                    *combined = b;
                    json!({"result": null, "id": id})
                }
                None => {
                    json!({"error": {"code": 2, "msg": "Invalid request: property value must be a boolean"}, "id": id})
                }
            }
        }
        Some("GET_PROPERTY") if params.first().and_then(Value::as_str) == Some("combined") => {
            json!({"result": *combined, "id": id})
        }
        Some("SET_PROPERTY" | "GET_PROPERTY") => json!({"error": {"code": 0, "msg": "Unknown property"}, "id": id}),
        _ => json!({"error": {"code": 2, "msg": "Invalid request: unknown method"}, "id": id}),
    }
}

async fn conn(app: Arc<App>, mut socket: WebSocket, route: Route, mut streams: Vec<String>, mut combined: bool) {
    let mut cmds = app.faults.subscribe();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut ping = tokio::time::interval(Duration::from_millis(app.cfg.ping_interval_ms.max(1000)));
    ping.tick().await;
    let mut n: u64 = 0;
    let mut incoming = (tokio::time::Instant::now(), 0u32);
    let open = app.faults.open_futures_stream(&streams);
    loop {
        tokio::select! {
            _ = tick.tick() => {
                n += 1;
                // `/public` accepts mark-price subscriptions and stays silent.
                if route != Route::Market {
                    continue;
                }
                let due: Vec<&String> = streams
                    .iter()
                    .filter(|s| mark_stream(s).is_some_and(|(_, fast)| fast || (n - 1).is_multiple_of(3)))
                    .collect();
                if due.is_empty() {
                    continue;
                }
                app.catch_up(app.faults.server_now_ms());
                let snaps = {
                    let st = app.ex.lock();
                    app.usdm.snapshots(&st)
                };
                for name in due {
                    let Some(data) = payload(name, &snaps) else { continue };
                    let msg = if combined { json!({"stream": name, "data": data}) } else { data };
                    if socket.send(text(&msg)).await.is_err() {
                        return;
                    }
                }
            }
            _ = ping.tick() => {
                if socket.send(Message::Ping(Default::default())).await.is_err() {
                    return;
                }
            }
            cmd = cmds.recv() => match cmd {
                Ok(ConnCmd::Drop) | Err(RecvError::Closed) => return,
                Ok(ConnCmd::ServerShutdown) => {
                    let _ = socket.send(Message::Close(None)).await;
                    return;
                }
                Err(RecvError::Lagged(_)) => {}
            },
            msg = socket.recv() => match msg {
                None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return,
                Some(Ok(_)) if too_many(&mut incoming) => {
                    let _ = socket.send(Message::Close(None)).await;
                    return;
                }
                Some(Ok(Message::Text(t))) => {
                    let answer = control(t.as_str(), &mut streams, &mut combined);
                    open.set(&streams);
                    if socket.send(text(&answer)).await.is_err() {
                        return;
                    }
                }
                Some(Ok(_)) => {}
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mark_stream_names_are_recognised() {
        let cases = [
            ("btcusdt@markPrice", Some((Some("btcusdt"), false))),
            ("btcusdt@markPrice@1s", Some((Some("btcusdt"), true))),
            ("!markPrice@arr", Some((None, false))),
            ("!markPrice@arr@1s", Some((None, true))),
            ("btcusdt@depth", None),
            ("1", None),
            ("@markPrice", None),
        ];
        for (name, want) in cases {
            assert_eq!(mark_stream(name), want, "{name}");
        }
    }

    #[test]
    fn control_answers_echo_string_ids() {
        let (mut streams, mut combined) = (Vec::new(), false);
        let id = "5494febb-d167-46a2-996d-70533eb4d976";
        let sub = format!(r#"{{"method":"SUBSCRIBE","params":["btcusdt@markPrice"],"id":"{id}"}}"#);
        assert_eq!(control(&sub, &mut streams, &mut combined), json!({"result": null, "id": id}));
        let list = control(r#"{"method":"LIST_SUBSCRIPTIONS","id":3}"#, &mut streams, &mut combined);
        assert_eq!(list, json!({"result": ["btcusdt@markPrice"], "id": 3}));
        control(r#"{"method":"SET_PROPERTY","params":["combined",true],"id":4}"#, &mut streams, &mut combined);
        assert!(combined);
        control(r#"{"method":"UNSUBSCRIBE","params":["btcusdt@markPrice"],"id":5}"#, &mut streams, &mut combined);
        assert!(streams.is_empty());
    }
}
