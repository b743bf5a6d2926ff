//! Every payload in `../shared/fixtures/coinbase` parses into the adapter's
//! types (one table naming each file and its type), our field names are the
//! ones Coinbase sends, and the captured (non-doc) payloads give the values
//! they hold. Without the fixtures each test says it is skipped and passes,
//! unless `KEEL_REQUIRE_FIXTURES=1` (CI) makes it fail.
//!
//! The `*_doc.json` files are the docs site's schema-rendered examples, full
//! of `"<string>"` placeholders (SOURCES.md). They are checked for their
//! field names and nesting: each placeholder is replaced by a value of the
//! field's shape (an RFC 3339 time for time fields, `"0"` otherwise) before
//! parsing. Captured payloads are parsed exactly as they are.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use rust_decimal::Decimal;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

use keel_coinbase::model::*;
use keel_coinbase::symbols::{instrument_of, restrictions_of};
use keel_core::instrument::SymbolStatus;

fn fixtures() -> Option<PathBuf> {
    keel_testkit::fixtures("coinbase")
}

fn d(s: &str) -> Decimal {
    s.parse().unwrap()
}

fn read(dir: &Path, name: &str) -> String {
    let path = dir.join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// What a fixture is parsed as.
#[derive(Clone, Copy, Debug)]
enum Kind {
    Error,
    Accounts,
    Account,
    Products,
    ProductBook,
    BestBidAsk,
    Candles,
    MarketTrades,
    Time,
    CreateOrderRequest,
    CreateOrder,
    Preview,
    CancelRequest,
    Cancel,
    EditRequest,
    Edit,
    GetOrder,
    ListOrders,
    Fills,
    TransactionSummary,
    WsSubscribe,
    WsMessage,
}

/// Every file in the folder, with its type. A file missing here fails the
/// test, so a new fixture gets a type.
const TABLE: &[(&str, Kind)] = &[
    ("error_400_invalid_argument_list_fills_issue.json", Kind::Error),
    ("error_order_not_found_ccxt.json", Kind::Error),
    ("error_order_not_found_octobot.json", Kind::Error),
    ("error_permission_denied_octobot.json", Kind::Error),
    ("error_request_timestamp_expired_ccxt.json", Kind::Error),
    ("rest_best_bid_ask_ccxt.json", Kind::BestBidAsk),
    ("rest_best_bid_ask_response_doc.json", Kind::BestBidAsk),
    ("rest_cancel_orders_request_doc.json", Kind::CancelRequest),
    ("rest_cancel_orders_response_ccxt.json", Kind::Cancel),
    ("rest_cancel_orders_response_doc.json", Kind::Cancel),
    ("rest_candles_ccxt.json", Kind::Candles),
    ("rest_candles_response_doc.json", Kind::Candles),
    ("rest_create_order_failure_ccxt.json", Kind::CreateOrder),
    ("rest_create_order_request_attached_tpsl_guide.json", Kind::CreateOrderRequest),
    ("rest_create_order_request_doc.json", Kind::CreateOrderRequest),
    ("rest_create_order_request_sdk_test.json", Kind::CreateOrderRequest),
    ("rest_create_order_response_doc.json", Kind::CreateOrder),
    ("rest_create_order_success_ccxt.json", Kind::CreateOrder),
    ("rest_create_order_success_faq.json", Kind::CreateOrder),
    ("rest_create_order_success_sor_limit_ioc_issue.json", Kind::CreateOrder),
    ("rest_edit_order_preview_response_doc.json", Kind::Edit),
    ("rest_edit_order_request_doc.json", Kind::EditRequest),
    ("rest_edit_order_request_sdk_test.json", Kind::EditRequest),
    ("rest_edit_order_response_doc.json", Kind::Edit),
    ("rest_error_default_doc.json", Kind::Error),
    ("rest_get_account_response_doc.json", Kind::Account),
    ("rest_get_order_open_limit_ccxt.json", Kind::GetOrder),
    ("rest_get_order_response_doc.json", Kind::GetOrder),
    ("rest_list_accounts_ccxt.json", Kind::Accounts),
    ("rest_list_accounts_response_doc.json", Kind::Accounts),
    ("rest_list_fills_ccxt.json", Kind::Fills),
    ("rest_list_fills_response_doc.json", Kind::Fills),
    ("rest_list_orders_filled_market_ccxt.json", Kind::ListOrders),
    ("rest_list_orders_response_doc.json", Kind::ListOrders),
    ("rest_list_products_response_doc.json", Kind::Products),
    ("rest_market_trades_ccxt.json", Kind::MarketTrades),
    ("rest_market_trades_response_doc.json", Kind::MarketTrades),
    ("rest_preview_order_response_doc.json", Kind::Preview),
    ("rest_product_book_ccxt.json", Kind::ProductBook),
    ("rest_product_book_response_doc.json", Kind::ProductBook),
    ("rest_public_products_btc_usd_ccxt.json", Kind::Products),
    ("rest_server_time_ccxt.json", Kind::Time),
    ("rest_server_time_response_doc.json", Kind::Time),
    ("rest_transaction_summary_ccxt.json", Kind::TransactionSummary),
    ("rest_transaction_summary_response_doc.json", Kind::TransactionSummary),
    ("ws_candles_doc.json", Kind::WsMessage),
    ("ws_error_authentication_failure_issue.json", Kind::WsMessage),
    ("ws_heartbeats_doc.json", Kind::WsMessage),
    ("ws_heartbeats_observed_hummingbot.json", Kind::WsMessage),
    ("ws_level2_snapshot_doc.json", Kind::WsMessage),
    ("ws_market_trades_doc.json", Kind::WsMessage),
    ("ws_status_doc.json", Kind::WsMessage),
    ("ws_subscribe_candles_doc.json", Kind::WsSubscribe),
    ("ws_subscribe_heartbeats_doc.json", Kind::WsSubscribe),
    ("ws_subscribe_heartbeats_noproducts_guide.json", Kind::WsSubscribe),
    ("ws_subscribe_level2_doc.json", Kind::WsSubscribe),
    ("ws_subscribe_market_trades_doc.json", Kind::WsSubscribe),
    ("ws_subscribe_status_doc.json", Kind::WsSubscribe),
    ("ws_subscribe_ticker_batch_doc.json", Kind::WsSubscribe),
    ("ws_subscribe_ticker_doc.json", Kind::WsSubscribe),
    ("ws_subscribe_ticker_nojwt_guide.json", Kind::WsSubscribe),
    ("ws_subscribe_user_doc.json", Kind::WsSubscribe),
    ("ws_subscriptions_observed_hummingbot.json", Kind::WsMessage),
    ("ws_ticker_batch_ccxt.json", Kind::WsMessage),
    ("ws_ticker_doc.json", Kind::WsMessage),
    ("ws_unsubscribe_ticker_guide.json", Kind::WsSubscribe),
    ("ws_user_snapshot_ccxt.json", Kind::WsMessage),
    ("ws_user_snapshot_doc.json", Kind::WsMessage),
    ("ws_user_snapshot_empty_observed_hummingbot.json", Kind::WsMessage),
];

/// Parses into `T` and writes it back as JSON (for the field-name check).
fn typed<T: DeserializeOwned + Serialize>(text: &str) -> Result<Value, String> {
    let v: T = serde_json::from_str(text).map_err(|e| e.to_string())?;
    serde_json::to_value(&v).map_err(|e| e.to_string())
}

fn ws_value(text: &str) -> Result<Value, String> {
    let m = WsMessage::parse(text).map_err(|e| e.to_string())?;
    let v = match &m {
        WsMessage::L2Data(e) => serde_json::to_value(e),
        WsMessage::User(e) => serde_json::to_value(e),
        WsMessage::Heartbeats(e) => serde_json::to_value(e),
        WsMessage::Ticker(e) | WsMessage::TickerBatch(e) => serde_json::to_value(e),
        WsMessage::Candles(e) => serde_json::to_value(e),
        WsMessage::MarketTrades(e) => serde_json::to_value(e),
        WsMessage::Status(e) => serde_json::to_value(e),
        WsMessage::Subscriptions(e) => serde_json::to_value(e),
        WsMessage::Error(e) => serde_json::to_value(e),
        WsMessage::Other { channel, .. } => return Err(format!("channel `{channel}` is not modelled")),
    };
    v.map_err(|e| e.to_string())
}

fn parse(kind: Kind, text: &str) -> Result<Value, String> {
    match kind {
        Kind::Error => typed::<ErrorBody>(text),
        Kind::Accounts => typed::<AccountsPage>(text),
        Kind::Account => typed::<AccountResponse>(text),
        Kind::Products => typed::<ProductsPage>(text),
        Kind::ProductBook => typed::<ProductBookResponse>(text),
        Kind::BestBidAsk => typed::<BestBidAskResponse>(text),
        Kind::Candles => typed::<CandlesResponse>(text),
        Kind::MarketTrades => typed::<MarketTradesResponse>(text),
        Kind::Time => typed::<ServerTime>(text),
        Kind::CreateOrderRequest => typed::<CreateOrderRequest>(text),
        Kind::CreateOrder => typed::<CreateOrderResponse>(text),
        Kind::Preview => typed::<PreviewOrderResponse>(text),
        Kind::CancelRequest => typed::<CancelOrdersRequest>(text),
        Kind::Cancel => typed::<CancelOrdersResponse>(text),
        Kind::EditRequest => typed::<EditOrderRequest>(text),
        Kind::Edit => typed::<EditOrderResponse>(text),
        Kind::GetOrder => typed::<GetOrderResponse>(text),
        Kind::ListOrders => typed::<ListOrdersResponse>(text),
        Kind::Fills => typed::<FillsResponse>(text),
        Kind::TransactionSummary => typed::<TransactionSummary>(text),
        Kind::WsSubscribe => typed::<Subscribe>(text),
        Kind::WsMessage => ws_value(text),
    }
}

fn time_like(key: &str) -> bool {
    key == "iso" || key == "time" || key.ends_with("_time") || key.ends_with("_timestamp")
}

/// A doc example with each `"<string>"` replaced by a value of its field's shape.
fn without_placeholders(v: Value, key: &str) -> Value {
    match v {
        Value::String(s) if s == "<string>" => {
            Value::String(if time_like(key) { "2021-05-31T09:59:59Z" } else { "0" }.into())
        }
        Value::Object(m) => {
            Value::Object(m.into_iter().map(|(k, v)| (k.clone(), without_placeholders(v, &k))).collect())
        }
        Value::Array(a) => Value::Array(a.into_iter().map(|v| without_placeholders(v, key)).collect()),
        other => other,
    }
}

/// Fields we read that a reference example leaves out: `total_volume` is in
/// real transaction summaries but not the 2026 example (reference §4.15);
/// `edit_preview` shares the edit answer's type but has no `success`.
const DOC_LEAVES_OUT: &[(&str, &str)] = &[
    ("rest_transaction_summary_response_doc.json", "total_volume"),
    ("rest_edit_order_preview_response_doc.json", "success"),
];

fn camel(key: &str) -> String {
    let mut out = String::new();
    let mut up = false;
    for c in key.chars() {
        if c == '_' {
            up = true;
        } else if up {
            out.extend(c.to_uppercase());
            up = false;
        } else {
            out.push(c);
        }
    }
    out
}

/// Every field our types wrote is a field of the fixture at the same place
/// (snake_case, or the camelCase the gateway also takes): a renamed or
/// misspelled field fails here. Unset fields (`null`, `[]`) are checked only
/// when `all_fields` — the REST reference examples, which show every field
/// of the schema — since a captured payload may simply not carry them.
fn names_in(ours: &Value, theirs: &Value, path: &str, all_fields: Option<&[&str]>, missing: &mut Vec<String>) {
    match (ours, theirs) {
        (Value::Object(o), Value::Object(t)) => {
            for (k, v) in o {
                let unset = v.is_null() || v.as_array().is_some_and(|a| a.is_empty());
                match t.get(k).or_else(|| t.get(&camel(k))) {
                    Some(tv) => names_in(v, tv, &format!("{path}.{k}"), all_fields, missing),
                    None if unset && all_fields.is_none_or(|left_out| left_out.contains(&k.as_str())) => {}
                    None => missing.push(format!("{path}.{k}")),
                }
            }
        }
        (Value::Array(o), Value::Array(t)) => {
            for (i, (ov, tv)) in o.iter().zip(t).enumerate() {
                names_in(ov, tv, &format!("{path}[{i}]"), all_fields, missing);
            }
        }
        _ => {}
    }
}

#[test]
fn every_fixture_parses_with_our_field_names() {
    let Some(dir) = fixtures() else { return };
    let on_disk: BTreeSet<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".json"))
        .collect();
    let listed: BTreeSet<String> = TABLE.iter().map(|(n, _)| n.to_string()).collect();
    assert_eq!(listed.len(), TABLE.len(), "a file is listed twice");
    assert_eq!(on_disk, listed, "the table must name every fixture file, and only those");
    let mut failures = Vec::new();
    for (name, kind) in TABLE {
        let raw: Value = serde_json::from_str(&read(&dir, name)).unwrap_or_else(|e| panic!("{name}: {e}"));
        let source = if name.ends_with("_doc.json") { without_placeholders(raw, "") } else { raw };
        match parse(*kind, &source.to_string()) {
            Ok(ours) => {
                let mut missing = Vec::new();
                // The REST reference examples show every field of the schema.
                let left_out: Vec<&str> =
                    DOC_LEAVES_OUT.iter().filter(|(file, _)| file == name).map(|(_, field)| *field).collect();
                let all_fields =
                    (name.starts_with("rest_") && name.ends_with("_response_doc.json")).then_some(left_out.as_slice());
                names_in(&ours, &source, "", all_fields, &mut missing);
                if !missing.is_empty() {
                    failures.push(format!("{name} ({kind:?}): fields not in the fixture: {missing:?}"));
                }
            }
            Err(e) => failures.push(format!("{name} ({kind:?}): {e}")),
        }
    }
    assert!(failures.is_empty(), "{} of {} fixtures failed:\n{}", failures.len(), TABLE.len(), failures.join("\n"));
}

