"""Every error the app answers, in one place.

Under the API prefix an error is always JSON of one shape (the same one NGINX answers
with for the errors it handles itself)::

    {"error": "<short text>", "detail": "<longer text>" or null, "request_id": "<id>"}

Pages get an HTML page in the site's layout with the request id; an unexpected exception
is logged as ``request.failed`` (with its traceback) and answered 500 without details.
"""
from __future__ import annotations

import structlog
from flask import Flask, current_app, g, request
from werkzeug.exceptions import HTTPException

from . import request_log
from .request_ids import is_valid
from .urls import API_PREFIX

log = structlog.get_logger("pcbuilder.request")


class ApiError(Exception):
    """A client error under the API prefix, answered as ``{"error", "detail", "request_id"}``."""

    def __init__(self, status: int, error: str, detail: str | None = None):
        super().__init__(error)
        self.status, self.error, self.detail = status, error, detail


def is_api_request() -> bool:
    """Whether the current request is under the API prefix (its errors are JSON)."""
    return request.path == API_PREFIX or request.path.startswith(API_PREFIX + "/")


def current_request_id() -> str:
    # g.request_id is bound by request_log before any view runs; NGINX's variable is the
    # fallback for an error raised before that (while the request was being routed).
    rid = g.get("request_id") or request.environ.get("REQUEST_ID")
    return rid if is_valid(rid) else ""


def shorten(text: str, limit: int = 80) -> str:
    """``text`` cut to ``limit`` characters, saying how long it was: errors may quote
    client input, never all of a 20,000-character one."""
    return text if len(text) <= limit else f"{text[:limit]}… ({len(text)} characters)"


def json_error(status: int, error: str, detail: str | None = None, headers=None):
    response = current_app.json.response(
        {"error": error, "detail": detail, "request_id": current_request_id()})
    response.status_code = status
    if headers:
        response.headers.extend(headers)
    return response


def _api_error(exc: ApiError):
    return json_error(exc.status, exc.error, exc.detail)


def _http_detail(exc: HTTPException) -> str:
    """Werkzeug's default descriptions are generic; say what this request got wrong."""
    if exc.description != type(exc).description:  # a view gave its own
        return exc.description
    if exc.code == 404:
        return f"no API endpoint at {shorten(request.path)}"
    if exc.code == 405:
        allowed = ", ".join(m for m in exc.valid_methods or () if m not in ("HEAD", "OPTIONS"))
        return f"{request.method} is not allowed here; use {allowed}"
    if exc.code == 413:
        return f"the request body is over the limit of {request.max_content_length} bytes"
    return exc.description


def _page_message(exc: HTTPException) -> str:
    if exc.code == 404 and exc.description == type(exc).description:
        return "There is no page at this address."
    if exc.code == 405:
        return f"This page does not accept {request.method} requests."
    return exc.description


def _page(status: int, title: str, headers=(), template: str = "error.html", **context):
    """An error page in the site's layout. An error handler must answer whatever went
    wrong: when even the page cannot be rendered (e.g. a Host the app cannot build URLs
    for, so ``url_for`` has no adapter), the answer is plain text with the request id."""
    try:
        return request_log.render(template, status=status, title=title, **context), status, headers
    except Exception as exc:
        log.exception("error_page.failed", status=status, error=type(exc).__name__)
        text = f"{status} {title}\nrequest id: {current_request_id()}\n"
        return text, status, [*headers, ("Content-Type", "text/plain; charset=utf-8")]


def _http_error(exc: HTTPException):
    # Keep the headers the error carries (Allow on a 405), not its content type.
    headers = [(k, v) for k, v in exc.get_headers() if k.lower() != "content-type"]
    if is_api_request():
        return json_error(exc.code, exc.name.lower(), _http_detail(exc), headers)
    if exc.code >= 500:
        return _page(exc.code, exc.name, headers, template="500.html")
    return _page(exc.code, exc.name, headers, message=_page_message(exc))


def _unexpected(exc: Exception):
    # the route, like request.finished's: Loki's ruler counts exceptions per route
    rule = request.url_rule
    log.exception("request.failed", error=type(exc).__name__, route=rule.rule if rule is not None else None)
    if is_api_request():
        return json_error(500, "internal server error",
                          "the server failed to answer; if it keeps happening, report the request id")
    return _page(500, "Internal Server Error", template="500.html")


def init_app(app: Flask) -> None:
    app.register_error_handler(ApiError, _api_error)
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(Exception, _unexpected)
