//! Overfitting signals in backtest reports (the `overfitting` key of the JSON
//! report and the block under the text report):
//!
//! - **Free inputs against closed trades.** Every parameter the result was
//!   fitted with (the axes a sweep varied; for a plain backtest, the numeric
//!   parameters written in the strategies' `params`) is a degree of freedom
//!   the trades must pay for. Fewer than [`MIN_TRADES_PER_INPUT`] closed
//!   trades per free input is flagged. Ten is the "one in ten" rule of
//!   regression modelling (Peduzzi et al., *J Clin Epidemiol* 49(12), 1996:
//!   below ten events per fitted variable estimates were biased and their
//!   confidence intervals wrong), which the traders' rule of thumb of 10–20
//!   trades per optimised parameter restates; ten is its lenient end, so a
//!   flag is a clear warning, not a matter of taste.
//! - **Walk-forward degradation** (`--split`): the in-sample best's figures
//!   against the same parameters out of sample. The degradation of an
//!   annualised figure (CAGR, Sharpe; annualised so periods of different
//!   lengths compare) is `(in − out) / in`, defined when the in-sample figure
//!   is positive. Beyond `--max-degradation` (default
//!   [`DEFAULT_MAX_DEGRADATION`], 50%) it is flagged: out-of-sample returns
//!   below half the in-sample ones are Pardo's test of a failed walk-forward
//!   (walk-forward efficiency under 50%, *The Evaluation and Optimization of
//!   Trading Strategies*, 2nd ed., 2008).

use std::fmt::Write as _;

use keel_core::config::StrategyConfig;
use serde::Serialize;

use super::report::Report;
use super::sweep::metrics;

/// Closed trades per free input below which a report is flagged.
pub const MIN_TRADES_PER_INPUT: usize = 10;

/// The default `--max-degradation`: out of sample may lose up to half of an
/// in-sample figure before the walk-forward is flagged.
pub const DEFAULT_MAX_DEGRADATION: f64 = 0.5;

/// The overfitting signals of one report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Overfitting {
    /// The free inputs (`ID.PARAM`).
    pub free_inputs: Vec<String>,
    /// Closed trades (round trips) of the run the inputs were chosen on (in
    /// sample with `--split`).
    pub trades: usize,
    /// `trades / free inputs`; null without free inputs.
    pub trades_per_input: Option<f64>,
    /// The threshold ([`MIN_TRADES_PER_INPUT`]).
    pub min_trades_per_input: usize,
    /// Fewer closed trades per free input than the threshold.
    pub too_few_trades: bool,
    /// In sample against out of sample, with `--split`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub walk_forward: Option<WalkForward>,
}

/// The figures of one period of a walk-forward.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Sample {
    /// Total return (fraction).
    pub total_return: Option<f64>,
    /// Compound annual growth rate.
    pub cagr: Option<f64>,
    /// Annualised Sharpe ratio.
    pub sharpe: Option<f64>,
    /// Closed trades.
    pub round_trips: usize,
}

/// How much of an in-sample figure was lost out of sample: `(in − out) / in`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Degradation {
    /// Of the CAGR.
    pub cagr: Option<f64>,
    /// Of the Sharpe ratio.
    pub sharpe: Option<f64>,
}

/// In sample against out of sample for the chosen parameters.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WalkForward {
    /// The split date, as given.
    pub split: String,
    /// Before the split: where the parameters were chosen.
    pub in_sample: Sample,
    /// From the split on.
    pub out_of_sample: Sample,
    /// What was lost.
    pub degradation: Degradation,
    /// The threshold (`--max-degradation`).
    pub max_degradation: f64,
    /// A degradation beyond the threshold.
    pub degraded: bool,
}

impl Sample {
    /// From a row of [`metrics::METRICS`] values (a sweep row, or
    /// [`metrics::of`] a report).
    pub fn from_metrics(values: &[String]) -> Sample {
        let get = |name: &str| metrics::named(name).ok().and_then(|i| values.get(i)).and_then(|v| metrics::value(v));
        Sample {
            total_return: get("total_return"),
            cagr: get("cagr"),
            sharpe: get("sharpe"),
            round_trips: get("round_trips").map_or(0, |n| n as usize),
        }
    }

