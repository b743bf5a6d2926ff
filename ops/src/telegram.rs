//! The Telegram bot: long polling (no inbound port), operator commands,
//! confirmation steps for `/resume` and `/flatten`.
//!
//! Every message is authorized on both the chat id and the sender's user id
//! *before* it is parsed: in a group that is allowed, a member who is not an
//! allowed user gets no effect and no reply. Unauthorized messages are logged
//! (chat and user id only) and counted in `keel_telegram_unauthorized_total`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::config::ops::TelegramConfig;
use crate::config::Config;
use actors::handle::CommandError;
use actors::metrics::metrics;
use actors::EngineHandle;
use keel_core::Symbol;
use teloxide::payloads::{GetUpdatesSetters, SendMessageSetters};
use teloxide::prelude::Requester;
use teloxide::types::{AllowedUpdate, BotCommand, ChatId, Message, UpdateKind};
use teloxide::{Bot, RequestError};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::audit::{self, Origin};
use crate::notify::{telegram_error, truncate, NotifyError};
use crate::secret::Secret;
use crate::summary::{self, Period};

/// One command of the menu: name, argument synopsis, description.
pub struct CommandSpec {
    /// Name without the slash.
    pub name: &'static str,
    /// Arguments, e.g. `<strategy>`.
    pub args: &'static str,
    /// What it does (shown in the menu).
    pub about: &'static str,
}

/// Every command, in menu order (registered with `setMyCommands`).
pub const COMMANDS: &[CommandSpec] = &[
    CommandSpec { name: "help", args: "", about: "List the commands" },
    CommandSpec { name: "status", args: "", about: "Trading state, connectivity, equity, today's PnL, strategies" },
    CommandSpec { name: "positions", args: "", about: "Open positions with marks" },
    CommandSpec { name: "orders", args: "", about: "Open orders" },
    CommandSpec { name: "balance", args: "", about: "Balances and equity" },
    CommandSpec { name: "pnl", args: "[today|7d|30d]", about: "Realized PnL over a period" },
    CommandSpec { name: "trades", args: "[n]", about: "The last n trades (default 10, at most 50)" },
    CommandSpec { name: "risk", args: "", about: "Risk limits and current usage" },
    CommandSpec { name: "pause", args: "<strategy>", about: "Pause a strategy" },
    CommandSpec { name: "start", args: "<strategy>", about: "Start (resume) a paused strategy" },
    CommandSpec { name: "stop", args: "[reason]", about: "EMERGENCY STOP: halt trading, cancel open orders" },
    CommandSpec { name: "resume", args: "", about: "Clear the emergency stop (asks to confirm)" },
    CommandSpec { name: "cancel_all", args: "", about: "Cancel every open order" },
    CommandSpec { name: "flatten", args: "[symbol]", about: "Close positions at market (asks to confirm)" },
    CommandSpec { name: "confirm", args: "", about: "Confirm a pending /resume or /flatten" },
    CommandSpec { name: "cancel", args: "", about: "Drop a pending /resume or /flatten" },
    CommandSpec { name: "health", args: "", about: "Engine and venue connectivity health" },
    CommandSpec { name: "version", args: "", about: "Keel version" },
];

/// A parsed command.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    /// `/help`.
    Help,
    /// `/status`.
    Status,
    /// `/positions`.
    Positions,
    /// `/orders`.
    Orders,
    /// `/balance`.
    Balance,
    /// `/pnl [period]`.
    Pnl(Period),
    /// `/trades [n]`.
    Trades(usize),
    /// `/risk`.
    Risk,
    /// `/pause <strategy>`.
    Pause(String),
    /// `/start <strategy>`.
    Start(String),
    /// `/stop [reason]`.
    Stop(String),
    /// `/resume` (needs `/confirm`).
    Resume,
    /// `/cancel_all`.
    CancelAll,
    /// `/flatten [symbol]` (needs `/confirm`).
    Flatten(Option<Symbol>),
    /// `/confirm`.
    Confirm,
    /// `/cancel`.
    Cancel,
    /// `/health`.
    Health,
    /// `/version`.
    Version,
}

