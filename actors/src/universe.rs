//! Universe: runs strategy templates (`symbols = "universe"`) on the venue's
//! top symbols and keeps that set current.
//!
//! Every `refresh` it asks the venue for its market
//! ([`Venue::universe_candidates`]), ranks it ([`UniverseRules::select`]) and
//! applies the change ([`Selection::change_from`]):
//! - a symbol the venue listed after the start that ranks among the top has
//!   its instrument read from the venue and added to the risk guard, the
//!   account and the portfolio ([`InstrumentsListed`]) before it joins;
//! - a symbol that joins gets market data first (one feed for the whole new
//!   set of symbols, see [`StreamSymbols`]), then one instance per
//!   template (id `ID@SYMBOL`), warmed up from REST klines fetched one after
//!   another (paced), then wired into the guard, the router, market data, the
//!   supervisor and the operator surfaces;
//! - a symbol that leaves keeps its instance, but the risk guard makes every
//!   new order of it reduce-only, and its working orders that could open or
//!   add (a resting buy) are cancelled: nothing opens or adds to a position
//!   off the universe. With `cancel_orders_on_leave` its exits are cancelled
//!   too. Once it holds nothing the lot step can sell and has no working
//!   order, the instance retires (its routes are dropped, and with them the
//!   actor);
//! - a leaving symbol that joins again before it retired is simply let trade
//!   again.
//!
//! Each change is logged (one line), counted (`keel_universe_symbols`,
//! `keel_universe_changes_total`) and published
//! ([`EngineEvent::UniverseChanged`], which the notifiers send on).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use actix::prelude::*;
use keel_core::account::AccountView;
use keel_core::clock::SharedClock;
use keel_core::config::StrategyConfig;
use keel_core::instrument::Instrument;
use keel_core::order::{Order, Side};
use keel_core::strategy::{Strategy, StrategyRunner};
use keel_core::universe::{Candidate, Selection, UniverseRules};
use keel_core::venue::{Venue, VenueError};
use keel_core::{Decimal, StrategyId, Symbol};
use tokio::sync::broadcast;

use crate::events::EngineEvent;
use crate::futures_feed::FuturesRoute;
use crate::market_data::{MarketData, StreamSymbols};
use crate::messages::{CancelOrder, GetOpenOrders};
use crate::metrics::metrics;
use crate::order_router::OrderRouter;
use crate::patience::{retrying, Patience};
use crate::risk_guard::RiskGuard;
use crate::store_writer::StoreWriter;
use crate::strategy_host::{HostRoutes, StrategyHost};
use crate::supervisor::Supervisor;

/// Builds a strategy from an instance's config block (the strategies crate
/// knows the kinds; the actors do not depend on it).
pub type BuildStrategy = Arc<dyn Fn(&StrategyConfig) -> Result<Box<dyn Strategy>, String> + Send + Sync>;

/// The running instances by id, shared by the universe (which adds and
/// retires them) and the operator surfaces (which list and pause them).
pub type HostRegistry = Arc<RwLock<BTreeMap<StrategyId, Addr<StrategyHost>>>>;

/// What the engine needs to run templates on a universe (`[universe]`).
#[derive(Clone)]
pub struct UniverseSetup {
    /// The ranking.
    pub rules: UniverseRules,
    /// How often the ranking is taken again.
    pub refresh: Duration,
    /// A leaving symbol's working orders are cancelled at once.
    pub cancel_orders_on_leave: bool,
    /// The templates (`symbols = "universe"` blocks), in config order.
    pub templates: Vec<StrategyConfig>,
    /// Builds each instance's strategy.
    pub build: BuildStrategy,
}

impl UniverseSetup {
    /// The instances of every template on `symbol`.
    pub fn instances(&self, symbol: &Symbol) -> Vec<StrategyConfig> {
        self.templates.iter().map(|t| t.instance(symbol.as_str())).collect()
    }

