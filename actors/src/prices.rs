//! The latest price and arrival time of market data per symbol, shared read-mostly.

use std::collections::HashMap;
use std::sync::RwLock;
use std::time::Instant;

use keel_core::{Decimal, Symbol};

/// Last price and when market data last arrived, per symbol. Written by the
/// MarketData actor on every event, read by the risk guard, the portfolio and
/// the operator surfaces.
#[derive(Debug, Default)]
pub struct PriceBoard {
    inner: RwLock<HashMap<Symbol, PriceEntry>>,
}

/// One symbol's latest market data.
#[derive(Debug, Clone, Copy)]
pub struct PriceEntry {
    /// Reference price (last trade, mid or close).
    pub price: Decimal,
    /// When it arrived (monotonic).
    pub at: Instant,
    /// Venue time of the event (ms since the epoch).
    pub venue_ms: i64,
}

impl PriceBoard {
    /// Records a price.
    pub fn set(&self, symbol: &Symbol, price: Decimal, venue_ms: i64, at: Instant) {
        let mut map = self.inner.write().unwrap_or_else(|p| p.into_inner());
        match map.get_mut(symbol) {
            Some(e) => *e = PriceEntry { price, at, venue_ms },
            None => {
                map.insert(symbol.clone(), PriceEntry { price, at, venue_ms });
            }
        }
    }

    /// A symbol's latest entry.
    pub fn get(&self, symbol: &str) -> Option<PriceEntry> {
        self.inner.read().unwrap_or_else(|p| p.into_inner()).get(symbol).copied()
    }

    /// Every symbol's latest entry.
    pub fn all(&self) -> Vec<(Symbol, PriceEntry)> {
        self.inner.read().unwrap_or_else(|p| p.into_inner()).iter().map(|(s, e)| (s.clone(), *e)).collect()
    }
}
