//! The Coinbase-protocol sandbox's REST side, witnessed by Keel's own
//! Coinbase client types (ops sees both crates; they never see each other):
//! tokens `keel-coinbase` signs are accepted, every answer parses with
//! `keel-coinbase`'s models and carries the field names of the captured
//! (non-doc) fixtures, and the documented behaviours hold — a limit order
//! placed, listed, fetched and cancelled (`CANCEL_QUEUED` then
//! `CANCELLED`); a market order filled with UUID trade ids and quote fees
//! that move the balances by exactly the fill and the fee; an idempotent
//! `client_order_id`; rejections as HTTP 200 `success:false`; 401 plain text
//! for a bad token.
//!
//! Real HTTP on 127.0.0.1 against the real sandbox; the market is held
//! still (paused) so cancels and prices move only when the test steps it.

use rust_decimal::Decimal;
use serde_json::{json, Value};

use keel_coinbase::auth::Credentials;
use keel_coinbase::model::{
    AccountResponse, AccountsPage, BestBidAskResponse, CancelOrdersResponse, CandlesResponse, CreateOrderResponse,
    FillsResponse, GetOrderResponse, ListOrdersResponse, MarketTradesResponse, Product, ProductBookResponse,
    ProductsPage, ServerTime, TransactionSummary,
};
use keel_sandbox::{Sandbox, SandboxConfig, SandboxHandle};

/// Another P-256 key, never registered with the sandbox (the "wrong key").
const OTHER_EC: &str = "-----BEGIN EC PRIVATE KEY-----
MHcCAQEEIG1RsmqAzq1g3YcVKBo/ITU77Z43+IKRFZm04a0rZPoBoAoGCCqGSM49
AwEHoUQDQgAELo44QdgOlXg7ohaWseHMxrwKdvnVbeP+humEU8ZY0YoFpPV4qMh1
tuXuoga+zQQyL9RME2pSsHywYaBueMYVqg==
-----END EC PRIVATE KEY-----
";

const BASE: &str = "/api/v3/brokerage";

struct Client {
    http: reqwest::Client,
    host: String,
    creds: Credentials,
}

struct Answer {
    status: u16,
    content_type: String,
    text: String,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text))
    }

    fn parse<T: serde::de::DeserializeOwned>(&self) -> T {
        assert_eq!(self.status, 200, "{}", self.text);
        serde_json::from_str(&self.text)
            .unwrap_or_else(|e| panic!("{} does not parse: {e}: {}", std::any::type_name::<T>(), self.text))
    }
}

fn now_s() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}

impl Client {
    /// A request signed for `sign_path` (the path of `path_q` unless a test
    /// signs another one) by `creds` at `at_s`.
    async fn send_as(
        &self,
        creds: &Credentials,
        method: &str,
        path_q: &str,
        sign_path: Option<&str>,
        at_s: i64,
        body: Option<Value>,
    ) -> Answer {
        let path = path_q.split('?').next().unwrap_or(path_q);
        let jwt = creds.rest_jwt(method, &self.host, sign_path.unwrap_or(path), at_s).expect("signs");
        let url = format!("http://{}{path_q}", self.host);
        let mut req = match method {
            "POST" => self.http.post(&url),
            _ => self.http.get(&url),
        }
        .bearer_auth(jwt);
        // The official SDK sends a JSON body `{}` on GET too.
        req = req.json(&body.unwrap_or_else(|| json!({})));
        let resp = req.send().await.expect("the sandbox answers");
        let status = resp.status().as_u16();
        let content_type = resp.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
        Answer { status, content_type, text: resp.text().await.expect("a body") }
    }

    async fn get(&self, path_q: &str) -> Answer {
        self.send_as(&self.creds, "GET", &format!("{BASE}{path_q}"), None, now_s(), None).await
    }

    async fn post(&self, path: &str, body: Value) -> Answer {
        self.send_as(&self.creds, "POST", &format!("{BASE}{path}"), None, now_s(), Some(body)).await
    }

    async fn public(&self, path_q: &str) -> Answer {
        let resp = self.http.get(format!("http://{}{BASE}{path_q}", self.host)).send().await.expect("answers");
        let status = resp.status().as_u16();
        Answer { status, content_type: String::new(), text: resp.text().await.expect("a body") }
    }

