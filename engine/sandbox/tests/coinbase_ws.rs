//! The Coinbase-protocol WebSocket endpoints over real loopback
//! connections (tokio-tungstenite), with JWTs signed here by hand (this
//! crate cannot use the adapter): subscribe and acknowledgement, heartbeats,
//! a level-2 book rebuilt from `l2_data` that matches REST `product_book`,
//! one `sequence_num` per connection across channels, the `user` channel's
//! cumulative order state, refused JWTs, and the injected faults (a skipped
//! sequence number, a dropped connection, the subscribe deadline and idle
//! close).

use std::collections::BTreeMap;
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use futures_util::{SinkExt, StreamExt};
use rust_decimal::Decimal;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

use keel_sandbox::{Sandbox, SandboxConfig, SandboxHandle};

type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

const PRODUCT: &str = "BTC-USDT";
const SYMBOL: &str = "BTCUSDT";

fn now_s() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}

/// An ES256 token (raw r‖s) for `kid`; `uri` for REST, none for WebSocket.
fn token(key: &p256::ecdsa::SigningKey, kid: &str, uri: Option<String>, nbf: i64) -> String {
    use p256::ecdsa::signature::Signer as _;
    let header = json!({"alg": "ES256", "typ": "JWT", "kid": kid, "nonce": "ab".repeat(32)});
    let mut claims = json!({"sub": kid, "iss": "cdp", "nbf": nbf, "exp": nbf + 120});
    if let Some(u) = uri {
        claims["uri"] = json!(u);
    }
    let input =
        format!("{}.{}", URL_SAFE_NO_PAD.encode(header.to_string()), URL_SAFE_NO_PAD.encode(claims.to_string()));
    let sig: p256::ecdsa::Signature = key.sign(input.as_bytes());
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig.to_bytes()))
}

struct Env {
    sb: SandboxHandle,
    key: p256::ecdsa::SigningKey,
    kid: String,
}

impl Env {
    async fn start(cfg: SandboxConfig) -> Self {
        let sb = Sandbox::start(SandboxConfig { generate_coinbase_key: true, ..cfg }).await.expect("starts");
        let pem = sb.coinbase_private_key_pem.clone().expect("a test key");
        let key = p256::ecdsa::SigningKey::from(p256::SecretKey::from_sec1_pem(&pem).expect("an EC key"));
        let kid = sb.coinbase_key_name.clone().expect("its name");
        Self { sb, key, kid }
    }

    fn ws_jwt(&self) -> String {
        token(&self.key, &self.kid, None, now_s())
    }

    async fn rest(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let http = reqwest::Client::new();
        let url = format!("{}{path}", self.sb.coinbase_rest_url);
        let uri = format!("{method} {}{}", self.sb.addr, path.split('?').next().unwrap_or(path));
        let jwt = token(&self.key, &self.kid, Some(uri), now_s());
        let req = if method == "POST" { http.post(url) } else { http.get(url) };
        let req = match body {
            Some(b) => req.json(&b),
            None => req,
        };
        let resp = req.bearer_auth(jwt).send().await.expect("answers");
        assert_eq!(resp.status().as_u16(), 200, "{method} {path}");
        resp.json().await.expect("JSON")
    }

    async fn limit_order(&self, client_id: &str, side: &str, size: &str, price: &str) -> String {
        let body = json!({"client_order_id": client_id, "product_id": PRODUCT, "side": side,
                          "order_configuration": {"limit_limit_gtc": {"base_size": size, "limit_price": price}}});
        let v = self.rest("POST", "/api/v3/brokerage/orders", Some(body)).await;
        assert_eq!(v["success"], true, "{v}");
        v["success_response"]["order_id"].as_str().expect("an order id").to_string()
    }

    async fn cancel(&self, order_id: &str) {
        let v =
            self.rest("POST", "/api/v3/brokerage/orders/batch_cancel", Some(json!({"order_ids": [order_id]}))).await;
        assert_eq!(v["results"][0]["success"], true, "{v}");
    }

    /// REST `product_book` as (bids, offers).
    async fn product_book(&self) -> (BTreeMap<Decimal, Decimal>, BTreeMap<Decimal, Decimal>) {
        let v = self.rest("GET", &format!("/api/v3/brokerage/product_book?product_id={PRODUCT}&limit=500"), None).await;
        let side = |k: &str| {
            v["pricebook"][k]
                .as_array()
                .expect("levels")
                .iter()
                .map(|l| (dec(&l["price"]), dec(&l["size"])))
                .collect::<BTreeMap<_, _>>()
        };
        (side("bids"), side("asks"))
    }

