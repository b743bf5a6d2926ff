//! Crash reconciliation against the Binance-protocol sandbox, end to end with
//! the real binaries: `keel sandbox` runs standalone, `keel run` trades on it
//! in `testnet` mode (URLs overridden, keys from the environment), is killed
//! with SIGKILL while orders rest and fills arrive, and restarts. Afterwards
//! the store must agree with the sandbox — orders, fills, balances — and no
//! client order id may have been sent twice.

mod common;

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::path::Path;
use std::time::{Duration, Instant};

use common::{created_ids, spawn_run, OnSandbox};
use keel_core::order::{OrderStatus, Side};
use keel_core::position::Position;
use keel_core::store::Store;
use keel_core::venue::Venue;
use keel_core::{Decimal, Symbol};
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
ETH = "0"

[[symbol]]
symbol = "BTCUSDT"
base = "BTC"
quote = "USDT"
tick_size = "0.01"
step_size = "0.0001"
min_notional = "5"
start_price = "50000"
volatility = 0.6
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

[risk]
max_order_notional = "100000"
max_position_notional = "100000"

[http]
enabled = false
"#;

/// A grid keeps limit orders resting on BTCUSDT; a fast moving-average cross
/// sends market orders on ETHUSDT, so fills keep arriving.
const STRATEGIES: &str = r#"
[[strategy]]
id = "btc_grid"
kind = "grid"
symbol = "BTCUSDT"
params = { lower = "46000", upper = "54000", levels = 41, qty = "0.01" }

[[strategy]]
id = "eth_fast"
kind = "sma_cross"
symbol = "ETHUSDT"
params = { fast = 2, slow = 5, qty = "0.5" }
"#;

fn symbols() -> [Symbol; 2] {
    [Symbol::new("BTCUSDT"), Symbol::new("ETHUSDT")]
}

fn write(path: &Path, text: &str) {
    std::fs::write(path, text).expect("config written");
}

#[test]
fn sigkill_while_orders_rest_then_store_agrees_with_the_sandbox() {
    let dir = tempfile::tempdir().unwrap();
    crash_cycle(OnSandbox::start(dir.path(), BASE, STRATEGIES), ("ed25519", "ws"));
}

/// The same with an HMAC key and orders over REST, as configured.
#[test]
fn sigkill_while_orders_rest_with_hmac_keys_and_rest_orders() {
    let dir = tempfile::tempdir().unwrap();
    crash_cycle(OnSandbox::start_hmac_rest(dir.path(), BASE, STRATEGIES), ("hmac", "rest"));
}

