//! `rsi_reversion`: long-only mean reversion on Wilder's RSI of closes.
//!
//! Buys `qty` when the RSI closes below `buy_below` while the strategy is flat;
//! sells its whole position when the RSI closes above `sell_above`.

use keel_core::market::Bar;
use keel_core::strategy::{Strategy, StrategyCtx};
use keel_core::{Decimal, Symbol};

use crate::common::{close_f64, enter_long, exit_long};
use crate::indicators::Rsi;
use crate::params::{ParamSpec, Params};
use crate::registry::StrategyConfigError;

/// The RSI mean-reversion strategy.
#[derive(Debug, Clone)]
pub struct RsiReversion {
    symbol: Symbol,
    period: usize,
    rsi: Rsi,
    buy_below: f64,
    sell_above: f64,
    qty: Decimal,
}

impl RsiReversion {
    /// The parameters it declares (type, default, valid range), which the
    /// registry checks before building it.
    pub fn params() -> Vec<ParamSpec> {
        vec![
            ParamSpec::integer("period").default_value("14").at_least(1),
            ParamSpec::number("buy_below").default_value("30.0").above(0).below(100),
            ParamSpec::number("sell_above").default_value("70.0").above(0).below(100),
            ParamSpec::decimal("qty").required().above(0),
        ]
    }

    /// A new instance; `0 < buy_below < sell_above < 100`.
    pub fn new(symbol: Symbol, period: usize, buy_below: f64, sell_above: f64, qty: Decimal) -> Self {
        Self { symbol, period, rsi: Rsi::new(period), buy_below, sell_above, qty }
    }

    /// Builds from config params `period` (default 14), `buy_below` (default 30),
    /// `sell_above` (default 70), `qty`.
    pub fn from_params(symbol: Symbol, p: &Params<'_>) -> Result<Self, StrategyConfigError> {
        p.only(&Self::params())?;
        let period = p.usize_or("period", 14)?;
        let buy_below = p.number_or("buy_below", 30.0)?;
        let sell_above = p.number_or("sell_above", 70.0)?;
        if !(buy_below > 0.0 && buy_below < 100.0) {
            return Err(p.error("buy_below", format!("must be between 0 and 100, got {buy_below}")));
        }
        if !(sell_above > buy_below && sell_above < 100.0) {
            return Err(p.error(
                "sell_above",
                format!("must be above buy_below ({buy_below}) and below 100, got {sell_above}"),
            ));
        }
        let qty = p.positive_decimal("qty")?;
        Ok(Self::new(symbol, period, buy_below, sell_above, qty))
    }
}

impl Strategy for RsiReversion {
    fn kind(&self) -> &'static str {
        "rsi_reversion"
    }

    fn symbols(&self) -> Vec<Symbol> {
        vec![self.symbol.clone()]
    }

    fn warmup_bars(&self) -> usize {
        self.period + 1
    }

    fn on_bar(&mut self, bar: &Bar, ctx: &mut StrategyCtx<'_>) {
        if bar.symbol != self.symbol {
            return;
        }
        let Some(rsi) = self.rsi.update(close_f64(bar.close)) else { return };
        if rsi < self.buy_below {
            enter_long(ctx, &self.symbol, self.qty);
        } else if rsi > self.sell_above {
            exit_long(ctx, &self.symbol);
        }
    }
}
