//! Plain-text views of the engine for operators (Telegram replies, the daily
//! summary, notifications) and the period PnL computed from the trade journal.
//!
//! Nothing here prints a secret: the views are built only from engine state.

use std::fmt::Write as _;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::config::{Config, VenueMode};
use actors::handle::CommandError;
use actors::metrics::metrics;
use actors::EngineHandle;
use keel_core::order::OrderType;
use keel_core::Decimal;

/// Milliseconds in a day.
pub const DAY_MS: i64 = 86_400_000;

/// Wall-clock time now (ms since the epoch).
pub fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

/// The start of the UTC day containing `ms`.
pub fn utc_day_start(ms: i64) -> i64 {
    ms - ms.rem_euclid(DAY_MS)
}

/// A PnL period (`/pnl today|7d|30d`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Period {
    /// Since UTC midnight.
    Today,
    /// The last 7 days.
    Days7,
    /// The last 30 days.
    Days30,
}

impl Period {
    /// Parses `today`, `7d` or `30d` (empty = today).
    pub fn parse(text: &str) -> Option<Self> {
        match text.trim() {
            "" | "today" | "1d" => Some(Self::Today),
            "7d" | "week" => Some(Self::Days7),
            "30d" | "month" => Some(Self::Days30),
            _ => None,
        }
    }

    /// The first millisecond of the period.
    pub fn since(self, now_ms: i64) -> i64 {
        match self {
            Self::Today => utc_day_start(now_ms),
            Self::Days7 => now_ms - 7 * DAY_MS,
            Self::Days30 => now_ms - 30 * DAY_MS,
        }
    }

    /// Display name.
    pub fn label(self) -> &'static str {
        match self {
            Self::Today => "today (UTC)",
            Self::Days7 => "last 7 days",
            Self::Days30 => "last 30 days",
        }
    }
}

/// A decimal for display: trailing zeros removed, at most 8 decimal places.
pub use keel_core::decimal_text::amount as d;

fn opt(v: Option<Decimal>) -> String {
    v.map(d).unwrap_or_else(|| "n/a".into())
}

/// `1d 2h 3m 4s`.
pub fn uptime(secs: u64) -> String {
    let (d, h, m, s) = (secs / 86_400, secs / 3600 % 24, secs / 60 % 60, secs % 60);
    if d > 0 {
        format!("{d}d {h}h {m}m")
    } else if h > 0 {
        format!("{h}h {m}m {s}s")
    } else {
        format!("{m}m {s}s")
    }
}

/// Connectivity of the venue streams from the metrics the actors keep.
pub fn streams() -> (bool, bool) {
    let m = metrics();
    (
        m.stream_connected.with_label_values(&["market"]).get() == 1,
        m.stream_connected.with_label_values(&["user"]).get() == 1,
    )
}

/// Connectivity of the futures mark-price stream; none when no futures feed
/// runs (its series exists only while one does).
pub fn futures_stream() -> Option<bool> {
    let label = actors::futures_feed::STREAM_LABEL;
    metrics()
        .registry
        .gather()
        .iter()
        .filter(|f| f.name() == "keel_stream_connected")
        .flat_map(|f| f.get_metric().iter())
        .find(|m| m.get_label().iter().any(|l| l.name() == "stream" && l.value() == label))
        .map(|m| m.get_gauge().get_value() == 1.0)
}

fn up(b: bool) -> &'static str {
    if b {
        "connected"
    } else {
        "DISCONNECTED"
    }
}

/// `/status`: trading state, connectivity, uptime, equity, today's PnL, strategies.
pub async fn status_text(handle: &EngineHandle, mode: VenueMode) -> Result<String, CommandError> {
    let status = handle.status().await?;
    let today = handle.period_pnl(utc_day_start(now_ms())).await?;
    let (market, user) = streams();
    let mut t = String::new();
    let _ = writeln!(t, "Mode: {}", mode.banner());
    let _ = writeln!(t, "Trading: {} ({})", status.trading_state.as_str(), status.trading_state_reason);
    if status.emergency_stop.active {
        let _ = writeln!(
            t,
            "EMERGENCY STOP set by {}{}: {}",
            status.emergency_stop.set_by.as_deref().unwrap_or("?"),
            status
                .emergency_stop
                .set_at_ms
                .map(|t| format!(" at {}", keel_core::when::utc_relative(t, now_ms())))
                .unwrap_or_default(),
            status.emergency_stop.reason.as_deref().unwrap_or("")
        );
    }
    let _ = writeln!(t, "Venue: {} (market {}, user {})", status.venue, up(market), up(user));
    let _ = writeln!(t, "Uptime: {}", uptime(status.uptime_seconds));
    let q = &status.portfolio.quote_asset;
    let _ = writeln!(t, "Equity: {} {q}", opt(status.portfolio.equity));
    let _ = writeln!(
        t,
        "PnL today: {} {q} realized after fees ({} fills); unrealized now {} {q}",
        d(today.net()),
        today.fills,
        d(status.portfolio.unrealized_pnl)
    );
    let _ = writeln!(t, "Open orders: {}", status.open_orders);
    let _ = writeln!(t, "Strategies:");
    for s in &status.strategies {
        let state = if s.paused { "paused" } else { "running" };
        let failure = s.failure.as_deref().map(|f| format!(" — failed: {f}")).unwrap_or_default();
        let _ = writeln!(t, "  {} ({}) {state}{failure}", s.id, s.kind);
    }
    Ok(t)
}

