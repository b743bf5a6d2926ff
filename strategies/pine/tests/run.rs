//! The checker, the compiler and the interpreter end to end: the example scripts run over seeded
//! bars, refusals name their construct at `file:line:col`, and the language's semantics
//! (var, history, blocks as values, loops, inlined functions, inputs) hold.

mod common;

use std::sync::Arc;

use pine::ta::{Cross, CrossKind, Ema};
use pine::{compile, Command, Direction, InputValue, Runner, Severity, StrategyState};

fn src(body: &str) -> String {
    format!("//@version=5\nstrategy(\"t\")\n{body}")
}

/// Runs a script over `n` seeded bars with a host that opens 1 unit on an entry and flattens on a
/// close (enough for scripts that read `strategy.position_size`); returns plots and commands per bar.
fn run(script: &str, inputs: &[(String, InputValue)], n: usize) -> (pine::Program, Vec<Vec<f64>>, Vec<Vec<Command>>) {
    let compiled = compile(script, Some("t.pine"), inputs).unwrap_or_else(|e| panic!("{e}"));
    let prog = Arc::new(compiled.program);
    // The seeded bars are one minute apart: the chart interval `request.security` builds on.
    let mut r = Runner::with_base_interval(Arc::clone(&prog), 60_000).unwrap_or_else(|e| panic!("{e}"));
    let mut state = StrategyState { equity: 10_000.0, position_avg_price: f64::NAN, ..Default::default() };
    let (mut plots, mut cmds) = (Vec::new(), Vec::new());
    for bar in common::bars(n, 42) {
        let out = r.step(&bar, &state).unwrap_or_else(|e| panic!("{e}"));
        plots.push(out.plots.clone());
        cmds.push(out.commands.clone());
        for c in &out.commands {
            match c {
                Command::Entry { .. } if state.position_size == 0.0 => {
                    state.position_size = 1.0;
                    state.position_avg_price = bar.close;
                }
                Command::Close { .. } | Command::CloseAll { .. } => {
                    state.position_size = 0.0;
                    state.position_avg_price = f64::NAN;
                }
                _ => {}
            }
        }
    }
    ((*prog).clone(), plots, cmds)
}

#[test]
fn examples_parse_check_and_run() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/examples");
    let mut names: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "pine"))
        .collect();
    names.sort();
    assert_eq!(names.len(), 11, "{names:?}");
    for path in names {
        let text = std::fs::read_to_string(&path).unwrap();
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        let compiled = compile(&text, Some(&name), &[]).unwrap_or_else(|e| panic!("{e}"));
        assert!(
            compiled.warnings.is_empty(),
            "{name}: examples stay free of repainting warnings: {:?}",
            compiled.warnings
        );
        let (prog, plots, cmds) = run(&text, &[], 600);
        assert!(!prog.plots().is_empty(), "{name}: no plots");
        for (i, p) in prog.plots().iter().enumerate() {
            assert!(plots.iter().any(|bar| !bar[i].is_nan()), "{name}: plot '{}' is na on every bar", p.title);
        }
        let entries = cmds.iter().flatten().filter(|c| matches!(c, Command::Entry { .. })).count();
        assert!(entries > 0, "{name}: no entries in 600 bars");
    }
}

