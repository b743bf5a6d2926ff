//! EngineHandle: how the operator surfaces (CLI, HTTP, Telegram) and tests talk
//! to a running engine — queries in, commands out, events to subscribe to.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use keel_core::market::MarketEvent;
use keel_core::order::Order;
use keel_core::store::{AuditRecord, EquityPoint, Store, AUDIT_KEEP};
use keel_core::strategy::Signal;
use keel_core::trading::{EmergencyStop, TradingState};
use keel_core::venue::Venue;
use keel_core::{StrategyId, Symbol};
use serde::Serialize;
use tokio::sync::broadcast;

use crate::error::EmergencyStopError;
use crate::events::EngineEvent;
use crate::market_data::MarketData;
use crate::messages::{
    CancelAll, CancelOpen, Flatten, GetOpenOrders, GetPortfolio, GetRiskStatus, GetStrategyStatus, InjectMarket,
    Resume, SetEmergencyStop, SetPaused, SignalReceived,
};
use crate::order_router::OrderRouter;
use crate::portfolio::{Portfolio, PortfolioSnapshot};
use crate::prices::PriceBoard;
use crate::risk_guard::{RiskGuard, RiskStatus};
use crate::store_writer::StoreWriter;
use crate::strategy_host::{StrategyHost, StrategyStatus};
use crate::strategy_pnl::StrategyPnl;
use crate::supervisor::Supervisor;

/// An engine command failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum CommandError {
    /// No such strategy.
    #[error("unknown strategy `{0}`")]
    UnknownStrategy(String),
    /// An actor did not answer (the engine is stopping or an actor is gone).
    #[error("engine did not answer: {0}")]
    Mailbox(String),
    /// Setting or clearing the emergency stop did not complete.
    #[error(transparent)]
    EmergencyStop(#[from] EmergencyStopError),
    /// The command failed.
    #[error("{0}")]
    Failed(String),
}

impl From<MailboxError> for CommandError {
    fn from(e: MailboxError) -> Self {
        Self::Mailbox(e.to_string())
    }
}

/// The engine's overall status.
#[derive(Debug, Clone, Serialize)]
pub struct EngineStatus {
    /// Trading state.
    pub trading_state: TradingState,
    /// Why.
    pub trading_state_reason: String,
    /// Emergency stop.
    pub emergency_stop: EmergencyStop,
    /// Venue name.
    pub venue: String,
    /// Seconds since start.
    pub uptime_seconds: u64,
    /// Strategies.
    pub strategies: Vec<StrategyStatus>,
    /// Portfolio.
    pub portfolio: PortfolioSnapshot,
    /// Open orders.
    pub open_orders: usize,
    /// Risk guard details.
    pub risk: RiskStatus,
    /// The universe's members and leaving symbols (absent without `[universe]`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub universe: Option<crate::universe::UniverseStatus>,
    /// The exit state of every position with exits: strategy → symbol → state.
    pub exits: BTreeMap<String, BTreeMap<String, keel_core::exits::ExitState>>,
}

pub(crate) struct Parts {
    pub risk: Addr<RiskGuard>,
    pub router: Addr<OrderRouter>,
    pub portfolio: Addr<Portfolio>,
    pub market: Addr<MarketData>,
    pub hosts: crate::universe::HostRegistry,
    pub supervisor: Addr<Supervisor>,
    /// Kept so the universe refreshes as long as the engine runs.
    pub universe: Option<Addr<crate::universe::Universe>>,
    pub events: broadcast::Sender<EngineEvent>,
    pub prices: Arc<PriceBoard>,
    pub writer: StoreWriter,
    pub venue: Arc<dyn Venue>,
    pub started: Instant,
    pub account: keel_core::account::AccountView,
}

/// A cheap-to-clone handle to a running engine.
#[derive(Clone)]
pub struct EngineHandle {
    parts: Arc<Parts>,
}

impl EngineHandle {
    pub(crate) fn new(parts: Parts) -> Self {
        Self { parts: Arc::new(parts) }
    }

    /// Subscribes to engine events.
    pub fn subscribe(&self) -> broadcast::Receiver<EngineEvent> {
        self.parts.events.subscribe()
    }

