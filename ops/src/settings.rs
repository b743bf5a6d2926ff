//! Loading and validating the config: the engine's own checks, then each
//! strategy's parameters.

use std::path::{Path, PathBuf};

use crate::config::Config;
use anyhow::Context;

/// Loads `path` and validates everything, strategy parameters included. The
/// error is one line naming the key and the reason.
pub fn load(path: &Path) -> anyhow::Result<Config> {
    let config = Config::load(path).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    strategies::validate_all(&config.strategies).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    Ok(config)
}

/// The data directory: the flag wins over the config. A relative config path
/// is taken relative to the working directory, like every other path.
pub fn data_dir(config: &Config, flag: Option<&PathBuf>) -> PathBuf {
    flag.cloned().unwrap_or_else(|| config.engine.data_dir.clone())
}

/// Reads the data directory for commands that work on a stopped engine: from
/// the flag, else from the config file if it exists, else `data`.
pub fn data_dir_for_tools(config_path: &Path, flag: Option<&PathBuf>) -> anyhow::Result<PathBuf> {
    if let Some(dir) = flag {
        return Ok(dir.clone());
    }
    if config_path.exists() {
        let config = Config::load(config_path).with_context(|| format!("reading {}", config_path.display()))?;
        return Ok(config.engine.data_dir);
    }
    Ok(PathBuf::from("data"))
}
