//! Dry-run on live market data (issue 19, item 3), with a sandbox exchange
//! on loopback as the live source: paper mode with `market_data =
//! "binance"` and `[venue.paper]` pointing at it. Orders fill against the
//! sandbox's book and trades, and the sandbox never receives a request that
//! carries a key or a signature.

use std::time::Duration;

use keel_binance::model::Depth;
use keel_binance::{Credentials, RestClient};
use keel_core::market::MarketEvent;
use keel_core::order::{OrderStatus, OrderType, Side, TimeInForce};
use keel_core::venue::{MarketFeed, OrderRequest, UserEvent};
use keel_core::{Decimal, Symbol};
use keel_sandbox::{Sandbox, SandboxConfig};
use ops::config::Config;

fn d(s: &str) -> Decimal {
    s.parse().expect("a decimal")
}

fn config(rest: &str, ws: &str) -> Config {
    let text = format!(
        r#"
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

[[symbol]]
symbol = "BTCUSDT"
base = "BTC"
quote = "USDT"
tick_size = "0.01"
step_size = "0.00001"
min_notional = "5"
start_price = "60000"
volatility = 0.8
touch_qty = "0.05"
"#
    );
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
    let sb = Sandbox::start(SandboxConfig {
        listen: "127.0.0.1:0".into(),
        key_dir: Some(dir.path().to_path_buf()),
        ..SandboxConfig::default()
    })
    .await
    .expect("the sandbox starts");
    // A still market: the book the dry-run sees is the one REST shows.
    sb.market.pause();
    let config = config(&sb.rest_url, &sb.ws_stream_url);
    let built = ops::venues::build(&config, None).await.expect("the dry-run venue builds");
    let venue = built.venue.clone();
    let sym = Symbol::new("BTCUSDT");

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
    let filled = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            sb.market.step(1);
            tokio::select! {
                ev = user.recv() => match ev {
                    Some(UserEvent::Fill(f)) if f.client_order_id == "dry-l" => return f,
                    Some(_) => {}
                    None => panic!("the user stream ended"),
                },
                _ = tokio::time::sleep(Duration::from_millis(150)) => {}
            }
        }
    })
    .await
    .expect("the resting limit fills once trades print through it");
    assert_eq!((filled.price, filled.qty, filled.is_maker), (limit, d("0.01"), true));

    let requests = sb.faults.rest_requests();
    assert!(requests.iter().any(|r| r.ends_with("/klines")), "the dry-run did use the sandbox: {requests:?}");
    assert!(!requests.iter().any(|r| r.contains("order") || r.contains("account")), "{requests:?}");
    assert!(sb.faults.ws_api_requests().is_empty(), "no WebSocket API session");
    assert_eq!(sb.faults.signed_rest_requests(), 0, "no request carried a key or a signature");
    // The count is live: a keyed request is seen.
    let keyed = RestClient::new(&sb.rest_url, Credentials::new(&sb.api_key, &sb.api_secret), 5_000, 5_000)
        .expect("client");
    let _ = keyed.account().await;
    assert_eq!(sb.faults.signed_rest_requests(), 1, "a signed request is counted");

    drop(venue);
    built.stop().await;
    sb.shutdown().await;
}