    /// From a report.
    pub fn of(report: &Report) -> Sample {
        Sample::from_metrics(&metrics::of(report))
    }
}

/// `(in − out) / in` when the in-sample figure is positive (a loss cannot
/// degrade); an out-of-sample figure the report leaves out (a flat equity
/// curve's Sharpe, a ruined account's CAGR) counts as no edge, 0.
pub fn degradation(in_sample: Option<f64>, out_of_sample: Option<f64>) -> Option<f64> {
    let is = in_sample.filter(|v| *v > 0.0)?;
    Some((is - out_of_sample.unwrap_or(0.0)) / is)
}

impl Overfitting {
    /// The trades-per-input signal for `free_inputs` fitted on `trades` closed trades.
    pub fn new(free_inputs: Vec<String>, trades: usize) -> Overfitting {
        let n = free_inputs.len();
        Overfitting {
            trades_per_input: (n > 0).then(|| trades as f64 / n as f64),
            too_few_trades: n > 0 && trades < MIN_TRADES_PER_INPUT * n,
            free_inputs,
            trades,
            min_trades_per_input: MIN_TRADES_PER_INPUT,
            walk_forward: None,
        }
    }

    /// Adds the walk-forward comparison.
    pub fn with_walk_forward(
        mut self,
        split: &str,
        in_sample: Sample,
        out_of_sample: Sample,
        max_degradation: f64,
    ) -> Overfitting {
        let degradation = Degradation {
            cagr: degradation(in_sample.cagr, out_of_sample.cagr),
            sharpe: degradation(in_sample.sharpe, out_of_sample.sharpe),
        };
        let degraded = [degradation.cagr, degradation.sharpe].iter().flatten().any(|d| *d > max_degradation);
        self.walk_forward = Some(WalkForward {
            split: split.to_string(),
            in_sample,
            out_of_sample,
            degradation,
            max_degradation,
            degraded,
        });
        self
    }

    /// The signals as lines under the report table; flags start `WARNING:`.
    pub fn table(&self) -> String {
        let mut out = String::from("Overfitting\n");
        let inputs = match self.free_inputs.len() {
            0 => "none".to_string(),
            n => format!("{n} ({})", self.free_inputs.join(", ")),
        };
        let _ = writeln!(out, "  Free inputs     {inputs}");
        let per = self.trades_per_input.map(|v| format!(", {v:.1} per free input")).unwrap_or_default();
        let sample = if self.walk_forward.is_some() { " in sample" } else { "" };
        let _ = writeln!(out, "  Closed trades   {}{sample}{per}", self.trades);
        if self.too_few_trades {
            let _ = writeln!(
                out,
                "WARNING: fewer than {} closed trades per free input: the result may fit noise",
                self.min_trades_per_input
            );
        }
        if let Some(w) = &self.walk_forward {
            let pct = |v: Option<f64>| v.map_or("n/a".to_string(), |v| format!("{:.2}%", v * 100.0));
            let num = |v: Option<f64>| v.map_or("n/a".to_string(), |v| format!("{v:.2}"));
            let lost = |d: Option<f64>| d.map(|d| format!(" (degradation {})", pct(Some(d)))).unwrap_or_default();
            let (i, o) = (&w.in_sample, &w.out_of_sample);
            let _ = writeln!(out, "  Walk-forward    in sample / out of sample, split {}", w.split);
            let _ = writeln!(out, "  Total return    {} / {}", pct(i.total_return), pct(o.total_return));
            let _ = writeln!(out, "  CAGR            {} / {}{}", pct(i.cagr), pct(o.cagr), lost(w.degradation.cagr));
            let _ =
                writeln!(out, "  Sharpe          {} / {}{}", num(i.sharpe), num(o.sharpe), lost(w.degradation.sharpe));
            let _ = writeln!(out, "  Round trips     {} / {}", i.round_trips, o.round_trips);
            if w.degraded {
                let _ = writeln!(
                    out,
                    "WARNING: out of sample lost more than {} of the in-sample figures (--max-degradation)",
                    pct(Some(w.max_degradation))
                );
            }
        }
        out
    }
}

