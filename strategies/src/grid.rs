//! `grid`: a long-only grid of limit orders at fixed price levels in a range.
//!
//! `levels` prices are spaced evenly from `lower` to `upper` (both included).
//! Every level below the current close gets a resting buy limit of `qty`
//! (nearest the price first, [`MAX_NEW_PER_BAR`] new orders per bar); when
//! a level's buy is done, what it bought (net of a commission paid in the base
//! asset, rounded down to the lot step) rests as a sell one level up; when that
//! sells, the level's buy is placed again. The top level only sells.
//!
//! Each order carries its level as its tag, so fills and updates are
//! attributed whatever order they arrive in, and after a restart — graceful or
//! a crash — the grid re-adopts its working orders instead of placing them
//! again: at most one working order per level and side, ever. Orders that no
//! longer fit (a duplicate from an older Keel, a price that is not a level of
//! the current parameters) are canceled at start. Inventory the strategy holds
//! but no working sell covers (a buy filled just before a crash) is given back
//! to idle levels from the top down, so it is offered for sale, never
//! forgotten. Level prices are rounded to the tick by the risk guard (buys
//! down, sells up); `qty` should be a multiple of the symbol's step size.

use keel_core::fill::Fill;
use keel_core::market::Bar;
use keel_core::order::{Order, OrderTag, Side};
use keel_core::strategy::{OrderUpdate, Strategy, StrategyCtx};
use keel_core::{Decimal, Symbol};

use crate::params::{ParamSpec, Params};
use crate::registry::StrategyConfigError;

/// New orders per bar at most, nearest the price first.
pub const MAX_NEW_PER_BAR: usize = 4;

/// One side of a level: nothing, an intent on its way, or a working order.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Slot {
    Idle,
    /// Sent; the venue's client order id is not known yet.
    Asked,
    Working(String),
}

impl Slot {
    fn is_idle(&self) -> bool {
        *self == Slot::Idle
    }

    /// Binds the first news of an order to an intent on its way.
    fn bind(&mut self, client_order_id: &str) {
        if *self == Slot::Asked {
            *self = Slot::Working(client_order_id.to_string());
        }
    }

    /// True when `client_order_id` is (or may be) this slot's order.
    fn owns(&self, client_order_id: &str) -> bool {
        match self {
            Slot::Idle => false,
            Slot::Asked => true,
            Slot::Working(id) => id == client_order_id,
        }
    }
}

#[derive(Debug, Clone)]
struct Level {
    price: Decimal,
    buy: Slot,
    /// The sell of this level's inventory, resting one level up.
    sell: Slot,
    /// Bought at this level and not sold yet (net of base-asset commission).
    held: Decimal,
    /// Quantity of the working sell.
    selling: Decimal,
}

/// The grid strategy.
#[derive(Debug, Clone)]
pub struct Grid {
    symbol: Symbol,
    qty: Decimal,
    levels: Vec<Level>,
}

impl Grid {
    /// The parameters it declares (type, default, valid range), which the
    /// registry checks before building it.
    pub fn params() -> Vec<ParamSpec> {
        vec![
            ParamSpec::decimal("lower").required().above(0),
            ParamSpec::decimal("upper").required().above(0),
            ParamSpec::integer("levels").default_value("10").at_least(2).at_most(1000),
            ParamSpec::decimal("qty").required().above(0),
        ]
    }

    /// A grid of `levels` (≥ 2) prices from `lower` to `upper` (> `lower` > 0).
    pub fn new(symbol: Symbol, lower: Decimal, upper: Decimal, levels: usize, qty: Decimal) -> Self {
        let n = levels.max(2);
        let step = (upper - lower) / Decimal::from(n as u64 - 1);
        let levels = (0..n)
            .map(|i| Level {
                price: if i == n - 1 { upper } else { lower + step * Decimal::from(i as u64) },
                buy: Slot::Idle,
                sell: Slot::Idle,
                held: Decimal::ZERO,
                selling: Decimal::ZERO,
            })
            .collect();
        Self { symbol, qty, levels }
    }

    /// Builds from config params `lower`, `upper`, `levels` (default 10), `qty`.
    pub fn from_params(symbol: Symbol, p: &Params<'_>) -> Result<Self, StrategyConfigError> {
        p.only(&Self::params())?;
        let lower = p.positive_decimal("lower")?;
        let upper = p.positive_decimal("upper")?;
        if upper <= lower {
            return Err(p.error("upper", format!("must be greater than lower ({lower}), got {upper}")));
        }
        let levels = p.usize_or("levels", 10)?;
        if !(2..=1000).contains(&levels) {
            return Err(p.error("levels", format!("must be between 2 and 1000, got {levels}")));
        }
        let qty = p.positive_decimal("qty")?;
        Ok(Self::new(symbol, lower, upper, levels, qty))
    }

