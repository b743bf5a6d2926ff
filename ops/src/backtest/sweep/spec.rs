//! The `--sweep` grammar and the grid it spans.
//!
//! `ID.PARAM=VALUES` or `ID@SYMBOL.PARAM=VALUES`, where VALUES is
//! - a range `START..END[:STEP]`: START, START+STEP, … up to END, END
//!   included when it lies on the grid (`5..12:5` is 5, 10); STEP defaults to
//!   1 when START and END are integers and is required otherwise
//!   (`0.5..2.0:0.25`);
//! - or a list `a,b,c` (one value is a list of one).
//!
//! PARAM is one of the block's numeric parameters as the registry declares
//! them for that block ([`strategies::StrategyRegistry::block_params`]): for
//! a Pine block, one of its script's inputs, by variable name or by title,
//! written into `params.inputs` and checked against its `minval`/`maxval`.
//!
//! `ID.PARAM` sets the parameter of every strategy instance with that id;
//! `ID@SYMBOL.PARAM` only the one trading SYMBOL. Several flags span their
//! cartesian product, the first flag varying slowest.

use keel_core::config::StrategyConfig;
use keel_core::Decimal;
use rust_decimal::prelude::ToPrimitive;
use strategies::params::{ParamKind, ParamSpec};

/// Most values one flag may give.
const MAX_VALUES: usize = 100_000;
/// Most combinations a grid may span.
const MAX_COMBINATIONS: usize = 10_000_000;

/// One `--sweep` flag, parsed but not yet checked against the config.
#[derive(Debug, Clone, PartialEq)]
pub struct Spec {
    /// The flag's text, for messages.
    pub text: String,
    /// Strategy id.
    pub id: String,
    /// The one instance's symbol (`ID@SYMBOL`), or every instance.
    pub symbol: Option<String>,
    /// Parameter name.
    pub param: String,
    /// The values, exact and with the scale they were written or stepped with.
    pub values: Vec<Decimal>,
}

impl Spec {
    /// The column name: `ID.PARAM` or `ID@SYMBOL.PARAM`.
    pub fn name(&self) -> String {
        match &self.symbol {
            Some(symbol) => format!("{}@{symbol}.{}", self.id, self.param),
            None => format!("{}.{}", self.id, self.param),
        }
    }
}

/// Parses one `--sweep` flag; the error is one line naming the flag.
pub fn parse(text: &str) -> Result<Spec, String> {
    let fail = |why: String| format!("--sweep `{text}`: {why}");
    let (address, values) =
        text.split_once('=').ok_or_else(|| fail("expected ID.PARAM=START..END[:STEP] or ID.PARAM=a,b,c".into()))?;
    let (target, param) = address
        .trim()
        .rsplit_once('.')
        .filter(|(t, p)| !t.is_empty() && !p.is_empty())
        .ok_or_else(|| fail(format!("`{address}` is not ID.PARAM or ID@SYMBOL.PARAM")))?;
    let (id, symbol) = match target.split_once('@') {
        Some((id, symbol)) if !id.is_empty() && !symbol.is_empty() => (id, Some(symbol.to_ascii_uppercase())),
        Some(_) => return Err(fail(format!("`{target}` is not ID or ID@SYMBOL"))),
        None => (target, None),
    };
    let values = parse_values(values.trim()).map_err(fail)?;
    Ok(Spec { text: text.to_string(), id: id.to_string(), symbol, param: param.to_string(), values })
}

fn number(text: &str) -> Result<Decimal, String> {
    let t = text.trim();
    if t.is_empty() {
        return Err("a value is missing".into());
    }
    t.parse::<Decimal>().map_err(|_| format!("`{t}` is not a number"))
}

