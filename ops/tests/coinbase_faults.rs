//! A fault storm at venue level: a real `CoinbaseVenue` against the real
//! Coinbase-protocol sandbox on 127.0.0.1 places a seeded stream of limit
//! and market orders (and cancels some) while faults are injected, mixed:
//! dropped WebSocket connections, a 503 after an order executed (and one
//! before), a 503 after a cancel was queued (and one before), 429s, forward jumps of the server clock (tokens then refused
//! until the adapter measures the clock again), level-2 sequence gaps and
//! added REST latency. Then, with the faults gone, it checks what an engine
//! relies on:
//!
//! - every client order id exists at most once at the venue (read from the
//!   sandbox's core, not through the adapter);
//! - every fill the sandbox recorded for the account reached Keel exactly
//!   once — in a place answer or as a user-stream `Fill` (the adapter hands
//!   each trade id out once across both) — and Keel got no fill the venue
//!   does not have;
//! - every order's final state as Keel saw it (the most advanced report of
//!   the place and cancel answers and the user stream, as an engine keeps
//!   it; `query_order` only for orders it heard nothing about) matches the
//!   sandbox's;
//! - the market stream's level-2 book equals REST `product_book` after the
//!   gaps (each gap made it resubscribe).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rust_decimal::Decimal;
use tokio::sync::mpsc;

use keel_coinbase::auth::Credentials;
use keel_coinbase::model::ProductBookResponse;
use keel_coinbase::rest::Kind;
use keel_coinbase::{CoinbaseSettings, CoinbaseVenue};
use keel_core::fill::Fill;
use keel_core::order::{OrderStatus, OrderType, Side, TimeInForce};
use keel_core::symbol::Symbol;
use keel_core::venue::{MarketFeed, OrderReport, OrderRequest, StreamStatus, UserEvent, Venue, VenueError};
use keel_sandbox::coinbase::ids::{hashed_uuid, order_uuid};
use keel_sandbox::{OrderFault, RestFault, Sandbox, SandboxConfig, SandboxHandle, DEFAULT_API_KEY};

/// The storm's seed: the same orders and faults every run.
const SEED: u64 = 0x00c0_1bba_5e15;

/// Orders placed during the storm.
const ORDERS: usize = 40;

fn btc() -> Symbol {
    Symbol::new("BTC-USDT")
}

/// What Keel heard: fills (place answers and the user stream, in arrival
/// order) and, per client id, the most advanced report.
#[derive(Default)]
struct Heard {
    fills: Vec<Fill>,
    reports: HashMap<String, OrderReport>,
    user_connects: usize,
    user_drops: usize,
}

impl Heard {
    /// Keeps a report unless it is behind the one kept (an engine never
    /// moves an order back: a late "accepted" does not undo a fill).
    fn report(&mut self, r: &OrderReport) {
        let rank = |r: &OrderReport| (r.status.is_terminal(), r.filled_qty);
        let newer = self.reports.get(&r.client_order_id).is_none_or(|old| rank(r) >= rank(old));
        if newer {
            self.reports.insert(r.client_order_id.clone(), r.clone());
        }
    }
}

async fn start(speed: f64) -> (SandboxHandle, Arc<CoinbaseVenue>, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("temp dir");
    let cfg = SandboxConfig {
        key_dir: Some(dir.path().to_path_buf()),
        generate_coinbase_key: true,
        speed,
        ..SandboxConfig::default()
    };
    let sb = Sandbox::start(cfg).await.expect("sandbox starts");
    let name = sb.coinbase_key_name.clone().expect("a Coinbase test key");
    let pem = sb.coinbase_private_key_pem.clone().expect("its private key");
    let creds = Arc::new(Credentials::new(&name, &pem).expect("the test key loads"));
    let mut settings = CoinbaseSettings::new(&format!("http://{}", sb.addr), creds);
    settings.ws_market_url = sb.coinbase_ws_market_url.clone();
    settings.ws_user_url = sb.coinbase_ws_user_url.clone();
    let venue = CoinbaseVenue::connect(settings).await.expect("the venue connects");
    (sb, Arc::new(venue), dir)
}

