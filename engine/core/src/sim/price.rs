//! Seeded price paths: geometric Brownian motion per symbol and a bar builder.

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};
use rust_decimal::prelude::{FromPrimitive, ToPrimitive};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::instrument::floor_to_step;
use crate::market::Bar;
use crate::symbol::Symbol;

/// Parameters of a simulated price path.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PricePath {
    /// Starting price.
    pub start_price: Decimal,
    /// Annualised drift (e.g. 0.05 = +5 % a year).
    pub drift: f64,
    /// Annualised volatility (e.g. 0.8 = 80 %).
    pub volatility: f64,
    /// Seed of the random path: the same seed gives the same prices.
    pub seed: u64,
}

const MS_PER_YEAR: f64 = 365.0 * 24.0 * 3600.0 * 1000.0;

/// Where a [`PriceGen`] is on its path: enough to continue it exactly after a
/// restart (the same prices follow as if it had never stopped).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PriceGenState {
    /// The current price.
    pub price: Decimal,
    /// Annualised drift.
    pub drift: f64,
    /// Annualised volatility.
    pub volatility: f64,
    /// The generator's seed.
    pub seed: [u8; 32],
    /// How far the generator has run (its word position).
    pub word_pos: u128,
}

/// A geometric Brownian motion price generator. The random factor is computed in
/// floating point (it is a statistical model); the price itself stays a
/// `Decimal` on the tick grid.
pub struct PriceGen {
    price: Decimal,
    tick: Decimal,
    drift: f64,
    volatility: f64,
    rng: ChaCha8Rng,
}

impl PriceGen {
    /// A generator starting at `path.start_price`, rounding to `tick`.
    pub fn new(path: &PricePath, tick: Decimal) -> Self {
        Self {
            price: path.start_price,
            tick,
            drift: path.drift,
            volatility: path.volatility,
            rng: ChaCha8Rng::seed_from_u64(path.seed),
        }
    }

    /// A generator continuing from a saved state, rounding to `tick`.
    pub fn resume(state: &PriceGenState, tick: Decimal) -> Self {
        let mut rng = ChaCha8Rng::from_seed(state.seed);
        rng.set_word_pos(state.word_pos);
        Self { price: state.price, tick, drift: state.drift, volatility: state.volatility, rng }
    }

    /// Where the generator is, to [`PriceGen::resume`] it later.
    pub fn state(&self) -> PriceGenState {
        PriceGenState {
            price: self.price,
            drift: self.drift,
            volatility: self.volatility,
            seed: self.rng.get_seed(),
            word_pos: self.rng.get_word_pos(),
        }
    }

    /// The current price.
    pub fn price(&self) -> Decimal {
        self.price
    }

    /// Overrides the drift and volatility (scripted scenarios, e.g. a crash).
    pub fn set_dynamics(&mut self, drift: f64, volatility: f64) {
        self.drift = drift;
        self.volatility = volatility;
    }

    /// Advances the path by `dt_ms` of simulated time and returns the new price.
    pub fn step(&mut self, dt_ms: i64) -> Decimal {
        let dt = dt_ms as f64 / MS_PER_YEAR;
        let z: f64 = StandardNormal.sample(&mut self.rng);
        let log_return = (self.drift - 0.5 * self.volatility * self.volatility) * dt + self.volatility * dt.sqrt() * z;
        let factor = Decimal::from_f64(log_return.exp()).unwrap_or(Decimal::ONE);
        let next = floor_to_step(self.price * factor, self.tick);
        // Never let the path reach zero: a price of one tick is the floor.
        self.price = if next <= Decimal::ZERO { self.tick.max(Decimal::new(1, 8)) } else { next };
        self.price
    }

    /// A uniform number in [0, 1) from the path's generator (for synthetic sizes).
    pub fn unit(&mut self) -> f64 {
        use rand::Rng;
        self.rng.random::<f64>()
    }

    /// Current price as f64, for statistics only.
    pub fn price_f64(&self) -> f64 {
        self.price.to_f64().unwrap_or(0.0)
    }
}

/// Aggregates prices into bars of a fixed interval.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BarBuilder {
    symbol: Symbol,
    interval_ms: i64,
    current: Option<Bar>,
}

