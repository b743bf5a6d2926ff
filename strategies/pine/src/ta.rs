//! The `ta.*` built-ins as incremental state machines over f64: one `update` per bar, O(1) or
//! O(window), no allocation after construction.
//!
//! `na` is `f64::NAN`. Each indicator is `na` until it has enough bars (the warm-up in
//! `../shared/reference/pine.md`): `sma`/`ema`/`rma(n)` from bar n-1, `rsi(n)` from bar n, `atr(n)` from
//! bar n-1 (the true range of bar 0 is `high - low`). `ema` (alpha 2/(n+1)) and `rma` (alpha 1/n) are
//! seeded with the SMA of their first n values. Windowed functions are `na` while any value in the
//! window is `na`.

/// The last `n` values of a series, newest first by [`Window::get`].
#[derive(Debug, Clone)]
pub struct Window {
    buf: Vec<f64>,
    head: usize,
    len: usize,
}

impl Window {
    /// A window of `n` values (at least 1).
    pub fn new(n: usize) -> Self {
        Window { buf: vec![f64::NAN; n.max(1)], head: 0, len: 0 }
    }
    /// Adds the newest value, dropping the oldest when full; returns the value dropped (NaN if none).
    pub fn push(&mut self, x: f64) -> f64 {
        let cap = self.buf.len();
        let old = if self.len == cap { self.buf[self.head] } else { f64::NAN };
        self.buf[self.head] = x;
        // Compare and wrap: a `%` is an integer division on every bar.
        self.head = if self.head + 1 == cap { 0 } else { self.head + 1 };
        self.len = (self.len + 1).min(cap);
        old
    }
    /// The value `k` pushes ago (0 is the newest); NaN beyond what was pushed.
    pub fn get(&self, k: usize) -> f64 {
        if k >= self.len {
            return f64::NAN;
        }
        // `head + cap - 1 - k` is below `2 * cap` (k < len <= cap): one wrap at most.
        let cap = self.buf.len();
        let i = self.head + cap - 1 - k;
        self.buf[if i >= cap { i - cap } else { i }]
    }
    /// True when the next push overwrites the first slot of storage: after every `n`-th push.
    fn wrapped(&self) -> bool {
        self.head == 0
    }
    /// True once `n` values were pushed.
    pub fn full(&self) -> bool {
        self.len == self.buf.len()
    }
    /// The window's size.
    pub fn cap(&self) -> usize {
        self.buf.len()
    }
    /// The values held, in storage order (for order-free reductions).
    fn values(&self) -> &[f64] {
        &self.buf[..self.len]
    }
    /// True when the window is full and holds no `na`.
    fn complete(&self) -> bool {
        self.full() && !self.values().iter().any(|v| v.is_nan())
    }
}

/// `ta.sma`, and the rolling sum behind it (`ta.sum`): a running sum re-added from the window once
/// per window so float drift stays bounded.
#[derive(Debug, Clone)]
pub struct Sma {
    win: Window,
    sum: f64,
    nans: usize,
    pushes: usize,
}

impl Sma {
    /// An SMA over `n` bars.
    pub fn new(n: usize) -> Self {
        Sma { win: Window::new(n), sum: 0.0, nans: 0, pushes: 0 }
    }
    /// The rolling sum of the last n values; na until n values, or while one is na.
    #[inline]
    pub fn update_sum(&mut self, x: f64) -> f64 {
        let old = self.win.push(x);
        if self.pushes >= self.win.cap() {
            if old.is_nan() {
                self.nans -= 1;
            } else {
                self.sum -= old;
            }
        }
        if x.is_nan() {
            self.nans += 1;
        } else {
            self.sum += x;
        }
        self.pushes += 1;
        // Every n-th push (the window's head wraps to its start).
        if self.win.wrapped() {
            self.sum = self.win.values().iter().filter(|v| !v.is_nan()).sum();
        }
        if self.win.full() && self.nans == 0 {
            self.sum
        } else {
            f64::NAN
        }
    }
    /// The mean of the last n values.
    #[inline]
    pub fn update(&mut self, x: f64) -> f64 {
        self.update_sum(x) / self.win.cap() as f64
    }
}

