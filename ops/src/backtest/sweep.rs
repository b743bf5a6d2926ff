//! Parameter sweeps: `keel backtest --sweep ID.PARAM=START..END[:STEP] …`
//! runs one backtest per combination of the swept values, on every core
//! (rayon; each run single-threaded), over bars loaded once and shared
//! read-only. Combinations the strategies refuse (e.g. `fast >= slow`) are
//! skipped and counted. The results are ranked by one report figure
//! (`--rank`), printed as a table, and written with `--sweep-out`; `--shard
//! I/N` runs one slice of the grid and `--merge` combines the slices' files.
//!
//! The grammar is in [`spec`], the figures in [`metrics`], the files in
//! [`results`], the chart in [`chart`], walk-forward (`--split`) in [`split`].

pub mod chart;
pub mod metrics;
pub mod results;
pub mod spec;
pub mod split;

use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Context};
use rayon::prelude::*;
use sha2::{Digest, Sha256};

use self::metrics::METRICS;
use self::results::{Format, Results, Row, Shard};
use self::spec::Grid;
use self::split::Split;
use super::overfit::{self, Overfitting, Sample};
use super::plot::axis_decimals;
use super::{build_strategies, data, report, write_files, BacktestArgs, Prepared, Setup};

/// The sweep flags of `keel backtest`.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct SweepArgs {
    /// Sweep a strategy parameter: `ID.PARAM=START..END[:STEP]` (END included
    /// when on the grid; STEP 1 by default for integers) or `ID.PARAM=a,b,c`;
    /// `ID@SYMBOL.PARAM` for one instance. Repeat for every combination.
    #[arg(long = "sweep", value_name = "ID.PARAM=VALUES")]
    pub sweep: Vec<String>,
    /// The report figure that ranks a sweep (default sharpe; max_drawdown and
    /// other costs rank lowest first, the rest highest first).
    #[arg(long, value_name = "METRIC")]
    pub rank: Option<String>,
    /// Rows of the ranked table to print (default 10).
    #[arg(long, value_name = "N")]
    pub top: Option<usize>,
    /// Write every combination with its parameters and figures (.csv or .json).
    #[arg(long = "sweep-out", value_name = "OUT.csv|OUT.json")]
    pub sweep_out: Option<PathBuf>,
    /// Run only slice I of N of the grid (1/N … N/N; combinations I, I+N, I+2N, …).
    #[arg(long, value_name = "I/N")]
    pub shard: Option<String>,
    /// Combine the `--sweep-out` files of a sweep's shards into one ranked
    /// table (needs no --data).
    #[arg(long, value_name = "FILE", num_args = 1..)]
    pub merge: Vec<PathBuf>,
    /// Walk-forward: choose the best combination on the bars before DATE, and
    /// report (and write with --report) its run on the bars from DATE on.
    #[arg(long, value_name = "DATE")]
    pub split: Option<String>,
    /// With --split: flag the out-of-sample CAGR or Sharpe falling by more
    /// than this fraction of the in-sample one (default 0.5 = 50%).
    #[arg(long = "max-degradation", value_name = "FRACTION")]
    pub max_degradation: Option<f64>,
}

impl SweepArgs {
    /// Refuses the sweep flags on a single run, in one line.
    pub fn refuse_without_sweep(&self) -> anyhow::Result<()> {
        if self.split.is_some() {
            bail!("--split needs --sweep");
        }
        if self.max_degradation.is_some() {
            bail!("--max-degradation needs --sweep and --split");
        }
        let given: Vec<&str> = [
            ("--rank", self.rank.is_some()),
            ("--top", self.top.is_some()),
            ("--sweep-out", self.sweep_out.is_some()),
            ("--shard", self.shard.is_some()),
        ]
        .into_iter()
        .filter_map(|(flag, set)| set.then_some(flag))
        .collect();
        if !given.is_empty() {
            bail!("{} needs --sweep (or --merge)", given.join(", "));
        }
        Ok(())
    }

    /// The rank metric's index in [`METRICS`].
    fn rank(&self) -> anyhow::Result<usize> {
        let name = self.rank.as_deref().unwrap_or("sharpe");
        metrics::named(name).map_err(|e| anyhow::anyhow!("--rank {e}"))
    }

    /// Checks `--top` and `--sweep-out` before any work.
    fn check_outputs(&self) -> anyhow::Result<()> {
        if self.top == Some(0) {
            bail!("--top must be at least 1");
        }
        if let Some(path) = &self.sweep_out {
            Format::of(path, "--sweep-out")?;
        }
        Ok(())
    }
}

