//! FuturesFeed: perpetual-futures data for the strategies, from a venue's
//! [`FuturesData`] (Binance USDⓈ-M; none on paper or Coinbase).
//!
//! For the symbols the strategies trade it keeps one mark-price
//! subscription (mark, index, the funding estimate and the next funding
//! time), polls open interest one symbol at a time on a paced schedule (one
//! request of weight 1 per `oi_every / symbols`), reads each symbol's
//! funding interval at start, and reads the settled funding a little after
//! each funding time — learned from the data: when a symbol's next funding
//! time moves forward, the one before has settled. The settled rows' spacing
//! updates the interval (a symbol may switch to 1 h after a capped
//! settlement). Every event goes to the hosts of the strategies trading its
//! symbol as a [`FuturesTick`]. It stops when the engine shuts down.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use keel_core::futures::{
    observed_interval_hours, FundingInterval, FundingQuery, FuturesData, FuturesEvent, FuturesFeed as Feed,
    MarkPriceSpeed,
};
use keel_core::venue::StreamStatus;
use keel_core::Symbol;
use tokio::sync::broadcast;

use crate::events::EngineEvent;
use crate::messages::FuturesTick;
use crate::metrics::metrics;

/// The `stream` label of the futures mark-price stream in the stream metrics.
pub const STREAM_LABEL: &str = "futures";

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

/// The futures feed actor.
pub struct FuturesFeed {
    data: Arc<dyn FuturesData>,
    routes: HashMap<Symbol, Vec<Recipient<FuturesTick>>>,
    symbols: Vec<Symbol>,
    cfg: FuturesFeedConfig,
    events: broadcast::Sender<EngineEvent>,
    /// The next funding time each symbol's mark prices last gave.
    next_funding: HashMap<Symbol, i64>,
    /// The last settlement delivered per symbol (ms).
    settled: HashMap<Symbol, i64>,
    /// Each symbol's funding interval as last delivered.
    intervals: HashMap<Symbol, u32>,
    oi_cursor: usize,
    connected: bool,
}

impl FuturesFeed {
    /// A feed for the symbols of `routes`, delivering to them.
    pub fn new(
        data: Arc<dyn FuturesData>,
        routes: HashMap<Symbol, Vec<Recipient<FuturesTick>>>,
        cfg: FuturesFeedConfig,
        events: broadcast::Sender<EngineEvent>,
    ) -> Self {
        let symbols: Vec<Symbol> = routes.keys().cloned().collect::<BTreeSet<_>>().into_iter().collect();
        Self {
            data,
            routes,
            symbols,
            cfg,
            events,
            next_funding: HashMap::new(),
            settled: HashMap::new(),
            intervals: HashMap::new(),
            oi_cursor: 0,
            connected: false,
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
        let Some(routes) = self.routes.get(event.symbol()) else { return };
        for r in routes {
            r.do_send(FuturesTick(event.clone()));
        }
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
        let Some(symbol) = self.symbols.get(self.oi_cursor % self.symbols.len().max(1)).cloned() else { return };
        self.oi_cursor = self.oi_cursor.wrapping_add(1);
        let data = self.data.clone();
        ctx.spawn(async move { data.open_interest(&symbol).await }.into_actor(self).map(
            |result, act, ctx| match result {
                Ok(oi) => act.dispatch(FuturesEvent::OpenInterest(oi), ctx),
                Err(e) => tracing::warn!(error = %e, "open interest not read"),
            },
        ));
    }
}

impl Actor for FuturesFeed {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        if self.symbols.is_empty() {
            ctx.stop();
            return;
        }
        metrics().stream_connected.with_label_values(&[STREAM_LABEL]).set(0);
        let (data, symbols, speed) = (self.data.clone(), self.symbols.clone(), self.cfg.speed);
        ctx.spawn(async move { data.subscribe_mark_price(&symbols, speed).await }.into_actor(self).map(
            |result, _act, ctx| match result {
                Ok(feed) => {
                    ctx.add_stream(tokio_stream::wrappers::ReceiverStream::new(feed));
                }
                Err(e) => tracing::error!(error = %e, "cannot subscribe to futures mark prices"),
            },
        ));
        let data = self.data.clone();
        ctx.spawn(async move { data.funding_info().await }.into_actor(self).map(|result, act, ctx| match result {
            Ok(info) => {
                let now = keel_core::clock::Clock::now_ms(&keel_core::clock::SystemClock);
                for symbol in act.symbols.clone() {
                    let interval_hours = info.interval_hours(&symbol);
                    act.dispatch(FuturesEvent::Interval(FundingInterval { symbol, interval_hours, ts_ms: now }), ctx);
                }
            }
            Err(e) => tracing::warn!(error = %e, "funding intervals not read; annualising at the default"),
        }));
        let every = self.cfg.oi_every / u32::try_from(self.symbols.len()).unwrap_or(u32::MAX).max(1);
        self.poll_open_interest(ctx);
        ctx.run_interval(every.max(Duration::from_millis(10)), |act, ctx| act.poll_open_interest(ctx));
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
        tracing::info!(symbols = self.symbols.len(), "futures feed started");
    }

    fn stopped(&mut self, _ctx: &mut Self::Context) {
        metrics().stream_connected.with_label_values(&[STREAM_LABEL]).set(0);
        tracing::info!("futures feed stopped");
    }
}

impl Handler<LastSettlement> for FuturesFeed {
    type Result = Option<i64>;

    fn handle(&mut self, msg: LastSettlement, _ctx: &mut Self::Context) -> Option<i64> {
        self.settled.get(&msg.0).copied()
    }
}

impl StreamHandler<Feed> for FuturesFeed {
    fn handle(&mut self, item: Feed, ctx: &mut Self::Context) {
        match item {
            Feed::Event(event) => self.dispatch(event, ctx),
            Feed::Status(StreamStatus::Connected) => {
                if !self.connected {
                    tracing::info!(stream = STREAM_LABEL, "futures mark-price stream connected");
                }
                self.connected = true;
                metrics().stream_connected.with_label_values(&[STREAM_LABEL]).set(1);
            }
            Feed::Status(StreamStatus::Disconnected { reason }) => {
                tracing::warn!(stream = STREAM_LABEL, reason = %reason, "futures mark-price stream disconnected");
                self.connected = false;
                metrics().stream_connected.with_label_values(&[STREAM_LABEL]).set(0);
                metrics().stream_reconnects_total.with_label_values(&[STREAM_LABEL]).inc();
            }
        }
    }

    fn finished(&mut self, _ctx: &mut Self::Context) {
        // The client reconnects by itself; its feed ends only with it.
        tracing::warn!(stream = STREAM_LABEL, "futures mark-price feed ended");
        self.connected = false;
        metrics().stream_connected.with_label_values(&[STREAM_LABEL]).set(0);
    }
}
