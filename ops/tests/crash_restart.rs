//! The real `keel` binary is killed with SIGKILL while trading, restarted on the
//! same data dir, and must continue with positions that equal its recorded
//! fills and without ever reusing a client order id.

mod common;

use std::collections::{BTreeMap, HashSet};
use std::process::Command;

use common::{created_ids, spawn_run};

use keel_core::position::Position;
use keel_core::store::Store;
use keel_core::Decimal;
use keel_store::SledStore;

const CONFIG: &str = r#"
[engine]
log_format = "json"
log_level = "info"

[venue]
ticks_per_bar = 4

[sandbox]
speed = 1500

[balances]
USDT = "1000000"

[[symbol]]
symbol = "BTCUSDT"
base = "BTC"
quote = "USDT"
tick_size = "0.01"
step_size = "0.0001"
min_notional = "5"
start_price = "50000"
volatility = 2.0
seed = 11
touch_qty = "3"

[[symbol]]
symbol = "ETHUSDT"
base = "ETH"
quote = "USDT"
tick_size = "0.01"
step_size = "0.001"
min_notional = "5"
start_price = "3000"
volatility = 2.0
seed = 12
touch_qty = "30"

[[strategy]]
id = "btc_fast"
kind = "sma_cross"
symbol = "BTCUSDT"
params = { fast = 2, slow = 4, qty = "0.01" }

[[strategy]]
id = "eth_fast"
kind = "sma_cross"
symbol = "ETHUSDT"
params = { fast = 2, slow = 5, qty = "0.5" }

[risk]
max_order_notional = "100000"
max_position_notional = "100000"

[http]
enabled = false
"#;

fn positions_from_fills(store: &dyn Store) -> BTreeMap<String, Decimal> {
    let mut positions: BTreeMap<String, Position> = BTreeMap::new();
    for fill in store.fills().unwrap() {
        let base = fill.symbol.trim_end_matches("USDT").to_string();
        positions
            .entry(fill.symbol.to_string())
            .or_insert_with(|| Position::flat(fill.symbol.clone()))
            .apply_fill(&fill, &base, "USDT");
    }
    positions.into_iter().map(|(s, p)| (s, p.qty)).collect()
}

#[test]
fn sigkill_then_restart_continues_from_recorded_fills() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.toml");
    std::fs::write(&config, CONFIG).unwrap();
    let data = dir.path().join("data");

    // 1. Trade, then die without any shutdown path.
    let mut first = spawn_run(&config, &data, &[], &[]);
    first.wait_for("fill", 4);
    first.child.kill().expect("SIGKILL");
    let (_, first_lines) = first.finish();

    let fills_before = {
        let store = SledStore::open(&data).expect("the store opens after a crash");
        let logged_fills = first_lines.iter().filter(|v| v["message"] == "fill").count();
        let stored = store.fill_count().unwrap();
        assert!(stored >= logged_fills, "every acknowledged fill is durable: {stored} stored < {logged_fills} logged");
        stored
    };

    // 2. Restart on the same data dir: reconcile, then keep trading.
    let mut second = spawn_run(&config, &data, &["--exit-after", "60s"], &[]);
    second.wait_for("store reconciled with the venue", 1);
    second.wait_for("fill", 2);
    second.sigterm();
    let (status, second_lines) = second.finish();
    common::assert_stopped("the run", status, &second_lines);
    assert!(second_lines.iter().any(|v| v["message"] == "keel stopped"));

    // 3. No client order id was ever used twice, across the crash.
    let mut all = created_ids(&first_lines);
    all.extend(created_ids(&second_lines));
    let unique: HashSet<&String> = all.iter().collect();
    assert_eq!(unique.len(), all.len(), "a client order id was reused: {all:?}");

    // 4. Positions equal what the recorded fills imply, in the store's cache and in `keel state`.
    let store = SledStore::open(&data).unwrap();
    assert!(store.fill_count().unwrap() > fills_before, "trading continued after the restart");
    let implied = positions_from_fills(&store);
    for p in store.positions().unwrap() {
        assert_eq!(
            Some(&p.qty),
            implied.get(p.symbol.as_str()),
            "cached position of {} differs from its fills",
            p.symbol
        );
    }
    for order in store.orders().unwrap() {
        assert!(unique.contains(&order.client_order_id), "stored order {} was never created", order.client_order_id);
    }
    drop(store);
    let out = Command::new(env!("CARGO_BIN_EXE_keel"))
        .args(["state", "--json", "--config"])
        .arg(&config)
        .arg("--data-dir")
        .arg(&data)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let state: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(state["trading_state"], "ACTIVE");
    assert_eq!(state["emergency_stop"], false);
    assert!(state["fills_total"].as_u64().unwrap() as usize > fills_before);
    for p in state["positions"].as_array().unwrap() {
        let symbol = p["symbol"].as_str().unwrap();
        let qty: Decimal = p["qty"].as_str().unwrap().parse().unwrap();
        assert_eq!(Some(&qty), implied.get(symbol), "keel state position of {symbol}");
        assert!(p["avg_price"].is_string() && p["realized_pnl"].is_string());
    }
}
