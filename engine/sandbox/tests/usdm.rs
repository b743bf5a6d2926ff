//! The sandbox's USDⓈ-M perpetuals against a real sandbox on loopback: the
//! `fapi` endpoints answer in the documented shapes (every key of the
//! fixture is there) and error codes, mark and index prices follow the spot
//! simulation, funding settles on each symbol's own interval on the market's
//! clock, open interest moves with trading, the futures limits hold, and the
//! streams answer on the routed paths (and stay silent on `/public`). Keel's
//! own Binance `FuturesData` client drives it in `ops/tests/usdm_venue`
//! (the sandbox may not depend on the adapter).
//!
//! The market is paused and stepped, so what each test sees is exact.

use std::time::Duration;

use futures_util::{SinkExt as _, StreamExt as _};
use rust_decimal::Decimal;
use serde_json::Value;
use tokio_tungstenite::tungstenite::Message;

use keel_sandbox::usdm::UsdmConfig;
use keel_sandbox::{Sandbox, SandboxConfig, SandboxHandle};

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

/// GET `path`: status, `X-MBX-USED-WEIGHT-1M`, `Retry-After`, body.
async fn get(sb: &SandboxHandle, path: &str) -> (u16, Option<u64>, Option<u64>, Value) {
    let resp = reqwest::get(format!("{}{path}", sb.rest_url)).await.expect("answers");
    let header = |name: &str| resp.headers().get(name).and_then(|v| v.to_str().ok()).and_then(|v| v.parse().ok());
    let (weight, retry) = (header("x-mbx-used-weight-1m"), header("retry-after"));
    let status = resp.status().as_u16();
    (status, weight, retry, resp.json().await.expect("JSON"))
}

async fn ok(sb: &SandboxHandle, path: &str) -> Value {
    let (status, weight, _, body) = get(sb, path).await;
    assert_eq!(status, 200, "{path}: {body}");
    assert!(weight.is_some(), "{path}: no X-MBX-USED-WEIGHT-1M");
    body
}

fn dec(v: &Value) -> Decimal {
    v.as_str().unwrap_or_else(|| panic!("{v} is not a string")).parse().expect("a decimal")
}

/// Every key of the documented example (the fixture) is in `got`.
fn has_fixture_keys(got: &Value, fixture: &str) {
    has_fixture_keys_at(got, fixture, "");
}

/// Every key of the documented example's part at JSON pointer `at` is in `got`.
fn has_fixture_keys_at(got: &Value, fixture: &str, at: &str) {
    let Some(dir) = keel_testkit::fixtures("binance-usdm") else { return };
    let text = std::fs::read_to_string(dir.join(fixture)).expect("fixture");
    let doc: Value = serde_json::from_str(&text).expect("fixture JSON");
    let doc = doc.pointer(at).cloned().expect("the part is in the fixture");
    let first = |v: &Value| if v.is_array() { v[0].clone() } else { v.clone() };
    let (doc, got) = (first(&doc), first(got));
    for key in doc.as_object().expect("an object").keys() {
        assert!(got.get(key).is_some(), "{fixture}: `{key}` missing from {got}");
    }
}

