//! keel-coinbase's WebSocket streams (`subscribe_market`, `subscribe_user`)
//! against the real Coinbase-protocol sandbox on 127.0.0.1: trades, best
//! bid/ask and closed bars arrive; the level-2 book rebuilt from the stream
//! equals REST `product_book`, also after an injected `sequence_num` gap
//! made the stream resubscribe; a fill arrives exactly once, also when the
//! connection was down while the order filled (the reconciliation finds
//! it); heartbeats keep idle connections open past the sandbox's idle close.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use rust_decimal::Decimal;
use tokio::sync::mpsc;

use keel_coinbase::auth::Credentials;
use keel_coinbase::model::ProductBookResponse;
use keel_coinbase::rest::Kind;
use keel_coinbase::{CoinbaseSettings, CoinbaseVenue};
use keel_core::market::MarketEvent;
use keel_core::order::{OrderStatus, OrderType, Side, TimeInForce};
use keel_core::symbol::Symbol;
use keel_core::venue::{MarketFeed, OrderRequest, StreamStatus, UserEvent, Venue};
use keel_sandbox::{Sandbox, SandboxConfig, SandboxHandle};

fn btc() -> Symbol {
    Symbol::new("BTC-USDT")
}

/// The sandbox (with a Coinbase key) and a venue pointed at its REST and WebSocket URLs.
async fn start(cfg: SandboxConfig) -> (SandboxHandle, CoinbaseVenue, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("temp dir");
    let cfg = SandboxConfig { key_dir: Some(dir.path().to_path_buf()), generate_coinbase_key: true, ..cfg };
    let sb = Sandbox::start(cfg).await.expect("sandbox starts");
    let name = sb.coinbase_key_name.clone().expect("a Coinbase test key");
    let pem = sb.coinbase_private_key_pem.clone().expect("its private key");
    let creds = Arc::new(Credentials::new(&name, &pem).expect("the test key loads"));
    let mut settings = CoinbaseSettings::new(&format!("http://{}", sb.addr), creds);
    settings.ws_market_url = sb.coinbase_ws_market_url.clone();
    settings.ws_user_url = sb.coinbase_ws_user_url.clone();
    let venue = CoinbaseVenue::connect(settings).await.expect("the venue connects");
    (sb, venue, dir)
}

/// The next event (10 s at most).
async fn next<T>(rx: &mut mpsc::Receiver<T>) -> T {
    tokio::time::timeout(Duration::from_secs(10), rx.recv()).await.expect("an event within 10 s").expect("open")
}

async fn rest_book(venue: &CoinbaseVenue) -> (BTreeMap<Decimal, Decimal>, BTreeMap<Decimal, Decimal>) {
    let q = [("product_id", btc().to_string()), ("limit", "1000".to_string())];
    let r: ProductBookResponse = venue.rest().get(Kind::Read, "/product_book", &q).await.expect("product_book");
    let side = |l: &[keel_coinbase::model::PriceLevel]| l.iter().map(|p| (p.price, p.size)).collect();
    (side(&r.pricebook.bids), side(&r.pricebook.asks))
}

