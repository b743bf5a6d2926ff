//! Bars as columns of exact scaled integers.
//!
//! A price or volume column holds `i64` mantissas with one decimal scale for
//! the whole column: value `i` is `values[i] / 10^scale`, exactly. Text and
//! Parquet values are parsed into [`Fixed`] numbers, checked as a row, and
//! pushed; a value with more decimals than its column has so far rescales the
//! column. Mantissas stay below 10^18 (18 digits), so a column fits Parquet's
//! 64-bit decimals and any value converts to a `Decimal` exactly
//! (`Decimal::new(m, scale)`); `Decimal` appears only at the boundaries.
//!
//! 28 to 48 bytes per bar: the open time (8), five decimals of 4 bytes while
//! their mantissas fit 32 bits and 8 otherwise, plus 8 when the close times
//! cannot be derived from the open times.

use std::cmp::Ordering;

use keel_core::market::Bar;
use keel_core::Decimal;

/// The most decimal places (and digits) a column holds.
pub const MAX_DIGITS: u32 = 18;

/// Powers of ten that fit an `i64`, 10^0 ..= 10^18.
const POW10: [i64; 19] = {
    let mut t = [1i64; 19];
    let mut i = 1;
    while i < 19 {
        t[i] = t[i - 1] * 10;
        i += 1;
    }
    t
};

/// The largest mantissa a column holds: 18 nines.
pub(super) const MAX_MANTISSA: i64 = POW10[18] - 1;

/// The farthest time from the epoch accepted, in ms (~317 000 years, beyond
/// any date chrono parses), so that differences of times never overflow.
pub(super) const MAX_TIME: i64 = 10_000_000_000_000_000;

/// The highest price accepted: above it, exact arithmetic on price × quantity
/// could overflow.
pub const MAX_PRICE: Fixed = Fixed { mantissa: 1_000_000_000_000_000, scale: 0 };

/// An exact decimal `mantissa / 10^scale`, with at most 18 digits and 18
/// decimals.
#[derive(Debug, Clone, Copy)]
pub struct Fixed {
    /// The digits, sign included.
    pub mantissa: i64,
    /// Decimal places.
    pub scale: u32,
}

impl Fixed {
    /// Zero.
    pub const ZERO: Fixed = Fixed { mantissa: 0, scale: 0 };

    /// Parses plain decimal text (`-12.50`, `.5`, `7`) without allocating;
    /// trailing zeros of the fraction are dropped (`12.50` has scale 1).
    /// `None` for anything else (spaces, exponents, more than 18 digits):
    /// [`Fixed::parse_text`] handles those.
    #[inline]
    pub fn parse(text: &[u8]) -> Option<Fixed> {
        let (negative, digits) = match text.split_first() {
            Some((b'-', rest)) => (true, rest),
            _ => (false, text),
        };
        let mut m: u64 = 0;
        // Digits in `m` from its first non-zero one.
        let mut len = 0u32;
        let mut i = 0;
        while i < digits.len() {
            let d = digits[i].wrapping_sub(b'0');
            if d > 9 {
                break;
            }
            m = m * 10 + u64::from(d);
            len += u32::from(m != 0);
            if len > MAX_DIGITS {
                return None;
            }
            i += 1;
        }
        let whole_digits = i;
        let mut scale = 0u32;
        let mut fraction_digits = 0;
        if i < digits.len() {
            if digits[i] != b'.' {
                return None;
            }
            i += 1;
            // Zeros not yet multiplied in: they only count if a non-zero digit follows.
            let mut zeros = 0u32;
            while i < digits.len() {
                let d = digits[i].wrapping_sub(b'0');
                if d > 9 {
                    return None;
                }
                fraction_digits += 1;
                if d == 0 {
                    zeros += 1;
                } else {
                    scale += zeros + 1;
                    if m == 0 {
                        m = u64::from(d);
                        len = 1;
                    } else {
                        len += zeros + 1;
                        if len > MAX_DIGITS {
                            return None;
                        }
                        m = m * POW10[zeros as usize + 1] as u64 + u64::from(d);
                    }
                    zeros = 0;
                }
                i += 1;
            }
            if scale > MAX_DIGITS {
                return None;
            }
        }
        if whole_digits == 0 && fraction_digits == 0 {
            return None;
        }
        let m = m as i64;
        Some(Fixed { mantissa: if negative { -m } else { m }, scale })
    }

    /// Parses any decimal text `Decimal` reads, scientific notation included,
    /// after trimming spaces. `Err(None)`: not a number; `Err(Some(d))`: a
    /// number that needs more than 18 digits or decimals.
    pub fn parse_text(text: &str) -> Result<Fixed, Option<Decimal>> {
        let s = text.trim();
        if let Some(f) = Fixed::parse(s.as_bytes()) {
            return Ok(f);
        }
        let d = s.parse::<Decimal>().or_else(|_| Decimal::from_scientific(s)).map_err(|_| None)?;
        Fixed::from_decimal(d).ok_or(Some(d))
    }

    /// The decimal, normalised, if it fits 18 digits and 18 decimals.
    pub fn from_decimal(d: Decimal) -> Option<Fixed> {
        let d = d.normalize();
        let m = i64::try_from(d.mantissa()).ok().filter(|m| m.unsigned_abs() <= MAX_MANTISSA as u64)?;
        (d.scale() <= MAX_DIGITS).then_some(Fixed { mantissa: m, scale: d.scale() })
    }

    /// The value as a `Decimal` (exact).
    #[inline]
    pub fn to_decimal(self) -> Decimal {
        Decimal::new(self.mantissa, self.scale)
    }

    /// The mantissa at `scale` (≥ the value's own), if it stays within 18 digits.
    #[inline]
    fn at_scale(self, scale: u32) -> Option<i64> {
        let m = self.mantissa.checked_mul(POW10[(scale - self.scale) as usize])?;
        (m.unsigned_abs() <= MAX_MANTISSA as u64).then_some(m)
    }
}

impl PartialEq for Fixed {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Fixed {}

impl PartialOrd for Fixed {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Fixed {
    #[inline]
    fn cmp(&self, other: &Self) -> Ordering {
        if self.scale == other.scale {
            return self.mantissa.cmp(&other.mantissa);
        }
        // 18 digits times 10^18 fits an i128 with room to spare.
        let scale = self.scale.max(other.scale);
        let widen = |f: &Fixed| i128::from(f.mantissa) * i128::from(POW10[(scale - f.scale) as usize]);
        widen(self).cmp(&widen(other))
    }
}

impl std::fmt::Display for Fixed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.to_decimal().fmt(f)
    }
}

