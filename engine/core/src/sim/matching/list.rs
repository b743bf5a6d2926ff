//! Order lists: one-cancels-the-other (OCO) pairs, as Binance's
//! `orderList/oco` keeps them.
//!
//! A list has two legs of one side and one quantity: one above the market and
//! one below. For a SELL the leg above is the take-profit (a `LIMIT_MAKER`,
//! or a trigger order: `TAKE_PROFIT[_LIMIT]`) and the leg below the stop
//! (`STOP_LOSS[_LIMIT]`); for a BUY the stop is above and the take-profit
//! below. Rules (as Binance):
//! - the list locks its funds once (a sell its quantity, a buy the larger of
//!   its legs' costs), not once per leg;
//! - when one leg trades or triggers, the other expires at once
//!   ([`OCO_SIBLING_EXECUTED`]) and the executing leg takes over the lock;
//! - cancelling the list, or either leg, cancels both;
//! - in bar matching, when one bar reaches both legs, the leg the intrabar
//!   path reaches first wins: open → high → low → close when the high is
//!   nearer the open, else open → low → high → close (a bar that opens beyond
//!   a leg reaches it first, at the open).

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use super::{Execution, MatchError, MatchingCore, OrderAsked, SimOrder, Sink, BPS};
use crate::order::{OrderStatus, OrderType, Side, TimeInForce};
use crate::symbol::Symbol;

/// What [`MatchError::Unsupported`] names when a list's legs do not lie one
/// above and one below the market as their kinds need (Binance's
/// `OCO_BAD_PRICES`, -2010 "The relationship of the prices for the orders is
/// not correct.").
pub const OCO_BAD_PRICES: &str = "OCO legs on the wrong sides of the market";

/// Why a leg expired: the other leg of its list traded or triggered (Binance's
/// `expiryReason` `OCO_TRIGGER`).
pub const OCO_SIBLING_EXECUTED: &str = "the other order of its list executed";

/// One leg of a list to submit.
#[derive(Debug, Clone, PartialEq)]
pub struct NewLeg {
    /// The leg's own client order id (unique among open orders).
    pub client_order_id: String,
    /// `Limit` (it may only rest: a `LIMIT_MAKER`), `StopMarket` or `StopLimit`.
    pub order_type: OrderType,
    /// Time in force (a stop-limit's once triggered).
    pub tif: TimeInForce,
}

/// A one-cancels-the-other list to submit.
#[derive(Debug, Clone, PartialEq)]
pub struct NewOrderList {
    /// Account placing it.
    pub account: u32,
    /// The list's client order id (unique among open lists).
    pub list_client_order_id: String,
    /// Symbol.
    pub symbol: Symbol,
    /// Side of both legs.
    pub side: Side,
    /// Quantity of both legs.
    pub qty: Decimal,
    /// The leg above the market.
    pub above: NewLeg,
    /// The leg below the market.
    pub below: NewLeg,
}

/// An order list as the core keeps it (its legs are [`SimOrder`]s with its
/// [`SimOrder::list_id`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SimList {
    /// The list's id (from the order id sequence, so unique with them).
    pub list_id: u64,
    /// Owning account.
    pub account: u32,
    /// The list's client order id.
    pub list_client_order_id: String,
    /// Symbol.
    pub symbol: Symbol,
    /// The leg below the market (Binance lists it first).
    pub below: u64,
    /// The leg above the market.
    pub above: u64,
    /// The leg that traded or triggered first, once one did.
    pub executed: Option<u64>,
    /// Creation time.
    pub created_ms: i64,
    /// Last change of the list or a leg.
    pub updated_ms: i64,
}

