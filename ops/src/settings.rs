//! Where the config comes from, loading it and validating everything.
//!
//! Every command finds its config the same way, so `keel` works from any
//! directory: `--config PATH` if given (it must exist), else `./config.toml`
//! if there is one, else the default config compiled into the binary (the
//! repository's `config.toml`: the embedded sandbox, paper money, all local).
//! `keel config default` prints that default to start a file from.

use std::fmt;
use std::path::{Path, PathBuf};

use crate::config::Config;

/// The default config, compiled in: the repository's `config.toml`.
pub const DEFAULT_CONFIG: &str = include_str!("../../config.toml");

/// The file looked for in the working directory when no `--config` is given.
pub const LOCAL_CONFIG: &str = "config.toml";

/// Where a config was read from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigSource {
    /// A file (given with `--config`, or `./config.toml`).
    File(PathBuf),
    /// The default compiled into the binary.
    BuiltIn,
}

impl fmt::Display for ConfigSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::File(p) => write!(f, "{}", p.display()),
            Self::BuiltIn => f.write_str("the built-in default config"),
        }
    }
}

impl ConfigSource {
    /// The source for a `--config` flag: the flag, else `./config.toml` if it
    /// exists, else the built-in default.
    pub fn resolve(flag: Option<&Path>) -> Self {
        match flag {
            Some(p) => Self::File(p.to_path_buf()),
            None if Path::new(LOCAL_CONFIG).is_file() => Self::File(PathBuf::from(LOCAL_CONFIG)),
            None => Self::BuiltIn,
        }
    }

    /// One line for the log or the terminal saying which config is in use.
    pub fn describe(&self) -> String {
        match self {
            Self::File(p) => format!("config: {}", p.display()),
            Self::BuiltIn => format!(
                "config: the built-in default (no --config and no ./{LOCAL_CONFIG}); `keel config default` prints it"
            ),
        }
    }

    /// Reads and parses the config (engine checks only; see [`load`]).
    pub fn read(&self) -> anyhow::Result<Config> {
        match self {
            Self::File(path) => Config::load(path).map_err(|e| anyhow::anyhow!("{}: {e}", path.display())),
            Self::BuiltIn => Config::parse(DEFAULT_CONFIG).map_err(|e| anyhow::anyhow!("built-in default config: {e}")),
        }
    }
}

/// Loads the config for `flag` and validates everything, strategy parameters
/// included (against the kinds in `registry`). The error is one line naming the file, the key and the reason.
pub fn load(flag: Option<&Path>, registry: &strategies::StrategyRegistry) -> anyhow::Result<(Config, ConfigSource)> {
    let source = ConfigSource::resolve(flag);
    let config = source.read()?;
    registry.validate_all(&config.strategies).map_err(|e| anyhow::anyhow!("{source}: {e}"))?;
    Ok((config, source))
}

/// The data directory: the flag wins over the config. A relative config path
/// is taken relative to the working directory, like every other path.
pub fn data_dir(config: &Config, flag: Option<&PathBuf>) -> PathBuf {
    flag.cloned().unwrap_or_else(|| config.engine.data_dir.clone())
}

/// The data directory for commands that work on a stopped engine: the flag,
/// else the config's (`--config`, `./config.toml` or the built-in default).
pub fn data_dir_for_tools(config_flag: Option<&Path>, flag: Option<&PathBuf>) -> anyhow::Result<PathBuf> {
    if let Some(dir) = flag {
        return Ok(dir.clone());
    }
    Ok(ConfigSource::resolve(config_flag).read()?.engine.data_dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_built_in_default_is_the_repository_config_and_valid() {
        let on_disk = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../config.toml")).unwrap();
        assert_eq!(DEFAULT_CONFIG, on_disk);
        let config = ConfigSource::BuiltIn.read().unwrap();
        strategies::StrategyRegistry::builtin().validate_all(&config.strategies).unwrap();
        assert!(!config.strategies.is_empty(), "the default trades something");
        assert!(ConfigSource::BuiltIn.describe().contains("built-in default"));
    }

    #[test]
    fn a_named_file_wins_and_a_missing_one_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope.toml");
        let source = ConfigSource::resolve(Some(&missing));
        assert_eq!(source, ConfigSource::File(missing.clone()));
        let err = source.read().unwrap_err().to_string();
        assert!(err.contains("nope.toml") && err.contains("cannot read"), "{err}");
    }
}
