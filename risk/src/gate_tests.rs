//! Table-driven tests of every pre-trade check, and sequence tests of the
//! bookkeeping between checks (in-flight exposure, reservations, windows,
//! states, protections, emergency stop).

use crate::config::RiskConfig;
use crate::config::{ProtectionAction, ProtectionKind};
use keel_core::balance::Balance;
use keel_core::config::DurationMs;
use keel_core::exits::{ExitLeg, ExitReason};
use keel_core::fill::Fill;
use keel_core::instrument::{Instrument, SymbolStatus};
use keel_core::order::{Order, OrderIntent, OrderStatus, OrderType, Side};
use keel_core::trading::TradingState;
use keel_core::Decimal;

use crate::protections::ProtectionEvent;
use crate::RiskEngine;

fn d(s: &str) -> Decimal {
    s.parse().unwrap()
}

const T: i64 = 1_700_000_000_000;

fn instrument(symbol: &str, base: &str) -> Instrument {
    Instrument {
        symbol: symbol.into(),
        base_asset: base.into(),
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
        max_num_orders: 3,
        status: SymbolStatus::Trading,
    }
}

/// BTCUSDT at 1000 and ETHUSDT at 100 (fresh at T); SOLUSDT never traded.
fn engine(config: RiskConfig) -> RiskEngine {
    let mut e = RiskEngine::new(
        config,
        vec![instrument("BTCUSDT", "BTC"), instrument("ETHUSDT", "ETH"), instrument("SOLUSDT", "SOL")],
    );
    e.on_market_event(&"BTCUSDT".into(), d("1000"), T);
    e.on_market_event(&"ETHUSDT".into(), d("100"), T);
    e
}

fn market(side: Side, symbol: &str, qty: &str) -> OrderIntent {
    OrderIntent::market("s".into(), symbol.into(), side, d(qty))
}

fn buy(qty: &str) -> OrderIntent {
    market(Side::Buy, "BTCUSDT", qty)
}

fn sell(qty: &str) -> OrderIntent {
    market(Side::Sell, "BTCUSDT", qty)
}

fn exit(qty: &str) -> OrderIntent {
    let mut i = sell(qty);
    i.reduce_only = true;
    i
}

fn limit(side: Side, qty: &str, price: &str) -> OrderIntent {
    OrderIntent::limit("s".into(), "BTCUSDT".into(), side, d(qty), d(price))
}

fn open_order(id: &str, symbol: &str, side: Side, qty: &str, price: &str) -> Order {
    let intent = OrderIntent::limit("s".into(), symbol.into(), side, d(qty), d(price));
    let mut o = Order::from_intent(&intent, id.into(), T);
    o.status = OrderStatus::Accepted;
    o
}

fn fill(id: &str, strategy: &str, side: Side, qty: &str, price: &str, trade_id: u64) -> Fill {
    Fill {
        trade_id: trade_id.into(),
        client_order_id: id.into(),
        strategy_id: strategy.into(),
        symbol: "BTCUSDT".into(),
        side,
        price: d(price),
        qty: d(qty),
        fee: Decimal::ZERO,
        fee_asset: "USDT".into(),
        is_maker: false,
        ts_ms: T,
        tag: None,
    }
}

fn usdt(free: &str) -> Balance {
    Balance { asset: "USDT".into(), free: d(free), locked: Decimal::ZERO }
}

fn btc(free: &str) -> Balance {
    Balance { asset: "BTC".into(), free: d(free), locked: Decimal::ZERO }
}

struct Case {
    name: &'static str,
    config: fn(&mut RiskConfig),
    setup: fn(&mut RiskEngine),
    intent: OrderIntent,
    now: i64,
    /// Ok(approved quantity) or Err(reason code).
    want: Result<&'static str, &'static str>,
}

fn none(_: &mut RiskConfig) {}
fn nothing(_: &mut RiskEngine) {}

fn run(cases: Vec<Case>) {
    for c in cases {
        let mut config = RiskConfig::unlimited();
        (c.config)(&mut config);
        let mut e = engine(config);
        (c.setup)(&mut e);
        let got = e.check_at(&c.intent, "case", c.now).map(|a| a.order().qty).map_err(|r| r.code());
        assert_eq!(got, c.want.map(d), "{}", c.name);
    }
}

