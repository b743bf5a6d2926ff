//! A whole market offline: `[sandbox] synthetic_symbols = N` lists N extra
//! USDT pairs (`S001USDT`, `S002USDT`, …) with prices from 0.001 to about
//! 30 000, volatilities from 30 % to 250 % a year, spreads of 1–20 bp and
//! trading volumes two orders of magnitude apart — each with a volume that
//! swells and fades (up to e² either way) over a period of its own (1½–5
//! simulated days, longer than the 24 h window, so the window feels it), and
//! a ranking by 24 h quote volume changes as the market runs. Every pair
//! also gets its perpetual ([`super::usdm`]).
//!
//! The list is the same for the same N (a fixed seed), and the waves start
//! with the sandbox's history, so a config names the same market at every
//! start (a sandbox restarted from its state starts the waves again).

use std::collections::BTreeMap;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rust_decimal::prelude::FromPrimitive;
use rust_decimal::Decimal;

use keel_core::config::SymbolConfig;
use keel_core::instrument::floor_to_step;

/// The most synthetic pairs a sandbox lists.
pub const MAX_SYNTHETIC: u32 = 999;

/// The seed of the synthetic market.
const SEED: u64 = 0x5EED_CAFE;

/// How a synthetic pair's trading volume swells and fades: the volume of a
/// tick is multiplied by `exp(amplitude × sin(2π t / period + phase))`.
/// with `t` counted from the sandbox's first bar.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct VolumeWave {
    period_ms: f64,
    amplitude: f64,
    phase: f64,
    origin_ms: i64,
}

impl VolumeWave {
    /// The same wave, counted from simulated time `origin_ms`.
    pub fn from_origin(self, origin_ms: i64) -> Self {
        Self { origin_ms, ..self }
    }

    /// The volume multiplier at simulated time `t_ms`.
    pub fn factor(&self, t_ms: i64) -> f64 {
        let x = std::f64::consts::TAU * (t_ms - self.origin_ms) as f64 / self.period_ms + self.phase;
        (self.amplitude * x.sin()).exp()
    }
}

/// A power of ten as a decimal (`10^exp`, `exp` may be negative).
fn pow10(exp: i32) -> Decimal {
    if exp >= 0 {
        Decimal::from(10u64.pow(exp.unsigned_abs().min(18)))
    } else {
        Decimal::new(1, exp.unsigned_abs().min(28))
    }
}

/// The `n` synthetic pairs and their volume waves, by symbol.
pub fn market(n: u32) -> Vec<(SymbolConfig, VolumeWave)> {
    let mut rng = StdRng::seed_from_u64(SEED);
    (1..=n.min(MAX_SYNTHETIC))
        .map(|i| {
            let price = 10f64.powf(rng.random_range(-3.0..4.5));
            let magnitude = price.log10().floor() as i32;
            // About five significant digits of price, and a lot worth ~0.1 USDT.
            let tick = pow10(magnitude - 4);
            let step = pow10((0.1 / price).log10().floor() as i32);
            let start_price = floor_to_step(Decimal::from_f64(price).unwrap_or(Decimal::ONE), tick).max(tick);
            // Quote traded per tick at the touch: 30 to 3 000 USDT.
            let quote_per_tick = 10f64.powf(rng.random_range(1.5..3.5));
            let touch = Decimal::from_f64(quote_per_tick / price).unwrap_or(Decimal::ONE);
            let base = format!("S{i:03}");
            let cfg = SymbolConfig {
                symbol: format!("{base}USDT"),
                base,
                quote: "USDT".into(),
                tick_size: tick,
                step_size: step,
                min_qty: Some(step),
                max_qty: floor_to_step(Decimal::from_f64(9e9 / price).unwrap_or(Decimal::ONE), step).max(step),
                min_notional: Decimal::new(5, 0),
                max_notional: Decimal::new(9_000_000, 0),
                start_price,
                drift: 0.0,
                volatility: rng.random_range(0.3..2.5),
                seed: 1_000 + u64::from(i),
                spread_bps: Decimal::from(rng.random_range(1u32..=20)),
                touch_qty: floor_to_step(touch, step).max(step),
            };
            let wave = VolumeWave {
                period_ms: rng.random_range(36.0..120.0) * 3_600_000.0,
                amplitude: rng.random_range(1.0..2.0),
                phase: rng.random_range(0.0..std::f64::consts::TAU),
                origin_ms: 0,
            };
            (cfg, wave)
        })
        .collect()
}

/// The volume waves of the `n` synthetic pairs, by symbol.
pub fn waves(n: u32) -> BTreeMap<String, VolumeWave> {
    market(n).into_iter().map(|(c, w)| (c.symbol, w)).collect()
}

/// Lists the `n` synthetic pairs after the configured symbols (a configured
/// symbol of the same name wins).
pub fn extend(symbols: &mut Vec<SymbolConfig>, n: u32) {
    for (cfg, _) in market(n) {
        if !symbols.iter().any(|s| s.symbol == cfg.symbol) {
            symbols.push(cfg);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_market_is_varied_and_valid_and_the_same_each_time() {
        let m = market(50);
        assert_eq!(m.len(), 50);
        assert_eq!(market(50), m, "a fixed seed");
        for (i, (c, _)) in m.iter().enumerate() {
            c.validate(&format!("synthetic[{i}]")).unwrap_or_else(|e| panic!("{}: {e}", c.symbol));
            assert_eq!(c.start_price % c.tick_size, Decimal::ZERO, "{}", c.symbol);
            assert!(c.touch_qty * c.start_price >= Decimal::new(1, 0), "{}: a touch worth something", c.symbol);
        }
        let prices: Vec<Decimal> = m.iter().map(|(c, _)| c.start_price).collect();
        let (lo, hi) = (prices.iter().min().unwrap(), prices.iter().max().unwrap());
        assert!(*hi / *lo > Decimal::from(10_000), "prices {lo}..{hi}");
        assert_eq!(m[0].0.symbol, "S001USDT");
    }

    #[test]
    fn a_wave_swells_and_fades_around_one() {
        let h = 3_600_000;
        let w = VolumeWave { period_ms: 8.0 * h as f64, amplitude: 1.0, phase: 0.0, origin_ms: 0 }.from_origin(h);
        assert!((w.factor(h) - 1.0).abs() < 1e-12);
        assert!((w.factor(3 * h) - std::f64::consts::E).abs() < 1e-9, "the crest");
        assert!((w.factor(7 * h) - 1.0 / std::f64::consts::E).abs() < 1e-9, "the trough");
    }
}
