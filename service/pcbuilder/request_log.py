"""Per-request logging: the request id, and one wide event per request.

The id comes from the ``REQUEST_ID`` WSGI variable that NGINX sets after validating the
client's ``X-Request-ID`` (a CGI variable, so a client header can never supply it). When
the app runs without NGINX (tests, ``flask run``) a fresh id is generated here.

Every request ends in ONE ``request.finished`` line at INFO (a "canonical log line"):
method, route, path, status, bytes, when the app began it (``start_us``, step 5 of the
twelve) and how long it took, the database work (``db_queries``, ``db_ms``, ``db_rows``,
``db_start_us``: step 6), the components retrieved, instance, pid, worker and trace
context. The fine-grained ``request.started`` / ``db.query`` / ``components.retrieved``
are DEBUG (``LOG_LEVEL=DEBUG``); a slow query is a WARNING (``db.py``).
"""
from __future__ import annotations

import json
import os
import time

import structlog
from flask import Flask, g, request

from .logging_config import debug_enabled
from .request_ids import is_valid, new_request_id

try:  # present only inside uWSGI
    import uwsgi  # type: ignore[import-not-found]
except ImportError:
    uwsgi = None

LOGGER = "pcbuilder.request"
log = structlog.get_logger(LOGGER)


class RequestStats:
    """What the request did, gathered while it runs, logged once at the end."""

    __slots__ = ("start_us", "started", "db_queries", "db_ms", "db_rows", "db_start_us",
                 "components")

    def __init__(self):
        self.start_us = time.time_ns() // 1000
        self.started = time.perf_counter()
        self.db_queries = 0
        self.db_ms = 0.0
        self.db_rows = 0
        self.db_start_us = None
        self.components = 0


def stats() -> RequestStats | None:
    """The current request's stats (None outside a request, e.g. at start-up)."""
    return g.get("request_stats") if g else None


_worker = (None, 0)  # (pid, uWSGI worker id), looked up once per process


def worker_id() -> int:
    global _worker
    pid = os.getpid()
    if _worker[0] != pid:
        _worker = (pid, uwsgi.worker_id() if uwsgi is not None else 0)
    return _worker[1]


def uri_for_log(environ) -> str:
    """The raw request URI as ASCII-only JSON string content (no surrounding quotes).

    uWSGI writes log-format values without escaping, so its request line takes the URI
    from this log variable instead of ``%(uri)``. WSGI strings carry the raw bytes as
    latin-1; bytes that are not UTF-8 become ``\\xNN`` text rather than disappear.
    """
    raw = environ.get("REQUEST_URI") or environ.get("PATH_INFO", "")
    text = raw.encode("latin-1", "replace").decode("utf-8", "backslashreplace")
    return json.dumps(text, ensure_ascii=True)[1:-1]


def _begin_request() -> None:
    g.request_stats = RequestStats()
    rid = request.environ.get("REQUEST_ID")
    if not is_valid(rid):
        rid = new_request_id()
    g.request_id = rid
    structlog.contextvars.clear_contextvars()
    # W3C trace context, validated by NGINX (empty when absent or malformed).
    traceparent = request.environ.get("TRACEPARENT")
    if traceparent:
        structlog.contextvars.bind_contextvars(request_id=rid, traceparent=traceparent)
    else:
        structlog.contextvars.bind_contextvars(request_id=rid)
    if uwsgi is not None:
        uwsgi.set_logvar("rid", rid)
        uwsgi.set_logvar("uri_json", uri_for_log(request.environ))
    if debug_enabled(LOGGER):
        log.debug("request.started", method=request.method, path=request.path)


def _finish_request(response):
    response.headers["X-Request-ID"] = g.request_id
    st = g.request_stats
    size = response.calculate_content_length()
    rule = request.url_rule
    log.info(
        "request.finished",
        method=request.method,
        route=rule.rule if rule is not None else None,
        path=request.path,
        status=response.status_code,
        bytes=size if size is not None else -1,
        start_us=st.start_us,
        duration_ms=round((time.perf_counter() - st.started) * 1000, 3),
        db_queries=st.db_queries,
        db_ms=round(st.db_ms, 3),
        db_rows=st.db_rows,
        db_start_us=st.db_start_us,
        components=st.components,
        worker=worker_id(),
    )
    return response


def _clear_context(_exc=None) -> None:
    structlog.contextvars.clear_contextvars()


def init_app(app: Flask) -> None:
    app.before_request(_begin_request)
    app.after_request(_finish_request)
    app.teardown_request(_clear_context)

    @app.context_processor
    def _request_id_in_templates():
        return {"request_id": g.get("request_id", "")}