#[test]
fn venue_filter_checks() {
    run(vec![
        Case {
            name: "rounded down to step, exactly min notional",
            config: none,
            setup: nothing,
            intent: buy("0.0109"),
            now: T,
            want: Ok("0.01"),
        },
        Case {
            name: "rounds to zero",
            config: none,
            setup: nothing,
            intent: buy("0.0009"),
            now: T,
            want: Err("venue_filter"),
        },
        Case { name: "zero", config: none, setup: nothing, intent: buy("0"), now: T, want: Err("venue_filter") },
        Case { name: "negative", config: none, setup: nothing, intent: buy("-1"), now: T, want: Err("venue_filter") },
        Case {
            name: "just below min notional",
            config: none,
            setup: nothing,
            intent: buy("0.009"),
            now: T,
            want: Err("venue_filter"),
        },
        Case {
            name: "limit just below min notional after rounding the price down",
            config: none,
            setup: nothing,
            intent: limit(Side::Buy, "0.01", "999.999"),
            now: T,
            want: Err("venue_filter"),
        },
        Case {
            name: "unknown symbol",
            config: none,
            setup: nothing,
            intent: market(Side::Buy, "DOGEUSDT", "1"),
            now: T,
            want: Err("unknown_symbol"),
        },
        Case {
            name: "symbol halted",
            config: none,
            setup: |e| {
                let mut i = instrument("BTCUSDT", "BTC");
                i.status = SymbolStatus::Halt;
                e.set_instrument(i);
            },
            intent: buy("1"),
            now: T,
            want: Err("symbol_not_trading"),
        },
        Case {
            name: "symbol status this build does not know",
            config: none,
            setup: |e| {
                let mut i = instrument("BTCUSDT", "BTC");
                i.status = SymbolStatus::parse("PRE_TRADING");
                e.set_instrument(i);
            },
            intent: buy("1"),
            now: T,
            want: Err("symbol_not_trading"),
        },
        Case {
            name: "venue max open orders: one below",
            config: none,
            setup: |e| {
                e.restore_open_order(&open_order("a", "BTCUSDT", Side::Buy, "0.1", "900"));
                e.restore_open_order(&open_order("b", "BTCUSDT", Side::Buy, "0.1", "900"));
            },
            intent: buy("0.1"),
            now: T,
            want: Ok("0.1"),
        },
        Case {
            name: "venue max open orders: at the limit",
            config: none,
            setup: |e| {
                for id in ["a", "b", "c"] {
                    e.restore_open_order(&open_order(id, "BTCUSDT", Side::Buy, "0.1", "900"));
                }
            },
            intent: buy("0.1"),
            now: T,
            want: Err("max_open_orders"),
        },
        Case {
            name: "venue max open orders counts per symbol",
            config: none,
            setup: |e| {
                for id in ["a", "b", "c"] {
                    e.restore_open_order(&open_order(id, "ETHUSDT", Side::Buy, "1", "90"));
                }
            },
            intent: buy("0.1"),
            now: T,
            want: Ok("0.1"),
        },
        Case {
            name: "venue max open orders: an OCO needs two of them (Binance counts both legs)",
            config: none,
            setup: |e| {
                s_long(e);
                for id in ["a", "b"] {
                    e.restore_open_order(&open_order(id, "BTCUSDT", Side::Buy, "0.1", "900"));
                }
            },
            intent: exit_leg(
                ExitLeg::Oco,
                OrderType::Oco { take_profit: d("1100"), stop: d("950"), stop_limit: None },
                "1",
            ),
            now: T,
            want: Err("max_open_orders"),
        },
        Case {
            name: "venue max open orders: an open OCO counts twice",
            config: none,
            setup: |e| {
                s_long(e);
                let oco = exit_leg(
                    ExitLeg::Oco,
                    OrderType::Oco { take_profit: d("1100"), stop: d("950"), stop_limit: None },
                    "1",
                );
                let mut o = Order::from_intent(&oco, "oco".into(), T);
                o.status = OrderStatus::Accepted;
                e.restore_open_order(&o);
                e.restore_open_order(&open_order("a", "BTCUSDT", Side::Buy, "0.1", "900"));
            },
            intent: buy("0.1"),
            now: T,
            want: Err("max_open_orders"),
        },
        Case {
            name: "venue max open orders: an OCO fits in the last two",
            config: none,
            setup: |e| {
                s_long(e);
                e.restore_open_order(&open_order("a", "BTCUSDT", Side::Buy, "0.1", "900"));
            },
            intent: exit_leg(
                ExitLeg::Oco,
                OrderType::Oco { take_profit: d("1100"), stop: d("950"), stop_limit: None },
                "1",
            ),
            now: T,
            want: Ok("1"),
        },
        Case {
            name: "global max open orders",
            config: |c| c.max_open_orders = 2,
            setup: |e| {
                e.restore_open_order(&open_order("a", "ETHUSDT", Side::Buy, "1", "90"));
                e.restore_open_order(&open_order("b", "ETHUSDT", Side::Buy, "1", "90"));
            },
            intent: buy("0.1"),
            now: T,
            want: Err("max_open_orders"),
        },
        Case {
            name: "quantity too large to round",
            config: none,
            setup: nothing,
            intent: buy("7922816251426433759354395033"),
            now: T,
            want: Err("overflow"),
        },
        Case {
            name: "notional too large to compute",
            config: none,
            setup: nothing,
            intent: limit(Side::Buy, "100000000000000000000000", "1000000"),
            now: T,
            want: Err("overflow"),
        },
        Case {
            name: "price too large to round",
            config: none,
            setup: nothing,
            intent: limit(Side::Sell, "1", "79228162514264337593543950335"),
            now: T,
            want: Err("overflow"),
        },
    ]);
}

#[test]
fn notional_position_and_gross_limits() {
    run(vec![
        Case {
            name: "exactly max order notional",
            config: |c| c.max_order_notional = d("1000"),
            setup: nothing,
            intent: buy("1"),
            now: T,
            want: Ok("1"),
        },
        Case {
            name: "just above max order notional",
            config: |c| c.max_order_notional = d("1000"),
            setup: nothing,
            intent: buy("1.001"),
            now: T,
            want: Err("notional_above_max"),
        },
        Case {
            name: "max order notional with decimal precision",
            config: |c| c.max_order_notional = d("9.99999999"),
            setup: nothing,
            intent: buy("0.01"),
            now: T,
            want: Err("notional_above_max"),
        },
        Case {
            name: "huge but computable quantity",
            config: |c| c.max_order_notional = d("1000"),
            setup: nothing,
            intent: buy("79228162514264337593543"),
            now: T,
            want: Err("notional_above_max"),
        },
        Case {
            name: "max order notional 0 is off",
            config: none,
            setup: nothing,
            intent: buy("79228162514264337593543"),
            now: T,
            want: Ok("79228162514264337593543"),
        },
        Case {
            name: "position exactly at the limit",
            config: |c| c.max_position_notional = d("1500"),
            setup: |e| e.restore_position("BTCUSDT".into(), d("1")),
            intent: buy("0.5"),
            now: T,
            want: Ok("0.5"),
        },
        Case {
            name: "position just above the limit",
            config: |c| c.max_position_notional = d("1500"),
            setup: |e| e.restore_position("BTCUSDT".into(), d("1")),
            intent: buy("0.501"),
            now: T,
            want: Err("position_above_max"),
        },
        Case {
            name: "position limit counts open orders on the same side",
            config: |c| c.max_position_notional = d("1500"),
            setup: |e| e.restore_open_order(&open_order("a", "BTCUSDT", Side::Buy, "1", "1000")),
            intent: buy("0.501"),
            now: T,
            want: Err("position_above_max"),
        },
        Case {
            name: "a limit buy below the market is valued at the market",
            config: |c| c.max_position_notional = d("1000"),
            setup: nothing,
            intent: limit(Side::Buy, "1.1", "900"),
            now: T,
            want: Err("position_above_max"),
        },
        Case {
            name: "a reducing sell is not limited by position",
            config: |c| c.max_position_notional = d("10"),
            setup: |e| e.restore_position("BTCUSDT".into(), d("5")),
            intent: sell("1"),
            now: T,
            want: Ok("1"),
        },
        Case {
            name: "gross exposure exactly at the limit",
            config: |c| c.max_gross_exposure = d("2000"),
            setup: |e| {
                e.restore_position("BTCUSDT".into(), d("1"));
                e.restore_position("ETHUSDT".into(), d("5"));
            },
            intent: market(Side::Buy, "ETHUSDT", "5"),
            now: T,
            want: Ok("5"),
        },
        Case {
            name: "gross exposure just above the limit",
            config: |c| c.max_gross_exposure = d("2000"),
            setup: |e| {
                e.restore_position("BTCUSDT".into(), d("1"));
                e.restore_position("ETHUSDT".into(), d("5"));
            },
            intent: market(Side::Buy, "ETHUSDT", "5.001"),
            now: T,
            want: Err("gross_exposure_above_max"),
        },
        Case {
            name: "gross exposure counts open orders on other symbols",
            config: |c| c.max_gross_exposure = d("1000"),
            setup: |e| e.restore_open_order(&open_order("a", "ETHUSDT", Side::Buy, "5", "100")),
            intent: buy("0.501"),
            now: T,
            want: Err("gross_exposure_above_max"),
        },
        Case {
            name: "a reducing sell passes a full gross limit",
            config: |c| c.max_gross_exposure = d("100"),
            setup: |e| e.restore_position("BTCUSDT".into(), d("5")),
            intent: sell("1"),
            now: T,
            want: Ok("1"),
        },
    ]);
}

