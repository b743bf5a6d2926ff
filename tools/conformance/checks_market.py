"""Clocks and REST market data, raw (rest-api.md "Market Data endpoints").

Time agrees with itself: the sandbox runs in real time, so `serverTime`,
kline open times, ticker windows and trade times all come from one clock
that matches the wall clock."""

from __future__ import annotations

from decimal import Decimal

from endpoint import Ctx
from harness import check, expect, expect_eq, expect_keys, short
from clients import now_ms

MINUTE = 60_000

TRADE_KEYS = ["id", "price", "qty", "quoteQty", "time", "isBuyerMaker", "isBestMatch"]
AGG_KEYS = ["a", "p", "q", "f", "l", "T", "m", "M"]
TICKER_24H_KEYS = [
    "symbol", "priceChange", "priceChangePercent", "weightedAvgPrice", "prevClosePrice", "lastPrice", "lastQty",
    "bidPrice", "bidQty", "askPrice", "askQty", "openPrice", "highPrice", "lowPrice", "volume", "quoteVolume",
    "openTime", "closeTime", "firstId", "lastId", "count",
]
RATE_LIMITS = [("REQUEST_WEIGHT", "MINUTE", 1), ("ORDERS", "SECOND", 10), ("ORDERS", "DAY", 1)]


def klines(ctx: Ctx, **params: object) -> list[list[object]]:
    return ctx.rest.get("/api/v3/klines", {"symbol": ctx.sym.symbol, "interval": "1m", **params}).json_ok("GET /api/v3/klines")


@check("time.server_time_is_wall_clock")
def server_time_is_wall_clock(ctx: Ctx) -> None:
    t0 = now_ms()
    st = ctx.rest.get("/api/v3/time").json_ok("GET /api/v3/time")["serverTime"]
    t1 = now_ms()
    expect(t0 - 1000 <= st <= t1 + 1000, f"serverTime {st} is {st - (t0 + t1) // 2} ms off the wall clock (real time: within 1 s)")