/// Waits until the stream's book is there (a snapshot arrived).
async fn stream_book(venue: &CoinbaseVenue) -> keel_coinbase::book::L2Book {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(b) = venue.book(&btc()) {
            return b;
        }
        assert!(tokio::time::Instant::now() < deadline, "no level-2 snapshot within 10 s");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn trades_best_bid_ask_arrive_and_bars_continue_after_the_warm_up_across_a_reconnect() {
    // Real time (speed 1): bars, trades and the server share one clock, as at Coinbase.
    let (sb, venue, _dir) = start(SandboxConfig::default()).await;
    let warm = venue.klines(&btc(), 60_000, None, 3).await.expect("warm-up bars");
    let served = warm.last().map(|b| b.open_time).expect("a warm-up bar");
    let mut rx = venue.subscribe_market(&[btc()], 60_000).await.expect("subscribes");
    assert_eq!(next(&mut rx).await, MarketFeed::Status(StreamStatus::Connected));
    // A reconnect before the next bar closes: it still comes, once, right after the warm-up's.
    sb.faults.drop_connections();
    let (mut trades, mut books, mut reconnected) = (0, 0, false);
    let bar = loop {
        let ev = tokio::time::timeout(Duration::from_secs(75), rx.recv()).await.expect("a bar within a minute");
        match ev.expect("open") {
            MarketFeed::Event(MarketEvent::Trade(t)) => {
                assert_eq!(t.symbol, btc());
                assert!(t.price > Decimal::ZERO && t.qty > Decimal::ZERO);
                trades += 1;
            }
            MarketFeed::Event(MarketEvent::Book(b)) => {
                assert!(b.bid < b.ask, "{b:?}");
                books += 1;
            }
            MarketFeed::Event(MarketEvent::Bar(b)) => break b,
            MarketFeed::Status(StreamStatus::Connected) => reconnected = true,
            MarketFeed::Status(StreamStatus::Disconnected { .. }) => {}
        }
    };
    assert!(reconnected && trades > 0 && books > 0, "{reconnected} {trades} {books}");
    assert_eq!(bar.open_time, served + 60_000, "the bar after the warm-up's, none lost or doubled");
    assert_eq!(bar.close_time, bar.open_time + 59_999);
    // The same bar REST gives.
    let rest = venue.klines(&btc(), 60_000, Some(bar.open_time), 1).await.expect("bars");
    assert_eq!(rest.first(), Some(&bar));
    sb.shutdown().await;
}

#[tokio::test]
async fn the_stream_book_equals_rest_and_a_sequence_gap_resubscribes_for_a_correct_book() {
    let (sb, venue, _dir) = start(SandboxConfig::default()).await;
    sb.market.pause();
    let _rx = venue.subscribe_market(&[btc()], 60_000).await.expect("subscribes");
    let book = stream_book(&venue).await;
    assert!(!book.bids.is_empty() && !book.offers.is_empty());
    assert_eq!((book.bids, book.offers), rest_book(&venue).await);
    assert_eq!(venue.l2_resyncs(), 0);

    // The next l2 message follows a skipped sequence number.
    sb.faults.skip_coinbase_l2_sequence(1);
    sb.market.step(3);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while venue.l2_resyncs() == 0 {
        assert!(tokio::time::Instant::now() < deadline, "no resubscribe after the gap");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let book = stream_book(&venue).await;
    let rest = rest_book(&venue).await;
    assert_eq!((book.bids, book.offers), rest, "the fresh snapshot is the book now");
    assert_eq!(venue.l2_resyncs(), 1);
    sb.shutdown().await;
}

/// Places a buy below the touch (it rests); its price.
async fn place_resting(venue: &CoinbaseVenue, cid: &str) -> Decimal {
    let t = venue.best_bid_ask(&btc()).await.expect("touch");
    let price = (t.bid * Decimal::new(99, 2)).round_dp(2);
    let req = OrderRequest {
        client_order_id: cid.into(),
        symbol: btc(),
        side: Side::Buy,
        order_type: OrderType::Limit { price },
        qty: Decimal::new(1, 3),
        tif: TimeInForce::Gtc,
    };
    let placed = venue.place_order(&req).await.expect("placed");
    assert_eq!(placed.report.status, OrderStatus::Accepted);
    assert!(placed.fills.is_empty());
    price
}

/// Moves the market down through a resting buy at `price`.
fn fill_through(sb: &SandboxHandle, price: Decimal) {
    assert!(sb.market.set_price("BTCUSDT", (price * Decimal::new(97, 2)).round_dp(2)));
    sb.market.step(2);
}

#[tokio::test]
async fn a_fill_arrives_exactly_once_and_a_reconnect_does_not_repeat_it() {
    let (sb, venue, _dir) = start(SandboxConfig::default()).await;
    sb.market.pause();
    let mut rx = venue.subscribe_user().await.expect("subscribes");
    let mut fills = Vec::new();
    loop {
        match next(&mut rx).await {
            UserEvent::Status(StreamStatus::Connected) => break,
            UserEvent::Fill(f) => fills.push(f),
            _ => {}
        }
    }
    let price = place_resting(&venue, "s-fill-1").await;
    fill_through(&sb, price);
    let mut filled = false;
    while !filled {
        match next(&mut rx).await {
            UserEvent::Fill(f) => fills.push(f),
            UserEvent::Order(r) if r.client_order_id == "s-fill-1" && r.status == OrderStatus::Filled => filled = true,
            _ => {}
        }
    }
    assert_eq!(fills.len(), 1, "{fills:?}");
    assert_eq!(fills[0].client_order_id, "s-fill-1");
    assert_eq!(fills[0].qty, Decimal::new(1, 3));

    // A reconnect reconciles (fills since the cursor): nothing is repeated.
    sb.faults.drop_connections();
    let mut saw_drop = false;
    loop {
        match next(&mut rx).await {
            UserEvent::Status(StreamStatus::Disconnected { .. }) => saw_drop = true,
            UserEvent::Status(StreamStatus::Connected) if saw_drop => break,
            UserEvent::Fill(f) => panic!("a fill delivered twice: {f:?}"),
            _ => {}
        }
    }
    sb.shutdown().await;
}

#[tokio::test]
async fn a_fill_while_the_connection_is_down_is_found_by_the_reconciliation_once() {
    let (sb, venue, _dir) = start(SandboxConfig::default()).await;
    sb.market.pause();
    let mut rx = venue.subscribe_user().await.expect("subscribes");
    while next(&mut rx).await != UserEvent::Status(StreamStatus::Connected) {}
    // Between the order and its fill, the connection drops and stays down.
    let price = place_resting(&venue, "s-gap-1").await;
    sb.faults.refuse_ws_api(true);
    sb.faults.drop_connections();
    loop {
        match next(&mut rx).await {
            UserEvent::Status(StreamStatus::Disconnected { .. }) => break,
            UserEvent::Fill(f) => panic!("a fill before the order filled: {f:?}"),
            _ => {}
        }
    }
    // The order fills while nothing is connected; then the stream may reconnect.
    fill_through(&sb, price);
    sb.faults.refuse_ws_api(false);
    let mut fills = Vec::new();
    loop {
        match next(&mut rx).await {
            UserEvent::Status(StreamStatus::Connected) => break,
            UserEvent::Fill(f) => fills.push(f),
            _ => {}
        }
    }
    assert_eq!(fills.len(), 1, "{fills:?}");
    assert_eq!(fills[0].client_order_id, "s-gap-1");
    let open = venue.open_orders(None).await.expect("open orders");
    assert!(open.is_empty(), "{open:?}");
    sb.shutdown().await;
}

#[tokio::test]
async fn heartbeats_keep_idle_connections_open_past_the_idle_close() {
    use futures_util::{SinkExt, StreamExt};
    let cfg = SandboxConfig { coinbase_ws_idle_close_ms: 1_500, ..SandboxConfig::default() };
    let (sb, venue, _dir) = start(cfg).await;
    sb.market.pause();

    // Without heartbeats, an idle connection is closed (so this test can fail).
    let (mut raw, _) = tokio_tungstenite::connect_async(&sb.coinbase_ws_user_url).await.expect("connects");
    let jwt = venue_jwt(&sb);
    let sub = serde_json::json!({"type": "subscribe", "product_ids": [], "channel": "user", "jwt": jwt});
    raw.send(tokio_tungstenite::tungstenite::Message::Text(sub.to_string().into())).await.expect("sends");
    let closed = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(Ok(m)) = raw.next().await {
            if m.is_close() {
                break;
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "the sandbox closes an idle connection");

    let mut user = venue.subscribe_user().await.expect("subscribes");
    let mut market = venue.subscribe_market(&[btc()], 60_000).await.expect("subscribes");
    while next(&mut user).await != UserEvent::Status(StreamStatus::Connected) {}
    assert_eq!(next(&mut market).await, MarketFeed::Status(StreamStatus::Connected));
    // Three idle-close periods: neither stream is dropped.
    let quiet = tokio::time::timeout(Duration::from_millis(4_500), async {
        loop {
            tokio::select! {
                u = user.recv() => if let Some(UserEvent::Status(s)) = u { return format!("user: {s:?}") },
                m = market.recv() => if let Some(MarketFeed::Status(s)) = m { return format!("market: {s:?}") },
            }
        }
    })
    .await;
    assert!(quiet.is_err(), "a stream changed status while idle: {quiet:?}");
    sb.shutdown().await;
}

/// A WebSocket JWT of the sandbox's test key.
fn venue_jwt(sb: &SandboxHandle) -> String {
    let name = sb.coinbase_key_name.clone().expect("key name");
    let pem = sb.coinbase_private_key_pem.clone().expect("key");
    let creds = Credentials::new(&name, &pem).expect("key loads");
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("after 1970").as_secs();
    creds.ws_jwt(now as i64).expect("a WebSocket JWT")
}

#[tokio::test]
async fn bars_trades_and_books_flow_when_the_sandbox_runs_faster_than_wall_time() {
    // Speed 240 (the embedded default): a 1m bar closes every 250 ms of wall
    // time, on a market clock far behind the server's (`/time`).
    let (sb, venue, _dir) = start(SandboxConfig { speed: 240.0, ..SandboxConfig::default() }).await;
    let warm = venue.klines(&btc(), 60_000, None, 3).await.expect("warm-up bars");
    assert_eq!(warm.len(), 3, "a warm-up at speed 240 gets the market's newest closed bars: {warm:?}");
    let served = warm.last().map(|b| b.open_time).expect("a warm-up bar");
    let mut rx = venue.subscribe_market(&[btc()], 60_000).await.expect("subscribes");
    let (mut bars, mut trades, mut books) = (Vec::new(), 0, 0);
    let collected = tokio::time::timeout(Duration::from_secs(20), async {
        while bars.len() < 8 {
            match rx.recv().await.expect("open") {
                MarketFeed::Event(MarketEvent::Bar(b)) => bars.push(b),
                MarketFeed::Event(MarketEvent::Trade(t)) => {
                    assert!(t.price > Decimal::ZERO && t.qty > Decimal::ZERO);
                    trades += 1;
                }
                MarketFeed::Event(MarketEvent::Book(b)) => {
                    assert!(b.bid < b.ask, "{b:?}");
                    books += 1;
                }
                MarketFeed::Status(_) => {}
            }
        }
    })
    .await;
    assert!(collected.is_ok(), "8 bars within 20 s at speed 240 (a bar every 250 ms); got {}: {bars:?}", bars.len());
    assert!(trades > 0 && books > 0, "trades {trades}, books {books}");
    assert_eq!(bars[0].open_time, served + 60_000, "the bar after the warm-up's first");
    assert!(bars.windows(2).all(|w| w[1].open_time == w[0].open_time + 60_000), "in order, no gap, no repeat");
    // The venue's own bars, closed ones only.
    let closed = sb.market.closed_bars("BTCUSDT");
    for b in &bars {
        let v = closed.iter().find(|c| c.open_time == b.open_time).expect("a bar the venue closed");
        assert_eq!((b.open, b.high, b.low, b.close, b.volume), (v.open, v.high, v.low, v.close, v.volume));
    }
    sb.shutdown().await;
}
