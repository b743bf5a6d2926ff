//! The `[risk]` section: limits the risk guard enforces and the portfolio
//! protections that stop trading by themselves.
//!
//! Conventions: a money or percentage limit of `0` and a count or duration of `0`
//! mean "off" where noted; a limit is the largest value allowed, so a value
//! exactly at the limit passes and only exceeding it refuses or trips.

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use keel_core::config::{non_negative, ConfigError, DurationMs};

/// What a portfolio protection does to trading when it trips.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProtectionAction {
    /// No new orders (cancels, and reduce-only exits if allowed).
    #[default]
    #[serde(alias = "HALTED")]
    Halted,
    /// Only orders that reduce a position.
    #[serde(alias = "REDUCING")]
    Reducing,
}

/// When a tripped daily loss limit lets trading resume.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DailyLossResume {
    /// At the start of the next UTC day (or earlier by an operator resume).
    #[default]
    NextDay,
    /// Only by an operator resume.
    Operator,
}

/// A portfolio protection that can be configured to set the emergency stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProtectionKind {
    /// Drawdown of equity from its high-water mark.
    MaxDrawdown,
    /// Loss since the start of the UTC day.
    DailyLoss,
}

impl ProtectionKind {
    /// The configured and displayed name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::MaxDrawdown => "max_drawdown",
            Self::DailyLoss => "daily_loss",
        }
    }
}

/// Risk limits and protections. See the module docs for the "0 = off" and
/// "at the limit passes" conventions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RiskConfig {
    // ---- pre-trade limits ----
    /// Largest notional of one order, in the quote asset (0 = no limit).
    pub max_order_notional: Decimal,
    /// Largest position notional per symbol, counting open and in-flight orders (0 = no limit).
    pub max_position_notional: Decimal,
    /// Largest gross exposure across all symbols (sum of |position| notionals,
    /// counting open and in-flight orders), in the quote asset (0 = no limit).
    pub max_gross_exposure: Decimal,
    /// Most orders open or in flight across all symbols (0 = no limit). The
    /// venue's per-symbol MAX_NUM_ORDERS filter applies in addition.
    pub max_open_orders: u32,
    /// Check the free balance before an order (cash account: notional plus fees
    /// against free quote for buys, free base for sells).
    pub check_balance: bool,
    /// Fee rate, in basis points, added to a buy's notional by the balance check.
    pub balance_fee_bps: Decimal,
    /// A limit price further than this percentage from the last trade or mid is
    /// refused (fat-finger guard; 0 = off).
    pub price_band_pct: Decimal,
    /// Orders per strategy per second (0 = no limit). Refused, not queued.
    pub strategy_orders_per_second: u32,
    /// Orders per strategy per minute (0 = no limit).
    pub strategy_orders_per_minute: u32,
    /// Orders across all strategies per second (0 = no limit).
    pub global_orders_per_second: u32,
    /// Orders across all strategies per minute (0 = no limit).
    pub global_orders_per_minute: u32,
    /// The same strategy sending the same side, symbol, price and quantity again
    /// within this window is refused (0 = off).
    pub duplicate_window: DurationMs,
    /// No new order for a symbol whose last market event is older than this (0 = off).
    pub stale_data_after: DurationMs,
    /// While `HALTED`, let reduce-only orders that shrink a position through (exits).
    pub halted_reduce_only_exits: bool,

    // ---- portfolio protections ----
    /// Largest drawdown of equity from its high-water mark, in percent (0 = off).
    pub max_drawdown_pct: Decimal,
    /// What a drawdown beyond `max_drawdown_pct` does: `halted` or `reducing`.
    pub max_drawdown_action: ProtectionAction,
    /// Largest loss since the start of the UTC day (realized plus unrealized),
    /// in the quote asset (0 = off).
    pub daily_loss_limit: Decimal,
    /// Largest loss since the start of the UTC day, in percent of that day's
    /// starting equity (0 = off).
    pub daily_loss_limit_pct: Decimal,
    /// After the daily loss limit trips (`HALTED`): `next_day` (resume at the next
    /// UTC day or by an operator) or `operator` (only by an operator resume).
    pub daily_loss_resume: DailyLossResume,
    /// A strategy is paused after this many losing round trips in a row (0 = off).
    pub max_consecutive_losses: u32,
    /// Count losing round trips per strategy and symbol instead of per strategy.
    pub consecutive_losses_per_symbol: bool,
    /// How long a strategy stays paused after `max_consecutive_losses`.
    pub loss_cooldown: DurationMs,
    /// Protections that also set the sticky emergency stop when they trip
    /// (`max_drawdown`, `daily_loss`).
    pub emergency_stop_on: Vec<ProtectionKind>,
    /// Close positions with reduce-only market orders when the emergency stop is set.
    pub flatten_on_emergency_stop: bool,
}

