//! Property: whatever happens (fills, prices, time, venue answers, refusals,
//! the strategy's own sells), the exit logic only ever sells what is held:
//! every exit order is a reduce-only sell, and the exit orders open at any
//! moment never add up to more than the position.

use proptest::prelude::*;
use rust_decimal::Decimal;

use super::*;
use crate::fill::Fill;
use crate::instrument::Instrument;
use crate::market::{MarketEvent, Trade};
use crate::order::{OrderIntent, OrderStatus, OrderType, Side};
use crate::strategy::{OrderUpdate, Signal, SignalAction, Strategy as Trading, StrategyCtx, StrategyRunner};
use crate::symbol::Symbol;

/// Buys and sells what the signals say.
struct Trader;

impl Trading for Trader {
    fn kind(&self) -> &'static str {
        "trader"
    }
    fn symbols(&self) -> Vec<Symbol> {
        vec!["BTCUSDT".into()]
    }
    fn on_signal(&mut self, signal: &Signal, ctx: &mut StrategyCtx<'_>) {
        let qty = signal.qty.unwrap_or_default();
        match signal.action {
            SignalAction::Buy => ctx.market(&signal.symbol, Side::Buy, qty),
            SignalAction::Sell => ctx.market(&signal.symbol, Side::Sell, qty),
            SignalAction::Close => {
                ctx.set_stop(&signal.symbol, qty);
            }
        }
    }
}

#[derive(Debug, Clone)]
enum Step {
    Buy(u32),
    Sell(u32),
    MoveStop(u32),
    Price(u32),
    Wait(u32),
    /// The venue answers the pending cancels.
    Cancels,
    /// The venue executes the resting leg number `n` (mod the count).
    LegExecutes(u8),
    /// The venue refuses the next leg (venue or risk).
    RefuseNext(bool),
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        (1u32..300).prop_map(Step::Buy),
        (1u32..300).prop_map(Step::Sell),
        (80u32..120).prop_map(Step::MoveStop),
        (80u32..125).prop_map(Step::Price),
        (1u32..4_000).prop_map(Step::Wait),
        Just(Step::Cancels),
        any::<u8>().prop_map(Step::LegExecutes),
        any::<bool>().prop_map(Step::RefuseNext),
    ]
}

/// An order open at the little venue.
struct Open {
    cid: String,
    intent: OrderIntent,
}

/// A venue that fills market orders at once (an exit sell or a strategy
/// sell beyond the free balance is refused, as Binance does), rests exit
/// legs (locking what they sell) and cancels on request.
struct Venue {
    runner: StrategyRunner,
    held: Decimal,
    price: Decimal,
    now: i64,
    n: u64,
    open: Vec<Open>,
    cancels: Vec<String>,
    refuse_next: Option<bool>,
}

impl Venue {
    fn locked(&self) -> Decimal {
        self.open.iter().map(|o| o.intent.qty).sum()
    }

    fn update(&mut self, cid: Option<String>, intent: &OrderIntent, status: OrderStatus, reason: Option<&str>) {
        let u = OrderUpdate {
            client_order_id: cid,
            symbol: intent.symbol.clone(),
            side: intent.side,
            status,
            filled_qty: Decimal::ZERO,
            reason: reason.map(str::to_string),
            tag: None,
            exit: intent.exit,
        };
        self.runner.on_order_update(&u, self.now).unwrap();
        self.pump();
    }

    fn fill(&mut self, cid: &str, intent: &OrderIntent, price: Decimal) {
        self.held += intent.side.sign() * intent.qty;
        self.n += 1;
        let f = Fill {
            trade_id: self.n.into(),
            client_order_id: cid.into(),
            strategy_id: "p".into(),
            symbol: intent.symbol.clone(),
            side: intent.side,
            price,
            qty: intent.qty,
            fee: Decimal::ZERO,
            fee_asset: "USDT".into(),
            is_maker: false,
            ts_ms: self.now,
            tag: None,
        };
        self.runner.on_fill(&f, self.now).unwrap();
        self.pump();
        self.update(Some(cid.into()), intent, OrderStatus::Filled, None);
    }

