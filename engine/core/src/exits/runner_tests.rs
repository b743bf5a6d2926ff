//! The exit logic inside a live-mode `StrategyRunner`: legs at the venue,
//! engine-side triggers, held strategy sells, refusals and re-adoption.

use std::str::FromStr;
use std::sync::{Arc, Mutex};

use rust_decimal::Decimal;

use super::*;
use crate::config::DurationMs;
use crate::fill::Fill;
use crate::instrument::Instrument;
use crate::market::{MarketEvent, Trade};
use crate::order::{Order, OrderIntent, OrderStatus, OrderType, Side};
use crate::strategy::{OrderUpdate, Signal, SignalAction, Strategy, StrategyCtx, StrategyRunner};
use crate::symbol::Symbol;

fn d(s: &str) -> Decimal {
    Decimal::from_str(s).unwrap()
}

/// Buys / sells on a signal; `Close` with a quantity moves its stop there.
struct Scripted {
    updates: Arc<Mutex<Vec<OrderUpdate>>>,
}

impl Strategy for Scripted {
    fn kind(&self) -> &'static str {
        "scripted"
    }
    fn symbols(&self) -> Vec<Symbol> {
        vec!["BTCUSDT".into()]
    }
    fn on_signal(&mut self, signal: &Signal, ctx: &mut StrategyCtx<'_>) {
        let qty = signal.qty.unwrap_or(Decimal::ONE);
        match signal.action {
            SignalAction::Buy => ctx.market(&signal.symbol, Side::Buy, qty),
            SignalAction::Sell => ctx.market(&signal.symbol, Side::Sell, qty),
            SignalAction::Close => {
                ctx.set_stop(&signal.symbol, qty);
            }
        }
    }
    fn on_order_update(&mut self, update: &OrderUpdate, _ctx: &mut StrategyCtx<'_>) {
        self.updates.lock().unwrap().push(update.clone());
    }
}

fn btc() -> Instrument {
    Instrument::with_steps("BTCUSDT".into(), "BTC".into(), "USDT".into(), d("0.01"), d("0.001"))
}

/// An `exits = { ... }` table, validated.
fn parse(spec: &str) -> ExitSpec {
    #[derive(serde::Deserialize)]
    struct H {
        exits: ExitSpec,
    }
    let mut h: H = toml::from_str(&format!("exits = {spec}")).unwrap();
    h.exits.validate("exits").unwrap();
    h.exits
}

struct Rig {
    runner: StrategyRunner,
    updates: Arc<Mutex<Vec<OrderUpdate>>>,
    next_trade: u64,
    now: i64,
}

impl Rig {
    fn new(spec: &str) -> Self {
        let updates = Arc::new(Mutex::new(Vec::new()));
        let runner = StrategyRunner::new("s".into(), Box::new(Scripted { updates: updates.clone() }))
            .with_instruments(&[btc()])
            .with_exits(parse(spec));
        Self { runner, updates, next_trade: 1, now: 1_000 }
    }

    fn out(&mut self) -> (Vec<OrderIntent>, Vec<String>) {
        (self.runner.drain_intents().collect(), self.runner.drain_cancels().collect())
    }

    fn signal(&mut self, action: SignalAction, qty: &str) -> (Vec<OrderIntent>, Vec<String>) {
        let s = Signal { symbol: "BTCUSDT".into(), action, qty: Some(d(qty)) };
        self.runner.on_signal(&s, self.now).unwrap();
        self.out()
    }

    fn fill(&mut self, cid: &str, side: Side, price: &str, qty: &str) -> (Vec<OrderIntent>, Vec<String>) {
        let f = Fill {
            trade_id: self.next_trade.into(),
            client_order_id: cid.into(),
            strategy_id: "s".into(),
            symbol: "BTCUSDT".into(),
            side,
            price: d(price),
            qty: d(qty),
            fee: Decimal::ZERO,
            fee_asset: "USDT".into(),
            is_maker: false,
            ts_ms: self.now,
            tag: None,
        };
        self.next_trade += 1;
        self.runner.on_fill(&f, self.now).unwrap();
        self.out()
    }

    fn update(
        &mut self,
        cid: Option<&str>,
        side: Side,
        status: OrderStatus,
        exit: Option<ExitLeg>,
        reason: Option<&str>,
    ) -> (Vec<OrderIntent>, Vec<String>) {
        let u = OrderUpdate {
            client_order_id: cid.map(str::to_string),
            symbol: "BTCUSDT".into(),
            side,
            status,
            filled_qty: Decimal::ZERO,
            reason: reason.map(str::to_string),
            tag: None,
            exit,
        };
        self.runner.on_order_update(&u, self.now).unwrap();
        self.out()
    }

