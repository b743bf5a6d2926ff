//! Times and durations as people read them: ISO-8601 UTC instead of epoch
//! milliseconds, and how long ago or from now where a person reads a
//! message ("paused until 2026-12-06T07:45:00Z (in 14 min)"). One place for
//! it, used by risk reasons, notifications, Telegram replies and `keel state`.

/// `YYYY-MM-DD` of a day number since the epoch (civil calendar).
pub fn date(days: i64) -> String {
    // Howard Hinnant's days_from_civil inverse.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    format!("{:04}-{m:02}-{d:02}", if m <= 2 { y + 1 } else { y })
}

fn clock(secs: i64) -> String {
    let s = secs.rem_euclid(86_400);
    format!("{}T{:02}:{:02}:{:02}", date(secs.div_euclid(86_400)), s / 3600, s / 60 % 60, s % 60)
}

/// ISO-8601 UTC to the second of a time in ms since the epoch: `2026-12-06T07:45:00Z`.
pub fn utc(ms: i64) -> String {
    format!("{}Z", clock(ms.div_euclid(1000)))
}

/// RFC 3339 UTC with milliseconds, for exports: `2026-12-06T07:45:00.123Z`.
pub fn utc_millis(ms: i64) -> String {
    format!("{}.{:03}Z", clock(ms.div_euclid(1000)), ms.rem_euclid(1000))
}

/// A duration for people: `250 ms`, `1.5 s`, `14 min`, `1 h 5 min`, `2 d 3 h`
/// (the two largest units).
pub fn duration(ms: u64) -> String {
    if ms < 1000 {
        return format!("{ms} ms");
    }
    if ms < 60_000 {
        let tenths = (ms + 50) / 100;
        return if tenths.is_multiple_of(10) {
            format!("{} s", tenths / 10)
        } else {
            format!("{}.{} s", tenths / 10, tenths % 10)
        };
    }
    let secs = (ms + 500) / 1000;
    let pair = |big: u64, big_unit: &str, small: u64, small_unit: &str| {
        if small == 0 {
            format!("{big} {big_unit}")
        } else {
            format!("{big} {big_unit} {small} {small_unit}")
        }
    };
    match secs {
        s if s < 3600 => pair(s / 60, "min", s % 60, "s"),
        s if s < 86_400 => pair(s / 3600, "h", s / 60 % 60, "min"),
        s => pair(s / 86_400, "d", s / 3600 % 24, "h"),
    }
}

/// How far `ms` is from `now_ms`, to the second: `in 14 min`, `3 s ago`, `now`.
pub fn relative(ms: i64, now_ms: i64) -> String {
    let diff = ms.saturating_sub(now_ms);
    if diff.abs() < 1000 {
        return "now".into();
    }
    // Whole seconds: "in 14 min", not "in 13 min 59.9 s".
    let rounded = (diff.unsigned_abs() + 500) / 1000 * 1000;
    if diff > 0 {
        format!("in {}", duration(rounded))
    } else {
        format!("{} ago", duration(rounded))
    }
}

/// [`utc`] followed by [`relative`]: `2026-12-06T07:45:00Z (in 14 min)`.
pub fn utc_relative(ms: i64, now_ms: i64) -> String {
    format!("{} ({})", utc(ms), relative(ms, now_ms))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2026-12-06T07:31:00Z.
    const NOW: i64 = 1_796_542_260_000;

    #[test]
    fn times() {
        let cases: &[(i64, &str, &str)] = &[
            (0, "1970-01-01T00:00:00Z", "1970-01-01T00:00:00.000Z"),
            (1_700_000_000_123, "2023-11-14T22:13:20Z", "2023-11-14T22:13:20.123Z"),
            (NOW, "2026-12-06T07:31:00Z", "2026-12-06T07:31:00.000Z"),
            (951_782_400_000, "2000-02-29T00:00:00Z", "2000-02-29T00:00:00.000Z"),
            (-1, "1969-12-31T23:59:59Z", "1969-12-31T23:59:59.999Z"),
        ];
        for (ms, at, millis) in cases {
            assert_eq!(utc(*ms), *at, "{ms}");
            assert_eq!(utc_millis(*ms), *millis, "{ms}");
        }
        assert_eq!(date(0), "1970-01-01");
    }

    #[test]
    fn durations() {
        let cases: &[(u64, &str)] = &[
            (0, "0 ms"),
            (250, "250 ms"),
            (999, "999 ms"),
            (1000, "1 s"),
            (1500, "1.5 s"),
            (59_960, "60 s"),
            (60_000, "1 min"),
            (90_000, "1 min 30 s"),
            (840_000, "14 min"),
            (3_600_000, "1 h"),
            (3_900_000, "1 h 5 min"),
            (86_400_000, "1 d"),
            (183_600_000, "2 d 3 h"),
        ];
        for (ms, want) in cases {
            assert_eq!(duration(*ms), *want, "{ms}");
        }
    }

    #[test]
    fn relative_times() {
        let cases: &[(i64, &str)] = &[
            (NOW, "now"),
            (NOW + 400, "now"),
            (NOW + 14 * 60_000, "in 14 min"),
            (NOW + 14 * 60_000 - 100, "in 14 min"),
            (NOW - 3_000, "3 s ago"),
            (NOW - 26 * 3_600_000, "1 d 2 h ago"),
        ];
        for (ms, want) in cases {
            assert_eq!(relative(*ms, NOW), *want, "{ms}");
        }
        assert_eq!(utc_relative(NOW + 14 * 60_000, NOW), "2026-12-06T07:45:00Z (in 14 min)");
    }
}
