//! The market-data stream: one connection subscribing `heartbeats` (so
//! idle channels stay open, §6.1), `market_trades` and `level2`, one channel
//! per message; reconnect with backoff.
//!
//! - Trades: `market_trades` updates (the snapshot's old trades are not
//!   replayed); `side` is the maker's, so the aggressor is the other side.
//! - Best bid/ask: the top of the level-2 book, sent when it changes.
//! - Level 2: rebuilt from the snapshot; a skipped `sequence_num` (any
//!   channel: the counter is per connection, §6.3) drops the books and
//!   resubscribes `level2` for a fresh snapshot.
//! - Bars: Coinbase's `candles` channel has 5-minute buckets only, so
//!   closed bars of the engine's interval are read by REST `candles` at each
//!   boundary. Building them from trades would lose the trades of any gap
//!   and could differ from the venue's own candles, which warm-ups and
//!   backtests use; REST gives the same bars every time. Boundaries follow
//!   the market's clock as `GET /time` gives it (the server's at Coinbase;
//!   Keel's sandbox running faster than real time names its own, and its
//!   speed), less a grace for the venue to close the bucket, so a quiet
//!   market closes bars too (heartbeats wake the stream every second). On
//!   a clock of its own a bar is delivered only once the venue shows a
//!   later one (a paused market is not taken for a closed bar), and candles
//!   are polled as often as a bar closes (at most 4 times a second). Each
//!   fetch starts after the last bar delivered (or the newest a warm-up
//!   got), so a reconnect backfills, and no bar is lost or delivered twice.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use futures_util::{SinkExt, StreamExt};
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;

use keel_core::market::{Bar, BookTicker, MarketEvent, Trade};
use keel_core::order::Side;
use keel_core::symbol::Symbol;
use keel_core::venue::{MarketFeed, StreamStatus, VenueResult};

use crate::model::{CandlesResponse, MarketTrade, WsMessage};
use crate::rest::Kind;
use crate::venue::{lock, Shared, CANDLES_PER_REQUEST};
use crate::ws::{self, Seq, SeqCheck};

/// How long after a boundary (server clock) the venue is given to close the bucket.
const CLOSE_GRACE_MS: i64 = 2_000;

/// The least grace (server ms) on a market clock of its own: the sandbox
/// closes bars at once; this covers the error of the clock's estimate.
const MIN_GRACE_MS: f64 = 20.0;

/// At most one candle request a second per product while a bar is awaited...
const FETCH_EVERY_MS: i64 = 1_000;

/// ...or, on a faster market clock, one per bar, but at most 4 a second.
const MIN_FETCH_EVERY_MS: i64 = 250;

/// The receiver is gone: the stream ends.
struct Gone;

/// Keel's numeric trade id of a Coinbase one: the number when it is one
/// (older products), else the first 8 bytes of SHA-256 of the UUID —
/// stable, so the same trade always has the same id.
pub fn trade_id_of(id: &str) -> u64 {
    id.parse().unwrap_or_else(|_| {
        let h = Sha256::digest(id.as_bytes());
        let mut b = [0u8; 8];
        b.copy_from_slice(&h[..8]);
        u64::from_be_bytes(b)
    })
}

fn trade_of(t: &MarketTrade) -> Trade {
    Trade {
        symbol: Symbol::new(&t.product_id),
        trade_id: trade_id_of(&t.trade_id),
        price: t.price,
        qty: t.size,
        // `side` is the maker's (§6.4).
        aggressor: if t.side.eq_ignore_ascii_case("BUY") { Side::Sell } else { Side::Buy },
        ts_ms: t.time,
    }
}

/// Closed bars by REST, one product at a time.
struct Bars {
    interval_ms: i64,
    granularity: &'static str,
    /// Open time of the last bar delivered (or a warm-up's newest).
    last_open: HashMap<Symbol, i64>,
    /// When candles were last asked for (server clock).
    fetched_at: HashMap<Symbol, i64>,
}

