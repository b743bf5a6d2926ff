//! The interpreter: runs a [`Program`] bar by bar. All state (slots, history rings, `ta.*` state
//! machines, output buffers) is allocated when the runner is built; a bar allocates nothing
//! (the output vectors keep their capacity).

use std::sync::Arc;

use crate::code::{Code, Ins, OrderSite, FOR_REGS, NONE};
use crate::compile::truthy;
use crate::error::{Diagnostic, Pos};
use crate::program::*;
use crate::security::HtfBuilder;
use crate::ta::{self, Window, COMPARE_EPSILON};

/// The most iterations one loop may run on one bar before the script is stopped (Pine stops long
/// loops too); a runaway `while` is an error naming its line, never a hang.
pub const MAX_LOOP_ITERATIONS: u64 = 1_000_000;

enum TaState {
    Sma(ta::Sma),
    Sum(ta::Sma),
    Ema(ta::Ema),
    Wma(ta::Wma),
    Vwma(ta::Vwma),
    Rsi(ta::Rsi),
    Tr(ta::Tr),
    Atr(ta::Atr),
    Stdev(ta::Stdev),
    Stoch(ta::Stoch),
    Cci(ta::Cci),
    Extreme(ta::Extreme),
    Cross(ta::Cross),
    Lag(ta::Lag),
    BarsSince(ta::BarsSince),
    ValueWhen(ta::ValueWhen),
    Pivot(ta::Pivot),
    Cum(ta::Cum),
    Macd(ta::Macd),
    Bb(ta::Bb),
}

fn new_state(init: &TaInit) -> TaState {
    match *init {
        TaInit::Sma(n) => TaState::Sma(ta::Sma::new(n)),
        TaInit::Sum(n) => TaState::Sum(ta::Sma::new(n)),
        TaInit::Ema(n) => TaState::Ema(ta::Ema::new(n)),
        TaInit::Rma(n) => TaState::Ema(ta::Ema::rma(n)),
        TaInit::Wma(n) => TaState::Wma(ta::Wma::new(n)),
        TaInit::Vwma(n) => TaState::Vwma(ta::Vwma::new(n)),
        TaInit::Rsi(n) => TaState::Rsi(ta::Rsi::new(n)),
        TaInit::Tr(h) => TaState::Tr(ta::Tr::new(h)),
        TaInit::Atr(n) => TaState::Atr(ta::Atr::new(n)),
        TaInit::Stdev(n) => TaState::Stdev(ta::Stdev::new(n)),
        TaInit::Stoch(n) => TaState::Stoch(ta::Stoch::new(n)),
        TaInit::Cci(n) => TaState::Cci(ta::Cci::new(n)),
        TaInit::Highest(n) => TaState::Extreme(ta::Extreme::new(n, true)),
        TaInit::Lowest(n) => TaState::Extreme(ta::Extreme::new(n, false)),
        TaInit::Cross(k) => TaState::Cross(ta::Cross::new(k)),
        TaInit::Lag(n, k) => TaState::Lag(ta::Lag::new(n, k)),
        TaInit::BarsSince => TaState::BarsSince(ta::BarsSince::default()),
        TaInit::ValueWhen(o) => TaState::ValueWhen(ta::ValueWhen::new(o)),
        TaInit::Pivot(l, r, h) => TaState::Pivot(ta::Pivot::new(l, r, h)),
        TaInit::Cum => TaState::Cum(ta::Cum::default()),
        TaInit::Macd(f, s, g) => TaState::Macd(ta::Macd::new(f, s, g)),
        TaInit::Bb(n, m) => TaState::Bb(ta::Bb::new(n, m)),
    }
}

/// Runs one compiled script over bars, in order. Build one per run (backtest, or live strategy).
pub struct Runner {
    prog: Arc<Program>,
    m: Machine,
    /// The chart's bar interval in ms, which `request.security` needs to know when a period closes.
    base_interval: Option<i64>,
    /// One higher-timeframe bar builder per `request.security` call.
    htf: Vec<HtfBuilder>,
}

/// What a runner's instructions read and write: registers, history, `ta.*` state, the output.
/// Apart from the program (which it reads), so a step borrows the two separately.
struct Machine {
    slots: Vec<f64>,
    var_done: Vec<bool>,
    rings: Vec<Window>,
    ta: Vec<TaState>,
    bar_index: i64,
    out: BarOutput,
}