    /// The level prices, lowest first.
    pub fn level_prices(&self) -> Vec<Decimal> {
        self.levels.iter().map(|l| l.price).collect()
    }

    fn top(&self) -> usize {
        self.levels.len() - 1
    }

    /// The level an order of `side` at `price` works for: a buy rests at its
    /// level, a sell one level up. `tag` names it; an untagged order (placed
    /// by a Keel from before tags) is matched by price. `None` when the price
    /// is not where this grid would put that order.
    fn level_of(&self, side: Side, price: Decimal, tag: Option<OrderTag>) -> Option<usize> {
        let offset = usize::from(side == Side::Sell);
        let spacing = self.levels[1].price - self.levels[0].price;
        let tolerance = spacing / Decimal::from(4);
        let fits = |level: usize| {
            level < self.top() && self.levels.get(level + offset).is_some_and(|l| (l.price - price).abs() <= tolerance)
        };
        match tag {
            Some(t) => Some(t.0 as usize).filter(|l| fits(*l)),
            None => (0..self.top()).find(|l| fits(*l)),
        }
    }

    /// The level an update or fill belongs to (by the order's tag).
    fn tagged(&self, tag: Option<OrderTag>) -> Option<usize> {
        tag.map(|t| t.0 as usize).filter(|l| *l < self.top())
    }

    fn slot(&mut self, level: usize, side: Side) -> Option<&mut Slot> {
        let l = self.levels.get_mut(level)?;
        Some(match side {
            Side::Buy => &mut l.buy,
            Side::Sell => &mut l.sell,
        })
    }
}

