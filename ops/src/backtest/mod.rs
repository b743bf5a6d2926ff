//! `keel backtest`: replays historical bars through the live strategies, risk
//! rules and matching core, without actors.
//!
//! The same `[[strategy]]` blocks as live are built by the strategies
//! registry and driven by the engine's `StrategyRunner`; every intent passes
//! the live `risk::RiskEngine`; orders fill in the engine's `MatchingCore`
//! under the bar fill model described in [`sim`]. Data loading is in [`data`],
//! statistics in [`report`], the chart in [`plot`], parameter sweeps in
//! [`sweep`], overfitting signals in [`overfit`].
//!
//! A run is two steps: [`Setup::read`] and [`Setup::load`] read the config
//! and the bars once into a [`Prepared`]; [`Prepared::run`] builds nothing but
//! the strategies, so a sweep runs it once per combination of parameters,
//! sharing the `Prepared` between threads.

pub mod data;
pub mod equity;
pub mod overfit;
pub mod plot;
pub mod report;
pub mod sim;
pub mod sweep;
#[cfg(test)]
pub(crate) mod test_pine;

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use crate::config::Config;
use crate::settings::ConfigSource;
use anyhow::{bail, Context};
use keel_core::balance::Balance;
use keel_core::config::StrategyConfig;
use keel_core::futures::FuturesEvent;
use keel_core::instrument::Instrument;
use keel_core::sim::FeeSchedule;
use keel_core::strategy::{Signal, SignalAction};
use keel_core::{Decimal, StrategyId, Symbol};

use self::data::{parse_time, MarketData, Series};
use self::sim::{Backtest, SimConfig, StrategySlot, TimedSignal, Timeline};

/// `keel backtest` flags.
#[derive(Debug, Clone, clap::Args)]
pub struct BacktestArgs {
    /// Bars: CSV, Binance kline .zip or Parquet file(s), or directories of them (repeat the flag or list several).
    #[arg(long = "data", value_name = "PATH", required_unless_present = "merge", num_args = 1..)]
    pub data: Vec<PathBuf>,
    /// Config with the `[[strategy]]`, `[[symbol]]`, `[balances]` and `[risk]` to use
    /// (default: ./config.toml, else the built-in default config).
    #[arg(long, value_name = "PATH")]
    pub config: Option<PathBuf>,
    /// Run only this strategy id (repeatable; default: every strategy not paused).
    #[arg(long = "strategy", value_name = "ID")]
    pub strategy: Vec<String>,
    /// The symbol of the data (default: from each file name, e.g. `BTCUSDT-1h.csv`).
    #[arg(long, value_name = "SYMBOL")]
    pub symbol: Option<String>,
    /// Maker and taker fee in basis points (default: the config's venue fees).
    #[arg(long = "fee-bps", value_name = "N")]
    pub fee_bps: Option<Decimal>,
    /// Slippage in basis points on orders filled at a bar's open (default 0).
    #[arg(long = "slippage-bps", value_name = "N")]
    pub slippage_bps: Option<Decimal>,
    /// First bar to use (ISO date, date-time or epoch ms; inclusive).
    #[arg(long, value_name = "DATE")]
    pub from: Option<String>,
    /// Last bar to use (inclusive; a date includes that whole day).
    #[arg(long, value_name = "DATE")]
    pub to: Option<String>,
    /// Write the report as JSON.
    #[arg(long, value_name = "OUT.json")]
    pub report: Option<PathBuf>,
    /// Write every round trip as CSV.
    #[arg(long, value_name = "OUT.csv")]
    pub trades: Option<PathBuf>,
    /// Draw the equity curve as a PNG (with --sweep: the rank metric over the swept parameters).
    #[arg(long, value_name = "OUT.png")]
    pub plot: Option<PathBuf>,
    /// Skip and count bad CSV rows instead of stopping at the first.
    #[arg(long)]
    pub skip_bad_rows: bool,
    /// Signals for `webhook` strategies: CSV with `time,symbol,action[,qty]`
    /// (action buy, sell or close).
    #[arg(long, value_name = "PATH")]
    pub signals: Option<PathBuf>,
    /// Funding and open-interest history: CSV (also zipped) or Parquet file(s), or
    /// directories of them (repeatable; the formats are in the README's
    /// Backtest section). Each event reaches the strategies trading its
    /// symbol in time order with the bars, as live.
    #[arg(long = "futures", value_name = "PATH", num_args = 1..)]
    pub futures: Vec<PathBuf>,
    /// Parameter sweeps: `--sweep`, `--rank`, `--top`, `--sweep-out`, `--shard`, `--merge`, `--split`.
    #[command(flatten)]
    pub sweep: sweep::SweepArgs,
}

