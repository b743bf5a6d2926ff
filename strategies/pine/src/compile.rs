//! The checker and compiler: refuses anything outside Keel's Pine subset (naming the construct at
//! its `line:col`), resolves names to slots, types expressions, folds the simple values `ta.*`
//! lengths need (literals and inputs), inlines user functions per call site (so each call keeps its
//! own `ta.*` state and history, as in Pine), and sizes each history ring buffer.

use std::collections::{HashMap, HashSet};

use crate::ast::*;
use crate::error::{Diagnostic, Diagnostics, Pos};
use crate::parser::parse;
use crate::program::*;
use crate::ta::{CrossKind, LagKind};

/// How many user-function call sites a script may expand to (each gets its own copy and state).
const MAX_INLINED: usize = 10_000;

/// A bound on `x[n]` when `n` is not a simple value (Pine's default `max_bars_back` is of this order).
const DYNAMIC_HISTORY: usize = 5000;

/// Static types (all values are f64 at run time).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ty {
    Int,
    Float,
    Bool,
    Str,
    /// `na` before it meets a type.
    Na,
    /// Colors: accepted for the output calls, never computed with.
    Color,
    /// No value (order calls, blocks ending in a statement).
    Void,
}

impl Ty {
    fn name(self) -> &'static str {
        match self {
            Ty::Int => "int",
            Ty::Float => "float",
            Ty::Bool => "bool",
            Ty::Str => "string",
            Ty::Na => "na",
            Ty::Color => "color",
            Ty::Void => "void",
        }
    }
    fn numeric(self) -> bool {
        matches!(self, Ty::Int | Ty::Float | Ty::Na)
    }
}

/// A compiled expression with its type and, when simple (known before the first bar), its value.
struct CE {
    ex: Ex,
    ty: Ty,
    konst: Option<f64>,
}

impl CE {
    fn konst(v: f64, ty: Ty) -> CE {
        CE { ex: Ex::Const(v), ty, konst: Some(v) }
    }
    fn series(ex: Ex, ty: Ty) -> CE {
        CE { ex, ty, konst: None }
    }
}

#[derive(Clone)]
struct Var {
    slot: u32,
    ty: Ty,
    konst: Option<f64>,
}

type R<T> = Result<T, Diagnostic>;

fn err<T>(pos: Pos, msg: impl Into<String>) -> R<T> {
    Err(Diagnostic::error(pos, msg))
}

/// What a script compiled into, with the warnings it raised (repainting constructs).
#[derive(Debug, Clone)]
pub struct Compiled {
    /// The program to run.
    pub program: Program,
    /// Warnings; `keel pine check --strict` treats them as errors.
    pub warnings: Vec<Diagnostic>,
}

/// Every diagnostic of a script (errors and repainting warnings), for `keel pine check`: compiled
/// with its default inputs.
pub fn check(src: &str, file: Option<&str>) -> Diagnostics {
    match compile(src, file, &[]) {
        Ok(c) => Diagnostics(c.warnings),
        Err(d) => d,
    }
}

/// Parses, checks and compiles a script. `file` names it in diagnostics; `inputs` override inputs by
/// variable name or title. On refusal, the diagnostics hold the error and any warnings before it.
pub fn compile(src: &str, file: Option<&str>, inputs: &[(String, InputValue)]) -> Result<Compiled, Diagnostics> {
    let name = |mut d: Diagnostic| {
        d.file = file.map(str::to_string);
        d
    };
    let script = parse(src).map_err(|e| Diagnostics(vec![name(e)]))?;
    let mut c = Compiler::new(inputs);
    // An override's key that is a global variable's name is that variable, never another input's
    // title: a name wins over a title.
    c.global_names = script
        .body
        .stmts
        .iter()
        .filter_map(|s| match &s.kind {
            crate::ast::StmtKind::Decl { name, .. } => Some(name.clone()),
            _ => None,
        })
        .collect();
    c.lazy_logic = script.version >= 6;
    let result = c.script(&script.body);
    let mut diags: Vec<Diagnostic> = c.warnings.drain(..).map(name).collect();
    if let Err(e) = result {
        diags.push(name(e));
        return Err(Diagnostics(diags));
    }
    let unused: Vec<&String> = inputs.iter().map(|(k, _)| k).filter(|k| !c.used_overrides.contains(*k)).collect();
    if let Some(k) = unused.first() {
        let known: Vec<&str> = c.inputs.iter().map(|i| i.name.as_str()).collect();
        diags.push(name(Diagnostic::error(
            Pos { line: 1, col: 1 },
            format!("no input named '{k}' in the script (its inputs: {})", known.join(", ")),
        )));
        return Err(Diagnostics(diags));
    }
    let Some(decl) = c.decl.take() else {
        diags.push(name(Diagnostic::error(Pos { line: 1, col: 1 }, "missing strategy() declaration")));
        return Err(Diagnostics(diags));
    };
    let plain_slots =
        (0..c.n_slots as u32).filter(|s| !c.var_slots.contains(s) && *s as usize >= BAR_SLOTS.len()).collect();
    let securities: Vec<(&[Ex], &[u32])> =
        c.security_exprs.iter().zip(&c.securities).map(|(e, s)| (e.as_slice(), s.results.as_slice())).collect();
    let code = crate::code::lower(&c.body_out, &securities, &c.ta, c.n_slots);
    let bar_reads = (0..BAR_SLOTS.len() as u32).filter(|r| code.reads(*r)).collect();
    let program = Program {
        version: script.version,
        file: file.map(str::to_string),
        decl,
        inputs: c.inputs,
        plots: c.plots,
        order_calls: c.order_calls,
        strings: c.strings,
        code,
        bar_reads,
        plain_slots,
        n_var_flags: c.n_var_flags,
        rings: c.rings,
        ta: c.ta,
        ta_ctx: c.ta_ctx,
        securities: c.securities,
    };
    Ok(Compiled { program, warnings: diags })
}

struct Compiler<'a> {
    overrides: &'a [(String, InputValue)],
    used_overrides: HashSet<String>,
    /// The script's global variable names (see [`compile`]).
    global_names: HashSet<String>,
    scopes: Vec<HashMap<String, Var>>,
    fns: HashMap<String, (Vec<Param>, Block)>,
    /// Names reassigned anywhere with `:=`: never simple values.
    reassigned: HashSet<String>,
    n_slots: usize,
    var_slots: HashSet<u32>,
    n_var_flags: usize,
    rings: Vec<(u32, usize, u32)>,
    /// (context, slot) to its ring: a series read inside `request.security` keeps its own history.
    ring_of: HashMap<(u32, u32), u32>,
    ta: Vec<TaInit>,
    /// The history context of each `ta.*` call site (0 the chart, k the k-th `request.security`).
    ta_ctx: Vec<u32>,
    strings: Vec<String>,
    inputs: Vec<InputDecl>,
    plots: Vec<PlotDecl>,
    order_calls: Vec<OrderCall>,
    decl: Option<StrategyDecl>,
    warnings: Vec<Diagnostic>,
    body_out: Vec<St>,
    /// Depth of conditional scope (if/switch/?:/loops), for the `ta.*` warning.
    cond_depth: usize,
    /// Depth of loops, for `break`/`continue`.
    loop_depth: usize,
    /// The variable a declaration assigns, for naming inputs.
    decl_name: Option<String>,
    /// User functions being inlined (recursion is refused).
    inlining: Vec<String>,
    /// Pine 6 evaluates `and`/`or` lazily; Pine 5 evaluates both sides.
    lazy_logic: bool,
    /// User-function call sites inlined so far (each is a copy: bounded against blow-up).
    inlined: usize,
    /// The `request.security` calls compiled so far.
    securities: Vec<Security>,
    /// Each `request.security` call's expressions (lowered with the body).
    security_exprs: Vec<Vec<Ex>>,
    /// The history context being compiled: 0 the chart, k inside the k-th `request.security`.
    ctx: u32,
    /// Inside `request.security`: the scope depth where its expression starts (names declared
    /// below it are the chart's series, which the expression cannot read).
    sec_scope_base: usize,
}

fn collect_reassigned(b: &Block, out: &mut HashSet<String>) {
    for s in &b.stmts {
        match &s.kind {
            StmtKind::Assign { name, .. } => {
                out.insert(name.clone());
            }
            StmtKind::FnDef { body, .. } | StmtKind::While { body, .. } => collect_reassigned(body, out),
            StmtKind::For { var, body, .. } => {
                out.insert(var.clone());
                collect_reassigned(body, out);
            }
            StmtKind::ForIn { body, item, index, .. } => {
                out.insert(item.clone());
                if let Some(i) = index {
                    out.insert(i.clone());
                }
                collect_reassigned(body, out);
            }
            StmtKind::Expr(e) | StmtKind::Decl { value: e, .. } | StmtKind::TupleDecl { value: e, .. } => {
                collect_in_expr(e, out)
            }
            _ => {}
        }
    }
}

fn collect_in_expr(e: &Expr, out: &mut HashSet<String>) {
    match &e.kind {
        ExprKind::If(i) => {
            collect_reassigned(&i.then, out);
            if let Some(b) = &i.otherwise {
                collect_reassigned(b, out);
            }
        }
        ExprKind::Switch(s) => {
            for (_, b) in &s.arms {
                collect_reassigned(b, out);
            }
        }
        _ => {}
    }
}

/// Arguments bound to a function's parameter names.
struct Bound<'e> {
    args: Vec<Option<&'e Expr>>,
}

impl<'e> Bound<'e> {
    fn get(&self, i: usize) -> Option<&'e Expr> {
        self.args.get(i).copied().flatten()
    }
}

/// Namespaces of chart styling constants (`color.red`, `shape.triangleup`...): accepted as values
/// that only output calls use.
const STYLE_NAMESPACES: &[&str] = &[
    "color.",
    "shape.",
    "location.",
    "size.",
    "plot.style_",
    "plot.linestyle_",
    "hline.style_",
    "display.",
    "format.",
    "text.",
    "position.",
];

