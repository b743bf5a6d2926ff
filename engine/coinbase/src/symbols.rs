//! Product ids (`BTC-USD`) and Keel's symbols, and the [`Instrument`] a
//! product's metadata gives, so orders are checked against Coinbase's
//! filters before they are sent.
//!
//! Keel's symbol for a Coinbase product is the product id itself: `[[symbol]]`
//! blocks name Coinbase products as `BTC-USD`.

use rust_decimal::Decimal;

use keel_core::instrument::{Instrument, SymbolStatus};
use keel_core::symbol::Symbol;

use crate::model::Product;

/// Why a product id or a product cannot be traded as a spot instrument.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SymbolError {
    /// Not `BASE-QUOTE` with upper-case alphanumeric parts.
    #[error("`{0}` is not a Coinbase spot product id (BASE-QUOTE in upper case, e.g. BTC-USD)")]
    NotSpotProductId(String),
    /// A product whose metadata contradicts its id or cannot give filters.
    #[error("product {product}: {reason}")]
    BadProduct {
        /// Product id.
        product: String,
        /// What is wrong.
        reason: String,
    },
}

/// Splits a spot product id into base and quote: `BTC-USD` → (`BTC`, `USD`).
/// Derivative ids (`BTC-PERP-INTX`, `BIT-28JUN24-CDE`) are refused.
pub fn split_product_id(product_id: &str) -> Result<(&str, &str), SymbolError> {
    let bad = || SymbolError::NotSpotProductId(product_id.to_string());
    let (base, quote) = product_id.split_once('-').ok_or_else(bad)?;
    let part_ok = |p: &str| !p.is_empty() && p.chars().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit());
    if !part_ok(base) || !part_ok(quote) {
        return Err(bad());
    }
    Ok((base, quote))
}

/// The product id of a base and a quote: (`btc`, `usd`) → `BTC-USD`.
pub fn product_id(base: &str, quote: &str) -> String {
    format!("{}-{}", base.to_ascii_uppercase(), quote.to_ascii_uppercase())
}

/// Keel's symbol of a spot product id (the id itself, once checked).
pub fn symbol_of(product_id: &str) -> Result<Symbol, SymbolError> {
    split_product_id(product_id)?;
    Ok(Symbol::new(product_id))
}

/// Order kinds a product accepts beyond what [`Instrument`] holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Restrictions {
    /// Only limit orders (`limit_only`, or an auction in progress).
    pub limit_only: bool,
    /// Only post-only limit orders.
    pub post_only: bool,
}

impl Restrictions {
    /// Whether an order of this kind may be sent; the error says why not.
    pub fn check(&self, market: bool, post_only: bool) -> Result<(), &'static str> {
        if market && (self.limit_only || self.post_only) {
            return Err("the product takes limit orders only");
        }
        if self.post_only && !post_only {
            return Err("the product takes post-only orders only");
        }
        Ok(())
    }
}

/// The restrictions of a product's trading flags.
pub fn restrictions_of(p: &Product) -> Restrictions {
    Restrictions { limit_only: p.limit_only || p.auction_mode, post_only: p.post_only }
}

/// The trading status Keel sees: `Trading` only for an `online` product
/// with no flag that stops new orders.
pub fn status_of(p: &Product) -> SymbolStatus {
    if p.cancel_only {
        SymbolStatus::CancelOnly
    } else if p.trading_disabled || p.is_disabled || p.view_only == Some(true) {
        SymbolStatus::Halt
    } else if p.status.eq_ignore_ascii_case("online") {
        SymbolStatus::Trading
    } else {
        SymbolStatus::Other(p.status.clone())
    }
}