    /// The symbol of a template instance id (`ID@SYMBOL`), if `id` is one.
    pub fn instance_symbol(&self, id: &StrategyId) -> Option<Symbol> {
        let (template, symbol) = id.as_str().rsplit_once('@')?;
        self.templates.iter().any(|t| t.id == template).then(|| Symbol::new(symbol))
    }
}

/// The members among what the venue lists, restricted to `listed` (symbols
/// whose instruments the engine loaded at start).
pub fn select(rules: &UniverseRules, candidates: &[Candidate], listed: &BTreeSet<Symbol>) -> Selection {
    let known: Vec<Candidate> = candidates.iter().filter(|c| listed.contains(&c.symbol)).cloned().collect();
    rules.select(&known)
}

/// Symbols the venue listed after the engine started, now members: the
/// actors that know instruments (the risk guard's filters and flatten, the
/// account's assets in the router, the portfolio's valuation) add them.
#[derive(Message, Clone)]
#[rtype(result = "()")]
pub struct InstrumentsListed(pub Vec<Instrument>);

/// The instruments of symbols that would rank among `candidates` but that
/// the engine does not know (`listed`): read from the venue (on Binance the
/// `exchangeInfo` the ranking just read, so no further weight), `TRADING`
/// ones only. None when the venue cannot say (they stay out this time).
async fn new_listings(
    rules: &UniverseRules,
    candidates: &[Candidate],
    listed: &BTreeSet<Symbol>,
    venue: &Arc<dyn Venue>,
) -> Vec<Instrument> {
    let unknown: Vec<Symbol> = rules.select(candidates).members.into_iter().filter(|m| !listed.contains(m)).collect();
    if unknown.is_empty() {
        return Vec::new();
    }
    match venue.instruments().await {
        Ok(all) => all.into_iter().filter(|i| unknown.contains(&i.symbol) && i.status.is_trading()).collect(),
        Err(e) => {
            tracing::warn!(symbols = ?unknown, error = %e, "universe: cannot read the filters of newly listed symbols; they stay out until the next refresh");
            Vec::new()
        }
    }
}

/// A strategy host joined: route its market data, fills, updates and refusals
/// to it, and watch it.
#[derive(Message, Clone)]
#[rtype(result = "()")]
pub struct HostJoined {
    /// The instance.
    pub id: StrategyId,
    /// The symbols it trades.
    pub symbols: Vec<Symbol>,
    /// Its actor.
    pub host: Addr<StrategyHost>,
}

/// A strategy host retired: drop every route to it.
#[derive(Message, Clone)]
#[rtype(result = "()")]
pub struct HostRetired {
    /// The instance.
    pub id: StrategyId,
}

/// Tells the risk guard that an instance's symbol left the universe (its
/// orders become reduce-only) or joined again.
#[derive(Message, Clone)]
#[rtype(result = "()")]
pub struct InstanceLeaving {
    /// The instance.
    pub id: StrategyId,
    /// True while it may only exit.
    pub leaving: bool,
}

/// The store key of the last selection.
const REMEMBERED: &str = "universe.selection";

/// The last selection as the store keeps it, so a restart within a refresh
/// period runs the same members instead of ranking again (which could swap
/// instances early).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Remembered {
    /// The members, highest volume first.
    pub members: Vec<Symbol>,
    /// When the venue was asked (ms).
    pub at_ms: i64,
    /// The rules it was ranked by (a changed `[universe]` ranks again).
    pub rules: String,
}

/// How `rules` are told apart in the store.
fn rules_key(rules: &UniverseRules) -> String {
    let exclude: Vec<&str> = rules.exclude.iter().map(|p| p.as_str()).collect();
    format!("{} top {} min {} exclude {:?}", rules.quote, rules.top_n, rules.min_quote_volume, exclude)
}

impl Remembered {
    /// The selection to remember.
    pub fn of(selection: &Selection, at_ms: i64, rules: &UniverseRules) -> Self {
        Self { members: selection.members.clone(), at_ms, rules: rules_key(rules) }
    }

