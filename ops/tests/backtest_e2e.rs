//! End to end: `ops::backtest::run` (what `keel backtest` calls) on generated
//! CSV bars, checking the printed report's files: JSON, trades CSV and PNG.

use std::path::{Path, PathBuf};

use ops::backtest::{build_strategies, run, BacktestArgs, Setup};

/// Hourly bars of a deterministic wave plus noise, as pandas would write them.
fn write_bars(path: &Path, n: usize) {
    let mut text = String::from(",open,high,low,close,volume\n");
    let mut state: u64 = 42;
    let mut prev = 30_000.0f64;
    for i in 0..n {
        state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        let noise = ((state >> 33) % 1000) as f64 / 1000.0 - 0.5;
        let close = 30_000.0 + 3_000.0 * (i as f64 / 60.0).sin() + 400.0 * noise;
        let (open, close) = ((prev * 100.0).round() / 100.0, (close * 100.0).round() / 100.0);
        let high = open.max(close) + 25.0;
        let low = open.min(close) - 25.0;
        let t = 1_704_067_200 + i as i64 * 3600;
        let ts = chrono_free_iso(t);
        text.push_str(&format!("{ts},{open:.2},{high:.2},{low:.2},{close:.2},{:.3}\n", 10.0 + noise));
        prev = close;
    }
    std::fs::write(path, text).unwrap();
}

/// `YYYY-MM-DD HH:MM:SS` for epoch seconds (civil-from-days, no date crate needed).
fn chrono_free_iso(secs: i64) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}", rem / 3600, (rem / 60) % 60, rem % 60)
}

const CONFIG: &str = r#"
[[symbol]]
symbol = "BTCUSDT"
base = "BTC"
quote = "USDT"
tick_size = "0.01"
step_size = "0.00001"
min_notional = "5"
start_price = "30000"
volatility = 0.5
touch_qty = "5"

[balances]
USDT = "100000"

[risk]
max_order_notional = "20000"
max_position_notional = "60000"

[[strategy]]
id = "sma"
kind = "sma_cross"
symbol = "BTCUSDT"
params = { fast = 5, slow = 20, qty = "0.1" }

[[strategy]]
id = "ema"
kind = "ema_cross"
symbol = "BTCUSDT"
params = { fast = 5, slow = 20, qty = "0.1" }

[[strategy]]
id = "rsi"
kind = "rsi_reversion"
symbol = "BTCUSDT"
params = { period = 14, buy_below = 35, sell_above = 65, qty = "0.1" }

[[strategy]]
id = "bb"
kind = "bollinger_breakout"
symbol = "BTCUSDT"
params = { period = 20, k = 1.5, qty = "0.1" }

[[strategy]]
id = "macd"
kind = "macd"
symbol = "BTCUSDT"
params = { qty = "0.1" }

[[strategy]]
id = "grid"
kind = "grid"
symbol = "BTCUSDT"
params = { lower = "27000", upper = "33000", levels = 7, qty = "0.05" }

[[strategy]]
id = "hook"
kind = "webhook"
symbol = "BTCUSDT"
params = { qty = "0.2" }

[[strategy]]
id = "big"
kind = "sma_cross"
symbol = "BTCUSDT"
paused = true
params = { fast = 5, slow = 20, qty = "5" }
"#;

struct Fixture {
    _dir: tempfile::TempDir,
    root: PathBuf,
}

fn fixture(bars: usize) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_path_buf();
    write_bars(&root.join("BTCUSDT-1h.csv"), bars);
    std::fs::write(root.join("config.toml"), CONFIG).unwrap();
    std::fs::write(
        root.join("signals.csv"),
        "time,symbol,action,qty\n2024-01-03T05:30:00Z,BTCUSDT,buy,\n2024-01-05,BTCUSDT,close,\n2024-01-08,BTCUSDT,buy,0.1\n2024-01-09,BTCUSDT,sell,0.05\n",
    )
    .unwrap();
    Fixture { _dir: dir, root }
}

