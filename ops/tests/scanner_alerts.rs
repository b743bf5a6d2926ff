//! Setup alerts end to end: a `scanner` strategy on the embedded sandbox,
//! its futures data from the sandbox's fapi through the real Binance USDⓈ-M
//! client and the engine's futures feed (as `keel run` starts them). Its
//! funding alert fires once per throttle window, carries the values the
//! sandbox serves, and reaches a fake Discord webhook on loopback and the
//! console's event stream. A strategy reading futures data sees the
//! sandbox's settlements, funding interval and open interest.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::{web, App, HttpResponse, HttpServer};
use actors::futures_feed::FuturesFeedConfig;
use keel_core::clock::{SharedClock, SystemClock};
use keel_core::futures::{FuturesEvent, MarkPriceSpeed};
use keel_core::futures_board::FuturesSnapshot;
use keel_core::strategy::{Strategy, StrategyCtx};
use serde_json::Value;
use tokio::time::{timeout_at, Instant};

const TOKEN_ENV: &str = "KEEL_TEST_SCANNER_TOKEN";
const TOKEN: &str = "scanner-alerts-token-7f6e5d4c-0123456789abcdef";
const DISCORD_ENV: &str = "KEEL_TEST_SCANNER_DISCORD_URL";
/// The throttle window of the test's scanner.
const THROTTLE_MS: i64 = 4_000;

fn config() -> String {
    format!(
        r#"
[engine]
bar_interval = "1m"
log_level = "warn"

[venue]
mode = "sandbox"
ticks_per_bar = 2

[balances]
USDT = "100000"
BTC = "0"

[[symbol]]
symbol = "BTCUSDT"
base = "BTC"
quote = "USDT"
tick_size = "0.01"
step_size = "0.00001"
min_qty = "0.00001"
max_qty = "9000"
min_notional = "5"
start_price = "65000"
volatility = 0.5
seed = 42
spread_bps = "1"
touch_qty = "2.5"

[[strategy]]
id = "scan_btc"
kind = "scanner"
symbol = "BTCUSDT"
params = {{ funding_above = "0.00000001", throttle = "{THROTTLE_MS}ms" }}

[risk]
max_order_notional = "10000"
max_position_notional = "25000"

[http]
listen = "127.0.0.1:0"
token_env = "{TOKEN_ENV}"

[notify]
min_interval = "0ms"

[notify.discord]
enabled = true
webhook_url_env = "{DISCORD_ENV}"
"#
    )
}

/// A fake Discord webhook that keeps every JSON payload.
#[derive(Default)]
struct Fake {
    received: Mutex<Vec<Value>>,
}

/// The JSON of a webhook call: the body, or a multipart body's
/// `payload_json` part (a message with a chart attached).
fn payload(body: &[u8]) -> Option<Value> {
    if let Ok(v) = serde_json::from_slice(body) {
        return Some(v);
    }
    let text = String::from_utf8_lossy(body);
    let part = text.split("name=\"payload_json\"").nth(1)?;
    let json = part.split("\r\n\r\n").nth(1)?.split("\r\n--").next()?;
    serde_json::from_str(json).ok()
}

async fn webhook(body: web::Bytes, fake: web::Data<Fake>) -> HttpResponse {
    if let (Some(v), Ok(mut r)) = (payload(&body), fake.received.lock()) {
        r.push(v);
    }
    HttpResponse::NoContent().finish()
}

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

/// The `setup_alert` events of the console's stream, one at a time.
struct Events {
    resp: reqwest::Response,
    buf: String,
}

impl Events {
    async fn open(base: &str) -> Self {
        let client = reqwest::Client::builder().no_proxy().build().expect("client");
        let resp = client.get(format!("{base}/api/v1/events")).bearer_auth(TOKEN).send().await.expect("answers");
        assert_eq!(resp.status().as_u16(), 200);
        Self { resp, buf: String::new() }
    }

    /// The next `setup_alert`'s data, none at the deadline.
    async fn next_alert(&mut self, deadline: Instant) -> Option<Value> {
        self.next("setup_alert", deadline).await
    }