/// The instrument of a spot product (reference §4.2): tick =
/// `price_increment` (else `quote_increment`), lot step = `base_increment`,
/// quantity bounds = `base_min_size`/`base_max_size`, notional bounds =
/// `quote_min_size`/`quote_max_size` (0 = none). The flags that forbid
/// kinds of orders rather than sizes are in [`restrictions_of`]; an order
/// must pass both before it is sent.
pub fn instrument_of(p: &Product) -> Result<Instrument, SymbolError> {
    let (base, quote) = split_product_id(&p.product_id)?;
    let bad = |reason: String| SymbolError::BadProduct { product: p.product_id.clone(), reason };
    if base != p.base_currency_id || quote != p.quote_currency_id {
        return Err(bad(format!(
            "its currencies {}/{} are not those of its id",
            p.base_currency_id, p.quote_currency_id
        )));
    }
    let tick = p.price_increment.unwrap_or(p.quote_increment);
    for (name, v) in [("price_increment", tick), ("base_increment", p.base_increment)] {
        if v <= Decimal::ZERO {
            return Err(bad(format!("{name} {v} is not positive")));
        }
    }
    Ok(Instrument {
        symbol: Symbol::new(&p.product_id),
        base_asset: base.to_string(),
        quote_asset: quote.to_string(),
        tick_size: tick,
        min_price: Decimal::ZERO,
        max_price: Decimal::ZERO,
        step_size: p.base_increment,
        min_qty: p.base_min_size.max(p.base_increment),
        max_qty: p.base_max_size.unwrap_or_default(),
        market_step_size: p.base_increment,
        min_notional: p.quote_min_size.unwrap_or_default(),
        max_notional: p.quote_max_size.unwrap_or_default(),
        max_num_orders: 0,
        status: status_of(p),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn product_ids_table() {
        let cases = [
            ("BTC-USD", Some(("BTC", "USD"))),
            ("ETH-USDC", Some(("ETH", "USDC"))),
            ("1INCH-USD", Some(("1INCH", "USD"))),
            ("BTC-PERP-INTX", None),
            ("BIT-28JUN24-CDE", None),
            ("btc-usd", None),
            ("BTCUSD", None),
            ("-USD", None),
            ("BTC-", None),
        ];
        for (id, want) in cases {
            assert_eq!(split_product_id(id).ok(), want, "{id}");
            assert_eq!(symbol_of(id).is_ok(), want.is_some(), "{id}");
        }
        assert_eq!(product_id("btc", "Usd"), "BTC-USD");
        assert!(symbol_of("BTC-PERP-INTX").unwrap_err().to_string().contains("BTC-PERP-INTX"));
    }

    fn product(overrides: serde_json::Value) -> Product {
        let mut p = serde_json::json!({
            "product_id": "ETH-USD", "base_currency_id": "ETH", "quote_currency_id": "USD",
            "base_increment": "0.0001", "quote_increment": "0.01", "base_min_size": "0.0001",
            "status": "online"
        });
        for (k, v) in overrides.as_object().unwrap() {
            p[k] = v.clone();
        }
        serde_json::from_value(p).unwrap()
    }

    #[test]
    fn status_and_instrument_table() {
        use serde_json::json;
        let cases = [
            (json!({}), SymbolStatus::Trading),
            (json!({"status": "offline"}), SymbolStatus::Other("offline".into())),
            (json!({"trading_disabled": true}), SymbolStatus::Halt),
            (json!({"is_disabled": true}), SymbolStatus::Halt),
            (json!({"view_only": true}), SymbolStatus::Halt),
            (json!({"cancel_only": true, "trading_disabled": true}), SymbolStatus::CancelOnly),
        ];
        for (overrides, want) in cases {
            assert_eq!(instrument_of(&product(overrides.clone())).unwrap().status, want, "{overrides}");
        }
        // No price_increment: the tick is the quote increment; no maxima: 0.
        let i = instrument_of(&product(json!({}))).unwrap();
        assert_eq!((i.tick_size, i.max_qty, i.min_notional, i.max_notional), (d("0.01"), d("0"), d("0"), d("0")));
        let i = instrument_of(&product(json!({"price_increment": "0.05", "quote_min_size": "10"}))).unwrap();
        assert_eq!((i.tick_size, i.min_notional), (d("0.05"), d("10")));
        let bad = [
            json!({"base_currency_id": "BTC"}),
            json!({"base_increment": "0"}),
            json!({"product_id": "ETH-PERP-INTX"}),
        ];
        for overrides in bad {
            assert!(instrument_of(&product(overrides.clone())).is_err(), "{overrides}");
        }
        assert_eq!(
            restrictions_of(&product(json!({"auction_mode": true}))),
            Restrictions { limit_only: true, post_only: false }
        );
    }

    fn d(s: &str) -> Decimal {
        s.parse().unwrap()
    }

    #[test]
    fn restrictions_table() {
        let r = |limit_only, post_only| Restrictions { limit_only, post_only };
        assert!(r(false, false).check(true, false).is_ok());
        assert!(r(true, false).check(true, false).is_err());
        assert!(r(true, false).check(false, false).is_ok());
        assert!(r(false, true).check(false, false).is_err());
        assert!(r(false, true).check(false, true).is_ok());
    }
}