/// Applies a binary operator with Pine's `na` rules: arithmetic on `na` is `na`, division by 0 is
/// `na`, comparisons with `na` are false (`==`/`!=` included: use `na(x)`).
pub(crate) fn apply(op: Op, a: f64, b: f64) -> f64 {
    let bool = |x: bool| f64::from(u8::from(x));
    match op {
        Op::Add => a + b,
        Op::Sub => a - b,
        Op::Mul => a * b,
        Op::Div => ta::div(a, b),
        Op::Rem => {
            if b == 0.0 {
                f64::NAN
            } else {
                a % b
            }
        }
        Op::Eq => bool(tolerant_eq(a, b)),
        Op::Ne => bool(!a.is_nan() && !b.is_nan() && !tolerant_eq(a, b)),
        // The difference against the bound; the exact test first where equal infinities would
        // give a NaN difference.
        Op::Lt => bool(a - b < -COMPARE_EPSILON),
        Op::Le => bool(a <= b || a - b <= COMPARE_EPSILON),
        Op::Gt => bool(a - b > COMPARE_EPSILON),
        Op::Ge => bool(a >= b || a - b >= -COMPARE_EPSILON),
    }
}

/// `==` under [`COMPARE_EPSILON`].
fn tolerant_eq(a: f64, b: f64) -> bool {
    a == b || (a - b).abs() <= COMPARE_EPSILON
}

/// Evaluates a pure function on its argument values.
pub(crate) fn call(f: Func, v: &[f64]) -> f64 {
    let x = v.first().copied().unwrap_or(f64::NAN);
    let y = v.get(1).copied().unwrap_or(f64::NAN);
    match f {
        Func::Abs => x.abs(),
        Func::Max => {
            v.iter().copied().fold(f64::NEG_INFINITY, |a, b| if a.is_nan() || b.is_nan() { f64::NAN } else { a.max(b) })
        }
        Func::Min => {
            v.iter().copied().fold(f64::INFINITY, |a, b| if a.is_nan() || b.is_nan() { f64::NAN } else { a.min(b) })
        }
        Func::Avg => v.iter().sum::<f64>() / v.len() as f64,
        Func::Round => round_half_up(x),
        Func::RoundTo => {
            let p = 10f64.powi(y as i32);
            round_half_up(x * p) / p
        }
        Func::Floor => x.floor(),
        Func::Ceil => x.ceil(),
        Func::Sqrt => x.sqrt(),
        Func::Pow => x.powf(y),
        Func::Log => x.ln(),
        Func::Log10 => x.log10(),
        Func::Exp => x.exp(),
        Func::Sign => {
            if x.is_nan() {
                f64::NAN
            } else if x > 0.0 {
                1.0
            } else if x < 0.0 {
                -1.0
            } else {
                0.0
            }
        }
        Func::Sin => x.sin(),
        Func::Cos => x.cos(),
        Func::Tan => x.tan(),
        Func::Asin => x.asin(),
        Func::Acos => x.acos(),
        Func::Atan => x.atan(),
        Func::ToDegrees => x.to_degrees(),
        Func::ToRadians => x.to_radians(),
        Func::Nz => {
            if x.is_nan() {
                if v.len() > 1 {
                    y
                } else {
                    0.0
                }
            } else {
                x
            }
        }
        Func::IsNa => f64::from(u8::from(x.is_nan())),
        Func::ToInt => x.trunc(),
        Func::ToBool => f64::from(u8::from(truthy(x))),
    }
}

/// Pine's `math.round`: to the nearest integer, ties upwards (-2.5 gives -2).
fn round_half_up(x: f64) -> f64 {
    let r = x.round();
    if (r - x).abs() == 0.5 {
        x.ceil()
    } else {
        r
    }
}

fn opt(v: f64) -> Option<f64> {
    if v.is_nan() {
        None
    } else {
        Some(v)
    }
}

fn opt_str(v: f64) -> Option<StrId> {
    if v.is_nan() || v < 0.0 {
        None
    } else {
        Some(StrId(v as u32))
    }
}