/// Drains the user stream into `heard` until it closes.
fn drain_user(mut rx: mpsc::Receiver<UserEvent>, heard: Arc<Mutex<Heard>>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        while let Some(ev) = rx.recv().await {
            let mut h = heard.lock().expect("lock");
            match ev {
                UserEvent::Fill(f) => h.fills.push(f),
                UserEvent::Order(r) => h.report(&r),
                UserEvent::Status(StreamStatus::Connected) => h.user_connects += 1,
                UserEvent::Status(StreamStatus::Disconnected { .. }) => h.user_drops += 1,
                _ => {}
            }
        }
    })
}

/// Drains the market stream (it keeps the level-2 book) until it closes.
fn drain_market(mut rx: mpsc::Receiver<MarketFeed>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move { while rx.recv().await.is_some() {} })
}

/// A random order: a market order, a limit that crosses (fills at once),
/// or a limit resting a little off the touch (may fill as prices move).
async fn random_order(venue: &CoinbaseVenue, rng: &mut ChaCha8Rng, cid: &str) -> OrderRequest {
    let side = if rng.random_bool(0.5) { Side::Buy } else { Side::Sell };
    let qty = Decimal::new(rng.random_range(100..=300), 5);
    let order_type = match rng.random_range(0..3) {
        0 => OrderType::Market,
        kind => {
            let t = loop {
                match venue.best_bid_ask(&btc()).await {
                    Ok(t) => break t,
                    // A fault meant for an order may hit this read: read again.
                    Err(e) => assert!(e.is_retryable() || e.outcome_unknown(), "touch: {e:?}"),
                }
            };
            let bps = Decimal::new(rng.random_range(0..=8), 4);
            let price = match (side, kind) {
                (Side::Buy, 1) => t.ask * (Decimal::ONE + bps),
                (Side::Sell, 1) => t.bid * (Decimal::ONE - bps),
                (Side::Buy, _) => t.bid * (Decimal::ONE - bps),
                (Side::Sell, _) => t.ask * (Decimal::ONE + bps),
            };
            OrderType::Limit { price: price.round_dp(2) }
        }
    };
    OrderRequest { client_order_id: cid.into(), symbol: btc(), side, order_type, qty, tif: TimeInForce::Gtc }
}

/// Injects one fault drawn from `rng`; its name.
fn inject(sb: &SandboxHandle, rng: &mut ChaCha8Rng, skew: &mut i64) -> &'static str {
    match rng.random_range(0..11) {
        0 => {
            sb.faults.drop_connections();
            "drop"
        }
        1 | 2 => {
            sb.faults.fail_next_order(OrderFault::ErrorAfterExecute);
            "503 after execute"
        }
        3 => {
            sb.faults.fail_next_order(OrderFault::ErrorBeforeExecute);
            "503 before execute"
        }
        4 => {
            sb.faults.fail_next_requests(RestFault::RateLimited { retry_after_s: 1 }, 1);
            "429"
        }
        5 => {
            // Forward only (a clock going back would stop the market's
            // clock meanwhile), and past a token's 120 s life: refused.
            *skew += rng.random_range(130_000..200_000);
            sb.faults.set_clock_skew_ms(*skew);
            "skew"
        }
        6 => {
            sb.faults.skip_coinbase_l2_sequence(1);
            "l2 gap"
        }
        7 => {
            sb.faults.set_latency_ms(rng.random_range(0..150));
            "latency"
        }
        8 => {
            sb.faults.fail_next_cancel(OrderFault::ErrorAfterExecute);
            "cancel 503 after queued"
        }
        9 => {
            sb.faults.fail_next_cancel(OrderFault::ErrorBeforeExecute);
            "cancel 503 before"
        }
        _ => "none",
    }
}

/// Keel's status of a sandbox order, as Coinbase reports it: no partially
/// filled end; an IOC's unfilled rest is `CANCELLED`.
fn expected_status(o: &keel_core::sim::SimOrder) -> OrderStatus {
    match o.status {
        OrderStatus::Expired if o.tif != TimeInForce::Gtc => OrderStatus::Canceled,
        s => s,
    }
}