/// The mantissas of a column: 32-bit while every one fits, else 64-bit.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Mantissas {
    Narrow(Vec<i32>),
    Wide(Vec<i64>),
}

impl Default for Mantissas {
    fn default() -> Self {
        Mantissas::Narrow(Vec::new())
    }
}

/// Applies `$body` to the column's vector, whichever width it has.
macro_rules! each_width {
    ($values:expr, $v:ident => $body:expr) => {
        match $values {
            Mantissas::Narrow($v) => $body,
            Mantissas::Wide($v) => $body,
        }
    };
}

/// One column of exact decimals with a shared scale. Mantissas are stored in
/// 32 bits while they fit (prices with a few decimals usually do: 4 bytes a
/// value instead of 8), in 64 bits once one does not.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DecimalColumn {
    values: Mantissas,
    scale: u32,
    /// The largest |value|, to tell whether a rescale fits before doing it.
    max_abs: u64,
}

/// Where a value goes in a column: its mantissa at the column's (possibly new) scale.
#[derive(Debug, Clone, Copy)]
struct Aligned {
    mantissa: i64,
    scale: u32,
}

/// The largest |mantissa| a 32-bit column holds.
pub(super) const NARROW_MAX: u64 = i32::MAX as u64;

/// [`MAX_PRICE`]'s mantissa at `scale` (≤ 18).
pub(super) fn max_price_mantissa(scale: u32) -> i128 {
    i128::from(MAX_PRICE.mantissa) * i128::from(POW10[scale as usize])
}

impl DecimalColumn {
    /// A column of 32-bit mantissas at `scale`; `max_abs` is the largest |value|.
    pub(super) fn from_narrow(values: Vec<i32>, scale: u32, max_abs: u64) -> Self {
        DecimalColumn { values: Mantissas::Narrow(values), scale, max_abs }
    }

    /// A column of mantissas at `scale` within 18 digits, `max_abs` the
    /// largest |value|: 32-bit when they all fit.
    pub(super) fn from_wide(values: Vec<i64>, scale: u32, max_abs: u64) -> Self {
        let values = if max_abs <= NARROW_MAX {
            Mantissas::Narrow(values.iter().map(|x| *x as i32).collect())
        } else {
            Mantissas::Wide(values)
        };
        DecimalColumn { values, scale, max_abs }
    }

    /// Mantissa `i`.
    #[inline(always)]
    pub fn value(&self, i: usize) -> i64 {
        match &self.values {
            Mantissas::Narrow(v) => i64::from(v[i]),
            Mantissas::Wide(v) => v[i],
        }
    }

    /// Mantissas `range`, as 64-bit integers.
    pub fn values(&self, range: std::ops::Range<usize>) -> Vec<i64> {
        match &self.values {
            Mantissas::Narrow(v) => v[range].iter().map(|x| i64::from(*x)).collect(),
            Mantissas::Wide(v) => v[range].to_vec(),
        }
    }

    /// The column's decimal places.
    pub fn scale(&self) -> u32 {
        self.scale
    }

    /// Bytes a value takes (4 or 8).
    pub fn width(&self) -> usize {
        match self.values {
            Mantissas::Narrow(_) => 4,
            Mantissas::Wide(_) => 8,
        }
    }

    /// Value `i`, exact.
    #[inline]
    pub fn get(&self, i: usize) -> Decimal {
        // `Decimal::new` by its parts: this constructor inlines (it runs five
        // times a bar in a backtest).
        let m = self.value(i);
        let abs = m.unsigned_abs();
        Decimal::from_parts(abs as u32, (abs >> 32) as u32, 0, m < 0, self.scale)
    }

    /// Value `i` as the nearest `f64`, as `close_f64` of [`Self::get`] gives it (without
    /// building the decimal, in the usual case).
    #[inline]
    pub fn get_f64(&self, i: usize) -> f64 {
        let m = self.value(i);
        strategies::common::mantissa_f64(m, self.scale).unwrap_or_else(|| strategies::common::close_f64(self.get(i)))
    }

