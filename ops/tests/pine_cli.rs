//! `keel pine check` and `keel pine plots` through the real binary: each repainting warning at its
//! `file:line:col`, errors with their positions and a non-zero exit, `--strict`, `--input`
//! overrides, the summary line, and plotted values written per bar (`na` empty).

use std::path::Path;
use std::process::{Command, Output};

/// Writes `body` under a v5 `strategy()` header as `name` in `dir`.
fn script(dir: &Path, name: &str, body: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, format!("//@version=5\nstrategy(\"t\")\n{body}")).expect("write script");
    name.to_string()
}

/// `keel pine ARGS…` in `dir`.
fn keel_pine(dir: &Path, args: &[&str]) -> (Output, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_keel"))
        .arg("pine")
        .args(args)
        .current_dir(dir)
        .env_remove("RUST_LOG")
        .output()
        .expect("keel runs");
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    (out, stdout)
}

#[test]
fn each_repainting_warning_is_reported_at_its_position_and_exits_zero() {
    let dir = tempfile::tempdir().expect("temp dir");
    // (script body after the two header lines, the expected `line:col: warning: ` prefix, a word of the message)
    let cases: &[(&str, &str, &str)] = &[
        ("varip int n = 0\nplot(n)\n", "3:1: warning: ", "varip 'n'"),
        ("x = barstate.isrealtime ? 1 : 0\nplot(x)\n", "3:5: warning: ", "barstate.isrealtime"),
        ("plot(barstate.isconfirmed ? close : na)\n", "3:6: warning: ", "barstate.isconfirmed"),
        ("t = timenow\nplot(t)\n", "3:5: warning: ", "timenow"),
        (
            "s = 0.0\nif close > open\n    s := ta.sma(close, 3)\nplot(s)\n",
            "5:10: warning: ",
            "ta.sma inside a conditional",
        ),
        ("s = close > open ? ta.ema(close, 3) : 0.0\nplot(s)\n", "3:20: warning: ", "ta.ema inside a conditional"),
        (
            "s = 0.0\nfor i = 0 to 2\n    s += ta.rma(close, 3)\nplot(s)\n",
            "5:10: warning: ",
            "ta.rma inside a conditional",
        ),
    ];
    for (i, (body, at, what)) in cases.iter().enumerate() {
        let name = script(dir.path(), &format!("w{i}.pine"), body);
        let (out, stdout) = keel_pine(dir.path(), &["check", &name]);
        assert!(
            out.status.success(),
            "{name}: warnings alone exit 0: {stdout} {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let first = stdout.lines().next().unwrap_or_default();
        assert!(first.starts_with(&format!("{name}:{at}")), "{body:?}: {stdout}");
        assert!(first.contains(what), "{body:?}: {stdout}");
        assert_eq!(stdout.lines().filter(|l| l.contains("warning:")).count(), 1, "{body:?}: {stdout}");
        assert!(stdout.lines().last().unwrap_or_default().starts_with("inputs: "), "{stdout}");

        let (out, stdout) = keel_pine(dir.path(), &["check", "--strict", &name]);
        assert!(!out.status.success(), "{name}: --strict makes the warning an error: {stdout}");
        assert!(stdout.starts_with(&format!("{name}:{at}")), "{stdout}");
        assert!(String::from_utf8_lossy(&out.stderr).contains("--strict"), "{}", String::from_utf8_lossy(&out.stderr));
    }
    // calc_on_every_tick lives in the declaration line itself.
    std::fs::write(
        dir.path().join("tick.pine"),
        "//@version=5\nstrategy(\"t\", calc_on_every_tick = true)\nplot(close)\n",
    )
    .expect("write");
    let (out, stdout) = keel_pine(dir.path(), &["check", "tick.pine"]);
    assert!(out.status.success(), "{stdout}");
    assert!(stdout.starts_with("tick.pine:2:36: warning: calc_on_every_tick"), "{stdout}");
    let (out, _) = keel_pine(dir.path(), &["check", "--strict", "tick.pine"]);
    assert!(!out.status.success());

    // Pine 6 evaluates `and`/`or` lazily, so a ta.* call on the right runs only on some bars (Pine 5
    // evaluates both sides: no warning there).
    let lazy = "strategy(\"t\")\nb = close > open and ta.crossover(close, open)\nplot(b ? 1 : 0)\n";
    for (version, warns) in [(6, true), (5, false)] {
        std::fs::write(dir.path().join("lazy.pine"), format!("//@version={version}\n{lazy}")).expect("write");
        let (out, stdout) = keel_pine(dir.path(), &["check", "lazy.pine"]);
        assert!(out.status.success(), "{stdout}");
        assert_eq!(
            stdout.starts_with("lazy.pine:3:22: warning: ta.crossover inside a conditional"),
            warns,
            "v{version}: {stdout}"
        );
    }
}

#[test]
fn lookahead_and_other_errors_carry_their_position_and_fail() {
    let dir = tempfile::tempdir().expect("temp dir");
    // Lookahead is not a warning: the issue refuses it outright (it reads future bars).
    let cases: &[(&str, &str)] = &[
        (
            "h = request.security(syminfo.tickerid, \"D\", high, lookahead = barmerge.lookahead_on)\nplot(h)\n",
            "3:63: request.security with lookahead = barmerge.lookahead_on is refused",
        ),
        ("x = foo(1)\nplot(x)\n", "3:5: unknown function 'foo'"),
        ("plot(close)\nx = 1 +\n", "4:"),
    ];
    for (i, (body, at)) in cases.iter().enumerate() {
        let name = script(dir.path(), &format!("e{i}.pine"), body);
        let (out, stdout) = keel_pine(dir.path(), &["check", &name]);
        assert!(!out.status.success(), "{name}: an error exits non-zero: {stdout}");
        assert!(stdout.starts_with(&format!("{name}:{at}")), "{body:?}: {stdout}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("1 error(s)"),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(!stdout.contains("inputs: "), "no summary for a refused script: {stdout}");
    }
}

#[test]
fn the_summary_lists_inputs_plots_and_warm_up_and_inputs_override_by_name_or_title() {
    let dir = tempfile::tempdir().expect("temp dir");
    let name = script(
        dir.path(),
        "s.pine",
        "fastLen = input.int(9, \"Fast length\", minval = 1)\nuseHl = input.bool(false, \"Use hl2\")\nf = ta.sma(useHl ? hl2 : close, fastLen)\nplot(f, \"fast\")\nplot(close, \"close\")\n",
    );
    let (out, stdout) = keel_pine(dir.path(), &["check", &name]);
    assert!(out.status.success(), "{stdout}");
    assert_eq!(stdout.trim_end(), "inputs: fastLen=9, useHl=false; plots: fast, close; warm-up: 9 bars");

    let (out, stdout) = keel_pine(dir.path(), &["check", &name, "--input", "Fast length=20", "--input", "useHl=true"]);
    assert!(out.status.success(), "{stdout}");
    assert_eq!(
        stdout.trim_end(),
        "inputs: fastLen=9 (set to 20), useHl=false (set to true); plots: fast, close; warm-up: 20 bars"
    );

    for (flag, says) in [
        ("fastLen=abc", "'abc' is not an int"),
        ("fastLen=0", "outside its range"),
        ("slowLen=3", "no input named 'slowLen'"),
        ("fastLen", "expected NAME=VALUE"),
    ] {
        let (out, stdout) = keel_pine(dir.path(), &["check", &name, "--input", flag]);
        let all = format!("{stdout}{}", String::from_utf8_lossy(&out.stderr));
        assert!(!out.status.success(), "{flag}: {all}");
        assert!(all.contains(says), "{flag}: {all}");
    }
}

#[test]
fn plots_writes_every_bars_plotted_values_with_na_empty() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut csv = String::from("time,open,high,low,close,volume\n");
    let closes = [10.0, 11.0, 12.5, 12.0, 13.0, 12.75];
    for (i, c) in closes.iter().enumerate() {
        csv.push_str(&format!("{},{c:.2},{:.2},{:.2},{c:.2},{}\n", 1_700_000_000 + 60 * i, c + 1.0, c - 1.0, i + 1));
    }
    std::fs::write(dir.path().join("bars.csv"), csv).expect("write bars");
    let name = script(
        dir.path(),
        "p.pine",
        "len = input.int(3, \"Length\")\nplot(ta.sma(close, len), \"sma, 3\")\nplot(volume, \"volume\")\nplotshape(close > close[1], \"up\")\n",
    );
    let (out, stdout) =
        keel_pine(dir.path(), &["plots", &name, "--data", "bars.csv", "--out", "out.csv", "--input", "Length=2"]);
    assert!(out.status.success(), "{stdout} {}", String::from_utf8_lossy(&out.stderr));
    let written = std::fs::read_to_string(dir.path().join("out.csv")).expect("out.csv");
    let lines: Vec<&str> = written.lines().collect();
    assert_eq!(
        lines,
        [
            "time,\"sma, 3\",volume,up",
            "1700000000000,,1,0",
            "1700000060000,10.5,2,1",
            "1700000120000,11.75,3,1",
            "1700000180000,12.25,4,0",
            "1700000240000,12.5,5,1",
            "1700000300000,12.875,6,0",
        ]
    );

    let (out, _) = keel_pine(dir.path(), &["plots", &name, "--data", "missing.csv", "--out", "o.csv"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("missing.csv"), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn plots_builds_higher_timeframes_from_the_datas_interval_and_refuses_a_lower_one() {
    let dir = tempfile::tempdir().expect("temp dir");
    let write = |file: &str, step: usize| {
        let mut csv = String::from("time,open,high,low,close,volume\n");
        for (i, c) in [10.0, 11.0, 12.5, 12.0, 13.0, 12.75].iter().enumerate() {
            csv.push_str(&format!("{},{c:.2},{:.2},{:.2},{c:.2},1\n", 1_700_000_000 + step * i, c + 1.0, c - 1.0));
        }
        std::fs::write(dir.path().join(file), csv).expect("write bars");
    };
    // One-minute bars from 22:13:20 UTC: the 2-minute periods [22:12, 22:14), [22:14, 22:16)...
    // close on bars 0, 2 and 4, whose values then hold until the next period closes.
    write("bars.csv", 60);
    let name = script(dir.path(), "h.pine", "plot(request.security(syminfo.tickerid, \"2\", close), \"htf\")\n");
    let (out, stdout) = keel_pine(dir.path(), &["plots", &name, "--data", "bars.csv", "--out", "out.csv"]);
    assert!(out.status.success(), "{stdout} {}", String::from_utf8_lossy(&out.stderr));
    let written = std::fs::read_to_string(dir.path().join("out.csv")).expect("out.csv");
    let values: Vec<&str> = written.lines().skip(1).map(|l| l.split(',').nth(1).unwrap_or("?")).collect();
    assert_eq!(values, ["10", "10", "12.5", "12.5", "13", "13"]);
    // On 2-minute bars, a 1-minute timeframe is lower than the chart's: refused at the call.
    write("bars2.csv", 120);
    let name = script(dir.path(), "l.pine", "plot(request.security(syminfo.tickerid, \"1\", close))\n");
    let (out, _) = keel_pine(dir.path(), &["plots", &name, "--data", "bars2.csv", "--out", "o.csv"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(
            "l.pine:3:6: request.security timeframe \"1\" is a lower timeframe than the chart's bars (2 minute(s))"
        ),
        "{stderr}"
    );
}
