#!/usr/bin/env python3
"""Keel's backtest side by side with vectorbt and backtesting.py, on the same work.

Not part of CI: it downloads packages into a venv and takes minutes.

The work (issue 13): 1 000 000 one-minute bars of a seeded random walk (prices
with 2 decimals; the generator below, byte for byte the file the issue was
measured on), a long-only SMA 10/20 cross of one unit, no fees, protections and
rate limits off. Keel's rule (`strategies/src/ma_cross.rs`, `common.rs` `Cross`):
at a bar's close, once both averages are warm, "fast above slow" is recorded;
the first warm bar only records it; when it turns true while flat, buy 1; when
it turns false while long, sell everything; equal averages count as not above.
Market orders fill at the next bar's open; an order decided at the last bar
never fills; the final equity marks the open position at the last close.

What it runs and times:

  * `keel backtest --data F --config C --report R` from CSV and, when the
    binary has `keel data convert`, from Parquet: the wall time of the process,
    start to report written, best of --runs after a warm-up run (file in the
    page cache), and its peak RSS;
  * vectorbt, warm: in one process, after a warm-up run, the timed run computes
    the averages (`vbt.MA.run`) and the signals, and runs
    `Portfolio.from_signals` with the signals shifted one bar and `price=open`
    (the next bar's open), size 1; and cold: a fresh Python process from start
    to the result (import, CSV read, the same run), best of --runs after one
    warm-up process (which fills numba's on-disk cache);
  * backtesting.py on the first 100 000 bars (it is slow), `trade_on_close=False`,
    the same rule in `next()`, in process, best of --runs after a warm-up;
    its ratio is against Keel on the same 100 000 bars;
  * a sweep of fast 5..50:5 x slow 20..200:20 (100 combinations, 90 valid:
    Keel skips fast >= slow, vectorbt runs exactly the 90 valid ones, one
    `Portfolio.from_signals` over 90 columns) against
    `keel backtest ... --sweep sma.fast=5..50:5 --sweep sma.slow=20..200:20
    --sweep-out OUT.csv` when the binary has `--sweep`.

How it checks that the work is the same: each Python engine also runs once,
untimed, with the averages computed exactly as Keel computes them (the exact
sum of the window's closes, so averages equal in decimal compare equal), and must give
Keel's round trips and final equity to the cent (the single run, the 100k run,
all 90 sweep combinations when Keel sweeps, and three combinations, vectorbt's
best, 5/20 and 50/200, run singly through Keel); the best combination by PnL
must be the same in both sweeps. The timed runs use each library's own rolling mean;
its f64 rounding may break a tie (the two averages exactly equal in decimal,
"not above" for Keel) its own way, so the signals may differ, but only on such
bars; the script checks that every differing bar
is such a tie and prints the difference in round trips and PnL. Anything else
is printed as a MISMATCH and the exit status is 1. Keel's `--sweep-out` CSV is
read by its columns: those ending in `fast` and `slow`, `round_trips`, and
`final_equity` (less `initial_equity`) or else `total_return`.

Usage: tools/bench_backtest.py [--keel target/release/keel] [--bars 1000000]
           [--runs 5] [--skip-install] [--only keel|vectorbt|backtesting]
           [--workdir ~/.cache/keel/bench-data]
The venv is ${KEEL_BENCH_VENV:-~/.cache/keel/bench-venv} (created with the
python3 running this script; tested with Python 3.11). Prints Markdown tables
on stdout, the checks on stderr, each tool's output under WORKDIR/logs. At the
defaults it takes about 11 minutes on 2 busy cores, and vectorbt's sweep holds
about 5.5 GB at its peak. `--only` times only the engines named (repeatable);
Keel still runs once untimed for the checks.
"""

import argparse
import gc
import glob
import json
import os
import random
import shutil
import subprocess
import sys
import time

# Pinned versions: the newest of each on PyPI when this was written (vectorbt
# 1.2.0, backtesting.py 0.6.6), and the numeric stack they were measured with.
PINS = [
    "vectorbt==1.2.0",
    "backtesting==0.6.6",
    "numpy==2.4.6",
    "pandas==3.1.1",
    "numba==0.68.1",
]

INITIAL_EQUITY = 100_000_000
SYMBOL = "BTCUSDT"
FAST, SLOW = 10, 20
SWEEP_FAST = list(range(5, 51, 5))
SWEEP_SLOW = list(range(20, 201, 20))
BT_BARS = 100_000
# SHA-256 of the 1 000 000-bar CSV the figures were measured on
# (/tmp/bt/gen.py 1000000): the generator below must reproduce it.
SHA256_1M = "72ed416ea23e9452c252f1b6634a26b29c1597d0aa0ccab727daf454c31d6be5"

