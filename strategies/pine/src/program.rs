//! The compiled form of a script (resolved slots, ring-buffer sizes, `ta.*` call sites) and the
//! plain data it hands the host: its declaration, inputs, plots, and per-bar commands and alerts.

use crate::ast::UnOp;
use crate::error::Pos;

/// An interned string of the script (an order id, a comment, an alert message): [`Program::text`] reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct StrId(pub u32);

/// `default_qty_type` of the `strategy()` declaration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QtyType {
    /// `strategy.fixed`: a quantity of the instrument.
    Fixed,
    /// `strategy.cash`: an amount of the quote currency.
    Cash,
    /// `strategy.percent_of_equity`: a share of the equity (commission included, see the reference).
    PercentOfEquity,
}

/// `commission_type` of the `strategy()` declaration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommissionType {
    /// `strategy.commission.percent`: a percentage of the order's value.
    Percent,
    /// `strategy.commission.cash_per_order`.
    CashPerOrder,
    /// `strategy.commission.cash_per_contract`.
    CashPerContract,
}

/// The `strategy()` declaration. Money-like numbers are kept as the literal text the script wrote,
/// so the host turns them into exact decimals (never through f64).
#[derive(Debug, Clone, PartialEq)]
pub struct StrategyDecl {
    /// The title (first argument).
    pub title: String,
    /// `initial_capital` as written (default "1000000", TradingView's).
    pub initial_capital: String,
    /// `default_qty_type` (default fixed).
    pub default_qty_type: QtyType,
    /// `default_qty_value` as written (default "1").
    pub default_qty_value: String,
    /// `pyramiding`: how many entries in one direction (default 0, meaning one).
    pub pyramiding: u32,
    /// `commission_type` (default percent).
    pub commission_type: CommissionType,
    /// `commission_value` as written (default "0").
    pub commission_value: String,
    /// `process_orders_on_close`: fill at this bar's close instead of the next bar's open.
    pub process_orders_on_close: bool,
}

/// What kind of value an input holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputKind {
    /// `input.int`
    Int,
    /// `input.float`
    Float,
    /// `input.bool`
    Bool,
    /// `input.string`
    String,
    /// `input.source`: one of the bar series, named (`close`, `hl2`...).
    Source,
}

/// An input's value: the default, or a value the host passes to [`crate::compile`].
#[derive(Debug, Clone, PartialEq)]
pub enum InputValue {
    /// An int.
    Int(i64),
    /// A float.
    Float(f64),
    /// A bool.
    Bool(bool),
    /// A string, or a source's series name.
    Str(String),
}

/// An input the script declares: a parameter of the strategy (listed, swept, overridden by name or title).
#[derive(Debug, Clone, PartialEq)]
pub struct InputDecl {
    /// The variable it is assigned to (`fastLen` in `fastLen = input.int(9)`).
    pub name: String,
    /// Its `title`, if given.
    pub title: Option<String>,
    /// Its kind.
    pub kind: InputKind,
    /// The default the script wrote.
    pub default: InputValue,
    /// The value this compilation used (an override or the default).
    pub value: InputValue,
    /// `minval`, if given.
    pub min: Option<f64>,
    /// `maxval`, if given.
    pub max: Option<f64>,
    /// `step`, if given.
    pub step: Option<f64>,
    /// `options`, if given.
    pub options: Vec<InputValue>,
}

/// Which output call a plot comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlotKind {
    /// `plot`
    Plot,
    /// `plotshape` (1 when the series is true)
    Shape,
    /// `plotchar` (1 when the series is true)
    Char,
}

/// One plotted series: its per-bar values are [`BarOutput::plots`] at the same index.
#[derive(Debug, Clone, PartialEq)]
pub struct PlotDecl {
    /// The `title` argument, or `plot N` (from 1, in script order).
    pub title: String,
    /// The call.
    pub kind: PlotKind,
}

/// An order direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// `strategy.long`
    Long,
    /// `strategy.short` (spot hosts refuse it when they act on it).
    Short,
}