impl Command {
    /// The command's name (a bounded metric label).
    pub fn name(&self) -> &'static str {
        match self {
            Self::Help => "help",
            Self::Status => "status",
            Self::Positions => "positions",
            Self::Orders => "orders",
            Self::Balance => "balance",
            Self::Pnl(_) => "pnl",
            Self::Trades(_) => "trades",
            Self::Risk => "risk",
            Self::Pause(_) => "pause",
            Self::Start(_) => "start",
            Self::Stop(_) => "stop",
            Self::Resume => "resume",
            Self::CancelAll => "cancel_all",
            Self::Flatten(_) => "flatten",
            Self::Confirm => "confirm",
            Self::Cancel => "cancel",
            Self::Health => "health",
            Self::Version => "version",
        }
    }
}

/// Why a message is not a command to run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParseError {
    /// Not a command at all (plain text): ignored.
    NotACommand,
    /// A command addressed to another bot (`/status@other_bot`): ignored.
    OtherBot,
    /// An unknown command: the reply points at /help.
    Unknown(String),
    /// Bad arguments: the reply is the usage line.
    Usage(String),
}

fn usage(name: &str) -> ParseError {
    let spec = COMMANDS.iter().find(|c| c.name == name);
    let args = spec.map(|c| c.args).unwrap_or("");
    ParseError::Usage(format!("Usage: /{name} {args}").trim_end().to_string())
}

/// Parses `/command[@bot] args`. `bot` is this bot's username, when known; a
/// command addressed to a bot while it is not known is [`ParseError::OtherBot`].
pub fn parse(text: &str, bot: Option<&str>) -> Result<Command, ParseError> {
    let text = text.trim();
    let Some(rest) = text.strip_prefix('/') else {
        return Err(ParseError::NotACommand);
    };
    let (head, args) = match rest.split_once(char::is_whitespace) {
        Some((h, a)) => (h, a.trim()),
        None => (rest, ""),
    };
    let name = match head.split_once('@') {
        Some((name, target)) => {
            // Until this bot's name is known, `@anyone` may be another bot.
            if !bot.is_some_and(|me| target.eq_ignore_ascii_case(me)) {
                return Err(ParseError::OtherBot);
            }
            name
        }
        None => head,
    };
    let name = name.to_ascii_lowercase();
    let no_args = |c: Command| if args.is_empty() { Ok(c) } else { Err(usage(c.name())) };
    match name.as_str() {
        "help" => Ok(Command::Help),
        "status" => no_args(Command::Status),
        "positions" => no_args(Command::Positions),
        "orders" => no_args(Command::Orders),
        "balance" => no_args(Command::Balance),
        "pnl" => Period::parse(args).map(Command::Pnl).ok_or_else(|| usage("pnl")),
        "trades" => {
            if args.is_empty() {
                return Ok(Command::Trades(10));
            }
            match args.parse::<usize>() {
                Ok(n) if (1..=50).contains(&n) => Ok(Command::Trades(n)),
                _ => Err(usage("trades")),
            }
        }
        "risk" => no_args(Command::Risk),
        "pause" | "start" => {
            let valid = !args.is_empty()
                && args.len() <= 64
                && args.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
            if !valid {
                return Err(usage(&name));
            }
            Ok(if name == "pause" { Command::Pause(args.to_string()) } else { Command::Start(args.to_string()) })
        }
        "stop" => {
            let reason = if args.is_empty() { "emergency stop from Telegram" } else { args };
            Ok(Command::Stop(reason.chars().take(200).collect()))
        }
        "resume" => no_args(Command::Resume),
        "cancel_all" | "cancelall" => no_args(Command::CancelAll),
        "flatten" => {
            if args.is_empty() {
                return Ok(Command::Flatten(None));
            }
            let s = args.to_ascii_uppercase();
            if s.len() > 20 || !s.chars().all(|c| c.is_ascii_alphanumeric()) {
                return Err(usage("flatten"));
            }
            Ok(Command::Flatten(Some(Symbol::new(&s))))
        }
        "confirm" | "yes" => no_args(Command::Confirm),
        "cancel" | "no" => no_args(Command::Cancel),
        "health" => no_args(Command::Health),
        "version" => no_args(Command::Version),
        other => Err(ParseError::Unknown(other.chars().take(32).collect())),
    }
}

/// The `/help` text.
pub fn help_text() -> String {
    let mut t = String::from("Keel commands:\n");
    for c in COMMANDS {
        let head = format!("/{} {}", c.name, c.args);
        t.push_str(&format!("{} — {}\n", head.trim_end(), c.about));
    }
    t
}

