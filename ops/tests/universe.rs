//! A universe of the venue's top symbols (issue 16): real actors, the real
//! Binance adapter and the embedded sandbox on loopback with 30 synthetic
//! pairs. Instances start for the top 5; steering one pair's volume makes a
//! refresh add it and drop another; the dropped symbol's instance may only
//! exit (a buy is refused), exits, and retires once flat; no symbol outside
//! the universe gets an instance or a buy. The default `config.universe.toml`
//! trades through the real binary.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actors::{start_engine, EngineEvent};
use keel_core::clock::{SharedClock, SystemClock};
use keel_core::order::Side;
use keel_core::store::SharedStore;
use keel_core::strategy::{Signal, SignalAction};
use keel_core::{Decimal, Symbol};
use keel_store::SledStore;
use ops::config::Config;
use tokio::sync::broadcast;

const CONFIG: &str = r#"
[venue]
mode = "sandbox"

[sandbox]
synthetic_symbols = 30

[balances]
USDT = "100000"

[universe]
quote = "USDT"
top_n = 5
refresh = "10s"

[[strategy]]
id = "hook"
kind = "webhook"
symbols = "universe"
params = { qty = "1" }

[risk]
max_order_notional = "100000"
max_position_notional = "100000"
max_gross_exposure = "100000"

[http]
enabled = false
"#;

/// Every engine event seen, and a way to wait for the next ones.
struct Seen {
    rx: broadcast::Receiver<EngineEvent>,
    all: Vec<EngineEvent>,
}

impl Seen {
    /// Reads events until `done` holds for one of them (at most 25 s: a
    /// refresh comes every 10 s); returns it.
    async fn until(&mut self, what: &str, done: impl Fn(&EngineEvent) -> bool) -> EngineEvent {
        let deadline = Instant::now() + Duration::from_secs(25);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match tokio::time::timeout(left, self.rx.recv()).await {
                Ok(Ok(e)) => {
                    self.all.push(e.clone());
                    if done(&e) {
                        return e;
                    }
                }
                Ok(Err(broadcast::error::RecvError::Lagged(_))) => {}
                Ok(Err(e)) => panic!("events closed waiting for {what}: {e}"),
                Err(_) => panic!("no {what} within 25 s; seen {:#?}", self.all),
            }
        }
    }
}

fn instance(symbol: &Symbol) -> String {
    format!("hook@{symbol}")
}

/// An engine about to start on the embedded sandbox of `text`: its store in
/// a temp dir, its venue built, its setup ready to adjust and start.
struct Embedded {
    _dir: tempfile::TempDir,
    config: Config,
    store: SharedStore,
    built: ops::venues::BuiltVenue,
    setup: actors::EngineSetup,
}

async fn embedded(text: &str) -> Embedded {
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::parse(text).expect("config");
    config.engine.data_dir = dir.path().join("data");
    let store: SharedStore = Arc::new(SledStore::open(&config.engine.data_dir).unwrap());
    let built = ops::venues::build(&config, Some(store.as_ref())).await.expect("venue");
    let clock: SharedClock = Arc::new(SystemClock);
    let setup = ops::cmd_run::engine_setup(
        &config,
        store.clone(),
        built.venue.clone(),
        clock,
        &strategies::StrategyRegistry::builtin(),
    )
    .expect("setup");
    Embedded { _dir: dir, config, store, built, setup }
}