#[test]
fn balance_band_stale_and_health_checks() {
    run(vec![
        Case {
            name: "buy exactly covered with fees",
            config: |c| {
                c.check_balance = true;
                c.balance_fee_bps = d("10");
            },
            setup: |e| e.on_balances(&[usdt("1001")]),
            intent: buy("1"),
            now: T,
            want: Ok("1"),
        },
        Case {
            name: "buy short by a cent with fees",
            config: |c| {
                c.check_balance = true;
                c.balance_fee_bps = d("10");
            },
            setup: |e| e.on_balances(&[usdt("1000.99")]),
            intent: buy("1"),
            now: T,
            want: Err("insufficient_balance"),
        },
        Case {
            name: "zero quote balance",
            config: |c| c.check_balance = true,
            setup: |e| e.on_balances(&[usdt("0")]),
            intent: buy("0.01"),
            now: T,
            want: Err("insufficient_balance"),
        },
        Case {
            name: "sell exactly the free base",
            config: |c| c.check_balance = true,
            setup: |e| {
                e.on_balances(&[btc("0.5")]);
                e.restore_position("BTCUSDT".into(), d("0.5"));
            },
            intent: sell("0.5"),
            now: T,
            want: Ok("0.5"),
        },
        Case {
            name: "sell more than the free base (cash account)",
            config: |c| c.check_balance = true,
            setup: |e| {
                e.on_balances(&[btc("0.5")]);
                e.restore_position("BTCUSDT".into(), d("0.5"));
            },
            intent: sell("0.501"),
            now: T,
            want: Err("insufficient_balance"),
        },
        Case {
            name: "unacknowledged open buy reserves quote",
            config: |c| c.check_balance = true,
            setup: |e| {
                e.on_balances(&[usdt("1000")]);
                let mut o = open_order("a", "BTCUSDT", Side::Buy, "0.5", "1000");
                o.status = OrderStatus::Submitted;
                e.restore_open_order(&o);
            },
            intent: buy("0.501"),
            now: T,
            want: Err("insufficient_balance"),
        },
        Case {
            name: "balances not known yet: skipped",
            config: |c| c.check_balance = true,
            setup: nothing,
            intent: buy("100"),
            now: T,
            want: Ok("100"),
        },
        Case {
            name: "check off",
            config: none,
            setup: |e| e.on_balances(&[usdt("0")]),
            intent: buy("1"),
            now: T,
            want: Ok("1"),
        },
        Case {
            name: "limit exactly at the band",
            config: |c| c.price_band_pct = d("5"),
            setup: nothing,
            intent: limit(Side::Buy, "0.1", "1050"),
            now: T,
            want: Ok("0.1"),
        },
        Case {
            name: "limit a cent outside the band",
            config: |c| c.price_band_pct = d("5"),
            setup: nothing,
            intent: limit(Side::Buy, "0.1", "1050.01"),
            now: T,
            want: Err("price_outside_band"),
        },
        Case {
            name: "sell exactly at the lower band",
            config: |c| c.price_band_pct = d("5"),
            setup: |e| e.restore_position("BTCUSDT".into(), d("1")),
            intent: limit(Side::Sell, "0.1", "950"),
            now: T,
            want: Ok("0.1"),
        },
        Case {
            name: "sell below the lower band",
            config: |c| c.price_band_pct = d("5"),
            setup: |e| e.restore_position("BTCUSDT".into(), d("1")),
            intent: limit(Side::Sell, "0.1", "949.99"),
            now: T,
            want: Err("price_outside_band"),
        },
        Case {
            name: "fat finger: a price 10x the market",
            config: |c| c.price_band_pct = d("5"),
            setup: nothing,
            intent: limit(Side::Buy, "0.1", "10000"),
            now: T,
            want: Err("price_outside_band"),
        },
        Case {
            name: "stop outside the band",
            config: |c| c.price_band_pct = d("5"),
            setup: nothing,
            intent: OrderIntent {
                order_type: OrderType::StopLimit { stop: d("1100"), price: d("1000") },
                ..limit(Side::Buy, "0.1", "1000")
            },
            now: T,
            want: Err("price_outside_band"),
        },
        Case {
            name: "market orders have no band",
            config: |c| c.price_band_pct = d("0.0001"),
            setup: nothing,
            intent: buy("0.1"),
            now: T,
            want: Ok("0.1"),
        },
        Case {
            name: "band with no reference price",
            config: |c| c.price_band_pct = d("5"),
            setup: nothing,
            intent: OrderIntent::limit("s".into(), "SOLUSDT".into(), Side::Buy, d("1"), d("100")),
            now: T,
            want: Err("no_price"),
        },
        Case {
            name: "market order with no price",
            config: none,
            setup: nothing,
            intent: market(Side::Buy, "SOLUSDT", "1"),
            now: T,
            want: Err("no_price"),
        },
        Case {
            name: "data exactly at the max age",
            config: |c| c.stale_data_after = DurationMs(5_000),
            setup: nothing,
            intent: buy("0.1"),
            now: T + 5_000,
            want: Ok("0.1"),
        },
        Case {
            name: "data a millisecond too old",
            config: |c| c.stale_data_after = DurationMs(5_000),
            setup: nothing,
            intent: buy("0.1"),
            now: T + 5_001,
            want: Err("stale_data"),
        },
        Case {
            name: "no market event ever",
            config: |c| c.stale_data_after = DurationMs(5_000),
            setup: |e| e.on_price(&"SOLUSDT".into(), d("20")),
            intent: market(Side::Buy, "SOLUSDT", "1"),
            now: T,
            want: Err("stale_data"),
        },
        Case {
            name: "stale check off",
            config: none,
            setup: nothing,
            intent: buy("0.1"),
            now: T + 86_400_000,
            want: Ok("0.1"),
        },
        Case {
            name: "venue unhealthy",
            config: none,
            setup: |e| e.set_venue_healthy(false),
            intent: buy("0.1"),
            now: T,
            want: Err("venue_unhealthy"),
        },
        Case {
            name: "venue unhealthy refuses exits too",
            config: none,
            setup: |e| {
                e.restore_position("BTCUSDT".into(), d("1"));
                e.set_venue_healthy(false);
            },
            intent: exit("1"),
            now: T,
            want: Err("venue_unhealthy"),
        },
    ]);
}

