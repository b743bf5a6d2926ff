//! The parser: tokens to a syntax tree, with Pine's operator precedence
//! (lowest first: `?:`, `or`, `and`, `==`/`!=`, `<`/`<=`/`>`/`>=`, `+`/`-`, `*`/`/`/`%`,
//! unary `-`/`+`/`not`, then history `[]`, calls and `.`).

use crate::ast::*;
use crate::error::{Diagnostic, Pos};
use crate::lexer::{lex, Tok, Token};

/// A parsed script: its version and top-level statements.
#[derive(Debug, Clone, PartialEq)]
pub struct Script {
    /// The `//@version=` number (5 or 6).
    pub version: u32,
    /// The statements at global scope.
    pub body: Block,
}

/// Parses a whole script; the `//@version=` comment must name 5 or 6.
pub fn parse(src: &str) -> Result<Script, Diagnostic> {
    let lexed = lex(src)?;
    let version = match lexed.version {
        Some((v @ (5 | 6), _)) => v,
        Some((v, pos)) => {
            return Err(Diagnostic::error(
                pos,
                format!("//@version={v} is not supported: Keel runs Pine versions 5 and 6"),
            ))
        }
        None => {
            return Err(Diagnostic::error(
                Pos { line: 1, col: 1 },
                "missing //@version=5 or //@version=6 comment: Keel runs Pine versions 5 and 6",
            ))
        }
    };
    let mut p = Parser { toks: lexed.tokens, at: 0, depth: 0 };
    let mut stmts = Vec::new();
    while !p.is(&Tok::Eof) {
        if p.eat(&Tok::Newline) {
            continue;
        }
        stmts.push(p.stmt()?);
    }
    Ok(Script { version, body: Block { stmts } })
}

struct Parser {
    toks: Vec<Token>,
    at: usize,
    /// Nesting of expressions and blocks being parsed, bounded so a pathological script is an
    /// error, not a stack overflow.
    depth: usize,
}

/// The deepest nesting of expressions and blocks a script may have.
const MAX_NESTING: usize = 64;

fn describe(t: &Tok) -> String {
    match t {
        Tok::Int(i) => format!("number {i}"),
        Tok::Float(f) => format!("number {f}"),
        Tok::Str(s) => format!("string \"{s}\""),
        Tok::Ident(s) => format!("name '{s}'"),
        Tok::Kw(k) => format!("keyword '{k}'"),
        Tok::Op(o) => format!("'{o}'"),
        Tok::Newline => "end of line".into(),
        Tok::Indent => "an indented block".into(),
        Tok::Dedent => "the end of a block".into(),
        Tok::Eof => "end of script".into(),
    }
}

impl Parser {
    fn peek(&self) -> &Tok {
        &self.toks[self.at.min(self.toks.len() - 1)].tok
    }
    fn peek_at(&self, n: usize) -> &Tok {
        &self.toks[(self.at + n).min(self.toks.len() - 1)].tok
    }
    fn pos(&self) -> Pos {
        self.toks[self.at.min(self.toks.len() - 1)].pos
    }
    fn is(&self, t: &Tok) -> bool {
        self.peek() == t
    }
    fn is_op(&self, op: &str) -> bool {
        matches!(self.peek(), Tok::Op(o) if *o == op)
    }
    fn is_kw(&self, kw: &str) -> bool {
        matches!(self.peek(), Tok::Kw(k) if *k == kw)
    }
    fn bump(&mut self) -> Token {
        let t = self.toks[self.at.min(self.toks.len() - 1)].clone();
        if self.at < self.toks.len() - 1 {
            self.at += 1;
        }
        t
    }
    fn eat(&mut self, t: &Tok) -> bool {
        if self.is(t) {
            self.bump();
            true
        } else {
            false
        }
    }
    fn eat_op(&mut self, op: &str) -> bool {
        if self.is_op(op) {
            self.bump();
            true
        } else {
            false
        }
    }
    fn err<T>(&self, what: &str) -> Result<T, Diagnostic> {
        Err(Diagnostic::error(self.pos(), format!("expected {what}, found {}", describe(self.peek()))))
    }
    fn expect_op(&mut self, op: &str, ctx: &str) -> Result<(), Diagnostic> {
        if self.eat_op(op) {
            Ok(())
        } else {
            self.err(&format!("'{op}' {ctx}"))
        }
    }
    fn ident(&mut self, ctx: &str) -> Result<String, Diagnostic> {
        match self.peek().clone() {
            Tok::Ident(s) => {
                self.bump();
                Ok(s)
            }
            _ => self.err(ctx),
        }
    }

