"""Starting and stopping `keel sandbox`, and the session context the checks
share (endpoint, clients, clock offset, the symbol, order pacing)."""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import threading
import time
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from clients import Endpoint, OrderPacer, Rest, Resp, SymbolInfo, client_id, now_ms
from harness import CheckFailed

READY_PREFIX = "SANDBOX_READY "


class SandboxProcess:
    """One `keel sandbox --listen 127.0.0.1:0 --config <file>` child, run in
    its own working directory (where it writes its generated Ed25519 key)."""

    def __init__(self, keel: str, workdir: Path, config_text: str, name: str) -> None:
        self.keel = keel
        self.workdir = workdir
        self.config_text = config_text
        self.name = name
        self.proc: subprocess.Popen[str] | None = None
        self.ready: dict[str, Any] | None = None
        self.log_path = workdir / "sandbox.log"

    def start(self, timeout: float = 60.0) -> dict[str, Any]:
        self.workdir.mkdir(parents=True, exist_ok=True)
        cfg = self.workdir / "config.toml"
        cfg.write_text(self.config_text)
        log = open(self.log_path, "w")
        self.proc = subprocess.Popen(
            [self.keel, "sandbox", "--listen", "127.0.0.1:0", "--config", str(cfg)],
            cwd=self.workdir,
            stdout=subprocess.PIPE,
            stderr=log,
            stdin=subprocess.DEVNULL,
            text=True,
            env={**os.environ, "NO_COLOR": "1"},
        )
        lines: queue.Queue[str | None] = queue.Queue()

        def pump() -> None:
            assert self.proc and self.proc.stdout
            for line in self.proc.stdout:
                lines.put(line)
            lines.put(None)

        threading.Thread(target=pump, daemon=True).start()
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                self.stop()
                raise RuntimeError(f"{self.name}: no SANDBOX_READY line within {timeout:.0f} s (log: {self.log_path})")
            try:
                line = lines.get(timeout=left)
            except queue.Empty:
                continue
            if line is None:
                rc = self.proc.wait()
                raise RuntimeError(f"{self.name}: keel sandbox exited ({rc}) before it was ready; log: {self.log_path}")
            if line.startswith(READY_PREFIX):
                self.ready = json.loads(line[len(READY_PREFIX) :])
                return self.ready

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=5)


