//! The account over time: `GET /api/v1/equity` (the stored equity history,
//! its peak and drawdown against the risk limit) and `GET /api/v1/pnl`
//! (today's and the running totals). Decimals are normalised JSON strings.

use actix_web::{web, HttpRequest, HttpResponse};
use keel_core::store::EQUITY_KEEP;
use keel_core::Decimal;
use serde_json::json;

use super::{authorize, limit_of, ApiResult, ApiState};
use crate::summary;

/// Equity points answered when `limit` is not given (a day of minute points).
const DEFAULT_POINTS: usize = 1440;

/// A decimal as a JSON string, trailing zeros removed.
fn text(v: Decimal) -> String {
    v.normalize().to_string()
}

/// How far `equity` is below `peak`, as a fraction of the peak (zero at or
/// above it; unknown for a peak that is not positive).
fn drawdown(peak: Decimal, equity: Decimal) -> Option<Decimal> {
    if peak <= Decimal::ZERO {
        return None;
    }
    Some(((peak - equity).max(Decimal::ZERO) / peak).round_dp(8))
}

/// `GET /api/v1/equity?limit=N`: the newest N points, oldest first; the peak
/// is the risk guard's high-water mark (the one its drawdown limit is
/// measured from), or the highest point shown before the guard has one.
pub(super) async fn equity(req: HttpRequest, state: web::Data<ApiState>) -> ApiResult {
    authorize(&req, &state)?;
    let limit = limit_of(&req, DEFAULT_POINTS, EQUITY_KEEP)?;
    let points = state.handle.equity_history(limit).await?;
    let risk = state.handle.risk().await?;
    let quote_asset = state.handle.portfolio().await?.quote_asset;
    let protections = &risk.snapshot.protections;
    let peak = protections.high_water_mark.or_else(|| points.iter().map(|p| p.equity).max());
    let now = protections.equity.or_else(|| points.last().map(|p| p.equity));
    let limit_pct = risk.snapshot.limits.max_drawdown_pct;
    let max_drawdown = (!limit_pct.is_zero()).then(|| text(limit_pct / Decimal::ONE_HUNDRED));
    let points: Vec<_> = points
        .iter()
        .map(|p| json!({ "ts": p.ts_ms, "time": summary::rfc3339(p.ts_ms), "equity": text(p.equity) }))
        .collect();
    Ok(HttpResponse::Ok().json(json!({
        "quote_asset": quote_asset,
        "points": points,
        "peak": peak.map(text),
        "drawdown": peak.zip(now).and_then(|(p, e)| drawdown(p, e)).map(text),
        "max_drawdown": max_drawdown,
    })))
}

/// `GET /api/v1/pnl`: realized PnL and fees since 00:00 UTC (from the trade
/// journal), and the running totals with the unrealized PnL at the marks.
pub(super) async fn pnl(req: HttpRequest, state: web::Data<ApiState>) -> ApiResult {
    authorize(&req, &state)?;
    let today = state.handle.period_pnl(summary::utc_day_start(summary::now_ms())).await?;
    let p = state.handle.portfolio().await?;
    Ok(HttpResponse::Ok().json(json!({
        "quote_asset": p.quote_asset,
        "today": { "realized": text(today.realized), "fees": text(today.fees) },
        "total": {
            "realized": text(p.realized_pnl),
            "unrealized": text(p.unrealized_pnl),
            "fees": text(p.fees),
        },
    })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drawdown_is_a_fraction_of_the_peak() {
        let d = |s: &str| s.parse::<Decimal>().unwrap();
        let cases = [
            ("10000", "10000", Some("0")),
            ("10000", "9000", Some("0.1")),
            ("10000", "10500", Some("0")),
            ("3", "2", Some("0.33333333")),
            ("0", "5", None),
        ];
        for (peak, equity, want) in cases {
            assert_eq!(drawdown(d(peak), d(equity)).map(text).as_deref(), want, "peak {peak}, equity {equity}");
        }
    }
}
