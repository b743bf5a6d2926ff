//! The few Coinbase App `/v2/` routes ccxt's `coinbase` class calls
//! (reference §10.11): `loadMarkets` reads `GET /v2/currencies`,
//! `/v2/currencies/crypto` and `/v2/exchange-rates` (public) before the v3
//! products; its default `fetchTime` is `/v2/time` and its default
//! `fetchBalance` the private `GET /v2/accounts`. They are answered from
//! the sandbox's own assets, prices and balances, in the v2 envelope
//! (`{"data": …}`, errors `{"errors":[{id, message}]}`), so a client sees
//! one exchange whichever API it asks. Private routes take the same JWT as
//! v3.

use std::collections::BTreeSet;
use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::Response;
use rust_decimal::Decimal;
use serde_json::{json, Value};

use super::ids::{dec, hashed_uuid};
use super::rest::{authenticate, reply, with_rate};
use crate::App;

/// The path prefix of the v2 routes.
pub const PREFIX: &str = "/v2/";

/// Currencies Coinbase lists as fiat (everything else the sandbox trades is
/// crypto, stablecoins included, as at Coinbase).
const FIAT: &[&str] = &["USD", "EUR", "GBP", "CAD", "AUD", "JPY", "CHF", "SGD"];

/// Display names of common assets (others are named by their code).
fn name_of(code: &str) -> &str {
    match code {
        "BTC" => "Bitcoin",
        "ETH" => "Ethereum",
        "SOL" => "Solana",
        "USDC" => "USDC",
        "USDT" => "Tether",
        "USD" => "US Dollar",
        "EUR" => "Euro",
        "GBP" => "British Pound",
        other => other,
    }
}

fn v2_error(status: StatusCode, id: &str, message: &str) -> Response {
    reply(status, &json!({"errors": [{"id": id, "message": message}]}))
}

/// Every asset the sandbox's products use, sorted.
fn assets(app: &App) -> BTreeSet<String> {
    app.ex.lock().instruments().into_iter().flat_map(|i| [i.base_asset, i.quote_asset]).collect()
}

/// The REST entry point for every path under [`PREFIX`].
pub(crate) async fn handle(State(app): State<Arc<App>>, method: Method, uri: Uri, headers: HeaderMap) -> Response {
    let Some(path) = uri.path().strip_prefix(PREFIX) else {
        return v2_error(StatusCode::NOT_FOUND, "not_found", "Not found");
    };
    let path = path.trim_end_matches('/').to_string();
    let now = app.faults.server_now_ms();
    app.faults.note_request(method.as_str(), &format!("v2/{path}"));
    app.catch_up(now);
    let q: Vec<(String, String)> = serde_urlencoded::from_str(uri.query().unwrap_or("")).unwrap_or_default();
    let param = |k: &str| q.iter().find(|(key, _)| key == k).map(|(_, v)| v.clone());
    if method != Method::GET {
        return v2_error(StatusCode::NOT_FOUND, "not_found", "Not found");
    }
    let answer = match path.as_str() {
        "currencies" => currencies(&app),
        "currencies/crypto" => crypto(&app),
        "exchange-rates" => exchange_rates(&app, param("currency").as_deref().unwrap_or("USD")),
        "time" => {
            let iso = chrono::DateTime::from_timestamp_millis(now)
                .unwrap_or_default()
                .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
            reply(StatusCode::OK, &json!({"data": {"iso": iso, "epoch": now.div_euclid(1000)}}))
        }
        "accounts" => {
            let (account, charged) = match authenticate(&app, &method, &uri, &headers, now) {
                Ok(a) => a,
                Err(refused) => return *refused,
            };
            with_rate(accounts(&app, account), charged)
        }
        _ => v2_error(StatusCode::NOT_FOUND, "not_found", "Not found"),
    };
    with_version(answer)
}

/// v2 answers name the API version they speak (ccxt sends `CB-VERSION`).
fn with_version(mut r: Response) -> Response {
    r.headers_mut().insert("cb-version", HeaderValue::from_static("2018-05-30"));
    r
}

