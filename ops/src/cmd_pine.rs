//! `keel pine …`: tools for Pine Script strategies before they trade.
//!
//! - `keel pine check FILE [--strict] [--input NAME=VALUE ...]` compiles a script and prints every
//!   error and repainting warning as `file:line:col: message`, then a summary (inputs with their
//!   defaults, plots, warm-up bars). Warnings alone exit 0; `--strict` makes them errors.
//! - `keel pine plots FILE --data BARS --out CSV` runs a script over a bar file the backtest reads
//!   and writes the plotted values per bar (`time` in ms, then one column per plot; `na` is empty),
//!   which `tools/pine_witness.py` compares with an independent Pine runtime.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context};
use clap::{Args, Subcommand};
use pine::{Compiled, Diagnostics, InputDecl, InputKind, InputValue, Program, Runner, StrategyState};

use crate::backtest::data;

/// `keel pine …`.
#[derive(Debug, Clone, Subcommand)]
pub enum PineCommand {
    /// Compile a Pine script: errors and repainting warnings as `file:line:col: message`, then its inputs, plots and warm-up.
    Check(CheckArgs),
    /// Run a Pine script over bars and write its plotted values per bar as CSV (strategy state reads flat: no broker yet).
    Plots(PlotsArgs),
}

/// `keel pine check`.
#[derive(Debug, Clone, Args)]
pub struct CheckArgs {
    /// The script (`.pine`).
    pub file: PathBuf,
    /// Repainting warnings count as errors (non-zero exit).
    #[arg(long)]
    pub strict: bool,
    /// Override an input, by variable name or title (repeatable): `--input fastLen=5`.
    #[arg(long = "input", value_name = "NAME=VALUE")]
    pub inputs: Vec<String>,
}

/// `keel pine plots`.
#[derive(Debug, Clone, Args)]
pub struct PlotsArgs {
    /// The script (`.pine`).
    pub file: PathBuf,
    /// Bars, in any format `keel backtest --data` reads (CSV, Binance zip, Parquet); one symbol.
    #[arg(long, value_name = "BARS")]
    pub data: PathBuf,
    /// The symbol of the data (default: from the file name, else the file holds one symbol).
    #[arg(long)]
    pub symbol: Option<String>,
    /// Override an input, by variable name or title (repeatable): `--input fastLen=5`.
    #[arg(long = "input", value_name = "NAME=VALUE")]
    pub inputs: Vec<String>,
    /// Where to write the CSV.
    #[arg(long, value_name = "CSV")]
    pub out: PathBuf,
}

/// Runs a `keel pine` command.
pub fn run(command: PineCommand) -> anyhow::Result<()> {
    match command {
        PineCommand::Check(args) => check(&args),
        PineCommand::Plots(args) => plots(&args),
    }
}

fn check(args: &CheckArgs) -> anyhow::Result<()> {
    let (label, src) = read_script(&args.file)?;
    let compiled = match compile_with_inputs(&src, &label, &args.inputs)? {
        Ok(c) => c,
        Err(diags) => {
            println!("{diags}");
            let errors = diags.0.iter().filter(|d| d.severity == pine::Severity::Error).count();
            bail!("{label}: {errors} error(s)");
        }
    };
    for w in &compiled.warnings {
        println!("{w}");
    }
    println!("{}", summary(&compiled.program));
    if args.strict && !compiled.warnings.is_empty() {
        bail!("{label}: {} repainting warning(s), errors under --strict", compiled.warnings.len());
    }
    Ok(())
}

fn plots(args: &PlotsArgs) -> anyhow::Result<()> {
    let (label, src) = read_script(&args.file)?;
    let compiled = match compile_with_inputs(&src, &label, &args.inputs)? {
        Ok(c) => c,
        Err(diags) => bail!("{diags}"),
    };
    let series = load_one_series(&args.data, args.symbol.as_deref())?;
    let program = Arc::new(compiled.program);
    // No broker emulation yet: the script sees a flat position and its initial capital.
    let state = StrategyState {
        position_avg_price: f64::NAN,
        equity: program.decl().initial_capital.parse().unwrap_or(f64::NAN),
        ..StrategyState::default()
    };
    // The data's bar interval is the chart's: `request.security` builds higher timeframes from it.
    let mut runner =
        Runner::with_base_interval(Arc::clone(&program), series.interval_ms).map_err(|d| anyhow::anyhow!("{d}"))?;
    let out = std::fs::File::create(&args.out).with_context(|| format!("cannot create {}", args.out.display()))?;
    let mut w = csv::Writer::from_writer(std::io::BufWriter::new(out));
    let mut header = vec!["time".to_string()];
    header.extend(program.plots().iter().map(|p| p.title.clone()));
    w.write_record(&header)?;
    let bars = &series.bars;
    let price = |col: &data::columns::DecimalColumn, i: usize| scaled_to_f64(col.value(i), col.scale());
    let mut row: Vec<String> = Vec::with_capacity(header.len());
    for i in 0..bars.len() {
        let bar = pine::Bar {
            time: bars.open_time(i),
            open: price(&bars.open, i),
            high: price(&bars.high, i),
            low: price(&bars.low, i),
            close: price(&bars.close, i),
            volume: price(&bars.volume, i),
        };
        let output = runner.step(&bar, &state).map_err(|d| anyhow::anyhow!("bar {i} (time {}): {d}", bar.time))?;
        row.clear();
        row.push(bar.time.to_string());
        row.extend(output.plots.iter().map(|v| if v.is_nan() { String::new() } else { v.to_string() }));
        w.write_record(&row)?;
    }
    w.flush().with_context(|| format!("cannot write {}", args.out.display()))?;
    eprintln!("{label}: {} bars, {} plots -> {}", bars.len(), program.plots().len(), args.out.display());
    Ok(())
}

