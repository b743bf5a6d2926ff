"""Market streams with a raw WebSocket client written from
web-socket-streams.md: payloads, combined wrapper, live SUBSCRIBE /
UNSUBSCRIBE / LIST_SUBSCRIPTIONS / SET_PROPERTY / GET_PROPERTY, the
documented control-message errors, and the "How to manage a local order
book correctly" procedure."""

from __future__ import annotations

import asyncio
import json
import time
from decimal import Decimal
from typing import Any, Callable

from clients import Stream, control_error
from endpoint import Ctx
from harness import CheckFailed, acheck, expect, expect_eq, expect_keys, register, short

TRADE = ["e", "E", "s", "t", "p", "q", "T", "m", "M"]
AGG = ["e", "E", "s", "a", "p", "q", "f", "l", "T", "m", "M"]
KLINE_K = ["t", "T", "s", "i", "f", "L", "o", "c", "h", "l", "v", "n", "x", "q", "V", "Q", "B"]
BOOK = ["u", "s", "b", "B", "a", "A"]
DEPTH = ["e", "E", "s", "U", "u", "b", "a"]
TICKER = ["e", "E", "s", "p", "P", "w", "x", "c", "Q", "b", "B", "a", "A", "o", "h", "l", "v", "q", "O", "C", "F", "L", "n"]
MINI = ["e", "E", "s", "c", "o", "h", "l", "v", "q"]
AVG = ["e", "E", "s", "i", "w", "T"]
WAIT = 8.0  # seconds for a stream's first event (a tick a second is simulated; Binance pushes at ≤ 1 s)


def raw(ctx: Ctx, *streams: str) -> str:
    return f"{ctx.ep.ws}/ws/{'/'.join(streams)}"


def combined(ctx: Ctx, *streams: str) -> str:
    return f"{ctx.ep.ws}/stream?streams={'/'.join(streams)}"


def near_server_clock(ctx: Ctx, t: int, what: str, slack: int = 5000) -> None:
    now = ctx.server_now()
    expect(abs(t - now) <= slack, f"{what} {t} is {now - t} ms from the server clock")


def bar_open_ok(k: dict[str, Any], event_time: int) -> bool:
    """k.t is the minute of the event time, or the minute before for the
    closing update of the previous bar (x=true) sent just after the minute."""
    minute = event_time // 60_000 * 60_000
    return k["t"] == minute or (k.get("x") is True and k["t"] == minute - 60_000)


def evt(kind: str) -> Callable[[Any], bool]:
    return lambda m: isinstance(m, dict) and m.get("e") == kind


@acheck("ws.trade_stream")
async def trade_stream(ctx: Ctx) -> None:
    async with Stream(raw(ctx, f"{ctx.sym.lower}@trade")) as s:
        a, b = await s.events(2, WAIT * 2)
    for m in (a, b):
        expect_keys(m, TRADE, "trade event")
        expect_eq(m["e"], "trade", "e")
        expect_eq(m["s"], ctx.sym.symbol, "s")
    near_server_clock(ctx, a["E"], "trade event time E")
    near_server_clock(ctx, a["T"], "trade time T")
    expect(b["t"] > a["t"], f"trade ids {a['t']} then {b['t']}")


@acheck("ws.agg_trade_stream")
async def agg_trade_stream(ctx: Ctx) -> None:
    async with Stream(raw(ctx, f"{ctx.sym.lower}@aggTrade")) as s:
        m = await s.next_event(WAIT)
    expect_keys(m, AGG, "aggTrade event")
    near_server_clock(ctx, m["E"], "aggTrade E")


@acheck("ws.kline_stream")
async def kline_stream(ctx: Ctx) -> None:
    async with Stream(raw(ctx, f"{ctx.sym.lower}@kline_1m")) as s:
        ms = await s.events(2, WAIT * 2)
    for m in ms:
        expect_keys(m, ["e", "E", "s", "k"], "kline event")
        expect_keys(m["k"], KLINE_K, "kline k")
        k = m["k"]
        near_server_clock(ctx, m["E"], "kline event time E")
        expect(bar_open_ok(k, m["E"]), f"k.t (bar open) {k['t']} vs the minute of E={m['E']} (x={k.get('x')})")
        expect_eq(k["T"], k["t"] + 59_999, "k.T")
        expect(Decimal(k["V"]) <= Decimal(k["v"]), "taker buy volume V exceeds v")


