//! Internal failures fail closed (issue 11, finding 5): a fill the store
//! cannot record, an exit state it cannot write, and a core actor that dies
//! for good, each set the emergency stop; nothing downstream hears of the
//! unrecorded fill, and no further order leaves. Real actors, a real sled store (wrapped to fail its
//! writes on demand), the paper venue (wrapped to panic on demand, as an
//! adapter bug would).

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use actors::EngineEvent;
use async_trait::async_trait;
use keel_core::account::AccountCheckpoint;
use keel_core::balance::{Balance, Balances};
use keel_core::error::StoreError;
use keel_core::fill::{Fill, FillCursor};
use keel_core::instrument::Instrument;
use keel_core::market::{Bar, BookTicker};
use keel_core::order::Order;
use keel_core::position::Position;
use keel_core::store::{AuditRecord, EquityPoint, SharedStore, Store, StoreResult};
use keel_core::trading::{EmergencyStop, TradingStateRecord};
use keel_core::venue::{MarketFeed, OrderReport, OrderRequest, PlaceResult, UserEvent, Venue, VenueResult};
use keel_core::Symbol;
use keel_store::SledStore;
use tokio::sync::mpsc;

use common::*;

/// A sled store whose fill writes fail while `fail_fills` is set (a full
/// disk) — or, with `panic` set, panic (a bug on the store thread).
struct FailingStore {
    inner: SledStore,
    fail_fills: AtomicBool,
    /// Exit-state writes and reads fail while set.
    fail_exits: AtomicBool,
    panic: bool,
}

fn disk_full() -> StoreError {
    StoreError::Backend(Box::new(std::io::Error::other("No space left on device (test)")))
}

