//! Seeded bars shared by the tests (a small LCG, so no dependency).

use pine::Bar;

/// `n` bars of a seeded random walk with 2-decimal prices, one minute apart.
pub fn bars(n: usize, seed: u64) -> Vec<Bar> {
    let mut s = seed;
    let mut next = || {
        s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        ((s >> 33) as f64) / (1u64 << 31) as f64
    };
    let mut close = 100.0;
    let r2 = |x: f64| (x * 100.0).round() / 100.0;
    (0..n)
        .map(|i| {
            let open = close;
            close = r2(open + (next() - 0.5) * 4.0);
            let high = r2(open.max(close) + next() * 2.0);
            let low = r2(open.min(close) - next() * 2.0);
            Bar {
                time: 1_700_000_000_000 + i as i64 * 60_000,
                open,
                high,
                low,
                close,
                volume: (next() * 1000.0).round() + 1.0,
            }
        })
        .collect()
}
