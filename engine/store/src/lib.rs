//! Keel's durable store: the sled implementation of [`keel_core::store::Store`].
//!
//! sled buffers writes; anything that must survive a crash (an order before it is
//! sent, a fill, the emergency stop, the trading state) is flushed before the
//! call returns. Decimals are stored as strings (serde JSON of `Decimal`).
//!
//! Depends on `keel-core` only: no venue, no actor runtime.

use std::path::Path;

use serde::de::DeserializeOwned;
use serde::Serialize;

use keel_core::account::AccountCheckpoint;
use keel_core::balance::Balances;
use keel_core::error::StoreError;
use keel_core::fill::Fill;
use keel_core::order::Order;
use keel_core::position::Position;
use keel_core::store::{Store, StoreResult};
use keel_core::trading::{EmergencyStop, TradingStateRecord};

/// The sled implementation of [`Store`].
pub struct SledStore {
    db: sled::Db,
    orders: sled::Tree,
    open: sled::Tree,
    fills: sled::Tree,
    /// Store sequence (8 bytes, big endian) → fill key, in recording order.
    fill_seq: sled::Tree,
    positions: sled::Tree,
    meta: sled::Tree,
}

/// The schema this build writes (and the newest it reads). Version 1 is the
/// layout Keel wrote first (stores from before the version was recorded are
/// version 1); version 2 gives every fill a store sequence. An older store is
/// migrated when opened, after a backup copy of it is made.
pub const SCHEMA_VERSION: u32 = 2;

/// The last store sequence given to a fill (8 bytes, big endian).
const META_FILL_SEQ: &str = "fill_seq";
const META_CHECKPOINT: &str = "account_checkpoint";
/// Orders ever created (8 bytes, big endian).
const META_ORDERS_TOTAL: &str = "orders_total";

const META_SCHEMA: &str = "schema_version";
const META_BALANCES: &str = "balances";
const META_TRADING_STATE: &str = "trading_state";
const META_EMERGENCY_STOP: &str = "emergency_stop";

/// sled's page cache. Its default (1 GiB) would let the cache grow with the
/// history; the engine reads the live state and recent fills, so a small
/// cache serves it.
pub const CACHE_BYTES: u64 = 8 * 1024 * 1024;

/// How long [`SledStore::open`] waits out a lock before reporting it: longer
/// than sled's flush interval (500 ms), after which a closed store lets go.
pub const LOCK_WAIT: std::time::Duration = std::time::Duration::from_millis(1500);

