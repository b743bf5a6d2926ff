"""python-binance (`binance.Client`, `AsyncClient`, `BinanceSocketManager`),
used the way its users call it, changed only in its base URLs (`API_URL`,
the socket manager's `STREAM_URL`)."""

from __future__ import annotations

import asyncio
import threading
import time
from decimal import Decimal
from typing import Any

from endpoint import Ctx
from harness import CheckFailed, acheck, check, expect, expect_eq, expect_keys, short

_lock = threading.Lock()
_client: Any = None


def client(ctx: Ctx) -> Any:
    """A sync python-binance Client on the endpoint (no ping at construction:
    it would go to api.binance.com before the URL is changed)."""
    global _client
    with _lock:
        if _client is None:
            from binance.client import Client

            c = Client(ctx.ep.api_key, ctx.ep.api_secret, ping=False)
            c.API_URL = ctx.ep.rest + "/api"
            c.timestamp_offset = ctx.offset_ms
            _client = c
        return _client


def api_error(fn: Any) -> Any:
    """Runs `fn`, turning python-binance's BinanceAPIException into a failed
    check that names the code and message."""
    from binance.exceptions import BinanceAPIException

    try:
        return fn()
    except BinanceAPIException as e:
        raise CheckFailed(f"BinanceAPIException(status={e.status_code}, code={e.code}): {e.message}") from None


def far_limit(ctx: Ctx) -> dict[str, Any]:
    px = ctx.last_price() * Decimal("0.9")
    return dict(symbol=ctx.sym.symbol, side="BUY", type="LIMIT", timeInForce="GTC", quantity=ctx.sym.qty(px), price=ctx.sym.price(px))


@check("pybinance.get_server_time")
def server_time(ctx: Ctx) -> None:
    t = api_error(lambda: client(ctx).get_server_time())["serverTime"]
    expect(abs(t - int(time.time() * 1000)) <= 1500, f"serverTime {t} vs wall clock")


@check("pybinance.get_exchange_info")
def exchange_info(ctx: Ctx) -> None:
    info = api_error(lambda: client(ctx).get_exchange_info())
    expect(any(s["symbol"] == ctx.sym.symbol for s in info["symbols"]), "symbol missing")
    kinds = {(r["rateLimitType"], r["interval"], r["intervalNum"]) for r in info["rateLimits"]}
    expect({("REQUEST_WEIGHT", "MINUTE", 1), ("ORDERS", "SECOND", 10), ("ORDERS", "DAY", 1)} <= kinds, f"rateLimits {sorted(kinds)}")


@check("pybinance.get_symbol_info")
def symbol_info(ctx: Ctx) -> None:
    s = api_error(lambda: client(ctx).get_symbol_info(ctx.sym.symbol))
    expect(s is not None, "get_symbol_info returned None")
    expect_keys(s, ["orderTypes", "icebergAllowed", "ocoAllowed", "quoteOrderQtyMarketAllowed", "cancelReplaceAllowed", "allowTrailingStop", "filters"], "symbol info")
    expect_eq(s["cancelReplaceAllowed"], True, "cancelReplaceAllowed")
    for t in ("LIMIT", "MARKET", "STOP_LOSS", "STOP_LOSS_LIMIT", "TAKE_PROFIT", "TAKE_PROFIT_LIMIT", "LIMIT_MAKER"):
        expect(t in s["orderTypes"], f"orderTypes {s['orderTypes']} lacks {t}")


@check("pybinance.order_lifecycle")
def order_lifecycle(ctx: Ctx) -> None:
    c = client(ctx)
    ctx.pacer.take()
    o = api_error(lambda: c.create_order(**far_limit(ctx)))
    try:
        expect_eq(o["status"], "NEW", "create_order status")
        q = api_error(lambda: c.get_order(symbol=ctx.sym.symbol, orderId=o["orderId"]))
        expect_eq(q["clientOrderId"], o["clientOrderId"], "get_order clientOrderId (python-binance generates x-… ids)")
        opened = api_error(lambda: c.get_open_orders(symbol=ctx.sym.symbol))
        expect(o["orderId"] in [x["orderId"] for x in opened], "get_open_orders lacks the order")
    finally:
        r = api_error(lambda: c.cancel_order(symbol=ctx.sym.symbol, orderId=o["orderId"]))
    expect_eq(r["status"], "CANCELED", "cancel_order status")


