//! The risk engine: state, exposure bookkeeping and the pre-trade gate.

use std::collections::HashMap;

use engine::config::RiskConfig;
use engine::fill::Fill;
use engine::instrument::Instrument;
use engine::order::{Order, OrderIntent, OrderType, Side};
use engine::trading::TradingState;
use engine::{Decimal, Symbol};

use crate::reason::{RejectReason, Rejection};

/// An approved intent, rounded to the venue's filters.
#[derive(Debug, Clone, PartialEq)]
pub struct Approved {
    /// The intent as it will be sent.
    pub intent: OrderIntent,
    /// The price used to value it (limit price, or last price for a market order).
    pub reference_price: Decimal,
}

#[derive(Debug, Clone)]
struct InFlight {
    symbol: Symbol,
    side: Side,
    remaining: Decimal,
}

/// The risk engine. One instance sees every intent in order.
#[derive(Debug, Clone)]
pub struct RiskEngine {
    config: RiskConfig,
    instruments: HashMap<Symbol, Instrument>,
    state: TradingState,
    emergency_stop: bool,
    positions: HashMap<Symbol, Decimal>,
    in_flight: HashMap<String, InFlight>,
    last_price: HashMap<Symbol, Decimal>,
}

impl RiskEngine {
    /// A risk engine with limits and the instruments' filters, trading `ACTIVE`.
    pub fn new(config: RiskConfig, instruments: Vec<Instrument>) -> Self {
        Self {
            config,
            instruments: instruments.into_iter().map(|i| (i.symbol.clone(), i)).collect(),
            state: TradingState::Active,
            emergency_stop: false,
            positions: HashMap::new(),
            in_flight: HashMap::new(),
            last_price: HashMap::new(),
        }
    }

    /// The limits.
    pub fn config(&self) -> &RiskConfig {
        &self.config
    }

    /// Replaces an instrument's filters (after the venue reports them).
    pub fn set_instrument(&mut self, instrument: Instrument) {
        self.instruments.insert(instrument.symbol.clone(), instrument);
    }

    /// The trading state.
    pub fn state(&self) -> TradingState {
        self.state
    }

    /// Sets the trading state.
    pub fn set_state(&mut self, state: TradingState) {
        self.state = state;
    }

    /// True while the emergency stop is set.
    pub fn emergency_stop(&self) -> bool {
        self.emergency_stop
    }

    /// Sets or clears the emergency-stop gate.
    pub fn set_emergency_stop(&mut self, active: bool) {
        self.emergency_stop = active;
    }

    /// The account position in a symbol, as the risk engine counts it.
    pub fn position(&self, symbol: &str) -> Decimal {
        self.positions.get(symbol).copied().unwrap_or_default()
    }

    /// Sets a position (restoring at start).
    pub fn restore_position(&mut self, symbol: Symbol, qty: Decimal) {
        self.positions.insert(symbol, qty);
    }

    /// Counts an order that is open at start as in flight.
    pub fn restore_open_order(&mut self, order: &Order) {
        self.in_flight.insert(
            order.client_order_id.clone(),
            InFlight { symbol: order.symbol.clone(), side: order.side, remaining: order.remaining_qty() },
        );
    }

    /// A market price for a symbol.
    pub fn on_price(&mut self, symbol: &Symbol, price: Decimal) {
        if let Some(p) = self.last_price.get_mut(symbol) {
            *p = price;
        } else {
            self.last_price.insert(symbol.clone(), price);
        }
    }

    /// The last known price.
    pub fn last_price(&self, symbol: &str) -> Option<Decimal> {
        self.last_price.get(symbol).copied()
    }

    /// A fill: moves quantity from in flight into the position.
    pub fn on_fill(&mut self, fill: &Fill) {
        *self.positions.entry(fill.symbol.clone()).or_default() += fill.side.sign() * fill.qty;
        if let Some(f) = self.in_flight.get_mut(&fill.client_order_id) {
            f.remaining = (f.remaining - fill.qty).max(Decimal::ZERO);
        }
    }

    /// An order reached a final status: it no longer counts as in flight.
    pub fn on_order_final(&mut self, client_order_id: &str) {
        self.in_flight.remove(client_order_id);
    }

    /// Number of orders counted as open or in flight.
    pub fn in_flight_count(&self) -> usize {
        self.in_flight.len()
    }

    fn pending(&self, symbol: &str, side: Side) -> Decimal {
        self.in_flight.values().filter(|f| f.symbol.as_str() == symbol && f.side == side).map(|f| f.remaining).sum()
    }

