//! Account balances per asset.

use std::collections::BTreeMap;

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

/// The balance of one asset.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Balance {
    /// Asset, e.g. `USDT`.
    pub asset: String,
    /// Available for new orders.
    pub free: Decimal,
    /// Held by open orders.
    pub locked: Decimal,
}

impl Balance {
    /// Free plus locked.
    pub fn total(&self) -> Decimal {
        self.free + self.locked
    }
}

/// All balances of an account, by asset.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Balances {
    /// Balances keyed by asset.
    pub assets: BTreeMap<String, Balance>,
    /// When the snapshot was taken (ms since the epoch).
    pub ts_ms: i64,
}

impl Balances {
    /// Builds a snapshot from a list.
    pub fn from_list(list: Vec<Balance>, ts_ms: i64) -> Self {
        Self { assets: list.into_iter().map(|b| (b.asset.clone(), b)).collect(), ts_ms }
    }

    /// Free amount of an asset (0 if unknown).
    pub fn free(&self, asset: &str) -> Decimal {
        self.assets.get(asset).map(|b| b.free).unwrap_or_default()
    }

    /// Total (free + locked) of an asset (0 if unknown).
    pub fn total(&self, asset: &str) -> Decimal {
        self.assets.get(asset).map(Balance::total).unwrap_or_default()
    }

    /// Replaces or inserts the balances of the given assets.
    pub fn update(&mut self, list: &[Balance], ts_ms: i64) {
        for b in list {
            // In place when the asset is known: no string copied.
            match self.assets.get_mut(&b.asset) {
                Some(known) => {
                    known.free = b.free;
                    known.locked = b.locked;
                }
                None => {
                    self.assets.insert(b.asset.clone(), b.clone());
                }
            }
        }
        self.ts_ms = ts_ms;
    }
}