async fn rest_book(venue: &CoinbaseVenue) -> (BTreeMap<Decimal, Decimal>, BTreeMap<Decimal, Decimal>) {
    let q = [("product_id", btc().to_string()), ("limit", "1000".to_string())];
    let r: ProductBookResponse = venue.rest().get(Kind::Read, "/product_book", &q).await.expect("product_book");
    let side = |l: &[keel_coinbase::model::PriceLevel]| l.iter().map(|p| (p.price, p.size)).collect();
    (side(&r.pricebook.bids), side(&r.pricebook.asks))
}

/// Waits (bounded) until `done` holds.
async fn until(what: &str, secs: u64, mut done: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    while !done() {
        assert!(tokio::time::Instant::now() < deadline, "{what}: not within {secs} s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_fault_storm_leaves_no_duplicate_order_no_lost_or_doubled_fill_and_matching_states() {
    // Speed 60: a market tick every 100 ms, so orders resting near the touch fill during the storm.
    let (sb, venue, _dir) = start(60.0).await;
    let heard = Arc::new(Mutex::new(Heard::default()));
    let user = drain_user(venue.subscribe_user().await.expect("user stream"), heard.clone());
    let market = drain_market(venue.subscribe_market(&[btc()], 60_000).await.expect("market stream"));
    until("the user stream connects", 10, || heard.lock().expect("lock").user_connects > 0).await;

    let mut rng = ChaCha8Rng::seed_from_u64(SEED);
    let mut skew = 0i64;
    let mut injected: BTreeMap<&str, usize> = BTreeMap::new();
    let mut cids = Vec::new();
    for i in 0..ORDERS {
        *injected.entry(inject(&sb, &mut rng, &mut skew)).or_default() += 1;
        let cid = format!("storm-{i}");
        cids.push(cid.clone());
        let req = random_order(&venue, &mut rng, &cid).await;
        let mut placed = venue.place_order(&req).await;
        if let Err(VenueError::RateLimited { retry_after_ms }) = &placed {
            // Refused, not sent: an engine sends it again later, same id.
            tokio::time::sleep(Duration::from_millis(*retry_after_ms)).await;
            placed = venue.place_order(&req).await;
        }
        match placed {
            Ok(p) => {
                let mut h = heard.lock().expect("lock");
                h.report(&p.report);
                h.fills.extend(p.fills);
            }
            // Resolved below by a query, as an engine resolves it.
            Err(e) if e.outcome_unknown() || e.is_retryable() => {}
            Err(e) => panic!("{cid}: {e:?}"),
        }
        // Now and then, cancel an order of ours that may still rest.
        if rng.random_bool(0.25) {
            let victim = cids[rng.random_range(0..cids.len())].clone();
            match venue.cancel_order(&btc(), &victim).await {
                Ok(r) => heard.lock().expect("lock").report(&r),
                Err(e) => assert!(
                    e.outcome_unknown() || e.is_retryable() || e == VenueError::NotFound,
                    "cancel {victim}: {e:?}"
                ),
            }
        }
    }

    // The faults stop; what rests is cancelled; the market settles.
    sb.faults.set_latency_ms(0);
    let open = loop {
        match venue.open_orders(Some(&btc())).await {
            Ok(o) => break o,
            Err(e) => assert!(e.is_retryable() || e.outcome_unknown(), "open orders: {e:?}"),
        }
    };
    for o in &open {
        loop {
            match venue.cancel_order(&btc(), &o.client_order_id).await {
                Ok(r) => {
                    heard.lock().expect("lock").report(&r);
                    break;
                }
                Err(e) => assert!(e.is_retryable() || e.outcome_unknown(), "final cancel: {e:?}"),
            }
        }
    }
    let orders = || sb.market.orders(DEFAULT_API_KEY, "BTCUSDT");
    until("every order ends at the venue", 20, || orders().iter().all(|o| o.status.is_terminal())).await;
    sb.market.pause();

    // One more reconnect: its reconciliation must not repeat a fill.
    let connects = heard.lock().expect("lock").user_connects;
    sb.faults.drop_connections();
    until("the user stream reconnects", 20, || heard.lock().expect("lock").user_connects > connects).await;

    // The venue's record.
    let venue_orders = orders();
    let by_cid: HashMap<String, &keel_core::sim::SimOrder> =
        venue_orders.iter().map(|o| (o.client_order_id.clone(), o)).collect();
    assert_eq!(by_cid.len(), venue_orders.len(), "a client order id twice at the venue: {venue_orders:?}");
    assert!(venue_orders.iter().all(|o| cids.contains(&o.client_order_id)), "an order Keel did not send");
    let venue_fills: BTreeSet<String> = sb
        .market
        .fills(DEFAULT_API_KEY, "BTCUSDT")
        .iter()
        .map(|f| {
            let o = by_cid.get(&f.client_order_id).expect("a fill of a known order");
            hashed_uuid(&["trade", "BTCUSDT", &f.trade_id.to_string(), &order_uuid(o.order_id)])
        })
        .collect();
    assert!(venue_fills.len() >= 10, "the storm filled little: {} fills", venue_fills.len());

    // Every venue fill reached Keel (the stream may still be delivering).
    let delivered =
        || heard.lock().expect("lock").fills.iter().map(|f| f.trade_id.to_string()).collect::<BTreeSet<_>>();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !delivered().is_superset(&venue_fills) {
        if tokio::time::Instant::now() >= deadline {
            let lost: Vec<_> = sb
                .market
                .fills(DEFAULT_API_KEY, "BTCUSDT")
                .into_iter()
                .filter(|f| {
                    let o = by_cid[&f.client_order_id];
                    let id = hashed_uuid(&["trade", "BTCUSDT", &f.trade_id.to_string(), &order_uuid(o.order_id)]);
                    !delivered().contains(&id)
                })
                .map(|f| {
                    (f.client_order_id.clone(), heard.lock().expect("lock").reports.get(&f.client_order_id).cloned())
                })
                .collect();
            panic!("fills the venue has never reached Keel (order, Keel's report of it): {lost:#?}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for f in &heard.lock().expect("lock").fills {
        *counts.entry(f.trade_id.to_string()).or_default() += 1;
    }
    let doubled: Vec<_> = counts.iter().filter(|(_, n)| **n > 1).collect();
    assert!(doubled.is_empty(), "fills delivered more than once: {doubled:?}");
    assert_eq!(delivered(), venue_fills, "Keel's fills are the venue's, no more");

    // Each order's final state as Keel saw it is the venue's.
    for cid in &cids {
        let seen = heard.lock().expect("lock").reports.get(cid).cloned();
        let seen = match seen {
            Some(r) => Some(r),
            // Nothing heard (its place answer was lost): the engine asks.
            None => venue.query_order(&btc(), cid).await.expect("query"),
        };
        match (by_cid.get(cid), seen) {
            (Some(o), Some(r)) => assert_eq!(
                (r.status, r.filled_qty),
                (expected_status(o), o.filled_qty),
                "{cid}: Keel saw {r:?}, the venue has {o:?}"
            ),
            (None, None) => {}
            (None, Some(r)) => assert_eq!(r.status, OrderStatus::Rejected, "{cid}: Keel saw {r:?}, no such order"),
            (Some(o), None) => panic!("{cid}: at the venue ({o:?}) but unknown to Keel"),
        }
    }

    // The level-2 book after the gaps (one more now, the market held, so
    // the books can be compared): the stream's is REST's.
    let storm_resyncs = venue.l2_resyncs();
    sb.faults.skip_coinbase_l2_sequence(1);
    sb.market.step(3);
    until("a resubscribe after the last gap", 10, || venue.l2_resyncs() > storm_resyncs).await;
    let rest = rest_book(&venue).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(b) = venue.book(&btc()) {
            if (b.bids.clone(), b.offers.clone()) == rest {
                break;
            }
        }
        assert!(tokio::time::Instant::now() < deadline, "the stream's book is not REST's: {:?}", venue.book(&btc()));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    eprintln!(
        "storm: faults {injected:?}; {} orders at the venue, {} fills, {storm_resyncs} level-2 resubscribes",
        venue_orders.len(),
        venue_fills.len()
    );
    user.abort();
    market.abort();
    sb.shutdown().await;
}

#[tokio::test]
async fn an_order_placed_and_filled_while_the_user_stream_is_down_is_reconciled_after_newer_fills() {
    let (sb, venue, _dir) = start(1.0).await;
    sb.market.pause();
    let heard = Arc::new(Mutex::new(Heard::default()));
    let user = drain_user(venue.subscribe_user().await.expect("user stream"), heard.clone());
    until("the user stream connects", 10, || heard.lock().expect("lock").user_connects == 1).await;
    sb.faults.refuse_ws_api(true);
    sb.faults.drop_connections();
    until("the user stream drops", 10, || heard.lock().expect("lock").user_drops == 1).await;

    // Placed while the stream is down (it never sees the order), then filled.
    let t = venue.best_bid_ask(&btc()).await.expect("touch");
    let price = (t.bid * Decimal::new(99, 2)).round_dp(2);
    let order = |cid: &str, order_type| OrderRequest {
        client_order_id: cid.into(),
        symbol: btc(),
        side: Side::Buy,
        order_type,
        qty: Decimal::new(1, 3),
        tif: TimeInForce::Gtc,
    };
    let a = venue.place_order(&order("gap-a", OrderType::Limit { price })).await.expect("placed");
    assert_eq!(a.report.status, OrderStatus::Accepted);
    heard.lock().expect("lock").report(&a.report);
    assert!(sb.market.set_price("BTCUSDT", (price * Decimal::new(97, 2)).round_dp(2)));
    sb.market.step(2);
    // A newer fill, handed out at once by its place answer.
    let b = venue.place_order(&order("gap-b", OrderType::Market)).await.expect("placed");
    assert_eq!(b.report.status, OrderStatus::Filled);
    assert!(!b.fills.is_empty());
    heard.lock().expect("lock").fills.extend(b.fills);

    // The stream comes back: its reconciliation finds the earlier fill and the order's end.
    sb.faults.refuse_ws_api(false);
    until("the user stream reconnects", 15, || heard.lock().expect("lock").user_connects == 2).await;
    {
        let h = heard.lock().expect("lock");
        let a_fills: Vec<_> = h.fills.iter().filter(|f| f.client_order_id == "gap-a").collect();
        assert_eq!(a_fills.len(), 1, "the fill made while the stream was down: {:?}", h.fills);
        assert_eq!(a_fills[0].qty, Decimal::new(1, 3));
        let seen = h.reports.get("gap-a").map(|r| (r.status, r.filled_qty));
        assert_eq!(seen, Some((OrderStatus::Filled, Decimal::new(1, 3))), "Keel hears the order ended");
    }
    user.abort();
    sb.shutdown().await;
}

/// A restart: the adapter's claim set is in memory only, so a new process
/// hands out again fills Keel recorded in the last run — the engine's
/// start-up fill listing (the store's cursor fill comes back) and the user
/// stream's snapshot of a partly filled order (its fills are read again).
/// The engine's path for a venue fill (`record_venue_fill`, what the order
/// router runs; only an inserted fill reaches the portfolio) keeps each
/// trade id once: the order's filled quantity and the fills are the venue's.
#[tokio::test]
async fn fills_handed_out_again_after_a_restart_are_recorded_once() {
    use actors::reconcile::record_venue_fill;
    use keel_core::store::Store;

    let (sb, venue, _dir) = start(1.0).await;
    sb.market.pause();
    let store_dir = tempfile::tempdir().expect("temp dir");
    let store = keel_store::SledStore::open(store_dir.path()).expect("store");
    let t = venue.best_bid_ask(&btc()).await.expect("touch");
    let price = (t.bid * Decimal::new(99, 2)).round_dp(2);
    // More than the touch's 0.05 BTC: it fills over several quote updates.
    let qty = Decimal::new(12, 2);
    let mut order = keel_core::order::Order {
        client_order_id: "rs-1".into(),
        venue_order_id: None,
        strategy_id: keel_core::symbol::StrategyId::new("s1"),
        symbol: btc(),
        side: Side::Buy,
        order_type: OrderType::Limit { price },
        tif: TimeInForce::Gtc,
        qty,
        reduce_only: false,
        tag: None,
        exit: None,
        status: OrderStatus::Submitted,
        filled_qty: Decimal::ZERO,
        filled_quote: Decimal::ZERO,
        reason: None,
        created_ms: 0,
        updated_ms: 0,
    };
    store.put_order(&order, true).expect("written ahead");
    let req = OrderRequest {
        client_order_id: "rs-1".into(),
        symbol: btc(),
        side: Side::Buy,
        order_type: OrderType::Limit { price },
        qty,
        tif: TimeInForce::Gtc,
    };
    let placed = venue.place_order(&req).await.expect("placed");
    order.venue_order_id = Some(placed.report.venue_order_id.clone());
    order.status = placed.report.status;
    store.put_order(&order, true).expect("accepted");

    // Run 1: part of it fills; the stream delivers the fill; the engine records it.
    let heard = Arc::new(Mutex::new(Heard::default()));
    let user = drain_user(venue.subscribe_user().await.expect("user stream"), heard.clone());
    until("the user stream connects", 10, || heard.lock().expect("lock").user_connects == 1).await;
    assert!(sb.market.set_price("BTCUSDT", (price * Decimal::new(97, 2)).round_dp(2)));
    sb.market.step(1);
    let at_venue = || sb.market.orders(DEFAULT_API_KEY, "BTCUSDT").into_iter().find(|o| o.client_order_id == "rs-1");
    let partly = at_venue().expect("at the venue");
    assert_eq!(partly.status, OrderStatus::PartiallyFilled, "the set-up needs a partly filled order: {partly:?}");
    until("run 1's fill reaches Keel", 10, || !heard.lock().expect("lock").fills.is_empty()).await;
    let run1: Vec<Fill> = heard.lock().expect("lock").fills.clone();
    for f in run1 {
        assert!(record_venue_fill(&store, f, 1).expect("recorded").inserted);
    }
    user.abort();
    drop(venue);
    drop(store);

    // Run 2: a new adapter and the store reopened.
    let store = keel_store::SledStore::open(store_dir.path()).expect("store reopens");
    let name = sb.coinbase_key_name.clone().expect("key name");
    let pem = sb.coinbase_private_key_pem.clone().expect("key");
    let creds = Arc::new(Credentials::new(&name, &pem).expect("key loads"));
    let mut settings = CoinbaseSettings::new(&format!("http://{}", sb.addr), creds);
    settings.ws_market_url = sb.coinbase_ws_market_url.clone();
    settings.ws_user_url = sb.coinbase_ws_user_url.clone();
    let venue = CoinbaseVenue::connect(settings).await.expect("connects");
    venue.remember_client_ids(["rs-1"]);
    // The engine's start-up listing from the store's cursor: the cursor's fill comes back.
    let cursor = store.fill_cursor(btc().as_str()).expect("cursor").expect("a cursor after run 1");
    let mut again = venue.my_trades(&btc(), Some(&cursor)).await.expect("fills");
    assert!(again.iter().any(|f| f.trade_id == cursor.trade_id), "a fill handed out again: {again:?}");
    // The user stream of the new process: its snapshot lists the partly filled order.
    let heard = Arc::new(Mutex::new(Heard::default()));
    let user = drain_user(venue.subscribe_user().await.expect("user stream"), heard.clone());
    until("run 2's user stream reads the partly filled order", 10, || {
        let h = heard.lock().expect("lock");
        h.user_connects == 1 && h.reports.get("rs-1").is_some_and(|r| r.filled_qty > Decimal::ZERO)
    })
    .await;
    again.extend(heard.lock().expect("lock").fills.clone());
    let mut inserted = 0;
    for f in again {
        inserted += usize::from(record_venue_fill(&store, f, 2).expect("recorded").inserted);
    }
    assert_eq!(inserted, 0, "nothing recorded twice");

    // The store has the venue's fills once and the order's filled quantity is the venue's.
    let venue_now = at_venue().expect("at the venue");
    let stored = store.order("rs-1").expect("read").expect("stored");
    assert_eq!(stored.filled_qty, venue_now.filled_qty, "filled once: {stored:?}");
    let fills = store.fills().expect("fills");
    let mut ids: Vec<_> = fills.iter().map(|f| f.trade_id.clone()).collect();
    ids.dedup();
    assert_eq!(ids.len(), fills.len());
    assert_eq!(fills.iter().map(|f| f.qty).sum::<Decimal>(), venue_now.filled_qty);
    user.abort();
    sb.shutdown().await;
}

/// Only the WebSocket notices a server clock jump (no REST call meanwhile
/// to be refused and measure the clock again): its subscribes are refused
/// (`authentication failure`, §2.6), which must make the adapter measure
/// the clock, not retry with the same stale tokens until the next periodic
/// resync (a minute).
#[tokio::test]
async fn a_clock_jump_only_the_websocket_sees_is_measured_again_and_the_stream_recovers() {
    let (sb, venue, _dir) = start(1.0).await;
    sb.market.pause();
    let mut rx = venue.subscribe_market(&[btc()], 60_000).await.expect("market stream");
    assert_eq!(
        tokio::time::timeout(Duration::from_secs(10), rx.recv()).await.expect("in time"),
        Some(MarketFeed::Status(StreamStatus::Connected))
    );
    until("a level-2 book", 10, || venue.book(&btc()).is_some()).await;
    // Server time jumps past a token's 120 s life; the connection drops.
    sb.faults.set_clock_skew_ms(300_000);
    sb.faults.drop_connections();
    loop {
        match tokio::time::timeout(Duration::from_secs(10), rx.recv()).await.expect("in time") {
            Some(MarketFeed::Status(StreamStatus::Disconnected { .. })) => break,
            Some(_) => {}
            None => panic!("the stream ended"),
        }
    }
    until("the book is back (subscribes accepted again)", 10, || venue.book(&btc()).is_some()).await;
    let offset = venue.rest().offset_ms();
    assert!((offset - 300_000).abs() < 2_000, "offset {offset}");
    drop(rx);
    sb.shutdown().await;
}

/// `fail_next_cancel` acts on Coinbase's `POST /orders/batch_cancel`: a
/// 503 after the cancel was queued is read back as `CANCEL_QUEUED`; a 503
/// before it leaves the order working and the outcome unknown to the caller.
#[tokio::test]
async fn cancel_faults_act_on_batch_cancel_and_the_adapter_reads_the_order_back() {
    let (sb, venue, _dir) = start(1.0).await;
    sb.market.pause();
    let t = venue.best_bid_ask(&btc()).await.expect("touch");
    let price = (t.bid * Decimal::new(9, 1)).round_dp(2);
    for cid in ["cx-after", "cx-before"] {
        let req = OrderRequest {
            client_order_id: cid.into(),
            symbol: btc(),
            side: Side::Buy,
            order_type: OrderType::Limit { price },
            qty: Decimal::new(1, 3),
            tif: TimeInForce::Gtc,
        };
        venue.place_order(&req).await.expect("placed");
    }
    let cancels = || sb.faults.rest_requests().iter().filter(|r| r.ends_with("/orders/batch_cancel")).count();
    sb.faults.fail_next_cancel(OrderFault::ErrorAfterExecute);
    let r = venue.cancel_order(&btc(), "cx-after").await.expect("read back after the 503");
    assert_eq!((r.status, r.reason.as_deref()), (OrderStatus::Accepted, Some("CANCEL_QUEUED")));
    sb.faults.fail_next_cancel(OrderFault::ErrorBeforeExecute);
    let r = venue.cancel_order(&btc(), "cx-before").await;
    assert!(matches!(r, Err(VenueError::OutcomeUnknown(_))), "{r:?}");
    assert_eq!(cancels(), 2, "each sent once");
    sb.market.step(1);
    let status = |cid: &str| {
        sb.market.orders(DEFAULT_API_KEY, "BTCUSDT").into_iter().find(|o| o.client_order_id == cid).map(|o| o.status)
    };
    assert_eq!(status("cx-after"), Some(OrderStatus::Canceled), "the queued cancel took");
    assert_eq!(status("cx-before"), Some(OrderStatus::Accepted), "the refused one never reached the book");
    sb.shutdown().await;
}