#[test]
fn ema_cross_plots_and_enters_exactly_on_the_crosses() {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/ema_cross.pine")).unwrap();
    let (prog, plots, cmds) =
        run(&text, &[("fastLen".into(), InputValue::Int(5)), ("Slow length".into(), InputValue::Int(13))], 800);
    assert_eq!(
        prog.inputs().iter().map(|i| (i.name.as_str(), i.value.clone())).collect::<Vec<_>>(),
        vec![("fastLen", InputValue::Int(5)), ("slowLen", InputValue::Int(13))]
    );
    assert_eq!(prog.decl().initial_capital, "10000");
    assert_eq!(prog.decl().commission_value, "0.1");
    let (mut f, mut s, mut up, mut down) =
        (Ema::new(5), Ema::new(13), Cross::new(CrossKind::Over), Cross::new(CrossKind::Under));
    let mut crosses = 0;
    for (i, bar) in common::bars(800, 42).iter().enumerate() {
        let (fv, sv) = (f.update(bar.close), s.update(bar.close));
        assert!(plots[i][0] == fv || (fv.is_nan() && plots[i][0].is_nan()), "bar {i}: fast {} vs {fv}", plots[i][0]);
        assert!(plots[i][1] == sv || (sv.is_nan() && plots[i][1].is_nan()), "bar {i}: slow");
        let (o, u) = (up.update(fv, sv), down.update(fv, sv));
        let entry = cmds[i].iter().any(|c| matches!(c, Command::Entry { direction: Direction::Long, qty: None, .. }));
        let close = cmds[i].iter().any(|c| matches!(c, Command::Close { .. }));
        assert_eq!((entry, close), (o, u), "bar {i}");
        crosses += usize::from(o);
    }
    assert!(crosses > 5, "only {crosses} crosses");
    // ema(5) + ema(13) + two crosses of 2 bars: every plot has a value by then.
    assert_eq!(prog.warmup_bars(), 5 + 13 + 2 + 2);
    assert!(plots[prog.warmup_bars()..].iter().all(|p| p.iter().all(|v| !v.is_nan())));
    let Command::Entry { id, .. } = cmds.iter().flatten().find(|c| matches!(c, Command::Entry { .. })).unwrap() else {
        unreachable!()
    };
    assert_eq!(prog.text(*id), "Long");
}

#[test]
fn refusals_name_the_construct_at_file_line_col() {
    let cases: &[(&str, &str)] = &[
        ("x = foo(close)\n", "t.pine:3:5: unknown function 'foo'"),
        ("x = ta.kama(close, 3)\n", "t.pine:3:5: unknown function 'ta.kama'"),
        ("x = closee\n", "t.pine:3:5: unknown name 'closee'"),
        (
            "x = request.security(syminfo.tickerid, \"D\", close, lookahead = barmerge.lookahead_on)\n",
            "t.pine:3:64: request.security with lookahead = barmerge.lookahead_on is refused",
        ),
        ("n = bar_index\nx = ta.sma(close, n)\n", "t.pine:4:19: the length of ta.sma() must be a simple int"),
        ("x = ta.sma(close, 0)\n", "t.pine:3:19: the length of ta.sma() must be an int from 1"),
        ("x = 1\nx = 2\n", "t.pine:4:1: 'x' is already declared"),
        ("y := 1\n", "t.pine:3:1: unknown variable 'y'"),
        ("x = 1\nx := 1.5\n", "t.pine:4:1: cannot assign a float value to 'x', which is int"),
        ("x = na\n", "t.pine:3:1: the type of 'x' cannot be inferred from na"),
        ("x = if close > 0\n    1\nelse\n    \"a\"\n", "t.pine:3:5: 'x' is assigned something with no value (a block ending in a statement, or branches of different types)"),
        ("x = \"a\" + \"b\"\n", "t.pine:3:5: string concatenation is outside"),
        ("x = close > \"a\"\n", "t.pine:3:5: operator Gt cannot combine float and string"),
        (
            "strategy.entry(\"L\", 1)\n",
            "t.pine:3:21: the direction of strategy.entry must be strategy.long or strategy.short",
        ),
        (
            "strategy.entry(\"L\", strategy.long, oca_name = \"x\")\n",
            "t.pine:3:47: strategy.entry() has no argument 'oca_name'",
        ),
        ("strategy.exit(\"X\", \"L\")\n", "t.pine:3:1: strategy.exit needs at least one of profit"),
        ("x = ta.sma(close)\n", "t.pine:3:5: ta.sma() needs its 'length' argument"),
        ("m = ta.macd(close, 12, 26, 9)\n", "t.pine:3:5: ta.macd() returns a tuple"),
        ("[a, b] = ta.macd(close, 12, 26, 9)\n", "t.pine:3:1: ta.macd returns 3 values, 2 names given"),
        ("f(x) => f(x)\ny = f(1)\n", "t.pine:3:9: function 'f' calls itself"),
        ("break\n", "t.pine:3:1: break/continue outside a loop"),
        ("f() =>\n    break\n    1\nfor i = 0 to 3\n    x = f()\n", "t.pine:4:5: break/continue outside a loop"),
        (
            "f0(x) => x + 1\nf1(x) => f0(x) + f0(x)\nf2(x) => f1(x) + f1(x)\nf3(x) => f2(x) + f2(x)\nf4(x) => f3(x) + f3(x)\nf5(x) => f4(x) + f4(x)\nf6(x) => f5(x) + f5(x)\nf7(x) => f6(x) + f6(x)\nf8(x) => f7(x) + f7(x)\nf9(x) => f8(x) + f8(x)\nfa(x) => f9(x) + f9(x)\nfb(x) => fa(x) + fa(x)\nfc(x) => fb(x) + fb(x)\nfd(x) => fc(x) + fc(x)\nplot(fd(1))\n",
            "user functions are called from more than 10000 places",
        ),
        ("for x in close\n    y = x\n", "t.pine:3:10: for…in iterates over array.from(...) only"),
        ("x = input(-5, \"L\", minval = 0)\n", "t.pine:3:5: input 'x' = -5 is outside its range [0, -]"),
        ("x = input.int(5, \"L\", minval = 10)\n", "t.pine:3:5: input 'x' = 5 is outside its range [10, -]"),
        (
            "x = input.string(\"a\", options = [\"b\", \"c\"])\n",
            "t.pine:3:5: input 'x' = Str(\"a\") is not one of its options",
        ),
        ("x = array.new_float(3)\n", "t.pine:3:5: unknown function 'array.new_float'"),
        ("x = close[-1]\n", "t.pine:3:11: history offset must be a non-negative int"),
        ("x = close[100000000]\n", "t.pine:3:11: history offset 100000000 is beyond the 5000 bars a series keeps"),
        ("x = str.tostring(close)\n", "t.pine:3:5: unknown function 'str.tostring'"),
        ("plot(close, color = colour.red)\n", "t.pine:3:21: unknown name 'colour.red'"),
        ("hline(levell)\n", "t.pine:3:7: unknown name 'levell'"),
        ("bgcolor(close > opn ? color.red : na)\n", "t.pine:3:17: unknown name 'opn'"),
    ];
    for (body, want) in cases {
        match compile(&src(body), Some("t.pine"), &[]) {
            Ok(_) => panic!("{want}: compiled"),
            Err(e) => assert!(e.to_string().contains(want), "want '{want}', got '{e}'"),
        }
    }
    let e = compile("//@version=5\nindicator(\"x\")\n", Some("t.pine"), &[]).unwrap_err();
    assert!(e.to_string().contains("t.pine:2:1: indicator() scripts are not strategies"), "{e}");
    let e = compile("//@version=5\nx = 1\n", Some("t.pine"), &[]).unwrap_err();
    assert!(e.to_string().contains("missing strategy() declaration"), "{e}");
    let e = compile(&src("n = input.int(3)\n"), Some("t.pine"), &[("m".into(), InputValue::Int(1))]).unwrap_err();
    assert!(e.to_string().contains("no input named 'm' in the script (its inputs: n)"), "{e}");
    let e = compile(&src("n = input.int(3)\n"), Some("t.pine"), &[("n".into(), InputValue::Bool(true))]).unwrap_err();
    assert!(e.to_string().contains("t.pine:3:5: input 'n' is Int but was given Bool(true)"), "{e}");
}

