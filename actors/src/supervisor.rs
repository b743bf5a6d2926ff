//! Start-up and supervision: loads the store, reconciles with the venue, starts
//! every actor under an actix `Supervisor` (a stopped actor is restarted with
//! its state), wires them, and watches them.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use keel_core::account::{AccountWriter, Assets};
use keel_core::clock::SharedClock;
use keel_core::config::StrategyConfig;
use keel_core::store::SharedStore;
use keel_core::strategy::{Strategy, StrategyRunner};
use keel_core::venue::{Venue, VenueAlert, VenueError};
use keel_core::{StrategyId, Symbol};
use risk::RiskEngine;
use tokio::sync::broadcast;

use crate::error::StartupError;
use crate::events::EngineEvent;
use crate::handle::EngineHandle;
use crate::ids::ClientIds;
use crate::market_data::MarketData;
use crate::messages::{AttachUserFeed, CancelAll, SetEmergencyStop, StopOrders};
use crate::order_router::{OrderRouter, RouterRoutes};
use crate::patience::{retrying, Patience};
use crate::portfolio::{EquityHistory, Portfolio};
use crate::prices::PriceBoard;
use crate::reconcile::reconcile;
use crate::risk_guard::{GuardRoutes, RiskGuard};
use crate::store_writer::StoreWriter;
use crate::strategy_host::{HostRoutes, StrategyHost};
use crate::universe::{
    warm_up, HostJoined, HostRegistry, HostRetired, InstanceLeaving, Remembered, Universe, UniverseRoutes,
    UniverseSetup, UniverseStart, WARM_UP_PAUSE,
};
use keel_core::universe::Selection;
use std::collections::BTreeMap;

/// The actors built inside the risk guard's start.
struct Started {
    router: Addr<OrderRouter>,
    portfolio: Addr<Portfolio>,
    hosts: Vec<(StrategyId, Addr<StrategyHost>)>,
    /// Each host with the symbols it trades (market data routes by them).
    routes: Vec<(StrategyId, Vec<Symbol>, Addr<StrategyHost>)>,
}

/// Everything needed to start the engine.
pub struct EngineSetup {
    /// The symbols to trade, in config order (the venue must list each).
    pub symbols: Vec<Symbol>,
    /// The risk limits and protections (`[risk]`).
    pub risk: risk::config::RiskConfig,
    /// The bar interval strategies trade on (ms), for warm-up history.
    pub bar_interval_ms: i64,
    /// The opened store.
    pub store: SharedStore,
    /// The venue (paper, or the Binance adapter).
    pub venue: Arc<dyn Venue>,
    /// Strategy instances built from the config, in config order.
    pub strategies: Vec<(StrategyConfig, Box<dyn Strategy>)>,
    /// The clock.
    pub clock: SharedClock,
    /// How long start-up retries what the venue refuses for a passing
    /// reason, and a reconciliation that cannot complete (`[engine] startup_deadline`).
    pub startup_deadline: Duration,
    /// How often equity is added to the store's history (`[store]
    /// equity_interval`; zero: never).
    pub equity_interval: Duration,
    /// Strategy templates on a universe of the venue's top symbols (`[universe]`).
    pub universe: Option<UniverseSetup>,
}

/// Watches the other actors and turns venue bans into an emergency stop.
pub struct Supervisor {
    risk: Addr<RiskGuard>,
    router: Addr<OrderRouter>,
    portfolio: Addr<Portfolio>,
    market: Addr<MarketData>,
    hosts: Vec<(StrategyId, Addr<StrategyHost>)>,
    events: broadcast::Sender<EngineEvent>,
    venue: Arc<dyn Venue>,
    writer: StoreWriter,
    clock: SharedClock,
    /// The actors found gone last time (said once per change).
    dead: Vec<String>,
    /// The supervisor has set the emergency stop for a dead core actor.
    failed_closed: bool,
}

/// The actors the engine cannot trade safely without: one gone for good
/// (it panicked; actix restarts only actors that stop) fails closed.
const CORE: [&str; 4] = ["risk_guard", "order_router", "portfolio", "market_data"];

