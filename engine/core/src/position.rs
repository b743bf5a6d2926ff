//! Position accounting: quantity, average entry price, realized PnL and fees.

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::fill::Fill;
use crate::symbol::Symbol;

/// A net position in one symbol. Quantity is signed (negative = short) so the
/// same arithmetic serves spot and, later, derivatives.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Position {
    /// Symbol.
    pub symbol: Symbol,
    /// Net quantity in the base asset.
    pub qty: Decimal,
    /// Average entry price of the open quantity (0 when flat).
    pub avg_price: Decimal,
    /// Realized PnL in the quote asset, before fees.
    pub realized_pnl: Decimal,
    /// Fees paid, in the quote asset (base-asset fees converted at the fill price).
    pub fees: Decimal,
}

impl Position {
    /// A flat position.
    pub fn flat(symbol: Symbol) -> Self {
        Self { symbol, qty: Decimal::ZERO, avg_price: Decimal::ZERO, realized_pnl: Decimal::ZERO, fees: Decimal::ZERO }
    }

    /// True when no quantity is held.
    pub fn is_flat(&self) -> bool {
        self.qty.is_zero()
    }

    /// Applies a fill. `base_asset` and `quote_asset` say how to value the fee: a
    /// fee charged in the base asset also reduces the quantity received.
    /// Returns the PnL this fill realized (before fees).
    pub fn apply_fill(&mut self, fill: &Fill, base_asset: &str, quote_asset: &str) -> Decimal {
        if fill.fee_asset == base_asset || fill.fee_asset == quote_asset {
            self.fees += fill.fee_value(base_asset);
        }
        self.apply_qty(fill.position_delta(base_asset), fill.price)
    }

    /// False when applying `fill` would overflow decimal arithmetic: amounts
    /// that large are no real account, and must not panic whoever applies them.
    pub fn fits(&self, fill: &Fill) -> bool {
        fits_at(self.qty, self.avg_price, fill)
    }

    /// [`Self::fits`] of a flat position (no position built to ask).
    pub fn fits_flat(fill: &Fill) -> bool {
        fits_at(Decimal::ZERO, Decimal::ZERO, fill)
    }

    /// Applies a signed quantity change at a price; returns the realized PnL.
    pub fn apply_qty(&mut self, delta: Decimal, price: Decimal) -> Decimal {
        if delta.is_zero() {
            return Decimal::ZERO;
        }
        let same_direction = self.qty.is_zero() || (self.qty.is_sign_positive() == delta.is_sign_positive());
        if same_direction {
            let total = self.qty.abs() + delta.abs();
            self.avg_price = (self.avg_price * self.qty.abs() + price * delta.abs()) / total;
            self.qty += delta;
            return Decimal::ZERO;
        }
        let closed = delta.abs().min(self.qty.abs());
        let direction = if self.qty.is_sign_positive() { Decimal::ONE } else { Decimal::NEGATIVE_ONE };
        let realized = closed * (price - self.avg_price) * direction;
        self.realized_pnl += realized;
        self.qty += delta;
        if self.qty.is_zero() {
            self.avg_price = Decimal::ZERO;
        } else if self.qty.is_sign_positive() != direction.is_sign_positive() {
            // The fill flipped the position: what remains was opened at this price.
            self.avg_price = price;
        }
        realized
    }

    /// Unrealized PnL at a mark price.
    /// Saturates instead of overflowing: a mark no one can trade at must not
    /// panic the actor valuing it.
    pub fn unrealized_pnl(&self, mark: Decimal) -> Decimal {
        mark.saturating_sub(self.avg_price).saturating_mul(self.qty)
    }

    /// Market value of the position at a mark price.
    pub fn market_value(&self, mark: Decimal) -> Decimal {
        self.qty.saturating_mul(mark)
    }
}