/// `/positions`.
pub async fn positions_text(handle: &EngineHandle) -> Result<String, CommandError> {
    let p = handle.portfolio().await?;
    let open: Vec<_> = p.positions.iter().filter(|v| !v.position.qty.is_zero()).collect();
    if open.is_empty() {
        return Ok("No open positions.".into());
    }
    let mut t = String::from("Positions:\n");
    for v in open {
        let _ = writeln!(
            t,
            "{} qty {} avg {} mark {} uPnL {} {}",
            v.position.symbol,
            d(v.position.qty),
            d(v.position.avg_price),
            opt(v.mark),
            opt(v.unrealized_pnl),
            p.quote_asset
        );
    }
    Ok(t)
}

/// `/orders`.
pub async fn orders_text(handle: &EngineHandle) -> Result<String, CommandError> {
    let orders = handle.open_orders().await?;
    if orders.is_empty() {
        return Ok("No open orders.".into());
    }
    let mut t = format!("Open orders ({}):\n", orders.len());
    for o in orders.iter().take(30) {
        let price = match &o.order_type {
            OrderType::Market => "market".to_string(),
            OrderType::Limit { price } => format!("limit {}", d(*price)),
            other => format!("{other:?}"),
        };
        let _ = writeln!(
            t,
            "{} {:?} {} {} filled {} [{}] {:?}",
            o.symbol,
            o.side,
            d(o.qty),
            price,
            d(o.filled_qty),
            o.strategy_id,
            o.status
        );
    }
    if orders.len() > 30 {
        let _ = writeln!(t, "… and {} more", orders.len() - 30);
    }
    Ok(t)
}

/// `/balance`.
pub async fn balance_text(handle: &EngineHandle) -> Result<String, CommandError> {
    let p = handle.portfolio().await?;
    let mut t = String::from("Balances:\n");
    for b in p.balances.assets.values() {
        if b.free.is_zero() && b.locked.is_zero() {
            continue;
        }
        let _ = writeln!(t, "{} free {} locked {}", b.asset, d(b.free), d(b.locked));
    }
    let _ = writeln!(t, "Equity: {} {}", opt(p.equity), p.quote_asset);
    Ok(t)
}

/// `/pnl [period]`.
pub async fn pnl_text(handle: &EngineHandle, period: Period) -> Result<String, CommandError> {
    let pnl = handle.period_pnl(period.since(now_ms())).await?;
    let p = handle.portfolio().await?;
    let q = &p.quote_asset;
    Ok(format!(
        "PnL {}: realized {} {q}, fees {} {q}, net {} {q} over {} fills.\nUnrealized now: {} {q}. Equity: {} {q}.",
        period.label(),
        d(pnl.realized),
        d(pnl.fees),
        d(pnl.net()),
        pnl.fills,
        d(p.unrealized_pnl),
        opt(p.equity)
    ))
}

/// `/trades [n]`.
pub async fn trades_text(handle: &EngineHandle, n: usize) -> Result<String, CommandError> {
    let fills = handle.recent_fills(n).await?;
    if fills.is_empty() {
        return Ok("No trades yet.".into());
    }
    let mut t = format!("Last {} trades:\n", fills.len());
    for f in fills.iter().rev() {
        let _ = writeln!(
            t,
            "{} {:?} {} {} @ {} fee {} {} [{}]",
            time_hms(f.ts_ms),
            f.side,
            d(f.qty),
            f.symbol,
            d(f.price),
            d(f.fee),
            f.fee_asset,
            f.strategy_id
        );
    }
    Ok(t)
}