#[test]
fn repainting_constructs_warn_one_case_each() {
    let cases: &[(&str, &str)] = &[
        ("varip int n = 0\n", "3:1: warning: varip 'n'"),
        ("x = barstate.isrealtime\n", "3:5: warning: barstate.isrealtime differs"),
        ("x = barstate.isconfirmed\n", "3:5: warning: barstate.isconfirmed differs"),
        ("x = timenow\n", "3:5: warning: timenow is the wall clock"),
        ("if close > open\n    x = ta.sma(close, 3)\n", "4:9: warning: ta.sma inside a conditional branch"),
        ("x = close > open ? ta.ema(close, 3) : 0.0\n", "3:20: warning: ta.ema inside a conditional branch"),
    ];
    for (body, want) in cases {
        let c = compile(&src(body), Some("t.pine"), &[]).unwrap_or_else(|e| panic!("{want}: {e}"));
        assert_eq!(c.warnings.len(), 1, "{want}: {:?}", c.warnings);
        assert_eq!(c.warnings[0].severity, Severity::Warning);
        assert!(c.warnings[0].to_string().contains(want), "want '{want}', got '{}'", c.warnings[0]);
    }
    let c = compile("//@version=5\nstrategy(\"t\", calc_on_every_tick = true)\n", None, &[]).unwrap();
    assert!(c.warnings[0].to_string().starts_with("2:36: warning: calc_on_every_tick"), "{}", c.warnings[0]);
    // A clean script has none.
    assert!(compile(&src("x = ta.sma(close, 3)\nplot(x)\n"), None, &[]).unwrap().warnings.is_empty());
}

