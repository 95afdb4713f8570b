"""CPU per line of the real Alloy and Loki alone, each with a given config (bench/README.md).

The whole-stack benchmark (bench/run.py) reads Alloy's and Loki's CPU next to everything
else wrk and the stack do on the same cores. This runs one of them alone, on a fixed
traffic, so a config change can be compared by its own CPU:

- ``alloy``: NGINX and uWSGI lines (the stack's formats) are appended to their files at a
  fixed rate; Alloy tails them with ``--alloy-config`` and pushes to the stand-in
  (bench/loki_sink.py). Alloy's CPU from the first line until it counts every one sent
  (its ``loki_write_sent_entries_total``), minus its idle rate (measured first) over that time, divided
  by the lines.
- ``loki``: pushes of the three layers' lines (the app's with structured metadata, as the
  app sends them) at the same rate into the real Loki with ``--loki-config``; Loki's CPU
  from the first push until a query counts every line, minus its idle rate.
  One push of all three layers every ``--loki-push-every`` seconds.

    .venv/bin/python -m bench.pipeline_cost [alloy|loki|both] [--rate 200] [--seconds 15]
        [--alloy-config FILE] [--loki-config FILE] [--rounds 3]

Needs the real binaries (.tools/bin or ALLOY_BIN/LOKI_BIN, as tests/support/real.py).
"""
from __future__ import annotations

import argparse
import functools
import gzip
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path

from tests.support.env import free_port
from tests.support.real import binary

from . import cpu
from .servers import LokiSink, ROOT, say, stop_process, wait_ready

ALLOY_CONFIG = ROOT / "observability" / "alloy" / "config.alloy"
LOKI_CONFIG = ROOT / "observability" / "loki" / "loki.yaml"
RID = "0123456789abcdef0123456789ab{:04x}"


def nginx_line(i: int, now: float) -> str:
    return ('{"time":"%s","msec":%.3f,"layer":"nginx","instance":"bench","event":"nginx.access",'
            '"request_id":"%s","remote_addr":"127.0.0.1","remote_user":"","method":"GET",'
            '"uri":"/pc-builder-app/api/components/1","status":200,"bytes_sent":412,"referer":"",'
            '"user_agent":"","request_time":0.004,"upstream_addr":"unix:/run/app-1.sock",'
            '"upstream_status":"200","upstream_connect_time":"0.000","upstream_header_time":"0.004",'
            '"upstream_response_time":"0.004","traceparent":""}'
            % (time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(now)), now, RID.format(i % 65536)))


def uwsgi_line(i: int, now: float) -> str:
    return ('{"layer":"uwsgi","instance":"bench","event":"uwsgi.request","request_id":"%s",'
            '"method":"GET","uri":"/pc-builder-app/api/components/1","status":200,"size":412,'
            '"start_us":%d,"duration_us":3712,"pid":4242,"worker":1}'
            % (RID.format(i % 65536), int(now * 1e6)))


def app_line(i: int, now: float) -> str:
    return ('{"time":"%s","level":"INFO","logger":"pcbuilder.request","event":"request.finished",'
            '"pid":4242,"layer":"app","instance":"bench","request_id":"%s","method":"GET",'
            '"route":"/api/components/<int:component_id>","path":"/pc-builder-app/api/components/1",'
            '"status":200,"bytes":412,"start_us":%d,"duration_ms":3.1,"db_queries":1,"db_ms":0.3,'
            '"db_rows":1,"db_start_us":%d,"components":1,"worker":1}'
            % (time.strftime("%Y-%m-%dT%H:%M:%S.000000+00:00", time.gmtime(now)),
               RID.format(i % 65536), int(now * 1e6), int(now * 1e6) + 100))


def proc_ns(pid: int) -> int:
    return sum(cpu.thread_ns(pid, t) for t in cpu.threads(pid))