impl SledStore {
    /// Opens (or creates) the store in `dir`. A store held by a running engine
    /// gives [`StoreError::Locked`].
    ///
    /// A store closed moments ago in this process may still be locked: sled
    /// releases its file lock only when its background flusher lets go of the
    /// database, up to one flush interval after the last handle is dropped. So
    /// a lock is retried for [`LOCK_WAIT`] before it is reported; an engine that
    /// really runs on the store holds it far longer.
    pub fn open(dir: &Path) -> StoreResult<Self> {
        std::fs::create_dir_all(dir).map_err(|e| backend(sled::Error::Io(e)))?;
        let deadline = std::time::Instant::now() + LOCK_WAIT;
        let db = loop {
            match sled::Config::new().path(dir.join("keel.sled")).cache_capacity(CACHE_BYTES).open() {
                Ok(db) => break db,
                Err(sled::Error::Io(ref io)) if is_lock_error(io) => {
                    if std::time::Instant::now() >= deadline {
                        return Err(StoreError::Locked { path: dir.display().to_string() });
                    }
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
                Err(other) => return Err(backend(other)),
            }
        };
        let store = Self::with_trees(db)?;
        store.check_schema(dir)?;
        if store.meta.get(META_ORDERS_TOTAL).map_err(backend)?.is_none() {
            // Counted once, for a store from before the counter.
            let n = store.orders.len() as u64;
            store.meta.insert(META_ORDERS_TOTAL, &n.to_be_bytes()).map_err(backend)?;
        }
        Ok(store)
    }

    /// The store over an open database: its trees, opened (or created).
    fn with_trees(db: sled::Db) -> StoreResult<Self> {
        Ok(Self {
            orders: db.open_tree("orders").map_err(backend)?,
            open: db.open_tree("open_orders").map_err(backend)?,
            fills: db.open_tree("fills").map_err(backend)?,
            fill_seq: db.open_tree("fill_seq").map_err(backend)?,
            positions: db.open_tree("positions").map_err(backend)?,
            meta: db.open_tree("meta").map_err(backend)?,
            db,
        })
    }

    /// Refuses a store from a newer Keel; stamps the version on a new store
    /// and on one written before versions were recorded (the same layout).
    fn check_schema(&self, dir: &Path) -> StoreResult<()> {
        let found = Self::get::<u32>(&self.meta, "meta", META_SCHEMA)?;
        match found {
            Some(v) if v == SCHEMA_VERSION => Ok(()),
            Some(found) if found > SCHEMA_VERSION => {
                Err(StoreError::NewerSchema { path: dir.display().to_string(), found, supported: SCHEMA_VERSION })
            }
            // A new store: nothing to migrate.
            None if self.fills.is_empty() && self.orders.is_empty() => {
                Self::put(&self.meta, META_SCHEMA, &SCHEMA_VERSION).and_then(|()| self.flush_now())
            }
            old => self.migrate(dir, old.unwrap_or(1)),
        }
    }

    /// Brings a version-1 store to version 2: a backup copy of the whole
    /// store first, then every fill gets a store sequence (in venue-time
    /// order, the best record of arrival a version-1 store has).
    fn migrate(&self, dir: &Path, from: u32) -> StoreResult<()> {
        self.flush_now()?;
        let backup = dir.join(format!("keel.sled.v{from}-backup"));
        if !backup.exists() {
            copy_dir(&dir.join("keel.sled"), &backup).map_err(|e| backend(sled::Error::Io(e)))?;
        }
        let mut fills: Vec<Fill> = Self::all(&self.fills, "fills")?;
        fills.sort_by(|a, b| a.ts_ms.cmp(&b.ts_ms).then_with(|| a.key().cmp(&b.key())));
        self.fill_seq.clear().map_err(backend)?;
        for (i, f) in fills.iter().enumerate() {
            self.fill_seq.insert((i as u64 + 1).to_be_bytes(), f.key().as_bytes()).map_err(backend)?;
        }
        self.meta.insert(META_FILL_SEQ, &(fills.len() as u64).to_be_bytes()).map_err(backend)?;
        Self::put(&self.meta, META_SCHEMA, &SCHEMA_VERSION)?;
        self.flush_now()?;
        tracing::warn!(
            store = %dir.display(),
            from,
            to = SCHEMA_VERSION,
            fills = fills.len(),
            backup = %backup.display(),
            "store migrated to the current schema (a copy of the old one was kept)"
        );
        Ok(())
    }

    /// Writes history straight into the store: each final order with its
    /// fills, fills sequenced in the order given, counters kept, one flush
    /// at the end. For generating large stores to measure against; the
    /// engine records through [`Store::record_fill`].
    pub fn import_history(&self, history: &[(Order, Vec<Fill>)]) -> StoreResult<()> {
        let mut seq = self.meta.get(META_FILL_SEQ).map_err(backend)?.map(|b| seq_of(&b)).unwrap_or(0);
        let mut orders_total = self.order_count()? as u64;
        for chunk in history.chunks(10_000) {
            let (mut orders, mut fills, mut seqs) =
                (sled::Batch::default(), sled::Batch::default(), sled::Batch::default());
            for (order, order_fills) in chunk {
                let bytes = serde_json::to_vec(order).map_err(|e| StoreError::Encode(e.to_string()))?;
                orders.insert(order.client_order_id.as_bytes(), bytes);
                orders_total += 1;
                for fill in order_fills {
                    let bytes = serde_json::to_vec(fill).map_err(|e| StoreError::Encode(e.to_string()))?;
                    let key = fill.key();
                    fills.insert(key.as_bytes(), bytes);
                    seq += 1;
                    seqs.insert(&seq.to_be_bytes(), key.as_bytes());
                }
            }
            self.orders.apply_batch(orders).map_err(backend)?;
            self.fills.apply_batch(fills).map_err(backend)?;
            self.fill_seq.apply_batch(seqs).map_err(backend)?;
        }
        self.meta.insert(META_FILL_SEQ, &seq.to_be_bytes()).map_err(backend)?;
        self.meta.insert(META_ORDERS_TOTAL, &orders_total.to_be_bytes()).map_err(backend)?;
        self.flush_now()
    }

    /// The schema version recorded in the store.
    pub fn schema_version(&self) -> StoreResult<Option<u32>> {
        Self::get(&self.meta, "meta", META_SCHEMA)
    }

    /// An in-memory store that is discarded on exit: used to come up HALTED
    /// (fail closed) when the real store cannot be read.
    pub fn temporary() -> StoreResult<Self> {
        Self::with_trees(sled::Config::new().temporary(true).open().map_err(backend)?)
    }

    fn put<T: Serialize>(tree: &sled::Tree, key: &str, value: &T) -> StoreResult<()> {
        let bytes = serde_json::to_vec(value).map_err(|e| StoreError::Encode(e.to_string()))?;
        tree.insert(key.as_bytes(), bytes).map_err(backend)?;
        Ok(())
    }

    fn get<T: DeserializeOwned>(tree: &sled::Tree, name: &'static str, key: &str) -> StoreResult<Option<T>> {
        match tree.get(key.as_bytes()).map_err(backend)? {
            None => Ok(None),
            Some(bytes) => decode(name, key.as_bytes(), &bytes).map(Some),
        }
    }

    fn all<T: DeserializeOwned>(tree: &sled::Tree, name: &'static str) -> StoreResult<Vec<T>> {
        tree.iter()
            .map(|item| {
                let (k, v) = item.map_err(backend)?;
                decode(name, &k, &v)
            })
            .collect()
    }

    fn flush_now(&self) -> StoreResult<()> {
        self.db.flush().map_err(backend)?;
        Ok(())
    }
}

/// Copies a directory tree (the store's backup before a migration).
fn copy_dir(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_dir(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), target)?;
        }
    }
    Ok(())
}