    /// Number of values.
    pub fn len(&self) -> usize {
        each_width!(&self.values, v => v.len())
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Where `v` would go, or why it cannot (`name` names the column).
    #[inline]
    fn align(&self, v: Fixed, name: &str) -> Result<Aligned, String> {
        if v.scale <= self.scale {
            return v.at_scale(self.scale).map(|m| Aligned { mantissa: m, scale: self.scale }).ok_or_else(|| {
                format!("{name} {v} needs more than {MAX_DIGITS} digits at the column's {} decimals", self.scale)
            });
        }
        if self.fits_scale(v.scale) {
            Ok(Aligned { mantissa: v.mantissa, scale: v.scale })
        } else {
            Err(format!(
                "{name} {v} has {} decimals: with that many the column's largest value, {}, needs more than \
                 {MAX_DIGITS} digits",
                v.scale,
                Decimal::new(self.max_abs.min(MAX_MANTISSA as u64) as i64, self.scale).normalize()
            ))
        }
    }

    /// True when every value still fits 18 digits at `scale` (≥ the column's).
    fn fits_scale(&self, scale: u32) -> bool {
        let grow = POW10[(scale - self.scale) as usize] as u64;
        self.max_abs.checked_mul(grow).is_some_and(|m| m <= MAX_MANTISSA as u64)
    }

    /// Pushes a value [`DecimalColumn::align`] accepted.
    #[inline]
    fn push_aligned(&mut self, a: Aligned) {
        if a.scale > self.scale {
            self.rescale(a.scale);
        }
        let abs = a.mantissa.unsigned_abs();
        if abs > self.max_abs {
            self.max_abs = abs;
            if abs > NARROW_MAX {
                self.widen();
            }
        }
        match &mut self.values {
            Mantissas::Narrow(v) => v.push(a.mantissa as i32),
            Mantissas::Wide(v) => v.push(a.mantissa),
        }
    }

    /// Pushes a value, rescaling the column when it has more decimals.
    pub fn push(&mut self, v: Fixed, name: &str) -> Result<(), String> {
        let a = self.align(v, name)?;
        self.push_aligned(a);
        Ok(())
    }

    /// True when mantissas at `scale` can be appended (all within 18 digits
    /// at the finer of the two scales).
    fn can_extend(&self, values: &[i64], scale: u32) -> bool {
        let max = values.iter().map(|v| v.unsigned_abs()).max().unwrap_or(0);
        let grow = |from: u32, to: u32| POW10[(to - from) as usize] as u64;
        let limit = MAX_MANTISSA as u64;
        if scale > self.scale {
            self.fits_scale(scale) && max <= limit
        } else {
            max.checked_mul(grow(scale, self.scale)).is_some_and(|m| m <= limit)
        }
    }

    /// Appends mantissas at `scale` that [`DecimalColumn::can_extend`] accepted.
    fn extend(&mut self, values: &[i64], scale: u32) {
        if scale > self.scale {
            self.rescale(scale);
        }
        if scale < self.scale {
            let grow = POW10[(self.scale - scale) as usize];
            let scaled: Vec<i64> = values.iter().map(|v| v * grow).collect();
            self.extend_aligned(&scaled);
        } else {
            self.extend_aligned(values);
        }
    }

    /// Appends mantissas already at the column's scale.
    fn extend_aligned(&mut self, values: &[i64]) {
        let max = values.iter().map(|v| v.unsigned_abs()).max().unwrap_or(0);
        if max > NARROW_MAX {
            self.widen();
        }
        self.max_abs = self.max_abs.max(max);
        match &mut self.values {
            Mantissas::Narrow(v) => v.extend(values.iter().map(|x| *x as i32)),
            Mantissas::Wide(v) => v.extend_from_slice(values),
        }
    }

    /// Switches to 64-bit mantissas.
    fn widen(&mut self) {
        if let Mantissas::Narrow(v) = &self.values {
            self.values = Mantissas::Wide(v.iter().map(|x| i64::from(*x)).collect());
        }
    }

    /// Raises the scale (the caller checked that the values fit).
    fn rescale(&mut self, scale: u32) {
        let k = POW10[(scale - self.scale) as usize];
        self.max_abs *= k as u64;
        if self.max_abs > NARROW_MAX {
            self.widen();
        }
        match &mut self.values {
            // Narrow only while the results fit 32 bits.
            Mantissas::Narrow(v) => v.iter_mut().for_each(|x| *x = (i64::from(*x) * k) as i32),
            Mantissas::Wide(v) => v.iter_mut().for_each(|x| *x *= k),
        }
        self.scale = scale;
    }

    /// Lowers the scale while every value ends in zeros (a Parquet column
    /// declared with more decimals than its values use).
    pub fn normalize_scale(&mut self) {
        let mut drop = 0;
        while drop < self.scale {
            let k = POW10[drop as usize + 1];
            let divisible = match &self.values {
                Mantissas::Narrow(v) => v.iter().all(|x| i64::from(*x) % k == 0),
                Mantissas::Wide(v) => v.iter().all(|x| x % k == 0),
            };
            if !divisible {
                break;
            }
            drop += 1;
        }
        if drop > 0 {
            let k = POW10[drop as usize];
            match &mut self.values {
                Mantissas::Narrow(v) => v.iter_mut().for_each(|x| *x = (i64::from(*x) / k) as i32),
                Mantissas::Wide(v) => v.iter_mut().for_each(|x| *x /= k),
            }
            self.max_abs /= k as u64;
            self.scale -= drop;
        }
    }

    /// True when [`DecimalColumn::append`] can take `other`: both fit 18
    /// digits at the finer of their scales.
    fn can_append(&self, other: &DecimalColumn) -> bool {
        let scale = self.scale.max(other.scale);
        self.fits_scale(scale) && other.fits_scale(scale)
    }

    /// Appends another column ([`DecimalColumn::can_append`] said so),
    /// rescaling one of the two to the finer scale.
    fn append(&mut self, mut other: DecimalColumn) {
        let scale = self.scale.max(other.scale);
        for c in [&mut *self, &mut other] {
            if c.scale < scale {
                c.rescale(scale);
            }
        }
        if self.is_empty() {
            *self = other;
            return;
        }
        match (&mut self.values, other.values) {
            (Mantissas::Narrow(mine), Mantissas::Narrow(theirs)) => mine.extend_from_slice(&theirs),
            (_, Mantissas::Wide(theirs)) => {
                self.widen();
                if let Mantissas::Wide(mine) = &mut self.values {
                    mine.extend_from_slice(&theirs);
                }
            }
            (Mantissas::Wide(mine), Mantissas::Narrow(theirs)) => mine.extend(theirs.iter().map(|x| i64::from(*x))),
        }
        self.max_abs = self.max_abs.max(other.max_abs);
    }

    fn permute(&mut self, order: &[u32]) {
        match &mut self.values {
            Mantissas::Narrow(v) => *v = order.iter().map(|&i| v[i as usize]).collect(),
            Mantissas::Wide(v) => *v = order.iter().map(|&i| v[i as usize]).collect(),
        }
    }

    fn truncate_range(&mut self, range: std::ops::Range<usize>) {
        each_width!(&mut self.values, v => {
            v.truncate(range.end);
            v.drain(..range.start);
            v.shrink_to_fit();
        })
    }

    fn shrink_to_fit(&mut self) {
        each_width!(&mut self.values, v => v.shrink_to_fit())
    }
}

/// Close times of a column store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CloseTimes {
    /// The file had none (only before loading resolves them from the interval).
    Absent,
    /// Every bar closes this long after it opens (ms), e.g. the interval − 1.
    Offset(i64),
    /// Each bar's own close time.
    Each(Vec<i64>),
}

/// Open times, stored as compactly as they allow, built as rows come (so
/// loading never holds two forms):
/// - without gaps, `start + i × step`: nothing per bar;
/// - on a grid (exchange bars are, gaps and all), `start + offsets[i] ×
///   step` with `step` the greatest common divisor of the distances from
///   the first bar: 4 bytes a bar;
/// - out of order or too far apart for 32-bit offsets: one `i64` a bar.
#[derive(Debug, Clone, PartialEq, Eq)]
enum OpenTimes {
    /// Evenly spaced (`step` 0 until a second, later time arrives).
    Regular { start: i64, step: i64, len: usize },
    /// On a grid (`step` 0 while every time equals the first).
    Grid { start: i64, step: i64, offsets: Vec<u32> },
    /// One per bar.
    Each(Vec<i64>),
}

impl Default for OpenTimes {
    fn default() -> Self {
        OpenTimes::Regular { start: 0, step: 0, len: 0 }
    }
}

