#!/usr/bin/env python3
"""Coinbase witness: drives `keel sandbox --protocol coinbase --tls` with two
foreign clients, unmodified but for their base URLs — ccxt's `coinbase`
class (the v3 Advanced Trade API) and the official SDK `coinbase-advanced-py`
(`coinbase.rest.RESTClient`, which insists on https: the sandbox's
self-signed certificate is trusted through REQUESTS_CA_BUNDLE) — through a
full session each: products, candles, book, balances, a limit order placed,
listed, previewed, edited and cancelled, a market order filled and seen in
fills, auth errors (a wrong key: 401) and validation errors (success:false
with the reason). ccxt runs with an EC key and with an Ed25519 key (its raw
base64 form); the SDK with both too (PEM). Prints `PASS name` / `FAIL name:
reason` per check and, last, `N passed, M failed`; exit status 1 if any check
failed (2: could not run).

The clients live in a venv the script creates and caches
(`$KEEL_COINBASE_WITNESS_VENV`, default `~/.cache/keel/coinbase-witness-venv`)
with the versions pinned in `tools/coinbase_witness/requirements.txt`; it is
rebuilt when the pins change.

    python3 tools/coinbase_witness.py                     # target/debug/keel
    python3 tools/coinbase_witness.py --keel path/to/keel --only sdk-ec.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import queue
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import uuid
from decimal import Decimal
from pathlib import Path
from typing import Any, Callable

HERE = Path(__file__).resolve().parent
REQUIREMENTS = HERE / "coinbase_witness" / "requirements.txt"
ROOT = HERE.parent
STAMP = ".keel-coinbase-witness-requirements"
IN_VENV = "KEEL_COINBASE_WITNESS_IN_VENV"
READY_PREFIX = "SANDBOX_READY "
PRODUCT = "BTC-USDT"
SYMBOL = "BTC/USDT"
# A minute bar every simulated minute is enough; candles need a few.
CONFIG = "[sandbox]\nticks_per_bar = 60\n"
# Seconds between two requests of a client: Coinbase (and the sandbox)
# allow 30 private requests a second per key; ccxt throttles itself when
# asked, the SDK does not, so its session gets a pacing adapter.
PACE_S = 0.05


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--keel", default=os.environ.get("KEEL_BIN", str(ROOT / "target" / "debug" / "keel")), help="keel binary (default $KEEL_BIN or target/debug/keel)")
    p.add_argument("--only", action="append", default=[], help="report only checks whose name contains this (repeatable; the session still runs the checks they build on)")
    p.add_argument("--venv", default=os.environ.get("KEEL_COINBASE_WITNESS_VENV", str(Path.home() / ".cache" / "keel" / "coinbase-witness-venv")))
    p.add_argument("-v", "--verbose", action="store_true", help="tracebacks of failures")
    return p.parse_args(argv)


# ---------------------------------------------------------------- the venv


def requirements_stamp() -> str:
    h = hashlib.sha256(REQUIREMENTS.read_bytes())
    h.update(f"{sys.version_info.major}.{sys.version_info.minor}".encode())
    return h.hexdigest()


def ensure_venv(venv: Path) -> Path:
    """Creates (or reuses, when its stamp matches the pins) the venv."""
    py = venv / "bin" / "python"
    stamp = venv / STAMP
    want = requirements_stamp()
    if py.exists() and stamp.exists() and stamp.read_text().strip() == want:
        return py
    print(f"coinbase witness: building the client venv in {venv} (pins changed or first run)", file=sys.stderr, flush=True)
    if venv.exists():
        if not (venv / "pyvenv.cfg").exists():
            sys.exit(f"coinbase witness: {venv} exists and is not a venv; set KEEL_COINBASE_WITNESS_VENV elsewhere")
        shutil.rmtree(venv)
    venv.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run([str(py), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "-r", str(REQUIREMENTS)], check=True)
    stamp.write_text(want + "\n")
    return py


# ---------------------------------------------------------------- the sandbox


class Sandbox:
    """One `keel sandbox --protocol coinbase --tls` child in its own working
    dir (where it writes its test key and certificate)."""

    def __init__(self, keel: str, workdir: Path, key_type: str) -> None:
        self.keel, self.workdir, self.key_type = keel, workdir, key_type
        self.proc: subprocess.Popen[str] | None = None
        self.log_path = workdir / "sandbox.log"

    def start(self, timeout: float = 60.0) -> dict[str, Any]:
        self.workdir.mkdir(parents=True, exist_ok=True)
        (self.workdir / "config.toml").write_text(CONFIG)
        log = open(self.log_path, "w")
        cmd = [self.keel, "sandbox", "--listen", "127.0.0.1:0", "--config", "config.toml", "--protocol", "coinbase", "--tls", "--key-type", self.key_type]
        self.proc = subprocess.Popen(cmd, cwd=self.workdir, stdout=subprocess.PIPE, stderr=log, stdin=subprocess.DEVNULL, text=True, env={**os.environ, "NO_COLOR": "1"})
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
                raise RuntimeError(f"no SANDBOX_READY line within {timeout:.0f} s (log: {self.log_path})")
            try:
                line = lines.get(timeout=left)
            except queue.Empty:
                continue
            if line is None:
                raise RuntimeError(f"keel sandbox exited ({self.proc.wait()}) before it was ready; log: {self.log_path}")
            if line.startswith(READY_PREFIX):
                return json.loads(line[len(READY_PREFIX):])

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=5)


# ---------------------------------------------------------------- checks


class Failed(Exception):
    """A check's expectation did not hold."""