#[test]
fn states_pauses_and_emergency_stop() {
    run(vec![
        Case {
            name: "reducing refuses a new position",
            config: none,
            setup: |e| e.set_state(TradingState::Reducing),
            intent: buy("0.1"),
            now: T,
            want: Err("trading_state"),
        },
        Case {
            name: "reducing lets a reducing sell through",
            config: none,
            setup: |e| {
                e.restore_position("BTCUSDT".into(), d("1"));
                e.set_state(TradingState::Reducing);
            },
            intent: sell("1"),
            now: T,
            want: Ok("1"),
        },
        Case {
            name: "reducing refuses a sell through zero",
            config: none,
            setup: |e| {
                e.restore_position("BTCUSDT".into(), d("1"));
                e.set_state(TradingState::Reducing);
            },
            intent: sell("1.001"),
            now: T,
            want: Err("trading_state"),
        },
        Case {
            name: "halted refuses a buy",
            config: none,
            setup: |e| e.set_state(TradingState::Halted),
            intent: buy("0.1"),
            now: T,
            want: Err("trading_state"),
        },
        Case {
            name: "halted lets a reduce-only exit through",
            config: none,
            setup: |e| {
                e.restore_position("BTCUSDT".into(), d("2"));
                e.set_state(TradingState::Halted);
            },
            intent: exit("2"),
            now: T,
            want: Ok("2"),
        },
        Case {
            name: "halted refuses an exit not marked reduce-only",
            config: none,
            setup: |e| {
                e.restore_position("BTCUSDT".into(), d("2"));
                e.set_state(TradingState::Halted);
            },
            intent: sell("2"),
            now: T,
            want: Err("trading_state"),
        },
        Case {
            name: "halted without exits configured",
            config: |c| c.halted_reduce_only_exits = false,
            setup: |e| {
                e.restore_position("BTCUSDT".into(), d("2"));
                e.set_state(TradingState::Halted);
            },
            intent: exit("2"),
            now: T,
            want: Err("trading_state"),
        },
        Case {
            name: "exit already covered by an in-flight sell",
            config: none,
            setup: |e| {
                e.restore_position("BTCUSDT".into(), d("2"));
                e.restore_open_order(&open_order("a", "BTCUSDT", Side::Sell, "1.5", "1000"));
            },
            intent: exit("1"),
            now: T,
            want: Err("not_reducing"),
        },
        Case {
            name: "reduce-only without position",
            config: none,
            setup: nothing,
            intent: exit("0.5"),
            now: T,
            want: Err("not_reducing"),
        },
        Case {
            name: "emergency stop refuses a buy",
            config: none,
            setup: |e| e.set_emergency_stop(true),
            intent: buy("0.1"),
            now: T,
            want: Err("emergency_stop"),
        },
        Case {
            name: "emergency stop lets a flatten exit through even without halted exits",
            config: |c| c.halted_reduce_only_exits = false,
            setup: |e| {
                e.restore_position("BTCUSDT".into(), d("2"));
                e.set_emergency_stop(true);
            },
            intent: exit("2"),
            now: T,
            want: Ok("2"),
        },
        Case {
            name: "paused strategy",
            config: none,
            setup: |e| {
                e.pause_strategy("s", "operator:test", "test", T);
            },
            intent: buy("0.1"),
            now: T,
            want: Err("strategy_paused"),
        },
        Case {
            name: "another strategy is not paused",
            config: none,
            setup: |e| {
                e.pause_strategy("other", "operator:test", "test", T);
            },
            intent: buy("0.1"),
            now: T,
            want: Ok("0.1"),
        },
        Case {
            name: "a paused strategy may still exit",
            config: none,
            setup: |e| {
                e.restore_position("BTCUSDT".into(), d("1"));
                e.pause_strategy("s", "operator:test", "test", T);
            },
            intent: exit("1"),
            now: T,
            want: Ok("1"),
        },
        Case {
            name: "a resumed strategy trades",
            config: none,
            setup: |e| {
                e.pause_strategy("s", "operator:test", "test", T);
                e.resume_strategy("s");
            },
            intent: buy("0.1"),
            now: T,
            want: Ok("0.1"),
        },
    ]);
}

#[test]
fn duplicate_and_rate_checks() {
    fn approve(e: &mut RiskEngine, intent: &OrderIntent, id: &str, now: i64) {
        e.check_at(intent, id, now).unwrap_or_else(|r| panic!("setup order {id} refused: {r}"));
    }
    run(vec![
        Case {
            name: "duplicate within the window",
            config: |c| c.duplicate_window = DurationMs(1_000),
            setup: |e| approve(e, &limit(Side::Buy, "0.1", "990"), "a", T),
            intent: limit(Side::Buy, "0.1", "990"),
            now: T + 999,
            want: Err("duplicate"),
        },
        Case {
            name: "same order exactly at the end of the window",
            config: |c| c.duplicate_window = DurationMs(1_000),
            setup: |e| approve(e, &limit(Side::Buy, "0.1", "990"), "a", T),
            intent: limit(Side::Buy, "0.1", "990"),
            now: T + 1_000,
            want: Ok("0.1"),
        },
        Case {
            name: "duplicate after rounding (990.001 rounds to 990)",
            config: |c| c.duplicate_window = DurationMs(1_000),
            setup: |e| approve(e, &limit(Side::Buy, "0.1", "990"), "a", T),
            intent: limit(Side::Buy, "0.1001", "990.001"),
            now: T,
            want: Err("duplicate"),
        },
        Case {
            name: "a different price is not a duplicate",
            config: |c| c.duplicate_window = DurationMs(1_000),
            setup: |e| approve(e, &limit(Side::Buy, "0.1", "990"), "a", T),
            intent: limit(Side::Buy, "0.1", "990.01"),
            now: T,
            want: Ok("0.1"),
        },
        Case {
            name: "the same client order id twice",
            config: none,
            setup: |e| approve(e, &buy("0.1"), "case", T),
            intent: buy("0.2"),
            now: T,
            want: Err("duplicate"),
        },
        Case {
            name: "strategy rate at the per-second limit",
            config: |c| c.strategy_orders_per_second = 2,
            setup: |e| {
                approve(e, &buy("0.1"), "a", T);
                approve(e, &buy("0.2"), "b", T + 500);
            },
            intent: buy("0.3"),
            now: T + 999,
            want: Err("rate_limited"),
        },
        Case {
            name: "strategy rate a second later",
            config: |c| c.strategy_orders_per_second = 2,
            setup: |e| {
                approve(e, &buy("0.1"), "a", T);
                approve(e, &buy("0.2"), "b", T + 500);
            },
            intent: buy("0.3"),
            now: T + 1_000,
            want: Ok("0.3"),
        },
        Case {
            name: "global per-minute rate counts every strategy",
            config: |c| c.global_orders_per_minute = 2,
            setup: |e| {
                approve(e, &market(Side::Buy, "ETHUSDT", "1"), "a", T);
                let mut other = buy("0.1");
                other.strategy_id = "t".into();
                approve(e, &other, "b", T + 30_000);
            },
            intent: buy("0.3"),
            now: T + 59_999,
            want: Err("rate_limited"),
        },
        Case {
            name: "refused orders do not count towards the rate",
            config: |c| {
                c.strategy_orders_per_second = 1;
                c.max_order_notional = d("500");
            },
            setup: |e| {
                assert!(e.check_at(&buy("1"), "a", T).is_err());
            },
            intent: buy("0.3"),
            now: T,
            want: Ok("0.3"),
        },
    ]);
}