impl Bars {
    /// Delivers every bar that has closed since the last one delivered.
    async fn due(&mut self, shared: &Shared, symbols: &[Symbol], tx: &mpsc::Sender<MarketFeed>) -> Result<(), Gone> {
        let now = shared.rest.now_ms();
        let iv = self.interval_ms;
        let speed = shared.rest.market_speed();
        let own_clock = speed != 1.0;
        let (grace, every) = if own_clock {
            let grace = (CLOSE_GRACE_MS as f64 / speed).max(MIN_GRACE_MS) * speed;
            (grace as i64, ((iv as f64 / speed) as i64).clamp(MIN_FETCH_EVERY_MS, FETCH_EVERY_MS))
        } else {
            (CLOSE_GRACE_MS, FETCH_EVERY_MS)
        };
        let current = (shared.rest.market_now_ms() - grace).div_euclid(iv) * iv;
        for sym in symbols {
            // Without a warm-up, the first bar is the one in progress now.
            let last = *self.last_open.entry(sym.clone()).or_insert(current - iv);
            if last + iv >= current || self.fetched_at.get(sym).is_some_and(|at| now - at < every) {
                continue;
            }
            self.fetched_at.insert(sym.clone(), now);
            // The bucket in progress too: on a clock of its own, what shows the others closed.
            match fetch(shared, sym, iv, self.granularity, last + iv, current + iv).await {
                Ok(bars) => {
                    let newest = bars.last().map_or(i64::MIN, |b| b.open_time);
                    for bar in bars {
                        let closed = bar.open_time < current && (!own_clock || bar.open_time < newest);
                        if !closed || self.last_open.get(sym).is_some_and(|l| bar.open_time <= *l) {
                            continue;
                        }
                        self.last_open.insert(sym.clone(), bar.open_time);
                        tx.send(MarketFeed::Event(MarketEvent::Bar(bar))).await.map_err(|_| Gone)?;
                    }
                }
                Err(e) => tracing::warn!(symbol = %sym, error = %e, "coinbase: closed bars not read; trying again"),
            }
        }
        Ok(())
    }
}

/// Bars of `symbol` opening in `[from, before)`, oldest first.
async fn fetch(
    shared: &Shared,
    symbol: &Symbol,
    interval_ms: i64,
    granularity: &str,
    from: i64,
    before: i64,
) -> VenueResult<Vec<Bar>> {
    let mut out: std::collections::BTreeMap<i64, Bar> = Default::default();
    let mut start = from;
    while start < before {
        let end = (start + CANDLES_PER_REQUEST * interval_ms).min(before);
        let q = [
            ("start", start.div_euclid(1000).to_string()),
            ("end", (end - 1).div_euclid(1000).to_string()),
            ("granularity", granularity.to_string()),
            ("limit", CANDLES_PER_REQUEST.to_string()),
        ];
        let r: CandlesResponse = shared.rest.get(Kind::Read, &format!("/products/{symbol}/candles"), &q).await?;
        for c in r.candles.into_iter().filter(|c| c.start_ms >= start && c.start_ms < end) {
            let bar = Bar {
                symbol: symbol.clone(),
                open_time: c.start_ms,
                close_time: c.start_ms + interval_ms - 1,
                open: c.open,
                high: c.high,
                low: c.low,
                close: c.close,
                volume: c.volume,
            };
            out.insert(c.start_ms, bar);
        }
        start = end;
    }
    Ok(out.into_values().collect())
}

/// Runs the market stream until the receiver is dropped.
pub(crate) async fn run(
    shared: Arc<Shared>,
    symbols: Vec<Symbol>,
    interval_ms: i64,
    granularity: &'static str,
    tx: mpsc::Sender<MarketFeed>,
) {
    let mut symbols = symbols;
    symbols.sort();
    symbols.dedup();
    let last_open =
        symbols.iter().filter_map(|s| shared.bar_served(s, interval_ms).map(|open| (s.clone(), open))).collect();
    let mut bars = Bars { interval_ms, granularity, last_open, fetched_at: HashMap::new() };
    let mut attempt: u32 = 0;
    loop {
        if tx.is_closed() {
            return;
        }
        let reason = match ws::connect(&shared.ws_market_url).await {
            Err(e) => e,
            Ok(mut conn) => match session(&shared, &mut conn, &symbols, &mut bars, &tx, &mut attempt).await {
                Ok(reason) => reason,
                Err(Gone) => return,
            },
        };
        {
            let mut books = lock(&shared.books);
            for s in &symbols {
                books.remove(s);
            }
        }
        tracing::warn!(%reason, "coinbase market stream disconnected; reconnecting");
        if tx.send(MarketFeed::Status(StreamStatus::Disconnected { reason })).await.is_err() {
            return;
        }
        tokio::time::sleep(ws::backoff_delay(attempt)).await;
        attempt = attempt.saturating_add(1);
    }
}

