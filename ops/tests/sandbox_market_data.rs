//! The sandbox's market data as Binance serves it, over real REST and
//! WebSocket connections: the trade tape (REST `trades`, `historicalTrades`,
//! `aggTrades` and the trade streams agree, the account's own fills
//! included), klines whose trade ids, counts and taker volumes come from
//! that tape, the documented local order book procedure run against a
//! moving market, tickers and average prices that agree with REST, stream
//! control messages, and payload shapes checked against the documented
//! fixtures.

mod wire;

use std::collections::BTreeMap;

use futures_util::SinkExt;
use keel_sandbox::{Sandbox, SandboxConfig, SandboxHandle};
use rust_decimal::Decimal;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;
use wire::{assert_shape, call, fixture, next_json, next_matching, now_ms};

async fn start(cfg: SandboxConfig) -> SandboxHandle {
    Sandbox::start(SandboxConfig { history_bars: 30, ..cfg }).await.expect("sandbox starts")
}

async fn connect(
    sb: &SandboxHandle,
    path: &str,
) -> impl futures_util::Stream<Item = Result<Message, tokio_tungstenite::tungstenite::Error>>
       + futures_util::Sink<Message, Error = tokio_tungstenite::tungstenite::Error>
       + Unpin {
    tokio_tungstenite::connect_async(format!("{}{}", sb.ws_stream_url, path)).await.expect("stream connects").0
}

fn dec(v: &Value) -> Decimal {
    v.as_str().unwrap_or_else(|| panic!("a decimal string: {v}")).parse().unwrap()
}

fn id(v: &Value) -> u64 {
    v.as_u64().unwrap_or_else(|| panic!("an id: {v}"))
}

/// The data of a combined-stream message on `stream`.
async fn next_on<S>(ws: &mut S, stream: &str) -> Value
where
    S: futures_util::Stream<Item = Result<Message, tokio_tungstenite::tungstenite::Error>> + Unpin,
{
    next_matching(ws, stream, |v| v["stream"] == stream).await["data"].clone()
}

