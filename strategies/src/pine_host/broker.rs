//! The broker emulation of a Pine strategy on Keel: its own accounting from its fills (what
//! `strategy.position_size`, `equity`, `opentrades`... read), and the script's commands mapped onto
//! Keel orders and exits.
//!
//! - `strategy.entry` (long): a market buy, a GTC limit (`limit =`) or a stop-market buy (`stop =`),
//!   sized by its `qty` or the declaration (`fixed`, `cash`, `percent_of_equity` with commission:
//!   `equity × pct / (price × (1 + commission rate))`, the price being the signal bar's close for
//!   a market entry and the order's own price for a limit or stop entry), rounded down to the
//!   lot step. At most
//!   `pyramiding` entries (open and pending) at once; an entry whose id is pending replaces it.
//! - `strategy.close(id)` / `close_all`: a reduce-only market sell of that entry's / the whole
//!   position. Sells close entries first in, first out (Pine's default), `close(id)` its own first.
//! - `strategy.exit`: the position's stop, take-profit and trailing stop in prices (Keel's exits,
//!   whole position: several exits are one set, the highest stop and the lowest target; an exit
//!   issued before its entry filled is attached when the position opens). `profit`/`loss`/
//!   `trail_points`/`trail_offset` are ticks from the position's average price.
//! - `strategy.cancel(id)` / `cancel_all`: cancel pending entries (and exits) of that id / all.
//!
//! Prices are rounded to the instrument's tick in integer ticks, each level away from the side
//! that would reach it sooner (TradingView's rule as PyneCore measured it, see [`Toward`]): a buy
//! limit and a stop down, a buy stop, a take-profit and a tick-based target up.

use keel_core::exits::PriceTrail;
use keel_core::fill::Fill;
use keel_core::instrument::{ceil_to_step, floor_to_step};
use keel_core::order::{OrderIntent, OrderTag, OrderType, Side};
use keel_core::strategy::{OrderUpdate, StrategyCtx};
use keel_core::{Decimal, Symbol};
use pine::{Command, Direction, QtyType, StrId, StrategyState};
use rust_decimal::prelude::FromPrimitive;

use super::load::Sizing;
use crate::common::close_f64;

/// Tags of sells that close entries: this bit plus the entry id (`close`), or [`CLOSE_ALL`].
/// An entry's tag is its id.
const CLOSE_BIT: u32 = 1 << 31;
/// The tag of a `close_all` sell.
const CLOSE_ALL: u32 = u32::MAX;
/// The id of a position found at start (its entries' ids are not known).
const RESTORED: StrId = StrId(u32::MAX >> 1);

/// One open entry (a Pine trade).
#[derive(Debug, Clone, Copy)]
struct OpenEntry {
    id: StrId,
    qty: Decimal,
    price: Decimal,
}

/// An entry order sent and not final.
#[derive(Debug, Clone)]
struct PendingEntry {
    id: StrId,
    /// Its client order id, once an update told it.
    cid: Option<String>,
    qty: Decimal,
    order_type: OrderType,
    filled: Decimal,
    /// Canceled (by `strategy.cancel` or a replacing entry of its id): it no longer counts, and
    /// its cancel is sent once its client order id is known. It stays until its final update
    /// (which may still be a fill).
    cancel: bool,
}

/// A `strategy.exit` in force (the last call of its id).
#[derive(Debug, Clone, Copy)]
struct ExitOrder {
    id: StrId,
    stop: Option<f64>,
    limit: Option<f64>,
    loss: Option<f64>,
    profit: Option<f64>,
    trail_price: Option<f64>,
    trail_points: Option<f64>,
    trail_offset: Option<f64>,
}

/// The levels set on the position: stop, take-profit, trail.
type Levels = (Option<Decimal>, Option<Decimal>, Option<PriceTrail>);

