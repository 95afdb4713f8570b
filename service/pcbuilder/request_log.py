"""Per-request logging: the request id, and one wide event per request.

The id comes from the ``REQUEST_ID`` WSGI variable that NGINX sets after validating the
client's ``X-Request-ID`` (a CGI variable, so a client header can never supply it). When
the app runs without NGINX (tests, ``flask run``) a fresh id is generated here.

Every request ends in ONE ``request.finished`` line at INFO (a "canonical log line"):
method, route, path, status, bytes, when the app began it (``start_us``, step 5 of the
twelve) and how long it took, the database work (``db_queries``, ``db_ms``, ``db_rows``,
``db_start_us``: step 6), the components retrieved, instance, pid, worker and trace
context. The fine events (``request.started``, each ``db.query``, the template render...)
are the request's :mod:`~pcbuilder.request_detail`: written as they happen at DEBUG, else
held in memory and written just before ``request.finished`` only when the request failed,
was slow or was sampled (``request.finished`` then says which in ``detail``, with
``detail_kept`` and ``detail_dropped``). A slow query is a WARNING either way (``db.py``).
"""
from __future__ import annotations

import json
import os
import time

import structlog
from flask import Flask, g, render_template, request

from . import request_detail
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
                 "components", "detail")

    def __init__(self):
        self.start_us = time.time_ns() // 1000
        self.started = time.perf_counter()
        self.db_queries = 0
        self.db_ms = 0.0
        self.db_rows = 0
        self.db_start_us = None
        self.components = 0
        self.detail: request_detail.Detail | None = None


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


def render(template: str, **context) -> str:
    """Flask's ``render_template``, timed as a ``template.rendered`` fine event."""
    d = request_detail.current()
    if d is None:
        return render_template(template, **context)
    started = time.perf_counter()
    text = render_template(template, **context)
    d.rendered(template, (time.perf_counter() - started) * 1000, started)
    return text


def _begin_request(policy: request_detail.Policy) -> None:
    g.request_stats = st = RequestStats()
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
    d = st.detail = request_detail.begin(policy, debug_enabled(LOGGER), st.started, st.start_us)
    if d is not None:  # the environ, not request.method/.path: a proxy lookup each costs ~1 % here
        environ = request.environ
        d.add("request.started", LOGGER, environ, len(environ.get("PATH_INFO", "")), at=st.started)


def _kept_detail(st: RequestStats, status: int, duration_ms: float, policy) -> dict:
    """Write the request's fine events if it deserves them; what ``request.finished`` says."""
    d = st.detail
    if d is None or type(d) is not request_detail.Detail:  # off, or DEBUG (already written)
        return {}
    why = d.verdict(status, duration_ms, policy)
    if why is None:
        return {}
    return {"detail": why, "detail_kept": d.write(), "detail_dropped": d.dropped}


def _finish_request(response, policy: request_detail.Policy):
    response.headers["X-Request-ID"] = g.request_id
    st = g.request_stats
    size = response.calculate_content_length()
    rule = request.url_rule
    duration_ms = round((time.perf_counter() - st.started) * 1000, 3)
    kept = _kept_detail(st, response.status_code, duration_ms, policy)
    log.info(
        "request.finished",
        method=request.method,
        route=rule.rule if rule is not None else None,
        path=request.path,
        status=response.status_code,
        bytes=size if size is not None else -1,
        start_us=st.start_us,
        duration_ms=duration_ms,
        db_queries=st.db_queries,
        db_ms=round(st.db_ms, 3),
        db_rows=st.db_rows,
        db_start_us=st.db_start_us,
        components=st.components,
        worker=worker_id(),
        **kept,
    )
    return response


def _clear_context(_exc=None) -> None:
    request_detail.end()
    structlog.contextvars.clear_contextvars()


def init_app(app: Flask) -> None:
    policy = request_detail.Policy.from_config(app.config)
    app.before_request(lambda: _begin_request(policy))
    app.after_request(lambda response: _finish_request(response, policy))
    app.teardown_request(_clear_context)

    @app.context_processor
    def _request_id_in_templates():
        return {"request_id": g.get("request_id", "")}
