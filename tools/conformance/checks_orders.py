"""Order entry and account endpoints, raw REST, to the letter of rest-api.md
and errors.md: where Binance says no, the endpoint must say no the same way
(HTTP status, code, message)."""

from __future__ import annotations

import json
import re
import time
from decimal import Decimal
from typing import Any, Callable

from clients import client_id, expect_error
from endpoint import Ctx
from harness import check, expect, expect_eq, expect_keys, register

DAY_MS = 86_400_000

ACK_KEYS = ["symbol", "orderId", "orderListId", "clientOrderId", "transactTime"]
RESULT_KEYS = ACK_KEYS + [
    "price", "origQty", "executedQty", "origQuoteOrderQty", "cummulativeQuoteQty", "status", "timeInForce", "type",
    "side", "workingTime", "selfTradePreventionMode",
]
FULL_KEYS = RESULT_KEYS + ["fills"]
FILL_KEYS = ["price", "qty", "commission", "commissionAsset", "tradeId"]
QUERY_KEYS = [
    "symbol", "orderId", "orderListId", "clientOrderId", "price", "origQty", "executedQty", "cummulativeQuoteQty",
    "status", "timeInForce", "type", "side", "stopPrice", "icebergQty", "time", "updateTime", "isWorking",
    "workingTime", "origQuoteOrderQty", "selfTradePreventionMode",
]
CANCEL_KEYS = [
    "symbol", "origClientOrderId", "orderId", "orderListId", "clientOrderId", "transactTime", "price", "origQty",
    "executedQty", "origQuoteOrderQty", "cummulativeQuoteQty", "status", "timeInForce", "type", "side",
    "selfTradePreventionMode",
]
MY_TRADE_KEYS = [
    "symbol", "id", "orderId", "orderListId", "price", "qty", "quoteQty", "commission", "commissionAsset", "time",
    "isBuyer", "isMaker", "isBestMatch",
]
ACCOUNT_KEYS = [
    "makerCommission", "takerCommission", "buyerCommission", "sellerCommission", "commissionRates", "canTrade",
    "canWithdraw", "canDeposit", "brokered", "requireSelfTradePrevention", "preventSor", "updateTime", "accountType",
    "balances", "permissions", "uid",
]
SYMBOL_KEYS = [
    "symbol", "status", "baseAsset", "baseAssetPrecision", "quoteAsset", "quotePrecision", "quoteAssetPrecision",
    "baseCommissionPrecision", "quoteCommissionPrecision", "orderTypes", "icebergAllowed", "ocoAllowed", "otoAllowed",
    "quoteOrderQtyMarketAllowed", "allowTrailingStop", "cancelReplaceAllowed", "amendAllowed", "isSpotTradingAllowed",
    "isMarginTradingAllowed", "filters", "permissions", "permissionSets", "defaultSelfTradePreventionMode",
    "allowedSelfTradePreventionModes",
]
ALL_ORDER_TYPES = ["LIMIT", "LIMIT_MAKER", "MARKET", "STOP_LOSS", "STOP_LOSS_LIMIT", "TAKE_PROFIT", "TAKE_PROFIT_LIMIT"]
STP_MODES = ["NONE", "EXPIRE_MAKER", "EXPIRE_TAKER", "EXPIRE_BOTH", "DECREMENT", "TRANSFER"]
NOT_SUPPORTED = {
    "MARKET": "Market orders are not supported for this symbol.",
    "STOP_LOSS": "Stop loss orders are not supported for this symbol.",
    "STOP_LOSS_LIMIT": "Stop loss limit orders are not supported for this symbol.",
    "TAKE_PROFIT": "Take profit orders are not supported for this symbol.",
    "TAKE_PROFIT_LIMIT": "Take profit limit orders are not supported for this symbol.",
}
CID_RANGE = "^[a-zA-Z0-9-_]{1,36}$"


# Order-response fields the docs include only for orders that use them.
CONDITIONAL_KEYS = {
    "icebergQty", "preventedMatchId", "preventedQuantity", "stopPrice", "strategyId", "strategyType", "trailingDelta",
    "trailingTime", "usedSor", "workingFloor", "pegPriceType", "pegOffsetType", "pegOffsetValue", "peggedPrice",
    "expiryReason",
}


def keys_exactly(obj: Any, keys: list[str], what: str, conditional: bool = True) -> None:
    """Every documented field, and nothing beyond them (and, with
    `conditional`, the documented conditional fields)."""
    expect_keys(obj, keys, what)
    extra = sorted(set(obj) - set(keys) - (CONDITIONAL_KEYS if conditional else set()))
    expect(not extra, f"{what}: undocumented extra field(s) {extra}")