/// Whether applying `fill` to a position of `qty` at `avg_price` stays
/// within decimal arithmetic (see [`Position::fits`]).
fn fits_at(qty: Decimal, avg_price: Decimal, fill: &Fill) -> bool {
    // Values below 2^47 (a mantissa that small bounds the value) sum to less
    // than 2^48 and multiply to less than 2^95, within a decimal's 96 bits:
    // every check below would pass (the usual case, without its arithmetic).
    let small = |d: Decimal| d.mantissa().unsigned_abs() < 1 << 47;
    if [fill.qty, fill.price, fill.fee, qty, avg_price].into_iter().all(small) {
        return true;
    }
    fill.qty.checked_mul(fill.price).is_some()
        && avg_price.checked_mul(qty.abs()).is_some()
        && qty.abs().checked_add(fill.qty).and_then(|q| q.checked_mul(fill.price.max(avg_price))).is_some()
        && fill.fee.checked_mul(fill.price).is_some()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::order::Side;

    fn d(s: &str) -> Decimal {
        s.parse().unwrap()
    }

    fn fill(side: Side, price: &str, qty: &str, fee: &str, fee_asset: &str) -> Fill {
        Fill {
            trade_id: 1.into(),
            client_order_id: "k".into(),
            strategy_id: "s".into(),
            symbol: "BTCUSDT".into(),
            side,
            price: d(price),
            qty: d(qty),
            fee: d(fee),
            fee_asset: fee_asset.into(),
            is_maker: false,
            ts_ms: 0,
            tag: None,
        }
    }

    #[test]
    fn accounting_table() {
        struct Case {
            name: &'static str,
            fills: Vec<Fill>,
            qty: &'static str,
            avg: &'static str,
            realized: &'static str,
            fees: &'static str,
        }
        use Side::*;
        let cases = vec![
            Case {
                name: "one buy",
                fills: vec![fill(Buy, "100", "2", "0.2", "USDT")],
                qty: "2",
                avg: "100",
                realized: "0",
                fees: "0.2",
            },
            Case {
                name: "two buys average",
                fills: vec![fill(Buy, "100", "1", "0", "USDT"), fill(Buy, "200", "3", "0", "USDT")],
                qty: "4",
                avg: "175",
                realized: "0",
                fees: "0",
            },
            Case {
                name: "partial sell realizes on the sold part",
                fills: vec![fill(Buy, "100", "4", "0.4", "USDT"), fill(Sell, "110", "1", "0.11", "USDT")],
                qty: "3",
                avg: "100",
                realized: "10",
                fees: "0.51",
            },
            Case {
                name: "round trip goes flat",
                fills: vec![fill(Buy, "100", "2", "0", "USDT"), fill(Sell, "90", "2", "0", "USDT")],
                qty: "0",
                avg: "0",
                realized: "-20",
                fees: "0",
            },
            Case {
                name: "sell through zero flips short at the fill price",
                fills: vec![fill(Buy, "100", "1", "0", "USDT"), fill(Sell, "120", "3", "0", "USDT")],
                qty: "-2",
                avg: "120",
                realized: "20",
                fees: "0",
            },
            Case {
                name: "short covered at a profit",
                fills: vec![fill(Sell, "120", "2", "0", "USDT"), fill(Buy, "100", "2", "0", "USDT")],
                qty: "0",
                avg: "0",
                realized: "40",
                fees: "0",
            },
            Case {
                name: "base fee reduces the quantity received",
                fills: vec![fill(Buy, "100", "1", "0.001", "BTC")],
                qty: "0.999",
                avg: "100",
                realized: "0",
                fees: "0.1",
            },
            Case {
                name: "fee in a third asset is not valued",
                fills: vec![fill(Buy, "100", "1", "0.01", "BNB")],
                qty: "1",
                avg: "100",
                realized: "0",
                fees: "0",
            },
            Case {
                name: "decimal precision is exact",
                fills: vec![
                    fill(Buy, "0.1", "0.3", "0", "USDT"),
                    fill(Buy, "0.2", "0.3", "0", "USDT"),
                    fill(Sell, "0.3", "0.6", "0", "USDT"),
                ],
                qty: "0",
                avg: "0",
                realized: "0.09",
                fees: "0",
            },
        ];
        for c in cases {
            let mut p = Position::flat("BTCUSDT".into());
            for f in &c.fills {
                p.apply_fill(f, "BTC", "USDT");
            }
            assert_eq!(p.qty, d(c.qty), "qty: {}", c.name);
            assert_eq!(p.avg_price, d(c.avg), "avg: {}", c.name);
            assert_eq!(p.realized_pnl, d(c.realized), "realized: {}", c.name);
            assert_eq!(p.fees, d(c.fees), "fees: {}", c.name);
        }
    }

    #[test]
    fn unrealized_and_value() {
        let mut p = Position::flat("BTCUSDT".into());
        p.apply_qty(d("2"), d("100"));
        assert_eq!(p.unrealized_pnl(d("105")), d("10"));
        assert_eq!(p.market_value(d("105")), d("210"));
    }
}
