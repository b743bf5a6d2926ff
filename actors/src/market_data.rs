//! MarketData: turns the venue's market feed into market events for the
//! strategies that trade each symbol, and keeps the price board current.
//!
//! It owns the engine's one market feed. When the symbols to stream change
//! (a universe member joins or retires: [`StreamSymbols`]) it subscribes a
//! feed for the whole new set and, once that one says it is connected, drops
//! the old one after a short overlap ([`OVERLAP`]) in which bars and trades
//! seen already are dropped. So the venue sees one market connection however
//! the universe churns (two for a moment), and no event is lost in the swap.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use keel_core::market::MarketEvent;
use keel_core::venue::{MarketFeed, StreamKind, StreamStatus};
use keel_core::Symbol;
use tokio::sync::broadcast;

use crate::events::EngineEvent;
use crate::messages::{InjectMarket, MarketTick};
use crate::metrics::metrics;
use crate::patience::{retrying, Patience};
use crate::prices::PriceBoard;

/// How long the old feed keeps delivering after its replacement connected:
/// long enough for what it had queued to arrive (duplicates are dropped).
pub const OVERLAP: Duration = Duration::from_secs(2);

/// One item of a feed, with the feed's number.
struct Tagged(u64, MarketFeed);

/// The feeds: the one delivering, the one replacing it (until it
/// connects), and the old ones in their overlap.
#[derive(Default)]
struct Feeds {
    next: u64,
    current: Option<(u64, SpawnHandle)>,
    pending: Option<(u64, SpawnHandle)>,
    retiring: usize,
    /// The symbols of the current (or pending) feed.
    streamed: BTreeSet<Symbol>,
}

/// The market-data actor.
pub struct MarketData {
    routes: HashMap<Symbol, Vec<Recipient<MarketTick>>>,
    prices: Arc<PriceBoard>,
    events: broadcast::Sender<EngineEvent>,
    feed: Option<tokio::sync::mpsc::Receiver<MarketFeed>>,
    connected: bool,
    resubscribe: Option<Resubscribe>,
    /// Which routes belong to which strategy host (for universe instances
    /// that retire), by symbol.
    hosts: HashMap<keel_core::StrategyId, (Vec<Symbol>, Addr<crate::strategy_host::StrategyHost>)>,
    feeds: Feeds,
    /// The newest bar open time and trade id delivered per symbol: while two
    /// feeds overlap, what one delivered already is not delivered again.
    last_bar: HashMap<Symbol, i64>,
    last_trade: HashMap<Symbol, u64>,
}

/// Streams exactly these symbols from now on (the engine's configured
/// symbols and the universe's members, leaving ones included). Answers once
/// the feed for them is subscribed: events of a symbol that joined flow from
/// its connection on.
#[derive(Message)]
#[rtype(result = "()")]
pub struct StreamSymbols(pub BTreeSet<Symbol>);

/// How to subscribe again after a restart (the old feed dies with the old context).
pub struct Resubscribe {
    /// The venue.
    pub venue: std::sync::Arc<dyn keel_core::venue::Venue>,
    /// Symbols to subscribe.
    pub symbols: Vec<Symbol>,
    /// Bar interval.
    pub interval_ms: i64,
}

impl MarketData {
    /// A market-data actor delivering each symbol's events to the strategy
    /// hosts that trade it (`hosts`: each with its symbols).
    pub fn new(
        hosts: Vec<(keel_core::StrategyId, Vec<Symbol>, Addr<crate::strategy_host::StrategyHost>)>,
        prices: Arc<PriceBoard>,
        events: broadcast::Sender<EngineEvent>,
        feed: Option<tokio::sync::mpsc::Receiver<MarketFeed>>,
        resubscribe: Option<Resubscribe>,
    ) -> Self {
        let streamed = resubscribe.as_ref().map(|r| r.symbols.iter().cloned().collect()).unwrap_or_default();
        let mut routes: HashMap<Symbol, Vec<Recipient<MarketTick>>> = HashMap::new();
        for (_, symbols, host) in &hosts {
            for s in symbols {
                routes.entry(s.clone()).or_default().push(host.clone().recipient());
            }
        }
        // Every host is known by id, so one that retires (a universe
        // instance running since the start too) loses its routes.
        let hosts = hosts.into_iter().map(|(id, symbols, host)| (id, (symbols, host))).collect();
        Self {
            routes,
            prices,
            events,
            feed,
            connected: false,
            resubscribe,
            hosts,
            feeds: Feeds { streamed, ..Feeds::default() },
            last_bar: HashMap::new(),
            last_trade: HashMap::new(),
        }
    }