impl Runner {
    /// A runner at bar 0 for `prog`.
    pub fn new(prog: Arc<Program>) -> Self {
        let code = &prog.code;
        let mut slots = vec![f64::NAN; code.n_regs];
        for &(r, v) in &code.consts {
            slots[r as usize] = v;
        }
        let m = Machine {
            slots,
            var_done: vec![false; prog.n_var_flags],
            rings: prog.rings.iter().map(|(_, n, _)| Window::new(*n)).collect(),
            ta: prog.ta.iter().map(new_state).collect(),
            bar_index: 0,
            out: BarOutput {
                plots: vec![f64::NAN; prog.plots.len()],
                commands: Vec::with_capacity(8),
                alerts: Vec::new(),
            },
        };
        let htf = vec![HtfBuilder::default(); prog.securities.len()];
        Runner { prog, m, base_interval: None, htf }
    }

    /// A runner for a script that may read higher timeframes (`request.security`): the host passes
    /// the chart's bar interval in ms (the bars it will step are that far apart, open to open), so
    /// a higher-timeframe bar completes on the chart bar whose close ends its period. Refused, at
    /// the call's `file:line:col`, when a requested timeframe is lower than the chart's or not a
    /// whole multiple of it. [`Runner::new`] is enough for a script without `request.security`;
    /// with one, its first step is refused until the interval is known.
    pub fn with_base_interval(prog: Arc<Program>, interval_ms: i64) -> Result<Self, Diagnostic> {
        let mut r = Runner::new(prog);
        r.set_base_interval(interval_ms)?;
        Ok(r)
    }

    /// Sets the chart's bar interval (ms) after [`Runner::new`], for a host that learns it from its
    /// first bar (e.g. a bar's close time minus its open time); checked as
    /// [`Runner::with_base_interval`] checks it. Set it before the first step.
    pub fn set_base_interval(&mut self, interval_ms: i64) -> Result<(), Diagnostic> {
        for s in &self.prog.securities {
            if let Some(why) = s.tf.unfit_for(interval_ms) {
                let mut d = Diagnostic::error(s.pos, format!("request.security timeframe \"{}\" {why}", s.tf_text));
                d.file = self.prog.file.clone();
                return Err(d);
            }
        }
        self.base_interval = Some(interval_ms);
        Ok(())
    }

    /// The program this runner runs.
    pub fn program(&self) -> &Program {
        &self.prog
    }

    /// Runs the script on the next bar, with the broker state as of that bar's start.
    /// An error (a runaway loop) names its position; the runner should not be stepped again after it.
    pub fn step(&mut self, bar: &Bar, state: &StrategyState) -> Result<&BarOutput, Diagnostic> {
        let Runner { prog, m, base_interval, htf } = self;
        let prog: &Program = prog;
        for s in &prog.plain_slots {
            m.slots[*s as usize] = f64::NAN;
        }
        if htf.is_empty() {
            // Only what the script reads (often `close` alone).
            for &r in &prog.bar_reads {
                m.slots[r as usize] = bar_slot(r, bar, m.bar_index, state);
            }
        } else {
            let fixed: [f64; BAR_SLOTS.len()] = std::array::from_fn(|r| bar_slot(r as u32, bar, m.bar_index, state));
            m.slots[..fixed.len()].copy_from_slice(&fixed);
            securities(prog, m, htf, *base_interval, bar).map_err(|mut e| {
                e.file = prog.file.clone();
                e
            })?;
            m.slots[..fixed.len()].copy_from_slice(&fixed);
        }
        m.out.commands.clear();
        m.out.alerts.clear();
        m.out.plots.iter_mut().for_each(|p| *p = f64::NAN);
        m.run(&prog.code, 0, prog.code.main_end as usize).map_err(|mut e| {
            e.file = prog.file.clone();
            e
        })?;
        for (ring, (slot, _, ctx)) in m.rings.iter_mut().zip(&prog.rings) {
            if *ctx == 0 {
                ring.push(m.slots[*slot as usize]);
            }
        }
        m.bar_index += 1;
        Ok(&self.m.out)
    }
}

/// The bar slots a higher-timeframe bar sets (its values, time and index; not the broker's).
const HTF_SLOTS: u32 = 10;

