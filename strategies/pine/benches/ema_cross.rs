//! Bars per second of the interpreter on the ema-cross example and on an SMA-cross script (the
//! issue's target shape) over 1M seeded bars (compile once, then `Runner::step` per bar with a
//! fixed broker state). A plain binary, not criterion, so the
//! crate stays dependency-free: `cargo bench -p keel-pine --bench ema_cross`. Best of 5 runs;
//! figures taken while other builds run are noisy.

use std::sync::Arc;
use std::time::Instant;

use pine::{compile, Bar, Runner, StrategyState};

fn bars(n: usize) -> Vec<Bar> {
    let mut s: u64 = 42;
    let mut close = 100.0;
    (0..n)
        .map(|i| {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            let r = ((s >> 33) as f64) / (1u64 << 31) as f64;
            let open = close;
            close = ((open + (r - 0.5) * 4.0) * 100.0_f64).round() / 100.0;
            Bar {
                time: i as i64 * 60_000,
                open,
                high: open.max(close) + 0.5,
                low: open.min(close) - 0.5,
                close,
                volume: 10.0,
            }
        })
        .collect()
}

const SMA_CROSS: &str = "//@version=5
strategy(\"SMA cross\")
fast = ta.sma(close, 10)
slow = ta.sma(close, 30)
plot(fast)
plot(slow)
if ta.crossover(fast, slow)
    strategy.entry(\"L\", strategy.long)
if ta.crossunder(fast, slow)
    strategy.close(\"L\")
";

fn main() {
    let bars = bars(1_000_000);
    measure("ema_cross", include_str!("../examples/ema_cross.pine"), &bars);
    measure("sma_cross", SMA_CROSS, &bars);
}

fn measure(name: &str, script: &str, bars: &[Bar]) {
    let program = match compile(script, Some(name), &[]) {
        Ok(c) => Arc::new(c.program),
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(1);
        }
    };
    let state = StrategyState { equity: 10_000.0, position_avg_price: f64::NAN, ..Default::default() };
    let mut best = f64::MAX;
    let mut commands = 0usize;
    for _ in 0..5 {
        let mut runner = Runner::new(Arc::clone(&program));
        commands = 0;
        let t = Instant::now();
        for bar in bars {
            match runner.step(bar, &state) {
                Ok(out) => commands += out.commands.len(),
                Err(e) => {
                    eprintln!("{e}");
                    std::process::exit(1);
                }
            }
        }
        best = best.min(t.elapsed().as_secs_f64());
    }
    println!(
        "pine {name}: {} bars in {:.3} s (best of 5) = {:.2} M bars/s ({commands} commands)",
        bars.len(),
        best,
        bars.len() as f64 / best / 1e6
    );
}
