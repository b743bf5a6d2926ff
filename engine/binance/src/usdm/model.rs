//! Serde models of the USDⓈ-M futures market-data payloads (and the 24 h
//! tickers the spot universe reads), deserialized leniently: unknown fields
//! are ignored (the all-market streams gained `st`/`ps` in 2026), decimals
//! come as strings or numbers, an empty string is "none" (delivery and
//! COIN-M symbols send `"lastFundingRate": ""`, `"r": ""`), a funding time of
//! 0 is "none", and times come as integers or strings (`openInterestHist`'s
//! older `timestamp`).

use rust_decimal::Decimal;
use serde::{Deserialize, Deserializer};
use serde_json::Value;

use keel_core::futures::{FundingInfo, FundingRateType, FundingSettlement, MarkPrice, OpenInterest, OpenInterestStat};
use keel_core::symbol::Symbol;

use crate::model::RateLimit;

/// `st` of a USDⓈ-M item on the merged all-market streams.
pub const SYMBOL_TYPE_UM: u8 = 1;

fn decimal_of(v: &Value) -> Result<Option<Decimal>, String> {
    match v {
        Value::Null => Ok(None),
        Value::String(s) if s.trim().is_empty() => Ok(None),
        Value::String(s) => s.trim().parse().map(Some).map_err(|e| format!("{s:?} is not a decimal: {e}")),
        Value::Number(n) => n.to_string().parse().map(Some).map_err(|e| format!("{n} is not a decimal: {e}")),
        other => Err(format!("{other} is not a decimal")),
    }
}

fn time_of(v: &Value) -> Result<Option<i64>, String> {
    match v {
        Value::Null => Ok(None),
        Value::Number(n) => n.as_i64().map(Some).ok_or_else(|| format!("{n} is not a time in ms")),
        Value::String(s) if s.trim().is_empty() => Ok(None),
        Value::String(s) => s.trim().parse().map(Some).map_err(|e| format!("{s:?} is not a time in ms: {e}")),
        other => Err(format!("{other} is not a time in ms")),
    }
}

/// A decimal from a string or a number; `""` and `null` are none.
pub(crate) fn opt_decimal<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Decimal>, D::Error> {
    decimal_of(&Value::deserialize(d)?).map_err(serde::de::Error::custom)
}

/// A decimal that must be there.
pub(crate) fn decimal<'de, D: Deserializer<'de>>(d: D) -> Result<Decimal, D::Error> {
    opt_decimal(d)?.ok_or_else(|| serde::de::Error::custom("a decimal is required here"))
}

/// A time in ms from an integer or a string.
pub(crate) fn time_ms<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    time_of(&Value::deserialize(d)?)
        .map_err(serde::de::Error::custom)?
        .ok_or_else(|| serde::de::Error::custom("a time is required here"))
}

/// A funding time: 0, `""` and `null` (delivery contracts) are none.
pub(crate) fn funding_time<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    Ok(time_of(&Value::deserialize(d)?).map_err(serde::de::Error::custom)?.filter(|t| *t > 0))
}

/// `GET /fapi/v1/premiumIndex` (one item; the all-symbol form is an array).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PremiumIndex {
    /// Symbol.
    pub symbol: String,
    /// Mark price.
    #[serde(deserialize_with = "decimal")]
    pub mark_price: Decimal,
    /// Index price.
    #[serde(default, deserialize_with = "opt_decimal")]
    pub index_price: Option<Decimal>,
    /// Estimated settle price.
    #[serde(default, deserialize_with = "opt_decimal")]
    pub estimated_settle_price: Option<Decimal>,
    /// The live funding estimate (despite its name).
    #[serde(default, deserialize_with = "opt_decimal")]
    pub last_funding_rate: Option<Decimal>,
    /// Interest component.
    #[serde(default, deserialize_with = "opt_decimal")]
    pub interest_rate: Option<Decimal>,
    /// Next settlement (none for delivery contracts).
    #[serde(default, deserialize_with = "funding_time")]
    pub next_funding_time: Option<i64>,
    /// When.
    #[serde(deserialize_with = "time_ms")]
    pub time: i64,
}

impl PremiumIndex {
    /// The exchange-neutral form.
    pub fn to_core(&self) -> MarkPrice {
        MarkPrice {
            symbol: Symbol::new(&self.symbol),
            mark_price: self.mark_price,
            index_price: self.index_price,
            estimated_settle_price: self.estimated_settle_price,
            funding_rate_estimate: self.last_funding_rate,
            interest_rate: self.interest_rate,
            next_funding_time: self.next_funding_time,
            ts_ms: self.time,
        }
    }
}

