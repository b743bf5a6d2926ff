//! Pine blocks in a config, through the real `keel` binary: the script path
//! relative to the config file (run from another directory), `keel
//! check-config` printing each repainting warning at `file:line:col` and
//! `--strict` refusing them (and `keel run --strict`), refusals naming the
//! key, `keel strategies --config` listing the inputs, and `--sweep` over a
//! Pine input by title, each combination equal to a single run with that
//! input in the config.

mod common;

use std::path::PathBuf;
use std::process::{Command, Output};

/// A script with two inputs and two repainting warnings (`varip` on line 5,
/// `timenow` on line 6, column 5).
const WARNED: &str = "//@version=5
strategy(\"w\", initial_capital = 100000, default_qty_type = strategy.percent_of_equity, default_qty_value = 50)
fastLen = input.int(5, \"Fast length\", minval = 2, maxval = 30)
slowLen = input.int(20, minval = 5)
varip int n = 0
t = timenow
fast = ta.sma(close, fastLen)
slow = ta.sma(close, slowLen)
if ta.crossover(fast, slow)
    strategy.entry(\"L\", strategy.long)
if ta.crossunder(fast, slow)
    strategy.close(\"L\")
";

/// The config, with `params` for its one Pine block `p`.
fn config(params: &str) -> String {
    common::backtest_config(&format!(
        r#"[[strategy]]
id = "p"
kind = "pine"
symbol = "BTCUSDT"
params = {params}
"#
    ))
}

/// A temp dir holding `conf/config.toml` and `conf/pine/*.pine`; commands run
/// from the temp dir, so a script is found only relative to the config file.
struct Fixture {
    _dir: tempfile::TempDir,
    root: PathBuf,
}

impl Fixture {
    fn new(params: &str) -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_path_buf();
        std::fs::create_dir_all(root.join("conf/pine")).unwrap();
        std::fs::write(root.join("conf/pine/w.pine"), WARNED).unwrap();
        let clean: String = WARNED
            .lines()
            .filter(|l| !l.starts_with("varip") && !l.starts_with("t ="))
            .map(|l| format!("{l}\n"))
            .collect();
        std::fs::write(root.join("conf/pine/clean.pine"), clean).unwrap();
        std::fs::write(root.join("conf/pine/bad.pine"), "//@version=5\nstrategy(\"b\")\nx = str.tostring(close)\n")
            .unwrap();
        std::fs::write(
            root.join("conf/pine/short.pine"),
            "//@version=5\nstrategy(\"s\")\nif close > open\n    strategy.entry(\"S\", strategy.short)\n",
        )
        .unwrap();
        let f = Fixture { _dir: dir, root };
        f.set(params);
        f
    }

    fn set(&self, params: &str) {
        std::fs::write(self.root.join("conf/config.toml"), config(params)).unwrap();
    }

    fn keel(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_keel"))
            .args(args)
            .current_dir(&self.root)
            .env_remove("RUST_LOG")
            .output()
            .unwrap()
    }

    fn path(&self, name: &str) -> PathBuf {
        self.root.join(name)
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).to_string()
}

fn ok(out: &Output) -> String {
    assert!(out.status.success(), "stdout:\n{}\nstderr:\n{}", text(&out.stdout), text(&out.stderr));
    text(&out.stdout)
}

#[test]
fn check_config_prints_repainting_warnings_and_strict_refuses_them() {
    let f = Fixture::new(r#"{ script = "pine/w.pine", inputs = { fastLen = 7 } }"#);
    let out = f.keel(&["check-config", "--config", "conf/config.toml"]);
    let stdout = ok(&out);
    assert!(stdout.starts_with("conf/config.toml: ok ("), "{stdout}");
    let stderr = text(&out.stderr);
    let warnings: Vec<&str> = stderr.lines().filter(|l| l.starts_with("keel: strategy `")).collect();
    assert_eq!(warnings.len(), 2, "one line per warning: {stderr}");
    assert!(warnings[0].starts_with("keel: strategy `p`: conf/pine/w.pine:5:1: warning: varip"), "{stderr}");
    assert!(
        warnings[1].starts_with("keel: strategy `p`: conf/pine/w.pine:6:5: warning: ")
            && warnings[1].contains("timenow"),
        "{stderr}"
    );

    let out = f.keel(&["check-config", "--config", "conf/config.toml", "--strict"]);
    assert!(!out.status.success(), "--strict: warnings are errors");
    assert!(text(&out.stdout).starts_with("conf/config.toml: not ready ("), "{}", text(&out.stdout));
    let stderr = text(&out.stderr);
    assert_eq!(stderr.lines().filter(|l| l.starts_with("keel: strategy `")).count(), 2, "{stderr}");
    assert!(stderr.contains("keel: 2 repainting warning(s) in Pine scripts, errors under --strict"), "{stderr}");

    // `keel run --strict` refuses before anything starts; a clean script passes --strict.
    let out = f.keel(&["run", "--config", "conf/config.toml", "--strict", "--data-dir", "data"]);
    assert!(!out.status.success());
    let stderr = text(&out.stderr);
    assert!(stderr.contains("conf/pine/w.pine:5:1: warning: varip"), "run prints them at start: {stderr}");
    assert!(stderr.contains("2 repainting warning(s) in Pine scripts, errors under --strict"), "{stderr}");
    // `keel backtest` prints them too (a repainting script backtests better than it trades).
    common::write_bars(&f.path("BTCUSDT-1h.csv"), 60, 3);
    let out = f.keel(&["backtest", "--config", "conf/config.toml", "--data", "BTCUSDT-1h.csv"]);
    ok(&out);
    let stderr = text(&out.stderr);
    assert!(stderr.contains("warning: strategy `p`: conf/pine/w.pine:5:1: warning: varip"), "{stderr}");
    f.set(r#"{ script = "pine/clean.pine" }"#);
    let out = f.keel(&["check-config", "--config", "conf/config.toml", "--strict"]);
    ok(&out);
    assert!(!text(&out.stderr).contains("keel: strategy `"), "{}", text(&out.stderr));
}

/// `keel run` logs each warning at start (level WARN, with the strategy's id)
/// and trades on without `--strict`.
#[test]
fn run_logs_repainting_warnings_at_start_and_runs() {
    let f = Fixture::new(r#"{ script = "pine/w.pine" }"#);
    let mut keel = common::spawn_run(&f.path("conf/config.toml"), &f.path("data"), &["--exit-after", "60s"], &[]);
    let warned = |k: &common::Keel, what: &str| {
        k.seen.iter().any(|v| {
            v["level"] == "WARN" && v["strategy"] == "p" && v["message"].as_str().is_some_and(|m| m.contains(what))
        })
    };
    let script = f.path("conf/pine/w.pine").display().to_string();
    keel.wait_until("the varip warning", |k| warned(k, &format!("{script}:5:1: warning: varip")));
    keel.wait_until("the timenow warning", |k| warned(k, &format!("{script}:6:5: warning: timenow")));
    keel.wait_for("engine started", 1);
    keel.sigterm();
    let (status, stop_lines) = keel.finish();
    common::assert_stopped("a warning is not fatal without --strict", status, &stop_lines);
}

#[test]
fn check_config_refuses_bad_pine_blocks_naming_the_key() {
    let cases = [
        (
            r#"{ script = "pine/bad.pine" }"#,
            "config error at `strategy[0].params.script`: conf/pine/bad.pine:3:5: unknown function 'str.tostring'",
        ),
        (r#"{ script = "pine/none.pine" }"#, "config error at `strategy[0].params.script`: cannot read `conf/pine/none.pine`"),
        (r#"{ }"#, "config error at `strategy[0].params.script`: is required"),
        (
            r#"{ script = "pine/w.pine", inputs = { "Fast length" = 1 } }"#,
            "config error at `strategy[0].params.inputs.Fast length`: must be between 2 and 30, got 1",
        ),
        (
            r#"{ script = "pine/w.pine", inputs = { fast = 3 } }"#,
            "config error at `strategy[0].params.inputs.fast`: the script has no input named or titled `fast` (its inputs: fastLen, slowLen)",
        ),
        (r#"{ script = "pine/short.pine" }"#, "conf/pine/short.pine:4:5: "),
    ];
    let f = Fixture::new("{}");
    for (params, want) in cases {
        f.set(params);
        let out = f.keel(&["check-config", "--config", "conf/config.toml"]);
        assert!(!out.status.success(), "{params}");
        let stderr = text(&out.stderr);
        assert!(stderr.contains(want), "{params}: {stderr}");
    }
}

#[test]
fn strategies_with_a_config_lists_a_pine_blocks_inputs() {
    let f = Fixture::new(r#"{ script = "pine/w.pine", inputs = { "Fast length" = 7 } }"#);
    let stdout = ok(&f.keel(&["strategies", "--config", "conf/config.toml"]));
    assert!(stdout.contains("\npine\n  script  path      required\n  inputs  table     optional\n"), "{stdout}");
    let block = stdout.split("strategy p (pine) inputs:\n").nth(1).unwrap_or_else(|| panic!("{stdout}"));
    let lines: Vec<Vec<&str>> = block.lines().map(|l| l.split_whitespace().collect()).collect();
    assert_eq!(
        lines,
        [
            vec![
                "fastLen", "integer", "default", "5", "between", "2", "and", "30", "title", "\"Fast", "length\"",
                "set", "to", "7"
            ],
            vec!["slowLen", "integer", "default", "20", "at", "least", "5"],
        ]
    );

    let json: serde_json::Value =
        serde_json::from_str(&ok(&f.keel(&["strategies", "--config", "conf/config.toml", "--json"]))).unwrap();
    assert!(json["kinds"].as_array().unwrap().iter().any(|k| k["kind"] == "pine"), "{json}");
    let want = serde_json::json!([{
        "id": "p",
        "kind": "pine",
        "inputs": [
            {"name": "fastLen", "title": "Fast length", "type": "integer", "required": false, "default": 5,
             "min": {"value": "2", "inclusive": true}, "max": {"value": "30", "inclusive": true}, "value": 7},
            {"name": "slowLen", "title": null, "type": "integer", "required": false, "default": 20,
             "min": {"value": "5", "inclusive": true}, "max": null, "value": null},
        ]
    }]);
    assert_eq!(json["strategies"], want);
}

#[test]
fn a_sweep_over_a_pine_input_runs_each_value_as_the_config_would() {
    let f = Fixture::new(r#"{ script = "pine/clean.pine", inputs = { fastLen = 11 } }"#);
    common::write_bars(&f.path("BTCUSDT-1h.csv"), 600, 7);
    let backtest = |extra: &[&str]| {
        let mut args = vec!["backtest", "--data", "BTCUSDT-1h.csv", "--config", "conf/config.toml"];
        args.extend(extra);
        f.keel(&args)
    };
    ok(&backtest(&["--sweep", "p.Fast length=3..9:3", "--sweep-out", "r.json"]));
    let json: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(f.path("r.json")).unwrap()).unwrap();
    assert_eq!(json["parameters"], serde_json::json!(["p.Fast length"]));
    let rows = json["rows"].as_array().unwrap();
    assert_eq!(rows.iter().map(|r| r["p.Fast length"].as_u64().unwrap()).collect::<Vec<_>>(), [3, 6, 9]);
    let mut seen = Vec::new();
    for row in rows {
        let fast = row["p.Fast length"].as_u64().unwrap();
        f.set(&format!(r#"{{ script = "pine/clean.pine", inputs = {{ fastLen = {fast} }} }}"#));
        ok(&backtest(&["--report", "single.json"]));
        let single: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(f.path("single.json")).unwrap()).unwrap();
        for key in ["final_equity", "round_trips", "fees_paid"] {
            assert_eq!(row[key], single[key], "{key} with fastLen = {fast}");
        }
        assert!(single["round_trips"].as_u64().unwrap() > 0, "the script trades");
        let free = &single["overfitting"]["free_inputs"];
        assert_eq!(*free, serde_json::json!(["p.fastLen", "p.slowLen"]), "the script's inputs, not `script`");
        seen.push(single["final_equity"].clone());
    }
    assert!(seen[0] != seen[1] || seen[1] != seen[2], "the input reaches the strategy: {seen:?}");

    // A walk-forward sweep over the input: chosen in sample, run out of sample.
    let stdout = ok(&backtest(&["--sweep", "p.fastLen=3..9:3", "--split", "2024-01-18", "--report", "oos.json"]));
    let best = stdout
        .lines()
        .find_map(|l| l.strip_prefix("Out of sample, from 2024-01-18T00:00:00Z, with the in-sample best "));
    assert!(best.is_some_and(|b| b.starts_with("p.fastLen=")), "{stdout}");
    let oos: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(f.path("oos.json")).unwrap()).unwrap();
    assert_eq!(oos["overfitting"]["free_inputs"], serde_json::json!(["p.fastLen"]));
    assert!(oos["overfitting"]["walk_forward"].is_object(), "{oos}");

    let out = backtest(&["--sweep", "p.fastLen=1..4"]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("--sweep `p.fastLen=1..4`: `fastLen` must be between 2 and 30, got 1"),
        "{}",
        text(&out.stderr)
    );
}