    /// The next `kind` event's data, none at the deadline.
    async fn next(&mut self, kind: &str, deadline: Instant) -> Option<Value> {
        let wanted = format!("event: {kind}");
        loop {
            while let Some(end) = self.buf.find("\n\n") {
                let block: String = self.buf.drain(..end + 2).collect();
                if block.lines().any(|l| l == wanted) {
                    let data = block.lines().find_map(|l| l.strip_prefix("data: ")).unwrap_or_default();
                    return Some(serde_json::from_str(data).expect("one JSON line"));
                }
            }
            match timeout_at(deadline, self.resp.chunk()).await {
                Ok(Ok(Some(bytes))) => self.buf.push_str(&String::from_utf8_lossy(&bytes)),
                _ => return None,
            }
        }
    }
}

#[actix_rt::test]
async fn a_funding_alert_fires_once_per_window_with_the_sandbox_values_to_discord_and_the_console() {
    let _ = tracing_subscriber::fmt().with_test_writer().with_env_filter("warn").try_init();
    let fake = web::Data::new(Fake::default());
    std::env::set_var(DISCORD_ENV, fake_webhook(fake.clone()).await);
    std::env::set_var(TOKEN_ENV, TOKEN);

    let dir = tempfile::tempdir().expect("temp dir");
    let mut config = ops::config::Config::parse(&config()).expect("valid config");
    config.engine.data_dir = dir.path().join("data");
    let store = ops::cmd_run::open_store(&config.engine.data_dir).expect("store");
    let built = ops::venues::build(&config, Some(store.as_ref())).await.expect("embedded sandbox");
    let clock: SharedClock = Arc::new(SystemClock);
    let setup = ops::cmd_run::engine_setup(
        &config,
        store.clone(),
        built.venue.clone(),
        clock,
        &strategies::StrategyRegistry::builtin(),
    )
    .expect("setup");
    let handle = actors::start_engine(setup).await.expect("engine starts");
    let surfaces = ops::surfaces::start(&config, &handle).await.expect("surfaces");
    let mut events = Events::open(&surfaces.http_url().expect("http on")).await;
    let mut console = Events::open(&surfaces.http_url().expect("http on")).await;
    ops::futures_feed::start(&config, &built, &handle).await.expect("futures feed");
    // The console hears the futures mark-price stream connect.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let c = console.next("connectivity", deadline).await.expect("the futures stream's connectivity event");
        if c["stream"] == "futures" {
            assert_eq!(c["connected"], true, "{c}");
            break;
        }
    }

    // Alerts over a few windows: never two within one window.
    let started = Instant::now();
    let mut alerts = Vec::new();
    while alerts.len() < 3 {
        let a = events.next_alert(started + Duration::from_secs(40)).await;
        alerts.push(a.unwrap_or_else(|| panic!("only {} setup alerts in 40 s: {alerts:?}", alerts.len())));
    }
    for a in &alerts {
        assert_eq!((a["strategy_id"].as_str(), a["symbol"].as_str()), (Some("scan_btc"), Some("BTCUSDT")));
        assert_eq!(a["condition"], "funding_above");
        assert_eq!(a["values"]["interval_hours"], "8", "BTCUSDT settles every 8 h in the sandbox");
    }
    let ts: Vec<i64> = alerts.iter().map(|a| a["ts_ms"].as_i64().expect("ts_ms")).collect();
    for pair in ts.windows(2) {
        assert!(pair[1] - pair[0] >= THROTTLE_MS, "two alerts within one window: {ts:?}");
        // The condition holds on every mark price (every 3 s): the next window's first one goes.
        assert!(pair[1] - pair[0] < THROTTLE_MS + 6_000, "a window without an alert: {ts:?}");
    }

    // With the market paused the values stand still: the next alert carries
    // exactly what the sandbox's premiumIndex serves.
    let sandbox = built.sandbox.as_ref().expect("embedded").handle();
    sandbox.market.pause();
    let paused_at = keel_core::clock::Clock::now_ms(&SystemClock);
    let alert = loop {
        let a = events.next_alert(Instant::now() + Duration::from_secs(20)).await.expect("an alert after the pause");
        if a["ts_ms"].as_i64().unwrap_or_default() > paused_at + 3_500 {
            break a;
        }
    };
    let url = format!("{}/fapi/v1/premiumIndex?symbol=BTCUSDT", sandbox.rest_url);
    let served: Value = reqwest::get(url).await.expect("premiumIndex").json().await.expect("JSON");
    let dec = |v: &Value| v.as_str().and_then(|s| s.parse::<rust_decimal::Decimal>().ok()).expect("a decimal");
    assert_eq!(dec(&alert["values"]["funding_rate"]), dec(&served["lastFundingRate"]).round_dp(8));
    assert_eq!(dec(&alert["values"]["mark_price"]), dec(&served["markPrice"]).round_dp(8));
    assert_eq!(alert["values"]["next_funding_time"], served["nextFundingTime"].to_string());

    // Discord heard them, with the values as embed fields.
    let discord = |fake: &Fake| {
        fake.received
            .lock()
            .map(|r| {
                r.iter()
                    .filter(|p| p["embeds"][0]["title"] == "Setup alert: BTCUSDT funding_above")
                    .cloned()
                    .collect::<Vec<_>>()
            })
            .unwrap_or_default()
    };
    let deadline = Instant::now() + Duration::from_secs(15);
    while discord(&fake).len() < alerts.len() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let heard = discord(&fake);
    assert!(heard.len() >= alerts.len(), "Discord heard {} of {} alerts", heard.len(), alerts.len());
    let embed = &heard[0]["embeds"][0];
    let fields: Vec<&str> =
        embed["fields"].as_array().into_iter().flatten().filter_map(|f| f["name"].as_str()).collect();
    for name in ["symbol", "condition", "strategy", "funding_rate", "next_funding_time"] {
        assert!(fields.contains(&name), "field {name} missing: {fields:?}");
    }
    assert!(embed["description"].as_str().unwrap_or_default().contains("[scan_btc]"));

    handle.shutdown(Duration::from_millis(500)).await;
    surfaces.stop().await;
    built.stop().await;
    let _ = store.flush();
}