/// The perpetuals of an all-symbol `premiumIndex` answer: delivery
/// contracts (no funding time) are dropped, and, when the trading
/// perpetuals of `exchangeInfo` are known, everything not among them.
pub fn perpetuals_only(all: Vec<PremiumIndex>, known: Option<&std::collections::HashSet<String>>) -> Vec<PremiumIndex> {
    all.into_iter().filter(|p| p.next_funding_time.is_some() && known.is_none_or(|k| k.contains(&p.symbol))).collect()
}

/// `premiumIndex` answers an object for one symbol and an array without.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum PremiumIndexAnswer {
    /// One symbol.
    One(PremiumIndex),
    /// Every symbol.
    All(Vec<PremiumIndex>),
}

impl PremiumIndexAnswer {
    /// The items, in the venue's order.
    pub fn into_vec(self) -> Vec<PremiumIndex> {
        match self {
            Self::One(p) => vec![p],
            Self::All(v) => v,
        }
    }
}

/// One row of `GET /fapi/v1/fundingRate`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FundingRateRow {
    /// Symbol.
    pub symbol: String,
    /// Settled rate.
    #[serde(deserialize_with = "decimal")]
    pub funding_rate: Decimal,
    /// When it settled.
    #[serde(deserialize_with = "time_ms")]
    pub funding_time: i64,
    /// Mark price at settlement.
    #[serde(default, deserialize_with = "opt_decimal")]
    pub mark_price: Option<Decimal>,
    /// `Regular` or `Special` (absent before 2026-07).
    #[serde(default)]
    pub rate_type: Option<String>,
}

impl FundingRateRow {
    /// The exchange-neutral form.
    pub fn to_core(&self) -> FundingSettlement {
        FundingSettlement {
            symbol: Symbol::new(&self.symbol),
            rate: self.funding_rate,
            funding_time: self.funding_time,
            mark_price: self.mark_price,
            rate_type: FundingRateType::parse(self.rate_type.as_deref()),
        }
    }
}

/// One item of `GET /fapi/v1/fundingInfo`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FundingInfoRow {
    /// Symbol.
    pub symbol: String,
    /// Adjusted cap.
    #[serde(default, deserialize_with = "opt_decimal")]
    pub adjusted_funding_rate_cap: Option<Decimal>,
    /// Adjusted floor.
    #[serde(default, deserialize_with = "opt_decimal")]
    pub adjusted_funding_rate_floor: Option<Decimal>,
    /// Hours between settlements.
    pub funding_interval_hours: u32,
}

impl FundingInfoRow {
    /// The exchange-neutral form.
    pub fn to_core(&self) -> FundingInfo {
        FundingInfo {
            symbol: Symbol::new(&self.symbol),
            interval_hours: self.funding_interval_hours,
            rate_cap: self.adjusted_funding_rate_cap,
            rate_floor: self.adjusted_funding_rate_floor,
        }
    }
}

/// `GET /fapi/v1/openInterest`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OpenInterestRest {
    /// Symbol.
    pub symbol: String,
    /// Open interest (base units).
    #[serde(deserialize_with = "decimal")]
    pub open_interest: Decimal,
    /// When.
    #[serde(deserialize_with = "time_ms")]
    pub time: i64,
}

impl OpenInterestRest {
    /// The exchange-neutral form.
    pub fn to_core(&self) -> OpenInterest {
        OpenInterest { symbol: Symbol::new(&self.symbol), open_interest: self.open_interest, ts_ms: self.time }
    }
}

/// One row of `GET /futures/data/openInterestHist`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OpenInterestHistRow {
    /// Symbol.
    pub symbol: String,
    /// Open interest (base units).
    #[serde(deserialize_with = "decimal")]
    pub sum_open_interest: Decimal,
    /// Its value in the quote asset.
    #[serde(deserialize_with = "decimal")]
    pub sum_open_interest_value: Decimal,
    /// End of the period (an integer, or a string in older answers).
    #[serde(deserialize_with = "time_ms")]
    pub timestamp: i64,
}

impl OpenInterestHistRow {
    /// The exchange-neutral form.
    pub fn to_core(&self) -> OpenInterestStat {
        OpenInterestStat {
            symbol: Symbol::new(&self.symbol),
            sum_open_interest: self.sum_open_interest,
            sum_open_interest_value: self.sum_open_interest_value,
            ts_ms: self.timestamp,
        }
    }
}

