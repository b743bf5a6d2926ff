//! The strategy kinds a `keel` binary knows, and building strategy instances
//! from `[[strategy]]` config blocks through them.

use std::sync::Arc;

use keel_core::config::StrategyConfig;
use keel_core::strategy::Strategy;

use crate::bollinger_breakout::BollingerBreakout;
use crate::grid::Grid;
use crate::ma_cross::{EmaCross, SmaCross};
use crate::macd::MacdCross;
use crate::params::{ParamSpec, Params};
use crate::pine_host::PineStrategy;
use crate::pine_kind;
use crate::rsi_reversion::RsiReversion;
use crate::scanner::Scanner;
use crate::webhook::Webhook;

/// A strategy's config is wrong: the key and the reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("config error at `{key}`: {reason}")]
pub struct StrategyConfigError {
    /// The offending key, e.g. `strategy[0].params.slow`.
    pub key: String,
    /// Why it is wrong.
    pub reason: String,
}

/// Builds one strategy of a kind from its symbol and its `params` table.
pub type Constructor =
    Arc<dyn Fn(keel_core::Symbol, &Params<'_>) -> Result<Box<dyn Strategy>, StrategyConfigError> + Send + Sync>;

/// The parameters one block declares beyond its kind's, read from the
/// block's `params` (a Pine block: its script's inputs).
pub type BlockParams = Arc<dyn Fn(&Params<'_>) -> Result<Vec<ParamSpec>, StrategyConfigError> + Send + Sync>;

/// One registered strategy kind: its name, the parameters it declares and
/// how to build it.
#[derive(Clone)]
pub struct Kind {
    /// The `kind` value of a config block.
    pub name: String,
    /// The parameters it accepts, checked before `build` runs.
    pub params: Vec<ParamSpec>,
    build: Constructor,
    block_params: Option<BlockParams>,
}

impl Kind {
    fn new(name: &str, params: Vec<ParamSpec>, build: Constructor) -> Self {
        // A Pine block's parameters include its script's inputs, whoever registers the kind.
        let block_params: Option<BlockParams> =
            (name == pine_kind::PINE).then(|| Arc::new(pine_kind::input_params) as BlockParams);
        Self { name: name.to_string(), params, build, block_params }
    }
}

/// A `kind = "pine"` block: its script compiled with the block's inputs, run by the Pine host.
/// A refusal of the host (a short entry...) names the block's `script`.
fn build_pine(symbol: keel_core::Symbol, params: &Params<'_>) -> Result<PineStrategy, StrategyConfigError> {
    let compiled = pine_kind::compile_block(params)?;
    PineStrategy::new(symbol, Arc::new(compiled.program)).map_err(|e| params.error(pine_kind::SCRIPT, e.reason))
}

impl std::fmt::Debug for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Kind").field("name", &self.name).field("params", &self.params).finish_non_exhaustive()
    }
}

/// The strategy kinds a binary knows. A value, not a constant list, so that
/// kinds can be added at run time (a user's own binary, a Pine script); every
/// command that builds strategies takes it.
#[derive(Clone, Debug, Default)]
pub struct StrategyRegistry {
    kinds: Vec<Kind>,
}

impl StrategyRegistry {
    /// A registry without kinds.
    pub fn new() -> Self {
        Self::default()
    }

    /// The kinds built into Keel.
    pub fn builtin() -> Self {
        let mut r = Self::new();
        let all: [(&str, Vec<ParamSpec>, Constructor); 9] = [
            ("sma_cross", SmaCross::params(), boxed(SmaCross::from_params)),
            ("ema_cross", EmaCross::params(), boxed(EmaCross::from_params)),
            ("rsi_reversion", RsiReversion::params(), boxed(RsiReversion::from_params)),
            ("bollinger_breakout", BollingerBreakout::params(), boxed(BollingerBreakout::from_params)),
            ("macd", MacdCross::params(), boxed(MacdCross::from_params)),
            ("grid", Grid::params(), boxed(Grid::from_params)),
            ("webhook", Webhook::params(), boxed(Webhook::from_params)),
            ("scanner", Scanner::params(), boxed(Scanner::from_params)),
            (pine_kind::PINE, pine_kind::kind_params(), boxed(build_pine)),
        ];
        for (name, params, build) in all {
            r.kinds.push(Kind::new(name, params, build));
        }
        r
    }

