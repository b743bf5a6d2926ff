//! Parity: one strategy over the same bars through the backtest loop and
//! through the live actor pipeline (MarketData, StrategyHost, RiskGuard,
//! OrderRouter, Portfolio, a sled store), which trades on a venue that replays
//! those bars with the backtest's fill model on the engine's `MatchingCore`.
//! Both must send the same orders at the same bars and get the same fills.
//!
//! Synchronisation is by message order, never by sleeping: actix mailboxes
//! are FIFO, so a query answered by an actor proves it handled everything sent
//! to it before; the router's asynchronous store writes are awaited through
//! engine events and its open orders (bounded by a timeout).
//!
//! Funding reaches the live strategy through the real `FuturesFeed`: a
//! replayed mark-price stream whose next funding time moves past a settlement
//! makes the feed read the settled rows from the replayed history and send
//! them to the strategy host; the backtest gets the same rows as loaded
//! history. A settlement stamped at a bar's open arrives, in both, after the
//! open and before that bar's close.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix::Addr;
use actors::futures_feed::{FuturesFeed, FuturesFeedConfig, LastSettlement};
use actors::{start_engine, EngineEvent, EngineHandle, EngineSetup};
use async_trait::async_trait;
use keel_core::balance::Balance;
use keel_core::clock::{ManualClock, SharedClock};
use keel_core::fill::Fill;
use keel_core::futures::{
    FundingIntervals, FundingQuery, FundingRateType, FundingSettlement, FuturesData, FuturesEvent, FuturesFeed as Feed,
    MarkPrice, MarkPriceSpeed, OiHistQuery, OpenInterest, OpenInterestStat,
};
use keel_core::instrument::{ceil_to_step, floor_to_step, Instrument};
use keel_core::market::{Bar, BookTicker, MarketEvent};
use keel_core::order::{OrderStatus, OrderType, Side};
use keel_core::sim::{FeeSchedule, MatchingCore, NewOrder};
use keel_core::store::SharedStore;
use keel_core::strategy::Strategy;
use keel_core::venue::{MarketFeed, OrderReport, OrderRequest, PlaceResult, UserEvent, Venue, VenueError, VenueResult};
use keel_core::{Decimal, StrategyId, Symbol};
use keel_store::SledStore;
use ops::backtest::sim::{Backtest, SimConfig, StrategySlot, Timeline};
use ops::config::Config;
use tokio::sync::{broadcast, mpsc};

const ACCOUNT: u32 = 1;
const SLIPPAGE_BPS: i64 = 2;

const CONFIG: &str = r#"
[venue]
maker_fee_bps = "10"
taker_fee_bps = "10"

[balances]
USDT = "100000"

[[symbol]]
symbol = "BTCUSDT"
base = "BTC"
quote = "USDT"
tick_size = "0.01"
step_size = "0.00001"
min_notional = "5"
start_price = "30000"
volatility = 0.5
touch_qty = "5"

"#;

const SMA: &str = r#"
[[strategy]]
id = "sma"
kind = "sma_cross"
symbol = "BTCUSDT"
params = { fast = 5, slow = 20, qty = "0.1" }
"#;

const GRID: &str = r#"
[[strategy]]
id = "grid"
kind = "grid"
symbol = "BTCUSDT"
params = { lower = "26000", upper = "34000", levels = 17, qty = "0.05" }
"#;

/// Hourly bars of a wave plus deterministic noise.
fn bars(n: usize) -> Vec<Bar> {
    let mut state: u64 = 7;
    let mut prev = Decimal::from(30_000);
    (0..n)
        .map(|i| {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            let noise = ((state >> 33) % 40_000) as i64 - 20_000; // ±200.00
            let wave = (3_000.0 * (i as f64 / 8.0).sin() * 100.0) as i64;
            let close = Decimal::new(3_000_000 + wave + noise, 2);
            let open = prev;
            prev = close;
            let t = 1_704_067_200_000 + i as i64 * 3_600_000;
            Bar {
                symbol: "BTCUSDT".into(),
                open_time: t,
                close_time: t + 3_599_999,
                open,
                high: open.max(close) + Decimal::from(25),
                low: open.min(close) - Decimal::from(25),
                close,
                volume: Decimal::ONE,
            }
        })
        .collect()
}

