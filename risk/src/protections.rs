//! Portfolio protections, evaluated continuously on account equity marked to
//! market: max drawdown from the equity high-water mark, the daily loss limit
//! (UTC day, realized plus unrealized), and consecutive losing round trips per
//! strategy (optionally per symbol), which pause that strategy for a cooldown.
//!
//! A protection that trips *latches*: it keeps requiring its trading state until
//! an operator resumes (or, for the daily loss limit configured so, until the
//! next UTC day). Limits are the largest value allowed: a drawdown or loss
//! exactly at the limit does not trip, anything beyond does. Comparisons are
//! made by cross-multiplication, so they are exact in decimal.
//!
//! The whole state is [`ProtectionState`] (serde), which the RiskGuard actor
//! persists with `Store::put_meta_json` (see [`crate::persist`]).

use crate::config::RiskConfig;
use crate::config::{DailyLossResume, ProtectionAction, ProtectionKind};
use keel_core::trading::TradingState;
use keel_core::Decimal;
use serde::{Deserialize, Serialize};

/// Milliseconds in a UTC day.
pub const DAY_MS: i64 = 86_400_000;

/// The UTC day number (days since the epoch) of a time.
pub fn utc_day(now_ms: i64) -> i64 {
    now_ms.div_euclid(DAY_MS)
}

const HUNDRED: Decimal = Decimal::ONE_HUNDRED;

/// A tripped (latched) protection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Trip {
    /// When it tripped (ms since the epoch).
    pub at_ms: i64,
    /// The state it requires while latched.
    pub state: TradingState,
    /// The value that broke the limit (drawdown in percent, or loss in quote).
    pub value: Decimal,
    /// The limit it broke.
    pub limit: Decimal,
    /// Human-readable cause for logs, `keel state` and notifications.
    pub reason: String,
}

/// A paused strategy (by an operator, or by the consecutive-loss protection).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pause {
    /// The strategy.
    pub strategy: String,
    /// Only this symbol (per-symbol loss counting), or every symbol.
    pub symbol: Option<String>,
    /// When it was paused (ms since the epoch).
    pub since_ms: i64,
    /// When the pause ends by itself (`None`: only by a resume).
    pub until_ms: Option<i64>,
    /// Who paused it (`operator:cli`, `protection:consecutive_losses`, …).
    pub by: String,
    /// Why.
    pub reason: String,
}

impl Pause {
    /// True if the pause applies to `strategy` on `symbol` at `now_ms`
    /// (a pause ends exactly at `until_ms`).
    pub fn applies(&self, strategy: &str, symbol: &str, now_ms: i64) -> bool {
        self.strategy == strategy
            && self.symbol.as_deref().is_none_or(|s| s == symbol)
            && self.until_ms.is_none_or(|until| now_ms < until)
    }
}

/// Losing round trips in a row for one strategy (or strategy and symbol).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LossStreak {
    /// The strategy.
    pub strategy: String,
    /// The symbol, when counting per symbol.
    pub symbol: Option<String>,
    /// Losing round trips in a row.
    pub losses: u32,
}

/// Everything the protections remember; serializable so it survives restarts.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ProtectionState {
    /// Highest equity seen since the last reset.
    pub high_water_mark: Option<Decimal>,
    /// The last equity evaluated.
    pub last_equity: Option<Decimal>,
    /// When equity was last evaluated (ms since the epoch).
    pub last_eval_ms: Option<i64>,
    /// The UTC day of `day_start_equity`.
    pub day: Option<i64>,
    /// Equity at the first evaluation of the UTC day.
    pub day_start_equity: Option<Decimal>,
    /// The latched drawdown trip.
    pub drawdown_trip: Option<Trip>,
    /// The latched daily-loss trip.
    pub daily_loss_trip: Option<Trip>,
    /// Current losing streaks.
    pub streaks: Vec<LossStreak>,
    /// Paused strategies.
    pub pauses: Vec<Pause>,
    /// Set by an operator resume while equity was unknown (engine stopped): the
    /// next evaluation restarts the high-water mark and the day's start there.
    pub reset_pending: bool,
}