/// An action waiting for `/confirm`.
#[derive(Debug, Clone, PartialEq)]
enum Pending {
    Resume,
    Flatten(Option<Symbol>),
}

/// The running bot.
pub struct TelegramBot {
    bot: Bot,
    token: Secret,
    handle: EngineHandle,
    config: Arc<Config>,
    tg: TelegramConfig,
    /// This bot's username, once `getMe` has answered.
    username: watch::Receiver<Option<String>>,
    pending: HashMap<(i64, i64), (Pending, Instant)>,
    replies: Option<mpsc::Sender<(i64, String)>>,
}

/// Builds a Bot API client for `token` against `api_url`, with a request
/// timeout longer than the long-polling timeout.
pub fn build_bot(token: &Secret, tg: &TelegramConfig) -> anyhow::Result<Bot> {
    let url = reqwest::Url::parse(&tg.api_url)
        .map_err(|e| anyhow::anyhow!("notify.telegram.api_url `{}`: {e}", tg.api_url))?;
    let client = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(5))
        .timeout(tg.poll_timeout.as_std() + Duration::from_secs(10))
        .tcp_nodelay(true)
        .build()
        .map_err(|e| anyhow::anyhow!("cannot build the Telegram HTTP client: {}", token.redact(&e.to_string())))?;
    Ok(Bot::with_client(token.expose(), client).set_api_url(url))
}

/// Asks `getMe` until it answers (backing off from 250 ms to 30 s), then
/// publishes the bot's username: until then a command addressed to any
/// `@bot` is ignored, since it may be meant for another bot in the group.
async fn learn_username(
    bot: Bot,
    token: Secret,
    known: watch::Sender<Option<String>>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut backoff = Duration::from_millis(250);
    loop {
        match bot.get_me().await {
            Ok(me) => {
                let username = me.user.username.clone();
                tracing::info!(bot = ?username, "telegram bot polling");
                let _ = known.send(username);
                return;
            }
            Err(e) => {
                let wait = match &e {
                    RequestError::RetryAfter(s) => s.duration(),
                    _ => backoff,
                };
                tracing::warn!(
                    error = %telegram_error(&e, &token),
                    retry_in_ms = wait.as_millis() as u64,
                    "telegram: getMe failed; commands addressed to a bot are ignored until it answers"
                );
                tokio::select! {
                    _ = shutdown.changed() => return,
                    _ = tokio::time::sleep(wait) => {}
                }
                backoff = (backoff * 2).min(Duration::from_secs(30));
            }
        }
    }
}

/// Replies waiting for the reply task.
const REPLY_QUEUE: usize = 64;
/// Attempts per reply (a 429 counts) before it is dropped with a WARN line.
const REPLY_ATTEMPTS: u32 = 3;
/// Longest `retry_after` a reply waits out in one go.
const MAX_REPLY_WAIT: Duration = Duration::from_secs(60);

/// Starts the task that sends the bot's replies, so that a reply waiting out
/// a 429 never delays reading (and executing) the next command.
fn spawn_replies(
    bot: Bot,
    token: Secret,
    mut shutdown: watch::Receiver<bool>,
) -> (mpsc::Sender<(i64, String)>, JoinHandle<()>) {
    let (tx, mut rx) = mpsc::channel::<(i64, String)>(REPLY_QUEUE);
    let task = tokio::spawn(async move {
        loop {
            let (chat, text) = tokio::select! {
                _ = shutdown.changed() => return,
                next = rx.recv() => match next {
                    Some(next) => next,
                    None => return,
                },
            };
            let mut last = String::new();
            let mut sent = false;
            for _ in 0..REPLY_ATTEMPTS {
                let result = bot.send_message(ChatId(chat), truncate(&text, 4096)).disable_notification(false).await;
                let wait = match result {
                    Ok(_) => {
                        sent = true;
                        break;
                    }
                    Err(e) => match telegram_error(&e, &token) {
                        NotifyError::RetryAfter(wait) => {
                            metrics().notifications_rate_limited_total.with_label_values(&["telegram"]).inc();
                            last = format!("rate limited (retry after {}s)", wait.as_secs());
                            wait.min(MAX_REPLY_WAIT)
                        }
                        NotifyError::Failed(reason) | NotifyError::Unavailable(reason) => {
                            last = reason;
                            Duration::from_secs(1)
                        }
                    },
                };
                tokio::select! {
                    _ = shutdown.changed() => return,
                    _ = tokio::time::sleep(wait) => {}
                }
            }
            if !sent {
                metrics().notifications_dropped_total.with_label_values(&["telegram"]).inc();
                tracing::warn!(chat_id = chat, attempts = REPLY_ATTEMPTS, error = %last, "telegram: reply dropped");
            }
        }
    });
    (tx, task)
}

