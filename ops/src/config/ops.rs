//! The `[http]` and `[notify]` sections: operator surfaces.
//!
//! Secrets never live in the config file: each section names the environment
//! variable that holds its token, URL or shared secret (`token_env`,
//! `webhook_secret_env`, `webhook_url_env`), so the file can be committed and
//! shared while the values stay in the service's environment.

use serde::{Deserialize, Serialize};

use super::{ConfigError, DurationMs};

/// The HTTP control API and `/metrics`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    /// Serve the API.
    pub enabled: bool,
    /// Listen address (loopback by default).
    pub listen: String,
    /// Environment variable holding the bearer token every `/api/v1/*` request
    /// needs. While it is unset, those requests get 401 (`/health`, `/ready`
    /// and `/metrics` stay open).
    pub token_env: String,
    /// Environment variable holding the shared secret of
    /// `POST /api/v1/webhook/tradingview` (the alert carries it in its body).
    /// While it is unset, webhook requests get 401.
    pub webhook_secret_env: String,
    /// How long a webhook alert's `id` is remembered (in the store, so across
    /// restarts): a second alert with the same id within it is refused and
    /// places no order (0 = ids are not remembered).
    pub webhook_id_window: DurationMs,
    /// An alert whose `timestamp` is further than this from now is refused
    /// (0 = no limit; alerts without a timestamp are not checked).
    pub webhook_max_age: DurationMs,
    /// Failed authentications (missing or wrong token or webhook secret) per
    /// minute an address may make once its burst is used; beyond that its
    /// failed attempts get 429. Requests with the right credential are never
    /// refused by this lockout (0 = no lockout).
    pub rate_limit_per_minute: u32,
    /// Failed authentications an address may make back to back before the
    /// per-minute rate applies.
    pub rate_limit_burst: u32,
    /// Requests per minute each address may make to `/health`, `/ready` and
    /// `/metrics` once its burst is used (0 = no limit).
    pub probe_rate_limit_per_minute: u32,
    /// Probe requests an address may make back to back.
    pub probe_rate_limit_burst: u32,
    /// PEM certificate chain: with `tls_key`, the listener speaks HTTPS only.
    pub tls_cert: Option<std::path::PathBuf>,
    /// PEM private key of `tls_cert` (PKCS#8, PKCS#1 or SEC1).
    pub tls_key: Option<std::path::PathBuf>,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            listen: "127.0.0.1:9184".into(),
            token_env: "KEEL_API_TOKEN".into(),
            webhook_secret_env: "KEEL_WEBHOOK_SECRET".into(),
            webhook_id_window: DurationMs(24 * 3_600_000),
            webhook_max_age: DurationMs(5 * 60_000),
            rate_limit_per_minute: 120,
            rate_limit_burst: 30,
            probe_rate_limit_per_minute: 1200,
            probe_rate_limit_burst: 120,
            tls_cert: None,
            tls_key: None,
        }
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
        env_name("http.token_env", &self.token_env)?;
        env_name("http.webhook_secret_env", &self.webhook_secret_env)?;
        if self.rate_limit_per_minute > 0 && self.rate_limit_burst == 0 {
            return Err(ConfigError::new("http.rate_limit_burst", "must be at least 1 when a rate limit is set"));
        }
        match (&self.tls_cert, &self.tls_key) {
            (Some(_), None) => return Err(ConfigError::new("http.tls_key", "tls_cert is set: set tls_key too")),
            (None, Some(_)) => return Err(ConfigError::new("http.tls_cert", "tls_key is set: set tls_cert too")),
            _ => {}
        }
        if self.probe_rate_limit_per_minute > 0 && self.probe_rate_limit_burst == 0 {
            return Err(ConfigError::new("http.probe_rate_limit_burst", "must be at least 1 when a rate limit is set"));
        }
        Ok(())
    }
}

/// Operator notifications and the Telegram bot.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NotifyConfig {
    /// Messages waiting per notifier; when full, new ones are dropped (and counted).
    pub queue_capacity: usize,
    /// Least time between two messages of one notifier (Telegram allows about one per second per chat).
    pub min_interval: DurationMs,
    /// Risk rejections are collected for this long and sent as one message.
    pub rejection_batch: DurationMs,
    /// Daily summary time, `HH:MM` in UTC (empty = no summary).
    pub daily_summary: String,
    /// Send a message for every fill.
    pub fills: bool,
    /// The Telegram bot (commands and notifications).
    pub telegram: TelegramConfig,
    /// A Discord channel webhook (notifications only).
    pub discord: DiscordConfig,
}