/// A strategy command the script issued on a bar, for the host's broker emulation to act on.
/// Prices and quantities are f64 as the script computed them; the host rounds them to the
/// instrument's filters in exact decimals. `None` is an argument the script left out (or `na`).
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    /// `strategy.entry(id, direction, qty, limit, stop, comment)`.
    Entry {
        /// The entry's id.
        id: StrId,
        /// Long or short.
        direction: Direction,
        /// Quantity; `None` means the declaration's default sizing.
        qty: Option<f64>,
        /// Limit price.
        limit: Option<f64>,
        /// Stop price.
        stop: Option<f64>,
        /// Comment.
        comment: Option<StrId>,
    },
    /// `strategy.exit(id, from_entry, qty, qty_percent, profit, limit, loss, stop, trail_price, trail_points, trail_offset, comment)`.
    Exit {
        /// The exit's id.
        id: StrId,
        /// The entry it exits; `None` is every open entry.
        from_entry: Option<StrId>,
        /// Quantity.
        qty: Option<f64>,
        /// Share of the position, in percent.
        qty_percent: Option<f64>,
        /// Take-profit distance in ticks.
        profit: Option<f64>,
        /// Take-profit price.
        limit: Option<f64>,
        /// Stop-loss distance in ticks.
        loss: Option<f64>,
        /// Stop-loss price.
        stop: Option<f64>,
        /// Trailing stop activation price.
        trail_price: Option<f64>,
        /// Trailing stop activation distance in ticks.
        trail_points: Option<f64>,
        /// Trailing stop offset in ticks.
        trail_offset: Option<f64>,
        /// Comment.
        comment: Option<StrId>,
    },
    /// `strategy.close(id, qty, qty_percent, comment)`.
    Close {
        /// The entry to close.
        id: StrId,
        /// Quantity.
        qty: Option<f64>,
        /// Share, in percent.
        qty_percent: Option<f64>,
        /// Comment.
        comment: Option<StrId>,
    },
    /// `strategy.close_all(comment)`.
    CloseAll {
        /// Comment.
        comment: Option<StrId>,
    },
    /// `strategy.cancel(id)`.
    Cancel {
        /// The pending order's id.
        id: StrId,
    },
    /// `strategy.cancel_all()`.
    CancelAll,
}

/// A `strategy.*` order call as the script wrote it (where, and which arguments), for a host to
/// refuse what its broker cannot do before the script runs (a short entry on spot, say).
#[derive(Debug, Clone, PartialEq)]
pub struct OrderCall {
    /// The function: `strategy.entry`, `strategy.exit`, `strategy.close`, `strategy.close_all`,
    /// `strategy.cancel` or `strategy.cancel_all`.
    pub function: &'static str,
    /// Where the call starts.
    pub pos: Pos,
    /// The arguments given, by name (positional ones named by their place).
    pub args: Vec<&'static str>,
    /// `strategy.entry` only: `Some(Long)` when the direction is the literal `strategy.long`,
    /// `Some(Short)` for anything else.
    pub direction: Option<Direction>,
}

