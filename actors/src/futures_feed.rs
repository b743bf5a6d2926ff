//! FuturesFeed: perpetual-futures data for the strategies, from a venue's
//! [`FuturesData`] (Binance USDⓈ-M; none on paper or Coinbase).
//!
//! For the symbols the strategies trade it keeps one mark-price
//! subscription (mark, index, the funding estimate and the next funding
//! time), polls open interest one symbol at a time on a paced schedule (one
//! request of weight 1 per `oi_every / symbols`), reads each symbol's
//! funding interval when it starts feeding it, and reads the settled funding
//! a little after each funding time — learned from the data: when a symbol's
//! next funding time moves forward, the one before has settled. The settled
//! rows' spacing updates the interval (a symbol may switch to 1 h after a
//! capped settlement). Every event goes to the hosts of the strategies
//! trading its symbol as a [`FuturesTick`]. It stops when the engine shuts
//! down.
//!
//! The hosts change while it runs ([`FuturesRoute`]: universe members join
//! and retire). When the set of symbols changes, the mark-price subscription
//! is replaced by one for the new set (the old one is dropped first, which
//! ends its connection: one subscription at a time), a new symbol's funding
//! interval is read, and its open-interest history is delivered before it
//! joins the open-interest rotation ([`SEED_PERIOD`], [`SEED_ROWS`]): oldest
//! first, as [`FuturesEvent::OpenInterestHistory`], so a change of open
//! interest over a period is known from the first live measurement. Symbols
//! the venue does not list as perpetuals (the `keep` filter) are never fed.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use actix::WeakRecipient;
use keel_core::futures::{
    observed_interval_hours, FundingInterval, FundingQuery, FuturesData, FuturesEvent, FuturesFeed as Feed,
    MarkPriceSpeed, OiHistQuery, OiPeriod,
};
use keel_core::venue::{StreamKind, StreamStatus};
use keel_core::{StrategyId, Symbol};
use tokio::sync::broadcast;

use crate::events::EngineEvent;
use crate::messages::FuturesTick;
use crate::metrics::metrics;

/// The `stream` label of the futures mark-price stream in the stream
/// metrics and connectivity events.
pub const STREAM_LABEL: &str = StreamKind::Futures.as_str();

/// How the feed paces itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FuturesFeedConfig {
    /// Mark-price updates every 1 s or 3 s.
    pub speed: MarkPriceSpeed,
    /// Every symbol's open interest is read once per this period.
    pub oi_every: Duration,
    /// How long after a funding time the settled rate is read (the venue
    /// publishes it shortly after, not on the dot).
    pub settle_delay: Duration,
}

impl Default for FuturesFeedConfig {
    fn default() -> Self {
        Self {
            speed: MarkPriceSpeed::Every3s,
            oi_every: Duration::from_secs(60),
            settle_delay: Duration::from_secs(60),
        }
    }
}

/// Asks the feed for the funding time of the last settlement it delivered
/// for a symbol (none before the first). The feed sends each settlement to
/// the strategy hosts as it records it, so once this answers `t`, the
/// settlement at `t` is in their mailboxes: a replay (the parity test) knows
/// the strategies have it once they answer a query after this one.
#[derive(Message, Debug, Clone)]
#[rtype(result = "Option<i64>")]
pub struct LastSettlement(pub Symbol);

/// The period of the open-interest history seeded for a symbol the feed
/// starts feeding (the finest the venue keeps).
pub const SEED_PERIOD: OiPeriod = OiPeriod::M5;

/// How many history rows are seeded: a day and one period of
/// [`SEED_PERIOD`] (one request of weight 0 from the venue's own
/// 1 000-per-5-minutes bucket), so an `oi_change_pct` over up to a day has a
/// baseline at once.
pub const SEED_ROWS: u32 = 289;

/// How long route changes are gathered before the subscription is replaced:
/// the instances a universe refresh starts together cost one new
/// subscription, not one each.
const RESYNC_AFTER: Duration = Duration::from_millis(200);

