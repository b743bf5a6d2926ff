//! `grid`: a long-only grid of limit orders at fixed price levels in a range.
//!
//! `levels` prices are spaced evenly from `lower` to `upper` (both included).
//! Every level below the current close gets a resting buy limit of `qty`; when
//! a level's buy fills, a sell limit for what was bought rests one level up;
//! when that sells, the level's buy is placed again. The top level only sells.
//!
//! The strategy has no way to cancel, so it never places an order it cannot
//! attribute: at most one order per side is waiting for its first update (the
//! venue's acknowledgement, a fill or a refusal), which binds the client order
//! id to its level. Orders are therefore placed one per side per bar; a grid of
//! ten levels is fully armed after ten bars. Level prices are rounded to the
//! tick by the risk guard (buys down, sells up); `qty` should be a multiple of
//! the symbol's step size.

use keel_core::fill::Fill;
use keel_core::market::Bar;
use keel_core::order::Side;
use keel_core::strategy::{OrderUpdate, Strategy, StrategyCtx};
use keel_core::{Decimal, Symbol};

use crate::params::Params;
use crate::registry::StrategyConfigError;

#[derive(Debug, Clone)]
struct Level {
    price: Decimal,
    /// A buy order for this level is working (or awaiting its first update).
    buy_open: bool,
    /// Bought at this level and not sold yet.
    held: Decimal,
    /// Quantity of this level's inventory offered one level up.
    selling: Decimal,
}

#[derive(Debug, Clone)]
struct Bound {
    client_order_id: String,
    level: usize,
    side: Side,
    /// Quantity not filled yet.
    remaining: Decimal,
}

/// The grid strategy.
#[derive(Debug, Clone)]
pub struct Grid {
    symbol: Symbol,
    qty: Decimal,
    levels: Vec<Level>,
    /// Per side (buy, sell): the level and quantity of the order awaiting its first update.
    awaiting: [Option<(usize, Decimal)>; 2],
    orders: Vec<Bound>,
}

fn side_index(side: Side) -> usize {
    match side {
        Side::Buy => 0,
        Side::Sell => 1,
    }
}

impl Grid {
    /// A grid of `levels` (≥ 2) prices from `lower` to `upper` (> `lower` > 0).
    pub fn new(symbol: Symbol, lower: Decimal, upper: Decimal, levels: usize, qty: Decimal) -> Self {
        let n = levels.max(2);
        let step = (upper - lower) / Decimal::from(n as u64 - 1);
        let levels = (0..n)
            .map(|i| Level {
                price: if i == n - 1 { upper } else { lower + step * Decimal::from(i as u64) },
                buy_open: false,
                held: Decimal::ZERO,
                selling: Decimal::ZERO,
            })
            .collect();
        Self { symbol, qty, levels, awaiting: [None, None], orders: Vec::new() }
    }

    /// Builds from config params `lower`, `upper`, `levels` (default 10), `qty`.
    pub fn from_params(symbol: Symbol, p: &Params<'_>) -> Result<Self, StrategyConfigError> {
        p.only(&["lower", "upper", "levels", "qty"])?;
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

    /// Finds the order's level, binding a new client order id to the order of
    /// that side awaiting its first update.
    fn bind(&mut self, client_order_id: &str, side: Side) -> Option<usize> {
        if let Some(pos) = self.orders.iter().position(|o| o.client_order_id == client_order_id) {
            return Some(pos);
        }
        let (level, qty) = self.awaiting[side_index(side)].take()?;
        self.orders.push(Bound { client_order_id: client_order_id.to_string(), level, side, remaining: qty });
        Some(self.orders.len() - 1)
    }

    /// An order of `side` at `level` with `unfilled` quantity left is final.
    fn release(&mut self, level: usize, side: Side, unfilled: Decimal) {
        let Some(l) = self.levels.get_mut(level) else { return };
        match side {
            Side::Buy => l.buy_open = false,
            Side::Sell => l.selling = (l.selling - unfilled).max(Decimal::ZERO),
        }
    }
}

impl Strategy for Grid {
    fn kind(&self) -> &'static str {
        "grid"
    }

    fn symbols(&self) -> Vec<Symbol> {
        vec![self.symbol.clone()]
    }

    fn on_bar(&mut self, bar: &Bar, ctx: &mut StrategyCtx<'_>) {
        if bar.symbol != self.symbol {
            return;
        }
        let top = self.levels.len() - 1;
        if self.awaiting[0].is_none() {
            // The nearest idle level below the close.
            let pick = self.levels[..top]
                .iter()
                .rposition(|l| !l.buy_open && l.held.is_zero() && l.selling.is_zero() && l.price < bar.close);
            if let Some(i) = pick {
                self.levels[i].buy_open = true;
                self.awaiting[0] = Some((i, self.qty));
                ctx.limit(&self.symbol, Side::Buy, self.qty, self.levels[i].price);
            }
        }
        if self.awaiting[1].is_none() {
            if let Some(i) = self.levels[..top].iter().position(|l| l.held > l.selling) {
                let qty = self.levels[i].held - self.levels[i].selling;
                self.levels[i].selling += qty;
                self.awaiting[1] = Some((i, qty));
                ctx.limit(&self.symbol, Side::Sell, qty, self.levels[i + 1].price);
            }
        }
    }

    fn on_fill(&mut self, fill: &Fill, _ctx: &mut StrategyCtx<'_>) {
        if fill.symbol != self.symbol {
            return;
        }
        let Some(pos) = self.bind(&fill.client_order_id, fill.side) else { return };
        let order = &mut self.orders[pos];
        order.remaining = (order.remaining - fill.qty).max(Decimal::ZERO);
        let level = order.level;
        let Some(l) = self.levels.get_mut(level) else { return };
        match fill.side {
            Side::Buy => l.held += fill.qty,
            Side::Sell => {
                l.held = (l.held - fill.qty).max(Decimal::ZERO);
                l.selling = (l.selling - fill.qty).max(Decimal::ZERO);
            }
        }
    }

    fn on_order_update(&mut self, update: &OrderUpdate, _ctx: &mut StrategyCtx<'_>) {
        if update.symbol != self.symbol {
            return;
        }
        let Some(id) = &update.client_order_id else {
            // Refused before it became an order: it is the one awaiting.
            if let Some((level, qty)) = self.awaiting[side_index(update.side)].take() {
                self.release(level, update.side, qty);
            }
            return;
        };
        let Some(pos) = self.bind(id, update.side) else { return };
        if update.status.is_terminal() {
            let order = self.orders.swap_remove(pos);
            self.release(order.level, order.side, order.remaining);
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
}
