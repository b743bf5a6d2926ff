//! `keel bench`: pushes market events through the live actor pipeline (market
//! data → strategy hosts → risk guard → order router → paper venue, with the
//! real sled store) and reports throughput and tick-to-order latency.

use std::sync::Arc;
use std::time::{Duration, Instant};

use actors::metrics::metrics;
use actors::start_engine;
use async_trait::async_trait;
use keel_core::balance::Balance;
use keel_core::clock::{Clock, SharedClock, SystemClock};
use keel_core::fill::Fill;
use keel_core::instrument::Instrument;
use keel_core::market::{Bar, BookTicker, MarketEvent, Trade};
use keel_core::order::Side;
use keel_core::store::Store;
use keel_core::venue::paper::PaperVenue;
use keel_core::venue::{
    MarketFeed, OrderReport, OrderRequest, PlaceResult, StreamStatus, UserEvent, Venue, VenueResult,
};
use keel_core::{Decimal, Symbol};
use keel_store::SledStore;
use tokio::sync::{mpsc, Mutex};

/// `keel bench` arguments.
#[derive(Debug, Clone, clap::Args)]
pub struct BenchArgs {
    /// Config whose symbols and strategies are used (default: ./config.toml,
    /// else the built-in default).
    #[arg(long)]
    pub config: Option<std::path::PathBuf>,
    /// Market events to push.
    #[arg(long, default_value_t = 1_000_000)]
    pub events: u64,
    /// One event in this many is a closed bar (the rest are trades).
    #[arg(long, default_value_t = 200)]
    pub bar_every: u64,
    /// Events per second to offer (0 = as fast as the pipeline takes them).
    /// Latency is only meaningful below saturation; throughput at 0.
    #[arg(long, default_value_t = 0)]
    pub rate: u64,
    /// Instead of the pipeline: write this many filled orders (one fill
    /// each, alternating buys and sells of the config's first symbol)
    /// straight into the store at `--data-dir`, to measure start-up and
    /// `keel state` against history (tools/bench_history.py).
    #[arg(long, requires = "data_dir")]
    pub history: Option<u64>,
    /// The store `--history` writes into.
    #[arg(long)]
    pub data_dir: Option<std::path::PathBuf>,
}

/// Writes `n` filled orders with one fill each into the store at `dir`, as
/// an engine that ran that long leaves it: the history archived, the
/// account checkpoint brought forward over it.
fn write_history(config: &crate::config::Config, dir: &std::path::Path, n: u64) -> anyhow::Result<()> {
    use keel_core::order::{Order, OrderIntent, OrderStatus};
    let symbol = config.symbols.first().ok_or_else(|| anyhow::anyhow!("the config has no [[symbol]]"))?;
    let store = SledStore::open(dir)?;
    use rand::{Rng, SeedableRng};
    // Seeded and varied like a real account's history (a random-walk price,
    // mixed sizes, sides, order types, strategies and gaps between trades),
    // so the archive compresses it no better than it would real records.
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
    let sym = Symbol::new(&symbol.symbol);
    let (base, quote) = (symbol.base.clone(), symbol.quote.clone());
    let strategies = ["sma_cross_btc", "grid_btc", "breakout_4h"];
    let mut price = symbol.start_price;
    // Every generated trade is older than now (gaps are under 5 s).
    let mut ts = SystemClock.now_ms() - n as i64 * 5_000;
    let mut held = Decimal::ZERO;
    let mut trade_id = 1_000_000u64;
    let assets = keel_core::account::Assets::of(&config.instruments());
    let mut batch = Vec::with_capacity(100_000);
    for i in 0..n {
        price = (price * (Decimal::ONE + Decimal::new(rng.random_range(-50..=50), 5))).round_dp(2);
        let qty = Decimal::new(rng.random_range(1..=500), 5);
        // Spot: a sell never exceeds what is held.
        let side = if held >= qty && rng.random_bool(0.5) { Side::Sell } else { Side::Buy };
        ts += rng.random_range(200..5_000);
        trade_id += rng.random_range(1..1_000);
        let strategy = strategies[rng.random_range(0..strategies.len())];
        let id = format!("k{}-{i}", 1_733_000_000 + i / 50_000);
        let intent = if rng.random_bool(0.6) {
            OrderIntent::limit(strategy.into(), sym.clone(), side, qty, price)
        } else {
            OrderIntent::market(strategy.into(), sym.clone(), side, qty)
        };
        let mut order = Order::from_intent(&intent, id.clone(), ts - rng.random_range(5..60_000));
        order.venue_order_id = Some((30_000_000 + i * 3 + rng.random_range(0..3)).to_string());
        order.status = OrderStatus::Filled;
        order.filled_qty = qty;
        order.filled_quote = price * qty;
        order.updated_ms = ts;
        // Commission in the asset received, as Binance charges without BNB.
        let (fee, fee_asset) = match side {
            Side::Buy => ((qty * Decimal::new(1, 3)).round_dp(8), base.clone()),
            Side::Sell => ((price * qty * Decimal::new(1, 3)).round_dp(8), quote.clone()),
        };
        held += match side {
            Side::Buy => qty - fee,
            Side::Sell => -qty,
        };
        let fill = Fill {
            trade_id: trade_id.into(),
            client_order_id: id,
            strategy_id: strategy.into(),
            symbol: sym.clone(),
            side,
            price,
            qty,
            fee,
            fee_asset,
            is_maker: rng.random_bool(0.5),
            ts_ms: ts,
            tag: None,
        };
        batch.push((order, vec![fill]));
        if batch.len() == batch.capacity() {
            store.import_history(&batch)?;
            actors::reconcile::checkpoint_now(&store, &assets, SystemClock.now_ms())?;
            batch.clear();
        }
    }
    store.import_history(&batch)?;
    let brought = actors::reconcile::checkpoint_now(&store, &assets, SystemClock.now_ms())?;
    // The position cache a running engine keeps beside the checkpoint.
    for position in brought.current.account.positions() {
        store.put_position(&position)?;
    }
    store.flush()?;
    println!("wrote {n} filled orders with one fill each into {}", dir.display());
    Ok(())
}

