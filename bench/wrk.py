"""wrk, the load generator (Debian's package), run once and its numbers read exactly."""
from __future__ import annotations

import argparse
import json
import re
import subprocess

from pathlib import Path

from stackctl import tools

WRK_BIN = str(tools.path("wrk"))
REPORT_LUA = Path(__file__).resolve().parent / "wrk_report.lua"


def parse_duration(text: str) -> int:
    """'10s', '2m', '10' -> seconds."""
    m = re.fullmatch(r"\s*(\d+)\s*([smh]?)\s*", text)
    if not m:
        raise argparse.ArgumentTypeError(f"not a duration: {text!r} (use e.g. 10s or 1m)")
    return int(m.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600}[m.group(2)]


def run_wrk(url: str, seconds: int, args) -> dict:
    cmd = [WRK_BIN, "-t", str(args.threads), "-c", str(args.connections), "-d", f"{seconds}s",
           "--timeout", args.timeout, "--latency", "-s", str(REPORT_LUA), url]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 60)
    if result.returncode != 0:
        raise RuntimeError(f"wrk failed ({result.returncode}): {result.stderr.strip() or result.stdout.strip()}")
    report = None
    for line in result.stdout.splitlines():
        if line.startswith("BENCH_JSON "):
            report = json.loads(line[len("BENCH_JSON "):])
    if report is None:
        raise RuntimeError("wrk printed no BENCH_JSON line (is bench/wrk_report.lua intact?):\n" + result.stdout)
    m = re.search(r"Requests/sec:\s*([\d.]+)", result.stdout)
    lat = report["latency_us"]
    errors = report["errors"]
    return {
        "requests": report["requests"],
        "duration_s": report["duration_us"] / 1e6,
        "requests_per_s": report["requests"] / (report["duration_us"] / 1e6),
        "wrk_text_requests_per_s": float(m.group(1)) if m else None,
        "bytes": report["bytes"],
        "errors": errors,
        "failed": sum(errors.values()),
        "latency_ms": {k: lat[k] / 1000 for k in ("p50", "p75", "p90", "p99", "p99_9", "min", "max")}
                      | {"mean": lat["mean"] / 1000, "stdev": lat["stdev"] / 1000},
        "wrk_output": result.stdout,
    }