/// What both runs are compared on: orders (decision time, side, qty, type) and fills.
type OrderKey = (i64, Side, Decimal, OrderType);
type FillKey = (i64, Side, Decimal, Decimal, Decimal);

fn fill_key(f: &Fill) -> FillKey {
    (f.ts_ms, f.side, f.price, f.qty, f.fee)
}

// ---------------------------------------------------------------- the venue

struct Inner {
    core: MatchingCore,
    /// Orders placed since the last open: submitted to the core at the next one.
    queued: Vec<OrderRequest>,
    /// Every order placed, with the engine time it arrived.
    placed: Vec<OrderKey>,
    market: Option<mpsc::Sender<MarketFeed>>,
    user: Option<mpsc::Sender<UserEvent>>,
}

/// A venue that replays bars with the backtest's fill model: orders wait for
/// the next bar's open, where market orders fill at the open ± slippage and
/// limits rest and fill within bar ranges.
struct ReplayVenue {
    instrument: Instrument,
    clock: ManualClock,
    slippage: Decimal,
    inner: Mutex<Inner>,
}

impl ReplayVenue {
    fn new(instrument: Instrument, balances: Vec<Balance>, fees: FeeSchedule, clock: ManualClock) -> Self {
        let mut core = MatchingCore::new(fees, 0);
        core.add_instrument(instrument.clone());
        core.add_account(ACCOUNT, balances);
        Self {
            instrument,
            clock,
            slippage: Decimal::new(SLIPPAGE_BPS, 4),
            inner: Mutex::new(Inner { core, queued: Vec::new(), placed: Vec::new(), market: None, user: None }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The open of a bar; returns the number of fills reported.
    async fn open_bar(&self, bar: &Bar) -> usize {
        let (events, user) = {
            let mut inner = self.lock();
            let ts = bar.open_time;
            let mut fills: Vec<Fill> = Vec::new();
            let collect = |ex: Vec<keel_core::sim::Execution>, fills: &mut Vec<Fill>| {
                fills.extend(ex.into_iter().filter_map(|e| e.fill));
            };
            let ex = inner.core.match_range(&bar.symbol, bar.open, bar.high, bar.low, ts);
            collect(ex, &mut fills);
            let queued = std::mem::take(&mut inner.queued);
            if !queued.is_empty() {
                let tick = self.instrument.tick_size;
                let big = Decimal::from(1_000_000_000_000u64);
                let quote = BookTicker {
                    symbol: bar.symbol.clone(),
                    bid: floor_to_step(bar.open * (Decimal::ONE - self.slippage), tick),
                    bid_qty: big,
                    ask: ceil_to_step(bar.open * (Decimal::ONE + self.slippage), tick),
                    ask_qty: big,
                    ts_ms: ts,
                };
                let ex = inner.core.set_quote(quote);
                collect(ex, &mut fills);
                for q in queued {
                    let new = NewOrder {
                        account: ACCOUNT,
                        client_order_id: q.client_order_id.clone(),
                        symbol: q.symbol.clone(),
                        side: q.side,
                        order_type: q.order_type,
                        qty: q.qty,
                        tif: q.tif,
                        asked: Default::default(),
                    };
                    // A refusal here would be a parity failure the comparison shows.
                    if let Ok(result) = inner.core.submit(new, ts) {
                        collect(result.executions, &mut fills);
                    }
                }
                let ex = inner.core.match_range(&bar.symbol, bar.open, bar.high, bar.low, ts);
                collect(ex, &mut fills);
            }
            let n = fills.len();
            let mut events: Vec<UserEvent> = fills.into_iter().map(UserEvent::Fill).collect();
            if n > 0 {
                events.push(UserEvent::Balances(inner.core.balances(ACCOUNT).unwrap_or_default()));
            }
            (events, inner.user.clone())
        };
        let n = events.iter().filter(|e| matches!(e, UserEvent::Fill(_))).count();
        if let Some(user) = user {
            for e in events {
                user.send(e).await.expect("user stream open");
            }
        }
        n
    }

    fn placed(&self) -> Vec<OrderKey> {
        self.lock().placed.clone()
    }

    fn fills(&self) -> Vec<Fill> {
        self.lock().core.fills(ACCOUNT, "BTCUSDT", None)
    }

    fn pending_report(&self, q: &OrderRequest) -> OrderReport {
        OrderReport {
            client_order_id: q.client_order_id.clone(),
            venue_order_id: format!("q-{}", q.client_order_id),
            symbol: q.symbol.clone(),
            side: q.side,
            status: OrderStatus::Accepted,
            qty: q.qty,
            filled_qty: Decimal::ZERO,
            filled_quote: Decimal::ZERO,
            reason: None,
            ts_ms: self.clock_now(),
            oco_leg: None,
        }
    }

    fn clock_now(&self) -> i64 {
        use keel_core::clock::Clock;
        self.clock.now_ms()
    }
}

#[async_trait]
impl Venue for ReplayVenue {
    fn name(&self) -> &str {
        "replay"
    }

    async fn instruments(&self) -> VenueResult<Vec<Instrument>> {
        Ok(vec![self.instrument.clone()])
    }

    async fn server_time(&self) -> VenueResult<i64> {
        Ok(self.clock_now())
    }

    async fn klines(&self, _: &Symbol, _: i64, _: Option<i64>, _: usize) -> VenueResult<Vec<Bar>> {
        Ok(Vec::new())
    }

    async fn best_bid_ask(&self, symbol: &Symbol) -> VenueResult<BookTicker> {
        self.lock().core.quote(symbol).cloned().ok_or(VenueError::NotFound)
    }

    async fn place_order(&self, request: &OrderRequest) -> VenueResult<PlaceResult> {
        let now = self.clock_now();
        let report = self.pending_report(request);
        let mut inner = self.lock();
        inner.placed.push((now, request.side, request.qty, request.order_type));
        inner.queued.push(request.clone());
        Ok(PlaceResult { report, fills: Vec::new() })
    }

    async fn cancel_order(&self, symbol: &Symbol, client_order_id: &str) -> VenueResult<OrderReport> {
        let mut inner = self.lock();
        if let Some(pos) = inner.queued.iter().position(|q| q.client_order_id == client_order_id) {
            let q = inner.queued.remove(pos);
            drop(inner);
            let mut report = self.pending_report(&q);
            report.status = OrderStatus::Canceled;
            return Ok(report);
        }
        let now = self.clock_now();
        inner.core.cancel(ACCOUNT, symbol, client_order_id, now).map(|o| o.report()).map_err(|_| VenueError::NotFound)
    }

    async fn query_order(&self, _symbol: &Symbol, client_order_id: &str) -> VenueResult<Option<OrderReport>> {
        let inner = self.lock();
        if let Some(q) = inner.queued.iter().find(|q| q.client_order_id == client_order_id).cloned() {
            drop(inner);
            return Ok(Some(self.pending_report(&q)));
        }
        Ok(inner.core.order_by_client(ACCOUNT, client_order_id).map(|o| o.report()))
    }

    async fn open_orders(&self, symbol: Option<&Symbol>) -> VenueResult<Vec<OrderReport>> {
        let inner = self.lock();
        let queued: Vec<OrderRequest> = inner.queued.clone();
        let mut out: Vec<OrderReport> =
            inner.core.open_orders(ACCOUNT, symbol.map(|s| s.as_str())).iter().map(|o| o.report()).collect();
        drop(inner);
        out.extend(queued.iter().map(|q| self.pending_report(q)));
        Ok(out)
    }

    async fn balances(&self) -> VenueResult<Vec<Balance>> {
        Ok(self.lock().core.balances(ACCOUNT).unwrap_or_default())
    }

    async fn my_trades(&self, symbol: &Symbol, since: Option<&keel_core::fill::FillCursor>) -> VenueResult<Vec<Fill>> {
        Ok(self.lock().core.fills(ACCOUNT, symbol, since.and_then(|c| c.trade_id.as_u64())))
    }

    async fn subscribe_market(&self, _: &[Symbol], _: i64) -> VenueResult<mpsc::Receiver<MarketFeed>> {
        let (tx, rx) = mpsc::channel(1024);
        self.lock().market = Some(tx);
        Ok(rx)
    }

    async fn subscribe_user(&self) -> VenueResult<mpsc::Receiver<UserEvent>> {
        let (tx, rx) = mpsc::channel(1024);
        self.lock().user = Some(tx);
        Ok(rx)
    }
}

// ---------------------------------------------------------------- futures data

/// Funding every 8 bars from the first bar's open, alternating between a
/// crowded rate (above `MAX_FUNDING`) and a calm one, a few bars at a time.
fn funding(bars: &[Bar]) -> Vec<FundingSettlement> {
    let rates = ["0.0003", "0.0003", "0.00005", "0.0004", "0.00002", "0.00002"];
    bars.iter()
        .step_by(8)
        .enumerate()
        .map(|(k, bar)| FundingSettlement {
            symbol: "BTCUSDT".into(),
            rate: rates[k % rates.len()].parse().unwrap(),
            funding_time: bar.open_time,
            mark_price: Some(bar.open),
            rate_type: FundingRateType::Regular,
        })
        .collect()
}

/// Replays a funding history as a USD-M venue serves it: the settled rows up
/// to the engine's clock, and a mark-price stream the test drives.
struct ReplayFutures {
    settled: Vec<FundingSettlement>,
    clock: ManualClock,
    /// Hands the mark-price stream's sender to the test once the feed subscribes.
    subscribed: Mutex<Option<tokio::sync::oneshot::Sender<mpsc::Sender<Feed>>>>,
}

#[async_trait]
impl FuturesData for ReplayFutures {
    async fn premium_index(&self, _: Option<&Symbol>) -> Result<Vec<MarkPrice>, VenueError> {
        Ok(Vec::new())
    }

    async fn funding_history(&self, query: &FundingQuery) -> Result<Vec<FundingSettlement>, VenueError> {
        use keel_core::clock::Clock;
        let now = self.clock.now_ms();
        let rows: Vec<FundingSettlement> = self.settled.iter().filter(|s| s.funding_time <= now).cloned().collect();
        let limit = query.limit.map_or(rows.len(), |l| l as usize);
        Ok(rows[rows.len().saturating_sub(limit)..].to_vec())
    }

    async fn funding_info(&self) -> Result<FundingIntervals, VenueError> {
        Ok(FundingIntervals::default())
    }

    async fn open_interest(&self, _: &Symbol) -> Result<OpenInterest, VenueError> {
        Err(VenueError::NotSent("no open interest in this replay".into()))
    }

    async fn open_interest_hist(&self, _: &OiHistQuery) -> Result<Vec<OpenInterestStat>, VenueError> {
        Ok(Vec::new())
    }

    async fn subscribe_mark_price(&self, _: &[Symbol], _: MarkPriceSpeed) -> Result<mpsc::Receiver<Feed>, VenueError> {
        let (tx, rx) = mpsc::channel(64);
        let waiting = self.subscribed.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(waiting) = waiting {
            let _ = waiting.send(tx);
        }
        Ok(rx)
    }
}

/// The mark price the replayed stream sends at `ts`, naming the next funding time.
fn mark(ts: i64, price: Decimal, next_funding_time: i64) -> Feed {
    Feed::Event(FuturesEvent::Mark(MarkPrice {
        symbol: "BTCUSDT".into(),
        mark_price: price,
        index_price: None,
        estimated_settle_price: None,
        funding_rate_estimate: None,
        interest_rate: None,
        next_funding_time: Some(next_funding_time),
        ts_ms: ts,
    }))
}

/// The live side of a funding replay: the real feed actor and the stream it reads.
struct LiveFunding {
    settled: Vec<FundingSettlement>,
    feed: Addr<FuturesFeed>,
    marks: mpsc::Sender<Feed>,
    /// The next settlement to deliver.
    next: usize,
}

impl LiveFunding {
    async fn start(handle: &EngineHandle, settled: Vec<FundingSettlement>, clock: &ManualClock) -> Self {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let data = Arc::new(ReplayFutures {
            settled: settled.clone(),
            clock: clock.clone(),
            subscribed: Mutex::new(Some(tx)),
        });
        // Settled rows are read as soon as a funding time passes.
        let cfg = FuturesFeedConfig {
            speed: MarkPriceSpeed::Every1s,
            oi_every: Duration::from_secs(3600),
            settle_delay: Duration::ZERO,
        };
        let feed = handle.start_futures_feed(data, cfg, |_| true).await.expect("feed starts");
        let marks = tokio::time::timeout(Duration::from_secs(20), rx).await.expect("feed subscribes").expect("sender");
        // The first funding time, as the venue announces it before it passes.
        let first = settled[0].funding_time;
        marks.send(mark(first - 1, Decimal::ONE, first)).await.expect("feed reads marks");
        Self { settled, feed, marks, next: 0 }
    }

    /// Lets every settlement at or before `until` happen: the stream moves
    /// the next funding time past it, and the wait ends once the feed
    /// delivered it and the strategy host handled it.
    async fn settle_until(&mut self, handle: &EngineHandle, until: i64) {
        while let Some(due) = self.settled.get(self.next).filter(|s| s.funding_time <= until).cloned() {
            self.next += 1;
            let after = self.settled.get(self.next).map_or(due.funding_time + 8 * 3_600_000, |s| s.funding_time);
            self.marks.send(mark(due.funding_time, Decimal::ONE, after)).await.expect("feed reads marks");
            let symbol = Symbol::new("BTCUSDT");
            let done = tokio::time::timeout(Duration::from_secs(20), async {
                while self.feed.send(LastSettlement(symbol.clone())).await.expect("feed answers")
                    != Some(due.funding_time)
                {
                    tokio::task::yield_now().await;
                }
            })
            .await;
            assert!(done.is_ok(), "the feed did not deliver the settlement at {}", due.funding_time);
            handle.strategies().await.expect("hosts answer");
        }
    }
}

// ---------------------------------------------------------------- the runs

fn strategy(config: &Config) -> Box<dyn Strategy> {
    strategies::StrategyRegistry::builtin().build(0, &config.strategies[0]).expect("valid strategy")
}

/// A Pine strategy: an SMA cross sized at 5% of equity with commission, closed on the cross
/// down, adding a limit entry under the fast average on dips (pyramiding 2) that a cross of the
/// close under the slow average cancels.
const PINE_SCRIPT: &str = r#"//@version=5
strategy("parity", initial_capital = 100000, default_qty_type = strategy.percent_of_equity, default_qty_value = 5, commission_value = 0.1, pyramiding = 2)
fast = ta.sma(close, 5)
slow = ta.sma(close, 20)
if ta.crossover(fast, slow)
    strategy.entry("L", strategy.long)
if ta.crossunder(fast, slow)
    strategy.close_all()
if strategy.position_size > 0 and close < fast
    strategy.entry("Dip", strategy.long, qty = 0.05, limit = close - 100.004)
if ta.crossunder(close, slow)
    strategy.cancel("Dip")
if strategy.opentrades == 2 and close > strategy.position_avg_price * 1.01
    strategy.close("Dip")
"#;

/// A `kind = "pine"` block running [`PINE_SCRIPT`], written to `dir` (the block names it by its
/// absolute path: `Config::parse` reads no file to resolve against).
fn pine_block(dir: &std::path::Path) -> String {
    let path = dir.join("parity.pine");
    std::fs::write(&path, PINE_SCRIPT).unwrap();
    let script = toml::Value::String(path.display().to_string());
    format!("\n[[strategy]]\nid = \"pine\"\nkind = \"pine\"\nsymbol = \"BTCUSDT\"\nparams = {{ script = {script} }}\n")
}

type Rejections = std::collections::BTreeMap<String, u64>;

fn backtest(config: &Config, bars: &[Bar], funding: &[FundingSettlement]) -> (Vec<OrderKey>, Vec<FillKey>, Rejections) {
    let instrument = config.symbols[0].instrument();
    let sim = SimConfig {
        instruments: vec![instrument],
        balances: balances(config),
        fees: fees(config),
        slippage_bps: Decimal::from(SLIPPAGE_BPS),
        risk: config.risk.clone(),
        currency: "USDT".into(),
    };
    let timeline = Timeline::new(vec![(Symbol::new("BTCUSDT"), bars.to_vec())]);
    let slots =
        vec![StrategySlot { id: StrategyId::new(&config.strategies[0].id), strategy: strategy(config), exits: None }];
    let futures: Vec<FuturesEvent> = funding.iter().cloned().map(FuturesEvent::Funding).collect();
    let outcome =
        Backtest::new(sim, timeline.symbols(), slots).with_futures(Arc::from(futures)).run(&timeline, &[], |_| {});
    assert_eq!(outcome.futures_delivered, funding.len(), "every settlement reached the strategy");
    let orders =
        outcome.orders.iter().map(|o| (o.decided_ms, o.intent.side, o.intent.qty, o.intent.order_type)).collect();
    let mut fills = Vec::with_capacity(outcome.fills.len());
    outcome.fills.for_each(|f| fills.push(fill_key(f)));
    (orders, fills, outcome.risk_rejections)
}

fn balances(config: &Config) -> Vec<Balance> {
    config.balances.iter().map(|(a, v)| Balance { asset: a.clone(), free: *v, locked: Decimal::ZERO }).collect()
}

fn fees(config: &Config) -> FeeSchedule {
    config.venue.fees()
}

/// Waits (bounded, without sleeping) until the router has sent every approved
/// order to the venue.
async fn orders_placed(handle: &EngineHandle) {
    let done = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            let open = handle.open_orders().await.expect("router answers");
            if open.iter().all(|o| !matches!(o.status, OrderStatus::New | OrderStatus::Submitted)) {
                return;
            }
            tokio::task::yield_now().await;
        }
    })
    .await;
    assert!(done.is_ok(), "orders were not placed in time");
}