#[tokio::test]
async fn trades_print_once_on_every_surface_with_the_accounts_fills() {
    let fixtures = keel_testkit::fixtures("binance");
    let sb = start(SandboxConfig::demo()).await;
    sb.market.pause();
    let mut ws = connect(&sb, "/stream?streams=btcusdt@trade/btcusdt@aggTrade/btcusdt@kline_1m").await;
    // A market tick prints a trade; the kline carries its id.
    sb.market.step(1);
    let t1 = next_on(&mut ws, "btcusdt@trade").await;
    let a1 = next_on(&mut ws, "btcusdt@aggTrade").await;
    assert_eq!(
        (a1["a"].clone(), a1["f"].clone(), a1["l"].clone()),
        (t1["t"].clone(), t1["t"].clone(), t1["t"].clone())
    );
    let k = next_on(&mut ws, "btcusdt@kline_1m").await;
    let (f, l, n) = (id(&k["k"]["f"]), id(&k["k"]["L"]), id(&k["k"]["n"]));
    assert_eq!(l, id(&t1["t"]), "the kline's last trade is the one just printed: {k}");
    assert_eq!(n, l - f + 1, "n = L - f + 1: {k}");
    // Times: trades and events on the server clock, klines on the market clock.
    let t = t1["T"].as_i64().unwrap();
    assert!((t - now_ms()).abs() < 5_000, "trade time {t} is server time");
    assert!(k["k"]["t"].as_i64().unwrap() < now_ms() - 86_400_000, "demo klines run on the market's own clock: {k}");

    // The account's market buy prints on the tape, the taker buying (m = false).
    let order = [("symbol", "BTCUSDT"), ("side", "BUY"), ("type", "MARKET"), ("quantity", "0.001")];
    let r = call(&sb, "POST", "/api/v3/order", &order, true).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let fill = &r.body["fills"][0];
    let t2 = next_on(&mut ws, "btcusdt@trade").await;
    assert_eq!(
        (t2["t"].clone(), t2["p"].clone(), t2["q"].clone()),
        (fill["tradeId"].clone(), fill["price"].clone(), fill["qty"].clone())
    );
    assert_eq!(t2["m"], false, "{t2}");
    assert_eq!(id(&t2["t"]), id(&t1["t"]) + 1, "one id sequence for ticks and fills");
    sb.market.step(1);
    let t3 = next_on(&mut ws, "btcusdt@trade").await;
    assert_eq!(id(&t3["t"]), id(&t2["t"]) + 1);
    let k =
        next_matching(&mut ws, "kline", |v| v["stream"] == "btcusdt@kline_1m" && v["data"]["k"]["L"] == t3["t"]).await;
    let k = &k["data"]["k"];
    assert_eq!(id(&k["n"]), id(&k["L"]) - id(&k["f"]) + 1, "{k}");
    assert!(dec(&k["V"]) > Decimal::ZERO && dec(&k["Q"]) > Decimal::ZERO, "taker-buy volumes: {k}");

    // REST agrees, trade for trade.
    let stream_trades = [&t1, &t2, &t3];
    let recent = call(&sb, "GET", "/api/v3/trades", &[("symbol", "BTCUSDT"), ("limit", "3")], false).await;
    let recent = recent.body.as_array().unwrap().clone();
    assert_eq!(recent.len(), 3);
    for (rest, st) in recent.iter().zip(stream_trades) {
        assert_eq!(
            (
                rest["id"].clone(),
                rest["price"].clone(),
                rest["qty"].clone(),
                rest["time"].clone(),
                rest["isBuyerMaker"].clone()
            ),
            (st["t"].clone(), st["p"].clone(), st["q"].clone(), st["T"].clone(), st["m"].clone()),
        );
    }
    let from = t2["t"].to_string();
    let hist = call(
        &sb,
        "GET",
        "/api/v3/historicalTrades",
        &[("symbol", "BTCUSDT"), ("fromId", &from), ("limit", "2")],
        false,
    )
    .await;
    let ids: Vec<u64> = hist.body.as_array().unwrap().iter().map(|t| id(&t["id"])).collect();
    assert_eq!(ids, [id(&t2["t"]), id(&t3["t"])]);
    let agg = call(&sb, "GET", "/api/v3/aggTrades", &[("symbol", "BTCUSDT"), ("fromId", &from)], false).await;
    assert_eq!(
        agg.body[0],
        json!({"a": t2["t"], "p": t2["p"], "q": t2["q"], "f": t2["t"], "l": t2["t"], "T": t2["T"], "m": false, "M": true})
    );
    let (start, end) = (t2["T"].to_string(), t3["T"].to_string());
    let by_time = call(
        &sb,
        "GET",
        "/api/v3/aggTrades",
        &[("symbol", "BTCUSDT"), ("startTime", &start), ("endTime", &end)],
        false,
    )
    .await;
    let ids: Vec<u64> = by_time.body.as_array().unwrap().iter().map(|t| id(&t["a"])).collect();
    assert!(ids.contains(&id(&t2["t"])) && ids.contains(&id(&t3["t"])), "{ids:?}");
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "oldest first");

    // Refusals and weights as documented.
    struct Refusal {
        path: &'static str,
        params: Vec<(&'static str, String)>,
        code: i64,
        msg: &'static str,
    }
    let refusals = [
        Refusal {
            path: "/api/v3/aggTrades",
            params: vec![("fromId", from.clone()), ("startTime", start.clone())],
            code: -1128,
            msg: "Combination of optional parameters invalid.",
        },
        Refusal {
            path: "/api/v3/trades",
            params: vec![("limit", "abc".into())],
            code: -1100,
            msg: "Illegal characters found in parameter 'limit'; legal range is '^[0-9]{1,20}$'.",
        },
        Refusal {
            path: "/api/v3/historicalTrades",
            params: vec![("fromId", "-1".into())],
            code: -1100,
            msg: "Illegal characters found in parameter 'fromId'; legal range is '^[0-9]{1,20}$'.",
        },
        Refusal {
            path: "/api/v3/trades",
            params: vec![],
            code: -1102,
            msg: "Mandatory parameter 'symbol' was not sent, was empty/null, or malformed.",
        },
    ];
    for r in refusals {
        let mut params: Vec<(&str, &str)> = r.params.iter().map(|(k, v)| (*k, v.as_str())).collect();
        if r.code != -1102 {
            params.push(("symbol", "BTCUSDT"));
        }
        let got = call(&sb, "GET", r.path, &params, false).await;
        assert_eq!((got.status, got.body.clone()), (400, json!({"code": r.code, "msg": r.msg})), "{}", r.path);
    }
    let unknown = call(&sb, "GET", "/api/v3/aggTrades", &[("symbol", "NOPEUSDT")], false).await;
    assert_eq!(unknown.body, json!({"code": -1121, "msg": "Invalid symbol."}));
    for (path, weight) in [("/api/v3/trades", 25), ("/api/v3/historicalTrades", 25), ("/api/v3/aggTrades", 4)] {
        let before = call(&sb, "GET", "/api/v3/ping", &[], false).await.weight.unwrap();
        let after = call(&sb, "GET", path, &[("symbol", "BTCUSDT")], false).await.weight.unwrap();
        assert_eq!(after - before, weight, "{path}");
    }

    // REST klines carry the same statistics as the stream once the bar closes.
    sb.market.step(10);
    let closed =
        next_matching(&mut ws, "a closed kline", |v| v["stream"] == "btcusdt@kline_1m" && v["data"]["k"]["x"] == true)
            .await;
    let closed = &closed["data"]["k"];
    let kl =
        call(&sb, "GET", "/api/v3/klines", &[("symbol", "BTCUSDT"), ("interval", "1m"), ("limit", "3")], false).await;
    let row =
        kl.body.as_array().unwrap().iter().find(|r| r[0] == closed["t"]).cloned().expect("the closed bar over REST");
    assert_eq!(
        (row[5].clone(), row[7].clone(), row[8].clone(), row[9].clone(), row[10].clone()),
        (closed["v"].clone(), closed["q"].clone(), closed["n"].clone(), closed["V"].clone(), closed["Q"].clone())
    );
    let five =
        call(&sb, "GET", "/api/v3/klines", &[("symbol", "BTCUSDT"), ("interval", "5m"), ("limit", "2")], false).await;
    for r in five.body.as_array().unwrap() {
        assert!(r[8].as_u64().unwrap() > 0 && dec(&r[9]) > Decimal::ZERO, "5m bars sum their minutes' trades: {r}");
    }

    if let Some(dir) = fixtures {
        assert_shape(&t1, &fixture(&dir, "ws_trade.json"), "trade");
        assert_shape(&a1, &fixture(&dir, "ws_aggTrade.json"), "aggTrade");
        assert_shape(
            &json!({"e": "kline", "E": 1, "s": "BTCUSDT", "k": closed}),
            &fixture(&dir, "ws_kline.json"),
            "kline",
        );
        assert_shape(&Value::Array(recent), &fixture(&dir, "rest_trades.json"), "trades");
        assert_shape(&hist.body, &fixture(&dir, "rest_trades.json"), "historicalTrades");
        assert_shape(&agg.body, &fixture(&dir, "rest_aggTrades.json"), "aggTrades");
        assert_shape(&kl.body, &fixture(&dir, "rest_klines.json"), "klines");
    }
    sb.shutdown().await;
}