/// `ta.ema` (alpha 2/(n+1)) and `ta.rma` (alpha 1/n), seeded with the SMA of the first n values.
#[derive(Debug, Clone)]
pub struct Ema {
    seed: Sma,
    alpha: f64,
    prev: f64,
}

impl Ema {
    /// Exponential moving average over `n` bars.
    pub fn new(n: usize) -> Self {
        Ema { seed: Sma::new(n), alpha: 2.0 / (n as f64 + 1.0), prev: f64::NAN }
    }
    /// Wilder's moving average over `n` bars.
    pub fn rma(n: usize) -> Self {
        Ema { seed: Sma::new(n), alpha: 1.0 / n.max(1) as f64, prev: f64::NAN }
    }
    /// The next value: `na(prev) ? sma(x, n) : alpha * x + (1 - alpha) * prev`.
    pub fn update(&mut self, x: f64) -> f64 {
        let sma = self.seed.update(x);
        self.prev = if self.prev.is_nan() { sma } else { self.alpha * x + (1.0 - self.alpha) * self.prev };
        self.prev
    }
}

/// `ta.wma`: weights n for the newest value down to 1 for the oldest.
#[derive(Debug, Clone)]
pub struct Wma {
    win: Window,
}

impl Wma {
    /// A WMA over `n` bars.
    pub fn new(n: usize) -> Self {
        Wma { win: Window::new(n) }
    }
    /// The next value.
    pub fn update(&mut self, x: f64) -> f64 {
        self.win.push(x);
        if !self.win.complete() {
            return f64::NAN;
        }
        let n = self.win.cap();
        let num: f64 = (0..n).map(|k| self.win.get(k) * (n - k) as f64).sum();
        num / (n * (n + 1) / 2) as f64
    }
}

/// `ta.vwma`: `sma(x * volume, n) / sma(volume, n)`.
#[derive(Debug, Clone)]
pub struct Vwma {
    xv: Sma,
    v: Sma,
}

impl Vwma {
    /// A VWMA over `n` bars.
    pub fn new(n: usize) -> Self {
        Vwma { xv: Sma::new(n), v: Sma::new(n) }
    }
    /// The next value.
    pub fn update(&mut self, x: f64, volume: f64) -> f64 {
        div(self.xv.update(x * volume), self.v.update(volume))
    }
}

/// Pine's division: `na` when the divisor is 0.
pub fn div(a: f64, b: f64) -> f64 {
    if b == 0.0 {
        f64::NAN
    } else {
        a / b
    }
}

/// `ta.rsi`: `rma` of the gains and losses; 100 when the losses average 0, 0 when the gains do.
#[derive(Debug, Clone)]
pub struct Rsi {
    prev: f64,
    up: Ema,
    down: Ema,
}

impl Rsi {
    /// An RSI over `n` bars.
    pub fn new(n: usize) -> Self {
        Rsi { prev: f64::NAN, up: Ema::rma(n), down: Ema::rma(n) }
    }
    /// The next value.
    pub fn update(&mut self, x: f64) -> f64 {
        let ch = x - self.prev;
        self.prev = x;
        let u = self.up.update(if ch.is_nan() { f64::NAN } else { ch.max(0.0) });
        let d = self.down.update(if ch.is_nan() { f64::NAN } else { (-ch).max(0.0) });
        if u.is_nan() || d.is_nan() {
            f64::NAN
        } else if d == 0.0 {
            100.0
        } else if u == 0.0 {
            0.0
        } else {
            100.0 - 100.0 / (1.0 + u / d)
        }
    }
}

/// `ta.tr`: the true range; with `handle_na` (as `ta.atr` uses it) the first bar's is `high - low`,
/// without it (the `ta.tr` variable) the first bar's is `na`.
#[derive(Debug, Clone)]
pub struct Tr {
    prev_close: f64,
    handle_na: bool,
}

