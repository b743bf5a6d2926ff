"""Raw clients written from Binance's documentation: a signed REST client, a
WebSocket API client (HMAC or Ed25519 signatures), a market-stream client,
plus the symbol's filters and a pacer that keeps the session under the
ORDERS limit. The third-party clients (ccxt, python-binance) are built in
their own check modules, changed only in their base URLs.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import itertools
import json
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from decimal import ROUND_DOWN, ROUND_UP, Decimal
from typing import Any, Callable

import requests
import websockets

from harness import CheckFailed, short


@dataclass
class Endpoint:
    """Where the Binance-protocol endpoint listens and the keys to use."""

    rest: str  # e.g. http://127.0.0.1:1234 (the /api/v3 paths are appended)
    ws: str  # market streams base, e.g. ws://127.0.0.1:1234 (+ /ws/<s>, /stream?streams=)
    ws_api: str  # full WebSocket API URL, e.g. ws://127.0.0.1:1234/ws-api/v3
    api_key: str
    api_secret: str
    ed25519_api_key: str | None = None
    ed25519_private_key_path: str | None = None

    @staticmethod
    def from_ready(ready: dict[str, Any]) -> "Endpoint":
        """From the `SANDBOX_READY {json}` line of `keel sandbox`."""
        return Endpoint(
            rest=ready["rest_url"].rstrip("/"),
            ws=ready["ws_stream_url"].rstrip("/"),
            ws_api=ready["ws_api_url"],
            api_key=ready["api_key"],
            api_secret=ready["api_secret"],
            ed25519_api_key=ready.get("ed25519_api_key"),
            ed25519_private_key_path=ready.get("ed25519_private_key_path"),
        )


def now_ms() -> int:
    return int(time.time() * 1000)


# ---------------------------------------------------------------- REST


@dataclass
class Resp:
    """One REST answer: status, lower-case headers, parsed body."""

    status: int
    headers: dict[str, str]
    body: Any

    def describe(self) -> str:
        return f"HTTP {self.status} {short(self.body, 240)}"

    def json_ok(self, what: str) -> Any:
        """The body of a 200, else a failed check naming the answer."""
        if self.status != 200:
            raise CheckFailed(f"{what}: {self.describe()}")
        return self.body

    def header_int(self, name: str) -> int | None:
        v = self.headers.get(name.lower())
        try:
            return int(v) if v is not None else None
        except ValueError:
            return None


class Rest:
    """Binance REST, signed as rest-api.md "SIGNED Endpoint Examples" says:
    HMAC-SHA256 over the percent-encoded query string, key in X-MBX-APIKEY."""

    def __init__(self, base: str, key: str, secret: str, clock: Callable[[], int] = now_ms) -> None:
        self.base = base.rstrip("/")
        self.key = key
        self.secret = secret
        self.clock = clock
        self.session = requests.Session()

    def sign(self, query: str) -> str:
        return hmac.new(self.secret.encode(), query.encode(), hashlib.sha256).hexdigest()

    def call(
        self,
        method: str,
        path: str,
        params: dict[str, Any] | list[tuple[str, Any]] | None = None,
        signed: bool = False,
        timestamp: int | None = None,
        with_key: bool = False,
        timeout: float = 10.0,
    ) -> Resp:
        pairs = list(params.items()) if isinstance(params, dict) else list(params or [])
        pairs = [(k, fmt(v)) for k, v in pairs if v is not None]
        headers = {}
        if signed:
            pairs.append(("timestamp", str(timestamp if timestamp is not None else self.clock())))
        query = urllib.parse.urlencode(pairs)
        if signed:
            query += ("&" if query else "") + "signature=" + self.sign(query)
        if signed or with_key:
            headers["X-MBX-APIKEY"] = self.key
        url = self.base + path + ("?" + query if query else "")
        r = self.session.request(method, url, headers=headers, timeout=timeout)
        try:
            body: Any = r.json()
        except ValueError:
            body = r.text
        return Resp(r.status_code, {k.lower(): v for k, v in r.headers.items()}, body)

    def get(self, path: str, params: Any = None, **kw: Any) -> Resp:
        return self.call("GET", path, params, **kw)


def fmt(v: Any) -> str:
    """A parameter value as Binance expects it (booleans lower case)."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (list, dict)):
        return json.dumps(v, separators=(",", ":"))
    return str(v)


