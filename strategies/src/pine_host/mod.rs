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

mod ahead;
mod broker;
mod load;

use std::collections::BTreeMap;
use std::sync::Arc;

use keel_core::fill::Fill;
use keel_core::market::{Bar, BarSeries};
use keel_core::order::Order;
use keel_core::strategy::{OrderUpdate, Strategy, StrategyCtx};
use keel_core::Symbol;
use pine::{BarOutput, Program, Runner, StrategyState};
use rust_decimal::Decimal;

use crate::common::close_f64;
use crate::StrategyConfigError;
use ahead::{Ahead, Foreseen};
use broker::Broker;

/// A Pine Script strategy on one symbol.
pub struct PineStrategy {
    symbol: Symbol,
    program: Arc<Program>,
    script: Script,
    broker: Broker,
    /// Bars it needs before its values are complete (the live warm-up).
    warmup: usize,
    /// In a backtest, the script run ahead on its own thread (see [`ahead`]).
    ahead: Option<Ahead>,
}

/// The script and how a Keel bar becomes its input: the one piece of code that runs it, on the
/// strategy's thread and on the [`ahead`] thread alike.
struct Script {
    runner: Runner,
    /// Whether the runner knows the chart's bar interval (from the first bar), which
    /// `request.security` builds its higher timeframes on.
    interval_known: bool,
    /// The bar values the script reads: only those are converted to `f64` (a conversion per
    /// value and bar is a fifth of the host's cost).
    inputs: pine::BarInputs,
}

impl Script {
    fn new(program: &Arc<Program>) -> Self {
        Self { runner: Runner::new(Arc::clone(program)), interval_known: false, inputs: program.bar_inputs() }
    }

    /// Runs the script on `bar`, the next one, with the broker state `state` gives at its close
    /// (as `f64`); `Err` is why the script cannot go on.
    fn step(&mut self, bar: &Bar, state: impl FnOnce(f64) -> StrategyState) -> Result<&BarOutput, String> {
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
            self.runner.set_base_interval(bar.close_time - bar.open_time + 1).map_err(|e| e.to_string())?;
        }
        self.runner.step(&input, &state(input.close)).map_err(|e| e.to_string())
    }
}

impl PineStrategy {
    /// A strategy running `program` on `symbol`; refuses what spot trading cannot do (a short
    /// entry, partial exits; see the module doc), naming `file:line:col`. The error's key is
    /// `script` (a registry names the block).
    pub fn new(symbol: Symbol, program: Arc<Program>) -> Result<Self, StrategyConfigError> {
        let sizing = load::check(&program)?;
        Ok(Self {
            script: Script::new(&program),
            broker: Broker::new(symbol.clone(), sizing),
            warmup: program.warmup_bars(),
            ahead: None,
            symbol,
            program,
        })
    }

    /// The compiled script.
    pub fn program(&self) -> &Program {
        &self.program
    }
}

/// Acts on what the script decided on a bar closing at `close`: its commands through the broker,
/// its alerts as notifications, then the exits.
fn act(
    host: (&mut Broker, &Program, &Symbol),
    commands: &[pine::Command],
    alerts: &[pine::Alert],
    close: Decimal,
    ctx: &mut StrategyCtx<'_>,
) {
    let (broker, program, symbol) = host;
    for cmd in commands {
        broker.command(cmd, close, ctx);
    }
    for alert in alerts {
        let condition = alert.title.map_or("alert", |t| program.text(t));
        ctx.alert(symbol, condition, program.text(alert.message).to_string(), BTreeMap::new());
    }
    broker.apply_exits(ctx);
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

    fn foresee(&mut self, symbol: &Symbol, bars: Arc<dyn BarSeries>) {
        if *symbol == self.symbol {
            self.ahead = Ahead::start(&self.program, symbol, bars);
        }
    }

    fn skip_bars(&mut self, symbol: &Symbol, from: usize, upto: usize) -> usize {
        // `on_bar` with nothing from the script and a broker with nothing to reconcile or exits
        // to apply changes nothing.
        if *symbol != self.symbol || !self.broker.idle() {
            return 0;
        }
        self.ahead.as_mut().map_or(0, |a| a.skip(from, upto))
    }

    fn on_bar(&mut self, bar: &Bar, ctx: &mut StrategyCtx<'_>) {
        if bar.symbol != self.symbol {
            return;
        }
        self.broker.reconcile(ctx);
        if let Some(ahead) = &mut self.ahead {
            match ahead.take(bar) {
                Foreseen::Output(commands, alerts) => {
                    act((&mut self.broker, &self.program, &self.symbol), commands, alerts, bar.close, ctx);
                    return;
                }
                Foreseen::Failed(message) => panic!("pine script stopped: {message}"),
                Foreseen::Behind { delivered } => {
                    // On alone from here: first the script's state after the bars delivered
                    // so far. They ran on the thread without an error, and read no strategy state.
                    let series = ahead.series();
                    self.ahead = None;
                    let mut past = bar.clone();
                    for i in 0..delivered {
                        series.bar(i, &mut past);
                        if let Err(e) = self.script.step(&past, |_| StrategyState::default()) {
                            panic!("pine script stopped: {e}");
                        }
                    }
                }
            }
        }
        let broker = &self.broker;
        let out = match self.script.step(bar, |close| broker.state(close)) {
            Ok(out) => out,
            // The script cannot go on (a runaway loop): the runner pauses the strategy with this.
            Err(e) => panic!("pine script stopped: {e}"),
        };
        act((&mut self.broker, &self.program, &self.symbol), &out.commands, &out.alerts, bar.close, ctx);
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
