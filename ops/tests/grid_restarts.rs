//! A stateful strategy keeps its working orders across restarts. `grid` trades
//! on the standalone sandbox while Keel is stopped five times — SIGKILLs right
//! after an order was created, mixed with graceful stops — and restarted on
//! the same store. At every point the venue holds at most one working order
//! per level and side, and every restart re-adopts the orders instead of
//! placing them again.

mod common;

use std::collections::BTreeMap;

use common::{spawn_run, OnSandbox};
use keel_core::store::Store;
use keel_store::SledStore;

const BASE: &str = r#"
[engine]
log_format = "json"
log_level = "info"

[venue]
mode = "testnet"
ticks_per_bar = 4

[sandbox]
speed = 1200

[balances]
USDT = "1000000"
BTC = "0"

[[symbol]]
symbol = "BTCUSDT"
base = "BTC"
quote = "USDT"
tick_size = "0.01"
step_size = "0.0001"
min_notional = "5"
start_price = "50000"
volatility = 0.6
seed = 21
touch_qty = "3"

[risk]
max_order_notional = "100000"
max_position_notional = "1000000"

[http]
enabled = false
"#;

const GRID: &str = r#"
[[strategy]]
id = "btc_grid"
kind = "grid"
symbol = "BTCUSDT"
params = { lower = "46000", upper = "54000", levels = 41, qty = "0.01" }
"#;

/// Working orders at the venue per (side, price), failing on any duplicate.
fn assert_one_per_level_and_side(rt: &tokio::runtime::Runtime, venue: &keel_binance::BinanceVenue, when: &str) {
    let open: Vec<serde_json::Value> = rt
        .block_on(keel_binance::venue::signed_get(
            venue,
            "/api/v3/openOrders",
            vec![("symbol".into(), "BTCUSDT".into())],
        ))
        .expect("openOrders");
    let mut by_level: BTreeMap<(String, String), Vec<String>> = BTreeMap::new();
    for o in &open {
        let key = (o["side"].as_str().unwrap_or("?").to_string(), o["price"].as_str().unwrap_or("?").to_string());
        by_level.entry(key).or_default().push(o["clientOrderId"].as_str().unwrap_or("?").to_string());
    }
    let doubled: Vec<_> = by_level.iter().filter(|(_, ids)| ids.len() > 1).collect();
    assert!(doubled.is_empty(), "{when}: more than one working order at a level and side: {doubled:#?}");
}

