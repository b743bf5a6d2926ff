//! The live pipeline end to end, in process: real actors, a real sled store in a
//! temp dir, the paper venue driven tick by tick.

use std::sync::Arc;
use std::time::Duration;

use actors::{start_engine, EngineEvent, EngineHandle, EngineSetup};
use keel_core::balance::Balance;
use keel_core::clock::{Clock, SharedClock, SystemClock};
use keel_core::config::{StrategyConfig, SymbolConfig};
use keel_core::market::Bar;
use keel_core::order::Side;
use keel_core::sim::FeeSchedule;
use keel_core::store::SharedStore;
use keel_core::strategy::{Strategy, StrategyCtx};
use keel_core::trading::{EmergencyStop, TradingState};
use keel_core::venue::paper::{PaperConfig, PaperSymbol, PaperVenue};
use keel_core::venue::Venue;
use keel_core::{Decimal, Symbol};
use keel_store::SledStore;
use tokio::sync::broadcast;

const CONFIG: &str = r#"
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
volatility = 0.5
seed = 3
touch_qty = "5"

[[symbol]]
symbol = "ETHUSDT"
base = "ETH"
quote = "USDT"
tick_size = "0.01"
step_size = "0.001"
min_notional = "5"
start_price = "3000"
volatility = 0.5
seed = 4
touch_qty = "50"

[[strategy]]
id = "flip"
kind = "test"
symbol = "BTCUSDT"

[[strategy]]
id = "boom"
kind = "test"
symbol = "ETHUSDT"

[risk]
max_order_notional = "100000"
max_position_notional = "100000"
"#;

/// The parts of `config.toml` the actors take (ops composes the whole tree).
#[derive(serde::Deserialize)]
struct Config {
    balances: std::collections::BTreeMap<String, Decimal>,
    #[serde(rename = "symbol")]
    symbols: Vec<SymbolConfig>,
    #[serde(rename = "strategy")]
    strategies: Vec<StrategyConfig>,
    risk: risk::config::RiskConfig,
}

impl Config {
    fn parse(text: &str) -> Result<Self, toml::de::Error> {
        toml::from_str(text)
    }
}

/// Buys when flat, sells everything when long: trades on every bar.
struct Flip(Symbol);

impl Strategy for Flip {
    fn kind(&self) -> &'static str {
        "flip"
    }
    fn symbols(&self) -> Vec<Symbol> {
        vec![self.0.clone()]
    }
    fn on_bar(&mut self, bar: &Bar, ctx: &mut StrategyCtx<'_>) {
        if ctx.pending_orders(&bar.symbol) > 0 {
            return;
        }
        let pos = ctx.position(&bar.symbol);
        if pos.is_zero() {
            ctx.market(&bar.symbol, Side::Buy, Decimal::new(1, 2));
        } else {
            ctx.market(&bar.symbol, Side::Sell, pos);
        }
    }
}

/// Panics on its third bar.
struct Boom(Symbol, u32);

impl Strategy for Boom {
    fn kind(&self) -> &'static str {
        "boom"
    }
    fn symbols(&self) -> Vec<Symbol> {
        vec![self.0.clone()]
    }
    fn on_bar(&mut self, _bar: &Bar, _ctx: &mut StrategyCtx<'_>) {
        self.1 += 1;
        assert!(self.1 < 3, "boom: strategy bug on bar {}", self.1);
    }
}

const BAR_MS: i64 = 60_000;

fn paper(config: &Config) -> Arc<PaperVenue> {
    // A short history; the test drives the clock itself, tick by tick.
    let history_bars = 5;
    let now = SystemClock.now_ms();
    PaperVenue::new(PaperConfig {
        symbols: config.symbols.iter().map(PaperSymbol::from_config).collect(),
        balances: config
            .balances
            .iter()
            .map(|(asset, free)| Balance { asset: asset.clone(), free: *free, locked: Decimal::ZERO })
            .collect(),
        fees: FeeSchedule::default(),
        depth_levels: 5,
        bar_interval_ms: BAR_MS,
        ticks_per_bar: 2,
        bar_wall_ms: 250,
        history_bars,
        start_ms: now - history_bars as i64 * BAR_MS,
        id_base: now as u64 * 1000,
    })
}

/// Rests one limit buy below the market, once.
struct Rester(Symbol, bool);

impl Strategy for Rester {
    fn kind(&self) -> &'static str {
        "rester"
    }
    fn symbols(&self) -> Vec<Symbol> {
        vec![self.0.clone()]
    }
    fn on_bar(&mut self, bar: &Bar, ctx: &mut StrategyCtx<'_>) {
        if !self.1 {
            self.1 = true;
            // 3 % below the close: inside the 5 % price band, far enough not to fill.
            ctx.limit(&bar.symbol, Side::Buy, Decimal::new(1, 1), (bar.close * Decimal::new(97, 2)).round_dp(2));
        }
    }
}

