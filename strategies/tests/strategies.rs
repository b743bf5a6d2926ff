//! Behaviour of every strategy through the engine's `StrategyRunner`, with a
//! tiny fill model: market orders fill at the bar's close, limit orders rest
//! and fill at their price when a later close reaches it. And the registry:
//! every kind builds from valid params and names the key of a bad one.

use keel_core::config::StrategyConfig;
use keel_core::fill::Fill;
use keel_core::market::{Bar, MarketEvent};
use keel_core::order::{OrderIntent, OrderStatus, OrderType, Side};
use keel_core::strategy::{OrderUpdate, Signal, SignalAction, StrategyRunner};
use keel_core::Decimal;

fn d(s: &str) -> Decimal {
    s.parse().unwrap()
}

fn config(kind: &str, params: &str) -> StrategyConfig {
    StrategyConfig {
        id: "s".into(),
        kind: kind.into(),
        symbol: "X".into(),
        symbols: None,
        paused: false,
        params: params.parse().unwrap(),
        exits: None,
    }
}

/// Drives a runner over closes; returns (bar index, side, qty, limit price) of every order sent.
struct Harness {
    runner: StrategyRunner,
    resting: Vec<(String, OrderIntent)>,
    next: u64,
    sent: Vec<(usize, Side, Decimal, Option<Decimal>)>,
}

impl Harness {
    fn new(kind: &str, params: &str) -> Self {
        let strategy = strategies::StrategyRegistry::builtin().build(0, &config(kind, params)).unwrap();
        Self { runner: StrategyRunner::new("s".into(), strategy), resting: Vec::new(), next: 1, sent: Vec::new() }
    }

    fn fill(&mut self, id: &str, intent: &OrderIntent, price: Decimal, ts: i64) {
        let fill = Fill {
            trade_id: self.next.into(),
            client_order_id: id.into(),
            strategy_id: "s".into(),
            symbol: "X".into(),
            side: intent.side,
            price,
            qty: intent.qty,
            fee: Decimal::ZERO,
            fee_asset: "USDT".into(),
            is_maker: false,
            ts_ms: ts,
            // As the router does: the fill carries its order's tag.
            tag: intent.tag,
        };
        self.next += 1;
        self.runner.on_fill(&fill, ts).unwrap();
        let update = OrderUpdate {
            client_order_id: Some(id.into()),
            symbol: "X".into(),
            side: intent.side,
            status: OrderStatus::Filled,
            filled_qty: intent.qty,
            reason: None,
            tag: intent.tag,
            exit: None,
        };
        self.runner.on_order_update(&update, ts).unwrap();
    }

    fn take_intents(&mut self, at: usize, close: Decimal, ts: i64) {
        let intents: Vec<OrderIntent> = self.runner.drain_intents().collect();
        for intent in intents {
            self.sent.push((at, intent.side, intent.qty, intent.order_type.limit_price()));
            let id = format!("c{}", self.next);
            self.next += 1;
            match intent.order_type {
                OrderType::Market => self.fill(&id, &intent, close, ts),
                _ => {
                    let update = OrderUpdate {
                        client_order_id: Some(id.clone()),
                        symbol: "X".into(),
                        side: intent.side,
                        status: OrderStatus::Accepted,
                        filled_qty: Decimal::ZERO,
                        reason: None,
                        tag: intent.tag,
                        exit: None,
                    };
                    self.runner.on_order_update(&update, ts).unwrap();
                    self.resting.push((id, intent));
                }
            }
        }
    }

    fn bar(&mut self, i: usize, close: Decimal) {
        let ts = i as i64 * 60_000;
        // Resting limits first: this bar's close reaches them.
        let resting = std::mem::take(&mut self.resting);
        for (id, intent) in resting {
            let price = intent.order_type.limit_price().unwrap();
            let reached = match intent.side {
                Side::Buy => close <= price,
                Side::Sell => close >= price,
            };
            if reached {
                self.fill(&id, &intent, price, ts);
            } else {
                self.resting.push((id, intent));
            }
        }
        let bar = Bar {
            symbol: "X".into(),
            open_time: ts,
            close_time: ts + 59_999,
            open: close,
            high: close,
            low: close,
            close,
            volume: Decimal::ONE,
        };
        self.runner.on_market(&MarketEvent::Bar(bar), ts + 59_999).unwrap();
        self.take_intents(i, close, ts);
    }

    fn run(kind: &str, params: &str, closes: &[f64]) -> Self {
        let mut h = Self::new(kind, params);
        for (i, c) in closes.iter().enumerate() {
            h.bar(i, Decimal::try_from(*c).unwrap());
        }
        h
    }

