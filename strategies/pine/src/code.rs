//! The flat form the runner executes: the compiled statement tree ([`St`], [`Ex`]) lowered once to
//! a list of register instructions ([`Ins`]) with jumps.
//!
//! Why: walking the tree costs a call and a `match` per node and copies every value through the
//! evaluator's return; a flat list runs in one loop, and every instruction writes its result
//! straight into the slot that wants it. `fast = ta.sma(close, 10)` is one instruction (the state
//! machine's step reading `close`'s slot, writing `fast`'s), where the tree took a statement, an
//! expression, a call and an argument array.
//!
//! Registers are slots: the program's own (bar values, variables) first, then constants (written
//! once when a runner is built, never reset), then temporaries (written before they are read on
//! every path, so never reset either). Control flow (`if`, `?:`, lazy `and`/`or`, `switch`, loops,
//! `break`/`continue`) is jumps; a `for…in` over `array.from(...)` is unrolled per item.

use std::collections::HashMap;

use crate::ast::UnOp;
use crate::error::Pos;
use crate::program::{CBlock, CSwitch, Ex, Func, Op, OrderKind, St, StrId, TaInit};

/// No register: an optional operand left out.
pub(crate) const NONE: u32 = u32::MAX;

/// Registers a `for` loop keeps for itself, from its base: the counter, the bound, the direction
/// (±1), the step and the iterations run on this bar.
pub(crate) const FOR_REGS: u32 = 5;

/// One instruction: registers are slot indices, jump targets instruction indices.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Ins {
    /// `dst = src`.
    Mov { dst: u32, src: u32 },
    /// `dst = -a`.
    Neg { dst: u32, a: u32 },
    /// `dst = not a` (1/0).
    Not { dst: u32, a: u32 },
    /// `dst = a` as a bool (1/0).
    Bool { dst: u32, a: u32 },
    /// `dst = a op b` with Pine's `na` rules ([`crate::runner::apply`]).
    Bin { op: Op, dst: u32, a: u32, b: u32 },
    /// `dst = a and b`, both already evaluated (Pine 5).
    And { dst: u32, a: u32, b: u32 },
    /// `dst = a or b`, both already evaluated (Pine 5).
    Or { dst: u32, a: u32, b: u32 },
    /// `dst = f(args..args + n)`: the arguments sit in consecutive registers.
    Call { f: Func, dst: u32, args: u32, n: u32 },
    /// `dst` = one step of `ta.*` call site `site` on registers `a`, `b`, `c` (unused ones `na`).
    Ta { site: u32, dst: u32, a: u32, b: u32, c: u32 },
    /// `dst = ta.sma(src, n)` at call site `site` (the commonest call, without the general
    /// call's argument registers and dispatch).
    Sma { site: u32, dst: u32, src: u32 },
    /// One step of `ta.*` call site `site` on registers `a`, `b`, `c`, as the condition of a
    /// branch: to `to` when its value is false or `na` (an `if ta.crossover(a, b)` in one step).
    TaJumpIfNot { site: u32, a: u32, b: u32, c: u32, to: u32 },
    /// A tuple-valued `ta.*` call site (`macd`, `bb`) on `arg`, into the targets of
    /// [`Code::targets`]`[targets]`.
    TaMulti { site: u32, arg: u32, targets: u32 },
    /// `dst = slot[off]`: 0 is the slot itself, k the ring's (k − 1)-th newest; `na` for an `na` or
    /// negative offset, or beyond the history kept.
    Hist { dst: u32, slot: u32, ring: u32, off: u32 },
    /// Go to `to`.
    Jump { to: u32 },
    /// Go to `to` when `cond` is false or `na`.
    JumpIfNot { cond: u32, to: u32 },
    /// Go to `to` when `cond` is true.
    JumpIf { cond: u32, to: u32 },
    /// Go to `to` unless `a == b` exactly (a `switch` arm against its subject).
    JumpIfNe { a: u32, b: u32, to: u32 },
    /// A `var` initialiser: go to `to` when flag `flag` is set (it ran before), else set it.
    Once { flag: u32, to: u32 },
    /// A `for` loop's start from registers `from`, `to` and `step` ([`NONE`]: 1) into its own
    /// registers at `base` ([`FOR_REGS`]); to `exit` when a bound is `na` or the step `na` or 0.
    ForSetup { base: u32, from: u32, to: u32, step: u32, exit: u32 },
    /// A `for` loop's test: to `exit` past the bound; else counts the iteration (past
    /// [`crate::MAX_LOOP_ITERATIONS`], an error at [`Code::positions`]`[pos]`) and sets `var`.
    ForTest { base: u32, var: u32, exit: u32, pos: u32 },
    /// A `for` loop's step, then back to its test at `head`.
    ForStep { base: u32, head: u32 },
    /// Counts a `while` iteration in `counter` (zeroed before the loop); past the limit, an error
    /// at [`Code::positions`]`[pos]`.
    Count { counter: u32, pos: u32 },
    /// Plot `plot` takes the value of `src`.
    Plot { plot: u32, src: u32 },
    /// The order call [`Code::orders`]`[site]`, its fields already evaluated.
    Order { site: u32 },
    /// The alert [`Code::alerts`]`[site]`, its condition already evaluated.
    Alert { site: u32 },
}

