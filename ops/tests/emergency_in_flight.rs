//! The emergency stop stops an order already on its way (issue 11, finding
//! 1). The venue is slow to take orders: each request waits 1.5 s before it
//! reaches the matching engine, so the stop lands between approval and
//! acknowledgement, and the cancels it sends reach the venue before the
//! orders do (Binance answers those "unknown order"). Afterwards no order
//! rests at the venue, and nothing is sent after the stop.
//!
//! A flatten with the stop waits for the cancels (finding 3): a resting sell
//! no longer blocks it, and it sells exactly what is held.

mod common;

use std::time::Duration;

use common::engine::{engine_with, flattened, operator_fills, sellable, within_20s};
use keel_core::market::Bar;
use keel_core::order::{OrderStatus, Side};
use keel_core::strategy::{Strategy, StrategyCtx};
use keel_core::{Decimal, Symbol};
use keel_sandbox::{OrderFault, Sandbox, SandboxConfig};

/// Rests three limit buys below the market on its first bar.
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
            for pct in [97, 96, 95] {
                let price = (bar.close * Decimal::new(pct, 2)).round_dp(2);
                ctx.limit(&bar.symbol, Side::Buy, Decimal::new(1, 3), price);
            }
        }
    }
}

/// Client ids of the orders working at the venue.
fn open_at(sb: &keel_sandbox::SandboxHandle) -> Vec<String> {
    sb.market
        .orders(&sb.api_key, "BTCUSDT")
        .into_iter()
        .filter(|o| o.status.is_open())
        .map(|o| o.client_order_id)
        .collect()
}

/// Orders the venue received, over either transport.
fn orders_posted(sb: &keel_sandbox::SandboxHandle) -> usize {
    sb.faults.rest_requests().iter().filter(|r| r.as_str() == "POST /api/v3/order").count()
        + sb.faults.ws_api_requests().iter().filter(|m| m.as_str() == "order.place").count()
}

#[actix_rt::test]
async fn an_emergency_stop_between_approval_and_acknowledgement_leaves_nothing_resting() {
    stop_in_flight(false).await;
}

/// The same on the other transport: the HMAC key, orders over REST.
#[actix_rt::test]
async fn an_emergency_stop_between_approval_and_acknowledgement_leaves_nothing_resting_on_rest() {
    stop_in_flight(true).await;
}

async fn stop_in_flight(rest: bool) {
    let sb = Sandbox::start(SandboxConfig { history_bars: 30, ..SandboxConfig::demo() }).await.expect("sandbox");
    for _ in 0..3 {
        sb.faults.fail_next_order(OrderFault::DelayBeforeExecute { hold_ms: 1500 });
    }
    let settings = if rest { ops::venues::sandbox_settings_hmac_rest(&sb) } else { ops::venues::sandbox_settings(&sb) };
    let (handle, store, _dir) = engine_with(settings, Box::new(Rester(Symbol::new("BTCUSDT"), false))).await;

    // The three orders are sent and not yet acknowledged: the stop lands now.
    let sent = within_20s(|| async {
        let open = handle.open_orders().await.expect("router answers");
        open.len() == 3 && open.iter().all(|o| o.status == OrderStatus::Submitted)
    })
    .await;
    assert!(sent, "three orders in flight");
    let posted = orders_posted(&sb);
    handle.emergency_stop("test: stop with orders in flight", "operator:test", false).await.expect("stop set");

    // The router settles every one of them: canceled once the venue has them.
    let settled = within_20s(|| async {
        handle.open_orders().await.expect("router answers").is_empty() && open_at(&sb).is_empty()
    })
    .await;
    let router = handle.open_orders().await.expect("router answers");
    assert!(
        settled,
        "no order rests after the stop: at the venue {:?}, in the router {:?}",
        open_at(&sb),
        router.iter().map(|o| (&o.client_order_id, o.status)).collect::<Vec<_>>()
    );
    // The router writes each order's final status behind it: wait for the store.
    let recorded = within_20s(|| async {
        let stored = store.orders().expect("orders");
        stored.len() == 3 && stored.iter().all(|o| o.status == OrderStatus::Canceled)
    })
    .await;
    assert!(recorded, "every order is recorded canceled: {:?}", store.orders());
    assert_eq!(sb.market.orders(&sb.api_key, "BTCUSDT").len(), 3, "all three reached the venue, late");
    // Only the three that were on their way when the stop came.
    assert_eq!((posted, orders_posted(&sb)), (posted, 3), "no order is sent after the stop");
    let over_ws = sb.faults.ws_api_requests().iter().filter(|m| m.as_str() == "order.place").count();
    assert_eq!(over_ws, if rest { 0 } else { 3 }, "the orders went over the transport configured");
    handle.shutdown(Duration::from_millis(200)).await;
    sb.shutdown().await;
}

