//! The account checkpoint on a real sled store: brought forward over the
//! fills recorded after it, the last one of each day kept, and a period's PnL
//! computed from the checkpoint before the period plus the fills after it —
//! the same numbers as a replay of every fill.

use actors::reconcile::{checkpoint_now, period_pnl, Assets};
use keel_core::account::AccountCheckpoint;
use keel_core::fill::Fill;
use keel_core::instrument::Instrument;
use keel_core::order::Side;
use keel_core::store::Store;
use keel_core::{Decimal, Symbol};
use keel_store::SledStore;

const DAY: i64 = 86_400_000;

fn fill(id: u64, side: Side, price: i64, qty: i64, ts_ms: i64) -> Fill {
    Fill {
        trade_id: id,
        client_order_id: format!("c{id}"),
        strategy_id: "s".into(),
        symbol: "BTCUSDT".into(),
        side,
        price: Decimal::from(price),
        qty: Decimal::from(qty),
        fee: Decimal::ONE,
        fee_asset: "USDT".into(),
        is_maker: false,
        ts_ms,
        tag: None,
    }
}

fn assets() -> Assets {
    let step = Decimal::new(1, 3);
    Assets::of(&[Instrument {
        symbol: Symbol::new("BTCUSDT"),
        base_asset: "BTC".into(),
        quote_asset: "USDT".into(),
        tick_size: Decimal::new(1, 2),
        min_price: Decimal::ZERO,
        max_price: Decimal::ZERO,
        step_size: step,
        min_qty: step,
        max_qty: Decimal::ZERO,
        market_step_size: step,
        min_notional: Decimal::ZERO,
        max_notional: Decimal::ZERO,
        max_num_orders: 200,
        status: keel_core::instrument::SymbolStatus::Trading,
    }])
}

#[test]
fn period_pnl_from_the_checkpoint_before_the_period_equals_a_full_replay() {
    let dir = tempfile::tempdir().unwrap();
    let store = SledStore::open(dir.path()).unwrap();
    let assets = assets();
    // Day 0: buy 2 @ 100. Checkpoint late on day 0. Day 1: sell 1 @ 110, then
    // a checkpoint on day 1 (day 0's last one is kept), then buy 1 @ 90.
    store.record_fill(&fill(1, Side::Buy, 100, 2, 1_000), None).unwrap();
    checkpoint_now(&store, &assets, DAY - 10).unwrap();
    store.record_fill(&fill(2, Side::Sell, 110, 1, DAY + 1_000), None).unwrap();
    let brought = checkpoint_now(&store, &assets, DAY + 2_000).unwrap();
    assert_eq!((brought.replayed, brought.current.fill_seq), (1, 2));
    store.record_fill(&fill(3, Side::Buy, 90, 1, DAY + 3_000), None).unwrap();

    let days = AccountCheckpoint::history(&store).unwrap();
    assert_eq!(days.iter().map(|c| (c.fill_seq, c.ts_ms)).collect::<Vec<_>>(), [(1, DAY - 10)]);

    let day1 = period_pnl(&store, &assets, DAY).unwrap();
    assert_eq!((day1.realized, day1.fees, day1.fills), (Decimal::from(10), Decimal::from(2), 2));
    let all = period_pnl(&store, &assets, 0).unwrap();
    assert_eq!((all.realized, all.fees, all.fills), (Decimal::from(10), Decimal::from(3), 3));
    let late = period_pnl(&store, &assets, DAY + 2_500).unwrap();
    assert_eq!((late.realized, late.fees, late.fills), (Decimal::ZERO, Decimal::ONE, 1));

    // Brought forward again, the checkpoint equals a replay of every fill.
    let now = checkpoint_now(&store, &assets, DAY + 4_000).unwrap().current;
    let mut replay = AccountCheckpoint::default();
    replay.advance(&store.fills_after(0).unwrap(), |f| assets.of_fill(f));
    assert_eq!(now.account, replay.account);
    assert_eq!(now.account.position("BTCUSDT").map(|p| p.qty), Some(Decimal::from(2)));
}
