"""Freshness: how long after its response a request's line can be queried in the real Loki,
for every shipped layer (NGINX and uWSGI through Alloy, the app through its own sender,
the browser's beacon through Alloy).

Requests with ids of one run's own prefix go to the all-in stack at a steady rate while wrk
keeps it busy; one poller asks Loki, as Grafana would, for every line carrying that prefix
(``{service_name="pc-builder"} |= "<prefix>"``) every ``poll_s`` seconds. A line's freshness
is the start of the first query that returned it minus the moment its response (or, for
the browser layer, the beacon's 204) arrived: at most ``poll_s`` more than the truth.
"""
from __future__ import annotations

import json
import os
import statistics
import subprocess
import threading
import time
import urllib.request

from tests.support.real import Loki

from .servers import say
from .wrk import WRK_BIN

LAYERS = ("nginx", "uwsgi", "app", "browser")


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


def measure(server, requests: int = 60, rate: float = 4.0, poll_s: float = 0.1,
            load_connections: int = 4, timeout_s: float = 30.0) -> dict:
    say(f"bench: freshness of {requests} requests' lines in the real Loki ({requests / rate:.0f} s) ...")
    prefix = f"fresh{os.getpid()}t{int(time.time())}"
    loki = Loki(server.loki_base)
    done_at: dict[str, float] = {}       # rid -> when its response (and beacon) arrived
    beacon_at: dict[str, float] = {}
    seen: dict[tuple[str, str], float] = {}
    stop = threading.Event()

    def poll():
        while not stop.is_set():
            started = time.time()
            try:
                entries = loki.query_range(f'{{service_name="pc-builder"}} |= "{prefix}"', since_s=600)
            except (AssertionError, OSError) as exc:
                say(f"bench: freshness query failed: {exc}")
                entries = []
            for e in entries:
                rid = e.metadata.get("request_id", "")
                seen.setdefault((rid, e.labels.get("layer", "")), started)
            stop.wait(max(0.0, poll_s - (time.time() - started)))

    load = subprocess.Popen([WRK_BIN, "-t1", f"-c{load_connections}", f"-d{int(requests / rate) + 5}s",
                             server.base_url + "/pc-builder-app/table"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    poller = threading.Thread(target=poll, daemon=True)
    poller.start()
    try:
        for i in range(requests):
            rid = f"{prefix}-{i:04d}"
            t = time.monotonic()
            _get(server.base_url + "/pc-builder-app/table", rid)
            done_at[rid] = time.time()
            if i % 2 == 0:  # NGINX lets 2 beacons/s through per address
                _beacon(server.base_url, rid)
                beacon_at[rid] = time.time()
            time.sleep(max(0.0, 1 / rate - (time.monotonic() - t)))
        want = {(rid, layer) for rid in done_at for layer in LAYERS if layer != "browser"}
        want |= {(rid, "browser") for rid in beacon_at}
        deadline = time.monotonic() + timeout_s
        while not want <= set(seen) and time.monotonic() < deadline:
            time.sleep(0.2)
    finally:
        stop.set()
        poller.join(5)
        load.terminate()
        load.wait(10)
    layers = {}
    for layer in LAYERS:
        sent = beacon_at if layer == "browser" else done_at
        ages = sorted(seen[(rid, layer)] - sent[rid] for rid in sent if (rid, layer) in seen)
        if not ages:
            layers[layer] = {"seen": 0, "sent": len(sent), "p50_s": float("nan"), "p95_s": float("nan"), "max_s": float("nan")}
            continue
        p95 = ages[min(len(ages) - 1, int(round(0.95 * (len(ages) - 1))))]
        layers[layer] = {"seen": len(ages), "sent": len(sent), "p50_s": round(statistics.median(ages), 3),
                         "p95_s": round(p95, 3), "max_s": round(ages[-1], 3)}
        say(f"        {layer}: {len(ages)}/{len(sent)} seen, p50 {layers[layer]['p50_s']:.2f} s, "
            f"p95 {p95:.2f} s, max {ages[-1]:.2f} s")
    return {"requests": requests, "rate": rate, "poll_s": poll_s, "load_connections": load_connections,
            "layers": layers}