impl Tr {
    /// A true range; see the type's docs for `handle_na`.
    pub fn new(handle_na: bool) -> Self {
        Tr { prev_close: f64::NAN, handle_na }
    }
    /// The next value.
    pub fn update(&mut self, high: f64, low: f64, close: f64) -> f64 {
        let pc = self.prev_close;
        self.prev_close = close;
        if pc.is_nan() {
            return if self.handle_na { high - low } else { f64::NAN };
        }
        (high - low).max((high - pc).abs()).max((low - pc).abs())
    }
}

/// `ta.atr`: `rma(tr(true), n)`.
#[derive(Debug, Clone)]
pub struct Atr {
    tr: Tr,
    rma: Ema,
}

impl Atr {
    /// An ATR over `n` bars.
    pub fn new(n: usize) -> Self {
        Atr { tr: Tr::new(true), rma: Ema::rma(n) }
    }
    /// The next value.
    pub fn update(&mut self, high: f64, low: f64, close: f64) -> f64 {
        self.rma.update(self.tr.update(high, low, close))
    }
}

/// `ta.macd`: `[ema(fast) - ema(slow), ema(macd, signal), macd - signal]`.
#[derive(Debug, Clone)]
pub struct Macd {
    fast: Ema,
    slow: Ema,
    signal: Ema,
}

impl Macd {
    /// A MACD with the three lengths.
    pub fn new(fast: usize, slow: usize, signal: usize) -> Self {
        Macd { fast: Ema::new(fast), slow: Ema::new(slow), signal: Ema::new(signal) }
    }
    /// The next `[macd, signal, histogram]`.
    pub fn update(&mut self, x: f64) -> [f64; 3] {
        let m = self.fast.update(x) - self.slow.update(x);
        let s = self.signal.update(m);
        [m, s, m - s]
    }
}

/// `ta.stdev` (population, Pine's default `biased = true`) over a window.
#[derive(Debug, Clone)]
pub struct Stdev {
    win: Window,
}

impl Stdev {
    /// A standard deviation over `n` bars.
    pub fn new(n: usize) -> Self {
        Stdev { win: Window::new(n) }
    }
    /// The next value.
    pub fn update(&mut self, x: f64) -> f64 {
        self.win.push(x);
        self.current().1
    }
    /// `(mean, stdev)` of the window, na until it is complete.
    fn current(&self) -> (f64, f64) {
        if !self.win.complete() {
            return (f64::NAN, f64::NAN);
        }
        let n = self.win.cap() as f64;
        let mean = self.win.values().iter().sum::<f64>() / n;
        let var = self.win.values().iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / n;
        (mean, var.sqrt())
    }
}

/// `ta.bb`: `[sma, sma + mult * stdev, sma - mult * stdev]`.
#[derive(Debug, Clone)]
pub struct Bb {
    sd: Stdev,
    mult: f64,
}

impl Bb {
    /// Bollinger bands over `n` bars, `mult` standard deviations wide.
    pub fn new(n: usize, mult: f64) -> Self {
        Bb { sd: Stdev::new(n), mult }
    }
    /// The next `[middle, upper, lower]`.
    pub fn update(&mut self, x: f64) -> [f64; 3] {
        self.sd.win.push(x);
        let (mean, sd) = self.sd.current();
        [mean, mean + self.mult * sd, mean - self.mult * sd]
    }
}

/// `ta.highest` / `ta.lowest` over a window (`na` values skipped; `na` until the window is full).
#[derive(Debug, Clone)]
pub struct Extreme {
    win: Window,
    highest: bool,
}

impl Extreme {
    /// The highest (or lowest) of the last `n` values.
    pub fn new(n: usize, highest: bool) -> Self {
        Extreme { win: Window::new(n), highest }
    }
    /// The next value.
    pub fn update(&mut self, x: f64) -> f64 {
        self.win.push(x);
        if !self.win.full() {
            return f64::NAN;
        }
        let vals = self.win.values().iter().copied().filter(|v| !v.is_nan());
        let r = if self.highest { vals.fold(f64::NEG_INFINITY, f64::max) } else { vals.fold(f64::INFINITY, f64::min) };
        if r.is_finite() {
            r
        } else {
            f64::NAN
        }
    }
}