/// The value of bar slot `r` ([`BAR_SLOTS`]' order) on `bar`, the `index`-th.
#[inline]
fn bar_slot(r: u32, bar: &Bar, index: i64, state: &StrategyState) -> f64 {
    let (o, h, l, c) = (bar.open, bar.high, bar.low, bar.close);
    match r {
        0 => o,
        1 => h,
        2 => l,
        3 => c,
        4 => bar.volume,
        5 => bar.time as f64,
        6 => index as f64,
        7 => (h + l) / 2.0,
        8 => (h + l + c) / 3.0,
        9 => (o + h + l + c) / 4.0,
        10 => state.position_size,
        11 => state.position_avg_price,
        12 => state.equity,
        13 => state.opentrades,
        14 => state.closedtrades,
        _ => state.netprofit,
    }
}

/// Adds the chart bar to every `request.security` timeframe and runs the expressions of each
/// higher-timeframe bar it completes (confirmed values only: a period's value appears on the
/// chart bar that closes it, never before). The caller restores the chart bar's slots after.
fn securities(
    prog: &Program,
    m: &mut Machine,
    htf: &mut [HtfBuilder],
    base_interval: Option<i64>,
    bar: &Bar,
) -> Result<(), Diagnostic> {
    let Some(interval) = base_interval else {
        let pos = prog.securities.first().map_or(Pos { line: 1, col: 1 }, |s| s.pos);
        return Err(Diagnostic::error(
            pos,
            "request.security needs the chart's bar interval: the host builds the runner with Runner::with_base_interval",
        ));
    };
    for (i, sec) in prog.securities.iter().enumerate() {
        if sec.gaps {
            for r in &sec.results {
                m.slots[*r as usize] = f64::NAN;
            }
        }
        let (skipped, done) = htf[i].push(sec.tf, interval, bar);
        for htf_bar in [skipped, done].into_iter().flatten() {
            // The bar slots hold the higher-timeframe bar (and its own `bar_index`), and its
            // context's history rings advance.
            let index = htf[i].completed;
            for r in 0..HTF_SLOTS {
                m.slots[r as usize] = bar_slot(r, &htf_bar, index, &StrategyState::default());
            }
            let (start, end) = prog.code.securities[i];
            // A user function's loop may run away here too.
            m.run(&prog.code, start as usize, end as usize)?;
            for (ring, (slot, _, ctx)) in m.rings.iter_mut().zip(&prog.rings) {
                if *ctx == sec.ctx {
                    ring.push(m.slots[*slot as usize]);
                }
            }
            htf[i].completed += 1;
        }
    }
    Ok(())
}