    /// The remembered selection if it was ranked by `rules` less than
    /// `refresh` before `now_ms`, restricted to `listed` symbols.
    pub fn still_current(
        &self,
        rules: &UniverseRules,
        refresh: Duration,
        now_ms: i64,
        listed: &BTreeSet<Symbol>,
    ) -> Option<Selection> {
        let age = now_ms.checked_sub(self.at_ms)?;
        let fresh = age >= 0 && (age as u128) < refresh.as_millis() && self.rules == rules_key(rules);
        fresh.then(|| Selection { members: self.members.iter().filter(|m| listed.contains(*m)).cloned().collect() })
    }

    /// Reads the remembered selection (none, or unreadable: rank again).
    pub async fn load(writer: &StoreWriter) -> Option<Self> {
        match writer.run(|s| s.meta_json(REMEMBERED)).await {
            Ok(Ok(Some(v))) => serde_json::from_value(v).ok(),
            _ => None,
        }
    }

    /// Writes it (not flushed at once: losing it only means ranking again).
    pub async fn save(&self, writer: &StoreWriter) {
        let Ok(value) = serde_json::to_value(self) else { return };
        match writer.run(move |s| s.put_meta_json(REMEMBERED, &value, false)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "universe: the selection was not stored"),
            Err(e) => tracing::warn!(error = %e, "universe: the selection was not stored"),
        }
    }
}

/// Keeps the instruments of `members` (found among `known`) in the store,
/// before their instances start, so `keel state` knows a member's assets and
/// lot step without the venue ([`keel_core::member_instruments`]). Not
/// stored: logged, and `keel state` guesses that symbol's assets.
pub async fn remember_instruments(writer: &StoreWriter, known: &[Instrument], members: &[Symbol]) {
    let joined: Vec<Instrument> = known.iter().filter(|i| members.contains(&i.symbol)).cloned().collect();
    match writer.run(move |s| keel_core::member_instruments::remember(s, &joined)).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::warn!(error = %e, "universe: the members' instruments were not stored"),
        Err(e) => tracing::warn!(error = %e, "universe: the members' instruments were not stored"),
    }
}

/// Warms `runner` up from the venue's closed klines (one symbol after
/// another, with `pause` between fetches); returns the open time of the last
/// bar per symbol, so the host delivers each live bar exactly once.
pub(crate) async fn warm_up(
    runner: &mut StrategyRunner,
    venue: &Arc<dyn Venue>,
    interval_ms: i64,
    patience: &Patience,
    clock: &SharedClock,
    pause: Duration,
) -> HashMap<Symbol, i64> {
    let mut last_bar = HashMap::new();
    let warmup = runner.warmup_bars_at(interval_ms);
    if warmup == 0 {
        return last_bar;
    }
    let id = runner.id().clone();
    for symbol in runner.symbols().to_vec() {
        match retrying(patience, "warm-up history", || venue.klines(&symbol, interval_ms, None, warmup + 1)).await {
            Ok(bars) => {
                if let Some(b) = bars.last() {
                    last_bar.insert(symbol.clone(), b.open_time);
                }
                if let Err(f) = runner.warm_up(&bars, clock.now_ms()) {
                    tracing::error!(strategy = %id, error = %f, "strategy failed during warm-up; paused");
                }
                if bars.len() < warmup {
                    // The venue serves fewer (Binance: 1000 a request; a young symbol): the
                    // series that need more stay `na`, so the strategy waits for live bars.
                    tracing::warn!(strategy = %id, symbol = %symbol, bars = bars.len(), needed = warmup,
                        "strategy warmed up on fewer bars than it needs: signals that need the rest wait for live bars");
                } else {
                    tracing::info!(strategy = %id, symbol = %symbol, bars = bars.len(), "strategy warmed up");
                }
            }
            Err(e) => tracing::warn!(strategy = %id, symbol = %symbol, error = %e, "no warm-up history"),
        }
        if !pause.is_zero() {
            tokio::time::sleep(pause).await;
        }
    }
    last_bar
}