@acheck("ws.kline_trade_ids_match_count")
async def kline_ids(ctx: Ctx) -> None:
    """k.f..k.L are the bar's first and last trade ids: L - f + 1 == n, and
    the trades the @trade stream shows in the bar lie inside [f, L]."""
    async with Stream(combined(ctx, f"{ctx.sym.lower}@trade", f"{ctx.sym.lower}@kline_1m")) as s:
        trades: list[dict[str, Any]] = []
        klines: list[dict[str, Any]] = []
        start = time.monotonic()
        deadline = start + WAIT * 2
        while len(klines) < 2 or not trades or time.monotonic() - start < 4.5:
            m = await s.next_event(max(0.1, deadline - time.monotonic()))
            (trades if m["data"].get("e") == "trade" else klines).append(m["data"])
    k = klines[-1]["k"]
    if k["n"] > 0:
        expect_eq(k["L"] - k["f"] + 1, k["n"], f"k.L - k.f + 1 (f={k['f']}, L={k['L']}) vs trade count n")
    # Trades of this bar well before the kline update (Binance pushes klines
    # every 2 s, so the last second's trades may not be in it yet).
    in_bar = [t for t in trades if k["t"] <= t["T"] <= klines[-1]["E"] - 2000]
    for t in in_bar:
        expect(k["f"] <= t["t"] <= k["L"], f"trade {t['t']} of this bar lies outside k.f..k.L = {k['f']}..{k['L']}")


@acheck("ws.book_ticker_stream")
async def book_ticker(ctx: Ctx) -> None:
    async with Stream(raw(ctx, f"{ctx.sym.lower}@bookTicker")) as s:
        m = await s.next_event(WAIT)
    expect_keys(m, BOOK, "bookTicker event")
    expect(Decimal(m["b"]) < Decimal(m["a"]), f"crossed bookTicker {m}")


async def diff_events(ctx: Ctx, stream: str, n: int) -> list[dict[str, Any]]:
    async with Stream(raw(ctx, stream)) as s:
        return await s.events(n, WAIT * 2)


def check_diffs(ctx: Ctx, ms: list[dict[str, Any]]) -> None:
    for m in ms:
        expect_keys(m, DEPTH, "depthUpdate event")
        expect_eq(m["e"], "depthUpdate", "e")
        expect(m["U"] <= m["u"], f"U {m['U']} > u {m['u']}")
    for a, b in zip(ms, ms[1:]):
        expect_eq(b["U"], a["u"] + 1, "U of an event vs u of the previous + 1")
    near_server_clock(ctx, ms[-1]["E"], "depthUpdate E")


@acheck("ws.depth_diff_stream")
async def depth_diff(ctx: Ctx) -> None:
    check_diffs(ctx, await diff_events(ctx, f"{ctx.sym.lower}@depth", 3))


@acheck("ws.depth_diff_stream_100ms")
async def depth_diff_100(ctx: Ctx) -> None:
    check_diffs(ctx, await diff_events(ctx, f"{ctx.sym.lower}@depth@100ms", 3))


def partial_case(suffix: str, levels: int) -> Callable[[Ctx], Any]:
    async def run(ctx: Ctx) -> None:
        stream = f"{ctx.sym.lower}@depth{suffix}"
        async with Stream(combined(ctx, stream)) as s:
            m = await s.next_event(WAIT)
        expect_eq(m.get("stream"), stream, "combined stream name")
        d = m["data"]
        expect_keys(d, ["lastUpdateId", "bids", "asks"], f"{stream} payload")
        expect(0 < len(d["bids"]) <= levels and 0 < len(d["asks"]) <= levels, f"{len(d['bids'])}/{len(d['asks'])} levels on {stream}")
        bids = [Decimal(p) for p, _ in d["bids"]]
        asks = [Decimal(p) for p, _ in d["asks"]]
        expect(bids == sorted(bids, reverse=True) and asks == sorted(asks) and bids[0] < asks[0], f"{stream} book not ordered")

    return run


for _suffix, _n in (("5", 5), ("10@100ms", 10), ("20", 20)):
    register(f"ws.partial_depth_stream.depth{_suffix.replace('@', '_')}", partial_case(_suffix, _n), is_async=True)