def type_params(ctx: Ctx, order_type: str, last: Decimal) -> dict[str, Any]:
    """Valid parameters (trigger on the right side of `last`) per type:
    stops for SELL below the market, take-profits for SELL above."""
    s = ctx.sym
    below, above = last * Decimal("0.95"), last * Decimal("1.05")
    qty = s.qty(last)
    return {
        "LIMIT": dict(side="BUY", timeInForce="GTC", quantity=s.qty(below), price=s.price(below * Decimal("0.95"))),
        "LIMIT_MAKER": dict(side="BUY", quantity=s.qty(below), price=s.price(below * Decimal("0.95"))),
        "MARKET": dict(side="BUY", quantity=qty),
        "STOP_LOSS": dict(side="SELL", quantity=qty, stopPrice=s.price(below)),
        "STOP_LOSS_LIMIT": dict(side="SELL", timeInForce="GTC", quantity=qty, stopPrice=s.price(below), price=s.price(below)),
        "TAKE_PROFIT": dict(side="SELL", quantity=qty, stopPrice=s.price(above, up=True)),
        "TAKE_PROFIT_LIMIT": dict(
            side="SELL", timeInForce="GTC", quantity=qty, stopPrice=s.price(above, up=True), price=s.price(above, up=True)
        ),
    }[order_type]


# ---------------------------------------------------------------- order entry basics


@check("rest.order_limit_full_response")
def order_limit_full(ctx: Ctx) -> None:
    o = ctx.resting_buy()
    try:
        keys_exactly(o, FULL_KEYS, "LIMIT order response (default newOrderRespType FULL)")
        expect(abs(o["transactTime"] - ctx.server_now()) <= 2000, f"transactTime {o['transactTime']} is off the server clock")
        expect_eq(o["status"], "NEW", "status of a LIMIT buy below the market")
        q = ctx.query(o["orderId"])
        expect_keys(q, QUERY_KEYS, "GET /api/v3/order")
        expect_eq(q["isWorking"], True, "isWorking of a resting LIMIT order")
    finally:
        c = ctx.cancel(o["orderId"])
    body = c.json_ok("DELETE /api/v3/order")
    expect_keys(body, CANCEL_KEYS, "cancel response")
    expect_eq(body["status"], "CANCELED", "status after cancel")


@check("rest.market_order_echoes_gtc")
def market_echo(ctx: Ctx) -> None:
    o = ctx.market_buy()
    keys_exactly(o, FULL_KEYS, "MARKET order response (FULL)")
    expect_eq(o["status"], "FILLED", "MARKET order status")
    expect_eq(o["timeInForce"], "GTC", "MARKET order timeInForce echo (rest-api.md example)")
    for f in o["fills"]:
        expect_keys(f, FILL_KEYS, "fill")


@check("rest.market_quote_order_qty")
def market_quote_qty(ctx: Ctx) -> None:
    r = ctx.order(side="BUY", type="MARKET", quoteOrderQty="20", newOrderRespType="FULL")
    o = r.json_ok("MARKET BUY quoteOrderQty=20")
    expect_eq(o.get("origQuoteOrderQty"), "20.00000000", "origQuoteOrderQty echo")
    spent = Decimal(o["cummulativeQuoteQty"])
    expect(Decimal(0) < spent <= Decimal(20), f"cummulativeQuoteQty {spent} for quoteOrderQty 20")
    expect_eq(o["status"], "FILLED", "status")


@check("rest.timestamp_microseconds")
def timestamp_us(ctx: Ctx) -> None:
    r = ctx.rest.get("/api/v3/account", signed=True, timestamp=ctx.server_now() * 1000 + 123)
    expect(r.status == 200, f"a microsecond timestamp (documented: ms or µs): {r.describe()}")


@check("rest.timestamp_ahead_of_server")
def timestamp_ahead(ctx: Ctx) -> None:
    r = ctx.rest.get("/api/v3/account", signed=True, timestamp=ctx.server_now() + 5000)
    expect_error(r, 400, -1021, "Timestamp for this request was 1000ms ahead of the server's time.")


@check("rest.unknown_parameter_order")
def unknown_param_order(ctx: Ctx) -> None:
    px = ctx.last_price() * Decimal("0.9")
    r = ctx.order(side="BUY", type="LIMIT", timeInForce="GTC", quantity=ctx.sym.qty(px), price=ctx.sym.price(px), fooBar="1")
    if r.status == 200:
        ctx.cancel(r.body["orderId"])
    expect_error(r, 400, -1104, msg_prefix="Not all sent parameters were read; read '")
    m = re.fullmatch(r"Not all sent parameters were read; read '(\d+)' parameter\(s\) but was sent '(\d+)'\.", r.body["msg"])
    expect(m and int(m.group(1)) + 1 == int(m.group(2)), f"-1104 message counts: {r.body['msg']!r}")