    async fn balance(&self, currency: &str) -> (Decimal, Decimal) {
        let page: AccountsPage = self.get("/accounts?limit=250").await.parse();
        let a = page.accounts.iter().find(|a| a.currency == currency).expect("a wallet per currency");
        (a.available_balance.value, a.held())
    }
}

async fn start() -> (SandboxHandle, Client, tempfile::TempDir) {
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
    let client = Client {
        http: reqwest::Client::new(),
        host: sb.addr.to_string(),
        creds: Credentials::new(&name, &pem).expect("the test key loads in keel-coinbase"),
    };
    (sb, client, dir)
}

/// Field names of a captured fixture missing from an answer (recursively;
/// arrays by their first element).
fn missing_fields(fixture: &Value, ours: &Value, at: &str, out: &mut Vec<String>) {
    match (fixture, ours) {
        (Value::Object(f), Value::Object(o)) => {
            for (k, v) in f {
                match o.get(k) {
                    None => out.push(format!("{at}.{k}")),
                    Some(ov) => missing_fields(v, ov, &format!("{at}.{k}"), out),
                }
            }
        }
        (Value::Array(f), Value::Array(o)) => {
            if let (Some(f0), Some(o0)) = (f.first(), o.first()) {
                missing_fields(f0, o0, &format!("{at}[0]"), out);
            }
        }
        _ => {}
    }
}

/// Checks an answer against a captured fixture's field names (skipped, and
/// said so, when the fixtures are not beside the workspace).
fn same_fields(fixture: &str, ours: &Value) {
    let Some(dir) = keel_testkit::fixtures("coinbase") else { return };
    let text = std::fs::read_to_string(dir.join(fixture)).unwrap_or_else(|e| panic!("{fixture}: {e}"));
    let f: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{fixture}: {e}"));
    let mut missing = Vec::new();
    missing_fields(&f, ours, "", &mut missing);
    assert!(missing.is_empty(), "{fixture}: the sandbox's answer lacks {missing:?}: {ours}");
}

fn is_uuid(s: &str) -> bool {
    let groups: Vec<&str> = s.split('-').collect();
    groups.iter().map(|g| g.len()).collect::<Vec<_>>() == [8, 4, 4, 4, 12]
        && groups.iter().all(|g| g.bytes().all(|b| b.is_ascii_hexdigit()))
}

fn d(s: &str) -> Decimal {
    s.parse().expect("a decimal")
}

#[tokio::test]
async fn market_data_time_and_products_parse_and_match_the_captured_shapes() {
    let (sb, c, _dir) = start().await;

    let time = c.public("/time").await;
    let t: ServerTime = time.parse();
    assert!(t.epoch_millis.is_some_and(|ms| (ms / 1000 - now_s()).abs() < 60), "server time near now: {}", time.text);
    assert!(t.iso.is_some() && t.epoch_seconds.is_some());
    same_fields("rest_server_time_ccxt.json", &time.json());

    for path in ["/market/products", "/products"] {
        let a = if path.starts_with("/market") { c.public(path).await } else { c.get(path).await };
        let page: ProductsPage = a.parse();
        let ids: Vec<&str> = page.products.iter().map(|p| p.product_id.as_str()).collect();
        assert_eq!(ids, ["BTC-USDT", "ETH-USDT"], "one product per listed symbol, BASE-QUOTE");
        same_fields("rest_public_products_btc_usd_ccxt.json", &a.json());
    }
    let one: Product = c.get("/products/BTC-USDT").await.parse();
    assert_eq!((one.base_increment, one.price_increment), (d("0.00001"), Some(d("0.01"))));
    assert_eq!(c.public("/market/products/NOPE-USD").await.status, 404);

    let book = c.get("/product_book?product_id=BTC-USDT&limit=3").await;
    let b: ProductBookResponse = book.parse();
    assert!(!b.pricebook.bids.is_empty() && !b.pricebook.asks.is_empty());
    assert!(b.pricebook.bids[0].price < b.pricebook.asks[0].price, "best bid below best ask");
    same_fields("rest_product_book_ccxt.json", &book.json());
    let _: ProductBookResponse = c.public("/market/product_book?product_id=ETH-USDT").await.parse();

    let bba = c.get("/best_bid_ask?product_ids=BTC-USDT&product_ids=ETH-USDT").await;
    let bb: BestBidAskResponse = bba.parse();
    assert_eq!(bb.pricebooks.len(), 2);
    same_fields("rest_best_bid_ask_ccxt.json", &bba.json());

    let end = now_s();
    let candles =
        c.get(&format!("/products/BTC-USDT/candles?start={}&end={end}&granularity=FIVE_MINUTE", end - 6 * 3600)).await;
    let cs: CandlesResponse = candles.parse();
    assert!(cs.candles.len() > 10, "{}", candles.text);
    assert!(cs.candles.windows(2).all(|w| w[0].start_ms > w[1].start_ms), "newest first");
    assert!(cs.candles.iter().all(|k| k.start_ms % 300_000 == 0 && k.low <= k.high));
    same_fields("rest_candles_ccxt.json", &candles.json());
    assert_eq!(c.public("/market/products/BTC-USDT/candles?granularity=ONE_WEEK").await.status, 400);

    let trades = c.public("/market/products/BTC-USDT/ticker?limit=5").await;
    let tr: MarketTradesResponse = trades.parse();
    assert_eq!(tr.trades.len(), 5);
    same_fields("rest_market_trades_ccxt.json", &trades.json());

    let summary = c.get("/transaction_summary").await;
    let s: TransactionSummary = summary.parse();
    assert_eq!((s.fee_tier.taker_fee_rate, s.fee_tier.maker_fee_rate), (d("0.001"), d("0.001")));
    same_fields("rest_transaction_summary_ccxt.json", &summary.json());
    sb.shutdown().await;
}

