//! What exits cost in the backtest, per bar and per open position: K
//! strategies each hold one position (bought at the first bar, never sold)
//! over the same bars, with exits that are evaluated on every bar's path but
//! never fire (every level out of reach), against the same K without exits.
//! (time with exits − time without) / bars / K is the cost per bar per
//! open position.
//!
//! Run: `cargo bench -p keel-ops --bench exits`. Figures go to BENCHMARKS.md
//! ("Exits in the backtest").

// criterion's macros generate public functions without doc comments.
#![allow(missing_docs)]

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use keel_core::balance::Balance;
use keel_core::exits::ExitSpec;
use keel_core::market::Bar;
use keel_core::order::Side;
use keel_core::sim::FeeSchedule;
use keel_core::strategy::{Strategy, StrategyCtx};
use keel_core::{Decimal, StrategyId, Symbol};
use ops::backtest::data::Series;
use ops::backtest::permissive_instrument;
use ops::backtest::sim::{Backtest, SimConfig, StrategySlot, Timeline};
use risk::config::RiskConfig;

mod common;
use common::bars;

const BARS: usize = 200_000;

/// Every exit kind, none within reach of the walk.
const EXITS: &str = r#"stop_loss = "99%"
take_profit = "10000%"
trailing_stop = { activate = "10000%", distance = "1%" }
roi = [["0m", "10000%"], ["1d", "5000%"]]
max_hold = "3650d""#;

/// Buys once at the first bar and holds.
struct Hold(bool);

impl Strategy for Hold {
    fn kind(&self) -> &'static str {
        "hold"
    }
    fn symbols(&self) -> Vec<Symbol> {
        vec!["BTCUSDT".into()]
    }
    fn on_bar(&mut self, bar: &Bar, ctx: &mut StrategyCtx<'_>) {
        if !self.0 {
            self.0 = true;
            ctx.market(&bar.symbol, Side::Buy, Decimal::new(1, 2));
        }
    }
}

fn engine(
    symbols: &[Symbol],
    instrument: keel_core::instrument::Instrument,
    positions: usize,
    exits: Option<&ExitSpec>,
) -> Backtest {
    let config = SimConfig {
        instruments: vec![instrument],
        balances: vec![Balance { asset: "USDT".into(), free: Decimal::from(10_000_000), locked: Decimal::ZERO }],
        fees: FeeSchedule::default(),
        slippage_bps: Decimal::from(2),
        risk: RiskConfig::unlimited(),
        currency: "USDT".into(),
    };
    let slots = (0..positions)
        .map(|k| StrategySlot {
            id: StrategyId::new(&format!("hold{k}")),
            strategy: Box::new(Hold(false)),
            exits: exits.cloned(),
        })
        .collect();
    Backtest::new(config, symbols, slots)
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
    let mut spec: ExitSpec = toml::from_str(EXITS).unwrap_or_else(|e| panic!("{e}"));
    spec.validate("exits").unwrap_or_else(|e| panic!("{e}"));
    let mut group = c.benchmark_group("exits");
    group.throughput(Throughput::Elements(BARS as u64));
    group.sample_size(10);
    for positions in [1, 4] {
        for (name, exits) in [("none", None), ("all", Some(&spec))] {
            let once = engine(&symbols, instrument.clone(), positions, exits).run(&timeline, &[], |_| {});
            assert_eq!(once.fills.len(), positions, "each position opened once and held");
            assert!(once.exits.is_empty(), "no exit fires");
            group.bench_function(format!("{positions}_positions_{name}_200k_bars"), |b| {
                b.iter_batched(
                    || engine(&symbols, instrument.clone(), positions, exits),
                    |bt| black_box(bt.run(&timeline, &[], |_| {})),
                    BatchSize::PerIteration,
                )
            });
        }
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
