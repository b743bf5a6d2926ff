//! `CoinbaseVenue` (keel-coinbase's REST half of the `Venue` trait) against
//! the real Coinbase-protocol sandbox on 127.0.0.1: instruments from
//! products, a limit order placed, queried, listed and cancelled through
//! `CANCEL_QUEUED`, a market fill read once per trade id, a `success:false`
//! rejection, and the sandbox's injected faults — a 429 waited out, a 503
//! after the order executed resolved to the one order, a skewed server clock
//! corrected — with tokens naming the sandbox's ephemeral port.
//!
//! The market is held still (paused) so cancels complete only when the test
//! steps it.

use std::sync::Arc;
use std::time::Instant;

use rust_decimal::Decimal;

use keel_coinbase::auth::Credentials;
use keel_coinbase::model::ListOrdersResponse;
use keel_coinbase::rest::Kind;
use keel_coinbase::{CoinbaseSettings, CoinbaseVenue};
use keel_core::fill::FillCursor;
use keel_core::order::{OrderStatus, OrderType, Side, TimeInForce};
use keel_core::symbol::Symbol;
use keel_core::venue::{OrderRequest, Venue, VenueAlert, VenueError};
use keel_sandbox::{OrderFault, RestFault, Sandbox, SandboxConfig, SandboxHandle};

fn d(s: &str) -> Decimal {
    s.parse().expect("a decimal")
}

fn btc() -> Symbol {
    Symbol::new("BTC-USDT")
}

async fn start() -> (SandboxHandle, CoinbaseVenue, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("temp dir");
    let cfg = SandboxConfig {
        key_dir: Some(dir.path().to_path_buf()),
        generate_coinbase_key: true,
        ..SandboxConfig::default()
    };
    let sb = Sandbox::start(cfg).await.expect("sandbox starts");
    sb.market.pause();
    let name = sb.coinbase_key_name.clone().expect("a Coinbase test key");
    let pem = sb.coinbase_private_key_pem.clone().expect("its private key");
    let creds = Arc::new(Credentials::new(&name, &pem).expect("the test key loads"));
    let venue = CoinbaseVenue::connect(CoinbaseSettings::new(&format!("http://{}", sb.addr), creds))
        .await
        .expect("the venue connects");
    (sb, venue, dir)
}

fn order(cid: &str, side: Side, order_type: OrderType, qty: &str) -> OrderRequest {
    OrderRequest { client_order_id: cid.into(), symbol: btc(), side, order_type, qty: d(qty), tif: TimeInForce::Gtc }
}

async fn free(venue: &CoinbaseVenue, asset: &str) -> Decimal {
    let all = venue.balances().await.expect("balances");
    all.iter().find(|b| b.asset == asset).map(|b| b.free).unwrap_or_default()
}

#[tokio::test]
async fn instruments_come_from_products_and_tokens_name_the_ephemeral_port() {
    let (sb, venue, _dir) = start().await;
    // The sandbox checks `uri` against its Host header: connect's
    // authenticated product read passed, so the token named host:port.
    assert_eq!(venue.rest().host(), sb.addr.to_string());
    assert!(venue.rest().host().ends_with(&format!(":{}", sb.addr.port())));

    let list = venue.instruments().await.expect("instruments");
    let i = list.iter().find(|i| i.symbol == btc()).expect("BTC-USDT is a product");
    assert_eq!((i.base_asset.as_str(), i.quote_asset.as_str()), ("BTC", "USDT"));
    assert!(i.tick_size > Decimal::ZERO && i.step_size > Decimal::ZERO && i.min_qty > Decimal::ZERO);
    assert!(i.status.is_trading());

    let server = venue.server_time().await.expect("time");
    assert!((server - sb.faults.server_now_ms()).abs() < 5_000, "{server}");

    let bars = venue.klines(&btc(), 60_000, None, 5).await.expect("candles");
    assert_eq!(bars.len(), 5, "{bars:?}");
    let now = venue.rest().now_ms();
    assert!(bars.windows(2).all(|w| w[0].open_time < w[1].open_time), "oldest first");
    assert!(bars.iter().all(|b| b.close_time < now), "closed bars only");
    // More than one request's worth (300 a request): paged, still oldest first, each bar once.
    let from = now - 400 * 60_000;
    let long = venue.klines(&btc(), 60_000, Some(from), 400).await.expect("paged candles");
    assert!(long.len() > 300, "{} bars", long.len());
    assert!(long.windows(2).all(|w| w[0].open_time < w[1].open_time), "oldest first, no repeats");
    assert!(long.first().is_some_and(|b| b.open_time >= from) && long.iter().all(|b| b.close_time < now));
    assert!(matches!(venue.klines(&btc(), 604_800_000, None, 5).await, Err(VenueError::Rejected { .. })));

    let t = venue.best_bid_ask(&btc()).await.expect("touch");
    assert!(t.bid > Decimal::ZERO && t.ask > t.bid, "{t:?}");

    sb.shutdown().await;
}

