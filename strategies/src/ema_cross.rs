//! `ema_cross`: long-only exponential moving-average crossover on closed bars.
//!
//! Buys `qty` when the fast EMA of closes crosses above the slow one while the
//! strategy is flat; sells its whole position when the fast EMA crosses below.

use engine::market::Bar;
use engine::strategy::{Strategy, StrategyCtx};
use engine::{Decimal, Symbol};

use crate::common::{close_f64, enter_long, exit_long, Cross};
use crate::indicators::Ema;
use crate::params::Params;
use crate::registry::StrategyConfigError;

/// The EMA crossover strategy.
#[derive(Debug, Clone)]
pub struct EmaCross {
    symbol: Symbol,
    fast: Ema,
    slow: Ema,
    qty: Decimal,
    cross: Cross,
}

impl EmaCross {
    /// A new instance. `fast` must be shorter than `slow`, `qty` positive.
    pub fn new(symbol: Symbol, fast: usize, slow: usize, qty: Decimal) -> Self {
        Self { symbol, fast: Ema::new(fast), slow: Ema::new(slow), qty, cross: Cross::default() }
    }

    /// Builds from config params `fast`, `slow`, `qty`.
    pub fn from_params(symbol: Symbol, p: &Params<'_>) -> Result<Self, StrategyConfigError> {
        p.only(&["fast", "slow", "qty"])?;
        let fast = p.usize("fast")?;
        let slow = p.usize("slow")?;
        if slow <= fast {
            return Err(p.error("slow", format!("must be greater than fast ({fast}), got {slow}")));
        }
        let qty = p.positive_decimal("qty")?;
        Ok(Self::new(symbol, fast, slow, qty))
    }
}

impl Strategy for EmaCross {
    fn kind(&self) -> &'static str {
        "ema_cross"
    }

    fn symbols(&self) -> Vec<Symbol> {
        vec![self.symbol.clone()]
    }

    fn warmup_bars(&self) -> usize {
        self.slow.period()
    }

    fn on_bar(&mut self, bar: &Bar, ctx: &mut StrategyCtx<'_>) {
        if bar.symbol != self.symbol {
            return;
        }
        let close = close_f64(bar.close);
        let (Some(fast), Some(slow)) = (self.fast.update(close), self.slow.update(close)) else {
            return;
        };
        match self.cross.update(fast > slow) {
            Some(true) => enter_long(ctx, &self.symbol, self.qty),
            Some(false) => exit_long(ctx, &self.symbol),
            None => {}
        }
    }
}