/// Waits until `n` more fills were recorded by the router (and so sent on to
/// the strategy host and the risk guard).
async fn fills_recorded(rx: &mut broadcast::Receiver<EngineEvent>, mut n: usize) {
    let done = tokio::time::timeout(Duration::from_secs(20), async {
        while n > 0 {
            match rx.recv().await {
                Ok(EngineEvent::Fill(_)) => n -= 1,
                Ok(_) => {}
                Err(e) => panic!("engine events: {e}"),
            }
        }
    })
    .await;
    assert!(done.is_ok(), "fills were not recorded in time");
}

async fn live(
    config: &Config,
    bars: &[Bar],
    funding: &[FundingSettlement],
) -> (Vec<OrderKey>, Vec<FillKey>, Vec<FillKey>, Rejections) {
    let dir = tempfile::tempdir().unwrap();
    let store: SharedStore = Arc::new(SledStore::open(dir.path()).unwrap());
    let clock = ManualClock::new(bars[0].open_time - 1);
    let venue =
        Arc::new(ReplayVenue::new(config.symbols[0].instrument(), balances(config), fees(config), clock.clone()));
    let shared_clock: SharedClock = Arc::new(clock.clone());
    let handle = start_engine(EngineSetup {
        symbols: config.symbols.iter().map(|s| Symbol::new(&s.symbol)).collect(),
        risk: config.risk.clone(),
        bar_interval_ms: config.engine.bar_interval.0,
        store: store.clone(),
        venue: venue.clone(),
        strategies: vec![(config.strategies[0].clone(), strategy(config))],
        clock: shared_clock,
        startup_deadline: config
            .engine
            .startup_deadline
            .0
            .try_into()
            .map(std::time::Duration::from_millis)
            .unwrap_or_default(),
        equity_interval: std::time::Duration::from_secs(60),
        universe: None,
    })
    .await
    .expect("engine starts");
    let mut events = handle.subscribe();
    let mut futures = match funding.is_empty() {
        true => None,
        false => Some(LiveFunding::start(&handle, funding.to_vec(), &clock).await),
    };
    for bar in bars {
        // The open: queued orders fill; the pipeline records the fills and
        // tells the strategy before the bar closes.
        clock.set(bar.open_time);
        let fills = venue.open_bar(bar).await;
        fills_recorded(&mut events, fills).await;
        handle.strategies().await.expect("hosts answer");
        // The close: the bar goes through MarketData to the strategy; its
        // intents through the risk guard to the router and the venue.
        clock.set(bar.close_time);
        // Settlements of this bar reach the strategy before its close.
        if let Some(futures) = futures.as_mut() {
            futures.settle_until(&handle, bar.close_time).await;
        }
        handle.inject_market(MarketEvent::Bar(bar.clone())).await.expect("market data answers");
        handle.strategies().await.expect("hosts answer");
        handle.risk().await.expect("risk guard answers");
        orders_placed(&handle).await;
        handle.strategies().await.expect("hosts answer");
    }
    let risk = handle.risk().await.expect("risk guard answers");
    let mut stored: Vec<Fill> = store.fills().unwrap();
    stored.sort_by_key(|f| (f.ts_ms, f.trade_id.clone()));
    let id = config.strategies[0].id.as_str();
    assert!(stored.iter().all(|f| f.strategy_id.as_str() == id), "fills are attributed to the strategy");
    handle.shutdown(Duration::from_millis(0)).await;
    let venue_fills = venue.fills().iter().map(fill_key).collect();
    (venue.placed(), venue_fills, stored.iter().map(fill_key).collect(), risk.rejections)
}

