"""The session: start the endpoint(s), run every check, stop, summarise."""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import harness
from clients import Endpoint
from endpoint import Ctx, SandboxProcess

# Importing the modules registers their checks, in this order.
import checks_market  # noqa: F401,E402
import checks_orders  # noqa: F401,E402
import checks_ccxt  # noqa: F401,E402
import checks_pybinance  # noqa: F401,E402
import checks_streams  # noqa: F401,E402
import checks_wsapi  # noqa: F401,E402
import checks_limits  # noqa: F401,E402

# A quote, a public trade and a book update every second (Binance's streams
# push at 1000 ms); everything else is the sandbox's default, in real time.
MAIN_CONFIG = """\
[sandbox]
ticks_per_bar = 60
"""

# The instance the 429 -> 418 escalation and the ORDERS limit run against, so
# its ban cannot touch the rest of the session.
TIGHT_CONFIG = f"""\
[sandbox]
ticks_per_bar = 60
weight_limit_1m = {checks_limits.TIGHT_WEIGHT}
order_limit_10s = {checks_limits.TIGHT_ORDERS_10S}
"""


def selected(args: argparse.Namespace) -> list[harness.Check]:
    checks = harness.REGISTRY.checks
    if args.only:
        checks = [c for c in checks if any(o in c.name for o in args.only)]
    return checks


def run(args: argparse.Namespace) -> int:
    checks = selected(args)
    if args.list:
        for c in checks:
            print(c.name)
        return 0
    tmp = Path(tempfile.mkdtemp(prefix="keel-conformance-"))
    procs: list[SandboxProcess] = []
    started = time.monotonic()
    try:
        need_tight = any(c.group == "limits" for c in checks)
        tight_future: Future[Any] | None = None
        pool = ThreadPoolExecutor(max_workers=2)
        if args.rest:
            ep = Endpoint(args.rest.rstrip("/"), args.ws.rstrip("/"), args.ws_api, args.api_key, args.api_secret,
                          args.ed25519_api_key, args.ed25519_key_path)
        else:
            if not Path(args.keel).exists():
                print(f"FAIL session.setup: no keel binary at {args.keel} (cargo build -p keel-ops --bin keel, or --keel PATH)")
                print("0 passed, 1 failed")
                return 2
            keel = str(Path(args.keel).resolve())  # the children run in their own directories
            main_sb = SandboxProcess(keel, tmp / "main", MAIN_CONFIG, "sandbox")
            procs.append(main_sb)
            if need_tight:
                tight_sb = SandboxProcess(keel, tmp / "tight", TIGHT_CONFIG, "tight-limits sandbox")
                procs.append(tight_sb)
                tight_future = pool.submit(tight_sb.start)
            try:
                ep = Endpoint.from_ready(main_sb.start())
            except Exception as e:  # noqa: BLE001
                print(f"FAIL session.setup: {harness.short(str(e), 600)}")
                print("0 passed, 1 failed")
                return 2
        ctx = Ctx(ep=ep, symbol=args.symbol)
        if tight_future is not None:
            try:
                ctx.tight = Endpoint.from_ready(tight_future.result(timeout=90))
            except Exception as e:  # noqa: BLE001 - reported by the checks that need it
                ctx.tight_reason = f"the tight-limits sandbox did not start: {e}"
        elif args.rest and args.tight_rest:
            ctx.tight = Endpoint(args.tight_rest.rstrip("/"), args.ws.rstrip("/"), args.tight_ws_api or args.ws_api,
                                 args.api_key, args.api_secret)
        else:
            ctx.tight_reason = "no tight-limits endpoint (--rest without --tight-rest): the escalation would ban this one"
        try:
            ctx.setup()
        except Exception as e:  # noqa: BLE001
            print(f"FAIL session.setup: {harness.short(str(e), 600)}")
            print("0 passed, 1 failed")
            return 2
        rep = harness.Reporter(args.verbose)
        sync_main = [c for c in checks if not c.is_async and c.group == "main"]
        sync_last = [c for c in checks if not c.is_async and c.group == "limits"]
        async_checks = [c for c in checks if c.is_async]
        t = threading.Thread(target=harness.run_async, args=(async_checks, ctx, rep), daemon=True)
        t.start()
        harness.run_sync(sync_main, ctx, rep)
        t.join(timeout=max(c.timeout for c in async_checks) + 30 if async_checks else 1)
        if t.is_alive():
            print("FAIL session.async_checks: the stream / WebSocket API checks did not finish", flush=True)
            rep.failed.append(("session.async_checks", "did not finish"))
        harness.run_sync(sync_last, ctx, rep)
        if args.verbose:
            print(f"# {time.monotonic() - started:.1f} s; sandbox logs under {tmp}", flush=True)
        print(f"{len(rep.passed)} passed, {len(rep.failed)} failed", flush=True)
        return 1 if rep.failed else 0
    finally:
        for p in procs:
            p.stop()
        if not args.verbose:
            shutil.rmtree(tmp, ignore_errors=True)