#[actix_rt::test]
async fn a_refresh_adds_the_rising_symbol_and_retires_the_dropped_one_once_flat() {
    let Embedded { _dir, config: _, store, built, setup } = embedded(CONFIG).await;
    let handle = start_engine(setup).await.expect("engine starts");
    let mut seen = Seen { rx: handle.subscribe(), all: Vec::new() };
    let market = built.sandbox.as_ref().expect("embedded sandbox").handle().market.clone();

    // The top 5 have instances, and only they.
    let first = handle.universe().await.unwrap().expect("a universe").members;
    assert_eq!(first.len(), 5, "{first:?}");
    let ids: BTreeSet<String> = handle.strategy_ids().iter().map(|s| s.to_string()).collect();
    assert_eq!(ids, first.iter().map(instance).collect::<BTreeSet<_>>(), "one instance per member");
    let candidates = built.venue.universe_candidates().await.unwrap();
    assert!(candidates.len() >= 32, "30 synthetic pairs and the default two: {}", candidates.len());
    let volume: BTreeMap<Symbol, Decimal> = candidates.iter().map(|c| (c.symbol.clone(), c.quote_volume)).collect();
    let lowest_member = first.iter().map(|m| volume[m]).min().unwrap();
    let above =
        candidates.iter().filter(|c| !first.contains(&c.symbol) && c.quote_volume > lowest_member * Decimal::TWO);
    assert_eq!(above.count(), 0, "no outsider trades twice the volume of a member");

    // Each instance buys about 150 USDT of its symbol.
    let instruments = built.venue.instruments().await.unwrap();
    let qty_for = |symbol: &Symbol, value: Decimal| {
        let i = instruments.iter().find(|i| &i.symbol == symbol).unwrap();
        let price = handle.prices().get(symbol.as_str()).expect("a price").price;
        keel_core::instrument::floor_to_step(value / price, i.step_size).max(i.min_qty.max(i.step_size))
    };
    let buy =
        |symbol: &Symbol, qty: Decimal| Signal { symbol: symbol.clone(), action: SignalAction::Buy, qty: Some(qty) };
    for m in &first {
        let deadline = Instant::now() + Duration::from_secs(10);
        while handle.prices().get(m.as_str()).is_none() && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        handle.signal(&instance(m), buy(m, qty_for(m, Decimal::from(150)))).await.unwrap();
    }
    for m in &first {
        let id = instance(m);
        seen.until(
            &format!("a buy fill of {id}"),
            |e| matches!(e, EngineEvent::Fill(f) if f.strategy_id.as_str() == id && f.side == Side::Buy),
        )
        .await;
    }

    // The busiest outsider trades a thousand times its volume: it joins at the next refresh.
    let rising = candidates
        .iter()
        .filter(|c| !first.contains(&c.symbol) && c.quote_asset == "USDT")
        .max_by_key(|c| c.quote_volume)
        .map(|c| c.symbol.clone())
        .unwrap();
    assert!(market.set_volume_scale(rising.as_str(), 1000.0));
    let change = seen
        .until(
            &format!("{rising} joining"),
            |e| matches!(e, EngineEvent::UniverseChanged { joined, .. } if joined.contains(&rising)),
        )
        .await;
    let EngineEvent::UniverseChanged { left, members, .. } = change else { unreachable!() };
    assert_eq!(members.len(), 5);
    assert_eq!(left.len(), 1, "one joined, one left: {left:?}");
    let dropped = left[0].clone();
    assert!(first.contains(&dropped));
    let deadline = Instant::now() + Duration::from_secs(10);
    while !handle.strategy_ids().iter().any(|s| s.as_str() == instance(&rising)) {
        assert!(Instant::now() < deadline, "no instance for {rising}: {:?}", handle.strategy_ids());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        handle.strategy_ids().iter().any(|s| s.as_str() == instance(&dropped)),
        "the dropped symbol's instance still holds a position and stays"
    );
    let status = serde_json::to_value(handle.status().await.unwrap()).unwrap();
    assert_eq!(status["universe"]["leaving"], serde_json::json!([dropped.as_str()]), "{}", status["universe"]);
    assert_eq!(status["universe"]["members"], serde_json::to_value(&members).unwrap());

    // It may not buy more...
    let dropped_id = instance(&dropped);
    handle.signal(&dropped_id, buy(&dropped, qty_for(&dropped, Decimal::from(150)))).await.unwrap();
    seen.until("the dropped instance's buy refused", |e| {
        matches!(e, EngineEvent::RiskRejected { strategy_id, code, .. } if strategy_id.as_str() == dropped_id && code == "not_reducing")
    })
    .await;
    // ...but exits, and then retires.
    let close = Signal { symbol: dropped.clone(), action: SignalAction::Close, qty: None };
    handle.signal(&dropped_id, close).await.unwrap();
    seen.until(
        "the dropped instance's sell",
        |e| matches!(e, EngineEvent::Fill(f) if f.strategy_id.as_str() == dropped_id && f.side == Side::Sell),
    )
    .await;
    seen.until(
        "the dropped instance retiring",
        |e| matches!(e, EngineEvent::UniverseInstanceRetired { strategy_id, .. } if strategy_id.as_str() == dropped_id),
    )
    .await;
    assert!(!handle.strategy_ids().iter().any(|s| s.as_str() == dropped_id), "retired");
    let err = handle.signal(&dropped_id, buy(&dropped, Decimal::ONE)).await.unwrap_err();
    assert!(err.to_string().contains("unknown strategy"), "{err}");

    // Nothing outside the universe was bought.
    let mut allowed: BTreeSet<Symbol> = first.iter().cloned().collect();
    allowed.insert(rising.clone());
    for e in &seen.all {
        if let EngineEvent::Fill(f) = e {
            if f.side == Side::Buy {
                assert!(allowed.contains(&f.symbol), "a buy of {} outside the universe", f.symbol);
            }
        }
    }
    let m = actors::metrics::metrics();
    let paused_series: Vec<String> = m
        .registry
        .gather()
        .iter()
        .filter(|f| f.name() == "keel_strategy_paused")
        .flat_map(|f| {
            f.get_metric().iter().flat_map(|x| x.get_label().iter().map(|l| l.value().to_string())).collect::<Vec<_>>()
        })
        .collect();
    assert!(!paused_series.contains(&dropped_id), "a retired instance's series is gone: {paused_series:?}");
    assert!(paused_series.contains(&instance(&rising)), "{paused_series:?}");
    assert_eq!(m.universe_symbols.get(), 5);
    assert!(m.universe_changes_total.get() >= 1);

    handle.shutdown(Duration::from_millis(200)).await;
    built.stop().await;
    store.flush().unwrap();
}