/// The pause between two warm-up kline fetches of joining symbols: a refresh
/// that adds many symbols spreads their history requests (weight 2 each on
/// Binance) instead of spending the minute's budget at once.
pub(crate) const WARM_UP_PAUSE: Duration = Duration::from_millis(100);

/// How often leaving instances are checked for being flat.
const RETIRE_CHECK: Duration = Duration::from_secs(1);

/// The actors a joining instance is wired into.
pub struct UniverseRoutes {
    /// The risk guard.
    pub risk: Addr<RiskGuard>,
    /// The order router.
    pub router: Addr<OrderRouter>,
    /// The portfolio.
    pub portfolio: Addr<crate::portfolio::Portfolio>,
    /// Market data.
    pub market: Addr<MarketData>,
    /// The supervisor.
    pub supervisor: Addr<Supervisor>,
    /// The operator surfaces' registry.
    pub registry: HostRegistry,
}

/// One member's instances, and whether it is leaving.
struct Member {
    ids: Vec<StrategyId>,
    leaving: bool,
}

/// The universe actor.
pub struct Universe {
    setup: UniverseSetup,
    routes: UniverseRoutes,
    venue: Arc<dyn Venue>,
    instruments: Vec<Instrument>,
    listed: BTreeSet<Symbol>,
    account: AccountView,
    clock: SharedClock,
    events: broadcast::Sender<EngineEvent>,
    interval_ms: i64,
    selection: Selection,
    members: BTreeMap<Symbol, Member>,
    /// A refresh is under way (the next tick skips).
    busy: bool,
    writer: StoreWriter,
    /// When the first refresh is due (the selection at start may be a remembered one).
    first_refresh: Duration,
    /// Orders of leaving instances already asked to cancel.
    cancelled: BTreeSet<String>,
    /// Symbols streamed whatever the universe does (the configured ones);
    /// the members' (leaving ones too) are streamed besides.
    configured: BTreeSet<Symbol>,
    /// The futures feed, once attached ([`AttachFutures`]): told of every
    /// instance that starts or retires.
    futures: Option<Recipient<FuturesRoute>>,
}

/// What the engine's start hands the universe actor.
pub struct UniverseStart {
    /// The universe settings.
    pub setup: UniverseSetup,
    /// Where instances are wired.
    pub routes: UniverseRoutes,
    /// The venue.
    pub venue: Arc<dyn Venue>,
    /// Every instrument the engine loaded (members come from these).
    pub instruments: Vec<Instrument>,
    /// The account.
    pub account: AccountView,
    /// The clock.
    pub clock: SharedClock,
    /// Engine events.
    pub events: broadcast::Sender<EngineEvent>,
    /// Bar interval (ms).
    pub interval_ms: i64,
    /// The selection the engine started with.
    pub selection: Selection,
    /// The instances running at start, by symbol, and whether each symbol
    /// is leaving (held from an earlier run but no member now).
    pub running: BTreeMap<Symbol, (Vec<StrategyId>, bool)>,
    /// The store (the last selection is remembered there).
    pub writer: StoreWriter,
    /// When the first refresh is due.
    pub first_refresh: Duration,
    /// The configured symbols (streamed whether members or not).
    pub configured: BTreeSet<Symbol>,
}

impl Universe {
    /// The actor, over the instances the engine started with.
    pub fn new(start: UniverseStart) -> Self {
        let listed = start.instruments.iter().map(|i| i.symbol.clone()).collect();
        let members = start.running.into_iter().map(|(s, (ids, leaving))| (s, Member { ids, leaving })).collect();
        metrics().universe_symbols.set(start.selection.members.len() as i64);
        Self {
            setup: start.setup,
            routes: start.routes,
            venue: start.venue,
            instruments: start.instruments,
            listed,
            account: start.account,
            clock: start.clock,
            events: start.events,
            interval_ms: start.interval_ms,
            selection: start.selection,
            members,
            busy: false,
            writer: start.writer,
            first_refresh: start.first_refresh,
            cancelled: BTreeSet::new(),
            configured: start.configured,
            futures: None,
        }
    }