def expect_error(resp: Resp, http: int, code: int, msg: str | None = None, msg_prefix: str | None = None, what: str = "") -> None:
    """Fails unless `resp` is the documented error: HTTP status, code and
    message (exact, or by prefix where the docs give a template)."""
    body = resp.body if isinstance(resp.body, dict) else {}
    ok = resp.status == http and body.get("code") == code
    if ok and msg is not None:
        ok = body.get("msg") == msg
    if ok and msg_prefix is not None:
        ok = isinstance(body.get("msg"), str) and body["msg"].startswith(msg_prefix)
    if not ok:
        want = {"code": code, "msg": msg if msg is not None else (msg_prefix + "…" if msg_prefix else "…")}
        raise CheckFailed(f"{what + ': ' if what else ''}got {resp.describe()}; documented HTTP {http} {json.dumps(want)}")


# ---------------------------------------------------------------- symbol filters


@dataclass
class SymbolInfo:
    """A symbol's exchangeInfo entry and the filters orders must respect."""

    raw: dict[str, Any]
    symbol: str
    base: str
    quote: str
    tick: Decimal
    step: Decimal
    min_qty: Decimal
    min_notional: Decimal

    @staticmethod
    def parse(raw: dict[str, Any]) -> "SymbolInfo":
        f = {x["filterType"]: x for x in raw.get("filters", [])}
        notional = f.get("NOTIONAL", {}).get("minNotional") or f.get("MIN_NOTIONAL", {}).get("minNotional") or "0"
        return SymbolInfo(
            raw=raw,
            symbol=raw["symbol"],
            base=raw["baseAsset"],
            quote=raw["quoteAsset"],
            tick=Decimal(f["PRICE_FILTER"]["tickSize"]).normalize(),
            step=Decimal(f["LOT_SIZE"]["stepSize"]).normalize(),
            min_qty=Decimal(f["LOT_SIZE"]["minQty"]),
            min_notional=Decimal(notional),
        )

    def price(self, x: Decimal, up: bool = False) -> str:
        """`x` on the tick grid (down unless `up`)."""
        q = (x / self.tick).to_integral_value(rounding=ROUND_UP if up else ROUND_DOWN) * self.tick
        return f"{q.quantize(self.tick):f}"

    def qty(self, price: Decimal, notional: Decimal = Decimal("12")) -> str:
        """The smallest step-grid quantity worth at least `notional` (and the
        symbol's minimum notional) at `price`."""
        want = max(notional, self.min_notional * Decimal("1.2")) / price
        q = (want / self.step).to_integral_value(rounding=ROUND_UP) * self.step
        q = max(q, self.min_qty)
        return f"{q.quantize(self.step):f}"

    @property
    def lower(self) -> str:
        return self.symbol.lower()


# ---------------------------------------------------------------- order pacing


class OrderPacer:
    """Keeps the session's new orders under the ORDERS 10 s limit (fixed
    windows at :00, :10, … of the server clock), so no check fails for
    another check's orders. Thread-safe; one instance per endpoint."""

    def __init__(self, clock: Callable[[], int], per_window: int) -> None:
        self.clock = clock
        self.per_window = per_window
        self.lock = threading.Lock()
        self.window = -1
        self.count = 0

    def reserve(self, n: int = 1) -> float:
        """Reserves `n` orders; returns the seconds to wait before sending."""
        with self.lock:
            now = self.clock()
            w = now // 10_000
            if w != self.window:
                self.window, self.count = w, 0
            if self.count + n <= self.per_window:
                self.count += n
                return 0.0
            # Next window.
            self.window, self.count = w + 1, n
            return ((w + 1) * 10_000 - now) / 1000 + 0.05

    def take(self, n: int = 1) -> None:
        wait = self.reserve(n)
        if wait > 0:
            time.sleep(wait)

    async def atake(self, n: int = 1) -> None:
        wait = self.reserve(n)
        if wait > 0:
            await asyncio.sleep(wait)


