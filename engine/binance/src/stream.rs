//! The market-data client: one combined stream (`/stream?streams=`) with
//! kline, trade and bookTicker per symbol; ping answering; reconnect with
//! exponential backoff and jitter, before the 24 h limit and on
//! `serverShutdown`; and REST backfill of closed klines missed while
//! disconnected, so every bar is delivered exactly once and in order.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use rand::Rng;
use tokio::sync::mpsc;

use keel_core::market::{BookTicker, MarketEvent, Trade};
use keel_core::order::Side;
use keel_core::symbol::Symbol;
use keel_core::venue::{MarketFeed, StreamStatus};

use super::connection::{Connection, Flow, Liveness, StreamHandler};
use super::model::{CombinedMessage, StreamEvent};
use super::venue::Shared;

/// Silence after which a connection is considered dead (the server pings every 20 s).
const IDLE_TIMEOUT: Duration = Duration::from_secs(75);

/// Exponential backoff with full jitter: 100 ms doubling to 30 s.
pub fn backoff_delay(attempt: u32) -> Duration {
    let cap = 100u64.saturating_mul(1u64 << attempt.min(9)).min(30_000);
    let jitter = rand::rng().random_range(cap / 2..=cap);
    Duration::from_millis(jitter)
}

/// Per-symbol bar bookkeeping.
#[derive(Default)]
struct BarTrack {
    /// Open time of the last bar delivered.
    last_open: Option<i64>,
    /// A reconnect happened: missed bars must be backfilled before the next live one.
    need_backfill: bool,
}

struct MarketRun {
    shared: Arc<Shared>,
    interval_ms: i64,
    interval: &'static str,
    tx: mpsc::Sender<MarketFeed>,
    bars: HashMap<Symbol, BarTrack>,
}

impl MarketRun {
    async fn emit(&self, ev: MarketFeed) -> bool {
        self.tx.send(ev).await.is_ok()
    }

    /// Delivers closed bars from REST with open time in (last_open, before).
    async fn backfill(&mut self, symbol: &Symbol, before: i64) -> bool {
        let Some(last) = self.bars.get(symbol).and_then(|t| t.last_open) else { return true };
        let mut from = last + 1;
        let mut attempts = 0;
        while from < before {
            match self.shared.rest.klines(symbol.as_str(), self.interval, Some(from), Some(before - 1), 1000).await {
                Ok(list) => {
                    let mut progressed = false;
                    for k in list {
                        let track = self.bars.entry(symbol.clone()).or_default();
                        if k.open_time >= before || track.last_open.is_some_and(|l| k.open_time <= l) {
                            continue;
                        }
                        track.last_open = Some(k.open_time);
                        from = k.open_time + 1;
                        progressed = true;
                        let bar = k.into_bar(symbol.clone());
                        if !self.emit(MarketFeed::Event(MarketEvent::Bar(bar))).await {
                            return false;
                        }
                    }
                    if !progressed {
                        break;
                    }
                }
                Err(e) => {
                    attempts += 1;
                    tracing::warn!(%symbol, error = %e, attempt = attempts, "kline backfill failed");
                    if attempts >= 5 {
                        tracing::error!(%symbol, "kline backfill gave up; bars may be missing");
                        break;
                    }
                    tokio::time::sleep(backoff_delay(attempts)).await;
                }
            }
        }
        true
    }

    /// Handles one stream event; false when the receiver is gone. `Err` asks
    /// for a reconnect (serverShutdown).
    async fn on_event(&mut self, ev: StreamEvent) -> Result<bool, &'static str> {
        match ev {
            StreamEvent::Kline(k) => {
                let symbol = Symbol::new(&k.symbol);
                let open = k.kline.open_time;
                let track = self.bars.entry(symbol.clone()).or_default();
                let gap = track.last_open.is_some_and(|l| open > l + self.interval_ms);
                if (track.need_backfill || (gap && k.kline.closed)) && track.last_open.is_some() {
                    track.need_backfill = false;
                    if !self.backfill(&symbol, open).await {
                        return Ok(false);
                    }
                } else {
                    track.need_backfill = false;
                }
                if !k.kline.closed {
                    return Ok(true);
                }
                let track = self.bars.entry(symbol.clone()).or_default();
                if track.last_open.is_some_and(|l| open <= l) {
                    return Ok(true);
                }
                track.last_open = Some(open);
                Ok(self.emit(MarketFeed::Event(MarketEvent::Bar(k.bar()))).await)
            }
            StreamEvent::Trade(t) => Ok(self.emit(MarketFeed::Event(MarketEvent::Trade(t.trade()))).await),
            StreamEvent::AggTrade(t) => {
                let trade = Trade {
                    symbol: Symbol::new(&t.symbol),
                    trade_id: t.agg_id,
                    price: t.price,
                    qty: t.qty,
                    aggressor: if t.buyer_is_maker { Side::Sell } else { Side::Buy },
                    ts_ms: t.trade_time,
                };
                Ok(self.emit(MarketFeed::Event(MarketEvent::Trade(trade))).await)
            }
            StreamEvent::BookTicker(b) => {
                let book = BookTicker {
                    symbol: Symbol::new(&b.symbol),
                    bid: b.bid,
                    bid_qty: b.bid_qty,
                    ask: b.ask,
                    ask_qty: b.ask_qty,
                    ts_ms: self.shared.rest.now_ms(),
                };
                self.shared.note_book(&book);
                Ok(self.emit(MarketFeed::Event(MarketEvent::Book(book))).await)
            }
            StreamEvent::ServerShutdown => Err("serverShutdown"),
            StreamEvent::Other(_) => Ok(true),
        }
    }
}