#[tokio::test]
async fn rest_endpoints_answer_in_the_documented_shapes() {
    let sb = start(UsdmConfig::default()).await;
    assert_eq!(ok(&sb, "/fapi/v1/ping").await, serde_json::json!({}));
    assert!(ok(&sb, "/fapi/v1/time").await["serverTime"].as_i64().is_some());

    let one = ok(&sb, "/fapi/v1/premiumIndex?symbol=BTCUSDT").await;
    has_fixture_keys(&one, "fapi_premiumIndex.json");
    let all = ok(&sb, "/fapi/v1/premiumIndex").await;
    has_fixture_keys(&all, "fapi_premiumIndex_list.json");
    let names: Vec<&str> = all.as_array().unwrap().iter().map(|p| p["symbol"].as_str().unwrap()).collect();
    assert_eq!(names, ["BTCUSDT", "ETHUSDT"]);

    // The index is the spot price; the mark stays within the basis of it.
    let spot = ok(&sb, "/api/v3/ticker/price?symbol=BTCUSDT").await;
    assert_eq!(dec(&one["indexPrice"]), dec(&spot["price"]));
    let (mark, index) = (dec(&one["markPrice"]), dec(&one["indexPrice"]));
    assert!(((mark - index) / index).abs() <= Decimal::new(15, 4), "mark {mark} index {index}");

    let rows = ok(&sb, "/fapi/v1/fundingRate?symbol=BTCUSDT").await;
    has_fixture_keys(&rows, "fapi_fundingRate_connector.json");
    assert_eq!(rows[0]["rateType"], "Regular");
    // Only the adjusted symbol is listed: ETHUSDT at 4 h; BTCUSDT is 8 h by default.
    let info = ok(&sb, "/fapi/v1/fundingInfo").await;
    has_fixture_keys(&info, "fapi_fundingInfo.json");
    assert_eq!(info.as_array().unwrap().len(), 1, "{info}");
    assert_eq!((info[0]["symbol"].as_str(), info[0]["fundingIntervalHours"].as_u64()), (Some("ETHUSDT"), Some(4)));

    let oi = ok(&sb, "/fapi/v1/openInterest?symbol=BTCUSDT").await;
    has_fixture_keys(&oi, "fapi_openInterest.json");
    assert!(dec(&oi["openInterest"]) > Decimal::ZERO, "{oi}");
    let hist = ok(&sb, "/futures/data/openInterestHist?symbol=BTCUSDT&period=5m&limit=10").await;
    has_fixture_keys(&hist, "futures_data_openInterestHist_connector.json");
    let ts: Vec<i64> = hist.as_array().unwrap().iter().map(|r| r["timestamp"].as_i64().unwrap()).collect();
    assert_eq!(ts.len(), 10);
    assert!(ts.windows(2).all(|w| w[1] - w[0] == 300_000), "{ts:?}");
    assert!(ts.iter().all(|t| t % 300_000 == 0));
    // Periods without trades are missing, not zero: the hours before the
    // first bar (25 h ago) give no rows.
    let from = ts[0] - 27 * HOUR;
    let hist =
        ok(&sb, &format!("/futures/data/openInterestHist?symbol=BTCUSDT&period=1h&startTime={from}&limit=3")).await;
    let first = hist[0]["timestamp"].as_i64().unwrap();
    assert!(first >= from + 2 * HOUR, "rows before the market existed: {hist}");
    assert_eq!(hist.as_array().unwrap().len(), 3, "the first rows that exist, from startTime");

    let info = ok(&sb, "/fapi/v1/exchangeInfo").await;
    has_fixture_keys(&info, "fapi_exchangeInfo_current_schema.json");
    has_fixture_keys_at(&info["symbols"], "fapi_exchangeInfo_current_schema.json", "/symbols/0");
    assert_eq!(info["rateLimits"][0]["limit"], 2400);
    assert_eq!(info["symbols"][0]["contractType"], "PERPETUAL");
    let ticker = ok(&sb, "/fapi/v1/ticker/24hr?symbol=ETHUSDT").await;
    has_fixture_keys(&ticker, "fapi_ticker_24hr.json");
    assert!(ticker.get("bidPrice").is_none(), "futures tickers have no bid/ask");
    assert_eq!(ok(&sb, "/fapi/v1/ticker/24hr").await.as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn bad_requests_get_the_documented_codes() {
    let sb = start(UsdmConfig::default()).await;
    let now = ok(&sb, "/fapi/v1/premiumIndex?symbol=BTCUSDT").await["time"].as_i64().unwrap();
    let old = now - 31 * 24 * HOUR;
    let cases = [
        ("/fapi/v1/openInterest".to_string(), -1102),
        ("/fapi/v1/openInterest?symbol=NOPEUSDT".to_string(), -1121),
        ("/fapi/v1/premiumIndex?symbol=NOPEUSDT".to_string(), -1121),
        ("/futures/data/openInterestHist?symbol=BTCUSDT&period=1m".to_string(), -1130),
        ("/futures/data/openInterestHist?symbol=BTCUSDT&period=8h".to_string(), -1130),
        ("/futures/data/openInterestHist?symbol=BTCUSDT&period=5m&limit=501".to_string(), -1130),
        (format!("/futures/data/openInterestHist?symbol=BTCUSDT&period=5m&startTime={old}"), -1130),
        ("/fapi/v1/fundingRate?limit=1001".to_string(), -1130),
        ("/fapi/v1/fundingRate?startTime=10&endTime=5".to_string(), -1023),
    ];
    for (path, code) in cases {
        let (status, _, _, body) = get(&sb, &path).await;
        assert_eq!((status, body["code"].as_i64()), (400, Some(code)), "{path}: {body}");
    }
}

#[tokio::test]
async fn funding_settles_on_each_symbols_interval_and_the_next_time_advances_by_it() {
    let sb = start(UsdmConfig::default()).await;
    let eth = ok(&sb, "/fapi/v1/premiumIndex?symbol=ETHUSDT").await;
    let (t0, now) = (eth["nextFundingTime"].as_i64().unwrap(), eth["time"].as_i64().unwrap());
    assert!(t0 > now && t0 - now <= 4 * HOUR, "next {t0}, now {now}");

    // The history settled every 4 h for ETHUSDT and every 8 h for BTCUSDT.
    for (symbol, hours) in [("ETHUSDT", 4), ("BTCUSDT", 8)] {
        let rows = ok(&sb, &format!("/fapi/v1/fundingRate?symbol={symbol}")).await;
        let times: Vec<i64> = rows.as_array().unwrap().iter().map(|r| r["fundingTime"].as_i64().unwrap()).collect();
        assert!(times.len() >= 2, "{symbol}: {rows}");
        assert!(times.windows(2).all(|w| w[1] - w[0] == hours * HOUR), "{symbol}: {times:?}");
        assert!(times.last().is_some_and(|t| *t <= now));
    }
    let before = ok(&sb, &format!("/fapi/v1/fundingRate?symbol=ETHUSDT&startTime={t0}")).await;
    assert_eq!(before, serde_json::json!([]), "nothing settles before its time");

    // Step the market just past the settlement.
    sb.market.step(((t0 - now) / 60_000 + 1) as u32);
    let rows = ok(&sb, &format!("/fapi/v1/fundingRate?symbol=ETHUSDT&startTime={t0}")).await;
    assert_eq!(rows.as_array().unwrap().len(), 1, "{rows}");
    assert_eq!(rows[0]["fundingTime"].as_i64(), Some(t0));
    assert!(dec(&rows[0]["markPrice"]) > Decimal::ZERO);
    let eth = ok(&sb, "/fapi/v1/premiumIndex?symbol=ETHUSDT").await;
    assert_eq!(eth["nextFundingTime"].as_i64(), Some(t0 + 4 * HOUR));
    // BTCUSDT's next settlement is on its own 8 h grid.
    let btc = ok(&sb, "/fapi/v1/premiumIndex?symbol=BTCUSDT").await["nextFundingTime"].as_i64().unwrap();
    assert_eq!(btc % (8 * HOUR), 0);

    // `limit` and the time range select as documented: the first rows from startTime.
    let all = ok(&sb, "/fapi/v1/fundingRate").await;
    let first_two = ok(&sb, "/fapi/v1/fundingRate?startTime=0&limit=2").await;
    assert_eq!(first_two.as_array().unwrap()[..], all.as_array().unwrap()[..2]);
}

#[tokio::test]
async fn open_interest_moves_with_trading() {
    let sb = start(UsdmConfig::default()).await;
    let oi = |v: Value| dec(&v["openInterest"]);
    let before = oi(ok(&sb, "/fapi/v1/openInterest?symbol=BTCUSDT").await);
    // A spot market buy prints on the tape, in the bar in progress.
    let order = signed_market_buy(&sb, "0.04").await;
    assert_eq!(order["status"], "FILLED", "{order}");
    let after = oi(ok(&sb, "/fapi/v1/openInterest?symbol=BTCUSDT").await);
    // 40 units of open interest per unit traded in the last hour (the default).
    assert_eq!(after - before, Decimal::new(16, 1), "before {before}, after {after}");
}

#[tokio::test]
async fn the_futures_limits_answer_429_with_the_futures_text() {
    let usdm = UsdmConfig { weight_limit_1m: 25, funding_requests_per_5m: 3, ..UsdmConfig::default() };
    let sb = start(usdm).await;
    // premiumIndex without a symbol weighs 10: the third in a minute is over 25.
    let mut limited = None;
    for _ in 0..6 {
        let (status, _, retry, body) = get(&sb, "/fapi/v1/premiumIndex").await;
        if status == 429 {
            limited = Some((retry, body));
            break;
        }
    }
    let (retry, body) = limited.expect("a 429 within six requests");
    assert_eq!(body["code"], -1003);
    assert!(body["msg"].as_str().unwrap().starts_with("Too many requests; current limit is 25 requests per minute"));
    assert!(retry.is_some_and(|s| (1..=60).contains(&s)), "Retry-After {retry:?}");

    // The funding bucket counts requests, not weight (fundingInfo weighs 0).
    for _ in 0..3 {
        get(&sb, "/fapi/v1/fundingInfo").await;
    }
    let (status, _, _, body) = get(&sb, "/fapi/v1/fundingInfo").await;
    assert_eq!((status, body["code"].as_i64()), (429, Some(-1003)), "{body}");
}

/// `POST /api/v3/order` (a MARKET buy), HMAC-signed by hand.
async fn signed_market_buy(sb: &SandboxHandle, qty: &str) -> Value {
    use hmac::Mac as _;
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_millis();
    let query = format!("symbol=BTCUSDT&side=BUY&type=MARKET&quantity={qty}&timestamp={now}");
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(sb.api_secret.as_bytes()).expect("any key length");
    mac.update(query.as_bytes());
    let signature = hex::encode(mac.finalize().into_bytes());
    let resp = reqwest::Client::new()
        .post(format!("{}/api/v3/order?{query}&signature={signature}", sb.rest_url))
        .header("X-MBX-APIKEY", &sb.api_key)
        .send()
        .await
        .expect("answers");
    resp.json().await.expect("JSON")
}

type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn connect(sb: &SandboxHandle, path: &str) -> Ws {
    tokio_tungstenite::connect_async(format!("{}{path}", sb.ws_stream_url)).await.expect("connects").0
}

/// The next text message (pings skipped).
async fn next_text(ws: &mut Ws) -> Value {
    loop {
        let msg = tokio::time::timeout(WAIT, ws.next()).await.expect("a message in time").expect("open").expect("ok");
        if let Message::Text(t) = msg {
            return serde_json::from_str(t.as_str()).expect("JSON");
        }
    }
}

#[tokio::test]
async fn streams_answer_on_the_market_route_and_stay_silent_on_public() {
    let sb = start(UsdmConfig::default()).await;
    let next = ok(&sb, "/fapi/v1/premiumIndex?symbol=BTCUSDT").await["nextFundingTime"].as_i64();

    let mut public = connect(&sb, "/public/stream?streams=btcusdt@markPrice@1s").await;
    let mut market = connect(&sb, "/market/stream?streams=btcusdt@markPrice@1s").await;
    for _ in 0..2 {
        let msg = next_text(&mut market).await;
        has_fixture_keys(&msg, "ws_fapi_combined_markPrice_schema.json");
        has_fixture_keys(&msg["data"], "ws_fapi_markPriceUpdate_connector.json");
        assert_eq!(
            (msg["stream"].as_str(), msg["data"]["s"].as_str()),
            (Some("btcusdt@markPrice@1s"), Some("BTCUSDT"))
        );
        assert_eq!(msg["data"]["T"].as_i64(), next);
    }
    // Two seconds of market data later, the /public connection has sent nothing.
    loop {
        match tokio::time::timeout(Duration::from_millis(50), public.next()).await {
            Err(_) => break,
            Ok(Some(Ok(Message::Ping(_) | Message::Pong(_)))) => continue,
            Ok(other) => panic!("/public sent {other:?}"),
        }
    }

    // ccxt.pro's path, a UUID request id, the all-market array with one COIN-M item.
    let mut ws = connect(&sb, "/market/ws/1").await;
    let id = "5494febb-d167-46a2-996d-70533eb4d976";
    let sub = serde_json::json!({"method": "SUBSCRIBE", "params": ["!markPrice@arr@1s"], "id": id});
    ws.send(Message::Text(sub.to_string().into())).await.expect("sent");
    assert_eq!(next_text(&mut ws).await, serde_json::json!({"result": null, "id": id}));
    let arr = next_text(&mut ws).await;
    let items: Vec<(&str, i64)> = arr
        .as_array()
        .expect("raw array")
        .iter()
        .map(|i| (i["s"].as_str().unwrap(), i["st"].as_i64().unwrap()))
        .collect();
    assert_eq!(items, [("BTCUSDT", 1), ("ETHUSDT", 1), ("BTCUSD_PERP", 2)]);
}

#[tokio::test]
async fn a_client_sending_more_than_ten_messages_a_second_is_disconnected() {
    let sb = start(UsdmConfig::default()).await;
    let mut ws = connect(&sb, "/market/ws").await;
    for id in 0..11 {
        let msg = serde_json::json!({"method": "LIST_SUBSCRIPTIONS", "id": id});
        // The connection may already be closing: later sends may fail.
        if ws.send(Message::Text(msg.to_string().into())).await.is_err() {
            break;
        }
    }
    let mut answers = 0;
    loop {
        match tokio::time::timeout(WAIT, ws.next()).await.expect("closed in time") {
            Some(Ok(Message::Text(_))) => answers += 1,
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
            Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
            Some(Ok(other)) => panic!("{other:?}"),
        }
    }
    assert_eq!(answers, 10, "ten answered, then the connection closed");
}

/// ETHUSDT's interval now, by `fundingInfo`.
async fn eth_hours(sb: &SandboxHandle) -> Option<u64> {
    let info = ok(sb, "/fapi/v1/fundingInfo").await;
    info.as_array().unwrap().iter().find(|r| r["symbol"] == "ETHUSDT").and_then(|r| r["fundingIntervalHours"].as_u64())
}

#[tokio::test]
async fn a_settlement_at_the_cap_switches_the_symbol_to_hourly_and_sixteen_calm_hours_switch_it_back() {
    // No basis: every rate is the 0.01 % interest rate, which is ETHUSDT's cap here.
    let usdm = UsdmConfig {
        basis_bps: Decimal::ZERO,
        rate_caps: [("ETHUSDT".to_string(), Decimal::new(1, 4))].into(),
        ..UsdmConfig::default()
    };
    let sb = start(usdm).await;
    // The history: a 4 h settlement at the cap, then sixteen hourly ones, then the 4 h grid again.
    let rows = ok(&sb, "/fapi/v1/fundingRate?symbol=ETHUSDT").await;
    let times: Vec<i64> = rows.as_array().unwrap().iter().map(|r| r["fundingTime"].as_i64().unwrap()).collect();
    let gaps: Vec<i64> = times.windows(2).map(|w| (w[1] - w[0]) / HOUR).collect();
    let first_hourly = gaps.iter().position(|g| *g == 1).expect("an hourly spell in 25 h of history");
    let spell = gaps[first_hourly..].iter().take_while(|g| **g == 1).count();
    if first_hourly + spell < gaps.len() {
        assert_eq!(spell, 16, "{gaps:?}");
        assert_eq!(times[first_hourly + spell + 1] % (4 * HOUR), 0, "back on the 4 h grid: {gaps:?}");
    }
    // BTCUSDT, under the default cap, keeps its 8 h.
    let btc = ok(&sb, "/fapi/v1/fundingRate?symbol=BTCUSDT").await;
    let t: Vec<i64> = btc.as_array().unwrap().iter().map(|r| r["fundingTime"].as_i64().unwrap()).collect();
    assert!(t.windows(2).all(|w| w[1] - w[0] == 8 * HOUR), "{t:?}");

    // Live: wait out any spell under way, then see the next one start — at
    // the flip fundingInfo says 1 h and the next funding time advances an
    // hour per settlement.
    for _ in 0..17 {
        if eth_hours(&sb).await == Some(4) {
            break;
        }
        sb.market.step(60);
    }
    assert_eq!(eth_hours(&sb).await, Some(4), "the spell ends after sixteen hours");
    for _ in 0..5 {
        if eth_hours(&sb).await == Some(1) {
            break;
        }
        sb.market.step(60);
    }
    assert_eq!(eth_hours(&sb).await, Some(1), "the next 4 h settlement is at the cap");
    let next = |v: Value| v["nextFundingTime"].as_i64().unwrap();
    let t1 = next(ok(&sb, "/fapi/v1/premiumIndex?symbol=ETHUSDT").await);
    sb.market.step(60);
    let t2 = next(ok(&sb, "/fapi/v1/premiumIndex?symbol=ETHUSDT").await);
    let last = ok(&sb, "/fapi/v1/fundingRate?symbol=ETHUSDT&limit=1").await;
    assert_eq!(last[0]["fundingTime"].as_i64(), Some(t1));
    assert_eq!(t2 - t1, HOUR, "hourly: {t1} → {t2}");
    assert_eq!(dec(&last[0]["fundingRate"]), Decimal::new(1, 4));
}
