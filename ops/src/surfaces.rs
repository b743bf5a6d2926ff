//! Operator surfaces started next to the engine: HTTP API, metrics, Telegram, notifications.
//!
//! None of them can stop trading by failing: a bad bind address is reported
//! as an error from [`start`] (the operator asked for an API that cannot run),
//! while a missing bot token or webhook URL only disables that notifier with a
//! loud log line. Secrets are read from the environment variables the config
//! names and never logged.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use crate::config::Config;
use actors::metrics::metrics;
use actors::EngineHandle;
use rust_decimal::prelude::ToPrimitive;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::chart::Charts;
use crate::http::{self, ApiState, RunningHttp};
use crate::notice::{Notice, Severity};
use crate::notify::{self, DiscordNotifier, Notifications, Notifier, TelegramNotifier};
use crate::secret::Secret;
use crate::telegram::{self, TelegramBot};

/// The running operator surfaces.
pub struct Surfaces {
    http: Option<RunningHttp>,
    notifications: Notifications,
    shutdown: watch::Sender<bool>,
    events: Option<JoinHandle<()>>,
    bot: Option<JoinHandle<()>>,
    workers: Vec<JoinHandle<()>>,
}

/// The notifiers, built before the engine starts so that a start-up
/// failure reaches the operator too ([`notify_start_failure`]).
pub struct Notifiers {
    notifications: Notifications,
    workers: Vec<JoinHandle<()>>,
    /// The Telegram bot and its token, for the command runner once the engine runs.
    telegram: Option<(teloxide::Bot, Secret)>,
    /// Where Discord's charts get bars and fills once the engine runs.
    charts: Charts,
}

/// How long a start-up failure waits for its notification to go out.
pub const FAILURE_NOTICE_WAIT: Duration = Duration::from_secs(5);

impl Notifiers {
    /// Starts a sending worker per configured notifier (Telegram: one per
    /// allowed chat; Discord). A missing bot token or webhook URL only turns
    /// that notifier off, with a loud line.
    pub fn build(config: &Config) -> Self {
        let capacity = config.notify.queue_capacity;
        let interval = config.notify.min_interval.as_std();
        let mut queues = Vec::new();
        let mut workers = Vec::new();
        let mut telegram = None;
        let charts = Charts::default();
        let tg = &config.notify.telegram;
        if tg.enabled {
            match Secret::from_env(&tg.token_env) {
                None => tracing::error!(
                    env = %tg.token_env,
                    "notify.telegram is enabled but the bot token variable is not set: Telegram is OFF"
                ),
                Some(token) => match telegram::build_bot(&token, tg) {
                    Err(e) => tracing::error!(error = %e, "Telegram is OFF"),
                    Ok(b) => {
                        for chat in &tg.allowed_chat_ids {
                            let n: Arc<dyn Notifier> = Arc::new(TelegramNotifier::new(b.clone(), *chat, token.clone()));
                            let (q, w) = notify::spawn_worker(n, capacity, interval);
                            queues.push(q);
                            workers.push(w);
                        }
                        telegram = Some((b, token));
                    }
                },
            }
        }
        let dc = &config.notify.discord;
        if dc.enabled {
            match Secret::from_env(&dc.webhook_url_env) {
                None => tracing::error!(
                    env = %dc.webhook_url_env,
                    "notify.discord is enabled but the webhook URL variable is not set: Discord is OFF"
                ),
                Some(url) => {
                    let n: Arc<dyn Notifier> = Arc::new(DiscordNotifier::new(url, Some(charts.clone())));
                    let (q, w) = notify::spawn_worker(n, capacity, interval);
                    queues.push(q);
                    workers.push(w);
                }
            }
        }
        Self { notifications: Notifications::new(queues), workers, telegram, charts }
    }

    /// The fan-out to every notifier.
    pub fn notifications(&self) -> &Notifications {
        &self.notifications
    }
}

/// Sends "Keel failed to start: <reason>" to every notifier as a critical
/// message and waits (at most [`FAILURE_NOTICE_WAIT`]) until it has gone out.
pub async fn notify_start_failure(notifications: &Notifications, reason: &anyhow::Error) {
    if notifications.is_empty() {
        return;
    }
    let text = format!("Keel failed to start: {reason:#}");
    let notice = Notice::new("Keel failed to start", Severity::Critical, text, crate::summary::now_ms());
    notifications.push_notice(notice, notify::Priority::Critical);
    if !notifications.sent_within(FAILURE_NOTICE_WAIT).await {
        tracing::warn!("the start-up failure notification was not sent in time");
    }
}

/// Starts every configured operator surface for a running engine.
pub async fn start(config: &Config, handle: &EngineHandle) -> anyhow::Result<Surfaces> {
    start_with(config, handle, Notifiers::build(config)).await
}