    /// The symbols to stream: the configured ones, every instance's (a
    /// leaving one's until it retires) and `joining`.
    fn streamed(&self, joining: &[Symbol]) -> BTreeSet<Symbol> {
        self.configured.iter().chain(self.members.keys()).chain(joining).cloned().collect()
    }

    fn refresh(&mut self, ctx: &mut Context<Self>) {
        if self.busy {
            return;
        }
        self.busy = true;
        let (venue, rules, listed) = (self.venue.clone(), self.setup.rules.clone(), self.listed.clone());
        let (writer, clock, mut instruments) = (self.writer.clone(), self.clock.clone(), self.instruments.clone());
        let remember = async move {
            let candidates = venue.universe_candidates().await?;
            let fresh = new_listings(&rules, &candidates, &listed, &venue).await;
            let known: BTreeSet<Symbol> = listed.into_iter().chain(fresh.iter().map(|i| i.symbol.clone())).collect();
            let selection = select(&rules, &candidates, &known);
            Remembered::of(&selection, clock.now_ms(), &rules).save(&writer).await;
            instruments.extend(fresh.iter().cloned());
            remember_instruments(&writer, &instruments, &selection.members).await;
            Ok((selection, fresh))
        };
        ctx.spawn(remember.into_actor(self).map(|result: Result<_, VenueError>, act, ctx| match result {
            Ok((selection, fresh)) => {
                act.list(fresh);
                act.apply(selection, ctx)
            }
            Err(e) => {
                act.busy = false;
                tracing::warn!(error = %e, "universe refresh failed; the members stay as they are until the next one");
            }
        }));
    }

    /// Makes symbols the venue listed since the start known everywhere an
    /// instrument must be, before any instance of theirs can order.
    fn list(&mut self, fresh: Vec<Instrument>) {
        if fresh.is_empty() {
            return;
        }
        let names: Vec<&str> = fresh.iter().map(|i| i.symbol.as_str()).collect();
        tracing::info!(symbols = %names.join(","), "universe: symbols listed since the start join the known instruments");
        let msg = InstrumentsListed(fresh.clone());
        self.routes.risk.do_send(msg.clone());
        self.routes.router.do_send(msg.clone());
        self.routes.portfolio.do_send(msg);
        for i in fresh {
            self.listed.insert(i.symbol.clone());
            self.instruments.retain(|known| known.symbol != i.symbol);
            self.instruments.push(i);
        }
    }

    fn apply(&mut self, selection: Selection, ctx: &mut Context<Self>) {
        let change = selection.change_from(&self.selection);
        self.selection = selection;
        let m = metrics();
        m.universe_symbols.set(self.selection.members.len() as i64);
        if change.is_empty() {
            self.busy = false;
            return;
        }
        m.universe_changes_total.inc();
        let names = |v: &[Symbol]| v.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(",");
        tracing::info!(
            joined = %names(&change.joined),
            left = %names(&change.left),
            members = self.selection.members.len(),
            "universe changed"
        );
        let _ = self.events.send(EngineEvent::UniverseChanged {
            joined: change.joined.clone(),
            left: change.left.clone(),
            members: self.selection.members.clone(),
        });
        for symbol in &change.left {
            self.leave(symbol, ctx);
        }
        let mut new = Vec::new();
        for symbol in change.joined {
            match self.members.get_mut(&symbol) {
                Some(member) => {
                    // Back before it retired: its instance trades again.
                    member.leaving = false;
                    for id in &member.ids {
                        self.routes.risk.do_send(InstanceLeaving { id: id.clone(), leaving: false });
                    }
                }
                None => new.push(symbol),
            }
        }
        if new.is_empty() {
            self.busy = false;
        } else {
            self.join(new, ctx);
        }
    }

