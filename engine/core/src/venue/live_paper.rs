//! The paper venue on a live market (dry-run): a real venue's public book
//! and trades, Keel's orders and fills simulated by the matching core.
//!
//! The market data comes from a [`PublicMarketData`] source (the Binance
//! adapter's public client implements it; core does not know Binance). Its
//! partial books feed [`MatchingCore::set_depth`] and its trades
//! [`MatchingCore::match_trade`] (the fill rules are in
//! `sim/matching/live.rs`); the engine gets the book's top as
//! [`MarketEvent::Book`] and the trades and bars as they come. Nothing is
//! sent to the source but public requests: it has no key.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use rust_decimal::Decimal;
use tokio::sync::mpsc;

pub use super::sim_account::CoreSaver;
use super::sim_account::{deliver, SimAccount, ACCOUNT};
use super::{MarketFeed, OrderReport, OrderRequest, PlaceResult, UserEvent, Venue, VenueResult};
use crate::balance::Balance;
use crate::clock::{Clock, SystemClock};
use crate::fill::{Fill, FillCursor};
use crate::instrument::Instrument;
use crate::market::{Bar, BookTicker, MarketEvent};
use crate::sim::{FeeSchedule, MatchingCore};
use crate::symbol::Symbol;

/// A whole partial book of one symbol, as a venue's partial-depth stream
/// sends it: price and quantity per level.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartialBook {
    /// Symbol.
    pub symbol: Symbol,
    /// Bids, best first.
    pub bids: Vec<(Decimal, Decimal)>,
    /// Asks, best first.
    pub asks: Vec<(Decimal, Decimal)>,
    /// When it was received (ms since the epoch).
    pub ts_ms: i64,
}

/// An event of a live public market-data subscription.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LiveMarket {
    /// A whole partial book.
    Depth(PartialBook),
    /// Trades, closed bars and connectivity, as a venue's market feed has them.
    Feed(MarketFeed),
}

/// A live venue's public market data: what a dry-run needs, without a key.
#[async_trait]
pub trait PublicMarketData: Send + Sync {
    /// Closed bars (as [`Venue::klines`]).
    async fn klines(
        &self,
        symbol: &Symbol,
        interval_ms: i64,
        start_ms: Option<i64>,
        limit: usize,
    ) -> VenueResult<Vec<Bar>>;

    /// Partial books, trades and closed bars of the symbols, reconnecting
    /// until the receiver is dropped.
    async fn subscribe(&self, symbols: &[Symbol], interval_ms: i64) -> VenueResult<mpsc::Receiver<LiveMarket>>;
}

/// Settings of a live paper venue.
#[derive(Debug, Clone)]
pub struct LivePaperConfig {
    /// Tradable instruments and their filters.
    pub instruments: Vec<Instrument>,
    /// Starting balances.
    pub balances: Vec<Balance>,
    /// Fees.
    pub fees: FeeSchedule,
    /// Time from sending an order to its matching (what a round trip to the
    /// venue would take).
    pub latency_ms: u64,
    /// First order and trade id (keep ids unique across restarts).
    pub id_base: u64,
    /// The account a previous run saved: it continues (its balances and
    /// open orders win over `balances`; `instruments` update its filters).
    pub saved: Option<MatchingCore>,
}

