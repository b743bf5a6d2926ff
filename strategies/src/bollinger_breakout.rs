//! `bollinger_breakout`: long-only breakout above the upper Bollinger band.
//!
//! Buys `qty` when a bar closes above the upper band while the strategy is flat;
//! sells its whole position when a bar closes below the middle band (the SMA).

use keel_core::market::Bar;
use keel_core::strategy::{Strategy, StrategyCtx};
use keel_core::{Decimal, Symbol};

use crate::common::{close_f64, enter_long, exit_long};
use crate::indicators::Bollinger;
use crate::params::{ParamSpec, Params};
use crate::registry::StrategyConfigError;

/// The Bollinger breakout strategy.
#[derive(Debug, Clone)]
pub struct BollingerBreakout {
    symbol: Symbol,
    period: usize,
    bands: Bollinger,
    qty: Decimal,
}

impl BollingerBreakout {
    /// The parameters it declares (type, default, valid range), which the
    /// registry checks before building it.
    pub fn params() -> Vec<ParamSpec> {
        vec![
            ParamSpec::integer("period").default_value("20").at_least(2),
            ParamSpec::number("k").default_value("2.0").above(0),
            ParamSpec::decimal("qty").required().above(0),
        ]
    }

    /// A new instance: bands over `period` closes, `k` standard deviations wide.
    pub fn new(symbol: Symbol, period: usize, k: f64, qty: Decimal) -> Self {
        Self { symbol, period, bands: Bollinger::new(period, k), qty }
    }

    /// Builds from config params `period` (default 20, at least 2), `k` (default 2), `qty`.
    pub fn from_params(symbol: Symbol, p: &Params<'_>) -> Result<Self, StrategyConfigError> {
        p.only(&Self::params())?;
        let period = p.usize_or("period", 20)?;
        if period < 2 {
            return Err(p.error("period", format!("must be at least 2, got {period}")));
        }
        let k = p.number_or("k", 2.0)?;
        if k <= 0.0 {
            return Err(p.error("k", format!("must be positive, got {k}")));
        }
        let qty = p.positive_decimal("qty")?;
        Ok(Self::new(symbol, period, k, qty))
    }
}

impl Strategy for BollingerBreakout {
    fn kind(&self) -> &'static str {
        "bollinger_breakout"
    }

    fn symbols(&self) -> Vec<Symbol> {
        vec![self.symbol.clone()]
    }

    fn warmup_bars(&self) -> usize {
        self.period
    }

    fn on_bar(&mut self, bar: &Bar, ctx: &mut StrategyCtx<'_>) {
        if bar.symbol != self.symbol {
            return;
        }
        let close = close_f64(bar.close);
        let Some(b) = self.bands.update(close) else { return };
        if close > b.upper {
            enter_long(ctx, &self.symbol, self.qty);
        } else if close < b.middle {
            exit_long(ctx, &self.symbol);
        }
    }
}
