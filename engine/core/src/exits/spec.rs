//! The `exits = { ... }` table of a `[[strategy]]` block.
//!
//! ```toml
//! exits = { stop_loss = "3%", take_profit = "6%", trailing_stop = { activate = "2%", distance = "1%" },
//!           roi = [["0m", "5%"], ["30m", "2%"], ["2h", "0%"]], max_hold = "12h", placement = "venue" }
//! ```
//!
//! Percentages are written with their `%` sign, so `3%` can never be read as
//! 300%; durations as everywhere else (`30m`, `2h`, `1d`).

use rust_decimal::Decimal;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::config::{ConfigError, DurationMs};

const HUNDRED: Decimal = Decimal::ONE_HUNDRED;

/// A percentage, held as a fraction (`3%` is 0.03); written `"3%"`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Pct(pub Decimal);

impl Pct {
    /// Parses `3%`, `0.5%`, `-1%`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let t = text.trim();
        let Some(number) = t.strip_suffix('%') else {
            return Err(format!("`{text}` is not a percentage: write it with its sign, e.g. \"3%\""));
        };
        let value: Decimal =
            number.trim().parse().map_err(|_| format!("`{text}` is not a percentage (e.g. \"3%\", \"0.5%\")"))?;
        Ok(Self(value / HUNDRED))
    }

    /// The fraction (0.03 for 3%).
    pub fn fraction(self) -> Decimal {
        self.0
    }
}

impl std::fmt::Display for Pct {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}%", (self.0 * HUNDRED).normalize())
    }
}

impl Serialize for Pct {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for Pct {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Text(String),
            Number(f64),
        }
        match Raw::deserialize(d)? {
            Raw::Text(t) => Pct::parse(&t).map_err(serde::de::Error::custom),
            Raw::Number(n) => Err(serde::de::Error::custom(format!(
                "{n} is not a percentage: write it as a string with its sign, e.g. \"3%\""
            ))),
        }
    }
}

/// Where the stop-loss and the take-profit are kept.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Placement {
    /// At the venue where it can hold them (a stop order, or an OCO list of
    /// stop plus take-profit), so they work while Keel is down; the trailing
    /// stop, ROI and max hold stay engine-side.
    #[default]
    Venue,
    /// Every exit engine-side, evaluated on every price update.
    Engine,
}

/// A trailing stop: once the profit reaches `activate`, exit when the price
/// falls `distance` below its best since entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrailingStop {
    /// Profit at which the trailing stop starts following (0% = at once).
    #[serde(default)]
    pub activate: Pct,
    /// How far below the best price the stop trails.
    pub distance: Pct,
}

/// One row of the minimal-ROI table: from `after` held on, exit once the
/// profit is at least `profit` (written `["30m", "2%"]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RoiStep {
    /// Time held since entry.
    pub after: DurationMs,
    /// Profit that closes the position from then on.
    pub profit: Pct,
}

impl Serialize for RoiStep {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        (self.after, self.profit).serialize(s)
    }
}

impl<'de> Deserialize<'de> for RoiStep {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let (after, profit) = <(DurationMs, Pct)>::deserialize(d)?;
        Ok(Self { after, profit })
    }
}

/// A strategy's exits. Every field is optional; at least one exit must be set.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExitSpec {
    /// Exit when the price falls this far below the entry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_loss: Option<Pct>,
    /// Exit when the price rises this far above the entry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub take_profit: Option<Pct>,
    /// A stop that follows the best price.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trailing_stop: Option<TrailingStop>,
    /// Freqtrade's minimal-ROI table, in any order (kept sorted by time).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub roi: Vec<RoiStep>,
    /// Exit after holding this long.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_hold: Option<DurationMs>,
    /// Where the stop-loss and take-profit are kept.
    #[serde(default)]
    pub placement: Placement,
}

impl ExitSpec {
    /// Checks values that parse but make no sense, and sorts the ROI table;
    /// `key` is the table's path (e.g. `strategy[0].exits`).
    pub fn validate(&mut self, key: &str) -> Result<(), ConfigError> {
        let field = |f: &str| format!("{key}.{f}");
        let none = self.stop_loss.is_none()
            && self.take_profit.is_none()
            && self.trailing_stop.is_none()
            && self.roi.is_empty()
            && self.max_hold.is_none();
        if none {
            return Err(ConfigError::new(
                key,
                "sets no exit: give at least one of stop_loss, take_profit, trailing_stop, roi, max_hold",
            ));
        }
        if let Some(p) = self.stop_loss {
            between(&field("stop_loss"), p)?;
        }
        if let Some(p) = self.take_profit {
            if p.0 <= Decimal::ZERO {
                return Err(ConfigError::new(field("take_profit"), format!("must be above 0%, got {p}")));
            }
        }
        if let Some(t) = self.trailing_stop {
            between(&field("trailing_stop.distance"), t.distance)?;
            if t.activate.0 < Decimal::ZERO {
                return Err(ConfigError::new(
                    field("trailing_stop.activate"),
                    format!("must be 0% or more, got {}", t.activate),
                ));
            }
        }
        for (i, step) in self.roi.iter().enumerate() {
            if step.after.0 < 0 {
                return Err(ConfigError::new(format!("{key}.roi[{i}]"), "the time held must not be negative"));
            }
            if step.profit.0 <= -Decimal::ONE {
                return Err(ConfigError::new(
                    format!("{key}.roi[{i}]"),
                    format!("a profit of {} can never be reached", step.profit),
                ));
            }
        }
        self.roi.sort_by_key(|s| s.after);
        if let Some(pair) = self.roi.windows(2).find(|w| w[0].after == w[1].after) {
            return Err(ConfigError::new(
                field("roi"),
                format!("two rows for the same time held ({} ms)", pair[0].after.0),
            ));
        }
        if let Some(m) = self.max_hold {
            if m.0 <= 0 {
                return Err(ConfigError::new(field("max_hold"), "must be longer than 0"));
            }
        }
        Ok(())
    }
}

