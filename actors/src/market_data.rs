//! MarketData: turns the venue's market feed into market events for the
//! strategies that trade each symbol, and keeps the price board current.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use actix::prelude::*;
use keel_core::market::MarketEvent;
use keel_core::venue::{MarketFeed, StreamKind, StreamStatus};
use keel_core::Symbol;
use tokio::sync::broadcast;

use crate::events::EngineEvent;
use crate::messages::{InjectMarket, MarketTick};
use crate::metrics::metrics;
use crate::prices::PriceBoard;

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
}

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
    /// A market-data actor delivering each symbol's events to `routes`.
    pub fn new(
        routes: HashMap<Symbol, Vec<Recipient<MarketTick>>>,
        prices: Arc<PriceBoard>,
        events: broadcast::Sender<EngineEvent>,
        feed: Option<tokio::sync::mpsc::Receiver<MarketFeed>>,
        resubscribe: Option<Resubscribe>,
    ) -> Self {
        Self { routes, prices, events, feed, connected: false, resubscribe, hosts: HashMap::new() }
    }

    fn dispatch(&mut self, event: MarketEvent, ingress: Instant, ctx: &mut Context<Self>) {
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
        if let Some(feed) = self.feed.take() {
            ctx.add_stream(tokio_stream::wrappers::ReceiverStream::new(feed));
        } else if let Some(r) = &self.resubscribe {
            let (venue, symbols, interval) = (r.venue.clone(), r.symbols.clone(), r.interval_ms);
            ctx.spawn(async move { venue.subscribe_market(&symbols, interval).await }.into_actor(self).map(
                |result, _act, ctx| match result {
                    Ok(feed) => {
                        ctx.add_stream(tokio_stream::wrappers::ReceiverStream::new(feed));
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

impl StreamHandler<MarketFeed> for MarketData {
    fn handle(&mut self, item: MarketFeed, ctx: &mut Self::Context) {
        let started = Instant::now();
        match item {
            MarketFeed::Event(event) => self.dispatch(event, started, ctx),
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

impl Handler<crate::universe::AddMarketFeed> for MarketData {
    type Result = ();

    fn handle(&mut self, msg: crate::universe::AddMarketFeed, ctx: &mut Self::Context) {
        if let Some(r) = &mut self.resubscribe {
            r.symbols.extend(msg.symbols.iter().cloned());
        }
        tracing::info!(symbols = ?msg.symbols, "market data: feed added for symbols that joined the universe");
        ctx.add_stream(tokio_stream::wrappers::ReceiverStream::new(msg.feed));
    }
}