/// Runs `keel backtest --sweep …`.
pub fn run(args: &BacktestArgs, registry: &strategies::StrategyRegistry) -> anyhow::Result<()> {
    let opts = &args.sweep;
    let rank = opts.rank()?;
    opts.check_outputs()?;
    let shard =
        opts.shard.as_deref().map(Shard::parse).transpose().map_err(anyhow::Error::msg)?.unwrap_or(Shard::WHOLE);
    let specs = opts.sweep.iter().map(|t| spec::parse(t)).collect::<Result<Vec<_>, _>>().map_err(anyhow::Error::msg)?;

    let split = opts.split.as_deref().map(|t| Split::new(args, t)).transpose()?;
    let max_degradation = match (opts.max_degradation, &split) {
        (Some(_), None) => bail!("--max-degradation needs --split"),
        (given, _) => overfit::check_max_degradation(given.unwrap_or(overfit::DEFAULT_MAX_DEGRADATION))?,
    };
    if split.is_some() && opts.shard.is_some() {
        bail!("--split chooses from the whole grid: it cannot run a --shard");
    }

    let setup = Setup::read(args)?;
    let configured = setup.config.strategies.clone();
    let grid = Grid::resolve(&specs, &setup.strategies, &configured, registry).map_err(anyhow::Error::msg)?;
    let fingerprint = fingerprint(args, &setup, &grid)?;
    // With --split, the setup is kept to load the out-of-sample bars later.
    let (prepared, setup) = match &split {
        Some(split) => {
            let prepared = setup
                .clone()
                .load(&split.in_sample)
                .with_context(|| format!("--split `{}`: the bars before it", split.text))?;
            (prepared, Some(setup))
        }
        None => (setup.load(args)?, None),
    };
    // Again on the loaded blocks: a template is now one instance per symbol.
    let grid = Grid::resolve(&specs, &prepared.strategies, &configured, registry).map_err(anyhow::Error::msg)?;

    let combinations: Vec<usize> = (0..grid.len()).filter(|c| shard.has(*c)).collect();
    let shard_note = if shard == Shard::WHOLE { String::new() } else { format!(" (shard {shard} of {})", grid.len()) };
    eprintln!(
        "sweep: {} combinations{shard_note} of {} bars on {} threads",
        combinations.len(),
        prepared.bars(),
        rayon::current_num_threads()
    );
    let started = Instant::now();
    let rows = run_grid(&prepared, &grid, &combinations, registry);
    let skipped: Vec<&Row> = rows.iter().filter(|r| r.result.is_err()).collect();
    let ran = rows.len() - skipped.len();
    eprintln!("sweep: ran {ran} in {:.1} s", started.elapsed().as_secs_f64());
    let names: Vec<String> = grid.axes.iter().map(|a| a.name.clone()).collect();
    if let Some(first) = skipped.first() {
        eprintln!(
            "sweep: skipped {} combinations the strategies refuse, e.g. {}: {}",
            skipped.len(),
            assignment(&names, &first.params),
            first.result.as_ref().err().map(String::as_str).unwrap_or_default()
        );
    }
    if ran == 0 {
        bail!("every combination was refused; see the reason above");
    }
    let results = Results { grid: fingerprint, shard, combinations: grid.len(), parameters: names, rows };
    if let Some(split) = &split {
        println!("In sample, before {}:", report::iso(split.at_ms));
    }
    let best = present(&results, opts, args.plot.as_deref(), rank)?;

    if let (Some(split), Some(setup)) = (&split, setup) {
        drop(prepared);
        let out_of_sample = setup
            .load(&split.out_of_sample)
            .with_context(|| format!("--split `{}`: the bars from it on", split.text))?;
        let grid =
            Grid::resolve(&specs, &out_of_sample.strategies, &configured, registry).map_err(anyhow::Error::msg)?;
        let slots = build_strategies(&grid.blocks(best.combination, &out_of_sample.strategies), registry)?;
        let result = out_of_sample.run(slots, |_| {});
        println!(
            "Out of sample, from {}, with the in-sample best {}:",
            report::iso(split.at_ms),
            assignment(&results.parameters, &best.params)
        );
        let in_sample = Sample::from_metrics(best.result.as_deref().unwrap_or_default());
        let overfitting = Overfitting::new(results.parameters.clone(), in_sample.round_trips).with_walk_forward(
            &split.text,
            in_sample,
            Sample::of(&result.report),
            max_degradation,
        );
        print!("{}{}", result.report.table(), overfitting.table());
        write_files(args, &result, &overfitting)?;
    } else {
        let overfitting = signals(&results, best);
        print!("{}", overfitting.table());
        if args.report.is_some() || args.trades.is_some() {
            // The best combination's full report: the same run as a single
            // backtest with these parameters in the config.
            let blocks = grid.blocks(best.combination, &prepared.strategies);
            let slots = build_strategies(&blocks, registry)?;
            println!("best: {}", assignment(&results.parameters, &best.params));
            write_files(args, &prepared.run(slots, |_| {}), &overfitting)?;
        }
    }
    Ok(())
}

