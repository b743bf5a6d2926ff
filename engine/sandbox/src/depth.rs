//! The order book as clients see it — REST `depth`, the diff streams
//! `<s>@depth[@100ms]`, the partial streams `<s>@depth<5|10|20>[@100ms]` and
//! `bookTicker` — with the update ids Binance documents, so the "manage a
//! local order book" procedure works against the sandbox.
//!
//! The book is the matching core's synthetic levels (the touch and
//! `depth_levels` more, one tick apart) plus the working limit orders of
//! every account that do not cross them. [`DepthBook::refresh`] recomputes
//! it from the core; any change takes the next update id and joins the
//! pending diff of each stream speed. REST `depth` refreshes before it
//! answers, and the publisher ([`publish_loop`]) refreshes before each diff
//! it sends, so every change a snapshot shows is in a diff with a higher id
//! — whichever path (tick, order, cancel, fill) changed the core.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use rust_decimal::Decimal;
use serde_json::{json, Value};

use keel_core::order::{OrderType, Side};
use keel_core::sim::MatchingCore;

use super::exchange::{d8, Exchange, MarketKind, MarketMsg};
use super::FaultControl;

/// Price levels (price, quantity), best first.
pub type Levels = Vec<(Decimal, Decimal)>;

/// Levels sent on partial depth streams (the most a stream asks for).
pub const PARTIAL_MAX: usize = 20;

/// Changes not yet sent on one diff stream speed.
#[derive(Debug, Clone, Default)]
struct Pending {
    first: Option<u64>,
    last: u64,
    bids: BTreeMap<Decimal, Decimal>,
    asks: BTreeMap<Decimal, Decimal>,
}

/// One `depthUpdate`: the update ids it covers and the levels it sets.
#[derive(Debug, Clone, PartialEq)]
pub struct Diff {
    /// First update id (`U`).
    pub first: u64,
    /// Last update id (`u`).
    pub last: u64,
    /// Bid levels (price, quantity; 0 removes the level).
    pub bids: Vec<(Decimal, Decimal)>,
    /// Ask levels.
    pub asks: Vec<(Decimal, Decimal)>,
}

impl Diff {
    /// The `depthUpdate` event.
    pub fn event(&self, symbol: &str, event_ms: i64) -> Value {
        json!({"e": "depthUpdate", "E": event_ms, "s": symbol, "U": self.first, "u": self.last,
               "b": levels_json(&self.bids), "a": levels_json(&self.asks)})
    }
}

/// A price level list as Binance writes it: `[["price","qty"], …]`.
pub fn levels_json(levels: &[(Decimal, Decimal)]) -> Value {
    Value::Array(levels.iter().map(|(p, q)| json!([d8(*p), d8(*q)])).collect())
}

/// The book of one symbol and its update id.
#[derive(Debug, Clone)]
pub struct DepthBook {
    last_update_id: u64,
    bids: BTreeMap<Decimal, Decimal>,
    asks: BTreeMap<Decimal, Decimal>,
    fast: Pending,
    slow: Pending,
}

impl DepthBook {
    /// An empty book whose next update takes id `last_update_id + 1`.
    pub fn new(last_update_id: u64) -> Self {
        Self {
            last_update_id,
            bids: BTreeMap::new(),
            asks: BTreeMap::new(),
            fast: Pending::default(),
            slow: Pending::default(),
        }
    }

    /// The id of the last change (`lastUpdateId`, `u`).
    pub fn last_update_id(&self) -> u64 {
        self.last_update_id
    }

    /// Recomputes the book of `symbol` from the core; a change takes the
    /// next update id. True if anything changed.
    pub fn refresh(&mut self, core: &MatchingCore, symbol: &str) -> bool {
        let (bids, asks) = book_of(core, symbol);
        let bid_changes = changes(&self.bids, &bids);
        let ask_changes = changes(&self.asks, &asks);
        if bid_changes.is_empty() && ask_changes.is_empty() {
            return false;
        }
        self.last_update_id += 1;
        let id = self.last_update_id;
        for p in [&mut self.fast, &mut self.slow] {
            p.first.get_or_insert(id);
            p.last = id;
            p.bids.extend(bid_changes.iter().copied());
            p.asks.extend(ask_changes.iter().copied());
        }
        self.bids = bids;
        self.asks = asks;
        true
    }

