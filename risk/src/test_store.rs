//! An in-memory [`Store`] for tests, with switches that make reads fail.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use keel_core::balance::Balances;
use keel_core::error::StoreError;
use keel_core::exits::ExitState;
use keel_core::fill::{Fill, FillCursor};
use keel_core::order::Order;
use keel_core::position::Position;
use keel_core::store::{AuditRecord, EquityPoint, Store, StoreResult};
use keel_core::trading::{EmergencyStop, TradingStateRecord};
use keel_core::{StrategyId, Symbol};

/// Metadata-only in-memory store; order, fill, audit, equity and exit-state calls keep nothing.
#[derive(Default)]
pub struct MemStore {
    meta: Mutex<BTreeMap<String, serde_json::Value>>,
    stop: Mutex<Option<EmergencyStop>>,
    state: Mutex<Option<TradingStateRecord>>,
    /// Make every read fail.
    pub fail_reads: AtomicBool,
    /// Make every write fail.
    pub fail_writes: AtomicBool,
    /// Flushed writes.
    pub flushes: Mutex<u32>,
}

fn broken() -> StoreError {
    StoreError::Corrupt { tree: "meta", key: "x".into(), reason: "injected failure".into() }
}

impl MemStore {
    fn read(&self) -> StoreResult<()> {
        if self.fail_reads.load(Ordering::Relaxed) {
            return Err(broken());
        }
        Ok(())
    }

    fn write(&self, durable: bool) -> StoreResult<()> {
        if self.fail_writes.load(Ordering::Relaxed) {
            return Err(broken());
        }
        if durable {
            *self.flushes.lock().map_err(|_| broken())? += 1;
        }
        Ok(())
    }
}

impl Store for MemStore {
    fn put_order(&self, _: &Order, _: bool) -> StoreResult<()> {
        Ok(())
    }
    fn order(&self, _: &str) -> StoreResult<Option<Order>> {
        Ok(None)
    }
    fn orders(&self) -> StoreResult<Vec<Order>> {
        Ok(Vec::new())
    }
    fn open_orders(&self) -> StoreResult<Vec<Order>> {
        Ok(Vec::new())
    }
    fn order_count(&self) -> StoreResult<usize> {
        Ok(0)
    }
    fn record_fill(&self, _: &Fill, _: Option<&Order>) -> StoreResult<bool> {
        Ok(true)
    }
    fn has_fill(&self, _: &Fill) -> StoreResult<bool> {
        Ok(false)
    }
    fn archive(&self, _: u64, _: usize) -> StoreResult<usize> {
        Ok(0)
    }
    fn fills(&self) -> StoreResult<Vec<Fill>> {
        Ok(Vec::new())
    }
    fn fill_count(&self) -> StoreResult<usize> {
        Ok(0)
    }
    fn fills_after(&self, _: u64) -> StoreResult<Vec<(u64, Fill)>> {
        Ok(Vec::new())
    }
    fn recent_fills(&self, _: usize) -> StoreResult<Vec<Fill>> {
        Ok(Vec::new())
    }
    fn put_checkpoint(&self, _: &keel_core::account::AccountCheckpoint) -> StoreResult<()> {
        self.write(true)
    }
    fn checkpoint(&self) -> StoreResult<Option<keel_core::account::AccountCheckpoint>> {
        self.read()?;
        Ok(None)
    }
    fn fill_cursors(&self) -> StoreResult<Vec<(String, FillCursor)>> {
        Ok(Vec::new())
    }
    fn fill_cursor(&self, _: &str) -> StoreResult<Option<FillCursor>> {
        Ok(None)
    }
    fn put_position(&self, _: &Position) -> StoreResult<()> {
        Ok(())
    }
    fn positions(&self) -> StoreResult<Vec<Position>> {
        Ok(Vec::new())
    }
    fn put_balances(&self, _: &Balances) -> StoreResult<()> {
        Ok(())
    }
    fn balances(&self) -> StoreResult<Option<Balances>> {
        Ok(None)
    }
    fn put_trading_state(&self, record: &TradingStateRecord) -> StoreResult<()> {
        self.write(true)?;
        *self.state.lock().map_err(|_| broken())? = Some(record.clone());
        Ok(())
    }
    fn trading_state(&self) -> StoreResult<Option<TradingStateRecord>> {
        self.read()?;
        Ok(self.state.lock().map_err(|_| broken())?.clone())
    }
    fn put_emergency_stop(&self, stop: &EmergencyStop) -> StoreResult<()> {
        self.write(true)?;
        *self.stop.lock().map_err(|_| broken())? = Some(stop.clone());
        Ok(())
    }
    fn emergency_stop(&self) -> StoreResult<EmergencyStop> {
        self.read()?;
        Ok(self.stop.lock().map_err(|_| broken())?.clone().unwrap_or_default())
    }
    fn next_id(&self) -> StoreResult<u64> {
        Ok(1)
    }
    fn put_meta_json(&self, key: &str, value: &serde_json::Value, durable: bool) -> StoreResult<()> {
        self.write(durable)?;
        self.meta.lock().map_err(|_| broken())?.insert(key.to_string(), value.clone());
        Ok(())
    }
    fn meta_json(&self, key: &str) -> StoreResult<Option<serde_json::Value>> {
        self.read()?;
        Ok(self.meta.lock().map_err(|_| broken())?.get(key).cloned())
    }
    fn append_audit(&self, _: &AuditRecord, _: usize) -> StoreResult<()> {
        self.write(true)
    }
    fn audit(&self, _: usize) -> StoreResult<Vec<AuditRecord>> {
        self.read()?;
        Ok(Vec::new())
    }
    fn append_equity(&self, _: &EquityPoint, _: usize) -> StoreResult<()> {
        self.write(false)
    }
    fn equity_history(&self, _: usize) -> StoreResult<Vec<EquityPoint>> {
        self.read()?;
        Ok(Vec::new())
    }
    fn put_exit_state(&self, _: &StrategyId, _: &ExitState) -> StoreResult<()> {
        self.write(false)
    }
    fn delete_exit_state(&self, _: &StrategyId, _: &Symbol) -> StoreResult<()> {
        self.write(false)
    }
    fn exit_states(&self) -> StoreResult<Vec<(StrategyId, ExitState)>> {
        self.read()?;
        Ok(Vec::new())
    }
    fn flush(&self) -> StoreResult<()> {
        self.write(true)
    }
}