impl Store for FailingStore {
    fn put_order(&self, order: &Order, durable: bool) -> StoreResult<()> {
        self.inner.put_order(order, durable)
    }
    fn order(&self, id: &str) -> StoreResult<Option<Order>> {
        self.inner.order(id)
    }
    fn orders(&self) -> StoreResult<Vec<Order>> {
        self.inner.orders()
    }
    fn open_orders(&self) -> StoreResult<Vec<Order>> {
        self.inner.open_orders()
    }
    fn order_count(&self) -> StoreResult<usize> {
        self.inner.order_count()
    }
    fn record_fill(&self, fill: &Fill, order: Option<&Order>) -> StoreResult<bool> {
        if self.fail_fills.load(Ordering::SeqCst) {
            assert!(!self.panic, "store bug (test): panicked recording a fill");
            return Err(disk_full());
        }
        self.inner.record_fill(fill, order)
    }
    fn has_fill(&self, fill: &Fill) -> StoreResult<bool> {
        self.inner.has_fill(fill)
    }
    fn fills(&self) -> StoreResult<Vec<Fill>> {
        self.inner.fills()
    }
    fn fills_after(&self, seq: u64) -> StoreResult<Vec<(u64, Fill)>> {
        self.inner.fills_after(seq)
    }
    fn recent_fills(&self, limit: usize) -> StoreResult<Vec<Fill>> {
        self.inner.recent_fills(limit)
    }
    fn archive(&self, through: u64, min: usize) -> StoreResult<usize> {
        self.inner.archive(through, min)
    }
    fn put_checkpoint(&self, c: &AccountCheckpoint) -> StoreResult<()> {
        self.inner.put_checkpoint(c)
    }
    fn checkpoint(&self) -> StoreResult<Option<AccountCheckpoint>> {
        self.inner.checkpoint()
    }
    fn fill_count(&self) -> StoreResult<usize> {
        self.inner.fill_count()
    }
    fn fill_cursor(&self, symbol: &str) -> StoreResult<Option<FillCursor>> {
        self.inner.fill_cursor(symbol)
    }
    fn fill_cursors(&self) -> StoreResult<Vec<(String, FillCursor)>> {
        self.inner.fill_cursors()
    }
    fn put_position(&self, p: &Position) -> StoreResult<()> {
        self.inner.put_position(p)
    }
    fn positions(&self) -> StoreResult<Vec<Position>> {
        self.inner.positions()
    }
    fn put_balances(&self, b: &Balances) -> StoreResult<()> {
        self.inner.put_balances(b)
    }
    fn balances(&self) -> StoreResult<Option<Balances>> {
        self.inner.balances()
    }
    fn put_trading_state(&self, r: &TradingStateRecord) -> StoreResult<()> {
        self.inner.put_trading_state(r)
    }
    fn trading_state(&self) -> StoreResult<Option<TradingStateRecord>> {
        self.inner.trading_state()
    }
    fn put_emergency_stop(&self, s: &EmergencyStop) -> StoreResult<()> {
        self.inner.put_emergency_stop(s)
    }
    fn emergency_stop(&self) -> StoreResult<EmergencyStop> {
        self.inner.emergency_stop()
    }
    fn next_id(&self) -> StoreResult<u64> {
        self.inner.next_id()
    }
    fn put_meta_json(&self, key: &str, value: &serde_json::Value, durable: bool) -> StoreResult<()> {
        self.inner.put_meta_json(key, value, durable)
    }
    fn meta_json(&self, key: &str) -> StoreResult<Option<serde_json::Value>> {
        self.inner.meta_json(key)
    }
    fn append_audit(&self, r: &AuditRecord, keep: usize) -> StoreResult<()> {
        self.inner.append_audit(r, keep)
    }
    fn audit(&self, limit: usize) -> StoreResult<Vec<AuditRecord>> {
        self.inner.audit(limit)
    }
    fn append_equity(&self, p: &EquityPoint, keep: usize) -> StoreResult<()> {
        self.inner.append_equity(p, keep)
    }
    fn equity_history(&self, limit: usize) -> StoreResult<Vec<EquityPoint>> {
        self.inner.equity_history(limit)
    }
    fn put_exit_state(&self, strategy: &keel_core::StrategyId, state: &keel_core::exits::ExitState) -> StoreResult<()> {
        if self.fail_exits.load(Ordering::SeqCst) {
            return Err(disk_full());
        }
        self.inner.put_exit_state(strategy, state)
    }
    fn delete_exit_state(&self, strategy: &keel_core::StrategyId, symbol: &Symbol) -> StoreResult<()> {
        self.inner.delete_exit_state(strategy, symbol)
    }
    fn exit_states(&self) -> StoreResult<Vec<(keel_core::StrategyId, keel_core::exits::ExitState)>> {
        if self.fail_exits.load(Ordering::SeqCst) {
            return Err(StoreError::Corrupt {
                tree: "exits",
                key: "flip/BTCUSDT".into(),
                reason: "unreadable (test)".into(),
            });
        }
        self.inner.exit_states()
    }
    fn flush(&self) -> StoreResult<()> {
        self.inner.flush()
    }
}

/// The paper venue, whose order placement panics while `panic_on_place` is set.
struct PanickyVenue {
    inner: Arc<keel_core::venue::paper::PaperVenue>,
    panic_on_place: AtomicBool,
}

#[async_trait]
impl Venue for PanickyVenue {
    fn name(&self) -> &str {
        "panicky-paper"
    }
    async fn instruments(&self) -> VenueResult<Vec<Instrument>> {
        self.inner.instruments().await
    }
    async fn server_time(&self) -> VenueResult<i64> {
        self.inner.server_time().await
    }
    async fn klines(
        &self,
        symbol: &Symbol,
        interval_ms: i64,
        start: Option<i64>,
        limit: usize,
    ) -> VenueResult<Vec<Bar>> {
        self.inner.klines(symbol, interval_ms, start, limit).await
    }
    async fn best_bid_ask(&self, symbol: &Symbol) -> VenueResult<BookTicker> {
        self.inner.best_bid_ask(symbol).await
    }
    async fn place_order(&self, request: &OrderRequest) -> VenueResult<PlaceResult> {
        assert!(!self.panic_on_place.load(Ordering::SeqCst), "adapter bug (test): panicked placing an order");
        self.inner.place_order(request).await
    }
    async fn cancel_order(&self, symbol: &Symbol, id: &str) -> VenueResult<OrderReport> {
        self.inner.cancel_order(symbol, id).await
    }
    async fn query_order(&self, symbol: &Symbol, id: &str) -> VenueResult<Option<OrderReport>> {
        self.inner.query_order(symbol, id).await
    }
    async fn open_orders(&self, symbol: Option<&Symbol>) -> VenueResult<Vec<OrderReport>> {
        self.inner.open_orders(symbol).await
    }
    async fn balances(&self) -> VenueResult<Vec<Balance>> {
        self.inner.balances().await
    }
    async fn my_trades(&self, symbol: &Symbol, since: Option<&FillCursor>) -> VenueResult<Vec<Fill>> {
        self.inner.my_trades(symbol, since).await
    }
    async fn subscribe_market(&self, symbols: &[Symbol], interval_ms: i64) -> VenueResult<mpsc::Receiver<MarketFeed>> {
        self.inner.subscribe_market(symbols, interval_ms).await
    }
    async fn subscribe_user(&self) -> VenueResult<mpsc::Receiver<UserEvent>> {
        self.inner.subscribe_user().await
    }
}

