//! Errors of the core crate.

use thiserror::Error;

use crate::order::{OrderEvent, OrderStatus};

/// An order event that the order's current status does not allow.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("illegal order transition: {event:?} while {from:?}")]
pub struct TransitionError {
    /// The status the order was in.
    pub from: OrderStatus,
    /// The event that was refused.
    pub event: OrderEvent,
}

/// Errors from the store.
#[derive(Debug, Error)]
pub enum StoreError {
    /// Another process (a running engine) holds the store's lock.
    #[error("the store at {path} is locked: is a keel engine running on it?")]
    Locked {
        /// The data directory.
        path: String,
    },
    /// The store was written by a newer Keel, in a format this one does not know.
    #[error("the store at {path} was written by a newer Keel (schema {found}; this Keel reads up to {supported}): run that version, or start from another data dir")]
    NewerSchema {
        /// The data directory.
        path: String,
        /// The schema version found.
        found: u32,
        /// The newest schema this build reads.
        supported: u32,
    },
    /// The storage backend failed (I/O, or the backend's own error).
    #[error("store error: {0}")]
    Backend(#[source] Box<dyn std::error::Error + Send + Sync + 'static>),
    /// A stored record could not be decoded.
    #[error("corrupt record in tree `{tree}` at key `{key}`: {reason}")]
    Corrupt {
        /// The tree holding the record.
        tree: &'static str,
        /// The record's key.
        key: String,
        /// Why it could not be decoded.
        reason: String,
    },
    /// A record could not be encoded.
    #[error("cannot encode record: {0}")]
    Encode(String),
    /// The store is refused as behind its integrity record (lost, truncated
    /// or swapped data): nothing trades, and no resume, until an operator
    /// accepts it.
    #[error("store_integrity: {0}; check the data dir, then run `keel store accept --reason …` before `keel resume`")]
    Integrity(String),
}