    /// The event sender (to publish from operator surfaces).
    pub fn events(&self) -> broadcast::Sender<EngineEvent> {
        self.parts.events.clone()
    }

    /// The latest prices.
    pub fn prices(&self) -> &Arc<PriceBoard> {
        &self.parts.prices
    }

    /// The venue.
    pub fn venue(&self) -> &Arc<dyn Venue> {
        &self.parts.venue
    }

    /// The store, for an operator surface's own records (e.g. the webhook's
    /// alert ids). Its calls block: make them on a blocking-pool thread.
    pub fn store(&self) -> &keel_core::store::SharedStore {
        self.parts.writer.store()
    }

    /// Time since start.
    pub fn uptime(&self) -> Duration {
        self.parts.started.elapsed()
    }

    /// The running strategy instances (template instances come and go with the universe).
    fn hosts(&self) -> BTreeMap<StrategyId, Addr<StrategyHost>> {
        self.parts.hosts.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Strategy ids, in order.
    pub fn strategy_ids(&self) -> Vec<StrategyId> {
        self.hosts().into_keys().collect()
    }

    /// The universe's members and leaving symbols (`None` without `[universe]`).
    pub async fn universe(&self) -> Result<Option<crate::universe::UniverseStatus>, CommandError> {
        match &self.parts.universe {
            Some(u) => Ok(Some(u.send(crate::universe::GetUniverse).await?)),
            None => Ok(None),
        }
    }

    /// Every strategy's status, with its PnL from the account's ledger.
    pub async fn strategies(&self) -> Result<Vec<StrategyStatus>, CommandError> {
        let mut out = Vec::new();
        for h in self.hosts().values() {
            let mut status = h.send(GetStrategyStatus).await?;
            status.pnl = StrategyPnl::of(&self.parts.account, &self.parts.prices, &status.id);
            out.push(status);
        }
        Ok(out)
    }

    /// The portfolio.
    pub async fn portfolio(&self) -> Result<PortfolioSnapshot, CommandError> {
        Ok(self.parts.portfolio.send(GetPortfolio).await?)
    }

    /// Open orders.
    pub async fn open_orders(&self) -> Result<Vec<Order>, CommandError> {
        Ok(self.parts.router.send(GetOpenOrders).await?)
    }

    /// The risk guard's state.
    pub async fn risk(&self) -> Result<RiskStatus, CommandError> {
        Ok(self.parts.risk.send(GetRiskStatus).await?)
    }

    /// Everything at once.
    pub async fn status(&self) -> Result<EngineStatus, CommandError> {
        let risk = self.risk().await?;
        let strategies = self.strategies().await?;
        let exits = strategies
            .iter()
            .filter(|s| !s.exits.is_empty())
            .map(|s| (s.id.to_string(), s.exits.iter().map(|e| (e.symbol.to_string(), e.clone())).collect()))
            .collect();
        Ok(EngineStatus {
            trading_state: risk.trading_state,
            trading_state_reason: risk.reason.clone(),
            emergency_stop: risk.emergency_stop.clone(),
            venue: self.parts.venue.name().to_string(),
            uptime_seconds: self.uptime().as_secs(),
            strategies,
            portfolio: self.portfolio().await?,
            open_orders: self.open_orders().await?.len(),
            risk,
            universe: self.universe().await?,
            exits,
        })
    }

    /// Sets the emergency stop; returns once it is on disk.
    pub async fn emergency_stop(&self, reason: &str, by: &str, flatten: bool) -> Result<(), CommandError> {
        self.parts
            .risk
            .send(SetEmergencyStop { reason: reason.to_string(), by: by.to_string(), flatten })
            .await?
            .map_err(CommandError::from)
    }

    /// Clears the emergency stop (operator only); returns once it is on disk.
    pub async fn resume(&self, by: &str) -> Result<(), CommandError> {
        self.parts.risk.send(Resume { by: by.to_string() }).await?.map_err(CommandError::from)
    }

    /// Pauses or resumes one strategy.
    pub async fn set_paused(&self, id: &str, paused: bool, reason: &str) -> Result<(), CommandError> {
        let host = self.hosts().get(id).cloned().ok_or_else(|| CommandError::UnknownStrategy(id.to_string()))?;
        host.send(SetPaused { paused, reason: reason.to_string() }).await?;
        Ok(())
    }

    /// Cancels every open order (optionally of one symbol); returns how many were asked.
    pub async fn cancel_all(&self, symbol: Option<Symbol>, reason: &str) -> Result<usize, CommandError> {
        Ok(self.parts.router.send(CancelAll { symbol, reason: reason.to_string() }).await?)
    }

    /// Cancels one open order by client order id, through the router like
    /// [`Self::cancel_all`]; false when it is not an open order.
    pub async fn cancel_order(&self, client_order_id: &str, reason: &str) -> Result<bool, CommandError> {
        let msg = CancelOpen { client_order_id: client_order_id.to_string(), reason: reason.to_string() };
        Ok(self.parts.router.send(msg).await?)
    }

    /// Appends an operator action to the audit log (on the store-writer
    /// thread, after the writes of the action itself); returns once it is on disk.
    pub async fn record_audit(&self, record: AuditRecord) -> Result<(), CommandError> {
        self.parts
            .writer
            .run(move |s| s.append_audit(&record, AUDIT_KEEP))
            .await
            .map_err(|e| CommandError::Failed(e.to_string()))?
            .map_err(|e| CommandError::Failed(format!("audit record not written: {e}")))
    }

    /// The newest `limit` audit records, newest first (read on a
    /// blocking-pool thread, not the store writer's).
    pub async fn audit(&self, limit: usize) -> Result<Vec<AuditRecord>, CommandError> {
        self.read_store("audit", move |s| s.audit(limit)).await
    }

    /// The newest `limit` equity points, oldest first (read on a
    /// blocking-pool thread, not the store writer's).
    pub async fn equity_history(&self, limit: usize) -> Result<Vec<EquityPoint>, CommandError> {
        self.read_store("equity history", move |s| s.equity_history(limit)).await
    }

    /// Runs a store read on a blocking-pool thread (sled reads are concurrent
    /// with the writer's).
    async fn read_store<T: Send + 'static>(
        &self,
        what: &'static str,
        read: impl FnOnce(&dyn Store) -> keel_core::store::StoreResult<T> + Send + 'static,
    ) -> Result<T, CommandError> {
        let store = self.parts.writer.store().clone();
        tokio::task::spawn_blocking(move || read(store.as_ref()))
            .await
            .map_err(|e| CommandError::Failed(format!("{what} read did not finish: {e}")))?
            .map_err(|e| CommandError::Failed(e.to_string()))
    }