    fn price(&mut self, price: &str) -> (Vec<OrderIntent>, Vec<String>) {
        let t = Trade {
            symbol: "BTCUSDT".into(),
            trade_id: 0,
            price: d(price),
            qty: Decimal::ONE,
            aggressor: Side::Buy,
            ts_ms: self.now,
        };
        self.runner.on_market(&MarketEvent::Trade(t), self.now).unwrap();
        self.out()
    }

    /// Buys 1 at 100 as order `e1` and returns what the exit logic sent.
    fn enter(&mut self) -> (Vec<OrderIntent>, Vec<String>) {
        let (intents, _) = self.signal(SignalAction::Buy, "1");
        assert_eq!(intents.len(), 1);
        self.update(Some("e1"), Side::Buy, OrderStatus::Submitted, None, None);
        let out = self.fill("e1", Side::Buy, "100", "1");
        self.update(Some("e1"), Side::Buy, OrderStatus::Filled, None, None);
        out
    }
}

const FULL: &str = r#"{ stop_loss = "3%", take_profit = "6%", trailing_stop = { activate = "2%", distance = "1%" }, max_hold = "1h" }"#;

#[test]
fn venue_placement_rests_an_oco_and_a_trailing_stop_cancels_it_before_closing() {
    let mut rig = Rig::new(FULL);
    let (intents, _) = rig.enter();
    assert_eq!(intents.len(), 1, "{intents:?}");
    let oco = &intents[0];
    assert_eq!((oco.side, oco.qty, oco.reduce_only, oco.exit), (Side::Sell, d("1"), true, Some(ExitLeg::Oco)));
    assert_eq!(oco.order_type, OrderType::Oco { take_profit: d("106"), stop: d("97"), stop_limit: None });
    rig.update(Some("x1"), Side::Sell, OrderStatus::Accepted, Some(ExitLeg::Oco), None);
    assert!(rig.updates.lock().unwrap().iter().all(|u| u.exit.is_none()), "exit updates do not reach the strategy");
    assert_eq!(rig.runner.exposure("BTCUSDT").pending_orders, 0, "exit orders are not the strategy's");
    // The stop is at the venue: a price under it does nothing engine-side.
    assert_eq!(rig.price("96"), (vec![], vec![]));
    // Up to 105 arms the trailing stop (best 105, level 103.95); 103.9 fires it.
    assert_eq!(rig.price("105"), (vec![], vec![]));
    let (intents, cancels) = rig.price("103.9");
    assert_eq!((intents, cancels), (vec![], vec!["x1".to_string()]), "the leg is canceled first");
    assert_eq!(rig.price("103"), (vec![], vec![]), "one trigger, one cancel");
    let (intents, _) = rig.update(Some("x1"), Side::Sell, OrderStatus::Canceled, Some(ExitLeg::Oco), None);
    assert_eq!(intents.len(), 1);
    assert_eq!(intents[0].exit, Some(ExitLeg::Close(ExitReason::TrailingStop)));
    assert_eq!((intents[0].order_type, intents[0].qty, intents[0].reduce_only), (OrderType::Market, d("1"), true));
    rig.update(Some("c1"), Side::Sell, OrderStatus::Submitted, intents[0].exit, None);
    rig.fill("c1", Side::Sell, "103.5", "1");
    rig.update(Some("c1"), Side::Sell, OrderStatus::Filled, intents[0].exit, None);
    let events = rig.runner.drain_exit_events();
    assert_eq!(events.len(), 1);
    assert_eq!((events[0].reason, events[0].qty, events[0].price), (ExitReason::TrailingStop, d("1"), d("103.5")));
    assert_eq!(events[0].profit_pct(), d("3.5"));
    assert!(rig.runner.exit_states().is_empty(), "a closed position has no state");
    let changes = rig.runner.drain_exit_changes();
    assert_eq!(changes, vec![("BTCUSDT".into(), None)], "the store deletes it");
}