@check("rest.unknown_parameter_account")
def unknown_param_account(ctx: Ctx) -> None:
    r = ctx.rest.get("/api/v3/account", {"fooBar": "1"}, signed=True)
    expect_error(r, 400, -1104, msg_prefix="Not all sent parameters were read")


@check("rest.unknown_parameter_public")
def unknown_param_public(ctx: Ctx) -> None:
    r = ctx.rest.get("/api/v3/depth", {"symbol": ctx.sym.symbol, "depth": "5"})
    expect_error(r, 400, -1104, "Not all sent parameters were read; read '1' parameter(s) but was sent '2'.", what="GET /api/v3/depth with depth=5 (not a parameter)")


# ---------------------------------------------------------------- stops


WRONG_SIDE = [
    # (type, side, stop factor vs last price): the trigger is already met.
    ("STOP_LOSS_LIMIT", "BUY", "0.95"),
    ("STOP_LOSS_LIMIT", "SELL", "1.05"),
    ("TAKE_PROFIT_LIMIT", "BUY", "1.05"),
    ("TAKE_PROFIT_LIMIT", "SELL", "0.95"),
    ("STOP_LOSS", "SELL", "1.05"),
    ("TAKE_PROFIT", "SELL", "0.95"),
]


def wrong_side_case(order_type: str, side: str, factor: str) -> Callable[[Ctx], None]:
    def run(ctx: Ctx) -> None:
        if side == "SELL":
            ctx.ensure_base(Decimal(ctx.sym.qty(ctx.last_price())))
        last = ctx.last_price()
        stop = ctx.sym.price(last * Decimal(factor), up=Decimal(factor) > 1)
        p: dict[str, Any] = dict(side=side, type=order_type, quantity=ctx.sym.qty(last), stopPrice=stop)
        if order_type.endswith("_LIMIT"):
            p.update(timeInForce="GTC", price=stop)
        r = ctx.order(**p)
        if r.status == 200:
            ctx.cancel(r.body["orderId"])
        expect_error(r, 400, -2010, "Order would trigger immediately.", what=f"{side} {order_type} stop {stop} vs last {last}")

    return run


for _t, _s, _f in WRONG_SIDE:
    register(f"rest.stop_wrong_side.{_t.lower()}_{_s.lower()}", wrong_side_case(_t, _s, _f))


@check("rest.stop_untriggered_not_working")
def stop_not_working(ctx: Ctx) -> None:
    last = ctx.last_price()
    stop = ctx.sym.price(last * Decimal("1.05"), up=True)
    r = ctx.order(side="BUY", type="STOP_LOSS_LIMIT", timeInForce="GTC", quantity=ctx.sym.qty(last), stopPrice=stop, price=stop)
    o = r.json_ok(f"BUY STOP_LOSS_LIMIT stop {stop} above last {last}")
    try:
        q = ctx.query(o["orderId"])
        expect_eq(q["status"], "NEW", "status of an untriggered stop")
        expect_eq(q["isWorking"], False, "isWorking of an untriggered stop (docs: false until it triggers)")
        expect_eq(Decimal(q["stopPrice"]), Decimal(stop), "stopPrice echo")
    finally:
        ctx.cancel(o["orderId"])


@check("rest.stop_order_default_ack")
def stop_default_ack(ctx: Ctx) -> None:
    last = ctx.last_price()
    stop = ctx.sym.price(last * Decimal("1.05"), up=True)
    r = ctx.order(side="BUY", type="STOP_LOSS_LIMIT", timeInForce="GTC", quantity=ctx.sym.qty(last), stopPrice=stop, price=stop)
    o = r.json_ok("BUY STOP_LOSS_LIMIT")
    ctx.cancel(o["orderId"])
    keys_exactly(o, ACK_KEYS, "STOP_LOSS_LIMIT response (newOrderRespType defaults to ACK for types other than LIMIT/MARKET)", conditional=False)


def stop_market_case(order_type: str, factor: str) -> Callable[[Ctx], None]:
    def run(ctx: Ctx) -> None:
        last = ctx.last_price()
        qty = ctx.sym.qty(last)
        ctx.ensure_base(Decimal(qty))
        stop = ctx.sym.price(last * Decimal(factor), up=Decimal(factor) > 1)
        r = ctx.order(side="SELL", type=order_type, quantity=qty, stopPrice=stop)
        o = r.json_ok(f"SELL {order_type} stop {stop} vs last {last}")
        try:
            q = ctx.query(o["orderId"])
            expect_eq(q["type"], order_type, "type echo")
            expect_eq(q["status"], "NEW", "status of an untriggered stop")
            expect_eq(q["isWorking"], False, "isWorking until triggered")
        finally:
            ctx.cancel(o["orderId"])

    return run