impl TelegramBot {
    /// A bot for a running engine.
    pub fn new(bot: Bot, token: Secret, handle: EngineHandle, config: Arc<Config>) -> Self {
        let tg = config.notify.telegram.clone();
        Self {
            bot,
            token,
            handle,
            config,
            tg,
            username: watch::channel(None).1,
            pending: HashMap::new(),
            replies: None,
        }
    }

    /// Starts long polling until `shutdown` flips.
    pub fn spawn(self, shutdown: watch::Receiver<bool>) -> JoinHandle<()> {
        tokio::spawn(self.run(shutdown))
    }

    async fn run(mut self, mut shutdown: watch::Receiver<bool>) {
        let menu: Vec<BotCommand> = COMMANDS.iter().map(|c| BotCommand::new(c.name, c.about)).collect();
        if let Err(e) = self.bot.set_my_commands(menu).await {
            tracing::warn!(error = %telegram_error(&e, &self.token), "telegram: setMyCommands failed");
        }
        let (known, username) = watch::channel(None);
        self.username = username;
        let who = tokio::spawn(learn_username(self.bot.clone(), self.token.clone(), known, shutdown.clone()));
        let (replies, reply_task) = spawn_replies(self.bot.clone(), self.token.clone(), shutdown.clone());
        self.replies = Some(replies);
        let mut offset: i32 = 0;
        let mut backoff = Duration::from_millis(500);
        let timeout = u32::try_from(self.tg.poll_timeout.as_std().as_secs()).unwrap_or(10);
        loop {
            let request =
                self.bot.get_updates().offset(offset).timeout(timeout).allowed_updates(vec![AllowedUpdate::Message]);
            let result = tokio::select! {
                _ = shutdown.changed() => break,
                r = async { request.await } => r,
            };
            match result {
                Ok(updates) => {
                    backoff = Duration::from_millis(500);
                    for update in updates {
                        offset = offset.max(i32::try_from(update.id.0).unwrap_or(i32::MAX).saturating_add(1));
                        if let UpdateKind::Message(message) = update.kind {
                            self.on_message(message).await;
                        }
                    }
                }
                Err(RequestError::RetryAfter(s)) => {
                    tracing::warn!(retry_after_s = s.seconds(), "telegram: getUpdates rate limited");
                    tokio::select! {
                        _ = shutdown.changed() => break,
                        _ = tokio::time::sleep(s.duration()) => {}
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %telegram_error(&e, &self.token), "telegram: getUpdates failed");
                    tokio::select! {
                        _ = shutdown.changed() => break,
                        _ = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(30));
                }
            }
        }
        // The reply task stops on the same signal; a reply still being sent gets a moment.
        self.replies = None;
        who.abort();
        let _ = tokio::time::timeout(Duration::from_secs(1), reply_task).await;
    }

    /// True when both the chat and the sender are allowed.
    pub fn authorized(tg: &TelegramConfig, chat_id: i64, user_id: Option<u64>) -> bool {
        let user_ok =
            user_id.and_then(|u| i64::try_from(u).ok()).map(|u| tg.allowed_user_ids.contains(&u)).unwrap_or(false);
        tg.allowed_chat_ids.contains(&chat_id) && user_ok
    }

    async fn on_message(&mut self, message: Message) {
        let chat = message.chat.id.0;
        let user = message.from.as_ref().map(|u| u.id.0);
        if !Self::authorized(&self.tg, chat, user) {
            metrics().telegram_unauthorized_total.inc();
            tracing::warn!(chat_id = chat, user_id = ?user, "telegram: message from a chat or user that is not allowed; ignored");
            return;
        }
        let Some(text) = message.text() else { return };
        let user = user.and_then(|u| i64::try_from(u).ok()).unwrap_or(0);
        let me = self.username.borrow().clone();
        let reply = match parse(text, me.as_deref()) {
            Ok(command) => {
                metrics().telegram_commands_total.with_label_values(&[command.name()]).inc();
                tracing::info!(command = command.name(), chat_id = chat, user_id = user, "telegram command");
                self.execute(command, chat, user).await
            }
            Err(ParseError::NotACommand | ParseError::OtherBot) => return,
            Err(ParseError::Unknown(name)) => format!("Unknown command /{name}. Send /help for the list."),
            Err(ParseError::Usage(u)) => u,
        };
        self.reply(chat, &reply);
    }