#[tokio::test]
async fn a_limit_order_is_placed_listed_fetched_and_cancelled_through_cancel_queued() {
    let (sb, c, _dir) = start().await;
    let accounts = c.get("/accounts").await;
    let page: AccountsPage = accounts.parse();
    same_fields("rest_list_accounts_ccxt.json", &accounts.json());
    let usdt = page.accounts.iter().find(|a| a.currency == "USDT").expect("a USDT wallet");
    let one: AccountResponse = c.get(&format!("/accounts/{}", usdt.uuid)).await.parse();
    assert_eq!(one.account.available_balance.value, d("100000"));

    let bb: BestBidAskResponse = c.get("/best_bid_ask?product_ids=BTC-USDT").await.parse();
    let price = (bb.pricebooks[0].bids[0].price * d("0.9")).round_dp(2);
    let body = json!({"client_order_id": "keel-limit-1", "product_id": "BTC-USDT", "side": "BUY",
                      "order_configuration": {"limit_limit_gtc": {"base_size": "0.001", "limit_price": price.to_string(), "post_only": false}}});
    let created = c.post("/orders", body.clone()).await;
    let cr: CreateOrderResponse = created.parse();
    let id = cr.outcome().expect("accepted").order_id.clone();
    assert!(is_uuid(&id), "{id}");
    same_fields("rest_create_order_success_ccxt.json", &created.json());
    assert_eq!(created.json()["order_configuration"], body["order_configuration"], "the configuration is echoed");

    // The same client_order_id again: the first order, nothing new.
    let again: CreateOrderResponse = c.post("/orders", body).await.parse();
    assert_eq!(again.outcome().expect("the first order").order_id, id);
    let open: ListOrdersResponse =
        c.get("/orders/historical/batch?order_status=OPEN&product_ids=BTC-USDT").await.parse();
    assert_eq!(open.orders.iter().filter(|o| o.client_order_id == "keel-limit-1").count(), 1, "one order");
    assert_eq!(open.orders[0].order_id, id);
    let (_, held) = c.balance("USDT").await;
    assert!(held >= price * d("0.001"), "the order holds its cost: {held}");

    let got = c.get(&format!("/orders/historical/{id}")).await;
    let g: GetOrderResponse = got.parse();
    assert_eq!((g.order.status.as_str(), g.order.side.as_str()), ("OPEN", "BUY"));
    same_fields("rest_get_order_open_limit_ccxt.json", &got.json());

    let cancel = c
        .post("/orders/batch_cancel", json!({"order_ids": [id.clone(), "cdc39e45-bbd3-44ec-bf02-61742dfb16a1"]}))
        .await;
    let cx: CancelOrdersResponse = cancel.parse();
    assert!(cx.results[0].success, "{}", cancel.text);
    assert_eq!((cx.results[1].success, cx.results[1].failure_reason.as_deref()), (false, Some("UNKNOWN_CANCEL_ORDER")));
    same_fields("rest_cancel_orders_response_ccxt.json", &cancel.json());

    // Accepted, not yet done: the market is held, so the cancel waits.
    let g: GetOrderResponse = c.get(&format!("/orders/historical/{id}")).await.parse();
    assert_eq!((g.order.status.as_str(), g.order.pending_cancel), ("CANCEL_QUEUED", Some(true)));
    sb.market.step(1);
    let g: GetOrderResponse = c.get(&format!("/orders/historical/{id}")).await.parse();
    assert_eq!(g.order.status, "CANCELLED");
    assert_eq!(c.balance("USDT").await, (d("100000"), Decimal::ZERO), "the hold is released");
    let cancelled: ListOrdersResponse = c.get("/orders/historical/batch?order_status=CANCELLED").await.parse();
    assert_eq!(cancelled.orders.len(), 1);
    let none: ListOrdersResponse = c.get("/orders/historical/batch?order_status=OPEN").await.parse();
    assert!(none.orders.is_empty());

    let missing = c.get("/orders/historical/cdc39e45-bbd3-44ec-bf02-61742dfb16a1").await;
    assert_eq!(missing.status, 404);
    assert_eq!(missing.json()["error_details"], "order with this orderID was not found");
    same_fields("error_order_not_found_octobot.json", &missing.json());
    sb.shutdown().await;
}