fn parse_values(text: &str) -> Result<Vec<Decimal>, String> {
    if let Some((start, rest)) = text.split_once("..") {
        if text.contains(',') {
            return Err("give a range START..END[:STEP] or a list a,b,c, not both".into());
        }
        let (end, step) = match rest.split_once(':') {
            Some((end, step)) => (end, Some(step)),
            None => (rest, None),
        };
        let (start, end) = (number(start)?, number(end)?);
        let step = match step {
            Some(s) => number(s)?,
            None if start.scale() == 0 && end.scale() == 0 => Decimal::ONE,
            None => return Err(format!("the decimal range {start}..{end} needs a STEP, e.g. {start}..{end}:0.1")),
        };
        if step <= Decimal::ZERO {
            return Err(format!("STEP must be positive, got {step}"));
        }
        if start > end {
            return Err(format!("the range is empty: START {start} is after END {end}"));
        }
        let last =
            ((end - start) / step).floor().to_usize().filter(|n| *n < MAX_VALUES).ok_or_else(|| {
                format!("{start}..{end}:{step} gives more than {MAX_VALUES} values; use a larger STEP")
            })?;
        // Every value with the same decimals (0.50, 0.75, 1.00), as a table shows them.
        let scale = start.scale().max(step.scale());
        return Ok((0..=last)
            .map(|k| {
                let mut v = start + step * Decimal::from(k);
                v.rescale(scale);
                v
            })
            .collect());
    }
    if text.contains(':') {
        return Err(format!("`{text}`: a STEP belongs to a range START..END:STEP"));
    }
    let values = text.split(',').map(number).collect::<Result<Vec<_>, _>>()?;
    for (i, v) in values.iter().enumerate() {
        if values[..i].contains(v) {
            return Err(format!("the value {v} is listed twice"));
        }
    }
    Ok(values)
}

/// The id a flag addresses a block by: a template instance's `ID@SYMBOL`
/// answers to its template's `ID`, every other block to its own id.
fn template_id(block: &StrategyConfig) -> &str {
    block.id.strip_suffix(block.symbol.as_str()).and_then(|t| t.strip_suffix('@')).unwrap_or(&block.id)
}

/// One swept parameter, checked against the strategies that run.
#[derive(Debug, Clone)]
pub struct Axis {
    /// Column name (`ID.PARAM`).
    pub name: String,
    /// Parameter key (a Pine input's variable name, even when the flag gave its title).
    pub param: String,
    /// The sub-table of `params` it is written in (`inputs` for a Pine input).
    pub table: Option<String>,
    /// The title a Pine input also answers to, so a config that set it by
    /// title does not set it twice.
    pub title: Option<String>,
    /// The type the strategies read it as.
    pub kind: ParamKind,
    /// Indexes of the strategy blocks it is written into.
    pub targets: Vec<usize>,
    /// The values.
    pub values: Vec<Decimal>,
}

impl Axis {
    /// A value as TOML of the type the strategy reads: an integer, an exact
    /// decimal string, or a float for statistics parameters.
    fn toml(&self, value: Decimal) -> toml::Value {
        match self.kind {
            // Checked to fit when the axis was built.
            ParamKind::Integer => toml::Value::Integer(value.to_i64().unwrap_or_default()),
            // Whole seconds, which a duration parameter reads a bare integer as.
            ParamKind::Duration => toml::Value::Integer(value.to_i64().unwrap_or_default()),
            // Text kinds are refused when the axis is built.
            ParamKind::Decimal | ParamKind::Path | ParamKind::Table | ParamKind::Bool | ParamKind::Text => {
                toml::Value::String(value.to_string())
            }
            ParamKind::Number => toml::Value::Float(value.to_f64().unwrap_or_default()),
        }
    }
}

/// The cartesian product of the swept parameters. Combinations are numbered
/// from 0; the first axis varies slowest.
#[derive(Debug, Clone)]
pub struct Grid {
    /// The swept parameters, in flag order.
    pub axes: Vec<Axis>,
    len: usize,
}

