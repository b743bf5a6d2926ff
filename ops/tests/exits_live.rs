//! Exits live (issue 19, item 2), end to end with the real `keel` binary
//! trading in `testnet` mode on a sandbox exchange of its own (started by
//! the test on loopback, so the test moves its price). A `webhook` strategy
//! opens a position when the test posts a signal; the exits configured for
//! it then rest at the venue (a stop-loss, visible in `GET
//! /api/v3/openOrders`) or fire engine-side (a trailing stop), and survive a
//! SIGKILL without ever doubling.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::{spawn_run, Keel, DEADLINE};
use keel_binance::model::OrderInfo;
use keel_binance::{Credentials, RestClient};
use keel_core::exits::{ExitLeg, ExitReason};
use keel_core::order::OrderStatus;
use keel_core::store::Store;
use keel_core::Decimal;
use keel_sandbox::{Sandbox, SandboxHandle};
use keel_store::SledStore;
use serde_json::{json, Value};

const TOKEN_ENV: &str = "KEEL_TEST_EXITS_TOKEN";
const TOKEN: &str = "exits-token-5c4b3a-0123456789abcdef0123";
const SECRET_ENV: &str = "KEEL_TEST_EXITS_WEBHOOK_SECRET";
const SECRET: &str = "exits-secret-9a8b7c-0123456789abcdef0123";
const KEY_ENV: &str = "KEEL_TEST_EXITS_KEY";
const SECRET_KEY_ENV: &str = "KEEL_TEST_EXITS_SECRET";

/// The market both the sandbox and Keel are configured with.
const MARKET: &str = r#"
[sandbox]
speed = 60
ticks_per_bar = 10
commission_asset = "quote"

[balances]
USDT = "100000"
BTC = "0"

[[symbol]]
symbol = "BTCUSDT"
base = "BTC"
quote = "USDT"
tick_size = "0.01"
step_size = "0.0001"
min_notional = "5"
start_price = "60000"
volatility = 0.0
seed = 7
touch_qty = "3"
"#;

fn d(s: &str) -> Decimal {
    s.parse().expect("a decimal")
}

/// The sandbox, the test's signed REST client on it, and a runtime that
/// keeps both running.
struct Venue {
    rt: tokio::runtime::Runtime,
    sb: SandboxHandle,
    rest: RestClient,
}

impl Venue {
    fn start(dir: &Path) -> Self {
        let rt = tokio::runtime::Runtime::new().expect("runtime");
        let config = ops::config::Config::parse(MARKET).expect("the market config parses");
        let mut sandbox = config.sandbox_config(ops::config::SimulatedClock::Standalone);
        sandbox.listen = "127.0.0.1:0".into();
        sandbox.key_dir = Some(dir.to_path_buf());
        let sb = rt.block_on(Sandbox::start(sandbox)).expect("the sandbox starts");
        // A still market: only the test moves the price.
        assert!(sb.market.set_price("BTCUSDT", d("60000")));
        let rest = RestClient::new(&sb.rest_url, Credentials::new(&sb.api_key, &sb.api_secret), 5_000, 5_000)
            .expect("rest client");
        Self { rt, sb, rest }
    }

    /// `GET /api/v3/openOrders`.
    fn open_orders(&self) -> Vec<OrderInfo> {
        self.rt.block_on(self.rest.open_orders(None)).expect("openOrders")
    }

    fn set_price(&self, price: &str) {
        assert!(self.sb.market.set_price("BTCUSDT", d(price)));
    }

    /// Keel's config: the market, testnet mode on this sandbox, the HTTP
    /// API, and a webhook strategy `tv` with `exits`.
    fn keel_config(&self, dir: &Path, exits: &str) -> std::path::PathBuf {
        let path = dir.join("keel.toml");
        let text = format!(
            r#"{MARKET}
[engine]
log_format = "json"

[venue]
mode = "testnet"

[venue.binance]
rest_url = "{rest}"
ws_stream_url = "{ws}"
ws_api_url = "{api}"
api_key_env = "{KEY_ENV}"
api_secret_env = "{SECRET_KEY_ENV}"
private_key_path_env = "KEEL_TEST_EXITS_NO_PEM"

[futures]
enabled = false

[http]
listen = "127.0.0.1:0"
token_env = "{TOKEN_ENV}"
webhook_secret_env = "{SECRET_ENV}"

[[strategy]]
id = "tv"
kind = "webhook"
symbol = "BTCUSDT"
params = {{ qty = "0.01" }}
exits = {exits}
"#,
            rest = self.sb.rest_url,
            ws = self.sb.ws_stream_url,
            api = self.sb.ws_api_url,
        );
        std::fs::write(&path, text).expect("config written");
        path
    }

    fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            (KEY_ENV, self.sb.api_key.clone()),
            (SECRET_KEY_ENV, self.sb.api_secret.clone()),
            (TOKEN_ENV, TOKEN.into()),
            (SECRET_ENV, SECRET.into()),
        ]
    }

    fn run(&self, config: &Path, data: &Path) -> (Keel, String) {
        let env = self.env();
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let mut keel = spawn_run(config, data, &[], &env);
        let base = keel.http_base();
        (keel, base)
    }

    fn http(&self) -> reqwest::Client {
        reqwest::Client::builder().no_proxy().timeout(Duration::from_secs(10)).build().expect("client")
    }

    /// `GET base+path` with the API token: the JSON body.
    fn get(&self, base: &str, path: &str) -> Value {
        self.rt.block_on(async {
            let resp = self.http().get(format!("{base}{path}")).bearer_auth(TOKEN).send().await.expect("request");
            assert!(resp.status().is_success(), "{path}: {}", resp.status());
            resp.json().await.expect("JSON")
        })
    }

    /// The `/metrics` text.
    fn metrics(&self, base: &str) -> String {
        self.rt.block_on(async {
            let resp = self.http().get(format!("{base}/metrics")).bearer_auth(TOKEN).send().await.expect("request");
            resp.text().await.expect("text")
        })
    }

    /// Posts a `buy` signal for `tv` through the TradingView webhook.
    fn buy(&self, base: &str) {
        let body = json!({"secret": SECRET, "strategy_id": "tv", "symbol": "BTCUSDT", "action": "buy"});
        let status = self.rt.block_on(async {
            self.http()
                .post(format!("{base}/api/v1/webhook/tradingview"))
                .json(&body)
                .send()
                .await
                .expect("request")
                .status()
        });
        assert_eq!(status.as_u16(), 202, "the signal is accepted");
    }
}

