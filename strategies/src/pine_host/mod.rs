//! Pine Script strategies trading on Keel (`kind = "pine"`): one interpreter ([`pine::Runner`])
//! runs the script per closed bar, live and in the backtest alike, and its commands become Keel
//! orders and exits (see [`broker`] for the mapping).
//!
//! Per closed bar of its symbol the strategy converts the bar to `f64`, fills
//! [`pine::StrategyState`] from its own accounting (position and average price from its fills,
//! equity = `initial_capital` + net profit + open profit at the close, commissions included), runs
//! the script, and acts on its commands and alerts. Orders decided at a close fill at the next
//! bar's open; with `process_orders_on_close = true` at that close
//! ([`Strategy::orders_on_close`]; live, a market order sent right after the close is the same).
//!
//! What a spot broker cannot do is refused at construction with `file:line:col: message`: a short
//! entry, partial exits (`qty`/`qty_percent` of `strategy.exit` and `strategy.close`), and exits in
//! ticks from each entry when `pyramiding` allows several.

mod broker;
mod load;

use std::collections::BTreeMap;
use std::sync::Arc;

use keel_core::fill::Fill;
use keel_core::market::Bar;
use keel_core::order::Order;
use keel_core::strategy::{OrderUpdate, Strategy, StrategyCtx};
use keel_core::Symbol;
use pine::{Program, Runner};
use rust_decimal::Decimal;

use crate::common::close_f64;
use crate::StrategyConfigError;
use broker::Broker;

/// A Pine Script strategy on one symbol.
pub struct PineStrategy {
    symbol: Symbol,
    program: Arc<Program>,
    runner: Runner,
    broker: Broker,
    /// Bars it needs before its values are complete (the live warm-up).
    warmup: usize,
    /// Whether the runner knows the chart's bar interval (from the first bar), which
    /// `request.security` builds its higher timeframes on.
    interval_known: bool,
    /// The bar values the script reads: only those are converted to `f64` (a conversion per
    /// value and bar is a fifth of the host's cost).
    inputs: pine::BarInputs,
}

impl PineStrategy {
    /// A strategy running `program` on `symbol`; refuses what spot trading cannot do (a short
    /// entry, partial exits; see the module doc), naming `file:line:col`. The error's key is
    /// `script` (a registry names the block).
    pub fn new(symbol: Symbol, program: Arc<Program>) -> Result<Self, StrategyConfigError> {
        let sizing = load::check(&program)?;
        Ok(Self {
            runner: Runner::new(Arc::clone(&program)),
            broker: Broker::new(symbol.clone(), sizing),
            warmup: program.warmup_bars(),
            interval_known: false,
            inputs: program.bar_inputs(),
            symbol,
            program,
        })
    }

    /// The compiled script.
    pub fn program(&self) -> &Program {
        &self.program
    }
}

impl Strategy for PineStrategy {
    fn kind(&self) -> &'static str {
        crate::pine_kind::PINE
    }

    fn symbols(&self) -> Vec<Symbol> {
        vec![self.symbol.clone()]
    }

    fn warmup_bars(&self) -> usize {
        self.warmup
    }

    fn warmup_bars_at(&self, interval_ms: i64) -> usize {
        // A `request.security` timeframe's warm-up, in bars of this interval.
        self.program.warmup_bars_for(interval_ms)
    }

    fn orders_on_close(&self) -> bool {
        self.program.decl().process_orders_on_close
    }

    fn on_start(&mut self, open: &[Order], ctx: &mut StrategyCtx<'_>) {
        self.broker.adopt(open, ctx);
    }

    fn on_bar(&mut self, bar: &Bar, ctx: &mut StrategyCtx<'_>) {
        if bar.symbol != self.symbol {
            return;
        }
        self.broker.reconcile(ctx);
        let value = |read: bool, v: Decimal| if read { close_f64(v) } else { f64::NAN };
        let input = pine::Bar {
            time: bar.open_time,
            open: value(self.inputs.open, bar.open),
            high: value(self.inputs.high, bar.high),
            low: value(self.inputs.low, bar.low),
            // The broker values the open position at the close.
            close: close_f64(bar.close),
            volume: value(self.inputs.volume, bar.volume),
        };
        if !self.interval_known {
            self.interval_known = true;
            // A bar's close time is inclusive (`open + interval - 1`, as Binance reports it).
            if let Err(e) = self.runner.set_base_interval(bar.close_time - bar.open_time + 1) {
                panic!("pine script stopped: {e}");
            }
        }
        let state = self.broker.state(input.close);
        let out = match self.runner.step(&input, &state) {
            Ok(out) => out,
            // The script cannot go on (a runaway loop): the runner pauses the strategy with this.
            Err(e) => panic!("pine script stopped: {e}"),
        };
        for cmd in &out.commands {
            self.broker.command(cmd, bar.close, ctx);
        }
        for alert in &out.alerts {
            let condition = alert.title.map_or("alert", |t| self.program.text(t));
            ctx.alert(&self.symbol, condition, self.program.text(alert.message).to_string(), BTreeMap::new());
        }
        self.broker.apply_exits(ctx);
    }

    fn on_fill(&mut self, fill: &Fill, ctx: &mut StrategyCtx<'_>) {
        if fill.symbol == self.symbol {
            self.broker.on_fill(fill, ctx);
        }
    }

    fn on_order_update(&mut self, update: &OrderUpdate, ctx: &mut StrategyCtx<'_>) {
        self.broker.on_update(update, ctx);
    }
}

#[cfg(test)]
mod tests;
