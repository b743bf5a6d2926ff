//! Parser tests: what parses, into what shape, and errors with their `line:col`.

use pine::ast::{BinOp, ExprKind, StmtKind};
use pine::parser::parse;

fn v5(body: &str) -> String {
    format!("//@version=5\nstrategy(\"t\")\n{body}")
}

#[test]
fn accepts_the_subset() {
    let cases: &[(&str, &str)] = &[
        ("declaration and var", "var float x = na\nx := close\n"),
        ("tuple", "[a, b] = f()\n"),
        ("if else if else", "if a\n    x := 1\nelse if b\n    x := 2\nelse\n    x := 3\n"),
        ("ternary", "x = a ? 1 : b ? 2 : 3\n"),
        ("for to by", "for i = 0 to 10 by 2\n    s += i\n"),
        ("for in", "for x in arr\n    s += x\n"),
        ("for [i, x] in", "for [i, x] in arr\n    s += x * i\n"),
        ("while break continue", "while i < 10\n    i += 1\n    if i == 3\n        continue\n    break\n"),
        ("switch with subject", "x = switch s\n    \"a\" => 1\n    \"b\" => 2\n    => 3\n"),
        (
            "switch without subject",
            "switch\n    a > b => strategy.entry(\"L\", strategy.long)\n    =>\n        x := 1\n",
        ),
        ("single-line function", "f(x, y = 2) => x * y\n"),
        ("multi-line function", "f(x) =>\n    a = x + 1\n    [a, a * 2]\n"),
        ("history and named args", "strategy.entry(\"L\", strategy.long, qty = 2, limit = close[1] - 1)\n"),
        ("if as a value", "y = if a\n    1\nelse\n    2\nplot(y)\n"),
        ("continuation line", "x = a +\n  b +\n     c\n"),
        ("line break inside parentheses", "plot(ta.sma(close,\n    14), title = \"s\")\n"),
        ("tab indentation", "if a\n\tx := 1\n"),
        ("version 6", ""),
    ];
    for (name, body) in cases {
        let src = if *name == "version 6" { "//@version=6\nstrategy(\"t\")\n".to_string() } else { v5(body) };
        if let Err(e) = parse(&src) {
            panic!("{name}: {e}");
        }
    }
}

#[test]
fn precedence_follows_pine() {
    let s = parse(&v5("x = a or b and c == d + e * f\n")).unwrap();
    let StmtKind::Decl { value, .. } = &s.body.stmts[1].kind else { panic!("not a declaration") };
    let ExprKind::Binary(BinOp::Or, _, rhs) = &value.kind else { panic!("or is not the root: {value:?}") };
    let ExprKind::Binary(BinOp::And, _, rhs) = &rhs.kind else { panic!("and under or") };
    let ExprKind::Binary(BinOp::Eq, _, rhs) = &rhs.kind else { panic!("== under and") };
    let ExprKind::Binary(BinOp::Add, _, rhs) = &rhs.kind else { panic!("+ under ==") };
    assert!(matches!(rhs.kind, ExprKind::Binary(BinOp::Mul, _, _)));
    // `not` binds tighter than `and`; `-` tighter than `*`.
    let s = parse(&v5("x = not a and b\n")).unwrap();
    let StmtKind::Decl { value, .. } = &s.body.stmts[1].kind else { panic!() };
    assert!(matches!(value.kind, ExprKind::Binary(BinOp::And, _, _)), "{value:?}");
}

#[test]
fn errors_carry_line_and_column() {
    let cases: &[(&str, &str)] = &[
        ("//@version=4\nstrategy(\"t\")\n", "1:1: //@version=4 is not supported"),
        ("strategy(\"t\")\n", "1:1: missing //@version=5"),
        ("//@version=5\nx = (1 + 2\n", "unclosed parenthesis"),
        ("//@version=5\nif a\n        x := 1\n", "3:9: unexpected indentation"),
        ("//@version=5\nif a\nx := 1\n", "3:1: expected an indented block (4 spaces or a tab) for if"),
        ("//@version=5\nx = 1 +\n", "2:8: expected an expression"),
        ("//@version=5\nx = a ? 1\n", "2:10: expected ':' in 'cond ? a : b'"),
        ("//@version=5\nfor i = 0 10\n    x := i\n", "2:11: expected 'to' in 'for i = from to to'"),
        ("//@version=5\nx = \"open\n", "2:5: unterminated string literal"),
        ("//@version=5\nx = 1 $ 2\n", "2:7: unexpected character '$'"),
        ("//@version=5\ntype P\n    float x\n", "2:1: 'type' is not supported"),
        ("//@version=5\nx = f(1 2)\n", "2:9: expected ',' or ')' in the arguments of f()"),
        ("//@version=5\nvar x\n", "2:5: expected a variable declaration"),
        ("//@version=5\nx = switch a\n1 => 2\n", "3:1: expected an indented list"),
        ("//@version=5\nline l = na\n", "2:1: type 'line' is not supported"),
    ];
    for (src, want) in cases {
        match parse(src) {
            Ok(_) => panic!("{want}: parsed"),
            Err(e) => assert!(e.to_string().contains(want), "want '{want}', got '{e}'"),
        }
    }
    // Pathological nesting is an error, not a stack overflow.
    for deep in [format!("x = {}1{}\n", "(".repeat(5000), ")".repeat(5000)), format!("x = {}1\n", "-".repeat(5000))] {
        let e = parse(&format!("//@version=5\n{deep}")).unwrap_err();
        assert!(e.to_string().contains("nested more than 64 deep"), "{e}");
    }
    let loops: String = (0..100).map(|i| format!("{}while true\n", "    ".repeat(i))).collect();
    let e = parse(&format!("//@version=5\n{loops}{}break\n", "    ".repeat(100))).unwrap_err();
    assert!(e.to_string().contains("nested more than 64 deep"), "{e}");
    let e = parse(&format!("//@version=5\nx = 1{}\n", " + 1".repeat(5000))).unwrap_err();
    assert!(e.to_string().contains("operator chain longer than 128 terms"), "{e}");
    let mut e = parse("//@version=5\nx = 1 $ 2\n").unwrap_err();
    e.file = Some("script.pine".into());
    assert_eq!(e.to_string(), "script.pine:2:7: unexpected character '$'");
}
