//! Operator notifications: a [`Notifier`] trait with Telegram and Discord
//! webhook implementations, a bounded queue per notifier, and the task that
//! turns engine events into messages.
//!
//! Sending never blocks trading: events come from a broadcast channel (a slow
//! reader misses events, it never slows the engine), messages go into a
//! bounded [`Outbox`] without waiting (full → an ordinary message is dropped
//! and counted; a critical one is never dropped), and each notifier's worker
//! sends critical messages first, at most one message per
//! `notify.min_interval`, waiting out the API's `retry_after` when it answers
//! 429 and backing off when it fails (a critical message is retried for as
//! long as the service is rate limiting or unavailable). Fills and venue
//! rejections waiting in the queue are coalesced into messages listing
//! several. Each message is a [`Notice`]: its text for Telegram, an embed
//! (and a chart) for Discord.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::config::Config;
use actors::metrics::metrics;
use actors::{EngineEvent, EngineHandle};
use async_trait::async_trait;
use keel_core::trading::TradingState;
use keel_core::venue::VenueAlert;
use keel_core::when;
use teloxide::prelude::Requester;
use teloxide::types::ChatId;
use teloxide::{Bot, RequestError};
use tokio::sync::{broadcast, watch, Notify};
use tokio::task::JoinHandle;
use tokio::time::Instant;

pub use crate::discord::DiscordNotifier;
use crate::notice::{Notice, Severity};
pub use crate::outbox::Priority;
use crate::outbox::{Outbox, Pushed};
use crate::secret::Secret;
use crate::summary::{self, d};

/// Why a message was not delivered.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum NotifyError {
    /// The API asked to wait before sending again (HTTP 429).
    #[error("rate limited: retry after {0:?}")]
    RetryAfter(Duration),
    /// The service is unreachable or failing (network, HTTP 5xx): worth
    /// retrying with backoff, and a critical message is retried until it goes.
    #[error("{0}")]
    Unavailable(String),
    /// Anything else: the API refused the message (an HTTP 4xx it would give
    /// again) or answered something unreadable. Never contains a secret.
    #[error("{0}")]
    Failed(String),
}

/// Somewhere messages for the operator go.
#[async_trait]
pub trait Notifier: Send + Sync {
    /// The metric label: `telegram` or `discord`.
    fn name(&self) -> &'static str;
    /// Sends one plain-text message.
    async fn send(&self, text: &str) -> Result<(), NotifyError>;

    /// Prepares `notice` once before its first attempt (Discord draws its
    /// chart here, so a retry resends the same picture). Text notifiers have
    /// nothing to add.
    async fn attach(&self, _notice: &mut Notice) {}

    /// Sends one notice; text notifiers send its text.
    async fn send_notice(&self, notice: &Notice) -> Result<(), NotifyError> {
        self.send(&notice.text).await
    }
}

/// Telegram's largest message, in characters.
const TELEGRAM_MAX_CHARS: usize = 4096;

/// Cuts `text` to at most `max` characters on a character boundary.
pub fn truncate(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    let mut out: String = text.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// Maps a teloxide error to a [`NotifyError`], honouring `retry_after` and
/// removing the token (reqwest errors carry the URL, which embeds it).
pub fn telegram_error(e: &RequestError, token: &Secret) -> NotifyError {
    match e {
        RequestError::RetryAfter(s) => NotifyError::RetryAfter(s.duration()),
        RequestError::Network(n) => NotifyError::Unavailable(token.redact(&format!("network: {}", strip_url(n)))),
        other => NotifyError::Failed(token.redact(&other.to_string())),
    }
}

pub(crate) fn strip_url(e: &reqwest::Error) -> String {
    // `without_url` drops the URL (and the token inside it) from the message.
    let kind = if e.is_timeout() {
        "timeout"
    } else if e.is_connect() {
        "cannot connect"
    } else {
        "request failed"
    };
    match e.status() {
        Some(s) => format!("{kind} (HTTP {s})"),
        None => kind.to_string(),
    }
}

/// Sends to one Telegram chat through the Bot API.
pub struct TelegramNotifier {
    bot: Bot,
    chat: ChatId,
    token: Secret,
}

impl TelegramNotifier {
    /// A notifier for `chat` through `bot` (its token is needed to redact errors).
    pub fn new(bot: Bot, chat: i64, token: Secret) -> Self {
        Self { bot, chat: ChatId(chat), token }
    }
}

#[async_trait]
impl Notifier for TelegramNotifier {
    fn name(&self) -> &'static str {
        "telegram"
    }

    async fn send(&self, text: &str) -> Result<(), NotifyError> {
        self.bot
            .send_message(self.chat, truncate(text, TELEGRAM_MAX_CHARS))
            .await
            .map(|_| ())
            .map_err(|e| telegram_error(&e, &self.token))
    }
}