impl OpenTimes {
    #[inline]
    fn get(&self, i: usize) -> i64 {
        match self {
            OpenTimes::Regular { start, step, .. } => start + i as i64 * step,
            OpenTimes::Grid { start, step, offsets } => start + i64::from(offsets[i]) * step,
            OpenTimes::Each(v) => v[i],
        }
    }

    fn len(&self) -> usize {
        match self {
            OpenTimes::Regular { len, .. } => *len,
            OpenTimes::Grid { offsets, .. } => offsets.len(),
            OpenTimes::Each(v) => v.len(),
        }
    }

    /// Bytes a bar takes.
    fn width(&self) -> usize {
        match self {
            OpenTimes::Regular { .. } => 0,
            OpenTimes::Grid { .. } => 4,
            OpenTimes::Each(_) => 8,
        }
    }

    #[inline]
    fn push(&mut self, t: i64) {
        if let OpenTimes::Regular { start, step, len } = self {
            match *len {
                0 => *start = t,
                // Both within `MAX_TIME` of the epoch: no overflow.
                1 if t > *start => *step = t - *start,
                _ if *step > 0 && Some(t) == (*len as i64).checked_mul(*step).and_then(|d| start.checked_add(d)) => {}
                _ => {
                    let offsets = u32::try_from(*len).ok().map(|n| (0..n).collect());
                    *self = match offsets {
                        Some(offsets) => OpenTimes::Grid { start: *start, step: *step, offsets },
                        None => OpenTimes::Each(self.to_vec()),
                    };
                    return self.push(t);
                }
            }
            *len += 1;
            return;
        }
        if let OpenTimes::Grid { start, step, offsets } = self {
            if offsets.is_empty() {
                *start = t;
                offsets.push(0);
                return;
            }
            if let Some(d) = t.checked_sub(*start).filter(|d| *d >= 0) {
                if d == 0 {
                    offsets.push(0);
                    return;
                }
                let on_grid = (*step > 0 && d % *step == 0) || regrid(step, offsets, d);
                if let Some(k) = on_grid.then(|| u32::try_from(d / *step).ok()).flatten() {
                    offsets.push(k);
                    return;
                }
            }
            *self = OpenTimes::Each(self.to_vec());
        }
        if let OpenTimes::Each(v) = self {
            v.push(t);
        }
    }

    fn to_vec(&self) -> Vec<i64> {
        (0..self.len()).map(|i| self.get(i)).collect()
    }

    /// Index of the first time at or after `t` (sorted times).
    fn first_at_or_after(&self, t: i64) -> usize {
        let (mut lo, mut hi) = (0, self.len());
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if self.get(mid) < t {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        lo
    }

    /// The same times on a grid if they fit one (see the type).
    fn compact(times: Vec<i64>) -> OpenTimes {
        let mut grid = OpenTimes::default();
        for &t in &times {
            grid.push(t);
            if let OpenTimes::Each(_) = grid {
                return OpenTimes::Each(times);
            }
        }
        grid
    }
}

/// Refines a grid's step so that `d` (> 0, not on the grid) is on it:
/// the step becomes gcd(step, d) and the offsets grow to match. `false`
/// when they would not fit 32 bits.
fn regrid(step: &mut i64, offsets: &mut [u32], d: i64) -> bool {
    let mut g = d;
    let mut b = *step;
    while b != 0 {
        (g, b) = (b, g % b);
    }
    let factor = if *step == 0 { 1 } else { *step / g };
    let largest = offsets.iter().copied().max().unwrap_or(0);
    if u64::from(largest) * factor as u64 > u64::from(u32::MAX) {
        return false;
    }
    if factor > 1 {
        offsets.iter_mut().for_each(|o| *o *= factor as u32);
    }
    *step = g;
    true
}

/// One bar's values as parsed, before they join the columns.
#[derive(Debug, Clone, Copy)]
pub struct Row {
    /// Open time (ms since the epoch).
    pub open_time: i64,
    /// Close time, if the source has one.
    pub close_time: Option<i64>,
    /// Open.
    pub open: Fixed,
    /// High.
    pub high: Fixed,
    /// Low.
    pub low: Fixed,
    /// Close.
    pub close: Fixed,
    /// Volume.
    pub volume: Fixed,
}

impl Row {
    /// The sanity checks every source's rows pass.
    #[inline]
    pub fn check(&self) -> Result<(), String> {
        let Row { open_time, close_time, open, high, low, close, volume } = *self;
        if low <= Fixed::ZERO {
            return Err(format!("low {low} is not a positive price"));
        }
        if high > MAX_PRICE {
            return Err(format!("high {high} is above the largest supported price {MAX_PRICE}"));
        }
        if high < low {
            return Err(format!("high {high} is below low {low}"));
        }
        for (name, p) in [("open", open), ("close", close)] {
            if p < low || p > high {
                return Err(format!("{name} {p} is outside the bar's range [{low}, {high}]"));
            }
        }
        if volume < Fixed::ZERO {
            return Err(format!("volume {volume} is negative"));
        }
        for (name, t) in [("time", Some(open_time)), ("close_time", close_time)] {
            if let Some(t) = t.filter(|t| t.unsigned_abs() > MAX_TIME as u64) {
                return Err(format!("{name} {t} is out of range (more than 300 000 years from 1970)"));
            }
        }
        if let Some(ct) = close_time {
            if ct < open_time {
                return Err(format!("close_time {ct} is before the open time {open_time}"));
            }
        }
        Ok(())
    }
}

/// Bars in columns, in the order they were pushed (sorted once loaded).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bars {
    open_time: OpenTimes,
    close_time: CloseTimes,
    /// Open prices.
    pub open: DecimalColumn,
    /// High prices.
    pub high: DecimalColumn,
    /// Low prices.
    pub low: DecimalColumn,
    /// Close prices.
    pub close: DecimalColumn,
    /// Volumes in the base asset.
    pub volume: DecimalColumn,
}

impl Default for Bars {
    fn default() -> Self {
        Self {
            open_time: OpenTimes::default(),
            close_time: CloseTimes::Absent,
            open: DecimalColumn::default(),
            high: DecimalColumn::default(),
            low: DecimalColumn::default(),
            close: DecimalColumn::default(),
            volume: DecimalColumn::default(),
        }
    }
}