/// Runs `keel backtest --merge FILE…`.
pub fn merge(args: &BacktestArgs) -> anyhow::Result<()> {
    let opts = &args.sweep;
    // Flags that choose what a run computes have no say over results already computed.
    let refused: Vec<&str> = [
        ("--data", !args.data.is_empty()),
        ("--config", args.config.is_some()),
        ("--strategy", !args.strategy.is_empty()),
        ("--symbol", args.symbol.is_some()),
        ("--fee-bps", args.fee_bps.is_some()),
        ("--slippage-bps", args.slippage_bps.is_some()),
        ("--from", args.from.is_some()),
        ("--to", args.to.is_some()),
        ("--skip-bad-rows", args.skip_bad_rows),
        ("--signals", args.signals.is_some()),
        ("--futures", !args.futures.is_empty()),
        ("--sweep", !opts.sweep.is_empty()),
        ("--shard", opts.shard.is_some()),
        ("--split", opts.split.is_some()),
        ("--max-degradation", opts.max_degradation.is_some()),
        ("--report", args.report.is_some()),
        ("--trades", args.trades.is_some()),
    ]
    .into_iter()
    .filter_map(|(flag, set)| set.then_some(flag))
    .collect();
    if !refused.is_empty() {
        bail!("--merge combines result files: it takes no {}", refused.join(", "));
    }
    let rank = opts.rank()?;
    opts.check_outputs()?;
    let files = opts.merge.iter().map(|p| Ok((p, Results::read(p)?))).collect::<anyhow::Result<Vec<_>>>()?;
    let merged = combine(&files)?;
    let best = present(&merged, opts, args.plot.as_deref(), rank)?;
    print!("{}", signals(&merged, best).table());
    eprintln!("merge: {} files, best {}", files.len(), assignment(&merged.parameters, &best.params));
    Ok(())
}

/// Combines shard files of one grid; refuses files of different grids and
/// missing or repeated shards, each in one line.
fn combine(files: &[(&PathBuf, Results)]) -> anyhow::Result<Results> {
    let Some((first_path, first)) = files.first() else { bail!("--merge needs at least one file") };
    let mut seen: Vec<Option<&PathBuf>> = vec![None; first.shard.count];
    for (path, r) in files {
        if r.grid != first.grid || r.parameters != first.parameters || r.combinations != first.combinations {
            bail!(
                "--merge: {} is from another grid than {} (grid {} vs {}): the data, config, flags or sweeps differ",
                path.display(),
                first_path.display(),
                r.grid,
                first.grid
            );
        }
        if r.shard.count != first.shard.count {
            bail!(
                "--merge: {} is shard {} but {} is shard {}: shards of one sweep share N",
                path.display(),
                r.shard,
                first_path.display(),
                first.shard
            );
        }
        if let Some(other) = seen[r.shard.index - 1].replace(path) {
            bail!("--merge: shard {} is given twice ({} and {})", r.shard, other.display(), path.display());
        }
    }
    let missing: Vec<String> = seen
        .iter()
        .enumerate()
        .filter(|(_, s)| s.is_none())
        .map(|(i, _)| Shard { index: i + 1, count: first.shard.count }.to_string())
        .collect();
    if !missing.is_empty() {
        let given: Vec<String> = files.iter().map(|(_, r)| r.shard.to_string()).collect();
        bail!("--merge: missing shard {} (given: {})", missing.join(", "), given.join(", "));
    }
    let mut rows: Vec<Row> = files.iter().flat_map(|(_, r)| r.rows.iter().cloned()).collect();
    rows.sort_by_key(|r| r.combination);
    let distinct = rows.windows(2).all(|w| w[0].combination != w[1].combination);
    if rows.len() != first.combinations || !distinct {
        bail!(
            "--merge: the files hold {} rows for the {} combinations of their grid (is a file cut short or edited?)",
            rows.len(),
            first.combinations
        );
    }
    Ok(Results {
        grid: first.grid.clone(),
        shard: Shard::WHOLE,
        combinations: first.combinations,
        parameters: first.parameters.clone(),
        rows,
    })
}