    /// Handles what the runner sent, checking every exit order.
    fn pump(&mut self) {
        let intents: Vec<OrderIntent> = self.runner.drain_intents().collect();
        self.cancels.extend(self.runner.drain_cancels());
        for intent in intents {
            self.n += 1;
            let cid = format!("o{}", self.n);
            if intent.exit.is_some() {
                assert_eq!(intent.side, Side::Sell, "an exit never buys: {intent:?}");
                assert!(intent.reduce_only, "{intent:?}");
                assert!(intent.qty > Decimal::ZERO, "{intent:?}");
                let free = self.held - self.locked();
                assert!(
                    intent.qty <= free,
                    "exit of {} with {} held, {} locked: {intent:?}",
                    intent.qty,
                    self.held,
                    self.locked()
                );
            }
            if intent.side == Side::Sell && intent.qty > self.held - self.locked() {
                self.update(None, &intent, OrderStatus::Rejected, Some("insufficient balance"));
                continue;
            }
            self.update(Some(cid.clone()), &intent, OrderStatus::Submitted, None);
            match intent.order_type {
                OrderType::Market => {
                    let price = self.price;
                    self.fill(&cid, &intent, price);
                }
                _ => match self.refuse_next.take() {
                    Some(true) => self.update(Some(cid), &intent, OrderStatus::Rejected, Some("risk: emergency stop")),
                    Some(false) => self.update(Some(cid), &intent, OrderStatus::Rejected, Some("unsupported")),
                    None => {
                        self.open.push(Open { cid: cid.clone(), intent: intent.clone() });
                        self.update(Some(cid), &intent, OrderStatus::Accepted, None);
                    }
                },
            }
        }
    }