#[test]
fn semantics_of_the_language() {
    // (body, bars, plot index, expected values on the last bar)
    let cases: &[(&str, &str, usize, f64)] = &[
        ("var counter: var initialises once", "var int c = 0\nc += 1\nplot(c)\n", 5, 5.0),
        ("plain variables recompute", "c = 0\nc += 1\nplot(c)\n", 5, 1.0),
        ("history of a variable", "x = bar_index * 2\nplot(x[3])\n", 10, 12.0),
        ("history before the first bar is na", "plot(na(close[20]) ? 1 : 0)\n", 10, 1.0),
        ("history of an expression", "plot((bar_index + 1)[2])\n", 10, 8.0),
        ("if as a value", "y = if bar_index % 2 == 0\n    10\nelse\n    20\nplot(y)\n", 4, 20.0),
        ("branches of different types are fine as a statement", "s = 0\nif close > 0\n    s := 5\n    1\nelse\n    \"a\"\nplot(s)\n", 1, 5.0),
        ("if without else gives na", "y = if false\n    1\nplot(na(y) ? 7 : 0)\n", 1, 7.0),
        ("switch with subject", "k = bar_index % 3\ny = switch k\n    0 => 100\n    1 => 200\n    => 300\nplot(y)\n", 5, 200.0),
        ("switch without subject falls to default", "y = switch\n    close < 0 => 1\n    => 2\nplot(y)\n", 1, 2.0),
        ("ternary chains right", "plot(false ? 1 : true ? 2 : 3)\n", 1, 2.0),
        ("for counts down without by", "s = 0\nfor i = 3 to 1\n    s := s * 10 + i\nplot(s)\n", 1, 321.0),
        ("for with by", "s = 0\nfor i = 0 to 10 by 5\n    s += i\nplot(s)\n", 1, 15.0),
        ("break and continue in if blocks", "s = 0\nfor i = 1 to 10\n    if i == 2\n        continue\n    if i == 5\n        break\n    s += i\nplot(s)\n", 1, 8.0),
        ("while", "i = 0\nwhile i < 7\n    i += 2\nplot(i)\n", 1, 8.0),
        ("for [i, x] in", "s = 0.0\nfor [i, x] in array.from(10.0, 20.0)\n    s += i * x\nplot(s)\n", 1, 20.0),
        ("user function, default argument", "f(x, k = 3) => x * k\nplot(f(2) + f(2, k = 5))\n", 1, 16.0),
        ("each call site keeps its own ta state", "f(src) => ta.sma(src, 2)\nplot(f(bar_index) - f(bar_index * 10))\n", 3, 1.5 - 15.0),
        ("multi-line function and tuple", "g(x) =>\n    a = x + 1\n    [a, a * 2]\n[p, q] = g(bar_index)\nplot(p + q)\n", 3, 9.0),
        ("division by zero is na", "plot(na(1 / 0) ? 1 : 0)\n", 1, 1.0),
        ("na compares false", "plot(na > 1 or na == na ? 1 : 0)\n", 1, 0.0),
        ("nz", "plot(nz(close[5], -1))\n", 1, -1.0),
        ("and/or/not precedence", "plot(not false and false ? 1 : 0)\n", 1, 0.0),
        ("int division is float", "plot(7 / 2)\n", 1, 3.5),
        ("math", "plot(math.max(1, 5, 3) + math.round(2.5) + math.pow(2, 3) + math.abs(-1))\n", 1, 17.0),
        ("macd tuple", "[m, s, h] = ta.macd(close, 3, 5, 2)\nplot(na(h) ? 0 : 1)\n", 6, 1.0),
        ("position size from the host", "plot(strategy.position_size)\n", 1, 0.0),
        ("bar_index and time", "plot(bar_index)\nplot(time)\n", 3, 2.0),
        ("var in a function per call site", "f() =>\n    var int n = 0\n    n += 1\n    n\nplot(f() + f())\n", 4, 8.0),
        ("barssince", "plot(ta.barssince(bar_index == 1))\n", 5, 3.0),
        ("an operand keeps the value it had when read", "var x = 1\ng() =>\n    x := 10\n    0\ny = x + g()\nplot(y)\n", 1, 1.0),
        ("break in a while's if", "i = 0\nwhile true\n    i += 1\n    if i == 4\n        break\nplot(i)\n", 1, 4.0),
        ("continue in for…in", "s = 0.0\nfor x in array.from(1.0, 2.0, 3.0)\n    if x == 2\n        continue\n    s += x\nplot(s)\n", 1, 4.0),
        ("break in for…in", "s = 0.0\nfor x in array.from(1.0, 2.0, 3.0)\n    if x == 2\n        break\n    s += x\nplot(s)\n", 1, 1.0),
        ("break leaves the inner loop only", "s = 0\nfor i = 1 to 3\n    for j = 1 to 3\n        if j == 2\n            break\n        s += 1\nplot(s)\n", 1, 3.0),
        ("a ta call as an if condition", "c = 0\nif ta.crossover(bar_index % 4, 1.5)\n    c := 1\nplot(c)\n", 7, 1.0),
        ("a ta call as a ?: condition", "plot(ta.rising(bar_index, 1) ? 5 : 6)\n", 2, 5.0),
        ("a constant keeps its history", "k = 5\nplot(k[1])\n", 2, 5.0),
        ("math.round ties upwards", "plot(math.round(-2.5) * 10 + math.round(2.5) + math.round(1.25, 1))\n", 1, -20.0 + 3.0 + 1.3),
    ];
    for (name, body, n, want) in cases {
        let (_, plots, _) = run(&src(body), &[], *n);
        let got = plots[n - 1][0];
        assert!(got == *want, "{name}: got {got}, want {want}");
    }
    // Pine 6 short-circuits `and`/`or`: a call on the right runs only when needed (and warns).
    let v6 = "//@version=6\nstrategy(\"t\")\nvar int calls = 0\nf() =>\n    calls += 1\n    true\nx = bar_index < 0 and f()\ny = bar_index >= 0 or f()\nz = bar_index >= 0 and f()\nplot(calls)\n";
    let (_, plots, _) = run(v6, &[], 3);
    assert_eq!(plots[2][0], 3.0, "only the third f() runs, once per bar");
    let v5 = v6.replace("@version=6", "@version=5");
    let (_, plots, _) = run(&v5, &[], 3);
    assert_eq!(plots[2][0], 9.0, "Pine 5 runs all three");
    // Nesting up to the parser's bound compiles and runs (the compiler and runner recurse too).
    let deep = format!("plot({}1{})\n", "(1 + ".repeat(60), ")".repeat(60));
    let (_, plots, _) = run(&src(&deep), &[], 1);
    assert_eq!(plots[0][0], 61.0);
    let chain = format!("plot(1{})\n", " + 1".repeat(128));
    let (_, plots, _) = run(&src(&chain), &[], 1);
    assert_eq!(plots[0][0], 129.0);
    // The plot titles: given or numbered.
    let (prog, _, _) = run(&src("plot(close, \"c\")\nplot(open)\n"), &[], 1);
    assert_eq!(prog.plots().iter().map(|p| p.title.as_str()).collect::<Vec<_>>(), ["c", "plot 2"]);
}

