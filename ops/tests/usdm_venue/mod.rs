//! Keel's Binance USDⓈ-M `FuturesData` client against the sandbox's
//! perpetuals (run inside `sandbox_venue`, which includes this module: the
//! adapter and the sandbox meet only in `ops`): exchange info and the
//! interval table, funding settling on each symbol's own interval with the
//! next funding time advancing by it, open interest, the mark-price stream
//! with its reconnect and the COIN-M filter, and the funding bucket kept on
//! the client's side.

use std::time::Duration;

use keel_binance::usdm::{UsdmClient, UsdmConfig as ClientConfig};
use keel_core::futures::{
    observed_interval_hours, FundingQuery, FuturesData, FuturesEvent, FuturesFeed, MarkPriceSpeed, OiHistQuery,
    OiPeriod,
};
use keel_core::venue::StreamStatus;
use keel_core::Symbol;
use keel_sandbox::usdm::UsdmConfig;
use keel_sandbox::{Sandbox, SandboxConfig, SandboxHandle};
use rust_decimal::Decimal;

const HOUR: i64 = 3_600_000;
const WAIT: Duration = Duration::from_secs(15);

/// A paused sandbox: one tick per 1m bar (a step is a simulated minute),
/// 25 hours of history so every symbol has settled several times.
async fn start(usdm: UsdmConfig) -> SandboxHandle {
    let cfg = SandboxConfig { ticks_per_bar: 1, history_bars: 1500, usdm, ..SandboxConfig::default() };
    let sb = Sandbox::start(cfg).await.expect("sandbox starts");
    sb.market.pause();
    sb
}

/// The status of a plain GET (the venue's side of the bucket test).
async fn status(sb: &SandboxHandle, path: &str) -> u16 {
    reqwest::get(format!("{}{path}", sb.rest_url)).await.expect("answers").status().as_u16()
}

async fn recv(rx: &mut tokio::sync::mpsc::Receiver<FuturesFeed>) -> FuturesFeed {
    tokio::time::timeout(WAIT, rx.recv()).await.expect("in time").expect("open")
}

fn client(sb: &SandboxHandle, cfg: ClientConfig) -> UsdmClient {
    UsdmClient::new(ClientConfig { rest_url: sb.rest_url.clone(), ws_url: sb.ws_stream_url.clone(), ..cfg })
        .expect("client")
}

#[tokio::test]
async fn the_binance_client_reads_the_sandbox_and_sees_funding_settle_on_the_interval() {
    let sb = start(UsdmConfig::default()).await;
    let c = client(&sb, ClientConfig::default());
    let info = c.exchange_info().await.expect("exchangeInfo");
    assert!(info.symbols.iter().all(|s| s.is_trading_perpetual()));
    let intervals = c.funding_info().await.expect("fundingInfo");
    let (btc, eth) = (Symbol::new("BTCUSDT"), Symbol::new("ETHUSDT"));
    assert_eq!((intervals.interval_hours(&eth), intervals.interval_hours(&btc)), (4, 8));

    let marks = c.premium_index(None).await.expect("premiumIndex");
    assert_eq!(marks.len(), 2);
    let eth_mark = c.premium_index(Some(&eth)).await.expect("one").remove(0);
    let t0 = eth_mark.next_funding_time.expect("a perpetual has one");
    assert!(c.limits().used_weight_1m > 0, "the weight header is read");

    // The history shows each symbol's interval.
    for (symbol, hours) in [(&eth, 4), (&btc, 8)] {
        let q = FundingQuery { symbol: Some(symbol.clone()), ..FundingQuery::default() };
        let rows = c.funding_history(&q).await.expect("fundingRate");
        assert_eq!(observed_interval_hours(&rows), Some(hours), "{symbol}");
    }

    sb.market.step(((t0 - eth_mark.ts_ms) / 60_000 + 1) as u32);
    let q = FundingQuery { symbol: Some(eth.clone()), start_ms: Some(t0), ..FundingQuery::default() };
    let settled = c.funding_history(&q).await.expect("fundingRate");
    assert_eq!(settled.iter().map(|s| s.funding_time).collect::<Vec<_>>(), [t0]);
    let next = c.premium_index(Some(&eth)).await.expect("one").remove(0).next_funding_time;
    assert_eq!(next, Some(t0 + 4 * HOUR));

    let oi = c.open_interest(&btc).await.expect("openInterest");
    assert!(oi.open_interest > Decimal::ZERO);
    let q = OiHistQuery { symbol: btc.clone(), period: OiPeriod::M15, start_ms: None, end_ms: None, limit: Some(4) };
    let hist = c.open_interest_hist(&q).await.expect("openInterestHist");
    assert_eq!(hist.len(), 4);
    assert!(hist.iter().all(|h| h.sum_open_interest_value > h.sum_open_interest));
}