/// A Pine strategy's broker state on one symbol.
#[derive(Debug)]
pub(super) struct Broker {
    symbol: Symbol,
    sizing: Sizing,
    entries: Vec<OpenEntry>,
    qty: Decimal,
    avg: Decimal,
    /// Commissions of the open entries (quote value), charged to the trades as they close.
    open_fees: Decimal,
    net_profit: Decimal,
    closed_trades: u32,
    pending: Vec<PendingEntry>,
    /// Closing sells in flight.
    closing: u32,
    exits: Vec<ExitOrder>,
    /// The levels last set on the open position.
    applied: Option<Levels>,
    /// The accounting as the script reads it, refreshed at each fill (a bar costs a few flops).
    view: View,
}

/// [`Broker`]'s accounting in `f64` for [`StrategyState`].
#[derive(Debug, Clone, Copy, Default)]
struct View {
    qty: f64,
    avg: f64,
    /// Initial capital + net profit − the open entries' commissions.
    base_equity: f64,
    net_profit: f64,
}

impl Broker {
    pub(super) fn new(symbol: Symbol, sizing: Sizing) -> Self {
        Self {
            symbol,
            sizing,
            entries: Vec::with_capacity(sizing.max_entries.min(64)),
            qty: Decimal::ZERO,
            avg: Decimal::ZERO,
            open_fees: Decimal::ZERO,
            net_profit: Decimal::ZERO,
            closed_trades: 0,
            pending: Vec::with_capacity(4),
            closing: 0,
            exits: Vec::with_capacity(2),
            applied: None,
            view: View { avg: f64::NAN, base_equity: close_f64(sizing.initial_capital), ..View::default() },
        }
    }

    /// Equity at `close`: initial capital + net profit + open profit (commissions included).
    fn equity(&self, close: Decimal) -> Decimal {
        self.sizing.initial_capital + self.net_profit + (close - self.avg) * self.qty - self.open_fees
    }

    /// What the script reads as `strategy.*` on a bar closing at `close` (equity as
    /// [`Self::equity`], in `f64`).
    pub(super) fn state(&self, close: f64) -> StrategyState {
        let v = &self.view;
        let open_profit = if self.entries.is_empty() { 0.0 } else { (close - v.avg) * v.qty };
        StrategyState {
            position_size: v.qty,
            position_avg_price: v.avg,
            equity: v.base_equity + open_profit,
            opentrades: self.entries.len() as f64,
            closedtrades: f64::from(self.closed_trades),
            netprofit: v.net_profit,
        }
    }

    /// True when a bar without commands leaves the broker as it is: nothing to reconcile
    /// ([`Self::reconcile`]) and no exits to apply ([`Self::apply_exits`]).
    pub(super) fn idle(&self) -> bool {
        self.pending.is_empty() && self.closing == 0 && !self.exits_to_apply()
    }

    /// True when [`Self::apply_exits`] has work: a position, and exits declared or in force.
    fn exits_to_apply(&self) -> bool {
        !self.entries.is_empty() && (!self.exits.is_empty() || self.applied.is_some())
    }

    /// Before a bar: with nothing of this strategy in flight (its warm-up intents were discarded,
    /// say), nothing is pending.
    pub(super) fn reconcile(&mut self, ctx: &StrategyCtx<'_>) {
        if (self.pending.is_empty() && self.closing == 0) || ctx.pending_orders(&self.symbol) > 0 {
            return;
        }
        self.pending.clear();
        self.closing = 0;
    }

    /// The position and open orders found at start (a restart): tagged entries are pending again;
    /// a held position is one entry at the exit logic's entry price.
    pub(super) fn adopt(&mut self, open: &[keel_core::order::Order], ctx: &StrategyCtx<'_>) {
        for o in open.iter().filter(|o| o.symbol == self.symbol && o.side == Side::Buy) {
            if let Some(tag) = o.tag.filter(|t| t.0 & CLOSE_BIT == 0) {
                self.pending.push(PendingEntry {
                    id: StrId(tag.0),
                    cid: Some(o.client_order_id.clone()),
                    qty: o.qty,
                    order_type: o.order_type,
                    filled: o.filled_qty,
                    cancel: false,
                });
            }
        }
        let held = ctx.position(&self.symbol);
        if held > Decimal::ZERO {
            let price = ctx.exits(&self.symbol).map(|e| e.entry_price).unwrap_or_default();
            self.entries.push(OpenEntry { id: RESTORED, qty: held, price });
            self.reprice();
        }
    }

