//! Every fill of a backtest, kept compact; and a feed that hands them, in
//! order, to a reader on another thread while the run goes on.
//!
//! A run's report splits its fills into round trips. Done after the run, that
//! was the report's longest part, with a core idle beside the engine for the
//! whole run; fed chunk by chunk, the split is done by the time the run ends.

use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::Arc;

use keel_core::fill::{Fill, TradeId};
use keel_core::instrument::Instrument;
use keel_core::order::OrderTag;
use keel_core::sim::FillFacts;
use keel_core::{StrategyId, Symbol};

use super::write_client_id;

/// Fills per chunk: a chunk is handed to the feed when it is full, so a
/// reader is woken about fifty times in a run of 50 000 fills, not per
/// fill; and what is left to split when the run ends is at most a chunk.
const CHUNK: usize = 1024;

/// Every fill of a backtest, in order. Kept as plain values (what the
/// matching core reported, and whose order it was) and built as [`Fill`]s
/// where they are read, so recording a fill allocates nothing.
#[derive(Debug, Clone, Default)]
pub struct Fills {
    /// Full chunks, shared with the feed when there is one.
    full: Vec<Arc<Vec<KeptFill>>>,
    /// The chunk being filled.
    open: Vec<KeptFill>,
    names: Names,
    /// Where full chunks go as well (see [`Fills::feed`]).
    feed: Option<Sender<Arc<Vec<KeptFill>>>>,
}

/// What turns a kept fill into a [`Fill`]: the names its indices stand for.
#[derive(Debug, Clone, Default)]
struct Names {
    /// Per symbol index: its instrument (symbol and assets).
    instruments: Vec<Option<Instrument>>,
    /// Per strategy runner: its id.
    strategies: Vec<StrategyId>,
}

/// One fill as [`Fills`] keeps it.
#[derive(Debug, Clone, Copy)]
pub(super) struct KeptFill {
    pub(super) facts: FillFacts,
    /// The order's number (see [`super::OrderRecord::number`]).
    pub(super) order: u64,
    pub(super) symbol: u32,
    pub(super) runner: u32,
    pub(super) tag: Option<OrderTag>,
}

impl Fills {
    /// No fills yet, of these instruments (by symbol index) and strategies
    /// (by runner).
    pub(super) fn new(instruments: Vec<Option<Instrument>>, strategies: Vec<StrategyId>) -> Self {
        Self { full: Vec::new(), open: Vec::new(), names: Names { instruments, strategies }, feed: None }
    }

    /// Number of fills.
    pub fn len(&self) -> usize {
        // Every full chunk holds `CHUNK` fills but the last, when the feed closed.
        self.full.iter().map(|c| c.len()).sum::<usize>() + self.open.len()
    }

    /// True when nothing filled.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Calls `each` with every fill in order, built in one reused [`Fill`]
    /// (no allocation per fill).
    pub fn for_each(&self, each: impl FnMut(&Fill)) {
        let chunks = self.full.iter().map(|c| c.as_slice()).chain(std::iter::once(self.open.as_slice()));
        self.names.each(chunks.flat_map(|c| c.iter().copied()), each);
    }

    /// From now on, every full chunk also goes to the returned feed, and the
    /// rest when [`Fills::close_feed`] is called (or these fills dropped).
    /// Chunks are shared, not copied; the channel never blocks the run, and
    /// holds no more than the fills themselves.
    pub(super) fn feed(&mut self) -> FillFeed {
        let (tx, rx) = channel();
        for chunk in &self.full {
            // The receiver is right here: this cannot fail.
            let _ = tx.send(chunk.clone());
        }
        self.feed = Some(tx);
        FillFeed { chunks: rx, names: self.names.clone() }
    }

    /// Hands the fills not yet fed to the feed, and ends it.
    pub(super) fn close_feed(&mut self) {
        if let Some(feed) = self.feed.take() {
            if !self.open.is_empty() {
                let rest = Arc::new(std::mem::take(&mut self.open));
                // A reader that stopped early (it panicked) is told by its join.
                let _ = feed.send(rest.clone());
                self.full.push(rest);
            }
        }
    }

    /// Keeps one more fill.
    pub(super) fn push(&mut self, kept: KeptFill) {
        if self.open.capacity() == 0 {
            self.open.reserve_exact(CHUNK);
        }
        self.open.push(kept);
        if self.open.len() == CHUNK {
            let full = Arc::new(std::mem::replace(&mut self.open, Vec::with_capacity(CHUNK)));
            if let Some(feed) = &self.feed {
                let _ = feed.send(full.clone());
            }
            self.full.push(full);
        }
    }

    /// A new [`Fill`] of a kept one.
    pub(super) fn build(&self, k: &KeptFill) -> Fill {
        self.names.build(k)
    }

    /// Makes `fill` the kept one, reusing its strings.
    pub(super) fn rewrite(&self, k: &KeptFill, fill: &mut Fill) {
        self.names.rewrite(k, fill);
    }
}

/// A run's fills, in order, as the run makes them: read on another thread
/// with [`FillFeed::for_each`], which returns when the run has ended.
pub struct FillFeed {
    chunks: Receiver<Arc<Vec<KeptFill>>>,
    names: Names,
}