#[tokio::test]
async fn a_limit_order_is_placed_queried_listed_and_cancelled_pending_then_final() {
    let (sb, venue, _dir) = start().await;
    let t = venue.best_bid_ask(&btc()).await.expect("touch");
    let price = (t.bid * d("0.9")).round_dp(2);

    // Off the lot step: refused before sending, nothing reaches the venue.
    let bad = venue.place_order(&order("keel-odd", Side::Buy, OrderType::Limit { price }, "0.0010000001")).await;
    assert!(matches!(&bad, Err(VenueError::Rejected { reason, .. }) if reason.contains("before sending")), "{bad:?}");
    assert_eq!(venue.query_order(&btc(), "keel-odd").await.expect("query"), None);

    // An OCO: refused with a clear reason (Keel keeps Coinbase exits engine-side).
    let oco = OrderType::Oco { take_profit: (t.ask * d("1.1")).round_dp(2), stop: price, stop_limit: None };
    let bad = venue.place_order(&order("keel-oco", Side::Sell, oco, "0.001")).await;
    assert!(matches!(&bad, Err(VenueError::Rejected { reason, .. }) if reason.contains("OCO")), "{bad:?}");
    assert_eq!(venue.query_order(&btc(), "keel-oco").await.expect("query"), None);

    let placed = venue.place_order(&order("keel-lim-1", Side::Buy, OrderType::Limit { price }, "0.001")).await;
    let placed = placed.expect("placed").report;
    assert_eq!(
        (placed.status, placed.client_order_id.as_str(), placed.qty),
        (OrderStatus::Accepted, "keel-lim-1", d("0.001"))
    );

    let q = venue.query_order(&btc(), "keel-lim-1").await.expect("query").expect("known");
    assert_eq!(q.venue_order_id, placed.venue_order_id);
    let open = venue.open_orders(Some(&btc())).await.expect("open orders");
    assert_eq!(open.iter().filter(|o| o.client_order_id == "keel-lim-1").count(), 1, "{open:?}");

    let cancel = venue.cancel_order(&btc(), "keel-lim-1").await.expect("cancel accepted");
    assert_eq!((cancel.status, cancel.reason.as_deref()), (OrderStatus::Accepted, Some("CANCEL_QUEUED")), "pending");
    sb.market.step(1);
    let done = venue.query_order(&btc(), "keel-lim-1").await.expect("query").expect("known");
    assert_eq!(done.status, OrderStatus::Canceled);
    assert!(venue.open_orders(Some(&btc())).await.expect("open").is_empty());
    sb.shutdown().await;
}