/// Buys 0.002 at market, then rests a limit sell of what it received above the market.
struct BuyThenRestSell(Symbol, u8);

impl Strategy for BuyThenRestSell {
    fn kind(&self) -> &'static str {
        "buy_then_rest_sell"
    }
    fn symbols(&self) -> Vec<Symbol> {
        vec![self.0.clone()]
    }
    fn on_bar(&mut self, bar: &Bar, ctx: &mut StrategyCtx<'_>) {
        let qty = Decimal::new(2, 3);
        if self.1 == 0 {
            self.1 = 1;
            ctx.market(&bar.symbol, Side::Buy, qty);
        } else if self.1 == 1 && ctx.position(bar.symbol.as_str()) > Decimal::ZERO {
            self.1 = 2;
            let qty = ctx.tradable(bar.symbol.as_str(), ctx.position(bar.symbol.as_str()));
            ctx.limit(&bar.symbol, Side::Sell, qty, (bar.close * Decimal::new(103, 2)).round_dp(2));
        }
    }
}

#[actix_rt::test]
async fn a_flatten_with_the_stop_waits_for_the_resting_sell_to_be_canceled_and_sells_exactly_the_holding() {
    let sb = Sandbox::start(SandboxConfig { history_bars: 30, ..SandboxConfig::demo() }).await.expect("sandbox");
    let strategy = Box::new(BuyThenRestSell(Symbol::new("BTCUSDT"), 0));
    let (handle, store, _dir) = engine_with(ops::venues::sandbox_settings(&sb), strategy).await;
    let resting = within_20s(|| async {
        handle
            .open_orders()
            .await
            .expect("router answers")
            .iter()
            .any(|o| o.side == Side::Sell && o.status == OrderStatus::Accepted)
    })
    .await;
    assert!(resting, "the sell rests: orders {:?}, fills {:?}", store.orders().ok(), store.fills().ok());
    let bought = store.fills().expect("fills");
    let held = sellable(&bought);
    assert!(held > Decimal::ZERO && held <= Decimal::new(2, 3), "{bought:?}");

    handle.emergency_stop("test: stop and flatten", "operator:test", true).await.expect("stop set");
    let flat = flattened(&handle, &store).await;
    let risk = handle.risk().await.expect("risk answers");
    assert!(flat, "the flatten sold after the cancel; refusals: {:?}", risk.rejections);
    let operator = operator_fills(&store);
    assert!(operator.iter().all(|f| f.side == Side::Sell), "{operator:?}");
    assert_eq!(operator.iter().map(|f| f.qty).sum::<Decimal>(), held, "exactly the holding: {:?}", store.fills());
    assert!(risk.rejections.is_empty(), "nothing was refused: {:?}", risk.rejections);
    let sell_canceled = within_20s(|| async {
        let orders = store.orders().expect("orders");
        orders
            .iter()
            .find(|o| o.strategy_id.as_str() == "buy_then_rest_sell" && o.side == Side::Sell)
            .is_some_and(|o| o.status == OrderStatus::Canceled)
    })
    .await;
    assert!(sell_canceled, "the resting sell is recorded canceled: {:?}", store.orders());
    assert!(open_at(&sb).is_empty());
    handle.shutdown(Duration::from_millis(200)).await;
    sb.shutdown().await;
}
