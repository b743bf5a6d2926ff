//! The live pipeline end to end, in process: real actors, a real sled store in a
//! temp dir, the paper venue driven tick by tick.

mod common;

use common::*;
use std::sync::Arc;

use actors::EngineEvent;
use keel_core::market::Bar;
use keel_core::order::Side;
use keel_core::store::SharedStore;
use keel_core::strategy::{Strategy, StrategyCtx};
use keel_core::trading::{EmergencyStop, TradingState};
use keel_core::venue::Venue;
use keel_core::{Decimal, Symbol};
use keel_store::SledStore;

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
    // The stop's cancels run after its acknowledgement: wait for the resting
    // order's cancel as well as a refused intent (either may come first).
    let id = resting[0].client_order_id.clone();
    let (mut canceled, mut refused) = (false, false);
    drive(&venue, &mut rx_cancel, |ev| {
        match ev {
            EngineEvent::OrderChanged(o) if o.client_order_id == id && o.status.is_terminal() => canceled = true,
            EngineEvent::RiskRejected { .. } => refused = true,
            _ => {}
        }
        canceled && refused
    })
    .await;
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