#[tokio::test]
async fn a_market_order_fills_with_uuid_trades_and_quote_fees_that_move_balances_exactly() {
    let (sb, c, _dir) = start().await;
    let (usdt0, btc0) = (c.balance("USDT").await.0, c.balance("BTC").await.0);
    let body = json!({"client_order_id": "keel-mkt-1", "product_id": "BTC-USDT", "side": "BUY",
                      "order_configuration": {"market_market_ioc": {"quote_size": "100"}}});
    let cr: CreateOrderResponse = c.post("/orders", body).await.parse();
    let id = cr.outcome().expect("accepted").order_id.clone();

    let got = c.get(&format!("/orders/historical/{id}")).await;
    let o: GetOrderResponse = got.parse();
    assert_eq!(o.order.status, "FILLED");
    let listed = c.get(&format!("/orders/historical/batch?order_ids={id}")).await;
    same_fields("rest_list_orders_filled_market_ccxt.json", &listed.json());

    let fills = c.get(&format!("/orders/historical/fills?order_ids={id}")).await;
    let f: FillsResponse = fills.parse();
    same_fields("rest_list_fills_ccxt.json", &fills.json());
    assert!(!f.fills.is_empty());
    let (mut base, mut cost, mut fees) = (Decimal::ZERO, Decimal::ZERO, Decimal::ZERO);
    for fill in &f.fills {
        assert!(is_uuid(&fill.trade_id), "trade ids are UUIDs: {}", fill.trade_id);
        assert_eq!((fill.order_id.as_str(), fill.side.as_str()), (id.as_str(), "BUY"));
        assert!(fill.commission > Decimal::ZERO, "a taker pays a fee");
        base += fill.base_size();
        cost += fill.base_size() * fill.price;
        fees += fill.commission;
    }
    assert_eq!(o.order.total_fees, Some(fees), "the order's fees are its fills' commissions");
    assert!(cost + fees <= d("100"), "quote_size includes the fee: {cost} + {fees}");
    // Fees are in the quote: BTC grows by the whole fill, USDT pays fill and fee.
    assert_eq!(c.balance("BTC").await.0, btc0 + base);
    assert_eq!(c.balance("USDT").await.0, usdt0 - cost - fees);

    // A filter on trade ids finds the same rows; order_ids with another filter is refused.
    let one: FillsResponse =
        c.get(&format!("/orders/historical/fills?trade_ids={}", f.fills[0].trade_id)).await.parse();
    assert_eq!(one.fills.len(), 1);
    let bad = c.get(&format!("/orders/historical/fills?order_ids={id}&product_ids=BTC-USDT")).await;
    assert_eq!(bad.status, 400);
    assert_eq!(bad.json()["error"], "INVALID_ARGUMENT");
    let s: TransactionSummary = c.get("/transaction_summary").await.parse();
    assert_eq!(s.total_fees, Some(fees));
    sb.shutdown().await;
}

