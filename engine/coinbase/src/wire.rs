//! Serde helpers for Coinbase's value spellings: decimals sent as strings
//! (sometimes as JSON numbers), `""` for "not set", RFC 3339 times with up to
//! nanosecond fractions, and int64s sent as strings. Each module both reads
//! (leniently, as the reference's §3 asks) and writes (strings, as Coinbase does).

use std::str::FromStr;

use rust_decimal::Decimal;
use serde::de::{self, Deserializer, Visitor};
use serde::Serializer;

/// A decimal from a JSON string or number; `None` for `""` and `null`.
fn decimal_from(text: &str) -> Result<Option<Decimal>, String> {
    let t = text.trim();
    if t.is_empty() {
        return Ok(None);
    }
    Decimal::from_str(t)
        .or_else(|_| Decimal::from_scientific(t))
        .map(Some)
        .map_err(|_| format!("`{t}` is not a decimal number"))
}

/// Milliseconds since the epoch of an RFC 3339 time; `None` for `""` and
/// the proto zero time `0001-01-01T00:00:00Z` ("not set").
pub fn rfc3339_ms(text: &str) -> Result<Option<i64>, String> {
    let t = text.trim();
    if t.is_empty() || t.starts_with("0001-01-01T00:00:00") {
        return Ok(None);
    }
    chrono::DateTime::parse_from_rfc3339(t)
        .map(|dt| Some(dt.timestamp_millis()))
        .map_err(|e| format!("`{t}` is not an RFC 3339 time: {e}"))
}

/// What a lenient scalar field held: text (from a string or a number) or nothing.
struct Scalar(Option<String>);

impl<'de> serde::Deserialize<'de> for Scalar {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Scalar;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a string or a number")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Scalar, E> {
                Ok(Scalar(Some(v.to_string())))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Scalar, E> {
                Ok(Scalar(Some(v.to_string())))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Scalar, E> {
                Ok(Scalar(Some(v.to_string())))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Scalar, E> {
                // JSON numbers only in doc examples and a few legacy fields
                // (reference §3); the shortest text that reads back as `v`.
                Ok(Scalar(Some(v.to_string())))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Scalar, E> {
                Ok(Scalar(None))
            }
            fn visit_none<E: de::Error>(self) -> Result<Scalar, E> {
                Ok(Scalar(None))
            }
            fn visit_some<D2: Deserializer<'de>>(self, d: D2) -> Result<Scalar, D2::Error> {
                serde::Deserialize::deserialize(d)
            }
        }
        d.deserialize_any(V)
    }
}

fn scalar<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    <Scalar as serde::Deserialize>::deserialize(d).map(|s| s.0)
}

/// A required decimal (string or number).
pub mod dec {
    use super::*;

    /// Reads it.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Decimal, D::Error> {
        let text = scalar(d)?.unwrap_or_default();
        decimal_from(&text).map_err(de::Error::custom)?.ok_or_else(|| de::Error::custom("a decimal is required here"))
    }

    /// Writes it as a string.
    pub fn serialize<S: Serializer>(v: &Decimal, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(v)
    }
}

/// An optional decimal: `""`, `null` and absence are `None`.
pub mod opt_dec {
    use super::*;

    /// Reads it.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Decimal>, D::Error> {
        match scalar(d)? {
            None => Ok(None),
            Some(text) => decimal_from(&text).map_err(de::Error::custom),
        }
    }

    /// Writes it as a string (`null` when absent).
    pub fn serialize<S: Serializer>(v: &Option<Decimal>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(v) => s.collect_str(v),
            None => s.serialize_none(),
        }
    }
}

/// A required RFC 3339 time, as epoch milliseconds.
pub mod time_ms {
    use super::*;

    /// Reads it.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
        let text = scalar(d)?.unwrap_or_default();
        rfc3339_ms(&text).map_err(de::Error::custom)?.ok_or_else(|| de::Error::custom("a time is required here"))
    }

    /// Writes it as RFC 3339 with milliseconds.
    pub fn serialize<S: Serializer>(v: &i64, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&keel_core::when::utc_millis(*v))
    }
}

