//! Matching against a live venue's market data (paper trading on the real
//! market): the book is the venue's partial book, and public trades fill
//! resting orders.
//!
//! Rules (README, "Dry-run on live market data"):
//! - A market order (and a marketable limit, and a triggered stop-market)
//!   walks the live levels with the taker fee. What it takes is gone from the
//!   local copy of the book until the next book replaces it, so two orders
//!   in a row do not both take the same level.
//! - A resting limit fills at its own price, with the maker fee, when a
//!   public trade prints *through* it (below a buy's price, above a sell's),
//!   at most the printed quantity per trade. A print *at* the price, or a
//!   book touching it, does not fill it: the queue ahead of the order is
//!   unknown, so the dry-run does not assume it was first.
//! - Stops trigger on the book's touch, as on the synthetic book.

use rust_decimal::Decimal;

use super::{BookTicker, Execution, MatchingCore, Side, Sink};
use crate::symbol::Symbol;

/// A live partial book: price and quantity per level, best first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct LiveDepth {
    bids: Vec<(Decimal, Decimal)>,
    asks: Vec<(Decimal, Decimal)>,
}

impl LiveDepth {
    /// The side a taker of `side` takes: the asks for a buy, the bids for a sell.
    pub(super) fn side(&self, side: Side) -> &[(Decimal, Decimal)] {
        match side {
            Side::Buy => &self.asks,
            Side::Sell => &self.bids,
        }
    }

    fn side_mut(&mut self, side: Side) -> &mut [(Decimal, Decimal)] {
        match side {
            Side::Buy => &mut self.asks,
            Side::Sell => &mut self.bids,
        }
    }
}

impl MatchingCore {
    /// Replaces a symbol's book with a live venue's partial book (levels in
    /// any order; empty ones are dropped). Its best levels become the quote,
    /// on which stops trigger; resting limits are left to
    /// [`Self::match_trade`]. A book missing a side (or crossed) is ignored,
    /// keeping the last whole one: it cannot price both sides.
    pub fn set_depth(
        &mut self,
        symbol: &str,
        mut bids: Vec<(Decimal, Decimal)>,
        mut asks: Vec<(Decimal, Decimal)>,
        ts_ms: i64,
    ) -> Vec<Execution> {
        bids.retain(|(p, q)| *p > Decimal::ZERO && *q > Decimal::ZERO);
        asks.retain(|(p, q)| *p > Decimal::ZERO && *q > Decimal::ZERO);
        bids.sort_by_key(|b| std::cmp::Reverse(b.0));
        asks.sort_by_key(|a| a.0);
        let mut out = Vec::new();
        let (Some(&(bid, bid_qty)), Some(&(ask, ask_qty))) = (bids.first(), asks.first()) else { return out };
        if bid >= ask {
            return out;
        }
        let Some(book) = self.books.get_mut(symbol) else { return out };
        book.depth = Some(LiveDepth { bids, asks });
        let quote = BookTicker { symbol: Symbol::new(symbol), bid, bid_qty, ask, ask_qty, ts_ms };
        self.quote_matching(quote, false, &mut out);
        self.forget_finished();
        out
    }

    /// Fills the resting limits a public trade printed through (see the
    /// module's rules), at their own price, up to `qty` in arrival order.
    pub fn match_trade(&mut self, symbol: &str, price: Decimal, qty: Decimal, ts_ms: i64) -> Vec<Execution> {
        let mut out = Vec::new();
        let Some(book) = self.books.get(symbol) else { return out };
        let mut ids = std::mem::take(&mut self.scratch.ids);
        ids.clear();
        ids.extend_from_slice(&book.resting);
        let mut avail = qty;
        for &id in &ids {
            if avail <= Decimal::ZERO {
                break;
            }
            let Some(order) = self.orders.get(&id).filter(|o| o.status.is_open()) else { continue };
            if order.order_type.stop_price().is_some() && !order.triggered {
                continue;
            }
            let Some(limit) = order.order_type.limit_price() else { continue };
            let through = match order.side {
                Side::Buy => price < limit,
                Side::Sell => price > limit,
            };
            if !through {
                continue;
            }
            let take = order.remaining().min(avail);
            avail -= take;
            self.fill(id, limit, take, true, ts_ms, &mut out);
        }
        self.scratch.ids = ids;
        self.prune_resting(symbol);
        self.forget_finished();
        out
    }