/// The documented demo: `keel run --config config.universe.toml` starts an
/// instance of the template on each of the top 5 symbols and trades them.
#[test]
fn the_universe_demo_config_trades_the_top_symbols() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.universe.toml");
    let text = include_str!("../../config.universe.toml");
    // Tests run side by side: no fixed port.
    std::fs::write(&config, text.replace("[http]\nenabled = true", "[http]\nenabled = false")).unwrap();
    let mut keel = common::spawn_run(&config, &dir.path().join("data"), &[], &[]);
    let template = |v: &serde_json::Value| v["strategy"].as_str().is_some_and(|s| s.starts_with("trend@"));
    keel.wait_until("5 template instances and 3 of their fills", |k| {
        let hosts = k.seen.iter().filter(|v| v["message"] == "strategy host started" && template(v)).count();
        let fills = k.seen.iter().filter(|v| v["message"] == "fill" && template(v)).count();
        hosts >= 5 && fills >= 3
    });
    keel.sigterm();
    let (status, seen) = keel.finish();
    common::assert_stopped("the run", status, &seen);
    let selected = seen.iter().find(|v| v["message"] == "universe selected").expect("a selection at start");
    let mut members: BTreeSet<String> = selected["members"].as_str().unwrap().split(',').map(str::to_string).collect();
    assert_eq!(members.len(), 5, "{selected}");
    for v in seen.iter().filter(|v| v["message"] == "universe changed") {
        members.extend(v["joined"].as_str().unwrap_or("").split(',').filter(|s| !s.is_empty()).map(str::to_string));
    }
    for v in seen.iter().filter(|v| v["message"] == "fill" && template(v)) {
        let (strategy, symbol) = (v["strategy"].as_str().unwrap(), v["symbol"].as_str().unwrap());
        assert_eq!(strategy, format!("trend@{symbol}"), "an instance trades its own symbol");
        assert!(members.contains(symbol), "{symbol} was never a member: {members:?}");
    }
}