/// The free inputs of a plain backtest: the numeric parameters written in
/// each block's `params` (a template's once, as `ID.PARAM`), blocks in
/// config order, a block's parameters by name; then the numeric parameters a
/// block declares of its own (a Pine script's int and float inputs, as
/// `ID.NAME`), written or not: a script's defaults are the values its author
/// fitted, where a built-in kind's defaults were fitted to no one's data.
/// A Pine block's `script` and `inputs` keys are not inputs.
pub fn configured_inputs(blocks: &[(usize, StrategyConfig)], registry: &strategies::StrategyRegistry) -> Vec<String> {
    let mut seen = Vec::new();
    let mut out = Vec::new();
    for (index, cfg) in blocks {
        if seen.contains(index) {
            continue;
        }
        seen.push(*index);
        let id = cfg.id.split('@').next().unwrap_or(&cfg.id);
        // The blocks were built before this runs, so their declarations read; the kind's as a fallback.
        let declared = registry
            .block_params(*index, cfg)
            .unwrap_or_else(|_| registry.params(&cfg.kind).unwrap_or_default().to_vec());
        for (key, value) in &cfg.params {
            let spec = declared.iter().find(|p| p.table.is_none() && p.name == *key);
            let numeric = match value {
                toml::Value::Integer(_) | toml::Value::Float(_) => spec.is_none_or(|p| p.kind.is_numeric()),
                // Decimals and durations are written as strings.
                toml::Value::String(_) => spec.is_some_and(|p| p.kind.is_numeric()),
                _ => false,
            };
            if numeric {
                out.push(format!("{id}.{key}"));
            }
        }
        for p in declared.iter().filter(|p| p.table.is_some() && p.kind.is_numeric()) {
            out.push(format!("{id}.{}", p.name));
        }
    }
    out
}