impl Strategy for Grid {
    fn kind(&self) -> &'static str {
        "grid"
    }

    fn symbols(&self) -> Vec<Symbol> {
        vec![self.symbol.clone()]
    }

    fn on_start(&mut self, open: &[Order], ctx: &mut StrategyCtx<'_>) {
        for o in open.iter().filter(|o| o.symbol == self.symbol) {
            let level = o.order_type.limit_price().and_then(|p| self.level_of(o.side, p, o.tag));
            let Some(level) = level else {
                ctx.cancel(&o.client_order_id);
                continue;
            };
            let l = &mut self.levels[level];
            match o.side {
                Side::Buy if l.buy.is_idle() => {
                    l.buy = Slot::Working(o.client_order_id.clone());
                    l.held += o.filled_qty;
                }
                Side::Sell if l.sell.is_idle() => {
                    l.sell = Slot::Working(o.client_order_id.clone());
                    l.selling = o.remaining_qty();
                    l.held += o.remaining_qty();
                }
                // A second order for the same level and side: one is enough.
                _ => ctx.cancel(&o.client_order_id),
            }
        }
        // What the strategy holds beyond its working orders (a buy filled
        // before a crash, before its sell was placed) goes back to idle levels,
        // highest first, so it is offered one level up and never forgotten.
        let accounted: Decimal = self.levels.iter().map(|l| l.held).sum();
        let mut uncovered = ctx.position(&self.symbol) - accounted;
        let top = self.top();
        for l in self.levels[..top].iter_mut().rev() {
            if uncovered <= Decimal::ZERO {
                break;
            }
            if l.buy.is_idle() && l.sell.is_idle() && l.held.is_zero() {
                let take = uncovered.min(self.qty);
                l.held = take;
                uncovered -= take;
            }
        }
        if uncovered > Decimal::ZERO {
            if let Some(l) = self.levels[..top].iter_mut().rev().find(|l| l.sell.is_idle()) {
                l.held += uncovered;
            }
        }
    }

    fn on_bar(&mut self, bar: &Bar, ctx: &mut StrategyCtx<'_>) {
        if bar.symbol != self.symbol {
            return;
        }
        let top = self.top();
        // Never offer more than the strategy holds beyond its working sells.
        let offered: Decimal = self.levels.iter().filter(|l| !l.sell.is_idle()).map(|l| l.selling).sum();
        let mut free = ctx.position(&self.symbol) - offered;
        // What each idle level wants: a sell of what it holds, or (holding
        // only dust or nothing) a buy when it is below the close.
        let mut wanted: Vec<(Decimal, usize, Side)> = Vec::new();
        for (i, l) in self.levels[..top].iter().enumerate() {
            if !l.buy.is_idle() || !l.sell.is_idle() {
                continue;
            }
            if !ctx.tradable(&self.symbol, l.held).is_zero() {
                let price = self.levels[i + 1].price;
                wanted.push(((price - bar.close).abs(), i, Side::Sell));
            } else if l.price < bar.close {
                wanted.push(((bar.close - l.price).abs(), i, Side::Buy));
            }
        }
        // Nearest the price first, a few per bar: the risk guard's order rate
        // limit then spends itself on the orders that matter, and a refused
        // one is retried on a later bar.
        wanted.sort_by_key(|(distance, i, _)| (*distance, *i));
        for (_, i, side) in wanted.into_iter().take(MAX_NEW_PER_BAR) {
            match side {
                Side::Sell => {
                    let sellable = ctx.tradable(&self.symbol, self.levels[i].held.min(free));
                    if sellable.is_zero() {
                        continue;
                    }
                    let price = self.levels[i + 1].price;
                    self.levels[i].sell = Slot::Asked;
                    self.levels[i].selling = sellable;
                    free -= sellable;
                    ctx.limit_tagged(&self.symbol, Side::Sell, sellable, price, OrderTag(i as u32));
                }
                Side::Buy => {
                    // What is left is dust below the lot step: the level is free again.
                    self.levels[i].held = Decimal::ZERO;
                    self.levels[i].buy = Slot::Asked;
                    ctx.limit_tagged(&self.symbol, Side::Buy, self.qty, self.levels[i].price, OrderTag(i as u32));
                }
            }
        }
    }

    fn on_fill(&mut self, fill: &Fill, ctx: &mut StrategyCtx<'_>) {
        if fill.symbol != self.symbol {
            return;
        }
        let Some(level) = self.tagged(fill.tag) else { return };
        let received = ctx.received(fill);
        if let Some(slot) = self.slot(level, fill.side) {
            slot.bind(&fill.client_order_id);
        }
        let l = &mut self.levels[level];
        l.held = (l.held + received).max(Decimal::ZERO);
        if fill.side == Side::Sell {
            l.selling = (l.selling - fill.qty).max(Decimal::ZERO);
        }
    }

    fn on_order_update(&mut self, update: &OrderUpdate, _ctx: &mut StrategyCtx<'_>) {
        if update.symbol != self.symbol {
            return;
        }
        let Some(level) = self.tagged(update.tag) else { return };
        let Some(slot) = self.slot(level, update.side) else { return };
        match &update.client_order_id {
            // Refused before it became an order.
            None => {
                if *slot == Slot::Asked {
                    *slot = Slot::Idle;
                }
            }
            Some(id) => {
                slot.bind(id);
                // An update of another order with this tag (a duplicate
                // canceled at start) must not free the level.
                if update.status.is_terminal() && slot.owns(id) {
                    *slot = Slot::Idle;
                    if update.side == Side::Sell {
                        self.levels[level].selling = Decimal::ZERO;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_are_evenly_spaced_and_include_both_ends() {
        let g = Grid::new("X".into(), Decimal::from(90), Decimal::from(110), 5, Decimal::ONE);
        let want: Vec<Decimal> = [90, 95, 100, 105, 110].iter().map(|p| Decimal::from(*p)).collect();
        assert_eq!(g.level_prices(), want);
    }

    #[test]
    fn orders_map_to_levels_by_tag_or_price() {
        let g = Grid::new("X".into(), Decimal::from(90), Decimal::from(110), 5, Decimal::ONE);
        let d = Decimal::from;
        let cases = [
            (Side::Buy, d(95), Some(OrderTag(1)), Some(1)),
            (Side::Buy, d(95), None, Some(1)),
            (Side::Sell, d(100), Some(OrderTag(1)), Some(1)),
            (Side::Sell, d(100), None, Some(1)),
            // A sell at the top price works for the level below it.
            (Side::Sell, d(110), None, Some(3)),
            // No level buys at the top.
            (Side::Buy, d(110), None, None),
            // The tag says level 1, the price says level 2: parameters changed.
            (Side::Buy, d(100), Some(OrderTag(1)), None),
            (Side::Buy, d(97), None, None),
            (Side::Buy, d(95), Some(OrderTag(9)), None),
        ];
        for (side, price, tag, want) in cases {
            assert_eq!(g.level_of(side, price, tag), want, "{side:?} @ {price} tag {tag:?}");
        }
    }
}