/// Named arguments of output calls that only style the chart: accepted, not evaluated.
const COSMETIC: &[&str] = &[
    "color",
    "linewidth",
    "style",
    "trackprice",
    "histbase",
    "offset",
    "join",
    "editable",
    "show_last",
    "display",
    "format",
    "precision",
    "force_overlay",
    "linestyle",
    "location",
    "text",
    "textcolor",
    "size",
    "char",
    "transp",
    "title",
    "overlay",
    "shorttitle",
    "max_bars_back",
    "timeframe",
    "timeframe_gaps",
    "explicit_plot_zorder",
    "max_lines_count",
    "max_labels_count",
    "max_boxes_count",
    "currency",
    "slippage",
    "margin_long",
    "margin_short",
    "backtest_fill_limits_assumption",
    "dynamic_requests",
    "behind_chart",
    "fill_orders_on_standard_ohlc",
    "use_bar_magnifier",
    "risk_free_rate",
    "close_entries_rule",
    "max_polylines_count",
    "calc_on_order_fills",
];

impl<'a> Compiler<'a> {
    fn new(overrides: &'a [(String, InputValue)]) -> Self {
        let mut globals = HashMap::new();
        for (i, n) in BAR_SLOTS.iter().enumerate() {
            let ty = if matches!(*n, "time" | "bar_index") { Ty::Int } else { Ty::Float };
            globals.insert(n.to_string(), Var { slot: i as u32, ty, konst: None });
        }
        Compiler {
            overrides,
            used_overrides: HashSet::new(),
            global_names: HashSet::new(),
            scopes: vec![globals],
            fns: HashMap::new(),
            reassigned: HashSet::new(),
            n_slots: BAR_SLOTS.len(),
            var_slots: HashSet::new(),
            n_var_flags: 0,
            rings: Vec::new(),
            ring_of: HashMap::new(),
            ta: Vec::new(),
            ta_ctx: Vec::new(),
            strings: Vec::new(),
            inputs: Vec::new(),
            plots: Vec::new(),
            order_calls: Vec::new(),
            decl: None,
            warnings: Vec::new(),
            body_out: Vec::new(),
            cond_depth: 0,
            loop_depth: 0,
            decl_name: None,
            inlining: Vec::new(),
            lazy_logic: false,
            inlined: 0,
            securities: Vec::new(),
            security_exprs: Vec::new(),
            ctx: 0,
            sec_scope_base: 0,
        }
    }

    fn script(&mut self, body: &Block) -> R<()> {
        collect_reassigned(body, &mut self.reassigned);
        let mut out = Vec::new();
        for s in &body.stmts {
            self.stmt(s, &mut out, true)?;
        }
        self.body_out = out;
        Ok(())
    }

    fn new_slot(&mut self) -> u32 {
        self.n_slots += 1;
        (self.n_slots - 1) as u32
    }

    fn intern(&mut self, s: &str) -> StrId {
        if let Some(i) = self.strings.iter().position(|x| x == s) {
            return StrId(i as u32);
        }
        self.strings.push(s.to_string());
        StrId(self.strings.len() as u32 - 1)
    }

    fn lookup(&self, name: &str) -> Option<&Var> {
        self.scopes.iter().rev().find_map(|s| s.get(name))
    }

    fn declare(&mut self, name: &str, var: Var) {
        if let Some(s) = self.scopes.last_mut() {
            s.insert(name.to_string(), var);
        }
    }

    fn ring(&mut self, slot: u32, depth: usize) -> u32 {
        if let Some(r) = self.ring_of.get(&(self.ctx, slot)) {
            let r = *r;
            self.rings[r as usize].1 = self.rings[r as usize].1.max(depth);
            return r;
        }
        self.rings.push((slot, depth, self.ctx));
        let r = self.rings.len() as u32 - 1;
        self.ring_of.insert((self.ctx, slot), r);
        r
    }

    // ---- statements ----

    fn block(&mut self, b: &Block, want_value: bool) -> R<(CBlock, Ty)> {
        self.scopes.push(HashMap::new());
        let mut stmts = Vec::new();
        let mut value = None;
        let mut ty = Ty::Void;
        let r = (|| {
            for (i, s) in b.stmts.iter().enumerate() {
                let last = i + 1 == b.stmts.len();
                if last && want_value {
                    if let StmtKind::Expr(e) = &s.kind {
                        if !self.is_effect(e) {
                            let ce = self.expr(e)?;
                            ty = ce.ty;
                            value = Some(ce.ex);
                            continue;
                        }
                    }
                }
                self.stmt(s, &mut stmts, false)?;
            }
            Ok(())
        })();
        self.scopes.pop();
        r?;
        Ok((CBlock { stmts, value }, ty))
    }

    fn is_effect(&self, e: &Expr) -> bool {
        match &e.kind {
            ExprKind::Call(name, _) => {
                name.starts_with("strategy")
                    || matches!(
                        name.as_str(),
                        "plot"
                            | "plotshape"
                            | "plotchar"
                            | "hline"
                            | "bgcolor"
                            | "fill"
                            | "alert"
                            | "alertcondition"
                            | "indicator"
                            | "barcolor"
                    )
            }
            ExprKind::If(_) | ExprKind::Switch(_) => false,
            _ => false,
        }
    }

    fn stmt(&mut self, s: &Stmt, out: &mut Vec<St>, global: bool) -> R<()> {
        let pos = s.pos;
        match &s.kind {
            StmtKind::Decl { mode, ty, name, value } => {
                if self.scopes.last().is_some_and(|sc| sc.contains_key(name)) || BAR_SLOTS.contains(&name.as_str()) {
                    return err(pos, format!("'{name}' is already declared in this scope (reassign it with ':=')"));
                }
                if *mode == DeclMode::Varip {
                    self.warnings.push(Diagnostic::warning(
                        pos,
                        format!("varip '{name}' keeps its value across the ticks of a live bar; Keel runs closed bars, so it behaves as var (repaints against TradingView)"),
                    ));
                }
                self.decl_name = Some(name.clone());
                let ce = self.expr(value);
                self.decl_name = None;
                let ce = ce?;
                let declared = match ty.as_deref() {
                    Some("int") => Some(Ty::Int),
                    Some("float") => Some(Ty::Float),
                    Some("bool") => Some(Ty::Bool),
                    Some("string") => Some(Ty::Str),
                    Some(_) => Some(Ty::Color),
                    None => None,
                };
                let vty = match declared {
                    Some(d) => {
                        self.assignable(d, ce.ty, pos, name)?;
                        d
                    }
                    None => match ce.ty {
                        Ty::Na => {
                            return err(
                                pos,
                                format!(
                                "the type of '{name}' cannot be inferred from na: declare it, e.g. 'float {name} = na'"
                            ),
                            )
                        }
                        Ty::Void => {
                            return err(
                                value.pos,
                                format!("'{name}' is assigned something with no value (a block ending in a statement, or branches of different types)"),
                            )
                        }
                        t => t,
                    },
                };
                let slot = self.new_slot();
                let konst = if *mode == DeclMode::Plain && !self.reassigned.contains(name) { ce.konst } else { None };
                if konst.is_some() && matches!(ce.ex, Ex::Const(_)) {
                    // Every read of the name is the constant itself: the slot is never read, so
                    // nothing assigns it on each bar (nor resets it).
                    self.var_slots.insert(slot);
                } else if *mode == DeclMode::Plain {
                    out.push(St::Set(slot, ce.ex));
                } else {
                    self.var_slots.insert(slot);
                    let flag = self.n_var_flags as u32;
                    self.n_var_flags += 1;
                    out.push(St::VarInit(slot, flag, ce.ex));
                }
                self.declare(name, Var { slot, ty: vty, konst });
            }
            StmtKind::Assign { name, op, value } => {
                let Some(var) = self.lookup(name).cloned() else {
                    return err(
                        pos,
                        format!("unknown variable '{name}' (declare it with '=' before reassigning with ':=')"),
                    );
                };
                if (var.slot as usize) < BAR_SLOTS.len() {
                    return err(pos, format!("'{name}' is a built-in series and cannot be reassigned"));
                }
                let ce = self.expr(value)?;
                let ce = match op {
                    None => ce,
                    Some(op) => {
                        let lhs = CE::series(Ex::Slot(var.slot), var.ty);
                        self.binary(*op, lhs, ce, pos)?
                    }
                };
                self.assignable(var.ty, ce.ty, pos, name)?;
                out.push(St::Set(var.slot, ce.ex));
            }
            StmtKind::TupleDecl { names, value } => self.tuple_decl(names, value, pos, out)?,
            StmtKind::FnDef { name, params, body } => {
                if !global {
                    return err(pos, format!("function '{name}' must be declared at global scope"));
                }
                if self.fns.contains_key(name) || self.builtin_exists(name) {
                    return err(pos, format!("function '{name}' is already declared or is a built-in"));
                }
                self.fns.insert(name.clone(), (params.clone(), body.clone()));
            }
            StmtKind::For { var, from, to, step, body } => {
                let from = self.numeric(from, "the 'for' start")?;
                let to = self.numeric(to, "the 'for' end")?;
                let step = match step {
                    Some(s) => Some(self.numeric(s, "the 'for' step")?.ex),
                    None => None,
                };
                let slot = self.new_slot();
                let ty = if from.ty == Ty::Int && to.ty == Ty::Int { Ty::Int } else { Ty::Float };
                self.scopes.push(HashMap::from([(var.clone(), Var { slot, ty, konst: None })]));
                let body = self.loop_body(body);
                self.scopes.pop();
                out.push(St::For { var: slot, from: from.ex, to: to.ex, step, body: body?, pos });
            }
            StmtKind::ForIn { index, item, iter, body } => {
                let ExprKind::Call(callee, args) = &iter.kind else {
                    return err(
                        iter.pos,
                        "for…in iterates over array.from(...) only: arrays are outside Keel's Pine subset",
                    );
                };
                if callee != "array.from" || args.iter().any(|a| a.name.is_some()) {
                    return err(iter.pos, format!("for…in over {callee}(): only array.from(...) is supported"));
                }
                let mut items = Vec::new();
                let mut ty = Ty::Na;
                for a in args {
                    let ce = self.expr(&a.value)?;
                    ty = self.unify(ty, ce.ty, a.value.pos)?;
                    items.push(ce.ex);
                }
                let item_slot = self.new_slot();
                let mut scope = HashMap::from([(item.clone(), Var { slot: item_slot, ty, konst: None })]);
                let index_slot = index.as_ref().map(|i| {
                    let s = self.new_slot();
                    scope.insert(i.clone(), Var { slot: s, ty: Ty::Int, konst: None });
                    s
                });
                self.scopes.push(scope);
                let body = self.loop_body(body);
                self.scopes.pop();
                out.push(St::ForIn { index: index_slot, item: item_slot, items, body: body? });
            }
            StmtKind::While { cond, body } => {
                let c = self.cond(cond)?;
                let body = self.loop_body(body)?;
                out.push(St::While { cond: c, body, pos });
            }
            StmtKind::Break | StmtKind::Continue => {
                if self.loop_depth == 0 {
                    return err(pos, "break/continue outside a loop");
                }
                out.push(if s.kind == StmtKind::Break { St::Break } else { St::Continue });
            }
            StmtKind::Expr(e) => {
                if let ExprKind::Call(name, args) = &e.kind {
                    if self.is_effect(e) {
                        return self.effect(name, args, e.pos, out, global);
                    }
                }
                let ce = self.expr(e)?;
                out.push(St::Eval(ce.ex));
            }
        }
        Ok(())
    }