    /// One command of the script, decided at the close of a bar closing at `close`.
    pub(super) fn command(&mut self, cmd: &Command, close: Decimal, ctx: &mut StrategyCtx<'_>) {
        match *cmd {
            Command::Entry { id, direction: Direction::Long, qty, limit, stop, .. } => {
                self.entry(id, qty, limit, stop, close, ctx)
            }
            // Refused at construction (see `load::check`); never acted on.
            Command::Entry { direction: Direction::Short, .. } => {}
            Command::Close { id, .. } => {
                let own: Decimal = self.entries.iter().filter(|e| e.id == id).map(|e| e.qty).sum();
                self.sell(own, CLOSE_BIT | id.0, ctx);
            }
            Command::CloseAll { .. } => self.sell(self.qty, CLOSE_ALL, ctx),
            Command::Cancel { id } => {
                self.cancel_where(|p| p.id == id, ctx);
                self.exits.retain(|x| x.id != id);
            }
            Command::CancelAll => {
                self.cancel_where(|_| true, ctx);
                self.exits.clear();
            }
            Command::Exit { id, stop, limit, loss, profit, trail_price, trail_points, trail_offset, .. } => {
                let order = ExitOrder { id, stop, limit, loss, profit, trail_price, trail_points, trail_offset };
                match self.exits.iter_mut().find(|x| x.id == id) {
                    Some(x) => *x = order,
                    None => self.exits.push(order),
                }
            }
        }
    }

    fn entry(
        &mut self,
        id: StrId,
        qty: Option<f64>,
        limit: Option<f64>,
        stop: Option<f64>,
        close: Decimal,
        ctx: &mut StrategyCtx<'_>,
    ) {
        let tick = ctx.instrument(&self.symbol).map(|i| i.tick_size).unwrap_or_default();
        let (limit, stop) =
            (limit.and_then(|p| to_tick(p, tick, Toward::Down)), stop.and_then(|p| to_tick(p, tick, Toward::Up)));
        let wanted = match qty {
            Some(q) => script_qty(q),
            // A limit or stop entry is sized at its own price (where it fills when touched).
            None => self.default_qty(limit.or(stop).unwrap_or(close)),
        };
        let qty = ctx.tradable(&self.symbol, wanted.max(Decimal::ZERO));
        if qty <= Decimal::ZERO {
            return;
        }
        let order_type = match (limit, stop) {
            (Some(price), Some(stop)) => OrderType::StopLimit { stop, price },
            (Some(price), None) => OrderType::Limit { price },
            (None, Some(stop)) => OrderType::StopMarket { stop },
            (None, None) => OrderType::Market,
        };
        if let Some(p) = self.pending.iter_mut().find(|p| p.id == id && !p.cancel) {
            if p.qty == qty && p.order_type == order_type {
                return;
            }
            // The same id replaces its pending order (one sent this very bar has no id to cancel
            // yet: it stays, as the first call of the bar).
            let Some(cid) = &p.cid else { return };
            ctx.cancel(cid);
            p.cancel = true;
        }
        let pending = self.pending.iter().filter(|p| !p.cancel).count();
        if self.entries.len() + pending >= self.sizing.max_entries {
            return;
        }
        let mut intent = OrderIntent::market(ctx.strategy_id().clone(), self.symbol.clone(), Side::Buy, qty)
            .with_tag(OrderTag(id.0));
        intent.order_type = order_type;
        ctx.submit(intent);
        self.pending.push(PendingEntry { id, cid: None, qty, order_type, filled: Decimal::ZERO, cancel: false });
    }

