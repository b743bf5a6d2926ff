//! StrategyHost: runs one strategy instance live.
//!
//! It feeds the strategy market events, fills and order updates through the
//! same [`StrategyRunner`] the backtest uses, and sends the intents it produces
//! to the risk guard. A panicking strategy is paused by the runner; the host
//! logs it, publishes it and keeps running.

use std::collections::HashMap;
use std::time::Instant;

use actix::prelude::*;
use keel_core::clock::SharedClock;
use keel_core::strategy::{StrategyFailure, StrategyRunner};
use keel_core::{StrategyId, Symbol};
use tokio::sync::broadcast;

use crate::deliver;
use crate::events::EngineEvent;
use crate::messages::{
    CancelOrder, FillRecorded, FuturesTick, GetStrategyStatus, IntentSubmitted, MarketTick, OrderUpdated, SetPaused,
    SignalReceived,
};
use crate::metrics::metrics;
use crate::strategy_pnl::StrategyPnl;

/// What a host reports about its strategy.
#[derive(Debug, Clone, serde::Serialize)]
pub struct StrategyStatus {
    /// Instance id.
    pub id: StrategyId,
    /// Kind.
    pub kind: String,
    /// Symbols.
    pub symbols: Vec<Symbol>,
    /// True while paused.
    pub paused: bool,
    /// Why it was paused by a failure, if it was.
    pub failure: Option<String>,
    /// Its PnL from the engine's own ledger (filled in by
    /// [`crate::handle::EngineHandle::strategies`], which holds the account
    /// and the prices).
    #[serde(flatten)]
    pub pnl: StrategyPnl,
}

/// Where a host sends what its strategy asks for, fixed at construction.
pub struct HostRoutes {
    /// The risk guard: order intents.
    pub intents: Recipient<IntentSubmitted>,
    /// The risk guard: cancels of the strategy's own orders.
    pub cancels: Recipient<CancelOrder>,
}

/// The actor hosting one strategy.
pub struct StrategyHost {
    runner: StrategyRunner,
    routes: HostRoutes,
    clock: SharedClock,
    events: broadcast::Sender<EngineEvent>,
    /// Open time of the last bar seen per symbol: a bar is delivered exactly once.
    last_bar: HashMap<Symbol, i64>,
}

impl StrategyHost {
    /// A host for a warmed-up runner that has adopted its orders (anything
    /// it asked for then goes out when the host starts).
    pub fn new(
        runner: StrategyRunner,
        routes: HostRoutes,
        clock: SharedClock,
        events: broadcast::Sender<EngineEvent>,
        last_bar: HashMap<Symbol, i64>,
    ) -> Self {
        metrics().strategy_paused.with_label_values(&[runner.id().as_str()]).set(i64::from(runner.is_paused()));
        Self { runner, routes, clock, events, last_bar }
    }

    fn forward(&mut self, result: Result<usize, StrategyFailure>, ingress: Option<Instant>, ctx: &mut Context<Self>) {
        match result {
            Ok(0) => {}
            Ok(_) => {
                for alert in self.runner.drain_alerts() {
                    tracing::info!(strategy = %alert.strategy_id, symbol = %alert.symbol, condition = %alert.condition, message = %alert.message, "setup alert");
                    metrics().setup_alerts_total.with_label_values(&[alert.condition.as_str()]).inc();
                    let _ = self.events.send(EngineEvent::SetupAlert(alert));
                }
                let strategy_id = self.runner.id().clone();
                for client_order_id in self.runner.drain_cancels() {
                    let msg = CancelOrder { strategy_id: strategy_id.clone(), client_order_id };
                    deliver::must(&self.routes.cancels, msg, "risk_guard");
                }
                let intents: Vec<_> = self.runner.drain_intents().collect();
                for intent in intents {
                    let msg = IntentSubmitted { intent, ingress };
                    // The risk guard's mailbox is bounded; when it is full, wait
                    // for room rather than drop or grow without bound.
                    if let Err(SendError::Full(msg)) = self.routes.intents.try_send(msg) {
                        let risk = self.routes.intents.clone();
                        ctx.wait(
                            async move {
                                let _ = risk.send(msg).await;
                            }
                            .into_actor(self),
                        );
                    }
                }
            }
            Err(failure) => {
                tracing::error!(strategy = %failure.strategy_id, error = %failure.message, "strategy panicked; it is paused, the rest of the engine keeps trading");
                metrics().strategy_failures_total.with_label_values(&[failure.strategy_id.as_str()]).inc();
                metrics().strategy_paused.with_label_values(&[failure.strategy_id.as_str()]).set(1);
                let _ = self.events.send(EngineEvent::StrategyPaused {
                    strategy_id: failure.strategy_id.clone(),
                    reason: format!("panicked: {}", failure.message),
                });
            }
        }
    }
}

