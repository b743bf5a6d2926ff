//! Keel's composition root and operator surfaces: the `keel` CLI, the config
//! tree, the wiring of store, venue (paper, the embedded sandbox behind the
//! Binance or the Coinbase adapter, an external sandbox, testnet, mainnet)
//! and actors, the backtest, the HTTP API,
//! Telegram and metrics. `main.rs` is only [`App::new().main()`](App), so
//! the integration tests drive the same code, and a user's own binary gets
//! the whole command line with strategy kinds of its own added ([`app`]);
//! [`testing`] runs such a strategy through a backtest inside a unit test.
//!
//! This is the only crate that sees every other Keel crate: the adapter and
//! the sandbox never meet except here.

pub mod app;
pub mod audit;
pub mod backtest;
pub mod chart;
pub mod cli;
pub mod cmd_bench;
pub mod cmd_check;
pub mod cmd_data;
pub mod cmd_pine;
pub mod cmd_run;
pub mod cmd_sandbox;
pub mod cmd_scan;
pub mod cmd_state;
pub mod cmd_strategies;
pub mod config;
pub mod discord;
pub mod download;
pub mod futures_data;
pub mod futures_feed;
pub mod http;
pub mod log_feed;
pub mod log_scrub;
pub mod logging;
pub mod notice;
pub mod notify;
pub mod outbox;
pub mod pine_warnings;
pub mod restarts;
pub mod secret;
pub mod settings;
pub mod state_exits;
pub mod summary;
pub mod surfaces;
pub mod telegram;
pub mod testing;
pub mod venues;

pub use app::App;