fn args(f: &Fixture) -> BacktestArgs {
    BacktestArgs {
        data: vec![f.root.join("BTCUSDT-1h.csv")],
        config: Some(f.root.join("config.toml")),
        strategy: Vec::new(),
        symbol: None,
        fee_bps: Some("10".parse().unwrap()),
        slippage_bps: Some("2".parse().unwrap()),
        from: None,
        to: None,
        report: Some(f.root.join("report.json")),
        trades: Some(f.root.join("trades.csv")),
        plot: Some(f.root.join("equity.png")),
        skip_bad_rows: false,
        signals: Some(f.root.join("signals.csv")),
        futures: Vec::new(),
        sweep: Default::default(),
    }
}

#[test]
fn backtest_writes_consistent_report_trades_and_plot() {
    let f = fixture(24 * 30);
    run(args(&f), &strategies::StrategyRegistry::builtin()).unwrap();
    // To look at the output: KEEL_BACKTEST_OUT=/some/dir cargo test -p keel-ops --test backtest_e2e -- --nocapture
    if let Some(out) = std::env::var_os("KEEL_BACKTEST_OUT") {
        for name in ["report.json", "trades.csv", "equity.png", "BTCUSDT-1h.csv", "config.toml", "signals.csv"] {
            std::fs::copy(f.root.join(name), Path::new(&out).join(name)).unwrap();
        }
    }

    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(f.root.join("report.json")).unwrap()).unwrap();
    assert_eq!(report["bars"], 720);
    assert_eq!(report["start"], "2024-01-01T00:00:00Z");
    assert_eq!(report["end"], "2024-01-30T23:59:59Z");
    assert_eq!(report["initial_equity"], "100000");
    let strategies: Vec<&str> = report["strategies"].as_array().unwrap().iter().map(|s| s.as_str().unwrap()).collect();
    assert_eq!(strategies, ["sma", "ema", "rsi", "bb", "macd", "grid", "hook"], "paused `big` does not run");
    for key in [
        "total_return",
        "cagr",
        "annualized_volatility",
        "sharpe",
        "sortino",
        "max_drawdown",
        "win_rate",
        "exposure_time",
    ] {
        assert!(report[key].is_number(), "{key} = {}", report[key]);
    }
    let dd = report["max_drawdown"].as_f64().unwrap();
    assert!((0.0..1.0).contains(&dd));

    // Every strategy traded at least one full round trip.
    let per: Vec<(String, u64)> = report["per_strategy"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["strategy"].as_str().unwrap().to_string(), s["round_trips"].as_u64().unwrap()))
        .collect();
    for (id, n) in &per {
        assert!(*n > 0, "{id} made no round trip: {per:?}");
    }

    // The trades CSV has one row per round trip and adds up to the report.
    let trades = std::fs::read_to_string(f.root.join("trades.csv")).unwrap();
    let mut lines = trades.lines();
    assert_eq!(
        lines.next().unwrap(),
        "strategy,symbol,direction,entry_time,entry_price,exit_time,exit_price,qty,pnl,fees"
    );
    let rows: Vec<Vec<String>> = lines.map(|l| l.split(',').map(str::to_string).collect()).collect();
    assert_eq!(rows.len() as u64, report["round_trips"].as_u64().unwrap());
    let wins =
        rows.iter().filter(|r| r[8].parse::<rust_decimal::Decimal>().unwrap() > rust_decimal::Decimal::ZERO).count();
    let win_rate = report["win_rate"].as_f64().unwrap();
    assert!((win_rate - wins as f64 / rows.len() as f64).abs() < 1e-12);
    for r in &rows {
        assert!(r[3] <= r[5], "entry before exit: {r:?}");
    }
    // Fees of round trips never exceed the fees paid overall.
    let trip_fees: rust_decimal::Decimal = rows.iter().map(|r| r[9].parse::<rust_decimal::Decimal>().unwrap()).sum();
    let fees_paid: rust_decimal::Decimal = report["fees_paid"].as_str().unwrap().parse().unwrap();
    assert!(trip_fees <= fees_paid && fees_paid > rust_decimal::Decimal::ZERO);

    // A real PNG of the configured size.
    let png = std::fs::read(f.root.join("equity.png")).unwrap();
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    assert_eq!(u32::from_be_bytes([png[16], png[17], png[18], png[19]]), 1400);
    assert_eq!(u32::from_be_bytes([png[20], png[21], png[22], png[23]]), 800);
}

