//! Discord alerts against a fake Discord webhook on loopback: embeds, the
//! chart attached as multipart `files[0]` with `payload_json`, Discord's 429
//! `retry_after` and `X-RateLimit-Remaining`/`Reset-After` headers, and a
//! critical alert kept through a full queue of charted fills. The fake parses
//! the multipart body itself and records when each request arrived.

mod http_support;

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use actors::EngineEvent;
use http_support::{eventually, start, BASE};
use keel_core::{StrategyId, Symbol};
use ops::chart::Charts;
use ops::notify::{self, DiscordNotifier, Notifier, Priority};
use ops::secret::Secret;
use serde_json::{json, Value};

/// How the fake answers one request.
#[derive(Debug, Clone, Copy)]
enum Reply {
    /// 429 with `retry_after` (seconds) in the body and `Retry-After` (whole seconds, rounded up).
    TooMany(f64),
    /// 204 with `X-RateLimit-Remaining: 0` and `X-RateLimit-Reset-After` (seconds).
    LastInBucket(f64),
    /// 502.
    ServerError,
}

/// One request as the fake read it.
#[derive(Debug, Clone)]
struct Received {
    at: Instant,
    /// The JSON payload (the body, or the multipart `payload_json`).
    payload: Value,
    /// The `files[0]` part: its headers and bytes.
    file: Option<(String, Vec<u8>)>,
    /// False when the fake answered 429 or 5xx.
    accepted: bool,
}

#[derive(Default)]
struct Fake {
    script: Mutex<VecDeque<Reply>>,
    received: Mutex<Vec<Received>>,
}

impl Fake {
    fn received(&self) -> Vec<Received> {
        self.received.lock().map(|r| r.clone()).unwrap_or_default()
    }

    fn accepted(&self) -> Vec<Received> {
        self.received().into_iter().filter(|r| r.accepted).collect()
    }
}

/// The parts of a `multipart/form-data` body: (name, part headers, content).
fn parts(content_type: &str, body: &[u8]) -> Vec<(String, String, Vec<u8>)> {
    let boundary = content_type.split("boundary=").nth(1).unwrap_or_default().trim_matches('"');
    let delimiter = format!("--{boundary}").into_bytes();
    let mut out = Vec::new();
    let mut rest = body;
    while let Some(i) = find(rest, &delimiter) {
        rest = &rest[i + delimiter.len()..];
        if rest.starts_with(b"--") {
            break;
        }
        let part = rest.strip_prefix(b"\r\n").unwrap_or(rest);
        let end = find(part, &delimiter).unwrap_or(part.len());
        let part = &part[..end];
        let Some(split) = find(part, b"\r\n\r\n") else { continue };
        let headers = String::from_utf8_lossy(&part[..split]).to_string();
        let content = part[split + 4..].strip_suffix(b"\r\n").unwrap_or(&part[split + 4..]).to_vec();
        let name = headers.split("name=\"").nth(1).and_then(|s| s.split('"').next()).unwrap_or_default().to_string();
        out.push((name, headers, content));
    }
    out
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

async fn webhook(req: HttpRequest, body: web::Bytes, fake: web::Data<Fake>) -> HttpResponse {
    let at = Instant::now();
    let content_type = req.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default();
    let (payload, file) = if content_type.starts_with("multipart/form-data") {
        let parts = parts(content_type, &body);
        let payload = parts
            .iter()
            .find(|p| p.0 == "payload_json")
            .and_then(|p| serde_json::from_slice(&p.2).ok())
            .unwrap_or(Value::Null);
        let file = parts.into_iter().find(|p| p.0 == "files[0]").map(|p| (p.1, p.2));
        (payload, file)
    } else {
        (serde_json::from_slice(&body).unwrap_or(Value::Null), None)
    };
    let reply = fake.script.lock().ok().and_then(|mut s| s.pop_front());
    let accepted = !matches!(reply, Some(Reply::TooMany(_) | Reply::ServerError));
    if let Ok(mut r) = fake.received.lock() {
        r.push(Received { at, payload, file, accepted });
    }
    match reply {
        Some(Reply::TooMany(secs)) => HttpResponse::TooManyRequests()
            .insert_header(("Retry-After", format!("{}", secs.ceil() as u64)))
            .json(json!({"message": "You are being rate limited.", "retry_after": secs, "global": false})),
        Some(Reply::LastInBucket(secs)) => HttpResponse::NoContent()
            .insert_header(("X-RateLimit-Limit", "5"))
            .insert_header(("X-RateLimit-Remaining", "0"))
            .insert_header(("X-RateLimit-Reset-After", format!("{secs}")))
            .finish(),
        Some(Reply::ServerError) => HttpResponse::BadGateway().finish(),
        None => HttpResponse::NoContent().insert_header(("X-RateLimit-Remaining", "4")).finish(),
    }
}

/// Starts the fake; its webhook URL.
async fn fake_webhook(fake: web::Data<Fake>) -> String {
    let server = HttpServer::new(move || {
        App::new().app_data(fake.clone()).route("/api/webhooks/1/tok", web::post().to(webhook))
    })
    .workers(1)
    .disable_signals()
    .bind("127.0.0.1:0")
    .expect("bind fake");
    let addr = server.addrs().first().copied().expect("fake address");
    actix_web::rt::spawn(server.run());
    format!("http://{addr}/api/webhooks/1/tok")
}

fn fill(strategy: &str, ts_ms: i64) -> keel_core::fill::Fill {
    keel_core::fill::Fill {
        trade_id: 7.into(),
        client_order_id: "chart-1".into(),
        strategy_id: StrategyId::new(strategy),
        symbol: Symbol::new("BTCUSDT"),
        side: keel_core::order::Side::Buy,
        price: "65012.5".parse().expect("decimal"),
        qty: "0.00123".parse().expect("decimal"),
        fee: "0.08".parse().expect("decimal"),
        fee_asset: "USDT".into(),
        is_maker: false,
        ts_ms,
        tag: None,
    }
}

/// The PNG's (width, height) from its signature and IHDR chunk, checked by decoding it too.
fn png_size(bytes: &[u8]) -> (u32, u32) {
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "PNG signature");
    assert_eq!(&bytes[12..16], b"IHDR", "IHDR first");
    let be = |at: usize| u32::from_be_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]]);
    let (w, h) = (be(16), be(20));
    let mut reader = png::Decoder::new(bytes).read_info().expect("decodes as PNG");
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).expect("one frame");
    assert_eq!((info.width, info.height), (w, h));
    (w, h)
}

