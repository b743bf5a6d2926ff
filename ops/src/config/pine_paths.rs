//! Pine blocks' script paths: `params.script` of a `kind = "pine"` block is
//! relative to the config file that names it, so a config and its scripts
//! move together; a loaded config holds the path as the process reads it.

use std::path::Path;

use keel_core::config::StrategyConfig;
use strategies::pine_kind::{PINE, SCRIPT};

/// Rewrites each relative `params.script` of a Pine block (templates too:
/// their instances copy the rewritten params) against `dir`, the config
/// file's directory. A value that is not a string is left for
/// [`strategies::pine_kind::compile_block`] to refuse by name.
pub fn resolve(strategies: &mut [StrategyConfig], dir: &Path) {
    for block in strategies.iter_mut().filter(|b| b.kind == PINE) {
        if let Some(toml::Value::String(script)) = block.params.get_mut(SCRIPT) {
            let path = Path::new(script.as_str());
            if path.is_relative() && !script.trim().is_empty() {
                *script = dir.join(path).display().to_string();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Relative scripts of Pine blocks move under the config's directory;
    /// absolute ones, other kinds and non-strings stay as written.
    #[test]
    fn relative_scripts_follow_the_config_file() {
        let block = |kind: &str, script: toml::Value, template: bool| StrategyConfig {
            id: "s".into(),
            kind: kind.into(),
            symbol: if template { String::new() } else { "BTCUSDT".into() },
            symbols: template.then(|| "universe".into()),
            paused: false,
            params: toml::Table::from_iter([("script".to_string(), script)]),
            exits: None,
        };
        let s = |t: &str| toml::Value::String(t.into());
        let dir = Path::new("/etc/keel");
        let absolute = "/p/a.pine";
        let cases = [
            (block("pine", s("pine/ema.pine"), false), s("/etc/keel/pine/ema.pine")),
            (block("pine", s("../x.pine"), true), s("/etc/keel/../x.pine")),
            (block("pine", s(absolute), false), s(absolute)),
            (block("pine", toml::Value::Integer(3), false), toml::Value::Integer(3)),
            (block("webhook", s("pine/ema.pine"), false), s("pine/ema.pine")),
        ];
        let mut blocks: Vec<StrategyConfig> = cases.iter().map(|(b, _)| b.clone()).collect();
        resolve(&mut blocks, dir);
        for ((before, want), after) in cases.iter().zip(&blocks) {
            assert_eq!(&after.params["script"], want, "{} {}", before.kind, before.params["script"]);
        }
        let mut here = vec![block("pine", s("a.pine"), false)];
        resolve(&mut here, Path::new(""));
        assert_eq!(here[0].params["script"], s("a.pine"), "a config in the working dir: relative to it");
    }

    /// Loading a config file resolves its Pine blocks' scripts; parsing
    /// text (the embedded default) leaves them relative to the working dir.
    #[test]
    fn loading_a_file_resolves_its_scripts() {
        let dir = tempfile::tempdir().unwrap();
        let text = format!(
            "{}\n[[strategy]]\nid = \"p\"\nkind = \"pine\"\nsymbol = \"BTCUSDT\"\nparams = {{ script = \"pine/a.pine\" }}\n",
            crate::config::btc_symbol_toml!()
        );
        let path = dir.path().join("keel.toml");
        std::fs::write(&path, &text).unwrap();
        let loaded = crate::config::Config::load(&path).unwrap();
        let want = dir.path().join("pine/a.pine").display().to_string();
        assert_eq!(loaded.strategies[0].params["script"].as_str(), Some(want.as_str()));
        let parsed = crate::config::Config::parse(&text).unwrap();
        assert_eq!(parsed.strategies[0].params["script"].as_str(), Some("pine/a.pine"));
    }
}
