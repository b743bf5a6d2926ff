//! Keel's core library: the exchange-neutral domain model, the traits every other
//! crate implements or drives (`Strategy`, `Venue`, `Clock`, `Store`), the sled
//! store, the simulated matching core and the venues built on it.
//!
//! Nothing here depends on actix: the backtest, the live actors and the sandbox
//! exchange all call this code directly.

pub mod balance;
pub mod binance;
pub mod clock;
pub mod config;
pub mod error;
pub mod fill;
pub mod instrument;
pub mod market;
pub mod order;
pub mod position;
pub mod sandbox;
pub mod sim;
pub mod store;
pub mod strategy;
pub mod symbol;
pub mod trading;
pub mod venue;

pub use rust_decimal::Decimal;
pub use symbol::{StrategyId, Symbol};