    /// A taker order against the live levels: best first, up to `limit`;
    /// what it takes leaves the local copy of the level.
    pub(super) fn take_live(
        &mut self,
        id: u64,
        symbol: &Symbol,
        limit: Option<Decimal>,
        now_ms: i64,
        out: &mut impl Sink,
    ) {
        let Some(side) = self.orders.get(&id).map(|o| o.side) else { return };
        let mut level = 0;
        loop {
            let depth = self.books.get(symbol).and_then(|b| b.depth.as_ref());
            let Some((price, qty)) = depth.and_then(|d| d.side(side).get(level).copied()) else { break };
            if limit.is_some_and(|l| match side {
                Side::Buy => price > l,
                Side::Sell => price < l,
            }) {
                break;
            }
            let remaining = self.orders.get(&id).map(|o| o.remaining()).unwrap_or_default();
            if remaining <= Decimal::ZERO {
                break;
            }
            let take = remaining.min(qty);
            self.fill(id, price, take, false, now_ms, out);
            if let Some(l) =
                self.books.get_mut(symbol).and_then(|b| b.depth.as_mut()).and_then(|d| d.side_mut(side).get_mut(level))
            {
                l.1 -= take;
            }
            level += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::{CommissionAsset, FeeSchedule, NewOrder, OrderAsked};
    use super::*;
    use crate::balance::Balance;
    use crate::instrument::Instrument;
    use crate::order::{OrderStatus, OrderType, TimeInForce};

    fn d(s: &str) -> Decimal {
        s.parse().unwrap()
    }

    fn levels(list: &[(&str, &str)]) -> Vec<(Decimal, Decimal)> {
        list.iter().map(|(p, q)| (d(p), d(q))).collect()
    }

    /// Maker 10 bps, taker 20 bps in the quote asset; the live book
    /// 99/98/97 bid, 101/102/103 ask, one BTC a level.
    fn core() -> MatchingCore {
        let mut c = MatchingCore::new(FeeSchedule::new(d("10"), d("20"), CommissionAsset::Quote), 2);
        c.add_instrument(Instrument::with_steps("BTCUSDT".into(), "BTC".into(), "USDT".into(), d("0.01"), d("0.001")));
        c.add_account(
            1,
            vec![
                Balance { asset: "USDT".into(), free: d("100000"), locked: Decimal::ZERO },
                Balance { asset: "BTC".into(), free: d("10"), locked: Decimal::ZERO },
            ],
        );
        let book = c.set_depth(
            "BTCUSDT",
            levels(&[("98", "1"), ("99", "1"), ("97", "1")]),
            levels(&[("101", "1"), ("103", "1"), ("102", "1"), ("104", "0")]),
            1,
        );
        assert!(book.is_empty());
        c
    }

    fn submit(c: &mut MatchingCore, id: &str, side: Side, order_type: OrderType, qty: &str) -> Vec<Execution> {
        let new = NewOrder {
            account: 1,
            client_order_id: id.into(),
            symbol: "BTCUSDT".into(),
            side,
            order_type,
            qty: d(qty),
            tif: TimeInForce::Gtc,
            asked: OrderAsked::default(),
        };
        c.submit(new, 2).unwrap().executions
    }

    /// (price, qty, fee, maker) of each fill.
    fn fills(ex: &[Execution]) -> Vec<(Decimal, Decimal, Decimal, bool)> {
        ex.iter().filter_map(|e| e.fill.as_ref()).map(|f| (f.price, f.qty, f.fee, f.is_maker)).collect()
    }

    #[test]
    fn market_orders_walk_the_live_levels_with_the_taker_fee() {
        struct Case {
            name: &'static str,
            side: Side,
            qty: &'static str,
            want: Vec<(&'static str, &'static str, &'static str)>,
            status: OrderStatus,
        }
        let cases = [
            Case {
                name: "buy within the touch",
                side: Side::Buy,
                qty: "0.5",
                want: vec![("101", "0.5", "0.101")],
                status: OrderStatus::Filled,
            },
            Case {
                name: "buy across two levels",
                side: Side::Buy,
                qty: "1.5",
                want: vec![("101", "1", "0.202"), ("102", "0.5", "0.102")],
                status: OrderStatus::Filled,
            },
            Case {
                name: "sell across three levels",
                side: Side::Sell,
                qty: "2.5",
                want: vec![("99", "1", "0.198"), ("98", "1", "0.196"), ("97", "0.5", "0.097")],
                status: OrderStatus::Filled,
            },
            Case {
                name: "beyond the book: the rest expires",
                side: Side::Buy,
                qty: "4",
                want: vec![("101", "1", "0.202"), ("102", "1", "0.204"), ("103", "1", "0.206")],
                status: OrderStatus::Expired,
            },
        ];
        for c in cases {
            let mut core = core();
            let ex = submit(&mut core, "m", c.side, OrderType::Market, c.qty);
            let want: Vec<_> = c.want.iter().map(|(p, q, f)| (d(p), d(q), d(f), false)).collect();
            assert_eq!(fills(&ex), want, "{}", c.name);
            assert_eq!(ex.last().unwrap().order.status, c.status, "{}", c.name);
        }
    }

    #[test]
    fn what_a_market_order_took_is_gone_until_the_next_book() {
        let mut c = core();
        assert_eq!(
            fills(&submit(&mut c, "a", Side::Buy, OrderType::Market, "0.8")),
            vec![(d("101"), d("0.8"), d("0.1616"), false)]
        );
        let second = fills(&submit(&mut c, "b", Side::Buy, OrderType::Market, "0.5"));
        assert_eq!(
            second.iter().map(|f| (f.0, f.1)).collect::<Vec<_>>(),
            vec![(d("101"), d("0.2")), (d("102"), d("0.3"))]
        );
        c.set_depth("BTCUSDT", levels(&[("99", "1")]), levels(&[("101", "1")]), 3);
        let third = fills(&submit(&mut c, "c", Side::Buy, OrderType::Market, "0.5"));
        assert_eq!(third.iter().map(|f| (f.0, f.1)).collect::<Vec<_>>(), vec![(d("101"), d("0.5"))]);
    }

    #[test]
    fn resting_limits_fill_when_trades_print_through_their_price() {
        struct Case {
            name: &'static str,
            side: Side,
            limit: &'static str,
            /// Trades in order: price, quantity.
            trades: Vec<(&'static str, &'static str)>,
            /// The book moves to touch the limit before the trades.
            touch: bool,
            want: Vec<(&'static str, &'static str)>,
        }
        let cases = [
            Case {
                name: "buy: a print below fills at the limit",
                side: Side::Buy,
                limit: "100",
                trades: vec![("99.5", "5")],
                touch: false,
                want: vec![("100", "1")],
            },
            Case {
                name: "buy: a print at the price does not",
                side: Side::Buy,
                limit: "100",
                trades: vec![("100", "5")],
                touch: false,
                want: vec![],
            },
            Case {
                name: "buy: the book touching the price does not",
                side: Side::Buy,
                limit: "100",
                trades: vec![],
                touch: true,
                want: vec![],
            },
            Case {
                name: "buy: at most the printed quantity per trade",
                side: Side::Buy,
                limit: "100",
                trades: vec![("99", "0.4"), ("101", "9"), ("99.9", "0.4"), ("98", "5")],
                touch: false,
                want: vec![("100", "0.4"), ("100", "0.4"), ("100", "0.2")],
            },
            Case {
                name: "sell: a print above fills at the limit",
                side: Side::Sell,
                limit: "100",
                trades: vec![("100", "5"), ("100.01", "5")],
                touch: false,
                want: vec![("100", "1")],
            },
        ];
        for c in cases {
            let mut core = core();
            let placed = submit(&mut core, "l", c.side, OrderType::Limit { price: d(c.limit) }, "1");
            assert!(fills(&placed).is_empty(), "{}: not marketable", c.name);
            let mut got = Vec::new();
            if c.touch {
                got.extend(core.set_depth("BTCUSDT", levels(&[("99", "1")]), levels(&[(c.limit, "1")]), 3));
            }
            for (p, q) in &c.trades {
                got.extend(core.match_trade("BTCUSDT", d(p), d(q), 4));
            }
            let want: Vec<_> = c.want.iter().map(|(p, q)| (d(p), d(q), d(q) * d(p) / d("1000"), true)).collect();
            assert_eq!(fills(&got), want, "{}", c.name);
            let open = core.open_orders(1, None).len();
            assert_eq!(open, usize::from(want.iter().map(|f| f.1).sum::<Decimal>() < d("1")), "{}", c.name);
        }
    }

    #[test]
    fn a_marketable_limit_takes_the_live_book_up_to_its_price() {
        let mut c = core();
        let ex = submit(&mut c, "l", Side::Buy, OrderType::Limit { price: d("102") }, "3");
        let got: Vec<_> = fills(&ex).iter().map(|f| (f.0, f.1, f.3)).collect();
        assert_eq!(got, vec![(d("101"), d("1"), false), (d("102"), d("1"), false)]);
        assert_eq!(c.open_orders(1, None)[0].remaining(), d("1"), "the rest rests");
    }

    #[test]
    fn a_one_sided_or_crossed_book_is_ignored() {
        let mut c = core();
        c.set_depth("BTCUSDT", vec![], levels(&[("50", "1")]), 3);
        c.set_depth("BTCUSDT", levels(&[("120", "1")]), levels(&[("110", "1")]), 3);
        assert_eq!(c.quote("BTCUSDT").map(|q| (q.bid, q.ask)), Some((d("99"), d("101"))));
    }
}