    /// Delivers `feed` as feed number `n`.
    fn attach(&mut self, feed: tokio::sync::mpsc::Receiver<MarketFeed>, ctx: &mut Context<Self>) -> (u64, SpawnHandle) {
        let n = self.feeds.next;
        self.feeds.next += 1;
        let stream =
            tokio_stream::StreamExt::map(tokio_stream::wrappers::ReceiverStream::new(feed), move |f| Tagged(n, f));
        (n, ctx.add_stream(stream))
    }

    /// False for a bar or trade delivered already (only two overlapping
    /// feeds deliver one twice); notes the newest otherwise.
    fn is_new(&mut self, event: &MarketEvent) -> bool {
        match event {
            MarketEvent::Bar(b) => {
                let last = self.last_bar.entry(b.symbol.clone()).or_insert(i64::MIN);
                let new = b.open_time > *last;
                *last = (*last).max(b.open_time);
                new
            }
            MarketEvent::Trade(t) => {
                let last = self.last_trade.entry(t.symbol.clone()).or_insert(0);
                // Trade ids need not rise on every venue: compare only in an overlap.
                let new = self.feeds.retiring == 0 || t.trade_id > *last;
                *last = (*last).max(t.trade_id);
                new
            }
            _ => true,
        }
    }

    /// The pending feed connected: it delivers from now on, and the one it
    /// replaces stops after [`OVERLAP`].
    fn promote(&mut self, n: u64, ctx: &mut Context<Self>) {
        let Some((pending, handle)) = self.feeds.pending.take() else { return };
        debug_assert_eq!(pending, n);
        if let Some((_, old)) = self.feeds.current.replace((n, handle)) {
            self.feeds.retiring += 1;
            ctx.run_later(OVERLAP, move |act, ctx| {
                ctx.cancel_future(old);
                act.feeds.retiring -= 1;
            });
        }
        tracing::info!(symbols = self.feeds.streamed.len(), "market data: the feed for the new symbol set took over");
    }

    fn dispatch(&mut self, event: MarketEvent, ingress: Instant, ctx: &mut Context<Self>) {
        if !self.is_new(&event) {
            return;
        }
        let symbol = event.symbol().clone();
        self.prices.set(&symbol, event.reference_price(), event.ts_ms(), ingress);
        let Some(routes) = self.routes.get(&symbol) else { return };
        let last = routes.len().saturating_sub(1);
        let mut event = Some(event);
        for (i, route) in routes.iter().enumerate() {
            // The last route takes the event itself; the others get clones.
            let ev = if i == last { event.take() } else { event.clone() };
            let Some(ev) = ev else { continue };
            let msg = MarketTick { event: ev, ingress };
            // Bounded mailboxes: when a strategy is behind, wait for it (back
            // pressure on the feed) instead of dropping a bar or growing memory.
            if let Err(SendError::Full(msg)) = route.try_send(msg) {
                let route = route.clone();
                ctx.wait(
                    async move {
                        let _ = route.send(msg).await;
                    }
                    .into_actor(self),
                );
            }
        }
    }
}

impl Actor for MarketData {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(4096);
        // A restart starts with no feed of the old context.
        self.feeds =
            Feeds { next: self.feeds.next, streamed: std::mem::take(&mut self.feeds.streamed), ..Feeds::default() };
        if let Some(feed) = self.feed.take() {
            self.feeds.current = Some(self.attach(feed, ctx));
        } else if let Some(r) = &self.resubscribe {
            let (venue, symbols, interval) = (r.venue.clone(), r.symbols.clone(), r.interval_ms);
            ctx.spawn(async move { venue.subscribe_market(&symbols, interval).await }.into_actor(self).map(
                |result, act, ctx| match result {
                    Ok(feed) => {
                        act.feeds.current = Some(act.attach(feed, ctx));
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "cannot resubscribe to market data; restarting");
                        ctx.stop();
                    }
                },
            ));
        }
    }
}

impl Supervised for MarketData {
    fn restarting(&mut self, _ctx: &mut Self::Context) {
        tracing::warn!("market data restarting; resubscribing to the venue");
        self.connected = false;
    }
}

