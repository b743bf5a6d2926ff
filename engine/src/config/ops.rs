//! The `[http]` and `[notify]` sections: operator surfaces.

use serde::{Deserialize, Serialize};

use super::ConfigError;

/// The HTTP control API and `/metrics`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    /// Serve the API.
    pub enabled: bool,
    /// Listen address (loopback by default).
    pub listen: String,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self { enabled: true, listen: "127.0.0.1:9184".into() }
    }
}

impl HttpConfig {
    /// Rejects impossible values.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.listen.parse::<std::net::SocketAddr>().is_err() {
            return Err(ConfigError::new(
                "http.listen",
                format!("`{}` is not an address like 127.0.0.1:9184", self.listen),
            ));
        }
        Ok(())
    }
}

/// Operator notifications.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NotifyConfig {}

impl NotifyConfig {
    /// Rejects impossible values.
    pub fn validate(&self) -> Result<(), ConfigError> {
        Ok(())
    }
}
