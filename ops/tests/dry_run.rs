//! Dry-run on live market data (issue 19, item 3), with a sandbox exchange
//! on loopback as the live source: paper mode with `market_data =
//! "binance"` and `[venue.paper]` pointing at it. Orders fill against the
//! sandbox's book and trades, and the sandbox never receives a request that
//! carries a key or a signature.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use keel_binance::model::Depth;
use keel_binance::public::PublicFeed;
use keel_binance::{Credentials, RestClient};
use keel_core::market::MarketEvent;
use keel_core::order::{OrderStatus, OrderType, Side, TimeInForce};
use keel_core::venue::live_paper::{LiveMarket, PublicMarketData};
use keel_core::venue::{MarketFeed, OrderRequest, StreamStatus, UserEvent};
use keel_core::{Decimal, Symbol};
use keel_sandbox::{Sandbox, SandboxConfig, SandboxHandle};
use ops::config::Config;
use tokio::sync::mpsc;

fn d(s: &str) -> Decimal {
    s.parse().expect("a decimal")
}

/// A dry-run on live market data at `rest` and `ws`: `[engine]` holds
/// `engine`, then the venue, the balances and BTCUSDT, then `tail`.
fn dry_run_toml(rest: &str, ws: &str, engine: &str, tail: &str) -> String {
    let symbol = common::btc_symbol("60000", 0.8, "0.05");
    format!(
        r#"
[engine]
{engine}

[venue]
mode = "paper"
market_data = "binance"
maker_fee_bps = "10"
taker_fee_bps = "10"
commission_asset = "quote"

[venue.paper]
rest_url = "{rest}"
ws_stream_url = "{ws}"

[balances]
USDT = "100000"
{symbol}
{tail}
"#
    )
}

fn config(rest: &str, ws: &str, data: &std::path::Path) -> Config {
    let text = dry_run_toml(rest, ws, &format!("data_dir = \"{}\"", data.display()), "");
    Config::parse(&text).expect("the dry-run config parses")
}