    fn leave(&mut self, symbol: &Symbol, ctx: &mut Context<Self>) {
        let Some(member) = self.members.get_mut(symbol) else { return };
        member.leaving = true;
        for id in &member.ids {
            self.routes.risk.do_send(InstanceLeaving { id: id.clone(), leaving: true });
        }
        let router = self.routes.router.clone();
        ctx.spawn(async move { router.send(GetOpenOrders).await }.into_actor(self).map(|open, act, _ctx| {
            if let Ok(open) = open {
                act.cancel_unwanted(&open);
            }
        }));
    }

    /// Cancels the working orders of leaving instances that could open or
    /// add to a position (a resting buy of a long-only strategy), and with
    /// `cancel_orders_on_leave` their exits too. Each order is asked once.
    fn cancel_unwanted(&mut self, open: &[Order]) {
        for (symbol, member) in self.members.iter().filter(|(_, m)| m.leaving) {
            for o in open.iter().filter(|o| member.ids.contains(&o.strategy_id) && o.status.is_open()) {
                let held = self.account.strategy_held(o.strategy_id.as_str(), symbol.as_str());
                let reduces = match o.side {
                    Side::Sell => held > Decimal::ZERO,
                    Side::Buy => held < Decimal::ZERO,
                };
                if (reduces && !self.setup.cancel_orders_on_leave) || !self.cancelled.insert(o.client_order_id.clone())
                {
                    continue;
                }
                tracing::info!(strategy = %o.strategy_id, client_order_id = %o.client_order_id, side = ?o.side, "universe: cancelling a working order of a leaving symbol");
                self.routes.risk.do_send(CancelOrder {
                    strategy_id: o.strategy_id.clone(),
                    client_order_id: o.client_order_id.clone(),
                });
            }
        }
    }

    /// Market data for `symbols` first (so no bar after the warm-up is
    /// missed), then the instances, warmed up one fetch after another.
    fn join(&mut self, symbols: Vec<Symbol>, ctx: &mut Context<Self>) {
        let venue = self.venue.clone();
        let (interval, clock) = (self.interval_ms, self.clock.clone());
        let mut runners = Vec::new();
        for symbol in &symbols {
            for cfg in self.setup.instances(symbol) {
                let id = cfg.strategy_id();
                match (self.setup.build)(&cfg) {
                    Ok(strategy) => {
                        let mut runner = StrategyRunner::new(id, strategy)
                            .with_instruments(&self.instruments)
                            .with_account(self.account.clone());
                        if let Some(spec) = crate::supervisor::exits_of(&cfg) {
                            runner = runner.with_exits(spec);
                        }
                        if cfg.paused {
                            runner.set_paused(true);
                        }
                        runners.push((symbol.clone(), runner));
                    }
                    Err(e) => tracing::error!(strategy = %id, error = %e, "universe: cannot build the instance"),
                }
            }
        }
        let market = self.routes.market.clone();
        // One feed for the whole new set replaces the one running.
        let streamed = self.streamed(&symbols);
        ctx.spawn(
            async move {
                let patience = Patience::new(Duration::from_secs(30));
                if market.send(StreamSymbols(streamed)).await.is_err() {
                    tracing::error!("universe: market data is gone; the joining instances see no bars");
                }
                let mut warmed = Vec::new();
                for (symbol, mut runner) in runners {
                    let last_bar = warm_up(&mut runner, &venue, interval, &patience, &clock, WARM_UP_PAUSE).await;
                    warmed.push((symbol, runner, last_bar));
                }
                warmed
            }
            .into_actor(self)
            .map(|warmed, act, _ctx| {
                for (symbol, runner, last_bar) in warmed {
                    act.start_instance(symbol, runner, last_bar);
                }
                act.busy = false;
            }),
        );
    }

