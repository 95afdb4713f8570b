"""CPU of one push of the app's sender thread, and what the HTTP client's part of it is.

The sender (service/pcbuilder/loki_sender.py) pushes once per ``LOKI_BATCH_INTERVAL`` per
worker, so its cost is mostly per push. This times, in this thread's CPU time (interleaved
rounds, medians), ``Sender.push`` of a batch of the app's lines to the Loki stand-in
(bench/loki_sink.py): the body (msgspec + gzip) and loki-logger-handler's
``LokiRequest.send`` over requests' kept-alive session; then the same gzipped body posted
by urllib3's pool and by ``http.client`` alone: what a leaner client could save at most.

    .venv/bin/python -m bench.push_cost [--lines 25] [--rounds 5]
"""
from __future__ import annotations

import argparse
import http.client
import statistics
import sys
import tempfile
import time
from pathlib import Path

import urllib3

from .pipeline_cost import RID, app_line
from .servers import LokiSink, ROOT

sys.path.insert(0, str(ROOT / "service"))
from pcbuilder.loki_backlog import Backlog  # noqa: E402
from pcbuilder.loki_sender import Sender  # noqa: E402

HEADERS = {"Content-Type": "application/json", "Content-Encoding": "gzip"}


def cpu_us(fn, n: int) -> float:
    for _ in range(10):
        fn()
    t = time.thread_time()
    for _ in range(n):
        fn()
    return (time.thread_time() - t) / n * 1e6


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.push_cost", description=__doc__.split("\n\n")[0])
    p.add_argument("--lines", type=int, default=25, help="lines per push (default 25)")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--pushes", type=int, default=200, help="pushes per round and way")
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="pcb-push-") as work:
        sink = LokiSink(Path(work))
        sink.start()
        try:
            now = time.time()
            batch = [(int(now * 1e9) + i, app_line(i, now),
                      {"request_id": RID.format(i), "method": "GET", "path": "/x", "status": "200"}, 0)
                     for i in range(args.lines)]
            sender = Sender(Backlog(1 << 24), url=sink.push_url, labels={"service_name": "bench"},
                            batch_size=1000, batch_interval=3600, timeout=5, max_backoff=10,
                            report_interval=3600)
            body = sender.body(batch)
            pool = urllib3.HTTPConnectionPool("127.0.0.1", sink.port, maxsize=1, retries=False, timeout=5)
            conn = http.client.HTTPConnection("127.0.0.1", sink.port, timeout=5)

            def raw():
                conn.request("POST", "/loki/api/v1/push", body=body, headers=HEADERS)
                conn.getresponse().read()

            ways = {
                "Sender.push (body + LokiRequest.send, requests)": lambda: sender.push(batch),
                "the body alone (msgspec + gzip 1)": lambda: sender.body(batch),
                "POST by urllib3's pool": lambda: pool.urlopen("POST", "/loki/api/v1/push", body=body,
                                                                headers=HEADERS),
                "POST by http.client": raw,
            }
            results = {k: [] for k in ways}
            for _ in range(args.rounds):
                for name, fn in ways.items():
                    results[name].append(cpu_us(fn, args.pushes))
        finally:
            sink.stop()
    print(f"µs of CPU per push of {args.lines} lines (medians of {args.rounds} rounds):")
    for name, values in results.items():
        print(f"  {statistics.median(values):7.0f}  {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