CONFIG = """\
[[strategy]]
id = "sma"
kind = "sma_cross"
symbol = "BTCUSDT"
params = {{ fast = {fast}, slow = {slow}, qty = "1" }}

[venue]
maker_fee_bps = "0"
taker_fee_bps = "0"

[balances]
USDT = "100000000"

[risk]
max_order_notional = "0"
max_position_notional = "0"
max_gross_exposure = "0"
strategy_orders_per_second = 0
strategy_orders_per_minute = 0
global_orders_per_second = 0
global_orders_per_minute = 0
duplicate_window = "0s"
price_band_pct = "0"
max_drawdown_pct = "0"
daily_loss_limit_pct = "0"
max_consecutive_losses = 0

[[symbol]]
symbol = "BTCUSDT"
base = "BTC"
quote = "USDT"
tick_size = "0.01"
step_size = "0.00001"
min_qty = "0.00001"
max_qty = "9000"
min_notional = "5"
start_price = "50000"
volatility = 0.5
seed = 1
spread_bps = "1"
touch_qty = "1"
"""

PROBLEMS = []


def mismatch(msg):
    """Records a failed check and prints it loudly at once."""
    PROBLEMS.append(msg)
    print(f"\n!!!!!!!! MISMATCH: {msg}\n", file=sys.stderr, flush=True)