    async fn best_bid(&self) -> Decimal {
        let (bids, _) = self.product_book().await;
        *bids.keys().next_back().expect("a bid")
    }
}

fn dec(v: &Value) -> Decimal {
    v.as_str().expect("a decimal string").parse().expect("a decimal")
}

async fn connect(url: &str) -> Ws {
    tokio_tungstenite::connect_async(url).await.expect("connects").0
}

async fn send(ws: &mut Ws, v: Value) {
    ws.send(Message::Text(v.to_string().into())).await.expect("sends");
}

/// The next text frame as JSON (10 s at most); `None` once the connection ends.
async fn next(ws: &mut Ws) -> Option<Value> {
    loop {
        match tokio::time::timeout(Duration::from_secs(10), ws.next()).await.expect("a frame within 10 s") {
            Some(Ok(Message::Text(t))) => return Some(serde_json::from_str(&t).expect("JSON")),
            Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return None,
            Some(Ok(_)) => {}
        }
    }
}

/// The next message of `channel` (other channels' are skipped, but their
/// sequence numbers are checked to run on by one from `seq`).
async fn next_on(ws: &mut Ws, channel: &str, seq: &mut Option<u64>) -> Value {
    loop {
        let v = next(ws).await.expect("the connection stays open");
        let n = v["sequence_num"].as_u64().unwrap_or_else(|| panic!("a sequence_num: {v}"));
        if let Some(prev) = *seq {
            assert_eq!(n, prev + 1, "sequence_num runs on by one: {v}");
        }
        *seq = Some(n);
        if v["channel"] == channel {
            return v;
        }
    }
}

type Book = (BTreeMap<Decimal, Decimal>, BTreeMap<Decimal, Decimal>);

fn apply(book: &mut Book, event: &Value) {
    if event["type"] == "snapshot" {
        *book = Book::default();
    }
    for u in event["updates"].as_array().expect("updates") {
        let side = if u["side"] == "bid" { &mut book.0 } else { &mut book.1 };
        assert!(u["side"] == "bid" || u["side"] == "offer", "{u}");
        let (p, q) = (dec(&u["price_level"]), dec(&u["new_quantity"]));
        if q.is_zero() {
            side.remove(&p);
        } else {
            side.insert(p, q);
        }
    }
}

#[tokio::test]
async fn heartbeats_are_acknowledged_then_arrive_each_second_with_a_rising_counter() {
    let env = Env::start(SandboxConfig::default()).await;
    let mut ws = connect(&env.sb.coinbase_ws_market_url).await;
    send(&mut ws, json!({"type": "subscribe", "product_ids": [], "channel": "heartbeats"})).await;
    let ack = next(&mut ws).await.expect("an ack");
    assert_eq!(ack["channel"], "subscriptions", "{ack}");
    assert_eq!(ack["sequence_num"], 0, "{ack}");
    assert_eq!(ack["client_id"], "", "the SDK's typed path needs client_id");
    assert_eq!(ack["events"][0]["subscriptions"], json!({"heartbeats": ["heartbeats"]}));
    let mut seq = Some(0);
    let mut times = Vec::new();
    for want in 1..=3 {
        let hb = next_on(&mut ws, "heartbeats", &mut seq).await;
        assert_eq!(hb["events"][0]["heartbeat_counter"], want, "{hb}");
        assert!(hb["events"][0]["current_time"].as_str().is_some_and(|t| t.contains(" +0000 UTC m=+")), "{hb}");
        let ts =
            chrono::DateTime::parse_from_rfc3339(hb["timestamp"].as_str().expect("a timestamp")).expect("RFC 3339");
        times.push(ts);
    }
    for w in times.windows(2) {
        let gap = (w[1] - w[0]).num_milliseconds();
        // A second apart on an idle machine; the margin is for a busy one
        // (a burst of missed beats would be milliseconds apart).
        assert!(gap >= 500, "one heartbeat a second, not a burst: {gap} ms");
    }
    env.sb.shutdown().await;
}

