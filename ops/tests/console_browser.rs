//! The operator console in a real browser: headless Chromium driven through
//! chromedriver (WebDriver, via fantoccini) against the real engine running in
//! process with its real HTTP listener on 127.0.0.1 (see `http_support`), and
//! against the real `keel` binary stopped and started again under the page
//! (the reconnect test).
//!
//! Without chromium or chromedriver the tests print `skipped: chromium/chromedriver
//! not found` and pass, unless `KEEL_REQUIRE_BROWSER=1` (set by `.ci/run`).
//! `KEEL_CHROMIUM` and `KEEL_CHROMEDRIVER` name other binaries.
//! Every wait is bounded polling of the DOM; screenshots go to
//! `target/console-screenshots/`.

mod common;
mod http_support;

use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use http_support::{start, start_with, Running, BASE};
use hyper_util::client::legacy::connect::HttpConnector;
use keel_core::Decimal;
use serde_json::{json, Value};

const TOKEN_ENV: &str = "KEEL_TEST_CONSOLE_API_TOKEN";
const TOKEN: &str = "console-token-5b7c1d-0123456789abcdef0123";
const SECRET_ENV: &str = "KEEL_TEST_CONSOLE_WEBHOOK_SECRET";
const SECRET: &str = "console-secret-8e2f4a-0123456789abcdef0123";

/// A grid whose buy levels sit far below the start price (65000): its limit
/// orders rest (and do not fill), so the page has open orders to show. The
/// first line still belongs to BASE's `[risk]`: a price band wide enough to
/// let those orders through.
const GRID: &str = r#"price_band_pct = "40"

[[strategy]]
id = "btc_grid"
kind = "grid"
symbol = "BTCUSDT"
params = { lower = "45000", upper = "50000", levels = 3, qty = "0.001" }
"#;

fn config() -> String {
    std::env::set_var(TOKEN_ENV, TOKEN);
    std::env::set_var(SECRET_ENV, SECRET);
    format!(
        "{BASE}{GRID}\n[store]\nequity_interval = \"1s\"\n\n[http]\nlisten = \"127.0.0.1:0\"\ntoken_env = \"{TOKEN_ENV}\"\nwebhook_secret_env = \"{SECRET_ENV}\"\n"
    )
}

/// `name` on the PATH (or at one of `fixed`).
fn which(names: &[&str], fixed: &[&str]) -> Option<PathBuf> {
    let fixed = fixed.iter().map(PathBuf::from);
    let path = std::env::var_os("PATH").unwrap_or_default();
    let on_path = std::env::split_paths(&path).flat_map(|dir| names.iter().map(move |n| dir.join(n)));
    fixed.chain(on_path).find(|p| p.is_file())
}

/// `KEEL_CHROMIUM` / `KEEL_CHROMEDRIVER` when set (a path that is not a
/// file counts as missing), else the usual names.
fn locate(env: &str, names: &[&str], fixed: &[&str]) -> Option<PathBuf> {
    match std::env::var_os(env) {
        Some(p) => Some(PathBuf::from(p)).filter(|p| p.is_file()),
        None => which(names, fixed),
    }
}

/// The browser and its driver, or `None` (and the skip line) when either is
/// missing and the browser is not required.
fn browser() -> Option<(PathBuf, PathBuf)> {
    let chromium = locate("KEEL_CHROMIUM", &["chromium", "chromium-browser", "google-chrome"], &["/usr/bin/chromium"]);
    let driver = locate("KEEL_CHROMEDRIVER", &["chromedriver"], &["/usr/bin/chromedriver"]);
    match (chromium, driver) {
        (Some(c), Some(d)) => Some((c, d)),
        _ if std::env::var("KEEL_REQUIRE_BROWSER").as_deref() == Ok("1") => {
            panic!(
                "KEEL_REQUIRE_BROWSER=1 but chromium/chromedriver not found (apt-get install chromium chromium-driver)"
            )
        }
        _ => {
            keel_testkit::skipped("chromium/chromedriver not found", "KEEL_REQUIRE_BROWSER");
            None
        }
    }
}