#[tokio::test]
async fn a_market_fill_is_read_once_per_trade_id_with_the_fee_in_quote() {
    let (sb, venue, _dir) = start().await;
    let btc0 = free(&venue, "BTC").await;
    let r = venue.place_order(&order("keel-mkt-1", Side::Sell, OrderType::Market, "0.002")).await.expect("placed");
    assert_eq!(r.report.status, OrderStatus::Filled);
    assert!(!r.fills.is_empty());
    assert!(r
        .fills
        .iter()
        .all(|f| f.fee_asset == "USDT" && f.fee > Decimal::ZERO && f.client_order_id == "keel-mkt-1"));
    let sold: Decimal = r.fills.iter().map(|f| f.qty).sum();
    assert_eq!(sold, d("0.002"));
    assert_eq!(free(&venue, "BTC").await, btc0 - sold);
    // A market buy by base size: the fee is in USDT, so the BTC comes whole.
    let b = venue.place_order(&order("keel-mkt-2", Side::Buy, OrderType::Market, "0.001")).await.expect("bought");
    assert_eq!(b.report.status, OrderStatus::Filled);
    assert!(b.fills.iter().all(|f| f.fee_asset == "USDT" && f.side == Side::Buy));
    assert_eq!(free(&venue, "BTC").await, btc0 - sold + d("0.001"));

    let first = venue.my_trades(&btc(), None).await.expect("fills");
    let ids: Vec<_> = first.iter().map(|f| f.trade_id.clone()).collect();
    let mut unique = ids.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), ids.len(), "each trade id once");
    let mut placed_ids: Vec<_> = r.fills.iter().chain(&b.fills).map(|f| f.trade_id.clone()).collect();
    placed_ids.sort();
    assert_eq!(unique, placed_ids, "the same fills as the orders'");
    assert!(first.windows(2).all(|w| w[0].ts_ms <= w[1].ts_ms), "oldest first");

    // From the newest fill's cursor: nothing new, and nothing twice.
    let cursor = FillCursor::of(first.last().expect("a fill"));
    let again = venue.my_trades(&btc(), Some(&cursor)).await.expect("fills again");
    assert!(again.iter().all(|f| ids.contains(&f.trade_id)), "{again:?}");
    let mut again_ids: Vec<_> = again.iter().map(|f| f.trade_id.clone()).collect();
    again_ids.dedup();
    assert_eq!(again_ids.len(), again.len());
    assert!(again.iter().any(|f| f.trade_id == cursor.trade_id), "the cursor's own trade may come back");
    sb.shutdown().await;
}

#[tokio::test]
async fn success_false_is_a_rejection_not_a_retry() {
    let (sb, venue, _dir) = start().await;
    let t = venue.best_bid_ask(&btc()).await.expect("touch");
    let price = (t.bid * d("0.9")).round_dp(2);
    // Far more than the account's USDT: HTTP 200 with success:false.
    let r = venue.place_order(&order("keel-poor", Side::Buy, OrderType::Limit { price }, "100")).await;
    let Err(e) = r else { panic!("an order the account cannot pay for was placed: {r:?}") };
    assert!(matches!(&e, VenueError::Rejected { code: 200, reason } if reason.contains("INSUFFICIENT_FUND")), "{e:?}");
    assert!(!e.is_retryable() && !e.outcome_unknown());
    assert_eq!(creates(&sb), 1, "sent once, never retried");
    assert_eq!(venue.query_order(&btc(), "keel-poor").await.expect("query"), None, "no order exists");
    sb.shutdown().await;
}

#[tokio::test]
async fn a_429_is_waited_out_for_its_retry_after() {
    let (sb, venue, _dir) = start().await;
    let mut alerts = venue.rest().alerts();
    sb.faults.fail_next_requests(RestFault::RateLimited { retry_after_s: 1 }, 1);
    let started = Instant::now();
    let balances = venue.balances().await.expect("answered after the pause");
    assert!(balances.iter().any(|b| b.asset == "USDT"));
    assert!(started.elapsed().as_millis() >= 900, "Retry-After was not honoured: {:?}", started.elapsed());
    assert_eq!(alerts.try_recv().ok(), Some(VenueAlert::RateLimited { retry_after_ms: 1000 }), "the operator hears it");

    // A Retry-After longer than a read may wait (5 s) is not slept through:
    // the read is refused as rate limited, and so is an order (which waits
    // at most 1 s) — refused, not sent, so it may be sent again later.
    sb.faults.fail_next_requests(RestFault::RateLimited { retry_after_s: 6 }, 1);
    let read = venue.server_time().await;
    assert!(matches!(read, Err(VenueError::RateLimited { retry_after_ms }) if retry_after_ms > 5_000), "{read:?}");
    let t = venue.place_order(&order("keel-late", Side::Sell, OrderType::Market, "0.001")).await;
    assert!(matches!(&t, Err(e @ VenueError::RateLimited { .. }) if e.is_retryable()), "{t:?}");
    assert!(started.elapsed().as_millis() < 5_000, "nothing waited out the 6 s pause: {:?}", started.elapsed());
    assert_eq!(creates(&sb), 0, "the refused order was not sent");
    sb.shutdown().await;
}