    fn loop_body(&mut self, body: &Block) -> R<Vec<St>> {
        self.loop_depth += 1;
        self.cond_depth += 1;
        let r = self.block(body, false);
        self.loop_depth -= 1;
        self.cond_depth -= 1;
        Ok(r?.0.stmts)
    }

    fn assignable(&self, to: Ty, from: Ty, pos: Pos, name: &str) -> R<()> {
        let ok = to == from || from == Ty::Na || (to == Ty::Float && from == Ty::Int) || to == Ty::Color;
        if ok {
            Ok(())
        } else {
            err(pos, format!("cannot assign a {} value to '{name}', which is {}", from.name(), to.name()))
        }
    }

    fn unify(&self, a: Ty, b: Ty, pos: Pos) -> R<Ty> {
        Ok(match (a, b) {
            (x, y) if x == y => x,
            (Ty::Na, y) | (y, Ty::Na) => y,
            (Ty::Void, _) | (_, Ty::Void) => Ty::Void,
            (Ty::Int, Ty::Float) | (Ty::Float, Ty::Int) => Ty::Float,
            (x, y) => return err(pos, format!("branches have different types: {} and {}", x.name(), y.name())),
        })
    }

    fn tuple_decl(&mut self, names: &[String], value: &Expr, pos: Pos, out: &mut Vec<St>) -> R<()> {
        let ExprKind::Call(callee, args) = &value.kind else {
            return err(value.pos, "a tuple declaration '[a, b] = ...' takes a function call returning a tuple");
        };
        if callee == "request.security" {
            let (slots, tys) = self.security(args, value.pos, Some(names.len()))?;
            for ((name, slot), ty) in names.iter().zip(slots).zip(tys) {
                self.declare(name, Var { slot, ty, konst: None });
            }
            return Ok(());
        }
        let slots: Vec<u32> = names.iter().map(|_| self.new_slot()).collect();
        let width = if callee == "ta.macd" || callee == "ta.bb" {
            let ce = self.ta_call(callee, args, value.pos)?;
            let Ex::Ta(idx, a) = ce.ex else { return err(value.pos, format!("{callee} returns a tuple")) };
            out.push(St::TaMulti(idx, a, slots.clone()));
            3
        } else if let Some((params, body)) = self.fns.get(callee).cloned() {
            let (mut pre, bound_scope) = self.bind_user_args(callee, &params, args, value.pos)?;
            self.inlining.push(callee.clone());
            self.scopes.push(bound_scope);
            let loops = std::mem::replace(&mut self.loop_depth, 0);
            let r = (|| {
                let n = body.stmts.len();
                for s in &body.stmts[..n.saturating_sub(1)] {
                    self.stmt(s, &mut pre, false)?;
                }
                let Some(Stmt { kind: StmtKind::Expr(Expr { kind: ExprKind::Tuple(items), .. }), .. }) =
                    body.stmts.last()
                else {
                    return err(value.pos, format!("function '{callee}' does not end with a tuple [a, b]"));
                };
                if items.len() != names.len() {
                    return err(pos, format!("'{callee}' returns {} values, {} names given", items.len(), names.len()));
                }
                let mut tys = Vec::new();
                for (item, slot) in items.iter().zip(&slots) {
                    let ce = self.expr(item)?;
                    tys.push(ce.ty);
                    pre.push(St::Set(*slot, ce.ex));
                }
                Ok(tys)
            })();
            self.loop_depth = loops;
            self.scopes.pop();
            self.inlining.pop();
            let tys = r?;
            out.append(&mut pre);
            for ((name, slot), ty) in names.iter().zip(&slots).zip(tys) {
                self.declare(name, Var { slot: *slot, ty: if ty == Ty::Na { Ty::Float } else { ty }, konst: None });
            }
            return Ok(());
        } else {
            return err(
                value.pos,
                format!("'{callee}' does not return a tuple (tuples come from ta.macd, ta.bb and user functions)"),
            );
        };
        if names.len() != width {
            return err(pos, format!("{callee} returns {width} values, {} names given", names.len()));
        }
        for (name, slot) in names.iter().zip(slots) {
            self.declare(name, Var { slot, ty: Ty::Float, konst: None });
        }
        Ok(())
    }

    // ---- effects: declaration, orders, output ----