impl NewOrderList {
    /// The list Keel's `OrderType::Oco` asks for: a take-profit `LIMIT_MAKER`
    /// at `take_profit` and a stop (`STOP_LOSS` at `stop`, or
    /// `STOP_LOSS_LIMIT` at `stop_limit` when set), both GTC, with the legs'
    /// client ids `take_profit_id` and `stop_id`. For a SELL the take-profit
    /// is above, for a BUY below.
    #[allow(clippy::too_many_arguments)]
    pub fn oco(
        account: u32,
        list_client_order_id: &str,
        symbol: Symbol,
        side: Side,
        qty: Decimal,
        (take_profit, stop, stop_limit): (Decimal, Decimal, Option<Decimal>),
        take_profit_id: String,
        stop_id: String,
    ) -> Self {
        let tp = NewLeg {
            client_order_id: take_profit_id,
            order_type: OrderType::Limit { price: take_profit },
            tif: TimeInForce::Gtc,
        };
        let stop_type = match stop_limit {
            Some(price) => OrderType::StopLimit { stop, price },
            None => OrderType::StopMarket { stop },
        };
        let sl = NewLeg { client_order_id: stop_id, order_type: stop_type, tif: TimeInForce::Gtc };
        let (above, below) = match side {
            Side::Sell => (tp, sl),
            Side::Buy => (sl, tp),
        };
        Self { account, list_client_order_id: list_client_order_id.to_string(), symbol, side, qty, above, below }
    }
}

impl SimList {
    /// Both legs, below first.
    pub fn legs(&self) -> [u64; 2] {
        [self.below, self.above]
    }

    /// The other leg.
    pub fn sibling(&self, leg: u64) -> u64 {
        if leg == self.below {
            self.above
        } else {
            self.below
        }
    }
}

/// What submitting a list did: the list, its legs after submission (below
/// first) and what happened to them at once.
#[derive(Debug, Clone, PartialEq)]
pub struct ListResult {
    /// The list.
    pub list: SimList,
    /// The legs, below first.
    pub legs: [SimOrder; 2],
    /// Immediate fills and status changes, in order.
    pub executions: Vec<Execution>,
}

/// The price that places a leg above or below the market: a limit's price,
/// a trigger order's stop.
fn level(order_type: &OrderType) -> Option<Decimal> {
    match *order_type {
        OrderType::Limit { price } => Some(price),
        OrderType::StopMarket { stop } | OrderType::StopLimit { stop, .. } => Some(stop),
        _ => None,
    }
}

impl MatchingCore {
    /// An open list by account and list client order id (the newest under it).
    pub fn list_by_client(&self, account: u32, list_client_order_id: &str) -> Option<&SimList> {
        self.lists.values().rev().find(|l| l.account == account && l.list_client_order_id == list_client_order_id)
    }

    /// A list by id.
    pub fn list(&self, list_id: u64) -> Option<&SimList> {
        self.lists.get(&list_id)
    }

    /// Lists of an account, oldest first.
    pub fn lists_of(&self, account: u32) -> impl Iterator<Item = &SimList> {
        self.lists.values().filter(move |l| l.account == account)
    }

    /// Whether any leg of the list is still working.
    pub fn list_is_open(&self, list: &SimList) -> bool {
        list.legs().iter().any(|id| self.orders.get(id).is_some_and(|o| o.status.is_open()))
    }