impl Bars {
    /// Converts bars (tests and benchmarks build them by hand); `Err` names
    /// the first value that needs more than 18 digits.
    pub fn from_bars(bars: &[Bar]) -> Result<Self, String> {
        let mut out = Bars::default();
        for (i, b) in bars.iter().enumerate() {
            let fixed = |d: Decimal, name: &str| {
                Fixed::from_decimal(d).ok_or_else(|| format!("bar {i}: {name} {d} needs more than {MAX_DIGITS} digits"))
            };
            let row = Row {
                open_time: b.open_time,
                close_time: Some(b.close_time),
                open: fixed(b.open, "open")?,
                high: fixed(b.high, "high")?,
                low: fixed(b.low, "low")?,
                close: fixed(b.close, "close")?,
                volume: fixed(b.volume, "volume")?,
            };
            out.push_unchecked(&row).map_err(|e| format!("bar {i}: {e}"))?;
        }
        Ok(out)
    }

    /// Bars from whole columns (open, high, low, close, volume) with evenly
    /// spaced open times `start + i × step` and no close times yet.
    pub(super) fn with_regular_times(start: i64, step: i64, len: usize, values: [DecimalColumn; 5]) -> Self {
        Self::with_open_times(OpenTimes::Regular { start, step, len }, values)
    }

    /// Bars from whole columns and their open times, in any order.
    pub(super) fn with_times(times: Vec<i64>, values: [DecimalColumn; 5]) -> Self {
        Self::with_open_times(OpenTimes::compact(times), values)
    }

    fn with_open_times(open_time: OpenTimes, values: [DecimalColumn; 5]) -> Self {
        let [open, high, low, close, volume] = values;
        Self { open_time, close_time: CloseTimes::Absent, open, high, low, close, volume }
    }

    /// The smallest positive step between consecutive open times, if any.
    pub fn min_step(&self) -> Option<i64> {
        match &self.open_time {
            OpenTimes::Regular { step, len, .. } => (*len > 1 && *step > 0).then_some(*step),
            OpenTimes::Grid { step, offsets, .. } => {
                offsets.windows(2).filter(|w| w[1] > w[0]).map(|w| i64::from(w[1] - w[0]) * step).min()
            }
            OpenTimes::Each(v) => v.windows(2).map(|w| w[1] - w[0]).filter(|d| *d > 0).min(),
        }
    }

    /// Number of bars.
    #[inline]
    pub fn len(&self) -> usize {
        self.open_time.len()
    }

    /// True when there are none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The open times (a copy).
    pub fn open_times(&self) -> Vec<i64> {
        (0..self.len()).map(|i| self.open_time.get(i)).collect()
    }

    /// Bytes a bar's open time takes (0 evenly spaced, 4 on a grid, else 8).
    pub fn time_width(&self) -> usize {
        self.open_time.width()
    }

    /// True when every bar closes after the one before it (always for one
    /// bar or none; never for two or more without close times).
    pub fn close_times_increase(&self) -> bool {
        match (&self.close_time, &self.open_time) {
            // Evenly spaced bars that each close a fixed time after they open: the spacing says.
            (CloseTimes::Offset(_), OpenTimes::Regular { step, len, .. }) => *len <= 1 || *step > 0,
            _ => (1..self.len()).all(|i| self.close_time(i) > self.close_time(i - 1)),
        }
    }

    /// How the close times are held.
    pub fn close_times(&self) -> &CloseTimes {
        &self.close_time
    }

    /// Bar `i`'s open time.
    #[inline]
    pub fn open_time(&self, i: usize) -> i64 {
        self.open_time.get(i)
    }

    /// Bar `i`'s close time (`None` only before loading resolved them).
    #[inline]
    pub fn close_time(&self, i: usize) -> Option<i64> {
        match &self.close_time {
            CloseTimes::Offset(d) => Some(self.open_time.get(i) + d),
            CloseTimes::Each(v) => Some(v[i]),
            CloseTimes::Absent => None,
        }
    }

    /// Most decimal places of a price.
    pub fn price_scale(&self) -> u32 {
        [&self.open, &self.high, &self.low, &self.close].iter().map(|c| c.scale).max().unwrap_or(0)
    }

    /// Decimal places of the volume.
    pub fn qty_scale(&self) -> u32 {
        self.volume.scale
    }

    /// Checks a row and appends it; on `Err` nothing changed.
    #[inline]
    pub fn push(&mut self, row: &Row) -> Result<(), String> {
        row.check()?;
        self.push_unchecked(row)
    }

    /// Appends a row without the sanity checks (only the columns' limits).
    fn push_unchecked(&mut self, row: &Row) -> Result<(), String> {
        let open = self.open.align(row.open, "open")?;
        let high = self.high.align(row.high, "high")?;
        let low = self.low.align(row.low, "low")?;
        let close = self.close.align(row.close, "close")?;
        let volume = self.volume.align(row.volume, "volume")?;
        self.open.push_aligned(open);
        self.high.push_aligned(high);
        self.low.push_aligned(low);
        self.close.push_aligned(close);
        self.volume.push_aligned(volume);
        self.open_time.push(row.open_time);
        self.push_close_time(row.open_time, row.close_time);
        Ok(())
    }

    /// Records the close time of the bar just pushed (open time pushed already).
    #[inline]
    fn push_close_time(&mut self, open_time: i64, close_time: Option<i64>) {
        let n = self.open_time.len() - 1;
        match (&mut self.close_time, close_time) {
            (CloseTimes::Absent, Some(c)) if n == 0 => self.close_time = CloseTimes::Offset(c - open_time),
            (CloseTimes::Offset(d), Some(c)) if c - open_time == *d => {}
            (CloseTimes::Offset(d), Some(c)) => {
                let d = *d;
                let mut each: Vec<i64> = (0..n).map(|i| self.open_time.get(i) + d).collect();
                each.push(c);
                self.close_time = CloseTimes::Each(each);
            }
            (CloseTimes::Each(v), Some(c)) => v.push(c),
            // A source has close times for all its rows or none.
            (_, None) | (CloseTimes::Absent, Some(_)) => {}
        }
    }