/// The sending end of one notifier's bounded queue (an [`Outbox`]).
#[derive(Clone)]
pub struct NotifyQueue {
    name: &'static str,
    outbox: Arc<Mutex<Outbox>>,
    wake: Arc<Notify>,
    /// 1 while the worker is sending a message it took from the outbox.
    in_flight: Arc<AtomicUsize>,
}

impl NotifyQueue {
    /// Enqueues without waiting. A full queue drops an ordinary message (and
    /// counts it); a critical one takes the place of the oldest ordinary
    /// message, which a WARN line names.
    pub fn push(&self, notice: Notice, priority: Priority) {
        let pushed = match self.outbox.lock() {
            Ok(mut o) => o.push(notice, priority),
            Err(_) => Pushed::Dropped,
        };
        match pushed {
            Pushed::Queued => {}
            Pushed::Dropped => {
                metrics().notifications_dropped_total.with_label_values(&[self.name]).inc();
                tracing::debug!(notifier = self.name, "notification queue full: message dropped");
            }
            Pushed::Displaced(old) => {
                metrics().notifications_dropped_total.with_label_values(&[self.name]).inc();
                tracing::warn!(
                    notifier = self.name,
                    dropped = %old,
                    "notification queue full: the oldest ordinary message was dropped for a critical one"
                );
            }
        }
        self.wake.notify_one();
    }

    /// Messages waiting or being sent.
    pub fn pending(&self) -> usize {
        self.outbox.lock().map(|o| o.len()).unwrap_or(0) + self.in_flight.load(Ordering::SeqCst)
    }

    /// The next message, waiting for one; it counts as pending until the
    /// worker has sent it or given up.
    async fn next(&self) -> (Notice, Priority) {
        loop {
            if let Some(next) = self.outbox.lock().ok().and_then(|mut o| {
                let next = o.pop();
                if next.is_some() {
                    self.in_flight.store(1, Ordering::SeqCst);
                }
                next
            }) {
                return next;
            }
            self.wake.notified().await;
        }
    }
}

/// Attempts per ordinary message before it is dropped (a 429 wait does not
/// count as a failure); a critical one is retried while the service is
/// unavailable or rate limited, and dropped only when it is refused this often.
const MAX_FAILURES: u32 = 3;
/// The first wait after a failure; it doubles with each failure up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(250);
/// The longest wait between two attempts after failures.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// The wait after the `failures`-th failure in a row: 250 ms, 500 ms, 1 s, … 30 s.
fn backoff(failures: u32) -> Duration {
    FIRST_BACKOFF.saturating_mul(2u32.saturating_pow(failures.saturating_sub(1).min(16))).min(MAX_BACKOFF)
}

/// Longest `retry_after` honoured in one wait.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(300);