impl ProtectionState {
    /// An operator resume: releases every latched protection and restarts the
    /// high-water mark and the day's start at the last equity (or at the next
    /// evaluation when equity is not known, e.g. `keel resume` on a stopped
    /// engine). Strategy pauses are kept; resume those one by one.
    pub fn operator_resume(&mut self, now_ms: i64) -> Vec<ProtectionEvent> {
        let mut events = Vec::new();
        for (slot, protection) in [
            (&mut self.drawdown_trip, ProtectionKind::MaxDrawdown),
            (&mut self.daily_loss_trip, ProtectionKind::DailyLoss),
        ] {
            if slot.take().is_some() {
                events.push(ProtectionEvent::Cleared { protection, reason: "operator resume".into() });
            }
        }
        match self.last_equity {
            Some(eq) => {
                self.high_water_mark = Some(eq);
                self.day = Some(utc_day(now_ms));
                self.day_start_equity = Some(eq);
                self.reset_pending = false;
            }
            None => self.reset_pending = true,
        }
        events
    }
}

/// Something a protection did, for the actor to log, persist and publish.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum ProtectionEvent {
    /// A protection tripped and now requires `state`.
    Tripped {
        /// Which protection.
        protection: ProtectionKind,
        /// The state it requires.
        state: TradingState,
        /// The value that broke the limit.
        value: Decimal,
        /// The limit.
        limit: Decimal,
        /// Whether it is configured to set the emergency stop too.
        emergency_stop: bool,
        /// Human-readable cause.
        reason: String,
    },
    /// A latched protection was released (new UTC day, or operator resume).
    Cleared {
        /// Which protection.
        protection: ProtectionKind,
        /// Why it was released.
        reason: String,
    },
    /// A strategy was paused.
    StrategyPaused {
        /// The strategy.
        strategy: String,
        /// Only this symbol, if counting per symbol.
        symbol: Option<String>,
        /// When the pause ends.
        until_ms: Option<i64>,
        /// Why.
        reason: String,
    },
    /// A strategy's pause ended.
    StrategyResumed {
        /// The strategy.
        strategy: String,
        /// Only this symbol, if the pause was per symbol.
        symbol: Option<String>,
        /// Why.
        reason: String,
    },
}

impl ProtectionEvent {
    /// Short stable label for logs and metrics.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Tripped { .. } => "tripped",
            Self::Cleared { .. } => "cleared",
            Self::StrategyPaused { .. } => "strategy_paused",
            Self::StrategyResumed { .. } => "strategy_resumed",
        }
    }
}

fn action_state(action: ProtectionAction) -> TradingState {
    match action {
        ProtectionAction::Halted => TradingState::Halted,
        ProtectionAction::Reducing => TradingState::Reducing,
    }
}

/// Severity order of trading states: `ACTIVE` < `REDUCING` < `HALTED`.
pub fn severity(state: TradingState) -> u8 {
    match state {
        TradingState::Active => 0,
        TradingState::Reducing => 1,
        TradingState::Halted => 2,
    }
}

/// The portfolio protections: limits from the config and the remembered state.
#[derive(Debug, Clone)]
pub struct Protections {
    config: RiskConfig,
    state: ProtectionState,
}

impl Protections {
    /// Protections with the `[risk]` limits and a fresh state.
    pub fn new(config: &RiskConfig) -> Self {
        Self { config: config.clone(), state: ProtectionState::default() }
    }

    /// The remembered state (persist it after every change).
    pub fn state(&self) -> &ProtectionState {
        &self.state
    }

    /// Replaces the state (restoring at start).
    pub fn restore(&mut self, state: ProtectionState) {
        self.state = state;
    }