fn seq_of(bytes: &[u8]) -> u64 {
    let mut b = [0u8; 8];
    let n = bytes.len().min(8);
    b[8 - n..].copy_from_slice(&bytes[bytes.len() - n..]);
    u64::from_be_bytes(b)
}

/// A sled failure as the core's [`StoreError::Backend`] (the core knows no sled).
fn backend(e: sled::Error) -> StoreError {
    StoreError::Backend(Box::new(e))
}

fn is_lock_error(io: &std::io::Error) -> bool {
    io.kind() == std::io::ErrorKind::WouldBlock || io.to_string().to_lowercase().contains("lock")
}

fn decode<T: DeserializeOwned>(tree: &'static str, key: &[u8], bytes: &[u8]) -> StoreResult<T> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::Corrupt {
        tree,
        key: String::from_utf8_lossy(key).into_owned(),
        reason: e.to_string(),
    })
}

impl Store for SledStore {
    fn put_order(&self, order: &Order, durable: bool) -> StoreResult<()> {
        let bytes = serde_json::to_vec(order).map_err(|e| StoreError::Encode(e.to_string()))?;
        let previous = self.orders.insert(order.client_order_id.as_bytes(), bytes).map_err(backend)?;
        if previous.is_none() {
            self.meta
                .fetch_and_update(META_ORDERS_TOTAL, |old| {
                    Some((old.map(seq_of).unwrap_or(0) + 1).to_be_bytes().to_vec())
                })
                .map_err(backend)?;
        }
        if order.status.is_terminal() {
            self.open.remove(order.client_order_id.as_bytes()).map_err(backend)?;
        } else {
            self.open.insert(order.client_order_id.as_bytes(), &[]).map_err(backend)?;
        }
        if durable {
            self.flush_now()?;
        }
        Ok(())
    }