/// A restart within a refresh period runs the members the store remembers
/// (no ranking at start, so no instance is swapped early), even though the
/// venue would rank differently now.
#[actix_rt::test]
async fn a_restart_within_a_refresh_runs_the_remembered_members() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::parse(&CONFIG.replace("refresh = \"10s\"", "refresh = \"1h\"")).expect("config");
    config.engine.data_dir = dir.path().join("data");
    let clock: SharedClock = Arc::new(SystemClock);

    let first = {
        let store: SharedStore = Arc::new(SledStore::open(&config.engine.data_dir).unwrap());
        let built = ops::venues::build(&config, Some(store.as_ref())).await.expect("venue");
        let setup = ops::cmd_run::engine_setup(
            &config,
            store.clone(),
            built.venue.clone(),
            clock.clone(),
            &strategies::StrategyRegistry::builtin(),
        )
        .unwrap();
        let handle = start_engine(setup).await.expect("engine starts");
        let members = handle.universe().await.unwrap().unwrap().members;
        handle.shutdown(Duration::from_millis(200)).await;
        built.stop().await;
        store.flush().unwrap();
        members
    };
    assert_eq!(first.len(), 5);

    // The restart runs on a copy (this process still holds the first store).
    let again_dir = dir.path().join("again");
    keel_store::copy_dir(&config.engine.data_dir, &again_dir).unwrap();
    config.engine.data_dir = again_dir;
    let store: SharedStore = Arc::new(SledStore::open(&config.engine.data_dir).unwrap());
    let built = ops::venues::build(&config, Some(store.as_ref())).await.expect("venue");
    let sandbox = built.sandbox.as_ref().expect("embedded sandbox").handle();
    // An outsider now trades far more than any member.
    let outsider = built
        .venue
        .universe_candidates()
        .await
        .unwrap()
        .into_iter()
        .find(|c| !first.contains(&c.symbol) && c.quote_asset == "USDT")
        .unwrap()
        .symbol;
    sandbox.market.set_volume_scale(outsider.as_str(), 10_000.0);
    sandbox.market.step(40);
    let asked_before = sandbox.faults.rest_requests().iter().filter(|r| r.contains("ticker/24hr")).count();
    let setup = ops::cmd_run::engine_setup(
        &config,
        store.clone(),
        built.venue.clone(),
        clock,
        &strategies::StrategyRegistry::builtin(),
    )
    .unwrap();
    let handle = start_engine(setup).await.expect("engine restarts");
    let again = handle.universe().await.unwrap().unwrap().members;
    let asked_after = sandbox.faults.rest_requests().iter().filter(|r| r.contains("ticker/24hr")).count();
    assert_eq!(again, first, "the remembered members");
    assert_eq!(asked_after, asked_before, "no ranking at a start within the refresh period");
    let ids: BTreeSet<String> = handle.strategy_ids().iter().map(|s| s.to_string()).collect();
    assert_eq!(ids, first.iter().map(instance).collect::<BTreeSet<_>>());
    // A fresh ranking would have taken the outsider in.
    let rules = config.universe.as_ref().unwrap().rules();
    let now = rules.select(&built.venue.universe_candidates().await.unwrap());
    assert!(now.contains(&outsider), "{outsider} outranks the members now: {:?}", now.members);
    handle.shutdown(Duration::from_millis(200)).await;
    built.stop().await;
    store.flush().unwrap();
}

/// Rests one limit buy 20 % under the first close it sees (it stays
/// working for the test's length), and nothing else.
struct Resting {
    symbol: Symbol,
    placed: bool,
}

impl keel_core::strategy::Strategy for Resting {
    fn kind(&self) -> &'static str {
        "resting"
    }

    fn symbols(&self) -> Vec<Symbol> {
        vec![self.symbol.clone()]
    }

    fn on_bar(&mut self, bar: &keel_core::market::Bar, ctx: &mut keel_core::strategy::StrategyCtx<'_>) {
        if self.placed || bar.symbol != self.symbol || bar.close.is_zero() {
            return;
        }
        self.placed = true;
        let price = (bar.close * Decimal::new(80, 2)).round_dp(8);
        ctx.limit(&self.symbol, Side::Buy, (Decimal::from(100) / price).round_dp(8), price);
    }
}

/// A leaving symbol's resting buy (it could open a position) is cancelled at
/// once whether or not `cancel_orders_on_leave` is set; the members' orders
/// stay; the instance, flat, retires.
#[actix_rt::test]
async fn a_leaving_symbol_s_resting_buy_is_cancelled() {
    resting_buy_of_a_leaving_symbol_is_cancelled(false).await;
}

/// The same with `cancel_orders_on_leave = true`.
#[actix_rt::test]
async fn cancel_orders_on_leave_cancels_the_leaving_instance_s_orders_only() {
    resting_buy_of_a_leaving_symbol_is_cancelled(true).await;
}

