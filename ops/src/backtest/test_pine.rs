//! Test support: a registry with the `pine` kind for unit tests of the code
//! that reads Pine blocks' parameters (sweeps, overfitting signals), and a
//! script with inputs to point blocks at.

use keel_core::config::StrategyConfig;
use strategies::pine_kind;

/// A strategy that does nothing, standing in for the Pine host.
struct Quiet(keel_core::Symbol);

impl keel_core::strategy::Strategy for Quiet {
    fn kind(&self) -> &'static str {
        pine_kind::PINE
    }
    fn symbols(&self) -> Vec<keel_core::Symbol> {
        vec![self.0.clone()]
    }
}

/// The built-in registry with the `pine` kind (registered here only while
/// the built-in registry lacks it).
pub fn registry() -> strategies::StrategyRegistry {
    let mut registry = strategies::StrategyRegistry::builtin();
    if registry.kind(pine_kind::PINE).is_none() {
        let build =
            |symbol, params: &strategies::params::Params<'_>| pine_kind::compile_block(params).map(|_| Quiet(symbol));
        registry.register(pine_kind::PINE, pine_kind::kind_params(), build).unwrap();
    }
    registry
}

/// A script with an int input titled `Fast length` (1..=60), a float, a bool.
pub const SCRIPT: &str = "//@version=5
strategy(\"s\")
fastLen = input.int(9, \"Fast length\", minval = 1, maxval = 60)
k = input.float(1.5)
use = input.bool(true)
plot(ta.sma(close, fastLen) * k)
";

/// A Pine block `id` on BTCUSDT running [`SCRIPT`] (written into `dir`), with `inputs` (TOML
/// inline-table body) as its overrides.
pub fn block(dir: &tempfile::TempDir, id: &str, inputs: &str) -> StrategyConfig {
    let path = dir.path().join("s.pine");
    std::fs::write(&path, SCRIPT).unwrap();
    let script = toml::Value::String(path.display().to_string());
    let params = format!("script = {script}\ninputs = {{ {inputs} }}").parse().unwrap();
    StrategyConfig {
        id: id.into(),
        kind: pine_kind::PINE.into(),
        symbol: "BTCUSDT".into(),
        symbols: None,
        paused: false,
        params,
        exits: None,
    }
}