    /// Hands a reply to the reply task; a full reply queue drops it with a WARN line.
    fn reply(&self, chat: i64, text: &str) {
        let Some(replies) = &self.replies else { return };
        if replies.try_send((chat, text.to_string())).is_err() {
            metrics().notifications_dropped_total.with_label_values(&["telegram"]).inc();
            tracing::warn!(chat_id = chat, "telegram: reply dropped (the reply queue is full)");
        }
    }

    fn by(user: i64) -> String {
        format!("operator:telegram:{user}")
    }

    async fn execute(&mut self, command: Command, chat: i64, user: i64) -> String {
        let result = self.try_execute(command, chat, user).await;
        match result {
            Ok(text) => text,
            Err(CommandError::UnknownStrategy(id)) => {
                let ids: Vec<String> = self.handle.strategy_ids().iter().map(|s| s.to_string()).collect();
                format!("Unknown strategy `{id}`. Strategies: {}", ids.join(", "))
            }
            Err(e) => format!("Failed: {e}"),
        }
    }

    async fn try_execute(&mut self, command: Command, chat: i64, user: i64) -> Result<String, CommandError> {
        let h = &self.handle;
        let config = &self.config;
        let origin = Origin { by: "telegram", remote: Some(user.to_string()) };
        match command {
            Command::Help => Ok(help_text()),
            Command::Status => summary::status_text(h, config.venue.mode).await,
            Command::Positions => summary::positions_text(h).await,
            Command::Orders => summary::orders_text(h).await,
            Command::Balance => summary::balance_text(h).await,
            Command::Pnl(period) => summary::pnl_text(h, period).await,
            Command::Trades(n) => summary::trades_text(h, n).await,
            Command::Risk => summary::risk_text(h, config).await,
            Command::Pause(id) => {
                let done = h.set_paused(&id, true, &format!("paused by {}", Self::by(user))).await;
                audit::outcome(h, &origin, "pause_strategy", id.clone(), done).await?;
                Ok(format!("Strategy {id} paused."))
            }
            Command::Start(id) => {
                let done = h.set_paused(&id, false, &format!("started by {}", Self::by(user))).await;
                audit::outcome(h, &origin, "resume_strategy", id.clone(), done).await?;
                Ok(format!("Strategy {id} running."))
            }
            Command::Stop(reason) => {
                let done = h.emergency_stop(&reason, &Self::by(user), false).await;
                audit::outcome(h, &origin, "emergency_stop", reason, done).await?;
                let r = h.risk().await?;
                Ok(format!(
                    "EMERGENCY STOP set and saved. Trading: {}. Open orders are being canceled. /resume clears it.",
                    r.trading_state.as_str()
                ))
            }
            Command::Resume => {
                self.pending.insert((chat, user), (Pending::Resume, Instant::now()));
                Ok(format!(
                    "Clear the emergency stop and resume trading? Send /confirm within {}s, or /cancel.",
                    self.tg.confirm_timeout.as_std().as_secs()
                ))
            }
            Command::Flatten(symbol) => {
                if let Some(s) = &symbol {
                    if self.config.symbol(s.as_str()).is_none() {
                        return Ok(format!("Unknown symbol {s}."));
                    }
                }
                let what = symbol.as_ref().map(|s| s.to_string()).unwrap_or_else(|| "ALL positions".into());
                self.pending.insert((chat, user), (Pending::Flatten(symbol), Instant::now()));
                Ok(format!(
                    "Close {what} at market? Send /confirm within {}s, or /cancel.",
                    self.tg.confirm_timeout.as_std().as_secs()
                ))
            }
            Command::Confirm => {
                let Some((pending, at)) = self.pending.remove(&(chat, user)) else {
                    return Ok("Nothing to confirm.".into());
                };
                if at.elapsed() > self.tg.confirm_timeout.as_std() {
                    return Ok("That request expired; send it again.".into());
                }
                match pending {
                    Pending::Resume => {
                        let done = h.resume(&Self::by(user)).await;
                        audit::outcome(h, &origin, "resume", "emergency stop cleared".into(), done).await?;
                        let r = h.risk().await?;
                        Ok(format!("Emergency stop cleared. Trading: {} ({}).", r.trading_state.as_str(), r.reason))
                    }
                    Pending::Flatten(symbol) => {
                        let detail = audit::scope(&symbol);
                        let n = audit::outcome(h, &origin, "flatten", detail, h.flatten(symbol).await).await?;
                        Ok(format!("Flatten: {n} closing order(s) sent (they still pass the risk guard)."))
                    }
                }
            }
            Command::Cancel => Ok(match self.pending.remove(&(chat, user)) {
                Some(_) => "Canceled.".into(),
                None => "Nothing to cancel.".into(),
            }),
            Command::CancelAll => {
                let done = h.cancel_all(None, &format!("cancel_all by {}", Self::by(user))).await;
                let n = audit::outcome(h, &origin, "cancel_all", audit::scope(&None), done).await?;
                Ok(format!("Cancel requested for {n} open order(s)."))
            }
            Command::Health => summary::health_text(h).await,
            Command::Version => Ok(format!("Keel {}", env!("CARGO_PKG_VERSION"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parsing() {
        struct Case {
            text: &'static str,
            want: Result<Command, ParseError>,
        }
        let u = |s: &str| Err(ParseError::Usage(s.to_string()));
        let cases = [
            Case { text: "/status", want: Ok(Command::Status) },
            Case { text: "/status@keel_bot", want: Ok(Command::Status) },
            Case { text: "/status@other_bot", want: Err(ParseError::OtherBot) },
            Case { text: "hello", want: Err(ParseError::NotACommand) },
            Case { text: "/pnl 7d", want: Ok(Command::Pnl(Period::Days7)) },
            Case { text: "/pnl 1y", want: u("Usage: /pnl [today|7d|30d]") },
            Case { text: "/trades", want: Ok(Command::Trades(10)) },
            Case { text: "/trades 5", want: Ok(Command::Trades(5)) },
            Case { text: "/trades 500", want: u("Usage: /trades [n]") },
            Case { text: "/pause", want: u("Usage: /pause <strategy>") },
            Case { text: "/pause btc_sma", want: Ok(Command::Pause("btc_sma".into())) },
            Case { text: "/start", want: u("Usage: /start <strategy>") },
            Case { text: "/stop", want: Ok(Command::Stop("emergency stop from Telegram".into())) },
            Case { text: "/stop too volatile", want: Ok(Command::Stop("too volatile".into())) },
            Case { text: "/flatten btcusdt", want: Ok(Command::Flatten(Some(Symbol::new("BTCUSDT")))) },
            Case { text: "/flatten", want: Ok(Command::Flatten(None)) },
            Case { text: "/cancel_all", want: Ok(Command::CancelAll) },
            Case { text: "/resume now", want: u("Usage: /resume") },
            Case { text: "/frobnicate", want: Err(ParseError::Unknown("frobnicate".into())) },
        ];
        for c in cases {
            assert_eq!(parse(c.text, Some("keel_bot")), c.want, "{}", c.text);
        }
        // Before getMe answers, only unaddressed commands run.
        assert_eq!(parse("/stop@keel_bot", None), Err(ParseError::OtherBot));
        assert_eq!(parse("/stop@other_bot", None), Err(ParseError::OtherBot));
        assert_eq!(parse("/stop", None), Ok(Command::Stop("emergency stop from Telegram".into())));
    }

    #[test]
    fn authorization_needs_chat_and_user() {
        let tg = TelegramConfig { allowed_chat_ids: vec![-100, 7], allowed_user_ids: vec![7], ..Default::default() };
        assert!(TelegramBot::authorized(&tg, 7, Some(7)));
        assert!(TelegramBot::authorized(&tg, -100, Some(7)));
        assert!(!TelegramBot::authorized(&tg, -100, Some(8)));
        assert!(!TelegramBot::authorized(&tg, 8, Some(7)));
        assert!(!TelegramBot::authorized(&tg, 7, None));
    }

    #[test]
    fn menu_names_are_valid_bot_commands() {
        for c in COMMANDS {
            assert!(c.name.len() <= 32 && c.name.chars().all(|ch| ch.is_ascii_lowercase() || ch == '_'));
            assert!(parse(&format!("/{}", c.name), None).is_ok() || !c.args.is_empty(), "{}", c.name);
        }
    }
}
