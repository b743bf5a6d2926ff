//! The Coinbase Advanced Trade WebSocket endpoints (§6): market data at
//! [`MARKET_PATH`] and user data at [`USER_PATH`], two paths on the
//! sandbox's one listener standing for Coinbase's two hosts
//! (`advanced-trade-ws` and `advanced-trade-ws-user`).
//!
//! One channel per subscribe message; a snapshot and then the
//! `subscriptions` acknowledgement listing everything the connection has;
//! one `sequence_num` per connection across all channels, from 0. Market
//! data is polled every [`POLL_MS`] from the shared exchange (the book,
//! tape and bars REST reads) and sent when it changed; the `user` channel
//! follows the exchange's user stream and sends each changed order's whole
//! state. A connection with no subscribe within 5 s, or silent for the idle
//! time (90 s; `heartbeats` keeps it open), is closed, as Coinbase does.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::ws::{Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use serde_json::{json, Value};
use tokio::sync::broadcast::error::RecvError;

use keel_core::instrument::Instrument;

use super::feeds::{self, Book};
use super::ids::product_id;
use super::jwt::verify_ws;
use super::rest::user_uuid;
use super::user_feed::{self, SNAPSHOT_BATCH};
use crate::{App, ConnCmd};

/// The market-data endpoint's path (Coinbase: `wss://advanced-trade-ws.coinbase.com`).
pub const MARKET_PATH: &str = "/coinbase/ws";
/// The user-data endpoint's path (Coinbase: `wss://advanced-trade-ws-user.coinbase.com`).
pub const USER_PATH: &str = "/coinbase/ws-user";

/// How often market data is checked for changes (ms). `market_trades`
/// batches 250 ms as documented; level 2 and tickers go out at the same pace.
const POLL_MS: u64 = 250;

/// `ticker_batch` interval (5 s, §6.4).
const TICKER_BATCH_MS: u64 = 5_000;

/// The error every refused subscribe gets: Coinbase answers a bad or missing
/// JWT and an unknown channel name alike (§6.2, §11 #1, #3).
const AUTH_FAILURE: &str = "authentication failure";

/// The channels a subscribe may name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
enum Channel {
    Heartbeats,
    Candles,
    MarketTrades,
    Status,
    Ticker,
    TickerBatch,
    Level2,
    User,
}

impl Channel {
    fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "heartbeats" => Self::Heartbeats,
            "candles" => Self::Candles,
            "market_trades" => Self::MarketTrades,
            "status" => Self::Status,
            "ticker" => Self::Ticker,
            "ticker_batch" => Self::TickerBatch,
            "level2" => Self::Level2,
            "user" => Self::User,
            _ => return None,
        })
    }

    /// The subscribe name (the `subscriptions` key).
    fn name(self) -> &'static str {
        match self {
            Self::Heartbeats => "heartbeats",
            Self::Candles => "candles",
            Self::MarketTrades => "market_trades",
            Self::Status => "status",
            Self::Ticker => "ticker",
            Self::TickerBatch => "ticker_batch",
            Self::Level2 => "level2",
            Self::User => "user",
        }
    }

    /// Whether a subscribe must name products.
    fn needs_products(self) -> bool {
        !matches!(self, Self::Heartbeats | Self::Status | Self::User)
    }
}

/// Which endpoint a connection came in on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Endpoint {
    Market,
    User,
}

impl Endpoint {
    /// The user endpoint serves `user` and `heartbeats` only; the market
    /// endpoint everything (`user` as a failover, §6.1).
    fn serves(self, c: Channel) -> bool {
        self == Endpoint::Market || matches!(c, Channel::User | Channel::Heartbeats)
    }
}

/// `GET /coinbase/ws`: the market-data endpoint.
pub(crate) async fn market(State(app): State<Arc<App>>, headers: HeaderMap, up: WebSocketUpgrade) -> Response {
    upgrade(app, headers, up, Endpoint::Market)
}

/// `GET /coinbase/ws-user`: the user-data endpoint.
pub(crate) async fn user(State(app): State<Arc<App>>, headers: HeaderMap, up: WebSocketUpgrade) -> Response {
    upgrade(app, headers, up, Endpoint::User)
}