/// Orders in time order; several orders decided at the same bar close in a
/// fixed order. The live router persists each order before sending it and
/// those writes complete concurrently, so two orders of one instant may reach
/// the venue in either order: the sequence is compared bar by bar.
fn canonical_orders(mut orders: Vec<OrderKey>) -> Vec<OrderKey> {
    orders.sort_by_key(|o| (o.0, o.1.as_str(), o.3.limit_price(), o.2));
    orders
}

/// Fills in time order; fills at the same open in a fixed order (see above).
fn canonical_fills(mut fills: Vec<FillKey>) -> Vec<FillKey> {
    fills.sort_by_key(|f| (f.0, f.1.as_str(), f.2, f.3, f.4));
    fills
}

/// Runs both and compares orders, fills and risk rejections.
async fn parity(strategy_block: &str, bars: &[Bar]) -> (Vec<OrderKey>, Vec<FillKey>) {
    parity_with_funding(strategy_block, bars, &[]).await
}

/// [`parity`] with a funding history delivered beside the bars.
async fn parity_with_funding(
    strategy_block: &str,
    bars: &[Bar],
    funding: &[FundingSettlement],
) -> (Vec<OrderKey>, Vec<FillKey>) {
    let config = Config::parse(&format!("{CONFIG}{strategy_block}")).unwrap();
    let (bt_orders, bt_fills, bt_rejections) = backtest(&config, bars, funding);
    let (live_orders, venue_fills, stored_fills, live_rejections) = live(&config, bars, funding).await;
    let (bt_orders, live_orders) = (canonical_orders(bt_orders), canonical_orders(live_orders));
    let (bt_fills, venue_fills, stored_fills) =
        (canonical_fills(bt_fills), canonical_fills(venue_fills), canonical_fills(stored_fills));
    assert_eq!(live_orders, bt_orders, "orders: live pipeline vs backtest");
    assert_eq!(venue_fills, bt_fills, "fills: replay venue vs backtest");
    assert_eq!(stored_fills, bt_fills, "fills recorded by the live pipeline vs backtest");
    assert_eq!(live_rejections, bt_rejections, "risk rejections: live vs backtest");
    (bt_orders, bt_fills)
}