fn field<'a>(embed: &'a Value, name: &str) -> &'a str {
    embed["fields"]
        .as_array()
        .and_then(|f| f.iter().find(|f| f["name"] == name))
        .and_then(|f| f["value"].as_str())
        .unwrap_or_default()
}

#[actix_rt::test]
async fn a_fill_alert_is_an_embed_with_its_fields_and_a_png_chart() {
    let _ = tracing_subscriber::fmt().with_test_writer().with_env_filter("warn,ops=info").try_init();
    let fake = web::Data::new(Fake::default());
    let url = fake_webhook(fake.clone()).await;
    std::env::set_var("KEEL_TEST_DISCORD_CHART_URL", &url);
    let r = start(&format!(
        r#"{BASE}
[http]
enabled = false

[notify]
min_interval = "0ms"
fills = true

[notify.discord]
enabled = true
webhook_url_env = "KEEL_TEST_DISCORD_CHART_URL"
"#
    ))
    .await;
    // The start-up notice: a plain embed (JSON, no attachment).
    assert!(eventually(10, || async { !fake.accepted().is_empty() }).await, "no start-up message");
    let first = &fake.accepted()[0];
    assert!(first.file.is_none());
    assert!(first.payload["embeds"][0]["description"].as_str().unwrap_or_default().contains("started"));
    assert_eq!(first.payload["embeds"][0]["color"], 0x34_7A_E0, "info is blue");
    assert_eq!(first.payload["embeds"][0]["title"], "Keel started");

    let now = r.handle.venue().server_time().await.expect("venue time");
    let event = EngineEvent::Fill(fill("chart_test", now));
    let telegram_text = notify::event_text(&event, true).expect("a fill is announced");
    let _ = r.handle.events().send(event);
    let ours =
        |rcv: &Received| rcv.payload["embeds"][0]["description"].as_str().is_some_and(|d| d.contains("[chart_test]"));
    assert!(
        eventually(15, || async { fake.accepted().iter().any(ours) }).await,
        "the fill alert never came: {:?}",
        fake.received().iter().map(|r| r.payload.clone()).collect::<Vec<_>>()
    );
    let got = fake.accepted().into_iter().find(ours).expect("found above");
    let embed = &got.payload["embeds"][0];
    assert_eq!(embed["description"], telegram_text.as_str(), "the text Telegram sends, unchanged");
    assert_eq!(embed["color"], 0x2E_B8_5C, "fills are green");
    assert_eq!(field(embed, "symbol"), "BTCUSDT");
    assert_eq!(field(embed, "side"), "Buy");
    assert_eq!(field(embed, "qty"), "0.00123");
    assert_eq!(field(embed, "price"), "65012.5");
    assert_eq!(field(embed, "fee"), "0.08 USDT");
    assert_eq!(field(embed, "strategy"), "chart_test");
    let ts = embed["timestamp"].as_str().unwrap_or_default();
    let parsed = chrono::DateTime::parse_from_rfc3339(ts).expect("ISO-8601 timestamp");
    assert_eq!(parsed.timestamp_millis(), now);
    assert_eq!(embed["image"]["url"], "attachment://chart.png");
    assert_eq!(got.payload["attachments"][0]["filename"], "chart.png");
    let (headers, png) = got.file.expect("a files[0] part");
    assert!(headers.contains("filename=\"chart.png\""), "{headers}");
    assert!(headers.to_ascii_lowercase().contains("content-type: image/png"), "{headers}");
    assert_eq!(png_size(&png), ops::chart::SIZE);
    // Kept to look at: the paper venue's bars as the operator would see them.
    std::fs::write(concat!(env!("CARGO_MANIFEST_DIR"), "/../target/discord-fill-chart.png"), &png).ok();
    r.stop().await;
}