fn upgrade(app: Arc<App>, headers: HeaderMap, up: WebSocketUpgrade, endpoint: Endpoint) -> Response {
    // The official SDK counts its reconnects in this header (§6.7).
    if let Some(n) = headers.get("x-cb-retry-counter").and_then(|v| v.to_str().ok()) {
        tracing::info!(retry = n, "coinbase sandbox: a WebSocket client reconnects");
    }
    if app.faults.ws_api_refused() {
        let mut refused = Response::new(axum::body::Body::empty());
        *refused.status_mut() = axum::http::StatusCode::SERVICE_UNAVAILABLE;
        return refused;
    }
    up.on_upgrade(move |s| Conn::new(app, endpoint).run(s))
}

/// The `user` subscription of a connection.
struct UserSub {
    account: u32,
    products: Vec<String>,
    /// Each open order's state as last sent (an unchanged state is not sent
    /// again, and a change no execution reports — `CANCEL_QUEUED` — is
    /// found by looking again at each poll).
    sent: HashMap<u64, Value>,
    /// Orders sent in a final state (nothing more to send about them).
    done: HashSet<u64>,
}

impl UserSub {
    /// Records `order` as sent; false if it was already sent in this state.
    fn note(&mut self, id: u64, order: &Value) -> bool {
        if self.done.contains(&id) || self.sent.get(&id) == Some(order) {
            return false;
        }
        let final_state = matches!(order["status"].as_str(), Some("FILLED" | "CANCELLED" | "EXPIRED" | "FAILED"));
        if final_state {
            self.sent.remove(&id);
            self.done.insert(id);
        } else {
            self.sent.insert(id, order.clone());
        }
        true
    }
}

/// One connection's state.
struct Conn {
    app: Arc<App>,
    endpoint: Endpoint,
    opened: Instant,
    /// The next `sequence_num`.
    seq: u64,
    /// Products by channel (market channels).
    subs: BTreeMap<Channel, BTreeSet<String>>,
    user: Option<UserSub>,
    heartbeats: bool,
    heartbeat_counter: u64,
    subscribed_once: bool,
    last_sent: Instant,
    books: HashMap<String, Book>,
    last_trade: HashMap<String, Option<u64>>,
    tickers: HashMap<String, Value>,
    candles: HashMap<String, Value>,
    batched: HashMap<String, Value>,
}

/// What a subscribe or unsubscribe asked for.
struct Request {
    subscribe: bool,
    channel: Channel,
    products: Vec<String>,
    jwt: Option<String>,
}

/// Reads a control message; the error frame's message when it is refused.
fn read_request(text: &str) -> Result<Request, String> {
    let v: Value = serde_json::from_str(text).map_err(|_| "malformed JSON".to_string())?;
    let subscribe = match v["type"].as_str() {
        Some("subscribe") => true,
        Some("unsubscribe") => false,
        _ => return Err("message type must be subscribe or unsubscribe".into()),
    };
    let channel = v["channel"].as_str().and_then(Channel::parse).ok_or_else(|| AUTH_FAILURE.to_string())?;
    let products = match &v["product_ids"] {
        Value::Null => Vec::new(),
        Value::Array(list) => list
            .iter()
            .map(|p| p.as_str().map(str::to_string))
            .collect::<Option<Vec<_>>>()
            .ok_or("product_ids must be strings")?,
        _ => return Err("product_ids must be a list".into()),
    };
    let jwt = v["jwt"].as_str().map(str::to_string);
    Ok(Request { subscribe, channel, products, jwt })
}

fn error_frame(message: &str) -> Value {
    json!({"type": "error", "message": message})
}

fn text(v: &Value) -> Message {
    Message::Text(Utf8Bytes::from(v.to_string()))
}

/// RFC 3339 with nanoseconds, as the envelope's `timestamp` (§6.3).
fn timestamp(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms).unwrap_or_default().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)
}