#[test]
fn orders_alerts_and_declaration_are_plain_data() {
    let body = "strategy.entry(\"S\", strategy.short, qty = 2, limit = 99.5, comment = \"c\")\nstrategy.exit(\"X\", \"S\", profit = 10, loss = 5, trail_points = 3, trail_offset = 1, qty_percent = 50)\nstrategy.close(\"S\", qty = 1)\nstrategy.close_all()\nstrategy.cancel(\"S\")\nstrategy.cancel_all()\nalert(\"hello\")\nalertcondition(bar_index == 0, \"first\", \"first bar\")\nplot(1)\n";
    let text = format!("//@version=5\nstrategy(\"d\", initial_capital = 500, default_qty_type = strategy.percent_of_equity, default_qty_value = 12.5, pyramiding = 2, commission_type = strategy.commission.cash_per_order, commission_value = 1.25, process_orders_on_close = true)\n{body}");
    let prog = Arc::new(compile(&text, None, &[]).unwrap().program);
    let d = prog.decl();
    assert_eq!(
        (
            d.initial_capital.as_str(),
            d.default_qty_value.as_str(),
            d.pyramiding,
            d.commission_value.as_str(),
            d.process_orders_on_close
        ),
        ("500", "12.5", 2, "1.25", true)
    );
    assert_eq!(d.default_qty_type, pine::QtyType::PercentOfEquity);
    assert_eq!(d.commission_type, pine::CommissionType::CashPerOrder);
    // The seeded bars are one minute apart: the chart interval `request.security` builds on.
    let mut r = Runner::with_base_interval(Arc::clone(&prog), 60_000).unwrap_or_else(|e| panic!("{e}"));
    let bars = common::bars(2, 1);
    let out = r.step(&bars[0], &StrategyState::default()).unwrap().clone();
    assert_eq!(out.commands.len(), 6);
    let Command::Entry { id, direction, qty, limit, stop, comment } = &out.commands[0] else {
        panic!("{:?}", out.commands[0])
    };
    assert_eq!((prog.text(*id), *direction, *qty, *limit, *stop), ("S", Direction::Short, Some(2.0), Some(99.5), None));
    assert_eq!(prog.text(comment.unwrap()), "c");
    let Command::Exit { from_entry, profit, loss, trail_points, trail_offset, qty_percent, stop, .. } =
        &out.commands[1]
    else {
        panic!()
    };
    assert_eq!(
        (prog.text(from_entry.unwrap()), *profit, *loss, *trail_points, *trail_offset, *qty_percent, *stop),
        ("S", Some(10.0), Some(5.0), Some(3.0), Some(1.0), Some(50.0), None)
    );
    assert!(matches!(out.commands[2], Command::Close { qty: Some(1.0), .. }));
    assert!(matches!(out.commands[3], Command::CloseAll { comment: None }));
    assert!(matches!(out.commands[4], Command::Cancel { .. }));
    assert!(matches!(out.commands[5], Command::CancelAll));
    assert_eq!(out.alerts.len(), 2);
    assert_eq!(prog.text(out.alerts[1].message), "first bar");
    // The alertcondition holds on bar 0 only.
    assert_eq!(r.step(&bars[1], &StrategyState::default()).unwrap().alerts.len(), 1);
}