impl Default for RiskConfig {
    fn default() -> Self {
        Self {
            max_order_notional: Decimal::new(10_000, 0),
            max_position_notional: Decimal::new(50_000, 0),
            max_gross_exposure: Decimal::new(100_000, 0),
            max_open_orders: 50,
            check_balance: true,
            balance_fee_bps: Decimal::new(10, 0),
            price_band_pct: Decimal::new(5, 0),
            strategy_orders_per_second: 5,
            strategy_orders_per_minute: 60,
            global_orders_per_second: 10,
            global_orders_per_minute: 300,
            duplicate_window: DurationMs(1_000),
            stale_data_after: DurationMs(60_000),
            halted_reduce_only_exits: true,
            max_drawdown_pct: Decimal::new(20, 0),
            max_drawdown_action: ProtectionAction::Halted,
            daily_loss_limit: Decimal::ZERO,
            daily_loss_limit_pct: Decimal::new(10, 0),
            daily_loss_resume: DailyLossResume::NextDay,
            max_consecutive_losses: 5,
            consecutive_losses_per_symbol: false,
            loss_cooldown: DurationMs(3_600_000),
            emergency_stop_on: Vec::new(),
            flatten_on_emergency_stop: false,
        }
    }
}

impl RiskConfig {
    /// Limits that only refuse orders and never trip by themselves, all off:
    /// handy for tests and tools that want one check at a time.
    pub fn unlimited() -> Self {
        Self {
            max_order_notional: Decimal::ZERO,
            max_position_notional: Decimal::ZERO,
            max_gross_exposure: Decimal::ZERO,
            max_open_orders: 0,
            check_balance: false,
            balance_fee_bps: Decimal::ZERO,
            price_band_pct: Decimal::ZERO,
            strategy_orders_per_second: 0,
            strategy_orders_per_minute: 0,
            global_orders_per_second: 0,
            global_orders_per_minute: 0,
            duplicate_window: DurationMs(0),
            stale_data_after: DurationMs(0),
            halted_reduce_only_exits: true,
            max_drawdown_pct: Decimal::ZERO,
            max_drawdown_action: ProtectionAction::Halted,
            daily_loss_limit: Decimal::ZERO,
            daily_loss_limit_pct: Decimal::ZERO,
            daily_loss_resume: DailyLossResume::NextDay,
            max_consecutive_losses: 0,
            consecutive_losses_per_symbol: false,
            loss_cooldown: DurationMs(0),
            emergency_stop_on: Vec::new(),
            flatten_on_emergency_stop: false,
        }
    }

    /// True if `kind` is configured to set the emergency stop when it trips.
    pub fn emergency_stop_on(&self, kind: ProtectionKind) -> bool {
        self.emergency_stop_on.contains(&kind)
    }

    /// Rejects impossible values, naming the key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        non_negative("risk.max_order_notional", self.max_order_notional)?;
        non_negative("risk.max_position_notional", self.max_position_notional)?;
        non_negative("risk.max_gross_exposure", self.max_gross_exposure)?;
        non_negative("risk.balance_fee_bps", self.balance_fee_bps)?;
        at_most("risk.balance_fee_bps", self.balance_fee_bps, Decimal::new(10_000, 0))?;
        non_negative("risk.price_band_pct", self.price_band_pct)?;
        at_most("risk.price_band_pct", self.price_band_pct, Decimal::new(100, 0))?;
        rate_pair(
            ("risk.strategy_orders_per_second", self.strategy_orders_per_second),
            ("risk.strategy_orders_per_minute", self.strategy_orders_per_minute),
        )?;
        rate_pair(
            ("risk.global_orders_per_second", self.global_orders_per_second),
            ("risk.global_orders_per_minute", self.global_orders_per_minute),
        )?;
        non_negative_duration("risk.duplicate_window", self.duplicate_window)?;
        non_negative_duration("risk.stale_data_after", self.stale_data_after)?;
        non_negative("risk.max_drawdown_pct", self.max_drawdown_pct)?;
        below_100("risk.max_drawdown_pct", self.max_drawdown_pct)?;
        non_negative("risk.daily_loss_limit", self.daily_loss_limit)?;
        non_negative("risk.daily_loss_limit_pct", self.daily_loss_limit_pct)?;
        below_100("risk.daily_loss_limit_pct", self.daily_loss_limit_pct)?;
        non_negative_duration("risk.loss_cooldown", self.loss_cooldown)?;
        if self.max_consecutive_losses > 0 && self.loss_cooldown.0 == 0 {
            return Err(ConfigError::new(
                "risk.loss_cooldown",
                "must be positive when risk.max_consecutive_losses is set (a pause of 0 does nothing)",
            ));
        }
        for (i, kind) in self.emergency_stop_on.iter().enumerate() {
            let enabled = match kind {
                ProtectionKind::MaxDrawdown => !self.max_drawdown_pct.is_zero(),
                ProtectionKind::DailyLoss => !self.daily_loss_limit.is_zero() || !self.daily_loss_limit_pct.is_zero(),
            };
            if !enabled {
                return Err(ConfigError::new(
                    format!("risk.emergency_stop_on[{i}]"),
                    format!("`{}` is listed but that protection is off (its limit is 0)", kind.as_str()),
                ));
            }
            if self.emergency_stop_on[..i].contains(kind) {
                return Err(ConfigError::new(
                    format!("risk.emergency_stop_on[{i}]"),
                    format!("`{}` is listed twice", kind.as_str()),
                ));
            }
        }
        Ok(())
    }
}

