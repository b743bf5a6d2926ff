//! Per-order cost of the backtest: risk gate, matching-core submit and fill,
//! round-trip bookkeeping, protections and strategy callbacks, on the code
//! path `keel backtest` uses (`Backtest::new` + `run`, the config parsed from
//! TOML as the CLI parses it).
//!
//! Run: `cargo bench -p keel-ops --bench orders`. Three workloads:
//! - `flip_busy` / `flip_quiet`: a strategy that buys on one bar and sells on
//!   the next (one market order per bar), and the same strategy told not to
//!   send anything, over the same bars. Per-order cost =
//!   (busy − quiet) / orders; printed with the allocations per order, which
//!   an allocation-counting global allocator measures in one extra run of
//!   each (outside the timed runs).
//! - `sma_cross_10_20_1m_bars`: the issue's busy workload end to end (1M bars,
//!   ~55 000 orders, no fees, protections and rate limits off).
//!
//! The counting allocator adds an atomic increment to every allocation in the
//! timed runs too; figures go to BENCHMARKS.md ("Per-order cost").

// criterion's macros generate public functions without doc comments.
#![allow(missing_docs)]

use std::alloc::System;
use std::hint::black_box;
use std::time::Instant;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use keel_core::balance::Balance;
use keel_core::market::Bar;
use keel_core::order::Side;
use keel_core::strategy::{Strategy, StrategyCtx};
use keel_core::{Decimal, StrategyId, Symbol};
use ops::backtest::sim::{Backtest, Outcome, SimConfig, StrategySlot, Timeline};
use ops::config::Config;
use stats_alloc::{Region, StatsAlloc, INSTRUMENTED_SYSTEM};
use strategies::ma_cross::SmaCross;

mod common;
use common::bars;

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

/// The issue's workload config (`/tmp/bt/cfg.toml` of the baseline): no fees,
/// every risk limit, rate limit and protection off through config, the full
/// risk gate still run.
const CONFIG: &str = r#"
[[strategy]]
id = "sma"
kind = "sma_cross"
symbol = "BTCUSDT"
params = { fast = 10, slow = 20, qty = "1" }

[venue]
maker_fee_bps = "0"
taker_fee_bps = "0"

[balances]
USDT = "100000000"

[risk]
max_order_notional = "0"
max_position_notional = "0"
max_gross_exposure = "0"
strategy_orders_per_second = 0
strategy_orders_per_minute = 0
global_orders_per_second = 0
global_orders_per_minute = 0
duplicate_window = "0s"
price_band_pct = "0"
max_drawdown_pct = "0"
daily_loss_limit_pct = "0"
max_consecutive_losses = 0

[[symbol]]
symbol = "BTCUSDT"
base = "BTC"
quote = "USDT"
tick_size = "0.01"
step_size = "0.00001"
min_qty = "0.00001"
max_qty = "9000"
min_notional = "5"
start_price = "50000"
volatility = 0.5
seed = 1
spread_bps = "1"
touch_qty = "1"
"#;

/// Bars of the end-to-end workload.
const BARS: usize = 1_000_000;
/// Bars of the flip workloads (one order per bar when busy).
const FLIP_BARS: usize = 100_000;

/// Buys `qty` at market when flat and sells the position when long, with
/// nothing in flight: a market order on every bar (filled at the next open).
/// With `trade` false it asks the same questions and sends nothing.
struct Flip {
    symbol: Symbol,
    qty: Decimal,
    trade: bool,
}

impl Strategy for Flip {
    fn kind(&self) -> &'static str {
        "flip"
    }

    fn symbols(&self) -> Vec<Symbol> {
        vec![self.symbol.clone()]
    }

    fn on_bar(&mut self, _bar: &Bar, ctx: &mut StrategyCtx<'_>) {
        if ctx.pending_orders(&self.symbol) > 0 {
            return;
        }
        let position = ctx.position(&self.symbol);
        let side = if position.is_zero() { Side::Buy } else { Side::Sell };
        let qty = if position.is_zero() { self.qty } else { position };
        if self.trade {
            ctx.market(&self.symbol, side, qty);
        } else {
            black_box((side, qty));
        }
    }
}