#[tokio::test]
async fn the_binance_client_streams_mark_prices_and_reconnects() {
    let sb = start(UsdmConfig::default()).await;
    let c = client(&sb, ClientConfig::default());
    let mut rx = c.subscribe_mark_price(&[Symbol::new("BTCUSDT")], MarkPriceSpeed::Every1s).await.expect("subscribed");
    assert_eq!(recv(&mut rx).await, FuturesFeed::Status(StreamStatus::Connected));
    let FuturesFeed::Event(FuturesEvent::Mark(m)) = recv(&mut rx).await else { panic!("a mark price first") };
    assert_eq!(m.symbol.as_str(), "BTCUSDT");
    assert!(m.funding_rate_estimate.is_some() && m.next_funding_time.is_some());

    sb.faults.drop_connections();
    loop {
        match recv(&mut rx).await {
            FuturesFeed::Status(StreamStatus::Disconnected { .. }) => break,
            FuturesFeed::Event(_) => continue,
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(recv(&mut rx).await, FuturesFeed::Status(StreamStatus::Connected));
    assert!(matches!(recv(&mut rx).await, FuturesFeed::Event(FuturesEvent::Mark(_))));

    // The all-market stream: the sandbox's COIN-M item is dropped by the client.
    let mut all = c.subscribe_mark_price(&[], MarkPriceSpeed::Every1s).await.expect("subscribed");
    let mut seen = Vec::new();
    while seen.len() < 4 {
        match recv(&mut all).await {
            FuturesFeed::Event(e) => seen.push(e.symbol().as_str().to_string()),
            FuturesFeed::Status(_) => {}
        }
    }
    assert!(seen.iter().all(|s| s == "BTCUSDT" || s == "ETHUSDT"), "{seen:?}");
}

#[tokio::test]
async fn the_binance_client_keeps_to_the_funding_bucket() {
    let sb = start(UsdmConfig { funding_requests_per_5m: 3, ..UsdmConfig::default() }).await;
    let c = client(&sb, ClientConfig { funding_requests_per_5m: 2, max_bucket_wait_ms: 0, ..ClientConfig::default() });
    c.funding_info().await.expect("first");
    c.funding_info().await.expect("second");
    match c.funding_info().await {
        Err(keel_core::venue::VenueError::RateLimited { retry_after_ms }) => assert!(retry_after_ms > 0),
        other => panic!("expected a local refusal, got {other:?}"),
    }
    // The refused request never left: the venue still has room for exactly one.
    assert_eq!(status(&sb, "/fapi/v1/fundingInfo").await, 200);
    assert_eq!(status(&sb, "/fapi/v1/fundingInfo").await, 429);
}

#[tokio::test]
async fn the_binance_client_retries_reads_the_venue_could_not_answer_but_not_429s() {
    let sb = start(UsdmConfig::default()).await;
    let c = client(&sb, ClientConfig::default());
    let btc = Symbol::new("BTCUSDT");
    // Two 503s: the third try answers.
    sb.faults.fail_next_requests(keel_sandbox::RestFault::ServerError, 2);
    assert_eq!(c.premium_index(Some(&btc)).await.expect("answered on the third try").len(), 1);
    // Three: the read gives up, saying the venue did not answer.
    sb.faults.fail_next_requests(keel_sandbox::RestFault::ServerError, 3);
    let err = c.open_interest(&btc).await.expect_err("three 503s");
    assert!(matches!(err, keel_core::venue::VenueError::OutcomeUnknown(_)), "{err:?}");
    // A 429 is not retried: it is the caller's answer, and the client pauses.
    sb.faults.fail_next_requests(keel_sandbox::RestFault::RateLimited { retry_after_s: 1 }, 1);
    let err = c.open_interest(&btc).await.expect_err("429");
    assert!(matches!(err, keel_core::venue::VenueError::RateLimited { retry_after_ms: 1000 }), "{err:?}");
    assert!(c.open_interest(&btc).await.is_ok(), "after the pause");
}

#[tokio::test]
async fn a_dropped_mark_price_subscription_closes_its_connection_even_while_nothing_arrives() {
    let sb = start(UsdmConfig::default()).await;
    let c = client(&sb, ClientConfig::default());
    // A stream name the sandbox has no symbol for: the connection stays silent
    // (the client would only notice its silence after 30 s).
    let mut rx = c.subscribe_mark_price(&[Symbol::new("NOPEUSDT")], MarkPriceSpeed::Every1s).await.expect("subscribed");
    assert_eq!(recv(&mut rx).await, FuturesFeed::Status(StreamStatus::Connected));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while sb.faults.futures_stream_connections().is_empty() {
        assert!(tokio::time::Instant::now() < deadline, "the sandbox never saw the connection");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(sb.faults.futures_stream_connections(), [vec!["nopeusdt@markPrice@1s".to_string()]]);
    drop(rx);
    // Well within the silence timeout: the drop itself ends the connection.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !sb.faults.futures_stream_connections().is_empty() {
        assert!(tokio::time::Instant::now() < deadline, "the connection outlived its subscription");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_mark_price_connection_that_sends_no_mark_price_is_renewed() {
    let sb = start(UsdmConfig::default()).await;
    let c = client(&sb, ClientConfig { stream_silence_ms: 300, ..ClientConfig::default() });
    // Pings and nothing else: the connection is up but useless (as on a wrong route).
    let mut rx = c.subscribe_mark_price(&[Symbol::new("NOPEUSDT")], MarkPriceSpeed::Every1s).await.expect("subscribed");
    assert_eq!(recv(&mut rx).await, FuturesFeed::Status(StreamStatus::Connected));
    let reason = StreamStatus::Disconnected { reason: "no data for 300 ms".into() };
    assert_eq!(recv(&mut rx).await, FuturesFeed::Status(reason));
    assert_eq!(recv(&mut rx).await, FuturesFeed::Status(StreamStatus::Connected), "and connects again");
}