impl Actor for StrategyHost {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(4096);
        tracing::info!(strategy = %self.runner.id(), kind = self.runner.kind(), paused = self.runner.is_paused(), "strategy host started");
        // What the strategy asked for while adopting its orders at start.
        self.forward(Ok(1), None, ctx);
    }
}

impl Supervised for StrategyHost {
    fn restarting(&mut self, _ctx: &mut Self::Context) {
        tracing::warn!(strategy = %self.runner.id(), "strategy host restarting; its strategy state is kept");
    }
}

impl Handler<MarketTick> for StrategyHost {
    type Result = ();

    fn handle(&mut self, msg: MarketTick, ctx: &mut Self::Context) {
        if let keel_core::market::MarketEvent::Bar(bar) = &msg.event {
            let last = self.last_bar.entry(bar.symbol.clone()).or_insert(i64::MIN);
            if bar.open_time <= *last {
                return;
            }
            *last = bar.open_time;
        }
        metrics().market_events_total.inc();
        let result = self.runner.on_market(&msg.event, self.clock.now_ms());
        self.forward(result, Some(msg.ingress), ctx);
    }
}

impl Handler<FuturesTick> for StrategyHost {
    type Result = ();

    fn handle(&mut self, msg: FuturesTick, ctx: &mut Self::Context) {
        let result = self.runner.on_futures(&msg.0, self.clock.now_ms());
        self.forward(result, None, ctx);
    }
}

impl Handler<FillRecorded> for StrategyHost {
    type Result = ();

    fn handle(&mut self, msg: FillRecorded, ctx: &mut Self::Context) {
        let result = self.runner.on_fill(&msg.0, self.clock.now_ms());
        self.forward(result, None, ctx);
    }
}

impl Handler<OrderUpdated> for StrategyHost {
    type Result = ();

    fn handle(&mut self, msg: OrderUpdated, ctx: &mut Self::Context) {
        let result = self.runner.on_order_update(&msg.0, self.clock.now_ms());
        self.forward(result, None, ctx);
    }
}

impl Handler<SignalReceived> for StrategyHost {
    type Result = ();

    fn handle(&mut self, msg: SignalReceived, ctx: &mut Self::Context) {
        let result = self.runner.on_signal(&msg.0, self.clock.now_ms());
        self.forward(result, None, ctx);
    }
}

impl Handler<SetPaused> for StrategyHost {
    type Result = bool;

    fn handle(&mut self, msg: SetPaused, _ctx: &mut Self::Context) -> bool {
        let id = self.runner.id().clone();
        self.runner.set_paused(msg.paused);
        metrics().strategy_paused.with_label_values(&[id.as_str()]).set(i64::from(msg.paused));
        tracing::info!(strategy = %id, paused = msg.paused, reason = %msg.reason, "strategy paused state changed");
        let event = if msg.paused {
            EngineEvent::StrategyPaused { strategy_id: id, reason: msg.reason }
        } else {
            EngineEvent::StrategyResumed { strategy_id: id }
        };
        let _ = self.events.send(event);
        true
    }
}

impl Handler<GetStrategyStatus> for StrategyHost {
    type Result = MessageResult<GetStrategyStatus>;

    fn handle(&mut self, _msg: GetStrategyStatus, _ctx: &mut Self::Context) -> Self::Result {
        MessageResult(StrategyStatus {
            id: self.runner.id().clone(),
            kind: self.runner.kind().to_string(),
            symbols: self.runner.symbols().to_vec(),
            paused: self.runner.is_paused(),
            failure: self.runner.failure().map(str::to_string),
            pnl: StrategyPnl::default(),
        })
    }
}