impl Supervisor {
    /// A core actor is gone: set the emergency stop through the risk guard
    /// if it is there, else in the store and at the router directly; with the
    /// router gone, cancel at the venue from here.
    fn fail_closed(&mut self, gone: &[String], ctx: &mut Context<Self>) {
        self.failed_closed = true;
        let reason = format!("fail closed: core actor gone for good: {}", gone.join(", "));
        tracing::error!(actors = ?gone, "FAIL CLOSED: a core actor is gone; setting the emergency stop");
        let by = "engine:supervisor".to_string();
        if self.risk.connected() {
            self.risk.do_send(SetEmergencyStop { reason: reason.clone(), by: by.clone(), flatten: false });
        } else {
            crate::metrics::metrics().emergency_stop.set(1);
            let _ = self.events.send(EngineEvent::EmergencyStopSet { reason: reason.clone(), by: by.clone() });
            if self.router.connected() {
                self.router.do_send(StopOrders { active: true });
                self.router.do_send(CancelAll { symbol: None, reason: reason.clone() });
            }
            let (writer, now) = (self.writer.clone(), self.clock.now_ms());
            let (r, b) = (reason.clone(), by);
            ctx.spawn(
                async move {
                    match writer.run(move |s| risk::emergency::set(s, &r, &b, now)).await {
                        Ok(Ok(_)) => {}
                        Ok(Err(e)) => tracing::error!(error = %e, "EMERGENCY STOP COULD NOT BE PERSISTED"),
                        Err(e) => tracing::error!(error = %e, "EMERGENCY STOP COULD NOT BE PERSISTED"),
                    }
                }
                .into_actor(self),
            );
        }
        if !self.router.connected() {
            let (venue, writer) = (self.venue.clone(), self.writer.clone());
            ctx.spawn(
                async move {
                    if let Err(e) = cancel_all_at_venue(&venue, &writer, "after the order router died").await {
                        tracing::error!(error = %e, "cannot read the store's open orders to cancel them");
                    }
                }
                .into_actor(self),
            );
        }
    }
}

impl Actor for Supervisor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.run_interval(Duration::from_secs(1), |act, ctx| {
            if let Some(w) = act.venue.used_weight() {
                crate::metrics::metrics().venue_used_weight.set(i64::try_from(w).unwrap_or(i64::MAX));
            }
            let mut dead = Vec::new();
            if !act.risk.connected() {
                dead.push("risk_guard".to_string());
            }
            if !act.router.connected() {
                dead.push("order_router".to_string());
            }
            if !act.portfolio.connected() {
                dead.push("portfolio".to_string());
            }
            if !act.market.connected() {
                dead.push("market_data".to_string());
            }
            for (id, h) in &act.hosts {
                if !h.connected() {
                    dead.push(format!("strategy_host:{id}"));
                }
            }
            if dead != act.dead {
                if !dead.is_empty() {
                    tracing::error!(actors = ?dead, "actors are gone and cannot be restarted");
                }
                act.dead = dead.clone();
            }
            let core: Vec<String> = dead.into_iter().filter(|d| CORE.contains(&d.as_str())).collect();
            if !core.is_empty() && !act.failed_closed {
                act.fail_closed(&core, ctx);
            }
        });
        let mut rx = self.events.subscribe();
        let risk = self.risk.clone();
        ctx.spawn(
            async move {
                loop {
                    match rx.recv().await {
                        Ok(EngineEvent::VenueAlert(VenueAlert::Banned { retry_after_ms })) => {
                            let msg = SetEmergencyStop {
                                reason: format!(
                                    "venue banned this IP (HTTP 418), retry after {}",
                                    keel_core::when::duration(retry_after_ms)
                                ),
                                by: "venue:418".into(),
                                flatten: false,
                            };
                            if let Err(e) = risk.send(msg).await {
                                tracing::error!(error = %e, "cannot set the emergency stop after a venue ban");
                            }
                        }
                        Ok(_) => {}
                        Err(broadcast::error::RecvError::Lagged(n)) => {
                            tracing::warn!(missed = n, "supervisor missed engine events");
                        }
                        Err(broadcast::error::RecvError::Closed) => break,
                    }
                }
            }
            .into_actor(self),
        );
    }
}