/// Buys a little at market on every bar, whatever is pending.
struct EveryBar(Symbol);

impl keel_core::strategy::Strategy for EveryBar {
    fn kind(&self) -> &'static str {
        "every_bar"
    }
    fn symbols(&self) -> Vec<Symbol> {
        vec![self.0.clone()]
    }
    fn on_bar(&mut self, bar: &Bar, ctx: &mut keel_core::strategy::StrategyCtx<'_>) {
        ctx.market(&bar.symbol, keel_core::order::Side::Buy, keel_core::Decimal::new(1, 2));
    }
}

fn btc() -> Symbol {
    Symbol::new("BTCUSDT")
}

fn eth() -> Symbol {
    Symbol::new("ETHUSDT")
}

#[actix_rt::test]
async fn a_fill_the_store_cannot_record_stops_everything_and_reaches_no_one() {
    unrecorded_fill_fails_closed(false).await;
}

#[actix_rt::test]
async fn a_store_thread_that_panics_on_a_fill_stops_everything_and_the_stop_is_still_stored() {
    unrecorded_fill_fails_closed(true).await;
}

async fn unrecorded_fill_fails_closed(panic: bool) {
    let config = Config::parse(CONFIG).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let failing = Arc::new(FailingStore {
        inner: SledStore::open(dir.path()).unwrap(),
        fail_fills: AtomicBool::new(false),
        fail_exits: AtomicBool::new(false),
        panic,
    });
    let store: SharedStore = failing.clone();
    let venue = paper(&config);
    // BTC flips; ETH buys on every bar, and keeps asking after the stop.
    let handle = start_with(&config, store.clone(), venue.clone(), |s| Box::new(EveryBar(s))).await;
    let mut rx = handle.subscribe();
    drive(&venue, &mut rx, |ev| matches!(ev, EngineEvent::Fill(f) if f.symbol == btc())).await;

    // The disk fills up.
    failing.fail_fills.store(true, Ordering::SeqCst);
    let stored_before = store.fills().unwrap().len();
    let mut heard = Vec::new();
    let mut stop = None;
    drive(&venue, &mut rx, |ev| {
        match ev {
            EngineEvent::Fill(f) => heard.push(f.clone()),
            EngineEvent::EmergencyStopSet { reason, by } => stop = Some((reason.clone(), by.clone())),
            _ => {}
        }
        stop.is_some()
    })
    .await;
    let (reason, by) = stop.unwrap();
    assert_eq!(by, "engine:fail_closed");
    assert!(reason.contains("could not be stored"), "{reason}");
    let venue_fills =
        venue.my_trades(&btc(), None).await.unwrap().len() + venue.my_trades(&eth(), None).await.unwrap().len();
    assert!(venue_fills > stored_before, "the venue made a fill the store could not record");

    // Trading is over: more market, no more orders; ETH's buys are refused.
    let orders_at_stop = store.order_count().unwrap();
    let mut refused = 0;
    drive(&venue, &mut rx, |ev| {
        match ev {
            EngineEvent::Fill(f) => heard.push(f.clone()),
            EngineEvent::RiskRejected { code, .. } if code == "emergency_stop" => refused += 1,
            _ => {}
        }
        refused >= 3
    })
    .await;
    // Fills recorded just before the disk filled may still be on their way;
    // every fill anyone heard of is in the store.
    let unrecorded: Vec<&Fill> = heard.iter().filter(|f| !store.has_fill(f).unwrap()).collect();
    assert!(unrecorded.is_empty(), "no one hears of an unrecorded fill: {unrecorded:?}");
    assert_eq!(store.order_count().unwrap(), orders_at_stop, "no further order leaves");
    let status = handle.status().await.unwrap();
    assert!(status.emergency_stop.active, "{status:?}");
    assert!(store.emergency_stop().unwrap().active, "the stop is in the store");
    // What the account holds is what the store recorded (net of fees in BTC), nothing more.
    let portfolio = handle.portfolio().await.unwrap();
    let recorded: keel_core::Decimal = store
        .fills()
        .unwrap()
        .iter()
        .filter(|f| f.symbol == btc())
        .map(|f| {
            let fee = if f.fee_asset == "BTC" { f.fee } else { keel_core::Decimal::ZERO };
            if f.side == keel_core::order::Side::Buy {
                f.qty - fee
            } else {
                -f.qty - fee
            }
        })
        .sum();
    let held =
        portfolio.positions.iter().find(|p| p.position.symbol == "BTCUSDT").map(|p| p.position.qty).unwrap_or_default();
    assert_eq!(held, recorded);
    handle.shutdown(std::time::Duration::from_millis(200)).await;
}