/// An order call: its kind and the register of each field in the kind's fixed order (see
/// [`crate::runner`]), [`NONE`] when absent.
#[derive(Debug, Clone, Copy)]
pub(crate) struct OrderSite {
    pub kind: OrderKind,
    pub fields: [u32; 12],
}

/// An `alert()` or `alertcondition()`: it fires when `cond` is true ([`NONE`]: always).
#[derive(Debug, Clone, Copy)]
pub(crate) struct AlertSite {
    pub message: StrId,
    pub title: Option<StrId>,
    pub cond: u32,
}

/// A program's instructions and the tables they index.
#[derive(Debug, Clone, Default)]
pub(crate) struct Code {
    pub ins: Vec<Ins>,
    /// The chart's statements are `ins[..main_end]`.
    pub main_end: u32,
    /// Each `request.security` call's expressions, `ins[start..end]`.
    pub securities: Vec<(u32, u32)>,
    /// The constant registers and their values (set when a runner is built).
    pub consts: Vec<(u32, f64)>,
    pub orders: Vec<OrderSite>,
    pub alerts: Vec<AlertSite>,
    /// Target registers of tuple-valued `ta.*` calls ([`NONE`] past the tuple's size).
    pub targets: Vec<[u32; 3]>,
    /// Loop positions, for the runaway-loop error.
    pub positions: Vec<Pos>,
    /// Registers in all: the program's slots, constants, temporaries.
    pub n_regs: usize,
}

impl Code {
    /// True when an instruction reads register `r`.
    pub(crate) fn reads(&self, r: u32) -> bool {
        let field = |f: &u32| *f == r;
        self.ins.iter().any(|i| match *i {
            Ins::Mov { src: a, .. }
            | Ins::Neg { a, .. }
            | Ins::Not { a, .. }
            | Ins::Bool { a, .. }
            | Ins::JumpIfNot { cond: a, .. }
            | Ins::JumpIf { cond: a, .. }
            | Ins::Plot { src: a, .. }
            | Ins::TaMulti { arg: a, .. } => a == r,
            Ins::Bin { a, b, .. } | Ins::And { a, b, .. } | Ins::Or { a, b, .. } | Ins::JumpIfNe { a, b, .. } => {
                a == r || b == r
            }
            Ins::Call { args, n, .. } => (args..args + n).contains(&r),
            Ins::Ta { a, b, c, .. } | Ins::TaJumpIfNot { a, b, c, .. } => a == r || b == r || c == r,
            Ins::Sma { src, .. } => src == r,
            Ins::Hist { slot, off, .. } => slot == r || off == r,
            Ins::ForSetup { from, to, step, .. } => from == r || to == r || step == r,
            Ins::Order { site } => self.orders[site as usize].fields.iter().any(field),
            Ins::Alert { site } => self.alerts[site as usize].cond == r,
            Ins::Jump { .. } | Ins::Once { .. } | Ins::ForTest { .. } | Ins::ForStep { .. } | Ins::Count { .. } => {
                false
            }
        })
    }
}

