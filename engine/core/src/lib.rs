//! Keel's core: the exchange-neutral domain model (instruments and their
//! filters, orders and their state machine, fills, positions, balances, market
//! events), the traits every other crate implements or drives (`Strategy`,
//! `Venue`, `Clock`, `Store`), the one simulated matching core and the paper
//! venue built on it, and the config types every side shares.
//!
//! It depends on no other Keel crate, and on no network, disk or actor
//! runtime: tokio appears only for the `Venue` trait's channels and the paper
//! venue's clock task. The store, each venue adapter and the sandbox are crates
//! of their own beside it; strategies, risk, the actors and the backtest all
//! build on this one.

pub mod account;
mod account_migration;
pub mod alert;
pub mod balance;
pub mod clock;
pub mod config;
pub mod decimal_text;
mod duration;
pub mod error;
pub mod exits;
pub mod fill;
pub mod futures;
pub mod futures_board;
pub mod instrument;
pub mod market;
pub mod member_instruments;
pub mod order;
pub mod position;
pub mod sim;
pub mod store;
pub mod strategy;
pub mod symbol;
pub mod trading;
pub mod universe;
pub mod venue;
pub mod when;

pub use rust_decimal::Decimal;
pub use symbol::{StrategyId, Symbol};
