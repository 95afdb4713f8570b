"""``POST /pc-builder-app/api/timing``: the browser's Navigation Timing beacon (steps 1 and 12).

``static/js/app.js`` sends one beacon per page view with ``navigator.sendBeacon``, a JSON
body (``text/plain`` or ``application/json``)::

    {"request_id": "<the page's id from <meta name=request-id>>", "page": "/pc-builder-app/table",
     "timeOrigin": 1732484426123.4, "requestStart": 3.1, "responseStart": 9.8,
     "responseEnd": 10.2, "domContentLoadedEventEnd": 40.5, "loadEventEnd": 61.0}

Times are milliseconds from PerformanceNavigationTiming (``timeOrigin`` is epoch ms). The
body is validated strictly (size cap, only known fields, finite numbers in sane ranges,
ordered, id format); a good one is logged as ONE ``browser.timing`` line with
``layer: "browser"`` in ``$LOG_DIR/browser/<instance>.log`` (a stream of its own, so the
app's ``layer: "app"`` lines stay the app's), carrying the page's id as ``request_id`` and
this beacon's own id as ``beacon_request_id``; the answer is 204. Anything else is 400 and
logged on the app logger as ``browser.timing.rejected`` with a short reason, never the body.
NGINX rate-limits this location.
"""
from __future__ import annotations

import logging
import math
import re

import structlog
from flask import Blueprint, g, request

from .. import strict_json
from ..errors import json_error
from ..logging_config import BROWSER_LOGGER
from ..request_ids import is_valid

bp = Blueprint("timing", __name__)
log = structlog.get_logger("pcbuilder.timing")

MAX_BYTES = 2048
CONTENT_TYPES = ("text/plain", "application/json")
#: Epoch milliseconds: 2001-09-09 .. 2100-01-01.
TIME_ORIGIN_RANGE = (1e12, 4102444800000.0)
#: Offsets from timeOrigin: 0 .. 1 hour.
OFFSET_MAX_MS = 3_600_000.0
REQUIRED = ("timeOrigin", "requestStart", "responseStart", "responseEnd")
OPTIONAL = ("domContentLoadedEventEnd", "loadEventEnd")
KNOWN = frozenset(("request_id", "page", *REQUIRED, *OPTIONAL))
PAGE = re.compile(r"/[\x21-\x7e]{0,255}")



class BadBeacon(ValueError):
    """The reason is a fixed text chosen here, safe to log and to answer."""


def _number(body: dict, key: str, low: float, high: float) -> float:
    value = body[key]
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise BadBeacon(f"{key} must be a number")
    if not math.isfinite(value) or not low <= value <= high:
        raise BadBeacon(f"{key} is out of range")
    # Browsers coarsen these milliseconds to 5 µs or more (Chromium: 100 µs) and compute them
    # in binary floating point: 17.200000001117587 is 17.2 and noise. To the microsecond,
    # finer than any browser's clock, the line keeps what the browser measured.
    return round(float(value), 3)


def parse_beacon(raw: bytes) -> dict:
    """The validated fields of a beacon body, or :class:`BadBeacon`."""
    if len(raw) > MAX_BYTES:
        raise BadBeacon(f"body over {MAX_BYTES} bytes")
    try:
        body = strict_json.loads(raw.decode("utf-8"))
    except strict_json.DuplicateKey:
        raise BadBeacon("a JSON object repeats a key") from None
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise BadBeacon("body is not JSON") from None
    if not isinstance(body, dict):
        raise BadBeacon("body must be a JSON object")
    unknown = set(body) - KNOWN
    if unknown:
        raise BadBeacon(f"{len(unknown)} unknown field(s)")
    missing = [k for k in ("request_id", *REQUIRED) if k not in body]
    if missing:
        raise BadBeacon("missing field(s): " + ", ".join(missing))
    if not is_valid(body["request_id"]):
        raise BadBeacon("request_id is malformed")
    out = {"request_id": body["request_id"]}
    page = body.get("page")
    if page is not None:
        if not isinstance(page, str) or not PAGE.fullmatch(page):
            raise BadBeacon("page must be a path of printable ASCII, at most 256 characters")
        out["page"] = page
    out["timeOrigin"] = _number(body, "timeOrigin", *TIME_ORIGIN_RANGE)
    for key in REQUIRED[1:] + tuple(k for k in OPTIONAL if k in body):
        out[key] = _number(body, key, 0.0, OFFSET_MAX_MS)
    if not out["requestStart"] <= out["responseStart"] <= out["responseEnd"]:
        raise BadBeacon("requestStart <= responseStart <= responseEnd does not hold")
    for key in OPTIONAL:  # 0 means "not reached yet"
        if out.get(key) and out[key] < out["responseEnd"]:
            raise BadBeacon(f"{key} is before responseEnd")
    return out


def _reject(reason: str, status: int = 400):
    log.warning("browser.timing.rejected", reason=reason,
                content_type=(request.mimetype or "")[:64], content_length=request.content_length)
    return json_error(status, reason)


@bp.post("/timing")
def timing():
    if request.mimetype not in CONTENT_TYPES:
        return _reject("Content-Type must be text/plain or application/json")
    if request.content_length is not None and request.content_length > MAX_BYTES:
        return _reject(f"body over {MAX_BYTES} bytes")
    raw = request.stream.read(MAX_BYTES + 1)  # never more than the cap, even when chunked
    try:
        fields = parse_beacon(raw)
    except BadBeacon as exc:
        return _reject(str(exc))
    logging.getLogger(BROWSER_LOGGER).info(
        "browser.timing", extra={**fields, "beacon_request_id": g.request_id,
                                 "user_agent": request.user_agent.string[:256]})
    return "", 204