impl FillFeed {
    /// Calls `each` with every fill in order, waiting for the run to make
    /// them; returns once the run has ended (or was dropped).
    pub fn for_each(self, each: impl FnMut(&Fill)) {
        let kept = self.chunks.into_iter().flat_map(|chunk| (0..chunk.len()).map(move |k| chunk[k]));
        self.names.each(kept, each);
    }
}

impl Names {
    /// Calls `each` with every fill of `kept` in order, in one reused [`Fill`].
    fn each(&self, kept: impl Iterator<Item = KeptFill>, mut each: impl FnMut(&Fill)) {
        let mut fill = None;
        for k in kept {
            let fill = match &mut fill {
                Some(fill) => {
                    self.rewrite(&k, fill);
                    fill
                }
                None => fill.insert(self.build(&k)),
            };
            each(fill);
        }
    }

    fn build(&self, k: &KeptFill) -> Fill {
        let mut fill = Fill {
            trade_id: TradeId::from(k.facts.trade_id),
            client_order_id: String::new(),
            strategy_id: self.strategies[k.runner as usize].clone(),
            symbol: Symbol::new(""),
            side: k.facts.side,
            price: k.facts.price,
            qty: k.facts.qty,
            fee: k.facts.fee,
            fee_asset: String::new(),
            is_maker: k.facts.is_maker,
            ts_ms: k.facts.ts_ms,
            tag: k.tag,
        };
        self.rewrite(k, &mut fill);
        fill
    }

    fn rewrite(&self, k: &KeptFill, fill: &mut Fill) {
        let f = &k.facts;
        fill.trade_id.set_u64(f.trade_id);
        write_client_id(&mut fill.client_order_id, k.order);
        fill.strategy_id.clone_from(&self.strategies[k.runner as usize]);
        if let Some(instrument) = &self.instruments[k.symbol as usize] {
            fill.symbol.clone_from(&instrument.symbol);
            let fee_asset = if f.fee_in_base { &instrument.base_asset } else { &instrument.quote_asset };
            fill.fee_asset.clone_from(fee_asset);
        }
        (fill.side, fill.price, fill.qty, fill.fee) = (f.side, f.price, f.qty, f.fee);
        (fill.is_maker, fill.ts_ms, fill.tag) = (f.is_maker, f.ts_ms, k.tag);
    }
}

#[cfg(test)]
mod tests {
    use keel_core::order::Side;
    use keel_core::Decimal;

    use super::super::test_bars::d;
    use super::*;

    fn kept(n: u64) -> KeptFill {
        let facts = FillFacts {
            trade_id: n,
            side: if n.is_multiple_of(2) { Side::Buy } else { Side::Sell },
            price: Decimal::new(3_000_000 + n as i64, 2),
            qty: Decimal::new(1 + n as i64 % 7, 3),
            fee: Decimal::new(n as i64 % 5, 4),
            fee_in_base: n.is_multiple_of(3),
            is_maker: n.is_multiple_of(4),
            ts_ms: 1_700_000_000_000 + n as i64,
        };
        KeptFill { facts, order: n / 2, symbol: (n % 2) as u32, runner: (n % 3) as u32, tag: None }
    }

    fn fills() -> Fills {
        let lot = |symbol: &str, base: &str, quote: &str, tick: &str| {
            Instrument::with_steps(symbol.into(), base.into(), quote.into(), d(tick), d("0.001"))
        };
        let instruments =
            vec![Some(lot("BTCUSDT", "BTC", "USDT", "0.01")), Some(lot("ETHBTC", "ETH", "BTC", "0.00001"))];
        Fills::new(instruments, ["a", "b", "c"].map(StrategyId::new).to_vec())
    }

    /// The feed hands over every fill once, in order, whether kept before it was made or after,
    /// in full chunks and the rest: what `for_each` gives. Fails when a chunk is skipped or sent
    /// twice, the rest is not sent at the close, or `len` counts the closed rest as a full chunk.
    #[test]
    fn the_feed_gives_every_fill_once_in_order() {
        for (before, after) in [(0, 0), (0, 5), (3, CHUNK - 3), (CHUNK + 1, CHUNK), (2 * CHUNK, 2 * CHUNK + 7)] {
            let mut fills = fills();
            let mut n = 0;
            let mut push = |fills: &mut Fills, count: usize| {
                for _ in 0..count {
                    fills.push(kept(n));
                    n += 1;
                }
            };
            push(&mut fills, before);
            let feed = fills.feed();
            let reader = std::thread::spawn(move || {
                let mut got = Vec::new();
                feed.for_each(|f| got.push(f.clone()));
                got
            });
            push(&mut fills, after);
            fills.close_feed();
            let got = reader.join().unwrap();
            let mut want = Vec::new();
            fills.for_each(|f| want.push(f.clone()));
            assert_eq!(fills.len(), before + after, "{before} + {after}");
            assert_eq!(want.len(), before + after, "{before} + {after}");
            assert_eq!(got, want, "{before} + {after}");
        }
    }

    /// Dropped fills end the feed: a reader never waits for a run that is gone (a panic in
    /// the run unwinds through the scope that joins the reader).
    #[test]
    fn dropping_the_fills_ends_the_feed() {
        let mut fills = fills();
        let feed = fills.feed();
        for n in 0..CHUNK as u64 + 2 {
            fills.push(kept(n));
        }
        drop(fills);
        let mut count = 0;
        feed.for_each(|_| count += 1);
        assert_eq!(count, CHUNK, "the full chunk was sent, the rest went with the fills");
    }
}