#[tokio::test]
async fn a_level2_book_rebuilt_from_snapshot_and_updates_matches_product_book() {
    let env = Env::start(SandboxConfig::default()).await;
    env.sb.market.pause();
    let mut ws = connect(&env.sb.coinbase_ws_market_url).await;
    send(&mut ws, json!({"type": "subscribe", "product_ids": [PRODUCT], "channel": "level2", "jwt": env.ws_jwt()}))
        .await;
    let mut seq = None;
    let snap = next_on(&mut ws, "l2_data", &mut seq).await;
    assert_eq!(snap["sequence_num"], 0, "the snapshot comes first, before the ack");
    let ev = &snap["events"][0];
    assert_eq!((ev["type"].as_str(), ev["product_id"].as_str()), (Some("snapshot"), Some(PRODUCT)));
    let mut book = Book::default();
    apply(&mut book, ev);
    assert_eq!(book, env.product_book().await, "the snapshot is the whole book");
    let ack = next_on(&mut ws, "subscriptions", &mut seq).await;
    assert_eq!(ack["events"][0]["subscriptions"], json!({"level2": [PRODUCT]}));

    // A new level from a resting order, then its removal.
    let price = env.best_bid().await - Decimal::ONE;
    let id = env.limit_order("l2-level", "BUY", "0.002", &price.to_string()).await;
    let up = next_on(&mut ws, "l2_data", &mut seq).await;
    let ev = &up["events"][0];
    assert_eq!(ev["type"], "update", "{up}");
    apply(&mut book, ev);
    assert_eq!(book.0.get(&price), Some(&"0.002".parse().unwrap()), "new_quantity is the level's size: {up}");
    assert_eq!(book, env.product_book().await);
    env.cancel(&id).await;
    // Queued cancels are carried out by the market's next step while it is held.
    env.sb.market.step(1);
    // The step's tick and the cancel may come as one update or two.
    while book.0.contains_key(&price) {
        let up = next_on(&mut ws, "l2_data", &mut seq).await;
        assert_eq!(up["events"][0]["type"], "update", "{up}");
        apply(&mut book, &up["events"][0]);
    }
    assert_eq!(book, env.product_book().await, "new_quantity 0 removed the level; the rest still matches");
    env.sb.shutdown().await;
}

#[tokio::test]
async fn sequence_num_runs_on_by_one_across_every_channel_of_a_connection() {
    let env = Env::start(SandboxConfig::demo()).await;
    let mut ws = connect(&env.sb.coinbase_ws_market_url).await;
    for channel in ["heartbeats", "level2", "ticker", "ticker_batch", "market_trades", "candles", "status"] {
        send(&mut ws, json!({"type": "subscribe", "product_ids": [PRODUCT], "channel": channel, "jwt": env.ws_jwt()}))
            .await;
    }
    let mut seen = BTreeMap::new();
    let mut prev: Option<u64> = None;
    while seen.len() < 8 {
        let v = next(&mut ws).await.expect("open");
        let n = v["sequence_num"].as_u64().unwrap_or_else(|| panic!("{v}"));
        assert_eq!(n, prev.map_or(0, |p| p + 1), "{v}");
        prev = Some(n);
        *seen.entry(v["channel"].as_str().expect("a channel").to_string()).or_insert(0) += 1;
        assert!(n < 2_000, "every channel within 2000 messages: {seen:?}");
    }
    let want =
        ["candles", "heartbeats", "l2_data", "market_trades", "status", "subscriptions", "ticker", "ticker_batch"];
    assert_eq!(seen.keys().map(String::as_str).collect::<Vec<_>>(), want);
    env.sb.shutdown().await;
}