/// Starts the worker that drains a queue of `capacity` messages into
/// `notifier`, critical messages first, one message per `min_interval` at most.
pub fn spawn_worker(
    notifier: Arc<dyn Notifier>,
    capacity: usize,
    min_interval: Duration,
) -> (NotifyQueue, JoinHandle<()>) {
    let name = notifier.name();
    let queue = NotifyQueue {
        name,
        outbox: Arc::new(Mutex::new(Outbox::new(capacity))),
        wake: Arc::new(Notify::new()),
        in_flight: Arc::new(AtomicUsize::new(0)),
    };
    let worker = queue.clone();
    let task = tokio::spawn(async move {
        let m = metrics();
        loop {
            let (mut notice, priority) = worker.next().await;
            notifier.attach(&mut notice).await;
            let mut failures = 0;
            let mut waits = 0;
            loop {
                match notifier.send_notice(&notice).await {
                    Ok(()) => {
                        m.notifications_sent_total.with_label_values(&[name]).inc();
                        break;
                    }
                    Err(NotifyError::RetryAfter(wait)) => {
                        m.notifications_rate_limited_total.with_label_values(&[name]).inc();
                        waits += 1;
                        tracing::warn!(
                            notifier = name,
                            retry_after_ms = wait.as_millis() as u64,
                            "notifier rate limited"
                        );
                        if waits > 10 && priority != Priority::Critical {
                            m.notifications_dropped_total.with_label_values(&[name]).inc();
                            tracing::warn!(notifier = name, "notification dropped: still rate limited after 10 waits");
                            break;
                        }
                        tokio::time::sleep(wait.min(MAX_RETRY_AFTER)).await;
                    }
                    Err(e @ (NotifyError::Failed(_) | NotifyError::Unavailable(_))) => {
                        failures += 1;
                        tracing::warn!(notifier = name, attempt = failures, error = %e, "notification failed");
                        let keep_trying = priority == Priority::Critical && matches!(e, NotifyError::Unavailable(_));
                        if failures >= MAX_FAILURES && !keep_trying {
                            m.notifications_dropped_total.with_label_values(&[name]).inc();
                            tracing::warn!(
                                notifier = name,
                                critical = priority == Priority::Critical,
                                "notification dropped after {MAX_FAILURES} failures"
                            );
                            break;
                        }
                        tokio::time::sleep(backoff(failures)).await;
                    }
                }
            }
            worker.in_flight.store(0, Ordering::SeqCst);
            tokio::time::sleep(min_interval).await;
        }
    });
    (queue, task)
}

/// Every configured notifier's queue.
#[derive(Clone, Default)]
pub struct Notifications {
    queues: Vec<NotifyQueue>,
}

impl Notifications {
    /// A fan-out over `queues`.
    pub fn new(queues: Vec<NotifyQueue>) -> Self {
        Self { queues }
    }

    /// Enqueues `notice` for every notifier.
    pub fn push_notice(&self, notice: Notice, priority: Priority) {
        for q in &self.queues {
            q.push(notice.clone(), priority);
        }
    }

    /// True when no notifier is configured.
    pub fn is_empty(&self) -> bool {
        self.queues.is_empty()
    }

    /// Messages waiting or being sent across notifiers.
    pub fn pending(&self) -> usize {
        self.queues.iter().map(NotifyQueue::pending).sum()
    }

    /// Waits until every message has been sent (or given up on), at most
    /// `within`; true when nothing is left.
    pub async fn sent_within(&self, within: Duration) -> bool {
        let deadline = Instant::now() + within;
        while self.pending() > 0 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        self.pending() == 0
    }
}

/// Risk rejections collected over one batch window.
#[derive(Default)]
struct RejectionBatch {
    /// (strategy, symbol, code) → (count, latest reason).
    counts: BTreeMap<(String, String, String), (u64, String)>,
}

impl RejectionBatch {
    fn notice(&self, window: Duration) -> Notice {
        Notice::new("Risk rejections", Severity::Warning, self.text(window), summary::now_ms())
    }

    fn text(&self, window: Duration) -> String {
        let total: u64 = self.counts.values().map(|(n, _)| n).sum();
        let mut t = format!("Risk rejections: {total} in the last {}s", window.as_secs());
        for ((strategy, symbol, code), (n, reason)) in &self.counts {
            t.push_str(&format!("\n  {strategy} {symbol} {code} ×{n}: {reason}"));
        }
        t
    }
}

/// Formats one event's text, or `None` when it is not worth a message on its own.
pub fn event_text(event: &EngineEvent, fills: bool) -> Option<String> {
    event_notice(event, fills).map(|n| n.text)
}

