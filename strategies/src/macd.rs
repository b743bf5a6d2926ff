//! `macd`: long-only MACD signal-line crossover on closed bars.
//!
//! Buys `qty` when the MACD line crosses above its signal line while the
//! strategy is flat; sells its whole position when it crosses below.

use keel_core::market::Bar;
use keel_core::strategy::{Strategy, StrategyCtx};
use keel_core::{Decimal, Symbol};

use crate::common::{close_f64, enter_long, exit_long, Cross};
use crate::indicators::Macd;
use crate::params::{ParamSpec, Params};
use crate::registry::StrategyConfigError;

/// The MACD crossover strategy.
#[derive(Debug, Clone)]
pub struct MacdCross {
    symbol: Symbol,
    warmup: usize,
    macd: Macd,
    qty: Decimal,
    cross: Cross,
}

impl MacdCross {
    /// The parameters it declares (type, default, valid range), which the
    /// registry checks before building it.
    pub fn params() -> Vec<ParamSpec> {
        vec![
            ParamSpec::integer("fast").default_value("12").at_least(1),
            ParamSpec::integer("slow").default_value("26").at_least(1),
            ParamSpec::integer("signal").default_value("9").at_least(1),
            ParamSpec::decimal("qty").required().above(0),
        ]
    }

    /// A new instance with the EMA periods (`fast` < `slow`).
    pub fn new(symbol: Symbol, fast: usize, slow: usize, signal: usize, qty: Decimal) -> Self {
        Self { symbol, warmup: slow + signal, macd: Macd::new(fast, slow, signal), qty, cross: Cross::default() }
    }

    /// Builds from config params `fast` (default 12), `slow` (default 26),
    /// `signal` (default 9), `qty`.
    pub fn from_params(symbol: Symbol, p: &Params<'_>) -> Result<Self, StrategyConfigError> {
        p.only(&Self::params())?;
        let fast = p.usize_or("fast", 12)?;
        let slow = p.usize_or("slow", 26)?;
        if slow <= fast {
            return Err(p.error("slow", format!("must be greater than fast ({fast}), got {slow}")));
        }
        let signal = p.usize_or("signal", 9)?;
        let qty = p.positive_decimal("qty")?;
        Ok(Self::new(symbol, fast, slow, signal, qty))
    }
}

impl Strategy for MacdCross {
    fn kind(&self) -> &'static str {
        "macd"
    }

    fn symbols(&self) -> Vec<Symbol> {
        vec![self.symbol.clone()]
    }

    fn warmup_bars(&self) -> usize {
        self.warmup
    }

    fn on_bar(&mut self, bar: &Bar, ctx: &mut StrategyCtx<'_>) {
        if bar.symbol != self.symbol {
            return;
        }
        let Some(v) = self.macd.update(close_f64(bar.close)) else { return };
        match self.cross.update(v.macd > v.signal) {
            Some(true) => enter_long(ctx, &self.symbol, self.qty),
            Some(false) => exit_long(ctx, &self.symbol),
            None => {}
        }
    }
}
