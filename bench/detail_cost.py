#!/usr/bin/env python3
"""What detail on demand costs (bench/README.md, docs/logs.md "Detail on demand").

1. **Instructions per request** with valgrind's callgrind, in one process, through Flask's
   test client, ``LOG_LEVEL=INFO``, the JSON file only (no Loki), in three configurations:
     off    LOG_DETAIL=off                               (one wide event, nothing buffered)
     on     LOG_DETAIL=on, nothing kept                  (every fine event buffered, then dropped:
                                                          what a normal request pays)
     kept   LOG_DETAIL=on, LOG_DETAIL_SLOW_MS=0          (every request keeps and writes its detail)
   for two targets: ``/pc-builder-app/table`` (a page: listing, one query of 58 rows, a
   template) and ``/pc-builder-app/api/components/1`` (one row as JSON). Instruction counts
   repeat for the same code and inputs whatever else the machine does. Each runs N1 and
   N2 requests; the difference over N2 - N1 is the per-request count, without start-up.
   The goal: ``on`` at most 2 % over ``off``.

2. **wrk ratio** (``--wrk``): two stacks (``./stack up -d``), ``LOG_DETAIL=off`` and the
   defaults (on, ``LOG_DETAIL_SLOW_MS=500``, ``LOG_DETAIL_SAMPLE=0.01``), interleaved
   rounds of wrk on ``/table``; req/s and p99 ratios of medians. On a shared machine these
   move by tens of percent between minutes: the instruction counts are the figure to read.

    .venv/bin/python -m bench.detail_cost [--requests N1 N2] [--wrk] [--output FILE]
"""
from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from .report import emit

ROOT = Path(__file__).resolve().parent.parent
CONFIGS = {
    "off": {"LOG_DETAIL": False},
    "on": {"LOG_DETAIL": True, "LOG_DETAIL_SLOW_MS": 1e12, "LOG_DETAIL_SAMPLE": 0.0},
    "kept": {"LOG_DETAIL": True, "LOG_DETAIL_SLOW_MS": 0.0, "LOG_DETAIL_SAMPLE": 0.0},
}
TARGETS = {"table": "/pc-builder-app/table", "api": "/pc-builder-app/api/components/1"}


# --- the child: one configuration and target, N requests ------------------------------------

def child(config: str, target: str, requests: int, workdir: Path) -> int:
    """Run ``requests`` requests after a warm-up; the app lines they wrote."""
    from pcbuilder import create_app

    log_file = workdir / f"{config}-{target}-{requests}.log"
    app = create_app({"TESTING": True, "DATABASE": str(workdir / "db.sqlite3"), "APP_LOG_FILE": str(log_file),
                      "INSTANCE_NAME": "bench", "LOG_LEVEL": "INFO", "LOKI_URL": "",
                      # under valgrind a query can take 100 ms: no db.slow_query line by chance
                      "DB_SLOW_MS": 1e12, **CONFIGS[config]})
    client = app.test_client()
    path = TARGETS[target]
    for _ in range(20):  # warm-up: imports, caches, the database
        client.get(path)
    before = sum(1 for _ in log_file.open())
    for _ in range(requests):
        assert client.get(path).status_code == 200
    return sum(1 for _ in log_file.open()) - before


def instructions(config: str, target: str, requests: int, workdir: Path) -> tuple[int, int]:
    out = workdir / f"callgrind.{config}.{target}.{requests}.out"
    cmd = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", sys.executable, "-m",
           "bench.detail_cost", "--child", config, target, "--requests", str(requests), str(requests),
           "--workdir", str(workdir)]
    env = {**os.environ, "PYTHONHASHSEED": "0", "PYTHONPATH": str(ROOT)}
    result = subprocess.run(cmd, check=True, capture_output=True, text=True, env=env, cwd=ROOT)
    lines = int(result.stdout.strip().splitlines()[-1])
    totals = re.search(r"^(?:summary|totals):\s*(\d+)", out.read_text(), re.M)
    return int(totals.group(1)), lines