/// One event as a notification: the text every notifier sends, with the
/// title, severity and fields Discord's embed shows; a fill asks for a chart
/// of its symbol. `None` when it is not worth a message on its own.
pub fn event_notice(event: &EngineEvent, fills: bool) -> Option<Notice> {
    let now = summary::now_ms();
    let severity = if event_priority(event) == Priority::Critical { Severity::Critical } else { Severity::Info };
    let plain = |title: &str, text: String| Notice::new(title, severity, text, now);
    let warning = |title: &str, text: String| Notice::new(title, Severity::Warning, text, now);
    Some(match event {
        EngineEvent::Started { trading_state } => {
            plain("Keel started", format!("Keel started; trading {}", trading_state.as_str()))
                .field("trading", trading_state.as_str())
        }
        EngineEvent::ShuttingDown => plain("Keel is shutting down", "Keel is shutting down".into()),
        EngineEvent::Fill(f) if fills => Notice::new(
            format!("Fill: {:?} {} {}", f.side, d(f.qty), f.symbol),
            Severity::Fill,
            format!(
                "Fill: {:?} {} {} @ {} (fee {} {}) [{}]",
                f.side,
                d(f.qty),
                f.symbol,
                d(f.price),
                d(f.fee),
                f.fee_asset,
                f.strategy_id
            ),
            f.ts_ms,
        )
        .field("symbol", f.symbol.to_string())
        .field("side", format!("{:?}", f.side))
        .field("qty", d(f.qty))
        .field("price", d(f.price))
        .field("fee", format!("{} {}", d(f.fee), f.fee_asset))
        .field("strategy", f.strategy_id.to_string())
        .with_chart(f.symbol.clone()),
        EngineEvent::Fill(_) => return None,
        EngineEvent::OrderChanged(_) => return None,
        // The operator's own order (a flatten, an emergency stop's exit)
        // refused: the person waiting on it must hear at once, not in the
        // next batch of strategy rejections.
        EngineEvent::RiskRejected { strategy_id, symbol, code, reason } if is_operator(strategy_id) => plain(
            "FLATTEN REFUSED",
            format!("FLATTEN REFUSED: {symbol}: the risk guard refused the operator's order ({code}): {reason}"),
        )
        .field("symbol", symbol.to_string())
        .field("code", code.clone())
        .field("reason", reason.clone()),
        EngineEvent::RiskRejected { .. } => return None,
        EngineEvent::OrderRejected { strategy_id, symbol, reason, .. } => warning(
            "Order rejected by the venue",
            format!("Order rejected by the venue: {symbol} [{strategy_id}]: {reason}"),
        )
        .field("symbol", symbol.to_string())
        .field("strategy", strategy_id.to_string())
        .field("reason", reason.clone()),
        EngineEvent::TradingStateChanged { state, reason } => {
            plain("Trading state changed", format!("Trading state → {}: {reason}", state.as_str()))
                .field("state", state.as_str())
                .field("reason", reason.clone())
        }
        EngineEvent::EmergencyStopSet { reason, by } => {
            plain("EMERGENCY STOP", format!("EMERGENCY STOP set by {by}: {reason}"))
                .field("by", by.clone())
                .field("reason", reason.clone())
        }
        EngineEvent::EmergencyStopCleared { by } => {
            plain("Emergency stop cleared", format!("Emergency stop cleared by {by}")).field("by", by.clone())
        }
        EngineEvent::StrategyPaused { strategy_id, reason } => {
            plain("Strategy paused", format!("Strategy {strategy_id} paused: {reason}"))
                .field("strategy", strategy_id.to_string())
                .field("reason", reason.clone())
        }
        EngineEvent::UniverseChanged { joined, left, members } => {
            let names = |v: &[keel_core::Symbol]| {
                if v.is_empty() {
                    "none".to_string()
                } else {
                    v.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")
                }
            };
            plain(
                "Universe changed",
                format!("Universe changed: joined {}; left {} ({} members)", names(joined), names(left), members.len()),
            )
            .field("joined", names(joined))
            .field("left", names(left))
        }
        EngineEvent::UniverseInstanceRetired { strategy_id, symbol } => plain(
            "Instance retired",
            format!("Strategy {strategy_id} retired: {symbol} left the universe and the instance is flat"),
        )
        .field("strategy", strategy_id.to_string()),
        EngineEvent::StrategyResumed { strategy_id } => {
            plain("Strategy resumed", format!("Strategy {strategy_id} resumed"))
                .field("strategy", strategy_id.to_string())
        }
        EngineEvent::Connectivity { stream, connected, detail } => {
            let which = stream.as_str();
            if *connected {
                plain("Venue stream connected", format!("Venue {which} stream connected")).field("stream", which)
            } else {
                warning("Venue stream DISCONNECTED", format!("Venue {which} stream DISCONNECTED: {detail}"))
                    .field("stream", which)
                    .field("detail", detail.clone())
            }
        }
        EngineEvent::VenueAlert(alert) => {
            let text = match alert {
                VenueAlert::RateLimited { retry_after_ms } => {
                    format!("Venue 429 (rate limited): requests paused for {}", when::duration(*retry_after_ms))
                }
                VenueAlert::Banned { retry_after_ms } => {
                    format!("Venue 418 (IP banned): nothing is sent for {}", when::duration(*retry_after_ms))
                }
                VenueAlert::OrderRateExceeded { retry_after_ms } => {
                    format!("Venue order rate exceeded: no new orders for {}", when::duration(*retry_after_ms))
                }
                VenueAlert::Malformed { stream, detail } => {
                    format!("Venue sent a {stream}-stream message Keel cannot read ({detail}); reconciling")
                }
            };
            let severity = if severity == Severity::Critical { severity } else { Severity::Warning };
            Notice::new("Venue alert", severity, text, now).field("alert", alert_kind(alert))
        }
        EngineEvent::Exit(e) => Notice::new(
            format!("Exit: {} {} {}", e.strategy_id, e.symbol, e.reason),
            Severity::Info,
            exit_text(e),
            e.ts_ms,
        )
        .field("strategy", e.strategy_id.to_string())
        .field("symbol", e.symbol.to_string())
        .field("reason", e.reason.as_str())
        .field("qty", d(e.qty))
        .field("price", d(e.price))
        .field("entry", d(e.entry_price))
        .with_chart(e.symbol.clone()),
        EngineEvent::SetupAlert(a) => {
            // A setup worth a look, not a fault: informational.
            let mut n = Notice::new(
                format!("Setup alert: {} {}", a.symbol, a.condition),
                Severity::Info,
                format!("Setup alert [{}]: {}", a.strategy_id, a.message),
                a.ts_ms,
            )
            .field("symbol", a.symbol.to_string())
            .field("condition", a.condition.clone())
            .field("strategy", a.strategy_id.to_string());
            for (name, value) in &a.values {
                n = n.field(name, value.clone());
            }
            n.with_chart(a.symbol.clone())
        }
    })
}

