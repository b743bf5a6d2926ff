#!/usr/bin/env python3
"""Binance spot conformance suite: drives a Binance-protocol endpoint through
a full session with the unmodified third-party clients ccxt and
python-binance (changed only in their base URLs) and with raw REST,
market-stream and WebSocket API clients written from Binance's docs, and
prints `PASS name` / `FAIL name: reason` per check and, last,
`N passed, M failed`. Exit status 1 if any check failed (2: could not run).

By default it starts `target/debug/keel sandbox` itself (plus a second
instance with tight rate limits for the 429 -> 418 checks) and stops them at
the end. `--rest/--ws/--ws-api/--api-key/--api-secret` point it at any other
endpoint instead.

The clients live in a venv the script creates and caches
(`$KEEL_CONFORMANCE_VENV`, default `~/.cache/keel/conformance-venv`), with
the versions pinned in `tools/conformance/requirements.txt`; the venv is
rebuilt when the pins change.

    python3 tools/conformance.py                 # against target/debug/keel sandbox
    python3 tools/conformance.py --only wsapi.   # checks whose name contains "wsapi."
    python3 tools/conformance.py --rest http://h:p --ws ws://h:p --ws-api ws://h:p/ws-api/v3 \
        --api-key K --api-secret S
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
SUPPORT = HERE / "conformance"
REQUIREMENTS = SUPPORT / "requirements.txt"
ROOT = HERE.parent
STAMP = ".keel-conformance-requirements"
IN_VENV = "KEEL_CONFORMANCE_IN_VENV"


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--keel", default=str(ROOT / "target" / "debug" / "keel"), help="keel binary to start the sandbox with")
    p.add_argument("--rest", help="REST base URL of an already running endpoint (no sandbox is started)")
    p.add_argument("--ws", help="market-stream base URL (…/ws/<stream>, …/stream?streams= are appended)")
    p.add_argument("--ws-api", dest="ws_api", help="WebSocket API URL (e.g. …/ws-api/v3)")
    p.add_argument("--api-key", dest="api_key", help="HMAC API key")
    p.add_argument("--api-secret", dest="api_secret", help="HMAC API secret")
    p.add_argument("--ed25519-api-key", dest="ed25519_api_key", help="Ed25519 API key (session.logon)")
    p.add_argument("--ed25519-key-path", dest="ed25519_key_path", help="PEM file of the Ed25519 private key")
    p.add_argument("--tight-rest", dest="tight_rest", help="with --rest: REST URL of a second endpoint to run the 429/418 escalation against (it gets banned)")
    p.add_argument("--tight-ws-api", dest="tight_ws_api", help="with --tight-rest: its WebSocket API URL")
    p.add_argument("--symbol", default="BTCUSDT", help="symbol to trade (default BTCUSDT)")
    p.add_argument("--only", action="append", default=[], help="run only checks whose name contains this (repeatable)")
    p.add_argument("--list", action="store_true", help="list the checks and exit")
    p.add_argument("--venv", default=os.environ.get("KEEL_CONFORMANCE_VENV", str(Path.home() / ".cache" / "keel" / "conformance-venv")))
    p.add_argument("-v", "--verbose", action="store_true", help="durations and tracebacks")
    a = p.parse_args(argv)
    if a.rest and not (a.ws and a.ws_api and a.api_key and a.api_secret):
        p.error("--rest needs --ws, --ws-api, --api-key and --api-secret")
    return a


def venv_python(venv: Path) -> Path:
    return venv / "bin" / "python"


def requirements_stamp() -> str:
    h = hashlib.sha256(REQUIREMENTS.read_bytes())
    h.update(f"{sys.version_info.major}.{sys.version_info.minor}".encode())
    return h.hexdigest()


def ensure_venv(venv: Path) -> Path:
    """Creates (or reuses, when its stamp matches the pins) the venv."""
    py = venv_python(venv)
    stamp = venv / STAMP
    want = requirements_stamp()
    if py.exists() and stamp.exists() and stamp.read_text().strip() == want:
        return py
    print(f"conformance: building the client venv in {venv} (pins changed or first run)", file=sys.stderr, flush=True)
    if venv.exists():
        if not (venv / "pyvenv.cfg").exists():
            sys.exit(f"conformance: {venv} exists and is not a venv; set KEEL_CONFORMANCE_VENV elsewhere")
        shutil.rmtree(venv)
    venv.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run(
        [str(py), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "-r", str(REQUIREMENTS)],
        check=True,
    )
    stamp.write_text(want + "\n")
    return py


def main() -> None:
    args = parse_args(sys.argv[1:])
    if os.environ.get(IN_VENV) != "1":
        py = ensure_venv(Path(args.venv).expanduser())
        env = {**os.environ, IN_VENV: "1"}
        os.execve(str(py), [str(py), str(Path(__file__).resolve()), *sys.argv[1:]], env)
    sys.path.insert(0, str(SUPPORT))
    import runner  # noqa: E402  (only importable inside the venv)

    sys.exit(runner.run(args))


if __name__ == "__main__":
    main()