/// Where a loop's `break` and `continue` jumps go, patched when the targets are known.
#[derive(Default)]
struct LoopJumps {
    breaks: Vec<usize>,
    continues: Vec<usize>,
}

/// Lowers statement trees into [`Code`].
struct Lower<'p> {
    code: Code,
    /// The program's `ta.*` call sites.
    ta: &'p [TaInit],
    consts: HashMap<u64, u32>,
    loops: Vec<LoopJumps>,
    /// Where the values of expression statements go (read by nothing).
    sink: u32,
}

/// Lowers the chart's statements and each `request.security` call's expressions (written into
/// its result slots), given the program's `n_slots`.
pub(crate) fn lower(body: &[St], securities: &[(&[Ex], &[u32])], ta: &[TaInit], n_slots: usize) -> Code {
    let mut l = Lower {
        code: Code { n_regs: n_slots, ..Code::default() },
        ta,
        consts: HashMap::new(),
        loops: Vec::new(),
        sink: 0,
    };
    l.sink = l.temp();
    l.stmts(body);
    l.code.main_end = l.here();
    for (exprs, results) in securities {
        let start = l.here();
        for (e, r) in exprs.iter().zip(*results) {
            l.expr(e, *r);
        }
        l.code.securities.push((start, l.here()));
    }
    l.code
}

/// True when evaluating `e` may assign a slot (it holds statements): operands evaluated before it
/// are then copied first, so they keep the value they had when read.
fn assigns(e: &Ex) -> bool {
    match e {
        Ex::Const(_) | Ex::Slot(_) => false,
        Ex::Block(_) | Ex::If(_) | Ex::Switch(_) => true,
        Ex::Hist { off, src, .. } => assigns(off) || src.as_deref().is_some_and(assigns),
        Ex::Unary(_, x) => assigns(x),
        Ex::Bin(_, a, b) | Ex::And(a, b, _) | Ex::Or(a, b, _) => assigns(a) || assigns(b),
        Ex::Cond(c, a, b) => assigns(c) || assigns(a) || assigns(b),
        Ex::Call(_, args) | Ex::Ta(_, args) => args.iter().any(assigns),
    }
}