/// The paper venue on live market data.
pub struct LivePaperVenue {
    account: SimAccount,
    source: Arc<dyn PublicMarketData>,
    latency: Duration,
    /// The task feeding the core from the newest market subscription (one
    /// at a time: two would match every trade twice).
    pump: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl LivePaperVenue {
    /// Builds the venue; it has no prices until [`Venue::subscribe_market`].
    /// With a `saver`, every change of the account is saved.
    pub fn new(
        cfg: LivePaperConfig,
        source: Arc<dyn PublicMarketData>,
        saver: Option<Arc<dyn CoreSaver>>,
    ) -> Arc<Self> {
        let core = match cfg.saved {
            Some(mut core) => {
                for i in cfg.instruments {
                    core.list_instrument(i);
                }
                core
            }
            None => {
                let mut core = MatchingCore::new(cfg.fees, 0).with_id_base(cfg.id_base);
                for i in cfg.instruments {
                    core.add_instrument(i);
                }
                core.add_account(ACCOUNT, cfg.balances);
                core
            }
        };
        Arc::new(Self {
            account: SimAccount::new(core, saver),
            source,
            latency: Duration::from_millis(cfg.latency_ms),
            pump: Mutex::new(None),
        })
    }
}

impl Drop for LivePaperVenue {
    fn drop(&mut self) {
        if let Some(task) = self.pump.lock().unwrap_or_else(|p| p.into_inner()).take() {
            task.abort();
        }
    }
}

/// Feeds the core from the source and the engine from both, until either
/// side is gone.
async fn pump(account: SimAccount, mut rx: mpsc::Receiver<LiveMarket>, tx: mpsc::Sender<MarketFeed>) {
    loop {
        let ev = tokio::select! {
            _ = tx.closed() => return,
            ev = rx.recv() => match ev {
                Some(ev) => ev,
                None => return,
            },
        };
        let (forward, user) = {
            let mut st = account.lock();
            match ev {
                LiveMarket::Depth(b) => {
                    let executions = st.core.set_depth(b.symbol.as_str(), b.bids, b.asks, b.ts_ms);
                    let user = st.record(executions);
                    let top = st.core.quote(b.symbol.as_str()).cloned();
                    (top.map(|q| MarketFeed::Event(MarketEvent::Book(q))), user)
                }
                LiveMarket::Feed(MarketFeed::Event(MarketEvent::Trade(t))) => {
                    let executions = st.core.match_trade(t.symbol.as_str(), t.price, t.qty, t.ts_ms);
                    (Some(MarketFeed::Event(MarketEvent::Trade(t))), st.record(executions))
                }
                LiveMarket::Feed(other) => (Some(other), Vec::new()),
            }
        };
        let market = forward.map(|f| vec![(tx.clone(), f)]).unwrap_or_default();
        deliver(market, user).await;
    }
}

#[async_trait]
impl Venue for LivePaperVenue {
    fn name(&self) -> &str {
        "paper"
    }

    async fn instruments(&self) -> VenueResult<Vec<Instrument>> {
        Ok(self.account.instruments())
    }

    async fn server_time(&self) -> VenueResult<i64> {
        Ok(SystemClock.now_ms())
    }

    async fn klines(
        &self,
        symbol: &Symbol,
        interval_ms: i64,
        start_ms: Option<i64>,
        limit: usize,
    ) -> VenueResult<Vec<Bar>> {
        self.source.klines(symbol, interval_ms, start_ms, limit).await
    }

    async fn best_bid_ask(&self, symbol: &Symbol) -> VenueResult<BookTicker> {
        self.account.best_bid_ask(symbol, || format!("no live book of {symbol} yet"))
    }

    async fn place_order(&self, request: &OrderRequest) -> VenueResult<PlaceResult> {
        // The order meets the book as it is when it would reach the venue.
        if !self.latency.is_zero() {
            tokio::time::sleep(self.latency).await;
        }
        self.account.place(request, SystemClock.now_ms()).await
    }

    async fn cancel_order(&self, symbol: &Symbol, client_order_id: &str) -> VenueResult<OrderReport> {
        self.account.cancel(symbol, client_order_id, SystemClock.now_ms()).await
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
        let source = self.source.subscribe(symbols, interval_ms).await?;
        let (tx, rx) = mpsc::channel(4096);
        let task = tokio::spawn(pump(self.account.clone(), source, tx));
        if let Some(old) = self.pump.lock().unwrap_or_else(|p| p.into_inner()).replace(task) {
            old.abort();
        }
        Ok(rx)
    }

