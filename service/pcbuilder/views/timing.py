"""``POST /pc-builder-app/api/timing``: the browser's timing beacon (steps 1 and 12).

``static/js/app.js`` reports, with ``navigator.sendBeacon`` and a JSON body (``text/plain``
or ``application/json``), each page view's Navigation Timing and each of its own ``fetch``
calls' Resource Timing. A body is one timing, or up to ``MAX_TIMINGS`` of them batched as
``{"timings": [...]}`` (so a page that fetches often stays within NGINX's rate limit)::

    {"kind": "navigation", "request_id": "<the page's id from <meta name=request-id>>",
     "page": "/pc-builder-app/table", "timeOrigin": 1732484426123.4, "requestStart": 3.1,
     "responseStart": 9.8, "responseEnd": 10.2, "domContentLoadedEventEnd": 40.5,
     "loadEventEnd": 61.0}
    {"kind": "fetch", "request_id": "<the response's X-Request-ID>",
     "page": "/pc-builder-app/api/builds", "timeOrigin": 1732484426123.4,
     "requestStart": 5021.3, "responseStart": 5030.0, "responseEnd": 5030.4}

Times are milliseconds (``timeOrigin`` is epoch ms, the rest offsets from it); ``kind``
defaults to ``navigation`` (what app.js sent before fetches were reported); a fetch has a
``page`` (its path, never its query) and no DOM times. The body is validated strictly
(size cap, only known fields, finite numbers in sane ranges, ordered, id format, no id
twice); a good one is logged as ONE ``browser.timing`` line per timing with
``layer: "browser"`` in ``$LOG_DIR/browser/<instance>.log`` (a stream of its own, so the
app's ``layer: "app"`` lines stay the app's), carrying the timed request's id as
``request_id`` and this beacon's own id as ``beacon_request_id``; the answer is 204.
Anything else is 400, nothing of it logged but a ``browser.timing.rejected`` line on the
app logger with a short reason, never the body. NGINX rate-limits this location.
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
#: Timings in one batch; the byte cap bounds it too (a fetch's timing is about 200 bytes).
MAX_TIMINGS = 8
CONTENT_TYPES = ("text/plain", "application/json")
#: Epoch milliseconds: 2001-09-09 .. 2100-01-01.
TIME_ORIGIN_RANGE = (1e12, 4102444800000.0)
#: Offsets from timeOrigin. A navigation's come within an hour of it; a page may make
#: fetches as long as it stays open, so theirs go up to a day.
OFFSET_MAX_MS = {"navigation": 3_600_000.0, "fetch": 86_400_000.0}
REQUIRED = ("timeOrigin", "requestStart", "responseStart", "responseEnd")
DOM_TIMES = ("domContentLoadedEventEnd", "loadEventEnd")
KNOWN = frozenset(("kind", "request_id", "page", *REQUIRED, *DOM_TIMES))
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


def parse_timing(body) -> dict:
    """The validated fields of one timing (a navigation's or a fetch's), or :class:`BadBeacon`."""
    if not isinstance(body, dict):
        raise BadBeacon("a timing must be a JSON object")
    unknown = set(body) - KNOWN
    if unknown:
        raise BadBeacon(f"{len(unknown)} unknown field(s)")
    kind = body.get("kind", "navigation")
    if not isinstance(kind, str) or kind not in OFFSET_MAX_MS:
        raise BadBeacon("kind must be navigation or fetch")
    missing = [k for k in ("request_id", *REQUIRED) if k not in body]
    if kind == "fetch" and "page" not in body:
        missing.append("page")
    if missing:
        raise BadBeacon("missing field(s): " + ", ".join(missing))
    if kind == "fetch" and any(k in body for k in DOM_TIMES):
        raise BadBeacon("a fetch has no DOM times")
    if not is_valid(body["request_id"]):
        raise BadBeacon("request_id is malformed")
    out = {"kind": kind, "request_id": body["request_id"]}
    page = body.get("page")
    if page is not None:
        if not isinstance(page, str) or not PAGE.fullmatch(page):
            raise BadBeacon("page must be a path of printable ASCII, at most 256 characters")
        out["page"] = page
    out["timeOrigin"] = _number(body, "timeOrigin", *TIME_ORIGIN_RANGE)
    for key in REQUIRED[1:] + tuple(k for k in DOM_TIMES if k in body):
        out[key] = _number(body, key, 0.0, OFFSET_MAX_MS[kind])
    if not out["requestStart"] <= out["responseStart"] <= out["responseEnd"]:
        raise BadBeacon("requestStart <= responseStart <= responseEnd does not hold")
    for key in DOM_TIMES:  # 0 means "not reached yet"
        if out.get(key) and out[key] < out["responseEnd"]:
            raise BadBeacon(f"{key} is before responseEnd")
    return out


def parse_beacon(raw: bytes) -> list[dict]:
    """The validated timings of a beacon body (one, or a batch), or :class:`BadBeacon`:
    one bad timing refuses the whole batch."""
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
    if "timings" not in body:
        return [parse_timing(body)]
    batch = body["timings"]
    if len(body) != 1 or not isinstance(batch, list) or not 1 <= len(batch) <= MAX_TIMINGS:
        raise BadBeacon(f'a batch is {{"timings": [1 to {MAX_TIMINGS} timings]}} and nothing else')
    timings = []
    for index, item in enumerate(batch):
        try:
            timings.append(parse_timing(item))
        except BadBeacon as exc:
            raise BadBeacon(f"timings[{index}]: {exc}") from None
    if len({t["request_id"] for t in timings}) != len(timings):
        raise BadBeacon("a batch times one request_id twice")
    return timings


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
        timings = parse_beacon(raw)
    except BadBeacon as exc:
        return _reject(str(exc))
    browser_log = logging.getLogger(BROWSER_LOGGER)
    user_agent = request.user_agent.string[:256]
    for fields in timings:
        browser_log.info("browser.timing", extra={**fields, "beacon_request_id": g.request_id,
                                                  "user_agent": user_agent})
    return "", 204