/// Starts the operator surfaces for a running engine with notifiers built
/// before it started.
pub async fn start_with(config: &Config, handle: &EngineHandle, notifiers: Notifiers) -> anyhow::Result<Surfaces> {
    let config = Arc::new(config.clone());
    prime_metrics(&config);
    let (shutdown, shutdown_rx) = watch::channel(false);

    let http = if config.http.enabled {
        let (token, webhook) = http::secrets::load(&config.http)?;
        if token.is_none() {
            tracing::warn!(
                env = %config.http.token_env,
                "HTTP API token not set: /api/v1 answers 401 until the variable is set (health, ready and metrics stay open)"
            );
        }
        let state = ApiState::new(handle.clone(), config.clone(), token, webhook);
        let running = http::start(state, &config.http.listen)?;
        tracing::info!(listen = %running.addr, tls = running.tls, "HTTP API and /metrics listening");
        Some(running)
    } else {
        None
    };

    let Notifiers { notifications, workers, telegram, charts } = notifiers;
    charts.set_engine(handle, config.engine.bar_interval.0);
    let bot = telegram
        .map(|(b, token)| TelegramBot::new(b, token, handle.clone(), config.clone()).spawn(shutdown_rx.clone()));
    // The engine announced `Started` before the surfaces subscribed: say it here.
    if !notifications.is_empty() {
        let state = handle.risk().await.map(|r| r.trading_state.as_str()).unwrap_or("unknown");
        let text = format!(
            "Keel {} started: {}, venue {}, trading {state}, {} strategies",
            env!("CARGO_PKG_VERSION"),
            config.venue_banner(),
            handle.venue().name(),
            handle.strategy_ids().len()
        );
        let notice = Notice::new("Keel started", Severity::Info, text, crate::summary::now_ms());
        notifications.push_notice(notice, notify::Priority::Normal);
    }
    let events = notify::spawn_events(handle.clone(), config.clone(), notifications.clone(), shutdown_rx);
    Ok(Surfaces { http, notifications, shutdown, events: Some(events), bot, workers })
}

/// Creates the labelled series known from the config and the configured
/// drawdown limit, so dashboards and alert rules find every metric at once.
pub fn prime_metrics(config: &Config) {
    let symbols: Vec<&str> = config.symbols.iter().map(|s| s.symbol.as_str()).collect();
    // A template's instances come and go with the universe: their series appear as they start.
    let strategies: Vec<&str> = config.strategies.iter().filter(|s| !s.is_template()).map(|s| s.id.as_str()).collect();
    let m = metrics();
    m.prime(&symbols, &strategies);
    m.info.reset();
    let exchange = config.exchange_in_use().map(|e| e.as_str()).unwrap_or_default();
    m.info.with_label_values(&[config.venue_description(), exchange]).set(1);
    for c in telegram::COMMANDS {
        m.telegram_commands_total.with_label_values(&[c.name]);
    }
    m.drawdown_limit_ratio
        .set((config.risk.max_drawdown_pct / rust_decimal::Decimal::ONE_HUNDRED).to_f64().unwrap_or(0.0));
}

impl Surfaces {
    /// The HTTP API's bound address, when it runs.
    pub fn http_addr(&self) -> Option<SocketAddr> {
        self.http.as_ref().map(|h| h.addr)
    }

    /// The HTTP API's base URL (`https://…` with TLS), when it runs.
    pub fn http_url(&self) -> Option<String> {
        self.http.as_ref().map(|h| format!("{}://{}", if h.tls { "https" } else { "http" }, h.addr))
    }

    /// The notification fan-out (to send an operator message from elsewhere).
    pub fn notifications(&self) -> &Notifications {
        &self.notifications
    }

    /// Stops them (after the engine has announced its shutdown): pending
    /// notifications get a few seconds to go out, then everything stops.
    pub async fn stop(mut self) {
        // Let the event task turn `ShuttingDown` into a message first.
        tokio::time::sleep(Duration::from_millis(50)).await;
        let _ = self.shutdown.send(true);
        if let Some(events) = self.events.take() {
            let _ = tokio::time::timeout(Duration::from_secs(2), events).await;
        }
        self.notifications.sent_within(Duration::from_secs(3)).await;
        if let Some(mut bot) = self.bot.take() {
            if tokio::time::timeout(Duration::from_secs(2), &mut bot).await.is_err() {
                tracing::warn!("telegram bot did not stop in time");
                bot.abort();
            }
        }
        for w in self.workers.drain(..) {
            w.abort();
        }
        if let Some(http) = self.http.take() {
            http.stop().await;
        }
    }
}
