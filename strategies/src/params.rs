//! Reading a strategy's `params` table with errors that name the key.

use rust_decimal::Decimal;

use crate::registry::StrategyConfigError;

/// The TOML type a parameter is read as, so that tools writing parameters
/// (`keel backtest --sweep`) write what the strategy reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParamKind {
    /// A positive integer (`fast = 12`), read by [`Params::usize`].
    Integer,
    /// An exact decimal, written as a string (`qty = "0.5"`), read by [`Params::decimal`].
    Decimal,
    /// A number for statistics such as a band width (`k = 1.5`), read by [`Params::number`].
    Number,
    /// A duration (`throttle = "1h"`; a bare integer is seconds, which is
    /// what a sweep writes), read by [`Params::duration_ms_or`].
    Duration,
}

/// One parameter a strategy kind reads: its name and type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParamSpec {
    /// The key in `params`.
    pub name: &'static str,
    /// Its type.
    pub kind: ParamKind,
}

impl ParamSpec {
    /// An integer parameter.
    pub const fn integer(name: &'static str) -> Self {
        Self { name, kind: ParamKind::Integer }
    }

    /// A decimal parameter.
    pub const fn decimal(name: &'static str) -> Self {
        Self { name, kind: ParamKind::Decimal }
    }

    /// A duration parameter.
    pub const fn duration(name: &'static str) -> Self {
        Self { name, kind: ParamKind::Duration }
    }

    /// A number parameter.
    pub const fn number(name: &'static str) -> Self {
        Self { name, kind: ParamKind::Number }
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

    /// Fails on keys not in `known` (the kind's parameters), so a typo is not
    /// silently ignored.
    pub fn only(&self, known: &[ParamSpec]) -> Result<(), StrategyConfigError> {
        for key in self.table.keys() {
            if !known.iter().any(|p| p.name == key) {
                let names: Vec<&str> = known.iter().map(|p| p.name).collect();
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