type Book = BTreeMap<Decimal, Decimal>;

fn set_levels(book: &mut Book, levels: &Value) {
    for l in levels.as_array().unwrap() {
        let (p, q) = (dec(&l[0]), dec(&l[1]));
        if q.is_zero() {
            book.remove(&p);
        } else {
            book.insert(p, q);
        }
    }
}

fn book_of(levels: &Value) -> Book {
    let mut b = Book::new();
    set_levels(&mut b, levels);
    b
}

/// web-socket-streams.md "How to manage a local order book correctly", step
/// by step, on a raw `<stream>` connection while the market moves at demo
/// speed and an account's resting order joins the book; then, with the
/// market paused, the local book must equal a fresh REST snapshot at the
/// same update id.
async fn run_local_book_procedure(stream: &str) {
    let sb = start(SandboxConfig::demo()).await;
    let mut ws = connect(&sb, &format!("/ws/btcusdt@{stream}")).await;
    // 1-2. Open the stream, buffer events, note the first U.
    let mut buffered = vec![next_json(&mut ws).await];
    let first_u = id(&buffered[0]["U"]);
    // 3-4. Snapshot until it is not older than the first event.
    let snapshot = loop {
        let s = call(&sb, "GET", "/api/v3/depth", &[("symbol", "BTCUSDT"), ("limit", "5000")], false).await.body;
        if id(&s["lastUpdateId"]) >= first_u {
            break s;
        }
        buffered.push(next_json(&mut ws).await);
    };
    let last_update_id = id(&snapshot["lastUpdateId"]);
    // 5. Drop what the snapshot has; the first event left straddles it.
    buffered.retain(|e| id(&e["u"]) > last_update_id);
    if buffered.is_empty() {
        buffered.push(next_json(&mut ws).await);
    }
    let (u0, uu0) = (id(&buffered[0]["U"]), id(&buffered[0]["u"]));
    assert!(u0 <= last_update_id + 1 && last_update_id < uu0, "first event [{u0};{uu0}] straddles {last_update_id}");
    // 6. The book is the snapshot.
    let (mut bids, mut asks) = (book_of(&snapshot["bids"]), book_of(&snapshot["asks"]));
    let mut book_id = last_update_id;
    let apply = |e: &Value, bids: &mut Book, asks: &mut Book, book_id: &mut u64| {
        assert_eq!(e["e"], "depthUpdate");
        assert_eq!(e["s"], "BTCUSDT");
        let (first, last) = (id(&e["U"]), id(&e["u"]));
        if last < *book_id {
            return;
        }
        assert!(first <= *book_id + 1, "gap: event [{first};{last}] after book {book_id}");
        set_levels(bids, &e["b"]);
        set_levels(asks, &e["a"]);
        *book_id = last;
    };
    for e in &buffered {
        apply(e, &mut bids, &mut asks, &mut book_id);
    }
    // 7. Follow the moving market for a while; an account order joins the book.
    let applied_at_start = book_id;
    let (mut events, total) = (0, if stream == "depth" { 3 } else { 8 });
    while events < total {
        let e = next_json(&mut ws).await;
        assert_eq!(id(&e["U"]), book_id + 1, "U(next) == u(prev) + 1");
        apply(&e, &mut bids, &mut asks, &mut book_id);
        events += 1;
        if events == 1 {
            // Far below the touch: it rests through the test.
            let best_bid = *bids.keys().next_back().unwrap();
            let price = (best_bid - Decimal::from(2000)).round_dp(2).to_string();
            let order = [
                ("symbol", "BTCUSDT"),
                ("side", "BUY"),
                ("type", "LIMIT"),
                ("timeInForce", "GTC"),
                ("quantity", "0.01234"),
                ("price", &price),
            ];
            let r = call(&sb, "POST", "/api/v3/order", &order, true).await;
            assert_eq!(r.status, 200, "{}", r.body);
        }
    }
    assert!(book_id > applied_at_start, "the book moved");
    // The market stops: the local book reaches the snapshot's id and equals it.
    sb.market.pause();
    let fresh = call(&sb, "GET", "/api/v3/depth", &[("symbol", "BTCUSDT"), ("limit", "5000")], false).await.body;
    let target = id(&fresh["lastUpdateId"]);
    while book_id < target {
        let e = next_json(&mut ws).await;
        assert_eq!(id(&e["U"]), book_id + 1, "no gap");
        apply(&e, &mut bids, &mut asks, &mut book_id);
    }
    assert_eq!(book_id, target, "the stream reaches the snapshot's update id exactly");
    assert_eq!(bids, book_of(&fresh["bids"]), "bids at update {target}");
    assert_eq!(asks, book_of(&fresh["asks"]), "asks at update {target}");
    assert!(bids.values().any(|q| *q == "0.01234".parse().unwrap()), "the account's resting order shows in the book");
    sb.shutdown().await;
}

