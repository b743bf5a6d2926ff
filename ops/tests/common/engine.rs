//! The engine in the test's own process on an in-process sandbox: one
//! strategy on BTCUSDT, its store in a temp dir, and the waits and sums
//! the tests of its orders share.

use std::sync::Arc;
use std::time::Duration;

use actors::{start_engine, EngineHandle, EngineSetup};
use keel_binance::BinanceVenue;
use keel_core::clock::{SharedClock, SystemClock};
use keel_core::config::StrategyConfig;
use keel_core::fill::Fill;
use keel_core::order::Side;
use keel_core::store::SharedStore;
use keel_core::strategy::Strategy;
use keel_core::{Decimal, Symbol};
use keel_store::SledStore;

/// The risk limits of [`engine_with`]: wide, every other check as by default.
pub fn risk() -> risk::config::RiskConfig {
    toml::from_str("max_order_notional = \"100000\"\nmax_position_notional = \"1000000\"").expect("risk config")
}

/// The engine on the venue `settings` name (a sandbox's, with its key and
/// transport) with `strategy` on BTCUSDT (id and kind: its kind), its store
/// in a temp dir (kept while the returned dir lives).
pub async fn engine_with(
    settings: keel_binance::BinanceSettings,
    strategy: Box<dyn Strategy>,
) -> (EngineHandle, SharedStore, tempfile::TempDir) {
    let venue = Arc::new(BinanceVenue::connect(settings).await.expect("adapter connects"));
    let dir = tempfile::tempdir().expect("temp dir");
    let store: SharedStore = Arc::new(SledStore::open(dir.path()).expect("store"));
    let config: StrategyConfig =
        toml::from_str(&format!("id = \"{0}\"\nkind = \"{0}\"\nsymbol = \"BTCUSDT\"", strategy.kind()))
            .expect("strategy config");
    let clock: SharedClock = Arc::new(SystemClock);
    let setup = EngineSetup {
        symbols: vec![Symbol::new("BTCUSDT")],
        risk: risk(),
        bar_interval_ms: 60_000,
        store: store.clone(),
        venue,
        strategies: vec![(config, strategy)],
        clock,
        startup_deadline: actors::patience::DEFAULT_STARTUP_DEADLINE,
        equity_interval: Duration::from_secs(60),
        universe: None,
    };
    (start_engine(setup).await.expect("engine starts"), store, dir)
}

/// Polls `done` every 20 ms for up to 20 s.
pub async fn within_20s<F: std::future::Future<Output = bool>>(mut done: impl FnMut() -> F) -> bool {
    tokio::time::timeout(Duration::from_secs(20), async {
        while !done().await {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .is_ok()
}

/// What a market order can sell of the coins the buys among `fills`
/// brought: their quantity less a fee taken in BTC (as the sandbox takes
/// it), rounded down to BTCUSDT's lot step.
pub fn sellable(fills: &[Fill]) -> Decimal {
    let received: Decimal = fills
        .iter()
        .filter(|f| f.side == Side::Buy)
        .map(|f| if f.fee_asset == "BTC" { f.qty - f.fee } else { f.qty })
        .sum();
    let step = Decimal::new(1, 5);
    (received / step).floor() * step
}

/// Waits (20 s at most) until the operator's flatten has a fill and no
/// order is working; false if it did not come to that.
pub async fn flattened(handle: &EngineHandle, store: &SharedStore) -> bool {
    within_20s(|| async {
        !operator_fills(store).is_empty() && handle.open_orders().await.expect("router answers").is_empty()
    })
    .await
}

/// The fills of the operator's orders (a flatten's).
pub fn operator_fills(store: &SharedStore) -> Vec<Fill> {
    let fills = store.fills().expect("fills");
    fills.into_iter().filter(|f| f.strategy_id.as_str() == actors::risk_guard::OPERATOR).collect()
}
