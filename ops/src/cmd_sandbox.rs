//! `keel sandbox`: the Binance-protocol sandbox exchange, standalone, until
//! Ctrl-C or SIGTERM. Any Binance spot client can use it by changing only its
//! base URLs; `keel run` in `testnet` mode reaches it through the URL
//! overrides of `[venue.binance]`.

use std::path::PathBuf;

use crate::config::LogFormat;
use crate::settings::ConfigSource;
use anyhow::Context;
use keel_sandbox::{Sandbox, SandboxConfig, SandboxHandle};

/// `keel sandbox`.
#[derive(Debug, Clone, clap::Args)]
pub struct SandboxArgs {
    /// Listen address (loopback by default; port 0 picks a free port).
    #[arg(long)]
    pub listen: Option<String>,
    /// Config file: `[sandbox]`, with `[[symbol]]`, `[balances]` and `[venue]`
    /// timing for the keys it does not set. Default: ./config.toml if it
    /// exists, else the built-in default config.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Simulated minutes per minute of wall time (overrides `[sandbox] speed`;
    /// default 1, real time).
    #[arg(long)]
    pub speed: Option<f64>,
    /// Keep the exchange's state (orders, balances, fills, prices, clock) in
    /// this directory across restarts (overrides `[sandbox] state_dir`).
    #[arg(long)]
    pub state_dir: Option<PathBuf>,
}

/// The first line printed once the sandbox listens, followed by one JSON
/// object (URLs and the test key) for scripts and tests.
pub const READY_PREFIX: &str = "SANDBOX_READY ";

/// The sandbox settings for `args`.
pub fn sandbox_config(args: &SandboxArgs) -> anyhow::Result<(SandboxConfig, LogFormat, String)> {
    let config = ConfigSource::resolve(args.config.as_deref()).read()?;
    let mut sb = config.sandbox_config(crate::config::SimulatedClock::Standalone);
    if let Some(speed) = args.speed {
        sb.speed = speed;
    }
    if let Some(dir) = &args.state_dir {
        sb.state_dir = Some(dir.clone());
    }
    if !config.sandbox.sets("key_dir") {
        // The generated test Ed25519 key is kept where the sandbox was started.
        sb.key_dir = Some(std::env::current_dir().context("cannot read the working dir")?);
    }
    sb.validate().map_err(|e| anyhow::anyhow!("{e}"))?;
    for line in config.deprecations() {
        eprintln!("keel: warning: {line}");
    }
    let (format, level) = (config.engine.log_format, config.engine.log_level.clone());
    if let Some(listen) = &args.listen {
        sb.listen = listen.clone();
    }
    Ok((sb, format, level))
}

/// Runs the sandbox until Ctrl-C or SIGTERM.
pub fn run(args: SandboxArgs, log_format: Option<LogFormat>) -> anyhow::Result<()> {
    let (cfg, format, level) = sandbox_config(&args)?;
    let _log = crate::logging::init(log_format.unwrap_or(format), &level);
    let rt = tokio::runtime::Runtime::new().context("cannot start the runtime")?;
    rt.block_on(async move {
        let handle = Sandbox::start(cfg).await?;
        print_ready(&handle);
        tracing::info!(rest = %handle.rest_url, "sandbox exchange running; Ctrl-C or SIGTERM stops it");
        wait_for_stop().await;
        handle.shutdown().await;
        tracing::info!("sandbox stopped");
        Ok(())
    })
}

/// Prints the URLs, the test keys and how to point Keel at the sandbox.
fn print_ready(h: &SandboxHandle) {
    println!("{}", h.describe());
    println!(
        "  keel:        [venue] mode = \"testnet\" with [venue.binance] rest_url = \"{}\", ws_stream_url = \"{}\", ws_api_url = \"{}\"",
        h.rest_url, h.ws_stream_url, h.ws_api_url
    );
    match (&h.ed25519_api_key, &h.ed25519_private_key_path) {
        (Some(key), Some(path)) => println!(
            "               Ed25519: KEEL_BINANCE_API_KEY={key} KEEL_BINANCE_PRIVATE_KEY_PATH={}; or HMAC: KEEL_BINANCE_API_KEY={} KEEL_BINANCE_API_SECRET={}",
            path.display(),
            h.api_key,
            h.api_secret
        ),
        _ => println!("               HMAC: KEEL_BINANCE_API_KEY={} KEEL_BINANCE_API_SECRET={}", h.api_key, h.api_secret),
    }
    println!("{READY_PREFIX}{}", ready_json(h));
}

/// The `SANDBOX_READY` object: URLs, the HMAC test key and secret, and the
/// Ed25519 test key's id and private key file (null when there is none).
pub fn ready_json(h: &SandboxHandle) -> serde_json::Value {
    serde_json::json!({
        "rest_url": h.rest_url,
        "ws_stream_url": h.ws_stream_url,
        "ws_api_url": h.ws_api_url,
        "api_key": h.api_key,
        "api_secret": h.api_secret,
        "ed25519_api_key": h.ed25519_api_key,
        "ed25519_private_key_path": h.ed25519_private_key_path.as_ref().map(|p| p.display().to_string()),
    })
}

async fn wait_for_stop() {
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = tokio::signal::ctrl_c() => tracing::info!("Ctrl-C"),
        _ = term => tracing::info!("SIGTERM"),
    }
}
