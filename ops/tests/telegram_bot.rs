//! The Telegram bot and the notifiers against a fake Bot API (and a fake
//! Discord webhook) on loopback, with the real engine in process.

mod http_support;

use std::sync::atomic::{AtomicI64, AtomicU32, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use actors::EngineEvent;
use http_support::{start, Running, BASE};
use keel_core::trading::TradingState;
use keel_core::{StrategyId, Symbol};
use serde_json::{json, Value};

const TOKEN_ENV: &str = "KEEL_TEST_TG_TOKEN";
const TOKEN: &str = "123456:TEST-fake-token-xyz";
const DISCORD_ENV: &str = "KEEL_TEST_TG_DISCORD_URL";

const OPERATOR: i64 = 1001;
const GROUP: i64 = -1002;
const STRANGER: i64 = 666;
const GROUP_MEMBER: i64 = 777;

#[derive(Debug, Clone)]
struct Sent {
    chat: i64,
    text: String,
    at: Instant,
}

#[derive(Default)]
struct Fake {
    updates: Mutex<Vec<Value>>,
    next_update: AtomicI64,
    sent: Mutex<Vec<Sent>>,
    throttled: Mutex<Vec<(i64, Instant)>>,
    methods: Mutex<Vec<String>>,
    commands: Mutex<Option<Value>>,
    throttle_sends: AtomicU32,
    discord: Mutex<Vec<String>>,
    discord_throttle: AtomicU32,
    /// `retry_after` of a throttled sendMessage, in seconds (0 reads as 1).
    retry_after: AtomicU32,
    /// When each update id was first handed out by getUpdates.
    served: Mutex<Vec<(i64, Instant)>>,
    /// getMe calls to fail (HTTP 500) before answering.
    fail_get_me: AtomicU32,
}

impl Fake {
    /// Queues an update and returns its id.
    fn push(&self, chat: Value, user: i64, text: &str) -> i64 {
        let id = self.next_update.fetch_add(1, Ordering::SeqCst) + 1;
        let update = json!({
            "update_id": id,
            "message": {
                "message_id": id,
                "date": 1_700_000_000,
                "chat": chat,
                "from": {"id": user, "is_bot": false, "first_name": "User"},
                "text": text,
            }
        });
        if let Ok(mut u) = self.updates.lock() {
            u.push(update);
        }
        id
    }

    /// When update `id` was first served.
    fn served_at(&self, id: i64) -> Option<Instant> {
        self.served.lock().ok().and_then(|s| s.iter().find(|(u, _)| *u == id).map(|(_, at)| *at))
    }

    fn sent(&self) -> Vec<Sent> {
        self.sent.lock().map(|s| s.clone()).unwrap_or_default()
    }
}

fn private(id: i64) -> Value {
    json!({"id": id, "type": "private", "first_name": "User"})
}

fn group() -> Value {
    json!({"id": GROUP, "type": "group", "title": "ops"})
}

fn ok(result: Value) -> HttpResponse {
    HttpResponse::Ok().json(json!({"ok": true, "result": result}))
}

async fn bot_api(req: HttpRequest, body: web::Bytes, fake: web::Data<Fake>) -> HttpResponse {
    // teloxide appends `bot<TOKEN>/<method>` to the base URL's path (`//bot…` for a bare host).
    let segments: Vec<&str> = req.path().split('/').filter(|s| !s.is_empty()).collect();
    let (token, method) = match segments.as_slice() {
        // Bot API method names are case-insensitive (teloxide sends `GetMe`).
        [token, method] => (token.replace("%3A", ":"), method.to_ascii_lowercase()),
        _ => return HttpResponse::NotFound().json(json!({"ok": false, "error_code": 404, "description": "Not Found"})),
    };
    if token != format!("bot{TOKEN}") {
        return HttpResponse::Unauthorized()
            .json(json!({"ok": false, "error_code": 401, "description": "Unauthorized"}));
    }
    let params: Value = serde_json::from_slice(&body).unwrap_or(json!({}));
    if let Ok(mut m) = fake.methods.lock() {
        m.push(method.clone());
    }
    match method.as_str() {
        "getme" if fake.fail_get_me.load(Ordering::SeqCst) > 0 => {
            fake.fail_get_me.fetch_sub(1, Ordering::SeqCst);
            // The Bot API's error body (sent with HTTP 200: actix holds a 500's connection open for 10 s).
            HttpResponse::Ok().json(json!({"ok": false, "error_code": 500, "description": "Internal Server Error"}))
        }
        "getme" => ok(json!({
            "id": 42, "is_bot": true, "first_name": "Keel", "username": "keel_test_bot",
            "can_join_groups": true, "can_read_all_group_messages": false,
            "supports_inline_queries": false, "has_main_web_app": false
        })),
        "setmycommands" => {
            if let Ok(mut c) = fake.commands.lock() {
                *c = Some(params["commands"].clone());
            }
            ok(json!(true))
        }
        "deletewebhook" => ok(json!(true)),
        "getupdates" => {
            let offset = params["offset"].as_i64().unwrap_or(0);
            let pending: Vec<Value> = fake
                .updates
                .lock()
                .map(|u| u.iter().filter(|u| u["update_id"].as_i64().unwrap_or(0) >= offset).cloned().collect())
                .unwrap_or_default();
            if pending.is_empty() {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            if let Ok(mut served) = fake.served.lock() {
                for u in &pending {
                    let id = u["update_id"].as_i64().unwrap_or(0);
                    if !served.iter().any(|(s, _)| *s == id) {
                        served.push((id, Instant::now()));
                    }
                }
            }
            ok(Value::Array(pending))
        }
        "sendmessage" => {
            let chat = params["chat_id"].as_i64().unwrap_or(0);
            let throttle = fake.throttle_sends.load(Ordering::SeqCst);
            if throttle > 0 {
                fake.throttle_sends.store(throttle - 1, Ordering::SeqCst);
                if let Ok(mut t) = fake.throttled.lock() {
                    t.push((chat, Instant::now()));
                }
                let retry_after = fake.retry_after.load(Ordering::SeqCst).max(1);
                return HttpResponse::TooManyRequests().json(json!({
                    "ok": false, "error_code": 429,
                    "description": format!("Too Many Requests: retry after {retry_after}"),
                    "parameters": {"retry_after": retry_after}
                }));
            }
            let text = params["text"].as_str().unwrap_or_default().to_string();
            if let Ok(mut s) = fake.sent.lock() {
                s.push(Sent { chat, text: text.clone(), at: Instant::now() });
            }
            let chat_json = if chat < 0 { group() } else { private(chat) };
            ok(json!({
                "message_id": 5000, "date": 1_700_000_000, "chat": chat_json,
                "from": {"id": 42, "is_bot": true, "first_name": "Keel", "username": "keel_test_bot"},
                "text": text
            }))
        }
        _ => HttpResponse::NotFound().json(json!({"ok": false, "error_code": 404, "description": "Not Found"})),
    }
}

async fn discord(body: web::Json<Value>, fake: web::Data<Fake>) -> HttpResponse {
    let throttle = fake.discord_throttle.load(Ordering::SeqCst);
    if throttle > 0 {
        fake.discord_throttle.store(throttle - 1, Ordering::SeqCst);
        return HttpResponse::TooManyRequests()
            .json(json!({"message": "You are being rate limited.", "retry_after": 0.3, "global": false}));
    }
    if let Ok(mut d) = fake.discord.lock() {
        // Embeds since the Discord charts work: the text is the embed's description.
        d.push(body["embeds"][0]["description"].as_str().unwrap_or_default().to_string());
    }
    HttpResponse::NoContent().finish()
}

async fn fake_server(fake: web::Data<Fake>) -> String {
    let server = HttpServer::new(move || {
        App::new()
            .app_data(fake.clone())
            .route("/discord/hook", web::post().to(discord))
            .default_service(web::post().to(bot_api))
    })
    .workers(1)
    .disable_signals()
    .bind("127.0.0.1:0")
    .expect("bind fake");
    let addr = server.addrs().first().copied().expect("fake address");
    actix_web::rt::spawn(server.run());
    format!("http://{addr}")
}

async fn engine_with_bot(fake: &web::Data<Fake>, discord: bool) -> Running {
    engine_with_bot_every(fake, discord, "0ms").await
}

/// The engine with the bot, its notifiers sending at most one message per `min_interval`.
async fn engine_with_bot_every(fake: &web::Data<Fake>, discord: bool, min_interval: &str) -> Running {
    let _ = tracing_subscriber::fmt().with_test_writer().with_env_filter("warn,ops=info").try_init();
    let url = fake_server(fake.clone()).await;
    std::env::set_var(TOKEN_ENV, TOKEN);
    if discord {
        // Only this test's fake: tests run in parallel, each with its own fake server.
        std::env::set_var(DISCORD_ENV, format!("{url}/discord/hook"));
    }
    let config = format!(
        r#"{BASE}
[http]
enabled = false

[notify]
min_interval = "{min_interval}"
rejection_batch = "300ms"
fills = true

[notify.telegram]
enabled = true
token_env = "{TOKEN_ENV}"
allowed_chat_ids = [{OPERATOR}, {GROUP}]
allowed_user_ids = [{OPERATOR}]
api_url = "{url}"
poll_timeout = "1s"
confirm_timeout = "30s"

[notify.discord]
enabled = {discord}
webhook_url_env = "{DISCORD_ENV}"
"#
    );
    start(&config).await
}

/// Waits for a message to `chat` containing `needle` sent after message number `from`.
async fn reply(fake: &Fake, chat: i64, from: usize, needle: &str) -> Option<String> {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if let Some(s) = fake.sent().iter().skip(from).find(|s| s.chat == chat && s.text.contains(needle)) {
            return Some(s.text.clone());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    None
}

#[actix_rt::test]
async fn every_command_from_an_allowed_chat_is_answered() {
    let fake = web::Data::new(Fake::default());
    let r = engine_with_bot(&fake, false).await;
    struct Case {
        text: &'static str,
        want: &'static str,
    }
    let cases = [
        Case { text: "/help", want: "Keel commands" },
        Case { text: "/status", want: "Trading: ACTIVE" },
        Case { text: "/status", want: "Mode: PAPER (simulated in process, no real money)" },
        Case { text: "/status@keel_test_bot", want: "Strategies:" },
        Case { text: "/positions", want: "osition" },
        Case { text: "/orders", want: "rders" },
        Case { text: "/balance", want: "USDT free" },
        Case { text: "/pnl", want: "PnL today" },
        Case { text: "/pnl 7d", want: "last 7 days" },
        Case { text: "/pnl 30d", want: "last 30 days" },
        Case { text: "/pnl forever", want: "Usage: /pnl [today|7d|30d]" },
        Case { text: "/trades", want: "rades" },
        Case { text: "/trades 3", want: "rades" },
        Case { text: "/trades lots", want: "Usage: /trades [n]" },
        Case { text: "/risk", want: "Max order notional: 10000 USDT" },
        Case { text: "/pause", want: "Usage: /pause <strategy>" },
        Case { text: "/pause btc_sma", want: "Strategy btc_sma paused" },
        Case { text: "/pause ghost", want: "Unknown strategy `ghost`" },
        Case { text: "/start btc_sma", want: "Strategy btc_sma running" },
        Case { text: "/cancel_all", want: "Cancel requested" },
        Case { text: "/flatten DOGEUSDT", want: "Unknown symbol" },
        Case { text: "/flatten BTCUSDT", want: "/confirm" },
        Case { text: "/cancel", want: "Canceled" },
        Case { text: "/flatten", want: "Close ALL positions" },
        Case { text: "/confirm", want: "Flatten:" },
        Case { text: "/confirm", want: "Nothing to confirm" },
        Case { text: "/health", want: "Engine: answering" },
        Case { text: "/version", want: "Keel 0.1.0" },
        Case { text: "/frobnicate", want: "Unknown command /frobnicate" },
    ];
    for c in cases {
        let from = fake.sent().len();
        fake.push(private(OPERATOR), OPERATOR, c.text);
        let got = reply(&fake, OPERATOR, from, c.want).await;
        assert!(
            got.is_some(),
            "{}: no reply containing {:?}; sent: {:?}; calls: {:?}",
            c.text,
            c.want,
            fake.sent(),
            fake.methods.lock().map(|m| m.clone())
        );
    }
    let strategies = r.handle.strategies().await.expect("strategies");
    assert!(strategies.iter().all(|s| !s.paused), "btc_sma was started again");

    // /stop → HALTED, persisted; /resume asks to confirm, /confirm clears it.
    let from = fake.sent().len();
    fake.push(private(OPERATOR), OPERATOR, "/stop market looks broken");
    assert!(reply(&fake, OPERATOR, from, "EMERGENCY STOP set and saved").await.is_some(), "{:?}", fake.sent());
    assert_eq!(r.handle.risk().await.map(|s| s.trading_state).ok(), Some(TradingState::Halted));
    let stored = r.store.emergency_stop().expect("store readable");
    assert!(stored.active);
    assert_eq!(stored.reason.as_deref(), Some("market looks broken"));
    assert_eq!(stored.set_by.as_deref(), Some("operator:telegram:1001"));
    // /status says when, in UTC and how long ago.
    let from = fake.sent().len();
    fake.push(private(OPERATOR), OPERATOR, "/status");
    let status = reply(&fake, OPERATOR, from, "EMERGENCY STOP set by operator:telegram:1001 at ").await;
    let status = status.unwrap_or_else(|| panic!("/status names the stop: {:?}", fake.sent()));
    let line = status.lines().find(|l| l.starts_with("EMERGENCY STOP")).unwrap_or_default();
    assert!(line.contains("Z (") && line.ends_with("): market looks broken"), "{line}");

    let from = fake.sent().len();
    fake.push(private(OPERATOR), OPERATOR, "/resume");
    assert!(reply(&fake, OPERATOR, from, "/confirm").await.is_some());
    assert_eq!(r.handle.risk().await.map(|s| s.trading_state).ok(), Some(TradingState::Halted), "not before /confirm");
    let from = fake.sent().len();
    fake.push(private(OPERATOR), OPERATOR, "/confirm");
    assert!(reply(&fake, OPERATOR, from, "Emergency stop cleared").await.is_some(), "{:?}", fake.sent());
    assert!(!r.store.emergency_stop().expect("store readable").active);
    // Both actions are in the audit log, by `telegram` and the user id (the
    // reply comes after the record is written).
    let audit = r.store.audit(2).expect("audit readable");
    let seen: Vec<(&str, &str, Option<&str>, &str, bool)> = audit
        .iter()
        .map(|a| (a.by.as_str(), a.action.as_str(), a.remote.as_deref(), a.detail.as_str(), a.ok))
        .collect();
    assert_eq!(
        seen,
        [
            ("telegram", "resume", Some("1001"), "emergency stop cleared", true),
            ("telegram", "emergency_stop", Some("1001"), "market looks broken", true)
        ]
    );

    // The menu was registered, and it has every command.
    let menu = fake.commands.lock().ok().and_then(|c| c.clone()).unwrap_or(Value::Null);
    let names: Vec<&str> =
        menu.as_array().map(|a| a.iter().filter_map(|c| c["command"].as_str()).collect()).unwrap_or_default();
    for want in [
        "help",
        "status",
        "positions",
        "orders",
        "balance",
        "pnl",
        "trades",
        "risk",
        "pause",
        "start",
        "stop",
        "resume",
        "cancel_all",
        "flatten",
        "health",
        "version",
    ] {
        assert!(names.contains(&want), "menu lacks {want}: {names:?}");
    }
    // The daily summary renders from the live engine.
    let summary = ops::summary::daily_summary_text(&r.handle).await.expect("summary");
    assert!(summary.starts_with("Daily summary") && summary.contains("Equity:"), "{summary}");
    // No reply ever carries the token.
    assert!(fake.sent().iter().all(|s| !s.text.contains(TOKEN)));
    r.stop().await;
}

#[actix_rt::test]
async fn strangers_get_no_effect_and_no_reply() {
    let fake = web::Data::new(Fake::default());
    let r = engine_with_bot(&fake, false).await;
    let before = actors::metrics::metrics().telegram_unauthorized_total.get();
    // A chat that is not allowed, and a member of the allowed group who is not an allowed user.
    fake.push(private(STRANGER), STRANGER, "/stop");
    fake.push(group(), GROUP_MEMBER, "/stop");
    fake.push(group(), GROUP_MEMBER, "/pause btc_sma");
    fake.push(private(STRANGER), OPERATOR, "/stop");
    // Then the operator in the group: the bot has processed everything before it.
    let from = fake.sent().len();
    fake.push(group(), OPERATOR, "/version");
    assert!(reply(&fake, GROUP, from, "Keel 0.1.0").await.is_some(), "{:?}", fake.sent());
    assert_eq!(r.handle.risk().await.map(|s| s.trading_state).ok(), Some(TradingState::Active));
    assert!(!r.store.emergency_stop().expect("store readable").active);
    let strategies = r.handle.strategies().await.expect("strategies");
    assert!(strategies.iter().all(|s| !s.paused));
    assert!(fake.sent().iter().all(|s| s.chat != STRANGER), "nothing goes back to a stranger");
    let group_replies: Vec<Sent> = fake.sent().into_iter().filter(|s| s.chat == GROUP).collect();
    assert!(
        group_replies.iter().all(|s| !s.text.contains("EMERGENCY") && !s.text.contains("paused")),
        "{group_replies:?}"
    );
    let after = actors::metrics::metrics().telegram_unauthorized_total.get();
    assert!(after - before >= 4, "counted: {before} → {after}");
    r.stop().await;
}

#[actix_rt::test]
async fn notifications_are_delivered_batched_and_survive_429() {
    let fake = web::Data::new(Fake::default());
    // The first two sendMessage calls are answered 429 with retry_after = 1.
    fake.throttle_sends.store(2, Ordering::SeqCst);
    // And the first Discord post too (Discord gives `retry_after` in seconds, fractional).
    fake.discord_throttle.store(1, Ordering::SeqCst);
    let discord_limited_before =
        actors::metrics::metrics().notifications_rate_limited_total.with_label_values(&["discord"]).get();
    let limited_before =
        actors::metrics::metrics().notifications_rate_limited_total.with_label_values(&["telegram"]).get();
    let r = engine_with_bot(&fake, true).await;

    // The start-up message reaches both allowed chats, after waiting out the 429s.
    for chat in [OPERATOR, GROUP] {
        assert!(reply(&fake, chat, 0, "started").await.is_some(), "chat {chat}: {:?}", fake.sent());
    }
    let throttled = fake.throttled.lock().map(|t| t.clone()).unwrap_or_default();
    assert_eq!(throttled.len(), 2);
    for (chat, at) in throttled {
        let delivered = fake.sent().into_iter().find(|s| s.chat == chat && s.text.contains("started"));
        let waited = delivered.map(|s| s.at.duration_since(at)).unwrap_or_default();
        assert!(waited >= Duration::from_millis(900), "retry_after honoured for chat {chat}: waited {waited:?}");
    }
    let limited_after =
        actors::metrics::metrics().notifications_rate_limited_total.with_label_values(&["telegram"]).get();
    assert!(limited_after - limited_before >= 2);

    // A burst of risk rejections becomes one message.
    let events = r.handle.events();
    for _ in 0..25 {
        let _ = events.send(EngineEvent::RiskRejected {
            strategy_id: StrategyId::new("btc_sma"),
            symbol: Symbol::new("BTCUSDT"),
            code: "max_order_notional".into(),
            reason: "notional above the limit".into(),
        });
    }
    let batch = reply(&fake, OPERATOR, 0, "Risk rejections").await.unwrap_or_default();
    assert!(batch.contains("Risk rejections: 25"), "{batch}");
    assert!(batch.contains("max_order_notional ×25"), "{batch}");
    tokio::time::sleep(Duration::from_millis(600)).await;
    let batches = fake.sent().iter().filter(|s| s.chat == OPERATOR && s.text.contains("Risk rejections")).count();
    assert_eq!(batches, 1);

    // Trading events: the emergency stop and a disconnect.
    r.handle.emergency_stop("notify test", "operator:test", false).await.expect("stop");
    assert!(reply(&fake, OPERATOR, 0, "EMERGENCY STOP set by operator:test: notify test").await.is_some());
    let _ = events.send(EngineEvent::Connectivity {
        stream: keel_core::venue::StreamKind::Market,
        connected: false,
        detail: "socket closed".into(),
    });
    assert!(reply(&fake, GROUP, 0, "market stream DISCONNECTED").await.is_some());
    let _ = events.send(EngineEvent::VenueAlert(keel_core::venue::VenueAlert::RateLimited { retry_after_ms: 2000 }));
    assert!(reply(&fake, OPERATOR, 0, "Venue 429").await.is_some());

    // Discord got them too.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let d = fake.discord.lock().map(|d| d.clone()).unwrap_or_default();
        if d.iter().any(|m| m.contains("started")) && d.iter().any(|m| m.contains("Risk rejections: 25")) {
            break;
        }
        assert!(Instant::now() < deadline, "discord: {d:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let discord_limited_after =
        actors::metrics::metrics().notifications_rate_limited_total.with_label_values(&["discord"]).get();
    assert!(discord_limited_after > discord_limited_before, "the Discord 429 was seen and waited out");
    r.stop().await;
}

/// A fill of `btc_sma` with trade id `id`.
fn fill(id: u64) -> keel_core::fill::Fill {
    keel_core::fill::Fill {
        trade_id: id.into(),
        client_order_id: format!("test-{id}"),
        strategy_id: StrategyId::new("btc_sma"),
        symbol: Symbol::new("BTCUSDT"),
        side: keel_core::order::Side::Buy,
        price: keel_core::Decimal::from(65_000 + id),
        qty: keel_core::Decimal::new(1, 3),
        fee: keel_core::Decimal::ZERO,
        fee_asset: "USDT".into(),
        is_maker: false,
        ts_ms: 1_700_000_000_000,
        tag: None,
    }
}

#[actix_rt::test]
async fn an_emergency_stop_is_sent_before_queued_fills_and_fills_are_coalesced() {
    let fake = web::Data::new(Fake::default());
    // The default pace: one message a second per chat.
    let r = engine_with_bot_every(&fake, false, "1s").await;
    assert!(reply(&fake, OPERATOR, 0, "started").await.is_some(), "{:?}", fake.sent());
    let events = r.handle.events();
    for id in 1..=60 {
        let _ = events.send(EngineEvent::Fill(fill(id)));
    }
    // Let the event task queue them (its order is the broadcast's order, so the
    // fills are queued before the stop below either way).
    assert!(reply(&fake, OPERATOR, 0, "BTCUSDT @ 65001 (").await.is_some(), "{:?}", fake.sent());
    let stop_at = Instant::now();
    r.handle.emergency_stop("priority test", "operator:test", false).await.expect("stop");
    let stop = "EMERGENCY STOP set by operator:test: priority test";
    assert!(reply(&fake, OPERATOR, 0, stop).await.is_some(), "{:?}", fake.sent());
    // Every fill reaches the chat, listed several to a message.
    let fills_seen = |sent: &[Sent]| {
        (1..=60u64).all(|id| {
            let price = format!("BTCUSDT @ {} (", 65_000 + id);
            sent.iter().any(|s| s.chat == OPERATOR && s.text.contains(&price))
        })
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    while !fills_seen(&fake.sent()) {
        assert!(Instant::now() < deadline, "not every fill was sent: {:?}", fake.sent());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let to_operator: Vec<Sent> = fake.sent().into_iter().filter(|s| s.chat == OPERATOR).collect();
    let stop_msg = to_operator.iter().position(|s| s.text.contains(stop)).expect("stop sent");
    let last_fill = to_operator.iter().rposition(|s| s.text.contains("BTCUSDT @")).expect("fills sent");
    assert!(stop_msg < last_fill, "the stop jumped the fills queued before it: {to_operator:?}");
    let waited = to_operator[stop_msg].at.duration_since(stop_at);
    assert!(waited < Duration::from_secs(2), "the stop's message took {waited:?}");
    let fill_messages = to_operator.iter().filter(|s| s.text.contains("BTCUSDT @")).count();
    assert!(fill_messages <= 10, "60 fills coalesced into {fill_messages} messages: {to_operator:?}");
    r.stop().await;
}

#[actix_rt::test]
async fn a_command_takes_effect_at_once_while_replies_wait_out_a_429() {
    let fake = web::Data::new(Fake::default());
    // Every sendMessage is answered 429 with retry_after 60.
    fake.throttle_sends.store(u32::MAX, Ordering::SeqCst);
    fake.retry_after.store(60, Ordering::SeqCst);
    let r = engine_with_bot(&fake, false).await;
    let version = fake.push(private(OPERATOR), OPERATOR, "/version");
    // The /version reply meets the 429 before /stop arrives.
    let deadline = Instant::now() + Duration::from_secs(10);
    let reply_throttled = || {
        let Some(served) = fake.served_at(version) else { return false };
        fake.throttled.lock().map(|t| t.iter().any(|(c, at)| *c == OPERATOR && *at > served)).unwrap_or(false)
    };
    while !reply_throttled() {
        assert!(Instant::now() < deadline, "no reply was attempted");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let stop = fake.push(private(OPERATOR), OPERATOR, "/stop replies are throttled");
    let deadline = Instant::now() + Duration::from_secs(5);
    let stopped_at = loop {
        if r.store.emergency_stop().map(|s| s.active).unwrap_or(false) {
            break Instant::now();
        }
        assert!(Instant::now() < deadline, "/stop never took effect behind a throttled reply");
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    let served = fake.served_at(stop).expect("the /stop update was served");
    let took = stopped_at.saturating_duration_since(served);
    assert!(took < Duration::from_secs(1), "/stop took effect {took:?} after it was served");
    assert_eq!(r.store.emergency_stop().ok().and_then(|s| s.reason), Some("replies are throttled".into()));
    // The replies were tried, not sent: they wait out their 60 s in the reply task.
    assert!(fake.sent().iter().all(|s| s.chat != OPERATOR), "{:?}", fake.sent());
    r.stop().await;
}

#[actix_rt::test]
async fn get_me_is_retried_and_commands_for_another_bot_are_never_run() {
    let fake = web::Data::new(Fake::default());
    fake.fail_get_me.store(3, Ordering::SeqCst);
    let r = engine_with_bot(&fake, false).await;
    let get_me_calls = || fake.methods.lock().map(|m| m.iter().filter(|m| *m == "getme").count()).unwrap_or(0);
    // While getMe fails: a command for another bot is ignored, an unaddressed one runs.
    fake.push(private(OPERATOR), OPERATOR, "/stop@otherbot");
    let from = fake.sent().len();
    fake.push(private(OPERATOR), OPERATOR, "/version");
    assert!(reply(&fake, OPERATOR, from, "Keel 0.1.0").await.is_some(), "{:?}", fake.sent());
    assert!(!r.store.emergency_stop().expect("store readable").active, "/stop@otherbot was executed");
    // getMe is asked again until it answers.
    let deadline = Instant::now() + Duration::from_secs(15);
    while get_me_calls() < 4 {
        assert!(Instant::now() < deadline, "getMe was not retried: {} calls", get_me_calls());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Known now (once a command addressed to us is answered): another bot's
    // command is still ignored, ours runs.
    fake.push(private(OPERATOR), OPERATOR, "/stop@otherbot");
    let from = fake.sent().len();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !fake.sent().iter().skip(from).any(|s| s.chat == OPERATOR && s.text.contains("Keel 0.1.0")) {
        assert!(Instant::now() < deadline, "/version@keel_test_bot never answered: {:?}", fake.sent());
        fake.push(private(OPERATOR), OPERATOR, "/version@keel_test_bot");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    assert!(!r.store.emergency_stop().expect("store readable").active, "/stop@otherbot was executed");
    let from = fake.sent().len();
    fake.push(private(OPERATOR), OPERATOR, "/stop@keel_test_bot ours");
    assert!(reply(&fake, OPERATOR, from, "EMERGENCY STOP set and saved").await.is_some(), "{:?}", fake.sent());
    assert_eq!(r.store.emergency_stop().ok().and_then(|s| s.reason), Some("ours".into()));
    r.stop().await;
}

/// A `keel run` that cannot start says so on Telegram before it exits, with
/// a non-zero status: the notifiers are built before the engine starts.
/// Its store held by another engine; a venue that does not answer.
#[actix_rt::test]
async fn a_start_that_fails_is_notified_before_keel_exits() {
    let fake = web::Data::new(Fake::default());
    let url = fake_server(fake.clone()).await;
    let unreachable = BASE.replace("mode = \"paper\"", "mode = \"testnet\"").replace(
        "[engine]\n",
        "[engine]\nstartup_deadline = \"1s\"\n",
    ) + "\n[venue.binance]\nrest_url = \"http://127.0.0.1:9\"\nws_stream_url = \"ws://127.0.0.1:9\"\nws_api_url = \"ws://127.0.0.1:9/ws-api/v3\"\napi_key_env = \"KEEL_TEST_TG_BINANCE_KEY\"\napi_secret_env = \"KEEL_TEST_TG_BINANCE_SECRET\"\n";
    let cases = [
        ("store held", BASE.to_string(), true, "is locked: is a keel engine running on it?"),
        ("venue unreachable", unreachable, false, "cannot connect to Binance testnet at http://127.0.0.1:9"),
    ];
    for (case, base, hold_store, reason) in cases {
        let dir = tempfile::tempdir().expect("temp dir");
        let data = dir.path().join("data");
        // Another engine holds the store: the start is refused.
        let held = hold_store.then(|| keel_store::SledStore::open(&data).expect("the test opens the store"));
        let config = dir.path().join("keel.toml");
        std::fs::write(
            &config,
            format!(
                r#"{base}
[http]
enabled = false

[notify]
min_interval = "0ms"

[notify.telegram]
enabled = true
token_env = "{TOKEN_ENV}"
allowed_chat_ids = [{OPERATOR}, {GROUP}]
allowed_user_ids = [{OPERATOR}]
api_url = "{url}"
poll_timeout = "1s"
"#
            ),
        )
        .expect("config written");
        let from = fake.sent().len();
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_keel"))
            .args(["run", "--config"])
            .arg(&config)
            .arg("--data-dir")
            .arg(&data)
            .env_remove("RUST_LOG")
            .env(TOKEN_ENV, TOKEN)
            .env("KEEL_TEST_TG_BINANCE_KEY", "test-key-for-an-unreachable-venue")
            .env("KEEL_TEST_TG_BINANCE_SECRET", "test-secret-for-an-unreachable-venue")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("keel starts");
        let deadline = Instant::now() + Duration::from_secs(60);
        let status = loop {
            if let Some(status) = child.try_wait().expect("wait") {
                break status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("{case}: keel did not exit after a failed start");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        drop(held);
        assert!(!status.success(), "{case}: a failed start exits non-zero: {status:?}");
        let sent: Vec<Sent> = fake.sent().into_iter().skip(from).collect();
        for chat in [OPERATOR, GROUP] {
            let notice = sent.iter().find(|s| s.chat == chat && s.text.starts_with("Keel failed to start: "));
            let notice =
                notice.unwrap_or_else(|| panic!("{case}: chat {chat} was told of the failed start: {sent:#?}"));
            assert!(notice.text.contains(reason), "{case}: the reason is given: {}", notice.text);
        }
    }
}