    /// A statement ends at a line end, or right after a block closed (the block ate the line end).
    fn end_stmt(&mut self, what: &str) -> Result<(), Diagnostic> {
        if self.eat(&Tok::Newline) || self.is(&Tok::Eof) || self.is(&Tok::Dedent) {
            return Ok(());
        }
        if self.at > 0 && self.toks[self.at - 1].tok == Tok::Dedent {
            return Ok(());
        }
        self.err(&format!("end of line after {what}"))
    }

    fn block(&mut self, ctx: &str) -> Result<Block, Diagnostic> {
        self.depth += 1;
        let r = if self.depth > MAX_NESTING {
            Err(Diagnostic::error(self.pos(), format!("blocks nested more than {MAX_NESTING} deep")))
        } else {
            self.block_inner(ctx)
        };
        self.depth -= 1;
        r
    }

    fn block_inner(&mut self, ctx: &str) -> Result<Block, Diagnostic> {
        if !self.eat(&Tok::Newline) || !self.eat(&Tok::Indent) {
            return self.err(&format!("an indented block (4 spaces or a tab) for {ctx}"));
        }
        let mut stmts = Vec::new();
        while !self.eat(&Tok::Dedent) {
            if self.is(&Tok::Eof) {
                break;
            }
            if self.eat(&Tok::Newline) {
                continue;
            }
            stmts.push(self.stmt()?);
        }
        Ok(Block { stmts })
    }

    fn is_fn_def(&self) -> bool {
        if !matches!(self.peek(), Tok::Ident(_)) || self.peek_at(1) != &Tok::Op("(") {
            return false;
        }
        let mut depth = 0;
        let mut i = 1;
        loop {
            match self.peek_at(i) {
                Tok::Op("(") => depth += 1,
                Tok::Op(")") => {
                    depth -= 1;
                    if depth == 0 {
                        return self.peek_at(i + 1) == &Tok::Op("=>");
                    }
                }
                Tok::Eof | Tok::Newline => return false,
                _ => {}
            }
            i += 1;
        }
    }

    fn stmt(&mut self) -> Result<Stmt, Diagnostic> {
        let pos = self.pos();
        let kind = self.stmt_kind()?;
        Ok(Stmt { kind, pos })
    }