impl Default for NotifyConfig {
    fn default() -> Self {
        Self {
            queue_capacity: 256,
            min_interval: DurationMs(1_000),
            rejection_batch: DurationMs(10_000),
            daily_summary: "00:00".into(),
            fills: true,
            telegram: TelegramConfig::default(),
            discord: DiscordConfig::default(),
        }
    }
}

impl NotifyConfig {
    /// Rejects impossible values.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.queue_capacity == 0 || self.queue_capacity > 100_000 {
            return Err(ConfigError::new("notify.queue_capacity", "must be between 1 and 100000"));
        }
        if self.min_interval.0 < 0 {
            return Err(ConfigError::new("notify.min_interval", "must not be negative"));
        }
        if self.rejection_batch.0 <= 0 {
            return Err(ConfigError::new("notify.rejection_batch", "must be positive"));
        }
        if !self.daily_summary.is_empty() && parse_hh_mm(&self.daily_summary).is_none() {
            return Err(ConfigError::new(
                "notify.daily_summary",
                format!("`{}` is not a UTC time like 20:00 (or empty for none)", self.daily_summary),
            ));
        }
        self.telegram.validate()?;
        self.discord.validate()
    }

    /// The daily summary time as seconds after UTC midnight, if configured.
    pub fn daily_summary_secs(&self) -> Option<u32> {
        parse_hh_mm(&self.daily_summary)
    }
}

/// The Telegram bot: long polling, so no inbound port is needed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TelegramConfig {
    /// Run the bot.
    pub enabled: bool,
    /// Environment variable holding the bot token (from @BotFather).
    pub token_env: String,
    /// Chats the bot answers and sends notifications to.
    pub allowed_chat_ids: Vec<i64>,
    /// Users whose commands the bot obeys (checked together with the chat).
    pub allowed_user_ids: Vec<i64>,
    /// Bot API base URL (a local Bot API server or a test fake may replace it).
    pub api_url: String,
    /// Long-polling timeout of `getUpdates`.
    pub poll_timeout: DurationMs,
    /// How long a `/resume` or `/flatten` waits for `/confirm`.
    pub confirm_timeout: DurationMs,
}

impl Default for TelegramConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            token_env: "KEEL_TELEGRAM_TOKEN".into(),
            allowed_chat_ids: Vec::new(),
            allowed_user_ids: Vec::new(),
            api_url: "https://api.telegram.org".into(),
            poll_timeout: DurationMs(10_000),
            confirm_timeout: DurationMs(60_000),
        }
    }
}

impl TelegramConfig {
    /// Rejects impossible values.
    pub fn validate(&self) -> Result<(), ConfigError> {
        env_name("notify.telegram.token_env", &self.token_env)?;
        http_url("notify.telegram.api_url", &self.api_url)?;
        if self.enabled && self.allowed_chat_ids.is_empty() {
            return Err(ConfigError::new(
                "notify.telegram.allowed_chat_ids",
                "list at least one chat id when the bot is enabled",
            ));
        }
        if self.enabled && self.allowed_user_ids.is_empty() {
            return Err(ConfigError::new(
                "notify.telegram.allowed_user_ids",
                "list at least one user id when the bot is enabled",
            ));
        }
        if self.poll_timeout.0 < 0 || self.poll_timeout.0 > 60_000 {
            return Err(ConfigError::new("notify.telegram.poll_timeout", "must be between 0s and 60s"));
        }
        if self.confirm_timeout.0 <= 0 {
            return Err(ConfigError::new("notify.telegram.confirm_timeout", "must be positive"));
        }
        Ok(())
    }
}

/// A Discord channel webhook.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DiscordConfig {
    /// Send notifications to Discord.
    pub enabled: bool,
    /// Environment variable holding the webhook URL (it contains the secret).
    pub webhook_url_env: String,
}

impl Default for DiscordConfig {
    fn default() -> Self {
        Self { enabled: false, webhook_url_env: "KEEL_DISCORD_WEBHOOK_URL".into() }
    }
}

