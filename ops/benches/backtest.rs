//! Backtest throughput: `sma_cross` over one million one-minute bars through the
//! full backtest loop (StrategyRunner, RiskEngine, MatchingCore, equity curve).
//!
//! Run: `cargo bench -p keel-ops --bench backtest`. Bars are generated once
//! outside the measurement; each iteration builds a fresh engine and replays
//! them all. Figures go to BENCHMARKS.md ("Backtest").

// criterion's macros generate public functions without doc comments.
#![allow(missing_docs)]

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use keel_core::balance::Balance;
use keel_core::market::Bar;
use keel_core::sim::FeeSchedule;
use keel_core::{Decimal, StrategyId, Symbol};
use ops::backtest::data::Series;
use ops::backtest::permissive_instrument;
use ops::backtest::sim::{Backtest, SimConfig, StrategySlot, Timeline};
use risk::config::RiskConfig;
use strategies::ma_cross::SmaCross;

const BARS: usize = 1_000_000;

/// A deterministic random walk (xorshift), prices with 2 decimals.
fn bars(n: usize) -> Vec<Bar> {
    let symbol = Symbol::new("BTCUSDT");
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut price: i64 = 5_000_000; // 50 000.00 in cents
    (0..n)
        .map(|i| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let step = (state % 2001) as i64 - 1000; // ±10.00
            let open = price;
            price = (price + step).max(100);
            let close = price;
            let (hi, lo) = (open.max(close) + (state % 300) as i64, (open.min(close) - (state % 300) as i64).max(1));
            let t = 1_600_000_000_000 + i as i64 * 60_000;
            Bar {
                symbol: symbol.clone(),
                open_time: t,
                close_time: t + 59_999,
                open: Decimal::new(open, 2),
                high: Decimal::new(hi, 2),
                low: Decimal::new(lo, 2),
                close: Decimal::new(close, 2),
                volume: Decimal::ONE,
            }
        })
        .collect()
}

fn engine(symbols: &[Symbol], instrument: keel_core::instrument::Instrument, fast: usize, slow: usize) -> Backtest {
    let config = SimConfig {
        instruments: vec![instrument],
        balances: vec![Balance { asset: "USDT".into(), free: Decimal::from(1_000_000), locked: Decimal::ZERO }],
        fees: FeeSchedule::default(),
        slippage_bps: Decimal::from(2),
        risk: RiskConfig::default(),
        currency: "USDT".into(),
    };
    let strategy = SmaCross::new(symbols[0].clone(), fast, slow, Decimal::new(1, 1));
    Backtest::new(config, symbols, vec![StrategySlot { id: StrategyId::new("sma"), strategy: Box::new(strategy) }])
}

fn bench(c: &mut Criterion) {
    let bars = bars(BARS);
    let series = Series {
        symbol: Symbol::new("BTCUSDT"),
        bars: Default::default(),
        interval_ms: 60_000,
        price_scale: 2,
        qty_scale: 8,
        files: Vec::new(),
    };
    let instrument = permissive_instrument(&series);
    let timeline = Timeline::new(vec![(series.symbol.clone(), bars)]);
    let symbols = timeline.symbols().to_vec();
    let mut group = c.benchmark_group("backtest");
    group.throughput(Throughput::Elements(BARS as u64));
    group.sample_size(10);
    // A busy and a quieter parameter set: orders cost far more than bars, so
    // the figure depends on how often the strategy trades (printed below).
    for (fast, slow) in [(20, 50), (100, 400)] {
        let once = engine(&symbols, instrument.clone(), fast, slow).run(&timeline, &[], |_| {});
        eprintln!(
            "sma_cross({fast}, {slow}) over {BARS} bars: {} orders, {} fills, {} protection events",
            once.orders.len(),
            once.fills.len(),
            once.protection_events.len()
        );
        group.bench_function(format!("sma_cross_{fast}_{slow}_1m_bars"), |b| {
            b.iter_batched(
                || engine(&symbols, instrument.clone(), fast, slow),
                |bt| black_box(bt.run(&timeline, &[], |_| {})),
                BatchSize::PerIteration,
            )
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
