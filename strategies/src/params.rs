//! Reading a strategy's `params` table with errors that name the key.

use rust_decimal::Decimal;

use crate::registry::StrategyConfigError;

/// The TOML type a parameter is read as, so that tools writing parameters
/// (`keel backtest --sweep`) write what the strategy reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParamKind {
    /// An integer (`fast = 12`), read by [`Params::usize`] (a Pine script's
    /// `input.int`, which may be negative, by the script).
    Integer,
    /// An exact decimal, written as a string (`qty = "0.5"`), read by [`Params::decimal`].
    Decimal,
    /// A number for statistics such as a band width (`k = 1.5`), read by [`Params::number`].
    Number,
    /// A duration (`throttle = "1h"`; a bare integer is seconds, which is
    /// what a sweep writes), read by [`Params::duration_ms_or`].
    Duration,
    /// A file path (`script = "pine/ema_cross.pine"`), relative to the config
    /// file; not sweepable.
    Path,
    /// A table of values (a Pine block's `inputs = { fastLen = 9 }`); not sweepable.
    Table,
    /// `true` or `false` (a Pine script's `input.bool`); not sweepable.
    Bool,
    /// Text (a Pine script's `input.string` or `input.source`); not sweepable.
    Text,
}

impl ParamKind {
    /// True for the kinds `--sweep` can write a number into.
    pub fn is_numeric(self) -> bool {
        matches!(self, Self::Integer | Self::Decimal | Self::Number | Self::Duration)
    }
}

/// One parameter a strategy kind declares: its name, type, default and valid
/// range. Owned (not `'static`) so that kinds registered at run time (a user's
/// binary, a Pine script's inputs) can build their lists as they load.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParamSpec {
    /// The key in `params`.
    pub name: String,
    /// Its type.
    pub kind: ParamKind,
    /// True when a block must set it.
    pub required: bool,
    /// The value used when it is absent, as written in TOML (`20`, `"1h"`).
    pub default: Option<String>,
    /// The lowest valid value, if any.
    pub min: Option<Bound>,
    /// The highest valid value, if any.
    pub max: Option<Bound>,
    /// The sub-table of `params` it is written in (`inputs` for a Pine
    /// script's inputs), or `None` for a key of `params` itself.
    pub table: Option<String>,
    /// A second name it answers to (a Pine input's `title`), if any.
    pub title: Option<String>,
}

/// One end of a parameter's valid range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bound {
    /// The limit (exact, so a decimal limit such as a price is not rounded).
    pub value: Decimal,
    /// True when the limit itself is valid.
    pub inclusive: bool,
}

impl ParamSpec {
    fn new(name: &str, kind: ParamKind) -> Self {
        Self {
            name: name.to_string(),
            kind,
            required: false,
            default: None,
            min: None,
            max: None,
            table: None,
            title: None,
        }
    }

    /// A parameter of any kind (the typed constructors below are shorter).
    pub fn of_kind(name: &str, kind: ParamKind) -> Self {
        Self::new(name, kind)
    }

    /// A path parameter.
    pub fn path(name: &str) -> Self {
        Self::new(name, ParamKind::Path)
    }

    /// A table parameter.
    pub fn table(name: &str) -> Self {
        Self::new(name, ParamKind::Table)
    }

    /// An integer parameter.
    pub fn integer(name: &str) -> Self {
        Self::new(name, ParamKind::Integer)
    }

    /// A decimal parameter.
    pub fn decimal(name: &str) -> Self {
        Self::new(name, ParamKind::Decimal)
    }

    /// A duration parameter.
    pub fn duration(name: &str) -> Self {
        Self::new(name, ParamKind::Duration)
    }

    /// A number parameter.
    pub fn number(name: &str) -> Self {
        Self::new(name, ParamKind::Number)
    }

    /// Marks it as one a block must set.
    pub fn required(mut self) -> Self {
        self.required = true;
        self
    }

    /// Its default, as written in TOML.
    pub fn default_value(mut self, toml: &str) -> Self {
        self.default = Some(toml.to_string());
        self
    }

