//! `GET /api/v1/events`: live updates for the console as server-sent events.
//!
//! Each message is `event: <name>\ndata: <one-line JSON>\n\n`:
//!
//! | Event | Data |
//! |---|---|
//! | `hello` | `{"venue_mode","exchange","trading_state"}`, first, on connect |
//! | `order` | an item of `GET /api/v1/orders`, on every change the order router makes (final states too) |
//! | `fill` | an item of `GET /api/v1/trades` |
//! | `state` | `{"trading_state","reason"}` |
//! | `emergency_stop` | `{"active","by","reason"}` |
//! | `strategy` | `{"id","paused","reason"}` |
//! | `rejected` | `{"strategy_id","symbol","code","reason"}` (a venue rejection adds `client_order_id`) |
//! | `connectivity` | `{"stream":"market"\|"user"\|"futures","connected","detail"}` |
//! | `alert` | `{"kind","message",...}` (venue 429, 418, order rate, unreadable messages) |
//! | `setup_alert` | `{"strategy_id","symbol","condition","message","values":{NAME:"VALUE",...},"ts_ms"}`: a strategy's setup alert (the `scanner` kind), e.g. `condition` `funding_above` with `values` `funding_rate`, `annualised_pct`, `interval_hours`, `next_funding_time`, `mark_price` |
//! | `price` | `{"symbol","price","ts"}`, at most once a second per symbol, when it changed |
//! | `log` | `{"ts","level":"WARN"\|"ERROR","target","message"}` |
//! | `lagged` | `{"missed":N}`: this client fell behind and missed N events (re-read the snapshots) |
//!
//! and a `: ping` comment every 15 s. The engine never waits for a client:
//! each stream reads the engine's and the log's bounded broadcasts at the
//! pace its socket takes bytes, and one that falls behind skips ahead (the
//! `lagged` event). At most [`MAX_STREAMS`] are open at once (503 past it);
//! every stream ends when the server stops ([`Streams::close`]).

use std::collections::{HashMap, VecDeque};
use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::http::{header, Method, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse};
use actors::events::EngineEvent;
use actors::prices::PriceEntry;
use bytes::Bytes;
use keel_core::{Decimal, Symbol};
use serde_json::{json, Value};
use tokio::sync::{broadcast, watch, OwnedSemaphorePermit, Semaphore};
use tokio::time::{interval_at, Interval, MissedTickBehavior};

use super::{authorize, ApiError, ApiResult, ApiState};
use crate::log_feed::{self, LogLine};
use crate::{notify, summary};

/// Event streams one server keeps open at once.
pub const MAX_STREAMS: usize = 8;

/// How often an idle stream says it is alive (proxies and the page's
/// reconnect logic close silent connections).
pub const PING_EVERY: Duration = Duration::from_secs(15);

/// Least time between two `price` events of one symbol on one stream.
pub const PRICE_EVERY: Duration = Duration::from_secs(1);

/// How often a stream looks at the price board for prices to send.
const PRICE_LOOK: Duration = Duration::from_millis(250);

/// The open streams of one server: their slots, and the signal that ends them.
#[derive(Debug)]
pub struct Streams {
    slots: Arc<Semaphore>,
    closing: watch::Sender<bool>,
}

impl Streams {
    /// Room for `max` streams at once.
    pub fn new(max: usize) -> Self {
        Self { slots: Arc::new(Semaphore::new(max)), closing: watch::channel(false).0 }
    }

    /// Ends every open stream (and refuses new ones), so a graceful stop of
    /// the server does not wait on connections that never finish by themselves.
    pub fn close(&self) {
        self.closing.send_replace(true);
        self.slots.close();
    }
}

/// The `GET /api/v1/events` handler.
pub(super) async fn events(req: HttpRequest, state: web::Data<ApiState>, streams: web::Data<Streams>) -> ApiResult {
    authorize(&req, &state)?;
    let Ok(slot) = streams.slots.clone().try_acquire_owned() else {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("too many event streams are open (at most {MAX_STREAMS}); close one and retry"),
        ));
    };
    let mut response = HttpResponse::Ok();
    response
        .insert_header((header::CONTENT_TYPE, "text/event-stream"))
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .insert_header(("X-Accel-Buffering", "no"))
        // The connection ends with the stream: nothing idles on a stopping server.
        .force_close();
    if req.method() == Method::HEAD {
        return Ok(response.finish());
    }
    // Subscribed before the hello is made, so nothing falls between them.
    let engine = state.handle.subscribe();
    let logs = log_feed::subscribe();
    let trading_state = match tokio::time::timeout(Duration::from_secs(2), state.handle.risk()).await {
        Ok(Ok(r)) => r.trading_state.as_str(),
        _ => "UNKNOWN",
    };
    let hello = json!({
        "venue_mode": state.config.venue.mode.as_str(),
        "exchange": state.config.exchange_in_use().map(|e| e.as_str()),
        "trading_state": trading_state,
    });
    let sources = Sources { engine, logs, board: state.handle.prices().clone(), closing: streams.closing.subscribe() };
    let feed = Feed::new(&hello, sources, slot, PING_EVERY);
    let body = futures_util::stream::unfold(feed, |mut feed| async move {
        feed.next().await.map(|bytes| (Ok::<_, Infallible>(bytes), feed))
    });
    Ok(response.streaming(body))
}