#[test]
fn two_quick_intents_cannot_both_pass_a_limit_only_one_fits_under() {
    let mut config = RiskConfig::unlimited();
    config.max_position_notional = d("1500");
    config.max_gross_exposure = d("1800");
    let mut e = engine(config);
    assert!(e.check_at(&buy("1"), "a", T).is_ok());
    // 1 in flight + 1 more = 2000 > 1500: refused although the position is still flat.
    assert_eq!(e.check_at(&buy("1"), "b", T).unwrap_err().code(), "position_above_max");
    assert!(e.check_at(&buy("0.5"), "c", T).is_ok(), "exactly at the limit passes");
    assert_eq!(
        e.check_at(&market(Side::Buy, "ETHUSDT", "3.01"), "d", T).unwrap_err().code(),
        "gross_exposure_above_max"
    );
    assert!(e.check_at(&market(Side::Buy, "ETHUSDT", "3"), "e", T).is_ok());
    // A fill moves exposure from in flight into the position: still counted.
    e.on_fill(&fill("a", "s", Side::Buy, "1", "1000", 1));
    assert_eq!(e.position("BTCUSDT"), d("1"));
    assert_eq!(e.check_at(&buy("0.1"), "f", T).unwrap_err().code(), "position_above_max");
    // Canceling the unfilled order frees its share.
    e.on_order_final("c");
    e.on_order_final("a");
    assert_eq!(e.in_flight_count(), 1);
    assert!(e.check_at(&buy("0.5"), "g", T).is_ok());
}

#[test]
fn balance_reservations_follow_acknowledgements_and_fills() {
    let mut config = RiskConfig::unlimited();
    config.check_balance = true;
    let mut e = engine(config);
    e.on_balances(&[usdt("1000")]);
    assert!(e.check_at(&buy("0.6"), "a", T).is_ok());
    assert_eq!(e.check_at(&buy("0.6"), "b", T).unwrap_err().code(), "insufficient_balance");
    // The venue accepts "a"; until it reports the locked funds, "a" stays reserved.
    e.on_order_accepted("a");
    assert_eq!(e.check_at(&buy("0.5"), "b2", T).unwrap_err().code(), "insufficient_balance");
    e.on_balances(&[Balance { asset: "USDT".into(), free: d("400"), locked: d("600") }]);
    assert!(e.check_at(&buy("0.4"), "c", T).is_ok(), "exactly the free balance, no double counting");
    assert_eq!(e.check_at(&buy("0.01"), "d", T).unwrap_err().code(), "insufficient_balance");
    // "c" fills before the next balance update: its spend stays counted.
    e.on_fill(&fill("c", "s", Side::Buy, "0.4", "1000", 1));
    e.on_order_final("c");
    assert_eq!(e.check_at(&buy("0.01"), "e", T).unwrap_err().code(), "insufficient_balance");
    e.on_balances(&[usdt("0"), btc("0.4")]);
    assert_eq!(e.check_at(&buy("0.01"), "f", T).unwrap_err().code(), "insufficient_balance");
    assert!(e.check_at(&sell("0.4"), "g", T).is_ok());
    assert_eq!(e.check_at(&sell("0.011"), "h", T).unwrap_err().code(), "insufficient_balance");
}

#[test]
fn coins_just_bought_can_be_sold_before_the_balance_report() {
    let mut config = RiskConfig::unlimited();
    config.check_balance = true;
    let mut e = engine(config);
    // No BTC at the last report.
    e.on_balances(&[usdt("1000"), btc("0")]);
    assert_eq!(e.check_at(&sell("0.01"), "a", T).unwrap_err().code(), "insufficient_balance");
    // A buy fills, its fee taken in BTC: the account received 0.399.
    let mut bought = fill("b", "s", Side::Buy, "0.4", "1000", 1);
    (bought.fee, bought.fee_asset) = (d("0.001"), "BTC".into());
    e.on_fill(&bought);
    e.on_order_final("b");
    // Before any report: what was received can be sold, not a step more.
    assert_eq!(e.check_at(&sell("0.4"), "c", T).unwrap_err().code(), "insufficient_balance");
    assert!(e.check_at(&sell("0.399"), "d", T).is_ok());
    // The quote spent stays counted: 600 left.
    assert_eq!(e.check_at(&buy("0.61"), "e", T).unwrap_err().code(), "insufficient_balance");
    // "d" fills: its proceeds are free quote before the report says so.
    e.on_fill(&fill("d", "s", Side::Sell, "0.399", "1000", 2));
    e.on_order_final("d");
    assert!(e.check_at(&buy("0.99"), "f", T).is_ok(), "600 + 399 received");
    e.on_order_final("f");
    assert_eq!(e.check_at(&sell("0.01"), "g", T).unwrap_err().code(), "insufficient_balance");
    // The report reconciles: it replaces what the fills said.
    e.on_balances(&[usdt("999"), btc("0")]);
    assert_eq!(e.check_at(&buy("1"), "h", T).unwrap_err().code(), "insufficient_balance");
    assert!(e.check_at(&buy("0.99"), "i", T).is_ok());
}

#[test]
fn untimed_check_skips_time_checks_until_a_time_is_known() {
    let mut config = RiskConfig::unlimited();
    config.stale_data_after = DurationMs(1_000);
    config.strategy_orders_per_second = 1;
    let mut btc = instrument("BTCUSDT", "BTC");
    btc.max_num_orders = 0;
    let mut e = RiskEngine::new(config, vec![btc]);
    e.on_price(&"BTCUSDT".into(), d("1000"));
    assert!(e.check(&buy("0.1"), "a").is_ok());
    assert!(e.check(&buy("0.2"), "b").is_ok(), "no time known: no rate limit");
    e.on_market_event(&"BTCUSDT".into(), d("1000"), T);
    assert!(e.check(&buy("0.3"), "c").is_ok());
    assert_eq!(e.check(&buy("0.4"), "d").unwrap_err().code(), "rate_limited");
}

