//! On the live pipeline (the real `keel` binary, paper venue): a crashing price
//! path trips the drawdown protection; open orders are canceled; HALTED is
//! persisted; a restart stays HALTED; only `keel resume` lets trading continue.

mod common;

use common::{keel, spawn_run};
use keel_core::order::OrderStatus;
use keel_core::store::Store;
use keel_core::trading::TradingState;
use keel_store::SledStore;

const CONFIG: &str = r#"
[engine]
log_format = "json"

[venue]
ticks_per_bar = 4

[sandbox]
speed = 1200

[balances]
USDT = "40000"

[[symbol]]
symbol = "BTCUSDT"
base = "BTC"
quote = "USDT"
tick_size = "0.01"
step_size = "0.0001"
min_notional = "5"
start_price = "50000"
drift = DRIFT
volatility = 0.1
seed = 5
touch_qty = "5"

[[strategy]]
id = "grid"
kind = "grid"
symbol = "BTCUSDT"
params = { lower = "47000", upper = "50500", levels = 8, qty = "0.08" }

[risk]
max_order_notional = "10000"
max_position_notional = "60000"
max_gross_exposure = "60000"
price_band_pct = "8"
max_drawdown_pct = "2"
max_drawdown_action = "halted"
strategy_orders_per_second = 50
global_orders_per_second = 50

[http]
enabled = false
"#;

#[test]
fn crash_trips_drawdown_halts_persists_and_only_resume_clears() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.toml");
    let data = dir.path().join("data");
    let data_s = data.to_str().unwrap().to_string();
    let config_s = config.to_str().unwrap().to_string();
    std::fs::write(&config, CONFIG.replace("DRIFT", "-300.0")).unwrap();

    // 1. The market crashes under a grid of resting buys.
    let mut run = spawn_run(&config, &data, &["--exit-after", "90s"], &[]);
    run.wait_for("order created", 3);
    let halted = loop {
        run.wait_for("trading state changed", 1);
        let hit = run.seen.iter().find(|v| v["message"] == "trading state changed" && v["state"] == "HALTED").cloned();
        if let Some(hit) = hit {
            break hit;
        }
        let n = run.count("trading state changed");
        run.wait_for("trading state changed", n + 1);
    };
    assert!(halted["reason"].as_str().unwrap_or("").contains("drawdown"), "{halted}");
    run.wait_for("canceling open orders", 1);
    run.sigterm();
    let (status, lines) = run.finish();
    common::assert_stopped("the run", status, &lines);
    let created_after_halt = lines
        .iter()
        .skip_while(|v| !(v["message"] == "trading state changed" && v["state"] == "HALTED"))
        .filter(|v| v["message"] == "order created")
        .count();
    assert_eq!(created_after_halt, 0, "no order may be created once HALTED");
    {
        let store = SledStore::open(&data).unwrap();
        assert_eq!(store.trading_state().unwrap().unwrap().state, TradingState::Halted, "HALTED is persisted");
        let open = store.open_orders().unwrap();
        assert!(open.is_empty(), "open orders were canceled: {open:?}");
        assert!(
            store.orders().unwrap().iter().any(|o| o.status == OrderStatus::Canceled),
            "resting grid orders were canceled"
        );
        assert!(store.fill_count().unwrap() > 0, "the grid bought into the crash");
    }

    // 2. A restart stays HALTED, even with a calm market: nothing is sent.
    std::fs::write(&config, CONFIG.replace("DRIFT", "0.0")).unwrap();
    let run = spawn_run(&config, &data, &["--exit-after", "3s"], &[]);
    let (status, lines) = run.finish();
    common::assert_stopped("the run", status, &lines);
    let started = lines.iter().find(|v| v["message"] == "engine started").expect("engine started line");
    assert_eq!(started["trading_state"], "HALTED");
    assert_eq!(lines.iter().filter(|v| v["message"] == "order created").count(), 0);
    let refused = lines.iter().filter(|v| v["message"] == "intent refused by risk guard").count();
    assert!(refused > 0, "the grid kept asking and was refused");
    let out = keel(&["state", "--json", "--config", &config_s, "--data-dir", &data_s]);
    let state: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(state["trading_state"], "HALTED");

    // 3. Only `keel resume` clears it; then trading continues.
    let out = keel(&["resume", "--config", &config_s, "--data-dir", &data_s]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let mut run = spawn_run(&config, &data, &["--exit-after", "60s"], &[]);
    run.wait_for("order created", 1);
    run.sigterm();
    let (status, lines) = run.finish();
    common::assert_stopped("the run", status, &lines);
    let started = lines.iter().find(|v| v["message"] == "engine started").expect("engine started line");
    assert_eq!(started["trading_state"], "ACTIVE");
}