#[test]
fn backtest_selects_a_strategy_and_a_date_range() {
    let f = fixture(24 * 10);
    let mut a = args(&f);
    a.strategy = vec!["big".into()];
    a.from = Some("2024-01-03".into());
    a.to = Some("2024-01-05".into());
    a.plot = None;
    run(a, &strategies::StrategyRegistry::builtin()).unwrap();
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(f.root.join("report.json")).unwrap()).unwrap();
    assert_eq!(report["bars"], 72, "three whole days");
    assert_eq!(report["start"], "2024-01-03T00:00:00Z");
    assert_eq!(report["strategies"][0], "big", "a paused strategy runs when named");
    // 5 BTC ≈ 150k USDT breaks the 20k per-order limit every time.
    let rejections = report["risk_rejections"].as_object().unwrap();
    assert!(rejections.get("notional_above_max").and_then(|v| v.as_u64()).unwrap_or(0) > 0, "{rejections:?}");
    assert_eq!(report["fills"], 0);
}

/// A strategy template (`symbols = "universe"`) runs one instance per symbol
/// of the data, with the live ids `ID@SYMBOL`.
#[test]
fn a_template_runs_on_each_symbol_of_the_data() {
    let f = fixture(24 * 10);
    let eth = f.root.join("ETHUSDT-1h.csv");
    std::fs::copy(f.root.join("BTCUSDT-1h.csv"), &eth).unwrap();
    let config = "[universe]\nquote = \"USDT\"\ntop_n = 2\n\n[balances]\nUSDT = \"100000\"\n\n[risk]\nmax_order_notional = \"20000\"\nmax_position_notional = \"60000\"\n\n[[strategy]]\nid = \"trend\"\nkind = \"sma_cross\"\nsymbols = \"universe\"\nparams = { fast = 5, slow = 20, notional = \"3000\" }\n";
    std::fs::write(f.root.join("config.toml"), config).unwrap();
    let mut a = args(&f);
    a.data.push(eth);
    a.signals = None;
    a.plot = None;
    run(a, &strategies::StrategyRegistry::builtin()).unwrap();
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(f.root.join("report.json")).unwrap()).unwrap();
    let ids: Vec<&str> = report["strategies"].as_array().unwrap().iter().filter_map(|v| v.as_str()).collect();
    assert_eq!(ids, ["trend@BTCUSDT", "trend@ETHUSDT"]);
    let trades = std::fs::read_to_string(f.root.join("trades.csv")).unwrap();
    for id in ids {
        assert!(trades.contains(id), "{id} traded: {trades}");
    }
}

#[test]
fn backtest_errors_name_the_problem() {
    let f = fixture(48);
    let mut a = args(&f);
    a.strategy = vec!["nope".into()];
    let err = run(a, &strategies::StrategyRegistry::builtin()).unwrap_err().to_string();
    assert!(err.contains("--strategy nope: no such strategy"), "{err}");

    std::fs::write(
        f.root.join("BAD.csv"),
        "date,open,high,low,close,volume\n2024-01-01,1,2,0.5,1.5,1\n2024-01-02,1,2,zero,1.5,1\n",
    )
    .unwrap();
    let mut a = args(&f);
    a.data = vec![f.root.join("BAD.csv")];
    a.symbol = Some("BTCUSDT".into());
    let err = run(a.clone(), &strategies::StrategyRegistry::builtin()).unwrap_err().to_string();
    assert!(err.ends_with("BAD.csv:3: low: `zero` is not a number"), "{err}");
    a.skip_bad_rows = true;
    a.plot = None;
    run(a, &strategies::StrategyRegistry::builtin()).unwrap();
}