    /// Closes positions with reduce-only market orders; returns how many orders were asked.
    pub async fn flatten(&self, symbol: Option<Symbol>) -> Result<usize, CommandError> {
        Ok(self.parts.risk.send(Flatten { symbol }).await?)
    }

    /// Delivers an external signal to a strategy.
    pub async fn signal(&self, id: &str, signal: Signal) -> Result<(), CommandError> {
        let host = self.hosts().get(id).cloned().ok_or_else(|| CommandError::UnknownStrategy(id.to_string()))?;
        host.send(SignalReceived(signal)).await?;
        Ok(())
    }

    /// The most recent fills from the store (the trade journal), in the order
    /// they were recorded,
    /// at most `limit` of them. Read on a blocking-pool thread straight from
    /// the store (sled reads are concurrent), not on the store-writer thread:
    /// a long journal read by an operator must not delay the write-ahead of
    /// orders and fills queued behind it.
    pub async fn recent_fills(&self, limit: usize) -> Result<Vec<keel_core::fill::Fill>, CommandError> {
        self.read_store("journal", move |s| s.recent_fills(limit)).await
    }

    /// Realized PnL and fees of the fills at or after `since_ms`, from the
    /// account checkpoint kept before that time plus the fills after it (read
    /// on a blocking-pool thread, not the store writer's).
    pub async fn period_pnl(&self, since_ms: i64) -> Result<crate::reconcile::PeriodPnl, CommandError> {
        let (store, assets) = (self.parts.writer.store().clone(), self.parts.account.assets());
        tokio::task::spawn_blocking(move || crate::reconcile::period_pnl(store.as_ref(), &assets, since_ms))
            .await
            .map_err(|e| CommandError::Failed(format!("PnL read did not finish: {e}")))?
            .map_err(|e| CommandError::Failed(e.to_string()))
    }