/// Client-id strings handed back (and those of final orders) are reused:
/// each approval still carries, and counts in flight under, its own id.
#[test]
fn recycled_ids_name_the_next_approvals() {
    let mut e = engine(RiskConfig::unlimited());
    let first = e.check_at(&buy("0.05"), "bt-9", T).expect("approved");
    let (_, id) = first.into_parts();
    e.recycle_id(id);
    e.on_order_final("bt-9");
    for id in ["bt-10", "bt-11", "other-12"] {
        let approved = e.check_at(&buy("0.05"), id, T).expect("approved");
        assert_eq!(approved.client_order_id(), id);
        e.recycle_id(approved.into_parts().1);
    }
    assert_eq!(e.in_flight_count(), 3, "bt-10, bt-11 and other-12 are in flight");
    assert!(e.check_at(&buy("0.05"), "bt-11", T).is_err(), "an id in flight is refused again");
    e.on_order_final("bt-11");
    assert_eq!(e.in_flight_count(), 2);
}

#[test]
fn rejections_are_counted_by_reason() {
    let mut config = RiskConfig::unlimited();
    config.max_order_notional = d("100");
    let mut e = engine(config);
    for id in ["a", "b"] {
        assert!(e.check_at(&buy("1"), id, T).is_err());
    }
    assert!(e.check_at(&buy("0.05"), "c", T).is_ok());
    e.set_emergency_stop(true);
    assert!(e.check_at(&buy("0.05"), "d", T).is_err());
    assert_eq!(e.rejection_counts().get("notional_above_max"), Some(&2));
    assert_eq!(e.rejection_counts().get("emergency_stop"), Some(&1));
    assert_eq!(e.approved_total(), 1);
}

#[test]
fn drawdown_trips_halted_and_only_resume_clears_it() {
    let mut config = RiskConfig::unlimited();
    config.max_drawdown_pct = d("10");
    config.emergency_stop_on = vec![ProtectionKind::MaxDrawdown];
    let mut e = engine(config);
    let out = e.evaluate_protections(d("10000"), T);
    assert!(out.events.is_empty() && out.state_change.is_none());
    let out = e.evaluate_protections(d("9000"), T + 1);
    assert!(out.state_change.is_none(), "exactly 10% does not trip");
    let out = e.evaluate_protections(d("8999.99"), T + 2);
    let change = out.state_change.expect("state changes");
    assert_eq!(change.state, TradingState::Halted);
    assert!(change.reason.contains("max drawdown"), "{}", change.reason);
    assert!(out.emergency_stop.is_some(), "configured to set the emergency stop");
    assert_eq!(e.check_at(&buy("0.1"), "a", T + 3).unwrap_err().code(), "trading_state");
    assert!(e.evaluate_protections(d("20000"), T + 4).state_change.is_none(), "latched");
    let out = e.resume("operator:cli", T + 5);
    assert_eq!(out.state_change.map(|r| r.state), Some(TradingState::Active));
    assert!(e.check_at(&buy("0.1"), "b", T + 6).is_ok());
    assert!(e.evaluate_protections(d("18001"), T + 7).state_change.is_none(), "mark restarted at 20000");
}

#[test]
fn drawdown_action_reducing_and_state_severity() {
    let mut config = RiskConfig::unlimited();
    config.max_drawdown_pct = d("10");
    config.max_drawdown_action = ProtectionAction::Reducing;
    config.daily_loss_limit = d("5000");
    let mut e = engine(config);
    e.restore_position("BTCUSDT".into(), d("1"));
    e.evaluate_protections(d("10000"), T);
    let out = e.evaluate_protections(d("8000"), T + 1);
    assert_eq!(out.state_change.map(|r| r.state), Some(TradingState::Reducing));
    assert!(out.emergency_stop.is_none());
    assert_eq!(e.check_at(&buy("0.1"), "a", T + 1).unwrap_err().code(), "trading_state");
    assert!(e.check_at(&sell("0.5"), "b", T + 1).is_ok(), "reducing lets exits through");
    // The daily loss limit (HALTED) is more severe and wins.
    let out = e.evaluate_protections(d("4999"), T + 2);
    assert_eq!(out.state_change.map(|r| r.state), Some(TradingState::Halted));
    // An operator's base state never loosens what protections require.
    assert_eq!(e.set_state_with(TradingState::Active, "operator", T + 3), None);
    assert_eq!(e.state(), TradingState::Halted);
}

#[test]
fn losing_round_trips_pause_the_strategy_for_the_cooldown() {
    let mut config = RiskConfig::unlimited();
    config.max_consecutive_losses = 2;
    config.loss_cooldown = DurationMs(60_000);
    let mut e = engine(config);
    let mut id = 0;
    let mut trip = |e: &mut RiskEngine, exit_price: &str| -> Vec<ProtectionEvent> {
        id += 2;
        let mut events = e.on_fill_at(&fill("x", "s", Side::Buy, "1", "1000", id), T);
        events.extend(e.on_fill_at(&fill("x", "s", Side::Sell, "0.4", exit_price, id + 1), T));
        events.extend(e.on_fill_at(&fill("x", "s", Side::Sell, "0.6", exit_price, id + 100), T));
        events
    };
    assert!(trip(&mut e, "999.99").is_empty(), "first loss");
    assert!(trip(&mut e, "1000").is_empty(), "breakeven ends the streak");
    assert!(trip(&mut e, "999").is_empty());
    let events = trip(&mut e, "900");
    assert!(matches!(events.as_slice(), [ProtectionEvent::StrategyPaused { strategy, until_ms: Some(until), .. }]
        if strategy == "s" && *until == T + 60_000));
    assert_eq!(e.check_at(&buy("0.1"), "a", T + 59_999).unwrap_err().code(), "strategy_paused");
    let mut other = buy("0.1");
    other.strategy_id = "t".into();
    assert!(e.check_at(&other, "b", T + 1).is_ok(), "other strategies keep trading");
    assert!(e.check_at(&buy("0.1"), "c", T + 60_000).is_ok(), "cooldown over");
    let out = e.evaluate_protections(d("1000"), T + 60_000);
    assert!(out.events.iter().any(|e| matches!(e, ProtectionEvent::StrategyResumed { .. })));
}