async fn start(config: &Config, store: SharedStore, venue: Arc<PaperVenue>) -> EngineHandle {
    start_with(config, store, venue, |symbol| Box::new(Boom(symbol, 0))).await
}

async fn start_with(
    config: &Config,
    store: SharedStore,
    venue: Arc<PaperVenue>,
    second: impl Fn(Symbol) -> Box<dyn Strategy>,
) -> EngineHandle {
    let strategies: Vec<(StrategyConfig, Box<dyn Strategy>)> = config
        .strategies
        .iter()
        .map(|c| {
            let s: Box<dyn Strategy> = match c.id.as_str() {
                "flip" => Box::new(Flip(Symbol::new(&c.symbol))),
                _ => second(Symbol::new(&c.symbol)),
            };
            (c.clone(), s)
        })
        .collect();
    let clock: SharedClock = Arc::new(SystemClock);
    let symbols = config.symbols.iter().map(|s| Symbol::new(&s.symbol)).collect();
    let setup =
        EngineSetup { symbols, risk: config.risk.clone(), bar_interval_ms: BAR_MS, store, venue, strategies, clock };
    start_engine(setup).await.expect("engine starts")
}

/// Ticks the venue until `done` says the events seen so far are enough (bounded).
async fn drive(
    venue: &PaperVenue,
    rx: &mut broadcast::Receiver<EngineEvent>,
    mut done: impl FnMut(&EngineEvent) -> bool,
) {
    let result = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            venue.tick().await;
            // Pace the simulated market; the loop ends on events, not on time.
            tokio::time::sleep(Duration::from_millis(2)).await;
            while let Ok(ev) = rx.try_recv() {
                if done(&ev) {
                    return;
                }
            }
        }
    })
    .await;
    assert!(result.is_ok(), "expected events did not arrive in time");
}

#[actix_rt::test]
async fn panicking_strategy_is_paused_and_the_other_keeps_trading() {
    let config = Config::parse(CONFIG).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store: SharedStore = Arc::new(SledStore::open(dir.path()).unwrap());
    let venue = paper(&config);
    let handle = start(&config, store.clone(), venue.clone()).await;
    let mut rx = handle.subscribe();
    let mut paused = false;
    let mut fills_after_panic = 0;
    drive(&venue, &mut rx, |ev| {
        match ev {
            EngineEvent::StrategyPaused { strategy_id, reason } if strategy_id.as_str() == "boom" => {
                assert!(reason.contains("boom: strategy bug"), "{reason}");
                paused = true;
            }
            EngineEvent::Fill(f) if paused && f.strategy_id.as_str() == "flip" => fills_after_panic += 1,
            _ => {}
        }
        fills_after_panic >= 3
    })
    .await;
    let strategies = handle.strategies().await.unwrap();
    let boom = strategies.iter().find(|s| s.id.as_str() == "boom").unwrap();
    let flip = strategies.iter().find(|s| s.id.as_str() == "flip").unwrap();
    assert!(boom.paused && boom.failure.as_deref().unwrap_or("").contains("boom"));
    assert!(!flip.paused);
    // Every fill the venue made is in the store, exactly once.
    let venue_fills = venue.my_trades(&Symbol::new("BTCUSDT"), None).await.unwrap();
    let stored = store.fills().unwrap();
    let mut ids: Vec<u64> = stored.iter().filter_map(|f| f.trade_id.as_u64()).collect();
    ids.dedup();
    assert_eq!(ids.len(), stored.len());
    assert!(venue_fills.len() >= 3);
    for f in &venue_fills {
        assert!(store.has_fill(f).unwrap(), "fill {} missing from the store", f.trade_id);
    }
}

#[actix_rt::test]
async fn emergency_stop_set_before_start_lets_no_order_out() {
    let config = Config::parse(CONFIG).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store: SharedStore = Arc::new(SledStore::open(dir.path()).unwrap());
    store
        .put_emergency_stop(&EmergencyStop {
            active: true,
            reason: Some("test halt".into()),
            set_by: Some("test".into()),
            ..Default::default()
        })
        .unwrap();
    let venue = paper(&config);
    let handle = start(&config, store.clone(), venue.clone()).await;
    let mut rx = handle.subscribe();
    let mut refused = 0;
    drive(&venue, &mut rx, |ev| {
        if let EngineEvent::RiskRejected { code, strategy_id, .. } = ev {
            assert_eq!(strategy_id.as_str(), "flip");
            assert_eq!(code, "emergency_stop");
            refused += 1;
        }
        assert!(!matches!(ev, EngineEvent::Fill(_)), "a fill happened while the emergency stop was set");
        refused >= 5
    })
    .await;
    let status = handle.status().await.unwrap();
    assert_eq!(status.trading_state, TradingState::Halted);
    assert!(status.emergency_stop.active);
    assert!(venue.my_trades(&Symbol::new("BTCUSDT"), None).await.unwrap().is_empty());
    assert!(venue.open_orders(None).await.unwrap().is_empty());
    assert_eq!(store.order_count().unwrap(), 0, "no order was even created");

    // Only an explicit resume lets trading continue, and it is recorded.
    handle.resume("operator:test").await.unwrap();
    let stop = store.emergency_stop().unwrap();
    assert!(!stop.active);
    assert_eq!(stop.cleared_by.as_deref(), Some("operator:test"));
    drive(&venue, &mut rx, |ev| matches!(ev, EngineEvent::Fill(_))).await;
}