    /// Evaluates equity marked to market at `now_ms`: updates the high-water mark
    /// and the day's start, trips the drawdown and daily-loss protections, releases
    /// a daily-loss trip at the next UTC day when so configured, and ends expired
    /// strategy pauses.
    pub fn evaluate(&mut self, equity: Decimal, now_ms: i64) -> Vec<ProtectionEvent> {
        let mut events = Vec::new();
        let s = &mut self.state;
        let day = utc_day(now_ms);
        if s.reset_pending {
            s.high_water_mark = Some(equity);
            s.day = Some(day);
            s.day_start_equity = Some(equity);
            s.reset_pending = false;
        }
        // A later UTC day (a clock stepping back never counts as a new day).
        if s.day.is_none_or(|d| day > d) {
            s.day = Some(day);
            s.day_start_equity = Some(equity);
            if s.daily_loss_trip.is_some() && self.config.daily_loss_resume == DailyLossResume::NextDay {
                s.daily_loss_trip = None;
                events.push(ProtectionEvent::Cleared {
                    protection: ProtectionKind::DailyLoss,
                    reason: format!("new UTC day {day}: daily loss limit reset"),
                });
            }
        }
        let hwm = match s.high_water_mark {
            Some(h) if h >= equity => h,
            _ => equity,
        };
        s.high_water_mark = Some(hwm);
        s.last_equity = Some(equity);
        s.last_eval_ms = Some(now_ms);

        let dd_limit = self.config.max_drawdown_pct;
        if s.drawdown_trip.is_none() && !dd_limit.is_zero() && hwm > Decimal::ZERO {
            let drop = hwm.saturating_sub(equity);
            if pct_exceeds(drop, hwm, dd_limit) {
                let pct = drawdown_pct(hwm, equity).unwrap_or(Decimal::MAX);
                let state = action_state(self.config.max_drawdown_action);
                let reason = format!(
                    "max drawdown: equity {equity} is {pct}% below its high-water mark {hwm} (limit {dd_limit}%)"
                );
                s.drawdown_trip =
                    Some(Trip { at_ms: now_ms, state, value: pct, limit: dd_limit, reason: reason.clone() });
                events.push(ProtectionEvent::Tripped {
                    protection: ProtectionKind::MaxDrawdown,
                    state,
                    value: pct,
                    limit: dd_limit,
                    emergency_stop: self.config.emergency_stop_on(ProtectionKind::MaxDrawdown),
                    reason,
                });
            }
        }

        if s.daily_loss_trip.is_none() {
            let start = s.day_start_equity.unwrap_or(equity);
            let loss = start.saturating_sub(equity);
            let abs = self.config.daily_loss_limit;
            let pct = self.config.daily_loss_limit_pct;
            let by_abs = !abs.is_zero() && loss > abs;
            let by_pct = !pct.is_zero() && start > Decimal::ZERO && pct_exceeds(loss, start, pct);
            if by_abs || by_pct {
                let (value, limit, what) =
                    if by_abs { (loss, abs, format!("{abs}")) } else { (loss, pct, format!("{pct}% of {start}")) };
                let resume = match self.config.daily_loss_resume {
                    DailyLossResume::NextDay => "until the next UTC day or an operator resume",
                    DailyLossResume::Operator => "until an operator resume",
                };
                let reason = format!(
                    "daily loss limit: lost {loss} since the UTC day began at {start} (limit {what}); halted {resume}"
                );
                s.daily_loss_trip =
                    Some(Trip { at_ms: now_ms, state: TradingState::Halted, value, limit, reason: reason.clone() });
                events.push(ProtectionEvent::Tripped {
                    protection: ProtectionKind::DailyLoss,
                    state: TradingState::Halted,
                    value,
                    limit,
                    emergency_stop: self.config.emergency_stop_on(ProtectionKind::DailyLoss),
                    reason,
                });
            }
        }
        events.extend(self.expire_pauses(now_ms));
        events
    }

    /// Ends the strategy pauses whose time is up.
    pub fn expire_pauses(&mut self, now_ms: i64) -> Vec<ProtectionEvent> {
        let mut events = Vec::new();
        self.state.pauses.retain(|p| match p.until_ms {
            Some(until) if now_ms >= until => {
                events.push(ProtectionEvent::StrategyResumed {
                    strategy: p.strategy.clone(),
                    symbol: p.symbol.clone(),
                    reason: "cooldown over".into(),
                });
                false
            }
            _ => true,
        });
        events
    }

