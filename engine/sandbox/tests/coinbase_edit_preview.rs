//! The Coinbase-protocol routes real clients need beyond create/cancel,
//! over real HTTP with JWTs signed here by hand (as `coinbase_rest.rs`
//! does): `orders/preview` (an estimate from the book, fees and balances,
//! nothing placed), `orders/edit` and `orders/edit_preview` (the resting
//! order and its hold change in the one exchange), and the `/v2/` routes
//! ccxt loads markets and balances from.

use std::time::Duration;

use futures_util::{SinkExt as _, StreamExt as _};
use tokio_tungstenite::tungstenite::Message;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use rust_decimal::Decimal;
use serde_json::{json, Value};

use keel_sandbox::{Sandbox, SandboxConfig, SandboxHandle, DEFAULT_API_KEY};

struct Client {
    sb: SandboxHandle,
    key: p256::ecdsa::SigningKey,
    kid: String,
}

impl Client {
    async fn start() -> Self {
        // The rate limits have their own test (coinbase_rest.rs); these tests ask quickly.
        let cfg = SandboxConfig { coinbase_private_per_s: 0, coinbase_public_per_s: 0, ..SandboxConfig::default() };
        let sb = Sandbox::start(SandboxConfig { generate_coinbase_key: true, ..cfg }).await.expect("starts");
        sb.market.pause();
        let pem = sb.coinbase_private_key_pem.clone().expect("a test key");
        let key = p256::ecdsa::SigningKey::from(p256::SecretKey::from_sec1_pem(&pem).expect("the default key is EC"));
        let kid = sb.coinbase_key_name.clone().expect("its name");
        Self { sb, key, kid }
    }

    /// A REST token for `method path`, or (no method) a WebSocket one, which has no `uri`.
    fn token(&self, method: &str, path: &str) -> String {
        use p256::ecdsa::signature::Signer as _;
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_secs();
        let header = json!({"alg": "ES256", "typ": "JWT", "kid": self.kid, "nonce": "cd".repeat(16)});
        let mut claims = json!({"sub": self.kid, "iss": "cdp", "nbf": now, "exp": now + 120});
        if !method.is_empty() {
            claims["uri"] = json!(format!("{method} {}{path}", self.sb.addr));
        }
        let input =
            format!("{}.{}", URL_SAFE_NO_PAD.encode(header.to_string()), URL_SAFE_NO_PAD.encode(claims.to_string()));
        let sig: p256::ecdsa::Signature = self.key.sign(input.as_bytes());
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig.to_bytes()))
    }

    /// A signed request; the status and the body (JSON, or the text as a string).
    async fn call(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let http = reqwest::Client::new();
        let url = format!("http://{}{path}", self.sb.addr);
        let req = if method == "POST" { http.post(url) } else { http.get(url) };
        let req = match body {
            Some(b) => req.json(&b),
            None => req,
        };
        let resp = req.bearer_auth(self.token(method, path.split('?').next().unwrap_or(path))).send().await.unwrap();
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
    }

    async fn post(&self, route: &str, body: Value) -> Value {
        let (status, v) = self.call("POST", &format!("/api/v3/brokerage/{route}"), Some(body)).await;
        assert_eq!(status, 200, "{route}: {v}");
        v
    }

    async fn order(&self, id: &str) -> Value {
        let (status, v) = self.call("GET", &format!("/api/v3/brokerage/orders/historical/{id}"), None).await;
        assert_eq!(status, 200, "{v}");
        v["order"].clone()
    }

    /// Best bid and ask, and the fee rates (taker, maker).
    async fn market(&self) -> (Decimal, Decimal, Decimal, Decimal) {
        let (_, book) = self.call("GET", "/api/v3/brokerage/product_book?product_id=BTC-USDT&limit=1", None).await;
        let (_, fees) = self.call("GET", "/api/v3/brokerage/transaction_summary", None).await;
        (
            d(&book["pricebook"]["bids"][0]["price"]),
            d(&book["pricebook"]["asks"][0]["price"]),
            d(&fees["fee_tier"]["taker_fee_rate"]),
            d(&fees["fee_tier"]["maker_fee_rate"]),
        )
    }

    fn usdt(&self) -> (Decimal, Decimal) {
        let b = self.sb.market.balances(DEFAULT_API_KEY).into_iter().find(|b| b.asset == "USDT").expect("USDT");
        (b.free, b.locked)
    }
}

fn d(v: &Value) -> Decimal {
    v.as_str().and_then(|s| s.parse().ok()).unwrap_or_else(|| panic!("a decimal string: {v}"))
}

fn limit(side: &str, size: &str, price: Decimal, post_only: bool) -> Value {
    json!({"product_id": "BTC-USDT", "side": side,
           "order_configuration": {"limit_limit_gtc": {"base_size": size, "limit_price": price.to_string(),
                                                       "post_only": post_only}}})
}

