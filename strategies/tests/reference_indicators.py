#!/usr/bin/env python3
"""Independent reference values for the indicator tests in src/indicators.rs.

Plain Python (no third-party packages), written from the textbook definitions
with whole lists rather than streaming state, so it shares no code or structure
with the Rust implementation. Run: python3 strategies/tests/reference_indicators.py
"""
import statistics

SERIES = [
    100.0, 101.5, 102.25, 101.0, 99.75, 100.5, 103.0, 104.25, 103.5, 105.0, 106.75, 106.0, 104.5, 103.25, 104.0,
    106.5, 108.0, 107.25, 109.5, 111.0, 110.25, 108.75, 107.5, 109.0, 112.0, 113.5, 112.75, 111.0, 109.25, 108.0,
    106.5, 107.75, 110.0, 111.25, 113.0, 114.5, 113.75, 115.0, 116.25, 115.5,
]

RSI_CLOSES = [
    44.34, 44.09, 44.15, 43.61, 44.33, 44.83, 45.10, 45.42, 45.84, 46.08, 45.89, 46.03, 45.61, 46.28, 46.28, 46.00,
    46.03, 46.41, 46.22, 45.64, 46.21, 46.25, 45.71, 46.45, 45.78, 45.35, 44.03, 44.18, 44.22, 44.57, 43.42, 42.66,
    43.13,
]


def ema(xs, n):
    """EMA seeded with the SMA of the first n values; None before that."""
    out = [None] * len(xs)
    if len(xs) < n:
        return out
    k = 2.0 / (n + 1)
    prev = sum(xs[:n]) / n
    out[n - 1] = prev
    for i in range(n, len(xs)):
        prev = xs[i] * k + prev * (1 - k)
        out[i] = prev
    return out


def bollinger(xs, n, k):
    out = [None] * len(xs)
    for i in range(n - 1, len(xs)):
        w = xs[i - n + 1:i + 1]
        m = statistics.fmean(w)
        sd = statistics.pstdev(w)
        out[i] = (m - k * sd, m, m + k * sd)
    return out


def macd(xs, fast, slow, signal):
    f, s = ema(xs, fast), ema(xs, slow)
    line = [None if s[i] is None else f[i] - s[i] for i in range(len(xs))]
    start = slow - 1
    sig = ema(line[start:], signal)
    out = [None] * len(xs)
    for j, v in enumerate(sig):
        if v is not None:
            out[start + j] = (line[start + j], v)
    return out


def rsi_wilder(xs, n):
    changes = [xs[i] - xs[i - 1] for i in range(1, len(xs))]
    gains = [max(c, 0.0) for c in changes]
    losses = [max(-c, 0.0) for c in changes]
    out = [None] * len(xs)
    ag, al = sum(gains[:n]) / n, sum(losses[:n]) / n
    out[n] = 100 - 100 / (1 + ag / al)
    for i in range(n, len(changes)):
        ag = (ag * (n - 1) + gains[i]) / n
        al = (al * (n - 1) + losses[i]) / n
        out[i + 1] = 100 - 100 / (1 + ag / al)
    return out


if __name__ == "__main__":
    e = ema(SERIES, 10)
    print("ema10", {i: e[i] for i in (9, 19, 39)})
    b = bollinger(SERIES, 20, 2)
    print("bollinger20,2", {i: b[i] for i in (19, 39)})
    m = macd(SERIES, 12, 26, 9)
    print("first macd signal index", next(i for i, v in enumerate(m) if v is not None))
    print("macd12,26,9", {i: m[i] for i in (33, 39)})
    r = rsi_wilder(RSI_CLOSES, 14)
    print("rsi14", [round(v, 2) for v in r[14:]])