    /// Submits a one-cancels-the-other list (see the module's rules):
    /// checks both legs as orders, refuses prices that do not straddle the
    /// market (the quote's mid) ([`MatchError::Unsupported(OCO_BAD_PRICES)`]), locks once and rests both.
    pub fn submit_list(&mut self, new: NewOrderList, now_ms: i64) -> Result<ListResult, MatchError> {
        let book = self.books.get(&new.symbol).ok_or_else(|| MatchError::UnknownSymbol(new.symbol.to_string()))?;
        if !self.accounts.contains_key(&new.account) {
            return Err(MatchError::UnknownAccount(new.account));
        }
        let open_list =
            self.list_by_client(new.account, &new.list_client_order_id).is_some_and(|l| self.list_is_open(l));
        if open_list {
            return Err(MatchError::DuplicateClientOrderId(new.list_client_order_id.clone()));
        }
        for leg in [&new.above, &new.below] {
            let in_use = self
                .client_index(new.account, &leg.client_order_id)
                .and_then(|id| self.orders.get(&id))
                .is_some_and(|o| o.status.is_open());
            if in_use || new.above.client_order_id == new.below.client_order_id {
                return Err(MatchError::DuplicateClientOrderId(leg.client_order_id.clone()));
            }
        }
        let instrument = book.instrument.clone();
        let (bid, ask) = match &book.quote {
            Some(q) => (q.bid, q.ask),
            None => return Err(MatchError::NoMarket(new.symbol.to_string())),
        };
        // Binance's "last traded price": the quote's mid here (the core's own
        // last fill may be long stale on a live or simulated market).
        let last = (bid + ask) / Decimal::TWO;
        let (Some(above), Some(below)) = (level(&new.above.order_type), level(&new.below.order_type)) else {
            return Err(MatchError::Unsupported(OCO_BAD_PRICES));
        };
        // The stop is on the losing side: below for a sell, above for a buy;
        // a limit there would trade at once.
        let stop_leg = match new.side {
            Side::Sell => &new.below,
            Side::Buy => &new.above,
        };
        let marketable_limit = [&new.above, &new.below].iter().any(|leg| match (leg.order_type, new.side) {
            (OrderType::Limit { price }, Side::Sell) => price <= bid,
            (OrderType::Limit { price }, Side::Buy) => price >= ask,
            _ => false,
        });
        if !(above > last && last > below) || stop_leg.order_type.stop_price().is_none() || marketable_limit {
            return Err(MatchError::Unsupported(OCO_BAD_PRICES));
        }
        for leg in [&new.above, &new.below] {
            let reference = leg.order_type.limit_price().or(leg.order_type.stop_price()).unwrap_or(last);
            instrument.check(new.qty, reference, false).map_err(MatchError::Filter)?;
        }
        let fee =
            if self.fees.charges_base(new.side) { Decimal::ZERO } else { self.fees.taker_bps.max(self.fees.maker_bps) };
        let (lock, lock_asset) = match new.side {
            Side::Buy => {
                let cost = |leg: &NewLeg| {
                    let price = leg.order_type.limit_price().or(leg.order_type.stop_price()).unwrap_or(last);
                    price * new.qty * (BPS + fee) / BPS
                };
                (cost(&new.above).max(cost(&new.below)), instrument.quote_asset.as_str())
            }
            Side::Sell => (new.qty, instrument.base_asset.as_str()),
        };
        self.accounts.get_mut(&new.account).ok_or(MatchError::UnknownAccount(new.account))?.lock(lock_asset, lock)?;

        let list_id = self.next_order_id;
        self.next_order_id += 1;
        let side_price = match new.side {
            Side::Buy => ask,
            Side::Sell => bid,
        };
        // Below first, as Binance numbers them; the list's lock sits on the
        // leg below until one executes.
        let mut ids = [0u64; 2];
        for (k, leg) in [&new.below, &new.above].into_iter().enumerate() {
            let order_id = self.next_order_id;
            self.next_order_id += 1;
            let stop = leg.order_type.stop_price();
            let order = SimOrder {
                order_id,
                account: new.account,
                client_order_id: self.string_of(&leg.client_order_id),
                symbol: new.symbol.clone(),
                side: new.side,
                order_type: leg.order_type,
                tif: leg.tif,
                qty: new.qty,
                filled_qty: Decimal::ZERO,
                filled_quote: Decimal::ZERO,
                status: OrderStatus::Accepted,
                reason: None,
                created_ms: now_ms,
                updated_ms: now_ms,
                triggered: stop.is_some_and(|s| s == side_price),
                trigger_above: stop.is_some_and(|s| s > side_price),
                locked: if k == 0 { lock } else { Decimal::ZERO },
                asked: OrderAsked {
                    post_only: matches!(leg.order_type, OrderType::Limit { .. }),
                    ..OrderAsked::default()
                },
                list_id: Some(list_id),
            };
            let key = self.string_of(&leg.client_order_id);
            self.by_client.entry(new.account).or_default().insert(key, order_id);
            self.orders.insert(order_id, order);
            ids[k] = order_id;
        }
        let list = SimList {
            list_id,
            account: new.account,
            list_client_order_id: new.list_client_order_id.clone(),
            symbol: new.symbol.clone(),
            below: ids[0],
            above: ids[1],
            executed: None,
            created_ms: now_ms,
            updated_ms: now_ms,
        };
        self.lists.insert(list_id, list);
        for id in ids {
            self.rest(id);
        }
        // A stop at the market has triggered already: it executes, its sibling expires.
        let mut executions = Vec::new();
        for id in ids {
            let Some(o) = self.orders.get(&id) else { continue };
            if o.triggered && o.status.is_open() {
                let market = matches!(o.order_type, OrderType::StopMarket { .. });
                self.activate_leg(id, now_ms, &mut executions);
                if market {
                    self.execute_triggered(id, now_ms, &mut executions);
                }
            }
        }
        self.prune_resting(&new.symbol);
        let result = (|| {
            let list = self.lists.get(&list_id).cloned().ok_or(MatchError::UnknownOrder)?;
            let leg = |id| self.orders.get(&id).cloned().ok_or(MatchError::UnknownOrder);
            Ok(ListResult { legs: [leg(ids[0])?, leg(ids[1])?], list, executions })
        })();
        self.forget_finished();
        result
    }