#[tokio::test]
async fn a_preview_is_computed_from_the_book_fees_and_balances_and_places_nothing() {
    let c = Client::start().await;
    let (bid, ask, taker, maker) = c.market().await;
    let before = c.usdt();

    // A small market buy takes the ask as a taker.
    let p = c
        .post(
            "orders/preview",
            json!({"product_id": "BTC-USDT", "side": "BUY",
                                            "order_configuration": {"market_market_ioc": {"base_size": "0.001"}}}),
        )
        .await;
    assert_eq!(p["errs"], json!([]), "{p}");
    let notional = ask * Decimal::new(1, 3);
    assert_eq!(d(&p["est_average_filled_price"]), ask);
    assert_eq!(d(&p["commission_total"]), (notional * taker).round_dp(8));
    assert_eq!(d(&p["order_total"]), notional + d(&p["commission_total"]));
    assert_eq!((d(&p["best_bid"]), d(&p["best_ask"])), (bid, ask));
    assert_eq!(d(&p["base_size"]), Decimal::new(1, 3));
    assert_eq!(p["commission_detail_total"]["total_commission"], p["commission_total"]);
    assert!(p["preview_id"].as_str().is_some_and(|s| s.len() == 36), "{p}");

    // A limit below the bid rests: a maker's commission at its own price.
    let low = (bid / Decimal::TWO).round_dp(2);
    let p = c.post("orders/preview", limit("BUY", "0.001", low, false)).await;
    assert_eq!(p["errs"], json!([]), "{p}");
    assert_eq!(d(&p["commission_total"]), (low * Decimal::new(1, 3) * maker).round_dp(8));
    assert_eq!(d(&p["slippage"]), Decimal::ZERO);

    // The refusals, each named as create-order's preview_failure_reason.
    let funds = ((before.0 * Decimal::TWO / low) / Decimal::new(1, 5)).floor() * Decimal::new(1, 5);
    let cases = [
        ("post-only across the book", limit("BUY", "0.001", ask, true), "PREVIEW_INVALID_LIMIT_PRICE_POST_ONLY"),
        ("more than the free balance", limit("BUY", &funds.to_string(), low, false), "PREVIEW_INSUFFICIENT_FUND"),
        (
            "below the minimum notional",
            limit("BUY", "0.00001", Decimal::ONE, false),
            "PREVIEW_INVALID_QUOTE_SIZE_TOO_SMALL",
        ),
        ("a size off the grid", limit("BUY", "0.0000001", low, false), "PREVIEW_INVALID_SIZE_PRECISION"),
        (
            "an unknown product",
            json!({"product_id": "NOPE-USDT", "side": "BUY",
                                      "order_configuration": {"market_market_ioc": {"base_size": "1"}}}),
            "PREVIEW_INVALID_PRODUCT_ID",
        ),
    ];
    for (name, body, reason) in cases {
        let p = c.post("orders/preview", body).await;
        assert_eq!(p["errs"], json!([reason]), "{name}: {p}");
    }
    let (status, _) = c.call("POST", "/api/v3/brokerage/orders/preview", Some(json!("not an order"))).await;
    assert_eq!(status, 400, "a body that is not an order object");

    assert!(c.sb.market.orders(DEFAULT_API_KEY, "BTCUSDT").is_empty(), "a preview places nothing");
    assert_eq!(c.usdt(), before, "and holds nothing");
    c.sb.shutdown().await;
}