    /// A strategy finished a round trip (its position in `symbol` went back to
    /// flat, or flipped) with `pnl` (realized, after fees). A loss extends the
    /// strategy's losing streak, anything else (including exactly zero) ends it;
    /// at `max_consecutive_losses` the strategy is paused for `loss_cooldown`.
    pub fn on_round_trip(&mut self, strategy: &str, symbol: &str, pnl: Decimal, now_ms: i64) -> Vec<ProtectionEvent> {
        let max = self.config.max_consecutive_losses;
        if max == 0 {
            return Vec::new();
        }
        let key_symbol = self.config.consecutive_losses_per_symbol.then(|| symbol.to_string());
        let streaks = &mut self.state.streaks;
        let idx = streaks.iter().position(|s| s.strategy == strategy && s.symbol == key_symbol);
        if pnl >= Decimal::ZERO {
            if let Some(i) = idx {
                streaks.swap_remove(i);
            }
            return Vec::new();
        }
        let losses = match idx {
            Some(i) => {
                streaks[i].losses = streaks[i].losses.saturating_add(1);
                streaks[i].losses
            }
            None => {
                streaks.push(LossStreak { strategy: strategy.to_string(), symbol: key_symbol.clone(), losses: 1 });
                1
            }
        };
        if losses < max {
            return Vec::new();
        }
        streaks.retain(|s| !(s.strategy == strategy && s.symbol == key_symbol));
        let until = now_ms.saturating_add(self.config.loss_cooldown.0);
        let scope = key_symbol.as_deref().map(|s| format!(" on {s}")).unwrap_or_default();
        let reason = format!(
            "{losses} losing round trips in a row{scope} (limit {max}); paused for {}, until {}",
            keel_core::when::duration(self.config.loss_cooldown.0.unsigned_abs()),
            keel_core::when::utc(until)
        );
        self.state.pauses.retain(|p| !(p.strategy == strategy && p.symbol == key_symbol && p.until_ms.is_some()));
        self.state.pauses.push(Pause {
            strategy: strategy.to_string(),
            symbol: key_symbol.clone(),
            since_ms: now_ms,
            until_ms: Some(until),
            by: "protection:consecutive_losses".into(),
            reason: reason.clone(),
        });
        vec![ProtectionEvent::StrategyPaused {
            strategy: strategy.to_string(),
            symbol: key_symbol,
            until_ms: Some(until),
            reason,
        }]
    }

    /// Pauses a strategy until resumed (operator).
    pub fn pause_strategy(&mut self, strategy: &str, by: &str, reason: &str, now_ms: i64) -> ProtectionEvent {
        self.state.pauses.retain(|p| !(p.strategy == strategy && p.symbol.is_none() && p.until_ms.is_none()));
        self.state.pauses.push(Pause {
            strategy: strategy.to_string(),
            symbol: None,
            since_ms: now_ms,
            until_ms: None,
            by: by.to_string(),
            reason: reason.to_string(),
        });
        ProtectionEvent::StrategyPaused {
            strategy: strategy.to_string(),
            symbol: None,
            until_ms: None,
            reason: reason.to_string(),
        }
    }

    /// Ends every pause of a strategy (operator); true if it was paused.
    pub fn resume_strategy(&mut self, strategy: &str) -> bool {
        let before = self.state.pauses.len();
        self.state.pauses.retain(|p| p.strategy != strategy);
        self.state.streaks.retain(|s| s.strategy != strategy);
        self.state.pauses.len() != before
    }

    /// The pause that stops `strategy` on `symbol` at `now_ms`, if any.
    pub fn pause_of(&self, strategy: &str, symbol: &str, now_ms: Option<i64>) -> Option<&Pause> {
        self.state.pauses.iter().find(|p| match now_ms {
            Some(now) => p.applies(strategy, symbol, now),
            None => p.strategy == strategy && p.symbol.as_deref().is_none_or(|s| s == symbol),
        })
    }

