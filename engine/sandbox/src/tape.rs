//! The public trade tape of each symbol: the trades the tick generator
//! prints and the accounts' own executions, in one id sequence (the matching
//! core's), kept for REST `trades`, `historicalTrades` and `aggTrades` and
//! sent on `@trade` / `@aggTrade`; and each bar's trade statistics (first and
//! last trade id, count, quote volume, taker-buy volumes) for klines.
//!
//! Every trade is its own aggregate trade: the sandbox's taker orders never
//! fill twice at one price (each synthetic level is one price), so `a`
//! equals the trade id and `f == l`.

use std::collections::{BTreeMap, VecDeque};

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use keel_core::market::Bar;
use keel_core::sim::BarBuilder;

use super::exchange::d8;

/// Trades kept per symbol for REST (`trades`, `historicalTrades`,
/// `aggTrades`): at the default 10 ticks a minute, the last 16 hours.
pub const TAPE_KEEP: usize = 10_000;

/// Bars whose trade statistics are kept (as many as the bar history).
const STATS_KEEP: usize = 5_000;

/// One trade on the public tape.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublicTrade {
    /// Trade id (also its aggregate trade id).
    pub id: u64,
    /// Price.
    pub price: Decimal,
    /// Base quantity.
    pub qty: Decimal,
    /// Server time of the trade (ms).
    pub time: i64,
    /// Whether the buyer was the maker (the taker sold).
    pub buyer_maker: bool,
}

impl PublicTrade {
    /// The REST `trades` / `historicalTrades` object.
    pub fn rest_json(&self) -> Value {
        json!({
            "id": self.id, "price": d8(self.price), "qty": d8(self.qty), "quoteQty": d8(self.price * self.qty),
            "time": self.time, "isBuyerMaker": self.buyer_maker, "isBestMatch": true,
        })
    }

    /// The REST `aggTrades` object.
    pub fn agg_json(&self) -> Value {
        json!({"a": self.id, "p": d8(self.price), "q": d8(self.qty), "f": self.id, "l": self.id, "T": self.time,
               "m": self.buyer_maker, "M": true})
    }

    /// The `trade` stream event.
    pub fn trade_event(&self, symbol: &str, event_ms: i64) -> Value {
        json!({"e": "trade", "E": event_ms, "s": symbol, "t": self.id, "p": d8(self.price), "q": d8(self.qty),
               "T": self.time, "m": self.buyer_maker, "M": true})
    }

    /// The `aggTrade` stream event.
    pub fn agg_event(&self, symbol: &str, event_ms: i64) -> Value {
        json!({"e": "aggTrade", "E": event_ms, "s": symbol, "a": self.id, "p": d8(self.price), "q": d8(self.qty),
               "f": self.id, "l": self.id, "T": self.time, "m": self.buyer_maker, "M": true})
    }
}

/// What a kline says about the trades in it besides OHLCV.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BarStats {
    /// First trade id in the bar.
    pub first_id: Option<u64>,
    /// Last trade id in the bar.
    pub last_id: Option<u64>,
    /// Number of trades.
    pub count: u64,
    /// Quote volume (Σ price × qty).
    pub quote_volume: Decimal,
    /// Base volume bought by takers.
    pub taker_buy_base: Decimal,
    /// Quote volume bought by takers.
    pub taker_buy_quote: Decimal,
}

impl BarStats {
    fn add(&mut self, t: &PublicTrade) {
        self.first_id = Some(self.first_id.map_or(t.id, |f| f.min(t.id)));
        self.last_id = Some(self.last_id.map_or(t.id, |l| l.max(t.id)));
        self.count += 1;
        self.quote_volume += t.price * t.qty;
        if !t.buyer_maker {
            self.taker_buy_base += t.qty;
            self.taker_buy_quote += t.price * t.qty;
        }
    }

    /// Adds a later bar's statistics (longer intervals built from 1m bars).
    pub fn merge(&mut self, other: &BarStats) {
        self.first_id = match (self.first_id, other.first_id) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        self.last_id = self.last_id.max(other.last_id);
        self.count += other.count;
        self.quote_volume += other.quote_volume;
        self.taker_buy_base += other.taker_buy_base;
        self.taker_buy_quote += other.taker_buy_quote;
    }

    /// `f` and `L` of a kline: -1 for a bar without trades, as Binance sends.
    pub fn first_last(&self) -> (i64, i64) {
        (self.first_id.map_or(-1, |v| v as i64), self.last_id.map_or(-1, |v| v as i64))
    }
}

/// The tape and bar statistics of one symbol.
#[derive(Debug, Clone, Default)]
pub struct Tape {
    trades: VecDeque<PublicTrade>,
    current: BarStats,
    closed: BTreeMap<i64, BarStats>,
}

/// The part of a [`Tape`] kept across restarts: the bar statistics (the
/// trades themselves are refilled by the simulated downtime).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SavedTape {
    /// Statistics of the bar in progress.
    pub current: BarStats,
    /// Statistics of closed bars by open time.
    pub closed: Vec<(i64, BarStats)>,
}

impl Tape {
    /// A tape continuing a saved one.
    pub fn restore(saved: SavedTape) -> Self {
        Self { trades: VecDeque::new(), current: saved.current, closed: saved.closed.into_iter().collect() }
    }

    /// What is kept across restarts.
    pub fn saved(&self) -> SavedTape {
        SavedTape { current: self.current, closed: self.closed.iter().map(|(t, s)| (*t, *s)).collect() }
    }

