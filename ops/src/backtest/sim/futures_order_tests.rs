//! When the backtest delivers futures events, against bars and fills: the
//! order live gives them (see the module doc of `sim`).

use std::sync::{Arc, Mutex};

use keel_core::fill::Fill;
use keel_core::futures::{FundingRateType, FundingSettlement, FuturesEvent};
use keel_core::market::Bar;
use keel_core::order::Side;
use keel_core::strategy::{Strategy, StrategyCtx};
use keel_core::{Decimal, StrategyId, Symbol};

use super::test_bars::btc_venue;
use super::{Backtest, StrategySlot, Timeline};

const H: i64 = 3_600_000;

/// Writes what it sees; buys on a settlement of rate 1.
struct Recorder(Arc<Mutex<Vec<String>>>);

impl Recorder {
    fn log(&self, line: String) {
        self.0.lock().unwrap().push(line);
    }
}

impl Strategy for Recorder {
    fn kind(&self) -> &'static str {
        "recorder"
    }
    fn symbols(&self) -> Vec<Symbol> {
        vec!["BTCUSDT".into()]
    }
    fn on_bar(&mut self, bar: &Bar, _ctx: &mut StrategyCtx<'_>) {
        self.log(format!("bar {}h close", bar.open_time / H));
    }
    fn on_fill(&mut self, fill: &Fill, _ctx: &mut StrategyCtx<'_>) {
        self.log(format!("fill at {}h", fill.ts_ms / H));
    }
    fn on_futures(&mut self, event: &FuturesEvent, ctx: &mut StrategyCtx<'_>) {
        self.log(format!("{} {}ms", event.symbol(), event.ts_ms()));
        if let FuturesEvent::Funding(f) = event {
            if f.rate == Decimal::ONE {
                ctx.market(&f.symbol, Side::Buy, Decimal::ONE);
            }
        }
    }
}

fn bar(hour: i64) -> Bar {
    let p = Decimal::from(100);
    Bar {
        symbol: "BTCUSDT".into(),
        open_time: hour * H,
        close_time: hour * H + H - 1,
        open: p,
        high: p,
        low: p,
        close: p,
        volume: Decimal::ONE,
    }
}

fn settled(symbol: &str, ts: i64, rate: i64) -> FuturesEvent {
    FuturesEvent::Funding(FundingSettlement {
        symbol: symbol.into(),
        rate: Decimal::from(rate),
        funding_time: ts,
        mark_price: None,
        rate_type: FundingRateType::Regular,
    })
}

#[test]
fn futures_events_arrive_when_they_happen_between_opens_and_closes() {
    let log = Arc::new(Mutex::new(Vec::new()));
    // Bars at 1h and 2h, then a gap until 5h.
    let timeline = Timeline::new(vec![(Symbol::new("BTCUSDT"), vec![bar(1), bar(2), bar(5)])]);
    let events = vec![
        settled("BTCUSDT", 2 * H, 0),     // the second bar's open: after its open, before its close
        settled("ETHUSDT", 2 * H + 1, 0), // no bars: nobody gets it
        settled("BTCUSDT", 3 * H, 1),     // in the gap: before the next open, where its order fills
        settled("BTCUSDT", 6 * H - 1, 0), // the last close time: before that close
        settled("BTCUSDT", 6 * H, 0),     // after the last close: never
    ];
    let config = btc_venue();
    let slot = StrategySlot { id: StrategyId::new("r"), strategy: Box::new(Recorder(log.clone())), exits: None };
    let outcome = Backtest::new(config, timeline.symbols(), vec![slot]).with_futures(Arc::from(events)).run(
        &timeline,
        &[],
        |_| {},
    );
    let log = log.lock().unwrap().clone();
    let want = [
        "bar 1h close".to_string(),
        format!("BTCUSDT {}ms", 2 * H),
        "bar 2h close".into(),
        format!("BTCUSDT {}ms", 3 * H),
        "fill at 5h".into(),
        format!("BTCUSDT {}ms", 6 * H - 1),
        "bar 5h close".into(),
    ];
    assert_eq!(log, want);
    assert_eq!(outcome.futures_delivered, 3);
    assert_eq!(outcome.orders.len(), 1);
    assert_eq!(outcome.orders[0].decided_ms, 3 * H, "decided when the event happened");
}
