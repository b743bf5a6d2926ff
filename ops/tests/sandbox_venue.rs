//! The Binance adapter against the Binance-protocol sandbox: orders, fills,
//! balances, own trades, market streams, and recovery from every injected fault.
//!
//! Every test runs on the default transport — the sandbox's Ed25519 key and
//! order entry over the WebSocket API. The key ones (orders, cancels, the
//! order faults) also run on the other: the HMAC key and REST order entry.

use std::time::Duration;

use keel_binance::BinanceVenue;
use keel_core::market::MarketEvent;
use keel_core::order::{OrderStatus, OrderType, Side, TimeInForce};
use keel_core::symbol::Symbol;
use keel_core::venue::{MarketFeed, OrderRequest, StreamStatus, UserEvent, Venue, VenueAlert, VenueError};
use keel_sandbox::{OrderFault, RestFault, Sandbox, SandboxConfig, SandboxHandle};
use rust_decimal::Decimal;
use tokio::sync::mpsc;
use tokio::time::timeout;

const WAIT: Duration = Duration::from_secs(15);

/// The USDⓈ-M futures client against the sandbox's perpetuals.
mod usdm_venue;

fn d(s: &str) -> Decimal {
    s.parse().unwrap()
}

fn btc() -> Symbol {
    Symbol::new("BTCUSDT")
}

/// How the adapter reaches the sandbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Entry {
    /// The default: the Ed25519 key, orders over the WebSocket API.
    Ws,
    /// The other: the HMAC key, orders over REST.
    Rest,
}

async fn setup() -> (SandboxHandle, BinanceVenue) {
    setup_on(Entry::Ws).await
}

async fn setup_on(entry: Entry) -> (SandboxHandle, BinanceVenue) {
    let cfg = SandboxConfig { history_bars: 30, ..SandboxConfig::demo() };
    let sb = Sandbox::start(cfg).await.expect("sandbox starts");
    let mut settings = match entry {
        Entry::Ws => ops::venues::sandbox_settings(&sb),
        Entry::Rest => ops::venues::sandbox_settings_hmac_rest(&sb),
    };
    assert_eq!(settings.credentials.is_ed25519(), entry == Entry::Ws);
    settings.request_timeout_ms = 1500;
    let venue = BinanceVenue::connect(settings).await.expect("adapter connects");
    assert_eq!(venue.ws_order_entry_up(), entry == Entry::Ws, "orders go over the WebSocket API only by default");
    (sb, venue)
}

/// Order placements the sandbox received: `order.place` on the WebSocket
/// API and `POST /api/v3/order` on REST.
fn placements(sb: &SandboxHandle) -> (usize, usize) {
    let ws = sb.faults.ws_api_requests().iter().filter(|m| m.as_str() == "order.place").count();
    let rest = sb.faults.rest_requests().iter().filter(|r| r.as_str() == "POST /api/v3/order").count();
    (ws, rest)
}

/// `n` placements arrived, all on `entry`'s transport.
fn placed_on(sb: &SandboxHandle, entry: Entry, n: usize) {
    let want = match entry {
        Entry::Ws => (n, 0),
        Entry::Rest => (0, n),
    };
    assert_eq!(placements(sb), want, "(order.place, POST /api/v3/order) on {entry:?}");
}

/// Freezes BTCUSDT at `price` (ask = price + 5.98 with the default 2 bps spread).
fn freeze(sb: &SandboxHandle, price: &str) {
    sb.market.pause();
    assert!(sb.market.set_price("BTCUSDT", d(price)));
    sb.market.step(1);
}

fn limit(cid: &str, side: Side, qty: &str, price: &str) -> OrderRequest {
    OrderRequest {
        client_order_id: cid.into(),
        symbol: btc(),
        side,
        order_type: OrderType::Limit { price: d(price) },
        qty: d(qty),
        tif: TimeInForce::Gtc,
    }
}

fn market(cid: &str, side: Side, qty: &str) -> OrderRequest {
    OrderRequest {
        client_order_id: cid.into(),
        symbol: btc(),
        side,
        order_type: OrderType::Market,
        qty: d(qty),
        tif: TimeInForce::Gtc,
    }
}

/// Receives until `pred` matches, returning everything received (the match last).
async fn until<T: std::fmt::Debug>(rx: &mut mpsc::Receiver<T>, what: &str, mut pred: impl FnMut(&T) -> bool) -> Vec<T> {
    let mut seen = Vec::new();
    let res = timeout(WAIT, async {
        while let Some(ev) = rx.recv().await {
            let hit = pred(&ev);
            seen.push(ev);
            if hit {
                return true;
            }
        }
        false
    })
    .await;
    assert!(matches!(res, Ok(true)), "timed out waiting for {what}; got {seen:?}");
    seen
}

async fn user_connected(venue: &BinanceVenue) -> mpsc::Receiver<UserEvent> {
    let mut rx = venue.subscribe_user().await.unwrap();
    until(&mut rx, "user stream connected", |e| matches!(e, UserEvent::Status(StreamStatus::Connected))).await;
    rx
}

fn fills_of(events: &[UserEvent]) -> Vec<keel_core::fill::Fill> {
    events.iter().filter_map(|e| if let UserEvent::Fill(f) = e { Some(f.clone()) } else { None }).collect()
}

fn count_orders(sb: &SandboxHandle, cid: &str) -> usize {
    sb.market.orders(&sb.api_key, "BTCUSDT").iter().filter(|o| o.client_order_id == cid).count()
}

#[tokio::test]
async fn limit_order_rests_partially_fills_and_fills() {
    limit_order_rests_partially_fills_and_fills_on(Entry::Ws).await;
}

#[tokio::test]
async fn limit_order_rests_partially_fills_and_fills_on_rest() {
    limit_order_rests_partially_fills_and_fills_on(Entry::Rest).await;
}