/// Which symbols the feed may feed (those the venue lists as perpetuals).
pub type KeepSymbol = Arc<dyn Fn(&Symbol) -> bool + Send + Sync>;

/// The hosts trading each symbol, with their ids (what a feed starts with).
pub type HostsBySymbol = HashMap<Symbol, Vec<(StrategyId, Recipient<FuturesTick>)>>;

/// The hosts of futures events: per symbol, by strategy id. Weak, so a
/// retired host is not kept alive by its route (a route to a host that is
/// gone is dropped at the next event).
type Routes = HashMap<Symbol, BTreeMap<StrategyId, WeakRecipient<FuturesTick>>>;

/// Changes whom the feed delivers to: a host joined or retired (universe
/// members come and go while the engine runs).
#[derive(Message)]
#[rtype(result = "()")]
pub enum FuturesRoute {
    /// A host trading `symbols` joined (again: its routes are replaced).
    Add {
        /// The instance.
        id: StrategyId,
        /// The symbols it trades.
        symbols: Vec<Symbol>,
        /// Its actor.
        host: Recipient<FuturesTick>,
    },
    /// A host retired: drop its routes.
    Remove {
        /// The instance.
        id: StrategyId,
    },
}

/// The futures feed actor.
pub struct FuturesFeed {
    data: Arc<dyn FuturesData>,
    routes: Routes,
    keep: KeepSymbol,
    /// The symbols of the current mark-price subscription.
    fed: BTreeSet<Symbol>,
    /// The symbols whose open interest is polled, in turn: the front one
    /// next. A symbol joins at the front once its history was delivered, so
    /// its first live measurement follows at the next poll.
    rotation: VecDeque<Symbol>,
    cfg: FuturesFeedConfig,
    events: broadcast::Sender<EngineEvent>,
    /// The next funding time each symbol's mark prices last gave.
    next_funding: HashMap<Symbol, i64>,
    /// The last settlement delivered per symbol (ms).
    settled: HashMap<Symbol, i64>,
    /// Each symbol's funding interval as last delivered.
    intervals: HashMap<Symbol, u32>,
    connected: bool,
    /// The mark-price subscription being read.
    mark_stream: Option<SpawnHandle>,
    /// The open-interest poll timer (its pace follows the rotation's size).
    oi_timer: Option<SpawnHandle>,
    /// A subscription change is scheduled.
    resync_due: bool,
}

impl FuturesFeed {
    /// A feed for the symbols of `routes` that `keep` accepts, delivering to
    /// them.
    pub fn new(
        data: Arc<dyn FuturesData>,
        routes: HostsBySymbol,
        keep: KeepSymbol,
        cfg: FuturesFeedConfig,
        events: broadcast::Sender<EngineEvent>,
    ) -> Self {
        let routes = routes
            .into_iter()
            .filter(|(s, _)| keep(s))
            .map(|(s, hosts)| (s, hosts.into_iter().map(|(id, r)| (id, r.downgrade())).collect()))
            .collect();
        Self {
            data,
            routes,
            keep,
            fed: BTreeSet::new(),
            rotation: VecDeque::new(),
            cfg,
            events,
            next_funding: HashMap::new(),
            settled: HashMap::new(),
            intervals: HashMap::new(),
            connected: false,
            mark_stream: None,
            oi_timer: None,
            resync_due: false,
        }
    }

    fn dispatch(&mut self, event: FuturesEvent, ctx: &mut Context<Self>) {
        if let FuturesEvent::Mark(m) = &event {
            if let Some(next) = m.next_funding_time {
                let before = self.next_funding.insert(m.symbol.clone(), next);
                if let Some(before) = before.filter(|b| next > *b) {
                    self.settle_later(m.symbol.clone(), before, ctx);
                }
            }
        }
        if let FuturesEvent::Interval(i) = &event {
            if self.intervals.insert(i.symbol.clone(), i.interval_hours) == Some(i.interval_hours) {
                return;
            }
        }
        let Some(routes) = self.routes.get_mut(event.symbol()) else { return };
        let before = routes.len();
        routes.retain(|_, r| match r.upgrade() {
            Some(r) => {
                r.do_send(FuturesTick(event.clone()));
                true
            }
            None => false,
        });
        if routes.len() != before {
            self.changed(ctx);
        }
    }

