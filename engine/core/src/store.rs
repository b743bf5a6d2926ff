//! The [`Store`] trait: durable state (orders, fills, positions, balances, the
//! trading state and the emergency stop) as the engine needs it. The sled
//! implementation lives in the `keel-store` crate; the core knows no disk.
//!
//! Implementations must make every `durable` write crash-safe before the call
//! returns (an order before it is sent, a fill, the emergency stop, the
//! trading state).
//!
//! Beside the trading state it keeps two bounded logs for operators: the
//! audit log of operator actions ([`AuditRecord`]) and the equity history
//! ([`EquityPoint`]). Both keep their newest records and drop the oldest.

use std::sync::Arc;

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::account::AccountCheckpoint;
use crate::balance::Balances;
use crate::error::StoreError;
use crate::exits::ExitState;
use crate::fill::{Fill, FillCursor};
use crate::order::Order;
use crate::position::Position;
use crate::symbol::{StrategyId, Symbol};
use crate::trading::{EmergencyStop, TradingStateRecord};

/// Records moved to the archive at a time, at least (see [`Store::archive`]):
/// a batch compresses well, a record at a time would not.
pub const ARCHIVE_BATCH: usize = 512;

/// Audit records kept, at most: the newest ones (years of operator actions).
pub const AUDIT_KEEP: usize = 10_000;

/// Equity points kept, at most: the newest ones (30 days at the default
/// interval of a minute).
pub const EQUITY_KEEP: usize = 30 * 24 * 60;

/// One operator action (emergency stop, resume, flatten, a cancel, a pause or
/// resume of a strategy), as the audit log keeps it: who, from where, what,
/// and whether it succeeded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditRecord {
    /// When (ms since the epoch).
    pub ts_ms: i64,
    /// The surface: `web` (the console), `http` (any other API caller) or `telegram`.
    pub by: String,
    /// Where from: `ip:port` for HTTP, the user id for Telegram.
    pub remote: Option<String>,
    /// `emergency_stop`, `resume`, `flatten`, `cancel_order`, `cancel_all`,
    /// `pause_strategy` or `resume_strategy`.
    pub action: String,
    /// What exactly (a reason, a symbol, an order or strategy id; an error when it failed).
    pub detail: String,
    /// Whether the engine carried it out.
    pub ok: bool,
}

/// Account equity at one moment, in the quote asset (the equity history).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EquityPoint {
    /// When (ms since the epoch).
    pub ts_ms: i64,
    /// Equity marked to market.
    pub equity: Decimal,
}

/// Result alias for store calls.
pub type StoreResult<T> = Result<T, StoreError>;