#[tokio::test]
async fn the_user_channel_shows_cumulative_order_state_from_snapshot_to_fill() {
    let env = Env::start(SandboxConfig::default()).await;
    env.sb.market.pause();
    // An order resting before the subscribe is in the snapshot.
    let bid = env.best_bid().await;
    let before = env.limit_order("rests-before", "BUY", "0.001", &(bid - Decimal::TEN).to_string()).await;
    let mut ws = connect(&env.sb.coinbase_ws_user_url).await;
    send(&mut ws, json!({"type": "subscribe", "channel": "user", "jwt": env.ws_jwt()})).await;
    let mut seq = None;
    let snap = next_on(&mut ws, "user", &mut seq).await;
    let ev = &snap["events"][0];
    assert_eq!(ev["type"], "snapshot");
    let orders = ev["orders"].as_array().expect("orders");
    assert_eq!(orders.iter().map(|o| o["order_id"].as_str()).collect::<Vec<_>>(), [Some(before.as_str())]);
    let ack = next_on(&mut ws, "subscriptions", &mut seq).await;
    let subs = &ack["events"][0]["subscriptions"];
    assert_eq!(subs["user"].as_array().map(Vec::len), Some(1), "keyed by the user's UUID: {ack}");

    // A new resting order: OPEN with nothing filled.
    let price = bid - Decimal::ONE;
    let id = env.limit_order("user-fill", "BUY", "0.002", &price.to_string()).await;
    let open = next_on(&mut ws, "user", &mut seq).await;
    let o = &open["events"][0]["orders"][0];
    assert_eq!(open["events"][0]["type"], "update");
    assert_eq!((o["order_id"].as_str(), o["client_order_id"].as_str()), (Some(id.as_str()), Some("user-fill")));
    assert_eq!(
        (o["status"].as_str(), o["order_side"].as_str(), o["order_type"].as_str()),
        (Some("OPEN"), Some("BUY"), Some("Limit"))
    );
    assert_eq!(dec(&o["cumulative_quantity"]), Decimal::ZERO);
    assert_eq!(dec(&o["leaves_quantity"]), "0.002".parse().unwrap());
    assert_eq!(o["number_of_fills"], "0");
    assert_eq!(o["post_only"], "false", "a string, as documented");

    // The market falls through the order: its fill raises cumulative_quantity.
    env.sb.market.set_price(SYMBOL, price - Decimal::TEN);
    env.sb.market.step(1);
    let filled = loop {
        let v = next_on(&mut ws, "user", &mut seq).await;
        let o = v["events"][0]["orders"][0].clone();
        if o["order_id"] == id.as_str() && o["status"] == "FILLED" {
            break o;
        }
    };
    assert_eq!(dec(&filled["cumulative_quantity"]), "0.002".parse().unwrap(), "{filled}");
    assert_eq!(dec(&filled["leaves_quantity"]), Decimal::ZERO);
    assert_eq!(filled["number_of_fills"], "1");
    assert!(dec(&filled["avg_price"]) > Decimal::ZERO && dec(&filled["avg_price"]) <= price, "{filled}");
    assert!(dec(&filled["total_fees"]) > Decimal::ZERO, "fees in quote: {filled}");
    // The same state REST reports.
    let rest = env.rest("GET", &format!("/api/v3/brokerage/orders/historical/{id}"), None).await;
    assert_eq!(rest["order"]["filled_size"], filled["cumulative_quantity"]);
    assert_eq!(rest["order"]["total_fees"], filled["total_fees"]);

    // A cancel is queued first (no execution happens), then carried out.
    env.cancel(&before).await;
    for want in ["CANCEL_QUEUED", "CANCELLED"] {
        let v = next_on(&mut ws, "user", &mut seq).await;
        let o = &v["events"][0]["orders"][0];
        assert_eq!((o["order_id"].as_str(), o["status"].as_str()), (Some(before.as_str()), Some(want)), "{v}");
        env.sb.market.step(1);
    }
    env.sb.shutdown().await;
}