    /// The symbols that have hosts.
    fn wanted(&self) -> BTreeSet<Symbol> {
        self.routes.iter().filter(|(_, hosts)| !hosts.is_empty()).map(|(s, _)| s.clone()).collect()
    }

    /// The routes changed: replace the subscription soon (changes arriving
    /// together are applied together).
    fn changed(&mut self, ctx: &mut Context<Self>) {
        if self.resync_due {
            return;
        }
        self.resync_due = true;
        ctx.run_later(RESYNC_AFTER, |act, ctx| {
            act.resync_due = false;
            act.resync(ctx);
        });
    }

    /// Makes the subscription, the rotation and the per-symbol state follow
    /// the symbols that have hosts.
    fn resync(&mut self, ctx: &mut Context<Self>) {
        self.routes.retain(|_, hosts| !hosts.is_empty());
        let wanted = self.wanted();
        if wanted == self.fed {
            return;
        }
        let added: Vec<Symbol> = wanted.difference(&self.fed).cloned().collect();
        let removed: Vec<Symbol> = self.fed.difference(&wanted).cloned().collect();
        for s in &removed {
            self.next_funding.remove(s);
            self.settled.remove(s);
            self.intervals.remove(s);
        }
        self.rotation.retain(|s| wanted.contains(s));
        self.fed = wanted;
        tracing::info!(symbols = self.fed.len(), added = ?added, removed = ?removed, "futures feed: symbols changed");
        self.subscribe(ctx);
        self.pace_open_interest(ctx);
        if !added.is_empty() {
            self.read_intervals(added.clone(), ctx);
            self.seed(added, ctx);
        }
    }

    /// Replaces the mark-price subscription with one for the fed symbols
    /// (none when there are none: an empty list would ask for the whole
    /// market). The old one is dropped first, which ends its connection.
    fn subscribe(&mut self, ctx: &mut Context<Self>) {
        if let Some(old) = self.mark_stream.take() {
            ctx.cancel_future(old);
        }
        if self.fed.is_empty() {
            self.set_connected(false, "no symbols to feed".into());
            return;
        }
        let (data, symbols, speed) = (self.data.clone(), self.fed.iter().cloned().collect::<Vec<_>>(), self.cfg.speed);
        let wanted = self.fed.clone();
        ctx.spawn(async move { data.subscribe_mark_price(&symbols, speed).await }.into_actor(self).map(
            move |result, act, ctx| match result {
                // A later change may have replaced this one while it connected.
                Ok(_) if act.fed != wanted => {}
                Ok(feed) => {
                    if let Some(old) = act.mark_stream.take() {
                        ctx.cancel_future(old);
                    }
                    act.mark_stream = Some(ctx.add_stream(tokio_stream::wrappers::ReceiverStream::new(feed)));
                }
                Err(e) => tracing::error!(error = %e, "cannot subscribe to futures mark prices"),
            },
        ));
    }

    /// Reads the funding interval of `symbols` (newly fed).
    fn read_intervals(&mut self, symbols: Vec<Symbol>, ctx: &mut Context<Self>) {
        let data = self.data.clone();
        ctx.spawn(async move { data.funding_info().await }.into_actor(self).map(
            move |result, act, ctx| match result {
                Ok(info) => {
                    let now = keel_core::clock::Clock::now_ms(&keel_core::clock::SystemClock);
                    for symbol in symbols {
                        if !act.fed.contains(&symbol) {
                            continue;
                        }
                        let interval_hours = info.interval_hours(&symbol);
                        let interval = FundingInterval { symbol, interval_hours, ts_ms: now };
                        act.dispatch(FuturesEvent::Interval(interval), ctx);
                    }
                }
                Err(e) => tracing::warn!(error = %e, "funding intervals not read; annualising at the default"),
            },
        ));
    }

