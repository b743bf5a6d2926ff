//! The in-process paper venue: the matching core behind the [`Venue`] trait,
//! with a seeded GBM market running in accelerated time.
//!
//! Time is simulated: each tick advances the simulated clock by
//! `bar_interval / ticks_per_bar`; [`PaperVenue::spawn_clock`] runs ticks every
//! `bar_wall_time / ticks_per_bar` of wall time (one 1-minute bar every 250 ms by
//! default). Tests and benchmarks can instead call [`PaperVenue::tick`] directly.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use rust_decimal::Decimal;
use tokio::sync::mpsc;

use super::sim_account::{deliver, SimAccount, ACCOUNT};
use super::{
    MarketFeed, OrderReport, OrderRequest, PlaceResult, StreamStatus, UserEvent, Venue, VenueError, VenueResult,
};
use crate::balance::Balance;
use crate::fill::{Fill, FillCursor};
use crate::instrument::{ceil_to_step, floor_to_step, Instrument};
use crate::market::{Bar, BookTicker, MarketEvent, Trade};
use crate::order::Side;
use crate::sim::BarBuilder;
use crate::sim::{Execution, FeeSchedule, MatchingCore, PriceGen, PricePath};
use crate::symbol::Symbol;

const BPS: Decimal = Decimal::from_parts(10_000, 0, 0, false, 0);
const HISTORY_LIMIT: usize = 5_000;

/// One simulated symbol.
#[derive(Debug, Clone)]
pub struct PaperSymbol {
    /// The instrument and its filters.
    pub instrument: Instrument,
    /// Its price path.
    pub path: PricePath,
    /// Spread around the mid, in basis points.
    pub spread_bps: Decimal,
    /// Quantity at the touch.
    pub touch_qty: Decimal,
}

/// Settings of a paper venue.
#[derive(Debug, Clone)]
pub struct PaperConfig {
    /// Simulated symbols.
    pub symbols: Vec<PaperSymbol>,
    /// Starting balances.
    pub balances: Vec<Balance>,
    /// Fees.
    pub fees: FeeSchedule,
    /// Synthetic levels beyond the touch.
    pub depth_levels: u32,
    /// Simulated bar interval.
    pub bar_interval_ms: i64,
    /// Quote updates per bar.
    pub ticks_per_bar: u32,
    /// Wall time per bar when the clock runs.
    pub bar_wall_ms: u64,
    /// Closed bars generated before the start, so strategies can warm up.
    pub history_bars: usize,
    /// Simulated time of the first history bar (ms since the epoch).
    pub start_ms: i64,
    /// First order and trade id (keep ids unique across restarts).
    pub id_base: u64,
}

impl PaperSymbol {
    /// The simulated instrument a `[[symbol]]` block describes.
    pub fn from_config(s: &crate::config::SymbolConfig) -> Self {
        Self { instrument: s.instrument(), path: s.price_path(), spread_bps: s.spread_bps, touch_qty: s.touch_qty }
    }
}

struct SymbolSim {
    gen: PriceGen,
    bars: BarBuilder,
    history: VecDeque<Bar>,
    spread_bps: Decimal,
    touch_qty: Decimal,
    tick: Decimal,
    step: Decimal,
    public_trade_id: u64,
}

/// The simulated market: prices, bars, the clock and who hears of them.
/// Locked before the account when both are.
struct State {
    sims: HashMap<Symbol, SymbolSim>,
    order: Vec<Symbol>,
    now_ms: i64,
    tick_ms: i64,
    market_subs: Vec<(Vec<Symbol>, mpsc::Sender<MarketFeed>)>,
}

/// The in-process simulated venue.
pub struct PaperVenue {
    state: Mutex<State>,
    account: SimAccount,
    bar_interval_ms: i64,
    ticks_per_bar: u32,
    bar_wall_ms: u64,
}