@check("time.klines_last_bar_is_current_minute")
def klines_last_bar_is_current_minute(ctx: Ctx) -> None:
    before = ctx.server_now()
    rows = klines(ctx, limit=3)
    after = ctx.server_now()
    expect(rows, "GET /api/v3/klines returned no bars")
    last_open = rows[-1][0]
    allowed = {before // MINUTE * MINUTE, after // MINUTE * MINUTE}
    expect(
        last_open in allowed,
        f"the last kline opens at {last_open}, the server clock's current minute is {sorted(allowed)} "
        f"(Binance's last kline is the open bar of the current minute; off by {(after // MINUTE * MINUTE - last_open) / MINUTE:.0f} min)",
    )


@check("time.klines_since_agree_with_server_clock")
def klines_since(ctx: Ctx) -> None:
    now = ctx.server_now()
    start = now // MINUTE * MINUTE - 10 * MINUTE
    rows = klines(ctx, startTime=start, limit=1000)
    expect(rows, f"no klines from startTime={start} (10 minutes before serverTime)")
    expect_eq(rows[0][0], start, "first kline openTime with startTime on a minute")
    for a, b in zip(rows, rows[1:]):
        expect(b[0] - a[0] == MINUTE, f"klines not consecutive: {a[0]} then {b[0]}")
    expect(rows[-1][0] <= ctx.server_now(), f"a kline opens in the future: {rows[-1][0]} > serverTime")
    expect(len(rows) >= 10, f"only {len(rows)} klines for the last 10 minutes of the server clock (expected 10 closed + the open one)")


@check("rest.klines_shape")
def klines_shape(ctx: Ctx) -> None:
    rows = klines(ctx, limit=5)
    for r in rows:
        expect(isinstance(r, list) and len(r) == 12, f"a kline is a 12-element array, got {short(r)}")
        ints = [r[0], r[6], r[8]]
        expect(all(isinstance(x, int) for x in ints), f"open/close time and trade count are integers: {short(r)}")
        strs = [r[i] for i in (1, 2, 3, 4, 5, 7, 9, 10, 11)]
        expect(all(isinstance(x, str) for x in strs), f"prices and volumes are strings: {short(r)}")
        expect_eq(r[6], r[0] + MINUTE - 1, "kline closeTime")
        o, h, lo, c = (Decimal(r[i]) for i in (1, 2, 3, 4))
        expect(lo <= min(o, c) and h >= max(o, c), f"OHLC inconsistent: {short(r)}")


@check("rest.klines_taker_buy_volumes")
def klines_taker_buy(ctx: Ctx) -> None:
    rows = klines(ctx, limit=100)[:-1]
    expect(rows, "no closed klines")
    for r in rows:
        v, qv, tb, tq = Decimal(r[5]), Decimal(r[7]), Decimal(r[9]), Decimal(r[10])
        expect(tb <= v and tq <= qv, f"taker buy volume exceeds volume: {short(r)}")
    traded = [r for r in rows if Decimal(r[5]) > 0]
    expect(traded, "no closed kline has any volume")
    expect(
        any(Decimal(r[9]) > 0 for r in traded),
        f"all {len(traded)} traded klines report taker buy base volume 0 (fields 9/10): every trade would have been a taker sell",
    )


@check("rest.klines_trade_count")
def klines_trade_count(ctx: Ctx) -> None:
    """Each bar's trade count is the number of trades in it: the aggregate
    trades of the last closed bar cover exactly `count` trade ids."""
    rows = klines(ctx, limit=2)
    expect(len(rows) == 2, "fewer than 2 klines")
    bar = rows[0]
    aggs = ctx.rest.get(
        "/api/v3/aggTrades", {"symbol": ctx.sym.symbol, "startTime": bar[0], "endTime": bar[6], "limit": 1000}
    ).json_ok("GET /api/v3/aggTrades for the last closed bar")
    ids = sum(a["l"] - a["f"] + 1 for a in aggs)
    expect_eq(ids, bar[8], f"trades in the bar opening {bar[0]} (aggTrades f..l) vs its kline trade count")


@check("time.ticker_24hr_window")
def ticker_window(ctx: Ctx) -> None:
    t = ctx.rest.get("/api/v3/ticker/24hr", {"symbol": ctx.sym.symbol}).json_ok("GET /api/v3/ticker/24hr")
    now = ctx.server_now()
    expect(abs(t["closeTime"] - now) <= 5000, f"closeTime {t['closeTime']} is {now - t['closeTime']} ms from serverTime")
    span = t["closeTime"] - t["openTime"]
    expect(23 * 3600_000 <= span <= 24 * 3600_000 + 1000, f"openTime..closeTime spans {span} ms, documented a 24 h rolling window")


@check("rest.ticker_24hr_fields")
def ticker_fields(ctx: Ctx) -> None:
    t = ctx.rest.get("/api/v3/ticker/24hr", {"symbol": ctx.sym.symbol}).json_ok("GET /api/v3/ticker/24hr")
    expect_keys(t, TICKER_24H_KEYS, "ticker/24hr")
    if t["count"] > 0:
        expect_eq(t["count"], t["lastId"] - t["firstId"] + 1, "ticker/24hr count vs lastId - firstId + 1")


@check("rest.depth_snapshot")
def depth_snapshot(ctx: Ctx) -> None:
    d = ctx.rest.get("/api/v3/depth", {"symbol": ctx.sym.symbol, "limit": 5}).json_ok("GET /api/v3/depth")
    expect_keys(d, ["lastUpdateId", "bids", "asks"], "depth")
    expect(isinstance(d["lastUpdateId"], int), "lastUpdateId is an integer")
    bids = [Decimal(p) for p, _ in d["bids"]]
    asks = [Decimal(p) for p, _ in d["asks"]]
    expect(0 < len(bids) <= 5 and 0 < len(asks) <= 5, f"limit=5 gave {len(bids)} bids / {len(asks)} asks")
    expect(bids == sorted(bids, reverse=True) and asks == sorted(asks), "bids must be descending, asks ascending")
    expect(bids[0] < asks[0], f"crossed book: bid {bids[0]} >= ask {asks[0]}")
    big = ctx.rest.get("/api/v3/depth", {"symbol": ctx.sym.symbol, "limit": 5000})
    big.json_ok("GET /api/v3/depth limit=5000 (the local-order-book snapshot)")


@check("rest.avg_price")
def avg_price(ctx: Ctx) -> None:
    a = ctx.rest.get("/api/v3/avgPrice", {"symbol": ctx.sym.symbol}).json_ok("GET /api/v3/avgPrice")
    expect_keys(a, ["mins", "price", "closeTime"], "avgPrice")
    expect(abs(a["closeTime"] - ctx.server_now()) <= 60_000, f"avgPrice closeTime {a['closeTime']} is not recent")


@check("rest.trades")
def trades(ctx: Ctx) -> None:
    r = ctx.rest.get("/api/v3/trades", {"symbol": ctx.sym.symbol, "limit": 5}).json_ok("GET /api/v3/trades")
    expect(isinstance(r, list) and 0 < len(r) <= 5, f"limit=5 gave {short(r)}")
    for t in r:
        expect_keys(t, TRADE_KEYS, "trade")
    ids = [t["id"] for t in r]
    expect(ids == sorted(ids) and len(set(ids)) == len(ids), f"trade ids not ascending: {ids}")
    now = ctx.server_now()
    expect(r[-1]["time"] <= now + 1000, f"newest trade time {r[-1]['time']} is after serverTime {now}")
    expect(now - r[-1]["time"] <= 30_000, f"newest trade is {now - r[-1]['time']} ms old (a trade a second is simulated)")


@check("rest.historical_trades_from_id")
def historical_trades(ctx: Ctx) -> None:
    recent = ctx.rest.get("/api/v3/trades", {"symbol": ctx.sym.symbol, "limit": 5}).json_ok("GET /api/v3/trades")
    expect(len(recent) >= 3, "fewer than 3 recent trades")
    from_id = recent[0]["id"]
    r = ctx.rest.get("/api/v3/historicalTrades", {"symbol": ctx.sym.symbol, "fromId": from_id, "limit": 3}, with_key=True)
    body = r.json_ok("GET /api/v3/historicalTrades")
    expect([t["id"] for t in body] == [from_id, from_id + 1, from_id + 2], f"fromId={from_id} limit=3 gave ids {[t.get('id') for t in body]}")
    expect_eq(body[0], recent[0], "historicalTrades vs trades for the same id")


@check("rest.agg_trades")
def agg_trades(ctx: Ctx) -> None:
    r = ctx.rest.get("/api/v3/aggTrades", {"symbol": ctx.sym.symbol, "limit": 5}).json_ok("GET /api/v3/aggTrades")
    expect(isinstance(r, list) and 0 < len(r) <= 5, f"limit=5 gave {short(r)}")
    for a in r:
        expect_keys(a, AGG_KEYS, "aggTrade")
        expect(a["f"] <= a["l"], f"aggTrade f > l: {a}")
    first = r[0]["a"]
    again = ctx.rest.get("/api/v3/aggTrades", {"symbol": ctx.sym.symbol, "fromId": first, "limit": 2}).json_ok("aggTrades fromId")
    expect([a["a"] for a in again] == [first, first + 1], f"fromId={first} limit=2 gave {[a.get('a') for a in again]}")
    t0 = r[1]["T"] if len(r) > 1 else r[0]["T"]
    win = ctx.rest.get("/api/v3/aggTrades", {"symbol": ctx.sym.symbol, "startTime": t0, "endTime": t0 + 1500}).json_ok(
        "aggTrades startTime/endTime"
    )
    expect(win, f"no aggTrades in [{t0}, {t0 + 1500}] though one has T={t0}")
    expect(all(t0 <= a["T"] <= t0 + 1500 for a in win), f"aggTrades outside [startTime, endTime]: {[a['T'] for a in win]}")


@check("rest.exchange_info_rate_limits")
def exchange_info_rate_limits(ctx: Ctx) -> None:
    have = {(r.get("rateLimitType"), r.get("interval"), r.get("intervalNum")) for r in ctx.info.get("rateLimits", [])}
    missing = [x for x in RATE_LIMITS if x not in have]
    expect(not missing, f"exchangeInfo.rateLimits lacks {missing}")
    expect_keys(ctx.info, ["timezone", "serverTime", "rateLimits", "exchangeFilters", "symbols"], "exchangeInfo")


@check("rest.weight_header_counts")
def weight_header(ctx: Ctx) -> None:
    """X-MBX-USED-WEIGHT-1M on every response, growing by the endpoint's
    weight (depth limit 1..100 = 5) within one minute."""
    for _ in range(2):
        a = ctx.rest.get("/api/v3/depth", {"symbol": ctx.sym.symbol, "limit": 100})
        b = ctx.rest.get("/api/v3/depth", {"symbol": ctx.sym.symbol, "limit": 100})
        wa, wb = a.header_int("x-mbx-used-weight-1m"), b.header_int("x-mbx-used-weight-1m")
        expect(wa is not None and wb is not None, f"no x-mbx-used-weight-1m header: {a.headers}")
        assert wa is not None and wb is not None
        if wb < wa:  # a new minute began between the two
            continue
        expect(wb >= wa + 5, f"used weight went {wa} -> {wb} for a depth request of weight 5")
        return
    raise AssertionError("the minute rolled over twice")