    fn run(&mut self, step: Step) {
        let d = |n: u32, scale: u32| Decimal::new(i64::from(n), scale);
        match step {
            Step::Buy(q) | Step::Sell(q) | Step::MoveStop(q) => {
                let (action, qty) = match step {
                    Step::Buy(_) => (SignalAction::Buy, d(q, 3)),
                    Step::Sell(_) => (SignalAction::Sell, d(q, 3).min(self.held.max(Decimal::ZERO))),
                    _ => (SignalAction::Close, d(q, 0)),
                };
                if qty.is_zero() {
                    return;
                }
                let s = Signal { symbol: "BTCUSDT".into(), action, qty: Some(qty) };
                self.runner.on_signal(&s, self.now).unwrap();
                self.pump();
            }
            Step::Price(p) => {
                self.price = d(p, 0);
                let t = Trade {
                    symbol: "BTCUSDT".into(),
                    trade_id: 0,
                    price: self.price,
                    qty: Decimal::ONE,
                    aggressor: Side::Sell,
                    ts_ms: self.now,
                };
                self.runner.on_market(&MarketEvent::Trade(t), self.now).unwrap();
                self.pump();
            }
            Step::Wait(ms) => self.now += i64::from(ms) * 1_000,
            Step::Cancels => {
                for cid in std::mem::take(&mut self.cancels) {
                    if let Some(i) = self.open.iter().position(|o| o.cid == cid) {
                        let o = self.open.remove(i);
                        self.update(Some(cid), &o.intent, OrderStatus::Canceled, None);
                    }
                }
            }
            Step::LegExecutes(k) => {
                if self.open.is_empty() {
                    return;
                }
                let o = self.open.remove(usize::from(k) % self.open.len());
                let price = o.intent.order_type.stop_price().unwrap_or(self.price);
                self.fill(&o.cid, &o.intent, price);
            }
            Step::RefuseNext(risk) => self.refuse_next = Some(risk),
        }
        assert!(self.locked() <= self.held, "resting exits {} > held {}", self.locked(), self.held);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn exits_never_increase_a_position(steps in proptest::collection::vec(step(), 1..60), venue in any::<bool>()) {
        let spec = if venue {
            r#"{ stop_loss = "3%", take_profit = "6%", trailing_stop = { activate = "2%", distance = "1%" }, roi = [["0m", "10%"], ["30m", "1%"]], max_hold = "2h" }"#
        } else {
            r#"{ stop_loss = "3%", trailing_stop = { distance = "2%" }, max_hold = "1h", placement = "engine" }"#
        };
        #[derive(serde::Deserialize)]
        struct H { exits: ExitSpec }
        let mut h: H = toml::from_str(&format!("exits = {spec}")).unwrap();
        h.exits.validate("exits").unwrap();
        let btc = Instrument::with_steps("BTCUSDT".into(), "BTC".into(), "USDT".into(), Decimal::new(1, 2), Decimal::new(1, 3));
        let runner = StrategyRunner::new("p".into(), Box::new(Trader)).with_instruments(&[btc]).with_exits(h.exits);
        let mut v = Venue {
            runner,
            held: Decimal::ZERO,
            price: Decimal::ONE_HUNDRED,
            now: 0,
            n: 0,
            open: Vec::new(),
            cancels: Vec::new(),
            refuse_next: None,
        };
        for s in steps {
            v.run(s);
            prop_assert!(v.held >= Decimal::ZERO, "held {}", v.held);
        }
    }
}

/// A bar as (open, high, low, close) in whole units, from four draws.
fn ohlc() -> impl proptest::strategy::Strategy<Value = (i64, i64, i64, i64)> {
    (80i64..125, 0i64..6, 0i64..6, -5i64..6).prop_map(|(o, up, down, c)| {
        let (high, low) = (o + up, o - down);
        (o, high, low, (o + c).clamp(low, high))
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// The backtest's band (bars where nothing can fire skip the path) never
    /// changes an outcome: the same bars with the path followed every time
    /// give the same exit, at the same bar and price.
    #[test]
    fn the_band_never_hides_an_exit(bars in proptest::collection::vec(ohlc(), 1..80), which in 0usize..4) {
        let specs = [
            r#"stop_loss = "3%"
take_profit = "6%""#,
            r#"trailing_stop = { activate = "2%", distance = "1%" }"#,
            r#"roi = [["0m", "10%"], ["3h", "4%"], ["10h", "1%"]]
max_hold = "40h""#,
            r#"stop_loss = "5%"
trailing_stop = { distance = "3%" }
roi = [["0m", "8%"], ["5h", "0%"]]"#,
        ];
        let mut spec: ExitSpec = toml::from_str(specs[which]).unwrap();
        spec.validate("exits").unwrap();
        const H: i64 = 3_600_000;
        let bar = |k: usize, (o, h, l, c): (i64, i64, i64, i64)| crate::market::Bar {
            symbol: "BTCUSDT".into(),
            open_time: k as i64 * H,
            close_time: k as i64 * H + H - 1,
            open: Decimal::from(o),
            high: Decimal::from(h),
            low: Decimal::from(l),
            close: Decimal::from(c),
            volume: Decimal::ONE,
        };
        let run = |banded: bool| {
            let mut book = ExitBook::new("p".into(), Some(spec.clone()));
            book.set_bar_mode(true);
            let entry = Fill {
                trade_id: 1u64.into(),
                client_order_id: "e".into(),
                strategy_id: "p".into(),
                symbol: "BTCUSDT".into(),
                side: Side::Buy,
                price: Decimal::ONE_HUNDRED,
                qty: Decimal::ONE,
                fee: Decimal::ZERO,
                fee_asset: "USDT".into(),
                is_maker: false,
                ts_ms: 0,
                tag: None,
            };
            book.on_fill(&entry, Decimal::ONE, 0);
            for (k, b) in bars.iter().enumerate() {
                if !banded {
                    // Forgets the band: the path is followed on every bar.
                    let _ = book.state_mut("BTCUSDT");
                }
                if let Some((intent, price)) = book.on_bar(&bar(k, *b), || Decimal::ONE) {
                    return Some((k, intent.exit, price));
                }
            }
            None
        };
        prop_assert_eq!(run(true), run(false));
    }
}