    fn order(&self, client_order_id: &str) -> StoreResult<Option<Order>> {
        Self::get(&self.orders, "orders", client_order_id)
    }

    fn orders(&self) -> StoreResult<Vec<Order>> {
        Self::all(&self.orders, "orders")
    }

    fn open_orders(&self) -> StoreResult<Vec<Order>> {
        let mut out = Vec::new();
        for key in self.open.iter().keys() {
            let key = key.map_err(backend)?;
            let id = String::from_utf8_lossy(&key).into_owned();
            if let Some(order) = self.order(&id)? {
                out.push(order);
            }
        }
        Ok(out)
    }

    fn order_count(&self) -> StoreResult<usize> {
        // A counter kept with every new order: `Tree::len` scans the tree.
        Ok(self.meta.get(META_ORDERS_TOTAL).map_err(backend)?.map(|b| seq_of(&b)).unwrap_or(0) as usize)
    }

    fn record_fill(&self, fill: &Fill, order: Option<&Order>) -> StoreResult<bool> {
        use sled::transaction::{ConflictableTransactionError, TransactionError};
        use sled::Transactional;
        let fill_bytes = serde_json::to_vec(fill).map_err(|e| StoreError::Encode(e.to_string()))?;
        let order_bytes = match order {
            Some(o) => Some(serde_json::to_vec(o).map_err(|e| StoreError::Encode(e.to_string()))?),
            None => None,
        };
        let key = fill.key();
        let trees = (&self.fills, &self.orders, &self.open, &self.fill_seq, &self.meta);
        let result = trees.transaction(|(fills, orders, open, seqs, meta)| {
            if fills.get(key.as_bytes())?.is_some() {
                return Ok(false);
            }
            fills.insert(key.as_bytes(), fill_bytes.clone())?;
            let seq = meta.get(META_FILL_SEQ)?.map(|b| seq_of(&b)).unwrap_or(0) + 1;
            meta.insert(META_FILL_SEQ, &seq.to_be_bytes())?;
            seqs.insert(&seq.to_be_bytes(), key.as_bytes())?;
            if let (Some(o), Some(bytes)) = (order, &order_bytes) {
                orders.insert(o.client_order_id.as_bytes(), bytes.clone())?;
                if o.status.is_terminal() {
                    open.remove(o.client_order_id.as_bytes())?;
                }
            }
            Ok::<_, ConflictableTransactionError<()>>(true)
        });
        let inserted = match result {
            Ok(v) => v,
            Err(TransactionError::Storage(e)) => return Err(backend(e)),
            Err(TransactionError::Abort(())) => false,
        };
        if inserted {
            self.flush_now()?;
        }
        Ok(inserted)
    }

    fn has_fill(&self, symbol: &str, trade_id: u64) -> StoreResult<bool> {
        self.fills.contains_key(keel_core::fill::fill_key(symbol, trade_id).as_bytes()).map_err(backend)
    }

    fn fills(&self) -> StoreResult<Vec<Fill>> {
        Self::all(&self.fills, "fills")
    }

    fn fill_count(&self) -> StoreResult<usize> {
        Ok(self.fills.len())
    }