impl PaperVenue {
    /// Builds the venue and generates its warm-up history.
    pub fn new(cfg: PaperConfig) -> Arc<Self> {
        let mut core = MatchingCore::new(cfg.fees, cfg.depth_levels).with_id_base(cfg.id_base);
        let tick_ms = (cfg.bar_interval_ms / i64::from(cfg.ticks_per_bar.max(1))).max(1);
        let mut sims = HashMap::new();
        let mut order = Vec::new();
        for s in &cfg.symbols {
            core.add_instrument(s.instrument.clone());
            let sym = s.instrument.symbol.clone();
            order.push(sym.clone());
            sims.insert(
                sym.clone(),
                SymbolSim {
                    gen: PriceGen::new(&s.path, s.instrument.tick_size),
                    bars: BarBuilder::new(sym, cfg.bar_interval_ms),
                    history: VecDeque::new(),
                    spread_bps: s.spread_bps,
                    touch_qty: s.touch_qty,
                    tick: s.instrument.tick_size,
                    step: s.instrument.step_size,
                    public_trade_id: cfg.id_base,
                },
            );
        }
        core.add_account(ACCOUNT, cfg.balances.clone());
        let start = cfg.start_ms - cfg.start_ms.rem_euclid(cfg.bar_interval_ms);
        let mut state = State { sims, order, now_ms: start, tick_ms, market_subs: Vec::new() };
        // History runs without drift, so trading starts near `start_price`
        // whatever the configured trend; the drift applies from the start on.
        for s in &cfg.symbols {
            if let Some(sim) = state.sims.get_mut(&s.instrument.symbol) {
                sim.gen.set_dynamics(0.0, s.path.volatility);
            }
        }
        let history_ticks = cfg.history_bars as u64 * u64::from(cfg.ticks_per_bar.max(1));
        for _ in 0..history_ticks {
            state.advance(&mut core);
        }
        for s in &cfg.symbols {
            if let Some(sim) = state.sims.get_mut(&s.instrument.symbol) {
                sim.gen.set_dynamics(s.path.drift, s.path.volatility);
            }
        }
        Arc::new(Self {
            state: Mutex::new(state),
            account: SimAccount::new(core, None),
            bar_interval_ms: cfg.bar_interval_ms,
            ticks_per_bar: cfg.ticks_per_bar.max(1),
            bar_wall_ms: cfg.bar_wall_ms,
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A poisoned lock means a panic inside the simulation; its state is
        // still the best there is, so keep serving rather than failing forever.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The simulated time now.
    pub fn now_ms(&self) -> i64 {
        self.lock().now_ms
    }

    /// Advances the market by one tick and delivers the events it produced.
    pub async fn tick(&self) {
        let (market, user) = {
            let mut st = self.lock();
            // A feed the engine dropped (it took a newer one) gets nothing more.
            st.market_subs.retain(|(_, tx)| !tx.is_closed());
            let mut account = self.account.lock();
            let (events, executions) = st.advance(&mut account.core);
            let market: Vec<(mpsc::Sender<MarketFeed>, MarketFeed)> = events
                .into_iter()
                .flat_map(|ev| {
                    st.market_subs
                        .iter()
                        .filter(|(syms, _)| syms.iter().any(|s| s == ev.symbol()))
                        .map(|(_, tx)| (tx.clone(), MarketFeed::Event(ev.clone())))
                        .collect::<Vec<_>>()
                })
                .collect();
            let user = account.record(executions);
            (market, user)
        };
        deliver(market, user).await;
    }

    /// Runs ticks in accelerated wall time until the venue is dropped.
    pub fn spawn_clock(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let weak = Arc::downgrade(self);
        let period = Duration::from_micros((self.bar_wall_ms * 1000 / u64::from(self.ticks_per_bar)).max(1));
        tokio::spawn(async move {
            let mut interval = tokio::time::interval(period);
            // After a stall, do not replay a burst of missed ticks.
            interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                interval.tick().await;
                let Some(venue) = weak.upgrade() else { break };
                venue.tick().await;
            }
        })
    }

    /// Overrides a symbol's drift and volatility (scripted scenarios such as a crash).
    pub fn set_dynamics(&self, symbol: &str, drift: f64, volatility: f64) {
        if let Some(sim) = self.lock().sims.get_mut(symbol) {
            sim.gen.set_dynamics(drift, volatility);
        }
    }
}

impl State {
    /// One tick: move prices, match resting orders, build bars.
    fn advance(&mut self, core: &mut MatchingCore) -> (Vec<MarketEvent>, Vec<Execution>) {
        self.now_ms += self.tick_ms;
        let now = self.now_ms;
        let mut events = Vec::new();
        let mut executions = Vec::new();
        for sym in &self.order {
            let Some(sim) = self.sims.get_mut(sym) else { continue };
            let mid = sim.gen.step(self.tick_ms);
            let half = mid * sim.spread_bps / BPS / Decimal::TWO;
            let bid = floor_to_step(mid - half, sim.tick).max(sim.tick);
            let ask = ceil_to_step(mid + half, sim.tick).max(bid + sim.tick);
            // Touch sizes vary between 50 % and 150 % of the configured size.
            let size = |u: f64| {
                let factor = Decimal::try_from(0.5 + u).unwrap_or(Decimal::ONE);
                floor_to_step(sim.touch_qty * factor, sim.step).max(sim.step)
            };
            let (bid_qty, ask_qty) = (size(sim.gen.unit()), size(sim.gen.unit()));
            let book = BookTicker { symbol: sym.clone(), bid, bid_qty, ask, ask_qty, ts_ms: now };
            executions.extend(core.set_quote(book.clone()));
            sim.public_trade_id += 1;
            let aggressor = if sim.gen.unit() < 0.5 { Side::Buy } else { Side::Sell };
            let trade_qty = floor_to_step(sim.touch_qty / Decimal::TEN, sim.step).max(sim.step);
            let trade = Trade {
                symbol: sym.clone(),
                trade_id: sim.public_trade_id,
                price: mid,
                qty: trade_qty,
                aggressor,
                ts_ms: now,
            };
            if let Some(bar) = sim.bars.push(now, mid, trade_qty) {
                sim.history.push_back(bar.clone());
                if sim.history.len() > HISTORY_LIMIT {
                    sim.history.pop_front();
                }
                events.push(MarketEvent::Bar(bar));
            }
            events.push(MarketEvent::Book(book));
            events.push(MarketEvent::Trade(trade));
        }
        (events, executions)
    }
}

#[async_trait]
impl Venue for PaperVenue {
    fn name(&self) -> &str {
        "paper"
    }

    async fn instruments(&self) -> VenueResult<Vec<Instrument>> {
        Ok(self.account.instruments())
    }

    async fn server_time(&self) -> VenueResult<i64> {
        Ok(self.now_ms())
    }

    async fn klines(
        &self,
        symbol: &Symbol,
        interval_ms: i64,
        start_ms: Option<i64>,
        limit: usize,
    ) -> VenueResult<Vec<Bar>> {
        if interval_ms != self.bar_interval_ms {
            return Err(VenueError::Rejected {
                code: -1120,
                reason: format!("only {} ms bars are simulated", self.bar_interval_ms),
            });
        }
        let st = self.lock();
        let sim = st
            .sims
            .get(symbol)
            .ok_or_else(|| VenueError::Rejected { code: -1121, reason: "Invalid symbol.".into() })?;
        let bars: Vec<Bar> =
            sim.history.iter().filter(|b| start_ms.is_none_or(|s| b.open_time >= s)).cloned().collect();
        let skip = if start_ms.is_some() { 0 } else { bars.len().saturating_sub(limit) };
        Ok(bars.into_iter().skip(skip).take(limit).collect())
    }

    async fn best_bid_ask(&self, symbol: &Symbol) -> VenueResult<BookTicker> {
        self.account.best_bid_ask(symbol, || "Invalid symbol.".into())
    }

    async fn place_order(&self, request: &OrderRequest) -> VenueResult<PlaceResult> {
        // The clock stands still while the order meets the book.
        let (result, deliveries) = {
            let st = self.lock();
            self.account.place_at(request, st.now_ms)
        };
        deliver(Vec::new(), deliveries).await;
        result
    }

    async fn cancel_order(&self, symbol: &Symbol, client_order_id: &str) -> VenueResult<OrderReport> {
        let (result, deliveries) = {
            let st = self.lock();
            self.account.cancel_at(symbol, client_order_id, st.now_ms)
        };
        deliver(Vec::new(), deliveries).await;
        result
    }

    async fn query_order(&self, _symbol: &Symbol, client_order_id: &str) -> VenueResult<Option<OrderReport>> {
        Ok(self.account.query_order(client_order_id))
    }

    async fn open_orders(&self, symbol: Option<&Symbol>) -> VenueResult<Vec<OrderReport>> {
        Ok(self.account.open_orders(symbol))
    }

    async fn balances(&self) -> VenueResult<Vec<Balance>> {
        Ok(self.account.balances())
    }

    async fn my_trades(&self, symbol: &Symbol, since: Option<&FillCursor>) -> VenueResult<Vec<Fill>> {
        Ok(self.account.my_trades(symbol, since))
    }

    async fn subscribe_market(&self, symbols: &[Symbol], interval_ms: i64) -> VenueResult<mpsc::Receiver<MarketFeed>> {
        if interval_ms != self.bar_interval_ms {
            return Err(VenueError::Rejected {
                code: -1120,
                reason: format!("only {} ms bars are simulated", self.bar_interval_ms),
            });
        }
        let (tx, rx) = mpsc::channel(4096);
        let _ = tx.try_send(MarketFeed::Status(StreamStatus::Connected));
        self.lock().market_subs.push((symbols.to_vec(), tx));
        Ok(rx)
    }

    /// The configured symbols; their day is the closed bars of the last 24
    /// hours (quote volume: each bar's volume at its close).
    async fn universe_candidates(&self) -> VenueResult<Vec<crate::universe::Candidate>> {
        let st = self.lock();
        let account = self.account.lock();
        let since = st.now_ms - 86_400_000;
        let mut out = Vec::with_capacity(st.order.len());
        for symbol in &st.order {
            let (Some(sim), Some(instrument)) = (st.sims.get(symbol), account.core.instrument(symbol)) else {
                continue;
            };
            let day: Vec<&Bar> = sim.history.iter().filter(|b| b.open_time >= since).collect();
            out.push(crate::universe::Candidate {
                symbol: symbol.clone(),
                quote_asset: instrument.quote_asset.clone(),
                status: instrument.status.clone(),
                spot_allowed: true,
                quote_volume: day.iter().map(|b| b.volume * b.close).sum(),
                last_price: day.last().map(|b| b.close).unwrap_or_default(),
                open_price: day.first().map(|b| b.open).unwrap_or_default(),
            });
        }
        Ok(out)
    }

    async fn subscribe_user(&self) -> VenueResult<mpsc::Receiver<UserEvent>> {
        Ok(self.account.subscribe_user())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::instrument::SymbolStatus;
    use crate::order::{OrderStatus, OrderType, TimeInForce};

    fn d(s: &str) -> Decimal {
        s.parse().unwrap()
    }

    fn venue() -> Arc<PaperVenue> {
        let instrument = Instrument {
            symbol: "BTCUSDT".into(),
            base_asset: "BTC".into(),
            quote_asset: "USDT".into(),
            tick_size: d("0.01"),
            min_price: d("0.01"),
            max_price: Decimal::ZERO,
            step_size: d("0.0001"),
            min_qty: d("0.0001"),
            max_qty: Decimal::ZERO,
            market_step_size: d("0.0001"),
            min_notional: d("5"),
            max_notional: Decimal::ZERO,
            max_num_orders: 200,
            status: SymbolStatus::Trading,
        };
        PaperVenue::new(PaperConfig {
            symbols: vec![PaperSymbol {
                instrument,
                path: PricePath { start_price: d("50000"), drift: 0.0, volatility: 0.5, seed: 1 },
                spread_bps: d("2"),
                touch_qty: d("1"),
            }],
            balances: vec![Balance { asset: "USDT".into(), free: d("100000"), locked: Decimal::ZERO }],
            fees: FeeSchedule::default(),
            depth_levels: 3,
            bar_interval_ms: 60_000,
            ticks_per_bar: 4,
            bar_wall_ms: 250,
            history_bars: 30,
            start_ms: 1_700_000_000_000,
            id_base: 1_000,
        })
    }

    #[tokio::test]
    async fn history_bars_and_stream_events() {
        let v = venue();
        let sym = Symbol::new("BTCUSDT");
        let bars = v.klines(&sym, 60_000, None, 10).await.unwrap();
        assert_eq!(bars.len(), 10);
        assert!(bars.windows(2).all(|w| w[1].open_time == w[0].open_time + 60_000));
        let mut rx = v.subscribe_market(std::slice::from_ref(&sym), 60_000).await.unwrap();
        assert_eq!(rx.recv().await, Some(MarketFeed::Status(StreamStatus::Connected)));
        for _ in 0..4 {
            v.tick().await;
        }
        let mut got_bar = None;
        while let Ok(ev) = rx.try_recv() {
            if let MarketFeed::Event(MarketEvent::Bar(b)) = ev {
                got_bar = Some(b);
            }
        }
        let bar = got_bar.expect("a bar closes every ticks_per_bar ticks");
        assert_eq!(bar.open_time, bars.last().unwrap().open_time + 60_000);
    }

    #[tokio::test]
    async fn universe_candidates_are_the_configured_symbols_with_their_day() {
        let v = venue();
        let bars = v.klines(&Symbol::new("BTCUSDT"), 60_000, None, 1000).await.unwrap();
        let c = v.universe_candidates().await.unwrap();
        assert_eq!(c.len(), 1);
        let c = &c[0];
        assert_eq!((c.symbol.as_str(), c.quote_asset.as_str(), c.spot_allowed), ("BTCUSDT", "USDT", true));
        assert!(c.status.is_trading());
        assert_eq!(c.open_price, bars[0].open, "30 bars: all within the day");
        assert_eq!(c.last_price, bars.last().unwrap().close);
        assert_eq!(c.quote_volume, bars.iter().map(|b| b.volume * b.close).sum::<Decimal>());
        assert!(c.quote_volume > Decimal::ZERO);
    }

    #[tokio::test]
    async fn market_order_fills_and_reports_to_user_stream() {
        let v = venue();
        let mut user = v.subscribe_user().await.unwrap();
        assert_eq!(user.recv().await, Some(UserEvent::Status(StreamStatus::Connected)));
        let req = OrderRequest {
            client_order_id: "c1".into(),
            symbol: "BTCUSDT".into(),
            side: Side::Buy,
            order_type: OrderType::Market,
            qty: d("0.01"),
            tif: TimeInForce::Gtc,
        };
        let r = v.place_order(&req).await.unwrap();
        assert_eq!(r.report.status, OrderStatus::Filled);
        assert_eq!(r.fills.len(), 1);
        assert!(r.fills[0].trade_id >= 1_000.into());
        let mut fills = 0;
        while let Ok(ev) = user.try_recv() {
            if matches!(ev, UserEvent::Fill(_)) {
                fills += 1;
            }
        }
        assert_eq!(fills, 1);
        assert_eq!(v.my_trades(&req.symbol, None).await.unwrap().len(), 1);
        // As on Binance, a client order id is unique among open orders only:
        // the id of the filled order may be used again (so a resend is never
        // proven harmless by a "Duplicate order sent.").
        let again = v.place_order(&req).await;
        assert!(again.is_ok(), "{again:?}");
        assert_eq!(v.query_order(&req.symbol, "nope").await.unwrap(), None);
    }

    #[tokio::test]
    async fn an_oco_rests_as_one_order_and_cancels_whole() {
        let v = venue();
        let sym = Symbol::new("BTCUSDT");
        let q = v.best_bid_ask(&sym).await.unwrap();
        let take_profit = (q.bid * d("0.9")).round_dp(2);
        let stop = (q.ask * d("1.1")).round_dp(2);
        let req = OrderRequest {
            client_order_id: "oco1".into(),
            symbol: sym.clone(),
            side: Side::Buy,
            order_type: OrderType::Oco { take_profit, stop, stop_limit: Some(stop + d("10")) },
            qty: d("0.01"),
            tif: TimeInForce::Gtc,
        };
        let placed = v.place_order(&req).await.unwrap();
        assert_eq!((placed.report.client_order_id.as_str(), placed.report.status), ("oco1", OrderStatus::Accepted));
        let open = v.open_orders(Some(&sym)).await.unwrap();
        assert_eq!(open.len(), 1, "one order, not its two legs: {open:?}");
        assert_eq!(
            v.query_order(&sym, "oco1").await.unwrap().map(|r| r.venue_order_id),
            Some(open[0].venue_order_id.clone())
        );
        let canceled = v.cancel_order(&sym, "oco1").await.unwrap();
        assert_eq!(canceled.status, OrderStatus::Canceled);
        assert!(v.open_orders(None).await.unwrap().is_empty());
        let usdt = v.balances().await.unwrap().into_iter().find(|b| b.asset == "USDT").unwrap();
        assert_eq!((usdt.free, usdt.locked), (d("100000"), Decimal::ZERO));
    }
}
