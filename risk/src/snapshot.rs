//! [`RiskSnapshot`]: everything `keel state`, `/status` and the HTTP API show
//! about risk — the state and its reason, the emergency stop, every limit, the
//! current usage and protection values, and rejection counts by reason.

use std::collections::BTreeMap;
use std::fmt;

use crate::config::RiskConfig;
use keel_core::clock::{Clock, SystemClock};
use keel_core::trading::{EmergencyStop, TradingState, TradingStateRecord};
use keel_core::{decimal_text, when, Decimal, Symbol};
use serde::Serialize;

use crate::engine_core::RiskEngine;
use crate::protections::{LossStreak, Pause, Trip};

/// Usage of one symbol.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SymbolUsage {
    /// Symbol.
    pub symbol: String,
    /// Net position (base asset).
    pub position: Decimal,
    /// Last price, if known.
    pub last_price: Option<Decimal>,
    /// Worst-case position notional counting open and in-flight orders.
    pub position_notional: Decimal,
    /// Open and in-flight buy quantity.
    pub pending_buy: Decimal,
    /// Open and in-flight sell quantity.
    pub pending_sell: Decimal,
    /// Orders open or in flight.
    pub open_orders: usize,
    /// Age of the last market event (ms), if any and if the time is known.
    pub last_event_age_ms: Option<i64>,
}

/// Order rate of one strategy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StrategyUsage {
    /// Strategy id.
    pub strategy: String,
    /// Orders in the last second.
    pub orders_last_second: usize,
    /// Orders in the last minute.
    pub orders_last_minute: usize,
    /// Its orders open or in flight.
    pub open_orders: usize,
}

/// Current usage of the pre-trade limits.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RiskUsage {
    /// Orders open or in flight.
    pub open_orders: usize,
    /// Gross exposure counting open and in-flight orders.
    pub gross_exposure: Decimal,
    /// Orders of all strategies in the last second.
    pub orders_last_second: usize,
    /// Orders of all strategies in the last minute.
    pub orders_last_minute: usize,
    /// Per strategy order rates.
    pub strategies: Vec<StrategyUsage>,
    /// Per symbol usage.
    pub symbols: Vec<SymbolUsage>,
    /// Whether balances are known (the balance check is skipped until they are).
    pub balances_known: bool,
}

/// The protections' current values.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProtectionSnapshot {
    /// Last equity evaluated.
    pub equity: Option<Decimal>,
    /// Equity high-water mark.
    pub high_water_mark: Option<Decimal>,
    /// Drawdown from the mark, in percent.
    pub drawdown_pct: Option<Decimal>,
    /// Equity at the start of the UTC day.
    pub day_start_equity: Option<Decimal>,
    /// PnL since the start of the UTC day (negative is a loss).
    pub daily_pnl: Option<Decimal>,
    /// When equity was last evaluated (ms since the epoch).
    pub last_eval_ms: Option<i64>,
    /// The latched drawdown trip.
    pub drawdown_trip: Option<Trip>,
    /// The latched daily-loss trip.
    pub daily_loss_trip: Option<Trip>,
    /// Current losing streaks.
    pub losing_streaks: Vec<LossStreak>,
    /// Paused strategies.
    pub paused_strategies: Vec<Pause>,
}

/// The risk picture at one moment.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RiskSnapshot {
    /// Effective trading state (`ACTIVE`, `REDUCING`, `HALTED`).
    pub trading_state: TradingState,
    /// Why it is in that state.
    pub state_reason: String,
    /// Since when (ms since the epoch).
    pub state_since_ms: i64,
    /// The base state set by an operator or the engine.
    pub base_state: TradingStateRecord,
    /// The emergency stop.
    pub emergency_stop: EmergencyStop,
    /// Venue healthy (user stream connected and reconciled).
    pub venue_healthy: bool,
    /// Every configured limit.
    pub limits: RiskConfig,
    /// Current usage of the limits.
    pub usage: RiskUsage,
    /// Protection values.
    pub protections: ProtectionSnapshot,
    /// Rejections by reason code.
    pub rejections: BTreeMap<String, u64>,
    /// Orders approved.
    pub approved_total: u64,
}

