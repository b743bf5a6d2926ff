//! The engine on Coinbase, end to end with the real `keel` binary:
//! `config.coinbase.toml` trades on the embedded sandbox's Coinbase protocol
//! through the Coinbase adapter (fills and positions in the HTTP API and the
//! store); `keel check-config` takes it and refuses an unconfirmed mainnet
//! and a testnet; and a SIGKILL mid-trading against a standalone `keel
//! sandbox --protocol coinbase`, several times, loses no fill and doubles
//! no order.

mod common;

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::coinbase::CoinbaseSandbox;
use common::{assert_stopped, created_ids, keel, spawn_run};
use keel_coinbase::model::ListOrdersResponse;
use keel_coinbase::rest::Kind;
use keel_core::order::Side;
use keel_core::store::Store;
use keel_core::venue::Venue;
use keel_core::{Decimal, Symbol};
use keel_store::SledStore;
use serde_json::Value;

/// The API token the runs with the HTTP API get.
const TOKEN: &str = "coinbase-engine-test-token-0123456789abcdef";

/// The repository's `config.coinbase.toml` with the HTTP API on a free port.
fn coinbase_config_copy(dir: &Path) -> PathBuf {
    let text =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../config.coinbase.toml")).expect("config");
    assert!(text.contains("\nexchange = \"coinbase\"") && text.contains("\nmode = \"sandbox\""), "offline by default");
    let text = text.replace("listen = \"127.0.0.1:9185\"", "listen = \"127.0.0.1:0\"");
    assert!(text.contains("listen = \"127.0.0.1:0\""), "the listen line was found");
    let path = dir.join("config.coinbase.toml");
    std::fs::write(&path, text).unwrap();
    path
}

fn fills_of<'a>(lines: &'a [Value], symbol: &str) -> Vec<&'a Value> {
    lines.iter().filter(|v| v["message"] == "fill" && v["symbol"] == symbol).collect()
}

async fn api(base: &str, path: &str) -> Value {
    let client = reqwest::Client::builder().no_proxy().timeout(Duration::from_secs(10)).build().unwrap();
    let r = client.get(format!("{base}{path}")).bearer_auth(TOKEN).send().await.expect("the API answers");
    assert!(r.status().is_success(), "{path}: {}", r.status());
    r.json().await.expect("JSON")
}

