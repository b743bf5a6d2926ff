//! A manual harness: runs the sandbox on a fixed loopback port so an
//! independent Binance client can be pointed at it.
//!
//! `KEEL_SANDBOX_HOLD_S=120 cargo test -p keel-engine --test sandbox_standalone -- --ignored --nocapture`

use keel_sandbox::{Sandbox, SandboxConfig};

#[tokio::test]
#[ignore = "manual: holds a sandbox open for an external client"]
async fn hold_sandbox_open() {
    let hold: u64 = std::env::var("KEEL_SANDBOX_HOLD_S").ok().and_then(|v| v.parse().ok()).unwrap_or(60);
    let listen = std::env::var("KEEL_SANDBOX_LISTEN").unwrap_or_else(|_| "127.0.0.1:18080".into());
    let sb = Sandbox::start(SandboxConfig { listen, ..SandboxConfig::demo() }).await.expect("sandbox starts");
    println!("{}", sb.describe());
    tokio::time::sleep(std::time::Duration::from_secs(hold)).await;
    sb.shutdown().await;
}