fn at_most(key: &str, value: Decimal, max: Decimal) -> Result<(), ConfigError> {
    if value > max {
        return Err(ConfigError::new(key, format!("must be at most {max}, got {value}")));
    }
    Ok(())
}

fn below_100(key: &str, value: Decimal) -> Result<(), ConfigError> {
    if value >= Decimal::new(100, 0) {
        return Err(ConfigError::new(key, format!("must be below 100 (percent), got {value}")));
    }
    Ok(())
}

fn non_negative_duration(key: &str, value: DurationMs) -> Result<(), ConfigError> {
    if value.0 < 0 {
        return Err(ConfigError::new(key, "must not be negative"));
    }
    Ok(())
}

fn rate_pair(per_second: (&str, u32), per_minute: (&str, u32)) -> Result<(), ConfigError> {
    if per_second.1 > 0 && per_minute.1 > 0 && per_minute.1 < per_second.1 {
        return Err(ConfigError::new(
            per_minute.0,
            format!("{} per minute is below {} = {} per second", per_minute.1, per_second.0, per_second.1),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> Decimal {
        s.parse().unwrap()
    }

    #[test]
    fn defaults_and_unlimited_are_valid() {
        RiskConfig::default().validate().unwrap();
        RiskConfig::unlimited().validate().unwrap();
    }

    #[test]
    fn parses_every_key() {
        let text = r#"
            max_order_notional = "1000.5"
            max_position_notional = "5000"
            max_gross_exposure = "9000"
            max_open_orders = 7
            check_balance = false
            balance_fee_bps = "7.5"
            price_band_pct = "2.5"
            strategy_orders_per_second = 2
            strategy_orders_per_minute = 20
            global_orders_per_second = 4
            global_orders_per_minute = 40
            duplicate_window = "500ms"
            stale_data_after = "15s"
            halted_reduce_only_exits = false
            max_drawdown_pct = "12.5"
            max_drawdown_action = "reducing"
            daily_loss_limit = "250"
            daily_loss_limit_pct = "3"
            daily_loss_resume = "operator"
            max_consecutive_losses = 4
            consecutive_losses_per_symbol = true
            loss_cooldown = "30m"
            emergency_stop_on = ["max_drawdown", "daily_loss"]
            flatten_on_emergency_stop = true
        "#;
        let c: RiskConfig = toml::from_str(text).unwrap();
        c.validate().unwrap();
        assert_eq!(c.max_order_notional, d("1000.5"));
        assert_eq!(c.max_drawdown_action, ProtectionAction::Reducing);
        assert_eq!(c.daily_loss_resume, DailyLossResume::Operator);
        assert_eq!(c.duplicate_window, DurationMs(500));
        assert_eq!(c.loss_cooldown, DurationMs(1_800_000));
        assert!(c.emergency_stop_on(ProtectionKind::DailyLoss));
        let upper: RiskConfig = toml::from_str("max_drawdown_action = \"HALTED\"").unwrap();
        assert_eq!(upper.max_drawdown_action, ProtectionAction::Halted);
    }

    #[test]
    fn validation_table() {
        struct Case {
            name: &'static str,
            edit: fn(&mut RiskConfig),
            key: &'static str,
            reason: &'static str,
        }
        let cases = [
            Case {
                name: "negative order notional",
                edit: |c| c.max_order_notional = d("-0.01"),
                key: "risk.max_order_notional",
                reason: "must not be negative",
            },
            Case {
                name: "negative position notional",
                edit: |c| c.max_position_notional = d("-1"),
                key: "risk.max_position_notional",
                reason: "must not be negative",
            },
            Case {
                name: "negative gross exposure",
                edit: |c| c.max_gross_exposure = d("-1"),
                key: "risk.max_gross_exposure",
                reason: "must not be negative",
            },
            Case {
                name: "fee above 100%",
                edit: |c| c.balance_fee_bps = d("10000.01"),
                key: "risk.balance_fee_bps",
                reason: "at most",
            },
            Case {
                name: "negative band",
                edit: |c| c.price_band_pct = d("-1"),
                key: "risk.price_band_pct",
                reason: "must not be negative",
            },
            Case {
                name: "band above 100%",
                edit: |c| c.price_band_pct = d("100.1"),
                key: "risk.price_band_pct",
                reason: "at most",
            },
            Case {
                name: "strategy minute rate below second rate",
                edit: |c| {
                    c.strategy_orders_per_second = 10;
                    c.strategy_orders_per_minute = 9;
                },
                key: "risk.strategy_orders_per_minute",
                reason: "below",
            },
            Case {
                name: "global minute rate below second rate",
                edit: |c| {
                    c.global_orders_per_second = 3;
                    c.global_orders_per_minute = 2;
                },
                key: "risk.global_orders_per_minute",
                reason: "below",
            },
            Case {
                name: "negative duplicate window",
                edit: |c| c.duplicate_window = DurationMs(-1),
                key: "risk.duplicate_window",
                reason: "must not be negative",
            },
            Case {
                name: "negative stale age",
                edit: |c| c.stale_data_after = DurationMs(-5),
                key: "risk.stale_data_after",
                reason: "must not be negative",
            },
            Case {
                name: "drawdown of 100%",
                edit: |c| c.max_drawdown_pct = d("100"),
                key: "risk.max_drawdown_pct",
                reason: "below 100",
            },
            Case {
                name: "negative drawdown",
                edit: |c| c.max_drawdown_pct = d("-0.5"),
                key: "risk.max_drawdown_pct",
                reason: "must not be negative",
            },
            Case {
                name: "negative daily loss",
                edit: |c| c.daily_loss_limit = d("-1"),
                key: "risk.daily_loss_limit",
                reason: "must not be negative",
            },
            Case {
                name: "daily loss of 100%",
                edit: |c| c.daily_loss_limit_pct = d("100"),
                key: "risk.daily_loss_limit_pct",
                reason: "below 100",
            },
            Case {
                name: "losses without cooldown",
                edit: |c| c.loss_cooldown = DurationMs(0),
                key: "risk.loss_cooldown",
                reason: "must be positive",
            },
            Case {
                name: "emergency stop on a protection that is off",
                edit: |c| {
                    c.max_drawdown_pct = Decimal::ZERO;
                    c.emergency_stop_on = vec![ProtectionKind::MaxDrawdown];
                },
                key: "risk.emergency_stop_on[0]",
                reason: "is off",
            },
            Case {
                name: "emergency stop listed twice",
                edit: |c| c.emergency_stop_on = vec![ProtectionKind::DailyLoss, ProtectionKind::DailyLoss],
                key: "risk.emergency_stop_on[1]",
                reason: "twice",
            },
        ];
        for c in cases {
            let mut config = RiskConfig::default();
            (c.edit)(&mut config);
            let err = config.validate().expect_err(c.name);
            assert_eq!(err.key, c.key, "{}: {err}", c.name);
            assert!(err.reason.contains(c.reason), "{}: {err}", c.name);
        }
    }

    #[test]
    fn edges_that_are_valid() {
        let c = RiskConfig {
            max_drawdown_pct: d("99.99"),
            price_band_pct: d("100"),
            balance_fee_bps: d("10000"),
            strategy_orders_per_second: 10,
            strategy_orders_per_minute: 10,
            max_order_notional: d("79228162514264337593543950335"),
            ..RiskConfig::default()
        };
        c.validate().unwrap();
    }

    #[test]
    fn unknown_and_mistyped_keys_fail_to_parse() {
        assert!(toml::from_str::<RiskConfig>("max_drawdown = \"5\"").is_err());
        assert!(toml::from_str::<RiskConfig>("max_drawdown_action = \"panic\"").is_err());
        assert!(toml::from_str::<RiskConfig>("emergency_stop_on = [\"rate\"]").is_err());
        assert!(toml::from_str::<RiskConfig>("max_open_orders = -1").is_err());
    }
}
