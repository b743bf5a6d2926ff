//! The REST market-data endpoints: `depth`, `trades`, `historicalTrades`,
//! `aggTrades`, `klines`, `avgPrice` and the `ticker/*` family, read from the
//! same book, tape and bars the streams send.

use serde_json::{json, Value};

use keel_core::market::Bar;

use super::exchange::{d8, Reject, BAR_MS};
use super::rest::{interval_ms, Params};
use super::tape::{BarStats, PublicTrade};
use super::App;

/// Most trades one request returns.
const TRADES_MAX: u64 = 1000;
/// Trades returned without `limit`.
const TRADES_DEFAULT: u64 = 500;
/// Most depth levels a side.
const DEPTH_MAX: u64 = 5000;

fn invalid_symbol() -> Reject {
    Reject::new(-1121, "Invalid symbol.")
}

/// An unsigned integer parameter, refused as Binance does (`-1100` with
/// the legal range) when it is not one.
fn uint(p: &Params, k: &str) -> Result<Option<u64>, Reject> {
    match p.get(k) {
        None => Ok(None),
        Some(v) => match v.parse::<u64>() {
            Ok(n) if v.len() <= 20 && v.bytes().all(|b| b.is_ascii_digit()) => Ok(Some(n)),
            _ => Err(Reject::new(
                -1100,
                format!("Illegal characters found in parameter '{k}'; legal range is '^[0-9]{{1,20}}$'."),
            )),
        },
    }
}

/// `limit`: its default when absent, at most `max` (a larger one is cut, as
/// Binance cuts depth at 5000), at least 1.
fn limit(p: &Params, default: u64, max: u64) -> Result<usize, Reject> {
    Ok(uint(p, "limit")?.unwrap_or(default).clamp(1, max) as usize)
}

/// `GET /api/v3/depth`.
pub(crate) fn depth(app: &App, p: &Params) -> Result<Value, Reject> {
    let symbol = p.req("symbol")?;
    let limit = limit(p, 100, DEPTH_MAX)?;
    app.ex.lock().depth_snapshot(symbol, limit).ok_or_else(invalid_symbol)
}

fn trades_json(list: Vec<&PublicTrade>, agg: bool) -> Value {
    Value::Array(list.into_iter().map(|t| if agg { t.agg_json() } else { t.rest_json() }).collect())
}

/// `GET /api/v3/trades`: the most recent trades.
pub(crate) fn trades(app: &App, p: &Params) -> Result<Value, Reject> {
    let symbol = p.req("symbol")?;
    let limit = limit(p, TRADES_DEFAULT, TRADES_MAX)?;
    let st = app.ex.lock();
    let v = st.market_view(symbol).ok_or_else(invalid_symbol)?;
    Ok(trades_json(v.tape.recent(limit), false))
}

/// `GET /api/v3/historicalTrades`: trades from `fromId`, or the most recent.
pub(crate) fn historical_trades(app: &App, p: &Params) -> Result<Value, Reject> {
    let symbol = p.req("symbol")?;
    let limit = limit(p, TRADES_DEFAULT, TRADES_MAX)?;
    let from = uint(p, "fromId")?;
    let st = app.ex.lock();
    let v = st.market_view(symbol).ok_or_else(invalid_symbol)?;
    Ok(trades_json(from.map_or_else(|| v.tape.recent(limit), |id| v.tape.since_id(id, limit)), false))
}

/// `GET /api/v3/aggTrades`: from `fromId`, or within `startTime`/`endTime`
/// (either alone, or both: the oldest first), or the most recent.
pub(crate) fn agg_trades(app: &App, p: &Params) -> Result<Value, Reject> {
    let symbol = p.req("symbol")?;
    let limit = limit(p, TRADES_DEFAULT, TRADES_MAX)?;
    let from = uint(p, "fromId")?;
    let start = uint(p, "startTime")?.map(|v| v as i64);
    let end = uint(p, "endTime")?.map(|v| v as i64);
    if from.is_some() && (start.is_some() || end.is_some()) {
        return Err(Reject::new(-1128, "Combination of optional parameters invalid."));
    }
    let st = app.ex.lock();
    let v = st.market_view(symbol).ok_or_else(invalid_symbol)?;
    let list = match (from, start, end) {
        (Some(id), _, _) => v.tape.since_id(id, limit),
        (None, None, None) => v.tape.recent(limit),
        (None, s, e) => v.tape.by_time(s, e, limit),
    };
    Ok(trades_json(list, true))
}

/// Builds bars of `interval` from 1m bars and their trade statistics.
fn aggregate(bars: Vec<(Bar, BarStats)>, interval: i64) -> Vec<(Bar, BarStats)> {
    if interval == BAR_MS {
        return bars;
    }
    let mut out: Vec<(Bar, BarStats)> = Vec::new();
    for (b, s) in bars {
        let open = b.open_time - b.open_time.rem_euclid(interval);
        match out.last_mut() {
            Some((last, ls)) if last.open_time == open => {
                last.high = last.high.max(b.high);
                last.low = last.low.min(b.low);
                last.close = b.close;
                last.volume += b.volume;
                ls.merge(&s);
            }
            _ => out.push((Bar { open_time: open, close_time: open + interval - 1, ..b }, s)),
        }
    }
    out
}