    /// The most severe state a latched protection requires, with its reason.
    pub fn required_state(&self) -> Option<(&Trip, ProtectionKind)> {
        let dd = self.state.drawdown_trip.as_ref().map(|t| (t, ProtectionKind::MaxDrawdown));
        let dl = self.state.daily_loss_trip.as_ref().map(|t| (t, ProtectionKind::DailyLoss));
        match (dd, dl) {
            (Some(a), Some(b)) => Some(if severity(b.0.state) > severity(a.0.state) { b } else { a }),
            (a, b) => a.or(b),
        }
    }

    /// An operator resume: see [`ProtectionState::operator_resume`].
    pub fn operator_resume(&mut self, now_ms: i64) -> Vec<ProtectionEvent> {
        self.state.operator_resume(now_ms)
    }

    /// Drawdown from the high-water mark, in percent, at the last evaluation.
    pub fn drawdown_pct(&self) -> Option<Decimal> {
        drawdown_pct(self.state.high_water_mark?, self.state.last_equity?)
    }

    /// PnL since the start of the UTC day (negative is a loss), at the last evaluation.
    pub fn daily_pnl(&self) -> Option<Decimal> {
        Some(self.state.last_equity?.saturating_sub(self.state.day_start_equity?))
    }
}

/// `(hwm - equity) / hwm × 100`, rounded to 4 places; `None` if `hwm` ≤ 0.
pub fn drawdown_pct(hwm: Decimal, equity: Decimal) -> Option<Decimal> {
    if hwm <= Decimal::ZERO {
        return None;
    }
    let drop = hwm.saturating_sub(equity);
    let pct = match drop.checked_mul(HUNDRED) {
        Some(scaled) => scaled.checked_div(hwm)?,
        None => drop.checked_div(hwm)?.checked_mul(HUNDRED)?,
    };
    Some(pct.round_dp(4).normalize())
}