    fn stmt_kind(&mut self) -> Result<StmtKind, Diagnostic> {
        let pos = self.pos();
        for kw in ["import", "export", "method", "type"] {
            if self.is_kw(kw) {
                return Err(Diagnostic::error(pos, format!("'{kw}' is not supported in Keel's Pine subset")));
            }
        }
        if self.is_kw("break") || self.is_kw("continue") {
            let k = if self.is_kw("break") { StmtKind::Break } else { StmtKind::Continue };
            self.bump();
            self.end_stmt("break/continue")?;
            return Ok(k);
        }
        if self.is_kw("for") {
            return self.for_stmt();
        }
        if self.is_kw("while") {
            self.bump();
            let cond = self.expr()?;
            let body = self.block("while")?;
            return Ok(StmtKind::While { cond, body });
        }
        if self.is_fn_def() {
            let name = self.ident("a function name")?;
            self.expect_op("(", "after the function name")?;
            let mut params = Vec::new();
            while !self.eat_op(")") {
                let pname = self.ident("a parameter name")?;
                let default = if self.eat_op("=") { Some(self.expr()?) } else { None };
                params.push(Param { name: pname, default });
                if !self.eat_op(",") && !self.is_op(")") {
                    return self.err("',' or ')' in the parameter list");
                }
            }
            self.expect_op("=>", "after the parameter list")?;
            let body = if self.is(&Tok::Newline) {
                self.block(&format!("function {name}"))?
            } else {
                let p = self.pos();
                let e = self.expr()?;
                self.end_stmt("the function body")?;
                Block { stmts: vec![Stmt { kind: StmtKind::Expr(e), pos: p }] }
            };
            return Ok(StmtKind::FnDef { name, params, body });
        }
        // Tuple declaration: `[a, b] = ...`.
        if self.is_op("[") {
            let save = self.at;
            self.bump();
            let mut names = Vec::new();
            let mut ok = true;
            loop {
                match self.peek().clone() {
                    Tok::Ident(n) => {
                        self.bump();
                        names.push(n);
                    }
                    _ => {
                        ok = false;
                        break;
                    }
                }
                if self.eat_op("]") {
                    break;
                }
                if !self.eat_op(",") {
                    ok = false;
                    break;
                }
            }
            if ok && self.eat_op("=") {
                let value = self.expr()?;
                self.end_stmt("the tuple declaration")?;
                return Ok(StmtKind::TupleDecl { names, value });
            }
            self.at = save;
        }
        // Declarations: [var|varip] [type] name = value.
        let mode = if self.is_kw("var") {
            self.bump();
            DeclMode::Var
        } else if self.is_kw("varip") {
            self.bump();
            DeclMode::Varip
        } else {
            DeclMode::Plain
        };
        for q in ["const", "simple", "series"] {
            if self.is_kw(q) {
                self.bump();
            }
        }
        let mut ty = None;
        if let (Tok::Ident(t), Tok::Ident(_)) = (self.peek().clone(), self.peek_at(1).clone()) {
            if self.peek_at(2) == &Tok::Op("=") {
                if !["int", "float", "bool", "string", "color"].contains(&t.as_str()) {
                    return Err(Diagnostic::error(
                        pos,
                        format!("type '{t}' is not supported (int, float, bool, string)"),
                    ));
                }
                self.bump();
                ty = Some(t);
            }
        }
        if let (Tok::Ident(name), Tok::Op(op)) = (self.peek().clone(), self.peek_at(1).clone()) {
            let assign = match op {
                "=" => Some(None),
                ":=" => Some(Some(None)),
                "+=" => Some(Some(Some(BinOp::Add))),
                "-=" => Some(Some(Some(BinOp::Sub))),
                "*=" => Some(Some(Some(BinOp::Mul))),
                "/=" => Some(Some(Some(BinOp::Div))),
                "%=" => Some(Some(Some(BinOp::Rem))),
                _ => None,
            };
            if let Some(a) = assign {
                self.bump();
                self.bump();
                let value = self.expr()?;
                self.end_stmt(&format!("the assignment to {name}"))?;
                return Ok(match a {
                    None => StmtKind::Decl { mode, ty, name, value },
                    Some(op) => {
                        if mode != DeclMode::Plain || ty.is_some() {
                            return Err(Diagnostic::error(
                                pos,
                                format!("'{name}' is reassigned with ':=': it cannot be declared here"),
                            ));
                        }
                        StmtKind::Assign { name, op, value }
                    }
                });
            }
        }
        if mode != DeclMode::Plain || ty.is_some() {
            return self.err("a variable declaration 'name = value'");
        }
        let e = self.expr()?;
        self.end_stmt("the expression")?;
        Ok(StmtKind::Expr(e))
    }

    fn for_stmt(&mut self) -> Result<StmtKind, Diagnostic> {
        self.bump();
        if self.eat_op("[") {
            let index = self.ident("the index variable of 'for [i, x] in'")?;
            self.expect_op(",", "in 'for [i, x] in'")?;
            let item = self.ident("the element variable of 'for [i, x] in'")?;
            self.expect_op("]", "in 'for [i, x] in'")?;
            if !self.is_kw("in") {
                return self.err("'in' in 'for [i, x] in'");
            }
            self.bump();
            let iter = self.expr()?;
            let body = self.block("for…in")?;
            return Ok(StmtKind::ForIn { index: Some(index), item, iter, body });
        }
        let var = self.ident("the loop variable after 'for'")?;
        if self.is_kw("in") {
            self.bump();
            let iter = self.expr()?;
            let body = self.block("for…in")?;
            return Ok(StmtKind::ForIn { index: None, item: var, iter, body });
        }
        self.expect_op("=", "in 'for i = from to to'")?;
        let from = self.expr()?;
        if !self.is_kw("to") {
            return self.err("'to' in 'for i = from to to'");
        }
        self.bump();
        let to = self.expr()?;
        let step = if self.is_kw("by") {
            self.bump();
            Some(self.expr()?)
        } else {
            None
        };
        let body = self.block("for")?;
        Ok(StmtKind::For { var, from, to, step, body })
    }