#[test]
fn a_runaway_loop_is_an_error_naming_its_line() {
    let prog = Arc::new(compile(&src("i = 0\nwhile true\n    i += 1\n"), Some("t.pine"), &[]).unwrap().program);
    let mut r = Runner::new(prog);
    let e = r.step(&common::bars(1, 1)[0], &StrategyState::default()).unwrap_err();
    assert!(e.to_string().starts_with("t.pine:4:1: loop ran more than 1000000 iterations"), "{e}");
}

#[test]
fn a_runner_can_move_to_another_thread() {
    // The engine runs strategies inside actors: the runner and the program must be Send (and the
    // program shareable across runners of a sweep).
    fn send<T: Send>(_: &T) {}
    fn share<T: Send + Sync>(_: &T) {}
    let prog = Arc::new(compile(&src("plot(close)\n"), None, &[]).unwrap().program);
    share(&prog);
    let runner = Runner::new(Arc::clone(&prog));
    send(&runner);
    let handle = std::thread::spawn(move || {
        let mut runner = runner;
        runner.step(&common::bars(1, 3)[0], &StrategyState::default()).map(|o| o.plots[0]).ok()
    });
    assert_eq!(handle.join().unwrap(), Some(common::bars(1, 3)[0].close));
}

#[test]
fn a_string_input_switches_the_average_by_title() {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/functions_switch.pine")).unwrap();
    let bars = common::bars(50, 42);
    // (mode, a reference average of length n)
    type Reference = fn(usize) -> Box<dyn FnMut(f64) -> f64>;
    let cases: &[(&str, Reference)] = &[
        ("sma", |n| {
            let mut s = pine::ta::Sma::new(n);
            Box::new(move |x| s.update(x))
        }),
        ("ema", |n| {
            let mut s = Ema::new(n);
            Box::new(move |x| s.update(x))
        }),
        ("wma", |n| {
            let mut s = pine::ta::Wma::new(n);
            Box::new(move |x| s.update(x))
        }),
    ];
    for (mode, reference) in cases {
        let (_, plots, _) = run(
            &text,
            &[("MA type".into(), InputValue::Str(mode.to_string())), ("len".into(), InputValue::Int(7))],
            50,
        );
        let mut r = reference(7);
        for (i, bar) in bars.iter().enumerate() {
            let want = r(bar.close);
            assert!(
                plots[i][0] == want || (want.is_nan() && plots[i][0].is_nan()),
                "{mode}: bar {i}: {} vs {want}",
                plots[i][0]
            );
        }
    }
    let e = compile(&text, None, &[("MA type".into(), InputValue::Str("hma".into()))]).unwrap_err();
    assert!(e.to_string().contains("input 'mode' = Str(\"hma\") is not one of its options"), "{e}");
}

