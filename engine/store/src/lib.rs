//! Keel's durable store: the sled implementation of [`keel_core::store::Store`].
//!
//! sled buffers writes; anything that must survive a crash (an order before it is
//! sent, a fill, the emergency stop, the trading state) is flushed before the
//! call returns. Decimals are stored as strings (serde JSON of `Decimal`).
//!
//! Depends on `keel-core` only: no venue, no actor runtime.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub mod archive;
pub mod integrity;

use archive::{Archive, ArchiveMark};
use integrity::{Facts, IntegrityRecord, Note, Verdict};

use serde::de::DeserializeOwned;
use serde::Serialize;

use keel_core::account::AccountCheckpoint;
use keel_core::balance::Balances;
use keel_core::error::StoreError;
use keel_core::exits::ExitState;
use keel_core::fill::{Fill, FillCursor};
use keel_core::order::Order;
use keel_core::position::Position;
use keel_core::store::{AuditRecord, EquityPoint, Store, StoreResult};
use keel_core::trading::{EmergencyStop, TradingStateRecord};
use keel_core::{StrategyId, Symbol};

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
    /// Sequence (8 bytes, big endian) → operator action ([`AuditRecord`]), bounded.
    audit: sled::Tree,
    /// Sequence (8 bytes, big endian) → equity point ([`EquityPoint`]), bounded.
    equity: sled::Tree,
    /// `strategy/symbol` → the exit state of that position ([`ExitState`], JSON).
    exits: sled::Tree,
    /// Final orders and archived fills, outside sled.
    archive: Archive,
    /// The directory a copy or a temporary store lives in, removed with it.
    _scratch: Option<tempfile::TempDir>,
    /// The integrity record's keeping (none for a temporary store).
    integrity: Option<Keeping>,
}

/// How a store keeps its integrity record.
struct Keeping {
    /// The data dir holding the record.
    dir: PathBuf,
    /// False for a copy (`keel state`): it judges, never writes.
    writable: bool,
    /// Why the store was refused, while it is.
    problem: Mutex<Option<String>>,
    /// When the record was last written. Held while it is written: the
    /// record goes through one temporary file, and two writers at once
    /// would truncate it under each other (the loser's rename then fails).
    sealed: Mutex<Instant>,
    /// The last operator acceptance, carried into every record written.
    accepted: Mutex<Option<Note>>,
}

/// The record follows the orders and fills at most this far behind (sealing
/// costs an fsync; the emergency stop and checkpoints seal at once).
const SEAL_EVERY: Duration = Duration::from_secs(1);

/// The schema this build writes (and the newest it reads). Version 1 is the
/// layout Keel wrote first (stores from before the version was recorded are
/// version 1); version 2 gives every fill a store sequence; version 3 moves
/// final history into segment files (a Keel reading version 2 would miss it).
/// An older store is migrated when opened, after a backup copy of it is made.
pub const SCHEMA_VERSION: u32 = 3;

/// The committed end of the archive ([`ArchiveMark`]).
const META_ARCHIVE: &str = "archive";
/// Per-symbol prefix of the fill cursor (JSON [`FillCursor`]): where the
/// venue's "fills since" listing resumes, kept when fills move to the archive.
const META_FILL_CURSOR: &str = "fill_cursor:";
/// Directory of the archive's segment files, beside `keel.sled`.
pub const HISTORY_DIR: &str = "history";

/// The last store sequence given to a fill (8 bytes, big endian).
const META_FILL_SEQ: &str = "fill_seq";
const META_CHECKPOINT: &str = "account_checkpoint";
/// Orders ever created (8 bytes, big endian).
const META_ORDERS_TOTAL: &str = "orders_total";

