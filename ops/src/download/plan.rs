//! What a download fetches: the ranges a file still lacks, the archive files
//! and REST pages that cover them, and the gaps in what came back. Pure
//! functions of times, so they are tested by tables.

use chrono::{DateTime, Datelike, NaiveDate};

/// Milliseconds in a day.
pub const DAY_MS: i64 = 86_400_000;

/// An interval as Binance spells it, in ms: `1s`, `1m` … `1d`, `3d`, `1w`.
/// `1M` (calendar months) is not supported: its bars have no fixed length.
pub fn interval_ms(s: &str) -> Option<i64> {
    const ALLOWED: [&str; 15] =
        ["1s", "1m", "3m", "5m", "15m", "30m", "1h", "2h", "4h", "6h", "8h", "12h", "1d", "3d", "1w"];
    if !ALLOWED.contains(&s) {
        return None;
    }
    let (num, unit) = s.split_at(s.len() - 1);
    let unit_ms = match unit {
        "s" => 1000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => DAY_MS,
        _ => 7 * DAY_MS,
    };
    num.parse::<i64>().ok().map(|n| n * unit_ms)
}

/// A half-open span of open times `[from, to)` (ms).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    /// First open time wanted.
    pub from: i64,
    /// End (exclusive).
    pub to: i64,
}

/// The end (exclusive) of the open times of closed bars: bars opening before
/// `to` whose close has passed by `now` (the still-open bar is never taken).
pub fn closed_end(to: Option<i64>, now: i64, interval: i64) -> i64 {
    let last_closed_open = now - interval; // a bar opening here closes at `now`
    to.unwrap_or(i64::MAX).min(last_closed_open + 1)
}

/// The spans still to fetch for `[from, end)` given the open times of the
/// first and last bars already in the file: the part before the file (when
/// `from` is earlier) and the part after it. Bars already there are never
/// fetched again, and the part after starts one interval after the last.
pub fn missing(from: i64, end: i64, existing: Option<(i64, i64)>, interval: i64) -> Vec<Span> {
    let mut out = Vec::new();
    match existing {
        None => out.push(Span { from, to: end }),
        Some((first, last)) => {
            if from < first {
                out.push(Span { from, to: first.min(end) });
            }
            out.push(Span { from: (last + interval).max(from), to: end });
        }
    }
    out.retain(|s| s.from < s.to);
    out
}

/// One piece of a span fetched from the archives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Piece {
    /// A whole month's archive (`YYYY-MM`).
    Monthly {
        /// `YYYY-MM`.
        month: String,
        /// The month.
        span: Span,
    },
    /// A whole day's archive (`YYYY-MM-DD`).
    Daily {
        /// `YYYY-MM-DD`.
        day: String,
        /// The day.
        span: Span,
    },
    /// A part of a day, from REST (archives hold whole days).
    Rest(Span),
}

impl Piece {
    /// The open times it covers.
    pub fn span(&self) -> Span {
        match self {
            Piece::Monthly { span, .. } | Piece::Daily { span, .. } | Piece::Rest(span) => *span,
        }
    }
}

fn date_of(ms: i64) -> Option<NaiveDate> {
    DateTime::from_timestamp_millis(ms).map(|d| d.date_naive())
}

fn ms_of(d: NaiveDate) -> Option<i64> {
    d.and_hms_opt(0, 0, 0).map(|t| t.and_utc().timestamp_millis())
}

fn next_month(d: NaiveDate) -> Option<NaiveDate> {
    if d.month() == 12 {
        NaiveDate::from_ymd_opt(d.year() + 1, 1, 1)
    } else {
        NaiveDate::from_ymd_opt(d.year(), d.month() + 1, 1)
    }
}