/// The paper venue with a market feed the benchmark controls.
struct BenchVenue {
    inner: Arc<PaperVenue>,
    feed: Mutex<Option<mpsc::Receiver<MarketFeed>>>,
}

#[async_trait]
impl Venue for BenchVenue {
    fn name(&self) -> &str {
        "paper-bench"
    }
    async fn instruments(&self) -> VenueResult<Vec<Instrument>> {
        self.inner.instruments().await
    }
    async fn server_time(&self) -> VenueResult<i64> {
        self.inner.server_time().await
    }
    async fn klines(&self, s: &Symbol, i: i64, st: Option<i64>, l: usize) -> VenueResult<Vec<Bar>> {
        self.inner.klines(s, i, st, l).await
    }
    async fn best_bid_ask(&self, s: &Symbol) -> VenueResult<BookTicker> {
        self.inner.best_bid_ask(s).await
    }
    async fn place_order(&self, r: &OrderRequest) -> VenueResult<PlaceResult> {
        self.inner.place_order(r).await
    }
    async fn cancel_order(&self, s: &Symbol, c: &str) -> VenueResult<OrderReport> {
        self.inner.cancel_order(s, c).await
    }
    async fn query_order(&self, s: &Symbol, c: &str) -> VenueResult<Option<OrderReport>> {
        self.inner.query_order(s, c).await
    }
    async fn open_orders(&self, s: Option<&Symbol>) -> VenueResult<Vec<OrderReport>> {
        self.inner.open_orders(s).await
    }
    async fn balances(&self) -> VenueResult<Vec<Balance>> {
        self.inner.balances().await
    }
    async fn my_trades(&self, s: &Symbol, f: Option<&keel_core::fill::FillCursor>) -> VenueResult<Vec<Fill>> {
        self.inner.my_trades(s, f).await
    }
    async fn subscribe_market(&self, _s: &[Symbol], _i: i64) -> VenueResult<mpsc::Receiver<MarketFeed>> {
        match self.feed.lock().await.take() {
            Some(rx) => Ok(rx),
            None => Err(keel_core::venue::VenueError::NotSent("bench feed already taken".into())),
        }
    }
    async fn subscribe_user(&self) -> VenueResult<mpsc::Receiver<UserEvent>> {
        self.inner.subscribe_user().await
    }
}