#[test]
fn config_coinbase_toml_trades_btc_usd_on_the_embedded_coinbase_sandbox() {
    let dir = tempfile::tempdir().unwrap();
    let config = coinbase_config_copy(dir.path());
    let data = dir.path().join("data");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let env = [("KEEL_API_TOKEN", TOKEN)];

    let mut logged_fills = 0;
    for run in 0..2 {
        let mut keel = spawn_run(&config, &data, &["--exit-after", "90s"], &env);
        keel.wait_for("embedded sandbox exchange started (Coinbase Advanced Trade protocol)", 1);
        keel.wait_for("connected to Coinbase", 1);
        keel.wait_for("store reconciled with the venue", 1);
        let base = keel.http_base();
        // A sell too: it needs the bought base asset in the venue's free
        // balance, which the Coinbase user channel does not report.
        keel.wait_until("a BTC-USD and an ETH-USD fill, and a sell", |k| {
            !fills_of(&k.seen, "BTC-USD").is_empty()
                && !fills_of(&k.seen, "ETH-USD").is_empty()
                && k.seen.iter().any(|v| v["message"] == "fill" && v["side"] == "Sell")
        });
        let (status, positions, trades) = rt.block_on(async {
            (
                api(&base, "/api/v1/status").await,
                api(&base, "/api/v1/positions").await,
                api(&base, "/api/v1/trades?limit=1000").await,
            )
        });
        assert_eq!(
            (&status["exchange"], &status["venue"], &status["venue_mode"]),
            (&Value::from("coinbase"), &Value::from("coinbase"), &Value::from("sandbox")),
            "{status}"
        );
        let positions = positions.as_array().expect("positions");
        assert!(positions.iter().any(|p| p["symbol"] == "BTC-USD"), "a BTC-USD position: {positions:?}");
        let trades = trades.as_array().expect("trades");
        let btc: Vec<&Value> = trades.iter().filter(|t| t["symbol"] == "BTC-USD").collect();
        assert!(!btc.is_empty(), "BTC-USD fills in the API: {trades:?}");
        // Coinbase trade ids are UUIDs; fees are charged in the quote currency.
        assert!(
            btc.iter().all(|t| t["trade_id"].as_str().is_some_and(|id| id.len() == 36 && id.matches('-').count() == 4)),
            "{btc:?}"
        );
        assert!(btc.iter().all(|t| t["fee_asset"] == "USD"), "{btc:?}");
        keel.sigterm();
        let (exit, lines) = keel.finish();
        assert_stopped(&format!("run {run}"), exit, &lines);
        let connected = lines.iter().find(|v| v["message"] == "connected to Coinbase").unwrap();
        assert_eq!(
            (&connected["venue"], &connected["can_trade"], &connected["key_type"]),
            (&"sandbox".into(), &true.into(), &"ec".into())
        );
        assert!(connected["rest"].as_str().unwrap().starts_with("http://127.0.0.1:"), "{connected}");
        assert_eq!(connected["products"], 2, "the configured products: {connected}");
        let started = lines
            .iter()
            .find(|v| v["message"] == "embedded sandbox exchange started (Coinbase Advanced Trade protocol)")
            .unwrap();
        assert_eq!(started["continued_balances"], run == 1, "the second run continues the account");
        let engine = lines.iter().find(|v| v["message"] == "engine started").unwrap();
        assert_eq!(engine["venue"], "coinbase");
        logged_fills += lines.iter().filter(|v| v["message"] == "fill").count();
        // The key never reaches the log.
        let pem = std::fs::read_to_string(data.join("sandbox/keel-sandbox-coinbase-ec.pem"))
            .expect("the key kept in the state dir");
        let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
        let all = lines.iter().map(Value::to_string).collect::<String>();
        assert!(!all.contains(&body[..40]), "the private key is not logged");
    }

    // The store has every fill once, BTC-USD among them.
    let store = SledStore::open(&data).expect("store opens");
    let fills = store.fills().unwrap();
    let keys: BTreeSet<_> = fills.iter().map(|f| (f.symbol.to_string(), f.trade_id.clone())).collect();
    assert_eq!(keys.len(), fills.len(), "no fill twice");
    assert_eq!(fills.len(), logged_fills, "every logged fill is stored");
    assert!(fills.iter().any(|f| f.symbol.as_str() == "BTC-USD"));
    assert!(store.positions().unwrap().iter().any(|p| p.symbol.as_str() == "BTC-USD"), "a BTC-USD position is stored");
}

#[test]
fn check_config_takes_config_coinbase_toml_and_refuses_mainnet_unconfirmed_and_testnet() {
    let dir = tempfile::tempdir().unwrap();
    let config = coinbase_config_copy(dir.path());
    let out = keel(&["check-config", "--config", config.to_str().unwrap()]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout} {}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("ok (2 symbols, 2 strategies, venue sandbox on coinbase)"), "{stdout}");

    let text = std::fs::read_to_string(&config).unwrap();
    // The mode, and what is added at the end.
    let cases = [
        ("mainnet", "", "venue.confirm_mainnet"),
        ("testnet", "", "venue.mode"),
        ("sandbox", "\n[venue.coinbase]\nrest_url = \"http://127.0.0.1:1\"\n", "venue.coinbase.ws_market_url"),
    ];
    for (mode, tail, key) in cases {
        let path = dir.path().join("bad.toml");
        let bad = text.replacen("mode = \"sandbox\"", &format!("mode = \"{mode}\""), 1);
        std::fs::write(&path, format!("{bad}{tail}")).unwrap();
        for cmd in [
            &["check-config", "--config"][..],
            &["run", "--data-dir", dir.path().join("d").to_str().unwrap(), "--config"][..],
        ] {
            let mut args = cmd.to_vec();
            args.push(path.to_str().unwrap());
            let out = keel(&args);
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(!out.status.success(), "{mode}: {cmd:?} refused");
            assert!(stderr.contains(key), "{mode}: {cmd:?} names {key}: {stderr}");
        }
    }
    let path = dir.path().join("bad.toml");
    std::fs::write(&path, text.replacen("exchange = \"coinbase\"", "exchange = \"kraken\"", 1)).unwrap();
    let out = keel(&["check-config", "--config", path.to_str().unwrap()]);
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("venue.exchange"));
    assert!(!dir.path().join("d").exists(), "a refused config opens no store");
}