#[actix_rt::test]
async fn emergency_stop_cancels_open_orders_and_persists() {
    let config = Config::parse(CONFIG).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store: SharedStore = Arc::new(SledStore::open(dir.path()).unwrap());
    let venue = paper(&config);
    let handle = start_with(&config, store.clone(), venue.clone(), |s| Box::new(Rester(s, false))).await;
    let mut rx = handle.subscribe();
    drive(&venue, &mut rx, |ev| matches!(ev, EngineEvent::Fill(_))).await;
    let resting = handle.open_orders().await.unwrap();
    assert_eq!(resting.len(), 1, "the limit order rests: {resting:?}");
    assert_eq!(venue.open_orders(None).await.unwrap().len(), 1);
    let mut rx_cancel = handle.subscribe();
    handle.emergency_stop("operator test", "operator:test", false).await.unwrap();
    // Acknowledged means on disk.
    let stop = store.emergency_stop().unwrap();
    assert!(stop.active);
    assert_eq!(stop.reason.as_deref(), Some("operator test"));
    assert_eq!(store.trading_state().unwrap().unwrap().state, TradingState::Halted);
    let before = store.order_count().unwrap();
    drive(&venue, &mut rx_cancel, |ev| matches!(ev, EngineEvent::RiskRejected { .. })).await;
    assert_eq!(store.order_count().unwrap(), before, "no new order after the stop");
    assert!(venue.open_orders(None).await.unwrap().is_empty(), "the resting order was canceled at the venue");
    let canceled = store.order(&resting[0].client_order_id).unwrap().unwrap();
    assert_eq!(canceled.status, keel_core::order::OrderStatus::Canceled);
    drop(rx);
}

/// Rests one tagged limit buy; once the venue has it, cancels it (and asks to
/// cancel an order that is not its own, which must change nothing).
struct Tidy {
    symbol: Symbol,
    placed: bool,
    seen: Arc<std::sync::Mutex<Vec<keel_core::strategy::OrderUpdate>>>,
}

impl Strategy for Tidy {
    fn kind(&self) -> &'static str {
        "tidy"
    }
    fn symbols(&self) -> Vec<Symbol> {
        vec![self.symbol.clone()]
    }
    fn on_bar(&mut self, bar: &Bar, ctx: &mut StrategyCtx<'_>) {
        if !self.placed {
            self.placed = true;
            let price = (bar.close * Decimal::new(97, 2)).round_dp(2);
            ctx.limit_tagged(&bar.symbol, Side::Buy, Decimal::new(1, 1), price, keel_core::order::OrderTag(7));
        }
    }
    fn on_order_update(&mut self, update: &keel_core::strategy::OrderUpdate, ctx: &mut StrategyCtx<'_>) {
        self.seen.lock().unwrap().push(update.clone());
        if update.status == keel_core::order::OrderStatus::Accepted {
            if let Some(id) = &update.client_order_id {
                ctx.cancel("k-not-mine");
                ctx.cancel(id);
            }
        }
    }
}

#[actix_rt::test]
async fn a_strategy_cancels_its_own_tagged_order() {
    use keel_core::order::{OrderStatus, OrderTag};
    let config = Config::parse(CONFIG).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store: SharedStore = Arc::new(SledStore::open(dir.path()).unwrap());
    let venue = paper(&config);
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let handle = {
        let seen = seen.clone();
        start_with(&config, store.clone(), venue.clone(), move |symbol| {
            Box::new(Tidy { symbol, placed: false, seen: seen.clone() })
        })
        .await
    };
    let mut rx = handle.subscribe();
    let canceled = |seen: &std::sync::Mutex<Vec<keel_core::strategy::OrderUpdate>>| {
        seen.lock().unwrap().iter().any(|u| u.status == OrderStatus::Canceled)
    };
    // The router tells the strategy, then writes the order: wait for both.
    drive(&venue, &mut rx, |_| canceled(&seen) && store.open_orders().map(|o| o.is_empty()).unwrap_or(false)).await;
    let updates = seen.lock().unwrap().clone();
    let id = updates[0].client_order_id.clone().expect("the order was created");
    assert!(updates.iter().all(|u| u.tag == Some(OrderTag(7))), "every update carries the tag: {updates:?}");
    let order = store.order(&id).unwrap().unwrap();
    assert_eq!((order.status, order.tag), (OrderStatus::Canceled, Some(OrderTag(7))));
    let eth_open = venue.open_orders(Some(&Symbol::new("ETHUSDT"))).await.unwrap();
    assert!(eth_open.is_empty(), "the venue no longer has it: {eth_open:?}");
}