/// A futures event with what `ctx.futures` read right after it.
type Seen = Vec<(FuturesEvent, Option<FuturesSnapshot>)>;

/// Records every futures event it receives.
struct Reader {
    symbol: keel_core::Symbol,
    seen: Arc<Mutex<Seen>>,
}

impl Strategy for Reader {
    fn kind(&self) -> &'static str {
        "reader"
    }
    fn symbols(&self) -> Vec<keel_core::Symbol> {
        vec![self.symbol.clone()]
    }
    fn on_futures(&mut self, event: &FuturesEvent, ctx: &mut StrategyCtx<'_>) {
        let snap = ctx.futures(&self.symbol).cloned();
        if let Ok(mut s) = self.seen.lock() {
            s.push((event.clone(), snap));
        }
    }
}

#[actix_rt::test]
async fn a_strategy_reads_the_settlements_intervals_and_open_interest_the_sandbox_serves() {
    let _ = tracing_subscriber::fmt().with_test_writer().with_env_filter("warn").try_init();
    // ETHUSDT settles every 4 h of market time: 10 s at speed 1440.
    let text = config()
        .replace("[http]\nlisten = \"127.0.0.1:0\"", "[http]\nenabled = false\nlisten = \"127.0.0.1:0\"")
        .replace("[notify.discord]\nenabled = true", "[notify.discord]\nenabled = false")
        .replace("[venue]\n", "[sandbox]\nspeed = 1440\n\n[venue]\n")
        .replace("[balances]\n", "[balances]\nETH = \"0\"\n")
        .replace(
            "[[strategy]]",
            "[[symbol]]\nsymbol = \"ETHUSDT\"\nbase = \"ETH\"\nquote = \"USDT\"\ntick_size = \"0.01\"\nstep_size = \"0.0001\"\nmin_qty = \"0.0001\"\nmax_qty = \"90000\"\nmin_notional = \"5\"\nstart_price = \"3200\"\nvolatility = 0.5\nseed = 7\nspread_bps = \"1.5\"\ntouch_qty = \"40\"\n\n[[strategy]]",
        );
    let dir = tempfile::tempdir().expect("temp dir");
    let mut config = ops::config::Config::parse(&text).expect("valid config");
    config.engine.data_dir = dir.path().join("data");
    let store = ops::cmd_run::open_store(&config.engine.data_dir).expect("store");
    let built = ops::venues::build(&config, Some(store.as_ref())).await.expect("embedded sandbox");
    let clock: SharedClock = Arc::new(SystemClock);
    let mut setup = ops::cmd_run::engine_setup(
        &config,
        store.clone(),
        built.venue.clone(),
        clock,
        &strategies::StrategyRegistry::builtin(),
    )
    .expect("setup");
    let seen = Arc::new(Mutex::new(Vec::new()));
    let mut reader_cfg = config.strategies[0].clone();
    reader_cfg.id = "reader".into();
    reader_cfg.symbol = "ETHUSDT".into();
    let reader = Reader { symbol: "ETHUSDT".into(), seen: seen.clone() };
    setup.strategies.push((reader_cfg, Box::new(reader)));
    let handle = actors::start_engine(setup).await.expect("engine starts");
    let sandbox = built.sandbox.as_ref().expect("embedded").handle();
    let client = ops::futures_data::usdm_client(&config, Some(sandbox)).expect("no error").expect("a client");
    let feed = FuturesFeedConfig {
        speed: MarkPriceSpeed::Every1s,
        oi_every: Duration::from_millis(400),
        settle_delay: Duration::from_millis(200),
    };
    handle.start_futures_feed(Arc::new(client), feed, |_| true).await.expect("feed starts");

    // Until a settlement, open interest twice and the interval arrived.
    let got = |f: fn(&FuturesEvent) -> bool| seen.lock().map(|s| s.iter().filter(|e| f(&e.0)).count()).unwrap_or(0);
    let deadline = Instant::now() + Duration::from_secs(40);
    while (got(|e| matches!(e, FuturesEvent::Funding(_))) == 0
        || got(|e| matches!(e, FuturesEvent::OpenInterest(_))) < 2)
        && Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let seen = seen.lock().map(|s| s.clone()).unwrap_or_default();
    let rest = |path: String| async move {
        let v: Value =
            reqwest::get(format!("{}{path}", sandbox.rest_url)).await.expect("answers").json().await.expect("JSON");
        v
    };

    // The interval is the sandbox's (fundingInfo lists ETHUSDT at 4 h), and annualising uses it.
    let interval = seen.iter().find_map(|(e, _)| match e {
        FuturesEvent::Interval(i) => Some(i.interval_hours),
        _ => None,
    });
    assert_eq!(interval, Some(4), "events: {}", seen.len());
    // The settlement is the sandbox's row at a funding time the marks announced.
    let (settled, snap) = seen
        .iter()
        .find_map(|(e, s)| match e {
            FuturesEvent::Funding(f) => Some((f.clone(), s.clone().expect("a snapshot"))),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no settlement in 40 s; {} events", seen.len()));
    let announced = seen
        .iter()
        .any(|(e, _)| matches!(e, FuturesEvent::Mark(m) if m.next_funding_time == Some(settled.funding_time)));
    assert!(announced, "settled at {} which no mark price announced", settled.funding_time);
    let rows = rest(format!("/fapi/v1/fundingRate?symbol=ETHUSDT&startTime={}", settled.funding_time)).await;
    let row = &rows[0];
    assert_eq!(row["fundingTime"].as_i64(), Some(settled.funding_time));
    assert_eq!(row["fundingRate"].as_str().and_then(|r| r.parse().ok()), Some(settled.rate));
    assert_eq!(snap.last_settlement.as_ref(), Some(&settled), "ctx.futures holds the settlement");
    assert_eq!(snap.interval_hours, 4);
    // Open interest: each event's value is what ctx.futures reads, and the change is between the two.
    let ois: Vec<_> = seen
        .iter()
        .filter_map(|(e, s)| match e {
            FuturesEvent::OpenInterest(o) => Some((o.clone(), s.clone().expect("a snapshot"))),
            _ => None,
        })
        .collect();
    assert!(ois.len() >= 2);
    for (o, s) in &ois {
        assert_eq!(s.open_interest, Some(o.open_interest));
        assert!(o.open_interest > rust_decimal::Decimal::ZERO);
    }
    assert_eq!(ois[1].1.open_interest_change, Some(ois[1].0.open_interest - ois[0].0.open_interest));
    // Every mark price is the sandbox's kind of value: a positive mark with a funding time ahead.
    for (e, s) in &seen {
        if let FuturesEvent::Mark(m) = e {
            let s = s.as_ref().expect("a snapshot");
            assert_eq!((s.mark_price, s.next_funding_time), (Some(m.mark_price), m.next_funding_time));
        }
    }

    handle.shutdown(Duration::from_millis(500)).await;
    built.stop().await;
    let _ = store.flush();
}

/// Futures events by symbol, as universe instances received them.
type BySymbol = Arc<Mutex<std::collections::BTreeMap<keel_core::Symbol, Vec<FuturesEvent>>>>;

/// A template instance that records the futures events it receives.
struct Recorder {
    symbol: keel_core::Symbol,
    seen: BySymbol,
}

impl Strategy for Recorder {
    fn kind(&self) -> &'static str {
        "recorder"
    }
    fn symbols(&self) -> Vec<keel_core::Symbol> {
        vec![self.symbol.clone()]
    }
    fn on_futures(&mut self, event: &FuturesEvent, _ctx: &mut StrategyCtx<'_>) {
        if let Ok(mut s) = self.seen.lock() {
            s.entry(self.symbol.clone()).or_default().push(event.clone());
        }
    }
}

const UNIVERSE: &str = r#"
[engine]
log_level = "warn"

[venue]
mode = "sandbox"

[sandbox]
synthetic_symbols = 30

[balances]
USDT = "100000"

[universe]
quote = "USDT"
top_n = 3
refresh = "10s"

[[strategy]]
id = "rec"
kind = "scanner"
symbols = "universe"
params = { funding_above = "1" }

[futures]
mark_price_speed = "1s"
oi_every = "10s"

[risk]
max_order_notional = "100000"
max_position_notional = "100000"

[http]
enabled = false
"#;

/// Waits (at most `secs`) until `done` holds.
async fn until(what: &str, secs: u64, done: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !done() {
        assert!(Instant::now() < deadline, "not within {secs} s: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[actix_rt::test]
async fn a_symbol_joining_the_universe_is_fed_on_the_one_mark_price_connection_and_a_retired_one_is_not() {
    let _ = tracing_subscriber::fmt().with_test_writer().with_env_filter("warn").try_init();
    let dir = tempfile::tempdir().expect("temp dir");
    let mut config = ops::config::Config::parse(UNIVERSE).expect("valid config");
    config.engine.data_dir = dir.path().join("data");
    let store = ops::cmd_run::open_store(&config.engine.data_dir).expect("store");
    let built = ops::venues::build(&config, Some(store.as_ref())).await.expect("embedded sandbox");
    let clock: SharedClock = Arc::new(SystemClock);
    let mut setup = ops::cmd_run::engine_setup(
        &config,
        store.clone(),
        built.venue.clone(),
        clock,
        &strategies::StrategyRegistry::builtin(),
    )
    .expect("setup");
    // Every instance of the template records what it receives.
    let seen: BySymbol = Arc::default();
    let universe = setup.universe.as_mut().expect("a universe");
    let record = seen.clone();
    universe.build = Arc::new(move |cfg: &keel_core::config::StrategyConfig| {
        Ok(Box::new(Recorder { symbol: cfg.symbol.as_str().into(), seen: record.clone() }) as Box<dyn Strategy>)
    });
    let handle = actors::start_engine(setup).await.expect("engine starts");
    let mut events = handle.subscribe();
    assert!(ops::futures_feed::start(&config, &built, &handle).await.expect("futures feed"), "a feed started");
    let sandbox = built.sandbox.as_ref().expect("embedded").handle();

    let first = handle.universe().await.unwrap().expect("a universe").members;
    assert_eq!(first.len(), 3);
    let marks = |s: &keel_core::Symbol| {
        seen.lock().map(|m| m.get(s).map_or(0, |v| v.iter().filter(|e| matches!(e, FuturesEvent::Mark(_))).count()))
    };
    until("mark prices for every first member", 20, || first.iter().all(|s| marks(s).unwrap_or(0) > 0)).await;

    // The busiest outsider trades a thousand times its volume: it joins at the next refresh.
    let candidates = built.venue.universe_candidates().await.expect("candidates");
    let rising = candidates
        .iter()
        .filter(|c| !first.contains(&c.symbol) && c.quote_asset == "USDT")
        .max_by_key(|c| c.quote_volume)
        .map(|c| c.symbol.clone())
        .expect("an outsider");
    assert!(sandbox.market.set_volume_scale(rising.as_str(), 1000.0));
    let (dropped, members) = loop {
        match timeout_at(Instant::now() + Duration::from_secs(25), events.recv()).await {
            Ok(Ok(actors::EngineEvent::UniverseChanged { joined, left, members })) if joined.contains(&rising) => {
                assert_eq!(left.len(), 1, "one joined, one left: {left:?}");
                break (left[0].clone(), members);
            }
            Ok(Ok(_)) | Ok(Err(tokio::sync::broadcast::error::RecvError::Lagged(_))) => {}
            other => panic!("no universe change with {rising} joining: {other:?}"),
        }
    };

    // The newcomer gets mark prices, and its open-interest history (oldest
    // first) before its first live measurement.
    let kinds = |s: &keel_core::Symbol| seen.lock().map(|m| m.get(s).cloned().unwrap_or_default()).unwrap_or_default();
    until(&format!("mark prices and live open interest of {rising}"), 20, || {
        let k = kinds(&rising);
        k.iter().any(|e| matches!(e, FuturesEvent::Mark(_)))
            && k.iter().any(|e| matches!(e, FuturesEvent::OpenInterest(_)))
    })
    .await;
    let got = kinds(&rising);
    let history: Vec<i64> = got
        .iter()
        .filter_map(|e| match e {
            FuturesEvent::OpenInterestHistory(h) => Some(h.ts_ms),
            _ => None,
        })
        .collect();
    assert!(!history.is_empty(), "no open-interest history for {rising}");
    assert!(history.windows(2).all(|w| w[0] < w[1]), "history oldest first: {history:?}");
    let first_live = got.iter().position(|e| matches!(e, FuturesEvent::OpenInterest(_))).expect("a live one");
    let last_history = got.iter().rposition(|e| matches!(e, FuturesEvent::OpenInterestHistory(_))).expect("history");
    assert!(last_history < first_live, "history comes before the live measurements");
    assert!(
        got.iter().any(|e| matches!(e, FuturesEvent::Interval(i) if i.interval_hours == 8)),
        "the newcomer's funding interval was read"
    );

    // The dropped symbol's instance holds nothing: it retires, and the one
    // mark-price connection carries exactly the symbols with instances.
    let retired = format!("rec@{dropped}");
    loop {
        match timeout_at(Instant::now() + Duration::from_secs(20), events.recv()).await {
            Ok(Ok(actors::EngineEvent::UniverseInstanceRetired { strategy_id, .. }))
                if strategy_id.as_str() == retired =>
            {
                break
            }
            Ok(Ok(_)) | Ok(Err(tokio::sync::broadcast::error::RecvError::Lagged(_))) => {}
            other => panic!("{retired} did not retire: {other:?}"),
        }
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        // (Members change at every 10 s refresh: compare with the current ones.)
        let u = handle.universe().await.unwrap().expect("a universe");
        let want: std::collections::BTreeSet<String> =
            u.members.iter().chain(&u.leaving).map(|s| format!("{}@markPrice@1s", s.as_str().to_lowercase())).collect();
        let conns = sandbox.faults.futures_stream_connections();
        if conns.len() == 1 && conns[0].iter().cloned().collect::<std::collections::BTreeSet<_>>() == want {
            break;
        }
        assert!(Instant::now() < deadline, "want one connection carrying {want:?}; open: {conns:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(members.contains(&rising));

    handle.shutdown(Duration::from_millis(500)).await;
    built.stop().await;
    let _ = store.flush();
}

#[actix_rt::test]
async fn futures_enabled_false_starts_no_feed_on_a_venue_that_has_one() {
    let text = config()
        .replace("[http]\nlisten = \"127.0.0.1:0\"", "[http]\nenabled = false\nlisten = \"127.0.0.1:0\"")
        .replace("[notify.discord]\nenabled = true", "[notify.discord]\nenabled = false");
    let dir = tempfile::tempdir().expect("temp dir");
    for (enabled, started) in [(false, false), (true, true)] {
        let mut config =
            ops::config::Config::parse(&format!("{text}\n[futures]\nenabled = {enabled}\n")).expect("valid");
        config.engine.data_dir = dir.path().join(format!("data-{enabled}"));
        let store = ops::cmd_run::open_store(&config.engine.data_dir).expect("store");
        let built = ops::venues::build(&config, Some(store.as_ref())).await.expect("embedded sandbox");
        let clock: SharedClock = Arc::new(SystemClock);
        let setup = ops::cmd_run::engine_setup(
            &config,
            store.clone(),
            built.venue.clone(),
            clock,
            &strategies::StrategyRegistry::builtin(),
        )
        .expect("setup");
        let handle = actors::start_engine(setup).await.expect("engine starts");
        let got = ops::futures_feed::start(&config, &built, &handle).await.expect("no error");
        assert_eq!(got, started, "enabled = {enabled}");
        handle.shutdown(Duration::from_millis(200)).await;
        built.stop().await;
        let _ = store.flush();
    }
}