/// Runs the benchmark and prints its figures.
pub fn run(args: BenchArgs, registry: &strategies::StrategyRegistry) -> anyhow::Result<()> {
    let (mut config, source) = crate::settings::load(args.config.as_deref(), registry)?;
    eprintln!("{}", source.describe());
    if let (Some(n), Some(dir)) = (args.history, args.data_dir.as_deref()) {
        return write_history(&config, dir, n);
    }
    // Limits out of the way: the benchmark measures the pipeline, not refusals.
    config.risk = risk::config::RiskConfig::unlimited();
    let dir = tempfile::tempdir()?;
    let system = actix::System::new();
    system.block_on(async move {
        let now = SystemClock.now_ms();
        let paper = PaperVenue::new(crate::venues::paper_config(&config, None, now));
        let (tx, rx) = mpsc::channel(8192);
        let venue = Arc::new(BenchVenue { inner: paper.clone(), feed: Mutex::new(Some(rx)) });
        // Prime the paper venue's book so market orders fill.
        paper.tick().await;
        let clock: SharedClock = Arc::new(SystemClock);
        let store = Arc::new(SledStore::open(dir.path())?);
        let handle = start_engine(crate::cmd_run::engine_setup(&config, store, venue, clock, registry)?).await?;
        let symbols: Vec<Symbol> = config.symbols.iter().map(|s| Symbol::new(&s.symbol)).collect();
        let prices: Vec<Decimal> = config.symbols.iter().map(|s| s.start_price).collect();
        let routed = symbols.len() as u64;
        let before = metrics().market_events_total.get();
        metrics().start_sampling();
        let started = Instant::now();
        tx.send(MarketFeed::Status(StreamStatus::Connected)).await.ok();
        // Bars start after the warm-up history, so none is dropped as already seen.
        let mut bar_n: i64 = now / 60_000 + 1;
        for n in 0..args.events {
            if args.rate > 0 && n % 20 == 0 {
                let due = started + Duration::from_secs_f64(n as f64 / args.rate as f64);
                tokio::time::sleep_until(tokio::time::Instant::from_std(due)).await;
            }
            let k = (n % routed) as usize;
            let symbol = symbols[k].clone();
            let base = prices[k];
            let event = if n % args.bar_every == 0 {
                // Closes zig-zag in long swings so moving averages keep crossing.
                bar_n += 1;
                let swing = Decimal::from((bar_n / 4) % 2 * 2 - 1) * base / Decimal::from(100);
                let close = base + swing;
                MarketEvent::Bar(Bar {
                    symbol,
                    open_time: bar_n * 60_000,
                    close_time: bar_n * 60_000 + 59_999,
                    open: close,
                    high: close,
                    low: close,
                    close,
                    volume: Decimal::ONE,
                })
            } else {
                MarketEvent::Trade(Trade {
                    symbol,
                    trade_id: n,
                    price: base,
                    qty: Decimal::ONE,
                    aggressor: if n % 2 == 0 { Side::Buy } else { Side::Sell },
                    ts_ms: now,
                })
            };
            if tx.send(MarketFeed::Event(event)).await.is_err() {
                anyhow::bail!("the market-data actor stopped");
            }
        }
        // Wait until the strategies have seen every event (bounded).
        let target = before + args.events;
        let deadline = Instant::now() + Duration::from_secs(300);
        while metrics().market_events_total.get() < target && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        let elapsed = started.elapsed();
        let delivered = metrics().market_events_total.get() - before;
        let mut samples = metrics().take_samples();
        samples.sort_by(|a, b| a.total_cmp(b));
        let pct = |p: f64| -> f64 {
            if samples.is_empty() {
                return f64::NAN;
            }
            let idx = ((samples.len() as f64 - 1.0) * p).round() as usize;
            samples[idx.min(samples.len() - 1)] * 1e6
        };
        println!("keel bench: live actor pipeline, paper venue, sled store in a temp dir");
        println!(
            "  offered rate            : {}",
            if args.rate == 0 { "as fast as possible".to_string() } else { format!("{} events/s", args.rate) }
        );
        println!("  market events delivered : {delivered} in {:.3} s", elapsed.as_secs_f64());
        println!("  events per second       : {:.0}", delivered as f64 / elapsed.as_secs_f64());
        println!("  orders (latency samples): {}", samples.len());
        println!("  tick-to-order p50       : {:.1} µs", pct(0.50));
        println!("  tick-to-order p99       : {:.1} µs", pct(0.99));
        println!("  tick-to-order max       : {:.1} µs", pct(1.0));
        handle.shutdown(Duration::from_secs(5)).await;
        actix::System::current().stop();
        Ok(())
    })
}