/// One connection: subscribes, then reads until it fails (the reason).
async fn session(
    shared: &Shared,
    conn: &mut ws::Ws,
    symbols: &[Symbol],
    bars: &mut Bars,
    tx: &mpsc::Sender<MarketFeed>,
    attempt: &mut u32,
) -> Result<String, Gone> {
    let products: Vec<String> = symbols.iter().map(|s| s.to_string()).collect();
    for (channel, list) in [("heartbeats", &Vec::new()), ("market_trades", &products), ("level2", &products)] {
        let sent = match ws::control(shared, true, channel, list) {
            Ok(m) => conn.send(m).await.map_err(|e| format!("subscribe {channel}: {e}")),
            Err(e) => Err(e),
        };
        if let Err(e) = sent {
            return Ok(e);
        }
    }
    tx.send(MarketFeed::Status(StreamStatus::Connected)).await.map_err(|_| Gone)?;
    let mut seq = SeqCheck::default();
    let mut tops: HashMap<Symbol, BookTicker> = HashMap::new();
    loop {
        let text = match tokio::time::timeout(ws::IDLE_TIMEOUT, conn.next()).await {
            Err(_) => return Ok("no message (not even a heartbeat) for too long".into()),
            Ok(None) => return Ok("closed by server".into()),
            Ok(Some(Err(e))) => return Ok(format!("read error: {e}")),
            Ok(Some(Ok(Message::Close(_)))) => return Ok("close frame".into()),
            Ok(Some(Ok(Message::Text(t)))) => t,
            Ok(Some(Ok(_))) => continue,
        };
        let msg = match WsMessage::parse(text.as_str()) {
            Ok(m) => m,
            Err(e) => {
                // Its trade is missed (like one lost in a gap); its bar comes by REST.
                tracing::warn!(error = %e, "coinbase: market-stream message Keel cannot read");
                continue;
            }
        };
        if let Some(n) = msg.sequence_num() {
            match seq.check(n) {
                Seq::Stale => continue,
                Seq::Next => {}
                Seq::Gap { expected, got } => {
                    tracing::warn!(expected, got, "coinbase: market stream lost a message; resubscribing level2");
                    {
                        let mut books = lock(&shared.books);
                        for s in symbols {
                            books.remove(s);
                        }
                    }
                    shared.l2_resyncs.fetch_add(1, Ordering::Relaxed);
                    for subscribe in [false, true] {
                        let sent = match ws::control(shared, subscribe, "level2", &products) {
                            Ok(m) => conn.send(m).await.map_err(|e| format!("resubscribe level2: {e}")),
                            Err(e) => Err(e),
                        };
                        if let Err(e) = sent {
                            return Ok(e);
                        }
                    }
                }
            }
        }
        // Data flows: the connection is healthy, so the backoff starts over.
        *attempt = 0;
        match msg {
            WsMessage::L2Data(env) => {
                for ev in &env.events {
                    let sym = Symbol::new(&ev.product_id);
                    let top = {
                        let mut books = lock(&shared.books);
                        // Updates before the (fresh) snapshot are meaningless.
                        if ev.kind != "snapshot" && !books.contains_key(&sym) {
                            continue;
                        }
                        let book = books.entry(sym.clone()).or_default();
                        book.apply(ev);
                        book.top()
                    };
                    let Some(((bid, bid_qty), (ask, ask_qty))) = top else { continue };
                    let ts_ms = ev.updates.iter().filter_map(|u| u.event_time).max().unwrap_or(0);
                    let ts_ms = if ts_ms > 0 { ts_ms } else { env.timestamp.unwrap_or_else(|| shared.rest.now_ms()) };
                    let bt = BookTicker { symbol: sym.clone(), bid, bid_qty, ask, ask_qty, ts_ms };
                    let same = tops
                        .get(&sym)
                        .is_some_and(|p| (p.bid, p.bid_qty, p.ask, p.ask_qty) == (bid, bid_qty, ask, ask_qty));
                    if !same {
                        tops.insert(sym, bt.clone());
                        tx.send(MarketFeed::Event(MarketEvent::Book(bt))).await.map_err(|_| Gone)?;
                    }
                }
            }
            WsMessage::MarketTrades(env) => {
                // A snapshot's recent trades are not replayed.
                for ev in env.events.iter().filter(|ev| ev.kind != "snapshot") {
                    let mut trades: Vec<Trade> = ev.trades.iter().map(trade_of).collect();
                    trades.sort_by_key(|t| (t.ts_ms, t.trade_id));
                    for t in trades {
                        tx.send(MarketFeed::Event(MarketEvent::Trade(t))).await.map_err(|_| Gone)?;
                    }
                }
            }
            WsMessage::Error(e) => return Ok(ws::venue_error(shared, &e.message).await),
            _ => {}
        }
        bars.due(shared, symbols, tx).await?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numeric_trade_ids_are_kept_and_uuids_hash_stably() {
        assert_eq!(trade_id_of("12345"), 12345);
        let u = "0d3e6d4a-3b7e-4b7c-9f4e-1c2d3e4f5a6b";
        assert_eq!(trade_id_of(u), trade_id_of(u));
        assert_ne!(trade_id_of(u), trade_id_of("0d3e6d4a-3b7e-4b7c-9f4e-1c2d3e4f5a6c"));
    }
}