/// The simulation config `keel backtest` builds from [`CONFIG`].
fn sim_config() -> SimConfig {
    let config = Config::parse(CONFIG).expect("the bench config parses");
    let instruments = vec![config.symbol("BTCUSDT").expect("BTCUSDT is configured").instrument()];
    let balances =
        config.balances.iter().map(|(a, v)| Balance { asset: a.clone(), free: *v, locked: Decimal::ZERO }).collect();
    SimConfig {
        instruments,
        balances,
        fees: config.venue.fees(),
        slippage_bps: Decimal::ZERO,
        risk: config.risk.clone(),
        currency: "USDT".into(),
    }
}

fn engine(symbols: &[Symbol], strategy: Box<dyn Strategy>) -> Backtest {
    Backtest::new(sim_config(), symbols, vec![StrategySlot { id: StrategyId::new("bench"), strategy, exits: None }])
}

fn flip(symbols: &[Symbol], trade: bool) -> Backtest {
    engine(symbols, Box::new(Flip { symbol: symbols[0].clone(), qty: Decimal::ONE, trade }))
}

fn sma(symbols: &[Symbol]) -> Backtest {
    engine(symbols, Box::new(SmaCross::new(symbols[0].clone(), 10, 20, Decimal::ONE)))
}

/// One run under the counting allocator: the outcome, and the allocations
/// and bytes allocated while it ran (engine construction excluded).
fn counted(backtest: Backtest, timeline: &Timeline) -> (Outcome, usize, usize) {
    let region = Region::new(GLOBAL);
    let outcome = backtest.run(timeline, &[], |_| {});
    let stats = region.change();
    (outcome, stats.allocations + stats.reallocations, stats.bytes_allocated)
}

fn bench(c: &mut Criterion) {
    let flip_timeline = Timeline::new(vec![(Symbol::new("BTCUSDT"), bars(FLIP_BARS))]);
    let flip_symbols = flip_timeline.symbols().to_vec();
    let (busy, busy_allocs, busy_bytes) = counted(flip(&flip_symbols, true), &flip_timeline);
    let (quiet, quiet_allocs, quiet_bytes) = counted(flip(&flip_symbols, false), &flip_timeline);
    let orders = busy.orders.len();
    assert!(orders > FLIP_BARS / 2, "the busy strategy trades on every bar ({orders} orders)");
    assert!(quiet.orders.is_empty(), "the quiet strategy sends nothing");
    let per = |busy: usize, quiet: usize| busy.saturating_sub(quiet) as f64 / orders as f64;
    eprintln!(
        "flip over {FLIP_BARS} bars: {orders} orders, {} fills; per order: {:.2} allocations, {:.0} bytes \
         (busy {busy_allocs} allocations, quiet {quiet_allocs})",
        busy.fills.len(),
        per(busy_allocs, quiet_allocs),
        per(busy_bytes, quiet_bytes),
    );

    // A direct figure beside criterion's: the best of a few runs of each.
    let best = |trade: bool| {
        (0..5)
            .map(|_| {
                let bt = flip(&flip_symbols, trade);
                let start = Instant::now();
                black_box(bt.run(&flip_timeline, &[], |_| {}));
                start.elapsed().as_secs_f64()
            })
            .fold(f64::INFINITY, f64::min)
    };
    let (busy_s, quiet_s) = (best(true), best(false));
    eprintln!(
        "flip: busy {:.1} ms, quiet {:.1} ms (best of 5): {:.3} µs per order",
        busy_s * 1e3,
        quiet_s * 1e3,
        (busy_s - quiet_s) * 1e6 / orders as f64
    );

    let timeline = Timeline::new(vec![(Symbol::new("BTCUSDT"), bars(BARS))]);
    let symbols = timeline.symbols().to_vec();
    let (once, allocs, bytes) = counted(sma(&symbols), &timeline);
    eprintln!(
        "sma_cross(10, 20) over {BARS} bars: {} orders, {} fills, {allocs} allocations ({:.2} per order), {bytes} bytes",
        once.orders.len(),
        once.fills.len(),
        allocs as f64 / once.orders.len().max(1) as f64,
    );

    let mut group = c.benchmark_group("orders");
    group.sample_size(10);
    for (name, trade) in [("flip_busy_100k_bars", true), ("flip_quiet_100k_bars", false)] {
        group.bench_function(name, |b| {
            b.iter_batched(
                || flip(&flip_symbols, trade),
                |bt| black_box(bt.run(&flip_timeline, &[], |_| {})),
                BatchSize::PerIteration,
            )
        });
    }
    group.bench_function("sma_cross_10_20_1m_bars", |b| {
        b.iter_batched(|| sma(&symbols), |bt| black_box(bt.run(&timeline, &[], |_| {})), BatchSize::PerIteration)
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