@dataclass
class Ctx:
    """What every check gets: the endpoint, a raw REST client on the
    server's clock, the symbol under test and its filters."""

    ep: Endpoint
    symbol: str
    tight: Endpoint | None = None  # a second instance with tight limits (429/418 checks)
    tight_reason: str = ""  # why there is none
    offset_ms: int = 0  # server clock − local clock, measured at start
    _local: threading.local = field(init=False, default_factory=threading.local)
    sym: SymbolInfo = field(init=False)
    other: SymbolInfo | None = field(init=False, default=None)  # a second symbol (combined streams)
    info: dict[str, Any] = field(init=False)
    pacer: OrderPacer = field(init=False)

    def setup(self) -> None:
        """Measures the clock offset and loads exchangeInfo (the session
        cannot run without them; main() reports and stops if this fails)."""
        probe = Rest(self.ep.rest, self.ep.api_key, self.ep.api_secret)
        best = None
        for _ in range(3):
            t0 = now_ms()
            r = probe.get("/api/v3/time")
            t1 = now_ms()
            st = r.json_ok("GET /api/v3/time")["serverTime"]
            cand = (t1 - t0, st - (t0 + t1) // 2)
            best = cand if best is None or cand < best else best
        assert best is not None
        self.offset_ms = best[1]
        self.info = self.rest.get("/api/v3/exchangeInfo").json_ok("GET /api/v3/exchangeInfo")
        syms = {s["symbol"]: s for s in self.info.get("symbols", [])}
        if self.symbol not in syms:
            raise RuntimeError(f"symbol {self.symbol} is not listed by exchangeInfo ({sorted(syms)[:10]})")
        self.sym = SymbolInfo.parse(syms[self.symbol])
        others = [s for s in syms if s != self.symbol and syms[s].get("status") == "TRADING"]
        self.other = SymbolInfo.parse(syms[others[0]]) if others else None
        limit_10s = 50
        for rl in self.info.get("rateLimits", []):
            if rl.get("rateLimitType") == "ORDERS" and rl.get("interval") == "SECOND" and rl.get("intervalNum") == 10:
                limit_10s = int(rl.get("limit", 50))
        self.pacer = OrderPacer(self.server_now, max(1, int(limit_10s * 0.7)))

    @property
    def rest(self) -> Rest:
        """A raw REST client on the server's clock, one per thread (the
        async checks call it from worker threads)."""
        r = getattr(self._local, "rest", None)
        if r is None:
            r = Rest(self.ep.rest, self.ep.api_key, self.ep.api_secret, clock=self.server_now)
            self._local.rest = r
        return r

    def server_now(self) -> int:
        """The server clock in ms, by the offset measured at start."""
        return now_ms() + self.offset_ms

    # ------------------------------------------------------------ helpers

    def last_price(self, sym: SymbolInfo | None = None) -> Decimal:
        s = sym or self.sym
        body = self.rest.get("/api/v3/ticker/price", {"symbol": s.symbol}).json_ok("GET /api/v3/ticker/price")
        return Decimal(body["price"])

    def book(self) -> tuple[Decimal, Decimal]:
        body = self.rest.get("/api/v3/ticker/bookTicker", {"symbol": self.sym.symbol}).json_ok("GET /api/v3/ticker/bookTicker")
        return Decimal(body["bidPrice"]), Decimal(body["askPrice"])

    def order(self, **params: Any) -> Resp:
        """POST /api/v3/order (paced), `symbol` defaulted."""
        params.setdefault("symbol", self.sym.symbol)
        self.pacer.take()
        return self.rest.call("POST", "/api/v3/order", params, signed=True)

    def resting_buy(self, cid: str | None = None, factor: str = "0.9", **extra: Any) -> dict[str, Any]:
        """A LIMIT GTC buy far below the market (rests on the book)."""
        px = self.last_price() * Decimal(factor)
        body = self.order(
            side="BUY",
            type="LIMIT",
            timeInForce="GTC",
            quantity=self.sym.qty(px),
            price=self.sym.price(px),
            newClientOrderId=cid or client_id("rb"),
            **extra,
        ).json_ok("placing a resting LIMIT buy")
        return body

    def cancel(self, order_id: int) -> Resp:
        return self.rest.call("DELETE", "/api/v3/order", {"symbol": self.sym.symbol, "orderId": order_id}, signed=True)

    def query(self, order_id: int) -> dict[str, Any]:
        return self.rest.call("GET", "/api/v3/order", {"symbol": self.sym.symbol, "orderId": order_id}, signed=True).json_ok(
            "GET /api/v3/order"
        )

    def market_buy(self, cid: str | None = None) -> dict[str, Any]:
        px = self.last_price()
        return self.order(
            side="BUY", type="MARKET", quantity=self.sym.qty(px), newClientOrderId=cid or client_id("mb"), newOrderRespType="FULL"
        ).json_ok("placing a MARKET buy")

    def free(self, asset: str) -> Decimal:
        acc = self.rest.get("/api/v3/account", signed=True).json_ok("GET /api/v3/account")
        for b in acc.get("balances", []):
            if b.get("asset") == asset:
                return Decimal(b["free"])
        return Decimal(0)

    def ensure_base(self, qty: Decimal) -> None:
        """Buys the base asset at market until `qty` is free (sell checks)."""
        for _ in range(5):
            if self.free(self.sym.base) >= qty:
                return
            px = self.last_price()
            need = max(qty, Decimal(self.sym.qty(px)))
            self.order(side="BUY", type="MARKET", quantity=f"{need:f}").json_ok("buying the base asset for a sell check")
        raise CheckFailed(f"could not get {qty} {self.sym.base} free for a sell check")