const META_SCHEMA: &str = "schema_version";
/// The store's id, also in the integrity record.
const META_STORE_ID: &str = "store_id";
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
        private_dir(dir).map_err(|e| backend(sled::Error::Io(e)))?;
        let had_sled = integrity::sled_present(&dir.join("keel.sled"));
        let record = integrity::read(dir);
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
        // sled creates its files with the process umask: a private directory
        // keeps them from other users whatever their modes.
        private_dir(&dir.join("keel.sled")).map_err(|e| backend(sled::Error::Io(e)))?;
        let mut store = Self::assemble(db, &dir.join(HISTORY_DIR), true, None)?;
        store.check_schema(dir)?;
        if store.meta.get(META_ORDERS_TOTAL).map_err(backend)?.is_none() {
            // Counted once, for a store from before the counter.
            let n = store.orders.len() as u64;
            store.meta.insert(META_ORDERS_TOTAL, &n.to_be_bytes()).map_err(backend)?;
        }
        store.keep_integrity(dir, record, had_sled, true)?;
        Ok(store)
    }

    /// Opens a copy of the store in `dir`, for reading while an engine may be
    /// running on it: sled writes when it opens, so the original is never
    /// opened. The archive is read in place (it is only appended to, and only
    /// as far as the copy's mark). Nothing under `dir` is written.
    pub fn open_copy(dir: &Path) -> StoreResult<Self> {
        let scratch = tempfile::tempdir().map_err(|e| backend(sled::Error::Io(e)))?;
        let source = dir.join("keel.sled");
        let had_sled = integrity::sled_present(&source);
        // The record first: a running engine only moves it forward after
        // sled, so the copy taken next is never behind what was read.
        let record = integrity::read(dir);
        let copy = scratch.path().join("keel.sled");
        if source.exists() {
            // The engine may replace sled's snapshot files while we copy: retry.
            let mut attempt = 0;
            while let Err(e) = copy_dir(&source, &copy) {
                attempt += 1;
                if attempt == 5 {
                    return Err(backend(sled::Error::Io(e)));
                }
                let _ = std::fs::remove_dir_all(&copy);
            }
        }
        let db = sled::Config::new().path(&copy).cache_capacity(CACHE_BYTES).open().map_err(backend)?;
        let at = scratch.path().to_path_buf();
        let mut store = Self::assemble(db, &dir.join(HISTORY_DIR), false, Some(scratch))?;
        match store.check_schema(&at) {
            Err(StoreError::NewerSchema { found, supported, .. }) => {
                return Err(StoreError::NewerSchema { path: dir.display().to_string(), found, supported })
            }
            other => other?,
        }
        store.keep_integrity(dir, record, had_sled, false)?;
        Ok(store)
    }

    /// Judges the store against its integrity `record` (read from `dir`
    /// before sled was opened) and, when
    /// `writable`, brings the record forward (or records the refusal).
    fn keep_integrity(
        &mut self,
        dir: &Path,
        record: Result<Option<IntegrityRecord>, String>,
        had_sled: bool,
        writable: bool,
    ) -> StoreResult<()> {
        let keeping = Keeping {
            dir: dir.to_path_buf(),
            writable,
            problem: Mutex::new(None),
            sealed: Mutex::new(Instant::now()),
            accepted: Mutex::new(record.as_ref().ok().and_then(|r| r.as_ref()).and_then(|r| r.accepted.clone())),
        };
        self.integrity = Some(keeping);
        let facts = self.facts()?;
        let verdict = match &record {
            Err(why) => Verdict::Refused(why.clone()),
            Ok(r) => integrity::judge(r.as_ref(), &facts, had_sled),
        };
        match verdict {
            Verdict::Fresh | Verdict::Upgrade | Verdict::Sound if writable => {
                if facts.store_id.is_none() {
                    Self::put(&self.meta, META_STORE_ID, &integrity::new_store_id())?;
                }
                if verdict == Verdict::Upgrade {
                    tracing::warn!(data_dir = %dir.display(), orders = facts.orders_total, fills = facts.fill_seq, "store has no integrity record (written by an older Keel): recording one from its contents");
                }
                self.seal()
            }
            Verdict::Fresh | Verdict::Upgrade | Verdict::Sound => Ok(()),
            Verdict::Refused(why) => {
                if writable {
                    tracing::error!(data_dir = %dir.display(), problem = %why, "STORE INTEGRITY: the store is refused; nothing trades until an operator runs `keel store accept`");
                    let mut kept = match record {
                        Ok(Some(r)) => r,
                        Ok(None) => IntegrityRecord::of(&facts, now_ms()),
                        Err(_) => {
                            // Keep the unreadable record for the operator.
                            let at = integrity::path(dir);
                            let _ = std::fs::rename(&at, dir.join(format!("{}.unreadable", integrity::RECORD_FILE)));
                            IntegrityRecord::of(&facts, now_ms())
                        }
                    };
                    if kept.refused.is_none() {
                        kept.refused = Some(Note { reason: why.clone(), at_ms: now_ms() });
                        integrity::write(dir, &kept).map_err(|e| backend(sled::Error::Io(e)))?;
                    }
                }
                if let Some(k) = &self.integrity {
                    *k.problem.lock().unwrap_or_else(|p| p.into_inner()) = Some(why);
                }
                Ok(())
            }
        }
    }

    /// What the store holds now, for the integrity record.
    fn facts(&self) -> StoreResult<Facts> {
        let store_id = self.get_store_id()?;
        let orders_total = self.meta.get(META_ORDERS_TOTAL).map_err(backend)?.map(|b| seq_of(&b)).unwrap_or(0);
        let fill_seq = self.last_seq()?;
        let emergency_stop = self.emergency_stop()?.active;
        let has_data = orders_total > 0
            || fill_seq > 0
            || emergency_stop
            || !self.orders.is_empty()
            || !self.fills.is_empty()
            || self.meta.contains_key(META_TRADING_STATE).map_err(backend)?
            || self.meta.contains_key(META_CHECKPOINT).map_err(backend)?;
        Ok(Facts { store_id, orders_total, fill_seq, emergency_stop, has_data })
    }

    /// Flushes sled, then writes the integrity record from what it holds —
    /// in that order, so the record is never ahead of the store. Nothing is
    /// written for a copy, a temporary store, or a refused one.
    fn seal(&self) -> StoreResult<()> {
        let Some(k) = &self.integrity else { return Ok(()) };
        if !k.writable || k.problem.lock().unwrap_or_else(|p| p.into_inner()).is_some() {
            return Ok(());
        }
        // One writer at a time, and the facts read under the lock, so the
        // last record written is the newest.
        let mut sealed = k.sealed.lock().unwrap_or_else(|p| p.into_inner());
        self.flush_now()?;
        let mut record = IntegrityRecord::of(&self.facts()?, now_ms());
        record.accepted = k.accepted.lock().unwrap_or_else(|p| p.into_inner()).clone();
        integrity::write(&k.dir, &record).map_err(|e| backend(sled::Error::Io(e)))?;
        *sealed = Instant::now();
        Ok(())
    }

    /// Seals if the record is more than [`SEAL_EVERY`] old.
    fn seal_if_due(&self) -> StoreResult<()> {
        let due = self
            .integrity
            .as_ref()
            .is_some_and(|k| k.sealed.lock().unwrap_or_else(|p| p.into_inner()).elapsed() >= SEAL_EVERY);
        if due {
            self.seal()
        } else {
            Ok(())
        }
    }

    /// An operator accepts a refused store as it is (`keel store accept`):
    /// the record starts again from the store's contents, noting `reason`
    /// and what was wrong, and the emergency stop is set so the next start
    /// cancels what rests at the venue and waits for `keel resume`. Returns
    /// what was wrong (`None` when the store was not refused).
    pub fn accept_integrity(&self, reason: &str, by: &str) -> StoreResult<Option<String>> {
        let Some(k) = &self.integrity else { return Ok(None) };
        let problem = k.problem.lock().unwrap_or_else(|p| p.into_inner()).take();
        let Some(was) = problem else { return Ok(None) };
        if self.get_store_id()?.is_none() {
            Self::put(&self.meta, META_STORE_ID, &integrity::new_store_id())?;
        }
        let now = now_ms();
        let mut stop = self.emergency_stop()?;
        if !stop.active {
            stop = EmergencyStop {
                active: true,
                reason: Some(format!(
                    "store accepted after store_integrity ({was}): review positions and orders, then `keel resume`"
                )),
                set_by: Some(by.to_string()),
                set_at_ms: Some(now),
                ..stop
            };
            Self::put(&self.meta, META_EMERGENCY_STOP, &stop)?;
        }
        let mut sealed = k.sealed.lock().unwrap_or_else(|p| p.into_inner());
        self.flush_now()?;
        let mut record = IntegrityRecord::of(&self.facts()?, now);
        record.accepted = Some(Note { reason: format!("{reason} (by {by}; was: {was})"), at_ms: now });
        integrity::write(&k.dir, &record).map_err(|e| backend(sled::Error::Io(e)))?;
        *k.accepted.lock().unwrap_or_else(|p| p.into_inner()) = record.accepted;
        *sealed = Instant::now();
        tracing::warn!(by, reason, problem = %was, "store accepted as it is after store_integrity; emergency stop set");
        Ok(Some(was))
    }

    fn get_store_id(&self) -> StoreResult<Option<String>> {
        Self::get(&self.meta, "meta", META_STORE_ID)
    }

    /// The store over an open database: its trees, opened (or created), and
    /// the archive as far as the database records it.
    fn assemble(db: sled::Db, history: &Path, writable: bool, scratch: Option<tempfile::TempDir>) -> StoreResult<Self> {
        let meta = db.open_tree("meta").map_err(backend)?;
        let mark: ArchiveMark = Self::get(&meta, "meta", META_ARCHIVE)?.unwrap_or_default();
        Ok(Self {
            orders: db.open_tree("orders").map_err(backend)?,
            open: db.open_tree("open_orders").map_err(backend)?,
            fills: db.open_tree("fills").map_err(backend)?,
            fill_seq: db.open_tree("fill_seq").map_err(backend)?,
            positions: db.open_tree("positions").map_err(backend)?,
            audit: db.open_tree("audit").map_err(backend)?,
            equity: db.open_tree("equity").map_err(backend)?,
            exits: db.open_tree("exits").map_err(backend)?,
            archive: Archive::open(history, mark, writable)?,
            meta,
            db,
            _scratch: scratch,
            integrity: None,
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

    /// Brings an older store to this version: a backup copy of the whole
    /// store first. From version 1, every fill gets a store sequence (in
    /// venue-time order, the best record of arrival a version-1 store has);
    /// version 2 has nothing archived yet, so it only needs the new stamp.
    fn migrate(&self, dir: &Path, from: u32) -> StoreResult<()> {
        self.flush_now()?;
        let backup = dir.join(format!("keel.sled.v{from}-backup"));
        if !backup.exists() {
            copy_dir(&dir.join("keel.sled"), &backup).map_err(|e| backend(sled::Error::Io(e)))?;
        }
        let mut fills: Vec<Fill> = Self::all(&self.fills, "fills")?;
        if from < 2 {
            fills.sort_by(|a, b| a.ts_ms.cmp(&b.ts_ms).then_with(|| a.key().cmp(&b.key())));
            self.fill_seq.clear().map_err(backend)?;
            for (i, f) in fills.iter().enumerate() {
                self.fill_seq.insert((i as u64 + 1).to_be_bytes(), f.key().as_bytes()).map_err(backend)?;
            }
            self.meta.insert(META_FILL_SEQ, &(fills.len() as u64).to_be_bytes()).map_err(backend)?;
        }
        for f in &fills {
            self.raise_cursor(f)?;
        }
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

    /// Writes final history straight into the archive: each final order
    /// with its fills, fills sequenced in the order given, counters and
    /// per-symbol trade cursors kept. For generating large stores to measure
    /// against; the engine records through [`Store::record_fill`] and
    /// archives through [`Store::archive`].
    pub fn import_history(&self, history: &[(Order, Vec<Fill>)]) -> StoreResult<()> {
        let mut seq = self.last_seq()?;
        let mut orders_total = self.order_count()? as u64;
        for chunk in history.chunks(10_000) {
            let mut fills = Vec::new();
            let mut orders = Vec::with_capacity(chunk.len());
            for (order, order_fills) in chunk {
                orders.push(order.clone());
                orders_total += 1;
                for fill in order_fills {
                    seq += 1;
                    fills.push((seq, fill.clone()));
                    self.raise_cursor(fill)?;
                }
            }
            let (mark, pending) = self.archive.append(&fills, &orders)?;
            Self::put(&self.meta, META_ARCHIVE, &mark)?;
            self.meta.insert(META_FILL_SEQ, &seq.to_be_bytes()).map_err(backend)?;
            self.meta.insert(META_ORDERS_TOTAL, &orders_total.to_be_bytes()).map_err(backend)?;
            self.flush_now()?;
            self.archive.commit(mark, pending);
        }
        self.seal()
    }

    /// How far the archive goes.
    pub fn archive_mark(&self) -> ArchiveMark {
        self.archive.mark()
    }

    /// Bytes the archive's segment files take.
    pub fn archive_bytes(&self) -> u64 {
        self.archive.bytes()
    }

    /// The last store sequence given to a fill.
    fn last_seq(&self) -> StoreResult<u64> {
        Ok(self.meta.get(META_FILL_SEQ).map_err(backend)?.map(|b| seq_of(&b)).unwrap_or(0))
    }

    /// Moves a symbol's fill cursor to this fill if it is newer.
    fn raise_cursor(&self, fill: &Fill) -> StoreResult<()> {
        let key = format!("{META_FILL_CURSOR}{}", fill.symbol);
        let here = FillCursor::of(fill);
        let newer = match Self::get::<FillCursor>(&self.meta, "meta", &key)? {
            Some(old) => here > old,
            None => true,
        };
        if newer {
            Self::put(&self.meta, &key, &here)?;
        }
        Ok(())
    }

    /// Live fills (still in sled) with a sequence above `seq`.
    fn live_fills_after(&self, seq: u64) -> StoreResult<Vec<(u64, Fill)>> {
        let start = seq.saturating_add(1).to_be_bytes();
        let mut out = Vec::new();
        for item in self.fill_seq.range(start..) {
            let (k, key) = item.map_err(backend)?;
            out.push((seq_of(&k), self.live_fill(&key)?));
        }
        Ok(out)
    }

    fn live_fill(&self, key: &[u8]) -> StoreResult<Fill> {
        let bytes = self.fills.get(key).map_err(backend)?.ok_or_else(|| StoreError::Corrupt {
            tree: "fill_seq",
            key: String::from_utf8_lossy(key).into_owned(),
            reason: "the sequence names a fill the store does not have".into(),
        })?;
        decode("fills", key, &bytes)
    }

    /// Moves fills up to `through` and the final orders they complete into
    /// the archive (see [`Store::archive`]).
    fn archive_through(&self, through: u64, min_records: usize) -> StoreResult<usize> {
        use sled::transaction::{ConflictableTransactionError, TransactionError};
        use sled::Transactional;
        let mark = self.archive.mark();
        let through = through.min(self.last_seq()?);
        let fills: Vec<(u64, Fill)> =
            self.live_fills_after(mark.fill_cut)?.into_iter().take_while(|(s, _)| *s <= through).collect();
        let open: std::collections::HashSet<Vec<u8>> =
            self.open.iter().keys().map(|k| k.map(|k| k.to_vec())).collect::<Result<_, _>>().map_err(backend)?;
        // Orders with fills after the cut stay live, with those fills.
        let mut pinned: std::collections::HashSet<String> = std::collections::HashSet::new();
        for (_, f) in self.live_fills_after(through)? {
            pinned.insert(f.client_order_id);
        }
        let mut orders = Vec::new();
        for item in self.orders.iter() {
            let (k, v) = item.map_err(backend)?;
            if open.contains(k.as_ref()) {
                continue;
            }
            let order: Order = decode("orders", &k, &v)?;
            if order.status.is_terminal() && !pinned.contains(&order.client_order_id) {
                orders.push(order);
            }
        }
        if fills.len() + orders.len() < min_records.max(1) {
            return Ok(0);
        }
        // Fills of orders still open are archived but also kept live; a fill
        // kept so earlier leaves once its order is final.
        let archived: std::collections::HashSet<&str> = orders.iter().map(|o| o.client_order_id.as_str()).collect();
        let live_keys: std::collections::HashSet<Vec<u8>> = self
            .fill_seq
            .range((through.saturating_add(1)).to_be_bytes()..)
            .values()
            .map(|v| v.map(|v| v.to_vec()))
            .collect::<Result<_, _>>()
            .map_err(backend)?;
        let mut drop_fills = Vec::new();
        for item in self.fills.iter() {
            let (k, v) = item.map_err(backend)?;
            if live_keys.contains(k.as_ref()) {
                continue;
            }
            let f: Fill = decode("fills", &k, &v)?;
            let order_stays = self.orders.contains_key(f.client_order_id.as_bytes()).map_err(backend)?
                && !archived.contains(f.client_order_id.as_str());
            if !order_stays {
                drop_fills.push(k.to_vec());
            }
        }
        let (new_mark, pending) = self.archive.append(&fills, &orders)?;
        let mark_bytes = serde_json::to_vec(&new_mark).map_err(|e| StoreError::Encode(e.to_string()))?;
        let trees = (&self.fills, &self.orders, &self.fill_seq, &self.meta);
        let result = trees.transaction(|(tf, to, ts, tm)| {
            for (seq, _) in &fills {
                ts.remove(&seq.to_be_bytes())?;
            }
            for key in &drop_fills {
                tf.remove(key.as_slice())?;
            }
            for o in &orders {
                to.remove(o.client_order_id.as_bytes())?;
            }
            tm.insert(META_ARCHIVE, mark_bytes.clone())?;
            Ok::<_, ConflictableTransactionError<()>>(())
        });
        match result {
            Ok(()) => {}
            Err(TransactionError::Storage(e)) => return Err(backend(e)),
            Err(TransactionError::Abort(())) => return Ok(0),
        }
        self.flush_now()?;
        self.archive.commit(new_mark, pending);
        tracing::info!(
            fills = fills.len(),
            orders = orders.len(),
            fill_cut = new_mark.fill_cut,
            "store: final history moved to the archive"
        );
        Ok(fills.len() + orders.len())
    }

    /// The schema version recorded in the store.
    pub fn schema_version(&self) -> StoreResult<Option<u32>> {
        Self::get(&self.meta, "meta", META_SCHEMA)
    }

    /// An in-memory store that is discarded on exit: used to come up HALTED
    /// (fail closed) when the real store cannot be read.
    pub fn temporary() -> StoreResult<Self> {
        let scratch = tempfile::tempdir().map_err(|e| backend(sled::Error::Io(e)))?;
        let history = scratch.path().join(HISTORY_DIR);
        Self::assemble(sled::Config::new().temporary(true).open().map_err(backend)?, &history, true, Some(scratch))
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

    /// Appends `value` to a bounded log under the next sequence, then drops
    /// the records more than `keep` behind it (the oldest).
    fn append_bounded<T: Serialize>(tree: &sled::Tree, value: &T, keep: usize) -> StoreResult<()> {
        let bytes = serde_json::to_vec(value).map_err(|e| StoreError::Encode(e.to_string()))?;
        // Claimed by compare-and-swap, so two writers never share a sequence.
        let seq = loop {
            let next = tree.last().map_err(backend)?.map(|(k, _)| seq_of(&k)).unwrap_or(0) + 1;
            let swapped = tree
                .compare_and_swap(next.to_be_bytes(), None as Option<&[u8]>, Some(bytes.clone()))
                .map_err(backend)?;
            if swapped.is_ok() {
                break next;
            }
        };
        let cut = seq.saturating_sub(keep as u64);
        if cut > 0 {
            for key in tree.range(..=cut.to_be_bytes()).keys() {
                tree.remove(key.map_err(backend)?).map_err(backend)?;
            }
        }
        Ok(())
    }

    /// The newest `limit` records of a bounded log, newest first.
    fn newest<T: DeserializeOwned>(tree: &sled::Tree, name: &'static str, limit: usize) -> StoreResult<Vec<T>> {
        tree.iter()
            .rev()
            .take(limit)
            .map(|item| {
                let (k, v) = item.map_err(backend)?;
                decode(name, &k, &v)
            })
            .collect()
    }
}

/// Creates `dir` (and its parents) if needed and makes it private to this
/// user (0700): orders, fills and balances are nobody else's business.
pub(crate) fn private_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        // A directory this user may use but not chmod (another owner's) is
        // still usable: say so rather than refuse the store.
        if let Err(e) = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)) {
            tracing::warn!(dir = %dir.display(), error = %e, "cannot make the directory private (0700)");
        }
    }
    Ok(())
}

