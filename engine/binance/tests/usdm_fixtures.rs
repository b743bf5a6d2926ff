//! The USDⓈ-M market-data models against the documented payloads in
//! `../shared/fixtures/binance-usdm`: every response and event parses (the
//! table below must name every file there, so a new fixture fails until it
//! is classified), values land in the right fields, COIN-M items of the
//! merged all-market streams are dropped, and errors classify as the spot
//! adapter's do. Without the fixtures each test says it is skipped and
//! passes, unless `KEEL_REQUIRE_FIXTURES=1` (CI) makes it fail.

use std::path::{Path, PathBuf};

use keel_binance::error::BinanceError;
use keel_binance::model::ApiError;
use keel_binance::usdm::model::*;
use keel_core::futures::{FundingRateType, FundingSettlement};
use keel_core::venue::VenueError;
use rust_decimal::Decimal;
use serde::de::DeserializeOwned;
use serde_json::Value;

fn fixtures() -> Option<PathBuf> {
    keel_testkit::fixtures("binance-usdm")
}

fn text(dir: &Path, name: &str) -> String {
    let path = dir.join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn parse<T: DeserializeOwned>(dir: &Path, name: &str) -> T {
    serde_json::from_str(&text(dir, name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn d(s: &str) -> Decimal {
    s.parse().unwrap()
}

/// How each fixture is read.
#[derive(Clone, Copy)]
enum Kind {
    PremiumIndex,
    FundingRate,
    FundingInfo,
    OpenInterest,
    OpenInterestHist,
    Ticker,
    ExchangeInfo,
    MarkKlines,
    MarkStream,
    TickerStream,
    Error,
    /// A client request or a control answer (`{"result":…,"id":…}`).
    Control,
}

const TABLE: &[(&str, Kind)] = &[
    ("dapi_premiumIndex_list_delivery.json", Kind::PremiumIndex),
    ("error_fapi_-1003_ip_banned_schema.json", Kind::Error),
    ("error_fapi_-1003_too_many_requests_schema.json", Kind::Error),
    ("error_fapi_-1121_invalid_symbol.json", Kind::Error),
    ("fapi_exchangeInfo.json", Kind::ExchangeInfo),
    ("fapi_exchangeInfo_current_schema.json", Kind::ExchangeInfo),
    ("fapi_fundingInfo.json", Kind::FundingInfo),
    ("fapi_fundingRate.json", Kind::FundingRate),
    ("fapi_fundingRate_connector.json", Kind::FundingRate),
    ("fapi_markPriceKlines.json", Kind::MarkKlines),
    ("fapi_openInterest.json", Kind::OpenInterest),
    ("fapi_premiumIndex.json", Kind::PremiumIndex),
    ("fapi_premiumIndex_list.json", Kind::PremiumIndex),
    ("fapi_ticker_24hr.json", Kind::Ticker),
    ("fapi_ticker_24hr_list.json", Kind::Ticker),
    ("futures_data_openInterestHist.json", Kind::OpenInterestHist),
    ("futures_data_openInterestHist_connector.json", Kind::OpenInterestHist),
    ("spot_error_-1220_symbol_status_mismatch_schema.json", Kind::Error),
    ("spot_rest_ticker_24hr_full_list.json", Kind::Ticker),
    ("spot_rest_ticker_24hr_mini.json", Kind::Ticker),
    ("spot_rest_ticker_24hr_mini_list.json", Kind::Ticker),
    ("spot_rest_ticker_rolling_full.json", Kind::Ticker),
    ("spot_rest_ticker_rolling_full_list.json", Kind::Ticker),
    ("spot_rest_ticker_rolling_mini.json", Kind::Ticker),
    ("spot_rest_ticker_rolling_mini_list.json", Kind::Ticker),
    ("spot_ws_miniTicker_arr_schema.json", Kind::TickerStream),
    ("ws_dapi_markPriceUpdate_delivery.json", Kind::MarkStream),
    ("ws_fapi_combined_markPrice_schema.json", Kind::MarkStream),
    ("ws_fapi_list_subscriptions_response.json", Kind::Control),
    ("ws_fapi_markPriceUpdate.json", Kind::MarkStream),
    ("ws_fapi_markPriceUpdate_connector.json", Kind::MarkStream),
    ("ws_fapi_markPrice_arr_connector.json", Kind::MarkStream),
    ("ws_fapi_miniTicker_arr_connector.json", Kind::TickerStream),
    ("ws_fapi_subscribe_request.json", Kind::Control),
    ("ws_fapi_subscribe_response.json", Kind::Control),
    ("ws_fapi_ticker_arr_connector.json", Kind::TickerStream),
];

/// One object or an array of them.
fn many<T: DeserializeOwned>(dir: &Path, name: &str) -> Vec<T> {
    match parse::<Value>(dir, name) {
        Value::Array(items) => {
            items.into_iter().map(|v| serde_json::from_value(v).unwrap_or_else(|e| panic!("{name}: {e}"))).collect()
        }
        v => vec![serde_json::from_value(v).unwrap_or_else(|e| panic!("{name}: {e}"))],
    }
}

#[test]
fn every_fixture_is_classified_and_parses() {
    let Some(dir) = fixtures() else { return };
    let mut on_disk: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.ends_with(".json"))
        .collect();
    on_disk.sort();
    let listed: Vec<&str> = TABLE.iter().map(|(n, _)| *n).collect();
    assert_eq!(on_disk, listed, "a fixture is missing from the table (or the table names one that is gone)");
    for (name, kind) in TABLE {
        let n = match kind {
            Kind::PremiumIndex => parse::<PremiumIndexAnswer>(&dir, name).into_vec().len(),
            Kind::FundingRate => parse::<Vec<FundingRateRow>>(&dir, name).len(),
            Kind::FundingInfo => parse::<Vec<FundingInfoRow>>(&dir, name).len(),
            Kind::OpenInterest => many::<OpenInterestRest>(&dir, name).len(),
            Kind::OpenInterestHist => parse::<Vec<OpenInterestHistRow>>(&dir, name).len(),
            Kind::Ticker => many::<Ticker24hr>(&dir, name).len(),
            Kind::ExchangeInfo => parse::<FuturesExchangeInfo>(&dir, name).symbols.len(),
            Kind::MarkKlines => parse::<Vec<MarkKline>>(&dir, name).len(),
            Kind::MarkStream => {
                let v: Value = parse(&dir, name);
                let data = v.get("data").cloned().unwrap_or(v);
                let all = match serde_json::from_value::<MarkPriceMessage>(data) {
                    Ok(MarkPriceMessage::One(_)) => 1,
                    Ok(MarkPriceMessage::All(v)) => v.len(),
                    Err(e) => panic!("{name}: {e}"),
                };
                all
            }
            Kind::TickerStream => many::<WsTicker>(&dir, name).len(),
            Kind::Error => usize::from(parse::<ApiError>(&dir, name).code < 0),
            Kind::Control => usize::from(parse::<Value>(&dir, name).get("id").is_some()),
        };
        assert!(n > 0, "{name}: nothing read");
    }
}

#[test]
fn premium_index_fields_land_where_they_belong() {
    let Some(dir) = fixtures() else { return };
    let one = parse::<PremiumIndexAnswer>(&dir, "fapi_premiumIndex.json").into_vec().remove(0).to_core();
    assert_eq!(one.symbol.as_str(), "BTCUSDT");
    assert_eq!(one.mark_price, d("11793.63104562"));
    assert_eq!(one.index_price, Some(d("11781.80495970")));
    assert_eq!(one.funding_rate_estimate, Some(d("0.00038246")));
    assert_eq!(one.interest_rate, Some(d("0.00010000")));
    assert_eq!(one.next_funding_time, Some(1597392000000));
    assert_eq!(one.ts_ms, 1597370495002);

    // Delivery contracts: `""` rates and a 0 funding time are none.
    let list: Vec<_> = parse::<PremiumIndexAnswer>(&dir, "dapi_premiumIndex_list_delivery.json")
        .into_vec()
        .iter()
        .map(|p| p.to_core())
        .collect();
    assert_eq!(list[0].next_funding_time, Some(1596096000000));
    assert_eq!((list[1].funding_rate_estimate, list[1].interest_rate, list[1].next_funding_time), (None, None, None));

    // An all-symbol answer keeps the perpetuals: the delivery contract goes,
    // and with exchangeInfo known, so does any symbol not listed there.
    let raw = || parse::<PremiumIndexAnswer>(&dir, "dapi_premiumIndex_list_delivery.json").into_vec();
    let kept: Vec<String> = perpetuals_only(raw(), None).into_iter().map(|p| p.symbol).collect();
    assert_eq!(kept, ["BTCUSD_PERP"]);
    let um_only: std::collections::HashSet<String> = ["BTCUSDT".to_string()].into();
    assert!(perpetuals_only(raw(), Some(&um_only)).is_empty(), "a COIN-M perpetual is not a USDⓈ-M one");
}

#[test]
fn settled_funding_keeps_its_rate_type_and_the_interval_table_its_hours() {
    let Some(dir) = fixtures() else { return };
    let old: Vec<FundingSettlement> =
        parse::<Vec<FundingRateRow>>(&dir, "fapi_fundingRate.json").iter().map(FundingRateRow::to_core).collect();
    assert_eq!(old[0].rate, d("-0.03750000"));
    assert_eq!(old[0].funding_time, 1570608000000);
    assert_eq!(old[0].rate_type, FundingRateType::Regular, "absent rateType is Regular");
    // The two documented rows are 8 h apart: the spacing shows the interval.
    assert_eq!(keel_core::futures::observed_interval_hours(&old), Some(8));
    let new = parse::<Vec<FundingRateRow>>(&dir, "fapi_fundingRate_connector.json");
    assert_eq!(new[0].rate_type.as_deref(), Some("Regular"));

    let info = keel_core::futures::FundingIntervals::new(
        parse::<Vec<FundingInfoRow>>(&dir, "fapi_fundingInfo.json").iter().map(FundingInfoRow::to_core).collect(),
    );
    let blz = info.get(&keel_core::Symbol::new("BLZUSDT")).unwrap();
    assert_eq!((blz.interval_hours, blz.rate_cap, blz.rate_floor), (8, Some(d("0.025")), Some(d("-0.025"))));
}

#[test]
fn open_interest_history_reads_string_and_integer_timestamps() {
    let Some(dir) = fixtures() else { return };
    let old = parse::<Vec<OpenInterestHistRow>>(&dir, "futures_data_openInterestHist.json");
    assert_eq!(old[0].timestamp, 1583127900000, "string timestamp");
    assert_eq!(old[1].sum_open_interest_value, d("149940752.14464448"));
    let new = parse::<Vec<OpenInterestHistRow>>(&dir, "futures_data_openInterestHist_connector.json");
    assert_eq!(new[0].timestamp, 1591261042378, "integer timestamp, unknown CMCCirculatingSupply ignored");
    let oi = parse::<OpenInterestRest>(&dir, "fapi_openInterest.json").to_core();
    assert_eq!((oi.open_interest, oi.ts_ms), (d("10659.509"), 1589437530011));
}

#[test]
fn mark_price_events_tolerate_new_fields_and_drop_coin_m_items() {
    let Some(dir) = fixtures() else { return };
    let current: MarkPriceUpdate = parse(&dir, "ws_fapi_markPriceUpdate_connector.json");
    assert!(current.is_usdm());
    let m = current.to_core();
    assert_eq!((m.mark_price, m.next_funding_time), (d("11794.15000000"), Some(1562306400000)));
    assert_eq!(m.funding_rate_estimate, Some(d("0.00038167")));

    // The merged all-market array: the fixture's UM item plus a CM item
    // made from it (`st: 2`) — only the UM one is kept.
    let mut arr: Value = parse(&dir, "ws_fapi_markPrice_arr_connector.json");
    let mut cm = arr[0].clone();
    cm["s"] = "BTCUSD_PERP".into();
    cm["st"] = 2.into();
    arr.as_array_mut().unwrap().push(cm);
    let kept = serde_json::from_value::<MarkPriceMessage>(arr).unwrap().usdm();
    assert_eq!(kept.iter().map(|u| u.symbol.as_str()).collect::<Vec<_>>(), ["BTCUSDT"]);

    let delivery: MarkPriceUpdate = parse(&dir, "ws_dapi_markPriceUpdate_delivery.json");
    assert_eq!((delivery.funding_rate, delivery.next_funding_time), (None, None));

    // The merged ticker arrays: `st` read, so COIN-M items can be dropped.
    let tickers = many::<WsTicker>(&dir, "ws_fapi_ticker_arr_connector.json");
    assert!(tickers.iter().all(WsTicker::is_usdm));
    let mut cm = parse::<Value>(&dir, "ws_fapi_miniTicker_arr_connector.json");
    cm[0]["st"] = 2.into();
    let cm: Vec<WsTicker> = serde_json::from_value(cm).unwrap();
    assert!(!cm[0].is_usdm());
}

#[test]
fn exchange_info_finds_the_perpetuals_and_the_weight_limit() {
    let Some(dir) = fixtures() else { return };
    for name in ["fapi_exchangeInfo.json", "fapi_exchangeInfo_current_schema.json"] {
        let info: FuturesExchangeInfo = parse(&dir, name);
        let weight = info.rate_limits.iter().find(|r| r.rate_limit_type == "REQUEST_WEIGHT").unwrap();
        assert_eq!((weight.limit, weight.window_ms()), (2400, 60_000), "{name}");
        let blz = info.symbols.iter().find(|s| s.symbol == "BLZUSDT").unwrap();
        assert!(blz.is_trading_perpetual(), "{name}");
        assert_eq!((blz.base_asset.as_str(), blz.margin_asset.as_str()), ("BLZ", "USDT"));
    }
    let k = parse::<Vec<MarkKline>>(&dir, "fapi_markPriceKlines.json");
    assert_eq!((k[0].open_time, k[0].close, k[0].close_time), (1591256460000, d("9653.07367333"), 1591256519999));
}

#[test]
fn fapi_errors_classify_like_spot_ones() {
    let Some(dir) = fixtures() else { return };
    let cases = [
        ("error_fapi_-1003_too_many_requests_schema.json", 429),
        ("error_fapi_-1003_ip_banned_schema.json", 418),
        ("error_fapi_-1121_invalid_symbol.json", 400),
    ];
    for (name, status) in cases {
        let err = BinanceError::from_api(status, parse(&dir, name), None).to_venue();
        match (status, &err) {
            (429, VenueError::RateLimited { .. }) | (418, VenueError::Banned { .. }) => {}
            (400, VenueError::Rejected { code: -1121, .. }) => {}
            _ => panic!("{name}: {err:?}"),
        }
    }
}