def paced(rate: float, seconds: float, step, tick: float):
    """Call ``step(ids, now)`` every ``tick`` seconds with the ids due at ``rate`` per second."""
    total, start, i = int(rate * seconds), time.time(), 0
    while i < total:
        due = min(total, int((time.time() - start) * rate) + 1)
        if due > i:
            step(range(i, due), time.time())
            i = due
        time.sleep(tick)
    return total


def idle_rate(pid: int, seconds: float = 5.0) -> float:
    """ns of CPU per second the process spends with nothing to do."""
    before = proc_ns(pid)
    time.sleep(seconds)
    return (proc_ns(pid) - before) / seconds


def measure(pid: int, send, arrived, lines: int, rate: float, seconds: float, tick: float) -> dict:
    idle = idle_rate(pid)
    t0, c0 = time.monotonic(), proc_ns(pid)
    paced(rate, seconds, send, tick)
    deadline = time.monotonic() + 60
    while arrived() < lines:
        if time.monotonic() > deadline:
            raise RuntimeError(f"only {arrived()} of {lines} lines arrived")
        time.sleep(0.2)
    t1, c1 = time.monotonic(), proc_ns(pid)
    busy = (c1 - c0) - idle * (t1 - t0)
    return {"lines": lines, "cpu_ms": (c1 - c0) / 1e6, "idle_ms_per_s": idle / 1e6,
            "us_per_line": busy / 1000 / lines, "us_per_line_with_idle": (c1 - c0) / 1000 / lines}


def alloy_round(work: Path, config: Path, rate: float, seconds: float) -> dict:
    logs = work / "logs"
    for sub in ("nginx", "uwsgi", "browser"):
        (logs / sub).mkdir(parents=True, exist_ok=True)
    nginx, uwsgi = logs / "nginx" / "access.log", logs / "uwsgi" / "bench.log"
    nginx.touch()
    uwsgi.touch()
    sink = LokiSink(work)
    sink.start()
    port = free_port()
    env = {**os.environ, "LOG_DIR": str(logs), "LOKI_URL": sink.push_url, "STACK_ENV": "bench"}
    out = open(work / "alloy.err", "wb")
    proc = subprocess.Popen([binary("alloy"), "run", f"--server.http.listen-addr=127.0.0.1:{port}",
                             "--disable-reporting", f"--storage.path={work}/alloy-data", str(config)],
                            env=env, stdout=out, stderr=out, start_new_session=True)
    try:
        wait_ready(f"http://127.0.0.1:{port}/-/ready", 60, "alloy", alive=lambda: proc.poll() is None)
        time.sleep(6)  # past the first file_match sync: both files are tailed
        fn, fu = open(nginx, "a"), open(uwsgi, "a")

        def send(ids, now):
            fn.write("".join(nginx_line(i, now) + "\n" for i in ids))
            fu.write("".join(uwsgi_line(i, now) + "\n" for i in ids))
            fn.flush()
            fu.flush()

        def sent() -> int:  # Alloy pushes protobuf: its own counter says what it sent
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
                    text = r.read().decode()
            except OSError:
                return 0
            return int(sum(float(l.rsplit(" ", 1)[1]) for l in text.splitlines()
                           if l.startswith("loki_write_sent_entries_total")))

        return measure(proc.pid, send, sent, 2 * int(rate * seconds), rate, seconds, tick=0.02)
    finally:
        stop_process(proc, signal.SIGTERM)
        sink.stop()
        out.close()


