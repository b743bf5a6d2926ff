//! Keel's strategies and the indicators they use. Every strategy is plain
//! synchronous code behind [`engine::strategy::Strategy`]: the same object runs
//! in a backtest and live.

pub mod indicators;
pub mod params;
pub mod registry;
pub mod sma_cross;

pub use registry::{build, validate_all, StrategyConfigError};