#[tokio::test]
async fn the_documented_local_order_book_procedure_works_on_depth_100ms() {
    run_local_book_procedure("depth@100ms").await;
}

#[tokio::test]
async fn the_documented_local_order_book_procedure_works_on_depth_1000ms() {
    run_local_book_procedure("depth").await;
}

#[tokio::test]
async fn partial_depth_book_ticker_and_tickers_agree_with_rest() {
    let fixtures = keel_testkit::fixtures("binance");
    let sb = start(SandboxConfig::demo()).await;
    sb.market.pause();
    sb.market.step(25);
    let streams = [
        "btcusdt@depth5@100ms",
        "btcusdt@depth10",
        "btcusdt@ticker",
        "btcusdt@miniTicker",
        "!miniTicker@arr",
        "btcusdt@avgPrice",
        "btcusdt@depth@100ms",
        "btcusdt@bookTicker",
    ];
    let mut ws = connect(&sb, &format!("/stream?streams={}", streams.join("/"))).await;
    // With the market paused the book and statistics hold still.
    let depth = call(&sb, "GET", "/api/v3/depth", &[("symbol", "BTCUSDT"), ("limit", "20")], false).await.body;
    let last_id = depth["lastUpdateId"].clone();
    let p5 = next_matching(&mut ws, "depth5", |v| {
        v["stream"] == "btcusdt@depth5@100ms" && v["data"]["lastUpdateId"] == last_id
    })
    .await["data"]
        .clone();
    assert_eq!(p5["bids"], json!(depth["bids"].as_array().unwrap()[..5]));
    assert_eq!(p5["asks"], json!(depth["asks"].as_array().unwrap()[..5]));
    let p10 =
        next_matching(&mut ws, "depth10", |v| v["stream"] == "btcusdt@depth10" && v["data"]["lastUpdateId"] == last_id)
            .await["data"]
            .clone();
    assert_eq!(p10["bids"].as_array().unwrap().len(), 6, "the touch and 5 synthetic levels (depth_levels)");
    let ticker = next_on(&mut ws, "btcusdt@ticker").await;
    let mini = next_on(&mut ws, "btcusdt@miniTicker").await;
    let all = next_on(&mut ws, "!miniTicker@arr").await;
    let avg = next_on(&mut ws, "btcusdt@avgPrice").await;
    let rest = call(&sb, "GET", "/api/v3/ticker/24hr", &[("symbol", "BTCUSDT")], false).await.body;
    let rest_avg = call(&sb, "GET", "/api/v3/avgPrice", &[("symbol", "BTCUSDT")], false).await.body;
    let book = call(&sb, "GET", "/api/v3/ticker/bookTicker", &[("symbol", "BTCUSDT")], false).await.body;
    let price = call(&sb, "GET", "/api/v3/ticker/price", &[("symbol", "BTCUSDT")], false).await.body;
    let pairs = [
        ("c", "lastPrice"),
        ("Q", "lastQty"),
        ("o", "openPrice"),
        ("h", "highPrice"),
        ("l", "lowPrice"),
        ("v", "volume"),
        ("q", "quoteVolume"),
        ("p", "priceChange"),
        ("P", "priceChangePercent"),
        ("w", "weightedAvgPrice"),
        ("x", "prevClosePrice"),
        ("b", "bidPrice"),
        ("B", "bidQty"),
        ("a", "askPrice"),
        ("A", "askQty"),
        ("F", "firstId"),
        ("L", "lastId"),
        ("n", "count"),
    ];
    for (ws_key, rest_key) in pairs {
        assert_eq!(ticker[ws_key], rest[rest_key], "{ws_key} vs {rest_key}");
    }
    assert_eq!(id(&rest["count"]), id(&rest["lastId"]) - id(&rest["firstId"]) + 1, "contiguous trade ids: {rest}");
    assert!((rest["closeTime"].as_i64().unwrap() - now_ms()).abs() < 5_000, "the window ends now on the server clock");
    assert_eq!(price["price"], rest["lastPrice"]);
    assert_eq!(
        (book["bidPrice"].clone(), book["askPrice"].clone()),
        (depth["bids"][0][0].clone(), depth["asks"][0][0].clone())
    );
    for k in ["c", "o", "h", "l", "v", "q"] {
        assert_eq!(mini[k], ticker[k], "miniTicker {k}");
    }
    assert_eq!(all.as_array().unwrap().iter().find(|m| m["s"] == "BTCUSDT"), Some(&mini));
    assert_eq!(all.as_array().unwrap().len(), 2, "every symbol");
    assert_eq!(
        (avg["w"].clone(), avg["T"].clone(), avg["i"].clone()),
        (rest_avg["price"].clone(), rest_avg["closeTime"].clone(), json!("5m"))
    );

    // An order inside the spread becomes the best bid: bookTicker, REST and
    // the diff stream say so without waiting for a tick.
    let (bid, ask) = (dec(&depth["bids"][0][0]), dec(&depth["asks"][0][0]));
    assert!(ask - bid > Decimal::new(1, 2), "a spread wider than a tick");
    let inside = (bid + Decimal::new(1, 2)).to_string();
    let order = [
        ("symbol", "BTCUSDT"),
        ("side", "BUY"),
        ("type", "LIMIT"),
        ("timeInForce", "GTC"),
        ("quantity", "0.002"),
        ("price", &inside),
    ];
    assert_eq!(call(&sb, "POST", "/api/v3/order", &order, true).await.status, 200);
    let inside_d8 = {
        let mut d: Decimal = inside.parse().unwrap();
        d.rescale(8);
        d.to_string()
    };
    let has_order = |v: &Value| {
        v["b"].as_array().is_some_and(|b| b.iter().any(|l| l[0] == inside_d8.as_str() && l[1] == "0.00200000"))
    };
    let diff = next_matching(&mut ws, "depthUpdate", |v| v["stream"] == "btcusdt@depth@100ms" && has_order(&v["data"]))
        .await["data"]
        .clone();
    let bt = next_matching(&mut ws, "bookTicker", |v| v["stream"] == "btcusdt@bookTicker").await["data"].clone();
    assert_eq!(
        (bt["b"].clone(), bt["B"].clone(), bt["u"].clone()),
        (json!(inside_d8), json!("0.00200000"), diff["u"].clone()),
        "{bt}"
    );
    let book = call(&sb, "GET", "/api/v3/ticker/bookTicker", &[("symbol", "BTCUSDT")], false).await.body;
    assert_eq!((book["bidPrice"].clone(), book["bidQty"].clone()), (bt["b"].clone(), bt["B"].clone()));

    if let Some(dir) = fixtures {
        assert_shape(&depth, &fixture(&dir, "rest_depth.json"), "depth");
        assert_shape(&p5, &fixture(&dir, "ws_partial_depth.json"), "partial depth");
        assert_shape(
            &json!({"stream": "btcusdt@depth5@100ms", "data": p5}),
            &fixture(&dir, "ws_combined_partial_depth.json"),
            "combined partial",
        );
        assert_shape(&diff, &fixture(&dir, "ws_depthUpdate.json"), "depthUpdate");
        assert_shape(&bt, &fixture(&dir, "ws_bookTicker.json"), "bookTicker");
        assert_shape(&ticker, &fixture(&dir, "ws_ticker_24hr.json"), "24hrTicker");
        assert_shape(&mini, &fixture(&dir, "ws_miniTicker.json"), "24hrMiniTicker");
        assert_shape(&avg, &fixture(&dir, "ws_avgPrice.json"), "avgPrice");
        assert_shape(&rest, &fixture(&dir, "rest_ticker_24hr_full.json"), "ticker/24hr");
        assert_shape(&rest_avg, &fixture(&dir, "rest_avgPrice.json"), "avgPrice");
        assert_shape(&book, &fixture(&dir, "rest_ticker_bookTicker.json"), "ticker/bookTicker");
        assert_shape(&price, &fixture(&dir, "rest_ticker_price.json"), "ticker/price");
    }
    sb.shutdown().await;
}