impl Conn {
    fn new(app: Arc<App>, endpoint: Endpoint) -> Self {
        let now = Instant::now();
        Self {
            app,
            endpoint,
            opened: now,
            seq: 0,
            subs: BTreeMap::new(),
            user: None,
            heartbeats: false,
            heartbeat_counter: 0,
            subscribed_once: false,
            last_sent: now,
            books: HashMap::new(),
            last_trade: HashMap::new(),
            tickers: HashMap::new(),
            candles: HashMap::new(),
            batched: HashMap::new(),
        }
    }

    /// A data message in the envelope, taking the next `sequence_num` (one
    /// more first when a level-2 gap is being injected).
    fn envelope(&mut self, channel: &str, events: Vec<Value>) -> Message {
        if channel == "l2_data" && self.app.faults.take_coinbase_l2_gap() {
            self.seq += 1;
        }
        let v = json!({"channel": channel, "client_id": "", "timestamp": timestamp(self.app.faults.server_now_ms()),
                       "sequence_num": self.seq, "events": events});
        self.seq += 1;
        text(&v)
    }

    fn instrument(&self, pid: &str) -> Option<Instrument> {
        self.app.ex.lock().instruments().into_iter().find(|i| product_id(i) == pid)
    }

    /// The `subscriptions` acknowledgement: everything the connection has.
    fn ack(&mut self) -> Message {
        let mut subs = serde_json::Map::new();
        if self.heartbeats {
            subs.insert("heartbeats".into(), json!(["heartbeats"]));
        }
        for (c, products) in &self.subs {
            subs.insert(c.name().into(), json!(products));
        }
        if let Some(u) = &self.user {
            subs.insert("user".into(), json!([user_uuid(u.account)]));
        }
        self.envelope("subscriptions", vec![json!({"subscriptions": subs})])
    }

    /// Handles one control message: the frames to send (the snapshot(s),
    /// then the acknowledgement; or one error frame).
    fn control(&mut self, raw: &str) -> Vec<Message> {
        match self.apply(raw) {
            Ok(mut out) => {
                out.push(self.ack());
                out
            }
            Err(message) => vec![text(&error_frame(&message))],
        }
    }

    fn apply(&mut self, raw: &str) -> Result<Vec<Message>, String> {
        let req = read_request(raw)?;
        if !self.endpoint.serves(req.channel) {
            return Err(format!("channel {} is not served on the user endpoint", req.channel.name()));
        }
        let now = self.app.faults.server_now_ms();
        // A JWT is checked whenever one is sent; `user` requires one.
        let account = match &req.jwt {
            Some(token) => {
                let kid = verify_ws(&self.app.coinbase.registry, token, now.div_euclid(1000)).map_err(|e| {
                    tracing::info!(reason = %e, "coinbase sandbox: refused a WebSocket JWT");
                    AUTH_FAILURE.to_string()
                })?;
                Some(*self.app.coinbase.accounts.get(&kid).ok_or_else(|| AUTH_FAILURE.to_string())?)
            }
            None => None,
        };
        if req.subscribe && req.channel.needs_products() && req.products.is_empty() {
            return Err(format!("product_ids are required for channel {}", req.channel.name()));
        }
        let insts: Vec<Instrument> = if req.channel == Channel::Heartbeats {
            Vec::new()
        } else {
            let mut out = Vec::new();
            for pid in &req.products {
                out.push(self.instrument(pid).ok_or_else(|| format!("Failed to subscribe: unknown product_id {pid}"))?);
            }
            out
        };
        if req.subscribe {
            self.subscribed_once = true;
        }
        match (req.subscribe, req.channel) {
            (true, Channel::Heartbeats) => {
                self.heartbeats = true;
                Ok(Vec::new())
            }
            (false, Channel::Heartbeats) => {
                self.heartbeats = false;
                Ok(Vec::new())
            }
            (true, Channel::User) => match account {
                Some(account) => Ok(self.subscribe_user(account, req.products)),
                None => Err(AUTH_FAILURE.into()),
            },
            (false, Channel::User) => {
                self.user = None;
                Ok(Vec::new())
            }
            (true, Channel::Status) => {
                let all = if insts.is_empty() { self.app.ex.lock().instruments() } else { insts };
                let set = self.subs.entry(Channel::Status).or_default();
                set.extend(all.iter().map(product_id));
                let products: Vec<Value> = all.iter().map(feeds::status_product).collect();
                Ok(vec![self.envelope("status", vec![json!({"type": "snapshot", "products": products})])])
            }
            (true, c) => Ok(self.subscribe_market(c, &insts)),
            (false, c) => {
                let set = self.subs.entry(c).or_default();
                if req.products.is_empty() {
                    set.clear();
                } else {
                    for p in &req.products {
                        set.remove(p);
                    }
                }
                if set.is_empty() {
                    self.subs.remove(&c);
                }
                Ok(Vec::new())
            }
        }
    }