    async fn subscribe_user(&self) -> VenueResult<mpsc::Receiver<UserEvent>> {
        Ok(self.account.subscribe_user())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::market::Trade;
    use crate::order::{OrderStatus, OrderType, Side, TimeInForce};
    use crate::sim::CommissionAsset;
    use crate::venue::VenueError;

    fn d(s: &str) -> Decimal {
        s.parse().unwrap()
    }

    /// A source whose events the test sends by hand (a channel, as a
    /// venue's stream task would fill it).
    struct Scripted {
        rx: Mutex<Option<mpsc::Receiver<LiveMarket>>>,
    }

    #[async_trait]
    impl PublicMarketData for Scripted {
        async fn klines(&self, _: &Symbol, _: i64, _: Option<i64>, _: usize) -> VenueResult<Vec<Bar>> {
            Ok(Vec::new())
        }

        async fn subscribe(&self, _: &[Symbol], _: i64) -> VenueResult<mpsc::Receiver<LiveMarket>> {
            self.rx.lock().unwrap().take().ok_or(VenueError::NotFound)
        }
    }

    fn venue(latency_ms: u64) -> (Arc<LivePaperVenue>, mpsc::Sender<LiveMarket>) {
        let (tx, rx) = mpsc::channel(16);
        let instrument = Instrument::with_steps("BTCUSDT".into(), "BTC".into(), "USDT".into(), d("0.01"), d("0.001"));
        let v = LivePaperVenue::new(
            LivePaperConfig {
                instruments: vec![instrument],
                balances: vec![Balance { asset: "USDT".into(), free: d("10000"), locked: Decimal::ZERO }],
                fees: FeeSchedule::new(d("10"), d("10"), CommissionAsset::Quote),
                latency_ms,
                id_base: 1,
                saved: None,
            },
            Arc::new(Scripted { rx: Mutex::new(Some(rx)) }),
            None,
        );
        (v, tx)
    }

    fn order(id: &str, order_type: OrderType) -> OrderRequest {
        OrderRequest {
            client_order_id: id.into(),
            symbol: "BTCUSDT".into(),
            side: Side::Buy,
            order_type,
            qty: d("1.5"),
            tif: TimeInForce::Gtc,
        }
    }

    fn book(ask: &str, ts_ms: i64) -> LiveMarket {
        LiveMarket::Depth(PartialBook {
            symbol: Symbol::new("BTCUSDT"),
            bids: vec![(d("90"), d("10"))],
            asks: vec![(d(ask), d("10"))],
            ts_ms,
        })
    }

    /// With latency, an order meets the book as it is when it arrives: a
    /// book that came while it was on its way prices it.
    #[tokio::test]
    async fn an_order_meets_the_book_of_its_arrival_after_the_latency() {
        // A second on its way: far more than the new book needs to arrive.
        let (v, source) = venue(1_000);
        let sym = Symbol::new("BTCUSDT");
        let mut market = v.subscribe_market(std::slice::from_ref(&sym), 60_000).await.unwrap();
        source.send(book("100", 1)).await.unwrap();
        assert!(matches!(market.recv().await, Some(MarketFeed::Event(MarketEvent::Book(_)))));
        let sent = tokio::spawn({
            let v = v.clone();
            async move { v.place_order(&order("m", OrderType::Market)).await }
        });
        tokio::task::yield_now().await;
        source.send(book("105", 2)).await.unwrap();
        let Some(MarketFeed::Event(MarketEvent::Book(top))) = market.recv().await else { panic!("the new book") };
        assert_eq!(top.ask, d("105"));
        let r = sent.await.unwrap().unwrap();
        assert_eq!(r.fills.iter().map(|f| f.price).collect::<Vec<_>>(), vec![d("105")], "priced on arrival");
    }

    #[tokio::test]
    async fn orders_fill_against_the_streamed_book_and_trades() {
        let (v, source) = venue(0);
        let sym = Symbol::new("BTCUSDT");
        let mut user = v.subscribe_user().await.unwrap();
        let mut market = v.subscribe_market(std::slice::from_ref(&sym), 60_000).await.unwrap();
        assert!(v.place_order(&order("early", OrderType::Market)).await.is_err(), "no book yet");

        let book = PartialBook {
            symbol: sym.clone(),
            bids: vec![(d("99"), d("1"))],
            asks: vec![(d("101"), d("1")), (d("102"), d("1"))],
            ts_ms: 1,
        };
        source.send(LiveMarket::Depth(book)).await.unwrap();
        let Some(MarketFeed::Event(MarketEvent::Book(top))) = market.recv().await else { panic!("the book's top") };
        assert_eq!((top.bid, top.ask), (d("99"), d("101")));

        let r = v.place_order(&order("m", OrderType::Market)).await.unwrap();
        assert_eq!(r.report.status, OrderStatus::Filled);
        let prices: Vec<_> = r.fills.iter().map(|f| (f.price, f.qty)).collect();
        assert_eq!(prices, vec![(d("101"), d("1")), (d("102"), d("0.5"))]);

        let resting = v.place_order(&order("l", OrderType::Limit { price: d("98") })).await.unwrap();
        assert_eq!(resting.report.status, OrderStatus::Accepted);
        let trade = |price: &str, id: u64| Trade {
            symbol: sym.clone(),
            trade_id: id,
            price: d(price),
            qty: d("5"),
            aggressor: Side::Sell,
            ts_ms: 2,
        };
        source.send(LiveMarket::Feed(MarketFeed::Event(MarketEvent::Trade(trade("98", 7))))).await.unwrap();
        source.send(LiveMarket::Feed(MarketFeed::Event(MarketEvent::Trade(trade("97.99", 8))))).await.unwrap();
        for id in [7, 8] {
            let Some(MarketFeed::Event(MarketEvent::Trade(t))) = market.recv().await else { panic!("trade {id}") };
            assert_eq!(t.trade_id, id, "trades reach the engine as they came");
        }
        let mut limit_fills = Vec::new();
        while let Ok(ev) = user.try_recv() {
            if let UserEvent::Fill(f) = ev {
                if f.client_order_id == "l" {
                    limit_fills.push((f.price, f.qty, f.is_maker));
                }
            }
        }
        assert_eq!(limit_fills, vec![(d("98"), d("1.5"), true)], "filled by the print through 98 only");
        assert!(v.open_orders(None).await.unwrap().is_empty());
    }

    /// An OCO is one order: placed, listed, queried, filled and cancelled
    /// under its own client order id, its legs out of sight.
    #[tokio::test]
    async fn an_oco_is_one_order_from_placing_to_its_fill_or_cancel() {
        use crate::venue::oco::OcoLeg;
        let (v, source) = venue(0);
        let sym = Symbol::new("BTCUSDT");
        let mut user = v.subscribe_user().await.unwrap();
        let mut market = v.subscribe_market(std::slice::from_ref(&sym), 60_000).await.unwrap();
        source.send(book("101", 1)).await.unwrap();
        assert!(matches!(market.recv().await, Some(MarketFeed::Event(MarketEvent::Book(_)))));
        // A buy: take-profit below the market (95), stop above (105).
        let oco = |id: &str, take_profit: &str| {
            let mut o = order(id, OrderType::Oco { take_profit: d(take_profit), stop: d("105"), stop_limit: None });
            o.qty = d("1");
            o
        };
        let placed = v.place_order(&oco("x1", "95")).await.unwrap();
        assert_eq!((placed.report.client_order_id.as_str(), placed.report.status), ("x1", OrderStatus::Accepted));
        let usdt = |b: Vec<Balance>| b.into_iter().find(|b| b.asset == "USDT").map(|b| (b.free, b.locked)).unwrap();
        // Locked once: the dearer leg, 105 plus the fee (10 bps).
        assert_eq!(usdt(v.balances().await.unwrap()), (d("9894.895"), d("105.105")));
        let open = v.open_orders(None).await.unwrap();
        assert_eq!(
            open.iter().map(|o| o.client_order_id.as_str()).collect::<Vec<_>>(),
            vec!["x1"],
            "once, not per leg"
        );
        assert_eq!(v.query_order(&sym, "x1").await.unwrap().map(|r| r.status), Some(OrderStatus::Accepted));

        // A print through 95 fills the take-profit; the stop expires with it.
        let trade =
            Trade { symbol: sym.clone(), trade_id: 9, price: d("94"), qty: d("5"), aggressor: Side::Sell, ts_ms: 2 };
        source.send(LiveMarket::Feed(MarketFeed::Event(MarketEvent::Trade(trade)))).await.unwrap();
        assert!(matches!(market.recv().await, Some(MarketFeed::Event(MarketEvent::Trade(_)))));
        let mut seen = Vec::new();
        while let Ok(ev) = user.try_recv() {
            match ev {
                UserEvent::Fill(f) => seen.push(format!("fill {} {} {}", f.client_order_id, f.price, f.qty)),
                UserEvent::Order(r) => seen.push(format!("order {} {:?} {:?}", r.client_order_id, r.status, r.oco_leg)),
                _ => {}
            }
        }
        assert_eq!(
            seen,
            vec![
                "order x1 Accepted None".to_string(),
                "fill x1 95 1".into(),
                format!("order x1 Filled {:?}", Some(OcoLeg::TakeProfit)),
            ],
            "the list's reports and fills only, under its own id"
        );
        assert!(v.open_orders(None).await.unwrap().is_empty());
        assert_eq!(
            v.my_trades(&sym, None).await.unwrap().iter().map(|f| f.client_order_id.as_str()).collect::<Vec<_>>(),
            vec!["x1"]
        );
        assert_eq!(usdt(v.balances().await.unwrap()).1, Decimal::ZERO, "nothing stays locked");

        // Cancelled: the whole list, its lock released.
        v.place_order(&oco("x2", "95")).await.unwrap();
        let canceled = v.cancel_order(&sym, "x2").await.unwrap();
        assert_eq!((canceled.client_order_id.as_str(), canceled.status), ("x2", OrderStatus::Canceled));
        assert!(v.open_orders(None).await.unwrap().is_empty());
        assert_eq!(usdt(v.balances().await.unwrap()).1, Decimal::ZERO);
        assert!(matches!(v.cancel_order(&sym, "x2").await, Err(VenueError::Rejected { code: -2011, .. })));

        // Refused as one order: a buy's stop below the market (the book's
        // mid, 95.5; our last fill, at 95, is not the market).
        let bad = order("x3", OrderType::Oco { take_profit: d("92"), stop: d("93"), stop_limit: None });
        assert!(matches!(v.place_order(&bad).await, Err(VenueError::Rejected { code: -2010, .. })));
        assert_eq!(v.query_order(&sym, "x3").await.unwrap(), None);
    }
}