#[tokio::test]
async fn a_503_after_execution_resolves_to_the_one_order() {
    let (sb, venue, _dir) = start().await;
    let btc0 = free(&venue, "BTC").await;
    sb.faults.fail_next_order(OrderFault::ErrorAfterExecute);
    let r = venue.place_order(&order("keel-lost-1", Side::Sell, OrderType::Market, "0.001")).await;
    let r = r.expect("resolved by the lookup");
    assert_eq!((r.report.status, r.report.client_order_id.as_str()), (OrderStatus::Filled, "keel-lost-1"));
    let all: ListOrdersResponse = venue_list(&venue).await;
    let ours: Vec<_> = all.orders.iter().filter(|o| o.client_order_id == "keel-lost-1").collect();
    assert_eq!(ours.len(), 1, "no duplicate order");
    assert_eq!(creates(&sb), 1, "found by the lookup: nothing sent again");
    assert_eq!(all.orders.len(), 1);
    assert_eq!(free(&venue, "BTC").await, btc0 - d("0.001"), "sold once");

    // Before execution: not listed, so the one idempotent resubmission places it.
    sb.faults.fail_next_order(OrderFault::ErrorBeforeExecute);
    let r = venue.place_order(&order("keel-lost-2", Side::Sell, OrderType::Market, "0.001")).await;
    assert_eq!(r.expect("placed by the resubmission").report.status, OrderStatus::Filled);
    assert_eq!(venue_list(&venue).await.orders.len(), 2);
    assert_eq!(creates(&sb), 3, "one resubmission, with the same client_order_id");
    assert_eq!(free(&venue, "BTC").await, btc0 - d("0.002"));
    sb.shutdown().await;
}

/// How many creates reached the sandbox.
fn creates(sb: &SandboxHandle) -> usize {
    sb.faults.rest_requests().iter().filter(|r| r.as_str() == "POST /api/v3/brokerage/orders").count()
}

async fn venue_list(venue: &CoinbaseVenue) -> ListOrdersResponse {
    venue.rest().get(Kind::Read, "/orders/historical/batch", &[]).await.expect("orders")
}

#[tokio::test]
async fn a_skewed_server_clock_is_measured_and_tokens_follow_it() {
    let (sb, venue, _dir) = start().await;
    assert!(venue.rest().offset_ms().abs() < 2_000);
    // Ten minutes ahead: tokens dated by the local clock are not yet valid.
    sb.faults.set_clock_skew_ms(600_000);
    let balances = venue.balances().await.expect("the 401 leads to a new clock measurement");
    assert!(!balances.is_empty());
    let offset = venue.rest().offset_ms();
    assert!((offset - 600_000).abs() < 2_000, "offset {offset}");
    // And orders work on the corrected clock.
    let r = venue.place_order(&order("keel-skew", Side::Sell, OrderType::Market, "0.001")).await;
    assert_eq!(r.expect("placed").report.status, OrderStatus::Filled);
    sb.shutdown().await;
}

#[tokio::test]
async fn a_keel_id_coinbase_would_not_take_as_is_goes_as_a_derived_uuid_and_is_found_after_a_restart() {
    let (sb, venue, _dir) = start().await;
    let long = "keel-strategy-with-a-long-name:order-000000042";
    let cb = keel_coinbase::venue::coinbase_client_id(long);
    assert_ne!(cb, long);
    let t = venue.best_bid_ask(&btc()).await.expect("touch");
    let price = (t.bid * d("0.9")).round_dp(2);
    let placed = venue.place_order(&order(long, Side::Buy, OrderType::Limit { price }, "0.001")).await;
    assert_eq!(placed.expect("placed").report.client_order_id, long, "reports name Keel's id");
    let listed = venue_list(&venue).await;
    assert_eq!(listed.orders.iter().map(|o| o.client_order_id.as_str()).collect::<Vec<_>>(), [cb.as_str()]);

    // A new adapter (a restart) knows nothing: the same derivation finds the order.
    let name = sb.coinbase_key_name.clone().expect("key name");
    let pem = sb.coinbase_private_key_pem.clone().expect("key");
    let creds = Arc::new(Credentials::new(&name, &pem).expect("key loads"));
    let again =
        CoinbaseVenue::connect(CoinbaseSettings::new(&format!("http://{}", sb.addr), creds)).await.expect("connects");
    let found = again.query_order(&btc(), long).await.expect("query").expect("found");
    assert_eq!((found.client_order_id.as_str(), found.status), (long, OrderStatus::Accepted));

    // A restart that lists before it queries is told its store's ids first.
    let creds = Arc::new(Credentials::new(&name, &pem).expect("key loads"));
    let third =
        CoinbaseVenue::connect(CoinbaseSettings::new(&format!("http://{}", sb.addr), creds)).await.expect("connects");
    let unnamed = third.open_orders(None).await.expect("open");
    assert_eq!(unnamed.iter().map(|o| o.client_order_id.as_str()).collect::<Vec<_>>(), [cb.as_str()]);
    third.remember_client_ids([long]);
    let open = third.open_orders(None).await.expect("open");
    assert_eq!(open.iter().map(|o| o.client_order_id.as_str()).collect::<Vec<_>>(), [long], "by Keel's id");
    sb.shutdown().await;
}

