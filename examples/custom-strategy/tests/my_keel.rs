//! The example's own binary, `my-keel`, run as a user runs it: it lists the
//! `donchian_breakout` kind with its parameters, refuses a value outside
//! them, and backtests and sweeps it on bars written to a temp dir, with the
//! example's `config.toml`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// `my-keel ARGS` in `dir`.
fn my_keel(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_my-keel")).args(args).current_dir(dir).output().expect("my-keel starts")
}

/// The example's config, as shipped.
fn config() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("config.toml")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// 600 hourly BTCUSDT bars from 2024-01-01: a slow wave of ±6 % (so there
/// are breakouts and breakdowns) with a little deterministic noise.
fn write_bars(path: &Path) {
    let mut csv = String::from("timestamp,open,high,low,close,volume\n");
    let mut state: u64 = 7;
    let mut prev = 65_000.0_f64;
    for i in 0..600 {
        state = state.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        let noise = ((state >> 33) % 1000) as f64 / 1000.0 - 0.5;
        let close = 65_000.0 * (1.0 + 0.06 * (i as f64 / 40.0).sin()) + 150.0 * noise;
        let (open, close) = ((prev * 100.0).round() / 100.0, (close * 100.0).round() / 100.0);
        let (high, low) = (open.max(close) + 40.0, open.min(close) - 40.0);
        let t = 1_704_067_200_000_i64 + i * 3_600_000;
        csv.push_str(&format!("{t},{open:.2},{high:.2},{low:.2},{close:.2},1.5\n"));
        prev = close;
    }
    std::fs::write(path, csv).expect("bars written");
}

/// `strategies --json` lists the added kind after Keel's own, with its
/// declared parameters.
#[test]
fn strategies_lists_the_kind_with_its_parameters() {
    let dir = tempfile::tempdir().expect("temp dir");
    let out = my_keel(dir.path(), &["strategies", "--json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let kinds: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let kinds = kinds.as_array().expect("a list");
    let names: Vec<&str> = kinds.iter().filter_map(|k| k["kind"].as_str()).collect();
    assert!(names.contains(&"sma_cross"), "{names:?}");
    assert_eq!(names.last(), Some(&"donchian_breakout"));
    let params = kinds.last().map(|k| k["params"].clone()).unwrap_or_default();
    let summary: Vec<(String, String, bool, String)> = params
        .as_array()
        .expect("params")
        .iter()
        .map(|p| {
            (
                p["name"].to_string(),
                p["type"].to_string(),
                p["required"].as_bool().unwrap_or(false),
                p["default"].to_string(),
            )
        })
        .collect();
    let want = [
        ("\"entry\"", "\"integer\"", false, "20"),
        ("\"exit\"", "\"integer\"", false, "10"),
        ("\"max_atr_pct\"", "\"number\"", false, "5.0"),
        ("\"qty\"", "\"decimal\"", true, "null"),
    ];
    let want: Vec<(String, String, bool, String)> =
        want.iter().map(|(n, t, r, d)| (n.to_string(), t.to_string(), *r, d.to_string())).collect();
    assert_eq!(summary, want);
    assert_eq!(params[0]["min"], serde_json::json!({ "value": "2", "inclusive": true }));
}

/// The shipped config checks, and one with a value outside a declared range
/// fails `check-config` with the key and the range.
#[test]
fn check_config_reads_the_declarations() {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = config();
    let out = my_keel(dir.path(), &["check-config", "--config", config.to_str().expect("utf-8 path")]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let shipped = std::fs::read_to_string(&config).expect("config.toml");
    let bad = shipped.replace("entry = 20,", "entry = 1,");
    assert_ne!(bad, shipped);
    std::fs::write(dir.path().join("bad.toml"), bad).expect("written");
    let out = my_keel(dir.path(), &["check-config", "--config", "bad.toml"]);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(err.contains("strategy[0].params.entry") && err.contains("must be between 2 and 1000, got 1"), "{err}");
}

/// `backtest` trades the kind (round trips in the report), `--sweep` runs
/// it once per value of a declared parameter, and refuses a swept value
/// outside the declared range before anything runs.
#[test]
fn backtest_and_sweep_trade_the_kind() {
    let dir = tempfile::tempdir().expect("temp dir");
    write_bars(&dir.path().join("BTCUSDT-1h.csv"));
    let config = config();
    let config = config.to_str().expect("utf-8 path");
    let out =
        my_keel(dir.path(), &["backtest", "--config", config, "--data", "BTCUSDT-1h.csv", "--report", "report.json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("report.json")).expect("report")).expect("JSON");
    assert_eq!(report["strategies"], serde_json::json!(["btc_donchian"]));
    let round_trips = report["round_trips"].as_u64().unwrap_or(0);
    assert!(round_trips >= 2, "round trips: {round_trips}\n{}", text(&out.stdout));

    let out = my_keel(
        dir.path(),
        &[
            "backtest",
            "--config",
            config,
            "--data",
            "BTCUSDT-1h.csv",
            "--sweep",
            "btc_donchian.entry=10..30:10",
            "--sweep-out",
            "sweep.csv",
        ],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let sweep = std::fs::read_to_string(dir.path().join("sweep.csv")).expect("sweep.csv");
    let rows: Vec<&str> = sweep.lines().filter(|l| !l.starts_with('#')).skip(1).collect();
    assert_eq!(rows.len(), 3, "{sweep}");
    let out = my_keel(
        dir.path(),
        &["backtest", "--config", config, "--data", "BTCUSDT-1h.csv", "--sweep", "btc_donchian.exit=0..2"],
    );
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(err.contains("`exit` must be between 1 and 1000, got 0"), "{err}");
}