#[actix_rt::test]
async fn sma_cross_sends_the_same_orders_and_gets_the_same_fills_live_and_in_backtest() {
    let (orders, fills) = parity(SMA, &bars(240)).await;
    assert!(orders.len() >= 6, "the data should make the strategy trade: {orders:?}");
    assert!(orders.iter().any(|o| o.1 == Side::Sell), "round trips, not just entries");
    assert_eq!(fills.len(), orders.len(), "every market order filled at the next open");
}

/// `sma_cross` that opens no long while the last settled funding is above 0.0001.
const SMA_FUNDED: &str = r#"
[[strategy]]
id = "sma"
kind = "sma_cross"
symbol = "BTCUSDT"
params = { fast = 5, slow = 20, qty = "0.1", max_funding = "0.0001" }
"#;

#[actix_rt::test]
async fn a_funding_filter_sends_the_same_orders_live_through_the_futures_feed_and_in_backtest() {
    let bars = bars(240);
    let funding = funding(&bars);
    let (filtered, fills) = parity_with_funding(SMA_FUNDED, &bars, &funding).await;
    assert!(filtered.iter().any(|o| o.1 == Side::Buy), "some entries pass the filter: {filtered:?}");
    assert_eq!(fills.len(), filtered.len(), "every market order filled at the next open");
    // The same funding without the filter, and the filter without funding: the
    // filter is what changes the orders, and it blocks entries.
    let (unfiltered, _) = parity_with_funding(SMA, &bars, &funding).await;
    let (no_funding, _) = parity(SMA_FUNDED, &bars).await;
    assert_eq!(no_funding, unfiltered, "max_funding without settlements changes nothing");
    let buys = |orders: &[OrderKey]| orders.iter().filter(|o| o.1 == Side::Buy).count();
    assert!(buys(&filtered) < buys(&unfiltered), "the filter blocked entries: {filtered:?} vs {unfiltered:?}");
    assert_ne!(filtered, unfiltered);
}