/// The standalone sandbox and the engine share this: products, balances, pace.
const BASE: &str = r#"
[engine]
log_format = "json"
log_level = "info"

[venue]
exchange = "coinbase"
mode = "sandbox"
ticks_per_bar = 4

[sandbox]
speed = 1200

[balances]
USD = "1000000"
BTC = "0"
ETH = "0"

[[symbol]]
symbol = "BTC-USD"
base = "BTC"
quote = "USD"
tick_size = "0.01"
step_size = "0.0001"
max_qty = "9000"
min_notional = "5"
start_price = "50000"
volatility = 1.5
seed = 11
touch_qty = "3"

[[symbol]]
symbol = "ETH-USD"
base = "ETH"
quote = "USD"
tick_size = "0.01"
step_size = "0.001"
max_qty = "90000"
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

/// A grid keeps limit orders resting on BTC-USD (they fill while Keel is
/// down); a fast moving-average cross sends market orders on ETH-USD.
// The grid spans ±20 % of the start price: at this speed and volatility the
// price left a ±8 % grid during the test about once in thirty runs, and with
// no level above it nothing rested to fill while Keel was down.
const STRATEGIES: &str = r#"
[[strategy]]
id = "btc_grid"
kind = "grid"
symbol = "BTC-USD"
params = { lower = "40000", upper = "60000", levels = 41, qty = "0.01" }

[[strategy]]
id = "eth_fast"
kind = "sma_cross"
symbol = "ETH-USD"
params = { fast = 2, slow = 5, qty = "0.5" }
"#;

fn symbols() -> [Symbol; 2] {
    [Symbol::new("BTC-USD"), Symbol::new("ETH-USD")]
}

/// Every order the venue has for the account, page by page.
async fn venue_orders(venue: &keel_coinbase::CoinbaseVenue) -> Vec<keel_coinbase::model::Order> {
    let mut out = Vec::new();
    let mut cursor = String::new();
    loop {
        let mut q = vec![("limit", "1000".to_string())];
        if !cursor.is_empty() {
            q.push(("cursor", cursor.clone()));
        }
        let page: ListOrdersResponse =
            venue.rest().get(Kind::Read, "/orders/historical/batch", &q).await.expect("orders");
        out.extend(page.orders);
        if !page.has_next || page.cursor.is_empty() {
            return out;
        }
        cursor = page.cursor;
    }
}