impl StreamHandler<Tagged> for MarketData {
    fn handle(&mut self, Tagged(n, item): Tagged, ctx: &mut Self::Context) {
        let started = Instant::now();
        let pending = self.feeds.pending.as_ref().is_some_and(|(p, _)| *p == n);
        if pending && matches!(item, MarketFeed::Status(StreamStatus::Connected)) {
            self.promote(n, ctx);
        }
        let current = self.feeds.current.as_ref().is_some_and(|(c, _)| *c == n);
        match item {
            MarketFeed::Event(event) => self.dispatch(event, started, ctx),
            // Only the delivering feed speaks for the market stream's health.
            MarketFeed::Status(_) if !current => {}
            MarketFeed::Status(status) => {
                let (connected, detail) = match status {
                    StreamStatus::Connected => (true, "connected".to_string()),
                    StreamStatus::Disconnected { reason } => (false, reason),
                };
                if connected && !self.connected {
                    tracing::info!(stream = "market", "market data connected");
                } else if !connected {
                    tracing::warn!(stream = "market", reason = %detail, "market data disconnected");
                    metrics().stream_reconnects_total.with_label_values(&["market"]).inc();
                }
                self.connected = connected;
                metrics().stream_connected.with_label_values(&["market"]).set(i64::from(connected));
                let _ = self.events.send(EngineEvent::Connectivity { stream: StreamKind::Market, connected, detail });
            }
        }
        metrics().actor_message_seconds.with_label_values(&["market_data"]).observe(started.elapsed().as_secs_f64());
    }

    fn finished(&mut self, _ctx: &mut Self::Context) {
        // The default would stop the actor; a venue whose feed ended is an
        // outage to report, not a reason to stop routing injected events.
        tracing::error!(stream = "market", "market data feed ended");
        self.connected = false;
        metrics().stream_connected.with_label_values(&["market"]).set(0);
        let _ = self.events.send(EngineEvent::Connectivity {
            stream: StreamKind::Market,
            connected: false,
            detail: "feed ended".into(),
        });
    }
}

impl Handler<InjectMarket> for MarketData {
    type Result = ();

    fn handle(&mut self, msg: InjectMarket, ctx: &mut Self::Context) {
        self.dispatch(msg.0, Instant::now(), ctx);
    }
}

impl Handler<crate::universe::HostJoined> for MarketData {
    type Result = ();

    fn handle(&mut self, msg: crate::universe::HostJoined, _ctx: &mut Self::Context) {
        for s in &msg.symbols {
            self.routes.entry(s.clone()).or_default().push(msg.host.clone().recipient());
        }
        self.hosts.insert(msg.id, (msg.symbols, msg.host));
    }
}

impl Handler<crate::universe::HostRetired> for MarketData {
    type Result = ();

    fn handle(&mut self, msg: crate::universe::HostRetired, _ctx: &mut Self::Context) {
        let Some((symbols, host)) = self.hosts.remove(&msg.id) else { return };
        let gone: Recipient<MarketTick> = host.recipient();
        for s in symbols {
            if let Some(routes) = self.routes.get_mut(&s) {
                routes.retain(|r| r != &gone);
            }
        }
    }
}

impl Handler<StreamSymbols> for MarketData {
    type Result = ResponseActFuture<Self, ()>;

    fn handle(&mut self, StreamSymbols(symbols): StreamSymbols, _ctx: &mut Self::Context) -> Self::Result {
        let Some(r) = &self.resubscribe else { return Box::pin(actix::fut::ready(())) };
        if symbols == self.feeds.streamed || symbols.is_empty() {
            return Box::pin(actix::fut::ready(()));
        }
        let (venue, interval) = (r.venue.clone(), r.interval_ms);
        let list: Vec<Symbol> = symbols.iter().cloned().collect();
        let subscribe = async move {
            let patience = Patience::new(Duration::from_secs(30));
            retrying(&patience, "subscribe to the new symbol set", || venue.subscribe_market(&list, interval)).await
        };
        Box::pin(subscribe.into_actor(self).map(move |result, act, ctx| match result {
            Ok(feed) => {
                let names: Vec<&str> = symbols.iter().map(|s| s.as_str()).collect();
                tracing::info!(symbols = %names.join(","), "market data: one feed for the new symbol set");
                // A newer set replaces a replacement that has not connected yet.
                if let Some((_, stale)) = act.feeds.pending.take() {
                    ctx.cancel_future(stale);
                }
                act.feeds.pending = Some(act.attach(feed, ctx));
                if let Some(r) = &mut act.resubscribe {
                    r.symbols = symbols.iter().cloned().collect();
                }
                act.feeds.streamed = symbols;
            }
            Err(e) => {
                tracing::error!(error = %e, "market data: cannot subscribe to the new symbol set; the feed streams the old one")
            }
        }))
    }
}