    fn subscribe_user(&mut self, account: u32, products: Vec<String>) -> Vec<Message> {
        let open = user_feed::open_orders(&self.app, account, &products);
        let mut sub = UserSub { account, products, sent: HashMap::new(), done: HashSet::new() };
        for o in &open {
            if let Some(id) = user_feed::id_of(o) {
                sub.note(id, o);
            }
        }
        self.user = Some(sub);
        // Batches of 50; the first with fewer than 50 is the last (§6.6).
        let mut out = Vec::new();
        let mut chunks: Vec<Vec<Value>> = open.chunks(SNAPSHOT_BATCH).map(<[Value]>::to_vec).collect();
        if chunks.last().is_none_or(|c| c.len() == SNAPSHOT_BATCH) {
            chunks.push(Vec::new());
        }
        for orders in chunks {
            let ev = json!({"type": "snapshot", "orders": orders,
                            "positions": {"perpetual_futures_positions": [], "expiring_futures_positions": []}});
            out.push(self.envelope("user", vec![ev]));
        }
        out
    }

    fn subscribe_market(&mut self, c: Channel, insts: &[Instrument]) -> Vec<Message> {
        let now = self.app.faults.server_now_ms();
        let mut out = Vec::new();
        for inst in insts {
            let pid = product_id(inst);
            if !self.subs.entry(c).or_default().insert(pid.clone()) {
                continue;
            }
            match c {
                Channel::Level2 => {
                    let book = feeds::book_now(&self.app, inst);
                    let ev = feeds::l2_snapshot(&pid, &book);
                    self.books.insert(pid, book);
                    out.push(self.envelope("l2_data", vec![ev]));
                }
                Channel::Ticker | Channel::TickerBatch => {
                    if let Some(t) = feeds::ticker(&self.app, inst, now) {
                        let (name, memo) = if c == Channel::Ticker {
                            ("ticker", &mut self.tickers)
                        } else {
                            ("ticker_batch", &mut self.batched)
                        };
                        memo.insert(pid, t.clone());
                        out.push(self.envelope(name, vec![json!({"type": "snapshot", "tickers": [t]})]));
                    }
                }
                Channel::MarketTrades => {
                    let (trades, last) = feeds::trades(&self.app, inst, None);
                    self.last_trade.insert(pid, last);
                    out.push(self.envelope("market_trades", vec![json!({"type": "snapshot", "trades": trades})]));
                }
                Channel::Candles => {
                    if let Some(k) = feeds::candle(&self.app, inst) {
                        self.candles.insert(pid, k.clone());
                        out.push(self.envelope("candles", vec![json!({"type": "snapshot", "candles": [k]})]));
                    }
                }
                Channel::Heartbeats | Channel::Status | Channel::User => {}
            }
        }
        out
    }

    fn products(&self, c: Channel) -> Vec<Instrument> {
        let Some(set) = self.subs.get(&c) else { return Vec::new() };
        self.app.ex.lock().instruments().into_iter().filter(|i| set.contains(&product_id(i))).collect()
    }

