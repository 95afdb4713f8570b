"""Per-request logging: binds the request id and logs request.started / request.finished.

The id comes from the ``REQUEST_ID`` WSGI variable that NGINX sets after validating the
client's ``X-Request-ID`` (a CGI variable, so a client header can never supply it). When
the app runs without NGINX (tests, ``flask run``) a fresh id is generated here.
"""
from __future__ import annotations

import json
import time

import structlog
from flask import Flask, g, request

from .request_ids import is_valid, new_request_id

try:  # present only inside uWSGI
    import uwsgi  # type: ignore[import-not-found]
except ImportError:
    uwsgi = None

log = structlog.get_logger("pcbuilder.request")


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
    rid = request.environ.get("REQUEST_ID")
    if not is_valid(rid):
        rid = new_request_id()
    g.request_id = rid
    g.request_started = time.perf_counter()
    structlog.contextvars.clear_contextvars()
    structlog.contextvars.bind_contextvars(request_id=rid)
    # W3C trace context, validated by NGINX (empty when absent or malformed).
    traceparent = request.environ.get("TRACEPARENT")
    if traceparent:
        structlog.contextvars.bind_contextvars(traceparent=traceparent)
    if uwsgi is not None:
        uwsgi.set_logvar("rid", rid)
        uwsgi.set_logvar("uri_json", uri_for_log(request.environ))
    log.info("request.started", method=request.method, path=request.path)


def _finish_request(response):
    response.headers["X-Request-ID"] = g.request_id
    duration_ms = (time.perf_counter() - g.request_started) * 1000
    size = response.calculate_content_length()
    log.info(
        "request.finished",
        method=request.method,
        path=request.path,
        status=response.status_code,
        bytes=size if size is not None else -1,
        duration_ms=round(duration_ms, 3),
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