def expect(cond: bool, why: str) -> None:
    if not cond:
        raise Failed(why)


def wait_for(what: str, probe: Callable[[], Any], timeout: float = 15.0) -> Any:
    """Polls `probe` until it returns something truthy (the sandbox does a
    queued cancel at its next market tick)."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = probe()
        if last:
            return last
        time.sleep(0.2)
    raise Failed(f"{what}: not within {timeout:.0f} s (last: {last!r})")


class Results:
    def __init__(self, only: list[str], verbose: bool) -> None:
        self.only, self.verbose = only, verbose
        self.passed = self.failed = 0

    def wanted(self, name: str) -> bool:
        return not self.only or any(o in name for o in self.only)

    def run(self, name: str, fn: Callable[[], Any]) -> Any:
        """Runs one check; its value (True when it has none), None when it failed."""
        if not self.wanted(name):
            # Still run (later checks build on it), but neither shown nor counted.
            try:
                value = fn()
            except Exception:
                return None
            return True if value is None else value
        try:
            value = fn()
        except Exception as e:  # a client's exception is a failed check, not a crash
            self.failed += 1
            print(f"FAIL {name}: {type(e).__name__}: {str(e)[:400]}", flush=True)
            if self.verbose:
                traceback.print_exc()
            return None
        self.passed += 1
        print(f"PASS {name}", flush=True)
        return True if value is None else value

    def skip(self, name: str, why: str) -> None:
        """A check that could not run because an earlier one failed: a failure."""
        if self.wanted(name):
            self.failed += 1
            print(f"FAIL {name}: {why}", flush=True)


def foreign_ec_pem() -> str:
    """A P-256 key the sandbox never registered (the wrong-key checks)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP256R1())
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()).decode()


# ---------------------------------------------------------------- ccxt


