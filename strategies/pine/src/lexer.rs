//! The lexer: Pine source to tokens, with its indentation rules turned into `Indent`/`Dedent` tokens.
//!
//! Pine's layout rules: a line indented by a multiple of 4 spaces (a tab counts 4) opens or
//! continues a block; a line indented by anything else continues the previous line; inside
//! parentheses and brackets, line breaks are ignored. `//` starts a comment, and the first
//! `//@version=N` comment gives the language version.

use crate::error::{Diagnostic, Pos};

/// What a token is.
#[derive(Debug, Clone, PartialEq)]
pub enum Tok {
    /// An integer literal.
    Int(i64),
    /// A float literal.
    Float(f64),
    /// A string literal, escapes resolved.
    Str(String),
    /// A name; dotted names (`ta.sma`) are joined by the parser.
    Ident(String),
    /// A keyword (`if`, `var`, `and`, `true`...).
    Kw(&'static str),
    /// An operator or punctuation (`+`, `:=`, `=>`, `(`...).
    Op(&'static str),
    /// The end of a logical line.
    Newline,
    /// A block opens (one level deeper).
    Indent,
    /// A block closes.
    Dedent,
    /// The end of the script.
    Eof,
}

/// A token and where it starts.
#[derive(Debug, Clone, PartialEq)]
pub struct Token {
    /// The token.
    pub tok: Tok,
    /// Its position.
    pub pos: Pos,
}

const KEYWORDS: &[&str] = &[
    "var", "varip", "if", "else", "for", "to", "by", "in", "while", "switch", "and", "or", "not", "true", "false",
    "break", "continue", "import", "export", "method", "type", "const", "simple", "series",
];

// Longest first, so `:=` wins over `:`.
const OPS: &[&str] = &[
    ":=", "=>", "==", "!=", "<=", ">=", "+=", "-=", "*=", "/=", "%=", "+", "-", "*", "/", "%", "<", ">", "=", "?", ":",
    ",", "(", ")", "[", "]", ".",
];

/// The tokens of a script and the version its `//@version=` comment names.
#[derive(Debug)]
pub struct Lexed {
    /// The tokens, ending with `Eof`.
    pub tokens: Vec<Token>,
    /// The `//@version=` number, if the script has one.
    pub version: Option<(u32, Pos)>,
}

/// Splits `src` into tokens.
pub fn lex(src: &str) -> Result<Lexed, Diagnostic> {
    let mut tokens: Vec<Token> = Vec::new();
    let mut version = None;
    let mut levels: Vec<usize> = vec![0];
    let mut depth: i32 = 0; // open ( and [
                            // Where the last code line ended: a line end is reported there.
    let mut prev_end = Pos { line: 1, col: 1 };
    for (li, raw) in src.lines().enumerate() {
        let line_no = li as u32 + 1;
        let chars: Vec<char> = raw.chars().collect();
        // Indentation width: tabs count 4.
        let mut i = 0;
        let mut width = 0;
        while i < chars.len() && (chars[i] == ' ' || chars[i] == '\t') {
            width += if chars[i] == '\t' { 4 } else { 1 };
            i += 1;
        }
        let rest: String = chars[i..].iter().collect();
        if let Some(v) = rest.trim_end().strip_prefix("//@version=") {
            if version.is_none() {
                let pos = Pos { line: line_no, col: i as u32 + 1 };
                let n = v.trim().parse::<u32>().map_err(|_| Diagnostic::error(pos, format!("bad //@version: {v}")))?;
                version = Some((n, pos));
            }
        }
        if rest.trim().is_empty() || rest.trim_start().starts_with("//") {
            continue;
        }
        let start_pos = Pos { line: line_no, col: i as u32 + 1 };
        let continuation = depth > 0 || (width % 4 != 0 && !tokens.is_empty());
        if !continuation {
            if !tokens.is_empty() {
                tokens.push(Token { tok: Tok::Newline, pos: prev_end });
            }
            let cur = *levels.last().unwrap_or(&0);
            if width > cur {
                if width != cur + 4 {
                    return Err(Diagnostic::error(
                        start_pos,
                        "unexpected indentation: a block is indented by 4 spaces or one tab",
                    ));
                }
                levels.push(width);
                tokens.push(Token { tok: Tok::Indent, pos: start_pos });
            } else {
                while width < *levels.last().unwrap_or(&0) {
                    levels.pop();
                    tokens.push(Token { tok: Tok::Dedent, pos: start_pos });
                }
            }
        }
        lex_line(&chars, i, line_no, &mut tokens, &mut depth)?;
        prev_end = Pos { line: line_no, col: raw.trim_end().chars().count() as u32 + 1 };
    }
    let end = Pos { line: src.lines().count() as u32 + 1, col: 1 };
    if depth > 0 {
        return Err(Diagnostic::error(end, "unclosed parenthesis or bracket at the end of the script"));
    }
    if !tokens.is_empty() {
        tokens.push(Token { tok: Tok::Newline, pos: prev_end });
    }
    while levels.len() > 1 {
        levels.pop();
        tokens.push(Token { tok: Tok::Dedent, pos: end });
    }
    tokens.push(Token { tok: Tok::Eof, pos: end });
    Ok(Lexed { tokens, version })
}

fn lex_line(chars: &[char], mut i: usize, line: u32, out: &mut Vec<Token>, depth: &mut i32) -> Result<(), Diagnostic> {
    while i < chars.len() {
        let c = chars[i];
        let pos = Pos { line, col: i as u32 + 1 };
        if c == ' ' || c == '\t' || c == '\r' {
            i += 1;
            continue;
        }
        if c == '/' && chars.get(i + 1) == Some(&'/') {
            break;
        }
        if c.is_ascii_digit() || (c == '.' && chars.get(i + 1).is_some_and(|d| d.is_ascii_digit())) {
            let start = i;
            let mut is_float = false;
            while i < chars.len() && chars[i].is_ascii_digit() {
                i += 1;
            }
            if i < chars.len() && chars[i] == '.' {
                is_float = true;
                i += 1;
                while i < chars.len() && chars[i].is_ascii_digit() {
                    i += 1;
                }
            }
            if i < chars.len() && (chars[i] == 'e' || chars[i] == 'E') {
                let mut j = i + 1;
                if j < chars.len() && (chars[j] == '+' || chars[j] == '-') {
                    j += 1;
                }
                if j < chars.len() && chars[j].is_ascii_digit() {
                    is_float = true;
                    i = j;
                    while i < chars.len() && chars[i].is_ascii_digit() {
                        i += 1;
                    }
                }
            }
            let text: String = chars[start..i].iter().collect();
            let tok = if is_float {
                Tok::Float(text.parse().map_err(|_| Diagnostic::error(pos, format!("bad number literal {text}")))?)
            } else {
                Tok::Int(
                    text.parse().map_err(|_| Diagnostic::error(pos, format!("integer literal {text} is too large")))?,
                )
            };
            out.push(Token { tok, pos });
            continue;
        }
        if c.is_alphabetic() || c == '_' {
            let start = i;
            while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
            let text: String = chars[start..i].iter().collect();
            let tok = match KEYWORDS.iter().find(|k| **k == text) {
                Some(k) => Tok::Kw(k),
                None => Tok::Ident(text),
            };
            out.push(Token { tok, pos });
            continue;
        }
        if c == '"' || c == '\'' {
            let mut s = String::new();
            i += 1;
            loop {
                match chars.get(i) {
                    None => return Err(Diagnostic::error(pos, "unterminated string literal")),
                    Some(&q) if q == c => {
                        i += 1;
                        break;
                    }
                    Some('\\') => {
                        let e = chars.get(i + 1).copied().unwrap_or('\\');
                        s.push(match e {
                            'n' => '\n',
                            't' => '\t',
                            other => other,
                        });
                        i += 2;
                    }
                    Some(&ch) => {
                        s.push(ch);
                        i += 1;
                    }
                }
            }
            out.push(Token { tok: Tok::Str(s), pos });
            continue;
        }
        let rest: String = chars[i..chars.len().min(i + 2)].iter().collect();
        match OPS.iter().find(|op| rest.starts_with(**op)) {
            Some(op) => {
                match *op {
                    "(" | "[" => *depth += 1,
                    ")" | "]" => *depth -= 1,
                    _ => {}
                }
                if *depth < 0 {
                    return Err(Diagnostic::error(pos, format!("unmatched '{op}'")));
                }
                out.push(Token { tok: Tok::Op(op), pos });
                i += op.len();
            }
            None => return Err(Diagnostic::error(pos, format!("unexpected character '{c}'"))),
        }
    }
    Ok(())
}