/// `ta.stoch`: `100 * (x - lowest(low, n)) / (highest(high, n) - lowest(low, n))`.
#[derive(Debug, Clone)]
pub struct Stoch {
    hi: Extreme,
    lo: Extreme,
}

impl Stoch {
    /// A stochastic over `n` bars.
    pub fn new(n: usize) -> Self {
        Stoch { hi: Extreme::new(n, true), lo: Extreme::new(n, false) }
    }
    /// The next value.
    pub fn update(&mut self, x: f64, high: f64, low: f64) -> f64 {
        let h = self.hi.update(high);
        let l = self.lo.update(low);
        div(100.0 * (x - l), h - l)
    }
}

/// `ta.cci`: `(x - sma) / (0.015 * mean absolute deviation)`.
#[derive(Debug, Clone)]
pub struct Cci {
    win: Window,
}

impl Cci {
    /// A CCI over `n` bars.
    pub fn new(n: usize) -> Self {
        Cci { win: Window::new(n) }
    }
    /// The next value.
    pub fn update(&mut self, x: f64) -> f64 {
        self.win.push(x);
        if !self.win.complete() {
            return f64::NAN;
        }
        let n = self.win.cap() as f64;
        let mean = self.win.values().iter().sum::<f64>() / n;
        let dev = self.win.values().iter().map(|v| (v - mean).abs()).sum::<f64>() / n;
        div(x - mean, 0.015 * dev)
    }
}

/// Which cross [`Cross`] reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CrossKind {
    /// `a > b and a[1] <= b[1]`
    Over,
    /// `a < b and a[1] >= b[1]`
    Under,
    /// Either.
    Any,
}

/// `ta.crossover`, `ta.crossunder`, `ta.cross`: false while either side, now or a bar ago, is `na`.
#[derive(Debug, Clone)]
pub struct Cross {
    kind: CrossKind,
    pa: f64,
    pb: f64,
}

impl Cross {
    /// A cross detector.
    pub fn new(kind: CrossKind) -> Self {
        Cross { kind, pa: f64::NAN, pb: f64::NAN }
    }
    /// True on the bar the cross happens.
    pub fn update(&mut self, a: f64, b: f64) -> bool {
        let (pa, pb) = (self.pa, self.pb);
        self.pa = a;
        self.pb = b;
        if a.is_nan() || b.is_nan() || pa.is_nan() || pb.is_nan() {
            return false;
        }
        let over = a > b && pa <= pb;
        let under = a < b && pa >= pb;
        match self.kind {
            CrossKind::Over => over,
            CrossKind::Under => under,
            CrossKind::Any => over || under,
        }
    }
}

/// Pine's comparison operators (and `ta.rising`/`ta.falling`) treat floats within this absolute
/// distance as equal (PyneCore measured it on TradingView at every magnitude; for 2-decimal prices
/// it gives the answer exact decimals give: `108.9 - 108.8 > 0.1` is false). `na` compares false.
pub const COMPARE_EPSILON: f64 = 1e-10;

/// The ways [`Lag`] compares a value with its past.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LagKind {
    /// `ta.change` / `ta.mom`: `x - x[n]`.
    Change,
    /// `ta.roc`: `100 * (x - x[n]) / x[n]`.
    Roc,
    /// `ta.rising`: the last n steps each rose by more than [`COMPARE_EPSILON`] (1/0). Both
    /// independent runtimes count consecutive moves, and a step touching `na` neither extends nor
    /// breaks the run.
    Rising,
    /// `ta.falling`: the last n steps each fell (1/0), as `Rising`.
    Falling,
}

/// `ta.change`, `ta.mom`, `ta.roc`, `ta.rising`, `ta.falling`: a value against its last n.
#[derive(Debug, Clone)]
pub struct Lag {
    win: Window,
    kind: LagKind,
    /// The previous value (rising/falling).
    prev: f64,
    /// Consecutive rising (or falling) steps so far (rising/falling).
    run: usize,
}