async fn resting_buy_of_a_leaving_symbol_is_cancelled(cancel_orders_on_leave: bool) {
    let Embedded { _dir, config: _, store, built, mut setup } =
        embedded(&CONFIG.replace("[risk]\n", "[risk]\nprice_band_pct = \"30\"\n")).await;
    let universe = setup.universe.as_mut().expect("a universe");
    universe.cancel_orders_on_leave = cancel_orders_on_leave;
    universe.build = Arc::new(|cfg: &keel_core::config::StrategyConfig| {
        Ok(Box::new(Resting { symbol: Symbol::new(&cfg.symbol), placed: false })
            as Box<dyn keel_core::strategy::Strategy>)
    });
    let handle = start_engine(setup).await.expect("engine starts");
    let mut seen = Seen { rx: handle.subscribe(), all: Vec::new() };
    let market = built.sandbox.as_ref().expect("embedded sandbox").handle().market.clone();
    let first = handle.universe().await.unwrap().unwrap().members;

    // Every member's instance rests an order.
    let open_of = |orders: &[keel_core::order::Order], symbol: &Symbol| {
        orders.iter().any(|o| o.strategy_id.as_str() == instance(symbol) && o.status.is_open())
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let open = handle.open_orders().await.unwrap();
        if first.iter().all(|m| open_of(&open, m)) {
            break;
        }
        assert!(Instant::now() < deadline, "not every member rests an order: {open:#?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let candidates = built.venue.universe_candidates().await.unwrap();
    let rising = candidates
        .iter()
        .filter(|c| !first.contains(&c.symbol) && c.quote_asset == "USDT")
        .max_by_key(|c| c.quote_volume)
        .map(|c| c.symbol.clone())
        .unwrap();
    assert!(market.set_volume_scale(rising.as_str(), 1000.0));
    let change = seen
        .until(
            &format!("{rising} joining"),
            |e| matches!(e, EngineEvent::UniverseChanged { joined, .. } if joined.contains(&rising)),
        )
        .await;
    let EngineEvent::UniverseChanged { left, members, .. } = change else { unreachable!() };
    assert_eq!(left.len(), 1, "{left:?}");
    let dropped_id = instance(&left[0]);
    seen.until("the leaving instance's order cancelled", |e| {
        matches!(e, EngineEvent::OrderChanged(o) if o.strategy_id.as_str() == dropped_id && o.status == keel_core::order::OrderStatus::Canceled)
    })
    .await;
    seen.until(
        "the leaving instance retiring",
        |e| matches!(e, EngineEvent::UniverseInstanceRetired { strategy_id, .. } if strategy_id.as_str() == dropped_id),
    )
    .await;
    // The members' orders were left alone (they may have filled meanwhile).
    for e in &seen.all {
        if let EngineEvent::OrderChanged(o) = e {
            if o.status == keel_core::order::OrderStatus::Canceled {
                assert_eq!(o.strategy_id.as_str(), dropped_id, "only the leaving instance's order is cancelled");
            }
        }
    }
    assert!(members.iter().all(|m| *m != left[0]));
    assert!(!open_of(&handle.open_orders().await.unwrap(), &left[0]));

    handle.shutdown(Duration::from_millis(200)).await;
    built.stop().await;
    store.flush().unwrap();
}

/// Paper mode: the members come from the configured `[[symbol]]`s only, and
/// `max_gross_exposure` holds across the instances.
#[actix_rt::test]
async fn on_paper_the_members_are_configured_symbols_and_gross_exposure_spans_instances() {
    let block = |symbol: &str, base: &str, price: &str, touch: &str| {
        format!(
            "[[symbol]]\nsymbol = \"{symbol}\"\nbase = \"{base}\"\nquote = \"USDT\"\ntick_size = \"0.01\"\nstep_size = \"0.0001\"\nmin_notional = \"5\"\nstart_price = \"{price}\"\nvolatility = 0.5\ntouch_qty = \"{touch}\"\n"
        )
    };
    let text = format!(
        "{}{}{}{}",
        CONFIG.replace("mode = \"sandbox\"", "mode = \"paper\"").replace("top_n = 5", "top_n = 2"),
        block("AAAUSDT", "AAA", "100", "5"),
        block("BBBUSDT", "BBB", "100", "50"),
        block("CCCUSDT", "CCC", "100", "500"),
    );
    let text = text
        .replace("[sandbox]\nsynthetic_symbols = 30\n", "")
        .replace("max_gross_exposure = \"100000\"", "max_gross_exposure = \"1500\"");
    let Embedded { _dir, config: _, store, built, setup } = embedded(&text).await;
    let handle = start_engine(setup).await.expect("engine starts");
    let members = handle.universe().await.unwrap().unwrap().members;
    assert_eq!(members.len(), 2, "{members:?}");
    let configured = ["AAAUSDT", "BBBUSDT", "CCCUSDT"];
    assert!(members.iter().all(|m| configured.contains(&m.as_str())), "{members:?}");
    let ids: BTreeSet<String> = handle.strategy_ids().iter().map(|s| s.to_string()).collect();
    assert_eq!(ids, members.iter().map(instance).collect::<BTreeSet<_>>());

    // Each instance alone is within every limit; together they pass the gross exposure.
    let mut seen = Seen { rx: handle.subscribe(), all: Vec::new() };
    for m in &members {
        let deadline = Instant::now() + Duration::from_secs(10);
        while handle.prices().get(m.as_str()).is_none() {
            assert!(Instant::now() < deadline, "no price for {m}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    let qty = |m: &Symbol| (Decimal::from(1000) / handle.prices().get(m.as_str()).unwrap().price).round_dp(2);
    let signal = |m: &Symbol| Signal { symbol: m.clone(), action: SignalAction::Buy, qty: Some(qty(m)) };
    handle.signal(&instance(&members[0]), signal(&members[0])).await.unwrap();
    let first_id = instance(&members[0]);
    seen.until("the first instance's buy", |e| matches!(e, EngineEvent::Fill(f) if f.strategy_id.as_str() == first_id))
        .await;
    handle.signal(&instance(&members[1]), signal(&members[1])).await.unwrap();
    let second_id = instance(&members[1]);
    seen.until("the second instance refused on gross exposure", |e| {
        matches!(e, EngineEvent::RiskRejected { strategy_id, code, .. } if strategy_id.as_str() == second_id && code == "gross_exposure_above_max")
    })
    .await;
    handle.shutdown(Duration::from_millis(200)).await;
    built.stop().await;
    store.flush().unwrap();
}

/// Records the open time of every live bar it is given, by symbol.
struct BarLog {
    symbol: Symbol,
    bars: Arc<std::sync::Mutex<BTreeMap<Symbol, Vec<i64>>>>,
}

impl keel_core::strategy::Strategy for BarLog {
    fn kind(&self) -> &'static str {
        "bar_log"
    }

    fn symbols(&self) -> Vec<Symbol> {
        vec![self.symbol.clone()]
    }

    fn on_bar(&mut self, bar: &keel_core::market::Bar, _ctx: &mut keel_core::strategy::StrategyCtx<'_>) {
        let mut bars = self.bars.lock().unwrap_or_else(|p| p.into_inner());
        bars.entry(bar.symbol.clone()).or_default().push(bar.open_time);
    }
}

/// Three refreshes that each swap a member: the sandbox sees one market
/// connection at the end (the feed for the new set replaces the old one; a
/// retired symbol is dropped from it), and every member still gets bars.
#[actix_rt::test]
async fn churning_refreshes_keep_one_market_connection_and_every_member_gets_bars() {
    let Embedded { _dir, config: _, store, built, mut setup } = embedded(CONFIG).await;
    let bars: Arc<std::sync::Mutex<BTreeMap<Symbol, Vec<i64>>>> = Arc::default();
    let log = bars.clone();
    setup.universe.as_mut().expect("a universe").build = Arc::new(move |cfg: &keel_core::config::StrategyConfig| {
        Ok(Box::new(BarLog { symbol: Symbol::new(&cfg.symbol), bars: log.clone() })
            as Box<dyn keel_core::strategy::Strategy>)
    });
    let handle = start_engine(setup).await.expect("engine starts");
    let mut seen = Seen { rx: handle.subscribe(), all: Vec::new() };
    let sandbox = built.sandbox.as_ref().expect("embedded sandbox").handle();
    let opened_at_start = sandbox.faults.market_connections_opened();

    let mut boosted = BTreeSet::new();
    for round in 0..3 {
        let members = handle.universe().await.unwrap().unwrap().members;
        let rising = built
            .venue
            .universe_candidates()
            .await
            .unwrap()
            .into_iter()
            .filter(|c| !members.contains(&c.symbol) && c.quote_asset == "USDT" && !boosted.contains(&c.symbol))
            .max_by_key(|c| c.quote_volume)
            .map(|c| c.symbol)
            .unwrap();
        assert!(sandbox.market.set_volume_scale(rising.as_str(), 1000.0));
        boosted.insert(rising.clone());
        let change = seen
            .until(
                &format!("{rising} joining (round {round})"),
                |e| matches!(e, EngineEvent::UniverseChanged { joined, .. } if joined.contains(&rising)),
            )
            .await;
        let EngineEvent::UniverseChanged { left, .. } = change else { unreachable!() };
        assert_eq!(left.len(), 1, "{left:?}");
        let gone = instance(&left[0]);
        seen.until(
            &format!("{gone} retiring"),
            |e| matches!(e, EngineEvent::UniverseInstanceRetired { strategy_id, .. } if strategy_id.as_str() == gone),
        )
        .await;
    }

    // Each join and each retirement took a feed for the new set; the old ones closed.
    let deadline = Instant::now() + Duration::from_secs(15);
    while sandbox.faults.market_connections() != 1 {
        assert!(
            Instant::now() < deadline,
            "{} market connections open after 3 churns (opened {} since the start)",
            sandbox.faults.market_connections(),
            sandbox.faults.market_connections_opened() - opened_at_start
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let swaps = sandbox.faults.market_connections_opened() - opened_at_start;
    // The changes the engine made: the test's, and any the market's own
    // volumes made meanwhile (a slow, loaded run sees more refreshes). Each
    // join and each retirement streams a new set once.
    loop {
        match seen.rx.try_recv() {
            Ok(e) => seen.all.push(e),
            Err(broadcast::error::TryRecvError::Lagged(_)) => {}
            Err(_) => break,
        }
    }
    let changes = seen
        .all
        .iter()
        .filter(|e| match e {
            EngineEvent::UniverseChanged { joined, .. } => !joined.is_empty(),
            EngineEvent::UniverseInstanceRetired { .. } => true,
            _ => false,
        })
        .count();
    assert!(changes >= 6, "three joins and three retirements at least: {changes}");
    assert!(
        (3..=2 * changes as u64).contains(&swaps),
        "a feed per change of the set, and no more: {swaps} feeds for {changes} changes"
    );

    // Every member gets bars on the one connection.
    let members = handle.universe().await.unwrap().unwrap().members;
    assert_eq!(members.len(), 5);
    let before: BTreeMap<Symbol, usize> = {
        let bars = bars.lock().unwrap();
        members.iter().map(|m| (m.clone(), bars.get(m).map_or(0, Vec::len))).collect()
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let fresh: Vec<&Symbol> = {
            let bars = bars.lock().unwrap();
            members.iter().filter(|m| bars.get(*m).map_or(0, Vec::len) > before[*m]).collect()
        };
        if fresh.len() == members.len() {
            break;
        }
        assert!(Instant::now() < deadline, "only {fresh:?} of {members:?} got a bar after the churn");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for (symbol, times) in bars.lock().unwrap().iter() {
        assert!(times.windows(2).all(|w| w[0] < w[1]), "{symbol}'s bars once each, in order: {times:?}");
    }
    assert_eq!(sandbox.faults.market_connections(), 1);

    handle.shutdown(Duration::from_millis(200)).await;
    built.stop().await;
    store.flush().unwrap();
}

/// A pair the venue lists while Keel runs, trading more than any member,
/// joins at the next refresh without a restart: its filters come from the
/// venue, its instance trades it, `keel state` shows the position and a
/// flatten sells it.
#[actix_rt::test]
async fn a_symbol_listed_after_the_start_joins_trades_and_is_flattened() {
    let Embedded { _dir: dir, config, store, built, setup } = embedded(CONFIG).await;
    let handle = start_engine(setup).await.expect("engine starts");
    let mut seen = Seen { rx: handle.subscribe(), all: Vec::new() };
    let sandbox = built.sandbox.as_ref().expect("embedded sandbox").handle();

    let new = Symbol::new("NEWUSDT");
    let members = handle.universe().await.unwrap().unwrap().members;
    assert!(!members.is_empty() && !members.contains(&new), "{members:?}");
    // The members at start have their instruments in the store, as the venue lists them.
    let kept = keel_core::member_instruments::load(store.as_ref()).expect("readable");
    let listed = built.venue.instruments().await.expect("instruments");
    for m in &members {
        assert_eq!(kept.get(m), listed.iter().find(|i| &i.symbol == m), "{m} kept as listed");
    }
    let listing: keel_core::config::SymbolConfig = toml::from_str(
        "symbol = \"NEWUSDT\"\nbase = \"NEW\"\nquote = \"USDT\"\ntick_size = \"0.0001\"\nstep_size = \"0.01\"\n\
         min_qty = \"0.01\"\nmin_notional = \"5\"\nstart_price = \"2\"\nvolatility = 0.5\nseed = 11\ntouch_qty = \"100000\"\n",
    )
    .expect("a symbol block");
    assert!(sandbox.market.list_symbol(&listing, 1e7), "listed");

    seen.until(
        "NEWUSDT joining",
        |e| matches!(e, EngineEvent::UniverseChanged { joined, .. } if joined.contains(&new)),
    )
    .await;
    let id = instance(&new);
    let deadline = Instant::now() + Duration::from_secs(15);
    while !handle.strategy_ids().iter().any(|s| s.as_str() == id) || handle.prices().get("NEWUSDT").is_none() {
        assert!(Instant::now() < deadline, "no instance or no price for NEWUSDT: {:?}", handle.strategy_ids());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let price = handle.prices().get("NEWUSDT").unwrap().price;
    let qty = keel_core::instrument::floor_to_step(Decimal::from(150) / price, Decimal::new(1, 2));
    let buy = Signal { symbol: new.clone(), action: SignalAction::Buy, qty: Some(qty) };
    handle.signal(&id, buy).await.unwrap();
    let EngineEvent::Fill(bought) = seen
        .until(
            "a buy fill of hook@NEWUSDT",
            |e| matches!(e, EngineEvent::Fill(f) if f.strategy_id.as_str() == id && f.side == Side::Buy),
        )
        .await
    else {
        unreachable!("until returns the event it waited for")
    };
    assert_eq!((bought.qty, bought.fee_asset.as_str()), (qty, "NEW"), "all of it, the fee in NEW");
    // What the account holds, and the part below the 0.01 lot step (the
    // venue's NEWUSDT filters; no `[[symbol]]` block names it).
    let held = qty - bought.fee;
    let dust = held - keel_core::instrument::floor_to_step(held, Decimal::new(1, 2));

    // `keel state` shows the holding, and its dust by the member's own
    // instrument (kept in the store when it joined); the portfolio values it.
    let state = ops::cmd_state::report(store.as_ref(), &config).expect("state");
    let row = state.positions.iter().find(|p| p.symbol == "NEWUSDT").expect("a NEWUSDT position in keel state");
    assert_eq!(row.qty.parse::<Decimal>().unwrap(), held, "{}", row.qty);
    assert_eq!(row.dust.as_deref(), Some(dust.normalize().to_string().as_str()), "the member's dust");
    assert_eq!(row.fees.get("NEW").map(String::as_str), Some(bought.fee.normalize().to_string().as_str()));
    let portfolio = handle.portfolio().await.unwrap();
    let held = portfolio.positions.iter().find(|p| p.position.symbol == new).expect("in the portfolio");
    assert!(held.position.qty > Decimal::ZERO);

    // A flatten of everything covers it, right away: the fill is the truth,
    // whether or not the venue's balance report has arrived yet.
    handle.flatten(None).await.unwrap();
    seen.until(
        "the flatten selling NEWUSDT",
        |e| matches!(e, EngineEvent::Fill(f) if f.symbol == new && f.side == Side::Sell),
    )
    .await;

    handle.shutdown(Duration::from_millis(200)).await;
    built.stop().await;
    store.flush().unwrap();

    // `keel state` on the store the run left, with the same config (which
    // does not name NEWUSDT): the dust the flatten could not sell, as dust.
    let config_path = dir.path().join("config.toml");
    std::fs::write(&config_path, CONFIG).unwrap();
    let state = common::state_json(config_path.to_str().unwrap(), config.engine.data_dir.to_str().unwrap());
    let positions = state["positions"].as_array().expect("positions");
    let row = positions.iter().find(|p| p["symbol"] == "NEWUSDT");
    if dust.is_zero() {
        assert!(row.is_none_or(|r| r["qty"] == "0"), "sold to the last unit: {state:#}");
    } else {
        let row = row.unwrap_or_else(|| panic!("the NEWUSDT dust in keel state: {state:#}"));
        assert_eq!(
            (row["qty"].as_str(), row["dust"].as_str()),
            (Some(dust.normalize().to_string().as_str()), Some(dust.normalize().to_string().as_str())),
            "{state:#}"
        );
    }
}