/// `GET /api/v3/klines` (and `uiKlines`): closed bars only, with their
/// quote volume, trade count and taker-buy volumes from the tape.
pub(crate) fn klines(app: &App, p: &Params) -> Result<Value, Reject> {
    let symbol = p.req("symbol")?;
    let interval = interval_ms(p.req("interval")?).ok_or_else(|| Reject::new(-1120, "Invalid interval."))?;
    let limit = limit(p, 500, 1000)?;
    let start = p.int("startTime")?;
    let end = p.int("endTime")?;
    // In real time the bar in progress is served last, as Binance serves it
    // (its close time is still ahead of serverTime). Accelerated, kline times
    // run behind serverTime, so a client could not tell that bar from a
    // closed one: only closed bars are served.
    let real_time = app.cfg.speed <= 1.0;
    let bars: Vec<(Bar, BarStats)> = {
        let st = app.ex.lock();
        let v = st.market_view(symbol).ok_or_else(invalid_symbol)?;
        let current = v.current.filter(|_| real_time).map(|b| (b.clone(), v.tape.current_stats()));
        v.history.iter().map(|b| (b.clone(), v.tape.stats_of(b.open_time))).chain(current).collect()
    };
    let mut bars = bars;
    // The minute that just began has no tick yet: Binance already shows its
    // bar, flat at the last close with no volume.
    let minute = app.faults.server_now_ms().div_euclid(60_000) * 60_000;
    if let Some(last) = bars.last().map(|(b, _)| b.clone()).filter(|b| real_time && b.open_time < minute) {
        let p = last.close;
        let empty = Bar {
            open_time: minute,
            close_time: minute + 59_999,
            open: p,
            high: p,
            low: p,
            close: p,
            volume: rust_decimal::Decimal::ZERO,
            ..last
        };
        bars.push((empty, BarStats::default()));
    }
    let last_closed = bars.last().map(|(b, _)| b.close_time);
    let seam = super::history::Seam::of(bars.first().map(|(b, _)| b));
    let mut agg = aggregate(bars, interval);
    // A longer interval's last bucket is complete only if its last minute closed.
    if !real_time && agg.last().is_some_and(|(b, _)| last_closed.is_some_and(|l| l < b.close_time)) {
        agg.pop();
    }
    // Older than the live window: the deterministic past (the same in
    // every run), so a download of any past range is reproducible.
    let agg = match app.cfg.symbols.iter().find(|s| s.symbol == symbol) {
        Some(sym) => {
            super::history::Past { sym, cfg: &app.cfg.archive, seam }.with_live(interval, start, end, limit, agg)
        }
        None => agg,
    };
    let inside =
        agg.into_iter().filter(|(b, _)| start.is_none_or(|s| b.open_time >= s) && end.is_none_or(|e| b.open_time <= e));
    let inside: Vec<(Bar, BarStats)> = inside.collect();
    let chosen: Vec<(Bar, BarStats)> = if start.is_some() {
        inside.into_iter().take(limit).collect()
    } else {
        let skip = inside.len().saturating_sub(limit);
        inside.into_iter().skip(skip).collect()
    };
    Ok(Value::Array(
        chosen
            .into_iter()
            .map(|(b, s)| {
                json!([
                    b.open_time,
                    d8(b.open),
                    d8(b.high),
                    d8(b.low),
                    d8(b.close),
                    d8(b.volume),
                    b.close_time,
                    d8(s.quote_volume),
                    s.count,
                    d8(s.taker_buy_base),
                    d8(s.taker_buy_quote),
                    "0"
                ])
            })
            .collect(),
    ))
}

/// `GET /api/v3/avgPrice`.
pub(crate) fn avg_price(app: &App, p: &Params) -> Result<Value, Reject> {
    let symbol = p.req("symbol")?;
    super::tickers::avg_price_json(&app.ex.lock(), symbol).ok_or_else(invalid_symbol)
}

/// Which ticker `ticker/*` answers.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Ticker {
    /// `ticker/24hr`.
    Day,
    /// `ticker/price`.
    Price,
    /// `ticker/bookTicker`.
    Book,
}

/// `GET /api/v3/ticker/{24hr,price,bookTicker}`: one object for `symbol`, an
/// array for `symbols` or for every symbol.
pub(crate) fn tickers(app: &App, p: &Params, which: Ticker, now_ms: i64) -> Result<Value, Reject> {
    let mini = match p.get("type") {
        None | Some("FULL") => false,
        Some("MINI") => true,
        Some(_) => {
            return Err(Reject::new(-1100, "Illegal characters found in parameter 'type'; legal range is 'FULL|MINI'."))
        }
    };
    let st = app.ex.lock();
    let one = |symbol: &str| -> Option<Value> {
        match which {
            Ticker::Day => super::tickers::stats_24h(&st, symbol, now_ms).map(|s| {
                if mini {
                    s.rest_mini_json()
                } else {
                    s.rest_json()
                }
            }),
            Ticker::Price => super::tickers::price_json(&st, symbol),
            Ticker::Book => super::tickers::book_json(&st, symbol),
        }
    };
    if let Some(s) = p.get("symbol") {
        return one(s).ok_or_else(invalid_symbol);
    }
    let names: Vec<String> = match p.get("symbols") {
        Some(list) => serde_json::from_str(list)
            .map_err(|_| Reject::new(-1100, "Illegal characters found in parameter 'symbols'."))?,
        None => st.symbols().into_iter().map(|(s, _)| s).collect(),
    };
    names.iter().map(|n| one(n).ok_or_else(invalid_symbol)).collect::<Result<Vec<_>, _>>().map(Value::Array)
}