/// Starting balance of each quote asset when the config has no `[balances]`.
pub const DEFAULT_BALANCE: Decimal = Decimal::from_parts(10_000, 0, 0, false, 0);

/// What a finished backtest produced (for callers and tests).
pub struct BacktestResult {
    /// The report.
    pub report: report::Report,
    /// Round trips.
    pub trades: Vec<report::RoundTrip>,
    /// Entry times of trades still open at the end.
    pub open_entries: Vec<i64>,
    /// The raw outcome.
    pub outcome: sim::Outcome,
}

/// Runs `keel backtest`: prints the report and writes the requested files.
pub fn run(args: BacktestArgs, registry: &strategies::StrategyRegistry) -> anyhow::Result<()> {
    if !args.sweep.merge.is_empty() {
        return sweep::merge(&args);
    }
    if !args.sweep.sweep.is_empty() {
        return sweep::run(&args, registry);
    }
    args.sweep.refuse_without_sweep()?;
    let (result, free_inputs, prepared) = execute(&args, registry)?;
    let overfitting = overfit::Overfitting::new(free_inputs, result.report.round_trips);
    print!("{}{}", result.report.table(), overfitting.table());
    write_files(&args, &result, &overfitting)?;
    if let Some(path) = &args.plot {
        let title = format!(
            "{} on {} — return {}, max drawdown {:.2}%",
            result.report.strategies.join(", "),
            result.report.symbols.join(", "),
            result.report.total_return.map(|r| format!("{:.2}%", r * 100.0)).unwrap_or_else(|| "n/a".into()),
            result.report.max_drawdown * 100.0
        );
        plot::draw(path, &title, &result.outcome.equity, &result.trades, &result.open_entries)
            .map_err(|e| anyhow::anyhow!("cannot draw {}: {e}", path.display()))?;
        println!("plot: {}", path.display());
    }
    // The command ends here and the process with it: the bars, the run's records and the
    // report (tens of MB in thousands of pages) are left to the exit rather than freed one by
    // one, each large one a `munmap` that interrupts the other cores to flush their TLBs.
    std::mem::forget((result, prepared));
    Ok(())
}

/// The JSON report: the report's keys, then `overfitting`.
#[derive(serde::Serialize)]
struct Written<'a> {
    #[serde(flatten)]
    report: &'a report::Report,
    overfitting: &'a overfit::Overfitting,
}

/// Writes `--report` and `--trades` (a single run, or a sweep's best).
fn write_files(args: &BacktestArgs, result: &BacktestResult, overfitting: &overfit::Overfitting) -> anyhow::Result<()> {
    if let Some(path) = &args.report {
        let file = std::fs::File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
        let written = Written { report: &result.report, overfitting };
        serde_json::to_writer_pretty(std::io::BufWriter::new(file), &written)
            .with_context(|| format!("cannot write {}", path.display()))?;
        println!("report: {}", path.display());
    }
    if let Some(path) = &args.trades {
        let file = std::fs::File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
        report::write_trades(std::io::BufWriter::new(file), &result.trades)
            .with_context(|| format!("cannot write {}", path.display()))?;
        println!("trades: {}", path.display());
    }
    Ok(())
}

/// Loads, simulates and builds the report without writing anything; also
/// gives the run's free inputs (see [`overfit::configured_inputs`]) and the
/// loaded bars.
pub fn execute(
    args: &BacktestArgs,
    registry: &strategies::StrategyRegistry,
) -> anyhow::Result<(BacktestResult, Vec<String>, Prepared)> {
    let setup = Setup::read(args)?;
    // Every block builds before the long load (templates on a placeholder symbol)...
    build_strategies(&setup.strategies, registry)?;
    let prepared = setup.load(args)?;
    // ...and runs as loaded, templates once per symbol of the data.
    let slots = build_strategies(&prepared.strategies, registry)?;
    let result = run_with_progress(&prepared, slots);
    let inputs = overfit::configured_inputs(&prepared.strategies, registry);
    Ok((result, inputs, prepared))
}