/// A scaled integer as the nearest f64: when both parts are exact in f64 (|mantissa| < 2^53, as
/// every price is; scale ≤ 22) the one division rounds once, as parsing the decimal text would.
fn scaled_to_f64(mantissa: i64, scale: u32) -> f64 {
    mantissa as f64 / 10f64.powi(scale as i32)
}

fn read_script(path: &Path) -> anyhow::Result<(String, String)> {
    let label = path.display().to_string();
    let src = std::fs::read_to_string(path).with_context(|| format!("cannot read {label}"))?;
    Ok((label, src))
}

/// Compiles with `--input NAME=VALUE` overrides, each parsed as the kind of the input it names
/// (known from a first compilation with the defaults). The outer error is a bad flag; the inner
/// one the script's diagnostics.
fn compile_with_inputs(src: &str, label: &str, flags: &[String]) -> anyhow::Result<Result<Compiled, Diagnostics>> {
    let defaults = match pine::compile(src, Some(label), &[]) {
        Ok(c) => c,
        Err(d) => return Ok(Err(d)),
    };
    if flags.is_empty() {
        return Ok(Ok(defaults));
    }
    let mut overrides = Vec::with_capacity(flags.len());
    for flag in flags {
        let Some((name, value)) = flag.split_once('=') else {
            bail!("--input {flag}: expected NAME=VALUE");
        };
        let decl = defaults.program.inputs().iter().find(|i| i.name == name || i.title.as_deref() == Some(name));
        // An unknown name goes to the compiler as text, which names the script's inputs in its refusal.
        let parsed = match decl {
            Some(d) => parse_input(d, value).with_context(|| format!("--input {flag}"))?,
            None => InputValue::Str(value.to_string()),
        };
        overrides.push((name.to_string(), parsed));
    }
    Ok(pine::compile(src, Some(label), &overrides))
}

fn parse_input(decl: &InputDecl, value: &str) -> anyhow::Result<InputValue> {
    Ok(match decl.kind {
        InputKind::Int => InputValue::Int(value.trim().parse().with_context(|| format!("'{value}' is not an int"))?),
        InputKind::Float => {
            InputValue::Float(value.trim().parse().with_context(|| format!("'{value}' is not a number"))?)
        }
        InputKind::Bool => match value.trim() {
            "true" => InputValue::Bool(true),
            "false" => InputValue::Bool(false),
            _ => bail!("'{value}' is not true or false"),
        },
        InputKind::String | InputKind::Source => InputValue::Str(value.to_string()),
    })
}

/// One line: `inputs: name=default (title), ...; plots: a, b; warm-up: N bars`.
fn summary(program: &Program) -> String {
    let inputs: Vec<String> = program
        .inputs()
        .iter()
        .map(|i| {
            let mut s = format!("{}={}", i.name, show_value(&i.default));
            if i.value != i.default {
                s.push_str(&format!(" (set to {})", show_value(&i.value)));
            }
            s
        })
        .collect();
    let plots: Vec<&str> = program.plots().iter().map(|p| p.title.as_str()).collect();
    format!(
        "inputs: {}; plots: {}; warm-up: {} bars",
        if inputs.is_empty() { "none".to_string() } else { inputs.join(", ") },
        if plots.is_empty() { "none".to_string() } else { plots.join(", ") },
        program.warmup_bars()
    )
}

fn show_value(v: &InputValue) -> String {
    match v {
        InputValue::Int(i) => i.to_string(),
        InputValue::Float(f) => format!("{f:?}"),
        InputValue::Bool(b) => b.to_string(),
        InputValue::Str(s) => format!("\"{s}\""),
    }
}

/// Loads the bars of exactly one symbol.
fn load_one_series(path: &Path, symbol: Option<&str>) -> anyhow::Result<data::Series> {
    // A single file whose name tells no symbol holds one series: name it after the file.
    let fallback = (symbol.is_none() && path.is_file() && data::symbol_from_file_name(path).is_none())
        .then(|| path.file_stem().map(|s| s.to_string_lossy().to_string()).unwrap_or_else(|| "BARS".into()));
    let market = data::load(&[path.to_path_buf()], symbol.or(fallback.as_deref()), false)?;
    for note in market.notes() {
        eprintln!("{}: {note}", path.display());
    }
    let mut series = market.series;
    if series.len() != 1 {
        let names: Vec<&str> = series.iter().map(|s| s.symbol.as_str()).collect();
        bail!("{} holds {} symbols ({}); pass --symbol to pick one", path.display(), names.len(), names.join(", "));
    }
    Ok(series.remove(0))
}