register("rest.stop_loss_market_order", stop_market_case("STOP_LOSS", "0.95"))
register("rest.take_profit_market_order", stop_market_case("TAKE_PROFIT", "1.05"))


# ---------------------------------------------------------------- client order ids


@check("rest.client_order_id_duplicate_while_open")
def cid_duplicate(ctx: Ctx) -> None:
    cid = client_id("dup")
    o = ctx.resting_buy(cid)
    try:
        px = ctx.last_price() * Decimal("0.9")
        r = ctx.order(side="BUY", type="LIMIT", timeInForce="GTC", quantity=ctx.sym.qty(px), price=ctx.sym.price(px), newClientOrderId=cid)
        if r.status == 200:
            ctx.cancel(r.body["orderId"])
        expect_error(r, 400, -2010, "Duplicate order sent.", what="a second order with an open order's newClientOrderId")
    finally:
        ctx.cancel(o["orderId"])


@check("rest.client_order_id_reusable_after_cancel")
def cid_reuse_cancel(ctx: Ctx) -> None:
    cid = client_id("rc")
    o = ctx.resting_buy(cid)
    ctx.cancel(o["orderId"]).json_ok("cancel")
    r = ctx.order(
        side="BUY", type="LIMIT", timeInForce="GTC", quantity=o["origQty"], price=o["price"], newClientOrderId=cid
    )
    if r.status == 200:
        ctx.cancel(r.body["orderId"])
    expect(r.status == 200, f"reusing the clientOrderId of a CANCELED order (unique among open orders only): {r.describe()}")


@check("rest.client_order_id_reusable_after_fill")
def cid_reuse_fill(ctx: Ctx) -> None:
    cid = client_id("rf")
    first = ctx.market_buy(cid)
    expect_eq(first["status"], "FILLED", "first MARKET order")
    px = ctx.last_price()
    r = ctx.order(side="BUY", type="MARKET", quantity=ctx.sym.qty(px), newClientOrderId=cid)
    expect(r.status == 200, f"reusing the clientOrderId of a FILLED order: {r.describe()}")


def cid_illegal_case(cid: str) -> Callable[[Ctx], None]:
    def run(ctx: Ctx) -> None:
        px = ctx.last_price() * Decimal("0.9")
        r = ctx.order(side="BUY", type="LIMIT", timeInForce="GTC", quantity=ctx.sym.qty(px), price=ctx.sym.price(px), newClientOrderId=cid)
        if r.status == 200:
            ctx.cancel(r.body["orderId"])
        expect_error(
            r, 400, -1100, f"Illegal characters found in parameter 'newClientOrderId'; legal range is '{CID_RANGE}'.",
            what=f"newClientOrderId {cid!r}",
        )

    return run


register("rest.client_order_id_illegal_chars", cid_illegal_case("bad id!"))
register("rest.client_order_id_too_long", cid_illegal_case("a" * 37))


# ---------------------------------------------------------------- STP, iceberg, flags, order types


@check("exchangeinfo.symbol_fields")
def symbol_fields(ctx: Ctx) -> None:
    expect_keys(ctx.sym.raw, SYMBOL_KEYS, f"exchangeInfo symbol {ctx.sym.symbol}")


@check("exchangeinfo.order_types_complete")
def order_types_complete(ctx: Ctx) -> None:
    listed = ctx.sym.raw.get("orderTypes", [])
    missing = [t for t in ALL_ORDER_TYPES if t not in listed]
    expect(not missing, f"orderTypes {listed} lacks {missing} (Binance lists all seven spot types; STOP_LOSS and TAKE_PROFIT are to be served)")


def order_type_case(order_type: str) -> Callable[[Ctx], None]:
    def run(ctx: Ctx) -> None:
        listed = order_type in ctx.sym.raw.get("orderTypes", [])
        p = type_params(ctx, order_type, ctx.last_price())
        if listed:
            r = ctx.rest.call("POST", "/api/v3/order/test", {"symbol": ctx.sym.symbol, "type": order_type, **p}, signed=True)
            expect(r.status == 200, f"{order_type} is in orderTypes but order/test refuses it: {r.describe()}")
        else:
            if p["side"] == "SELL":
                ctx.ensure_base(Decimal(p["quantity"]))
            r = ctx.order(type=order_type, **p)
            if r.status == 200:
                ctx.cancel(r.body["orderId"])
            if order_type in NOT_SUPPORTED:
                expect_error(r, 400, -2010, NOT_SUPPORTED[order_type], what=f"{order_type} (not in orderTypes)")
            else:
                expect(400 <= r.status < 500, f"{order_type} is not in orderTypes but was accepted: {r.describe()}")

    return run