/// The config and the strategy blocks chosen to run: read before the bars,
/// so that mistakes in them are reported before a long load.
#[derive(Clone)]
pub struct Setup {
    /// Where the config came from.
    pub source: ConfigSource,
    /// The config.
    pub config: Config,
    /// The blocks to run, each with its index in the config (for error
    /// messages), as configured.
    pub strategies: Vec<(usize, StrategyConfig)>,
}

impl Setup {
    /// Reads the config and picks the strategies (`--strategy`, else every one not paused).
    pub fn read(args: &BacktestArgs) -> anyhow::Result<Self> {
        let source = ConfigSource::resolve(args.config.as_deref());
        if source == ConfigSource::BuiltIn {
            eprintln!("note: {}", source.describe());
        }
        let config = source.read()?;
        let strategies: Vec<(usize, StrategyConfig)> = if args.strategy.is_empty() {
            config.strategies.iter().cloned().enumerate().filter(|(_, s)| !s.paused).collect()
        } else {
            let mut v = Vec::new();
            for id in &args.strategy {
                match config.strategies.iter().enumerate().find(|(_, s)| &s.id == id) {
                    Some((index, found)) => v.push((index, found.clone())),
                    None => bail!(
                        "--strategy {id}: no such strategy in {} (configured: {})",
                        source,
                        config.strategies.iter().map(|s| s.id.as_str()).collect::<Vec<_>>().join(", ")
                    ),
                }
            }
            v
        };
        if strategies.is_empty() {
            bail!("no strategy to run: {source} has no [[strategy]] block that is not paused");
        }
        // A script that repaints backtests better than it trades: say so, as check-config does (a
        // refused script is its block's error when the strategies are built).
        let blocks: Vec<StrategyConfig> = strategies.iter().map(|(_, s)| s.clone()).collect();
        for w in crate::pine_warnings::of(&blocks).unwrap_or_default() {
            eprintln!("warning: {w}");
        }
        Ok(Self { source, config, strategies })
    }

    /// Loads the bars (and signals) and settles everything a run needs but
    /// the strategies. Notes about the data are printed here, once.
    pub fn load(self, args: &BacktestArgs) -> anyhow::Result<Prepared> {
        let Self { config, strategies, .. } = self;
        let mut market = data::load(&args.data, args.symbol.as_deref(), args.skip_bad_rows)?;
        for note in market.notes() {
            eprintln!("note: {note}");
        }
        filter_dates(&mut market, args.from.as_deref(), args.to.as_deref())?;

        let data_symbols: Vec<&str> = market.series.iter().map(|s| s.symbol.as_str()).collect();
        // A template (`symbols = "universe"`) runs on every symbol of the data.
        let strategies: Vec<(usize, StrategyConfig)> = strategies
            .into_iter()
            .flat_map(|(i, c)| match c.is_template() {
                true => data_symbols.iter().map(|s| (i, c.instance(s))).collect(),
                false => vec![(i, c)],
            })
            .collect();
        for (_, cfg) in &strategies {
            if !data_symbols.contains(&cfg.symbol.as_str()) {
                eprintln!(
                    "note: strategy {} trades {}, which has no data (data: {}); pass --symbol {} if the data is for it",
                    cfg.id,
                    cfg.symbol,
                    data_symbols.join(", "),
                    cfg.symbol
                );
            }
        }
        if !strategies.iter().any(|(_, c)| data_symbols.contains(&c.symbol.as_str())) {
            bail!(
                "none of the strategies ({}) trades a symbol in the data ({}); use --symbol to name the data's symbol",
                strategies.iter().map(|(_, c)| c.id.as_str()).collect::<Vec<_>>().join(", "),
                data_symbols.join(", ")
            );
        }

        let instruments: Vec<Instrument> = market
            .series
            .iter()
            .map(|s| config.symbol(&s.symbol).map(|c| c.instrument()).unwrap_or_else(|| permissive_instrument(s)))
            .collect();
        let currency = instruments.first().map(|i| i.quote_asset.clone()).unwrap_or_else(|| "USDT".into());
        let balances: Vec<Balance> = if config.balances.is_empty() {
            let mut quotes: Vec<&str> = instruments.iter().map(|i| i.quote_asset.as_str()).collect();
            quotes.dedup();
            quotes
                .into_iter()
                .map(|q| Balance { asset: q.to_string(), free: DEFAULT_BALANCE, locked: Decimal::ZERO })
                .collect()
        } else {
            config.balances.iter().map(|(a, v)| Balance { asset: a.clone(), free: *v, locked: Decimal::ZERO }).collect()
        };
        let fees = match args.fee_bps {
            Some(b) if b < Decimal::ZERO => bail!("--fee-bps must not be negative, got {b}"),
            Some(b) => FeeSchedule::new(b, b, config.venue.commission_asset),
            None => config.venue.fees(),
        };
        let slippage_bps = args.slippage_bps.unwrap_or_default();
        if slippage_bps < Decimal::ZERO || slippage_bps >= Decimal::from(10_000) {
            bail!("--slippage-bps must be between 0 and 10000, got {slippage_bps}");
        }
        let signals = match &args.signals {
            Some(path) => load_signals(path)?,
            None => Vec::new(),
        };
        let futures = load_futures(args, &data_symbols)?;

        let sim_config = SimConfig {
            instruments,
            balances,
            fees,
            slippage_bps,
            risk: config.risk.clone(),
            currency: currency.clone(),
        };
        let symbols: Vec<String> = market.series.iter().map(|s| s.symbol.to_string()).collect();
        let start_ms = market.series.iter().filter_map(Series::first_open_time).min().unwrap_or(0);
        let end_ms = market.series.iter().filter_map(Series::last_close_time).max().unwrap_or(0);
        let timeline = Timeline::from_columns(market.series.into_iter().map(|s| (s.symbol, s.bars)).collect());
        for asset in Backtest::new(sim_config.clone(), timeline.symbols(), Vec::new()).unpriced_assets() {
            eprintln!("note: {asset} has no price in {currency} in the data; it is valued at 0");
        }
        Ok(Prepared { strategies, sim_config, symbols, currency, start_ms, end_ms, timeline, signals, futures })
    }
}