    /// Appends rows given as columns of mantissas with their scales (open,
    /// high, low, close, volume), as Parquet batches come. `false` when a row
    /// fails its checks or a column its limits: then nothing changed, and the
    /// caller goes row by row to name the row.
    pub fn extend(&mut self, open_time: &[i64], close_time: Option<&[i64]>, values: [(&[i64], u32); 5]) -> bool {
        let fixed = |c: usize, i: usize| Fixed { mantissa: values[c].0[i], scale: values[c].1 };
        for (i, &t) in open_time.iter().enumerate() {
            let row = Row {
                open_time: t,
                close_time: close_time.map(|c| c[i]),
                open: fixed(0, i),
                high: fixed(1, i),
                low: fixed(2, i),
                close: fixed(3, i),
                volume: fixed(4, i),
            };
            if row.check().is_err() {
                return false;
            }
        }
        let columns = [&self.open, &self.high, &self.low, &self.close, &self.volume];
        if !columns.iter().zip(&values).all(|(c, (v, s))| c.can_extend(v, *s)) {
            return false;
        }
        let columns = [&mut self.open, &mut self.high, &mut self.low, &mut self.close, &mut self.volume];
        for (c, (v, s)) in columns.into_iter().zip(values) {
            c.extend(v, s);
        }
        for (i, &t) in open_time.iter().enumerate() {
            self.open_time.push(t);
            self.push_close_time(t, close_time.map(|c| c[i]));
        }
        true
    }

    /// Writes bar `i` into `bar` (all fields but the symbol), for replay
    /// without allocating.
    #[inline]
    pub fn fill(&self, i: usize, bar: &mut Bar) {
        self.fill_close(i, bar);
        self.fill_rest(i, bar);
    }

    /// Writes bar `i`'s times and close into `bar`: what a replay reads of a
    /// bar nobody else looks at ([`Self::fill_rest`] adds the rest).
    #[inline]
    pub fn fill_close(&self, i: usize, bar: &mut Bar) {
        let open_time = self.open_time.get(i);
        bar.open_time = open_time;
        bar.close_time = match &self.close_time {
            CloseTimes::Offset(d) => open_time + d,
            CloseTimes::Each(v) => v[i],
            CloseTimes::Absent => open_time,
        };
        bar.close = self.close.get(i);
    }

    /// Writes bar `i`'s open, high, low and volume into `bar`.
    #[inline]
    pub fn fill_rest(&self, i: usize, bar: &mut Bar) {
        bar.open = self.open.get(i);
        bar.high = self.high.get(i);
        bar.low = self.low.get(i);
        bar.volume = self.volume.get(i);
    }

    /// Appends another file's (or part's) bars; on `Err` (the columns' scales
    /// do not combine within 18 digits) nothing changed. Close times of
    /// different kinds are resolved later ([`Bars::resolve_close_times`]).
    pub fn append(&mut self, other: Bars) -> Result<(), String> {
        let mine = [&self.open, &self.high, &self.low, &self.close, &self.volume];
        let theirs = [&other.open, &other.high, &other.low, &other.close, &other.volume];
        for ((a, b), name) in mine.iter().zip(theirs).zip(["open", "high", "low", "close", "volume"]) {
            if !a.can_append(b) {
                let scale = a.scale.max(b.scale);
                return Err(format!("{name}: {scale} decimals in one part and values too large for them in another"));
            }
        }
        let Bars { open_time, close_time, open, high, low, close, volume } = other;
        self.open.append(open);
        self.high.append(high);
        self.low.append(low);
        self.close.append(close);
        self.volume.append(volume);
        let n = self.len();
        if n == 0 {
            self.open_time = open_time;
            self.close_time = close_time;
            return Ok(());
        }
        for i in 0..open_time.len() {
            self.open_time.push(open_time.get(i));
        }
        let times = &self.open_time;
        let range = |r: std::ops::Range<usize>| -> Vec<i64> { r.map(|i| times.get(i)).collect() };
        self.close_time = match (std::mem::replace(&mut self.close_time, CloseTimes::Absent), close_time) {
            (CloseTimes::Absent, CloseTimes::Absent) => CloseTimes::Absent,
            (CloseTimes::Offset(a), CloseTimes::Offset(b)) if a == b => CloseTimes::Offset(a),
            (mine, theirs) => {
                // Mixed kinds: every bar gets its own; absent ones are marked
                // with i64::MIN and resolved from the interval later.
                let mut each = expand(mine, &range(0..n));
                each.extend(expand(theirs, &range(n..times.len())));
                CloseTimes::Each(each)
            }
        };
        Ok(())
    }

    /// Gives bars without a close time `open + interval − 1`; stores close
    /// times only when they differ from a fixed offset.
    pub fn resolve_close_times(&mut self, interval_ms: i64) {
        let derived = interval_ms - 1;
        self.close_time = match std::mem::replace(&mut self.close_time, CloseTimes::Absent) {
            CloseTimes::Absent => CloseTimes::Offset(derived),
            CloseTimes::Offset(d) => CloseTimes::Offset(d),
            CloseTimes::Each(mut v) => {
                let open = &self.open_time;
                for (i, c) in v.iter_mut().enumerate() {
                    if *c == i64::MIN {
                        *c = open.get(i) + derived;
                    }
                }
                match v.first().map(|c| c - open.get(0)) {
                    Some(d) if v.iter().enumerate().all(|(i, c)| c - open.get(i) == d) => CloseTimes::Offset(d),
                    _ => CloseTimes::Each(v),
                }
            }
        };
    }

    /// Sorts by open time when out of order and drops repeated times, keeping
    /// the first row of each (in push order); returns how many were dropped.
    pub fn sort_and_dedup(&mut self) -> usize {
        let sorted = match &self.open_time {
            OpenTimes::Regular { step, len, .. } => *step > 0 || *len <= 1,
            OpenTimes::Grid { offsets, .. } => offsets.windows(2).all(|w| w[0] < w[1]),
            OpenTimes::Each(v) => v.windows(2).all(|w| w[0] < w[1]),
        };
        if sorted {
            return 0;
        }
        let times = self.open_time.to_vec();
        let before = times.len();
        let mut order: Vec<u32> = (0..before as u32).collect();
        // Stable: of equal times the first pushed comes first and is kept.
        order.sort_by_key(|&i| times[i as usize]);
        order.dedup_by_key(|i| times[*i as usize]);
        let dropped = before - order.len();
        self.open_time = OpenTimes::compact(order.iter().map(|&i| times[i as usize]).collect());
        if let CloseTimes::Each(v) = &mut self.close_time {
            *v = order.iter().map(|&i| v[i as usize]).collect();
        }
        for c in [&mut self.open, &mut self.high, &mut self.low, &mut self.close, &mut self.volume] {
            c.permute(&order);
        }
        dropped
    }