def per_request(n1: int, n2: int, targets) -> dict:
    out: dict = {}
    with tempfile.TemporaryDirectory(prefix="detail-cost-") as tmp:
        for target in targets:
            out[target] = {}
            for config in CONFIGS:
                (i1, _), (i2, lines) = (instructions(config, target, n, Path(tmp)) for n in (n1, n2))
                out[target][config] = {"instructions": round((i2 - i1) / (n2 - n1)),
                                       "app_lines_per_request": round(lines / n2, 2)}
                print(f"{target} {config}: {out[target][config]['instructions']:,} instructions/request, "
                      f"{out[target][config]['app_lines_per_request']} app lines/request", file=sys.stderr)
            ir = {c: out[target][c]["instructions"] for c in CONFIGS}
            out[target]["on_vs_off"] = round(ir["on"] / ir["off"] - 1, 4)
            out[target]["kept_vs_off"] = round(ir["kept"] / ir["off"] - 1, 4)
            out[target]["buffering_instructions"] = ir["on"] - ir["off"]
            out[target]["writing_instructions"] = ir["kept"] - ir["on"]
    return {"requests": [n1, n2], "targets": out}


# --- wrk on two stacks -------------------------------------------------------------------------

def wrk_ratio(rounds: int, seconds: int) -> dict:
    from bench.servers import StackServer
    from bench.wrk import run_wrk

    wrk_args = argparse.Namespace(threads=2, connections=16, timeout="10s")
    common = {"NGINX_API_RATE": "1000000r/s", "APP_INSTANCES": "1"}
    stacks = {
        "off": {**common, "LOG_DETAIL": "off"},
        # the defaults (tests/support/stack.py sets its own for the tests: put them back)
        "on": {**common, "LOG_DETAIL": "on", "LOG_DETAIL_SLOW_MS": "500", "LOG_DETAIL_SAMPLE": "0.01"},
    }
    runs: dict[str, list[dict]] = {name: [] for name in stacks}
    lines: dict[str, dict] = {}
    with tempfile.TemporaryDirectory(prefix="detail-wrk-") as tmp:
        servers = {name: StackServer(name, Path(tmp), settings) for name, settings in stacks.items()}
        try:
            for server in servers.values():
                server.start()
                run_wrk(server.base_url + TARGETS["table"], 2, wrk_args)  # warm-up
            for r in range(rounds):
                for name, server in servers.items():
                    result = run_wrk(server.base_url + TARGETS["table"], seconds, wrk_args)
                    result.pop("wrk_output")
                    runs[name].append(result)
                    print(f"[round {r + 1}] {name}: {result['requests_per_s']:.0f} req/s, "
                          f"p99 {result['latency_ms']['p99']:.1f} ms", file=sys.stderr)
            for name, server in servers.items():
                app_logs = list((server.log_dir / "app").glob("*.log"))
                text = "".join(p.read_text() for p in app_logs)
                lines[name] = {"request_finished": text.count('"event":"request.finished"'),
                               "detail_lines": text.count('"detail":true'),
                               "kept_requests": len(re.findall(r'"detail":"(?:error|slow|sampled)"', text))}
        finally:
            for server in servers.values():
                server.stop()
    med = {name: {"requests_per_s": statistics.median(r["requests_per_s"] for r in rs),
                  "p99_ms": statistics.median(r["latency_ms"]["p99"] for r in rs)} for name, rs in runs.items()}
    return {"rounds": rounds, "seconds": seconds, "target": TARGETS["table"], "medians": med,
            "req_per_s_on_over_off": round(med["on"]["requests_per_s"] / med["off"]["requests_per_s"], 3),
            "p99_on_over_off": round(med["on"]["p99_ms"] / med["off"]["p99_ms"], 3),
            "app_lines": lines, "loadavg": os.getloadavg(), "runs": runs}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--requests", type=int, nargs=2, default=[30, 130], metavar=("N1", "N2"))
    p.add_argument("--targets", nargs="+", choices=TARGETS, default=list(TARGETS))
    p.add_argument("--wrk", action="store_true", help="also the wrk ratio on two stacks")
    p.add_argument("--no-callgrind", action="store_true", help="only the wrk ratio")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--duration", type=int, default=8, help="seconds of one wrk run")
    p.add_argument("--output", type=Path)
    p.add_argument("--child", nargs=2, metavar=("CONFIG", "TARGET"), help=argparse.SUPPRESS)
    p.add_argument("--workdir", type=Path, help=argparse.SUPPRESS)
    args = p.parse_args()
    for name in ("LOKI_URL", "LOG_LEVEL", *(n for n in os.environ if n.startswith("LOG_DETAIL"))):
        os.environ.pop(name, None)
    if args.child:
        print(child(*args.child, args.requests[0], args.workdir))
        return 0
    report: dict = {"loadavg_before": os.getloadavg(), "when": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    if not args.no_callgrind:
        report["per_request"] = per_request(*args.requests, args.targets)
    if args.wrk or args.no_callgrind:
        report["wrk"] = wrk_ratio(args.rounds, args.duration)
    emit(report, args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