#[tokio::test]
async fn an_edit_changes_the_resting_order_and_its_hold_and_refusals_name_their_reason() {
    let c = Client::start().await;
    let (bid, ask, _, _) = c.market().await;
    let low = (bid / Decimal::TWO).round_dp(2);
    let placed = c
        .post(
            "orders",
            json!({"client_order_id": "edit-me", "product_id": "BTC-USDT", "side": "BUY",
                               "order_configuration": {"limit_limit_gtc": {"base_size": "0.001",
                                                                           "limit_price": low.to_string()}}}),
        )
        .await;
    let id = placed["success_response"]["order_id"].as_str().expect("placed").to_string();
    let hold_before = c.usdt().1;

    // edit_preview: the numbers of the edited order, nothing changed.
    let lower = low - Decimal::ONE;
    let pe = c.post("orders/edit_preview", json!({"order_id": id, "price": lower.to_string(), "size": "0.002"})).await;
    assert_eq!(pe["errors"], json!([]), "{pe}");
    assert_eq!((d(&pe["base_size"]), d(&pe["quote_size"])), (Decimal::new(2, 3), lower * Decimal::new(2, 3)));
    assert_eq!(c.usdt().1, hold_before, "a preview holds nothing more");

    // The edit: the order, its hold and its history change.
    let e = c.post("orders/edit", json!({"order_id": id, "price": lower.to_string(), "size": "0.002"})).await;
    assert_eq!(e, json!({"success": true, "errors": []}));
    let o = c.order(&id).await;
    assert_eq!(o["order_configuration"]["limit_limit_gtc"]["base_size"], "0.002");
    assert_eq!(d(&o["order_configuration"]["limit_limit_gtc"]["limit_price"]), lower);
    assert_eq!(o["status"], "OPEN");
    assert_eq!(o["edit_history"].as_array().map(Vec::len), Some(1), "{o}");
    let hold = c.usdt().1;
    assert!(hold > hold_before, "twice the size at about the same price holds more: {hold_before} -> {hold}");
    assert_eq!(d(&o["outstanding_hold_amount"]), hold, "the order holds all of the account's hold");
    let core = c.sb.market.orders(DEFAULT_API_KEY, "BTCUSDT");
    assert_eq!(core.len(), 1);
    assert_eq!(core[0].qty, Decimal::new(2, 3), "the core's resting order is the edited one");

    // Only the price given (as ccxt sends it): the size is kept.
    let e = c.post("orders/edit", json!({"order_id": id, "price": low.to_string()})).await;
    assert_eq!(e["success"], true, "{e}");
    assert_eq!(c.order(&id).await["order_configuration"]["limit_limit_gtc"]["base_size"], "0.002");

    let free = c.usdt().0;
    let funds = ((free * Decimal::TWO / low) / Decimal::new(1, 5)).floor() * Decimal::new(1, 5);
    let refusal = |edit: &str, preview: &str| json!({"success": false, "errors": [{"edit_failure_reason": edit, "preview_failure_reason": preview}]});
    let none = "UNKNOWN_PREVIEW_FAILURE_REASON";
    let cases = [
        (
            "unknown order",
            json!({"order_id": "00000000-0000-0000-0000-000000000000", "price": "1", "size": "1"}),
            refusal("ORDER_NOT_FOUND", none),
        ),
        (
            "unchanged",
            json!({"order_id": id, "price": low.to_string(), "size": "0.002"}),
            refusal("EDIT_REQUEST_EQUAL_TO_ORIGINAL_REQUEST", none),
        ),
        (
            "price off the tick",
            json!({"order_id": id, "price": format!("{low}1"), "size": "0.002"}),
            refusal("INVALID_EDITED_PRICE", "PREVIEW_INVALID_PRICE_PRECISION"),
        ),
        (
            "size off the step",
            json!({"order_id": id, "price": low.to_string(), "size": "0.0000001"}),
            refusal("INVALID_EDITED_SIZE", "PREVIEW_INVALID_SIZE_PRECISION"),
        ),
        (
            "below the minimum notional",
            json!({"order_id": id, "price": "0.01", "size": "0.002"}),
            refusal("UNKNOWN_EDIT_ORDER_FAILURE_REASON", "PREVIEW_INVALID_QUOTE_SIZE_TOO_SMALL"),
        ),
        (
            "more than the balance",
            json!({"order_id": id, "price": low.to_string(), "size": funds.to_string()}),
            refusal("UNKNOWN_EDIT_ORDER_FAILURE_REASON", "PREVIEW_INSUFFICIENT_FUND"),
        ),
    ];
    for (name, body, want) in cases {
        let before = c.order(&id).await;
        assert_eq!(c.post("orders/edit", body.clone()).await, want, "{name}");
        assert_eq!(c.order(&id).await["order_configuration"], before["order_configuration"], "{name}: unchanged");
        let pe = c.post("orders/edit_preview", body).await;
        assert_eq!(pe["errors"], want["errors"], "{name} (edit_preview)");
    }

    // A marketable new price trades at once; a filled order is no longer editable.
    let e = c.post("orders/edit", json!({"order_id": id, "price": (ask + Decimal::ONE).to_string()})).await;
    assert_eq!(e["success"], true, "{e}");
    let o = c.order(&id).await;
    assert_eq!(o["status"], "FILLED", "{o}");
    assert_eq!(c.usdt().1, Decimal::ZERO, "nothing held after the fill");
    let again = c.post("orders/edit", json!({"order_id": id, "price": low.to_string()})).await;
    assert_eq!(again, refusal("ONLY_OPEN_ORDERS_CAN_BE_EDITED", none));
    c.sb.shutdown().await;
}