fn load<T: DeserializeOwned>(dir: &Path, name: &str) -> T {
    serde_json::from_str(&read(dir, name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

#[test]
fn captured_rest_payloads_give_their_values() {
    let Some(dir) = fixtures() else { return };

    let accounts: AccountsPage = load(&dir, "rest_list_accounts_ccxt.json");
    assert!(!accounts.has_next);
    assert_eq!(accounts.cursor, "");
    let a = &accounts.accounts[0];
    assert_eq!((a.currency.as_str(), a.available_balance.value, a.held()), ("USDC", d("0"), d("0")));
    assert_eq!(a.created_at, Some(1_672_813_206_456));
    assert_eq!(a.deleted_at, None);

    let products: ProductsPage = load(&dir, "rest_public_products_btc_usd_ccxt.json");
    assert_eq!(products.num_products, Some(646), "a string in real answers");
    let btc = &products.products[0];
    assert_eq!(btc.price, Some(d("67060")));
    assert_eq!(btc.mid_market_price, None, "\"\" is unset");
    assert_eq!(btc.alias_to, vec!["BTC-USDC".to_string()]);
    let i = instrument_of(btc).unwrap();
    assert_eq!(i.symbol.as_str(), "BTC-USD");
    assert_eq!((i.base_asset.as_str(), i.quote_asset.as_str()), ("BTC", "USD"));
    assert_eq!((i.tick_size, i.step_size, i.market_step_size), (d("0.01"), d("0.00000001"), d("0.00000001")));
    assert_eq!((i.min_qty, i.max_qty), (d("0.00000001"), d("3400")));
    assert_eq!((i.min_notional, i.max_notional), (d("1"), d("150000000")));
    assert_eq!(i.status, SymbolStatus::Trading);
    assert!(i.check(d("0.001"), d("67060"), false).is_ok());
    assert!(i.check(d("0.00001"), d("67060"), false).is_err(), "0.67 USD is below quote_min_size 1");
    assert!(restrictions_of(btc).check(true, false).is_ok());

    let book: ProductBookResponse = load(&dir, "rest_product_book_ccxt.json");
    assert_eq!(book.pricebook.bids[0], PriceLevel { price: d("30757.85"), size: d("0.115") });
    assert_eq!(book.pricebook.asks[0].size, d("0.04877659"));
    assert_eq!(book.pricebook.time, Some(1_688_097_760_533));

    let bba: BestBidAskResponse = load(&dir, "rest_best_bid_ask_ccxt.json");
    assert_eq!(bba.pricebooks[0].product_id, "TRAC-EUR");
    assert_eq!(bba.pricebooks[0].asks[0].price, d("0.2406"));

    let candles: CandlesResponse = load(&dir, "rest_candles_ccxt.json");
    let c = &candles.candles[0];
    assert_eq!(c.start_ms, 1_673_391_780_000);
    assert_eq!(
        (c.open, c.high, c.low, c.close, c.volume),
        (d("17417.74"), d("17417.99"), d("17414.36"), d("17417.38"), d("1.87780853"))
    );

    let trades: MarketTradesResponse = load(&dir, "rest_market_trades_ccxt.json");
    let t = &trades.trades[0];
    assert_eq!(
        (t.trade_id.as_str(), t.price, t.size, t.side.as_str()),
        ("10092327", d("17488.12"), d("0.0000623"), "BUY")
    );
    assert_eq!(t.time, 1_673_398_357_557);

    let time: ServerTime = load(&dir, "rest_server_time_ccxt.json");
    assert_eq!(time.ms(), Some(1_709_005_034_333));
    assert_eq!(time.iso, Some(1_709_005_034_000));

    let ok: CreateOrderResponse = load(&dir, "rest_create_order_success_ccxt.json");
    assert_eq!(ok.outcome().unwrap().order_id, "52cfe5e2-0b29-4c19-a245-a6a773de5030");
    assert_eq!(ok.order_configuration, None, "null echo");
    let faq: CreateOrderResponse = load(&dir, "rest_create_order_success_faq.json");
    assert_eq!(faq.outcome().unwrap().client_order_id.as_deref(), Some("12345678"));
    let ioc: CreateOrderResponse = load(&dir, "rest_create_order_success_sor_limit_ioc_issue.json");
    let sor = ioc.order_configuration.unwrap().sor_limit_ioc.unwrap();
    assert_eq!((sor.base_size, sor.limit_price), (Some(d("1")), Some(d("82.9"))));
    let failed: CreateOrderResponse = load(&dir, "rest_create_order_failure_ccxt.json");
    let why = failed.outcome().unwrap_err();
    assert_eq!(why.reason(), "UNSUPPORTED_ORDER_CONFIGURATION");
    assert_eq!(why.message.as_deref(), Some("source is not enabled for trading"));

    let cancel: CancelOrdersResponse = load(&dir, "rest_cancel_orders_response_ccxt.json");
    assert!(cancel.results[0].success);
    assert_eq!(cancel.results[0].order_id, "bb8851a3-4fda-4a2c-aa06-9048db0e0f0d");

    let open: GetOrderResponse = load(&dir, "rest_get_order_open_limit_ccxt.json");
    let o = &open.order;
    assert_eq!(o.status(), OrderStatus::Open);
    assert_eq!(o.client_order_id, "e5fe8482-05bb-428f-ad4d-dbc8ce39239c");
    let gtc = o.order_configuration.as_ref().unwrap().limit_limit_gtc.as_ref().unwrap();
    assert_eq!((gtc.base_size, gtc.limit_price, gtc.post_only), (Some(d("0.2")), Some(d("0.006")), Some(false)));
    assert_eq!(o.created_time, Some(1_673_912_243_947));

    let list: ListOrdersResponse = load(&dir, "rest_list_orders_filled_market_ccxt.json");
    let m = &list.orders[0];
    assert_eq!(m.status(), OrderStatus::Filled);
    assert_eq!(m.number_of_fills, Some(2));
    assert_eq!(m.filled_size, Some(d("0.000297920684505")));
    assert_eq!(m.average_filled_price, Some(d("21220.6399999973697697")));
    // Quote-sized market buy: the fee comes out of quote_size.
    assert_eq!(m.filled_value.unwrap() + m.total_fees.unwrap(), m.total_value_after_fees.unwrap());
    assert_eq!(m.total_value_after_fees, Some(d("6.36")));

    let fills: FillsResponse = load(&dir, "rest_list_fills_ccxt.json");
    let f = &fills.fills[0];
    assert_eq!(f.trade_id, "cdc39e45-bbd3-44ec-bf02-61742dfb16a1");
    assert_eq!(f.trade_time, 1_674_005_858_091);
    assert_eq!((f.price, f.commission), (d("21220.64"), d("0.0000280983986004")));
    assert!(f.size_in_quote);
    assert_eq!(f.base_size(), d("0.0046830664333996") / d("21220.64"));

    let fees: TransactionSummary = load(&dir, "rest_transaction_summary_ccxt.json");
    assert_eq!((fees.fee_tier.taker_fee_rate, fees.fee_tier.maker_fee_rate), (d("0.008"), d("0.006")));
    assert_eq!(fees.total_fees, Some(d("0.07996791093331522")));
    let doc_fees: TransactionSummary = load(&dir, "rest_transaction_summary_response_doc.json");
    assert_eq!(doc_fees.total_fees, Some(d("25")), "a JSON number in the 2026 docs");
}

#[test]
fn captured_errors_classify() {
    let Some(dir) = fixtures() else { return };
    let cases = [
        ("error_order_not_found_ccxt.json", Some("unknown"), true, "order with this orderID was not found"),
        ("error_order_not_found_octobot.json", Some("NOT_FOUND"), true, "order with this orderID was not found"),
        ("error_permission_denied_octobot.json", Some("PERMISSION_DENIED"), false, "Missing required scopes"),
        (
            "error_400_invalid_argument_list_fills_issue.json",
            Some("INVALID_ARGUMENT"),
            false,
            "cannot pass order_ids with other filters",
        ),
        ("error_request_timestamp_expired_ccxt.json", None, false, "request timestamp expired"),
    ];
    for (name, error, not_found, text) in cases {
        let e: ErrorBody = load(&dir, name);
        assert_eq!(e.error.as_deref(), error, "{name}");
        assert_eq!(e.is_order_not_found(), not_found, "{name}");
        assert_eq!(e.text(), text, "{name}");
    }
}

#[test]
fn captured_ws_messages_give_their_values() {
    let Some(dir) = fixtures() else { return };
    let ws = |name: &str| WsMessage::parse(&read(&dir, name)).unwrap_or_else(|e| panic!("{name}: {e}"));

    let WsMessage::Heartbeats(h) = ws("ws_heartbeats_observed_hummingbot.json") else { panic!("heartbeats") };
    assert_eq!((h.sequence_num, h.events[0].heartbeat_counter), (158, Some(14192)), "an integer counter");
    let WsMessage::Heartbeats(h) = ws("ws_heartbeats_doc.json") else { panic!("heartbeats") };
    assert_eq!(h.events[0].heartbeat_counter, Some(3049), "a string counter");

    let WsMessage::Subscriptions(s) = ws("ws_subscriptions_observed_hummingbot.json") else { panic!("subs") };
    assert_eq!(s.sequence_num, 2);
    assert_eq!(s.events[0].subscriptions["user"], vec!["df59559b-af66-5c60-9cbc-b497d26c6608".to_string()]);

    let WsMessage::User(u) = ws("ws_user_snapshot_empty_observed_hummingbot.json") else { panic!("user") };
    assert_eq!((u.sequence_num, u.events[0].kind.as_str(), u.events[0].orders.len()), (1, "snapshot", 0));
    let WsMessage::User(u) = ws("ws_user_snapshot_ccxt.json") else { panic!("user") };
    let o = &u.events[0].orders[0];
    assert_eq!(
        (o.status(), o.leaves_quantity, o.cumulative_quantity),
        (OrderStatus::Open, Some(d("0.000994")), Some(d("0")))
    );
    assert_eq!(o.order_type, "Limit");
    let WsMessage::User(u) = ws("ws_user_snapshot_doc.json") else { panic!("user") };
    let o = &u.events[0].orders[0];
    assert_eq!(
        (o.status(), o.post_only, o.filled_value, o.total_fees),
        (OrderStatus::Filled, Some(false), Some(d("500")), Some(d("2")))
    );

    let WsMessage::L2Data(l2) = ws("ws_level2_snapshot_doc.json") else { panic!("l2") };
    let e = &l2.events[0];
    assert_eq!((e.kind.as_str(), e.product_id.as_str()), ("snapshot", "BTC-USD"));
    assert!(e.updates[0].is_bid());
    assert_eq!((e.updates[0].price_level, e.updates[0].new_quantity), (d("21921.73"), d("0.06317902")));
    assert_eq!(e.updates[0].event_time, Some(0));
    assert_eq!(l2.timestamp, Some(1_675_974_770_714));

    let WsMessage::TickerBatch(t) = ws("ws_ticker_batch_ccxt.json") else { panic!("ticker_batch") };
    assert_eq!((t.events[0].tickers[0].price, t.events[0].tickers[0].best_bid), (d("0.08212"), None));
    let WsMessage::Ticker(t) = ws("ws_ticker_doc.json") else { panic!("ticker") };
    assert_eq!(t.events[0].tickers[0].best_ask_quantity, Some(d("8038.07770938")));

    let WsMessage::Error(e) = ws("ws_error_authentication_failure_issue.json") else { panic!("error") };
    assert_eq!(e.message, "authentication failure");
    assert_eq!(ws("ws_error_authentication_failure_issue.json").sequence_num(), None);
}