    /// Cancels an open list (both legs that still work) by its id; the
    /// legs after the cancel, below first.
    pub fn cancel_list(&mut self, account: u32, list_id: u64, now_ms: i64) -> Result<[SimOrder; 2], MatchError> {
        let list = self.lists.get(&list_id).filter(|l| l.account == account).ok_or(MatchError::UnknownOrder)?;
        let legs = list.legs();
        if !self.list_is_open(list) {
            let status = self.orders.get(&legs[0]).map_or(OrderStatus::Canceled, |o| o.status);
            return Err(MatchError::AlreadyFinal(status));
        }
        for id in legs {
            if self.orders.get(&id).is_some_and(|o| o.status.is_open()) {
                self.close(id, OrderStatus::Canceled, None, now_ms);
            }
        }
        if let Some(l) = self.lists.get_mut(&list_id) {
            l.updated_ms = now_ms;
        }
        let leg = |id| self.orders.get(&id).cloned().ok_or(MatchError::UnknownOrder);
        let out = [leg(legs[0])?, leg(legs[1])?];
        self.forget_finished();
        Ok(out)
    }

    /// A leg traded or triggered: its sibling expires (once) and the leg
    /// takes over what the sibling locked.
    pub(super) fn activate_leg(&mut self, id: u64, now_ms: i64, out: &mut impl Sink) {
        let Some(list_id) = self.orders.get(&id).and_then(|o| o.list_id) else { return };
        let Some(list) = self.lists.get_mut(&list_id) else { return };
        if list.executed.is_some() {
            return;
        }
        list.executed = Some(id);
        list.updated_ms = now_ms;
        let sibling = list.sibling(id);
        let Some(s) = self.orders.get_mut(&sibling) else { return };
        if !s.status.is_open() {
            return;
        }
        let moved = std::mem::take(&mut s.locked);
        if let Some(o) = self.orders.get_mut(&id) {
            o.locked += moved;
        }
        self.close(sibling, OrderStatus::Expired, Some(OCO_SIBLING_EXECUTED), now_ms);
        if let Some(s) = self.orders.get(&sibling) {
            if let Some(book) = self.books.get(&s.symbol) {
                out.record(s, &book.instrument, Some(OCO_SIBLING_EXECUTED), None);
            }
        }
    }