/// What one stream reads from.
struct Sources {
    engine: broadcast::Receiver<EngineEvent>,
    logs: broadcast::Receiver<LogLine>,
    board: Arc<actors::prices::PriceBoard>,
    closing: watch::Receiver<bool>,
}

/// One client's stream: what it reads from, and what it owes the client.
struct Feed {
    pending: VecDeque<Bytes>,
    engine: broadcast::Receiver<EngineEvent>,
    /// `None` once the log feed is gone (it never is while the process lives).
    logs: Option<broadcast::Receiver<LogLine>>,
    board: Arc<actors::prices::PriceBoard>,
    throttle: PriceThrottle,
    prices: Interval,
    ping: Interval,
    closing: watch::Receiver<bool>,
    /// Held while the stream is open; dropped with it when the client goes.
    _slot: OwnedSemaphorePermit,
}

impl Feed {
    /// A stream that says `hello` first and pings every `ping_every`; `slot`
    /// is held until it is dropped.
    fn new(hello: &Value, sources: Sources, slot: OwnedSemaphorePermit, ping_every: Duration) -> Self {
        let now = tokio::time::Instant::now();
        let mut ping = interval_at(now + ping_every, ping_every);
        ping.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut prices = interval_at(now, PRICE_LOOK);
        prices.set_missed_tick_behavior(MissedTickBehavior::Delay);
        Self {
            pending: VecDeque::from([frame("hello", hello)]),
            engine: sources.engine,
            logs: Some(sources.logs),
            board: sources.board,
            throttle: PriceThrottle::new(PRICE_EVERY),
            prices,
            ping,
            closing: sources.closing,
            _slot: slot,
        }
    }

    /// The next bytes for the client, or `None` when the stream ends.
    async fn next(&mut self) -> Option<Bytes> {
        loop {
            if *self.closing.borrow() {
                return None;
            }
            if let Some(bytes) = self.pending.pop_front() {
                return Some(bytes);
            }
            tokio::select! {
                biased;
                changed = self.closing.changed() => {
                    if changed.is_err() {
                        return None;
                    }
                }
                event = self.engine.recv() => match event {
                    Ok(event) => {
                        if let Some((name, data)) = engine_event(&event) {
                            return Some(frame(name, &data));
                        }
                    }
                    Err(broadcast::error::RecvError::Lagged(missed)) => return Some(lagged(missed)),
                    Err(broadcast::error::RecvError::Closed) => return None,
                },
                line = recv_log(&mut self.logs) => match line {
                    Ok(line) => return Some(frame("log", &log_json(&line))),
                    Err(broadcast::error::RecvError::Lagged(missed)) => return Some(lagged(missed)),
                    Err(broadcast::error::RecvError::Closed) => self.logs = None,
                },
                _ = self.prices.tick() => {
                    let now = Instant::now();
                    let mut board = self.board.all();
                    board.sort_by(|a, b| a.0.cmp(&b.0));
                    for (symbol, entry) in board {
                        if self.throttle.offer(&symbol, &entry, now) {
                            self.pending.push_back(frame("price", &price_json(&symbol, &entry)));
                        }
                    }
                }
                _ = self.ping.tick() => return Some(Bytes::from_static(b": ping\n\n")),
            }
        }
    }
}