impl OrderCall {
    /// The argument names of each order function, in their positional order.
    const SIGNATURES: &'static [(&'static str, &'static [&'static str])] = &[
        ("strategy.entry", &["id", "direction", "qty", "limit", "stop", "comment"]),
        (
            "strategy.exit",
            &[
                "id",
                "from_entry",
                "qty",
                "qty_percent",
                "profit",
                "limit",
                "loss",
                "stop",
                "trail_price",
                "trail_points",
                "trail_offset",
                "comment",
            ],
        ),
        ("strategy.close", &["id", "comment", "qty", "qty_percent"]),
        ("strategy.close_all", &["comment"]),
        ("strategy.cancel", &["id"]),
        ("strategy.cancel_all", &[]),
    ];

    /// The argument names of order function `name` in their positional order (empty for any
    /// other name): the one list the compiler binds arguments with and [`OrderCall::of`] reads.
    pub(crate) fn signature(name: &str) -> &'static [&'static str] {
        Self::SIGNATURES.iter().find(|(n, _)| *n == name).map_or(&[], |(_, args)| args)
    }

    /// The call `name(args)` at `pos`, when `name` is an order function.
    pub(crate) fn of(name: &str, args: &[crate::ast::Arg], pos: Pos) -> Option<Self> {
        let &(function, names) = Self::SIGNATURES.iter().find(|(n, _)| *n == name)?;
        let mut given = Vec::with_capacity(args.len());
        let mut direction = None;
        for (i, a) in args.iter().enumerate() {
            let arg = match &a.name {
                Some(n) => names.iter().find(|k| **k == n.as_str()).copied(),
                None => names.get(i).copied(),
            };
            let Some(arg) = arg else { continue };
            if arg == "direction" {
                let long = matches!(&a.value.kind, crate::ast::ExprKind::Name(n) if n == "strategy.long");
                direction = Some(if long { Direction::Long } else { Direction::Short });
            }
            given.push(arg);
        }
        if function == "strategy.entry" && direction.is_none() {
            direction = Some(Direction::Short);
        }
        Some(Self { function, pos, args: given, direction })
    }

    /// True when the call gave argument `name`.
    pub fn has(&self, name: &str) -> bool {
        self.args.contains(&name)
    }
}

/// An `alert()` or a true `alertcondition()` on a bar: a notification for the host.
#[derive(Debug, Clone, PartialEq)]
pub struct Alert {
    /// The message.
    pub message: StrId,
    /// The `alertcondition` title, if any.
    pub title: Option<StrId>,
}

/// What one bar produced.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BarOutput {
    /// The plotted values, one per [`Program::plots`] entry (NaN is `na` or not plotted on this bar).
    pub plots: Vec<f64>,
    /// The strategy commands, in the order the script issued them.
    pub commands: Vec<Command>,
    /// The alerts.
    pub alerts: Vec<Alert>,
}

/// A bar of input: OHLCV and its open time in milliseconds since the epoch.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Bar {
    /// Open time, ms since the epoch (Pine's `time`).
    pub time: i64,
    /// Open.
    pub open: f64,
    /// High.
    pub high: f64,
    /// Low.
    pub low: f64,
    /// Close.
    pub close: f64,
    /// Volume.
    pub volume: f64,
}

/// Which OHLCV values of a bar a script reads (directly, or through `hl2`, `hlc3`, `ohlc4`, or a
/// higher timeframe built from them): a host may leave the others `NaN` in the [`Bar`] it passes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BarInputs {
    /// `open`.
    pub open: bool,
    /// `high`.
    pub high: bool,
    /// `low`.
    pub low: bool,
    /// `close`.
    pub close: bool,
    /// `volume`.
    pub volume: bool,
}

/// The broker state a script reads (`strategy.position_size`...), filled in by the host before each bar.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct StrategyState {
    /// `strategy.position_size`: signed quantity (negative is short).
    pub position_size: f64,
    /// `strategy.position_avg_price` (NaN when flat).
    pub position_avg_price: f64,
    /// `strategy.equity`.
    pub equity: f64,
    /// `strategy.opentrades`.
    pub opentrades: f64,
    /// `strategy.closedtrades`.
    pub closedtrades: f64,
    /// `strategy.netprofit`.
    pub netprofit: f64,
}

// ---- the compiled form (crate-internal) ----

/// Fixed slots the runner fills before each bar, in this order.
pub(crate) const BAR_SLOTS: &[&str] = &[
    "open",
    "high",
    "low",
    "close",
    "volume",
    "time",
    "bar_index",
    "hl2",
    "hlc3",
    "ohlc4",
    "strategy.position_size",
    "strategy.position_avg_price",
    "strategy.equity",
    "strategy.opentrades",
    "strategy.closedtrades",
    "strategy.netprofit",
];

/// Arithmetic and comparison operators of the compiled form.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Op {
    Add,
    Sub,
    Mul,
    Div,
    Rem,
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