    /// Written in the sub-table `table` of `params` (`inputs`).
    pub fn in_table(mut self, table: &str) -> Self {
        self.table = Some(table.to_string());
        self
    }

    /// Also answers to `title`.
    pub fn titled(mut self, title: Option<String>) -> Self {
        self.title = title;
        self
    }

    /// True when `name` is its name or its title.
    pub fn answers_to(&self, name: &str) -> bool {
        self.name == name || self.title.as_deref() == Some(name)
    }

    /// The parameter `key` names among `specs`: the one of that name, else
    /// the one of that title. A name wins over a title, so a script whose
    /// input is titled as another input's variable is still addressed
    /// without ambiguity (the same rule as a Pine block's `inputs`).
    pub fn find<'a>(specs: &'a [ParamSpec], key: &str) -> Option<&'a ParamSpec> {
        specs.iter().find(|p| p.name == key).or_else(|| specs.iter().find(|p| p.title.as_deref() == Some(key)))
    }

    /// The key in a block's `params`: `inputs.fastLen` for a Pine input, else its name.
    pub fn key(&self) -> String {
        match &self.table {
            Some(t) => format!("{t}.{}", self.name),
            None => self.name.clone(),
        }
    }

    /// Valid from `value` on, `value` included.
    pub fn at_least(mut self, value: impl Into<Decimal>) -> Self {
        self.min = Some(Bound { value: value.into(), inclusive: true });
        self
    }

    /// Valid above `value` only.
    pub fn above(mut self, value: impl Into<Decimal>) -> Self {
        self.min = Some(Bound { value: value.into(), inclusive: false });
        self
    }

    /// Valid up to `value`, `value` included.
    pub fn at_most(mut self, value: impl Into<Decimal>) -> Self {
        self.max = Some(Bound { value: value.into(), inclusive: true });
        self
    }

    /// Valid below `value` only.
    pub fn below(mut self, value: impl Into<Decimal>) -> Self {
        self.max = Some(Bound { value: value.into(), inclusive: false });
        self
    }

    /// The valid range in words (`between 2 and 1000`, `greater than 0`), or
    /// `None` for a parameter without one.
    pub fn range_text(&self) -> Option<String> {
        let lower = self.min.map(|b| (b.value, if b.inclusive { "at least" } else { "greater than" }));
        let upper = self.max.map(|b| (b.value, if b.inclusive { "at most" } else { "less than" }));
        match (self.min, self.max) {
            (Some(lo), Some(hi)) if lo.inclusive && hi.inclusive => {
                Some(format!("between {} and {}", lo.value, hi.value))
            }
            _ => {
                let parts: Vec<String> =
                    [lower, upper].into_iter().flatten().map(|(v, w)| format!("{w} {v}")).collect();
                (!parts.is_empty()).then(|| parts.join(" and "))
            }
        }
    }

    /// Why `value` is outside the declared range, or `None` when it is inside.
    pub fn out_of_range(&self, value: Decimal) -> Option<String> {
        let below_min = self.min.is_some_and(|b| if b.inclusive { value < b.value } else { value <= b.value });
        let above_max = self.max.is_some_and(|b| if b.inclusive { value > b.value } else { value >= b.value });
        (below_min || above_max).then(|| format!("must be {}, got {value}", self.range_text().unwrap_or_default()))
    }

    /// The range check of a configured value. A value that is not a number
    /// is left to the kind's constructor, which reports its type.
    pub fn check(&self, value: &toml::Value) -> Option<String> {
        if !self.kind.is_numeric() {
            return None;
        }
        let number = match value {
            toml::Value::Integer(n) => Some(Decimal::from(*n)),
            toml::Value::Float(f) => Decimal::try_from(*f).ok(),
            toml::Value::String(s) if self.kind != ParamKind::Duration => s.trim().parse::<Decimal>().ok(),
            _ => None,
        };
        number.and_then(|v| self.out_of_range(v))
    }
}

/// Typed access to one strategy's `params` table.
pub struct Params<'a> {
    table: &'a toml::Table,
    prefix: String,
}

impl<'a> Params<'a> {
    /// Wraps a table; `prefix` is the key path used in errors (e.g. `strategy[0].params`).
    pub fn new(table: &'a toml::Table, prefix: impl Into<String>) -> Self {
        Self { table, prefix: prefix.into() }
    }