fn crash_cycle(on: OnSandbox, (key_type, transport): (&str, &str)) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (sb, env, trading, data) = (&on.sb, on.env(), &on.trading, &on.data);
    let venue = rt.block_on(sb.venue());

    // 1. Trade on the sandbox, then die without any shutdown path while
    //    grid orders rest.
    let mut first = spawn_run(trading, data, &[], &env);
    first.wait_for("connected to Binance", 1);
    let connected = first.seen.iter().find(|v| v["message"] == "connected to Binance").cloned().unwrap_or_default();
    assert_eq!(
        (connected["key_type"].as_str(), connected["order_transport"].as_str()),
        (Some(key_type), Some(transport)),
        "{connected}"
    );
    first.wait_for("fill", 4);
    first.child.kill().expect("SIGKILL");
    let (_, first_lines) = first.finish();
    let open_at_kill = rt.block_on(venue.open_orders(None)).expect("open orders");
    assert!(!open_at_kill.is_empty(), "keel was killed while orders were open at the venue");
    let (fills_before, stored_keys) = {
        let store = SledStore::open(data).expect("the store opens after a crash");
        let logged = first_lines.iter().filter(|v| v["message"] == "fill").count();
        let stored = store.fill_count().unwrap();
        assert!(stored >= logged, "every acknowledged fill is durable: {stored} stored < {logged} logged");
        let keys: BTreeSet<(String, keel_core::fill::TradeId)> =
            store.fills().unwrap().iter().map(|f| (f.symbol.to_string(), f.trade_id.clone())).collect();
        (stored, keys)
    };
    // Fills keep arriving while Keel is down: wait (bounded) until a resting
    // order has filled at the venue without the store knowing.
    let deadline = Instant::now() + Duration::from_secs(60);
    let missed = loop {
        let mut missed = Vec::new();
        for s in symbols() {
            for f in rt.block_on(venue.my_trades(&s, None)).expect("myTrades") {
                if !stored_keys.contains(&(f.symbol.to_string(), f.trade_id.clone())) {
                    missed.push(f.trade_id);
                }
            }
        }
        if !missed.is_empty() {
            break missed;
        }
        if Instant::now() >= deadline {
            let open = rt.block_on(venue.open_orders(None)).unwrap();
            let bba = rt.block_on(venue.best_bid_ask(&Symbol::new("BTCUSDT"))).unwrap();
            panic!("no resting order filled while keel was down; open {open:#?}; book {bba:?}");
        }
        std::thread::sleep(Duration::from_millis(100));
    };

    // 2. Restart: reconcile before trading, then keep trading; stop gracefully.
    let mut second = spawn_run(trading, data, &["--exit-after", "90s"], &env);
    second.wait_for("store reconciled with the venue", 1);
    let reconciled_at = second.seen.len();
    let fills_at_reconcile = second.count("fill");
    assert_eq!(fills_at_reconcile, 0, "no strategy traded before reconciliation finished");
    assert!(
        second.seen[..reconciled_at].iter().all(|v| v["message"] != "order created"),
        "no order before reconciliation"
    );
    let recovered: Vec<&str> = second.seen[..reconciled_at]
        .iter()
        .filter(|v| v["message"] == "reconciliation")
        .filter_map(|v| v["difference"].as_str())
        .filter(|d| d.contains("was missing from the store: recorded"))
        .collect();
    for id in &missed {
        assert!(
            recovered.iter().any(|d| d.contains(&format!("#{id} "))),
            "the fill #{id} made while keel was down was recorded at start-up: {recovered:?}"
        );
    }
    second.wait_for("fill", 4);
    second.sigterm();
    let (status, second_lines) = second.finish();
    common::assert_stopped("the run", status, &second_lines);
    assert!(second_lines.iter().any(|v| v["message"] == "keel stopped"));

    // 3. Freeze the account: cancel what rests (Keel is not running, so the
    //    store does not know yet), then a restart without strategies must
    //    bring the store into exact agreement.
    rt.block_on(async {
        for o in venue.open_orders(None).await.expect("open orders") {
            venue.cancel_order(&o.symbol, &o.client_order_id).await.expect("cancel");
        }
    });
    let quiet = trading.with_file_name("quiet.toml");
    let rest = if transport == "rest" { "order_transport = \"rest\"\n" } else { "" };
    write(&quiet, &format!("{BASE}\n{}{rest}", sb.binance_section()));
    let mut third = spawn_run(&quiet, data, &["--exit-after", "90s"], &env);
    third.wait_for("store reconciled with the venue", 1);
    // SIGTERM is handled once the engine runs (before that it kills).
    third.wait_for("keel running; Ctrl-C or SIGTERM stops it", 1);
    third.sigterm();
    let (status, third_lines) = third.finish();
    common::assert_stopped("the run", status, &third_lines);

    // 4. No client order id was used twice, by Keel or at the venue.
    let mut created = created_ids(&first_lines);
    created.extend(created_ids(&second_lines));
    created.extend(created_ids(&third_lines));
    let unique: HashSet<&String> = created.iter().collect();
    assert_eq!(unique.len(), created.len(), "a client order id was reused: {created:?}");
    let mut venue_ids = Vec::new();
    for s in symbols() {
        let all: Vec<serde_json::Value> = rt
            .block_on(keel_binance::venue::signed_get(
                &venue,
                "/api/v3/allOrders",
                vec![("symbol".into(), s.to_string()), ("limit".into(), "1000".into())],
            ))
            .expect("allOrders");
        venue_ids.extend(all.iter().filter_map(|o| o["clientOrderId"].as_str().map(str::to_string)));
    }
    let venue_unique: BTreeSet<&String> = venue_ids.iter().collect();
    assert_eq!(venue_unique.len(), venue_ids.len(), "the venue received a client order id twice");
    for id in &venue_ids {
        assert!(unique.contains(id), "the venue has order {id} that Keel never created");
    }

    // 5. The store agrees with the sandbox.
    let store = SledStore::open(data).expect("store opens");
    assert!(store.fill_count().unwrap() > fills_before, "trading continued after the restart");
    // Fills: the same trades, field by field.
    let stored_fills = store.fills().unwrap();
    let mut venue_fills = Vec::new();
    for s in symbols() {
        venue_fills.extend(rt.block_on(venue.my_trades(&s, None)).expect("myTrades"));
    }
    let key = |f: &keel_core::fill::Fill| (f.symbol.to_string(), f.trade_id.clone());
    let stored_by: BTreeMap<_, _> = stored_fills.iter().map(|f| (key(f), f)).collect();
    let venue_by: BTreeMap<_, _> = venue_fills.iter().map(|f| (key(f), f)).collect();
    assert_eq!(
        stored_by.keys().collect::<Vec<_>>(),
        venue_by.keys().collect::<Vec<_>>(),
        "the store's fills are exactly the venue's trades"
    );
    for (k, v) in &venue_by {
        let s = stored_by[k];
        assert_eq!(
            (&s.client_order_id, s.side, s.price, s.qty, s.fee, &s.fee_asset),
            (&v.client_order_id, v.side, v.price, v.qty, v.fee, &v.fee_asset),
            "fill {k:?}"
        );
    }
    // Orders: nothing open on either side; every order's status and filled quantity agree.
    assert!(store.open_orders().unwrap().is_empty(), "the store still has open orders");
    assert!(rt.block_on(venue.open_orders(None)).unwrap().is_empty());
    let orders = store.orders().unwrap();
    assert!(orders.iter().any(|o| o.status == OrderStatus::Canceled), "the canceled grid orders were reconciled");
    let mut filled_by_order: BTreeMap<&str, Decimal> = BTreeMap::new();
    for f in &stored_fills {
        *filled_by_order.entry(f.client_order_id.as_str()).or_default() += f.qty;
    }
    for o in &orders {
        let recorded = filled_by_order.get(o.client_order_id.as_str()).copied().unwrap_or_default();
        match rt.block_on(venue.query_order(&o.symbol, &o.client_order_id)).expect("query order") {
            Some(r) => {
                assert_eq!(
                    (o.status, recorded),
                    (r.status, r.filled_qty),
                    "order {}: status and recorded fills in the store vs at the venue",
                    o.client_order_id
                );
                assert_eq!(o.filled_qty, r.filled_qty, "order {}: stored filled quantity", o.client_order_id);
            }
            None => assert!(
                matches!(o.status, OrderStatus::Rejected | OrderStatus::Canceled) && recorded.is_zero(),
                "order {} is {:?} in the store but unknown at the venue",
                o.client_order_id,
                o.status
            ),
        }
    }
    // Balances: the stored snapshot is the venue's, and the fills explain it.
    let venue_balances: BTreeMap<String, Decimal> =
        rt.block_on(venue.balances()).unwrap().into_iter().map(|b| (b.asset.clone(), b.total())).collect();
    let snapshot = store.balances().unwrap().expect("a balances snapshot");
    for (asset, total) in &venue_balances {
        assert_eq!(snapshot.total(asset), *total, "stored balance of {asset}");
    }
    let mut implied: BTreeMap<String, Decimal> = [("USDT", "1000000"), ("BTC", "0"), ("ETH", "0")]
        .iter()
        .map(|(a, v)| (a.to_string(), v.parse().unwrap()))
        .collect();
    for f in &stored_fills {
        let base = f.symbol.as_str().trim_end_matches("USDT").to_string();
        let sign = if f.side == Side::Buy { Decimal::ONE } else { -Decimal::ONE };
        *implied.entry(base).or_default() += sign * f.qty;
        *implied.entry("USDT".into()).or_default() -= sign * f.qty * f.price;
        *implied.entry(f.fee_asset.clone()).or_default() -= f.fee;
    }
    // Fees are reported with 8 decimals; the account keeps what it charged.
    let dust = Decimal::new(stored_fills.len() as i64 + 1, 8);
    for (asset, want) in &implied {
        let got = venue_balances.get(asset).copied().unwrap_or_default();
        assert!((got - want).abs() <= dust, "{asset}: venue {got}, fills imply {want}");
    }
    // The account checkpoint (taken at the last start, after the SIGKILL and
    // the restarts) agrees with a full replay of every fill in recording
    // order, and brought forward over the fills after it gives the same account.
    let checkpoint = store.checkpoint().unwrap().expect("start-up wrote an account checkpoint");
    let all = store.fills_after(0).unwrap();
    assert_eq!(all.len(), stored_fills.len(), "every fill has a store sequence");
    let assets =
        |f: &keel_core::fill::Fill| (f.symbol.as_str().trim_end_matches("USDT").to_string(), "USDT".to_string());
    let mut replayed = keel_core::account::AccountCheckpoint::default();
    replayed.advance(all.iter().filter(|(seq, _)| *seq <= checkpoint.fill_seq), assets);
    assert_eq!(replayed.fill_seq, checkpoint.fill_seq);
    assert_eq!(replayed.account, checkpoint.account, "checkpoint == replay of the fills up to it");
    let mut forward = checkpoint.clone();
    forward.advance(&store.fills_after(checkpoint.fill_seq).unwrap(), assets);
    let mut full = keel_core::account::AccountCheckpoint::default();
    full.advance(&all, assets);
    assert_eq!(forward.account, full.account, "checkpoint + later fills == full replay");
    assert!(checkpoint.fill_seq > 0 && checkpoint.account.fills_applied() == checkpoint.fill_seq);

    // Positions: the cache equals what the fills imply.
    let mut from_fills: BTreeMap<Symbol, Position> = BTreeMap::new();
    for f in &stored_fills {
        let base = f.symbol.as_str().trim_end_matches("USDT").to_string();
        from_fills
            .entry(f.symbol.clone())
            .or_insert_with(|| Position::flat(f.symbol.clone()))
            .apply_fill(f, &base, "USDT");
    }
    for p in store.positions().unwrap() {
        assert_eq!(Some(p.qty), from_fills.get(&p.symbol).map(|x| x.qty), "cached position of {}", p.symbol);
    }
}