/// Covers `span` with archive files: a whole month in the span is one
/// monthly file, a whole day outside those a daily file, and what is left
/// (parts of days at either end) REST pages. `span.to` is at most the end of
/// closed bars, so a whole period inside it is over.
pub fn archive_pieces(span: Span) -> Vec<Piece> {
    let mut out: Vec<Piece> = Vec::new();
    let mut at = span.from;
    while at < span.to {
        let Some(day) = date_of(at) else { break };
        let Some(day_start) = ms_of(day) else { break };
        let day_end = day.succ_opt().and_then(ms_of).unwrap_or(i64::MAX);
        let month_end = next_month(day.with_day(1).unwrap_or(day)).and_then(ms_of).unwrap_or(i64::MAX);
        let piece = if at == day_start && day.day() == 1 && month_end <= span.to {
            Piece::Monthly { month: day.format("%Y-%m").to_string(), span: Span { from: at, to: month_end } }
        } else if at == day_start && day_end <= span.to {
            Piece::Daily { day: day.format("%Y-%m-%d").to_string(), span: Span { from: at, to: day_end } }
        } else {
            let to = day_end.min(span.to);
            match out.last_mut() {
                Some(Piece::Rest(prev)) if prev.to == at => {
                    prev.to = to;
                    at = to;
                    continue;
                }
                _ => Piece::Rest(Span { from: at, to }),
            }
        };
        at = piece.span().to;
        out.push(piece);
    }
    out
}

/// A run of missing bars between two bars of a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Gap {
    /// Open time of the first missing bar.
    pub from: i64,
    /// Open time of the next bar there is.
    pub to: i64,
    /// Bars missing.
    pub missing: i64,
}

