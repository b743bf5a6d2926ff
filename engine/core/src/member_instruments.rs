//! The instruments of universe members, kept in the store. A member is not
//! in the config's `[[symbol]]` blocks, so a tool that reads the store
//! without the venue (`keel state`) would otherwise have to guess its base
//! and quote assets and would not know its lot step (the dust). Every symbol
//! that was ever a member stays: a former member may still hold dust.

use std::collections::BTreeMap;

use crate::error::StoreError;
use crate::instrument::Instrument;
use crate::store::{Store, StoreResult};
use crate::symbol::Symbol;

/// The metadata key the instruments are kept under (JSON: symbol → instrument).
pub const KEY: &str = "universe.instruments";

/// The instruments kept, by symbol (none if no universe ever ran here).
pub fn load(store: &dyn Store) -> StoreResult<BTreeMap<Symbol, Instrument>> {
    match store.meta_json(KEY)? {
        None => Ok(BTreeMap::new()),
        Some(value) => serde_json::from_value(value).map_err(|e| StoreError::Corrupt {
            tree: "meta",
            key: KEY.to_string(),
            reason: e.to_string(),
        }),
    }
}

/// Adds (or updates, as the venue lists them now) the instruments of
/// `members`, durably, and keeps those already there. Writes nothing if
/// they are all kept as they are (a refresh that changed nothing costs no
/// write). A record that cannot be read is replaced.
pub fn remember(store: &dyn Store, members: &[Instrument]) -> StoreResult<()> {
    let mut kept = load(store).unwrap_or_default();
    let mut changed = false;
    for i in members {
        if kept.get(&i.symbol) != Some(i) {
            kept.insert(i.symbol.clone(), i.clone());
            changed = true;
        }
    }
    if !changed {
        return Ok(());
    }
    let value = serde_json::to_value(&kept).map_err(|e| StoreError::Encode(e.to_string()))?;
    store.put_meta_json(KEY, &value, true)
}