    /// An error about `key`.
    pub fn error(&self, key: &str, reason: impl Into<String>) -> StrategyConfigError {
        StrategyConfigError { key: format!("{}.{key}", self.prefix), reason: reason.into() }
    }

    /// The raw value of `key`, for parameters read whole (a Pine block's `inputs` table).
    pub fn get(&self, key: &str) -> Option<&'a toml::Value> {
        self.table.get(key)
    }

    /// Fails on keys not in `known` (the kind's parameters), so a typo is not
    /// silently ignored.
    pub fn only(&self, known: &[ParamSpec]) -> Result<(), StrategyConfigError> {
        for key in self.table.keys() {
            if !known.iter().any(|p| p.name == *key) {
                let names: Vec<&str> = known.iter().map(|p| p.name.as_str()).collect();
                return Err(self.error(key, format!("unknown parameter (expected one of: {})", names.join(", "))));
            }
        }
        Ok(())
    }

    /// A required positive integer.
    pub fn usize(&self, key: &str) -> Result<usize, StrategyConfigError> {
        match self.table.get(key) {
            None => Err(self.error(key, "is required")),
            Some(toml::Value::Integer(n)) if *n > 0 => Ok(*n as usize),
            Some(toml::Value::Integer(n)) => Err(self.error(key, format!("must be a positive integer, got {n}"))),
            Some(other) => Err(self.error(key, format!("must be an integer, got {}", other.type_str()))),
        }
    }

    /// An optional positive integer with a default.
    pub fn usize_or(&self, key: &str, default: usize) -> Result<usize, StrategyConfigError> {
        if self.table.contains_key(key) {
            self.usize(key)
        } else {
            Ok(default)
        }
    }

    /// A required decimal (a string like `"0.01"`, or an integer).
    pub fn decimal(&self, key: &str) -> Result<Decimal, StrategyConfigError> {
        match self.table.get(key) {
            None => Err(self.error(key, "is required")),
            Some(toml::Value::String(s)) => {
                s.parse::<Decimal>().map_err(|_| self.error(key, format!("`{s}` is not a decimal number")))
            }
            Some(toml::Value::Integer(n)) => Ok(Decimal::from(*n)),
            Some(toml::Value::Float(f)) => Decimal::try_from(*f)
                .map_err(|_| self.error(key, format!("{f} is not representable; write it as a string"))),
            Some(other) => Err(self.error(key, format!("must be a decimal string, got {}", other.type_str()))),
        }
    }

    /// A required decimal that must be > 0.
    pub fn positive_decimal(&self, key: &str) -> Result<Decimal, StrategyConfigError> {
        let v = self.decimal(key)?;
        if v <= Decimal::ZERO {
            return Err(self.error(key, format!("must be positive, got {v}")));
        }
        Ok(v)
    }

    /// An optional decimal with a default.
    pub fn decimal_or(&self, key: &str, default: Decimal) -> Result<Decimal, StrategyConfigError> {
        if self.table.contains_key(key) {
            self.decimal(key)
        } else {
            Ok(default)
        }
    }

    /// A required finite number (an integer, a float or a decimal string), for
    /// statistics such as a band width or an RSI level; never for money.
    pub fn number(&self, key: &str) -> Result<f64, StrategyConfigError> {
        let v = match self.table.get(key) {
            None => return Err(self.error(key, "is required")),
            Some(toml::Value::Integer(n)) => *n as f64,
            Some(toml::Value::Float(f)) => *f,
            Some(toml::Value::String(s)) => {
                s.trim().parse::<f64>().map_err(|_| self.error(key, format!("`{s}` is not a number")))?
            }
            Some(other) => return Err(self.error(key, format!("must be a number, got {}", other.type_str()))),
        };
        if !v.is_finite() {
            return Err(self.error(key, format!("must be a finite number, got {v}")));
        }
        Ok(v)
    }

    /// An optional finite number with a default.
    pub fn number_or(&self, key: &str, default: f64) -> Result<f64, StrategyConfigError> {
        if self.table.contains_key(key) {
            self.number(key)
        } else {
            Ok(default)
        }
    }

    /// An optional positive duration in ms with a default: a string such as
    /// `"30m"` or an integer number of seconds.
    pub fn duration_ms_or(&self, key: &str, default_ms: i64) -> Result<i64, StrategyConfigError> {
        let ms = match self.table.get(key) {
            None => return Ok(default_ms),
            Some(toml::Value::String(s)) => keel_core::config::parse_duration_ms(s).map_err(|e| self.error(key, e))?,
            Some(toml::Value::Integer(n)) => n.checked_mul(1_000).ok_or_else(|| self.error(key, "is too long"))?,
            Some(other) => {
                return Err(self.error(key, format!("must be a duration such as \"1h\", got {}", other.type_str())))
            }
        };
        if ms <= 0 {
            return Err(self.error(key, "must be longer than zero"));
        }
        Ok(ms)
    }

    /// An optional text value (a string; an integer or float is read as
    /// its text), for parameters with their own syntax such as `"50%"`.
    pub fn text_opt(&self, key: &str) -> Result<Option<String>, StrategyConfigError> {
        match self.table.get(key) {
            None => Ok(None),
            Some(toml::Value::String(s)) => Ok(Some(s.trim().to_string())),
            Some(toml::Value::Integer(n)) => Ok(Some(n.to_string())),
            Some(toml::Value::Float(f)) => Ok(Some(f.to_string())),
            Some(other) => Err(self.error(key, format!("must be a string, got {}", other.type_str()))),
        }
    }

    /// An optional decimal of any sign.
    pub fn decimal_opt(&self, key: &str) -> Result<Option<Decimal>, StrategyConfigError> {
        if self.table.contains_key(key) {
            self.decimal(key).map(Some)
        } else {
            Ok(None)
        }
    }

    /// An optional decimal that must be > 0 when present.
    pub fn positive_decimal_opt(&self, key: &str) -> Result<Option<Decimal>, StrategyConfigError> {
        if self.table.contains_key(key) {
            self.positive_decimal(key).map(Some)
        } else {
            Ok(None)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each kind of range reads as it checks: edges in or out as declared,
    /// and a value that is not a number is left to the constructor.
    #[test]
    fn a_declared_range_checks_values_and_names_itself() {
        let d = |s: &str| s.parse::<Decimal>().unwrap();
        let between = ParamSpec::integer("n").at_least(2).at_most(1000);
        let open = ParamSpec::number("x").above(0).below(100);
        let positive = ParamSpec::decimal("q").above(0);
        let free = ParamSpec::decimal("f");
        let cases: [(&ParamSpec, toml::Value, Option<&str>); 12] = [
            (&between, toml::Value::Integer(2), None),
            (&between, toml::Value::Integer(1000), None),
            (&between, toml::Value::Integer(1), Some("must be between 2 and 1000, got 1")),
            (&between, toml::Value::Integer(1001), Some("must be between 2 and 1000, got 1001")),
            (&open, toml::Value::Float(0.5), None),
            (&open, toml::Value::Integer(0), Some("must be greater than 0 and less than 100, got 0")),
            (&open, toml::Value::String("100".into()), Some("must be greater than 0 and less than 100, got 100")),
            (&positive, toml::Value::String("0.00000001".into()), None),
            (&positive, toml::Value::String("0".into()), Some("must be greater than 0, got 0")),
            (&positive, toml::Value::String("many".into()), None),
            (&free, toml::Value::String("-5".into()), None),
            (&ParamSpec::integer("m").at_most(3), toml::Value::Integer(4), Some("must be at most 3, got 4")),
        ];
        for (spec, value, want) in cases {
            assert_eq!(spec.check(&value).as_deref(), want, "{} = {value}", spec.name);
        }
        assert_eq!(free.range_text(), None);
        assert_eq!(positive.out_of_range(d("-0.1")).as_deref(), Some("must be greater than 0, got -0.1"));
        let duration = ParamSpec::duration("t").above(0);
        assert_eq!(duration.check(&toml::Value::String("0".into())), None, "a duration's text is the constructor's");
    }
}