#[tokio::test]
async fn the_v2_routes_ccxt_reads_answer_from_the_sandbox_assets_prices_and_balances() {
    let c = Client::start().await;
    let get = |path: &'static str| async move {
        let r = reqwest::get(format!("http://{}{path}", c.sb.addr)).await.unwrap();
        let status = r.status().as_u16();
        let text = r.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
    };
    let (status, crypto) = get("/v2/currencies/crypto").await;
    assert_eq!(status, 200);
    let codes: Vec<&str> = crypto["data"].as_array().unwrap().iter().filter_map(|c| c["code"].as_str()).collect();
    assert_eq!(codes, ["BTC", "ETH", "USDT"], "the sandbox's assets");
    assert_eq!(crypto["data"][0]["exponent"], 5, "BTC's step is 0.00001");
    let (_, fiat) = get("/v2/currencies").await;
    assert_eq!(fiat["data"], json!([]), "the default config trades no fiat currency");

    let (status, rates) = get("/v2/exchange-rates?currency=USDT").await;
    assert_eq!(status, 200, "{rates}");
    let (_, book) = c.call("GET", "/api/v3/brokerage/market/products/BTC-USDT", None).await;
    let btc = d(&rates["data"]["rates"]["BTC"]);
    assert_eq!(btc, (Decimal::ONE / d(&book["price"])).round_dp(12), "{rates} vs {book}");
    assert_eq!(rates["data"]["rates"]["USDT"], "1");
    let (status, usd) = get("/v2/exchange-rates").await;
    assert_eq!((status, &usd["data"]["currency"]), (200, &json!("USD")), "ccxt asks for USD by default");
    let (status, _) = get("/v2/exchange-rates?currency=NOPE").await;
    assert_eq!(status, 400);
    let (status, t) = get("/v2/time").await;
    assert_eq!(status, 200);
    assert!(t["data"]["epoch"].as_i64().is_some_and(|e| e > 1_600_000_000), "{t}");

    let (status, body) = get("/v2/accounts").await;
    assert_eq!((status, body), (401, json!("Unauthorized")), "v2 accounts is private");
    let (status, v2) = c.call("GET", "/v2/accounts", None).await;
    assert_eq!(status, 200, "{v2}");
    let (_, v3) = c.call("GET", "/api/v3/brokerage/accounts", None).await;
    for a in v3["accounts"].as_array().unwrap() {
        let w = v2["data"].as_array().unwrap().iter().find(|w| w["id"] == a["uuid"]).expect("the same wallet id");
        let total = d(&a["available_balance"]["value"]) + d(&a["hold"]["value"]);
        assert_eq!(d(&w["balance"]["amount"]), total, "{w} vs {a}");
    }
    c.sb.shutdown().await;
}

type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// The next `user` update about order `id` at limit price `price`.
async fn user_update(ws: &mut Ws, id: &str, price: Decimal) -> Value {
    loop {
        let frame = tokio::time::timeout(Duration::from_secs(10), ws.next()).await.expect("a frame within 10 s");
        let Some(Ok(Message::Text(t))) = frame else { continue };
        let v: Value = serde_json::from_str(&t).unwrap();
        if v["channel"] != "user" {
            continue;
        }
        for o in v["events"][0]["orders"].as_array().cloned().unwrap_or_default() {
            if o["order_id"] == id && d(&o["limit_price"]) == price {
                return o;
            }
        }
    }
}

#[tokio::test]
async fn the_user_channel_shows_an_edited_order_at_its_new_price_and_size() {
    let c = Client::start().await;
    let (bid, _, _, _) = c.market().await;
    let low = (bid / Decimal::TWO).round_dp(2);
    let (mut ws, _) = tokio_tungstenite::connect_async(&c.sb.coinbase_ws_user_url).await.expect("connects");
    let sub = json!({"type": "subscribe", "channel": "user", "jwt": c.token("", "")});
    ws.send(Message::Text(sub.to_string().into())).await.unwrap();
    let placed = c
        .post(
            "orders",
            json!({"client_order_id": "ws-edit", "product_id": "BTC-USDT", "side": "BUY",
                               "order_configuration": {"limit_limit_gtc": {"base_size": "0.001",
                                                                           "limit_price": low.to_string()}}}),
        )
        .await;
    let id = placed["success_response"]["order_id"].as_str().unwrap().to_string();
    let open = user_update(&mut ws, &id, low).await;
    assert_eq!((open["status"].as_str(), d(&open["leaves_quantity"])), (Some("OPEN"), Decimal::new(1, 3)));
    let lower = low - Decimal::ONE;
    let e = c.post("orders/edit", json!({"order_id": id, "price": lower.to_string(), "size": "0.003"})).await;
    assert_eq!(e["success"], true, "{e}");
    let edited = user_update(&mut ws, &id, lower).await;
    assert_eq!((edited["status"].as_str(), d(&edited["leaves_quantity"])), (Some("OPEN"), Decimal::new(3, 3)));
    assert_eq!(d(&edited["outstanding_hold_amount"]), c.usdt().1, "{edited}");
    c.sb.shutdown().await;
}