    /// The gate: rounds the intent and checks it. On approval the order counts
    /// as in flight under `client_order_id` until [`Self::on_order_final`].
    pub fn check(&mut self, intent: &OrderIntent, client_order_id: &str) -> Result<Approved, Rejection> {
        let instrument = self
            .instruments
            .get(&intent.symbol)
            .ok_or_else(|| RejectReason::UnknownSymbol(intent.symbol.to_string()))?;
        let market = intent.order_type.is_market();
        let mut rounded = intent.clone();
        rounded.qty = instrument.round_qty(intent.qty, market);
        rounded.order_type = match intent.order_type {
            OrderType::Market => OrderType::Market,
            OrderType::Limit { price } => OrderType::Limit { price: instrument.round_price(price, intent.side) },
            OrderType::StopLimit { stop, price } => OrderType::StopLimit {
                stop: instrument.round_price(stop, intent.side.opposite()),
                price: instrument.round_price(price, intent.side),
            },
        };
        let position = self.position(&intent.symbol);
        let pending_same = self.pending(&intent.symbol, intent.side);
        // A reducing order shrinks |position| even after what is already in flight on its side.
        let reduces = match intent.side {
            Side::Sell => position - pending_same >= rounded.qty,
            Side::Buy => -(position + pending_same) >= rounded.qty,
        };
        if self.emergency_stop && !(intent.reduce_only && reduces) {
            return Err(RejectReason::EmergencyStop.into());
        }
        if !self.state.is_order_allowed(&rounded, reduces, true) {
            return Err(RejectReason::TradingState(self.state).into());
        }
        if intent.reduce_only && !reduces {
            return Err(RejectReason::NotReducing.into());
        }
        let reference_price = match rounded.order_type.limit_price() {
            Some(p) => p,
            None => self.last_price(&intent.symbol).ok_or_else(|| RejectReason::NoPrice(intent.symbol.to_string()))?,
        };
        instrument.check(rounded.qty, reference_price, market).map_err(RejectReason::Filter)?;
        let notional = rounded.qty * reference_price;
        if !self.config.max_order_notional.is_zero() && notional > self.config.max_order_notional {
            return Err(RejectReason::NotionalAboveMax { limit: self.config.max_order_notional, requested: notional }.into());
        }
        if !self.config.max_position_notional.is_zero() && !reduces {
            let resulting_qty = position + intent.side.sign() * (pending_same + rounded.qty);
            let resulting = resulting_qty.abs() * reference_price;
            if resulting > self.config.max_position_notional {
                return Err(RejectReason::PositionAboveMax { limit: self.config.max_position_notional, resulting }.into());
            }
        }
        self.in_flight.insert(
            client_order_id.to_string(),
            InFlight { symbol: rounded.symbol.clone(), side: rounded.side, remaining: rounded.qty },
        );
        Ok(Approved { intent: rounded, reference_price })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use engine::instrument::SymbolStatus;

    fn d(s: &str) -> Decimal {
        s.parse().unwrap()
    }

    fn engine(max_order: &str, max_pos: &str) -> RiskEngine {
        let instrument = Instrument {
            symbol: "BTCUSDT".into(),
            base_asset: "BTC".into(),
            quote_asset: "USDT".into(),
            tick_size: d("0.01"),
            min_price: d("0.01"),
            max_price: Decimal::ZERO,
            step_size: d("0.001"),
            min_qty: d("0.001"),
            max_qty: Decimal::ZERO,
            market_step_size: d("0.001"),
            min_notional: d("10"),
            max_notional: Decimal::ZERO,
            max_num_orders: 200,
            status: SymbolStatus::Trading,
        };
        let mut e = RiskEngine::new(
            RiskConfig { max_order_notional: d(max_order), max_position_notional: d(max_pos) },
            vec![instrument],
        );
        e.on_price(&"BTCUSDT".into(), d("1000"));
        e
    }

    fn buy(qty: &str) -> OrderIntent {
        OrderIntent::market("s".into(), "BTCUSDT".into(), Side::Buy, d(qty))
    }

    #[test]
    fn foundation_checks_table() {
        struct Case {
            name: &'static str,
            intent: OrderIntent,
            emergency: bool,
            want: Result<&'static str, &'static str>,
        }
        let mut sell = buy("0.5");
        sell.side = Side::Sell;
        sell.reduce_only = true;
        let cases = vec![
            Case { name: "rounded down to step, exactly min notional", intent: buy("0.0109"), emergency: false, want: Ok("0.01") },
            Case { name: "exactly max order notional", intent: buy("1"), emergency: false, want: Ok("1") },
            Case { name: "just above max order notional", intent: buy("1.001"), emergency: false, want: Err("notional_above_max") },
            Case { name: "rounds to zero", intent: buy("0.0009"), emergency: false, want: Err("venue_filter") },
            Case { name: "below min notional", intent: buy("0.009"), emergency: false, want: Err("venue_filter") },
            Case { name: "emergency stop", intent: buy("0.01"), emergency: true, want: Err("emergency_stop") },
            Case { name: "reduce-only without position", intent: sell, emergency: false, want: Err("not_reducing") },
            Case {
                name: "huge quantity",
                intent: buy("79228162514264337593543"),
                emergency: false,
                want: Err("notional_above_max"),
            },
        ];
        for c in cases {
            let mut e = engine("1000", "5000");
            e.set_emergency_stop(c.emergency);
            let got = e.check(&c.intent, "k").map(|a| a.intent.qty).map_err(|r| r.reason.code());
            assert_eq!(got, c.want.map(d), "{}", c.name);
        }
    }

    #[test]
    fn in_flight_orders_count_toward_position_limit() {
        let mut e = engine("1000", "1500");
        assert!(e.check(&buy("1"), "a").is_ok());
        // 1 in flight + 1 more = 2000 > 1500: refused although the position is still flat.
        assert_eq!(e.check(&buy("1"), "b").unwrap_err().reason.code(), "position_above_max");
        assert!(e.check(&buy("0.5"), "c").is_ok(), "exactly at the limit passes");
        e.on_order_final("a");
        assert!(e.check(&buy("0.5"), "d").is_ok());
    }

    #[test]
    fn halted_allows_only_reduce_only_exits() {
        let mut e = engine("10000", "0");
        e.restore_position("BTCUSDT".into(), d("2"));
        e.set_state(TradingState::Halted);
        assert_eq!(e.check(&buy("0.1"), "a").unwrap_err().reason.code(), "trading_state");
        let mut exit = buy("2");
        exit.side = Side::Sell;
        assert_eq!(e.check(&exit, "b").unwrap_err().reason.code(), "trading_state", "not marked reduce-only");
        exit.reduce_only = true;
        assert!(e.check(&exit, "c").is_ok());
    }
}
