//! The report figures a sweep keeps for every combination, ranks by and
//! prints.

use crate::backtest::report::{human_duration, Report};
use keel_core::Decimal;

/// How a figure reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    /// A fraction, shown as a percentage.
    Fraction,
    /// A ratio (Sharpe, profit factor).
    Ratio,
    /// A count.
    Count,
    /// Money in the report currency (exact).
    Money,
    /// A duration in ms.
    Duration,
}

/// One report field a sweep keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Metric {
    /// The report's JSON key.
    pub name: &'static str,
    /// How it reads.
    pub unit: Unit,
    /// Lower values are better (drawdowns, volatility, fees).
    pub lower_is_better: bool,
}

const fn higher(name: &'static str, unit: Unit) -> Metric {
    Metric { name, unit, lower_is_better: false }
}

const fn lower(name: &'static str, unit: Unit) -> Metric {
    Metric { name, unit, lower_is_better: true }
}

/// Every figure kept, in report order: the columns of result files and what
/// `--rank` accepts.
pub const METRICS: &[Metric] = &[
    higher("final_equity", Unit::Money),
    higher("total_return", Unit::Fraction),
    higher("cagr", Unit::Fraction),
    lower("annualized_volatility", Unit::Fraction),
    higher("sharpe", Unit::Ratio),
    higher("sortino", Unit::Ratio),
    lower("max_drawdown", Unit::Fraction),
    lower("max_drawdown_duration_ms", Unit::Duration),
    higher("round_trips", Unit::Count),
    higher("win_rate", Unit::Fraction),
    higher("avg_win", Unit::Money),
    higher("avg_loss", Unit::Money),
    higher("profit_factor", Unit::Ratio),
    higher("exposure_time", Unit::Fraction),
    lower("fees_paid", Unit::Money),
    higher("fills", Unit::Count),
    higher("orders", Unit::Count),
    lower("unfilled_at_end", Unit::Count),
];

/// The columns of the printed table besides the parameters and the rank metric.
pub const SHOWN: &[&str] =
    &["total_return", "sharpe", "max_drawdown", "round_trips", "win_rate", "profit_factor", "final_equity"];

/// The metric called `name`; the error lists those there are.
pub fn named(name: &str) -> Result<usize, String> {
    METRICS.iter().position(|m| m.name == name).ok_or_else(|| {
        let names: Vec<&str> = METRICS.iter().map(|m| m.name).collect();
        format!("unknown metric `{name}` (one of: {})", names.join(", "))
    })
}

/// The report's figures as the report's JSON writes them (exact decimals for
/// money, shortest round-trip text for ratios; empty where the report has null).
pub fn of(report: &Report) -> Vec<String> {
    let json = serde_json::to_value(report).unwrap_or_default();
    METRICS.iter().map(|m| text(json.get(m.name))).collect()
}

/// A JSON value as a result-file cell.
pub fn text(value: Option<&serde_json::Value>) -> String {
    match value {
        Some(serde_json::Value::String(s)) => s.clone(),
        Some(serde_json::Value::Number(n)) => n.to_string(),
        _ => String::new(),
    }
}

/// A result-file cell as JSON: money as a decimal string (as in the report),
/// other figures as numbers, null when empty.
pub fn json(metric: &Metric, text: &str) -> serde_json::Value {
    if text.is_empty() {
        return serde_json::Value::Null;
    }
    if metric.unit == Unit::Money {
        return serde_json::Value::String(text.to_string());
    }
    text.parse::<serde_json::Number>().map(serde_json::Value::Number).unwrap_or_else(|_| text.into())
}

/// A cell's value for ranking: `None` for an empty or unreadable cell.
pub fn value(text: &str) -> Option<f64> {
    text.parse::<f64>().ok().filter(|v| !v.is_nan())
}

/// A cell's value in the unit it is shown in (percent for fractions).
pub fn shown_value(metric: &Metric, text: &str) -> Option<f64> {
    value(text).map(|v| if metric.unit == Unit::Fraction { v * 100.0 } else { v })
}

/// A cell as the table shows it; fractions and ratios with `decimals`
/// decimals (chosen from the column's range).
pub fn show(metric: &Metric, text: &str, decimals: usize) -> String {
    let Some(v) = shown_value(metric, text) else { return "n/a".into() };
    match metric.unit {
        Unit::Fraction => format!("{v:.decimals$}%"),
        Unit::Ratio => format!("{v:.decimals$}"),
        Unit::Count => text.to_string(),
        Unit::Money => text.parse::<Decimal>().map(|d| format!("{:.2}", d.round_dp(2))).unwrap_or_else(|_| text.into()),
        Unit::Duration => human_duration(v as i64),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backtest::report;
    use crate::backtest::sim::Outcome;

    /// Every metric is a key of the report's JSON, numeric or null, and money
    /// is written as a decimal string there.
    #[test]
    fn every_metric_is_a_report_figure() {
        let outcome =
            Outcome { initial_equity: Decimal::from(100), final_equity: Decimal::from(110), ..Outcome::default() };
        let curve = report::CurveStats::of(&outcome);
        let strategies = vec!["s".to_string()];
        let trades = report::TradeStats::of(&[], &strategies);
        let report = report::build(&outcome, trades, curve, vec!["X".into()], strategies, "USDT", (0, 86_400_000));
        let json = serde_json::to_value(&report).unwrap();
        for m in METRICS {
            let v = json.get(m.name).unwrap_or_else(|| panic!("{} is not in the report", m.name));
            match m.unit {
                Unit::Money => assert!(v.is_string() || v.is_null(), "{}: {v}", m.name),
                _ => assert!(v.is_number() || v.is_null(), "{}: {v}", m.name),
            }
        }
        for s in SHOWN {
            named(s).unwrap();
        }
        let texts = of(&report);
        assert_eq!(texts[named("final_equity").unwrap()], "110");
        assert_eq!(texts[named("total_return").unwrap()], "0.10000000000000009");
        assert_eq!(texts[named("sharpe").unwrap()], "", "null is empty");
        assert_eq!(named("nope").unwrap_err().split(" (").next(), Some("unknown metric `nope`"));
    }

    #[test]
    fn cells_round_trip_through_json_and_show_by_unit() {
        let m = |name| METRICS[named(name).unwrap()];
        for (name, text, shown) in [
            ("final_equity", "10234.5678", "10234.57"),
            ("final_equity", "10234.5", "10234.50"),
            ("sharpe", "1.2345678", "1.235"),
            ("total_return", "-0.0123", "-1.230%"),
            ("round_trips", "42", "42"),
            ("max_drawdown_duration_ms", "90000000", "1d 1h"),
            ("sharpe", "", "n/a"),
        ] {
            let metric = m(name);
            assert_eq!(self::text(Some(&json(&metric, text))), text, "{name} {text}");
            assert_eq!(show(&metric, text, 3), shown, "{name} {text}");
        }
        assert!(json(&m("final_equity"), "1.50").is_string(), "money stays exact");
    }
}