#[test]
fn grid_keeps_one_working_order_per_level_and_side_across_five_restarts() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let on = OnSandbox::start(dir.path(), BASE, GRID);
    let (env, trading, data) = (on.env(), &on.trading, &on.data);
    let venue = rt.block_on(on.sb.venue());

    // true: SIGKILL right after an order was created (it may be in flight);
    // false: a graceful stop. Five restarts follow the first run.
    let kills = [true, false, true, true, false, false];
    let mut created_total = 0;
    let mut adoptions = 0;
    for (run, kill) in kills.iter().enumerate() {
        let mut keel = spawn_run(trading, data, &[], &env);
        keel.wait_for("engine started", 1);
        let reconciled = keel.seen.iter().find(|v| v["message"] == "store reconciled with the venue").cloned();
        let open_at_start = reconciled.and_then(|v| v["open_orders"].as_u64()).unwrap_or(0);
        let adopted = keel.seen.iter().find(|v| v["message"] == "strategy re-adopted its working orders");
        if open_at_start > 0 {
            assert_eq!(
                adopted.and_then(|v| v["open_orders"].as_u64()),
                Some(open_at_start),
                "run {run}: the grid re-adopted its working orders before acting"
            );
            adoptions += 1;
        }
        // Each run trades: the first arms the grid (and is killed once most
        // of it rests), later ones re-arm levels whose orders filled and are
        // killed right after an order was created, while it may be in flight.
        keel.wait_for("order created", if run == 0 { 12 } else { 1 });
        if *kill {
            keel.child.kill().expect("SIGKILL");
        } else {
            keel.wait_for("keel running; Ctrl-C or SIGTERM stops it", 1);
            keel.sigterm();
        }
        let (status, lines) = keel.finish();
        if !kill {
            common::assert_stopped(&format!("run {run}"), status, &lines);
        }
        created_total += lines.iter().filter(|v| v["message"] == "order created").count();
        assert_one_per_level_and_side(&rt, &venue, &format!("after run {run}"));
    }

    assert!(adoptions >= 4, "most restarts found working orders to adopt: {adoptions}");

    // The store agrees: per level (tag) and side, at most one open order of the grid.
    let store = SledStore::open(data).expect("store opens");
    let mut by_tag: BTreeMap<(&str, u32), usize> = BTreeMap::new();
    for o in store.open_orders().unwrap().iter().filter(|o| o.strategy_id.as_str() == "btc_grid") {
        let tag = o.tag.expect("every grid order carries its level");
        *by_tag.entry((o.side.as_str(), tag.0)).or_default() += 1;
    }
    assert!(by_tag.values().all(|n| *n == 1), "store: {by_tag:?}");
    assert!(!by_tag.is_empty(), "the grid has working orders at the end");
    drop(store);
    // `keel state` shows each open order's strategy and tag.
    let out =
        common::keel(&["state", "--json", "--config", trading.to_str().unwrap(), "--data-dir", data.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let state: serde_json::Value = serde_json::from_slice(&out.stdout).expect("keel state --json");
    let rows = state["open_orders"].as_array().expect("open_orders");
    assert_eq!(rows.len(), by_tag.len());
    assert!(rows.iter().all(|r| r["strategy"] == "btc_grid" && r["tag"].is_u64()), "{rows:#?}");
    // Re-adopting, not re-placing: 20 levels were armed once, and the later
    // runs added only re-arms after fills — far fewer than 6 full grids.
    assert!(created_total < 20 * 3, "orders were placed again after restarts: {created_total} created");
}

/// The venue's open orders of the account, by client order id.
fn open_at_venue(rt: &tokio::runtime::Runtime, venue: &keel_binance::BinanceVenue) -> Vec<String> {
    let open: Vec<serde_json::Value> =
        rt.block_on(keel_binance::venue::signed_get(venue, "/api/v3/openOrders", vec![])).expect("openOrders");
    open.iter().filter_map(|o| o["clientOrderId"].as_str().map(str::to_string)).collect()
}

#[test]
fn keel_halt_on_a_stopped_engine_cancels_every_resting_order_at_the_next_start_before_anything_else() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let on = OnSandbox::start(dir.path(), BASE, GRID);
    let (env, trading, data) = (on.env(), &on.trading, &on.data);
    let venue = rt.block_on(on.sb.venue());

    // The grid arms and buys, then the engine stops gracefully: its orders rest.
    let mut keel = spawn_run(trading, data, &[], &env);
    keel.wait_for("order created", 8);
    keel.wait_for("keel running; Ctrl-C or SIGTERM stops it", 1);
    keel.wait_for("fill", 1);
    keel.sigterm();
    let (status, stop_lines) = keel.finish();
    common::assert_stopped("the run", status, &stop_lines);
    let resting = open_at_venue(&rt, &venue);
    assert!(resting.len() >= 4, "grid orders rest at the venue: {resting:?}");

    // The operator halts the stopped engine; nothing can reach the venue yet.
    let (trading_s, data_s) = (trading.to_str().unwrap(), data.to_str().unwrap());
    let out = common::keel(&["halt", "--reason", "operator test", "--config", trading_s, "--data-dir", data_s]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(open_at_venue(&rt, &venue).len(), resting.len());

    // The next start, with `flatten_on_emergency_stop`, cancels every one
    // of them first, then sells what the account holds.
    let text = std::fs::read_to_string(trading).unwrap();
    std::fs::write(trading, text.replace("[risk]\n", "[risk]\nflatten_on_emergency_stop = true\n")).unwrap();
    let mut keel = spawn_run(trading, data, &[], &env);
    keel.wait_for("engine started", 1);
    // The grid's buys left BTC in the account, unless its sells (or fills
    // while Keel was down) sold it all: the flatten says which it found.
    let decided = |k: &common::Keel| {
        k.count("flattening position with a reduce-only market order") + k.count("flatten: nothing held to sell")
    };
    keel.wait_until("flatten decision", |k| decided(k) > 0);
    let flattening = keel.count("flattening position with a reduce-only market order") > 0;
    if flattening {
        keel.wait_until("fill of the flatten order", |k| {
            k.seen.iter().any(|v| v["message"] == "fill" && v["strategy"] == "operator")
        });
    }
    let lines = keel.seen.clone();
    let at = |message: &str| lines.iter().position(|v| v["message"] == message);
    let canceled: Vec<(usize, String)> = lines
        .iter()
        .enumerate()
        // The market moves on while Keel is down: an order may have filled
        // meanwhile, and is then reported not open instead of canceled.
        .filter(|(_, v)| {
            v["message"] == "emergency stop: order canceled at start"
                || v["message"] == "emergency stop: order not open at the venue"
        })
        .map(|(i, v)| (i, v["client_order_id"].as_str().unwrap_or("?").to_string()))
        .collect();
    let mut ids: Vec<String> = canceled.iter().map(|(_, id)| id.clone()).collect();
    ids.sort();
    let mut want = resting.clone();
    want.sort();
    let missing: Vec<&String> = want.iter().filter(|id| !ids.contains(id)).collect();
    assert!(missing.is_empty(), "each resting order is canceled (or found filled), and logged: {missing:?} not");
    let last_cancel = canceled.iter().map(|(i, _)| *i).max().unwrap_or(0);
    for later in ["store reconciled with the venue", "engine started"] {
        assert!(at(later).is_some_and(|i| i > last_cancel), "the cancels come before `{later}`");
    }
    assert!(at("strategy warmed up").is_none_or(|i| i > last_cancel), "the cancels come before any warm-up");
    let flatten = at("flattening position with a reduce-only market order").or(at("flatten: nothing held to sell"));
    assert!(flatten.is_some_and(|i| i > last_cancel), "the flatten comes after the cancels");
    assert!(open_at_venue(&rt, &venue).is_empty(), "nothing rests after the halted start");
    keel.sigterm();
    let (status, lines) = keel.finish();
    common::assert_stopped("the run", status, &lines);
    let created: Vec<&serde_json::Value> = lines.iter().filter(|v| v["message"] == "order created").collect();
    assert!(
        created.len() == usize::from(flattening)
            && created.iter().all(|v| v["strategy"] == "operator" && v["side"] == "Sell"),
        "a halted engine sends only the flatten's sell: {created:#?}"
    );

    // It sold exactly the holding: what is left is below the lot step.
    let state = common::state_json(trading_s, data_s);
    let left: keel_core::Decimal = state["positions"]
        .as_array()
        .and_then(|ps| ps.iter().find(|p| p["symbol"] == "BTCUSDT"))
        .and_then(|p| p["qty"].as_str())
        .and_then(|q| q.parse().ok())
        .unwrap_or_default();
    assert!(
        left >= keel_core::Decimal::ZERO && left < keel_core::Decimal::new(1, 4),
        "flat but for dust below the 0.0001 step: {left} ({state:#})"
    );
}