/// Pure functions of the compiled form (`math.*`, `nz`, `na`, casts).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Func {
    Abs,
    Max,
    Min,
    Avg,
    Round,
    RoundTo,
    Floor,
    Ceil,
    Sqrt,
    Pow,
    Log,
    Log10,
    Exp,
    Sign,
    Sin,
    Cos,
    Tan,
    Asin,
    Acos,
    Atan,
    ToDegrees,
    ToRadians,
    Nz,
    IsNa,
    ToInt,
    ToBool,
}

/// A compiled expression: evaluates to f64 (bools 1/0, strings their [`StrId`], `na` NaN).
#[derive(Debug, Clone)]
pub(crate) enum Ex {
    Const(f64),
    Slot(u32),
    /// `x[n]`: `src` (when the series is an expression) is evaluated and stored in `slot` first.
    Hist {
        slot: u32,
        ring: u32,
        off: Box<Ex>,
        src: Option<Box<Ex>>,
    },
    Unary(UnOp, Box<Ex>),
    Bin(Op, Box<Ex>, Box<Ex>),
    /// `and`; lazy (the right side only when needed) in Pine 6, both sides in Pine 5.
    And(Box<Ex>, Box<Ex>, bool),
    /// `or`; lazy as `And`.
    Or(Box<Ex>, Box<Ex>, bool),
    Cond(Box<Ex>, Box<Ex>, Box<Ex>),
    Call(Func, Vec<Ex>),
    /// A `ta.*` call site: its state index and argument expressions (series arguments only).
    Ta(u32, Vec<Ex>),
    /// Statements then a value (an inlined user function, `if`/`switch` blocks).
    Block(Box<CBlock>),
    If(Box<(Ex, CBlock, Option<CBlock>)>),
    Switch(Box<CSwitch>),
}

/// Statements and the value they end with.
#[derive(Debug, Clone, Default)]
pub(crate) struct CBlock {
    pub stmts: Vec<St>,
    pub value: Option<Ex>,
}

/// A compiled `switch`.
#[derive(Debug, Clone)]
pub(crate) struct CSwitch {
    pub subject: Option<Ex>,
    pub arms: Vec<(Option<Ex>, CBlock)>,
}

/// The fields of an order command, evaluated per call.
#[derive(Debug, Clone, Copy)]
pub(crate) enum OrderKind {
    Entry,
    Exit,
    Close,
    CloseAll,
    Cancel,
    CancelAll,
}

/// A compiled statement.
#[derive(Debug, Clone)]
pub(crate) enum St {
    Set(u32, Ex),
    /// `var x = e`: evaluated the first time it runs (flag index).
    VarInit(u32, u32, Ex),
    Eval(Ex),
    /// A tuple-valued `ta.*` call (`macd`, `bb`) into its targets.
    TaMulti(u32, Vec<Ex>, Vec<u32>),
    For {
        var: u32,
        from: Ex,
        to: Ex,
        step: Option<Ex>,
        body: Vec<St>,
        pos: Pos,
    },
    ForIn {
        index: Option<u32>,
        item: u32,
        items: Vec<Ex>,
        body: Vec<St>,
    },
    While {
        cond: Ex,
        body: Vec<St>,
        pos: Pos,
    },
    Break,
    Continue,
    /// An order: kind, then the fields in the kind's fixed order (see `runner`), `None` when absent.
    Order(OrderKind, Vec<Option<Ex>>),
    Plot(u32, Ex),
    Alert {
        message: StrId,
        title: Option<StrId>,
        cond: Option<Ex>,
    },
}

/// Which `ta.*` state machine a call site holds, with its fixed lengths.
#[derive(Debug, Clone)]
pub(crate) enum TaInit {
    Sma(usize),
    Sum(usize),
    Ema(usize),
    Rma(usize),
    Wma(usize),
    Vwma(usize),
    Rsi(usize),
    Tr(bool),
    Atr(usize),
    Stdev(usize),
    Stoch(usize),
    Cci(usize),
    Highest(usize),
    Lowest(usize),
    Cross(crate::ta::CrossKind),
    Lag(usize, crate::ta::LagKind),
    BarsSince,
    ValueWhen(usize),
    Pivot(usize, usize, bool),
    Cum,
    Macd(usize, usize, usize),
    Bb(usize, f64),
}