/// Polls `f` until it answers (bounded by the common deadline).
fn until<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + DEADLINE;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "no {what} before the deadline");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `tv`'s exit state for BTCUSDT in `/status`, once it is there and `done` holds.
fn exit_state(v: &Venue, base: &str, what: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + DEADLINE;
    loop {
        let status = v.get(base, "/api/v1/status");
        let state = status["exits"]["tv"]["BTCUSDT"].clone();
        if !state.is_null() && done(&state) {
            return state;
        }
        assert!(Instant::now() < deadline, "no {what} before the deadline; the exit state: {state:#}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Buys through the webhook until the order fills: a signal refused by
/// the risk guard (no quote yet right after the start) is sent again.
fn buy_until_filled(v: &Venue, base: &str, keel: &mut Keel) {
    keel.wait_for("market data connected", 1);
    for attempt in 0..300 {
        if attempt > 0 {
            // The first quote is on its way (one every 100 ms).
            std::thread::sleep(Duration::from_millis(100));
        }
        let refused = keel.count("intent refused by risk guard");
        v.buy(base);
        keel.wait_until("a fill or a refusal", |k| {
            k.count("fill") >= 1 || k.count("intent refused by risk guard") > refused
        });
        if keel.count("fill") >= 1 {
            return;
        }
    }
    let reasons: Vec<&Value> =
        keel.seen.iter().filter(|l| l["message"] == "intent refused by risk guard").map(|l| &l["reason"]).collect();
    panic!("the buy never passed the risk guard: {reasons:?}");
}

fn stop_orders(v: &Venue) -> Vec<OrderInfo> {
    v.open_orders().into_iter().filter(|o| o.order_type.as_deref() == Some("STOP_LOSS")).collect()
}

#[test]
fn a_stop_loss_rests_at_the_venue_and_after_a_sigkill_there_is_still_one() {
    let dir = tempfile::tempdir().expect("temp dir");
    let v = Venue::start(dir.path());
    let config = v.keel_config(dir.path(), r#"{ stop_loss = "3%" }"#);
    let data = dir.path().join("data");

    // keel check-config shows the exits.
    let out = common::keel(&["check-config", "--config", config.to_str().expect("utf-8 path")]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("  tv exits: stop_loss 3%; stop and target at the venue"), "{stdout}");

    let (mut first, base) = v.run(&config, &data);
    buy_until_filled(&v, &base, &mut first);

    // The stop rests at the venue: one STOP_LOSS sell for the position, 3% below the entry.
    let state = exit_state(&v, &base, "a resting stop in /status", |s| !s["leg"]["client_order_id"].is_null());
    let entry = d(state["entry_price"].as_str().expect("entry price"));
    let resting = until("the stop in openOrders", || Some(stop_orders(&v)).filter(|o| !o.is_empty()));
    assert_eq!(resting.len(), 1, "one stop: {resting:#?}");
    let stop = &resting[0];
    assert_eq!(stop.side.as_deref(), Some("SELL"));
    assert_eq!(stop.orig_qty, Some(d("0.01")), "the whole position");
    let want = entry * d("0.97");
    let got = stop.stop_price.expect("a stop price");
    assert!((got - want).abs() <= d("0.01"), "stop {got} is 3% below the entry {entry}");
    assert_eq!(state["leg"]["client_order_id"].as_str(), Some(stop.client_order_id.as_str()));
    assert_eq!(v.open_orders().len(), 1, "nothing else rests");

    // SIGKILL, then restart: the stop is re-adopted, not placed again.
    first.child.kill().expect("SIGKILL");
    let (_, _) = first.finish();
    let (mut second, base) = v.run(&config, &data);
    second.wait_for("store reconciled with the venue", 1);
    // A price move the exit logic sees after the restart (the best price follows it).
    v.set_price("60600");
    let after = exit_state(&v, &base, "the best price after the restart", |s| {
        s["best_price"].as_str().map(d).is_some_and(|b| b >= d("60500"))
    });
    assert_eq!(after["leg"]["client_order_id"].as_str(), Some(stop.client_order_id.as_str()), "the same stop");
    let open = v.open_orders();
    assert_eq!(open.len(), 1, "exactly one exit set for the position after the restart: {open:#?}");
    assert_eq!(open[0].client_order_id, stop.client_order_id);
    assert!(
        second.seen.iter().all(|l| l["message"] != "order created"),
        "the restart sent no order: {:#?}",
        second.seen.iter().filter(|l| l["message"] == "order created").collect::<Vec<_>>()
    );

    // keel state lists the exit set.
    second.sigterm();
    let (status, stop_lines) = second.finish();
    common::assert_stopped("the run", status, &stop_lines);
    let state = common::state_json(config.to_str().expect("utf-8"), data.to_str().expect("utf-8"));
    let rows = state["exits"].as_array().expect("exits rows");
    assert_eq!(rows.len(), 1, "{state:#}");
    assert_eq!((rows[0]["strategy"].as_str(), rows[0]["leg"]["leg"].as_str()), (Some("tv"), Some("stop")));
    assert_eq!(state["exits_by_reason"]["stop_loss"], 0, "the stop has not fired");
}

#[test]
fn a_trailing_stop_fires_engine_side() {
    let dir = tempfile::tempdir().expect("temp dir");
    let v = Venue::start(dir.path());
    let config = v.keel_config(dir.path(), r#"{ trailing_stop = { activate = "1%", distance = "1%" } }"#);
    let data = dir.path().join("data");
    let (mut keel, base) = v.run(&config, &data);
    buy_until_filled(&v, &base, &mut keel);
    let state = exit_state(&v, &base, "the position's exit state", |_| true);
    let entry = d(state["entry_price"].as_str().expect("entry"));
    assert!(v.open_orders().is_empty(), "a trailing stop stays engine-side");

    // Up 2%: the trailing stop arms and follows the best price.
    let high = (entry * d("1.02")).round_dp(2);
    v.set_price(&high.to_string());
    exit_state(&v, &base, "the trailing stop armed", |s| s["trailing_armed"] == true);
    // Back 1.5% from the best: it fires, closing with a market order.
    v.set_price(&(high * d("0.985")).round_dp(2).to_string());
    keel.wait_until("the exit", |k| k.seen.iter().any(|l| l["message"] == "exit" && l["reason"] == "trailing_stop"));
    keel.wait_for("fill", 2);
    until("keel_exits_total{reason=\"trailing_stop\"} 1", || {
        v.metrics(&base).contains("keel_exits_total{reason=\"trailing_stop\"} 1").then_some(())
    });
    until("the exit state gone (flat)", || {
        v.get(&base, "/api/v1/status")["exits"]["tv"]["BTCUSDT"].is_null().then_some(())
    });
    keel.sigterm();
    let (status, stop_lines) = keel.finish();
    common::assert_stopped("the run", status, &stop_lines);

    // The store has the close: a filled market sell marked close(trailing_stop).
    let store = SledStore::open(&data).expect("the store opens");
    let closes: Vec<_> = store
        .orders()
        .expect("orders")
        .into_iter()
        .filter(|o| o.exit == Some(ExitLeg::Close(ExitReason::TrailingStop)))
        .collect();
    assert_eq!(closes.len(), 1, "{closes:#?}");
    assert_eq!((closes[0].status, closes[0].order_type.label()), (OrderStatus::Filled, "market"));
    assert_eq!(closes[0].filled_qty, d("0.01"));
    drop(store);
    let state = common::state_json(config.to_str().expect("utf-8"), data.to_str().expect("utf-8"));
    assert_eq!(state["exits_by_reason"]["trailing_stop"], 1, "{state:#}");
}

#[test]
fn an_oco_rests_at_the_venue_and_its_take_profit_closes_the_position() {
    let dir = tempfile::tempdir().expect("temp dir");
    let v = Venue::start(dir.path());
    let config = v.keel_config(dir.path(), r#"{ stop_loss = "3%", take_profit = "6%" }"#);
    let data = dir.path().join("data");
    let (mut keel, base) = v.run(&config, &data);
    buy_until_filled(&v, &base, &mut keel);

    // Both legs rest at the venue as one order list: a STOP_LOSS 3% below the
    // entry and a LIMIT_MAKER 6% above it, each for the whole position.
    let state = exit_state(&v, &base, "a resting OCO in /status", |s| {
        s["leg"]["leg"] == "oco" && !s["leg"]["client_order_id"].is_null()
    });
    let entry = d(state["entry_price"].as_str().expect("entry price"));
    let legs = until("both legs in openOrders", || Some(v.open_orders()).filter(|o| o.len() == 2));
    let list = legs[0].order_list_id;
    assert!(list >= 0 && legs[1].order_list_id == list, "one order list: {legs:#?}");
    let leg = |kind: &str| legs.iter().find(|o| o.order_type.as_deref() == Some(kind)).cloned();
    let (stop, target) = (leg("STOP_LOSS").expect("a stop leg"), leg("LIMIT_MAKER").expect("a take-profit leg"));
    for o in [&stop, &target] {
        assert_eq!((o.side.as_deref(), o.orig_qty), (Some("SELL"), Some(d("0.01"))), "{o:#?}");
    }
    let near = |got: Decimal, want: Decimal| (got - want).abs() <= d("0.01");
    assert!(near(stop.stop_price.expect("stop price"), entry * d("0.97")), "{stop:#?} entry {entry}");
    assert!(near(target.price.expect("limit price"), entry * d("1.06")), "{target:#?} entry {entry}");

    // The market trades through the target: the take-profit leg fills, the
    // stop leg expires with it, and the position is closed.
    v.set_price(&(entry * d("1.07")).round_dp(2).to_string());
    keel.wait_until("the take-profit exit", |k| {
        k.seen.iter().any(|l| l["message"] == "exit" && l["reason"] == "take_profit")
    });
    until("no order left at the venue", || v.open_orders().is_empty().then_some(()));
    until("keel_exits_total{reason=\"take_profit\"} 1", || {
        v.metrics(&base).contains("keel_exits_total{reason=\"take_profit\"} 1").then_some(())
    });
    keel.sigterm();
    let (status, stop_lines) = keel.finish();
    common::assert_stopped("the run", status, &stop_lines);
}