#[test]
fn a_filled_oco_is_reported_by_the_leg_its_price_says() {
    for (price, want) in [("106", ExitReason::TakeProfit), ("96.9", ExitReason::StopLoss)] {
        let mut rig = Rig::new(FULL);
        rig.enter();
        rig.update(Some("x1"), Side::Sell, OrderStatus::Accepted, Some(ExitLeg::Oco), None);
        let (intents, cancels) = rig.fill("x1", Side::Sell, price, "1");
        assert_eq!((intents, cancels), (vec![], vec![]), "a filled leg needs nothing more");
        rig.update(Some("x1"), Side::Sell, OrderStatus::Filled, Some(ExitLeg::Oco), None);
        let events = rig.runner.drain_exit_events();
        assert_eq!(events.iter().map(|e| e.reason).collect::<Vec<_>>(), [want], "{price}");
        assert!(rig.runner.exit_states().is_empty());
    }
}

#[test]
fn a_strategy_sell_waits_for_the_leg_and_the_leg_follows_the_rest() {
    let mut rig = Rig::new(r#"{ stop_loss = "3%" }"#);
    let (intents, _) = rig.enter();
    assert_eq!(intents[0].order_type, OrderType::StopMarket { stop: d("97") });
    rig.update(Some("x1"), Side::Sell, OrderStatus::Accepted, Some(ExitLeg::Stop), None);
    let (intents, cancels) = rig.signal(SignalAction::Sell, "0.4");
    assert_eq!((intents.len(), cancels), (0, vec!["x1".to_string()]), "held while the leg locks the balance");
    assert_eq!(rig.runner.exposure("BTCUSDT").pending_orders, 1, "still the strategy's order in flight");
    let (intents, _) = rig.update(Some("x1"), Side::Sell, OrderStatus::Canceled, Some(ExitLeg::Stop), None);
    assert_eq!(intents.len(), 1);
    assert_eq!((intents[0].exit, intents[0].qty), (None, d("0.4")), "the strategy's sell, released");
    rig.update(Some("e2"), Side::Sell, OrderStatus::Submitted, None, None);
    assert_eq!(rig.fill("e2", Side::Sell, "101", "0.4"), (vec![], vec![]), "no leg while the sell is out");
    let (intents, _) = rig.update(Some("e2"), Side::Sell, OrderStatus::Filled, None, None);
    assert_eq!(intents.len(), 1);
    assert_eq!((intents[0].exit, intents[0].qty), (Some(ExitLeg::Stop), d("0.6")), "placed again for the rest");
    let events = rig.runner.drain_exit_events();
    assert_eq!((events[0].reason, events[0].qty), (ExitReason::Signal, d("0.4")));
}

#[test]
fn refusals_fall_back_without_looping() {
    // The venue refuses the leg: stop and take-profit go engine-side.
    let mut rig = Rig::new(FULL);
    rig.enter();
    let (intents, _) =
        rig.update(None, Side::Sell, OrderStatus::Rejected, Some(ExitLeg::Oco), Some("venue: OCO not supported"));
    assert_eq!(intents, vec![], "not placed again");
    assert_eq!(rig.price("100"), (vec![], vec![]));
    assert!(rig.runner.exit_states()[0].venue_refused);
    let (intents, _) = rig.price("96.99");
    assert_eq!(intents[0].exit, Some(ExitLeg::Close(ExitReason::StopLoss)));

    // The risk guard refuses it: tried again a minute later, not before.
    let mut rig = Rig::new(FULL);
    rig.enter();
    rig.update(None, Side::Sell, OrderStatus::Rejected, Some(ExitLeg::Oco), Some("risk: emergency stop"));
    rig.now += RISK_RETRY_MS - 1;
    assert_eq!(rig.price("100"), (vec![], vec![]));
    rig.now += 1;
    let (intents, _) = rig.price("100");
    assert_eq!(intents.iter().map(|i| i.exit).collect::<Vec<_>>(), [Some(ExitLeg::Oco)]);
}

#[test]
fn max_hold_and_engine_placement_close_without_a_leg() {
    let mut rig = Rig::new(r#"{ stop_loss = "3%", max_hold = "1h", placement = "engine" }"#);
    assert_eq!(rig.enter(), (vec![], vec![]), "nothing rests at the venue");
    rig.now += 3_600_000 - 1;
    assert_eq!(rig.price("100"), (vec![], vec![]));
    rig.now += 1;
    let (intents, _) = rig.price("100");
    assert_eq!(intents[0].exit, Some(ExitLeg::Close(ExitReason::MaxHold)));
    assert_eq!(rig.price("90"), (vec![], vec![]), "one close at a time");
}

#[test]
fn a_strategy_moves_its_stop_and_the_leg_is_replaced() {
    let mut rig = Rig::new(r#"{ stop_loss = "3%" }"#);
    rig.enter();
    rig.update(Some("x1"), Side::Sell, OrderStatus::Accepted, Some(ExitLeg::Stop), None);
    let (intents, cancels) = rig.signal(SignalAction::Close, "100");
    assert_eq!((intents, cancels), (vec![], vec!["x1".to_string()]));
    let (intents, _) = rig.update(Some("x1"), Side::Sell, OrderStatus::Canceled, Some(ExitLeg::Stop), None);
    assert_eq!(intents[0].order_type, OrderType::StopMarket { stop: d("100") });
    assert_eq!(rig.runner.exit_states()[0].stop_price, Some(d("100")));
}

#[test]
fn a_restart_keeps_one_exit_set_per_position() {
    let mut rig = Rig::new(FULL);
    let (intents, _) = rig.enter();
    rig.update(Some("x1"), Side::Sell, OrderStatus::Accepted, Some(ExitLeg::Oco), None);
    let saved = rig.runner.exit_states();
    let leg = Order::from_intent(&intents[0], "x1".into(), 0);
    let mut extra = Order::from_intent(&intents[0], "x9".into(), 0);
    extra.status = OrderStatus::Accepted;
    let restart = |open: &[Order]| {
        let mut again = Rig::new(FULL);
        again.runner.restore_position("BTCUSDT".into(), d("1"));
        again.runner.restore_exits(saved.clone());
        again.runner.adopt(open, 2_000).unwrap();
        let out = again.out();
        (again, out)
    };
    // Its leg still rests: nothing new; a second exit set is canceled.
    let (_, out) = restart(&[leg.clone(), extra.clone()]);
    assert_eq!(out, (vec![], vec!["x9".to_string()]));
    // The leg is gone (filled or canceled while down) but the position is there: placed again.
    let (_, (intents, _)) = restart(&[]);
    assert_eq!(intents.iter().map(|i| i.exit).collect::<Vec<_>>(), [Some(ExitLeg::Oco)]);
    // An exit order the state does not know (saved before its id came back) is adopted.
    let mut unknown = saved.clone();
    unknown[0].leg.as_mut().unwrap().client_order_id = None;
    let mut again = Rig::new(FULL);
    again.runner.restore_position("BTCUSDT".into(), d("1"));
    again.runner.restore_exits(unknown);
    again.runner.adopt(&[extra], 2_000).unwrap();
    assert_eq!(again.out(), (vec![], vec![]));
    assert_eq!(again.runner.exit_states()[0].leg.as_ref().unwrap().client_order_id.as_deref(), Some("x9"));
    let _ = DurationMs(0);
}

/// Attaches its own exits to each entry, and removes them on a sell signal.
struct Attacher;

impl Strategy for Attacher {
    fn kind(&self) -> &'static str {
        "attacher"
    }
    fn symbols(&self) -> Vec<Symbol> {
        vec!["BTCUSDT".into()]
    }
    fn on_signal(&mut self, signal: &Signal, ctx: &mut StrategyCtx<'_>) {
        match signal.action {
            SignalAction::Buy => ctx.market(&signal.symbol, Side::Buy, Decimal::ONE),
            _ => assert!(ctx.remove_exits(&signal.symbol)),
        }
    }
    fn on_fill(&mut self, fill: &Fill, ctx: &mut StrategyCtx<'_>) {
        if fill.side == Side::Buy {
            let spec = ExitSpec { stop_loss: Some(Pct(d("0.02"))), ..ExitSpec::default() };
            assert!(ctx.attach_exits(&fill.symbol, spec));
            assert_eq!(ctx.exits(&fill.symbol).map(|e| e.entry_price), Some(fill.price));
        }
    }
}

#[test]
fn a_strategy_without_configured_exits_attaches_and_removes_its_own() {
    let mut rig = Rig::new(FULL);
    rig.runner = StrategyRunner::new("s".into(), Box::new(Attacher)).with_instruments(&[btc()]);
    assert!(rig.runner.exit_states().is_empty());
    rig.signal(SignalAction::Buy, "1");
    let (intents, _) = rig.fill("e1", Side::Buy, "200", "1");
    assert_eq!(intents.len(), 1, "its stop rests at the venue");
    assert_eq!(
        (intents[0].order_type, intents[0].exit),
        (OrderType::StopMarket { stop: d("196") }, Some(ExitLeg::Stop))
    );
    assert_eq!(rig.runner.drain_exit_changes().len(), 1, "kept for the store once attached");
    rig.update(Some("x1"), Side::Sell, OrderStatus::Accepted, Some(ExitLeg::Stop), None);
    let (intents, cancels) = rig.signal(SignalAction::Close, "1");
    assert_eq!((intents, cancels), (vec![], vec!["x1".to_string()]), "removed: its stop is canceled");
    assert_eq!(rig.update(Some("x1"), Side::Sell, OrderStatus::Canceled, Some(ExitLeg::Stop), None), (vec![], vec![]));
    assert_eq!(rig.price("100"), (vec![], vec![]), "no exits any more");
}

#[test]
fn a_late_report_of_a_final_leg_is_not_taken_for_its_successor() {
    let mut rig = Rig::new(r#"{ stop_loss = "3%" }"#);
    rig.enter();
    rig.update(Some("x1"), Side::Sell, OrderStatus::Accepted, Some(ExitLeg::Stop), None);
    // The position grows: the stop is replaced (canceled, then placed for 2).
    rig.signal(SignalAction::Buy, "1");
    let (_, cancels) = rig.fill("e2", Side::Buy, "100", "1");
    assert_eq!(cancels, ["x1"]);
    let (intents, _) = rig.update(Some("x1"), Side::Sell, OrderStatus::Canceled, Some(ExitLeg::Stop), None);
    assert_eq!((intents[0].exit, intents[0].qty), (Some(ExitLeg::Stop), d("2")));
    // The old stop's cancel reported again before the new one's id is known: ignored.
    assert_eq!(rig.update(Some("x1"), Side::Sell, OrderStatus::Canceled, Some(ExitLeg::Stop), None), (vec![], vec![]));
    rig.update(Some("x2"), Side::Sell, OrderStatus::Accepted, Some(ExitLeg::Stop), None);
    let leg = rig.runner.exit_states()[0].leg.clone().unwrap();
    assert_eq!((leg.client_order_id.as_deref(), leg.qty), (Some("x2"), d("2")));
}

/// Sells whatever it holds at start.
struct SellsAtStart;

impl Strategy for SellsAtStart {
    fn kind(&self) -> &'static str {
        "sells_at_start"
    }
    fn symbols(&self) -> Vec<Symbol> {
        vec!["BTCUSDT".into()]
    }
    fn on_start(&mut self, _open: &[Order], ctx: &mut StrategyCtx<'_>) {
        let held = ctx.position("BTCUSDT");
        ctx.market(&"BTCUSDT".into(), Side::Sell, held);
    }
}

#[test]
fn a_paused_strategy_starts_with_its_exits_and_without_its_sells() {
    let mut rig = Rig::new(FULL);
    rig.enter();
    rig.update(Some("x1"), Side::Sell, OrderStatus::Accepted, Some(ExitLeg::Oco), None);
    let saved = rig.runner.exit_states();
    let mut runner =
        StrategyRunner::new("s".into(), Box::new(SellsAtStart)).with_instruments(&[btc()]).with_exits(parse(FULL));
    runner.restore_position("BTCUSDT".into(), d("1"));
    runner.restore_exits(saved);
    runner.set_paused(true);
    // Its OCO is gone (filled parts, canceled by hand): placed again; the sell is discarded.
    runner.adopt(&[], 2_000).unwrap();
    let intents: Vec<OrderIntent> = runner.drain_intents().collect();
    let cancels: Vec<String> = runner.drain_cancels().collect();
    assert_eq!(intents.iter().map(|i| i.exit).collect::<Vec<_>>(), [Some(ExitLeg::Oco)], "{intents:?}");
    assert_eq!(cancels, Vec::<String>::new());
    let accepted = OrderUpdate {
        client_order_id: Some("x2".into()),
        symbol: "BTCUSDT".into(),
        side: Side::Sell,
        status: OrderStatus::Accepted,
        filled_qty: Decimal::ZERO,
        reason: None,
        tag: None,
        exit: Some(ExitLeg::Oco),
    };
    runner.on_order_update(&accepted, 2_001).unwrap();
    assert_eq!(runner.drain_cancels().count(), 0, "the new leg is not canceled for a sell that never leaves");
    assert_eq!(runner.exit_states()[0].leg.as_ref().map(|l| l.canceling), Some(false));
}