/// `/risk`: limits and current usage.
pub async fn risk_text(handle: &EngineHandle, config: &Config) -> Result<String, CommandError> {
    let r = handle.risk().await?;
    let p = handle.portfolio().await?;
    let q = &p.quote_asset;
    let limit = |v: Decimal| if v.is_zero() { "none".to_string() } else { format!("{} {q}", d(v)) };
    let mut t = String::new();
    let _ = writeln!(t, "Trading: {} ({})", r.trading_state.as_str(), r.reason);
    let _ = writeln!(t, "Emergency stop: {}", if r.emergency_stop.active { "SET" } else { "clear" });
    let _ = writeln!(t, "Max order notional: {}", limit(r.max_order_notional));
    let _ = writeln!(t, "Max position notional: {}", limit(r.max_position_notional));
    for v in &p.positions {
        if let Some(mark) = v.mark {
            let notional = (v.position.qty * mark).abs();
            let _ = writeln!(t, "  {} position {} {q}", v.position.symbol, d(notional.round_dp(2)));
        }
    }
    let _ = writeln!(t, "Orders open or in flight: {}", r.in_flight);
    if !config.risk.max_drawdown_pct.is_zero() {
        let dd = metrics().drawdown_ratio.get() * 100.0;
        let _ = writeln!(t, "Drawdown: {dd:.2}% of max {}%", d(config.risk.max_drawdown_pct));
    }
    if r.rejections.is_empty() {
        let _ = writeln!(t, "Rejections: none");
    } else {
        let mut rej: Vec<_> = r.rejections.iter().collect();
        rej.sort();
        let list: Vec<String> = rej.iter().map(|(k, v)| format!("{k} {v}")).collect();
        let _ = writeln!(t, "Rejections: {}", list.join(", "));
    }
    Ok(t)
}

/// `/health`.
pub async fn health_text(handle: &EngineHandle) -> Result<String, CommandError> {
    let r = handle.risk().await?;
    let (market, user) = streams();
    let ages: Vec<String> =
        handle.prices().all().iter().map(|(s, e)| format!("{s} {:.1}s", e.at.elapsed().as_secs_f64())).collect();
    // The futures stream informs strategies; it does not make the engine degraded.
    let futures = futures_stream().map(|f| format!("\nFutures stream: {}", up(f))).unwrap_or_default();
    Ok(format!(
        "{}\nEngine: answering, uptime {}\nMarket stream: {}\nUser stream: {}{futures}\nMarket data age: {}\nTrading: {}",
        if market && user { "OK" } else { "DEGRADED" },
        uptime(handle.uptime().as_secs()),
        up(market),
        up(user),
        if ages.is_empty() { "none yet".into() } else { ages.join(", ") },
        r.trading_state.as_str()
    ))
}

/// The daily summary message.
pub async fn daily_summary_text(handle: &EngineHandle) -> Result<String, CommandError> {
    let now = now_ms();
    // The day that just ended when the summary runs at midnight, else today so far.
    let since = now - DAY_MS;
    let pnl = handle.period_pnl(since).await?;
    let status = handle.status().await?;
    let q = &status.portfolio.quote_asset;
    let paused = status.strategies.iter().filter(|s| s.paused).count();
    Ok(format!(
        "Daily summary (last 24 h)\nTrading: {}\nEquity: {} {q}\nRealized PnL: {} {q}, fees {} {q}, net {} {q}\nFills: {}\nUnrealized now: {} {q}\nStrategies: {} running, {} paused\nOpen orders: {}",
        status.trading_state.as_str(),
        opt(status.portfolio.equity),
        d(pnl.realized),
        d(pnl.fees),
        d(pnl.net()),
        pnl.fills,
        d(status.portfolio.unrealized_pnl),
        status.strategies.len() - paused,
        paused,
        status.open_orders
    ))
}

/// `HH:MM:SS` UTC of a timestamp (with the date when not today).
pub fn time_hms(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let day = secs.div_euclid(86_400);
    let s = secs.rem_euclid(86_400);
    let hms = format!("{:02}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60);
    if day == now_ms().div_euclid(DAY_MS) {
        hms
    } else {
        format!("{} {hms}", date(day))
    }
}

/// `YYYY-MM-DD` of a day number since the epoch; RFC 3339 UTC with
/// milliseconds (for CSV and JSON exports).
pub use keel_core::when::{date, utc_millis as rfc3339};

/// One fill as the API shows it: an item of `GET /api/v1/trades` and the
/// data of a `fill` live event (the stored fill plus its RFC 3339 `time`).
pub fn fill_json(fill: &keel_core::fill::Fill) -> serde_json::Value {
    let mut v = serde_json::to_value(fill).unwrap_or_default();
    if let Some(o) = v.as_object_mut() {
        o.insert("time".into(), serde_json::Value::String(rfc3339(fill.ts_ms)));
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_and_periods() {
        assert_eq!(date(0), "1970-01-01");
        assert_eq!(rfc3339(1_700_000_000_123), "2023-11-14T22:13:20.123Z");
        assert_eq!(Period::parse(""), Some(Period::Today));
        assert_eq!(Period::parse("30d"), Some(Period::Days30));
        assert_eq!(Period::parse("1y"), None);
        assert_eq!(utc_day_start(DAY_MS + 5), DAY_MS);
    }
}
