"""Freshness: how long after its response a request's line can be queried in the real Loki,
for every shipped layer (NGINX and uWSGI through Alloy, the app through its own sender,
the browser's beacon through Alloy).

Requests with ids of one run's own prefix go to the all-in stack at a steady rate while wrk
keeps it busy; Loki is asked, as Grafana would, for every line carrying that prefix
(``{service_name="pc-builder"} |= "<prefix>"``, from 2 s before the oldest request whose lines
are not all seen yet: a query reads seconds of the load's lines, not minutes). A query
starts every ``poll_s`` seconds whatever the one before takes (each in a thread of its own:
under load one takes longer than ``poll_s``, and queries one after the other would count
that wait as lateness). A line became queryable after the start of the last query that
missed it and before the end of the first that returned it; its freshness is that end minus
the moment its response (or, for the browser layer, the beacon's 204) arrived, so it errs
long by at most one query's time. The start gives the lower bound, reported beside it.
"""
from __future__ import annotations

import json
import os
import statistics
import subprocess
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor

from tests.support.real import Loki

from .servers import say
from .wrk import WRK_BIN

LAYERS = ("nginx", "uwsgi", "app", "browser")
SERVER_LAYERS = LAYERS[:3]  # a line each per request; the browser's per beacon


def _beacon(base: str, rid: str) -> None:
    origin = time.time() * 1000
    body = json.dumps({"request_id": rid, "page": "/pc-builder-app/table", "timeOrigin": origin,
                       "requestStart": 1.0, "responseStart": 5.0, "responseEnd": 6.0}).encode()
    req = urllib.request.Request(base + "/pc-builder-app/api/timing", data=body, method="POST",
                                 headers={"Content-Type": "text/plain"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        resp.read()


def _get(url: str, rid: str) -> None:
    req = urllib.request.Request(url, headers={"X-Request-ID": rid})
    with urllib.request.urlopen(req, timeout=10) as resp:
        resp.read()


def every(period_s: float, fn, stop: threading.Event, in_flight: int = 8) -> None:
    """Start ``fn`` in a thread of its own every ``period_s`` until ``stop``, whatever the
    last call takes; at most ``in_flight`` at once (one more is skipped, not queued)."""
    slots = threading.BoundedSemaphore(in_flight)

    def run():
        try:
            fn()
        finally:
            slots.release()

    with ThreadPoolExecutor(max_workers=in_flight, thread_name_prefix="every") as pool:
        while not stop.is_set():
            if slots.acquire(blocking=False):
                pool.submit(run)
            stop.wait(period_s)


def queryable_between(answered, key) -> tuple[float, float | None]:
    """When ``key``'s line became queryable: after the start of the last query that missed it,
    before the end of the first that returned it (None: no query returned it)."""
    ends = [end for _, end, keys in answered if key in keys]
    if not ends:
        return float("-inf"), None
    upper = min(ends)
    misses = [start for start, _, keys in answered if key not in keys and start < upper]
    return max(misses, default=float("-inf")), upper


def spread(values: list[float]) -> dict:
    """p50, p95 and max of sorted values, in seconds (empty: NaN)."""
    if not values:
        return {"p50_s": float("nan"), "p95_s": float("nan"), "max_s": float("nan")}
    p95 = values[min(len(values) - 1, int(round(0.95 * (len(values) - 1))))]
    return {"p50_s": round(statistics.median(values), 3), "p95_s": round(p95, 3), "max_s": round(values[-1], 3)}


def measure(server, requests: int = 60, rate: float = 4.0, poll_s: float = 0.1,
            load_connections: int = 4, timeout_s: float = 30.0) -> dict:
    say(f"bench: freshness of {requests} requests' lines in the real Loki ({requests / rate:.0f} s) ...")
    prefix = f"fresh{os.getpid()}t{int(time.time())}"
    loki = Loki(server.loki_base)
    done_at: dict[str, float] = {}       # rid -> when its response (and beacon) arrived
    beacon_at: dict[str, float] = {}
    answered: list[tuple[float, float, set]] = []   # (start, end, keys returned) per query
    lock = threading.Lock()
    stop = threading.Event()
    seen: set[tuple[str, str]] = set()

    def oldest_pending() -> float:
        with lock:
            pending = [t for rid, t in done_at.items() if any((rid, layer) not in seen for layer in SERVER_LAYERS)]
            pending += [t for rid, t in beacon_at.items() if (rid, "browser") not in seen]
        return min(pending, default=time.time())

    def query():
        started = time.time()
        try:
            entries = loki.query_range(f'{{service_name="pc-builder"}} |= "{prefix}"',
                                       since_s=started - oldest_pending() + 2)
        except (AssertionError, OSError) as exc:
            say(f"bench: freshness query failed: {exc}")
            return
        keys = {(e.metadata.get("request_id", ""), e.labels.get("layer", "")) for e in entries}
        with lock:
            answered.append((started, time.time(), keys))
            seen.update(keys)

    load = subprocess.Popen([WRK_BIN, "-t1", f"-c{load_connections}", f"-d{int(requests / rate) + 5}s",
                             server.base_url + "/pc-builder-app/table"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    poller = threading.Thread(target=every, args=(poll_s, query, stop), daemon=True)
    poller.start()
    try:
        for i in range(requests):
            rid = f"{prefix}-{i:04d}"
            t = time.monotonic()
            _get(server.base_url + "/pc-builder-app/table", rid)
            with lock:
                done_at[rid] = time.time()
            if i % 2 == 0:  # NGINX lets 2 beacons/s through per address
                _beacon(server.base_url, rid)
                with lock:
                    beacon_at[rid] = time.time()
            time.sleep(max(0.0, 1 / rate - (time.monotonic() - t)))
        want = {(rid, layer) for rid in done_at for layer in SERVER_LAYERS}
        want |= {(rid, "browser") for rid in beacon_at}
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            with lock:
                if want <= seen:
                    break
            time.sleep(0.2)
    finally:
        stop.set()
        poller.join(30)
        load.terminate()
        load.wait(10)
    layers = {}
    for layer in LAYERS:
        sent = beacon_at if layer == "browser" else done_at
        found = [(rid, queryable_between(answered, (rid, layer))) for rid in sent]
        late = sorted(upper - sent[rid] for rid, (_, upper) in found if upper is not None)
        early = sorted(max(lower, sent[rid]) - sent[rid] for rid, (lower, upper) in found if upper is not None)
        layers[layer] = {"seen": len(late), "sent": len(sent), **spread(late),
                         "lower_p95_s": spread(early)["p95_s"]}
        if late:
            say(f"        {layer}: {len(late)}/{len(sent)} seen, p50 {layers[layer]['p50_s']:.2f} s, "
                f"p95 {layers[layer]['p95_s']:.2f} s (at least {layers[layer]['lower_p95_s']:.2f} s), "
                f"max {layers[layer]['max_s']:.2f} s")
    queries = {"count": len(answered), **spread(sorted(end - start for start, end, _ in answered))}
    if answered:
        say(f"        queries: {len(answered)}, each p50 {queries['p50_s']:.2f} s, p95 {queries['p95_s']:.2f} s, "
            f"max {queries['max_s']:.2f} s")
    return {"requests": requests, "rate": rate, "poll_s": poll_s, "load_connections": load_connections,
            "layers": layers, "queries": queries}
