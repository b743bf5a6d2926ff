//! The start-up check Keel runs before trading on Coinbase, as it does on
//! Binance: the venue answers, the local clock against the server's, and
//! what the key may do (`GET /key_permissions`, reference §1) — a key that
//! cannot trade would have every order refused.

use serde::{Deserialize, Serialize};

use keel_core::venue::{Venue, VenueResult};

use crate::rest::Kind;
use crate::CoinbaseVenue;

/// `GET /api/v3/brokerage/key_permissions`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyPermissions {
    /// The key may read accounts, orders and fills.
    #[serde(default)]
    pub can_view: bool,
    /// The key may create and cancel orders.
    #[serde(default)]
    pub can_trade: bool,
    /// The key may move funds (Keel never needs it).
    #[serde(default)]
    pub can_transfer: bool,
    /// The portfolio the key is bound to.
    #[serde(default)]
    pub portfolio_uuid: String,
    /// Its type (`DEFAULT`, `CONSUMER`, `INTX`, …).
    #[serde(default)]
    pub portfolio_type: String,
}

/// What the start-up check found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StartupReport {
    /// Server minus local clock (ms), measured now.
    pub clock_offset_ms: i64,
    /// What the key may do.
    pub permissions: KeyPermissions,
    /// Spot products listed.
    pub products: usize,
}

impl CoinbaseVenue {
    /// Measures the clock again, reads the key's permissions (an
    /// authenticated call: a key the venue refuses fails here) and the
    /// products.
    pub async fn startup_check(&self) -> VenueResult<StartupReport> {
        let clock_offset_ms = self.rest().sync_time().await?;
        let permissions: KeyPermissions = self.rest().get(Kind::Read, "/key_permissions", &[]).await?;
        let products = self.instruments().await?.len();
        Ok(StartupReport { clock_offset_ms, permissions, products })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_documented_answer_parses() {
        let p: KeyPermissions = serde_json::from_str(
            r#"{"can_view":true,"can_trade":false,"can_transfer":false,
                "portfolio_uuid":"0b5d3b5c-0000-4000-8000-000000000000","portfolio_type":"DEFAULT"}"#,
        )
        .unwrap();
        assert!(p.can_view && !p.can_trade && !p.can_transfer);
        assert_eq!(p.portfolio_type, "DEFAULT");
    }
}
