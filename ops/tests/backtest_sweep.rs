//! `keel backtest --sweep` end to end, with the real `keel` binary on
//! generated bars: the best row against a single run, grid size and skips,
//! rank direction, result files, shards and `--merge`, and bad specs.

mod common;

use std::path::PathBuf;
use std::process::{Command, Output};

/// A config with one `sma_cross` strategy `sma` with these parameters.
fn config(fast: &str, slow: &str) -> String {
    common::backtest_config(&format!(
        r#"[[strategy]]
id = "sma"
kind = "sma_cross"
symbol = "BTCUSDT"
params = {{ fast = {fast}, slow = {slow}, qty = "0.1" }}
"#
    ))
}

struct Fixture {
    _dir: tempfile::TempDir,
    root: PathBuf,
}

impl Fixture {
    /// Bars and a config whose own parameters (7/25) lie off every grid below,
    /// so a sweep that ignored its values would be caught.
    fn new(bars: usize) -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_path_buf();
        common::write_bars(&root.join("BTCUSDT-1h.csv"), bars, 42);
        std::fs::write(root.join("config.toml"), config("7", "25")).unwrap();
        Fixture { _dir: dir, root }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.root.join(name)
    }

    /// Runs `keel backtest` on the fixture's data and config with `extra` flags.
    fn backtest(&self, extra: &[&str]) -> Output {
        let mut args: Vec<String> =
            ["backtest", "--data", "BTCUSDT-1h.csv", "--config", "config.toml"].iter().map(|s| s.to_string()).collect();
        args.extend(extra.iter().map(|s| s.to_string()));
        self.keel(&args)
    }

    fn keel(&self, args: &[String]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_keel")).args(args).current_dir(&self.root).output().unwrap()
    }

    fn read(&self, name: &str) -> String {
        std::fs::read_to_string(self.path(name)).unwrap()
    }
}

fn ok(out: &Output) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(out.status.success(), "stdout:\n{stdout}\nstderr:\n{}", String::from_utf8_lossy(&out.stderr));
    stdout
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).to_string()
}

const FAST: &str = "sma.fast=5..50:5";
const SLOW: &str = "sma.slow=20..200:20";

/// A result CSV: the header and rows as maps from column to cell.
fn read_csv(text: &str) -> (String, Vec<std::collections::BTreeMap<String, String>>) {
    let (first, rest) = text.split_once('\n').unwrap();
    let mut r = csv::Reader::from_reader(rest.as_bytes());
    let header: Vec<String> = r.headers().unwrap().iter().map(str::to_string).collect();
    let rows =
        r.records().map(|rec| header.iter().cloned().zip(rec.unwrap().iter().map(str::to_string)).collect()).collect();
    (first.to_string(), rows)
}

/// A JSON report split before its last key, `overfitting` (added after the
/// report's own keys), and that key's value.
fn split_signals(text: &str) -> (String, serde_json::Value) {
    let key = ",\n  \"overfitting\": ";
    let at = text.find(key).unwrap_or_else(|| panic!("no overfitting key in {text}"));
    let value = text[at + key.len()..].strip_suffix("\n}").unwrap_or_else(|| panic!("overfitting is not last: {text}"));
    (text[..at].to_string(), serde_json::from_str(value).unwrap())
}

/// The `(fast, slow)` of the printed table's rows, best first.
fn table_params(stdout: &str) -> Vec<(String, String)> {
    stdout
        .lines()
        .skip_while(|l| !l.trim_start().starts_with('#'))
        .skip(1)
        .take_while(|l| l.trim_start().chars().next().is_some_and(|c| c.is_ascii_digit()))
        .map(|l| {
            let cells: Vec<&str> = l.split_whitespace().collect();
            (cells[1].to_string(), cells[2].to_string())
        })
        .collect()
}