    /// An expression, including `if`/`switch` used as values.
    fn expr(&mut self) -> Result<Expr, Diagnostic> {
        self.depth += 1;
        let r = if self.depth > MAX_NESTING {
            Err(Diagnostic::error(self.pos(), format!("expression or block nested more than {MAX_NESTING} deep")))
        } else {
            self.expr_inner()
        };
        self.depth -= 1;
        r
    }

    fn expr_inner(&mut self) -> Result<Expr, Diagnostic> {
        let pos = self.pos();
        if self.is_kw("if") {
            self.bump();
            let cond = self.expr()?;
            let then = self.block("if")?;
            let otherwise = if self.is_kw("else") {
                self.bump();
                if self.is_kw("if") {
                    let p = self.pos();
                    let inner = self.expr()?;
                    Some(Block { stmts: vec![Stmt { kind: StmtKind::Expr(inner), pos: p }] })
                } else {
                    Some(self.block("else")?)
                }
            } else {
                None
            };
            return Ok(Expr { kind: ExprKind::If(Box::new(IfExpr { cond, then, otherwise })), pos });
        }
        if self.is_kw("switch") {
            self.bump();
            let subject = if self.is(&Tok::Newline) { None } else { Some(self.ternary()?) };
            if !self.eat(&Tok::Newline) || !self.eat(&Tok::Indent) {
                return self.err("an indented list of 'case => value' arms after 'switch'");
            }
            let mut arms = Vec::new();
            while !self.eat(&Tok::Dedent) {
                if self.is(&Tok::Eof) {
                    break;
                }
                if self.eat(&Tok::Newline) {
                    continue;
                }
                let case = if self.is_op("=>") { None } else { Some(self.ternary()?) };
                self.expect_op("=>", "after the switch case")?;
                let body = if self.is(&Tok::Newline) {
                    self.block("the switch arm")?
                } else {
                    let s = self.stmt()?;
                    Block { stmts: vec![s] }
                };
                arms.push((case, body));
            }
            return Ok(Expr { kind: ExprKind::Switch(Box::new(SwitchExpr { subject, arms })), pos });
        }
        self.ternary()
    }

    fn ternary(&mut self) -> Result<Expr, Diagnostic> {
        let cond = self.binary(0)?;
        if self.eat_op("?") {
            let a = self.expr()?;
            self.expect_op(":", "in 'cond ? a : b'")?;
            let b = self.expr()?;
            let pos = cond.pos;
            return Ok(Expr { kind: ExprKind::Ternary(Box::new(cond), Box::new(a), Box::new(b)), pos });
        }
        Ok(cond)
    }

    fn bin_op(&self, level: usize) -> Option<BinOp> {
        let t = self.peek();
        match (level, t) {
            (0, Tok::Kw("or")) => Some(BinOp::Or),
            (1, Tok::Kw("and")) => Some(BinOp::And),
            (2, Tok::Op("==")) => Some(BinOp::Eq),
            (2, Tok::Op("!=")) => Some(BinOp::Ne),
            (3, Tok::Op("<")) => Some(BinOp::Lt),
            (3, Tok::Op("<=")) => Some(BinOp::Le),
            (3, Tok::Op(">")) => Some(BinOp::Gt),
            (3, Tok::Op(">=")) => Some(BinOp::Ge),
            (4, Tok::Op("+")) => Some(BinOp::Add),
            (4, Tok::Op("-")) => Some(BinOp::Sub),
            (5, Tok::Op("*")) => Some(BinOp::Mul),
            (5, Tok::Op("/")) => Some(BinOp::Div),
            (5, Tok::Op("%")) => Some(BinOp::Rem),
            _ => None,
        }
    }