/// The stream names for the symbols.
pub fn stream_names(symbols: &[Symbol], interval: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut seen = HashSet::new();
    for s in symbols {
        let l = s.as_str().to_lowercase();
        if !seen.insert(l.clone()) {
            continue;
        }
        out.push(format!("{l}@kline_{interval}"));
        out.push(format!("{l}@trade"));
        out.push(format!("{l}@bookTicker"));
    }
    out
}

/// Runs the market stream until the receiver is dropped.
pub(crate) async fn run_market(
    shared: Arc<Shared>,
    symbols: Vec<Symbol>,
    interval_ms: i64,
    interval: &'static str,
    tx: mpsc::Sender<MarketFeed>,
) {
    let connection = Connection {
        url: format!(
            "{}/stream?streams={}",
            shared.settings.endpoints.ws_stream,
            stream_names(&symbols, interval).join("/")
        ),
        name: "market",
        liveness: Liveness::AnyMessage(IDLE_TIMEOUT),
        reconnect_after: Duration::from_millis(shared.settings.reconnect_after_ms.max(1000)),
    };
    // Bars continue after the newest one a warm-up was given: the first live
    // kline backfills any that closed before the stream was up.
    let bars = symbols
        .iter()
        .filter_map(|s| shared.bar_served(s, interval_ms).map(|open| (s.clone(), open)))
        .map(|(s, open)| (s, BarTrack { last_open: Some(open), need_backfill: true }))
        .collect();
    let mut run = MarketRun { shared, interval_ms, interval, tx: tx.clone(), bars };
    connection.run(&mut run, &tx).await;
}

impl StreamHandler for MarketRun {
    type Out = MarketFeed;

    fn status(status: StreamStatus) -> MarketFeed {
        MarketFeed::Status(status)
    }

    async fn on_text(&mut self, text: &str) -> Flow {
        let ev = match serde_json::from_str::<CombinedMessage>(text) {
            Ok(c) => match StreamEvent::parse(&c.data) {
                Ok(ev) => ev,
                Err(e) => {
                    // A data message Keel cannot read is loud: the
                    // bar it carried is recovered by the gap check.
                    unreadable(&self.shared.rest, text, &e);
                    return Flow::Read;
                }
            },
            // Not stream data: a subscription answer (`{"result":null,"id":…}`)
            // is expected; anything else is loud.
            Err(e) => {
                let is_ack = serde_json::from_str::<serde_json::Value>(text)
                    .is_ok_and(|v| v.get("id").is_some() && (v.get("result").is_some() || v.get("error").is_some()));
                if !is_ack {
                    unreadable(&self.shared.rest, text, &e);
                }
                return Flow::Read;
            }
        };
        match self.on_event(ev).await {
            Ok(true) => Flow::Read,
            Ok(false) => Flow::Stop,
            Err(why) => Flow::Reconnect(why),
        }
    }

    fn on_disconnect(&mut self) {
        for t in self.bars.values_mut() {
            t.need_backfill = true;
        }
    }
}

/// A market-stream message Keel cannot read: a warning with its text
/// (credentials masked) and an alert the engine counts in
/// `keel_venue_parse_errors_total{stream="market"}`.
pub(crate) fn unreadable(rest: &super::rest::RestClient, raw: &str, e: &serde_json::Error) {
    tracing::warn!(raw = %super::user::redact(raw), error = %e, "binance: market-stream message Keel cannot read");
    rest.alert(keel_core::venue::VenueAlert::Malformed { stream: "market".into(), detail: e.to_string() });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_with_jitter_and_caps() {
        for attempt in 0..40 {
            let d = backoff_delay(attempt).as_millis() as u64;
            let cap = (100u64 << attempt.min(9)).min(30_000);
            assert!(d >= cap / 2 && d <= cap, "attempt {attempt}: {d} ms");
        }
        assert!(backoff_delay(30).as_millis() <= 30_000);
    }

    #[test]
    fn stream_names_are_lower_case_and_unique() {
        let names = stream_names(&[Symbol::new("BTCUSDT"), Symbol::new("BTCUSDT")], "1m");
        assert_eq!(names, ["btcusdt@kline_1m", "btcusdt@trade", "btcusdt@bookTicker"]);
    }
}
