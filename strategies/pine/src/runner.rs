//! The interpreter: runs a [`Program`] bar by bar. All state (slots, history rings, `ta.*` state
//! machines, output buffers) is allocated when the runner is built; a bar allocates nothing
//! (the output vectors keep their capacity).

use std::sync::Arc;

use crate::ast::UnOp;
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

/// Control flow out of a statement list.
#[derive(Clone, Copy, PartialEq)]
enum Flow {
    Normal,
    Break,
    Continue,
}

/// Runs one compiled script over bars, in order. Build one per run (backtest, or live strategy).
pub struct Runner {
    prog: Arc<Program>,
    /// The program's statements, this runner's own copy: moved out for each bar while it runs
    /// (cloning the `Arc` per bar instead costs two atomic operations, ~4 % of a Pine backtest).
    body: Vec<St>,
    slots: Vec<f64>,
    var_done: Vec<bool>,
    rings: Vec<Window>,
    ta: Vec<TaState>,
    bar_index: i64,
    out: BarOutput,
    error: Option<Diagnostic>,
    /// A `break`/`continue` met inside an `if`/`switch` block, on its way out to the loop.
    pending: Option<Flow>,
    /// The chart's bar interval in ms, which `request.security` needs to know when a period closes.
    base_interval: Option<i64>,
    /// One higher-timeframe bar builder per `request.security` call.
    htf: Vec<HtfBuilder>,
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
        let slots = vec![f64::NAN; prog.n_slots];
        let rings = prog.rings.iter().map(|(_, n, _)| Window::new(*n)).collect();
        let ta = prog.ta.iter().map(new_state).collect();
        let htf = vec![HtfBuilder::default(); prog.securities.len()];
        let out =
            BarOutput { plots: vec![f64::NAN; prog.plots.len()], commands: Vec::with_capacity(8), alerts: Vec::new() };
        Runner {
            var_done: vec![false; prog.n_var_flags],
            body: prog.body.clone(),
            prog,
            slots,
            rings,
            ta,
            bar_index: 0,
            out,
            error: None,
            pending: None,
            base_interval: None,
            htf,
        }
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
        for s in &self.prog.plain_slots {
            self.slots[*s as usize] = f64::NAN;
        }
        let (o, h, l, c) = (bar.open, bar.high, bar.low, bar.close);
        let fixed = [
            o,
            h,
            l,
            c,
            bar.volume,
            bar.time as f64,
            self.bar_index as f64,
            (h + l) / 2.0,
            (h + l + c) / 3.0,
            (o + h + l + c) / 4.0,
            state.position_size,
            state.position_avg_price,
            state.equity,
            state.opentrades,
            state.closedtrades,
            state.netprofit,
        ];
        self.slots[..fixed.len()].copy_from_slice(&fixed);
        if !self.htf.is_empty() {
            self.securities(bar, &fixed)?;
        }
        self.out.commands.clear();
        self.out.alerts.clear();
        self.out.plots.iter_mut().for_each(|p| *p = f64::NAN);
        let body = std::mem::take(&mut self.body);
        self.exec(&body);
        self.body = body;
        if let Some(e) = self.error.take() {
            let mut e = e;
            e.file = self.prog.file.clone();
            return Err(e);
        }
        for (ring, (slot, _, ctx)) in self.rings.iter_mut().zip(&self.prog.rings) {
            if *ctx == 0 {
                ring.push(self.slots[*slot as usize]);
            }
        }
        self.bar_index += 1;
        Ok(&self.out)
    }

    /// Adds the chart bar to every `request.security` timeframe and runs the expressions of each
    /// higher-timeframe bar it completes (confirmed values only: a period's value appears on the
    /// chart bar that closes it, never before). `fixed` is the chart bar's slot values, restored after.
    fn securities(&mut self, bar: &Bar, fixed: &[f64]) -> Result<(), Diagnostic> {
        let prog = Arc::clone(&self.prog);
        let Some(interval) = self.base_interval else {
            let pos = prog.securities.first().map_or(Pos { line: 1, col: 1 }, |s| s.pos);
            let mut d = Diagnostic::error(pos, "request.security needs the chart's bar interval: the host builds the runner with Runner::with_base_interval");
            d.file = prog.file.clone();
            return Err(d);
        };
        for (i, sec) in prog.securities.iter().enumerate() {
            if sec.gaps {
                for r in &sec.results {
                    self.slots[*r as usize] = f64::NAN;
                }
            }
            let (skipped, done) = self.htf[i].push(sec.tf, interval, bar);
            for htf_bar in [skipped, done].into_iter().flatten() {
                self.run_security(sec, &htf_bar);
            }
        }
        self.slots[..fixed.len()].copy_from_slice(fixed);
        Ok(())
    }

    /// Runs one `request.security` expression on a completed higher-timeframe bar: the bar slots
    /// hold that bar (and its own `bar_index`), and its context's history rings advance.
    fn run_security(&mut self, sec: &Security, b: &Bar) {
        let (o, h, l, c) = (b.open, b.high, b.low, b.close);
        let index = self.htf[(sec.ctx - 1) as usize].completed;
        let htf = [
            o,
            h,
            l,
            c,
            b.volume,
            b.time as f64,
            index as f64,
            (h + l) / 2.0,
            (h + l + c) / 3.0,
            (o + h + l + c) / 4.0,
        ];
        self.slots[..htf.len()].copy_from_slice(&htf);
        for (e, r) in sec.exprs.iter().zip(&sec.results) {
            let v = self.eval(e);
            self.slots[*r as usize] = v;
        }
        let prog = Arc::clone(&self.prog);
        for (ring, (slot, _, ctx)) in self.rings.iter_mut().zip(&prog.rings) {
            if *ctx == sec.ctx {
                ring.push(self.slots[*slot as usize]);
            }
        }
        self.htf[(sec.ctx - 1) as usize].completed += 1;
    }

    fn exec(&mut self, stmts: &[St]) -> Flow {
        for s in stmts {
            if self.error.is_some() {
                return Flow::Break;
            }
            match s {
                St::Set(slot, e) => {
                    let v = self.eval(e);
                    self.slots[*slot as usize] = v;
                }
                St::Eval(e) => {
                    self.eval(e);
                }
                St::Plot(i, e) => {
                    let v = self.eval(e);
                    self.out.plots[*i as usize] = v;
                }
                St::Break => return Flow::Break,
                St::Continue => return Flow::Continue,
                _ => {
                    if self.exec_other(s) {
                        continue;
                    }
                }
            }
            if let Some(f) = self.pending.take() {
                return f;
            }
        }
        Flow::Normal
    }

    /// The statements other than assignments, plots and expression statements (loops, orders,
    /// alerts...), out of line so the common ones run in a small loop. True skips the check
    /// for a pending `break`/`continue` (a loop whose bounds are `na` or whose step is 0 or `na`).
    #[inline(never)]
    fn exec_other(&mut self, s: &St) -> bool {
        match s {
            St::VarInit(slot, flag, e) => {
                if !self.var_done[*flag as usize] {
                    self.var_done[*flag as usize] = true;
                    let v = self.eval(e);
                    self.slots[*slot as usize] = v;
                }
            }
            St::TaMulti(idx, args, targets) => {
                let x = self.eval(&args[0]);
                let vals = match &mut self.ta[*idx as usize] {
                    TaState::Macd(m) => m.update(x),
                    TaState::Bb(b) => b.update(x),
                    _ => [f64::NAN; 3],
                };
                for (t, v) in targets.iter().zip(vals) {
                    self.slots[*t as usize] = v;
                }
            }
            St::For { var, from, to, step, body, pos } => {
                let a = self.eval(from);
                let b = self.eval(to);
                if a.is_nan() || b.is_nan() {
                    return true;
                }
                let dir = if a <= b { 1.0 } else { -1.0 };
                let st = step.as_ref().map_or(1.0, |s| self.eval(s).abs());
                if st.is_nan() || st == 0.0 {
                    return true;
                }
                let mut i = a;
                let mut n = 0u64;
                while (dir > 0.0 && i <= b) || (dir < 0.0 && i >= b) {
                    if self.count(&mut n, *pos) {
                        break;
                    }
                    self.slots[*var as usize] = i;
                    if self.exec(body) == Flow::Break {
                        break;
                    }
                    i += dir * st;
                }
            }
            St::ForIn { index, item, items, body } => {
                for (k, e) in items.iter().enumerate() {
                    let v = self.eval(e);
                    self.slots[*item as usize] = v;
                    if let Some(ix) = index {
                        self.slots[*ix as usize] = k as f64;
                    }
                    if self.exec(body) == Flow::Break {
                        break;
                    }
                }
            }
            St::While { cond, body, pos } => {
                let mut n = 0u64;
                while truthy(self.eval(cond)) {
                    if self.count(&mut n, *pos) || self.exec(body) == Flow::Break {
                        break;
                    }
                }
            }
            St::Order(kind, fields) => self.order(kind, fields),
            St::Alert { message, title, cond } => {
                let fire = cond.as_ref().is_none_or(|c| truthy(self.eval(c)));
                if fire {
                    self.out.alerts.push(Alert { message: *message, title: *title });
                }
            }
            // Run by `exec` itself.
            St::Set(..) | St::Eval(_) | St::Plot(..) | St::Break | St::Continue => {}
        }
        false
    }

    /// Counts a loop iteration; true (and an error recorded) past the limit.
    fn count(&mut self, n: &mut u64, pos: Pos) -> bool {
        *n += 1;
        if *n > MAX_LOOP_ITERATIONS {
            self.error = Some(Diagnostic::error(
                pos,
                format!("loop ran more than {MAX_LOOP_ITERATIONS} iterations on bar {}", self.bar_index),
            ));
            return true;
        }
        false
    }

    fn order(&mut self, kind: &OrderKind, fields: &[Option<Ex>]) {
        // Up to 12 fields: evaluated into a fixed array, no allocation.
        let mut v = [f64::NAN; 12];
        for (i, f) in fields.iter().enumerate().take(12) {
            if let Some(e) = f {
                v[i] = self.eval(e);
            }
        }
        let id = StrId(v[0] as u32);
        let cmd = match kind {
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

    fn block(&mut self, b: &CBlock) -> f64 {
        let flow = self.exec(&b.stmts);
        if flow != Flow::Normal {
            self.pending = Some(flow);
            return f64::NAN;
        }
        match &b.value {
            Some(e) => self.eval(e),
            None => f64::NAN,
        }
    }

    /// Evaluates an expression. Slots and constants (most operands) are read in place and a
    /// `ta.*` call goes straight to its state machine; the rest goes through
    /// [`Self::eval_tree`]: a call per operand would cost more than the operand.
    #[inline(always)]
    fn eval(&mut self, e: &Ex) -> f64 {
        match e {
            Ex::Slot(s) => self.slots[*s as usize],
            Ex::Const(v) => *v,
            Ex::Ta(idx, args) => self.ta(*idx, args),
            _ => self.eval_tree(e),
        }
    }

    fn eval_tree(&mut self, e: &Ex) -> f64 {
        match e {
            Ex::Const(v) => *v,
            Ex::Slot(s) => self.slots[*s as usize],
            Ex::Hist { slot, ring, off, src } => {
                if let Some(src) = src {
                    let v = self.eval(src);
                    self.slots[*slot as usize] = v;
                }
                let k = self.eval(off);
                if k.is_nan() || k < 0.0 {
                    return f64::NAN;
                }
                let k = k as usize;
                if k == 0 {
                    self.slots[*slot as usize]
                } else {
                    self.rings[*ring as usize].get(k - 1)
                }
            }
            Ex::Unary(UnOp::Neg, x) => -self.eval(x),
            Ex::Unary(UnOp::Not, x) => f64::from(u8::from(!truthy(self.eval(x)))),
            Ex::Unary(UnOp::Plus, x) => self.eval(x),
            Ex::Bin(op, a, b) => {
                let a = self.eval(a);
                let b = self.eval(b);
                apply(*op, a, b)
            }
            Ex::And(a, b, lazy) => {
                let a = truthy(self.eval(a));
                let b = if a || !*lazy { truthy(self.eval(b)) } else { false };
                f64::from(u8::from(a && b))
            }
            Ex::Or(a, b, lazy) => {
                let a = truthy(self.eval(a));
                let b = if !a || !*lazy { truthy(self.eval(b)) } else { false };
                f64::from(u8::from(a || b))
            }
            Ex::Cond(c, a, b) => {
                if truthy(self.eval(c)) {
                    self.eval(a)
                } else {
                    self.eval(b)
                }
            }
            Ex::Call(f, args) => self.call(*f, args),
            Ex::Ta(idx, args) => self.ta(*idx, args),
            Ex::Block(b) => self.block(b),
            Ex::If(i) => {
                let (c, t, o) = &**i;
                if truthy(self.eval(c)) {
                    self.block(t)
                } else if let Some(o) = o {
                    self.block(o)
                } else {
                    f64::NAN
                }
            }
            Ex::Switch(s) => {
                let subject = s.subject.as_ref().map(|x| self.eval(x));
                for (case, body) in &s.arms {
                    let hit = match (case, subject) {
                        (None, _) => true,
                        (Some(c), Some(subj)) => self.eval(c) == subj,
                        (Some(c), None) => truthy(self.eval(c)),
                    };
                    if hit {
                        return self.block(body);
                    }
                }
                f64::NAN
            }
        }
    }

    /// A pure function call (out of line: its argument array would weigh on every evaluation).
    #[inline(never)]
    fn call(&mut self, f: Func, args: &[Ex]) -> f64 {
        let mut v = [f64::NAN; 8];
        let n = args.len().min(8);
        for (i, a) in args.iter().take(8).enumerate() {
            v[i] = self.eval(a);
        }
        call(f, &v[..n])
    }

    /// A `ta.*` call site: its arguments, then one step of its state machine.
    #[inline(never)]
    fn ta(&mut self, idx: u32, args: &[Ex]) -> f64 {
        let mut v = [f64::NAN; 3];
        for (i, a) in args.iter().take(3).enumerate() {
            v[i] = self.eval(a);
        }
        let b = |x: bool| f64::from(u8::from(x));
        match &mut self.ta[idx as usize] {
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
            TaState::Cross(s) => b(s.update(v[0], v[1])),
            TaState::Lag(s) => s.update(v[0]),
            TaState::BarsSince(s) => s.update(truthy(v[0])),
            TaState::ValueWhen(s) => s.update(truthy(v[0]), v[1]),
            TaState::Pivot(s) => s.update(v[0]),
            TaState::Cum(s) => s.update(v[0]),
            TaState::Macd(_) | TaState::Bb(_) => f64::NAN,
        }
    }
}
