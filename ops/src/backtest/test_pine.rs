//! Test support for the code that reads Pine blocks' parameters (sweeps,
//! overfitting signals): a script with inputs and blocks pointing at it.

use keel_core::config::StrategyConfig;
use strategies::pine_kind;

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