#[tokio::test]
async fn rejections_are_http_200_success_false_with_the_documented_reason() {
    let (sb, c, _dir) = start().await;
    let order = |cid: &str, product: &str, config: Value| json!({"client_order_id": cid, "product_id": product, "side": "BUY", "order_configuration": config});
    let cases = [
        (
            "funds",
            order(
                "r1",
                "BTC-USDT",
                json!({"limit_limit_gtc": {"base_size": "100", "limit_price": "50000", "post_only": false}}),
            ),
            "INSUFFICIENT_FUND",
        ),
        (
            "below minimum",
            order("r2", "BTC-USDT", json!({"limit_limit_gtc": {"base_size": "0.00001", "limit_price": "50000"}})),
            "PREVIEW_INVALID_QUOTE_SIZE_TOO_SMALL",
        ),
        (
            "size precision",
            order("r3", "BTC-USDT", json!({"limit_limit_gtc": {"base_size": "0.000001", "limit_price": "50000"}})),
            "INVALID_SIZE_PRECISION",
        ),
        (
            "price precision",
            order("r4", "BTC-USDT", json!({"limit_limit_gtc": {"base_size": "0.001", "limit_price": "50000.001"}})),
            "INVALID_PRICE_PRECISION",
        ),
        ("product", order("r5", "DOGE-USD", json!({"market_market_ioc": {"quote_size": "10"}})), "INVALID_PRODUCT_ID"),
        (
            "configuration",
            order("r6", "BTC-USDT", json!({"twap_limit_gtd": {"base_size": "1"}})),
            "UNSUPPORTED_ORDER_CONFIGURATION",
        ),
        (
            "post only",
            order(
                "r7",
                "BTC-USDT",
                json!({"limit_limit_gtc": {"base_size": "0.001", "limit_price": "990000", "post_only": true}}),
            ),
            "INVALID_LIMIT_PRICE_POST_ONLY",
        ),
    ];
    for (name, body, want) in cases {
        let a = c.post("/orders", body).await;
        assert_eq!(a.status, 200, "{name}: {}", a.text);
        let r: CreateOrderResponse = a.parse();
        assert!(!r.success, "{name}");
        assert_eq!(r.outcome().expect_err("refused").reason(), want, "{name}: {}", a.text);
        if name == "funds" {
            same_fields("rest_create_order_failure_ccxt.json", &a.json());
        }
    }
    let none: ListOrdersResponse = c.get("/orders/historical/batch").await.parse();
    assert!(none.orders.is_empty(), "no rejected order was created");
    assert_eq!(c.post("/orders", json!({"product_id": "BTC-USDT"})).await.status, 400, "client_order_id is required");
    sb.shutdown().await;
}

#[tokio::test]
async fn bad_tokens_get_a_plain_text_401() {
    let (sb, c, _dir) = start().await;
    let path = format!("{BASE}/accounts");
    let other = Credentials::new(c.creds.key_name(), OTHER_EC).expect("key");
    let cases = [
        ("expired", c.send_as(&c.creds, "GET", &path, None, now_s() - 600, None).await),
        ("wrong key", c.send_as(&other, "GET", &path, None, now_s(), None).await),
        (
            "wrong uri",
            c.send_as(&c.creds, "GET", &path, Some("/api/v3/brokerage/orders/historical/batch"), now_s(), None).await,
        ),
        (
            "signed for another route",
            c.send_as(&c.creds, "POST", &format!("{BASE}/orders"), Some(&path), now_s(), Some(json!({}))).await,
        ),
    ];
    for (name, a) in cases {
        assert_eq!((a.status, a.text.as_str()), (401, "Unauthorized"), "{name}");
        assert!(a.content_type.starts_with("text/plain"), "{name}: {}", a.content_type);
    }
    let bare = reqwest::get(format!("http://{}{path}", c.host)).await.expect("answers");
    assert_eq!(bare.status().as_u16(), 401, "no token");
    assert_eq!(c.get("/accounts").await.status, 200, "the right token passes");
    sb.shutdown().await;
}