#[tokio::test]
async fn subscribes_without_a_valid_jwt_or_with_a_wrong_channel_get_the_documented_error() {
    let env = Env::start(SandboxConfig::default()).await;
    let stranger = p256::ecdsa::SigningKey::from(p256::SecretKey::from_slice(&[7u8; 32]).expect("a key"));
    let cases = [
        ("user without a JWT", &env.sb.coinbase_ws_user_url, json!({"type": "subscribe", "channel": "user"})),
        (
            "user with a wrong key",
            &env.sb.coinbase_ws_user_url,
            json!({"type": "subscribe", "channel": "user", "jwt": token(&stranger, &env.kid, None, now_s())}),
        ),
        (
            "user with an expired JWT",
            &env.sb.coinbase_ws_market_url,
            json!({"type": "subscribe", "channel": "user", "jwt": token(&env.key, &env.kid, None, now_s() - 600)}),
        ),
        (
            "a market channel with a bad JWT",
            &env.sb.coinbase_ws_market_url,
            json!({"type": "subscribe", "channel": "ticker", "product_ids": [PRODUCT], "jwt": "a.b.c"}),
        ),
        (
            "heartbeat, not heartbeats",
            &env.sb.coinbase_ws_market_url,
            json!({"type": "subscribe", "channel": "heartbeat"}),
        ),
    ];
    for (name, url, msg) in cases {
        let mut ws = connect(url).await;
        send(&mut ws, msg).await;
        let v = next(&mut ws).await.expect("an answer");
        assert_eq!(v, json!({"type": "error", "message": "authentication failure"}), "{name}");
    }
    // The user endpoint serves no market data; an unknown product is named.
    let mut ws = connect(&env.sb.coinbase_ws_user_url).await;
    send(&mut ws, json!({"type": "subscribe", "channel": "ticker", "product_ids": [PRODUCT]})).await;
    let v = next(&mut ws).await.expect("an answer");
    assert_eq!(v["type"], "error", "{v}");
    let mut ws = connect(&env.sb.coinbase_ws_market_url).await;
    send(&mut ws, json!({"type": "subscribe", "channel": "ticker", "product_ids": ["NOPE-USD"]})).await;
    let v = next(&mut ws).await.expect("an answer");
    assert!(v["type"] == "error" && v["message"].as_str().is_some_and(|m| m.contains("NOPE-USD")), "{v}");
    // A valid JWT on the same user endpoint works.
    send(&mut ws, json!({"type": "subscribe", "channel": "user", "jwt": env.ws_jwt()})).await;
    assert_eq!(next(&mut ws).await.expect("a snapshot")["channel"], "user");
    env.sb.shutdown().await;
}

#[tokio::test]
async fn an_injected_level2_gap_skips_a_sequence_num_and_dropped_connections_end() {
    let env = Env::start(SandboxConfig::default()).await;
    env.sb.market.pause();
    let mut ws = connect(&env.sb.coinbase_ws_market_url).await;
    send(&mut ws, json!({"type": "subscribe", "product_ids": [PRODUCT], "channel": "level2"})).await;
    let mut seq = None;
    next_on(&mut ws, "l2_data", &mut seq).await;
    let ack = next_on(&mut ws, "subscriptions", &mut seq).await;
    let last = ack["sequence_num"].as_u64().expect("a number");
    env.sb.faults.skip_coinbase_l2_sequence(1);
    let price = env.best_bid().await - Decimal::ONE;
    env.limit_order("gap", "BUY", "0.001", &price.to_string()).await;
    let up = next(&mut ws).await.expect("an update");
    assert_eq!(up["channel"], "l2_data", "{up}");
    assert_eq!(up["sequence_num"].as_u64(), Some(last + 2), "one number skipped: {up}");

    env.sb.faults.drop_connections();
    assert!(next(&mut ws).await.is_none(), "the connection is dropped");
    env.sb.shutdown().await;
}

#[tokio::test]
async fn connections_without_a_subscribe_or_silent_too_long_are_closed_unless_heartbeats_run() {
    let cfg = SandboxConfig {
        coinbase_ws_subscribe_within_ms: 300,
        coinbase_ws_idle_close_ms: 1_500,
        ..SandboxConfig::default()
    };
    let env = Env::start(cfg).await;
    env.sb.market.pause();
    let mut silent = connect(&env.sb.coinbase_ws_market_url).await;
    assert!(next(&mut silent).await.is_none(), "no subscribe: closed");

    // `status` sends its snapshot, then nothing: closed after the idle time.
    let mut idle = connect(&env.sb.coinbase_ws_market_url).await;
    send(&mut idle, json!({"type": "subscribe", "channel": "status"})).await;
    assert_eq!(next(&mut idle).await.expect("a snapshot")["channel"], "status");
    assert_eq!(next(&mut idle).await.expect("the ack")["channel"], "subscriptions");
    assert!(next(&mut idle).await.is_none(), "idle: closed");

    // With heartbeats the same subscription outlives the idle time.
    let mut kept = connect(&env.sb.coinbase_ws_market_url).await;
    send(&mut kept, json!({"type": "subscribe", "channel": "status"})).await;
    send(&mut kept, json!({"type": "subscribe", "channel": "heartbeats"})).await;
    let mut seq = None;
    let hb = loop {
        let v = next_on(&mut kept, "heartbeats", &mut seq).await;
        if v["events"][0]["heartbeat_counter"] == 3 {
            break v;
        }
    };
    assert_eq!(hb["channel"], "heartbeats", "open past the 1.5 s idle time");
    env.sb.shutdown().await;
}