#[actix_rt::test]
async fn grid_limit_orders_match_live_and_in_backtest() {
    let (orders, fills) = parity(GRID, &bars(240)).await;
    assert!(orders.iter().all(|o| matches!(o.3, OrderType::Limit { .. })), "{orders:?}");
    assert!(fills.iter().any(|f| f.1 == Side::Sell), "some grid sells filled: {fills:?}");
    assert!(fills.len() >= 6, "{fills:?}");
}

#[actix_rt::test]
async fn a_pine_strategy_sends_the_same_orders_and_gets_the_same_fills_live_and_in_backtest() {
    let dir = tempfile::tempdir().unwrap();
    let (orders, fills) = parity(&pine_block(dir.path()), &bars(240)).await;
    let buys = orders.iter().filter(|o| o.1 == Side::Buy);
    assert!(buys.clone().any(|o| o.3 == OrderType::Market), "market entries: {orders:?}");
    assert!(buys.clone().any(|o| matches!(o.3, OrderType::Limit { .. })), "limit entries: {orders:?}");
    assert!(orders.iter().any(|o| o.1 == Side::Sell), "closes, not just entries: {orders:?}");
    assert!(fills.iter().any(|f| f.1 == Side::Sell), "round trips filled: {fills:?}");
    // Limit prices are whole ticks: close − 100.004 rounded to 0.01.
    for o in &orders {
        if let OrderType::Limit { price } = o.3 {
            assert_eq!(price, price.round_dp(2), "{price}");
        }
    }
}
