"""ccxt's `binance` exchange, used the way its users call it (unified
methods, plus the implicit API for what has no unified method), changed
only in its base URLs. Its ordinary options limit it to spot markets: with
the defaults ccxt also loads USD-M/COIN-M futures from fapi/dapi and, with
keys, margin pairs and currencies from /sapi, none of which are the spot API.
"""

from __future__ import annotations

import threading
import time
from decimal import Decimal
from typing import Any

from clients import client_id
from endpoint import Ctx
from harness import CheckFailed, check, expect, expect_eq, short

_lock = threading.Lock()
_ex: Any = None
MINUTE = 60_000


def ccxt_exchange(ctx: Ctx) -> Any:
    """The shared ccxt.binance instance, markets loaded."""
    global _ex
    with _lock:
        if _ex is None:
            import ccxt

            ex = ccxt.binance(
                {
                    "apiKey": ctx.ep.api_key,
                    "secret": ctx.ep.api_secret,
                    "enableRateLimit": False,
                    "options": {"fetchMarkets": {"types": ["spot"]}, "fetchCurrencies": False, "fetchMargins": False},
                }
            )
            api = ctx.ep.rest + "/api"
            ex.urls["api"]["public"] = api + "/v3"
            ex.urls["api"]["private"] = api + "/v3"
            ex.urls["api"]["v1"] = api + "/v1"
            ex.load_markets()
            _ex = ex
        return _ex


def unified(ctx: Ctx, ex: Any) -> str:
    return ex.markets_by_id[ctx.sym.symbol][0]["symbol"]


def amount_at(ctx: Ctx, px: Decimal) -> float:
    return float(ctx.sym.qty(px))


def raises(fn: Any, exc: type, code: str, what: str) -> BaseException:
    """Runs `fn`; fails unless it raises `exc` whose message carries `code`
    (the error code, or the message ccxt maps to `exc`)."""
    try:
        result = fn()
    except exc as e:  # type: ignore[misc]
        if code not in str(e):
            raise CheckFailed(f"{what}: {type(e).__name__} without {code}: {short(str(e))}")
        return e
    except Exception as e:  # noqa: BLE001
        raise CheckFailed(f"{what}: raised {type(e).__name__}: {short(str(e))}; documented {code} -> ccxt.{exc.__name__}")
    raise CheckFailed(f"{what}: succeeded ({short(result)}); documented {code} -> ccxt.{exc.__name__}")


@check("ccxt.load_markets")
def load_markets(ctx: Ctx) -> None:
    ex = ccxt_exchange(ctx)
    m = ex.markets[unified(ctx, ex)]
    expect(m["spot"] and m["active"], f"market not active spot: {short(m)}")
    expect_eq(Decimal(str(m["precision"]["price"])), ctx.sym.tick, "ccxt precision.price (tickSize)")
    expect_eq(Decimal(str(m["precision"]["amount"])), ctx.sym.step, "ccxt precision.amount (stepSize)")
    expect_eq(Decimal(str(m["limits"]["amount"]["min"])), ctx.sym.min_qty, "ccxt limits.amount.min (minQty)")


@check("ccxt.fetch_time")
def fetch_time(ctx: Ctx) -> None:
    t = ccxt_exchange(ctx).fetch_time()
    expect(abs(t - ctx.server_now()) <= 1500, f"fetch_time {t} vs server clock {ctx.server_now()}")
    expect(abs(t - int(time.time() * 1000)) <= 1500, f"fetch_time {t} is off the wall clock")


@check("ccxt.fetch_ticker")
def fetch_ticker(ctx: Ctx) -> None:
    ex = ccxt_exchange(ctx)
    t = ex.fetch_ticker(unified(ctx, ex))
    expect(t["bid"] and t["ask"] and t["bid"] < t["ask"], f"bid/ask {t['bid']}/{t['ask']}")
    expect(t["last"] is not None, "no last price")
    expect(abs(t["timestamp"] - ctx.server_now()) <= 5000, f"ticker timestamp {t['timestamp']} is not the server's now")