    /// Delivers each of `symbols`' open-interest history (read one request
    /// after another), then adds it to the open-interest rotation: its live
    /// measurements come after its history.
    fn seed(&mut self, symbols: Vec<Symbol>, ctx: &mut Context<Self>) {
        let data = self.data.clone();
        let fetch = async move {
            let mut out = Vec::with_capacity(symbols.len());
            for symbol in symbols {
                let query = OiHistQuery {
                    symbol: symbol.clone(),
                    period: SEED_PERIOD,
                    start_ms: None,
                    end_ms: None,
                    limit: Some(SEED_ROWS),
                };
                let rows = data.open_interest_hist(&query).await;
                out.push((symbol, rows));
            }
            out
        };
        ctx.spawn(fetch.into_actor(self).map(|fetched, act, ctx| {
            for (symbol, result) in fetched {
                if !act.fed.contains(&symbol) {
                    continue;
                }
                match result {
                    Ok(mut rows) => {
                        rows.sort_by_key(|r| r.ts_ms);
                        for row in rows {
                            act.dispatch(FuturesEvent::OpenInterestHistory(row), ctx);
                        }
                    }
                    Err(e) => tracing::warn!(symbol = %symbol, error = %e, "open-interest history not read; a change over a period needs a period of live polls"),
                }
                if !act.rotation.contains(&symbol) {
                    act.rotation.push_front(symbol);
                }
            }
            act.pace_open_interest(ctx);
        }));
    }

    /// (Re)starts the open-interest timer at `oi_every / symbols`.
    fn pace_open_interest(&mut self, ctx: &mut Context<Self>) {
        if let Some(old) = self.oi_timer.take() {
            ctx.cancel_future(old);
        }
        if self.rotation.is_empty() {
            return;
        }
        let every = self.cfg.oi_every / u32::try_from(self.rotation.len()).unwrap_or(u32::MAX).max(1);
        self.oi_timer =
            Some(ctx.run_interval(every.max(Duration::from_millis(10)), |act, ctx| act.poll_open_interest(ctx)));
    }

    /// Reads the settlement at `funding_time` (and any missed before it)
    /// `settle_delay` from now, and the interval their spacing shows.
    fn settle_later(&mut self, symbol: Symbol, funding_time: i64, ctx: &mut Context<Self>) {
        let data = self.data.clone();
        let from = self.settled.get(&symbol).map_or(funding_time, |t| t + 1);
        ctx.run_later(self.cfg.settle_delay, move |act, ctx| {
            let query = FundingQuery { symbol: Some(symbol.clone()), start_ms: None, end_ms: None, limit: Some(10) };
            ctx.spawn(async move { data.funding_history(&query).await }.into_actor(act).map(
                move |result, act, ctx| match result {
                    Ok(rows) => {
                        for row in rows.iter().filter(|r| r.funding_time >= from) {
                            act.settled.insert(symbol.clone(), row.funding_time);
                            act.dispatch(FuturesEvent::Funding(row.clone()), ctx);
                        }
                        if let (Some(hours), Some(last)) = (observed_interval_hours(&rows), rows.last()) {
                            let ts_ms = last.funding_time;
                            let interval = FundingInterval { symbol: symbol.clone(), interval_hours: hours, ts_ms };
                            act.dispatch(FuturesEvent::Interval(interval), ctx);
                        }
                    }
                    Err(e) => tracing::warn!(symbol = %symbol, error = %e, "settled funding not read"),
                },
            ));
        });
    }

    /// Reads the next symbol's open interest.
    fn poll_open_interest(&mut self, ctx: &mut Context<Self>) {
        let Some(symbol) = self.rotation.pop_front() else { return };
        self.rotation.push_back(symbol.clone());
        let data = self.data.clone();
        ctx.spawn(async move { data.open_interest(&symbol).await }.into_actor(self).map(
            |result, act, ctx| match result {
                Ok(oi) if act.fed.contains(&oi.symbol) => act.dispatch(FuturesEvent::OpenInterest(oi), ctx),
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "open interest not read"),
            },
        ));
    }
}