@check("pybinance.oco_order_list")
def oco_order_list(ctx: Ctx) -> None:
    """An OCO through `create_oco_order` (POST /api/v3/orderList/oco): both
    legs show in the open orders with the list's id, the open lists name it,
    and cancelling the list (DELETE /api/v3/orderList) cancels both legs."""
    c = client(ctx)
    sym = ctx.sym.symbol
    px = ctx.last_price()
    # A BUY: the take-profit LIMIT_MAKER below the market, the stop above it.
    below = ctx.sym.price(px * Decimal("0.9"))
    stop = ctx.sym.price(px * Decimal("1.1"), up=True)
    stop_limit = ctx.sym.price(px * Decimal("1.11"), up=True)
    qty = ctx.sym.qty(Decimal(below))
    ctx.pacer.take()
    ctx.pacer.take()
    r = api_error(
        lambda: c.create_oco_order(
            symbol=sym,
            side="BUY",
            quantity=qty,
            aboveType="STOP_LOSS_LIMIT",
            aboveStopPrice=stop,
            abovePrice=stop_limit,
            aboveTimeInForce="GTC",
            belowType="LIMIT_MAKER",
            belowPrice=below,
        )
    )
    list_id = r["orderListId"]
    try:
        expect_eq((r["contingencyType"], r["listOrderStatus"]), ("OCO", "EXECUTING"), "create_oco_order list")
        legs = {o["orderId"] for o in r["orders"]}
        expect_eq(len(legs), 2, "legs in the list")
        opened = api_error(lambda: c.get_open_orders(symbol=sym))
        mine = {o["orderId"]: o for o in opened if o["orderListId"] == list_id}
        expect_eq(set(mine), legs, "get_open_orders shows both legs with the list's orderListId")
        expect_eq(sorted(o["type"] for o in mine.values()), ["LIMIT_MAKER", "STOP_LOSS_LIMIT"], "leg types")
        lists = api_error(lambda: c.get_open_oco_orders())
        expect(list_id in [x["orderListId"] for x in lists], f"get_open_oco_orders lacks list {list_id}: {short(lists)}")
    finally:
        d = api_error(lambda: c.v3_delete_order_list(symbol=sym, orderListId=list_id))
    expect_eq(d["listOrderStatus"], "ALL_DONE", "cancelled list")
    expect_eq(sorted(o["status"] for o in d["orderReports"]), ["CANCELED", "CANCELED"], "cancelled legs")
    left = api_error(lambda: c.get_open_orders(symbol=sym))
    expect(all(o["orderListId"] != list_id for o in left), "a leg is still open after the list was cancelled")


@check("pybinance.create_test_order_commission")
def test_order(ctx: Ctx) -> None:
    r = api_error(lambda: client(ctx).create_test_order(computeCommissionRates="true", **far_limit(ctx)))
    expect_keys(r, ["standardCommissionForOrder", "taxCommissionForOrder", "discount"], "create_test_order(computeCommissionRates)")
    expect(Decimal(r["standardCommissionForOrder"]["maker"]) >= 0, "maker rate")


@check("pybinance.get_all_orders_window")
def all_orders(ctx: Ctx) -> None:
    c = client(ctx)
    start = ctx.server_now()
    ctx.pacer.take()
    o = api_error(lambda: c.create_order(**far_limit(ctx)))
    api_error(lambda: c.cancel_order(symbol=ctx.sym.symbol, orderId=o["orderId"]))
    got = api_error(lambda: c.get_all_orders(symbol=ctx.sym.symbol, startTime=start - 1, endTime=ctx.server_now() + 1))
    ids = [x["orderId"] for x in got]
    expect(o["orderId"] in ids, "get_all_orders(startTime, endTime) lacks the order")
    expect(all(start - 1 <= x["time"] <= ctx.server_now() + 1 for x in got), "get_all_orders returned orders outside the window")


@check("pybinance.get_my_trades")
def my_trades(ctx: Ctx) -> None:
    c = client(ctx)
    ctx.pacer.take()
    px = ctx.last_price()
    o = api_error(lambda: c.order_market_buy(symbol=ctx.sym.symbol, quantity=ctx.sym.qty(px)))
    trades = api_error(lambda: c.get_my_trades(symbol=ctx.sym.symbol, orderId=o["orderId"]))
    expect(trades and all(t["orderId"] == o["orderId"] for t in trades), f"get_my_trades(orderId) gave {short(trades)}")
    expect_eq(sum(Decimal(t["qty"]) for t in trades), Decimal(o["executedQty"]), "sum of trade qty vs executedQty")


@check("pybinance.get_aggregate_trades")
def agg_trades(ctx: Ctx) -> None:
    r = api_error(lambda: client(ctx).get_aggregate_trades(symbol=ctx.sym.symbol, limit=5))
    expect(r, "no aggregate trades")
    expect_keys(r[0], ["a", "p", "q", "f", "l", "T", "m", "M"], "aggTrade")


@check("pybinance.get_historical_trades")
def historical_trades(ctx: Ctx) -> None:
    c = client(ctx)
    recent = api_error(lambda: c.get_recent_trades(symbol=ctx.sym.symbol, limit=3))
    expect(recent, "get_recent_trades returned nothing")
    r = api_error(lambda: c.get_historical_trades(symbol=ctx.sym.symbol, fromId=recent[0]["id"], limit=2))
    expect([t["id"] for t in r] == [recent[0]["id"], recent[0]["id"] + 1], f"fromId gave {[t.get('id') for t in r]}")


