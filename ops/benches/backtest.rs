//! Backtest throughput: `sma_cross` over one million one-minute bars through the
//! full backtest loop (StrategyRunner, RiskEngine, MatchingCore, equity curve),
//! and the same SMA cross as a Pine script (`kind = "pine"`: the interpreter
//! and its broker emulation in the same loop).
//!
//! Run: `cargo bench -p keel-ops --bench backtest`. Bars are generated once
//! outside the measurement; each iteration builds a fresh engine and replays
//! them all. Figures go to BENCHMARKS.md ("Backtest").

// criterion's macros generate public functions without doc comments.
#![allow(missing_docs)]

use std::hint::black_box;
use std::sync::Arc;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use keel_core::balance::Balance;
use keel_core::sim::FeeSchedule;
use keel_core::{Decimal, StrategyId, Symbol};
use ops::backtest::data::Series;
use ops::backtest::permissive_instrument;
use ops::backtest::sim::{Backtest, SimConfig, StrategySlot, Timeline};
use risk::config::RiskConfig;
use strategies::ma_cross::SmaCross;
use strategies::pine_host::PineStrategy;

mod common;
use common::bars;

const BARS: usize = 1_000_000;

/// The SMA cross as a Pine script: 0.1 per entry, closed on the cross down.
const PINE_SMA: &str = r#"//@version=5
strategy("sma cross", default_qty_value = 0.1)
fast = ta.sma(close, input.int(20, "fast"))
slow = ta.sma(close, input.int(50, "slow"))
if ta.crossover(fast, slow)
    strategy.entry("L", strategy.long)
if ta.crossunder(fast, slow)
    strategy.close("L")
"#;

fn pine_sma(symbol: &Symbol, fast: usize, slow: usize) -> Box<dyn keel_core::strategy::Strategy> {
    let inputs = [
        ("fast".to_string(), pine::InputValue::Int(fast as i64)),
        ("slow".to_string(), pine::InputValue::Int(slow as i64)),
    ];
    let program = pine::compile(PINE_SMA, Some("sma.pine"), &inputs).expect("the bench script compiles").program;
    Box::new(PineStrategy::new(symbol.clone(), Arc::new(program)).expect("a long-only script"))
}

fn engine(symbols: &[Symbol], instrument: keel_core::instrument::Instrument, fast: usize, slow: usize) -> Backtest {
    let strategy = SmaCross::new(symbols[0].clone(), fast, slow, Decimal::new(1, 1));
    engine_with(symbols, instrument, Box::new(strategy))
}

fn engine_with(
    symbols: &[Symbol],
    instrument: keel_core::instrument::Instrument,
    strategy: Box<dyn keel_core::strategy::Strategy>,
) -> Backtest {
    let config = SimConfig {
        instruments: vec![instrument],
        balances: vec![Balance { asset: "USDT".into(), free: Decimal::from(1_000_000), locked: Decimal::ZERO }],
        fees: FeeSchedule::default(),
        slippage_bps: Decimal::from(2),
        risk: RiskConfig::default(),
        currency: "USDT".into(),
    };
    Backtest::new(config, symbols, vec![StrategySlot { id: StrategyId::new("sma"), strategy, exits: None }])
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
    for (fast, slow) in [(20, 50), (100, 400)] {
        let once =
            engine_with(&symbols, instrument.clone(), pine_sma(&symbols[0], fast, slow)).run(&timeline, &[], |_| {});
        eprintln!(
            "pine sma cross({fast}, {slow}) over {BARS} bars: {} orders, {} fills",
            once.orders.len(),
            once.fills.len()
        );
        group.bench_function(format!("pine_sma_cross_{fast}_{slow}_1m_bars"), |b| {
            b.iter_batched(
                || engine_with(&symbols, instrument.clone(), pine_sma(&symbols[0], fast, slow)),
                |bt| black_box(bt.run(&timeline, &[], |_| {})),
                BatchSize::PerIteration,
            )
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
