//! Fills: one execution of (part of) an order, as the venue reported it.

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::order::Side;
use crate::symbol::{StrategyId, Symbol};

/// A venue's id for one trade, unique per symbol: opaque to the engine
/// (Binance numbers its trades; Coinbase names them with UUIDs). Numeric ids
/// compare as numbers and are written as JSON numbers, so stores and APIs
/// from before keep their form.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TradeId(Box<str>);

impl TradeId {
    /// The id as a number, when the venue numbers its trades.
    pub fn as_u64(&self) -> Option<u64> {
        let n: u64 = self.0.parse().ok()?;
        // Only the canonical form, so "007" stays a string like any other.
        (n.to_string() == *self.0).then_some(n)
    }

    /// The id as the venue wrote it.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Makes this the id `n`, reusing its storage while the number of digits
    /// stays the same (a backtest renumbers one scratch fill per execution
    /// and allocates only when the ids gain a digit).
    pub fn set_u64(&mut self, n: u64) {
        let mut text = String::from(std::mem::take(&mut self.0));
        text.clear();
        text.push_str(itoa::Buffer::new().format(n));
        self.0 = text.into_boxed_str();
    }
}

impl From<u64> for TradeId {
    fn from(n: u64) -> Self {
        Self(n.to_string().into_boxed_str())
    }
}

impl From<&str> for TradeId {
    fn from(s: &str) -> Self {
        Self(s.into())
    }
}

impl std::fmt::Display for TradeId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl Ord for TradeId {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        match (self.as_u64(), other.as_u64()) {
            (Some(a), Some(b)) => a.cmp(&b),
            _ => self.0.cmp(&other.0),
        }
    }
}

impl PartialOrd for TradeId {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Serialize for TradeId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.as_u64() {
            Some(n) => s.serialize_u64(n),
            None => s.serialize_str(&self.0),
        }
    }
}

impl<'de> Deserialize<'de> for TradeId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Number(u64),
            Text(String),
        }
        Ok(match Raw::deserialize(d)? {
            Raw::Number(n) => Self::from(n),
            Raw::Text(t) => Self(t.into_boxed_str()),
        })
    }
}

/// Where a venue's listing of own trades resumes for a symbol: the newest
/// recorded fill's trade id and venue time (newest by time, then id). Opaque
/// to the engine, which only hands it back: each venue reads what it needs —
/// Binance the numeric id, a venue whose ids have no order the time.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct FillCursor {
    /// Venue time of that fill (ms since the epoch).
    pub ts_ms: i64,
    /// Its trade id.
    pub trade_id: TradeId,
}

impl FillCursor {
    /// The cursor at this fill.
    pub fn of(fill: &Fill) -> Self {
        Self { ts_ms: fill.ts_ms, trade_id: fill.trade_id.clone() }
    }
}

/// One execution. Keyed by venue trade id (per symbol), so a fill reported twice
/// (the order response and the user stream) is recorded once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fill {
    /// The venue's trade id, unique per symbol.
    pub trade_id: TradeId,
    /// The order it belongs to.
    pub client_order_id: String,
    /// The strategy that owns the order.
    pub strategy_id: StrategyId,
    /// Symbol.
    pub symbol: Symbol,
    /// Side of our order.
    pub side: Side,
    /// Execution price.
    pub price: Decimal,
    /// Executed quantity.
    pub qty: Decimal,
    /// Commission charged.
    pub fee: Decimal,
    /// Asset the commission was charged in.
    pub fee_asset: String,
    /// True when our order was the resting (maker) side.
    pub is_maker: bool,
    /// Venue time of the execution (ms since the epoch).
    pub ts_ms: i64,
    /// The owning order's tag, stamped with the strategy id when the fill is
    /// recorded (venues do not know it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag: Option<crate::order::OrderTag>,
}

impl Fill {
    /// The store key: symbol and zero-padded trade id, so keys sort by trade id per symbol.
    pub fn key(&self) -> String {
        fill_key(&self.symbol, &self.trade_id)
    }

    /// Executed notional in the quote asset.
    pub fn notional(&self) -> Decimal {
        self.price * self.qty
    }

    /// The commission's value in the quote asset: a commission paid in the
    /// base asset is valued at the fill price; any other is taken as is.
    pub fn fee_value(&self, base_asset: &str) -> Decimal {
        if self.fee_asset == base_asset {
            self.fee * self.price
        } else {
            self.fee
        }
    }

    /// How much this fill changes the account's holding of `base_asset`: the
    /// executed quantity, signed by side, less a commission charged in the base
    /// asset (Binance charges a buy's commission in what it receives). Every
    /// position Keel keeps moves by exactly this, so they cannot drift apart
    /// from each other or from the venue's balance.
    pub fn position_delta(&self, base_asset: &str) -> Decimal {
        // `side.sign() * qty` without the multiplication: a product by ±1
        // keeps the quantity's digits and scale, and one with zero is plain zero.
        let executed = match self.side {
            _ if self.qty.is_zero() => Decimal::ZERO,
            Side::Buy => self.qty,
            Side::Sell => -self.qty,
        };
        if self.fee_asset == base_asset {
            executed - self.fee
        } else {
            executed
        }
    }
}

/// The store key of a fill: symbol and trade id, a numeric id zero-padded
/// (the form stores have always used, so a trade recorded before is known).
pub fn fill_key(symbol: &str, trade_id: &TradeId) -> String {
    match trade_id.as_u64() {
        Some(n) => format!("{symbol}:{n:020}"),
        None => format!("{symbol}:{trade_id}"),
    }
}

#[cfg(test)]
mod trade_id_tests {
    use super::*;

    #[test]
    fn numeric_ids_keep_their_form_and_order_other_ids_are_opaque() {
        let uuid = "9c1b7a4e-5d2f-4b8e-a1f0-3e2d1c0b9a87";
        let cases: [(&str, TradeId, &str, &str); 4] = [
            ("number", 77.into(), "77", "BTCUSDT:00000000000000000077"),
            (
                "uuid",
                uuid.into(),
                "\"9c1b7a4e-5d2f-4b8e-a1f0-3e2d1c0b9a87\"",
                "BTCUSDT:9c1b7a4e-5d2f-4b8e-a1f0-3e2d1c0b9a87",
            ),
            ("leading zero stays text", "007".into(), "\"007\"", "BTCUSDT:007"),
            (
                "huge number stays text",
                "123456789012345678901234".into(),
                "\"123456789012345678901234\"",
                "BTCUSDT:123456789012345678901234",
            ),
        ];
        for (name, id, json, key) in cases {
            assert_eq!(serde_json::to_string(&id).unwrap(), json, "{name}");
            assert_eq!(serde_json::from_str::<TradeId>(json).unwrap(), id, "{name}: round trip");
            assert_eq!(fill_key("BTCUSDT", &id), key, "{name}");
        }
        // Numbers order as numbers (9 < 10), not as text.
        assert!(TradeId::from(9) < TradeId::from(10));
        // A cursor is the newest by venue time, then by id.
        let at = |ts_ms, id: u64| FillCursor { ts_ms, trade_id: id.into() };
        assert!(at(2, 1) > at(1, 5) && at(1, 6) > at(1, 5));
    }

    #[test]
    fn a_renumbered_id_equals_a_new_one() {
        let mut id = TradeId::from("abc-uuid");
        for n in [7, 8, 9, 10, 99, 100, 0, u64::MAX] {
            id.set_u64(n);
            assert_eq!(id, TradeId::from(n), "{n}");
            assert_eq!(id.as_u64(), Some(n));
        }
    }
}
