//! The strategies' `exits` tables: validated (and their ROI tables sorted)
//! once at load, errors naming the field and the line it is written on, and
//! described in one line for `keel check-config`.
//!
//! A template's `exits` is validated once on the template: its instances
//! are clones (`StrategyConfig::instance`), so they inherit the checked table.

use keel_core::exits::{ExitSpec, Placement};
use keel_core::when::duration;

use super::{Config, ConfigError};

/// Validates every strategy's `exits` (sorting its ROI table); an error
/// names `strategy[i].exits.FIELD` and the line the table is written on.
pub(super) fn validate(config: &mut Config, text: &str) -> Result<(), ConfigError> {
    for (i, s) in config.strategies.iter_mut().enumerate() {
        if let Some(spec) = s.exits.as_mut() {
            spec.validate(&format!("strategy[{i}].exits")).map_err(|e| match exits_line(text, i) {
                Some(line) => ConfigError::new(format!("{} (line {line})", e.key), e.reason),
                None => e,
            })?;
        }
    }
    Ok(())
}

/// The line (1-based) of the `i`-th `[[strategy]]` block's `exits` key, or
/// of its `[strategy.exits]` table.
fn exits_line(text: &str, i: usize) -> Option<usize> {
    let mut block = None::<usize>;
    for (n, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.starts_with("[[") {
            let is_strategy = line.trim_start_matches("[[").trim_end_matches("]]").trim() == "strategy";
            block = match (is_strategy, block) {
                (true, None) => Some(0),
                (true, Some(b)) => Some(b + 1),
                (false, _) if block.is_some_and(|b| b >= i) => return None,
                (false, b) => b,
            };
            continue;
        }
        if block != Some(i) {
            continue;
        }
        let key = line.split('=').next().unwrap_or("").trim();
        if key == "exits" || line.trim_start_matches('[').trim_end_matches(']').trim() == "strategy.exits" {
            return Some(n + 1);
        }
    }
    None
}

/// One line describing a strategy's exits (`keel check-config`), e.g.
/// `stop_loss 3%, take_profit 6%, roi 5% after 0 ms / 2% after 30 min, max_hold 12 h; stop and target at the venue`.
pub fn describe(spec: &ExitSpec) -> String {
    let mut parts = Vec::new();
    if let Some(p) = spec.stop_loss {
        parts.push(format!("stop_loss {p}"));
    }
    if let Some(p) = spec.take_profit {
        parts.push(format!("take_profit {p}"));
    }
    if let Some(t) = spec.trailing_stop {
        parts.push(format!("trailing_stop {} from +{}", t.distance, t.activate));
    }
    if !spec.roi.is_empty() {
        let steps: Vec<String> =
            spec.roi.iter().map(|s| format!("{} after {}", s.profit, duration(s.after.0.max(0) as u64))).collect();
        parts.push(format!("roi {}", steps.join(" / ")));
    }
    if let Some(m) = spec.max_hold {
        parts.push(format!("max_hold {}", duration(m.0.max(0) as u64)));
    }
    let place = match spec.placement {
        Placement::Venue => "stop and target at the venue",
        Placement::Engine => "all engine-side",
    };
    format!("{}; {place}", parts.join(", "))
}

#[cfg(test)]
mod tests {
    use super::super::btc_symbol_toml;
    use super::*;

    fn with_exits(exits: &str) -> String {
        format!(
            "{}\n[[strategy]]\nid = \"a\"\nkind = \"sma_cross\"\nsymbol = \"BTCUSDT\"\nparams = {{ fast = 5, slow = 20, qty = \"0.01\" }}\n\n[[strategy]]\nid = \"b\"\nkind = \"sma_cross\"\nsymbol = \"BTCUSDT\"\nparams = {{ fast = 5, slow = 20, qty = \"0.01\" }}\n{exits}\n",
            btc_symbol_toml!()
        )
    }

    #[test]
    fn exits_parse_sorted_and_are_described() {
        let c = Config::parse(&with_exits(
            r#"exits = { stop_loss = "3%", take_profit = "6%", trailing_stop = { activate = "2%", distance = "1%" }, roi = [["30m", "2%"], ["0m", "5%"]], max_hold = "12h" }"#,
        ))
        .unwrap();
        assert!(c.strategies[0].exits.is_none());
        let spec = c.strategies[1].exits.as_ref().unwrap();
        assert_eq!(spec.roi[0].after.0, 0, "the ROI table is sorted at load");
        assert_eq!(
            describe(spec),
            "stop_loss 3%, take_profit 6%, trailing_stop 1% from +2%, roi 5% after 0 ms / 2% after 30 min, max_hold 12 h; stop and target at the venue"
        );
    }

    #[test]
    fn bad_exits_name_the_field_and_line() {
        let cases = [
            (r#"exits = { stop_loss = "150%" }"#, "strategy[1].exits.stop_loss (line 24)", "between 0% and 100%"),
            (r#"exits = { placement = "engine" }"#, "strategy[1].exits (line 24)", "sets no exit"),
            ("[strategy.exits]\nmax_hold = \"0s\"", "strategy[1].exits.max_hold (line 24)", "longer than 0"),
            (r#"exits = { stop_loss = 0.03 }"#, "exits (line 24)", "write it as a string"),
        ];
        for (exits, key, reason) in cases {
            let text = with_exits(exits);
            let e = Config::parse(&text).expect_err(exits);
            assert_eq!(e.key, key, "{exits}: {e:?}");
            assert!(e.reason.contains(reason), "{exits}: {e:?}");
        }
    }

    #[test]
    fn a_template_is_validated_and_its_instances_inherit_the_exits() {
        let text = format!(
            "{}\n[universe]\nquote = \"USDT\"\ntop_n = 5\n\n[[strategy]]\nid = \"t\"\nkind = \"sma_cross\"\nsymbols = \"universe\"\nparams = {{ fast = 5, slow = 20, qty = \"0.01\" }}\nexits = {{ roi = [[\"1h\", \"1%\"], [\"0m\", \"4%\"]] }}\n",
            btc_symbol_toml!()
        );
        let c = Config::parse(&text).unwrap();
        let inst = c.strategies[0].instance("ETHUSDT");
        assert_eq!(inst.exits.as_ref().unwrap().roi[0].after.0, 0);
        let bad = text.replace("\"1%\"", "\"-100%\"");
        let e = Config::parse(&bad).unwrap_err();
        assert!(e.key.starts_with("strategy[0].exits.roi["), "{e:?}");
    }
}
