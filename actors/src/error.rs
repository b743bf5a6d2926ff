//! The runtime's typed errors: why the engine did not start, and why an
//! emergency-stop command did not complete.
//!
//! The composition root decides by variant, never by reading text: a store
//! failure means fail closed and wait for a person; a venue outage is weather
//! that a later attempt may ride out; a symbol the venue does not list is a
//! configuration problem.

use std::sync::Arc;

use keel_core::error::StoreError;
use keel_core::venue::VenueError;
use keel_core::Symbol;

use crate::store_writer::WriterGone;

/// Why [`crate::start_engine`] did not start the engine.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    /// The store could not be read or written: fail closed.
    #[error("store: {0}")]
    Store(#[from] StoreError),
    /// The store thread stopped: fail closed.
    #[error(transparent)]
    StoreGone(#[from] WriterGone),
    /// The venue could not be reached or refused a start-up request.
    #[error("venue: cannot {step}: {source}")]
    Venue {
        /// What start-up was doing (`load instruments`, `subscribe to user data`, …).
        step: &'static str,
        /// The venue's answer.
        #[source]
        source: VenueError,
    },
    /// A configured symbol is not listed by the venue.
    #[error("symbol {0} is configured but the venue does not list it")]
    SymbolNotListed(Symbol),
}

impl StartupError {
    /// Where the failure lies, for logs and for the decision what to do next.
    pub fn class(&self) -> FailureClass {
        match self {
            Self::Store(_) | Self::StoreGone(_) => FailureClass::Store,
            Self::Venue { .. } => FailureClass::Venue,
            Self::SymbolNotListed(_) => FailureClass::Config,
        }
    }

    /// A venue error at `step`.
    pub(crate) fn venue(step: &'static str) -> impl FnOnce(VenueError) -> Self {
        move |source| Self::Venue { step, source }
    }
}

/// Where a start-up failure lies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureClass {
    /// The store: Keel cannot be sure of its own state; a person must look.
    Store,
    /// The venue: an outage or refusal that may pass.
    Venue,
    /// The configuration asks for something the venue does not offer.
    Config,
}

impl FailureClass {
    /// A stable name for logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Store => "store",
            Self::Venue => "venue",
            Self::Config => "config",
        }
    }
}

/// Why setting or clearing the emergency stop did not complete.
#[derive(Debug, Clone, thiserror::Error)]
pub enum EmergencyStopError {
    /// The stop holds in memory (no order passes) but is not on disk, so a
    /// restart would not know it.
    #[error("emergency stop is active in memory but not on disk: {0}")]
    NotPersisted(#[source] Arc<StoreError>),
    /// The resume was not stored: trading stays halted.
    #[error("resume not stored, still halted: {0}")]
    ResumeNotPersisted(#[source] Arc<StoreError>),
    /// The store thread is gone: nothing could be written.
    #[error("the store is not running: {0}")]
    StoreGone(#[from] WriterGone),
}