def ccxt_session(r: Results, prefix: str, ready: dict[str, Any], secret: str) -> None:
    import ccxt

    def client(key_secret: str) -> Any:
        # requests_trust_env: ccxt ignores REQUESTS_CA_BUNDLE unless told to read the environment.
        # ccxt's own throttle, at the witness's pace (see PACE_S).
        ex = ccxt.coinbase({"apiKey": ready["api_key_name"], "secret": key_secret, "enableRateLimit": True, "rateLimit": PACE_S * 1000, "timeout": 15000, "requests_trust_env": True})
        ex.urls["api"] = {"rest": ready["rest_url"]}
        return ex

    ex = client(secret)
    n = lambda s: f"{prefix}.{s}"  # noqa: E731

    def load_markets() -> None:
        markets = ex.load_markets()
        expect(SYMBOL in markets, f"{SYMBOL} not among {sorted(markets)[:10]}")
        m = markets[SYMBOL]
        expect(m["id"] == PRODUCT and m["spot"], f"market {m['id']} spot={m['spot']}")
        expect(m["limits"]["amount"]["min"] and m["limits"]["amount"]["min"] > 0, f"amount min {m['limits']['amount']}")
        expect(m["precision"]["price"] is not None, f"precision {m['precision']}")
        expect(m["taker"] is not None and m["taker"] >= 0, f"taker fee {m['taker']}")

    if r.run(n("load_markets (v2 currencies, exchange rates; v3 products, fee tier)"), load_markets) is None:
        r.skip(n("rest of the session"), "markets did not load")
        return

    def currencies() -> None:
        cur = ex.fetch_currencies()
        expect("BTC" in cur and "USDT" in cur, f"currencies {sorted(cur)}")

    r.run(n("fetch_currencies (v2)"), currencies)

    def fetch_time() -> None:
        for method in ("v2PublicGetTime", "v3PublicGetBrokerageTime"):
            t = ex.fetch_time({"method": method})
            expect(abs(t - ex.milliseconds()) < 120_000, f"{method}: server time {t} vs local {ex.milliseconds()}")

    r.run(n("fetch_time (v2 and v3)"), fetch_time)

    def ohlcv() -> None:
        bars = ex.fetch_ohlcv(SYMBOL, "1m", limit=5)
        expect(len(bars) >= 1, "no candles")
        for t, o, h, lo, c, v in bars:
            expect(lo <= min(o, c) and h >= max(o, c) and v >= 0, f"bar {t} o={o} h={h} l={lo} c={c}")
        expect(bars == sorted(bars), "candles not oldest first after ccxt's parse")

    r.run(n("fetch_ohlcv"), ohlcv)

    def book() -> None:
        ob = ex.fetch_order_book(SYMBOL, 10)
        expect(ob["bids"] and ob["asks"], f"empty book {ob}")
        expect(ob["bids"][0][0] < ob["asks"][0][0], f"crossed book {ob['bids'][0]} {ob['asks'][0]}")
        expect([b[0] for b in ob["bids"]] == sorted((b[0] for b in ob["bids"]), reverse=True), "bids not best first")

    r.run(n("fetch_order_book"), book)

    def ticker() -> None:
        t = ex.fetch_ticker(SYMBOL)
        expect(t["bid"] and t["ask"] and t["bid"] < t["ask"], f"ticker bid {t['bid']} ask {t['ask']}")

    r.run(n("fetch_ticker"), ticker)

    def balances() -> dict[str, Any]:
        v2 = ex.fetch_balance()
        v3 = ex.fetch_balance({"v3": True})
        expect(v2["USDT"]["total"] and v2["USDT"]["total"] > 0, f"v2 USDT {v2.get('USDT')}")
        expect(abs(v3["USDT"]["total"] - v2["USDT"]["total"]) < 1e-6, f"v2 total {v2['USDT']['total']} != v3 {v3['USDT']['total']}")
        expect(abs(v3["USDT"]["free"] + v3["USDT"]["used"] - v3["USDT"]["total"]) < 1e-6, f"v3 {v3['USDT']}")
        return v3

    r.run(n("fetch_balance (v2 accounts and v3 accounts agree)"), balances)

    bid = ex.fetch_order_book(SYMBOL, 5)["bids"][0][0]
    low = float(ex.price_to_precision(SYMBOL, bid * 0.5))
    amount = 0.001

    def place() -> dict[str, Any]:
        o = ex.create_order(SYMBOL, "limit", "buy", amount, low)
        expect(bool(o["id"]), f"no id: {o}")
        return o

    placed = r.run(n("create_order limit buy (rests)"), place)
    if placed is not None:
        oid = placed["id"]

        def listed() -> None:
            open_ids = [o["id"] for o in ex.fetch_open_orders(SYMBOL)]
            expect(oid in open_ids, f"{oid} not in open orders {open_ids}")
            o = ex.fetch_order(oid, SYMBOL)
            expect(o["status"] == "open" and abs(o["price"] - low) < 1e-9 and o["amount"] == amount, f"fetched {o['status']} {o['price']} {o['amount']}")

        r.run(n("fetch_open_orders / fetch_order show it open"), listed)

        def edit() -> None:
            new_price = float(ex.price_to_precision(SYMBOL, low * 0.9))
            ex.edit_order(oid, SYMBOL, "limit", "buy", amount * 2, new_price)
            o = ex.fetch_order(oid, SYMBOL)
            expect(abs(o["price"] - new_price) < 1e-9 and abs(o["amount"] - amount * 2) < 1e-12, f"after edit: price {o['price']} amount {o['amount']}")
            hist = o["info"].get("edit_history") or []
            expect(len(hist) == 1, f"edit_history {hist}")

        r.run(n("edit_order (price and size; fetch_order shows the edit)"), edit)

        def cancel() -> None:
            ex.cancel_order(oid, SYMBOL)
            wait_for("status canceled", lambda: ex.fetch_order(oid, SYMBOL)["status"] == "canceled")
            expect(oid not in [o["id"] for o in ex.fetch_open_orders(SYMBOL)], "still listed open")

        r.run(n("cancel_order (queued, then canceled)"), cancel)
    else:
        for s in ("fetch_open_orders / fetch_order show it open", "edit_order", "cancel_order"):
            r.skip(n(s), "the limit order was not placed")

    def preview() -> None:
        before = len(ex.fetch_open_orders(SYMBOL))
        resp = ex.v3PrivatePostBrokerageOrdersPreview({"product_id": PRODUCT, "side": "BUY", "order_configuration": {"limit_limit_gtc": {"base_size": "0.001", "limit_price": ex.price_to_precision(SYMBOL, low)}}})
        expect(resp.get("errs") == [], f"errs {resp.get('errs')}")
        expect(Decimal(resp["order_total"]) > Decimal(resp["commission_total"]) > 0, f"totals {resp['order_total']} {resp['commission_total']}")
        expect(len(ex.fetch_open_orders(SYMBOL)) == before, "a preview placed an order")

    r.run(n("orders/preview (estimate; nothing placed)"), preview)

    def market() -> None:
        o = ex.create_market_buy_order_with_cost(SYMBOL, 20)
        oid = o["id"]
        done = wait_for("market order closed", lambda: (lambda f: f if f["status"] == "closed" else None)(ex.fetch_order(oid, SYMBOL)))
        expect(done["filled"] and done["filled"] > 0, f"filled {done['filled']}")
        trades = [t for t in ex.fetch_my_trades(SYMBOL) if t["order"] == oid]
        expect(trades, f"no fill of {oid} in fetch_my_trades")
        expect(all(t["fee"]["currency"] == "USDT" and t["fee"]["cost"] > 0 for t in trades), f"fees {[t['fee'] for t in trades]}")
        expect(abs(sum(t["amount"] for t in trades) - done["filled"]) < 1e-9, "fills do not add up to the filled amount")

    r.run(n("market buy by cost fills and shows in fetch_my_trades"), market)

    def too_small() -> None:
        try:
            ex.create_order(SYMBOL, "limit", "buy", 0.00001, float(ex.price_to_precision(SYMBOL, 1)))
        except ccxt.BaseError as e:
            expect("PREVIEW_INVALID_QUOTE_SIZE_TOO_SMALL" in str(e), f"reason not named: {e}")
            return
        raise Failed("accepted an order below the minimum notional")

    r.run(n("validation error: below the minimum notional (success:false, reason)"), too_small)

    def wrong_key() -> None:
        bad = client(foreign_ec_pem())
        try:
            bad.fetch_balance({"v3": True})
        except ccxt.AuthenticationError as e:
            expect("401" in str(e) or "Unauthorized" in str(e), f"{e}")
            return
        raise Failed("a key the sandbox never registered was accepted")

    r.run(n("auth error: wrong key -> 401 AuthenticationError"), wrong_key)