    fn bind<'e>(&self, callee: &str, params: &[&str], required: usize, args: &'e [Arg], pos: Pos) -> R<Bound<'e>> {
        self.bind_with(callee, params, required, args, pos, &[])
    }

    fn bind_with<'e>(
        &self,
        callee: &str,
        params: &[&str],
        required: usize,
        args: &'e [Arg],
        pos: Pos,
        ignored: &[&str],
    ) -> R<Bound<'e>> {
        let mut bound: Vec<Option<&Expr>> = vec![None; params.len()];
        let mut positional = 0;
        for a in args {
            match &a.name {
                None => {
                    if positional >= params.len() {
                        return err(a.value.pos, format!("too many arguments to {callee}()"));
                    }
                    bound[positional] = Some(&a.value);
                    positional += 1;
                }
                Some(n) => match params.iter().position(|p| p == n) {
                    Some(i) => bound[i] = Some(&a.value),
                    None if ignored.contains(&n.as_str()) => {}
                    None => return err(a.value.pos, format!("{callee}() has no argument '{n}' in Keel's Pine subset")),
                },
            }
        }
        for (i, p) in params.iter().enumerate().take(required) {
            if bound[i].is_none() {
                return err(pos, format!("{callee}() needs its '{p}' argument"));
            }
        }
        Ok(Bound { args: bound })
    }

    fn literal_text(&self, e: &Expr, what: &str) -> R<String> {
        match &e.kind {
            ExprKind::Int(i) => Ok(i.to_string()),
            // Rust prints the shortest text that reads back as the same f64: the literal's digits.
            ExprKind::Float(f) => Ok(format!("{f}")),
            _ => err(e.pos, format!("{what} must be a number literal")),
        }
    }

    fn bool_literal(&self, e: &Expr, what: &str) -> R<bool> {
        match e.kind {
            ExprKind::Bool(b) => Ok(b),
            _ => err(e.pos, format!("{what} must be true or false")),
        }
    }

    fn str_literal(&self, e: &Expr, what: &str) -> R<String> {
        match &e.kind {
            ExprKind::Str(s) => Ok(s.clone()),
            _ => err(e.pos, format!("{what} must be a string literal")),
        }
    }

    fn declaration(&mut self, args: &[Arg], pos: Pos, global: bool) -> R<()> {
        if !global || self.decl.is_some() {
            return err(pos, "strategy() must be declared once, at global scope");
        }
        let params = [
            "title",
            "initial_capital",
            "default_qty_type",
            "default_qty_value",
            "pyramiding",
            "commission_type",
            "commission_value",
            "process_orders_on_close",
            "calc_on_every_tick",
        ];
        let b = self.bind_with("strategy", &params, 1, args, pos, COSMETIC)?;
        let mut d = StrategyDecl {
            title: self.str_literal(
                b.get(0).ok_or_else(|| Diagnostic::error(pos, "strategy() needs a title"))?,
                "the strategy title",
            )?,
            initial_capital: "1000000".into(),
            default_qty_type: QtyType::Fixed,
            default_qty_value: "1".into(),
            pyramiding: 0,
            commission_type: CommissionType::Percent,
            commission_value: "0".into(),
            process_orders_on_close: false,
        };
        if let Some(e) = b.get(1) {
            d.initial_capital = self.literal_text(e, "initial_capital")?;
        }
        if let Some(e) = b.get(2) {
            d.default_qty_type = match &e.kind {
                ExprKind::Name(n) if n == "strategy.fixed" => QtyType::Fixed,
                ExprKind::Name(n) if n == "strategy.cash" => QtyType::Cash,
                ExprKind::Name(n) if n == "strategy.percent_of_equity" => QtyType::PercentOfEquity,
                _ => {
                    return err(
                        e.pos,
                        "default_qty_type must be strategy.fixed, strategy.cash or strategy.percent_of_equity",
                    )
                }
            };
        }
        if let Some(e) = b.get(3) {
            d.default_qty_value = self.literal_text(e, "default_qty_value")?;
        }
        if let Some(e) = b.get(4) {
            d.pyramiding = match e.kind {
                ExprKind::Int(i) if (0..=1000).contains(&i) => i as u32,
                _ => return err(e.pos, "pyramiding must be an int literal from 0 to 1000"),
            };
        }
        if let Some(e) = b.get(5) {
            d.commission_type = match &e.kind {
                ExprKind::Name(n) if n == "strategy.commission.percent" => CommissionType::Percent,
                ExprKind::Name(n) if n == "strategy.commission.cash_per_order" => CommissionType::CashPerOrder,
                ExprKind::Name(n) if n == "strategy.commission.cash_per_contract" => CommissionType::CashPerContract,
                _ => {
                    return err(
                        e.pos,
                        "commission_type must be strategy.commission.percent, .cash_per_order or .cash_per_contract",
                    )
                }
            };
        }
        if let Some(e) = b.get(6) {
            d.commission_value = self.literal_text(e, "commission_value")?;
        }
        if let Some(e) = b.get(7) {
            d.process_orders_on_close = self.bool_literal(e, "process_orders_on_close")?;
        }
        if let Some(e) = b.get(8) {
            if self.bool_literal(e, "calc_on_every_tick")? {
                self.warnings.push(Diagnostic::warning(
                    e.pos,
                    "calc_on_every_tick = true recalculates on every live tick; Keel runs closed bars, so live and backtest differ (repaints)",
                ));
            }
        }
        self.decl = Some(d);
        Ok(())
    }

    /// Compiles (and drops) the styling arguments of an output call, so an unknown name in them is
    /// refused like anywhere else; `skip` names the arguments compiled elsewhere.
    fn check_styling(&mut self, args: &[Arg], skip: &[&str]) -> R<()> {
        for (i, a) in args.iter().enumerate() {
            let handled = match &a.name {
                Some(n) => skip.contains(&n.as_str()),
                None => i < skip.len(),
            };
            if !handled {
                self.expr(&a.value)?;
            }
        }
        Ok(())
    }

    fn opt_series(&mut self, e: Option<&Expr>, what: &str) -> R<Option<Ex>> {
        match e {
            None => Ok(None),
            Some(e) => Ok(Some(self.numeric(e, what)?.ex)),
        }
    }

    fn opt_str(&mut self, e: Option<&Expr>, what: &str) -> R<Option<Ex>> {
        match e {
            None => Ok(None),
            Some(e) => {
                let ce = self.expr(e)?;
                if ce.ty != Ty::Str {
                    return err(e.pos, format!("{what} must be a string, found {}", ce.ty.name()));
                }
                Ok(Some(ce.ex))
            }
        }
    }

    fn effect(&mut self, name: &str, args: &[Arg], pos: Pos, out: &mut Vec<St>, global: bool) -> R<()> {
        if self.ctx != 0 {
            return err(pos, format!("{name}() inside request.security's expression: it runs on the higher timeframe's bars, where orders and output have no meaning"));
        }
        if let Some(call) = OrderCall::of(name, args, pos) {
            self.order_calls.push(call);
        }
        match name {
            "strategy" => self.declaration(args, pos, global),
            "indicator" => err(pos, "indicator() scripts are not strategies: Keel runs strategy() scripts"),
            "strategy.entry" => {
                let b = self.bind(name, OrderCall::signature(name), 2, args, pos)?;
                let id = self.opt_str(b.get(0), "the entry id")?;
                let dir = match b.get(1).map(|e| &e.kind) {
                    Some(ExprKind::Name(n)) if n == "strategy.long" => Ex::Const(1.0),
                    Some(ExprKind::Name(n)) if n == "strategy.short" => Ex::Const(-1.0),
                    _ => {
                        let p = b.get(1).map_or(pos, |e| e.pos);
                        return err(p, "the direction of strategy.entry must be strategy.long or strategy.short");
                    }
                };
                let fields = vec![
                    id,
                    Some(dir),
                    self.opt_series(b.get(2), "qty")?,
                    self.opt_series(b.get(3), "limit")?,
                    self.opt_series(b.get(4), "stop")?,
                    self.opt_str(b.get(5), "comment")?,
                ];
                out.push(St::Order(OrderKind::Entry, fields));
                Ok(())
            }
            "strategy.exit" => {
                let b = self.bind(name, OrderCall::signature(name), 1, args, pos)?;
                let mut fields = vec![self.opt_str(b.get(0), "the exit id")?, self.opt_str(b.get(1), "from_entry")?];
                for (i, n) in OrderCall::signature(name).iter().enumerate().take(11).skip(2) {
                    fields.push(self.opt_series(b.get(i), n)?);
                }
                fields.push(self.opt_str(b.get(11), "comment")?);
                if fields[4..11].iter().all(Option::is_none) {
                    return err(
                        pos,
                        "strategy.exit needs at least one of profit, limit, loss, stop, trail_price or trail_points",
                    );
                }
                out.push(St::Order(OrderKind::Exit, fields));
                Ok(())
            }
            "strategy.close" => {
                let b = self.bind(name, OrderCall::signature(name), 1, args, pos)?;
                let fields = vec![
                    self.opt_str(b.get(0), "the entry id")?,
                    self.opt_series(b.get(2), "qty")?,
                    self.opt_series(b.get(3), "qty_percent")?,
                    self.opt_str(b.get(1), "comment")?,
                ];
                out.push(St::Order(OrderKind::Close, fields));
                Ok(())
            }
            "strategy.close_all" => {
                let b = self.bind(name, OrderCall::signature(name), 0, args, pos)?;
                let fields = vec![self.opt_str(b.get(0), "comment")?];
                out.push(St::Order(OrderKind::CloseAll, fields));
                Ok(())
            }
            "strategy.cancel" => {
                let b = self.bind(name, OrderCall::signature(name), 1, args, pos)?;
                let fields = vec![self.opt_str(b.get(0), "the order id")?];
                out.push(St::Order(OrderKind::Cancel, fields));
                Ok(())
            }
            "strategy.cancel_all" => {
                self.bind(name, OrderCall::signature(name), 0, args, pos)?;
                out.push(St::Order(OrderKind::CancelAll, vec![]));
                Ok(())
            }
            "plot" | "plotshape" | "plotchar" => {
                let b = self.bind_with(name, &["series", "title"], 1, args, pos, COSMETIC)?;
                self.check_styling(args, &["series", "title"])?;
                let series = b.get(0).ok_or_else(|| Diagnostic::error(pos, format!("{name}() needs a series")))?;
                let ce = self.expr(series)?;
                if !(ce.ty.numeric() || ce.ty == Ty::Bool) {
                    return err(series.pos, format!("{name}() plots numbers or bools, found {}", ce.ty.name()));
                }
                let title = match b.get(1) {
                    Some(t) => self.str_literal(t, "the plot title")?,
                    None => format!("plot {}", self.plots.len() + 1),
                };
                let kind = match name {
                    "plot" => PlotKind::Plot,
                    "plotshape" => PlotKind::Shape,
                    _ => PlotKind::Char,
                };
                self.plots.push(PlotDecl { title, kind });
                out.push(St::Plot(self.plots.len() as u32 - 1, ce.ex));
                Ok(())
            }
            // Chart decoration: accepted, nothing to compute or export.
            "hline" | "bgcolor" | "barcolor" => {
                // Nothing to export, but the arguments must still be names the script has.
                self.check_styling(args, &[])
            }
            "fill" => Ok(()),
            "alert" => {
                let b = self.bind_with("alert", &["message"], 1, args, pos, &["freq"])?;
                let m = b.get(0).ok_or_else(|| Diagnostic::error(pos, "alert() needs a message"))?;
                let message = self.str_literal(m, "the alert message")?;
                let message = self.intern(&message);
                out.push(St::Alert { message, title: None, cond: None });
                Ok(())
            }
            "alertcondition" => {
                let b = self.bind("alertcondition", &["condition", "title", "message"], 1, args, pos)?;
                let c = b.get(0).ok_or_else(|| Diagnostic::error(pos, "alertcondition() needs a condition"))?;
                let cond = self.cond(c)?;
                let title = match b.get(1) {
                    Some(t) => Some(self.str_literal(t, "the alertcondition title")?),
                    None => None,
                };
                let message = match b.get(2) {
                    Some(m) => self.str_literal(m, "the alertcondition message")?,
                    None => title.clone().unwrap_or_default(),
                };
                let message = self.intern(&message);
                let title = title.map(|t| self.intern(&t));
                out.push(St::Alert { message, title, cond: Some(cond) });
                Ok(())
            }
            other => err(pos, format!("'{other}' is outside Keel's Pine subset")),
        }
    }

    // ---- expressions ----

    fn numeric(&mut self, e: &Expr, what: &str) -> R<CE> {
        let ce = self.expr(e)?;
        if !ce.ty.numeric() {
            return err(e.pos, format!("{what} must be a number, found {}", ce.ty.name()));
        }
        Ok(ce)
    }

    fn cond(&mut self, e: &Expr) -> R<Ex> {
        let ce = self.expr(e)?;
        if !(ce.ty == Ty::Bool || ce.ty.numeric()) {
            return err(e.pos, format!("a condition must be bool, found {}", ce.ty.name()));
        }
        Ok(ce.ex)
    }

    fn simple_int(&mut self, e: &Expr, what: &str, min: i64) -> R<usize> {
        let ce = self.expr(e)?;
        match ce.konst {
            Some(v) if v.fract() == 0.0 && v >= min as f64 && v <= 100_000.0 => Ok(v as usize),
            Some(v) => err(e.pos, format!("{what} must be an int from {min} to 100000, found {v}")),
            None => err(e.pos, format!("{what} must be a simple int (a literal or an input), not a series")),
        }
    }

    fn builtin_exists(&self, name: &str) -> bool {
        name.starts_with("ta.")
            || name.starts_with("math.")
            || name.starts_with("input")
            || name.starts_with("strategy")
            || matches!(name, "nz" | "na" | "int" | "float" | "bool")
    }

    fn expr(&mut self, e: &Expr) -> R<CE> {
        let pos = e.pos;
        Ok(match &e.kind {
            ExprKind::Int(i) => CE::konst(*i as f64, Ty::Int),
            ExprKind::Float(f) => CE::konst(*f, Ty::Float),
            ExprKind::Bool(b) => CE::konst(f64::from(u8::from(*b)), Ty::Bool),
            ExprKind::Str(s) => {
                let id = self.intern(s);
                CE::konst(id.0 as f64, Ty::Str)
            }
            ExprKind::Name(n) => self.name(n, pos)?,
            ExprKind::Call(callee, args) => self.call(callee, args, pos)?,
            ExprKind::Index(base, off) => {
                let off_ce = self.numeric(off, "the history offset")?;
                let depth = match off_ce.konst {
                    Some(k) if k < 0.0 || k.fract() != 0.0 => {
                        return err(off.pos, format!("history offset must be a non-negative int, found {k}"))
                    }
                    Some(k) if k > DYNAMIC_HISTORY as f64 => {
                        return err(
                            off.pos,
                            format!("history offset {k} is beyond the {DYNAMIC_HISTORY} bars a series keeps"),
                        )
                    }
                    Some(k) => k as usize,
                    None => DYNAMIC_HISTORY,
                };
                let b = self.expr(base)?;
                if !(b.ty.numeric() || b.ty == Ty::Bool) {
                    return err(base.pos, format!("history x[n] of a {} value is not supported", b.ty.name()));
                }
                let off_ex = Box::new(off_ce.ex);
                match b.ex {
                    Ex::Slot(slot) => {
                        let ring = self.ring(slot, depth.max(1));
                        CE::series(Ex::Hist { slot, ring, off: off_ex, src: None }, b.ty)
                    }
                    other => {
                        let slot = self.new_slot();
                        let ring = self.ring(slot, depth.max(1));
                        CE::series(Ex::Hist { slot, ring, off: off_ex, src: Some(Box::new(other)) }, b.ty)
                    }
                }
            }
            ExprKind::Unary(op, x) => {
                let c = self.expr(x)?;
                match op {
                    UnOp::Not => {
                        if !(c.ty == Ty::Bool || c.ty.numeric()) {
                            return err(pos, format!("'not' needs a bool, found {}", c.ty.name()));
                        }
                        let k = c.konst.map(|v| f64::from(u8::from(!truthy(v))));
                        CE { ex: Ex::Unary(UnOp::Not, Box::new(c.ex)), ty: Ty::Bool, konst: k }
                    }
                    UnOp::Neg | UnOp::Plus => {
                        if !c.ty.numeric() {
                            return err(pos, format!("unary '-' needs a number, found {}", c.ty.name()));
                        }
                        if *op == UnOp::Plus {
                            c
                        } else {
                            CE { konst: c.konst.map(|v| -v), ex: Ex::Unary(UnOp::Neg, Box::new(c.ex)), ty: c.ty }
                        }
                    }
                }
            }
            ExprKind::Binary(op, a, b) => {
                let a = self.expr(a)?;
                let lazy = self.lazy_logic && matches!(op, BinOp::And | BinOp::Or);
                self.cond_depth += usize::from(lazy);
                let b = self.expr(b);
                self.cond_depth -= usize::from(lazy);
                self.binary(*op, a, b?, pos)?
            }
            ExprKind::Ternary(c, a, b) => {
                let c = self.expr(c)?;
                self.cond_depth += 1;
                let r = (|| Ok::<_, Diagnostic>((self.expr(a)?, self.expr(b)?)))();
                self.cond_depth -= 1;
                let (a, b) = r?;
                let ty = self.unify(a.ty, b.ty, pos)?;
                let konst = match (c.konst, a.konst, b.konst) {
                    (Some(c), Some(x), Some(y)) => Some(if truthy(c) { x } else { y }),
                    _ => None,
                };
                CE { ex: Ex::Cond(Box::new(c.ex), Box::new(a.ex), Box::new(b.ex)), ty, konst }
            }
            ExprKind::Tuple(_) => return err(pos, "a tuple [a, b] is only allowed as the last line of a function"),
            ExprKind::If(i) => {
                let c = self.cond(&i.cond)?;
                self.cond_depth += 1;
                let r = (|| {
                    let (t, tt) = self.block(&i.then, true)?;
                    let (o, ot) = match &i.otherwise {
                        Some(b) => {
                            let (o, ot) = self.block(b, true)?;
                            (Some(o), ot)
                        }
                        None => (None, Ty::Na),
                    };
                    Ok::<_, Diagnostic>((t, tt, o, ot))
                })();
                self.cond_depth -= 1;
                let (t, tt, o, ot) = r?;
                // Branches of different types are fine for a statement; only a value needs one type.
                let ty = if tt == Ty::Void || ot == Ty::Void {
                    Ty::Void
                } else {
                    self.unify(tt, ot, pos).unwrap_or(Ty::Void)
                };
                CE::series(Ex::If(Box::new((c, t, o))), ty)
            }
            ExprKind::Switch(s) => {
                let subject = match &s.subject {
                    Some(x) => Some(self.expr(x)?),
                    None => None,
                };
                self.cond_depth += 1;
                let r = (|| {
                    let mut arms = Vec::new();
                    let mut ty = Ty::Na;
                    let mut void = false;
                    for (case, body) in &s.arms {
                        let case = match case {
                            Some(c) => {
                                let ce = self.expr(c)?;
                                if let Some(subj) = &subject {
                                    if (subj.ty == Ty::Str) != (ce.ty == Ty::Str) {
                                        return err(
                                            c.pos,
                                            format!("switch case is {}, the subject {}", ce.ty.name(), subj.ty.name()),
                                        );
                                    }
                                }
                                Some(ce.ex)
                            }
                            None => None,
                        };
                        let (b, bt) = self.block(body, true)?;
                        match self.unify(ty, bt, pos) {
                            Ok(t) if bt != Ty::Void => ty = t,
                            _ => void = true,
                        }
                        arms.push((case, b));
                    }
                    Ok((arms, if void { Ty::Void } else { ty }))
                })();
                self.cond_depth -= 1;
                let (arms, ty) = r?;
                CE::series(Ex::Switch(Box::new(CSwitch { subject: subject.map(|s| s.ex), arms })), ty)
            }
        })
    }

    fn binary(&mut self, op: BinOp, a: CE, b: CE, pos: Pos) -> R<CE> {
        let (o, ty) = match op {
            BinOp::And | BinOp::Or => {
                for x in [&a, &b] {
                    if !(x.ty == Ty::Bool || x.ty.numeric()) {
                        return err(
                            pos,
                            format!(
                                "'{}' needs bools, found {}",
                                if op == BinOp::And { "and" } else { "or" },
                                x.ty.name()
                            ),
                        );
                    }
                }
                let konst = match (a.konst, b.konst) {
                    (Some(x), Some(y)) => Some(f64::from(u8::from(if op == BinOp::And {
                        truthy(x) && truthy(y)
                    } else {
                        truthy(x) || truthy(y)
                    }))),
                    _ => None,
                };
                let ex = if op == BinOp::And {
                    Ex::And(Box::new(a.ex), Box::new(b.ex), self.lazy_logic)
                } else {
                    Ex::Or(Box::new(a.ex), Box::new(b.ex), self.lazy_logic)
                };
                return Ok(CE { ex, ty: Ty::Bool, konst });
            }
            BinOp::Add if a.ty == Ty::Str || b.ty == Ty::Str => {
                return err(pos, "string concatenation is outside Keel's Pine subset (strings are literals)");
            }
            BinOp::Add => (Op::Add, num_ty(a.ty, b.ty)),
            BinOp::Sub => (Op::Sub, num_ty(a.ty, b.ty)),
            BinOp::Mul => (Op::Mul, num_ty(a.ty, b.ty)),
            BinOp::Div => (Op::Div, Ty::Float),
            BinOp::Rem => (Op::Rem, num_ty(a.ty, b.ty)),
            BinOp::Eq => (Op::Eq, Ty::Bool),
            BinOp::Ne => (Op::Ne, Ty::Bool),
            BinOp::Lt => (Op::Lt, Ty::Bool),
            BinOp::Le => (Op::Le, Ty::Bool),
            BinOp::Gt => (Op::Gt, Ty::Bool),
            BinOp::Ge => (Op::Ge, Ty::Bool),
        };
        let equality = matches!(o, Op::Eq | Op::Ne);
        let ok = if equality {
            a.ty == b.ty || (a.ty.numeric() && b.ty.numeric()) || a.ty == Ty::Na || b.ty == Ty::Na
        } else {
            a.ty.numeric() && b.ty.numeric()
        };
        if !ok {
            return err(pos, format!("operator {o:?} cannot combine {} and {}", a.ty.name(), b.ty.name()));
        }
        let konst = match (a.konst, b.konst) {
            (Some(x), Some(y)) => Some(crate::runner::apply(o, x, y)),
            _ => None,
        };
        Ok(CE { ex: Ex::Bin(o, Box::new(a.ex), Box::new(b.ex)), ty, konst })
    }

    fn name(&mut self, n: &str, pos: Pos) -> R<CE> {
        if self.ctx != 0 {
            self.chart_series_in_security(n, pos)?;
        }
        if let Some(v) = self.lookup(n) {
            return Ok(match v.konst {
                Some(k) => CE::konst(k, v.ty),
                None => CE::series(Ex::Slot(v.slot), v.ty),
            });
        }
        Ok(match n {
            "na" => CE::konst(f64::NAN, Ty::Na),
            "math.pi" => CE::konst(std::f64::consts::PI, Ty::Float),
            "math.e" => CE::konst(std::f64::consts::E, Ty::Float),
            "ta.tr" => self.ta_site(TaInit::Tr(false), vec![Ex::Slot(1), Ex::Slot(2), Ex::Slot(3)]),
            "barstate.isfirst" => {
                CE::series(Ex::Bin(Op::Eq, Box::new(Ex::Slot(6)), Box::new(Ex::Const(0.0))), Ty::Bool)
            }
            "barstate.isconfirmed" | "barstate.isrealtime" => {
                self.warnings.push(Diagnostic::warning(
                    pos,
                    format!("{n} differs between a live bar and a backtest (repaints); Keel evaluates closed bars only, where isconfirmed is true and isrealtime false"),
                ));
                CE::konst(f64::from(u8::from(n == "barstate.isconfirmed")), Ty::Bool)
            }
            "timenow" => {
                self.warnings.push(Diagnostic::warning(pos, "timenow is the wall clock live and the bar's time in a backtest (repaints); Keel gives the bar's time"));
                CE::series(Ex::Slot(5), Ty::Int)
            }
            "strategy.long" | "strategy.short" => {
                return err(pos, format!("{n} is only an argument of strategy.entry"))
            }
            _ if STYLE_NAMESPACES.iter().any(|ns| n.starts_with(ns)) => CE::konst(0.0, Ty::Color),
            _ if n.starts_with("barmerge.lookahead_on") => {
                return err(pos, "lookahead_on is refused: it reads future bars")
            }
            _ => {
                if self.fns.contains_key(n) {
                    return err(pos, format!("function '{n}' used without calling it"));
                }
                return err(pos, format!("unknown name '{n}' (not declared, or outside Keel's Pine subset)"));
            }
        })
    }

    fn call(&mut self, callee: &str, args: &[Arg], pos: Pos) -> R<CE> {
        if let Some((params, body)) = self.fns.get(callee).cloned() {
            return self.inline(callee, &params, &body, args, pos);
        }
        if callee == "ta.macd" || callee == "ta.bb" {
            return err(pos, format!("{callee}() returns a tuple: unpack it with [a, b, c] = {callee}(...)"));
        }
        if callee.starts_with("ta.") || callee == "math.sum" {
            return self.ta_call(callee, args, pos);
        }
        if callee == "input" || callee.starts_with("input.") {
            return self.input(callee, args, pos);
        }
        if callee == "request.security" {
            let (mut results, ty) = self.security(args, pos, None)?;
            return Ok(CE::series(Ex::Slot(results.remove(0)), ty[0]));
        }
        if callee.starts_with("request.") {
            return err(pos, format!("{callee}() is outside Keel's Pine subset (request.security on higher timeframes of the chart's symbol is supported)"));
        }
        if callee.starts_with("color.") {
            return Ok(CE::konst(0.0, Ty::Color));
        }
        if self.is_effect(&Expr { kind: ExprKind::Call(callee.to_string(), vec![]), pos }) {
            return err(pos, format!("{callee}() is a statement and has no value"));
        }
        let (f, params, required): (Func, &[&str], usize) = match callee {
            "math.abs" => (Func::Abs, &["number"], 1),
            "math.max" => (Func::Max, &[], 2),
            "math.min" => (Func::Min, &[], 2),
            "math.avg" => (Func::Avg, &[], 2),
            "math.round" => (if args.len() > 1 { Func::RoundTo } else { Func::Round }, &["number", "precision"], 1),
            "math.floor" => (Func::Floor, &["number"], 1),
            "math.ceil" => (Func::Ceil, &["number"], 1),
            "math.sqrt" => (Func::Sqrt, &["number"], 1),
            "math.pow" => (Func::Pow, &["base", "exponent"], 2),
            "math.log" => (Func::Log, &["number"], 1),
            "math.log10" => (Func::Log10, &["number"], 1),
            "math.exp" => (Func::Exp, &["number"], 1),
            "math.sign" => (Func::Sign, &["number"], 1),
            "math.sin" => (Func::Sin, &["angle"], 1),
            "math.cos" => (Func::Cos, &["angle"], 1),
            "math.tan" => (Func::Tan, &["angle"], 1),
            "math.asin" => (Func::Asin, &["angle"], 1),
            "math.acos" => (Func::Acos, &["angle"], 1),
            "math.atan" => (Func::Atan, &["angle"], 1),
            "math.todegrees" => (Func::ToDegrees, &["radians"], 1),
            "math.toradians" => (Func::ToRadians, &["degrees"], 1),
            "nz" => (Func::Nz, &["source", "replacement"], 1),
            "na" => (Func::IsNa, &["x"], 1),
            "int" => (Func::ToInt, &["x"], 1),
            "float" => (Func::Round, &["x"], 1),
            "bool" => (Func::ToBool, &["x"], 1),
            _ => return err(pos, format!("unknown function '{callee}' (outside Keel's Pine subset)")),
        };
        let mut exs = Vec::new();
        let mut konsts = Vec::new();
        let mut tys = Vec::new();
        if params.is_empty() {
            // Variadic (math.max/min/avg).
            if args.len() < required || args.iter().any(|a| a.name.is_some()) {
                return err(pos, format!("{callee}() takes {required} or more positional numbers"));
            }
            for a in args {
                let c = self.numeric(&a.value, &format!("an argument of {callee}()"))?;
                tys.push(c.ty);
                konsts.push(c.konst);
                exs.push(c.ex);
            }
        } else {
            let b = self.bind(callee, params, required, args, pos)?;
            for i in 0..params.len() {
                if let Some(e) = b.get(i) {
                    let c = self.expr(e)?;
                    if !(c.ty.numeric() || c.ty == Ty::Bool) {
                        return err(e.pos, format!("{callee}() takes numbers, found {}", c.ty.name()));
                    }
                    tys.push(c.ty);
                    konsts.push(c.konst);
                    exs.push(c.ex);
                }
            }
        }
        let arg_ty = tys.iter().fold(Ty::Na, |acc, t| num_ty(acc, *t));
        let ty = match f {
            Func::IsNa | Func::ToBool => Ty::Bool,
            Func::Round if callee == "float" => Ty::Float,
            Func::Round | Func::Floor | Func::Ceil | Func::ToInt => Ty::Int,
            Func::Abs | Func::Max | Func::Min | Func::Sign => {
                if arg_ty == Ty::Int {
                    Ty::Int
                } else {
                    Ty::Float
                }
            }
            Func::Nz => {
                if tys[0] == Ty::Bool {
                    Ty::Bool
                } else if arg_ty == Ty::Na {
                    Ty::Float
                } else {
                    arg_ty
                }
            }
            _ => Ty::Float,
        };
        // `float(x)` is the identity on values.
        let (f, exs) = if callee == "float" { (Func::Nz, vec![exs[0].clone(), Ex::Const(f64::NAN)]) } else { (f, exs) };
        let konst = if konsts.iter().all(Option::is_some) {
            let vals: Vec<f64> = konsts.iter().map(|k| k.unwrap_or(f64::NAN)).collect();
            Some(crate::runner::call(f, &vals))
        } else {
            None
        };
        Ok(CE { ex: Ex::Call(f, exs), ty, konst })
    }

    fn bind_user_args(
        &mut self,
        callee: &str,
        params: &[Param],
        args: &[Arg],
        pos: Pos,
    ) -> R<(Vec<St>, HashMap<String, Var>)> {
        if self.inlining.iter().any(|f| f == callee) {
            return err(pos, format!("function '{callee}' calls itself: recursion is not allowed in Pine"));
        }
        self.inlined += 1;
        if self.inlined > MAX_INLINED {
            return err(
                pos,
                format!("user functions are called from more than {MAX_INLINED} places once nested calls are expanded"),
            );
        }
        let names: Vec<&str> = params.iter().map(|p| p.name.as_str()).collect();
        let required = params.iter().take_while(|p| p.default.is_none()).count();
        let b = self.bind(callee, &names, required, args, pos)?;
        let mut pre = Vec::new();
        let mut scope = HashMap::new();
        for (i, p) in params.iter().enumerate() {
            let ce = match (b.get(i), &p.default) {
                (Some(e), _) | (None, Some(e)) => self.expr(e)?,
                (None, None) => return err(pos, format!("{callee}() needs its '{}' argument", p.name)),
            };
            let ty = if ce.ty == Ty::Na { Ty::Float } else { ce.ty };
            if let Some(k) = ce.konst {
                scope.insert(p.name.clone(), Var { slot: 0, ty, konst: Some(k) });
                continue;
            }
            let slot = self.new_slot();
            pre.push(St::Set(slot, ce.ex));
            scope.insert(p.name.clone(), Var { slot, ty, konst: None });
        }
        Ok((pre, scope))
    }

    fn inline(&mut self, callee: &str, params: &[Param], body: &Block, args: &[Arg], pos: Pos) -> R<CE> {
        let (mut pre, scope) = self.bind_user_args(callee, params, args, pos)?;
        // Parameters reassigned in the body are never simple.
        let mut re = HashSet::new();
        collect_reassigned(body, &mut re);
        let scope = scope
            .into_iter()
            .map(|(k, mut v)| {
                if re.contains(&k) && v.konst.is_some() {
                    v.konst = None;
                }
                (k, v)
            })
            .collect::<HashMap<_, _>>();
        for (k, v) in &scope {
            if re.contains(k) && v.slot == 0 {
                return err(pos, format!("parameter '{k}' of '{callee}' is reassigned: pass it a series"));
            }
        }
        self.inlining.push(callee.to_string());
        self.scopes.push(scope);
        // A function body is not inside the caller's loop: `break` there is refused.
        let loops = std::mem::replace(&mut self.loop_depth, 0);
        let r = self.block(body, true);
        self.loop_depth = loops;
        self.scopes.pop();
        self.inlining.pop();
        let (mut b, ty) = r?;
        pre.append(&mut b.stmts);
        let konst = None;
        Ok(CE { ex: Ex::Block(Box::new(CBlock { stmts: pre, value: b.value })), ty, konst })
    }

    fn input(&mut self, callee: &str, args: &[Arg], pos: Pos) -> R<CE> {
        let kind = match callee {
            "input.int" => InputKind::Int,
            "input.float" => InputKind::Float,
            "input.bool" => InputKind::Bool,
            "input.string" => InputKind::String,
            "input.source" => InputKind::Source,
            "input" => match args.first().map(|a| &a.value.kind) {
                Some(ExprKind::Int(_)) => InputKind::Int,
                Some(ExprKind::Float(_)) => InputKind::Float,
                Some(ExprKind::Unary(UnOp::Neg, x)) if matches!(x.kind, ExprKind::Int(_)) => InputKind::Int,
                Some(ExprKind::Unary(UnOp::Neg, x)) if matches!(x.kind, ExprKind::Float(_)) => InputKind::Float,
                Some(ExprKind::Bool(_)) => InputKind::Bool,
                Some(ExprKind::Str(_)) => InputKind::String,
                _ => InputKind::Source,
            },
            other => {
                return err(
                    pos,
                    format!("'{other}' is outside Keel's Pine subset (input.int/float/bool/string/source)"),
                )
            }
        };
        let Some(var_name) = self.decl_name.clone() else {
            return err(pos, format!("{callee}() must be assigned to a variable (its name is the parameter's name)"));
        };
        let b = self.bind_with(
            callee,
            &["defval", "title", "minval", "maxval", "step", "options"],
            1,
            args,
            pos,
            &["tooltip", "inline", "group", "confirm", "display", "active"],
        )?;
        let defval = b.get(0).ok_or_else(|| Diagnostic::error(pos, format!("{callee}() needs a default value")))?;
        let title = match b.get(1) {
            Some(t) => Some(self.str_literal(t, "the input title")?),
            None => None,
        };
        let num = |me: &mut Self, e: Option<&Expr>, what: &str| -> R<Option<f64>> {
            match e {
                None => Ok(None),
                Some(e) => match me.expr(e)?.konst {
                    Some(v) => Ok(Some(v)),
                    None => err(e.pos, format!("{what} must be a number literal")),
                },
            }
        };
        let (min, max, step) =
            (num(self, b.get(2), "minval")?, num(self, b.get(3), "maxval")?, num(self, b.get(4), "step")?);
        let literal = |e: &Expr| -> R<InputValue> {
            Ok(match &e.kind {
                ExprKind::Int(i) => InputValue::Int(*i),
                ExprKind::Float(f) => InputValue::Float(*f),
                ExprKind::Unary(UnOp::Neg, x) => match x.kind {
                    ExprKind::Int(i) => InputValue::Int(-i),
                    ExprKind::Float(f) => InputValue::Float(-f),
                    _ => return err(e.pos, "an input's default must be a literal"),
                },
                ExprKind::Bool(b) => InputValue::Bool(*b),
                ExprKind::Str(s) => InputValue::Str(s.clone()),
                ExprKind::Name(n) if kind == InputKind::Source => InputValue::Str(n.clone()),
                _ => return err(e.pos, "an input's default must be a literal"),
            })
        };
        let default = literal(defval)?;
        let options = match b.get(5) {
            Some(Expr { kind: ExprKind::Tuple(items), .. }) => items.iter().map(literal).collect::<R<Vec<_>>>()?,
            Some(e) => return err(e.pos, "options must be a list [a, b, ...]"),
            None => vec![],
        };
        let overrides = self.overrides;
        let over = overrides
            .iter()
            .find(|(k, _)| *k == var_name || (Some(k) == title.as_ref() && !self.global_names.contains(k.as_str())));
        let value = match over {
            Some((k, v)) => {
                self.used_overrides.insert(k.clone());
                v.clone()
            }
            None => default.clone(),
        };
        let label = format!("input '{var_name}'");
        let ce = match (kind, &value) {
            (InputKind::Int, InputValue::Int(i)) => CE::konst(*i as f64, Ty::Int),
            (InputKind::Float, InputValue::Float(f)) => CE::konst(*f, Ty::Float),
            (InputKind::Float, InputValue::Int(i)) => CE::konst(*i as f64, Ty::Float),
            (InputKind::Bool, InputValue::Bool(b)) => CE::konst(f64::from(u8::from(*b)), Ty::Bool),
            (InputKind::String, InputValue::Str(s)) => {
                let id = self.intern(s);
                CE::konst(id.0 as f64, Ty::Str)
            }
            (InputKind::Source, InputValue::Str(s)) => match BAR_SLOTS.iter().take(10).position(|n| n == s) {
                Some(slot) => CE::series(Ex::Slot(slot as u32), Ty::Float),
                None => {
                    return err(
                        pos,
                        format!(
                        "{label}: source '{s}' is not a bar series (open, high, low, close, volume, hl2, hlc3, ohlc4)"
                    ),
                    )
                }
            },
            (k, v) => return err(pos, format!("{label} is {k:?} but was given {v:?}")),
        };
        if let Some(v) = ce.konst {
            if min.is_some_and(|m| v < m) || max.is_some_and(|m| v > m) {
                return err(pos, format!("{label} = {v} is outside its range [{}, {}]", fmt_opt(min), fmt_opt(max)));
            }
        }
        if !options.is_empty() && !options.contains(&value) {
            return err(pos, format!("{label} = {value:?} is not one of its options {options:?}"));
        }
        self.inputs.push(InputDecl { name: var_name, title, kind, default, value, min, max, step, options });
        Ok(ce)
    }

    /// Inside `request.security`: refuses a name that is a series of the chart (a script variable
    /// declared outside the expression, or the broker state), which does not exist on the higher
    /// timeframe's bars. Simple values (literals, inputs) and the bar series are fine.
    fn chart_series_in_security(&self, n: &str, pos: Pos) -> R<()> {
        if n.starts_with("strategy.") && BAR_SLOTS.contains(&n) {
            return err(
                pos,
                format!("{n} inside request.security's expression: the broker state belongs to the chart's bars"),
            );
        }
        let outer = self.scopes.iter().enumerate().rev().find_map(|(depth, sc)| sc.get(n).map(|v| (depth, v)));
        match outer {
            Some((depth, v)) if depth < self.sec_scope_base && v.konst.is_none() && v.slot as usize >= BAR_SLOTS.len() => err(
                pos,
                format!("request.security's expression reads '{n}', a series computed on the chart's bars: write the calculation inside the expression (a function call works: f() => ...)"),
            ),
            _ => Ok(()),
        }
    }

    /// Compiles `request.security(symbol, timeframe, expression, gaps, lookahead)`: the chart's own
    /// symbol, a constant timeframe Keel can build from the chart's bars, and an expression (a
    /// tuple `[a, b]` when `tuple` gives the names' count) compiled in a history context of its
    /// own. Returns the result slots and their types.
    fn security(&mut self, args: &[Arg], pos: Pos, tuple: Option<usize>) -> R<(Vec<u32>, Vec<Ty>)> {
        let b =
            self.bind("request.security", &["symbol", "timeframe", "expression", "gaps", "lookahead"], 3, args, pos)?;
        if self.ctx != 0 {
            return err(
                pos,
                "request.security inside another request.security's expression is outside Keel's Pine subset",
            );
        }
        if self.cond_depth > 0 {
            return err(pos, "request.security must be called at global scope (not inside if/switch/loops/?:/lazy and-or), so it runs on every bar");
        }
        if let Some(e) = b.get(4) {
            match &e.kind {
                ExprKind::Name(n) if n == "barmerge.lookahead_off" => {}
                ExprKind::Name(n) if n == "barmerge.lookahead_on" => {
                    return err(
                        e.pos,
                        "request.security with lookahead = barmerge.lookahead_on is refused: it reads future bars",
                    )
                }
                _ => return err(
                    e.pos,
                    "lookahead must be barmerge.lookahead_off (barmerge.lookahead_on is refused: it reads future bars)",
                ),
            }
        }
        let gaps = match b.get(3).map(|e| (e, &e.kind)) {
            None => false,
            Some((_, ExprKind::Name(n))) if n == "barmerge.gaps_off" => false,
            Some((_, ExprKind::Name(n))) if n == "barmerge.gaps_on" => true,
            Some((e, _)) => return err(e.pos, "gaps must be barmerge.gaps_off or barmerge.gaps_on"),
        };
        if let Some(e) = b.get(0) {
            if !matches!(&e.kind, ExprKind::Name(n) if n == "syminfo.tickerid" || n == "syminfo.ticker") {
                return err(e.pos, "request.security reads the chart's own symbol only (syminfo.tickerid or syminfo.ticker): other symbols are outside Keel's Pine subset");
            }
        }
        let tf_expr =
            b.get(1).ok_or_else(|| Diagnostic::error(pos, "request.security() needs its 'timeframe' argument"))?;
        let tf_text = match &tf_expr.kind {
            ExprKind::Name(n) if n.starts_with("timeframe.") => {
                return err(
                    tf_expr.pos,
                    format!(
                        "the timeframe of request.security must be a constant string such as \"60\" or \"D\", not {n}"
                    ),
                )
            }
            _ => {
                let ce = self.expr(tf_expr)?;
                match (ce.ty, ce.konst) {
                    (Ty::Str, Some(id)) => self.strings.get(id as usize).cloned().unwrap_or_default(),
                    _ => {
                        return err(
                            tf_expr.pos,
                            "the timeframe of request.security must be a constant string such as \"60\" or \"D\"",
                        )
                    }
                }
            }
        };
        let Some(tf) = crate::security::Timeframe::parse(&tf_text) else {
            return err(tf_expr.pos, format!("timeframe \"{tf_text}\" is outside Keel's Pine subset: minutes that divide a day (\"15\", \"60\", \"240\"...), \"D\", \"W\" or \"M\""));
        };
        let expr =
            b.get(2).ok_or_else(|| Diagnostic::error(pos, "request.security() needs its 'expression' argument"))?;
        let items: Vec<&Expr> = match (&expr.kind, tuple) {
            (ExprKind::Tuple(items), Some(n)) if items.len() == n => items.iter().collect(),
            (ExprKind::Tuple(items), Some(n)) => {
                return err(expr.pos, format!("request.security returns {} values, {n} names given", items.len()))
            }
            (ExprKind::Tuple(_), None) => {
                return err(expr.pos, "a tuple expression needs a tuple declaration: [a, b] = request.security(...)")
            }
            (_, Some(_)) => {
                return err(expr.pos, "a tuple declaration needs a tuple expression: request.security(sym, tf, [a, b])")
            }
            (_, None) => vec![expr],
        };
        let saved = (self.ctx, self.sec_scope_base, self.cond_depth);
        self.ctx = self.securities.len() as u32 + 1;
        self.sec_scope_base = self.scopes.len();
        self.cond_depth = 0;
        let compiled = items.iter().map(|e| self.expr(e).map(|ce| (e.pos, ce))).collect::<R<Vec<_>>>();
        (self.ctx, self.sec_scope_base, self.cond_depth) = saved;
        let mut exprs = Vec::new();
        let mut results = Vec::new();
        let mut tys = Vec::new();
        for (p, ce) in compiled? {
            if !(ce.ty.numeric() || ce.ty == Ty::Bool) {
                return err(
                    p,
                    format!("request.security's expression must be a number or a bool, found {}", ce.ty.name()),
                );
            }
            let slot = self.new_slot();
            // The value holds between the higher timeframe's bars: never reset per chart bar.
            self.var_slots.insert(slot);
            exprs.push(ce.ex);
            results.push(slot);
            tys.push(if ce.ty == Ty::Na { Ty::Float } else { ce.ty });
        }
        let ctx = self.securities.len() as u32 + 1;
        self.securities.push(Security { tf, tf_text, pos, ctx, results: results.clone(), gaps });
        self.security_exprs.push(exprs);
        Ok((results, tys))
    }

    fn ta_site(&mut self, init: TaInit, args: Vec<Ex>) -> CE {
        self.ta.push(init);
        self.ta_ctx.push(self.ctx);
        let ty = match self.ta.last() {
            Some(TaInit::Cross(_) | TaInit::Lag(_, LagKind::Rising | LagKind::Falling)) => Ty::Bool,
            Some(TaInit::BarsSince) => Ty::Int,
            _ => Ty::Float,
        };
        CE::series(Ex::Ta(self.ta.len() as u32 - 1, args), ty)
    }

    fn ta_call(&mut self, callee: &str, args: &[Arg], pos: Pos) -> R<CE> {
        if self.cond_depth > 0 {
            self.warnings.push(Diagnostic::warning(
                pos,
                format!("{callee} inside a conditional branch or loop keeps history only on the bars where it runs (repaints against TradingView); call it at global scope"),
            ));
        }
        // `math.sum` is Pine's name for the rolling sum; `ta.sum` is kept as the alias.
        let name = callee.strip_prefix("ta.").unwrap_or("sum");
        let series = |me: &mut Self, e: Option<&Expr>, what: &str| -> R<Ex> {
            match e {
                Some(e) => {
                    let c = me.expr(e)?;
                    if !(c.ty.numeric() || c.ty == Ty::Bool) {
                        return err(e.pos, format!("{callee}(): {what} must be a number, found {}", c.ty.name()));
                    }
                    Ok(c.ex)
                }
                None => err(pos, format!("{callee}() needs its '{what}' argument")),
            }
        };
        let len = |me: &mut Self, e: Option<&Expr>, min: i64| -> R<usize> {
            match e {
                Some(e) => me.simple_int(e, &format!("the length of {callee}()"), min),
                None => err(pos, format!("{callee}() needs its 'length' argument")),
            }
        };
        let (init, exs) = match name {
            "sma" | "ema" | "rma" | "wma" | "rsi" | "stdev" | "cci" | "sum" => {
                let b = self.bind(callee, &["source", "length"], 2, args, pos)?;
                let s = series(self, b.get(0), "source")?;
                let n = len(self, b.get(1), 1)?;
                let init = match name {
                    "sma" => TaInit::Sma(n),
                    "ema" => TaInit::Ema(n),
                    "rma" => TaInit::Rma(n),
                    "wma" => TaInit::Wma(n),
                    "rsi" => TaInit::Rsi(n),
                    "stdev" => TaInit::Stdev(n),
                    "cci" => TaInit::Cci(n),
                    _ => TaInit::Sum(n),
                };
                (init, vec![s])
            }
            "vwma" => {
                let b = self.bind(callee, &["source", "length"], 2, args, pos)?;
                let s = series(self, b.get(0), "source")?;
                (TaInit::Vwma(len(self, b.get(1), 1)?), vec![s, Ex::Slot(4)])
            }
            "atr" => {
                let b = self.bind(callee, &["length"], 1, args, pos)?;
                (TaInit::Atr(len(self, b.get(0), 1)?), vec![Ex::Slot(1), Ex::Slot(2), Ex::Slot(3)])
            }
            "tr" => {
                let b = self.bind(callee, &["handle_na"], 0, args, pos)?;
                let h = match b.get(0) {
                    Some(e) => self.bool_literal(e, "handle_na")?,
                    None => false,
                };
                (TaInit::Tr(h), vec![Ex::Slot(1), Ex::Slot(2), Ex::Slot(3)])
            }
            "macd" => {
                let b = self.bind(callee, &["source", "fastlen", "slowlen", "siglen"], 4, args, pos)?;
                let s = series(self, b.get(0), "source")?;
                (TaInit::Macd(len(self, b.get(1), 1)?, len(self, b.get(2), 1)?, len(self, b.get(3), 1)?), vec![s])
            }
            "bb" => {
                let b = self.bind(callee, &["series", "length", "mult"], 3, args, pos)?;
                let s = series(self, b.get(0), "series")?;
                let n = len(self, b.get(1), 1)?;
                let m = b.get(2).map(|e| self.expr(e)).transpose()?;
                let Some(mult) = m.and_then(|m| m.konst) else {
                    return err(pos, "the mult of ta.bb() must be a simple number (a literal or an input)");
                };
                (TaInit::Bb(n, mult), vec![s])
            }
            "stoch" => {
                let b = self.bind(callee, &["source", "high", "low", "length"], 4, args, pos)?;
                let s = series(self, b.get(0), "source")?;
                let h = series(self, b.get(1), "high")?;
                let l = series(self, b.get(2), "low")?;
                (TaInit::Stoch(len(self, b.get(3), 1)?), vec![s, h, l])
            }
            "highest" | "lowest" => {
                let hi = name == "highest";
                let (s, n) = if args.len() == 1 {
                    let b = self.bind(callee, &["length"], 1, args, pos)?;
                    (Ex::Slot(if hi { 1 } else { 2 }), len(self, b.get(0), 1)?)
                } else {
                    let b = self.bind(callee, &["source", "length"], 2, args, pos)?;
                    (series(self, b.get(0), "source")?, len(self, b.get(1), 1)?)
                };
                (if hi { TaInit::Highest(n) } else { TaInit::Lowest(n) }, vec![s])
            }
            "crossover" | "crossunder" | "cross" => {
                let b = self.bind(callee, &["source1", "source2"], 2, args, pos)?;
                let a = series(self, b.get(0), "source1")?;
                let c = series(self, b.get(1), "source2")?;
                let k = match name {
                    "crossover" => CrossKind::Over,
                    "crossunder" => CrossKind::Under,
                    _ => CrossKind::Any,
                };
                (TaInit::Cross(k), vec![a, c])
            }
            "change" | "mom" | "roc" | "rising" | "falling" => {
                let required = if name == "change" { 1 } else { 2 };
                let b = self.bind(callee, &["source", "length"], required, args, pos)?;
                let s = series(self, b.get(0), "source")?;
                let n = match b.get(1) {
                    Some(_) => len(self, b.get(1), 1)?,
                    None => 1,
                };
                let k = match name {
                    "change" | "mom" => LagKind::Change,
                    "roc" => LagKind::Roc,
                    "rising" => LagKind::Rising,
                    _ => LagKind::Falling,
                };
                (TaInit::Lag(n, k), vec![s])
            }
            "barssince" => {
                let b = self.bind(callee, &["condition"], 1, args, pos)?;
                (TaInit::BarsSince, vec![series(self, b.get(0), "condition")?])
            }
            "valuewhen" => {
                let b = self.bind(callee, &["condition", "source", "occurrence"], 3, args, pos)?;
                let c = series(self, b.get(0), "condition")?;
                let s = series(self, b.get(1), "source")?;
                let occ = match b.get(2) {
                    Some(e) => self.simple_int(e, "the occurrence of ta.valuewhen()", 0)?,
                    None => 0,
                };
                (TaInit::ValueWhen(occ), vec![c, s])
            }
            "pivothigh" | "pivotlow" => {
                let hi = name == "pivothigh";
                let (s, l, r) = if args.len() == 2 {
                    let b = self.bind(callee, &["leftbars", "rightbars"], 2, args, pos)?;
                    (Ex::Slot(if hi { 1 } else { 2 }), b.get(0), b.get(1))
                } else {
                    let b = self.bind(callee, &["source", "leftbars", "rightbars"], 3, args, pos)?;
                    (series(self, b.get(0), "source")?, b.get(1), b.get(2))
                };
                let l = len(self, l, 0)?;
                let r = len(self, r, 0)?;
                (TaInit::Pivot(l, r, hi), vec![s])
            }
            "cum" => {
                let b = self.bind(callee, &["source"], 1, args, pos)?;
                (TaInit::Cum, vec![series(self, b.get(0), "source")?])
            }
            _ => return err(pos, format!("unknown function '{callee}' (outside Keel's Pine subset)")),
        };
        Ok(self.ta_site(init, exs))
    }
}

fn num_ty(a: Ty, b: Ty) -> Ty {
    match (a, b) {
        (Ty::Int, Ty::Int) | (Ty::Int, Ty::Na) | (Ty::Na, Ty::Int) => Ty::Int,
        (Ty::Na, Ty::Na) => Ty::Na,
        _ => Ty::Float,
    }
}

fn fmt_opt(v: Option<f64>) -> String {
    v.map_or("-".into(), |v| v.to_string())
}

/// Pine's truth of a value: `na` and 0 are false.
pub(crate) fn truthy(v: f64) -> bool {
    v != 0.0 && !v.is_nan()
}