    fn fills_after(&self, seq: u64) -> StoreResult<Vec<(u64, Fill)>> {
        let start = seq.saturating_add(1).to_be_bytes();
        let mut out = Vec::new();
        for item in self.fill_seq.range(start..) {
            let (k, key) = item.map_err(backend)?;
            let bytes = self.fills.get(&key).map_err(backend)?.ok_or_else(|| StoreError::Corrupt {
                tree: "fill_seq",
                key: String::from_utf8_lossy(&key).into_owned(),
                reason: "the sequence names a fill the store does not have".into(),
            })?;
            out.push((seq_of(&k), decode("fills", &key, &bytes)?));
        }
        Ok(out)
    }

    fn recent_fills(&self, limit: usize) -> StoreResult<Vec<Fill>> {
        let mut out = Vec::with_capacity(limit.min(1024));
        for item in self.fill_seq.iter().rev().take(limit) {
            let (_, key) = item.map_err(backend)?;
            if let Some(bytes) = self.fills.get(&key).map_err(backend)? {
                out.push(decode("fills", &key, &bytes)?);
            }
        }
        out.reverse();
        Ok(out)
    }

    fn put_checkpoint(&self, checkpoint: &AccountCheckpoint) -> StoreResult<()> {
        Self::put(&self.meta, META_CHECKPOINT, checkpoint)?;
        self.flush_now()
    }

    fn checkpoint(&self) -> StoreResult<Option<AccountCheckpoint>> {
        Self::get(&self.meta, "meta", META_CHECKPOINT)
    }

    fn last_trade_id(&self, symbol: &str) -> StoreResult<Option<u64>> {
        let prefix = format!("{symbol}:");
        match self.fills.scan_prefix(prefix.as_bytes()).next_back() {
            None => Ok(None),
            Some(item) => {
                let (k, v) = item.map_err(backend)?;
                let fill: Fill = decode("fills", &k, &v)?;
                Ok(Some(fill.trade_id))
            }
        }
    }

    fn put_position(&self, position: &Position) -> StoreResult<()> {
        Self::put(&self.positions, &position.symbol, position)
    }

    fn positions(&self) -> StoreResult<Vec<Position>> {
        Self::all(&self.positions, "positions")
    }

    fn put_balances(&self, balances: &Balances) -> StoreResult<()> {
        Self::put(&self.meta, META_BALANCES, balances)
    }

    fn balances(&self) -> StoreResult<Option<Balances>> {
        Self::get(&self.meta, "meta", META_BALANCES)
    }

    fn put_trading_state(&self, record: &TradingStateRecord) -> StoreResult<()> {
        Self::put(&self.meta, META_TRADING_STATE, record)?;
        self.flush_now()
    }

    fn trading_state(&self) -> StoreResult<Option<TradingStateRecord>> {
        Self::get(&self.meta, "meta", META_TRADING_STATE)
    }

    fn put_emergency_stop(&self, stop: &EmergencyStop) -> StoreResult<()> {
        Self::put(&self.meta, META_EMERGENCY_STOP, stop)?;
        self.flush_now()
    }

    fn emergency_stop(&self) -> StoreResult<EmergencyStop> {
        Ok(Self::get(&self.meta, "meta", META_EMERGENCY_STOP)?.unwrap_or_default())
    }

    fn next_id(&self) -> StoreResult<u64> {
        self.db.generate_id().map_err(backend)
    }

    fn put_meta_json(&self, key: &str, value: &serde_json::Value, durable: bool) -> StoreResult<()> {
        Self::put(&self.meta, key, value)?;
        if durable {
            self.flush_now()?;
        }
        Ok(())
    }

    fn meta_json(&self, key: &str) -> StoreResult<Option<serde_json::Value>> {
        Self::get(&self.meta, "meta", key)
    }