/// Runs `keel sandbox --protocol coinbase` (plus `extra`) in `dir` until it
/// is ready; returns its human lines, the ready object and the child (the
/// caller stops it).
fn standalone(dir: &std::path::Path, extra: &[&str]) -> (Vec<String>, Value, std::process::Child) {
    use std::io::{BufRead, BufReader};
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_keel"))
        .args(["sandbox", "--listen", "127.0.0.1:0", "--protocol", "coinbase"])
        .args(extra)
        .current_dir(dir)
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("keel sandbox starts");
    let stdout = child.stdout.take().expect("piped");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut human = Vec::new();
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(json) = line.strip_prefix(ops::cmd_sandbox::READY_PREFIX) {
                let _ = tx.send((human, json.to_string()));
                return;
            }
            human.push(line);
        }
    });
    let got = rx.recv_timeout(std::time::Duration::from_secs(60));
    let Ok((human, ready)) = got else {
        let _ = child.kill();
        let _ = child.wait();
        panic!("no ready line from keel sandbox --protocol coinbase");
    };
    (human, serde_json::from_str(&ready).expect("ready JSON"), child)
}

#[tokio::test]
async fn keel_sandbox_protocol_coinbase_hands_out_a_working_key_of_either_type() {
    for (extra, begins) in
        [(&[][..], "-----BEGIN EC PRIVATE KEY-----"), (&["--key-type", "ed25519"][..], "-----BEGIN PRIVATE KEY-----")]
    {
        let dir = tempfile::tempdir().unwrap();
        let (human, ready, mut child) = standalone(dir.path(), extra);
        let name = ready["api_key_name"].as_str().expect("api_key_name").to_string();
        let path = std::path::PathBuf::from(ready["private_key_path"].as_str().expect("private_key_path"));
        assert!(path.starts_with(dir.path()), "kept in the working dir: {}", path.display());
        let pem = std::fs::read_to_string(&path).unwrap();
        assert!(pem.starts_with(begins), "{extra:?}");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        }
        let text = human.join("\n");
        assert!(text.contains(&name) && text.contains(&path.display().to_string()), "{text}");
        assert!(!text.contains("PRIVATE KEY-") && !ready.to_string().contains("PRIVATE KEY-"), "never the key itself");
        assert!(!dir.path().join(keel_sandbox::test_key::KEY_FILE).exists(), "no Binance key is made");
        // An Ed25519 key also comes as the raw base64 ccxt takes: a file, never printed.
        match ready["private_key_base64_path"].as_str() {
            Some(b64) if begins.contains("BEGIN PRIVATE KEY") => {
                let secret = std::fs::read_to_string(b64).unwrap();
                assert_eq!(secret.len(), 88, "seed and public key, 64 bytes in base64");
                assert!(!text.contains(&secret) && !ready.to_string().contains(&secret), "never the secret itself");
                #[cfg(unix)]
                {
                    use std::os::unix::fs::PermissionsExt;
                    assert_eq!(std::fs::metadata(b64).unwrap().permissions().mode() & 0o777, 0o600);
                }
            }
            None if begins.contains("EC PRIVATE KEY") => {}
            other => panic!("private_key_base64_path {other:?} for {extra:?}"),
        }

        let rest = ready["rest_url"].as_str().expect("rest_url");
        let c = Client {
            http: reqwest::Client::new(),
            host: rest.trim_start_matches("http://").to_string(),
            creds: Credentials::new(&name, &pem).expect("the handed-out key loads"),
        };
        let page: AccountsPage = c.get("/accounts").await.parse();
        assert!(page.accounts.iter().any(|a| a.currency == "USDT"));
        let _ = child.kill();
        let _ = child.wait();
    }
}

