//! The `[risk]` section: limits the risk guard enforces.

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use super::{non_negative, ConfigError};

/// Risk limits. A limit of zero means "no limit" where noted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RiskConfig {
    /// Largest notional of one order, in the quote asset (0 = no limit).
    pub max_order_notional: Decimal,
    /// Largest position notional per symbol, counting open and in-flight orders (0 = no limit).
    pub max_position_notional: Decimal,
}

impl Default for RiskConfig {
    fn default() -> Self {
        Self { max_order_notional: Decimal::new(10_000, 0), max_position_notional: Decimal::new(50_000, 0) }
    }
}

impl RiskConfig {
    /// Rejects impossible values.
    pub fn validate(&self) -> Result<(), ConfigError> {
        non_negative("risk.max_order_notional", self.max_order_notional)?;
        non_negative("risk.max_position_notional", self.max_position_notional)?;
        Ok(())
    }
}
