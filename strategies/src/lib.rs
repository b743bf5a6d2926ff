//! Keel's strategies and the indicators they use. Every strategy is plain
//! synchronous code behind [`keel_core::strategy::Strategy`]: the same object runs
//! in a backtest and live.

pub mod bollinger_breakout;
pub mod common;
pub mod grid;
pub mod indicators;
pub mod ma_cross;
pub mod macd;
pub mod params;
pub mod pine_host;
pub mod pine_kind;
pub mod registry;
pub mod rsi_reversion;
pub mod scanner;
pub mod webhook;

pub use registry::{StrategyConfigError, StrategyRegistry};