impl Lag {
    /// Compares with `n` bars back.
    pub fn new(n: usize, kind: LagKind) -> Self {
        Lag { win: Window::new(n + 1), kind, prev: f64::NAN, run: 0 }
    }
    /// The next value (rising/falling give 1.0 or 0.0).
    pub fn update(&mut self, x: f64) -> f64 {
        self.win.push(x);
        let n = self.win.cap() - 1;
        let then = self.win.get(n);
        match self.kind {
            LagKind::Change => x - then,
            LagKind::Roc => div(100.0 * (x - then), then),
            LagKind::Rising | LagKind::Falling => {
                let step = x - std::mem::replace(&mut self.prev, x);
                if !step.is_nan() {
                    let moved =
                        if self.kind == LagKind::Rising { step > COMPARE_EPSILON } else { step < -COMPARE_EPSILON };
                    self.run = if moved { self.run + 1 } else { 0 };
                }
                f64::from(u8::from(self.run >= n))
            }
        }
    }
}

/// `ta.barssince`: bars since the condition last held; `na` before it ever did.
#[derive(Debug, Clone)]
pub struct BarsSince {
    count: f64,
}

impl Default for BarsSince {
    fn default() -> Self {
        BarsSince { count: f64::NAN }
    }
}

impl BarsSince {
    /// The next value.
    pub fn update(&mut self, cond: bool) -> f64 {
        self.count = if cond { 0.0 } else { self.count + 1.0 };
        self.count
    }
}

/// `ta.valuewhen`: the source's value at the `occurrence`-th most recent bar (0 = latest) where the
/// condition held.
#[derive(Debug, Clone)]
pub struct ValueWhen {
    win: Window,
}

impl ValueWhen {
    /// Remembers the last `occurrence + 1` values.
    pub fn new(occurrence: usize) -> Self {
        ValueWhen { win: Window::new(occurrence + 1) }
    }
    /// The next value.
    pub fn update(&mut self, cond: bool, x: f64) -> f64 {
        if cond {
            self.win.push(x);
        }
        self.win.get(self.win.cap() - 1)
    }
}

/// `ta.pivothigh` / `ta.pivotlow`: on the bar `right` bars after a pivot, the pivot's value, else `na`.
/// TradingView's tie rule (as PineTS reports it measured on TradingView; the witness checks it): a
/// pivot high is strictly above the `right` values after it and not below the `left` values
/// before it (an equal bar on the left does not disqualify it, an equal bar on the right does).
/// Pivot lows mirror it.
#[derive(Debug, Clone)]
pub struct Pivot {
    win: Window,
    left: usize,
    right: usize,
    high: bool,
}

impl Pivot {
    /// A pivot detector (`high` for pivot highs).
    pub fn new(left: usize, right: usize, high: bool) -> Self {
        Pivot { win: Window::new(left + right + 1), left, right, high }
    }
    /// The next value.
    pub fn update(&mut self, x: f64) -> f64 {
        self.win.push(x);
        if !self.win.complete() {
            return f64::NAN;
        }
        let c = self.win.get(self.right);
        // `above(v)`: v beats the candidate in the pivot's direction.
        let above = |v: f64| if self.high { v > c } else { v < c };
        let later_ok = (0..self.right).all(|k| {
            let v = self.win.get(k);
            !above(v) && v != c
        });
        let earlier_ok = (self.right + 1..=self.right + self.left).all(|k| !above(self.win.get(k)));
        if later_ok && earlier_ok {
            c
        } else {
            f64::NAN
        }
    }
}

/// `ta.cum`: the running total (`na` values count as 0).
#[derive(Debug, Clone, Default)]
pub struct Cum {
    total: f64,
}

impl Cum {
    /// The next value.
    pub fn update(&mut self, x: f64) -> f64 {
        if !x.is_nan() {
            self.total += x;
        }
        self.total
    }
}