@acheck("ws.local_order_book_procedure", timeout=40)
async def local_book(ctx: Ctx) -> None:
    """web-socket-streams.md "How to manage a local order book correctly",
    step by step; the book built from snapshot + diffs must then equal a
    later snapshot at the same update id."""
    sym = ctx.sym.symbol
    async with Stream(raw(ctx, f"{ctx.sym.lower}@depth@100ms")) as s:
        buffered = [await s.next_event(WAIT)]  # 1. buffer, note the first U
        first_u = buffered[0]["U"]
        snap = None
        for _ in range(5):  # 2./3. snapshot until lastUpdateId >= first U
            snap = await asyncio.to_thread(ctx.rest.get, "/api/v3/depth", {"symbol": sym, "limit": 5000})
            snap = snap.json_ok("GET /api/v3/depth limit=5000")
            if snap["lastUpdateId"] >= first_u:
                break
            buffered.append(await s.next_event(WAIT))
        assert snap is not None
        expect(snap["lastUpdateId"] >= first_u, f"snapshot lastUpdateId {snap['lastUpdateId']} stays below the first buffered U {first_u}")
        book_id = snap["lastUpdateId"]
        bids = {Decimal(p): Decimal(q) for p, q in snap["bids"]}
        asks = {Decimal(p): Decimal(q) for p, q in snap["asks"]}
        # 4. drop events with u <= lastUpdateId; the first left must straddle it.
        while True:
            pending = [e for e in buffered if e["u"] > book_id]
            if pending:
                break
            buffered.append(await s.next_event(WAIT))
        first = pending[0]
        expect(first["U"] <= book_id + 1 <= first["u"], f"first event after the snapshot: U={first['U']} u={first['u']}, lastUpdateId+1={book_id + 1}")

        def apply(e: dict[str, Any]) -> None:
            nonlocal book_id
            if e["u"] < book_id:
                return
            expect(e["U"] <= book_id + 1, f"gap: U={e['U']} after book id {book_id}")
            for side, levels in ((bids, e["b"]), (asks, e["a"])):
                for p, q in levels:
                    if Decimal(q) == 0:
                        side.pop(Decimal(p), None)
                    else:
                        side[Decimal(p)] = Decimal(q)
            book_id = e["u"]

        for e in pending:
            apply(e)
        for _ in range(3):  # a few live diffs
            apply(await s.next_event(WAIT))
        # Compare with a later snapshot at the same id (apply diffs up to it).
        for _ in range(6):
            later = (await asyncio.to_thread(ctx.rest.get, "/api/v3/depth", {"symbol": sym, "limit": 5000})).json_ok("GET /api/v3/depth")
            while book_id < later["lastUpdateId"]:
                apply(await s.next_event(WAIT))
            if book_id == later["lastUpdateId"]:
                want_b = [(Decimal(p), Decimal(q)) for p, q in later["bids"][:20]]
                want_a = [(Decimal(p), Decimal(q)) for p, q in later["asks"][:20]]
                have_b = sorted(bids.items(), reverse=True)[:20]
                have_a = sorted(asks.items())[:20]
                expect(have_b == want_b, f"local bids {short(have_b[:3])} vs snapshot {short(want_b[:3])} at update id {book_id}")
                expect(have_a == want_a, f"local asks {short(have_a[:3])} vs snapshot {short(want_a[:3])} at update id {book_id}")
                return
        raise CheckFailed("the local book never met a snapshot at the same lastUpdateId")


@acheck("ws.ticker_stream")
async def ticker_stream(ctx: Ctx) -> None:
    async with Stream(raw(ctx, f"{ctx.sym.lower}@ticker")) as s:
        m = await s.next_event(WAIT)
    expect_keys(m, TICKER, "24hrTicker event")
    expect_eq(m["e"], "24hrTicker", "e")
    near_server_clock(ctx, m["E"], "ticker E")


@acheck("ws.mini_ticker_stream")
async def mini_ticker(ctx: Ctx) -> None:
    async with Stream(raw(ctx, f"{ctx.sym.lower}@miniTicker")) as s:
        m = await s.next_event(WAIT)
    expect_keys(m, MINI, "24hrMiniTicker event")
    expect_eq(m["e"], "24hrMiniTicker", "e")


@acheck("ws.all_mini_tickers_stream")
async def all_mini(ctx: Ctx) -> None:
    async with Stream(raw(ctx, "!miniTicker@arr")) as s:
        m = await s.next_event(WAIT)
    expect(isinstance(m, list) and m, f"!miniTicker@arr gave {short(m)}")
    for x in m:
        expect_keys(x, MINI, "!miniTicker@arr entry")
    expect(ctx.sym.symbol in {x["s"] for x in m}, f"{ctx.sym.symbol} missing from !miniTicker@arr")


@acheck("ws.avg_price_stream")
async def avg_price(ctx: Ctx) -> None:
    async with Stream(raw(ctx, f"{ctx.sym.lower}@avgPrice")) as s:
        m = await s.next_event(WAIT)
    expect_keys(m, AVG, "avgPrice event")
    expect_eq(m["e"], "avgPrice", "e")


@acheck("ws.combined_stream")
async def combined_stream(ctx: Ctx) -> None:
    names = [f"{ctx.sym.lower}@trade", f"{ctx.sym.lower}@bookTicker"]
    if ctx.other:
        names.append(f"{ctx.other.lower}@bookTicker")
    async with Stream(combined(ctx, *names)) as s:
        seen: set[str] = set()
        deadline = time.monotonic() + WAIT * 2
        while seen != set(names):
            m = await s.next_event(max(0.1, deadline - time.monotonic()))
            expect_keys(m, ["stream", "data"], "combined payload")
            expect(m["stream"] in names, f"event for unsubscribed stream {m['stream']}")
            seen.add(m["stream"])