    /// Adds a kind; `build` is typically a strategy's `from_params`. Refused
    /// when the name is taken or is not an identifier (ASCII letters, digits
    /// and `_`, starting with a letter: it is written in configs, and
    /// parameter names in `--sweep ID.NAME=...`), or when a parameter is
    /// declared twice, has such a bad name, or has a default that is not a
    /// TOML value inside its own range.
    pub fn register<S, F>(&mut self, name: &str, params: Vec<ParamSpec>, build: F) -> Result<(), String>
    where
        S: Strategy + 'static,
        F: Fn(keel_core::Symbol, &Params<'_>) -> Result<S, StrategyConfigError> + Send + Sync + 'static,
    {
        if !is_identifier(name) {
            return Err(format!(
                "strategy kind `{name}`: a kind's name is ASCII letters, digits and `_`, starting with a letter"
            ));
        }
        if self.kind(name).is_some() {
            return Err(format!("strategy kind `{name}` is already registered"));
        }
        for p in &params {
            if !is_identifier(&p.name) {
                return Err(format!(
                    "strategy kind `{name}`: parameter `{}` is not a name of ASCII letters, digits and `_`, starting with a letter",
                    p.name
                ));
            }
            if let Some(default) = &p.default {
                let value =
                    toml::from_str::<toml::Table>(&format!("v = {default}")).ok().and_then(|mut t| t.remove("v"));
                let problem = match &value {
                    None => Some("is not a TOML value".to_string()),
                    Some(v) => p.check(v),
                };
                if let Some(problem) = problem {
                    return Err(format!("strategy kind `{name}`: the default of `{}` ({default}) {problem}", p.name));
                }
            }
        }
        if let Some((i, p)) = params.iter().enumerate().find(|(i, p)| params[..*i].iter().any(|q| q.name == p.name)) {
            return Err(format!("strategy kind `{name}` declares parameter `{}` twice (at {i})", p.name));
        }
        self.kinds.push(Kind::new(name, params, boxed(build)));
        Ok(())
    }

    /// The kinds, in the order they were registered.
    pub fn kinds(&self) -> &[Kind] {
        &self.kinds
    }

    /// The kind named `name`, if registered.
    pub fn kind(&self, name: &str) -> Option<&Kind> {
        self.kinds.iter().find(|k| k.name == name)
    }

    /// The parameters kind `name` declares, or `None` for an unknown kind.
    pub fn params(&self, name: &str) -> Option<&[ParamSpec]> {
        self.kind(name).map(|k| k.params.as_slice())
    }

    /// The parameters config block number `index` declares: its kind's, then
    /// the block's own (a Pine block's script inputs, written in
    /// `params.inputs`). Config validation, sweeps, `keel strategies
    /// --config` and the overfitting signals read these.
    pub fn block_params(&self, index: usize, config: &StrategyConfig) -> Result<Vec<ParamSpec>, StrategyConfigError> {
        let Some(kind) = self.kind(&config.kind) else {
            return Err(self.unknown_kind(index, config));
        };
        let mut out = kind.params.clone();
        if let Some(declare) = &kind.block_params {
            out.extend(declare(&Params::new(&config.params, format!("strategy[{index}].params")))?);
        }
        Ok(out)
    }

    fn unknown_kind(&self, index: usize, config: &StrategyConfig) -> StrategyConfigError {
        let names: Vec<&str> = self.kinds.iter().map(|k| k.name.as_str()).collect();
        StrategyConfigError {
            key: format!("strategy[{index}].kind"),
            reason: format!("unknown strategy kind `{}` (known: {})", config.kind, names.join(", ")),
        }
    }

    /// Builds the strategy of config block number `index` (for error
    /// messages): its kind must be registered, every parameter declared and
    /// inside its range; its `exits`, if any, are checked too (see [`exits`]).
    pub fn build(&self, index: usize, config: &StrategyConfig) -> Result<Box<dyn Strategy>, StrategyConfigError> {
        exits(index, config)?;
        let Some(kind) = self.kind(&config.kind) else {
            return Err(self.unknown_kind(index, config));
        };
        let params = Params::new(&config.params, format!("strategy[{index}].params"));
        params.only(&kind.params)?;
        for spec in &kind.params {
            if let Some(reason) = config.params.get(&spec.name).and_then(|v| spec.check(v)) {
                return Err(params.error(&spec.name, reason));
            }
        }
        (kind.build)(keel_core::Symbol::new(&config.symbol), &params)
    }

    /// Validates every strategy block by building it.
    pub fn validate_all(&self, configs: &[StrategyConfig]) -> Result<(), StrategyConfigError> {
        for (i, c) in configs.iter().enumerate() {
            self.build(i, c)?;
        }
        Ok(())
    }
}

/// A strategy type that declares its parameters, so that registering it
/// (`keel_ops::App::strategy`) needs only its name and its `from_params`.
pub trait DeclaredParams {
    /// The parameters it accepts: name, type, default and valid range.
    fn params() -> Vec<ParamSpec>;
}

/// True for an identifier: an ASCII letter, then ASCII letters, digits and `_`.
fn is_identifier(name: &str) -> bool {
    name.starts_with(|c: char| c.is_ascii_alphabetic()) && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// A constructor returning a concrete strategy, boxed.
fn boxed<S, F>(build: F) -> Constructor
where
    S: Strategy + 'static,
    F: Fn(keel_core::Symbol, &Params<'_>) -> Result<S, StrategyConfigError> + Send + Sync + 'static,
{
    Arc::new(move |symbol, params| Ok(Box::new(build(symbol, params)?) as Box<dyn Strategy>))
}

/// The exits of config block number `index`, validated (its ROI table
/// sorted by time); the error names the key (`strategy[0].exits.stop_loss`).
pub fn exits(index: usize, config: &StrategyConfig) -> Result<Option<keel_core::exits::ExitSpec>, StrategyConfigError> {
    let Some(spec) = &config.exits else { return Ok(None) };
    let mut spec = spec.clone();
    spec.validate(&format!("strategy[{index}].exits"))
        .map_err(|e| StrategyConfigError { key: e.key, reason: e.reason })?;
    Ok(Some(spec))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block(kind: &str, params: &str, exits: &str) -> StrategyConfig {
        toml::from_str(&format!(
            "id = \"s\"\nkind = \"{kind}\"\nsymbol = \"BTCUSDT\"\nparams = {{ {params} }}\n{exits}"
        ))
        .unwrap()
    }

    /// A block's exits are checked where its strategy is built (start-up,
    /// `keel check-config`, `keel backtest`), the error naming the key; a
    /// good table comes back validated (its ROI rows sorted).
    #[test]
    fn exits_are_checked_with_the_strategy() {
        let registry = StrategyRegistry::builtin();
        let err = registry.build(3, &block("webhook", "qty = \"1\"", "exits = { max_hold = \"0s\" }")).err().unwrap();
        assert_eq!(err.key, "strategy[3].exits.max_hold");
        let good = block("webhook", "qty = \"1\"", "exits = { roi = [[\"1h\", \"1%\"], [\"0m\", \"3%\"]] }");
        assert!(registry.build(0, &good).is_ok());
        let spec = exits(0, &good).unwrap().unwrap();
        assert_eq!(spec.roi.iter().map(|r| r.after.0).collect::<Vec<_>>(), [0, 3_600_000]);
        assert_eq!(exits(0, &block("webhook", "qty = \"1\"", "")).unwrap(), None);
    }

    /// Every kind declares parameters, each declared name gets past the
    /// unknown-parameter check (it may fail on a value, never on a name),
    /// and every default is inside its own range.
    #[test]
    fn every_kind_declares_the_parameters_its_builder_accepts() {
        let registry = StrategyRegistry::builtin();
        assert_eq!(registry.kinds().len(), 9);
        for kind in registry.kinds() {
            assert!(!kind.params.is_empty(), "{}", kind.name);
            let mut table = toml::Table::new();
            for s in &kind.params {
                table.insert(s.name.clone(), toml::Value::String("x".into()));
                if let Some(default) = &s.default {
                    let value: toml::Value =
                        toml::from_str::<toml::Table>(&format!("v = {default}")).unwrap()["v"].clone();
                    assert_eq!(s.check(&value), None, "{}.{} default {default}", kind.name, s.name);
                }
            }
            let config = StrategyConfig {
                id: "s".into(),
                kind: kind.name.clone(),
                symbol: "BTCUSDT".into(),
                symbols: None,
                paused: false,
                params: table,
                exits: None,
            };
            let err = registry.build(0, &config).err().map(|e| e.reason).unwrap_or_default();
            assert!(!err.contains("unknown parameter"), "{}: {err}", kind.name);
            table = config.params.clone();
            table.insert("nope".into(), toml::Value::Integer(1));
            let err = registry.build(0, &StrategyConfig { params: table, ..config }).err().unwrap();
            assert_eq!(err.key, "strategy[0].params.nope");
            assert!(err.reason.contains("unknown parameter"), "{}: {err}", kind.name);
        }
        assert!(registry.params("no_such_kind").is_none());
    }

    /// A declared default is the one the constructor uses: a block that
    /// writes every default out builds the same strategy as one that leaves
    /// them to the kind.
    #[test]
    fn declared_defaults_are_the_constructors_defaults() {
        fn show<S: std::fmt::Debug>(built: Result<S, StrategyConfigError>) -> String {
            format!("{built:?}")
        }
        type Show = fn(&Params<'_>) -> String;
        let cases: [(&str, &str, Show); 8] = [
            ("sma_cross", "fast = 2\nslow = 5\nqty = \"1\"", |p| show(SmaCross::from_params("X".into(), p))),
            ("ema_cross", "fast = 2\nslow = 5\nqty = \"1\"", |p| show(EmaCross::from_params("X".into(), p))),
            ("rsi_reversion", "qty = \"1\"", |p| show(RsiReversion::from_params("X".into(), p))),
            ("bollinger_breakout", "qty = \"1\"", |p| show(BollingerBreakout::from_params("X".into(), p))),
            ("macd", "qty = \"1\"", |p| show(MacdCross::from_params("X".into(), p))),
            ("grid", "lower = \"1\"\nupper = \"2\"\nqty = \"1\"", |p| show(Grid::from_params("X".into(), p))),
            ("webhook", "qty = \"1\"", |p| show(Webhook::from_params("X".into(), p))),
            ("scanner", "funding_above = \"50%\"", |p| show(Scanner::from_params("X".into(), p))),
        ];
        let registry = StrategyRegistry::builtin();
        for (kind, required, show) in cases {
            let bare: toml::Table = required.parse().unwrap();
            let mut full = bare.clone();
            for spec in registry.params(kind).unwrap() {
                if let Some(default) = &spec.default {
                    full.extend(format!("{} = {default}", spec.name).parse::<toml::Table>().unwrap());
                }
            }
            let built = show(&Params::new(&bare, "p"));
            assert!(built.starts_with("Ok("), "{kind}: {built}");
            assert_eq!(built, show(&Params::new(&full, "p")), "{kind}: written-out defaults {full}");
        }
    }

    /// Values outside a declared range are refused by the registry, naming
    /// the key and the range; values on an inclusive edge pass.
    #[test]
    fn declared_ranges_refuse_values_outside_them() {
        let registry = StrategyRegistry::builtin();
        let cases = [
            (
                "grid",
                "lower = \"1\", upper = \"2\", qty = \"1\", levels = 1001",
                Some(("levels", "must be between 2 and 1000, got 1001")),
            ),
            ("grid", "lower = \"1\", upper = \"2\", qty = \"1\", levels = 1000", None),
            (
                "rsi_reversion",
                "qty = \"1\", buy_below = 0",
                Some(("buy_below", "must be greater than 0 and less than 100, got 0")),
            ),
            ("rsi_reversion", "qty = \"1\", sell_above = \"100\"", Some(("sell_above", "less than 100, got 100"))),
            ("bollinger_breakout", "qty = \"1\", period = 1", Some(("period", "must be at least 2, got 1"))),
            ("bollinger_breakout", "qty = \"1\", period = 2, k = 0.5", None),
            ("webhook", "qty = \"-0.1\"", Some(("qty", "must be greater than 0, got -0.1"))),
            ("sma_cross", "fast = 0, slow = 3, qty = \"1\"", Some(("fast", "must be at least 1, got 0"))),
            ("sma_cross", "fast = 2, slow = 3, qty = \"1\", max_funding = \"-5\"", None),
            (
                "scanner",
                "funding_above = \"50%\", breakout_bars = 0",
                Some(("breakout_bars", "must be at least 1, got 0")),
            ),
        ];
        for (kind, params, want) in cases {
            let got = registry.build(2, &block(kind, params, "")).err();
            match (want, got) {
                (None, None) => {}
                (Some((key, reason)), Some(e)) => {
                    assert_eq!(e.key, format!("strategy[2].params.{key}"), "{kind} {params}");
                    assert!(e.reason.contains(reason), "{kind} {params}: {}", e.reason);
                }
                (want, got) => panic!("{kind} {params}: wanted {want:?}, got {got:?}"),
            }
        }
    }

    /// The unknown-kind error lists the registry's kinds, and a kind added
    /// at run time is listed and built like a built-in one.
    #[test]
    fn kinds_can_be_added_at_run_time() {
        let mut registry = StrategyRegistry::builtin();
        let err = registry.build(1, &block("mine", "qty = \"1\"", "")).err().unwrap();
        assert_eq!(err.key, "strategy[1].kind");
        assert!(
            err.reason.ends_with(
                "(known: sma_cross, ema_cross, rsi_reversion, bollinger_breakout, macd, grid, webhook, scanner, pine)"
            ),
            "{}",
            err.reason
        );
        let params = vec![ParamSpec::decimal("qty").required().above(0)];
        registry.register("mine", params.clone(), Webhook::from_params).unwrap();
        assert!(registry.build(1, &block("mine", "qty = \"1\"", "")).is_ok());
        assert_eq!(registry.params("mine"), Some(params.as_slice()));
        let err = registry.build(1, &block("theirs", "", "")).err().unwrap();
        assert!(err.reason.ends_with(", scanner, pine, mine)"), "{}", err.reason);
        assert!(registry.register("mine", vec![], Webhook::from_params).unwrap_err().contains("already registered"));
        let twice = vec![ParamSpec::integer("n"), ParamSpec::integer("n")];
        assert!(registry.register("other", twice, Webhook::from_params).unwrap_err().contains("`n` twice"));
        let refused: [(&str, Vec<ParamSpec>, &str); 6] = [
            ("", vec![], "a kind's name is ASCII letters"),
            ("my kind", vec![], "a kind's name is ASCII letters"),
            ("9lives", vec![], "a kind's name is ASCII letters"),
            ("k", vec![ParamSpec::integer("a.b")], "parameter `a.b` is not a name"),
            (
                "k",
                vec![ParamSpec::integer("n").default_value("twenty")],
                "the default of `n` (twenty) is not a TOML value",
            ),
            (
                "k",
                vec![ParamSpec::integer("n").default_value("1").at_least(2)],
                "the default of `n` (1) must be at least 2, got 1",
            ),
        ];
        for (name, params, want) in refused {
            let err = registry.register(name, params, Webhook::from_params).unwrap_err();
            assert!(err.contains(want), "{name}: {err}");
        }
        assert!(registry.kind("k").is_none(), "a refused kind is not registered");
        let fine = vec![ParamSpec::integer("fastLen").default_value("9").at_least(1)];
        registry.register("Mine_2", fine, Webhook::from_params).unwrap();
        let err = StrategyRegistry::new().build(0, &block("mine", "", "")).err().unwrap();
        assert!(err.reason.contains("unknown strategy kind `mine`"), "{}", err.reason);
    }

    /// A block of the `pine` kind declares its script's inputs on top of
    /// the kind's own parameters, however the kind was registered; other
    /// kinds declare theirs only; an unknown kind or a bad script is the
    /// block's error.
    #[test]
    fn a_pine_block_declares_its_scripts_inputs() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.pine");
        std::fs::write(&path, "//@version=5\nstrategy(\"s\")\nfastLen = input.int(9, \"Fast\", minval = 2)\nplot(ta.sma(close, fastLen))\n").unwrap();
        let script = toml::Value::String(path.display().to_string());
        let registry = StrategyRegistry::builtin();
        let pine = block("pine", &format!("script = {script}"), "");
        let names: Vec<String> = registry.block_params(0, &pine).unwrap().iter().map(ParamSpec::key).collect();
        assert_eq!(names, ["script", "inputs", "inputs.fastLen"]);
        let sma = block("sma_cross", "fast = 2, slow = 3, qty = \"1\"", "");
        assert_eq!(registry.block_params(0, &sma).unwrap(), registry.params("sma_cross").unwrap());
        assert_eq!(registry.block_params(5, &block("nope", "", "")).unwrap_err().key, "strategy[5].kind");
        let bad = block("pine", &format!("script = {script}, inputs = {{ Fast = 1 }}"), "");
        let err = registry.block_params(2, &bad).unwrap_err();
        assert_eq!(
            (err.key.as_str(), err.reason.as_str()),
            ("strategy[2].params.inputs.Fast", "must be at least 2, got 1")
        );
        assert_eq!(
            registry.build(2, &bad).err().unwrap().key,
            "strategy[2].params.inputs.Fast",
            "the build says the same"
        );
        assert!(registry.build(2, &pine).is_ok());
    }

    /// `pine` is a built-in kind: a block builds the Pine host on its script, and what the host
    /// refuses (a short entry) names the block's `script` and the script's `file:line:col`.
    #[test]
    fn pine_is_built_in_and_a_short_entry_is_refused_at_its_position() {
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, body: &str| {
            let path = dir.path().join(name);
            std::fs::write(&path, format!("//@version=5\nstrategy(\"s\")\n{body}")).unwrap();
            toml::Value::String(path.display().to_string())
        };
        let registry = StrategyRegistry::builtin();
        let long = write("long.pine", "if close > open\n    strategy.entry(\"L\", strategy.long)\n");
        let built = registry.build(0, &block("pine", &format!("script = {long}"), "")).unwrap();
        assert_eq!(built.kind(), "pine");
        let short = write("short.pine", "if close < open\n    strategy.entry(\"S\", strategy.short)\n");
        let err = registry.build(3, &block("pine", &format!("script = {short}"), "")).err().unwrap();
        assert_eq!(err.key, "strategy[3].params.script");
        let at = format!(
            "{}:4:5: strategy.entry with a direction other than strategy.long",
            dir.path().join("short.pine").display()
        );
        assert!(err.reason.starts_with(&at), "{}", err.reason);
        assert!(err.reason.contains("cannot sell short"), "{}", err.reason);
    }
}