/// `GET /v2/currencies`: the fiat currencies.
fn currencies(app: &App) -> Response {
    let data: Vec<Value> = assets(app)
        .iter()
        .filter(|a| FIAT.contains(&a.as_str()))
        .map(|a| json!({"id": a, "name": name_of(a), "min_size": "0.01"}))
        .collect();
    reply(StatusCode::OK, &json!({"data": data}))
}

/// `GET /v2/currencies/crypto`: the crypto assets, with the smallest
/// base step of their products as the exponent.
fn crypto(app: &App) -> Response {
    let insts = app.ex.lock().instruments();
    let data: Vec<Value> = assets(app)
        .iter()
        .filter(|a| !FIAT.contains(&a.as_str()))
        .enumerate()
        .map(|(i, a)| {
            let exponent =
                insts.iter().filter(|inst| &inst.base_asset == a).map(|inst| inst.step_size.scale()).max().unwrap_or(8);
            json!({"asset_id": hashed_uuid(&["asset", a]), "code": a, "name": name_of(a), "color": "#0052FF",
                   "sort_index": i, "exponent": exponent, "type": "crypto", "address_regex": ""})
        })
        .collect();
    reply(StatusCode::OK, &json!({"data": data}))
}

/// `GET /v2/exchange-rates?currency=C`: how much of each asset one unit of
/// `C` buys, from the sandbox's prices (last trade, else mid) of the
/// products that pair the asset with `C` directly.
fn exchange_rates(app: &App, currency: &str) -> Response {
    let currency = currency.to_ascii_uppercase();
    let st = app.ex.lock();
    let mut rates = serde_json::Map::new();
    for inst in st.instruments() {
        let sym = inst.symbol.as_str();
        let price = st.core().last_price(sym).or_else(|| st.quote(sym).map(|q| (q.bid + q.ask) / Decimal::TWO));
        let Some(price) = price.filter(|p| !p.is_zero()) else { continue };
        if inst.quote_asset == currency {
            rates.insert(inst.base_asset.clone(), json!(dec((Decimal::ONE / price).round_dp(12))));
        } else if inst.base_asset == currency {
            rates.insert(inst.quote_asset.clone(), json!(dec(price)));
        }
    }
    drop(st);
    // Coinbase knows every fiat currency: one the sandbox does not trade
    // answers with itself alone (ccxt asks for USD whatever is listed).
    if rates.is_empty() && !assets(app).contains(&currency) && !FIAT.contains(&currency.as_str()) {
        return v2_error(StatusCode::BAD_REQUEST, "invalid_request", "Invalid currency");
    }
    rates.insert(currency.clone(), json!("1"));
    reply(StatusCode::OK, &json!({"data": {"currency": currency, "rates": rates}}))
}

/// `GET /v2/accounts`: one wallet per asset the account holds, its
/// balance the total (free and held), as the v2 API shows it.
fn accounts(app: &App, account: u32) -> Response {
    let data: Vec<Value> = app
        .ex
        .lock()
        .balances(account)
        .iter()
        .map(|b| {
            let fiat = FIAT.contains(&b.asset.as_str());
            let id = hashed_uuid(&["account", &account.to_string(), &b.asset]);
            json!({
                "id": id,
                "name": format!("{} Wallet", b.asset),
                "primary": false,
                "type": if fiat { "fiat" } else { "wallet" },
                "currency": {"code": b.asset, "name": name_of(&b.asset), "type": if fiat { "fiat" } else { "crypto" }},
                "balance": {"amount": dec(b.free + b.locked), "currency": b.asset},
                "created_at": "2024-01-01T00:00:00Z",
                "updated_at": "2024-01-01T00:00:00Z",
                "resource": "account",
                "resource_path": format!("/v2/accounts/{id}"),
                "allow_deposits": false,
                "allow_withdrawals": false,
            })
        })
        .collect();
    reply(
        StatusCode::OK,
        &json!({"pagination": {"ending_before": null, "starting_after": null, "previous_ending_before": null,
                               "next_starting_after": null, "limit": data.len(), "order": "desc",
                               "previous_uri": null, "next_uri": null},
                "data": data}),
    )
}
