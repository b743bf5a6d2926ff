#!/usr/bin/env python3
"""Start-up, `keel state`, store size and memory against stored history.

For each history size, `keel bench --history N` writes N filled orders with
one fill each into a fresh data dir (archived and checkpointed, as an engine
that ran that long leaves it); then this measures

  * start to `engine started`: wall time from spawning `keel run` (the
    built-in default config, offline) to that log line;
  * resident memory of that engine a few seconds after start (VmRSS) and its
    peak (VmHWM);
  * `keel state --json`: wall time and peak RSS, best of 3;
  * the data dir's bytes per order-plus-fill.

Usage: tools/bench_history.py [--keel target/release/keel] [N ...]
(default sizes: 10000 100000 1000000). Prints a Markdown table.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time


def dir_bytes(path):
    total = 0
    for root, _, files in os.walk(path):
        for f in files:
            try:
                total += os.path.getsize(os.path.join(root, f))
            except OSError:
                pass
    return total


def proc_kb(pid, field):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def start_engine(keel, data):
    """Seconds to `engine started`, RSS and peak RSS (KiB) 3 s after it."""
    t0 = time.monotonic()
    proc = subprocess.Popen(
        [keel, "run", "--data-dir", data, "--log-format", "json", "--exit-after", "8s"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        cwd=tempfile.gettempdir(),
    )
    started = None
    deadline = t0 + 120
    for line in proc.stderr:
        try:
            msg = json.loads(line).get("fields", {}).get("message") or json.loads(line).get("message")
        except ValueError:
            continue
        if msg == "engine started":
            started = time.monotonic() - t0
            break
        if time.monotonic() > deadline:
            break
    if started is None:
        proc.kill()
        sys.exit("the engine did not start")
    time.sleep(3)
    rss, hwm = proc_kb(proc.pid, "VmRSS"), proc_kb(proc.pid, "VmHWM")
    proc.terminate()
    for _ in proc.stderr:
        pass
    proc.wait(timeout=60)
    return started, rss, hwm


def keel_state(keel, data):
    """Best wall time of 3 runs and the peak RSS (KiB) of the runs."""
    best, peak = None, 0
    for _ in range(3):
        with tempfile.TemporaryFile() as out:
            t0 = time.monotonic()
            proc = subprocess.Popen([keel, "state", "--json", "--data-dir", data],
                                    stdout=out, stderr=subprocess.DEVNULL, cwd=tempfile.gettempdir())
            _, status, usage = os.wait4(proc.pid, 0)
            took = time.monotonic() - t0
            proc.returncode = os.waitstatus_to_exitcode(status)
            if proc.returncode != 0:
                sys.exit("keel state failed")
            out.seek(0)
            json.loads(out.read())
        best = took if best is None else min(best, took)
        peak = max(peak, usage.ru_maxrss)
    return best, peak


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--keel", default="target/release/keel")
    ap.add_argument("sizes", nargs="*", type=int, default=[10_000, 100_000, 1_000_000])
    args = ap.parse_args()
    keel = os.path.abspath(args.keel)
    print("| stored fills | write (s) | store bytes / order+fill | start to `engine started` | RSS 3 s after start (peak) | `keel state` (peak RSS) |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: |")
    for n in args.sizes:
        with tempfile.TemporaryDirectory() as data:
            t0 = time.monotonic()
            subprocess.run([keel, "bench", "--history", str(n), "--data-dir", data],
                           check=True, capture_output=True, cwd=tempfile.gettempdir())
            wrote = time.monotonic() - t0
            size = dir_bytes(data)
            started, rss, hwm = start_engine(keel, data)
            state_s, state_kb = keel_state(keel, data)
            print(f"| {n:,} | {wrote:.1f} | {size / n:.0f} | {started * 1000:.0f} ms | "
                  f"{rss / 1024:.1f} MiB ({hwm / 1024:.1f}) | {state_s * 1000:.0f} ms ({state_kb / 1024:.1f} MiB) |", flush=True)


if __name__ == "__main__":
    main()