/// Pixels of exactly `colour` in an RGB(A) PNG.
fn pixels_of(png_bytes: &[u8], colour: (u8, u8, u8)) -> usize {
    let mut reader = png::Decoder::new(png_bytes).read_info().expect("decodes as PNG");
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).expect("one frame");
    let step = info.color_type.samples();
    buf[..info.buffer_size()].chunks(step).filter(|p| (p[0], p[1], p[2]) == colour).count()
}

#[actix_rt::test]
async fn a_real_fill_is_announced_with_itself_marked_on_the_chart() {
    let fake = web::Data::new(Fake::default());
    let url = fake_webhook(fake.clone()).await;
    std::env::set_var("KEEL_TEST_DISCORD_REAL_FILL_URL", &url);
    let r = start(&format!(
        r#"{BASE}
[http]
enabled = false

[notify]
min_interval = "0ms"
fills = true

[notify.discord]
enabled = true
webhook_url_env = "KEEL_TEST_DISCORD_REAL_FILL_URL"
"#
    ))
    .await;
    // `btc_sma` trades on the paper venue's simulated bars: real fills, in the store and on the events.
    let ours = |rcv: &Received| field(&rcv.payload["embeds"][0], "strategy") == "btc_sma" && rcv.file.is_some();
    assert!(
        eventually(30, || async { fake.accepted().iter().any(ours) }).await,
        "no charted fill alert: {:?}",
        fake.received().iter().map(|r| r.payload.clone()).collect::<Vec<_>>()
    );
    let got = fake.accepted().into_iter().find(ours).expect("found above");
    let side = field(&got.payload["embeds"][0], "side").to_string();
    let (_, png) = got.file.expect("the chart");
    let c = if side == "Buy" { ops::chart::BUY } else { ops::chart::SELL };
    // A marker is a 16 px triangle (about 100 px of its colour); with no mark in the window none is drawn.
    assert!(pixels_of(&png, (c.0, c.1, c.2)) > 60, "the {side} fill is marked on its own alert's chart");
    std::fs::write(concat!(env!("CARGO_MANIFEST_DIR"), "/../target/discord-real-fill-chart.png"), &png).ok();
    r.stop().await;
}

/// A notifier straight to the fake (no engine: no charts), its worker sending as fast as allowed.
async fn notifier(fake: &web::Data<Fake>, charts: Option<Charts>, capacity: usize) -> notify::NotifyQueue {
    let url = fake_webhook(fake.clone()).await;
    let n: Arc<dyn Notifier> = Arc::new(DiscordNotifier::new(Secret::new(url), charts));
    notify::spawn_worker(n, capacity, Duration::ZERO).0
}

#[actix_rt::test]
async fn a_429_is_waited_out_for_its_retry_after_and_the_message_delivered_once() {
    let fake = web::Data::new(Fake::default());
    fake.script.lock().expect("script").push_back(Reply::TooMany(0.8));
    let queue = notifier(&fake, None, 8).await;
    queue.push("Keel is shutting down".into(), Priority::Normal);
    assert!(eventually(10, || async { fake.accepted().len() == 1 }).await, "{:?}", fake.received());
    let got = fake.received();
    assert_eq!(got.len(), 2, "one 429, one delivery: {got:?}");
    assert!(!got[0].accepted && got[1].accepted);
    let gap = got[1].at - got[0].at;
    assert!(gap >= Duration::from_millis(800), "the retry came {gap:?} after the 429 (retry_after 0.8 s)");
    assert_eq!(got[1].payload["embeds"][0]["description"], "Keel is shutting down");
    // Nothing else follows.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(fake.received().len(), 2);
}