#[tokio::test]
async fn a_cancel_whose_answer_is_lost_is_read_back_and_reported_unknown_while_the_order_works() {
    let (sb, venue, _dir) = start().await;
    let t = venue.best_bid_ask(&btc()).await.expect("touch");
    let price = (t.bid * d("0.9")).round_dp(2);
    venue.place_order(&order("keel-cx-1", Side::Buy, OrderType::Limit { price }, "0.001")).await.expect("placed");
    sb.faults.fail_paths(&["brokerage/orders/batch_cancel"]);
    // The 503 is an unknown outcome: the order is read back; still working
    // (the cancel never reached the book), so the caller hears "unknown".
    let r = venue.cancel_order(&btc(), "keel-cx-1").await;
    assert!(matches!(r, Err(VenueError::OutcomeUnknown(_))), "{r:?}");
    let q = venue.query_order(&btc(), "keel-cx-1").await.expect("query").expect("known");
    assert_eq!((q.status, q.reason), (OrderStatus::Accepted, None));
    sb.faults.fail_paths(&[]);
    let r = venue.cancel_order(&btc(), "keel-cx-1").await.expect("cancel");
    assert_eq!(r.reason.as_deref(), Some("CANCEL_QUEUED"));
    sb.market.step(1);
    let r = venue.cancel_order(&btc(), "keel-cx-1").await.expect("already done");
    assert_eq!(r.status, OrderStatus::Canceled);
    let cancels = sb.faults.rest_requests().iter().filter(|r| r.ends_with("/orders/batch_cancel")).count();
    assert_eq!(cancels, 2, "the lost one and the one that took; a cancelled order is not cancelled again");
    assert!(matches!(venue.cancel_order(&btc(), "keel-never").await, Err(VenueError::NotFound)));
    sb.shutdown().await;
}

#[tokio::test]
async fn a_key_the_venue_does_not_know_is_an_auth_refusal_not_a_retry_loop() {
    let (sb, _venue, _dir) = start().await;
    let other = "-----BEGIN EC PRIVATE KEY-----
MHcCAQEEIG1RsmqAzq1g3YcVKBo/ITU77Z43+IKRFZm04a0rZPoBoAoGCCqGSM49
AwEHoUQDQgAELo44QdgOlXg7ohaWseHMxrwKdvnVbeP+humEU8ZY0YoFpPV4qMh1
tuXuoga+zQQyL9RME2pSsHywYaBueMYVqg==
-----END EC PRIVATE KEY-----
";
    let name = sb.coinbase_key_name.clone().expect("key name");
    let creds = Arc::new(Credentials::new(&name, other).expect("a valid P-256 key"));
    let before = sb.faults.rest_requests().len();
    let r = CoinbaseVenue::connect(CoinbaseSettings::new(&format!("http://{}", sb.addr), creds)).await;
    let Err(e) = r else { panic!("a wrong key connected") };
    assert!(matches!(&e, VenueError::Rejected { code: 401, reason } if reason.contains("Unauthorized")), "{e:?}");
    // /time, products (401), /time again, products again (401): then it stops.
    assert_eq!(sb.faults.rest_requests().len() - before, 4, "{:?}", &sb.faults.rest_requests()[before..]);
    sb.shutdown().await;
}
