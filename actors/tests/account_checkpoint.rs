//! The account checkpoint on a real sled store: brought forward over the
//! fills recorded after it, the last one of each day kept, and a period's PnL
//! computed from the checkpoint before the period plus the fills after it —
//! the same numbers as a replay of every fill.

use actors::reconcile::{checkpoint_now, period_pnl};
use keel_core::account::{AccountCheckpoint, Assets};
use keel_core::fill::Fill;
use keel_core::instrument::Instrument;
use keel_core::order::Side;
use keel_core::store::Store;
use keel_core::{Decimal, Symbol};
use keel_store::SledStore;

const DAY: i64 = 86_400_000;

fn fill(id: u64, side: Side, price: i64, qty: i64, ts_ms: i64) -> Fill {
    Fill {
        trade_id: id.into(),
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
    Assets::of(&[Instrument::with_steps(
        Symbol::new("BTCUSDT"),
        "BTC".into(),
        "USDT".into(),
        Decimal::new(1, 2),
        Decimal::new(1, 3),
    )])
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

#[test]
fn checkpoints_move_final_history_to_the_archive_and_the_numbers_stay() {
    let dir = tempfile::tempdir().unwrap();
    let assets = assets();
    let batch = keel_core::store::ARCHIVE_BATCH as u64;
    {
        let store = SledStore::open(dir.path()).unwrap();
        // Day 0: a batch of round trips, then a checkpoint (which archives
        // them: fills without a known order are final). Day 1: more.
        for id in 1..=batch + 10 {
            let side = if id % 2 == 1 { Side::Buy } else { Side::Sell };
            store.record_fill(&fill(id, side, 100 + (id % 7) as i64, 1, id as i64), None).unwrap();
        }
        checkpoint_now(&store, &assets, DAY - 10).unwrap();
        assert_eq!(store.archive_mark().fill_cut, batch + 10, "the checkpointed fills left the live store");
        for id in batch + 11..=batch + 20 {
            let side = if id % 2 == 1 { Side::Buy } else { Side::Sell };
            store.record_fill(&fill(id, side, 120, 1, DAY + id as i64), None).unwrap();
        }
        let small = checkpoint_now(&store, &assets, DAY + 5_000).unwrap();
        assert_eq!(small.replayed, 10);
        assert_eq!(store.archive_mark().fill_cut, batch + 10, "a small remainder stays live until a batch gathers");
    }
    let store = SledStore::open(dir.path()).unwrap();
    let all = store.fills_after(0).unwrap();
    assert_eq!(all.len() as u64, batch + 20, "every fill still reads back, archived or live");
    assert!(all.windows(2).all(|w| w[0].0 + 1 == w[1].0), "in sequence order");
    // The newest fills span the live store and more than one archive chunk.
    let recent: Vec<u64> = store.recent_fills(300).unwrap().iter().filter_map(|f| f.trade_id.as_u64()).collect();
    assert_eq!(recent, (batch + 20 - 299..=batch + 20).collect::<Vec<_>>());
    let mut replay = AccountCheckpoint::default();
    replay.advance(&all, |f| assets.of_fill(f));
    assert_eq!(store.checkpoint().unwrap().unwrap().account, replay.account, "checkpoint == replay");
    // A period reaching back before the archive cut reads the archive.
    let day0 = period_pnl(&store, &assets, 0).unwrap();
    assert_eq!(day0.fills as u64, batch + 20);
    let re_delivered = fill(3, Side::Buy, 100 + 3, 1, 3);
    assert!(!store.record_fill(&re_delivered, None).unwrap(), "an archived trade is not recorded twice");
}
