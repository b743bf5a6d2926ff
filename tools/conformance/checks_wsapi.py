"""The WebSocket API with a raw client written from web-socket-api.md: the
envelope, `rateLimits` (REQUEST_WEIGHT per IP shared with REST, the ORDERS
10 s / 1 d counters on order methods), session.logon with an Ed25519 key,
the user-data stream, order entry and the account/market methods."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Any

from clients import Ed25519Signer, WsApi, client_id, rate_limit, ws_ok
from endpoint import Ctx
from harness import CheckFailed, acheck, expect, expect_eq, expect_keys, short
from checks_orders import ACCOUNT_KEYS, QUERY_KEYS, RESULT_KEYS

MINUTE = 60_000


def api(ctx: Ctx) -> WsApi:
    return WsApi(ctx.ep.ws_api, ctx.ep.api_key, ctx.ep.api_secret, clock=ctx.server_now)


async def far_limit(ctx: Ctx) -> dict[str, Any]:
    px = await asyncio.to_thread(ctx.last_price)
    px = px * Decimal("0.9")
    return {
        "symbol": ctx.sym.symbol, "side": "BUY", "type": "LIMIT", "timeInForce": "GTC",
        "quantity": ctx.sym.qty(px), "price": ctx.sym.price(px), "newClientOrderId": client_id("ws"),
    }


def weight(resp: dict[str, Any]) -> int | None:
    rl = rate_limit(resp, "REQUEST_WEIGHT", "MINUTE", 1)
    return rl.get("count") if rl else None


@acheck("wsapi.envelope")
async def envelope(ctx: Ctx) -> None:
    async with api(ctx) as w:
        r = await w.request("time", req_id="7069b743-f477-4ae3-81db-db9b8df085d2")
    expect_keys(r, ["id", "status", "result", "rateLimits"], "response")
    expect_eq(r["id"], "7069b743-f477-4ae3-81db-db9b8df085d2", "id echo")
    expect_eq(r["status"], 200, "status")
    expect(abs(r["result"]["serverTime"] - ctx.server_now()) <= 1500, "serverTime off the server clock")
    rl = rate_limit(r, "REQUEST_WEIGHT", "MINUTE", 1)
    expect(rl is not None, f"no REQUEST_WEIGHT MINUTE 1 in rateLimits {short(r.get('rateLimits'))}")
    assert rl is not None
    expect_keys(rl, ["rateLimitType", "interval", "intervalNum", "limit", "count"], "rateLimits entry")


@acheck("wsapi.return_rate_limits_false")
async def no_rate_limits(ctx: Ctx) -> None:
    async with api(ctx) as w:
        r = await w.request("time", {"returnRateLimits": False})
    ws_ok(r, "time")
    expect("rateLimits" not in r, f"returnRateLimits=false still returned rateLimits: {short(r)}")


@acheck("wsapi.weight_count_grows")
async def weight_grows(ctx: Ctx) -> None:
    async with api(ctx) as w:
        for _ in range(2):
            a = weight(await w.request("time"))
            b = weight(await w.request("time"))
            expect(a is not None and b is not None, "no REQUEST_WEIGHT count")
            assert a is not None and b is not None
            if b < a:  # a new minute
                continue
            expect(b >= a + 1, f"REQUEST_WEIGHT count {a} -> {b} over a request of weight 1")
            return
    raise CheckFailed("the minute rolled over twice")


@acheck("wsapi.weight_shared_with_rest")
async def weight_shared(ctx: Ctx) -> None:
    """Weight is per IP across REST and the WebSocket API: a REST request's
    weight shows in the next WS-API count, and the other way round."""
    async with api(ctx) as w:
        for _ in range(3):
            start_min = ctx.server_now() // MINUTE
            c1 = weight(await w.request("time"))
            r = await asyncio.to_thread(ctx.rest.get, "/api/v3/depth", {"symbol": ctx.sym.symbol, "limit": 100})
            h = r.header_int("x-mbx-used-weight-1m")
            c2 = weight(await w.request("time"))
            if ctx.server_now() // MINUTE != start_min:
                continue
            expect(c1 is not None and c2 is not None and h is not None, "missing counters")
            assert c1 is not None and c2 is not None and h is not None
            expect(h >= c1 + 5, f"REST x-mbx-used-weight-1m {h} after WS-API count {c1} and a weight-5 REST request: not shared")
            expect(c2 >= h + 1, f"WS-API count {c2} after REST weight {h}: not shared")
            return
    raise CheckFailed("the minute rolled over during every attempt")


@acheck("wsapi.connection_costs_weight")
async def connection_weight(ctx: Ctx) -> None:
    for _ in range(3):
        start_min = ctx.server_now() // MINUTE
        r = await asyncio.to_thread(ctx.rest.get, "/api/v3/ping")
        h = r.header_int("x-mbx-used-weight-1m")
        async with api(ctx) as w:
            c = weight(await w.request("ping"))
        if ctx.server_now() // MINUTE != start_min:
            continue
        expect(h is not None and c is not None, "missing counters")
        assert h is not None and c is not None
        expect(c >= h + 3, f"weight {h} before connecting, {c} after connecting (2) and ping (1)")
        return
    raise CheckFailed("the minute rolled over during every attempt")


@acheck("wsapi.order_rate_limits")
async def order_rate_limits(ctx: Ctx) -> None:
    async with api(ctx) as w:
        await ctx.pacer.atake(2)
        a = await w.request("order.place", await far_limit(ctx), signed=True)
        b = await w.request("order.place", await far_limit(ctx), signed=True)
        for r in (a, b):
            if r.get("status") == 200:
                await w.request("order.cancel", {"symbol": ctx.sym.symbol, "orderId": r["result"]["orderId"]}, signed=True)
        ws_ok(a, "order.place")
        ws_ok(b, "order.place")
        for interval, num in (("SECOND", 10), ("DAY", 1)):
            ra, rb = rate_limit(a, "ORDERS", interval, num), rate_limit(b, "ORDERS", interval, num)
            expect(ra is not None and rb is not None, f"order.place rateLimits lack ORDERS {interval} {num}: {short(a.get('rateLimits'))}")
            assert ra is not None and rb is not None
            if interval == "DAY":
                expect(rb["count"] >= ra["count"] + 1, f"ORDERS DAY count {ra['count']} -> {rb['count']} over two orders")
            else:
                expect(rb["count"] >= ra["count"] + 1 or rb["count"] == 1, f"ORDERS 10 s count {ra['count']} -> {rb['count']}")
        expect(weight(a) is not None, "order.place rateLimits lack REQUEST_WEIGHT")


@acheck("wsapi.order_place_status_cancel")
async def order_cycle(ctx: Ctx) -> None:
    async with api(ctx) as w:
        await ctx.pacer.atake()
        p = await far_limit(ctx)
        r = ws_ok(await w.request("order.place", {**p, "newOrderRespType": "RESULT"}, signed=True), "order.place")
        try:
            expect_keys(r, RESULT_KEYS, "order.place RESULT")
            expect_eq(r["clientOrderId"], p["newClientOrderId"], "clientOrderId")
            s = ws_ok(await w.request("order.status", {"symbol": ctx.sym.symbol, "orderId": r["orderId"]}, signed=True), "order.status")
            expect_keys(s, QUERY_KEYS, "order.status")
            expect_eq(s["status"], "NEW", "order.status status")
        finally:
            c = await w.request("order.cancel", {"symbol": ctx.sym.symbol, "orderId": r["orderId"]}, signed=True)
        expect_eq(ws_ok(c, "order.cancel")["status"], "CANCELED", "order.cancel status")


@acheck("wsapi.order_cancel_replace")
async def cancel_replace(ctx: Ctx) -> None:
    async with api(ctx) as w:
        await ctx.pacer.atake(2)
        p = await far_limit(ctx)
        o = ws_ok(await w.request("order.place", p, signed=True), "order.place")
        new_px = ctx.sym.price(Decimal(p["price"]) * Decimal("0.99"))
        r = await w.request(
            "order.cancelReplace",
            {"symbol": ctx.sym.symbol, "cancelReplaceMode": "STOP_ON_FAILURE", "cancelOrderId": o["orderId"], "side": "BUY",
             "type": "LIMIT", "timeInForce": "GTC", "quantity": p["quantity"], "price": new_px},
            signed=True,
        )
        if r.get("status") != 200:
            await w.request("order.cancel", {"symbol": ctx.sym.symbol, "orderId": o["orderId"]}, signed=True)
        res = ws_ok(r, "order.cancelReplace")
        await w.request("order.cancel", {"symbol": ctx.sym.symbol, "orderId": res["newOrderResponse"]["orderId"]}, signed=True)
        expect_eq((res.get("cancelResult"), res.get("newOrderResult")), ("SUCCESS", "SUCCESS"), "cancelResult/newOrderResult")
        expect_eq(res["cancelResponse"]["status"], "CANCELED", "cancelResponse.status")
        expect_eq(Decimal(res["newOrderResponse"]["price"]), Decimal(new_px), "newOrderResponse.price")


@acheck("wsapi.account_status")
async def account_status(ctx: Ctx) -> None:
    async with api(ctx) as w:
        r = ws_ok(await w.request("account.status", {}, signed=True), "account.status")
    expect_keys(r, ACCOUNT_KEYS, "account.status")


@acheck("wsapi.open_orders_status")
async def open_orders(ctx: Ctx) -> None:
    async with api(ctx) as w:
        await ctx.pacer.atake()
        o = ws_ok(await w.request("order.place", await far_limit(ctx), signed=True), "order.place")
        try:
            r = ws_ok(await w.request("openOrders.status", {"symbol": ctx.sym.symbol}, signed=True), "openOrders.status")
            expect(o["orderId"] in [x["orderId"] for x in r], "openOrders.status lacks the order")
        finally:
            await w.request("order.cancel", {"symbol": ctx.sym.symbol, "orderId": o["orderId"]}, signed=True)


@acheck("wsapi.exchange_info")
async def exchange_info(ctx: Ctx) -> None:
    async with api(ctx) as w:
        r = ws_ok(await w.request("exchangeInfo", {"symbol": ctx.sym.symbol}), "exchangeInfo")
    expect_keys(r, ["timezone", "serverTime", "rateLimits", "exchangeFilters", "symbols"], "exchangeInfo result")
    expect_eq([s["symbol"] for s in r["symbols"]], [ctx.sym.symbol], "symbols")
    expect_eq(r["symbols"][0].get("orderTypes"), ctx.sym.raw.get("orderTypes"), "orderTypes vs REST exchangeInfo")


@acheck("wsapi.user_data_stream_subscribe_signature")
async def uds_signature(ctx: Ctx) -> None:
    async with api(ctx) as w:
        r = ws_ok(await w.request("userDataStream.subscribe.signature", {}, signed=True), "userDataStream.subscribe.signature")
        expect(isinstance(r, dict) and isinstance(r.get("subscriptionId"), int), f"result {short(r)}")
        sid = r["subscriptionId"]
        await ctx.pacer.atake()
        p = await far_limit(ctx)
        o = (await asyncio.to_thread(ctx.rest.call, "POST", "/api/v3/order", p, True)).json_ok("REST order")
        try:
            e = await w.event(
                lambda m: isinstance(m, dict) and m.get("subscriptionId") == sid and m.get("event", {}).get("e") == "executionReport"
                and m["event"].get("i") == o["orderId"], 10
            )
            expect_eq((e["event"]["x"], e["event"]["X"], e["event"]["c"]), ("NEW", "NEW", p["newClientOrderId"]), "executionReport x/X/c")
            await w.event(lambda m: isinstance(m, dict) and m.get("event", {}).get("e") == "outboundAccountPosition", 10)
        finally:
            await asyncio.to_thread(ctx.cancel, o["orderId"])
        ws_ok(await w.request("userDataStream.unsubscribe", {"subscriptionId": sid}), "userDataStream.unsubscribe")
        await w.event(lambda m: isinstance(m, dict) and m.get("event", {}).get("e") == "eventStreamTerminated", 5)


@acheck("wsapi.session_logon_ed25519")
async def logon(ctx: Ctx) -> None:
    key, path = ctx.ep.ed25519_api_key, ctx.ep.ed25519_private_key_path
    if not key or not path:
        raise CheckFailed("the endpoint offers no Ed25519 key: SANDBOX_READY has no ed25519_api_key / ed25519_private_key_path (--ed25519-api-key/--ed25519-key-path for other endpoints)")
    signer = Ed25519Signer(path)
    async with api(ctx) as w:
        r = ws_ok(await w.request("session.logon", w.signed({}, ed25519=signer, api_key=key)), "session.logon")
        expect_keys(r, ["apiKey", "authorizedSince", "connectedSince", "returnRateLimits", "serverTime", "userDataStream"], "session.logon result")
        expect_eq(r["apiKey"], key, "apiKey")
        st = ws_ok(await w.request("session.status"), "session.status")
        expect_eq(st.get("apiKey"), key, "session.status apiKey after logon")
        sub = ws_ok(await w.request("userDataStream.subscribe"), "userDataStream.subscribe (after logon)")
        expect(isinstance(sub, dict) and isinstance(sub.get("subscriptionId"), int), f"subscribe result {short(sub)}")
        await ctx.pacer.atake()
        p = await far_limit(ctx)
        o = ws_ok(await w.request("order.place", {**p, "timestamp": ctx.server_now()}), "order.place on the logged-on session (no apiKey/signature)")
        await w.event(lambda m: isinstance(m, dict) and m.get("event", {}).get("i") == o["orderId"], 10)
        c = await w.request("order.cancel", {"symbol": ctx.sym.symbol, "orderId": o["orderId"], "timestamp": ctx.server_now()})
        ws_ok(c, "order.cancel on the logged-on session")
