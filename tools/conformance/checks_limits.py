"""Rate limits as Binance counts them, on a second endpoint with tight
limits (its IP ban must not touch the main session): the ORDERS 10 s limit
(-1015, HTTP 429), then request weight over the limit -> 429 with
Retry-After, and repeated violations after the 429 -> 418 with Retry-After
(rest-api.md "LIMITS", web-socket-api.md "IP limits")."""

from __future__ import annotations

import asyncio
import re
import time
from decimal import Decimal

from clients import Rest, Resp, SymbolInfo, WsApi, client_id, expect_error, now_ms
from endpoint import Ctx
from harness import CheckFailed, check, expect, short

TIGHT_WEIGHT = 300  # REQUEST_WEIGHT per minute on the tight instance
TIGHT_ORDERS_10S = 5  # ORDERS per 10 s on the tight instance
AFTER_429 = 400  # requests sent after the first 429 before a 418 is required

_state: dict[str, object] = {}


def tight(ctx: Ctx) -> Rest:
    if ctx.tight is None:
        raise CheckFailed(ctx.tight_reason or "no tight-limits endpoint")
    r = _state.get("rest")
    if r is None:
        probe = Rest(ctx.tight.rest, ctx.tight.api_key, ctx.tight.api_secret)
        offset = probe.get("/api/v3/time").json_ok("tight: GET /api/v3/time")["serverTime"] - now_ms()
        r = Rest(ctx.tight.rest, ctx.tight.api_key, ctx.tight.api_secret, clock=lambda: now_ms() + offset)
        _state["rest"] = r
    assert isinstance(r, Rest)
    return r


def wait_for_window(rest: Rest, period_ms: int, need_ms: int) -> None:
    """Sleeps until at least `need_ms` remain in the current fixed window."""
    now = rest.clock()
    left = period_ms - now % period_ms
    if left < need_ms:
        time.sleep(left / 1000 + 0.05)


@check("limits.orders_10s_exceeded", group="limits", timeout=40)
def orders_10s(ctx: Ctx) -> None:
    rest = tight(ctx)
    info = rest.get("/api/v3/exchangeInfo", {"symbol": ctx.sym.symbol}).json_ok("tight: exchangeInfo")
    sym = SymbolInfo.parse(info["symbols"][0])
    px = Decimal(rest.get("/api/v3/ticker/price", {"symbol": sym.symbol}).json_ok("ticker")["price"]) * Decimal("0.9")
    wait_for_window(rest, 10_000, 4000)
    placed: list[Resp] = []
    try:
        for _ in range(TIGHT_ORDERS_10S + 1):
            placed.append(
                rest.call(
                    "POST", "/api/v3/order",
                    {"symbol": sym.symbol, "side": "BUY", "type": "LIMIT", "timeInForce": "GTC", "quantity": sym.qty(px),
                     "price": sym.price(px), "newClientOrderId": client_id("lim")},
                    signed=True,
                )
            )
    finally:
        for r in placed:
            if r.status == 200:
                rest.call("DELETE", "/api/v3/order", {"symbol": sym.symbol, "orderId": r.body["orderId"]}, signed=True)
    ok = placed[:-1]
    expect(all(r.status == 200 for r in ok), f"the first {TIGHT_ORDERS_10S} orders: {[r.describe() for r in ok if r.status != 200][:1]}")
    counts = [r.header_int("x-mbx-order-count-10s") for r in ok]
    expect(counts == list(range(1, TIGHT_ORDERS_10S + 1)), f"X-MBX-ORDER-COUNT-10S over {TIGHT_ORDERS_10S} orders: {counts}")
    expect_error(placed[-1], 429, -1015, f"Too many new orders; current limit is {TIGHT_ORDERS_10S} orders per 10 SECOND.", what="order over the ORDERS 10 s limit")


def hammer(rest: Rest, n: int) -> list[Resp]:
    return [rest.get("/api/v3/time") for _ in range(n)]


@check("limits.weight_429_retry_after", group="limits", timeout=90)
def weight_429(ctx: Ctx) -> None:
    rest = tight(ctx)
    wait_for_window(rest, 60_000, 20_000)
    out = hammer(rest, TIGHT_WEIGHT + 5)
    first = next((r for r in out if r.status != 200), None)
    expect(first is not None, f"{TIGHT_WEIGHT + 5} requests of weight 1 under a {TIGHT_WEIGHT}/min limit were all answered 200")
    assert first is not None
    _state["after_429"] = True
    expect_error(
        first, 429, -1003,
        f"Too much request weight used; current limit is {TIGHT_WEIGHT} request weight per 1 MINUTE. Please use WebSocket Streams for live updates to avoid polling the API.",
    )
    ra = first.header_int("retry-after")
    expect(ra is not None and 1 <= ra <= 60, f"Retry-After on the 429: {first.headers.get('retry-after')!r}")


@check("limits.weight_418_escalation", group="limits", timeout=90)
def weight_418(ctx: Ctx) -> None:
    rest = tight(ctx)
    if not _state.get("after_429"):
        wait_for_window(rest, 60_000, 20_000)
        hammer(rest, TIGHT_WEIGHT + 5)
    banned = None
    for _ in range(AFTER_429):
        r = rest.get("/api/v3/time")
        if r.status == 418:
            banned = r
            break
    expect(banned is not None, f"{AFTER_429} more requests after a 429 never escalated to 418 (documented: repeated violations after 429s get an IP ban)")
    assert banned is not None
    _state["banned"] = True
    expect_error(banned, 418, -1003, msg_prefix="Way too much request weight used; IP banned until ")
    m = re.fullmatch(r"Way too much request weight used; IP banned until (\d+)\. Please use WebSocket Streams for live updates to avoid bans\.", banned.body["msg"])
    expect(m is not None, f"418 message {banned.body['msg']!r}")
    assert m is not None
    ra = banned.header_int("retry-after")
    expect(ra is not None and ra >= 1, f"Retry-After on the 418: {banned.headers.get('retry-after')!r}")
    assert ra is not None
    until = int(m.group(1))
    expect(abs(until - (rest.clock() + ra * 1000)) <= 2500, f"banned until {until} vs now + Retry-After {ra} s")
    expect(ra >= 120, f"Retry-After {ra} s: documented bans last 2 minutes to 3 days")
    again = rest.get("/api/v3/time")
    expect(again.status == 418, f"a request during the ban: {again.describe()}")


@check("limits.ws_api_418_while_banned", group="limits", timeout=30)
def ws_api_banned(ctx: Ctx) -> None:
    rest = tight(ctx)
    expect(_state.get("banned"), "no ban to test (limits.weight_418_escalation did not reach a 418)")
    assert ctx.tight is not None

    async def go() -> dict:
        async with WsApi(ctx.tight.ws_api, ctx.tight.api_key, ctx.tight.api_secret, clock=rest.clock) as w:
            return await w.request("time")

    try:
        r = asyncio.run(go())
    except Exception as e:  # noqa: BLE001 - a refused upgrade is acceptable if it says 418
        expect("418" in str(e), f"WS-API during the ban: {type(e).__name__}: {short(str(e))}")
        return
    err = r.get("error") or {}
    expect(r.get("status") == 418 and err.get("code") == -1003, f"WS-API request during the ban: {short(r)}")
    expect(isinstance((err.get("data") or {}).get("retryAfter"), int), f"no error.data.retryAfter: {short(r)}")
