//! A store that lost data is refused, and stays refused until an operator
//! accepts it (issue 11, finding 4): sled files whose snapshot is gone, a
//! directory swapped for another store's, one truncated to an older copy.

use std::path::Path;

use keel_core::fill::Fill;
use keel_core::order::{Order, OrderIntent, OrderStatus, Side};
use keel_core::store::Store;
use keel_core::trading::EmergencyStop;
use keel_store::SledStore;
use rust_decimal::Decimal;

fn order(i: u64) -> Order {
    let intent = OrderIntent::market("s".into(), "BTCUSDT".into(), Side::Buy, Decimal::ONE);
    let mut o = Order::from_intent(&intent, format!("k{i}"), i as i64);
    o.status = OrderStatus::Filled;
    o
}

fn fill(i: u64) -> Fill {
    Fill {
        trade_id: i.into(),
        client_order_id: format!("k{i}"),
        strategy_id: "s".into(),
        symbol: "BTCUSDT".into(),
        side: Side::Buy,
        price: Decimal::new(100, 0),
        qty: Decimal::ONE,
        fee: Decimal::ZERO,
        fee_asset: "USDT".into(),
        is_maker: false,
        ts_ms: i as i64,
        tag: None,
    }
}

/// A store in `dir` with `n` orders and their fills, closed cleanly.
fn populate(dir: &Path, from: u64, n: u64) {
    let store = SledStore::open(dir).unwrap();
    assert_eq!(store.integrity(), None, "a fresh store is sound");
    for i in from..from + n {
        let o = order(i);
        store.put_order(&o, true).unwrap();
        store.record_fill(&fill(i), Some(&o)).unwrap();
    }
    store.flush().unwrap();
}

/// Deletes sled's snapshot and log files, keeping its directory and `conf`:
/// what a lost snapshot leaves behind.
fn lose_snapshot(dir: &Path) {
    let sled_dir = dir.join("keel.sled");
    for e in std::fs::read_dir(&sled_dir).unwrap() {
        let e = e.unwrap();
        let name = e.file_name().to_string_lossy().into_owned();
        if name.starts_with("snap.") || name == "db" {
            std::fs::remove_file(e.path()).unwrap();
        }
    }
}

#[test]
fn a_store_that_lost_its_snapshot_is_refused_and_stays_refused_until_accepted() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    populate(&data, 1, 5);
    lose_snapshot(&data);
    {
        let store = SledStore::open(&data).unwrap();
        assert_eq!(store.order_count().unwrap(), 0, "sled opens what is left: nothing");
        let problem = store.integrity().expect("refused");
        assert!(problem.contains("lost snapshot"), "{problem}");
        // What the halted engine then records (reconciliation importing the
        // venue's trades) cannot make it look whole again.
        populate_more(&store, 100, 10);
        assert!(store.integrity().is_some());
    }
    let store = SledStore::open(&data).unwrap();
    assert!(store.integrity().expect("still refused").contains("not accepted since"));

    // Only a deliberate accept clears it, and it sets the emergency stop.
    let was = store.accept_integrity("restored from nothing; venue is the truth", "operator:test").unwrap();
    assert!(was.is_some_and(|w| w.contains("lost snapshot")));
    assert_eq!(store.integrity(), None);
    assert!(store.emergency_stop().unwrap().active, "accepting leaves the engine stopped for review");
    drop(store);
    let store = SledStore::open(&data).unwrap();
    assert_eq!(store.integrity(), None, "accepted stores open sound");
    let record = keel_store::integrity::read(&data).unwrap().unwrap();
    assert!(record.accepted.is_some_and(|a| a.reason.contains("venue is the truth")));
}

fn populate_more(store: &SledStore, from: u64, n: u64) {
    for i in from..from + n {
        let o = order(i);
        store.put_order(&o, true).unwrap();
        store.record_fill(&fill(i), Some(&o)).unwrap();
    }
    store.flush().unwrap();
}

#[test]
fn a_store_behind_its_record_or_swapped_for_another_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    populate(&data, 1, 3);
    // An older copy of the same store (a backup restored over it).
    let old = dir.path().join("old");
    keel_store::copy_dir(&data.join("keel.sled"), &old).unwrap();
    populate(&data, 10, 3);
    std::fs::remove_dir_all(data.join("keel.sled")).unwrap();
    keel_store::copy_dir(&old, &data.join("keel.sled")).unwrap();
    let store = SledStore::open(&data).unwrap();
    let problem = store.integrity().expect("behind");
    assert!(problem.contains("behind") && problem.contains("3 orders, the record 6"), "{problem}");
    drop(store);

    // Another store's directory under this record.
    let other = dir.path().join("other");
    populate(&other, 1, 9);
    let data2 = dir.path().join("data2");
    populate(&data2, 1, 2);
    std::fs::remove_dir_all(data2.join("keel.sled")).unwrap();
    keel_store::copy_dir(&other.join("keel.sled"), &data2.join("keel.sled")).unwrap();
    let problem = SledStore::open(&data2).unwrap().integrity().expect("swapped");
    assert!(problem.contains("swapped"), "{problem}");
}

#[test]
fn the_record_follows_the_store_and_the_emergency_stop_at_once() {
    let dir = tempfile::tempdir().unwrap();
    populate(dir.path(), 1, 4);
    let record = keel_store::integrity::read(dir.path()).unwrap().unwrap();
    assert_eq!((record.orders_total, record.fill_seq, record.emergency_stop), (4, 4, false));
    let store = SledStore::open(dir.path()).unwrap();
    store.put_emergency_stop(&EmergencyStop { active: true, ..Default::default() }).unwrap();
    assert!(keel_store::integrity::read(dir.path()).unwrap().unwrap().emergency_stop);
    drop(store);
    // A record from before records: sled with data and no record is an upgrade.
    std::fs::remove_file(keel_store::integrity::path(dir.path())).unwrap();
    let store = SledStore::open(dir.path()).unwrap();
    assert_eq!(store.integrity(), None);
    assert!(keel_store::integrity::read(dir.path()).unwrap().is_some(), "written from the contents");
}

/// Flushes from several threads at once (the engine's store writer, its
/// shutdown and the binary's last flush do this) all succeed and leave a
/// record the next open accepts. The record was written through one fixed
/// temporary file: a second writer truncated it under the first, and the
/// loser's rename found it gone ("No such file or directory"), which made
/// `keel run` exit 1 after a clean stop.
#[test]
fn concurrent_flushes_all_succeed_and_leave_a_sound_record() {
    let dir = tempfile::tempdir().unwrap();
    let store = SledStore::open(dir.path()).unwrap();
    std::thread::scope(|s| {
        for t in 0..4u64 {
            let store = &store;
            s.spawn(move || {
                for i in 0..50 {
                    let o = order(t * 1000 + i);
                    store.put_order(&o, true).unwrap();
                    store.flush().unwrap_or_else(|e| panic!("flush {i} on thread {t}: {e}"));
                }
            });
        }
    });
    drop(store);
    let record = keel_store::integrity::read(dir.path()).unwrap().expect("a record");
    assert!(serde_json::to_string(&record).is_ok());
    assert_eq!(SledStore::open(dir.path()).unwrap().integrity(), None, "the record left is whole and current");
}