# ---------------------------------------------------------------- the SDK


def paced_adapter() -> Any:
    """A requests transport that spaces requests PACE_S apart: the SDK
    sends as fast as it is called, and would meet Coinbase's 429."""
    from requests.adapters import HTTPAdapter

    class Paced(HTTPAdapter):
        last = 0.0

        def send(self, *a: Any, **kw: Any) -> Any:
            wait = Paced.last + PACE_S - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            Paced.last = time.monotonic()
            return super().send(*a, **kw)

    return Paced()


def sdk_session(r: Results, prefix: str, ready: dict[str, Any], pem: str) -> None:
    from coinbase.rest import RESTClient
    from requests.exceptions import HTTPError

    host = ready["rest_url"].removeprefix("https://")
    c = RESTClient(api_key=ready["api_key_name"], api_secret=pem, base_url=host, timeout=15)
    c.session.mount("https://", paced_adapter())
    n = lambda s: f"{prefix}.{s}"  # noqa: E731
    d = lambda x: x.to_dict() if hasattr(x, "to_dict") else x  # noqa: E731

    def products() -> dict[str, Any]:
        ps = d(c.get_products())
        ids = [p["product_id"] for p in ps["products"]]
        expect(PRODUCT in ids, f"{PRODUCT} not in {ids}")
        p = d(c.get_product(PRODUCT))
        expect(Decimal(p["base_min_size"]) > 0 and Decimal(p["quote_increment"]) > 0, f"product {p}")
        pub = d(c.get_public_products())
        expect(PRODUCT in [x["product_id"] for x in pub["products"]], "not in the public list")
        return p

    prod = r.run(n("get_products / get_product / get_public_products"), products)
    if prod is None:
        r.skip(n("rest of the session"), "products did not load")
        return
    tick = Decimal(prod["quote_increment"])

    def candles() -> None:
        now = int(time.time())
        cs = d(c.get_candles(PRODUCT, start=str(now - 3600), end=str(now + 60), granularity="ONE_MINUTE"))["candles"]
        expect(cs, "no candles")
        starts = [int(x["start"]) for x in cs]
        expect(starts == sorted(starts, reverse=True), "candles not newest first")
        for x in cs:
            expect(Decimal(x["low"]) <= Decimal(x["open"]) <= Decimal(x["high"]), f"candle {x}")

    r.run(n("get_candles"), candles)

    def book() -> tuple[Decimal, Decimal]:
        pb = d(c.get_product_book(PRODUCT, limit=10))["pricebook"]
        bb = d(c.get_best_bid_ask([PRODUCT]))["pricebooks"][0]
        bid, ask = Decimal(pb["bids"][0]["price"]), Decimal(pb["asks"][0]["price"])
        expect(bid < ask, f"crossed {bid} {ask}")
        expect(Decimal(bb["bids"][0]["price"]) < Decimal(bb["asks"][0]["price"]), f"best_bid_ask {bb}")
        return bid, ask

    touch = r.run(n("get_product_book / get_best_bid_ask"), book)

    def accounts() -> None:
        accs = d(c.get_accounts(limit=250))["accounts"]
        usdt = [a for a in accs if a["currency"] == "USDT"]
        expect(usdt and Decimal(usdt[0]["available_balance"]["value"]) > 0, f"accounts {accs}")
        one = d(c.get_account(usdt[0]["uuid"]))["account"]
        expect(one["uuid"] == usdt[0]["uuid"], "get_account names another wallet")
        fees = d(c.get_transaction_summary())
        expect(Decimal(fees["fee_tier"]["taker_fee_rate"]) >= 0, f"fee tier {fees}")

    r.run(n("get_accounts / get_account / get_transaction_summary"), accounts)
    if touch is None:
        r.skip(n("orders"), "no book")
        return
    low = ((touch[0] / 2) / tick).quantize(Decimal(1)) * tick

    def place() -> str:
        resp = d(c.limit_order_gtc_buy(client_order_id=uuid.uuid4().hex, product_id=PRODUCT, base_size="0.001", limit_price=str(low)))
        expect(resp["success"] is True, f"{resp}")
        return resp["success_response"]["order_id"]

    oid = r.run(n("limit_order_gtc_buy (rests)"), place)
    if oid is not None:

        def listed() -> None:
            ids = [o["order_id"] for o in d(c.list_orders(product_ids=[PRODUCT], order_status=["OPEN"]))["orders"]]
            expect(oid in ids, f"{oid} not in {ids}")
            o = d(c.get_order(oid))["order"]
            expect(o["status"] == "OPEN", f"status {o['status']}")

        r.run(n("list_orders / get_order show it OPEN"), listed)

        def preview_edit() -> None:
            pe = d(c.preview_edit_order(oid, size="0.002", price=str(low - tick)))
            expect(pe.get("errors") == [], f"errors {pe.get('errors')}")
            expect(Decimal(pe["base_size"]) == Decimal("0.002"), f"base_size {pe['base_size']}")
            o = d(c.get_order(oid))["order"]
            expect(Decimal(o["order_configuration"]["limit_limit_gtc"]["base_size"]) == Decimal("0.001"), "a preview changed the order")

        r.run(n("preview_edit_order (nothing changed)"), preview_edit)

        def edit() -> None:
            e = d(c.edit_order(oid, size="0.002", price=str(low - tick)))
            expect(e["success"] is True, f"{e}")
            o = d(c.get_order(oid))["order"]
            cfg = o["order_configuration"]["limit_limit_gtc"]
            expect(Decimal(cfg["base_size"]) == Decimal("0.002") and Decimal(cfg["limit_price"]) == low - tick, f"after edit {cfg}")
            expect(len(o["edit_history"]) == 1, f"edit_history {o['edit_history']}")
            same = d(c.edit_order(oid, size="0.002", price=str(low - tick)))
            expect(same["success"] is False and same["errors"][0]["edit_failure_reason"] == "EDIT_REQUEST_EQUAL_TO_ORIGINAL_REQUEST", f"unchanged edit: {same}")

        r.run(n("edit_order (order changed; an unchanged edit refused)"), edit)

        def cancel() -> None:
            res = d(c.cancel_orders([oid]))["results"][0]
            expect(res["success"] is True, f"{res}")
            wait_for("CANCELLED", lambda: d(c.get_order(oid))["order"]["status"] == "CANCELLED")

        r.run(n("cancel_orders (queued, then CANCELLED)"), cancel)
    else:
        for s in ("list_orders / get_order show it OPEN", "preview_edit_order", "edit_order", "cancel_orders"):
            r.skip(n(s), "the limit order was not placed")

    def preview() -> None:
        p = d(c.preview_market_order_buy(product_id=PRODUCT, quote_size="20"))
        expect(p["errs"] == [], f"errs {p['errs']}")
        expect(Decimal(p["base_size"]) > 0 and Decimal(p["commission_total"]) > 0, f"{p}")
        expect(abs(Decimal(p["order_total"]) - Decimal("20")) < Decimal("0.5"), f"order_total {p['order_total']} for a quote of 20")
        # Twice what the free quote balance buys at `low` (within the product's limits).
        free = next(Decimal(a["available_balance"]["value"]) for a in d(c.get_accounts(limit=250))["accounts"] if a["currency"] == "USDT")
        step = Decimal(prod["base_increment"])
        size = ((free * 2 / low) / step).quantize(Decimal(1)) * step
        big = d(c.preview_limit_order_gtc_buy(product_id=PRODUCT, base_size=str(size), limit_price=str(low)))
        expect(big["errs"] == ["PREVIEW_INSUFFICIENT_FUND"], f"errs {big['errs']}")

    r.run(n("preview_market_order_buy / preview_limit_order_gtc_buy (funds checked)"), preview)

    def market() -> None:
        resp = d(c.market_order_buy(client_order_id=uuid.uuid4().hex, product_id=PRODUCT, quote_size="20"))
        expect(resp["success"] is True, f"{resp}")
        mid = resp["success_response"]["order_id"]
        o = wait_for("FILLED", lambda: (lambda x: x if x["status"] == "FILLED" else None)(d(c.get_order(mid))["order"]))
        fills = d(c.get_fills(order_ids=[mid]))["fills"]
        expect(fills, "no fills")
        expect(sum(Decimal(f["size"]) for f in fills) == Decimal(o["filled_value"]) if o["size_in_quote"] else True, "fill sizes do not add up")
        expect(all(Decimal(f["commission"]) > 0 and f["liquidity_indicator"] == "TAKER" for f in fills), f"fills {fills}")

    r.run(n("market_order_buy fills and shows in get_fills"), market)

    def validation() -> None:
        small = d(c.limit_order_gtc_buy(client_order_id=uuid.uuid4().hex, product_id=PRODUCT, base_size=prod["base_min_size"], limit_price=str(tick)))
        expect(small["success"] is False, f"{small}")
        expect(small["error_response"]["preview_failure_reason"] == "PREVIEW_INVALID_QUOTE_SIZE_TOO_SMALL", f"{small['error_response']}")
        grid = d(c.market_order_buy(client_order_id=uuid.uuid4().hex, product_id=PRODUCT, base_size="0.0000001"))
        expect(grid["success"] is False and grid["error_response"]["error"] == "INVALID_SIZE_PRECISION", f"{grid}")

    r.run(n("validation errors: below min notional, size off the grid (success:false, reason)"), validation)

    def wrong_key() -> None:
        bad = RESTClient(api_key=ready["api_key_name"], api_secret=foreign_ec_pem(), base_url=host, timeout=15)
        # The SDK logs every HTTP error; this one is expected.
        sdk_log = logging.getLogger("coinbase.RESTClient")
        level = sdk_log.level
        sdk_log.setLevel(logging.CRITICAL)
        try:
            bad.get_accounts()
        except HTTPError as e:
            expect(e.response is not None and e.response.status_code == 401, f"{e}")
            expect(e.response.text == "Unauthorized", f"body {e.response.text!r}")
            return
        finally:
            sdk_log.setLevel(level)
        raise Failed("a key the sandbox never registered was accepted")

    r.run(n("auth error: wrong key -> 401 Unauthorized"), wrong_key)