/// The next log line, or never when there is no log feed.
async fn recv_log(logs: &mut Option<broadcast::Receiver<LogLine>>) -> Result<LogLine, broadcast::error::RecvError> {
    match logs {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

/// One server-sent event. The data is one line: JSON escapes every newline.
pub fn frame(name: &str, data: &Value) -> Bytes {
    Bytes::from(format!("event: {name}\ndata: {data}\n\n"))
}

fn lagged(missed: u64) -> Bytes {
    frame("lagged", &json!({ "missed": missed }))
}

fn log_json(line: &LogLine) -> Value {
    serde_json::to_value(line).unwrap_or_default()
}

fn price_json(symbol: &Symbol, entry: &PriceEntry) -> Value {
    json!({ "symbol": symbol.as_str(), "price": entry.price.normalize().to_string(), "ts": entry.venue_ms })
}

/// An engine event as a live event (name and data), or `None` for the ones
/// the console does not show (start-up and shutdown).
pub fn engine_event(event: &EngineEvent) -> Option<(&'static str, Value)> {
    Some(match event {
        EngineEvent::Started { .. } | EngineEvent::ShuttingDown => return None,
        EngineEvent::OrderChanged(order) => ("order", serde_json::to_value(order).unwrap_or_default()),
        EngineEvent::Fill(fill) => ("fill", summary::fill_json(fill)),
        EngineEvent::TradingStateChanged { state, reason } => {
            ("state", json!({ "trading_state": state.as_str(), "reason": reason }))
        }
        EngineEvent::EmergencyStopSet { reason, by } => {
            ("emergency_stop", json!({ "active": true, "by": by, "reason": reason }))
        }
        EngineEvent::EmergencyStopCleared { by } => {
            ("emergency_stop", json!({ "active": false, "by": by, "reason": "" }))
        }
        EngineEvent::StrategyPaused { strategy_id, reason } => {
            ("strategy", json!({ "id": strategy_id.as_str(), "paused": true, "reason": reason }))
        }
        EngineEvent::StrategyResumed { strategy_id } => {
            ("strategy", json!({ "id": strategy_id.as_str(), "paused": false, "reason": "" }))
        }
        EngineEvent::RiskRejected { strategy_id, symbol, code, reason } => (
            "rejected",
            json!({ "strategy_id": strategy_id.as_str(), "symbol": symbol.as_str(), "code": code, "reason": reason }),
        ),
        EngineEvent::OrderRejected { strategy_id, symbol, client_order_id, reason } => (
            "rejected",
            json!({
                "strategy_id": strategy_id.as_str(),
                "symbol": symbol.as_str(),
                "code": "order_rejected",
                "reason": reason,
                "client_order_id": client_order_id,
            }),
        ),
        EngineEvent::Connectivity { stream, connected, detail } => {
            let stream = stream.as_str();
            ("connectivity", json!({ "stream": stream, "connected": connected, "detail": detail }))
        }
        EngineEvent::VenueAlert(alert) => {
            let mut data = json!({
                "kind": notify::alert_kind(alert),
                "message": notify::event_text(event, false).unwrap_or_default(),
            });
            // The alert's own fields (`retry_after_ms`, `stream`, `detail`) beside them.
            if let (Some(out), Ok(Value::Object(tagged))) = (data.as_object_mut(), serde_json::to_value(alert)) {
                for fields in tagged.into_values() {
                    if let Value::Object(fields) = fields {
                        out.extend(fields);
                    }
                }
            }
            ("alert", data)
        }
        EngineEvent::UniverseChanged { joined, left, members } => {
            let names = |v: &[Symbol]| v.iter().map(|s| s.as_str().to_string()).collect::<Vec<_>>();
            ("universe", json!({ "joined": names(joined), "left": names(left), "members": names(members) }))
        }
        EngineEvent::UniverseInstanceRetired { strategy_id, symbol } => {
            ("universe_retired", json!({ "strategy_id": strategy_id.as_str(), "symbol": symbol.as_str() }))
        }
        EngineEvent::SetupAlert(alert) => ("setup_alert", serde_json::to_value(alert).unwrap_or_default()),
        EngineEvent::Exit(exit) => ("exit", serde_json::to_value(exit).unwrap_or_default()),
    })
}

/// Decides which prices a stream sends: a symbol's price when it changed
/// since the last one sent, and at most once per `every`.
#[derive(Debug)]
pub struct PriceThrottle {
    every: Duration,
    sent: HashMap<Symbol, (Instant, Decimal)>,
}

impl PriceThrottle {
    /// Nothing sent yet.
    pub fn new(every: Duration) -> Self {
        Self { every, sent: HashMap::new() }
    }

    /// True when `symbol`'s `entry` should be sent at `now` (and then counts it as sent).
    pub fn offer(&mut self, symbol: &Symbol, entry: &PriceEntry, now: Instant) -> bool {
        if let Some((at, price)) = self.sent.get(symbol) {
            if *price == entry.price || now.saturating_duration_since(*at) < self.every {
                return false;
            }
        }
        self.sent.insert(symbol.clone(), (now, entry.price));
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use keel_core::fill::{Fill, TradeId};
    use keel_core::order::{Order, OrderIntent, OrderStatus, Side};
    use keel_core::trading::TradingState;
    use keel_core::venue::{StreamKind, VenueAlert};
    use keel_core::StrategyId;

    fn d(text: &str) -> Decimal {
        text.parse().unwrap_or_default()
    }

    fn entry(price: Decimal, at: Instant) -> PriceEntry {
        PriceEntry { price, at, venue_ms: 0 }
    }

    #[test]
    fn prices_go_out_when_changed_and_at_most_once_per_interval() {
        let t0 = Instant::now();
        let ms = |n: u64| t0 + Duration::from_millis(n);
        let btc = Symbol::new("BTCUSDT");
        let eth = Symbol::new("ETHUSDT");
        // (symbol, price, at ms, sent?)
        let cases = [
            (&btc, d("100"), 0, true),     // the first price of a symbol
            (&eth, d("5"), 10, true),      // another symbol has its own budget
            (&btc, d("101"), 500, false),  // changed, too soon
            (&btc, d("102"), 999, false),  // still too soon
            (&btc, d("102"), 1000, true),  // a second later
            (&btc, d("102"), 2500, false), // unchanged: nothing new to say
            (&btc, d("103"), 2600, true),  // changed, long enough after the last one sent
            (&eth, d("6"), 1009, false),   // eth's second is not up yet
            (&eth, d("6"), 1010, true),
        ];
        let mut throttle = PriceThrottle::new(Duration::from_secs(1));
        for (i, (symbol, price, at, want)) in cases.into_iter().enumerate() {
            assert_eq!(
                throttle.offer(symbol, &entry(price, ms(at)), ms(at)),
                want,
                "case {i}: {symbol} {price} at {at} ms"
            );
        }
    }

    fn text(bytes: Option<Bytes>) -> String {
        bytes.map(|b| String::from_utf8_lossy(&b).into_owned()).unwrap_or_else(|| "<end>".into())
    }

    #[tokio::test]
    async fn a_stream_says_hello_then_lagged_when_behind_pings_when_idle_and_ends_when_closed() {
        let (events, engine) = broadcast::channel(4);
        let (_lines, logs) = broadcast::channel(4);
        let streams = Streams::new(1);
        let slot = streams.slots.clone().try_acquire_owned().ok();
        let Some(slot) = slot else { panic!("a free slot") };
        let board = Arc::new(actors::prices::PriceBoard::default());
        let sources = Sources { engine, logs, board, closing: streams.closing.subscribe() };
        let mut feed = Feed::new(&json!({ "venue_mode": "paper" }), sources, slot, Duration::from_millis(20));
        // Six events into room for four, before the client read any.
        for n in 0..6 {
            let _ = events.send(EngineEvent::StrategyResumed { strategy_id: StrategyId::new(&format!("s{n}")) });
        }
        assert_eq!(text(feed.next().await), "event: hello\ndata: {\"venue_mode\":\"paper\"}\n\n");
        assert_eq!(text(feed.next().await), "event: lagged\ndata: {\"missed\":2}\n\n");
        let next = text(feed.next().await);
        assert!(next.starts_with("event: strategy\ndata: {\"id\":\"s2\""), "{next}");
        assert!(streams.slots.clone().try_acquire_owned().is_err(), "the stream holds its slot");
        // Nothing more to say: a ping keeps the connection known to be alive.
        assert_eq!(
            text(feed.next().await),
            "event: strategy\ndata: {\"id\":\"s3\",\"paused\":false,\"reason\":\"\"}\n\n"
        );
        let _ = (feed.next().await, feed.next().await);
        assert_eq!(text(feed.next().await), ": ping\n\n");
        streams.close();
        assert_eq!(text(feed.next().await), "<end>");
        drop(feed);
        assert!(streams.slots.clone().try_acquire_owned().is_err(), "a closed server takes no new streams");
    }

    #[test]
    fn order_changes_are_live_events_not_notifications() {
        let event = EngineEvent::OrderChanged(order());
        assert_eq!(notify::event_text(&event, true), None, "the chat would hear of every order change");
        assert!(engine_event(&event).is_some());
    }

    #[test]
    fn a_frame_is_one_event_with_one_data_line() {
        let data = json!({ "message": "line one\nline two", "n": 1 });
        let text = String::from_utf8(frame("log", &data).to_vec()).unwrap_or_default();
        assert_eq!(text, "event: log\ndata: {\"message\":\"line one\\nline two\",\"n\":1}\n\n");
        assert_eq!(text.matches('\n').count(), 3, "a newline in the data would split the event");
    }

    fn order() -> Order {
        let intent = OrderIntent::market(StrategyId::new("tv"), Symbol::new("BTCUSDT"), Side::Buy, d("0.01"));
        let mut o = Order::from_intent(&intent, "kl-1".into(), 1_700_000_000_000);
        o.status = OrderStatus::Filled;
        o
    }

    fn fill() -> Fill {
        Fill {
            trade_id: TradeId::from(7u64),
            client_order_id: "kl-1".into(),
            strategy_id: StrategyId::new("tv"),
            symbol: Symbol::new("BTCUSDT"),
            side: Side::Buy,
            price: d("65000.10"),
            qty: d("0.01"),
            fee: d("0.65"),
            fee_asset: "USDT".into(),
            is_maker: false,
            ts_ms: 1_700_000_000_123,
            tag: None,
        }
    }

    #[test]
    fn engine_events_become_the_documented_live_events() {
        let tv = StrategyId::new("tv");
        let btc = Symbol::new("BTCUSDT");
        let mut order_json = serde_json::to_value(order()).unwrap_or_default();
        assert_eq!(order_json["status"], json!("filled"), "the order's own JSON: {order_json}");
        let cases: Vec<(EngineEvent, Option<(&str, Value)>)> = vec![
            (EngineEvent::Started { trading_state: TradingState::Active }, None),
            (EngineEvent::ShuttingDown, None),
            (EngineEvent::OrderChanged(order()), Some(("order", order_json.take()))),
            (EngineEvent::Fill(fill()), Some(("fill", summary::fill_json(&fill())))),
            (
                EngineEvent::TradingStateChanged { state: TradingState::Halted, reason: "drawdown".into() },
                Some(("state", json!({ "trading_state": "HALTED", "reason": "drawdown" }))),
            ),
            (
                EngineEvent::EmergencyStopSet { reason: "test".into(), by: "web:127.0.0.1".into() },
                Some(("emergency_stop", json!({ "active": true, "by": "web:127.0.0.1", "reason": "test" }))),
            ),
            (
                EngineEvent::EmergencyStopCleared { by: "telegram".into() },
                Some(("emergency_stop", json!({ "active": false, "by": "telegram", "reason": "" }))),
            ),
            (
                EngineEvent::StrategyPaused { strategy_id: tv.clone(), reason: "protection".into() },
                Some(("strategy", json!({ "id": "tv", "paused": true, "reason": "protection" }))),
            ),
            (
                EngineEvent::StrategyResumed { strategy_id: tv.clone() },
                Some(("strategy", json!({ "id": "tv", "paused": false, "reason": "" }))),
            ),
            (
                EngineEvent::RiskRejected {
                    strategy_id: tv.clone(),
                    symbol: btc.clone(),
                    code: "max_order_notional".into(),
                    reason: "too big".into(),
                },
                Some((
                    "rejected",
                    json!({ "strategy_id": "tv", "symbol": "BTCUSDT", "code": "max_order_notional", "reason": "too big" }),
                )),
            ),
            (
                EngineEvent::OrderRejected {
                    strategy_id: tv,
                    symbol: btc,
                    client_order_id: "kl-2".into(),
                    reason: "venue -2010: insufficient balance".into(),
                },
                Some((
                    "rejected",
                    json!({ "strategy_id": "tv", "symbol": "BTCUSDT", "code": "order_rejected",
                            "reason": "venue -2010: insufficient balance", "client_order_id": "kl-2" }),
                )),
            ),
            (
                EngineEvent::Connectivity { stream: StreamKind::User, connected: false, detail: "eof".into() },
                Some(("connectivity", json!({ "stream": "user", "connected": false, "detail": "eof" }))),
            ),
            (
                EngineEvent::Connectivity { stream: StreamKind::Futures, connected: true, detail: String::new() },
                Some(("connectivity", json!({ "stream": "futures", "connected": true, "detail": "" }))),
            ),
            (
                EngineEvent::VenueAlert(VenueAlert::Banned { retry_after_ms: 60_000 }),
                Some((
                    "alert",
                    json!({ "kind": "banned", "retry_after_ms": 60_000,
                            "message": "Venue 418 (IP banned): nothing is sent for 1 min" }),
                )),
            ),
        ];
        for (event, want) in cases {
            let got = engine_event(&event);
            assert_eq!(got.as_ref().map(|(n, v)| (*n, v)), want.as_ref().map(|(n, v)| (*n, v)), "{event:?}");
        }
    }
}