#[tokio::test]
async fn stream_control_messages_answer_as_binance_does() {
    let fixtures = keel_testkit::fixtures("binance");
    let sb = start(SandboxConfig::demo()).await;
    let mut ws = connect(&sb, "/ws").await;
    let send = |v: &str| Message::Text(v.to_string().into());
    struct Case {
        send: &'static str,
        reply: Value,
    }
    let err = |code: i64, msg: &str, id: Value| json!({"error": {"code": code, "msg": msg}, "id": id});
    let cases = [
        Case { send: "{\"method\":", reply: err(3, "Invalid JSON: EOF while parsing a value at line 1 column 10", Value::Null) },
        Case {
            send: r#"{"method":"SUBSCRIBE","params":["btcusdt@trade"],"id":true}"#,
            reply: err(2, "Invalid request: request ID must be an unsigned integer", Value::Null),
        },
        Case { send: r#"{"method":"GET_PROPERTY","params":["colour"],"id":4}"#, reply: err(0, "Unknown property", json!(4)) },
        Case {
            send: r#"{"method":"SUBSCRIBE","params":["btcusdt@ticker_1h"],"id":5}"#,
            reply: err(2, "Invalid request: invalid stream ('btcusdt@ticker_1h' is documented by Binance but not served by the Keel sandbox)", json!(5)),
        },
        // Well-formed names of no symbol or type are acknowledged, as Binance does.
        Case { send: r#"{"method":"SUBSCRIBE","params":["nopeusdt@trade","btcusdt@aggTrade"],"id":6}"#, reply: json!({"result": null, "id": 6}) },
        Case { send: r#"{"method":"SET_PROPERTY","params":["combined",true],"id":7}"#, reply: json!({"result": null, "id": 7}) },
    ];
    for c in cases {
        ws.send(send(c.send)).await.unwrap();
        let got = next_matching(&mut ws, "a reply", |v| v.get("e").is_none() && v.get("stream").is_none()).await;
        assert_eq!(got, c.reply, "{}", c.send);
    }
    // Combined payloads from now on.
    let v = next_matching(&mut ws, "a wrapped aggTrade", |v| v.get("stream").is_some()).await;
    assert_eq!((v["stream"].clone(), v["data"]["e"].clone()), (json!("btcusdt@aggTrade"), json!("aggTrade")));
    ws.send(send(r#"{"method":"LIST_SUBSCRIPTIONS","id":8}"#)).await.unwrap();
    let list = next_matching(&mut ws, "the list", |v| v["id"] == 8).await;
    assert_eq!(list, json!({"result": ["nopeusdt@trade", "btcusdt@aggTrade"], "id": 8}));
    if let Some(dir) = &fixtures {
        assert_shape(&json!({"result": null, "id": 1}), &fixture(dir, "ws_subscribe_response.json"), "subscribe");
        assert_shape(&list, &fixture(dir, "ws_list_subscriptions_response.json"), "list");
    }
    // A malformed stream name is refused and the connection closed.
    ws.send(send(r#"{"method":"SUBSCRIBE","params":["@@@lixo###"],"id":9}"#)).await.unwrap();
    let refused = next_matching(&mut ws, "the refusal", |v| v["id"] == 9).await;
    assert_eq!(refused, err(2, "Invalid request: invalid stream", json!(9)));
    let closed = tokio::time::timeout(wire::WAIT, async {
        use futures_util::StreamExt;
        while let Some(m) = ws.next().await {
            if matches!(m, Ok(Message::Close(_)) | Err(_)) {
                return true;
            }
        }
        true
    })
    .await;
    assert_eq!(closed, Ok(true), "the connection closes");
    sb.shutdown().await;
}