_ids = itertools.count(1)
_run = format(int(time.time() * 1000) % 0xFFFFFF, "x")


def client_id(tag: str) -> str:
    """A fresh legal clientOrderId (^[a-zA-Z0-9-_]{1,36}$), unique per run."""
    return f"cf{tag}{_run}x{next(_ids)}"[:36]


# ---------------------------------------------------------------- WebSocket API


def ws_payload(params: dict[str, Any]) -> str:
    """web-socket-api.md "SIGNED request security": every parameter but
    `signature`, sorted by name, `k=v` joined by `&`, raw UTF-8 values."""
    return "&".join(f"{k}={fmt(v)}" for k, v in sorted(params.items()) if k != "signature")


class Ed25519Signer:
    """Signs with an Ed25519 private key (PEM); signatures are base64."""

    def __init__(self, pem_path: str) -> None:
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

        with open(pem_path, "rb") as f:
            key = serialization.load_pem_private_key(f.read(), password=None)
        if not isinstance(key, Ed25519PrivateKey):
            raise CheckFailed(f"{pem_path} is not an Ed25519 private key")
        self.key = key

    def sign(self, payload: str) -> str:
        return base64.b64encode(self.key.sign(payload.encode())).decode()


class WsApi:
    """A WebSocket API connection: requests by id, events kept aside."""

    def __init__(self, url: str, key: str, secret: str, clock: Callable[[], int] = now_ms) -> None:
        self.url = url
        self.key = key
        self.secret = secret
        self.clock = clock
        self.ws: Any = None
        self.events: asyncio.Queue[Any] = asyncio.Queue()
        self.pending: dict[str, Any] = {}
        self.ids = itertools.count(1)

    async def __aenter__(self) -> "WsApi":
        self.ws = await websockets.connect(self.url, open_timeout=10, ping_interval=None, max_size=2**24)
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.ws.close()

    def signed(self, params: dict[str, Any], ed25519: Ed25519Signer | None = None, api_key: str | None = None) -> dict[str, Any]:
        p = dict(params)
        p["apiKey"] = api_key or self.key
        p.setdefault("timestamp", self.clock())
        payload = ws_payload(p)
        if ed25519 is not None:
            p["signature"] = ed25519.sign(payload)
        else:
            p["signature"] = hmac.new(self.secret.encode(), payload.encode(), hashlib.sha256).hexdigest()
        return p

    async def send_raw(self, text: str) -> None:
        await self.ws.send(text)

    async def request(
        self, method: str, params: dict[str, Any] | None = None, signed: bool = False, req_id: Any = None, timeout: float = 10.0
    ) -> dict[str, Any]:
        rid = req_id if req_id is not None else f"cf-{next(self.ids)}"
        msg: dict[str, Any] = {"id": rid, "method": method}
        if params is not None or signed:
            msg["params"] = self.signed(params or {}) if signed else params
        await self.ws.send(json.dumps(msg))
        return await self.reply(rid, timeout)

    async def reply(self, rid: Any, timeout: float = 10.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise CheckFailed(f"no WebSocket API response to request id {rid!r} within {timeout:.0f} s")
            raw = await asyncio.wait_for(self.ws.recv(), left)
            m = json.loads(raw)
            if isinstance(m, dict) and "id" in m and ("status" in m or "result" in m or "error" in m) and "event" not in m:
                if m["id"] == rid:
                    return m
                continue
            await self.events.put(m)

    async def event(self, pred: Callable[[Any], bool], timeout: float) -> Any:
        """The next event (in its `{subscriptionId, event}` wrapper) matching `pred`."""
        deadline = time.monotonic() + timeout
        while True:
            while not self.events.empty():
                m = self.events.get_nowait()
                if pred(m):
                    return m
            left = deadline - time.monotonic()
            if left <= 0:
                raise CheckFailed(f"no matching user-data event within {timeout:.0f} s")
            try:
                raw = await asyncio.wait_for(self.ws.recv(), left)
            except asyncio.TimeoutError:
                continue
            m = json.loads(raw)
            if pred(m):
                return m


def rate_limit(resp: dict[str, Any], kind: str, interval: str, num: int) -> dict[str, Any] | None:
    """The `rateLimits` entry of that type and interval, if reported."""
    for r in resp.get("rateLimits") or []:
        if r.get("rateLimitType") == kind and r.get("interval") == interval and r.get("intervalNum") == num:
            return r
    return None


def ws_ok(resp: dict[str, Any], what: str) -> Any:
    """The `result` of a 200 WebSocket API response, else a failed check."""
    if resp.get("status") != 200:
        raise CheckFailed(f"{what}: got status {resp.get('status')} {short(resp.get('error'), 240)}")
    return resp.get("result")


# ---------------------------------------------------------------- market streams


def is_control_reply(m: Any) -> bool:
    """A reply to a SUBSCRIBE/…/GET_PROPERTY message (or its error), not an event."""
    return isinstance(m, dict) and "stream" not in m and "e" not in m and ("result" in m or "code" in m or "error" in m)


def control_error(m: Any) -> tuple[Any, Any]:
    """(code, msg) of a control-message error: documented top-level
    `{"code","msg"}`; the live servers also wrap it as `{"error":{…}}`."""
    if isinstance(m, dict):
        if isinstance(m.get("error"), dict):
            return m["error"].get("code"), m["error"].get("msg")
        if "code" in m:
            return m.get("code"), m.get("msg")
    return None, None


@dataclass
class Stream:
    """A market-stream connection (raw `/ws/...` or combined `/stream?...`)."""

    url: str
    ws: Any = None
    replies: list[Any] = field(default_factory=list)

    async def __aenter__(self) -> "Stream":
        self.ws = await websockets.connect(self.url, open_timeout=10, ping_interval=None, max_size=2**24)
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.ws.close()

    async def send(self, obj: Any) -> None:
        await self.ws.send(obj if isinstance(obj, str) else json.dumps(obj))

    async def recv(self, timeout: float) -> Any:
        raw = await asyncio.wait_for(self.ws.recv(), timeout)
        return json.loads(raw)

    async def next_event(self, timeout: float, pred: Callable[[Any], bool] = lambda m: True) -> Any:
        """The next event matching `pred` (control replies are kept aside)."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise CheckFailed(f"no event on {self.url.rsplit('/', 1)[-1]} within {timeout:.0f} s")
            try:
                m = await self.recv(left)
            except asyncio.TimeoutError:
                continue
            if is_control_reply(m):
                self.replies.append(m)
                continue
            if pred(m):
                return m

    async def events(self, n: int, timeout: float, pred: Callable[[Any], bool] = lambda m: True) -> list[Any]:
        out = []
        deadline = time.monotonic() + timeout
        while len(out) < n:
            out.append(await self.next_event(max(0.1, deadline - time.monotonic()), pred))
        return out

    async def reply(self, timeout: float = 5.0) -> Any:
        """The next control reply (events in between are dropped)."""
        if self.replies:
            return self.replies.pop(0)
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise CheckFailed(f"no reply to the control message within {timeout:.0f} s")
            try:
                m = await self.recv(left)
            except asyncio.TimeoutError:
                continue
            if is_control_reply(m):
                return m

    async def quiet_for(self, seconds: float, pred: Callable[[Any], bool]) -> Any | None:
        """The first event matching `pred` within `seconds`, or None."""
        deadline = time.monotonic() + seconds
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            try:
                m = await self.recv(left)
            except (asyncio.TimeoutError, TimeoutError):
                return None
            if is_control_reply(m):
                self.replies.append(m)
                continue
            if pred(m):
                return m
