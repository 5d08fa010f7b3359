#!/usr/bin/env python3
"""The durable store's two ratio targets (issue 13), timed as a user meets them.

  bench/durable.py cached   [--bin A --bin B ...] [--rounds N]
      A fully cached re-run against the first, uncached run, each in a fresh store:
      the fixtures' `cached_squares` over 10 000 distinct items.
  bench/durable.py recover  [--bin A ...] [--kills N] [--at 0.9]
      nested 10 000/100 killed with SIGKILL once the store has recorded `--at` of its
      20 001 task nodes as succeeded, then `sandflow recover`; against the original run.

Each round runs every binary in turn (interleaved A/B); medians are printed per binary:
the run as sandflow reports it ("succeeded in N ms") and the whole process, spawn to exit.
Build first: `cargo build --release -p sandflow-host`, and the guests (`cargo test` builds
them into examples/target/wasm32-wasip1/release).
"""

import argparse
import json
import os
import re
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WASM = os.path.join(ROOT, "examples/target/wasm32-wasip1/release")
RUN_MS = re.compile(r"succeeded in ([0-9.]+) ms")


def timed(cmd, env=None):
    t0 = time.perf_counter()
    p = subprocess.run(cmd, capture_output=True, text=True, env=env)
    wall = (time.perf_counter() - t0) * 1e3
    if p.returncode != 0:
        sys.exit(f"{' '.join(cmd[:4])}... failed ({p.returncode}):\n{p.stderr[-2000:]}")
    m = RUN_MS.search(p.stderr)
    return (float(m.group(1)) if m else float("nan")), wall, p.stdout, p.stderr


def cached(bins, rounds):
    items = json.dumps(list(range(10_000)))
    wasm = os.path.join(WASM, "fixtures.wasm")
    res = {b: {"first": [], "again": []} for b in bins}
    for r in range(rounds):
        for b in bins:
            with tempfile.TemporaryDirectory() as d:
                db = os.path.join(d, "s.db")
                cmd = [b, "run", wasm, "cached_squares", "--db", db, "--l", items, "--note", '"x"']
                first = timed(cmd)
                again = timed(cmd)
                if "(0 task executions" not in again[3]:
                    sys.exit(f"the second run was not fully cached:\n{again[3]}")
                if first[2] != again[2]:
                    sys.exit("the cached re-run's output differs from the first run's")
                res[b]["first"].append(first[:2])
                res[b]["again"].append(again[:2])
        print(f"round {r + 1}/{rounds}", file=sys.stderr)
    for b in bins:
        f, a = res[b]["first"], res[b]["again"]
        fr, fw = statistics.median(x[0] for x in f), statistics.median(x[1] for x in f)
        ar, aw = statistics.median(x[0] for x in a), statistics.median(x[1] for x in a)
        print(f"{b}: cached re-run: run {fr:.1f} -> {ar:.1f} ms ({fr / ar:.2f}x), "
              f"process {fw:.1f} -> {aw:.1f} ms ({fw / aw:.2f}x), {rounds} fresh pairs")


def succeeded_tasks(db):
    try:
        c = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=0.05)
        n = c.execute("SELECT count(*) FROM nodes WHERE status='succeeded' AND kind='task'").fetchone()[0]
        c.close()
        return n
    except sqlite3.Error:
        return 0


def recover(bins, kills, at, extra):
    wasm = os.path.join(WASM, "nested_dynamics.wasm")
    args = ["multi_wf", "--l", json.dumps(list(range(1, 10_001))), "--chunk", "100"] + extra
    total = 20_001
    res = {b: {"orig": [], "rec": [], "at": []} for b in bins}
    for k in range(kills):
        for b in bins:
            with tempfile.TemporaryDirectory() as d:
                db = os.path.join(d, "s.db")
                res[b]["orig"].append(timed([b, "run", wasm] + args + ["--db", db])[:2])
            with tempfile.TemporaryDirectory() as d:
                db = os.path.join(d, "s.db")
                p = subprocess.Popen([b, "run", wasm] + args + ["--db", db],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
                # Frozen (SIGSTOP) while the store is read, so the run cannot end between
                # the look and the kill; killed at the first look past `at` of its tasks.
                n = 0
                while p.poll() is None:
                    try:
                        os.kill(p.pid, signal.SIGSTOP)
                    except ProcessLookupError:
                        break
                    n = succeeded_tasks(db)
                    if n >= at * total:
                        os.kill(p.pid, signal.SIGKILL)
                        break
                    os.kill(p.pid, signal.SIGCONT)
                    time.sleep(0.002)
                p.wait()
                if p.returncode != -signal.SIGKILL or n >= total:
                    print(f"{b}: the run ended before the kill ({n} tasks recorded); not counted",
                          file=sys.stderr)
                    continue
                m = re.search(r"execution ([0-9a-z]+)", p.stderr.read())
                rec = timed([b, "recover", m.group(1), "--db", db] + extra)
                res[b]["rec"].append(rec[:2])
                res[b]["at"].append(n)
        print(f"kill {k + 1}/{kills}", file=sys.stderr)
    for b in bins:
        o, r = res[b]["orig"], res[b]["rec"]
        if not r:
            print(f"{b}: no kill landed")
            continue
        orr, ow = statistics.median(x[0] for x in o), statistics.median(x[1] for x in o)
        rr, rw = statistics.median(x[0] for x in r), statistics.median(x[1] for x in r)
        print(f"{b}: original run {orr:.1f} ms, process {ow:.1f} ms; recovery (kills at "
              f"{min(res[b]['at'])}-{max(res[b]['at'])} of {total}) run {rr:.1f} ms ({rr / orr:.2f}), "
              f"process {rw:.1f} ms ({rw / ow:.2f})")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("what", choices=["cached", "recover"])
    ap.add_argument("--bin", action="append", default=[])
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--kills", type=int, default=4)
    ap.add_argument("--at", type=float, default=0.9)
    ap.add_argument("--slow", action="store_true",
                    help="recover: run with --workers 1 --max-parallelism 2 so kills land")
    a = ap.parse_args()
    bins = a.bin or [os.path.join(ROOT, "target/release/sandflow")]
    if a.what == "cached":
        cached(bins, a.rounds)
    else:
        extra = ["--workers", "1", "--max-parallelism", "2"] if a.slow else []
        recover(bins, a.kills, a.at, extra)


if __name__ == "__main__":
    main()