/// Cancels every open order at the venue — those the venue reports,
/// whatever placed them, and those the store thinks open — logging each
/// (`when` says at what point). A start with the emergency stop set does this
/// before reconciliation, warm-up or any strategy runs (reconciliation then
/// records their final states); the supervisor does it when the router is gone.
async fn cancel_all_at_venue(
    venue: &Arc<dyn Venue>,
    writer: &StoreWriter,
    when: &'static str,
) -> Result<(), StartupError> {
    let mut targets: std::collections::BTreeSet<(Symbol, String)> = std::collections::BTreeSet::new();
    match venue.open_orders(None).await {
        Ok(open) => targets.extend(open.into_iter().map(|r| (r.symbol, r.client_order_id))),
        Err(e) => {
            tracing::error!(error = %e, "emergency stop: cannot list the venue's open orders; canceling those the store knows")
        }
    }
    let stored = writer.run(|s| s.open_orders()).await??;
    targets.extend(stored.into_iter().map(|o| (o.symbol, o.client_order_id)));
    for (symbol, cid) in targets {
        let mut attempt = 0;
        loop {
            match venue.cancel_order(&symbol, &cid).await {
                Ok(report) => {
                    tracing::warn!(symbol = %symbol, client_order_id = %cid, status = ?report.status, "emergency stop: order canceled {when}");
                    break;
                }
                Err(VenueError::NotFound) => {
                    tracing::info!(symbol = %symbol, client_order_id = %cid, "emergency stop: order not open at the venue");
                    break;
                }
                // A cancel may be sent again: retry what the weather refused.
                Err(e @ (VenueError::NotSent(_) | VenueError::RateLimited { .. } | VenueError::OutcomeUnknown(_)))
                    if attempt < 3 =>
                {
                    tracing::warn!(symbol = %symbol, client_order_id = %cid, error = %e, "emergency stop: cancel {when} failed; retrying");
                    attempt += 1;
                    tokio::time::sleep(Duration::from_millis(250 * attempt)).await;
                }
                Err(e) => {
                    tracing::error!(symbol = %symbol, client_order_id = %cid, error = %e, "EMERGENCY STOP: CANNOT CANCEL an open order {when}; cancel it at the venue");
                    break;
                }
            }
        }
    }
    Ok(())
}

/// How often the running engine brings its account checkpoint forward.
const CHECKPOINT_EVERY: std::time::Duration = std::time::Duration::from_secs(60);

