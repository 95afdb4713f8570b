#!/usr/bin/env python3
"""How long ``./stack trace ID`` takes on local files as logs grow (bench/README.md).

Writes one hour of logs at 100 requests/s (``--requests 360000``) into a temporary
LOG_DIR: per request one NGINX, one uWSGI and one app line (the INFO wide event), and a
browser beacon line for one request in ten, shaped like real lines (taken from a real
stack's files, ids and times varied). Then times, as a user runs it, the whole
``./stack trace ID --json`` command for the oldest, a middle and the newest request, and
``./stack trace --last``; and, for comparison, parsing every line (what trace did before
the byte-level search, and what ``./stack logs`` still does).

    .venv/bin/python -m bench.trace_files [--requests N] [--output bench/results/trace_files.json]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from stackctl import logfiles

from .report import emit

ROOT = Path(__file__).resolve().parent.parent

T0_US = 1_795_558_533_000_000
NGINX = ('{{"time":"2026-11-24T22:15:33+00:00","msec":{msec:.3f},"layer":"nginx","instance":"vm",'
         '"event":"nginx.access","request_id":"{rid}","remote_addr":"127.0.0.1","method":"GET",'
         '"uri":"/pc-builder-app/table","status":200,"bytes_sent":3960,"referer":"",'
         '"user_agent":"Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) '
         'Chrome/156.0.0.0 Safari/537.36","request_time":0.016,"upstream_addr":"unix:/srv/run/{inst}.sock",'
         '"upstream_status":"200","upstream_connect_time":"0.000","upstream_header_time":"0.016",'
         '"upstream_response_time":"0.016","traceparent":""}}\n')
UWSGI = ('{{"layer":"uwsgi","instance":"{inst}","event":"uwsgi.request","request_id":"{rid}",'
         '"method":"GET","uri":"/pc-builder-app/table","status":200,"size":17656,'
         '"start_us":{start},"duration_us":15983,"pid":{pid},"worker":{worker}}}\n')
APP = ('{{"level":"INFO","logger":"pcbuilder.request","pid":{pid},"layer":"app","instance":"{inst}",'
       '"event":"request.finished","request_id":"{rid}","method":"GET","route":"/pc-builder-app/table",'
       '"path":"/pc-builder-app/table","status":200,"bytes":17526,"start_us":{app_start},'
       '"duration_ms":14.719,"db_queries":1,"db_ms":0.585,"db_rows":58,"db_start_us":{db_start},'
       '"components":58,"worker":{worker},"time":"2026-11-24T22:15:33.192268Z"}}\n')
BROWSER = ('{{"level":"INFO","logger":"pcbuilder.browser","pid":{pid},"layer":"browser","instance":"{inst}",'
           '"event":"browser.timing","request_id":"{rid}","page":"/pc-builder-app/table",'
           '"timeOrigin":{origin:.1f},"requestStart":11.2,"responseStart":25.3,"responseEnd":26.9,'
           '"domContentLoadedEventEnd":52.8,"loadEventEnd":73.8,"beacon_request_id":"b{rid}",'
           '"time":"2026-11-24T22:15:33.419501Z"}}\n')


def rid_of(i: int) -> str:
    return f"{i:08x}{'0' * 16}{i * 2654435761 % 2**32:08x}"


def write_logs(log_dir: Path, requests: int) -> int:
    files = {"nginx": open(log_dir / "nginx" / "access.log", "w")}
    for inst in ("app1", "app2"):
        files["uwsgi", inst] = open(log_dir / "uwsgi" / f"{inst}.log", "w")
        files["app", inst] = open(log_dir / "app" / f"{inst}.log", "w")
        files["browser", inst] = open(log_dir / "browser" / f"{inst}.log", "w")
    try:
        for i in range(requests):
            inst, pid, worker = ("app1", 1001, 1) if i % 2 else ("app2", 2001, 2)
            start = T0_US + i * 10_000  # 100 requests per second
            rid = rid_of(i)
            files["nginx"].write(NGINX.format(msec=(start + 16_000) / 1e6, rid=rid, inst=inst))
            files["uwsgi", inst].write(UWSGI.format(rid=rid, inst=inst, start=start + 900, pid=pid,
                                                    worker=worker))
            files["app", inst].write(APP.format(rid=rid, inst=inst, pid=pid, worker=worker,
                                                app_start=start + 1500, db_start=start + 2300))
            if i % 10 == 0:
                files["browser", inst].write(BROWSER.format(rid=rid, inst=inst, pid=pid,
                                                            origin=(start - 11_000) / 1000))
    finally:
        for fh in files.values():
            fh.close()
    return sum(p.stat().st_size for p in log_dir.rglob("*.log"))


def timed(cmd: list[str], env: dict, runs: int = 3) -> tuple[float, subprocess.CompletedProcess]:
    times, result = [], None
    for _ in range(runs):
        t = time.perf_counter()
        result = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True)
        times.append(time.perf_counter() - t)
        if result.returncode != 0:
            raise SystemExit(f"{' '.join(cmd)} failed:\n{result.stdout}\n{result.stderr}")
    return statistics.median(times), result


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--requests", type=int, default=360_000, help="default: 1 h at 100 requests/s")
    p.add_argument("--output", type=Path, default=ROOT / "bench" / "results" / "trace_files.json")
    args = p.parse_args()

    work = Path(tempfile.mkdtemp(prefix="trace-bench-"))
    try:
        log_dir = work / "log"
        for layer in ("nginx", "uwsgi", "app", "browser"):
            (log_dir / layer).mkdir(parents=True)
        print(f"writing {args.requests} requests' logs to {log_dir} ...", file=sys.stderr)
        size = write_logs(log_dir, args.requests)
        lines = sum(1 for f in log_dir.rglob("*.log") for _ in open(f, "rb"))
        print(f"{lines} lines, {size / 1e6:.0f} MB", file=sys.stderr)
        env = {**os.environ, "LOG_DIR": str(log_dir), "RUN_DIR": str(work / "run")}
        env.pop("LOKI_URL", None)
        stack = [str(ROOT / "stack"), "trace"]
        results = {}
        for name, i in (("oldest", 0), ("middle", args.requests // 2), ("newest", args.requests - 1)):
            seconds, out = timed([*stack, rid_of(i), "--json"], env)
            assert json.loads(out.stdout)["request_id"] == rid_of(i)
            results[f"trace {name}"] = seconds
            print(f"./stack trace <{name}> --json: {seconds:.3f} s", file=sys.stderr)
        seconds, out = timed([*stack, "--last", "--json"], env)
        assert json.loads(out.stdout)["request_id"] == rid_of(args.requests - 1)
        results["trace --last"] = seconds
        print(f"./stack trace --last --json: {seconds:.3f} s", file=sys.stderr)
        t = time.perf_counter()
        parsed = len(logfiles.read_records(log_dir))
        results["parse every line (before)"] = time.perf_counter() - t
        print(f"parsing all {parsed} lines: {results['parse every line (before)']:.3f} s", file=sys.stderr)
        report = {"requests": args.requests, "lines": lines, "bytes": size,
                  "seconds": {k: round(v, 3) for k, v in results.items()},
                  "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                              "loadavg": os.getloadavg()},
                  "when": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
        emit(report, args.output)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