#[test]
fn sigkill_mid_trading_against_a_standalone_coinbase_sandbox_loses_no_fill_and_doubles_no_order() {
    let dir = tempfile::tempdir().unwrap();
    let sandbox_config = dir.path().join("sandbox.toml");
    std::fs::write(&sandbox_config, BASE).unwrap();
    let sb = CoinbaseSandbox::start(&sandbox_config);
    let trading = dir.path().join("keel.toml");
    std::fs::write(&trading, format!("{BASE}{STRATEGIES}\n{}", sb.section())).unwrap();
    let data = dir.path().join("data");
    let key_env = sb.env();
    let env: Vec<(&str, &str)> = key_env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let venue = rt.block_on(sb.venue());
    let mut created = Vec::new();

    // 1. Trade, and die by SIGKILL with no shutdown path, three times.
    for round in 0..3 {
        let mut k = spawn_run(&trading, &data, &[], &env);
        k.wait_for("connected to Coinbase", 1);
        k.wait_for("store reconciled with the venue", 1);
        k.wait_for("fill", 3);
        if round == 2 {
            // The last kill leaves orders resting at the venue on both sides
            // of the price, so the market fills one while Keel is down
            // whichever way it goes: buys below from the start, and a sell
            // above once a buy filled. (Killed right after its buys filled,
            // the grid once left only buys 8 % below a rising price.)
            let deadline = Instant::now() + Duration::from_secs(90);
            let btc = Symbol::new("BTC-USD");
            while !rt.block_on(venue.open_orders(Some(&btc))).expect("open orders").iter().any(|o| o.side == Side::Sell)
            {
                assert!(Instant::now() < deadline, "the grid rested a sell within 90 s");
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        k.child.kill().expect("SIGKILL");
        let (_, lines) = k.finish();
        let connected = lines.iter().find(|v| v["message"] == "connected to Coinbase").unwrap();
        assert_eq!(connected["rest"], sb.rest_url.as_str(), "the external sandbox, not an embedded one");
        assert!(!lines.iter().any(|v| v["message"].as_str().is_some_and(|m| m.starts_with("embedded sandbox"))));
        let store = SledStore::open(&data).expect("the store opens after a crash");
        let logged = lines.iter().filter(|v| v["message"] == "fill").count();
        assert!(store.fill_count().unwrap() >= logged, "round {round}: every acknowledged fill is durable");
        created.extend(created_ids(&lines));
    }
    let open_at_kill = rt.block_on(venue.open_orders(None)).expect("open orders");
    assert!(!open_at_kill.is_empty(), "keel was killed while orders were open at the venue");

    // Fills keep coming while Keel is down: wait (bounded) for a resting
    // order to fill at the venue without the store knowing.
    let stored_keys = |data: &Path| -> BTreeSet<(String, String)> {
        let store = SledStore::open(data).expect("store opens");
        store.fills().unwrap().iter().map(|f| (f.symbol.to_string(), f.trade_id.to_string())).collect()
    };
    let known = stored_keys(&data);
    let deadline = Instant::now() + Duration::from_secs(60);
    let missed = loop {
        let mut missed = Vec::new();
        for s in symbols() {
            for f in rt.block_on(venue.my_trades(&s, None)).expect("fills") {
                if !known.contains(&(f.symbol.to_string(), f.trade_id.to_string())) {
                    missed.push(f.trade_id.to_string());
                }
            }
        }
        if !missed.is_empty() {
            break missed;
        }
        if Instant::now() >= deadline {
            let open: Vec<String> = rt
                .block_on(venue_orders(&venue))
                .iter()
                .map(|o| format!("{} {} {} {:?}", o.client_order_id, o.side, o.status, o.order_configuration))
                .collect();
            let bba = rt.block_on(venue.best_bid_ask(&Symbol::new("BTC-USD"))).unwrap();
            let n: usize = symbols().iter().map(|s| rt.block_on(venue.my_trades(s, None)).unwrap().len()).sum();
            panic!(
                "no resting order filled while keel was down; {n} venue fills, {} stored; open {open:#?}; book {bba:?}",
                known.len()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    };

    // 2. Restart: the fills made while down are recorded by the start-up
    //    reconciliation, before any order; then trading continues.
    let mut second = spawn_run(&trading, &data, &["--exit-after", "90s"], &env);
    second.wait_for("store reconciled with the venue", 1);
    let at = second.seen.len();
    assert!(second.seen[..at].iter().all(|v| v["message"] != "order created"), "no order before reconciliation");
    let recovered: Vec<&str> = second.seen[..at]
        .iter()
        .filter(|v| v["message"] == "reconciliation")
        .filter_map(|v| v["difference"].as_str())
        .filter(|d| d.contains("was missing from the store: recorded"))
        .collect();
    for id in &missed {
        let about: Vec<String> = second.seen.iter().map(Value::to_string).filter(|l| l.contains(id.as_str())).collect();
        assert!(
            recovered.iter().any(|d| d.contains(id.as_str())),
            "fill {id} made while down was recorded: {about:#?}"
        );
    }
    second.wait_for("fill", 3);
    second.sigterm();
    let (status, lines) = second.finish();
    assert_stopped("the run after the SIGKILL", status, &lines);
    created.extend(created_ids(&lines));

    // 3. Freeze the account: cancel what rests (Keel is down), wait until
    //    the venue has ended every order, then a run without strategies
    //    brings the store into agreement.
    rt.block_on(async {
        for o in venue.open_orders(None).await.expect("open orders") {
            venue.cancel_order(&o.symbol, &o.client_order_id).await.expect("cancel");
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        while !venue.open_orders(None).await.expect("open orders").is_empty() {
            assert!(Instant::now() < deadline, "cancels completed");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    let quiet = dir.path().join("quiet.toml");
    std::fs::write(&quiet, format!("{BASE}\n{}", sb.section())).unwrap();
    let mut third = spawn_run(&quiet, &data, &["--exit-after", "90s"], &env);
    third.wait_for("store reconciled with the venue", 1);
    third.wait_for("keel running; Ctrl-C or SIGTERM stops it", 1);
    third.sigterm();
    let (status, lines) = third.finish();
    assert_stopped("the run without strategies", status, &lines);
    created.extend(created_ids(&lines));

    // 4. No client order id was used twice, by Keel or at the venue, and
    //    the venue has no order Keel did not create.
    let unique: HashSet<&String> = created.iter().collect();
    assert_eq!(unique.len(), created.len(), "a client order id was reused");
    let at_venue: Vec<String> = rt.block_on(venue_orders(&venue)).into_iter().map(|o| o.client_order_id).collect();
    let venue_unique: BTreeSet<&String> = at_venue.iter().collect();
    assert_eq!(venue_unique.len(), at_venue.len(), "the venue received a client order id twice");
    for id in &at_venue {
        assert!(unique.contains(id), "the venue has order {id} that Keel never created");
    }

    // 5. The store has exactly the venue's fills, once each, field by field.
    let store = SledStore::open(&data).expect("store opens");
    let stored = store.fills().unwrap();
    let mut at_venue_fills = Vec::new();
    for s in symbols() {
        at_venue_fills.extend(rt.block_on(venue.my_trades(&s, None)).expect("fills"));
    }
    let key = |f: &keel_core::fill::Fill| (f.symbol.to_string(), f.trade_id.to_string());
    let stored_by: BTreeMap<_, _> = stored.iter().map(|f| (key(f), f)).collect();
    let venue_by: BTreeMap<_, _> = at_venue_fills.iter().map(|f| (key(f), f)).collect();
    assert_eq!(stored_by.len(), stored.len(), "no fill stored twice");
    assert_eq!(
        stored_by.keys().collect::<Vec<_>>(),
        venue_by.keys().collect::<Vec<_>>(),
        "no fill lost, none invented"
    );
    for (k, v) in &venue_by {
        let s = stored_by[k];
        assert_eq!(
            (&s.client_order_id, s.side, s.price, s.qty, s.fee, &s.fee_asset),
            (&v.client_order_id, v.side, v.price, v.qty, v.fee, &v.fee_asset),
            "fill {k:?}"
        );
    }
    assert!(stored.len() > 6, "trading went on across the restarts: {} fills", stored.len());
    // Nothing open on either side; the stored balances are the venue's.
    assert!(store.open_orders().unwrap().is_empty(), "the store still has open orders");
    let balances: BTreeMap<String, Decimal> =
        rt.block_on(venue.balances()).unwrap().into_iter().map(|b| (b.asset.clone(), b.total())).collect();
    let snapshot = store.balances().unwrap().expect("a balances snapshot");
    for (asset, total) in &balances {
        assert_eq!(snapshot.total(asset), *total, "stored balance of {asset}");
    }
}

#[test]
fn a_key_that_cannot_trade_is_reported_at_start_by_key_permissions() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("view-only.toml");
    let btc = BASE.split("[[symbol]]").nth(1).expect("the BTC-USD block");
    let text = format!(
        "[venue]\nexchange = \"coinbase\"\nmode = \"sandbox\"\n\n[[sandbox.accounts]]\napi_key = \"view-only\"\napi_secret = \"view-only-secret\"\ncan_trade = false\nbalances = {{ USD = \"1000\" }}\n\n[[symbol]]{btc}"
    );
    std::fs::write(&config, text).unwrap();
    let mut k = spawn_run(&config, &dir.path().join("data"), &["--exit-after", "60s"], &[]);
    k.wait_for("keel running; Ctrl-C or SIGTERM stops it", 1);
    k.sigterm();
    let (status, lines) = k.finish();
    common::assert_stopped("a view-only key still starts (nothing is sent)", status, &lines);
    let connected = lines.iter().find(|v| v["message"] == "connected to Coinbase").expect("connected");
    assert_eq!((&connected["can_view"], &connected["can_trade"]), (&true.into(), &false.into()), "{connected}");
    let error = lines.iter().find(|v| v["level"] == "ERROR").expect("an error line");
    assert!(error["message"].as_str().unwrap().contains("may not trade (can_trade = false)"), "{error}");
}

#[test]
fn an_external_sandbox_without_the_key_variables_is_refused_naming_them_and_never_echoing_a_key() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("external.toml");
    let external = "[venue.coinbase]\nrest_url = \"http://127.0.0.1:9\"\nws_market_url = \"ws://127.0.0.1:9/m\"\nws_user_url = \"ws://127.0.0.1:9/u\"\napi_key_name_env = \"KEEL_TEST_CB_NAME\"\nprivate_key_env = \"KEEL_TEST_CB_PEM\"\nprivate_key_path_env = \"KEEL_TEST_CB_PATH\"\n";
    std::fs::write(&config, format!("{BASE}\n{external}")).unwrap();
    let data = dir.path().join("data");
    let run = |env: &[(&str, &str)]| {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_keel"));
        cmd.args(["run", "--config", config.to_str().unwrap(), "--data-dir", data.to_str().unwrap()]);
        cmd.env_remove("RUST_LOG").envs(env.iter().copied());
        let out = cmd.output().expect("keel runs");
        assert!(!out.status.success());
        String::from_utf8_lossy(&out.stderr).to_string()
    };
    let check = keel(&["check-config", "--config", config.to_str().unwrap()]);
    let said = String::from_utf8_lossy(&check.stderr);
    assert!(!check.status.success(), "{said}");
    assert!(said.contains("KEEL_TEST_CB_NAME (named by venue.coinbase.api_key_name_env) is not set"), "{said}");
    assert!(said.contains("KEEL_TEST_CB_PEM (named by venue.coinbase.private_key_env) is not set"), "{said}");
    assert!(run(&[]).contains("venue.coinbase.api_key_name_env"), "the key name is asked for");
    assert!(run(&[("KEEL_TEST_CB_NAME", "organizations/o/apiKeys/k")]).contains("venue.coinbase.private_key_env"));
    // Not a key: refused without echoing it.
    let not_a_key =
        "-----BEGIN EC PRIVATE KEY-----\nbm90LWEta2V5LXRoaXMtaXMtYS10ZXN0LXZhbHVl\n-----END EC PRIVATE KEY-----\n";
    let said = run(&[("KEEL_TEST_CB_NAME", "organizations/o/apiKeys/k"), ("KEEL_TEST_CB_PEM", not_a_key)]);
    assert!(said.contains("KEEL_TEST_CB_PEM") && said.contains("not usable"), "{said}");
    assert!(!said.contains("bm90LWEta2V5"), "the key is not echoed: {said}");
}