impl Machine {
    /// Runs `code.ins[start..end]` (jumps stay inside it).
    fn run(&mut self, code: &Code, start: usize, end: usize) -> Result<(), Diagnostic> {
        let ins = &code.ins[..end];
        let mut pc = start;
        while let Some(&i) = ins.get(pc) {
            pc += 1;
            match i {
                Ins::Mov { dst, src } => self.slots[dst as usize] = self.slots[src as usize],
                Ins::Sma { site, dst, src } => {
                    let x = self.slots[src as usize];
                    self.slots[dst as usize] = match &mut self.ta[site as usize] {
                        TaState::Sma(s) => s.update(x),
                        _ => f64::NAN,
                    };
                }
                Ins::TaJumpIfNot { site, a, b, c, to } => {
                    let hit = match &mut self.ta[site as usize] {
                        // The commonest condition, stepped here; the others out of line.
                        TaState::Cross(x) => x.update(self.slots[a as usize], self.slots[b as usize]),
                        _ => truthy(self.ta(site, a, b, c)),
                    };
                    if !hit {
                        pc = to as usize;
                    }
                }
                Ins::Ta { site, dst, a, b, c } => {
                    let v = self.ta(site, a, b, c);
                    self.slots[dst as usize] = v;
                }
                Ins::Bin { op, dst, a, b } => {
                    self.slots[dst as usize] = apply(op, self.slots[a as usize], self.slots[b as usize]);
                }
                Ins::JumpIfNot { cond, to } => {
                    if !truthy(self.slots[cond as usize]) {
                        pc = to as usize;
                    }
                }
                Ins::JumpIf { cond, to } => {
                    if truthy(self.slots[cond as usize]) {
                        pc = to as usize;
                    }
                }
                Ins::Jump { to } => pc = to as usize,
                Ins::Plot { plot, src } => self.out.plots[plot as usize] = self.slots[src as usize],
                Ins::Neg { dst, a } => self.slots[dst as usize] = -self.slots[a as usize],
                Ins::Not { dst, a } => self.slots[dst as usize] = f64::from(u8::from(!truthy(self.slots[a as usize]))),
                Ins::Bool { dst, a } => self.slots[dst as usize] = f64::from(u8::from(truthy(self.slots[a as usize]))),
                Ins::And { dst, a, b } => {
                    let v = truthy(self.slots[a as usize]) && truthy(self.slots[b as usize]);
                    self.slots[dst as usize] = f64::from(u8::from(v));
                }
                Ins::Or { dst, a, b } => {
                    let v = truthy(self.slots[a as usize]) || truthy(self.slots[b as usize]);
                    self.slots[dst as usize] = f64::from(u8::from(v));
                }
                Ins::Call { f, dst, args, n } => {
                    let v = call(f, &self.slots[args as usize..(args + n) as usize]);
                    self.slots[dst as usize] = v;
                }
                Ins::Hist { dst, slot, ring, off } => {
                    let k = self.slots[off as usize];
                    self.slots[dst as usize] = if k.is_nan() || k < 0.0 {
                        f64::NAN
                    } else if k < 1.0 {
                        self.slots[slot as usize]
                    } else {
                        self.rings[ring as usize].get(k as usize - 1)
                    };
                }
                Ins::JumpIfNe { a, b, to } => {
                    // Exact, as a `switch` compares.
                    if self.slots[a as usize] != self.slots[b as usize] {
                        pc = to as usize;
                    }
                }
                Ins::Once { flag, to } => {
                    if self.var_done[flag as usize] {
                        pc = to as usize;
                    } else {
                        self.var_done[flag as usize] = true;
                    }
                }
                Ins::ForSetup { base, from, to, step, exit } => {
                    if !self.for_setup(base, from, to, step) {
                        pc = exit as usize;
                    }
                }
                Ins::ForTest { base, var, exit, pos } => {
                    let b = base as usize;
                    let (i, bound, dir) = (self.slots[b], self.slots[b + 1], self.slots[b + 2]);
                    if !((dir > 0.0 && i <= bound) || (dir < 0.0 && i >= bound)) {
                        pc = exit as usize;
                        continue;
                    }
                    self.count(base + 4, code.positions[pos as usize])?;
                    self.slots[var as usize] = i;
                }
                Ins::ForStep { base, head } => {
                    let b = base as usize;
                    self.slots[b] += self.slots[b + 2] * self.slots[b + 3];
                    pc = head as usize;
                }
                Ins::Count { counter, pos } => self.count(counter, code.positions[pos as usize])?,
                Ins::TaMulti { site, arg, targets } => self.ta_multi(site, arg, code.targets[targets as usize]),
                Ins::Order { site } => self.order(&code.orders[site as usize]),
                Ins::Alert { site } => {
                    let a = code.alerts[site as usize];
                    if a.cond == NONE || truthy(self.slots[a.cond as usize]) {
                        self.out.alerts.push(Alert { message: a.message, title: a.title });
                    }
                }
            }
        }
        Ok(())
    }

    /// A `for` loop's start into its registers at `base`; false when it runs no iteration (a
    /// bound `na`, or the step `na` or 0).
    #[inline(never)]
    fn for_setup(&mut self, base: u32, from: u32, to: u32, step: u32) -> bool {
        let (a, b) = (self.slots[from as usize], self.slots[to as usize]);
        if a.is_nan() || b.is_nan() {
            return false;
        }
        let dir = if a <= b { 1.0 } else { -1.0 };
        let st = if step == NONE { 1.0 } else { self.slots[step as usize].abs() };
        if st.is_nan() || st == 0.0 {
            return false;
        }
        let r = base as usize;
        self.slots[r..r + FOR_REGS as usize].copy_from_slice(&[a, b, dir, st, 0.0]);
        true
    }

