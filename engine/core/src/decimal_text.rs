//! Decimals as people read them: no trailing zeros and no 28-digit tails
//! (a price or PnL derived by division carries every digit rust_decimal
//! keeps). Money to 8 decimal places (Binance's finest step); percentages
//! and ratios to 2, halves away from zero (as people round, not banker's
//! rounding).

use rust_decimal::{Decimal, RoundingStrategy};

fn rounded(v: Decimal, dp: u32) -> String {
    v.round_dp_with_strategy(dp, RoundingStrategy::MidpointAwayFromZero).normalize().to_string()
}

/// An amount, price or quantity: at most 8 decimal places, trailing zeros removed.
pub fn amount(v: Decimal) -> String {
    rounded(v, 8)
}

/// A percentage or ratio: at most 2 decimal places, trailing zeros removed.
pub fn percent(v: Decimal) -> String {
    rounded(v, 2)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    #[test]
    fn amounts_and_percentages() {
        let cases: &[(&str, &str, &str)] = &[
            ("1.5000", "1.5", "1.5"),
            ("100", "100", "100"),
            ("0.1234567891234567891234567891", "0.12345679", "0.12"),
            ("66666.666666666666666666666667", "66666.66666667", "66666.67"),
            ("-0.000000001", "0", "0"),
            ("12.345", "12.345", "12.35"),
            ("0.125", "0.125", "0.13"),
            ("0E-8", "0", "0"),
        ];
        for (v, a, p) in cases {
            let v = Decimal::from_str(v).unwrap();
            assert_eq!((amount(v), percent(v)), (a.to_string(), p.to_string()), "{v}");
        }
    }
}