/// A compiled `request.security(syminfo.tickerid, tf, expr)` call: its expressions run once per
/// completed bar of `tf` (built from the chart's bars), with the bar slots holding that bar, and
/// their values land in `results` (slots that keep their value between chart bars).
#[derive(Debug, Clone)]
pub(crate) struct Security {
    pub tf: crate::security::Timeframe,
    /// The timeframe as the script wrote it, for messages.
    pub tf_text: String,
    /// The call's position, for errors the host's chart interval raises.
    pub pos: Pos,
    /// The history context of its rings (see [`Program::rings`]).
    pub ctx: u32,
    /// The slots its expressions' values land in (the expressions are lowered into
    /// [`Program::code`]).
    pub results: Vec<u32>,
    /// `gaps = barmerge.gaps_on`: the values are `na` except on the chart bar that completes the period.
    pub gaps: bool,
}

/// A compiled script: build a [`crate::Runner`] from it to run bars.
#[derive(Debug, Clone)]
pub struct Program {
    pub(crate) version: u32,
    pub(crate) file: Option<String>,
    pub(crate) decl: StrategyDecl,
    pub(crate) inputs: Vec<InputDecl>,
    pub(crate) plots: Vec<PlotDecl>,
    pub(crate) order_calls: Vec<OrderCall>,
    pub(crate) strings: Vec<String>,
    /// The statements (and each `request.security` call's expressions), lowered.
    pub(crate) code: crate::code::Code,
    /// The bar slots ([`BAR_SLOTS`]) an instruction reads: a step fills only these.
    pub(crate) bar_reads: Vec<u32>,
    /// Slots that are not `var`: reset to `na` before each bar.
    pub(crate) plain_slots: Vec<u32>,
    pub(crate) n_var_flags: usize,
    /// (slot, ring size, context) for every series read with history: context 0 is the chart (pushed
    /// after each chart bar), context k the k-th `request.security` (pushed after each of its bars).
    pub(crate) rings: Vec<(u32, usize, u32)>,
    pub(crate) ta: Vec<TaInit>,
    /// The history context of each `ta.*` call site (see `rings`).
    pub(crate) ta_ctx: Vec<u32>,
    pub(crate) securities: Vec<Security>,
}

impl Program {
    /// The `//@version=` of the script (5 or 6).
    pub fn version(&self) -> u32 {
        self.version
    }
    /// The `strategy()` declaration.
    pub fn decl(&self) -> &StrategyDecl {
        &self.decl
    }
    /// The inputs, in script order, with the values this compilation used.
    pub fn inputs(&self) -> &[InputDecl] {
        &self.inputs
    }
    /// The plotted series, in script order.
    pub fn plots(&self) -> &[PlotDecl] {
        &self.plots
    }
    /// The script's `strategy.*` order calls, in script order (a call inside a user function once
    /// per call site).
    pub fn order_calls(&self) -> &[OrderCall] {
        &self.order_calls
    }
    /// The file name the script was compiled under, if any (for `file:line:col` messages).
    pub fn file(&self) -> Option<&str> {
        self.file.as_deref()
    }
    /// The text of an interned string.
    pub fn text(&self, id: StrId) -> &str {
        self.strings.get(id.0 as usize).map(String::as_str).unwrap_or("")
    }
    /// The timeframes the script's `request.security` calls read, in script order: a host checks them
    /// against its chart interval with [`crate::Runner::with_base_interval`].
    pub fn security_timeframes(&self) -> Vec<crate::security::Timeframe> {
        self.securities.iter().map(|s| s.tf).collect()
    }
    /// The bar values the script reads ([`BarInputs`]).
    pub fn bar_inputs(&self) -> BarInputs {
        if !self.securities.is_empty() {
            // A higher-timeframe bar is built from every value of the chart's bars.
            return BarInputs { open: true, high: true, low: true, close: true, volume: true };
        }
        let read = |name: &str| {
            BAR_SLOTS.iter().position(|s| *s == name).is_some_and(|r| self.bar_reads.contains(&(r as u32)))
        };
        let (hl2, hlc3, ohlc4) = (read("hl2"), read("hlc3"), read("ohlc4"));
        BarInputs {
            open: read("open") || ohlc4,
            high: read("high") || hl2 || hlc3 || ohlc4,
            low: read("low") || hl2 || hlc3 || ohlc4,
            close: read("close") || hlc3 || ohlc4,
            volume: read("volume"),
        }
    }