/// A `markPriceUpdate` event (`@markPrice`, and each item of `!markPrice@arr`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct MarkPriceUpdate {
    /// Event time.
    #[serde(rename = "E", deserialize_with = "time_ms")]
    pub event_time: i64,
    /// Symbol.
    #[serde(rename = "s")]
    pub symbol: String,
    /// Mark price.
    #[serde(rename = "p", deserialize_with = "decimal")]
    pub mark_price: Decimal,
    /// Index price.
    #[serde(rename = "i", default, deserialize_with = "opt_decimal")]
    pub index_price: Option<Decimal>,
    /// Estimated settle price.
    #[serde(rename = "P", default, deserialize_with = "opt_decimal")]
    pub estimated_settle_price: Option<Decimal>,
    /// Funding estimate (`""` for delivery contracts).
    #[serde(rename = "r", default, deserialize_with = "opt_decimal")]
    pub funding_rate: Option<Decimal>,
    /// Next funding time (0 for delivery contracts).
    #[serde(rename = "T", default, deserialize_with = "funding_time")]
    pub next_funding_time: Option<i64>,
    /// Symbol type on the merged streams: 1 USDⓈ-M, 2 COIN-M (absent before 2026-06-30).
    #[serde(rename = "st", default)]
    pub symbol_type: Option<u8>,
}

impl MarkPriceUpdate {
    /// Whether the item belongs to USDⓈ-M (the merged all-market streams
    /// also carry COIN-M items, `st: 2`).
    pub fn is_usdm(&self) -> bool {
        self.symbol_type.is_none_or(|t| t == SYMBOL_TYPE_UM)
    }

    /// The exchange-neutral form.
    pub fn to_core(&self) -> MarkPrice {
        MarkPrice {
            symbol: Symbol::new(&self.symbol),
            mark_price: self.mark_price,
            index_price: self.index_price,
            estimated_settle_price: self.estimated_settle_price,
            funding_rate_estimate: self.funding_rate,
            interest_rate: None,
            next_funding_time: self.next_funding_time,
            ts_ms: self.event_time,
        }
    }
}

/// A mark-price stream message: one event, or the all-market array.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum MarkPriceMessage {
    /// `<symbol>@markPrice[@1s]`.
    One(MarkPriceUpdate),
    /// `!markPrice@arr[@1s]`.
    All(Vec<MarkPriceUpdate>),
}

impl MarkPriceMessage {
    /// The USDⓈ-M items (COIN-M items of the merged streams dropped).
    pub fn usdm(self) -> Vec<MarkPriceUpdate> {
        let all = match self {
            Self::One(u) => vec![u],
            Self::All(v) => v,
        };
        all.into_iter().filter(MarkPriceUpdate::is_usdm).collect()
    }
}

/// A 24 h rolling ticker, as fapi `ticker/24hr` and spot `ticker/24hr`
/// (FULL or MINI) and `ticker` (rolling window) answer it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Ticker24hr {
    /// Symbol.
    pub symbol: String,
    /// Change over the window (absent in MINI).
    #[serde(default, deserialize_with = "opt_decimal")]
    pub price_change: Option<Decimal>,
    /// Change in percent (absent in MINI).
    #[serde(default, deserialize_with = "opt_decimal")]
    pub price_change_percent: Option<Decimal>,
    /// Last price.
    #[serde(deserialize_with = "decimal")]
    pub last_price: Decimal,
    /// Open price.
    #[serde(deserialize_with = "decimal")]
    pub open_price: Decimal,
    /// High.
    #[serde(deserialize_with = "decimal")]
    pub high_price: Decimal,
    /// Low.
    #[serde(deserialize_with = "decimal")]
    pub low_price: Decimal,
    /// Base volume.
    #[serde(deserialize_with = "decimal")]
    pub volume: Decimal,
    /// Quote volume.
    #[serde(deserialize_with = "decimal")]
    pub quote_volume: Decimal,
    /// Window start.
    #[serde(deserialize_with = "time_ms")]
    pub open_time: i64,
    /// Window end.
    #[serde(deserialize_with = "time_ms")]
    pub close_time: i64,
    /// Trades in the window.
    #[serde(default)]
    pub count: u64,
}

/// One item of the futures `!ticker@arr` / `!miniTicker@arr` streams (and
/// the spot `!miniTicker@arr`): the fields both carry.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct WsTicker {
    /// `24hrTicker` or `24hrMiniTicker`.
    #[serde(rename = "e")]
    pub event: String,
    /// Event time.
    #[serde(rename = "E", deserialize_with = "time_ms")]
    pub event_time: i64,
    /// Symbol.
    #[serde(rename = "s")]
    pub symbol: String,
    /// Last price.
    #[serde(rename = "c", deserialize_with = "decimal")]
    pub close: Decimal,
    /// Open price.
    #[serde(rename = "o", deserialize_with = "decimal")]
    pub open: Decimal,
    /// High.
    #[serde(rename = "h", deserialize_with = "decimal")]
    pub high: Decimal,
    /// Low.
    #[serde(rename = "l", deserialize_with = "decimal")]
    pub low: Decimal,
    /// Base volume.
    #[serde(rename = "v", deserialize_with = "decimal")]
    pub volume: Decimal,
    /// Quote volume.
    #[serde(rename = "q", deserialize_with = "decimal")]
    pub quote_volume: Decimal,
    /// Symbol type (futures only: 1 USDⓈ-M, 2 COIN-M).
    #[serde(rename = "st", default)]
    pub symbol_type: Option<u8>,
}

