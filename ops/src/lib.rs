//! Keel's operator surfaces and commands: the `keel` CLI, the backtest, the HTTP
//! API, Telegram and metrics. `main.rs` only dispatches to this library so the
//! integration tests can drive the same code.

pub mod backtest;
pub mod cli;
pub mod cmd_bench;
pub mod cmd_run;
pub mod cmd_sandbox;
pub mod cmd_state;
pub mod http;
pub mod logging;
pub mod notify;
pub mod secret;
pub mod settings;
pub mod summary;
pub mod surfaces;
pub mod telegram;
pub mod venues;