    /// What changed in the market since the last poll.
    fn poll(&mut self, batch_due: bool, candles_due: bool) -> Vec<Message> {
        let now = self.app.faults.server_now_ms();
        let mut out = Vec::new();
        for inst in self.products(Channel::Level2) {
            let pid = product_id(&inst);
            let book = feeds::book_now(&self.app, &inst);
            let old = self.books.get(&pid).cloned().unwrap_or_default();
            if let Some(ev) = feeds::l2_update(&pid, &old, &book, now) {
                self.books.insert(pid, book);
                out.push(self.envelope("l2_data", vec![ev]));
            }
        }
        for inst in self.products(Channel::MarketTrades) {
            let pid = product_id(&inst);
            let after = self.last_trade.get(&pid).copied().flatten();
            let (trades, last) = feeds::trades(&self.app, &inst, after);
            self.last_trade.insert(pid, last);
            if !trades.is_empty() {
                out.push(self.envelope("market_trades", vec![json!({"type": "update", "trades": trades})]));
            }
        }
        let mut tickers = Vec::new();
        for inst in self.products(Channel::Ticker) {
            if let Some(t) = feeds::ticker(&self.app, &inst, now) {
                if self.tickers.insert(product_id(&inst), t.clone()).as_ref() != Some(&t) {
                    tickers.push(t);
                }
            }
        }
        if !tickers.is_empty() {
            out.push(self.envelope("ticker", vec![json!({"type": "update", "tickers": tickers})]));
        }
        if batch_due {
            let mut batch = Vec::new();
            for inst in self.products(Channel::TickerBatch) {
                if let Some(t) = feeds::ticker(&self.app, &inst, now) {
                    if self.batched.insert(product_id(&inst), t.clone()).as_ref() != Some(&t) {
                        batch.push(t);
                    }
                }
            }
            if !batch.is_empty() {
                out.push(self.envelope("ticker_batch", vec![json!({"type": "update", "tickers": batch})]));
            }
        }
        if candles_due {
            let mut list = Vec::new();
            for inst in self.products(Channel::Candles) {
                if let Some(k) = feeds::candle(&self.app, &inst) {
                    if self.candles.insert(product_id(&inst), k.clone()).as_ref() != Some(&k) {
                        list.push(k);
                    }
                }
            }
            if !list.is_empty() {
                out.push(self.envelope("candles", vec![json!({"type": "update", "candles": list})]));
            }
        }
        out
    }

    /// The heartbeat (§6.4): the counter as an integer, as production sends
    /// it, and the time in Go's default format.
    fn heartbeat(&mut self) -> Message {
        self.heartbeat_counter += 1;
        let now = chrono::DateTime::from_timestamp_millis(self.app.faults.server_now_ms()).unwrap_or_default();
        let up = self.opened.elapsed().as_secs_f64();
        let current_time = format!("{} +0000 UTC m=+{up:.9}", now.format("%Y-%m-%d %H:%M:%S%.9f"));
        let ev = json!({"current_time": current_time, "heartbeat_counter": self.heartbeat_counter});
        self.envelope("heartbeats", vec![ev])
    }

    /// An order of the user's changed: its state, unless already sent.
    fn user_update(&mut self, event: &Value) -> Option<Message> {
        let u = self.user.as_mut()?;
        let (id, order) = user_feed::changed_order(&self.app, u.account, event, &u.products)?;
        u.note(id, &order).then(|| self.envelope("user", vec![json!({"type": "update", "orders": [order]})]))
    }

    /// The open orders sent before whose state changed without an
    /// execution (a cancel queued), one `update` listing them.
    fn user_recheck(&mut self) -> Option<Message> {
        let u = self.user.as_mut()?;
        let ids: Vec<u64> = u.sent.keys().copied().collect();
        let mut changed = Vec::new();
        for id in ids {
            let Some(o) = self.app.ex.lock().core().order(id).cloned() else { continue };
            let v = user_feed::user_order(&self.app, &o);
            if u.note(id, &v) {
                changed.push(v);
            }
        }
        (!changed.is_empty()).then(|| self.envelope("user", vec![json!({"type": "update", "orders": changed})]))
    }

    async fn send_all(&mut self, socket: &mut WebSocket, msgs: Vec<Message>) -> bool {
        for m in msgs {
            if socket.send(m).await.is_err() {
                return false;
            }
            self.last_sent = Instant::now();
        }
        true
    }