impl Lower<'_> {
    fn here(&self) -> u32 {
        self.code.ins.len() as u32
    }

    fn emit(&mut self, i: Ins) -> usize {
        self.code.ins.push(i);
        self.code.ins.len() - 1
    }

    /// Points the jump at `at` to `to`.
    fn patch(&mut self, at: usize, to: u32) {
        match &mut self.code.ins[at] {
            Ins::Jump { to: t }
            | Ins::JumpIfNot { to: t, .. }
            | Ins::JumpIf { to: t, .. }
            | Ins::JumpIfNe { to: t, .. }
            | Ins::TaJumpIfNot { to: t, .. }
            | Ins::Once { to: t, .. }
            | Ins::ForSetup { exit: t, .. }
            | Ins::ForTest { exit: t, .. } => *t = to,
            _ => {}
        }
    }

    fn temp(&mut self) -> u32 {
        self.temps(1)
    }

    /// `n` consecutive fresh registers.
    fn temps(&mut self, n: u32) -> u32 {
        let r = self.code.n_regs as u32;
        self.code.n_regs += n as usize;
        r
    }

    /// The register holding constant `v` (one per distinct value).
    fn konst(&mut self, v: f64) -> u32 {
        if let Some(r) = self.consts.get(&v.to_bits()) {
            return *r;
        }
        let r = self.temp();
        self.code.consts.push((r, v));
        self.consts.insert(v.to_bits(), r);
        r
    }

    /// The register holding `e`'s value: a slot or constant in place, else a temporary.
    fn operand(&mut self, e: &Ex) -> u32 {
        match e {
            Ex::Slot(s) => *s,
            Ex::Const(v) => self.konst(*v),
            _ => {
                let t = self.temp();
                self.expr(e, t);
                t
            }
        }
    }

    /// The registers of operands evaluated left to right ([`NONE`] for one left out).
    fn operands<const N: usize>(&mut self, es: [Option<&Ex>; N]) -> [u32; N] {
        let mut out = [NONE; N];
        self.operands_into(&es, &mut out);
        out
    }

    /// [`Self::operands`] into `out`. When a later operand may assign slots, the earlier slots are
    /// copied first (the tree read them before it ran).
    fn operands_into(&mut self, es: &[Option<&Ex>], out: &mut [u32]) {
        let copy = es.iter().flatten().any(|e| assigns(e));
        for (o, e) in out.iter_mut().zip(es) {
            let Some(e) = e else { continue };
            *o = if copy && matches!(e, Ex::Slot(_)) {
                let t = self.temp();
                self.expr(e, t);
                t
            } else {
                self.operand(e)
            };
        }
    }

    /// Evaluates `e` into `dst`, which is written last on every path (so `e` may read it).
    fn expr(&mut self, e: &Ex, dst: u32) {
        match e {
            Ex::Const(v) => {
                let src = self.konst(*v);
                self.emit(Ins::Mov { dst, src });
            }
            Ex::Slot(s) => {
                if *s != dst {
                    self.emit(Ins::Mov { dst, src: *s });
                }
            }
            Ex::Hist { slot, ring, off, src } => {
                if let Some(src) = src {
                    self.expr(src, *slot);
                }
                let off = self.operand(off);
                self.emit(Ins::Hist { dst, slot: *slot, ring: *ring, off });
            }
            Ex::Unary(UnOp::Plus, x) => self.expr(x, dst),
            Ex::Unary(UnOp::Neg, x) => {
                let a = self.operand(x);
                self.emit(Ins::Neg { dst, a });
            }
            Ex::Unary(UnOp::Not, x) => {
                let a = self.operand(x);
                self.emit(Ins::Not { dst, a });
            }
            Ex::Bin(op, a, b) => {
                let [a, b] = self.operands([Some(&**a), Some(&**b)]);
                self.emit(Ins::Bin { op: *op, dst, a, b });
            }
            Ex::And(a, b, false) => {
                let [a, b] = self.operands([Some(&**a), Some(&**b)]);
                self.emit(Ins::And { dst, a, b });
            }
            Ex::Or(a, b, false) => {
                let [a, b] = self.operands([Some(&**a), Some(&**b)]);
                self.emit(Ins::Or { dst, a, b });
            }
            Ex::And(a, b, true) => self.lazy(a, b, dst, true),
            Ex::Or(a, b, true) => self.lazy(a, b, dst, false),
            Ex::Cond(c, a, b) => {
                let skip = self.branch_unless(c);
                self.expr(a, dst);
                self.other(skip, |l| l.expr(b, dst));
            }
            Ex::Call(f, args) => {
                let n = args.len() as u32;
                let base = self.temps(n);
                for (i, a) in args.iter().enumerate() {
                    self.expr(a, base + i as u32);
                }
                self.emit(Ins::Call { f: *f, dst, args: base, n });
            }
            Ex::Ta(site, args) => {
                let [a, b, c] = self.ta_args(args);
                if matches!(self.ta.get(*site as usize), Some(TaInit::Sma(_))) {
                    self.emit(Ins::Sma { site: *site, dst, src: a });
                } else {
                    self.emit(Ins::Ta { site: *site, dst, a, b, c });
                }
            }
            Ex::Block(b) => self.block(b, dst),
            Ex::If(i) => {
                let (c, then, other) = &**i;
                let skip = self.branch_unless(c);
                self.block(then, dst);
                self.other(skip, |l| match other {
                    Some(o) => l.block(o, dst),
                    None => l.na_into(dst),
                });
            }
            Ex::Switch(s) => self.switch(s, dst),
        }
    }

    /// The registers of a `ta.*` call's arguments (`na` for those it does not take).
    fn ta_args(&mut self, args: &[Ex]) -> [u32; 3] {
        let regs = self.operands([args.first(), args.get(1), args.get(2)]);
        let na = self.konst(f64::NAN);
        regs.map(|r| if r == NONE { na } else { r })
    }

    /// A jump (to patch) taken when `cond` is false or `na`; a `ta.*` call as the condition is
    /// stepped by the jump itself.
    fn branch_unless(&mut self, cond: &Ex) -> usize {
        if let Ex::Ta(site, args) = cond {
            if !matches!(self.ta.get(*site as usize), Some(TaInit::Macd(..) | TaInit::Bb(..))) {
                let [a, b, c] = self.ta_args(args);
                return self.emit(Ins::TaJumpIfNot { site: *site, a, b, c, to: 0 });
            }
        }
        let c = self.operand(cond);
        self.emit(Ins::JumpIfNot { cond: c, to: 0 })
    }

    /// After a branch's taken side: a jump over the other side (lowered by `lower`), and `skip`
    /// (the branch) pointed at it. When the other side is empty, no jump.
    fn other(&mut self, skip: usize, lower: impl FnOnce(&mut Self)) {
        let end = self.emit(Ins::Jump { to: 0 });
        let start = self.here();
        lower(self);
        if self.here() == start {
            self.code.ins.pop();
            self.patch(skip, self.here());
        } else {
            self.patch(skip, start);
            self.patch(end, self.here());
        }
    }

    /// `dst = na`, unless nothing reads it.
    fn na_into(&mut self, dst: u32) {
        if dst != self.sink {
            let src = self.konst(f64::NAN);
            self.emit(Ins::Mov { dst, src });
        }
    }

    /// Pine 6's `and` (`is_and`) and `or`: the right side only when it decides.
    fn lazy(&mut self, a: &Ex, b: &Ex, dst: u32, is_and: bool) {
        let a = self.operand(a);
        let short = if is_and {
            self.emit(Ins::JumpIfNot { cond: a, to: 0 })
        } else {
            self.emit(Ins::JumpIf { cond: a, to: 0 })
        };
        let b = self.operand(b);
        self.emit(Ins::Bool { dst, a: b });
        let end = self.emit(Ins::Jump { to: 0 });
        self.patch(short, self.here());
        let src = self.konst(if is_and { 0.0 } else { 1.0 });
        self.emit(Ins::Mov { dst, src });
        self.patch(end, self.here());
    }

    fn block(&mut self, b: &CBlock, dst: u32) {
        self.stmts(&b.stmts);
        match &b.value {
            Some(v) => self.expr(v, dst),
            None => self.na_into(dst),
        }
    }

    fn switch(&mut self, s: &CSwitch, dst: u32) {
        // The subject is read once, before any arm runs.
        let subject = s.subject.as_ref().map(|x| {
            let t = self.temp();
            self.expr(x, t);
            t
        });
        let mut ends = Vec::new();
        let mut defaulted = false;
        for (case, body) in &s.arms {
            let miss = match (case, subject) {
                (None, _) => None,
                (Some(c), Some(subj)) => {
                    let c = self.operand(c);
                    Some(self.emit(Ins::JumpIfNe { a: c, b: subj, to: 0 }))
                }
                (Some(c), None) => {
                    let c = self.operand(c);
                    Some(self.emit(Ins::JumpIfNot { cond: c, to: 0 }))
                }
            };
            self.block(body, dst);
            ends.push(self.emit(Ins::Jump { to: 0 }));
            match miss {
                Some(m) => self.patch(m, self.here()),
                // An arm without a case always matches: the arms after it never run.
                None => {
                    defaulted = true;
                    break;
                }
            }
        }
        // No arm matched: `na` (never reached after a default arm).
        if !defaulted {
            self.na_into(dst);
        }
        let end = self.here();
        for e in ends {
            self.patch(e, end);
        }
    }

    fn stmts(&mut self, stmts: &[St]) {
        for s in stmts {
            self.stmt(s);
        }
    }

    /// Lowers a loop body with its `break`/`continue` jumps collected.
    fn loop_body(&mut self, body: &[St]) -> LoopJumps {
        self.loops.push(LoopJumps::default());
        self.stmts(body);
        self.loops.pop().unwrap_or_default()
    }

    fn position(&mut self, pos: Pos) -> u32 {
        self.code.positions.push(pos);
        self.code.positions.len() as u32 - 1
    }

    fn stmt(&mut self, s: &St) {
        match s {
            St::Set(slot, e) => self.expr(e, *slot),
            St::VarInit(slot, flag, e) => {
                let once = self.emit(Ins::Once { flag: *flag, to: 0 });
                self.expr(e, *slot);
                self.patch(once, self.here());
            }
            St::Eval(e) => {
                let sink = self.sink;
                self.expr(e, sink);
            }
            St::TaMulti(site, args, targets) => {
                let arg = match args.first() {
                    Some(a) => self.operand(a),
                    None => self.konst(f64::NAN),
                };
                let mut t = [NONE; 3];
                for (o, r) in t.iter_mut().zip(targets) {
                    *o = *r;
                }
                self.code.targets.push(t);
                let targets = self.code.targets.len() as u32 - 1;
                self.emit(Ins::TaMulti { site: *site, arg, targets });
            }
            St::For { var, from, to, step, body, pos } => {
                let [from, to, step] = self.operands([Some(from), Some(to), step.as_ref()]);
                let base = self.temps(FOR_REGS);
                let setup = self.emit(Ins::ForSetup { base, from, to, step, exit: 0 });
                let pos = self.position(*pos);
                let head = self.here();
                let test = self.emit(Ins::ForTest { base, var: *var, exit: 0, pos });
                let jumps = self.loop_body(body);
                let step_at = self.here();
                self.emit(Ins::ForStep { base, head });
                let exit = self.here();
                for at in [setup, test].into_iter().chain(jumps.breaks) {
                    self.patch(at, exit);
                }
                for at in jumps.continues {
                    self.patch(at, step_at);
                }
            }
            St::ForIn { index, item, items, body } => {
                let mut breaks = Vec::new();
                for (k, e) in items.iter().enumerate() {
                    self.expr(e, *item);
                    if let Some(ix) = index {
                        let src = self.konst(k as f64);
                        self.emit(Ins::Mov { dst: *ix, src });
                    }
                    let jumps = self.loop_body(body);
                    let next = self.here();
                    for at in jumps.continues {
                        self.patch(at, next);
                    }
                    breaks.extend(jumps.breaks);
                }
                let exit = self.here();
                for at in breaks {
                    self.patch(at, exit);
                }
            }
            St::While { cond, body, pos } => {
                let counter = self.temp();
                let zero = self.konst(0.0);
                self.emit(Ins::Mov { dst: counter, src: zero });
                let pos = self.position(*pos);
                let head = self.here();
                let c = self.operand(cond);
                let test = self.emit(Ins::JumpIfNot { cond: c, to: 0 });
                self.emit(Ins::Count { counter, pos });
                let jumps = self.loop_body(body);
                self.emit(Ins::Jump { to: head });
                let exit = self.here();
                for at in [test].into_iter().chain(jumps.breaks) {
                    self.patch(at, exit);
                }
                for at in jumps.continues {
                    self.patch(at, head);
                }
            }
            St::Break => {
                let at = self.emit(Ins::Jump { to: 0 });
                if let Some(l) = self.loops.last_mut() {
                    l.breaks.push(at);
                }
            }
            St::Continue => {
                let at = self.emit(Ins::Jump { to: 0 });
                if let Some(l) = self.loops.last_mut() {
                    l.continues.push(at);
                }
            }
            St::Order(kind, fields) => {
                let mut regs = [NONE; 12];
                let fields: Vec<Option<&Ex>> = fields.iter().map(Option::as_ref).collect();
                self.operands_into(&fields, &mut regs);
                self.code.orders.push(OrderSite { kind: *kind, fields: regs });
                let site = self.code.orders.len() as u32 - 1;
                self.emit(Ins::Order { site });
            }
            St::Plot(plot, e) => {
                let src = self.operand(e);
                self.emit(Ins::Plot { plot: *plot, src });
            }
            St::Alert { message, title, cond } => {
                let cond = cond.as_ref().map_or(NONE, |c| self.operand(c));
                self.code.alerts.push(AlertSite { message: *message, title: *title, cond });
                let site = self.code.alerts.len() as u32 - 1;
                self.emit(Ins::Alert { site });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Ins;
    use crate::program::BarInputs;

    fn program(body: &str) -> crate::Program {
        let src = format!("//@version=5\nstrategy(\"t\")\n{body}");
        crate::compile(&src, None, &[]).unwrap_or_else(|e| panic!("{e}")).program
    }

    /// The instruction kinds of a program's chart statements, by name.
    fn kinds(p: &crate::Program) -> Vec<String> {
        let code = &p.code;
        code.ins[..code.main_end as usize]
            .iter()
            .map(|i| format!("{i:?}").split([' ', '{']).next().unwrap_or_default().to_string())
            .collect()
    }

    #[test]
    fn an_sma_cross_lowers_to_one_instruction_per_call() {
        let p = program(
            "fastLen = input.int(10)\nslowLen = input.int(20)\nfast = ta.sma(close, fastLen)\nslow = ta.sma(close, slowLen)\nplot(fast)\nif ta.crossover(fast, slow)\n    strategy.entry(\"L\", strategy.long)\nif ta.crossunder(fast, slow)\n    strategy.close(\"L\")\n",
        );
        // The inputs are constants (nothing assigns them per bar), each `ta.sma` writes its variable
        // directly, a crossover is its own branch, and an `if` without `else` jumps over nothing.
        assert_eq!(kinds(&p), ["Sma", "Sma", "Plot", "TaJumpIfNot", "Order", "TaJumpIfNot", "Order"]);
        let Ins::Sma { dst, src, .. } = p.code.ins[0] else { panic!("{:?}", p.code.ins[0]) };
        assert_eq!(src, 3, "reads close's slot in place");
        assert!(p.plain_slots.contains(&dst), "fast is reset each bar");
    }

    #[test]
    fn values_land_in_their_slot_and_else_branches_jump_only_when_present() {
        let p = program("x = close > open ? 1 : 2\ny = if close > 0\n    5\nplot(x + y)\n");
        assert_eq!(
            kinds(&p),
            ["Bin", "JumpIfNot", "Mov", "Jump", "Mov", "Bin", "JumpIfNot", "Mov", "Jump", "Mov", "Bin", "Plot"],
            "y's missing else is na: it jumps"
        );
    }

    #[test]
    fn a_host_learns_which_bar_values_a_script_reads() {
        let only = |open, high, low, close, volume| BarInputs { open, high, low, close, volume };
        let cases = [
            ("plot(ta.sma(close, 3))\n", only(false, false, false, true, false)),
            ("plot(hl2)\n", only(false, true, true, false, false)),
            ("plot(ta.atr(3))\n", only(false, true, true, true, false)),
            ("plot(ohlc4 + volume)\n", only(true, true, true, true, true)),
            ("plot(ta.vwma(open, 3))\n", only(true, false, false, false, true)),
            (
                "x = request.security(syminfo.tickerid, \"60\", bar_index)\nplot(x)\n",
                only(true, true, true, true, true),
            ),
        ];
        for (body, want) in cases {
            assert_eq!(program(body).bar_inputs(), want, "{body}");
        }
    }

    #[test]
    fn a_host_learns_whether_a_script_reads_strategy_state() {
        let cases = [
            ("plot(ta.sma(close, 3))\nstrategy.entry(\"L\", strategy.long)\n", false),
            ("if strategy.position_size == 0\n    strategy.entry(\"L\", strategy.long)\n", true),
            ("plot(strategy.equity)\n", true),
            ("f(x) => x + strategy.netprofit\nplot(f(close))\n", true),
            ("plot(strategy.opentrades > 0 ? 1 : 0)\n", true),
            ("plot(bar_index + time)\n", false),
        ];
        for (body, want) in cases {
            assert_eq!(program(body).reads_strategy_state(), want, "{body}");
        }
    }
}