#[test]
fn round_trip_pnl_includes_fees() {
    let mut config = RiskConfig::unlimited();
    config.max_consecutive_losses = 1;
    config.loss_cooldown = DurationMs(1_000);
    let mut e = engine(config);
    let mut open = fill("x", "s", Side::Buy, "1", "1000", 1);
    open.fee = d("0.5");
    let mut close = fill("x", "s", Side::Sell, "1", "1000.4", 2);
    close.fee = d("0.1");
    assert!(e.on_fill_at(&open, T).is_empty());
    // +0.4 realized − 0.6 fees = −0.2: a loss.
    assert_eq!(e.on_fill_at(&close, T).len(), 1);
}

#[test]
fn mark_to_market_equity_from_balances_and_prices() {
    let mut e = engine(RiskConfig::unlimited());
    assert_eq!(e.mark_to_market_equity(), None, "no balances yet");
    e.on_balances(&[
        Balance { asset: "USDT".into(), free: d("100.5"), locked: d("10") },
        Balance { asset: "BTC".into(), free: d("0.5"), locked: d("0.25") },
        Balance { asset: "BNB".into(), free: d("3"), locked: Decimal::ZERO },
        Balance { asset: "SOL".into(), free: Decimal::ZERO, locked: Decimal::ZERO },
    ]);
    assert_eq!(e.mark_to_market_equity(), Some(d("860.5")));
    e.on_balances(&[Balance { asset: "SOL".into(), free: d("1"), locked: Decimal::ZERO }]);
    assert_eq!(e.mark_to_market_equity(), None, "a held asset without a price");
}

#[test]
fn snapshot_shows_state_limits_usage_and_rejections() {
    let mut config = RiskConfig::unlimited();
    config.max_order_notional = d("500");
    config.max_drawdown_pct = d("10");
    let mut e = engine(config);
    e.restore_position("BTCUSDT".into(), d("0.2"));
    assert!(e.check_at(&buy("0.1"), "a", T).is_ok());
    assert!(e.check_at(&buy("1"), "b", T).is_err());
    e.evaluate_protections(d("1000"), T);
    e.evaluate_protections(d("850.5"), T + 1);
    let snap = e.snapshot(Some(T + 1_000));
    assert_eq!(snap.trading_state, TradingState::Halted);
    assert_eq!(snap.usage.open_orders, 1);
    assert_eq!(snap.usage.gross_exposure, d("300"));
    assert_eq!(snap.usage.orders_last_minute, 1);
    assert_eq!(snap.protections.drawdown_pct, Some(d("14.95")));
    let json = serde_json::to_value(&snap).unwrap();
    assert_eq!(json["trading_state"], "HALTED");
    assert_eq!(json["limits"]["max_order_notional"], "500");
    assert_eq!(json["rejections"]["notional_above_max"], 1);
    assert_eq!(json["protections"]["high_water_mark"], "1000");
    let btc = json["usage"]["symbols"].as_array().unwrap().iter().find(|s| s["symbol"] == "BTCUSDT").unwrap();
    assert_eq!(btc["position"], "0.2");
    assert_eq!(btc["last_event_age_ms"], 1_000);
    let text = snap.to_string();
    assert!(text.contains("trading state: HALTED"), "{text}");
    assert!(text.contains("notional_above_max=1"), "{text}");
}

#[test]
fn restored_strategy_position_ends_its_round_trip() {
    let mut config = RiskConfig::unlimited();
    config.max_consecutive_losses = 1;
    config.loss_cooldown = DurationMs(1_000);
    let mut e = engine(config);
    // Unknown entry price: the closing sell is neither a win nor a loss.
    e.restore_strategy_position("s".into(), "BTCUSDT".into(), d("1"), None);
    assert!(e.on_fill_at(&fill("x", "s", Side::Sell, "1", "1", 1), T).is_empty());
    // Known entry price: a loss counts.
    e.restore_strategy_position("s".into(), "BTCUSDT".into(), d("1"), Some(d("1000")));
    assert_eq!(e.on_fill_at(&fill("y", "s", Side::Sell, "1", "999", 2), T).len(), 1);
}

#[test]
fn emergency_request_names_the_protection() {
    let mut config = RiskConfig::unlimited();
    config.daily_loss_limit = d("100");
    config.emergency_stop_on = vec![ProtectionKind::DailyLoss];
    let mut e = engine(config);
    e.evaluate_protections(d("1000"), T);
    let out = e.evaluate_protections(d("899"), T + 1);
    let (by, reason) = out.emergency_request().expect("asks for the stop");
    assert_eq!(by, "protection:daily_loss");
    assert!(reason.contains("daily loss limit"), "{reason}");
    assert_eq!(out.emergency_stop.as_deref(), Some(reason.as_str()));
}

#[test]
fn flatten_sells_what_can_be_sold_and_names_the_dust() {
    let mut e = engine(RiskConfig::unlimited());
    // Net of a base-asset commission: 0.0999 held, 0.099 sellable (step 0.001).
    e.restore_position("BTCUSDT".into(), d("0.0999"));
    // Only dust.
    e.restore_position("ETHUSDT".into(), d("0.0004"));
    // A symbol the engine has no instrument for is still flattened, as held.
    e.restore_position("XRPUSDT".into(), d("3.33333"));
    let plan = e.flatten_plan(&"operator".into(), None);
    let orders: Vec<(String, Side, Decimal, bool)> =
        plan.orders.iter().map(|i| (i.symbol.to_string(), i.side, i.qty, i.reduce_only)).collect();
    assert_eq!(
        orders,
        vec![("BTCUSDT".into(), Side::Sell, d("0.099"), true), ("XRPUSDT".into(), Side::Sell, d("3.33333"), true)]
    );
    assert_eq!(plan.dust, vec![("BTCUSDT".into(), d("0.0009")), ("ETHUSDT".into(), d("0.0004"))]);
    let only = e.flatten_plan(&"operator".into(), Some(&"ETHUSDT".into()));
    assert!(only.orders.is_empty());
}