for _t in ALL_ORDER_TYPES:
    register(f"exchangeinfo.order_type_honoured.{_t.lower()}", order_type_case(_t))


@check("rest.stp_mode_not_allowed")
def stp_not_allowed(ctx: Ctx) -> None:
    allowed = ctx.sym.raw.get("allowedSelfTradePreventionModes", [])
    refused = [m for m in STP_MODES if m not in allowed]
    expect(refused, f"every STP mode is allowed ({allowed}); nothing to refuse")
    mode = refused[-1]
    p = type_params(ctx, "LIMIT", ctx.last_price())
    r = ctx.order(type="LIMIT", selfTradePreventionMode=mode, **p)
    if r.status == 200:
        ctx.cancel(r.body["orderId"])
    expect_error(r, 400, -1013, "This symbol does not allow the specified self-trade prevention mode.", what=f"selfTradePreventionMode={mode} (allowed {allowed})")


@check("rest.stp_modes_allowed_accepted")
def stp_allowed(ctx: Ctx) -> None:
    allowed = ctx.sym.raw.get("allowedSelfTradePreventionModes", [])
    expect(allowed, "allowedSelfTradePreventionModes is empty")
    p = type_params(ctx, "LIMIT", ctx.last_price())
    for mode in allowed:
        r = ctx.rest.call("POST", "/api/v3/order/test", {"symbol": ctx.sym.symbol, "type": "LIMIT", "selfTradePreventionMode": mode, **p}, signed=True)
        expect(r.status == 200, f"allowed mode {mode} refused by order/test: {r.describe()}")


def refused_with(r: Any, text: str) -> bool:
    return r.status >= 400 and text in json.dumps(r.body)


@check("exchangeinfo.flag_iceberg_allowed")
def flag_iceberg(ctx: Ctx) -> None:
    flag = ctx.sym.raw.get("icebergAllowed")
    expect(isinstance(flag, bool), f"icebergAllowed is {flag!r}")
    px = ctx.last_price() * Decimal("0.9")
    qty = Decimal(ctx.sym.qty(px, Decimal("30")))
    ice = (qty / 2 / ctx.sym.step).to_integral_value() * ctx.sym.step
    p = dict(side="BUY", type="LIMIT", timeInForce="GTC", quantity=f"{qty:f}", price=ctx.sym.price(px), icebergQty=f"{ice:f}")
    if flag:
        r = ctx.rest.call("POST", "/api/v3/order/test", {"symbol": ctx.sym.symbol, **p}, signed=True)
        expect(r.status == 200, f"icebergAllowed=true but an iceberg order is refused: {r.describe()}")
    else:
        r = ctx.order(**p)
        if r.status == 200:
            ctx.cancel(r.body["orderId"])
        expect_error(r, 400, -2010, "Iceberg orders are not supported for this symbol.", what="icebergQty with icebergAllowed=false")


@check("exchangeinfo.flag_quote_order_qty_market_allowed")
def flag_quote_qty(ctx: Ctx) -> None:
    flag = ctx.sym.raw.get("quoteOrderQtyMarketAllowed")
    r = ctx.rest.call("POST", "/api/v3/order/test", {"symbol": ctx.sym.symbol, "side": "BUY", "type": "MARKET", "quoteOrderQty": "20"}, signed=True)
    if flag:
        expect(r.status == 200, f"quoteOrderQtyMarketAllowed=true but refused: {r.describe()}")
    else:
        expect(refused_with(r, "Quote order qty market orders are not support for this symbol."), f"quoteOrderQtyMarketAllowed=false but: {r.describe()}")


@check("exchangeinfo.flag_allow_trailing_stop")
def flag_trailing(ctx: Ctx) -> None:
    flag = ctx.sym.raw.get("allowTrailingStop")
    last = ctx.last_price()
    below = ctx.sym.price(last * Decimal("0.95"))
    p = dict(side="SELL", type="STOP_LOSS_LIMIT", timeInForce="GTC", quantity=ctx.sym.qty(last), price=below, trailingDelta=200)
    if flag:
        r = ctx.rest.call("POST", "/api/v3/order/test", {"symbol": ctx.sym.symbol, **p}, signed=True)
        expect(r.status == 200, f"allowTrailingStop=true but trailingDelta refused: {r.describe()}")
    else:
        ctx.ensure_base(Decimal(p["quantity"]))
        r = ctx.order(**p)
        if r.status == 200:
            ctx.cancel(r.body["orderId"])
        expect_error(r, 400, -2010, "Trailing stop orders are not supported for this symbol.", what="trailingDelta with allowTrailingStop=false")