/// The store interface the engine needs. Implementations must make `durable`
/// writes crash-safe before returning.
pub trait Store: Send + Sync {
    /// Writes an order (insert or update); `durable` flushes before returning.
    fn put_order(&self, order: &Order, durable: bool) -> StoreResult<()>;
    /// One live order by client order id: open, or final and not yet
    /// archived (an archived order is final, so nothing updates it again).
    fn order(&self, client_order_id: &str) -> StoreResult<Option<Order>>;
    /// Every order, archived ones included, in client order id order.
    fn orders(&self) -> StoreResult<Vec<Order>>;
    /// Orders not yet final (including `new` ones that may never have been sent).
    fn open_orders(&self) -> StoreResult<Vec<Order>>;
    /// Number of orders.
    fn order_count(&self) -> StoreResult<usize>;
    /// Records a fill and the order it updated, atomically and durably.
    /// Returns false (and changes nothing) if the fill's trade id is already known.
    fn record_fill(&self, fill: &Fill, order: Option<&Order>) -> StoreResult<bool>;
    /// True if this venue trade is already recorded (live or archived).
    fn has_fill(&self, fill: &Fill) -> StoreResult<bool>;
    /// Every fill, archived ones included, by symbol then trade id.
    fn fills(&self) -> StoreResult<Vec<Fill>>;
    /// Fills recorded after store sequence `seq`, with their sequence, in
    /// the order they were recorded. Every fill gets the next sequence when
    /// it is recorded; the sequence, never a venue id, is the account
    /// checkpoint's cursor.
    fn fills_after(&self, seq: u64) -> StoreResult<Vec<(u64, Fill)>>;
    /// The last `limit` fills recorded, oldest first.
    fn recent_fills(&self, limit: usize) -> StoreResult<Vec<Fill>>;
    /// Moves final history out of the live store: fills with a sequence up to
    /// `through_seq` (which a durable checkpoint covers) and the final orders
    /// with no fill after it. Does nothing while fewer than `min_records`
    /// would move (bigger batches keep the archive compact). Returns how
    /// many records moved. Reads above keep returning archived history.
    fn archive(&self, through_seq: u64, min_records: usize) -> StoreResult<usize>;
    /// Writes the account checkpoint, durably.
    fn put_checkpoint(&self, checkpoint: &AccountCheckpoint) -> StoreResult<()>;
    /// The account checkpoint, if one was taken.
    fn checkpoint(&self) -> StoreResult<Option<AccountCheckpoint>>;
    /// Number of fills.
    fn fill_count(&self) -> StoreResult<usize>;
    /// Where the venue's listing of own trades in `symbol` resumes: the
    /// newest recorded fill (by venue time, then trade id).
    fn fill_cursor(&self, symbol: &str) -> StoreResult<Option<FillCursor>>;
    /// The fill cursor of every symbol with a fill.
    fn fill_cursors(&self) -> StoreResult<Vec<(String, FillCursor)>>;
    /// Writes the position cache of a symbol.
    fn put_position(&self, position: &Position) -> StoreResult<()>;
    /// The cached positions.
    fn positions(&self) -> StoreResult<Vec<Position>>;
    /// Writes the balances snapshot.
    fn put_balances(&self, balances: &Balances) -> StoreResult<()>;
    /// The last balances snapshot.
    fn balances(&self) -> StoreResult<Option<Balances>>;
    /// Writes the trading state, durably.
    fn put_trading_state(&self, record: &TradingStateRecord) -> StoreResult<()>;
    /// The stored trading state.
    fn trading_state(&self) -> StoreResult<Option<TradingStateRecord>>;
    /// Writes the emergency stop, durably.
    fn put_emergency_stop(&self, stop: &EmergencyStop) -> StoreResult<()>;
    /// The emergency stop (default: not set).
    fn emergency_stop(&self) -> StoreResult<EmergencyStop>;
    /// A number never returned before, even across crashes (for client order ids).
    fn next_id(&self) -> StoreResult<u64>;
    /// Writes a JSON record under a named key in the metadata tree (other crates' state).
    fn put_meta_json(&self, key: &str, value: &serde_json::Value, durable: bool) -> StoreResult<()>;
    /// Reads a JSON record from the metadata tree.
    fn meta_json(&self, key: &str) -> StoreResult<Option<serde_json::Value>>;
    /// Appends an operator action to the audit log, durably, keeping the
    /// newest `keep` records.
    fn append_audit(&self, record: &AuditRecord, keep: usize) -> StoreResult<()>;
    /// The newest `limit` audit records, newest first.
    fn audit(&self, limit: usize) -> StoreResult<Vec<AuditRecord>>;
    /// Appends an equity point (not flushed: the next flush carries it),
    /// keeping the newest `keep` points.
    fn append_equity(&self, point: &EquityPoint, keep: usize) -> StoreResult<()>;
    /// The newest `limit` equity points, oldest first.
    fn equity_history(&self, limit: usize) -> StoreResult<Vec<EquityPoint>>;
    /// Writes the exit state of a strategy's position (insert or replace;
    /// not flushed: the next flush carries it, and a restart re-adopts the
    /// exit orders from the venue either way).
    fn put_exit_state(&self, strategy: &StrategyId, state: &ExitState) -> StoreResult<()>;
    /// Forgets the exit state of a strategy's position (it is flat).
    fn delete_exit_state(&self, strategy: &StrategyId, symbol: &Symbol) -> StoreResult<()>;
    /// Every stored exit state, by strategy then symbol.
    fn exit_states(&self) -> StoreResult<Vec<(StrategyId, ExitState)>>;
    /// Flushes everything buffered.
    fn flush(&self) -> StoreResult<()>;
    /// Why the store is not to be trusted (it is behind its integrity record:
    /// lost, truncated or swapped data), or `None` when it is sound. A store
    /// without such a record (in memory, in tests) is sound.
    fn integrity(&self) -> Option<String> {
        None
    }
}

/// A shared store handle.
pub type SharedStore = Arc<dyn Store>;