/// Checks `--max-degradation`: a positive fraction.
pub fn check_max_degradation(value: f64) -> anyhow::Result<f64> {
    if !(value.is_finite() && value > 0.0) {
        anyhow::bail!("--max-degradation must be a positive fraction (0.5 = 50%), got {value}");
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn too_few_trades_per_free_input_is_flagged() {
        let inputs = |n: usize| (0..n).map(|i| format!("s.p{i}")).collect::<Vec<_>>();
        for (name, n, trades, per, flagged) in [
            ("no free inputs: nothing to fit", 0, 0, None, false),
            ("two inputs, 19 trades", 2, 19, Some(9.5), true),
            ("two inputs, 20 trades: the threshold itself passes", 2, 20, Some(10.0), false),
            ("one input, 9 trades", 1, 9, Some(9.0), true),
            ("three inputs, 300 trades", 3, 300, Some(100.0), false),
        ] {
            let o = Overfitting::new(inputs(n), trades);
            assert_eq!((o.trades_per_input, o.too_few_trades), (per, flagged), "{name}");
            assert_eq!(o.table().contains("WARNING: fewer than 10 closed trades"), flagged, "{name}");
        }
    }

    #[test]
    fn walk_forward_degradation_beyond_the_threshold_is_flagged() {
        let s = |cagr: Option<f64>, sharpe: Option<f64>| Sample { total_return: cagr, cagr, sharpe, round_trips: 40 };
        for (name, is, oos, max, want, degraded) in [
            (
                "kept most of it",
                s(Some(0.2), Some(2.0)),
                s(Some(0.15), Some(1.5)),
                0.5,
                (Some(0.25), Some(0.25)),
                false,
            ),
            ("lost the Sharpe", s(Some(0.2), Some(2.0)), s(Some(0.15), Some(0.5)), 0.5, (Some(0.25), Some(0.75)), true),
            ("exactly the threshold passes", s(Some(0.2), None), s(Some(0.1), None), 0.5, (Some(0.5), None), false),
            (
                "a tighter threshold",
                s(Some(0.2), Some(2.0)),
                s(Some(0.15), Some(1.5)),
                0.2,
                (Some(0.25), Some(0.25)),
                true,
            ),
            ("turned to a loss", s(Some(0.1), Some(1.0)), s(Some(-0.1), Some(-1.0)), 0.5, (Some(2.0), Some(2.0)), true),
            (
                "flat out of sample: no edge",
                s(Some(0.1), Some(1.0)),
                s(Some(0.0), None),
                0.5,
                (Some(1.0), Some(1.0)),
                true,
            ),
            (
                "a loss in sample cannot degrade",
                s(Some(-0.1), Some(-1.0)),
                s(Some(-0.5), Some(-3.0)),
                0.5,
                (None, None),
                false,
            ),
            (
                "better out of sample",
                s(Some(0.1), Some(1.0)),
                s(Some(0.3), Some(2.0)),
                0.5,
                (Some(-2.0), Some(-1.0)),
                false,
            ),
        ] {
            let o = Overfitting::new(vec!["s.fast".into()], 40).with_walk_forward("2024-02-01", is, oos, max);
            let w = o.walk_forward.as_ref().unwrap();
            let close = |a: Option<f64>, b: Option<f64>| match (a, b) {
                (Some(a), Some(b)) => (a - b).abs() < 1e-12,
                (a, b) => a == b,
            };
            assert!(close(w.degradation.cagr, want.0) && close(w.degradation.sharpe, want.1), "{name}: {w:?}");
            assert_eq!(w.degraded, degraded, "{name}");
            assert_eq!(o.table().contains("WARNING: out of sample lost more than"), degraded, "{name}");
        }
    }

    #[test]
    fn configured_inputs_are_the_numeric_params_once_per_block() {
        let block = |id: &str, kind: &str, params: &str| StrategyConfig {
            id: id.into(),
            kind: kind.into(),
            symbol: "BTCUSDT".into(),
            symbols: None,
            paused: false,
            params: params.parse().unwrap(),
            exits: None,
        };
        let blocks = vec![
            (0, block("a", "sma_cross", "fast = 5\nslow = 20\nqty = \"0.1\"")),
            (1, block("t@BTCUSDT", "rsi_reversion", "period = 14\nbuy_below = 30.0")),
            (1, block("t@ETHUSDT", "rsi_reversion", "period = 14\nbuy_below = 30.0")),
            (2, block("w", "webhook", "note = \"hi\"\nflag = true")),
        ];
        assert_eq!(
            configured_inputs(&blocks, &strategies::StrategyRegistry::builtin()),
            ["a.fast", "a.qty", "a.slow", "t.buy_below", "t.period"]
        );
    }

    /// A Pine block's free inputs are its script's numeric inputs (set or
    /// not, by name or title), never its `script` path or `inputs` table.
    #[test]
    fn a_pine_blocks_free_inputs_are_its_scripts_numeric_inputs() {
        use crate::backtest::test_pine;
        let dir = tempfile::tempdir().unwrap();
        let blocks = vec![
            (0, test_pine::block(&dir, "p", "")),
            (1, test_pine::block(&dir, "q", "\"Fast length\" = 5, use = false")),
        ];
        assert_eq!(
            configured_inputs(&blocks, &strategies::StrategyRegistry::builtin()),
            ["p.fastLen", "p.k", "q.fastLen", "q.k"]
        );
    }

    #[test]
    fn max_degradation_must_be_a_positive_fraction() {
        assert_eq!(check_max_degradation(0.3).unwrap(), 0.3);
        for bad in [0.0, -0.5, f64::NAN, f64::INFINITY] {
            assert!(check_max_degradation(bad).unwrap_err().to_string().starts_with("--max-degradation must be"));
        }
    }
}