@check("exchangeinfo.flag_cancel_replace_allowed")
def flag_cancel_replace(ctx: Ctx) -> None:
    flag = ctx.sym.raw.get("cancelReplaceAllowed")
    expect_eq(flag, True, "cancelReplaceAllowed (order/cancelReplace is to be served)")
    o = ctx.resting_buy()
    r = cancel_replace(ctx, o, Decimal("0.89"))
    if r.status == 200:
        ctx.cancel(r.body["newOrderResponse"]["orderId"])
    else:
        ctx.cancel(o["orderId"])
    expect(r.status == 200, f"cancelReplaceAllowed=true but POST /api/v3/order/cancelReplace: {r.describe()}")


@check("exchangeinfo.flag_oco_allowed")
def flag_oco(ctx: Ctx) -> None:
    flag = ctx.sym.raw.get("ocoAllowed")
    last = ctx.last_price()
    qty = ctx.sym.qty(last)
    ctx.ensure_base(Decimal(qty))
    ctx.pacer.take(2)
    r = ctx.rest.call(
        "POST",
        "/api/v3/orderList/oco",
        {
            "symbol": ctx.sym.symbol, "side": "SELL", "quantity": qty,
            "aboveType": "LIMIT_MAKER", "abovePrice": ctx.sym.price(last * Decimal("1.1"), up=True),
            "belowType": "STOP_LOSS", "belowStopPrice": ctx.sym.price(last * Decimal("0.9")),
        },
        signed=True,
    )
    if r.status == 200 and isinstance(r.body, dict):
        ctx.rest.call("DELETE", "/api/v3/orderList", {"symbol": ctx.sym.symbol, "orderListId": r.body.get("orderListId")}, signed=True)
    if flag:
        expect(r.status == 200, f"ocoAllowed=true but POST /api/v3/orderList/oco: {r.describe()}")
    else:
        expect_error(r, 400, -2010, "OCO orders are not supported for this symbol", what="orderList/oco with ocoAllowed=false")


@check("exchangeinfo.flag_amend_allowed")
def flag_amend(ctx: Ctx) -> None:
    flag = ctx.sym.raw.get("amendAllowed")
    px = ctx.last_price() * Decimal("0.9")
    qty = Decimal(ctx.sym.qty(px, Decimal("30")))
    o = ctx.order(side="BUY", type="LIMIT", timeInForce="GTC", quantity=f"{qty:f}", price=ctx.sym.price(px)).json_ok("resting buy")
    new_qty = (qty / 2 / ctx.sym.step).to_integral_value() * ctx.sym.step
    r = ctx.rest.call(
        "PUT", "/api/v3/order/amend/keepPriority", {"symbol": ctx.sym.symbol, "orderId": o["orderId"], "newQty": f"{new_qty:f}"}, signed=True
    )
    ctx.cancel(o["orderId"])
    if flag:
        expect(r.status == 200, f"amendAllowed=true but PUT /api/v3/order/amend/keepPriority: {r.describe()}")
    else:
        expect(refused_with(r, "Order amend is not supported for this symbol."), f"amendAllowed=false but keepPriority: {r.describe()}")


# ---------------------------------------------------------------- cancelReplace


def cancel_replace(ctx: Ctx, o: dict[str, Any], factor: Decimal, mode: str = "STOP_ON_FAILURE", **extra: Any) -> Any:
    px = ctx.last_price() * factor
    ctx.pacer.take()
    return ctx.rest.call(
        "POST",
        "/api/v3/order/cancelReplace",
        {
            "symbol": ctx.sym.symbol, "side": "BUY", "type": "LIMIT", "timeInForce": "GTC", "cancelReplaceMode": mode,
            "quantity": o["origQty"], "price": ctx.sym.price(px), **({"cancelOrderId": o["orderId"]} if o else {}), **extra,
        },
        signed=True,
    )


@check("rest.cancel_replace")
def rest_cancel_replace(ctx: Ctx) -> None:
    o = ctx.resting_buy()
    r = cancel_replace(ctx, o, Decimal("0.88"))
    if r.status != 200:
        ctx.cancel(o["orderId"])
    body = r.json_ok("POST /api/v3/order/cancelReplace")
    try:
        expect_keys(body, ["cancelResult", "newOrderResult", "cancelResponse", "newOrderResponse"], "cancelReplace")
        expect_eq((body["cancelResult"], body["newOrderResult"]), ("SUCCESS", "SUCCESS"), "cancelResult/newOrderResult")
        expect_eq(body["cancelResponse"]["status"], "CANCELED", "cancelResponse.status")
        expect_eq(body["cancelResponse"]["orderId"], o["orderId"], "cancelResponse.orderId")
        expect_eq(body["newOrderResponse"]["status"], "NEW", "newOrderResponse.status")
        expect_eq(ctx.query(o["orderId"])["status"], "CANCELED", "the replaced order's status")
    finally:
        ctx.cancel(body["newOrderResponse"]["orderId"])