/// Runs every combination across the rayon pool, with a progress bar on a
/// terminal; rows in combination order.
fn run_grid(
    prepared: &Prepared,
    grid: &Grid,
    combinations: &[usize],
    registry: &strategies::StrategyRegistry,
) -> Vec<Row> {
    let bar = if std::io::stderr().is_terminal() {
        let bar = indicatif::ProgressBar::with_draw_target(
            Some(combinations.len() as u64),
            indicatif::ProgressDrawTarget::stderr(),
        );
        if let Ok(style) = indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} runs {per_sec} eta {eta}") {
            bar.set_style(style);
        }
        bar
    } else {
        indicatif::ProgressBar::hidden()
    };
    let rows = combinations
        .par_iter()
        .map(|&c| {
            let blocks = grid.blocks(c, &prepared.strategies);
            let result = match build_strategies(&blocks, registry) {
                Ok(slots) => Ok(metrics::of(&prepared.run_in_pool(slots).report)),
                Err(e) => Err(e.to_string()),
            };
            bar.inc(1);
            Row { combination: c, params: grid.values(c).iter().map(|v| v.to_string()).collect(), result }
        })
        .collect();
    bar.finish_and_clear();
    rows
}

/// The best row's overfitting signals: the swept parameters against its trades.
fn signals(results: &Results, best: &Row) -> Overfitting {
    let trades = Sample::from_metrics(best.result.as_deref().unwrap_or_default()).round_trips;
    Overfitting::new(results.parameters.clone(), trades)
}

/// `a.fast=5 a.slow=20`.
fn assignment(names: &[String], values: &[String]) -> String {
    names.iter().zip(values).map(|(n, v)| format!("{n}={v}")).collect::<Vec<_>>().join(" ")
}

/// The rows that ran, best first by metric `rank` (rows without a value
/// last; ties by combination).
fn ranked(results: &Results, rank: usize) -> Vec<&Row> {
    let lower = METRICS[rank].lower_is_better;
    let mut rows: Vec<(&Row, Option<f64>)> =
        results.rows.iter().filter_map(|r| r.result.as_ref().ok().map(|m| (r, metrics::value(&m[rank])))).collect();
    rows.sort_by(|(ra, a), (rb, b)| {
        let by_value = match (a, b) {
            (Some(a), Some(b)) if lower => a.total_cmp(b),
            (Some(a), Some(b)) => b.total_cmp(a),
            (Some(_), None) => std::cmp::Ordering::Less,
            (None, Some(_)) => std::cmp::Ordering::Greater,
            (None, None) => std::cmp::Ordering::Equal,
        };
        by_value.then(ra.combination.cmp(&rb.combination))
    });
    rows.into_iter().map(|(r, _)| r).collect()
}

/// Prints the ranked table and writes `--sweep-out` and the chart; returns the best row.
fn present<'a>(
    results: &'a Results,
    opts: &SweepArgs,
    plot: Option<&std::path::Path>,
    rank: usize,
) -> anyhow::Result<&'a Row> {
    let ranked = ranked(results, rank);
    let Some(best) = ranked.first().copied() else { bail!("no combination ran") };
    print!("{}", table(results, &ranked, rank, opts.top.unwrap_or(10)));
    if let Some(path) = &opts.sweep_out {
        results.write(path)?;
        println!("sweep results: {}", path.display());
    }
    if let Some(path) = plot {
        chart::draw(path, results, &ranked, rank)
            .map_err(|e| anyhow::anyhow!("cannot draw {}: {e}", path.display()))?;
        println!("plot: {}", path.display());
    }
    Ok(best)
}

/// The top `top` rows as an aligned table under a header that says the order.
fn table(results: &Results, ranked: &[&Row], rank: usize, top: usize) -> String {
    let metric = &METRICS[rank];
    let skipped = results.rows.iter().filter(|r| r.result.is_err()).count();
    let order = if metric.lower_is_better { "lowest first" } else { "highest first" };
    let mut out = format!(
        "Top {} of {} combinations ranked by {} ({order}){}\n",
        top.min(ranked.len()),
        ranked.len(),
        metric.name,
        if skipped > 0 { format!("; {skipped} skipped") } else { String::new() }
    );
    let shown: Vec<usize> = std::iter::once(rank)
        .chain(metrics::SHOWN.iter().filter_map(|n| metrics::named(n).ok()).filter(|i| *i != rank))
        .collect();
    let mut lines: Vec<Vec<String>> = vec![std::iter::once("#".to_string())
        .chain(results.parameters.iter().cloned())
        .chain(shown.iter().map(|i| METRICS[*i].name.to_string()))
        .collect()];
    let rows: Vec<&Vec<String>> = ranked.iter().take(top).filter_map(|r| r.result.as_ref().ok()).collect();
    // Each column's precision from its range, so that neighbouring rows differ.
    let decimals: Vec<usize> = shown
        .iter()
        .map(|i| {
            let values = rows.iter().filter_map(|r| metrics::shown_value(&METRICS[*i], &r[*i]));
            let (lo, hi) = values.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| (lo.min(v), hi.max(v)));
            axis_decimals(lo, hi, rows.len()).max(2)
        })
        .collect();
    for (n, (row, values)) in ranked.iter().zip(&rows).enumerate() {
        lines.push(
            std::iter::once((n + 1).to_string())
                .chain(row.params.iter().cloned())
                .chain(shown.iter().zip(&decimals).map(|(i, d)| metrics::show(&METRICS[*i], &values[*i], *d)))
                .collect(),
        );
    }
    let widths: Vec<usize> =
        (0..lines[0].len()).map(|c| lines.iter().map(|l| l[c].chars().count()).max().unwrap_or(0)).collect();
    for line in &lines {
        let cells: Vec<String> = line.iter().zip(&widths).map(|(cell, w)| format!("{cell:>w$}")).collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    out
}

