//! Shared by the actor tests: the test config, the paper venue driven tick by
//! tick, simple strategies and the engine start.
#![allow(dead_code)]

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
use keel_core::venue::paper::{PaperConfig, PaperSymbol, PaperVenue};
use keel_core::venue::Venue;
use keel_core::{Decimal, Symbol};
use tokio::sync::broadcast;

pub const CONFIG: &str = r#"
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
pub struct Config {
    pub balances: std::collections::BTreeMap<String, Decimal>,
    #[serde(rename = "symbol")]
    pub symbols: Vec<SymbolConfig>,
    #[serde(rename = "strategy")]
    pub strategies: Vec<StrategyConfig>,
    pub risk: risk::config::RiskConfig,
}

impl Config {
    pub fn parse(text: &str) -> Result<Self, toml::de::Error> {
        toml::from_str(text)
    }
}

/// Buys when flat, sells everything when long: trades on every bar.
pub struct Flip(pub Symbol);

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
pub struct Boom(pub Symbol, pub u32);

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

pub const BAR_MS: i64 = 60_000;

pub fn paper(config: &Config) -> Arc<PaperVenue> {
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
pub struct Rester(pub Symbol, pub bool);

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

pub async fn start(config: &Config, store: SharedStore, venue: Arc<PaperVenue>) -> EngineHandle {
    start_with(config, store, venue, |symbol| Box::new(Boom(symbol, 0))).await
}

pub async fn start_with(
    config: &Config,
    store: SharedStore,
    venue: Arc<dyn Venue>,
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
    let setup = EngineSetup {
        symbols,
        risk: config.risk.clone(),
        bar_interval_ms: BAR_MS,
        store,
        venue,
        strategies,
        clock,
        startup_deadline: actors::patience::DEFAULT_STARTUP_DEADLINE,
        equity_interval: std::time::Duration::from_secs(60),
        universe: None,
    };
    start_engine(setup).await.expect("engine starts")
}

/// Ticks the venue until `done` says the events seen so far are enough (bounded).
pub async fn drive(
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