async fn limit_order_rests_partially_fills_and_fills_on(entry: Entry) {
    let (sb, venue) = setup_on(entry).await;
    freeze(&sb, "60000");
    let mut user = user_connected(&venue).await;
    let btc_before = sb.market.balances(&sb.api_key).iter().find(|b| b.asset == "BTC").map(|b| b.free).unwrap();

    let placed = venue.place_order(&limit("lim-1", Side::Buy, "0.12", "59900")).await.unwrap();
    assert_eq!(placed.report.status, OrderStatus::Accepted);
    assert!(placed.fills.is_empty());
    let open = venue.open_orders(Some(&btc())).await.unwrap();
    assert!(open.iter().any(|o| o.client_order_id == "lim-1"));

    // The ask drops through the limit: 0.05 fills per quote update (touch quantity).
    assert!(sb.market.set_price("BTCUSDT", d("59800")));
    sb.market.step(1);
    let ev = until(
        &mut user,
        "partial fill",
        |e| matches!(e, UserEvent::Order(r) if r.status == OrderStatus::PartiallyFilled),
    )
    .await;
    assert_eq!(fills_of(&ev).len(), 1);
    let q = venue.query_order(&btc(), "lim-1").await.unwrap().unwrap();
    assert_eq!(q.status, OrderStatus::PartiallyFilled);
    assert_eq!(q.filled_qty, d("0.05"));

    sb.market.step(2);
    let ev2 = until(&mut user, "filled", |e| matches!(e, UserEvent::Order(r) if r.status == OrderStatus::Filled)).await;
    let mut fills = fills_of(&ev);
    fills.extend(fills_of(&ev2));
    assert_eq!(fills.len(), 3, "{fills:?}");
    assert_eq!(fills.iter().map(|f| f.qty).sum::<Decimal>(), d("0.12"));
    assert!(fills.iter().all(|f| f.price == d("59900") && f.is_maker && f.client_order_id == "lim-1"));

    // Own trades agree with the stream, trade id for trade id.
    let trades = venue.my_trades(&btc(), None).await.unwrap();
    let mine: Vec<&keel_core::fill::Fill> = trades.iter().filter(|t| t.client_order_id == "lim-1").collect();
    let ids: Vec<u64> = mine.iter().filter_map(|t| t.trade_id.as_u64()).collect();
    assert_eq!(ids, fills.iter().filter_map(|f| f.trade_id.as_u64()).collect::<Vec<_>>());
    let cursor = keel_core::fill::FillCursor::of(mine[1]);
    let from_second = venue.my_trades(&btc(), Some(&cursor)).await.unwrap();
    assert_eq!(from_second.len(), 2);

    // Balances: +0.12 BTC, less the commission the buy paid in BTC (what it
    // receives, as Binance charges without BNB).
    let balances = venue.balances().await.unwrap();
    let btc_after = balances.iter().find(|b| b.asset == "BTC").unwrap().free;
    assert!(fills.iter().all(|f| f.fee_asset == "BTC" && f.fee > Decimal::ZERO), "{fills:?}");
    let fees: Decimal = fills.iter().map(|f| f.fee).sum();
    assert_eq!(btc_after - btc_before, d("0.12") - fees);
    assert_eq!(btc_after - btc_before, fills.iter().map(|f| f.position_delta("BTC")).sum::<Decimal>());
    assert_eq!(balances.iter().find(|b| b.asset == "USDT").unwrap().locked, Decimal::ZERO);
    sb.shutdown().await;
}

#[tokio::test]
async fn cancel_and_unknown_orders() {
    cancel_and_unknown_orders_on(Entry::Ws).await;
}

#[tokio::test]
async fn cancel_and_unknown_orders_on_rest() {
    cancel_and_unknown_orders_on(Entry::Rest).await;
}

async fn cancel_and_unknown_orders_on(entry: Entry) {
    let (sb, venue) = setup_on(entry).await;
    freeze(&sb, "60000");
    let placed = venue.place_order(&limit("c-1", Side::Buy, "0.01", "50000")).await.unwrap();
    assert_eq!(placed.report.status, OrderStatus::Accepted);
    let usdt_locked = venue.balances().await.unwrap().into_iter().find(|b| b.asset == "USDT").unwrap().locked;
    assert!(usdt_locked > Decimal::ZERO);
    let canceled = venue.cancel_order(&btc(), "c-1").await.unwrap();
    assert_eq!(canceled.status, OrderStatus::Canceled);
    assert_eq!(canceled.client_order_id, "c-1");
    assert_eq!(venue.cancel_order(&btc(), "c-1").await, Err(VenueError::NotFound));
    assert_eq!(venue.query_order(&btc(), "never-sent").await, Ok(None));
    assert!(venue.open_orders(None).await.unwrap().is_empty());
    let usdt = venue.balances().await.unwrap().into_iter().find(|b| b.asset == "USDT").unwrap();
    assert_eq!(usdt.locked, Decimal::ZERO);
    // Filters are checked before sending; the venue's own rejects keep their reason.
    let err = venue.place_order(&limit("c-2", Side::Buy, "0.00001", "50000")).await.unwrap_err();
    assert!(matches!(err, VenueError::Rejected { code: -1013, .. }), "{err:?}");
    let err = venue.place_order(&limit("c-3", Side::Buy, "100", "50000")).await.unwrap_err();
    assert_eq!(
        err,
        VenueError::Rejected { code: -2010, reason: "Account has insufficient balance for requested action.".into() }
    );
    sb.shutdown().await;
}

#[tokio::test]
async fn market_order_full_response_and_no_duplicate_fills() {
    market_order_full_response_and_no_duplicate_fills_on(Entry::Ws).await;
}

#[tokio::test]
async fn market_order_full_response_and_no_duplicate_fills_on_rest() {
    market_order_full_response_and_no_duplicate_fills_on(Entry::Rest).await;
}

async fn market_order_full_response_and_no_duplicate_fills_on(entry: Entry) {
    let (sb, venue) = setup_on(entry).await;
    freeze(&sb, "60000");
    let mut user = user_connected(&venue).await;
    let usdt_before = sb.market.balances(&sb.api_key).iter().find(|b| b.asset == "USDT").unwrap().free;
    let res = venue.place_order(&market("m-1", Side::Buy, "0.2")).await.unwrap();
    assert_eq!(res.report.status, OrderStatus::Filled);
    assert_eq!(res.report.filled_qty, d("0.2"));
    let mut fills = res.fills.clone();
    // FULL walks the synthetic book: 0.05 per level, so 4 fills.
    let ev = until(&mut user, "filled report", |e| matches!(e, UserEvent::Order(r) if r.status == OrderStatus::Filled))
        .await;
    fills.extend(fills_of(&ev));
    fills.sort_by(|a, b| a.trade_id.cmp(&b.trade_id));
    let ids: Vec<u64> = fills.iter().filter_map(|f| f.trade_id.as_u64()).collect();
    let mut dedup = ids.clone();
    dedup.dedup();
    assert_eq!(ids, dedup, "a fill was delivered twice");
    assert_eq!(fills.len(), 4);
    // Commissions paid in USDT add to the cost; a buy pays in BTC by default.
    let cost: Decimal =
        fills.iter().map(|f| f.price * f.qty + if f.fee_asset == "USDT" { f.fee } else { Decimal::ZERO }).sum();
    let usdt_after = venue.balances().await.unwrap().into_iter().find(|b| b.asset == "USDT").unwrap().free;
    assert_eq!(usdt_before - usdt_after, cost);
    sb.shutdown().await;
}

/// REST and WebSocket API requests since `before` (REST first).
fn requests_since(sb: &SandboxHandle, before: (usize, usize)) -> Vec<String> {
    let mut out = sb.faults.rest_requests()[before.0..].to_vec();
    out.extend(sb.faults.ws_api_requests()[before.1..].iter().cloned());
    out
}

/// The one request an order is on `entry`.
fn order_request(entry: Entry) -> Vec<String> {
    vec![match entry {
        Entry::Ws => "order.place".to_string(),
        Entry::Rest => "POST /api/v3/order".to_string(),
    }]
}

#[tokio::test]
async fn a_market_order_is_one_request_nothing_before_it() {
    a_market_order_is_one_request_nothing_before_it_on(Entry::Ws).await;
}

#[tokio::test]
async fn a_market_order_is_one_request_nothing_before_it_on_rest() {
    a_market_order_is_one_request_nothing_before_it_on(Entry::Rest).await;
}