    /// Keeps the bars whose open time is within `[from, to]` (sorted bars).
    pub fn retain_open_times(&mut self, from: i64, to: i64) {
        let start = self.open_time.first_at_or_after(from);
        let end = self.open_time.first_at_or_after(to.saturating_add(1)).max(start);
        if (start, end) == (0, self.len()) {
            return;
        }
        match &mut self.open_time {
            OpenTimes::Regular { start: first, step, len } => {
                *first += start as i64 * *step;
                *len = end - start;
            }
            OpenTimes::Each(v) => {
                v.truncate(end);
                v.drain(..start);
                v.shrink_to_fit();
            }
            OpenTimes::Grid { offsets, .. } => {
                offsets.truncate(end);
                offsets.drain(..start);
                offsets.shrink_to_fit();
            }
        }
        if let CloseTimes::Each(v) = &mut self.close_time {
            v.truncate(end);
            v.drain(..start);
            v.shrink_to_fit();
        }
        for c in [&mut self.open, &mut self.high, &mut self.low, &mut self.close, &mut self.volume] {
            c.truncate_range(start..end);
        }
    }

    /// Lowers each column's scale to what its values need.
    pub fn normalize_scales(&mut self) {
        for c in [&mut self.open, &mut self.high, &mut self.low, &mut self.close, &mut self.volume] {
            c.normalize_scale();
        }
    }

    /// Releases spare capacity once loading is done.
    pub fn shrink_to_fit(&mut self) {
        match &mut self.open_time {
            OpenTimes::Each(v) => v.shrink_to_fit(),
            OpenTimes::Grid { offsets, .. } => offsets.shrink_to_fit(),
            OpenTimes::Regular { .. } => {}
        }
        if let CloseTimes::Each(v) = &mut self.close_time {
            v.shrink_to_fit();
        }
        for c in [&mut self.open, &mut self.high, &mut self.low, &mut self.close, &mut self.volume] {
            c.shrink_to_fit();
        }
    }
}