/// Copies a directory tree, creating `to` private (the store's backup
/// before a migration, the copy `keel state` reads; tests copy stores with it).
pub fn copy_dir(from: &Path, to: &Path) -> std::io::Result<()> {
    private_dir(to)?;
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

/// Between the strategy and the symbol in an exit state's key: neither a
/// strategy id (letters, digits, `_`, `-`, `@`) nor a symbol holds it.
const EXIT_KEY_SEPARATOR: char = '/';

/// The key of a position's exit state: `strategy/symbol`, so a strategy's
/// positions sort together.
fn exit_key(strategy: &StrategyId, symbol: &Symbol) -> String {
    format!("{strategy}{EXIT_KEY_SEPARATOR}{symbol}")
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
            self.seal_if_due()?;
        }
        Ok(())
    }

    fn order(&self, client_order_id: &str) -> StoreResult<Option<Order>> {
        Self::get(&self.orders, "orders", client_order_id)
    }

    fn orders(&self) -> StoreResult<Vec<Order>> {
        let mut out = self.archive.orders()?;
        out.extend(Self::all::<Order>(&self.orders, "orders")?);
        out.sort_by(|a, b| a.client_order_id.cmp(&b.client_order_id));
        Ok(out)
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
        if self.archive.contains(fill)? {
            return Ok(false);
        }
        let key = fill.key();
        let cursor_key = format!("{META_FILL_CURSOR}{}", fill.symbol);
        let cursor = FillCursor::of(fill);
        let cursor_bytes = serde_json::to_vec(&cursor).map_err(|e| StoreError::Encode(e.to_string()))?;
        let trees = (&self.fills, &self.orders, &self.open, &self.fill_seq, &self.meta);
        let result = trees.transaction(|(fills, orders, open, seqs, meta)| {
            if fills.get(key.as_bytes())?.is_some() {
                return Ok(false);
            }
            fills.insert(key.as_bytes(), fill_bytes.clone())?;
            let seq = meta.get(META_FILL_SEQ)?.map(|b| seq_of(&b)).unwrap_or(0) + 1;
            meta.insert(META_FILL_SEQ, &seq.to_be_bytes())?;
            seqs.insert(&seq.to_be_bytes(), key.as_bytes())?;
            let newer = match meta.get(cursor_key.as_bytes())? {
                Some(old) => serde_json::from_slice::<FillCursor>(&old).map(|old| cursor > old).unwrap_or(true),
                None => true,
            };
            if newer {
                meta.insert(cursor_key.as_bytes(), cursor_bytes.clone())?;
            }
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
            self.seal_if_due()?;
        }
        Ok(inserted)
    }

    fn has_fill(&self, fill: &Fill) -> StoreResult<bool> {
        Ok(self.fills.contains_key(fill.key().as_bytes()).map_err(backend)? || self.archive.contains(fill)?)
    }

    fn fills(&self) -> StoreResult<Vec<Fill>> {
        let mut out: Vec<Fill> = self.fills_after(0)?.into_iter().map(|(_, f)| f).collect();
        out.sort_by(|a, b| a.symbol.cmp(&b.symbol).then(a.trade_id.cmp(&b.trade_id)));
        Ok(out)
    }

    fn fill_count(&self) -> StoreResult<usize> {
        // Sequences are given one per fill, from 1: the last one is the count.
        Ok(self.last_seq()? as usize)
    }

    fn fills_after(&self, seq: u64) -> StoreResult<Vec<(u64, Fill)>> {
        let cut = self.archive.mark().fill_cut;
        let mut out = if seq < cut { self.archive.fills_after(seq)? } else { Vec::new() };
        out.extend(self.live_fills_after(seq.max(cut))?);
        Ok(out)
    }

    fn recent_fills(&self, limit: usize) -> StoreResult<Vec<Fill>> {
        let mut out = Vec::with_capacity(limit.min(1024));
        for item in self.fill_seq.iter().rev().take(limit) {
            let (_, key) = item.map_err(backend)?;
            out.push(self.live_fill(&key)?);
        }
        out.reverse();
        if out.len() < limit {
            let mut older: Vec<Fill> =
                self.archive.recent_fills(limit - out.len())?.into_iter().map(|(_, f)| f).collect();
            older.append(&mut out);
            out = older;
        }
        Ok(out)
    }

    fn archive(&self, through_seq: u64, min_records: usize) -> StoreResult<usize> {
        self.archive_through(through_seq, min_records)
    }

    fn put_checkpoint(&self, checkpoint: &AccountCheckpoint) -> StoreResult<()> {
        Self::put(&self.meta, META_CHECKPOINT, checkpoint)?;
        self.seal()
    }

    fn checkpoint(&self) -> StoreResult<Option<AccountCheckpoint>> {
        Self::get(&self.meta, "meta", META_CHECKPOINT)
    }

    fn fill_cursor(&self, symbol: &str) -> StoreResult<Option<FillCursor>> {
        Self::get(&self.meta, "meta", &format!("{META_FILL_CURSOR}{symbol}"))
    }

    fn fill_cursors(&self) -> StoreResult<Vec<(String, FillCursor)>> {
        let mut out = Vec::new();
        for item in self.meta.scan_prefix(META_FILL_CURSOR.as_bytes()) {
            let (k, v) = item.map_err(backend)?;
            let symbol = String::from_utf8_lossy(&k[META_FILL_CURSOR.len()..]).into_owned();
            out.push((symbol, decode("meta", &k, &v)?));
        }
        Ok(out)
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
        self.flush_now()?;
        self.seal()
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

    fn put_exit_state(&self, strategy: &StrategyId, state: &ExitState) -> StoreResult<()> {
        Self::put(&self.exits, &exit_key(strategy, &state.symbol), state)
    }

    fn delete_exit_state(&self, strategy: &StrategyId, symbol: &Symbol) -> StoreResult<()> {
        self.exits.remove(exit_key(strategy, symbol).as_bytes()).map_err(backend)?;
        Ok(())
    }

    fn exit_states(&self) -> StoreResult<Vec<(StrategyId, ExitState)>> {
        self.exits
            .iter()
            .map(|item| {
                let (k, v) = item.map_err(backend)?;
                let key = String::from_utf8_lossy(&k);
                let Some((strategy, _)) = key.split_once(EXIT_KEY_SEPARATOR) else {
                    return Err(StoreError::Corrupt {
                        tree: "exits",
                        key: key.into_owned(),
                        reason: "the key names no strategy".into(),
                    });
                };
                Ok((StrategyId::new(strategy), decode("exits", &k, &v)?))
            })
            .collect()
    }

    fn append_audit(&self, record: &AuditRecord, keep: usize) -> StoreResult<()> {
        Self::append_bounded(&self.audit, record, keep)?;
        self.flush_now()
    }

    fn audit(&self, limit: usize) -> StoreResult<Vec<AuditRecord>> {
        Self::newest(&self.audit, "audit", limit)
    }

    fn append_equity(&self, point: &EquityPoint, keep: usize) -> StoreResult<()> {
        Self::append_bounded(&self.equity, point, keep)
    }

    fn equity_history(&self, limit: usize) -> StoreResult<Vec<EquityPoint>> {
        let mut out: Vec<EquityPoint> = Self::newest(&self.equity, "equity", limit)?;
        out.reverse();
        Ok(out)
    }

    fn flush(&self) -> StoreResult<()> {
        self.flush_now()?;
        self.seal()
    }

    fn integrity(&self) -> Option<String> {
        self.integrity.as_ref().and_then(|k| k.problem.lock().unwrap_or_else(|p| p.into_inner()).clone())
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use keel_core::fill::fill_key;
    use keel_core::order::{OrderEvent, OrderIntent, OrderStatus, Side};
    use rust_decimal::Decimal;

    fn fill(trade_id: u64) -> Fill {
        Fill {
            trade_id: trade_id.into(),
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
        let cursor = store.fill_cursor("BTCUSDT").unwrap().unwrap();
        assert_eq!(cursor.trade_id, 12.into());
        assert_eq!(store.fill_cursor("ETHUSDT").unwrap(), None);
        assert_eq!(store.fill_cursors().unwrap(), [("BTCUSDT".to_string(), cursor)]);
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
        for old_version in [None, Some(1u32), Some(2)] {
            let dir = tempfile::tempdir().unwrap();
            {
                let store = SledStore::open(dir.path()).unwrap();
                let intent = OrderIntent::market("s".into(), "BTCUSDT".into(), Side::Buy, Decimal::ONE);
                store.put_order(&Order::from_intent(&intent, "k1".into(), 1), true).unwrap();
                let mut late = fill(7);
                late.ts_ms = 5;
                store.record_fill(&late, None).unwrap();
                store.record_fill(&fill(9), None).unwrap();
                // As a version-2 Keel wrote it: no trade cursors; version 1
                // had no fill sequence either (and, before that, no version).
                store.meta.remove(format!("{META_FILL_CURSOR}BTCUSDT").as_bytes()).unwrap();
                if old_version != Some(2) {
                    store.fill_seq.clear().unwrap();
                    store.meta.remove(META_FILL_SEQ.as_bytes()).unwrap();
                }
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
            let from = old_version.unwrap_or(1);
            assert!(dir.path().join(format!("keel.sled.v{from}-backup")).is_dir(), "a copy was kept before migrating");
            assert_eq!(store.order_count().unwrap(), 1, "its data is kept");
            let cursor = store.fill_cursor("BTCUSDT").unwrap().map(|c| c.trade_id);
            // Trade 7 is the later one by venue time: resuming there lists 9
            // again (the store knows it) rather than risk skipping anything.
            assert_eq!(cursor, Some(7.into()), "the fill cursor comes from the fills (the newest by venue time)");
            // Sequences follow venue time (version 2 kept its own); new fills continue after them.
            let seqs: Vec<(u64, u64)> =
                store.fills_after(0).unwrap().iter().map(|(s, f)| (*s, f.trade_id.as_u64().unwrap())).collect();
            assert_eq!(seqs, if from == 2 { [(1, 7), (2, 9)] } else { [(1, 9), (2, 7)] });
            store.record_fill(&fill(11), None).unwrap();
            assert_eq!(store.fills_after(2).unwrap().iter().map(|(s, _)| *s).collect::<Vec<_>>(), [3]);
            drop(store);
            // The backup is the old store, readable as it was.
            let old = sled::open(dir.path().join(format!("keel.sled.v{from}-backup"))).unwrap();
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
        let after: Vec<(u64, u64)> =
            store.fills_after(1).unwrap().iter().map(|(s, f)| (*s, f.trade_id.as_u64().unwrap())).collect();
        assert_eq!(after, [(2, 3), (3, 8)]);
        let recent: Vec<u64> = trade_ids(&store.recent_fills(2).unwrap());
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

    fn order_filled(id: &str, trade_ids: &[u64]) -> (Order, Vec<Fill>) {
        let intent = OrderIntent::market("s".into(), "BTCUSDT".into(), Side::Buy, Decimal::from(trade_ids.len()));
        let mut order = Order::from_intent(&intent, id.into(), 1);
        order.apply(OrderEvent::Submit, 2).unwrap();
        let mut fills = Vec::new();
        for t in trade_ids {
            let ev = order.record_fill(Decimal::new(100, 0), Decimal::ONE, 3);
            order.apply(ev, 3).unwrap();
            fills.push(Fill { client_order_id: id.into(), ts_ms: *t as i64 * 10, ..fill(*t) });
        }
        (order, fills)
    }

    /// Records an order and its fills the way the engine does.
    fn record(store: &SledStore, id: &str, trade_ids: &[u64], finish: bool) {
        let (mut order, fills) = order_filled(id, trade_ids);
        if !finish {
            order.status = OrderStatus::PartiallyFilled;
        }
        store.put_order(&order, true).unwrap();
        for f in &fills {
            assert!(store.record_fill(f, Some(&order)).unwrap());
        }
    }

    fn trade_ids(fills: &[Fill]) -> Vec<u64> {
        fills.iter().filter_map(|f| f.trade_id.as_u64()).collect()
    }

    #[test]
    fn final_history_moves_to_the_archive_and_reads_the_same() {
        let dir = tempfile::tempdir().unwrap();
        let store = SledStore::open(dir.path()).unwrap();
        record(&store, "a", &[1, 2], true);
        record(&store, "b", &[3], false); // still working: stays live with its fill
        record(&store, "c", &[4, 5], true);
        let before = (store.fills().unwrap(), store.fills_after(0).unwrap(), store.orders().unwrap());

        assert_eq!(store.archive(3, 1000).unwrap(), 0, "below the batch size nothing moves");
        let moved = store.archive(3, 1).unwrap();
        assert_eq!(moved, 3 + 1, "fills 1-3 and order a (c has fills after the cut, b is open)");
        assert_eq!(store.archive_mark().fill_cut, 3);
        assert!(store.order("a").unwrap().is_none(), "a left the live store");
        assert!(store.order("b").unwrap().is_some() && store.order("c").unwrap().is_some());
        assert!(
            store.fills.contains_key(fill_key("BTCUSDT", &keel_core::fill::TradeId::from(3))).unwrap(),
            "an open order keeps its fills live"
        );
        assert!(!store.fills.contains_key(fill_key("BTCUSDT", &keel_core::fill::TradeId::from(1))).unwrap());

        let after = (store.fills().unwrap(), store.fills_after(0).unwrap(), store.orders().unwrap());
        assert_eq!(before, after, "reads return archived history as before");
        assert_eq!(trade_ids(&store.recent_fills(3).unwrap()), [3, 4, 5]);
        assert_eq!(trade_ids(&store.recent_fills(10).unwrap()), [1, 2, 3, 4, 5]);
        assert_eq!(store.fills_after(2).unwrap().iter().map(|(s, _)| *s).collect::<Vec<_>>(), [3, 4, 5]);
        assert_eq!(store.fill_count().unwrap(), 5);
        assert_eq!(store.fill_cursor("BTCUSDT").unwrap().map(|c| c.trade_id), Some(5.into()));
        for id in [1, 3, 5] {
            let (_, fills) = order_filled("a", &[id]);
            assert!(store.has_fill(&fills[0]).unwrap(), "trade {id}");
            assert!(!store.record_fill(&fills[0], None).unwrap(), "trade {id} is recorded once, archived or not");
        }
        assert_eq!(store.fill_count().unwrap(), 5);

        // b finishes; the next pass takes everything, and b's early fill leaves sled.
        let mut b = store.order("b").unwrap().unwrap();
        b.status = OrderStatus::Filled;
        store.put_order(&b, true).unwrap();
        assert_eq!(store.archive(5, 1).unwrap(), 2 + 2);
        assert!(store.fills.is_empty() && store.orders.is_empty() && store.fill_seq.is_empty());
        drop(store);

        let store = SledStore::open(dir.path()).unwrap();
        assert_eq!(trade_ids(&store.fills().unwrap()), [1, 2, 3, 4, 5]);
        assert_eq!(store.orders().unwrap().len(), 3);
        assert_eq!(
            store.orders().unwrap().iter().find(|o| o.client_order_id == "b").unwrap().status,
            OrderStatus::Filled
        );
        record(&store, "d", &[6], true);
        assert_eq!(
            store.fills_after(4).unwrap().iter().map(|(s, f)| (*s, f.trade_id.as_u64().unwrap())).collect::<Vec<_>>(),
            [(5, 5), (6, 6)]
        );
    }

    #[test]
    fn a_chunk_written_before_a_crash_but_not_recorded_is_cut() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = SledStore::open(dir.path()).unwrap();
            record(&store, "a", &[1], true);
            store.archive(1, 1).unwrap();
            record(&store, "b", &[2], true);
            // The crash: the chunk is durable, sled never hears of it.
            let live = store.fills_after(1).unwrap();
            store.archive.append(&live, &[store.order("b").unwrap().unwrap()]).unwrap();
        }
        let store = SledStore::open(dir.path()).unwrap();
        assert_eq!(trade_ids(&store.fills().unwrap()), [1, 2], "nothing twice");
        assert_eq!(store.orders().unwrap().len(), 2);
        assert_eq!(store.archive(2, 1).unwrap(), 2);
        drop(store);
        let store = SledStore::open(dir.path()).unwrap();
        assert_eq!(trade_ids(&store.fills().unwrap()), [1, 2]);
    }

    #[test]
    fn a_damaged_archive_is_refused_not_read_short() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = SledStore::open(dir.path()).unwrap();
            record(&store, "a", &[1, 2, 3], true);
            store.archive(3, 1).unwrap();
        }
        let segment = dir.path().join(HISTORY_DIR).join("00000001.seg");
        let mut bytes = std::fs::read(&segment).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 0xff;
        std::fs::write(&segment, &bytes).unwrap();
        let store = SledStore::open(dir.path()).unwrap();
        match store.fills() {
            Err(StoreError::Corrupt { tree: "archive", reason, .. }) => {
                assert!(reason.contains("checksum"), "{reason}")
            }
            other => panic!("expected a checksum error, got {other:?}"),
        }
        drop(store);
        std::fs::write(&segment, &bytes[..bytes.len() - 5]).unwrap();
        match SledStore::open(dir.path()) {
            Err(StoreError::Corrupt { tree: "archive", .. }) => {}
            Err(other) => panic!("expected Corrupt, got {other}"),
            Ok(_) => panic!("a store whose archive lost committed bytes must not open"),
        }
    }

    /// Every file under `dir` with its modification time and its bytes.
    fn listing(dir: &Path) -> Vec<(std::path::PathBuf, std::time::SystemTime, Vec<u8>)> {
        let mut out = Vec::new();
        let mut stack = vec![dir.to_path_buf()];
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(d).unwrap() {
                let e = e.unwrap();
                let m = e.metadata().unwrap();
                if m.is_dir() {
                    stack.push(e.path());
                } else {
                    out.push((e.path(), m.modified().unwrap(), std::fs::read(e.path()).unwrap()));
                }
            }
        }
        out.sort();
        out
    }

    #[test]
    fn a_copy_reads_a_running_store_and_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = SledStore::open(dir.path()).unwrap();
        record(&store, "a", &[1, 2], true);
        store.archive(2, 1).unwrap();
        record(&store, "b", &[3], false);
        store.flush().unwrap();
        let before = listing(dir.path());
        let copy = SledStore::open_copy(dir.path()).unwrap();
        assert_eq!(trade_ids(&copy.fills().unwrap()), [1, 2, 3]);
        assert_eq!(copy.open_orders().unwrap().len(), 1);
        assert_eq!(copy.fill_count().unwrap(), 3);
        drop(copy);
        assert_eq!(listing(dir.path()), before, "the original store is untouched");
        // The engine goes on writing after the copy.
        record(&store, "c", &[4], true);
    }

    #[test]
    fn a_trade_named_by_uuid_is_recorded_once_live_and_archived() {
        let dir = tempfile::tempdir().unwrap();
        let store = SledStore::open(dir.path()).unwrap();
        let uuid = |n: u8| Fill {
            trade_id: format!("{n:08x}-5d2f-4b8e-a1f0-3e2d1c0b9a87").as_str().into(),
            ts_ms: i64::from(n),
            ..fill(0)
        };
        assert!(store.record_fill(&uuid(1), None).unwrap());
        assert!(!store.record_fill(&uuid(1), None).unwrap(), "live: known");
        assert!(store.record_fill(&uuid(2), None).unwrap());
        store.archive(2, 1).unwrap();
        assert!(!store.record_fill(&uuid(1), None).unwrap(), "archived: known");
        assert!(store.has_fill(&uuid(2)).unwrap());
        assert!(store.record_fill(&uuid(3), None).unwrap());
        let ids: Vec<String> = store.fills_after(0).unwrap().iter().map(|(_, f)| f.trade_id.to_string()).collect();
        assert_eq!(ids.len(), 3);
        assert!(ids[0].starts_with("00000001-"), "{ids:?}");
        let cursor = store.fill_cursor("BTCUSDT").unwrap().unwrap();
        assert_eq!(cursor.trade_id, uuid(3).trade_id, "the cursor is the newest by venue time");
    }

    #[cfg(unix)]
    #[test]
    fn the_data_dir_and_the_archive_are_private() {
        use std::os::unix::fs::PermissionsExt;
        let parent = tempfile::tempdir().unwrap();
        let dir = parent.path().join("data");
        let store = SledStore::open(&dir).unwrap();
        record(&store, "a", &[1], true);
        store.archive(1, 1).unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&dir.join("keel.sled")), 0o700);
        assert_eq!(mode(&dir.join(HISTORY_DIR)), 0o700);
        assert_eq!(mode(&dir.join(HISTORY_DIR).join("00000001.seg")), 0o600);
    }

    fn audit_record(i: i64) -> AuditRecord {
        AuditRecord {
            ts_ms: i,
            by: "web".into(),
            remote: Some("127.0.0.1:5000".into()),
            action: "cancel_order".into(),
            detail: format!("k{i}"),
            ok: i % 2 == 0,
        }
    }

    #[test]
    fn the_audit_log_keeps_the_newest_records_across_reopen() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = SledStore::open(dir.path()).unwrap();
            assert!(store.audit(10).unwrap().is_empty());
            for i in 1..=7 {
                store.append_audit(&audit_record(i), 5).unwrap();
            }
            let ts: Vec<i64> = store.audit(100).unwrap().iter().map(|r| r.ts_ms).collect();
            assert_eq!(ts, [7, 6, 5, 4, 3], "newest first; the two oldest pruned");
            assert_eq!(store.audit.len(), 5, "pruned in the store, not only in the answer");
        }
        let store = SledStore::open(dir.path()).unwrap();
        assert_eq!(store.audit(2).unwrap(), [audit_record(7), audit_record(6)]);
        store.append_audit(&audit_record(8), 5).unwrap();
        let ts: Vec<i64> = store.audit(100).unwrap().iter().map(|r| r.ts_ms).collect();
        assert_eq!(ts, [8, 7, 6, 5, 4], "the sequence goes on after a reopen");
    }

    #[test]
    fn the_equity_history_keeps_the_newest_points_oldest_first() {
        let dir = tempfile::tempdir().unwrap();
        let point = |i: i64| EquityPoint { ts_ms: i * 60_000, equity: Decimal::new(1_000_000 + i, 2) };
        {
            let store = SledStore::open(dir.path()).unwrap();
            for i in 1..=10 {
                store.append_equity(&point(i), 4).unwrap();
            }
            assert_eq!(store.equity_history(100).unwrap(), [point(7), point(8), point(9), point(10)]);
            assert_eq!(store.equity_history(2).unwrap(), [point(9), point(10)], "the newest, oldest first");
            assert_eq!(store.equity.len(), 4);
            store.flush().unwrap();
        }
        let store = SledStore::open(dir.path()).unwrap();
        assert_eq!(store.equity_history(1).unwrap(), [point(10)], "kept across a reopen, exact");
        // A larger bound keeps more from now on; a smaller one prunes at once.
        store.append_equity(&point(11), 2).unwrap();
        assert_eq!(store.equity_history(100).unwrap(), [point(10), point(11)]);
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

    fn exit_state(symbol: &str, best: i64) -> ExitState {
        let mut state = ExitState::open(Symbol::new(symbol), Decimal::new(60_000, 0), Decimal::new(1, 2), 1_000);
        state.best_price = Decimal::new(best, 0);
        state.trailing_armed = true;
        state
    }

    #[test]
    fn exit_states_survive_a_reopen_and_a_delete_removes_one() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (StrategyId::new("btc_sma"), StrategyId::new("tmpl@ETHUSDT"));
        {
            let store = SledStore::open(dir.path()).unwrap();
            store.put_exit_state(&a, &exit_state("BTCUSDT", 61_000)).unwrap();
            store.put_exit_state(&a, &exit_state("BTCUSDT", 62_500)).unwrap();
            store.put_exit_state(&a, &exit_state("SOLUSDT", 100)).unwrap();
            store.put_exit_state(&b, &exit_state("ETHUSDT", 3_000)).unwrap();
            store.flush().unwrap();
        }
        let store = SledStore::open(dir.path()).unwrap();
        let all = store.exit_states().unwrap();
        assert_eq!(
            all,
            [
                (a.clone(), exit_state("BTCUSDT", 62_500)),
                (a.clone(), exit_state("SOLUSDT", 100)),
                (b.clone(), exit_state("ETHUSDT", 3_000)),
            ],
            "the last write per position, exact, after a reopen"
        );
        store.delete_exit_state(&a, &Symbol::new("BTCUSDT")).unwrap();
        store.delete_exit_state(&a, &Symbol::new("XRPUSDT")).unwrap();
        let left: Vec<(String, String)> =
            store.exit_states().unwrap().into_iter().map(|(s, e)| (s.to_string(), e.symbol.to_string())).collect();
        assert_eq!(left, [("btc_sma".into(), "SOLUSDT".into()), ("tmpl@ETHUSDT".into(), "ETHUSDT".into())]);
    }

    #[test]
    fn an_unreadable_exit_state_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let store = SledStore::open(dir.path()).unwrap();
        store.put_exit_state(&StrategyId::new("s"), &exit_state("BTCUSDT", 1)).unwrap();
        store.exits.insert("s/ETHUSDT", b"{not json".to_vec()).unwrap();
        match store.exit_states() {
            Err(StoreError::Corrupt { tree: "exits", key, .. }) => assert_eq!(key, "s/ETHUSDT"),
            other => panic!("expected Corrupt, got {other:?}"),
        }
        store.exits.remove("s/ETHUSDT").unwrap();
        store.exits.insert("nokey", serde_json::to_vec(&exit_state("BTCUSDT", 1)).unwrap()).unwrap();
        assert!(matches!(store.exit_states(), Err(StoreError::Corrupt { tree: "exits", .. })));
    }
}