    /// Drops the changes not yet sent at both speeds (the next diff starts
    /// at the next update id).
    pub fn forget_pending(&mut self) {
        self.fast = Pending::default();
        self.slow = Pending::default();
    }

    /// Takes the changes not yet sent at one speed (`fast`: 100 ms).
    pub fn take_diff(&mut self, fast: bool) -> Option<Diff> {
        let p = std::mem::take(if fast { &mut self.fast } else { &mut self.slow });
        let first = p.first?;
        Some(Diff { first, last: p.last, bids: p.bids.into_iter().rev().collect(), asks: p.asks.into_iter().collect() })
    }

    /// The best `n` bids (highest first) and asks (lowest first).
    pub fn top(&self, n: usize) -> (Levels, Levels) {
        let bids = self.bids.iter().rev().take(n).map(|(p, q)| (*p, *q)).collect();
        let asks = self.asks.iter().take(n).map(|(p, q)| (*p, *q)).collect();
        (bids, asks)
    }

    /// The best bid and ask with their quantities.
    pub fn best(&self) -> Option<((Decimal, Decimal), (Decimal, Decimal))> {
        let (b, a) = (self.bids.iter().next_back()?, self.asks.iter().next()?);
        Some(((*b.0, *b.1), (*a.0, *a.1)))
    }

    /// The REST `depth` body with up to `limit` levels a side.
    pub fn snapshot_json(&self, limit: usize) -> Value {
        let (bids, asks) = self.top(limit);
        json!({"lastUpdateId": self.last_update_id, "bids": levels_json(&bids), "asks": levels_json(&asks)})
    }

    /// The `bookTicker` event of the current top of book (`u` is the book's update id).
    pub fn book_ticker(&self, symbol: &str) -> Option<Value> {
        let ((b, bq), (a, aq)) = self.best()?;
        Some(json!({"u": self.last_update_id, "s": symbol, "b": d8(b), "B": d8(bq), "a": d8(a), "A": d8(aq)}))
    }
}

/// Levels that differ between two books: new quantities, 0 for removed levels.
pub(crate) fn changes(old: &BTreeMap<Decimal, Decimal>, new: &BTreeMap<Decimal, Decimal>) -> Vec<(Decimal, Decimal)> {
    let mut out: Vec<(Decimal, Decimal)> =
        old.keys().filter(|p| !new.contains_key(*p)).map(|p| (*p, Decimal::ZERO)).collect();
    out.extend(new.iter().filter(|(p, q)| old.get(*p) != Some(*q)).map(|(p, q)| (*p, *q)));
    out
}

/// The book of a symbol: the synthetic levels plus every account's working
/// limit orders (a triggered stop works as a limit) that do not cross them.
fn book_of(core: &MatchingCore, symbol: &str) -> (BTreeMap<Decimal, Decimal>, BTreeMap<Decimal, Decimal>) {
    let mut bids: BTreeMap<Decimal, Decimal> = BTreeMap::new();
    let mut asks: BTreeMap<Decimal, Decimal> = BTreeMap::new();
    for (p, q) in core.synthetic_levels(symbol, Side::Sell) {
        *bids.entry(p).or_default() += q;
    }
    for (p, q) in core.synthetic_levels(symbol, Side::Buy) {
        *asks.entry(p).or_default() += q;
    }
    let best_bid = bids.keys().next_back().copied();
    let best_ask = asks.keys().next().copied();
    for o in core.resting_orders(symbol) {
        let working = o.status.is_open() && (o.triggered || !matches!(o.order_type, OrderType::StopLimit { .. }));
        let (Some(price), true) = (o.order_type.limit_price(), working) else { continue };
        let left = o.remaining();
        if left <= Decimal::ZERO {
            continue;
        }
        match o.side {
            Side::Buy if best_ask.is_none_or(|a| price < a) => *bids.entry(price).or_default() += left,
            Side::Sell if best_bid.is_none_or(|b| price > b) => *asks.entry(price).or_default() += left,
            // An order crossing the synthetic touch fills on the next quote.
            _ => {}
        }
    }
    (bids, asks)
}

