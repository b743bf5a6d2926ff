//! Keel's live runtime: actix actors exchanging typed messages.
//!
//! ```text
//! venue market feed -> MarketData -> StrategyHost(s) -> RiskGuard -> OrderRouter -> venue
//! venue user feed   -> OrderRouter -> Portfolio, StrategyHost, RiskGuard
//! Supervisor: starts and watches the actors; EngineHandle: the operator's way in
//! ```
//!
//! Strategies, risk rules and the matching core are plain Rust from the other
//! crates; this crate only runs them live. Nothing here blocks an arbiter: store
//! writes go to a dedicated writer thread, venue calls are async.

pub mod deliver;
pub mod error;
pub mod events;
pub mod futures_feed;
pub mod handle;
pub mod ids;
pub mod market_data;
pub mod messages;
pub mod metrics;
pub mod order_router;
pub mod patience;
pub mod portfolio;
pub mod prices;
pub mod reconcile;
pub mod risk_guard;
pub mod store_writer;
pub mod strategy_host;
pub mod strategy_pnl;
pub mod supervisor;
pub mod universe;

pub use error::{EmergencyStopError, FailureClass, StartupError};
pub use events::EngineEvent;
pub use handle::EngineHandle;
pub use supervisor::{start_engine, EngineSetup};
