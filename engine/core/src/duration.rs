//! Durations written as text in config and on the command line (`250ms`, `30s`, `5m`, `1h`, `1d`).

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A duration in milliseconds, written as `250ms`, `30s`, `5m`, `1h` or `1d`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct DurationMs(pub i64);

impl DurationMs {
    /// As a std duration (negative clamps to zero).
    pub fn as_std(self) -> std::time::Duration {
        std::time::Duration::from_millis(self.0.max(0) as u64)
    }
}

/// Parses `250ms`, `30s`, `5m`, `1h`, `1d` (a bare number is seconds).
pub fn parse_duration_ms(text: &str) -> Result<i64, String> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: i64 = num.parse().map_err(|_| format!("`{text}` is not a duration (e.g. 250ms, 30s, 5m, 1h)"))?;
    let factor = match unit {
        "ms" => 1,
        "" | "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => return Err(format!("`{text}` has an unknown unit `{unit}` (use ms, s, m, h or d)")),
    };
    n.checked_mul(factor).ok_or_else(|| format!("`{text}` is too long"))
}

impl Serialize for DurationMs {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format!("{}ms", self.0))
    }
}

impl<'de> Deserialize<'de> for DurationMs {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        parse_duration_ms(&s).map(DurationMs).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        let cases = [
            ("250ms", Ok(250)),
            ("30s", Ok(30_000)),
            ("5m", Ok(300_000)),
            ("1h", Ok(3_600_000)),
            ("2d", Ok(172_800_000)),
            ("7", Ok(7_000)),
        ];
        for (text, want) in cases {
            assert_eq!(parse_duration_ms(text), want, "{text}");
        }
        for bad in ["", "s", "5x", "-1s", "1.5s"] {
            assert!(parse_duration_ms(bad).is_err(), "{bad}");
        }
    }
}