impl DiscordConfig {
    /// Rejects impossible values.
    pub fn validate(&self) -> Result<(), ConfigError> {
        env_name("notify.discord.webhook_url_env", &self.webhook_url_env)
    }
}

/// `HH:MM` → seconds after midnight.
fn parse_hh_mm(text: &str) -> Option<u32> {
    let (h, m) = text.split_once(':')?;
    if h.len() != 2 || m.len() != 2 {
        return None;
    }
    let h: u32 = h.parse().ok()?;
    let m: u32 = m.parse().ok()?;
    (h < 24 && m < 60).then_some(h * 3600 + m * 60)
}

fn env_name(key: &str, name: &str) -> Result<(), ConfigError> {
    let ok = !name.is_empty()
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !name.starts_with(|c: char| c.is_ascii_digit());
    if ok {
        Ok(())
    } else {
        Err(ConfigError::new(
            key,
            format!("`{name}` is not an environment variable name (letters, digits, `_`); put the secret in the environment, not here"),
        ))
    }
}

fn http_url(key: &str, url: &str) -> Result<(), ConfigError> {
    let rest = url.strip_prefix("https://").or_else(|| url.strip_prefix("http://"));
    match rest {
        Some(host) if !host.is_empty() && !host.contains(char::is_whitespace) => Ok(()),
        _ => Err(ConfigError::new(key, format!("`{url}` is not an http(s) URL"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_local() {
        let http = HttpConfig::default();
        assert!(http.validate().is_ok());
        assert!(http.listen.starts_with("127.0.0.1:"));
        let notify = NotifyConfig::default();
        assert!(notify.validate().is_ok());
        assert!(!notify.telegram.enabled && !notify.discord.enabled);
    }

    #[test]
    fn bad_values_name_their_key() {
        struct Case {
            name: &'static str,
            http: Option<HttpConfig>,
            notify: Option<NotifyConfig>,
            key: &'static str,
        }
        let cases = [
            Case {
                name: "token in place of a variable name",
                http: Some(HttpConfig { token_env: "abc def".into(), ..Default::default() }),
                notify: None,
                key: "http.token_env",
            },
            Case {
                name: "certificate without key",
                http: Some(HttpConfig { tls_cert: Some("cert.pem".into()), ..Default::default() }),
                notify: None,
                key: "http.tls_key",
            },
            Case {
                name: "burst zero",
                http: Some(HttpConfig { rate_limit_burst: 0, ..Default::default() }),
                notify: None,
                key: "http.rate_limit_burst",
            },
            Case {
                name: "summary time",
                http: None,
                notify: Some(NotifyConfig { daily_summary: "25:00".into(), ..Default::default() }),
                key: "notify.daily_summary",
            },
            Case {
                name: "bot without chats",
                http: None,
                notify: Some(NotifyConfig {
                    telegram: TelegramConfig { enabled: true, allowed_user_ids: vec![1], ..Default::default() },
                    ..Default::default()
                }),
                key: "notify.telegram.allowed_chat_ids",
            },
            Case {
                name: "bot without users",
                http: None,
                notify: Some(NotifyConfig {
                    telegram: TelegramConfig { enabled: true, allowed_chat_ids: vec![1], ..Default::default() },
                    ..Default::default()
                }),
                key: "notify.telegram.allowed_user_ids",
            },
            Case {
                name: "api url",
                http: None,
                notify: Some(NotifyConfig {
                    telegram: TelegramConfig { api_url: "ftp://x".into(), ..Default::default() },
                    ..Default::default()
                }),
                key: "notify.telegram.api_url",
            },
        ];
        for c in cases {
            let err = match (c.http, c.notify) {
                (Some(h), _) => h.validate(),
                (_, Some(n)) => n.validate(),
                _ => Ok(()),
            };
            match err {
                Err(e) => assert_eq!(e.key, c.key, "{}", c.name),
                Ok(()) => panic!("{}: accepted", c.name),
            }
        }
    }

    #[test]
    fn summary_time_parses() {
        assert_eq!(parse_hh_mm("00:00"), Some(0));
        assert_eq!(parse_hh_mm("20:30"), Some(73_800));
        assert_eq!(parse_hh_mm("7:30"), None);
    }
}
