//! `keel check-config`: the config is valid, and the secrets it names are in
//! the environment (checked, never printed).

use std::path::PathBuf;

use crate::config::{Config, Exchange, VenueMode};
use crate::secret::Secret;

/// `keel check-config`.
#[derive(Debug, Clone, clap::Args)]
pub struct CheckConfigArgs {
    /// Config file (default: ./config.toml, else the built-in default).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Pine scripts' repainting warnings are errors (non-zero exit).
    #[arg(long)]
    pub strict: bool,
}

/// One environment variable the config names for a secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretVar {
    /// The variable.
    pub var: String,
    /// The config key naming it.
    pub key: &'static str,
    /// Whether Keel cannot do what the config asks without it (else a
    /// feature stays off, e.g. `/api/v1` answers 401).
    pub required: bool,
}

/// The secret variables `config` names for what it enables.
pub fn secret_vars(config: &Config) -> Vec<SecretVar> {
    let mut out = Vec::new();
    let mut add = |var: &str, key: &'static str, required: bool| {
        out.push(SecretVar { var: var.to_string(), key, required });
    };
    let http = &config.http;
    if http.enabled {
        add(&http.token_env, "http.token_env", false);
        if config.strategies.iter().any(|s| s.kind == "webhook") {
            add(&http.webhook_secret_env, "http.webhook_secret_env", false);
        }
    }
    let binance = config.venue.exchange == Exchange::Binance;
    if binance && matches!(config.venue.mode, VenueMode::Testnet | VenueMode::Mainnet) {
        let b = &config.venue.binance;
        add(&b.api_key_env, "venue.binance.api_key_env", true);
        // An Ed25519 key names its PEM file; an HMAC key has its secret.
        if Secret::from_env(&b.private_key_path_env).is_some() {
            add(&b.private_key_path_env, "venue.binance.private_key_path_env", true);
        } else {
            add(&b.api_secret_env, "venue.binance.api_secret_env", true);
        }
    }
    // Coinbase mainnet and an external sandbox sign with the operator's key
    // (the embedded sandbox hands its own over).
    let c = &config.venue.coinbase;
    if !binance && c.endpoints(config.venue.mode).is_some() {
        add(&c.api_key_name_env, "venue.coinbase.api_key_name_env", true);
        // The private key itself, or the path of its PEM file.
        if Secret::from_env(&c.private_key_env).is_none() && std::env::var_os(&c.private_key_path_env).is_some() {
            add(&c.private_key_path_env, "venue.coinbase.private_key_path_env", true);
        } else {
            add(&c.private_key_env, "venue.coinbase.private_key_env", true);
        }
    }
    let tg = &config.notify.telegram;
    if tg.enabled {
        add(&tg.token_env, "notify.telegram.token_env", true);
    }
    let dc = &config.notify.discord;
    if dc.enabled {
        add(&dc.webhook_url_env, "notify.discord.webhook_url_env", true);
    }
    out
}

/// Runs `keel check-config`: prints `<source>: ok (…)`, then a line per
/// secret variable that is unset (or, for the API token and webhook secret,
/// too weak for `keel run`) and per repainting warning of a Pine script
/// (`file:line:col`). Fails when a required secret is missing or weak, and
/// under `--strict` on any repainting warning.
pub fn run(args: CheckConfigArgs, registry: &strategies::StrategyRegistry) -> anyhow::Result<()> {
    let (config, source) = crate::settings::load(args.config.as_deref(), registry)?;
    for line in config.deprecations() {
        eprintln!("keel: warning: {line}");
    }
    let repainting = crate::pine_warnings::of(&config.strategies).map_err(|e| anyhow::anyhow!("{source}: {e}"))?;
    for w in &repainting {
        eprintln!("keel: {w}");
    }
    let refused = args.strict && !repainting.is_empty();
    let mut problems = Vec::new();
    for v in secret_vars(&config) {
        match Secret::from_env(&v.var) {
            None if v.required => problems.push(format!("{} (named by {}) is not set", v.var, v.key)),
            None => eprintln!("keel: warning: {} (named by {}) is not set: {}", v.var, v.key, off_without(v.key)),
            Some(value) if v.key.starts_with("http.") => {
                if let Err(e) = crate::http::secrets::check(&v.var, v.key, &value) {
                    problems.push(e);
                }
            }
            Some(_) => {}
        }
    }
    let universe = config
        .universe
        .as_ref()
        .map(|u| {
            let templates = config.strategies.iter().filter(|s| s.is_template()).count();
            format!(", a universe of the top {} {} pairs for {templates} templates", u.top_n, u.quote)
        })
        .unwrap_or_default();
    let summary = format!(
        "{source}: {} ({} symbols, {} strategies{universe}, venue {}{})",
        if problems.is_empty() && !refused { "ok" } else { "not ready" },
        config.symbols.len(),
        config.strategies.len(),
        config.venue_description(),
        config.exchange_in_use().map(|e| format!(" on {}", e.as_str())).unwrap_or_default()
    );
    println!("{summary}");
    for s in &config.strategies {
        if let Some(spec) = &s.exits {
            println!("  {} exits: {}", s.id, crate::config::exits::describe(spec));
        }
    }
    for p in &problems {
        eprintln!("keel: {p}");
    }
    if !problems.is_empty() {
        anyhow::bail!("{} secret variable(s) missing or too weak", problems.len())
    }
    if refused {
        anyhow::bail!("{}", crate::pine_warnings::strict_refusal(repainting.len()))
    }
    Ok(())
}

fn off_without(key: &str) -> &'static str {
    if key == "http.token_env" {
        "/api/v1 answers 401 until it is set"
    } else {
        "the webhook answers 401 until it is set"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_what_the_config_enables() {
        let default = Config::parse(crate::settings::DEFAULT_CONFIG).unwrap();
        let vars: Vec<_> = secret_vars(&default).into_iter().map(|v| (v.key, v.required)).collect();
        assert_eq!(vars, vec![("http.token_env", false)], "the sandbox default needs no venue key");
        let mut testnet = default.clone();
        testnet.venue.mode = VenueMode::Testnet;
        testnet.notify.telegram.enabled = true;
        let keys: Vec<_> = secret_vars(&testnet).into_iter().filter(|v| v.required).map(|v| v.key).collect();
        assert_eq!(keys, ["venue.binance.api_key_env", "venue.binance.api_secret_env", "notify.telegram.token_env"]);

        let coinbase = |text: &str| {
            let config = Config::parse(text).unwrap();
            secret_vars(&config).into_iter().filter(|v| v.required).map(|v| v.key).collect::<Vec<_>>()
        };
        let embedded = "[venue]\nexchange = \"coinbase\"\nmode = \"sandbox\"\n";
        assert!(coinbase(embedded).is_empty(), "the embedded sandbox hands its key over");
        let external = format!(
            "{embedded}[venue.coinbase]\nrest_url = \"http://127.0.0.1:1\"\nws_market_url = \"ws://127.0.0.1:1/m\"\nws_user_url = \"ws://127.0.0.1:1/u\"\nprivate_key_env = \"KEEL_TEST_UNSET_COINBASE_PEM\"\nprivate_key_path_env = \"KEEL_TEST_UNSET_COINBASE_PATH\"\n"
        );
        assert_eq!(coinbase(&external), ["venue.coinbase.api_key_name_env", "venue.coinbase.private_key_env"]);
        let mainnet = "[venue]\nexchange = \"coinbase\"\nmode = \"mainnet\"\nconfirm_mainnet = true\n";
        assert_eq!(coinbase(mainnet), ["venue.coinbase.api_key_name_env", "venue.coinbase.private_key_env"]);
    }
}