/// An exit for people: `btc_sma: BTCUSDT stop_loss exit 0.01 @ 58200 (−3.1%)`
/// (the profit against the entry, one decimal, a true minus sign).
pub fn exit_text(e: &keel_core::exits::ExitEvent) -> String {
    let pct = e.profit_pct().round_dp(1);
    let profit = if pct.is_sign_negative() && !pct.is_zero() {
        format!("−{}", pct.abs().normalize())
    } else {
        format!("+{}", pct.normalize())
    };
    format!("{}: {} {} exit {} @ {} ({profit}%)", e.strategy_id, e.symbol, e.reason, d(e.qty), d(e.price))
}

/// How an event's message is queued: what an operator must see at once
/// (emergency stop, a HALTED or otherwise restricted trading state, a
/// strategy paused by a protection, a failure or an operator, a venue ban) is critical; fills and venue
/// rejections and setup alerts coalesce; the rest is ordinary.
pub fn event_priority(event: &EngineEvent) -> Priority {
    match event {
        EngineEvent::RiskRejected { strategy_id, .. } if is_operator(strategy_id) => Priority::Critical,
        EngineEvent::EmergencyStopSet { .. }
        | EngineEvent::StrategyPaused { .. }
        | EngineEvent::VenueAlert(VenueAlert::Banned { .. }) => Priority::Critical,
        EngineEvent::TradingStateChanged { state, .. } if *state != TradingState::Active => Priority::Critical,
        EngineEvent::Fill(_) => Priority::Coalesced("fills"),
        EngineEvent::OrderRejected { .. } => Priority::Coalesced("order rejections"),
        // A universe of scanners may raise many at once: one message lists a burst.
        EngineEvent::SetupAlert(_) => Priority::Coalesced("setup alerts"),
        _ => Priority::Normal,
    }
}