#[test]
fn the_best_row_is_byte_for_byte_a_single_run_with_its_parameters() {
    let f = Fixture::new(1500);
    let out = f.backtest(&[
        "--sweep",
        "sma.fast=3..12:3",
        "--sweep",
        "sma.slow=10..40:10",
        "--report",
        "best.json",
        "--trades",
        "best.csv",
        "--sweep-out",
        "r.csv",
    ]);
    let stdout = ok(&out);
    let best = stdout.lines().find_map(|l| l.strip_prefix("best: ")).expect(&stdout);
    let (fast, slow) = best
        .split_once(' ')
        .and_then(|(a, b)| Some((a.strip_prefix("sma.fast=")?, b.strip_prefix("sma.slow=")?)))
        .expect(best);
    assert_eq!(table_params(&stdout)[0], (fast.to_string(), slow.to_string()), "the table's first row is the best");
    assert_ne!((fast, slow), ("7", "25"), "the config's own values are not on the grid");

    std::fs::write(f.path("single.toml"), config(fast, slow)).unwrap();
    let single: Vec<String> = [
        "backtest",
        "--data",
        "BTCUSDT-1h.csv",
        "--config",
        "single.toml",
        "--report",
        "single.json",
        "--trades",
        "single.csv",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    ok(&f.keel(&single));
    // Byte for byte but for the overfitting signals' free inputs: the sweep's
    // are its axes, the single run's the numeric parameters of its config.
    let (best, best_signals) = split_signals(&f.read("best.json"));
    let (single_report, single_signals) = split_signals(&f.read("single.json"));
    assert_eq!(best, single_report, "the report, byte for byte");
    assert_eq!(best_signals["free_inputs"], serde_json::json!(["sma.fast", "sma.slow"]));
    assert_eq!(single_signals["free_inputs"], serde_json::json!(["sma.fast", "sma.qty", "sma.slow"]));
    assert_eq!(best_signals["trades"], single_signals["trades"]);
    assert_eq!(f.read("best.csv"), f.read("single.csv"), "the trades, byte for byte");

    // The sweep's row holds the same figures as that report.
    let report: serde_json::Value = serde_json::from_str(&f.read("single.json")).unwrap();
    let (_, rows) = read_csv(&f.read("r.csv"));
    let row = rows.iter().find(|r| r["sma.fast"] == fast && r["sma.slow"] == slow).unwrap();
    for key in ["sharpe", "total_return", "max_drawdown", "round_trips", "final_equity", "fees_paid"] {
        let want = match &report[key] {
            serde_json::Value::String(s) => s.clone(),
            v => v.to_string(),
        };
        assert_eq!(row[key], want, "{key}");
    }
    assert!(report["round_trips"].as_u64().unwrap() > 0);
}

#[test]
fn a_grid_of_ten_by_ten_counts_100_and_skips_fast_at_or_above_slow() {
    let f = Fixture::new(400);
    let out = f.backtest(&["--sweep", FAST, "--sweep", SLOW, "--sweep-out", "r.csv"]);
    ok(&out);
    let err = stderr(&out);
    assert!(err.contains("sweep: 100 combinations of 400 bars"), "{err}");
    assert!(err.contains("sweep: ran 90 in"), "{err}");
    assert!(
        err.contains("skipped 10 combinations the strategies refuse, e.g. sma.fast=20 sma.slow=20: config error at `strategy[0].params.slow`: must be greater than fast"),
        "{err}"
    );
    let (_, rows) = read_csv(&f.read("r.csv"));
    assert_eq!(rows.len(), 100);
    for r in &rows {
        let (fast, slow): (u32, u32) = (r["sma.fast"].parse().unwrap(), r["sma.slow"].parse().unwrap());
        assert_eq!(r["skipped"].is_empty(), fast < slow, "{r:?}");
        assert_eq!(r["sharpe"].is_empty() && r["round_trips"].is_empty(), !r["skipped"].is_empty(), "{r:?}");
    }
    let numbers: Vec<usize> = rows.iter().map(|r| r["combination"].parse().unwrap()).collect();
    assert_eq!(numbers, (1..=100).collect::<Vec<_>>());
    assert_eq!((&rows[1]["sma.fast"][..], &rows[1]["sma.slow"][..]), ("5", "40"), "the last flag varies fastest");
}

#[test]
fn rank_sorts_sharpe_highest_first_and_max_drawdown_lowest_first() {
    let f = Fixture::new(600);
    for (metric, header, descending) in [
        ("sharpe", "ranked by sharpe (highest first)", true),
        ("max_drawdown", "ranked by max_drawdown (lowest first)", false),
    ] {
        let mut flags = vec![
            "--sweep",
            "sma.fast=4..16:4",
            "--sweep",
            "sma.slow=20..60:20",
            "--top",
            "100",
            "--sweep-out",
            "r.csv",
        ];
        if metric != "sharpe" {
            flags.extend(["--rank", metric]);
        }
        let stdout = ok(&f.backtest(&flags));
        assert!(stdout.contains(&format!("Top 12 of 12 combinations {header}")), "{stdout}");
        let (_, rows) = read_csv(&f.read("r.csv"));
        let values: Vec<f64> = table_params(&stdout)
            .iter()
            .map(|(fast, slow)| {
                let row = rows.iter().find(|r| r["sma.fast"] == *fast && r["sma.slow"] == *slow).unwrap();
                row[metric].parse().unwrap()
            })
            .collect();
        assert_eq!(values.len(), 12, "{stdout}");
        let sorted = values.windows(2).all(|w| if descending { w[0] >= w[1] } else { w[0] <= w[1] });
        assert!(sorted, "{metric}: {values:?}");
        assert!(values.first() != values.last(), "{metric}: the grid's figures differ");
    }
}

#[test]
fn sweep_out_writes_every_combination_as_csv_and_json() {
    let f = Fixture::new(400);
    ok(&f.backtest(&["--sweep", "sma.fast=5,10", "--sweep", "sma.slow=10..30:10", "--sweep-out", "r.csv"]));
    ok(&f.backtest(&["--sweep", "sma.fast=5,10", "--sweep", "sma.slow=10..30:10", "--sweep-out", "r.json"]));
    let (first, rows) = read_csv(&f.read("r.csv"));
    let grid = first
        .strip_prefix("# keel-sweep grid=")
        .and_then(|s| s.strip_suffix(" shard=1/1 combinations=6"))
        .expect(&first);
    assert_eq!(grid.len(), 16, "{first}");
    let header = f.read("r.csv").lines().nth(1).unwrap().to_string();
    assert_eq!(
        header,
        "combination,sma.fast,sma.slow,final_equity,total_return,cagr,annualized_volatility,sharpe,sortino,max_drawdown,\
         max_drawdown_duration_ms,round_trips,win_rate,avg_win,avg_loss,profit_factor,exposure_time,fees_paid,fills,orders,\
         unfilled_at_end,skipped"
    );
    let params: Vec<(&str, &str)> = rows.iter().map(|r| (&r["sma.fast"][..], &r["sma.slow"][..])).collect();
    assert_eq!(params, [("5", "10"), ("5", "20"), ("5", "30"), ("10", "10"), ("10", "20"), ("10", "30")]);
    assert!(rows[3]["skipped"].contains("must be greater than fast (10), got 10"), "{:?}", rows[3]);

    let json: serde_json::Value = serde_json::from_str(&f.read("r.json")).unwrap();
    assert_eq!(json["keel_sweep"], 1);
    assert_eq!(json["grid"], grid, "the same grid in both formats");
    assert_eq!(json["shard"], "1/1");
    assert_eq!(json["combinations"], 6);
    assert_eq!(json["parameters"], serde_json::json!(["sma.fast", "sma.slow"]));
    let json_rows = json["rows"].as_array().unwrap();
    assert_eq!(json_rows.len(), 6);
    for (c, j) in rows.iter().zip(json_rows) {
        for (key, cell) in c {
            let want = match &j[key] {
                serde_json::Value::String(s) => s.clone(),
                serde_json::Value::Null => String::new(),
                v => v.to_string(),
            };
            assert_eq!(*cell, want, "{key} of combination {}", c["combination"]);
        }
    }
    assert!(json_rows[0]["sma.fast"].is_u64(), "integer parameters are numbers");
    assert!(json_rows[0]["final_equity"].is_string(), "money is an exact decimal string");
    assert!(json_rows[0]["sharpe"].is_f64());
    assert!(json_rows[3]["sharpe"].is_null() && json_rows[3]["skipped"].is_string());
}

#[test]
fn shards_merged_equal_the_unsharded_sweep() {
    let f = Fixture::new(400);
    let sweep = ["--sweep", "sma.fast=5..20:5", "--sweep", "sma.slow=10..40:10"];
    let with = |extra: &[&str]| -> Vec<String> { sweep.iter().chain(extra).map(|s| s.to_string()).collect() };
    let whole = ok(&f.backtest(&with(&["--sweep-out", "all.csv"]).iter().map(String::as_str).collect::<Vec<_>>()));
    ok(&f.backtest(&with(&["--shard", "1/2", "--sweep-out", "s1.csv"]).iter().map(String::as_str).collect::<Vec<_>>()));
    ok(&f
        .backtest(&with(&["--shard", "2/2", "--sweep-out", "s2.json"]).iter().map(String::as_str).collect::<Vec<_>>()));
    let (_, s1) = read_csv(&f.read("s1.csv"));
    let s1: Vec<&str> = s1.iter().map(|r| &r["combination"][..]).collect();
    assert_eq!(s1, ["1", "3", "5", "7", "9", "11", "13", "15"], "shard 1/2 takes every other combination from 1");

    // --merge needs no --data; the formats mix.
    let merge = |files: &[&str], out: &str| {
        let mut args: Vec<String> = ["backtest", "--merge"].iter().map(|s| s.to_string()).collect();
        args.extend(files.iter().map(|s| s.to_string()));
        args.extend(["--sweep-out".to_string(), out.to_string()]);
        f.keel(&args)
    };
    let merged = ok(&merge(&["s2.json", "s1.csv"], "merged.csv"));
    assert_eq!(f.read("merged.csv"), f.read("all.csv"), "the merged file is the unsharded one");
    let table = |s: &str| s.lines().take_while(|l| !l.starts_with("sweep results")).collect::<Vec<_>>().join("\n");
    assert_eq!(table(&merged), table(&whole), "and so is the table");
    ok(&merge(&["s1.csv", "s2.json"], "merged.json"));
    ok(&f.backtest(&with(&["--sweep-out", "all.json"]).iter().map(String::as_str).collect::<Vec<_>>()));
    assert_eq!(f.read("merged.json"), f.read("all.json"));

    for (files, want) in [
        (&["s1.csv"][..], "--merge: missing shard 2/2"),
        (&["s1.csv", "s2.json", "s1.csv"][..], "--merge: shard 1/2 is given twice"),
        (&["s1.csv", "all.csv"][..], "is shard 1/1 but s1.csv is shard 1/2"),
    ] {
        let out = merge(files, "x.csv");
        let err = stderr(&out);
        assert!(!out.status.success() && err.contains(want), "{files:?}: {err}");
        assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    }
}

#[test]
fn merging_files_of_different_grids_is_refused() {
    let f = Fixture::new(400);
    ok(&f.backtest(&[
        "--sweep",
        "sma.fast=5,10",
        "--sweep",
        "sma.slow=20,30",
        "--shard",
        "1/2",
        "--sweep-out",
        "a.csv",
    ]));
    // The same sweep over other values, and over other bars.
    ok(&f.backtest(&[
        "--sweep",
        "sma.fast=5,10",
        "--sweep",
        "sma.slow=20,40",
        "--shard",
        "2/2",
        "--sweep-out",
        "b.csv",
    ]));
    common::write_bars(&f.path("BTCUSDT-1h.csv"), 400, 43);
    ok(&f.backtest(&[
        "--sweep",
        "sma.fast=5,10",
        "--sweep",
        "sma.slow=20,30",
        "--shard",
        "2/2",
        "--sweep-out",
        "c.csv",
    ]));
    // And with other flags.
    common::write_bars(&f.path("BTCUSDT-1h.csv"), 400, 42);
    let fee = ["--sweep", "sma.fast=5,10", "--sweep", "sma.slow=20,30", "--shard", "2/2", "--fee-bps", "1"];
    ok(&f.backtest(&[&fee[..], &["--sweep-out", "d.csv"]].concat()));
    ok(&f.backtest(&[
        "--sweep",
        "sma.fast=5,10",
        "--sweep",
        "sma.slow=20,30",
        "--shard",
        "2/2",
        "--sweep-out",
        "e.csv",
    ]));
    for other in ["b.csv", "c.csv", "d.csv"] {
        let out = f.keel(&["backtest".into(), "--merge".into(), "a.csv".into(), other.into()]);
        let err = stderr(&out);
        assert!(!out.status.success(), "{other}");
        assert!(err.contains(&format!("--merge: {other} is from another grid than a.csv")), "{other}: {err}");
        assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    }
    ok(&f.keel(&["backtest".into(), "--merge".into(), "a.csv".into(), "e.csv".into()]));
}

#[test]
fn walk_forward_chooses_in_sample_and_reports_out_of_sample() {
    let f = Fixture::new(1500);
    let stdout = ok(&f.backtest(&[
        "--sweep",
        "sma.fast=3..12:3",
        "--sweep",
        "sma.slow=10..40:10",
        "--split",
        "2024-02-01",
        "--sweep-out",
        "in.csv",
        "--report",
        "oos.json",
    ]));
    assert!(stdout.starts_with("In sample, before 2024-02-01T00:00:00Z:\n"), "{stdout}");
    let best = stdout
        .lines()
        .find_map(|l| l.strip_prefix("Out of sample, from 2024-02-01T00:00:00Z, with the in-sample best "))
        .and_then(|l| l.strip_suffix(':'))
        .expect(&stdout);
    let (fast, slow) = best
        .split_once(' ')
        .and_then(|(a, b)| Some((a.strip_prefix("sma.fast=")?, b.strip_prefix("sma.slow=")?)))
        .expect(best);
    assert_eq!(table_params(&stdout)[0], (fast.to_string(), slow.to_string()));

    // Out of sample: a single run from the split with those parameters, byte for byte.
    std::fs::write(f.path("best.toml"), config(fast, slow)).unwrap();
    let single = |period: &[&str], report: &str| {
        let mut args: Vec<String> =
            ["backtest", "--data", "BTCUSDT-1h.csv", "--config", "best.toml", "--report", report]
                .iter()
                .map(|s| s.to_string())
                .collect();
        args.extend(period.iter().map(|s| s.to_string()));
        ok(&f.keel(&args));
        serde_json::from_str::<serde_json::Value>(&f.read(report)).unwrap()
    };
    let oos = single(&["--from", "2024-02-01"], "single_oos.json");
    // Byte for byte but for the overfitting signals, which differ by design
    // (the sweep's free inputs are its axes, and it has a walk-forward).
    let (oos_text, oos_signals) = split_signals(&f.read("oos.json"));
    let (single_text, single_signals) = split_signals(&f.read("single_oos.json"));
    assert_eq!(oos_text, single_text);
    assert!(oos_signals.get("walk_forward").is_some() && single_signals.get("walk_forward").is_none());
    assert_eq!(oos["start"], "2024-02-01T00:00:00Z");
    // In sample: the sweep's row is a single run up to the split.
    let in_sample = single(&["--to", "1706745599999"], "single_in.json");
    assert_eq!(in_sample["end"], "2024-01-31T23:59:59Z");
    let (_, rows) = read_csv(&f.read("in.csv"));
    let row = rows.iter().find(|r| r["sma.fast"] == fast && r["sma.slow"] == slow).unwrap();
    assert_eq!(row["sharpe"], in_sample["sharpe"].to_string());
    assert_eq!(row["final_equity"], in_sample["final_equity"].as_str().unwrap());
    assert_ne!(in_sample["final_equity"], oos["final_equity"]);
}

#[test]
fn bad_sweep_flags_fail_with_one_line_naming_the_flag() {
    let f = Fixture::new(50);
    let cases: &[(&[&str], &str)] = &[
        (&["--sweep", "nope.fast=1..3"], "--sweep `nope.fast=1..3`: no strategy `nope` (strategies: sma)"),
        (
            &["--sweep", "sma.fsat=1..3"],
            "--sweep `sma.fsat=1..3`: sma_cross has no parameter `fsat` (its parameters: fast, slow, qty, notional, max_funding)",
        ),
        (&["--sweep", "sma.fast=50..5"], "--sweep `sma.fast=50..5`: the range is empty: START 50 is after END 5"),
        (&["--sweep", "sma.fast=1..5:0"], "--sweep `sma.fast=1..5:0`: STEP must be positive, got 0"),
        (&["--sweep", "sma.fast=1..5:-2"], "--sweep `sma.fast=1..5:-2`: STEP must be positive, got -2"),
        (&["--sweep", "sma.fast"], "--sweep `sma.fast`: expected ID.PARAM=START..END[:STEP] or ID.PARAM=a,b,c"),
        (&["--sweep", "fast=1..5"], "--sweep `fast=1..5`: `fast` is not ID.PARAM or ID@SYMBOL.PARAM"),
        (&["--sweep", "sma.fast=5,ten"], "--sweep `sma.fast=5,ten`: `ten` is not a number"),
        (&["--sweep", "sma.fast=2.5,3"], "--sweep `sma.fast=2.5,3`: `fast` takes an integer, not 2.5"),
        (&["--sweep", "sma.fast=0..4"], "--sweep `sma.fast=0..4`: `fast` must be at least 1, got 0"),
        (&["--sweep", "sma.qty=0,1"], "--sweep `sma.qty=0,1`: `qty` must be greater than 0, got 0"),
        (&["--sweep", "sma@ETHUSDT.fast=5"], "--sweep `sma@ETHUSDT.fast=5`: strategy `sma` does not trade ETHUSDT"),
        (
            &["--sweep", "sma.fast=5", "--shard", "3/2"],
            "--shard `3/2`: I must be between 1 and 2 (shards count from 1)",
        ),
        (&["--sweep", "sma.fast=5", "--shard", "1/0"], "--shard `1/0`: N must be at least 1"),
        (
            &["--sweep", "sma.fast=5", "--rank", "luck"],
            "--rank unknown metric `luck` (one of: final_equity, total_return",
        ),
        (
            &["--sweep", "sma.fast=5", "--sweep-out", "r.txt"],
            "--sweep-out r.txt: the file name must end in .csv or .json",
        ),
        (&["--rank", "sharpe"], "--rank needs --sweep (or --merge)"),
        (&["--split", "2024-01-02"], "--split needs --sweep"),
        (
            &["--sweep", "sma.fast=5", "--split", "someday"],
            "--split `someday` is not an ISO date, date-time or epoch ms",
        ),
        (&["--sweep", "sma.fast=5", "--split", "2023-01-01"], "--split `2023-01-01`: the bars before it: no bars"),
        (
            &["--sweep", "sma.fast=5", "--split", "2024-01-02", "--from", "2024-01-03"],
            "--split `2024-01-02` must fall after --from",
        ),
        (&["--sweep", "sma.fast=5", "--split", "2024-01-02", "--shard", "1/2"], "--split chooses from the whole grid"),
        (&["--max-degradation", "0.5"], "--max-degradation needs --sweep and --split"),
        (&["--sweep", "sma.fast=5", "--max-degradation", "0.5"], "--max-degradation needs --split"),
        (
            &["--sweep", "sma.fast=5", "--split", "2024-01-02", "--max-degradation", "0"],
            "--max-degradation must be a positive fraction (0.5 = 50%), got 0",
        ),
    ];
    for (flags, want) in cases {
        let out = f.backtest(flags);
        let err = stderr(&out);
        assert!(!out.status.success(), "{flags:?} succeeded");
        assert_eq!(err.trim_end().lines().count(), 1, "{flags:?}: one line, got:\n{err}");
        assert!(err.starts_with(&format!("keel: {want}")), "{flags:?}: {err}");
    }
    let out = f.keel(&["backtest".into(), "--merge".into(), "x.csv".into(), "--data".into(), "BTCUSDT-1h.csv".into()]);
    assert!(stderr(&out).starts_with("keel: --merge combines result files: it takes no --data"), "{}", stderr(&out));
}

/// A `symbols = "universe"` template on two symbols' bars: `trend.PARAM`
/// sweeps every instance, `trend@SYMBOL.PARAM` only that symbol's.
const TEMPLATE: &str = r#"
[universe]
quote = "USDT"
top_n = 2

[balances]
USDT = "100000"

[risk]
max_order_notional = "0"
max_position_notional = "0"
strategy_orders_per_second = 0
strategy_orders_per_minute = 0
global_orders_per_second = 0
global_orders_per_minute = 0

[[strategy]]
id = "trend"
kind = "sma_cross"
symbols = "universe"
params = { fast = 7, slow = 25, notional = "3000" }
"#;

/// The trades file's rows of one symbol, as lines.
fn trades_of(text: &str, symbol: &str) -> Vec<String> {
    let mut r = csv::Reader::from_reader(text.as_bytes());
    let column = r.headers().unwrap().iter().position(|h| h == "symbol").unwrap();
    r.records().map(|rec| rec.unwrap()).filter(|rec| &rec[column] == symbol).map(|rec| rec.iter().collect()).collect()
}

#[test]
fn a_template_sweeps_all_instances_by_id_and_one_by_id_at_symbol() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    common::write_bars(&root.join("BTCUSDT-1h.csv"), 600, 42);
    common::write_bars(&root.join("ETHUSDT-1h.csv"), 600, 7);
    std::fs::write(root.join("config.toml"), TEMPLATE).unwrap();
    let keel = |extra: &[&str]| -> Output {
        let base = ["backtest", "--data", "BTCUSDT-1h.csv", "--data", "ETHUSDT-1h.csv", "--config", "config.toml"];
        Command::new(env!("CARGO_BIN_EXE_keel")).args(base).args(extra).current_dir(root).output().unwrap()
    };

    let out = keel(&["--sweep", "trend.fast=3,5", "--sweep", "trend@ETHUSDT.slow=20,30", "--sweep-out", "r.csv"]);
    ok(&out);
    assert!(stderr(&out).contains("sweep: 4 combinations of"), "{}", stderr(&out));
    let (_, rows) = read_csv(&std::fs::read_to_string(root.join("r.csv")).unwrap());
    let params: Vec<(&str, &str)> = rows.iter().map(|r| (&r["trend.fast"][..], &r["trend@ETHUSDT.slow"][..])).collect();
    assert_eq!(params, [("3", "20"), ("3", "30"), ("5", "20"), ("5", "30")]);
    assert!(rows.iter().all(|r| r["skipped"].is_empty()), "{rows:?}");

    // One combination's trades, from a sweep of one.
    let trades = |fast: &str, slow: &str| -> String {
        let name = format!("t-{fast}-{slow}.csv");
        let (f, s) = (format!("trend.fast={fast}"), format!("trend@ETHUSDT.slow={slow}"));
        ok(&keel(&["--sweep", &f, "--sweep", &s, "--trades", &name]));
        std::fs::read_to_string(root.join(&name)).unwrap()
    };
    let (base, eth_slow, all_fast) = (trades("3", "20"), trades("3", "30"), trades("5", "20"));
    for (symbol, id) in [("BTCUSDT", "trend@BTCUSDT"), ("ETHUSDT", "trend@ETHUSDT")] {
        let rows = trades_of(&base, symbol);
        assert!(!rows.is_empty() && rows.iter().all(|r| r.starts_with(id)), "{symbol} traded by {id}: {base}");
        assert_ne!(rows, trades_of(&all_fast, symbol), "trend.fast changes {symbol}'s trades");
    }
    assert_eq!(trades_of(&base, "BTCUSDT"), trades_of(&eth_slow, "BTCUSDT"), "trend@ETHUSDT.slow leaves BTCUSDT alone");
    assert_ne!(trades_of(&base, "ETHUSDT"), trades_of(&eth_slow, "ETHUSDT"), "trend@ETHUSDT.slow changes ETHUSDT");
}

