//! `sma_cross`: long-only moving-average crossover on closed bars.
//!
//! Buys `qty` when the fast SMA of closes crosses above the slow one while the
//! strategy is flat; sells its whole position when the fast SMA crosses below.

use engine::market::Bar;
use engine::order::Side;
use engine::strategy::{Strategy, StrategyCtx};
use engine::{Decimal, Symbol};

use crate::common::close_f64;
use crate::indicators::Sma;
use crate::params::Params;
use crate::registry::StrategyConfigError;

/// The SMA crossover strategy.
#[derive(Debug, Clone)]
pub struct SmaCross {
    symbol: Symbol,
    fast: Sma,
    slow: Sma,
    slow_period: usize,
    qty: Decimal,
    /// Was fast above slow at the previous bar (None until both are warm).
    above: Option<bool>,
}

impl SmaCross {
    /// A new instance. `fast` must be shorter than `slow`, `qty` positive.
    pub fn new(symbol: Symbol, fast: usize, slow: usize, qty: Decimal) -> Self {
        Self { symbol, fast: Sma::new(fast), slow: Sma::new(slow), slow_period: slow, qty, above: None }
    }

    /// Builds from config params `fast`, `slow`, `qty`.
    pub fn from_params(symbol: Symbol, p: &Params<'_>) -> Result<Self, StrategyConfigError> {
        p.only(&["fast", "slow", "qty"])?;
        let fast = p.usize("fast")?;
        let slow = p.usize("slow")?;
        if slow <= fast {
            return Err(p.error("slow", format!("must be greater than fast ({fast}), got {slow}")));
        }
        let qty = p.positive_decimal("qty")?;
        Ok(Self::new(symbol, fast, slow, qty))
    }
}

impl Strategy for SmaCross {
    fn kind(&self) -> &'static str {
        "sma_cross"
    }

    fn symbols(&self) -> Vec<Symbol> {
        vec![self.symbol.clone()]
    }

    fn warmup_bars(&self) -> usize {
        self.slow_period
    }

    fn on_bar(&mut self, bar: &Bar, ctx: &mut StrategyCtx<'_>) {
        if bar.symbol != self.symbol {
            return;
        }
        let close = close_f64(bar.close);
        let (Some(fast), Some(slow)) = (self.fast.update(close), self.slow.update(close)) else {
            return;
        };
        let above = fast > slow;
        let crossed = self.above.map(|prev| prev != above);
        self.above = Some(above);
        if crossed != Some(true) {
            return;
        }
        let position = ctx.position(&self.symbol);
        let pending = ctx.pending_orders(&self.symbol);
        if above && position.is_zero() && pending == 0 {
            ctx.market(&self.symbol, Side::Buy, self.qty);
        } else if !above && position > Decimal::ZERO && pending == 0 {
            ctx.market(&self.symbol, Side::Sell, position);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use engine::market::MarketEvent;
    use engine::strategy::StrategyRunner;

    fn bar(i: i64, close: i64) -> MarketEvent {
        let c = Decimal::from(close);
        MarketEvent::Bar(Bar {
            symbol: "X".into(),
            open_time: i * 60_000,
            close_time: i * 60_000 + 59_999,
            open: c,
            high: c,
            low: c,
            close: c,
            volume: Decimal::ONE,
        })
    }

    #[test]
    fn buys_on_cross_up_and_sells_on_cross_down() {
        let mut r = StrategyRunner::new("s".into(), Box::new(SmaCross::new("X".into(), 2, 3, Decimal::ONE)));
        // Falling, then rising: at bar 4 the averages are equal (8 = 8), at bar 5
        // fast 10.5 > slow 9.33 crosses up; at bar 7 fast 12 < slow 12.67 crosses down.
        let closes = [10, 9, 8, 7, 9, 12, 14, 10, 6, 4];
        let mut intents = Vec::new();
        for (i, c) in closes.iter().enumerate() {
            r.on_market(&bar(i as i64, *c), 0).unwrap();
            for intent in r.drain_intents() {
                intents.push((i, intent.side, intent.qty));
            }
            // Fill each order at once so the position follows.
            if let Some((_, side, qty)) = intents.last().copied().filter(|(at, _, _)| *at == i) {
                let fill = engine::fill::Fill {
                    trade_id: i as u64,
                    client_order_id: "c".into(),
                    strategy_id: "s".into(),
                    symbol: "X".into(),
                    side,
                    price: Decimal::from(closes[i]),
                    qty,
                    fee: Decimal::ZERO,
                    fee_asset: "USDT".into(),
                    is_maker: false,
                    ts_ms: 0,
                };
                r.on_fill(&fill, 0).unwrap();
                r.on_order_update(
                    &engine::strategy::OrderUpdate {
                        client_order_id: Some("c".into()),
                        symbol: "X".into(),
                        side,
                        status: engine::order::OrderStatus::Filled,
                        filled_qty: qty,
                        reason: None,
                    },
                    0,
                )
                .unwrap();
            }
        }
        assert_eq!(intents, vec![(5, Side::Buy, Decimal::ONE), (7, Side::Sell, Decimal::ONE)]);
    }

    #[test]
    fn params_are_validated() {
        let cases: &[(&str, &str)] = &[
            ("fast = 5\nslow = 5\nqty = \"1\"", "slow"),
            ("fast = 0\nslow = 5\nqty = \"1\"", "fast"),
            ("fast = 2\nslow = 5\nqty = \"-1\"", "qty"),
            ("fast = 2\nslow = 5", "qty"),
            ("fast = 2\nslow = 5\nqty = \"1\"\nfsat = 3", "fsat"),
            ("fast = \"2\"\nslow = 5\nqty = \"1\"", "fast"),
        ];
        for (text, key) in cases {
            let table: toml::Table = text.parse().unwrap();
            let err = SmaCross::from_params("X".into(), &Params::new(&table, "p")).unwrap_err();
            assert_eq!(err.key, format!("p.{key}"), "{text}");
        }
    }
}