    /// Prints a trade: on the tape (its time never before the previous
    /// trade's), into the bar in progress of `builder` at simulated time
    /// `sim_ts`. Returns the trade as printed and any bar it closed.
    pub fn print(&mut self, builder: &mut BarBuilder, sim_ts: i64, mut t: PublicTrade) -> (PublicTrade, Option<Bar>) {
        if let Some(last) = self.trades.back() {
            t.time = t.time.max(last.time);
        }
        let closed = builder.push(sim_ts, t.price, t.qty);
        if let Some(bar) = &closed {
            self.close_bar(bar.open_time);
        }
        self.current.add(&t);
        self.trades.push_back(t.clone());
        if self.trades.len() > TAPE_KEEP {
            self.trades.pop_front();
        }
        (t, closed)
    }

    /// Closes the bar in progress of `builder` (its minute is over).
    pub fn close_minute(&mut self, builder: &mut BarBuilder) -> Option<Bar> {
        let bar = builder.close()?;
        self.close_bar(bar.open_time);
        Some(bar)
    }

    fn close_bar(&mut self, open_time: i64) {
        self.closed.insert(open_time, std::mem::take(&mut self.current));
        while self.closed.len() > STATS_KEEP {
            self.closed.pop_first();
        }
    }

    /// Statistics of a closed bar (empty if unknown).
    pub fn stats_of(&self, open_time: i64) -> BarStats {
        self.closed.get(&open_time).copied().unwrap_or_default()
    }

    /// Statistics of the bar in progress.
    pub fn current_stats(&self) -> BarStats {
        self.current
    }

    /// The latest trade.
    pub fn last(&self) -> Option<&PublicTrade> {
        self.trades.back()
    }

    /// The most recent `limit` trades, oldest first.
    pub fn recent(&self, limit: usize) -> Vec<&PublicTrade> {
        let skip = self.trades.len().saturating_sub(limit);
        self.trades.iter().skip(skip).collect()
    }

    /// Up to `limit` trades with id ≥ `from_id`, oldest first.
    pub fn since_id(&self, from_id: u64, limit: usize) -> Vec<&PublicTrade> {
        let start = self.trades.partition_point(|t| t.id < from_id);
        self.trades.iter().skip(start).take(limit).collect()
    }

    /// `aggTrades` by time: with `start`, the oldest from it (up to `end`);
    /// with only `end`, the latest up to it.
    pub fn by_time(&self, start: Option<i64>, end: Option<i64>, limit: usize) -> Vec<&PublicTrade> {
        let inside: Vec<&PublicTrade> = self
            .trades
            .iter()
            .filter(|t| start.is_none_or(|s| t.time >= s) && end.is_none_or(|e| t.time <= e))
            .collect();
        if start.is_some() {
            inside.into_iter().take(limit).collect()
        } else {
            let skip = inside.len().saturating_sub(limit);
            inside.into_iter().skip(skip).collect()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use keel_core::symbol::Symbol;

    fn trade(id: u64, price: i64, time: i64, buyer_maker: bool) -> PublicTrade {
        PublicTrade { id, price: Decimal::from(price), qty: Decimal::ONE, time, buyer_maker }
    }

    #[test]
    fn bars_carry_the_ids_counts_and_taker_volumes_of_their_trades() {
        let mut tape = Tape::default();
        let mut b = BarBuilder::new(Symbol::new("BTCUSDT"), 60_000);
        tape.print(&mut b, 1_000, trade(7, 100, 10, false));
        // A trade stamped earlier than the previous one keeps the tape's order.
        let (t, _) = tape.print(&mut b, 2_000, trade(8, 102, 5, true));
        assert_eq!(t.time, 10);
        let (_, closed) = tape.print(&mut b, 61_000, trade(9, 101, 20, false));
        let closed = closed.expect("a new minute closes the bar");
        let s = tape.stats_of(closed.open_time);
        assert_eq!((s.first_id, s.last_id, s.count), (Some(7), Some(8), 2));
        assert_eq!((s.taker_buy_base, s.taker_buy_quote, s.quote_volume), (Decimal::ONE, d("100"), d("202")));
        let bar = tape.close_minute(&mut b).unwrap();
        let s = tape.stats_of(bar.open_time);
        assert_eq!(s.first_last(), (9, 9));
        assert_eq!(BarStats::default().first_last(), (-1, -1));
        let mut merged = tape.stats_of(0);
        merged.merge(&s);
        assert_eq!((merged.first_id, merged.last_id, merged.count), (Some(7), Some(9), 3));
    }

    #[test]
    fn lookups_by_id_and_time() {
        let mut tape = Tape::default();
        let mut b = BarBuilder::new(Symbol::new("BTCUSDT"), 60_000);
        for i in 0..10u64 {
            tape.print(&mut b, i as i64, trade(100 + i, 1, 1_000 + i as i64 * 10, true));
        }
        let ids = |v: Vec<&PublicTrade>| v.iter().map(|t| t.id).collect::<Vec<_>>();
        assert_eq!(ids(tape.recent(3)), [107, 108, 109]);
        assert_eq!(ids(tape.since_id(104, 2)), [104, 105]);
        assert_eq!(ids(tape.since_id(50, 1)), [100]);
        assert_eq!(ids(tape.by_time(Some(1_020), Some(1_050), 2)), [102, 103]);
        assert_eq!(ids(tape.by_time(None, Some(1_050), 2)), [104, 105]);
        assert_eq!(ids(tape.by_time(Some(1_085), None, 5)), [109]);
    }

    fn d(s: &str) -> Decimal {
        s.parse().unwrap()
    }
}