impl BarBuilder {
    /// A builder for `symbol` with bars of `interval_ms`.
    pub fn new(symbol: Symbol, interval_ms: i64) -> Self {
        Self { symbol, interval_ms, current: None }
    }

    /// The bar interval.
    pub fn interval_ms(&self) -> i64 {
        self.interval_ms
    }

    /// Adds a price with traded volume at time `ts_ms`; returns the bar that
    /// closed if `ts_ms` starts a new interval.
    pub fn push(&mut self, ts_ms: i64, price: Decimal, volume: Decimal) -> Option<Bar> {
        let open_time = ts_ms - ts_ms.rem_euclid(self.interval_ms);
        let mut closed = None;
        if let Some(bar) = &mut self.current {
            if bar.open_time == open_time {
                bar.high = bar.high.max(price);
                bar.low = bar.low.min(price);
                bar.close = price;
                bar.volume += volume;
                return None;
            }
            closed = self.current.take();
        }
        self.current = Some(Bar {
            symbol: self.symbol.clone(),
            open_time,
            close_time: open_time + self.interval_ms - 1,
            open: price,
            high: price,
            low: price,
            close: price,
            volume,
        });
        closed
    }

    /// Closes the bar in progress now (its interval is over) and returns it.
    pub fn close(&mut self) -> Option<Bar> {
        self.current.take()
    }

    /// The bar in progress.
    pub fn current(&self) -> Option<&Bar> {
        self.current.as_ref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path(seed: u64) -> PricePath {
        PricePath { start_price: Decimal::new(50_000, 0), drift: 0.0, volatility: 0.8, seed }
    }

    #[test]
    fn a_resumed_generator_continues_the_same_path() {
        let tick = Decimal::new(1, 2);
        let mut whole = PriceGen::new(&path(7), tick);
        let mut first = PriceGen::new(&path(7), tick);
        let a: Vec<_> = (0..50).map(|_| whole.step(6_000)).collect();
        let b: Vec<_> = (0..50).map(|_| first.step(6_000)).collect();
        assert_eq!(a, b);
        let saved = serde_json::to_string(&first.state()).unwrap();
        let mut resumed = PriceGen::resume(&serde_json::from_str(&saved).unwrap(), tick);
        let rest: Vec<_> = (0..50).map(|_| (whole.step(6_000), whole.unit())).collect();
        let again: Vec<_> = (0..50).map(|_| (resumed.step(6_000), resumed.unit())).collect();
        assert_eq!(rest, again);
    }

    #[test]
    fn same_seed_same_path() {
        let mut a = PriceGen::new(&path(7), Decimal::new(1, 2));
        let mut b = PriceGen::new(&path(7), Decimal::new(1, 2));
        let mut c = PriceGen::new(&path(8), Decimal::new(1, 2));
        let pa: Vec<_> = (0..100).map(|_| a.step(60_000)).collect();
        let pb: Vec<_> = (0..100).map(|_| b.step(60_000)).collect();
        let pc: Vec<_> = (0..100).map(|_| c.step(60_000)).collect();
        assert_eq!(pa, pb);
        assert_ne!(pa, pc);
        assert!(pa.iter().all(|p| *p > Decimal::ZERO && p.scale() <= 2));
    }

    #[test]
    fn bars_close_on_interval_boundaries() {
        let mut b = BarBuilder::new("X".into(), 60_000);
        assert!(b.push(0, Decimal::new(10, 0), Decimal::ONE).is_none());
        assert!(b.push(30_000, Decimal::new(12, 0), Decimal::ONE).is_none());
        assert!(b.push(59_999, Decimal::new(9, 0), Decimal::ONE).is_none());
        let bar = b.push(60_000, Decimal::new(11, 0), Decimal::ONE).unwrap();
        assert_eq!((bar.open_time, bar.close_time), (0, 59_999));
        assert_eq!(
            (bar.open, bar.high, bar.low, bar.close),
            (Decimal::new(10, 0), Decimal::new(12, 0), Decimal::new(9, 0), Decimal::new(9, 0))
        );
        assert_eq!(bar.volume, Decimal::new(3, 0));
    }
}