    fn flush(&self) -> StoreResult<()> {
        self.flush_now()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use keel_core::order::{OrderEvent, OrderIntent, OrderStatus, Side};
    use rust_decimal::Decimal;

    fn fill(trade_id: u64) -> Fill {
        Fill {
            trade_id,
            client_order_id: "k1".into(),
            strategy_id: "s".into(),
            symbol: "BTCUSDT".into(),
            side: Side::Buy,
            price: Decimal::new(100, 0),
            qty: Decimal::ONE,
            fee: Decimal::ZERO,
            fee_asset: "USDT".into(),
            is_maker: false,
            ts_ms: 1,
            tag: None,
        }
    }

    #[test]
    fn orders_fills_and_flags_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = SledStore::open(dir.path()).unwrap();
            let intent = OrderIntent::market("s".into(), "BTCUSDT".into(), Side::Buy, Decimal::ONE);
            let mut order = Order::from_intent(&intent, "k1".into(), 1);
            store.put_order(&order, true).unwrap();
            assert_eq!(store.open_orders().unwrap().len(), 1);
            order.apply(OrderEvent::Submit, 2).unwrap();
            let ev = order.record_fill(Decimal::new(100, 0), Decimal::ONE, 3);
            order.apply(ev, 3).unwrap();
            assert!(store.record_fill(&fill(7), Some(&order)).unwrap());
            assert!(!store.record_fill(&fill(7), Some(&order)).unwrap(), "duplicate trade id is ignored");
            assert!(store.record_fill(&fill(12), None).unwrap());
            store
                .put_emergency_stop(&EmergencyStop { active: true, reason: Some("test".into()), ..Default::default() })
                .unwrap();
            let a = store.next_id().unwrap();
            let b = store.next_id().unwrap();
            assert!(b > a);
        }
        let store = SledStore::open(dir.path()).unwrap();
        assert_eq!(store.order("k1").unwrap().unwrap().status, OrderStatus::Filled);
        assert!(store.open_orders().unwrap().is_empty());
        assert_eq!(store.fill_count().unwrap(), 2);
        assert_eq!(store.last_trade_id("BTCUSDT").unwrap(), Some(12));
        assert_eq!(store.last_trade_id("ETHUSDT").unwrap(), None);
        assert!(store.emergency_stop().unwrap().active);
    }

    #[test]
    fn second_open_reports_lock() {
        let dir = tempfile::tempdir().unwrap();
        let _first = SledStore::open(dir.path()).unwrap();
        match SledStore::open(dir.path()) {
            Err(StoreError::Locked { .. }) => {}
            Err(other) => panic!("expected Locked, got {other}"),
            Ok(_) => panic!("a second open must fail while the first holds the lock"),
        }
    }

    #[test]
    fn the_schema_version_is_stamped_and_a_newer_one_refused() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = SledStore::open(dir.path()).unwrap();
            assert_eq!(store.schema_version().unwrap(), Some(SCHEMA_VERSION));
            // What a newer Keel would leave behind.
            store.put_meta_json(META_SCHEMA, &serde_json::json!(SCHEMA_VERSION + 1), true).unwrap();
        }
        match SledStore::open(dir.path()) {
            Err(StoreError::NewerSchema { found, supported, .. }) => {
                assert_eq!((found, supported), (SCHEMA_VERSION + 1, SCHEMA_VERSION));
            }
            Err(other) => panic!("expected NewerSchema, got {other}"),
            Ok(_) => panic!("a store from a newer Keel must be refused"),
        }
        let message = SledStore::open(dir.path()).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(message.contains("newer Keel") && !message.contains('\n'), "one line: {message}");
    }

    #[test]
    fn an_older_store_is_backed_up_then_migrated() {
        for old_version in [None, Some(1u32)] {
            let dir = tempfile::tempdir().unwrap();
            {
                let store = SledStore::open(dir.path()).unwrap();
                let intent = OrderIntent::market("s".into(), "BTCUSDT".into(), Side::Buy, Decimal::ONE);
                store.put_order(&Order::from_intent(&intent, "k1".into(), 1), true).unwrap();
                let mut late = fill(7);
                late.ts_ms = 5;
                store.record_fill(&late, None).unwrap();
                store.record_fill(&fill(9), None).unwrap();
                // As a version-1 Keel wrote it: no fill sequence (and, before
                // that, no version either).
                store.fill_seq.clear().unwrap();
                store.meta.remove(META_FILL_SEQ.as_bytes()).unwrap();
                match old_version {
                    Some(v) => SledStore::stamp(&store, v),
                    None => {
                        store.meta.remove(META_SCHEMA.as_bytes()).unwrap();
                    }
                }
                store.flush().unwrap();
            }
            let store = SledStore::open(dir.path()).unwrap();
            assert_eq!(store.schema_version().unwrap(), Some(SCHEMA_VERSION));
            assert!(dir.path().join("keel.sled.v1-backup").is_dir(), "a copy was kept before migrating");
            assert_eq!(store.order_count().unwrap(), 1, "its data is kept");
            // Sequences follow venue time; new fills continue after them.
            let seqs: Vec<(u64, u64)> = store.fills_after(0).unwrap().iter().map(|(s, f)| (*s, f.trade_id)).collect();
            assert_eq!(seqs, [(1, 9), (2, 7)]);
            store.record_fill(&fill(11), None).unwrap();
            assert_eq!(store.fills_after(2).unwrap().iter().map(|(s, _)| *s).collect::<Vec<_>>(), [3]);
            drop(store);
            // The backup is the old store, readable as it was.
            let old = sled::open(dir.path().join("keel.sled.v1-backup")).unwrap();
            assert_eq!(old.open_tree("fills").unwrap().len(), 2);
        }
    }

    impl SledStore {
        fn stamp(store: &SledStore, version: u32) {
            SledStore::put(&store.meta, META_SCHEMA, &version).unwrap();
        }
    }

    #[test]
    fn fills_get_a_sequence_and_recent_ones_come_back_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let store = SledStore::open(dir.path()).unwrap();
        for id in [5, 3, 8] {
            assert!(store.record_fill(&fill(id), None).unwrap());
        }
        assert!(!store.record_fill(&fill(3), None).unwrap(), "a duplicate takes no sequence");
        let after: Vec<(u64, u64)> = store.fills_after(1).unwrap().iter().map(|(s, f)| (*s, f.trade_id)).collect();
        assert_eq!(after, [(2, 3), (3, 8)]);
        let recent: Vec<u64> = store.recent_fills(2).unwrap().iter().map(|f| f.trade_id).collect();
        assert_eq!(recent, [3, 8]);
        let checkpoint = keel_core::account::AccountCheckpoint { fill_seq: 2, ts_ms: 9, ..Default::default() };
        store.put_checkpoint(&checkpoint).unwrap();
        drop(store);
        let store = SledStore::open(dir.path()).unwrap();
        assert_eq!(store.checkpoint().unwrap(), Some(checkpoint));
    }

    #[test]
    fn a_store_closed_in_this_process_reopens_at_once() {
        let dir = tempfile::tempdir().unwrap();
        for i in 0..10u64 {
            let store = SledStore::open(dir.path()).unwrap_or_else(|e| panic!("reopen {i}: {e}"));
            store.put_meta_json("k", &serde_json::json!(i), true).unwrap();
        }
        let store = SledStore::open(dir.path()).unwrap();
        assert_eq!(store.meta_json("k").unwrap(), Some(serde_json::json!(9)));
    }

    #[test]
    fn corrupt_record_is_reported_not_panicked() {
        let dir = tempfile::tempdir().unwrap();
        let store = SledStore::open(dir.path()).unwrap();
        store.orders.insert("bad", b"{not json".to_vec()).unwrap();
        match store.orders() {
            Err(StoreError::Corrupt { tree: "orders", key, .. }) => assert_eq!(key, "bad"),
            other => panic!("expected Corrupt, got {other:?}"),
        }
    }
}
