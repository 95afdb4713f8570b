#!/usr/bin/env python3
"""What Logs Drilldown's pattern ingester costs Loki in memory (bench/README.md).

Runs the real stack (``./stack up -d`` with the real Loki and Alloy, tests/support/real.py)
with the project's loki.yaml as it is (pattern ingester on) and with
``-pattern-ingester.enabled=false`` added to Loki's command line (everything else equal),
sends the same traffic to each (``--requests`` GETs of /table and /main, with unique ids),
waits until Loki holds every line of it and then ``--settle`` seconds more (the pattern
ingester samples every 10 s), and reads Loki's resident memory (VmRSS, and its peak
VmHWM, from /proc) and its live Go heap just after a garbage collection (``HeapAlloc`` of
``/debug/pprof/heap?gc=1``: what Loki holds, without the collector's rhythm). Each traffic
runs with the default ``DB_SLOW_MS`` (request lines only: nearly nothing for the pattern
ingester to group) and with ``DB_SLOW_MS=0`` (every query also logged with its SQL: the
patterns Drilldown shows). Configurations are interleaved over ``--rounds`` rounds; the
report gives medians. Memory measured on this shared 2-core machine varies between
runs: read the difference, not the last megabyte.

    .venv/bin/python -m bench.loki_memory [--rounds 2] [--requests 2000] [--output FILE]
"""
from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

import requests

from tests.support import real
from tests.support.load import Load
from tests.support.stack import stop_stack

ROOT = Path(__file__).resolve().parent.parent
OUTPUT = ROOT / "bench" / "results" / "loki_memory.json"
TRAFFIC = {"request lines": {}, "request lines + every query (DB_SLOW_MS=0)": {"DB_SLOW_MS": "0"}}
PATTERNS = {"pattern ingester on": [], "pattern ingester off": ["-pattern-ingester.enabled=false"]}


def say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def loki_wrapper(folder: Path, extra: list[str]) -> str:
    """A LOKI_BIN that runs the real Loki with ``extra`` flags (exec: same PID, same signals)."""
    path = folder / "loki"
    path.write_text(f'#!/bin/sh\nexec {real.binary("loki")} "$@" {" ".join(extra)}\n')
    path.chmod(0o755)
    return str(path)


def memory(stack) -> dict:
    """Loki's resident memory, and its live Go heap right after a garbage collection (Go's
    heap profile with gc=1 runs one first): RSS follows the collector's rhythm, that does not."""
    pid = stack.pid("loki")
    status = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines())
    profile = requests.get(real.loki_of(stack).base + "/debug/pprof/heap", params={"gc": 1, "debug": 1},
                           timeout=60).text
    live = int(re.search(r"^# HeapAlloc = (\d+)$", profile, re.M).group(1))
    return {"rss_mib": int(status["VmRSS"].split()[0]) / 1024, "peak_rss_mib": int(status["VmHWM"].split()[0]) / 1024,
            "live_heap_mib": live / 2**20}


def one_run(folder: Path, flags: list[str], env: dict, n: int, settle_s: float) -> dict:
    stack = real.start_real_stack(folder / "stack", LOKI_BIN=loki_wrapper(folder, flags), **env)
    try:
        prefix = f"mem{time.time_ns() % 10**8}"
        sent = []
        for path in ("/pc-builder-app/table", "/pc-builder-app/main"):
            with Load(stack, f"{prefix}{len(sent)}", threads=4, max_requests=n // 2, path=path) as load:
                load.wait()
            assert not load.failures, load.failures[:3]
            sent += load.sent
        real.loki_of(stack).wait_for_ids(sent, prefix, ("nginx", "uwsgi", "app"), timeout=300)
        time.sleep(settle_s)
        return {"requests": len(sent), **memory(stack)}
    finally:
        stop_stack(stack)


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--requests", type=int, default=2000)
    ap.add_argument("--settle", type=float, default=30.0, help="seconds to wait after delivery")
    ap.add_argument("--output", type=Path, default=OUTPUT)
    args = ap.parse_args(argv)
    if real.missing():
        raise SystemExit(f"loki_memory: {'; '.join(real.missing())}; {real.HOW}")
    runs: dict[str, list] = {}
    total, done = args.rounds * len(TRAFFIC) * len(PATTERNS), 0
    for round_ in range(1, args.rounds + 1):
        for traffic, env in TRAFFIC.items():
            for patterns, flags in PATTERNS.items():
                done += 1
                say(f"[{done}/{total}] {traffic}, {patterns} (round {round_}) ...")
                with tempfile.TemporaryDirectory(prefix="loki-memory-") as tmp:
                    result = one_run(Path(tmp), flags, env, args.requests, args.settle)
                say(f"    Loki RSS {result['rss_mib']:.1f} MiB, live heap {result['live_heap_mib']:.1f} MiB")
                runs.setdefault(f"{traffic} / {patterns}", []).append(result)
    medians = {name: {k: statistics.median(r[k] for r in rs) for k in ("rss_mib", "peak_rss_mib", "live_heap_mib")}
               for name, rs in runs.items()}
    report = {"measured": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "requests": args.requests,
              "settle_s": args.settle, "rounds": args.rounds,
              "load_average": Path("/proc/loadavg").read_text().split()[:3], "medians": medians, "runs": runs}
    args.output.write_text(json.dumps(report, indent=2) + "\n")
    print("| traffic | pattern ingester | Loki RSS (MiB) | peak RSS (MiB) | live Go heap after GC (MiB) |")
    print("|---|---|---|---|---|")
    for name, m in medians.items():
        traffic, patterns = name.split(" / ")
        print(f"| {traffic} | {patterns.split()[-1]} | {m['rss_mib']:.0f} | {m['peak_rss_mib']:.0f} |"
              f" {m['live_heap_mib']:.0f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