    fn sides(&self) -> Vec<(usize, Side)> {
        self.sent.iter().map(|(i, s, _, _)| (*i, *s)).collect()
    }
}

fn falling_then_rising_then_falling() -> Vec<f64> {
    let mut v: Vec<f64> = (0..30).map(|i| 100.0 - i as f64).collect();
    v.extend((0..30).map(|i| 71.0 + 2.0 * i as f64));
    v.extend((0..30).map(|i| 129.0 - 3.0 * i as f64));
    v
}

#[test]
fn ema_cross_buys_the_turn_up_and_sells_the_turn_down() {
    let h = Harness::run("ema_cross", "fast = 3\nslow = 8\nqty = \"1\"", &falling_then_rising_then_falling());
    let sides = h.sides();
    assert_eq!(sides.len(), 2, "{sides:?}");
    assert_eq!(sides[0].1, Side::Buy);
    assert!((30..40).contains(&sides[0].0), "buys soon after the low at bar 29: {sides:?}");
    assert_eq!(sides[1].1, Side::Sell);
    assert!((60..70).contains(&sides[1].0), "sells soon after the high at bar 59: {sides:?}");
    assert_eq!(h.runner.exposure("X").qty, Decimal::ZERO);
}

#[test]
fn macd_buys_the_turn_up_and_sells_the_turn_down() {
    let h = Harness::run("macd", "fast = 3\nslow = 6\nsignal = 3\nqty = \"2\"", &falling_then_rising_then_falling());
    let sides = h.sides();
    assert_eq!(sides.iter().map(|s| s.1).collect::<Vec<_>>(), vec![Side::Buy, Side::Sell], "{sides:?}");
    assert!((30..40).contains(&sides[0].0) && (60..70).contains(&sides[1].0), "{sides:?}");
    assert_eq!(h.sent[1].2, d("2"), "sells the whole position");
}

#[test]
fn rsi_reversion_buys_oversold_and_sells_overbought() {
    // Down 14 bars in a row (RSI 0), then up (RSI 100).
    let mut closes: Vec<f64> = (0..20).map(|i| 100.0 - i as f64).collect();
    closes.extend((0..20).map(|i| 82.0 + i as f64));
    let h = Harness::run("rsi_reversion", "period = 5\nbuy_below = 30\nsell_above = 70\nqty = \"1\"", &closes);
    // Wilder smoothing: after k rising bars RSI = 100 (1 - 0.8^k), above 70 from k = 6.
    assert_eq!(h.sides(), vec![(5, Side::Buy), (25, Side::Sell)]);
}

#[test]
fn bollinger_breakout_buys_above_the_upper_band_and_exits_below_the_middle() {
    let mut closes = vec![100.0, 101.0, 100.0, 99.0, 100.0, 101.0, 100.0, 99.0, 100.0, 101.0];
    closes.extend([110.0, 112.0, 111.0, 100.0, 95.0]);
    let h = Harness::run("bollinger_breakout", "period = 5\nk = 1.5\nqty = \"1\"", &closes);
    assert_eq!(h.sides(), vec![(10, Side::Buy), (13, Side::Sell)]);
}

#[test]
fn grid_buys_levels_below_and_sells_one_level_up() {
    // Levels 90, 95, 100, 105, 110. Start at 102: buys rest at 100, 95 and 90
    // at once, nearest first (each tagged with its level). Price dips to 94 (two fill), then
    // rises to 106.
    let closes = [102.0, 102.0, 101.0, 94.0, 94.0, 94.0, 97.0, 101.0, 106.0, 106.0];
    let h = Harness::run("grid", "lower = \"90\"\nupper = \"110\"\nlevels = 5\nqty = \"0.5\"", &closes);
    let orders: Vec<(usize, Side, Decimal)> = h.sent.iter().map(|(i, s, _, p)| (*i, *s, p.unwrap())).collect();
    assert_eq!(
        orders[..5],
        [
            (0, Side::Buy, d("100")),
            (0, Side::Buy, d("95")),
            (0, Side::Buy, d("90")),
            (3, Side::Sell, d("100")),
            (3, Side::Sell, d("105"))
        ],
        "{orders:?}"
    );
    // The sell of the 95 level (at 100) filled at bar 7 and the grid re-armed that buy.
    assert!(orders.contains(&(7, Side::Buy, d("95"))), "re-armed after its sell filled: {orders:?}");
    assert!(orders.contains(&(8, Side::Buy, d("100"))), "re-armed after its sell filled: {orders:?}");
    assert_eq!(h.runner.exposure("X").qty, Decimal::ZERO, "everything bought was sold: {orders:?}");
    assert!(h.sent.iter().all(|(_, _, q, _)| *q == d("0.5")));
}