# ---------------------------------------------------------------- main


def run(args: argparse.Namespace) -> int:
    r = Results(args.only, args.verbose)
    args.keel = str(Path(args.keel).resolve())
    if not Path(args.keel).exists():
        print(f"coinbase witness: no keel binary at {args.keel} (build it: cargo build -p keel-ops --bin keel)", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="keel-coinbase-witness-") as tmp:
        for key_type in ("ec", "ed25519"):
            sb = Sandbox(args.keel, Path(tmp) / key_type, key_type)
            try:
                ready = sb.start()
            except RuntimeError as e:
                r.skip(f"{key_type}.sandbox", str(e))
                continue
            try:
                # The SDK and ccxt verify TLS through requests: trust the sandbox.
                os.environ["REQUESTS_CA_BUNDLE"] = ready["ca_cert_path"]
                os.environ["SSL_CERT_FILE"] = ready["ca_cert_path"]
                pem = Path(ready["private_key_path"]).read_text()
                if key_type == "ec":
                    ccxt_secret = pem
                else:
                    b64 = ready.get("private_key_base64_path")
                    if not b64:
                        r.skip("ccxt-ed25519.session", "SANDBOX_READY has no private_key_base64_path")
                        ccxt_secret = None
                    else:
                        ccxt_secret = Path(b64).read_text().strip()
                if ccxt_secret is not None:
                    ccxt_session(r, f"ccxt-{key_type}", ready, ccxt_secret)
                sdk_session(r, f"sdk-{key_type}", ready, pem)
            finally:
                sb.stop()
    print(f"{r.passed} passed, {r.failed} failed", flush=True)
    return 1 if r.failed else 0


def main() -> None:
    args = parse_args(sys.argv[1:])
    if os.environ.get(IN_VENV) != "1":
        py = ensure_venv(Path(args.venv).expanduser())
        env = {**os.environ, IN_VENV: "1"}
        os.execve(str(py), [str(py), str(Path(__file__).resolve()), *sys.argv[1:]], env)
    sys.exit(run(args))


if __name__ == "__main__":
    main()