/// Pine v5/v6 name the rolling sum `math.sum` (there is no `ta.sum` on TradingView; the witness's
/// PyneCore refuses it): it is the same state machine as Keel's `ta.sum`, with its warm-up.
#[test]
fn math_sum_is_the_rolling_sum() {
    let (prog, plots, _) = run(&src("plot(math.sum(close, 3), \"m\")\nplot(ta.sum(close, 3), \"t\")\n"), &[], 50);
    assert_eq!(prog.plots().len(), 2);
    let bars = common::bars(50, 42);
    for (i, p) in plots.iter().enumerate() {
        if i < 2 {
            assert!(p[0].is_nan() && p[1].is_nan(), "bar {i}: warm-up is na");
        } else {
            let want = bars[i - 2..=i].iter().map(|b| b.close).sum::<f64>();
            assert!((p[0] - want).abs() < 1e-9, "bar {i}: {} vs {want}", p[0]);
            assert_eq!(p[0].to_bits(), p[1].to_bits(), "bar {i}");
        }
    }
}

/// Pine compares floats with an absolute tolerance of 1e-10 (PyneCore measured it on TradingView;
/// it is also what exact decimals say for 2-decimal prices): 108.9 - 108.8 is not above 0.1, and
/// 0.1 + 0.2 equals 0.3. Found by the witness on a `high - close > 0.1` bar.
#[test]
fn float_comparisons_are_tolerant_to_1e_10() {
    let cases: &[(&str, f64)] = &[
        ("108.9 - 108.8 > 0.1", 0.0),
        ("108.9 - 108.8 >= 0.1", 1.0),
        ("108.9 - 108.8 <= 0.1", 1.0),
        ("0.1 < 108.9 - 108.8", 0.0),
        ("0.1 + 0.2 == 0.3", 1.0),
        ("0.1 + 0.2 != 0.3", 0.0),
        ("0.3 >= 0.1 + 0.2", 1.0),
        ("0.3 + 2e-10 > 0.3", 1.0),
        ("0.3 + 2e-10 == 0.3", 0.0),
        ("close + 0.00000000005 == close", 1.0),
        ("close + 0.00000000005 > close", 0.0),
        ("close > na", 0.0),
        ("close != na", 0.0),
    ];
    for (expr, want) in cases {
        let (_, plots, _) = run(&src(&format!("plot({expr} ? 1 : 0)\n")), &[], 3);
        assert_eq!(plots[2][0], *want, "{expr}");
    }
}

#[test]
fn order_calls_name_their_position_arguments_and_direction() {
    let script = src(
        "f() =>\n    strategy.entry(\"F\", strategy.long)\nif close > open\n    strategy.entry(\"L\", strategy.long, limit = close)\n    strategy.entry(\"S\", strategy.short)\nf()\nstrategy.exit(\"X\", \"L\", loss = 10, qty_percent = 50)\nstrategy.close(\"L\")\n",
    );
    let compiled = compile(&script, Some("t.pine"), &[]).unwrap_or_else(|e| panic!("{e}"));
    type Call<'a> = (&'a str, u32, u32, Vec<&'a str>, Option<Direction>);
    let calls: Vec<Call> = compiled
        .program
        .order_calls()
        .iter()
        .map(|c| (c.function, c.pos.line, c.pos.col, c.args.clone(), c.direction))
        .collect();
    let want: Vec<Call> = vec![
        ("strategy.entry", 6, 5, vec!["id", "direction", "limit"], Some(Direction::Long)),
        ("strategy.entry", 7, 5, vec!["id", "direction"], Some(Direction::Short)),
        // Inside a user function: once per call site, at the call inside the function.
        ("strategy.entry", 4, 5, vec!["id", "direction"], Some(Direction::Long)),
        ("strategy.exit", 9, 1, vec!["id", "from_entry", "loss", "qty_percent"], None),
        ("strategy.close", 10, 1, vec!["id"], None),
    ];
    assert_eq!(calls, want);
    assert_eq!(compiled.program.file(), Some("t.pine"));
}
