//! `keel data`: market data files for backtests.
//!
//! `keel data convert IN... --out DIR` reads whatever `keel backtest --data`
//! reads (CSV, Binance kline `.zip`, Parquet, directories of them) and writes
//! one Parquet file per symbol, `DIR/SYMBOL-INTERVAL.parquet`, each written
//! to a temporary file in `DIR` and renamed into place, so a reader never
//! sees half a file.
//!
//! `keel data download …` fetches klines (Binance, Coinbase), funding and
//! open interest (Binance USD-M) into the same files ([`crate::download`]).

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;

use crate::backtest::data::{self, interval_name, parquet::write_parquet};
use crate::backtest::report::iso;

/// `keel data …`.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum DataCommand {
    /// Convert bars (CSV, Binance kline .zip, Parquet, or directories of them)
    /// to Parquet, one file per symbol: DIR/SYMBOL-INTERVAL.parquet.
    Convert(ConvertArgs),
    /// Download Binance klines (REST or the public archives) or Coinbase
    /// candles, or Binance USD-M funding / open interest, into
    /// DIR/SYMBOL-INTERVAL.parquet|csv; resumable, closed bars only, gaps listed.
    Download(crate::download::DownloadArgs),
}

/// `keel data convert`.
#[derive(Debug, Clone, clap::Args)]
pub struct ConvertArgs {
    /// Input files or directories.
    #[arg(value_name = "IN", required = true, num_args = 1..)]
    pub inputs: Vec<PathBuf>,
    /// Directory for the Parquet files (created if missing).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// The symbol of the data (default: from each file name, e.g. `BTCUSDT-1m-2024-01.zip`).
    #[arg(long, value_name = "SYMBOL")]
    pub symbol: Option<String>,
    /// Skip and count bad rows instead of stopping at the first.
    #[arg(long)]
    pub skip_bad_rows: bool,
}

/// Runs a `keel data` command.
pub fn run(command: DataCommand) -> anyhow::Result<()> {
    match command {
        DataCommand::Convert(args) => convert(&args),
        DataCommand::Download(args) => crate::download::run(&args),
    }
}

/// Converts the inputs, printing one line per file written.
pub fn convert(args: &ConvertArgs) -> anyhow::Result<()> {
    let market = data::load(&args.inputs, args.symbol.as_deref(), args.skip_bad_rows)?;
    for note in market.notes() {
        eprintln!("note: {note}");
    }
    std::fs::create_dir_all(&args.out).with_context(|| format!("cannot create {}", args.out.display()))?;
    let mut stdout = std::io::stdout().lock();
    for series in &market.series {
        let path = args.out.join(format!("{}-{}.parquet", series.symbol, interval_name(series.interval_ms)));
        let label = path.display().to_string();
        let bytes = crate::download::write::write_atomically(&path, |out| write_parquet(series, out))?;
        let bars = &series.bars;
        let (first, last) = (bars.open_time(0), bars.open_time(bars.len() - 1));
        writeln!(stdout, "{label}: {} rows, {bytes} bytes, {} .. {}", bars.len(), iso(first), iso(last))?;
    }
    Ok(())
}