    fn start_instance(&mut self, symbol: Symbol, runner: StrategyRunner, last_bar: HashMap<Symbol, i64>) {
        let (id, symbols) = (runner.id().clone(), runner.symbols().to_vec());
        let routes = HostRoutes {
            intents: self.routes.risk.clone().recipient(),
            cancels: self.routes.risk.clone().recipient(),
            fail: self.routes.risk.clone().recipient(),
            writer: self.writer.clone(),
        };
        let (clock, events) = (self.clock.clone(), self.events.clone());
        let host = actix::Supervisor::start(move |_| StrategyHost::new(runner, routes, clock, events, last_bar));
        let joined = HostJoined { id: id.clone(), symbols, host: host.clone() };
        self.routes.risk.do_send(joined.clone());
        self.routes.router.do_send(joined.clone());
        self.routes.market.do_send(joined.clone());
        self.routes.supervisor.do_send(joined);
        if let Some(f) = &self.futures {
            f.do_send(FuturesRoute::Add {
                id: id.clone(),
                symbols: vec![symbol.clone()],
                host: host.clone().recipient(),
            });
        }
        self.routes.registry.write().unwrap_or_else(|e| e.into_inner()).insert(id.clone(), host);
        tracing::info!(strategy = %id, symbol = %symbol, "universe: instance started");
        self.members.entry(symbol).or_insert_with(|| Member { ids: Vec::new(), leaving: false }).ids.push(id);
    }

    /// Retires the leaving instances that hold nothing sellable and have no
    /// working order.
    fn check_retiring(&mut self, ctx: &mut Context<Self>) {
        if !self.members.values().any(|m| m.leaving) {
            return;
        }
        let router = self.routes.router.clone();
        ctx.spawn(async move { router.send(GetOpenOrders).await }.into_actor(self).map(|open, act, _ctx| {
            let Ok(open) = open else { return };
            // An order approved just before its symbol left reaches the router late: sweep again.
            act.cancel_unwanted(&open);
            let working: BTreeSet<StrategyId> =
                open.into_iter().filter(|o| o.status.is_open()).map(|o| o.strategy_id).collect();
            let leaving: Vec<Symbol> = act.members.iter().filter(|(_, m)| m.leaving).map(|(s, _)| s.clone()).collect();
            for symbol in leaving {
                let step = act
                    .instruments
                    .iter()
                    .find(|i| i.symbol == symbol)
                    .map(|i| i.step_size.max(i.min_qty))
                    .unwrap_or(Decimal::ZERO);
                let Some(member) = act.members.get(&symbol) else { continue };
                // Below the lot step nothing can sell it: dust does not keep an instance alive.
                let flat = member.ids.iter().all(|id| {
                    let held = act.account.strategy_held(id.as_str(), symbol.as_str()).abs();
                    !working.contains(id) && (held.is_zero() || held < step)
                });
                if flat {
                    act.retire(&symbol);
                }
            }
        }));
    }

    fn retire(&mut self, symbol: &Symbol) {
        let Some(member) = self.members.remove(symbol) else { return };
        for id in member.ids {
            let retired = HostRetired { id: id.clone() };
            self.routes.risk.do_send(retired.clone());
            self.routes.router.do_send(retired.clone());
            self.routes.market.do_send(retired.clone());
            self.routes.supervisor.do_send(retired);
            if let Some(f) = &self.futures {
                f.do_send(FuturesRoute::Remove { id: id.clone() });
            }
            self.routes.registry.write().unwrap_or_else(|e| e.into_inner()).remove(&id);
            // Universe churn must not grow the series without bound.
            let _ = metrics().strategy_paused.remove_label_values(&[id.as_str()]);
            tracing::info!(strategy = %id, symbol = %symbol, "universe: instance retired (its symbol left and it is flat)");
            let _ = self.events.send(EngineEvent::UniverseInstanceRetired { strategy_id: id, symbol: symbol.clone() });
        }
        // A retired symbol is no longer streamed.
        self.routes.market.do_send(StreamSymbols(self.streamed(&[])));
    }
}