    /// The declaration's quantity at `close` (the signal bar's, or the order's own price), before
    /// the lot step.
    fn default_qty(&self, close: Decimal) -> Decimal {
        if close <= Decimal::ZERO {
            return Decimal::ZERO;
        }
        let s = &self.sizing;
        match s.qty_type {
            QtyType::Fixed => s.qty_value,
            QtyType::Cash => s.qty_value / close,
            QtyType::PercentOfEquity => {
                let cash = self.equity(close) * s.qty_value / Decimal::ONE_HUNDRED;
                cash / (close * (Decimal::ONE + s.commission_rate))
            }
        }
    }

    /// A reduce-only market sell of up to `qty` (never more than the tradable position).
    fn sell(&mut self, qty: Decimal, tag: u32, ctx: &mut StrategyCtx<'_>) {
        if self.closing > 0 || qty <= Decimal::ZERO {
            return;
        }
        // Closing every entry sells all that is held: dust below the lot step that earlier
        // commissions in the base asset left goes with it once it adds up to a step.
        let held = ctx.position(&self.symbol);
        let qty = ctx.tradable(&self.symbol, if qty >= self.qty { held } else { qty.min(held) });
        if qty <= Decimal::ZERO {
            return;
        }
        let mut intent = OrderIntent::market(ctx.strategy_id().clone(), self.symbol.clone(), Side::Sell, qty)
            .with_tag(OrderTag(tag));
        intent.reduce_only = true;
        ctx.submit(intent);
        self.closing += 1;
    }

    fn cancel_where(&mut self, which: impl Fn(&PendingEntry) -> bool, ctx: &mut StrategyCtx<'_>) {
        for p in self.pending.iter_mut().filter(|p| !p.cancel && which(p)) {
            if let Some(cid) = &p.cid {
                ctx.cancel(cid);
            }
            p.cancel = true;
        }
    }

    /// Sets the exits in force on the open position (when they changed).
    pub(super) fn apply_exits(&mut self, ctx: &mut StrategyCtx<'_>) {
        if !self.exits_to_apply() {
            return;
        }
        let tick = ctx.instrument(&self.symbol).map(|i| i.tick_size).unwrap_or_default();
        let ticks = |n: f64| -> Option<Decimal> {
            let n = n.round();
            (n.is_finite() && tick > Decimal::ZERO).then(|| Decimal::from_f64(n).unwrap_or_default() * tick)
        };
        // A level in ticks from the average price, itself rounded to the tick (the average of
        // several fills need not be on it).
        let (down, up) = (|p: Decimal| floor_to_step(p, tick), |p: Decimal| ceil_to_step(p, tick));
        let (mut stop, mut take, mut trail): Levels = (None, None, None);
        for x in &self.exits {
            let stops = [
                x.stop.and_then(|p| to_tick(p, tick, Toward::Down)),
                x.loss.and_then(ticks).map(|d| down(self.avg - d)),
            ];
            for s in stops.into_iter().flatten() {
                stop = Some(stop.map_or(s, |c: Decimal| c.max(s)));
            }
            let targets = [
                x.limit.and_then(|p| to_tick(p, tick, Toward::Up)),
                x.profit.and_then(ticks).map(|d| up(self.avg + d)),
            ];
            for t in targets.into_iter().flatten() {
                take = Some(take.map_or(t, |c: Decimal| c.min(t)));
            }
            if trail.is_none() {
                let activate = x
                    .trail_price
                    .and_then(|p| to_tick(p, tick, Toward::Down))
                    .or_else(|| x.trail_points.and_then(ticks).map(|d| up(self.avg + d)));
                if let (Some(activate), Some(offset)) = (activate, x.trail_offset.and_then(ticks)) {
                    trail = (offset > Decimal::ZERO).then_some(PriceTrail { activate, offset });
                }
            }
        }
        let levels = (stop, take, trail);
        if self.applied != Some(levels) && ctx.set_levels(&self.symbol, stop, take, trail) {
            self.applied = Some(levels);
        }
    }