async fn a_market_order_is_one_request_nothing_before_it_on(entry: Entry) {
    // As Keel runs it: the configured symbols are known at connect, the user
    // stream is up, the market stream delivers the touch.
    let sb = Sandbox::start(SandboxConfig { history_bars: 30, ..SandboxConfig::demo() }).await.unwrap();
    let mut settings = match entry {
        Entry::Ws => ops::venues::sandbox_settings(&sb),
        Entry::Rest => ops::venues::sandbox_settings_hmac_rest(&sb),
    };
    settings.symbols = vec!["BTCUSDT".into()];
    let venue = BinanceVenue::connect(settings).await.expect("adapter connects");
    let _user = user_connected(&venue).await;
    let mut market_feed = venue.subscribe_market(&[btc()], 60_000).await.unwrap();
    until(&mut market_feed, "a streamed touch", |e| matches!(e, MarketFeed::Event(MarketEvent::Book(_)))).await;

    let before = (sb.faults.rest_requests().len(), sb.faults.ws_api_requests().len());
    let res = venue.place_order(&market("hot-1", Side::Buy, "0.01")).await.unwrap();
    assert_eq!(res.report.status, OrderStatus::Filled);
    assert_eq!(requests_since(&sb, before), order_request(entry), "nothing besides the order itself");

    // A market order the streamed touch already shows to be too small is
    // refused before anything is sent.
    let before = (sb.faults.rest_requests().len(), sb.faults.ws_api_requests().len());
    let err = venue.place_order(&market("hot-2", Side::Buy, "0.00001")).await.unwrap_err();
    assert!(matches!(err, VenueError::Rejected { .. }), "{err:?}");
    assert_eq!(requests_since(&sb, before), Vec::<String>::new(), "refused locally");
    sb.shutdown().await;
}

