#!/usr/bin/env python3
"""What the app's logging costs per request, measured in one process (bench/README.md).

1. **Per request**, ``GET /pc-builder-app/table`` through Flask's test client in three
   configurations:
     off    LOG_LEVEL=WARNING, no Loki          (the request without logging)
     file   LOG_LEVEL=INFO, the JSON file only  (+ the app's file line(s))
     ship   LOG_LEVEL=INFO, file + Loki         (+ shipping to bench/loki_sink.py)
   counted in **CPU instructions** with valgrind's callgrind, all threads included (the
   Loki sender too). Instruction counts repeat exactly for the same code and inputs
   whatever else the machine does, where CPU time on this shared 2-core machine varies
   by tens of percent between runs. Each configuration runs N1 and N2 requests; the
   difference divided by N2 - N1 is the per-request count, without start-up. The file
   line costs ``file - off``, shipping ``ship - file``. To read them as time, the ``off``
   configuration is also timed natively (CPU time per request): instructions x that
   rate. Shipping pushes batches of ``LOKI_BATCH_SIZE`` (default here 300: what one
   worker gathers in the 1 s interval at ~300 requests/s); no push runs on a timer, so
   the count does not depend on how slow valgrind makes the clock.
   ``--service DIR`` measures another checkout's ``service/`` (the code before a change:
   ``git worktree add /tmp/before <commit>``), with the same venv and script.

2. **Per line**: rendering one wide event (the ``request.finished`` of /table) with each
   serializer python-json-logger ships (stdlib json, orjson, msgspec) through the
   library's general path, and with this app's formatter (msgspec, lean path).

    .venv/bin/python -m bench.log_cost [--service DIR] [--output FILE]
"""
from __future__ import annotations

import argparse
import logging
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tests.support.env import free_port

from .report import emit

ROOT = Path(__file__).resolve().parent.parent
CONFIGS = ("off", "file", "ship")
WIDE_EVENT = {"event": "request.finished", "request_id": "0675cfb9864737037581ec8fcea47114",
              "method": "GET", "route": "/pc-builder-app/table", "path": "/pc-builder-app/table",
              "status": 200, "bytes": 17526, "start_us": 1795558533267626, "duration_ms": 14.719,
              "db_queries": 1, "db_ms": 0.585, "db_rows": 58, "db_start_us": 1795558533269714,
              "components": 58, "worker": 2}


# --- the child: one configuration, N requests ------------------------------------------

def child(config: str, requests: int, loki_url: str, workdir: Path) -> float:
    """Run ``requests`` requests after a warm-up; CPU seconds of those requests."""
    from pcbuilder import create_app, loki_shipping

    level = "WARNING" if config == "off" else "INFO"
    os.environ.update(LOG_LEVEL=level, LOKI_BATCH_INTERVAL="3600")
    app = create_app({"TESTING": True, "DATABASE": str(workdir / "db.sqlite3"),
                      "APP_LOG_FILE": str(workdir / f"{config}.log"), "INSTANCE_NAME": "bench",
                      "LOG_LEVEL": level, "LOKI_URL": loki_url if config == "ship" else ""})
    client = app.test_client()
    for _ in range(20):  # warm-up: imports, caches, the database
        client.get("/pc-builder-app/table")
    start = time.process_time()
    for _ in range(requests):
        assert client.get("/pc-builder-app/table").status_code == 200
    shipper = loki_shipping.current()
    if shipper is not None:  # push what is left: its CPU belongs to the requests
        shipper.stop(timeout=60)
    return time.process_time() - start


# --- the parent -------------------------------------------------------------------------

def child_env(args) -> dict:
    """The measured checkout's ``service/`` first on the path (before this venv's editable
    install of this one), the project root for ``bench`` and ``tests.support``."""
    path = os.pathsep.join([str(args.service), str(ROOT)])
    return {**os.environ, "LOKI_BATCH_SIZE": str(args.batch_size), "PYTHONPATH": path}


def instructions(config: str, requests: int, args, loki_url: str, workdir: Path) -> int:
    out = workdir / f"callgrind.{config}.{requests}.out"
    cmd = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}",
           sys.executable, "-m", "bench.log_cost", "--child", config, "--requests", str(requests), str(requests),
           "--service", str(args.service), "--loki-url", loki_url, "--workdir", str(workdir)]
    env = {**child_env(args), "PYTHONHASHSEED": "0"}
    subprocess.run(cmd, check=True, capture_output=True, env=env, cwd=ROOT)
    totals = re.search(r"^(?:summary|totals):\s*(\d+)", out.read_text(), re.M)
    return int(totals.group(1))