/// True for the orders the operator sends (flatten), not a strategy's.
fn is_operator(strategy_id: &keel_core::StrategyId) -> bool {
    strategy_id.as_str() == actors::risk_guard::OPERATOR
}

/// A venue alert's stable name (`rate_limited`, `banned`, ...), as metrics and the live events label it.
pub fn alert_kind(alert: &VenueAlert) -> &'static str {
    match alert {
        VenueAlert::RateLimited { .. } => "rate_limited",
        VenueAlert::Banned { .. } => "banned",
        VenueAlert::OrderRateExceeded { .. } => "order_rate_exceeded",
        VenueAlert::Malformed { .. } => "malformed",
    }
}

/// The daily summary as a notification, with a chart of the first configured symbol.
fn summary_notice(text: &str, config: &Config) -> Notice {
    let notice = Notice::new("Daily summary", Severity::Info, text, summary::now_ms());
    match config.symbols.first() {
        Some(s) => notice.with_chart(keel_core::Symbol::new(&s.symbol)),
        None => notice,
    }
}

/// How long until the next `secs_of_day` (UTC) after `now_ms`.
pub fn until_next(now_ms: i64, secs_of_day: u32) -> Duration {
    let target = i64::from(secs_of_day) * 1000;
    let into_day = now_ms.rem_euclid(summary::DAY_MS);
    let wait = (target - into_day).rem_euclid(summary::DAY_MS);
    let wait = if wait == 0 { summary::DAY_MS } else { wait };
    Duration::from_millis(wait as u64)
}