#[actix_rt::test]
async fn an_exhausted_bucket_defers_the_next_send_until_its_reset() {
    let fake = web::Data::new(Fake::default());
    fake.script.lock().expect("script").push_back(Reply::LastInBucket(0.7));
    let queue = notifier(&fake, None, 8).await;
    queue.push("one".into(), Priority::Normal);
    queue.push("two".into(), Priority::Normal);
    queue.push("three".into(), Priority::Normal);
    assert!(eventually(10, || async { fake.accepted().len() == 3 }).await, "{:?}", fake.received());
    let got = fake.received();
    let gap = got[1].at - got[0].at;
    assert!(gap >= Duration::from_millis(700), "sent {gap:?} after `X-RateLimit-Remaining: 0` with a 0.7 s reset");
    let texts: Vec<&str> = got.iter().map(|r| r.payload["embeds"][0]["description"].as_str().unwrap_or("")).collect();
    assert_eq!(texts, ["one", "two", "three"]);
}

#[actix_rt::test]
async fn a_critical_alert_survives_a_full_queue_of_charted_fills() {
    let r = start(&format!("{BASE}\n[http]\nenabled = false\n")).await;
    let charts = Charts::default();
    charts.set_engine(&r.handle, r.config.engine.bar_interval.0);
    let fake = web::Data::new(Fake::default());
    // The first fill is held up by a 429 while the queue fills behind it.
    fake.script.lock().expect("script").push_back(Reply::TooMany(1.0));
    let queue = notifier(&fake, Some(charts), 3).await;
    let now = r.handle.venue().server_time().await.expect("venue time");
    let fill_notice = |i: usize| {
        let event = EngineEvent::Fill(fill(&format!("f{i}"), now));
        notify::event_notice(&event, true).expect("a fill notice")
    };
    queue.push(fill_notice(0), Priority::Normal);
    assert!(eventually(10, || async { !fake.received().is_empty() }).await, "the first fill was not sent");
    // Capacity 3: f1–f3 wait, f4 and f5 are dropped, then the stop takes f1's place.
    for i in 1..=5 {
        queue.push(fill_notice(i), Priority::Normal);
    }
    let stop = EngineEvent::EmergencyStopSet { reason: "drawdown".into(), by: "risk".into() };
    queue.push(notify::event_notice(&stop, true).expect("a stop notice"), notify::event_priority(&stop));
    assert!(eventually(20, || async { queue.pending() == 0 }).await, "the queue never drained");
    let got = fake.accepted();
    let titles: Vec<String> = got
        .iter()
        .map(|r| {
            let e = &r.payload["embeds"][0];
            if e["title"] == "EMERGENCY STOP" {
                "STOP".to_string()
            } else {
                field(e, "strategy").to_string()
            }
        })
        .collect();
    assert_eq!(titles, ["f0", "STOP", "f2", "f3"], "the stop is sent next, once, and ahead of the waiting fills");
    assert_eq!(got[1].payload["embeds"][0]["color"], 0xE0_2B_2B, "critical is red");
    for (i, rcv) in got.iter().enumerate().filter(|(i, _)| *i != 1) {
        let (_, png) = rcv.file.as_ref().unwrap_or_else(|| panic!("fill {i} has its chart"));
        assert_eq!(png_size(png), ops::chart::SIZE);
    }
    r.stop().await;
}

#[actix_rt::test]
async fn server_errors_back_off_and_a_critical_alert_is_retried_until_it_goes() {
    let fake = web::Data::new(Fake::default());
    // An ordinary message gives up after 3 failures; the critical one after it outlasts 4 more.
    fake.script.lock().expect("script").extend([Reply::ServerError; 7]);
    let queue = notifier(&fake, None, 8).await;
    queue.push("ordinary".into(), Priority::Normal);
    let stop = EngineEvent::EmergencyStopSet { reason: "venue down".into(), by: "operator".into() };
    assert!(eventually(10, || async { fake.received().len() == 3 }).await, "{:?}", fake.received());
    queue.push(notify::event_notice(&stop, true).expect("a stop notice"), notify::event_priority(&stop));
    assert!(eventually(20, || async { fake.accepted().len() == 1 }).await, "{:?}", fake.received());
    let got = fake.received();
    assert_eq!(got.len(), 8, "3 for the dropped ordinary message, 4 failures and 1 delivery of the stop");
    assert!(got[..7].iter().all(|r| !r.accepted));
    assert_eq!(got[7].payload["embeds"][0]["title"], "EMERGENCY STOP");
    assert!(got[..3].iter().all(|r| r.payload["embeds"][0]["description"] == "ordinary"));
    // Backoff: 250 ms, 500 ms, 1 s, 2 s between the stop's attempts.
    for (k, want_ms) in [(3, 250), (4, 500), (5, 1_000), (6, 2_000)] {
        let gap = got[k + 1].at - got[k].at;
        assert!(gap >= Duration::from_millis(want_ms), "attempt {} came {gap:?} after the one before", k - 1);
    }
}