    /// Counts a loop iteration in register `counter`; an error at `pos` past the limit.
    fn count(&mut self, counter: u32, pos: Pos) -> Result<(), Diagnostic> {
        let n = &mut self.slots[counter as usize];
        *n += 1.0;
        if *n > MAX_LOOP_ITERATIONS as f64 {
            return Err(Diagnostic::error(
                pos,
                format!("loop ran more than {MAX_LOOP_ITERATIONS} iterations on bar {}", self.bar_index),
            ));
        }
        Ok(())
    }

    /// An order call: its command from the fields' registers.
    #[inline(never)]
    fn order(&mut self, site: &OrderSite) {
        let v = site.fields.map(|r| if r == NONE { f64::NAN } else { self.slots[r as usize] });
        let id = StrId(v[0] as u32);
        let cmd = match site.kind {
            OrderKind::Entry => Command::Entry {
                id,
                direction: if v[1] < 0.0 { Direction::Short } else { Direction::Long },
                qty: opt(v[2]),
                limit: opt(v[3]),
                stop: opt(v[4]),
                comment: opt_str(v[5]),
            },
            OrderKind::Exit => Command::Exit {
                id,
                from_entry: opt_str(v[1]),
                qty: opt(v[2]),
                qty_percent: opt(v[3]),
                profit: opt(v[4]),
                limit: opt(v[5]),
                loss: opt(v[6]),
                stop: opt(v[7]),
                trail_price: opt(v[8]),
                trail_points: opt(v[9]),
                trail_offset: opt(v[10]),
                comment: opt_str(v[11]),
            },
            OrderKind::Close => Command::Close { id, qty: opt(v[1]), qty_percent: opt(v[2]), comment: opt_str(v[3]) },
            OrderKind::CloseAll => Command::CloseAll { comment: opt_str(v[0]) },
            OrderKind::Cancel => Command::Cancel { id },
            OrderKind::CancelAll => Command::CancelAll,
        };
        self.out.commands.push(cmd);
    }

    /// A tuple-valued `ta.*` call site into its target registers.
    #[inline(never)]
    fn ta_multi(&mut self, site: u32, arg: u32, targets: [u32; 3]) {
        let x = self.slots[arg as usize];
        let vals = match &mut self.ta[site as usize] {
            TaState::Macd(m) => m.update(x),
            TaState::Bb(b) => b.update(x),
            _ => [f64::NAN; 3],
        };
        for (t, v) in targets.into_iter().zip(vals) {
            if t != NONE {
                self.slots[t as usize] = v;
            }
        }
    }

    /// One step of `ta.*` call site `site` on registers `a`, `b`, `c` (out of line: its many
    /// state machines inlined would weigh on every instruction of the loop).
    #[inline(never)]
    fn ta(&mut self, site: u32, a: u32, b: u32, c: u32) -> f64 {
        let v = [self.slots[a as usize], self.slots[b as usize], self.slots[c as usize]];
        let bool = |x: bool| f64::from(u8::from(x));
        match &mut self.ta[site as usize] {
            TaState::Sma(s) => s.update(v[0]),
            TaState::Sum(s) => s.update_sum(v[0]),
            TaState::Ema(s) => s.update(v[0]),
            TaState::Wma(s) => s.update(v[0]),
            TaState::Vwma(s) => s.update(v[0], v[1]),
            TaState::Rsi(s) => s.update(v[0]),
            TaState::Tr(s) => s.update(v[0], v[1], v[2]),
            TaState::Atr(s) => s.update(v[0], v[1], v[2]),
            TaState::Stdev(s) => s.update(v[0]),
            TaState::Stoch(s) => s.update(v[0], v[1], v[2]),
            TaState::Cci(s) => s.update(v[0]),
            TaState::Extreme(s) => s.update(v[0]),
            TaState::Cross(s) => bool(s.update(v[0], v[1])),
            TaState::Lag(s) => s.update(v[0]),
            TaState::BarsSince(s) => s.update(truthy(v[0])),
            TaState::ValueWhen(s) => s.update(truthy(v[0]), v[1]),
            TaState::Pivot(s) => s.update(v[0]),
            TaState::Cum(s) => s.update(v[0]),
            TaState::Macd(_) | TaState::Bb(_) => f64::NAN,
        }
    }
}