    fn binary(&mut self, level: usize) -> Result<Expr, Diagnostic> {
        if level == 6 {
            return self.unary();
        }
        let mut lhs = self.binary(level + 1)?;
        let mut chain = 0;
        while let Some(op) = self.bin_op(level) {
            // A chain nests to the left: bound it like any nesting.
            chain += 1;
            if chain > 2 * MAX_NESTING {
                return Err(Diagnostic::error(
                    self.pos(),
                    format!("operator chain longer than {} terms", 2 * MAX_NESTING),
                ));
            }
            self.bump();
            let rhs = self.binary(level + 1)?;
            let pos = lhs.pos;
            lhs = Expr { kind: ExprKind::Binary(op, Box::new(lhs), Box::new(rhs)), pos };
        }
        Ok(lhs)
    }

    fn unary(&mut self) -> Result<Expr, Diagnostic> {
        let pos = self.pos();
        let op = if self.eat_op("-") {
            UnOp::Neg
        } else if self.eat_op("+") {
            UnOp::Plus
        } else if self.is_kw("not") {
            self.bump();
            UnOp::Not
        } else {
            return self.postfix();
        };
        self.depth += 1;
        let e = if self.depth > MAX_NESTING {
            Err(Diagnostic::error(pos, format!("expression nested more than {MAX_NESTING} deep")))
        } else {
            self.unary()
        };
        self.depth -= 1;
        Ok(Expr { kind: ExprKind::Unary(op, Box::new(e?)), pos })
    }

    fn postfix(&mut self) -> Result<Expr, Diagnostic> {
        let mut e = self.primary()?;
        loop {
            if self.is_op("[") {
                self.bump();
                let idx = self.expr()?;
                self.expect_op("]", "closing the history reference x[n]")?;
                let pos = e.pos;
                e = Expr { kind: ExprKind::Index(Box::new(e), Box::new(idx)), pos };
            } else if self.is_op("(") {
                let ExprKind::Name(callee) = &e.kind else {
                    return self.err("a function name before '('");
                };
                let callee = callee.clone();
                self.bump();
                let mut args = Vec::new();
                while !self.eat_op(")") {
                    let name = match (self.peek().clone(), self.peek_at(1)) {
                        (Tok::Ident(n), Tok::Op("=")) => {
                            self.bump();
                            self.bump();
                            Some(n)
                        }
                        _ => None,
                    };
                    let value = self.expr()?;
                    args.push(Arg { name, value });
                    if !self.eat_op(",") && !self.is_op(")") {
                        return self.err(&format!("',' or ')' in the arguments of {callee}()"));
                    }
                }
                let pos = e.pos;
                e = Expr { kind: ExprKind::Call(callee, args), pos };
            } else {
                return Ok(e);
            }
        }
    }

    fn primary(&mut self) -> Result<Expr, Diagnostic> {
        let pos = self.pos();
        let kind = match self.peek().clone() {
            Tok::Int(i) => {
                self.bump();
                ExprKind::Int(i)
            }
            Tok::Float(f) => {
                self.bump();
                ExprKind::Float(f)
            }
            Tok::Str(s) => {
                self.bump();
                ExprKind::Str(s)
            }
            Tok::Kw("true") => {
                self.bump();
                ExprKind::Bool(true)
            }
            Tok::Kw("false") => {
                self.bump();
                ExprKind::Bool(false)
            }
            Tok::Ident(first) => {
                self.bump();
                let mut name = first;
                while self.is_op(".") {
                    self.bump();
                    name.push('.');
                    name.push_str(&self.ident("a name after '.'")?);
                }
                ExprKind::Name(name)
            }
            Tok::Op("(") => {
                self.bump();
                let e = self.expr()?;
                self.expect_op(")", "closing '('")?;
                return Ok(e);
            }
            Tok::Op("[") => {
                self.bump();
                let mut items = Vec::new();
                while !self.eat_op("]") {
                    items.push(self.expr()?);
                    if !self.eat_op(",") && !self.is_op("]") {
                        return self.err("',' or ']' in the tuple");
                    }
                }
                ExprKind::Tuple(items)
            }
            _ => return self.err("an expression"),
        };
        Ok(Expr { kind, pos })
    }
}