#[test]
fn on_the_running_account_positions_are_the_writers_not_counted_twice() {
    use keel_core::account::{Account, AccountWriter, Assets};
    let instruments = vec![instrument("BTCUSDT", "BTC"), instrument("ETHUSDT", "ETH")];
    let account = AccountWriter::new(Account::new(), Assets::of(&instruments));
    let mut e = RiskEngine::new(RiskConfig::default(), instruments).with_account(account.view());
    let mut buy = fill("k1", "s", Side::Buy, "1.0005", "1000", 1);
    (buy.fee, buy.fee_asset) = (d("0.0010005"), "BTC".into());
    // As live: the router writes the account, then the risk guard hears of the fill.
    account.apply(&buy);
    e.on_fill(&buy);
    assert_eq!(e.position("BTCUSDT"), d("0.9994995"), "net of the BTC commission, once");
    // A holding the engine never heard a fill of (a symbol added later) is still flattened.
    let eth = Fill { symbol: "ETHUSDT".into(), ..fill("k2", "s", Side::Buy, "2", "100", 2) };
    account.apply(&eth);
    let plan = e.flatten_plan(&"operator".into(), None);
    let orders: Vec<(String, Decimal)> = plan.orders.iter().map(|o| (o.symbol.to_string(), o.qty)).collect();
    assert_eq!(orders, [("BTCUSDT".to_string(), d("0.999")), ("ETHUSDT".to_string(), d("2"))]);
    assert_eq!(plan.dust, [("BTCUSDT".into(), d("0.0004995"))]);
    // restore_position is for a standalone engine: the running account is not touched.
    e.restore_position("BTCUSDT".into(), d("7"));
    assert_eq!(account.view().held("BTCUSDT"), d("0.9994995"));
    // Balances too are the account's: the check sees what the writer applied.
    account.apply_balances(&[usdt("150")], T);
    e.on_market_event(&"BTCUSDT".into(), d("1000"), T);
    match e.check_at(&market(Side::Buy, "BTCUSDT", "0.2"), "k3", T).map(|_| ()) {
        Err(r) => assert_eq!(r.code(), "insufficient_balance", "{r:?}"),
        Ok(()) => panic!("a 200 USDT buy against 150 USDT must be refused"),
    }
    assert_eq!(e.balances().map(|b| b.free("USDT")), Some(d("150")));
}

/// An exit order of strategy `s` on BTCUSDT: a sell marked with its leg.
fn exit_leg(leg: ExitLeg, order_type: OrderType, qty: &str) -> OrderIntent {
    let mut i = sell(qty);
    i.order_type = order_type;
    i.as_exit(leg)
}

/// An engine-side close of strategy `s` (a market sell, reason trailing stop).
fn close(qty: &str) -> OrderIntent {
    exit_leg(ExitLeg::Close(ExitReason::TrailingStop), OrderType::Market, qty)
}

/// A resting stop-loss leg of strategy `s` at 950.
fn stop_leg(qty: &str) -> OrderIntent {
    exit_leg(ExitLeg::Stop, OrderType::StopMarket { stop: d("950") }, qty)
}

/// Strategy `s` bought 1 BTC at 1000.
fn s_long(e: &mut RiskEngine) {
    e.on_fill(&fill("b", "s", Side::Buy, "1", "1000", 1));
}

/// Strategy `s` long 1, another strategy long 2 (the account holds 3).
fn s_and_other_long(e: &mut RiskEngine) {
    s_long(e);
    e.on_fill(&fill("o", "other", Side::Buy, "2", "1000", 2));
}

#[test]
fn exits_are_reduce_only_and_sized_to_the_strategy() {
    run(vec![
        Case {
            name: "a close within the strategy's position",
            config: none,
            setup: s_long,
            intent: close("1"),
            now: T,
            want: Ok("1"),
        },
        Case {
            name: "an exit never exceeds the strategy's own position, whatever the account holds",
            config: none,
            setup: s_and_other_long,
            intent: close("1.5"),
            now: T,
            want: Err("exit_above_position"),
        },
        Case {
            name: "the strategy's in-flight sell counts against its exit",
            config: none,
            setup: |e| {
                s_and_other_long(e);
                e.check_at(&limit(Side::Sell, "0.6", "1100"), "a", T).unwrap();
            },
            intent: close("0.5"),
            now: T,
            want: Err("exit_above_position"),
        },
        Case {
            name: "an exit that would open a short is not reducing",
            config: none,
            setup: nothing,
            intent: close("0.5"),
            now: T,
            want: Err("not_reducing"),
        },
        Case {
            name: "REDUCING allows an exit",
            config: none,
            setup: |e| {
                s_long(e);
                e.set_state(TradingState::Reducing);
            },
            intent: stop_leg("1"),
            now: T,
            want: Ok("1"),
        },
        Case {
            name: "a paused strategy keeps its stop",
            config: none,
            setup: |e| {
                s_long(e);
                e.pause_strategy("s", "operator:test", "test", T);
            },
            intent: stop_leg("1"),
            now: T,
            want: Ok("1"),
        },
        Case {
            name: "emergency stop: its flatten closes positions, not a strategy's close",
            config: |c| c.halted_reduce_only_exits = true,
            setup: |e| {
                s_long(e);
                e.set_emergency_stop(true);
            },
            intent: close("1"),
            now: T,
            want: Err("emergency_stop"),
        },
        Case {
            name: "emergency stop: a resting stop would undo its cancel-all",
            config: none,
            setup: |e| {
                s_long(e);
                e.set_emergency_stop(true);
            },
            intent: stop_leg("1"),
            now: T,
            want: Err("emergency_stop"),
        },
        Case {
            name: "emergency stop: a resting OCO is refused too",
            config: none,
            setup: |e| {
                s_long(e);
                e.set_emergency_stop(true);
            },
            intent: exit_leg(
                ExitLeg::Oco,
                OrderType::Oco { take_profit: d("1100"), stop: d("950"), stop_limit: None },
                "1",
            ),
            now: T,
            want: Err("emergency_stop"),
        },
        Case {
            name: "an OCO's take-profit may rest beyond the price band (its distance is configured)",
            config: |c| c.price_band_pct = d("5"),
            setup: s_long,
            intent: exit_leg(
                ExitLeg::Oco,
                OrderType::Oco { take_profit: d("1060"), stop: d("970"), stop_limit: None },
                "1",
            ),
            now: T,
            want: Ok("1"),
        },
        Case {
            name: "the same price not on an exit is outside the band",
            config: |c| c.price_band_pct = d("5"),
            setup: s_long,
            intent: limit(Side::Sell, "1", "1060"),
            now: T,
            want: Err("price_outside_band"),
        },
        Case {
            name: "a stop leg re-placed after its cancel is not a duplicate",
            config: |c| c.duplicate_window = DurationMs(1_000),
            setup: |e| {
                s_long(e);
                e.check_at(&stop_leg("1"), "a", T).unwrap();
                e.on_order_final("a");
            },
            intent: stop_leg("1"),
            now: T + 10,
            want: Ok("1"),
        },
        Case {
            name: "the same order not marked as an exit is still a duplicate",
            config: |c| c.duplicate_window = DurationMs(1_000),
            setup: |e| {
                s_long(e);
                e.check_at(&limit(Side::Sell, "0.5", "1100"), "a", T).unwrap();
                e.on_order_final("a");
            },
            intent: limit(Side::Sell, "0.5", "1100"),
            now: T + 10,
            want: Err("duplicate"),
        },
    ]);
}