fn request(id: &str, side: Side, order_type: OrderType, qty: &str) -> OrderRequest {
    OrderRequest {
        client_order_id: id.into(),
        symbol: "BTCUSDT".into(),
        side,
        order_type,
        qty: d(qty),
        tif: TimeInForce::Gtc,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dry_run_fills_against_the_sandbox_book_and_sends_no_signed_request() {
    let dir = tempfile::tempdir().expect("temp dir");
    // A still market: the book the dry-run sees is the one REST shows.
    let sb = paused_sandbox(dir.path()).await;
    let config = config(&sb.rest_url, &sb.ws_stream_url, &dir.path().join("data"));
    let built = ops::venues::build(&config, None).await.expect("the dry-run venue builds");
    let venue = built.venue.clone();
    let sym = Symbol::new("BTCUSDT");
    // A symbol the source does not list stops the start, naming the key.
    let text = toml::to_string(&config).expect("the config serializes").replace("\"BTCUSDT\"", "\"NOPEUSDT\"");
    let unlisted = Config::parse(&text).expect("still a valid config");
    let e = ops::venues::build(&unlisted, None).await.err().expect("an unlisted symbol is refused").to_string();
    assert!(e.contains("symbol[0].symbol") && e.contains("NOPEUSDT"), "{e}");

    let bars = venue.klines(&sym, 60_000, None, 50).await.expect("warm-up klines from the sandbox");
    assert!(!bars.is_empty(), "the sandbox's history is served");
    let mut user = venue.subscribe_user().await.expect("user stream");
    let mut market = venue.subscribe_market(std::slice::from_ref(&sym), 60_000).await.expect("market stream");
    let top = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            match market.recv().await {
                Some(MarketFeed::Event(MarketEvent::Book(b))) => return b,
                Some(_) => {}
                None => panic!("the market stream ended"),
            }
        }
    })
    .await
    .expect("a live book within 20 s");

    // The sandbox's own book, over its public REST.
    let public = RestClient::new(&sb.rest_url, Credentials::new("", ""), 5_000, 5_000).expect("client");
    let depth: Depth = public
        .public("/api/v3/depth", vec![("symbol".into(), "BTCUSDT".into()), ("limit".into(), "20".into())])
        .await
        .expect("the sandbox's depth");
    let asks: Vec<(Decimal, Decimal)> = depth.asks.iter().map(|[p, q]| (d(p), d(q))).collect();
    assert_eq!((top.ask, top.ask_qty), asks[0], "the dry-run's touch is the sandbox's");
    assert!(asks.len() >= 3, "levels beyond the touch: {asks:?}");

    // A market buy larger than two levels walks three of them.
    let qty = asks[0].1 + asks[1].1 + asks[2].1 / Decimal::TWO;
    let r = venue
        .place_order(&request("dry-m", Side::Buy, OrderType::Market, &qty.to_string()))
        .await
        .expect("the market order is accepted");
    assert_eq!(r.report.status, OrderStatus::Filled);
    let got: Vec<(Decimal, Decimal)> = r.fills.iter().map(|f| (f.price, f.qty)).collect();
    assert_eq!(got, vec![asks[0], asks[1], (asks[2].0, asks[2].1 / Decimal::TWO)], "fills walk the sandbox's asks");
    for f in &r.fills {
        assert_eq!(f.fee, (f.price * f.qty * d("0.001")).round_dp(8), "taker fee 10 bps in the quote asset");
    }

    // A buy limit below the market rests, then fills when trades print
    // through it.
    let limit = (top.bid * d("0.99")).round_dp(2);
    let placed = venue
        .place_order(&request("dry-l", Side::Buy, OrderType::Limit { price: limit }, "0.01"))
        .await
        .expect("the limit is accepted");
    assert_eq!(placed.report.status, OrderStatus::Accepted, "it rests below the market");
    sb.market.set_price("BTCUSDT", (limit * d("0.98")).round_dp(2));
    // Each print fills at most its own quantity, so the order may fill in parts.
    let fills = tokio::time::timeout(Duration::from_secs(20), async {
        let mut fills = Vec::new();
        loop {
            sb.market.step(1);
            tokio::select! {
                ev = user.recv() => match ev {
                    Some(UserEvent::Fill(f)) if f.client_order_id == "dry-l" => {
                        fills.push(f);
                        if fills.iter().map(|f| f.qty).sum::<Decimal>() >= d("0.01") {
                            return fills;
                        }
                    }
                    Some(_) => {}
                    None => panic!("the user stream ended"),
                },
                _ = tokio::time::sleep(Duration::from_millis(150)) => {}
            }
        }
    })
    .await
    .expect("the resting limit fills once trades print through it");
    for f in &fills {
        assert_eq!((f.price, f.is_maker), (limit, true), "at its own price, as a maker");
    }
    assert_eq!(fills.iter().map(|f| f.qty).sum::<Decimal>(), d("0.01"), "exactly its quantity");

    let requests = sb.faults.rest_requests();
    assert!(requests.iter().any(|r| r.ends_with("/klines")), "the dry-run did use the sandbox: {requests:?}");
    assert!(requests.iter().any(|r| r.ends_with("/exchangeInfo")), "filters come from the source: {requests:?}");
    assert!(!requests.iter().any(|r| r.contains("order") || r.contains("account")), "{requests:?}");
    assert!(sb.faults.ws_api_requests().is_empty(), "no WebSocket API session");
    assert_eq!(sb.faults.signed_rest_requests(), 0, "no request carried a key or a signature");
    // The count is live: a keyed request is seen.
    let keyed =
        RestClient::new(&sb.rest_url, Credentials::new(&sb.api_key, &sb.api_secret), 5_000, 5_000).expect("client");
    let _ = keyed.account().await;
    assert_eq!(sb.faults.signed_rest_requests(), 1, "a signed request is counted");

    // A restart meets the account it left: balances, and an order still
    // resting at the venue.
    let far = (top.bid * d("0.5")).round_dp(2);
    venue.place_order(&request("dry-rest", Side::Buy, OrderType::Limit { price: far }, "0.001")).await.expect("rests");
    let balances = venue.balances().await.expect("balances");
    drop(venue);
    drop(market);
    drop(user);
    built.stop().await;
    let again = ops::venues::build(&config, None).await.expect("the dry-run venue builds again");
    let open = again.venue.open_orders(None).await.expect("open orders");
    assert_eq!(open.iter().map(|o| o.client_order_id.as_str()).collect::<Vec<_>>(), ["dry-rest"]);
    assert_eq!(again.venue.balances().await.expect("balances"), balances, "the account continues");
    let fills = again.venue.my_trades(&sym, None).await.expect("fills");
    assert!(fills.iter().any(|f| f.client_order_id == "dry-m"), "the fills are still listed");
    again.stop().await;
    sb.shutdown().await;
}