/// Close times one per bar; `i64::MIN` where the source had none.
fn expand(close: CloseTimes, open_times: &[i64]) -> Vec<i64> {
    match close {
        CloseTimes::Absent => vec![i64::MIN; open_times.len()],
        CloseTimes::Offset(d) => open_times.iter().map(|t| t + d).collect(),
        CloseTimes::Each(v) => v,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fx(m: i64, scale: u32) -> Fixed {
        Fixed { mantissa: m, scale }
    }

    #[test]
    fn close_times_increase_as_a_walk_over_them_finds() {
        let values = |n: usize| std::array::from_fn(|_| DecimalColumn::from_narrow(vec![0; n], 0, 0));
        let walk = |b: &Bars| (1..b.len()).all(|i| b.close_time(i) > b.close_time(i - 1));
        let regular = |step: i64, len: usize| Bars::with_regular_times(1_000, step, len, values(len));
        let times = |t: &[i64]| Bars::with_times(t.to_vec(), values(t.len()));
        let cases: Vec<(&str, Bars, bool)> = vec![
            ("none", regular(60_000, 0), true),
            ("one", regular(60_000, 1), true),
            ("evenly spaced", regular(60_000, 1_000), true),
            ("all at one time", regular(0, 3), false),
            ("one at a time that never moves", regular(0, 1), true),
            ("with gaps", times(&[0, 60_000, 180_000, 240_000]), true),
            ("a time twice", times(&[0, 60_000, 60_000, 120_000]), false),
            ("out of order", times(&[0, 120_000, 60_000]), false),
        ];
        for (name, mut bars, want) in cases {
            if bars.len() > 1 {
                assert!(!bars.close_times_increase(), "{name}: no close times yet");
            }
            bars.resolve_close_times(60_000);
            assert_eq!(bars.close_times_increase(), want, "{name}");
            assert_eq!(walk(&bars), want, "{name}: the walk");
        }
        // Each bar's own close time.
        let mut own = times(&[0, 60_000, 120_000]);
        own.close_time = CloseTimes::Each(vec![59_999, 59_999, 179_999]);
        assert!(!own.close_times_increase(), "two bars closing together");
        own.close_time = CloseTimes::Each(vec![59_999, 119_999, 179_999]);
        assert!(own.close_times_increase());
    }

    #[test]
    fn parses_plain_decimals_exactly() {
        struct Case {
            text: &'static str,
            want: Option<(i64, u32)>,
        }
        let cases = [
            Case { text: "0", want: Some((0, 0)) },
            Case { text: "7", want: Some((7, 0)) },
            Case { text: "-12.50", want: Some((-125, 1)) },
            Case { text: "50000.00", want: Some((50_000, 0)) },
            Case { text: "50003.09", want: Some((5_000_309, 2)) },
            Case { text: "0.00001234", want: Some((1234, 8)) },
            Case { text: ".5", want: Some((5, 1)) },
            Case { text: "5.", want: Some((5, 0)) },
            Case { text: "000123.4500", want: Some((12_345, 2)) },
            Case { text: "999999999999999999", want: Some((999_999_999_999_999_999, 0)) },
            Case { text: "0.000000000000000001", want: Some((1, 18)) },
            Case { text: "1.00000000000000000000000", want: Some((1, 0)) },
            // Left to the general path: too many digits, exponents, spaces, signs.
            Case { text: "1000000000000000000", want: None },
            Case { text: "0.0000000000000000001", want: None },
            Case { text: "1.00000000000000001", want: Some((100_000_000_000_000_001, 17)) },
            Case { text: "1.000000000000000001", want: None },
            Case { text: "2e20", want: None },
            Case { text: " 1", want: None },
            Case { text: "+1", want: None },
            Case { text: "", want: None },
            Case { text: "-", want: None },
            Case { text: ".", want: None },
            Case { text: "1.2.3", want: None },
            Case { text: "1,5", want: None },
        ];
        for c in cases {
            let got = Fixed::parse(c.text.as_bytes()).map(|f| (f.mantissa, f.scale));
            assert_eq!(got, c.want, "{:?}", c.text);
            // Whatever the fast path accepts is the value `Decimal` reads.
            if let Some((m, s)) = got {
                assert_eq!(Decimal::new(m, s), c.text.parse::<Decimal>().unwrap(), "{:?}", c.text);
            }
        }
    }

    #[test]
    fn general_text_and_its_limits() {
        struct Case {
            text: &'static str,
            want: Result<(i64, u32), Option<&'static str>>,
        }
        let cases = [
            Case { text: " 1.50 ", want: Ok((15, 1)) },
            Case { text: "+3", want: Ok((3, 0)) },
            Case { text: "2e3", want: Ok((2000, 0)) },
            Case { text: "1.5E-3", want: Ok((15, 4)) },
            Case { text: "1000000000000000000", want: Err(Some("1000000000000000000")) },
            Case { text: "2e20", want: Err(Some("200000000000000000000")) },
            Case { text: "0.0000000000000000001", want: Err(Some("0.0000000000000000001")) },
            Case { text: "x", want: Err(None) },
            Case { text: "", want: Err(None) },
        ];
        for c in cases {
            let got = Fixed::parse_text(c.text).map(|f| (f.mantissa, f.scale)).map_err(|e| e.map(|d| d.to_string()));
            assert_eq!(got, c.want.map_err(|e| e.map(str::to_string)), "{:?}", c.text);
        }
    }

    #[test]
    fn comparisons_across_scales() {
        assert!(fx(15, 1) == fx(150, 2));
        assert!(fx(15, 1) < fx(151, 2));
        assert!(fx(-1, 0) < Fixed::ZERO);
        assert!(fx(999_999_999_999_999_999, 18) < fx(1, 0));
        assert!(MAX_PRICE < fx(1_000_000_000_000_001, 0));
    }

    fn row(t: i64, close: Fixed) -> Row {
        Row { open_time: t, close_time: None, open: close, high: close, low: close, close, volume: fx(1, 0) }
    }

    #[test]
    fn a_finer_value_rescales_the_column() {
        let mut bars = Bars::default();
        bars.push(&row(0, fx(65_000, 0))).unwrap();
        bars.push(&row(1, fx(6_500_012, 2))).unwrap();
        bars.push(&row(2, fx(1234, 8))).unwrap();
        assert_eq!(bars.close.scale(), 8);
        let got: Vec<String> = (0..3).map(|i| bars.close.get(i).normalize().to_string()).collect();
        assert_eq!(got, ["65000", "65000.12", "0.00001234"]);
        // 10^15 at 8 decimals needs 24 digits: refused, and nothing changed.
        let err = bars.push(&row(3, fx(1_000_000_000_000_000, 0))).unwrap_err();
        assert_eq!(err, "open 1000000000000000 needs more than 18 digits at the column's 8 decimals");
        let mut big = Bars::default();
        big.push(&row(0, fx(1_000_000_000_000_000, 0))).unwrap();
        let err = big.push(&row(1, fx(1, 4))).unwrap_err();
        assert!(err.starts_with("open 0.0001 has 4 decimals: with that many the column's largest value"), "{err}");
        assert_eq!((big.len(), big.open.scale()), (1, 0));
    }

    #[test]
    fn close_times_are_stored_only_when_they_differ() {
        let mut bars = Bars::default();
        for t in [0, 60_000] {
            bars.push(&Row { close_time: Some(t + 59_999), ..row(t, fx(1, 0)) }).unwrap();
        }
        assert_eq!(bars.close_times(), &CloseTimes::Offset(59_999));
        bars.push(&Row { close_time: Some(150_000), ..row(120_000, fx(1, 0)) }).unwrap();
        assert_eq!(bars.close_times(), &CloseTimes::Each(vec![59_999, 119_999, 150_000]));
        let mut absent = Bars::default();
        absent.push(&row(0, fx(1, 0))).unwrap();
        absent.resolve_close_times(60_000);
        assert_eq!(absent.close_time(0), Some(59_999));
    }

    #[test]
    fn sorting_keeps_the_first_of_repeated_times() {
        let mut bars = Bars::default();
        for (t, c) in [(3, 30), (1, 10), (2, 20), (1, 11), (3, 31)] {
            bars.push(&row(t, fx(c, 0))).unwrap();
        }
        assert_eq!(bars.sort_and_dedup(), 2);
        assert_eq!(bars.open_times(), &[1, 2, 3]);
        assert_eq!(bars.close.values(0..3), [10, 20, 30]);
        bars.retain_open_times(2, 2);
        assert_eq!((bars.open_times(), bars.close.values(0..1)), (vec![2], vec![20]));
    }

    #[test]
    fn storage_is_as_small_as_the_values_allow() {
        struct Case {
            name: &'static str,
            rows: Vec<(i64, Fixed, Fixed)>,
            /// Bytes a bar for: open time, close, volume.
            want: (usize, usize, usize),
        }
        let price = fx(5_000_309, 2);
        let cases = [
            Case {
                name: "evenly spaced, small values",
                rows: (0..5).map(|i| (i * 60, price, fx(41, 1))).collect(),
                want: (0, 4, 4),
            },
            Case {
                name: "a gap: offsets on the grid",
                rows: [0, 60, 180, 240].iter().map(|t| (*t, price, fx(41, 1))).collect(),
                want: (4, 4, 4),
            },
            Case {
                name: "off the grid's 32-bit reach: one i64 a time",
                rows: vec![(0, price, fx(1, 0)), (1, price, fx(1, 0)), (1 << 40, price, fx(1, 0))],
                want: (8, 4, 4),
            },
            Case {
                name: "a volume beyond 32 bits widens its column only",
                rows: vec![(0, price, fx(127_168_108, 5)), (60, price, fx(1_271_681_080_000, 8))],
                want: (0, 4, 8),
            },
        ];
        for c in cases {
            let mut bars = Bars::default();
            for (t, p, v) in &c.rows {
                bars.push(&Row { volume: *v, ..row(*t, *p) }).unwrap();
            }
            assert_eq!((bars.time_width(), bars.close.width(), bars.volume.width()), c.want, "{}", c.name);
            let times: Vec<i64> = c.rows.iter().map(|r| r.0).collect();
            assert_eq!(bars.open_times(), times, "{}", c.name);
        }
        // Out of order: one i64 a time until sorted, then on the grid again.
        let mut bars = Bars::default();
        for t in [120, 0, 60] {
            bars.push(&row(t, price)).unwrap();
        }
        assert_eq!(bars.time_width(), 8);
        bars.sort_and_dedup();
        assert_eq!((bars.time_width(), bars.open_times()), (0, vec![0, 60, 120]));
        let err = Bars::default().push(&row(-(1 << 60), price)).unwrap_err();
        assert_eq!(err, "time -1152921504606846976 is out of range (more than 300 000 years from 1970)");
    }
}