@check("rest.cancel_replace_cancel_fails")
def rest_cancel_replace_fail(ctx: Ctx) -> None:
    px = ctx.last_price() * Decimal("0.9")
    fake = {"orderId": 1, "origQty": ctx.sym.qty(px)}
    r = cancel_replace(ctx, fake, Decimal("0.9"))
    if r.status == 200:
        ctx.cancel(r.body["newOrderResponse"]["orderId"])
    expect_error(r, 400, -2022, "Order cancel-replace failed.", what="cancelReplace of an unknown order, STOP_ON_FAILURE")
    data = r.body.get("data", {})
    expect_eq((data.get("cancelResult"), data.get("newOrderResult")), ("FAILURE", "NOT_ATTEMPTED"), "data.cancelResult/newOrderResult")
    expect_eq(data.get("cancelResponse", {}).get("code"), -2011, "data.cancelResponse.code")


# ---------------------------------------------------------------- history windows


def two_orders(ctx: Ctx) -> tuple[dict[str, Any], dict[str, Any]]:
    a = ctx.resting_buy()
    time.sleep(0.03)
    b = ctx.resting_buy()
    while b["transactTime"] == a["transactTime"]:
        ctx.cancel(b["orderId"])
        time.sleep(0.03)
        b = ctx.resting_buy()
    return a, b


@check("rest.all_orders_time_window")
def all_orders_window(ctx: Ctx) -> None:
    a, b = two_orders(ctx)
    try:
        def ids(**p: Any) -> list[int]:
            r = ctx.rest.get("/api/v3/allOrders", {"symbol": ctx.sym.symbol, **p}, signed=True).json_ok("GET /api/v3/allOrders")
            return [o["orderId"] for o in r]

        only_a = ids(startTime=a["transactTime"], endTime=a["transactTime"])
        expect(a["orderId"] in only_a and b["orderId"] not in only_a, f"startTime=endTime=A's time returned {only_a} (A={a['orderId']}, B={b['orderId']})")
        from_b = ids(startTime=b["transactTime"])
        expect(b["orderId"] in from_b and a["orderId"] not in from_b, f"startTime=B's time returned {from_b}")
        to_a = ids(endTime=a["transactTime"], limit=1000)
        expect(a["orderId"] in to_a and b["orderId"] not in to_a, "endTime=A's time returned B")
    finally:
        ctx.cancel(a["orderId"])
        ctx.cancel(b["orderId"])


@check("rest.all_orders_window_over_24h")
def all_orders_24h(ctx: Ctx) -> None:
    now = ctx.server_now()
    r = ctx.rest.get("/api/v3/allOrders", {"symbol": ctx.sym.symbol, "startTime": now - DAY_MS - 3600_000, "endTime": now}, signed=True)
    expect_error(r, 400, -1127, "More than 24 hours between startTime and endTime.")


@check("rest.my_trades_time_window")
def my_trades_window(ctx: Ctx) -> None:
    x = ctx.market_buy()
    time.sleep(0.03)
    y = ctx.market_buy()
    while y["transactTime"] == x["transactTime"]:
        time.sleep(0.03)
        y = ctx.market_buy()

    def orders(**p: Any) -> set[int]:
        r = ctx.rest.get("/api/v3/myTrades", {"symbol": ctx.sym.symbol, **p}, signed=True).json_ok("GET /api/v3/myTrades")
        for t in r:
            expect_keys(t, MY_TRADE_KEYS, "myTrades entry")
        return {t["orderId"] for t in r}

    w = orders(startTime=x["transactTime"], endTime=x["transactTime"])
    expect(x["orderId"] in w and y["orderId"] not in w, f"startTime=endTime=X's time: orders {sorted(w)} (X={x['orderId']}, Y={y['orderId']})")
    e = orders(endTime=x["transactTime"])
    expect(x["orderId"] in e and y["orderId"] not in e, f"endTime=X's time (endTime alone): orders {sorted(e)} include Y={y['orderId']}")


