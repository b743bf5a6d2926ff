//! A checkpoint written before Keel kept per-strategy ledgers (each
//! strategy's net quantity a bare decimal) still loads from a real store, and
//! `bring_forward` rebuilds the ledgers from the journal — or, when the
//! journal no longer holds every fill the checkpoint was built from, says
//! from when its PnL counts instead of showing a wrong number.

use keel_core::account::{Account, AccountCheckpoint, StrategyLedgers};
use keel_core::fill::Fill;
use keel_core::order::Side;
use keel_core::store::Store;
use keel_store::SledStore;
use rust_decimal::Decimal;

fn d(s: &str) -> Decimal {
    s.parse().unwrap()
}

fn fill(id: u64, strategy: &str, side: Side, price: &str, qty: &str, fee: &str) -> Fill {
    Fill {
        trade_id: id.into(),
        client_order_id: format!("k{id}"),
        strategy_id: strategy.into(),
        symbol: "BTCUSDT".into(),
        side,
        price: d(price),
        qty: d(qty),
        fee: d(fee),
        fee_asset: "USDT".into(),
        is_maker: false,
        ts_ms: id as i64 * 1000,
        tag: None,
    }
}

fn assets(_: &Fill) -> (String, String) {
    ("BTC".into(), "USDT".into())
}

fn replay<'a>(fills: impl IntoIterator<Item = &'a Fill>) -> Account {
    let mut a = Account::new();
    for f in fills {
        a.apply_fill(f, "BTC", "USDT");
    }
    a
}

/// Writes `account` as the old form stored it, as the store's checkpoint.
fn put_old_checkpoint(store: &SledStore, account: &Account, fill_seq: u64, ts_ms: i64) {
    let mut json = serde_json::to_value(account).unwrap();
    let strategies = json["strategies"].as_object_mut().unwrap();
    for book in strategies.values_mut() {
        for entry in book.as_object_mut().unwrap().values_mut() {
            *entry = entry["qty"].clone();
        }
    }
    json.as_object_mut().unwrap().remove("strategy_ledgers");
    let checkpoint = serde_json::json!({ "fill_seq": fill_seq, "ts_ms": ts_ms, "account": json });
    store.put_meta_json("account_checkpoint", &checkpoint, true).unwrap();
}

fn ledger(a: &Account, strategy: &str) -> (Decimal, Decimal, Decimal) {
    let p = &a.strategy_ledger(strategy)[0];
    (p.qty, p.realized_pnl, p.fees)
}

fn history() -> Vec<Fill> {
    vec![
        fill(1, "grid", Side::Buy, "100", "2", "0.2"),
        fill(2, "sma", Side::Buy, "200", "1", "0.2"),
        fill(3, "grid", Side::Sell, "120", "1", "0.12"),
        fill(4, "sma", Side::Sell, "150", "1", "0.15"),
    ]
}

#[test]
fn an_old_checkpoint_is_rebuilt_from_the_journal() {
    let dir = tempfile::tempdir().unwrap();
    let store = SledStore::open(dir.path()).unwrap();
    let fills = history();
    for f in &fills[..3] {
        assert!(store.record_fill(f, None).unwrap());
    }
    put_old_checkpoint(&store, &replay(&fills[..3]), 3, 3_500);
    let loaded = store.checkpoint().unwrap().unwrap();
    assert_eq!(loaded.account.strategy_ledgers(), StrategyLedgers::NotRebuilt);
    assert_eq!(ledger(&loaded.account, "grid"), (d("1"), d("0"), d("0")), "old form: the quantity only");
    assert!(store.record_fill(&fills[3], None).unwrap());

    let brought = AccountCheckpoint::bring_forward(&store, assets, 9_000).unwrap();
    assert_eq!(brought.replayed, 1, "only the fill after the checkpoint is new");
    assert_eq!(brought.current.fill_seq, 4);
    let account = &brought.current.account;
    assert_eq!(account.strategy_ledgers(), StrategyLedgers::Complete);
    assert_eq!(ledger(account, "grid"), (d("1"), d("20"), d("0.32")));
    assert_eq!(ledger(account, "sma"), (d("0"), d("-50"), d("0.35")));
    assert_eq!(account, &replay(&fills), "the rebuilt account is what a replay of every fill makes");

    // Saved in the new form, it loads as it was.
    brought.current.save(brought.previous.as_ref(), &store).unwrap();
    assert_eq!(store.checkpoint().unwrap().unwrap(), brought.current);
}

#[test]
fn an_old_checkpoint_whose_history_is_gone_says_since_when_its_pnl_counts() {
    let dir = tempfile::tempdir().unwrap();
    let store = SledStore::open(dir.path()).unwrap();
    let fills = history();
    // The checkpoint was built from fills 1–3, but the journal holds only
    // fills 2 and 3 (fill 1's history was lost with an old store).
    for f in &fills[1..3] {
        assert!(store.record_fill(f, None).unwrap());
    }
    put_old_checkpoint(&store, &replay(&fills[..3]), 2, 3_500);
    assert!(store.record_fill(&fills[3], None).unwrap());

    let brought = AccountCheckpoint::bring_forward(&store, assets, 9_000).unwrap();
    let account = &brought.current.account;
    assert_eq!(account.strategy_ledgers(), StrategyLedgers::Since { ts_ms: 3_500 });
    // Quantities stay exact; PnL counts from the checkpoint on: grid did
    // nothing since; sma sold its 1 at 150, against the only cost known, the
    // symbol's average (2 at 100 and 1 at 200: 400/3).
    assert_eq!(ledger(account, "grid"), (d("1"), d("0"), d("0")));
    assert_eq!(ledger(account, "sma"), (d("0"), d("150") - d("400") / d("3"), d("0.15")));
    assert_eq!(account.strategy_positions(), replay(&fills).strategy_positions());
}