#[test]
fn grid_places_a_few_orders_per_bar_nearest_the_price_first() {
    // 21 levels from 80 to 100; at 99.5 twenty levels are below the close.
    let h = Harness::run("grid", "lower = \"80\"\nupper = \"100\"\nlevels = 21\nqty = \"1\"", &[99.5, 99.5]);
    let prices: Vec<(usize, Decimal)> = h.sent.iter().map(|(i, _, _, p)| (*i, p.unwrap())).collect();
    let want: Vec<(usize, Decimal)> =
        [(0, "99"), (0, "98"), (0, "97"), (0, "96"), (1, "95"), (1, "94"), (1, "93"), (1, "92")]
            .iter()
            .map(|(i, p)| (*i, d(p)))
            .collect();
    assert_eq!(prices, want);
}

#[test]
fn webhook_follows_signals_within_its_limits() {
    let mut h = Harness::new("webhook", "qty = \"1\"\nmax_position = \"1.5\"");
    let signals = [
        (SignalAction::Sell, None),         // nothing held: ignored
        (SignalAction::Buy, None),          // 1
        (SignalAction::Buy, None),          // capped to 0.5
        (SignalAction::Buy, Some("2")),     // at the cap: ignored
        (SignalAction::Sell, Some("0.25")), // 0.25
        (SignalAction::Close, None),        // 1.25
    ];
    for (i, (action, qty)) in signals.iter().enumerate() {
        let signal = Signal { symbol: "X".into(), action: *action, qty: qty.map(d) };
        h.runner.on_signal(&signal, i as i64).unwrap();
        h.take_intents(i, d("10"), i as i64);
    }
    let got: Vec<(Side, Decimal)> = h.sent.iter().map(|(_, s, q, _)| (*s, *q)).collect();
    assert_eq!(got, vec![(Side::Buy, d("1")), (Side::Buy, d("0.5")), (Side::Sell, d("0.25")), (Side::Sell, d("1.25"))]);
    // Signals for another symbol are not its business.
    h.runner.on_signal(&Signal { symbol: "Y".into(), action: SignalAction::Buy, qty: None }, 9).unwrap();
    assert_eq!(h.runner.drain_intents().count(), 0);
}

#[test]
fn every_kind_builds_and_bad_params_name_the_key() {
    let valid = [
        ("sma_cross", "fast = 2\nslow = 5\nqty = \"1\""),
        ("ema_cross", "fast = 2\nslow = 5\nqty = \"1\""),
        ("rsi_reversion", "qty = \"1\""),
        ("bollinger_breakout", "qty = \"1\""),
        ("macd", "qty = \"1\""),
        ("grid", "lower = \"1\"\nupper = \"2\"\nqty = \"1\""),
        ("webhook", "qty = \"1\""),
        ("scanner", "funding_above = \"50%\""),
        ("pine", concat!("script = \"", env!("CARGO_MANIFEST_DIR"), "/pine/examples/ema_cross.pine\"")),
    ];
    let registry = strategies::StrategyRegistry::builtin();
    let kinds: Vec<&str> = registry.kinds().iter().map(|k| k.name.as_str()).collect();
    assert_eq!(valid.iter().map(|v| v.0).collect::<Vec<_>>(), kinds);
    for (kind, params) in valid {
        let s = strategies::StrategyRegistry::builtin()
            .build(0, &config(kind, params))
            .unwrap_or_else(|e| panic!("{kind}: {e}"));
        assert_eq!(s.kind(), kind);
    }
    struct Case {
        kind: &'static str,
        params: &'static str,
        key: &'static str,
    }
    let cases = [
        Case { kind: "ema_cross", params: "fast = 5\nslow = 3\nqty = \"1\"", key: "slow" },
        Case { kind: "ema_cross", params: "fast = 2\nslow = 5", key: "qty" },
        Case { kind: "rsi_reversion", params: "buy_below = 0\nqty = \"1\"", key: "buy_below" },
        Case { kind: "rsi_reversion", params: "buy_below = 60\nsell_above = 50\nqty = \"1\"", key: "sell_above" },
        Case { kind: "rsi_reversion", params: "sell_above = 100\nqty = \"1\"", key: "sell_above" },
        Case { kind: "rsi_reversion", params: "period = 0\nqty = \"1\"", key: "period" },
        Case { kind: "rsi_reversion", params: "buy_below = \"low\"\nqty = \"1\"", key: "buy_below" },
        Case { kind: "bollinger_breakout", params: "period = 1\nqty = \"1\"", key: "period" },
        Case { kind: "bollinger_breakout", params: "k = -1\nqty = \"1\"", key: "k" },
        Case { kind: "bollinger_breakout", params: "qty = \"1\"\nwidth = 2", key: "width" },
        Case { kind: "macd", params: "fast = 26\nslow = 12\nqty = \"1\"", key: "slow" },
        Case { kind: "macd", params: "signal = 0\nqty = \"1\"", key: "signal" },
        Case { kind: "grid", params: "lower = \"2\"\nupper = \"1\"\nqty = \"1\"", key: "upper" },
        Case { kind: "grid", params: "lower = \"-1\"\nupper = \"1\"\nqty = \"1\"", key: "lower" },
        Case { kind: "grid", params: "lower = \"1\"\nupper = \"2\"\nlevels = 1\nqty = \"1\"", key: "levels" },
        Case { kind: "grid", params: "lower = \"1\"\nupper = \"2\"\nqty = \"0\"", key: "qty" },
        Case { kind: "webhook", params: "qty = \"1\"\nmax_position = \"0\"", key: "max_position" },
        Case { kind: "webhook", params: "", key: "qty" },
        Case { kind: "scanner", params: "", key: "funding_above" },
        Case { kind: "scanner", params: "volume_spike = \"3\"\nvolume_bars = 0", key: "volume_bars" },
        Case { kind: "pine", params: "script = 3", key: "script" },
        Case { kind: "pine", params: "script = \"no/such.pine\"", key: "script" },
    ];
    for c in cases {
        let err = match strategies::StrategyRegistry::builtin().build(3, &config(c.kind, c.params)) {
            Ok(_) => panic!("{} {:?} should fail", c.kind, c.params),
            Err(e) => e,
        };
        assert_eq!(err.key, format!("strategy[3].params.{}", c.key), "{} {:?}: {err}", c.kind, c.params);
    }
    let err = strategies::StrategyRegistry::builtin().build(1, &config("martingale", "")).err().unwrap();
    assert_eq!(err.key, "strategy[1].kind");
}