/// Everything a backtest needs but the strategies: the bars, the simulation
/// settings and the signals. Read-only once loaded, so a sweep shares one
/// between threads.
pub struct Prepared {
    /// The strategy blocks to run, as configured (see [`Setup::strategies`]).
    pub strategies: Vec<(usize, StrategyConfig)>,
    sim_config: SimConfig,
    symbols: Vec<String>,
    currency: String,
    start_ms: i64,
    end_ms: i64,
    timeline: Timeline,
    signals: Vec<TimedSignal>,
    /// Funding and open-interest events, shared by every run of a sweep.
    futures: std::sync::Arc<[FuturesEvent]>,
}

/// Builds the strategies of the blocks (see [`Setup::strategies`]) through
/// `registry`; the
/// error names the block's key and what is wrong with it.
pub fn build_strategies(
    blocks: &[(usize, StrategyConfig)],
    registry: &strategies::StrategyRegistry,
) -> Result<Vec<StrategySlot>, strategies::StrategyConfigError> {
    blocks
        .iter()
        .map(|(index, cfg)| {
            let exits = strategies::registry::exits(*index, cfg)?;
            Ok(StrategySlot { id: StrategyId::new(&cfg.id), strategy: registry.build(*index, cfg)?, exits })
        })
        .collect()
}

impl Prepared {
    /// Replays the bars through `slots` and builds the report; `progress` is
    /// told the number of bars done now and then. For a run that has the
    /// machine to itself: strategies that can work ahead on a thread of their
    /// own do ([`Backtest::foreseeing`]).
    pub fn run(&self, slots: Vec<StrategySlot>, progress: impl FnMut(usize)) -> BacktestResult {
        self.run_with(slots, progress, true)
    }

    /// [`Prepared::run`] for one of many runs side by side (a sweep's grid):
    /// every strategy on the run's own thread.
    pub fn run_in_pool(&self, slots: Vec<StrategySlot>) -> BacktestResult {
        self.run_with(slots, |_| {}, false)
    }