impl Actor for FuturesFeed {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        // The series exists while a feed runs (the status reports it then).
        metrics().stream_connected.with_label_values(&[STREAM_LABEL]).set(0);
        self.resync(ctx);
        let mut rx = self.events.subscribe();
        ctx.spawn(
            async move {
                loop {
                    match rx.recv().await {
                        Ok(EngineEvent::ShuttingDown) | Err(broadcast::error::RecvError::Closed) => break,
                        _ => {}
                    }
                }
            }
            .into_actor(self)
            .map(|(), _act, ctx| ctx.stop()),
        );
        tracing::info!(symbols = self.fed.len(), "futures feed started");
    }

    fn stopped(&mut self, _ctx: &mut Self::Context) {
        let _ = metrics().stream_connected.remove_label_values(&[STREAM_LABEL]);
        tracing::info!("futures feed stopped");
    }
}

impl Handler<LastSettlement> for FuturesFeed {
    type Result = Option<i64>;

    fn handle(&mut self, msg: LastSettlement, _ctx: &mut Self::Context) -> Option<i64> {
        self.settled.get(&msg.0).copied()
    }
}

impl Handler<FuturesRoute> for FuturesFeed {
    type Result = ();

    fn handle(&mut self, msg: FuturesRoute, ctx: &mut Self::Context) {
        match msg {
            FuturesRoute::Add { id, symbols, host } => {
                for hosts in self.routes.values_mut() {
                    hosts.remove(&id);
                }
                for symbol in symbols.into_iter().filter(|s| (self.keep)(s)) {
                    // A symbol fed already: the newcomer learns its interval now.
                    if let Some(&interval_hours) = self.intervals.get(&symbol) {
                        let now = keel_core::clock::Clock::now_ms(&keel_core::clock::SystemClock);
                        let interval = FundingInterval { symbol: symbol.clone(), interval_hours, ts_ms: now };
                        host.do_send(FuturesTick(FuturesEvent::Interval(interval)));
                    }
                    self.routes.entry(symbol).or_default().insert(id.clone(), host.downgrade());
                }
            }
            FuturesRoute::Remove { id } => {
                for hosts in self.routes.values_mut() {
                    hosts.remove(&id);
                }
            }
        }
        self.changed(ctx);
    }
}

impl FuturesFeed {
    /// Records a connectivity change: the metric, and an engine event (the
    /// console's `connectivity`, the notifiers) when it is a change.
    fn set_connected(&mut self, connected: bool, detail: String) {
        metrics().stream_connected.with_label_values(&[STREAM_LABEL]).set(i64::from(connected));
        if self.connected == connected {
            return;
        }
        self.connected = connected;
        if connected {
            tracing::info!(stream = STREAM_LABEL, "futures mark-price stream connected");
        } else {
            tracing::warn!(stream = STREAM_LABEL, reason = %detail, "futures mark-price stream disconnected");
        }
        let _ = self.events.send(EngineEvent::Connectivity { stream: StreamKind::Futures, connected, detail });
    }
}

impl StreamHandler<Feed> for FuturesFeed {
    fn handle(&mut self, item: Feed, ctx: &mut Self::Context) {
        match item {
            Feed::Event(event) => self.dispatch(event, ctx),
            Feed::Status(StreamStatus::Connected) => self.set_connected(true, String::new()),
            Feed::Status(StreamStatus::Disconnected { reason }) => {
                metrics().stream_reconnects_total.with_label_values(&[STREAM_LABEL]).inc();
                self.set_connected(false, reason);
            }
        }
    }

    fn finished(&mut self, _ctx: &mut Self::Context) {
        // The client reconnects by itself; its feed ends only with it.
        self.set_connected(false, "feed ended".into());
    }
}