#[actix_rt::test]
async fn an_exit_state_the_store_cannot_write_sets_the_emergency_stop() {
    // `flip` gets a max hold: its first buy opens a position with an exit state.
    let text = common::CONFIG.replace(
        "id = \"flip\"\nkind = \"test\"\nsymbol = \"BTCUSDT\"\n",
        "id = \"flip\"\nkind = \"test\"\nsymbol = \"BTCUSDT\"\nexits = { max_hold = \"1h\" }\n",
    );
    let config = Config::parse(&text).unwrap();
    assert!(config.strategies[0].exits.is_some(), "the exits are configured");
    let dir = tempfile::tempdir().unwrap();
    let failing = Arc::new(FailingStore {
        inner: SledStore::open(dir.path()).unwrap(),
        fail_fills: AtomicBool::new(false),
        fail_exits: AtomicBool::new(false),
        panic: false,
    });
    let store: SharedStore = failing.clone();
    let venue = paper(&config);
    let handle = start_with(&config, store.clone(), venue.clone(), |s| Box::new(Rester(s, false))).await;
    let mut rx = handle.subscribe();
    // The disk fills up once the engine has started (its start reads them).
    failing.fail_exits.store(true, Ordering::SeqCst);
    let mut stop = None;
    drive(&venue, &mut rx, |ev| {
        if let EngineEvent::EmergencyStopSet { reason, by } = ev {
            stop = Some((reason.clone(), by.clone()));
        }
        stop.is_some()
    })
    .await;
    let (reason, by) = stop.unwrap();
    assert_eq!(by, "engine:fail_closed");
    assert!(reason.contains("exit state of flip could not be stored"), "{reason}");
    assert!(store.emergency_stop().unwrap().active, "the stop is in the store");
    failing.fail_exits.store(false, Ordering::SeqCst);
    assert!(store.exit_states().unwrap().is_empty(), "nothing was written");
    handle.shutdown(std::time::Duration::from_millis(200)).await;
}

#[actix_rt::test]
async fn unreadable_exit_states_start_halted() {
    let config = Config::parse(CONFIG).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let failing = Arc::new(FailingStore {
        inner: SledStore::open(dir.path()).unwrap(),
        fail_fills: AtomicBool::new(false),
        fail_exits: AtomicBool::new(true),
        panic: false,
    });
    let store: SharedStore = failing.clone();
    let venue = paper(&config);
    let handle = start_with(&config, store.clone(), venue.clone(), |s| Box::new(Rester(s, false))).await;
    let status = handle.status().await.unwrap();
    assert_eq!(status.trading_state, keel_core::trading::TradingState::Halted, "{status:?}");
    assert!(status.trading_state_reason.contains("the exit states cannot be read"), "{}", status.trading_state_reason);
    handle.shutdown(std::time::Duration::from_millis(200)).await;
}