/// Fails unless 0% < `p` < 100%.
fn between(key: &str, p: Pct) -> Result<(), ConfigError> {
    if p.0 <= Decimal::ZERO || p.0 >= Decimal::ONE {
        return Err(ConfigError::new(key, format!("must be between 0% and 100%, got {p}")));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    fn d(s: &str) -> Decimal {
        Decimal::from_str(s).unwrap()
    }

    #[derive(Deserialize)]
    struct Holder {
        exits: ExitSpec,
    }

    fn parse(text: &str) -> Result<ExitSpec, String> {
        let mut h: Holder = toml::from_str(&format!("exits = {text}")).map_err(|e| e.message().to_string())?;
        h.exits.validate("strategy[0].exits").map_err(|e| e.to_string())?;
        Ok(h.exits)
    }

    #[test]
    fn the_issue_example_parses() {
        let spec = parse(
            r#"{ stop_loss = "3%", take_profit = "6%", trailing_stop = { activate = "2%", distance = "1%" }, roi = [["30m", "2%"], ["0m", "5%"], ["2h", "0%"]], max_hold = "12h" }"#,
        )
        .unwrap();
        assert_eq!(spec.stop_loss, Some(Pct(d("0.03"))));
        assert_eq!(spec.take_profit, Some(Pct(d("0.06"))));
        assert_eq!(spec.trailing_stop, Some(TrailingStop { activate: Pct(d("0.02")), distance: Pct(d("0.01")) }));
        let roi: Vec<(i64, Decimal)> = spec.roi.iter().map(|s| (s.after.0, s.profit.0)).collect();
        assert_eq!(roi, [(0, d("0.05")), (1_800_000, d("0.02")), (7_200_000, d("0"))], "sorted by time");
        assert_eq!(spec.max_hold, Some(DurationMs(43_200_000)));
        assert_eq!(spec.placement, Placement::Venue);
    }

    #[test]
    fn bad_tables_name_the_field() {
        let cases = [
            (r#"{ stop_loss = 0.03 }"#, "write it as a string with its sign"),
            (r#"{ stop_loss = "3" }"#, "write it with its sign"),
            (r#"{ stop_loss = "150%" }"#, "strategy[0].exits.stop_loss"),
            (r#"{ stop_loss = "0%" }"#, "strategy[0].exits.stop_loss"),
            (r#"{ take_profit = "-1%" }"#, "strategy[0].exits.take_profit"),
            (r#"{ trailing_stop = { distance = "0%" } }"#, "strategy[0].exits.trailing_stop.distance"),
            (r#"{ trailing_stop = { activate = "1%" } }"#, "missing field `distance`"),
            (r#"{ roi = [["1h", "2%"], ["60m", "1%"]] }"#, "two rows for the same time held"),
            (r#"{ roi = [["1h", "-100%"]] }"#, "can never be reached"),
            (r#"{ max_hold = "0s" }"#, "strategy[0].exits.max_hold"),
            (r#"{ placement = "venue" }"#, "sets no exit"),
            (r#"{ placement = "exchange", stop_loss = "1%" }"#, "unknown variant `exchange`"),
            (r#"{ stoploss = "1%" }"#, "unknown field `stoploss`"),
        ];
        for (text, want) in cases {
            let err = parse(text).unwrap_err();
            assert!(err.contains(want), "{text}: {err}");
        }
    }

    #[test]
    fn percentages_print_as_written() {
        for text in ["3%", "0.5%", "-1%", "100%"] {
            assert_eq!(Pct::parse(text).unwrap().to_string(), text);
        }
        let spec = parse(r#"{ stop_loss = "2.5%", roi = [["30m", "1%"]], placement = "engine" }"#).unwrap();
        let json = serde_json::to_string(&spec).unwrap();
        assert_eq!(json, r#"{"stop_loss":"2.5%","roi":[["1800000ms","1%"]],"placement":"engine"}"#);
        assert_eq!(serde_json::from_str::<ExitSpec>(&json).unwrap(), spec);
    }
}