/// `part / whole × 100 > pct` for a positive `whole`: exact by cross-multiplying,
/// falling back to division only when the products overflow.
pub fn pct_exceeds(part: Decimal, whole: Decimal, pct: Decimal) -> bool {
    match (part.checked_mul(HUNDRED), pct.checked_mul(whole)) {
        (Some(a), Some(b)) => a > b,
        _ => match part.checked_div(whole) {
            Some(ratio) => ratio.checked_mul(HUNDRED).is_none_or(|scaled| scaled > pct),
            None => true,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use keel_core::config::DurationMs;

    fn d(s: &str) -> Decimal {
        s.parse().unwrap()
    }

    fn config() -> RiskConfig {
        let mut c = RiskConfig::unlimited();
        c.max_drawdown_pct = d("10");
        c.daily_loss_limit_pct = Decimal::ZERO;
        c
    }

    const T0: i64 = 1_700_000_000_000;

    #[test]
    fn drawdown_table() {
        struct Case {
            name: &'static str,
            limit: &'static str,
            path: &'static [&'static str],
            want: Option<&'static str>,
        }
        let cases = [
            Case { name: "never below", limit: "10", path: &["1000", "1100", "1200"], want: None },
            Case { name: "exactly at the limit does not trip", limit: "10", path: &["1000", "900"], want: None },
            Case { name: "one cent beyond trips", limit: "10", path: &["1000", "899.99"], want: Some("10.001") },
            Case {
                name: "from the high-water mark, not the start",
                limit: "10",
                path: &["1000", "2000", "1799"],
                want: Some("10.05"),
            },
            Case {
                name: "recovery then a fall under the old mark",
                limit: "10",
                path: &["1000", "950", "1000", "901"],
                want: None,
            },
            Case { name: "off when 0", limit: "0", path: &["1000", "1"], want: None },
            Case { name: "zero equity trips", limit: "10", path: &["1000", "0"], want: Some("100") },
            Case { name: "equity that starts at zero never divides", limit: "10", path: &["0", "0"], want: None },
            Case {
                name: "very large equity",
                limit: "10",
                path: &["7922816251426433759354395033", "7000000000000000000000000000"],
                want: Some("11.6476"),
            },
            Case { name: "decimal precision", limit: "0.0001", path: &["100000000", "99999999.99"], want: None },
            Case {
                name: "decimal precision beyond",
                limit: "0.0001",
                path: &["100000000", "99999899.98"],
                want: Some("0.0001"),
            },
        ];
        for c in cases {
            let mut cfg = config();
            cfg.max_drawdown_pct = d(c.limit);
            let mut p = Protections::new(&cfg);
            let mut tripped = None;
            for (i, eq) in c.path.iter().enumerate() {
                for e in p.evaluate(d(eq), T0 + i as i64) {
                    if let ProtectionEvent::Tripped { protection: ProtectionKind::MaxDrawdown, value, state, .. } = e {
                        assert_eq!(state, TradingState::Halted, "{}", c.name);
                        tripped = Some(value);
                    }
                }
            }
            assert_eq!(tripped, c.want.map(d), "{}", c.name);
            assert_eq!(p.required_state().is_some(), c.want.is_some(), "{}", c.name);
        }
    }

    #[test]
    fn drawdown_action_reducing_latches_until_resume() {
        let mut cfg = config();
        cfg.max_drawdown_action = ProtectionAction::Reducing;
        cfg.emergency_stop_on = vec![ProtectionKind::MaxDrawdown];
        let mut p = Protections::new(&cfg);
        p.evaluate(d("1000"), T0);
        let ev = p.evaluate(d("800"), T0 + 1);
        assert!(matches!(
            ev.as_slice(),
            [ProtectionEvent::Tripped { state: TradingState::Reducing, emergency_stop: true, .. }]
        ));
        assert!(p.evaluate(d("1000"), T0 + 2).is_empty(), "latched: a recovery does not release it");
        assert_eq!(p.required_state().map(|(t, _)| t.state), Some(TradingState::Reducing));
        let cleared = p.operator_resume(T0 + 3);
        assert_eq!(cleared.len(), 1);
        assert!(p.required_state().is_none());
        assert_eq!(p.state().high_water_mark, Some(d("1000")), "mark restarts at the last equity");
        assert!(p.evaluate(d("950"), T0 + 4).is_empty());
    }

    #[test]
    fn daily_loss_table() {
        struct Case {
            name: &'static str,
            abs: &'static str,
            pct: &'static str,
            /// (ms after T0's day start, equity)
            path: &'static [(i64, &'static str)],
            tripped: bool,
        }
        let cases = [
            Case {
                name: "exactly the absolute limit",
                abs: "100",
                pct: "0",
                path: &[(0, "1000"), (1, "900")],
                tripped: false,
            },
            Case {
                name: "beyond the absolute limit",
                abs: "100",
                pct: "0",
                path: &[(0, "1000"), (1, "899.99999999")],
                tripped: true,
            },
            Case {
                name: "exactly the percent limit",
                abs: "0",
                pct: "5",
                path: &[(0, "1000"), (1, "950")],
                tripped: false,
            },
            Case {
                name: "beyond the percent limit",
                abs: "0",
                pct: "5",
                path: &[(0, "1000"), (1, "949.9")],
                tripped: true,
            },
            Case { name: "both off", abs: "0", pct: "0", path: &[(0, "1000"), (1, "1")], tripped: false },
            Case {
                name: "measured from the day's start, not the high",
                abs: "100",
                pct: "0",
                path: &[(0, "1000"), (1, "1500"), (2, "901")],
                tripped: false,
            },
            Case {
                name: "a new day restarts the count",
                abs: "100",
                pct: "0",
                path: &[(0, "1000"), (1, "950"), (DAY_MS, "950"), (DAY_MS + 1, "860")],
                tripped: false,
            },
            Case {
                name: "loss spread over the day",
                abs: "100",
                pct: "0",
                path: &[(0, "1000"), (3_600_000, "960"), (DAY_MS - 1, "899")],
                tripped: true,
            },
            Case {
                name: "gain never trips",
                abs: "1",
                pct: "0.01",
                path: &[(0, "1000"), (1, "100000")],
                tripped: false,
            },
            Case { name: "zero start equity", abs: "0", pct: "5", path: &[(0, "0"), (1, "0")], tripped: false },
        ];
        let day0 = utc_day(T0) * DAY_MS;
        for c in cases {
            let mut cfg = RiskConfig::unlimited();
            cfg.daily_loss_limit = d(c.abs);
            cfg.daily_loss_limit_pct = d(c.pct);
            let mut p = Protections::new(&cfg);
            let mut tripped = false;
            for (t, eq) in c.path {
                tripped |= p
                    .evaluate(d(eq), day0 + t)
                    .iter()
                    .any(|e| matches!(e, ProtectionEvent::Tripped { protection: ProtectionKind::DailyLoss, .. }));
            }
            assert_eq!(tripped, c.tripped, "{}", c.name);
        }
    }

    #[test]
    fn clock_stepping_back_over_midnight_is_not_a_new_day() {
        let day0 = utc_day(T0) * DAY_MS;
        let mut cfg = RiskConfig::unlimited();
        cfg.daily_loss_limit = d("100");
        let mut p = Protections::new(&cfg);
        p.evaluate(d("1000"), day0 + DAY_MS + 10);
        assert_eq!(p.evaluate(d("850"), day0 + DAY_MS + 20).len(), 1);
        assert!(p.evaluate(d("850"), day0 + DAY_MS - 5).is_empty());
        assert!(p.required_state().is_some(), "still tripped");
    }

    #[test]
    fn daily_loss_resume_modes() {
        let day0 = utc_day(T0) * DAY_MS;
        for (mode, released) in [(DailyLossResume::NextDay, true), (DailyLossResume::Operator, false)] {
            let mut cfg = RiskConfig::unlimited();
            cfg.daily_loss_limit = d("100");
            cfg.daily_loss_resume = mode;
            let mut p = Protections::new(&cfg);
            p.evaluate(d("1000"), day0 + 10);
            assert_eq!(p.evaluate(d("850"), day0 + 20).len(), 1);
            assert!(p.evaluate(d("850"), day0 + DAY_MS - 1).is_empty(), "{mode:?}: same day stays tripped");
            let next = p.evaluate(d("850"), day0 + DAY_MS);
            assert_eq!(!next.is_empty(), released, "{mode:?}");
            assert_eq!(p.required_state().is_none(), released, "{mode:?}");
            assert_eq!(p.state().day_start_equity, Some(d("850")));
        }
    }

    #[test]
    fn consecutive_losses_table() {
        struct Case {
            name: &'static str,
            max: u32,
            per_symbol: bool,
            trips: &'static [(&'static str, &'static str, &'static str)],
            paused: &'static [(&'static str, &'static str)],
            not_paused: &'static [(&'static str, &'static str)],
        }
        let cases = [
            Case {
                name: "two losses of three",
                max: 3,
                per_symbol: false,
                trips: &[("a", "BTC", "-1"), ("a", "BTC", "-1")],
                paused: &[],
                not_paused: &[("a", "BTC")],
            },
            Case {
                name: "exactly three",
                max: 3,
                per_symbol: false,
                trips: &[("a", "BTC", "-1"), ("a", "ETH", "-0.00000001"), ("a", "BTC", "-5")],
                paused: &[("a", "BTC"), ("a", "ETH")],
                not_paused: &[("b", "BTC")],
            },
            Case {
                name: "a win resets",
                max: 3,
                per_symbol: false,
                trips: &[("a", "BTC", "-1"), ("a", "BTC", "-1"), ("a", "BTC", "0.01"), ("a", "BTC", "-1")],
                paused: &[],
                not_paused: &[("a", "BTC")],
            },
            Case {
                name: "breakeven resets",
                max: 2,
                per_symbol: false,
                trips: &[("a", "BTC", "-1"), ("a", "BTC", "0"), ("a", "BTC", "-1")],
                paused: &[],
                not_paused: &[("a", "BTC")],
            },
            Case {
                name: "per symbol counts apart and pauses only that symbol",
                max: 2,
                per_symbol: true,
                trips: &[("a", "BTC", "-1"), ("a", "ETH", "-1"), ("a", "BTC", "-1")],
                paused: &[("a", "BTC")],
                not_paused: &[("a", "ETH")],
            },
            Case {
                name: "off",
                max: 0,
                per_symbol: false,
                trips: &[("a", "BTC", "-1"); 10],
                paused: &[],
                not_paused: &[("a", "BTC")],
            },
            Case {
                name: "strategies count apart",
                max: 2,
                per_symbol: false,
                trips: &[("a", "BTC", "-1"), ("b", "BTC", "-1")],
                paused: &[],
                not_paused: &[("a", "BTC"), ("b", "BTC")],
            },
        ];
        for c in cases {
            let mut cfg = RiskConfig::unlimited();
            cfg.max_consecutive_losses = c.max;
            cfg.consecutive_losses_per_symbol = c.per_symbol;
            cfg.loss_cooldown = DurationMs(60_000);
            let mut p = Protections::new(&cfg);
            for (s, sym, pnl) in c.trips {
                p.on_round_trip(s, sym, d(pnl), T0);
            }
            for (s, sym) in c.paused {
                assert!(p.pause_of(s, sym, Some(T0)).is_some(), "{}: {s} {sym} paused", c.name);
                assert!(p.pause_of(s, sym, Some(T0 + 59_999)).is_some(), "{}: still paused", c.name);
                assert!(p.pause_of(s, sym, Some(T0 + 60_000)).is_none(), "{}: cooldown over", c.name);
            }
            for (s, sym) in c.not_paused {
                assert!(p.pause_of(s, sym, Some(T0)).is_none(), "{}: {s} {sym} not paused", c.name);
            }
        }
    }

    #[test]
    fn cooldown_expiry_is_reported_and_operator_pause_stays() {
        let mut cfg = RiskConfig::unlimited();
        cfg.max_consecutive_losses = 1;
        cfg.loss_cooldown = DurationMs(1_000);
        let mut p = Protections::new(&cfg);
        assert_eq!(p.on_round_trip("a", "BTC", d("-1"), T0).len(), 1);
        p.pause_strategy("b", "operator:cli", "looks odd", T0);
        assert!(p.evaluate(d("100"), T0 + 999).is_empty());
        let ev = p.evaluate(d("100"), T0 + 1_000);
        assert!(matches!(ev.as_slice(), [ProtectionEvent::StrategyResumed { strategy, .. }] if strategy == "a"));
        assert!(p.pause_of("b", "BTC", Some(T0 + 10_000_000)).is_some());
        assert!(p.resume_strategy("b"));
        assert!(p.pause_of("b", "BTC", Some(T0)).is_none());
    }

    #[test]
    fn state_round_trips_through_json() {
        let mut cfg = config();
        cfg.max_consecutive_losses = 3;
        cfg.loss_cooldown = DurationMs(5);
        let mut p = Protections::new(&cfg);
        p.evaluate(d("1000.123456789"), T0);
        p.evaluate(d("800"), T0 + 1);
        p.on_round_trip("a", "BTC", d("-1"), T0);
        let json = serde_json::to_string(p.state()).unwrap();
        let back: ProtectionState = serde_json::from_str(&json).unwrap();
        assert_eq!(&back, p.state());
        assert!(json.contains("\"1000.123456789\""), "decimals stored as strings: {json}");
        let mut q = Protections::new(&cfg);
        q.restore(back);
        assert!(q.required_state().is_some());
    }

    #[test]
    fn offline_resume_resets_at_next_evaluation() {
        let mut p = Protections::new(&config());
        p.evaluate(d("1000"), T0);
        p.evaluate(d("500"), T0 + 1);
        let mut state = p.state().clone();
        state.last_equity = None;
        let mut q = Protections::new(&config());
        q.restore(state);
        q.operator_resume(T0 + 2);
        assert!(q.required_state().is_none());
        assert!(q.evaluate(d("480"), T0 + 3).is_empty(), "mark restarted at 480, not 1000");
        assert_eq!(q.state().high_water_mark, Some(d("480")));
    }
}
