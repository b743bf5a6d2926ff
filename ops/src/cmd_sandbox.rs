//! `keel sandbox`: the sandbox exchange, standalone, until Ctrl-C or
//! SIGTERM. Any Binance spot client can use it by changing only its base
//! URLs; `keel run` in `testnet` mode reaches it through the URL overrides of
//! `[venue.binance]`. With `--protocol coinbase` it presents the same
//! exchange as Coinbase Advanced Trade (REST `/api/v3/brokerage`, the market
//! and user WebSocket endpoints) and hands out a CDP-style test key instead
//! of the Binance ones. `--tls` serves HTTPS and WSS with a self-signed
//! certificate written to the working dir.

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
    /// The protocol whose test keys and URLs are handed out: `binance` (the
    /// default) or `coinbase`. The server speaks both on one port.
    #[arg(long, value_enum, default_value_t = Protocol::Binance)]
    pub protocol: Protocol,
    /// The Coinbase test key's type (`--protocol coinbase`): `ec` (P-256)
    /// or `ed25519` (overrides `[sandbox] coinbase_key_type`, default `ec`).
    #[arg(long, value_enum)]
    pub key_type: Option<KeyTypeArg>,
    /// Serve HTTPS and WSS with a self-signed certificate (names 127.0.0.1
    /// and localhost) written to the working dir as `sandbox-cert.pem`, for
    /// clients that insist on TLS: they trust it as their CA.
    #[arg(long)]
    pub tls: bool,
}

/// `keel sandbox --protocol`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Protocol {
    /// Binance spot.
    Binance,
    /// Coinbase Advanced Trade.
    Coinbase,
}

/// `keel sandbox --key-type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum KeyTypeArg {
    /// ECDSA P-256 (ES256).
    Ec,
    /// Ed25519 (EdDSA).
    Ed25519,
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
    // Only the chosen protocol's test key is made (and written to disk).
    let coinbase = args.protocol == Protocol::Coinbase;
    sb.generate_ed25519_key &= !coinbase;
    sb.generate_coinbase_key = coinbase;
    sb.tls |= args.tls;
    match args.key_type {
        Some(KeyTypeArg::Ec) => sb.coinbase_key_type = keel_sandbox::coinbase::test_key::KeyType::Ec,
        Some(KeyTypeArg::Ed25519) => sb.coinbase_key_type = keel_sandbox::coinbase::test_key::KeyType::Ed25519,
        None => {}
    }
    Ok((sb, format, level))
}

/// Runs the sandbox until Ctrl-C or SIGTERM.
pub fn run(args: SandboxArgs, log_format: Option<LogFormat>) -> anyhow::Result<()> {
    let (cfg, format, level) = sandbox_config(&args)?;
    let protocol = args.protocol;
    let _log = crate::logging::init(log_format.unwrap_or(format), &level);
    let rt = tokio::runtime::Runtime::new().context("cannot start the runtime")?;
    rt.block_on(async move {
        let handle = Sandbox::start(cfg).await?;
        match protocol {
            Protocol::Binance => print_ready(&handle),
            Protocol::Coinbase => print_ready_coinbase(&handle),
        }
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
        "  keel:        [venue] mode = \"testnet\" with [venue.binance] rest_url = \"{rest}\", ws_stream_url = \"{ws}\", ws_api_url = \"{}\", fapi_rest_url = \"{rest}\", fapi_ws_url = \"{ws}\"",
        h.ws_api_url,
        rest = h.rest_url,
        ws = h.ws_stream_url
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
/// Ed25519 test key's id and private key file (null when there is none),
/// and with `--tls` the certificate to trust (`ca_cert_path`).
pub fn ready_json(h: &SandboxHandle) -> serde_json::Value {
    let mut v = serde_json::json!({
        "rest_url": h.rest_url,
        "ws_stream_url": h.ws_stream_url,
        "ws_api_url": h.ws_api_url,
        "api_key": h.api_key,
        "api_secret": h.api_secret,
        "ed25519_api_key": h.ed25519_api_key,
        "ed25519_private_key_path": h.ed25519_private_key_path.as_ref().map(|p| p.display().to_string()),
    });
    add_ca_cert(&mut v, h);
    v
}

/// Prints the Coinbase protocol's URLs and test key, and its ready line.
fn print_ready_coinbase(h: &SandboxHandle) {
    println!("Keel sandbox exchange (Coinbase Advanced Trade protocol)");
    println!("  REST:        {}/api/v3/brokerage", h.coinbase_rest_url);
    println!("  WS market:   {}", h.coinbase_ws_market_url);
    println!("  WS user:     {}", h.coinbase_ws_user_url);
    if let Some(name) = &h.coinbase_key_name {
        println!("  key name:    {name}");
    }
    match &h.coinbase_private_key_path {
        Some(path) => println!("  private key: {} (PEM, mode 0600)", path.display()),
        None => println!("  private key: none (the config registers its own Coinbase key)"),
    }
    if let Some(path) = &h.coinbase_private_key_base64_path {
        println!(
            "  private key: {} (raw base64 of the Ed25519 seed and public key, mode 0600; for ccxt)",
            path.display()
        );
    }
    if let Some(path) = &h.ca_cert_path {
        println!("  TLS certificate: {} (self-signed; trust it as the CA, e.g. REQUESTS_CA_BUNDLE)", path.display());
    }
    println!("{READY_PREFIX}{}", ready_json_coinbase(h));
}

/// The `--protocol coinbase` ready object: the REST base URL (endpoints
/// under `/api/v3/brokerage`), the market and user WebSocket URLs, the key
/// name and the private key's file, and with `--tls` the certificate to
/// trust (`ca_cert_path`).
pub fn ready_json_coinbase(h: &SandboxHandle) -> serde_json::Value {
    let mut v = serde_json::json!({
        "protocol": "coinbase",
        "rest_url": h.coinbase_rest_url,
        "ws_market_url": h.coinbase_ws_market_url,
        "ws_user_url": h.coinbase_ws_user_url,
        "api_key_name": h.coinbase_key_name,
        "private_key_path": h.coinbase_private_key_path.as_ref().map(|p| p.display().to_string()),
        "private_key_base64_path": h.coinbase_private_key_base64_path.as_ref().map(|p| p.display().to_string()),
    });
    add_ca_cert(&mut v, h);
    v
}

/// Adds `ca_cert_path` to a ready object when the sandbox serves TLS.
fn add_ca_cert(ready: &mut serde_json::Value, h: &SandboxHandle) {
    if let Some(path) = &h.ca_cert_path {
        ready["ca_cert_path"] = serde_json::json!(path.display().to_string());
    }
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