    /// Bar matching of lists: when a bar reaches both legs of a list, the leg
    /// its intrabar path reaches first executes and the other expires
    /// (see the module's rules); a list with one leg reached is left to the
    /// order matching, which expires the sibling when that leg executes.
    pub(super) fn lists_in_bar(
        &mut self,
        symbol: &str,
        open: Decimal,
        high: Decimal,
        low: Decimal,
        now_ms: i64,
        out: &mut impl Sink,
    ) {
        if self.lists.is_empty() {
            return;
        }
        let mut first = Vec::new();
        for list in self.lists.values().filter(|l| l.executed.is_none() && l.symbol.as_str() == symbol) {
            let level_of =
                |id: u64| self.orders.get(&id).filter(|o| o.status.is_open()).and_then(|o| level(&o.order_type));
            let (Some(up), Some(down)) = (level_of(list.above), level_of(list.below)) else { continue };
            if high < up || low > down {
                continue;
            }
            let above_first = if open >= up {
                true
            } else if open <= down {
                false
            } else {
                high - open < open - low
            };
            first.push(if above_first { list.above } else { list.below });
        }
        for id in first {
            self.activate_leg(id, now_ms, out);
        }
    }

    /// Cancelling one leg cancels its list: the other leg, if it still works.
    pub(super) fn cancel_sibling(&mut self, id: u64, now_ms: i64) {
        let Some(list_id) = self.orders.get(&id).and_then(|o| o.list_id) else { return };
        let Some(list) = self.lists.get_mut(&list_id) else { return };
        list.updated_ms = now_ms;
        let sibling = list.sibling(id);
        if self.orders.get(&sibling).is_some_and(|o| o.status.is_open()) {
            self.close(sibling, OrderStatus::Canceled, None, now_ms);
        }
    }