    async fn run(mut self, mut socket: WebSocket) {
        let app = self.app.clone();
        let mut users = app.ex.user_tx.subscribe();
        let mut cmds = app.faults.subscribe();
        let mut poll = tokio::time::interval(Duration::from_millis(POLL_MS));
        let mut beat = tokio::time::interval(Duration::from_secs(1));
        // One heartbeat a second, never a burst after a stall.
        beat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        poll.tick().await;
        beat.tick().await;
        let batch_every = TICKER_BATCH_MS / POLL_MS;
        let candle_every = 1_000 / POLL_MS;
        let mut polls: u64 = 0;
        let subscribe_within = Duration::from_millis(app.cfg.coinbase_ws_subscribe_within_ms);
        let idle = Duration::from_millis(app.cfg.coinbase_ws_idle_close_ms);
        loop {
            tokio::select! {
                _ = poll.tick() => {
                    polls += 1;
                    if app.cfg.coinbase_ws_subscribe_within_ms > 0 && !self.subscribed_once && self.opened.elapsed() >= subscribe_within {
                        let _ = socket.send(Message::Close(None)).await;
                        return;
                    }
                    if app.cfg.coinbase_ws_idle_close_ms > 0 && self.last_sent.elapsed() >= idle {
                        let _ = socket.send(Message::Close(None)).await;
                        return;
                    }
                    let mut msgs = self.poll(polls.is_multiple_of(batch_every), polls.is_multiple_of(candle_every));
                    msgs.extend(self.user_recheck());
                    if !self.send_all(&mut socket, msgs).await {
                        return;
                    }
                }
                _ = beat.tick(), if self.heartbeats => {
                    let m = self.heartbeat();
                    if !self.send_all(&mut socket, vec![m]).await {
                        return;
                    }
                }
                m = users.recv(), if self.user.is_some() => match m {
                    Ok(msg) => {
                        if self.user.as_ref().is_some_and(|u| u.account == msg.account) {
                            if let Some(m) = self.user_update(&msg.event) {
                                if !self.send_all(&mut socket, vec![m]).await {
                                    return;
                                }
                            }
                        }
                    }
                    // A lost update cannot be replayed: close so the client reconciles.
                    Err(_) => return,
                },
                c = cmds.recv() => match c {
                    Ok(ConnCmd::Drop) | Err(RecvError::Closed) => return,
                    Ok(ConnCmd::ServerShutdown) => {
                        let _ = socket.send(Message::Close(None)).await;
                        return;
                    }
                    Err(RecvError::Lagged(_)) => {}
                },
                incoming = socket.recv() => match incoming {
                    Some(Ok(Message::Text(t))) => {
                        let msgs = self.control(&t);
                        if !self.send_all(&mut socket, msgs).await {
                            return;
                        }
                    }
                    Some(Ok(Message::Close(_))) => {
                        let _ = futures_util::SinkExt::flush(&mut socket).await;
                        return;
                    }
                    None | Some(Err(_)) => return,
                    // Pings are answered by the library.
                    Some(Ok(_)) => {}
                },
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_messages_are_read_or_refused_with_a_reason() {
        let cases = [
            (r#"{"type":"subscribe","product_ids":["BTC-USD"],"channel":"level2","jwt":"x"}"#, Ok(Channel::Level2)),
            (r#"{"type":"unsubscribe","product_ids":["BTC-USD"],"channel":"ticker"}"#, Ok(Channel::Ticker)),
            (r#"{"type":"subscribe","product_ids":[],"channel":"heartbeats"}"#, Ok(Channel::Heartbeats)),
            (r#"{"type":"subscribe","channel":"heartbeat"}"#, Err(AUTH_FAILURE)),
            (r#"{"type":"subscribe","channels":["level2"]}"#, Err(AUTH_FAILURE)),
            (r#"{"type":"subscribe","channel":"level2","product_ids":"BTC-USD"}"#, Err("product_ids must be a list")),
            (r#"{"type":"hello","channel":"level2"}"#, Err("message type must be subscribe or unsubscribe")),
            ("nope", Err("malformed JSON")),
        ];
        for (raw, want) in cases {
            let got = read_request(raw).map(|r| r.channel);
            assert_eq!(got, want.map_err(str::to_string), "{raw}");
        }
    }
}