impl Grid {
    /// Checks the specs against the strategy blocks that run (`run`) and the
    /// whole config (`configured`, to tell a paused strategy from a typo).
    /// Before the data is loaded `run` may hold templates, which any
    /// `ID@SYMBOL` fits; resolve again on the instances the data gives.
    pub fn resolve(
        specs: &[Spec],
        run: &[(usize, StrategyConfig)],
        configured: &[StrategyConfig],
        registry: &strategies::StrategyRegistry,
    ) -> Result<Grid, String> {
        let mut axes: Vec<Axis> = Vec::new();
        for spec in specs {
            let fail = |why: String| format!("--sweep `{}`: {why}", spec.text);
            let with_id: Vec<usize> =
                run.iter().enumerate().filter(|(_, (_, c))| template_id(c) == spec.id).map(|(i, _)| i).collect();
            if with_id.is_empty() {
                let running: Vec<&str> = run.iter().map(|(_, c)| c.id.as_str()).collect();
                return Err(fail(if configured.iter().any(|c| c.id == spec.id) {
                    format!("strategy `{}` does not run (it is paused, or not chosen with --strategy)", spec.id)
                } else {
                    format!("no strategy `{}` (strategies: {})", spec.id, running.join(", "))
                }));
            }
            let targets: Vec<usize> = match &spec.symbol {
                // A template not yet expanded may run on any symbol.
                Some(symbol) => {
                    with_id.iter().copied().filter(|i| run[*i].1.is_template() || run[*i].1.symbol == *symbol).collect()
                }
                None => with_id.clone(),
            };
            if targets.is_empty() {
                let symbols: Vec<&str> = with_id.iter().map(|i| run[*i].1.symbol.as_str()).collect();
                return Err(fail(format!(
                    "strategy `{}` does not trade {} (it trades {})",
                    spec.id,
                    spec.symbol.as_deref().unwrap_or_default(),
                    symbols.join(", ")
                )));
            }
            let mut found: Option<ParamSpec> = None;
            for i in &targets {
                let (index, block) = &run[*i];
                let specs = registry.block_params(*index, block).map_err(|e| fail(e.to_string()))?;
                let Some(p) = ParamSpec::find(&specs, &spec.param).cloned() else {
                    let names: Vec<String> = registry
                        .block_params(*index, block)
                        .unwrap_or_default()
                        .iter()
                        .filter(|p| p.kind.is_numeric())
                        .map(|p| p.name.clone())
                        .collect();
                    return Err(fail(format!(
                        "{} has no parameter `{}` (its parameters: {})",
                        block.kind,
                        spec.param,
                        names.join(", ")
                    )));
                };
                if !p.kind.is_numeric() {
                    return Err(fail(format!(
                        "`{}` is not a number; only numeric parameters can be swept",
                        spec.param
                    )));
                }
                if let Some(reason) = spec.values.iter().find_map(|v| p.out_of_range(*v)) {
                    return Err(fail(format!("`{}` {reason}", spec.param)));
                }
                found = Some(p);
            }
            let Some(p) = found else { return Err(fail("no strategy to sweep".into())) };
            if matches!(p.kind, ParamKind::Integer | ParamKind::Duration) {
                if let Some(bad) = spec.values.iter().find(|v| !v.fract().is_zero() || v.to_i64().is_none()) {
                    return Err(fail(format!("`{}` takes an integer, not {bad}", spec.param)));
                }
            }
            if let Some(other) = axes
                .iter()
                .find(|a| a.param == p.name && a.table == p.table && a.targets.iter().any(|t| targets.contains(t)))
            {
                return Err(fail(format!("{} is already swept by --sweep {}", spec.name(), other.name)));
            }
            axes.push(Axis {
                name: spec.name(),
                param: p.name,
                table: p.table,
                title: p.title,
                kind: p.kind,
                targets,
                values: spec.values.clone(),
            });
        }
        let len = axes
            .iter()
            .try_fold(1usize, |n, a| n.checked_mul(a.values.len()).filter(|n| *n <= MAX_COMBINATIONS))
            .ok_or_else(|| format!("--sweep: the grid spans more than {MAX_COMBINATIONS} combinations"))?;
        Ok(Grid { axes, len })
    }

    /// Number of combinations.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True for a grid without combinations (never, once resolved).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The value index on each axis of `combination`.
    fn position(&self, mut combination: usize) -> Vec<usize> {
        let mut at = vec![0; self.axes.len()];
        for (i, axis) in self.axes.iter().enumerate().rev() {
            at[i] = combination % axis.values.len();
            combination /= axis.values.len();
        }
        at
    }