/// The `overfitting` signals through the real binary: a sweep's free inputs
/// are its axes against the in-sample best's trades; with `--split` the
/// in-sample row against the out-of-sample report, flagged beyond the
/// default 50% and, with `--max-degradation` just either side of the
/// measured degradation, on and off; a plain backtest's free inputs are its
/// config's numeric parameters.
#[test]
fn overfitting_signals_count_free_inputs_and_flag_walk_forward_degradation() {
    let f = Fixture::new(1500);
    let walk_forward = |split: &str, max: Option<&str>| {
        let mut flags =
            vec!["--sweep", "sma.fast=3..12:3", "--sweep", "sma.slow=10..40:10", "--split", split, "--sweep-out"];
        flags.extend(["in.csv", "--report", "wf.json"]);
        if let Some(max) = max {
            flags.extend(["--max-degradation", max]);
        }
        let stdout = ok(&f.backtest(&flags));
        let json: serde_json::Value = serde_json::from_str(&f.read("wf.json")).unwrap();
        (stdout, json)
    };
    // On this fixture, the in-sample best from 2024-02-10 keeps over half of
    // its CAGR and Sharpe; from 2024-02-20 it loses more than half of both.
    for (split, degraded) in [("2024-02-10", false), ("2024-02-20", true)] {
        let (stdout, json) = walk_forward(split, None);
        let o = &json["overfitting"];
        assert_eq!(o["free_inputs"], serde_json::json!(["sma.fast", "sma.slow"]), "{o}");
        assert_eq!(o["min_trades_per_input"], 10);
        // The in-sample side is the chosen row of the sweep, the out-of-sample side the report.
        let (_, rows) = read_csv(&f.read("in.csv"));
        let (fast, slow) = table_params(&stdout)[0].clone();
        let row = rows.iter().find(|r| r["sma.fast"] == fast && r["sma.slow"] == slow).unwrap();
        let w = &o["walk_forward"];
        let trades: u64 = row["round_trips"].parse().unwrap();
        assert_eq!(o["trades"], trades, "{o}");
        assert_eq!(w["in_sample"]["round_trips"], trades);
        assert_eq!(w["in_sample"]["sharpe"].to_string(), row["sharpe"]);
        assert_eq!(w["in_sample"]["cagr"].to_string(), row["cagr"]);
        assert_eq!(w["out_of_sample"]["sharpe"], json["sharpe"]);
        assert_eq!(w["out_of_sample"]["cagr"], json["cagr"]);
        assert_eq!(w["out_of_sample"]["round_trips"], json["round_trips"]);
        assert!(trades < 20, "under 10 in-sample trades per swept parameter: {o}");
        assert_eq!(o["too_few_trades"], true, "{o}");
        assert!(stdout.contains("WARNING: fewer than 10 closed trades per free input"), "{stdout}");
        // The degradation is (in - out) / in of the annualised figures.
        for figure in ["cagr", "sharpe"] {
            let is = w["in_sample"][figure].as_f64().unwrap();
            let oos = w["out_of_sample"][figure].as_f64().unwrap_or(0.0);
            let lost = w["degradation"][figure].as_f64().unwrap();
            assert!((lost - (is - oos) / is).abs() < 1e-9, "{figure}: {w}");
            assert_eq!(lost > 0.5, degraded, "{split} {figure}: {w}");
        }
        assert_eq!(w["max_degradation"], 0.5);
        assert_eq!(w["degraded"], degraded, "{split}: {w}");
        assert_eq!(stdout.contains("WARNING: out of sample lost more than 50.00%"), degraded, "{stdout}");
        assert!(stdout.contains(&format!("Walk-forward    in sample / out of sample, split {split}")), "{stdout}");
    }
    // Thresholds just below and above the measured degradation flip the flag.
    let (_, json) = walk_forward("2024-02-10", None);
    let lost = &json["overfitting"]["walk_forward"]["degradation"];
    let worst = lost["cagr"].as_f64().unwrap().max(lost["sharpe"].as_f64().unwrap());
    assert!(worst > 0.0, "{lost}");
    for (max, flagged) in [(worst * 0.9, true), (worst * 1.1, false)] {
        let (stdout, json) = walk_forward("2024-02-10", Some(&max.to_string()));
        assert_eq!(json["overfitting"]["walk_forward"]["max_degradation"], max);
        assert_eq!(json["overfitting"]["walk_forward"]["degraded"], flagged, "--max-degradation {max}");
        assert_eq!(stdout.contains("WARNING: out of sample lost more than"), flagged, "{max}: {stdout}");
    }

    // A plain backtest: the numeric parameters written in the config (fast,
    // slow and qty) against its trades: 10 are too few, 90 enough.
    for (fast, slow, trades, flagged) in [("7", "25", 10, true), ("3", "10", 90, false)] {
        std::fs::write(f.path("plain.toml"), config(fast, slow)).unwrap();
        let stdout = ok(&f.keel(
            &["backtest", "--data", "BTCUSDT-1h.csv", "--config", "plain.toml", "--to", "2024-03-01", "--report"]
                .map(String::from)
                .into_iter()
                .chain(["p.json".to_string()])
                .collect::<Vec<_>>(),
        ));
        let json: serde_json::Value = serde_json::from_str(&f.read("p.json")).unwrap();
        let o = &json["overfitting"];
        assert_eq!(o["free_inputs"], serde_json::json!(["sma.fast", "sma.qty", "sma.slow"]), "{o}");
        assert_eq!((&o["trades"], &json["round_trips"]), (&serde_json::json!(trades), &serde_json::json!(trades)));
        assert!(o.get("walk_forward").is_none(), "{o}");
        assert_eq!(o["too_few_trades"], flagged, "{fast}/{slow}: {o}");
        assert_eq!(stdout.contains("WARNING: fewer than 10 closed trades per free input"), flagged, "{stdout}");
    }
}