/// Starts the task that watches engine events: it counts venue alerts and
/// turns events into notifications (risk rejections batched), and sends the
/// daily summary.
pub fn spawn_events(
    handle: EngineHandle,
    config: Arc<Config>,
    out: Notifications,
    mut shutdown: watch::Receiver<bool>,
) -> JoinHandle<()> {
    let mut rx = handle.subscribe();
    tokio::spawn(async move {
        let window = config.notify.rejection_batch.as_std();
        let mut batch: Option<(Instant, RejectionBatch)> = None;
        let summary_at = config.notify.daily_summary_secs();
        let mut next_summary = summary_at.map(|s| Instant::now() + until_next(summary::now_ms(), s));
        let far = Duration::from_secs(86_400 * 365);
        loop {
            let batch_due = batch.as_ref().map(|(t, _)| *t).unwrap_or_else(|| Instant::now() + far);
            let summary_due = next_summary.unwrap_or_else(|| Instant::now() + far);
            tokio::select! {
                _ = shutdown.changed() => break,
                event = rx.recv() => match event {
                    Ok(event) => {
                        if let EngineEvent::VenueAlert(alert) = &event {
                            metrics().venue_alerts_total.with_label_values(&[alert_kind(alert)]).inc();
                        }
                        let batched = matches!(&event, EngineEvent::RiskRejected { strategy_id, .. } if !is_operator(strategy_id));
                        if let (true, EngineEvent::RiskRejected { strategy_id, symbol, code, reason }) = (batched, &event) {
                            let (_, b) = batch.get_or_insert_with(|| (Instant::now() + window, RejectionBatch::default()));
                            let entry = b
                                .counts
                                .entry((strategy_id.to_string(), symbol.to_string(), code.clone()))
                                .or_insert((0, String::new()));
                            entry.0 += 1;
                            entry.1 = reason.clone();
                        } else if let Some(notice) = event_notice(&event, config.notify.fills) {
                            out.push_notice(notice, event_priority(&event));
                        }
                    }
                    Err(broadcast::error::RecvError::Lagged(n)) => {
                        tracing::warn!(missed = n, "notifications fell behind engine events; some were skipped");
                    }
                    Err(broadcast::error::RecvError::Closed) => break,
                },
                _ = tokio::time::sleep_until(batch_due), if batch.is_some() => {
                    if let Some((_, b)) = batch.take() {
                        out.push_notice(b.notice(window), Priority::Normal);
                    }
                }
                _ = tokio::time::sleep_until(summary_due), if next_summary.is_some() => {
                    next_summary = summary_at.map(|s| Instant::now() + until_next(summary::now_ms(), s));
                    if !out.is_empty() {
                        match summary::daily_summary_text(&handle).await {
                            Ok(text) => out.push_notice(summary_notice(&text, &config), Priority::Normal),
                            Err(e) => tracing::warn!(error = %e, "daily summary failed"),
                        }
                    }
                }
            }
        }
        if let Some((_, b)) = batch.take() {
            out.push_notice(b.notice(window), Priority::Normal);
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_setup_alert_is_an_informational_notice_with_its_values_and_coalesces() {
        let alert = keel_core::alert::SetupAlert {
            strategy_id: "scan".into(),
            symbol: "BTCUSDT".into(),
            condition: "funding_above".into(),
            message: "BTCUSDT funding estimate 0.06 % per 8 h".into(),
            values: [("funding_rate".to_string(), "0.0006".to_string())].into(),
            ts_ms: 1_700_000_000_000,
        };
        let event = EngineEvent::SetupAlert(alert);
        let n = event_notice(&event, false).expect("announced");
        assert_eq!(
            (n.title.as_str(), n.severity, n.at_ms),
            ("Setup alert: BTCUSDT funding_above", Severity::Info, 1_700_000_000_000)
        );
        assert_eq!(n.text, "Setup alert [scan]: BTCUSDT funding estimate 0.06 % per 8 h");
        let fields: Vec<(&str, &str)> = n.fields.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        assert_eq!(
            fields,
            [("symbol", "BTCUSDT"), ("condition", "funding_above"), ("strategy", "scan"), ("funding_rate", "0.0006")]
        );
        assert_eq!(n.chart.map(|c| c.symbol), Some("BTCUSDT".into()), "a chart of the setup's symbol");
        assert_eq!(event_priority(&event), Priority::Coalesced("setup alerts"));
    }

    #[test]
    fn an_exit_is_a_notice_with_its_reason_and_profit() {
        let exit = |reason, price: &str| keel_core::exits::ExitEvent {
            strategy_id: "btc_sma".into(),
            symbol: "BTCUSDT".into(),
            reason,
            qty: "0.0100".parse().unwrap(),
            price: price.parse().unwrap(),
            entry_price: "60062".parse().unwrap(),
            ts_ms: 1_700_000_000_000,
        };
        use keel_core::exits::ExitReason;
        let cases = [
            (ExitReason::StopLoss, "58200", "btc_sma: BTCUSDT stop_loss exit 0.01 @ 58200 (−3.1%)"),
            (ExitReason::TakeProfit, "63665.72", "btc_sma: BTCUSDT take_profit exit 0.01 @ 63665.72 (+6%)"),
            (ExitReason::MaxHold, "60062", "btc_sma: BTCUSDT max_hold exit 0.01 @ 60062 (+0%)"),
        ];
        for (reason, price, want) in cases {
            let n = event_notice(&EngineEvent::Exit(exit(reason, price)), false).expect("announced");
            assert_eq!(n.text, want);
            assert_eq!((n.severity, n.at_ms), (Severity::Info, 1_700_000_000_000));
            assert!(n.fields.iter().any(|(k, v)| k == "reason" && v == reason.as_str()), "{:?}", n.fields);
        }
    }

    #[test]
    fn a_refused_flatten_is_critical_at_once_and_a_strategy_s_refusal_waits_for_the_batch() {
        let refused = |who: &str| EngineEvent::RiskRejected {
            strategy_id: keel_core::StrategyId::new(who),
            symbol: "BTCUSDT".into(),
            code: "insufficient_balance".into(),
            reason: "needs 0.5 BTC, has 0.4".into(),
        };
        let flatten = refused(actors::risk_guard::OPERATOR);
        let n = event_notice(&flatten, false).expect("announced on its own");
        assert_eq!((n.title.as_str(), n.severity), ("FLATTEN REFUSED", Severity::Critical));
        assert!(
            n.text.contains("BTCUSDT") && n.text.contains("insufficient_balance") && n.text.contains("0.4"),
            "{}",
            n.text
        );
        assert_eq!(event_priority(&flatten), Priority::Critical);
        let strategy = refused("sma");
        assert!(event_notice(&strategy, false).is_none(), "a strategy's refusal goes to the batch");
        assert_eq!(event_priority(&strategy), Priority::Normal);
    }

    #[test]
    fn next_summary_time() {
        let day = summary::DAY_MS;
        // 10:00 now, summary at 20:00 → 10 h.
        assert_eq!(until_next(day * 3 + 36_000_000, 72_000), Duration::from_secs(36_000));
        // 21:00 now → 23 h.
        assert_eq!(until_next(day * 3 + 75_600_000, 72_000), Duration::from_secs(82_800));
        // exactly at the time → a full day later.
        assert_eq!(until_next(day * 3 + 72_000_000, 72_000), Duration::from_secs(86_400));
    }

    #[test]
    fn backoff_doubles_up_to_its_cap() {
        let cases = [(1, 250), (2, 500), (3, 1_000), (4, 2_000), (8, 30_000), (40, 30_000), (0, 250)];
        for (failures, ms) in cases {
            assert_eq!(backoff(failures), Duration::from_millis(ms), "{failures}");
        }
    }

    #[test]
    fn truncation_is_on_char_boundaries() {
        assert_eq!(truncate("héllo", 10), "héllo");
        assert_eq!(truncate("héllo", 3), "hé…");
    }

    struct Flaky {
        calls: std::sync::Mutex<u32>,
        sent: std::sync::Mutex<Vec<String>>,
    }

    #[async_trait]
    impl Notifier for Flaky {
        fn name(&self) -> &'static str {
            "discord"
        }
        async fn send(&self, text: &str) -> Result<(), NotifyError> {
            let n = {
                let mut c = self.calls.lock().map_err(|_| NotifyError::Failed("lock".into()))?;
                *c += 1;
                *c
            };
            if n == 1 {
                return Err(NotifyError::RetryAfter(Duration::from_millis(50)));
            }
            self.sent.lock().map_err(|_| NotifyError::Failed("lock".into()))?.push(text.to_string());
            Ok(())
        }
    }

    #[tokio::test]
    async fn worker_waits_out_retry_after_and_drops_when_full() {
        let flaky = Arc::new(Flaky { calls: Default::default(), sent: Default::default() });
        let dropped_before = metrics().notifications_dropped_total.with_label_values(&["discord"]).get();
        let (queue, _task) = spawn_worker(flaky.clone(), 2, Duration::from_millis(1));
        for i in 0..10 {
            queue.push(Notice::from(format!("m{i}").as_str()), Priority::Normal);
        }
        tokio::time::sleep(Duration::from_millis(400)).await;
        let sent = flaky.sent.lock().map(|s| s.clone()).unwrap_or_default();
        assert!(sent.first().map(String::as_str) == Some("m0"), "{sent:?}");
        assert!(sent.len() < 10, "a bounded queue drops: {sent:?}");
        let dropped = metrics().notifications_dropped_total.with_label_values(&["discord"]).get() - dropped_before;
        assert!(dropped >= 7, "dropped {dropped}");
    }
}
