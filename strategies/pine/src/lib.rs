//! Keel's Pine Script interpreter: parses, checks, compiles and runs TradingView Pine Script v5/v6
//! **strategies** bar by bar, natively and deterministically, with no I/O (pure computation; no
//! dependencies).
//!
//! # Using it (the host's API)
//! 1. [`compile`]`(source, Some("file.pine"), &inputs)` parses and checks the script, applies input
//!    overrides (by variable name or by `title`), and returns a [`Compiled`]: the [`Program`] and the
//!    repainting warnings. Anything outside the subset is refused with `file:line:col: message`
//!    naming the construct ([`Diagnostics`]). [`check`] gives every diagnostic for `keel pine check`.
//! 2. The program describes itself: [`Program::decl`] (the `strategy()` declaration: capital, sizing,
//!    pyramiding, commission, `process_orders_on_close`, with money kept as literal text for exact
//!    decimals), [`Program::inputs`] (the strategy's parameters: kind, default, range, options),
//!    [`Program::plots`] and [`Program::max_history`].
//! 3. [`Runner::new`]`(Arc<Program>)` (or [`Runner::with_base_interval`]`(program, interval_ms)`, or
//!    [`Runner::set_base_interval`] before the first step: a script with `request.security` needs
//!    the chart's bar interval in ms, checked against the requested timeframes) then [`Runner::step`]`(&bar, &state)` per closed bar, in order.
//!    The host fills [`StrategyState`] (position size, average price, equity, open/closed trades,
//!    net profit) from its broker emulation before each bar. Each step returns a [`BarOutput`]: the
//!    plotted values, the [`Command`]s the script issued (`strategy.entry`/`exit`/`close`/
//!    `close_all`/`cancel`/`cancel_all`, as plain data with f64 prices the host rounds to the
//!    instrument's ticks) and the [`Alert`]s. Order timing (next-bar open, `process_orders_on_close`,
//!    the intrabar rule, limits on the touch, `percent_of_equity` with commission) is the host's job.
//!
//! # The supported subset
//! | Area | Supported | Refused (or warned) |
//! |---|---|---|
//! | Versions | `//@version=5`, `//@version=6` | other versions, a missing version |
//! | Declaration | `strategy()`: `title`, `initial_capital`, `default_qty_type`/`default_qty_value`, `pyramiding`, `commission_type`/`commission_value`, `process_orders_on_close`; chart-only arguments (`overlay`, ...) accepted | `indicator()`; `calc_on_every_tick = true` warns |
//! | Types | `int`, `float`, `bool`, `string` literals, `na`; `color.*` only inside output calls | `line`, `label`, `box`, arrays, maps, matrices, `type`, `method`, `import`/`export`, string concatenation |
//! | Statements | `=`, `var`, `:=` and `+=`-style, tuples `[a, b] = f()`, `if`/`else if`/`else` (also as values), `?:`, `for i = a to b [by s]` (counts down when a > b), `for x in array.from(...)` / `for [i, x] in`, `while`, `break`/`continue`, `switch` with and without a subject (also as values) | `varip` warns (acts as `var`); `for…in` over anything but `array.from(...)` |
//! | Functions | single-line `f(x) => expr` and multi-line with an indented block, default arguments, tuple returns; inlined per call site, so each call keeps its own `ta.*` state | recursion |
//! | Operators | Pine precedence: `?:` < `or` < `and` < `==`/`!=` < `<`/`<=`/`>`/`>=` < `+`/`-` < `*`/`/`/`%` < unary `-`/`not` < `[]`; `/` is float division; `x/0` is `na`; comparisons with `na` are false; floats within 1e-10 compare equal (`ta::COMPARE_EPSILON`, TradingView's rule as PyneCore measured it); `and`/`or` lazy in v6, both sides evaluated in v5 | |
//! | History | `x[n]` on variables, bar series and expressions; rings sized to the deepest constant offset (5000 for a series offset) | negative offsets |
//! | Built-ins | `math.*` (abs, max, min, avg, round, floor, ceil, sqrt, pow, log, log10, exp, sign, trig, pi, e), `nz`, `na()`, `int()`, `float()`, `bool()`; `input`, `input.int`/`float`/`bool`/`string`/`source` (with `minval`/`maxval`/`options` enforced on overrides) | anything else names itself as unknown; `str.*`, `math.random`, `request.*` other than `request.security` |
//! | Higher timeframes | `request.security(syminfo.tickerid` or `syminfo.ticker, TF, expr)` (also `[a, b] = request.security(..., [x, y])`, `gaps = barmerge.gaps_off`/`gaps_on`, `lookahead = barmerge.lookahead_off`): TF a constant string (`"15"`, `"60"`, `"240"`: minutes that divide a day; `"D"`/`"1D"`, `"W"`/`"1W"`, `"M"`/`"1M"`) that is a whole multiple of the chart's bar interval, which the host passes ([`Runner::with_base_interval`]). The higher-timeframe bars are built from the script's own bars, aligned to UTC (days at 00:00, weeks on Monday 00:00, as Binance). Confirmed values only: on a chart bar, `expr` as evaluated on the last completed higher-timeframe bar; it changes on the chart bar that closes the period (TradingView's historical `lookahead_off`, which does not repaint; a period whose closing bar is missing from the data completes on the next period's first bar); `na` before the first period completes. `expr` keeps its own `ta.*` state and history on the higher timeframe's bars (bar values, `bar_index`, `time` are the higher timeframe's), and may call user functions | `lookahead = barmerge.lookahead_on`; other symbols; lower timeframes or ones that are not a whole multiple of the chart's; a non-constant TF; seconds and multi-day/week/month TFs; reading a series the script computed on the chart's bars, broker state, orders or output inside `expr`; nested or conditional calls; other arguments (`currency`...) |
//! | `ta.*` | sma, ema, rma, wma, vwma, rsi, atr, tr (variable: `na` on bar 0; `ta.tr(true)`: `high - low`), macd and bb (tuples), stoch, cci, stdev, highest, lowest, crossover, crossunder, cross, change, mom, roc, rising, falling, barssince, valuewhen, pivothigh, pivotlow, sum (also as Pine's own name `math.sum`), cum — lengths must be simple ints (literals or inputs) | calls inside a branch, loop or `?:` warn (history only on the bars they run) |
//! | Bar values | `open`, `high`, `low`, `close`, `volume`, `hl2`, `hlc3`, `ohlc4`, `time`, `bar_index`, `barstate.isfirst` | `barstate.isrealtime`/`isconfirmed` and `timenow` warn (closed bars: false/true/the bar's time) |
//! | Strategy | `strategy.entry` (long and short; a spot host refuses short), `strategy.exit` (`stop`, `limit`, `profit`, `loss`, `trail_price`, `trail_points`, `trail_offset`, `qty`, `qty_percent`), `strategy.close`, `strategy.close_all`, `strategy.cancel`, `strategy.cancel_all`; `strategy.position_size`, `position_avg_price`, `equity`, `opentrades`, `closedtrades`, `netprofit` | `oca_*`, `alert_message` and other arguments |
//! | Output | `plot`, `plotshape`, `plotchar` (exported per bar); `hline`, `bgcolor`, `fill`, `barcolor` accepted and not exported; `alert()`, `alertcondition()` become [`Alert`]s | |
//!
//! # Semantics
//! Values are f64 (`na` is NaN, bools 1/0, strings interned ids). Indicator warm-up and seeding follow
//! `../shared/reference/pine.md` (see [`ta`]). Variables that are not `var` are `na` at the start of
//! each bar until assigned; the history of a series is its value at the end of each bar. A loop
//! running more than [`MAX_LOOP_ITERATIONS`] times in one bar stops the run with an error at its line.
//!
//! # Speed
//! Compiled once: names resolved to slots, simple values folded, `ta.*` lengths fixed, every series
//! read with history in a ring buffer of the depth it needs; then lowered to a flat list of register
//! instructions with jumps (each writes its result straight into the slot that wants it; `ta.sma`
//! and a `ta.*` call as a branch condition are one instruction each). A bar allocates nothing, and
//! fills only the bar values the script reads ([`Program::bar_inputs`] tells a host which). `cargo bench
//! -p keel-pine --bench ema_cross` measures bars/s on 1M bars.

pub mod ast;
mod code;
mod compile;
pub mod error;
pub mod lexer;
pub mod parser;
mod program;
mod runner;
mod security;
pub mod ta;

pub use compile::{check, compile, Compiled};
pub use error::{Diagnostic, Diagnostics, Pos, Severity};
pub use program::{
    Alert, Bar, BarInputs, BarOutput, Command, CommissionType, Direction, InputDecl, InputKind, InputValue, OrderCall,
    PlotDecl, PlotKind, Program, QtyType, StrId, StrategyDecl, StrategyState,
};
pub use runner::{Runner, MAX_LOOP_ITERATIONS};
pub use security::Timeframe;