/// Loads, reconciles, starts and wires the engine. Must run inside an actix system.
/// Strategies trade only after this returns.
pub async fn start_engine(setup: EngineSetup) -> Result<EngineHandle, StartupError> {
    let EngineSetup {
        symbols,
        risk: risk_config,
        bar_interval_ms: interval,
        store,
        venue,
        strategies,
        clock,
        startup_deadline,
        equity_interval,
        universe,
    } = setup;
    let mut symbols = symbols;
    // Streamed whatever the universe does.
    let configured = symbols.clone();
    let mut strategies = strategies;
    let patience = Patience::new(startup_deadline);
    let writer = StoreWriter::start(store);
    let (events, _) = broadcast::channel(4096);
    let now = clock.now_ms();

    // Fail closed: a flag set, or a store we cannot read, starts HALTED.
    let decision = writer.run(|s| risk::emergency::startup_state(s)).await?;
    if decision.fail_closed {
        tracing::error!(reason = %decision.reason, "starting HALTED (fail closed)");
    } else if decision.emergency_stop.active {
        tracing::warn!(
            reason = decision.emergency_stop.reason.as_deref().unwrap_or(""),
            by = decision.emergency_stop.set_by.as_deref().unwrap_or(""),
            "emergency stop is set: engine starts HALTED; only `keel resume` clears it"
        );
    }

    let instruments = retrying(&patience, "load instruments", || venue.instruments())
        .await
        .map_err(StartupError::venue("load instruments"))?;
    if decision.emergency_stop.active {
        // `keel halt` on a stopped engine cannot reach the venue: the start
        // does, before anything else trades or reads history.
        cancel_all_at_venue(&venue, &writer, "at start").await?;
    }
    // With a universe, every pair in its quote asset is known to the risk
    // guard and the account (members change while running); the configured
    // symbols and the members at start are reconciled and subscribed.
    let universe_quote = universe.as_ref().map(|u| u.rules.quote.clone());
    let pool: Vec<_> = instruments
        .into_iter()
        .filter(|i| symbols.contains(&i.symbol) || universe_quote.as_ref() == Some(&i.quote_asset))
        .collect();
    let (selection, first_refresh) = match &universe {
        Some(u) => {
            let listed = pool.iter().map(|i| i.symbol.clone()).collect();
            let remembered = Remembered::load(&writer).await;
            let (selection, first_refresh) = match remembered
                .as_ref()
                .and_then(|r| r.still_current(&u.rules, u.refresh, now, &listed).map(|s| (r, s)))
            {
                Some((r, selection)) => {
                    let age = Duration::from_millis(u64::try_from(now - r.at_ms).unwrap_or(0));
                    let names: Vec<&str> = selection.members.iter().map(|s| s.as_str()).collect();
                    tracing::info!(members = %names.join(","), age_s = age.as_secs(), "universe selected (remembered: ranked less than a refresh ago)");
                    (selection, u.refresh.saturating_sub(age))
                }
                None => {
                    let candidates = retrying(&patience, "load the market universe", || venue.universe_candidates())
                        .await
                        .map_err(StartupError::venue("load the market universe"))?;
                    let selection = crate::universe::select(&u.rules, &candidates, &listed);
                    Remembered::of(&selection, now, &u.rules).save(&writer).await;
                    let names: Vec<&str> = selection.members.iter().map(|s| s.as_str()).collect();
                    tracing::info!(members = %names.join(","), candidates = candidates.len(), "universe selected");
                    (selection, u.refresh)
                }
            };
            crate::universe::remember_instruments(&writer, &pool, &selection.members).await;
            symbols.extend(selection.members.iter().filter(|m| !symbols.contains(m)).cloned().collect::<Vec<_>>());
            (selection, first_refresh)
        }
        None => (Selection::default(), Duration::ZERO),
    };
    let instruments: Vec<_> = pool.iter().filter(|i| symbols.contains(&i.symbol)).cloned().collect();
    for s in &symbols {
        if !instruments.iter().any(|i| &i.symbol == s) {
            return Err(StartupError::SymbolNotListed(s.clone()));
        }
    }

    // Subscribe before reconciling, so nothing between the two is missed (duplicates are dropped by trade id).
    let user_feed = retrying(&patience, "subscribe to user data", || venue.subscribe_user())
        .await
        .map_err(StartupError::venue("subscribe to user data"))?;
    // A reconciliation that could not check everything is tried again (it
    // is idempotent); one still incomplete at the deadline starts HALTED.
    let mut attempt = 0;
    let mut also = std::collections::BTreeSet::new();
    let reconciled = loop {
        let r = reconcile(&venue, &writer, &instruments, &also, now).await?;
        if r.incomplete.is_empty() {
            break r;
        }
        also.extend(r.listed.iter().cloned());
        let wait = crate::patience::backoff(attempt + 1);
        if wait > patience.left() {
            break r;
        }
        tracing::warn!(incomplete = ?r.incomplete, retry_in_ms = wait.as_millis() as u64, "reconciliation incomplete; trying again");
        tokio::time::sleep(wait).await;
        attempt += 1;
    };
    for line in &reconciled.differences {
        tracing::warn!(difference = %line, "reconciliation");
    }
    // The exit states of the strategies' positions: unreadable ones start
    // HALTED (fail closed); the exit orders still come back from the venue.
    let (mut exit_states, decision) = match writer.run(|s| s.exit_states()).await? {
        Ok(states) => (states, decision),
        Err(e) => {
            tracing::error!(error = %e, "the exit states cannot be read; starting HALTED");
            let mut halted = decision;
            halted.state = keel_core::trading::TradingState::Halted;
            halted.reason = format!(
                "fail closed: the exit states cannot be read ({e}); starting HALTED. Check the data directory, then `keel resume` to trade"
            );
            halted.fail_closed = true;
            (Vec::new(), halted)
        }
    };
    let decision = if reconciled.incomplete.is_empty() {
        decision
    } else {
        let reason =
            format!("reconciliation incomplete at the start-up deadline: {}", reconciled.incomplete.join("; "));
        tracing::error!(reason = %reason, "starting HALTED (fail closed)");
        decision.halted_because(reason)
    };
    tracing::info!(
        open_orders = reconciled.open_orders.len(),
        positions = reconciled.account.positions().len(),
        differences = reconciled.differences.len(),
        "store reconciled with the venue"
    );

    let run = writer.run(|s| s.next_id()).await??;
    let ids = Arc::new(ClientIds::new(now.max(0) as u64, run));
    let prices = Arc::new(PriceBoard::default());

    // The one account: the router writes it as fills are recorded; the risk
    // guard, the strategies and the portfolio read it.
    // Template instances: one per member per template, and one per symbol
    // an earlier run's instance still holds although it is no member now
    // (it starts leaving: exits only, then retires).
    let mut running: BTreeMap<Symbol, (Vec<StrategyId>, bool)> = BTreeMap::new();
    if let Some(u) = &universe {
        let mut held: Vec<Symbol> = Vec::new();
        for (id, map) in reconciled.account.strategy_positions() {
            let Some(symbol) = u.instance_symbol(&id) else { continue };
            if !selection.contains(&symbol) && map.get(&symbol).is_some_and(|q| !q.is_zero()) && !held.contains(&symbol)
            {
                held.push(symbol);
            }
        }
        held.retain(|h| pool.iter().any(|i| &i.symbol == h));
        for (symbol, leaving) in selection.members.iter().map(|m| (m, false)).chain(held.iter().map(|h| (h, true))) {
            for cfg in u.instances(symbol) {
                match (u.build)(&cfg) {
                    Ok(strategy) => {
                        running
                            .entry(symbol.clone())
                            .or_insert_with(|| (Vec::new(), leaving))
                            .0
                            .push(cfg.strategy_id());
                        strategies.push((cfg, strategy));
                    }
                    Err(e) => tracing::error!(strategy = %cfg.id, error = %e, "universe: cannot build the instance"),
                }
            }
        }
        if !held.is_empty() {
            tracing::info!(symbols = ?held, "universe: instances of symbols that left while Keel was down start exiting only");
            symbols.extend(held);
        }
    }
    let instruments = pool;
    let account = AccountWriter::new(reconciled.account.clone(), Assets::of(&instruments));
    let account_view = account.view();
    let balances: Vec<_> = reconciled.balances.assets.values().cloned().collect();
    account.apply_balances(&balances, now);
    let mut risk_engine = RiskEngine::new(risk_config, instruments.clone()).with_account(account.view());
    let state = risk_engine.apply_startup(&decision, now);
    let flatten_at_start = decision.emergency_stop.active && risk_engine.config().flatten_on_emergency_stop;
    risk_engine.set_venue_healthy(false);
    for o in &reconciled.open_orders {
        risk_engine.restore_open_order(o);
    }
    for (strategy, map) in reconciled.account.strategy_positions() {
        for (symbol, qty) in map {
            risk_engine.restore_strategy_position(strategy.clone(), symbol, qty, None);
        }
    }
    risk_engine.on_balances(&balances);
    // Only a reconciliation that completed makes the venue healthy.
    risk_engine.set_venue_healthy(reconciled.incomplete.is_empty());
    {
        let record = state.clone();
        writer.run(move |s| s.put_trading_state(&record)).await??;
    }

    // Strategies first (warm-up reads the venue); their actors start below.
    let mut runners: Vec<(StrategyRunner, HashMap<Symbol, i64>)> = Vec::new();
    for (cfg, strategy) in strategies {
        let id = cfg.strategy_id();
        let mut runner =
            StrategyRunner::new(id.clone(), strategy).with_instruments(&instruments).with_account(account.view());
        if let Some(spec) = exits_of(&cfg) {
            runner = runner.with_exits(spec);
        }
        // Template instances fetch their history paced: a universe multiplies them.
        let template = running.values().any(|(ids, _)| ids.contains(&id));
        let pause = if template { WARM_UP_PAUSE } else { Duration::ZERO };
        let last_bar = warm_up(&mut runner, &venue, interval, &patience, &clock, pause).await;
        if cfg.paused {
            runner.set_paused(true);
        }
        // Its positions' exit states first, so adopting its exit orders
        // finds the sets they belong to (never a second set per position).
        let (mine, others): (Vec<_>, Vec<_>) = exit_states.into_iter().partition(|(s, _)| s == &id);
        exit_states = others;
        let restored = mine.len();
        runner.restore_exits(mine.into_iter().map(|(_, state)| state).collect());
        if restored > 0 {
            tracing::info!(strategy = %id, positions = restored, "strategy's exit states restored");
        }
        // Its working orders come back before it may act: what it asks for
        // now (cancels of orders it no longer wants) goes out once its host runs.
        let adopting = reconciled.open_orders.iter().filter(|o| o.strategy_id == id).count();
        match runner.adopt(&reconciled.open_orders, clock.now_ms()) {
            Ok(_) => {
                if adopting > 0 {
                    tracing::info!(strategy = %id, open_orders = adopting, "strategy re-adopted its working orders");
                }
            }
            Err(f) => tracing::error!(strategy = %id, error = %f, "strategy failed adopting its orders; paused"),
        }
        runners.push((runner, last_bar));
    }
    for (strategy, state) in &exit_states {
        tracing::warn!(strategy = %strategy, symbol = %state.symbol, "exit state of a strategy that is not configured: kept in the store, not acted on");
    }

    // Every actor gets the recipients it sends to when it is built, so no
    // route can be missing when the first message flows. The risk guard is
    // built last inside its own start, so the others can hold its address.
    let started: Rc<RefCell<Option<Started>>> = Rc::new(RefCell::new(None));
    let risk = {
        let started = started.clone();
        let (ids, prices, writer, clock, events, venue) =
            (ids.clone(), prices.clone(), writer.clone(), clock.clone(), events.clone(), venue.clone());
        let (instruments, view, open) = (instruments.clone(), account.view(), reconciled.open_orders.clone());
        actix::Supervisor::start(move |ctx: &mut Context<RiskGuard>| {
            let risk_addr = ctx.address();
            let portfolio = {
                let (prices, writer, listener) = (prices.clone(), writer.clone(), risk_addr.clone().recipient());
                let history = EquityHistory { interval: equity_interval, clock: clock.clone() };
                actix::Supervisor::start(move |_| Portfolio::new(instruments, view, prices, writer, listener, history))
            };
            let mut hosts: Vec<(StrategyId, Addr<StrategyHost>)> = Vec::new();
            let mut routes = Vec::new();
            for (runner, last_bar) in runners {
                let (id, symbols) = (runner.id().clone(), runner.symbols().to_vec());
                let host_routes = HostRoutes {
                    intents: risk_addr.clone().recipient(),
                    cancels: risk_addr.clone().recipient(),
                    fail: risk_addr.clone().recipient(),
                    writer: writer.clone(),
                };
                let (clock, events) = (clock.clone(), events.clone());
                let host =
                    actix::Supervisor::start(move |_| StrategyHost::new(runner, host_routes, clock, events, last_bar));
                routes.push((id.clone(), symbols, host.clone()));
                hosts.push((id, host));
            }
            let router = {
                let router_routes = RouterRoutes {
                    risk_fills: risk_addr.clone().recipient(),
                    risk_closed: risk_addr.clone().recipient(),
                    risk_accepted: risk_addr.clone().recipient(),
                    risk_balances: risk_addr.clone().recipient(),
                    venue_health: risk_addr.clone().recipient(),
                    fail: risk_addr.clone().recipient(),
                    portfolio_fills: portfolio.clone().recipient(),
                    portfolio_balances: portfolio.clone().recipient(),
                    host_fills: hosts.iter().map(|(id, h)| (id.clone(), h.clone().recipient())).collect(),
                    host_updates: hosts.iter().map(|(id, h)| (id.clone(), h.clone().recipient())).collect(),
                };
                let (writer, clock, events) = (writer.clone(), clock.clone(), events.clone());
                let stopped = decision.emergency_stop.active;
                actix::Supervisor::start(move |_| {
                    OrderRouter::new(venue, writer, account, clock, events, open, router_routes).stopped(stopped)
                })
            };
            let guard_routes = GuardRoutes {
                orders: router.clone().recipient(),
                cancels: router.clone().recipient(),
                stop: router.clone().recipient(),
                strategy_cancels: router.clone().recipient(),
                hosts: hosts.iter().map(|(id, h)| (id.clone(), h.clone().recipient())).collect(),
            };
            *started.borrow_mut() = Some(Started { router, portfolio, hosts, routes });
            RiskGuard::new(risk_engine, ids, guard_routes, prices, writer, clock, events)
        })
    };
    let Some(Started { router, portfolio, hosts, routes }) = started.borrow_mut().take() else {
        // Supervisor::start runs the closure before it returns.
        unreachable!("the risk guard's start built the other actors")
    };
    router.do_send(AttachUserFeed(user_feed));

    let feed = retrying(&patience, "subscribe to market data", || venue.subscribe_market(&symbols, interval))
        .await
        .map_err(StartupError::venue("subscribe to market data"))?;
    let market = {
        let (prices, events) = (prices.clone(), events.clone());
        let resubscribe =
            crate::market_data::Resubscribe { venue: venue.clone(), symbols: symbols.clone(), interval_ms: interval };
        actix::Supervisor::start(move |_| MarketData::new(routes, prices, events, Some(feed), Some(resubscribe)))
    };

    let registry: HostRegistry = Arc::new(std::sync::RwLock::new(hosts.iter().cloned().collect()));
    for (id, _) in &hosts {
        if running.values().any(|(ids, leaving)| *leaving && ids.contains(id)) {
            risk.do_send(InstanceLeaving { id: id.clone(), leaving: true });
        }
    }
    let supervisor = Supervisor {
        risk: risk.clone(),
        router: router.clone(),
        portfolio: portfolio.clone(),
        market: market.clone(),
        hosts: hosts.clone(),
        events: events.clone(),
        venue: venue.clone(),
        writer: writer.clone(),
        clock: clock.clone(),
        dead: Vec::new(),
        failed_closed: false,
    }
    .start();
    let universe = universe.map(|setup| {
        let start = UniverseStart {
            setup,
            routes: UniverseRoutes {
                risk: risk.clone(),
                router: router.clone(),
                portfolio: portfolio.clone(),
                market: market.clone(),
                supervisor: supervisor.clone(),
                registry: registry.clone(),
            },
            venue: venue.clone(),
            instruments: instruments.clone(),
            account: account_view.clone(),
            clock: clock.clone(),
            events: events.clone(),
            interval_ms: interval,
            selection,
            running,
            writer: writer.clone(),
            first_refresh,
            configured: configured.iter().cloned().collect(),
        };
        Universe::new(start).start()
    });

    // The account checkpoint follows the fills while the engine runs.
    {
        let (writer, account, clock) = (writer.clone(), account_view.clone(), clock.clone());
        actix::spawn(async move {
            let mut every = tokio::time::interval(CHECKPOINT_EVERY);
            every.tick().await;
            loop {
                every.tick().await;
                let (assets, now) = (account.assets(), clock.now_ms());
                match writer.run(move |s| crate::reconcile::checkpoint_now(s, &assets, now)).await {
                    Ok(Ok(_)) => {}
                    Ok(Err(e)) => tracing::error!(error = %e, "account checkpoint not written"),
                    Err(_) => break,
                }
            }
        });
    }
    if flatten_at_start {
        // The stop was set while Keel was down (or before its last exit):
        // its cancels went out above; what is held is sold now.
        tracing::warn!("emergency stop with flatten_on_emergency_stop: flattening what the account holds");
        risk.do_send(crate::messages::Flatten { symbol: None });
    }
    let _ = events.send(EngineEvent::Started { trading_state: state.state });
    tracing::info!(
        venue = venue.name(),
        strategies = hosts.len(),
        trading_state = state.state.as_str(),
        "engine started"
    );
    Ok(EngineHandle::new(crate::handle::Parts {
        risk,
        router,
        portfolio,
        market,
        hosts: registry,
        supervisor,
        universe,
        events,
        prices,
        writer,
        venue,
        started: Instant::now(),
        account: account_view,
    }))
}

impl Handler<HostJoined> for Supervisor {
    type Result = ();

    fn handle(&mut self, msg: HostJoined, _ctx: &mut Self::Context) {
        self.hosts.push((msg.id, msg.host));
    }
}

impl Handler<HostRetired> for Supervisor {
    type Result = ();

    fn handle(&mut self, msg: HostRetired, _ctx: &mut Self::Context) {
        self.hosts.retain(|(id, _)| id != &msg.id);
    }
}

/// A strategy block's exits, checked (the ROI table sorted); a table that
/// does not check is logged and left out (the config loader refuses one
/// before an engine starts, so only a hand-built setup gets here).
pub(crate) fn exits_of(cfg: &keel_core::config::StrategyConfig) -> Option<keel_core::exits::ExitSpec> {
    let mut spec = cfg.exits.clone()?;
    match spec.validate(&format!("strategy {}.exits", cfg.id)) {
        Ok(()) => Some(spec),
        Err(e) => {
            tracing::error!(strategy = %cfg.id, key = %e.key, reason = %e.reason, "exits not valid: the strategy runs without them");
            None
        }
    }
}
