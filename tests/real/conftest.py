"""One real stack (Loki + Alloy) with known traffic, shared by the tests that only read it.

The traffic: a page view with its Navigation Timing beacon (all twelve steps), the other
pages, a static file, a 404, eighty /table views, beacons beyond NGINX's rate limit (429),
an NGINX retry onto the other instance, and a 502 with both instances stopped. ``DB_SLOW_MS=0`` logs every query as
``db.slow_query`` with its SQL: the free text Loki's pattern ingester groups (Logs
Drilldown's patterns, tests/real/test_drilldown.py; ``LOKI_PATTERNS=on``, off by default).
``STACK_ENV`` is not the default, so the ``env`` label is seen to come from it.
"""
from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field

import pytest

from tests.support.real import Loki, loki_of, start_real_stack
from tests.support.stack import RunningStack, stop_stack

ENV = "realtier"
# Loki answers a pattern only once one stream (here: one instance) has it 30 times
TABLE_VIEWS = 80


@dataclass
class Traffic:
    stack: RunningStack
    loki: Loki
    ids: dict = field(default_factory=dict)  # name -> request id
    started: float = 0.0
    ended: float = 0.0


def beacon(stack: RunningStack, rid: str) -> None:
    """What the page's script posts after load (service/pcbuilder/static/js), for ``rid``."""
    now_ms = time.time() * 1000
    body = {"request_id": rid, "page": "/pc-builder-app/table", "timeOrigin": now_ms - 80,
            "requestStart": 2.5, "responseStart": 30.1, "responseEnd": 31.4,
            "domContentLoadedEventEnd": 52.0, "loadEventEnd": 60.7}
    resp = stack.request("/pc-builder-app/api/timing", method="POST", body=json.dumps(body).encode(),
                         headers={"Content-Type": "text/plain;charset=UTF-8"})
    assert resp.status == 204, resp.status


def send(stack: RunningStack, name: str, path: str, status: int = 200) -> str:
    rid = f"real-{name}-{os.getpid()}-{time.time_ns() % 10**9:09d}"
    resp = stack.request(path, headers={"X-Request-ID": rid})
    assert resp.status == status, (path, resp.status)
    assert resp.headers["X-Request-ID"] == rid
    return rid


def rate_limited(stack: RunningStack) -> int:
    """Beacons faster than NGINX lets through (2/s, bursts of 20): how many it answered 429.
    Their ids are not ``real-`` ones (NGINX answers them itself, no other layer logs them)."""
    refused = 0
    for n in range(30):
        body = json.dumps({"request_id": f"limit-page-{n:04d}", "page": "/pc-builder-app/main",
                           "timeOrigin": time.time() * 1000, "requestStart": 1.0, "responseStart": 2.0,
                           "responseEnd": 3.0, "domContentLoadedEventEnd": 4.0, "loadEventEnd": 5.0})
        resp = stack.request("/pc-builder-app/api/timing", method="POST", body=body.encode(),
                             headers={"Content-Type": "text/plain;charset=UTF-8",
                                      "X-Request-ID": f"limit-beacon-{n:04d}"})
        refused += resp.status == 429
    return refused


def retried(stack: RunningStack) -> str:
    """A request NGINX sent to the stopped app1 first, then to app2 (same id)."""
    for n in range(10):
        rid = send(stack, f"retry{n}", "/pc-builder-app/api/components")
        line = stack.wait_for(lambda: next((r for r in stack.records("nginx") if r["request_id"] == rid), None),
                              what="the NGINX line")
        if ", " in line["upstream_addr"]:
            return rid
    raise AssertionError("NGINX never retried a request on the other instance")


@pytest.fixture(scope="session")
def traffic(tmp_path_factory):
    stack = start_real_stack(tmp_path_factory.mktemp("real-traffic"), STACK_ENV=ENV, DB_SLOW_MS="0",
                             LOKI_PATTERNS="on")
    try:
        t = Traffic(stack, loki_of(stack), started=time.time())
        t.ids["page"] = send(stack, "page", "/pc-builder-app/table")
        beacon(stack, t.ids["page"])
        for name, path, status in [("main", "/pc-builder-app/main", 200),
                                   ("api", "/pc-builder-app/api/components", 200),
                                   ("builder", "/pc-builder-app/builder?cpu=1", 200),
                                   ("static", "/pc-builder-app/static/css/app.css", 200),
                                   ("missing", "/pc-builder-app/no-such-page", 404)]:
            t.ids[name] = send(stack, name, path, status)
        for n in range(TABLE_VIEWS):
            send(stack, f"table{n:02d}", "/pc-builder-app/table")
        assert rate_limited(stack) > 0
        stack.supervisorctl("stop", "app1")
        t.ids["retry"] = retried(stack)
        stack.supervisorctl("stop", "app2")
        t.ids["bad_gateway"] = send(stack, "badgateway", "/pc-builder-app/table", 502)
        stack.supervisorctl("start", "app1", "app2")
        t.ended = time.time()
        stack.wait_for(lambda: all(p["health"] == "ready" for p in stack.status()["processes"]),
                       timeout=60, what="every process ready again")
        # everything delivered before any test reads it
        t.loki.wait_for_ids([t.ids["page"]], "real-", ("nginx", "uwsgi", "app", "browser"))
        t.loki.wait_for_ids([t.ids["retry"]], "real-", ("nginx", "uwsgi", "app"))
        t.loki.wait_for_ids([t.ids["bad_gateway"], t.ids["static"]], "real-", ("nginx",))
        yield t
    finally:
        stop_stack(stack)