#[tokio::test]
async fn after_a_503_on_an_executed_order_the_same_client_order_id_finds_it_and_a_429_carries_retry_after() {
    use keel_sandbox::{OrderFault, RestFault};
    let (sb, c, _dir) = start().await;
    let body = json!({"client_order_id": "keel-unknown-1", "product_id": "BTC-USDT", "side": "SELL",
                      "order_configuration": {"market_market_ioc": {"base_size": "0.001"}}});
    sb.faults.fail_next_order(OrderFault::ErrorAfterExecute);
    let lost = c.post("/orders", body.clone()).await;
    assert_eq!(lost.status, 503, "{}", lost.text);
    let (btc_after_first, _) = c.balance("BTC").await;
    assert_eq!(btc_after_first, d("0.999"), "the order executed although its answer was lost");
    // The documented recovery: resend with the same client_order_id.
    let again: CreateOrderResponse = c.post("/orders", body).await.parse();
    let id = again.outcome().expect("the first order").order_id.clone();
    let all: ListOrdersResponse = c.get("/orders/historical/batch").await.parse();
    assert_eq!(all.orders.iter().map(|o| o.order_id.as_str()).collect::<Vec<_>>(), [id.as_str()], "no second order");
    assert_eq!(c.balance("BTC").await.0, d("0.999"), "sold once");

    sb.faults.fail_next_order(OrderFault::ErrorBeforeExecute);
    let refused = c
        .post(
            "/orders",
            json!({"client_order_id": "keel-unknown-2", "product_id": "BTC-USDT", "side": "SELL",
                                "order_configuration": {"market_market_ioc": {"base_size": "0.001"}}}),
        )
        .await;
    assert_eq!(refused.status, 503);
    assert_eq!(c.balance("BTC").await.0, d("0.999"), "nothing executed before the error");

    sb.faults.fail_next_requests(RestFault::RateLimited { retry_after_s: 2 }, 1);
    let http = reqwest::Client::new();
    let limited = http.get(format!("http://{}{BASE}/time", c.host)).send().await.expect("answers");
    assert_eq!(limited.status().as_u16(), 429);
    assert_eq!(limited.headers().get("retry-after").and_then(|v| v.to_str().ok()), Some("2"));
    assert_eq!(c.public("/time").await.status, 200, "one request only");
    sb.shutdown().await;
}

/// A WebSocket connection's next text frame (10 s at most); `None` once it ends.
async fn ws_next<S>(ws: &mut S) -> Option<String>
where
    S: futures_util::Stream<
            Item = Result<tokio_tungstenite::tungstenite::Message, tokio_tungstenite::tungstenite::Error>,
        > + Unpin,
{
    use futures_util::StreamExt;
    use tokio_tungstenite::tungstenite::Message;
    loop {
        match tokio::time::timeout(std::time::Duration::from_secs(10), ws.next()).await.expect("a frame within 10 s") {
            Some(Ok(Message::Text(t))) => return Some(t.to_string()),
            Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return None,
            Some(Ok(_)) => {}
        }
    }
}

async fn ws_send<S>(ws: &mut S, v: Value)
where
    S: futures_util::Sink<tokio_tungstenite::tungstenite::Message> + Unpin,
    S::Error: std::fmt::Debug,
{
    use futures_util::SinkExt;
    ws.send(tokio_tungstenite::tungstenite::Message::Text(v.to_string().into())).await.expect("sends");
}

#[tokio::test]
async fn keel_coinbase_parses_every_websocket_frame_the_sandbox_sends() {
    use keel_coinbase::model::WsMessage;
    let (sb, c, _dir) = start().await;
    sb.market.resume();
    let jwt = || c.creds.ws_jwt(now_s()).expect("a WebSocket JWT");
    let (mut market, _) = tokio_tungstenite::connect_async(&sb.coinbase_ws_market_url).await.expect("connects");
    for channel in ["heartbeats", "level2", "ticker", "ticker_batch", "market_trades", "candles", "status"] {
        ws_send(
            &mut market,
            json!({"type": "subscribe", "product_ids": ["BTC-USDT"], "channel": channel, "jwt": jwt()}),
        )
        .await;
    }
    let (mut user, _) = tokio_tungstenite::connect_async(&sb.coinbase_ws_user_url).await.expect("connects");
    ws_send(&mut user, json!({"type": "subscribe", "product_ids": [], "channel": "user", "jwt": jwt()})).await;
    // An order resting, then one filled: OPEN and FILLED states on `user`.
    let book: ProductBookResponse = c.get("/product_book?product_id=BTC-USDT&limit=1").await.parse();
    let bid = book.pricebook.bids[0].price;
    let rest = c
        .post("/orders", json!({"client_order_id": "ws-rest", "product_id": "BTC-USDT", "side": "BUY",
            "order_configuration": {"limit_limit_gtc": {"base_size": "0.001", "limit_price": (bid - Decimal::ONE_HUNDRED).to_string()}}}))
        .await;
    assert_eq!(rest.json()["success"], true, "{}", rest.text);
    let fill = c
        .post(
            "/orders",
            json!({"client_order_id": "ws-fill", "product_id": "BTC-USDT", "side": "BUY",
            "order_configuration": {"market_market_ioc": {"base_size": "0.001"}}}),
        )
        .await;
    assert_eq!(fill.json()["success"], true, "{}", fill.text);

    let mut kinds = std::collections::BTreeSet::new();
    let mut user_states = std::collections::BTreeSet::new();
    while user_states.len() < 2 {
        let text = ws_next(&mut user).await.expect("the user connection stays open");
        match WsMessage::parse(&text).unwrap_or_else(|e| panic!("keel-coinbase cannot read {text}: {e}")) {
            WsMessage::User(e) => {
                for o in e.events.iter().flat_map(|ev| &ev.orders) {
                    assert!(o.cumulative_quantity.is_some() && o.leaves_quantity.is_some(), "{text}");
                    user_states.insert(o.status.clone());
                }
            }
            WsMessage::Subscriptions(_) => {}
            other => panic!("unexpected on the user endpoint: {other:?}"),
        }
    }
    assert_eq!(user_states.into_iter().collect::<Vec<_>>(), ["FILLED", "OPEN"]);
    while kinds.len() < 8 {
        let text = ws_next(&mut market).await.expect("the market connection stays open");
        let msg = WsMessage::parse(&text).unwrap_or_else(|e| panic!("keel-coinbase cannot read {text}: {e}"));
        assert!(!matches!(msg, WsMessage::Other { .. } | WsMessage::Error(_)), "{text}");
        kinds.insert(format!("{msg:?}").split(['(', ' ']).next().unwrap_or_default().to_string());
    }
    // The error frame parses too.
    ws_send(&mut market, json!({"type": "subscribe", "channel": "heartbeat"})).await;
    loop {
        let text = ws_next(&mut market).await.expect("open");
        if let WsMessage::Error(_) = WsMessage::parse(&text).expect("parses") {
            break;
        }
    }
    sb.shutdown().await;
}