def native_us_per_request(config: str, requests: int, args, loki_url: str, workdir: Path) -> float:
    cmd = [sys.executable, "-m", "bench.log_cost", "--child", config, "--requests", str(requests), str(requests),
           "--service", str(args.service), "--loki-url", loki_url, "--workdir", str(workdir)]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, env=child_env(args), cwd=ROOT)
    return float(out.stdout.strip().splitlines()[-1]) / requests * 1e6


def per_request(args) -> dict:
    sink_port = free_port()
    sink = subprocess.Popen([sys.executable, "-m", "bench.loki_sink", str(sink_port)],
                            stdout=subprocess.DEVNULL, cwd=ROOT)
    loki_url = f"http://127.0.0.1:{sink_port}/loki/api/v1/push"
    n1, n2 = args.requests
    ir: dict[str, int] = {}
    try:
        time.sleep(0.5)
        with tempfile.TemporaryDirectory(prefix="log-cost-") as tmp:
            for config in CONFIGS:
                counts = [instructions(config, n, args, loki_url, Path(tmp)) for n in (n1, n2)]
                ir[config] = round((counts[1] - counts[0]) / (n2 - n1))
                print(f"{config}: {ir[config]:,} instructions/request", file=sys.stderr)
            native = sorted(native_us_per_request("off", 1000, args, loki_url, Path(tmp))
                            for _ in range(3))[1]
    finally:
        sink.terminate()
        sink.wait(10)
    us_per_ir = native / ir["off"]
    print(f"off natively: {native:.0f} us CPU/request -> {us_per_ir * 1e6:.1f} us per million"
          " instructions", file=sys.stderr)
    return {
        "instructions_per_request": ir,
        "file_line": {"instructions": ir["file"] - ir["off"],
                      "us": round((ir["file"] - ir["off"]) * us_per_ir, 1),
                      "share_of_request": round((ir["file"] - ir["off"]) / ir["off"], 4)},
        "shipping": {"instructions": ir["ship"] - ir["file"],
                     "us": round((ir["ship"] - ir["file"]) * us_per_ir, 1),
                     "share_of_request": round((ir["ship"] - ir["file"]) / ir["off"], 4)},
        "off_us_per_request_native": round(native, 1),
        "requests": [n1, n2], "batch_size": args.batch_size,
    }


def per_line(repeat: int = 20000) -> dict:
    from pythonjsonlogger.json import JsonFormatter
    from pythonjsonlogger.msgspec import MsgspecFormatter
    from pythonjsonlogger.orjson import OrjsonFormatter

    from pcbuilder.logging_config import json_formatter

    fields = dict(rename_fields={"levelname": "level", "name": "logger", "message": "event",
                                 "process": "pid"},
                  static_fields={"layer": "app", "instance": "app1"}, timestamp="time")
    fmt = "%(levelname)s %(name)s %(message)s %(process)d"
    formatters = {
        "python-json-logger json (stdlib, ensure_ascii)": JsonFormatter(fmt, json_ensure_ascii=True, **fields),
        "python-json-logger orjson": OrjsonFormatter(fmt, **fields),
        "python-json-logger msgspec": MsgspecFormatter(fmt, **fields),
        "this app: msgspec, lean path for structlog events": json_formatter("app1"),
    }
    record = logging.LogRecord("pcbuilder.request", logging.INFO, "", 0, dict(WIDE_EVENT), (), None)
    out = {}
    for name, formatter in formatters.items():
        for _ in range(1000):
            formatter.format(record)
        start = time.process_time()
        for _ in range(repeat):
            formatter.format(record)
        out[name] = round((time.process_time() - start) / repeat * 1e6, 2)
        print(f"{name}: {out[name]} us/line", file=sys.stderr)
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--requests", type=int, nargs=2, default=[50, 250], metavar=("N1", "N2"))
    p.add_argument("--batch-size", type=int, default=300)
    p.add_argument("--service", type=Path, default=ROOT / "service",
                   help="the service/ folder whose pcbuilder package is measured")
    p.add_argument("--output", type=Path)
    p.add_argument("--child", choices=CONFIGS, help=argparse.SUPPRESS)
    p.add_argument("--loki-url", default="", help=argparse.SUPPRESS)
    p.add_argument("--workdir", type=Path, help=argparse.SUPPRESS)
    args = p.parse_args()
    args.service = args.service.resolve()
    for name in ("LOKI_URL", "LOG_LEVEL"):
        os.environ.pop(name, None)
    if args.child:
        print(child(args.child, args.requests[0], args.loki_url, args.workdir))
        return 0
    report = {"service": str(args.service / "pcbuilder"), "per_request": per_request(args),
              "loadavg": os.getloadavg(), "when": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    if args.service == (ROOT / "service").resolve():
        report["per_line_us"] = per_line()  # this checkout's formatter only
    emit(report, args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