@check("pybinance.get_klines")
def klines(ctx: Ctx) -> None:
    r = api_error(lambda: client(ctx).get_klines(symbol=ctx.sym.symbol, interval="1m", limit=2))
    now = ctx.server_now()
    expect(r and r[-1][0] == now // 60_000 * 60_000, f"last kline opens {r[-1][0] if r else None}, current minute {now // 60_000 * 60_000}")


# ---------------------------------------------------------------- socket manager


async def socket_manager(ctx: Ctx) -> tuple[Any, Any]:
    from binance import AsyncClient, BinanceSocketManager

    ac = AsyncClient(ctx.ep.api_key, ctx.ep.api_secret)
    ac.API_URL = ctx.ep.rest + "/api"
    bm = BinanceSocketManager(ac)
    bm.STREAM_URL = ctx.ep.ws + "/"
    return ac, bm


async def first_messages(ctx: Ctx, make: Any, n: int, timeout: float = 12.0) -> list[Any]:
    ac, bm = await socket_manager(ctx)
    out: list[Any] = []
    try:
        async with make(bm) as s:
            deadline = time.monotonic() + timeout
            while len(out) < n:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise CheckFailed(f"{len(out)} of {n} messages within {timeout:.0f} s")
                try:
                    m = await asyncio.wait_for(s.recv(), left)
                except asyncio.TimeoutError:
                    raise CheckFailed(f"{len(out)} of {n} messages within {timeout:.0f} s") from None
                if isinstance(m, dict) and m.get("e") == "error":
                    raise CheckFailed(f"socket error: {short(m)}")
                out.append(m)
    finally:
        await ac.close_connection()
    return out


@acheck("pybinance.ws_kline_socket")
async def ws_kline(ctx: Ctx) -> None:
    m = (await first_messages(ctx, lambda bm: bm.kline_socket(ctx.sym.symbol), 1))[0]
    expect_eq(m.get("e"), "kline", "event type")
    k, minute = m["k"], m["E"] // 60_000 * 60_000
    expect(k["t"] == minute or (k["x"] and k["t"] == minute - 60_000), f"kline open {k['t']} vs the minute of E={m['E']}")


@acheck("pybinance.ws_trade_socket")
async def ws_trade(ctx: Ctx) -> None:
    ms = await first_messages(ctx, lambda bm: bm.trade_socket(ctx.sym.symbol), 2)
    expect(all(m.get("e") == "trade" for m in ms), f"events {short(ms)}")
    expect(ms[1]["t"] > ms[0]["t"], "trade ids not increasing")


@acheck("pybinance.ws_depth_socket_diff")
async def ws_depth_diff(ctx: Ctx) -> None:
    ms = await first_messages(ctx, lambda bm: bm.depth_socket(ctx.sym.symbol), 2)
    expect(all(m.get("e") == "depthUpdate" for m in ms), f"events {short(ms)}")
    expect_eq(ms[1]["U"], ms[0]["u"] + 1, "U of the next diff vs u of the previous + 1")


@acheck("pybinance.ws_depth_socket_partial")
async def ws_depth_partial(ctx: Ctx) -> None:
    m = (await first_messages(ctx, lambda bm: bm.depth_socket(ctx.sym.symbol, depth=bm.WEBSOCKET_DEPTH_5), 1))[0]
    expect_keys(m, ["lastUpdateId", "bids", "asks"], "partial depth")
    expect(len(m["bids"]) <= 5 and len(m["asks"]) <= 5, "more than 5 levels on @depth5")


@acheck("pybinance.ws_symbol_ticker_socket")
async def ws_ticker(ctx: Ctx) -> None:
    m = (await first_messages(ctx, lambda bm: bm.symbol_ticker_socket(ctx.sym.symbol), 1))[0]
    expect_eq(m.get("e"), "24hrTicker", "event type")


@acheck("pybinance.ws_miniticker_socket")
async def ws_miniticker(ctx: Ctx) -> None:
    m = (await first_messages(ctx, lambda bm: bm.miniticker_socket(), 1))[0]
    expect(isinstance(m, list) and m and m[0].get("e") == "24hrMiniTicker", f"!miniTicker@arr gave {short(m)}")


@acheck("pybinance.ws_multiplex_socket")
async def ws_multiplex(ctx: Ctx) -> None:
    streams = [f"{ctx.sym.lower}@trade", f"{ctx.sym.lower}@kline_1m"]
    ms = await first_messages(ctx, lambda bm: bm.multiplex_socket(streams), 4)
    seen = {m.get("stream") for m in ms}
    expect(seen <= set(streams) and all("data" in m for m in ms), f"combined payloads {short(ms)}")