@acheck("ws.subscribe_list_unsubscribe")
async def subscribe_cycle(ctx: Ctx) -> None:
    stream = f"{ctx.sym.lower}@trade"
    async with Stream(f"{ctx.ep.ws}/ws") as s:
        await s.send({"method": "SUBSCRIBE", "params": [stream], "id": 1})
        expect_eq(await s.reply(), {"result": None, "id": 1}, "SUBSCRIBE reply")
        await s.next_event(WAIT, evt("trade"))
        await s.send({"method": "LIST_SUBSCRIPTIONS", "id": 2})
        expect_eq(await s.reply(), {"result": [stream], "id": 2}, "LIST_SUBSCRIPTIONS reply")
        await s.send({"method": "UNSUBSCRIBE", "params": [stream], "id": 3})
        expect_eq(await s.reply(), {"result": None, "id": 3}, "UNSUBSCRIBE reply")
        await s.send({"method": "LIST_SUBSCRIPTIONS", "id": 4})
        expect_eq(await s.reply(), {"result": [], "id": 4}, "LIST_SUBSCRIPTIONS after UNSUBSCRIBE")
        late = await s.quiet_for(3.0, evt("trade"))
        expect(late is None, f"a trade event after UNSUBSCRIBE: {short(late)}")


@acheck("ws.set_get_property_combined")
async def set_property(ctx: Ctx) -> None:
    stream = f"{ctx.sym.lower}@trade"
    async with Stream(raw(ctx, stream)) as s:
        await s.send({"method": "GET_PROPERTY", "params": ["combined"], "id": 1})
        expect_eq(await s.reply(), {"result": False, "id": 1}, "GET_PROPERTY combined on /ws")
        await s.send({"method": "SET_PROPERTY", "params": ["combined", True], "id": 2})
        expect_eq(await s.reply(), {"result": None, "id": 2}, "SET_PROPERTY reply")
        m = await s.next_event(WAIT, lambda m: isinstance(m, dict) and ("stream" in m or m.get("e") == "trade"))
        expect(m.get("stream") == stream and "data" in m, f"after SET_PROPERTY combined=true: {short(m)}")


CONTROL_ERRORS = [
    # (name, message sent, documented code, message prefix)
    ("invalid_json", '{"method": "SUBSCRIBE", "params": ["btcusdt@trade"], "id": 1', 3, "Invalid JSON: "),
    ("unknown_method", {"method": "SUBSCRIBED", "params": [], "id": 1}, 2, "Invalid request: unknown variant"),
    ("missing_method", {"params": ["btcusdt@trade"], "id": 1}, 2, "Invalid request: missing field `method`"),
    ("bad_id_type", {"method": "LIST_SUBSCRIPTIONS", "id": True}, 2, "Invalid request: request ID must be an unsigned integer"),
    ("property_not_boolean", {"method": "SET_PROPERTY", "params": ["combined", "yes"], "id": 1}, 1, "Invalid value type: expected Boolean"),
    ("unknown_property", {"method": "GET_PROPERTY", "params": ["colour"], "id": 1}, 0, "Unknown property"),
    ("property_name_not_string", {"method": "GET_PROPERTY", "params": [5], "id": 1}, 2, "Invalid request: property name must be a string"),
    # Binance checks a stream name's form, not that the stream exists (a
    # well-formed unknown name is acknowledged and stays silent there too);
    # a malformed name is refused, and a stream type Binance documents must
    # either be delivered or refused, never acknowledged and left silent.
    ("malformed_stream", {"method": "SUBSCRIBE", "params": ["@@@not#a#stream"], "id": 1}, 2, "Invalid request: invalid stream"),
    ("documented_stream_not_delivered", {"method": "SUBSCRIBE", "params": ["btcusdt@ticker_1h"], "id": 1}, 2, "Invalid request: "),
]


def control_case(msg: Any, code: int, prefix: str) -> Callable[[Ctx], Any]:
    async def run(ctx: Ctx) -> None:
        async with Stream(f"{ctx.ep.ws}/ws") as s:
            await s.send(msg if isinstance(msg, str) else json.dumps(msg))
            r = await s.reply()
        got_code, got_msg = control_error(r)
        expect(
            got_code == code and isinstance(got_msg, str) and got_msg.startswith(prefix),
            f"got {short(r)}; documented {{\"code\": {code}, \"msg\": \"{prefix}…\"}}",
        )

    return run


for _name, _msg, _code, _prefix in CONTROL_ERRORS:
    register(f"ws.control_error.{_name}", control_case(_msg, _code, _prefix), is_async=True, timeout=15)