    fn run_with(&self, slots: Vec<StrategySlot>, progress: impl FnMut(usize), foresee: bool) -> BacktestResult {
        let strategy_ids: Vec<String> = slots.iter().map(|s| s.id.to_string()).collect();
        let backtest =
            Backtest::new(self.sim_config.clone(), self.timeline.symbols(), slots).with_futures(self.futures.clone());
        let instruments = &self.sim_config.instruments;
        // The trades' statistics, once they are split: beside the curve's.
        let with_stats = |split: (Vec<report::RoundTrip>, Vec<i64>)| {
            let stats = report::TradeStats::of(&split.0, &strategy_ids);
            (split, stats)
        };
        let (outcome, ((trades, open_entries), trade_stats), curve) = if foresee {
            // With the machine to itself, the fills are split into trades on a
            // thread of their own while the run goes on (see `sim::fills`).
            let mut backtest = backtest.foreseeing();
            let feed = backtest.feed_fills();
            std::thread::scope(|scope| {
                let splitter = std::thread::Builder::new()
                    .name("keel-trades".into())
                    .spawn_scoped(scope, move || {
                        yield_to_the_run();
                        report::split_each(instruments, |push| feed.for_each(push))
                    })
                    .ok();
                let outcome = backtest.run(&self.timeline, &self.signals, progress);
                let (trades, curve) = rayon::join(
                    || {
                        with_stats(match splitter {
                            Some(splitter) => splitter.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic)),
                            // No thread could be started (the feed went with it): split them now.
                            None => report::split_each(instruments, |push| outcome.fills.for_each(push)),
                        })
                    },
                    || report::CurveStats::of(&outcome),
                );
                (outcome, trades, curve)
            })
        } else {
            let outcome = backtest.run(&self.timeline, &self.signals, progress);
            // The trades and the curve's statistics are independent: side by side.
            let (trades, curve) = rayon::join(
                || with_stats(report::split_each(instruments, |push| outcome.fills.for_each(push))),
                || report::CurveStats::of(&outcome),
            );
            (outcome, trades, curve)
        };
        let report = report::build(
            &outcome,
            trade_stats,
            curve,
            self.symbols.clone(),
            strategy_ids,
            &self.currency,
            (self.start_ms, self.end_ms),
        );
        BacktestResult { report, trades, open_entries, outcome }
    }

    /// Number of bars a run replays.
    pub fn bars(&self) -> usize {
        self.timeline.len()
    }
}

/// Makes the calling thread run only on a core nothing else wants (Linux's
/// `SCHED_IDLE`), for work that should only take a core the run leaves idle.
/// Woken while both cores are busy, such a thread is often put on the
/// engine's: at nice 19 alone it still took a few ms from the engine there (on
/// the credit a thread that slept is given), where an idle-class thread waits
/// or is moved.
fn yield_to_the_run() {
    // Policy and nice are per thread on Linux (elsewhere they would be the whole process's).
    #[cfg(target_os = "linux")]
    {
        use thread_priority::{
            set_thread_priority_and_policy, thread_native_id, NormalThreadSchedulePolicy as Normal, ThreadPriority,
            ThreadSchedulePolicy as Policy,
        };
        let me = thread_native_id();
        // Else the lowest priority of the usual policy (nice 19); failing both leaves the
        // thread as it was: it may then slow the run a little.
        if set_thread_priority_and_policy(me, ThreadPriority::Min, Policy::Normal(Normal::Idle)).is_err() {
            let _ = set_thread_priority_and_policy(me, ThreadPriority::Min, Policy::Normal(Normal::Other));
        }
    }
}

/// [`Prepared::run`] with a progress bar on stderr when it is a terminal.
fn run_with_progress(prepared: &Prepared, slots: Vec<StrategySlot>) -> BacktestResult {
    if !std::io::stderr().is_terminal() {
        return prepared.run(slots, |_| {});
    }
    let bar =
        indicatif::ProgressBar::with_draw_target(Some(prepared.bars() as u64), indicatif::ProgressDrawTarget::stderr());
    if let Ok(style) = indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} bars {per_sec} eta {eta}") {
        bar.set_style(style);
    }
    let result = prepared.run(slots, |n| bar.set_position(n as u64));
    bar.finish_and_clear();
    result
}