    /// The values of `combination`, one per axis.
    pub fn values(&self, combination: usize) -> Vec<Decimal> {
        self.position(combination).iter().zip(&self.axes).map(|(i, a)| a.values[*i]).collect()
    }

    /// The strategy blocks with the values of `combination` written into their params.
    pub fn blocks(&self, combination: usize, base: &[(usize, StrategyConfig)]) -> Vec<(usize, StrategyConfig)> {
        let mut blocks = base.to_vec();
        for (axis, value) in self.axes.iter().zip(self.values(combination)) {
            for t in &axis.targets {
                let params = &mut blocks[*t].1.params;
                let Some(table) = &axis.table else {
                    params.insert(axis.param.clone(), axis.toml(value));
                    continue;
                };
                let entry = params.entry(table.clone()).or_insert_with(|| toml::Value::Table(toml::Table::new()));
                if !entry.is_table() {
                    *entry = toml::Value::Table(toml::Table::new());
                }
                if let toml::Value::Table(inner) = entry {
                    if let Some(title) = &axis.title {
                        inner.remove(title);
                    }
                    inner.insert(axis.param.clone(), axis.toml(value));
                }
            }
        }
        blocks
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> Decimal {
        s.parse().unwrap()
    }

    #[test]
    fn values_of_ranges_and_lists() {
        let cases: &[(&str, &[&str])] = &[
            ("s.fast=5..50:5", &["5", "10", "15", "20", "25", "30", "35", "40", "45", "50"]),
            ("s.fast=1..4", &["1", "2", "3", "4"]),
            ("s.fast=7..7", &["7"]),
            ("s.fast=5..12:5", &["5", "10"]),
            ("s.k=0.5..2.0:0.25", &["0.50", "0.75", "1.00", "1.25", "1.50", "1.75", "2.00"]),
            ("s.k=0.5..1.9:0.5", &["0.5", "1.0", "1.5"]),
            ("s.k=-1..1:1", &["-1", "0", "1"]),
            ("s.qty=0.1,0.25,1", &["0.1", "0.25", "1"]),
            ("s.qty=3", &["3"]),
            (" s.fast = 1 .. 3 : 2 ", &["1", "3"]),
        ];
        for (text, want) in cases {
            let spec = parse(text).unwrap_or_else(|e| panic!("{text}: {e}"));
            let got: Vec<String> = spec.values.iter().map(|v| v.to_string()).collect();
            assert_eq!(got, *want, "{text}");
        }
        let spec = parse("sma@btcusdt.fast=1,2").unwrap();
        assert_eq!((spec.id.as_str(), spec.symbol.as_deref(), spec.param.as_str()), ("sma", Some("BTCUSDT"), "fast"));
        assert_eq!(spec.name(), "sma@BTCUSDT.fast");
        assert_eq!(parse("my.id.fast=1").unwrap().id, "my.id", "the parameter follows the last dot");
    }

    #[test]
    fn malformed_specs_say_what_is_wrong() {
        let cases = [
            ("s.fast", "expected ID.PARAM=START..END[:STEP]"),
            ("fast=1..5", "`fast` is not ID.PARAM"),
            (".fast=1..5", "is not ID.PARAM"),
            ("s.=1..5", "is not ID.PARAM"),
            ("@X.fast=1", "is not ID or ID@SYMBOL"),
            ("s.fast=50..5", "the range is empty: START 50 is after END 5"),
            ("s.fast=1..5:0", "STEP must be positive, got 0"),
            ("s.fast=1..5:-1", "STEP must be positive, got -1"),
            ("s.k=0.5..2", "needs a STEP"),
            ("s.fast=a..5", "`a` is not a number"),
            ("s.fast=1..x", "`x` is not a number"),
            ("s.fast=1..5:y", "`y` is not a number"),
            ("s.fast=1,two,3", "`two` is not a number"),
            ("s.fast=1,,3", "a value is missing"),
            ("s.fast=", "a value is missing"),
            ("s.fast=1..5,7", "not both"),
            ("s.fast=1:5", "a STEP belongs to a range"),
            ("s.fast=1,2,1", "the value 1 is listed twice"),
            ("s.k=0..1:0.000001", "more than 100000 values"),
        ];
        for (text, want) in cases {
            let err = parse(text).expect_err(text);
            assert!(err.starts_with(&format!("--sweep `{text}`: ")), "{text}: {err}");
            assert!(err.contains(want), "{text}: {err}");
            assert!(!err.contains('\n'), "{text}: one line");
        }
    }

    fn registry() -> strategies::StrategyRegistry {
        strategies::StrategyRegistry::builtin()
    }

    fn block(id: &str, kind: &str, symbol: &str) -> StrategyConfig {
        StrategyConfig {
            id: id.into(),
            kind: kind.into(),
            symbol: symbol.into(),
            symbols: None,
            paused: false,
            exits: None,
            params: toml::from_str("fast = 10\nslow = 20\nqty = \"1\"").unwrap(),
        }
    }

    #[test]
    fn a_grid_writes_typed_values_into_the_blocks_it_addresses() {
        let run = vec![(0, block("a", "sma_cross", "BTCUSDT")), (1, block("a", "sma_cross", "ETHUSDT"))];
        let specs: Vec<Spec> = ["a.fast=2..6:2", "a@ETHUSDT.qty=0.5,1.5"].iter().map(|t| parse(t).unwrap()).collect();
        let grid = Grid::resolve(&specs, &run, &[], &registry()).unwrap();
        assert_eq!(grid.len(), 6);
        assert_eq!(grid.values(0), [d("2"), d("0.5")]);
        assert_eq!(grid.values(1), [d("2"), d("1.5")], "the last axis varies fastest");
        assert_eq!(grid.values(5), [d("6"), d("1.5")]);
        let blocks = grid.blocks(3, &run);
        assert_eq!(blocks[0].1.params["fast"], toml::Value::Integer(4));
        assert_eq!(blocks[1].1.params["fast"], toml::Value::Integer(4), "ID.PARAM sets every instance");
        assert_eq!(blocks[0].1.params["qty"], toml::Value::String("1".into()), "ID@SYMBOL only one");
        assert_eq!(blocks[1].1.params["qty"], toml::Value::String("1.5".into()), "decimals as exact strings");

        let bb = vec![(0, StrategyConfig { params: toml::Table::new(), ..block("b", "bollinger_breakout", "X") })];
        let grid = Grid::resolve(&[parse("b.k=1.5,2").unwrap()], &bb, &[], &registry()).unwrap();
        assert_eq!(grid.blocks(0, &bb)[0].1.params["k"], toml::Value::Float(1.5), "numbers as floats");
    }

    #[test]
    fn a_template_answers_to_its_id_before_and_after_expansion() {
        let template = StrategyConfig { symbols: Some("universe".into()), ..block("t", "sma_cross", "") };
        let specs: Vec<Spec> = ["t.fast=2,4", "t@ETHUSDT.qty=0.5"].iter().map(|t| parse(t).unwrap()).collect();
        let before = Grid::resolve(&specs, &[(0, template.clone())], &[], &registry()).unwrap();
        assert_eq!(before.axes[1].targets, [0], "any symbol fits a template not yet expanded");

        let run = vec![(0, template.instance("BTCUSDT")), (0, template.instance("ETHUSDT"))];
        let grid = Grid::resolve(&specs, &run, &[], &registry()).unwrap();
        assert_eq!((&grid.axes[0].targets[..], &grid.axes[1].targets[..]), (&[0, 1][..], &[1][..]));
        let blocks = grid.blocks(1, &run);
        assert_eq!(blocks[0].1.params["fast"], toml::Value::Integer(4));
        assert_eq!(blocks[1].1.params["fast"], toml::Value::Integer(4), "t.fast sets t@BTCUSDT and t@ETHUSDT");
        assert_eq!(blocks[0].1.params["qty"], toml::Value::String("1".into()));
        assert_eq!(blocks[1].1.params["qty"], toml::Value::String("0.5".into()));
        let err = Grid::resolve(&[parse("t@XRPUSDT.fast=1").unwrap()], &run, &[], &registry()).unwrap_err();
        assert!(err.contains("strategy `t` does not trade XRPUSDT (it trades BTCUSDT, ETHUSDT)"), "{err}");
    }

    #[test]
    fn specs_that_do_not_fit_the_strategies_are_refused() {
        let run = vec![(0, block("a", "sma_cross", "BTCUSDT"))];
        let paused = StrategyConfig { paused: true, ..block("p", "sma_cross", "BTCUSDT") };
        let configured = vec![run[0].1.clone(), paused];
        let cases = [
            (vec!["z.fast=1..3"], "no strategy `z` (strategies: a)"),
            (vec!["p.fast=1..3"], "strategy `p` does not run"),
            (vec!["a@ETHUSDT.fast=1..3"], "strategy `a` does not trade ETHUSDT (it trades BTCUSDT)"),
            (
                vec!["a.fsat=1..3"],
                "sma_cross has no parameter `fsat` (its parameters: fast, slow, qty, notional, max_funding)",
            ),
            (vec!["a.fast=1.5,2"], "`fast` takes an integer, not 1.5"),
            (vec!["a.fast=0..4"], "`fast` must be at least 1, got 0"),
            (vec!["a.qty=1,-0.5"], "`qty` must be greater than 0, got -0.5"),
            (vec!["a.fast=1..3", "a@BTCUSDT.fast=4"], "a@BTCUSDT.fast is already swept by --sweep a.fast"),
            (vec!["a.fast=1..10000", "a.slow=1..10000"], "more than 10000000 combinations"),
        ];
        for (texts, want) in cases {
            let specs: Vec<Spec> = texts.iter().map(|t| parse(t).unwrap()).collect();
            let err = Grid::resolve(&specs, &run, &configured, &registry()).expect_err(want);
            assert!(err.contains(want), "{texts:?}: {err}");
            assert!(err.starts_with("--sweep"), "{err}");
        }
    }

    /// A Pine block's inputs are swept by name or title into
    /// `params.inputs`, typed as the script declares them, and checked
    /// against `minval`/`maxval`; what is not a number is refused.
    #[test]
    fn a_pine_blocks_inputs_are_swept() {
        use crate::backtest::test_pine;
        let dir = tempfile::tempdir().unwrap();
        let pine = test_pine::block(&dir, "p", "\"Fast length\" = 7, use = false");
        let run = vec![(0, pine)];
        let specs: Vec<Spec> = ["p.Fast length=5..50:5", "p.k=0.5,2"].iter().map(|t| parse(t).unwrap()).collect();
        let grid = Grid::resolve(&specs, &run, &[], &registry()).unwrap();
        assert_eq!(
            (grid.len(), grid.axes[0].name.as_str(), grid.axes[0].param.as_str()),
            (20, "p.Fast length", "fastLen")
        );
        let blocks = grid.blocks(3, &run);
        let inputs = blocks[0].1.params["inputs"].as_table().unwrap();
        let shown: Vec<String> = inputs.iter().map(|(k, v)| format!("{k}={v}")).collect();
        assert_eq!(shown, ["fastLen=10", "k=2.0", "use=false"], "typed, the title's key replaced, others kept");
        assert!(registry().build(0, &blocks[0].1).is_ok(), "the swept block builds");

        let cases = [
            ("p.fastLen=0..3", "`fastLen` must be between 1 and 60, got 0"),
            ("p.fastLen=55..65:5", "`fastLen` must be between 1 and 60, got 65"),
            ("p.fastLen=1.5", "`fastLen` takes an integer, not 1.5"),
            ("p.use=1", "`use` is not a number; only numeric parameters can be swept"),
            ("p.script=1", "`script` is not a number"),
            ("p.slow=1", "pine has no parameter `slow` (its parameters: fastLen, k)"),
            ("p.Fast length=3", ""),
        ];
        for (text, want) in cases {
            let specs = vec![parse(text).unwrap(), parse("p.fastLen=4").unwrap()];
            let err = Grid::resolve(&specs, &run, &[], &registry()).expect_err(text);
            let want = if want.is_empty() { "p.fastLen is already swept by --sweep p.Fast length" } else { want };
            assert!(err.contains(want), "{text}: {err}");
        }
    }
}
