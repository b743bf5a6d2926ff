//! The syntax tree the parser builds and the checker reads.

use crate::error::Pos;

/// A binary operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BinOp {
    /// `+`
    Add,
    /// `-`
    Sub,
    /// `*`
    Mul,
    /// `/`
    Div,
    /// `%`
    Rem,
    /// `==`
    Eq,
    /// `!=`
    Ne,
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `>=`
    Ge,
    /// `and`
    And,
    /// `or`
    Or,
}

/// A unary operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnOp {
    /// `-x`
    Neg,
    /// `+x`
    Plus,
    /// `not x`
    Not,
}

/// An expression and where it starts.
#[derive(Debug, Clone, PartialEq)]
pub struct Expr {
    /// What it is.
    pub kind: ExprKind,
    /// Where it starts.
    pub pos: Pos,
}

/// A call argument, positional or named (`qty = 1`).
#[derive(Debug, Clone, PartialEq)]
pub struct Arg {
    /// The name, for a named argument.
    pub name: Option<String>,
    /// The value.
    pub value: Expr,
}

/// The kinds of expression.
#[derive(Debug, Clone, PartialEq)]
pub enum ExprKind {
    /// `42`
    Int(i64),
    /// `4.2`
    Float(f64),
    /// `true`, `false`
    Bool(bool),
    /// `"text"`
    Str(String),
    /// A name, dotted names joined (`close`, `strategy.long`, `na`).
    Name(String),
    /// `f(a, b = 1)`, the callee a (dotted) name.
    Call(String, Vec<Arg>),
    /// History: `x[n]`.
    Index(Box<Expr>, Box<Expr>),
    /// `-x`, `not x`.
    Unary(UnOp, Box<Expr>),
    /// `a + b`, `a and b`...
    Binary(BinOp, Box<Expr>, Box<Expr>),
    /// `c ? a : b`
    Ternary(Box<Expr>, Box<Expr>, Box<Expr>),
    /// `[a, b]`: a tuple (a function's return) or an `array.from`-like literal.
    Tuple(Vec<Expr>),
    /// `if` used as a statement or as a value.
    If(Box<IfExpr>),
    /// `switch` used as a statement or as a value.
    Switch(Box<SwitchExpr>),
}

/// `if cond` block, `else if`, `else` block.
#[derive(Debug, Clone, PartialEq)]
pub struct IfExpr {
    /// The condition.
    pub cond: Expr,
    /// The block run when it holds.
    pub then: Block,
    /// The `else` block (an `else if` is an `else` holding one `if`).
    pub otherwise: Option<Block>,
}

/// `switch [subject]` with `case => body` arms and an optional default `=> body`.
#[derive(Debug, Clone, PartialEq)]
pub struct SwitchExpr {
    /// The subject, compared with `==` to each case; without it each case is a condition.
    pub subject: Option<Expr>,
    /// The arms in order: `None` is the default arm.
    pub arms: Vec<(Option<Expr>, Block)>,
}

/// A sequence of statements; its value is its last statement's value when that is an expression.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Block {
    /// The statements.
    pub stmts: Vec<Stmt>,
}

/// How a declaration keeps its value across bars.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeclMode {
    /// Recomputed on every bar.
    Plain,
    /// `var`: initialised once, kept across bars.
    Var,
    /// `varip`: like `var` but also across ticks of a live bar (Keel runs closed bars: a warning).
    Varip,
}

/// A user function's parameter.
#[derive(Debug, Clone, PartialEq)]
pub struct Param {
    /// Its name.
    pub name: String,
    /// Its default value, if any.
    pub default: Option<Expr>,
}

/// A statement and where it starts.
#[derive(Debug, Clone, PartialEq)]
pub struct Stmt {
    /// What it is.
    pub kind: StmtKind,
    /// Where it starts.
    pub pos: Pos,
}

/// The kinds of statement.
#[derive(Debug, Clone, PartialEq)]
pub enum StmtKind {
    /// `[var] [type] name = value`.
    Decl {
        /// Plain, `var` or `varip`.
        mode: DeclMode,
        /// The declared type (`int`, `float`, `bool`, `string`), if written.
        ty: Option<String>,
        /// The variable.
        name: String,
        /// Its value.
        value: Expr,
    },
    /// `name := value`, or a compound `name += value` (the operator given).
    Assign {
        /// The variable.
        name: String,
        /// `Some(op)` for `op=`.
        op: Option<BinOp>,
        /// The value.
        value: Expr,
    },
    /// `[a, b] = value`.
    TupleDecl {
        /// The variables, in order.
        names: Vec<String>,
        /// The tuple-valued expression.
        value: Expr,
    },
    /// `f(x, y = 1) => body`.
    FnDef {
        /// The function's name.
        name: String,
        /// Its parameters.
        params: Vec<Param>,
        /// Its body; the last statement's value is returned.
        body: Block,
    },
    /// `for i = from to to [by step]`.
    For {
        /// The counter.
        var: String,
        /// First value.
        from: Expr,
        /// Last value (inclusive).
        to: Expr,
        /// The step, if written.
        step: Option<Expr>,
        /// The body.
        body: Block,
    },
    /// `for x in iter` or `for [i, x] in iter`.
    ForIn {
        /// The index variable of the `[i, x]` form.
        index: Option<String>,
        /// The element variable.
        item: String,
        /// What is iterated.
        iter: Expr,
        /// The body.
        body: Block,
    },
    /// `while cond`.
    While {
        /// The condition.
        cond: Expr,
        /// The body.
        body: Block,
    },
    /// `break`
    Break,
    /// `continue`
    Continue,
    /// An expression run for its effect or value (calls, `if`, `switch`).
    Expr(Expr),
}