/// Reads `--futures`: the events of the data's symbols within `--from` and
/// `--to`, in delivery order; events of other symbols are dropped with one
/// warning.
fn load_futures(args: &BacktestArgs, data_symbols: &[&str]) -> anyhow::Result<std::sync::Arc<[FuturesEvent]>> {
    if args.futures.is_empty() {
        return Ok(std::sync::Arc::from(Vec::new()));
    }
    let mut history = data::futures::load_futures(&args.futures, args.skip_bad_rows)?;
    if history.skipped > 0 {
        eprintln!(
            "note: --futures: skipped {} bad rows, e.g. {}",
            history.skipped,
            history.skipped_examples.join("; ")
        );
    }
    let (from_ms, to_ms) = date_bounds(args.from.as_deref(), args.to.as_deref())?;
    history.events.retain(|e| (from_ms..=to_ms).contains(&e.ts_ms()));
    let mut unknown = std::collections::BTreeSet::new();
    history.events.retain(|e| {
        let known = data_symbols.contains(&e.symbol().as_str());
        if !known {
            unknown.insert(e.symbol().to_string());
        }
        known
    });
    if !unknown.is_empty() {
        eprintln!(
            "warning: --futures: ignoring the events of {} (no bars for them; data: {})",
            unknown.into_iter().collect::<Vec<_>>().join(", "),
            data_symbols.join(", ")
        );
    }
    Ok(std::sync::Arc::from(history.events))
}

/// Keeps bars whose open time is within `[from, to]`; a date-only `to`
/// includes its whole day.
fn filter_dates(market: &mut MarketData, from: Option<&str>, to: Option<&str>) -> anyhow::Result<()> {
    let (from_ms, to_ms) = date_bounds(from, to)?;
    for s in &mut market.series {
        s.bars.retain_open_times(from_ms, to_ms);
    }
    market.series.retain(|s| !s.bars.is_empty());
    if market.series.is_empty() {
        bail!("no bars between --from and --to");
    }
    Ok(())
}

/// `--from` and `--to` as an inclusive range of open times in ms (unbounded
/// where not given); a date-only `to` includes its whole day.
fn date_bounds(from: Option<&str>, to: Option<&str>) -> anyhow::Result<(i64, i64)> {
    let parse = |flag: &str, text: &str| {
        parse_time(text).ok_or_else(|| anyhow::anyhow!("{flag} `{text}` is not an ISO date, date-time or epoch ms"))
    };
    let from_ms = from.map(|t| parse("--from", t)).transpose()?.unwrap_or(i64::MIN);
    let to_ms = match to {
        Some(t) => {
            let ms = parse("--to", t)?;
            if chrono::NaiveDate::parse_from_str(t.trim(), "%Y-%m-%d").is_ok() {
                ms + 86_400_000 - 1
            } else {
                ms
            }
        }
        None => i64::MAX,
    };
    if from_ms > to_ms {
        bail!("--from is after --to");
    }
    Ok((from_ms, to_ms))
}

/// Quote assets recognised at the end of a symbol, longest first.
const QUOTES: &[&str] =
    &["FDUSD", "USDT", "USDC", "BUSD", "TUSD", "DAI", "USD", "EUR", "GBP", "TRY", "BRL", "BTC", "ETH", "BNB"];

/// Splits a symbol into base and quote assets (`BTCUSDT` → `BTC`, `USDT`);
/// a symbol without a known quote suffix is quoted in `USD`.
pub fn split_symbol(symbol: &str) -> (String, String) {
    for q in QUOTES {
        if let Some(base) = symbol.strip_suffix(q).filter(|b| !b.is_empty()) {
            return (base.to_string(), q.to_string());
        }
    }
    (symbol.to_string(), "USD".to_string())
}

/// Filters for a symbol that is not in the config: the tick is the finest
/// price precision in the data, the step 10⁻⁸ or the volume's precision if
/// finer, and there is no minimum notional or maximum.
pub fn permissive_instrument(series: &Series) -> Instrument {
    let tick = Decimal::new(1, series.price_scale.min(18));
    let step = Decimal::new(1, series.qty_scale.clamp(8, 18));
    let (base, quote) = split_symbol(&series.symbol);
    Instrument::with_steps(series.symbol.clone(), base, quote, tick, step)
}

/// Reads a signal file: CSV with a header naming a time column (as for bars),
/// `symbol`, `action` (`buy`, `sell`, `close`) and optionally `qty`.
pub fn load_signals(path: &Path) -> anyhow::Result<Vec<TimedSignal>> {
    let label = path.display().to_string();
    let file = std::fs::File::open(path).with_context(|| format!("cannot open {label}"))?;
    parse_signals(std::io::BufReader::new(file), &label)
}