    /// A fill of this strategy's order in its symbol.
    pub(super) fn on_fill(&mut self, fill: &Fill, ctx: &mut StrategyCtx<'_>) {
        let delta = ctx.received(fill);
        let base = ctx.instrument(&self.symbol).map(|i| i.base_asset.as_str()).unwrap_or_default();
        let fee = fill.fee_value(base);
        let tag = fill.tag.map_or(CLOSE_ALL, |t| t.0);
        if delta > Decimal::ZERO {
            let id = if tag & CLOSE_BIT == 0 { StrId(tag) } else { RESTORED };
            let pending = self.pending.iter_mut().find(|p| p.cid.as_deref() == Some(fill.client_order_id.as_str()));
            let continues = pending.as_ref().is_some_and(|p| p.filled > Decimal::ZERO);
            if let Some(p) = pending {
                p.filled += fill.qty;
            }
            match self.entries.last_mut().filter(|e| continues && e.id == id) {
                Some(e) => {
                    e.price = (e.price * e.qty + fill.price * delta) / (e.qty + delta);
                    e.qty += delta;
                }
                None => self.entries.push(OpenEntry { id, qty: delta, price: fill.price }),
            }
            self.open_fees += fee;
            self.reprice();
            self.apply_exits(ctx);
            return;
        }
        let sold = -delta;
        if sold <= Decimal::ZERO || self.qty <= Decimal::ZERO {
            return;
        }
        // What the entries held; beyond it, earlier dust (already booked at its cost) sold now.
        let closing = sold.min(self.qty);
        let entry_fees = self.open_fees * closing / self.qty;
        self.open_fees -= entry_fees;
        self.net_profit += (fill.price - self.avg) * closing + fill.price * (sold - closing) - fee - entry_fees;
        let sold = closing;
        // `close(id)` takes its own entries first; then first in, first out.
        let own = (tag & CLOSE_BIT != 0 && tag != CLOSE_ALL).then_some(StrId(tag & !CLOSE_BIT));
        let mut left = sold;
        let mut take = |e: &mut OpenEntry| {
            let t = e.qty.min(left);
            e.qty -= t;
            left -= t;
        };
        if let Some(id) = own {
            self.entries.iter_mut().filter(|e| e.id == id).for_each(&mut take);
        }
        self.entries.iter_mut().for_each(take);
        let before = self.entries.len();
        self.entries.retain(|e| e.qty > Decimal::ZERO);
        self.closed_trades += (before - self.entries.len()) as u32;
        self.reprice();
        // Dust below the lot step left by a commission in the base asset is no position: its cost
        // and what is left of the entries' commissions are booked (it is sold, and booked as
        // proceeds, when it adds up to a step).
        if !self.entries.is_empty() && ctx.tradable(&self.symbol, self.qty).is_zero() {
            self.net_profit -= self.qty * self.avg + self.open_fees;
            self.closed_trades += self.entries.len() as u32;
            self.entries.clear();
            self.reprice();
        }
        if self.entries.is_empty() {
            self.open_fees = Decimal::ZERO;
            self.exits.clear();
            self.applied = None;
            self.reprice();
        }
    }

    /// Position size and average price from the open entries, and the script's view of them.
    fn reprice(&mut self) {
        let (mut qty, mut cost) = (Decimal::ZERO, Decimal::ZERO);
        for e in &self.entries {
            qty += e.qty;
            cost += e.qty * e.price;
        }
        self.qty = qty;
        self.avg = if qty.is_zero() { Decimal::ZERO } else { cost / qty };
        let open = !self.entries.is_empty();
        self.view = View {
            qty: if open { close_f64(self.qty) } else { 0.0 },
            avg: if open { close_f64(self.avg) } else { f64::NAN },
            base_equity: close_f64(self.sizing.initial_capital + self.net_profit - self.open_fees),
            net_profit: close_f64(self.net_profit),
        };
    }