/// What makes two sweeps the same grid: the data (file names and contents),
/// the config, the flags that change a run's result, and the swept values.
/// Paths are left out, so shards run on machines with their own copies merge.
fn fingerprint(args: &BacktestArgs, setup: &Setup, grid: &Grid) -> anyhow::Result<String> {
    let mut h = Sha256::new();
    let mut part = |bytes: &[u8]| {
        h.update((bytes.len() as u64).to_le_bytes());
        h.update(bytes);
    };
    part(b"keel-sweep/1");
    let content = |path: &std::path::Path| -> anyhow::Result<Vec<u8>> {
        let mut file = std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
        let mut hash = Sha256::new();
        std::io::copy(&mut file, &mut hash).with_context(|| format!("cannot read {}", path.display()))?;
        Ok(hash.finalize().to_vec())
    };
    for path in data::expand_paths(&args.data)? {
        part(path.file_name().map(|n| n.as_encoded_bytes()).unwrap_or_default());
        part(&content(&path)?);
    }
    if let Some(path) = &args.signals {
        part(&content(path)?);
    }
    for path in data::expand_paths(&args.futures)? {
        part(b"futures");
        part(path.file_name().map(|n| n.as_encoded_bytes()).unwrap_or_default());
        part(&content(&path)?);
    }
    part(&serde_json::to_vec(&setup.config).context("cannot fingerprint the config")?);
    let flags = (
        setup.strategies.iter().map(|(i, _)| i).collect::<Vec<_>>(),
        &args.symbol,
        args.fee_bps,
        args.slippage_bps,
        &args.from,
        &args.to,
        args.skip_bad_rows,
        &args.sweep.split,
    );
    part(format!("{flags:?}").as_bytes());
    for axis in &grid.axes {
        part(axis.name.as_bytes());
        part(format!("{:?}", axis.values.iter().map(|v| v.to_string()).collect::<Vec<_>>()).as_bytes());
    }
    Ok(hex::encode(&h.finalize()[..8]))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(combination: usize, sharpe: &str, drawdown: &str) -> Row {
        let mut m = vec![String::new(); METRICS.len()];
        m[metrics::named("sharpe").unwrap()] = sharpe.into();
        m[metrics::named("max_drawdown").unwrap()] = drawdown.into();
        Row { combination, params: vec![combination.to_string()], result: Ok(m) }
    }

    #[test]
    fn ranking_follows_the_metric_direction() {
        let results = Results {
            grid: "g".into(),
            shard: Shard::WHOLE,
            combinations: 5,
            parameters: vec!["s.fast".into()],
            rows: vec![
                row(0, "1.5", "0.30"),
                row(1, "", "0.10"),
                row(2, "2.5", "0.20"),
                Row { combination: 3, params: vec!["3".into()], result: Err("no".into()) },
                row(4, "1.5", "0.05"),
            ],
        };
        let order = |rank: &str| -> Vec<usize> {
            ranked(&results, metrics::named(rank).unwrap()).iter().map(|r| r.combination).collect()
        };
        assert_eq!(order("sharpe"), [2, 0, 4, 1], "highest first, ties by combination, none last");
        assert_eq!(order("max_drawdown"), [4, 1, 2, 0], "lowest first");
        let drawdown = metrics::named("max_drawdown").unwrap();
        let t = table(&results, &ranked(&results, drawdown), drawdown, 2);
        assert!(t.starts_with("Top 2 of 4 combinations ranked by max_drawdown (lowest first); 1 skipped\n"), "{t}");
    }
}