/// chromedriver on a free loopback port, in a process group of its own with
/// the browsers it starts: on drop the whole group is killed, so a test that
/// fails before closing its session leaves no Chromium behind.
struct Driver {
    child: Child,
    url: String,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let group = format!("-{}", self.child.id());
        let killed = Command::new("kill").args(["-KILL", "--", &group]).stderr(Stdio::null()).status();
        if !killed.is_ok_and(|s| s.success()) {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

async fn start_driver(driver: &Path) -> Driver {
    let port = TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("a free port").port();
    let child = Command::new(driver)
        .arg(format!("--port={port}"))
        .process_group(0)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("chromedriver starts");
    let d = Driver { child, url: format!("http://127.0.0.1:{port}") };
    let http = reqwest::Client::builder().no_proxy().timeout(Duration::from_secs(2)).build().expect("client");
    let ready = poll(Duration::from_secs(20), || async {
        let r = http.get(format!("{}/status", d.url)).send().await.ok()?;
        let v: Value = r.json().await.ok()?;
        v["value"]["ready"].as_bool().filter(|r| *r)
    })
    .await;
    assert!(ready.is_some(), "chromedriver did not become ready on {}", d.url);
    d
}

/// Polls `f` every 50 ms until it answers `Some`, for at most `limit`.
async fn poll<T, F, Fut>(limit: Duration, mut f: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = f().await {
            return Some(v);
        }
        if Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A headless Chromium session with the browser log enabled and a fresh
/// profile; background networking off so nothing but the page talks.
async fn session(driver: &Driver, chromium: &Path, profile: &Path) -> Client {
    let caps = json!({
        "browserName": "chrome",
        "goog:loggingPrefs": { "browser": "ALL" },
        "goog:chromeOptions": {
            "binary": chromium,
            "args": [
                "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1400,1500", "--hide-scrollbars", "--no-first-run", "--no-default-browser-check",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--disable-default-apps", "--disable-extensions", "--metrics-recording-only",
                format!("--user-data-dir={}", profile.display()),
            ],
        },
    });
    let caps = caps.as_object().cloned().unwrap_or_default();
    ClientBuilder::new(HttpConnector::new()).capabilities(caps).connect(&driver.url).await.expect("a browser session")
}

/// The browser console since the last read (chromedriver's log endpoint,
/// a raw WebDriver command): `(level, message)`.
async fn browser_log(driver: &Driver, c: &Client) -> Vec<(String, String)> {
    let id = c.session_id().await.ok().flatten().expect("session id");
    let http = reqwest::Client::builder().no_proxy().timeout(Duration::from_secs(10)).build().expect("client");
    let v: Value = http
        .post(format!("{}/session/{id}/se/log", driver.url))
        .json(&json!({ "type": "browser" }))
        .send()
        .await
        .expect("log command")
        .json()
        .await
        .expect("log JSON");
    let entries = v["value"].as_array().cloned().unwrap_or_default();
    entries
        .iter()
        .map(|e| (e["level"].as_str().unwrap_or("?").to_string(), e["message"].as_str().unwrap_or("").to_string()))
        .collect()
}

fn screenshot_dir() -> PathBuf {
    // CARGO_TARGET_TMPDIR is <target>/tmp: screenshots live beside it.
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).parent().unwrap_or(Path::new(".")).join("console-screenshots");
    std::fs::create_dir_all(&dir).expect("screenshot dir");
    dir
}

async fn screenshot(c: &Client, name: &str) -> PathBuf {
    let png = c.screenshot().await.expect("screenshot");
    let path = screenshot_dir().join(format!("{name}.png"));
    std::fs::write(&path, png).expect("screenshot written");
    path
}

/// Evaluates `js` (an expression) until it is truthy, for at most `limit`:
/// its value, or `None` when it never was.
async fn truthy_within(c: &Client, limit: Duration, js: &str) -> Option<Value> {
    let script = format!("return ({js});");
    poll(limit, || async {
        let v = c.execute(&script, vec![]).await.ok()?;
        let truthy = !(v.is_null() || v == json!(false) || v == json!("") || v == json!(0));
        truthy.then_some(v)
    })
    .await
}

/// Evaluates `js` (an expression) until it is truthy, for at most `secs`;
/// on timeout saves a screenshot named after the test and fails with `what`.
async fn until(c: &Client, secs: u64, what: &str, js: &str) -> Value {
    match truthy_within(c, Duration::from_secs(secs), js).await {
        Some(v) => v,
        None => {
            let shot = screenshot(c, &format!("failed-{}", what.replace(' ', "-"))).await;
            panic!("{what}: not within {secs} s (`{js}`); screenshot {}", shot.display());
        }
    }
}

/// Clicks the element `css` selects, finding it again if the page re-rendered
/// it between the lookup and the click (a stale element), for at most 5 s.
async fn click(c: &Client, css: &str) {
    let clicked = poll(Duration::from_secs(5), || async {
        let e = c.find(Locator::Css(css)).await.ok()?;
        e.click().await.ok()
    })
    .await;
    assert!(clicked.is_some(), "could not click {css}");
}

async fn text(c: &Client, css: &str) -> String {
    c.find(Locator::Css(css)).await.expect(css).text().await.unwrap_or_default()
}

/// Types `token` into the prompt and submits it.
async fn enter_token(c: &Client, token: &str) {
    until(c, 10, "the token prompt", "document.getElementById('token-dialog').open").await;
    let input = c.find(Locator::Id("token-input")).await.expect("token input");
    input.clear().await.expect("clear");
    input.send_keys(token).await.expect("type the token");
    click(c, "#token-submit").await;
}

/// Loads the page of the engine at `base` and unlocks it with the right token.
async fn open_console(c: &Client, base: &str) {
    c.goto(&format!("{base}/")).await.expect("page loads");
    enter_token(c, TOKEN).await;
    until(c, 10, "the prompt closes", "!document.getElementById('token-dialog').open").await;
}

/// SEVERE browser-log entries, except those `allowed` names.
fn errors(log: &[(String, String)], allowed: &[&str]) -> Vec<String> {
    log.iter()
        .filter(|(level, msg)| level == "SEVERE" && !allowed.iter().any(|a| msg.contains(a)))
        .map(|(_, msg)| msg.clone())
        .collect()
}

/// The engine's BTCUSDT quantity, as the page writes it (normalised).
async fn btc_qty(r: &Running) -> String {
    let portfolio = r.handle.portfolio().await.expect("portfolio");
    let p = portfolio.positions.into_iter().find(|p| p.position.symbol.as_str() == "BTCUSDT");
    p.map(|p| p.position.qty.normalize().to_string()).unwrap_or_default()
}

/// A TradingView alert to the `tv` webhook strategy of the engine at `base`.
async fn webhook_buy(base: &str, id: &str) -> Value {
    let http = reqwest::Client::builder().no_proxy().timeout(Duration::from_secs(10)).build().expect("client");
    let alert = json!({ "secret": SECRET, "strategy_id": "tv", "symbol": "BTCUSDT", "action": "buy", "id": id });
    let resp =
        http.post(format!("{base}/api/v1/webhook/tradingview")).json(&alert).send().await.expect("webhook answers");
    assert!(resp.status().is_success(), "webhook: {}", resp.status());
    resp.json().await.unwrap_or(Value::Null)
}

#[actix_rt::test]
async fn the_console_loads_offline_unlocks_and_follows_the_engine_live() {
    let Some((chromium, driver_path)) = browser() else { return };
    let r = start(&config()).await;
    let base = r.base_url();

    // The page and its assets carry a policy that allows this origin only.
    let http = reqwest::Client::builder().no_proxy().build().expect("client");
    let page = http.get(format!("{base}/")).send().await.expect("GET /");
    assert_eq!(page.status(), 200);
    let header = |name: &str| page.headers().get(name).and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
    let csp = header("content-security-policy");
    for directive in [
        "default-src 'self'",
        "connect-src 'self'",
        "script-src 'self'",
        "frame-ancestors 'none'",
        "base-uri 'none'",
        "form-action 'none'",
    ] {
        assert!(csp.contains(directive), "CSP lacks {directive}: {csp}");
    }
    assert!(!csp.contains("http") && !csp.contains('*') && !csp.contains("unsafe"), "CSP names another origin: {csp}");
    assert_eq!(header("x-content-type-options"), "nosniff");
    assert_eq!(header("referrer-policy"), "no-referrer");
    assert!(header("content-type").starts_with("text/html"));

    // A trade before the page opens: a position and a fill to show. The
    // moving-average strategy is paused first, so only the webhook moves the
    // BTCUSDT position and the page can be compared with the engine.
    r.handle.set_paused("btc_sma", true, "paused by the console test").await.expect("pause btc_sma");
    let ready = http_support::eventually(20, || async {
        http.get(format!("{base}/ready")).send().await.map(|r| r.status() == 200).unwrap_or(false)
    })
    .await;
    assert!(ready, "the engine is ready (streams up, prices known)");
    // Right after start the risk guard may refuse a first order as stale data
    // (no fresh price yet): the alert is sent again, with a new id, until one fills.
    let mut bought = false;
    for attempt in 0..10 {
        webhook_buy(&r.base_url(), &format!("console-before-{attempt}")).await;
        bought = http_support::eventually(2, || async { btc_qty(&r).await.parse::<f64>().unwrap_or(0.0) > 0.0 }).await;
        if bought {
            break;
        }
    }
    let rejections = r.handle.risk().await.map(|s| format!("{:?}", s.rejections)).unwrap_or_default();
    assert!(bought, "a webhook buy filled: BTCUSDT {} (rejections {rejections})", btc_qty(&r).await);
    let have_orders = http_support::eventually(20, || async {
        r.handle.open_orders().await.map(|o| o.iter().any(|o| o.strategy_id.as_str() == "btc_grid")).unwrap_or(false)
    })
    .await;
    assert!(have_orders, "the grid's orders rest at the venue");

    let profile = tempfile::tempdir().expect("profile dir");
    let driver = start_driver(&driver_path).await;
    let c = session(&driver, &chromium, profile.path()).await;
    c.goto(&format!("{base}/")).await.expect("page loads");

    // The token prompt, and a wrong token refused.
    enter_token(&c, "not-the-token-but-long-enough-0123456789").await;
    let refused = until(
        &c,
        10,
        "a wrong token refused",
        "!document.getElementById('token-error').hidden && document.getElementById('token-error').textContent",
    )
    .await;
    assert!(refused.as_str().unwrap_or("").contains("Wrong token"), "{refused}");
    assert_eq!(c.execute("return document.getElementById('token-dialog').open", vec![]).await.ok(), Some(json!(true)));
    assert_eq!(
        c.execute("return sessionStorage.length", vec![]).await.ok(),
        Some(json!(0)),
        "a refused token is not kept"
    );
    // The only errors so far: the browser reporting the refused request.
    let log = browser_log(&driver, &c).await;
    assert_eq!(
        errors(&log, &["/api/v1/status - Failed to load resource: the server responded with a status of 401"]),
        Vec::<String>::new()
    );

    enter_token(&c, TOKEN).await;
    until(&c, 10, "the prompt closes", "!document.getElementById('token-dialog').open").await;
    let kept = c
        .execute("return sessionStorage.getItem('keel.console.token') !== null && localStorage.length === 0", vec![])
        .await;
    assert_eq!(kept.ok(), Some(json!(true)), "the token lives in sessionStorage only");

    // Positions and open orders from the running engine.
    let qty = btc_qty(&r).await;
    let shown = until(
        &c,
        10,
        &format!("the BTCUSDT position of {qty}"),
        &format!("document.querySelector('#positions tr[data-symbol=BTCUSDT]')?.cells[1].textContent === '{qty}'"),
    )
    .await;
    assert_eq!(shown, json!(true));
    let open = r.handle.open_orders().await.expect("orders");
    let grid_order =
        open.iter().find(|o| o.strategy_id.as_str() == "btc_grid").expect("a grid order").client_order_id.clone();
    until(&c, 10, "the grid's open order", &format!("document.querySelector('#orders tr[data-id=\"{grid_order}\"]')"))
        .await;
    let banner_hidden = c.execute("return document.getElementById('mainnet-banner').hidden", vec![]).await.ok();
    assert_eq!(banner_hidden, Some(json!(true)), "no mainnet banner on the paper venue");
    assert_eq!(text(&c, "#venue-mode").await.to_lowercase(), "paper");
    // A loopback listener: the status says so and the page shows no plain-HTTP warning.
    let status: Value = http
        .get(format!("{base}/api/v1/status"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .expect("status")
        .json()
        .await
        .expect("status JSON");
    assert_eq!(status["listener"]["loopback"], true, "{}", status["listener"]);
    assert!(status["listener"]["warning"].is_null(), "{}", status["listener"]);
    let warning_hidden = c.execute("return document.getElementById('listener-banner').hidden", vec![]).await.ok();
    assert_eq!(warning_hidden, Some(json!(true)));

    // A fill appears within 2 s without a reload (the event stream).
    until(&c, 10, "the live event stream", "document.getElementById('link').textContent === 'live'").await;
    c.execute("window.keelNoReload = 1; return true", vec![]).await.expect("mark the page");
    let before: Vec<String> =
        r.handle.recent_fills(1000).await.expect("fills").iter().map(|f| f.trade_id.to_string()).collect();
    let t0 = Instant::now();
    webhook_buy(&r.base_url(), "console-live").await;
    let fresh = until(
        &c,
        2,
        "the new fill on the page",
        &format!(
            "window.keelNoReload === 1 && [...document.querySelectorAll('#fills tr[data-trade-id]')].map(r => [r.dataset.tradeId, r.cells[1].textContent]).find(([id, s]) => s === 'tv' && !{}.includes(id))",
            serde_json::to_string(&before).unwrap_or_default()
        ),
    )
    .await;
    let elapsed = t0.elapsed();
    let fresh_id = fresh[0].as_str().unwrap_or_default().to_string();
    let fills = r.handle.recent_fills(1000).await.expect("fills");
    assert!(
        fills.iter().any(|f| f.trade_id.to_string() == fresh_id && f.strategy_id.as_str() == "tv"),
        "the row is the engine's fill {fresh_id}"
    );
    eprintln!("fill shown {elapsed:?} after the webhook answered");

    // Nothing but this origin was asked for, and nothing went to the console.
    let origin = c.execute("return location.origin", vec![]).await.expect("origin");
    let resources =
        c.execute("return performance.getEntriesByType('resource').map(e => e.name)", vec![]).await.expect("resources");
    let resources: Vec<String> = serde_json::from_value(resources).unwrap_or_default();
    assert!(resources.len() >= 4, "the page's own requests are listed: {resources:?}");
    let origin = origin.as_str().unwrap_or_default();
    let foreign: Vec<_> = resources.iter().filter(|u| !u.starts_with(&format!("{origin}/"))).collect();
    assert!(foreign.is_empty(), "requests beyond {origin}: {foreign:?}");
    let log = browser_log(&driver, &c).await;
    assert_eq!(errors(&log, &[]), Vec::<String>::new(), "console errors after unlocking");

    // The webhook strategy's PnL is the engine's: a figure, with the
    // engine's own fees for tv in its breakdown (fees move only on fills,
    // and only this test makes tv's).
    let strategies = r.handle.strategies().await.expect("strategies");
    let tv = strategies.iter().find(|s| s.id.as_str() == "tv").expect("tv");
    let fees = tv.pnl.fees.expect("tv's fees are known").trunc_with_scale(4).normalize();
    let js = format!(
        "(() => {{ const c = document.querySelector('#strategies tr[data-strategy=tv]')?.cells[4]; return c && c.title.includes('fees {fees}') && c.textContent; }})()"
    );
    let pnl = until(&c, 5, "tv's PnL from the engine", &js).await;
    let pnl = pnl.as_str().unwrap_or_default().to_string();
    assert!(pnl.parse::<f64>().is_ok_and(f64::is_finite), "tv's PnL: {pnl}");
    // The position follows the fill (re-read after the event, no reload).
    let qty = btc_qty(&r).await;
    until(
        &c,
        5,
        &format!("the position updated to {qty}"),
        &format!("window.keelNoReload === 1 && document.querySelector('#positions tr[data-symbol=BTCUSDT]')?.cells[1].textContent === '{qty}'"),
    )
    .await;
    screenshot(&c, "overview").await;
    let _ = c.close().await;
    drop(driver);
    r.stop().await;
}

#[actix_rt::test]
async fn the_emergency_stop_button_confirmed_sets_the_stop_by_web() {
    let Some((chromium, driver_path)) = browser() else { return };
    let r = start(&config()).await;
    let profile = tempfile::tempdir().expect("profile dir");
    let driver = start_driver(&driver_path).await;
    let c = session(&driver, &chromium, profile.path()).await;
    // A token the engine no longer takes (kept from an earlier visit): the
    // first 401 brings the prompt back, saying why.
    c.goto(&format!("{}/", r.base_url())).await.expect("page loads");
    c.execute("sessionStorage.setItem('keel.console.token', 'an-old-token-0123456789abcdef0123456789'); location.reload(); return true", vec![])
        .await
        .expect("stale token");
    until(
        &c,
        10,
        "the prompt back after a 401",
        "document.getElementById('token-dialog').open && document.getElementById('token-error').textContent.includes('refused')",
    )
    .await;
    assert_eq!(
        c.execute("return sessionStorage.length", vec![]).await.ok(),
        Some(json!(0)),
        "the refused token is dropped"
    );
    enter_token(&c, TOKEN).await;
    until(&c, 10, "the prompt closes", "!document.getElementById('token-dialog').open").await;
    until(&c, 10, "the overview", "document.getElementById('estop-value').textContent === 'clear'").await;

    click(&c, "#btn-stop").await;
    until(&c, 5, "the confirmation dialog", "document.getElementById('stop-dialog').open").await;
    // Confirming without a reason asks for one and stops nothing.
    click(&c, "#stop-confirm").await;
    until(&c, 5, "the reason is asked for", "!document.getElementById('stop-error').hidden").await;
    assert!(!r.store.emergency_stop().expect("store").active, "no stop without a reason and a confirmation");

    let reason = "console test: stop from the browser";
    c.find(Locator::Id("stop-reason")).await.expect("reason").send_keys(reason).await.expect("type");
    screenshot(&c, "emergency-stop-confirm").await;
    click(&c, "#stop-confirm").await;
    until(&c, 10, "the stop shown as set", "document.getElementById('estop-value').textContent === 'SET'").await;

    let stop = r.store.emergency_stop().expect("store");
    assert!(stop.active, "the stop is set in the store");
    assert_eq!(stop.reason.as_deref(), Some(reason));
    let by = stop.set_by.clone().unwrap_or_default();
    assert!(by.starts_with("web:"), "set by the console: {by}");
    let shown_by = text(&c, "#estop-by").await;
    assert_eq!(shown_by, by, "the page says who set it");
    until(
        &c,
        5,
        "the trading state shown as HALTED",
        "document.getElementById('trading-state').textContent === 'HALTED'",
    )
    .await;
    screenshot(&c, "emergency-stop-set").await;

    // Resume, confirmed, clears it, as the console.
    until(&c, 5, "Resume enabled", "!document.getElementById('btn-resume').disabled").await;
    click(&c, "#btn-resume").await;
    until(&c, 5, "the resume confirmation", "document.getElementById('confirm-dialog').open").await;
    click(&c, "#confirm-yes").await;
    until(&c, 10, "the stop shown as clear", "document.getElementById('estop-value').textContent === 'clear'").await;
    let stop = r.store.emergency_stop().expect("store");
    assert!(!stop.active, "the stop is cleared in the store");
    assert!(stop.cleared_by.as_deref().is_some_and(|b| b.starts_with("web:")), "cleared by the console: {stop:?}");
    until(
        &c,
        5,
        "the trading state back to ACTIVE",
        "document.getElementById('trading-state').textContent === 'ACTIVE'",
    )
    .await;

    // The only errors: the browser reporting the requests the old token made.
    let log = browser_log(&driver, &c).await;
    assert_eq!(errors(&log, &["the server responded with a status of 401"]), Vec::<String>::new(), "console errors");
    let _ = c.close().await;
    drop(driver);
    r.stop().await;
}

/// What is real here: the engine, its API, the page and the browser. What is
/// not: the engine trades the paper venue, while its operator surfaces are
/// given a config whose venue mode is `mainnet` — so `/api/v1/status` says
/// mainnet exactly as a mainnet engine's would, without any network beyond
/// 127.0.0.1 (and without a real account).
#[actix_rt::test]
async fn the_mainnet_banner_is_unmistakable() {
    let Some((chromium, driver_path)) = browser() else { return };
    let r = start_with(&config(), |c| c.venue.mode = ops::config::VenueMode::Mainnet).await;
    let profile = tempfile::tempdir().expect("profile dir");
    let driver = start_driver(&driver_path).await;
    let c = session(&driver, &chromium, profile.path()).await;
    open_console(&c, &r.base_url()).await;

    until(&c, 10, "the mainnet banner", "!document.getElementById('mainnet-banner').hidden").await;
    let banner = c
        .execute(
            "const b = document.getElementById('mainnet-banner').getBoundingClientRect(); \
             const s = getComputedStyle(document.getElementById('mainnet-banner')); \
             return [b.top, b.width, window.innerWidth, s.backgroundColor, document.getElementById('mainnet-banner').textContent, document.title]",
            vec![],
        )
        .await
        .expect("banner geometry");
    assert_eq!(banner[0].as_f64(), Some(0.0), "the banner is at the top: {banner}");
    assert_eq!(banner[1].as_f64(), banner[2].as_f64(), "the banner spans the window: {banner}");
    let rgb: Vec<u32> = banner[3]
        .as_str()
        .unwrap_or_default()
        .trim_start_matches("rgb(")
        .trim_end_matches(')')
        .split(',')
        .filter_map(|v| v.trim().parse().ok())
        .collect();
    assert!(rgb.len() == 3 && rgb[0] > 150 && rgb[1] < 60 && rgb[2] < 60, "the banner is red: {banner}");
    assert!(banner[4].as_str().unwrap_or_default().contains("REAL MONEY"), "{banner}");
    assert!(banner[5].as_str().unwrap_or_default().starts_with("MAINNET"), "the tab title says it: {banner}");
    assert!(text(&c, "#venue-mode").await.contains("MAINNET"));
    screenshot(&c, "mainnet").await;

    let log = browser_log(&driver, &c).await;
    assert_eq!(errors(&log, &[]), Vec::<String>::new(), "console errors");
    let _ = c.close().await;
    drop(driver);
    r.stop().await;
}

#[actix_rt::test]
async fn orders_are_canceled_and_strategies_paused_from_the_page_as_web() {
    let Some((chromium, driver_path)) = browser() else { return };
    let r = start(&config()).await;
    let have_orders = http_support::eventually(20, || async {
        r.handle.open_orders().await.map(|o| o.iter().any(|o| o.strategy_id.as_str() == "btc_grid")).unwrap_or(false)
    })
    .await;
    assert!(have_orders, "the grid's orders rest at the venue");
    // The grid is paused first, so it does not place the canceled order again.
    r.handle.set_paused("btc_grid", true, "paused by the console test").await.expect("pause btc_grid");
    let profile = tempfile::tempdir().expect("profile dir");
    let driver = start_driver(&driver_path).await;
    let c = session(&driver, &chromium, profile.path()).await;
    open_console(&c, &r.base_url()).await;

    // Cancel one open order with its row's button.
    let open = r.handle.open_orders().await.expect("orders");
    let id = open.iter().find(|o| o.strategy_id.as_str() == "btc_grid").expect("a grid order").client_order_id.clone();
    let row = format!("#orders tr[data-id=\"{id}\"]");
    until(&c, 10, "the order's row", &format!("document.querySelector('{row}')")).await;
    click(&c, &format!("{row} button.cancel")).await;
    let gone = http_support::eventually(10, || async {
        r.handle.open_orders().await.map(|o| o.iter().all(|o| o.client_order_id != id)).unwrap_or(false)
    })
    .await;
    assert!(gone, "the engine canceled {id}");
    until(&c, 5, "the row gone from the page", &format!("!document.querySelector('{row}')")).await;

    // The paused grid's row offers Resume; pressing it resumes the strategy.
    let strategy = "#strategies tr[data-strategy=btc_grid]";
    until(
        &c,
        10,
        "btc_grid shown paused",
        &format!("document.querySelector('{strategy}')?.cells[3].textContent === 'paused'"),
    )
    .await;
    click(&c, &format!("{strategy} button")).await;
    let resumed = http_support::eventually(10, || async {
        r.handle.strategies().await.map(|s| s.iter().any(|s| s.id.as_str() == "btc_grid" && !s.paused)).unwrap_or(false)
    })
    .await;
    assert!(resumed, "btc_grid resumed from the page");
    until(
        &c,
        5,
        "btc_grid shown running",
        &format!("document.querySelector('{strategy}')?.cells[3].textContent === 'running'"),
    )
    .await;

    // Both actions are in the audit log as the console's, and on the page.
    let audit = r.store.audit(10).expect("audit log");
    for action in ["cancel_order", "resume_strategy"] {
        let rec = audit.iter().find(|a| a.action == action).unwrap_or_else(|| panic!("{action} audited: {audit:?}"));
        assert_eq!(rec.by, "web", "{rec:?}");
        assert!(rec.ok, "{rec:?}");
    }
    until(
        &c,
        10,
        "the audit log on the page",
        "document.getElementById('audit').textContent.includes('cancel_order by web')",
    )
    .await;
    screenshot(&c, "actions").await;

    // Flatten the BTCUSDT position from its row, through the confirmation.
    // The engine's flatten waits while orders rest on the symbol (a resting
    // buy could add to what it sells), so the strategies are paused and their
    // orders canceled first.
    for id in ["btc_sma", "btc_grid"] {
        r.handle.set_paused(id, true, "paused by the console test").await.expect("pause");
    }
    r.handle.cancel_all(None, "console test").await.expect("cancel all");
    let none_open =
        http_support::eventually(10, || async { r.handle.open_orders().await.is_ok_and(|o| o.is_empty()) }).await;
    assert!(none_open, "no order rests before the flatten");
    let mut bought = false;
    for attempt in 0..10 {
        webhook_buy(&r.base_url(), &format!("console-flatten-{attempt}")).await;
        bought = http_support::eventually(2, || async { btc_qty(&r).await.parse::<f64>().unwrap_or(0.0) > 0.0 }).await;
        if bought {
            break;
        }
    }
    assert!(bought, "a webhook buy filled: BTCUSDT {}", btc_qty(&r).await);
    let position = "#positions tr[data-symbol=BTCUSDT] button";
    until(&c, 10, "the position's Flatten button", &format!("document.querySelector('{position}')")).await;
    click(&c, position).await;
    until(&c, 5, "the flatten confirmation", "document.getElementById('confirm-dialog').open").await;
    click(&c, "#confirm-yes").await;
    let flat =
        http_support::eventually(10, || async { btc_qty(&r).await.parse::<f64>().map(|q| q == 0.0).unwrap_or(false) })
            .await;
    if !flat {
        let toast = text(&c, "#toast").await;
        let audit = r.store.audit(10).expect("audit log");
        let rejections = r.handle.risk().await.map(|s| format!("{:?}", s.rejections)).unwrap_or_default();
        panic!(
            "flattened from the page: BTCUSDT {} (toast {toast:?}; audit {audit:?}; rejections {rejections})",
            btc_qty(&r).await
        );
    }
    let audit = r.store.audit(10).expect("audit log");
    assert!(audit.iter().any(|a| a.action == "flatten" && a.by == "web" && a.ok), "{audit:?}");
    until(&c, 10, "the flat position on the page", &format!("!document.querySelector('{position}')")).await;

    // Lock: the token is forgotten, the live stream closed, the prompt back.
    click(&c, "#btn-lock").await;
    until(
        &c,
        5,
        "locked",
        "document.getElementById('token-dialog').open && sessionStorage.length === 0 && document.getElementById('link').textContent === 'locked'",
    )
    .await;
    let log = browser_log(&driver, &c).await;
    assert_eq!(errors(&log, &[]), Vec::<String>::new(), "console errors");
    let _ = c.close().await;
    drop(driver);
    r.stop().await;
}

/// The trade ids of the `tv` strategy's fills in the journal of the engine at `base`.
async fn tv_fills(base: &str) -> Vec<String> {
    let http = reqwest::Client::builder().no_proxy().timeout(Duration::from_secs(10)).build().expect("client");
    let resp = http.get(format!("{base}/api/v1/trades?limit=1000")).bearer_auth(TOKEN).send().await;
    let trades: Value = resp.expect("trades answer").json().await.expect("trades JSON");
    let trades = trades.as_array().cloned().unwrap_or_default();
    let id = |t: &Value| match &t["trade_id"] {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    trades.iter().filter(|t| t["strategy_id"] == "tv").map(id).collect()
}

/// The real `keel` binary's config and data dir in a temp dir, listening on
/// a port fixed when this is made, so a restarted process is where the page
/// looks for it.
struct KeelOnPort {
    config: PathBuf,
    data: PathBuf,
    /// `http://127.0.0.1:port`.
    base: String,
    _dir: tempfile::TempDir,
}

impl KeelOnPort {
    fn new() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let port = TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("a free port").port();
        let text = config()
            .replace("listen = \"127.0.0.1:0\"", &format!("listen = \"127.0.0.1:{port}\""))
            .replace("log_level = \"warn\"", "log_level = \"info\"");
        let config = dir.path().join("keel.toml");
        std::fs::write(&config, text).expect("config written");
        Self { config, data: dir.path().join("data"), base: format!("http://127.0.0.1:{port}"), _dir: dir }
    }

    /// `keel run` on this config and data dir, once it listens on the port.
    fn spawn(&self) -> common::Keel {
        let env = [(TOKEN_ENV, TOKEN), (SECRET_ENV, SECRET)];
        let mut keel = common::spawn_run(&self.config, &self.data, &[], &env);
        assert_eq!(keel.http_base(), self.base, "keel listens on the fixed port");
        keel
    }
}

/// The page is live: the badge says so and the disconnected banner is gone.
const LIVE: &str =
    "document.getElementById('link').textContent === 'live' && document.getElementById('link-banner').hidden";

/// How long the page may take to find a restarted engine by itself: its
/// reconnect backoff is capped at 15 s, plus the hello and a margin.
const RECONNECT_SECS: u64 = 20;

/// What is real here: the `keel` binary (a process of its own, stopped with
/// SIGTERM and started again on the same port and data dir), its API, the
/// page and the browser.
#[actix_rt::test]
async fn the_page_says_it_lost_the_engine_and_reconnects_by_itself_after_a_restart() {
    let Some((chromium, driver_path)) = browser() else { return };
    let on_port = KeelOnPort::new();
    let base = on_port.base.clone();
    let keel = on_port.spawn();
    let profile = tempfile::tempdir().expect("profile dir");
    let driver = start_driver(&driver_path).await;
    let c = session(&driver, &chromium, profile.path()).await;
    open_console(&c, &base).await;
    until(&c, 10, "the live event stream", LIVE).await;
    c.execute("window.keelNoReload = 1; return true", vec![]).await.expect("mark the page");

    // The engine goes away: the page says so, plainly.
    keel.sigterm();
    let (status, stop_lines) = keel.finish();
    common::assert_stopped("the run", status, &stop_lines);
    let banner = until(
        &c,
        10,
        "the page shows it lost the engine",
        "!document.getElementById('link-banner').hidden && document.getElementById('link').textContent !== 'live' && document.getElementById('link-banner').textContent",
    )
    .await;
    let banner = banner.as_str().unwrap_or_default().to_string();
    assert!(banner.starts_with("Disconnected from the engine — reconnecting"), "{banner}");
    assert!(banner.contains("as of "), "the banner says how old the figures are: {banner}");
    let shown = c
        .execute(
            "const b = document.getElementById('link-banner').getBoundingClientRect(); \
             return [b.top, b.height, window.innerWidth - b.width, document.body.classList.contains('stale')]",
            vec![],
        )
        .await
        .expect("banner geometry");
    let at = |i: usize| shown[i].as_f64().unwrap_or(f64::NAN);
    assert!(at(0) == 0.0 && at(1) > 20.0 && at(2) == 0.0, "a full-width banner at the top: {shown}");
    assert_eq!(shown[3], json!(true), "the figures below are dimmed as out of date");
    screenshot(&c, "reconnect-disconnected").await;

    // The engine comes back on the same port and data dir: the page finds it
    // by itself, without a reload or a click.
    let keel = on_port.spawn();
    let listening = Instant::now();
    until(&c, RECONNECT_SECS, "the page live again by itself", &format!("window.keelNoReload === 1 && {LIVE}")).await;
    eprintln!("the page was live again {:?} after the restarted keel listened", listening.elapsed());

    // A fill made after the restart is on the page within 2 s of the
    // webhook's answer. Right after start the risk guard may refuse a first
    // order as stale data: the alert is sent again, with a new id, until one
    // fills; a fill the engine made that the page missed fails at once.
    let http = reqwest::Client::builder().no_proxy().timeout(Duration::from_secs(5)).build().expect("client");
    let ready = http_support::eventually(30, || async {
        http.get(format!("{base}/ready")).send().await.map(|r| r.status() == 200).unwrap_or(false)
    })
    .await;
    assert!(ready, "the restarted engine is ready (streams up, prices known)");
    let mut shown = None;
    for attempt in 0..10 {
        let before = tv_fills(&base).await;
        webhook_buy(&base, &format!("reconnect-after-{attempt}")).await;
        let answered = Instant::now();
        let js = format!(
            "window.keelNoReload === 1 && [...document.querySelectorAll('#fills tr[data-trade-id]')].map(r => [r.dataset.tradeId, r.cells[1].textContent]).find(([id, s]) => s === 'tv' && !{}.includes(id))",
            serde_json::to_string(&before).unwrap_or_default()
        );
        if let Some(row) = truthy_within(&c, Duration::from_secs(2), &js).await {
            shown = Some((row[0].as_str().unwrap_or_default().to_string(), answered.elapsed()));
            break;
        }
        let missed: Vec<String> = tv_fills(&base).await.into_iter().filter(|id| !before.contains(id)).collect();
        if !missed.is_empty() {
            let shot = screenshot(&c, "failed-reconnect-fill").await;
            panic!(
                "the engine filled {missed:?} but the page did not show it within 2 s; screenshot {}",
                shot.display()
            );
        }
    }
    let Some((fresh, elapsed)) = shown else { panic!("no webhook buy filled after the restart") };
    assert!(tv_fills(&base).await.contains(&fresh), "the row is the engine's fill {fresh}");
    eprintln!("fill shown {elapsed:?} after the webhook answered (after the restart)");
    // The snapshots re-read after the reconnect follow too: the position is the restarted engine's.
    let status: Value = http
        .get(format!("{base}/api/v1/status"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .expect("status")
        .json()
        .await
        .expect("status JSON");
    let positions = status["portfolio"]["positions"].as_array().cloned().unwrap_or_default();
    let btc = positions.iter().find(|p| p["symbol"] == "BTCUSDT").and_then(|p| p["qty"].as_str()).unwrap_or_default();
    let qty = btc.parse::<Decimal>().map(|q| q.normalize().to_string()).unwrap_or_default();
    assert!(qty.parse::<f64>().is_ok_and(|q| q > 0.0), "the engine holds BTC after the buy: {qty}");
    until(
        &c,
        5,
        &format!("the position updated to {qty}"),
        &format!("window.keelNoReload === 1 && document.querySelector('#positions tr[data-symbol=BTCUSDT]')?.cells[1].textContent === '{qty}'"),
    )
    .await;
    screenshot(&c, "reconnect-recovered").await;

    // No error but the browser reporting the refused connections while keel was down.
    let log = browser_log(&driver, &c).await;
    assert_eq!(errors(&log, &["net::ERR_CONNECTION_REFUSED"]), Vec::<String>::new(), "console errors");
    let _ = c.close().await;
    drop(driver);
    keel.sigterm();
    let (status, stop_lines) = keel.finish();
    common::assert_stopped("the run", status, &stop_lines);
}

/// How long the page may take to notice a stream that went silent without
/// closing: the server pings every 15 s (`PING_EVERY`), the page gives up on
/// a stream after 25 s without a byte, plus a margin.
const SILENT_SECS: u64 = 35;

/// An engine that stops answering without closing its connections (a frozen
/// process; the same as a host or network gone without a reset): the page
/// must not go on saying `live` over a dead stream. Frozen with SIGSTOP, the
/// real `keel` binary; thawed with SIGCONT, it is found again by itself.
#[actix_rt::test]
async fn a_silent_engine_is_shown_lost_and_found_again_when_it_answers() {
    let Some((chromium, driver_path)) = browser() else { return };
    let on_port = KeelOnPort::new();
    let keel = on_port.spawn();
    let profile = tempfile::tempdir().expect("profile dir");
    let driver = start_driver(&driver_path).await;
    let c = session(&driver, &chromium, profile.path()).await;
    open_console(&c, &on_port.base).await;
    until(&c, 10, "the live event stream", LIVE).await;
    c.execute("window.keelNoReload = 1; return true", vec![]).await.expect("mark the page");

    keel.signal("STOP");
    let frozen = Instant::now();
    let lost = truthy_within(
        &c,
        Duration::from_secs(SILENT_SECS),
        "!document.getElementById('link-banner').hidden && document.getElementById('link-banner').textContent",
    )
    .await;
    // Thawed before any assertion, so a failure leaves no stopped process behind.
    let noticed = frozen.elapsed();
    keel.signal("CONT");
    let shot = screenshot(&c, "reconnect-silent").await;
    let lost = lost.unwrap_or_else(|| {
        panic!("the page still says live {SILENT_SECS} s after the engine went silent; screenshot {}", shot.display())
    });
    assert!(lost.as_str().unwrap_or_default().starts_with("Disconnected from the engine"), "{lost}");
    eprintln!("the silent stream was noticed after {noticed:?}");

    until(&c, RECONNECT_SECS, "the page live again by itself", &format!("window.keelNoReload === 1 && {LIVE}")).await;
    let log = browser_log(&driver, &c).await;
    assert_eq!(errors(&log, &[]), Vec::<String>::new(), "console errors");
    let _ = c.close().await;
    drop(driver);
    keel.sigterm();
    let (status, stop_lines) = keel.finish();
    common::assert_stopped("the run", status, &stop_lines);
}

/// A `scanner` on BTCUSDT that alerts on every close beyond the last two
/// bars (the paper market's bars come every few tens of ms), throttled to 1 ms.
const SCANNER: &str = r#"
[[strategy]]
id = "scan"
kind = "scanner"
symbol = "BTCUSDT"
params = { breakout_bars = 2, throttle = "1ms" }
"#;

/// The setup alerts table's rows: `[time, strategy, symbol, condition, message, values]` and `data-ts`.
const ALERT_ROWS: &str = "[...document.querySelectorAll('#setup-alerts tbody tr[data-ts]')]\
    .map((r) => [...r.cells].map((c) => c.textContent).concat([Number(r.dataset.ts), r.querySelectorAll('td *').length]))";

#[actix_rt::test]
async fn setup_alerts_show_newest_first_and_bounded() {
    let Some((chromium, driver_path)) = browser() else { return };
    std::env::set_var(TOKEN_ENV, TOKEN);
    std::env::set_var(SECRET_ENV, SECRET);
    let r = start(&format!(
        "{BASE}{GRID}{SCANNER}\n[http]\nlisten = \"127.0.0.1:0\"\ntoken_env = \"{TOKEN_ENV}\"\nwebhook_secret_env = \"{SECRET_ENV}\"\n"
    ))
    .await;
    let profile = tempfile::tempdir().expect("profile dir");
    let driver = start_driver(&driver_path).await;
    let c = session(&driver, &chromium, profile.path()).await;
    open_console(&c, &r.base_url()).await;

    until(&c, 30, "a setup alert on the page", &format!("{ALERT_ROWS}.length >= 3")).await;
    let rows = c.execute(&format!("return {ALERT_ROWS};"), vec![]).await.expect("rows");
    let rows = rows.as_array().cloned().unwrap_or_default();
    for row in &rows {
        let cell = |i: usize| row[i].as_str().unwrap_or_default();
        let ts = row[6].as_i64().expect("data-ts");
        let when = chrono::DateTime::from_timestamp_millis(ts).expect("a time").format("%Y-%m-%dT%H:%M:%SZ");
        assert_eq!(cell(0), when.to_string(), "the time cell is the alert's ts_ms: {row}");
        assert_eq!((cell(1), cell(2)), ("scan", "BTCUSDT"), "{row}");
        let side = match cell(3) {
            "breakout_high" => "above the high",
            "breakout_low" => "below the low",
            other => panic!("condition {other}: {row}"),
        };
        assert!(cell(4).starts_with("BTCUSDT closed at ") && cell(4).contains(side), "the message: {row}");
        for name in ["close=", "level=", "bars=2"] {
            assert!(cell(5).contains(name), "the values carry {name}: {row}");
        }
        assert_eq!(row[7], 0, "cells hold text only: {row}");
    }
    let times: Vec<i64> = rows.iter().filter_map(|r| r[6].as_i64()).collect();
    assert!(times.windows(2).all(|w| w[0] >= w[1]), "newest first: {times:?}");

    // Past 50 the oldest go: a newer alert arrives and the table stays at 50.
    until(&c, 60, "50 setup alerts", &format!("{ALERT_ROWS}.length === 50")).await;
    let newest = c.execute(&format!("return {ALERT_ROWS}[0][6];"), vec![]).await.expect("newest");
    until(&c, 30, "a newer alert at the top", &format!("{ALERT_ROWS}[0][6] > {newest}")).await;
    let n = c.execute(&format!("return {ALERT_ROWS}.length;"), vec![]).await.expect("count");
    assert_eq!(n, 50, "bounded at 50");
    screenshot(&c, "setup-alerts").await;

    let log = browser_log(&driver, &c).await;
    assert_eq!(errors(&log, &[]), Vec::<String>::new(), "console errors");
    let _ = c.close().await;
    drop(driver);
    r.stop().await;
}