def note(msg):
    print(f"# {msg}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------- data and config


def generate_csv(n, path):
    """The issue's generator (/tmp/bt/gen.py): a seeded random walk in cents."""
    rng = random.Random(42)
    p = 5_000_000
    t0 = 1_600_000_000_000
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write("timestamp,open,high,low,close,volume\n")
        for i in range(n):
            o = p
            p = max(100, p + rng.randint(-1000, 1000))
            c = p
            w = rng.randint(0, 300)
            h = max(o, c) + w
            lo = max(1, min(o, c) - w)
            f.write(f"{t0 + i * 60000},{o / 100:.2f},{h / 100:.2f},{lo / 100:.2f},{c / 100:.2f},"
                    f"{rng.randint(1, 10000) / 100:.2f}\n")
    os.replace(tmp, path)


def sha256(path):
    import hashlib
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def dataset(workdir, n):
    """`WORKDIR/N/BTCUSDT-1m.csv` (the symbol comes from the file name), made once."""
    d = os.path.join(workdir, str(n))
    os.makedirs(d, exist_ok=True)
    path = os.path.join(d, f"{SYMBOL}-1m.csv")
    if not os.path.exists(path):
        t0 = time.perf_counter()
        generate_csv(n, path)
        note(f"generated {path} ({n:,} bars) in {time.perf_counter() - t0:.1f} s")
    if n == 1_000_000 and sha256(path) != SHA256_1M:
        mismatch(f"{path} is not the issue's dataset (SHA-256 differs): delete it to regenerate")
    return path


def write_config(workdir, fast, slow):
    path = os.path.join(workdir, f"cfg-{fast}-{slow}.toml")
    with open(path, "w") as f:
        f.write(CONFIG.format(fast=fast, slow=slow))
    return path


# ---------------------------------------------------------------- processes


def run_process(cmd, log, env=None):
    """Runs `cmd` with its output in `log`: (wall seconds, peak RSS KiB, exit code)."""
    with open(log, "wb") as out:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    return wall, usage.ru_maxrss, proc.returncode


def tail(path, lines=15):
    with open(path, errors="replace") as f:
        return "".join(f.readlines()[-lines:])


def timed_best(cmd, log, runs, env=None):
    """A warm-up run, then the best wall time of `runs` and the peak RSS over them."""
    _, _, rc = run_process(cmd, log, env)
    if rc != 0:
        sys.exit(f"failed ({rc}): {' '.join(cmd)}\n{tail(log)}")
    best, peak = None, 0
    for _ in range(runs):
        wall, rss, rc = run_process(cmd, log, env)
        if rc != 0:
            sys.exit(f"failed ({rc}): {' '.join(cmd)}\n{tail(log)}")
        best = wall if best is None else min(best, wall)
        peak = max(peak, rss)
    return best, peak


def worker_result(log):
    """The `RESULT {json}` line a worker prints last."""
    with open(log, errors="replace") as f:
        for line in reversed(f.read().splitlines()):
            if line.startswith("RESULT "):
                return json.loads(line[len("RESULT "):])
    sys.exit(f"no result in {log}:\n{tail(log)}")


def run_worker(python, args, log):
    """Runs this script as a worker under the venv's python; its result and peak RSS."""
    cmd = [python, os.path.abspath(__file__), "--worker", *args]
    wall, rss, rc = run_process(cmd, log, worker_env())
    if rc != 0:
        sys.exit(f"worker failed ({rc}): {' '.join(cmd)}\n{tail(log, 40)}")
    return worker_result(log), wall, rss


def worker_env():
    env = dict(os.environ)
    env["TQDM_DISABLE"] = "1"  # backtesting.py's progress bar
    env["PYTHONWARNINGS"] = "ignore"
    return env


def keel_has(keel, args, needle):
    r = subprocess.run([keel, *args, "--help"], capture_output=True, text=True)
    return r.returncode == 0 and needle in r.stdout


def keel_report(path):
    with open(path) as f:
        r = json.load(f)
    return {"round_trips": int(r["round_trips"]), "pnl": float(r["final_equity"]) - float(r["initial_equity"]),
            "bars": int(r["bars"])}


# ---------------------------------------------------------------- venv


def venv_python(skip_install):
    venv = os.path.expanduser(os.environ.get("KEEL_BENCH_VENV", "~/.cache/keel/bench-venv"))
    python = os.path.join(venv, "bin", "python")
    if skip_install:
        if not os.path.exists(python):
            sys.exit(f"--skip-install, but there is no venv at {venv}")
        return python
    if not os.path.exists(python):
        note(f"creating the venv {venv}")
        subprocess.run([sys.executable, "-m", "venv", venv], check=True)
        subprocess.run([python, "-m", "pip", "install", "-q", "--upgrade", "pip"], check=True)
    note(f"installing {' '.join(PINS)}")
    subprocess.run([python, "-m", "pip", "install", "-q", *PINS], check=True)
    return python


def versions(python):
    code = ("import sys, numpy, pandas, numba, vectorbt, backtesting; print(sys.version.split()[0], "
            "numpy.__version__, pandas.__version__, numba.__version__, vectorbt.__version__, backtesting.__version__)")
    out = subprocess.run([python, "-c", code], capture_output=True, text=True, env=worker_env())
    if out.returncode != 0:
        sys.exit(f"the venv cannot import the engines:\n{out.stderr}")
    names = ["Python", "numpy", "pandas", "numba", "vectorbt", "backtesting.py"]
    return dict(zip(names, out.stdout.split()))


# ---------------------------------------------------------------- checks


def same(a, b):
    """Same round trips and the same PnL to the cent."""
    return a["round_trips"] == b["round_trips"] and abs(a["pnl"] - b["pnl"]) < 0.005


def fmt(r):
    return f"{r['round_trips']:,} round trips, PnL {r['pnl']:.2f}"


def check_engine(name, keel, exact, own, ties):
    """`exact`: the engine with Keel's averages, must equal Keel; `own`: its own averages,
    may differ only through bars where the averages are exactly equal."""
    if keel is None:
        note(f"{name}: no Keel report to compare with")
        return
    if same(exact, keel):
        note(f"{name} with Keel's exact averages: {fmt(exact)} = Keel: same work")
    else:
        mismatch(f"{name} with Keel's exact averages gives {fmt(exact)}, Keel {fmt(keel)}")
    if ties["differ"] != ties["differ_at_ties"]:
        mismatch(f"{name}'s own averages differ from Keel's at {ties['differ']} bars, "
                 f"only {ties['differ_at_ties']} of them exact ties")
    if same(own, keel):
        note(f"{name} with its own averages: {fmt(own)} = Keel")
    else:
        note(f"{name} with its own averages: {fmt(own)} vs Keel {fmt(keel)} "
             f"({own['round_trips'] - keel['round_trips']:+d} round trips, {own['pnl'] - keel['pnl']:+.2f} PnL): "
             f"its 'above' differs from Keel's at {ties['differ']} bars, all exact ties "
             f"(of {ties['ties']} bars where the averages are equal in decimal, Keel calls "
             f"{ties['keel_above_at_ties']} 'above')")


def parse_sweep_csv(path):
    """{(fast, slow): {round_trips, pnl}} from Keel's `--sweep-out` CSV."""
    import csv
    with open(path, newline="") as f:
        # The first line is Keel's `# keel-sweep grid=… shard=…` header.
        rows = list(csv.DictReader(line for line in f if not line.startswith("#")))
    if not rows:
        return {}
    cols = rows[0].keys()

    def col(*cands, suffix=None):
        for c in cols:
            if c in cands or (suffix and c.endswith(suffix)):
                return c
        return None

    fast, slow = col(suffix="fast"), col(suffix="slow")
    trips = col("round_trips")
    final, initial, ret = col("final_equity"), col("initial_equity"), col("total_return")
    if not (fast and slow and trips and (final or ret)):
        sys.exit(f"cannot read the columns of {path}: {list(cols)}")
    out = {}
    for r in rows:
        if not r[trips]:
            continue  # a combination the strategy refused (fast >= slow)
        if final:
            pnl = float(r[final]) - (float(r[initial]) if initial else INITIAL_EQUITY)
        else:
            pnl = float(r[ret]) * INITIAL_EQUITY
        out[(int(float(r[fast])), int(float(r[slow])))] = {"round_trips": int(float(r[trips])), "pnl": pnl}
    return out


# ---------------------------------------------------------------- the driver


class Bench:
    """One run of the script: the data, the engines' figures and the checks between them."""

    def __init__(self, args):
        self.args = args
        self.only = set(args.only or ["keel", "vectorbt", "backtesting"])
        self.keel = os.path.abspath(args.keel)
        self.have_keel = os.access(self.keel, os.X_OK)
        if not self.have_keel:
            if "keel" in self.only:
                sys.exit(f"no Keel binary at {self.keel} (build it with `cargo build --release`, or pass --keel)")
            note(f"no Keel binary at {self.keel}: nothing to check the other engines against")
        self.work = args.workdir
        self.logs = os.path.join(self.work, "logs")
        os.makedirs(self.logs, exist_ok=True)
        note(f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f} at start")
        self.bars = args.bars
        self.csv = dataset(self.work, self.bars)
        self.small_bars = min(BT_BARS, self.bars)
        self.csv_small = dataset(self.work, self.small_bars)
        self.cfg = write_config(self.work, FAST, SLOW)
        self.skips = []  # rows left out, said under the tables
        self.rows = []  # (engine, bars, wall, peak RSS KiB, key of the Keel wall time it is compared with)
        self.sweep_rows = []  # (engine, wall, peak RSS KiB)
        self.base = {}  # Keel's wall times, for the ratios
        self.vbt_walls = {}  # vectorbt warm and cold, for the ratios under the table
        self.python, self.vers = None, {}
        if self.only & {"vectorbt", "backtesting"}:
            self.python = venv_python(args.skip_install)
            self.vers = versions(self.python)
            note("versions: " + ", ".join(f"{k} {v}" for k, v in self.vers.items()))
        self.vbt_name = f"vectorbt {self.vers.get('vectorbt', '')}".strip()
        self.parquet = self.convert() if self.have_keel else None
        self.has_sweep = self.have_keel and keel_has(self.keel, ["backtest"], "--sweep")
        if self.have_keel and not self.has_sweep:
            self.skip("this keel has no `backtest --sweep`: Keel's sweep rows are skipped" +
                      (" (vectorbt's sweep is still timed, and checked against single Keel runs)"
                       if "vectorbt" in self.only else ""))

    def skip(self, msg):
        note(msg)
        self.skips.append(msg)

    def log(self, name):
        return os.path.join(self.logs, name + ".log")

    def convert(self):
        """The CSV as Parquet through `keel data convert`, if this keel has it."""
        if not keel_has(self.keel, ["data", "convert"], "--out"):
            self.skip("this keel has no `keel data convert`: the Parquet rows are skipped")
            return None
        out_dir = os.path.join(self.work, str(self.bars), "parquet")
        shutil.rmtree(out_dir, ignore_errors=True)
        t0 = time.perf_counter()
        r = subprocess.run([self.keel, "data", "convert", self.csv, "--out", out_dir], capture_output=True, text=True)
        if r.returncode != 0:
            mismatch(f"keel data convert failed: {r.stderr.strip()}")
            return None
        found = sorted(glob.glob(os.path.join(out_dir, "**", "*.parquet"), recursive=True))
        if len(found) != 1:
            mismatch(f"keel data convert wrote {len(found)} .parquet files in {out_dir}, expected 1")
            return None
        note(f"converted to {found[0]} ({os.path.getsize(found[0]) / 1e6:.1f} MB) in {time.perf_counter() - t0:.2f} s")
        return found[0]

    def keel_cmd(self, data, report, config=None):
        return [self.keel, "backtest", "--data", data, "--config", config or self.cfg, "--report", report]

    def keel_once(self, data, report, config=None):
        """One untimed Keel run (for the checks); its report."""
        cmd = self.keel_cmd(data, report, config)
        _, _, rc = run_process(cmd, self.log("keel-once"))
        if rc != 0:
            sys.exit(f"failed ({rc}): {' '.join(cmd)}\n{tail(self.log('keel-once'))}")
        return keel_report(report)

    def keel_single(self):
        """Keel on all the bars (CSV, Parquet) and on the first 100 000; the reference reports."""
        self.keel_ref = self.keel_small = None
        if not self.have_keel:
            return
        rep = os.path.join(self.work, "keel-report.json")
        if "keel" in self.only:
            wall, rss = timed_best(self.keel_cmd(self.csv, rep), self.log("keel-csv"), self.args.runs)
            self.rows.append(("`keel backtest` (CLI, from CSV)", self.bars, wall, rss, "keel"))
            self.base["keel"] = wall
            self.keel_ref = keel_report(rep)
        else:
            self.keel_ref = self.keel_once(self.csv, rep)
        note(f"Keel, {self.bars:,} bars: {fmt(self.keel_ref)}")
        if self.parquet and "keel" in self.only:
            rep_pq = os.path.join(self.work, "keel-report-parquet.json")
            wall, rss = timed_best(self.keel_cmd(self.parquet, rep_pq), self.log("keel-parquet"), self.args.runs)
            self.rows.append(("`keel backtest` (CLI, from Parquet)", self.bars, wall, rss, "keel"))
            self.base["keel_pq"] = wall
            pq = keel_report(rep_pq)
            if not same(pq, self.keel_ref) or pq["bars"] != self.keel_ref["bars"]:
                mismatch(f"Keel from Parquet: {fmt(pq)}, from CSV: {fmt(self.keel_ref)}")
        if self.small_bars == self.bars and "keel" in self.base:
            self.base["keel_small"], self.keel_small = self.base["keel"], self.keel_ref
        elif self.only & {"keel", "backtesting"}:
            rep_small = os.path.join(self.work, "keel-report-small.json")
            wall, rss = timed_best(self.keel_cmd(self.csv_small, rep_small), self.log("keel-small"), self.args.runs)
            self.rows.append(("`keel backtest` (CLI, from CSV)", self.small_bars, wall, rss, "keel_small"))
            self.base["keel_small"] = wall
            self.keel_small = keel_report(rep_small)
            note(f"Keel, {self.small_bars:,} bars: {fmt(self.keel_small)}")

    def vectorbt_single(self):
        res, _, _ = run_worker(self.python, ["vbt-warm", self.csv, str(self.args.runs)], self.log("vbt-warm"))
        self.rows.append((f"{self.vbt_name} warm (in process; averages, signals and portfolio in the timed run)",
                          self.bars, res["best"], res["rss_kb"], "keel"))
        self.vbt_walls["warm"] = res["best"]
        check_engine("vectorbt", self.keel_ref, res["exact"], res["own"], res["ties"])
        cmd = [self.python, os.path.abspath(__file__), "--worker", "vbt-cold", self.csv]
        wall, rss = timed_best(cmd, self.log("vbt-cold"), self.args.runs, worker_env())
        cold = worker_result(self.log("vbt-cold"))
        if not same(cold, res["own"]):
            mismatch(f"vectorbt cold gives {fmt(cold)}, warm {fmt(res['own'])}")
        self.rows.append((f"{self.vbt_name} cold (fresh Python: import, read CSV, run)", self.bars, wall, rss, "keel"))
        self.vbt_walls["cold"] = wall

    def backtesting_py(self):
        res, _, _ = run_worker(self.python, ["bt", self.csv_small, str(self.args.runs)], self.log("bt"))
        self.rows.append((f"backtesting.py {self.vers.get('backtesting.py', '')} (in process, "
                          "`trade_on_close=False`)", self.small_bars, res["best"], res["rss_kb"], "keel_small"))
        check_engine("backtesting.py", self.keel_small, res["exact"], res["own"], res["ties"])

    def keel_sweep(self):
        """Keel's sweep (CSV, Parquet); its rows by (fast, slow), or None."""
        if not (self.has_sweep and "keel" in self.only):
            return None
        combos = sweep_combos()
        out_csv = os.path.join(self.work, "keel-sweep.csv")
        cmd = [self.keel, "backtest", "--data", self.csv, "--config", self.cfg, "--sweep", "sma.fast=5..50:5",
               "--sweep", "sma.slow=20..200:20", "--sweep-out", out_csv]
        wall, rss = timed_best(cmd, self.log("keel-sweep"), self.args.runs)
        self.sweep_rows.append(("`keel backtest --sweep` (CLI, from CSV)", wall, rss))
        self.base["sweep"] = wall
        rows = parse_sweep_csv(out_csv)
        if sorted(rows) != sorted(combos):
            mismatch(f"Keel's sweep has {len(rows)} combinations, expected the {len(combos)} with fast < slow")
        if self.parquet:
            cmd_pq = list(cmd)
            cmd_pq[cmd_pq.index(self.csv)] = self.parquet
            cmd_pq[-1] = os.path.join(self.work, "keel-sweep-parquet.csv")
            wall, rss = timed_best(cmd_pq, self.log("keel-sweep-parquet"), self.args.runs)
            self.sweep_rows.append(("`keel backtest --sweep` (CLI, from Parquet)", wall, rss))
            if parse_sweep_csv(cmd_pq[-1]) != rows:
                mismatch("Keel's sweep from Parquet differs from its sweep from CSV")
        return rows

    def vectorbt_sweep(self, keel_rows):
        """vectorbt's sweep, timed warm and cold, and checked against Keel's sweep (if any)
        and against single Keel runs of a few combinations."""
        combos = sweep_combos()
        res, _, _ = run_worker(self.python, ["vbt-sweep", self.csv, str(self.args.runs)], self.log("vbt-sweep"))
        self.sweep_rows.append((f"{self.vbt_name} warm (`MA.run` over the windows, one `from_signals` over "
                                f"{len(combos)} columns)", res["best"], res["rss_kb"]))
        own = {tuple(c): r for c, r in zip(res["combos"], res["own"])}
        exact = {tuple(c): r for c, r in zip(res["combos"], res["exact"])}
        ties = {tuple(c): t for c, t in zip(res["combos"], res["ties"])}
        cmd = [self.python, os.path.abspath(__file__), "--worker", "vbt-sweep-cold", self.csv]
        wall, rss = timed_best(cmd, self.log("vbt-sweep-cold"), self.args.runs, worker_env())
        cold = worker_result(self.log("vbt-sweep-cold"))
        if any(not same(r, own[tuple(c)]) for c, r in zip(cold["combos"], cold["own"])):
            mismatch("vectorbt's cold sweep differs from its warm sweep")
        self.sweep_rows.append((f"{self.vbt_name} cold (fresh Python: import, read CSV, sweep)", wall, rss))
        bad = [c for c, t in ties.items() if t["differ"] != t["differ_at_ties"]]
        if bad:
            mismatch(f"vectorbt's own averages differ from Keel's at bars that are not ties, in {bad}")
        best_vbt = max(own, key=lambda c: own[c]["pnl"])
        note(f"vectorbt's best combination (by PnL): fast {best_vbt[0]}, slow {best_vbt[1]}: {fmt(own[best_vbt])}")
        if keel_rows is not None:
            wrong = [c for c in combos if c in keel_rows and not same(exact[c], keel_rows[c])]
            if wrong:
                mismatch(f"vectorbt with Keel's averages differs from Keel's sweep at {wrong}")
            else:
                note(f"vectorbt with Keel's exact averages = Keel's sweep in all {len(combos)} combinations")
            differ = [c for c in combos if c in keel_rows and not same(own[c], keel_rows[c])]
            note(f"vectorbt's own averages: {len(combos) - len(differ)} of {len(combos)} combinations equal Keel's; "
                 f"the others differ only through exact ties")
            best_keel = max(keel_rows, key=lambda c: keel_rows[c]["pnl"])
            if best_keel != best_vbt:
                mismatch(f"the best combination differs: Keel {best_keel} {fmt(keel_rows[best_keel])}, "
                         f"vectorbt {best_vbt} {fmt(own[best_vbt])}")
            else:
                note(f"the best combination agrees: fast {best_keel[0]}, slow {best_keel[1]}")
        if not self.have_keel:
            return
        for c in dict.fromkeys([best_vbt, (5, 20), (50, 200)]):
            single = self.keel_once(self.csv, os.path.join(self.work, f"keel-report-{c[0]}-{c[1]}.json"),
                                    write_config(self.work, *c))
            if keel_rows is not None and c in keel_rows and not same(keel_rows[c], single):
                mismatch(f"Keel's sweep row {c} {fmt(keel_rows[c])} differs from a single run {fmt(single)}")
            check_engine(f"vectorbt sweep, fast {c[0]} slow {c[1]}", single, exact[c], own[c], ties[c])

    def run(self):
        self.keel_single()
        if "vectorbt" in self.only:
            self.vectorbt_single()
        if "backtesting" in self.only:
            self.backtesting_py()
        keel_rows = self.keel_sweep()
        if "vectorbt" in self.only:
            self.vectorbt_sweep(keel_rows)
        self.tables()
        if PROBLEMS:
            print(f"\n{len(PROBLEMS)} MISMATCH(ES):")
            for p in PROBLEMS:
                print(f"  - {p}")
            return 1
        print("\nAll checks passed.")
        return 0

    def ratio(self, wall, key):
        b = self.base.get(key)
        return f"{wall / b:.2f}" if b else "–"

    def tables(self):
        print(f"\nSingle run: long-only SMA {FAST}/{SLOW}, one unit, no fees (ratio = the engine's wall time "
              "÷ Keel's from CSV on the same bars; below 1: faster than Keel).\n")
        print("| engine | bars | wall time | bars/s | ratio vs Keel (CSV) | peak RSS |")
        print("| --- | ---: | ---: | ---: | ---: | ---: |")
        for name, bars, wall, rss, key in self.rows:
            print(f"| {name} | {bars:,} | {wall:.3f} s | {bars / wall / 1e6:.2f} M | {self.ratio(wall, key)} | "
                  f"{rss / 1024:.0f} MiB |")
        print()
        for kind, wall in self.vbt_walls.items():
            for key, label in (("keel", "CSV"), ("keel_pq", "Parquet")):
                if key in self.base:
                    print(f"vectorbt {kind} vs Keel from {label}: Keel runs at {wall / self.base[key]:.2f}x "
                          "vectorbt's speed (target from Parquet: >= 2).")
        if self.sweep_rows:
            n = len(sweep_combos())
            total = len(SWEEP_FAST) * len(SWEEP_SLOW)
            print(f"\nSweep: fast 5..50:5 x slow 20..200:20 = {total} combinations, {total - n} with fast >= slow "
                  f"skipped, {n} run, {self.bars:,} bars each (ratio = wall time ÷ Keel's sweep from CSV).\n")
            print("| engine | combinations | wall time | bar-combinations/s | ratio vs Keel (CSV) | peak RSS |")
            print("| --- | ---: | ---: | ---: | ---: | ---: |")
            for name, wall, rss in self.sweep_rows:
                print(f"| {name} | {n} | {wall:.3f} s | {self.bars * n / wall / 1e6:.1f} M | "
                      f"{self.ratio(wall, 'sweep')} | {rss / 1024:.0f} MiB |")
        for msg in self.skips:
            print(f"\nNote: {msg}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    ap.add_argument("--keel", default=os.path.join(root, "target", "release", "keel"))
    ap.add_argument("--bars", type=int, default=1_000_000)
    ap.add_argument("--runs", type=int, default=5, help="timed runs per figure (the best is kept)")
    ap.add_argument("--skip-install", action="store_true", help="use the venv as it is")
    ap.add_argument("--only", choices=["keel", "vectorbt", "backtesting"], action="append",
                    help="time only these engines (repeatable); Keel still runs once for the checks")
    ap.add_argument("--workdir", default=os.path.expanduser("~/.cache/keel/bench-data"))
    ap.add_argument("--worker", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        return worker(args.worker)
    if args.bars < SWEEP_SLOW[-1] or args.runs < 1:
        sys.exit("--bars must be at least 200 and --runs at least 1")
    return Bench(args).run()


# ---------------------------------------------------------------- workers (run under the venv)


def worker(argv):
    kind, args = argv[0], argv[1:]
    fn = {"vbt-warm": w_vbt_warm, "vbt-cold": w_vbt_cold, "bt": w_bt,
          "vbt-sweep": w_vbt_sweep, "vbt-sweep-cold": w_vbt_sweep_cold}[kind]
    result = fn(*args)
    print("RESULT " + json.dumps(result), flush=True)
    return 0


def peak_rss_kb():
    import resource
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def read_bars(path, nrows=None):
    import pandas as pd
    return pd.read_csv(path, nrows=nrows)


def signals(fast, slow):
    """Keel's rule on averages `fast`, `slow` (n x k, NaN while warming up): entries and
    exits at the bar they execute, the one after the decision."""
    import numpy as np
    above = fast > slow  # NaN compares False; equal is not above
    prev = np.zeros_like(above)
    prev[1:] = above[:-1]
    warm_before = np.zeros_like(above)
    warm_before[1:] = ~np.isnan(slow[:-1])  # the first warm bar only records
    decide_buy = above & ~prev & warm_before
    decide_sell = ~above & prev & warm_before
    entries = np.zeros_like(above)
    exits = np.zeros_like(above)
    entries[1:] = decide_buy[:-1]
    exits[1:] = decide_sell[:-1]
    return entries, exits


def keel_sma(cents, period):
    """Keel's `sma_cross` averages (`DecimalSma`, strategies/src/indicators.rs): the sum of
    the window's closes kept exactly (here in integer cents), so averages equal in decimal
    compare equal; as floats, each is one correctly rounded division of the exact sum, which
    keeps every comparison of two averages exact for 2-decimal prices."""
    import numpy as np
    n = cents.shape[0]
    out = np.full(n, np.nan)
    cs = np.concatenate([[0], np.cumsum(cents, dtype=np.int64)])
    if n >= period:
        out[period - 1:] = (cs[period:] - cs[:n + 1 - period]) / (100.0 * period)
    return out


def cents_of(close):
    import numpy as np
    return np.rint(np.asarray(close, dtype=np.float64) * 100).astype(np.int64)


def tie_analysis(cents, fast_p, slow_p, own_fast, own_slow):
    """Where the engine's own 'above' differs from Keel's, and whether each such bar is an
    exact tie (slow·Σfast = fast·Σslow in cents)."""
    import numpy as np
    n = cents.shape[0]
    cs = np.concatenate([[0], np.cumsum(cents)])
    valid = np.arange(n) >= slow_p - 1
    idx = np.arange(n)[valid]
    sum_f = cs[idx + 1] - cs[idx + 1 - fast_p]
    sum_s = cs[idx + 1] - cs[idx + 1 - slow_p]
    tie = slow_p * sum_f == fast_p * sum_s
    keel_above = (keel_sma(cents, fast_p) > keel_sma(cents, slow_p))[valid]
    own_above = (np.asarray(own_fast) > np.asarray(own_slow))[valid]
    differ = own_above != keel_above
    return {"ties": int(tie.sum()), "keel_above_at_ties": int((keel_above & tie).sum()),
            "differ": int(differ.sum()), "differ_at_ties": int((differ & tie).sum())}


def vbt_single(vbt, close, open_, fast_ma=None, slow_ma=None):
    """The run: averages (vectorbt's own unless given), signals, portfolio, result."""
    import numpy as np
    if fast_ma is None:
        fast_ma = vbt.MA.run(close, FAST).ma.to_numpy()
        slow_ma = vbt.MA.run(close, SLOW).ma.to_numpy()
    entries, exits = signals(fast_ma, slow_ma)
    pf = vbt.Portfolio.from_signals(close, entries, exits, price=open_, size=1.0, init_cash=float(INITIAL_EQUITY),
                                    fees=0.0, direction="longonly")
    # The PnL of every trade, the open one marked at the last close: with no fees, the
    # final value less the initial cash (which vectorbt would compute over every bar).
    return {"round_trips": int(pf.trades.closed.count()), "pnl": float(np.round(pf.trades.pnl.sum(), 6))}


def w_vbt_warm(path, runs):
    import vectorbt as vbt
    df = read_bars(path)
    close, open_ = df["close"], df["open"]
    vbt_single(vbt, close, open_)  # warm-up: numba compiles or loads its cache
    gc.collect()
    best = None
    for _ in range(int(runs)):
        t0 = time.perf_counter()
        own = vbt_single(vbt, close, open_)
        took = time.perf_counter() - t0
        best = took if best is None else min(best, took)
        gc.collect()  # vectorbt's objects hold cycles: free one run's arrays before the next
    rss = peak_rss_kb()
    cents = cents_of(close)
    exact = vbt_single(vbt, close, open_, keel_sma(cents, FAST), keel_sma(cents, SLOW))
    own_f = vbt.MA.run(close, FAST).ma.to_numpy()
    own_s = vbt.MA.run(close, SLOW).ma.to_numpy()
    return {"best": best, "rss_kb": rss, "own": own, "exact": exact,
            "ties": tie_analysis(cents, FAST, SLOW, own_f, own_s)}


def w_vbt_cold(path):
    import vectorbt as vbt
    df = read_bars(path)
    return vbt_single(vbt, df["close"], df["open"])


def bt_strategy(average):
    from backtesting import Strategy

    class SmaCross(Strategy):
        fast = FAST
        slow = SLOW

        def init(self):
            self.f = self.I(average, self.data.Close, self.fast)
            self.s = self.I(average, self.data.Close, self.slow)

        def next(self):
            # next() starts at the bar after the first with both averages (backtesting.py
            # skips the warm-up), so [-2] is Keel's recorded state.
            above = self.f[-1] > self.s[-1]
            before = self.f[-2] > self.s[-2]
            if above and not before:
                if not self.position:
                    self.buy(size=1)
            elif before and not above:
                if self.position:
                    self.position.close()

    return SmaCross


def w_bt(path, runs):
    import numpy as np
    import pandas as pd
    from backtesting import Backtest

    df = read_bars(path)
    df.index = pd.to_datetime(df["timestamp"], unit="ms")
    df = df.rename(columns=str.capitalize)[["Open", "High", "Low", "Close", "Volume"]]

    def rolling_mean(values, n):
        return pd.Series(values).rolling(n).mean().to_numpy()

    def keel_average(values, n):
        return keel_sma(cents_of(values), n)

    def run(average):
        stats = Backtest(df, bt_strategy(average), cash=INITIAL_EQUITY, commission=0, trade_on_close=False).run()
        return {"round_trips": int(stats["# Trades"]),
                "pnl": float(np.round(stats["Equity Final [$]"] - INITIAL_EQUITY, 6))}

    run(rolling_mean)  # warm-up
    best = None
    for _ in range(int(runs)):
        t0 = time.perf_counter()
        own = run(rolling_mean)
        took = time.perf_counter() - t0
        best = took if best is None else min(best, took)
        gc.collect()  # vectorbt's objects hold cycles: free one run's arrays before the next
    rss = peak_rss_kb()
    exact = run(keel_average)
    close = df["Close"].to_numpy()
    ties = tie_analysis(cents_of(close), FAST, SLOW, rolling_mean(close, FAST), rolling_mean(close, SLOW))
    return {"best": best, "rss_kb": rss, "own": own, "exact": exact, "ties": ties}


def sweep_combos():
    return [(f, s) for s in SWEEP_SLOW for f in SWEEP_FAST if f < s]


def vbt_sweep(vbt, close, open_, combos, fast_ma=None, slow_ma=None):
    """One vectorized run over every combination: one column each."""
    import numpy as np
    if fast_ma is None:
        fast_ma = vbt.MA.run(close, window=[f for f, _ in combos]).ma.to_numpy()
        slow_ma = vbt.MA.run(close, window=[s for _, s in combos]).ma.to_numpy()
    entries, exits = signals(fast_ma, slow_ma)
    pf = vbt.Portfolio.from_signals(close, entries, exits, price=open_, size=1.0, init_cash=float(INITIAL_EQUITY),
                                    fees=0.0, direction="longonly")
    trips = pf.trades.closed.count().to_numpy()
    pnl = np.round(pf.trades.pnl.sum().to_numpy(), 6)  # as in vbt_single
    return [{"round_trips": int(t), "pnl": float(p)} for t, p in zip(trips, pnl)]


def w_vbt_sweep(path, runs):
    import numpy as np
    import vectorbt as vbt
    df = read_bars(path)
    close, open_ = df["close"], df["open"]
    combos = sweep_combos()
    vbt_sweep(vbt, close, open_, combos)  # warm-up
    gc.collect()
    best = None
    for _ in range(int(runs)):
        t0 = time.perf_counter()
        own = vbt_sweep(vbt, close, open_, combos)
        took = time.perf_counter() - t0
        best = took if best is None else min(best, took)
        gc.collect()  # vectorbt's objects hold cycles: free one run's arrays before the next
    rss = peak_rss_kb()
    cents = cents_of(close)
    windows = sorted({w for c in combos for w in c})
    keel_ma = {w: keel_sma(cents, w) for w in windows}
    exact = vbt_sweep(vbt, close, open_, combos, np.column_stack([keel_ma[f] for f, _ in combos]),
                      np.column_stack([keel_ma[s] for _, s in combos]))
    own_ma = {w: vbt.MA.run(close, w).ma.to_numpy() for w in windows}
    ties = [tie_analysis(cents, f, s, own_ma[f], own_ma[s]) for f, s in combos]
    return {"best": best, "rss_kb": rss, "combos": combos, "own": own, "exact": exact, "ties": ties}


def w_vbt_sweep_cold(path):
    import vectorbt as vbt
    df = read_bars(path)
    combos = sweep_combos()
    return {"combos": combos, "own": vbt_sweep(vbt, df["close"], df["open"], combos)}


if __name__ == "__main__":
    sys.exit(main())