/// Parses signal CSV text (see [`load_signals`]); sorted by time.
pub fn parse_signals(input: impl std::io::Read, label: &str) -> anyhow::Result<Vec<TimedSignal>> {
    let mut reader = csv::ReaderBuilder::new().trim(csv::Trim::All).flexible(true).from_reader(input);
    let headers: Vec<String> = reader
        .headers()
        .with_context(|| format!("{label}: no header"))?
        .iter()
        .map(|h| h.to_ascii_lowercase())
        .collect();
    let col = |names: &[&str]| headers.iter().position(|h| names.contains(&h.as_str()));
    let (Some(t), Some(sym), Some(act)) =
        (col(&["timestamp", "date", "time", "datetime"]), col(&["symbol"]), col(&["action", "side"]))
    else {
        bail!("{label}: the header needs a time column, `symbol` and `action` (got {})", headers.join(","));
    };
    let qty_col = col(&["qty", "quantity"]);
    let mut out = Vec::new();
    for record in reader.records() {
        let record = record.with_context(|| format!("{label}: unreadable CSV"))?;
        let line = record.position().map(|p| p.line()).unwrap_or(0);
        let field = |i: usize| record.get(i).unwrap_or("");
        let ts_ms =
            parse_time(field(t)).ok_or_else(|| anyhow::anyhow!("{label}:{line}: time `{}` is not a time", field(t)))?;
        let action = match field(act).to_ascii_lowercase().as_str() {
            "buy" => SignalAction::Buy,
            "sell" => SignalAction::Sell,
            "close" => SignalAction::Close,
            other => bail!("{label}:{line}: action `{other}` is not buy, sell or close"),
        };
        let qty = match qty_col.map(field).filter(|q| !q.is_empty()) {
            Some(q) => Some(
                q.parse::<Decimal>()
                    .ok()
                    .filter(|d| *d > Decimal::ZERO)
                    .ok_or_else(|| anyhow::anyhow!("{label}:{line}: qty `{q}` is not a positive number"))?,
            ),
            None => None,
        };
        let symbol = Symbol::new(&field(sym).to_ascii_uppercase());
        out.push(TimedSignal { ts_ms, signal: Signal { symbol, action, qty } });
    }
    out.sort_by_key(|s| s.ts_ms);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The splitting thread asks for the idle class, and gets it (lowering a
    /// thread's class needs no privilege); other threads are left alone.
    #[cfg(target_os = "linux")]
    #[test]
    fn background_work_runs_in_the_idle_class() {
        use thread_priority::{thread_schedule_policy, NormalThreadSchedulePolicy, ThreadSchedulePolicy};
        let idle = ThreadSchedulePolicy::Normal(NormalThreadSchedulePolicy::Idle);
        let policy = std::thread::spawn(|| {
            yield_to_the_run();
            thread_schedule_policy()
        })
        .join()
        .unwrap();
        assert_eq!(policy.unwrap(), idle);
        assert_ne!(thread_schedule_policy().unwrap(), idle, "only the thread that asked");
    }

    #[test]
    fn symbols_split_into_assets() {
        for (s, base, quote) in [
            ("BTCUSDT", "BTC", "USDT"),
            ("ETHBTC", "ETH", "BTC"),
            ("SOLFDUSD", "SOL", "FDUSD"),
            ("AAPL", "AAPL", "USD"),
        ] {
            assert_eq!(split_symbol(s), (base.to_string(), quote.to_string()), "{s}");
        }
    }

    #[test]
    fn signal_file() {
        let text = "time,symbol,action,qty\n2024-01-02,btcusdt,BUY,0.5\n2024-01-01,BTCUSDT,close,\n";
        let got = parse_signals(text.as_bytes(), "s.csv").unwrap();
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].signal.action, SignalAction::Close);
        assert_eq!(got[1].signal.qty, Some(Decimal::new(5, 1)));
        assert_eq!(got[1].signal.symbol.as_str(), "BTCUSDT");
        let err = parse_signals("time,symbol,action\n2024-01-01,X,hold\n".as_bytes(), "s.csv").unwrap_err();
        assert_eq!(err.to_string(), "s.csv:2: action `hold` is not buy, sell or close");
    }
}
