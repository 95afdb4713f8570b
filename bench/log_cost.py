#!/usr/bin/env python3
"""What the app's logging costs per request, measured in one process (bench/README.md).

Two measurements, both on this machine in one run:

1. **Per request**: CPU time (all threads of the process, so the Loki sender counts)
   of ``GET /pc-builder-app/table`` through Flask's test client, in three
   configurations measured in interleaved rounds:
     off    LOG_LEVEL=WARNING, no Loki          (what the request costs without logging)
     file   LOG_LEVEL=INFO, the JSON file only  (+ the file line(s))
     ship   LOG_LEVEL=INFO, file + Loki         (+ shipping to bench/loki_sink.py)
   The file line costs ``file - off``, shipping ``ship - file`` (medians of rounds).
   ``--service DIR`` measures another checkout's ``service/`` (e.g. the code before a
   change: ``git worktree add /tmp/before <commit>``), with the same venv and script.

2. **Per line**: rendering one wide event (the ``request.finished`` of /table) with each
   serializer python-json-logger ships (stdlib json, orjson, msgspec) through the
   library's general path, and with this app's formatter (msgspec, lean path).

    .venv/bin/python bench/log_cost.py [--requests 2000] [--rounds 5] [--service DIR]
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
WIDE_EVENT = {"event": "request.finished", "request_id": "0675cfb9864737037581ec8fcea47114",
              "method": "GET", "route": "/pc-builder-app/table", "path": "/pc-builder-app/table",
              "status": 200, "bytes": 17526, "start_us": 1795558533267626, "duration_ms": 14.719,
              "db_queries": 1, "db_ms": 0.585, "db_rows": 58, "db_start_us": 1795558533269714,
              "components": 58, "worker": 2}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_app(workdir: Path, name: str, loki_url: str):
    from pcbuilder import create_app

    os.environ["LOG_LEVEL"] = "WARNING" if name == "off" else "INFO"
    os.environ["LOKI_BATCH_INTERVAL"] = "0.2"
    return create_app({"TESTING": True, "DATABASE": str(workdir / "db.sqlite3"),
                       "APP_LOG_FILE": str(workdir / f"{name}.log"), "INSTANCE_NAME": "bench",
                       "LOG_LEVEL": os.environ["LOG_LEVEL"],
                       "LOKI_URL": loki_url if name == "ship" else ""})


def stop_shipping() -> None:
    """Push what is left (the sender's CPU belongs to the measurement)."""
    from pcbuilder import loki_shipping

    shipper = loki_shipping.current()
    if shipper is None:
        return
    if hasattr(shipper, "stop"):
        try:
            shipper.stop(timeout=30)
        except TypeError:  # an older shipper's signature
            shipper.stop()


def cpu_per_request(workdir: Path, name: str, loki_url: str, requests: int) -> float:
    app = make_app(workdir, name, loki_url)
    client = app.test_client()
    for _ in range(50):  # warm-up: imports, caches, the database
        client.get("/pc-builder-app/table")
    start = time.process_time()
    for _ in range(requests):
        assert client.get("/pc-builder-app/table").status_code == 200
    stop_shipping()
    return (time.process_time() - start) / requests * 1e6


def per_request(args) -> dict:
    sink_port = free_port()
    sink = subprocess.Popen([sys.executable, str(BENCH / "loki_sink.py"), str(sink_port)],
                            stdout=subprocess.DEVNULL)
    loki_url = f"http://127.0.0.1:{sink_port}/loki/api/v1/push"
    results: dict[str, list[float]] = {"off": [], "file": [], "ship": []}
    try:
        time.sleep(0.5)
        with tempfile.TemporaryDirectory(prefix="log-cost-") as tmp:
            for r in range(args.rounds):
                for name in results:
                    us = cpu_per_request(Path(tmp), name, loki_url, args.requests)
                    results[name].append(us)
                    print(f"round {r + 1}/{args.rounds} {name}: {us:.1f} us CPU/request",
                          file=sys.stderr)
            lines = {name: sum(1 for _ in open(Path(tmp) / f"{name}.log")) for name in ("file", "ship")}
    finally:
        sink.terminate()
        sink.wait(10)
    med = {k: statistics.median(v) for k, v in results.items()}
    total = args.rounds * (args.requests + 50)
    return {"cpu_us_per_request": {k: round(v, 1) for k, v in med.items()},
            "rounds": {k: [round(x, 1) for x in v] for k, v in results.items()},
            "file_line_us_per_request": round(med["file"] - med["off"], 1),
            "shipping_us_per_request": round(med["ship"] - med["file"], 1),
            "lines_per_request": round(lines["file"] / total, 2)}


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
        start = time.perf_counter()
        for _ in range(repeat):
            formatter.format(record)
        out[name] = round((time.perf_counter() - start) / repeat * 1e6, 2)
        print(f"{name}: {out[name]} us/line", file=sys.stderr)
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--requests", type=int, default=2000)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--service", type=Path, default=ROOT / "service",
                   help="the service/ folder whose pcbuilder package is measured")
    p.add_argument("--output", type=Path)
    args = p.parse_args()
    sys.path.insert(0, str(args.service.resolve()))
    for name in ("LOKI_URL", "LOG_LEVEL"):
        os.environ.pop(name, None)
    import pcbuilder

    report = {"service": str(Path(pcbuilder.__file__).parent),
              "per_request": per_request(args), "loadavg": os.getloadavg(),
              "when": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    if args.service.resolve() == (ROOT / "service").resolve():
        report["per_line_us"] = per_line()  # this checkout's formatter only
    text = json.dumps(report, indent=2)
    print(text)
    if args.output:
        args.output.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