/// Sends the depth, ticker and average price streams: every 100 ms the fast
/// diffs and partial books, every second the 1000 ms ones, the tickers and
/// the average prices. Each book is refreshed first, so changes made by
/// orders between ticks go out within 100 ms.
pub(crate) async fn publish_loop(ex: Arc<Exchange>, faults: FaultControl) {
    let mut iv = tokio::time::interval(Duration::from_millis(100));
    iv.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut n: u64 = 0;
    loop {
        iv.tick().await;
        n += 1;
        let slow = n.is_multiple_of(10);
        let now = faults.server_now_ms();
        let listening = ex.market_tx.receiver_count() > 0;
        let mut msgs = Vec::new();
        {
            let mut st = ex.lock();
            for (symbol, lower) in st.symbols() {
                let Some((core, book)) = st.depth_parts(&symbol) else { continue };
                let before = book.best();
                book.refresh(core, &symbol);
                let top_moved = book.best() != before;
                let mut speeds = vec![true];
                if slow {
                    speeds.push(false);
                }
                for fast in speeds {
                    let diff = book.take_diff(fast);
                    if !listening {
                        continue;
                    }
                    if let Some(d) = diff {
                        msgs.push(MarketMsg {
                            symbol_lower: lower.clone(),
                            kind: MarketKind::DepthDiff { fast, event: d.event(&symbol, now) },
                        });
                    }
                    let (bids, asks) = book.top(PARTIAL_MAX);
                    msgs.push(MarketMsg {
                        symbol_lower: lower.clone(),
                        kind: MarketKind::PartialDepth { fast, last_update_id: book.last_update_id(), bids, asks },
                    });
                }
                if listening && top_moved {
                    if let Some(bt) = book.book_ticker(&symbol) {
                        msgs.push(MarketMsg { symbol_lower: lower.clone(), kind: MarketKind::Book(bt) });
                    }
                }
            }
            if slow && listening {
                msgs.extend(super::tickers::stream_messages(&st, now));
            }
        }
        for m in msgs {
            let _ = ex.market_tx.send(Arc::new(m));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> Decimal {
        s.parse().unwrap()
    }

    fn book(levels: &[(&str, &str)]) -> BTreeMap<Decimal, Decimal> {
        levels.iter().map(|(p, q)| (d(p), d(q))).collect()
    }

    #[test]
    fn changes_name_new_and_removed_levels() {
        let old = book(&[("100", "1"), ("99", "1"), ("98", "2")]);
        let new = book(&[("100", "1"), ("99", "3"), ("101", "1")]);
        let mut c = changes(&old, &new);
        c.sort();
        assert_eq!(c, vec![(d("98"), Decimal::ZERO), (d("99"), d("3")), (d("101"), d("1"))]);
        assert!(changes(&new, &new).is_empty());
    }

    #[test]
    fn diffs_cover_consecutive_update_ids_per_speed() {
        let mut b = DepthBook::new(10);
        // Two changes by hand (what refresh does), one diff at each speed.
        for (id, price) in [(11, "100"), (12, "101")] {
            b.last_update_id = id;
            for p in [&mut b.fast, &mut b.slow] {
                p.first.get_or_insert(id);
                p.last = id;
                p.bids.insert(d(price), Decimal::ONE);
            }
        }
        let fast = b.take_diff(true).unwrap();
        assert_eq!((fast.first, fast.last), (11, 12));
        assert_eq!(fast.bids, vec![(d("101"), Decimal::ONE), (d("100"), Decimal::ONE)], "best bid first");
        assert!(b.take_diff(true).is_none(), "nothing new");
        assert_eq!(b.take_diff(false).map(|d| (d.first, d.last)), Some((11, 12)), "the slow stream has its own");
    }
}