@check("ccxt.fetch_tickers")
def fetch_tickers(ctx: Ctx) -> None:
    ex = ccxt_exchange(ctx)
    syms = [unified(ctx, ex)]
    if ctx.other:
        syms.append(ex.markets_by_id[ctx.other.symbol][0]["symbol"])
    ts = ex.fetch_tickers(syms)
    expect(set(syms) <= set(ts), f"fetch_tickers({syms}) returned {sorted(ts)}")


@check("ccxt.fetch_order_book")
def fetch_order_book(ctx: Ctx) -> None:
    ex = ccxt_exchange(ctx)
    ob = ex.fetch_order_book(unified(ctx, ex), limit=10)
    bids, asks = [b[0] for b in ob["bids"]], [a[0] for a in ob["asks"]]
    expect(bids and asks, "empty book")
    expect(bids == sorted(bids, reverse=True) and asks == sorted(asks), "book sides not sorted")
    expect(bids[0] < asks[0], "crossed book")
    expect(isinstance(ob["nonce"], int), f"nonce (lastUpdateId) {ob['nonce']!r}")


@check("ccxt.fetch_ohlcv_since")
def fetch_ohlcv_since(ctx: Ctx) -> None:
    ex = ccxt_exchange(ctx)
    before = ctx.server_now()
    since = before // MINUTE * MINUTE - 5 * MINUTE
    rows = ex.fetch_ohlcv(unified(ctx, ex), "1m", since=since, limit=100)
    after = ctx.server_now()
    expect(rows, f"fetch_ohlcv(since={since}) returned nothing: 5 minutes before the server clock")
    expect_eq(rows[0][0], since, "first candle time with since on a minute")
    for a, b in zip(rows, rows[1:]):
        expect(b[0] - a[0] == MINUTE, f"candles not consecutive: {a[0]} then {b[0]}")
    current = {before // MINUTE * MINUTE, after // MINUTE * MINUTE}
    expect(rows[-1][0] in current, f"last candle {rows[-1][0]} is not the server clock's current minute {sorted(current)}")


@check("ccxt.fetch_trades")
def fetch_trades(ctx: Ctx) -> None:
    ex = ccxt_exchange(ctx)
    trades = ex.fetch_trades(unified(ctx, ex), limit=20)
    expect(trades, "no trades (aggTrades)")
    now = ctx.server_now()
    expect(trades[-1]["timestamp"] <= now + 1000, "a trade in the future")
    expect(now - trades[-1]["timestamp"] <= 30_000, f"newest trade is {now - trades[-1]['timestamp']} ms old")
    since = now - 20_000
    recent = ex.fetch_trades(unified(ctx, ex), since=since)
    expect(all(t["timestamp"] >= since for t in recent), "fetch_trades(since) returned older trades")


@check("ccxt.fetch_trades_rest_trades")
def fetch_trades_rest(ctx: Ctx) -> None:
    ex = ccxt_exchange(ctx)
    trades = ex.fetch_trades(unified(ctx, ex), limit=10, params={"fetchTradesMethod": "publicGetTrades"})
    expect(trades and all(t["price"] and t["amount"] for t in trades), f"GET /api/v3/trades via ccxt: {short(trades)}")


@check("ccxt.fetch_balance")
def fetch_balance(ctx: Ctx) -> None:
    b = ccxt_exchange(ctx).fetch_balance()
    q = ctx.sym.quote
    expect(q in b and b[q]["free"] and b[q]["free"] > 0, f"no free {q}: {short(b.get(q))}")
    expect(abs(b[q]["total"] - b[q]["free"] - b[q]["used"]) < 1e-6, f"total != free + used for {q}")


@check("ccxt.limit_order_lifecycle")
def limit_lifecycle(ctx: Ctx) -> None:
    ex = ccxt_exchange(ctx)
    s = unified(ctx, ex)
    px = ctx.last_price() * Decimal("0.9")
    ctx.pacer.take()
    o = ex.create_order(s, "limit", "buy", amount_at(ctx, px), float(ctx.sym.price(px)))
    try:
        expect_eq(o["status"], "open", "create_order status")
        expect_eq(ex.fetch_order(o["id"], s)["status"], "open", "fetch_order status")
        expect(o["id"] in [x["id"] for x in ex.fetch_open_orders(s)], "fetch_open_orders lacks the order")
    finally:
        c = ex.cancel_order(o["id"], s)
    expect_eq(c["status"], "canceled", "cancel_order status")
    expect_eq(ex.fetch_order(o["id"], s)["status"], "canceled", "fetch_order after cancel")


@check("ccxt.market_order")
def market_order(ctx: Ctx) -> None:
    ex = ccxt_exchange(ctx)
    s = unified(ctx, ex)
    amt = amount_at(ctx, ctx.last_price())
    ctx.pacer.take()
    o = ex.create_order(s, "market", "buy", amt)
    expect_eq(o["status"], "closed", "market order status")
    expect(abs(o["filled"] - amt) < 1e-12, f"filled {o['filled']} of {amt}")
    expect(o["trades"] and o["fee"] is not None, f"fills/fee missing: {short(o)}")
    expect_eq(o["timeInForce"], "GTC", "market order timeInForce (Binance echoes GTC)")


@check("ccxt.market_buy_with_cost")
def market_cost(ctx: Ctx) -> None:
    ex = ccxt_exchange(ctx)
    ctx.pacer.take()
    o = ex.create_market_buy_order_with_cost(unified(ctx, ex), 20)
    expect_eq(o["info"].get("origQuoteOrderQty"), "20.00000000", "origQuoteOrderQty echo (quoteOrderQty=20)")
    expect(0 < o["cost"] <= 20, f"cost {o['cost']} for quoteOrderQty 20")


@check("ccxt.stop_loss_limit_wrong_side")
def stop_wrong_side(ctx: Ctx) -> None:
    import ccxt

    ex = ccxt_exchange(ctx)
    last = ctx.last_price()
    stop = float(ctx.sym.price(last * Decimal("0.95")))
    ctx.pacer.take()
    raises(
        lambda: ex.create_order(unified(ctx, ex), "limit", "buy", amount_at(ctx, last), stop, {"triggerPrice": stop}),
        ccxt.OrderImmediatelyFillable,
        "Order would trigger immediately.",
        f"BUY STOP_LOSS_LIMIT with stop {stop} below last {last}",
    )


@check("ccxt.untriggered_stop_is_not_working")
def stop_not_working(ctx: Ctx) -> None:
    ex = ccxt_exchange(ctx)
    s = unified(ctx, ex)
    last = ctx.last_price()
    stop = float(ctx.sym.price(last * Decimal("1.05"), up=True))
    ctx.pacer.take()
    o = ex.create_order(s, "limit", "buy", amount_at(ctx, last), stop, {"triggerPrice": stop})
    try:
        f = ex.fetch_order(o["id"], s)
        expect_eq(f["info"].get("isWorking"), False, "isWorking of an untriggered stop")
        expect_eq(f["info"].get("type"), "STOP_LOSS_LIMIT", "type")
    finally:
        ex.cancel_order(o["id"], s)


@check("ccxt.take_profit_market_order")
def take_profit_market(ctx: Ctx) -> None:
    ex = ccxt_exchange(ctx)
    s = unified(ctx, ex)
    last = ctx.last_price()
    amt = amount_at(ctx, last)
    ctx.ensure_base(Decimal(str(amt)))
    tp = float(ctx.sym.price(last * Decimal("1.05"), up=True))
    ctx.pacer.take()
    o = ex.create_order(s, "market", "sell", amt, None, {"takeProfitPrice": tp})
    try:
        expect_eq(ex.fetch_order(o["id"], s)["info"].get("type"), "TAKE_PROFIT", "type")
    finally:
        ex.cancel_order(o["id"], s)


@check("ccxt.duplicate_client_order_id")
def duplicate_cid(ctx: Ctx) -> None:
    import ccxt

    ex = ccxt_exchange(ctx)
    s = unified(ctx, ex)
    cid = client_id("cx")
    px = ctx.last_price() * Decimal("0.9")
    args = (s, "limit", "buy", amount_at(ctx, px), float(ctx.sym.price(px)))
    ctx.pacer.take(3)
    first = ex.create_order(*args, {"clientOrderId": cid})
    try:
        raises(lambda: ex.create_order(*args, {"clientOrderId": cid}), ccxt.InvalidOrder, "Duplicate order sent.", "same clientOrderId while open")
    finally:
        ex.cancel_order(first["id"], s)
    again = ex.create_order(*args, {"clientOrderId": cid})
    ex.cancel_order(again["id"], s)
    expect_eq(again["clientOrderId"], cid, "clientOrderId reused after the first order was canceled")


@check("ccxt.fetch_my_trades_since")
def fetch_my_trades(ctx: Ctx) -> None:
    ex = ccxt_exchange(ctx)
    s = unified(ctx, ex)
    since = ctx.server_now() - 1000
    ctx.pacer.take()
    o = ex.create_order(s, "market", "buy", amount_at(ctx, ctx.last_price()))
    trades = ex.fetch_my_trades(s, since=since)
    mine = [t for t in trades if t["order"] == o["id"]]
    expect(mine, f"fetch_my_trades(since) lacks the fills of order {o['id']}")
    expect(all(t["timestamp"] >= since for t in trades), "fetch_my_trades(since) returned older trades")
    expect(all(abs(t["timestamp"] - ctx.server_now()) <= 10_000 for t in mine), "trade times off the server clock")


@check("ccxt.fetch_orders_time_window")
def fetch_orders_window(ctx: Ctx) -> None:
    ex = ccxt_exchange(ctx)
    s = unified(ctx, ex)
    px = ctx.last_price() * Decimal("0.9")
    ctx.pacer.take(2)
    a = ex.create_order(s, "limit", "buy", amount_at(ctx, px), float(ctx.sym.price(px)))
    time.sleep(0.05)
    b = ex.create_order(s, "limit", "buy", amount_at(ctx, px), float(ctx.sym.price(px)))
    try:
        expect(b["timestamp"] > a["timestamp"], "two orders 50 ms apart share a time")
        got = [o["id"] for o in ex.fetch_orders(s, since=a["timestamp"], params={"until": a["timestamp"]})]
        expect(a["id"] in got and b["id"] not in got, f"fetch_orders(since=A, until=A) gave {got} (A={a['id']}, B={b['id']})")
    finally:
        ex.cancel_order(a["id"], s)
        ex.cancel_order(b["id"], s)


@check("ccxt.fetch_orders_window_over_24h")
def fetch_orders_24h(ctx: Ctx) -> None:
    import ccxt

    ex = ccxt_exchange(ctx)
    now = ctx.server_now()
    raises(
        lambda: ex.fetch_orders(unified(ctx, ex), since=now - 25 * 3600_000, params={"until": now}),
        ccxt.BadRequest,
        "-1127",
        "fetch_orders over a 25 h window",
    )


@check("ccxt.edit_order_cancel_replace")
def edit_order(ctx: Ctx) -> None:
    ex = ccxt_exchange(ctx)
    s = unified(ctx, ex)
    px = ctx.last_price() * Decimal("0.9")
    ctx.pacer.take(2)
    o = ex.create_order(s, "limit", "buy", amount_at(ctx, px), float(ctx.sym.price(px)))
    new_px = float(ctx.sym.price(px * Decimal("0.99")))
    try:
        e = ex.edit_order(o["id"], s, "limit", "buy", amount_at(ctx, px), new_px)
    except Exception:
        ex.cancel_order(o["id"], s)
        raise
    try:
        expect(e["id"] != o["id"], "edit_order kept the order id (cancelReplace makes a new order)")
        expect_eq(e["price"], new_px, "edited price")
        expect_eq(ex.fetch_order(o["id"], s)["status"], "canceled", "the replaced order")
    finally:
        ex.cancel_order(e["id"], s)


@check("ccxt.trading_fees_account_commission")
def trading_fees(ctx: Ctx) -> None:
    """ccxt's fetch_trading_fee(s) use /sapi (not the spot API); its users
    reach account/commission through the implicit API."""
    ex = ccxt_exchange(ctx)
    r = ex.private_get_account_commission({"symbol": ctx.sym.symbol})
    std = r.get("standardCommission", {})
    expect("maker" in std and "taker" in std, f"account/commission: {short(r)}")
    bal = ex.fetch_balance()
    rates = bal["info"].get("commissionRates", {})
    expect_eq(Decimal(std["taker"]), Decimal(rates.get("taker", "-1")), "account/commission taker vs account.commissionRates")