impl WsTicker {
    /// Whether the item belongs to USDⓈ-M (or is a spot item, which has no `st`).
    pub fn is_usdm(&self) -> bool {
        self.symbol_type.is_none_or(|t| t == SYMBOL_TYPE_UM)
    }
}

/// One contract of `GET /fapi/v1/exchangeInfo`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FuturesSymbol {
    /// Symbol.
    pub symbol: String,
    /// Pair.
    #[serde(default)]
    pub pair: String,
    /// `PERPETUAL`, `CURRENT_QUARTER`, … (unknown values: not a perpetual).
    #[serde(default)]
    pub contract_type: String,
    /// `TRADING`, `SETTLING`, …
    #[serde(default)]
    pub status: String,
    /// Base asset.
    #[serde(default)]
    pub base_asset: String,
    /// Quote asset.
    #[serde(default)]
    pub quote_asset: String,
    /// Settlement asset.
    #[serde(default)]
    pub margin_asset: String,
    /// Filters, kept raw (their value types drift between versions).
    #[serde(default)]
    pub filters: Vec<Value>,
}

impl FuturesSymbol {
    /// A perpetual that trades.
    pub fn is_trading_perpetual(&self) -> bool {
        self.contract_type == "PERPETUAL" && self.status == "TRADING"
    }
}

/// `GET /fapi/v1/exchangeInfo`: the limits and the contracts.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FuturesExchangeInfo {
    /// Limits (`REQUEST_WEIGHT` 2400/min on production).
    #[serde(default)]
    pub rate_limits: Vec<RateLimit>,
    /// Contracts.
    #[serde(default)]
    pub symbols: Vec<FuturesSymbol>,
}

/// One mark-price kline (`markPriceKlines`): positions 0–4 and 6; the rest
/// is documented as "ignore" (and the doc's example has `"0 "` at 5).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MarkKline {
    /// Open time.
    pub open_time: i64,
    /// Open.
    pub open: Decimal,
    /// High.
    pub high: Decimal,
    /// Low.
    pub low: Decimal,
    /// Close.
    pub close: Decimal,
    /// Close time.
    pub close_time: i64,
}

impl<'de> Deserialize<'de> for MarkKline {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let a = Vec::<Value>::deserialize(d)?;
        let at = |i: usize| a.get(i).unwrap_or(&Value::Null);
        let dec = |i: usize| {
            decimal_of(at(i))
                .and_then(|v| v.ok_or_else(|| "missing".to_string()))
                .map_err(|e| serde::de::Error::custom(format!("markPriceKline[{i}]: {e}")))
        };
        let time = |i: usize| {
            time_of(at(i))
                .and_then(|v| v.ok_or_else(|| "missing".to_string()))
                .map_err(|e| serde::de::Error::custom(format!("markPriceKline[{i}]: {e}")))
        };
        Ok(Self {
            open_time: time(0)?,
            open: dec(1)?,
            high: dec(2)?,
            low: dec(3)?,
            close: dec(4)?,
            close_time: time(6)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delivery_items_read_empty_and_zero_as_none() {
        let raw = r#"{"e":"markPriceUpdate","E":1,"s":"BTCUSD_201225","p":"1","P":"2","i":"3","r":"","T":0}"#;
        let u: MarkPriceUpdate = serde_json::from_str(raw).unwrap();
        assert_eq!((u.funding_rate, u.next_funding_time), (None, None));
    }

    #[test]
    fn coin_m_items_of_the_merged_array_are_dropped() {
        let raw = r#"[{"e":"markPriceUpdate","E":1,"s":"BTCUSDT","p":"1","r":"0.0001","T":5,"st":1},
                      {"e":"markPriceUpdate","E":1,"s":"BTCUSD_PERP","p":"1","r":"0.0001","T":5,"st":2,"new":true},
                      {"e":"markPriceUpdate","E":1,"s":"ETHUSDT","p":"1","r":"0.0001","T":5}]"#;
        let m: MarkPriceMessage = serde_json::from_str(raw).unwrap();
        let kept: Vec<String> = m.usdm().into_iter().map(|u| u.symbol).collect();
        assert_eq!(kept, ["BTCUSDT", "ETHUSDT"]);
    }

    #[test]
    fn a_bad_decimal_is_an_error_naming_the_value() {
        let raw = r#"{"symbol":"X","markPrice":"abc","time":1}"#;
        let err = serde_json::from_str::<PremiumIndex>(raw).unwrap_err().to_string();
        assert!(err.contains("\"abc\""), "{err}");
    }
}