/// Asks for the universe's members now, highest volume first, and the
/// symbols still leaving (instances exiting before they retire).
#[derive(Message)]
#[rtype(result = "UniverseStatus")]
pub struct GetUniverse;

/// The universe as it stands.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct UniverseStatus {
    /// The members, highest volume first.
    pub members: Vec<Symbol>,
    /// Symbols that left whose instances have not retired yet.
    pub leaving: Vec<Symbol>,
}

impl Handler<GetUniverse> for Universe {
    type Result = MessageResult<GetUniverse>;

    fn handle(&mut self, _msg: GetUniverse, _ctx: &mut Self::Context) -> Self::Result {
        MessageResult(UniverseStatus {
            members: self.selection.members.clone(),
            leaving: self.members.iter().filter(|(_, m)| m.leaving).map(|(s, _)| s.clone()).collect(),
        })
    }
}

/// Attaches the futures feed (started after the universe): the instances
/// running now are routed to it, and every one that starts or retires later.
#[derive(Message)]
#[rtype(result = "()")]
pub struct AttachFutures(pub Recipient<FuturesRoute>);

impl Handler<AttachFutures> for Universe {
    type Result = ();

    fn handle(&mut self, msg: AttachFutures, _ctx: &mut Self::Context) {
        let registry = self.routes.registry.read().unwrap_or_else(|e| e.into_inner()).clone();
        for (symbol, member) in &self.members {
            for (id, host) in member.ids.iter().filter_map(|id| registry.get(id).map(|h| (id, h))) {
                let host = host.clone().recipient();
                msg.0.do_send(FuturesRoute::Add { id: id.clone(), symbols: vec![symbol.clone()], host });
            }
        }
        self.futures = Some(msg.0);
    }
}

impl Actor for Universe {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.run_later(self.first_refresh, |act, ctx| {
            act.refresh(ctx);
            ctx.run_interval(act.setup.refresh, |act, ctx| act.refresh(ctx));
        });
        ctx.run_interval(RETIRE_CHECK, |act, ctx| act.check_retiring(ctx));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use keel_core::universe::SymbolPattern;

    fn rules(top_n: usize, exclude: &[&str]) -> UniverseRules {
        UniverseRules {
            quote: "USDT".into(),
            top_n,
            min_quote_volume: Decimal::ZERO,
            exclude: exclude.iter().map(|p| SymbolPattern::new(p).unwrap()).collect(),
        }
    }

    #[test]
    fn a_remembered_selection_is_used_only_within_a_refresh_and_under_the_same_rules() {
        let kept = Selection { members: vec![Symbol::new("AUSDT"), Symbol::new("BUSDT"), Symbol::new("GONEUSDT")] };
        let r = Remembered::of(&kept, 1_000_000, &rules(3, &["*UP*"]));
        let listed: BTreeSet<Symbol> = ["AUSDT", "BUSDT", "CUSDT"].iter().map(|s| Symbol::new(s)).collect();
        let hour = Duration::from_secs(3600);
        let cases = [
            ("a minute later", rules(3, &["*UP*"]), 1_060_000, true),
            ("at the refresh", rules(3, &["*UP*"]), 1_000_000 + 3_600_000, false),
            ("before it was taken (clock moved back)", rules(3, &["*UP*"]), 999_000, false),
            ("another top_n", rules(4, &["*UP*"]), 1_060_000, false),
            ("other exclusions", rules(3, &[]), 1_060_000, false),
        ];
        for (name, rules, now, used) in cases {
            let got = r.still_current(&rules, hour, now, &listed);
            assert_eq!(got.is_some(), used, "{name}");
            if let Some(s) = got {
                assert_eq!(s.members, [Symbol::new("AUSDT"), Symbol::new("BUSDT")], "unlisted symbols drop out");
            }
        }
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(serde_json::from_value::<Remembered>(json).unwrap(), r, "round trip through the store");
    }
}
