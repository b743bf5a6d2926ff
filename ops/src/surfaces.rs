//! Operator surfaces started next to the engine: HTTP API, metrics, Telegram, notifications.

use actors::EngineHandle;
use engine::config::Config;

/// The running operator surfaces.
pub struct Surfaces {}

/// Starts every configured operator surface for a running engine.
pub async fn start(_config: &Config, _handle: &EngineHandle) -> anyhow::Result<Surfaces> {
    Ok(Surfaces {})
}

impl Surfaces {
    /// Stops them (after the engine has announced its shutdown).
    pub async fn stop(self) {}
}
