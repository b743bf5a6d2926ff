//! Commissions in the base asset, end to end with the real binaries: a
//! standalone `keel sandbox` charges a buy's commission in what it receives
//! (`commission_asset = "received"`, as Binance does without BNB), and a
//! strategy buys and sells repeatedly through `keel run`. Every exit must be
//! accepted — none may ask for more than the account holds — and Keel's
//! position must equal the venue's change in the base balance exactly.

mod common;

use common::{spawn_run, OnSandbox};
use keel_core::order::Side;
use keel_core::store::Store;
use keel_core::venue::Venue;
use keel_core::Decimal;
use keel_store::SledStore;

/// A fast moving-average cross on a volatile path: it enters and exits often.
/// The lot step is Binance's for BTCUSDT, so a buy's base commission (0.1 % of
/// 0.01 BTC) leaves the holding off the step and the exit must round down.
const CONFIG: &str = r#"
[engine]
log_format = "json"
log_level = "info"

[venue]
mode = "testnet"
ticks_per_bar = 4

[balances]
USDT = "100000"
BTC = "0"

[sandbox]
speed = 1500
commission_asset = "received"

[[symbol]]
symbol = "BTCUSDT"
base = "BTC"
quote = "USDT"
tick_size = "0.01"
step_size = "0.00001"
min_notional = "5"
start_price = "50000"
volatility = 3.0
seed = 5
touch_qty = "3"

[[strategy]]
id = "btc_fast"
kind = "sma_cross"
symbol = "BTCUSDT"
params = { fast = 2, slow = 4, qty = "0.01" }

[risk]
max_order_notional = "100000"
max_position_notional = "100000"
# Bars close every 40 ms here: the same 0.01 buy a few bars apart is a new
# order, and a round trip takes a handful of bars.
duplicate_window = "0s"
strategy_orders_per_second = 0
global_orders_per_second = 0

[http]
enabled = false
"#;

#[test]
fn exits_sell_what_the_account_holds_and_positions_match_the_venue() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let on = OnSandbox::start(dir.path(), CONFIG, "");
    let (sb, env, trading, data) = (&on.sb, on.env(), &on.trading, &on.data);

    let mut keel = spawn_run(trading, data, &["--exit-after", "120s"], &env);
    keel.wait_for("connected to Binance", 1);
    // Enough round trips that an exit sized on the gross quantity would have
    // been refused several times over.
    let sells = |k: &common::Keel| k.seen.iter().filter(|v| v["message"] == "fill" && v["side"] == "Sell").count();
    while sells(&keel) < 5 {
        keel.wait_for("fill", keel.count("fill") + 1);
    }
    keel.sigterm();
    let (status, lines) = keel.finish();
    common::assert_stopped("the run", status, &lines);

    let refused: Vec<_> = lines.iter().filter(|v| v["message"] == "intent refused by risk guard").collect();
    assert!(refused.is_empty(), "no intent was refused: {refused:#?}");
    let rejected: Vec<_> = lines.iter().filter(|v| v["message"] == "order rejected").collect();
    assert!(rejected.is_empty(), "the venue accepted every order: {rejected:#?}");

    let store = SledStore::open(data).expect("store opens");
    let fills = store.fills().unwrap();
    let buys: Vec<_> = fills.iter().filter(|f| f.side == Side::Buy).collect();
    assert!(!buys.is_empty());
    for f in &buys {
        assert_eq!(f.fee_asset, "BTC", "a buy pays its commission in what it receives: {f:?}");
        assert!(f.fee > Decimal::ZERO, "{f:?}");
    }
    assert!(fills.iter().filter(|f| f.side == Side::Sell).all(|f| f.fee_asset == "USDT"));
    let held: Decimal = fills.iter().map(|f| f.position_delta("BTC")).sum();
    let position = store.positions().unwrap().into_iter().find(|p| p.symbol.as_str() == "BTCUSDT");
    drop(store);

    let venue = rt.block_on(sb.venue());
    let btc = rt
        .block_on(venue.balances())
        .expect("balances")
        .into_iter()
        .find(|b| b.asset == "BTC")
        .map(|b| b.total())
        .unwrap_or_default();
    assert_eq!(held, btc, "the fills' net base quantity is the venue's base balance change (it started at 0)");
    assert_eq!(position.map(|p| p.qty), Some(btc), "keel's position is exactly what the venue holds");

    let out =
        common::keel(&["state", "--json", "--config", trading.to_str().unwrap(), "--data-dir", data.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let state: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let qty = state["positions"]
        .as_array()
        .and_then(|ps| ps.iter().find(|p| p["symbol"] == "BTCUSDT"))
        .and_then(|p| p["qty"].as_str())
        .and_then(|q| q.parse::<Decimal>().ok());
    assert_eq!(qty, Some(btc), "keel state reports the same position: {state:#}");
    // The documented schema 1 keys.
    assert_eq!(state["schema"], 1);
    assert_eq!(state["venue_mode"], "testnet");
    assert_eq!(state["store_integrity"]["ok"], true, "{state:#}");
    let btc_row = state["positions"].as_array().and_then(|ps| ps.iter().find(|p| p["symbol"] == "BTCUSDT")).unwrap();
    let fee_btc: Decimal = btc_row["fees"]["BTC"].as_str().and_then(|v| v.parse().ok()).expect("BTC fees by asset");
    assert!(fee_btc > Decimal::ZERO, "buys paid their commission in BTC: {btc_row:#}");
    assert!(btc_row["dust"].is_string(), "dust is reported for a configured symbol: {btc_row:#}");
    let usdt: Decimal =
        state["balances"]["USDT"]["free"].as_str().and_then(|v| v.parse().ok()).expect("balances by asset");
    assert!(usdt > Decimal::ZERO);
    assert!(state["checkpoint"].is_null() || state["checkpoint"]["fill_seq"].is_u64());
}