#[tokio::test]
async fn keel_sandbox_tls_serves_https_and_wss_to_a_client_trusting_ca_cert_path() {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::CertificateDer;
    let dir = tempfile::tempdir().unwrap();
    let (human, ready, mut child) = standalone(dir.path(), &["--tls"]);
    let ca = std::path::PathBuf::from(ready["ca_cert_path"].as_str().expect("ca_cert_path"));
    assert!(ca.starts_with(dir.path()), "written to the working dir: {}", ca.display());
    assert!(human.join("\n").contains(&ca.display().to_string()));
    let rest = ready["rest_url"].as_str().expect("rest_url");
    let (wss_market, wss_user) =
        (ready["ws_market_url"].as_str().expect("a market URL"), ready["ws_user_url"].as_str().expect("a user URL"));
    assert!(rest.starts_with("https://127.0.0.1:"), "{rest}");
    assert!(wss_market.starts_with("wss://") && wss_user.starts_with("wss://"), "{ready}");

    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(&ca).expect("a PEM file") {
        roots.add(cert.expect("a certificate")).expect("a usable root");
    }
    let tls =
        rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .expect("TLS versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
    // HTTPS, by IP and by name.
    let http = reqwest::Client::builder().use_preconfigured_tls(tls.clone()).build().expect("a client");
    let port = rest.rsplit(':').next().expect("a port");
    for base in [rest.to_string(), format!("https://localhost:{port}")] {
        let v: Value = http
            .get(format!("{base}/api/v3/brokerage/time"))
            .send()
            .await
            .unwrap_or_else(|e| panic!("{base}: {e}"))
            .json()
            .await
            .expect("JSON");
        assert!(v["epochSeconds"].is_string(), "{v}");
    }
    // WSS on both endpoints.
    let connector = tokio_tungstenite::Connector::Rustls(std::sync::Arc::new(tls));
    for url in [wss_market, wss_user] {
        let (mut ws, _) = tokio_tungstenite::connect_async_tls_with_config(url, None, false, Some(connector.clone()))
            .await
            .unwrap_or_else(|e| panic!("{url}: {e}"));
        ws_send(&mut ws, json!({"type": "subscribe", "product_ids": [], "channel": "heartbeats"})).await;
        let ack: Value = serde_json::from_str(&ws_next(&mut ws).await.expect("an ack")).expect("JSON");
        assert_eq!(ack["channel"], "subscriptions", "{url}: {ack}");
    }
    // A client that does not trust the certificate is refused.
    let plain = reqwest::Client::new();
    assert!(plain.get(format!("{rest}/api/v3/brokerage/time")).send().await.is_err(), "an untrusted certificate fails");
    let _ = child.kill();
    let _ = child.wait();
}