    /// Each symbol the strategies trade, with the hosts trading it (the
    /// routes of futures events).
    async fn futures_routes(&self) -> Result<crate::futures_feed::HostsBySymbol, CommandError> {
        let mut routes = crate::futures_feed::HostsBySymbol::new();
        for (id, h) in self.hosts() {
            for symbol in h.send(GetStrategyStatus).await?.symbols {
                routes.entry(symbol).or_default().push((id.clone(), h.clone().recipient()));
            }
        }
        Ok(routes)
    }

    /// Starts the futures feed ([`crate::futures_feed`]) from `data` for the
    /// symbols the strategies trade that `keep` accepts (those the venue
    /// lists as perpetuals); it stops when the engine shuts down. With a
    /// universe, its instances joining and retiring later are fed and
    /// dropped as they come and go.
    pub async fn start_futures_feed(
        &self,
        data: Arc<dyn keel_core::futures::FuturesData>,
        cfg: crate::futures_feed::FuturesFeedConfig,
        keep: impl Fn(&Symbol) -> bool + Send + Sync + 'static,
    ) -> Result<Addr<crate::futures_feed::FuturesFeed>, CommandError> {
        let routes = self.futures_routes().await?;
        let events = self.parts.events.clone();
        let feed = crate::futures_feed::FuturesFeed::new(data, routes, Arc::new(keep), cfg, events).start();
        if let Some(universe) = &self.parts.universe {
            universe.send(crate::universe::AttachFutures(feed.clone().recipient())).await?;
        }
        Ok(feed)
    }

    /// Delivers a futures event to the strategies trading its symbol, as the
    /// futures feed does (tests and replays).
    pub async fn inject_futures(&self, event: keel_core::futures::FuturesEvent) -> Result<(), CommandError> {
        let routes = self.futures_routes().await?;
        for (_, r) in routes.get(event.symbol()).into_iter().flatten() {
            r.send(crate::messages::FuturesTick(event.clone())).await?;
        }
        Ok(())
    }

    /// Injects a market event as if the venue had sent it.
    pub async fn inject_market(&self, event: MarketEvent) -> Result<(), CommandError> {
        Ok(self.parts.market.send(InjectMarket(event)).await?)
    }

    /// Graceful stop: strategies are paused so nothing new starts, in-flight
    /// work settles, the store is flushed.
    pub async fn shutdown(&self, settle: Duration) {
        let _ = self.parts.events.send(EngineEvent::ShuttingDown);
        for h in self.hosts().values() {
            let _ = h.send(SetPaused { paused: true, reason: "shutdown".into() }).await;
        }
        // Let orders already on their way come back from the venue.
        let deadline = Instant::now() + settle;
        while Instant::now() < deadline {
            let pending = self
                .open_orders()
                .await
                .map(|o| {
                    o.iter()
                        .filter(|o| {
                            matches!(
                                o.status,
                                keel_core::order::OrderStatus::New | keel_core::order::OrderStatus::Submitted
                            )
                        })
                        .count()
                })
                .unwrap_or(0);
            if pending == 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // The account as it stands, so the next start replays nothing.
        let assets = self.parts.account.assets();
        let now = keel_core::clock::Clock::now_ms(&keel_core::clock::SystemClock);
        match self.parts.writer.run(move |s| crate::reconcile::checkpoint_now(s, &assets, now)).await {
            Ok(Ok(c)) => tracing::info!(fill_seq = c.current.fill_seq, "account checkpoint written"),
            Ok(Err(e)) => tracing::error!(error = %e, "account checkpoint not written at shutdown"),
            Err(e) => tracing::error!(error = %e, "account checkpoint not written at shutdown"),
        }
        match self.parts.writer.run(|s| s.flush()).await {
            Ok(Ok(())) => tracing::info!("store flushed"),
            Ok(Err(e)) => tracing::error!(error = %e, "store flush failed at shutdown"),
            Err(e) => tracing::error!(error = %e, "store flush failed at shutdown"),
        }
        let _ = &self.parts.supervisor;
    }
}