    /// True when the script reads the broker's state (`strategy.position_size`, `equity`, ...):
    /// then what it decides on a bar depends on its fills, not on the bars alone.
    pub fn reads_strategy_state(&self) -> bool {
        self.bar_reads.iter().any(|&r| BAR_SLOTS.get(r as usize).is_some_and(|n| n.starts_with("strategy.")))
    }

    /// The deepest history any series keeps (the longest ring buffer).
    pub fn max_history(&self) -> usize {
        self.rings.iter().map(|r| r.1).max().unwrap_or(0)
    }
    /// An upper bound on the bars the script needs before its values are complete: the sum of every
    /// `ta.*` call's warm-up (so indicators of indicators are covered) plus the deepest history read.
    /// A live host preloads this many closed bars. `ta.*` calls inside `request.security` count
    /// their higher-timeframe bars as chart bars here: a script that reads higher timeframes needs
    /// [`Program::warmup_bars_for`] its chart interval instead.
    pub fn warmup_bars(&self) -> usize {
        self.ta.iter().map(ta_warmup).sum::<usize>() + self.max_history()
    }

    /// [`Program::warmup_bars`] for a chart of `interval_ms` bars, with each `request.security`
    /// timeframe's needs in chart bars: its own `ta.*` warm-up and history in higher-timeframe bars,
    /// plus one (the first period may be partial), times the chart bars in one period (a month
    /// counts 31 days). A live host on a script that reads higher timeframes preloads this many.
    pub fn warmup_bars_for(&self, interval_ms: i64) -> usize {
        let ctx_need = |ctx: u32| {
            let ta: usize =
                self.ta.iter().zip(&self.ta_ctx).filter(|(_, c)| **c == ctx).map(|(t, _)| ta_warmup(t)).sum();
            let hist = self.rings.iter().filter(|r| r.2 == ctx).map(|r| r.1).max().unwrap_or(0);
            ta + hist
        };
        let htf: usize = self
            .securities
            .iter()
            .map(|s| (ctx_need(s.ctx) + 1).saturating_mul(s.tf.chart_bars_per_period(interval_ms)))
            .sum();
        ctx_need(0).saturating_add(htf)
    }
}

/// The bars one `ta.*` call needs before its value is complete.
fn ta_warmup(t: &TaInit) -> usize {
    match *t {
        TaInit::Sma(n)
        | TaInit::Sum(n)
        | TaInit::Ema(n)
        | TaInit::Rma(n)
        | TaInit::Wma(n)
        | TaInit::Vwma(n)
        | TaInit::Atr(n)
        | TaInit::Stdev(n)
        | TaInit::Stoch(n)
        | TaInit::Cci(n)
        | TaInit::Highest(n)
        | TaInit::Lowest(n)
        | TaInit::Bb(n, _) => n,
        TaInit::Rsi(n) | TaInit::Lag(n, _) | TaInit::ValueWhen(n) => n + 1,
        TaInit::Pivot(l, r, _) => l + r + 1,
        TaInit::Macd(f, s, g) => f.max(s) + g,
        TaInit::Tr(_) | TaInit::Cross(_) => 2,
        TaInit::BarsSince | TaInit::Cum => 1,
    }
}