/// The gaps in sorted open times: wherever two neighbours are more than
/// one interval apart (the venue had no bars there, e.g. maintenance).
pub fn gaps(open_times: impl IntoIterator<Item = i64>, interval: i64) -> Vec<Gap> {
    let mut out = Vec::new();
    let mut prev: Option<i64> = None;
    for t in open_times {
        if let Some(p) = prev.filter(|p| t - p > interval) {
            out.push(Gap { from: p + interval, to: t, missing: (t - p) / interval - 1 });
        }
        prev = Some(t);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const M: i64 = 60_000;
    /// 2024-01-01T00:00:00Z.
    const T0: i64 = 1_704_067_200_000;

    fn ms(s: &str) -> i64 {
        crate::backtest::data::parse_time(s).unwrap()
    }

    #[test]
    fn intervals_as_binance_spells_them() {
        for (s, want) in [
            ("1s", Some(1000)),
            ("1m", Some(M)),
            ("15m", Some(15 * M)),
            ("4h", Some(240 * M)),
            ("1d", Some(DAY_MS)),
            ("3d", Some(3 * DAY_MS)),
            ("1w", Some(7 * DAY_MS)),
            ("1M", None),
            ("2m", None),
            ("", None),
        ] {
            assert_eq!(interval_ms(s), want, "{s}");
        }
    }

    #[test]
    fn only_closed_bars() {
        struct Case {
            name: &'static str,
            to: Option<i64>,
            now: i64,
            want: i64,
        }
        let cases = [
            Case { name: "mid-minute: the bar open now is excluded", to: None, now: T0 + 90_000, want: T0 + 30_001 },
            Case { name: "on the minute: the bar that just closed is in", to: None, now: T0 + M, want: T0 + 1 },
            Case { name: "--to earlier than now", to: Some(T0), now: T0 + 10 * M, want: T0 },
            Case { name: "--to later than now", to: Some(T0 + 100 * M), now: T0 + 10 * M, want: T0 + 9 * M + 1 },
        ];
        for c in cases {
            assert_eq!(closed_end(c.to, c.now, M), c.want, "{}", c.name);
        }
    }

    #[test]
    fn resume_fetches_only_what_the_file_lacks() {
        struct Case {
            name: &'static str,
            existing: Option<(i64, i64)>,
            from: i64,
            end: i64,
            want: Vec<(i64, i64)>,
        }
        let cases = [
            Case { name: "new file", existing: None, from: T0, end: T0 + 10 * M, want: vec![(T0, T0 + 10 * M)] },
            Case {
                name: "continues one interval after the last bar",
                existing: Some((T0, T0 + 4 * M)),
                from: T0,
                end: T0 + 10 * M,
                want: vec![(T0 + 5 * M, T0 + 10 * M)],
            },
            Case {
                name: "complete: nothing to fetch",
                existing: Some((T0, T0 + 9 * M)),
                from: T0,
                end: T0 + 10 * M,
                want: vec![],
            },
            Case {
                name: "an earlier --from fetches the head too",
                existing: Some((T0 + 5 * M, T0 + 6 * M)),
                from: T0,
                end: T0 + 10 * M,
                want: vec![(T0, T0 + 5 * M), (T0 + 7 * M, T0 + 10 * M)],
            },
            Case {
                name: "a later --from than the file's start does not refetch",
                existing: Some((T0, T0 + 6 * M)),
                from: T0 + 3 * M,
                end: T0 + 10 * M,
                want: vec![(T0 + 7 * M, T0 + 10 * M)],
            },
            Case { name: "empty range", existing: None, from: T0, end: T0, want: vec![] },
        ];
        for c in cases {
            let got: Vec<(i64, i64)> = missing(c.from, c.end, c.existing, M).iter().map(|s| (s.from, s.to)).collect();
            assert_eq!(got, c.want, "{}", c.name);
        }
    }

    #[test]
    fn archives_cover_whole_months_then_days_then_rest() {
        let names = |span: Span| -> Vec<String> {
            archive_pieces(span)
                .iter()
                .map(|p| match p {
                    Piece::Monthly { month, .. } => format!("M {month}"),
                    Piece::Daily { day, .. } => format!("D {day}"),
                    Piece::Rest(s) => {
                        format!("R {}..{}", crate::backtest::report::iso(s.from), crate::backtest::report::iso(s.to))
                    }
                })
                .collect()
        };
        struct Case {
            name: &'static str,
            from: &'static str,
            to: &'static str,
            want: Vec<&'static str>,
        }
        let cases = [
            Case {
                name: "two whole months, days, then today's part by REST",
                from: "2024-01-01",
                to: "2024-03-03T05:00:00Z",
                want: vec![
                    "M 2024-01",
                    "M 2024-02",
                    "D 2024-03-01",
                    "D 2024-03-02",
                    "R 2024-03-03T00:00:00Z..2024-03-03T05:00:00Z",
                ],
            },
            Case {
                name: "a start inside a day: its rest by REST, then days",
                from: "2024-01-30T12:00:00Z",
                to: "2024-02-01",
                want: vec!["R 2024-01-30T12:00:00Z..2024-01-31T00:00:00Z", "D 2024-01-31"],
            },
            Case {
                name: "a month not over yet is days",
                from: "2024-02-01",
                to: "2024-02-03",
                want: vec!["D 2024-02-01", "D 2024-02-02"],
            },
            Case {
                name: "within one day",
                from: "2024-02-01T01:00:00Z",
                to: "2024-02-01T02:00:00Z",
                want: vec!["R 2024-02-01T01:00:00Z..2024-02-01T02:00:00Z"],
            },
            Case { name: "leap February whole", from: "2024-02-01", to: "2024-03-01", want: vec!["M 2024-02"] },
        ];
        for c in cases {
            assert_eq!(names(Span { from: ms(c.from), to: ms(c.to) }), c.want, "{}", c.name);
        }
    }

    #[test]
    fn gaps_between_bars() {
        struct Case {
            name: &'static str,
            times: Vec<i64>,
            want: Vec<Gap>,
        }
        let cases = [
            Case { name: "none", times: vec![T0, T0 + M, T0 + 2 * M], want: vec![] },
            Case {
                name: "one hour missing",
                times: vec![T0, T0 + 61 * M],
                want: vec![Gap { from: T0 + M, to: T0 + 61 * M, missing: 60 }],
            },
            Case {
                name: "two gaps",
                times: vec![T0, T0 + 2 * M, T0 + 3 * M, T0 + 6 * M],
                want: vec![
                    Gap { from: T0 + M, to: T0 + 2 * M, missing: 1 },
                    Gap { from: T0 + 4 * M, to: T0 + 6 * M, missing: 2 },
                ],
            },
            Case { name: "empty", times: vec![], want: vec![] },
        ];
        for c in cases {
            assert_eq!(gaps(c.times, M), c.want, "{}", c.name);
        }
    }
}
