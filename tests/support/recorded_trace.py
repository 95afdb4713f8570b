"""Log lines of one real request, for the unit tests of ``./stack trace``.

Recorded from a real ``./stack up -d`` with Chromium (ids shortened by hand where a test
needs another request); each test edits a copy (``recorded()``). ``APP`` is what the app
writes at DEBUG (the fine events, then the wide event), ``WIDE`` its wide event at INFO.
"""
from __future__ import annotations

import copy

RID = "a310ca5e3dcafc51182502e8247d2696"
NGINX = {"time": "2026-11-24T22:15:33+00:00", "msec": 1795558533.341, "layer": "nginx", "instance": "vm",
         "event": "nginx.access", "request_id": RID, "remote_addr": "127.0.0.1", "method": "GET",
         "uri": "/pc-builder-app/table", "status": 200, "bytes_sent": 3960, "referer": "", "user_agent": "x",
         "request_time": 0.075, "upstream_addr": "unix:/tmp/trdev/run/app1.sock", "upstream_status": "200",
         "upstream_connect_time": "0.000", "upstream_header_time": "0.075",
         "upstream_response_time": "0.075", "traceparent": ""}
UWSGI = {"layer": "uwsgi", "instance": "app1", "event": "uwsgi.request", "request_id": RID, "method": "GET",
         "uri": "/pc-builder-app/table", "status": 200, "size": 17656, "start_us": 1795558533267115,
         "duration_us": 74971, "pid": 695, "worker": 2}
APP = [
    {"level": "INFO", "logger": "pcbuilder.request", "event": "request.started", "pid": 695, "layer": "app",
     "instance": "app1", "method": "GET", "path": "/pc-builder-app/table", "request_id": RID,
     "time": "2026-11-24T22:15:33.267626+00:00"},
    {"level": "INFO", "logger": "pcbuilder.db", "event": "db.query", "pid": 695, "layer": "app",
     "instance": "app1", "sql": "SELECT ...", "duration_ms": 5.23, "rows": 58, "request_id": RID,
     "time": "2026-11-24T22:15:33.274944+00:00"},
    {"level": "INFO", "logger": "pcbuilder.pages", "event": "components.retrieved", "pid": 695, "layer": "app",
     "instance": "app1", "count": 58, "request_id": RID, "time": "2026-11-24T22:15:33.275571+00:00"},
    {"level": "INFO", "logger": "pcbuilder.request", "event": "request.finished", "pid": 695, "layer": "app",
     "instance": "app1", "method": "GET", "path": "/pc-builder-app/table", "status": 200, "bytes": 17526,
     "duration_ms": 73.73, "request_id": RID, "time": "2026-11-24T22:15:33.341316+00:00"},
]
BROWSER = {"level": "INFO", "logger": "pcbuilder.browser", "event": "browser.timing", "pid": 686,
           "layer": "browser", "instance": "app2", "request_id": RID, "page": "/pc-builder-app/table",
           "timeOrigin": 1795558533252.2, "requestStart": 11.2, "responseStart": 90.3, "responseEnd": 93.9,
           "domContentLoadedEventEnd": 123.8, "loadEventEnd": 143.8,
           "beacon_request_id": "d63d675cdfbd1aa9fd13a6bb1841745b", "time": "2026-11-24T22:15:33.419501+00:00"}
OTHER = {**NGINX, "request_id": "someone-else-0001", "msec": 1795558534.0}


def recorded():
    return copy.deepcopy([NGINX, UWSGI, *APP, BROWSER, OTHER])


WIDE = {**APP[-1], "route": "/pc-builder-app/table", "start_us": 1795558533267626,
        "db_queries": 1, "db_ms": 5.23, "db_rows": 58, "db_start_us": 1795558533269714,
        "components": 58, "worker": 2}


def recorded_at_info():
    """What INFO writes: the fine app events (DEBUG) are absent, the wide event carries
    start_us and the database summary."""
    return copy.deepcopy([NGINX, UWSGI, WIDE, BROWSER, OTHER])


def kept_detail(why: str = "slow") -> list[dict]:
    """The same request as the app writes it when it keeps its detail (the contract of the
    app's detail buffer): the fine events first, each with ``"detail": true``, then the wide
    event saying why and how many were kept."""
    common = {"level": "INFO", "pid": 695, "layer": "app", "instance": "app1", "request_id": RID, "detail": True}
    fine = [
        {**common, "logger": "pcbuilder.request", "event": "request.started", "method": "GET",
         "path": "/pc-builder-app/table", "time": "2026-11-24T22:15:33.267626+00:00"},
        {**common, "logger": "pcbuilder.listing", "event": "listing.parsed", "category": None, "sort": "name",
         "order": "asc", "searched": False, "time": "2026-11-24T22:15:33.268101+00:00"},
        {**common, "logger": "pcbuilder.db", "event": "db.query",
         "sql": "SELECT id, category, name, price FROM components ORDER BY name ASC", "rows": 58,
         "duration_ms": 5.23, "start_us": 1795558533269714, "time": "2026-11-24T22:15:33.274944+00:00"},
        {**common, "logger": "pcbuilder.listing", "event": "components.retrieved", "count": 58,
         "time": "2026-11-24T22:15:33.275571+00:00"},
        {**common, "logger": "pcbuilder.pages", "event": "template.rendered", "template": "table.html",
         "duration_ms": 60.1, "start_us": 1795558533276000, "time": "2026-11-24T22:15:33.336100+00:00"},
        {**common, "logger": "pcbuilder.pages", "event": "log.record", "record_level": "WARNING",
         "message": "a component has no price", "time": "2026-11-24T22:15:33.337000+00:00"},
    ]
    finished = {**WIDE, "detail": why, "detail_kept": len(fine), "detail_dropped": 0}
    return copy.deepcopy([NGINX, UWSGI, *fine, finished, BROWSER, OTHER])


def fetch_of_a_page() -> list[dict]:
    """A ``POST /api/builds`` the builder page made with ``fetch``: its own id, and the
    browser's Resource Timing of it (``kind: "fetch"``, no DOM fields)."""
    rid = "f37c1b2a9d8e4f60a1b2c3d4e5f60718"
    nginx = {**NGINX, "request_id": rid, "method": "POST", "uri": "/pc-builder-app/api/builds", "bytes_sent": 512}
    uwsgi = {**UWSGI, "request_id": rid, "method": "POST", "uri": "/pc-builder-app/api/builds", "size": 300}
    wide = {**WIDE, "request_id": rid, "method": "POST", "path": "/pc-builder-app/api/builds",
            "route": "/pc-builder-app/api/builds", "bytes": 280}
    beacon = {k: v for k, v in BROWSER.items() if k not in ("domContentLoadedEventEnd", "loadEventEnd", "page")}
    beacon.update(request_id=rid, kind="fetch")
    return copy.deepcopy([nginx, uwsgi, wide, beacon])
