//! The repainting warnings of a config's Pine blocks (the same as `keel pine
//! check` gives for the script with the block's inputs), which `keel
//! check-config` and `keel run` print, and `--strict` makes errors.

use keel_core::config::StrategyConfig;
use strategies::params::Params;
use strategies::pine_kind::{self, PINE};
use strategies::StrategyConfigError;

/// One warning: the strategy block it comes from and the script's diagnostic.
#[derive(Debug, Clone, PartialEq)]
pub struct Warning {
    /// The block's `id`.
    pub strategy: String,
    /// `file:line:col: warning: message`.
    pub diagnostic: pine::Diagnostic,
}

impl std::fmt::Display for Warning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "strategy `{}`: {}", self.strategy, self.diagnostic)
    }
}

/// The warnings of every Pine block (a template once), in config order. A
/// block whose script is refused is that block's error, as at start.
pub fn of(strategies: &[StrategyConfig]) -> Result<Vec<Warning>, StrategyConfigError> {
    let mut out = Vec::new();
    for (i, block) in strategies.iter().enumerate().filter(|(_, b)| b.kind == PINE) {
        let compiled = pine_kind::compile_block(&Params::new(&block.params, format!("strategy[{i}].params")))?;
        out.extend(compiled.warnings.into_iter().map(|diagnostic| Warning { strategy: block.id.clone(), diagnostic }));
    }
    Ok(out)
}

/// The refusal `--strict` gives for `count` warnings.
pub fn strict_refusal(count: usize) -> String {
    format!("{count} repainting warning(s) in Pine scripts, errors under --strict")
}
