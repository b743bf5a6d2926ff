//! The `keel` command line.

use std::path::PathBuf;

use crate::config::LogFormat;
use clap::{Parser, Subcommand};

/// Keel: an actor-based live trading engine for crypto spot markets. It trades
/// Binance spot (testnet or mainnet) or, offline by default, its own embedded
/// sandbox exchange, and replays history through the same strategies, risk
/// rules and matching core.
#[derive(Debug, Parser)]
#[command(
    name = "keel",
    version,
    about = "Keel: an actor-based live trading engine (Binance spot, or its own offline sandbox exchange)",
    long_about = None,
    after_help = "Without --config, commands read ./config.toml, or the built-in default config when there is none \
                  (`keel config default` prints it)."
)]
pub struct Cli {
    /// Log format (overrides the config): text or json.
    #[arg(long, global = true, value_parser = parse_log_format)]
    pub log_format: Option<LogFormat>,
    /// The command.
    #[command(subcommand)]
    pub command: Command,
}

/// Every `keel` command.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the engine until Ctrl-C, SIGTERM or --exit-after.
    Run(RunArgs),
    /// Show the state of a stopped engine from its store.
    State(StateArgs),
    /// Validate a config file and exit; Pine blocks' repainting warnings are printed (`--strict`: errors).
    CheckConfig(crate::cmd_check::CheckConfigArgs),
    /// Print the built-in default config (`keel config default > config.toml`).
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Set the emergency stop in the store of a stopped engine.
    Halt(HaltArgs),
    /// Clear the emergency stop in the store of a stopped engine.
    Resume(ResumeArgs),
    /// Operator actions on the store of a stopped engine.
    #[command(subcommand)]
    Store(StoreCommand),
    /// Replay historical bars through the strategies, risk rules and matching core.
    Backtest(Box<crate::backtest::BacktestArgs>),
    /// Market data files for backtests (`keel data convert`).
    #[command(subcommand)]
    Data(crate::cmd_data::DataCommand),
    /// Measure the live pipeline: market events per second and tick-to-order latency.
    Bench(crate::cmd_bench::BenchArgs),
    /// A one-shot ranked table of the venue's market: volume, change, funding, open interest.
    Scan(crate::cmd_scan::ScanArgs),
    /// Run the sandbox exchange standalone (the Binance protocol, or `--protocol coinbase`) until Ctrl-C or SIGTERM.
    Sandbox(crate::cmd_sandbox::SandboxArgs),
    /// List the strategy kinds with their parameters (name, type, default, valid range); `--json` for JSON.
    Strategies(crate::cmd_strategies::StrategiesArgs),
    /// Pine Script strategies: `keel pine check` (errors and repainting warnings), `keel pine plots` (plotted values as CSV).
    #[command(subcommand)]
    Pine(crate::cmd_pine::PineCommand),
}

/// `keel config …`.
#[derive(Debug, Clone, Subcommand)]
pub enum ConfigCommand {
    /// Print the default config compiled into the binary.
    Default,
}

/// `--config PATH`.
#[derive(Debug, Clone, clap::Args)]
pub struct ConfigArg {
    /// Config file (default: ./config.toml, else the built-in default).
    #[arg(long)]
    pub config: Option<PathBuf>,
}

/// `keel run`.
#[derive(Debug, Clone, clap::Args)]
pub struct RunArgs {
    /// Config file (default: ./config.toml, else the built-in default).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Data directory (overrides `engine.data_dir`).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Stop gracefully after this long (e.g. 30s, 5m).
    #[arg(long, value_parser = parse_duration)]
    pub exit_after: Option<std::time::Duration>,
    /// Refuse to start on a Pine script's repainting warnings (printed at start either way).
    #[arg(long)]
    pub strict: bool,
}

/// `keel state`.
#[derive(Debug, Clone, clap::Args)]
pub struct StateArgs {
    /// Config file, for the data directory (default: ./config.toml, else the built-in default).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Data directory (overrides the config).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
}

/// `keel halt`.
#[derive(Debug, Clone, clap::Args)]
pub struct HaltArgs {
    /// Why (recorded and shown).
    #[arg(long)]
    pub reason: String,
    /// Config file, for the data directory (default: ./config.toml, else the built-in default).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Data directory (overrides the config).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
}

/// `keel store …`.
#[derive(Debug, Clone, Subcommand)]
pub enum StoreCommand {
    /// Accept a store refused as `store_integrity` (lost, truncated or swapped
    /// data) as it is now: the venue is then the only record of what was lost.
    /// Sets the emergency stop, so the next start cancels what rests at the
    /// venue and waits for `keel resume`.
    Accept(StoreAcceptArgs),
}

/// `keel store accept`.
#[derive(Debug, Clone, clap::Args)]
pub struct StoreAcceptArgs {
    /// Why the store is accepted (recorded in the integrity record).
    #[arg(long)]
    pub reason: String,
    /// Config file, for the data directory (default: ./config.toml, else the built-in default).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Data directory (overrides the config).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
}

/// `keel resume`.
#[derive(Debug, Clone, clap::Args)]
pub struct ResumeArgs {
    /// Config file, for the data directory (default: ./config.toml, else the built-in default).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Data directory (overrides the config).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
}

fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    let ms = keel_core::config::parse_duration_ms(s)?;
    if ms <= 0 {
        return Err(format!("`{s}` must be longer than zero"));
    }
    Ok(std::time::Duration::from_millis(ms as u64))
}

fn parse_log_format(s: &str) -> Result<LogFormat, String> {
    match s {
        "text" => Ok(LogFormat::Text),
        "json" => Ok(LogFormat::Json),
        other => Err(format!("`{other}` is not a log format (text or json)")),
    }
}
