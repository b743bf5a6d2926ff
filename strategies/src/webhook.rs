//! `webhook`: orders from external signals (e.g. TradingView alerts).
//!
//! Live, signals arrive through the operator surfaces; in a backtest only from
//! a signal file given with `--signals`. A `buy` signal buys its quantity (or
//! the default `qty`) at market, capped so the position stays within
//! `max_position` when set; `sell` sells up to the position held; `close` sells
//! the whole position. It is spot and long-only: it never sells what it does
//! not hold.

use keel_core::order::Side;
use keel_core::strategy::{Signal, SignalAction, Strategy, StrategyCtx};
use keel_core::{Decimal, Symbol};

use crate::params::{ParamSpec, Params};
use crate::registry::StrategyConfigError;

/// The webhook strategy.
#[derive(Debug, Clone)]
pub struct Webhook {
    symbol: Symbol,
    qty: Decimal,
    max_position: Option<Decimal>,
}

impl Webhook {
    /// The parameters it declares (type, default, valid range), which the
    /// registry checks before building it.
    pub fn params() -> Vec<ParamSpec> {
        vec![ParamSpec::decimal("qty").required().above(0), ParamSpec::decimal("max_position").above(0)]
    }

    /// A new instance with a default quantity and an optional position cap.
    pub fn new(symbol: Symbol, qty: Decimal, max_position: Option<Decimal>) -> Self {
        Self { symbol, qty, max_position }
    }

    /// Builds from config params `qty` and optional `max_position`.
    pub fn from_params(symbol: Symbol, p: &Params<'_>) -> Result<Self, StrategyConfigError> {
        p.only(&Self::params())?;
        let qty = p.positive_decimal("qty")?;
        let max_position = p.positive_decimal_opt("max_position")?;
        Ok(Self::new(symbol, qty, max_position))
    }
}

impl Strategy for Webhook {
    fn kind(&self) -> &'static str {
        "webhook"
    }

    fn symbols(&self) -> Vec<Symbol> {
        vec![self.symbol.clone()]
    }

    fn on_signal(&mut self, signal: &Signal, ctx: &mut StrategyCtx<'_>) {
        if signal.symbol != self.symbol {
            return;
        }
        let qty = signal.qty.unwrap_or(self.qty);
        let position = ctx.position(&self.symbol);
        let (side, qty) = match signal.action {
            SignalAction::Buy => {
                let room = self.max_position.map(|m| m - position).unwrap_or(qty);
                (Side::Buy, qty.min(room))
            }
            SignalAction::Sell => (Side::Sell, qty.min(position)),
            SignalAction::Close => (Side::Sell, position),
        };
        if qty > Decimal::ZERO {
            ctx.market(&self.symbol, side, qty);
        }
    }
}