def loki_round(work: Path, config: Path, rate: float, seconds: float, tick: float = 0.1) -> dict:
    port, grpc = free_port(), free_port()
    env = {**os.environ, "LOKI_DATA_DIR": str(work / "loki"), "LOKI_LISTEN_ADDR": "127.0.0.1",
           "LOKI_HTTP_PORT": str(port), "LOKI_GRPC_PORT": str(grpc)}
    out = open(work / "loki.err", "wb")
    proc = subprocess.Popen([binary("loki"), f"-config.file={config}", "-config.expand-env=true"],
                            env=env, stdout=out, stderr=out, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    labels = {"service_name": "pc-builder", "instance": "bench", "env": "bench"}

    def push(values_by_layer):
        streams = [{"stream": {**labels, "layer": layer}, "values": values}
                   for layer, values in values_by_layer.items()]
        body = gzip.compress(json.dumps({"streams": streams}).encode(), 1)
        req = urllib.request.Request(base + "/loki/api/v1/push", data=body, method="POST",
                                     headers={"Content-Type": "application/json",
                                              "Content-Encoding": "gzip"})
        urllib.request.urlopen(req, timeout=10).read()

    def send(ids, now):
        ts = str(int(now * 1e9))
        app = [[ts, app_line(i, now), {"request_id": RID.format(i % 65536), "method": "GET",
                                       "path": "/pc-builder-app/api/components/1", "status": "200"}]
               for i in ids]
        md = [{"request_id": RID.format(i % 65536), "method": "GET", "status": "200"} for i in ids]
        push({"app": app,
              "nginx": [[ts, nginx_line(i, now), m] for i, m in zip(ids, md)],
              "uwsgi": [[ts, uwsgi_line(i, now), m] for i, m in zip(ids, md)]})

    def arrived() -> int:
        q = urllib.parse.urlencode({"query": 'sum(count_over_time({env="bench"}[1h]))'})
        try:
            with urllib.request.urlopen(f"{base}/loki/api/v1/query?{q}", timeout=10) as r:
                result = json.load(r)["data"]["result"]
            return int(float(result[0]["value"][1])) if result else 0
        except (OSError, ValueError, KeyError, IndexError):
            return 0

    try:
        wait_ready(base + "/ready", 90, "loki", alive=lambda: proc.poll() is None)
        time.sleep(3)
        return measure(proc.pid, send, arrived, 3 * int(rate * seconds), rate, seconds, tick)
    finally:
        stop_process(proc, signal.SIGTERM)
        out.close()


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.pipeline_cost", description=__doc__.split("\n\n")[0])
    p.add_argument("what", nargs="?", choices=("alloy", "loki", "both"), default="both")
    p.add_argument("--rate", type=float, default=200, help="lines per second per layer (default 200)")
    p.add_argument("--seconds", type=float, default=15)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--alloy-config", type=Path, action="append",
                   help="repeat to compare configs, interleaved per round (default: the project's)")
    p.add_argument("--loki-config", type=Path, action="append", help="the same for Loki")
    p.add_argument("--loki-push-every", type=float, action="append",
                   help="seconds between pushes to Loki (default 0.1: the stack's ~10 pushes a "
                        "second, 4 app workers every 0.5 s and Alloy's); repeat to compare")
    args = p.parse_args(argv)
    plan = []
    if args.what in ("alloy", "both"):
        plan += [("alloy", alloy_round, c) for c in args.alloy_config or [ALLOY_CONFIG]]
    if args.what in ("loki", "both"):
        plan += [("loki", functools.partial(loki_round, tick=t), c)
                 for c in args.loki_config or [LOKI_CONFIG] for t in args.loki_push_every or [0.1]]
    results: dict = {}
    for rnd in range(1, args.rounds + 1):
        for name, run, config in plan:
            with tempfile.TemporaryDirectory(prefix=f"pcb-{name}-") as work:
                r = run(Path(work), config.resolve(), args.rate, args.seconds)
            say(f"{name} {config} round {rnd}: {r['us_per_line']:.1f} µs/line "
                f"({r['us_per_line_with_idle']:.1f} with idle {r['idle_ms_per_s']:.1f} ms/s)")
            tick = getattr(run, "keywords", {}).get("tick")
            results.setdefault((name, str(config) + (f", a push every {tick:g} s" if tick else "")), []).append(r)
    for (name, config), runs in results.items():
        print(f"{name} {config}: median {statistics.median(r['us_per_line'] for r in runs):.1f} µs of CPU "
              f"per line (rounds: {', '.join(format(r['us_per_line'], '.1f') for r in runs)}), "
              f"idle {statistics.median(r['idle_ms_per_s'] for r in runs):.1f} ms/s; "
              f"{args.rate:g} lines/s per layer")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