    /// Forgets a list once none of its legs is kept.
    pub(super) fn forget_list_of(&mut self, list_id: u64) {
        let kept = self.lists.get(&list_id).is_some_and(|l| l.legs().iter().any(|id| self.orders.contains_key(id)));
        if !kept {
            self.lists.remove(&list_id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::balance::Balance;
    use crate::instrument::{Instrument, SymbolStatus};
    use crate::market::BookTicker;
    use crate::sim::{CommissionAsset, FeeSchedule};

    fn d(s: &str) -> Decimal {
        s.parse().unwrap()
    }

    /// BTCUSDT at 100/101 (no fees), 2 BTC and 10000 USDT.
    fn core() -> MatchingCore {
        let mut c = MatchingCore::new(FeeSchedule::new(Decimal::ZERO, Decimal::ZERO, CommissionAsset::Quote), 0);
        c.add_instrument(Instrument {
            symbol: "BTCUSDT".into(),
            base_asset: "BTC".into(),
            quote_asset: "USDT".into(),
            tick_size: d("0.01"),
            min_price: d("0.01"),
            max_price: Decimal::ZERO,
            step_size: d("0.001"),
            min_qty: d("0.001"),
            max_qty: Decimal::ZERO,
            market_step_size: d("0.001"),
            min_notional: d("1"),
            max_notional: Decimal::ZERO,
            max_num_orders: 200,
            status: SymbolStatus::Trading,
        });
        c.add_account(
            1,
            vec![
                Balance { asset: "BTC".into(), free: d("2"), locked: Decimal::ZERO },
                Balance { asset: "USDT".into(), free: d("10000"), locked: Decimal::ZERO },
            ],
        );
        c.set_quote(quote("100", "101", 1));
        c
    }

    fn quote(bid: &str, ask: &str, ts_ms: i64) -> BookTicker {
        BookTicker { symbol: "BTCUSDT".into(), bid: d(bid), bid_qty: d("10"), ask: d(ask), ask_qty: d("10"), ts_ms }
    }

    fn oco(side: Side, tp: &str, stop: &str, stop_limit: Option<&str>) -> NewOrderList {
        NewOrderList::oco(
            1,
            "list",
            "BTCUSDT".into(),
            side,
            d("1"),
            (d(tp), d(stop), stop_limit.map(d)),
            "list.t".into(),
            "list.s".into(),
        )
    }

    fn bal(c: &MatchingCore, asset: &str) -> (Decimal, Decimal) {
        let b = c.balances(1).unwrap().into_iter().find(|b| b.asset == asset).unwrap();
        (b.free, b.locked)
    }

    fn leg<'a>(c: &'a MatchingCore, id: &str) -> &'a SimOrder {
        c.order_by_client(1, id).unwrap()
    }

    #[test]
    fn a_list_locks_once_and_rests_both_legs() {
        let mut c = core();
        let r = c.submit_list(oco(Side::Sell, "110", "90", None), 2).unwrap();
        assert_eq!(bal(&c, "BTC"), (d("1"), d("1")), "the quantity is locked once, not per leg");
        assert_eq!(
            r.legs.clone().map(|l| l.client_order_id),
            ["list.s".to_string(), "list.t".to_string()],
            "below first"
        );
        assert_eq!(c.open_orders(1, None).len(), 2);
        assert_eq!(r.legs.iter().map(|l| l.list_id).collect::<Vec<_>>(), vec![Some(r.list.list_id); 2]);
        assert!(r.executions.is_empty());

        // A buy locks the dearer leg's cost: the stop above at 110.
        let r = c.submit_list(
            NewOrderList { list_client_order_id: "b".into(), ..ids(oco(Side::Buy, "90", "110", None), "b") },
            3,
        );
        assert!(r.is_ok(), "{r:?}");
        assert_eq!(bal(&c, "USDT"), (d("9890"), d("110")));
    }

    fn ids(mut l: NewOrderList, prefix: &str) -> NewOrderList {
        l.above.client_order_id = format!("{prefix}.a");
        l.below.client_order_id = format!("{prefix}.b");
        l
    }

    #[test]
    fn refusals() {
        struct Case {
            what: &'static str,
            list: NewOrderList,
            want: fn(&MatchError) -> bool,
        }
        let bad = |e: &MatchError| *e == MatchError::Unsupported(OCO_BAD_PRICES);
        let cases = [
            Case { what: "take-profit below the market", list: oco(Side::Sell, "99", "90", None), want: bad },
            Case { what: "stop above the market", list: oco(Side::Sell, "110", "102", None), want: bad },
            Case { what: "buy mirrored wrongly", list: oco(Side::Buy, "110", "90", None), want: bad },
            Case {
                what: "a limit where the stop belongs",
                list: NewOrderList {
                    below: NewLeg {
                        client_order_id: "x".into(),
                        order_type: OrderType::Limit { price: d("90") },
                        tif: TimeInForce::Gtc,
                    },
                    ..oco(Side::Sell, "110", "90", None)
                },
                want: bad,
            },
            Case {
                what: "more than the balance",
                list: NewOrderList { qty: d("3"), ..oco(Side::Sell, "110", "90", None) },
                want: |e| matches!(e, MatchError::InsufficientBalance { .. }),
            },
            Case {
                what: "below the minimum quantity",
                list: NewOrderList { qty: d("0.0001"), ..oco(Side::Sell, "110", "90", None) },
                want: |e| matches!(e, MatchError::Filter(_)),
            },
            Case {
                what: "legs with one id",
                list: NewOrderList {
                    below: NewLeg { client_order_id: "list.t".into(), ..oco(Side::Sell, "110", "90", None).below },
                    ..oco(Side::Sell, "110", "90", None)
                },
                want: |e| matches!(e, MatchError::DuplicateClientOrderId(_)),
            },
        ];
        for case in cases {
            let mut c = core();
            let got = c.submit_list(case.list, 2);
            assert!(got.as_ref().is_err_and(case.want), "{}: {got:?}", case.what);
            assert_eq!(bal(&c, "BTC"), (d("2"), Decimal::ZERO), "{}: nothing locked", case.what);
            assert!(c.open_orders(1, None).is_empty(), "{}", case.what);
        }
        let mut c = core();
        c.submit_list(oco(Side::Sell, "110", "90", None), 2).unwrap();
        let again = c.submit_list(ids(oco(Side::Sell, "110", "90", None), "other"), 3);
        assert_eq!(again.unwrap_err(), MatchError::DuplicateClientOrderId("list".into()), "one open list per id");
    }

    /// What became of a list: (take-profit status, stop status, fill prices, BTC (free, locked)).
    type Outcome = (OrderStatus, OrderStatus, Vec<Decimal>, (Decimal, Decimal));

    fn outcome(c: &MatchingCore, executions: &[Execution]) -> Outcome {
        let fills = executions.iter().filter_map(|e| e.fill.as_ref().map(|f| f.price)).collect();
        (leg(c, "list.t").status, leg(c, "list.s").status, fills, bal(c, "BTC"))
    }

    #[test]
    fn on_quotes_one_leg_executes_and_the_other_expires() {
        use OrderStatus::{Accepted, Expired, Filled};
        /// (what, the stop's limit, the quote (bid, ask), what becomes of the list)
        type Case = (&'static str, Option<&'static str>, (&'static str, &'static str), Outcome);
        let cases: [Case; 4] = [
            ("take-profit reached", None, ("110", "111"), (Filled, Expired, vec![d("110")], (d("1"), d("0")))),
            (
                "stop triggers and sells at the bid",
                None,
                ("90", "91"),
                (Expired, Filled, vec![d("90")], (d("1"), d("0"))),
            ),
            (
                "stop-limit triggers and rests: the take-profit expires at once",
                Some("85"),
                ("90", "91"),
                (Expired, Filled, vec![d("85")], (d("1"), d("0"))),
            ),
            ("nothing reached", None, ("95", "96"), (Accepted, Accepted, vec![], (d("1"), d("1")))),
        ];
        for (what, stop_limit, (bid, ask), want) in cases {
            let mut c = core();
            c.submit_list(oco(Side::Sell, "110", "90", stop_limit), 2).unwrap();
            let ex = c.set_quote(quote(bid, ask, 3));
            let got = outcome(&c, &ex);
            assert_eq!(got, want, "{what}");
            if got.0 == Expired {
                let expired = ex.iter().find(|e| e.order.client_order_id == "list.t").unwrap();
                assert_eq!(expired.order.reason.as_deref(), Some(OCO_SIBLING_EXECUTED), "{what}");
            }
            let list = c.list_by_client(1, "list").unwrap();
            assert_eq!(c.list_is_open(list), want.0 == Accepted, "{what}");
        }
    }

    #[test]
    fn a_trade_through_the_take_profit_fills_it_on_a_live_book() {
        let mut c = core();
        c.submit_list(oco(Side::Sell, "110", "90", None), 2).unwrap();
        let ex = c.match_trade("BTCUSDT", d("110.5"), d("5"), 3);
        assert_eq!(outcome(&c, &ex), (OrderStatus::Filled, OrderStatus::Expired, vec![d("110")], (d("1"), d("0"))));
    }

    #[test]
    fn a_bar_reaching_both_legs_follows_the_intrabar_path() {
        use OrderStatus::{Expired, Filled};
        struct Case {
            what: &'static str,
            side: Side,
            bar: [&'static str; 3],
            want: (OrderStatus, OrderStatus, &'static str),
        }
        // Sell: take-profit 110 above, stop 90 below; buy: take-profit 90 below, stop 110 above.
        let cases = [
            Case {
                what: "only the high reaches",
                side: Side::Sell,
                bar: ["100", "112", "95"],
                want: (Filled, Expired, "110"),
            },
            Case {
                what: "only the low reaches",
                side: Side::Sell,
                bar: ["100", "105", "85"],
                want: (Expired, Filled, "90"),
            },
            Case {
                what: "high nearer the open",
                side: Side::Sell,
                bar: ["100", "111", "88"],
                want: (Filled, Expired, "110"),
            },
            Case {
                what: "low nearer the open",
                side: Side::Sell,
                bar: ["100", "112", "89"],
                want: (Expired, Filled, "90"),
            },
            Case {
                what: "equally near: low first",
                side: Side::Sell,
                bar: ["100", "111", "89"],
                want: (Expired, Filled, "90"),
            },
            Case {
                what: "gap down through the stop",
                side: Side::Sell,
                bar: ["85", "115", "80"],
                want: (Expired, Filled, "85"),
            },
            Case {
                what: "gap up through the target",
                side: Side::Sell,
                bar: ["115", "116", "80"],
                want: (Filled, Expired, "115"),
            },
            Case {
                what: "buy: high nearer, stop first",
                side: Side::Buy,
                bar: ["100", "111", "88"],
                want: (Expired, Filled, "110"),
            },
            Case {
                what: "buy: low nearer, target first",
                side: Side::Buy,
                bar: ["100", "112", "89"],
                want: (Filled, Expired, "90"),
            },
            Case {
                what: "buy: gap up through the stop",
                side: Side::Buy,
                bar: ["112", "113", "85"],
                want: (Expired, Filled, "112"),
            },
        ];
        for case in cases {
            let mut c = core();
            let (tp, stop) = if case.side == Side::Sell { ("110", "90") } else { ("90", "110") };
            c.submit_list(oco(case.side, tp, stop, None), 2).unwrap();
            let [o, h, l] = case.bar.map(d);
            let ex = c.match_range("BTCUSDT", o, h, l, 3);
            let fills: Vec<Decimal> = ex.iter().filter_map(|e| e.fill.as_ref().map(|f| f.price)).collect();
            let got = (leg(&c, "list.t").status, leg(&c, "list.s").status, fills);
            assert_eq!(got, (case.want.0, case.want.1, vec![d(case.want.2)]), "{}", case.what);
            let (_, locked) = bal(&c, if case.side == Side::Sell { "BTC" } else { "USDT" });
            assert_eq!(locked, Decimal::ZERO, "{}: the lock is gone with the list", case.what);
        }
    }

    #[test]
    fn cancelling_the_list_or_a_leg_cancels_both_and_releases_the_lock() {
        for by_leg in [false, true] {
            let mut c = core();
            let r = c.submit_list(oco(Side::Sell, "110", "90", None), 2).unwrap();
            let legs = if by_leg {
                let leg = c.cancel(1, "BTCUSDT", "list.t", 3).unwrap();
                [leg.status, leg_status(&c, "list.s")]
            } else {
                c.cancel_list(1, r.list.list_id, 3).unwrap().map(|l| l.status)
            };
            assert_eq!(legs, [OrderStatus::Canceled; 2], "by leg: {by_leg}");
            assert_eq!(bal(&c, "BTC"), (d("2"), Decimal::ZERO), "by leg: {by_leg}");
            assert!(matches!(c.cancel_list(1, r.list.list_id, 4), Err(MatchError::AlreadyFinal(_))));
            assert!(c.set_quote(quote("120", "121", 5)).is_empty(), "a canceled list never fills");
        }
    }

    fn leg_status(c: &MatchingCore, id: &str) -> OrderStatus {
        leg(c, id).status
    }

    #[test]
    fn a_saved_list_continues_and_is_forgotten_with_its_legs() {
        let mut c = core();
        c.submit_list(oco(Side::Sell, "110", "90", None), 2).unwrap();
        let json = serde_json::to_string(&c).unwrap();
        let mut back: MatchingCore = serde_json::from_str(&json).unwrap();
        let ex = back.set_quote(quote("89", "90", 3));
        assert_eq!(outcome(&back, &ex).0, OrderStatus::Expired, "the restored list is still one-cancels-the-other");

        let mut lean = core().without_history();
        lean.submit_list(oco(Side::Sell, "110", "90", None), 2).unwrap();
        lean.set_quote(quote("110", "111", 3));
        assert!(lean.lists.is_empty(), "a core without history forgets a finished list");
    }
}