/// An optional RFC 3339 time as epoch milliseconds: `""`, `null`, absence
/// and the zero time are `None`.
pub mod opt_time_ms {
    use super::*;

    /// Reads it.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
        match scalar(d)? {
            None => Ok(None),
            Some(text) => rfc3339_ms(&text).map_err(de::Error::custom),
        }
    }

    /// Writes it as RFC 3339 with milliseconds (`null` when absent).
    pub fn serialize<S: Serializer>(v: &Option<i64>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(v) => s.serialize_str(&keel_core::when::utc_millis(*v)),
            None => s.serialize_none(),
        }
    }
}

/// An optional integer sent as a string or a number (`num_products`,
/// `number_of_fills`, `heartbeat_counter`, `epochMillis`).
pub mod opt_int {
    use super::*;

    /// Reads it.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
        match scalar(d)? {
            None => Ok(None),
            Some(t) if t.trim().is_empty() => Ok(None),
            Some(t) => t.trim().parse().map(Some).map_err(|_| de::Error::custom(format!("`{t}` is not an integer"))),
        }
    }

    /// Writes it as a string (`null` when absent).
    pub fn serialize<S: Serializer>(v: &Option<i64>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(v) => s.collect_str(v),
            None => s.serialize_none(),
        }
    }
}

/// UNIX seconds sent as a string (candle `start`), as epoch milliseconds.
pub mod unix_s_as_ms {
    use super::*;

    /// Reads it.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
        let t = scalar(d)?.unwrap_or_default();
        let s: i64 = t.trim().parse().map_err(|_| de::Error::custom(format!("`{t}` is not UNIX seconds")))?;
        s.checked_mul(1000).ok_or_else(|| de::Error::custom(format!("`{t}` is out of range")))
    }

    /// Writes it back as a string of seconds.
    pub fn serialize<S: Serializer>(v: &i64, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&v.div_euclid(1000))
    }
}

/// A boolean sent as a string (`"true"`/`"false"`, the user channel's
/// `post_only`) or as a JSON boolean; `""`/absent is `None`.
pub mod opt_bool_text {
    use super::*;

    /// Reads it.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<bool>, D::Error> {
        match <serde_json::Value as serde::Deserialize>::deserialize(d)? {
            serde_json::Value::Null => Ok(None),
            serde_json::Value::Bool(b) => Ok(Some(b)),
            serde_json::Value::String(s) if s.trim().is_empty() => Ok(None),
            serde_json::Value::String(s) if s.eq_ignore_ascii_case("true") => Ok(Some(true)),
            serde_json::Value::String(s) if s.eq_ignore_ascii_case("false") => Ok(Some(false)),
            other => Err(de::Error::custom(format!("`{other}` is not a boolean"))),
        }
    }

    /// Writes it as Coinbase's string.
    pub fn serialize<S: Serializer>(v: &Option<bool>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(b) => s.serialize_str(if *b { "true" } else { "false" }),
            None => s.serialize_none(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_parse_at_every_precision_and_the_zero_time_is_unset() {
        let cases = [
            ("2023-01-18T01:37:38.091377090Z", Some(1_674_005_858_091)),
            ("2023-01-16T23:37:23.947030Z", Some(1_673_912_243_947)),
            ("2024-02-27T03:37:14Z", Some(1_709_005_034_000)),
            ("1970-01-01T00:00:00Z", Some(0)),
            ("0001-01-01T00:00:00Z", None),
            ("", None),
        ];
        for (text, want) in cases {
            assert_eq!(rfc3339_ms(text), Ok(want), "{text}");
        }
        assert!(rfc3339_ms("2023-06-23 20:31:56.121961769 +0000 UTC").is_err());
    }

    #[test]
    fn decimals_from_strings_and_numbers() {
        assert_eq!(decimal_from("21220.6399999973697697"), Ok(Some("21220.6399999973697697".parse().unwrap())));
        assert_eq!(decimal_from(""), Ok(None));
        assert_eq!(decimal_from("1e-8"), Ok(Some("0.00000001".parse().unwrap())));
        assert!(decimal_from("9.43%").is_err());
    }
}