/// A strategy block's `exits` run in the backtest and the report counts them
/// by reason; a bad exits table is refused naming its key.
#[test]
fn exits_of_a_strategy_block_are_reported_by_reason() {
    let f = fixture(24 * 30);
    let symbol = CONFIG.split("[balances]").next().unwrap();
    let block = format!("{symbol}[balances]\nUSDT = \"100000\"\n\n[risk]\nmax_order_notional = \"20000\"\nmax_position_notional = \"60000\"\n\n[[strategy]]\nid = \"sma\"\nkind = \"sma_cross\"\nsymbol = \"BTCUSDT\"\nparams = {{ fast = 5, slow = 20, qty = \"0.1\" }}\n");
    let report = |exits: &str| -> serde_json::Value {
        std::fs::write(f.root.join("config.toml"), format!("{block}{exits}")).unwrap();
        let mut a = args(&f);
        (a.signals, a.plot) = (None, None);
        run(a, &strategies::StrategyRegistry::builtin()).unwrap();
        serde_json::from_str(&std::fs::read_to_string(f.root.join("report.json")).unwrap()).unwrap()
    };
    let without = report("");
    assert_eq!(without["exits"], serde_json::json!({}), "no exits, none reported");
    let with = report("exits = { stop_loss = \"1%\", take_profit = \"2%\", max_hold = \"12h\" }\n");
    let exits = with["exits"].as_object().unwrap();
    let total: u64 = exits.values().filter_map(|v| v.as_u64()).sum();
    assert!(total > 0, "{exits:?}");
    for reason in exits.keys() {
        assert!(["stop_loss", "take_profit", "max_hold", "signal"].contains(&reason.as_str()), "{reason}");
    }
    assert_ne!(with["final_equity"], without["final_equity"], "the exits changed the run");

    std::fs::write(f.root.join("config.toml"), format!("{block}exits = {{ stop_loss = \"150%\" }}\n")).unwrap();
    let err = run(args(&f), &strategies::StrategyRegistry::builtin()).unwrap_err().to_string();
    assert!(err.contains("strategy[0].exits.stop_loss"), "{err}");
}

/// `keel backtest` splits the fills into trades on another thread while the run goes on; a
/// sweep's runs split them afterwards. Both give the same trades and report, over several of
/// the feed's chunks (1 024 fills each). Fails when a chunk is lost or split out of order.
#[test]
fn trades_split_during_the_run_are_those_split_after_it() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_path_buf();
    write_bars(&root.join("BTCUSDT-1h.csv"), 5_000);
    let config = CONFIG.split("[[strategy]]").next().unwrap().to_string()
        + "[[strategy]]\nid = \"fast\"\nkind = \"sma_cross\"\nsymbol = \"BTCUSDT\"\nparams = { fast = 1, slow = 2, qty = \"0.01\" }\n"
        + "[[strategy]]\nid = \"rsi\"\nkind = \"rsi_reversion\"\nsymbol = \"BTCUSDT\"\nparams = { period = 2, buy_below = 40, sell_above = 60, qty = \"0.01\" }\n";
    std::fs::write(root.join("config.toml"), config).unwrap();
    let f = Fixture { _dir: dir, root };
    let args = BacktestArgs { signals: None, report: None, trades: None, plot: None, ..args(&f) };
    let registry = strategies::StrategyRegistry::builtin();
    let prepared = Setup::read(&args).unwrap().load(&args).unwrap();
    let slots = || build_strategies(&prepared.strategies, &registry).unwrap();
    let during = prepared.run(slots(), |_| {});
    let after = prepared.run_in_pool(slots());
    assert!(during.outcome.fills.len() > 3 * 1024, "{} fills: too few for several chunks", during.outcome.fills.len());
    assert!(during.trades.len() > 1000, "{} trades", during.trades.len());
    // Thousands of trades: their count, then where they first differ, not all of them.
    assert_eq!(during.trades.len(), after.trades.len());
    let differ = during.trades.iter().zip(&after.trades).position(|(a, b)| a != b);
    assert_eq!(differ, None, "the trades differ from this one on");
    assert_eq!(during.open_entries, after.open_entries);
    assert_eq!(during.report, after.report);
}
