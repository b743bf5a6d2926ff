"""The check registry and runner: every check is a function that raises on a
deviation; the runner catches everything, so one failing check never stops
the others, and prints `PASS name` / `FAIL name: reason` lines.

Sync checks (REST, ccxt, python-binance) run one after another on the main
thread; async checks (market streams, WebSocket API, python-binance's socket
manager) run concurrently on an event loop in a second thread, so the waits
for stream events overlap with the REST traffic.
"""

from __future__ import annotations

import asyncio
import threading
import time
import traceback
from dataclasses import dataclass, field
from typing import Any, Callable


class CheckFailed(Exception):
    """A documented behaviour the endpoint does not show (the message says
    what was observed and what the docs say)."""


def expect(cond: Any, reason: str) -> None:
    """Fails the check with `reason` unless `cond` holds."""
    if not cond:
        raise CheckFailed(reason)


def expect_eq(actual: Any, expected: Any, what: str) -> None:
    """Fails unless `actual == expected`, naming both."""
    if actual != expected:
        raise CheckFailed(f"{what}: got {short(actual)}, documented {short(expected)}")


def expect_keys(obj: Any, keys: list[str] | set[str], what: str) -> None:
    """Fails unless `obj` is a dict holding every key in `keys`."""
    if not isinstance(obj, dict):
        raise CheckFailed(f"{what}: expected an object, got {short(obj)}")
    missing = [k for k in keys if k not in obj]
    if missing:
        raise CheckFailed(f"{what}: missing documented field(s) {missing} in {short(obj)}")


def short(v: Any, limit: int = 300) -> str:
    """One line, at most `limit` characters, for a FAIL reason."""
    s = v if isinstance(v, str) else repr(v)
    s = " ".join(s.split())
    return s if len(s) <= limit else s[: limit - 3] + "..."


@dataclass
class Check:
    """One registered check."""

    name: str
    fn: Callable[..., Any]
    is_async: bool
    timeout: float
    group: str


@dataclass
class Registry:
    """All checks, in registration order."""

    checks: list[Check] = field(default_factory=list)

    def add(self, name: str, fn: Callable[..., Any], is_async: bool, timeout: float, group: str) -> None:
        if any(c.name == name for c in self.checks):
            raise ValueError(f"duplicate check name {name}")
        self.checks.append(Check(name, fn, is_async, timeout, group))


REGISTRY = Registry()


def check(name: str, timeout: float = 30.0, group: str = "main") -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Registers a sync check `fn(ctx)`; `group="limits"` checks run last."""

    def deco(fn: Callable[..., Any]) -> Callable[..., Any]:
        REGISTRY.add(name, fn, False, timeout, group)
        return fn

    return deco


def acheck(name: str, timeout: float = 25.0) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Registers an async check `async fn(ctx)`, bounded by `timeout` seconds."""

    def deco(fn: Callable[..., Any]) -> Callable[..., Any]:
        REGISTRY.add(name, fn, True, timeout, "async")
        return fn

    return deco


def register(name: str, fn: Callable[..., Any], is_async: bool = False, timeout: float = 30.0, group: str = "main") -> None:
    """Registers a check built at import time (table-driven cases)."""
    REGISTRY.add(name, fn, is_async, timeout, "async" if is_async else group)


class Reporter:
    """Prints results as they come (thread-safe) and counts them."""

    def __init__(self, verbose: bool) -> None:
        self.lock = threading.Lock()
        self.passed: list[str] = []
        self.failed: list[tuple[str, str]] = []
        self.verbose = verbose

    def result(self, name: str, reason: str | None, elapsed: float, tb: str | None = None) -> None:
        with self.lock:
            if reason is None:
                self.passed.append(name)
                line = f"PASS {name}"
            else:
                self.failed.append((name, reason))
                line = f"FAIL {name}: {reason}"
            if self.verbose:
                line += f"  ({elapsed:.1f} s)"
            print(line, flush=True)
            if tb and self.verbose:
                print(tb, flush=True)


def _reason(e: BaseException) -> str:
    if isinstance(e, CheckFailed):
        return short(str(e), 600)
    if isinstance(e, (asyncio.TimeoutError, TimeoutError)) and not str(e):
        return "timed out"
    return short(f"{type(e).__name__}: {e}", 600)


def _trace(e: BaseException) -> str | None:
    """The traceback of an unexpected exception (a CheckFailed says enough)."""
    return None if isinstance(e, CheckFailed) else traceback.format_exc()


def run_sync(checks: list[Check], ctx: Any, rep: Reporter) -> None:
    for c in checks:
        t0 = time.monotonic()
        try:
            c.fn(ctx)
            rep.result(c.name, None, time.monotonic() - t0)
        except KeyboardInterrupt:
            raise
        except BaseException as e:  # noqa: BLE001 - every failure is a FAIL line, never an abort
            rep.result(c.name, _reason(e), time.monotonic() - t0, _trace(e))


async def _run_one_async(c: Check, ctx: Any, rep: Reporter, sem: asyncio.Semaphore) -> None:
    async with sem:
        t0 = time.monotonic()
        try:
            await asyncio.wait_for(c.fn(ctx), c.timeout)
            rep.result(c.name, None, time.monotonic() - t0)
        except asyncio.TimeoutError:
            took = time.monotonic() - t0
            reason = f"timed out after {c.timeout:.0f} s" if took >= c.timeout - 0.5 else f"a wait timed out after {took:.0f} s"
            rep.result(c.name, reason, took)
        except BaseException as e:  # noqa: BLE001
            rep.result(c.name, _reason(e), time.monotonic() - t0, _trace(e))


def run_async(checks: list[Check], ctx: Any, rep: Reporter, concurrency: int = 8) -> None:
    async def main() -> None:
        sem = asyncio.Semaphore(concurrency)
        await asyncio.gather(*(_run_one_async(c, ctx, rep, sem) for c in checks))

    asyncio.run(main())