/// An order of strategy `s` on X working at the venue, as the store keeps it.
fn working(id: &str, side: Side, qty: &str, price: &str, tag: Option<u32>) -> keel_core::order::Order {
    let mut intent = OrderIntent::limit("s".into(), "X".into(), side, d(qty), d(price));
    intent.tag = tag.map(keel_core::order::OrderTag);
    let mut o = keel_core::order::Order::from_intent(&intent, id.into(), 0);
    o.status = OrderStatus::Accepted;
    o
}

#[test]
fn grid_readopts_its_orders_at_start_and_cancels_what_does_not_fit() {
    // Levels 90, 95, 100, 105, 110; the strategy holds 1.0 from earlier runs.
    let mut h = Harness::new("grid", "lower = \"90\"\nupper = \"110\"\nlevels = 5\nqty = \"0.5\"");
    h.runner.restore_position("X".into(), d("1.0"));
    let open = [
        working("b90", Side::Buy, "0.5", "90", Some(0)),
        working("b90-again", Side::Buy, "0.5", "90", Some(0)), // a duplicate: canceled
        working("b95-old", Side::Buy, "0.5", "95", None),      // untagged, at a level: adopted
        working("s100", Side::Sell, "0.5", "105", Some(2)),    // level 100's inventory
        working("odd", Side::Buy, "0.5", "97", None),          // not a level: canceled
    ];
    assert_eq!(h.runner.adopt(&open, 0), Ok(2));
    assert_eq!(h.runner.drain_cancels().collect::<Vec<_>>(), ["b90-again", "odd"]);
    assert_eq!(h.runner.exposure("X").pending_orders, 5, "every open order counts until its update");
    // At 102 nothing is bought again at 90 or 95; 100 is selling; the 0.5
    // held beyond the working sell goes to the highest idle level (105) and is
    // offered at 110.
    h.bar(0, d("102"));
    let orders: Vec<(Side, Decimal)> = h.sent.iter().map(|(_, s, _, p)| (*s, p.unwrap())).collect();
    assert_eq!(orders, [(Side::Sell, d("110"))], "{orders:?}");
    // A late cancel of the duplicate does not free level 90.
    let canceled = OrderUpdate {
        client_order_id: Some("b90-again".into()),
        symbol: "X".into(),
        side: Side::Buy,
        status: OrderStatus::Canceled,
        filled_qty: Decimal::ZERO,
        reason: None,
        tag: Some(keel_core::order::OrderTag(0)),
        exit: None,
    };
    h.runner.on_order_update(&canceled, 1).unwrap();
    h.bar(1, d("102"));
    assert_eq!(h.sent.len(), 1, "no second buy at 90: {:?}", h.sent);
}
