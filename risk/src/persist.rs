//! Persisting the risk engine's state (base trading state and protections) in
//! the store's metadata tree, as JSON with decimals as strings.

use keel_core::error::StoreError;
use keel_core::store::{Store, StoreResult};

use crate::engine_core::RiskPersisted;

/// The metadata key the risk state lives under.
pub const META_KEY: &str = "risk_state";

/// Writes the risk state; `durable` flushes before returning (use it for every
/// state change, trip, pause and resume; a plain high-water-mark update may
/// skip the flush).
pub fn save(store: &dyn Store, persisted: &RiskPersisted, durable: bool) -> StoreResult<()> {
    let value = serde_json::to_value(persisted).map_err(|e| StoreError::Encode(e.to_string()))?;
    store.put_meta_json(META_KEY, &value, durable)
}

/// Reads the risk state (`None` on a fresh store). A record that does not
/// decode is reported as [`StoreError::Corrupt`], never ignored.
pub fn load(store: &dyn Store) -> StoreResult<Option<RiskPersisted>> {
    match store.meta_json(META_KEY)? {
        None => Ok(None),
        Some(value) => serde_json::from_value(value).map(Some).map_err(|e| StoreError::Corrupt {
            tree: "meta",
            key: META_KEY.to_string(),
            reason: e.to_string(),
        }),
    }
}