const TOKEN_ENV: &str = "KEEL_TEST_DRY_RUN_API_TOKEN";
const TOKEN: &str = "dry-run-token-7f3a9c-0123456789abcdef0123";

/// `keel run` in a dry-run on the sandbox (`strategy`: a `[[strategy]]`
/// block or nothing).
fn run_config(rest: &str, ws: &str, strategy: &str) -> String {
    let tail = format!(
        "[risk]\nmax_order_notional = \"100000\"\n\n[http]\nlisten = \"127.0.0.1:0\"\ntoken_env = \"{TOKEN_ENV}\"\n{strategy}"
    );
    dry_run_toml(rest, ws, "log_format = \"json\"\nlog_level = \"info\"", &tail)
}

async fn get(base: &str, path: &str) -> serde_json::Value {
    let client = reqwest::Client::builder().no_proxy().timeout(Duration::from_secs(10)).build().expect("client");
    let resp = client.get(format!("{base}{path}")).bearer_auth(TOKEN).send().await.expect("a response");
    assert!(resp.status().is_success(), "{path}: {}", resp.status());
    resp.json().await.expect("JSON")
}

/// asset -> free + locked, of `/api/v1/balances` or `keel state --json`.
fn totals(rows: impl Iterator<Item = (String, serde_json::Value)>) -> BTreeMap<String, Decimal> {
    let n = |v: &serde_json::Value| match v {
        serde_json::Value::String(s) => d(s),
        serde_json::Value::Number(x) => d(&x.to_string()),
        _ => Decimal::ZERO,
    };
    rows.map(|(asset, b)| (asset, n(&b["free"]) + n(&b["locked"]))).filter(|(_, t)| !t.is_zero()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keel_run_dry_run_says_so_trades_and_continues_after_a_crash() {
    let dir = tempfile::tempdir().expect("temp dir");
    // A fast market (a 1m bar every 100 ms), so the strategy trades within seconds.
    let sb = Sandbox::start(SandboxConfig {
        listen: "127.0.0.1:0".into(),
        key_dir: Some(dir.path().to_path_buf()),
        speed: 600.0,
        ..SandboxConfig::default()
    })
    .await
    .expect("the sandbox starts");
    let data = dir.path().join("data");
    let data = data.to_str().expect("utf-8 path");
    let config_path = dir.path().join("config.toml");
    let strategy = "[[strategy]]\nid = \"btc_fast\"\nkind = \"sma_cross\"\nsymbol = \"BTCUSDT\"\nparams = { fast = 2, slow = 4, qty = \"0.01\" }\n";
    std::fs::write(&config_path, run_config(&sb.rest_url, &sb.ws_stream_url, strategy)).expect("config");
    let env = [(TOKEN_ENV, TOKEN)];
    let check = common::keel(&["check-config", "--config", config_path.to_str().expect("utf-8 path")]);
    let summary = String::from_utf8_lossy(&check.stdout);
    assert!(summary.contains("venue paper on live Binance market data"), "check-config: {summary}");

    let mut keel = common::spawn_run(&config_path, std::path::Path::new(data), &[], &env);
    keel.wait_for("keel running; Ctrl-C or SIGTERM stops it", 1);
    let running = keel.seen.iter().find(|v| v["message"] == "keel running; Ctrl-C or SIGTERM stops it");
    let banner = running.and_then(|v| v["mode"].as_str()).unwrap_or_default().to_string();
    assert!(banner.contains("PAPER on live Binance market data"), "start-up line: {banner}");
    let base = keel.http_base();
    let status = get(&base, "/api/v1/status").await;
    assert_eq!(status["venue_mode"], "paper");
    assert_eq!(status["venue_description"], "paper on live Binance market data");
    assert_eq!(status["market_data"], "binance");
    let client = reqwest::Client::builder().no_proxy().build().expect("client");
    let metrics = client.get(format!("{base}/metrics")).send().await.expect("metrics").text().await.expect("text");
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("keel_info{") && l.contains("venue_mode=\"paper on live Binance market data\"")),
        "keel_info: {:?}",
        metrics.lines().filter(|l| l.starts_with("keel_info")).collect::<Vec<_>>()
    );

    // The strategy trades against the sandbox's book.
    let traded = tokio::time::timeout(Duration::from_secs(60), async {
        loop {
            let trades = get(&base, "/api/v1/trades").await;
            if trades.as_array().is_some_and(|t| !t.is_empty())
                || trades["trades"].as_array().is_some_and(|t| !t.is_empty())
            {
                return trades;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })
    .await
    .expect("a dry-run fill within 60 s");
    assert!(!traded.is_null());

    // A crash, then a restart without the strategy (so nothing trades).
    // The venue's account is the one the dry-run saved, which may be ahead
    // of the store (a fill the engine had not recorded when it was killed):
    // the restarted engine must show the venue's account, not `[balances]`
    // again, and must have recorded every fill the venue made.
    keel.signal("KILL");
    let _ = keel.child.wait();
    let saved = std::fs::read(std::path::Path::new(data).join("dry-run").join("account.json")).expect("saved account");
    let saved: keel_core::sim::MatchingCore = serde_json::from_slice(&saved).expect("a matching core");
    let venue_balances =
        totals(saved.balances(1).expect("the account").into_iter().map(|b| {
            (b.asset.clone(), serde_json::json!({"free": b.free.to_string(), "locked": b.locked.to_string()}))
        }));
    let venue_fills = saved.fills(1, "BTCUSDT", None).len();
    assert!(venue_fills > 0, "the dry-run traded");
    assert_ne!(venue_balances.get("USDT"), Some(&d("100000")), "the fills changed the account: {venue_balances:?}");
    std::fs::write(&config_path, run_config(&sb.rest_url, &sb.ws_stream_url, "")).expect("config");
    let mut again = common::spawn_run(&config_path, std::path::Path::new(data), &[], &env);
    let base = again.http_base();
    let caught_up = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            let after = get(&base, "/api/v1/balances").await;
            let after = totals(
                after["balances"]
                    .as_array()
                    .expect("balances")
                    .iter()
                    .map(|b| (b["asset"].as_str().unwrap_or_default().to_string(), b.clone())),
            );
            let trades = get(&base, "/api/v1/trades?limit=10000").await;
            let recorded = trades.as_array().or(trades["trades"].as_array()).map_or(0, Vec::len);
            if after == venue_balances && recorded == venue_fills {
                return;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })
    .await;
    assert!(
        caught_up.is_ok(),
        "the restarted engine shows the venue's account {venue_balances:?} and its {venue_fills} fills"
    );
    again.sigterm();
    let (exit, _) = again.finish();
    assert!(exit.success(), "{exit:?}");
    assert_eq!(sb.faults.signed_rest_requests(), 0, "no request carried a key or a signature");
    sb.shutdown().await;
}

/// A sandbox on a free port whose market moves only when stepped.
async fn paused_sandbox(key_dir: &std::path::Path) -> SandboxHandle {
    let sb = Sandbox::start(SandboxConfig {
        listen: "127.0.0.1:0".into(),
        key_dir: Some(key_dir.to_path_buf()),
        ..SandboxConfig::default()
    })
    .await
    .expect("the sandbox starts");
    sb.market.pause();
    sb
}

/// Reads until `n` more bars came, checking each follows the last; `step`
/// moves the sandbox's market on.
async fn bars(rx: &mut mpsc::Receiver<LiveMarket>, last: &mut i64, n: usize, step: impl Fn()) {
    let mut got = 0;
    tokio::time::timeout(Duration::from_secs(20), async {
        while got < n {
            step();
            let deadline = tokio::time::sleep(Duration::from_millis(100));
            tokio::pin!(deadline);
            loop {
                tokio::select! {
                    ev = rx.recv() => match ev {
                        Some(LiveMarket::Feed(MarketFeed::Event(MarketEvent::Bar(b)))) => {
                            assert_eq!(b.open_time, *last + 60_000, "bars once each and in order");
                            *last = b.open_time;
                            got += 1;
                        }
                        Some(_) => {}
                        None => panic!("the feed ended"),
                    },
                    _ = &mut deadline => break,
                }
            }
        }
    })
    .await
    .expect("the bars within 20 s");
}

/// Reads until a stream status `want` takes.
async fn wait_for(rx: &mut mpsc::Receiver<LiveMarket>, want: fn(&StreamStatus) -> bool) {
    let fut = async {
        loop {
            match rx.recv().await {
                Some(LiveMarket::Feed(MarketFeed::Status(s))) if want(&s) => return,
                Some(_) => {}
                None => panic!("the feed ended"),
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(20), fut).await.expect("the stream status within 20 s")
}

/// The dry-run's bars continue the warm-up and survive a dropped stream:
/// every closed bar once, in order, those missed while disconnected
/// fetched over REST.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dry_run_bars_continue_the_warm_up_and_are_backfilled_after_a_drop() {
    let dir = tempfile::tempdir().expect("temp dir");
    let sb = paused_sandbox(dir.path()).await;
    let feed = PublicFeed::new(&sb.rest_url, &sb.ws_stream_url).expect("feed");
    let sym = Symbol::new("BTCUSDT");
    let warm = feed.klines(&sym, 60_000, None, 100).await.expect("warm-up");
    let mut last = warm.last().expect("warm-up bars").open_time;
    let mut rx = feed.subscribe(std::slice::from_ref(&sym), 60_000).await.expect("subscribe");

    wait_for(&mut rx, |s| *s == StreamStatus::Connected).await;
    let step = || sb.market.step(10);
    bars(&mut rx, &mut last, 2, step).await;

    let klines_before = sb.faults.rest_requests().iter().filter(|r| r.ends_with("/klines")).count();
    sb.market.step(1);
    // The stream stays down (reconnects are refused) while three bars close.
    sb.faults.refuse_market_streams(true);
    sb.faults.drop_connections();
    wait_for(&mut rx, |s| matches!(s, StreamStatus::Disconnected { .. })).await;
    sb.market.step(30);
    sb.faults.refuse_market_streams(false);
    wait_for(&mut rx, |s| *s == StreamStatus::Connected).await;
    bars(&mut rx, &mut last, 4, step).await;
    let klines_after = sb.faults.rest_requests().iter().filter(|r| r.ends_with("/klines")).count();
    assert!(klines_after > klines_before, "the missed bars came over REST");
    assert_eq!(sb.faults.signed_rest_requests(), 0);
    drop(rx);
    sb.shutdown().await;
}

/// The dry-run's stream connection is renewed before its age limit (a
/// second here, 23 hours against Binance's 24), without a backoff, and the
/// bars go on once each and in order across the renewals.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dry_run_stream_is_renewed_before_its_age_limit() {
    let dir = tempfile::tempdir().expect("temp dir");
    let sb = paused_sandbox(dir.path()).await;
    let feed =
        PublicFeed::new(&sb.rest_url, &sb.ws_stream_url).expect("feed").with_reconnect_after(Duration::from_secs(1));
    let sym = Symbol::new("BTCUSDT");
    let warm = feed.klines(&sym, 60_000, None, 100).await.expect("warm-up");
    let mut last = warm.last().expect("warm-up bars").open_time;
    let mut rx = feed.subscribe(std::slice::from_ref(&sym), 60_000).await.expect("subscribe");
    for _ in 0..2 {
        wait_for(&mut rx, |s| *s == StreamStatus::Connected).await;
        wait_for(&mut rx, |s| matches!(s, StreamStatus::Disconnected { reason } if reason.starts_with("proactive")))
            .await;
    }
    bars(&mut rx, &mut last, 3, || sb.market.step(10)).await;
    drop(rx);
    sb.shutdown().await;
}