/// The risk picture of a stopped engine, for `keel state`: the start decision
/// (emergency stop, stored state, protections, fail-closed reason) applied to
/// the configured limits, with the stored positions and open orders as usage
/// (no prices are known offline, so notionals show only what open orders value).
/// Positions or orders that cannot be read are left out (the caller reports
/// its own read errors); the state itself fails closed.
pub fn offline(
    config: crate::config::RiskConfig,
    instruments: Vec<keel_core::instrument::Instrument>,
    store: &dyn keel_core::store::Store,
    now_ms: i64,
) -> RiskSnapshot {
    let mut e = RiskEngine::new(config, instruments);
    e.apply_startup(&crate::emergency::startup_state(store), now_ms);
    for p in store.positions().unwrap_or_default() {
        e.restore_position(p.symbol.clone(), p.qty);
    }
    for o in store.open_orders().unwrap_or_default() {
        e.restore_open_order(&o);
    }
    e.snapshot(None)
}

impl RiskEngine {
    /// The risk picture at `now_ms` (the latest time the engine knows if `None`).
    pub fn snapshot(&self, now_ms: Option<i64>) -> RiskSnapshot {
        let now = now_ms.or(self.now_hint);
        let mut symbols: Vec<&str> = self.instruments.keys().map(|s| s.as_str()).collect();
        let held: Vec<Symbol> = self.account.view.holdings().into_iter().map(|(s, _)| s).collect();
        symbols.extend(held.iter().map(|s| s.as_str()));
        symbols.extend(self.in_flight.values().map(|f| f.symbol.as_str()));
        symbols.sort_unstable();
        symbols.dedup();
        let symbols = symbols
            .into_iter()
            .map(|s| {
                let pending = |side| {
                    self.in_flight
                        .values()
                        .filter(|f| f.symbol.as_str() == s && f.side == side)
                        .fold(Decimal::ZERO, |a, f| a.saturating_add(f.remaining))
                };
                let pending_buy = pending(keel_core::order::Side::Buy);
                let pending_sell = pending(keel_core::order::Side::Sell);
                let position = self.position(s);
                let worst = position.saturating_add(pending_buy).abs().max(position.saturating_sub(pending_sell).abs());
                let price = self.last_price(s).unwrap_or_default();
                SymbolUsage {
                    symbol: s.to_string(),
                    position,
                    last_price: self.last_price(s),
                    position_notional: worst.saturating_mul(price),
                    pending_buy,
                    pending_sell,
                    open_orders: self.in_flight.values().filter(|f| f.symbol.as_str() == s).count(),
                    last_event_age_ms: match (now, self.last_event_ms.get(s)) {
                        (Some(now), Some(t)) => Some(now.saturating_sub(*t)),
                        _ => None,
                    },
                }
            })
            .collect();
        let (orders_last_second, orders_last_minute) = now.map(|n| self.rates.global_usage(n)).unwrap_or((0, 0));
        let mut ids: Vec<&str> = self.in_flight.values().map(|f| f.strategy.as_str()).collect();
        if now.is_some() {
            ids.extend(self.rates.strategies().map(|s| s.as_str()));
        }
        ids.sort_unstable();
        ids.dedup();
        let mut strategies: Vec<StrategyUsage> = ids
            .into_iter()
            .map(|s| {
                let (sec, min) = now.map(|n| self.rates.strategy_usage(s, n)).unwrap_or((0, 0));
                StrategyUsage {
                    strategy: s.to_string(),
                    orders_last_second: sec,
                    orders_last_minute: min,
                    open_orders: self.in_flight.values().filter(|f| f.strategy.as_str() == s).count(),
                }
            })
            .filter(|u| u.orders_last_minute > 0 || u.open_orders > 0)
            .collect();
        strategies.sort_by(|a, b| a.strategy.cmp(&b.strategy));
        let p = self.protections.state();
        RiskSnapshot {
            trading_state: self.effective.state,
            state_reason: self.effective.reason.clone(),
            state_since_ms: self.effective.since_ms,
            base_state: self.base_state.clone(),
            emergency_stop: self.emergency.clone(),
            venue_healthy: self.venue_healthy,
            limits: self.config.clone(),
            usage: RiskUsage {
                open_orders: self.in_flight.len(),
                gross_exposure: self.gross_exposure(),
                orders_last_second,
                orders_last_minute,
                strategies,
                symbols,
                balances_known: self.account.view.with_balances(|b| b.is_some()),
            },
            protections: ProtectionSnapshot {
                equity: p.last_equity,
                high_water_mark: p.high_water_mark,
                drawdown_pct: self.protections.drawdown_pct(),
                day_start_equity: p.day_start_equity,
                daily_pnl: self.protections.daily_pnl(),
                last_eval_ms: p.last_eval_ms,
                drawdown_trip: p.drawdown_trip.clone(),
                daily_loss_trip: p.daily_loss_trip.clone(),
                losing_streaks: p.streaks.clone(),
                paused_strategies: p.pauses.clone(),
            },
            rejections: self.rejections.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
            approved_total: self.approved_total,
        }
    }
}