/// Waits (bounded) until the sandbox has seen a REST request starting with `prefix`.
async fn request_seen(sb: &SandboxHandle, prefix: &str) {
    timeout(WAIT, async {
        while !sb.faults.rest_requests().iter().any(|r| r.starts_with(prefix)) {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("no `{prefix}` request: {:?}", sb.faults.rest_requests()));
}

#[tokio::test]
async fn a_symbol_added_while_running_takes_its_watermark_before_its_first_order() {
    // Only BTCUSDT is configured; ETHUSDT arrives later (a held symbol being
    // flattened, or a scanner's pick) and gets market data first.
    let sb = Sandbox::start(SandboxConfig { history_bars: 30, ..SandboxConfig::demo() }).await.unwrap();
    let mut settings = ops::venues::sandbox_settings(&sb);
    settings.symbols = vec!["BTCUSDT".into()];
    let venue = BinanceVenue::connect(settings).await.expect("adapter connects");
    let _user = user_connected(&venue).await;
    let eth = Symbol::new("ETHUSDT");
    assert_eq!(venue.trade_watermark(&eth), None);
    let _feed = venue.subscribe_market(std::slice::from_ref(&eth), 60_000).await.unwrap();
    timeout(WAIT, async {
        while venue.trade_watermark(&eth).is_none() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("the watermark is taken when the symbol's market data is subscribed");

    let before = (sb.faults.rest_requests().len(), sb.faults.ws_api_requests().len());
    let req = OrderRequest { symbol: eth.clone(), ..limit("eth-1", Side::Buy, "0.01", "1000") };
    venue.place_order(&req).await.unwrap();
    assert_eq!(requests_since(&sb, before), order_request(Entry::Ws), "the first order in the symbol is one request");
    sb.shutdown().await;
}

#[tokio::test]
async fn a_stale_full_symbol_is_refused_at_once_and_re_read_off_the_order_path() {
    let cfg = SandboxConfig { history_bars: 30, max_num_orders: 2, ..SandboxConfig::demo() };
    let sb = Sandbox::start(cfg).await.unwrap();
    let venue = BinanceVenue::connect(ops::venues::sandbox_settings(&sb)).await.unwrap();
    freeze(&sb, "60000");
    venue.place_order(&limit("s-1", Side::Buy, "0.01", "59000")).await.unwrap();
    venue.place_order(&limit("s-2", Side::Buy, "0.01", "59000")).await.unwrap();
    // Both fill while no user stream tells the adapter: its view stays "full".
    assert!(sb.market.set_price("BTCUSDT", d("58000")));
    sb.market.step(1);
    assert!(sb.market.orders(&sb.api_key, "BTCUSDT").iter().all(|o| o.status == OrderStatus::Filled));

    let before = sb.faults.rest_requests().len();
    let err = venue.place_order(&limit("s-3", Side::Buy, "0.01", "50000")).await.unwrap_err();
    assert!(
        matches!(&err, VenueError::Rejected { code: -1013, reason } if reason.contains("MAX_NUM_ORDERS")),
        "{err:?}"
    );
    assert!(!sb.faults.rest_requests()[before..].iter().any(|r| r.starts_with("POST")), "refused without sending");
    assert_eq!(placements(&sb), (2, 0), "refused without sending: only s-1 and s-2 were placed");
    // The view is re-read in the background; then the order goes.
    request_seen(&sb, "GET /api/v3/openOrders").await;
    let placed = timeout(WAIT, async {
        loop {
            match venue.place_order(&limit("s-3", Side::Buy, "0.01", "50000")).await {
                Ok(r) => return r,
                Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
            }
        }
    })
    .await
    .expect("the order is accepted once the view is re-read");
    assert_eq!(placed.report.status, OrderStatus::Accepted);
    sb.shutdown().await;
}

#[tokio::test]
async fn a_garbled_execution_report_is_loud_and_its_fill_is_recovered_with_its_side() {
    let (sb, venue) = setup().await;
    freeze(&sb, "60000");
    let mut user = user_connected(&venue).await;
    // A sell rests above the market; its NEW report arrives intact.
    venue.place_order(&limit("g-1", Side::Sell, "0.01", "60100")).await.unwrap();
    until(&mut user, "the NEW report", |e| matches!(e, UserEvent::Order(r) if r.client_order_id == "g-1")).await;
    // The report of its fill arrives with a side no Binance client knows.
    sb.faults.garble_next_execution_reports(1);
    assert!(sb.market.set_price("BTCUSDT", d("60300")));
    sb.market.step(1);
    let events = until(&mut user, "the fill", |e| matches!(e, UserEvent::Fill(f) if f.client_order_id == "g-1")).await;
    let alert = events.iter().position(|e| {
        matches!(e, UserEvent::Alert(VenueAlert::Malformed { stream, detail }) if stream == "user" && detail.contains("SIDEWAYS"))
    });
    let fill = events.iter().position(|e| matches!(e, UserEvent::Fill(_))).unwrap();
    assert!(alert.is_some_and(|a| a < fill), "the unreadable report is alerted before the fill comes back: {events:?}");
    // Recovered by the reconciliation it triggered, as the venue recorded it.
    let recovered = fills_of(&events);
    assert_eq!(recovered.len(), 1, "once: {recovered:?}");
    assert_eq!((recovered[0].side, recovered[0].qty), (Side::Sell, d("0.01")));
    sb.shutdown().await;
}

#[tokio::test]
async fn fault_5xx_after_execute_is_resolved_by_query_not_resent() {
    fault_5xx_after_execute_is_resolved_by_query_not_resent_on(Entry::Ws).await;
}

#[tokio::test]
async fn fault_5xx_after_execute_is_resolved_by_query_not_resent_on_rest() {
    fault_5xx_after_execute_is_resolved_by_query_not_resent_on(Entry::Rest).await;
}

async fn fault_5xx_after_execute_is_resolved_by_query_not_resent_on(entry: Entry) {
    let (sb, venue) = setup_on(entry).await;
    freeze(&sb, "60000");
    sb.faults.fail_next_order(OrderFault::ErrorAfterExecute);
    let res = venue.place_order(&market("u-1", Side::Buy, "0.01")).await.unwrap();
    assert_eq!(res.report.status, OrderStatus::Filled);
    assert_eq!(res.fills.iter().map(|f| f.qty).sum::<Decimal>(), d("0.01"));
    assert_eq!(count_orders(&sb, "u-1"), 1);
    placed_on(&sb, entry, 1);
    sb.shutdown().await;
}

#[tokio::test]
async fn fault_timeout_after_execute_is_resolved_by_query_not_resent() {
    fault_timeout_after_execute_is_resolved_by_query_not_resent_on(Entry::Ws).await;
}

#[tokio::test]
async fn fault_timeout_after_execute_is_resolved_by_query_not_resent_on_rest() {
    fault_timeout_after_execute_is_resolved_by_query_not_resent_on(Entry::Rest).await;
}

async fn fault_timeout_after_execute_is_resolved_by_query_not_resent_on(entry: Entry) {
    let (sb, venue) = setup_on(entry).await;
    freeze(&sb, "60000");
    sb.faults.fail_next_order(OrderFault::TimeoutAfterExecute { hold_ms: 4000 });
    let res = venue.place_order(&limit("t-1", Side::Buy, "0.01", "59000")).await.unwrap();
    assert_eq!(res.report.status, OrderStatus::Accepted);
    assert_eq!(count_orders(&sb, "t-1"), 1);
    placed_on(&sb, entry, 1);
    sb.shutdown().await;
}

#[tokio::test]
async fn fault_5xx_before_execute_reports_not_sent_after_recv_window() {
    fault_5xx_before_execute_reports_not_sent_after_recv_window_on(Entry::Ws).await;
}

#[tokio::test]
async fn fault_5xx_before_execute_reports_not_sent_after_recv_window_on_rest() {
    fault_5xx_before_execute_reports_not_sent_after_recv_window_on(Entry::Rest).await;
}

async fn fault_5xx_before_execute_reports_not_sent_after_recv_window_on(entry: Entry) {
    let (sb, venue) = setup_on(entry).await;
    freeze(&sb, "60000");
    sb.faults.fail_next_order(OrderFault::ErrorBeforeExecute);
    let err = venue.place_order(&limit("n-1", Side::Buy, "0.01", "59000")).await.unwrap_err();
    assert!(matches!(err, VenueError::NotSent(_)), "{err:?}");
    assert_eq!(count_orders(&sb, "n-1"), 0);
    // Now it is safe to send it again with the same id.
    venue.place_order(&limit("n-1", Side::Buy, "0.01", "59000")).await.unwrap();
    assert_eq!(count_orders(&sb, "n-1"), 1);
    placed_on(&sb, entry, 2);
    sb.shutdown().await;
}

/// Waits (bounded) until the adapter's WebSocket API order entry is `up`.
async fn ws_entry(venue: &BinanceVenue, up: bool) {
    timeout(WAIT, async {
        while venue.ws_order_entry_up() != up {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("WebSocket API order entry never became {}", if up { "up" } else { "down" }));
}

#[tokio::test]
async fn orders_and_cancels_fall_back_to_rest_while_the_ws_api_is_down_and_return_to_it() {
    let (sb, venue) = setup().await;
    freeze(&sb, "60000");
    venue.place_order(&limit("fb-1", Side::Buy, "0.01", "59000")).await.unwrap();
    placed_on(&sb, Entry::Ws, 1);

    // The WebSocket API goes down; REST still answers.
    sb.faults.refuse_ws_api(true);
    sb.faults.drop_connections();
    ws_entry(&venue, false).await;
    let placed = venue.place_order(&limit("fb-2", Side::Buy, "0.01", "59000")).await.unwrap();
    assert_eq!(placed.report.status, OrderStatus::Accepted);
    assert_eq!(placements(&sb), (1, 1), "sent over REST while the WebSocket API is down");
    let canceled = venue.cancel_order(&btc(), "fb-1").await.unwrap();
    assert_eq!(canceled.status, OrderStatus::Canceled);
    assert!(sb.faults.rest_requests().iter().any(|r| r == "DELETE /api/v3/order"), "the cancel too");
    assert!(!sb.faults.ws_api_requests().iter().any(|m| m == "order.cancel"));

    // Back up: orders and cancels return to the WebSocket API.
    sb.faults.refuse_ws_api(false);
    ws_entry(&venue, true).await;
    venue.place_order(&limit("fb-3", Side::Buy, "0.01", "59000")).await.unwrap();
    assert_eq!(placements(&sb), (2, 1));
    venue.cancel_order(&btc(), "fb-3").await.unwrap();
    assert!(sb.faults.ws_api_requests().iter().any(|m| m == "order.cancel"));
    for cid in ["fb-1", "fb-2", "fb-3"] {
        assert_eq!(count_orders(&sb, cid), 1, "{cid} placed once");
    }
    sb.shutdown().await;
}

#[tokio::test]
async fn an_hmac_key_signs_each_ws_order_and_an_ed25519_key_logs_on() {
    let sb = Sandbox::start(SandboxConfig { history_bars: 30, ..SandboxConfig::demo() }).await.unwrap();
    freeze(&sb, "60000");
    let settings = keel_binance::BinanceSettings {
        credentials: ops::venues::hmac_credentials(&sb),
        ..ops::venues::sandbox_settings(&sb)
    };
    let venue = BinanceVenue::connect(settings).await.unwrap();
    assert!(venue.ws_order_entry_up());
    venue.place_order(&limit("h-1", Side::Buy, "0.01", "59000")).await.unwrap();
    assert_eq!(venue.cancel_order(&btc(), "h-1").await.unwrap().status, OrderStatus::Canceled);
    placed_on(&sb, Entry::Ws, 1);
    assert!(!sb.faults.ws_api_requests().iter().any(|m| m == "session.logon"), "an HMAC key cannot log on");
    drop(venue);

    let venue = BinanceVenue::connect(ops::venues::sandbox_settings(&sb)).await.unwrap();
    venue.place_order(&limit("e-1", Side::Buy, "0.01", "59000")).await.unwrap();
    assert_eq!(placements(&sb), (2, 0));
    assert!(sb.faults.ws_api_requests().iter().any(|m| m == "session.logon"), "an Ed25519 key logs on");
    sb.shutdown().await;
}

#[tokio::test]
async fn a_ws_order_whose_connection_drops_mid_request_is_queried_never_resent() {
    let (sb, venue) = setup().await;
    freeze(&sb, "60000");
    // The request reaches the venue, waits before the matching engine, and
    // its connection drops meanwhile: the answer is lost, the order executes.
    sb.faults.fail_next_order(OrderFault::DelayBeforeExecute { hold_ms: 800 });
    let (sb2, cid) = (sb.faults.clone(), "drop-1");
    let dropper = tokio::spawn(async move {
        timeout(WAIT, async {
            while !sb2.ws_api_requests().iter().any(|m| m == "order.place") {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
        .await
        .expect("the order was sent");
        sb2.drop_connections();
    });
    let res = venue.place_order(&limit(cid, Side::Buy, "0.01", "59000")).await.unwrap();
    dropper.await.unwrap();
    assert_eq!(res.report.status, OrderStatus::Accepted, "found by its client id once it executed");
    assert_eq!(count_orders(&sb, cid), 1, "never sent twice");
    placed_on(&sb, Entry::Ws, 1);
    assert!(
        sb.faults.rest_requests().iter().any(|r| r == "GET /api/v3/order"),
        "the unknown outcome was resolved by a query"
    );
    sb.shutdown().await;
}

#[tokio::test]
async fn fault_429_and_418_honour_retry_after_and_alert() {
    let (sb, venue) = setup().await;
    let mut user = user_connected(&venue).await;
    sb.faults.fail_next_requests(RestFault::RateLimited { retry_after_s: 1 }, 1);
    let err = venue.balances().await.unwrap_err();
    assert_eq!(err, VenueError::RateLimited { retry_after_ms: 1000 });
    until(&mut user, "429 alert", |e| matches!(e, UserEvent::Alert(VenueAlert::RateLimited { .. }))).await;
    // The client waits out Retry-After by itself, then succeeds.
    assert!(venue.balances().await.is_ok());

    sb.faults.fail_next_requests(RestFault::Banned { retry_after_s: 2 }, 1);
    let err = venue.balances().await.unwrap_err();
    assert!(matches!(err, VenueError::Banned { .. }), "{err:?}");
    until(&mut user, "418 alert", |e| matches!(e, UserEvent::Alert(VenueAlert::Banned { .. }))).await;
    // Nothing is sent while banned: the refusal is local and immediate.
    let err = venue.place_order(&limit("b-1", Side::Buy, "0.01", "50000")).await.unwrap_err();
    assert!(matches!(err, VenueError::Banned { .. }), "{err:?}");
    assert_eq!(count_orders(&sb, "b-1"), 0);
    tokio::time::sleep(Duration::from_millis(2100)).await; // the ban's own duration
    assert!(venue.balances().await.is_ok());
    sb.shutdown().await;
}

#[tokio::test]
async fn fault_clock_skew_resyncs_and_retries_once() {
    let (sb, venue) = setup().await;
    sb.faults.set_clock_skew_ms(-4000);
    // The client's timestamps are now 4 s ahead of the server: -1021, resync, retry.
    assert!(venue.balances().await.is_ok());
    let off = venue.rest().offset_ms();
    assert!((-4500..=-3500).contains(&off), "offset {off}");
    // The WebSocket API subscription resyncs the same way.
    sb.faults.set_clock_skew_ms(3000);
    let _user = user_connected(&venue).await;
    let off = venue.rest().offset_ms();
    assert!((2500..=3500).contains(&off), "offset {off}");
    sb.shutdown().await;
}

fn bars_of(feed: &[MarketFeed]) -> Vec<i64> {
    feed.iter()
        .filter_map(|f| if let MarketFeed::Event(MarketEvent::Bar(b)) = f { Some(b.open_time) } else { None })
        .collect()
}

async fn collect_bars(rx: &mut mpsc::Receiver<MarketFeed>, n: usize, all: &mut Vec<MarketFeed>) {
    let mut count = bars_of(all).len();
    let got = until(rx, "bars", |f| {
        if matches!(f, MarketFeed::Event(MarketEvent::Bar(_))) {
            count += 1;
        }
        count >= n
    })
    .await;
    all.extend(got);
}

fn assert_consecutive(opens: &[i64]) {
    for w in opens.windows(2) {
        assert_eq!(w[1] - w[0], 60_000, "bars not consecutive: {opens:?}");
    }
}

#[tokio::test]
async fn market_stream_delivers_every_bar_once_across_drops_and_shutdowns() {
    let (sb, venue) = setup().await;
    let mut rx = venue.subscribe_market(&[btc()], 60_000).await.unwrap();
    let mut all = Vec::new();
    collect_bars(&mut rx, 3, &mut all).await;
    assert!(all.iter().any(|f| matches!(f, MarketFeed::Event(MarketEvent::Trade(_)))));
    assert!(all.iter().any(|f| matches!(f, MarketFeed::Event(MarketEvent::Book(_)))));

    // Drop: bars that close while disconnected come from REST backfill.
    sb.faults.drop_connections();
    all.extend(
        until(&mut rx, "disconnect", |f| matches!(f, MarketFeed::Status(StreamStatus::Disconnected { .. }))).await,
    );
    sb.market.step(25); // several bars close during the gap
    collect_bars(&mut rx, 12, &mut all).await;

    // Planned shutdown: reconnects at once.
    sb.faults.server_shutdown();
    all.extend(
        until(&mut rx, "shutdown disconnect", |f| matches!(f, MarketFeed::Status(StreamStatus::Disconnected { .. })))
            .await,
    );
    collect_bars(&mut rx, 18, &mut all).await;

    let opens = bars_of(&all);
    assert_consecutive(&opens);
    let closed = sb.market.closed_bars("BTCUSDT");
    let first = closed.iter().position(|b| b.open_time == opens[0]).unwrap();
    for (i, open) in opens.iter().enumerate() {
        assert_eq!(closed[first + i].open_time, *open);
    }
    sb.shutdown().await;
}

#[tokio::test]
async fn user_stream_gap_recovers_missed_fills_exactly_once() {
    let (sb, venue) = setup().await;
    freeze(&sb, "60000");
    let mut user = user_connected(&venue).await;
    venue.place_order(&limit("g-1", Side::Buy, "0.12", "59900")).await.unwrap();
    until(&mut user, "order accepted", |e| matches!(e, UserEvent::Order(r) if r.client_order_id == "g-1")).await;

    // Drop the connection; fills happen while the adapter reconnects.
    sb.faults.drop_connections();
    let mut events =
        until(&mut user, "disconnect", |e| matches!(e, UserEvent::Status(StreamStatus::Disconnected { .. }))).await;
    assert!(sb.market.set_price("BTCUSDT", d("59800")));
    sb.market.step(2);
    let during_gap = until(&mut user, "reconnected", |e| matches!(e, UserEvent::Status(StreamStatus::Connected))).await;
    // The two fills that happened while disconnected come from REST reconciliation,
    // before the adapter reports itself connected again.
    assert_eq!(fills_of(&during_gap).len(), 2, "{during_gap:?}");
    events.extend(during_gap);
    sb.market.step(1);
    events.extend(
        until(&mut user, "filled", |e| matches!(e, UserEvent::Order(r) if r.status == OrderStatus::Filled)).await,
    );

    let fills = fills_of(&events);
    let mut ids: Vec<u64> = fills.iter().filter_map(|f| f.trade_id.as_u64()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), fills.len(), "duplicate fills: {fills:?}");
    assert_eq!(fills.iter().map(|f| f.qty).sum::<Decimal>(), d("0.12"));
    let venue_fills = sb.market.fills(&sb.api_key, "BTCUSDT");
    assert_eq!(venue_fills.len(), fills.len());
    // Balances after reconciliation equal the sandbox's.
    let mine = venue.balances().await.unwrap();
    assert_eq!(mine, sb.market.balances(&sb.api_key));
    sb.shutdown().await;
}

#[tokio::test]
async fn fault_order_rate_limit_blocks_new_orders_until_the_window_resets() {
    let cfg = SandboxConfig { history_bars: 30, order_limit_10s: 2, ..SandboxConfig::demo() };
    let sb = Sandbox::start(cfg).await.unwrap();
    let venue = BinanceVenue::connect(ops::venues::sandbox_settings(&sb)).await.unwrap();
    freeze(&sb, "60000");
    let mut user = user_connected(&venue).await;
    venue.place_order(&limit("r-1", Side::Buy, "0.01", "50000")).await.unwrap();
    venue.place_order(&limit("r-2", Side::Buy, "0.01", "50000")).await.unwrap();
    let err = venue.place_order(&limit("r-3", Side::Buy, "0.01", "50000")).await.unwrap_err();
    assert!(matches!(err, VenueError::RateLimited { retry_after_ms } if retry_after_ms > 0), "{err:?}");
    until(&mut user, "-1015 alert", |e| matches!(e, UserEvent::Alert(VenueAlert::OrderRateExceeded { .. }))).await;
    // No new order leaves until the window resets; other requests still work.
    let err = venue.place_order(&limit("r-4", Side::Buy, "0.01", "50000")).await.unwrap_err();
    assert!(matches!(err, VenueError::RateLimited { .. }), "{err:?}");
    assert!(venue.open_orders(None).await.is_ok());
    assert_eq!(sb.market.orders(&sb.api_key, "BTCUSDT").len(), 2);
    sb.shutdown().await;
}

#[tokio::test]
async fn fault_latency_is_tolerated() {
    let (sb, venue) = setup().await;
    freeze(&sb, "60000");
    sb.faults.set_latency_ms(300);
    let res = venue.place_order(&market("l-1", Side::Sell, "0.01")).await.unwrap();
    assert_eq!(res.report.status, OrderStatus::Filled);
    assert_eq!(count_orders(&sb, "l-1"), 1);
    sb.shutdown().await;
}

#[tokio::test]
async fn fault_periodic_drops_from_config_lose_no_bar_and_no_fill() {
    let mut cfg = SandboxConfig { history_bars: 30, speed: 600.0, ..SandboxConfig::demo() };
    cfg.faults.drop_connections_every_ms = 600;
    let sb = Sandbox::start(cfg).await.unwrap();
    let venue = BinanceVenue::connect(ops::venues::sandbox_settings(&sb)).await.unwrap();
    let mut user = user_connected(&venue).await;
    let mut mkt = venue.subscribe_market(&[btc()], 60_000).await.unwrap();
    // Resting orders on both sides of a moving market fill while connections drop.
    let px = venue.best_bid_ask(&btc()).await.unwrap().mid().round_dp(2);
    // A fill the order's own answer carries (the market moved through its
    // price before it arrived) is delivered there, not again on the stream.
    let mut got: Vec<u64> = Vec::new();
    for (i, off) in ["-40", "-20", "20", "40"].iter().enumerate() {
        let side = if off.starts_with('-') { Side::Buy } else { Side::Sell };
        let req = limit(&format!("p-{i}"), side, "0.02", &(px + d(off)).to_string());
        let placed = venue.place_order(&req).await.unwrap();
        got.extend(placed.fills.iter().filter_map(|f| f.trade_id.as_u64()));
    }
    let mut all = Vec::new();
    collect_bars(&mut mkt, 10, &mut all).await;
    sb.market.set_price("BTCUSDT", px - d("100"));
    collect_bars(&mut mkt, 20, &mut all).await;
    sb.market.set_price("BTCUSDT", px + d("100"));
    collect_bars(&mut mkt, 40, &mut all).await;
    let drops = all.iter().filter(|f| matches!(f, MarketFeed::Status(StreamStatus::Disconnected { .. }))).count();
    assert!(drops >= 2, "expected several drops, saw {drops}");
    assert_consecutive(&bars_of(&all));

    // Every fill the sandbox made reached us exactly once (stream or reconciliation).
    sb.market.pause();
    let want = sb.market.fills(&sb.api_key, "BTCUSDT");
    assert!(want.len() >= 4, "the price swings fill all four orders: {want:?}");
    let res = timeout(WAIT, async {
        while got.len() < want.len() {
            match user.recv().await {
                Some(UserEvent::Fill(f)) => got.extend(f.trade_id.as_u64()),
                Some(_) => {}
                None => break,
            }
        }
    })
    .await;
    assert!(
        res.is_ok(),
        "fills missing: got {got:?}, sandbox has {:?}",
        want.iter().map(|f| f.trade_id.clone()).collect::<Vec<_>>()
    );
    got.sort();
    let mut want_ids: Vec<u64> = want.iter().filter_map(|f| f.trade_id.as_u64()).collect();
    want_ids.sort();
    assert_eq!(got, want_ids);
    sb.shutdown().await;
}

#[tokio::test]
async fn from_config_startup_check_and_proactive_reconnects() {
    let sb = Sandbox::start(SandboxConfig { history_bars: 30, speed: 600.0, ..SandboxConfig::demo() }).await.unwrap();
    let cfg: keel_binance::BinanceConfig = toml::from_str("mode = \"sandbox\"\nreconnect_after_ms = 1000").unwrap();
    let settings = cfg.resolve(Some(&ops::venues::local_exchange(&sb))).unwrap();
    let venue = BinanceVenue::connect(settings).await.unwrap();
    let report = venue.startup_check().await.unwrap();
    assert!(report.can_trade);
    assert_eq!(report.symbols, 2);
    assert!(report.clock_offset_ms.abs() < 1000);
    let history = venue.klines(&btc(), 60_000, None, 20).await.unwrap();
    assert_eq!(history.len(), 20);
    assert_consecutive(&history.iter().map(|b| b.open_time).collect::<Vec<_>>());

    // Connections are renewed before their age limit (1 s here, 24 h on Binance).
    let mut rx = venue.subscribe_market(&[btc()], 60_000).await.unwrap();
    let mut all = Vec::new();
    collect_bars(&mut rx, 30, &mut all).await;
    let renewals = all
        .iter()
        .filter(|f| matches!(f, MarketFeed::Status(StreamStatus::Disconnected { reason }) if reason.starts_with("proactive")))
        .count();
    assert!(renewals >= 1, "{renewals}");
    let opens = bars_of(&all);
    assert_consecutive(&opens);
    // The first live bar follows the REST history without a gap once both are closed.
    assert!(opens[0] > history.last().unwrap().open_time);
    sb.shutdown().await;
}

#[tokio::test]
async fn max_num_orders_is_refused_before_sending() {
    let cfg = SandboxConfig { history_bars: 30, max_num_orders: 2, ..SandboxConfig::demo() };
    let sb = Sandbox::start(cfg).await.unwrap();
    let venue = BinanceVenue::connect(ops::venues::sandbox_settings(&sb)).await.unwrap();
    freeze(&sb, "60000");
    venue.place_order(&limit("x-1", Side::Buy, "0.01", "50000")).await.unwrap();
    venue.place_order(&limit("x-2", Side::Buy, "0.01", "50000")).await.unwrap();
    let err = venue.place_order(&limit("x-3", Side::Buy, "0.01", "50000")).await.unwrap_err();
    assert!(
        matches!(&err, VenueError::Rejected { code: -1013, reason } if reason.contains("MAX_NUM_ORDERS")),
        "{err:?}"
    );
    assert_eq!(count_orders(&sb, "x-3"), 0, "refused locally, never sent");
    venue.cancel_order(&btc(), "x-1").await.unwrap();
    venue.place_order(&limit("x-3", Side::Buy, "0.01", "50000")).await.unwrap();
    sb.shutdown().await;
}

#[tokio::test]
async fn only_trading_symbols_take_orders_and_unknown_statuses_do_not_fail() {
    let mut cfg = SandboxConfig { history_bars: 30, ..SandboxConfig::demo() };
    cfg.symbol_status.insert("ETHUSDT".into(), "SOMETHING_NEW".into());
    let sb = Sandbox::start(cfg).await.unwrap();
    let venue = BinanceVenue::connect(ops::venues::sandbox_settings(&sb)).await.unwrap();
    let instruments = venue.instruments().await.unwrap();
    let eth = instruments.iter().find(|i| i.symbol == "ETHUSDT").unwrap();
    assert_eq!(eth.status, keel_core::instrument::SymbolStatus::Other("SOMETHING_NEW".into()));
    let req = OrderRequest { symbol: Symbol::new("ETHUSDT"), ..limit("s-1", Side::Buy, "0.01", "2000") };
    let err = venue.place_order(&req).await.unwrap_err();
    assert!(
        matches!(&err, VenueError::Rejected { code: -1013, reason } if reason.contains("does not take new orders")),
        "{err:?}"
    );
    assert!(sb.market.orders(&sb.api_key, "ETHUSDT").is_empty());
    sb.shutdown().await;
}

#[tokio::test]
async fn an_unreadable_market_stream_message_is_alerted_not_dropped_silently() {
    let (sb, venue) = setup().await;
    let mut alerts = venue.rest().alerts();
    let mut feed = venue.subscribe_market(&[btc()], 60_000).await.unwrap();
    until(&mut feed, "a bar", |m| matches!(m, MarketFeed::Event(MarketEvent::Bar(_)))).await;
    sb.faults.garble_next_klines(1);
    let alert = tokio::time::timeout(Duration::from_secs(10), alerts.recv()).await;
    assert!(
        matches!(&alert, Ok(Ok(VenueAlert::Malformed { stream, .. })) if stream == "market"),
        "the garbled kline is alerted: {alert:?}"
    );
    sb.shutdown().await;
}

#[tokio::test]
async fn balances_after_a_cancel_are_read_again_not_taken_from_the_start_up_check() {
    let (sb, venue) = setup().await;
    freeze(&sb, "60000");
    venue.place_order(&limit("lock-1", Side::Sell, "0.5", "61000")).await.unwrap();
    venue.startup_check().await.unwrap();
    let btc_of = |list: &[keel_core::balance::Balance]| {
        list.iter().find(|b| b.asset == "BTC").map(|b| (b.free, b.locked)).unwrap_or_default()
    };
    venue.cancel_order(&btc(), "lock-1").await.unwrap();
    let after = venue.balances().await.unwrap();
    assert_eq!(btc_of(&after), (d("1"), d("0")), "the cancel freed the BTC: {after:?}");
    sb.shutdown().await;
}

#[tokio::test]
async fn a_bar_that_closes_between_warm_up_and_subscription_is_backfilled() {
    let (sb, venue) = setup().await;
    sb.market.pause();
    let warm = venue.klines(&btc(), 60_000, None, 10).await.unwrap();
    let newest = warm.last().expect("history").open_time;
    // Three bars close before the stream is up (a slow start-up, or 750 ms at demo speed).
    sb.market.step(30);
    let mut rx = venue.subscribe_market(&[btc()], 60_000).await.unwrap();
    sb.market.resume();
    let mut all = Vec::new();
    collect_bars(&mut rx, 5, &mut all).await;
    let opens = bars_of(&all);
    assert_eq!(opens[0], newest + 60_000, "the stream continues after the warm-up's newest bar: {opens:?}");
    assert_consecutive(&opens);
    sb.shutdown().await;
}

/// `keel sandbox`'s default is real time: the warm-up history ends at the
/// last closed minute of the server clock, live events carry server time,
/// and the first live bar follows the history with nothing missing.
#[tokio::test]
async fn at_real_time_history_stream_and_server_clock_agree() {
    let sb = Sandbox::start(SandboxConfig { history_bars: 30, ..SandboxConfig::default() }).await.unwrap();
    assert_eq!(SandboxConfig::default().speed, 1.0, "the standalone default is real time");
    let venue = BinanceVenue::connect(ops::venues::sandbox_settings(&sb)).await.unwrap();
    let minute = |ms: i64| ms - ms.rem_euclid(60_000);
    let before = sb.faults.server_now_ms();
    let warm = venue.klines(&btc(), 60_000, None, 30).await.unwrap();
    let after = sb.faults.server_now_ms();
    let newest = warm.last().expect("history");
    assert!(
        [minute(before) - 60_000, minute(after) - 60_000].contains(&newest.open_time),
        "history ends at the last closed minute of the server clock ({before}): {newest:?}"
    );
    assert_consecutive(&warm.iter().map(|b| b.open_time).collect::<Vec<_>>());

    let mut rx = venue.subscribe_market(&[btc()], 60_000).await.unwrap();
    let trade = until(&mut rx, "a trade", |f| matches!(f, MarketFeed::Event(MarketEvent::Trade(_)))).await;
    let Some(MarketFeed::Event(MarketEvent::Trade(t))) = trade.last() else { unreachable!("until returned it") };
    let now = sb.faults.server_now_ms();
    assert!((now - 15_000..=now).contains(&t.ts_ms), "trade time {} is server time ({now})", t.ts_ms);
    // The first bar to close (within a minute) follows the history.
    let first_bar = async {
        while let Some(f) = rx.recv().await {
            if let MarketFeed::Event(MarketEvent::Bar(b)) = f {
                return Some(b);
            }
        }
        None
    };
    let bar = timeout(Duration::from_secs(75), first_bar).await.ok().flatten().expect("a bar closes within a minute");
    assert_eq!(bar.open_time, newest.open_time + 60_000, "no bar is missing between history and stream");
    let now = sb.faults.server_now_ms();
    assert!(
        bar.close_time < now && bar.close_time > now - 15_000,
        "closed on the minute of the server clock: {bar:?} at {now}"
    );
    sb.shutdown().await;
}

/// Binance names a stop by which side of the market it lies on: a buy's stop
/// below the market is a take-profit, a sell's below it a stop-loss. The
/// adapter sends the kind that fits, so both are accepted and trigger.
#[tokio::test]
async fn stop_orders_go_out_as_the_kind_binance_expects_on_their_side_of_the_market() {
    let (sb, venue) = setup().await;
    freeze(&sb, "60000");
    let stop = |cid: &str, side: Side, order_type: OrderType| OrderRequest {
        client_order_id: cid.into(),
        symbol: btc(),
        side,
        order_type,
        qty: d("0.01"),
        tif: TimeInForce::Gtc,
    };
    let cases = [
        ("buy-below", Side::Buy, OrderType::StopLimit { stop: d("59000"), price: d("59010") }, "TAKE_PROFIT_LIMIT"),
        ("buy-above", Side::Buy, OrderType::StopLimit { stop: d("61000"), price: d("61010") }, "STOP_LOSS_LIMIT"),
        ("sell-below", Side::Sell, OrderType::StopMarket { stop: d("59000") }, "STOP_LOSS"),
        ("sell-above", Side::Sell, OrderType::StopMarket { stop: d("61000") }, "TAKE_PROFIT"),
    ];
    for (cid, side, order_type, _) in &cases {
        let placed = venue.place_order(&stop(cid, *side, *order_type)).await;
        let placed = placed.unwrap_or_else(|e| panic!("{cid} refused: {e}"));
        assert!(placed.report.status.is_open(), "{cid}: {:?}", placed.report);
    }
    let rested: Vec<(String, String)> = sb
        .market
        .orders(&sb.api_key, "BTCUSDT")
        .iter()
        .map(|o| (o.client_order_id.clone(), o.order_type.label().to_string()))
        .collect();
    assert_eq!(rested.len(), 4, "{rested:?}");
    // The sandbox names them by side as Binance does (its order JSON).
    for (cid, _, _, kind) in &cases {
        let q = venue.query_order(&btc(), cid).await.unwrap().expect("known");
        assert!(q.status.is_open(), "{cid}");
        let raw = sb.market.orders(&sb.api_key, "BTCUSDT").into_iter().find(|o| o.client_order_id == *cid).unwrap();
        assert_eq!(raw.trigger_above, kind.starts_with("STOP_LOSS") == (raw.side == Side::Buy), "{cid} is a {kind}");
    }
    // The price falls to 58900: the buy's take-profit and the sell's stop-loss trigger and fill.
    sb.market.set_price("BTCUSDT", d("58900"));
    sb.market.step(1);
    for cid in ["buy-below", "sell-below"] {
        let q = venue.query_order(&btc(), cid).await.unwrap().expect("known");
        assert_eq!(q.status, OrderStatus::Filled, "{cid}: {q:?}");
    }
    sb.shutdown().await;
}

/// A cancel whose answer is lost — an error after the venue canceled, or an
/// answer held past the client's timeout — is resolved by querying the
/// order, on both transports; one refused before it acted is an error and
/// the order still rests.
#[tokio::test]
async fn a_cancel_with_an_unknown_outcome_is_resolved_by_a_query_on_both_transports() {
    for entry in [Entry::Ws, Entry::Rest] {
        let (sb, venue) = setup_on(entry).await;
        freeze(&sb, "60000");
        let cases = [
            ("after", OrderFault::ErrorAfterExecute, true),
            ("held", OrderFault::TimeoutAfterExecute { hold_ms: 3_000 }, true),
            ("before", OrderFault::ErrorBeforeExecute, false),
        ];
        for (name, fault, canceled) in cases {
            let cid = format!("c-{name}-{entry:?}").to_lowercase();
            venue.place_order(&limit(&cid, Side::Buy, "0.01", "59000")).await.unwrap();
            sb.faults.fail_next_cancel(fault);
            let res = venue.cancel_order(&btc(), &cid).await;
            let at_venue = sb.market.orders(&sb.api_key, "BTCUSDT").into_iter().find(|o| o.client_order_id == cid);
            let at_venue = at_venue.expect("the venue knows the order").status;
            if canceled {
                let report = res.unwrap_or_else(|e| panic!("{entry:?} {name}: the query resolves it: {e}"));
                assert_eq!(report.status, OrderStatus::Canceled, "{entry:?} {name}");
                assert_eq!(at_venue, OrderStatus::Canceled, "{entry:?} {name}");
            } else {
                assert!(res.is_err(), "{entry:?} {name}: a cancel refused before it acted is an error");
                assert!(at_venue.is_open(), "{entry:?} {name}: the order still rests");
                venue.cancel_order(&btc(), &cid).await.expect("a second cancel goes through");
            }
        }
        sb.shutdown().await;
    }
}

/// A SELL OCO of 0.01 BTCUSDT: take-profit at 61 000, stop at 59 000 (limit 58 900).
fn oco(cid: &str) -> OrderRequest {
    OrderRequest {
        client_order_id: cid.into(),
        symbol: btc(),
        side: Side::Sell,
        order_type: OrderType::Oco { take_profit: d("61000"), stop: d("59000"), stop_limit: Some(d("58900")) },
        qty: d("0.01"),
        tif: TimeInForce::Gtc,
    }
}

#[tokio::test]
async fn an_oco_is_one_order_to_keel_and_an_order_list_at_binance() {
    let (sb, venue) = setup().await;
    freeze(&sb, "60000");
    let mut user = user_connected(&venue).await;

    let placed = venue.place_order(&oco("oco-a")).await.unwrap();
    let r = &placed.report;
    assert_eq!(
        (r.client_order_id.as_str(), r.status, r.qty, r.oco_leg),
        ("oco-a", OrderStatus::Accepted, d("0.01"), None)
    );
    assert_eq!(sb.faults.rest_requests().iter().filter(|r| r.as_str() == "POST /api/v3/orderList/oco").count(), 1);
    // Two legs rest at the venue; Keel sees one order.
    assert_eq!((count_orders(&sb, "oco-a_t"), count_orders(&sb, "oco-a_s")), (1, 1));
    let open = venue.open_orders(Some(&btc())).await.unwrap();
    assert_eq!(
        open.iter().map(|o| (o.client_order_id.as_str(), o.status)).collect::<Vec<_>>(),
        vec![("oco-a", OrderStatus::Accepted)]
    );
    assert_eq!(open[0].venue_order_id, r.venue_order_id, "the list's id");
    let q = venue.query_order(&btc(), "oco-a").await.unwrap().expect("the list is known");
    assert_eq!((q.status, q.venue_order_id.as_str()), (OrderStatus::Accepted, r.venue_order_id.as_str()));

    // Cancelled whole.
    let c = venue.cancel_order(&btc(), "oco-a").await.unwrap();
    assert_eq!((c.client_order_id.as_str(), c.status), ("oco-a", OrderStatus::Canceled));
    assert!(venue.open_orders(None).await.unwrap().is_empty());
    assert_eq!(venue.query_order(&btc(), "oco-a").await.unwrap().map(|r| r.status), Some(OrderStatus::Canceled));

    // The price falls through the stop: the list fills by its stop leg; the
    // take-profit's expiry ends nothing; every event names the list.
    venue.place_order(&oco("oco-b")).await.unwrap();
    assert!(sb.market.set_price("BTCUSDT", d("58950")));
    sb.market.step(1);
    let ev = until(
        &mut user,
        "the list filled",
        |e| matches!(e, UserEvent::Order(r) if r.client_order_id == "oco-b" && r.status == OrderStatus::Filled),
    )
    .await;
    let orders: Vec<(String, OrderStatus)> = ev
        .iter()
        .filter_map(|e| if let UserEvent::Order(r) = e { Some((r.client_order_id.clone(), r.status)) } else { None })
        .collect();
    assert!(orders.iter().all(|(cid, _)| cid == "oco-a" || cid == "oco-b"), "only the lists, never a leg: {orders:?}");
    let b: Vec<OrderStatus> = orders.iter().filter(|(cid, _)| cid == "oco-b").map(|(_, s)| *s).collect();
    assert!(b[..b.len() - 1].iter().all(|s| !s.is_terminal()), "the take-profit's expiry ends nothing: {b:?}");
    let last = ev.iter().rev().find_map(|e| if let UserEvent::Order(r) = e { Some(r.clone()) } else { None }).unwrap();
    assert_eq!((last.filled_qty, last.oco_leg), (d("0.01"), Some(keel_core::venue::oco::OcoLeg::Stop)));
    let fills = fills_of(&ev);
    assert!(
        !fills.is_empty() && fills.iter().all(|f| f.client_order_id == "oco-b" && f.price == d("58900")),
        "{fills:?}"
    );
    let trades = venue.my_trades(&btc(), None).await.unwrap();
    assert!(trades.iter().any(|t| t.client_order_id == "oco-b"), "own trades name the list: {trades:?}");
    assert!(trades.iter().all(|t| !t.client_order_id.contains('_')), "{trades:?}");
    sb.shutdown().await;
}