#[actix_rt::test]
async fn a_core_actor_that_dies_for_good_sets_the_emergency_stop_and_its_orders_are_canceled() {
    let config = Config::parse(CONFIG).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store: SharedStore = Arc::new(SledStore::open(dir.path()).unwrap());
    let paper = paper(&config);
    let venue = Arc::new(PanickyVenue { inner: paper.clone(), panic_on_place: AtomicBool::new(false) });
    // BTC flips; ETH rests one limit buy.
    let handle = start_with(&config, store.clone(), venue.clone(), |s| Box::new(Rester(s, false))).await;
    let mut rx = handle.subscribe();
    let mut btc_fill = false;
    drive(&paper, &mut rx, |ev| {
        btc_fill |= matches!(ev, EngineEvent::Fill(f) if f.symbol == btc());
        btc_fill
    })
    .await;
    let resting = paper.open_orders(Some(&eth())).await.unwrap();
    assert_eq!(resting.len(), 1, "the ETH buy rests");

    // The next order panics inside the router: it is gone for good.
    venue.panic_on_place.store(true, Ordering::SeqCst);
    let mut stop = None;
    drive(&paper, &mut rx, |ev| {
        if let EngineEvent::EmergencyStopSet { reason, by } = ev {
            stop = Some((reason.clone(), by.clone()));
        }
        stop.is_some()
    })
    .await;
    let (reason, by) = stop.unwrap();
    assert_eq!(by, "engine:supervisor");
    assert!(reason.contains("order_router"), "{reason}");
    assert!(store.emergency_stop().unwrap().active, "the stop is in the store");
    // With the router gone, the supervisor cancels at the venue itself.
    let mut canceled = false;
    for _ in 0..100 {
        if paper.open_orders(None).await.unwrap().is_empty() {
            canceled = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(canceled, "the resting order is canceled at the venue");
    handle.shutdown(std::time::Duration::from_millis(200)).await;
}

#[actix_rt::test]
async fn an_absurd_price_leaves_equity_unknown_instead_of_killing_the_portfolio() {
    // 5 BTC at the price below is more than a Decimal holds.
    let config = Config::parse(&CONFIG.replace("USDT = \"1000000\"", "USDT = \"1000000\"\nBTC = \"5\"")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store: SharedStore = Arc::new(SledStore::open(dir.path()).unwrap());
    let venue = paper(&config);
    let handle = start_with(&config, store.clone(), venue.clone(), |s| Box::new(Rester(s, false))).await;
    let mut rx = handle.subscribe();
    drive(&venue, &mut rx, |ev| matches!(ev, EngineEvent::Fill(f) if f.symbol == btc())).await;
    assert!(handle.portfolio().await.unwrap().equity.is_some());
    // A trade printed at a price whose value overflows a Decimal.
    let trade = keel_core::market::Trade {
        symbol: btc(),
        trade_id: 1,
        price: keel_core::Decimal::MAX / keel_core::Decimal::new(2, 0),
        qty: keel_core::Decimal::ONE,
        aggressor: keel_core::order::Side::Buy,
        ts_ms: keel_core::clock::Clock::now_ms(&keel_core::clock::SystemClock),
    };
    handle.inject_market(keel_core::market::MarketEvent::Trade(trade)).await.unwrap();
    let mut unknown = false;
    for _ in 0..100 {
        let snap = handle.portfolio().await.expect("the portfolio still answers");
        if snap.equity.is_none() {
            unknown = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(unknown, "equity is unknown at that price");
    assert!(!handle.status().await.unwrap().emergency_stop.active, "nothing died, nothing to fail closed on");
    handle.shutdown(std::time::Duration::from_millis(200)).await;
}