fn opt<T: fmt::Display>(v: &Option<T>) -> String {
    v.as_ref().map(|v| v.to_string()).unwrap_or_else(|| "-".into())
}

fn limit(v: Decimal) -> String {
    if v.is_zero() {
        "off".into()
    } else {
        v.normalize().to_string()
    }
}

fn pct(v: Decimal) -> String {
    if v.is_zero() {
        "off".into()
    } else {
        format!("{}%", v.normalize())
    }
}

fn count(v: u32) -> String {
    if v == 0 {
        "off".into()
    } else {
        v.to_string()
    }
}

fn ms(v: i64) -> String {
    if v <= 0 {
        "off".into()
    } else {
        when::duration(v.unsigned_abs())
    }
}

/// An amount, or `-` when unknown.
fn amount(v: &Option<Decimal>) -> String {
    v.map(decimal_text::amount).unwrap_or_else(|| "-".into())
}

/// A human-readable summary for `keel state` and `/status`; times in UTC
/// with how long ago or from now (the wall clock's now).
impl fmt::Display for RiskSnapshot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let now = SystemClock.now_ms();
        writeln!(f, "trading state: {} ({})", self.trading_state.as_str(), self.state_reason)?;
        if self.emergency_stop.active {
            writeln!(
                f,
                "emergency stop: SET by {} at {}: {}",
                opt(&self.emergency_stop.set_by),
                self.emergency_stop.set_at_ms.map(|t| when::utc_relative(t, now)).unwrap_or_else(|| "-".into()),
                opt(&self.emergency_stop.reason)
            )?;
        } else {
            writeln!(f, "emergency stop: not set (last cleared by {})", opt(&self.emergency_stop.cleared_by))?;
        }
        writeln!(f, "venue healthy: {}", self.venue_healthy)?;
        let l = &self.limits;
        let u = &self.usage;
        writeln!(
            f,
            "limits: order notional {}, position notional {}, gross exposure {} (now {}), open orders {} (max {})",
            limit(l.max_order_notional),
            limit(l.max_position_notional),
            limit(l.max_gross_exposure),
            decimal_text::amount(u.gross_exposure),
            u.open_orders,
            count(l.max_open_orders),
        )?;
        writeln!(
            f,
            "order rate: {}/s (max {}), {}/min (max {}); per strategy max {}/s, {}/min",
            u.orders_last_second,
            count(l.global_orders_per_second),
            u.orders_last_minute,
            count(l.global_orders_per_minute),
            count(l.strategy_orders_per_second),
            count(l.strategy_orders_per_minute),
        )?;
        writeln!(
            f,
            "price band {}; stale data after {}; duplicate window {}; balance check {}",
            pct(l.price_band_pct),
            ms(l.stale_data_after.0),
            ms(l.duplicate_window.0),
            match (l.check_balance, u.balances_known) {
                (false, _) => "off",
                (true, true) => "on",
                (true, false) => "on (waiting for balances)",
            },
        )?;
        let p = &self.protections;
        writeln!(
            f,
            "protections: equity {}, high-water mark {}, drawdown {} (max {}), daily PnL {} (limit {} / {})",
            amount(&p.equity),
            amount(&p.high_water_mark),
            p.drawdown_pct.map(|v| format!("{}%", decimal_text::percent(v))).unwrap_or_else(|| "-".into()),
            pct(l.max_drawdown_pct),
            amount(&p.daily_pnl),
            limit(l.daily_loss_limit),
            pct(l.daily_loss_limit_pct),
        )?;
        for trip in p.drawdown_trip.iter().chain(p.daily_loss_trip.iter()) {
            writeln!(
                f,
                "  TRIPPED at {} -> {}: {}",
                when::utc_relative(trip.at_ms, now),
                trip.state.as_str(),
                trip.reason
            )?;
        }
        for pause in &p.paused_strategies {
            writeln!(
                f,
                "  strategy {}{} paused by {} until {}: {}",
                pause.strategy,
                pause.symbol.as_deref().map(|s| format!(" on {s}")).unwrap_or_default(),
                pause.by,
                pause.until_ms.map(|t| when::utc_relative(t, now)).unwrap_or_else(|| "resumed".into()),
                pause.reason
            )?;
        }
        if !self.rejections.is_empty() {
            let list: Vec<String> = self.rejections.iter().map(|(k, v)| format!("{k}={v}")).collect();
            writeln!(f, "rejections: {}", list.join(", "))?;
        }
        Ok(())
    }
}