@check("rest.my_trades_window_over_24h")
def my_trades_24h(ctx: Ctx) -> None:
    now = ctx.server_now()
    r = ctx.rest.get("/api/v3/myTrades", {"symbol": ctx.sym.symbol, "startTime": now - DAY_MS - 3600_000, "endTime": now}, signed=True)
    expect_error(r, 400, -1127, "More than 24 hours between startTime and endTime.")


# ---------------------------------------------------------------- commissions, account


@check("rest.order_test_empty")
def order_test_empty(ctx: Ctx) -> None:
    p = type_params(ctx, "LIMIT", ctx.last_price())
    r = ctx.rest.call("POST", "/api/v3/order/test", {"symbol": ctx.sym.symbol, "type": "LIMIT", **p}, signed=True)
    expect_eq(r.json_ok("POST /api/v3/order/test"), {}, "order/test body")


@check("rest.order_test_compute_commission_rates")
def order_test_commission(ctx: Ctx) -> None:
    p = type_params(ctx, "LIMIT", ctx.last_price())
    r = ctx.rest.call(
        "POST", "/api/v3/order/test", {"symbol": ctx.sym.symbol, "type": "LIMIT", "computeCommissionRates": "true", **p}, signed=True
    )
    body = r.json_ok("POST /api/v3/order/test computeCommissionRates=true")
    expect_keys(body, ["standardCommissionForOrder", "specialCommissionForOrder", "taxCommissionForOrder", "discount"], "order/test with computeCommissionRates")
    for k in ("standardCommissionForOrder", "specialCommissionForOrder", "taxCommissionForOrder"):
        expect_keys(body[k], ["maker", "taker"], k)
    expect_keys(body["discount"], ["enabledForAccount", "enabledForSymbol", "discountAsset", "discount"], "discount")
    com = ctx.rest.get("/api/v3/account/commission", {"symbol": ctx.sym.symbol}, signed=True).json_ok("GET /api/v3/account/commission")
    expect_eq(
        {k: Decimal(v) for k, v in body["standardCommissionForOrder"].items()},
        {k: Decimal(com["standardCommission"][k]) for k in ("maker", "taker")},
        "order/test standard rates vs account/commission",
    )


@check("rest.account_commission")
def account_commission(ctx: Ctx) -> None:
    com = ctx.rest.get("/api/v3/account/commission", {"symbol": ctx.sym.symbol}, signed=True).json_ok("GET /api/v3/account/commission")
    expect_keys(com, ["symbol", "standardCommission", "specialCommission", "taxCommission", "discount"], "account/commission")
    for k in ("standardCommission", "specialCommission", "taxCommission"):
        expect_keys(com[k], ["maker", "taker", "buyer", "seller"], k)
    acc = ctx.rest.get("/api/v3/account", signed=True).json_ok("GET /api/v3/account")
    rates = acc.get("commissionRates", {})
    expect_eq(Decimal(com["standardCommission"]["maker"]), Decimal(rates.get("maker", "-1")), "account/commission maker vs account.commissionRates.maker")
    expect_eq(Decimal(com["standardCommission"]["taker"]), Decimal(rates.get("taker", "-1")), "account/commission taker vs account.commissionRates.taker")


@check("rest.account_fields")
def account_fields(ctx: Ctx) -> None:
    acc = ctx.rest.get("/api/v3/account", signed=True).json_ok("GET /api/v3/account")
    expect_keys(acc, ACCOUNT_KEYS, "account")
    expect_keys(acc["commissionRates"], ["maker", "taker", "buyer", "seller"], "account.commissionRates")


@check("rest.order_count_headers")
def order_count_headers(ctx: Ctx) -> None:
    ctx.pacer.take(2)
    a = ctx.rest.call("POST", "/api/v3/order", {"symbol": ctx.sym.symbol, **type_params(ctx, "LIMIT", ctx.last_price()), "type": "LIMIT"}, signed=True)
    b = ctx.rest.call("POST", "/api/v3/order", {"symbol": ctx.sym.symbol, **type_params(ctx, "LIMIT", ctx.last_price()), "type": "LIMIT"}, signed=True)
    for r in (a, b):
        if r.status == 200:
            ctx.cancel(r.body["orderId"])
    a.json_ok("first order")
    b.json_ok("second order")
    for name in ("x-mbx-order-count-10s", "x-mbx-order-count-1d"):
        va, vb = a.header_int(name), b.header_int(name)
        expect(va is not None and vb is not None, f"no {name} header on a successful order (headers: {sorted(a.headers)})")
        assert va is not None and vb is not None
        if name.endswith("1d"):
            expect(vb >= va + 1, f"{name} went {va} -> {vb} over two orders")
        else:
            expect(vb >= va + 1 or vb == 1, f"{name} went {va} -> {vb} over two orders")