    /// An update of one of this strategy's orders.
    pub(super) fn on_update(&mut self, update: &OrderUpdate, ctx: &mut StrategyCtx<'_>) {
        if update.exit.is_some() || update.symbol != self.symbol {
            return;
        }
        let Some(tag) = update.tag.map(|t| t.0) else { return };
        let terminal = update.status.is_terminal();
        if tag & CLOSE_BIT != 0 {
            if terminal {
                self.closing = self.closing.saturating_sub(1);
            }
            return;
        }
        // By its client order id; else it is the first word of an order sent since (its id not
        // known yet, in the order sent).
        let cid = update.client_order_id.as_deref();
        let found = match cid {
            Some(c) => self.pending.iter().position(|p| p.cid.as_deref() == Some(c)),
            None => None,
        }
        .or_else(|| self.pending.iter().position(|p| p.id.0 == tag && p.cid.is_none()));
        let Some(i) = found else { return };
        if terminal {
            self.pending.remove(i);
            return;
        }
        let p = &mut self.pending[i];
        if p.cid.is_none() {
            p.cid = cid.map(str::to_string);
            if p.cancel {
                if let Some(c) = cid {
                    ctx.cancel(c);
                }
            }
        }
    }
}

/// A quantity the script computed, as the decimal it reads as to f64's precision (`0.3` and
/// `0.1 + 0.2` are 0.3, not 0.29999…, which the lot step would round down); 0 for `na`.
fn script_qty(q: f64) -> Decimal {
    Decimal::from_f64(q).unwrap_or_default()
}

/// Which way [`to_tick`] rounds a script's price.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Toward {
    /// To the tick at or below.
    Down,
    /// To the tick at or above.
    Up,
}

/// Within this many ticks of a tick, a script's price is on it: f64 arithmetic (`entry + 3 *
/// atr`) lands a hair off the grid, and TradingView counts 1e-4 of a tick as on it (PyneCore
/// measured the edge on BINANCE:BTCUSDT and ADAUSDT).
const ON_TICK: f64 = 1e-4;

/// `price` rounded to a multiple of `tick` in integer ticks, `toward` (as is without a tick);
/// `None` for `na` or a price that does not fit.
fn to_tick(price: f64, tick: Decimal, toward: Toward) -> Option<Decimal> {
    if !price.is_finite() || price <= 0.0 {
        return None;
    }
    if tick <= Decimal::ZERO {
        return Decimal::from_f64(price);
    }
    let ticks = price / close_f64(tick);
    let ticks = match toward {
        Toward::Down => (ticks + ON_TICK).floor(),
        Toward::Up => (ticks - ON_TICK).ceil(),
    };
    if ticks.abs() >= 9.0e15 {
        return None;
    }
    Some(Decimal::from(ticks as i64) * tick)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    #[test]
    fn script_quantities_are_the_decimals_they_print_as() {
        let cases = [(0.3, "0.3"), (1.15, "1.15"), (2.675, "2.675"), (0.1 + 0.2, "0.3"), (f64::NAN, "0")];
        for (q, want) in cases {
            assert_eq!(script_qty(q), Decimal::from_str(want).unwrap(), "{q}");
        }
    }

    #[test]
    fn prices_round_to_the_tick_in_integer_ticks_in_their_direction() {
        let d = |s: &str| Decimal::from_str(s).unwrap();
        let (down, up) = (Toward::Down, Toward::Up);
        let cases = [
            (100.004, "0.01", down, Some("100.00")),
            (100.004, "0.01", up, Some("100.01")),
            (98.509_39, "0.01", down, Some("98.50")),
            (100.005_1, "0.01", up, Some("100.01")),
            // Within 1e-4 of a tick is on it, either way; beyond, the next tick.
            (100.010_000_5, "0.01", up, Some("100.01")),
            (100.009_999_5, "0.01", down, Some("100.01")),
            (100.010_002, "0.01", up, Some("100.02")),
            (0.1 + 0.2, "0.1", up, Some("0.3")),
            (0.1 + 0.2, "0.1", down, Some("0.3")),
            (12_345.678, "0.5", down, Some("12345.5")),
            (12_345.678, "0.5", up, Some("12346.0")),
            (f64::NAN, "0.01", up, None),
            (-1.0, "0.01", down, None),
        ];
        for (price, tick, toward, want) in cases {
            assert_eq!(to_tick(price, d(tick), toward), want.map(d), "{price} at {tick} {toward:?}");
        }
    }
}
